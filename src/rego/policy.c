/*
 * policy.c — the public entry points for compiling policies and queries (rego.h).
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "rego/rego_int.h"

int rego_policy_new(const rego_module_src_t *mods, size_t n, const json_t *data,
                    const rego_compile_opts_t *opts, rego_policy_t **out, err_detail_t *detail,
                    const char **opa_code)
{
    rego_policy_t *p = mem_calloc(sizeof(*p));
    rego__cctx_t *c = mem_calloc(sizeof(*c));
    rego__module_t **ms = NULL;
    int rc = 0;

    atomic_init(&p->refs, 1);
    rego__arena_init(&p->arena, 0);
    c->arena = &p->arena;
    c->detail = detail;
    if (setjmp(c->jb) != 0) {
        rc = c->code != 0 ? c->code : ERR_REGO_COMPILE;
        if (opa_code != NULL)
            *opa_code = c->opa_code;
        rego__arena_free(&p->arena);
        mem_free(p);
        goto out;
    }
    if (n > 0) {
        ms = rego__alloc(&p->arena, n * sizeof(*ms));
        for (size_t i = 0; i < n; i++) {
            const char *name = rego__strndup(&p->arena, mods[i].name != NULL ? mods[i].name : "",
                                             mods[i].name != NULL ? strlen(mods[i].name) : 0);
            const char *text = rego__strndup(&p->arena, mods[i].text, mods[i].len);
            ms[i] = rego__parse_module(c, name, text, mods[i].len,
                                       opts == NULL || opts->default_syntax == REGO_SYNTAX_V1);
        }
    }
    if (data != NULL) {
        if (!json_is_object(data))
            rego__cfail(c, "rego_compile_error", NULL, 0, 0, "data must be a JSON object");
        p->data = rego__from_json(&p->arena, data, 0);
        if (p->data == NULL)
            rego__cfail(c, "rego_compile_error", NULL, 0, 0, "data nested too deeply");
    } else {
        p->data = rego__obj(&p->arena, 0);
    }
    rego__compile_policy(c, p, ms, (uint32_t)n);
    *out = p;
out:
    mem_free(c);
    return rc;
}

rego_policy_t *rego_policy_ref(rego_policy_t *p)
{
    atomic_fetch_add(&p->refs, 1);
    return p;
}

void rego_policy_unref(rego_policy_t *p)
{
    if (p == NULL || atomic_fetch_sub(&p->refs, 1) != 1)
        return;
    rego__arena_free(&p->arena);
    mem_free(p);
}

int rego_query_new(rego_policy_t *p, const char *text, rego_query_t **out, err_detail_t *detail,
                   const char **opa_code)
{
    rego_query_t *q = mem_calloc(sizeof(*q));
    rego__cctx_t *c = mem_calloc(sizeof(*c));
    int rc = 0;
    const char *copy = NULL;

    q->pol = p;
    rego__arena_init(&q->arena, 0);
    c->arena = &q->arena;
    c->detail = detail;
    if (setjmp(c->jb) != 0) {
        rc = c->code != 0 ? c->code : ERR_REGO_COMPILE;
        if (opa_code != NULL)
            *opa_code = c->opa_code;
        rego__arena_free(&q->arena);
        mem_free(q);
        goto out;
    }
    if (strlen(text) > REGO_MAX_SOURCE_BYTES)
        rego__cfail(c, "rego_parse_error", "query", 0, 0, "query too large");
    copy = rego__strndup(&q->arena, text, strlen(text));
    q->body = rego__parse_query(c, copy, strlen(copy));
    rego__compile_query(c, p, q);
    *out = q;
out:
    mem_free(c);
    return rc;
}

void rego_query_free(rego_query_t *q)
{
    if (q == NULL)
        return;
    rego__arena_free(&q->arena);
    mem_free(q);
}

size_t rego_query_var_count(const rego_query_t *q)
{
    return q->nvars;
}

const char *rego_query_var_name(const rego_query_t *q, size_t i)
{
    return i < q->nvars ? q->vars[i] : NULL;
}

size_t rego_query_expr_count(const rego_query_t *q)
{
    return q->nexprs;
}

int rego_eval_set_input_term(rego_eval_t *ev, const char *text, err_detail_t *detail)
{
    rego_policy_t *p = NULL;
    rego_query_t *q = NULL;
    rego_result_t res;
    buf_t b;
    int rc;
    const char *code = NULL;

    /* Evaluate `x = <term>` against an empty policy and keep the value. */
    rc = rego_policy_new(NULL, 0, NULL, NULL, &p, detail, &code);
    if (rc < 0)
        return rc;
    buf_init(&b, REGO_MAX_SOURCE_BYTES + 64);
    if (buf_append_str(&b, "x = ") < 0 || buf_append_str(&b, text) < 0) {
        rc = err_set(detail, ERR_TOO_LARGE, "input term too large");
        goto out;
    }
    rc = rego_query_new(p, buf_ptr(&b), &q, detail, &code);
    if (rc < 0)
        goto out;
    rc = rego_eval_query(ev, q, &res, detail, &code);
    if (rc < 0)
        goto out;
    if (res.count == 0) {
        rc = err_set(detail, ERR_REGO_EVAL, "input term is undefined");
        goto out;
    }
    ev->input = rego__copy(&ev->arena, res.bindings[0][0]);
out:
    buf_free(&b);
    rego_query_free(q);
    rego_policy_unref(p);
    return rc;
}
