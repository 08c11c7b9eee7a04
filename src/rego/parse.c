/*
 * parse.c — the Rego lexer and parser: module text to AST (rego_int.h), for both syntaxes.
 *
 * v1 (OPA 1.x) and v0 differ in rule heads (`p { }` and `p[x] { }` in v0; `if`/`contains` in v1)
 * and in which keywords exist: v0 turns on `if`, `in`, `contains`, `every` only through
 * `import future.keywords…` or `import rego.v1`. Errors jump out through rego__cfail with
 * OPA's rego_parse_error and the position.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/str.h"
#include "rego/rego_int.h"

enum tok { TK_EOF, TK_IDENT, TK_STRING, TK_NUMBER, TK_OP };

enum kw { KW_IF = 1, KW_IN = 2, KW_CONTAINS = 4, KW_EVERY = 8, KW_ALL = 15 };

typedef struct tok_s {
    enum tok kind;
    const char *p; /* start in the source */
    size_t n;      /* bytes */
    uint32_t line, col;
    bool nl;   /* a newline precedes it */
    bool ws;   /* whitespace precedes it */
    char *str; /* TK_STRING: decoded */
    size_t slen;
    double num;
} tok_t;

typedef struct parser {
    rego__cctx_t *c;
    const char *file;
    const char *src, *end, *cur;
    uint32_t line, col;
    tok_t t, peek; /* current token and one of lookahead */
    bool have_peek;
    unsigned kw; /* enum kw bits */
    bool v1;
    bool nlsens; /* newlines end literals here */
    bool nobar;  /* a top-level "|" ends the term (first element of a collection) */
    int depth;
} parser_t;

_Noreturn void rego__cfail(rego__cctx_t *c, const char *opa_code, const char *file, uint32_t line,
                           uint32_t col, const char *fmt, ...)
{
    va_list ap;
    char msg[200];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (line > 0)
        err_set(c->detail, 0, "%s:%u:%u: %s: %s", file != NULL ? file : "", line, col, opa_code,
                msg);
    else
        err_set(c->detail, 0, "%s: %s", opa_code, msg);
    c->opa_code = opa_code;
    c->code = strcmp(opa_code, "rego_parse_error") == 0 ? ERR_REGO_PARSE : ERR_REGO_COMPILE;
    longjmp(c->jb, 1);
}

#define PFAIL(p, tk, ...)                                                                          \
    rego__cfail((p)->c, "rego_parse_error", (p)->file, (tk).line, (tk).col, __VA_ARGS__)

static void *palloc(parser_t *p, size_t n)
{
    void *r = rego__alloc(p->c->arena, n);
    memset(r, 0, n);
    return r;
}

/* ---- lexer ---- */

static void advance(parser_t *p, size_t n)
{
    for (size_t i = 0; i < n && p->cur < p->end; i++) {
        if (*p->cur == '\n') {
            p->line++;
            p->col = 1;
        } else {
            p->col++;
        }
        p->cur++;
    }
}

static const char *const ops2[] = {":=", "==", "!=", "<=", ">=", NULL};

static void lex(parser_t *p, tok_t *t)
{
    bool nl = false, ws = false;
    memset(t, 0, sizeof(*t));
    for (;;) {
        if (p->cur >= p->end)
            break;
        char ch = *p->cur;
        if (ch == '\n') {
            nl = ws = true;
            advance(p, 1);
        } else if (ch == ' ' || ch == '\t' || ch == '\r') {
            ws = true;
            advance(p, 1);
        } else if (ch == '#') {
            while (p->cur < p->end && *p->cur != '\n')
                advance(p, 1);
        } else {
            break;
        }
    }
    t->nl = nl;
    t->ws = ws;
    t->line = p->line;
    t->col = p->col;
    t->p = p->cur;
    if (p->cur >= p->end) {
        t->kind = TK_EOF;
        return;
    }
    char ch = *p->cur;
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_') {
        const char *s = p->cur;
        while (s < p->end && ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                              (*s >= '0' && *s <= '9') || *s == '_'))
            s++;
        t->kind = TK_IDENT;
        t->n = (size_t)(s - p->cur);
        advance(p, t->n);
        return;
    }
    if (ch >= '0' && ch <= '9') {
        const char *s = p->cur;
        char tmp[128];
        while (s < p->end && ((*s >= '0' && *s <= '9') || *s == '.' || *s == 'e' || *s == 'E' ||
                              ((*s == '+' || *s == '-') && (s[-1] == 'e' || s[-1] == 'E'))))
            s++;
        t->n = (size_t)(s - p->cur);
        if (t->n >= sizeof(tmp))
            PFAIL(p, *t, "number too long");
        memcpy(tmp, p->cur, t->n);
        tmp[t->n] = '\0';
        char *endp = NULL;
        t->num = strtod(tmp, &endp);
        if (endp != tmp + t->n)
            PFAIL(p, *t, "invalid number");
        t->kind = TK_NUMBER;
        advance(p, t->n);
        return;
    }
    if (ch == '"') {
        const char *s = p->cur + 1;
        char *o = rego__alloc(p->c->arena, (size_t)(p->end - s) + 4);
        size_t on = 0;
        while (s < p->end && *s != '"') {
            if (*s == '\n')
                PFAIL(p, *t, "non-terminated string");
            if (*s != '\\') {
                o[on++] = *s++;
                continue;
            }
            s++;
            if (s >= p->end)
                break;
            char e = *s++;
            int c = rego__escape_char(e);
            if (c >= 0) {
                o[on++] = (char)c;
                continue;
            }
            if (e != 'u')
                PFAIL(p, *t, "invalid escape sequence");
            int cp = p->end - s >= 4 ? rego__hex4(s) : -1;
            if (cp < 0)
                PFAIL(p, *t, "invalid \\u escape");
            s += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && s + 6 <= p->end && s[0] == '\\' && s[1] == 'u') {
                int lo = rego__hex4(s + 2);
                if (lo >= 0xDC00 && lo < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    s += 6;
                }
            }
            on += rego__utf8_put(o + on, (unsigned)cp);
        }
        if (s >= p->end)
            PFAIL(p, *t, "non-terminated string");
        o[on] = '\0';
        t->kind = TK_STRING;
        t->str = o;
        t->slen = on;
        t->n = (size_t)(s + 1 - p->cur);
        advance(p, t->n);
        return;
    }
    if (ch == '`') {
        const char *s = p->cur + 1;
        while (s < p->end && *s != '`')
            s++;
        if (s >= p->end)
            PFAIL(p, *t, "non-terminated raw string");
        t->kind = TK_STRING;
        t->slen = (size_t)(s - p->cur - 1);
        t->str = rego__strndup(p->c->arena, p->cur + 1, t->slen);
        t->n = (size_t)(s + 1 - p->cur);
        advance(p, t->n);
        return;
    }
    for (int i = 0; ops2[i] != NULL; i++) {
        if (p->end - p->cur >= 2 && memcmp(p->cur, ops2[i], 2) == 0) {
            t->kind = TK_OP;
            t->n = 2;
            advance(p, 2);
            return;
        }
    }
    if (strchr("{}[]().,;:=<>+-*/%|&", ch) != NULL) {
        t->kind = TK_OP;
        t->n = 1;
        advance(p, 1);
        return;
    }
    PFAIL(p, *t, "unexpected character '%c'", ch);
}

static void next(parser_t *p)
{
    if (p->have_peek) {
        p->t = p->peek;
        p->have_peek = false;
    } else {
        lex(p, &p->t);
    }
}

static __attribute__((unused)) tok_t *peek(parser_t *p)
{
    if (!p->have_peek) {
        lex(p, &p->peek);
        p->have_peek = true;
    }
    return &p->peek;
}

static bool is_op(const tok_t *t, const char *op)
{
    return t->kind == TK_OP && t->n == strlen(op) && memcmp(t->p, op, t->n) == 0;
}

static bool is_ident(const tok_t *t, const char *s)
{
    return t->kind == TK_IDENT && t->n == strlen(s) && memcmp(t->p, s, t->n) == 0;
}

/* A keyword directly followed by '.' or '[' is a name (`as.foo := 1`, `foo.contains`). */
static bool followed_by_ref(const parser_t *p, const tok_t *t)
{
    const char *after = t->p + t->n;
    return after < p->end && (*after == '.' || *after == '[' || *after == '(');
}

static bool is_kw(parser_t *p, const tok_t *t, unsigned kw, const char *s)
{
    return (p->kw & kw) != 0 && is_ident(t, s) && !followed_by_ref(p, t);
}

static bool kwtok(parser_t *p, const char *s)
{
    return is_ident(&p->t, s) && !followed_by_ref(p, &p->t);
}

static void expect(parser_t *p, const char *op)
{
    if (!is_op(&p->t, op))
        PFAIL(p, p->t, "expected %s", op);
    next(p);
}

static bool reserved(parser_t *p, const tok_t *t)
{
    static const char *const words[] = {"not",     "with",    "as",     "else", "some",
                                        "default", "package", "import", NULL};
    if (followed_by_ref(p, t))
        return false;
    for (int i = 0; words[i] != NULL; i++)
        if (is_ident(t, words[i]))
            return true;
    return is_kw(p, t, KW_IF, "if") || is_kw(p, t, KW_IN, "in") ||
           is_kw(p, t, KW_CONTAINS, "contains") || is_kw(p, t, KW_EVERY, "every");
}

/* ---- terms ---- */

static rego__term_t *mk(parser_t *p, int kind, const tok_t *at)
{
    rego__term_t *t = palloc(p, sizeof(*t));
    t->kind = (uint8_t)kind;
    t->line = at->line;
    t->col = at->col;
    t->slot = -1;
    return t;
}

static rego__term_t *mk_val(parser_t *p, rv_t *v, const tok_t *at)
{
    rego__term_t *t = mk(p, T_VAL, at);
    t->val = v;
    return t;
}

static rego__term_t *mk_call(parser_t *p, const char *name, rego__term_t **args, uint32_t n,
                             const tok_t *at)
{
    rego__term_t *t = mk(p, T_CALL, at);
    t->name = name;
    t->items = args;
    t->n = n;
    return t;
}

typedef struct tvec {
    rego__term_t **v;
    uint32_t n, cap;
} tvec_t;

static void tpush(parser_t *p, tvec_t *tv, rego__term_t *t)
{
    if (tv->n == tv->cap) {
        uint32_t cap = tv->cap < 4 ? 4 : tv->cap * 2;
        rego__term_t **nv = rego__alloc(p->c->arena, cap * sizeof(*nv));
        if (tv->n > 0)
            memcpy(nv, tv->v, tv->n * sizeof(*nv));
        tv->v = nv;
        tv->cap = cap;
    }
    tv->v[tv->n++] = t;
}

static rego__term_t *parse_in(parser_t *p);
static rego__term_t *parse_or(parser_t *p);
static rego__term_t *parse_and(parser_t *p);
static rego__body_t parse_body_until(parser_t *p, const char *close);
static rego__expr_t *parse_literal(parser_t *p);

static void enter(parser_t *p)
{
    if (++p->depth > REGO_MAX_NESTING)
        PFAIL(p, p->t, "nesting too deep");
}

/* Parses ref continuations (.x, [e], (args)) that follow a term without whitespace. */
static rego__term_t *parse_ref_tail(parser_t *p, rego__term_t *head)
{
    tvec_t path = {0};
    rego__term_t *t = head;

    for (;;) {
        if (p->t.ws)
            break;
        if (is_op(&p->t, ".")) {
            next(p);
            if (p->t.kind != TK_IDENT || p->t.ws)
                PFAIL(p, p->t, "expected a name after '.'");
            rego__term_t *k = mk_val(p, rego__str(p->c->arena, p->t.p, p->t.n), &p->t);
            tpush(p, &path, k);
            next(p);
        } else if (is_op(&p->t, "[")) {
            bool sens = p->nlsens, nobar = p->nobar;
            p->nlsens = false;
            p->nobar = false;
            next(p);
            rego__term_t *k = parse_in(p);
            k->bracket = true;
            p->nlsens = sens;
            p->nobar = nobar;
            expect(p, "]");
            tpush(p, &path, k);
        } else if (is_op(&p->t, "(") && (head->kind == T_VAR || head->kind == T_REF)) {
            /* A call: the name is the ref so far, which must be all names. */
            char name[256];
            size_t nn = 0;
            if (t != head || head->kind != T_VAR)
                PFAIL(p, p->t, "unexpected '('");
            nn = (size_t)snprintf(name, sizeof(name), "%s", head->name);
            for (uint32_t i = 0; i < path.n; i++) {
                rego__term_t *k = path.v[i];
                if (k->kind != T_VAL || k->val->kind != REGO_STRING)
                    PFAIL(p, p->t, "invalid function name");
                nn += (size_t)snprintf(name + nn, sizeof(name) - (nn < sizeof(name) ? nn : 0),
                                       ".%s", k->val->str);
                if (nn >= sizeof(name))
                    PFAIL(p, p->t, "function name too long");
            }
            bool sens = p->nlsens, nobar = p->nobar;
            p->nlsens = false;
            p->nobar = false;
            next(p);
            tvec_t args = {0};
            while (!is_op(&p->t, ")")) {
                tpush(p, &args, parse_in(p));
                if (is_op(&p->t, ","))
                    next(p);
                else if (!is_op(&p->t, ")"))
                    PFAIL(p, p->t, "expected ',' or ')'");
            }
            p->nlsens = sens;
            p->nobar = nobar;
            next(p);
            rego__term_t *call;
            if (strcmp(name, "set") == 0 && args.n == 0) {
                call = mk(p, T_SET, &p->t);
                call->line = head->line;
                call->col = head->col;
            } else {
                call = mk_call(p, rego__strndup(p->c->arena, name, nn), args.v, args.n, &p->t);
                call->line = head->line;
                call->col = head->col;
            }
            path.n = 0;
            t = head = call;
            continue;
        } else {
            break;
        }
        (void)t;
    }
    if (path.n == 0)
        return head;
    rego__term_t *r = mk(p, T_REF, &p->t);
    r->line = head->line;
    r->col = head->col;
    r->head = head;
    r->items = path.v;
    r->n = path.n;
    return r;
}

static rego__term_t *parse_coll_inner(parser_t *p, bool square, const tok_t *atp, tvec_t *itemsp);

static rego__term_t *parse_comp_or_coll(parser_t *p, bool square)
{
    tok_t at = p->t;
    bool sens = p->nlsens, nobar = p->nobar;
    tvec_t items = {0};
    rego__term_t *t;

    p->nlsens = false;
    next(p);
    t = parse_coll_inner(p, square, &at, &items);
    p->nlsens = sens;
    p->nobar = nobar;
    return t;
}

static rego__term_t *parse_coll_inner(parser_t *p, bool square, const tok_t *atp, tvec_t *itemsp)
{
    tok_t at = *atp;
    tvec_t items = *itemsp;
    rego__term_t *t;
    const char *close = square ? "]" : "}";
    if (is_op(&p->t, close)) {
        next(p);
        t = mk(p, square ? T_ARR : T_OBJ, &at);
        return t;
    }
    p->nobar = true;
    rego__term_t *first = parse_in(p);
    if (!square && is_op(&p->t, ":")) {
        next(p);
        rego__term_t *val = parse_in(p);
        p->nobar = false;
        if (is_op(&p->t, "|")) {
            next(p);
            t = mk(p, T_OCOMP, &at);
            t->key = first;
            t->head = val;
            t->body = parse_body_until(p, "}");
            return t;
        }
        tpush(p, &items, first);
        tpush(p, &items, val);
        while (is_op(&p->t, ",")) {
            next(p);
            if (is_op(&p->t, "}"))
                break;
            tpush(p, &items, parse_in(p));
            expect(p, ":");
            tpush(p, &items, parse_in(p));
        }
        expect(p, "}");
        t = mk(p, T_OBJ, &at);
        t->items = items.v;
        t->n = items.n / 2;
        return t;
    }
    p->nobar = false;
    if (is_op(&p->t, "|")) {
        next(p);
        t = mk(p, square ? T_ACOMP : T_SCOMP, &at);
        t->head = first;
        t->body = parse_body_until(p, close);
        return t;
    }
    tpush(p, &items, first);
    while (is_op(&p->t, ",")) {
        next(p);
        if (is_op(&p->t, close))
            break;
        tpush(p, &items, parse_in(p));
    }
    expect(p, close);
    t = mk(p, square ? T_ARR : T_SET, &at);
    t->items = items.v;
    t->n = items.n;
    return t;
}

static rego__term_t *parse_term(parser_t *p)
{
    tok_t at = p->t;
    rego__term_t *t = NULL;

    enter(p);
    switch (p->t.kind) {
    case TK_NUMBER:
        t = mk_val(p, rego__num_text(p->c->arena, p->t.num, p->t.p, p->t.n), &at);
        next(p);
        break;
    case TK_STRING:
        t = mk_val(p, rego__str_own(p->c->arena, p->t.str, p->t.slen), &at);
        next(p);
        break;
    case TK_IDENT:
        if (kwtok(p, "true")) {
            t = mk_val(p, &rego__true, &at);
        } else if (kwtok(p, "false")) {
            t = mk_val(p, &rego__false, &at);
        } else if (kwtok(p, "null")) {
            t = mk_val(p, &rego__null, &at);
        } else {
            if (reserved(p, &p->t))
                PFAIL(p, p->t, "unexpected keyword %.*s", (int)p->t.n, p->t.p);
            t = mk(p, T_VAR, &at);
            t->name = rego__strndup(p->c->arena, p->t.p, p->t.n);
            t->wild = strcmp(t->name, "_") == 0;
        }
        next(p);
        break;
    case TK_OP:
        if (is_op(&p->t, "[") || is_op(&p->t, "{")) {
            t = parse_comp_or_coll(p, is_op(&p->t, "["));
        } else if (is_op(&p->t, "(")) {
            bool sens = p->nlsens, nobar = p->nobar;
            p->nlsens = false;
            p->nobar = false;
            next(p);
            t = parse_in(p);
            if (is_op(&p->t, ",")) {
                next(p);
                rego__term_t **args = palloc(p, 3 * sizeof(*args));
                args[0] = t;
                args[1] = parse_or(p);
                if (!is_kw(p, &p->t, KW_IN, "in"))
                    PFAIL(p, p->t, "expected in");
                next(p);
                args[2] = parse_or(p);
                t = mk_call(p, "internal.member_3", args, 3, &at);
            }
            p->nlsens = sens;
            p->nobar = nobar;
            expect(p, ")");
        } else if (is_op(&p->t, "-")) {
            next(p);
            if (p->t.kind == TK_NUMBER && !p->t.ws) {
                /* The text from the '-' on, so long negative literals stay exact. */
                t = mk_val(
                    p,
                    rego__num_text(p->c->arena, -p->t.num, at.p, (size_t)(p->t.p + p->t.n - at.p)),
                    &at);
                next(p);
            } else {
                rego__term_t **args = palloc(p, 2 * sizeof(*args));
                args[0] = mk_val(p, rego__num(p->c->arena, 0), &at);
                args[1] = parse_term(p);
                t = mk_call(p, "minus", args, 2, &at);
                p->depth--;
                return t;
            }
        } else {
            PFAIL(p, p->t, "unexpected %.*s", (int)p->t.n, p->t.p);
        }
        break;
    default:
        PFAIL(p, p->t, "unexpected end of input");
    }
    t = parse_ref_tail(p, t);
    p->depth--;
    return t;
}

/* An infix operator continues the expression unless a newline separates it (in bodies). */
static bool infix(parser_t *p, const char *op)
{
    if (!is_op(&p->t, op))
        return false;
    if (p->nlsens && p->t.nl)
        return false;
    return true;
}

static rego__term_t *binop(parser_t *p, const char *fn, rego__term_t *a, rego__term_t *b,
                           const tok_t *at)
{
    rego__term_t **args = palloc(p, 2 * sizeof(*args));
    args[0] = a;
    args[1] = b;
    rego__term_t *t = mk_call(p, fn, args, 2, at);
    t->line = a->line;
    t->col = a->col;
    return t;
}

static rego__term_t *parse_factor(parser_t *p)
{
    rego__term_t *t = parse_term(p);
    for (;;) {
        tok_t at = p->t;
        const char *fn = infix(p, "*")   ? "mul"
                         : infix(p, "/") ? "div"
                         : infix(p, "%") ? "rem"
                                         : NULL;
        if (fn == NULL)
            return t;
        next(p);
        t = binop(p, fn, t, parse_term(p), &at);
    }
}

static rego__term_t *parse_arith(parser_t *p)
{
    rego__term_t *t = parse_factor(p);
    for (;;) {
        tok_t at = p->t;
        const char *fn = infix(p, "+") ? "plus" : infix(p, "-") ? "minus" : NULL;
        if (fn == NULL)
            return t;
        next(p);
        t = binop(p, fn, t, parse_factor(p), &at);
    }
}

static rego__term_t *parse_rel(parser_t *p)
{
    rego__term_t *t = parse_arith(p);
    for (;;) {
        tok_t at = p->t;
        const char *fn = infix(p, "==")   ? "equal"
                         : infix(p, "!=") ? "neq"
                         : infix(p, "<=") ? "lte"
                         : infix(p, ">=") ? "gte"
                         : infix(p, "<")  ? "lt"
                         : infix(p, ">")  ? "gt"
                                          : NULL;
        if (fn == NULL)
            return t;
        next(p);
        t = binop(p, fn, t, parse_arith(p), &at);
    }
}

static rego__term_t *parse_and(parser_t *p)
{
    rego__term_t *t = parse_rel(p);
    while (infix(p, "&")) {
        tok_t at = p->t;
        next(p);
        t = binop(p, "and", t, parse_rel(p), &at);
    }
    return t;
}

static rego__term_t *parse_or(parser_t *p)
{
    rego__term_t *t = parse_and(p);
    while (!p->nobar && infix(p, "|")) {
        tok_t at = p->t;
        next(p);
        t = binop(p, "or", t, parse_and(p), &at);
    }
    return t;
}

static rego__term_t *parse_in(parser_t *p)
{
    rego__term_t *t = parse_or(p);
    while (is_kw(p, &p->t, KW_IN, "in") && !(p->nlsens && p->t.nl)) {
        tok_t at = p->t;
        next(p);
        t = binop(p, "internal.member_2", t, parse_or(p), &at);
    }
    return t;
}

/* ---- bodies ---- */

typedef struct evec {
    rego__expr_t **v;
    uint32_t n, cap;
} evec_t;

static void epush(parser_t *p, evec_t *ev, rego__expr_t *e)
{
    if (ev->n == ev->cap) {
        uint32_t cap = ev->cap < 4 ? 4 : ev->cap * 2;
        rego__expr_t **nv = rego__alloc(p->c->arena, cap * sizeof(*nv));
        if (ev->n > 0)
            memcpy(nv, ev->v, ev->n * sizeof(*nv));
        ev->v = nv;
        ev->cap = cap;
    }
    ev->v[ev->n++] = e;
}

static rego__expr_t *mk_expr(parser_t *p, int kind, const tok_t *at)
{
    rego__expr_t *e = palloc(p, sizeof(*e));
    e->kind = (uint8_t)kind;
    e->line = at->line;
    e->col = at->col;
    return e;
}

/* Parses literals separated by ';' or newlines until @p close (consumed). */
static rego__body_t parse_body_until(parser_t *p, const char *close)
{
    evec_t ev = {0};
    bool sens = p->nlsens;
    rego__body_t b;

    p->nlsens = true;
    for (;;) {
        while (is_op(&p->t, ";"))
            next(p);
        if (is_op(&p->t, close))
            break;
        if (p->t.kind == TK_EOF)
            PFAIL(p, p->t, "expected %s", close);
        epush(p, &ev, parse_literal(p));
        if (!is_op(&p->t, ";") && !is_op(&p->t, close) && !p->t.nl)
            PFAIL(p, p->t, "unexpected %.*s", (int)p->t.n, p->t.p);
    }
    next(p);
    p->nlsens = sens;
    if (ev.n == 0)
        PFAIL(p, p->t, "found empty body");
    b.e = ev.v;
    b.n = ev.n;
    return b;
}

static void parse_with(parser_t *p, rego__expr_t *e)
{
    rego__with_t tmp[32];
    uint32_t n = 0;
    memset(tmp, 0, sizeof(tmp));
    while (kwtok(p, "with")) {
        if (n == 32)
            PFAIL(p, p->t, "too many with modifiers");
        next(p);
        tmp[n].target = parse_term(p);
        if (!kwtok(p, "as"))
            PFAIL(p, p->t, "expected as");
        next(p);
        tmp[n].value = parse_in(p);
        n++;
    }
    if (n > 0) {
        e->with = palloc(p, n * sizeof(*e->with));
        memcpy(e->with, tmp, n * sizeof(*tmp));
        e->nwith = n;
    }
}

static rego__expr_t *parse_literal(parser_t *p)
{
    tok_t at = p->t;
    rego__expr_t *e;

    enter(p);
    if (kwtok(p, "not")) {
        next(p);
        e = mk_expr(p, E_NOT, &at);
        e->inner = parse_literal(p);
        p->depth--;
        return e;
    }
    if (kwtok(p, "some")) {
        next(p);
        rego__term_t *a = parse_or(p), *b = NULL;
        if (is_op(&p->t, ",") && !(p->t.nl && false)) {
            /* some x, y (declarations) or some k, v in xs */
            tvec_t vars = {0};
            tpush(p, &vars, a);
            while (is_op(&p->t, ",")) {
                next(p);
                tpush(p, &vars, parse_or(p));
            }
            if (is_kw(p, &p->t, KW_IN, "in")) {
                if (vars.n != 2)
                    PFAIL(p, p->t, "unexpected in");
                a = vars.v[0];
                b = vars.v[1];
            } else {
                e = mk_expr(p, E_SOME, &at);
                e->c = mk(p, T_ARR, &at);
                e->c->items = vars.v;
                e->c->n = vars.n;
                p->depth--;
                return e;
            }
        }
        if (is_kw(p, &p->t, KW_IN, "in")) {
            next(p);
            e = mk_expr(p, E_SOMEIN, &at);
            if (b != NULL) {
                e->a = a;
                e->b = b;
            } else {
                e->b = a;
            }
            e->c = parse_or(p);
            parse_with(p, e);
            p->depth--;
            return e;
        }
        e = mk_expr(p, E_SOME, &at);
        e->c = mk(p, T_ARR, &at);
        e->c->items = palloc(p, sizeof(rego__term_t *));
        e->c->items[0] = a;
        e->c->n = 1;
        p->depth--;
        return e;
    }
    if (is_kw(p, &p->t, KW_EVERY, "every")) {
        next(p);
        e = mk_expr(p, E_EVERY, &at);
        rego__term_t *a = parse_term(p);
        if (is_op(&p->t, ",")) {
            next(p);
            e->a = a;
            e->b = parse_term(p);
        } else {
            e->b = a;
        }
        if (!is_kw(p, &p->t, KW_IN, "in"))
            PFAIL(p, p->t, "expected in");
        next(p);
        e->c = parse_or(p);
        if (!is_op(&p->t, "{"))
            PFAIL(p, p->t, "expected {");
        next(p);
        e->body = parse_body_until(p, "}");
        parse_with(p, e);
        p->depth--;
        return e;
    }
    rego__term_t *t = parse_in(p);
    if (is_op(&p->t, ",") && p->nlsens) {
        /* k, v in xs */
        next(p);
        rego__term_t *v = parse_or(p);
        if (!is_kw(p, &p->t, KW_IN, "in"))
            PFAIL(p, p->t, "expected in");
        next(p);
        rego__term_t **args = palloc(p, 3 * sizeof(*args));
        args[0] = t;
        args[1] = v;
        args[2] = parse_or(p);
        t = mk_call(p, "internal.member_3", args, 3, &at);
        while (is_kw(p, &p->t, KW_IN, "in") && !(p->nlsens && p->t.nl)) {
            tok_t iat = p->t;
            next(p);
            t = binop(p, "internal.member_2", t, parse_or(p), &iat);
        }
    }
    if ((is_op(&p->t, "=") || is_op(&p->t, ":=")) && !(p->t.nl && p->nlsens)) {
        e = mk_expr(p, E_UNIFY, &at);
        e->assign = is_op(&p->t, ":=");
        next(p);
        e->a = t;
        e->b = parse_in(p);
    } else {
        e = mk_expr(p, E_TERM, &at);
        e->a = t;
    }
    parse_with(p, e);
    p->depth--;
    return e;
}

/* ---- module ---- */

typedef struct rvec {
    rego__rule_t **v;
    uint32_t n, cap;
} rvec_t;

static void rpush(parser_t *p, rvec_t *rv, rego__rule_t *r)
{
    if (rv->n == rv->cap) {
        uint32_t cap = rv->cap < 8 ? 8 : rv->cap * 2;
        rego__rule_t **nv = rego__alloc(p->c->arena, cap * sizeof(*nv));
        if (rv->n > 0)
            memcpy(nv, rv->v, rv->n * sizeof(*nv));
        rv->v = nv;
        rv->cap = cap;
    }
    rv->v[rv->n++] = r;
}

static rego__body_t true_body(parser_t *p, const tok_t *at)
{
    rego__body_t b;
    b.e = palloc(p, sizeof(*b.e));
    b.e[0] = mk_expr(p, E_TERM, at);
    b.e[0]->a = mk_val(p, &rego__true, at);
    b.n = 1;
    return b;
}

/* Parses what follows a head: `if` and/or a body, or nothing. */
/* `if {` starts a body, unless what follows only parses as a term (`if {x: 1 | …}`): then
 * this returns false with the parser backed up to the '{', to read one literal instead. */
static bool try_body(parser_t *p, rego__body_t *out)
{
    parser_t saved = *p;
    jmp_buf outer;
    bool ok = false;
    memcpy(&outer, &p->c->jb, sizeof(outer));
    if (setjmp(p->c->jb) == 0) {
        next(p);
        *out = parse_body_until(p, "}");
        ok = true;
    } else {
        *p = saved;
    }
    memcpy(&p->c->jb, &outer, sizeof(outer));
    return ok;
}

static rego__body_t parse_rule_body(parser_t *p, const tok_t *at, bool *had)
{
    bool kw_if = false;
    *had = false;
    if (is_kw(p, &p->t, KW_IF, "if")) {
        kw_if = true;
        next(p);
    }
    if (is_op(&p->t, "{") && kw_if) {
        rego__body_t b;
        if (try_body(p, &b)) {
            *had = true;
            return b;
        }
    } else if (is_op(&p->t, "{") && !p->t.nl) {
        next(p);
        *had = true;
        return parse_body_until(p, "}");
    }
    if (kw_if) {
        rego__body_t b;
        bool sens = p->nlsens;
        p->nlsens = true;
        b.e = palloc(p, sizeof(*b.e));
        b.e[0] = parse_literal(p);
        b.n = 1;
        p->nlsens = sens;
        *had = true;
        return b;
    }
    return true_body(p, at);
}

static void split_head(parser_t *p, rego__term_t *h, rego__rule_t *r, const char ***path,
                       uint32_t *npath)
{
    rego__term_t **items = NULL;
    uint32_t n = 0, i;
    const char **ps;

    if (h->kind == T_VAR) {
        ps = palloc(p, sizeof(*ps));
        ps[0] = h->name;
        *path = ps;
        *npath = 1;
        return;
    }
    if (h->kind != T_REF || h->head->kind != T_VAR)
        rego__cfail(p->c, "rego_parse_error", p->file, h->line, h->col, "invalid rule head");
    items = h->items;
    n = h->n;
    ps = palloc(p, (n + 1) * sizeof(*ps));
    ps[0] = h->head->name;
    for (i = 0; i < n; i++) {
        if (items[i]->kind != T_VAL || items[i]->val->kind != REGO_STRING)
            break;
        ps[i + 1] = items[i]->val->str;
    }
    *path = ps;
    *npath = i + 1;
    r->keys = items + i;
    r->nkeys = n - i;
}

static rego__rule_t *parse_rule(parser_t *p, rego__module_t *m, const char ***path, uint32_t *npath)
{
    tok_t at = p->t;
    rego__rule_t *r = palloc(p, sizeof(*r));
    bool is_default = false, had = false;

    r->line = at.line;
    r->col = at.col;
    r->file = p->file;
    r->mod = m;
    if (kwtok(p, "default")) {
        is_default = true;
        next(p);
    }
    p->nlsens = true;
    if (p->t.kind != TK_IDENT)
        PFAIL(p, p->t, "expected a rule name");
    rego__term_t *h = parse_term(p);
    if (h->kind == T_CALL) {
        r->kind = R_FUNC;
        r->args = h->items;
        r->nargs = h->n;
        /* Rebuild the name as a ref path. */
        const char *name = h->name;
        uint32_t cnt = 1;
        for (const char *s = name; *s; s++)
            cnt += *s == '.';
        const char **ps = palloc(p, cnt * sizeof(*ps));
        uint32_t k = 0;
        const char *s = name;
        while (k < cnt) {
            const char *dot = strchr(s, '.');
            size_t len = dot != NULL ? (size_t)(dot - s) : strlen(s);
            ps[k++] = rego__strndup(p->c->arena, s, len);
            s = dot != NULL ? dot + 1 : s + len;
        }
        *path = ps;
        *npath = cnt;
    } else {
        split_head(p, h, r, path, npath);
    }
    if (is_kw(p, &p->t, KW_CONTAINS, "contains")) {
        next(p);
        /* The element is the last key; keys before it are a dynamic prefix. */
        rego__term_t **keys = palloc(p, (r->nkeys + 1) * sizeof(*keys));
        if (r->nkeys > 0)
            memcpy(keys, r->keys, r->nkeys * sizeof(*keys));
        r->kind = R_SET;
        keys[r->nkeys] = parse_in(p);
        r->keys = keys;
        r->nkeys++;
    } else if (is_op(&p->t, "=") || is_op(&p->t, ":=")) {
        next(p);
        r->value = parse_in(p);
        if (r->kind != R_FUNC)
            r->kind = r->nkeys > 0 ? R_OBJ : R_COMPLETE;
    } else if (r->kind != R_FUNC) {
        if (r->nkeys > 0 && !m->v1 && r->nkeys == 1 && r->keys[0]->bracket)
            r->kind = R_SET;
        else
            r->kind = r->nkeys > 0 ? R_OBJ : R_COMPLETE;
    }
    r->is_default = is_default;
    if (is_default) {
        if (r->value == NULL)
            PFAIL(p, at, "default rule requires a value");
        r->body = true_body(p, &at);
        return r;
    }
    r->body = parse_rule_body(p, &at, &had);
    /* else chains */
    rego__rule_t *prev = r;
    while (kwtok(p, "else")) {
        tok_t eat = p->t;
        rego__rule_t *e = palloc(p, sizeof(*e));
        *e = *r;
        e->els = NULL;
        e->value = NULL;
        e->line = eat.line;
        e->col = eat.col;
        next(p);
        if (is_op(&p->t, "=") || is_op(&p->t, ":=")) {
            next(p);
            e->value = parse_in(p);
        }
        e->body = parse_rule_body(p, &eat, &had);
        prev->els = e;
        prev = e;
    }
    return r;
}

static rego__term_t *parse_import_ref(parser_t *p)
{
    if (p->t.kind != TK_IDENT)
        PFAIL(p, p->t, "expected import path");
    unsigned kw = p->kw;
    p->kw = 0;
    rego__term_t *t = parse_term(p);
    p->kw = kw;
    return t;
}

static bool ref_is(const rego__term_t *t, const char *a, const char *b, const char **third)
{
    if (t->kind != T_REF || t->head->kind != T_VAR || strcmp(t->head->name, a) != 0)
        return false;
    if (t->n < 1 || t->items[0]->kind != T_VAL || t->items[0]->val->kind != REGO_STRING ||
        strcmp(t->items[0]->val->str, b) != 0)
        return false;
    *third = NULL;
    if (t->n >= 2 && t->items[1]->kind == T_VAL && t->items[1]->val->kind == REGO_STRING)
        *third = t->items[1]->val->str;
    return true;
}

rego__module_t *rego__parse_module(rego__cctx_t *c, const char *file, const char *text, size_t len,
                                   bool v1_default)
{
    parser_t p;
    rego__module_t *m;
    rvec_t rules = {0};
    struct rego__import imps[64];
    uint32_t nimp = 0;

    memset(&p, 0, sizeof(p));
    p.c = c;
    p.file = file;
    p.src = p.cur = text;
    p.end = text + len;
    p.line = p.col = 1;
    p.v1 = v1_default;
    p.kw = v1_default ? KW_ALL : 0;
    if (len > REGO_MAX_SOURCE_BYTES)
        rego__cfail(c, "rego_parse_error", file, 0, 0, "module too large");
    m = palloc(&p, sizeof(*m));
    m->file = file;
    next(&p);
    if (!kwtok(&p, "package"))
        PFAIL(&p, p.t, "package expected");
    next(&p);
    {
        unsigned kw = p.kw;
        p.kw = 0;
        p.nlsens = true;
        rego__term_t *pk = parse_term(&p);
        p.kw = kw;
        tvec_t parts = {0};
        if (pk->kind == T_VAR) {
            tpush(&p, &parts, pk);
        } else if (pk->kind == T_REF && pk->head->kind == T_VAR) {
            tpush(&p, &parts, pk->head);
            for (uint32_t i = 0; i < pk->n; i++) {
                if (pk->items[i]->kind != T_VAL || pk->items[i]->val->kind != REGO_STRING)
                    PFAIL(&p, p.t, "invalid package path");
                tpush(&p, &parts, pk->items[i]);
            }
        } else {
            PFAIL(&p, p.t, "invalid package path");
        }
        m->pkg = palloc(&p, parts.n * sizeof(*m->pkg));
        for (uint32_t i = 0; i < parts.n; i++)
            m->pkg[i] = parts.v[i]->kind == T_VAR ? parts.v[i]->name : parts.v[i]->val->str;
        m->npkg = parts.n;
        if (m->npkg > 0 && strcmp(m->pkg[0], "data") == 0) {
            m->pkg++;
            m->npkg--;
        }
    }
    while (kwtok(&p, "import")) {
        tok_t at = p.t;
        next(&p);
        rego__term_t *ref = parse_import_ref(&p);
        const char *third = NULL;
        if (ref_is(ref, "future", "keywords", &third)) {
            if (third == NULL)
                p.kw = KW_ALL;
            else if (strcmp(third, "if") == 0)
                p.kw |= KW_IF;
            else if (strcmp(third, "in") == 0)
                p.kw |= KW_IN;
            else if (strcmp(third, "contains") == 0)
                p.kw |= KW_CONTAINS;
            else if (strcmp(third, "every") == 0)
                p.kw |= KW_EVERY | KW_IN;
            else
                PFAIL(&p, at, "unexpected keyword import");
            continue;
        }
        if (ref->kind == T_REF && ref->head->kind == T_VAR &&
            strcmp(ref->head->name, "rego") == 0 && ref->n == 1 && ref->items[0]->kind == T_VAL &&
            ref->items[0]->val->kind == REGO_STRING && strcmp(ref->items[0]->val->str, "v1") == 0) {
            p.kw = KW_ALL;
            p.v1 = true;
            continue;
        }
        const char *root = ref->kind == T_VAR                               ? ref->name
                           : ref->kind == T_REF && ref->head->kind == T_VAR ? ref->head->name
                                                                            : "";
        if (strcmp(root, "data") != 0 && strcmp(root, "input") != 0)
            PFAIL(&p, at, "invalid import path, must begin with input or data");
        if (nimp == 64)
            PFAIL(&p, at, "too many imports");
        imps[nimp].ref = ref;
        if (kwtok(&p, "as")) {
            next(&p);
            if (p.t.kind != TK_IDENT)
                PFAIL(&p, p.t, "expected alias");
            imps[nimp].alias = rego__strndup(c->arena, p.t.p, p.t.n);
            next(&p);
        } else if (ref->kind == T_VAR) {
            imps[nimp].alias = ref->name;
        } else {
            rego__term_t *last = ref->items[ref->n - 1];
            if (last->kind != T_VAL || last->val->kind != REGO_STRING)
                PFAIL(&p, at, "invalid import path");
            imps[nimp].alias = last->val->str;
        }
        nimp++;
    }
    m->v1 = p.v1;
    if (nimp > 0) {
        m->imports = palloc(&p, nimp * sizeof(*m->imports));
        memcpy(m->imports, imps, nimp * sizeof(*imps));
        m->nimports = nimp;
    }
    while (p.t.kind != TK_EOF) {
        const char **path = NULL;
        uint32_t npath = 0;
        rego__rule_t *r = parse_rule(&p, m, &path, &npath);
        /* Stash the rule's path in its node slot until the compiler builds the tree. */
        r->node = (rego__node_t *)(void *)path;
        r->nslots = npath;
        rpush(&p, &rules, r);
        if (p.t.kind != TK_EOF && !p.t.nl && !is_op(&p.t, ";"))
            PFAIL(&p, p.t, "unexpected %.*s", (int)p.t.n, p.t.p);
        while (is_op(&p.t, ";"))
            next(&p);
    }
    m->rules = rules.v;
    m->nrules = rules.n;
    return m;
}

rego__body_t rego__parse_query(rego__cctx_t *c, const char *text, size_t len)
{
    parser_t p;
    evec_t ev = {0};
    rego__body_t b;

    memset(&p, 0, sizeof(p));
    p.c = c;
    p.file = "query";
    p.src = p.cur = text;
    p.end = text + len;
    p.line = p.col = 1;
    p.v1 = true;
    p.kw = KW_ALL;
    p.nlsens = true;
    next(&p);
    while (p.t.kind != TK_EOF) {
        while (is_op(&p.t, ";"))
            next(&p);
        if (p.t.kind == TK_EOF)
            break;
        epush(&p, &ev, parse_literal(&p));
        if (p.t.kind != TK_EOF && !is_op(&p.t, ";") && !p.t.nl)
            PFAIL(&p, p.t, "unexpected %.*s", (int)p.t.n, p.t.p);
    }
    if (ev.n == 0)
        rego__cfail(c, "rego_parse_error", "query", 1, 1, "empty query");
    b.e = ev.v;
    b.n = ev.n;
    return b;
}

rego__term_t *rego__parse_term_text(rego__cctx_t *c, const char *text, size_t len)
{
    parser_t p;
    memset(&p, 0, sizeof(p));
    p.c = c;
    p.file = "input";
    p.src = p.cur = text;
    p.end = text + len;
    p.line = p.col = 1;
    p.v1 = true;
    p.kw = KW_ALL;
    next(&p);
    rego__term_t *t = parse_in(&p);
    if (p.t.kind != TK_EOF)
        PFAIL(&p, p.t, "unexpected %.*s", (int)p.t.n, p.t.p);
    return t;
}
