/* Declarations shared by the files of the net module only. */
#ifndef OUTRIGGER_NET_INT_H
#define OUTRIGGER_NET_INT_H

#include <http_parser.h>
#include <stdatomic.h>

#include "net/net.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Intrusive doubly linked list (libuv's queue.h idea): a node embedded in each element. */
typedef struct net__list {
    struct net__list *prev, *next;
} net__list_t;

static inline void net__list_init(net__list_t *l)
{
    l->prev = l->next = l;
}
static inline bool net__list_empty(const net__list_t *l)
{
    return l->next == l;
}
static inline void net__list_push(net__list_t *head, net__list_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}
static inline void net__list_remove(net__list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

/* Size of the worker's shared read buffer. Reads land here and are consumed before the read
 * callback returns, so idle connections hold no read memory. */
#define NET_READ_BUF 65536

struct net_server;
struct net_pool_conn;

struct net_worker {
    uv_loop_t loop;            /* the worker's loop */
    uv_async_t wakeup;         /* other threads ask for stop/drain through this */
    atomic_int stop_requested; /* 1 drain, 2 stop */
    atomic_size_t active;      /* requests in flight (server and client side) */
    net_limits_t limits;       /* copied at creation */
    int index;                 /* worker number */
    void *data;                /* owned by the layer above */
    char read_buf[NET_READ_BUF];
    bool read_buf_busy;        /* the shared buffer is lent to a read in progress */
    net__list_t servers;       /* net_server listeners */
    net__list_t conns;         /* accepted client connections */
    net__list_t pool;          /* upstream connections, idle and busy */
    size_t conn_count;         /* accepted connections open */
    bool stopping;
};

/* Allocation callback that lends the worker's shared buffer (or a private one when a read is
 * already using it, which libuv never does for one stream but may across streams). */
void net__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* Returns a buffer from net__alloc_cb. */
void net__release_buf(net_worker_t *w, const uv_buf_t *buf);

/* One copied write with room for chunk framing around the payload. */
typedef struct net__write {
    uv_write_t req;
    size_t len;
    char data[];
} net__write_t;

/* Writes [p, p+n) to @p s, wrapped in chunk framing when @p chunked. @p cb frees the write. */
int net__write(uv_stream_t *s, const char *prefix, size_t plen, const char *p, size_t n,
               const char *suffix, size_t slen, uv_write_cb cb);
int net__write_chunk(uv_stream_t *s, const char *p, size_t n, bool chunked, uv_write_cb cb);

/* Closes every upstream connection of the worker (shutdown). */
void net__pool_close_all(net_worker_t *w);
/* Closes every accepted connection of the worker (shutdown). */
void net__server_close_all(net_worker_t *w);
/* Closes listeners (drain). */
void net__server_stop_listening(net_worker_t *w);

/* Sets TCP_NODELAY and keep-alive on a fresh socket. */
void net__tune(uv_tcp_t *t);

#endif
