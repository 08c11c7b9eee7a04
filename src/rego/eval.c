/*
 * eval.c — the evaluator: top-down, backtracking, in continuation-passing style.
 *
 * Every construct that can produce several solutions (refs with unbound variables, partial
 * rules, `some … in`, unification) calls a continuation once per solution; a continuation returns
 * 0 to ask for more and non-zero to stop (used by `not`, `every` and first-value lookups).
 * Variable bindings are undone through a trail when a branch is left. Rule values are computed
 * once per query and cached (per `with` scope). Errors and limits jump back to the entry point.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "rego/rego_int.h"

#define CONTAINER(ptr, type, field) ((type *)(void *)((char *)(ptr)-offsetof(type, field)))
#define MAX_CALL_DEPTH 400

_Noreturn void rego__fail(rego_eval_t *ev, int code, const char *opa_code, const char *fmt, ...)
{
    va_list ap;
    char msg[220];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if ((code == ERR_REGO_TYPE || code == ERR_REGO_BUILTIN) && ev->cur_call != NULL)
        err_set(ev->detail, code, "%s:%u: %s: %s", ev->cur_file != NULL ? ev->cur_file : "query",
                ev->cur_call->line, opa_code, msg);
    else
        err_set(ev->detail, code, "%s: %s", opa_code, msg);
    ev->code = code;
    ev->opa_code = opa_code;
    longjmp(ev->jb, 1);
}

void rego__defer(rego_eval_t *ev, void (*fn)(void *), void *p)
{
    if (ev->ndefer == REGO__MAX_DEFER) {
        fn(p);
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "too many resources held by builtins");
    }
    ev->defer[ev->ndefer].fn = fn;
    ev->defer[ev->ndefer].p = p;
    ev->ndefer++;
}

void rego__undefer(rego_eval_t *ev, const void *p)
{
    for (uint32_t i = ev->ndefer; i-- > 0;) {
        if (ev->defer[i].p == p) {
            memmove(&ev->defer[i], &ev->defer[i + 1], (ev->ndefer - i - 1) * sizeof(ev->defer[0]));
            ev->ndefer--;
            return;
        }
    }
}

void rego__run_defers(rego_eval_t *ev)
{
    while (ev->ndefer > 0) {
        ev->ndefer--;
        ev->defer[ev->ndefer].fn(ev->defer[ev->ndefer].p);
    }
}

static void free_buf(void *p)
{
    buf_free(p);
}

buf_t *rego__buf(rego_eval_t *ev, size_t max)
{
    buf_t *b = rego__alloc(&ev->arena, sizeof(*b));
    buf_init(b, max);
    rego__defer(ev, free_buf, b);
    return b;
}

void rego__buf_done(rego_eval_t *ev, buf_t *b)
{
    rego__undefer(ev, b);
    buf_free(b);
}

/* One time per evaluation, as OPA's time.now_ns: the clock is read on first use. */
int64_t rego__now(rego_eval_t *ev)
{
    if (ev->now_ns == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ev->now_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    }
    return ev->now_ns;
}

void rego__step(rego_eval_t *ev)
{
    char here;
    uintptr_t sp = (uintptr_t)&here;
    /* The evaluator recurses per literal and per nested rule: bound the stack it may use so a
     * hostile policy or input cannot overflow a worker thread's stack. */
    if (ev->stack_base - sp > REGO_MAX_STACK_BYTES && sp < ev->stack_base)
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "evaluation nested too deeply");
    if (++ev->steps > ev->max_steps)
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error", "evaluation exceeded %llu steps",
                   (unsigned long long)ev->max_steps);
}

static void bind(rego_eval_t *ev, rv_t **slot, rv_t *v)
{
    if (ev->ntrail == ev->captrail) {
        uint32_t cap = ev->captrail < 64 ? 64 : ev->captrail * 2;
        rv_t ***nt = rego__alloc(&ev->arena, cap * sizeof(*nt));
        if (ev->ntrail > 0)
            memcpy(nt, ev->trail, ev->ntrail * sizeof(*nt));
        ev->trail = nt;
        ev->captrail = cap;
    }
    *slot = v;
    ev->trail[ev->ntrail++] = slot;
}

static void undo(rego_eval_t *ev, uint32_t mark)
{
    while (ev->ntrail > mark)
        *ev->trail[--ev->ntrail] = NULL;
}

static rv_t **new_slots(rego_eval_t *ev, uint32_t n)
{
    rv_t **s = rego__alloc(&ev->arena, (n + 1) * sizeof(*s));
    memset(s, 0, (n + 1) * sizeof(*s));
    return s;
}

static int eval_body(rego_eval_t *ev, rv_t **slots, rego__body_t *b, uint32_t i, rego__kont_t *k);
static int eval_expr(rego_eval_t *ev, rv_t **slots, rego__expr_t *e, rego__kont_t *k,
                     bool skip_with);
static int unify_tv(rego_eval_t *ev, rv_t **slots, rego__term_t *t, rv_t *v, rego__kont_t *k);
static rv_t *rule_value(rego_eval_t *ev, rego__node_t *node);
static rv_t *call_user(rego_eval_t *ev, rego__node_t *node, rv_t **args, uint32_t n);

/* ---- small continuations ---- */

typedef struct firstk {
    rego__kont_t k;
    rv_t *v;
} firstk_t;

static int first_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    (void)ev;
    CONTAINER(k, firstk_t, k)->v = v;
    return 1;
}

/* The first value of @p t, or NULL when undefined. Bindings made are undone. */
static rv_t *first_value(rego_eval_t *ev, rv_t **slots, rego__term_t *t)
{
    firstk_t fk = {{first_fn}, NULL};
    uint32_t mark = ev->ntrail;
    if (t->kind == T_VAL)
        return t->val;
    if (t->kind == T_VAR)
        return slots[t->slot];
    rego__eval_term(ev, slots, t, &fk.k);
    undo(ev, mark);
    return fk.v;
}

static int stop_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    (void)ev;
    (void)k;
    (void)v;
    return 1;
}
static rego__kont_t stopk = {stop_fn};

/* ---- lookups ---- */

static rv_t *lookup(const rv_t *cur, const rv_t *key)
{
    switch (cur->kind) {
    case REGO_ARRAY:
        if (key->kind == REGO_NUMBER && rego__is_int(key) && key->num >= 0 && key->num < cur->len)
            return cur->a[(uint32_t)key->num];
        return NULL;
    case REGO_OBJECT:
        return rego__obj_get(cur, key);
    case REGO_SET:
        return rego__set_has(cur, key) ? (rv_t *)key : NULL;
    default:
        return NULL;
    }
}

static bool has_unbound(rv_t **slots, const rego__term_t *t)
{
    switch (t->kind) {
    case T_VAR:
        return slots[t->slot] == NULL;
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            if (has_unbound(slots, t->items[i]))
                return true;
        return false;
    case T_OBJ:
        for (uint32_t i = 0; i < t->n; i++)
            if (has_unbound(slots, t->items[2 * i + 1]))
                return true;
        return false;
    default:
        return false;
    }
}

/* ---- refs ---- */

static int eval_path(rego_eval_t *ev, rv_t **slots, rv_t *cur, rego__term_t **path, uint32_t n,
                     uint32_t i, rego__kont_t *k);

typedef struct pathk {
    rego__kont_t k;
    rv_t **slots;
    rv_t *cur;
    rego__term_t **path;
    uint32_t n, i;
    rego__kont_t *next;
    rego__term_t *pat; /* pattern being matched against keys */
    rv_t *child;
} pathk_t;

static int path_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *key)
{
    pathk_t *pk = CONTAINER(k, pathk_t, k);
    rv_t *c = lookup(pk->cur, key);
    if (c == NULL)
        return 0;
    return eval_path(ev, pk->slots, c, pk->path, pk->n, pk->i + 1, pk->next);
}

static int path_pat_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    pathk_t *pk = CONTAINER(k, pathk_t, k);
    (void)v;
    return eval_path(ev, pk->slots, pk->child, pk->path, pk->n, pk->i + 1, pk->next);
}

static int eval_path(rego_eval_t *ev, rv_t **slots, rv_t *cur, rego__term_t **path, uint32_t n,
                     uint32_t i, rego__kont_t *k)
{
    rego__term_t *p;
    rego__step(ev);
    if (i == n)
        return k->fn(ev, k, cur);
    p = path[i];
    if (p->kind == T_VAL) {
        rv_t *c = lookup(cur, p->val);
        return c != NULL ? eval_path(ev, slots, c, path, n, i + 1, k) : 0;
    }
    if (p->kind == T_VAR && slots[p->slot] != NULL) {
        rv_t *c = lookup(cur, slots[p->slot]);
        return c != NULL ? eval_path(ev, slots, c, path, n, i + 1, k) : 0;
    }
    if (p->kind == T_VAR || has_unbound(slots, p)) {
        int rc = 0;
        if (cur->kind < REGO_ARRAY)
            return 0;
        for (uint32_t j = 0; j < cur->len && rc == 0; j++) {
            uint32_t mark = ev->ntrail;
            rv_t *key, *child;
            if (cur->kind == REGO_ARRAY) {
                key = rego__num(&ev->arena, j);
                child = cur->a[j];
            } else {
                key = cur->a[j];
                child = cur->kind == REGO_OBJECT ? cur->v[j] : cur->a[j];
            }
            if (p->kind == T_VAR) {
                bind(ev, &slots[p->slot], key);
                rc = eval_path(ev, slots, child, path, n, i + 1, k);
            } else {
                pathk_t pk = {{path_pat_fn}, slots, cur, path, n, i, k, p, child};
                rc = unify_tv(ev, slots, p, key, &pk.k);
            }
            undo(ev, mark);
        }
        return rc;
    }
    {
        pathk_t pk = {{path_key_fn}, slots, cur, path, n, i, k, NULL, NULL};
        return rego__eval_term(ev, slots, p, &pk.k);
    }
}

/* Whether a `with data…` replacement covers exactly @p node. */
static rv_t *data_override(rego_eval_t *ev, rego__node_t *node)
{
    for (uint32_t o = ev->novr; o-- > 0;) {
        rego__ovr_t *ov = &ev->ovr[o];
        rego__node_t *cur = node;
        uint32_t j = ov->npath;
        if (ov->root != T_DATA)
            continue;
        while (j > 0 && cur->parent != NULL && strcmp(cur->name, ov->path[j - 1]) == 0) {
            cur = cur->parent;
            j--;
        }
        if (j == 0 && cur->parent == NULL)
            return ov->val;
    }
    return NULL;
}

static rv_t *node_value(rego_eval_t *ev, rego__node_t *node, rv_t *base);

static rv_t *base_child(rv_t *base, const char *name)
{
    if (base == NULL || base->kind != REGO_OBJECT)
        return NULL;
    return rego__obj_gets(base, name, strlen(name));
}

static int eval_data(rego_eval_t *ev, rv_t **slots, rego__node_t *node, rv_t *base,
                     rego__term_t **path, uint32_t n, uint32_t i, rego__kont_t *k);

typedef struct datak {
    rego__kont_t k;
    rv_t **slots;
    rego__node_t *node;
    rv_t *base;
    rego__term_t **path;
    uint32_t n, i;
    rego__kont_t *next;
} datak_t;

/* eval_path for base documents: data has string keys, and OPA finds data.x[2] under "2". */
static int eval_base(rego_eval_t *ev, rv_t **slots, rv_t *cur, rego__term_t **path, uint32_t n,
                     uint32_t i, rego__kont_t *k)
{
    if (i < n && cur->kind == REGO_OBJECT) {
        rego__term_t *p = path[i];
        rv_t *key = p->kind == T_VAL ? p->val : p->kind == T_VAR ? slots[p->slot] : NULL;
        if (key != NULL && rego__is_int(key) && lookup(cur, key) == NULL) {
            char num[32];
            rv_t *c;
            snprintf(num, sizeof(num), "%.0f", key->num);
            c = rego__obj_gets(cur, num, strlen(num));
            return c != NULL ? eval_base(ev, slots, c, path, n, i + 1, k) : 0;
        }
    }
    return eval_path(ev, slots, cur, path, n, i, k);
}

static int data_key(rego_eval_t *ev, rv_t **slots, rego__node_t *node, rv_t *base, rv_t *key,
                    rego__term_t **path, uint32_t n, uint32_t i, rego__kont_t *k)
{
    if (key->kind == REGO_STRING) {
        for (uint32_t j = 0; j < node->nkids; j++) {
            rego__node_t *kid = node->kids[j];
            if (strlen(kid->name) == key->len && memcmp(kid->name, key->str, key->len) == 0)
                return eval_data(ev, slots, kid, base_child(base, kid->name), path, n, i + 1, k);
        }
    }
    if (base != NULL) {
        rv_t *c = lookup(base, key);
        if (c == NULL && base->kind == REGO_OBJECT && rego__is_int(key)) {
            /* Documents in data have string keys; OPA finds data[2] under "2". */
            char num[32];
            snprintf(num, sizeof(num), "%.0f", key->num);
            c = rego__obj_gets(base, num, strlen(num));
        }
        if (c != NULL)
            return eval_base(ev, slots, c, path, n, i + 1, k);
    }
    return 0;
}

static int data_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *key)
{
    datak_t *dk = CONTAINER(k, datak_t, k);
    return data_key(ev, dk->slots, dk->node, dk->base, key, dk->path, dk->n, dk->i, dk->next);
}

static int eval_data(rego_eval_t *ev, rv_t **slots, rego__node_t *node, rv_t *base,
                     rego__term_t **path, uint32_t n, uint32_t i, rego__kont_t *k)
{
    rego__term_t *p;
    rego__step(ev);
    if (ev->novr > 0) {
        rv_t *ov = data_override(ev, node);
        if (ov != NULL)
            return eval_path(ev, slots, ov, path, n, i, k);
    }
    if (node->kind == R_FUNC)
        return 0;
    if (node->kind >= 0) {
        rv_t *v = rule_value(ev, node);
        return v != NULL ? eval_path(ev, slots, v, path, n, i, k) : 0;
    }
    if (node->nkids == 0) {
        rv_t *v = base != NULL ? base : node->pkg ? rego__obj(&ev->arena, 0) : NULL;
        return v != NULL ? eval_base(ev, slots, v, path, n, i, k) : 0;
    }
    if (i == n) {
        rv_t *v = node_value(ev, node, base);
        return v != NULL ? k->fn(ev, k, v) : 0;
    }
    p = path[i];
    if (p->kind == T_VAL)
        return data_key(ev, slots, node, base, p->val, path, n, i, k);
    if (p->kind == T_VAR && slots[p->slot] == NULL) {
        /* Iterate over the merged document: evaluate it whole, then walk. */
        rv_t *v = node_value(ev, node, base);
        return v != NULL ? eval_path(ev, slots, v, path, n, i, k) : 0;
    }
    if (p->kind == T_VAR)
        return data_key(ev, slots, node, base, slots[p->slot], path, n, i, k);
    {
        datak_t dk = {{data_key_fn}, slots, node, base, path, n, i, k};
        return rego__eval_term(ev, slots, p, &dk.k);
    }
}

/* The document at @p node: base data merged with the values of the rules below. */
static rv_t *node_value(rego_eval_t *ev, rego__node_t *node, rv_t *base)
{
    rv_t *obj;
    if (ev->novr > 0) {
        rv_t *ov = data_override(ev, node);
        if (ov != NULL)
            return ov;
    }
    if (node->kind == R_FUNC)
        return NULL;
    if (node->kind >= 0)
        return rule_value(ev, node);
    if (node->nkids == 0)
        return base != NULL ? base : node->pkg ? rego__obj(&ev->arena, 0) : NULL;
    obj = rego__obj(&ev->arena,
                    (base != NULL && base->kind == REGO_OBJECT ? base->len : 0) + node->nkids);
    obj->b = true; /* a document made of rules and base data: rules may add to it */
    if (base != NULL && base->kind == REGO_OBJECT) {
        for (uint32_t j = 0; j < base->len; j++)
            (void)rego__obj_put(&ev->arena, obj, base->a[j], base->v[j]);
    }
    for (uint32_t j = 0; j < node->nkids; j++) {
        rego__node_t *kid = node->kids[j];
        rv_t *kv = node_value(ev, kid, base_child(base, kid->name));
        if (kv != NULL && kid->kind >= 0)
            /* Where base data and a rule define the same key, OPA shows the base document. */
            (void)rego__obj_put(&ev->arena, obj,
                                rego__str(&ev->arena, kid->name, strlen(kid->name)), kv);
        else if (kv != NULL)
            rego__obj_set(&ev->arena, obj, rego__str(&ev->arena, kid->name, strlen(kid->name)), kv);
        else if (kid->kind < 0 && kid->nkids > 0 && base_child(base, kid->name) == NULL)
            rego__obj_set(&ev->arena, obj, rego__str(&ev->arena, kid->name, strlen(kid->name)),
                          rego__obj(&ev->arena, 0));
    }
    return obj;
}

/* ---- rules ---- */

typedef struct rulek {
    rego__kont_t k;  /* body solved */
    rego__kont_t vk; /* value evaluated */
    rv_t **slots;
    rego__rule_t *r;
    rv_t **res; /* complete / function result */
    rv_t *coll; /* set / object being built */
    bool found;
    bool func;
    rv_t *keyv[8]; /* object keys evaluated so far */
    uint32_t ki;
} rulek_t;

static int rule_value_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, vk);
    if (*rk->res != NULL && !rego__eq(*rk->res, v)) {
        if (rk->func)
            rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error",
                       "functions must not produce multiple outputs for same inputs");
        rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error",
                   "complete rules must not produce multiple outputs");
    }
    *rk->res = v;
    rk->found = true;
    return 0;
}

static int rule_body_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, k);
    (void)v;
    if (rk->r->value == NULL)
        return rule_value_fn(ev, &rk->vk, &rego__true);
    return rego__eval_term(ev, rk->slots, rk->r->value, &rk->vk);
}

static int set_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, vk);
    rego__set_add(&ev->arena, rk->coll, v);
    return 0;
}

static int set_body_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, k);
    (void)v;
    return rego__eval_term(ev, rk->slots, rk->r->keys[0], &rk->vk);
}

static void obj_insert(rego_eval_t *ev, rv_t *obj, rv_t **keys, uint32_t nk, rv_t *v)
{
    for (uint32_t i = 0; i + 1 < nk; i++) {
        rv_t *sub = rego__obj_get(obj, keys[i]);
        if (sub == NULL) {
            sub = rego__obj(&ev->arena, 2);
            sub->b = true; /* a container made by the rule head, not a rule's value */
            rego__obj_put(&ev->arena, obj, keys[i], sub);
        } else if (sub->kind != REGO_OBJECT) {
            rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
        }
        obj = sub;
    }
    rv_t *old = rego__obj_put(&ev->arena, obj, keys[nk - 1], v);
    if (old != NULL && !rego__eq(old, v))
        rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
}

static int obj_step(rego_eval_t *ev, rulek_t *rk);

/* Adds element @p v to the set at keys[0..nk) below @p obj (multi-level `contains`). */
static void set_insert(rego_eval_t *ev, rv_t *obj, rv_t **keys, uint32_t nk, rv_t *v)
{
    for (uint32_t i = 0; i < nk; i++) {
        bool last = i + 1 == nk;
        rv_t *sub = rego__obj_get(obj, keys[i]);
        if (sub == NULL) {
            sub = last ? rego__set(&ev->arena, 2) : rego__obj(&ev->arena, 2);
            sub->b = true;
            rego__obj_put(&ev->arena, obj, keys[i], sub);
        } else if (sub->kind != (last ? REGO_SET : REGO_OBJECT)) {
            rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
        }
        obj = sub;
    }
    rego__set_add(&ev->arena, obj, v);
}

static int obj_val_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, vk);
    if (rk->ki < rk->r->nkeys) {
        rk->keyv[rk->ki++] = v;
        int rc = obj_step(ev, rk);
        rk->ki--;
        return rc;
    }
    obj_insert(ev, rk->coll, rk->keyv, rk->r->nkeys, v);
    return 0;
}

static int obj_step(rego_eval_t *ev, rulek_t *rk)
{
    if (rk->ki < rk->r->nkeys)
        return rego__eval_term(ev, rk->slots, rk->r->keys[rk->ki], &rk->vk);
    if (rk->r->kind == R_SET) {
        if (rk->r->nkeys > 0) /* a set rule has its member as its one key */
            set_insert(ev, rk->coll, rk->keyv, rk->r->nkeys - 1, rk->keyv[rk->r->nkeys - 1]);
        return 0;
    }
    if (rk->r->value == NULL) {
        obj_insert(ev, rk->coll, rk->keyv, rk->r->nkeys, &rego__true);
        return 0;
    }
    return rego__eval_term(ev, rk->slots, rk->r->value, &rk->vk);
}

static int obj_body_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    rulek_t *rk = CONTAINER(k, rulek_t, k);
    (void)v;
    rk->ki = 0;
    return obj_step(ev, rk);
}

/* Two rules' contributions at one key: sets and objects that rule heads built (b set) unite;
 * a rule's own value never takes keys from another rule (eval_conflict_error). */
static rv_t *merge_docs(rego_eval_t *ev, rv_t *a, rv_t *b)
{
    if (!a->b || !b->b)
        rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
    if (a->kind == REGO_SET && b->kind == REGO_SET) {
        rv_t *s = rego__set(&ev->arena, a->len + b->len);
        s->b = true;
        for (uint32_t i = 0; i < a->len; i++)
            rego__set_add(&ev->arena, s, a->a[i]);
        for (uint32_t i = 0; i < b->len; i++)
            rego__set_add(&ev->arena, s, b->a[i]);
        return s;
    }
    if (a->kind == REGO_OBJECT && b->kind == REGO_OBJECT) {
        rv_t *o = rego__obj(&ev->arena, a->len + b->len);
        o->b = true;
        for (uint32_t i = 0; i < a->len; i++)
            (void)rego__obj_put(&ev->arena, o, a->a[i], a->v[i]);
        for (uint32_t i = 0; i < b->len; i++) {
            rv_t *old = rego__obj_get(o, b->a[i]);
            if (old != NULL && !rego__eq(old, b->v[i]))
                rego__obj_set(&ev->arena, o, b->a[i], merge_docs(ev, old, b->v[i]));
            else if (old == NULL)
                (void)rego__obj_put(&ev->arena, o, b->a[i], b->v[i]);
        }
        return o;
    }
    rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
}

static void enter_call(rego_eval_t *ev)
{
    if (++ev->depth > MAX_CALL_DEPTH)
        rego__fail(ev, ERR_REGO_LIMIT, "eval_limit_error",
                   "rule or function nesting deeper than %d", MAX_CALL_DEPTH);
}

static rv_t *rule_value(rego_eval_t *ev, rego__node_t *node)
{
    rv_t *res = NULL;
    if (ev->cstate[node->id] == 2)
        return ev->cache[node->id];
    if (ev->cstate[node->id] == 1)
        rego__fail(ev, ERR_REGO_EVAL, "rego_recursion_error", "rule %s is recursive", node->name);
    ev->cstate[node->id] = 1;
    enter_call(ev);
    uint32_t mark = ev->ntrail;
    const char *file = ev->cur_file;
    if (node->nrules > 0)
        ev->cur_file = node->rules[0]->file;
    switch (node->kind) {
    case R_COMPLETE:
        for (uint32_t i = 0; i < node->nrules; i++) {
            for (rego__rule_t *r = node->rules[i]; r != NULL; r = r->els) {
                rulek_t rk;
                memset(&rk, 0, sizeof(rk));
                rk.k.fn = rule_body_fn;
                rk.vk.fn = rule_value_fn;
                rk.slots = new_slots(ev, r->nslots);
                rk.r = r;
                rk.res = &res;
                eval_body(ev, rk.slots, &r->body, 0, &rk.k);
                undo(ev, mark);
                if (rk.found)
                    break;
            }
        }
        if (res == NULL && node->dflt != NULL)
            res = first_value(ev, new_slots(ev, node->dflt->nslots), node->dflt->value);
        break;
    case R_SET:
    case R_OBJ: {
        bool flat_set = node->kind == R_SET && node->nrules > 0 && node->rules[0]->nkeys == 1;
        res = flat_set ? rego__set(&ev->arena, 4) : rego__obj(&ev->arena, 4);
        res->b = true;
        for (uint32_t i = 0; i < node->nrules; i++) {
            rego__rule_t *r = node->rules[i];
            rulek_t rk;
            memset(&rk, 0, sizeof(rk));
            if (flat_set != (r->kind == R_SET && r->nkeys == 1))
                rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error",
                           "rules of %s define both a set and an object", node->name);
            rk.k.fn = flat_set ? set_body_fn : obj_body_fn;
            rk.vk.fn = flat_set ? set_key_fn : obj_val_fn;
            rk.slots = new_slots(ev, r->nslots);
            rk.r = r;
            rk.coll = res;
            if (r->nkeys > 8)
                rego__fail(ev, ERR_REGO_EVAL, "eval_internal_error", "rule head too deep");
            eval_body(ev, rk.slots, &r->body, 0, &rk.k);
            undo(ev, mark);
        }
        break;
    }
    default:
        break;
    }
    if (node->nkids > 0 && (res == NULL || res->kind == REGO_OBJECT)) {
        /* Rules with longer ref heads below this one (`p.q[r] := 1` next to `p.q.s := 2`). */
        for (uint32_t j = 0; j < node->nkids; j++) {
            rego__node_t *kid = node->kids[j];
            rv_t *kv = node_value(ev, kid, NULL);
            if (kv == NULL)
                continue;
            if (res == NULL) {
                res = rego__obj(&ev->arena, node->nkids);
                res->b = true;
            }
            rv_t *key = rego__str(&ev->arena, kid->name, strlen(kid->name));
            rv_t *old = rego__obj_put(&ev->arena, res, key, kv);
            if (old != NULL && !rego__eq(old, kv))
                rego__obj_set(&ev->arena, res, key, merge_docs(ev, old, kv));
        }
    }
    ev->depth--;
    ev->cur_file = file;
    ev->cstate[node->id] = 2;
    ev->cache[node->id] = res;
    return res;
}

/* Function call: unify the parameters with the arguments, then the body. */
typedef struct argk {
    rego__kont_t k;
    rulek_t *rk;
    rv_t **args;
    uint32_t n, i;
} argk_t;

static int arg_step(rego_eval_t *ev, argk_t *ak)
{
    rulek_t *rk = ak->rk;
    if (ak->i == ak->n)
        return eval_body(ev, rk->slots, &rk->r->body, 0, &rk->k);
    return unify_tv(ev, rk->slots, rk->r->args[ak->i], ak->args[ak->i], &ak->k);
}

static int arg_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    argk_t *ak = CONTAINER(k, argk_t, k);
    (void)v;
    ak->i++;
    int rc = arg_step(ev, ak);
    ak->i--;
    return rc;
}

static rv_t *call_user(rego_eval_t *ev, rego__node_t *node, rv_t **args, uint32_t n)
{
    rv_t *res = NULL;
    uint32_t mark = ev->ntrail;
    const char *file = ev->cur_file;
    enter_call(ev);
    if (node->nrules > 0)
        ev->cur_file = node->rules[0]->file;
    for (uint32_t i = 0; i < node->nrules; i++) {
        for (rego__rule_t *r = node->rules[i]; r != NULL; r = r->els) {
            rulek_t rk;
            argk_t ak = {{arg_fn}, &rk, args, n, 0};
            memset(&rk, 0, sizeof(rk));
            rk.k.fn = rule_body_fn;
            rk.vk.fn = rule_value_fn;
            rk.slots = new_slots(ev, r->nslots);
            rk.r = r;
            rk.res = &res;
            rk.func = true;
            arg_step(ev, &ak);
            undo(ev, mark);
            if (rk.found)
                break;
        }
    }
    if (res == NULL && node->dflt != NULL)
        res = first_value(ev, new_slots(ev, node->dflt->nslots), node->dflt->value);
    ev->depth--;
    ev->cur_file = file;
    return res;
}

/* ---- terms ---- */

typedef struct listk {
    rego__kont_t k;
    rv_t **slots;
    rego__term_t **items;
    uint32_t n, i;
    rv_t **vals;
    rego__kont_t *done; /* called with NULL once vals is complete */
} listk_t;

static int list_step(rego_eval_t *ev, listk_t *lk)
{
    while (lk->i < lk->n) {
        rego__term_t *t = lk->items[lk->i];
        if (t->kind == T_VAL) {
            lk->vals[lk->i++] = t->val;
            continue;
        }
        if (t->kind == T_VAR && lk->slots[t->slot] != NULL) {
            lk->vals[lk->i++] = lk->slots[t->slot];
            continue;
        }
        uint32_t save = lk->i;
        int rc = rego__eval_term(ev, lk->slots, t, &lk->k);
        lk->i = save;
        return rc;
    }
    return lk->done->fn(ev, lk->done, NULL);
}

static int list_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    listk_t *lk = CONTAINER(k, listk_t, k);
    uint32_t save = lk->i;
    lk->vals[lk->i++] = v;
    int rc = list_step(ev, lk);
    lk->i = save;
    return rc;
}

typedef struct collk {
    rego__kont_t k;
    listk_t lk;
    rego__term_t *t;
    rego__kont_t *next;
} collk_t;

static int coll_done(rego_eval_t *ev, rego__kont_t *k, rv_t *unused)
{
    collk_t *ck = CONTAINER(k, collk_t, k);
    rego__term_t *t = ck->t;
    rv_t *v;
    (void)unused;
    if (t->kind == T_ARR) {
        v = rego__arr(&ev->arena, t->n);
        for (uint32_t i = 0; i < t->n; i++)
            rego__arr_push(&ev->arena, v, ck->lk.vals[i]);
    } else if (t->kind == T_SET) {
        v = rego__set(&ev->arena, t->n);
        for (uint32_t i = 0; i < t->n; i++)
            rego__set_add(&ev->arena, v, ck->lk.vals[i]);
    } else {
        v = rego__obj(&ev->arena, t->n);
        for (uint32_t i = 0; i < t->n; i++) {
            rv_t *old = rego__obj_put(&ev->arena, v, ck->lk.vals[2 * i], ck->lk.vals[2 * i + 1]);
            if (old != NULL && !rego__eq(old, ck->lk.vals[2 * i + 1]))
                rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error",
                           "object keys must be unique");
        }
    }
    return ck->next->fn(ev, ck->next, v);
}

typedef struct callk {
    rego__kont_t k;
    rego__kont_t outk;
    listk_t lk;
    rego__term_t *t;
    rv_t **slots;
    rego__kont_t *next;
    uint32_t nin;
} callk_t;

static const rego__ovr_t *fn_override(rego_eval_t *ev, const rego__term_t *t)
{
    for (uint32_t o = ev->novr; o-- > ev->in_mock;) {
        rego__ovr_t *ov = &ev->ovr[o];
        if (ov->root != T_CALL)
            continue;
        if ((t->bi != NULL && ov->bi == t->bi) || (t->fn != NULL && ov->fn == t->fn))
            return ov;
    }
    return NULL;
}

static rv_t *apply_call(rego_eval_t *ev, const rego__term_t *t, rv_t **vals, uint32_t n)
{
    const rego__builtin_t *bi = t->bi;
    rego__node_t *fn = t->fn;
    if (ev->novr > 0) {
        const rego__ovr_t *ov = fn_override(ev, t);
        if (ov != NULL) {
            rv_t *r;
            if (ov->with_val != NULL)
                return ov->with_val;
            /* A replacement calls the originals, never the replacements in force where it was
             * called; `with` inside it still applies. */
            uint32_t floor = ev->in_mock;
            ev->in_mock = ev->novr;
            if (ov->with_node != NULL)
                r = n == ov->with_node->nargs ? call_user(ev, ov->with_node, vals, n) : NULL;
            else
                r = ov->with_bi != NULL ? ov->with_bi->fn(ev, vals, n) : NULL;
            ev->in_mock = floor;
            return r;
        }
    }
    if (fn != NULL) {
        if (n != fn->nargs)
            return NULL;
        return call_user(ev, fn, vals, n);
    }
    if (bi == NULL)
        return NULL;
    return bi->fn(ev, vals, n);
}

static int call_out_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    callk_t *ck = CONTAINER(k, callk_t, outk);
    (void)v;
    return ck->next->fn(ev, ck->next, &rego__true);
}

static int call_done(rego_eval_t *ev, rego__kont_t *k, rv_t *unused)
{
    callk_t *ck = CONTAINER(k, callk_t, k);
    rv_t *r;
    (void)unused;
    ev->cur_call = ck->t;
    r = apply_call(ev, ck->t, ck->lk.vals, ck->nin);
    ev->cur_call = NULL;
    if (r == NULL)
        return 0;
    if (ck->t->bi != NULL && ck->t->bi->relation && ck->t->fn == NULL && r->kind == REGO_ARRAY) {
        /* A relation: every element is one solution. */
        for (uint32_t i = 0; i < r->len; i++) {
            int rc = ck->nin < ck->t->n
                         ? unify_tv(ev, ck->slots, ck->t->items[ck->nin], r->a[i], &ck->outk)
                         : ck->next->fn(ev, ck->next, r->a[i]);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (ck->nin < ck->t->n) {
        /* The extra argument is an output: unify it with the result; the call is true. */
        return unify_tv(ev, ck->slots, ck->t->items[ck->nin], r, &ck->outk);
    }
    return ck->next->fn(ev, ck->next, r);
}

typedef struct compk {
    rego__kont_t k;  /* body solved */
    rego__kont_t hk; /* head value */
    rego__kont_t kk; /* key value (object comprehensions) */
    rv_t **slots;
    rego__term_t *t;
    rv_t *coll;
    rv_t *key;
} compk_t;

static int comp_head_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    compk_t *ck = CONTAINER(k, compk_t, hk);
    if (ck->t->kind == T_ACOMP) {
        rego__arr_push(&ev->arena, ck->coll, v);
    } else if (ck->t->kind == T_SCOMP) {
        rego__set_add(&ev->arena, ck->coll, v);
    } else {
        rv_t *old = rego__obj_put(&ev->arena, ck->coll, ck->key, v);
        if (old != NULL && !rego__eq(old, v))
            rego__fail(ev, ERR_REGO_CONFLICT, "eval_conflict_error", "object keys must be unique");
    }
    return 0;
}

static int comp_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    compk_t *ck = CONTAINER(k, compk_t, kk);
    ck->key = v;
    return rego__eval_term(ev, ck->slots, ck->t->head, &ck->hk);
}

static int comp_body_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    compk_t *ck = CONTAINER(k, compk_t, k);
    (void)v;
    if (ck->t->kind == T_OCOMP)
        return rego__eval_term(ev, ck->slots, ck->t->key, &ck->kk);
    return rego__eval_term(ev, ck->slots, ck->t->head, &ck->hk);
}

typedef struct refk {
    rego__kont_t k;
    rv_t **slots;
    rego__term_t *t;
    rego__kont_t *next;
} refk_t;

static int ref_head_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    refk_t *rk = CONTAINER(k, refk_t, k);
    return eval_path(ev, rk->slots, v, rk->t->items, rk->t->n, 0, rk->next);
}

int rego__eval_term(rego_eval_t *ev, rv_t **slots, rego__term_t *t, rego__kont_t *k)
{
    rego__step(ev);
    switch (t->kind) {
    case T_VAL:
        return k->fn(ev, k, t->val);
    case T_VAR:
        return slots[t->slot] != NULL ? k->fn(ev, k, slots[t->slot]) : 0;
    case T_INPUT:
        return ev->input != NULL ? k->fn(ev, k, ev->input) : 0;
    case T_DATA:
        return eval_data(ev, slots, ev->pol->root, ev->data, NULL, 0, 0, k);
    case T_REF:
        if (t->head->kind == T_INPUT)
            return ev->input != NULL ? eval_path(ev, slots, ev->input, t->items, t->n, 0, k) : 0;
        if (t->head->kind == T_DATA)
            return eval_data(ev, slots, ev->pol->root, ev->data, t->items, t->n, 0, k);
        {
            refk_t rk = {{ref_head_fn}, slots, t, k};
            return rego__eval_term(ev, slots, t->head, &rk.k);
        }
    case T_ARR:
    case T_SET:
    case T_OBJ: {
        uint32_t n = t->kind == T_OBJ ? 2 * t->n : t->n;
        collk_t ck;
        ck.k.fn = coll_done;
        ck.t = t;
        ck.next = k;
        ck.lk.k.fn = list_fn;
        ck.lk.slots = slots;
        ck.lk.items = t->items;
        ck.lk.n = n;
        ck.lk.i = 0;
        ck.lk.vals = rego__alloc(&ev->arena, (n + 1) * sizeof(rv_t *));
        ck.lk.done = &ck.k;
        return list_step(ev, &ck.lk);
    }
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP: {
        compk_t ck;
        uint32_t mark = ev->ntrail;
        memset(&ck, 0, sizeof(ck));
        ck.k.fn = comp_body_fn;
        ck.hk.fn = comp_head_fn;
        ck.kk.fn = comp_key_fn;
        ck.slots = slots;
        ck.t = t;
        ck.coll = t->kind == T_ACOMP   ? rego__arr(&ev->arena, 4)
                  : t->kind == T_SCOMP ? rego__set(&ev->arena, 4)
                                       : rego__obj(&ev->arena, 4);
        eval_body(ev, slots, &t->body, 0, &ck.k);
        undo(ev, mark);
        return k->fn(ev, k, ck.coll);
    }
    case T_CALL: {
        callk_t ck;
        uint32_t arity = t->fn != NULL                          ? t->fn->nargs
                         : (t->bi != NULL && t->bi->arity >= 0) ? (uint32_t)t->bi->arity
                                                                : t->n;
        ck.k.fn = call_done;
        ck.outk.fn = call_out_fn;
        ck.t = t;
        ck.slots = slots;
        ck.next = k;
        ck.nin = t->n > arity ? arity : t->n;
        ck.lk.k.fn = list_fn;
        ck.lk.slots = slots;
        ck.lk.items = t->items;
        ck.lk.n = ck.nin;
        ck.lk.i = 0;
        ck.lk.vals = rego__alloc(&ev->arena, (t->n + 1) * sizeof(rv_t *));
        ck.lk.done = &ck.k;
        return list_step(ev, &ck.lk);
    }
    }
    return 0;
}

/* ---- unification ---- */

typedef struct unik {
    rego__kont_t k;
    rv_t **slots;
    rego__term_t *t; /* pattern */
    rv_t *v;         /* value */
    uint32_t i;
    rego__kont_t *next;
    rego__term_t *other;
} unik_t;

static int uni_elems(rego_eval_t *ev, unik_t *uk);

static int uni_elem_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    unik_t *uk = CONTAINER(k, unik_t, k);
    (void)v;
    uk->i++;
    int rc = uni_elems(ev, uk);
    uk->i--;
    return rc;
}

static int uni_elems(rego_eval_t *ev, unik_t *uk)
{
    if (uk->i == uk->t->n)
        return uk->next->fn(ev, uk->next, NULL);
    if (uk->t->kind == T_ARR)
        return unify_tv(ev, uk->slots, uk->t->items[uk->i], uk->v->a[uk->i], &uk->k);
    /* object: key terms must evaluate to a key of the value */
    rv_t *key = first_value(ev, uk->slots, uk->t->items[2 * uk->i]);
    rv_t *val = key != NULL ? rego__obj_get(uk->v, key) : NULL;
    if (val == NULL)
        return 0;
    return unify_tv(ev, uk->slots, uk->t->items[2 * uk->i + 1], val, &uk->k);
}

static int eq_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    unik_t *uk = CONTAINER(k, unik_t, k);
    return rego__eq(v, uk->v) ? uk->next->fn(ev, uk->next, NULL) : 0;
}

static int unify_tv(rego_eval_t *ev, rv_t **slots, rego__term_t *t, rv_t *v, rego__kont_t *k)
{
    rego__step(ev);
    if (t->kind == T_VAR) {
        rv_t *cur = slots[t->slot];
        if (cur != NULL)
            return rego__eq(cur, v) ? k->fn(ev, k, NULL) : 0;
        uint32_t mark = ev->ntrail;
        bind(ev, &slots[t->slot], v);
        int rc = k->fn(ev, k, NULL);
        undo(ev, mark);
        return rc;
    }
    if ((t->kind == T_ARR || t->kind == T_OBJ) && has_unbound(slots, t)) {
        unik_t uk = {{uni_elem_fn}, slots, t, v, 0, k, NULL};
        if (v->kind != (t->kind == T_ARR ? REGO_ARRAY : REGO_OBJECT) || v->len != t->n)
            return 0;
        return uni_elems(ev, &uk);
    }
    if (t->kind == T_VAL)
        return rego__eq(t->val, v) ? k->fn(ev, k, NULL) : 0;
    {
        unik_t uk = {{eq_fn}, slots, t, v, 0, k, NULL};
        return rego__eval_term(ev, slots, t, &uk.k);
    }
}

static int uni_other_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    unik_t *uk = CONTAINER(k, unik_t, k);
    return unify_tv(ev, uk->slots, uk->other, v, uk->next);
}

typedef struct pairk {
    rego__kont_t k;
    rv_t **slots;
    rego__term_t *a, *b;
    uint32_t i;
    rego__kont_t *next;
} pairk_t;

static int unify(rego_eval_t *ev, rv_t **slots, rego__term_t *a, rego__term_t *b, rego__kont_t *k);

static int pair_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    pairk_t *pk = CONTAINER(k, pairk_t, k);
    (void)v;
    if (pk->i == pk->a->n)
        return pk->next->fn(ev, pk->next, NULL);
    pk->i++;
    int rc;
    if (pk->a->kind == T_OBJ) {
        /* Values under equal keys (keys are constants, checked by the caller). */
        rego__term_t *va = pk->a->items[2 * (pk->i - 1) + 1], *vb = NULL;
        for (uint32_t j = 0; j < pk->b->n; j++)
            if (rego__eq(pk->b->items[2 * j]->val, pk->a->items[2 * (pk->i - 1)]->val))
                vb = pk->b->items[2 * j + 1];
        rc = vb != NULL ? unify(ev, pk->slots, va, vb, &pk->k) : 0;
    } else {
        rc = unify(ev, pk->slots, pk->a->items[pk->i - 1], pk->b->items[pk->i - 1], &pk->k);
    }
    pk->i--;
    return rc;
}

static int unify(rego_eval_t *ev, rv_t **slots, rego__term_t *a, rego__term_t *b, rego__kont_t *k)
{
    if (a->kind == T_ARR && b->kind == T_ARR && has_unbound(slots, a) && has_unbound(slots, b)) {
        pairk_t pk = {{pair_fn}, slots, a, b, 0, k};
        if (a->n != b->n)
            return 0;
        return pair_fn(ev, &pk.k, NULL);
    }
    if (a->kind == T_OBJ && b->kind == T_OBJ && has_unbound(slots, a) && has_unbound(slots, b)) {
        pairk_t pk = {{pair_fn}, slots, a, b, 0, k};
        if (a->n != b->n)
            return 0;
        for (uint32_t i = 0; i < a->n; i++) {
            bool found = false;
            if (a->items[2 * i]->kind != T_VAL)
                goto general;
            for (uint32_t j = 0; j < b->n; j++)
                if (b->items[2 * j]->kind == T_VAL &&
                    rego__eq(b->items[2 * j]->val, a->items[2 * i]->val))
                    found = true;
            if (!found)
                return 0;
        }
        return pair_fn(ev, &pk.k, NULL);
    }
general:
    if (has_unbound(slots, a) && !has_unbound(slots, b)) {
        unik_t uk = {{uni_other_fn}, slots, NULL, NULL, 0, k, a};
        return rego__eval_term(ev, slots, b, &uk.k);
    }
    if (has_unbound(slots, a) && a->kind == T_VAR)
        return 0;
    {
        unik_t uk = {{uni_other_fn}, slots, NULL, NULL, 0, k, b};
        return rego__eval_term(ev, slots, a, &uk.k);
    }
}

/* ---- expressions ---- */

typedef struct bodyk {
    rego__kont_t k;
    rv_t **slots;
    rego__body_t *b;
    uint32_t i;
    rego__kont_t *next;
} bodyk_t;

static int body_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    bodyk_t *bk = CONTAINER(k, bodyk_t, k);
    (void)v;
    return eval_body(ev, bk->slots, bk->b, bk->i, bk->next);
}

static int eval_body(rego_eval_t *ev, rv_t **slots, rego__body_t *b, uint32_t i, rego__kont_t *k)
{
    if (i == b->n)
        return k->fn(ev, k, NULL);
    bodyk_t bk = {{body_fn}, slots, b, i + 1, k};
    return eval_expr(ev, slots, b->e[i], &bk.k, false);
}

typedef struct truthk {
    rego__kont_t k;
    rego__kont_t *next;
} truthk_t;

static int truth_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    truthk_t *tk = CONTAINER(k, truthk_t, k);
    if (v->kind == REGO_BOOL && !v->b)
        return 0;
    return tk->next->fn(ev, tk->next, NULL);
}

static int capture_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    truthk_t *tk = CONTAINER(k, truthk_t, k);
    (void)v;
    return tk->next->fn(ev, tk->next, NULL);
}

typedef struct iterk {
    rego__kont_t k;  /* collection value */
    rego__kont_t k2; /* key unified */
    rv_t **slots;
    rego__expr_t *e;
    rv_t *val;
    rego__kont_t *next;
} iterk_t;

static int somein_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    iterk_t *ik = CONTAINER(k, iterk_t, k2);
    (void)v;
    return unify_tv(ev, ik->slots, ik->e->b, ik->val, ik->next);
}

static int somein_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *coll)
{
    iterk_t *ik = CONTAINER(k, iterk_t, k);
    int rc = 0;
    if (coll->kind < REGO_ARRAY)
        return 0;
    for (uint32_t j = 0; j < coll->len && rc == 0; j++) {
        rv_t *key = coll->kind == REGO_ARRAY ? rego__num(&ev->arena, j) : coll->a[j];
        ik->val = coll->kind == REGO_OBJECT ? coll->v[j] : coll->a[j];
        if (ik->e->a != NULL) {
            rc = unify_tv(ev, ik->slots, ik->e->a, key, &ik->k2);
        } else {
            rc = unify_tv(ev, ik->slots, ik->e->b, ik->val, ik->next);
        }
    }
    return rc;
}

typedef struct everyk {
    rego__kont_t k;
    rego__kont_t k2; /* key bound */
    rego__kont_t k3; /* value bound */
    rv_t **slots;
    rego__expr_t *e;
    rv_t *val;
    rego__kont_t *next;
} everyk_t;

static int every_val_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    everyk_t *ek = CONTAINER(k, everyk_t, k3);
    (void)v;
    return eval_body(ev, ek->slots, &ek->e->body, 0, &stopk);
}

static int every_key_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    everyk_t *ek = CONTAINER(k, everyk_t, k2);
    (void)v;
    return unify_tv(ev, ek->slots, ek->e->b, ek->val, &ek->k3);
}

static int every_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *coll)
{
    everyk_t *ek = CONTAINER(k, everyk_t, k);
    if (coll->kind < REGO_ARRAY)
        return 0;
    for (uint32_t j = 0; j < coll->len; j++) {
        uint32_t mark = ev->ntrail;
        rv_t *key = coll->kind == REGO_ARRAY ? rego__num(&ev->arena, j) : coll->a[j];
        int found;
        ek->val = coll->kind == REGO_OBJECT ? coll->v[j] : coll->a[j];
        if (ek->e->a != NULL)
            found = unify_tv(ev, ek->slots, ek->e->a, key, &ek->k2);
        else
            found = unify_tv(ev, ek->slots, ek->e->b, ek->val, &ek->k3);
        undo(ev, mark);
        if (!found)
            return 0;
    }
    return ek->next->fn(ev, ek->next, NULL);
}

/* `with`: the replaced state lives only while the expression itself runs; the rest of the body
 * (the continuation) sees the state from before. */
typedef struct wstate {
    rv_t *input;
    rv_t *data;
    rv_t **cache;
    uint8_t *cstate;
    uint32_t novr;
    rego__ovr_t *ovr;
} wstate_t;

typedef struct withk {
    rego__kont_t k;
    wstate_t outer, inner;
    rego__kont_t *next;
} withk_t;

static void get_state(rego_eval_t *ev, wstate_t *s)
{
    s->input = ev->input;
    s->data = ev->data;
    s->cache = ev->cache;
    s->cstate = ev->cstate;
    s->novr = ev->novr;
    s->ovr = ev->ovr;
}

static void put_state(rego_eval_t *ev, const wstate_t *s)
{
    ev->input = s->input;
    ev->data = s->data;
    ev->cache = s->cache;
    ev->cstate = s->cstate;
    ev->novr = s->novr;
    ev->ovr = s->ovr;
}

static int with_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    withk_t *wk = CONTAINER(k, withk_t, k);
    (void)v;
    put_state(ev, &wk->outer);
    int rc = wk->next->fn(ev, wk->next, NULL);
    put_state(ev, &wk->inner);
    return rc;
}

static rv_t *set_path(rego_eval_t *ev, rv_t *root, const char **path, uint32_t n, rv_t *val)
{
    rv_t *obj;
    if (n == 0)
        return val;
    obj = rego__obj(&ev->arena, root != NULL && root->kind == REGO_OBJECT ? root->len + 1 : 1);
    if (root != NULL && root->kind == REGO_OBJECT)
        for (uint32_t i = 0; i < root->len; i++)
            (void)rego__obj_put(&ev->arena, obj, root->a[i], root->v[i]);
    rv_t *key = rego__str(&ev->arena, path[0], strlen(path[0]));
    rv_t *child = root != NULL ? rego__obj_get(root, key) : NULL;
    rego__obj_set(&ev->arena, obj, key, set_path(ev, child, path + 1, n - 1, val));
    return obj;
}

static int eval_with(rego_eval_t *ev, rv_t **slots, rego__expr_t *e, rego__kont_t *k)
{
    withk_t wk;
    rego__ovr_t *ovr;
    int rc;

    get_state(ev, &wk.outer);
    ovr = rego__alloc(&ev->arena, (ev->novr + e->nwith + 1) * sizeof(*ovr));
    if (ev->novr > 0)
        memcpy(ovr, ev->ovr, ev->novr * sizeof(*ovr));
    uint32_t novr = ev->novr;
    rv_t *input = ev->input;
    for (uint32_t i = 0; i < e->nwith; i++) {
        rego__with_t *w = &e->with[i];
        rego__ovr_t *ov = &ovr[novr];
        memset(ov, 0, sizeof(*ov));
        ov->root = w->root;
        ov->path = w->path;
        ov->npath = w->npath;
        if (w->root == T_CALL) {
            ov->bi = w->bi;
            ov->fn = w->fn;
            if (w->repl_fn != NULL || w->repl_bi != NULL) {
                ov->with_node = w->repl_fn;
                ov->with_bi = w->repl_bi;
                novr++;
                continue;
            }
        }
        rv_t *v = first_value(ev, slots, w->value);
        if (v == NULL) {
            put_state(ev, &wk.outer);
            return 0;
        }
        if (w->root == T_INPUT) {
            input = set_path(ev, input, w->path, w->npath, v);
            continue;
        }
        ov->val = v;
        if (w->root == T_DATA)
            ev->data = set_path(ev, ev->data, w->path, w->npath, v);
        if (w->root == T_CALL)
            ov->with_val = v;
        novr++;
    }
    ev->input = input;
    ev->ovr = ovr;
    ev->novr = novr;
    ev->cache = rego__alloc(&ev->arena, (ev->pol->nnodes + 1) * sizeof(*ev->cache));
    ev->cstate = rego__alloc(&ev->arena, ev->pol->nnodes + 1);
    memset(ev->cstate, 0, ev->pol->nnodes + 1);
    get_state(ev, &wk.inner);
    wk.k.fn = with_fn;
    wk.next = k;
    rc = eval_expr(ev, slots, e, &wk.k, true);
    put_state(ev, &wk.outer);
    return rc;
}

static int eval_expr(rego_eval_t *ev, rv_t **slots, rego__expr_t *e, rego__kont_t *k,
                     bool skip_with)
{
    rego__step(ev);
    if (e->nwith > 0 && !skip_with)
        return eval_with(ev, slots, e, k);
    switch (e->kind) {
    case E_TERM: {
        truthk_t tk = {{e->capture ? capture_fn : truth_fn}, k};
        return rego__eval_term(ev, slots, e->a, &tk.k);
    }
    case E_UNIFY:
        return unify(ev, slots, e->a, e->b, k);
    case E_NOT: {
        uint32_t mark = ev->ntrail;
        int found = eval_expr(ev, slots, e->inner, &stopk, false);
        undo(ev, mark);
        return found ? 0 : k->fn(ev, k, NULL);
    }
    case E_SOME:
        return k->fn(ev, k, NULL);
    case E_SOMEIN: {
        iterk_t ik = {{somein_fn}, {somein_key_fn}, slots, e, NULL, k};
        return rego__eval_term(ev, slots, e->c, &ik.k);
    }
    case E_EVERY: {
        everyk_t ek = {{every_fn}, {every_key_fn}, {every_val_fn}, slots, e, NULL, k};
        rv_t *coll = first_value(ev, slots, e->c);
        if (coll == NULL)
            return 0;
        return every_fn(ev, &ek.k, coll);
    }
    }
    return 0;
}

/* ---- public entry points ---- */

rego_eval_t *rego_eval_new(const rego_eval_opts_t *opts)
{
    rego_eval_t *ev = mem_calloc(sizeof(*ev));
    ev->max_steps = opts != NULL && opts->max_steps > 0 ? opts->max_steps : REGO_DEFAULT_MAX_STEPS;
    ev->max_bytes = opts != NULL && opts->max_bytes > 0 ? opts->max_bytes : REGO_DEFAULT_MAX_BYTES;
    ev->strict = opts != NULL && opts->strict_builtins;
    ev->fixed_now_ns = opts != NULL ? opts->now_ns : 0;
    rego__arena_init(&ev->arena, ev->max_bytes);
    return ev;
}

void rego_eval_free(rego_eval_t *ev)
{
    if (ev == NULL)
        return;
    rego__arena_free(&ev->arena);
    mem_free(ev);
}

void rego_eval_reset(rego_eval_t *ev)
{
    rego__arena_reset(&ev->arena);
    ev->input = NULL;
    ev->trail = NULL;
    ev->ntrail = ev->captrail = 0;
    ev->cache = NULL;
    ev->cstate = NULL;
    ev->ovr = NULL;
    ev->novr = 0;
}

size_t rego_eval_bytes(const rego_eval_t *ev)
{
    return ev->arena.used;
}

rego_val_t *rego_val_new_object(rego_eval_t *ev)
{
    return rego__obj(&ev->arena, 8);
}
rego_val_t *rego_val_new_array(rego_eval_t *ev)
{
    return rego__arr(&ev->arena, 4);
}
rego_val_t *rego_val_new_string(rego_eval_t *ev, const char *s, size_t len)
{
    return rego__str(&ev->arena, s, len);
}
rego_val_t *rego_val_new_number(rego_eval_t *ev, double n)
{
    return rego__num(&ev->arena, n);
}
rego_val_t *rego_val_new_bool(rego_eval_t *ev, bool b)
{
    (void)ev;
    return b ? &rego__true : &rego__false;
}
void rego_val_object_put(rego_eval_t *ev, rego_val_t *obj, const char *key, size_t klen,
                         rego_val_t *v)
{
    rego__obj_set(&ev->arena, obj, rego__str(&ev->arena, key, klen), v);
}
void rego_val_array_push(rego_eval_t *ev, rego_val_t *arr, rego_val_t *v)
{
    rego__arr_push(&ev->arena, arr, v);
}
void rego_eval_set_input(rego_eval_t *ev, rego_val_t *input)
{
    ev->input = input;
}

/* Converts input into the arena with the memory bound in force: a document past it gives
 * ERR_TOO_LARGE, a failed allocation ERR_NOMEM, and the context stays usable. */
static int load_input(rego_eval_t *ev, const char *text, size_t len, const json_t *j)
{
    rv_t *v;
    ev->code = 0;
    ev->arena.jcode = &ev->code;
    ev->arena.jb = &ev->jb;
    if (setjmp(ev->jb) != 0) {
        ev->arena.jb = NULL;
        return ev->code == ERR_NOMEM ? ERR_NOMEM : ERR_TOO_LARGE;
    }
    v = text != NULL ? rego__json_parse(&ev->arena, text, len) : rego__from_json(&ev->arena, j, 0);
    ev->arena.jb = NULL;
    if (v == NULL)
        return ERR_PARSE;
    ev->input = v;
    return 0;
}

int rego_eval_set_input_json(rego_eval_t *ev, const json_t *input, err_detail_t *detail)
{
    int rc;
    if (input == NULL) {
        ev->input = NULL;
        return 0;
    }
    rc = load_input(ev, NULL, 0, input);
    if (rc == ERR_PARSE)
        return err_set(detail, ERR_TOO_LARGE, "input nested deeper than %d", REGO_MAX_NESTING);
    if (rc < 0)
        return err_set(detail, rc, "input larger than the evaluation's memory bound");
    return 0;
}

int rego_eval_set_input_text(rego_eval_t *ev, const char *text, size_t len, err_detail_t *detail)
{
    int rc;
    if (text == NULL)
        return err_set(detail, ERR_INVAL, "no input text");
    rc = load_input(ev, text, len, NULL);
    if (rc == ERR_PARSE)
        return err_set(detail, ERR_PARSE, "input is not valid JSON (or nested too deeply)");
    if (rc < 0)
        return err_set(detail, rc, "input larger than the evaluation's memory bound");
    return 0;
}

typedef struct solk {
    rego__kont_t k;
    rv_t **slots;
    const rego_query_t *q;
    rego_result_t *res;
    uint32_t cap;
    bool first_only;
} solk_t;

static int sol_fn(rego_eval_t *ev, rego__kont_t *k, rv_t *v)
{
    solk_t *sk = CONTAINER(k, solk_t, k);
    rego_result_t *r = sk->res;
    const rego_query_t *q = sk->q;
    (void)v;
    if (r->count == sk->cap) {
        uint32_t cap = sk->cap < 4 ? 4 : sk->cap * 2;
        rv_t ***nb = rego__alloc(&ev->arena, cap * sizeof(*nb));
        rv_t ***ne = rego__alloc(&ev->arena, cap * sizeof(*ne));
        if (r->count > 0) {
            memcpy(nb, r->bindings, r->count * sizeof(*nb));
            memcpy(ne, r->exprs, r->count * sizeof(*ne));
        }
        r->bindings = nb;
        r->exprs = ne;
        sk->cap = cap;
    }
    rv_t **b = rego__alloc(&ev->arena, (q->nvars + 1) * sizeof(*b));
    rv_t **x = rego__alloc(&ev->arena, (q->nexprs + 1) * sizeof(*x));
    for (uint32_t i = 0; i < q->nvars; i++)
        b[i] = sk->slots[q->var_slots[i]];
    for (uint32_t i = 0; i < q->nexprs; i++) {
        rego__expr_t *e = q->body.e[i];
        x[i] = &rego__true;
        if (e->kind == E_TERM && e->nwith == 0)
            x[i] = first_value(ev, sk->slots, e->a);
        if (x[i] == NULL)
            x[i] = &rego__true;
    }
    r->bindings[r->count] = b;
    r->exprs[r->count] = x;
    r->count++;
    return sk->first_only ? 1 : 0;
}

static void eval_setup(rego_eval_t *ev, const rego_query_t *q, err_detail_t *detail,
                       uintptr_t stack_base)
{
    ev->stack_base = stack_base;
    ev->pol = q->pol;
    ev->detail = detail != NULL ? detail : &ev->own_detail;
    ev->steps = 0;
    ev->depth = 0;
    ev->ndefer = 0;
    ev->in_mock = 0;
    ev->cur_file = NULL;
    ev->cur_call = NULL;
    memset(ev->unm_key, 0, sizeof(ev->unm_key));
    ev->unm_next = 0;
    ev->code = 0;
    ev->opa_code = NULL;
    ev->ntrail = 0;
    ev->novr = 0;
    ev->ovr = NULL;
    ev->arena.jb = &ev->jb;
    ev->arena.jcode = &ev->code;
    ev->data = q->pol->data;
    ev->now_ns = ev->fixed_now_ns; /* 0: read the clock on first use (rego__now) */
}

static void eval_caches(rego_eval_t *ev)
{
    uint32_t n = ev->pol->nnodes + 1;
    ev->cache = rego__alloc(&ev->arena, n * sizeof(*ev->cache));
    ev->cstate = rego__alloc(&ev->arena, n);
    memset(ev->cstate, 0, n);
}

int rego_eval_query(rego_eval_t *ev, const rego_query_t *q, rego_result_t *out,
                    err_detail_t *detail, const char **opa_code)
{
    if (ev == NULL || q == NULL || out == NULL)
        return err_set(detail, ERR_INVAL, "rego_eval_query: missing context, query or output");
    rego_result_t res = {0};
    solk_t sk;

    char base;
    eval_setup(ev, q, detail, (uintptr_t)&base);
    if (setjmp(ev->jb) != 0) {
        ev->arena.jb = NULL;
        rego__run_defers(ev);
        if (opa_code != NULL)
            *opa_code = ev->opa_code != NULL ? ev->opa_code : "eval_limit_error";
        if (ev->code == ERR_REGO_LIMIT && ev->opa_code == NULL)
            err_set(ev->detail, ERR_REGO_LIMIT, "evaluation exceeded its memory bound");
        return ev->code != 0 ? ev->code : ERR_REGO_EVAL;
    }
    eval_caches(ev);
    memset(&sk, 0, sizeof(sk));
    sk.k.fn = sol_fn;
    sk.slots = new_slots(ev, q->nslots);
    sk.q = q;
    sk.res = &res;
    eval_body(ev, sk.slots, (rego__body_t *)&q->body, 0, &sk.k);
    ev->arena.jb = NULL;
    *out = res;
    return 0;
}

int rego_eval_value(rego_eval_t *ev, const rego_query_t *q, rego_val_t **out, err_detail_t *detail)
{
    if (ev == NULL || q == NULL || out == NULL)
        return err_set(detail, ERR_INVAL, "rego_eval_value: missing context, query or output");
    rv_t *v = NULL;
    char base;
    eval_setup(ev, q, detail, (uintptr_t)&base);
    if (setjmp(ev->jb) != 0) {
        ev->arena.jb = NULL;
        rego__run_defers(ev);
        if (ev->code == ERR_REGO_LIMIT && ev->opa_code == NULL)
            err_set(ev->detail, ERR_REGO_LIMIT, "evaluation exceeded its memory bound");
        return ev->code != 0 ? ev->code : ERR_REGO_EVAL;
    }
    eval_caches(ev);
    if (q->body.n != 1 || q->body.e[0]->kind != E_TERM || q->body.e[0]->nwith > 0)
        rego__fail(ev, ERR_INVAL, "eval_internal_error", "query is not a single reference");
    v = first_value(ev, new_slots(ev, q->nslots), q->body.e[0]->a);
    ev->arena.jb = NULL;
    *out = v;
    return 0;
}
