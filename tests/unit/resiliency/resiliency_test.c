/* Unit tests of the resiliency module: trip expressions, parsing, lookup, breakers, pauses. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "resiliency/resiliency.h"
#include "test.h"

static bool trip(const char *src, resil_counts_t c, int *rc_out)
{
    resil_expr_t *e = NULL;
    err_detail_t d = {{0}};
    bool v = false;
    int rc = resil_expr_compile(src, strlen(src), &e, &d);
    if (rc == 0)
        rc = resil_expr_eval(e, &c, &v);
    resil_expr_free(e);
    *rc_out = rc;
    return v;
}

TEST(expr_basics)
{
    resil_counts_t c = {10, 4, 6, 0, 6};
    int rc;
    ASSERT(trip("consecutiveFailures > 5", c, &rc) && rc == 0);
    ASSERT(!trip("consecutiveFailures > 6", c, &rc) && rc == 0);
    ASSERT(trip("requests >= 10 && totalFailures * 2 > requests", c, &rc) && rc == 0);
    ASSERT(trip("(requests > 100) || totalSuccesses == 4", c, &rc) && rc == 0);
    ASSERT(trip("!(consecutiveSuccesses != 0)", c, &rc) && rc == 0);
    ASSERT(trip("totalFailures / requests == 0 && totalFailures % 4 == 2", c, &rc) && rc == 0);
    ASSERT(trip("true", c, &rc) && rc == 0);
    ASSERT(!trip("1 + 2 * 3 != 7", c, &rc) && rc == 0);
    ASSERT(trip("-1 < 0", c, &rc) && rc == 0);
}

TEST(expr_errors)
{
    resil_counts_t c = {0, 0, 0, 0, 0};
    const char *bad[] = {"",
                         "consecutiveFailures",
                         "x > 1",
                         "1 >",
                         "(1 > 0",
                         "1 > 0)",
                         "1 > 0.5",
                         "true && 1",
                         "1 < 2 < 3",
                         "!1",
                         "-true",
                         "a\x01",
                         "requests > 1 ; drop"};
    int rc;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        resil_expr_t *e = NULL;
        err_detail_t d = {{0}};
        rc = resil_expr_compile(bad[i], strlen(bad[i]), &e, &d);
        if (rc == 0)
            TEST_FAIL_("accepted: %s", bad[i]);
        ASSERT(d.msg[0] != '\0');
    }
    /* Evaluation errors: no trip. */
    (void)trip("totalFailures / requests > 0", c, &rc);
    ASSERT_EQ(rc, ERR_RESIL_EXPR);
    (void)trip("9223372036854775000 * 10 > 1", c, &rc);
    ASSERT_EQ(rc, ERR_RESIL_EXPR);
}

TEST(expr_limits)
{
    char deep[200], wide[RESIL_TRIP_MAX_BYTES + 10];
    resil_expr_t *e = NULL;
    err_detail_t d = {{0}};
    size_t n = 0;
    for (int i = 0; i < 40; i++)
        deep[n++] = '(';
    deep[n++] = '1';
    for (int i = 0; i < 40; i++)
        deep[n++] = ')';
    memcpy(deep + n, " > 0", 5);
    ASSERT_EQ(resil_expr_compile(deep, strlen(deep), &e, &d), ERR_TOO_LARGE);
    memset(wide, '1', sizeof(wide));
    ASSERT_EQ(resil_expr_compile(wide, sizeof(wide), &e, &d), ERR_TOO_LARGE);
    n = 0;
    for (int i = 0; i < 60 && n + 8 < sizeof(wide); i++) {
        memcpy(wide + n, "1 + ", 4);
        n += 4;
    }
    memcpy(wide + n, "1 > 0", 5);
    n += 5;
    ASSERT_EQ(resil_expr_compile(wide, n, &e, &d), ERR_TOO_LARGE);
}

static const char *const doc =
    "apiVersion: dapr.io/v1alpha1\n"
    "kind: Resiliency\n"
    "metadata: {name: r1}\n"
    "scopes: [caller]\n"
    "spec:\n"
    "  policies:\n"
    "    timeouts:\n"
    "      general: 5s\n"
    "      quick: 300\n"
    "      DefaultAppTimeoutPolicy: 7s\n"
    "    retries:\n"
    "      important:\n"
    "        policy: Exponential\n"
    "        maxInterval: 15s\n"
    "        maxRetries: 10\n"
    "        matching: {httpStatusCodes: \"429,500-503\", gRPCStatusCodes: \"1-4,14\"}\n"
    "      tools: {policy: constant, duration: 10ms, maxRetries: 2, retryToolCalls: true}\n"
    "      DaprBuiltInServiceRetries: {policy: constant, duration: 50ms, maxRetries: 1}\n"
    "    circuitBreakers:\n"
    "      simpleCB: {maxRequests: 2, interval: 8s, timeout: 45s, trip: consecutiveFailures > 2}\n"
    "      plain: {}\n"
    "  targets:\n"
    "    apps:\n"
    "      appB: {timeout: quick, retry: important, circuitBreaker: simpleCB,\n"
    "             circuitBreakerCacheSize: 2}\n"
    "      endpoint1: {retry: tools}\n"
    "---\n"
    "apiVersion: dapr.io/v1alpha1\n"
    "kind: Component\n"
    "metadata: {name: ignored}\n"
    "spec: {type: state.redis}\n";

TEST(parse_and_lookup)
{
    resil_spec_t *s = NULL;
    resil_policy_t p;
    err_detail_t d = {{0}};
    const resil_retry_t *b;

    ASSERT_EQ(resil_spec_parse("r.yaml", doc, strlen(doc), "caller", &s, &d), 0);
    ASSERT_EQ(resil_spec_resource_count(s), 1);
    ASSERT_STREQ(resil_spec_resource_name(s, 0), "r1");
    ASSERT(resil_spec_lookup(s, "appB", &p));
    ASSERT(p.explicit_target);
    ASSERT_EQ(p.timeout_ms, 300);
    ASSERT(p.retry != NULL && p.retry->exponential);
    ASSERT_EQ(p.retry->max_retries, 10);
    ASSERT_EQ(p.retry->max_interval_ms, 15000);
    ASSERT(resil_retry_matches_status(p.retry, 429));
    ASSERT(resil_retry_matches_status(p.retry, 503));
    ASSERT(!resil_retry_matches_status(p.retry, 504));
    ASSERT(!resil_retry_matches_status(p.retry, 200));
    ASSERT(p.cb != NULL && p.cb->max_requests == 2 && p.cb->interval_ms == 8000 &&
           p.cb->timeout_ms == 45000);
    ASSERT_EQ(p.cb_cache_size, 2);
    ASSERT(resil_spec_lookup(s, "endpoint1", &p));
    ASSERT(p.retry->retry_tool_calls && p.retry->max_retries == 2 && p.retry->duration_ms == 10);
    ASSERT(resil_retry_matches_status(p.retry, 404)); /* no matching list: every error status */
    /* No entry: the defaults (timeout only here). */
    ASSERT(resil_spec_lookup(s, "other", &p));
    ASSERT(!p.explicit_target);
    ASSERT_EQ(p.timeout_ms, 7000);
    ASSERT(p.retry == NULL && p.cb == NULL);
    /* The built-in service retries, redefined with fewer than 3 retries: reset to 3. */
    b = resil_spec_builtin_retry(s);
    ASSERT_EQ(b->duration_ms, 50);
    ASSERT_EQ(b->max_retries, 3);
    resil_spec_unref(s);

    /* Out of scope: nothing applies. */
    ASSERT_EQ(resil_spec_parse("r.yaml", doc, strlen(doc), "someone-else", &s, &d), 0);
    ASSERT_EQ(resil_spec_resource_count(s), 0);
    ASSERT(!resil_spec_lookup(s, "appB", &p));
    ASSERT_EQ(resil_spec_builtin_retry(s)->duration_ms, 1000);
    resil_spec_unref(s);
    ASSERT_EQ(resil_spec_builtin_retry(NULL)->max_retries, 3);
}

TEST(parse_errors)
{
    static const char *const head = "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\n"
                                    "metadata: {name: r}\nspec:\n";
    static const struct {
        const char *body;
        const char *want;
    } cases[] = {
        {"  policies: {timeouts: {t: soon}}\n", "r.yaml:5: spec.policies.timeouts.t"},
        {"  policies: {retries: {r: {policy: linear}}}\n", "spec.policies.retries.r.policy"},
        {"  policies: {retries: {r: {maxRetries: -2}}}\n", "maxRetries"},
        {"  policies: {retries: {r: {matching: {httpStatusCodes: \"600\"}}}}\n", "100-599"},
        {"  policies: {retries: {r: {matching: {gRPCStatusCodes: \"1-17\"}}}}\n", "0-16"},
        {"  policies: {retries: {r: {matching: {httpStatusCodes: \"500-\"}}}}\n", "malformed"},
        {"  policies: {circuitBreakers: {c: {trip: \"failures > 1\"}}}\n", "unknown name"},
        {"  targets: {apps: {a: {retry: nope}}}\n", "spec.targets.apps.a.retry"},
        {"  targets: {apps: {a: {timeout: nope}}}\n", "no timeout policy"},
        {"  targets: {apps: {a: {circuitBreaker: nope}}}\n", "no circuit breaker"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[1024];
        resil_spec_t *s = NULL;
        err_detail_t d = {{0}};
        snprintf(text, sizeof(text), "%s%s", head, cases[i].body);
        if (resil_spec_parse("r.yaml", text, strlen(text), "a", &s, &d) == 0)
            TEST_FAIL_("accepted: %s", cases[i].body);
        if (strstr(d.msg, cases[i].want) == NULL)
            TEST_FAIL_("detail \"%s\" lacks \"%s\"", d.msg, cases[i].want);
    }
}

TEST(breaker_lifecycle)
{
    static const char *const y =
        "kind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    circuitBreakers:\n"
        "      cb: {maxRequests: 1, timeout: 5s, trip: consecutiveFailures >= 2}\n"
        "  targets: {apps: {app: {circuitBreaker: cb, circuitBreakerCacheSize: 1}}}\n";
    resil_spec_t *s = NULL;
    resil_policy_t p;
    resil_breaker_t *b, *b2, *b3;
    err_detail_t d = {{0}};
    uint64_t gen = 0, g2 = 0;
    int ch = -1;

    ASSERT_EQ(resil_spec_parse("r.yaml", y, strlen(y), "x", &s, &d), 0);
    ASSERT(resil_spec_lookup(s, "app", &p));
    b = resil_spec_breaker(s, &p, "app", "tools");
    ASSERT(b != NULL);
    ASSERT_STREQ(resil_breaker_key(b), "app:tools");
    ASSERT(resil_spec_breaker(s, &p, "app", "tools") == b);
    /* Cache size 1: a second method shares the target's own breaker. */
    b2 = resil_spec_breaker(s, &p, "app", "other");
    ASSERT_STREQ(resil_breaker_key(b2), "app");
    b3 = resil_spec_breaker(s, &p, "app", NULL);
    ASSERT(b3 == b2);

    ASSERT_EQ(resil_breaker_allow(b, 1000, &gen, &ch), 0);
    resil_breaker_record(b, 1000, gen, false, &ch);
    ASSERT_EQ(ch, -1);
    ASSERT_EQ(resil_breaker_allow(b, 1001, &gen, &ch), 0);
    resil_breaker_record(b, 1001, gen, false, &ch);
    ASSERT_EQ(ch, RESIL_CB_OPEN);
    ASSERT_EQ(resil_breaker_allow(b, 1002, &gen, &ch), ERR_RESIL_CB_OPEN);
    ASSERT_EQ(resil_breaker_allow(b, 6000, &gen, &ch), ERR_RESIL_CB_OPEN);
    /* After the timeout: half-open, one probe allowed. */
    ASSERT_EQ(resil_breaker_allow(b, 6001, &gen, &ch), 0);
    ASSERT_EQ(ch, RESIL_CB_HALF_OPEN);
    ASSERT_EQ(resil_breaker_allow(b, 6002, &g2, &ch), ERR_RESIL_CB_TOO_MANY);
    resil_breaker_record(b, 6003, gen, true, &ch);
    ASSERT_EQ(ch, RESIL_CB_CLOSED);
    ASSERT_EQ(resil_breaker_state(b, 6004), RESIL_CB_CLOSED);
    /* A failed probe opens it again. */
    ASSERT_EQ(resil_breaker_allow(b, 6005, &gen, &ch), 0);
    resil_breaker_record(b, 6005, gen, false, &ch);
    ASSERT_EQ(resil_breaker_allow(b, 6006, &g2, &ch), 0);
    resil_breaker_record(b, 6006, g2, false, &ch);
    ASSERT_EQ(ch, RESIL_CB_OPEN);
    ASSERT_EQ(resil_breaker_allow(b, 11007, &gen, &ch), 0);
    resil_breaker_record(b, 11007, gen, false, &ch);
    ASSERT_EQ(ch, RESIL_CB_OPEN);
    /* An outcome from an older generation is ignored. */
    resil_breaker_record(b, 11008, 1, true, &ch);
    ASSERT_EQ(ch, -1);
    ASSERT_EQ(resil_breaker_state(b, 11009), RESIL_CB_OPEN);
    resil_spec_unref(s);
}

TEST(breaker_interval_resets_counts)
{
    static const char *const y =
        "kind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    circuitBreakers:\n"
        "      DefaultCircuitBreakerPolicy: {interval: 1s, trip: totalFailures >= 2}\n";
    resil_spec_t *s = NULL;
    resil_policy_t p;
    resil_breaker_t *b;
    err_detail_t d = {{0}};
    uint64_t gen = 0;
    int ch = -1;

    ASSERT_EQ(resil_spec_parse("r.yaml", y, strlen(y), "x", &s, &d), 0);
    ASSERT(resil_spec_lookup(s, "anyone", &p));
    ASSERT(!p.explicit_target && p.cb != NULL);
    b = resil_spec_breaker(s, &p, "anyone", "m");
    ASSERT_EQ(resil_breaker_allow(b, 100, &gen, &ch), 0);
    resil_breaker_record(b, 100, gen, false, &ch);
    /* The interval passed: counts start again, one more failure does not trip. */
    ASSERT_EQ(resil_breaker_allow(b, 1200, &gen, &ch), 0);
    resil_breaker_record(b, 1200, gen, false, &ch);
    ASSERT_EQ(ch, -1);
    ASSERT_EQ(resil_breaker_allow(b, 1300, &gen, &ch), 0);
    resil_breaker_record(b, 1300, gen, false, &ch);
    ASSERT_EQ(ch, RESIL_CB_OPEN);
    resil_spec_unref(s);
}

TEST(pauses)
{
    resil_retry_t c = {.duration_ms = 250, .max_interval_ms = 60000};
    resil_retry_t e = {.exponential = true, .max_interval_ms = 2000};
    ASSERT_EQ(resil_retry_pause_ms(&c, 1, 0.9), 250);
    ASSERT_EQ(resil_retry_pause_ms(&c, 7, 0.1), 250);
    /* 500 ms ± 50% */
    ASSERT(resil_retry_pause_ms(&e, 1, 0.0) >= 250 && resil_retry_pause_ms(&e, 1, 0.999) <= 751);
    /* 500·1.5² = 1125 ± 50% */
    ASSERT(resil_retry_pause_ms(&e, 3, 0.5) >= 1100 && resil_retry_pause_ms(&e, 3, 0.5) <= 1150);
    /* capped at maxInterval (then randomised) */
    ASSERT(resil_retry_pause_ms(&e, 30, 0.0) >= 1000 &&
           resil_retry_pause_ms(&e, 30, 0.999) <= 3001);
}

TEST(load_dirs_and_metrics)
{
    char dir[] = "/tmp/resil_test_XXXXXX";
    char path[256];
    const char *dirs[1];
    resil_spec_t *s = NULL;
    err_detail_t d = {{0}};
    uint64_t h1 = 0, h2 = 0;
    FILE *f;
    resil_t *r;
    buf_t b;

    ASSERT(mkdtemp(dir) != NULL);
    dirs[0] = dir;
    snprintf(path, sizeof(path), "%s/b.yaml", dir);
    f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(doc, f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/a.yaml", dir);
    f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: c}\n", f);
    fclose(f);
    ASSERT_EQ(resil_spec_load(dirs, 1, "caller", &s, &h1, &d), 0);
    ASSERT_EQ(resil_spec_resource_count(s), 1);
    resil_spec_unref(s);
    ASSERT_EQ(resil_spec_load(dirs, 1, "caller", &s, &h2, &d), 0);
    ASSERT(h1 == h2 && h1 != 0);

    r = resil_new("caller", "default", s);
    resil_metric_count(r, "r1", RESIL_RETRY, "appB");
    resil_metric_count(r, "r1", RESIL_RETRY, "appB");
    resil_metric_activation(r, "r1", RESIL_CIRCUITBREAKER, "appB", "open");
    resil_metric_cb_state(r, "r1", "appB", RESIL_CB_OPEN);
    buf_init(&b, 1 << 20);
    ASSERT_EQ(resil_metrics_render(r, &b), 0);
    ASSERT(strstr(buf_ptr(&b), "dapr_resiliency_loaded{app_id=\"caller\",name=\"r1\","
                               "namespace=\"default\"} 1") != NULL);
    ASSERT(strstr(buf_ptr(&b), "dapr_resiliency_count{app_id=\"caller\",name=\"r1\","
                               "policy=\"retry\",namespace=\"default\",flow_direction="
                               "\"outbound\",target=\"app_appB\",status=\"\"} 2") != NULL);
    ASSERT(strstr(buf_ptr(&b), "dapr_resiliency_activations_total{app_id=\"caller\",name=\"r1\","
                               "policy=\"circuitbreaker\",namespace=\"default\",flow_direction="
                               "\"outbound\",target=\"app_appB\",status=\"open\"} 1") != NULL);
    ASSERT(strstr(buf_ptr(&b), "dapr_resiliency_cb_state{") != NULL);
    ASSERT(strstr(buf_ptr(&b), "status=\"open\"} 2") != NULL);
    buf_free(&b);
    resil_publish(r, NULL);
    resil_free(r);
    unlink(path);
    snprintf(path, sizeof(path), "%s/b.yaml", dir);
    unlink(path);
    rmdir(dir);
}

/* ---- breakers shared by threads ----------------------------------------------------------------
 */

typedef struct hammer {
    resil_spec_t *s;       /* shared set */
    resil_policy_t p;      /* its policy for "app" */
    unsigned admitted;     /* attempts this thread got through */
    unsigned distinct_bad; /* breakers that differed from the first one seen */
} hammer_t;

static void hammer_main(void *arg)
{
    hammer_t *h = arg;
    resil_breaker_t *first = NULL;
    for (int i = 0; i < 20000; i++) {
        resil_breaker_t *b = resil_spec_breaker(h->s, &h->p, "app", "m");
        uint64_t gen = 0;
        int ch = -1;
        if (first == NULL)
            first = b;
        if (b != first)
            h->distinct_bad++;
        if (resil_breaker_allow(b, 1000, &gen, &ch) == 0) {
            h->admitted++;
            resil_breaker_record(b, 1000, gen, true, &ch);
        }
    }
}

TEST(breaker_shared_by_threads)
{
    static const char *const y =
        "kind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n    circuitBreakers:\n"
        "      cb: {trip: \"requests > 80000\"}\n"
        "  targets: {apps: {app: {circuitBreaker: cb}}}\n";
    hammer_t h[4];
    uv_thread_t t[4];
    resil_spec_t *s = NULL;
    resil_policy_t p;
    err_detail_t d = {{0}};
    uint64_t gen = 0;
    int ch = -1;
    unsigned total = 0;

    ASSERT_EQ(resil_spec_parse("r.yaml", y, strlen(y), "x", &s, &d), 0);
    ASSERT(resil_spec_lookup(s, "app", &p));
    for (int i = 0; i < 4; i++) {
        h[i] = (hammer_t){s, p, 0, 0};
        ASSERT_EQ(uv_thread_create(&t[i], hammer_main, &h[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        uv_thread_join(&t[i]);
        total += h[i].admitted;
        ASSERT_EQ(h[i].distinct_bad, 0);
    }
    /* Every attempt was admitted and counted once: a failure now sees requests == 80001, so the
     * trip condition holds only if no increment was lost. */
    ASSERT_EQ(total, 80000);
    {
        resil_breaker_t *b = resil_spec_breaker(s, &p, "app", "m");
        ASSERT_EQ(resil_breaker_allow(b, 1000, &gen, &ch), 0);
        resil_breaker_record(b, 1000, gen, false, &ch);
        ASSERT_EQ(ch, RESIL_CB_OPEN);
    }
    resil_spec_unref(s);
}

/* ---- one call on a loop ------------------------------------------------------------------------
 */

typedef struct call_ctx {
    int timeouts; /* on_timeout calls */
    int retries;  /* on_retry calls */
    uint64_t retry_at_ms;
} call_ctx_t;

static void on_call_timeout(resil_call_t *c, void *ctx)
{
    (void)c;
    ((call_ctx_t *)ctx)->timeouts++;
}

static void on_call_retry(resil_call_t *c, void *ctx)
{
    call_ctx_t *x = ctx;
    (void)c;
    x->retries++;
    x->retry_at_ms = uv_hrtime() / 1000000u;
}

TEST(call_timeout_retry_and_tool_calls)
{
    static const char *const y =
        "kind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n"
        "    timeouts: {t: 50ms}\n"
        "    retries: {r: {duration: 30ms, maxRetries: 1, matching: {httpStatusCodes: \"503\"}}}\n"
        "  targets: {apps: {app: {timeout: t, retry: r}}}\n";
    resil_spec_t *s = NULL;
    err_detail_t d = {{0}};
    uv_loop_t loop;
    call_ctx_t x = {0, 0, 0};
    resil_req_state_t rs = {true, false, true};
    resil_req_state_t tool = {true, true, true};
    resil_call_t *c;
    resil_t *r;
    uint64_t t0;

    ASSERT_EQ(resil_spec_parse("r.yaml", y, strlen(y), "x", &s, &d), 0);
    r = resil_new("x", "default", s);
    ASSERT_EQ(uv_loop_init(&loop), 0);

    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT(resil_call_has_policy(c));
    ASSERT_EQ(resil_call_begin(c), 0);
    ASSERT_EQ(resil_call_attempt(c), 1);
    uv_run(&loop, UV_RUN_DEFAULT); /* the 50 ms timeout fires */
    ASSERT_EQ(x.timeouts, 1);
    /* A tool call is not retried after a timeout... */
    ASSERT(!resil_call_failed(c, RESIL_TIMED_OUT, 0, &tool));
    /* ...a 404 is not in the matching list... */
    ASSERT(!resil_call_failed(c, RESIL_STATUS, 404, &rs));
    /* ...but a 503 is, after the 30 ms pause, once. */
    t0 = uv_hrtime() / 1000000u;
    ASSERT(resil_call_failed(c, RESIL_STATUS, 503, &rs));
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(x.retries, 1);
    ASSERT(x.retry_at_ms - t0 >= 25);
    ASSERT_EQ(resil_call_begin(c), 0);
    ASSERT_EQ(resil_call_attempt(c), 2);
    ASSERT(!resil_call_failed(c, RESIL_STATUS, 503, &rs)); /* maxRetries reached */
    resil_call_free(c);

    /* Nothing to replay: no retry. A call with no policy and no peer: no timer at all. */
    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT_EQ(resil_call_begin(c), 0);
    rs.replayable = false;
    ASSERT(!resil_call_failed(c, RESIL_STATUS, 503, &rs));
    resil_call_free(c);
    c = resil_call_new(r, &loop, "other", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT(!resil_call_has_policy(c));
    ASSERT_EQ(resil_call_begin(c), 0);
    /* Built-in service retries: an unreachable peer sidecar, even for a tool call. */
    ASSERT(resil_call_failed(c, RESIL_CONNECT_FAILED, 0, &tool));
    resil_call_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(x.retries, 1); /* freed before the pause ended: no callback */
    ASSERT_EQ(uv_loop_close(&loop), 0);
    resil_free(r);
}

TEST(call_abandoned_probe_reopens)
{
    static const char *const y =
        "kind: Resiliency\nmetadata: {name: r}\nspec:\n  policies:\n"
        "    circuitBreakers: {cb: {timeout: 20ms, trip: consecutiveFailures >= 1}}\n"
        "  targets: {apps: {app: {circuitBreaker: cb}}}\n";
    resil_spec_t *s = NULL;
    err_detail_t d = {{0}};
    uv_loop_t loop;
    call_ctx_t x = {0, 0, 0};
    resil_req_state_t rs = {true, false, false};
    resil_call_t *c;
    resil_t *r;

    ASSERT_EQ(resil_spec_parse("r.yaml", y, strlen(y), "x", &s, &d), 0);
    r = resil_new("x", "default", s);
    ASSERT_EQ(uv_loop_init(&loop), 0);
    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT_EQ(resil_call_begin(c), 0);
    ASSERT(!resil_call_failed(c, RESIL_STATUS, 500, &rs));
    resil_call_free(c);
    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT_EQ(resil_call_begin(c), ERR_RESIL_CB_OPEN);
    resil_call_free(c);
    usleep(30000);
    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT_EQ(resil_call_begin(c), 0); /* the half-open probe... */
    resil_call_free(c);                /* ...abandoned without an outcome: a failure */
    c = resil_call_new(r, &loop, "app", "mcp", on_call_timeout, on_call_retry, &x);
    ASSERT_EQ(resil_call_begin(c), ERR_RESIL_CB_OPEN); /* open again, not stuck half-open */
    resil_call_free(c);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    resil_free(r);
}
