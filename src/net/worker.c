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
    }
}

net_worker_t *net_worker_new(const net_limits_t *limits, int index)
{
    net_worker_t *w = mem_calloc(sizeof(*w));
    int rc;

    w->limits = *limits;
    w->index = index;
    net__list_init(&w->servers);
    net__list_init(&w->conns);
    net__list_init(&w->pool);
    rc = uv_loop_init(&w->loop);
    if (rc == 0)
        rc = uv_async_init(&w->loop, &w->wakeup, on_wakeup);
    if (rc < 0) {
        log_error("net", "cannot create worker loop: %s", uv_strerror(rc));
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

int net__write(uv_stream_t *s, const char *prefix, size_t plen, const char *p, size_t n,
               const char *suffix, size_t slen, uv_write_cb cb)
{
    net__write_t *wr = mem_try_alloc(sizeof(*wr) + plen + n + slen);
    uv_buf_t b;
    int rc;

    if (wr == NULL)
        return ERR_NOMEM;
    memcpy(wr->data, prefix, plen);
    if (n > 0)
        memcpy(wr->data + plen, p, n);
    memcpy(wr->data + plen + n, suffix, slen);
    wr->len = plen + n + slen;
    b = uv_buf_init(wr->data, (unsigned)wr->len);
    rc = uv_write(&wr->req, s, &b, 1, cb);
    if (rc < 0)
        mem_free(wr);
    return rc;
}

int net__write_chunk(uv_stream_t *s, const char *p, size_t n, bool chunked, uv_write_cb cb)
{
    char hdr[24];
    int hl;

    if (!chunked)
        return net__write(s, "", 0, p, n, "", 0, cb);
    if (n == 0)
        return 0; /* a zero-size chunk would end the body */
    hl = snprintf(hdr, sizeof(hdr), "%zx\r\n", n);
    return net__write(s, hdr, (size_t)hl, p, n, "\r\n", 2, cb);
}

void net__tune(uv_tcp_t *t)
{
    uv_tcp_nodelay(t, 1);
}
