/* A blocking HTTP/1.1 client for control-plane fetches (see fetch.h). */
#include "policy/fetch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/str.h"

int pol_url_split(const char *url, bool *tls, char *host, size_t host_len, int *port, char *path,
                  size_t path_len)
{
    const char *p, *h, *he, *slash;
    size_t hl;

    if (strncasecmp(url, "https://", 8) == 0) {
        *tls = true;
        p = url + 8;
        *port = 443;
    } else if (strncasecmp(url, "http://", 7) == 0) {
        *tls = false;
        p = url + 7;
        *port = 80;
    } else {
        return ERR_INVAL;
    }
    slash = p + strcspn(p, "/?#");
    if (memchr(p, '@', (size_t)(slash - p)) != NULL)
        return ERR_INVAL; /* no userinfo: it would end up in logs */
    h = p;
    if (*h == '[') {
        he = memchr(h, ']', (size_t)(slash - h));
        if (he == NULL)
            return ERR_INVAL;
        h++;
        hl = (size_t)(he - h);
        he++;
    } else {
        he = memchr(h, ':', (size_t)(slash - h));
        if (he == NULL)
            he = slash;
        hl = (size_t)(he - h);
    }
    if (hl == 0 || hl >= host_len)
        return ERR_INVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (he < slash) {
        char *end;
        long v;
        if (*he != ':')
            return ERR_INVAL;
        v = strtol(he + 1, &end, 10);
        if (end != slash || v < 1 || v > 65535)
            return ERR_INVAL;
        *port = (int)v;
    }
    if (*slash == '#' || *slash == '\0') {
        str_copy(path, path_len, "/");
        return 0;
    }
    if (snprintf(path, path_len, "%s%s", *slash == '?' ? "/" : "", slash) >= (int)path_len)
        return ERR_INVAL;
    path[strcspn(path, "#")] = '\0';
    return 0;
}

bool pol_host_is_loopback(const char *host)
{
    struct in_addr a4;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "::1") == 0)
        return true;
    return inet_pton(AF_INET, host, &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

void pol_fetch_resp_free(pol_fetch_resp_t *r)
{
    buf_free(&r->body);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Connects to host:port before @p deadline; returns a blocking socket with I/O timeouts set. */
static int dial(const char *host, int port, int64_t deadline, err_detail_t *d)
{
    struct addrinfo hints = {0}, *res = NULL, *ai;
    char ports[8];
    int fd = -1, rc;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_family = AF_UNSPEC;
    snprintf(ports, sizeof(ports), "%d", port);
    rc = getaddrinfo(host, ports, &hints, &res);
    if (rc != 0)
        return err_set(d, ERR_NET_CONNECT, "cannot resolve %s: %s", host, gai_strerror(rc));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        struct pollfd pfd;
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        int64_t left = deadline - now_ms();
        struct timeval tv;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS && left > 0) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            rc = poll(&pfd, 1, (int)left) == 1 &&
                         getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 && soerr == 0
                     ? 0
                     : -1;
        }
        if (rc == 0) {
            left = deadline - now_ms();
            if (left < 1)
                left = 1;
            tv.tv_sec = left / 1000;
            tv.tv_usec = (left % 1000) * 1000;
            (void)fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
            (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
            break;
        }
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0)
        return err_set(d, ERR_NET_CONNECT, "cannot connect to %s:%d", host, port);
    return fd;
}

typedef struct conn {
    int fd;
    SSL_CTX *ctx;
    SSL *ssl;
} conn_t;

static int conn_tls(conn_t *c, const char *host, err_detail_t *d)
{
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1;

    c->ctx = SSL_CTX_new(TLS_client_method());
    if (c->ctx == NULL)
        return err_set(d, ERR_NET_TLS, "TLS setup failed");
    (void)SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
    if (SSL_CTX_set_default_verify_paths(c->ctx) != 1)
        return err_set(d, ERR_NET_TLS, "no system trust store");
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
        return err_set(d, ERR_NET_TLS, "TLS setup failed");
    if (is_ip) {
        if (X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), host) != 1)
            return err_set(d, ERR_NET_TLS, "TLS setup failed");
    } else if (SSL_set_tlsext_host_name(c->ssl, host) != 1 || SSL_set1_host(c->ssl, host) != 1) {
        return err_set(d, ERR_NET_TLS, "TLS setup failed");
    }
    if (SSL_connect(c->ssl) != 1) {
        long vr = SSL_get_verify_result(c->ssl);
        ERR_clear_error();
        return err_set(d, ERR_NET_TLS, "TLS handshake with %s failed%s%s", host,
                       vr != X509_V_OK ? ": " : "",
                       vr != X509_V_OK ? X509_verify_cert_error_string(vr) : "");
    }
    return 0;
}

static int conn_write(conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            size_t done = 0;
            if (SSL_write_ex(c->ssl, p, n, &done) != 1) {
                ERR_clear_error();
                return -1;
            }
            w = (ssize_t)done;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads some bytes: >0, 0 at end of stream, <0 on error or timeout. */
static ssize_t conn_read(conn_t *c, char *p, size_t n)
{
    if (c->ssl != NULL) {
        size_t got = 0;
        int rc = SSL_read_ex(c->ssl, p, n, &got);
        if (rc == 1)
            return (ssize_t)got;
        rc = SSL_get_error(c->ssl, rc);
        ERR_clear_error();
        return rc == SSL_ERROR_ZERO_RETURN ? 0 : -1;
    }
    for (;;) {
        ssize_t r = recv(c->fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

static void conn_close(conn_t *c)
{
    if (c->ssl != NULL)
        SSL_free(c->ssl);
    if (c->ctx != NULL)
        SSL_CTX_free(c->ctx);
    if (c->fd >= 0)
        close(c->fd);
}

/* Response parsing state. */
typedef struct rstate {
    pol_fetch_resp_t *out;
    char field[32];
    size_t field_len;
    bool field_over;
    int which; /* 1 content-type, 2 cache-control */
    char cc[128];
    size_t cc_len;
    size_t ct_len;
    bool done;
    bool over;
} rstate_t;

static int on_field(http_parser *hp, const char *at, size_t n)
{
    rstate_t *s = hp->data;
    if (s->which != -1) { /* a new field starts */
        s->field_len = 0;
        s->field_over = false;
        s->which = -1;
    }
    if (s->field_len + n >= sizeof(s->field))
        s->field_over = true;
    else {
        memcpy(s->field + s->field_len, at, n);
        s->field_len += n;
    }
    return 0;
}

static int on_value(http_parser *hp, const char *at, size_t n)
{
    rstate_t *s = hp->data;
    char *dst = NULL;
    size_t cap = 0, *len = NULL;

    if (s->which == -1) {
        s->which = 0;
        if (!s->field_over && str_ieq(s->field, s->field_len, "content-type")) {
            s->which = 1;
            s->ct_len = 0;
        } else if (!s->field_over && str_ieq(s->field, s->field_len, "cache-control")) {
            s->which = 2;
            s->cc_len = 0;
        }
    }
    if (s->which == 1) {
        dst = s->out->content_type;
        cap = sizeof(s->out->content_type);
        len = &s->ct_len;
    } else if (s->which == 2) {
        dst = s->cc;
        cap = sizeof(s->cc);
        len = &s->cc_len;
    }
    if (dst != NULL) {
        size_t k = n < cap - 1 - *len ? n : cap - 1 - *len;
        memcpy(dst + *len, at, k);
        *len += k;
        dst[*len] = '\0';
    }
    return 0;
}

static int on_headers_complete(http_parser *hp)
{
    rstate_t *s = hp->data;
    const char *m = strstr(s->cc, "max-age=");
    s->out->status = (int)hp->status_code;
    if (m != NULL)
        s->out->max_age = strtol(m + 8, NULL, 10);
    return 0;
}

static int on_body(http_parser *hp, const char *at, size_t n)
{
    rstate_t *s = hp->data;
    if (buf_append(&s->out->body, at, n) < 0) {
        s->over = true;
        return 1;
    }
    return 0;
}

static int on_complete(http_parser *hp)
{
    rstate_t *s = hp->data;
    s->done = true;
    return 0;
}

int pol_fetch(const pol_fetch_req_t *r, pol_fetch_resp_t *out, err_detail_t *d)
{
    char host[256], path[2048];
    bool tls;
    int port, rc;
    int64_t deadline = now_ms() + (r->timeout_ms ? r->timeout_ms : POL_FETCH_TIMEOUT_MS);
    conn_t c = {.fd = -1};
    buf_t req;
    http_parser hp;
    http_parser_settings st = {0};
    rstate_t s = {0};
    char chunk[16384];

    memset(out, 0, sizeof(*out));
    buf_init(&out->body, POL_FETCH_BODY_MAX);
    out->max_age = -1;
    if (pol_url_split(r->url, &tls, host, sizeof(host), &port, path, sizeof(path)) < 0)
        return err_set(d, ERR_INVAL, "invalid URL");
    if (!tls && !r->allow_plain_remote && !pol_host_is_loopback(host))
        return err_set(d, ERR_INVAL, "plain http:// is only allowed to loopback hosts (%s)", host);
    buf_init(&req, 64 * 1024);
    rc = buf_printf(&req, "%s %s HTTP/1.1\r\nHost: %s%s%s", r->method, path,
                    strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "");
    if (rc == 0 && port != (tls ? 443 : 80))
        rc = buf_printf(&req, ":%d", port);
    rc = rc ? rc
            : buf_append_str(&req, "\r\nUser-Agent: outrigger/" OUTRIGGER_VERSION
                                   "\r\nAccept: application/json\r\nConnection: close\r\n");
    if (rc == 0 && r->body != NULL)
        rc =
            buf_printf(&req, "Content-Type: %s\r\nContent-Length: %zu\r\n",
                       r->content_type ? r->content_type : "application/octet-stream", r->body_len);
    for (size_t i = 0; rc == 0 && r->headers != NULL && r->headers[i] != NULL; i++)
        rc = buf_printf(&req, "%s\r\n", r->headers[i]);
    rc = rc ? rc : buf_append_str(&req, "\r\n");
    if (rc == 0 && r->body != NULL)
        rc = buf_append(&req, r->body, r->body_len);
    if (rc < 0) {
        buf_free(&req);
        return err_set(d, ERR_TOO_LARGE, "request to %s too large", host);
    }

    c.fd = dial(host, port, deadline, d);
    if (c.fd < 0) {
        rc = c.fd;
        goto out;
    }
    if (tls && (rc = conn_tls(&c, host, d)) < 0)
        goto out;
    if (conn_write(&c, req.ptr, req.len) < 0) {
        rc = err_set(d, ERR_IO, "sending the request to %s failed", host);
        goto out;
    }
    http_parser_init(&hp, HTTP_RESPONSE);
    hp.data = &s;
    s.out = out;
    s.which = 0;
    st.on_header_field = on_field;
    st.on_header_value = on_value;
    st.on_headers_complete = on_headers_complete;
    st.on_body = on_body;
    st.on_message_complete = on_complete;
    while (!s.done) {
        ssize_t n;
        if (now_ms() > deadline) {
            rc = err_set(d, ERR_TIMEOUT, "%s did not answer in time", host);
            goto out;
        }
        n = conn_read(&c, chunk, sizeof(chunk));
        if (n < 0) {
            rc = err_set(d, errno == EAGAIN ? ERR_TIMEOUT : ERR_IO, "reading from %s failed", host);
            goto out;
        }
        if ((size_t)http_parser_execute(&hp, &st, chunk, (size_t)n) != (size_t)n && !s.done) {
            rc = s.over ? err_set(d, ERR_TOO_LARGE, "response from %s too large", host)
                        : err_set(d, ERR_NET_BAD_RESPONSE, "malformed response from %s", host);
            goto out;
        }
        if (n == 0 && !s.done) {
            rc = err_set(d, ERR_NET_BAD_RESPONSE, "%s closed the connection early", host);
            goto out;
        }
    }
    rc = 0;
out:
    conn_close(&c);
    buf_free(&req);
    return rc;
}
