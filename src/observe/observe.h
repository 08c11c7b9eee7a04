/*
 * observe — metrics (Prometheus text exposition), traces (W3C trace context, OTLP/HTTP export)
 * and access/audit logs for the sidecar (spec dapr.md §6, §6.1).
 *
 * Job: one obs_t per sidecar holds the metric registry, the tracer and its exporter thread, and
 * the logging switches read from the Configuration (`spec.metric(s)`, `spec.tracing`,
 * `spec.logging`), the OTEL_EXPORTER_OTLP_* / OTEL_BSP_* environment and the command line.
 * The request path records through obs_call_t (one per proxied exchange) and obs_http_server_done
 * (one per API request); both take no lock and allocate nothing: counters are relaxed atomic adds
 * into the recording worker's own shard, on series slots claimed once (bounded: a family keeps at
 * most OBS_SERIES_MAX label sets, the rest are counted under the label value "_other"), finished
 * spans are copied into a per-worker single-producer ring that the exporter thread drains (a full
 * ring drops the span and counts it). Ownership: obs_new copies what it keeps from its options;
 * obs_free releases everything after obs_stop. An obs_call_t is embedded by its user and owns
 * nothing on the heap. Threading: obs_new/obs_start/obs_stop/obs_free on the main thread;
 * obs_call_* and obs_http_server_done on worker @p worker only (each worker index is used by one
 * thread); obs_metrics_render and obs_denied on any thread. Errors: obs_new returns ERR_RES_INVALID
 * for a bad Configuration section (detail names the field) or ERR_INVAL; recording never fails (it
 * drops and counts instead). Secrets: header values, bodies and query strings never reach metrics
 * or spans; tool arguments reach the audit log only when `spec.logging.mcpAudit.arguments` is true,
 * with the keys listed in `redact` (and the built-in secret-looking names) replaced by
 * "[REDACTED]".
 */
#ifndef OUTRIGGER_OBSERVE_H
#define OUTRIGGER_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/err.h"
#include "net/net.h"
#include "resources/resources.h"

#define OBS_SERIES_MAX 512        /* label sets kept per metric family; then "_other" */
#define OBS_LABEL_MAX 128         /* bytes of one label value kept (longer ones are cut) */
#define OBS_RING_DEFAULT 2048     /* spans queued for export in all (OTEL_BSP_MAX_QUEUE_SIZE) */
#define OBS_BATCH_DEFAULT 512     /* spans per export request (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) */
#define OBS_DELAY_MS_DEFAULT 5000 /* export interval (OTEL_BSP_SCHEDULE_DELAY) */
#define OBS_EXPORT_TIMEOUT_MS                                                                      \
    10000                /* one export request (tracing.otel.timeout, OTEL_..._TIMEOUT) */
#define OBS_ATTR_MAX 256 /* bytes of a span attribute value kept */

typedef struct obs obs_t;

/** What the sidecar tells obs_new besides the Configuration. */
typedef struct obs_opts {
    const char *app_id;         /* copied */
    const char *namespace_;     /* copied */
    const res_config_t *config; /* borrowed for the call; NULL = defaults */
    int workers;                /* worker loops that record (1..64) */
    int api_logging;            /* --enable-api-logging: 1 on, 0 off, -1 from the Configuration */
    bool no_metrics;            /* --enable-metrics=false: no metrics, whatever the Configuration */
} obs_opts_t;

/** Builds the registry, tracer and logging switches. */
int obs_new(const obs_opts_t *o, obs_t **out, err_detail_t *d) __attribute__((warn_unused_result));
/** Starts the exporter thread when an exporter or tracing.stdout is configured. */
int obs_start(obs_t *o);
/** Stops the exporter thread after one last export of what is queued. */
void obs_stop(obs_t *o);
/** Frees everything (after obs_stop). NULL is a no-op. */
void obs_free(obs_t *o);

/** Configuration `metric(s).enabled` (default true): false means no metrics port at all. */
bool obs_metrics_enabled(const obs_t *o);
/** Appends every family of the registry in Prometheus text format 0.0.4. */
int obs_metrics_render(obs_t *o, buf_t *b);

/* ---- the Dapr API port ---------------------------------------------------------------------- */

/**
 * Records one finished request of the Dapr HTTP API (dapr_http_server_*) on worker @p worker and
 * writes its API log line when API logging is on (the URL without its query, or the obfuscated
 * route with logging.apiLogging.obfuscateURLs).
 */
void obs_http_server_done(obs_t *o, int worker, const net_head_t *h, const net_sreq_stats_t *st);

/* ---- one proxied exchange ------------------------------------------------------------------- */

typedef enum obs_side {
    OBS_SIDE_CALLER = 0, /* API request forwarded to a peer sidecar */
    OBS_SIDE_CALLEE,     /* peer's request forwarded to our app */
    OBS_SIDE_SELF,       /* API request for our own app (no hop) */
    OBS_SIDE_EXTERNAL,   /* API request for an HTTPEndpoint or a full URL (no peer sidecar) */
} obs_side_t;

/* Trace context of one hop (W3C Trace Context level 1). */
typedef struct obs_trace {
    uint8_t trace_id[16]; /* kept from the incoming traceparent, else new */
    uint8_t span_id[8];   /* this sidecar's span */
    uint8_t parent_id[8]; /* the incoming parent span; zero when the trace starts here */
    bool has_parent;      /* an incoming traceparent was valid */
    bool sampled;         /* ParentBased(TraceIDRatio(samplingRate)) */
} obs_trace_t;

/* One exchange seen by the proxy; embedded in the proxy's state. Fields are private. */
typedef struct obs_call {
    obs_t *obs;                      /* NULL: nothing is recorded */
    int worker;                      /* worker index (ring, thread) */
    obs_side_t side;                 /* which hop */
    int http_method;                 /* enum http_method */
    uint64_t start_ns;               /* uv_hrtime() at start */
    uint64_t resp_ns;                /* uv_hrtime() when the response head arrived; 0 before */
    int status;                      /* upstream status; 0 while unknown or on failure */
    uint64_t sent_bytes;             /* request body bytes sent upstream */
    uint64_t recv_bytes;             /* response body bytes received */
    char peer_app[OBS_LABEL_MAX];    /* the other app: target (caller side) or caller (callee) */
    char path[OBS_ATTR_MAX];         /* invoked method path ("/mcp") */
    char mcp_method[64];             /* JSON-RPC method of an MCP request; "" when not MCP */
    char mcp_tool[OBS_LABEL_MAX];    /* params.name of tools/call (or prompt/resource name) */
    char mcp_session[OBS_LABEL_MAX]; /* Mcp-Session-Id */
    char mcp_request_id[64];         /* JSON-RPC id as JSON text; "" for notifications */
    char mcp_version[32];            /* MCP-Protocol-Version header */
    char error[OBS_ATTR_MAX];        /* why it failed; "" when it did not */
    obs_trace_t trace;               /* this hop's context */
    bool denied;                     /* refused by a policy layer (already counted) */
    bool ended;                      /* obs_call_end ran */
} obs_call_t;

/**
 * Starts recording an exchange on worker @p worker: continues the trace of the incoming
 * `traceparent` in @p in (or starts one) and counts the request (req_sent / req_recv).
 * @p peer_app is the target app (caller side) or the verified caller ("unknown" when none).
 */
void obs_call_start(obs_t *o, obs_call_t *c, int worker, obs_side_t side, const net_head_t *in,
                    const char *peer_app, const char *path, size_t path_len);
/** True for request headers the proxy must not forward because obs_call_headers replaces them. */
bool obs_skip_header(const obs_call_t *c, const char *lname, size_t len);
/** Adds this hop's `traceparent` to the upstream head (tracestate and baggage pass unchanged). */
int obs_call_headers(obs_call_t *c, net_head_t *out) __attribute__((warn_unused_result));
/** Sets the MCP facts of the request (any may be NULL; values are copied and cut). */
void obs_call_mcp(obs_call_t *c, const char *method, const char *tool, const char *session,
                  const char *request_id);
/** The response head arrived with @p status; @p h (may be NULL) gives the Mcp-Session-Id that an
 * initialize response assigns. */
void obs_call_response(obs_call_t *c, int status, const net_head_t *h);
/** Counts request/response body bytes. */
void obs_call_bytes(obs_call_t *c, uint64_t sent, uint64_t recv);
/**
 * Ends the exchange: records latency and counts, finishes and queues the span, writes the audit
 * line for an MCP tools/call. @p error is NULL on success, else why it failed (the status then
 * counts as 500 unless a response head was seen). @p body is the whole request body when it was
 * kept (may be NULL); only read, for the tool's arguments, when audit arguments are enabled.
 * Idempotent.
 */
void obs_call_end(obs_call_t *c, const char *error, const char *body, size_t body_len);

/**
 * Counts one denial, on worker @p worker, by policy layer @p layer ("acl", "bearer", "opa") of a
 * call from @p caller to
 * @p target, with the MCP method and tool when known (NULL otherwise). Marks @p c (may be NULL)
 * as denied so that its end is audited as "denied".
 */
void obs_denied(obs_t *o, obs_call_t *c, int worker, const char *layer, const char *caller,
                const char *target, const char *mcp_method, const char *tool);

/* ---- trace context (exposed for tests and the fuzz target) ---------------------------------- */

/**
 * Parses a W3C traceparent value: version 00 exactly "00-<32 hex>-<16 hex>-<2 hex>", a higher
 * version at least that prefix; all-zero ids, upper-case hex and version ff are invalid. Returns
 * 0 and fills @p trace_id, @p span_id and @p flags, or ERR_PARSE.
 */
int obs_traceparent_parse(const char *v, size_t n, uint8_t trace_id[16], uint8_t span_id[8],
                          uint8_t *flags);
/** Formats "00-<trace>-<span>-<01|00>" into @p out (56 bytes incl. NUL). */
void obs_traceparent_format(const obs_trace_t *t, char out[56]);
/** TraceIDRatio sampling decision for @p trace_id at @p rate (0..1). */
bool obs_ratio_sampled(const uint8_t trace_id[16], double rate);

#endif
