/*
 * Blocking-style I/O on non-blocking sockets, plain or TLS, under one deadline per connection:
 * every wait is a poll() bounded by the time left, so a peer that sends one byte a second cannot
 * hold a sentry thread longer than the deadline.
 */
#include <errno.h>
#include <openssl/err.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "identity/identity_int.h"

/* Waits until @p fd is readable (@p events POLLIN) or writable (POLLOUT), or the deadline. */
static int wait_fd(const identity__io_t *io, short events, err_detail_t *d)
{
    for (;;) {
        int64_t left = io->deadline_ms - identity__now_ms();
        struct pollfd p = {io->fd, events, 0};
        int r;

        if (left <= 0)
            return err_set(d, ERR_TIMEOUT, "peer too slow");
        r = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return err_set(d, ERR_IO, "poll: %s", strerror(errno));
        if (r > 0)
            return 0;
    }
}

/* After an SSL_* call returned @p ret: 1 = retry after waiting (done here), or a negative code. */
static int ssl_wait(identity__io_t *io, int ret, err_detail_t *d)
{
    int e = SSL_get_error(io->ssl, ret);

    if (e == SSL_ERROR_WANT_READ)
        return wait_fd(io, POLLIN, d) < 0 ? ERR_TIMEOUT : 1;
    if (e == SSL_ERROR_WANT_WRITE)
        return wait_fd(io, POLLOUT, d) < 0 ? ERR_TIMEOUT : 1;
    return identity_tls_error(io->ssl, ret, d);
}

int identity__io_handshake(identity__io_t *io, err_detail_t *d)
{
    for (;;) {
        int r, w;

        ERR_clear_error();
        r = SSL_do_handshake(io->ssl);
        if (r == 1)
            return 0;
        w = ssl_wait(io, r, d);
        if (w == ERR_TIMEOUT)
            return err_set(d, ERR_TIMEOUT, "TLS handshake timed out");
        if (w < 0)
            return w;
    }
}

/* Reads once into [p, p+cap): bytes read, 0 at EOF, or a negative code. */
static ssize_t read_some(identity__io_t *io, char *p, size_t cap, err_detail_t *d)
{
    for (;;) {
        if (io->ssl != NULL) {
            int r, w;
            ERR_clear_error();
            r = SSL_read(io->ssl, p, cap > INT32_MAX ? INT32_MAX : (int)cap);
            if (r > 0)
                return r;
            if (SSL_get_error(io->ssl, r) == SSL_ERROR_ZERO_RETURN) {
                ERR_clear_error();
                return 0;
            }
            /* A peer that closes without close_notify ends the stream too; the request framing
             * (a newline, a blank line) says whether what came is complete. */
            if (SSL_get_error(io->ssl, r) == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
                return 0;
            w = ssl_wait(io, r, d);
            if (w < 0)
                return w;
        } else {
            ssize_t r = read(io->fd, p, cap);
            if (r >= 0)
                return r;
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return err_set(d, ERR_IO, "read: %s", strerror(errno));
            if (wait_fd(io, POLLIN, d) < 0)
                return ERR_TIMEOUT;
        }
    }
}

int identity__io_read_until(identity__io_t *io, buf_t *b, const char *term, err_detail_t *d)
{
    char chunk[4096];
    size_t tlen = strlen(term);

    for (;;) {
        size_t room = b->max - b->len, scan_from;
        ssize_t r;
        int rc;

        if (room == 0)
            return err_set(d, ERR_TOO_LARGE, "message larger than %zu bytes", b->max);
        r = read_some(io, chunk, room < sizeof(chunk) ? room : sizeof(chunk), d);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return b->len > 0 ? 0 : err_set(d, ERR_CLOSED, "peer closed without sending");
        scan_from = b->len >= tlen ? b->len - tlen + 1 : 0;
        rc = buf_append(b, chunk, (size_t)r);
        if (rc < 0)
            return err_set(d, rc, "message too large");
        if (memmem(b->ptr + scan_from, b->len - scan_from, term, tlen) != NULL)
            return 0;
    }
}

int identity__io_write(identity__io_t *io, const void *p, size_t n, err_detail_t *d)
{
    const char *c = p;

    while (n > 0) {
        if (io->ssl != NULL) {
            int r, w;
            ERR_clear_error();
            r = SSL_write(io->ssl, c, n > INT32_MAX ? INT32_MAX : (int)n);
            if (r > 0) {
                c += r;
                n -= (size_t)r;
                continue;
            }
            w = ssl_wait(io, r, d);
            if (w < 0)
                return w;
        } else {
            ssize_t r = send(io->fd, c, n, MSG_NOSIGNAL);
            if (r > 0) {
                c += r;
                n -= (size_t)r;
                continue;
            }
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return err_set(d, ERR_IO, "write: %s", strerror(errno));
            if (wait_fd(io, POLLOUT, d) < 0)
                return ERR_TIMEOUT;
        }
    }
    return 0;
}

void identity__io_finish(identity__io_t *io)
{
    if (io->ssl != NULL) {
        ERR_clear_error();
        /* One call sends our close_notify; we do not wait for the peer's. */
        (void)SSL_shutdown(io->ssl);
        ERR_clear_error();
    }
    shutdown(io->fd, SHUT_WR);
}
