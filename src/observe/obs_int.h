/* Declarations shared by the files of the observe module only (and its unit tests). */
#ifndef OUTRIGGER_OBS_INT_H
#define OUTRIGGER_OBS_INT_H

#include <regex.h>
#include <stdatomic.h>

#include "observe/observe.h"

#define OBS_LABELS_MAX 7   /* labels of one family besides app_id */
#define OBS_KEY_MAX 640    /* bytes of one series' joined label values */
#define OBS_PROBES 32      /* slots looked at before a new label set goes to "_other" */
#define OBS_BUCKETS_MAX 64 /* histogram buckets (latencyDistributionBuckets) */
#define OBS_PATTERNS_MAX 64
#define OBS_REDACT_MAX 32
#define OBS_MAX_WORKERS 64
#define OBS_SHARDS_MAX 8 /* value shards per family (workers beyond share them) */

typedef enum obs_fam_id {
    OBS_F_HTTP_SERVER_REQUEST_COUNT = 0,
    OBS_F_HTTP_SERVER_LATENCY,
    OBS_F_HTTP_SERVER_REQUEST_BYTES,
    OBS_F_HTTP_SERVER_RESPONSE_BYTES,
    OBS_F_HTTP_SERVER_RESPONSE_COUNT,
    OBS_F_HTTP_CLIENT_SENT_BYTES,
    OBS_F_HTTP_CLIENT_RECEIVED_BYTES,
    OBS_F_HTTP_CLIENT_ROUNDTRIP_LATENCY,
    OBS_F_HTTP_CLIENT_COMPLETED_COUNT,
    OBS_F_SI_REQ_SENT,
    OBS_F_SI_RES_RECV,
    OBS_F_SI_RES_RECV_LATENCY,
    OBS_F_SI_REQ_RECV,
    OBS_F_SI_RES_SENT,
    OBS_F_MCP_REQUESTS,
    OBS_F_MCP_LATENCY,
    OBS_F_MCP_DENIED,
    OBS_F_SPANS,
    OBS_F_COUNT
} obs_fam_id_t;
_Static_assert(OBS_F_COUNT <= 32, "obs_t.memo has a slot per family");

/* A label set, claimed once and never freed: readers that see state 2 read the key unlocked. */
typedef struct obs_series {
    _Atomic int state;     /* 0 free, 1 being filled, 2 ready */
    uint32_t hash;         /* FNV-1a of key */
    uint16_t key_len;      /* bytes of key */
    char key[OBS_KEY_MAX]; /* label values, each NUL-terminated, in label order */
} obs_series_t;

/* A `rules` entry: values of one label matching re become replacement. */
typedef struct obs_rule {
    size_t label;      /* index into the family's labels */
    regex_t re;        /* compiled (POSIX extended) */
    char *replacement; /* owned */
} obs_rule_t;

typedef struct obs_family {
    const char *name;                   /* full metric name */
    const char *help;                   /* HELP text */
    bool hist;                          /* histogram (else counter) */
    bool bytes;                         /* histogram of bytes (else of milliseconds) */
    const char *labels[OBS_LABELS_MAX]; /* label names after app_id */
    size_t nlabels;                     /* entries of labels */
    bool enabled;                       /* recorded and rendered */
    size_t stride;        /* values per series: 1, or buckets + 1 (+Inf) + sum + count */
    obs_series_t *series; /* OBS_SERIES_MAX + 1 (the last is "_other"); owned */
    size_t shards;        /* value shards: one per worker (at most 8) + 1 for other threads */
    atomic_ullong *vals;  /* [shard][series][stride] values; owned */
    obs_rule_t *rules;    /* owned */
    size_t nrules;        /* entries of rules */
} obs_family_t;

/* A finished span, as copied into a ring (fixed size: no allocation on the request path). */
typedef struct obs_span {
    uint8_t trace_id[16], span_id[8], parent_id[8]; /* ids */
    bool has_parent;                                /* parent_id is set */
    uint8_t side;                                   /* obs_side_t */
    int http_method;                                /* enum http_method */
    int status;                                     /* HTTP status; 0 = none */
    uint64_t start_unix_ns, end_unix_ns;            /* wall clock */
    char peer_app[OBS_LABEL_MAX];                   /* caller or target app */
    char path[OBS_ATTR_MAX];                        /* invoked method path */
    char mcp_method[64];                            /* JSON-RPC method or "" */
    char mcp_tool[OBS_LABEL_MAX];                   /* tool/prompt/resource name or "" */
    char mcp_session[OBS_LABEL_MAX];                /* Mcp-Session-Id or "" */
    char mcp_request_id[64];                        /* JSON-RPC id (JSON text) or "" */
    char mcp_version[32];                           /* MCP-Protocol-Version or "" */
    char error[OBS_ATTR_MAX];                       /* failure text or "" */
} obs_span_t;

/* Single-producer (one worker) single-consumer (the exporter) ring of spans. */
typedef struct obs_ring {
    _Atomic size_t head; /* next slot the producer writes (monotonic) */
    _Atomic size_t tail; /* next slot the consumer reads (monotonic) */
    size_t cap;          /* slots */
    obs_span_t *slots;   /* owned */
} obs_ring_t;

struct obs {
    char app_id[OBS_LABEL_MAX];     /* our app id */
    char namespace_[OBS_LABEL_MAX]; /* our namespace */
    int workers;                    /* recording workers */

    /* metrics */
    bool metrics_enabled;               /* metric(s).enabled */
    bool increased_cardinality;         /* metric(s).http.increasedCardinality */
    bool exclude_verbs;                 /* metric(s).http.excludeVerbs */
    char *patterns[OBS_PATTERNS_MAX];   /* metric(s).http.pathMatching; owned */
    size_t npatterns;                   /* entries of patterns */
    double lat_bounds[OBS_BUCKETS_MAX]; /* latency bucket bounds, ms */
    size_t lat_nb;                      /* entries of lat_bounds */
    obs_family_t fam[OBS_F_COUNT];      /* the registry */
    /* Per worker and family, the series it recorded last (a hint checked before use); one cache
     * line per worker. */
    uint16_t memo[OBS_MAX_WORKERS][32];

    /* tracing */
    bool tracing;               /* spans are recorded (a sink is configured and rate > 0) */
    double rate;                /* tracing.samplingRate */
    bool stdout_spans;          /* tracing.stdout */
    char endpoint_host[256];    /* OTLP collector host; "" = no exporter */
    int endpoint_port;          /* its port */
    char endpoint_path[256];    /* "/v1/traces" unless the env names one */
    bool secure;                /* tracing.otel.isSecure (TLS to the collector) */
    char *headers;              /* "Name: value\r\n" lines for the collector; owned */
    char ca_file[1024];         /* OTEL_EXPORTER_OTLP_[TRACES_]CERTIFICATE; "" = system roots */
    uint64_t export_timeout_ms; /* per export request */
    uint64_t delay_ms;          /* between exports */
    size_t batch;               /* spans per request */
    obs_ring_t rings[OBS_MAX_WORKERS]; /* one per worker */
    uint64_t rng[OBS_MAX_WORKERS][8];  /* per-worker id generator state (one cache line each) */
    uv_thread_t thread;                /* the exporter */
    bool thread_started;               /* thread is valid */
    _Atomic bool stop;                 /* ask the exporter to finish */

    /* logs */
    bool api_logging;             /* logging.apiLogging.enabled or --enable-api-logging */
    bool obfuscate_urls;          /* logging.apiLogging.obfuscateURLs */
    bool omit_health;             /* logging.apiLogging.omitHealthChecks */
    bool audit;                   /* logging.mcpAudit.enabled (default true) */
    bool audit_args;              /* logging.mcpAudit.arguments (default false) */
    char *redact[OBS_REDACT_MAX]; /* logging.mcpAudit.redact keys; owned */
    size_t nredact;               /* entries of redact */
};

/* metrics.c */
void obs__families_init(obs_t *o);
void obs__families_free(obs_t *o);
/** Counts +@p n, in the shard of @p worker (-1 for other threads), on the series of @p vals
 * (nlabels values, each valid UTF-8 as made by obs__label_copy or a constant; NULL counts as "").
 */
void obs__count(obs_t *o, int worker, obs_fam_id_t f, const char *const *vals, uint64_t n);
/** Observes @p v (ms*1000 for latency, bytes*1000 for sizes) on a histogram series. */
void obs__observe(obs_t *o, int worker, obs_fam_id_t f, const char *const *vals, uint64_t v_milli);
/** The path label under metric(s).http settings, written into @p out. */
void obs__path_label(const obs_t *o, const char *path, size_t n, char *out, size_t out_len);
/** The method label ("" with excludeVerbs, "UNKNOWN" for non-standard verbs). */
const char *obs__method_label(const obs_t *o, int http_method);
/** Matches @p path against a pathMatching pattern ("/orders/{id}", "{rest...}" at the end). */
bool obs__pattern_match(const char *pattern, const char *path, size_t n);
/** Copies @p n bytes into @p out as valid UTF-8 (bad bytes become '?'), cut to fit. */
void obs__label_copy(char *out, size_t out_len, const char *p, size_t n);

/* config.c */
int obs__config(obs_t *o, const obs_opts_t *opts, err_detail_t *d);
/** metric(s).rules, once the families exist. */
int obs__config_rules(obs_t *o, const obs_opts_t *opts, err_detail_t *d);

/* trace.c */
void obs__trace_begin(obs_t *o, obs_trace_t *t, int worker, const net_head_t *in);
void obs__span_push(obs_t *o, int worker, const obs_span_t *s);
/** The next free slot of @p worker's ring (only that worker may call), or NULL when full (the
 * drop is counted); obs__span_commit publishes it to the exporter. */
obs_span_t *obs__span_reserve(obs_t *o, int worker);
void obs__span_commit(obs_t *o, int worker);
size_t obs__ring_pop(obs_ring_t *r, obs_span_t *out, size_t max);

/* export.c */
int obs__export_start(obs_t *o);
void obs__export_stop(obs_t *o);
/** A byte source for obs__read_response: like recv(2), <= 0 at end or error. */
typedef ssize_t (*obs_read_fn)(void *ctx, char *p, size_t n);
/**
 * Reads one HTTP/1.1 response from @p read: returns its status (or ERR_NET_UPSTREAM_CLOSED when
 * nothing came, ERR_NET_BAD_RESPONSE for a bad status line) and skips its body when framed by
 * Content-Length or chunked coding, setting *@p reusable when the connection may carry another
 * request. Limits: 1 MiB in all, lines of 1 KiB, 100 header fields.
 */
int obs__read_response(obs_read_fn read, void *ctx, bool *reusable);
/** Appends the OTLP/JSON ExportTraceServiceRequest for @p n spans. */
int obs__otlp_json(const obs_t *o, const obs_span_t *s, size_t n, buf_t *b);

#endif
