/* Workers: one libuv loop per thread, with a read buffer shared by all its connections. */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/log.h"
#include "net/net_int.h"

void net_limits_defaults(net_limits_t *l)
{
    l->max_url_bytes = 8 * 1024;
    l->max_head_bytes = 64 * 1024;
    l->max_header_count = 128;
    l->head_timeout_ms = 10000;
    l->keepalive_timeout_ms = 60000;
    l->body_idle_timeout_ms = 60000;
    l->connect_timeout_ms = 5000;
    l->pool_idle_timeout_ms = 4000;
    l->pool_max_idle_per_target = 64;
    l->high_water_bytes = 256 * 1024;
    l->low_water_bytes = 64 * 1024;
    l->max_connections = 10000;
}

static void on_flush(uv_prepare_t *p);

static void on_wakeup(uv_async_t *a)
{
    net_worker_t *w = container_of(a, net_worker_t, wakeup);
    int what = atomic_load(&w->stop_requested);

    if (what >= 1)
        net__server_stop_listening(w);
    if (what >= 2 && !w->stopping) {
        w->stopping = true;
        net__server_close_all(w);
        net__pool_close_all(w);
        uv_close((uv_handle_t *)&w->wakeup, NULL);
        uv_close((uv_handle_t *)&w->flusher, NULL);
    }
}

net_worker_t *net_worker_new(const net_limits_t *limits, int index)
{
    net_worker_t *w = mem_calloc(sizeof(*w));
    int rc;

    w->limits = *limits;
    w->index = index;
    w->fields_cap = limits->max_header_count ? limits->max_header_count : 1;
    w->fields = mem_calloc(w->fields_cap * sizeof(*w->fields));
    net__list_init(&w->servers);
    net__list_init(&w->conns);
    net__list_init(&w->pool);
    net__list_init(&w->dirty);
    rc = uv_loop_init(&w->loop);
    if (rc == 0)
        rc = uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    if (rc == 0)
        rc = uv_prepare_init(&w->loop, &w->flusher);
    if (rc == 0) {
        uv_prepare_start(&w->flusher, on_flush);
        uv_unref((uv_handle_t *)&w->flusher);
    }
    if (rc < 0) {
        log_error("net", "cannot create worker loop: %s", uv_strerror(rc));
        mem_free(w->fields);
        mem_free(w);
        return NULL;
    }
    return w;
}

uv_loop_t *net_worker_loop(net_worker_t *w)
{
    return &w->loop;
}

const net_limits_t *net_worker_limits(const net_worker_t *w)
{
    return &w->limits;
}

int net_worker_index(const net_worker_t *w)
{
    return w->index;
}

void net_worker_set_data(net_worker_t *w, void *data)
{
    w->data = data;
}

void *net_worker_data(const net_worker_t *w)
{
    return w->data;
}

void net_worker_run(net_worker_t *w)
{
    uv_run(&w->loop, UV_RUN_DEFAULT);
}

void net_worker_stop_async(net_worker_t *w)
{
    atomic_store(&w->stop_requested, 2);
    uv_async_send(&w->wakeup);
}

void net_worker_drain_async(net_worker_t *w)
{
    int expected = 0;
    atomic_compare_exchange_strong(&w->stop_requested, &expected, 1);
    uv_async_send(&w->wakeup);
}

size_t net_worker_active(const net_worker_t *w)
{
    return atomic_load(&((net_worker_t *)w)->active);
}

void net_worker_free(net_worker_t *w)
{
    if (w == NULL)
        return;
    if (uv_loop_close(&w->loop) != 0) {
        /* A handle is still open: run once more so pending close callbacks finish. */
        uv_run(&w->loop, UV_RUN_DEFAULT);
        uv_loop_close(&w->loop);
    }
    mem_free(w->fields);
    mem_free(w);
}

void net__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    net_worker_t *w = container_of(h->loop, net_worker_t, loop);
    (void)suggested;
    if (!w->read_buf_busy) {
        w->read_buf_busy = true;
        *buf = uv_buf_init(w->read_buf, sizeof(w->read_buf));
        return;
    }
    buf->base = mem_try_alloc(NET_READ_BUF);
    buf->len = buf->base ? NET_READ_BUF : 0;
}

void net__release_buf(net_worker_t *w, const uv_buf_t *buf)
{
    if (buf->base == w->read_buf)
        w->read_buf_busy = false;
    else
        mem_free(buf->base);
}

/* One write handed to libuv; owns its bytes. */
typedef struct out_write {
    uv_write_t req;
    net__out_t *out; /* whose output it was (lives until every write completed) */
    char *data;      /* owned */
} out_write_t;

static void on_out_written(uv_write_t *wr, int status)
{
    out_write_t *w = container_of(wr, out_write_t, req);
    net__out_t *o = w->out;
    mem_free(w->data);
    mem_free(w);
    if (o->on_done != NULL)
        o->on_done(o, status);
}

void net__out_init(net__out_t *o, uv_stream_t *s, size_t max_bytes)
{
    o->stream = s;
    o->hold = false;
    o->on_error = NULL;
    o->tls = NULL;
    buf_init(&o->cipher, max_bytes);
    o->on_done = NULL;
    buf_init(&o->pending, max_bytes);
    net__list_init(&o->node);
}

int net__out_add(net_worker_t *w, net__out_t *o, const char *prefix, size_t plen, const char *p,
                 size_t n, const char *suffix, size_t slen)
{
    int rc = buf_append(&o->pending, prefix, plen);
    rc = rc ? rc : buf_append(&o->pending, p, n);
    rc = rc ? rc : buf_append(&o->pending, suffix, slen);
    if (rc < 0)
        return rc;
    if (net__list_empty(&o->node) && !o->hold)
        net__list_push(&w->dirty, &o->node);
    return 0;
}

int net__out_chunk(net_worker_t *w, net__out_t *o, const char *p, size_t n, bool chunked)
{
    char hdr[24];
    int hl;

    if (n == 0)
        return 0; /* a zero-size chunk would end the body */
    if (!chunked)
        return net__out_add(w, o, "", 0, p, n, "", 0);
    hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
    return net__out_add(w, o, hdr, (size_t)hl, p, n, "\r\n", 2);
}

void net__out_kick(net_worker_t *w, net__out_t *o)
{
    if (net__list_empty(&o->node))
        net__list_push(&w->dirty, &o->node);
}

int net__out_flush(net__out_t *o)
{
    buf_t *src = &o->pending;
    out_write_t *wr;
    uv_buf_t b;
    int rc;

    net__list_remove(&o->node);
    /* Held (a host name still resolving): the socket is not open yet, not even for a TLS
     * ClientHello; net__out_unhold schedules the flush. */
    if (o->hold)
        return 0;
    if (o->tls != NULL) {
        /* Plaintext waits until the handshake allows application data; handshake output (and
         * the encrypted records) leave from the cipher buffer. */
        if (o->pending.len > 0 && net__tls_done(o->tls)) {
            rc = net__tls_encrypt(o->tls, o->pending.ptr, o->pending.len);
            if (rc < 0)
                return rc;
            buf_reset(&o->pending);
        }
        rc = net__tls_take_out(o->tls, &o->cipher);
        if (rc < 0)
            return rc;
        src = &o->cipher;
    }
    if (src->len == 0)
        return 0;
    b = uv_buf_init(src->ptr, (unsigned)src->len);
    if (o->stream->write_queue_size == 0) {
        /* Most flushes fit in the socket buffer: write now, without a write request, its
         * completion callback one loop turn later, or an epoll change. */
        rc = uv_try_write(o->stream, &b, 1);
        if (rc == (int)b.len) {
            buf_reset(src);
            if (o->on_done != NULL)
                o->on_done(o, 0);
            return 0;
        }
        if (rc < 0 && rc != UV_EAGAIN)
            return rc;
        if (rc > 0) {
            b.base += rc;
            b.len -= (unsigned)rc;
        }
    }
    wr = mem_alloc(sizeof(*wr));
    wr->data = buf_take(src);
    wr->out = o;
    rc = uv_write(&wr->req, o->stream, &b, 1, on_out_written);
    if (rc < 0) {
        mem_free(wr->data);
        mem_free(wr);
    }
    return rc;
}

size_t net__out_queued(const net__out_t *o)
{
    return o->pending.len + o->cipher.len + o->stream->write_queue_size;
}

void net__out_release(net__out_t *o)
{
    net__list_remove(&o->node);
    buf_free(&o->cipher);
    buf_free(&o->pending);
}

void net__out_unhold(net_worker_t *w, net__out_t *o)
{
    o->hold = false;
    /* With TLS the handshake's first flight waits in OpenSSL, not in pending. */
    if ((o->pending.len > 0 || o->tls != NULL) && net__list_empty(&o->node))
        net__list_push(&w->dirty, &o->node);
}

static void on_flush(uv_prepare_t *p)
{
    net_worker_t *w = container_of(p, net_worker_t, flusher);
    while (!net__list_empty(&w->dirty)) {
        net__out_t *o = container_of(w->dirty.next, net__out_t, node);
        int rc = net__out_flush(o);
        if (rc < 0 && o->on_error != NULL) {
            log_debug("net", "write failed: %s", uv_strerror(rc));
            o->on_error(o, rc);
        }
    }
}

void net__tune(uv_tcp_t *t)
{
    uv_tcp_nodelay(t, 1);
}

/* --- lazy deadlines ----------------------------------------------------------------------------
 */

static void deadline_fire(uv_timer_t *t)
{
    net__deadline_t *d = t->data;
    uint64_t now = uv_now(t->loop);

    if (d->due == 0)
        return; /* cleared since it was armed */
    if (now < d->due) {
        uv_timer_start(t, deadline_fire, d->due - now, 0); /* moved later meanwhile */
        return;
    }
    d->due = 0;
    d->cb(d->arg);
}

void net__deadline_init(uv_loop_t *loop, net__deadline_t *d, void (*cb)(void *arg), void *arg)
{
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->due = 0;
    d->cb = cb;
    d->arg = arg;
}

void net__deadline_set(net__deadline_t *d, uint64_t ms)
{
    uint64_t now = uv_now(d->timer.loop);

    d->due = now + ms;
    if (!uv_is_active((uv_handle_t *)&d->timer) || now + uv_timer_get_due_in(&d->timer) > d->due)
        uv_timer_start(&d->timer, deadline_fire, ms, 0);
}

void net__deadline_clear(net__deadline_t *d)
{
    d->due = 0;
}
