/*
 * mw — the HTTP middleware pipeline: Configuration `httpPipeline` (app → its sidecar) and
 * `appHttpPipeline` (sidecar → its app), each a list of handlers naming `middleware.http.*`
 * Components (spec dapr.md §4.1).
 *
 * Job: build a pipeline once per Configuration snapshot from its handler list and the loaded
 * Components (handlers[0] runs first; a handler whose Component is missing is skipped, as in
 * Dapr), then run it per request. Each middleware may: let the request pass; answer it (reject
 * with a status, headers and a body); set or replace request headers sent upstream; and ask for
 * the request body, up to a limit, before deciding (the proxy then holds the body back: past the
 * largest limit of the pipeline the request is answered 413). A middleware may also finish
 * later (POL_PENDING): it then calls pol_call_resume on the worker loop's thread.
 *
 * The middleware interface (pol_mw_ops_t) is what every middleware implements: bearer, oauth2,
 * oauth2clientcredentials here, opa elsewhere.
 *
 * Ownership: a pipeline is immutable and owned by the snapshot data that built it; instances are
 * shared read-only by all worker threads (their caches synchronise themselves). A pol_call_t is
 * owned by the proxy for one request; what a middleware writes into it is freed by
 * pol_call_free.
 * Threading: pol_pipeline_build may block (middleware init fetches JWKS); run it off the worker
 * loops. pol_pipeline_start / pol_call_resume run on the request's worker thread.
 * Errors: build returns ERR_RES_INVALID ("<file>:<line>: <field>: <problem>") for invalid
 * middleware metadata and whatever a middleware's init returns (e.g. ERR_POLICY_UPSTREAM).
 */
#ifndef OUTRIGGER_POLICY_MW_H
#define OUTRIGGER_POLICY_MW_H

#include <stdbool.h>
#include <stddef.h>
#include <uv.h>

#include "base/buf.h"
#include "base/err.h"
#include "mcp/peek.h"
#include "net/net.h"
#include "resources/component.h"
#include "resources/resources.h"

#define POL_PIPELINE_MAX 16            /* handlers per pipeline */
#define POL_BODY_LIMIT_DEFAULT 1048576 /* body a middleware may ask for, unless it says less */
#define POL_WORKERS_MAX 64             /* worker threads a per-worker cache serves */

typedef enum pol_verdict {
    POL_NEXT = 0,    /* pass to the next middleware */
    POL_RESPOND = 1, /* answer with call->status / resp_headers / resp_body */
    POL_PENDING = 2, /* the middleware calls pol_call_resume later */
} pol_verdict_t;

typedef enum pol_side {
    POL_SIDE_HTTP = 0, /* httpPipeline: the app's calls into its sidecar */
    POL_SIDE_APP = 1,  /* appHttpPipeline: calls delivered to the app */
} pol_side_t;

typedef struct pol_call pol_call_t;
typedef void (*pol_call_done_fn)(pol_call_t *call, pol_verdict_t v);

/* One request going through a pipeline. Inputs are set by the proxy; outputs by middleware. */
struct pol_call {
    /* inputs, borrowed for the call */
    const net_head_t *head; /* the request head as received */
    const char *path;       /* the request path as the middleware should judge it ("/mcp") */
    size_t path_len;
    const char *query; /* raw query string, may be NULL */
    size_t query_len;
    const char *body; /* the whole request body when a middleware asked for it, else NULL */
    size_t body_len;
    const mcp_peek_t *mcp;     /* the request's JSON-RPC facts (may be not valid) */
    const char *caller;        /* caller app id ("" when unknown) */
    const char *app_id;        /* this sidecar's app id */
    const char *resource_base; /* URL the client uses for the app's root: resource_base + path */
    const char *prm_base;      /* URL of the app's /.well-known/oauth-protected-resource */
    uv_loop_t *loop;           /* the worker loop (for pending work) */
    unsigned worker;           /* index of the worker thread (for per-worker caches) */
    pol_side_t side;
    /* outputs */
    int status;              /* with POL_RESPOND */
    net_head_t resp_headers; /* extra response headers with POL_RESPOND */
    buf_t resp_body;         /* response body with POL_RESPOND (text/plain unless a header says) */
    net_head_t set_headers;  /* request headers to set (replacing the client's) upstream */
    const char *deny_layer;  /* "bearer", "opa", ... when a middleware denied */
    struct mcp_toolfilter *tool_filter; /* tools/list results keep only these tools; owned */
    /* private to the pipeline */
    const struct pol_pipeline *pl_;
    size_t next_;
    pol_call_done_fn done_;
    void *done_arg_;
};

typedef struct pol_mw_ops {
    const char *type; /* "middleware.http.bearer" */
    /* Builds an instance from the Component (may block: start-up or reload thread). */
    int (*create)(const res_component_t *c, void **inst, err_detail_t *d);
    void (*destroy)(void *inst);
    /* Bytes of body the middleware needs to decide (0 = none). */
    size_t (*body_limit)(const void *inst, const pol_call_t *call);
    /* Decides on the worker thread. */
    pol_verdict_t (*handle)(void *inst, pol_call_t *call);
} pol_mw_ops_t;

typedef struct pol_pipeline pol_pipeline_t;

/**
 * Builds the pipeline of Configuration section @p handlers (the `handlers` list node of
 * spec.httpPipeline or spec.appHttpPipeline; NULL gives an empty pipeline) from @p cs. Unknown
 * middleware types are ERR_RES_INVALID. *@p out is NULL for an empty pipeline.
 */
int pol_pipeline_build(const res_node_t *handlers, const res_components_t *cs, pol_side_t side,
                       pol_pipeline_t **out, err_detail_t *d) __attribute__((warn_unused_result));
void pol_pipeline_free(pol_pipeline_t *p);
/** Number of handlers that run (0 for NULL). */
size_t pol_pipeline_len(const pol_pipeline_t *p);
/** True when a handler of type @p type runs in @p p (NULL: false). */
bool pol_pipeline_has(const pol_pipeline_t *p, const char *type);
/** The largest body any handler may ask for (0 = the body is never needed). */
size_t pol_pipeline_body_limit(const pol_pipeline_t *p, const pol_call_t *call);

/** Prepares @p call (outputs empty). */
void pol_call_init(pol_call_t *call);
/** Releases the outputs. */
void pol_call_free(pol_call_t *call);
/**
 * Runs @p p on @p call from the first handler. Returns the verdict when it is known now
 * (POL_NEXT: every handler passed; POL_RESPOND), or POL_PENDING: @p done runs later on the
 * worker thread with the final verdict.
 */
pol_verdict_t pol_pipeline_start(const pol_pipeline_t *p, pol_call_t *call, pol_call_done_fn done,
                                 void *arg);
/** For middleware that returned POL_PENDING: continues the pipeline with verdict @p v. */
void pol_call_resume(pol_call_t *call, pol_verdict_t v);

/** Answers @p call with @p status and the status text as a text/plain body (Dapr's helper). */
pol_verdict_t pol_call_reject(pol_call_t *call, int status);
/** Sets (replaces) request header @p name to @p value upstream. 0, ERR_TOO_LARGE, or ERR_INVAL for
 * a name that is not an HTTP token or a value with a control character (CR, LF, NUL, ...). */
int pol_call_set_header(pol_call_t *call, const char *name, const char *value);
/** Adds a response header for POL_RESPOND (same rules as pol_call_set_header). */
int pol_call_resp_header(pol_call_t *call, const char *name, const char *value);

/* The middleware types built in. */
extern const pol_mw_ops_t pol_mw_bearer;
extern const pol_mw_ops_t pol_mw_oauth2cc;
extern const pol_mw_ops_t pol_mw_opa;
extern const pol_mw_ops_t pol_mw_oauth2;

#endif
