/*
 * Circuit breakers with sony/gobreaker's semantics (what Dapr uses): closed → open when the trip
 * expression holds after a failure; open → half-open after `timeout`; half-open admits
 * `maxRequests` probes, closes after that many consecutive successes and opens again on any
 * failure. Counts live in generations: a state change or a closed-state `interval` starts a new
 * one, and an outcome from an older generation is ignored.
 *
 * Sharing across worker threads: instances sit in a fixed table owned by the policy set. A slot is
 * claimed once with a compare-and-swap and never released before the set, so lookups take no lock.
 * The state of one breaker is guarded by a spinlock held for a few arithmetic operations and at
 * most one trip evaluation (bounded by RESIL_TRIP_MAX_NODES): no syscall, no allocation, no log
 * line inside it.
 */
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "resiliency/resiliency_int.h"

const char *resil_cb_state_name(resil_cb_state_t st)
{
    return st == RESIL_CB_OPEN ? "open" : st == RESIL_CB_HALF_OPEN ? "half-open" : "closed";
}

static uint64_t key_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (unsigned char)*k) * 1099511628211ull;
    return h;
}

/* Finds the breaker for @p key, claiming a free slot for it when @p create. */
static resil_breaker_t *slot_for(resil_spec_t *s, const resil_cb_policy_t *cb, const char *key,
                                 const char *target, bool create)
{
    uint64_t h = key_hash(key);

    for (size_t i = 0; i < RESIL_BREAKERS_MAX; i++) {
        resil_breaker_t *b = &s->breakers[(h + i) % RESIL_BREAKERS_MAX];
        int u = atomic_load(&b->used);
        if (u == 0) {
            int expected = 0;
            if (!create)
                return NULL;
            if (atomic_compare_exchange_strong(&b->used, &expected, 1)) {
                b->hash = h;
                b->key = mem_strdup(key);
                b->target = mem_strdup(target);
                b->cb = cb;
                b->state = RESIL_CB_CLOSED;
                atomic_store(&b->used, 2);
                return b;
            }
            u = atomic_load(&b->used);
        }
        while (u == 1) /* another thread is filling it in: a few stores away */
            u = atomic_load(&b->used);
        if (b->hash == h && strcmp(b->key, key) == 0)
            return b;
    }
    if (create && !atomic_exchange(&s->full_logged, true))
        log_warn("resiliency",
                 "all %d circuit breaker instances are in use; further target:method keys get "
                 "no breaker until the resiliency resources are reloaded",
                 RESIL_BREAKERS_MAX);
    return NULL;
}

resil_breaker_t *resil_spec_breaker(resil_spec_t *s, const resil_policy_t *p, const char *target,
                                    const char *method)
{
    char key[RESIL_BREAKER_KEY_MAX];
    resil_breaker_t *own, *b;
    int n;

    if (s == NULL || s->breakers == NULL || p == NULL || p->cb == NULL || target == NULL)
        return NULL;
    own = slot_for(s, p->cb, target, target, true);
    if (own == NULL || method == NULL)
        return own;
    n = snprintf(key, sizeof(key), "%s:%s", target, method);
    if (n < 0 || (size_t)n >= sizeof(key))
        return own;
    b = slot_for(s, p->cb, key, target, false);
    if (b != NULL)
        return b;
    /* circuitBreakerCacheSize bounds the method keys of one target (a caller chooses methods). */
    if (atomic_fetch_add(&own->methods, 1) >= p->cb_cache_size) {
        atomic_fetch_sub(&own->methods, 1);
        return own;
    }
    b = slot_for(s, p->cb, key, target, true);
    return b ? b : own;
}

void resil__breakers_free(resil_spec_t *s)
{
    if (s->breakers == NULL)
        return;
    for (size_t i = 0; i < RESIL_BREAKERS_MAX; i++) {
        mem_free(s->breakers[i].key);
        mem_free(s->breakers[i].target);
    }
    mem_free(s->breakers);
    s->breakers = NULL;
}

static void lock(resil_breaker_t *b)
{
    unsigned spins = 0;
    while (atomic_flag_test_and_set_explicit(&b->lock, memory_order_acquire))
        if (++spins % 64 == 0)
            sched_yield(); /* the holder was descheduled mid-way; let it finish */
}

static void unlock(resil_breaker_t *b)
{
    atomic_flag_clear_explicit(&b->lock, memory_order_release);
}

static void new_generation(resil_breaker_t *b, uint64_t now)
{
    b->generation++;
    memset(&b->counts, 0, sizeof(b->counts));
    if (b->state == RESIL_CB_CLOSED)
        b->expiry_ms = b->cb->interval_ms ? now + b->cb->interval_ms : 0;
    else if (b->state == RESIL_CB_OPEN)
        b->expiry_ms = now + b->cb->timeout_ms;
    else
        b->expiry_ms = 0;
}

/* Moves to @p st; returns true when that was a change. */
static bool set_state(resil_breaker_t *b, resil_cb_state_t st, uint64_t now)
{
    if (b->state == st)
        return false;
    b->state = st;
    new_generation(b, now);
    return true;
}

/* The state at @p now, applying the time-driven moves; *@p changed gets a new state. */
static resil_cb_state_t current(resil_breaker_t *b, uint64_t now, int *changed)
{
    if (b->state == RESIL_CB_CLOSED) {
        if (b->generation == 0) { /* first use: start the first generation's clock */
            new_generation(b, now);
        } else if (b->expiry_ms != 0 && b->expiry_ms <= now) {
            new_generation(b, now);
        }
    } else if (b->state == RESIL_CB_OPEN && b->expiry_ms <= now) {
        set_state(b, RESIL_CB_HALF_OPEN, now);
        *changed = RESIL_CB_HALF_OPEN;
    }
    return b->state;
}

int resil_breaker_allow(resil_breaker_t *b, uint64_t now_ms, uint64_t *gen, int *changed)
{
    int ch = -1, rc = 0;
    resil_cb_state_t st;

    lock(b);
    st = current(b, now_ms, &ch);
    if (st == RESIL_CB_OPEN) {
        rc = ERR_RESIL_CB_OPEN;
    } else if (st == RESIL_CB_HALF_OPEN && b->counts.requests >= b->cb->max_requests) {
        rc = ERR_RESIL_CB_TOO_MANY;
    } else {
        b->counts.requests++;
        *gen = b->generation;
    }
    unlock(b);
    if (changed != NULL)
        *changed = ch;
    return rc;
}

void resil_breaker_record(resil_breaker_t *b, uint64_t now_ms, uint64_t gen, bool success,
                          int *changed)
{
    int ch = -1;
    resil_cb_state_t st;
    resil_counts_t *c = &b->counts;

    lock(b);
    st = current(b, now_ms, &ch);
    if (gen != b->generation) {
        unlock(b);
        if (changed != NULL)
            *changed = ch;
        return;
    }
    if (success) {
        c->total_successes++;
        c->consecutive_successes++;
        c->consecutive_failures = 0;
        if (st == RESIL_CB_HALF_OPEN && c->consecutive_successes >= b->cb->max_requests &&
            set_state(b, RESIL_CB_CLOSED, now_ms))
            ch = RESIL_CB_CLOSED;
    } else if (st == RESIL_CB_CLOSED) {
        bool trip = false;
        c->total_failures++;
        c->consecutive_failures++;
        c->consecutive_successes = 0;
        /* An evaluation error (overflow, division by zero) does not trip, as in Dapr. */
        if (resil_expr_eval(b->cb->trip, c, &trip) == 0 && trip &&
            set_state(b, RESIL_CB_OPEN, now_ms))
            ch = RESIL_CB_OPEN;
    } else if (st == RESIL_CB_HALF_OPEN && set_state(b, RESIL_CB_OPEN, now_ms)) {
        ch = RESIL_CB_OPEN;
    }
    unlock(b);
    if (changed != NULL)
        *changed = ch;
}

resil_cb_state_t resil_breaker_state(resil_breaker_t *b, uint64_t now_ms)
{
    int ch = -1;
    resil_cb_state_t st;
    lock(b);
    st = current(b, now_ms, &ch);
    unlock(b);
    return st;
}

const char *resil_breaker_target(const resil_breaker_t *b)
{
    return b->target;
}

const char *resil_breaker_key(const resil_breaker_t *b)
{
    return b->key;
}
