/*
 * fuzz_rego_eval — a fixed policy (the seed's tools/call policy plus JWT, regex, glob and
 * string builtins over request fields) evaluated on arbitrary input documents.
 *
 * Invariants checked beyond "no crash, no leak":
 * - input that is not JSON is rejected before evaluation, with nothing evaluated;
 * - the decision is undefined, true or false, or an ERR_REGO_* error (fail closed), never
 *   anything else, and evaluating twice gives the same answer;
 * - the context stays usable after an error, and all memory is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "rego/rego.h"
#include "fuzz.h"

static const char policy[] =
    "package http\n"
    "import future.keywords.in\n"
    "default allow = false\n"
    "allowed_tools := {\"analyst-agent\": {\"get_inventory\"}, \"ops-agent\": {\"update_stock\"}}\n"
    "body := json.unmarshal(input.request.body)\n"
    "caller := input.request.headers[\"dapr-caller-app-id\"]\n"
    "allow { input.request.method == \"POST\"; body.method == \"tools/list\" }\n"
    "allow { body.method == \"tools/call\"; allowed_tools[caller][body.params.name] }\n"
    "allow { [_, payload, _] := io.jwt.decode(input.request.headers.authorization)\n"
    "        payload.sub == \"admin\" }\n"
    "allow { regex.match(\"^/v1\\\\.0/invoke/[a-z-]+/method/health$\", input.request.path) }\n"
    "allow { glob.match(\"/public/**\", [\"/\"], input.request.path) }\n"
    "allow { count(input.request.path_parts) > 3; startswith(lower(input.request.path), "
    "\"/ok\") }\n"
    "names[n] { some call in body; n := call.params.name }\n"
    "score := sum([x | x := input.nums[_]; is_number(x)])\n"
    "summary := sprintf(\"%s %v %d\", [caller, names, count(names)])\n"
    "deep := count([p | walk(input, [p, v]); is_string(v)])\n"
    "internal { net.cidr_contains(\"10.0.0.0/8\", input.ip) }\n"
    "digest := crypto.sha256(json.marshal(input))\n"
    "doc := yaml.unmarshal(input.request.body)\n"
    "allow { deep > 1000; internal; digest != \"\"; doc.ok == true }\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static rego_policy_t *p;
    static rego_query_t *q, *qs;
    size_t before;
    err_detail_t d = {""};
    rego_val_t *v = NULL, *v2 = NULL;
    int rc, rc2;

    if (p == NULL) {
        rego_module_src_t m = {"policy.rego", policy, strlen(policy)};
        rego_compile_opts_t o = {.default_syntax = REGO_SYNTAX_V0};
        CHECK(rego_policy_new(&m, 1, NULL, &o, &p, &d, NULL) == 0);
        CHECK(rego_query_new(p, "data.http.allow", &q, &d, NULL) == 0);
        CHECK(rego_query_new(p, "data.http.summary", &qs, &d, NULL) == 0);
    }
    before = mem_used();
    rego_eval_opts_t eo = {.max_steps = 50000, .max_bytes = 8u << 20, .now_ns = 1};
    rego_eval_t *ev = rego_eval_new(&eo);
    if (rego_eval_set_input_text(ev, (const char *)data, size, &d) < 0) {
        rego_eval_free(ev);
        CHECK(mem_used() == before);
        return 0;
    }
    rc = rego_eval_value(ev, q, &v, &d);
    rc2 = rego_eval_value(ev, q, &v2, &d);
    CHECK(rc == rc2);
    CHECK(rc == 0 || (rc <= ERR_REGO_PARSE && rc >= ERR_REGO_LIMIT));
    if (rc == 0) {
        CHECK(v != NULL && rego_val_kind(v) == REGO_BOOL);
        CHECK(v2 != NULL && rego_val_bool(v) == rego_val_bool(v2));
    }
    rc = rego_eval_value(ev, qs, &v, &d);
    CHECK(rc == 0 || (rc <= ERR_REGO_PARSE && rc >= ERR_REGO_LIMIT));
    if (rc == 0 && v != NULL)
        CHECK(rego_val_kind(v) == REGO_STRING);
    rego_eval_free(ev);
    CHECK(mem_used() == before);
    return 0;
}
