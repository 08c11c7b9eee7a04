/*
 * compile.c — from parsed modules to an evaluable policy: the data tree of rules, name
 * resolution (locals to slots, rule names and imports to data refs, calls to builtins or user
 * functions) and OPA's safety check, which also reorders body literals so that every variable is
 * bound before it is read.
 */
#include <stdio.h>
#include <string.h>

#include "rego/rego_int.h"

typedef struct scope {
    const char **names; /* slot → name (NULL for wildcards) */
    uint32_t n, cap;
    rego__cctx_t *c;
    rego__module_t *mod; /* NULL for queries */
    rego_policy_t *pol;
    const char *file;
} scope_t;

static void *calloc_c(rego__cctx_t *c, size_t n)
{
    void *p = rego__alloc(c->arena, n);
    memset(p, 0, n);
    return p;
}

static int new_slot(scope_t *s, const char *name)
{
    if (s->n == s->cap) {
        uint32_t cap = s->cap < 8 ? 8 : s->cap * 2;
        const char **nn = rego__alloc(s->c->arena, cap * sizeof(*nn));
        if (s->n > 0)
            memcpy(nn, s->names, s->n * sizeof(*nn));
        s->names = nn;
        s->cap = cap;
    }
    s->names[s->n] = name;
    return (int)s->n++;
}

static int find_slot(const scope_t *s, const char *name)
{
    for (uint32_t i = 0; i < s->n; i++)
        if (s->names[i] != NULL && strcmp(s->names[i], name) == 0)
            return (int)i;
    return -1;
}

/* ---- the data tree ---- */

static rego__node_t *child(rego__cctx_t *c, rego__node_t *n, const char *name, bool create)
{
    for (uint32_t i = 0; i < n->nkids; i++)
        if (strcmp(n->kids[i]->name, name) == 0)
            return n->kids[i];
    if (!create)
        return NULL;
    rego__node_t *k = calloc_c(c, sizeof(*k));
    k->name = name;
    k->parent = n;
    k->kind = -1;
    rego__node_t **nk = rego__alloc(c->arena, (n->nkids + 1) * sizeof(*nk));
    if (n->nkids > 0)
        memcpy(nk, n->kids, n->nkids * sizeof(*nk));
    nk[n->nkids++] = k;
    n->kids = nk;
    return k;
}

static void number_nodes(rego__node_t *n, uint32_t *next)
{
    n->id = (*next)++;
    for (uint32_t i = 0; i < n->nkids; i++)
        number_nodes(n->kids[i], next);
}

static rego__node_t *lookup_path(rego__node_t *root, const char **path, uint32_t n)
{
    rego__node_t *cur = root;
    for (uint32_t i = 0; i < n && cur != NULL; i++)
        cur = child(NULL, cur, path[i], false);
    return cur;
}

/* True when some rule of the package is named @p name (its first path element). */
static bool is_rule_name(rego_policy_t *pol, rego__module_t *m, const char *name)
{
    rego__node_t *pkg;
    if (m == NULL)
        return false;
    pkg = lookup_path(pol->root, m->pkg, m->npkg);
    return pkg != NULL && child(NULL, pkg, name, false) != NULL &&
           (child(NULL, pkg, name, false)->nrules + child(NULL, pkg, name, false)->nkids > 0 ||
            child(NULL, pkg, name, false)->dflt != NULL);
}

/* ---- name resolution ---- */

static rego__term_t *mk_term(rego__cctx_t *c, int kind, const rego__term_t *at)
{
    rego__term_t *t = calloc_c(c, sizeof(*t));
    t->kind = (uint8_t)kind;
    t->line = at->line;
    t->col = at->col;
    t->slot = -1;
    return t;
}

static rego__term_t *str_term(rego__cctx_t *c, const char *s, const rego__term_t *at)
{
    rego__term_t *t = mk_term(c, T_VAL, at);
    t->val = rego__str(c->arena, s, strlen(s));
    return t;
}

/* data.<pkg>.<name> as a ref term. */
static rego__term_t *pkg_ref(scope_t *s, const char *name, const rego__term_t *at)
{
    rego__term_t *r = mk_term(s->c, T_REF, at);
    r->head = mk_term(s->c, T_DATA, at);
    r->n = s->mod->npkg + 1;
    r->items = rego__alloc(s->c->arena, r->n * sizeof(*r->items));
    for (uint32_t i = 0; i < s->mod->npkg; i++)
        r->items[i] = str_term(s->c, s->mod->pkg[i], at);
    r->items[s->mod->npkg] = str_term(s->c, name, at);
    return r;
}

static rego__term_t *resolve_term(scope_t *s, rego__term_t *t);
static void resolve_body(scope_t *s, rego__body_t *b);

/* Collects names declared by `:=`, `some` and iteration keywords in @p b (and nested bodies). */
static void declare_term(scope_t *s, rego__term_t *t);
static void declare_pattern(scope_t *s, rego__term_t *t)
{
    if (t == NULL)
        return;
    if (t->kind == T_VAR) {
        if (!t->wild && find_slot(s, t->name) < 0)
            new_slot(s, t->name);
        return;
    }
    if (t->kind == T_ARR || t->kind == T_SET) {
        for (uint32_t i = 0; i < t->n; i++)
            declare_pattern(s, t->items[i]);
    } else if (t->kind == T_OBJ) {
        for (uint32_t i = 0; i < t->n; i++)
            declare_pattern(s, t->items[2 * i + 1]);
    }
}

static void declare_body(scope_t *s, rego__body_t *b)
{
    for (uint32_t i = 0; i < b->n; i++) {
        rego__expr_t *e = b->e[i];
        switch (e->kind) {
        case E_UNIFY:
            if (e->assign)
                declare_pattern(s, e->a);
            declare_term(s, e->a);
            declare_term(s, e->b);
            break;
        case E_SOME:
            for (uint32_t j = 0; j < e->c->n; j++)
                declare_pattern(s, e->c->items[j]);
            break;
        case E_SOMEIN:
            declare_pattern(s, e->a);
            declare_pattern(s, e->b);
            declare_term(s, e->c);
            break;
        case E_EVERY:
            declare_pattern(s, e->a);
            declare_pattern(s, e->b);
            declare_body(s, &e->body);
            break;
        case E_NOT:
            if (e->inner->kind == E_TERM)
                declare_term(s, e->inner->a);
            break;
        default:
            declare_term(s, e->a);
            break;
        }
    }
}

static void declare_term(scope_t *s, rego__term_t *t)
{
    if (t == NULL)
        return;
    switch (t->kind) {
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP:
        declare_body(s, &t->body);
        break;
    case T_REF:
        declare_term(s, t->head);
        for (uint32_t i = 0; i < t->n; i++)
            declare_term(s, t->items[i]);
        break;
    case T_CALL:
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            declare_term(s, t->items[i]);
        break;
    case T_OBJ:
        for (uint32_t i = 0; i < 2 * t->n; i++)
            declare_term(s, t->items[i]);
        break;
    default:
        break;
    }
}

/* A var that is not local: input, data, an import or a rule of the package. */
static rego__term_t *global_var(scope_t *s, rego__term_t *t)
{
    if (strcmp(t->name, "input") == 0)
        return mk_term(s->c, T_INPUT, t);
    if (strcmp(t->name, "data") == 0)
        return mk_term(s->c, T_DATA, t);
    if (s->mod != NULL) {
        for (uint32_t i = 0; i < s->mod->nimports; i++) {
            if (strcmp(s->mod->imports[i].alias, t->name) == 0) {
                rego__term_t *ref = s->mod->imports[i].ref;
                scope_t none = *s;
                none.mod = NULL;
                return resolve_term(&none, ref);
            }
        }
        if (is_rule_name(s->pol, s->mod, t->name))
            return pkg_ref(s, t->name, t);
    }
    return NULL;
}

static rego__term_t *resolve_var(scope_t *s, rego__term_t *t)
{
    int slot;
    rego__term_t *g;
    if (t->wild) {
        t->slot = new_slot(s, NULL);
        return t;
    }
    slot = find_slot(s, t->name);
    if (slot >= 0) {
        t->slot = slot;
        return t;
    }
    g = global_var(s, t);
    if (g != NULL)
        return g;
    t->slot = new_slot(s, t->name);
    return t;
}

/* Resolves the dotted name of a call: user function node or builtin. */
static void resolve_call(scope_t *s, rego__term_t *t)
{
    char first[128];
    const char *dot = strchr(t->name, '.');
    size_t fl = dot != NULL ? (size_t)(dot - t->name) : strlen(t->name);
    const char *path[64];
    uint32_t np = 0;
    rego__node_t *node = NULL;

    if (fl >= sizeof(first))
        fl = sizeof(first) - 1;
    memcpy(first, t->name, fl);
    first[fl] = '\0';
    /* Build the data path for a user function, if the first name leads into data. */
    rego__term_t tmp = *t;
    tmp.kind = T_VAR;
    tmp.name = first;
    tmp.wild = false;
    rego__term_t *g = find_slot(s, first) >= 0 ? NULL : global_var(s, &tmp);
    if (g != NULL && (g->kind == T_DATA || (g->kind == T_REF && g->head->kind == T_DATA))) {
        if (g->kind == T_REF)
            for (uint32_t i = 0; i < g->n && np < 60; i++)
                path[np++] = g->items[i]->val->str;
        const char *rest = dot;
        while (rest != NULL && np < 60) {
            const char *nd = strchr(rest + 1, '.');
            size_t len = nd != NULL ? (size_t)(nd - rest - 1) : strlen(rest + 1);
            path[np++] = rego__strndup(s->c->arena, rest + 1, len);
            rest = nd;
        }
        node = lookup_path(s->pol->root, path, np);
    }
    if (node != NULL && node->kind == R_FUNC) {
        t->fn = node;
        return;
    }
    t->bi = rego__builtin_find(t->name);
    if (t->bi == NULL) {
        if (node != NULL && node->kind >= 0) {
            /* Calling a non-function rule: OPA rejects it at compile time. */
            rego__cfail(s->c, "rego_type_error", s->file, t->line, t->col, "%s: not a function",
                        t->name);
        }
        rego__cfail(s->c, "rego_type_error", s->file, t->line, t->col, "undefined function %s",
                    t->name);
    }
    if (t->bi->arity >= 0 && t->n != (uint32_t)t->bi->arity && t->n != (uint32_t)t->bi->arity + 1)
        rego__cfail(s->c, "rego_type_error", s->file, t->line, t->col,
                    "%s: arity mismatch: %u arguments, want %d", t->name, t->n, t->bi->arity);
}

static rego__term_t *flatten_ref(scope_t *s, rego__term_t *t)
{
    rego__term_t *h = t->head;
    if (h->kind == T_REF) {
        rego__term_t **items = rego__alloc(s->c->arena, (h->n + t->n) * sizeof(*items));
        memcpy(items, h->items, h->n * sizeof(*items));
        memcpy(items + h->n, t->items, t->n * sizeof(*items));
        rego__term_t *r = mk_term(s->c, T_REF, t);
        r->head = h->head;
        r->items = items;
        r->n = h->n + t->n;
        return r;
    }
    return t;
}

static void check_ground(rego__cctx_t *c, rego__term_t *t)
{
    uint32_t n = t->kind == T_OBJ ? 2 * t->n : t->n;
    rv_t *v;
    for (uint32_t i = 0; i < n; i++)
        if (t->items[i]->kind != T_VAL)
            return;
    t->ground = true;
    if (t->kind == T_ARR) {
        v = rego__arr(c->arena, t->n);
        for (uint32_t i = 0; i < n; i++)
            rego__arr_push(c->arena, v, t->items[i]->val);
    } else if (t->kind == T_SET) {
        v = rego__set(c->arena, t->n);
        for (uint32_t i = 0; i < n; i++)
            rego__set_add(c->arena, v, t->items[i]->val);
    } else {
        v = rego__obj(c->arena, t->n);
        for (uint32_t i = 0; i < t->n; i++)
            if (rego__obj_put(c->arena, v, t->items[2 * i]->val, t->items[2 * i + 1]->val))
                rego__cfail(c, "rego_type_error", NULL, t->line, t->col, "duplicate key");
    }
    t->kind = T_VAL;
    t->val = v;
}

static rego__term_t *resolve_term(scope_t *s, rego__term_t *t)
{
    switch (t->kind) {
    case T_VAR:
        return resolve_var(s, t);
    case T_REF:
        t->head = resolve_term(s, t->head);
        for (uint32_t i = 0; i < t->n; i++)
            t->items[i] = resolve_term(s, t->items[i]);
        return flatten_ref(s, t);
    case T_CALL:
        for (uint32_t i = 0; i < t->n; i++)
            t->items[i] = resolve_term(s, t->items[i]);
        resolve_call(s, t);
        return t;
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            t->items[i] = resolve_term(s, t->items[i]);
        check_ground(s->c, t);
        return t;
    case T_OBJ:
        for (uint32_t i = 0; i < 2 * t->n; i++)
            t->items[i] = resolve_term(s, t->items[i]);
        check_ground(s->c, t);
        return t;
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP:
        declare_body(s, &t->body);
        resolve_body(s, &t->body);
        if (t->key != NULL)
            t->key = resolve_term(s, t->key);
        t->head = resolve_term(s, t->head);
        return t;
    default:
        return t;
    }
}

/* The dotted name of a var or a ref of names (`count`, `object.union_n`), or false. */
static bool dotted_name(const rego__term_t *t, char *out, size_t size)
{
    size_t nn;
    if (t->kind == T_VAR)
        return (size_t)snprintf(out, size, "%s", t->name) < size;
    if (t->kind != T_REF || t->head->kind != T_VAR)
        return false;
    nn = (size_t)snprintf(out, size, "%s", t->head->name);
    for (uint32_t i = 0; i < t->n && nn < size; i++) {
        if (t->items[i]->kind != T_VAL || t->items[i]->val->kind != REGO_STRING)
            return false;
        nn += (size_t)snprintf(out + nn, size - nn, ".%s", t->items[i]->val->str);
    }
    return nn < size;
}

static void resolve_with_target(scope_t *s, rego__with_t *w);

/* A `with` replacing a function may name another function as the replacement. */
static void resolve_with(scope_t *s, rego__with_t *w)
{
    char name[256];
    resolve_with_target(s, w);
    if (w->root == T_CALL && dotted_name(w->value, name, sizeof(name))) {
        const char *first = w->value->kind == T_VAR ? w->value->name : w->value->head->name;
        if (find_slot(s, first) < 0) {
            rego__term_t tmp = *w->value;
            rego__term_t *g;
            tmp.kind = T_VAR;
            tmp.name = first;
            tmp.wild = false;
            g = global_var(s, &tmp);
            if (g != NULL && (g->kind == T_REF || g->kind == T_DATA)) {
                const char *path[64];
                uint32_t np = 0;
                if (g->kind == T_REF)
                    for (uint32_t i = 0; i < g->n && np < 64; i++)
                        path[np++] = g->items[i]->val->str;
                for (uint32_t i = 0; w->value->kind == T_REF && i < w->value->n && np < 64; i++)
                    path[np++] = w->value->items[i]->val->str;
                rego__node_t *n = lookup_path(s->pol->root, path, np);
                if (n != NULL && n->kind == R_FUNC) {
                    w->repl_fn = n;
                    return;
                }
            }
            if (g == NULL) {
                w->repl_bi = rego__builtin_find(name);
                if (w->repl_bi != NULL)
                    return;
            }
        }
    }
    w->value = resolve_term(s, w->value);
}

static void resolve_with_target(scope_t *s, rego__with_t *w)
{
    rego__term_t *tg = w->target;
    if (tg->kind == T_VAR || tg->kind == T_REF) {
        const char *root = tg->kind == T_VAR         ? tg->name
                           : tg->head->kind == T_VAR ? tg->head->name
                                                     : "";
        if (strcmp(root, "input") == 0 || strcmp(root, "data") == 0) {
            w->root = strcmp(root, "input") == 0 ? T_INPUT : T_DATA;
            w->npath = tg->kind == T_REF ? tg->n : 0;
            w->path = rego__alloc(s->c->arena, (w->npath + 1) * sizeof(*w->path));
            for (uint32_t i = 0; i < w->npath; i++) {
                if (tg->items[i]->kind != T_VAL || tg->items[i]->val->kind != REGO_STRING)
                    rego__cfail(s->c, "rego_compile_error", s->file, tg->line, tg->col,
                                "with target must be a static ref");
                w->path[i] = tg->items[i]->val->str;
            }
            if (w->root == T_DATA) {
                rego__node_t *n = lookup_path(s->pol->root, w->path, w->npath);
                if (n != NULL && n->kind == R_FUNC) {
                    w->root = T_CALL;
                    w->fn = n;
                }
            }
            return;
        }
        /* A function: a builtin's dotted name or a user function. */
        char name[256];
        size_t nn = (size_t)snprintf(name, sizeof(name), "%s",
                                     tg->kind == T_VAR ? tg->name : tg->head->name);
        for (uint32_t i = 0; tg->kind == T_REF && i < tg->n && nn < sizeof(name); i++)
            if (tg->items[i]->kind == T_VAL && tg->items[i]->val->kind == REGO_STRING)
                nn += (size_t)snprintf(name + nn, sizeof(name) - nn, ".%s", tg->items[i]->val->str);
        rego__term_t call = *tg;
        call.kind = T_CALL;
        call.name = rego__strndup(s->c->arena, name, nn < sizeof(name) ? nn : sizeof(name) - 1);
        call.n = 0;
        call.items = NULL;
        call.bi = NULL;
        call.fn = NULL;
        const rego__builtin_t *bi = rego__builtin_find(call.name);
        if (bi != NULL) {
            w->root = T_CALL;
            w->bi = bi;
            return;
        }
        /* user function */
        rego__term_t tmp = *tg;
        tmp.kind = T_VAR;
        rego__term_t *g = tg->kind == T_VAR ? global_var(s, &tmp) : NULL;
        if (g != NULL && g->kind == T_REF) {
            const char *path[64];
            uint32_t np = 0;
            for (uint32_t i = 0; i < g->n && np < 64; i++)
                path[np++] = g->items[i]->val->str;
            rego__node_t *n = lookup_path(s->pol->root, path, np);
            if (n != NULL && n->kind == R_FUNC) {
                w->root = T_CALL;
                w->fn = n;
                return;
            }
        }
    }
    rego__cfail(s->c, "rego_compile_error", s->file, tg->line, tg->col,
                "with keyword target must reference existing input, data, or a function");
}

static void resolve_expr(scope_t *s, rego__expr_t *e)
{
    for (uint32_t i = 0; i < e->nwith; i++)
        resolve_with(s, &e->with[i]);
    switch (e->kind) {
    case E_TERM:
        e->a = resolve_term(s, e->a);
        break;
    case E_UNIFY:
        e->a = resolve_term(s, e->a);
        e->b = resolve_term(s, e->b);
        break;
    case E_NOT:
        resolve_expr(s, e->inner);
        break;
    case E_SOME:
        for (uint32_t i = 0; i < e->c->n; i++)
            e->c->items[i] = resolve_term(s, e->c->items[i]);
        break;
    case E_SOMEIN:
    case E_EVERY:
        if (e->a != NULL)
            e->a = resolve_term(s, e->a);
        e->b = resolve_term(s, e->b);
        e->c = resolve_term(s, e->c);
        if (e->kind == E_EVERY)
            resolve_body(s, &e->body);
        break;
    }
}

/* ---- safety: which variables a literal reads and which it binds ---- */

typedef struct vset {
    uint8_t *in;  /* slot → read */
    uint8_t *out; /* slot → bound by this literal */
} vset_t;

static void vars_term(rego__term_t *t, vset_t *vs, bool pattern);

static void vars_body(rego__body_t *b, vset_t *vs)
{
    /* Free variables of a nested body count as reads; the nested body is checked on its own. */
    for (uint32_t i = 0; i < b->n; i++) {
        rego__expr_t *e = b->e[i];
        rego__term_t *ts[3] = {e->a, e->b, e->c};
        for (int j = 0; j < 3; j++)
            if (ts[j] != NULL)
                vars_term(ts[j], vs, false);
        if (e->inner != NULL) {
            rego__body_t ib = {.e = &e->inner, .n = 1};
            vars_body(&ib, vs);
        }
        if (e->body.n > 0)
            vars_body(&e->body, vs);
        for (uint32_t w = 0; w < e->nwith; w++)
            vars_term(e->with[w].value, vs, false);
    }
}

static void vars_term(rego__term_t *t, vset_t *vs, bool pattern)
{
    switch (t->kind) {
    case T_VAR:
        if (!t->wild)
            (pattern ? vs->out : vs->in)[t->slot] = 1;
        break;
    case T_REF:
        vars_term(t->head, vs, false);
        for (uint32_t i = 0; i < t->n; i++)
            vars_term(t->items[i], vs, true);
        break;
    case T_CALL: {
        uint32_t n = t->n;
        bool out = (t->bi != NULL && t->bi->arity >= 0 && t->n == (uint32_t)t->bi->arity + 1) ||
                   (t->fn != NULL && t->n == t->fn->nargs + 1);
        for (uint32_t i = 0; i < n; i++)
            vars_term(t->items[i], vs, out && i == n - 1);
        break;
    }
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            vars_term(t->items[i], vs, pattern);
        break;
    case T_OBJ:
        for (uint32_t i = 0; i < t->n; i++) {
            vars_term(t->items[2 * i], vs, false);
            vars_term(t->items[2 * i + 1], vs, pattern);
        }
        break;
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP: {
        /* The comprehension's own variables are bound inside it; only outer ones matter, and
         * which ones are outer is decided by the caller (closure mask). */
        break;
    }
    default:
        break;
    }
}

typedef struct safety {
    rego__cctx_t *c;
    scope_t *s;
    uint32_t nslots;
} safety_t;

static void reorder(safety_t *sf, rego__body_t *b, uint8_t *bound);

/* Marks what literal @p e reads and binds. */
static void lit_vars(rego__expr_t *e, vset_t *vs)
{
    switch (e->kind) {
    case E_TERM:
        vars_term(e->a, vs, false);
        break;
    case E_UNIFY:
        vars_term(e->a, vs, true);
        vars_term(e->b, vs, true);
        break;
    case E_NOT: {
        /* Everything a negated literal mentions must be bound beforehand (except wildcards and
         * what it binds itself by iteration). */
        vset_t inner = {vs->in, vs->in};
        lit_vars(e->inner, &inner);
        break;
    }
    case E_SOME:
        break;
    case E_SOMEIN:
        if (e->a != NULL)
            vars_term(e->a, vs, true);
        vars_term(e->b, vs, true);
        vars_term(e->c, vs, false);
        break;
    case E_EVERY:
        vars_term(e->c, vs, false);
        break;
    }
    for (uint32_t w = 0; w < e->nwith; w++)
        vars_term(e->with[w].value, vs, false);
}

static void nested_terms(safety_t *sf, rego__term_t *t, uint8_t *bound);

static void nested_expr(safety_t *sf, rego__expr_t *e, uint8_t *bound)
{
    rego__term_t *ts[3] = {e->a, e->b, e->c};
    for (int j = 0; j < 3; j++)
        if (ts[j] != NULL)
            nested_terms(sf, ts[j], bound);
    if (e->inner != NULL)
        nested_expr(sf, e->inner, bound);
    if (e->kind == E_EVERY) {
        uint8_t *copy = rego__alloc(sf->c->arena, sf->nslots + 1);
        memcpy(copy, bound, sf->nslots);
        if (e->a != NULL && e->a->kind == T_VAR && !e->a->wild)
            copy[e->a->slot] = 1;
        if (e->b->kind == T_VAR && !e->b->wild)
            copy[e->b->slot] = 1;
        reorder(sf, &e->body, copy);
    }
    for (uint32_t w = 0; w < e->nwith; w++)
        nested_terms(sf, e->with[w].value, bound);
}

static void nested_terms(safety_t *sf, rego__term_t *t, uint8_t *bound)
{
    switch (t->kind) {
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP: {
        uint8_t *copy = rego__alloc(sf->c->arena, sf->nslots + 1);
        memcpy(copy, bound, sf->nslots);
        reorder(sf, &t->body, copy);
        vset_t vs = {calloc_c(sf->c, sf->nslots + 1), calloc_c(sf->c, sf->nslots + 1)};
        if (t->key != NULL)
            vars_term(t->key, &vs, false);
        vars_term(t->head, &vs, false);
        for (uint32_t i = 0; i < sf->nslots; i++) {
            if (vs.in[i] && !copy[i])
                rego__cfail(sf->c, "rego_unsafe_var_error", sf->s->file, t->line, t->col,
                            "var %s is unsafe", sf->s->names[i] ? sf->s->names[i] : "_");
        }
        break;
    }
    case T_REF:
        nested_terms(sf, t->head, bound);
        for (uint32_t i = 0; i < t->n; i++)
            nested_terms(sf, t->items[i], bound);
        break;
    case T_CALL:
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            nested_terms(sf, t->items[i], bound);
        break;
    case T_OBJ:
        for (uint32_t i = 0; i < 2 * t->n; i++)
            nested_terms(sf, t->items[i], bound);
        break;
    default:
        break;
    }
}

/* Comprehension variables that are also mentioned outside the comprehension in the same body
 * are closures: the literal holding the comprehension waits for them. */
static void closure_vars(safety_t *sf, rego__term_t *t, uint8_t *outer, uint8_t *in)
{
    switch (t->kind) {
    case T_ACOMP:
    case T_SCOMP:
    case T_OCOMP: {
        vset_t vs = {calloc_c(sf->c, sf->nslots + 1), NULL};
        vs.out = vs.in;
        vars_body(&t->body, &vs);
        if (t->key != NULL)
            vars_term(t->key, &vs, false);
        vars_term(t->head, &vs, false);
        for (uint32_t i = 0; i < sf->nslots; i++)
            if (vs.in[i] && outer[i])
                in[i] = 1;
        break;
    }
    case T_REF:
        closure_vars(sf, t->head, outer, in);
        for (uint32_t i = 0; i < t->n; i++)
            closure_vars(sf, t->items[i], outer, in);
        break;
    case T_CALL:
    case T_ARR:
    case T_SET:
        for (uint32_t i = 0; i < t->n; i++)
            closure_vars(sf, t->items[i], outer, in);
        break;
    case T_OBJ:
        for (uint32_t i = 0; i < 2 * t->n; i++)
            closure_vars(sf, t->items[i], outer, in);
        break;
    default:
        break;
    }
}

static void expr_closures(safety_t *sf, rego__expr_t *e, uint8_t *outer, uint8_t *in)
{
    rego__term_t *ts[3] = {e->a, e->b, e->c};
    for (int j = 0; j < 3; j++)
        if (ts[j] != NULL)
            closure_vars(sf, ts[j], outer, in);
    if (e->inner != NULL)
        expr_closures(sf, e->inner, outer, in);
    if (e->kind == E_EVERY) {
        vset_t vs = {calloc_c(sf->c, sf->nslots + 1), NULL};
        vs.out = vs.in;
        vars_body(&e->body, &vs);
        for (uint32_t i = 0; i < sf->nslots; i++)
            if (vs.in[i] && outer[i])
                in[i] = 1;
        if (e->a != NULL && e->a->kind == T_VAR && !e->a->wild)
            in[e->a->slot] = 0;
        if (e->b->kind == T_VAR && !e->b->wild)
            in[e->b->slot] = 0;
    }
}

/* Orders @p b so that each literal runs after the literals that bind what it reads (a stable
 * topological pick, as OPA's compiler does); @p bound is updated. Unsafe variables fail. */
static void reorder(safety_t *sf, rego__body_t *b, uint8_t *bound)
{
    uint32_t n = b->n, ns = sf->nslots;
    rego__expr_t **out = rego__alloc(sf->c->arena, (n + 1) * sizeof(*out));
    uint8_t *done = calloc_c(sf->c, n + 1);
    vset_t *vs = rego__alloc(sf->c->arena, (n + 1) * sizeof(*vs));
    uint8_t *outer = calloc_c(sf->c, ns + 1);
    uint32_t picked = 0;

    for (uint32_t i = 0; i < n; i++) {
        vs[i].in = calloc_c(sf->c, ns + 1);
        vs[i].out = calloc_c(sf->c, ns + 1);
        lit_vars(b->e[i], &vs[i]);
        for (uint32_t j = 0; j < ns; j++)
            if (vs[i].in[j] || vs[i].out[j])
                outer[j] = 1;
    }
    for (uint32_t i = 0; i < n; i++)
        expr_closures(sf, b->e[i], outer, vs[i].in);
    while (picked < n) {
        bool progress = false;
        for (uint32_t i = 0; i < n; i++) {
            bool ready = true;
            if (done[i])
                continue;
            for (uint32_t j = 0; j < ns && ready; j++)
                if (vs[i].in[j] && !bound[j] && !vs[i].out[j])
                    ready = false;
            if (!ready)
                continue;
            nested_expr(sf, b->e[i], bound);
            for (uint32_t j = 0; j < ns; j++)
                if (vs[i].in[j] || vs[i].out[j])
                    bound[j] = 1;
            out[picked++] = b->e[i];
            done[i] = 1;
            progress = true;
            break;
        }
        if (!progress) {
            for (uint32_t i = 0; i < n; i++) {
                if (done[i])
                    continue;
                for (uint32_t j = 0; j < ns; j++)
                    if (vs[i].in[j] && !bound[j])
                        rego__cfail(sf->c, "rego_unsafe_var_error", sf->s->file, b->e[i]->line,
                                    b->e[i]->col, "var %s is unsafe",
                                    sf->s->names[j] ? sf->s->names[j] : "_");
            }
            break;
        }
    }
    memcpy(b->e, out, n * sizeof(*out));
}

static void resolve_body(scope_t *s, rego__body_t *b)
{
    for (uint32_t i = 0; i < b->n; i++)
        resolve_expr(s, b->e[i]);
}

static void check_head(safety_t *sf, rego__term_t *t, uint8_t *bound, const char *what)
{
    vset_t vs = {calloc_c(sf->c, sf->nslots + 1), NULL};
    vs.out = vs.in;
    if (t == NULL)
        return;
    nested_terms(sf, t, bound);
    vars_term(t, &vs, false);
    for (uint32_t i = 0; i < sf->nslots; i++)
        if (vs.in[i] && !bound[i])
            rego__cfail(sf->c, "rego_unsafe_var_error", sf->s->file, t->line, t->col,
                        "var %s is unsafe (in %s)", sf->s->names[i] ? sf->s->names[i] : "_", what);
}

static void compile_rule(rego__cctx_t *c, rego_policy_t *pol, rego__rule_t *r)
{
    scope_t s = {0};
    safety_t sf;
    s.c = c;
    s.mod = r->mod;
    s.pol = pol;
    s.file = r->file;

    for (uint32_t i = 0; i < r->nargs; i++)
        declare_pattern(&s, r->args[i]);
    for (rego__rule_t *e = r; e != NULL; e = e->els)
        declare_body(&s, &e->body);
    for (uint32_t i = 0; i < r->nargs; i++)
        r->args[i] = resolve_term(&s, r->args[i]);
    for (rego__rule_t *e = r; e != NULL; e = e->els) {
        resolve_body(&s, &e->body);
        for (uint32_t i = 0; i < e->nkeys; i++)
            e->keys[i] = resolve_term(&s, e->keys[i]);
        if (e->value != NULL)
            e->value = resolve_term(&s, e->value);
    }
    sf.c = c;
    sf.s = &s;
    sf.nslots = s.n;
    for (rego__rule_t *e = r; e != NULL; e = e->els) {
        uint8_t *bound = calloc_c(c, s.n + 1);
        vset_t av = {bound, bound};
        for (uint32_t i = 0; i < r->nargs; i++)
            vars_term(r->args[i], &av, true);
        reorder(&sf, &e->body, bound);
        for (uint32_t i = 0; i < e->nkeys; i++)
            check_head(&sf, e->keys[i], bound, "rule head");
        check_head(&sf, e->value, bound, "rule head");
        e->nslots = s.n;
    }
}

void rego__compile_policy(rego__cctx_t *c, rego_policy_t *p, rego__module_t **mods, uint32_t n)
{
    p->root = calloc_c(c, sizeof(*p->root));
    p->root->kind = -1;
    p->root->name = "data";
    /* 1. the tree */
    for (uint32_t i = 0; i < n; i++) {
        rego__module_t *m = mods[i];
        rego__node_t *pkg = p->root;
        for (uint32_t j = 0; j < m->npkg; j++)
            pkg = child(c, pkg, m->pkg[j], true);
        pkg->pkg = true;
        for (uint32_t j = 0; j < m->nrules; j++) {
            rego__rule_t *r = m->rules[j];
            const char **path = (const char **)(void *)r->node;
            uint32_t np = r->nslots;
            rego__node_t *node = pkg;
            r->nslots = 0;
            for (uint32_t k = 0; k < np; k++)
                node = child(c, node, path[k], true);
            r->node = node;
            int kind = r->kind;
            if (node->kind >= 0 && node->kind != kind &&
                !(node->kind == R_OBJ && kind == R_COMPLETE && r->nkeys == 0 && false))
                rego__cfail(c, "rego_type_error", r->file, r->line, r->col,
                            "conflicting rules data.%s found", path[np - 1]);
            if (kind == R_FUNC && node->kind == R_FUNC && node->nargs != r->nargs)
                rego__cfail(c, "rego_type_error", r->file, r->line, r->col,
                            "function %s has arity %u, but is defined with %u arguments",
                            path[np - 1], node->nargs, r->nargs);
            node->kind = kind;
            node->nargs = r->nargs;
            if (r->is_default) {
                if (node->dflt != NULL)
                    rego__cfail(c, "rego_type_error", r->file, r->line, r->col,
                                "multiple default rules %s found", path[np - 1]);
                node->dflt = r;
                continue;
            }
            rego__rule_t **nr = rego__alloc(c->arena, (node->nrules + 1) * sizeof(*nr));
            if (node->nrules > 0)
                memcpy(nr, node->rules, node->nrules * sizeof(*nr));
            nr[node->nrules++] = r;
            node->rules = nr;
        }
    }
    /* 2. a rule that has rules below it would be both a value and a package */
    p->nnodes = 0;
    number_nodes(p->root, &p->nnodes);
    /* 3. names, slots, safety */
    for (uint32_t i = 0; i < n; i++)
        for (uint32_t j = 0; j < mods[i]->nrules; j++)
            compile_rule(c, p, mods[i]->rules[j]);
}

void rego__compile_query(rego__cctx_t *c, rego_policy_t *p, rego_query_t *q)
{
    scope_t s = {0};
    safety_t sf;
    s.c = c;
    s.pol = p;
    s.file = "query";
    declare_body(&s, &q->body);
    resolve_body(&s, &q->body);
    sf.c = c;
    sf.s = &s;
    sf.nslots = s.n;
    uint8_t *bound = calloc_c(c, s.n + 1);
    reorder(&sf, &q->body, bound);
    q->nslots = s.n;
    q->vars = rego__alloc(c->arena, (s.n + 1) * sizeof(*q->vars));
    q->var_slots = rego__alloc(c->arena, (s.n + 1) * sizeof(*q->var_slots));
    q->nvars = 0;
    for (uint32_t i = 0; i < s.n; i++) {
        if (s.names[i] == NULL || strncmp(s.names[i], "__", 2) == 0)
            continue;
        q->vars[q->nvars] = s.names[i];
        q->var_slots[q->nvars++] = (int)i;
    }
    q->nexprs = q->body.n;
}
