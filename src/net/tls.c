/*
 * TLS over libuv streams with memory BIOs: ciphertext read from the socket is fed to OpenSSL,
 * plaintext comes out of SSL_read; plaintext to send goes through SSL_write and the resulting
 * ciphertext is taken from the write BIO and written to the socket by the stream's output.
 */
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "net/net_int.h"

struct net__tls {
    SSL *ssl;  /* owns both BIOs */
    BIO *rbio; /* network → OpenSSL */
    BIO *wbio; /* OpenSSL → network */
    bool done; /* handshake complete */
};

/* SSL_get_error needs an empty error queue before each SSL call. ERR_clear_error wipes all of the
 * thread's slots every time (it showed up per request under callgrind); the queue is nearly always
 * empty already, which ERR_peek_error sees for much less. */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* Puts OpenSSL's first queued reason into @p d and clears the queue. */
static int ssl_failure(err_detail_t *d, int code, const char *what)
{
    unsigned long e = ERR_get_error();
    char reason[200] = "";
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    return err_set(d, code, "%s%s%s", what, reason[0] ? ": " : "", reason);
}

int net__tls_new(net__tls_t **out, SSL_CTX *ctx, bool server)
{
    net__tls_t *t = mem_calloc(sizeof(*t));

    ERR_clear_error();
    t->ssl = SSL_new(ctx);
    t->rbio = BIO_new(BIO_s_mem());
    t->wbio = BIO_new(BIO_s_mem());
    if (t->ssl == NULL || t->rbio == NULL || t->wbio == NULL) {
        SSL_free(t->ssl);
        BIO_free(t->rbio);
        BIO_free(t->wbio);
        mem_free(t);
        ERR_clear_error();
        return ERR_NOMEM;
    }
    /* An empty read BIO means "need more data", not end of file. */
    BIO_set_mem_eof_return(t->rbio, -1);
    SSL_set_bio(t->ssl, t->rbio, t->wbio);
    /* Idle connections (long SSE streams) should not each hold OpenSSL's 16 KiB record buffers. */
    SSL_set_mode(t->ssl, SSL_MODE_RELEASE_BUFFERS);
    if (server)
        SSL_set_accept_state(t->ssl);
    else
        SSL_set_connect_state(t->ssl);
    *out = t;
    return 0;
}

void net__tls_free(net__tls_t *t)
{
    if (t == NULL)
        return;
    SSL_free(t->ssl);
    mem_free(t);
}

SSL *net__tls_ssl(net__tls_t *t)
{
    return t->ssl;
}

bool net__tls_done(const net__tls_t *t)
{
    return t->done;
}

int net__tls_feed(net__tls_t *t, const char *p, size_t n)
{
    while (n > 0) {
        int w = BIO_write(t->rbio, p, n > INT32_MAX ? INT32_MAX : (int)n);
        if (w <= 0)
            return ERR_NOMEM;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int net__tls_handshake(net__tls_t *t, err_detail_t *d)
{
    int rc;

    if (t->done)
        return 1;
    clear_errors();
    rc = SSL_do_handshake(t->ssl);
    if (rc == 1) {
        t->done = true;
        return 1;
    }
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    default:
        if (SSL_get_verify_result(t->ssl) != X509_V_OK)
            return err_set(d, ERR_NET_TLS, "TLS handshake failed: peer certificate: %s",
                           X509_verify_cert_error_string(SSL_get_verify_result(t->ssl)));
        return ssl_failure(d, ERR_NET_TLS, "TLS handshake failed");
    }
}

int net__tls_read(net__tls_t *t, char *buf, size_t cap, err_detail_t *d)
{
    int rc;

    clear_errors();
    rc = SSL_read(t->ssl, buf, cap > INT32_MAX ? INT32_MAX : (int)cap);
    if (rc > 0)
        return rc;
    switch (SSL_get_error(t->ssl, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        return 0;
    case SSL_ERROR_ZERO_RETURN:
        ERR_clear_error();
        return ERR_CLOSED; /* close_notify */
    default:
        return ssl_failure(d, ERR_NET_TLS, "TLS read failed");
    }
}

int net__tls_encrypt(net__tls_t *t, const char *p, size_t n)
{
    while (n > 0) {
        int chunk = n > 16384 ? 16384 : (int)n, rc;
        clear_errors();
        rc = SSL_write(t->ssl, p, chunk);
        if (rc <= 0) {
            ERR_clear_error();
            return ERR_NET_TLS;
        }
        p += rc;
        n -= (size_t)rc;
    }
    return 0;
}

size_t net__tls_out_pending(net__tls_t *t)
{
    return (size_t)BIO_ctrl_pending(t->wbio);
}

int net__tls_take_out(net__tls_t *t, buf_t *dst)
{
    /* Straight into dst: one pending query and one read, no bounce buffer. */
    size_t n = (size_t)BIO_ctrl_pending(t->wbio);
    while (n > 0) {
        int chunk = n > INT32_MAX ? INT32_MAX : (int)n, got;
        int rc = buf_reserve(dst, (size_t)chunk);
        if (rc < 0)
            return rc;
        got = BIO_read(t->wbio, dst->ptr + dst->len, chunk);
        if (got <= 0)
            break;
        dst->len += (size_t)got;
        dst->ptr[dst->len] = '\0';
        n -= (size_t)got;
    }
    return 0;
}

bool net__tls_has_input(net__tls_t *t)
{
    return SSL_pending(t->ssl) > 0 || BIO_ctrl_pending(t->rbio) > 0;
}
