#include "base/fs.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

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
