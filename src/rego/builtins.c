/*
 * builtins.c — OPA's built-in functions: operators, aggregates, types, strings, sprintf, regex,
 * glob, JSON, base64/hex, objects and sets, arrays, numbers. Time and JWT live in bi_time.c and
 * bi_jwt.c. Each takes evaluated operands and returns a value, or NULL for undefined.
 *
 * Errors follow OPA: an operand of the wrong type is an eval_type_error ("plus: operand 1 must
 * be number but got string"); other failures (bad JSON, divide by zero) are eval_builtin_error,
 * reported only with strict builtin errors and otherwise undefined.
 */
#include <math.h>
#include <arpa/inet.h>
#include <regex.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/buf.h"
#include "base/str.h"
#include "rego/rego_int.h"

#define A (&ev->arena)

extern const rego__builtin_t rego__bi_time[];
extern const rego__builtin_t rego__bi_jwt[];
extern const rego__builtin_t rego__bi_yaml[];

rv_t *rego__bi_err(rego_eval_t *ev, const char *fmt, ...)
{
    va_list ap;
    char msg[200];
    if (!ev->strict)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    rego__fail(ev, ERR_REGO_BUILTIN, "eval_builtin_error", "%s", msg);
}

/* OPA reports operand type errors only with strict builtin errors; otherwise the call is
 * undefined. Returns NULL (undefined). */
rv_t *rego__type_err(rego_eval_t *ev, const char *fn, int pos, const char *want, const rv_t *got)
{
    if (!ev->strict)
        return NULL;
    rego__fail(ev, ERR_REGO_TYPE, "eval_type_error", "%s: operand %d must be %s but got %s", fn,
               pos, want, rego__type_name(got));
}

#define NEED(i, k, want)                                                                           \
    do {                                                                                           \
        if (args[i]->kind != (k))                                                                  \
            return rego__type_err(ev, NAME, (i) + 1, want, args[i]);                               \
    } while (0)
#define NEED_NUM(i) NEED(i, REGO_NUMBER, "number")
#define NEED_STR(i) NEED(i, REGO_STRING, "string")
#define NEED_ARR(i) NEED(i, REGO_ARRAY, "array")
#define NEED_OBJ(i) NEED(i, REGO_OBJECT, "object")
#define NEED_SET(i) NEED(i, REGO_SET, "set")

static rv_t *boolv(bool b)
{
    return b ? &rego__true : &rego__false;
}

/* ---- comparison and arithmetic ---- */

#define CMP_FN(fname, expr)                                                                        \
    static rv_t *fname(rego_eval_t *ev, rv_t **args, uint32_t n)                                   \
    {                                                                                              \
        (void)ev;                                                                                  \
        (void)n;                                                                                   \
        int c = rego__cmp(args[0], args[1]);                                                       \
        return boolv(expr);                                                                        \
    }
CMP_FN(bi_equal, c == 0)
CMP_FN(bi_neq, c != 0)
CMP_FN(bi_lt, c < 0)
CMP_FN(bi_lte, c <= 0)
CMP_FN(bi_gt, c > 0)
CMP_FN(bi_gte, c >= 0)

#undef NAME
#define NAME "plus"
static rv_t *bi_plus(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    return rego__num(A, args[0]->num + args[1]->num);
}

#undef NAME
#define NAME "minus"
static rv_t *bi_minus(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (args[0]->kind == REGO_SET && args[1]->kind == REGO_SET) {
        rv_t *s = rego__set(A, args[0]->len);
        for (uint32_t i = 0; i < args[0]->len; i++)
            if (!rego__set_has(args[1], args[0]->a[i]))
                rego__set_add(A, s, args[0]->a[i]);
        return s;
    }
    if (args[0]->kind != REGO_NUMBER && args[0]->kind != REGO_SET)
        return rego__type_err(ev, NAME, 1, "one of {number, set}", args[0]);
    if (args[1]->kind != args[0]->kind)
        return rego__type_err(ev, NAME, 2, args[0]->kind == REGO_SET ? "set" : "number", args[1]);
    return rego__num(A, args[0]->num - args[1]->num);
}

#undef NAME
#define NAME "mul"
static rv_t *bi_mul(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    return rego__num(A, args[0]->num * args[1]->num);
}

#undef NAME
#define NAME "div"
static rv_t *bi_div(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    if (args[1]->num == 0)
        return rego__bi_err(ev, "div: divide by zero");
    return rego__num(A, args[0]->num / args[1]->num);
}

#undef NAME
#define NAME "rem"
static rv_t *bi_rem(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    if (!rego__is_int(args[0]) || !rego__is_int(args[1]))
        return rego__bi_err(ev, "rem: modulo on floating-point number");
    if (args[1]->num == 0)
        return rego__bi_err(ev, "rem: modulo by zero");
    return rego__num(A, fmod(args[0]->num, args[1]->num));
}

#undef NAME
#define NAME "and"
static rv_t *bi_and(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_SET(0);
    NEED_SET(1);
    rv_t *s = rego__set(A, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (rego__set_has(args[1], args[0]->a[i]))
            rego__set_add(A, s, args[0]->a[i]);
    return s;
}

#undef NAME
#define NAME "or"
static rv_t *bi_or(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_SET(0);
    NEED_SET(1);
    rv_t *s = rego__set(A, args[0]->len + args[1]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        rego__set_add(A, s, args[0]->a[i]);
    for (uint32_t i = 0; i < args[1]->len; i++)
        rego__set_add(A, s, args[1]->a[i]);
    return s;
}

static rv_t *bi_member2(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *c = args[1];
    (void)ev;
    (void)n;
    if (c->kind == REGO_SET)
        return boolv(rego__set_has(c, args[0]));
    if (c->kind == REGO_ARRAY) {
        for (uint32_t i = 0; i < c->len; i++)
            if (rego__eq(c->a[i], args[0]))
                return &rego__true;
    }
    if (c->kind == REGO_OBJECT) {
        for (uint32_t i = 0; i < c->len; i++)
            if (rego__eq(c->v[i], args[0]))
                return &rego__true;
    }
    return &rego__false;
}

static rv_t *bi_member3(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *c = args[2], *v;
    (void)n;
    if (c->kind == REGO_ARRAY) {
        if (!rego__is_int(args[0]) || args[0]->num < 0 || args[0]->num >= c->len)
            return &rego__false;
        return boolv(rego__eq(c->a[(uint32_t)args[0]->num], args[1]));
    }
    if (c->kind == REGO_OBJECT) {
        v = rego__obj_get(c, args[0]);
        return boolv(v != NULL && rego__eq(v, args[1]));
    }
    if (c->kind == REGO_SET)
        return boolv(rego__eq(args[0], args[1]) && rego__set_has(c, args[0]));
    (void)ev;
    return &rego__false;
}

#undef NAME
#define NAME "abs"
static rv_t *bi_abs(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    return rego__num(A, fabs(args[0]->num));
}
#undef NAME
#define NAME "round"
static rv_t *bi_round(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    return rego__num(A, round(args[0]->num));
}
#undef NAME
#define NAME "ceil"
static rv_t *bi_ceil(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    return rego__num(A, ceil(args[0]->num));
}
#undef NAME
#define NAME "floor"
static rv_t *bi_floor(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    return rego__num(A, floor(args[0]->num));
}

/* ---- aggregates ---- */

/* Runes as Go counts them: each byte of an invalid sequence is one rune (U+FFFD). */
static size_t utf8_runes(const char *s, size_t n)
{
    size_t c = 0, i = 0;
    while (i < n) {
        unsigned char b = (unsigned char)s[i];
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
        bool ok = len > 0 && i + len <= n;
        for (size_t k = 1; ok && k < len; k++)
            ok = ((unsigned char)s[i + k] & 0xC0) == 0x80;
        if (ok && len == 2 && b < 0xC2)
            ok = false;
        if (ok && len == 3) {
            unsigned cp = ((b & 0x0Fu) << 12) | (((unsigned char)s[i + 1] & 0x3Fu) << 6) |
                          ((unsigned char)s[i + 2] & 0x3Fu);
            ok = cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF);
        }
        if (ok && len == 4) {
            unsigned cp = ((b & 0x07u) << 18) | (((unsigned char)s[i + 1] & 0x3Fu) << 12) |
                          (((unsigned char)s[i + 2] & 0x3Fu) << 6) |
                          ((unsigned char)s[i + 3] & 0x3Fu);
            ok = cp >= 0x10000 && cp <= 0x10FFFF;
        }
        i += ok ? len : 1;
        c++;
    }
    return c;
}

#undef NAME
#define NAME "count"
static rv_t *bi_count(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (args[0]->kind == REGO_STRING)
        return rego__num(A, (double)utf8_runes(args[0]->str, args[0]->len));
    if (args[0]->kind < REGO_STRING)
        return rego__type_err(ev, NAME, 1, "one of {array, object, set, string}", args[0]);
    return rego__num(A, args[0]->len);
}

static bool need_coll(rego_eval_t *ev, const char *name, rv_t *v)
{
    if (v->kind != REGO_ARRAY && v->kind != REGO_SET) {
        rego__type_err(ev, name, 1, "one of {array, set}", v);
        return false;
    }
    return true;
}

static rv_t *bi_sum(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double s = 0;
    (void)n;
    if (!need_coll(ev, "sum", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++) {
        if (args[0]->a[i]->kind != REGO_NUMBER)
            return rego__type_err(ev, "sum", 1, "any<array[number], set[number]>", args[0]);
        s += args[0]->a[i]->num;
    }
    return rego__num(A, s);
}

static rv_t *bi_product(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    double s = 1;
    (void)n;
    if (!need_coll(ev, "product", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++) {
        if (args[0]->a[i]->kind != REGO_NUMBER)
            return rego__type_err(ev, "product", 1, "any<array[number], set[number]>", args[0]);
        s *= args[0]->a[i]->num;
    }
    return rego__num(A, s);
}

static rv_t *bi_max(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *m = NULL;
    (void)n;
    if (!need_coll(ev, "max", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (m == NULL || rego__cmp(args[0]->a[i], m) > 0)
            m = args[0]->a[i];
    return m;
}

static rv_t *bi_min(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *m = NULL;
    (void)n;
    if (!need_coll(ev, "min", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (m == NULL || rego__cmp(args[0]->a[i], m) < 0)
            m = args[0]->a[i];
    return m;
}

static int cmp_ptr(const void *x, const void *y)
{
    return rego__cmp(*(rv_t *const *)x, *(rv_t *const *)y);
}

static rv_t *bi_sort(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (!need_coll(ev, "sort", args[0]))
        return NULL;
    rv_t *r = rego__arr(A, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        rego__arr_push(A, r, args[0]->a[i]);
    if (r->len > 1)
        qsort(r->a, r->len, sizeof(rv_t *), cmp_ptr);
    return r;
}

static rv_t *bi_all(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (!need_coll(ev, "all", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (!(args[0]->a[i]->kind == REGO_BOOL && args[0]->a[i]->b))
            return &rego__false;
    return &rego__true;
}

static rv_t *bi_any(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (!need_coll(ev, "any", args[0]))
        return NULL;
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (args[0]->a[i]->kind == REGO_BOOL && args[0]->a[i]->b)
            return &rego__true;
    return &rego__false;
}

/* ---- types ---- */

#define IS_FN(fname, k)                                                                            \
    static rv_t *fname(rego_eval_t *ev, rv_t **args, uint32_t n)                                   \
    {                                                                                              \
        (void)ev;                                                                                  \
        (void)n;                                                                                   \
        return args[0]->kind == (k) ? &rego__true : &rego__false;                                  \
    }
IS_FN(bi_is_number, REGO_NUMBER)
IS_FN(bi_is_string, REGO_STRING)
IS_FN(bi_is_boolean, REGO_BOOL)
IS_FN(bi_is_array, REGO_ARRAY)
IS_FN(bi_is_set, REGO_SET)
IS_FN(bi_is_object, REGO_OBJECT)
IS_FN(bi_is_null, REGO_NULL)

static rv_t *bi_type_name(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    const char *t = rego__type_name(args[0]);
    (void)n;
    return rego__str_own(A, t, strlen(t));
}

#undef NAME
#define NAME "to_number"
static rv_t *bi_to_number(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *v = args[0];
    (void)n;
    switch (v->kind) {
    case REGO_NULL:
        return rego__num(A, 0);
    case REGO_BOOL:
        return rego__num(A, v->b ? 1 : 0);
    case REGO_NUMBER:
        return v;
    case REGO_STRING: {
        char *end = NULL;
        const char *s = v->str;
        {
            /* Go's ParseFloat takes inf and nan; OPA then refuses them as a type error. */
            const char *t = s + (v->len > 0 && (s[0] == '-' || s[0] == '+'));
            if (strcasecmp(t, "inf") == 0 || strcasecmp(t, "infinity") == 0 ||
                strcasecmp(t, "nan") == 0) {
                if (!ev->strict)
                    return NULL;
                rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                           "to_number: operand 1 must be a finite number but got %s", s);
            }
        }
        if (v->len == 0 || v->len > 64 || s[0] == ' ' || s[0] == '+')
            return rego__bi_err(ev, "to_number: invalid syntax");
        for (uint32_t i = 0; i < v->len; i++)
            if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '-' || s[i] == 'e' ||
                  s[i] == 'E' || s[i] == '+'))
                return rego__bi_err(ev, "to_number: strconv.ParseFloat: parsing %s: invalid syntax",
                                    s);
        double d = strtod(s, &end);
        if (end != s + v->len)
            return rego__bi_err(ev, "to_number: invalid syntax");
        return rego__num(A, d);
    }
    default:
        return rego__type_err(ev, NAME, 1, "one of {boolean, null, number, string}", v);
    }
}

/* ---- strings ---- */

static rv_t *strv(rego_eval_t *ev, const char *s, size_t n)
{
    return rego__str(A, s, n);
}

static bool has_prefix(const rv_t *s, const rv_t *p)
{
    return p->len <= s->len && memcmp(s->str, p->str, p->len) == 0;
}
static bool has_suffix(const rv_t *s, const rv_t *p)
{
    return p->len <= s->len && memcmp(s->str + s->len - p->len, p->str, p->len) == 0;
}

static const char *find_sub(const char *h, size_t hn, const char *nd, size_t nn)
{
    if (nn == 0)
        return h;
    if (nn > hn)
        return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (memcmp(h + i, nd, nn) == 0)
            return h + i;
    return NULL;
}

#undef NAME
#define NAME "startswith"
static rv_t *bi_startswith(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    return boolv(has_prefix(args[0], args[1]));
}
#undef NAME
#define NAME "endswith"
static rv_t *bi_endswith(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    return boolv(has_suffix(args[0], args[1]));
}
#undef NAME
#define NAME "contains"
static rv_t *bi_contains(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    return boolv(find_sub(args[0]->str, args[0]->len, args[1]->str, args[1]->len) != NULL);
}

static rv_t *prefix_any(rego_eval_t *ev, rv_t **args, const char *name, bool suffix)
{
    rv_t *s = args[0], *p = args[1];
    rv_t one_s[1], *sl[1], one_p[1], *pl[1];
    rv_t **ss, **ps;
    uint32_t ns, np;
    (void)one_s;
    (void)one_p;
    if (s->kind == REGO_STRING) {
        sl[0] = s;
        ss = sl;
        ns = 1;
    } else if (s->kind == REGO_ARRAY || s->kind == REGO_SET) {
        ss = s->a;
        ns = s->len;
    } else {
        return rego__type_err(ev, name, 1, "one of {string, set, array}", s);
    }
    if (p->kind == REGO_STRING) {
        pl[0] = p;
        ps = pl;
        np = 1;
    } else if (p->kind == REGO_ARRAY || p->kind == REGO_SET) {
        ps = p->a;
        np = p->len;
    } else {
        return rego__type_err(ev, name, 2, "one of {string, set, array}", p);
    }
    for (uint32_t i = 0; i < ns; i++) {
        if (ss[i]->kind != REGO_STRING) {
            if (ev->strict)
                rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                           "%s: operand 1 must be array of strings but got array containing %s",
                           name, rego__type_name(ss[i]));
            return NULL;
        }
        for (uint32_t j = 0; j < np; j++) {
            if (ps[j]->kind != REGO_STRING) {
                if (ev->strict)
                    rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                               "%s: operand 2 must be array of strings but got array containing %s",
                               name, rego__type_name(ps[j]));
                return NULL;
            }
            if (suffix ? has_suffix(ss[i], ps[j]) : has_prefix(ss[i], ps[j]))
                return &rego__true;
        }
    }
    return &rego__false;
}
static rv_t *bi_any_prefix(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return prefix_any(ev, args, "strings.any_prefix_match", false);
}
static rv_t *bi_any_suffix(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return prefix_any(ev, args, "strings.any_suffix_match", true);
}

static rv_t *map_case(rego_eval_t *ev, rv_t **args, const char *name, bool up)
{
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, name, 1, "string", args[0]);
    char *o = rego__strndup(A, args[0]->str, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++) {
        if (up && o[i] >= 'a' && o[i] <= 'z')
            o[i] = (char)(o[i] - 32);
        else if (!up && o[i] >= 'A' && o[i] <= 'Z')
            o[i] = (char)(o[i] + 32);
    }
    return rego__str_own(A, o, args[0]->len);
}
static rv_t *bi_lower(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return map_case(ev, args, "lower", false);
}
static rv_t *bi_upper(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return map_case(ev, args, "upper", true);
}

#undef NAME
#define NAME "split"
static rv_t *bi_split(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    rv_t *r = rego__arr(A, 4);
    const char *s = args[0]->str, *end = s + args[0]->len;
    if (args[1]->len == 0) {
        /* Go splits into UTF-8 sequences. */
        while (s < end) {
            size_t l = 1;
            while (s + l < end && ((unsigned char)s[l] & 0xC0) == 0x80)
                l++;
            rego__arr_push(A, r, strv(ev, s, l));
            s += l;
        }
        return r;
    }
    for (;;) {
        const char *f = find_sub(s, (size_t)(end - s), args[1]->str, args[1]->len);
        if (f == NULL) {
            rego__arr_push(A, r, strv(ev, s, (size_t)(end - s)));
            return r;
        }
        rego__arr_push(A, r, strv(ev, s, (size_t)(f - s)));
        s = f + args[1]->len;
    }
}

#undef NAME
#define NAME "concat"
static rv_t *bi_concat(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    buf_t *b;
    rv_t *r;
    (void)n;
    NEED_STR(0);
    if (args[1]->kind != REGO_ARRAY && args[1]->kind != REGO_SET)
        return rego__type_err(ev, NAME, 2, "one of {array, set}", args[1]);
    b = rego__buf(ev, 64u << 20);
    for (uint32_t i = 0; i < args[1]->len; i++) {
        if (args[1]->a[i]->kind != REGO_STRING) {
            rego__buf_done(ev, b);
            return rego__type_err(ev, NAME, 2, "any<array[string], set[string]>", args[1]);
        }
        if ((i > 0 && buf_append(b, args[0]->str, args[0]->len) < 0) ||
            buf_append(b, args[1]->a[i]->str, args[1]->a[i]->len) < 0) {
            rego__buf_done(ev, b);
            rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "concat: result too large");
        }
    }
    r = strv(ev, buf_ptr(b), b->len);
    rego__buf_done(ev, b);
    return r;
}

/* Code point offsets for substring/indexof (OPA counts runes). */
static size_t rune_off(const rv_t *s, size_t runes)
{
    size_t i = 0;
    while (runes > 0 && i < s->len) {
        i++;
        while (i < s->len && ((unsigned char)s->str[i] & 0xC0) == 0x80)
            i++;
        runes--;
    }
    return i;
}

static size_t rune_count(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xC0) != 0x80;
    return c;
}

#undef NAME
#define NAME "substring"
static rv_t *bi_substring(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_NUM(1);
    NEED_NUM(2);
    if (!rego__is_int(args[1]))
        return rego__type_err(ev, NAME, 2, "integer number", args[1]);
    if (!rego__is_int(args[2]))
        return rego__type_err(ev, NAME, 3, "integer number", args[2]);
    double start = args[1]->num, len = args[2]->num;
    if (start < 0)
        return rego__bi_err(ev, "substring: negative offset");
    size_t total = rune_count(args[0]->str, args[0]->len);
    if (start >= (double)total)
        return &rego__empty_str;
    size_t a = rune_off(args[0], (size_t)start);
    size_t b = len < 0 || start + len > (double)total ? args[0]->len
                                                      : rune_off(args[0], (size_t)(start + len));
    return strv(ev, args[0]->str + a, b - a);
}

#undef NAME
#define NAME "indexof"
static rv_t *bi_indexof(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if (args[1]->len == 0)
        return rego__bi_err(ev, "indexof: empty search character");
    const char *f = find_sub(args[0]->str, args[0]->len, args[1]->str, args[1]->len);
    if (f == NULL)
        return rego__num(A, -1);
    return rego__num(A, (double)rune_count(args[0]->str, (size_t)(f - args[0]->str)));
}

#undef NAME
#define NAME "indexof_n"
static rv_t *bi_indexof_n(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    rv_t *r = rego__arr(A, 4);
    if (args[1]->len == 0)
        return rego__bi_err(ev, "indexof_n: empty search character");
    const char *s = args[0]->str, *end = s + args[0]->len;
    for (;;) {
        const char *f = find_sub(s, (size_t)(end - s), args[1]->str, args[1]->len);
        if (f == NULL)
            return r;
        rego__arr_push(A, r,
                       rego__num(A, (double)rune_count(args[0]->str, (size_t)(f - args[0]->str))));
        s = f + 1;
    }
}

static bool in_cutset(const rv_t *cut, const char *p, size_t l)
{
    for (uint32_t i = 0; i < cut->len;) {
        size_t cl = 1;
        while (i + cl < cut->len && ((unsigned char)cut->str[i + cl] & 0xC0) == 0x80)
            cl++;
        if (cl == l && memcmp(cut->str + i, p, l) == 0)
            return true;
        i += (uint32_t)cl;
    }
    return false;
}

static rv_t *do_trim(rego_eval_t *ev, rv_t **args, const char *name, bool left, bool right)
{
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, name, 1, "string", args[0]);
    if (args[1]->kind != REGO_STRING)
        return rego__type_err(ev, name, 2, "string", args[1]);
    const char *s = args[0]->str, *e = s + args[0]->len;
    while (left && s < e) {
        size_t l = 1;
        while (s + l < e && ((unsigned char)s[l] & 0xC0) == 0x80)
            l++;
        if (!in_cutset(args[1], s, l))
            break;
        s += l;
    }
    while (right && e > s) {
        const char *p = e - 1;
        while (p > s && ((unsigned char)*p & 0xC0) == 0x80)
            p--;
        if (!in_cutset(args[1], p, (size_t)(e - p)))
            break;
        e = p;
    }
    return strv(ev, s, (size_t)(e - s));
}
static rv_t *bi_trim(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return do_trim(ev, args, "trim", true, true);
}
static rv_t *bi_trim_left(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return do_trim(ev, args, "trim_left", true, false);
}
static rv_t *bi_trim_right(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return do_trim(ev, args, "trim_right", false, true);
}
#undef NAME
#define NAME "trim_space"
static rv_t *bi_trim_space(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    const char *s = args[0]->str, *e = s + args[0]->len;
    while (s < e &&
           (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r' || *s == '\v' || *s == '\f'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r' ||
                     e[-1] == '\v' || e[-1] == '\f'))
        e--;
    return strv(ev, s, (size_t)(e - s));
}
#undef NAME
#define NAME "trim_prefix"
static rv_t *bi_trim_prefix(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if (has_prefix(args[0], args[1]))
        return strv(ev, args[0]->str + args[1]->len, args[0]->len - args[1]->len);
    return args[0];
}
#undef NAME
#define NAME "trim_suffix"
static rv_t *bi_trim_suffix(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if (has_suffix(args[0], args[1]))
        return strv(ev, args[0]->str, args[0]->len - args[1]->len);
    return args[0];
}

static rv_t *replace_n(rego_eval_t *ev, const rv_t *s, const rv_t *old, const rv_t *new_,
                       long limit)
{
    buf_t *b;
    const char *p = s->str, *end = s->str + s->len;
    rv_t *r;
    b = rego__buf(ev, 64u << 20);
    if (old->len == 0) {
        /* Go: empty old inserts new before every rune and at the end. */
        long k = 0;
        while (p <= end) {
            int rc = 0;
            if (limit < 0 || k < limit) {
                rc = buf_append(b, new_->str, new_->len);
                k++;
            }
            if (p == end)
                break;
            size_t l = 1;
            while (p + l < end && ((unsigned char)p[l] & 0xC0) == 0x80)
                l++;
            if (rc < 0 || buf_append(b, p, l) < 0)
                rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "replace: result too large");
            p += l;
        }
    } else {
        long k = 0;
        while (p < end) {
            const char *f = (limit < 0 || k < limit)
                                ? find_sub(p, (size_t)(end - p), old->str, old->len)
                                : NULL;
            if (f == NULL) {
                if (buf_append(b, p, (size_t)(end - p)) < 0)
                    rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "replace: too large");
                break;
            }
            if (buf_append(b, p, (size_t)(f - p)) < 0 || buf_append(b, new_->str, new_->len) < 0)
                rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "replace: too large");
            p = f + old->len;
            k++;
        }
    }
    r = strv(ev, b->len > 0 ? buf_ptr(b) : "", b->len);
    rego__buf_done(ev, b);
    return r;
}

#undef NAME
#define NAME "replace"
static rv_t *bi_replace(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    NEED_STR(2);
    return replace_n(ev, args[0], args[1], args[2], -1);
}

#undef NAME
#define NAME "strings.replace_n"
static rv_t *bi_replace_n(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    NEED_STR(1);
    rv_t *s = args[1];
    /* Go's strings.NewReplacer: all patterns at once, at each position the first (in argument
     * order; OPA passes keys sorted) that matches. */
    for (uint32_t i = 0; i < args[0]->len; i++) {
        if (args[0]->a[i]->kind != REGO_STRING || args[0]->v[i]->kind != REGO_STRING) {
            if (!ev->strict)
                return NULL;
            rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                       "strings.replace_n: operand 1 non-string %s found in pattern object",
                       args[0]->a[i]->kind != REGO_STRING ? "key" : "value");
        }
    }
    buf_t *b;
    b = rego__buf(ev, 64u << 20);
    const char *p = s->str, *end = s->str + s->len;
    while (p < end) {
        bool hit = false;
        for (uint32_t i = 0; i < args[0]->len; i++) {
            rv_t *k = args[0]->a[i];
            if (k->len > 0 && (size_t)(end - p) >= k->len && memcmp(p, k->str, k->len) == 0) {
                if (buf_append(b, args[0]->v[i]->str, args[0]->v[i]->len) < 0)
                    rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "too large");
                p += k->len;
                hit = true;
                break;
            }
        }
        if (!hit) {
            if (buf_append(b, p, 1) < 0)
                rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "too large");
            p++;
        }
    }
    rv_t *r = strv(ev, b->len > 0 ? buf_ptr(b) : "", b->len);
    rego__buf_done(ev, b);
    return r;
}

#undef NAME
#define NAME "strings.reverse"
static rv_t *bi_reverse(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, "reverse", 1, "string", args[0]);
    char *o = rego__alloc(A, args[0]->len + 1);
    const char *s = args[0]->str;
    size_t len = args[0]->len, w = len;
    for (size_t i = 0; i < len;) {
        size_t l = 1;
        while (i + l < len && ((unsigned char)s[i + l] & 0xC0) == 0x80)
            l++;
        w -= l;
        memcpy(o + w, s + i, l);
        i += l;
    }
    o[len] = '\0';
    return rego__str_own(A, o, len);
}

#undef NAME
#define NAME "strings.count"
static rv_t *bi_str_count(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if (args[1]->len == 0)
        return rego__num(A, (double)rune_count(args[0]->str, args[0]->len) + 1);
    size_t c = 0;
    const char *s = args[0]->str, *end = s + args[0]->len;
    for (;;) {
        const char *f = find_sub(s, (size_t)(end - s), args[1]->str, args[1]->len);
        if (f == NULL)
            break;
        c++;
        s = f + args[1]->len;
    }
    return rego__num(A, (double)c);
}

#undef NAME
#define NAME "format_int"
static rv_t *bi_format_int(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char tmp[80];
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    int base = (int)args[1]->num;
    if (args[1]->num != 2 && args[1]->num != 8 && args[1]->num != 10 && args[1]->num != 16)
        rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                   "format_int: operand 2 must be one of {2, 8, 10, 16}");
    double d = args[0]->num;
    long long v = (long long)(d < 0 ? ceil(d) : floor(d));
    bool neg = v < 0;
    unsigned long long u = neg ? (unsigned long long)(-v) : (unsigned long long)v;
    int i = (int)sizeof(tmp);
    tmp[--i] = '\0';
    do {
        int dig = (int)(u % (unsigned)base);
        tmp[--i] = (char)(dig < 10 ? '0' + dig : 'a' + dig - 10);
        u /= (unsigned)base;
    } while (u > 0);
    if (neg)
        tmp[--i] = '-';
    return strv(ev, tmp + i, strlen(tmp + i));
}

/* sprintf: Go's verbs over Rego values. */
static int rego_text(const rv_t *v, buf_t *b);

static int fmt_value(const rv_t *v, buf_t *b)
{
    if (v->kind == REGO_STRING)
        return buf_append(b, v->str, v->len);
    return rego_text(v, b);
}

/* OPA's term text: [1, 2], {"a": 1}, {1, 2}, set(). */
static int rego_text(const rv_t *v, buf_t *b)
{
    int rc = 0;
    switch (v->kind) {
    case REGO_ARRAY:
    case REGO_SET:
        if (v->kind == REGO_SET && v->len == 0)
            return buf_append_str(b, "set()");
        rc = buf_append(b, v->kind == REGO_SET ? "{" : "[", 1);
        for (uint32_t i = 0; rc == 0 && i < v->len; i++) {
            if (i > 0)
                rc = buf_append(b, ", ", 2);
            if (rc == 0)
                rc = rego_text(v->a[i], b);
        }
        return rc != 0 ? rc : buf_append(b, v->kind == REGO_SET ? "}" : "]", 1);
    case REGO_OBJECT:
        rc = buf_append(b, "{", 1);
        for (uint32_t i = 0; rc == 0 && i < v->len; i++) {
            if (i > 0)
                rc = buf_append(b, ", ", 2);
            if (rc == 0)
                rc = rego_text(v->a[i], b);
            if (rc == 0)
                rc = buf_append(b, ": ", 2);
            if (rc == 0)
                rc = rego_text(v->v[i], b);
        }
        return rc != 0 ? rc : buf_append(b, "}", 1);
    default:
        return rego__to_json_text(v, b);
    }
}

/* sprintf with a format assembled from a validated Go verb spec (flags, width, precision and
 * one conversion), so the non-literal format is safe. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static void fmt_d(char *out, size_t size, const char *fmt, double v)
{
    snprintf(out, size, fmt, v);
}
static void fmt_ll(char *out, size_t size, const char *fmt, long long v)
{
    snprintf(out, size, fmt, v);
}
static void fmt_s(char *out, size_t size, const char *fmt, const char *v)
{
    snprintf(out, size, fmt, v);
}
#pragma GCC diagnostic pop

#undef NAME
#define NAME "sprintf"
static rv_t *bi_sprintf(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    buf_t *b;
    uint32_t ai = 0;
    rv_t *r;
    int rc = 0;
    (void)n;
    NEED_STR(0);
    NEED_ARR(1);
    b = rego__buf(ev, 16u << 20);
    const char *f = args[0]->str, *end = f + args[0]->len;
    while (f < end && rc == 0) {
        if (*f != '%') {
            rc = buf_append(b, f++, 1);
            continue;
        }
        const char *spec = f++;
        if (f < end && *f == '%') {
            rc = buf_append(b, "%", 1);
            f++;
            continue;
        }
        while (f < end && strchr("+-# 0123456789.", *f) != NULL)
            f++;
        if (f >= end)
            break;
        char verb = *f++;
        char fmt[32];
        size_t fl = (size_t)(f - spec);
        if (fl >= sizeof(fmt) - 2)
            fl = sizeof(fmt) - 3;
        memcpy(fmt, spec, fl);
        fmt[fl] = '\0';
        if (ai >= args[1]->len) {
            rc = buf_printf(b, "%%!%c(MISSING)", verb);
            continue;
        }
        rv_t *v = args[1]->a[ai++];
        char tmp[512];
        switch (verb) {
        case 'd':
            if (v->kind == REGO_NUMBER && v->str != NULL) {
                rc = buf_append(b, v->str, v->len);
            } else if (v->kind == REGO_NUMBER && rego__is_int(v)) {
                fmt[fl - 1] = '\0';
                char f2[40];
                snprintf(f2, sizeof(f2), "%s.0f", fmt);
                fmt_d(tmp, sizeof(tmp), f2, v->num);
                rc = buf_append_str(b, tmp);
            } else if (v->kind == REGO_NUMBER) {
                rc = buf_printf(b, "%%!d(float64=");
                char num[64];
                rego__fmt_num(v->num, num, sizeof(num));
                if (rc == 0)
                    rc = buf_append_str(b, num);
                if (rc == 0)
                    rc = buf_append(b, ")", 1);
            } else {
                rc = fmt_value(v, b);
            }
            break;
        case 'f':
        case 'e':
        case 'g':
        case 'E':
        case 'G':
            if (v->kind == REGO_NUMBER) {
                fmt_d(tmp, sizeof(tmp), fmt, v->num);
                rc = buf_append_str(b, tmp);
            } else {
                rc = fmt_value(v, b);
            }
            break;
        case 'x':
        case 'X':
        case 'o':
        case 'b':
            if (v->kind == REGO_NUMBER && rego__is_int(v) && verb != 'b') {
                fmt[fl - 1] = '\0';
                char f2[40];
                snprintf(f2, sizeof(f2), "%sll%c", fmt, verb);
                fmt_ll(tmp, sizeof(tmp), f2, (long long)v->num);
                rc = buf_append_str(b, tmp);
            } else if (v->kind == REGO_STRING && verb != 'o' && verb != 'b') {
                for (uint32_t i = 0; rc == 0 && i < v->len; i++)
                    rc = buf_printf(b, verb == 'x' ? "%02x" : "%02X", (unsigned char)v->str[i]);
            } else if (v->kind == REGO_NUMBER && verb == 'b' && rego__is_int(v)) {
                long long x = (long long)v->num;
                char bits[80];
                int i = 79;
                bits[i] = '\0';
                bool neg = x < 0;
                unsigned long long u = neg ? (unsigned long long)(-x) : (unsigned long long)x;
                do {
                    bits[--i] = (char)('0' + (u & 1));
                    u >>= 1;
                } while (u > 0);
                if (neg)
                    bits[--i] = '-';
                rc = buf_append_str(b, bits + i);
            } else {
                rc = fmt_value(v, b);
            }
            break;
        case 'q':
            if (v->kind == REGO_STRING) {
                rc = buf_append(b, "\"", 1);
                if (rc == 0)
                    rc = buf_append_json_str(b, v->str, v->len);
                if (rc == 0)
                    rc = buf_append(b, "\"", 1);
            } else {
                rc = fmt_value(v, b);
            }
            break;
        case 't':
            if (v->kind == REGO_BOOL)
                rc = buf_append_str(b, v->b ? "true" : "false");
            else
                rc = fmt_value(v, b);
            break;
        case 's':
        case 'v':
        default:
            if (fl > 1 && v->kind == REGO_STRING) {
                /* width/precision on strings */
                fmt[fl - 1] = 's';
                char *tmp2 = rego__strndup(A, v->str, v->len);
                fmt_s(tmp, sizeof(tmp), fmt, tmp2);
                rc = buf_append_str(b, tmp);
            } else {
                rc = fmt_value(v, b);
            }
            break;
        }
    }
    if (rc == 0 && ai < args[1]->len) {
        rc = buf_append_str(b, "%!(EXTRA ");
        for (uint32_t i = ai; rc == 0 && i < args[1]->len; i++) {
            rv_t *v = args[1]->a[i];
            if (i > ai)
                rc = buf_append(b, ", ", 2);
            if (rc == 0) {
                const char *tn = v->kind == REGO_STRING   ? "string"
                                 : v->kind == REGO_NUMBER ? "json.Number"
                                                          : "ast.Value";
                rc = buf_printf(b, "%s=", tn);
            }
            if (rc == 0)
                rc = fmt_value(v, b);
        }
        if (rc == 0)
            rc = buf_append(b, ")", 1);
    }
    if (rc < 0) {
        rego__buf_done(ev, b);
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "sprintf: result too large");
    }
    r = strv(ev, b->len > 0 ? buf_ptr(b) : "", b->len);
    rego__buf_done(ev, b);
    return r;
}

/* ---- regex (POSIX ERE after translating RE2's common escapes) ---- */

/* Translates RE2 syntax to POSIX ERE: \d \D, (?:...), (?i) at the start, \A \z, lazy
 * quantifiers (made greedy). Returns false for constructs with no equivalent. */
static bool re_translate(const rv_t *pat, buf_t *out, int *flags)
{
    const char *p = pat->str, *e = p + pat->len;
    bool in_class = false, prev_quant = false;
    int rc = 0;
    unsigned long reps = 0;
    *flags = REG_EXTENDED;
    /* glibc's regcomp expands repetitions into a tree, so stacked or large counted repetitions
     * cost exponential time and memory: refuse them as RE2 does (RE2 rejects `a**` and counts
     * above 1000), and bound the pattern. */
    if (pat->len > REGO_MAX_REGEX_BYTES)
        return false;
    if (e - p >= 4 && memcmp(p, "(?i)", 4) == 0) {
        *flags |= REG_ICASE;
        p += 4;
    }
    if (e - p >= 4 && memcmp(p, "(?s)", 4) == 0)
        p += 4;
    while (p < e && rc == 0) {
        char c = *p;
        if (c == '\0')
            return false;
        if (c == '\\' && p + 1 < e) {
            char d = p[1];
            p += 2;
            prev_quant = false;
            switch (d) {
            case 'd':
                rc = buf_append_str(out, in_class ? "0-9" : "[0-9]");
                break;
            case 'D':
                if (in_class)
                    return false;
                rc = buf_append_str(out, "[^0-9]");
                break;
            case 'A':
                rc = buf_append_str(out, "^");
                break;
            case 'z':
                rc = buf_append_str(out, "$");
                break;
            case 'w':
                rc = buf_append_str(out, in_class ? "0-9A-Za-z_" : "[0-9A-Za-z_]");
                break;
            case 's':
                rc = buf_append_str(out, in_class ? " \t\n\r\f\v" : "[ \t\n\r\f\v]");
                break;
            case 'W':
            case 'S':
                if (in_class)
                    return false;
                rc = buf_append_str(out, d == 'W' ? "[^0-9A-Za-z_]" : "[^ \t\n\r\f\v]");
                break;
            case 'n':
                rc = buf_append_str(out, "\n");
                break;
            case 't':
                rc = buf_append_str(out, "\t");
                break;
            case 'p':
            case 'P':
            case 'Q':
            case 'E':
                return false;
            default:
                if (in_class) {
                    if (d == ']' || d == '\\' || d == '-' || d == '^') {
                        /* POSIX classes have no escapes; put the char where it is literal. */
                        rc = buf_append(out,
                                        d == '\\'  ? "\\"
                                        : d == '-' ? "-"
                                        : d == '^' ? "^"
                                                   : "]",
                                        1);
                        if (d == ']')
                            return false;
                    } else {
                        rc = buf_append(out, &d, 1);
                    }
                } else if ((d >= 'a' && d <= 'z') || (d >= 'A' && d <= 'Z') ||
                           (d >= '0' && d <= '9')) {
                    if (d == 'b' || d == 'B')
                        rc = buf_append(out, p - 2, 2);
                    else
                        return false;
                } else {
                    rc = buf_append(out, p - 2, 2);
                }
            }
            continue;
        }
        if (in_class) {
            prev_quant = false;
            if (c == ']')
                in_class = false;
            rc = buf_append(out, p++, 1);
            continue;
        }
        if (c == '[') {
            prev_quant = false;
            in_class = true;
            rc = buf_append(out, p++, 1);
            if (p < e && *p == '^')
                rc = buf_append(out, p++, 1);
            if (p < e && *p == ']')
                rc = buf_append(out, p++, 1);
            continue;
        }
        if (c == '(' && e - p >= 3 && p[1] == '?') {
            if (p[2] == ':') {
                rc = buf_append(out, "(", 1);
                p += 3;
                continue;
            }
            if (p[2] == 'P' || p[2] == '<') {
                /* named group: drop the name */
                const char *q = p + 2;
                while (q < e && *q != '>')
                    q++;
                if (q >= e)
                    return false;
                rc = buf_append(out, "(", 1);
                p = q + 1;
                continue;
            }
            return false;
        }
        if (c == '*' || c == '+' || c == '?' || c == '{') {
            if (prev_quant)
                return false;
            if (c == '{') {
                const char *q = p + 1;
                unsigned long a = 0, b = 0;
                while (q < e && *q >= '0' && *q <= '9' && a <= 100000)
                    a = a * 10 + (unsigned long)(*q++ - '0');
                b = a;
                if (q < e && *q == ',') {
                    q++;
                    b = 0;
                    while (q < e && *q >= '0' && *q <= '9' && b <= 100000)
                        b = b * 10 + (unsigned long)(*q++ - '0');
                    if (b < a)
                        b = a;
                }
                reps += b > 1 ? b : 1;
                if (a > 1000 || b > 1000 || reps > 1000)
                    return false;
                while (p < e && *p != '}')
                    rc = rc != 0 ? rc : buf_append(out, p++, 1);
                if (p >= e)
                    return false;
                rc = rc != 0 ? rc : buf_append(out, p++, 1);
            } else {
                rc = buf_append(out, p++, 1);
            }
            if (p < e && *p == '?')
                p++; /* lazy: POSIX has only greedy */
            prev_quant = true;
            continue;
        }
        prev_quant = false;
        rc = buf_append(out, p++, 1);
    }
    return rc == 0 && !in_class;
}

static void free_regex(void *p)
{
    regfree(p);
}

/* Compiles @p pat into a regex_t held in the arena and released even if evaluation jumps out;
 * NULL when the pattern is invalid or outside the supported subset. Release with re_done. */
static regex_t *re_compile(rego_eval_t *ev, const rv_t *pat)
{
    regex_t *re = rego__alloc(A, sizeof(*re));
    buf_t *b = rego__buf(ev, 1u << 20);
    int flags;
    bool ok = re_translate(pat, b, &flags) && regcomp(re, b->len > 0 ? buf_ptr(b) : "", flags) == 0;
    rego__buf_done(ev, b);
    if (!ok)
        return NULL;
    rego__defer(ev, free_regex, re);
    return re;
}

static void re_done(rego_eval_t *ev, regex_t *re)
{
    rego__undefer(ev, re);
    regfree(re);
}

#undef NAME
#define NAME "regex.match"
static rv_t *bi_regex_match(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    regex_t *re;
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if ((re = re_compile(ev, args[0])) == NULL)
        return rego__bi_err(ev, "regex.match: error parsing regexp: %s", args[0]->str);
    bool m = regexec(re, args[1]->str, 0, NULL, 0) == 0;
    re_done(ev, re);
    return boolv(m);
}

#undef NAME
#define NAME "regex.is_valid"
static rv_t *bi_regex_is_valid(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    regex_t *re;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return &rego__false;
    if ((re = re_compile(ev, args[0])) == NULL)
        return &rego__false;
    re_done(ev, re);
    return &rego__true;
}

#undef NAME
#define NAME "regex.split"
static rv_t *bi_regex_split(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    regex_t *re;
    regmatch_t m;
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    if ((re = re_compile(ev, args[0])) == NULL)
        return rego__bi_err(ev, "regex.split: error parsing regexp");
    rv_t *r = rego__arr(A, 4);
    const char *s = args[1]->str, *end = s + args[1]->len;
    int eflags = 0;
    while (s <= end && regexec(re, s, 1, &m, eflags) == 0) {
        if (m.rm_eo == 0 && m.rm_so == 0) {
            if (s == end)
                break;
            /* empty match: split after one char */
            rego__arr_push(A, r, strv(ev, s, 1));
            s++;
            eflags = REG_NOTBOL;
            continue;
        }
        rego__arr_push(A, r, strv(ev, s, (size_t)m.rm_so));
        s += m.rm_eo;
        eflags = REG_NOTBOL;
    }
    rego__arr_push(A, r, strv(ev, s, (size_t)(end - s)));
    re_done(ev, re);
    return r;
}

#undef NAME
#define NAME "regex.find_n"
static rv_t *bi_regex_find_n(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    regex_t *re;
    regmatch_t m;
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    NEED_NUM(2);
    if ((re = re_compile(ev, args[0])) == NULL)
        return rego__bi_err(ev, "regex.find_n: error parsing regexp");
    rv_t *r = rego__arr(A, 4);
    const char *s = args[1]->str, *end = s + args[1]->len;
    double lim = args[2]->num;
    int eflags = 0;
    while (s <= end && (lim < 0 || r->len < lim) && regexec(re, s, 1, &m, eflags) == 0) {
        rego__arr_push(A, r, strv(ev, s + m.rm_so, (size_t)(m.rm_eo - m.rm_so)));
        if (m.rm_eo == 0) {
            if (s == end)
                break;
            s++;
        } else {
            s += m.rm_eo;
        }
        eflags = REG_NOTBOL;
    }
    re_done(ev, re);
    return r;
}

#undef NAME
#define NAME "regex.replace"
static rv_t *bi_regex_replace(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    regex_t *re;
    regmatch_t m;
    buf_t *b;
    (void)n;
    NEED_STR(0);
    NEED_STR(1);
    NEED_STR(2);
    if ((re = re_compile(ev, args[1])) == NULL)
        return rego__bi_err(ev, "regex.replace: error parsing regexp");
    b = rego__buf(ev, 16u << 20);
    const char *s = args[0]->str, *end = s + args[0]->len;
    int eflags = 0, rc = 0;
    while (s <= end && rc == 0 && regexec(re, s, 1, &m, eflags) == 0) {
        rc = buf_append(b, s, (size_t)m.rm_so);
        if (rc == 0)
            rc = buf_append(b, args[2]->str, args[2]->len);
        if (m.rm_eo == 0) {
            if (s == end)
                break;
            if (rc == 0)
                rc = buf_append(b, s, 1);
            s++;
        } else {
            s += m.rm_eo;
        }
        eflags = REG_NOTBOL;
    }
    if (rc == 0 && s < end)
        rc = buf_append(b, s, (size_t)(end - s));
    re_done(ev, re);
    rv_t *r = strv(ev, b->len > 0 ? buf_ptr(b) : "", b->len);
    rego__buf_done(ev, b);
    return r;
}

/* ---- glob ---- */

static bool is_delim(const rv_t *delims, const char *p, size_t l)
{
    for (uint32_t i = 0; i < delims->len; i++) {
        const rv_t *d = delims->a[i];
        if (d->len == l && memcmp(d->str, p, l) == 0)
            return true;
    }
    return false;
}

static size_t u8len(const char *p, const char *e)
{
    size_t l = 1;
    while (p + l < e && ((unsigned char)p[l] & 0xC0) == 0x80)
        l++;
    return l;
}

static int glob_rec(rego_eval_t *ev, const char *p, const char *pe, const char *s, const char *se,
                    const rv_t *delims, int depth);

/* Expands the first {a,b} alternative group. */
static int glob_alt(rego_eval_t *ev, const char *p, const char *pe, const char *brace,
                    const char *s, const char *se, const rv_t *delims, int depth)
{
    const char *q = brace + 1, *close = NULL;
    int level = 0;
    for (const char *x = brace + 1; x < pe; x++) {
        if (*x == '\\') {
            x++;
            continue;
        }
        if (*x == '{')
            level++;
        else if (*x == '}') {
            if (level == 0) {
                close = x;
                break;
            }
            level--;
        }
    }
    if (close == NULL)
        return -1;
    const char *start = q;
    level = 0;
    for (const char *x = q; x <= close; x++) {
        if (x < close && *x == '\\') {
            x++;
            continue;
        }
        if (x < close && *x == '{')
            level++;
        else if (x < close && *x == '}')
            level--;
        if (x == close || (*x == ',' && level == 0)) {
            size_t pre = (size_t)(brace - p), alt = (size_t)(x - start),
                   post = (size_t)(pe - close - 1);
            char *np = rego__alloc(&ev->arena, pre + alt + post + 1);
            memcpy(np, p, pre);
            memcpy(np + pre, start, alt);
            memcpy(np + pre + alt, close + 1, post);
            int r = glob_rec(ev, np, np + pre + alt + post, s, se, delims, depth + 1);
            if (r != 0)
                return r;
            start = x + 1;
        }
    }
    return 0;
}

static int glob_rec(rego_eval_t *ev, const char *p, const char *pe, const char *s, const char *se,
                    const rv_t *delims, int depth)
{
    rego__step(ev);
    if (depth > 64)
        return -1;
    for (const char *x = p; x < pe; x++) {
        if (*x == '\\') {
            x++;
            continue;
        }
        if (*x == '[') {
            while (x < pe && *x != ']')
                x++;
            continue;
        }
        if (*x == '{')
            return glob_alt(ev, p, pe, x, s, se, delims, depth);
    }
    while (p < pe) {
        char c = *p;
        if (c == '*') {
            bool super = p + 1 < pe && p[1] == '*';
            const char *rest = p + (super ? 2 : 1);
            for (const char *t = s;;) {
                int r = glob_rec(ev, rest, pe, t, se, delims, depth + 1);
                if (r != 0)
                    return r;
                if (t >= se)
                    return 0;
                size_t l = u8len(t, se);
                if (!super && is_delim(delims, t, l))
                    return 0;
                t += l;
            }
        }
        if (s >= se)
            return 0;
        size_t sl = u8len(s, se);
        if (c == '?') {
            if (is_delim(delims, s, sl))
                return 0;
            p++;
            s += sl;
            continue;
        }
        if (c == '[') {
            const char *q = p + 1;
            bool neg = false, hit = false;
            if (q < pe && (*q == '!' || *q == '^')) {
                neg = true;
                q++;
            }
            while (q < pe && *q != ']') {
                size_t ql = u8len(q, pe);
                if (q + ql < pe && q[ql] == '-' && q + ql + 1 < pe && q[ql + 1] != ']') {
                    const char *hi = q + ql + 1;
                    size_t hl = u8len(hi, pe);
                    if (memcmp(s, q, sl < ql ? sl : ql) >= 0 &&
                        memcmp(s, hi, sl < hl ? sl : hl) <= 0)
                        hit = true;
                    q = hi + hl;
                } else {
                    if (ql == sl && memcmp(q, s, sl) == 0)
                        hit = true;
                    q += ql;
                }
            }
            if (q >= pe)
                return -1;
            if (hit == neg)
                return 0;
            p = q + 1;
            s += sl;
            continue;
        }
        if (c == '\\' && p + 1 < pe)
            p++;
        size_t pl = u8len(p, pe);
        if (pl != sl || memcmp(p, s, sl) != 0)
            return 0;
        p += pl;
        s += sl;
    }
    return s == se ? 1 : 0;
}

#undef NAME
#define NAME "glob.match"
static rv_t *bi_glob_match(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    if (args[1]->kind != REGO_ARRAY && args[1]->kind != REGO_NULL)
        return rego__type_err(ev, NAME, 2, "array[string]", args[1]);
    NEED_STR(2);
    rv_t *delims = args[1];
    if (delims->kind == REGO_NULL) {
        delims = rego__arr(A, 0);
    } else if (delims->len == 0) {
        delims = rego__arr(A, 1);
        rego__arr_push(A, delims, strv(ev, ".", 1));
    }
    for (uint32_t i = 0; i < delims->len; i++)
        if (delims->a[i]->kind != REGO_STRING)
            return rego__type_err(ev, NAME, 2, "array[string]", args[1]);
    int r = glob_rec(ev, args[0]->str, args[0]->str + args[0]->len, args[2]->str,
                     args[2]->str + args[2]->len, delims, 0);
    if (r < 0)
        return rego__bi_err(ev, "glob.match: invalid pattern");
    return boolv(r == 1);
}

#undef NAME
#define NAME "glob.quote_meta"
static rv_t *bi_glob_quote_meta(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    buf_t *b;
    (void)n;
    NEED_STR(0);
    b = rego__buf(ev, 16u << 20);
    for (uint32_t i = 0; i < args[0]->len; i++) {
        char c = args[0]->str[i];
        if (strchr("*?\\[]{}", c) != NULL && buf_append(b, "\\", 1) < 0)
            break;
        if (buf_append(b, &c, 1) < 0)
            break;
    }
    rv_t *r = strv(ev, b->len > 0 ? buf_ptr(b) : "", b->len);
    rego__buf_done(ev, b);
    return r;
}

/* ---- JSON ---- */

#undef NAME
#define NAME "json.marshal"
rv_t *rego__marshal(rego_eval_t *ev, const rv_t *v, const char *builtin)
{
    buf_t *b = rego__buf(ev, 64u << 20);
    if (rego__to_json_text(v, b) < 0) {
        rego__buf_done(ev, b);
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "%s: too large", builtin);
    }
    rv_t *r = strv(ev, buf_ptr(b), b->len);
    rego__buf_done(ev, b);
    return r;
}

static rv_t *bi_json_marshal(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    return rego__marshal(ev, args[0], "json.marshal");
}

/* Policies often unmarshal the same body in several rules: remember the last few per
 * evaluation (values are immutable, so sharing is safe). */
static rv_t *parse_json(rego_eval_t *ev, const rv_t *s)
{
    rv_t *v;
    for (uint32_t i = 0; i < 4; i++)
        if (ev->unm_key[i] == s)
            return ev->unm_val[i];
    v = rego__json_parse(A, s->str, s->len);
    if (v != NULL) {
        ev->unm_key[ev->unm_next % 4] = s;
        ev->unm_val[ev->unm_next % 4] = v;
        ev->unm_next++;
    }
    return v;
}

#undef NAME
#define NAME "json.unmarshal"
static rv_t *bi_json_unmarshal(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    rv_t *v = parse_json(ev, args[0]);
    if (v == NULL)
        return rego__bi_err(ev, "json.unmarshal: invalid JSON");
    return v;
}

#undef NAME
#define NAME "json.is_valid"
static rv_t *bi_json_is_valid(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return &rego__false;
    return boolv(parse_json(ev, args[0]) != NULL);
}

/* ---- base64 / hex ---- */

static const char b64std[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static rv_t *b64_encode(rego_eval_t *ev, const rv_t *s, const char *alpha, bool pad)
{
    size_t n = s->len, o = 0;
    char *out = rego__alloc(A, (n + 2) / 3 * 4 + 1);
    const unsigned char *p = (const unsigned char *)s->str;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < n ? (unsigned)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = alpha[(v >> 18) & 63];
        out[o++] = alpha[(v >> 12) & 63];
        if (i + 1 < n)
            out[o++] = alpha[(v >> 6) & 63];
        else if (pad)
            out[o++] = '=';
        if (i + 2 < n)
            out[o++] = alpha[v & 63];
        else if (pad)
            out[o++] = '=';
    }
    out[o] = '\0';
    return rego__str_own(A, out, o);
}

/* Decodes base64 (either alphabet per @p url); padding optional unless @p strict_pad. Returns
 * false on bad input. */
bool rego__b64_decode(rego__arena_t *a, const char *s, size_t n, bool url, char **out,
                      size_t *outn);
bool rego__b64_decode(rego__arena_t *a, const char *s, size_t n, bool url, char **out, size_t *outn)
{
    char *o = rego__alloc(a, n / 4 * 3 + 4);
    size_t on = 0;
    unsigned acc = 0;
    int bits = 0;
    size_t i;
    for (i = 0; i < n; i++) {
        char c = s[i];
        int v;
        if (c == '=')
            break;
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == (url ? '-' : '+'))
            v = 62;
        else if (c == (url ? '_' : '/'))
            v = 63;
        else
            return false;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            o[on++] = (char)((acc >> bits) & 0xFF);
        }
    }
    for (; i < n; i++)
        if (s[i] != '=')
            return false;
    if (bits >= 6)
        return false;
    o[on] = '\0';
    *out = o;
    *outn = on;
    return true;
}

#undef NAME
#define NAME "base64.encode"
static rv_t *bi_b64_encode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    return b64_encode(ev, args[0], b64std, true);
}
#undef NAME
#define NAME "base64url.encode"
static rv_t *bi_b64url_encode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    return b64_encode(ev, args[0], b64url, true);
}
#undef NAME
#define NAME "base64url.encode_no_pad"
static rv_t *bi_b64url_encode_np(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    return b64_encode(ev, args[0], b64url, false);
}
#undef NAME
#define NAME "base64.decode"
static rv_t *bi_b64_decode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char *o;
    size_t on;
    (void)n;
    NEED_STR(0);
    if (args[0]->len % 4 != 0 || !rego__b64_decode(A, args[0]->str, args[0]->len, false, &o, &on))
        return rego__bi_err(ev, "base64.decode: illegal base64 data at input byte 0");
    return rego__str_own(A, o, on);
}
#undef NAME
#define NAME "base64.is_valid"
static rv_t *bi_b64_is_valid(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char *o;
    size_t on;
    (void)n;
    NEED_STR(0);
    return boolv(args[0]->len % 4 == 0 &&
                 rego__b64_decode(A, args[0]->str, args[0]->len, false, &o, &on));
}
#undef NAME
#define NAME "base64url.decode"
static rv_t *bi_b64url_decode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    char *o;
    size_t on;
    (void)n;
    NEED_STR(0);
    if (!rego__b64_decode(A, args[0]->str, args[0]->len, true, &o, &on))
        return rego__bi_err(ev, "base64url.decode: illegal base64 data at input byte 0");
    return rego__str_own(A, o, on);
}

#undef NAME
#define NAME "hex.encode"
static rv_t *bi_hex_encode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    char *o = rego__alloc(A, args[0]->len * 2 + 1);
    for (uint32_t i = 0; i < args[0]->len; i++) {
        unsigned char c = (unsigned char)args[0]->str[i];
        o[2 * i] = "0123456789abcdef"[c >> 4];
        o[2 * i + 1] = "0123456789abcdef"[c & 15];
    }
    o[args[0]->len * 2] = '\0';
    return rego__str_own(A, o, args[0]->len * 2);
}

#undef NAME
#define NAME "hex.decode"
static rv_t *bi_hex_decode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_STR(0);
    uint32_t len = args[0]->len;
    char *o = rego__alloc(A, len / 2 + 1);
    for (uint32_t i = 0; i + 1 < len + 1 && i < len; i += 2) {
        int h = str_hex_digit(args[0]->str[i]),
            l = i + 1 < len ? str_hex_digit(args[0]->str[i + 1]) : -1;
        if (h < 0 || l < 0) {
            unsigned char bad = (unsigned char)args[0]->str[h < 0 ? i : i + 1];
            if (i + 1 >= len && h >= 0)
                return rego__bi_err(ev, "hex.decode: encoding/hex: odd length hex string");
            return rego__bi_err(ev, "hex.decode: encoding/hex: invalid byte: U+%04X '%c'", bad,
                                bad);
        }
        o[i / 2] = (char)(h * 16 + l);
    }
    o[len / 2] = '\0';
    return rego__str_own(A, o, len / 2);
}

/* ---- objects ---- */

#undef NAME
#define NAME "object.get"
static rv_t *bi_object_get(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    if (args[1]->kind == REGO_ARRAY) {
        rv_t *cur = args[0];
        for (uint32_t i = 0; i < args[1]->len; i++) {
            rv_t *k = args[1]->a[i];
            rv_t *next = NULL;
            if (cur->kind == REGO_OBJECT)
                next = rego__obj_get(cur, k);
            else if (cur->kind == REGO_ARRAY && rego__is_int(k) && k->num >= 0 && k->num < cur->len)
                next = cur->a[(uint32_t)k->num];
            else if (cur->kind == REGO_SET && rego__set_has(cur, k))
                next = k;
            if (next == NULL)
                return args[2];
            cur = next;
        }
        return cur;
    }
    rv_t *v = rego__obj_get(args[0], args[1]);
    return v != NULL ? v : args[2];
}

#undef NAME
#define NAME "object.keys"
static rv_t *bi_object_keys(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    rv_t *s = rego__set(A, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        rego__set_add(A, s, args[0]->a[i]);
    return s;
}

static rv_t *merge(rego_eval_t *ev, rv_t *a, rv_t *b)
{
    if (a->kind != REGO_OBJECT || b->kind != REGO_OBJECT)
        return b;
    rv_t *o = rego__obj(A, a->len + b->len);
    for (uint32_t i = 0; i < a->len; i++)
        (void)rego__obj_put(A, o, a->a[i], a->v[i]);
    for (uint32_t i = 0; i < b->len; i++) {
        rv_t *old = rego__obj_get(o, b->a[i]);
        rego__obj_set(A, o, b->a[i], old != NULL ? merge(ev, old, b->v[i]) : b->v[i]);
    }
    return o;
}

#undef NAME
#define NAME "object.union"
static rv_t *bi_object_union(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    NEED_OBJ(1);
    return merge(ev, args[0], args[1]);
}

#undef NAME
#define NAME "object.union_n"
static rv_t *bi_object_union_n(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_ARR(0);
    rv_t *r = rego__obj(A, 0);
    for (uint32_t i = 0; i < args[0]->len; i++) {
        if (args[0]->a[i]->kind != REGO_OBJECT)
            return rego__type_err(ev, NAME, 1, "array[object]", args[0]);
        r = merge(ev, r, args[0]->a[i]);
    }
    return r;
}

static rv_t *key_set(rego_eval_t *ev, const char *name, rv_t *k)
{
    if (k->kind == REGO_SET)
        return k;
    if (k->kind == REGO_ARRAY) {
        rv_t *s = rego__set(A, k->len);
        for (uint32_t i = 0; i < k->len; i++)
            rego__set_add(A, s, k->a[i]);
        return s;
    }
    if (k->kind == REGO_OBJECT) {
        rv_t *s = rego__set(A, k->len);
        for (uint32_t i = 0; i < k->len; i++)
            rego__set_add(A, s, k->a[i]);
        return s;
    }
    return rego__type_err(ev, name, 2, "one of {object, set, array}", k);
}

#undef NAME
#define NAME "object.remove"
static rv_t *bi_object_remove(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    rv_t *ks = key_set(ev, NAME, args[1]);
    rv_t *o = rego__obj(A, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (!rego__set_has(ks, args[0]->a[i]))
            (void)rego__obj_put(A, o, args[0]->a[i], args[0]->v[i]);
    return o;
}

#undef NAME
#define NAME "object.filter"
static rv_t *bi_object_filter(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_OBJ(0);
    rv_t *ks = key_set(ev, NAME, args[1]);
    rv_t *o = rego__obj(A, args[0]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        if (rego__set_has(ks, args[0]->a[i]))
            (void)rego__obj_put(A, o, args[0]->a[i], args[0]->v[i]);
    return o;
}

#undef NAME
#define NAME "union"
static rv_t *bi_union(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_SET(0);
    rv_t *s = rego__set(A, 4);
    for (uint32_t i = 0; i < args[0]->len; i++) {
        rv_t *x = args[0]->a[i];
        if (x->kind != REGO_SET)
            return rego__type_err(ev, NAME, 1, "set[set[any]]", args[0]);
        for (uint32_t j = 0; j < x->len; j++)
            rego__set_add(A, s, x->a[j]);
    }
    return s;
}

#undef NAME
#define NAME "intersection"
static rv_t *bi_intersection(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_SET(0);
    if (args[0]->len == 0)
        return rego__set(A, 0);
    rv_t *s = NULL;
    for (uint32_t i = 0; i < args[0]->len; i++) {
        rv_t *x = args[0]->a[i];
        if (x->kind != REGO_SET)
            return rego__type_err(ev, NAME, 1, "set[set[any]]", args[0]);
        if (s == NULL) {
            s = x;
            continue;
        }
        rv_t *t = rego__set(A, s->len);
        for (uint32_t j = 0; j < s->len; j++)
            if (rego__set_has(x, s->a[j]))
                rego__set_add(A, t, s->a[j]);
        s = t;
    }
    return s;
}

/* ---- arrays ---- */

#undef NAME
#define NAME "array.concat"
static rv_t *bi_array_concat(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_ARR(0);
    NEED_ARR(1);
    rv_t *r = rego__arr(A, args[0]->len + args[1]->len);
    for (uint32_t i = 0; i < args[0]->len; i++)
        rego__arr_push(A, r, args[0]->a[i]);
    for (uint32_t i = 0; i < args[1]->len; i++)
        rego__arr_push(A, r, args[1]->a[i]);
    return r;
}

#undef NAME
#define NAME "array.slice"
static rv_t *bi_array_slice(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_ARR(0);
    NEED_NUM(1);
    NEED_NUM(2);
    double a = floor(args[1]->num), b = floor(args[2]->num), len = args[0]->len;
    if (a < 0)
        a = 0;
    if (b > len)
        b = len;
    rv_t *r = rego__arr(A, 4);
    for (double i = a; i < b; i++)
        rego__arr_push(A, r, args[0]->a[(uint32_t)i]);
    return r;
}

#undef NAME
#define NAME "array.reverse"
static rv_t *bi_array_reverse(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_ARR(0);
    rv_t *r = rego__arr(A, args[0]->len);
    for (uint32_t i = args[0]->len; i-- > 0;)
        rego__arr_push(A, r, args[0]->a[i]);
    return r;
}

/* OPA's array.flatten removes one level of nesting. */
static void flatten(rego_eval_t *ev, rv_t *out, rv_t *in)
{
    for (uint32_t i = 0; i < in->len; i++) {
        if (in->a[i]->kind == REGO_ARRAY)
            for (uint32_t j = 0; j < in->a[i]->len; j++)
                rego__arr_push(A, out, in->a[i]->a[j]);
        else
            rego__arr_push(A, out, in->a[i]);
    }
}

#undef NAME
#define NAME "array.flatten"
static rv_t *bi_array_flatten(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_ARR(0);
    rv_t *r = rego__arr(A, args[0]->len);
    flatten(ev, r, args[0]);
    return r;
}

/* ---- numbers ---- */

#undef NAME
#define NAME "numbers.range"
static rv_t *bi_numbers_range(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    if (!rego__is_int(args[0]))
        rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                   "numbers.range: operand 1 must be integer number but got floating-point number");
    if (!rego__is_int(args[1]))
        rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                   "numbers.range: operand 2 must be integer number but got floating-point number");
    double a = args[0]->num, b = args[1]->num;
    if (fabs(b - a) > 10000000)
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "numbers.range: range too large");
    rv_t *r = rego__arr(A, (uint32_t)fabs(b - a) + 1);
    if (a <= b)
        for (double i = a; i <= b; i++)
            rego__arr_push(A, r, rego__num(A, i));
    else
        for (double i = a; i >= b; i--)
            rego__arr_push(A, r, rego__num(A, i));
    return r;
}

#undef NAME
#define NAME "numbers.range_step"
static rv_t *bi_numbers_range_step(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)n;
    NEED_NUM(0);
    NEED_NUM(1);
    NEED_NUM(2);
    double a = args[0]->num, b = args[1]->num, st = args[2]->num;
    if (!rego__is_int(args[0]) || !rego__is_int(args[1]) || !rego__is_int(args[2]))
        rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                   "numbers.range_step: operands must be integer numbers");
    if (st <= 0)
        return rego__bi_err(ev, "numbers.range_step: step must be a positive number above zero");
    if (fabs(b - a) / st > 10000000)
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "numbers.range_step: range too large");
    rv_t *r = rego__arr(A, 4);
    if (a <= b)
        for (double i = a; i <= b; i += st)
            rego__arr_push(A, r, rego__num(A, i));
    else
        for (double i = a; i >= b; i -= st)
            rego__arr_push(A, r, rego__num(A, i));
    return r;
}

/* walk(x, [path, value]): every node of x with its path, x itself first (path []). */
static void walk_into(rego_eval_t *ev, rv_t *out, rv_t *path, rv_t *v)
{
    rv_t *pair = rego__arr(A, 2);
    rego__step(ev);
    rego__arr_push(A, pair, path);
    rego__arr_push(A, pair, v);
    rego__arr_push(A, out, pair);
    if (v->kind < REGO_ARRAY)
        return;
    for (uint32_t i = 0; i < v->len; i++) {
        rv_t *key = v->kind == REGO_ARRAY ? rego__num(A, i) : v->a[i];
        rv_t *child = v->kind == REGO_OBJECT ? v->v[i] : v->a[i];
        rv_t *p = rego__arr(A, path->len + 1);
        for (uint32_t j = 0; j < path->len; j++)
            rego__arr_push(A, p, path->a[j]);
        rego__arr_push(A, p, key);
        walk_into(ev, out, p, child);
    }
}

static rv_t *bi_walk(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    rv_t *out = rego__arr(A, 8);
    (void)n;
    walk_into(ev, out, rego__arr(A, 0), args[0]);
    return out;
}

/* ---- net ---- */

/* Parses an IPv4/IPv6 address or CIDR into 16 bytes and a prefix length. */
static bool parse_cidr(const rv_t *s, unsigned char addr[16], int *bits, bool *v4)
{
    char tmp[64];
    const char *slash;
    if (s->kind != REGO_STRING || s->len == 0 || s->len >= sizeof(tmp))
        return false;
    memcpy(tmp, s->str, s->len);
    tmp[s->len] = '\0';
    slash = strchr(tmp, '/');
    if (slash != NULL)
        tmp[slash - tmp] = '\0';
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, tmp, addr + 12) == 1) {
        *v4 = true;
        *bits = 32;
    } else if (inet_pton(AF_INET6, tmp, addr) == 1) {
        *v4 = false;
        *bits = 128;
    } else {
        return false;
    }
    if (slash != NULL) {
        uint64_t b;
        const char *num = s->str + (slash - tmp) + 1;
        size_t nl = s->len - (size_t)(slash - tmp) - 1;
        if (str_u64(num, nl, (uint64_t)*bits, &b) < 0)
            return false;
        *bits = (int)b;
    }
    if (*v4)
        *bits += 96;
    return true;
}

static bool in_prefix(const unsigned char net[16], int bits, const unsigned char a[16])
{
    for (int i = 0; i < bits; i++) {
        int byte = i / 8, bit = 7 - i % 8;
        if (((net[byte] >> bit) & 1) != ((a[byte] >> bit) & 1))
            return false;
    }
    return true;
}

static rv_t *bi_cidr_contains(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    unsigned char net[16], a[16];
    int nb, ab;
    bool v4n, v4a;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, "net.cidr_contains", 1, "string", args[0]);
    if (args[1]->kind != REGO_STRING)
        return rego__type_err(ev, "net.cidr_contains", 2, "string", args[1]);
    if (!parse_cidr(args[0], net, &nb, &v4n) || strchr(args[0]->str, '/') == NULL)
        return rego__bi_err(ev, "net.cidr_contains: invalid CIDR address: %s", args[0]->str);
    if (!parse_cidr(args[1], a, &ab, &v4a))
        return rego__bi_err(ev, "net.cidr_contains: invalid address: %s", args[1]->str);
    if (v4n != v4a)
        return &rego__false;
    return ab >= nb && in_prefix(net, nb, a) ? &rego__true : &rego__false;
}

static rv_t *bi_cidr_intersects(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    unsigned char a[16], b[16];
    int ab, bb;
    bool v4a, v4b;
    (void)n;
    if (!parse_cidr(args[0], a, &ab, &v4a) || !parse_cidr(args[1], b, &bb, &v4b))
        return rego__bi_err(ev, "net.cidr_intersects: invalid CIDR");
    if (v4a != v4b)
        return &rego__false;
    return in_prefix(a, ab < bb ? ab : bb, b) ? &rego__true : &rego__false;
}

static rv_t *bi_cidr_is_valid(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    unsigned char a[16];
    int ab;
    bool v4;
    (void)ev;
    (void)n;
    return args[0]->kind == REGO_STRING && strchr(args[0]->str, '/') != NULL &&
                   parse_cidr(args[0], a, &ab, &v4)
               ? &rego__true
               : &rego__false;
}

/* No I/O in the engine: these exist so that policies compile and tests can mock them with
 * `with`; called for real they fail (undefined, or an error when strict). */
static rv_t *bi_http_send(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    static const char *const keys[] = {"method",
                                       "url",
                                       "body",
                                       "enable_redirect",
                                       "force_json_decode",
                                       "force_yaml_decode",
                                       "headers",
                                       "raw_body",
                                       "tls_use_system_certs",
                                       "tls_ca_cert",
                                       "tls_ca_cert_file",
                                       "tls_ca_cert_env_variable",
                                       "tls_client_cert",
                                       "tls_client_cert_file",
                                       "tls_client_cert_env_variable",
                                       "tls_client_key",
                                       "tls_client_key_file",
                                       "tls_client_key_env_variable",
                                       "tls_insecure_skip_verify",
                                       "tls_server_name",
                                       "timeout",
                                       "cache",
                                       "force_cache",
                                       "force_cache_duration_seconds",
                                       "raise_error",
                                       "caching_mode",
                                       "max_retry_attempts",
                                       "cache_ignored_headers",
                                       NULL};
    rv_t *req = args[0];
    (void)n;
    if (req->kind != REGO_OBJECT)
        return rego__type_err(ev, "http.send", 1, "object", req);
    /* The request is checked as OPA does, so mistakes show offline too. */
    for (uint32_t i = 0; i < req->len; i++) {
        bool known = false;
        for (int k = 0; keys[k] != NULL && !known; k++)
            known = req->a[i]->kind == REGO_STRING && strcmp(req->a[i]->str, keys[k]) == 0;
        if (!known) {
            buf_t *b;
            b = rego__buf(ev, 256);
            if (rego__to_json_text(req->a[i], b) < 0)
                rego__buf_done(ev, b);
            if (ev->strict) {
                char bad[200];
                snprintf(bad, sizeof(bad), "%s", b->len > 0 ? buf_ptr(b) : "?");
                rego__buf_done(ev, b);
                rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                           "http.send: invalid request parameters(s): {%s}", bad);
            }
            rego__buf_done(ev, b);
            return NULL;
        }
    }
    for (int k = 0; k < 2; k++) {
        if (rego__obj_gets(req, keys[k], strlen(keys[k])) == NULL) {
            if (!ev->strict)
                return NULL;
            rego__fail(ev, ERR_REGO_TYPE, "eval_type_error",
                       "http.send: missing required request parameters(s): {\"%s\"}", keys[k]);
        }
    }
    return rego__bi_err(ev, "http.send: not supported: the policy engine does no I/O");
}

/* units.parse_bytes: "10KB" = 10000, "1KiB" = 1024, case-insensitive, no unit = bytes. */
static rv_t *bi_units_parse_bytes(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    static const struct {
        const char *u;
        double m;
    } units[] = {{"", 1},
                 {"b", 1},
                 {"k", 1e3},
                 {"kb", 1e3},
                 {"ki", 1024.0},
                 {"kib", 1024.0},
                 {"m", 1e6},
                 {"mb", 1e6},
                 {"mi", 1048576.0},
                 {"mib", 1048576.0},
                 {"g", 1e9},
                 {"gb", 1e9},
                 {"gi", 1073741824.0},
                 {"gib", 1073741824.0},
                 {"t", 1e12},
                 {"tb", 1e12},
                 {"ti", 1099511627776.0},
                 {"tib", 1099511627776.0}};
    char num[64];
    (void)n;
    if (args[0]->kind != REGO_STRING)
        return rego__type_err(ev, "units.parse_bytes", 1, "string", args[0]);
    const char *s = args[0]->str, *e = s + args[0]->len, *p = s;
    while (p < e && ((*p >= '0' && *p <= '9') || *p == '.'))
        p++;
    size_t nl = (size_t)(p - s);
    if (nl == 0 || nl >= sizeof(num))
        return rego__bi_err(ev, "units.parse_bytes: no byte amount provided");
    memcpy(num, s, nl);
    num[nl] = '\0';
    char *end = NULL;
    double v = strtod(num, &end);
    if (end != num + nl)
        return rego__bi_err(ev, "units.parse_bytes: could not parse byte amount to a number");
    while (p < e && *p == ' ')
        p++;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if ((size_t)(e - p) == strlen(units[i].u) &&
            strncasecmp(p, units[i].u, (size_t)(e - p)) == 0)
            return rego__num(A, round(v * units[i].m));
    return rego__bi_err(ev, "units.parse_bytes: byte size unit not recognized");
}

static rv_t *bi_opa_runtime(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)args;
    (void)n;
    return rego__obj(A, 0);
}

static rv_t *bi_print(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    (void)ev;
    (void)args;
    (void)n;
    return &rego__true;
}

static const rego__builtin_t table[] = {
    {"equal", 2, bi_equal, false},
    {"neq", 2, bi_neq, false},
    {"lt", 2, bi_lt, false},
    {"lte", 2, bi_lte, false},
    {"gt", 2, bi_gt, false},
    {"gte", 2, bi_gte, false},
    {"plus", 2, bi_plus, false},
    {"minus", 2, bi_minus, false},
    {"mul", 2, bi_mul, false},
    {"div", 2, bi_div, false},
    {"rem", 2, bi_rem, false},
    {"and", 2, bi_and, false},
    {"or", 2, bi_or, false},
    {"internal.member_2", 2, bi_member2, false},
    {"internal.member_3", 3, bi_member3, false},
    {"abs", 1, bi_abs, false},
    {"round", 1, bi_round, false},
    {"ceil", 1, bi_ceil, false},
    {"floor", 1, bi_floor, false},
    {"count", 1, bi_count, false},
    {"sum", 1, bi_sum, false},
    {"product", 1, bi_product, false},
    {"max", 1, bi_max, false},
    {"min", 1, bi_min, false},
    {"sort", 1, bi_sort, false},
    {"all", 1, bi_all, false},
    {"any", 1, bi_any, false},
    {"is_number", 1, bi_is_number, false},
    {"is_string", 1, bi_is_string, false},
    {"is_boolean", 1, bi_is_boolean, false},
    {"is_array", 1, bi_is_array, false},
    {"is_set", 1, bi_is_set, false},
    {"is_object", 1, bi_is_object, false},
    {"is_null", 1, bi_is_null, false},
    {"type_name", 1, bi_type_name, false},
    {"to_number", 1, bi_to_number, false},
    {"startswith", 2, bi_startswith, false},
    {"endswith", 2, bi_endswith, false},
    {"contains", 2, bi_contains, false},
    {"strings.any_prefix_match", 2, bi_any_prefix, false},
    {"strings.any_suffix_match", 2, bi_any_suffix, false},
    {"lower", 1, bi_lower, false},
    {"upper", 1, bi_upper, false},
    {"split", 2, bi_split, false},
    {"concat", 2, bi_concat, false},
    {"substring", 3, bi_substring, false},
    {"indexof", 2, bi_indexof, false},
    {"indexof_n", 2, bi_indexof_n, false},
    {"trim", 2, bi_trim, false},
    {"trim_left", 2, bi_trim_left, false},
    {"trim_right", 2, bi_trim_right, false},
    {"trim_space", 1, bi_trim_space, false},
    {"trim_prefix", 2, bi_trim_prefix, false},
    {"trim_suffix", 2, bi_trim_suffix, false},
    {"replace", 3, bi_replace, false},
    {"strings.replace_n", 2, bi_replace_n, false},
    {"strings.reverse", 1, bi_reverse, false},
    {"strings.count", 2, bi_str_count, false},
    {"format_int", 2, bi_format_int, false},
    {"sprintf", 2, bi_sprintf, false},
    {"regex.match", 2, bi_regex_match, false},
    {"re_match", 2, bi_regex_match, false},
    {"regex.is_valid", 1, bi_regex_is_valid, false},
    {"regex.split", 2, bi_regex_split, false},
    {"regex.find_n", 3, bi_regex_find_n, false},
    {"regex.replace", 3, bi_regex_replace, false},
    {"glob.match", 3, bi_glob_match, false},
    {"glob.quote_meta", 1, bi_glob_quote_meta, false},
    {"json.marshal", 1, bi_json_marshal, false},
    {"json.unmarshal", 1, bi_json_unmarshal, false},
    {"json.is_valid", 1, bi_json_is_valid, false},
    {"base64.encode", 1, bi_b64_encode, false},
    {"base64.decode", 1, bi_b64_decode, false},
    {"base64.is_valid", 1, bi_b64_is_valid, false},
    {"base64url.encode", 1, bi_b64url_encode, false},
    {"base64url.encode_no_pad", 1, bi_b64url_encode_np, false},
    {"base64url.decode", 1, bi_b64url_decode, false},
    {"hex.encode", 1, bi_hex_encode, false},
    {"hex.decode", 1, bi_hex_decode, false},
    {"object.get", 3, bi_object_get, false},
    {"object.keys", 1, bi_object_keys, false},
    {"object.union", 2, bi_object_union, false},
    {"object.union_n", 1, bi_object_union_n, false},
    {"object.remove", 2, bi_object_remove, false},
    {"object.filter", 2, bi_object_filter, false},
    {"union", 1, bi_union, false},
    {"intersection", 1, bi_intersection, false},
    {"array.concat", 2, bi_array_concat, false},
    {"array.slice", 3, bi_array_slice, false},
    {"array.reverse", 1, bi_array_reverse, false},
    {"array.flatten", 1, bi_array_flatten, false},
    {"numbers.range", 2, bi_numbers_range, false},
    {"numbers.range_step", 3, bi_numbers_range_step, false},
    {"print", -1, bi_print, false},
    {"http.send", 1, bi_http_send, false},
    {"walk", 1, bi_walk, true},
    {"net.cidr_contains", 2, bi_cidr_contains, false},
    {"net.cidr_intersects", 2, bi_cidr_intersects, false},
    {"net.cidr_is_valid", 1, bi_cidr_is_valid, false},
    {"units.parse_bytes", 1, bi_units_parse_bytes, false},
    {"opa.runtime", 0, bi_opa_runtime, false},
    {NULL, 0, NULL, false},
};

const rego__builtin_t *rego__builtin_find(const char *name)
{
    const rego__builtin_t *tables[] = {table, rego__bi_time, rego__bi_jwt, rego__bi_yaml};
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const rego__builtin_t *b = tables[t]; b->name != NULL; b++)
            if (strcmp(b->name, name) == 0)
                return b;
    return NULL;
}
