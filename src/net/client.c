/*
 * HTTP/1.1 client requests over a per-worker pool of keep-alive connections. A connection is put
 * back in the pool only after its response was read completely and the request body was fully
 * sent; while pooled it keeps reading so that a peer's close is noticed at once.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "base/str.h"
#include <openssl/ssl.h>

#include "net/net_int.h"

#define KEY_MAX (300 + NET_PEER_ID_MAX)

typedef struct net_pconn {
    uv_tcp_t tcp;                 /* the upstream socket */
    net__deadline_t timer;        /* connect / idle-in-pool / response-idle timeout */
    uv_connect_t connect;         /* connect request */
    uv_getaddrinfo_t gai;         /* name lookup for non-numeric hosts */
    int handles;                  /* handles not yet closed; freed at 0 */
    net_worker_t *w;              /* owner */
    net__list_t node;             /* in worker->pool */
    char key[KEY_MAX];            /* "host:port" */
    int port;                     /* upstream port */
    struct net_creq *req;         /* request using the connection; NULL when idle */
    bool connected;               /* TCP connect completed */
    bool resolving;               /* getaddrinfo in flight */
    bool reading;                 /* uv_read_start in effect */
    bool closing;                 /* uv_close called */
    bool reused;                  /* served a request before this one */
    bool in_execute;              /* response bytes are being handled: not to be handed out */
    bool in_body;                 /* the response head was read; body bytes follow */
    bool resp_keep_alive;         /* the response allows reusing the connection */
    enum h1_body body;            /* framing of the response body */
    uint64_t body_left;           /* Content-Length bytes still to read */
    h1_chunked_t chunked;         /* chunked body decoder */
    size_t head_scanned;          /* bytes of the incomplete head last parsed (0: none) */
    buf_t head_buf;               /* a response head split across reads, until complete */
    net_head_t head;              /* the response head given to on_head */
    net__out_t out;               /* coalesced output; held while the name is being resolved */
    const net_tls_t *tls_opts;    /* TLS settings (borrowed); NULL = plain */
    net__tls_t *tls;              /* TLS state; owned */
    char expect[NET_PEER_ID_MAX]; /* identity the server must prove */
    bool in_pump;                 /* the decrypt loop is on the stack */
} net_pconn_t;

struct net_creq {
    net_pconn_t *pc;              /* connection carrying the request */
    net_worker_t *w;              /* owner */
    net_creq_cbs_t cbs;           /* caller's callbacks */
    void *ctx;                    /* caller's context */
    buf_t head_out;               /* serialised request head, kept for a replay on a stale reuse */
    int method;                   /* request method */
    bool chunked;                 /* request body is chunk-framed */
    bool has_body;                /* request carries a body */
    bool body_ended;              /* caller ended the body */
    bool got_head;                /* response head arrived */
    bool got_any;                 /* any response byte arrived */
    bool paused;                  /* caller paused response reading */
    bool done;                    /* on_end delivered or aborted */
    bool drain_wanted;            /* tell the caller when output drops below low water */
    bool replayed;                /* already retried once on a fresh connection */
    uint64_t idle_timeout_ms;     /* response silence limit, 0 = none */
    const net_tls_t *tls;         /* TLS settings for (re)connections; NULL = plain */
    char expect[NET_PEER_ID_MAX]; /* identity the server must prove */
};

static void pc_close(net_pconn_t *pc);
static void pc_start_reading(net_pconn_t *pc);
static void finish(net_creq_t *r, int status, const char *detail);
static int pc_connect(net_pconn_t *pc, const char *host);
static void on_out_error(net__out_t *o, int status);
static void on_pc_out_done(net__out_t *o, int status);
static void pc_on_data(net_pconn_t *pc, const char *p, size_t n);

/* --- connection lifecycle --------------------------------------------------------------------- */

static void on_pc_closed(uv_handle_t *h)
{
    net_pconn_t *pc = h->data;
    if (--pc->handles > 0)
        return;
    net_head_free(&pc->head);
    net__out_release(&pc->out);
    net__tls_free(pc->tls);
    buf_free(&pc->head_buf);
    mem_free(pc);
}

static void pc_close(net_pconn_t *pc)
{
    if (pc->closing)
        return;
    pc->closing = true;
    net__out_release(&pc->out);
    net__list_remove(&pc->node);
    if (pc->resolving)
        uv_cancel((uv_req_t *)&pc->gai);
    pc->timer.timer.data = pc; /* on_pc_closed finds the connection */
    uv_close((uv_handle_t *)&pc->timer.timer, on_pc_closed);
    uv_close((uv_handle_t *)&pc->tcp, on_pc_closed);
}

static void on_pc_timer(void *arg)
{
    net_pconn_t *pc = arg;
    net_creq_t *r = pc->req;

    if (r == NULL) { /* idle in the pool for too long */
        pc_close(pc);
        return;
    }
    finish(r, pc->connected ? ERR_TIMEOUT : ERR_NET_CONNECT,
           pc->connected ? "upstream idle timeout" : "connect timeout");
}

static void pc_arm(net_pconn_t *pc, uint64_t ms)
{
    if (pc->closing)
        return;
    if (ms == 0)
        net__deadline_clear(&pc->timer);
    else
        net__deadline_set(&pc->timer, ms);
}

static void pc_pump(net_pconn_t *pc);

static net_pconn_t *pc_new(net_worker_t *w, const char *key, int port, const net_tls_t *tls,
                           const char *expect)
{
    net_pconn_t *pc = mem_calloc(sizeof(*pc));
    pc->w = w;
    pc->handles = 2;
    pc->port = port;
    str_copy(pc->key, sizeof(pc->key), key);
    uv_tcp_init(&w->loop, &pc->tcp);
    net__deadline_init(&w->loop, &pc->timer, on_pc_timer, pc);
    pc->tcp.data = pc;
    net_head_init(&pc->head);
    buf_init(&pc->head_buf, w->limits.max_head_bytes + 1);
    net__out_init(&pc->out, (uv_stream_t *)&pc->tcp, NET_OUT_MAX);
    pc->out.on_error = on_out_error;
    pc->out.on_done = on_pc_out_done;
    net__list_push(&w->pool, &pc->node);
    if (tls != NULL) {
        struct ssl_ctx_st *ctx = tls->get_ctx(tls->arg, false);
        int rc = ctx ? net__tls_new(&pc->tls, ctx, false) : ERR_NET_TLS;
        if (ctx != NULL)
            SSL_CTX_free(ctx);
        if (rc == 0 && tls->prepare != NULL &&
            tls->prepare(net__tls_ssl(pc->tls), expect, key, tls->arg) < 0) {
            net__tls_free(pc->tls);
            pc->tls = NULL;
            rc = ERR_NET_TLS;
        }
        if (rc == 0) {
            pc->tls_opts = tls;
            pc->out.tls = pc->tls;
            str_copy(pc->expect, sizeof(pc->expect), expect ? expect : "");
        }
    }
    return pc;
}

/* Returns a connection to the pool, or closes it if it cannot be reused. */
static void pc_release(net_pconn_t *pc, bool reusable)
{
    size_t idle = 0;

    pc->req = NULL;
    if (!reusable || pc->closing || pc->w->stopping) {
        pc_close(pc);
        return;
    }
    for (net__list_t *n = pc->w->pool.next; n != &pc->w->pool; n = n->next) {
        net_pconn_t *o = container_of(n, net_pconn_t, node);
        idle += o->req == NULL && o != pc && strcmp(o->key, pc->key) == 0;
    }
    if (idle >= pc->w->limits.pool_max_idle_per_target) {
        pc_close(pc);
        return;
    }
    pc->reused = true;
    pc_arm(pc, pc->w->limits.pool_idle_timeout_ms);
    pc_start_reading(pc); /* notice the peer closing while idle */
}

void net__pool_close_all(net_worker_t *w)
{
    while (!net__list_empty(&w->pool)) {
        net_pconn_t *pc = container_of(w->pool.next, net_pconn_t, node);
        if (pc->req != NULL)
            finish(pc->req, ERR_CLOSED, "shutting down");
        else
            pc_close(pc);
        if (!pc->closing)
            pc_close(pc);
    }
}

/* --- completion ------------------------------------------------------------------------------- */

/* Delivers the outcome once and detaches the request from its connection. */
static void finish(net_creq_t *r, int status, const char *detail)
{
    net_pconn_t *pc = r->pc;
    bool reusable;

    if (r->done)
        return;
    r->done = true;
    reusable = status == 0 && r->body_ended && pc != NULL && pc->connected && pc->resp_keep_alive &&
               net__out_queued(&pc->out) == 0;
    if (pc != NULL) {
        pc->req = NULL;
        pc_release(pc, reusable);
    }
    r->pc = NULL;
    atomic_fetch_sub(&r->w->active, 1);
    if (r->cbs.on_end)
        r->cbs.on_end(r, status, detail, r->ctx);
    buf_free(&r->head_out);
    mem_free(r);
}

/* A reused connection failed before any response byte: if the request can be sent again whole
 * (no body), send it on a fresh connection once. Returns true when a replay was started. */
static bool try_replay(net_creq_t *r)
{
    net_pconn_t *old = r->pc, *pc;
    char host[KEY_MAX];
    char *colon;

    if (r->replayed || r->got_any || r->has_body || old == NULL || !old->reused)
        return false;
    r->replayed = true;
    snprintf(host, sizeof(host), "%s", old->key);
    if (strchr(host, '|') != NULL)
        *strchr(host, '|') = '\0';
    colon = strrchr(host, ':');
    if (colon == NULL)
        return false;
    *colon = '\0';
    old->req = NULL;
    pc_close(old);
    pc = pc_new(r->w, old->key, old->port, r->tls, r->expect);
    pc->req = r;
    r->pc = pc;
    if ((r->tls != NULL && pc->tls == NULL) || pc_connect(pc, host) < 0)
        return false;
    if (pc->tls != NULL)
        pc_pump(pc);
    if (net__out_add(pc->w, &pc->out, "", 0, r->head_out.ptr, r->head_out.len, "", 0) < 0)
        return false;
    log_debug("net", "replayed request to %s on a fresh connection", pc->key);
    return true;
}

static void fail(net_creq_t *r, int status, const char *detail)
{
    if (status != ERR_NET_CONNECT && try_replay(r))
        return;
    finish(r, status, detail);
}

/* --- response parsing ------------------------------------------------------------------------- */

/* Prepares the connection to read the next response. */
static void pc_reset_response(net_pconn_t *pc)
{
    pc->in_body = false;
    pc->resp_keep_alive = false;
    pc->head_scanned = 0;
    buf_free(&pc->head_buf);
    net_head_free(&pc->head);
}

/* A response head at [p, p+n). Returns the bytes it took, 0 when more are needed, or -1 when the
 * request is over (failed, or aborted from on_head). */
static long pc_head(net_pconn_t *pc, net_creq_t *r, const char *p, size_t n)
{
    net_worker_t *w = pc->w;
    h1_limits_t hl = {.max_head_bytes = w->limits.max_head_bytes,
                      .max_url_bytes = w->limits.max_url_bytes};
    h1_msg_t m;
    int len;

    /* Parsed at once the first time; a head split across reads is parsed again only when worth
     * it (h1_worth_parsing). */
    if (pc->head_scanned != 0 && !h1_worth_parsing(p, n, &pc->head_scanned))
        return 0;
    len = h1_parse_response(p, n, &hl, r->method == HTTP_HEAD, &m, w->fields,
                            w->limits.max_header_count);
    if (len == 0) {
        pc->head_scanned = n;
        return 0;
    }
    pc->head_scanned = 0;
    if (len < 0) {
        finish(r, ERR_NET_BAD_RESPONSE, m.reason);
        return -1;
    }
    if (m.status >= 100 && m.status < 200) {
        if (m.status == 101) {
            finish(r, ERR_NET_BAD_RESPONSE, "unexpected 101 Switching Protocols");
            return -1;
        }
        return len; /* 1xx: the real response follows */
    }
    if (net__head_adopt(&pc->head, p, (size_t)len, &m, w->fields) < 0) {
        finish(r, ERR_NOMEM, "out of memory");
        return -1;
    }
    pc->in_body = true;
    pc->body = m.body;
    pc->resp_keep_alive = m.keep_alive;
    pc->body_left = m.body == H1_BODY_LENGTH ? (uint64_t)m.content_length : 0;
    if (m.body == H1_BODY_CHUNKED)
        h1_chunked_init(&pc->chunked);
    r->got_head = true;
    if (r->cbs.on_head)
        r->cbs.on_head(r, &pc->head, r->ctx);
    if (pc->req != r || r->done)
        return -1; /* aborted from the callback */
    if (m.body == H1_BODY_NONE) {
        finish(r, 0, NULL);
        return pc->req == NULL ? len : -1;
    }
    return len;
}

/* Response body bytes: returns the bytes taken, or -1 when the request is over. */
static long pc_body(net_pconn_t *pc, net_creq_t *r, const char *p, size_t n)
{
    size_t off = 0;

    if (pc->body != H1_BODY_CHUNKED) {
        size_t take = n;
        if (pc->body == H1_BODY_LENGTH && (uint64_t)take > pc->body_left)
            take = (size_t)pc->body_left;
        if (pc->body == H1_BODY_LENGTH)
            pc->body_left -= take;
        if (take > 0 && r->cbs.on_body)
            r->cbs.on_body(r, p, take, r->ctx);
        if (pc->req != r || r->done)
            return -1;
        if (pc->body == H1_BODY_LENGTH && pc->body_left == 0)
            finish(r, 0, NULL);
        return (long)take;
    }
    while (off < n) {
        const char *d;
        size_t dn;
        long used = h1_chunked_decode(&pc->chunked, p + off, n - off, &d, &dn);
        if (used < 0) {
            finish(r, ERR_NET_BAD_RESPONSE, pc->chunked.reason);
            return -1;
        }
        off += (size_t)used;
        if (dn > 0 && r->cbs.on_body)
            r->cbs.on_body(r, d, dn, r->ctx);
        if (pc->req != r || r->done)
            return -1;
        if (h1_chunked_done(&pc->chunked)) {
            finish(r, 0, NULL);
            break;
        }
    }
    return (long)off;
}

/* The connection closed (EOF or TLS close_notify) while @p r was reading its response: a body
 * delimited by the close is complete now; anything else was cut short. */
static void pc_eof(net_pconn_t *pc, net_creq_t *r)
{
    if (pc->in_body && pc->body == H1_BODY_CLOSE) {
        pc->resp_keep_alive = false;
        finish(r, 0, NULL);
        return;
    }
    finish(r, ERR_NET_UPSTREAM_CLOSED, "upstream closed the connection mid-response");
}

static void on_pc_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    net_pconn_t *pc = s->data;
    net_worker_t *w = pc->w;
    net_creq_t *r = pc->req;

    if (nread == 0) {
        net__release_buf(w, buf);
        return;
    }
    if (r == NULL && nread > 0 && pc->tls != NULL) {
        /* Idle TLS: post-handshake messages (session tickets) are fine; data is not. */
        err_detail_t d;
        int rc = net__tls_feed(pc->tls, buf->base, (size_t)nread);
        net__release_buf(w, buf);
        if (rc == 0)
            rc = net__tls_read(pc->tls, w->tls_buf, sizeof(w->tls_buf), &d);
        if (rc != 0)
            pc_close(pc);
        return;
    }
    if (r == NULL) {
        /* Idle in the pool: any byte or EOF means the connection is unusable. */
        net__release_buf(w, buf);
        pc_close(pc);
        return;
    }
    if (nread < 0) {
        net__release_buf(w, buf);
        if (nread == UV_EOF && r->got_head) {
            /* Lets a read-until-close body complete; errors if the body was cut short. */
            pc_eof(pc, r);
            return;
        }
        fail(r, ERR_NET_UPSTREAM_CLOSED,
             nread == UV_EOF ? "upstream closed the connection" : uv_strerror((int)nread));
        return;
    }
    if (r->idle_timeout_ms)
        pc_arm(pc, r->idle_timeout_ms);
    else
        net__deadline_clear(&pc->timer);
    if (pc->tls != NULL) {
        int rc = net__tls_feed(pc->tls, buf->base, (size_t)nread);
        net__release_buf(w, buf);
        if (rc < 0)
            finish(r, ERR_NET_TLS, "out of memory");
        else
            pc_pump(pc);
        return;
    }
    pc_on_data(pc, buf->base, (size_t)nread);
    net__release_buf(w, buf);
}

/* Feeds response bytes [p, p+n) to the head or body reader. Returns the bytes taken (less than
 * @p n only when an incomplete head waits for more), or -1 once the request is over (complete,
 * failed or aborted); bytes after a complete response close the connection. */
static long pc_feed(net_pconn_t *pc, net_creq_t *r, const char *p, size_t n)
{
    size_t off = 0;
    while (off < n) {
        long used =
            pc->in_body ? pc_body(pc, r, p + off, n - off) : pc_head(pc, r, p + off, n - off);
        if (used < 0 || (used > 0 && pc->req != r)) {
            /* Over: bytes after the response are not ours, the connection cannot be trusted. */
            if (used > 0 && off + (size_t)used < n)
                pc_close(pc);
            return -1;
        }
        if (used == 0)
            break;
        off += (size_t)used;
    }
    return (long)off;
}

/* Plaintext response bytes for the current request. A head split across reads is gathered in
 * head_buf; everything else is handled straight from the read buffer. */
static void pc_on_data(net_pconn_t *pc, const char *p, size_t n)
{
    net_creq_t *r = pc->req;
    long used;

    r->got_any = true;
    pc->in_execute = true;
    if (pc->head_buf.len > 0) {
        size_t take = pc->head_buf.max - pc->head_buf.len;
        if (take > n)
            take = n;
        if (buf_append(&pc->head_buf, p, take) < 0) {
            finish(r, ERR_NOMEM, "out of memory");
            goto out;
        }
        p += take;
        n -= take;
        used = pc_feed(pc, r, pc->head_buf.ptr, pc->head_buf.len);
        if (used >= 0 && (size_t)used < pc->head_buf.len) {
            /* Still incomplete (then every byte read is in head_buf). */
            memmove(pc->head_buf.ptr, pc->head_buf.ptr + used, pc->head_buf.len - (size_t)used);
            pc->head_buf.len -= (size_t)used;
            goto out;
        }
        buf_free(&pc->head_buf);
        if (used < 0) {
            if (n > 0 && pc->req == NULL)
                pc_close(pc);
            goto out;
        }
    }
    used = pc_feed(pc, r, p, n);
    if (used >= 0 && (size_t)used < n && buf_append(&pc->head_buf, p + used, n - (size_t)used) < 0)
        finish(r, ERR_NOMEM, "out of memory");
out:
    pc->in_execute = false;
}

/* Advances the TLS handshake (checking the server is who we expect), then decrypts while the
 * request wants response bytes. */
static void pc_pump(net_pconn_t *pc)
{
    net_worker_t *w = pc->w;
    err_detail_t d = {{0}};
    int rc;

    if (pc->in_pump || pc->closing)
        return;
    pc->in_pump = true;
    if (!net__tls_done(pc->tls)) {
        rc = net__tls_handshake(pc->tls, &d);
        net__out_kick(w, &pc->out);
        if (rc > 0)
            rc = pc->tls_opts->check_peer(net__tls_ssl(pc->tls), pc->expect, NULL, 0,
                                          pc->tls_opts->arg, &d);
        if (rc < 0) {
            pc->in_pump = false;
            if (pc->req != NULL)
                finish(pc->req, rc == ERR_NET_PEER_REFUSED ? rc : ERR_NET_TLS,
                       d.msg[0] ? d.msg : err_str(rc));
            else
                pc_close(pc);
            return;
        }
        if (!net__tls_done(pc->tls))
            goto out;
    }
    while (pc->req != NULL && !pc->closing && pc->reading) {
        net_creq_t *r = pc->req;
        rc = net__tls_read(pc->tls, w->tls_buf, sizeof(w->tls_buf), &d);
        if (rc == 0)
            break;
        if (rc < 0) {
            pc->in_pump = false;
            if (r->got_head && rc == ERR_CLOSED) {
                pc_eof(pc, r);
                return;
            }
            if (pc->req == r && !r->done)
                fail(r, ERR_NET_UPSTREAM_CLOSED, d.msg[0] ? d.msg : "TLS connection closed");
            return;
        }
        pc_on_data(pc, w->tls_buf, (size_t)rc);
    }
out:
    pc->in_pump = false;
}

static void pc_start_reading(net_pconn_t *pc)
{
    if (!pc->reading && !pc->closing && pc->connected) {
        if (uv_read_start((uv_stream_t *)&pc->tcp, net__alloc_cb, on_pc_read) == 0)
            pc->reading = true;
    }
    /* Response bytes decrypted-ahead while paused wait inside OpenSSL. */
    if (pc->tls != NULL && pc->req != NULL && pc->reading && net__tls_done(pc->tls) &&
        net__tls_has_input(pc->tls))
        pc_pump(pc);
}

/* --- sending ---------------------------------------------------------------------------------- */

/* Request bytes were written (or failed): report a failure, or tell the caller the queue
 * drained below the low-water mark. */
static void on_pc_out_done(net__out_t *o, int status)
{
    net_pconn_t *pc = container_of(o, net_pconn_t, out);
    net_creq_t *r = pc->req;

    if (r == NULL || pc->closing)
        return;
    if (status < 0) {
        if (status != UV_ECANCELED)
            fail(r, ERR_NET_UPSTREAM_CLOSED, uv_strerror(status));
        return;
    }
    if (r->drain_wanted && net__out_queued(&pc->out) <= pc->w->limits.low_water_bytes) {
        r->drain_wanted = false;
        if (r->cbs.on_drain)
            r->cbs.on_drain(r, r->ctx);
    }
}

static void on_out_error(net__out_t *o, int status)
{
    net_pconn_t *pc = container_of(o, net_pconn_t, out);
    if (pc->req != NULL)
        fail(pc->req, ERR_NET_UPSTREAM_CLOSED, uv_strerror(status));
    else
        pc_close(pc);
}

/* Queues bytes of the request (held while the connection's address is being resolved). */
static int req_send(net_creq_t *r, const char *prefix, size_t plen, const char *p, size_t n,
                    const char *suffix, size_t slen)
{
    net_pconn_t *pc = r->pc;
    int rc;

    rc = net__out_add(pc->w, &pc->out, prefix, plen, p, n, suffix, slen);
    if (rc == 0 && net__out_queued(&pc->out) > pc->w->limits.high_water_bytes)
        r->drain_wanted = true;
    return rc;
}

static void on_connected(uv_connect_t *cr, int status)
{
    net_pconn_t *pc = cr->handle->data;
    net_creq_t *r = pc->req;

    if (pc->closing)
        return;
    if (status < 0) {
        if (r != NULL)
            finish(r, ERR_NET_CONNECT, uv_strerror(status));
        else
            pc_close(pc);
        return;
    }
    pc->connected = true;
    net__tune(&pc->tcp);
    if (r != NULL)
        pc_arm(pc, r->idle_timeout_ms);
    pc_start_reading(pc);
}

static int start_connect(net_pconn_t *pc, const struct sockaddr *sa)
{
    pc_arm(pc, pc->w->limits.connect_timeout_ms);
    return uv_tcp_connect(&pc->connect, &pc->tcp, sa, on_connected);
}

static void on_resolved(uv_getaddrinfo_t *g, int status, struct addrinfo *ai)
{
    net_pconn_t *pc = g->data;
    net_creq_t *r = pc->req;
    int rc = status;

    pc->resolving = false;
    if (status == UV_ECANCELED || pc->closing) {
        uv_freeaddrinfo(ai);
        return;
    }
    if (rc == 0)
        rc = start_connect(pc, ai->ai_addr);
    uv_freeaddrinfo(ai);
    if (rc == 0)
        net__out_unhold(pc->w, &pc->out); /* libuv queues writes until the connect completes */
    if (rc < 0 && r != NULL)
        finish(r, ERR_NET_CONNECT, uv_strerror(rc));
}

static int pc_connect(net_pconn_t *pc, const char *host)
{
    struct sockaddr_storage ss;
    struct addrinfo hints;

    if (uv_ip4_addr(host, pc->port, (struct sockaddr_in *)&ss) == 0 ||
        uv_ip6_addr(host, pc->port, (struct sockaddr_in6 *)&ss) == 0)
        return start_connect(pc, (struct sockaddr *)&ss);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    pc->gai.data = pc;
    pc->resolving = true;
    pc->out.hold = true;
    {
        char port[8];
        int rc;
        snprintf(port, sizeof(port), "%d", pc->port);
        rc = uv_getaddrinfo(&pc->w->loop, &pc->gai, on_resolved, host, port, &hints);
        if (rc < 0)
            pc->resolving = false;
        else
            pc_arm(pc, pc->w->limits.connect_timeout_ms);
        return rc;
    }
}

static net_pconn_t *pool_take(net_worker_t *w, const char *key, const net_tls_t *tls)
{
    for (net__list_t *n = w->pool.next; n != &w->pool; n = n->next) {
        net_pconn_t *pc = container_of(n, net_pconn_t, node);
        if (pc->req == NULL && !pc->closing && pc->connected && !pc->in_execute &&
            pc->tls_opts == tls && strcmp(pc->key, key) == 0) {
            /* Most recently used last: move to the back so hot connections stay warm. */
            net__list_remove(&pc->node);
            net__list_push(&w->pool, &pc->node);
            return pc;
        }
    }
    return NULL;
}

/* Host, Content-Length and Expect: ours to write (framing), never copied. */
static bool framing_name(const char *n, size_t len)
{
    switch (len) {
    case 4:
        return memcmp(n, "host", 4) == 0;
    case 6:
        return memcmp(n, "expect", 6) == 0;
    case 14:
        return memcmp(n, "content-length", 14) == 0;
    default:
        return false;
    }
}

/* Appends @p h's fields minus hop-by-hop, framing, Host, Expect and what @p o->skip names. */

static int serialise_fields(buf_t *b, const net_head_t *h, const net_creq_opts_t *o, bool filter)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        if (framing_name(f->name, f->name_len) || net_head_is_hop(h, f->name, f->name_len) ||
            (filter && o->skip != NULL && o->skip(f->name, f->name_len, o->skip_arg)))
            continue;
        rc = buf_append(b, f->name, f->name_len);
        rc = rc ? rc : buf_append(b, ": ", 2);
        rc = rc ? rc : buf_append(b, f->value, f->value_len);
        rc = rc ? rc : buf_append(b, "\r\n", 2);
    }
    return rc;
}

static int serialise_head(net_creq_t *r, const net_creq_opts_t *o)
{
    buf_t *b = &r->head_out;
    const net_head_t *h = o->head;
    int64_t body_len = o->body_len;
    int rc = buf_append_str(b, http_method_str((enum http_method)h->method));
    rc = rc ? rc : buf_append(b, " ", 1);
    rc = rc ? rc : buf_append(b, h->url, h->url_len);
    rc = rc ? rc : buf_append_str(b, " HTTP/1.1\r\nhost: ");
    rc = rc ? rc : buf_append_str(b, o->host_header);
    rc = rc ? rc : buf_append(b, "\r\n", 2);
    if (rc == 0 && o->base != NULL)
        rc = serialise_fields(b, o->base, o, true);
    rc = rc ? rc : serialise_fields(b, h, o, false);
    if (rc == 0 && body_len > 0) {
        rc = buf_append_str(b, "content-length: ");
        rc = rc ? rc : buf_append_u64(b, (uint64_t)body_len);
        rc = rc ? rc : buf_append(b, "\r\n", 2);
    } else if (rc == 0 && body_len < 0)
        rc = buf_append_str(b, "transfer-encoding: chunked\r\n");
    else if (rc == 0 &&
             (h->method == HTTP_POST || h->method == HTTP_PUT || h->method == HTTP_PATCH))
        rc = buf_append_str(b, "content-length: 0\r\n");
    return rc ? rc : buf_append(b, "\r\n", 2);
}

int net_creq_start(net_worker_t *w, const char *host, int port, const char *host_header,
                   const net_head_t *h, int64_t body_len, uint64_t idle_timeout_ms,
                   const net_creq_cbs_t *cbs, void *ctx, net_creq_t **out)
{
    return net_creq_start_tls(w, host, port, host_header, h, body_len, idle_timeout_ms, NULL, NULL,
                              cbs, ctx, out);
}

int net_creq_start_tls(net_worker_t *w, const char *host, int port, const char *host_header,
                       const net_head_t *h, int64_t body_len, uint64_t idle_timeout_ms,
                       const net_tls_t *tls, const char *expect_peer, const net_creq_cbs_t *cbs,
                       void *ctx, net_creq_t **out)
{
    net_creq_opts_t o = {.host = host,
                         .port = port,
                         .host_header = host_header,
                         .head = h,
                         .body_len = body_len,
                         .idle_timeout_ms = idle_timeout_ms,
                         .tls = tls,
                         .expect_peer = expect_peer};
    return net_creq_start_opts(w, &o, cbs, ctx, out);
}

int net_creq_start_opts(net_worker_t *w, const net_creq_opts_t *o, const net_creq_cbs_t *cbs,
                        void *ctx, net_creq_t **out)
{
    const char *host = o->host, *expect_peer = o->expect_peer;
    const net_tls_t *tls = o->tls;
    const net_head_t *h = o->head;
    int64_t body_len = o->body_len;
    uint64_t idle_timeout_ms = o->idle_timeout_ms;
    int port = o->port;
    char key[KEY_MAX];
    net_pconn_t *pc;
    net_creq_t *r;
    int rc;

    if (w->stopping)
        return ERR_CLOSED;
    /* Pooled connections are shared only between requests that expect the same peer. */
    {
        size_t kl = str_host_port(key, sizeof(key), host, port);
        const char *e = tls ? (expect_peer ? expect_peer : "*") : "";
        if (kl + 1 + strlen(e) >= sizeof(key))
            return ERR_INVAL;
        key[kl] = '|';
        str_copy(key + kl + 1, sizeof(key) - kl - 1, e);
    }
    r = mem_calloc(sizeof(*r));
    r->w = w;
    r->cbs = *cbs;
    r->ctx = ctx;
    r->method = h->method;
    r->chunked = body_len < 0;
    r->has_body = body_len != 0;
    r->body_ended = body_len == 0;
    r->idle_timeout_ms = idle_timeout_ms;
    r->tls = tls;
    str_copy(r->expect, sizeof(r->expect), expect_peer ? expect_peer : "");
    buf_init(&r->head_out, 1024 * 1024);
    rc = serialise_head(r, o);
    if (rc < 0)
        goto fail;
    pc = pool_take(w, key, tls);
    if (pc != NULL) {
        pc_arm(pc, idle_timeout_ms);
    } else {
        pc = pc_new(w, key, port, tls, expect_peer);
        rc = tls != NULL && pc->tls == NULL ? ERR_NET_TLS : pc_connect(pc, host);
        if (rc < 0) {
            pc_close(pc);
            goto fail;
        }
        if (pc->tls != NULL)
            pc_pump(pc); /* the ClientHello goes out as soon as the connection is up */
    }
    pc->req = r;
    r->pc = pc;
    pc_reset_response(pc);
    rc = req_send(r, "", 0, r->head_out.ptr, r->head_out.len, "", 0);
    if (rc < 0) {
        pc->req = NULL;
        pc_close(pc);
        goto fail;
    }
    atomic_fetch_add(&w->active, 1);
    *out = r;
    return 0;
fail:
    buf_free(&r->head_out);
    mem_free(r);
    return rc;
}

int net_creq_write(net_creq_t *r, const char *p, size_t n)
{
    char hdr[24];
    int hl;

    if (r->done || r->body_ended)
        return ERR_INVAL;
    if (n == 0)
        return 0;
    if (!r->chunked)
        return req_send(r, "", 0, p, n, "", 0);
    hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
    return req_send(r, hdr, (size_t)hl, p, n, "\r\n", 2);
}

int net_creq_end(net_creq_t *r)
{
    static const char last[] = "0\r\n\r\n";
    int rc = 0;

    if (r->done || r->body_ended)
        return 0;
    r->body_ended = true;
    if (r->chunked)
        rc = req_send(r, "", 0, last, sizeof(last) - 1, "", 0);
    return rc;
}

size_t net_creq_queued(const net_creq_t *r)
{
    return r->pc ? net__out_queued(&r->pc->out) : 0;
}

void net_creq_pause(net_creq_t *r)
{
    net_pconn_t *pc = r->pc;
    r->paused = true;
    if (pc != NULL && pc->reading) {
        uv_read_stop((uv_stream_t *)&pc->tcp);
        pc->reading = false;
    }
}

void net_creq_resume(net_creq_t *r)
{
    r->paused = false;
    if (r->pc != NULL)
        pc_start_reading(r->pc);
}

void net_creq_abort(net_creq_t *r)
{
    net_pconn_t *pc = r->pc;

    if (r->done)
        return;
    r->done = true;
    if (pc != NULL) {
        pc->req = NULL;
        pc_close(pc);
    }
    atomic_fetch_sub(&r->w->active, 1);
    buf_free(&r->head_out);
    mem_free(r);
}
