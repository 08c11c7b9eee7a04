/*
 * fuzz_resiliency — the Resiliency resource compiler and the trip-expression evaluator on
 * arbitrary bytes.
 *
 * Invariants checked beyond "no crash, no leak":
 * - a trip expression either compiles or fails with a detail; a compiled one evaluates the same
 *   way twice over the same counts and never reports success with an error code;
 * - a compiled set answers lookups for every name it holds; an explicit target is reported as
 *   such; DaprBuiltInServiceRetries never has fewer than 3 retries (or is -1);
 * - every breaker of a set moves only through closed/half-open/open, refuses attempts only when
 *   open or half-open, and its state survives a run of outcomes;
 * - all memory taken through base/alloc is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "resiliency/resiliency.h"
#include "fuzz.h"

static void check_expr(const char *p, size_t n)
{
    static const resil_counts_t counts[] = {
        {0, 0, 0, 0, 0}, {10, 3, 7, 0, 7}, {UINT64_MAX, 1, UINT64_MAX, 1, 0}, {5, 5, 0, 5, 0}};
    resil_expr_t *e = NULL;
    err_detail_t d = {{0}};

    if (resil_expr_compile(p, n, &e, &d) < 0) {
        CHECK(d.msg[0] != '\0');
        CHECK(e == NULL);
        return;
    }
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        bool a = false, b = false;
        int r1 = resil_expr_eval(e, &counts[i], &a);
        int r2 = resil_expr_eval(e, &counts[i], &b);
        CHECK(r1 == r2);
        CHECK(r1 == 0 || r1 == ERR_RESIL_EXPR);
        if (r1 == 0)
            CHECK(a == b);
    }
    resil_expr_free(e);
}

static void exercise_breaker(resil_spec_t *s, const resil_policy_t *p, const char *target)
{
    resil_breaker_t *b = resil_spec_breaker(s, p, target, "m");
    uint64_t now = 1000;

    if (b == NULL)
        return;
    CHECK(resil_spec_breaker(s, p, target, "m") == b);
    for (int i = 0; i < 40; i++) {
        uint64_t gen = 0;
        int ch = -1;
        resil_cb_state_t before = resil_breaker_state(b, now);
        int rc = resil_breaker_allow(b, now, &gen, &ch);
        CHECK(ch == -1 || ch == RESIL_CB_HALF_OPEN);
        if (rc == 0) {
            resil_breaker_record(b, now, gen, (i % 3) == 0, &ch);
            CHECK(ch >= -1 && ch <= RESIL_CB_OPEN);
        } else {
            CHECK(rc == ERR_RESIL_CB_OPEN || rc == ERR_RESIL_CB_TOO_MANY);
            CHECK(before != RESIL_CB_CLOSED);
        }
        now += 7000;
    }
}

static void check_spec(const char *p, size_t n)
{
    resil_spec_t *s = NULL;
    err_detail_t d = {{0}};
    const resil_retry_t *bi;
    static const char *const names[] = {"a", "app", "flaky", "x", ""};

    if (resil_spec_parse("fuzz.yaml", p, n, "a", &s, &d) < 0) {
        CHECK(d.msg[0] != '\0');
        return;
    }
    bi = resil_spec_builtin_retry(s);
    CHECK(bi->max_retries == -1 || bi->max_retries >= 3);
    for (size_t i = 0; i < resil_spec_resource_count(s); i++)
        CHECK(resil_spec_resource_name(s, i) != NULL);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        resil_policy_t pol;
        if (!resil_spec_lookup(s, names[i], &pol))
            continue;
        if (pol.retry != NULL) {
            CHECK(pol.retry->max_retries >= -1);
            (void)resil_retry_pause_ms(pol.retry, 3, 0.5);
            (void)resil_retry_matches_status(pol.retry, 503);
        }
        if (pol.cb != NULL)
            exercise_breaker(s, &pol, names[i]);
    }
    resil_spec_unref(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();

    if (size <= RESIL_TRIP_MAX_BYTES + 8)
        check_expr((const char *)data, size);
    check_spec((const char *)data, size);
    CHECK(mem_used() == before);
    return 0;
}
