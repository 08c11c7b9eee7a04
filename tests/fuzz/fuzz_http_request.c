/*
 * fuzz_http_request — the HTTP/1.1 server (src/net/server.c) and Dapr invoke routing
 * (src/invoke/route.c) on arbitrary client bytes, over a real connection.
 *
 * One worker lives for the whole run. Each input is sent twice, each time on a fresh socketpair
 * whose server end the worker adopts: first in one write, then split in two writes at a point
 * derived from the first byte (the loop turns in between, so the parser must resume). Once the
 * server has gone quiet the client half-closes (EOF means the client went away, so it must not
 * race queued responses), and the loop runs until the server has closed its end. The handler
 * parses the head with invoke_route_parse and invoke_url_split, reads (or refuses) the body, and
 * answers in one of three ways chosen from the head: a sized response after the body, a chunked
 * (or, for HTTP/1.0, until-close) response after the body, or a sized response without reading the
 * body.
 *
 * Invariants checked beyond "no crash, no leak":
 * - every head the handler receives is well formed: URL, names, values, framing and counts within
 *   the worker's limits, no conflicting framing, exactly one Host on HTTP/1.1;
 * - requests on one connection reach the handler one at a time, and a sized body arrives whole;
 * - a 2xx answer goes only to a request whose route parsed, with a target free of control bytes
 *   and spaces, and a clean method (no "." or ".." segment, no '?', '#' or control byte);
 * - the bytes sent back start with "HTTP/1.x NNN " and parse as a sequence of responses: those
 *   the handler sent, in order, then at most one error response of the server's own, then nothing;
 * - splitting the input does not change the reply, except for which error the server answers
 *   a head with several problems, and when the bounded pipelining buffer overflowed (which
 *   depends on how the bytes arrived);
 * - after each connection, nothing is counted active or open and all memory is given back.
 */
#include <errno.h>
#include <fcntl.h>
#include <http_parser.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"
#include "net/net_int.h"
#include "fuzz.h"

#define MAX_SENT 4096               /* responses remembered per connection */
#define MAX_OUT_BYTES (1024 * 1024) /* reply bytes kept per connection */
#define CHECK_OUT_BYTES (64 * 1024) /* above this, queued writes may be cut by the close */
#define MAX_TURNS 20000             /* loop turns per connection before we call it a hang */
#define QUIET_TURNS 4               /* silent loop turns before the client half-closes */
#define NOT_COMPARABLE SIZE_MAX     /* check_reply: the reply may differ between two runs */

/* One response the handler sent. */
typedef struct sent {
    int status;    /* status code */
    bool head_req; /* answered a HEAD request: no body follows the head */
} sent_t;

/* What the handler knows about the connection being fuzzed (one at a time). */
typedef struct fuzz_conn {
    sent_t sent[MAX_SENT]; /* responses sent, in order */
    size_t sent_count;     /* entries used (excess responses are not remembered) */
    bool overflowed;       /* more than MAX_SENT responses */
    bool in_request;       /* a request is with the handler */
    int mode;              /* how the current request is answered (0, 1, 2) */
    int status;            /* its status */
    bool head_req;         /* it is a HEAD request */
    char text[160];        /* its response body */
    int64_t body_bytes;    /* request body bytes received */
} fuzz_conn_t;

static net_worker_t *worker;
static fuzz_conn_t fc;

/* ---- the handler ----------------------------------------------------------------------------- */

static bool tchar(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* A head handed to the handler must be within limits and unambiguous. */
static void check_head(const net_head_t *h, const net_limits_t *l)
{
    const net_header_t *cl = net_head_get(h, "content-length");
    const net_header_t *te = net_head_get(h, "transfer-encoding");
    size_t bytes = h->url_len;

    CHECK(h->url != NULL && h->url_len > 0 && h->url_len <= l->max_url_bytes);
    CHECK(strlen(h->url) == h->url_len);
    for (size_t i = 0; i < h->url_len; i++)
        CHECK((unsigned char)h->url[i] > 0x20 && (unsigned char)h->url[i] != 0x7f);
    CHECK(h->http_minor == 0 || h->http_minor == 1);
    CHECK(h->method != HTTP_CONNECT);
    CHECK(h->header_count <= l->max_header_count);
    for (size_t i = 0; i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        CHECK(f->name_len > 0);
        for (size_t j = 0; j < f->name_len; j++)
            CHECK(tchar((unsigned char)f->name[j]));
        for (size_t j = 0; j < f->value_len; j++)
            CHECK(f->value[j] != '\0' && f->value[j] != '\r' && f->value[j] != '\n');
        if (f->value_len > 0) {
            CHECK(f->value[0] != ' ' && f->value[0] != '\t');
            CHECK(f->value[f->value_len - 1] != ' ' && f->value[f->value_len - 1] != '\t');
        }
        bytes += f->name_len + f->value_len;
    }
    CHECK(bytes <= l->max_head_bytes);
    if (h->http_minor == 1)
        CHECK(net_head_count(h, "host") == 1);
    CHECK(cl == NULL || te == NULL);
    CHECK(net_head_count(h, "transfer-encoding") <= 1);
    CHECK(net_head_count(h, "content-length") <= 1);
    CHECK(h->chunked == (te != NULL));
    if (te != NULL)
        CHECK(str_ieq(te->value, te->value_len, "chunked"));
    if (cl != NULL) {
        uint64_t v = 0;
        CHECK(str_u64(cl->value, cl->value_len, UINT64_MAX, &v) == 0);
        CHECK(h->content_length >= 0 && (uint64_t)h->content_length == v);
    } else {
        CHECK(h->content_length == -1);
    }
}

/* A route that earns a 2xx names a target and a method with no way out of the app's namespace. */
static void check_route(const invoke_route_t *rt)
{
    const char *m = buf_ptr(&rt->method);
    size_t n = rt->method.len, i = 0;

    CHECK(rt->target[0] != '\0' && strlen(rt->target) < sizeof(rt->target));
    for (const char *t = rt->target; *t != '\0'; t++)
        CHECK((unsigned char)*t > 0x20 && (unsigned char)*t != 0x7f);
    for (size_t k = 0; k < n; k++) {
        unsigned char ch = (unsigned char)m[k];
        CHECK(ch >= 0x20 && ch != 0x7f && ch != '?' && ch != '#');
    }
    while (i < n) {
        size_t j = i;
        while (j < n && m[j] != '/')
            j++;
        CHECK(!str_eq(m + i, j - i, ".") && !str_eq(m + i, j - i, ".."));
        i = j + 1;
    }
}

/* Notes a response that went out (the request itself may be gone by now). */
static void remember(int status)
{
    if (fc.sent_count == MAX_SENT) {
        fc.overflowed = true;
        return;
    }
    fc.sent[fc.sent_count++] = (sent_t){.status = status, .head_req = fc.head_req};
}

/* Sends the answer prepared in fc (modes 0 and 2: sized; mode 1: chunked or until close). */
static void answer(net_sreq_t *r)
{
    size_t n = strlen(fc.text);

    fc.in_request = false;
    if (fc.mode != 1) {
        if (net_sreq_respond_simple(r, fc.status, "text/plain", fc.text, n) == 0)
            remember(fc.status);
        return;
    }
    if (net_sreq_respond(r, fc.status, NULL, -1) != 0) {
        net_sreq_abort(r);
        return;
    }
    remember(fc.status);
    if (net_sreq_write(r, fc.text, n / 2) != 0 || net_sreq_write(r, fc.text + n / 2, n - n / 2)) {
        net_sreq_abort(r);
        return;
    }
    net_sreq_end(r);
}

static void on_body(net_sreq_t *r, const char *p, size_t n, void *ctx)
{
    const net_head_t *h = net_sreq_head(r);

    (void)p;
    (void)ctx;
    CHECK(fc.in_request);
    fc.body_bytes += (int64_t)n;
    if (h->content_length >= 0)
        CHECK(fc.body_bytes <= h->content_length);
}

static void on_body_end(net_sreq_t *r, void *ctx)
{
    const net_head_t *h = net_sreq_head(r);

    (void)ctx;
    CHECK(fc.in_request);
    if (h->content_length >= 0)
        CHECK(fc.body_bytes == h->content_length);
    answer(r);
}

static void on_close(net_sreq_t *r, int status, void *ctx)
{
    (void)r;
    (void)status;
    (void)ctx;
    fc.in_request = false;
}

static void on_drain(net_sreq_t *r, void *ctx)
{
    (void)r;
    (void)ctx;
}

static const net_sreq_body_cbs_t body_cbs = {
    .on_body = on_body, .on_body_end = on_body_end, .on_drain = on_drain, .on_close = on_close};

static void on_request(net_sreq_t *r, void *ctx)
{
    const net_head_t *h = net_sreq_head(r);
    invoke_route_t rt;
    err_detail_t d = {{0}};
    buf_t path;
    const char *q = NULL;
    size_t qlen = 0;
    int rc, src;

    (void)ctx;
    CHECK(!fc.in_request);
    check_head(h, net_worker_limits(worker));
    fc.in_request = true;
    fc.body_bytes = 0;
    fc.head_req = h->method == HTTP_HEAD;

    buf_init(&path, 16384);
    src = invoke_url_split(h->url, h->url_len, &path, &q, &qlen, NULL);
    if (src == 0) {
        CHECK(path.len > 0 && path.ptr[0] == '/');
        CHECK(q == NULL || (q >= h->url && q + qlen <= h->url + h->url_len));
    }
    buf_free(&path);

    invoke_route_init(&rt);
    rc = invoke_route_parse(h, &rt, &d);
    if (src < 0)
        CHECK(rc == ERR_NET_BAD_REQUEST);
    if (rc == 0) {
        check_route(&rt);
        fc.status = 200;
        snprintf(fc.text, sizeof(fc.text), "target=%.64s method=%zu:%.32s\n", rt.target,
                 rt.method.len, buf_ptr(&rt.method));
    } else {
        CHECK(rc < 0 && d.msg[0] != '\0');
        fc.status = rc == ERR_INVOKE_NO_APP_ID ? 404 : 400;
        snprintf(fc.text, sizeof(fc.text), "%.40s: %.100s\n", err_name(rc), d.msg);
    }
    invoke_route_free(&rt);

    fc.mode = (int)((h->url_len + h->header_count) % 3);
    if (fc.mode == 2) {
        net_sreq_watch(r, &body_cbs, NULL);
        answer(r);
        return;
    }
    net_sreq_read_body(r, &body_cbs, NULL);
}

static const net_server_cbs_t server_cbs = {.on_request = on_request};

/* ---- checking the reply ---------------------------------------------------------------------- */

/* State of the response parser run over what the client received. */
typedef struct reply {
    const char *out;   /* the bytes parsed */
    size_t finals;     /* final (non-1xx) responses seen */
    bool after_reject; /* the server's own error response was seen */
    size_t reason_at;  /* offset of the reason phrase of the latest status line */
    size_t key_len;    /* bytes that must not depend on how the input was split */
} reply_t;

static int on_resp_status(http_parser *p, const char *at, size_t n)
{
    reply_t *rp = p->data;

    (void)n;
    rp->reason_at = (size_t)(at - rp->out);
    return 0;
}

static int on_resp_headers(http_parser *p)
{
    reply_t *rp = p->data;
    int status = (int)p->status_code;

    if (status >= 100 && status < 200) {
        CHECK(status == 100);
        return 0;
    }
    CHECK(!rp->after_reject);
    if (rp->finals < fc.sent_count) {
        const sent_t *s = &fc.sent[rp->finals++];
        CHECK(status == s->status);
        return s->head_req ? 1 : 0;
    }
    /* Not one of the handler's: a request the server refused itself, after which it closes. */
    CHECK(!fc.overflowed);
    CHECK(status == 400 || status == 408 || status == 413 || status == 414 || status == 431 ||
          status == 501 || status == 503 || status == 505);
    rp->finals++;
    rp->after_reject = true;
    /* With several problems in one head, which check sees one first (http_parser's byte checks or
     * ours, run from its callbacks) can depend on where the input was split, and so can the
     * status; that the request was refused may not. "HTTP/1.x NNN " precedes the reason. */
    rp->key_len = rp->reason_at - 13;
    return 0;
}

/* The reply starts with a status line and parses as the responses the handler and server sent.
 * Returns how many of its bytes must be the same however the input is split, or NOT_COMPARABLE;
 * @p refused tells whether the server refused a request itself. */
static size_t check_reply(const char *out, size_t n, bool complete, bool *refused)
{
    http_parser_settings s = {.on_status = on_resp_status, .on_headers_complete = on_resp_headers};
    http_parser p;
    reply_t rp = {.out = out, .key_len = n};

    if (getenv("FUZZ_HTTP_DUMP") != NULL)
        fprintf(stderr, "---- reply (%zu bytes, %zu sent by the handler)\n%.*s\n----\n", n,
                fc.sent_count, (int)n, out);
    if (n == 0)
        return 0;
    CHECK(n >= 13 && memcmp(out, "HTTP/1.", 7) == 0 && (out[7] == '0' || out[7] == '1'));
    CHECK(out[8] == ' ' && out[9] >= '1' && out[9] <= '5' && out[10] >= '0' && out[10] <= '9' &&
          out[11] >= '0' && out[11] <= '9' && out[12] == ' ');
    if (!complete || fc.overflowed)
        return NOT_COMPARABLE;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = &rp;
    CHECK(http_parser_execute(&p, &s, out, n) == n);
    CHECK(HTTP_PARSER_ERRNO(&p) == HPE_OK);
    http_parser_execute(&p, &s, NULL, 0); /* EOF ends an until-close body */
    CHECK(HTTP_PARSER_ERRNO(&p) == HPE_OK);
    CHECK(rp.finals >= fc.sent_count);
    *refused = rp.after_reject;
    if (memmem(out, n, "too much pipelined data", 23) != NULL)
        return NOT_COMPARABLE; /* how much was buffered depends on how the bytes arrived */
    return rp.key_len;
}

/* ---- driving one connection ------------------------------------------------------------------ */

static void cleanup(void)
{
    if (worker == NULL)
        return;
    net_worker_stop_async(worker);
    net_worker_run(worker);
    net_worker_free(worker);
    worker = NULL;
}

static void setup(void)
{
    net_limits_t l;

    if (worker != NULL)
        return;
    signal(SIGPIPE, SIG_IGN);
    log_init(LOG_FATAL, false, "fuzz");
    net_limits_defaults(&l);
    l.max_url_bytes = 512;
    l.max_head_bytes = 2048;
    l.max_header_count = 16;
    l.high_water_bytes = 256;
    l.low_water_bytes = 64;
    l.max_connections = 4;
    worker = net_worker_new(&l, 0);
    CHECK(worker != NULL);
    atexit(cleanup);
}

/* Sends [data, data+size) in two writes split at @p split, half-closes when the server is quiet,
 * and collects the reply in @p out until the server closes. Returns whether the reply is whole
 * (not cut by our bounds). */
static bool exchange(const uint8_t *data, size_t size, size_t split, buf_t *out)
{
    uv_loop_t *loop = net_worker_loop(worker);
    int sv[2];
    size_t sent = 0;
    bool shut = false, eof = false, whole = true;
    int quiet = 0; /* loop turns in a row without a reply byte, once all input is sent */

    memset(&fc, 0, sizeof(fc));
    CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    CHECK(fcntl(sv[1], F_SETFL, fcntl(sv[1], F_GETFL) | O_NONBLOCK) == 0);
    CHECK(net__adopt_fd(worker, sv[0], &server_cbs, NULL) == 0);
    for (int turn = 0; turn < MAX_TURNS && !eof; turn++) {
        size_t upto = turn == 0 ? split : size;
        char tmp[16384];
        ssize_t n;

        if (sent < upto) {
            n = send(sv[1], data + sent, upto - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR)
                sent = size; /* the server is gone; what is left will never be read */
        }
        /* The server takes EOF as the client going away and drops queued output, so the
         * client half-closes only once the server has nothing left to say. */
        if (sent == size && !shut && quiet >= QUIET_TURNS && net__list_empty(&worker->dirty)) {
            shutdown(sv[1], SHUT_WR);
            shut = true;
        }
        uv_run(loop, UV_RUN_NOWAIT);
        quiet = sent == size ? quiet + 1 : 0;
        while ((n = recv(sv[1], tmp, sizeof(tmp), MSG_DONTWAIT)) > 0) {
            quiet = 0;
            if (out->len + (size_t)n > MAX_OUT_BYTES)
                whole = false;
            else if (buf_append(out, tmp, (size_t)n) < 0)
                abort();
        }
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            eof = true;
    }
    /* After the client half-closed, nothing may keep the server from closing its end. */
    CHECK(eof);
    close(sv[1]);
    for (int i = 0; i < 4; i++)
        uv_run(loop, UV_RUN_NOWAIT);
    CHECK(worker->conn_count == 0 && net__list_empty(&worker->conns));
    CHECK(net_worker_active(worker) == 0);
    CHECK(!fc.in_request);
    return whole && out->len <= CHECK_OUT_BYTES;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t split = size > 0 ? (size_t)data[0] * size / 255 : 0;
    buf_t one, two;
    size_t key1, key2, before;
    bool whole, refused1 = false, refused2 = false;

    setup();
    before = mem_used();
    buf_init(&one, MAX_OUT_BYTES);
    buf_init(&two, MAX_OUT_BYTES);

    whole = exchange(data, size, size, &one);
    key1 = check_reply(buf_ptr(&one), one.len, whole, &refused1);
    whole = exchange(data, size, split, &two);
    key2 = check_reply(buf_ptr(&two), two.len, whole, &refused2);
    if (key1 != NOT_COMPARABLE && key2 != NOT_COMPARABLE) {
        CHECK(key1 == key2 && memcmp(buf_ptr(&one), buf_ptr(&two), key1) == 0);
        CHECK(refused1 == refused2);
    }

    buf_free(&one);
    buf_free(&two);
    CHECK(mem_used() == before);
    return 0;
}
