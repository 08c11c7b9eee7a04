/* Declarations shared by the files of the resiliency module only. */
#ifndef OUTRIGGER_RESILIENCY_INT_H
#define OUTRIGGER_RESILIENCY_INT_H

#include <stdatomic.h>

#include "resiliency/resiliency.h"

/* One breaker instance (gobreaker's CircuitBreaker). Claimed once in the set's table and never
 * released before the set, so a reader that sees used == 2 reads key and target without a lock. */
struct resil_breaker {
    _Atomic int used;            /* 0 free, 1 being filled, 2 ready */
    uint64_t hash;               /* of key */
    char *key;                   /* "target:method", or "target" for the target's own; owned */
    char *target;                /* the target; owned */
    const resil_cb_policy_t *cb; /* the policy; owned by the set */
    atomic_uint methods;         /* target's own breaker: method keys claimed for the target */
    atomic_flag lock;            /* guards the fields below for a few instructions */
    resil_cb_state_t state;      /* current state */
    uint64_t generation;         /* bumps on every state change and counts reset */
    uint64_t expiry_ms;          /* closed: next counts reset (0 none); open: when half-open */
    resil_counts_t counts;       /* this generation's counts */
};

typedef struct resil_timeout {
    char *name;     /* owned */
    char *resource; /* owned */
    uint64_t ms;    /* the duration */
} resil_timeout_t;

typedef struct resil_target {
    char *name;            /* app id or HTTPEndpoint name; owned */
    resil_policy_t policy; /* what applies */
} resil_target_t;

struct resil_spec {
    atomic_uint refs;          /* references; the last unref frees */
    char **resources;          /* metadata.name of each compiled resource; owned */
    size_t resource_count;     /* entries in resources */
    resil_timeout_t *timeouts; /* owned array */
    size_t timeout_count;      /* entries */
    resil_retry_t **retries;   /* owned array of owned policies */
    size_t retry_count;        /* entries */
    resil_cb_policy_t **cbs;   /* owned array of owned policies */
    size_t cb_count;           /* entries */
    resil_target_t *targets;   /* owned array */
    size_t target_count;       /* entries */
    resil_retry_t builtin;     /* DaprBuiltInServiceRetries as in force */
    resil_breaker_t *breakers; /* RESIL_BREAKERS_MAX slots, or NULL when no breaker exists */
    atomic_bool full_logged;   /* "breaker table full" was logged */
};

/** Frees the breaker table of @p s (breaker.c). */
void resil__breakers_free(resil_spec_t *s);

#endif
