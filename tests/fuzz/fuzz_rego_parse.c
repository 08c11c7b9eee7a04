/*
 * fuzz_rego_parse — the Rego lexer, parser and compiler on arbitrary module text (both
 * syntaxes), then a bounded evaluation of everything the module defines.
 *
 * Invariants checked beyond "no crash, no leak":
 * - compiling returns 0 or a Rego parse/compile error with OPA's code name and a message;
 * - a failed compile writes nothing to the output;
 * - evaluating `data` under small step and memory limits returns 0 or an ERR_REGO_* code
 *   (never hangs: the limits hold);
 * - all memory taken through base/alloc is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "rego/rego.h"
#include "fuzz.h"

static bool rego_code(int rc)
{
    return rc == ERR_REGO_PARSE || rc == ERR_REGO_COMPILE || rc == ERR_REGO_EVAL ||
           rc == ERR_REGO_CONFLICT || rc == ERR_REGO_TYPE || rc == ERR_REGO_BUILTIN ||
           rc == ERR_REGO_LIMIT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();
    if (size > 64 * 1024)
        return 0;
    for (int syntax = 0; syntax < 2; syntax++) {
        rego_module_src_t m = {"fuzz.rego", (const char *)data, size};
        rego_compile_opts_t o = {.default_syntax = syntax == 0 ? REGO_SYNTAX_V1 : REGO_SYNTAX_V0};
        rego_policy_t *p = (rego_policy_t *)(uintptr_t)1;
        err_detail_t d = {""};
        const char *code = NULL;
        int rc = rego_policy_new(&m, 1, NULL, &o, &p, &d, &code);
        if (rc < 0) {
            CHECK(rego_code(rc));
            CHECK(p == (rego_policy_t *)(uintptr_t)1);
            CHECK(code != NULL && d.msg[0] != '\0');
            continue;
        }
        rego_query_t *q = NULL;
        CHECK(rego_query_new(p, "x := data", &q, &d, &code) == 0);
        rego_eval_opts_t eo = {.max_steps = 20000, .max_bytes = 4u << 20, .now_ns = 1};
        rego_eval_t *ev = rego_eval_new(&eo);
        rego_result_t res;
        CHECK(rego_eval_set_input_text(ev, "{\"a\":[1,2,{\"b\":\"c\"}]}", 21, NULL) == 0);
        rc = rego_eval_query(ev, q, &res, &d, &code);
        CHECK(rc == 0 || rego_code(rc) || rc == ERR_NOMEM || rc == ERR_INVAL);
        if (rc == 0)
            CHECK(res.count <= 1);
        rego_eval_free(ev);
        rego_query_free(q);
        rego_policy_unref(p);
    }
    CHECK(mem_used() == before);
    return 0;
}
