#include "base/fs.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bytes read per read(2) call. */
#define FS_READ_CHUNK (16 * 1024)

int fs_mkdir_p(const char *path, unsigned mode, err_detail_t *d)
{
    char tmp[FS_PATH_MAX];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(tmp))
        return err_set(d, ERR_INVAL, "bad folder name \"%.200s\"", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != '\0')
            continue;
        tmp[i] = '\0';
        if (mkdir(tmp, (mode_t)mode) < 0 && errno != EEXIST) {
            char ebuf[128];
            return err_set(d, ERR_IO, "cannot create %.200s: %s", tmp,
                           strerror_r(errno, ebuf, sizeof(ebuf)));
        }
        tmp[i] = i < n ? '/' : '\0';
    }
    return 0;
}

int fs_read_file(const char *path, const char *name, buf_t *b, err_detail_t *d)
{
    char chunk[FS_READ_CHUNK];
    char ebuf[128];
    int fd, rc = 0;

    if (name == NULL)
        name = path;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_set(d, ERR_IO, "%s: cannot open: %s", name,
                       strerror_r(errno, ebuf, sizeof(ebuf)));
    for (;;) {
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(d, ERR_IO, "%s: cannot read: %s", name,
                         strerror_r(errno, ebuf, sizeof(ebuf)));
            break;
        }
        if (n == 0)
            break;
        rc = buf_append(b, chunk, (size_t)n);
        if (rc == ERR_TOO_LARGE) {
            rc = err_set(d, rc, "%s: file is larger than %zu bytes", name, b->max);
            break;
        }
        if (rc < 0) {
            rc = err_set(d, rc, "%s: out of memory reading the file", name);
            break;
        }
    }
    explicit_bzero(chunk, sizeof(chunk));
    close(fd);
    return rc;
}
