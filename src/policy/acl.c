/*
 * Access control: compiling spec.accessControl into flat arrays (policies, trie nodes, rules and
 * one string pool), and the allocation-free check that walks them. The trie mirrors Dapr's
 * pkg/config/acl_trie.go node for node, so insertion order, duplicate handling and the wildcard
 * rules come out the same; see acl.h for the semantics and the deliberate differences.
 */
#include "policy/acl.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"

#define NONE UINT32_MAX
#define STRINGS_MAX (8u * 1024 * 1024) /* bytes of the string pool; files are ≤ 1 MiB */
#define VERB_SLOTS 10                  /* slot 0 is "*", slots 1..9 are ACL_VERB_GET..PATCH */
#define PATH_MAX_BYTES 160 /* "spec.accessControl.policies[N].operations[M]" with room */
#define FILE_NAME_SHOWN 64 /* longer file names keep their last component */

enum action { ACT_UNSET = 0, ACT_ALLOW, ACT_DENY };

enum seg_kind {
    SEG_LITERAL = 0, /* no '*' */
    SEG_STAR,        /* exactly "*": one segment, last position only */
    SEG_DSTAR,       /* exactly "**": this segment and everything below */
    SEG_GLOB,        /* contains '*' elsewhere: '*' matches any bytes inside the segment */
};

typedef struct rule {
    uint32_t name;                   /* pool offset: operation name as compiled ("/op/\*") */
    uint8_t verb_action[VERB_SLOTS]; /* enum action per verb key; ACT_UNSET when unlisted */
    uint8_t action;                  /* the operation's action (gRPC); ACT_ALLOW or ACT_DENY */
} rule_t;

typedef struct node {
    uint32_t seg;         /* pool offset of the segment text, without its '/' */
    uint32_t seg_len;     /* bytes of the segment */
    uint32_t first_child; /* node index, NONE when a leaf */
    uint32_t last_child;  /* node index, for appending in insertion order */
    uint32_t next;        /* next sibling, NONE at the end */
    uint32_t rule;        /* rule index, NONE when the node carries no data */
    uint8_t kind;         /* enum seg_kind */
} node_t;

typedef struct policy {
    uint32_t app_id;        /* pool offset */
    uint32_t ns;            /* pool offset */
    uint32_t td;            /* pool offset */
    uint8_t default_action; /* enum action; ACT_UNSET when the policy sets none */
    uint32_t root;          /* node index of the trie root ("/") */
} policy_t;

struct acl {
    atomic_uint refs;       /* references; the last acl_unref frees */
    bool enabled;           /* false: no accessControl, everything allowed */
    bool http;              /* operation names and methods compared lower-cased */
    uint8_t default_action; /* global; ACT_ALLOW or ACT_DENY */
    uint32_t trust_domain;  /* pool offset */
    char *strings;          /* owned pool of NUL-terminated strings */
    policy_t *policies;     /* owned, npolicies of them, in file order */
    size_t npolicies;       /* policies kept */
    uint32_t *table;        /* owned open-addressing index: policy index + 1, 0 = empty */
    size_t table_mask;      /* table size - 1 (a power of two) */
    node_t *nodes;          /* owned, every trie's nodes */
    size_t nnodes;          /* nodes used */
    rule_t *rules;          /* owned */
    size_t nrules;          /* rules used */
    size_t cap_policies;    /* allocated policies (compile only) */
    size_t cap_nodes;       /* allocated nodes (compile only) */
    size_t cap_rules;       /* allocated rules (compile only) */
};

static const char *const verb_names[VERB_SLOTS] = {
    "*", "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
};

/* What compiling needs besides the acl: the pool being filled and where errors point. */
struct cc {
    acl_t *a;         /* the acl being built, owned until handed out */
    buf_t pool;       /* its strings; becomes a->strings at the end */
    const char *file; /* file name for details, borrowed from the Configuration */
    err_detail_t *d;  /* where errors are explained; may be NULL */
};

/* ---- small helpers -------------------------------------------------------------------------- */

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

static const char *short_name(const char *file)
{
    size_t n = strlen(file);
    const char *slash;

    if (n <= FILE_NAME_SHOWN)
        return file;
    slash = strrchr(file, '/');
    return slash ? slash + 1 : file + n - FILE_NAME_SHOWN;
}

/* Writes "<file>:<line>: <path>: <problem>" into the detail and returns ERR_RES_INVALID. */
__attribute__((format(printf, 4, 5))) static int fail(const struct cc *c, unsigned line,
                                                      const char *path, const char *fmt, ...)
{
    char problem[200];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(problem, sizeof(problem), fmt, ap);
    va_end(ap);
    return err_set(c->d, ERR_RES_INVALID, "%s:%u: %s: %s", c->file, line, path, problem);
}

/* Adds [s, s+n) and a NUL to the pool; *off is where it starts. */
static int pool_add(struct cc *c, const char *s, size_t n, uint32_t *off)
{
    int rc;

    if (n >= UINT32_MAX || c->pool.len > UINT32_MAX - n - 1)
        return ERR_TOO_LARGE;
    *off = (uint32_t)c->pool.len;
    rc = buf_append(&c->pool, s, n);
    return rc ? rc : buf_append(&c->pool, "", 1);
}

/* Makes room for one more element in a growable array; ERR_NOMEM when that fails. */
static int grow(void **arr, size_t *cap, size_t used, size_t elem)
{
    size_t ncap;
    void *p;

    if (used < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    if (ncap > NONE / 2 || ncap > SIZE_MAX / elem)
        return ERR_TOO_LARGE;
    p = mem_try_realloc(*arr, ncap * elem);
    if (p == NULL)
        return ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

/*
 * Reads @p field of map @p map as an optional string: *out is NULL when absent or YAML null,
 * and *line is the value's line (or the map's). Anything but a scalar is an error.
 */
static int opt_str(const struct cc *c, const res_node_t *map, const char *path, const char *field,
                   const char **out, unsigned *line)
{
    const res_node_t *v = res_node_child(map, field);

    *out = NULL;
    *line = res_node_line(map);
    if (v == NULL || res_node_is_null(v))
        return 0;
    *line = res_node_line(v);
    if (res_node_kind(v) != RES_NODE_SCALAR)
        return fail(c, res_node_line(v), path, "%s: expected a string, found %s", field,
                    res_node_kind_name(v));
    *out = res_node_scalar(v);
    return 0;
}

/* Like opt_str for a sequence; *out is NULL when absent or null. */
static int opt_seq(const struct cc *c, const res_node_t *map, const char *path, const char *field,
                   const res_node_t **out)
{
    const res_node_t *v = res_node_child(map, field);

    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != RES_NODE_SEQ)
        return fail(c, res_node_line(v), path, "%s: expected a sequence, found %s", field,
                    res_node_kind_name(v));
    *out = v;
    return 0;
}

/*
 * Parses an action word: "allow"/"deny" in any case (Dapr compares with EqualFold). An empty or
 * absent word is ACT_UNSET, which each caller turns into its documented meaning.
 */
static int parse_action(const struct cc *c, const char *s, unsigned line, const char *path,
                        const char *field, uint8_t *out)
{
    if (s == NULL || s[0] == '\0') {
        *out = ACT_UNSET;
        return 0;
    }
    if (str_ieq(s, strlen(s), "allow")) {
        *out = ACT_ALLOW;
        return 0;
    }
    if (str_ieq(s, strlen(s), "deny")) {
        *out = ACT_DENY;
        return 0;
    }
    return fail(c, line, path, "%s: expected \"allow\" or \"deny\", found \"%.40s\"", field, s);
}

static uint64_t key_hash(const char *app_id, const char *ns)
{
    uint64_t h = 1469598103934665603ull;

    for (const char *p = app_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0xff) * 1099511628211ull; /* 0xff never occurs in a valid id: a clean separator */
    for (const char *p = ns; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

/* ---- compiling ------------------------------------------------------------------------------ */

static int node_new(struct cc *c, const char *seg, size_t n, uint32_t *out)
{
    acl_t *a = c->a;
    node_t *nd;
    const char *star = memchr(seg, '*', n);
    int rc = grow((void **)&a->nodes, &a->cap_nodes, a->nnodes, sizeof(*a->nodes));

    if (rc < 0)
        return rc;
    nd = &a->nodes[a->nnodes];
    *nd = (node_t){0, (uint32_t)n, NONE, NONE, NONE, NONE, SEG_LITERAL};
    rc = pool_add(c, seg, n, &nd->seg);
    if (rc < 0)
        return rc;
    if (n == 1 && seg[0] == '*')
        nd->kind = SEG_STAR;
    else if (n == 2 && seg[0] == '*' && seg[1] == '*')
        nd->kind = SEG_DSTAR;
    else if (star != NULL)
        nd->kind = SEG_GLOB;
    *out = (uint32_t)a->nnodes++;
    return 0;
}

/*
 * Inserts operation @p name (already '/'-prefixed and case-folded) for rule @p rule under
 * @p root, as Dapr's PutOperationAction does: walk exact segments, append missing children in
 * order, and give the last node the rule only if it has none yet (the first definition wins).
 */
static int trie_put(struct cc *c, uint32_t root, const char *name, size_t n, uint32_t rule)
{
    uint32_t cur = root;
    size_t i = 1;
    int rc;

    for (;;) {
        size_t j = i;
        uint32_t ch, found = NONE;
        while (j < n && name[j] != '/')
            j++;
        for (ch = c->a->nodes[cur].first_child; ch != NONE; ch = c->a->nodes[ch].next) {
            const node_t *nd = &c->a->nodes[ch];
            if (nd->seg_len == j - i && memcmp(c->pool.ptr + nd->seg, name + i, j - i) == 0) {
                found = ch;
                break;
            }
        }
        if (found == NONE) {
            rc = node_new(c, name + i, j - i, &found);
            if (rc < 0)
                return rc;
            if (c->a->nodes[cur].first_child == NONE)
                c->a->nodes[cur].first_child = found;
            else
                c->a->nodes[c->a->nodes[cur].last_child].next = found;
            c->a->nodes[cur].last_child = found;
        }
        if (j >= n) {
            if (c->a->nodes[found].rule == NONE)
                c->a->nodes[found].rule = rule;
            return 0;
        }
        cur = found;
        i = j + 1;
    }
}

/* Fills a rule's verb slots from httpVerb; names Dapr never looks up are warned about. */
static int read_verbs(struct cc *c, const res_node_t *verbs, const char *path, rule_t *r,
                      uint8_t action)
{
    for (size_t k = 0; verbs != NULL && k < res_node_count(verbs); k++) {
        const res_node_t *v = res_node_at(verbs, k);
        const char *s;
        size_t slot;
        if (res_node_kind(v) != RES_NODE_SCALAR)
            return fail(c, res_node_line(v), path, "httpVerb[%zu]: expected a string, found %s", k,
                        res_node_kind_name(v));
        s = res_node_scalar(v);
        for (slot = 0; slot < VERB_SLOTS; slot++) {
            if (strcmp(s, verb_names[slot]) == 0)
                break;
        }
        if (slot == VERB_SLOTS) {
            log_warn("acl",
                     "%s:%u: %s.httpVerb[%zu]: \"%.40s\" never matches a request (Dapr compares "
                     "verbs as written: use GET, POST, ... or *)",
                     c->file, res_node_line(v), path, k, s);
            continue;
        }
        r->verb_action[slot] = action;
    }
    return 0;
}

/* Compiles operations[k] of a policy into a rule and inserts it into the policy's trie. */
static int read_operation(struct cc *c, const res_node_t *op, const char *ppath, size_t k,
                          uint32_t root)
{
    char path[PATH_MAX_BYTES], name[ACL_MAX_OPERATION_BYTES + 2];
    const res_node_t *verbs = NULL;
    const char *s, *act;
    unsigned line, act_line;
    size_t n, len = 0, segs = 0;
    uint8_t action = ACT_UNSET;
    rule_t *r;
    int rc;

    snprintf(path, sizeof(path), "%.64s.operations[%zu]", ppath, k);
    if (res_node_kind(op) != RES_NODE_MAP)
        return fail(c, res_node_line(op), path, "expected a mapping, found %s",
                    res_node_kind_name(op));
    rc = opt_str(c, op, path, "name", &s, &line);
    if (rc == 0)
        rc = opt_str(c, op, path, "action", &act, &act_line);
    if (rc == 0)
        rc = opt_seq(c, op, path, "httpVerb", &verbs);
    if (rc < 0)
        return rc;
    if (s == NULL)
        return fail(c, line, path, "name: missing");
    n = strlen(s);
    if (n > ACL_MAX_OPERATION_BYTES)
        return fail(c, line, path, "name: longer than %d bytes", ACL_MAX_OPERATION_BYTES);
    rc = parse_action(c, act, act_line, path, "action", &action);
    if (rc < 0)
        return rc;
    /* Dapr's code treats an empty action as deny (its docs claim allow): we take the code. */
    if (action == ACT_UNSET)
        action = ACT_DENY;

    /* Dapr prefixes a missing '/' and lower-cases HTTP names before inserting. */
    if (n == 0 || s[0] != '/')
        name[len++] = '/';
    for (size_t i = 0; i < n; i++) {
        name[len++] = c->a->http ? lower(s[i]) : s[i];
        segs += s[i] == '/';
    }
    if (segs + (s[0] != '/') > ACL_MAX_OPERATION_SEGMENTS)
        return fail(c, line, path, "name: more than %d segments", ACL_MAX_OPERATION_SEGMENTS);

    rc = grow((void **)&c->a->rules, &c->a->cap_rules, c->a->nrules, sizeof(*c->a->rules));
    if (rc < 0)
        return rc;
    r = &c->a->rules[c->a->nrules];
    memset(r, 0, sizeof(*r));
    r->action = action;
    rc = pool_add(c, name, len, &r->name);
    if (rc == 0)
        rc = read_verbs(c, verbs, path, r, action);
    if (rc < 0)
        return rc;
    if (verbs == NULL && c->a->http)
        log_warn("acl",
                 "%s:%u: %s: no httpVerb: for an HTTP app this operation never changes the "
                 "decision (Dapr semantics); add httpVerb: ['*']",
                 c->file, line, path);
    return trie_put(c, root, name, len, (uint32_t)c->a->nrules++);
}

/* Adds policy @p i (a map) and its operations; missing appId/namespace/trustDomain fail. */
static int read_policy(struct cc *c, const res_node_t *pol, size_t i)
{
    char path[PATH_MAX_BYTES];
    const char *app_id, *ns, *td, *da;
    unsigned l_app, l_ns, l_td, l_da;
    const res_node_t *ops = NULL;
    acl_t *a = c->a;
    policy_t *p;
    uint32_t root;
    uint8_t dflt = ACT_UNSET;
    int rc;

    snprintf(path, sizeof(path), "spec.accessControl.policies[%zu]", i);
    if (res_node_kind(pol) != RES_NODE_MAP)
        return fail(c, res_node_line(pol), path, "expected a mapping, found %s",
                    res_node_kind_name(pol));
    rc = opt_str(c, pol, path, "appId", &app_id, &l_app);
    rc = rc ? rc : opt_str(c, pol, path, "namespace", &ns, &l_ns);
    rc = rc ? rc : opt_str(c, pol, path, "trustDomain", &td, &l_td);
    rc = rc ? rc : opt_str(c, pol, path, "defaultAction", &da, &l_da);
    rc = rc ? rc : opt_seq(c, pol, path, "operations", &ops);
    if (rc < 0)
        return rc;
    /* Dapr refuses the whole spec when any policy lacks one of these three. */
    if (app_id == NULL || app_id[0] == '\0')
        return fail(c, l_app, path,
                    "appId: missing (every policy needs appId, namespace and trustDomain)");
    if (ns == NULL || ns[0] == '\0')
        return fail(c, l_ns, path,
                    "namespace: missing for app \"%.64s\" (every policy needs appId, namespace "
                    "and trustDomain)",
                    app_id);
    if (td == NULL || td[0] == '\0')
        return fail(c, l_td, path,
                    "trustDomain: missing for app \"%.64s\" (every policy needs appId, "
                    "namespace and trustDomain)",
                    app_id);
    rc = parse_action(c, da, l_da, path, "defaultAction", &dflt);
    if (rc < 0)
        return rc;

    rc = node_new(c, "", 0, &root);
    rc = rc ? rc : grow((void **)&a->policies, &a->cap_policies, a->npolicies, sizeof(*p));
    if (rc < 0)
        return rc;
    p = &a->policies[a->npolicies];
    p->default_action = dflt;
    p->root = root;
    rc = pool_add(c, app_id, strlen(app_id), &p->app_id);
    rc = rc ? rc : pool_add(c, ns, strlen(ns), &p->ns);
    rc = rc ? rc : pool_add(c, td, strlen(td), &p->td);
    if (rc < 0)
        return rc;
    a->npolicies++;
    for (size_t k = 0; ops != NULL && k < res_node_count(ops); k++) {
        rc = read_operation(c, res_node_at(ops, k), path, k, root);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * Builds the appId+namespace index. Dapr stores policies in a map, so a later duplicate
 * replaces an earlier one; the index does the same and the replaced policy is never consulted.
 */
static int index_policies(struct cc *c)
{
    acl_t *a = c->a;
    const char *s = c->pool.ptr;
    size_t size = 8;

    while (size < a->npolicies * 2)
        size *= 2;
    a->table = mem_try_alloc(size * sizeof(*a->table));
    if (a->table == NULL)
        return ERR_NOMEM;
    memset(a->table, 0, size * sizeof(*a->table));
    a->table_mask = size - 1;
    for (size_t i = 0; i < a->npolicies; i++) {
        const policy_t *p = &a->policies[i];
        size_t h = (size_t)key_hash(s + p->app_id, s + p->ns) & a->table_mask;
        for (;; h = (h + 1) & a->table_mask) {
            const policy_t *q;
            if (a->table[h] == 0) {
                a->table[h] = (uint32_t)i + 1;
                break;
            }
            q = &a->policies[a->table[h] - 1];
            if (strcmp(s + q->app_id, s + p->app_id) == 0 && strcmp(s + q->ns, s + p->ns) == 0) {
                log_warn("acl",
                         "%s: spec.accessControl.policies[%zu]: replaces an earlier policy for "
                         "app \"%.64s\" in namespace \"%.64s\" (the last one wins, as in Dapr)",
                         c->file, i, s + p->app_id, s + p->ns);
                a->table[h] = (uint32_t)i + 1;
                break;
            }
        }
    }
    return 0;
}

/*
 * Reads spec.accessControl:
 * 1. absent, null, or with no trustDomain, no defaultAction and no policies: no ACL (Dapr's
 *    ParseAccessControlSpec returns nil);
 * 2. the global defaultAction (omitted: deny, see acl.h) and trustDomain (default "public");
 * 3. each policy in order, then the index.
 */
static int read_access_control(struct cc *c, const res_config_t *cfg)
{
    static const char *const path = "spec.accessControl";
    const res_node_t *ac = cfg->spec ? res_node_child(cfg->spec, "accessControl") : NULL;
    const res_node_t *pols = NULL;
    const char *td, *da;
    unsigned l_td, l_da;
    uint8_t dflt = ACT_UNSET;
    int rc;

    if (ac == NULL || res_node_is_null(ac))
        return 0;
    if (res_node_kind(ac) != RES_NODE_MAP)
        return fail(c, res_node_line(ac), path, "expected a mapping, found %s",
                    res_node_kind_name(ac));
    rc = opt_str(c, ac, path, "trustDomain", &td, &l_td);
    rc = rc ? rc : opt_str(c, ac, path, "defaultAction", &da, &l_da);
    rc = rc ? rc : opt_seq(c, ac, path, "policies", &pols);
    rc = rc ? rc : parse_action(c, da, l_da, path, "defaultAction", &dflt);
    if (rc < 0)
        return rc;
    if ((td == NULL || td[0] == '\0') && dflt == ACT_UNSET &&
        (pols == NULL || res_node_count(pols) == 0))
        return 0;
    c->a->enabled = true;
    if (dflt == ACT_UNSET) {
        log_warn("acl",
                 "%s:%u: %s.defaultAction is not set: denying calls no policy allows (write "
                 "defaultAction: allow to allow them)",
                 c->file, res_node_line(ac), path);
        dflt = ACT_DENY;
    }
    c->a->default_action = dflt;
    if (td != NULL && td[0] != '\0') {
        rc = pool_add(c, td, strlen(td), &c->a->trust_domain);
        if (rc < 0)
            return rc;
    }
    for (size_t i = 0; pols != NULL && i < res_node_count(pols); i++) {
        rc = read_policy(c, res_node_at(pols, i), i);
        if (rc < 0)
            return rc;
    }
    return index_policies(c);
}

int acl_compile(const res_config_t *cfg, acl_proto_t proto, acl_t **out, err_detail_t *d)
{
    struct cc c = {NULL, {0}, NULL, d};
    int rc;

    buf_init(&c.pool, STRINGS_MAX);
    if (cfg == NULL || out == NULL || (proto != ACL_PROTO_HTTP && proto != ACL_PROTO_GRPC)) {
        rc = err_set(d, ERR_INVAL, "acl_compile: invalid arguments");
        goto out;
    }
    c.file = short_name(cfg->file ? cfg->file : "config");
    c.a = mem_try_alloc(sizeof(*c.a));
    if (c.a == NULL) {
        rc = err_set(d, ERR_NOMEM, "%s: spec.accessControl: out of memory", c.file);
        goto out;
    }
    memset(c.a, 0, sizeof(*c.a));
    atomic_init(&c.a->refs, 1);
    c.a->http = proto == ACL_PROTO_HTTP;
    c.a->default_action = ACT_ALLOW;
    rc = pool_add(&c, "public", 6, &c.a->trust_domain);
    rc = rc ? rc : read_access_control(&c, cfg);
    if (rc == ERR_NOMEM || rc == ERR_TOO_LARGE)
        err_set(d, rc, "%s: spec.accessControl: %s", c.file,
                rc == ERR_NOMEM ? "out of memory" : "too large to compile");
    if (rc < 0)
        goto out;
    c.a->strings = buf_take(&c.pool);
    *out = c.a;
    c.a = NULL;
out:
    if (c.a != NULL) {
        c.a->strings = buf_take(&c.pool);
        acl_unref(c.a);
    }
    buf_free(&c.pool);
    return rc;
}

acl_t *acl_ref(acl_t *acl)
{
    if (acl != NULL)
        atomic_fetch_add_explicit(&acl->refs, 1, memory_order_relaxed);
    return acl;
}

void acl_unref(acl_t *acl)
{
    if (acl == NULL || atomic_fetch_sub_explicit(&acl->refs, 1, memory_order_acq_rel) != 1)
        return;
    mem_free(acl->strings);
    mem_free(acl->policies);
    mem_free(acl->table);
    mem_free(acl->nodes);
    mem_free(acl->rules);
    mem_free(acl);
}

bool acl_enabled(const acl_t *acl)
{
    return acl != NULL && acl->enabled;
}

const char *acl_trust_domain(const acl_t *acl)
{
    return acl != NULL ? acl->strings + acl->trust_domain : "public";
}

size_t acl_policy_count(const acl_t *acl)
{
    size_t n = 0;

    for (size_t i = 0; acl != NULL && acl->table != NULL && i <= acl->table_mask; i++)
        n += acl->table[i] != 0;
    return n;
}

/* ---- checking ------------------------------------------------------------------------------- */

/* [p, p+n) equals [s, s+m), folding s to lower case when @p fold (p is already folded). */
static bool seg_eq(const char *p, size_t n, const char *s, size_t m, bool fold)
{
    if (n != m)
        return false;
    if (!fold)
        return memcmp(p, s, n) == 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] != lower(s[i]))
            return false;
    }
    return true;
}

/*
 * Dapr's isMatch: '*' in pattern @p p matches any run of bytes (also none) of @p s; every other
 * byte matches itself. Greedy with one backtrack point, which is exact for '*'-only patterns
 * and needs no memory (Dapr's version allocates a table per call).
 */
static bool glob(const char *p, size_t n, const char *s, size_t m, bool fold)
{
    size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;

    while (si < m) {
        char ch = fold ? lower(s[si]) : s[si];
        if (pi < n && p[pi] == '*') {
            star = pi++;
            mark = si;
        } else if (pi < n && p[pi] == ch) {
            pi++;
            si++;
        } else if (star != SIZE_MAX) {
            pi = star + 1;
            si = ++mark;
        } else {
            return false;
        }
    }
    while (pi < n && p[pi] == '*')
        pi++;
    return pi == n;
}

/* Dapr's findNodeWithWildcard: the first child, in insertion order, that accepts @p seg. */
static uint32_t find_child(const acl_t *a, const node_t *nd, const char *seg, size_t len,
                           bool is_end)
{
    for (uint32_t ch = nd->first_child; ch != NONE; ch = a->nodes[ch].next) {
        const node_t *c = &a->nodes[ch];
        const char *cs = a->strings + c->seg;
        if (seg_eq(cs, c->seg_len, seg, len, a->http))
            return ch;
        if (c->kind == SEG_STAR) {
            if (is_end)
                return ch;
            continue;
        }
        if (c->kind == SEG_DSTAR)
            return ch;
        if (c->kind == SEG_GLOB && glob(cs, c->seg_len, seg, len, a->http))
            return ch;
    }
    return NONE;
}

/*
 * Dapr's Trie.Search over "/" + method, streaming: each step looks only at the current segment
 * and whether it is the last, so there is no segment array and no limit on segment count; the
 * walk ends at the latest when the trie has no deeper node.
 */
static const rule_t *trie_search(const acl_t *a, uint32_t root, const char *m, size_t len)
{
    uint32_t cur = root;
    size_t i = (len > 0 && m[0] == '/') ? 1 : 0;

    for (;;) {
        size_t j = i;
        bool end;
        const node_t *nd;
        while (j < len && m[j] != '/')
            j++;
        end = j >= len;
        cur = find_child(a, &a->nodes[cur], m + i, j - i, end);
        if (cur == NONE)
            return NULL;
        nd = &a->nodes[cur];
        if (nd->rule != NONE) {
            /* Only reachable for a literal "*" request segment: "/\*" never ends a prefix. */
            if (!end && nd->kind == SEG_STAR) {
                i = j + 1;
                continue;
            }
            return &a->rules[nd->rule];
        }
        if (end) {
            /* "/a/\*" and "/a/\**" also cover "/a" itself. */
            uint32_t w = find_child(a, nd, "*", 1, true);
            return (w != NONE && a->nodes[w].rule != NONE) ? &a->rules[a->nodes[w].rule] : NULL;
        }
        i = j + 1;
    }
}

static const policy_t *policy_find(const acl_t *a, const char *app_id, const char *ns)
{
    size_t h = (size_t)key_hash(app_id, ns) & a->table_mask;

    for (;; h = (h + 1) & a->table_mask) {
        const policy_t *p;
        if (a->table[h] == 0)
            return NULL;
        p = &a->policies[a->table[h] - 1];
        if (strcmp(a->strings + p->app_id, app_id) == 0 && strcmp(a->strings + p->ns, ns) == 0)
            return p;
    }
}

/* Applies a matched rule (Dapr: the operationPolicy != nil branch). */
static uint8_t apply_rule(const acl_t *a, const policy_t *p, const rule_t *r, int verb,
                          uint8_t action, acl_decision_t *dec)
{
    dec->operation = a->strings + r->name;
    if (!a->http) {
        dec->reason = ACL_REASON_RULE;
        return r->action;
    }
    if (verb < ACL_VERB_GET || verb > ACL_VERB_PATCH) {
        dec->reason = ACL_REASON_NO_VERB;
        return p->default_action;
    }
    if (r->verb_action[verb] != ACT_UNSET) {
        dec->reason = ACL_REASON_VERB;
        dec->verb = verb_names[verb];
        return r->verb_action[verb];
    }
    if (r->verb_action[0] != ACT_UNSET) {
        dec->reason = ACL_REASON_VERB_WILDCARD;
        dec->verb = verb_names[0];
        return r->verb_action[0];
    }
    dec->reason = ACL_REASON_VERB_UNLISTED;
    return action;
}

/* Dapr's isOperationAllowedByAccessControlPolicy, step for step. */
bool acl_check(const acl_t *acl, const spiffe_id_t *caller, const char *method, size_t len,
               int verb, acl_decision_t *out)
{
    acl_decision_t dec = {.allowed = true, .level = ACL_LEVEL_NONE, .reason = ACL_REASON_NO_ACL};
    const policy_t *p;
    const rule_t *r;
    uint8_t action;

    if (method == NULL)
        len = 0;
    if (!acl_enabled(acl))
        goto out;
    action = acl->default_action;
    dec.level = ACL_LEVEL_GLOBAL;
    dec.reason = ACL_REASON_NO_IDENTITY;
    if (caller == NULL)
        goto decide;
    dec.reason = ACL_REASON_NO_POLICY;
    p = policy_find(acl, caller->app_id, caller->ns);
    if (p == NULL)
        goto decide;
    dec.policy_app_id = acl->strings + p->app_id;
    dec.policy_namespace = acl->strings + p->ns;
    dec.reason = ACL_REASON_TRUST_DOMAIN;
    if (strcmp(acl->strings + p->td, caller->trust_domain) != 0)
        goto decide;
    if (p->default_action != ACT_UNSET) {
        action = p->default_action;
        dec.level = ACL_LEVEL_APP;
    }
    dec.reason = ACL_REASON_NO_RULE;
    r = trie_search(acl, p->root, method ? method : "", len);
    if (r != NULL)
        action = apply_rule(acl, p, r, verb, action, &dec);
decide:
    dec.allowed = action == ACT_ALLOW;
out:
    if (out != NULL)
        *out = dec;
    return dec.allowed;
}

bool acl_check_peer(const acl_t *acl, const char *uri, size_t uri_len, const char *method,
                    size_t len, int verb, spiffe_id_t *parsed, acl_decision_t *out)
{
    spiffe_id_t local;
    spiffe_id_t *id = parsed ? parsed : &local;

    if (uri == NULL)
        return acl_check(acl, NULL, method, len, verb, out);
    if (spiffe_id_parse(uri, uri_len, id) < 0) {
        /* Dapr fails the call before looking at any policy: "malformed SPIFFE ID". */
        if (out != NULL)
            *out = (acl_decision_t){
                .allowed = false, .level = ACL_LEVEL_NONE, .reason = ACL_REASON_BAD_IDENTITY};
        return false;
    }
    return acl_check(acl, id, method, len, verb, out);
}

int acl_deny_message(buf_t *out, const spiffe_id_t *caller, const char *method, size_t len,
                     int verb)
{
    int rc = buf_append_str(out, "access control policy has denied access to id: ");

    rc = rc ? rc : buf_append_str(out, caller ? caller->uri : "");
    rc = rc ? rc : buf_append_str(out, " operation: ");
    rc = rc ? rc : buf_append(out, method ? method : "", method ? len : 0);
    rc = rc ? rc : buf_append_str(out, " verb: ");
    return rc ? rc : buf_append_str(out, acl_verb_name(verb));
}

acl_verb_t acl_verb_from_method(const char *m, size_t n)
{
    if (m != NULL && str_ieq(m, n, "NONE"))
        return ACL_VERB_NONE;
    for (int v = ACL_VERB_GET; m != NULL && v <= ACL_VERB_PATCH; v++) {
        if (str_ieq(m, n, verb_names[v]))
            return (acl_verb_t)v;
    }
    return ACL_VERB_POST;
}

const char *acl_verb_name(int verb)
{
    return (verb >= ACL_VERB_GET && verb <= ACL_VERB_PATCH) ? verb_names[verb] : "NONE";
}

const char *acl_level_name(acl_level_t level)
{
    switch (level) {
    case ACL_LEVEL_GLOBAL:
        return "global";
    case ACL_LEVEL_APP:
        return "app";
    default:
        return "";
    }
}

const char *acl_reason_name(acl_reason_t r)
{
    static const char *const names[] = {
        "no_acl", "bad_identity",  "no_identity",   "no_policy", "trust_domain", "no_rule",
        "verb",   "verb_wildcard", "verb_unlisted", "no_verb",   "rule",
    };
    return (size_t)r < sizeof(names) / sizeof(names[0]) ? names[r] : "unknown";
}

int acl_snapshot_build(const res_config_t *cfg, void *ctx, void **data, err_detail_t *d)
{
    acl_t *acl = NULL;
    int rc;

    if (data == NULL)
        return err_set(d, ERR_INVAL, "acl_snapshot_build: invalid arguments");
    rc = acl_compile(cfg, ctx ? *(const acl_proto_t *)ctx : ACL_PROTO_HTTP, &acl, d);
    if (rc == 0)
        *data = acl;
    return rc;
}

void acl_snapshot_dispose(void *data)
{
    acl_unref(data);
}
