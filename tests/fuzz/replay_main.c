/*
 * replay_main.c — a main() for fuzz targets built without libFuzzer (GCC builds, CI replays).
 *
 * Each argument is a file or a directory of files (not recursive); every file is read whole and
 * passed once to LLVMFuzzerTestOneInput. A crash or sanitizer report fails the run; otherwise it
 * prints "N passed, 0 failed" and exits 0. Unreadable inputs count as failures.
 */
#include <dirent.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "fuzz.h"

#define REPLAY_MAX_INPUT_BYTES (16 * 1024 * 1024)

static int run_file(const char *path)
{
    char chunk[64 * 1024];
    buf_t b;
    FILE *f;
    size_t n;
    int rc = 0;

    buf_init(&b, REPLAY_MAX_INPUT_BYTES);
    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "replay: cannot open %s\n", path);
        return -1;
    }
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        if (buf_append(&b, chunk, n) < 0) {
            fprintf(stderr, "replay: %s is too large\n", path);
            rc = -1;
            goto out;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "replay: cannot read %s\n", path);
        rc = -1;
        goto out;
    }
    /* libFuzzer never passes a NULL pointer, even for an empty input. */
    LLVMFuzzerTestOneInput((const uint8_t *)buf_ptr(&b), b.len);
out:
    fclose(f);
    buf_free(&b);
    return rc;
}

static int run_path(const char *path, int *passed, int *failed)
{
    struct stat st;
    DIR *dir;
    struct dirent *e;

    if (stat(path, &st) != 0) {
        fprintf(stderr, "replay: cannot stat %s\n", path);
        (*failed)++;
        return 0;
    }
    if (!S_ISDIR(st.st_mode)) {
        if (run_file(path) == 0)
            (*passed)++;
        else
            (*failed)++;
        return 0;
    }
    dir = opendir(path);
    if (dir == NULL) {
        fprintf(stderr, "replay: cannot open directory %s\n", path);
        (*failed)++;
        return 0;
    }
    while ((e = readdir(dir)) != NULL) {
        char full[4096];
        struct stat est;
        if (e->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(full, sizeof(full), "%s/%s", path, e->d_name) >= sizeof(full)) {
            (*failed)++;
            continue;
        }
        if (stat(full, &est) != 0 || !S_ISREG(est.st_mode))
            continue;
        if (run_file(full) == 0)
            (*passed)++;
        else
            (*failed)++;
    }
    closedir(dir);
    return 0;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0, i;

    for (i = 1; i < argc; i++)
        run_path(argv[i], &passed, &failed);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
