/*
 * The span exporter: one thread, off the request path, that every delay_ms drains the worker
 * rings and sends the spans in batches as OTLP/HTTP with JSON encoding (POST <path>,
 * Content-Type: application/json), over TLS when isSecure, and/or logs them (tracing.stdout).
 * Blocking I/O is fine here: a slow or dead collector only fills the rings, and a full ring drops
 * spans (counted) instead of making a request wait.
 */
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "observe/obs_int.h"

#define OTLP_BODY_MAX (16 * 1024 * 1024) /* one request's JSON */
#define RESP_MAX (1024 * 1024)           /* bytes of one collector response read */

/* Worst case of one span's JSON: every string field escaped at 6 bytes per byte (\u00XX), the
 * caller and callee ids, the span name made of two fields, plus the fixed text. */
#define SPAN_JSON_MAX (6 * (2 * sizeof(obs_span_t) + 2 * OBS_LABEL_MAX) + 4096)

/* The encoder writes through a cursor into room reserved once per span (buf_reserve): no bounds
 * check or length computation per piece. Literal pieces have their length at compile time. */
#define W_LIT(w, s)                                                                                \
    do {                                                                                           \
        memcpy((w), (s), sizeof(s) - 1);                                                           \
        (w) += sizeof(s) - 1;                                                                      \
    } while (0)

static char *w_hex(char *w, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        *w++ = digits[p[i] >> 4];
        *w++ = digits[p[i] & 15];
    }
    return w;
}

static char *w_u64(char *w, uint64_t v)
{
    static const char pairs[] =
        "00010203040506070809101112131415161718192021222324252627282930313233"
        "34353637383940414243444546474849505152535455565758596061626364656667"
        "6869707172737475767778798081828384858687888990919293949596979899";
    char tmp[24];
    size_t i = sizeof(tmp);
    while (v >= 100) { /* two digits per division: timestamps have 19 */
        size_t k = (size_t)(v % 100) * 2;
        v /= 100;
        tmp[--i] = pairs[k + 1];
        tmp[--i] = pairs[k];
    }
    if (v >= 10) {
        tmp[--i] = pairs[v * 2 + 1];
        tmp[--i] = pairs[v * 2];
    } else {
        tmp[--i] = (char)('0' + v);
    }
    memcpy(w, tmp + i, sizeof(tmp) - i);
    return w + (sizeof(tmp) - i);
}

/* Writes the NUL-terminated @p v JSON-escaped like buf_append_json_str (\" \\ and \u00XX for
 * control bytes and DEL); other bytes, UTF-8 included, pass as they are. */
static char *w_str(char *w, const char *v)
{
    /* 1 for the bytes that end the string (NUL) or need an escape. */
    static const uint8_t special[256] = {
        [0] = 1,  [1] = 1,  [2] = 1,  [3] = 1,  [4] = 1,   [5] = 1,    [6] = 1,
        [7] = 1,  [8] = 1,  [9] = 1,  [10] = 1, [11] = 1,  [12] = 1,   [13] = 1,
        [14] = 1, [15] = 1, [16] = 1, [17] = 1, [18] = 1,  [19] = 1,   [20] = 1,
        [21] = 1, [22] = 1, [23] = 1, [24] = 1, [25] = 1,  [26] = 1,   [27] = 1,
        [28] = 1, [29] = 1, [30] = 1, [31] = 1, ['"'] = 1, ['\\'] = 1, [0x7f] = 1};
    static const char digits[] = "0123456789abcdef";
    for (const unsigned char *p = (const unsigned char *)v;; p++) {
        unsigned char c = *p;
        if (!special[c]) {
            *w++ = (char)c;
        } else if (c == '\0') {
            return w;
        } else if (c == '"' || c == '\\') {
            *w++ = '\\';
            *w++ = (char)c;
        } else {
            W_LIT(w, "\\u00");
            *w++ = digits[c >> 4];
            *w++ = digits[c & 15];
        }
    }
}

/* One string attribute; nothing for an empty value. */
static char *w_attr(char *w, const char *key, size_t key_len, const char *v, bool *first)
{
    if (v == NULL || *v == '\0')
        return w;
    if (*first)
        W_LIT(w, "{\"key\":\"");
    else
        W_LIT(w, ",{\"key\":\"");
    memcpy(w, key, key_len);
    w += key_len;
    W_LIT(w, "\",\"value\":{\"stringValue\":\"");
    w = w_str(w, v);
    W_LIT(w, "\"}}");
    *first = false;
    return w;
}
#define W_ATTR(w, key, v, first) ((w) = w_attr((w), (key), sizeof(key) - 1, (v), (first)))
/* A string attribute whose key and value are literals that need no escaping. */
#define W_CONST_ATTR(w, key, v, first)                                                             \
    do {                                                                                           \
        if (*(first))                                                                              \
            W_LIT(w, "{\"key\":\"" key "\",\"value\":{\"stringValue\":\"" v "\"}}");               \
        else                                                                                       \
            W_LIT(w, ",{\"key\":\"" key "\",\"value\":{\"stringValue\":\"" v "\"}}");              \
        *(first) = false;                                                                          \
    } while (0)

/* Span name per the MCP semantic conventions ("{mcp.method.name} {target}"), else HTTP's
 * ("{method} {path}"). */
static void span_name(const obs_span_t *s, char *out, size_t n)
{
    const char *m = http_method_str((enum http_method)s->http_method);
    if (s->mcp_method[0] && s->mcp_tool[0])
        snprintf(out, n, "%s %s", s->mcp_method, s->mcp_tool);
    else if (s->mcp_method[0])
        snprintf(out, n, "%s", s->mcp_method);
    else
        snprintf(out, n, "%s %s", m, s->path[0] ? s->path : "/");
}

/* The span name written escaped, as span_name makes it. */
static char *w_name(char *w, const obs_span_t *s)
{
    if (s->mcp_method[0]) {
        w = w_str(w, s->mcp_method);
        if (s->mcp_tool[0]) {
            *w++ = ' ';
            w = w_str(w, s->mcp_tool);
        }
        return w;
    }
    w = w_str(w, http_method_str((enum http_method)s->http_method));
    *w++ = ' ';
    return w_str(w, s->path[0] ? s->path : "/");
}

static int span_json(const obs_t *o, const obs_span_t *s, buf_t *b)
{
    bool first = true, failed = s->error[0] != '\0' || s->status >= 500 || s->status == 0;
    const char *caller = s->side == OBS_SIDE_CALLEE ? s->peer_app : o->app_id;
    const char *callee =
        s->side == OBS_SIDE_CALLEE || s->side == OBS_SIDE_SELF ? o->app_id : s->peer_app;
    int rc = buf_reserve(b, SPAN_JSON_MAX);
    char *w;

    if (rc < 0)
        return rc;
    w = b->ptr + b->len;
    W_LIT(w, "{\"traceId\":\"");
    w = w_hex(w, s->trace_id, 16);
    W_LIT(w, "\",\"spanId\":\"");
    w = w_hex(w, s->span_id, 8);
    if (s->has_parent) {
        W_LIT(w, "\",\"parentSpanId\":\"");
        w = w_hex(w, s->parent_id, 8);
    }
    W_LIT(w, "\",\"name\":\"");
    w = w_name(w, s);
    if (s->side == OBS_SIDE_CALLEE)
        W_LIT(w, "\",\"kind\":2,\"startTimeUnixNano\":\"");
    else
        W_LIT(w, "\",\"kind\":3,\"startTimeUnixNano\":\"");
    w = w_u64(w, s->start_unix_ns);
    W_LIT(w, "\",\"endTimeUnixNano\":\"");
    w = w_u64(w, s->end_unix_ns);
    W_LIT(w, "\",\"attributes\":[");
    W_ATTR(w, "http.request.method", http_method_str((enum http_method)s->http_method), &first);
    W_ATTR(w, "url.path", s->path, &first);
    if (s->status > 0) {
        if (first)
            W_LIT(w, "{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"");
        else
            W_LIT(w, ",{\"key\":\"http.response.status_code\",\"value\":{\"intValue\":\"");
        w = w_u64(w, (uint64_t)s->status);
        W_LIT(w, "\"}}");
        first = false;
    }
    W_ATTR(w, "dapr.caller_app_id", caller, &first);
    W_ATTR(w, "dapr.callee_app_id", callee, &first);
    W_ATTR(w, "dapr.namespace", o->namespace_, &first);
    W_ATTR(w, "mcp.method.name", s->mcp_method, &first);
    W_ATTR(w, "mcp.session.id", s->mcp_session, &first);
    if (strcmp(s->mcp_method, "tools/call") == 0) {
        W_ATTR(w, "gen_ai.tool.name", s->mcp_tool, &first);
        W_CONST_ATTR(w, "gen_ai.operation.name", "execute_tool", &first);
    } else if (strcmp(s->mcp_method, "prompts/get") == 0) {
        W_ATTR(w, "gen_ai.prompt.name", s->mcp_tool, &first);
    } else if (strncmp(s->mcp_method, "resources/", 10) == 0) {
        W_ATTR(w, "mcp.resource.uri", s->mcp_tool, &first);
    }
    if (s->mcp_method[0]) {
        W_ATTR(w, "jsonrpc.request.id", s->mcp_request_id, &first);
        W_ATTR(w, "mcp.protocol.version", s->mcp_version, &first);
        W_CONST_ATTR(w, "network.transport", "tcp", &first);
        W_CONST_ATTR(w, "network.protocol.name", "http", &first);
        W_CONST_ATTR(w, "network.protocol.version", "1.1", &first);
    }
    if (failed && s->error[0] != '\0') {
        W_ATTR(w, "error.type", s->error, &first);
    } else if (failed && s->status > 0) {
        char st[16];
        snprintf(st, sizeof(st), "%d", s->status);
        W_ATTR(w, "error.type", st, &first);
    }
    *w++ = ']';
    if (failed) {
        W_LIT(w, ",\"status\":{\"code\":2,\"message\":\"");
        w = w_str(w, s->error);
        W_LIT(w, "\"}");
    }
    *w++ = '}';
    b->len = (size_t)(w - b->ptr);
    b->ptr[b->len] = '\0';
    return 0;
}

/* The envelope before the first span: resource and scope. */
static int otlp_begin(const obs_t *o, buf_t *b)
{
    int rc = buf_append_str(b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                               "\"service.name\",\"value\":{\"stringValue\":\"");
    rc = rc ? rc : buf_append_json_str(b, o->app_id, strlen(o->app_id));
    rc =
        rc ? rc
           : buf_append_str(b, "\"}},{\"key\":\"service.namespace\",\"value\":{\"stringValue\":\"");
    rc = rc ? rc : buf_append_json_str(b, o->namespace_, strlen(o->namespace_));
    return rc ? rc
              : buf_printf(b,
                           "\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"outrigger\",\"version\":"
                           "\"%s\"},\"spans\":[",
                           OUTRIGGER_VERSION);
}

int obs__otlp_json(const obs_t *o, const obs_span_t *s, size_t n, buf_t *b)
{
    int rc = otlp_begin(o, b);
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i > 0)
            rc = buf_append(b, ",", 1);
        rc = rc ? rc : span_json(o, &s[i], b);
    }
    return rc ? rc : buf_append_str(b, "]}]}]}");
}

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Connects to host:port within @p deadline (monotonic ms); returns the fd or -1. */
static int dial(const char *host, int port, uint64_t deadline)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char ps[16];
    int fd = -1;

    snprintf(ps, sizeof(ps), "%d", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0)
        return -1;
    for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
        struct pollfd pfd;
        int err = 0;
        socklen_t el = sizeof(err);
        uint64_t now = mono_ms();
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS)
            goto next;
        pfd = (struct pollfd){.fd = fd, .events = POLLOUT};
        if (now >= deadline || poll(&pfd, 1, (int)(deadline - now)) != 1)
            goto next;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0 || err != 0)
            goto next;
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        continue;
    next:
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    return fd;
}

/* The exporter's connection to the collector, kept alive between batches. */
typedef struct conn {
    int fd;   /* -1 when closed */
    SSL *ssl; /* NULL without TLS */
} conn_t;

static void conn_close(conn_t *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->ssl = NULL;
}

static int conn_open(obs_t *o, SSL_CTX *tls, conn_t *c)
{
    uint64_t deadline = mono_ms() + o->export_timeout_ms;
    struct timeval tv;

    c->fd = dial(o->endpoint_host, o->endpoint_port, deadline);
    if (c->fd < 0)
        return ERR_NET_CONNECT;
    /* Every later read and write waits at most the export timeout. */
    tv.tv_sec = (time_t)(o->export_timeout_ms / 1000);
    tv.tv_usec = (suseconds_t)(o->export_timeout_ms % 1000) * 1000;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (tls != NULL) {
        ERR_clear_error();
        c->ssl = SSL_new(tls);
        if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 ||
            SSL_set_tlsext_host_name(c->ssl, o->endpoint_host) != 1 ||
            SSL_set1_host(c->ssl, o->endpoint_host) != 1 || SSL_connect(c->ssl) != 1) {
            conn_close(c);
            return ERR_NET_TLS;
        }
    }
    return 0;
}

static int conn_write(conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w;
        if (c->ssl != NULL) {
            int r = SSL_write(c->ssl, p, (int)(n > 1 << 30 ? 1 << 30 : n));
            w = r > 0 ? r : -1;
        } else {
            w = send(c->fd, p, n, MSG_NOSIGNAL);
        }
        if (w <= 0)
            return ERR_IO;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t conn_read(void *arg, char *p, size_t n)
{
    conn_t *c = arg;
    if (c->ssl != NULL) {
        int r = SSL_read(c->ssl, p, (int)n);
        return r > 0 ? r : -1;
    }
    return recv(c->fd, p, n, 0);
}

/* Buffered reads of a response (the exporter reads little: a head and a small body). */
typedef struct reader {
    obs_read_fn read; /* the source */
    void *ctx;        /* its argument */
    char buf[4096];   /* bytes read and not consumed yet */
    size_t pos;       /* next byte of buf */
    size_t len;       /* bytes in buf */
    size_t total;     /* bytes read so far, bounded by RESP_MAX */
} reader_t;

/* Next byte, or -1 at end, error or past RESP_MAX. */
static int rd_byte(reader_t *r)
{
    if (r->pos == r->len) {
        ssize_t n;
        if (r->total >= RESP_MAX)
            return -1;
        /* Never past RESP_MAX, however the bytes are split. */
        n = r->read(r->ctx, r->buf,
                    RESP_MAX - r->total < sizeof(r->buf) ? RESP_MAX - r->total : sizeof(r->buf));
        if (n <= 0)
            return -1;
        r->pos = 0;
        r->len = (size_t)n;
        r->total += (size_t)n;
    }
    return (unsigned char)r->buf[r->pos++];
}

/* Reads a line (without CRLF) into @p out; false at end or when longer than @p n - 1. */
static bool rd_line(reader_t *r, char *out, size_t n)
{
    size_t k = 0;
    for (;;) {
        int ch = rd_byte(r);
        if (ch < 0)
            return false;
        if (ch == '\n') {
            if (k > 0 && out[k - 1] == '\r')
                k--;
            out[k] = '\0';
            return true;
        }
        if (k + 1 >= n)
            return false;
        out[k++] = (char)ch;
    }
}

static bool rd_skip(reader_t *r, uint64_t n)
{
    for (; n > 0; n--)
        if (rd_byte(r) < 0)
            return false;
    return true;
}

/* Reads one response: the status, then the body (Content-Length or chunked) skipped, so that the
 * connection can carry the next batch. */
int obs__read_response(obs_read_fn read, void *ctx, bool *reusable)
{
    reader_t r = {.read = read, .ctx = ctx};
    char line[1024];
    uint64_t length = 0;
    bool has_length = false, chunked = false, close_after = false;
    int status;

    *reusable = false;
    if (!rd_line(&r, line, sizeof(line)))
        return r.total == 0 ? ERR_NET_UPSTREAM_CLOSED : ERR_NET_BAD_RESPONSE;
    if (strlen(line) < 12 || memcmp(line, "HTTP/1.", 7) != 0 || line[9] < '1' || line[9] > '5' ||
        line[10] < '0' || line[10] > '9' || line[11] < '0' || line[11] > '9')
        return ERR_NET_BAD_RESPONSE;
    status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    for (int fields = 0;; fields++) {
        if (fields > 100 || !rd_line(&r, line, sizeof(line)))
            return status; /* unreadable head: the connection is not reused */
        if (line[0] == '\0')
            break;
        if (strncasecmp(line, "content-length:", 15) == 0) {
            const char *v = line + 15 + strspn(line + 15, " \t");
            has_length = str_u64(v, strspn(v, "0123456789"), RESP_MAX, &length) == 0;
            if (!has_length)
                return status;
        } else if (strncasecmp(line, "transfer-encoding:", 18) == 0) {
            chunked = strcasestr(line + 18, "chunked") != NULL;
        } else if (strncasecmp(line, "connection:", 11) == 0) {
            close_after = strcasestr(line + 11, "close") != NULL;
        }
    }
    if (chunked) {
        for (;;) {
            uint64_t size = 0;
            const char *p = line;
            if (!rd_line(&r, line, sizeof(line)))
                return status;
            for (; *p && strchr("0123456789abcdefABCDEF", *p); p++) {
                size = size * 16 + (uint64_t)(*p <= '9' ? *p - '0' : (*p | 0x20) - 'a' + 10);
                if (size > RESP_MAX)
                    return status;
            }
            if (p == line)
                return status;
            if (size == 0)
                break;
            if (!rd_skip(&r, size + 2))
                return status;
        }
        do /* trailer fields, up to the empty line */
            if (!rd_line(&r, line, sizeof(line)))
                return status;
        while (line[0] != '\0');
    } else if (has_length) {
        if (!rd_skip(&r, length))
            return status;
    } else {
        return status; /* the body ends at close */
    }
    /* Bytes after the body (a peer error) would be read as the next response: that one then
     * fails to parse and the batch is sent again on a new connection. */
    *reusable = !close_after;
    return status;
}

/* POSTs @p body on the kept connection (opening one when needed); a kept connection that the
 * collector closed meanwhile is replaced once. Returns the HTTP status, or a negative error. */
static int post(obs_t *o, SSL_CTX *tls, conn_t *c, const buf_t *body)
{
    char head[2048];
    int hl, status = ERR_IO;

    hl = snprintf(head, sizeof(head),
                  "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                  "Content-Length: %zu\r\nUser-Agent: outrigger/%s\r\n",
                  o->endpoint_path, o->endpoint_host, o->endpoint_port, body->len,
                  OUTRIGGER_VERSION);
    if (hl < 0 || (size_t)hl >= sizeof(head))
        return ERR_TOO_LARGE;
    for (int attempt = 0; attempt < 2; attempt++) {
        bool fresh = c->fd < 0, reusable = false;
        if (fresh && (status = conn_open(o, tls, c)) < 0)
            return status;
        if (conn_write(c, head, (size_t)hl) < 0 ||
            (o->headers && conn_write(c, o->headers, strlen(o->headers)) < 0) ||
            conn_write(c, "\r\n", 2) < 0 || conn_write(c, body->ptr, body->len) < 0)
            status = ERR_IO;
        else
            status = obs__read_response(conn_read, c, &reusable);
        if (!reusable)
            conn_close(c);
        if (status >= 0 || fresh)
            return status;
    }
    return status;
}

static void log_span(const obs_t *o, const obs_span_t *s)
{
    char tid[33], sid[17], pid[17] = "", name[OBS_ATTR_MAX + OBS_LABEL_MAX + 80], st[16], dur[32];
    obs_trace_t t;
    char tp[56];

    memcpy(t.trace_id, s->trace_id, 16);
    memcpy(t.span_id, s->span_id, 8);
    t.sampled = true;
    obs_traceparent_format(&t, tp);
    memcpy(tid, tp + 3, 32);
    tid[32] = '\0';
    memcpy(sid, tp + 36, 16);
    sid[16] = '\0';
    if (s->has_parent) {
        memcpy(t.span_id, s->parent_id, 8);
        obs_traceparent_format(&t, tp);
        memcpy(pid, tp + 36, 16);
        pid[16] = '\0';
    }
    span_name(s, name, sizeof(name));
    snprintf(st, sizeof(st), "%d", s->status);
    snprintf(dur, sizeof(dur), "%.3f", (double)(s->end_unix_ns - s->start_unix_ns) / 1e6);
    {
        log_kv_t kv[] = {
            {"name", name, false},
            {"trace_id", tid, false},
            {"span_id", sid, false},
            {"parent_span_id", pid, false},
            {"kind", s->side == OBS_SIDE_CALLEE ? "server" : "client", false},
            {"status", st, true},
            {"duration_ms", dur, true},
            {"caller", s->side == OBS_SIDE_CALLEE ? s->peer_app : o->app_id, false},
            {"callee",
             s->side == OBS_SIDE_CALLEE || s->side == OBS_SIDE_SELF ? o->app_id : s->peer_app,
             false},
            {"error", s->error, false},
        };
        log_kv(LOG_INFO, "trace", kv, sizeof(kv) / sizeof(kv[0]) - (s->error[0] ? 0 : 1), "span");
    }
}

/* The exporter's state. */
typedef struct exporter {
    obs_t *o;     /* what it exports */
    SSL_CTX *tls; /* NULL without isSecure */
    conn_t conn;  /* to the collector */
    buf_t body;   /* the batch being encoded, reused */
    size_t n;     /* spans in body */
    bool warned;  /* a failure was logged and no export has worked since */
} exporter_t;

/* Sends the batch in body (if any) and starts a new one. */
static void flush(exporter_t *x)
{
    static const char *const exported[] = {"exported"}, *const failed[] = {"failed"};
    obs_t *o = x->o;
    int status;

    if (x->n == 0)
        return;
    status = buf_append_str(&x->body, "]}]}]}") == 0 ? post(o, x->tls, &x->conn, &x->body)
                                                     : ERR_TOO_LARGE;
    if (status >= 200 && status < 300) {
        obs__count(o, -1, OBS_F_SPANS, exported, x->n);
        x->warned = false;
    } else {
        obs__count(o, -1, OBS_F_SPANS, failed, x->n);
        if (!x->warned) /* once per outage, not once per batch */
            log_warn("trace", "exporting %zu spans to %s:%d%s failed: %s", x->n, o->endpoint_host,
                     o->endpoint_port, o->endpoint_path,
                     status < 0 ? err_str(status) : "collector answered an error status");
        x->warned = true;
    }
    buf_reset(&x->body);
    x->n = 0;
}

/* Logs and/or encodes every span queued in @p r, straight from its slots, then frees them. */
static void drain(exporter_t *x, obs_ring_t *r)
{
    obs_t *o = x->o;
    size_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    size_t head = atomic_load_explicit(&r->head, memory_order_acquire);

    for (; tail < head; tail++) {
        const obs_span_t *s = &r->slots[tail % r->cap];
        if (o->stdout_spans)
            log_span(o, s);
        if (o->endpoint_host[0] != '\0') {
            int rc;
            if (x->n > 0 && x->body.len + SPAN_JSON_MAX >= OTLP_BODY_MAX) {
                /* No room for a worst-case span: send what is encoded (slots up to here). */
                atomic_store_explicit(&r->tail, tail, memory_order_release);
                flush(x);
            }
            rc = x->n == 0 ? otlp_begin(o, &x->body) : buf_append(&x->body, ",", 1);
            rc = rc ? rc : span_json(o, s, &x->body);
            if (rc == 0)
                x->n++;
            if (rc < 0 || x->n == o->batch) {
                /* The slots stay ours until the tail moves: release the encoded ones first. */
                atomic_store_explicit(&r->tail, tail + 1, memory_order_release);
                flush(x);
            }
        }
    }
    atomic_store_explicit(&r->tail, tail, memory_order_release);
}

/* Spans waiting in all rings (a snapshot; producers keep adding). */
static size_t queued(obs_t *o)
{
    size_t n = 0;
    for (int w = 0; w < o->workers; w++)
        n += atomic_load_explicit(&o->rings[w].head, memory_order_acquire) -
             atomic_load_explicit(&o->rings[w].tail, memory_order_relaxed);
    return n;
}

static void export_main(void *arg)
{
    exporter_t x = {.o = arg, .conn = {.fd = -1}};
    obs_t *o = x.o;
    uint64_t next = mono_ms() + o->delay_ms;

    buf_init(&x.body, OTLP_BODY_MAX);
    if (o->secure && o->endpoint_host[0]) {
        x.tls = SSL_CTX_new(TLS_client_method());
        if (x.tls != NULL) {
            SSL_CTX_set_verify(x.tls, SSL_VERIFY_PEER, NULL);
            if (o->ca_file[0] == '\0')
                SSL_CTX_set_default_verify_paths(x.tls);
            else if (SSL_CTX_load_verify_locations(x.tls, o->ca_file, NULL) != 1)
                log_warn("trace", "cannot read the collector CA %s: exports will fail", o->ca_file);
            SSL_CTX_set_min_proto_version(x.tls, TLS1_2_VERSION);
        }
    }
    for (;;) {
        bool stopping = atomic_load(&o->stop);
        /* Like OpenTelemetry's batch processor: export every delay_ms, or as soon as a full batch
         * is queued, so that a busy sidecar drops only what a slow collector cannot take. */
        if (!stopping && mono_ms() < next && queued(o) < o->batch) {
            struct timespec nap = {0, 20 * 1000 * 1000};
            nanosleep(&nap, NULL);
            continue;
        }
        next = mono_ms() + o->delay_ms;
        for (int w = 0; w < o->workers; w++)
            drain(&x, &o->rings[w]);
        flush(&x);
        if (stopping)
            break;
    }
    conn_close(&x.conn);
    SSL_CTX_free(x.tls);
    buf_free(&x.body);
}

int obs__export_start(obs_t *o)
{
    int rc;
    if (!o->tracing)
        return 0;
    rc = uv_thread_create(&o->thread, export_main, o);
    if (rc == 0)
        o->thread_started = true;
    return rc;
}

void obs__export_stop(obs_t *o)
{
    if (!o->thread_started)
        return;
    atomic_store(&o->stop, true);
    uv_thread_join(&o->thread);
    o->thread_started = false;
}
