/*
 * net — event loops, and HTTP/1.1 served and sent with streaming bodies and backpressure.
 *
 * Job: accept HTTP/1.1 requests (net_sreq_t) and send HTTP/1.1 requests to upstreams over pooled
 * keep-alive connections (net_creq_t), moving bodies chunk by chunk without ever holding a whole
 * body. Framing is always ours: bodies are decoded on input and re-encoded on output.
 *
 * Ownership:
 *  - net_worker_t is created by net_worker_new and owns its loop, listeners, connections and pool.
 *  - A net_head_t owns the bytes its pointers refer to; net_head_free releases them.
 *  - A net_sreq_t belongs to its connection. It stays valid from on_request until the handler has
 *    ended the response (net_sreq_end/net_sreq_abort) AND, if the client went away, until the
 *    handler's on_close has returned. Data passed to body callbacks is borrowed for the call only.
 *  - A net_creq_t is owned by the module; it stays valid until its on_end callback has returned or
 *    net_creq_abort() was called, whichever comes first; after that it must not be touched.
 *  - Writes (net_sreq_write, net_creq_write) copy their bytes.
 *
 * Threading: a worker and everything hanging off it belong to the thread running its loop; no
 * function here may be called from another thread except net_worker_stop_async.
 *
 * Errors: functions return 0 or a negative code from base/err.h (libuv codes pass through).
 * Callbacks: none fires before the call that arms it returns, except where noted.
 */
#ifndef OUTRIGGER_NET_H
#define OUTRIGGER_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/err.h"

struct ssl_ctx_st;
struct ssl_st;

/*
 * TLS for a listener or an upstream request. The contexts come from the layer above (identity),
 * which can swap them at any time (certificate rotation): each new connection asks get_ctx.
 */
typedef struct net_tls {
    /* Returns a context for one new connection with a reference the caller drops, or NULL when
     * none is available (the connection is then refused). Called on the worker's thread. */
    struct ssl_ctx_st *(*get_ctx)(void *arg, bool server);
    /* Called once a handshake completed: checks the verified peer and writes its identity
     * (NUL-terminated) into @p id. On clients @p expect names the identity required (e.g. a
     * SPIFFE ID); on servers it is NULL. Returns 0 to accept, a negative code to refuse. */
    int (*check_peer)(struct ssl_st *ssl, const char *expect, char *id, size_t id_len, void *arg,
                      err_detail_t *why);
    /* Clients only, may be NULL: called on a new connection's SSL before its handshake with the
     * expected peer and a key naming the connection's target (for session resumption). */
    int (*prepare)(struct ssl_st *ssl, const char *expect, const char *session_key, void *arg);
    void *arg;
} net_tls_t;

/* Longest peer identity kept for a connection (a SPIFFE ID). */
#define NET_PEER_ID_MAX 512

/* Limits that bound what a peer can make us hold or wait for. */
typedef struct net_limits {
    size_t max_url_bytes;            /* request target; beyond → 414 */
    size_t max_head_bytes;           /* request line + headers; beyond → 431 */
    size_t max_header_count;         /* header fields; beyond → 431 */
    uint64_t head_timeout_ms;        /* a whole request head must arrive within this (slowloris) */
    uint64_t keepalive_timeout_ms;   /* idle client connection between requests */
    uint64_t body_idle_timeout_ms;   /* no request-body byte for this long → close */
    uint64_t connect_timeout_ms;     /* upstream TCP connect */
    uint64_t pool_idle_timeout_ms;   /* pooled upstream connection unused this long → closed */
    size_t pool_max_idle_per_target; /* idle connections kept per upstream address */
    size_t high_water_bytes;         /* pending output above which the input side pauses */
    size_t low_water_bytes;          /* pending output below which the input side resumes */
    size_t max_connections;          /* accepted client connections per worker */
} net_limits_t;

/** The defaults: 8 KiB URL, 64 KiB head, 128 headers, 10 s head, 60 s keep-alive, 60 s body idle,
 * 5 s connect, 4 s pool idle, 64 idle per target, 256/64 KiB water marks, 10000 connections. */
void net_limits_defaults(net_limits_t *l);

typedef struct net_header {
    const char *name; /* lower-case, not NUL-terminated; owned by the head */
    size_t name_len;
    const char *value; /* as received, trimmed; owned by the head */
    size_t value_len;
} net_header_t;

/* A parsed or to-be-sent message head. */
typedef struct net_head {
    int method;      /* enum http_method (requests) */
    int status;      /* responses */
    int http_minor;  /* 0 or 1 (major is always 1) */
    const char *url; /* request target; NUL-terminated; owned */
    size_t url_len;
    net_header_t *headers; /* owned array */
    size_t header_count;
    int64_t content_length; /* -1 when absent */
    bool chunked;           /* Transfer-Encoding: chunked */
    bool keep_alive;        /* the peer allows reuse after this message */
    buf_t store;            /* private: the bytes behind the pointers */
    size_t header_cap;      /* private */
    bool has_connection;    /* private: a Connection header is present */
} net_head_t;

/** Prepares an empty head. */
void net_head_init(net_head_t *h);
/** Releases what the head owns. */
void net_head_free(net_head_t *h);
/** Adds a header (copied; the name is lower-cased). Returns 0 or ERR_TOO_LARGE/ERR_NOMEM. */
int net_head_add(net_head_t *h, const char *name, size_t name_len, const char *value,
                 size_t value_len) __attribute__((warn_unused_result));
/** Sets the URL (copied). */
int net_head_set_url(net_head_t *h, const char *url, size_t len)
    __attribute__((warn_unused_result));
/** Finds the first header named @p lname (lower-case); NULL when absent. */
const net_header_t *net_head_get(const net_head_t *h, const char *lname);
/** Counts headers named @p lname. */
size_t net_head_count(const net_head_t *h, const char *lname);
/** True for hop-by-hop fields (RFC 9110 §7.6.1 plus the de-facto ones) and those named in the
 * message's own Connection header. */
bool net_head_is_hop(const net_head_t *h, const char *lname, size_t len);

/* ---------------------------------------------------------------------------------------------- */
/* Workers: one loop per thread. */

typedef struct net_worker net_worker_t;

/** Creates a worker with its own loop (not yet running). @p limits is copied. */
net_worker_t *net_worker_new(const net_limits_t *limits, int index);
/** The worker's loop. */
uv_loop_t *net_worker_loop(net_worker_t *w);
/** The worker's limits (borrowed). */
const net_limits_t *net_worker_limits(const net_worker_t *w);
/** The worker's index (0-based). */
int net_worker_index(const net_worker_t *w);
/** Opaque pointer for the layer above (the sidecar keeps its per-worker state here). */
void net_worker_set_data(net_worker_t *w, void *data);
void *net_worker_data(const net_worker_t *w);
/** Runs the loop until net_worker_stop_async; closes every handle before returning. */
void net_worker_run(net_worker_t *w);
/** Thread-safe: asks the worker's loop to close listeners, then connections, then return. */
void net_worker_stop_async(net_worker_t *w);
/** Thread-safe: asks the worker to stop accepting (listeners closed) but keep serving. */
void net_worker_drain_async(net_worker_t *w);
/** Requests being served or sent right now (for draining). Thread-safe read. */
size_t net_worker_active(const net_worker_t *w);
/** Frees a worker whose loop has returned from net_worker_run. */
void net_worker_free(net_worker_t *w);

/* ---------------------------------------------------------------------------------------------- */
/* Serving. */

typedef struct net_sreq net_sreq_t;

/* What a finished request cost, for metrics and access logs. */
typedef struct net_sreq_stats {
    int status;         /* response status sent; 0 when no head went out */
    uint64_t start_ns;  /* uv_hrtime() when the request head was complete */
    uint64_t end_ns;    /* uv_hrtime() when the response ended or was aborted */
    uint64_t in_bytes;  /* request body bytes received (decoded) */
    uint64_t out_bytes; /* response body bytes handed to the connection */
    bool aborted;       /* cut (abort, client gone, timeout) instead of ended */
} net_sreq_stats_t;

typedef struct net_server_cbs {
    /* A request head arrived. The handler must eventually end or abort the response. The request
     * body (if any) is not delivered until net_sreq_read_body is called. */
    void (*on_request)(net_sreq_t *req, void *ctx);
    /* Optional: the request is over (ended, aborted or its client left). Runs once per request
     * given to on_request, on the worker's loop, while net_sreq_head(req) is still valid; it must
     * not call any net_sreq_* function but net_sreq_head and net_sreq_peer_id. */
    void (*on_done)(net_sreq_t *req, const net_sreq_stats_t *st, void *ctx);
} net_server_cbs_t;

typedef struct net_sreq_body_cbs {
    void (*on_body)(net_sreq_t *req, const char *p, size_t n, void *ctx); /* a decoded chunk */
    void (*on_body_end)(net_sreq_t *req, void *ctx);                      /* body complete */
    void (*on_drain)(net_sreq_t *req, void *ctx); /* response output fell below low water */
    void (*on_close)(net_sreq_t *req, int status, void *ctx); /* client gone / timed out before
                                                                 the handler ended the response */
} net_sreq_body_cbs_t;

/**
 * Listens on @p host:@p port in @p w's loop with SO_REUSEPORT, so that every worker can listen on
 * the same port. @p port 0 picks a free port; @p bound_port (may be NULL) receives the port.
 */
int net_listen(net_worker_t *w, const char *host, int port, const net_server_cbs_t *cbs, void *ctx,
               int *bound_port) __attribute__((warn_unused_result));

/** Like net_listen, but every connection must complete a TLS handshake accepted by
 * @p tls->check_peer before any request is read. @p tls is borrowed for the worker's life. */
int net_listen_tls(net_worker_t *w, const char *host, int port, const net_server_cbs_t *cbs,
                   void *ctx, const net_tls_t *tls, int *bound_port)
    __attribute__((warn_unused_result));

/** The verified TLS peer identity of the request's connection, or "" without TLS. */
const char *net_sreq_peer_id(const net_sreq_t *req);

/** The parsed request head (borrowed, valid as long as the request). */
const net_head_t *net_sreq_head(const net_sreq_t *req);
/** The client's address as text ("127.0.0.1"). */
const char *net_sreq_peer_ip(const net_sreq_t *req);
/** The worker serving the request. */
net_worker_t *net_sreq_worker(const net_sreq_t *req);
/** True when the request has a body to read (Content-Length > 0 or chunked). */
bool net_sreq_has_body(const net_sreq_t *req);
/** Installs body/lifecycle callbacks and starts delivering the body. Callbacks may fire before
 * this returns when body bytes were already buffered. */
void net_sreq_read_body(net_sreq_t *req, const net_sreq_body_cbs_t *cbs, void *ctx);
/** Installs only the lifecycle callbacks (on_drain, on_close) without reading the body. */
void net_sreq_watch(net_sreq_t *req, const net_sreq_body_cbs_t *cbs, void *ctx);
/** Stops / restarts delivering body chunks (backpressure towards the client). */
void net_sreq_pause(net_sreq_t *req);
void net_sreq_resume(net_sreq_t *req);
/**
 * Sends the response head. @p content_length -1 means the body is sent chunked (or until close to
 * an HTTP/1.0 client). Hop-by-hop and framing headers in @p h are not sent; framing is ours.
 */
int net_sreq_respond(net_sreq_t *req, int status, const net_head_t *h, int64_t content_length)
    __attribute__((warn_unused_result));
/** net_sreq_respond with @p extra_count more header fields after @p h's (borrowed). */
int net_sreq_respond_ex(net_sreq_t *req, int status, const net_head_t *h, const net_header_t *extra,
                        size_t extra_count, int64_t content_length)
    __attribute__((warn_unused_result));
/** Sends a complete small response with the given content type and body. */
int net_sreq_respond_simple(net_sreq_t *req, int status, const char *content_type, const char *body,
                            size_t n);
/** Sends "HTTP/1.1 100 Continue" if the client asked for it and nothing was sent yet. */
void net_sreq_continue(net_sreq_t *req);
/** Queues body bytes (copied). */
int net_sreq_write(net_sreq_t *req, const char *p, size_t n) __attribute__((warn_unused_result));
/** Bytes queued towards the client and not yet written. */
size_t net_sreq_queued(const net_sreq_t *req);
/** Ends the response (terminating chunk when chunked). */
void net_sreq_end(net_sreq_t *req);
/** Ends the response abruptly: the connection is closed without completing the framing, so the
 * client can tell the body was truncated. */
void net_sreq_abort(net_sreq_t *req);
/** True once the response head went out. */
bool net_sreq_responded(const net_sreq_t *req);

/* ---------------------------------------------------------------------------------------------- */
/* Sending, over pooled keep-alive connections. */

typedef struct net_creq net_creq_t;

typedef struct net_creq_cbs {
    void (*on_head)(net_creq_t *c, const net_head_t *head, void *ctx);  /* response head */
    void (*on_body)(net_creq_t *c, const char *p, size_t n, void *ctx); /* decoded chunk */
    /* Exactly once: 0 when the response completed, else an error (ERR_NET_CONNECT with the libuv
     * code in *detail, ERR_NET_UPSTREAM_CLOSED, ERR_TIMEOUT, ERR_NET_BAD_RESPONSE ...). After it
     * returns the request is gone. @p sent_any tells whether any request byte was written. */
    void (*on_end)(net_creq_t *c, int status, const char *detail, void *ctx);
    void (*on_drain)(net_creq_t *c, void *ctx); /* request-body output fell below low water */
} net_creq_cbs_t;

/**
 * Starts a request to @p host:@p port ("127.0.0.1", 8000; a name is resolved asynchronously).
 * @p h gives method, URL and headers (hop-by-hop and framing fields are dropped; Host is set to
 * @p host_header). @p body_len: 0 no body, >0 Content-Length, -1 chunked. On success *@p out is the
 * request and callbacks will follow; on failure no callback fires.
 * @p idle_timeout_ms bounds the silence while waiting for / reading the response (0 = none).
 */
int net_creq_start(net_worker_t *w, const char *host, int port, const char *host_header,
                   const net_head_t *h, int64_t body_len, uint64_t idle_timeout_ms,
                   const net_creq_cbs_t *cbs, void *ctx, net_creq_t **out)
    __attribute__((warn_unused_result));

/* Everything about one upstream request, for net_creq_start_opts. */
typedef struct net_creq_opts {
    const char *host;        /* upstream address or name */
    int port;                /* upstream port */
    const char *host_header; /* value of the Host header sent */
    const net_head_t *head;  /* method, URL, and headers to send */
    const net_head_t *base;  /* optional: headers sent first, as they are (no copy), minus
                                hop-by-hop, framing, Host, Expect and those @p skip names */
    bool (*skip)(const char *lname, size_t len, void *arg); /* may be NULL */
    void *skip_arg;                                         /* passed to skip */
    int64_t body_len;         /* 0 none, >0 Content-Length, -1 chunked */
    uint64_t idle_timeout_ms; /* response silence limit, 0 = none */
    const net_tls_t *tls;     /* NULL = plain */
    const char *expect_peer;  /* with tls: identity the server must prove */
} net_creq_opts_t;

/** The general form of net_creq_start: the head is serialised before this returns, so
 * everything @p o points to is borrowed for the call only. */
int net_creq_start_opts(net_worker_t *w, const net_creq_opts_t *o, const net_creq_cbs_t *cbs,
                        void *ctx, net_creq_t **out) __attribute__((warn_unused_result));

/** Like net_creq_start over TLS: the connection's peer must be accepted by
 * @p tls->check_peer with @p expect_peer; pooled connections are reused only for the same
 * address and expected peer. @p tls is borrowed for the worker's life. */
int net_creq_start_tls(net_worker_t *w, const char *host, int port, const char *host_header,
                       const net_head_t *h, int64_t body_len, uint64_t idle_timeout_ms,
                       const net_tls_t *tls, const char *expect_peer, const net_creq_cbs_t *cbs,
                       void *ctx, net_creq_t **out) __attribute__((warn_unused_result));
/** Queues request-body bytes (copied). */
int net_creq_write(net_creq_t *c, const char *p, size_t n) __attribute__((warn_unused_result));
/** Marks the request body complete. */
int net_creq_end(net_creq_t *c) __attribute__((warn_unused_result));
/** Bytes of request queued and not yet written. */
size_t net_creq_queued(const net_creq_t *c);
/** Stops / restarts reading the response (backpressure towards the upstream). */
void net_creq_pause(net_creq_t *c);
void net_creq_resume(net_creq_t *c);
/** Cancels: the connection is closed (never pooled) and no further callback fires. */
void net_creq_abort(net_creq_t *c);

#endif
