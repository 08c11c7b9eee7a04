/* Declarations shared by the files of the invoke module only (and its unit tests). */
#ifndef OUTRIGGER_INVOKE_INT_H
#define OUTRIGGER_INVOKE_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"
#include "net/net.h"

#define INVOKE_ID_MAX 256
/* A request body up to this size is kept while it streams (replay, JSON-RPC facts, policy). */
#define INVOKE_KEEP_BODY_MAX (64 * 1024)
/* Sidecar to sidecar: the URL the client used for the target app's root (for the app's
 * middleware, e.g. OAuth protected-resource metadata). Never taken from, nor passed to, apps. */
#define INVOKE_RESOURCE_HEADER "dapr-outrigger-resource"

/* Where an API request is going, as Dapr's findTargetIDAndMethod decides it (spec dapr.md §1.1). */
typedef struct invoke_route {
    char target[INVOKE_ID_MAX * 2]; /* target as given (app id, "id.ns", endpoint name or URL) */
    buf_t method;                   /* normalised method, no leading '/'; owned */
    const char *query;              /* raw query string of the request, borrowed; NULL if none */
    size_t query_len;
    bool from_header; /* found through dapr-app-id (or Basic auth) */
} invoke_route_t;

/** Initialises @p r (no allocation). */
void invoke_route_init(invoke_route_t *r);
/** Releases what @p r owns. */
void invoke_route_free(invoke_route_t *r);

/**
 * Finds target and method for request head @p h: the dapr-app-id header, then Basic auth with user
 * "dapr-app-id", then /v1.0/invoke/<target>/method/<method>. The method is percent-decoded, cleaned
 * and normalised as Dapr does. Returns 0, ERR_INVOKE_NO_APP_ID (404 in Dapr), ERR_INVOKE_BAD_METHOD
 * or ERR_NET_BAD_REQUEST (malformed URL; both 400), with a reason in @p d.
 */
int invoke_route_parse(const net_head_t *h, invoke_route_t *r, err_detail_t *d);

/** Splits the URL of @p h into a decoded path (into @p path) and the raw query (borrowed). */
int invoke_url_split(const char *url, size_t len, buf_t *path, const char **query,
                     size_t *query_len, err_detail_t *d);

/** Go's path.Clean of [p, p+n) into @p out ("." for an empty result). */
int invoke_path_clean(const char *p, size_t n, buf_t *out);

/** Dapr's method normalisation (rejects #, ?, NUL and control bytes; cleans; strips ../). */
int invoke_method_normalize(const char *p, size_t n, buf_t *out, err_detail_t *d);

/** Appends [p, p+n) to @p out percent-encoding what may not appear raw in a URL path. */
int invoke_path_escape(buf_t *out, const char *p, size_t n);

/**
 * Splits "id" or "id.namespace" into its parts (namespace defaults to @p self_ns). More than one
 * '.' is ERR_INVOKE_BAD_APP_ID ("invalid app id X").
 */
int invoke_split_target(const char *target, const char *self_ns, char *id, size_t id_len, char *ns,
                        size_t ns_len, err_detail_t *d);

#endif

/* ---- the running sidecar ------------------------------------------------------------------- */

#include "invoke/invoke.h"
#include "observe/observe.h"
#include "resources/component.h"
#include "resources/watch.h"

struct resolve;
typedef struct invoke_mtls invoke_mtls_t;
typedef struct invoke_ext invoke_ext_t;
typedef struct invoke_metrics invoke_metrics_t;

/* Workload-certificate events counted as dapr_runtime_mtls_* (spec dapr.md §3, §6.1). */
typedef enum invoke_mtls_event {
    INVOKE_MTLS_INIT = 0,
    INVOKE_MTLS_INIT_FAIL,
    INVOKE_MTLS_ROTATED,
    INVOKE_MTLS_ROTATED_FAIL,
    INVOKE_MTLS_EVENTS
} invoke_mtls_event_t;

/* Process-wide sidecar state; read-only once the workers run. */
/* What a Configuration snapshot carries besides the file: compiled once per (re)load. */
struct pol_pipeline;
typedef struct invoke_cfg {
    void *acl;                 /* acl_t, or NULL */
    struct pol_pipeline *http; /* spec.httpPipeline, or NULL when empty */
    struct pol_pipeline *app;  /* spec.appHttpPipeline, or NULL when empty */
} invoke_cfg_t;

/** res_builder_t adapters: @p ctx is the invoke_sidecar_t (for its Components). */
int invoke__cfg_build(const res_config_t *cfg, void *ctx, void **data, err_detail_t *d);
void invoke__cfg_dispose(void *data);

typedef struct invoke_sidecar {
    const invoke_opts_t *opts;    /* borrowed from the caller of invoke_sidecar_run */
    struct resolve *resolve;      /* name resolution, thread-safe */
    int http_port;                /* bound API port */
    int internal_port;            /* bound sidecar-to-sidecar port */
    char host_ip[64];             /* address registered for peers */
    char hostname[256];           /* gethostname() */
    char forwarded[600];          /* "for=<host_ip>;host=<hostname>", sent to peers */
    const char *api_token;        /* DAPR_API_TOKEN or NULL */
    const char *app_api_token;    /* APP_API_TOKEN or NULL */
    const char *res_names_json;   /* pre-rendered metadata fragments, owned */
    long long started_ms;         /* wall clock at start */
    invoke_mtls_t *mtls;          /* workload identity; NULL when mTLS is off */
    invoke_metrics_t *metrics;    /* counters; thread-safe */
    obs_t *obs;                   /* metrics registry, tracing, API and audit logs; thread-safe */
    int metrics_port;             /* bound metrics port, 0 when none */
    res_slot_t config;            /* current Configuration snapshot (data: acl_t); may be empty */
    res_components_t *components; /* Components, HTTPEndpoints, secret stores of
                                     --resources-path; owned, immutable, never NULL once started */
    invoke_ext_t *ext;            /* TLS for external targets (external.c); owned */
    struct resil *resil;          /* Resiliency policies (hot-reloaded) and their metrics; owned */
} invoke_sidecar_t;

#define INVOKE_CACHE_SLOTS 64

/* A resolved address kept for a short while, per worker. */
typedef struct invoke_cache_entry {
    char key[INVOKE_ID_MAX * 2]; /* "id\nns", not NUL-terminated */
    size_t key_len;              /* bytes of key */
    char host[300];              /* resolved host */
    int port;                    /* resolved port */
    uint64_t expires_ms;         /* loop time */
} invoke_cache_entry_t;

/* Per-worker sidecar state: lives on one loop. */
typedef struct invoke_worker {
    invoke_sidecar_t *sc;                           /* shared, read-only */
    net_worker_t *nw;                               /* the worker's loop and pools */
    invoke_cache_entry_t cache[INVOKE_CACHE_SLOTS]; /* resolution cache */
    size_t cache_next;                              /* next slot to overwrite */
} invoke_worker_t;

/** Gets a workload certificate from the local sentry (starting one if needed) and builds the TLS
 * contexts. Blocks: call before the workers run. */
int invoke__mtls_start(invoke_sidecar_t *sc, invoke_mtls_t **out, err_detail_t *d);
/** The TLS settings for the internal listener and for calls to peers. */
const net_tls_t *invoke__mtls_tls(invoke_mtls_t *m);
/** Formats the SPIFFE ID a peer sidecar of @p app_id in @p ns must present. */
int invoke__mtls_peer_uri(invoke_mtls_t *m, const char *app_id, const char *ns, char *out,
                          size_t len);
/** Starts renewing on @p loop (half-way through each certificate's life). */
void invoke__mtls_run(invoke_mtls_t *m, uv_loop_t *loop);
/** Stops renewing (closes the timer); call on the loop before it ends. */
void invoke__mtls_stop(invoke_mtls_t *m);
/** Frees everything; after the loop and the workers have stopped. */
void invoke__mtls_free(invoke_mtls_t *m);

/** Counters (metrics.c). */
invoke_metrics_t *invoke__metrics_new(void);
void invoke__metrics_free(invoke_metrics_t *m);
/** Counts one accessControl decision of @p level (acl_level_t; NONE is not counted). */
void invoke__metrics_acl(invoke_metrics_t *m, int level, bool allowed, const char *td,
                         const char *ns);
void invoke__metrics_mtls(invoke_metrics_t *m, invoke_mtls_event_t e);
/** Appends the Prometheus text exposition of every counter to @p b. */
int invoke__metrics_render(invoke_metrics_t *m, const char *app_id, buf_t *b);
/** Handler of the metrics port. ctx is the invoke_worker_t. */
void invoke__on_metrics_request(net_sreq_t *req, void *ctx);

/** Handler of the API port (Dapr HTTP API). ctx is the invoke_worker_t. */
void invoke__on_api_request(net_sreq_t *req, void *ctx);
/** End of an API request: metrics and the API log line. */
void invoke__on_api_done(net_sreq_t *req, const net_sreq_stats_t *st, void *ctx);
/** Handler of the sidecar-to-sidecar port. ctx is the invoke_worker_t. */
void invoke__on_internal_request(net_sreq_t *req, void *ctx);
/** Sends a Dapr error body {"errorCode":..,"message":..}. */
void invoke__respond_error(net_sreq_t *req, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/** Forwards an API request to @p target (app id, or "id.ns"); method already normalised. */
void invoke__forward(invoke_worker_t *iw, net_sreq_t *req, invoke_route_t *route);
/** True for GET /v1.0/secrets/<store>/<name|bulk> (secrets_api.c). */
bool invoke__secrets_route(const net_head_t *h, const char *path, size_t len);
/** Answers a secrets route (the request's own URL says which). */
void invoke__secrets_serve(invoke_worker_t *iw, net_sreq_t *req);
/** A sidecar API route that answers the request itself. */
typedef void (*invoke_local_fn)(invoke_worker_t *iw, net_sreq_t *req);
/**
 * Runs httpPipeline on an API request that the sidecar answers itself (spec §4.1: the pipeline
 * wraps every Dapr HTTP API route), then @p fn; a middleware may answer first. @p path (copied)
 * is what the middleware judges. Defined in proxy.c, which owns the pipeline state.
 */
void invoke__api_local(invoke_worker_t *iw, net_sreq_t *req, const char *path, size_t len,
                       invoke_local_fn fn);
/** Serves the sidecar's own API routes (health, metadata); returns false if @p path is not one. */
bool invoke__api_builtin(invoke_worker_t *iw, net_sreq_t *req, const char *path, size_t len,
                         const char *query, size_t qlen);

/* ---- external targets: HTTPEndpoints and full URLs (external.c) ----------------------------- */

/* Where an external call goes. Points into the sidecar's resources (borrowed) and the target. */
typedef struct invoke_ext_target {
    const res_endpoint_t *ep; /* the HTTPEndpoint, or NULL for a full-URL target */
    const net_tls_t *tls;     /* TLS settings, NULL for http:// */
    bool tls_on;              /* https:// */
    bool escape_path;         /* the path came from the client (decoded): escape it again */
    char host[256];           /* host name or address (IPv6 without brackets) */
    int port;                 /* port, 80/443 when the URL names none */
    char authority[300];      /* host[:port] as written in the URL: the Host header */
    const char *path;         /* the URL's path, no trailing '/'; borrowed */
    size_t path_len;
} invoke_ext_target_t;

/** Builds the TLS client contexts for external targets (system CAs; each HTTPEndpoint's
 * clientTLS). Blocks (reads the CA store): call before the workers run. */
int invoke__ext_new(const res_components_t *cs, invoke_ext_t **out, err_detail_t *d);
/** Frees what invoke__ext_new built; after the workers stopped. NULL is a no-op. */
void invoke__ext_free(invoke_ext_t *x);
/** Splits an http(s) URL into @p t (host, port, authority, path). */
int invoke__ext_parse_url(const char *url, invoke_ext_target_t *t, err_detail_t *d);
/**
 * Decides whether @p target is external: a full http(s):// URL, or the name of a loaded
 * HTTPEndpoint (checked before app ids, as Dapr does). Returns 1 and fills @p t when it is, 0 when
 * it is an app id, or a negative code for a malformed URL.
 */
int invoke__ext_target(const invoke_ext_t *x, const res_components_t *cs, const char *target,
                       invoke_ext_target_t *t, err_detail_t *d);
/** Adds the HTTPEndpoint's headers (resolved secrets included) to @p out. */
int invoke__ext_add_headers(const invoke_ext_target_t *t, net_head_t *out);
/** True when the HTTPEndpoint sets header @p lname itself (the client's copy is then dropped). */
bool invoke__ext_overrides(const invoke_ext_target_t *t, const char *lname, size_t len);
