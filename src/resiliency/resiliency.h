/*
 * resiliency — Dapr's Resiliency resources: timeouts, retries and circuit breakers for service
 * invocation (spec dapr.md §5), plus the MCP-safe rule that a JSON-RPC tools/call is not retried
 * unless the retry policy says `retryToolCalls: true`.
 *
 * Job: (1) compile `kind: Resiliency` documents from --resources-path (honouring `scopes`) into an
 * immutable policy set (resil_spec_t) with bounded parsing and a small, safe evaluator for the
 * circuit breakers' `trip` expressions; (2) answer "which timeout, retry and breaker apply to
 * target T" with the default and built-in policy names of §5.2–5.3; (3) keep circuit-breaker state
 * per target and method key, shared by all worker threads; (4) hold the current set for the
 * sidecar (resil_t) with hot reload of the resource directories, and count dapr_resiliency_*
 * metrics; (5) drive one invocation's attempts (resil_call_t): admission through the breaker, the
 * per-attempt timeout, the retry decision and the pause between attempts.
 *
 * Ownership: resil_spec_parse/resil_spec_load return a spec with one reference; ref/unref share it
 * and the last unref frees it with its breakers. A resil_t is created by resil_new and freed by
 * resil_free after every call and the watcher are gone. A resil_call_t is created by
 * resil_call_new and released by resil_call_free (its timer closes on the loop; the memory goes
 * when the close completes, and no callback runs after resil_call_free).
 * Threading: a spec is immutable except its breakers and counters, which are atomics or guarded by
 * a per-breaker spinlock held for a few arithmetic operations (no syscall, no allocation inside).
 * resil_acquire and the metric functions may run on any thread; resil_watch_* on the main loop;
 * a resil_call_t belongs to the loop it was created on.
 * Errors: ERR_RES_YAML/ERR_RES_INVALID/ERR_TOO_LARGE/ERR_IO from loading, with a detail
 * "<file>:<line>: <field>: <problem>"; ERR_RESIL_EXPR for a bad trip expression;
 * ERR_RESIL_CB_OPEN / ERR_RESIL_CB_TOO_MANY when a breaker refuses an attempt.
 */
#ifndef OUTRIGGER_RESILIENCY_H
#define OUTRIGGER_RESILIENCY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "base/buf.h"
#include "base/err.h"
#include "resources/resources.h"

/* Limits, each with the reason it exists. */
#define RESIL_TRIP_MAX_BYTES 512   /* a trip expression's text */
#define RESIL_TRIP_MAX_NODES 64    /* operators and operands in one expression */
#define RESIL_TRIP_MAX_DEPTH 16    /* nesting of parentheses and operators */
#define RESIL_MAX_POLICIES 512     /* named timeouts, retries, breakers, targets */
#define RESIL_MAX_FILES 256        /* resource files read from the directories */
#define RESIL_BREAKERS_MAX 1024    /* breaker instances (target:method keys) per set */
#define RESIL_BREAKER_KEY_MAX 1024 /* longer "target:method" keys share the target's */
#define RESIL_DEFAULT_CB_CACHE 100 /* circuitBreakerCacheSize default */
#define RESIL_MAX_DURATION_MS (30ull * 24 * 3600 * 1000) /* any duration field */
#define RESIL_EXP_INITIAL_MS 500 /* exponential: first interval (fixed in Dapr) */
#define RESIL_EXP_MAX_ELAPSED_MS (15ull * 60 * 1000) /* exponential: give up after (Dapr) */
#define RESIL_BUILTIN_RETRIES 3 /* DaprBuiltInServiceRetries: constant 1 s, 3 retries */
#define RESIL_BUILTIN_PAUSE_MS 1000

/* ---- trip expressions ----------------------------------------------------------------------- */

/* The counters a breaker keeps (sony/gobreaker's Counts). */
typedef struct resil_counts {
    uint64_t requests;              /* admitted in the current generation */
    uint64_t total_successes;       /* successes in the current generation */
    uint64_t total_failures;        /* failures in the current generation */
    uint64_t consecutive_successes; /* since the last failure */
    uint64_t consecutive_failures;  /* since the last success */
} resil_counts_t;

typedef struct resil_expr resil_expr_t; /* opaque, immutable */

/**
 * Compiles a trip expression of @p len bytes: integer literals, the five counter names, `true`,
 * `false`, + - * / %, comparisons (== != < <= > >=), ! && || and parentheses, CEL's precedence. It
 * must be boolean. Limits: RESIL_TRIP_MAX_{BYTES,NODES,DEPTH}. Returns 0 and *@p out, or
 * ERR_RESIL_EXPR / ERR_TOO_LARGE with a reason in @p d.
 */
int resil_expr_compile(const char *src, size_t len, resil_expr_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Evaluates @p e over @p c into *@p out. Returns ERR_RESIL_EXPR on overflow or division by
 * zero (a breaker then does not trip, as in Dapr). Pure: any thread. */
int resil_expr_eval(const resil_expr_t *e, const resil_counts_t *c, bool *out);
/** Releases @p e. NULL is a no-op. */
void resil_expr_free(resil_expr_t *e);

/* ---- the compiled policy set ---------------------------------------------------------------- */

typedef struct resil_retry {
    const char *name;         /* policy name; owned by the spec */
    const char *resource;     /* metadata.name of the resource that defined it */
    bool exponential;         /* else constant */
    uint64_t duration_ms;     /* constant: the pause (default 5 s) */
    uint64_t max_interval_ms; /* exponential: the largest pause (default 60 s) */
    int64_t max_retries;      /* retries after the first attempt; -1 = forever */
    bool http_any;            /* no matching.httpStatusCodes: every status <200 or >399 */
    uint8_t http_codes[75];   /* bit per status 0..599 when !http_any */
    bool retry_tool_calls;    /* Outrigger: an MCP tools/call may be retried */
} resil_retry_t;

typedef struct resil_cb_policy {
    const char *name;      /* policy name; owned by the spec */
    const char *resource;  /* metadata.name of the resource that defined it */
    uint32_t max_requests; /* half-open probes allowed (default 1) */
    uint64_t interval_ms;  /* closed: counts reset every interval; 0 = never */
    uint64_t timeout_ms;   /* open → half-open after (default 60 s) */
    resil_expr_t *trip;    /* owned; default consecutiveFailures > 5 */
    const char *trip_src;  /* its text */
} resil_cb_policy_t;

/* What applies to one target; every pointer is owned by the spec. */
typedef struct resil_policy {
    uint64_t timeout_ms;          /* per attempt; 0 = none */
    const char *timeout_resource; /* metadata.name behind the timeout (metrics) */
    const resil_retry_t *retry;   /* NULL = no retries from a resource */
    const resil_cb_policy_t *cb;  /* NULL = no breaker */
    uint32_t cb_cache_size;       /* method keys per target with their own breaker */
    bool explicit_target;         /* found under targets.apps (defaults do not count) */
} resil_policy_t;

typedef struct resil_spec resil_spec_t; /* opaque, refcounted */

/**
 * Compiles every `kind: Resiliency` document of one YAML stream (other kinds are skipped; a
 * resource whose `scopes` do not name @p app_id is skipped). @p name labels errors. Returns 0 and a
 * spec with one reference (possibly empty), or an error with "<name>:<line>: <field>: <problem>".
 */
int resil_spec_parse(const char *name, const char *data, size_t len, const char *app_id,
                     resil_spec_t **out, err_detail_t *d) __attribute__((warn_unused_result));
/**
 * Reads every *.yaml / *.yml file of @p dirs (in name order, at most RESIL_MAX_FILES, $VAR
 * expanded like Dapr in standalone mode) and compiles them together; a later definition of a
 * name replaces an earlier one. *@p hash (may be NULL) receives a hash of the bytes read, so a
 * watcher can tell whether anything changed. Blocking: call off the request loops.
 */
int resil_spec_load(const char *const *dirs, size_t ndirs, const char *app_id, resil_spec_t **out,
                    uint64_t *hash, err_detail_t *d) __attribute__((warn_unused_result));
/** Takes one more reference (NULL allowed) and returns @p s. */
resil_spec_t *resil_spec_ref(resil_spec_t *s);
/** Drops one reference; the last frees the set and its breakers. NULL is a no-op. */
void resil_spec_unref(resil_spec_t *s);
/** Resources compiled into @p s and their names (for dapr_resiliency_loaded). */
size_t resil_spec_resource_count(const resil_spec_t *s);
const char *resil_spec_resource_name(const resil_spec_t *s, size_t i);

/**
 * Fills @p out with the policies for @p target (an app id or HTTPEndpoint name, as the caller
 * named it): targets.apps.<target>, else DefaultApp*Policy then Default*Policy for each kind.
 * Returns true when anything applies.
 */
bool resil_spec_lookup(const resil_spec_t *s, const char *target, resil_policy_t *out);
/** The DaprBuiltInServiceRetries policy of @p s (built in, or redefined by a resource). */
const resil_retry_t *resil_spec_builtin_retry(const resil_spec_t *s);

/* ---- circuit breakers ----------------------------------------------------------------------- */

typedef enum resil_cb_state {
    RESIL_CB_CLOSED = 0,
    RESIL_CB_HALF_OPEN = 1,
    RESIL_CB_OPEN = 2,
} resil_cb_state_t;

typedef struct resil_breaker resil_breaker_t; /* lives as long as its spec */

/** "closed", "half-open" or "open". */
const char *resil_cb_state_name(resil_cb_state_t st);

/**
 * The breaker for key "<target>:<method>" under policy @p p (which must have a cb), created on
 * first use. Each target gets at most p->cb_cache_size method keys; further methods, and keys
 * longer than RESIL_BREAKER_KEY_MAX, share the target's own breaker. NULL only when the set's
 * RESIL_BREAKERS_MAX instances are all taken (then no breaker applies; logged once).
 */
resil_breaker_t *resil_spec_breaker(resil_spec_t *s, const resil_policy_t *p, const char *target,
                                    const char *method);
/**
 * Asks @p b to admit one attempt at monotonic time @p now_ms. Returns 0 and the generation in
 * *@p gen, ERR_RESIL_CB_OPEN when open, ERR_RESIL_CB_TOO_MANY when half-open and maxRequests
 * probes are in flight. May move open → half-open (then *@p changed is the new state, else -1).
 */
int resil_breaker_allow(resil_breaker_t *b, uint64_t now_ms, uint64_t *gen, int *changed);
/**
 * Records the outcome of an attempt admitted in generation @p gen (ignored if the generation
 * moved on). Returns the new state in *@p changed when this outcome changed it (else -1).
 */
void resil_breaker_record(resil_breaker_t *b, uint64_t now_ms, uint64_t gen, bool success,
                          int *changed);
/** The state now (may move open → half-open). */
resil_cb_state_t resil_breaker_state(resil_breaker_t *b, uint64_t now_ms);
/** The target the breaker belongs to and its key (borrowed, as long as the spec). */
const char *resil_breaker_target(const resil_breaker_t *b);
const char *resil_breaker_key(const resil_breaker_t *b);

/* ---- retries -------------------------------------------------------------------------------- */

/** True when policy @p r retries an app response with HTTP @p status (<200 or >399 only). */
bool resil_retry_matches_status(const resil_retry_t *r, int status);
/** The pause before retry number @p n (1-based) under @p r; @p rnd in [0,1) randomises
 * exponential pauses by ±50% as Dapr does. */
uint64_t resil_retry_pause_ms(const resil_retry_t *r, unsigned n, double rnd);

/* ---- the sidecar's holder, hot reload and metrics ------------------------------------------- */

typedef struct resil resil_t;

/** Creates the holder for @p app_id / @p ns with @p initial (reference taken over; may be NULL). */
resil_t *resil_new(const char *app_id, const char *ns, resil_spec_t *initial);
/** Frees the holder (after the workers and the watcher stopped). NULL is a no-op. */
void resil_free(resil_t *r);
/** A new reference to the current set, or NULL. Lock-free; drop it with resil_spec_unref. */
resil_spec_t *resil_acquire(resil_t *r);
/** Makes @p s (reference taken over) the current set; calls in flight keep theirs. */
void resil_publish(resil_t *r, resil_spec_t *s);

typedef struct resil_watch resil_watch_t;
/**
 * Watches @p dirs (borrowed for the watcher's life) on @p loop: directory events plus a poll every
 * second; a changed set of bytes is compiled on the thread pool and published; an invalid one is
 * logged once and the previous set stays. @p hash is the hash of what is loaded now.
 */
int resil_watch_start(resil_t *r, uv_loop_t *loop, const char *const *dirs, size_t ndirs,
                      uint64_t hash, resil_watch_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Stops watching; memory goes as the loop runs on. NULL is a no-op. */
void resil_watch_close(resil_watch_t *w);

typedef enum resil_kind {
    RESIL_TIMEOUT = 0,
    RESIL_RETRY,
    RESIL_CIRCUITBREAKER,
    RESIL_KINDS
} resil_kind_t;

/** Counts dapr_resiliency_count (a policy applied to a call) for @p target. */
void resil_metric_count(resil_t *r, const char *resource, resil_kind_t kind, const char *target);
/** Counts dapr_resiliency_activations_total (a timeout fired, a retry ran, a breaker changed
 * state; @p status is the new breaker state's name, else ""). */
void resil_metric_activation(resil_t *r, const char *resource, resil_kind_t kind,
                             const char *target, const char *status);
/** Sets dapr_resiliency_cb_state for @p target. */
void resil_metric_cb_state(resil_t *r, const char *resource, const char *target,
                           resil_cb_state_t st);
/** Appends the dapr_resiliency_* exposition (Prometheus text 0.0.4) to @p b. */
int resil_metrics_render(resil_t *r, buf_t *b);

/* ---- one invocation ------------------------------------------------------------------------- */

/* What the proxy knows about the request when an attempt ends (for the retry decision). */
typedef struct resil_req_state {
    bool replayable; /* the whole body is kept (or there is none) and no response byte went out */
    bool tool_call;  /* the JSON-RPC request is (or a batch contains) tools/call */
    bool to_peer;    /* the upstream is a peer sidecar (built-in retries apply) */
} resil_req_state_t;

/* How an attempt ended. */
typedef enum resil_outcome {
    RESIL_OK = 0,           /* a response the client may have (status in 200..399) */
    RESIL_STATUS,           /* a response with status <200 or >399 */
    RESIL_CONNECT_FAILED,   /* no connection: nothing was sent */
    RESIL_TRANSPORT_FAILED, /* the exchange broke after connecting */
    RESIL_TIMED_OUT,        /* the per-attempt timeout fired */
} resil_outcome_t;

typedef struct resil_call resil_call_t;
/** Called on the loop when the per-attempt timeout fires or the pause before a retry ends. */
typedef void (*resil_call_cb)(resil_call_t *c, void *ctx);

/**
 * Starts governing one invocation of @p method on @p target from the current set of @p r (the
 * call keeps its own reference). @p target is borrowed until resil_call_free. Never fails; a call
 * with no policy still applies the built-in service retries. Its timer is set up only when a
 * timeout or a pause needs it, so a call without policies costs one small allocation.
 */
resil_call_t *resil_call_new(resil_t *r, uv_loop_t *loop, const char *target, const char *method,
                             resil_call_cb on_timeout, resil_call_cb on_retry, void *ctx);
/** Stops the call's timer; no callback runs after this. The memory goes when the timer closed.
 * An attempt admitted by the breaker whose outcome was not reported counts as a failure. */
void resil_call_free(resil_call_t *c);
/**
 * Before an attempt: asks the breaker (if any) and arms the per-attempt timeout. Returns 0, or
 * ERR_RESIL_CB_OPEN / ERR_RESIL_CB_TOO_MANY (nothing may be sent; the error is final).
 */
int resil_call_begin(resil_call_t *c);
/** The attempt got a response head with @p status that will be forwarded: records the breaker
 * outcome; an event stream (@p sse) stops the timeout (its idle timeout governs it). */
void resil_call_forwarding(resil_call_t *c, int status, bool sse);
/** The forwarded response ended (stops the timeout). */
void resil_call_end(resil_call_t *c);
/**
 * An attempt ended with @p out before any response byte was forwarded (for RESIL_STATUS, with
 * @p status). Records the breaker outcome and decides: true = a retry was scheduled (on_retry
 * runs after the pause), false = the outcome is final (forward the response / report the error).
 */
bool resil_call_failed(resil_call_t *c, resil_outcome_t out, int status,
                       const resil_req_state_t *rs);
/** The number of the attempt running now (1 = the first). */
unsigned resil_call_attempt(const resil_call_t *c);
/** True when the call has a per-attempt timeout, retries or a breaker from a resource. */
bool resil_call_has_policy(const resil_call_t *c);

#endif
