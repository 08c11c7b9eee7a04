/*
 * value.c — Rego values (null, boolean, number, string, array, object, set), the arena they live
 * in, OPA's total order over them, and conversion to and from JSON.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/str.h"
#include "rego/rego_int.h"

struct rego__chunk {
    rego__chunk_t *next; /* older block */
    size_t size;         /* usable bytes after the header */
    size_t off;          /* bytes used */
    max_align_t data[];  /* the block */
};

#define ARENA_BLOCK (16 * 1024)

void rego__arena_init(rego__arena_t *a, size_t max)
{
    memset(a, 0, sizeof(*a));
    a->max = max;
}

/* Returns @p n bytes aligned for any type; past the bound, jumps to a->jb with ERR_REGO_LIMIT
 * (evaluation) or aborts (compile arenas have no bound). */
void *rego__alloc(rego__arena_t *a, size_t n)
{
    rego__chunk_t *c = a->head;
    size_t size;

    n = (n + 15) & ~(size_t)15;
    if (c != NULL && c->size - c->off >= n) {
        void *p = (char *)c->data + c->off;
        c->off += n;
        return p;
    }
    size = n > ARENA_BLOCK / 2 ? n : ARENA_BLOCK;
    if (a->max != 0 && a->used + size > a->max) {
        if (a->jb != NULL) {
            *a->jcode = ERR_REGO_LIMIT;
            longjmp(*a->jb, 1);
        }
    }
    c = mem_try_alloc(sizeof(*c) + size);
    if (c == NULL) {
        if (a->jb != NULL) {
            *a->jcode = ERR_NOMEM;
            longjmp(*a->jb, 1);
        }
        c = mem_alloc(sizeof(*c) + size);
    }
    a->used += size;
    c->size = size;
    c->off = n;
    if (n > ARENA_BLOCK / 2 && a->head != NULL) {
        /* A big block goes behind the current one so the current one keeps serving small
         * requests. */
        c->next = a->head->next;
        a->head->next = c;
    } else {
        c->next = a->head;
        a->head = c;
    }
    return c->data;
}

void rego__arena_free(rego__arena_t *a)
{
    rego__chunk_t *c = a->head;
    while (c != NULL) {
        rego__chunk_t *next = c->next;
        mem_free(c);
        c = next;
    }
    a->head = NULL;
    a->used = 0;
}

/* Keeps the newest standard block so that a reused eval context allocates nothing. */
void rego__arena_reset(rego__arena_t *a)
{
    rego__chunk_t *keep = NULL, *c = a->head;
    while (c != NULL) {
        rego__chunk_t *next = c->next;
        if (keep == NULL && c->size == ARENA_BLOCK) {
            keep = c;
            keep->next = NULL;
            keep->off = 0;
        } else {
            mem_free(c);
        }
        c = next;
    }
    a->head = keep;
    a->used = keep != NULL ? ARENA_BLOCK : 0;
}

char *rego__strndup(rego__arena_t *a, const char *s, size_t n)
{
    char *p = rego__alloc(a, n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

rv_t rego__true = {.kind = REGO_BOOL, .b = true};
rv_t rego__false = {.kind = REGO_BOOL, .b = false};
rv_t rego__null = {.kind = REGO_NULL};
rv_t rego__empty_str = {.kind = REGO_STRING, .str = ""};

rv_t *rego__num(rego__arena_t *a, double n)
{
    rv_t *v = rego__alloc(a, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->kind = REGO_NUMBER;
    v->num = n == 0 ? 0 : n; /* no negative zero */
    return v;
}

/* A number from source or JSON text. Doubles hold 15-17 digits: an integer literal longer than
 * that, or one that overflows, keeps its text, so that printing it and comparing it with
 * another such literal stay exact (OPA's numbers are arbitrary precision). */
rv_t *rego__num_text(rego__arena_t *a, double n, const char *text, size_t len)
{
    rv_t *v = rego__num(a, n);
    size_t digits = 0;
    bool integer = true;
    for (size_t i = 0; i < len; i++) {
        if (text[i] >= '0' && text[i] <= '9')
            digits++;
        else if (!(i == 0 && text[i] == '-'))
            integer = false;
    }
    if ((integer && digits > 15) || !isfinite(n)) {
        v->str = rego__strndup(a, text, len);
        v->len = (uint32_t)len;
    }
    return v;
}

/* Compares two integer literals by their text ("-123" < "45"). */
static int cmp_int_text(const rv_t *x, const rv_t *y)
{
    bool xn = x->str[0] == '-', yn = y->str[0] == '-';
    const char *xs = x->str + xn, *ys = y->str + yn;
    size_t xl = x->len - xn, yl = y->len - yn;
    int r;
    if (xn != yn)
        return xn ? -1 : 1;
    while (xl > 1 && *xs == '0') {
        xs++;
        xl--;
    }
    while (yl > 1 && *ys == '0') {
        ys++;
        yl--;
    }
    r = xl != yl ? (xl < yl ? -1 : 1) : memcmp(xs, ys, xl);
    r = r < 0 ? -1 : r > 0 ? 1 : 0;
    return xn ? -r : r;
}

rv_t *rego__str_own(rego__arena_t *a, const char *s, size_t n)
{
    rv_t *v = rego__alloc(a, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->kind = REGO_STRING;
    v->str = s;
    v->len = (uint32_t)n;
    return v;
}

rv_t *rego__str(rego__arena_t *a, const char *s, size_t n)
{
    return rego__str_own(a, rego__strndup(a, s, n), n);
}

static rv_t *coll(rego__arena_t *a, int kind, uint32_t cap)
{
    rv_t *v = rego__alloc(a, sizeof(*v));
    memset(v, 0, sizeof(*v));
    v->kind = (uint8_t)kind;
    if (cap > 0) {
        v->cap = cap;
        v->a = rego__alloc(a, cap * sizeof(rv_t *));
        if (kind == REGO_OBJECT)
            v->v = rego__alloc(a, cap * sizeof(rv_t *));
    }
    return v;
}

rv_t *rego__arr(rego__arena_t *a, uint32_t cap)
{
    return coll(a, REGO_ARRAY, cap);
}
rv_t *rego__set(rego__arena_t *a, uint32_t cap)
{
    return coll(a, REGO_SET, cap);
}
rv_t *rego__obj(rego__arena_t *a, uint32_t cap)
{
    return coll(a, REGO_OBJECT, cap);
}

static void grow(rego__arena_t *a, rv_t *c)
{
    uint32_t cap = c->cap < 4 ? 4 : c->cap * 2;
    rv_t **na = rego__alloc(a, cap * sizeof(rv_t *));
    if (c->len > 0)
        memcpy(na, c->a, c->len * sizeof(rv_t *));
    c->a = na;
    if (c->kind == REGO_OBJECT) {
        rv_t **nv = rego__alloc(a, cap * sizeof(rv_t *));
        if (c->len > 0)
            memcpy(nv, c->v, c->len * sizeof(rv_t *));
        c->v = nv;
    }
    c->cap = cap;
}

void rego__arr_push(rego__arena_t *a, rv_t *arr, rv_t *v)
{
    if (arr->len == arr->cap)
        grow(a, arr);
    arr->a[arr->len++] = v;
}

/* Index of @p k in the sorted keys, or -(insertion point)-1. */
static long find(const rv_t *c, const rv_t *k)
{
    long lo = 0, hi = (long)c->len - 1;
    /* Appending in order is the common case (JSON objects are often sorted, ranges ascend). */
    if (c->len > 0) {
        int r = rego__cmp(c->a[c->len - 1], k);
        if (r < 0)
            return -(long)c->len - 1;
        if (r == 0)
            return (long)c->len - 1;
    }
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        int r = rego__cmp(c->a[mid], k);
        if (r == 0)
            return mid;
        if (r < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -lo - 1;
}

bool rego__set_add(rego__arena_t *a, rv_t *set, rv_t *v)
{
    long i = find(set, v);
    if (i >= 0)
        return false;
    i = -i - 1;
    if (set->len == set->cap)
        grow(a, set);
    memmove(set->a + i + 1, set->a + i, (set->len - (size_t)i) * sizeof(rv_t *));
    set->a[i] = v;
    set->len++;
    return true;
}

rv_t *rego__obj_put(rego__arena_t *a, rv_t *obj, rv_t *k, rv_t *v)
{
    long i = find(obj, k);
    if (i >= 0)
        return obj->v[i];
    i = -i - 1;
    if (obj->len == obj->cap)
        grow(a, obj);
    memmove(obj->a + i + 1, obj->a + i, (obj->len - (size_t)i) * sizeof(rv_t *));
    memmove(obj->v + i + 1, obj->v + i, (obj->len - (size_t)i) * sizeof(rv_t *));
    obj->a[i] = k;
    obj->v[i] = v;
    obj->len++;
    return NULL;
}

void rego__obj_set(rego__arena_t *a, rv_t *obj, rv_t *k, rv_t *v)
{
    long i = find(obj, k);
    if (i >= 0)
        obj->v[i] = v;
    else
        (void)rego__obj_put(a, obj, k, v);
}

rv_t *rego__obj_get(const rv_t *obj, const rv_t *k)
{
    long i;
    if (obj->kind != REGO_OBJECT || obj->len == 0)
        return NULL;
    i = find(obj, k);
    return i >= 0 ? obj->v[i] : NULL;
}

rv_t *rego__obj_gets(const rv_t *obj, const char *k, size_t n)
{
    rv_t key = {.kind = REGO_STRING, .str = k, .len = (uint32_t)n};
    return rego__obj_get(obj, &key);
}

bool rego__set_has(const rv_t *set, const rv_t *v)
{
    return set->len > 0 && find(set, v) >= 0;
}

static int cmp_str(const rv_t *x, const rv_t *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int r = memcmp(x->str, y->str, n);
    if (r != 0)
        return r < 0 ? -1 : 1;
    return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

/* OPA's order: null < booleans < numbers < strings < arrays < objects < sets; collections compare
 * element by element (objects key, then value), then by length. */
int rego__cmp(const rv_t *x, const rv_t *y)
{
    if (x == y)
        return 0;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    switch (x->kind) {
    case REGO_NULL:
        return 0;
    case REGO_BOOL:
        return x->b == y->b ? 0 : x->b ? 1 : -1;
    case REGO_NUMBER:
        if (x->num != y->num || x->str == NULL || y->str == NULL || !isfinite(x->num))
            return x->num < y->num ? -1 : x->num > y->num ? 1 : 0;
        return cmp_int_text(x, y);
    case REGO_STRING:
        return cmp_str(x, y);
    default:
        break;
    }
    for (uint32_t i = 0; i < x->len && i < y->len; i++) {
        int r = rego__cmp(x->a[i], y->a[i]);
        if (r != 0)
            return r;
        if (x->kind == REGO_OBJECT) {
            r = rego__cmp(x->v[i], y->v[i]);
            if (r != 0)
                return r;
        }
    }
    return x->len < y->len ? -1 : x->len > y->len ? 1 : 0;
}

bool rego__eq(const rv_t *x, const rv_t *y)
{
    if (x->kind != y->kind || (x->kind >= REGO_STRING && x->len != y->len))
        return false;
    return rego__cmp(x, y) == 0;
}

bool rego__is_int(const rv_t *v)
{
    return v->kind == REGO_NUMBER && isfinite(v->num) && floor(v->num) == v->num;
}

uint64_t rego__hash(const rv_t *v)
{
    uint64_t h = 1469598103934665603ull ^ v->kind;
    switch (v->kind) {
    case REGO_BOOL:
        return h * 31 + v->b;
    case REGO_NUMBER: {
        uint64_t bits;
        double d = v->num;
        memcpy(&bits, &d, sizeof(bits));
        return h ^ bits;
    }
    case REGO_STRING:
        for (uint32_t i = 0; i < v->len; i++)
            h = (h ^ (unsigned char)v->str[i]) * 1099511628211ull;
        return h;
    case REGO_NULL:
        return h;
    default:
        for (uint32_t i = 0; i < v->len; i++) {
            h = h * 31 + rego__hash(v->a[i]);
            if (v->kind == REGO_OBJECT)
                h = h * 31 + rego__hash(v->v[i]);
        }
        return h;
    }
}

rv_t *rego__from_json(rego__arena_t *a, const json_t *j, int depth)
{
    rv_t *v;
    if (depth > REGO_MAX_NESTING)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_NULL:
        return &rego__null;
    case JSON_TRUE:
        return &rego__true;
    case JSON_FALSE:
        return &rego__false;
    case JSON_INTEGER:
        return rego__num(a, (double)json_integer_value(j));
    case JSON_REAL:
        return rego__num(a, json_real_value(j));
    case JSON_STRING:
        return rego__str(a, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        v = rego__arr(a, (uint32_t)json_array_size(j));
        json_array_foreach(j, i, e)
        {
            rv_t *ev = rego__from_json(a, e, depth + 1);
            if (ev == NULL)
                return NULL;
            rego__arr_push(a, v, ev);
        }
        return v;
    }
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        size_t klen;
        v = rego__obj(a, (uint32_t)json_object_size(j));
        json_object_keylen_foreach((json_t *)j, k, klen, e)
        {
            rv_t *ev = rego__from_json(a, e, depth + 1);
            if (ev == NULL)
                return NULL;
            rego__obj_set(a, v, rego__str(a, k, klen), ev);
        }
        return v;
    }
    }
    return NULL;
}

/* Shortest text that reads back as the same double, in Go's JSON style (no exponent below
 * 1e21). */
void rego__fmt_num(double n, char *out, size_t size)
{
    if (!isfinite(n)) {
        snprintf(out, size, "null");
        return;
    }
    if (floor(n) == n && fabs(n) < 1e21) {
        snprintf(out, size, "%.0f", n);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, n);
        double back = 0;
        char *end = NULL;
        back = strtod(out, &end);
        if (back == n)
            break;
    }
    /* Go writes 1e-07 as 1e-7. */
    char *e = strchr(out, 'e');
    if (e != NULL && (e[1] == '-' || e[1] == '+') && e[2] == '0') {
        memmove(e + 2, e + 3, strlen(e + 3) + 1);
    }
    if (e != NULL && e[1] == '+')
        memmove(e + 1, e + 2, strlen(e + 2) + 1);
}

static int to_text(const rv_t *v, buf_t *b, bool rego)
{
    char num[64];
    int rc = 0;
    switch (v->kind) {
    case REGO_NULL:
        return buf_append_str(b, "null");
    case REGO_BOOL:
        return buf_append_str(b, v->b ? "true" : "false");
    case REGO_NUMBER:
        if (v->str != NULL)
            return buf_append(b, v->str, v->len);
        rego__fmt_num(v->num, num, sizeof(num));
        return buf_append_str(b, num);
    case REGO_STRING:
        if ((rc = buf_append(b, "\"", 1)) < 0 || (rc = buf_append_json_str(b, v->str, v->len)) < 0)
            return rc;
        return buf_append(b, "\"", 1);
    case REGO_ARRAY:
    case REGO_SET:
        if (rego && v->kind == REGO_SET && v->len == 0)
            return buf_append_str(b, "set()");
        rc = buf_append(b, rego && v->kind == REGO_SET ? "{" : "[", 1);
        for (uint32_t i = 0; rc == 0 && i < v->len; i++) {
            if (i > 0 && (rc = buf_append(b, ",", 1)) < 0)
                break;
            rc = to_text(v->a[i], b, rego);
        }
        if (rc == 0)
            rc = buf_append(b, rego && v->kind == REGO_SET ? "}" : "]", 1);
        return rc;
    case REGO_OBJECT:
        rc = buf_append(b, "{", 1);
        for (uint32_t i = 0; rc == 0 && i < v->len; i++) {
            if (i > 0 && (rc = buf_append(b, ",", 1)) < 0)
                break;
            if (v->a[i]->kind == REGO_STRING || rego) {
                rc = to_text(v->a[i], b, rego);
            } else {
                /* JSON keys must be strings: OPA serialises other keys as their JSON text. */
                buf_t kb;
                buf_init(&kb, b->max);
                rc = to_text(v->a[i], &kb, false);
                if (rc == 0 && (rc = buf_append(b, "\"", 1)) == 0 &&
                    (rc = buf_append_json_str(b, buf_ptr(&kb), kb.len)) == 0)
                    rc = buf_append(b, "\"", 1);
                buf_free(&kb);
            }
            if (rc == 0)
                rc = buf_append(b, ":", 1);
            if (rc == 0)
                rc = to_text(v->v[i], b, rego);
        }
        if (rc == 0)
            rc = buf_append(b, "}", 1);
        return rc;
    }
    return 0;
}

int rego__to_json_text(const rv_t *v, buf_t *b)
{
    return to_text(v, b, false);
}

int rego__to_rego_text(const rv_t *v, buf_t *b)
{
    return to_text(v, b, true);
}

const char *rego__type_name(const rv_t *v)
{
    static const char *const names[] = {"null",  "boolean", "number", "string",
                                        "array", "object",  "set"};
    return names[v->kind];
}

json_t *rego_val_to_json(const rego_val_t *v)
{
    json_t *j = NULL;
    switch (v->kind) {
    case REGO_NULL:
        return json_null();
    case REGO_BOOL:
        return json_boolean(v->b);
    case REGO_NUMBER:
        if (rego__is_int(v) && fabs(v->num) < 9.007199254740992e15)
            return json_integer((json_int_t)v->num);
        return json_real(v->num);
    case REGO_STRING:
        return json_stringn_nocheck(v->str, v->len);
    case REGO_ARRAY:
    case REGO_SET:
        j = json_array();
        for (uint32_t i = 0; i < v->len; i++)
            json_array_append_new(j, rego_val_to_json(v->a[i]));
        return j;
    case REGO_OBJECT:
        j = json_object();
        for (uint32_t i = 0; i < v->len; i++) {
            if (v->a[i]->kind == REGO_STRING) {
                json_object_setn_new_nocheck(j, v->a[i]->str, v->a[i]->len,
                                             rego_val_to_json(v->v[i]));
            } else {
                buf_t kb;
                buf_init(&kb, 1u << 20);
                if (to_text(v->a[i], &kb, false) == 0)
                    json_object_set_new_nocheck(j, buf_ptr(&kb), rego_val_to_json(v->v[i]));
                buf_free(&kb);
            }
        }
        return j;
    }
    return json_null();
}

rego_kind_t rego_val_kind(const rego_val_t *v)
{
    return (rego_kind_t)v->kind;
}
bool rego_val_bool(const rego_val_t *v)
{
    return v != NULL && v->kind == REGO_BOOL && v->b;
}
double rego_val_number(const rego_val_t *v)
{
    return v != NULL && v->kind == REGO_NUMBER ? v->num : 0;
}
const char *rego_val_string(const rego_val_t *v, size_t *len)
{
    if (v == NULL || v->kind != REGO_STRING)
        return NULL;
    if (len != NULL)
        *len = v->len;
    return v->str;
}
size_t rego_val_len(const rego_val_t *v)
{
    return v != NULL && v->kind >= REGO_STRING ? v->len : 0;
}
rego_val_t *rego_val_elem(const rego_val_t *v, size_t i)
{
    return v != NULL && v->kind >= REGO_ARRAY && i < v->len ? v->a[i] : NULL;
}
rego_val_t *rego_val_obj_value(const rego_val_t *v, size_t i)
{
    return v != NULL && v->kind == REGO_OBJECT && i < v->len ? v->v[i] : NULL;
}
rego_val_t *rego_val_get(const rego_val_t *v, const char *key)
{
    return v != NULL ? rego__obj_gets(v, key, strlen(key)) : NULL;
}
bool rego_val_has_string(const rego_val_t *v, const char *s, size_t len)
{
    rv_t key = {.kind = REGO_STRING, .str = s, .len = (uint32_t)len};
    if (v == NULL)
        return false;
    if (v->kind == REGO_SET)
        return rego__set_has(v, &key);
    if (v->kind == REGO_ARRAY) {
        for (uint32_t i = 0; i < v->len; i++)
            if (rego__eq(v->a[i], &key))
                return true;
    }
    return false;
}

rv_t *rego__copy(rego__arena_t *a, const rv_t *v)
{
    rv_t *c;
    switch (v->kind) {
    case REGO_NULL:
        return &rego__null;
    case REGO_BOOL:
        return v->b ? &rego__true : &rego__false;
    case REGO_NUMBER:
        return rego__num(a, v->num);
    case REGO_STRING:
        return rego__str(a, v->str, v->len);
    default:
        break;
    }
    c = rego__alloc(a, sizeof(*c));
    *c = *v;
    c->cap = v->len;
    c->a = rego__alloc(a, (v->len + 1) * sizeof(rv_t *));
    for (uint32_t i = 0; i < v->len; i++)
        c->a[i] = rego__copy(a, v->a[i]);
    if (v->kind == REGO_OBJECT) {
        c->v = rego__alloc(a, (v->len + 1) * sizeof(rv_t *));
        for (uint32_t i = 0; i < v->len; i++)
            c->v[i] = rego__copy(a, v->v[i]);
    }
    return c;
}

/* ---- a JSON parser straight into arena values (no intermediate tree) ---- */

typedef struct jp {
    rego__arena_t *a;
    const char *p, *e;
} jp_t;

static void jp_ws(jp_t *j)
{
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

int rego__escape_char(char e)
{
    switch (e) {
    case '"':
    case '\\':
    case '/':
        return e;
    case 'b':
        return '\b';
    case 'f':
        return '\f';
    case 'n':
        return '\n';
    case 'r':
        return '\r';
    case 't':
        return '\t';
    default:
        return -1;
    }
}

int rego__hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = str_hex_digit(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

size_t rego__utf8_put(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

static rv_t *jp_string(jp_t *j)
{
    /* Bytes that end the fast scan: the quote, a backslash, control characters. */
    static const unsigned char special[256] = {
        [0] = 1,  [1] = 1,  [2] = 1,  [3] = 1,  [4] = 1,  [5] = 1,   [6] = 1,   [7] = 1,  [8] = 1,
        [9] = 1,  [10] = 1, [11] = 1, [12] = 1, [13] = 1, [14] = 1,  [15] = 1,  [16] = 1, [17] = 1,
        [18] = 1, [19] = 1, [20] = 1, [21] = 1, [22] = 1, [23] = 1,  [24] = 1,  [25] = 1, [26] = 1,
        [27] = 1, [28] = 1, [29] = 1, [30] = 1, [31] = 1, ['"'] = 1, ['\\'] = 1};
    const char *s = ++j->p;
    bool esc = false;
    for (;;) {
        while (j->p < j->e && !special[(unsigned char)*j->p])
            j->p++;
        if (j->p >= j->e || *j->p == '"')
            break;
        if ((unsigned char)*j->p < 0x20)
            return NULL;
        esc = true;
        j->p += 2;
    }
    if (j->p > j->e)
        j->p = j->e;
    if (j->p >= j->e)
        return NULL;
    size_t n = (size_t)(j->p - s);
    j->p++;
    if (!esc)
        return rego__str(j->a, s, n);
    char *o = rego__alloc(j->a, n + 1);
    size_t on = 0;
    for (const char *q = s; q < s + n; q++) {
        if (*q != '\\') {
            o[on++] = *q;
            continue;
        }
        q++;
        int c = rego__escape_char(*q);
        if (c >= 0) {
            o[on++] = (char)c;
            continue;
        }
        if (*q != 'u' || s + n - q < 5)
            return NULL;
        int cp = rego__hex4(q + 1);
        if (cp < 0)
            return NULL;
        q += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && s + n - q >= 7 && q[1] == '\\' && q[2] == 'u') {
            int lo = rego__hex4(q + 3);
            if (lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                q += 6;
            }
        }
        if (cp >= 0xD800 && cp < 0xE000)
            cp = 0xFFFD;
        on += rego__utf8_put(o + on, (unsigned)cp);
    }
    o[on] = '\0';
    return rego__str_own(j->a, o, on);
}

static rv_t *jp_value(jp_t *j, int depth)
{
    if (depth > REGO_MAX_NESTING)
        return NULL;
    jp_ws(j);
    if (j->p >= j->e)
        return NULL;
    switch (*j->p) {
    case '"':
        return jp_string(j);
    case '{': {
        rv_t *o = rego__obj(j->a, 4);
        j->p++;
        jp_ws(j);
        if (j->p < j->e && *j->p == '}') {
            j->p++;
            return o;
        }
        for (;;) {
            jp_ws(j);
            if (j->p >= j->e || *j->p != '"')
                return NULL;
            rv_t *k = jp_string(j);
            if (k == NULL)
                return NULL;
            jp_ws(j);
            if (j->p >= j->e || *j->p != ':')
                return NULL;
            j->p++;
            rv_t *v = jp_value(j, depth + 1);
            if (v == NULL)
                return NULL;
            rego__obj_set(j->a, o, k, v);
            jp_ws(j);
            if (j->p < j->e && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->e && *j->p == '}') {
                j->p++;
                return o;
            }
            return NULL;
        }
    }
    case '[': {
        rv_t *arr = rego__arr(j->a, 4);
        j->p++;
        jp_ws(j);
        if (j->p < j->e && *j->p == ']') {
            j->p++;
            return arr;
        }
        for (;;) {
            rv_t *v = jp_value(j, depth + 1);
            if (v == NULL)
                return NULL;
            rego__arr_push(j->a, arr, v);
            jp_ws(j);
            if (j->p < j->e && *j->p == ',') {
                j->p++;
                continue;
            }
            if (j->p < j->e && *j->p == ']') {
                j->p++;
                return arr;
            }
            return NULL;
        }
    }
    case 't':
        if (j->e - j->p >= 4 && memcmp(j->p, "true", 4) == 0) {
            j->p += 4;
            return &rego__true;
        }
        return NULL;
    case 'f':
        if (j->e - j->p >= 5 && memcmp(j->p, "false", 5) == 0) {
            j->p += 5;
            return &rego__false;
        }
        return NULL;
    case 'n':
        if (j->e - j->p >= 4 && memcmp(j->p, "null", 4) == 0) {
            j->p += 4;
            return &rego__null;
        }
        return NULL;
    default: {
        /* JSON number grammar, then strtod on a bounded copy. */
        const char *s = j->p;
        char tmp[64];
        if (j->p < j->e && *j->p == '-')
            j->p++;
        if (j->p >= j->e || !(*j->p >= '0' && *j->p <= '9'))
            return NULL;
        if (*j->p == '0')
            j->p++;
        else
            while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
                j->p++;
        if (j->p < j->e && *j->p == '.') {
            j->p++;
            if (j->p >= j->e || !(*j->p >= '0' && *j->p <= '9'))
                return NULL;
            while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
                j->p++;
        }
        if (j->p < j->e && (*j->p == 'e' || *j->p == 'E')) {
            j->p++;
            if (j->p < j->e && (*j->p == '+' || *j->p == '-'))
                j->p++;
            if (j->p >= j->e || !(*j->p >= '0' && *j->p <= '9'))
                return NULL;
            while (j->p < j->e && *j->p >= '0' && *j->p <= '9')
                j->p++;
        }
        size_t n = (size_t)(j->p - s);
        if (n >= sizeof(tmp)) {
            char *big = rego__strndup(j->a, s, n);
            return rego__num_text(j->a, strtod(big, NULL), s, n);
        }
        memcpy(tmp, s, n);
        tmp[n] = '\0';
        return rego__num_text(j->a, strtod(tmp, NULL), s, n);
    }
    }
}

rv_t *rego__json_parse(rego__arena_t *a, const char *text, size_t len)
{
    jp_t j = {a, text, text + len};
    rv_t *v = jp_value(&j, 0);
    if (v == NULL)
        return NULL;
    jp_ws(&j);
    return j.p == j.e ? v : NULL;
}
