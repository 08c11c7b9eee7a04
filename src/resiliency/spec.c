/*
 * Compiling Resiliency resources (spec dapr.md §5.1–5.3) into an immutable resil_spec_t, and the
 * target lookup with Dapr's default and built-in policy names.
 *
 * Several resources (and files) make one set: every policy of every resource is read first, then
 * the targets, so a target may name a policy defined in another resource; a later definition of a
 * name replaces an earlier one.
 */
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/dur.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/str.h"
#include "resiliency/resiliency_int.h"

#define BUILTIN_SERVICE_RETRIES "DaprBuiltInServiceRetries"

typedef struct builder {
    resil_spec_t *s;   /* being built */
    const char *file;  /* label of the document being read */
    const char *rname; /* its metadata.name */
    err_detail_t *d;   /* where errors go */
    size_t total;      /* policies and targets so far (RESIL_MAX_POLICIES) */
} builder_t;

static int bad(builder_t *b, const res_node_t *n, const char *field, const char *why)
{
    return err_set(b->d, ERR_RES_INVALID, "%s:%u: %s: %s", b->file, n ? res_node_line(n) : 0, field,
                   why);
}

/* Reads a duration: a Go duration string, or a plain integer meaning milliseconds. */
static int get_duration(builder_t *b, const res_node_t *n, const char *field, uint64_t *ms)
{
    const char *v = n ? res_node_scalar(n) : NULL;
    size_t len;

    if (v == NULL || res_node_is_null(n))
        return bad(b, n, field, "must be a duration such as 5s or 500ms");
    len = strlen(v);
    if (len > 0 && strspn(v, "0123456789") == len) {
        if (str_u64(v, len, RESIL_MAX_DURATION_MS, ms) < 0)
            return bad(b, n, field, "duration too large");
        return 0;
    }
    if (dur_parse_ms(v, len, RESIL_MAX_DURATION_MS, ms) < 0)
        return bad(b, n, field, "must be a duration such as 5s or 500ms (at most 30 days)");
    return 0;
}

static int check_count(builder_t *b, const res_node_t *n)
{
    if (++b->total > RESIL_MAX_POLICIES)
        return err_set(b->d, ERR_TOO_LARGE, "%s:%u: more than %d policies and targets", b->file,
                       res_node_line(n), RESIL_MAX_POLICIES);
    return 0;
}

/* Parses "429,500-599" into a bit set over [lo, hi]. */
static int parse_codes(builder_t *b, const res_node_t *n, const char *field, int lo, int hi,
                       uint8_t *bits)
{
    const char *v = res_node_scalar(n);
    const char *p, *end;

    if (v == NULL)
        return bad(b, n, field, "must be a comma-separated list of codes or ranges");
    p = v;
    end = v + strlen(v);
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *item_end = comma ? comma : end;
        const char *dash;
        const char *s = p;
        size_t len = (size_t)(item_end - p);
        uint64_t a, z;

        str_trim(&s, &len);
        if (len == 0)
            return bad(b, n, field, "empty code in list");
        dash = memchr(s, '-', len);
        if (dash != NULL) {
            const char *s2 = dash + 1;
            size_t l1 = (size_t)(dash - s), l2 = len - l1 - 1;
            const char *s1 = s;
            str_trim(&s1, &l1);
            str_trim(&s2, &l2);
            if (str_u64(s1, l1, 100000, &a) < 0 || str_u64(s2, l2, 100000, &z) < 0)
                return bad(b, n, field, "malformed range");
        } else {
            if (str_u64(s, len, 100000, &a) < 0)
                return bad(b, n, field, "malformed code");
            z = a;
        }
        if (a > z || a < (uint64_t)lo || z > (uint64_t)hi)
            return bad(b, n, field,
                       lo == 0 ? "gRPC codes must be within 0-16" : "HTTP codes must be 100-599");
        for (uint64_t c = a; c <= z; c++)
            bits[c / 8] |= (uint8_t)(1u << (c % 8));
        p = comma ? comma + 1 : end;
    }
    return 0;
}

static resil_retry_t *find_retry(resil_spec_t *s, const char *name)
{
    for (size_t i = 0; i < s->retry_count; i++)
        if (strcmp(s->retries[i]->name, name) == 0)
            return s->retries[i];
    return NULL;
}

static resil_cb_policy_t *find_cb(resil_spec_t *s, const char *name)
{
    for (size_t i = 0; i < s->cb_count; i++)
        if (strcmp(s->cbs[i]->name, name) == 0)
            return s->cbs[i];
    return NULL;
}

static resil_timeout_t *find_timeout(resil_spec_t *s, const char *name)
{
    for (size_t i = 0; i < s->timeout_count; i++)
        if (strcmp(s->timeouts[i].name, name) == 0)
            return &s->timeouts[i];
    return NULL;
}

static void retry_free(resil_retry_t *r)
{
    if (r == NULL)
        return;
    mem_free((void *)r->name);
    mem_free((void *)r->resource);
    mem_free(r);
}

static void cb_free(resil_cb_policy_t *c)
{
    if (c == NULL)
        return;
    mem_free((void *)c->name);
    mem_free((void *)c->resource);
    mem_free((void *)c->trip_src);
    resil_expr_free(c->trip);
    mem_free(c);
}

static int parse_retry(builder_t *b, const char *name, const res_node_t *n)
{
    resil_retry_t *r, *old;
    const res_node_t *f;
    char field[300];
    int rc = 0;

    if (res_node_kind(n) != RES_NODE_MAP)
        return bad(b, n, "spec.policies.retries", "each retry policy must be a mapping");
    r = mem_calloc(sizeof(*r));
    r->duration_ms = 5000;
    r->max_interval_ms = 60000;
    r->max_retries = -1;
    r->http_any = true;
    snprintf(field, sizeof(field), "spec.policies.retries.%s.policy", name);
    if ((f = res_node_child(n, "policy")) != NULL && !res_node_is_null(f)) {
        const char *v = res_node_scalar(f);
        if (v != NULL && strcasecmp(v, "exponential") == 0)
            r->exponential = true;
        else if (v == NULL || strcasecmp(v, "constant") != 0)
            rc = bad(b, f, field, "must be constant or exponential");
    }
    if (rc == 0 && (f = res_node_child(n, "duration")) != NULL && !res_node_is_null(f)) {
        snprintf(field, sizeof(field), "spec.policies.retries.%s.duration", name);
        rc = get_duration(b, f, field, &r->duration_ms);
    }
    if (rc == 0 && (f = res_node_child(n, "maxInterval")) != NULL && !res_node_is_null(f)) {
        snprintf(field, sizeof(field), "spec.policies.retries.%s.maxInterval", name);
        rc = get_duration(b, f, field, &r->max_interval_ms);
    }
    if (rc == 0 && (f = res_node_child(n, "maxRetries")) != NULL && !res_node_is_null(f)) {
        const char *v = res_node_scalar(f);
        uint64_t m;
        snprintf(field, sizeof(field), "spec.policies.retries.%s.maxRetries", name);
        if (v != NULL && strcmp(v, "-1") == 0)
            r->max_retries = -1;
        else if (v != NULL && str_u64(v, strlen(v), 1000000, &m) == 0)
            r->max_retries = (int64_t)m;
        else
            rc = bad(b, f, field, "must be -1 (forever) or a count up to 1000000");
    }
    if (rc == 0 && (f = res_node_child(n, "matching")) != NULL && !res_node_is_null(f)) {
        const res_node_t *h = res_node_child(f, "httpStatusCodes");
        const res_node_t *g = res_node_child(f, "gRPCStatusCodes");
        uint8_t grpc[3] = {0};
        if (h != NULL && !res_node_is_null(h)) {
            snprintf(field, sizeof(field), "spec.policies.retries.%s.matching.httpStatusCodes",
                     name);
            r->http_any = false;
            rc = parse_codes(b, h, field, 100, 599, r->http_codes);
        }
        if (rc == 0 && g != NULL && !res_node_is_null(g)) {
            snprintf(field, sizeof(field), "spec.policies.retries.%s.matching.gRPCStatusCodes",
                     name);
            rc = parse_codes(b, g, field, 0, 16, grpc);
        }
    }
    if (rc == 0 && (f = res_node_child(n, "retryToolCalls")) != NULL && !res_node_is_null(f)) {
        const char *v = res_node_scalar(f);
        snprintf(field, sizeof(field), "spec.policies.retries.%s.retryToolCalls", name);
        if (v != NULL && strcmp(v, "true") == 0)
            r->retry_tool_calls = true;
        else if (v == NULL || strcmp(v, "false") != 0)
            rc = bad(b, f, field, "must be true or false");
    }
    if (rc < 0) {
        mem_free(r);
        return rc;
    }
    r->name = mem_strdup(name);
    r->resource = mem_strdup(b->rname);
    old = find_retry(b->s, name);
    if (old != NULL) {
        /* A later definition replaces an earlier one; targets are bound after all policies. */
        mem_free((void *)old->name);
        mem_free((void *)old->resource);
        *old = *r;
        mem_free(r);
        return 0;
    }
    b->s->retries = mem_realloc(b->s->retries, sizeof(*b->s->retries) * (b->s->retry_count + 1));
    b->s->retries[b->s->retry_count++] = r;
    return 0;
}

static int parse_cb(builder_t *b, const char *name, const res_node_t *n)
{
    resil_cb_policy_t *c, *old;
    const res_node_t *f;
    const char *trip = "consecutiveFailures > 5";
    char field[300];
    err_detail_t ed = {{0}};
    int rc = 0;

    if (res_node_kind(n) != RES_NODE_MAP)
        return bad(b, n, "spec.policies.circuitBreakers", "each circuit breaker must be a mapping");
    c = mem_calloc(sizeof(*c));
    c->max_requests = 1;
    c->timeout_ms = 60000;
    if ((f = res_node_child(n, "maxRequests")) != NULL && !res_node_is_null(f)) {
        const char *v = res_node_scalar(f);
        uint64_t m;
        snprintf(field, sizeof(field), "spec.policies.circuitBreakers.%s.maxRequests", name);
        if (v == NULL || str_u64(v, strlen(v), 1000000, &m) < 0)
            rc = bad(b, f, field, "must be a count up to 1000000");
        else
            c->max_requests = m == 0 ? 1 : (uint32_t)m; /* gobreaker: 0 means 1 */
    }
    if (rc == 0 && (f = res_node_child(n, "interval")) != NULL && !res_node_is_null(f)) {
        snprintf(field, sizeof(field), "spec.policies.circuitBreakers.%s.interval", name);
        rc = get_duration(b, f, field, &c->interval_ms);
    }
    if (rc == 0 && (f = res_node_child(n, "timeout")) != NULL && !res_node_is_null(f)) {
        snprintf(field, sizeof(field), "spec.policies.circuitBreakers.%s.timeout", name);
        rc = get_duration(b, f, field, &c->timeout_ms);
        if (rc == 0 && c->timeout_ms == 0)
            c->timeout_ms = 60000; /* gobreaker: 0 means the default */
    }
    if (rc == 0 && (f = res_node_child(n, "trip")) != NULL && !res_node_is_null(f)) {
        trip = res_node_scalar(f);
        if (trip == NULL) {
            snprintf(field, sizeof(field), "spec.policies.circuitBreakers.%s.trip", name);
            rc = bad(b, f, field, "must be an expression such as consecutiveFailures > 5");
        }
    }
    if (rc == 0 && resil_expr_compile(trip, strlen(trip), &c->trip, &ed) < 0) {
        snprintf(field, sizeof(field), "spec.policies.circuitBreakers.%s.trip", name);
        rc = bad(b, f ? f : n, field, ed.msg);
    }
    if (rc < 0) {
        cb_free(c);
        return rc;
    }
    c->name = mem_strdup(name);
    c->resource = mem_strdup(b->rname);
    c->trip_src = mem_strdup(trip);
    old = find_cb(b->s, name);
    if (old != NULL) {
        resil_cb_policy_t tmp = *old;
        *old = *c;
        *c = tmp;
        cb_free(c);
        return 0;
    }
    b->s->cbs = mem_realloc(b->s->cbs, sizeof(*b->s->cbs) * (b->s->cb_count + 1));
    b->s->cbs[b->s->cb_count++] = c;
    return 0;
}

static int parse_timeout(builder_t *b, const char *name, const res_node_t *n)
{
    resil_timeout_t *t;
    char field[300];
    uint64_t ms;
    int rc;

    snprintf(field, sizeof(field), "spec.policies.timeouts.%s", name);
    rc = get_duration(b, n, field, &ms);
    if (rc < 0)
        return rc;
    t = find_timeout(b->s, name);
    if (t == NULL) {
        b->s->timeouts =
            mem_realloc(b->s->timeouts, sizeof(*b->s->timeouts) * (b->s->timeout_count + 1));
        t = &b->s->timeouts[b->s->timeout_count++];
        t->name = mem_strdup(name);
    } else {
        mem_free(t->resource);
    }
    t->resource = mem_strdup(b->rname);
    t->ms = ms;
    return 0;
}

/* Calls @p fn for each entry of the map at @p path under @p spec. */
static int each(builder_t *b, const res_node_t *spec, const char *path,
                int (*fn)(builder_t *, const char *, const res_node_t *))
{
    const res_node_t *m = res_node_get(spec, path);
    int rc = 0;

    if (m == NULL || res_node_is_null(m))
        return 0;
    if (res_node_kind(m) != RES_NODE_MAP) {
        char field[100];
        snprintf(field, sizeof(field), "spec.%s", path);
        return bad(b, m, field, "must be a mapping");
    }
    for (size_t i = 0; i < res_node_count(m) && rc == 0; i++) {
        rc = check_count(b, res_node_at(m, i));
        rc = rc ? rc : fn(b, res_node_key_at(m, i), res_node_at(m, i));
    }
    return rc;
}

static int parse_target(builder_t *b, const char *name, const res_node_t *n)
{
    resil_target_t *t = NULL;
    resil_policy_t pol = {0};
    const char *v;
    char field[600];

    if (res_node_kind(n) != RES_NODE_MAP)
        return bad(b, n, "spec.targets.apps", "each target must be a mapping");
    pol.explicit_target = true;
    pol.cb_cache_size = RESIL_DEFAULT_CB_CACHE;
    if ((v = res_node_get_str(n, "timeout")) != NULL) {
        const resil_timeout_t *to = find_timeout(b->s, v);
        if (to == NULL) {
            snprintf(field, sizeof(field), "spec.targets.apps.%s.timeout", name);
            return bad(b, res_node_child(n, "timeout"), field, "no timeout policy by that name");
        }
        pol.timeout_ms = to->ms;
        pol.timeout_resource = to->resource;
    }
    if ((v = res_node_get_str(n, "retry")) != NULL) {
        pol.retry = find_retry(b->s, v);
        if (pol.retry == NULL && strcmp(v, BUILTIN_SERVICE_RETRIES) == 0)
            pol.retry = &b->s->builtin;
        if (pol.retry == NULL) {
            snprintf(field, sizeof(field), "spec.targets.apps.%s.retry", name);
            return bad(b, res_node_child(n, "retry"), field, "no retry policy by that name");
        }
    }
    if ((v = res_node_get_str(n, "circuitBreaker")) != NULL) {
        pol.cb = find_cb(b->s, v);
        if (pol.cb == NULL) {
            snprintf(field, sizeof(field), "spec.targets.apps.%s.circuitBreaker", name);
            return bad(b, res_node_child(n, "circuitBreaker"), field,
                       "no circuit breaker policy by that name");
        }
    }
    if ((v = res_node_get_str(n, "circuitBreakerCacheSize")) != NULL) {
        uint64_t m;
        if (str_u64(v, strlen(v), RESIL_BREAKERS_MAX, &m) < 0) {
            snprintf(field, sizeof(field), "spec.targets.apps.%s.circuitBreakerCacheSize", name);
            return bad(b, res_node_child(n, "circuitBreakerCacheSize"), field,
                       "must be a count up to 1024");
        }
        pol.cb_cache_size = (uint32_t)m;
    }
    for (size_t i = 0; i < b->s->target_count; i++)
        if (strcmp(b->s->targets[i].name, name) == 0)
            t = &b->s->targets[i];
    if (t == NULL) {
        b->s->targets =
            mem_realloc(b->s->targets, sizeof(*b->s->targets) * (b->s->target_count + 1));
        t = &b->s->targets[b->s->target_count++];
        t->name = mem_strdup(name);
    }
    t->policy = pol;
    return 0;
}

/* True when the document is a Resiliency resource in force for @p app_id. Fills b->rname. */
static int is_ours(builder_t *b, const res_node_t *doc, const char *app_id, bool *ours)
{
    const char *kind = res_node_get_str(doc, "kind");
    const res_node_t *scopes;

    *ours = false;
    if (kind == NULL || strcmp(kind, "Resiliency") != 0)
        return 0;
    b->rname = res_node_get_str(doc, "metadata.name");
    if (b->rname == NULL)
        b->rname = "";
    scopes = res_node_child(doc, "scopes");
    if (scopes != NULL && !res_node_is_null(scopes)) {
        if (res_node_kind(scopes) != RES_NODE_SEQ)
            return bad(b, scopes, "scopes", "must be a list of app ids");
        if (res_node_count(scopes) > 0) {
            bool found = false;
            for (size_t i = 0; i < res_node_count(scopes); i++) {
                const char *sc = res_node_scalar(res_node_at(scopes, i));
                if (sc != NULL && app_id != NULL && strcmp(sc, app_id) == 0)
                    found = true;
            }
            if (!found)
                return 0;
        }
    }
    {
        const res_node_t *spec = res_node_child(doc, "spec");
        if (spec == NULL || res_node_kind(spec) != RES_NODE_MAP)
            return bad(b, doc, "spec", "a Resiliency resource needs a spec mapping");
    }
    *ours = true;
    return 0;
}

static resil_spec_t *spec_new(void)
{
    resil_spec_t *s = mem_calloc(sizeof(*s));
    atomic_init(&s->refs, 1);
    atomic_init(&s->full_logged, false);
    s->builtin.name = BUILTIN_SERVICE_RETRIES;
    s->builtin.resource = "";
    s->builtin.duration_ms = RESIL_BUILTIN_PAUSE_MS;
    s->builtin.max_interval_ms = 60000;
    s->builtin.max_retries = RESIL_BUILTIN_RETRIES;
    s->builtin.http_any = true;
    return s;
}

static void spec_free(resil_spec_t *s)
{
    resil__breakers_free(s);
    for (size_t i = 0; i < s->resource_count; i++)
        mem_free(s->resources[i]);
    mem_free(s->resources);
    for (size_t i = 0; i < s->timeout_count; i++) {
        mem_free(s->timeouts[i].name);
        mem_free(s->timeouts[i].resource);
    }
    mem_free(s->timeouts);
    for (size_t i = 0; i < s->retry_count; i++)
        retry_free(s->retries[i]);
    mem_free(s->retries);
    for (size_t i = 0; i < s->cb_count; i++)
        cb_free(s->cbs[i]);
    mem_free(s->cbs);
    for (size_t i = 0; i < s->target_count; i++)
        mem_free(s->targets[i].name);
    mem_free(s->targets);
    mem_free(s);
}

/*
 * Compiles the Resiliency documents among @p n parsed streams: 1. policies of every resource,
 * 2. DaprBuiltInServiceRetries as redefined, 3. targets, 4. the breaker table if any breaker
 * exists.
 */
static int build(res_yaml_t *const *ys, const char *const *names, size_t n, const char *app_id,
                 resil_spec_t **out, err_detail_t *d)
{
    builder_t b = {spec_new(), NULL, NULL, d, 0};
    const resil_retry_t *redefined;
    int rc = 0;

    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t f = 0; f < n && rc == 0; f++) {
            for (size_t i = 0; i < res_yaml_doc_count(ys[f]) && rc == 0; i++) {
                const res_node_t *doc = res_yaml_doc(ys[f], i);
                const res_node_t *spec;
                bool ours;
                b.file = names[f];
                if (doc == NULL || res_node_kind(doc) != RES_NODE_MAP)
                    continue;
                rc = is_ours(&b, doc, app_id, &ours);
                if (rc < 0 || !ours)
                    continue;
                spec = res_node_child(doc, "spec");
                if (pass == 0) {
                    rc = each(&b, spec, "policies.timeouts", parse_timeout);
                    rc = rc ? rc : each(&b, spec, "policies.retries", parse_retry);
                    rc = rc ? rc : each(&b, spec, "policies.circuitBreakers", parse_cb);
                    if (rc == 0) {
                        b.s->resources = mem_realloc(b.s->resources, sizeof(*b.s->resources) *
                                                                         (b.s->resource_count + 1));
                        b.s->resources[b.s->resource_count++] = mem_strdup(b.rname);
                    }
                } else {
                    rc = each(&b, spec, "targets.apps", parse_target);
                }
            }
        }
        if (pass == 0 && rc == 0 && (redefined = find_retry(b.s, BUILTIN_SERVICE_RETRIES))) {
            /* Overridable by name; Dapr resets fewer than 3 retries to 3 (spec §5.3). */
            b.s->builtin = *redefined;
            if (b.s->builtin.max_retries >= 0 && b.s->builtin.max_retries < RESIL_BUILTIN_RETRIES)
                b.s->builtin.max_retries = RESIL_BUILTIN_RETRIES;
        }
    }
    if (rc == 0 && b.s->cb_count > 0)
        b.s->breakers = mem_calloc(sizeof(*b.s->breakers) * RESIL_BREAKERS_MAX);
    if (rc < 0) {
        spec_free(b.s);
        return rc;
    }
    *out = b.s;
    return 0;
}

int resil_spec_parse(const char *name, const char *data, size_t len, const char *app_id,
                     resil_spec_t **out, err_detail_t *d)
{
    res_yaml_t *y = NULL;
    int rc;

    if (data == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "resil_spec_parse: invalid arguments");
    if (name == NULL)
        name = "(resiliency)";
    rc = res_yaml_parse(NULL, name, data, len, &y, d);
    if (rc == 0)
        rc = build(&y, &name, 1, app_id, out, d);
    res_yaml_free(y);
    return rc;
}

int resil_spec_load(const char *const *dirs, size_t ndirs, const char *app_id, resil_spec_t **out,
                    uint64_t *hash, err_detail_t *d)
{
    res_files_t files = {0};
    res_yaml_t *ys[RESIL_MAX_FILES] = {0};
    const char *ynames[RESIL_MAX_FILES] = {0};
    size_t nys = 0;
    uint64_t h = 1469598103934665603ull;
    buf_t bytes;
    int rc = 0;

    buf_init(&bytes, RES_MAX_FILE_BYTES);
    for (size_t i = 0; i < ndirs && rc == 0; i++) {
        rc = res_dir_files(dirs[i], RESIL_MAX_FILES, &files, d);
        if (rc == ERR_NOT_FOUND || rc == ERR_IO)
            rc = 0; /* a missing directory holds no resources (Dapr logs and goes on) */
    }
    for (size_t i = 0; i < files.n && rc == 0; i++) {
        buf_reset(&bytes);
        rc = fs_read_file(files.paths[i], NULL, &bytes, d);
        if (rc < 0)
            break;
        for (size_t k = 0; k < bytes.len; k++)
            h = (h ^ (unsigned char)bytes.ptr[k]) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull; /* file separator */
        /* Only files that mention the kind are parsed: other resources are not ours to judge. */
        if (bytes.len == 0 || memmem(bytes.ptr, bytes.len, "Resiliency", 10) == NULL)
            continue;
        rc = res_yaml_parse(NULL, files.paths[i], buf_ptr(&bytes), bytes.len, &ys[nys], d);
        if (rc < 0)
            break;
        ynames[nys++] = files.paths[i];
    }
    if (rc == 0)
        rc = build(ys, ynames, nys, app_id, out, d);
    if (rc == 0 && hash != NULL)
        *hash = h;
    for (size_t i = 0; i < nys; i++)
        res_yaml_free(ys[i]);
    res_files_free(&files);
    buf_free(&bytes);
    return rc;
}

resil_spec_t *resil_spec_ref(resil_spec_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void resil_spec_unref(resil_spec_t *s)
{
    if (s != NULL && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        spec_free(s);
}

size_t resil_spec_resource_count(const resil_spec_t *s)
{
    return s ? s->resource_count : 0;
}

const char *resil_spec_resource_name(const resil_spec_t *s, size_t i)
{
    return s && i < s->resource_count ? s->resources[i] : NULL;
}

const resil_retry_t *resil_spec_builtin_retry(const resil_spec_t *s)
{
    static const resil_retry_t builtin = {
        .name = BUILTIN_SERVICE_RETRIES,
        .resource = "",
        .duration_ms = RESIL_BUILTIN_PAUSE_MS,
        .max_interval_ms = 60000,
        .max_retries = RESIL_BUILTIN_RETRIES,
        .http_any = true,
    };
    return s ? &s->builtin : &builtin;
}

bool resil_spec_lookup(const resil_spec_t *s, const char *target, resil_policy_t *out)
{
    const resil_timeout_t *to;

    *out = (resil_policy_t){0};
    out->cb_cache_size = RESIL_DEFAULT_CB_CACHE;
    if (s == NULL)
        return false;
    for (size_t i = 0; i < s->target_count; i++) {
        if (strcmp(s->targets[i].name, target) == 0) {
            *out = s->targets[i].policy;
            return true;
        }
    }
    /* Spec §5.2: the app-level default name first, then the general one. */
    to = find_timeout((resil_spec_t *)s, "DefaultAppTimeoutPolicy");
    to = to ? to : find_timeout((resil_spec_t *)s, "DefaultTimeoutPolicy");
    if (to != NULL) {
        out->timeout_ms = to->ms;
        out->timeout_resource = to->resource;
    }
    out->retry = find_retry((resil_spec_t *)s, "DefaultAppRetryPolicy");
    if (out->retry == NULL)
        out->retry = find_retry((resil_spec_t *)s, "DefaultRetryPolicy");
    out->cb = find_cb((resil_spec_t *)s, "DefaultAppCircuitBreakerPolicy");
    if (out->cb == NULL)
        out->cb = find_cb((resil_spec_t *)s, "DefaultCircuitBreakerPolicy");
    return out->timeout_ms > 0 || out->retry != NULL || out->cb != NULL;
}

bool resil_retry_matches_status(const resil_retry_t *r, int status)
{
    if (status >= 200 && status <= 399)
        return false;
    if (r->http_any)
        return true;
    return status >= 0 && status < 600 && (r->http_codes[status / 8] & (1u << (status % 8)));
}

uint64_t resil_retry_pause_ms(const resil_retry_t *r, unsigned n, double rnd)
{
    double iv = RESIL_EXP_INITIAL_MS, delta;

    if (!r->exponential)
        return r->duration_ms;
    /* cenkalti/backoff: initial 500 ms, ×1.5 per retry, ±50%, capped at maxInterval. */
    for (unsigned i = 1; i < n && iv < (double)r->max_interval_ms; i++)
        iv *= 1.5;
    if (iv > (double)r->max_interval_ms)
        iv = (double)r->max_interval_ms;
    delta = 0.5 * iv;
    iv = iv - delta + rnd * (2 * delta + 1);
    return iv < 0 ? 0 : (uint64_t)iv;
}
