/*
 * Files of the CA state dir: private directories, bounded reads, atomic writes, locks and the
 * stamps that tell a running sentry that another process rotated the CA.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>

#include "base/fs.h"
#include "identity/identity_int.h"

int identity__ossl_fail(err_detail_t *d, int code, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[200] = "";

    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return err_set(d, code, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

int64_t identity__now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int identity__path(char *out, size_t n, const char *dir, const char *name)
{
    int w = snprintf(out, n, "%s/%s", dir, name);

    if (w < 0 || (size_t)w >= n)
        return ERR_TOO_LARGE;
    return 0;
}

int identity__mkdir_private(const char *path, err_detail_t *d)
{
    struct stat st;
    int rc = fs_mkdir_p(path, 0700, d);

    if (rc < 0)
        return rc;
    if (lstat(path, &st) < 0)
        return err_set(d, ERR_IO, "cannot inspect %s: %s", path, strerror(errno));
    /* Keys live here: a folder that another user owns or may enter would let them read or swap
     * the CA, so it is refused rather than silently repaired. */
    if (!S_ISDIR(st.st_mode))
        return err_set(d, ERR_IDENTITY_CA, "%s is not a directory", path);
    if (st.st_uid != geteuid())
        return err_set(d, ERR_IDENTITY_CA, "%s is owned by uid %u, not by us (uid %u)", path,
                       (unsigned)st.st_uid, (unsigned)geteuid());
    if ((st.st_mode & 077) != 0)
        return err_set(d, ERR_IDENTITY_CA,
                       "%s is accessible to other users (mode %03o); run chmod 700 on it", path,
                       (unsigned)(st.st_mode & 0777));
    return 0;
}

int identity__file_read(const char *path, size_t max, buf_t *out, err_detail_t *d)
{
    char chunk[4096];
    int fd, rc = 0;
    ssize_t r;

    buf_init(out, max);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            return ERR_NOT_FOUND;
        return err_set(d, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    for (;;) {
        r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = err_set(d, ERR_IO, "cannot read %s: %s", path, strerror(errno));
            break;
        }
        if (r == 0)
            break;
        rc = buf_append(out, chunk, (size_t)r);
        if (rc < 0) {
            rc = err_set(d, rc, "%s: larger than %zu bytes", path, max);
            break;
        }
    }
    close(fd);
    if (rc < 0)
        buf_free(out);
    return rc;
}

/* Syncs the directory holding @p path so that a rename into it survives a crash. */
static void sync_parent(const char *path)
{
    char dir[IDENTITY_PATH_MAX];
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 1 : (size_t)(slash - path);
    int fd;

    if (slash == NULL)
        memcpy(dir, ".", 2);
    else if (n == 0 || n >= sizeof(dir))
        return;
    else {
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int identity__file_write(const char *path, const void *p, size_t n, mode_t mode, err_detail_t *d)
{
    char tmp[IDENTITY_PATH_MAX];
    const char *c = p;
    int fd, rc = 0, w;

    w = snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    if (w < 0 || (size_t)w >= sizeof(tmp))
        return err_set(d, ERR_TOO_LARGE, "path too long: %s", path);
    unlink(tmp);
    /* O_EXCL with the final mode: the key never exists with wider permissions, even briefly. */
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return err_set(d, ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    while (n > 0) {
        ssize_t r = write(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = err_set(d, ERR_IO, "cannot write %s: %s", tmp, strerror(errno));
            break;
        }
        c += r;
        n -= (size_t)r;
    }
    if (rc == 0 && fsync(fd) < 0)
        rc = err_set(d, ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
    close(fd);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = err_set(d, ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        return rc;
    }
    sync_parent(path);
    return 0;
}

int identity__lock(const char *path, bool wait, int *fd, err_detail_t *d)
{
    int f = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);

    if (f < 0)
        return err_set(d, ERR_IO, "cannot open %s: %s", path, strerror(errno));
    while (flock(f, LOCK_EX | (wait ? 0 : LOCK_NB)) < 0) {
        int e = errno;
        if (e == EINTR)
            continue;
        close(f);
        if (e == EWOULDBLOCK)
            return err_set(d, ERR_IDENTITY_CA, "%s is held by another process", path);
        return err_set(d, ERR_IO, "cannot lock %s: %s", path, strerror(e));
    }
    *fd = f;
    return 0;
}

void identity__unlock(int fd)
{
    if (fd >= 0)
        close(fd);
}

void identity__stamp(const char *path, identity__stamp_t *out)
{
    struct stat st;

    memset(out, 0, sizeof(*out));
    if (stat(path, &st) < 0)
        return;
    out->exists = true;
    out->dev = st.st_dev;
    out->ino = st.st_ino;
    out->mtime = st.st_mtim;
    out->size = st.st_size;
}

bool identity__stamp_eq(const identity__stamp_t *a, const identity__stamp_t *b)
{
    return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino &&
           a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
           a->size == b->size;
}
