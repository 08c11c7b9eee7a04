/*
 * rego — a Rego interpreter: lexer, parser (v0 and v1 syntax), compiler and evaluator with OPA's
 * semantics, plus the common builtins. No I/O.
 *
 * Job: compile policy modules (+ optional base data) once into an immutable rego_policy_t, then
 * answer queries such as `data.http.allow` against an input document, cheaply, per request.
 * Ownership: rego_policy_new returns a policy with one reference; rego_policy_ref/unref share it
 * (the last unref frees it). A rego_eval_t belongs to one caller at a time; it owns every value it
 * returns (an arena), and those values die at the next rego_eval_reset or rego_eval_free.
 * rego_query_t is owned by the caller and borrows the policy (keep a reference while it lives).
 * Threading: a compiled policy and compiled queries are read-only and may be used by any number of
 * threads at once; each thread uses its own rego_eval_t.
 * Errors: 0 or a negative code (ERR_REGO_PARSE, ERR_REGO_COMPILE, ERR_REGO_EVAL, ERR_REGO_CONFLICT,
 * ERR_REGO_TYPE, ERR_REGO_BUILTIN, ERR_REGO_LIMIT, ERR_INVAL) with OPA's error code name and a
 * message ("file:line:col: ...") in the err_detail_t. Evaluation stops at the step limit or the
 * memory bound with ERR_REGO_LIMIT: a caller that authorizes must treat any error as deny.
 */
#ifndef OUTRIGGER_REGO_H
#define OUTRIGGER_REGO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct rego_policy rego_policy_t;
typedef struct rego_query rego_query_t;
typedef struct rego_eval rego_eval_t;
typedef struct rego_val rego_val_t;

/* Limits: every parser and evaluation is bounded. */
#define REGO_MAX_SOURCE_BYTES (4u * 1024 * 1024)   /* one module's text */
#define REGO_MAX_NESTING 200                       /* parser and JSON nesting depth */
#define REGO_DEFAULT_MAX_STEPS 1000000u            /* evaluation steps per query */
#define REGO_DEFAULT_MAX_BYTES (64u * 1024 * 1024) /* arena bytes per evaluation */

typedef enum rego_syntax {
    REGO_SYNTAX_V1 = 0, /* `if`/`contains` required, keywords on (OPA 1.x default) */
    REGO_SYNTAX_V0 = 1, /* OPA 0.x: `p { }`, `p[x] { }`; keywords only via imports */
} rego_syntax_t;

typedef struct rego_module_src {
    const char *name; /* file name for messages ("inline.rego") */
    const char *text; /* module source */
    size_t len;       /* bytes of text */
} rego_module_src_t;

typedef struct rego_compile_opts {
    rego_syntax_t default_syntax; /* used unless a module says `import rego.v1` (→ v1) */
} rego_compile_opts_t;

/**
 * Parses and compiles @p n modules plus optional base data (@p data: a JSON object or NULL,
 * copied). On success *out holds a policy with one reference. On failure nothing is written and
 * @p detail says "name:line:col: message"; @p opa_code (may be NULL) receives OPA's code name
 * ("rego_parse_error", "rego_compile_error", "rego_unsafe_var_error", "rego_recursion_error").
 */
int rego_policy_new(const rego_module_src_t *mods, size_t n, const json_t *data,
                    const rego_compile_opts_t *opts, rego_policy_t **out, err_detail_t *detail,
                    const char **opa_code) __attribute__((warn_unused_result));
rego_policy_t *rego_policy_ref(rego_policy_t *p);
void rego_policy_unref(rego_policy_t *p);

/**
 * Compiles a query (a Rego body such as `data.http.allow` or `x := data.a[_]`) against @p p. The
 * query may bind variables; their names are listed by rego_query_var_name.
 */
int rego_query_new(rego_policy_t *p, const char *text, rego_query_t **out, err_detail_t *detail,
                   const char **opa_code) __attribute__((warn_unused_result));
void rego_query_free(rego_query_t *q);
/** Number of named (user-visible) variables of the query, and the name of the i-th. */
size_t rego_query_var_count(const rego_query_t *q);
const char *rego_query_var_name(const rego_query_t *q, size_t i);
/** Number of top-level expressions of the query (for `opa eval` output). */
size_t rego_query_expr_count(const rego_query_t *q);

typedef struct rego_eval_opts {
    uint64_t max_steps;   /* 0: REGO_DEFAULT_MAX_STEPS */
    size_t max_bytes;     /* 0: REGO_DEFAULT_MAX_BYTES */
    bool strict_builtins; /* builtin errors fail the query instead of being undefined */
    int64_t now_ns;       /* time.now_ns for every call of this evaluation; 0: the clock */
} rego_eval_opts_t;

/** A per-thread evaluation context (arena, caches). @p opts may be NULL. */
rego_eval_t *rego_eval_new(const rego_eval_opts_t *opts);
void rego_eval_free(rego_eval_t *ev);
/** Drops every value of the previous query; keeps the arena's first block for reuse. */
void rego_eval_reset(rego_eval_t *ev);

/** Sets the input document from JSON (copied into the eval arena). NULL: input undefined. */
int rego_eval_set_input_json(rego_eval_t *ev, const json_t *input, err_detail_t *detail)
    __attribute__((warn_unused_result));
/** Sets the input document from JSON text. */
int rego_eval_set_input_text(rego_eval_t *ev, const char *text, size_t len, err_detail_t *detail)
    __attribute__((warn_unused_result));
/** Sets the input to a Rego term (e.g. `{"a": {1, 2}}`), as OPA's input_term. */
int rego_eval_set_input_term(rego_eval_t *ev, const char *text, err_detail_t *detail)
    __attribute__((warn_unused_result));

/* Input builder: build an object without JSON, e.g. for the HTTP middleware. Values live in the
 * eval arena until the next reset. */
rego_val_t *rego_val_new_object(rego_eval_t *ev);
rego_val_t *rego_val_new_array(rego_eval_t *ev);
rego_val_t *rego_val_new_string(rego_eval_t *ev, const char *s, size_t len);
rego_val_t *rego_val_new_number(rego_eval_t *ev, double n);
rego_val_t *rego_val_new_bool(rego_eval_t *ev, bool b);
/** Adds key → value to an object built by rego_val_new_object (the key string is copied). */
void rego_val_object_put(rego_eval_t *ev, rego_val_t *obj, const char *key, size_t klen,
                         rego_val_t *v);
void rego_val_array_push(rego_eval_t *ev, rego_val_t *arr, rego_val_t *v);
/** Sets the input document to a built value. */
void rego_eval_set_input(rego_eval_t *ev, rego_val_t *input);

typedef struct rego_result {
    size_t count;           /* solutions */
    rego_val_t ***bindings; /* [solution][var] value or NULL (see rego_query_var_name) */
    rego_val_t ***exprs;    /* [solution][expr] value of each top-level expression */
} rego_result_t;

/**
 * Evaluates @p q with the input set before. On success *out lists every solution (count 0 means
 * undefined). Errors stop evaluation (fail closed) with OPA's code name in @p opa_code.
 */
int rego_eval_query(rego_eval_t *ev, const rego_query_t *q, rego_result_t *out,
                    err_detail_t *detail, const char **opa_code)
    __attribute__((warn_unused_result));

/**
 * The fast path for a decision: evaluates the single reference @p q (e.g. `data.http.allow`) and
 * stores its value in *out, or NULL when undefined.
 */
int rego_eval_value(rego_eval_t *ev, const rego_query_t *q, rego_val_t **out, err_detail_t *detail)
    __attribute__((warn_unused_result));

/* Inspecting values. */
typedef enum rego_kind {
    REGO_NULL = 0,
    REGO_BOOL,
    REGO_NUMBER,
    REGO_STRING,
    REGO_ARRAY,
    REGO_OBJECT,
    REGO_SET,
} rego_kind_t;

rego_kind_t rego_val_kind(const rego_val_t *v);
bool rego_val_bool(const rego_val_t *v);     /* false unless a true boolean */
double rego_val_number(const rego_val_t *v); /* 0 unless a number */
/** String bytes (not NUL-terminated in general) and length; NULL unless a string. */
const char *rego_val_string(const rego_val_t *v, size_t *len);
/** Elements of arrays and sets, entries of objects. */
size_t rego_val_len(const rego_val_t *v);
rego_val_t *rego_val_elem(const rego_val_t *v, size_t i);      /* array/set element, object key */
rego_val_t *rego_val_obj_value(const rego_val_t *v, size_t i); /* object value at i */
/** The value under a string key of an object, or NULL. */
rego_val_t *rego_val_get(const rego_val_t *v, const char *key);
/** True when @p v (array or set) contains the string @p s. */
bool rego_val_has_string(const rego_val_t *v, const char *s, size_t len);
/** JSON form (sets become sorted arrays; non-string object keys are serialised). New reference. */
json_t *rego_val_to_json(const rego_val_t *v);

#endif
