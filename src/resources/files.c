/* The resource files of a directory (res_dir_files, see resources.h). */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "resources/resources.h"

#define RES_PATH_MAX 4096 /* longest "<dir>/<name>", NUL included */

static bool is_yaml_name(const char *n)
{
    size_t l = strlen(n);
    return n[0] != '.' && ((l > 5 && strcmp(n + l - 5, ".yaml") == 0) ||
                           (l > 4 && strcmp(n + l - 4, ".yml") == 0));
}

static int cmp_paths(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int res_dir_files(const char *dir, size_t max, res_files_t *f, err_detail_t *d)
{
    DIR *dh = opendir(dir);
    struct dirent *de;
    size_t first = f->n;
    char ebuf[128];
    int rc = 0;

    if (dh == NULL) {
        if (errno == ENOENT)
            return err_set(d, ERR_NOT_FOUND, "%s: no such directory", dir);
        return err_set(d, ERR_IO, "%s: cannot read the directory: %s", dir,
                       strerror_r(errno, ebuf, sizeof(ebuf)));
    }
    while ((de = readdir(dh)) != NULL) {
        struct stat st;
        buf_t p;
        if (!is_yaml_name(de->d_name))
            continue;
        if (f->n >= max) {
            rc = err_set(d, ERR_TOO_LARGE, "%s: more than %zu resource files", dir, max);
            break;
        }
        buf_init(&p, RES_PATH_MAX - 1);
        if (buf_printf(&p, "%s/%s", dir, de->d_name) < 0) {
            rc = err_set(d, ERR_TOO_LARGE, "%s/%s: path too long", dir, de->d_name);
            break;
        }
        if (stat(p.ptr, &st) != 0 || !S_ISREG(st.st_mode)) {
            buf_free(&p);
            continue;
        }
        if (f->n == f->cap) {
            f->cap = f->cap ? f->cap * 2 : 16;
            f->paths = mem_realloc(f->paths, f->cap * sizeof(*f->paths));
        }
        f->paths[f->n++] = buf_take(&p);
    }
    closedir(dh);
    if (f->n - first > 1)
        qsort(f->paths + first, f->n - first, sizeof(*f->paths), cmp_paths);
    return rc;
}

void res_files_free(res_files_t *f)
{
    for (size_t i = 0; i < f->n; i++)
        mem_free(f->paths[i]);
    mem_free(f->paths);
    memset(f, 0, sizeof(*f));
}
