/*
 * The circuit breakers' `trip` expressions: the subset of CEL that Dapr users write over the five
 * counters ("consecutiveFailures > 5", "requests > 10 && totalFailures * 2 > requests"). A
 * recursive-descent parser with a depth limit builds a flat node array (at most
 * RESIL_TRIP_MAX_NODES); evaluation walks it with int64 arithmetic, and overflow or division by
 * zero is an evaluation error (the breaker then does not trip), never undefined behaviour.
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "resiliency/resiliency.h"

typedef enum op {
    OP_INT,  /* literal */
    OP_BOOL, /* literal */
    OP_VAR,  /* one of the counters */
    OP_NOT,
    OP_NEG,
    OP_MUL,
    OP_DIV,
    OP_MOD,
    OP_ADD,
    OP_SUB,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_EQ,
    OP_NE,
    OP_AND,
    OP_OR,
} op_t;

typedef struct node {
    op_t op;      /* what it does */
    bool boolean; /* its type: boolean, else integer */
    int a, b;     /* operand node indexes (-1 = none) */
    int64_t v;    /* literal value, or the counter index for OP_VAR */
} node_t;

struct resil_expr {
    node_t n[RESIL_TRIP_MAX_NODES]; /* nodes; the root is `root` */
    int count;                      /* nodes used */
    int root;                       /* index of the whole expression */
};

typedef struct parser {
    const char *start;   /* the whole input */
    const char *p, *end; /* input left */
    resil_expr_t *e;     /* being built */
    unsigned depth;      /* current nesting */
    err_detail_t *d;     /* where errors go */
    int rc;              /* first error */
} parser_t;

static const char *const var_names[5] = {"requests", "totalSuccesses", "totalFailures",
                                         "consecutiveSuccesses", "consecutiveFailures"};

static int fail(parser_t *ps, int code, const char *why)
{
    if (ps->rc == 0)
        ps->rc = err_set(ps->d, code, "%s at offset %zu", why, (size_t)(ps->p - ps->start));
    return -1;
}

static void skip_ws(parser_t *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r'))
        ps->p++;
}

/* Consumes @p tok if it comes next. */
static bool eat(parser_t *ps, const char *tok)
{
    size_t n = strlen(tok);
    skip_ws(ps);
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, tok, n) == 0) {
        ps->p += n;
        return true;
    }
    return false;
}

static int add(parser_t *ps, op_t op, bool boolean, int a, int b, int64_t v)
{
    node_t *n;
    if (ps->e->count >= RESIL_TRIP_MAX_NODES)
        return fail(ps, ERR_TOO_LARGE, "expression has too many terms");
    n = &ps->e->n[ps->e->count];
    *n = (node_t){op, boolean, a, b, v};
    return ps->e->count++;
}

static bool is_bool(parser_t *ps, int i)
{
    return ps->e->n[i].boolean;
}

static int parse_or(parser_t *ps);

/* primary: integer | true | false | counter | '(' or ')' */
static int parse_primary(parser_t *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end)
        return fail(ps, ERR_RESIL_EXPR, "unexpected end of expression");
    if (*ps->p >= '0' && *ps->p <= '9') {
        uint64_t v = 0;
        while (ps->p < ps->end && *ps->p >= '0' && *ps->p <= '9') {
            if (v > (uint64_t)(INT64_MAX - 9) / 10)
                return fail(ps, ERR_RESIL_EXPR, "number too large");
            v = v * 10 + (uint64_t)(*ps->p++ - '0');
        }
        if (ps->p < ps->end && (*ps->p == '.' || *ps->p == 'e' || *ps->p == 'E'))
            return fail(ps, ERR_RESIL_EXPR, "only integer numbers are supported");
        if (ps->p < ps->end && (*ps->p == 'u' || *ps->p == 'U'))
            ps->p++; /* CEL's unsigned suffix: same value here */
        return add(ps, OP_INT, false, -1, -1, (int64_t)v);
    }
    if (*ps->p == '(') {
        int i;
        ps->p++;
        if (++ps->depth > RESIL_TRIP_MAX_DEPTH)
            return fail(ps, ERR_TOO_LARGE, "expression nested too deeply");
        i = parse_or(ps);
        ps->depth--;
        if (i < 0)
            return -1;
        if (!eat(ps, ")"))
            return fail(ps, ERR_RESIL_EXPR, "missing ')'");
        return i;
    }
    if ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z') || *ps->p == '_') {
        const char *s = ps->p;
        size_t n;
        while (ps->p < ps->end &&
               ((*ps->p >= 'a' && *ps->p <= 'z') || (*ps->p >= 'A' && *ps->p <= 'Z') ||
                (*ps->p >= '0' && *ps->p <= '9') || *ps->p == '_'))
            ps->p++;
        n = (size_t)(ps->p - s);
        if (n == 4 && memcmp(s, "true", 4) == 0)
            return add(ps, OP_BOOL, true, -1, -1, 1);
        if (n == 5 && memcmp(s, "false", 5) == 0)
            return add(ps, OP_BOOL, true, -1, -1, 0);
        for (int k = 0; k < 5; k++)
            if (strlen(var_names[k]) == n && memcmp(s, var_names[k], n) == 0)
                return add(ps, OP_VAR, false, -1, -1, k);
        return fail(ps, ERR_RESIL_EXPR,
                    "unknown name (use requests, totalSuccesses, "
                    "totalFailures, consecutiveSuccesses, consecutiveFailures)");
    }
    return fail(ps, ERR_RESIL_EXPR, "unexpected character");
}

/* unary: ('!' | '-') unary | primary */
static int parse_unary(parser_t *ps)
{
    int i, r;
    skip_ws(ps);
    if (ps->p < ps->end && (*ps->p == '!' || *ps->p == '-') &&
        !(*ps->p == '!' && ps->p + 1 < ps->end && ps->p[1] == '=')) {
        bool neg = *ps->p == '-';
        ps->p++;
        if (++ps->depth > RESIL_TRIP_MAX_DEPTH)
            return fail(ps, ERR_TOO_LARGE, "expression nested too deeply");
        i = parse_unary(ps);
        ps->depth--;
        if (i < 0)
            return -1;
        if (is_bool(ps, i) == neg)
            return fail(ps, ERR_RESIL_EXPR, neg ? "'-' needs a number" : "'!' needs a boolean");
        r = add(ps, neg ? OP_NEG : OP_NOT, !neg, i, -1, 0);
        return r;
    }
    return parse_primary(ps);
}

/* Builds a binary node after checking operand types. */
static int binary(parser_t *ps, op_t op, int a, int b)
{
    bool want_bool = op == OP_AND || op == OP_OR;
    bool result_bool = op >= OP_LT;

    if (a < 0 || b < 0)
        return -1;
    if (op == OP_EQ || op == OP_NE) {
        if (is_bool(ps, a) != is_bool(ps, b))
            return fail(ps, ERR_RESIL_EXPR, "'==' and '!=' need operands of one type");
    } else if (is_bool(ps, a) != want_bool || is_bool(ps, b) != want_bool) {
        return fail(ps, ERR_RESIL_EXPR,
                    want_bool ? "'&&' and '||' need booleans"
                              : "arithmetic and comparisons need "
                                "numbers");
    }
    return add(ps, op, result_bool, a, b, 0);
}

static int parse_mul(parser_t *ps)
{
    int a = parse_unary(ps);
    while (a >= 0) {
        op_t op;
        if (eat(ps, "*"))
            op = OP_MUL;
        else if (eat(ps, "/"))
            op = OP_DIV;
        else if (eat(ps, "%"))
            op = OP_MOD;
        else
            break;
        a = binary(ps, op, a, parse_unary(ps));
    }
    return a;
}

static int parse_add(parser_t *ps)
{
    int a = parse_mul(ps);
    while (a >= 0) {
        op_t op;
        if (eat(ps, "+"))
            op = OP_ADD;
        else if (eat(ps, "-"))
            op = OP_SUB;
        else
            break;
        a = binary(ps, op, a, parse_mul(ps));
    }
    return a;
}

/* CEL's relations do not chain ("a < b < c" is a type error): one comparison at most. */
static int parse_rel(parser_t *ps)
{
    int a = parse_add(ps);
    op_t op;

    if (a < 0)
        return -1;
    if (eat(ps, "<="))
        op = OP_LE;
    else if (eat(ps, ">="))
        op = OP_GE;
    else if (eat(ps, "=="))
        op = OP_EQ;
    else if (eat(ps, "!="))
        op = OP_NE;
    else if (eat(ps, "<"))
        op = OP_LT;
    else if (eat(ps, ">"))
        op = OP_GT;
    else
        return a;
    return binary(ps, op, a, parse_add(ps));
}

static int parse_and(parser_t *ps)
{
    int a = parse_rel(ps);
    while (a >= 0 && eat(ps, "&&"))
        a = binary(ps, OP_AND, a, parse_rel(ps));
    return a;
}

static int parse_or(parser_t *ps)
{
    int a = parse_and(ps);
    while (a >= 0 && eat(ps, "||"))
        a = binary(ps, OP_OR, a, parse_and(ps));
    return a;
}

int resil_expr_compile(const char *src, size_t len, resil_expr_t **out, err_detail_t *d)
{
    parser_t ps = {src, src, src + len, NULL, 0, d, 0};
    int root;

    if (src == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "no expression");
    if (len > RESIL_TRIP_MAX_BYTES)
        return err_set(d, ERR_TOO_LARGE, "expression longer than %d bytes", RESIL_TRIP_MAX_BYTES);
    if (memchr(src, '\0', len) != NULL)
        return err_set(d, ERR_RESIL_EXPR, "NUL byte in expression");
    ps.e = mem_calloc(sizeof(*ps.e));
    root = parse_or(&ps);
    if (root >= 0) {
        skip_ws(&ps);
        if (ps.p != ps.end)
            root = fail(&ps, ERR_RESIL_EXPR, "unexpected text after the expression");
        else if (!is_bool(&ps, root))
            root = fail(&ps, ERR_RESIL_EXPR, "the expression must be a condition (true/false)");
    }
    if (root < 0) {
        mem_free(ps.e);
        return ps.rc ? ps.rc : err_set(d, ERR_RESIL_EXPR, "invalid expression");
    }
    ps.e->root = root;
    *out = ps.e;
    return 0;
}

void resil_expr_free(resil_expr_t *e)
{
    mem_free(e);
}

/* Evaluates node @p i; returns 0 or ERR_RESIL_EXPR. Nodes only refer to earlier nodes, so the
 * recursion depth is bounded by the parser's depth limit times the operators per level. */
static int eval(const resil_expr_t *e, int i, const resil_counts_t *c, int64_t *v)
{
    const node_t *n = &e->n[i];
    int64_t a = 0, b = 0;
    int rc;

    switch (n->op) {
    case OP_INT:
    case OP_BOOL:
        *v = n->v;
        return 0;
    case OP_VAR: {
        uint64_t x = n->v == 0   ? c->requests
                     : n->v == 1 ? c->total_successes
                     : n->v == 2 ? c->total_failures
                     : n->v == 3 ? c->consecutive_successes
                                 : c->consecutive_failures;
        if (x > INT64_MAX)
            return ERR_RESIL_EXPR;
        *v = (int64_t)x;
        return 0;
    }
    default:
        break;
    }
    rc = eval(e, n->a, c, &a);
    if (rc < 0)
        return rc;
    /* && and || short-circuit as in CEL. */
    if (n->op == OP_AND && !a) {
        *v = 0;
        return 0;
    }
    if (n->op == OP_OR && a) {
        *v = 1;
        return 0;
    }
    if (n->b >= 0) {
        rc = eval(e, n->b, c, &b);
        if (rc < 0)
            return rc;
    }
    switch (n->op) {
    case OP_NOT:
        *v = !a;
        return 0;
    case OP_NEG:
        if (a == INT64_MIN)
            return ERR_RESIL_EXPR;
        *v = -a;
        return 0;
    case OP_MUL:
        return __builtin_mul_overflow(a, b, v) ? ERR_RESIL_EXPR : 0;
    case OP_ADD:
        return __builtin_add_overflow(a, b, v) ? ERR_RESIL_EXPR : 0;
    case OP_SUB:
        return __builtin_sub_overflow(a, b, v) ? ERR_RESIL_EXPR : 0;
    case OP_DIV:
    case OP_MOD:
        if (b == 0 || (a == INT64_MIN && b == -1))
            return ERR_RESIL_EXPR;
        *v = n->op == OP_DIV ? a / b : a % b;
        return 0;
    case OP_LT:
        *v = a < b;
        return 0;
    case OP_LE:
        *v = a <= b;
        return 0;
    case OP_GT:
        *v = a > b;
        return 0;
    case OP_GE:
        *v = a >= b;
        return 0;
    case OP_EQ:
        *v = a == b;
        return 0;
    case OP_NE:
        *v = a != b;
        return 0;
    case OP_AND:
    case OP_OR:
        *v = b != 0;
        return 0;
    default:
        return ERR_RESIL_EXPR;
    }
}

int resil_expr_eval(const resil_expr_t *e, const resil_counts_t *c, bool *out)
{
    int64_t v = 0;
    int rc;

    if (e == NULL || c == NULL || out == NULL)
        return ERR_INVAL;
    rc = eval(e, e->root, c, &v);
    if (rc == 0)
        *out = v != 0;
    return rc;
}
