/*
 * rego_int — types shared by the files of the rego module (not part of its contract).
 */
#ifndef OUTRIGGER_REGO_INT_H
#define OUTRIGGER_REGO_INT_H

#include <setjmp.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rego/rego.h"

/* ---- arena ---- */
typedef struct rego__chunk rego__chunk_t;
typedef struct rego__arena {
    rego__chunk_t *head; /* owned list of blocks, newest first */
    size_t used;         /* bytes handed out */
    size_t max;          /* bound; 0 = unbounded */
    jmp_buf *jb;         /* where to jump when the bound is hit (or NULL: abort) */
    int *jcode;          /* receives ERR_REGO_LIMIT before the jump */
} rego__arena_t;

void rego__arena_init(rego__arena_t *a, size_t max);
void *rego__alloc(rego__arena_t *a, size_t n);
void rego__arena_free(rego__arena_t *a);
void rego__arena_reset(rego__arena_t *a);
char *rego__strndup(rego__arena_t *a, const char *s, size_t n);

/* ---- values ---- */
struct rego_val {
    uint8_t kind;    /* rego_kind_t */
    bool b;          /* REGO_BOOL; objects, sets: built by a rule head (may merge) */
    uint32_t len;    /* string bytes, elements, entries */
    uint32_t cap;    /* builder capacity */
    double num;      /* REGO_NUMBER */
    const char *str; /* REGO_STRING bytes (NUL-terminated); REGO_NUMBER: exact text of a long
                      * integer literal or NULL (rego__num_text) */
    rego_val_t **a;  /* array/set elements (sets sorted), object keys (sorted) */
    rego_val_t **v;  /* object values */
};
typedef rego_val_t rv_t;

extern rv_t rego__true, rego__false, rego__null, rego__empty_str;
rv_t *rego__num(rego__arena_t *a, double n);
rv_t *rego__num_text(rego__arena_t *a, double n, const char *text, size_t len);
rv_t *rego__str(rego__arena_t *a, const char *s, size_t n);
rv_t *rego__str_own(rego__arena_t *a, const char *s, size_t n); /* no copy */
/* JSON-style string escapes, shared by the Rego lexer and the JSON reader: the byte a one-letter
 * escape (after the backslash) stands for, or -1 (also for 'u'); the value of four hex digits at
 * @p p, or -1; and code point @p cp as UTF-8 at @p o (up to 4 bytes), returning its length. */
int rego__escape_char(char e);
int rego__hex4(const char *p);
size_t rego__utf8_put(char *o, unsigned cp);
rv_t *rego__arr(rego__arena_t *a, uint32_t cap);
rv_t *rego__set(rego__arena_t *a, uint32_t cap);
rv_t *rego__obj(rego__arena_t *a, uint32_t cap);
void rego__arr_push(rego__arena_t *a, rv_t *arr, rv_t *v);
/* Inserts into a set; returns true when new. */
bool rego__set_add(rego__arena_t *a, rv_t *set, rv_t *v);
/* Puts key → value; returns the existing value (unchanged) when the key exists, else NULL. */
rv_t *rego__obj_put(rego__arena_t *a, rv_t *obj, rv_t *k, rv_t *v);
void rego__obj_set(rego__arena_t *a, rv_t *obj, rv_t *k, rv_t *v); /* replaces */
rv_t *rego__obj_get(const rv_t *obj, const rv_t *k);
rv_t *rego__obj_gets(const rv_t *obj, const char *k, size_t n);
bool rego__set_has(const rv_t *set, const rv_t *v);
int rego__cmp(const rv_t *x, const rv_t *y);
bool rego__eq(const rv_t *x, const rv_t *y);
bool rego__is_int(const rv_t *v);
rv_t *rego__copy(rego__arena_t *a, const rv_t *v);
/* Parses JSON text into arena values; NULL when malformed or nested too deeply. */
rv_t *rego__json_parse(rego__arena_t *a, const char *text, size_t len);
rv_t *rego__from_json(rego__arena_t *a, const json_t *j, int depth);
/* Writes JSON text; sets become arrays; returns 0 or ERR_TOO_LARGE. */
struct buf;
int rego__to_json_text(const rv_t *v, struct buf *b);
/* @p v as JSON text in a string value (json.marshal, yaml.marshal); past 64 MiB the evaluation
 * fails with "<builtin>: too large". */
rv_t *rego__marshal(rego_eval_t *ev, const rv_t *v, const char *builtin);
/* Rego term text (sets as {..}, set() when empty). */
int rego__to_rego_text(const rv_t *v, struct buf *b);
void rego__fmt_num(double n, char *out, size_t size);
const char *rego__type_name(const rv_t *v);
uint64_t rego__hash(const rv_t *v);

/* ---- AST ---- */
typedef enum rego__tkind {
    T_VAL, /* constant value */
    T_VAR, /* local variable (slot) */
    T_REF, /* head + path */
    T_ARR,
    T_OBJ, /* items: keys at [2i], values at [2i+1] */
    T_SET,
    T_ACOMP, /* [head | body] */
    T_SCOMP, /* {head | body} */
    T_OCOMP, /* {key: head | body} */
    T_CALL,  /* name(args) */
    T_INPUT, /* the root `input` (only as a ref head or alone) */
    T_DATA,  /* the root `data` */
} rego__tkind_t;

typedef struct rego__term rego__term_t;
typedef struct rego__expr rego__expr_t;
typedef struct rego__node rego__node_t;
typedef struct rego__builtin rego__builtin_t;

typedef struct rego__body {
    rego__expr_t **e; /* literals in evaluation order */
    uint32_t n;
} rego__body_t;

struct rego__term {
    uint8_t kind;              /* rego__tkind_t */
    bool ground;               /* T_ARR/T_OBJ/T_SET: all parts constant (then val is set) */
    bool bracket;              /* a ref path item written as [..] (v0 partial set heads) */
    bool wild;                 /* T_VAR `_` */
    uint32_t line, col;        /* source position */
    rv_t *val;                 /* T_VAL; precomputed value of ground composites */
    const char *name;          /* T_VAR name; T_CALL dotted name */
    int slot;                  /* T_VAR slot */
    rego__term_t *head;        /* T_REF head; comprehension head (value); */
    rego__term_t *key;         /* T_OCOMP key */
    rego__term_t **items;      /* T_REF path, composite items, T_CALL args */
    uint32_t n;                /* items */
    rego__body_t body;         /* comprehensions */
    const rego__builtin_t *bi; /* T_CALL: builtin, or NULL */
    rego__node_t *fn;          /* T_CALL: user function node, or NULL */
    rego__term_t *fnref;       /* T_CALL: unresolved name as a ref (during compile) */
};

typedef enum rego__ekind {
    E_TERM,
    E_UNIFY,  /* a = b, a := b */
    E_NOT,    /* not inner */
    E_SOME,   /* some x, y (declaration only) */
    E_SOMEIN, /* some [a,] b in c */
    E_EVERY,  /* every [a,] b in c { body } */
} rego__ekind_t;

typedef struct rego__with {
    rego__term_t *target; /* input/data ref, or T_VAL string naming a function */
    rego__term_t *value;
    const char **path; /* target path below input/data */
    uint32_t npath;
    int root;                       /* T_INPUT, T_DATA, or T_CALL for a function */
    const rego__builtin_t *bi;      /* replaced builtin */
    rego__node_t *fn;               /* replaced user function */
    rego__node_t *repl_fn;          /* replacement: a user function, or NULL */
    const rego__builtin_t *repl_bi; /* replacement: a builtin, or NULL */
} rego__with_t;

struct rego__expr {
    uint8_t kind; /* rego__ekind_t */
    bool assign;  /* := */
    bool capture; /* top-level query term: its value is the result, false included */
    uint32_t line, col;
    rego__term_t *a, *b,
        *c;              /* E_TERM: a; E_UNIFY: a = b; E_SOMEIN/E_EVERY: key a, value b, coll c */
    rego__expr_t *inner; /* E_NOT */
    rego__body_t body;   /* E_EVERY */
    rego__with_t *with;
    uint32_t nwith;
};

typedef enum rego__rkind { R_COMPLETE, R_SET, R_OBJ, R_FUNC } rego__rkind_t;

typedef struct rego__rule rego__rule_t;
struct rego__rule {
    uint8_t kind; /* rego__rkind_t */
    bool is_default;
    uint32_t line, col;
    const char *file;
    rego__term_t **keys; /* R_SET: one key term; R_OBJ: key path (≥1) */
    uint32_t nkeys;
    rego__term_t *value; /* value term (NULL: true) */
    rego__term_t **args; /* R_FUNC params */
    uint32_t nargs;
    rego__body_t body;
    rego__rule_t *els; /* else chain */
    uint32_t nslots;   /* variables of the rule (shared by its else chain) */
    rego__node_t *node;
    void *mod; /* module (for name resolution during compile) */
};

struct rego__node {
    const char *name; /* key under the parent */
    rego__node_t *parent;
    rego__node_t **kids;
    uint32_t nkids;
    rego__rule_t **rules;
    uint32_t nrules;
    rego__rule_t *dflt;
    int kind;       /* -1: no rules; else rego__rkind_t of its rules */
    uint32_t id;    /* index into per-eval caches */
    uint32_t nargs; /* functions */
    bool pkg;       /* a package: defined (as {}) even without rules */
};

/* ---- policy and query ---- */
struct rego_policy {
    _Atomic long refs;
    rego__arena_t arena; /* every AST node, constant and name */
    rego__node_t *root;  /* the data tree */
    uint32_t nnodes;
    rv_t *data; /* base data (object) */
};

struct rego_query {
    rego_policy_t *pol; /* borrowed */
    rego__arena_t arena;
    rego__body_t body;
    uint32_t nslots;
    const char **vars; /* user-visible variable names */
    int *var_slots;
    uint32_t nvars;
    uint32_t nexprs;
};

/* ---- evaluation ---- */
typedef struct rego__ovr {
    int root; /* T_INPUT / T_DATA / T_CALL */
    const char **path;
    uint32_t npath;
    rv_t *val;                 /* replacement value (T_DATA) */
    const rego__builtin_t *bi; /* T_CALL: builtin replaced */
    rego__node_t *fn;          /* T_CALL: function replaced */
    rego__term_t *with_fn;     /* replacement: value term or function ref */
    rego__node_t *with_node;   /* replacement: user function */
    const rego__builtin_t *with_bi;
    rv_t *with_val;
    rv_t **slots;
} rego__ovr_t;

/* A resource a builtin holds while it may still hit the memory bound: released if evaluation
 * jumps out (OOM, limit, error), else by the builtin itself. */
typedef struct rego__defer {
    void (*fn)(void *);
    void *p;
} rego__defer_t;

#define REGO__MAX_DEFER 32

struct rego_eval {
    rego__arena_t arena;
    rego__defer_t defer[REGO__MAX_DEFER];
    uint32_t ndefer;
    jmp_buf jb;
    int code; /* error code when jumping */
    const char *opa_code;
    err_detail_t *detail;
    err_detail_t own_detail;
    rv_t *input;
    rv_t *data; /* base data, as replaced by `with data…` */
    const rego_policy_t *pol;
    uint64_t steps, max_steps;
    bool strict;
    int64_t now_ns, fixed_now_ns;
    rv_t ***trail;
    uint32_t ntrail, captrail;
    rv_t **cache;    /* per node value (computed) */
    uint8_t *cstate; /* 0 unknown, 1 computing, 2 done */
    rego__ovr_t *ovr;
    uint32_t novr, capovr;
    uint32_t depth;
    const char *cur_file;         /* module of the rule being evaluated (messages) */
    const rego__term_t *cur_call; /* builtin call being evaluated (messages) */
    uint32_t in_mock;             /* inside a replacement function: mocks are off */
    uintptr_t stack_base;         /* address of a local at the entry point (stack guard) */
    const rv_t *unm_key[4];       /* json.unmarshal memo: argument ... */
    rv_t *unm_val[4];             /* ... and its parsed value, per evaluation */
    uint32_t unm_next;
    size_t max_bytes;
};

typedef struct rego__kont rego__kont_t;
struct rego__kont {
    int (*fn)(rego_eval_t *ev, rego__kont_t *k, rv_t *v);
};

/* Errors raised during evaluation jump out (never return). */
_Noreturn void rego__fail(rego_eval_t *ev, int code, const char *opa_code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Deferred releases (see rego__defer_t). */
void rego__defer(rego_eval_t *ev, void (*fn)(void *), void *p);
void rego__undefer(rego_eval_t *ev, const void *p);
void rego__run_defers(rego_eval_t *ev);
/* A buf_t whose struct lives in the arena and whose bytes are released even on a jump. */
struct buf *rego__buf(rego_eval_t *ev, size_t max);
void rego__buf_done(rego_eval_t *ev, struct buf *b);

/* ---- builtins ---- */
typedef rv_t *(*rego__bi_fn)(rego_eval_t *ev, rv_t **args, uint32_t n);
struct rego__builtin {
    const char *name;
    int arity; /* -1: variadic (print) */
    rego__bi_fn fn;
    bool relation; /* fn returns an array of results, one solution each (walk) */
};
const rego__builtin_t *rego__builtin_find(const char *name);
/* A builtin failure: error when strict, else undefined. Returns NULL. */
rv_t *rego__bi_err(rego_eval_t *ev, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* An operand type error: eval_type_error with strict builtin errors, else undefined (NULL). */
rv_t *rego__type_err(rego_eval_t *ev, const char *fn, int pos, const char *want, const rv_t *got);

/* ---- parser / compiler ---- */
typedef struct rego__module rego__module_t;
struct rego__module {
    const char *file;
    const char **pkg; /* package path (without data) */
    uint32_t npkg;
    struct rego__import {
        const char *alias;
        rego__term_t *ref; /* T_REF on input/data */
    } * imports;
    uint32_t nimports;
    rego__rule_t **rules;
    uint32_t nrules;
    bool v1;
};

typedef struct rego__cctx {
    rego__arena_t *arena;
    jmp_buf jb;
    err_detail_t *detail;
    const char *opa_code;
    int code;
} rego__cctx_t;

_Noreturn void rego__cfail(rego__cctx_t *c, const char *opa_code, const char *file, uint32_t line,
                           uint32_t col, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
rego__module_t *rego__parse_module(rego__cctx_t *c, const char *file, const char *text, size_t len,
                                   bool v1_default);
rego__body_t rego__parse_query(rego__cctx_t *c, const char *text, size_t len);
rego__term_t *rego__parse_term_text(rego__cctx_t *c, const char *text, size_t len);
/* Resolves names and slots of a rule / query body; reorders for safety. */
void rego__compile_policy(rego__cctx_t *c, rego_policy_t *p, rego__module_t **mods, uint32_t n);
void rego__compile_query(rego__cctx_t *c, rego_policy_t *p, rego_query_t *q);

/* ---- evaluator entry points ---- */
int rego__eval_term(rego_eval_t *ev, rv_t **slots, rego__term_t *t, rego__kont_t *k);
void rego__step(rego_eval_t *ev);
int64_t rego__now(rego_eval_t *ev);

#endif
