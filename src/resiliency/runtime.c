/*
 * The sidecar's side of resiliency: the current policy set (a lock-free slot, swapped by hot
 * reload), the dapr_resiliency_* counters, and resil_call_t, which drives one invocation's
 * attempts: breaker admission, the per-attempt timeout, the retry decision and the pause between
 * attempts (spec dapr.md §5.4).
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "resiliency/resiliency_int.h"
#include "resources/watch.h"

#define METRIC_SLOTS 256 /* label sets counted apart; then "other" */
#define LABEL_MAX 128
#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

typedef struct mslot {
    _Atomic int used;          /* 0 free, 1 being filled, 2 ready */
    uint64_t hash;             /* of the labels */
    int kind;                  /* resil_kind_t */
    char resource[LABEL_MAX];  /* name label */
    char target[LABEL_MAX];    /* target label without the "app_" prefix */
    char status[16];           /* status label */
    atomic_ullong count;       /* dapr_resiliency_count */
    atomic_ullong activations; /* dapr_resiliency_activations_total */
    atomic_int cb_state;       /* dapr_resiliency_cb_state; -1 never set */
} mslot_t;

struct resil {
    char app_id[LABEL_MAX];          /* app_id label */
    char ns[LABEL_MAX];              /* namespace label */
    res_slot_t slot;                 /* current set, wrapped in a snapshot */
    mslot_t slots[METRIC_SLOTS + 1]; /* the last one collects labels that did not fit */
};

static const char *const kind_names[RESIL_KINDS] = {"timeout", "retry", "circuitbreaker"};

static void dispose_spec(void *data)
{
    resil_spec_unref(data);
}

resil_t *resil_new(const char *app_id, const char *ns, resil_spec_t *initial)
{
    resil_t *r = mem_calloc(sizeof(*r));

    str_copy(r->app_id, sizeof(r->app_id), app_id ? app_id : "");
    str_copy(r->ns, sizeof(r->ns), ns ? ns : "");
    res_slot_init(&r->slot, initial ? res_snapshot_wrap(initial, dispose_spec, 0) : NULL);
    for (int i = 0; i <= METRIC_SLOTS; i++)
        atomic_init(&r->slots[i].cb_state, -1);
    str_copy(r->slots[METRIC_SLOTS].resource, LABEL_MAX, "other");
    str_copy(r->slots[METRIC_SLOTS].target, LABEL_MAX, "other");
    atomic_store(&r->slots[METRIC_SLOTS].used, 2);
    return r;
}

void resil_free(resil_t *r)
{
    if (r == NULL)
        return;
    res_slot_destroy(&r->slot);
    mem_free(r);
}

/* The set inside a snapshot reference (NULL when none). */
static resil_spec_t *spec_of(res_snapshot_t *snap)
{
    return snap ? res_snapshot_data(snap) : NULL;
}

resil_spec_t *resil_acquire(resil_t *r)
{
    res_snapshot_t *snap = res_slot_acquire(&r->slot);
    resil_spec_t *s = resil_spec_ref(spec_of(snap));
    res_snapshot_unref(snap);
    return s;
}

void resil_publish(resil_t *r, resil_spec_t *s)
{
    res_slot_publish(&r->slot, s ? res_snapshot_wrap(s, dispose_spec, 0) : NULL);
}

/* ---- metrics -------------------------------------------------------------------------------- */

static uint64_t labels_hash(const char *a, int kind, const char *b, const char *c)
{
    uint64_t h = 1469598103934665603ull;
    const char *parts[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        for (const char *p = parts[i]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return (h ^ (uint64_t)kind) * 1099511628211ull;
}

/* Finds or claims the slot for a label set; claimed slots are never freed, so a reader that sees
 * used == 2 reads the labels without a lock. */
static mslot_t *mslot(resil_t *r, const char *resource, int kind, const char *target,
                      const char *status)
{
    char res[LABEL_MAX], tgt[LABEL_MAX], st[16];
    uint64_t h;

    /* Compare what the slot stores: the labels truncated to their fields. */
    str_copy(res, sizeof(res), resource ? resource : "");
    str_copy(tgt, sizeof(tgt), target ? target : "");
    str_copy(st, sizeof(st), status ? status : "");
    h = labels_hash(res, kind, tgt, st);
    for (int i = 0; i < METRIC_SLOTS; i++) {
        mslot_t *s = &r->slots[(h + (uint64_t)i) % METRIC_SLOTS];
        int u = atomic_load(&s->used);
        if (u == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&s->used, &expected, 1)) {
                s->hash = h;
                s->kind = kind;
                memcpy(s->resource, res, sizeof(res));
                memcpy(s->target, tgt, sizeof(tgt));
                memcpy(s->status, st, sizeof(st));
                atomic_store(&s->used, 2);
                return s;
            }
            u = atomic_load(&s->used);
        }
        while (u == 1)
            u = atomic_load(&s->used);
        if (s->hash == h && s->kind == kind && strcmp(s->resource, res) == 0 &&
            strcmp(s->target, tgt) == 0 && strcmp(s->status, st) == 0)
            return s;
    }
    return &r->slots[METRIC_SLOTS];
}

void resil_metric_count(resil_t *r, const char *resource, resil_kind_t kind, const char *target)
{
    if (r != NULL)
        atomic_fetch_add_explicit(&mslot(r, resource, (int)kind, target, "")->count, 1,
                                  memory_order_relaxed);
}

void resil_metric_activation(resil_t *r, const char *resource, resil_kind_t kind,
                             const char *target, const char *status)
{
    if (r != NULL)
        atomic_fetch_add_explicit(&mslot(r, resource, (int)kind, target, status)->activations, 1,
                                  memory_order_relaxed);
}

void resil_metric_cb_state(resil_t *r, const char *resource, const char *target,
                           resil_cb_state_t st)
{
    if (r != NULL)
        atomic_store(&mslot(r, resource, RESIL_CIRCUITBREAKER, target, "")->cb_state, (int)st);
}

static int series(resil_t *r, buf_t *b, const char *metric, const mslot_t *s, const char *status,
                  long long v)
{
    int rc = buf_printf(b, "%s{app_id=\"", metric);
    rc = rc ? rc : buf_append_prom_label(b, r->app_id);
    rc = rc ? rc : buf_append_str(b, "\",name=\"");
    rc = rc ? rc : buf_append_prom_label(b, s->resource);
    rc = rc ? rc : buf_printf(b, "\",policy=\"%s\",namespace=\"", kind_names[s->kind]);
    rc = rc ? rc : buf_append_prom_label(b, r->ns);
    rc = rc ? rc : buf_append_str(b, "\",flow_direction=\"outbound\",target=\"app_");
    rc = rc ? rc : buf_append_prom_label(b, s->target);
    rc = rc ? rc : buf_append_str(b, "\",status=\"");
    rc = rc ? rc : buf_append_prom_label(b, status);
    rc = rc ? rc : buf_printf(b, "\"} %lld\n", v);
    return rc;
}

int resil_metrics_render(resil_t *r, buf_t *b)
{
    resil_spec_t *s;
    int rc;

    if (r == NULL)
        return 0;
    s = resil_acquire(r);
    rc = buf_append_str(b, "# TYPE dapr_resiliency_loaded counter\n");

    for (size_t i = 0; i < resil_spec_resource_count(s) && rc == 0; i++) {
        rc = buf_append_str(b, "dapr_resiliency_loaded{app_id=\"");
        rc = rc ? rc : buf_append_prom_label(b, r->app_id);
        rc = rc ? rc : buf_append_str(b, "\",name=\"");
        rc = rc ? rc : buf_append_prom_label(b, resil_spec_resource_name(s, i));
        rc = rc ? rc : buf_append_str(b, "\",namespace=\"");
        rc = rc ? rc : buf_append_prom_label(b, r->ns);
        rc = rc ? rc : buf_append_str(b, "\"} 1\n");
    }
    resil_spec_unref(s);
    for (int m = 0; m < 3 && rc == 0; m++) {
        static const char *const names[3] = {"dapr_resiliency_count",
                                             "dapr_resiliency_activations_total",
                                             "dapr_resiliency_cb_state"};
        rc = buf_printf(b, "# TYPE %s %s\n", names[m], m == 2 ? "gauge" : "counter");
        for (int i = 0; i <= METRIC_SLOTS && rc == 0; i++) {
            const mslot_t *sl = &r->slots[i];
            long long v;
            if (atomic_load(&sl->used) != 2)
                continue;
            if (m == 0)
                v = (long long)atomic_load(&sl->count);
            else if (m == 1)
                v = (long long)atomic_load(&sl->activations);
            else
                v = atomic_load(&sl->cb_state);
            if ((m < 2 && v == 0) || (m == 2 && v < 0))
                continue;
            rc = series(r, b, names[m], sl,
                        m == 2 ? resil_cb_state_name((resil_cb_state_t)v) : sl->status, v);
        }
    }
    return rc;
}

/* ---- hot reload ----------------------------------------------------------------------------- */

#define WATCH_POLL_MS 1000
#define WATCH_DEBOUNCE_MS 100
#define WATCH_DIRS_MAX 16

struct resil_watch {
    resil_t *r;                       /* borrowed */
    uv_loop_t *loop;                  /* borrowed */
    uv_timer_t poll;                  /* periodic check */
    uv_timer_t debounce;              /* quiet time after a directory event */
    uv_fs_event_t ev[WATCH_DIRS_MAX]; /* one per directory */
    const char *const *dirs;          /* borrowed */
    size_t ndirs;                     /* entries in dirs (and ev) */
    uv_work_t work;                   /* the load in flight */
    int handles;                      /* handles not yet closed */
    bool busy;                        /* work queued or running */
    bool closing;                     /* resil_watch_close was called */
    uint64_t applied;                 /* hash of the bytes in force */
    uint64_t failed;                  /* hash of bytes that failed (logged once) */
    int rc;                           /* (work) result */
    uint64_t hash;                    /* (work) hash of the bytes read */
    resil_spec_t *result;             /* (work) new set, owned until published */
    err_detail_t detail;              /* (work) failure detail */
};

static void watch_maybe_free(resil_watch_t *w)
{
    if (w->closing && w->handles == 0 && !w->busy)
        mem_free(w);
}

static void on_watch_close(uv_handle_t *h)
{
    resil_watch_t *w = h->data;
    w->handles--;
    watch_maybe_free(w);
}

static void on_load(uv_work_t *req)
{
    resil_watch_t *w = container_of(req, resil_watch_t, work);
    w->result = NULL;
    w->detail.msg[0] = '\0';
    w->rc = resil_spec_load(w->dirs, w->ndirs, w->r->app_id, &w->result, &w->hash, &w->detail);
}

static void after_load(uv_work_t *req, int status)
{
    resil_watch_t *w = container_of(req, resil_watch_t, work);
    resil_spec_t *s = w->result;

    w->busy = false;
    w->result = NULL;
    if (status < 0 || w->closing) {
        resil_spec_unref(s);
        watch_maybe_free(w);
        return;
    }
    if (w->rc == 0 && w->hash != w->applied) {
        w->applied = w->hash;
        w->failed = 0;
        log_info("resiliency", "resiliency resources reloaded: %zu in force",
                 resil_spec_resource_count(s));
        resil_publish(w->r, s);
    } else if (w->rc == 0) {
        resil_spec_unref(s);
    } else if (w->hash != w->failed || w->failed == 0) {
        w->failed = w->hash ? w->hash : 1;
        log_error("resiliency", "%s; keeping the previous resiliency policies",
                  w->detail.msg[0] ? w->detail.msg : err_str(w->rc));
    }
}

static void queue_load(resil_watch_t *w)
{
    if (w->busy || w->closing)
        return;
    w->busy = true;
    if (uv_queue_work(w->loop, &w->work, on_load, after_load) < 0)
        w->busy = false;
}

static void on_poll(uv_timer_t *t)
{
    queue_load(t->data);
}

static void on_dir_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    resil_watch_t *w = h->data;
    (void)name;
    (void)events;
    if (status == 0 && !w->closing)
        uv_timer_start(&w->debounce, on_poll, WATCH_DEBOUNCE_MS, 0);
}

int resil_watch_start(resil_t *r, uv_loop_t *loop, const char *const *dirs, size_t ndirs,
                      uint64_t hash, resil_watch_t **out, err_detail_t *d)
{
    resil_watch_t *w;

    if (r == NULL || loop == NULL || out == NULL || ndirs > WATCH_DIRS_MAX)
        return err_set(d, ERR_INVAL, "resil_watch_start: invalid arguments");
    w = mem_calloc(sizeof(*w));
    w->r = r;
    w->loop = loop;
    w->dirs = dirs;
    w->ndirs = ndirs;
    w->applied = hash;
    uv_timer_init(loop, &w->poll);
    uv_timer_init(loop, &w->debounce);
    w->poll.data = w->debounce.data = w;
    w->handles = 2;
    for (size_t i = 0; i < ndirs; i++) {
        uv_fs_event_init(loop, &w->ev[i]);
        w->ev[i].data = w;
        w->handles++;
        if (uv_fs_event_start(&w->ev[i], on_dir_event, dirs[i], 0) < 0)
            log_debug("resiliency", "%s: not watched for events; polling", dirs[i]);
    }
    uv_timer_start(&w->poll, on_poll, WATCH_POLL_MS, WATCH_POLL_MS);
    *out = w;
    return 0;
}

void resil_watch_close(resil_watch_t *w)
{
    if (w == NULL || w->closing)
        return;
    w->closing = true;
    if (w->busy)
        uv_cancel((uv_req_t *)&w->work);
    uv_close((uv_handle_t *)&w->poll, on_watch_close);
    uv_close((uv_handle_t *)&w->debounce, on_watch_close);
    for (size_t i = 0; i < w->ndirs; i++)
        uv_close((uv_handle_t *)&w->ev[i], on_watch_close);
}

/* ---- one invocation ------------------------------------------------------------------------- */

struct resil_call {
    uv_timer_t timer;         /* per-attempt timeout, then the pause before a retry */
    resil_t *r;               /* borrowed */
    resil_spec_t *spec;       /* reference held for the call; NULL when none is loaded */
    resil_policy_t pol;       /* what applies (pointers into spec) */
    bool has_policy;          /* a resource applies to the target */
    resil_breaker_t *br;      /* NULL without a breaker */
    uint64_t gen;             /* breaker generation of the running attempt */
    bool admitted;            /* the running attempt went through the breaker */
    bool recorded;            /* its outcome was given to the breaker */
    bool pausing;             /* the timer measures the pause (else the timeout) */
    unsigned attempt;         /* 1-based number of the running attempt */
    unsigned retries;         /* retries scheduled so far */
    uint64_t started_ms;      /* monotonic, for exponential's maxElapsedTime */
    uint64_t rnd;             /* xorshift state for the pauses' jitter */
    resil_call_cb on_timeout; /* the attempt ran out of time */
    resil_call_cb on_retry;   /* the pause ended: start the next attempt */
    void *ctx;                /* passed to both */
    const char *target;       /* for logs and metrics; borrowed until resil_call_free */
    uv_loop_t *loop;          /* the call's loop */
    bool timer_on;            /* timer was initialised (only calls that need it pay for it) */
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000u;
}

static void on_call_closed(uv_handle_t *h)
{
    resil_call_t *c = container_of(h, resil_call_t, timer);
    resil_spec_unref(c->spec);
    mem_free(c);
}

resil_call_t *resil_call_new(resil_t *r, uv_loop_t *loop, const char *target, const char *method,
                             resil_call_cb on_timeout, resil_call_cb on_retry, void *ctx)
{
    resil_call_t *c = mem_calloc(sizeof(*c));

    c->r = r;
    c->on_timeout = on_timeout;
    c->on_retry = on_retry;
    c->ctx = ctx;
    /* The loop's clock (same monotonic epoch, no clock read); jitter seeded from the call. */
    c->started_ms = uv_now(loop);
    c->rnd = ((uint64_t)(uintptr_t)c * 0x9E3779B97F4A7C15ull ^ c->started_ms) | 1u;
    c->target = target;
    c->loop = loop;
    c->spec = r ? resil_acquire(r) : NULL;
    c->has_policy = resil_spec_lookup(c->spec, target, &c->pol);
    if (c->has_policy) {
        if (c->pol.timeout_ms > 0)
            resil_metric_count(r, c->pol.timeout_resource, RESIL_TIMEOUT, target);
        if (c->pol.retry != NULL)
            resil_metric_count(r, c->pol.retry->resource, RESIL_RETRY, target);
        if (c->pol.cb != NULL) {
            resil_metric_count(r, c->pol.cb->resource, RESIL_CIRCUITBREAKER, target);
            c->br = resil_spec_breaker(c->spec, &c->pol, target, method);
        }
    }
    return c;
}

static void record(resil_call_t *c, bool success);

void resil_call_free(resil_call_t *c)
{
    if (c == NULL)
        return;
    /* An attempt that never reported (the client left, the request failed locally) counts as
     * a failure, as a cancelled context does in Dapr; a half-open breaker would otherwise wait
     * for its probe forever. */
    record(c, false);
    if (c->timer_on) {
        uv_close((uv_handle_t *)&c->timer, on_call_closed);
        return;
    }
    resil_spec_unref(c->spec);
    mem_free(c);
}

/* Arms the timer for @p ms (initialising it on first use). */
static void timer_start(resil_call_t *c, uint64_t ms);

unsigned resil_call_attempt(const resil_call_t *c)
{
    return c->attempt;
}

bool resil_call_has_policy(const resil_call_t *c)
{
    return c->has_policy;
}

/* Logs and counts a breaker state change reported as @p changed (-1 = none). */
static void state_changed(resil_call_t *c, int changed)
{
    if (changed < 0)
        return;
    log_info("resiliency", "circuit breaker %s for %s changed state to %s", c->pol.cb->name,
             resil_breaker_key(c->br), resil_cb_state_name((resil_cb_state_t)changed));
    resil_metric_activation(c->r, c->pol.cb->resource, RESIL_CIRCUITBREAKER, c->target,
                            resil_cb_state_name((resil_cb_state_t)changed));
    resil_metric_cb_state(c->r, c->pol.cb->resource, c->target, (resil_cb_state_t)changed);
}

static void on_timer(uv_timer_t *t);

static void timer_start(resil_call_t *c, uint64_t ms)
{
    if (!c->timer_on) {
        uv_timer_init(c->loop, &c->timer);
        c->timer_on = true;
    }
    uv_timer_start(&c->timer, on_timer, ms, 0);
}

static void timer_stop(resil_call_t *c)
{
    if (c->timer_on)
        uv_timer_stop(&c->timer);
}

static void on_timer(uv_timer_t *t)
{
    resil_call_t *c = container_of(t, resil_call_t, timer);

    if (c->pausing) {
        c->pausing = false;
        c->on_retry(c, c->ctx);
        return;
    }
    resil_metric_activation(c->r, c->pol.timeout_resource, RESIL_TIMEOUT, c->target, "");
    log_debug("resiliency", "attempt %u to %s timed out after %llu ms", c->attempt, c->target,
              (unsigned long long)c->pol.timeout_ms);
    c->on_timeout(c, c->ctx);
}

int resil_call_begin(resil_call_t *c)
{
    c->attempt++;
    c->admitted = false;
    c->recorded = false;
    if (c->br != NULL) {
        int changed = -1;
        int rc = resil_breaker_allow(c->br, now_ms(), &c->gen, &changed);
        state_changed(c, changed);
        if (rc < 0)
            return rc;
        c->admitted = true;
    }
    if (c->pol.timeout_ms > 0) {
        c->pausing = false;
        timer_start(c, c->pol.timeout_ms);
    }
    return 0;
}

static void record(resil_call_t *c, bool success)
{
    int changed = -1;
    if (c->recorded || !c->admitted)
        return;
    c->recorded = true;
    resil_breaker_record(c->br, now_ms(), c->gen, success, &changed);
    state_changed(c, changed);
}

void resil_call_forwarding(resil_call_t *c, int status, bool sse)
{
    record(c, status >= 200 && status <= 399);
    /* A long-lived event stream is governed by the idle timeout, not the request timeout. */
    if (sse)
        timer_stop(c);
}

void resil_call_end(resil_call_t *c)
{
    if (!c->pausing)
        timer_stop(c);
}

static double next_rnd(resil_call_t *c)
{
    c->rnd ^= c->rnd << 13;
    c->rnd ^= c->rnd >> 7;
    c->rnd ^= c->rnd << 17;
    return (double)(c->rnd >> 11) / 9007199254740992.0;
}

bool resil_call_failed(resil_call_t *c, resil_outcome_t out, int status,
                       const resil_req_state_t *rs)
{
    const resil_retry_t *retry = c->pol.retry;
    uint64_t pause;

    timer_stop(c);
    record(c, false);
    /* Spec §5.4.3: without a target entry, the built-in service retries cover a peer sidecar
     * that could not be reached (nothing was sent, so any request is safe to send again). */
    if (retry == NULL && !c->pol.explicit_target && rs->to_peer && out == RESIL_CONNECT_FAILED)
        retry = resil_spec_builtin_retry(c->spec);
    if (retry == NULL || !rs->replayable)
        return false;
    if (out == RESIL_STATUS && !resil_retry_matches_status(retry, status))
        return false;
    /* MCP-safe: a tool call may have side effects; repeat it only when the policy opts in, or
     * when it provably never left (no connection). */
    if (rs->tool_call && !retry->retry_tool_calls && out != RESIL_CONNECT_FAILED)
        return false;
    if (retry->max_retries >= 0 && c->retries >= (uint64_t)retry->max_retries)
        return false;
    if (retry->exponential && now_ms() - c->started_ms > RESIL_EXP_MAX_ELAPSED_MS)
        return false;
    c->retries++;
    pause = resil_retry_pause_ms(retry, c->retries, next_rnd(c));
    if (retry != resil_spec_builtin_retry(c->spec) || c->pol.retry == retry)
        resil_metric_activation(c->r, retry->resource, RESIL_RETRY, c->target, "");
    log_debug("resiliency", "retrying %s (retry %u, policy %s) in %llu ms", c->target, c->retries,
              retry->name, (unsigned long long)pause);
    c->pausing = true;
    timer_start(c, pause);
    return true;
}
