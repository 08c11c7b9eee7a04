/*
 * The streaming proxy: API request → (name resolution) → peer sidecar → app, and the response back,
 * chunk by chunk with backpressure both ways. One px_t carries one exchange; it dies when both the
 * client side and the upstream side are finished.
 */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"
#include "identity/spiffe.h"
#include "invoke/resolve.h"
#include "mcp/peek.h"
#include "mcp/toolfilter.h"
#include "policy/acl.h"
#include "policy/mw.h"
#include "resiliency/resiliency.h"

/* Dapr retries name resolution for non-multi resolvers 5 times, 100 ms apart (spec §1.5). */
#define RESOLVE_TRIES 5
#define RESOLVE_PAUSE_MS 100
#define CACHE_TTL_MS 5000
#define PRM_METHOD ".well-known/oauth-protected-resource"
#define PRM_METHOD_LEN (sizeof(PRM_METHOD) - 1)

/* The URLs a middleware may need to tell a client: kept out of line (most requests, and every
 * long-lived stream once started, do without them). */
typedef struct px_urls {
    char res_base[1024]; /* URL the client uses for the target app's root */
    char prm_base[1100]; /* URL of the app's Protected Resource Metadata */
} px_urls_t;

/* One name-resolution lookup on the thread pool. */
typedef struct px_lookup {
    uv_work_t work;
    struct px *p;
    uint64_t start_ns;   /* when the lookup was queued (a slow one is logged) */
    int rc;              /* lookup outcome */
    char addr[320];      /* lookup result */
    err_detail_t detail; /* lookup error text */
} px_lookup_t;

typedef struct px {
    invoke_worker_t *iw; /* owner worker */
    net_sreq_t *sreq;    /* client side; NULL once finished */
    net_creq_t *creq;    /* upstream side; NULL when not running */
    net_head_t out;      /* request head to send upstream */
    int port;            /* upstream port */
    int64_t body_len;    /* request body: 0 none, >0 length, -1 chunked */
    bool to_app;         /* upstream is our own app (not a peer sidecar) */
    bool resolving;      /* a lookup runs on the thread pool */
    bool resp_started;   /* the response head went to the client */
    bool sse;            /* the response is an event stream */
    bool drop_api_token; /* the client's dapr-api-token is ours: not forwarded */
    bool json_body;      /* the request body is declared as JSON */
    bool external;       /* upstream is an HTTPEndpoint or a full URL (external.c) */
    buf_t kept;          /* the request body as it flowed, up to INVOKE_KEEP_BODY_MAX */
    bool kept_all;       /* the body ended and all of it is in kept */
    bool kept_over;      /* the body outgrew kept (kept was released) */
    mcp_peek_t mcp;      /* JSON-RPC facts: from Mcp-Method/Mcp-Name, then the body */
    bool mcp_conflict;   /* Mcp-Method/Mcp-Name disagree with the body */
    /* middleware */
    pol_call_t call;      /* the pipeline's view of the request (when mw) */
    net_head_t mw_set;    /* headers middleware set: the client's of these names are dropped */
    mcp_toolfilter_t *tf; /* tools/list results are filtered (OPA visible_tools); owned */
    int tf_mode;          /* 0 off, 1 JSON body (buffered), 2 SSE (event by event) */
    buf_t tf_buf;         /* JSON mode: the body; SSE mode: the filtered output */
    bool mw;              /* call is initialised */
    bool mw_pending;      /* a middleware finishes later */
    bool body_buffered;   /* the body was read whole before the upstream request */
    void (*mw_next)(struct px *); /* where the request goes once the pipeline passed */
    invoke_local_fn local;        /* a sidecar API route served here, after httpPipeline */
    res_snapshot_t *snap;         /* the Configuration in force for this request */
    buf_t mw_path;                /* path the middleware judges */
    buf_t route_method;           /* caller side: normalised method (the route outlives us) */
    const char *route_query;      /* raw query, borrowed from the request head */
    size_t route_query_len;
    resil_call_t *rcall; /* resiliency of an API call; NULL on the callee side; owned */
    bool body_read;      /* the client's body is being read (first attempt started) */
    bool callee;         /* serving a peer sidecar's call (internal port) */
    obs_call_t ocall;    /* metrics, span and audit of this exchange */
    px_urls_t *urls;     /* the client's URLs for the app (pipelines, metadata); NULL after use */
    /* Not zeroed by px_new (several KiB that every request would clear): each is written before
     * it is read; the strings start empty. */
    char target[INVOKE_ID_MAX * 2]; /* target as the client named it (for error messages) */
    char id[INVOKE_ID_MAX];         /* target app id */
    char ns[INVOKE_ID_MAX];         /* target namespace */
    char host[300];                 /* upstream host */
    char caller_id[INVOKE_ID_MAX];  /* callee side: the verified caller app id */
    invoke_ext_target_t ext;        /* with external (filled whole by invoke__ext_target): where
                                       to; ext.path is dead after forward */
} px_t;

/*
 * The callee sidecar marks the errors it produces itself (app unreachable, reset, timeout), so
 * that the caller's resiliency treats them as the transport errors they are, not as the app's
 * own HTTP status; Dapr keeps the two apart as a gRPC error versus the app's response.
 */
#define CALLEE_ERROR_HEADER "dapr-callee-error"

static void px_free(px_t *p)
{
    resil_call_free(p->rcall);
    obs_call_end(&p->ocall, NULL, p->kept_all ? p->kept.ptr : NULL, p->kept_all ? p->kept.len : 0);
    net_head_free(&p->out);
    net_head_free(&p->mw_set);
    mcp_toolfilter_free(p->tf);
    buf_free(&p->tf_buf);
    buf_free(&p->kept);
    if (p->mw)
        pol_call_free(&p->call);
    buf_free(&p->mw_path);
    buf_free(&p->route_method);
    res_snapshot_unref(p->snap);
    mem_free(p->urls);
    mem_free(p);
}

/* Frees the exchange when neither side can call back any more. */
static void px_maybe_free(px_t *p)
{
    if (p->sreq == NULL && p->creq == NULL && !p->resolving && !p->mw_pending)
        px_free(p);
}

static void px_fail(px_t *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ERR_DIRECT_INVOKE 500 with CALLEE_ERROR_HEADER. */
static void respond_callee_error(net_sreq_t *s, const char *target, const char *err)
{
    static const net_header_t mark = {CALLEE_ERROR_HEADER, sizeof(CALLEE_ERROR_HEADER) - 1, "1", 1};
    net_head_t h;
    buf_t b;
    int rc;

    net_head_init(&h);
    buf_init(&b, 8192);
    rc = buf_append_str(
        &b, "{\"errorCode\":\"ERR_DIRECT_INVOKE\",\"message\":\"failed to invoke, id: ");
    rc = rc ? rc : buf_append_json_str(&b, target, strlen(target));
    rc = rc ? rc : buf_append_str(&b, ", err: ");
    rc = rc ? rc : buf_append_json_str(&b, err, strlen(err));
    rc = rc ? rc : buf_append_str(&b, "\"}");
    rc = rc ? rc : net_head_add(&h, "content-type", 12, "application/json", 16);
    rc = rc ? rc : net_sreq_respond_ex(s, 500, &h, &mark, 1, (int64_t)b.len);
    rc = rc ? rc : net_sreq_write(s, b.ptr, b.len);
    if (rc == 0)
        net_sreq_end(s);
    else
        net_sreq_abort(s);
    net_head_free(&h);
    buf_free(&b);
}

/* Answers the client with ERR_DIRECT_INVOKE 500 ("failed to invoke, id: <t>, err: ..."), or cuts
 * the response if it already started. */
static void px_fail(px_t *p, const char *fmt, ...)
{
    char err[600];
    net_sreq_t *s = p->sreq;
    va_list ap;

    if (s == NULL)
        return;
    p->sreq = NULL;
    va_start(ap, fmt);
    vsnprintf(err, sizeof(err), fmt, ap);
    va_end(ap);
    obs_call_end(&p->ocall, err, p->kept_all ? p->kept.ptr : NULL, p->kept_all ? p->kept.len : 0);
    if (p->resp_started || net_sreq_responded(s)) {
        log_debug("invoke", "aborting response from %s: %s", p->target, err);
        net_sreq_abort(s);
        return;
    }
    log_debug("invoke", "failed to invoke %s: %s", p->target, err);
    if (p->callee)
        respond_callee_error(s, p->target, err);
    else
        invoke__respond_error(s, 500, "ERR_DIRECT_INVOKE", "failed to invoke, id: %s, err: %s",
                              p->target, err);
}

/* --- client-side callbacks -------------------------------------------------------------------- */

/* Keeps a copy of a small request body (for replay and for reading the JSON-RPC facts). */
static void px_keep(px_t *p, const char *d, size_t n)
{
    if (p->kept_over)
        return;
    if (buf_append(&p->kept, d, n) < 0) {
        buf_free(&p->kept);
        p->kept_over = true;
    }
}

/* Starts the exchange's metrics and span; MCP facts read from a body buffered earlier (for a
 * middleware) are handed over at once. */
static void px_obs_start(px_t *p, obs_side_t side, const char *peer, const char *path,
                         size_t path_len)
{
    obs_call_start(p->iw->sc->obs, &p->ocall, net_worker_index(p->iw->nw), side,
                   net_sreq_head(p->sreq), peer, path, path_len);
    if (p->kept_all && p->mcp.valid && !p->mcp.from_headers)
        obs_call_mcp(&p->ocall, p->mcp.method, p->mcp.name, NULL, p->mcp.id);
}

/* The whole body is in: read its JSON-RPC facts once. */
static void px_kept_done(px_t *p)
{
    mcp_peek_t body;
    if (p->kept_over)
        return;
    p->kept_all = true;
    if (p->kept.len == 0 || !p->json_body)
        return;
    if (mcp_peek_body(p->kept.ptr, p->kept.len, &body) == 0) {
        p->mcp_conflict = p->mcp.from_headers && !mcp_peek_agree(&p->mcp, &body);
        p->mcp = body;
        obs_call_mcp(&p->ocall, body.method, body.name, NULL, body.id);
    }
}

static void on_client_body(net_sreq_t *s, const char *d, size_t n, void *ctx)
{
    px_t *p = ctx;
    px_keep(p, d, n);
    if (p->creq == NULL)
        return;
    obs_call_bytes(&p->ocall, n, 0);
    if (net_creq_write(p->creq, d, n) < 0) {
        net_creq_abort(p->creq);
        p->creq = NULL;
        px_fail(p, "failed writing the request body upstream");
        return;
    }
    if (net_creq_queued(p->creq) > net_worker_limits(p->iw->nw)->high_water_bytes)
        net_sreq_pause(s);
}

static void on_client_body_end(net_sreq_t *s, void *ctx)
{
    px_t *p = ctx;
    (void)s;
    px_kept_done(p);
    if (p->creq != NULL && net_creq_end(p->creq) < 0) {
        net_creq_abort(p->creq);
        p->creq = NULL;
        px_fail(p, "failed ending the request body upstream");
    }
}

static void on_client_drain(net_sreq_t *s, void *ctx)
{
    px_t *p = ctx;
    (void)s;
    if (p->creq != NULL)
        net_creq_resume(p->creq);
}

static void on_client_close(net_sreq_t *s, int status, void *ctx)
{
    px_t *p = ctx;
    (void)s;
    (void)status;
    /* The client went away: cancel the upstream request (its connection is not reused). */
    p->sreq = NULL;
    if (p->creq != NULL) {
        net_creq_abort(p->creq);
        p->creq = NULL;
    }
    px_maybe_free(p);
}

static const net_sreq_body_cbs_t client_cbs = {
    .on_body = on_client_body,
    .on_body_end = on_client_body_end,
    .on_drain = on_client_drain,
    .on_close = on_client_close,
};

static bool is_sidecar_header(const char *n, size_t len);

/* Which of the client's headers are not forwarded (besides hop-by-hop, framing, Host, Expect). */
static bool skip_client_header(const char *name, size_t len, void *arg)
{
    const px_t *p = arg;
    for (size_t i = 0; i < p->mw_set.header_count; i++) {
        const net_header_t *h = &p->mw_set.headers[i];
        if (h->name_len == len && memcmp(h->name, name, len) == 0)
            return true;
    }
    return is_sidecar_header(name, len) || obs_skip_header(&p->ocall, name, len) ||
           (p->drop_api_token && str_eq(name, len, "dapr-api-token")) ||
           (p->external && invoke__ext_overrides(&p->ext, name, len));
}

/* --- upstream callbacks ----------------------------------------------------------------------- */

/*
 * An attempt ended with @p out before any response byte reached the client: asks the resiliency
 * policy whether to try again. Returns true when a retry is scheduled (the upstream request is
 * then gone). A request is replayed only when its whole body was kept (spec §5.4: streaming
 * requests are never retried).
 */
static bool px_retry(px_t *p, resil_outcome_t out, int status)
{
    resil_req_state_t rs;

    if (p->rcall == NULL || p->sreq == NULL || p->resp_started)
        return false;
    rs.replayable = p->kept_all && p->body_len >= 0;
    rs.tool_call = p->mcp.valid && (p->mcp.batch || strcmp(p->mcp.method, "tools/call") == 0);
    rs.to_peer = !p->to_app && !p->external;
    if (!resil_call_failed(p->rcall, out, status, &rs))
        return false;
    if (p->creq != NULL) {
        net_creq_abort(p->creq);
        p->creq = NULL;
    }
    return true;
}

static void on_up_head(net_creq_t *c, const net_head_t *h, void *ctx)
{
    px_t *p = ctx;
    static const net_header_t no_buffering = {"x-accel-buffering", 17, "no", 2};
    const net_header_t *ct = net_head_get(h, "content-type");
    bool add;
    int rc;

    (void)c;
    if (p->sreq == NULL)
        return;
    if (h->status < 200 || h->status > 399) {
        bool callee_error =
            !p->to_app && !p->external && net_head_get(h, CALLEE_ERROR_HEADER) != NULL;
        if (px_retry(p, callee_error ? RESIL_TRANSPORT_FAILED : RESIL_STATUS, h->status))
            return;
    }
    obs_call_response(&p->ocall, h->status, h);
    p->sse = ct != NULL && ct->value_len >= 17 && str_ieq(ct->value, 17, "text/event-stream");
    if (p->rcall != NULL)
        resil_call_forwarding(p->rcall, h->status, p->sse);
    /* Tell buffering reverse proxies in front of us to pass events through as they come. The
     * app's head is framed again straight from where it was parsed (hop-by-hop fields left out). */
    add = p->sse && net_head_get(h, "x-accel-buffering") == NULL;
    if (p->tf != NULL && h->status == 200)
        p->tf_mode =
            p->sse                                                                              ? 2
            : (ct != NULL && ct->value_len >= 16 && str_ieq(ct->value, 16, "application/json")) ? 1
                                                                                                : 0;
    buf_init(&p->tf_buf, MCP_FILTER_MAX + 1);
    rc = net_sreq_respond_ex(p->sreq, h->status, h, add ? &no_buffering : NULL, add ? 1 : 0,
                             p->tf_mode   ? -1
                             : h->chunked ? -1
                                          : h->content_length);
    if (rc < 0) {
        net_creq_abort(p->creq);
        p->creq = NULL;
        px_fail(p, "failed sending the response head");
        px_maybe_free(p);
        return;
    }
    p->resp_started = true;
}

static void on_up_body(net_creq_t *c, const char *d, size_t n, void *ctx)
{
    px_t *p = ctx;
    if (p->sreq == NULL)
        return;
    obs_call_bytes(&p->ocall, 0, n);
    if (p->tf_mode == 1) { /* the whole JSON body is needed to filter it */
        if (buf_append(&p->tf_buf, d, n) < 0)
            p->tf_buf.len = p->tf_buf.max; /* too large: refused at the end */
        return;
    }
    if (p->tf_mode == 2) {
        buf_reset(&p->tf_buf);
        if (mcp_toolfilter_sse(p->tf, d, n, &p->tf_buf) < 0) {
            net_creq_abort(c);
            p->creq = NULL;
            px_fail(p, "failed filtering the event stream");
            px_maybe_free(p);
            return;
        }
        d = p->tf_buf.ptr ? p->tf_buf.ptr : "";
        n = p->tf_buf.len;
    }
    if (n > 0 && net_sreq_write(p->sreq, d, n) < 0) {
        net_creq_abort(c);
        p->creq = NULL;
        px_fail(p, "failed writing the response body");
        px_maybe_free(p);
        return;
    }
    if (net_sreq_queued(p->sreq) > net_worker_limits(p->iw->nw)->high_water_bytes)
        net_creq_pause(c);
}

static void on_up_drain(net_creq_t *c, void *ctx)
{
    px_t *p = ctx;
    (void)c;
    if (p->sreq != NULL)
        net_sreq_resume(p->sreq);
}

static void cache_forget(invoke_worker_t *iw, const char *id, const char *ns);

/* The upstream body ended: the filtered rest of a tools/list result goes out. */
static int px_filter_end(px_t *p)
{
    buf_t out;
    int rc;
    buf_init(&out, MCP_FILTER_MAX * 2);
    if (p->tf_mode == 1)
        rc = mcp_toolfilter_json(p->tf, p->tf_buf.ptr ? p->tf_buf.ptr : "", p->tf_buf.len, &out);
    else
        rc = mcp_toolfilter_sse_end(p->tf, &out);
    if (rc == 0 && out.len > 0)
        rc = net_sreq_write(p->sreq, out.ptr, out.len);
    buf_free(&out);
    if (mcp_toolfilter_removed(p->tf) > 0)
        log_debug("opa", "tools/list for %s: %zu tools hidden", p->caller_id,
                  mcp_toolfilter_removed(p->tf));
    return rc;
}

static void on_up_end(net_creq_t *c, int status, const char *detail, void *ctx)
{
    px_t *p = ctx;
    (void)c;
    p->creq = NULL;
    if (status == ERR_NET_CONNECT && !p->to_app && !p->external)
        cache_forget(p->iw, p->id, p->ns);
    if (status == 0 && p->rcall != NULL)
        resil_call_end(p->rcall);
    if (status != 0 &&
        px_retry(p, status == ERR_NET_CONNECT ? RESIL_CONNECT_FAILED : RESIL_TRANSPORT_FAILED, 0))
        return;
    if (status == 0) {
        if (p->sreq != NULL && p->tf_mode != 0 && px_filter_end(p) < 0) {
            px_fail(p, "failed filtering the tools/list result");
        } else if (p->sreq != NULL) {
            net_sreq_t *s = p->sreq;
            p->sreq = NULL;
            net_sreq_end(s);
        }
    } else if (p->external) {
        px_fail(p, "error invoking external endpoint: %s %s:%d: %s",
                status == ERR_NET_CONNECT ? "dial tcp" : "read tcp", p->host, p->port,
                detail ? detail : err_str(status));
    } else if (p->to_app) {
        px_fail(p, "error invoking app channel: %s %s:%d: %s",
                status == ERR_NET_CONNECT ? "dial tcp" : "read tcp", p->host, p->port,
                detail ? detail : err_str(status));
    } else {
        px_fail(p, "connection error to %s:%d: %s", p->host, p->port,
                detail ? detail : err_str(status));
    }
    px_maybe_free(p);
}

static const net_creq_cbs_t up_cbs = {
    .on_head = on_up_head,
    .on_body = on_up_body,
    .on_end = on_up_end,
    .on_drain = on_up_drain,
};

/* Starts the upstream request to p->host:p->port and the flow of the client's body. */
static void px_send(px_t *p)
{
    invoke_worker_t *iw = p->iw;
    char host_header[320];
    int rc;

    char expect[SPIFFE_ID_MAX + 1];
    /* The client's own headers are sent from its parsed head (no copy), minus what only the
     * sidecar may assert; p->out holds the URL and the headers the sidecar adds. */
    net_creq_opts_t o = {.host = p->host,
                         .port = p->port,
                         .host_header = host_header,
                         .head = &p->out,
                         .base = net_sreq_head(p->sreq),
                         .skip = skip_client_header,
                         .skip_arg = p,
                         .body_len = p->body_buffered ? (int64_t)p->kept.len : p->body_len,
                         .idle_timeout_ms = (uint64_t)iw->sc->opts->stream_idle_timeout_s * 1000};

    str_host_port(host_header, sizeof(host_header), p->host, p->port);
    /* Every pipeline has run: the client's URLs are no longer needed (a stream may last hours). */
    mem_free(p->urls);
    p->urls = NULL;
    if (p->rcall != NULL) {
        /* An open breaker answers at once: nothing is sent upstream (spec §1.5). */
        rc = resil_call_begin(p->rcall);
        if (rc < 0) {
            px_fail(p, "%s", err_str(rc));
            px_maybe_free(p);
            return;
        }
    }
    rc = 0;
    if (p->external) {
        /* The remote server's own name: Host as the URL wrote it, SNI and certificate check. */
        o.host_header = p->ext.authority;
        o.tls = p->ext.tls;
        o.expect_peer = p->ext.tls ? p->ext.host : NULL;
    } else if (!p->to_app && iw->sc->mtls != NULL) {
        /* A peer sidecar must prove, in the handshake, that it is the app we resolved. */
        rc = invoke__mtls_peer_uri(iw->sc->mtls, p->id, p->ns, expect, sizeof(expect));
        o.tls = invoke__mtls_tls(iw->sc->mtls);
        o.expect_peer = expect;
    }
    if (rc == 0)
        rc = net_creq_start_opts(iw->nw, &o, &up_cbs, p, &p->creq);
    if (rc < 0) {
        px_fail(p, "%s", err_str(rc));
        px_maybe_free(p);
        return;
    }
    if (!p->body_buffered && !p->body_read) {
        p->body_read = true;
        net_sreq_read_body(p->sreq, &client_cbs, p);
        return;
    }
    /* The body is whole in kept: a middleware read it before deciding, or this is a retry
     * (px_retry only retries when all of it was kept). */
    if ((p->kept.len > 0 && net_creq_write(p->creq, p->kept.ptr, p->kept.len) < 0) ||
        net_creq_end(p->creq) < 0) {
        net_creq_abort(p->creq);
        p->creq = NULL;
        px_fail(p, "failed writing the request body upstream");
        px_maybe_free(p);
    }
}

/* --- name resolution with a short per-worker cache -------------------------------------------- */

/* Writes "id\nns" into @p key; returns its length, or 0 when it does not fit. */
static size_t cache_key(char *key, size_t n, const char *id, const char *ns)
{
    size_t il = strlen(id), nl = strlen(ns);
    if (il + 1 + nl > n)
        return 0;
    memcpy(key, id, il);
    key[il] = '\n';
    memcpy(key + il + 1, ns, nl);
    return il + 1 + nl;
}

static invoke_cache_entry_t *cache_find(invoke_worker_t *iw, const char *id, const char *ns)
{
    char key[INVOKE_ID_MAX * 2];
    size_t kl = cache_key(key, sizeof(key), id, ns);
    for (size_t i = 0; kl > 0 && i < INVOKE_CACHE_SLOTS; i++) {
        invoke_cache_entry_t *e = &iw->cache[i];
        if (e->key_len == kl && memcmp(e->key, key, kl) == 0)
            return e;
    }
    return NULL;
}

static const invoke_cache_entry_t *cache_get(invoke_worker_t *iw, const char *id, const char *ns)
{
    invoke_cache_entry_t *e = cache_find(iw, id, ns);
    return e != NULL && e->expires_ms > uv_now(net_worker_loop(iw->nw)) ? e : NULL;
}

static void cache_put(invoke_worker_t *iw, const char *id, const char *ns, const char *host,
                      int port)
{
    invoke_cache_entry_t *e = cache_find(iw, id, ns);
    if (e == NULL)
        e = &iw->cache[iw->cache_next++ % INVOKE_CACHE_SLOTS];
    e->key_len = cache_key(e->key, sizeof(e->key), id, ns);
    snprintf(e->host, sizeof(e->host), "%s", host);
    e->port = port;
    e->expires_ms = uv_now(net_worker_loop(iw->nw)) + CACHE_TTL_MS;
}

static void cache_forget(invoke_worker_t *iw, const char *id, const char *ns)
{
    invoke_cache_entry_t *e = cache_find(iw, id, ns);
    if (e != NULL)
        e->expires_ms = 0;
}

static int split_addr(px_t *p, const char *addr)
{
    const char *colon = strrchr(addr, ':');
    size_t hl;
    if (colon == NULL || str_port(colon + 1, &p->port) < 0)
        return ERR_INVAL;
    hl = (size_t)(colon - addr);
    if (hl >= sizeof(p->host))
        return ERR_INVAL;
    /* "[::1]:port" → "::1" */
    if (hl >= 2 && addr[0] == '[' && addr[hl - 1] == ']') {
        memcpy(p->host, addr + 1, hl - 2);
        p->host[hl - 2] = '\0';
    } else {
        memcpy(p->host, addr, hl);
        p->host[hl] = '\0';
    }
    return 0;
}

static void do_lookup(uv_work_t *w)
{
    px_lookup_t *l = w->data;
    px_t *p = l->p;
    for (int i = 0; i < RESOLVE_TRIES; i++) {
        l->rc =
            resolve_lookup(p->iw->sc->resolve, p->id, p->ns, l->addr, sizeof(l->addr), &l->detail);
        if (l->rc != ERR_INVOKE_NO_HOST)
            break;
        if (i + 1 < RESOLVE_TRIES)
            uv_sleep(RESOLVE_PAUSE_MS);
    }
}

static void after_lookup(uv_work_t *w, int status)
{
    px_lookup_t *l = w->data;
    px_t *p = l->p;
    uint64_t ms = (uv_hrtime() - l->start_ns) / 1000000;
    int rc;

    if (ms >= 1000)
        log_warn("resolve", "looking up %s.%s took %llu ms (registry busy or thread pool full)",
                 p->id, p->ns, (unsigned long long)ms);
    p->resolving = false;
    if (p->sreq == NULL) { /* the client left meanwhile */
        mem_free(l);
        px_maybe_free(p);
        return;
    }
    if (status < 0 || l->rc < 0) {
        px_fail(p, "failed to resolve address for '%s': %s", p->target,
                l->rc == ERR_INVOKE_NO_HOST ? "no host found with the given ID"
                : l->detail.msg[0]          ? l->detail.msg
                                            : err_str(l->rc));
        mem_free(l);
        px_maybe_free(p);
        return;
    }
    rc = split_addr(p, l->addr);
    if (rc < 0) {
        px_fail(p, "invalid address '%s' from name resolution", l->addr);
        mem_free(l);
        px_maybe_free(p);
        return;
    }
    mem_free(l);
    cache_put(p->iw, p->id, p->ns, p->host, p->port);
    px_send(p);
}

/* Starts an attempt: straight to our own app, to a peer from the cache, else after a lookup. */
static void px_route(px_t *p)
{
    const invoke_cache_entry_t *e;
    int rc;

    if (p->to_app || p->external) {
        px_send(p);
        return;
    }
    e = cache_get(p->iw, p->id, p->ns);
    if (e != NULL) {
        memcpy(p->host, e->host, sizeof(p->host));
        p->port = e->port;
        px_send(p);
        return;
    }
    {
        px_lookup_t *l = mem_alloc(sizeof(*l));
        l->p = p;
        l->start_ns = uv_hrtime();
        l->rc = 0;
        l->addr[0] = '\0';
        l->detail.msg[0] = '\0';
        l->work.data = l;
        p->resolving = true;
        rc = uv_queue_work(net_worker_loop(p->iw->nw), &l->work, do_lookup, after_lookup);
        if (rc < 0)
            mem_free(l);
    }
    if (rc < 0) {
        p->resolving = false;
        px_fail(p, "name resolution unavailable: %s", uv_strerror(rc));
        px_maybe_free(p);
    }
}

/* The resiliency timeout of the running attempt fired (spec §1.5: "context deadline exceeded"). */
static void on_attempt_timeout(resil_call_t *c, void *ctx)
{
    px_t *p = ctx;
    (void)c;
    if (p->creq != NULL) {
        net_creq_abort(p->creq);
        p->creq = NULL;
    }
    if (!px_retry(p, RESIL_TIMED_OUT, 0)) {
        px_fail(p, "context deadline exceeded");
        px_maybe_free(p);
    }
}

/* The pause before a retry ended: the next attempt (a peer is looked up again if it was lost). */
static void on_retry_due(resil_call_t *c, void *ctx)
{
    px_t *p = ctx;
    (void)c;
    if (p->sreq == NULL) {
        px_maybe_free(p);
        return;
    }
    px_route(p);
}

/* --- building the upstream head --------------------------------------------------------------- */

/* Identity and routing headers only the sidecar may set: whatever a client or app sends under
 * these names (in any case) is dropped, so duplicates cannot exist. */
static bool is_sidecar_header(const char *n, size_t len)
{
    return str_eq(n, len, "dapr-caller-app-id") || str_eq(n, len, "dapr-caller-namespace") ||
           str_eq(n, len, "dapr-callee-app-id") || str_eq(n, len, "dapr-app-id") ||
           str_eq(n, len, "destination-app-id") || str_eq(n, len, INVOKE_RESOURCE_HEADER);
}

static int add_str(net_head_t *h, const char *name, const char *value)
{
    return net_head_add(h, name, strlen(name), value, strlen(value));
}

/* Builds "/<escaped method>[?query]". */
static int set_url(net_head_t *out, const char *method, size_t mlen, const char *q, size_t qlen)
{
    char mem[256];
    buf_t u;
    int rc;
    buf_init_local(&u, mem, sizeof(mem), 64 * 1024);
    rc = buf_append(&u, "/", 1);
    rc = rc ? rc : invoke_path_escape(&u, method, mlen);
    if (rc == 0 && q != NULL && qlen > 0) {
        rc = buf_append(&u, "?", 1);
        rc = rc ? rc : buf_append(&u, q, qlen);
    }
    rc = rc ? rc : net_head_set_url(out, buf_ptr(&u), u.len);
    buf_free(&u);
    return rc;
}

static px_t *px_new(invoke_worker_t *iw, net_sreq_t *req)
{
    px_t *p = mem_alloc(sizeof(*p));
    const net_head_t *in = net_sreq_head(req);

    memset(p, 0, offsetof(px_t, target));
    p->target[0] = p->id[0] = p->ns[0] = p->host[0] = p->caller_id[0] = '\0';
    p->iw = iw;
    p->sreq = req;
    net_head_init(&p->out);
    net_head_init(&p->mw_set);
    p->out.method = in->method;
    p->body_len = in->chunked ? -1 : in->content_length > 0 ? in->content_length : 0;
    buf_init(&p->kept, INVOKE_KEEP_BODY_MAX);
    mcp_peek_init(&p->mcp);
    {
        const net_header_t *ct = net_head_get(in, "content-type");
        const net_header_t *mm = net_head_get(in, "mcp-method");
        const net_header_t *mn = net_head_get(in, "mcp-name");
        p->json_body =
            ct != NULL && ct->value_len >= 16 && str_ieq(ct->value, 16, "application/json");
        if (mm != NULL)
            (void)mcp_peek_headers(mm->value, mm->value_len, mn ? mn->value : NULL,
                                   mn ? mn->value_len : 0, &p->mcp);
    }
    if (p->body_len == 0)
        px_kept_done(p);
    net_sreq_watch(req, &client_cbs, p);
    return p;
}

/* --- middleware pipelines --------------------------------------------------------------------- */

/* The Configuration-derived state of the snapshot in force. */
static const invoke_cfg_t *px_cfg(px_t *p)
{
    if (p->snap == NULL)
        p->snap = res_slot_acquire(&p->iw->sc->config);
    return p->snap != NULL ? res_snapshot_data(p->snap) : NULL;
}

/* Answers the client with what a middleware decided. */
static void px_mw_respond(px_t *p)
{
    net_sreq_t *s = p->sreq;
    pol_call_t *c = &p->call;
    const char *body = c->resp_body.ptr ? c->resp_body.ptr : "";

    p->sreq = NULL;
    if (net_head_get(&c->resp_headers, "content-type") == NULL &&
        net_head_add(&c->resp_headers, "content-type", 12, "text/plain; charset=utf-8", 25) < 0) {
        net_sreq_abort(s);
        return;
    }
    if (net_sreq_respond(s, c->status, &c->resp_headers, (int64_t)c->resp_body.len) < 0 ||
        (c->resp_body.len > 0 && net_sreq_write(s, body, c->resp_body.len) < 0)) {
        net_sreq_abort(s);
        return;
    }
    net_sreq_end(s);
}

static void px_mw_done(pol_call_t *call, pol_verdict_t v)
{
    px_t *p = (px_t *)((char *)call - offsetof(px_t, call));
    p->mw_pending = false;
    if (p->sreq == NULL) { /* the client went away meanwhile */
        px_maybe_free(p);
        return;
    }
    if (v == POL_RESPOND) {
        if (call->deny_layer != NULL)
            obs_denied(p->iw->sc->obs, &p->ocall, net_worker_index(p->iw->nw), call->deny_layer,
                       call->side == POL_SIDE_APP ? p->caller_id : p->iw->sc->opts->app_id,
                       call->side == POL_SIDE_APP ? p->iw->sc->opts->app_id : p->target,
                       p->mcp.valid ? p->mcp.method : NULL, p->mcp.valid ? p->mcp.name : NULL);
        obs_call_response(&p->ocall, call->status, NULL);
        log_debug("middleware", "%s answered %d for %s",
                  call->deny_layer ? call->deny_layer : "middleware", call->status, p->target);
        px_mw_respond(p);
        px_maybe_free(p);
        return;
    }
    if (call->tool_filter != NULL) {
        mcp_toolfilter_free(p->tf);
        p->tf = call->tool_filter;
        call->tool_filter = NULL;
    }
    for (size_t i = 0; i < call->set_headers.header_count; i++) {
        const net_header_t *h = &call->set_headers.headers[i];
        if (net_head_add(&p->out, h->name, h->name_len, h->value, h->value_len) < 0 ||
            net_head_add(&p->mw_set, h->name, h->name_len, "", 0) < 0) {
            px_fail(p, "request head too large");
            px_maybe_free(p);
            return;
        }
    }
    p->mw_next(p);
}

static void px_mw_run(px_t *p)
{
    const invoke_cfg_t *cfg = px_cfg(p);
    const pol_pipeline_t *pl = p->call.side == POL_SIDE_HTTP ? cfg->http : cfg->app;
    pol_verdict_t v;

    if (p->mcp_conflict) {
        /* Routing and policy would judge another call than the one the app runs. */
        net_sreq_t *r = p->sreq;
        p->sreq = NULL;
        invoke__respond_error(r, 400, "ERR_MCP_HEADER_MISMATCH",
                              "Mcp-Method/Mcp-Name headers do not match the JSON-RPC body");
        px_maybe_free(p);
        return;
    }
    p->call.body = p->body_buffered ? (p->kept.ptr ? p->kept.ptr : "") : NULL;
    p->call.body_len = p->body_buffered ? p->kept.len : 0;
    p->mw_pending = true;
    v = pol_pipeline_start(pl, &p->call, px_mw_done, p);
    if (v != POL_PENDING)
        px_mw_done(&p->call, v);
}

/* Body reading for a middleware that needs the body before it decides. */
static void on_buffer_body(net_sreq_t *s, const char *d, size_t n, void *ctx)
{
    px_t *p = ctx;
    (void)s;
    if (p->kept_over)
        return;
    px_keep(p, d, n);
    if (p->kept_over) {
        net_sreq_t *r = p->sreq;
        p->sreq = NULL;
        invoke__respond_error(r, 413, "ERR_DIRECT_INVOKE",
                              "failed to invoke, id: %s, err: request body larger than %zu bytes",
                              p->target, p->kept.max);
        px_maybe_free(p);
    }
}

static void on_buffer_end(net_sreq_t *s, void *ctx)
{
    px_t *p = ctx;
    (void)s;
    if (p->sreq == NULL)
        return;
    px_kept_done(p);
    p->body_buffered = true;
    px_mw_run(p);
}

static const net_sreq_body_cbs_t buffer_cbs = {
    .on_body = on_buffer_body,
    .on_body_end = on_buffer_end,
    .on_drain = on_client_drain,
    .on_close = on_client_close,
};

/*
 * Runs the pipeline of @p side for the request, then @p next (or answers the client). @p path is
 * the path the middleware judges.
 */
static void px_pipeline(px_t *p, pol_side_t side, const char *path, size_t path_len,
                        void (*next)(px_t *))
{
    const invoke_cfg_t *cfg = px_cfg(p);
    const pol_pipeline_t *pl = cfg == NULL ? NULL : side == POL_SIDE_HTTP ? cfg->http : cfg->app;
    const net_head_t *in = net_sreq_head(p->sreq);
    size_t limit;

    if (pl == NULL) {
        next(p);
        return;
    }
    if (p->mw) { /* a second pipeline for the same request (httpPipeline, then appHttpPipeline) */
        pol_call_free(&p->call);
        buf_free(&p->mw_path);
    }
    pol_call_init(&p->call);
    p->mw = true;
    p->mw_next = next;
    buf_init(&p->mw_path, 64 * 1024);
    if (buf_append(&p->mw_path, path, path_len) < 0) {
        px_fail(p, "request path too long");
        px_maybe_free(p);
        return;
    }
    p->call.head = in;
    p->call.path = p->mw_path.ptr;
    p->call.path_len = p->mw_path.len;
    p->call.query = p->route_query;
    p->call.query_len = p->route_query_len;
    p->call.mcp = &p->mcp;
    p->call.app_id = p->iw->sc->opts->app_id;
    p->call.caller = p->caller_id;
    p->call.resource_base = p->urls ? p->urls->res_base : "";
    p->call.prm_base = p->urls ? p->urls->prm_base : "";
    p->call.loop = net_worker_loop(p->iw->nw);
    p->call.worker = (unsigned)net_worker_index(p->iw->nw);
    p->call.side = side;
    limit = pol_pipeline_body_limit(pl, &p->call);
    if (limit > 0 && p->body_len != 0 && !p->kept_all) {
        /* Hold the body back until the middleware has seen it. */
        p->kept.max = limit;
        net_sreq_read_body(p->sreq, &buffer_cbs, p);
        return;
    }
    if (limit > 0)
        p->body_buffered = true;
    px_mw_run(p);
}

/* Headers the app sees on every call (spec §1.3): who called, in which namespace, and for whom. */
static int stamp_identity(net_head_t *out, const char *caller, const char *caller_ns,
                          const char *callee, const char *app_api_token)
{
    int rc = add_str(out, "dapr-caller-app-id", caller);
    rc = rc ? rc : add_str(out, "dapr-caller-namespace", caller_ns);
    rc = rc ? rc : add_str(out, "dapr-callee-app-id", callee);
    if (rc == 0 && app_api_token != NULL)
        rc = add_str(out, "dapr-api-token", app_api_token);
    return rc;
}

/*
 * An HTTPEndpoint or full-URL target (spec §1.6): URL = base path + "/" + method (+ query); the
 * endpoint's headers replace the client's of the same name. The caller's identity goes along as
 * for apps; APP_API_TOKEN does not (Dapr sends it to full URLs; we send no token of ours to a
 * third party).
 */
static void forward_external(px_t *p)
{
    const invoke_opts_t *o = p->iw->sc->opts;
    const char *q;
    buf_t u;
    int rc;

    p->external = true;
    p->drop_api_token = p->iw->sc->api_token != NULL;
    px_obs_start(p, OBS_SIDE_EXTERNAL, p->target, buf_ptr(&p->route_method), p->route_method.len);
    buf_init(&u, 64 * 1024);
    if (p->ext.escape_path)
        rc = invoke_path_escape(&u, p->ext.path, p->ext.path_len);
    else
        rc = buf_append(&u, p->ext.path, p->ext.path_len);
    rc = rc ? rc : buf_append(&u, "/", 1);
    rc = rc ? rc : invoke_path_escape(&u, buf_ptr(&p->route_method), p->route_method.len);
    if (rc == 0 && p->route_query != NULL && p->route_query_len > 0) {
        rc = buf_append(&u, "?", 1);
        rc = rc ? rc : buf_append(&u, p->route_query, p->route_query_len);
    }
    rc = rc ? rc : net_head_set_url(&p->out, buf_ptr(&u), u.len);
    rc = rc ? rc : add_str(&p->out, "dapr-caller-app-id", o->app_id);
    rc = rc ? rc : add_str(&p->out, "dapr-caller-namespace", o->namespace_);
    rc = rc ? rc : invoke__ext_add_headers(&p->ext, &p->out);
    rc = rc ? rc : obs_call_headers(&p->ocall, &p->out);
    if (rc < 0) {
        buf_free(&u);
        px_fail(p, "request head too large");
        px_maybe_free(p);
        return;
    }
    /* Never the head itself (the endpoint's headers may carry secrets), nor the query string
     * (tokens travel there too). */
    q = memchr(buf_ptr(&u), '?', u.len);
    log_debug("invoke", "external call %s → %s://%s%.*s", p->target,
              p->ext.tls_on ? "https" : "http", p->ext.authority,
              (int)(q ? (size_t)(q - buf_ptr(&u)) : u.len), buf_ptr(&u));
    buf_free(&u);
    p->ext.path = NULL;
    str_copy(p->host, sizeof(p->host), p->ext.host);
    p->port = p->ext.port;
    px_send(p);
}

/* The URL the client used for the target app's root: "http://<Host>" plus, for the invoke URL
 * form, "/v1.0/invoke/<target>/method". */
static size_t cat_cut(char *d, size_t cap, size_t n, const char *s, size_t len)
{
    size_t l = len < cap - n ? len : cap - n;
    memcpy(d + n, s, l);
    return n + l;
}

static void px_resource_base(px_t *p, bool from_header)
{
    const net_header_t *host = net_head_get(net_sreq_head(p->sreq), "host");
    char *d;
    size_t cap = sizeof(p->urls->res_base) - 1, n, hl = host ? host->value_len : 9;

    if (p->urls == NULL) {
        p->urls = mem_alloc(sizeof(*p->urls));
        p->urls->prm_base[0] = '\0';
    }
    d = p->urls->res_base;

    /* No printf per request; cut at the buffer's end like snprintf. */
    n = cat_cut(d, cap, 0, "http://", 7);
    n = cat_cut(d, cap, n, host ? host->value : "localhost", hl);
    if (!from_header && 7 + hl < cap) {
        n = cat_cut(d, cap, n, "/v1.0/invoke/", 13);
        n = cat_cut(d, cap, n, p->target, strlen(p->target));
        n = cat_cut(d, cap, n, "/method", 7);
    }
    d[n] = '\0';
}

/* Metadata URL of app @p id as the client reaches it through its sidecar. */
static void px_prm_base(px_t *p, const char *id)
{
    const char *rb = p->urls->res_base;
    const char *scheme_end = strstr(rb, "://");
    const char *path = scheme_end ? strchr(scheme_end + 3, '/') : NULL;
    int olen = path ? (int)(path - rb) : (int)strlen(rb);
    snprintf(p->urls->prm_base, sizeof(p->urls->prm_base),
             "%.*s/v1.0/invoke/%s/method/.well-known/oauth-protected-resource", olen, rb, id);
}

static void forward_routed(px_t *p);

/* httpPipeline let a local API request through: the route answers it itself. */
static void local_routed(px_t *p)
{
    net_sreq_t *s = p->sreq;

    p->sreq = NULL;
    p->local(p->iw, s);
    px_maybe_free(p);
}

void invoke__api_local(invoke_worker_t *iw, net_sreq_t *req, const char *path, size_t len,
                       invoke_local_fn fn)
{
    px_t *p = px_new(iw, req);

    p->local = fn;
    px_resource_base(p, true);
    px_pipeline(p, POL_SIDE_HTTP, path, len, local_routed);
}

void invoke__forward(invoke_worker_t *iw, net_sreq_t *req, invoke_route_t *route)
{
    const net_head_t *in = net_sreq_head(req);
    const char *url_end;
    px_t *p;

    if (in->method == HTTP_CONNECT) {
        invoke__respond_error(req, 400, "ERR_DIRECT_INVOKE", "failed to invoke, id: %s, err: %s",
                              route->target, "invalid HTTP verb");
        return;
    }
    p = px_new(iw, req);
    str_copy(p->target, sizeof(p->target), route->target);
    /* The normalised method moves into the exchange (it outlives the route). */
    p->route_method = route->method;
    buf_init(&route->method, route->method.max);
    p->route_query = route->query;
    p->route_query_len = route->query_len;
    /* Resiliency policies are looked up by the target as the caller named it (spec §5.4): an
     * app id, or an HTTPEndpoint's name, which then gets the same policies as an app. */
    p->rcall = resil_call_new(iw->sc->resil, net_worker_loop(iw->nw), p->target,
                              buf_ptr(&p->route_method), on_attempt_timeout, on_retry_due, p);
    px_resource_base(p, route->from_header);
    /* httpPipeline: the app's call into its sidecar, judged on the path it used. */
    url_end = memchr(in->url, '?', in->url_len);
    px_pipeline(p, POL_SIDE_HTTP, in->url, url_end ? (size_t)(url_end - in->url) : in->url_len,
                forward_routed);
}

/* The caller side once httpPipeline let the request through: resolve and send. */
static void forward_routed(px_t *p)
{
    invoke_worker_t *iw = p->iw;
    invoke_sidecar_t *sc = iw->sc;
    const invoke_opts_t *o = sc->opts;
    err_detail_t d = {{0}};
    int rc;

    rc = invoke__ext_target(sc->ext, sc->components, p->target, &p->ext, &d);
    if (rc != 0) {
        if (rc > 0) {
            /* appHttpPipeline also wraps calls to HTTPEndpoints and full URLs (as in Dapr). */
            char path[2048];
            int n = snprintf(path, sizeof(path), "/%.*s", (int)p->route_method.len,
                             p->route_method.ptr ? p->route_method.ptr : "");
            px_pipeline(p, POL_SIDE_APP, path,
                        n > 0 && (size_t)n < sizeof(path) ? (size_t)n : sizeof(path) - 1,
                        forward_external);
        } else {
            px_fail(p, "%s", d.msg);
            px_maybe_free(p);
        }
        return;
    }
    rc = invoke_split_target(p->target, o->namespace_, p->id, sizeof(p->id), p->ns, sizeof(p->ns),
                             &d);
    if (rc < 0) {
        px_fail(p, "%s", d.msg);
        px_maybe_free(p);
        return;
    }
    p->to_app = strcmp(p->id, o->app_id) == 0 && strcmp(p->ns, o->namespace_) == 0;
    px_obs_start(p, p->to_app ? OBS_SIDE_SELF : OBS_SIDE_CALLER, p->id, buf_ptr(&p->route_method),
                 p->route_method.len);
    rc = set_url(&p->out, buf_ptr(&p->route_method), p->route_method.len, p->route_query,
                 p->route_query_len);
    p->drop_api_token = sc->api_token != NULL;
    if (p->to_app) {
        /* A call to ourselves goes straight to our app (no hop), caller = callee = self. */
        rc = rc ? rc
                : stamp_identity(&p->out, o->app_id, o->namespace_, o->app_id, sc->app_api_token);
    } else {
        rc = rc ? rc : stamp_identity(&p->out, o->app_id, o->namespace_, p->id, NULL);
        rc = rc ? rc : add_str(&p->out, "x-forwarded-for", sc->host_ip);
        rc = rc ? rc : add_str(&p->out, "x-forwarded-host", sc->hostname);
        rc = rc ? rc : add_str(&p->out, "forwarded", sc->forwarded);
        rc = rc ? rc : add_str(&p->out, INVOKE_RESOURCE_HEADER, p->urls->res_base);
    }
    rc = rc ? rc : obs_call_headers(&p->ocall, &p->out);
    if (rc < 0) {
        px_fail(p, "request head too large");
        px_maybe_free(p);
        return;
    }
    if (p->to_app) {
        if (o->app_port == 0) {
            px_fail(p, "app channel is not initialized");
            px_maybe_free(p);
            return;
        }
        str_copy(p->host, sizeof(p->host), o->app_channel_address);
        p->port = o->app_port;
    }
    px_route(p);
}

/* The callee side: a peer sidecar forwards a call for our app. */
void invoke__on_internal_request(net_sreq_t *req, void *ctx)
{
    invoke_worker_t *iw = ctx;
    invoke_sidecar_t *sc = iw->sc;
    const invoke_opts_t *o = sc->opts;
    const net_head_t *in = net_sreq_head(req);
    const net_header_t *callee = net_head_get(in, "dapr-callee-app-id");
    const net_header_t *caller = net_head_get(in, "dapr-caller-app-id");
    const net_header_t *caller_ns = net_head_get(in, "dapr-caller-namespace");
    char caller_id[INVOKE_ID_MAX], caller_nsb[INVOKE_ID_MAX];
    err_detail_t d = {{0}};
    char path_mem[256], method_mem[256];
    buf_t path, method;
    const char *q;
    size_t qlen;
    px_t *p;
    int rc;

    const char *peer = net_sreq_peer_id(req);
    spiffe_id_t peer_id;
    res_snapshot_t *snap = NULL;
    acl_decision_t dec;
    const invoke_cfg_t *cfg;
    bool allowed, prm;
    int verb;

    if (callee == NULL || !str_eq(callee->value, callee->value_len, o->app_id)) {
        invoke__respond_error(req, 500, "ERR_DIRECT_INVOKE",
                              "failed to invoke, id: %s, err: misrouted call (callee mismatch)",
                              o->app_id);
        return;
    }
    if (sc->mtls != NULL) {
        /* Identity from the wire: the verified certificate, never a header. */
        if (spiffe_id_parse(peer, strlen(peer), &peer_id) < 0) {
            invoke__respond_error(req, 403, "ERR_DIRECT_INVOKE",
                                  "failed to invoke, id: %s, err: malformed SPIFFE ID", o->app_id);
            return;
        }
        snprintf(caller_id, sizeof(caller_id), "%s", peer_id.app_id);
        snprintf(caller_nsb, sizeof(caller_nsb), "%s", peer_id.ns);
    } else if (caller == NULL || caller_ns == NULL || caller->value_len >= sizeof(caller_id) ||
               caller_ns->value_len >= sizeof(caller_nsb)) {
        invoke__respond_error(req, 500, "ERR_DIRECT_INVOKE",
                              "failed to invoke, id: %s, err: caller identity missing", o->app_id);
        return;
    } else {
        /* mTLS off: the caller sidecar's stamp is all there is (and accessControl sees no
         * identity, as in Dapr). */
        memcpy(caller_id, caller->value, caller->value_len);
        caller_id[caller->value_len] = '\0';
        memcpy(caller_nsb, caller_ns->value, caller_ns->value_len);
        caller_nsb[caller_ns->value_len] = '\0';
    }

    /* Normalise again on the callee (Dapr does): what the app and policy see is what we checked. */
    buf_init_local(&path, path_mem, sizeof(path_mem), 64 * 1024);
    buf_init_local(&method, method_mem, sizeof(method_mem), 64 * 1024);
    rc = invoke_url_split(in->url, in->url_len, &path, &q, &qlen, &d);
    if (rc == 0)
        rc = invoke_method_normalize(path.ptr + 1, path.len - 1, &method, &d);
    if (rc < 0) {
        invoke__respond_error(req, 400, "ERR_DIRECT_INVOKE", "failed to invoke, id: %s, err: %s",
                              o->app_id, d.msg);
        goto out;
    }

    /* accessControl: after identity, before any middleware or the app. */
    verb = acl_verb_from_method(http_method_str((enum http_method)in->method),
                                strlen(http_method_str((enum http_method)in->method)));
    memset(&dec, 0, sizeof(dec));
    dec.level = ACL_LEVEL_NONE;
    snap = res_slot_acquire(&sc->config);
    cfg = snap ? res_snapshot_data(snap) : NULL;
    /* Protected-resource metadata is public (clients need it before they can log in): the
     * bearer middleware answers it, so it needs no access rule. */
    prm = cfg != NULL && pol_pipeline_has(cfg->app, "middleware.http.bearer") &&
          method.len >= PRM_METHOD_LEN && memcmp(method.ptr, PRM_METHOD, PRM_METHOD_LEN) == 0 &&
          (method.len == PRM_METHOD_LEN || method.ptr[PRM_METHOD_LEN] == '/');
    allowed = prm || acl_check_peer(cfg ? cfg->acl : NULL, sc->mtls ? peer : NULL,
                                    sc->mtls ? strlen(peer) : 0, method.ptr ? method.ptr : "",
                                    method.len, verb, NULL, &dec);

    invoke__metrics_acl(sc->metrics, (int)dec.level, allowed, sc->mtls ? peer_id.trust_domain : "",
                        sc->mtls ? peer_id.ns : "");
    if (!allowed) {
        buf_t msg;
        char mm[64] = "", mn[OBS_LABEL_MAX] = "";
        const net_header_t *hm = net_head_get(in, "mcp-method"), *hn = net_head_get(in, "mcp-name");
        if (hm != NULL)
            snprintf(mm, sizeof(mm), "%.*s", (int)hm->value_len, hm->value);
        if (hn != NULL)
            snprintf(mn, sizeof(mn), "%.*s", (int)hn->value_len, hn->value);
        obs_denied(sc->obs, NULL, net_worker_index(iw->nw), "acl", caller_id, o->app_id, mm, mn);
        buf_init(&msg, ACL_DENY_MESSAGE_MAX);
        log_debug("acl",
                  "denied caller=%s target=%s operation=%s verb=%s level=%s reason=%s "
                  "rule=%s",
                  sc->mtls ? peer : "(none)", o->app_id, buf_ptr(&method), acl_verb_name(verb),
                  acl_level_name(dec.level), acl_reason_name(dec.reason),
                  dec.operation ? dec.operation : "-");
        if (dec.reason == ACL_REASON_BAD_IDENTITY)
            invoke__respond_error(req, 403, "ERR_DIRECT_INVOKE",
                                  "failed to invoke, id: %s, err: malformed SPIFFE ID", o->app_id);
        else if (acl_deny_message(&msg, sc->mtls ? &peer_id : NULL, buf_ptr(&method), method.len,
                                  verb) == 0)
            invoke__respond_error(req, 403, "ERR_DIRECT_INVOKE",
                                  "failed to invoke, id: %s, err: rpc error: code = "
                                  "PermissionDenied desc = %s",
                                  o->app_id, buf_ptr(&msg));
        else
            invoke__respond_error(req, 403, "ERR_DIRECT_INVOKE",
                                  "failed to invoke, id: %s, err: access denied", o->app_id);
        buf_free(&msg);
        goto out;
    }
    if (dec.level != ACL_LEVEL_NONE)
        log_debug("acl", "allowed caller=%s target=%s operation=%s verb=%s level=%s reason=%s",
                  sc->mtls ? peer : "(none)", o->app_id, buf_ptr(&method), acl_verb_name(verb),
                  acl_level_name(dec.level), acl_reason_name(dec.reason));
    p = px_new(iw, req);
    str_copy(p->target, sizeof(p->target), o->app_id);
    p->to_app = true;
    p->callee = true;
    px_obs_start(p, OBS_SIDE_CALLEE, caller_id, path.ptr, path.len);
    rc = set_url(&p->out, method.ptr ? method.ptr : "", method.len, q, qlen);
    rc = rc ? rc : stamp_identity(&p->out, caller_id, caller_nsb, o->app_id, sc->app_api_token);
    rc = rc ? rc : obs_call_headers(&p->ocall, &p->out);
    if (rc < 0) {
        px_fail(p, "request head too large");
        px_maybe_free(p);
        goto out;
    }
    if (o->app_port == 0) {
        px_fail(p, "app channel is not initialized");
        px_maybe_free(p);
        goto out;
    }
    str_copy(p->host, sizeof(p->host), o->app_channel_address);
    p->port = o->app_port;
    p->snap = snap;
    snap = NULL;
    if (cfg != NULL && cfg->app != NULL) {
        /* Only the appHttpPipeline's middleware reads these (resource and metadata URLs). */
        const net_header_t *rb = net_head_get(in, INVOKE_RESOURCE_HEADER);
        const net_header_t *host = net_head_get(in, "host");
        char id[INVOKE_ID_MAX * 2 + 1];
        p->urls = mem_alloc(sizeof(*p->urls));
        if (rb != NULL)
            snprintf(p->urls->res_base, sizeof(p->urls->res_base), "%.*s", (int)rb->value_len,
                     rb->value);
        else
            snprintf(p->urls->res_base, sizeof(p->urls->res_base), "http://%.*s",
                     host ? (int)host->value_len : 9, host ? host->value : "localhost");
        if (strcmp(caller_nsb, o->namespace_) == 0)
            snprintf(id, sizeof(id), "%s", o->app_id);
        else
            snprintf(id, sizeof(id), "%s.%s", o->app_id, o->namespace_);
        px_prm_base(p, id);
    }
    str_copy(p->caller_id, sizeof(p->caller_id), caller_id);
    p->route_query = q; /* borrowed from the request head, like the caller side's */
    p->route_query_len = qlen;
    /* appHttpPipeline: after accessControl, before the app; judged on the path the app sees. */
    buf_reset(&path);
    if (buf_append(&path, "/", 1) < 0 ||
        (method.len > 0 && buf_append(&path, method.ptr, method.len) < 0)) {
        px_fail(p, "request path too long");
        px_maybe_free(p);
        goto out;
    }
    px_pipeline(p, POL_SIDE_APP, path.ptr, path.len, px_send);
out:
    res_snapshot_unref(snap);
    buf_free(&path);
    buf_free(&method);
}
