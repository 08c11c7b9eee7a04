/* Declarations shared by the files of the net module only. */
#ifndef OUTRIGGER_NET_INT_H
#define OUTRIGGER_NET_INT_H

#include <http_parser.h>
#include <stdatomic.h>

#include "net/h1.h"
#include "net/net.h"

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

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

/* Most bytes one stream may have queued but not handed to the kernel. Backpressure keeps it near
 * the high-water mark; this bound only stops a handler that ignores it. */
#define NET_OUT_MAX (64u * 1024 * 1024)

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
    char tls_buf[16384];  /* decrypted input, consumed before the decrypt loop continues */
    bool read_buf_busy;   /* the shared buffer is lent to a read in progress */
    net__list_t servers;  /* net_server listeners */
    net__list_t conns;    /* accepted client connections */
    net__list_t pool;     /* upstream connections, idle and busy */
    net__list_t dirty;    /* net__out_t with pending bytes */
    uv_prepare_t flusher; /* flushes dirty outputs before each poll */
    size_t conn_count;    /* accepted connections open */
    net_header_t *fields; /* scratch for h1 while a head is parsed and adopted (no re-entry) */
    size_t fields_cap;    /* its room: limits.max_header_count */
    bool stopping;
};

/* Allocation callback that lends the worker's shared buffer (or a private one when a read is
 * already using it, which libuv never does for one stream but may across streams). */
void net__alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf);
/* Returns a buffer from net__alloc_cb. */
void net__release_buf(net_worker_t *w, const uv_buf_t *buf);

/*
 * Output of one stream, coalesced per loop turn: bytes queued during a turn's callbacks are handed
 * to libuv as one write by the worker's prepare handle, just before the loop polls again. So a
 * response head, its body and the last chunk leave in one syscall and wake the peer once.
 */
/* TLS state of one connection (tls.c). */
typedef struct net__tls net__tls_t;
struct ssl_ctx_st;
int net__tls_new(net__tls_t **out, struct ssl_ctx_st *ctx, bool server);
void net__tls_free(net__tls_t *t);
struct ssl_st *net__tls_ssl(net__tls_t *t);
bool net__tls_done(const net__tls_t *t);
/* Feeds ciphertext from the socket. */
int net__tls_feed(net__tls_t *t, const char *p, size_t n);
/* Advances the handshake: 1 complete, 0 needs more input, negative on failure (detail set). */
int net__tls_handshake(net__tls_t *t, err_detail_t *d);
/* Decrypts: >0 bytes, 0 needs more input, ERR_CLOSED on close_notify, other negative on error. */
int net__tls_read(net__tls_t *t, char *buf, size_t cap, err_detail_t *d);
/* Encrypts plaintext into the outgoing ciphertext. */
int net__tls_encrypt(net__tls_t *t, const char *p, size_t n);
/* Ciphertext waiting to be written. */
size_t net__tls_out_pending(net__tls_t *t);
/* Appends the waiting ciphertext to @p dst. */
int net__tls_take_out(net__tls_t *t, buf_t *dst);
/* True when decrypted or undecrypted input is buffered inside OpenSSL. */
bool net__tls_has_input(net__tls_t *t);

typedef struct net__out net__out_t;
struct net__out {
    uv_stream_t *stream; /* where to write */
    buf_t pending;       /* not yet handed to libuv */
    net__list_t node;    /* in worker->dirty while pending is non-empty */
    bool hold;           /* keep pending (the stream cannot take writes yet) */
    net__tls_t *tls;     /* when set, pending is plaintext, encrypted at flush (borrowed) */
    buf_t cipher;        /* with tls: ciphertext to write */
    void (*on_error)(net__out_t *o, int status); /* a deferred flush failed: close */
    void (*on_done)(net__out_t *o, int status);  /* bytes were written (0) or could not be */
};

void net__out_init(net__out_t *o, uv_stream_t *s, size_t max_bytes);
/* Queues prefix + [p, p+n) + suffix. Returns 0 or ERR_TOO_LARGE/ERR_NOMEM. */
int net__out_add(net_worker_t *w, net__out_t *o, const char *prefix, size_t plen, const char *p,
                 size_t n, const char *suffix, size_t slen);
/* Queues a body chunk, chunk-framed when @p chunked. */
int net__out_chunk(net_worker_t *w, net__out_t *o, const char *p, size_t n, bool chunked);
/* Hands pending bytes to libuv now. Returns 0 or a libuv error. */
int net__out_flush(net__out_t *o);
/* Bytes queued and not yet written (pending + libuv's queue). */
size_t net__out_queued(const net__out_t *o);
/* Drops pending bytes and leaves the dirty list (before closing the stream). */
void net__out_release(net__out_t *o);
/* Schedules a flush even with no plaintext pending (TLS handshake output). */
void net__out_kick(net_worker_t *w, net__out_t *o);
/* Allows flushing again after hold, and schedules it. */
void net__out_unhold(net_worker_t *w, net__out_t *o);

/* Closes every upstream connection of the worker (shutdown). */
void net__pool_close_all(net_worker_t *w);
/* Closes every accepted connection of the worker (shutdown). */
void net__server_close_all(net_worker_t *w);
/* Closes listeners (drain). */
void net__server_stop_listening(net_worker_t *w);

/* Serves an already connected stream socket @p fd (TCP or AF_UNIX) as if it had been accepted by a
 * listener with @p cbs/@p ctx (copied / borrowed). On success the connection owns @p fd and closes
 * it; on failure (ERR_INVAL, libuv code) @p fd is still the caller's. For the fuzz target and
 * tests; on_request does not fire before this returns. */
int net__adopt_fd(net_worker_t *w, int fd, const net_server_cbs_t *cbs, void *ctx)
    __attribute__((warn_unused_result));

/* Makes @p h (initialised; anything it held is freed) the head parsed by h1 from [raw, raw+len):
 * the bytes are copied once into the head's store, the spans of @p m and @p fields point into the
 * copy, names lower-cased and every string NUL-terminated in place. Returns 0 or ERR_NOMEM (then
 * @p h is unchanged). */
int net__head_adopt(net_head_t *h, const char *raw, size_t len, const h1_msg_t *m,
                    const net_header_t *fields) __attribute__((warn_unused_result));

/* Sets TCP_NODELAY and keep-alive on a fresh socket. */
void net__tune(uv_tcp_t *t);

/* A timeout that moves on every request but seldom fires (head, body-idle, keep-alive and upstream
 * idle timeouts). Setting or clearing it writes a deadline; the libuv timer (a heap operation) is
 * restarted only when it would otherwise fire too late, and when it fires early it re-arms itself
 * for the rest. So a busy keep-alive connection touches the timer heap about once per timeout
 * period instead of several times per request. */
typedef struct net__deadline {
    uv_timer_t timer;      /* close it with uv_close((uv_handle_t *)&d->timer, ...) */
    uint64_t due;          /* loop time (ms) when the timeout is up; 0 = none */
    void (*cb)(void *arg); /* called once due has passed */
    void *arg;             /* for cb */
} net__deadline_t;

/** Initialises @p d on @p loop; nothing is due. */
void net__deadline_init(uv_loop_t *loop, net__deadline_t *d, void (*cb)(void *arg), void *arg);
/** The timeout is up @p ms (> 0) from now (loop time), replacing any earlier setting. */
void net__deadline_set(net__deadline_t *d, uint64_t ms);
/** Nothing is due any more (the libuv timer may still fire once, to no effect). */
void net__deadline_clear(net__deadline_t *d);

#endif
