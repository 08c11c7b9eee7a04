/* The Rego engine through its public contract (rego.h): the seed policy's decisions, OPA's
 * semantics that authorization depends on, limits, errors with positions, sharing across threads.
 */
#include <pthread.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "rego/rego.h"
#include "test.h"

static const char seed_policy[] =
    "package http\n"
    "\n"
    "default allow = false\n"
    "\n"
    "allowed_tools := {\n"
    "  \"analyst-agent\": {\"get_inventory\", \"list_products\"},\n"
    "  \"ops-agent\": {\"get_inventory\", \"update_stock\", \"list_products\"},\n"
    "}\n"
    "\n"
    "allow {\n"
    "  input.request.method == \"POST\"\n"
    "  caller := input.request.headers[\"dapr-caller-app-id\"]\n"
    "  body := json.unmarshal(input.request.body)\n"
    "  body.method == \"tools/list\"\n"
    "}\n"
    "\n"
    "allow {\n"
    "  input.request.method == \"POST\"\n"
    "  caller := input.request.headers[\"dapr-caller-app-id\"]\n"
    "  body := json.unmarshal(input.request.body)\n"
    "  body.method == \"tools/call\"\n"
    "  allowed_tools[caller][body.params.name]\n"
    "}\n";

static rego_policy_t *compile(const char *text, rego_syntax_t syntax, const char **code, char *msg,
                              size_t msglen)
{
    rego_module_src_t m = {"policy.rego", text, strlen(text)};
    rego_compile_opts_t o = {.default_syntax = syntax};
    rego_policy_t *p = NULL;
    err_detail_t d = {""};
    if (rego_policy_new(&m, 1, NULL, &o, &p, &d, code) < 0) {
        if (msg != NULL)
            snprintf(msg, msglen, "%s", d.msg);
        return NULL;
    }
    return p;
}

/* Builds the middleware's input with the builder API and decides data.http.allow. */
static int decide(rego_policy_t *p, rego_eval_t *ev, const char *method, const char *caller,
                  const char *body)
{
    rego_query_t *q = NULL;
    rego_val_t *v = NULL;
    err_detail_t d = {""};
    int r = -1;
    if (rego_query_new(p, "data.http.allow", &q, &d, NULL) < 0)
        return -2;
    rego_eval_reset(ev);
    rego_val_t *req = rego_val_new_object(ev), *in = rego_val_new_object(ev);
    rego_val_t *hdr = rego_val_new_object(ev);
    rego_val_object_put(ev, req, "method", 6, rego_val_new_string(ev, method, strlen(method)));
    if (caller != NULL)
        rego_val_object_put(ev, hdr, "dapr-caller-app-id", 18,
                            rego_val_new_string(ev, caller, strlen(caller)));
    rego_val_object_put(ev, req, "headers", 7, hdr);
    rego_val_object_put(ev, req, "body", 4, rego_val_new_string(ev, body, strlen(body)));
    rego_val_object_put(ev, in, "request", 7, req);
    rego_eval_set_input(ev, in);
    if (rego_eval_value(ev, q, &v, &d) == 0)
        r = v == NULL ? -1 : rego_val_bool(v) ? 1 : 0;
    rego_query_free(q);
    return r;
}

#define CALL(tool)                                                                                 \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"" tool         \
    "\",\"arguments\":{}}}"

TEST(seed_policy_decisions)
{
    rego_policy_t *p = compile(seed_policy, REGO_SYNTAX_V0, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    ASSERT(p != NULL);
    ASSERT_EQ(decide(p, ev, "POST", "analyst-agent", CALL("get_inventory")), 1);
    ASSERT_EQ(decide(p, ev, "POST", "analyst-agent", CALL("update_stock")), 0);
    ASSERT_EQ(decide(p, ev, "POST", "ops-agent", CALL("update_stock")), 1);
    ASSERT_EQ(decide(p, ev, "POST", "intruder", CALL("get_inventory")), 0);
    ASSERT_EQ(decide(p, ev, "POST", NULL, CALL("get_inventory")), 0);
    ASSERT_EQ(decide(p, ev, "POST", "analyst-agent", "{\"method\":\"tools/list\",\"id\":2}"), 1);
    ASSERT_EQ(decide(p, ev, "GET", "analyst-agent", CALL("get_inventory")), 0);
    /* A batch is an array: body.method is undefined, so nothing in it is allowed. */
    ASSERT_EQ(decide(p, ev, "POST", "analyst-agent", "[" CALL("get_inventory") "]"), 0);
    ASSERT_EQ(decide(p, ev, "POST", "analyst-agent", "not json"), 0);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(undefined_is_not_false_and_defaults)
{
    rego_policy_t *p = compile("package t\n"
                               "a if input.x == 1\n"
                               "default b := 7\n"
                               "b := 8 if input.x == 2\n",
                               REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    rego_query_t *qa = NULL, *qb = NULL;
    rego_val_t *v = (rego_val_t *)1;
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.a", &qa, NULL, NULL), 0);
    ASSERT_EQ(rego_query_new(p, "data.t.b", &qb, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_set_input_text(ev, "{\"x\":2}", 7, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, qa, &v, NULL), 0);
    ASSERT(v == NULL);
    ASSERT_EQ(rego_eval_value(ev, qb, &v, NULL), 0);
    ASSERT(v != NULL && rego_val_number(v) == 8);
    rego_eval_reset(ev);
    ASSERT_EQ(rego_eval_set_input_text(ev, "{\"x\":1}", 7, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, qa, &v, NULL), 0);
    ASSERT(rego_val_bool(v));
    ASSERT_EQ(rego_eval_value(ev, qb, &v, NULL), 0);
    ASSERT(v != NULL && rego_val_number(v) == 7);
    rego_query_free(qa);
    rego_query_free(qb);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(conflict_is_an_error)
{
    rego_policy_t *p =
        compile("package t\nx := 1 if true\nx := 2 if true\n", REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    rego_query_t *q = NULL;
    rego_val_t *v = NULL;
    err_detail_t d = {""};
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.x", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, q, &v, &d), ERR_REGO_CONFLICT);
    ASSERT(strstr(d.msg, "eval_conflict_error") != NULL);
    rego_query_free(q);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(errors_carry_positions)
{
    const char *code = NULL;
    char msg[256];
    ASSERT(compile("package t\np if {\n  x ==\n}\n", REGO_SYNTAX_V1, &code, msg, sizeof(msg)) ==
           NULL);
    ASSERT_STREQ(code, "rego_parse_error");
    ASSERT(strstr(msg, "policy.rego:4:1") != NULL);
    ASSERT(compile("package t\np if {\n  count(y) > 1\n}\n", REGO_SYNTAX_V1, &code, msg,
                   sizeof(msg)) == NULL);
    ASSERT_STREQ(code, "rego_unsafe_var_error");
    ASSERT(strstr(msg, "policy.rego:3:3") != NULL && strstr(msg, "var y is unsafe") != NULL);
    ASSERT(compile("package t\np if nope(1)\n", REGO_SYNTAX_V1, &code, msg, sizeof(msg)) == NULL);
    ASSERT_STREQ(code, "rego_type_error");
}

TEST(step_limit_fails_closed)
{
    rego_policy_t *p = compile("package t\n"
                               "n := numbers.range(1, 1000)\n"
                               "big := count([x | x := n[_]; y := n[_]; z := n[_]])\n",
                               REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_opts_t o = {.max_steps = 100000};
    rego_eval_t *ev = rego_eval_new(&o);
    rego_query_t *q = NULL;
    rego_val_t *v = NULL;
    err_detail_t d = {""};
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.big", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, q, &v, &d), ERR_REGO_LIMIT);
    /* The context is usable again after a failure. */
    rego_query_free(q);
    ASSERT_EQ(rego_query_new(p, "data.t.n[3]", &q, NULL, NULL), 0);
    rego_eval_reset(ev);
    ASSERT_EQ(rego_eval_value(ev, q, &v, &d), 0);
    ASSERT(v != NULL && rego_val_number(v) == 4);
    rego_query_free(q);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(memory_bound_fails_closed)
{
    rego_policy_t *p = compile(
        "package t\n"
        "s := concat(\"\", [\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\" | numbers.range(1, 100000)[_]])\n",
        REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_opts_t o = {.max_bytes = 1u << 20};
    rego_eval_t *ev = rego_eval_new(&o);
    rego_query_t *q = NULL;
    rego_val_t *v = NULL;
    err_detail_t d = {""};
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.s", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, q, &v, &d), ERR_REGO_LIMIT);
    rego_query_free(q);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(visible_tools_set_and_result_object)
{
    rego_policy_t *p = compile("package http\n"
                               "import rego.v1\n"
                               "tools := {\"a\": [\"t1\", \"t2\"], \"b\": [\"t3\"]}\n"
                               "visible_tools contains t if some t in tools[input.caller]\n"
                               "allow := {\"allow\": false, \"status_code\": 429,\n"
                               "          \"additional_headers\": {\"x-why\": \"slow down\"}}\n",
                               REGO_SYNTAX_V0, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    rego_query_t *q = NULL, *qa = NULL;
    rego_val_t *v = NULL;
    ASSERT(p != NULL);
    ASSERT(rego_policy_defines(p, "http.visible_tools"));
    ASSERT(rego_policy_defines(p, "data.http.allow"));
    ASSERT(!rego_policy_defines(p, "http.nothing"));
    ASSERT(!rego_policy_defines(p, "http"));
    ASSERT_EQ(rego_query_new(p, "data.http.visible_tools", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_query_new(p, "data.http.allow", &qa, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_set_input_text(ev, "{\"caller\":\"a\"}", 14, NULL), 0);
    ASSERT_EQ(rego_eval_value(ev, q, &v, NULL), 0);
    ASSERT(v != NULL && rego_val_kind(v) == REGO_SET && rego_val_len(v) == 2);
    ASSERT(rego_val_has_string(v, "t1", 2) && rego_val_has_string(v, "t2", 2));
    ASSERT(!rego_val_has_string(v, "t3", 2));
    ASSERT_EQ(rego_eval_value(ev, qa, &v, NULL), 0);
    ASSERT(v != NULL && rego_val_kind(v) == REGO_OBJECT);
    ASSERT(!rego_val_bool(rego_val_get(v, "allow")));
    ASSERT_EQ(rego_val_number(rego_val_get(v, "status_code")), 429);
    size_t n = 0;
    const char *s =
        rego_val_string(rego_val_get(rego_val_get(v, "additional_headers"), "x-why"), &n);
    ASSERT(s != NULL);
    ASSERT_MEMEQ(s, n, "slow down");
    rego_query_free(q);
    rego_query_free(qa);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(query_bindings_and_with)
{
    rego_policy_t *p = compile("package t\n"
                               "p contains x if some x in input.xs\n"
                               "q if input.flag\n",
                               REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    rego_query_t *q = NULL;
    rego_result_t r;
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.p[x]; data.t.q with input.flag as true", &q, NULL, NULL),
              0);
    ASSERT_EQ(rego_query_var_count(q), 1);
    ASSERT_STREQ(rego_query_var_name(q, 0), "x");
    ASSERT_EQ(rego_eval_set_input_text(ev, "{\"xs\":[3,1,2]}", 14, NULL), 0);
    ASSERT_EQ(rego_eval_query(ev, q, &r, NULL, NULL), 0);
    ASSERT_EQ(r.count, 3);
    ASSERT_EQ(rego_val_number(r.bindings[0][0]), 1);
    ASSERT_EQ(rego_val_number(r.bindings[2][0]), 3);
    rego_query_free(q);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

typedef struct worker {
    rego_policy_t *p;
    int ok;
} worker_t;

static void *work(void *arg)
{
    worker_t *w = arg;
    rego_eval_t *ev = rego_eval_new(NULL);
    w->ok = 1;
    for (int i = 0; i < 500; i++) {
        if (decide(w->p, ev, "POST", "ops-agent", CALL("update_stock")) != 1 ||
            decide(w->p, ev, "POST", "analyst-agent", CALL("update_stock")) != 0)
            w->ok = 0;
    }
    rego_eval_free(ev);
    return NULL;
}

TEST(one_policy_many_threads)
{
    rego_policy_t *p = compile(seed_policy, REGO_SYNTAX_V0, NULL, NULL, 0);
    pthread_t t[4];
    worker_t w[4];
    ASSERT(p != NULL);
    for (int i = 0; i < 4; i++) {
        w[i].p = rego_policy_ref(p);
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        ASSERT(w[i].ok);
        rego_policy_unref(w[i].p);
    }
    rego_policy_unref(p);
}

TEST(no_leaks)
{
    size_t before = mem_used();
    rego_policy_t *p = compile(seed_policy, REGO_SYNTAX_V0, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    ASSERT(p != NULL);
    ASSERT_EQ(decide(p, ev, "POST", "ops-agent", CALL("update_stock")), 1);
    rego_eval_free(ev);
    rego_policy_unref(p);
    ASSERT_EQ(mem_used(), before);
}

TEST(query_term_false_is_a_result)
{
    rego_policy_t *p =
        compile("package t\ndefault allow := false\n", REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_eval_t *ev = rego_eval_new(NULL);
    rego_query_t *q = NULL;
    rego_result_t r;
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.allow", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_query(ev, q, &r, NULL, NULL), 0);
    ASSERT_EQ(r.count, 1);
    ASSERT(rego_val_kind(r.exprs[0][0]) == REGO_BOOL && !rego_val_bool(r.exprs[0][0]));
    rego_query_free(q);
    /* In a body, false fails: no solution. */
    ASSERT_EQ(rego_query_new(p, "x := 1; data.t.allow == true", &q, NULL, NULL), 0);
    ASSERT_EQ(rego_eval_query(ev, q, &r, NULL, NULL), 0);
    ASSERT_EQ(r.count, 0);
    rego_query_free(q);
    rego_eval_free(ev);
    rego_policy_unref(p);
}

TEST(input_past_the_memory_bound_is_refused)
{
    rego_eval_opts_t o = {.max_bytes = 64 * 1024};
    rego_eval_t *ev = rego_eval_new(&o);
    err_detail_t d = {""};
    size_t n = 200 * 1024;
    int rc;
    char *big = mem_alloc(n);
    memset(big, ' ', n);
    big[0] = '[';
    for (size_t i = 1; i + 2 < n; i += 2)
        big[i] = '1', big[i + 1] = ',';
    big[n - 2] = '1';
    big[n - 1] = ']';
    rc = rego_eval_set_input_text(ev, big, n, &d);
    mem_free(big);
    ASSERT_EQ(rc, ERR_TOO_LARGE);
    rego_eval_reset(ev);
    ASSERT_EQ(rego_eval_set_input_text(ev, "{\"a\":", 5, &d), ERR_PARSE);
    ASSERT_EQ(rego_eval_set_input_text(ev, "[1,2]", 5, &d), 0);
    rego_eval_free(ev);
}

/* Every allocation an evaluation makes may fail: the answer is then an error, never a crash, a
 * leak or a wrong decision. */
TEST(allocation_failures_fail_closed)
{
    rego_policy_t *p = compile("package t\n"
                               "body := json.unmarshal(input.body)\n"
                               "names := [sprintf(\"%s-%d\", [x.name, i]) | some i, x in body]\n"
                               "allow if count(names) == 300\n",
                               REGO_SYNTAX_V1, NULL, NULL, 0);
    rego_query_t *q = NULL;
    size_t before = mem_used();
    buf_t in;
    ASSERT(p != NULL);
    ASSERT_EQ(rego_query_new(p, "data.t.allow", &q, NULL, NULL), 0);
    buf_init(&in, 1u << 20);
    ASSERT_EQ(buf_append_str(&in, "{\"body\":\"["), 0);
    for (int i = 0; i < 300; i++)
        ASSERT_EQ(buf_printf(&in, "%s{\\\"name\\\":\\\"tool-%d\\\"}", i ? "," : "", i), 0);
    ASSERT_EQ(buf_append_str(&in, "]\"}"), 0);
    before = mem_used();
    rego_eval_t *ev = rego_eval_new(NULL);
    int ok = 0, failed = 0;
    for (unsigned long n = 1; n < 20000 && ok < 3; n += n < 200 ? 1 : 7) {
        rego_val_t *v = NULL;
        rego_eval_reset(ev);
        mem_fail_after(n);
        int rc = rego_eval_set_input_text(ev, buf_ptr(&in), in.len, NULL);
        if (rc == 0)
            rc = rego_eval_value(ev, q, &v, NULL);
        mem_fail_after(0);
        if (rc == 0) {
            ASSERT(rego_val_bool(v));
            ok++;
        } else {
            ASSERT(rc == ERR_NOMEM || rc == ERR_TOO_LARGE || rc == ERR_REGO_LIMIT);
            failed++;
        }
    }
    rego_eval_free(ev);
    if (!(failed > 0 && ok > 0)) {
        buf_free(&in);
        TEST_FAIL_("ok %d failed %d", ok, failed);
    }
    ASSERT_EQ(mem_used(), before);
    buf_free(&in);
    rego_query_free(q);
    rego_policy_unref(p);
}
