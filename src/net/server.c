/*
 * HTTP/1.1 server connections: parse request heads strictly and within limits, hand each request
 * to the handler, deliver its body chunk by chunk under the handler's backpressure, and frame the
 * response. One request is in flight per connection; pipelined bytes wait in a bounded buffer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include <openssl/ssl.h>

#include "net/net_int.h"

typedef struct net_server {
    uv_tcp_t tcp;         /* listener */
    net__list_t node;     /* in worker->servers */
    net_worker_t *w;      /* owner */
    net_server_cbs_t cbs; /* handler */
    void *ctx;            /* handler context */
    bool closed;          /* uv_close called */
    const net_tls_t *tls; /* TLS required on every connection; NULL for plain HTTP */
} net_server_t;

/* Where a connection is in its request/response cycle. */
enum conn_state {
    CONN_IDLE,   /* waiting for the first byte of a request */
    CONN_HEAD,   /* reading a request head */
    CONN_ACTIVE, /* a request is with the handler */
};

struct net_sreq {
    struct net_conn *conn;   /* owner */
    net_head_t head;         /* parsed head, owned */
    net_sreq_body_cbs_t cbs; /* handler callbacks */
    void *ctx;               /* handler context */
    bool watching;           /* cbs installed */
    bool body_wanted;        /* handler asked for the body */
    bool body_done;          /* the whole request body was parsed */
    bool paused;             /* handler applied backpressure */
    bool responded;          /* response head written */
    bool resp_chunked;       /* response body is chunk-framed */
    bool resp_until_close;   /* response body ends at close (HTTP/1.0 client, no length) */
    bool resp_no_body;       /* HEAD, 1xx, 204 or 304: body bytes must not go out */
    bool ended;              /* handler ended or aborted the response */
    bool expect_continue;    /* client sent Expect: 100-continue */
    bool continue_sent;      /* we answered it */
    bool drain_wanted;       /* queue went over high water; tell the handler when it drops */
    bool dispatched;         /* the handler has been given the request */
    net_sreq_stats_t stats;  /* for the on_done hook */
};

typedef struct net_conn {
    uv_tcp_t tcp;              /* the client socket */
    net__deadline_t timer;     /* head / idle / body timeouts */
    int handles;               /* handles not yet closed; freed at 0 */
    net_worker_t *w;           /* owner */
    net_server_cbs_t cbs;      /* handler, copied: the listener may be closed (drain) and freed */
    void *ctx;                 /* handler context */
    net__list_t node;          /* in worker->conns */
    enum conn_state state;     /* see enum */
    size_t head_scanned;       /* bytes of the incomplete head last parsed (0: a new head) */
    uint64_t body_left;        /* Content-Length body bytes still to read */
    h1_chunked_t chunked;      /* chunked body decoder */
    net_sreq_t req;            /* the request in flight */
    buf_t pending;             /* received bytes not yet parsed */
    bool reading;              /* uv_read_start in effect */
    bool closing;              /* close requested */
    bool close_after_write;    /* close once the write queue empties */
    bool client_gone;          /* EOF or error from the client */
    bool counted_active;       /* counted in worker->active */
    net__out_t out;            /* coalesced output */
    const net_tls_t *tls_opts; /* TLS settings (borrowed from the listener); NULL = plain */
    net__tls_t *tls;           /* TLS state when tls_opts is set; owned */
    bool in_pump;              /* the decrypt loop is on the stack */
    char peer_id[NET_PEER_ID_MAX]; /* verified TLS peer identity, "" without TLS */
    bool in_feed;                  /* feed() is on the stack: it picks up new state itself */
    char peer_ip[INET6_ADDRSTRLEN];
} net_conn_t;

static void on_out_done(net__out_t *o, int status);
static void on_data(net_conn_t *c, const char *p, size_t n);
static void tls_pump(net_conn_t *c);
static void on_out_error(net__out_t *o, int status);
static void conn_close(net_conn_t *c);
static void conn_process(net_conn_t *c);

/* --- helpers ---------------------------------------------------------------------------------- */

static void set_active(net_conn_t *c, bool on)
{
    if (on != c->counted_active) {
        c->counted_active = on;
        if (on)
            atomic_fetch_add(&c->w->active, 1);
        else
            atomic_fetch_sub(&c->w->active, 1);
    }
}

static void arm_timer(net_conn_t *c, uint64_t ms);

static void start_reading(net_conn_t *c);

static void stop_reading(net_conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    net_conn_t *c = h->data;
    if (--c->handles > 0)
        return;
    net__tls_free(c->tls);
    net_head_free(&c->req.head);
    buf_free(&c->pending);
    mem_free(c);
}

/* Marks the request over and reports it to on_done once (only requests the handler was given). */
static void req_finish(net_conn_t *c, bool aborted)
{
    net_sreq_t *r = &c->req;
    bool was_ended = r->ended;

    r->ended = true;
    if (was_ended || !r->dispatched || c->cbs.on_done == NULL)
        return;
    r->stats.end_ns = uv_hrtime();
    r->stats.aborted = aborted;
    c->cbs.on_done(r, &r->stats, c->ctx);
}

/* Closes the connection. If the handler still holds the request, it is told (on_close) first and
 * the request is dead when that returns. */
static void conn_close(net_conn_t *c)
{
    if (c->closing)
        return;
    c->closing = true;
    stop_reading(c);
    if (c->state == CONN_ACTIVE && !c->req.ended) {
        req_finish(c, true);
        if (c->req.watching && c->req.cbs.on_close)
            c->req.cbs.on_close(&c->req, ERR_CLOSED, c->req.ctx);
    }
    set_active(c, false);
    net__out_release(&c->out);
    net__list_remove(&c->node);
    c->w->conn_count--;
    c->timer.timer.data = c; /* on_handle_closed finds the connection */
    uv_close((uv_handle_t *)&c->timer.timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_handle_closed);
}

/* Like conn_close, but output already queued (complete responses to earlier pipelined requests,
 * coalesced until the loop's flush) is written first; nothing more is read meanwhile. A request
 * still with the handler is told at once (on_close) and is dead when that returns. */
static void conn_close_after_output(net_conn_t *c)
{
    stop_reading(c);
    if (c->state == CONN_ACTIVE && !c->req.ended) {
        req_finish(c, true);
        if (c->req.watching && c->req.cbs.on_close)
            c->req.cbs.on_close(&c->req, ERR_CLOSED, c->req.ctx);
    }
    if (c->closing)
        return;
    c->close_after_write = true;
    if (net__out_queued(&c->out) == 0)
        conn_close(c);
}

/* Output was written (or failed): close when asked to after the last byte, or tell the handler
 * the queue drained below the low-water mark. */
static void on_out_done(net__out_t *o, int status)
{
    net_conn_t *c = container_of(o, net_conn_t, out);

    if (c->closing)
        return;
    if (status < 0) {
        c->client_gone = true;
        conn_close(c);
        return;
    }
    if (c->close_after_write && net__out_queued(&c->out) == 0) {
        conn_close(c);
        return;
    }
    if (c->state == CONN_ACTIVE && c->req.drain_wanted && !c->req.ended &&
        net__out_queued(&c->out) <= c->w->limits.low_water_bytes) {
        c->req.drain_wanted = false;
        if (c->req.cbs.on_drain)
            c->req.cbs.on_drain(&c->req, c->req.ctx);
    }
}

static void on_out_error(net__out_t *o, int status)
{
    net_conn_t *c = container_of(o, net_conn_t, out);
    (void)status;
    c->client_gone = true;
    conn_close(c);
}

/* Writes raw bytes (head, error page) to the client. */
static int conn_write(net_conn_t *c, const char *p, size_t n)
{
    int rc = net__out_add(c->w, &c->out, "", 0, p, n, "", 0);
    if (rc < 0)
        c->close_after_write = true;
    return rc;
}

/* Answers a request we refuse before the handler sees it, then closes. */
static void reject(net_conn_t *c, int status, const char *reason)
{
    char msg[512];
    int n;

    if (c->closing)
        return;
    if (reason == NULL)
        reason = "malformed request";
    n = snprintf(msg, sizeof(msg),
                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s\n",
                 status, http_status_str((enum http_status)status), strlen(reason) + 1, reason);
    log_debug("net", "rejecting request from %s: %d %s", c->peer_ip, status, reason);
    stop_reading(c);
    c->close_after_write = true;
    if (conn_write(c, msg, (size_t)n) < 0)
        conn_close(c);
}

/* --- parsing ---------------------------------------------------------------------------------- */

static void body_complete(net_conn_t *c)
{
    net_sreq_t *r = &c->req;

    net__deadline_clear(&c->timer);
    r->body_done = true;
    if (!r->ended && r->body_wanted && r->cbs.on_body_end)
        r->cbs.on_body_end(r, r->ctx);
}

static void deliver(net_conn_t *c, const char *p, size_t n)
{
    net_sreq_t *r = &c->req;

    arm_timer(c, c->w->limits.body_idle_timeout_ms);
    r->stats.in_bytes += n;
    if (!r->ended && r->cbs.on_body)
        r->cbs.on_body(r, p, n, r->ctx);
}

/* Body bytes of the request in flight from [p, p+n): returns how many were taken. Stops when the
 * handler pauses, the body ends, or the connection closes. */
static size_t feed_body(net_conn_t *c, const char *p, size_t n)
{
    net_sreq_t *r = &c->req;
    size_t off = 0;

    if (!r->head.chunked) {
        size_t take = n;
        if ((uint64_t)take > c->body_left)
            take = (size_t)c->body_left;
        c->body_left -= take;
        deliver(c, p, take);
        if (c->body_left == 0 && !c->closing)
            body_complete(c);
        return take;
    }
    while (off < n && !c->closing && !r->paused) {
        const char *d;
        size_t dn;
        long used = h1_chunked_decode(&c->chunked, p + off, n - off, &d, &dn);
        if (used < 0) {
            /* The head was accepted but the body framing broke: the handler is told the client is
             * gone (a truncated body must not be forwarded as complete). */
            log_debug("net", "bad request body from %s: %s", c->peer_ip, c->chunked.reason);
            c->client_gone = true;
            conn_close_after_output(c);
            return n;
        }
        off += (size_t)used;
        if (dn > 0)
            deliver(c, d, dn);
        if (h1_chunked_done(&c->chunked)) {
            /* Stop here whatever the handler does next (it may end the request, and the
             * connection move on to the next head). */
            if (!c->closing)
                body_complete(c);
            return off;
        }
    }
    return off;
}

/* A request head at [p, p+n) (the start of a head). Returns the bytes it took (the head, when
 * complete and dispatched) or 0 (incomplete, kept by the caller; or refused). */
static size_t feed_head(net_conn_t *c, const char *p, size_t n)
{
    net_worker_t *w = c->w;
    const net_limits_t *l = &w->limits;
    h1_limits_t hl = {.max_head_bytes = l->max_head_bytes, .max_url_bytes = l->max_url_bytes};
    h1_msg_t m;
    size_t blank = 0;
    int len;

    /* Empty lines before a request line (RFC 9112 §2.2) are dropped as they come, so that they
     * never pile up in the pending buffer. */
    while (blank < n &&
           (p[blank] == '\n' || (p[blank] == '\r' && blank + 1 < n && p[blank + 1] == '\n')))
        blank += p[blank] == '\n' ? 1 : 2;
    if (blank > 0) {
        c->head_scanned = 0;
        return blank;
    }
    /* A head is parsed whole at once on its first bytes (the common case); one that arrives in
     * pieces is parsed again only when worth it (h1_worth_parsing). */
    if (c->head_scanned != 0 && !h1_worth_parsing(p, n, &c->head_scanned))
        len = 0;
    else
        len = h1_parse_request(p, n, &hl, &m, w->fields, l->max_header_count);
    if (len == 0) {
        c->head_scanned = n;
        if (c->state == CONN_IDLE) {
            c->state = CONN_HEAD;
            arm_timer(c, l->head_timeout_ms);
        }
        return 0;
    }
    c->head_scanned = 0;
    if (len < 0) {
        reject(c, -len, m.reason);
        return 0;
    }
    net_head_free(&c->req.head);
    c->req = (net_sreq_t){.conn = c};
    if (net__head_adopt(&c->req.head, p, (size_t)len, &m, w->fields) < 0) {
        net_head_init(&c->req.head);
        reject(c, 503, "out of memory");
        return 0;
    }
    c->req.stats.start_ns = uv_hrtime();
    c->req.expect_continue = m.expect_continue;
    c->req.body_done = m.body == H1_BODY_NONE;
    c->body_left = m.body == H1_BODY_LENGTH ? (uint64_t)m.content_length : 0;
    if (m.body == H1_BODY_CHUNKED)
        h1_chunked_init(&c->chunked);
    c->state = CONN_ACTIVE;
    set_active(c, true);
    net__deadline_clear(&c->timer);
    c->req.dispatched = true;
    c->cbs.on_request(&c->req, c->ctx);
    return (size_t)len;
}

/* Takes what the connection's state allows from [p, p+n): request heads, and the body of the
 * request in flight while the handler wants it. Returns how many bytes were taken; the rest waits
 * (a head split across reads, a body not wanted yet, a pipelined request). Handlers run from
 * here and may change the state (respond, end, pause, close); the loop re-reads it each turn. */
static size_t feed(net_conn_t *c, const char *p, size_t n)
{
    size_t off = 0;

    c->in_feed = true;
    /* Once the connection is to close after its output (a refused head, a response that ends
     * the connection), nothing more is parsed: the rest is dropped. */
    while (off < n && !c->closing && !c->close_after_write) {
        size_t used;
        if (c->state != CONN_ACTIVE) {
            used = feed_head(c, p + off, n - off);
        } else {
            net_sreq_t *r = &c->req;
            if (r->body_done || !r->body_wanted || r->paused)
                break;
            used = feed_body(c, p + off, n - off);
        }
        if (used == 0)
            break; /* a head needs more bytes or was refused, or the handler paused */
        off += used;
    }
    c->in_feed = false;
    return c->closing || c->close_after_write ? n : off;
}

/* Feeds buffered bytes while they are taken, then decides whether to read more. */
static void conn_process(net_conn_t *c)
{
    if (c->in_feed)
        return; /* the feed loop further up the stack picks up the new state */
    while (!c->closing && c->pending.len > 0) {
        buf_t tmp = c->pending;
        size_t used;
        buf_init(&c->pending, tmp.max);
        used = feed(c, tmp.ptr, tmp.len);
        if (!c->closing && used < tmp.len &&
            buf_append(&c->pending, tmp.ptr + used, tmp.len - used) < 0)
            reject(c, 431, "too much pipelined data");
        buf_free(&tmp);
        if (used == 0)
            break;
    }
    if (c->closing)
        return;
    if (c->state == CONN_ACTIVE && !c->req.body_done && (!c->req.body_wanted || c->req.paused)) {
        stop_reading(c); /* backpressure: the handler is not ready for body bytes */
        return;
    }
    start_reading(c);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    net_conn_t *c = s->data;
    net_worker_t *w = c->w;

    if (nread < 0) {
        net__release_buf(w, buf);
        c->client_gone = true;
        /* EOF while a response is in flight is taken as the client going away (as nginx does
         * unless told otherwise): a proxy must cancel the upstream call, above all a long SSE
         * stream, rather than keep it open for a client that is gone. */
        conn_close(c);
        return;
    }
    if (nread == 0) {
        net__release_buf(w, buf);
        return;
    }
    if (c->tls != NULL) {
        int rc = net__tls_feed(c->tls, buf->base, (size_t)nread);
        net__release_buf(w, buf);
        if (rc < 0) {
            conn_close(c);
            return;
        }
        tls_pump(c);
        return;
    }
    on_data(c, buf->base, (size_t)nread);
    net__release_buf(w, buf);
}

/* Plaintext request bytes: take what the state allows, keep the rest, then decide about
 * reading more. */
static void on_data(net_conn_t *c, const char *p, size_t n)
{
    if (!c->in_feed && c->pending.len == 0) {
        size_t used = feed(c, p, n);
        if (!c->closing && used < n && buf_append(&c->pending, p + used, n - used) < 0)
            reject(c, 431, "too much pipelined data");
    } else if (buf_append(&c->pending, p, n) < 0) {
        reject(c, 431, "too much pipelined data");
    }
    if (!c->closing)
        conn_process(c);
}

/* Advances the TLS handshake, then decrypts as long as the connection wants input. */
static void tls_pump(net_conn_t *c)
{
    net_worker_t *w = c->w;
    err_detail_t d = {{0}};
    int rc;

    if (c->in_pump)
        return;
    c->in_pump = true;
    if (!net__tls_done(c->tls)) {
        rc = net__tls_handshake(c->tls, &d);
        net__out_kick(w, &c->out); /* handshake messages */
        if (rc == 0)
            goto out;
        if (rc > 0) {
            rc = c->tls_opts->check_peer(net__tls_ssl(c->tls), NULL, c->peer_id, sizeof(c->peer_id),
                                         c->tls_opts->arg, &d);
        }
        if (rc < 0) {
            log_warn("net", "refused TLS connection from %s: %s", c->peer_ip,
                     d.msg[0] ? d.msg : err_str(rc));
            c->in_pump = false;
            c->client_gone = true;
            /* Send the alert OpenSSL queued, then close. */
            stop_reading(c);
            c->close_after_write = true;
            if (net__tls_out_pending(c->tls) == 0)
                conn_close(c);
            else
                net__out_kick(w, &c->out);
            return;
        }
    }
    while (!c->closing && (c->reading || c->state != CONN_ACTIVE)) {
        rc = net__tls_read(c->tls, w->tls_buf, sizeof(w->tls_buf), &d);
        if (rc == 0)
            break;
        if (rc < 0) {
            c->client_gone = true;
            c->in_pump = false;
            conn_close(c);
            return;
        }
        on_data(c, w->tls_buf, (size_t)rc);
    }
out:
    c->in_pump = false;
}

static void start_reading(net_conn_t *c)
{
    /* Once the connection is to close after its output, nothing more is read: bytes after a
     * refused head must never be parsed as a request. */
    if (!c->reading && !c->closing && !c->client_gone && !c->close_after_write) {
        if (uv_read_start((uv_stream_t *)&c->tcp, net__alloc_cb, on_read) == 0)
            c->reading = true;
    }
    /* Input that arrived while paused may be waiting inside OpenSSL: no socket read will
     * announce it, so decrypt it now. Only once reading is on again: tls_pump decrypts only
     * while the connection reads (before this order, a request body paused for backpressure
     * could stop for good with its last records already inside OpenSSL). */
    if (c->tls != NULL && !c->in_pump && !c->closing && (c->reading || c->state != CONN_ACTIVE) &&
        net__tls_has_input(c->tls))
        tls_pump(c);
}

static void on_timer(void *arg)
{
    net_conn_t *c = arg;

    if (c->state == CONN_HEAD) {
        reject(c, 408, "request head not received in time");
        return;
    }
    if (c->state == CONN_ACTIVE)
        log_debug("net", "request body from %s idle for too long", c->peer_ip);
    conn_close(c);
}

static void arm_timer(net_conn_t *c, uint64_t ms)
{
    if (!c->closing)
        net__deadline_set(&c->timer, ms);
}

/* Prepares the connection for its next request after a response ended. */
static void conn_next(net_conn_t *c)
{
    net_head_free(&c->req.head);
    memset(&c->req, 0, sizeof(c->req));
    net_head_init(&c->req.head);
    c->state = CONN_IDLE;
    c->head_scanned = 0;
    set_active(c, false);
    arm_timer(c, c->w->limits.keepalive_timeout_ms);
    conn_process(c);
}

/* Allocates a connection of @p w served by @p cbs/@p ctx, with its handles initialised but no
 * socket yet. It is already counted and listed, so conn_close() undoes everything. */
static net_conn_t *conn_new(net_worker_t *w, const net_server_cbs_t *cbs, void *ctx)
{
    net_conn_t *c = mem_calloc(sizeof(*c));

    c->w = w;
    c->cbs = *cbs;
    c->ctx = ctx;
    c->handles = 2;
    uv_tcp_init(&w->loop, &c->tcp);
    net__deadline_init(&w->loop, &c->timer, on_timer, c);
    c->tcp.data = c;
    net__list_push(&w->conns, &c->node);
    w->conn_count++;
    net_head_init(&c->req.head);
    buf_init(&c->pending, w->limits.max_head_bytes);
    net__out_init(&c->out, (uv_stream_t *)&c->tcp, NET_OUT_MAX);
    c->out.on_error = on_out_error;
    c->out.on_done = on_out_done;
    return c;
}

/* Starts serving a connection whose socket is open: records the peer, enforces the connection
 * limit (503), then waits for the first request. */
static void conn_start(net_conn_t *c)
{
    net_worker_t *w = c->w;
    struct sockaddr_storage ss;
    int len = sizeof(ss);

    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
        if (ss.ss_family == AF_INET6)
            uv_ip6_name((struct sockaddr_in6 *)&ss, c->peer_ip, sizeof(c->peer_ip));
        else if (ss.ss_family == AF_INET)
            uv_ip4_name((struct sockaddr_in *)&ss, c->peer_ip, sizeof(c->peer_ip));
    }
    net__tune(&c->tcp);
    if (w->conn_count > w->limits.max_connections) {
        log_warn("net", "connection limit (%zu) reached; refusing %s", w->limits.max_connections,
                 c->peer_ip);
        reject(c, 503, "too many connections");
        return;
    }
    arm_timer(c, w->limits.keepalive_timeout_ms);
    start_reading(c);
}

static void on_connection(uv_stream_t *ls, int status)
{
    net_server_t *srv = ls->data;
    net_conn_t *c;

    if (status < 0) {
        log_warn("net", "accept failed: %s", uv_strerror(status));
        return;
    }
    c = conn_new(srv->w, &srv->cbs, srv->ctx);
    if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
        conn_close(c);
        return;
    }
    if (srv->tls != NULL) {
        struct ssl_ctx_st *ctx = srv->tls->get_ctx(srv->tls->arg, true);
        int rc = ctx ? net__tls_new(&c->tls, ctx, true) : ERR_NET_TLS;
        if (ctx != NULL)
            SSL_CTX_free(ctx); /* the connection's SSL holds its own reference */
        if (rc < 0) {
            log_warn("net", "no TLS identity available; refusing a connection");
            conn_close(c);
            return;
        }
        c->tls_opts = srv->tls;
        c->out.tls = c->tls;
    }
    conn_start(c);
    /* A TLS peer gets the short head timeout for its handshake too. */
    if (c->tls != NULL && !c->closing)
        arm_timer(c, c->w->limits.head_timeout_ms);
}

int net__adopt_fd(net_worker_t *w, int fd, const net_server_cbs_t *cbs, void *ctx)
{
    net_conn_t *c;
    int rc;

    if (w == NULL || fd < 0 || cbs == NULL || cbs->on_request == NULL)
        return ERR_INVAL;
    c = conn_new(w, cbs, ctx);
    rc = uv_tcp_open(&c->tcp, fd);
    if (rc < 0) {
        conn_close(c); /* the handle never owned the fd: it stays the caller's */
        return rc;
    }
    conn_start(c);
    return 0;
}

int net_listen(net_worker_t *w, const char *host, int port, const net_server_cbs_t *cbs, void *ctx,
               int *bound_port)
{
    return net_listen_tls(w, host, port, cbs, ctx, NULL, bound_port);
}

int net_listen_tls(net_worker_t *w, const char *host, int port, const net_server_cbs_t *cbs,
                   void *ctx, const net_tls_t *tls, int *bound_port)
{
    struct sockaddr_storage ss;
    int fd = -1, one = 1, rc;
    socklen_t sl;
    net_server_t *srv = NULL;

    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
        uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0)
        return ERR_INVAL;
    fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return uv_translate_sys_error(errno);
    /* SO_REUSEPORT lets every worker own a listening socket on the same port; the kernel spreads
     * connections across them, so no lock or handoff is needed between loops. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 1024) < 0) {
        rc = uv_translate_sys_error(errno);
        goto fail;
    }
    if (bound_port != NULL) {
        sl = sizeof(ss);
        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    srv = mem_calloc(sizeof(*srv));
    srv->w = w;
    srv->cbs = *cbs;
    srv->ctx = ctx;
    srv->tls = tls;
    uv_tcp_init(&w->loop, &srv->tcp);
    srv->tcp.data = srv;
    rc = uv_tcp_open(&srv->tcp, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->tcp, 1024, on_connection);
    if (rc < 0) {
        uv_close((uv_handle_t *)&srv->tcp, (uv_close_cb)mem_free);
        return rc; /* the fd is closed with the handle */
    }
    net__list_push(&w->servers, &srv->node);
    return 0;
fail:
    close(fd);
    return rc;
}

static void on_server_closed(uv_handle_t *h)
{
    mem_free(h->data);
}

void net__server_stop_listening(net_worker_t *w)
{
    while (!net__list_empty(&w->servers)) {
        net_server_t *s = container_of(w->servers.next, net_server_t, node);
        net__list_remove(&s->node);
        uv_close((uv_handle_t *)&s->tcp, on_server_closed);
    }
}

void net__server_close_all(net_worker_t *w)
{
    net__server_stop_listening(w);
    while (!net__list_empty(&w->conns)) {
        net_conn_t *c = container_of(w->conns.next, net_conn_t, node);
        conn_close(c);
    }
}

/* --- the request API -------------------------------------------------------------------------- */

const net_head_t *net_sreq_head(const net_sreq_t *r)
{
    return &r->head;
}

const char *net_sreq_peer_id(const net_sreq_t *r)
{
    return r->conn->peer_id;
}

const char *net_sreq_peer_ip(const net_sreq_t *r)
{
    return r->conn->peer_ip;
}

net_worker_t *net_sreq_worker(const net_sreq_t *r)
{
    return r->conn->w;
}

bool net_sreq_has_body(const net_sreq_t *r)
{
    return r->head.chunked || r->head.content_length > 0;
}

void net_sreq_watch(net_sreq_t *r, const net_sreq_body_cbs_t *cbs, void *ctx)
{
    r->cbs = *cbs;
    r->ctx = ctx;
    r->watching = true;
    /* Keep reading (into the pending buffer) so that a client that disconnects is noticed even
     * while its body is not wanted yet. */
    start_reading(r->conn);
}

void net_sreq_read_body(net_sreq_t *r, const net_sreq_body_cbs_t *cbs, void *ctx)
{
    net_conn_t *c = r->conn;

    net_sreq_watch(r, cbs, ctx);
    r->body_wanted = true;
    net_sreq_continue(r);
    if (r->body_done) {
        if (r->cbs.on_body_end)
            r->cbs.on_body_end(r, r->ctx);
        return;
    }
    arm_timer(c, c->w->limits.body_idle_timeout_ms);
    conn_process(c);
}

void net_sreq_pause(net_sreq_t *r)
{
    r->paused = true;
}

void net_sreq_resume(net_sreq_t *r)
{
    net_conn_t *c = r->conn;
    if (!r->paused)
        return;
    r->paused = false;
    if (r->body_wanted && !r->body_done && !c->closing)
        conn_process(c);
}

void net_sreq_continue(net_sreq_t *r)
{
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    if (r->expect_continue && !r->continue_sent && !r->responded) {
        r->continue_sent = true;
        conn_write(r->conn, msg, sizeof(msg) - 1);
    }
}

bool net_sreq_responded(const net_sreq_t *r)
{
    return r->responded;
}

int net_sreq_respond(net_sreq_t *r, int status, const net_head_t *h, int64_t content_length)
{
    return net_sreq_respond_ex(r, status, h, NULL, 0, content_length);
}

int net_sreq_respond_ex(net_sreq_t *r, int status, const net_head_t *h, const net_header_t *extra,
                        size_t extra_count, int64_t content_length)
{
    net_conn_t *c = r->conn;
    buf_t b;
    int rc = 0;
    bool keep = r->head.keep_alive && !c->client_gone;
    bool no_body = r->head.method == HTTP_HEAD || status == 204 || status == 304 ||
                   (status >= 100 && status < 200);

    if (r->responded || r->ended || c->closing)
        return ERR_INVAL;
    buf_init(&b, 256 * 1024);
    rc = buf_append_str(&b, r->head.http_minor ? "HTTP/1.1 " : "HTTP/1.0 ");
    rc = rc ? rc : buf_append_u64(&b, (uint64_t)status);
    rc = rc ? rc : buf_append(&b, " ", 1);
    rc = rc ? rc : buf_append_str(&b, http_status_str((enum http_status)status));
    rc = rc ? rc : buf_append(&b, "\r\n", 2);
    for (size_t i = 0; rc == 0 && h != NULL && i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        if (net_head_is_hop(h, f->name, f->name_len) ||
            str_eq(f->name, f->name_len, "content-length"))
            continue;
        rc = buf_append(&b, f->name, f->name_len);
        rc = rc ? rc : buf_append(&b, ": ", 2);
        rc = rc ? rc : buf_append(&b, f->value, f->value_len);
        rc = rc ? rc : buf_append(&b, "\r\n", 2);
    }
    for (size_t i = 0; rc == 0 && i < extra_count; i++) {
        rc = buf_append(&b, extra[i].name, extra[i].name_len);
        rc = rc ? rc : buf_append(&b, ": ", 2);
        rc = rc ? rc : buf_append(&b, extra[i].value, extra[i].value_len);
        rc = rc ? rc : buf_append(&b, "\r\n", 2);
    }
    if (rc == 0 && content_length >= 0 && status != 204 && !(status >= 100 && status < 200) &&
        status != 304) {
        rc = buf_append_str(&b, "content-length: ");
        rc = rc ? rc : buf_append_u64(&b, (uint64_t)content_length);
        rc = rc ? rc : buf_append(&b, "\r\n", 2);
    } else if (rc == 0 && content_length < 0 && !no_body) {
        if (r->head.http_minor >= 1) {
            r->resp_chunked = true;
            rc = buf_append_str(&b, "transfer-encoding: chunked\r\n");
        } else {
            r->resp_until_close = true;
            keep = false;
        }
    }
    /* A request whose body was not fully read cannot be followed by another on this connection. */
    if (!r->body_done)
        keep = false;
    if (rc == 0)
        rc = buf_append_str(&b, keep ? (r->head.http_minor ? "" : "connection: keep-alive\r\n")
                                     : "connection: close\r\n");
    rc = rc ? rc : buf_append(&b, "\r\n", 2);
    if (rc == 0) {
        if (!keep)
            r->head.keep_alive = false;
        r->responded = true;
        r->stats.status = status;
        r->resp_no_body = no_body;
        if (c->out.pending.len == 0) {
            /* Hand the head's buffer to the output instead of copying it; the old, empty
             * output buffer is freed below in its place. */
            buf_t old = c->out.pending;
            c->out.pending = b;
            c->out.pending.max = NET_OUT_MAX;
            b = old;
            net__out_kick(c->w, &c->out);
        } else {
            rc = conn_write(c, b.ptr, b.len);
        }
    }
    buf_free(&b);
    return rc;
}

int net_sreq_respond_simple(net_sreq_t *r, int status, const char *content_type, const char *body,
                            size_t n)
{
    net_head_t h;
    int rc;

    net_head_init(&h);
    rc =
        content_type ? net_head_add(&h, "content-type", 12, content_type, strlen(content_type)) : 0;
    rc = rc ? rc : net_sreq_respond(r, status, &h, (int64_t)n);
    net_head_free(&h);
    if (rc == 0 && n > 0 && r->head.method != HTTP_HEAD)
        rc = net_sreq_write(r, body, n);
    if (rc == 0)
        net_sreq_end(r);
    else
        net_sreq_abort(r);
    return rc;
}

int net_sreq_write(net_sreq_t *r, const char *p, size_t n)
{
    net_conn_t *c = r->conn;
    int rc;

    if (!r->responded || r->ended || c->closing)
        return ERR_INVAL;
    /* Body bytes after a head that has none would be read as the next response (RFC 9112 §6.3). */
    if (n == 0 || r->resp_no_body)
        return 0;
    rc = net__out_chunk(c->w, &c->out, p, n, r->resp_chunked);
    if (rc < 0)
        return rc;
    r->stats.out_bytes += n;
    if (net__out_queued(&c->out) > c->w->limits.high_water_bytes)
        r->drain_wanted = true;
    return 0;
}

size_t net_sreq_queued(const net_sreq_t *r)
{
    return net__out_queued(&r->conn->out);
}

void net_sreq_end(net_sreq_t *r)
{
    net_conn_t *c = r->conn;
    static const char last[] = "0\r\n\r\n";

    if (r->ended || c->closing)
        return;
    req_finish(c, false);
    if (r->resp_chunked)
        conn_write(c, last, sizeof(last) - 1);
    if (!r->head.keep_alive || r->resp_until_close || !r->body_done || c->client_gone) {
        stop_reading(c);
        c->close_after_write = true;
        if (net__out_queued(&c->out) == 0)
            conn_close(c);
        return;
    }
    conn_next(c);
}

void net_sreq_abort(net_sreq_t *r)
{
    net_conn_t *c = r->conn;
    if (c->closing)
        return;
    req_finish(c, true);
    conn_close(c);
}
