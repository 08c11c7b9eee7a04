/*
 * Loading Components and HTTPEndpoints from the resources directories:
 * 1. list each directory's *.yaml / *.yml files, in name order;
 * 2. parse each file (several documents allowed) and keep the documents of our two kinds that
 *    are in scope for this app and namespace, with their items as written (value, envRef, or a
 *    pending secretKeyRef);
 * 3. build the secret stores among the Components;
 * 4. resolve every pending secretKeyRef through its resource's auth.secretStore.
 */
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/str.h"
#include "resources/component.h"
#include "resources/resources_int.h"

#define API_VERSION "dapr.io/v1alpha1"

/* A secretKeyRef waiting for the stores: where to write the value and where it was written. */
typedef struct pending {
    char **slot;      /* the value to fill; points into a component or endpoint */
    char *store;      /* auth.secretStore of the resource; owned; NULL when unset */
    char *name, *key; /* secretKeyRef; owned */
    char *file;       /* display name; owned */
    unsigned line;    /* line of the secretKeyRef */
    char *field;      /* "spec.metadata.2" etc.; owned */
    size_t owner;     /* index of the owning component, or SIZE_MAX for an endpoint */
} pending_t;

struct res_components {
    res_component_t **comps; /* owned, ncomps of them; separate blocks, so that pending
                                secretKeyRefs may point into them while the array grows */
    size_t ncomps, capcomps;
    res_endpoint_t **eps; /* owned, neps of them; separate blocks likewise */
    size_t neps, capeps;
    secrets_store_t **stores; /* owned, nstores of them */
    size_t nstores;
};

/* Loader state. */
struct ctx {
    res_components_t *cs;
    const char *app_id, *ns;
    const char *file; /* display name of the file being read */
    pending_t *pend;  /* owned */
    size_t npend, cappend;
    err_detail_t *d;
};

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        mem_free(s);
    }
}

static void free_meta(res_meta_t *m, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mem_free(m[i].name);
        wipe_free(m[i].value);
    }
    mem_free(m);
}

void res_components_free(res_components_t *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < cs->ncomps; i++) {
        res_component_t *c = cs->comps[i];
        mem_free(c->name);
        mem_free(c->ns);
        mem_free(c->type);
        mem_free(c->version);
        mem_free(c->file);
        free_meta(c->meta, c->nmeta);
        mem_free(c);
    }
    for (size_t i = 0; i < cs->neps; i++) {
        res_endpoint_t *e = cs->eps[i];
        mem_free(e->name);
        mem_free(e->ns);
        mem_free(e->base_url);
        mem_free(e->file);
        free_meta(e->headers, e->nheaders);
        wipe_free(e->root_ca);
        wipe_free(e->certificate);
        wipe_free(e->private_key);
        mem_free(e);
    }
    for (size_t i = 0; i < cs->nstores; i++)
        secrets_store_free(cs->stores[i]);
    mem_free(cs->stores);
    mem_free(cs->comps);
    mem_free(cs->eps);
    mem_free(cs);
}

size_t res_components_count(const res_components_t *cs)
{
    return cs ? cs->ncomps : 0;
}

const res_component_t *res_components_at(const res_components_t *cs, size_t i)
{
    return cs && i < cs->ncomps ? cs->comps[i] : NULL;
}

const res_component_t *res_components_find(const res_components_t *cs, const char *name)
{
    for (size_t i = 0; cs && name && i < cs->ncomps; i++) {
        if (strcmp(cs->comps[i]->name, name) == 0)
            return cs->comps[i];
    }
    return NULL;
}

const char *res_component_meta(const res_component_t *c, const char *key)
{
    for (size_t i = 0; c && key && i < c->nmeta; i++) {
        if (str_ieq(c->meta[i].name, strlen(c->meta[i].name), key))
            return c->meta[i].value;
    }
    return NULL;
}

size_t res_components_endpoint_count(const res_components_t *cs)
{
    return cs ? cs->neps : 0;
}

const res_endpoint_t *res_components_endpoint_at(const res_components_t *cs, size_t i)
{
    return cs && i < cs->neps ? cs->eps[i] : NULL;
}

const res_endpoint_t *res_components_endpoint(const res_components_t *cs, const char *name)
{
    for (size_t i = 0; cs && name && i < cs->neps; i++) {
        if (strcmp(cs->eps[i]->name, name) == 0)
            return cs->eps[i];
    }
    return NULL;
}

const secrets_store_t *res_components_secret_store(const res_components_t *cs, const char *name)
{
    for (size_t i = 0; cs && name && i < cs->nstores; i++) {
        if (strcmp(secrets_store_name(cs->stores[i]), name) == 0)
            return cs->stores[i];
    }
    return NULL;
}

size_t res_components_secret_store_count(const res_components_t *cs)
{
    return cs ? cs->nstores : 0;
}

/* --- reading documents ------------------------------------------------------------------------ */

/* Optional scalar @p field of map @p m; *out NULL when absent or null. */
static int opt_str(struct ctx *c, const res_node_t *m, const char *path, const char *field,
                   const char **out)
{
    const res_node_t *v = m ? res_node_child(m, field) : NULL;

    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != RES_NODE_SCALAR)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(v),
                         "%s%s%s: expected a string, found %s", path, *path ? "." : "", field,
                         res_node_kind_name(v));
    *out = res_node_scalar(v);
    return 0;
}

/* Optional node @p field of map @p m of @p kind; *out NULL when absent or null. */
static int opt_kind(struct ctx *c, const res_node_t *m, const char *path, const char *field,
                    res_node_kind_t kind, const res_node_t **out)
{
    const res_node_t *v = m ? res_node_child(m, field) : NULL;

    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != kind)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(v),
                         "%s%s%s: expected %s, found %s", path, *path ? "." : "", field,
                         kind == RES_NODE_MAP ? "a mapping" : "a sequence", res_node_kind_name(v));
    *out = v;
    return 0;
}

/* True when the resource's scopes let this app load it (no scopes: everyone). */
static int in_scope(struct ctx *c, const res_node_t *root, bool *yes)
{
    const res_node_t *scopes;
    int rc = opt_kind(c, root, "", "scopes", RES_NODE_SEQ, &scopes);

    *yes = true;
    if (rc < 0 || scopes == NULL || res_node_count(scopes) == 0)
        return rc;
    *yes = false;
    for (size_t i = 0; i < res_node_count(scopes); i++) {
        const char *s = res_node_scalar(res_node_at(scopes, i));
        if (s == NULL)
            return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(res_node_at(scopes, i)),
                             "scopes.%zu: expected a string", i);
        if (strcmp(s, c->app_id) == 0)
            *yes = true;
    }
    return 0;
}

static int add_pending(struct ctx *c, char **slot, const char *store, const char *name,
                       const char *key, unsigned line, const char *field, size_t owner)
{
    pending_t *p;

    if (c->npend == c->cappend) {
        c->cappend = c->cappend ? c->cappend * 2 : 16;
        c->pend = mem_realloc(c->pend, c->cappend * sizeof(*c->pend));
    }
    p = &c->pend[c->npend++];
    *p = (pending_t){slot,
                     store ? mem_strdup(store) : NULL,
                     mem_strdup(name),
                     mem_strdup(key ? key : ""),
                     mem_strdup(c->file),
                     line,
                     mem_strdup(field),
                     owner};
    return 0;
}

/* Appends a random RFC 4122 version 4 UUID to @p b. */
static int append_uuid(buf_t *b)
{
    unsigned char u[16];
    char s[37];
    static const char hex[] = "0123456789abcdef";
    size_t j = 0;

    if (RAND_bytes(u, sizeof(u)) != 1)
        return ERR_IO;
    u[6] = (unsigned char)((u[6] & 0x0f) | 0x40);
    u[8] = (unsigned char)((u[8] & 0x3f) | 0x80);
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            s[j++] = '-';
        s[j++] = hex[u[i] >> 4];
        s[j++] = hex[u[i] & 15];
    }
    s[j] = '\0';
    return buf_append(b, s, j);
}

/*
 * Dapr's value templating in Component metadata (pkg/runtime/meta): {uuid} (a fresh one per
 * occurrence), {podName} ($POD_NAME, "" outside Kubernetes), {namespace} ("<namespace>.<app id>")
 * and {appID}. Applied to literal values only, never to resolved secrets.
 */
static char *expand_template(const struct ctx *c, const char *v)
{
    const char *pod = getenv("POD_NAME");
    buf_t b;
    int rc = 0;

    if (strchr(v, '{') == NULL)
        return mem_strdup(v);
    buf_init(&b, RES_MAX_FILE_BYTES);
    while (rc == 0 && *v) {
        if (strncmp(v, "{uuid}", 6) == 0) {
            rc = append_uuid(&b);
            v += 6;
        } else if (strncmp(v, "{podName}", 9) == 0) {
            rc = buf_append_str(&b, pod ? pod : "");
            v += 9;
        } else if (strncmp(v, "{namespace}", 11) == 0) {
            rc = buf_append_str(&b, c->ns);
            rc = rc ? rc : buf_append(&b, ".", 1);
            rc = rc ? rc : buf_append_str(&b, c->app_id);
            v += 11;
        } else if (strncmp(v, "{appID}", 7) == 0) {
            rc = buf_append_str(&b, c->app_id);
            v += 7;
        } else {
            rc = buf_append(&b, v, 1);
            v++;
        }
    }
    if (rc < 0 || b.ptr == NULL) {
        buf_free(&b);
        return mem_strdup("");
    }
    return buf_take(&b);
}

/* True when plain scalar @p t reads as a JSON number, boolean or null in YAML 1.2's core schema. */
static bool json_literal(const char *t)
{
    const char *p = t;

    if (strcmp(t, "true") == 0 || strcmp(t, "false") == 0 || strcmp(t, "null") == 0)
        return true;
    if (*p == '-')
        p++;
    if (*p < '0' || *p > '9' || (*p == '0' && p[1] >= '0' && p[1] <= '9'))
        return false;
    while (*p >= '0' && *p <= '9')
        p++;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (*p < '0' || *p > '9')
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Appends @p n as JSON: what Dapr's DynamicValue holds for a mapping or sequence `value`. */
static int append_json(buf_t *b, const res_node_t *n)
{
    size_t count = res_node_count(n);
    int rc = 0;

    switch (res_node_kind(n)) {
    case RES_NODE_MAP:
        rc = buf_append(b, "{", 1);
        for (size_t i = 0; rc == 0 && i < count; i++) {
            const char *k = res_node_key_at(n, i);
            rc = buf_append_str(b, i ? ",\"" : "\"");
            rc = rc ? rc : buf_append_json_str(b, k, strlen(k));
            rc = rc ? rc : buf_append(b, "\":", 2);
            rc = rc ? rc : append_json(b, res_node_at(n, i));
        }
        return rc ? rc : buf_append(b, "}", 1);
    case RES_NODE_SEQ:
        rc = buf_append(b, "[", 1);
        for (size_t i = 0; rc == 0 && i < count; i++) {
            rc = i ? buf_append(b, ",", 1) : 0;
            rc = rc ? rc : append_json(b, res_node_at(n, i));
        }
        return rc ? rc : buf_append(b, "]", 1);
    default:
        if (res_node_is_null(n))
            return buf_append_str(b, "null");
        if (n->plain && json_literal(n->str))
            return buf_append_str(b, n->str);
        rc = buf_append(b, "\"", 1);
        rc = rc ? rc : buf_append_json_str(b, n->str, strlen(n->str));
        return rc ? rc : buf_append(b, "\"", 1);
    }
}

/*
 * Reads a value holder (a metadata item, a header, a clientTLS field) @p item at @p path:
 * `value`, `secretKeyRef: {name, key}` or `envRef`. Stores the value in *@p slot now (value,
 * envRef) or records a pending secretKeyRef. @p allow_env is false where envRef is not Dapr's;
 * @p component: a Component's metadata (templating; any YAML value, kept as JSON).
 */
static int read_value(struct ctx *c, const res_node_t *item, const char *path, const char *store,
                      char **slot, size_t owner, bool allow_env, bool component)
{
    const res_node_t *v = res_node_child(item, "value"), *skr = NULL;
    const char *env = NULL, *skname = NULL, *skkey = NULL;
    int rc;

    rc = opt_kind(c, item, path, "secretKeyRef", RES_NODE_MAP, &skr);
    if (rc == 0 && allow_env)
        rc = opt_str(c, item, path, "envRef", &env);
    if (rc < 0)
        return rc;
    if (v != NULL && res_node_is_null(v))
        v = NULL;
    if (v != NULL && res_node_kind(v) != RES_NODE_SCALAR && !component)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(v),
                         "%s.value: expected a string, found %s", path, res_node_kind_name(v));
    if (skr != NULL) {
        if (v != NULL)
            return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(skr),
                             "%s: both value and secretKeyRef given", path);
        rc = opt_str(c, skr, path, "name", &skname);
        if (rc == 0)
            rc = opt_str(c, skr, path, "key", &skkey);
        if (rc < 0)
            return rc;
        if (skname == NULL || skname[0] == '\0')
            return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(skr),
                             "%s.secretKeyRef.name: missing", path);
        *slot = mem_strdup("");
        return add_pending(c, slot, store, skname, skkey, res_node_line(skr), path, owner);
    }
    if (v != NULL && res_node_kind(v) != RES_NODE_SCALAR) {
        /* A Component value may be any YAML: Dapr keeps it as JSON text (DynamicValue). */
        buf_t b;
        buf_init(&b, RES_MAX_FILE_BYTES);
        rc = append_json(&b, v);
        *slot = rc == 0 ? buf_take(&b) : NULL;
        buf_free(&b);
        if (rc < 0)
            return res__errf(c->d, rc, c->file, res_node_line(v), "%s.value: too large", path);
        return 0;
    }
    if (v != NULL) {
        *slot = component ? expand_template(c, res_node_scalar(v)) : mem_strdup(res_node_scalar(v));
        return 0;
    }
    if (env != NULL) {
        const char *e;
        if (!secrets_envref_allowed(env))
            return res__errf(c->d, ERR_RES_INVALID, c->file,
                             res_node_line(res_node_child(item, "envRef")),
                             "%s.envRef: reading %.64s is not allowed (DAPR_*, APP_API_TOKEN and "
                             "names outside DAPR_ENV_KEYS are refused)",
                             path, env);
        e = getenv(env);
        *slot = mem_strdup(e ? e : "");
        return 0;
    }
    *slot = mem_strdup("");
    return 0;
}

/* Reads a list of {name, value|secretKeyRef|envRef} at @p path into *out / *n. */
static int read_items(struct ctx *c, const res_node_t *seq, const char *path, const char *store,
                      size_t owner, res_meta_t **out, size_t *n)
{
    size_t count = seq ? res_node_count(seq) : 0;
    char field[128];
    int rc = 0;

    *out = count ? mem_calloc(count * sizeof(**out)) : NULL;
    *n = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        const res_node_t *item = res_node_at(seq, i);
        const char *name = NULL;

        snprintf(field, sizeof(field), "%s.%zu", path, i);
        if (res_node_kind(item) != RES_NODE_MAP)
            return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(item),
                             "%s: expected a mapping, found %s", field, res_node_kind_name(item));
        rc = opt_str(c, item, field, "name", &name);
        if (rc < 0)
            return rc;
        if (name == NULL || name[0] == '\0')
            return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(item),
                             "%s.name: missing", field);
        (*out)[i].name = mem_strdup(name);
        (*n)++;
        rc = read_value(c, item, field, store, &(*out)[i].value, owner, true, owner != SIZE_MAX);
    }
    return rc;
}

/* Common header of both kinds: name, namespace filter, scopes. *skip when not for us. */
static int read_head(struct ctx *c, const res_node_t *root, const char **name, const char **ns,
                     const char **store, bool *skip)
{
    const res_node_t *meta = NULL, *auth = NULL;
    const char *api = NULL;
    bool yes;
    int rc;

    *skip = false;
    rc = opt_str(c, root, "", "apiVersion", &api);
    if (rc == 0 && (api == NULL || strcmp(api, API_VERSION) != 0))
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(root),
                         "apiVersion: expected \"%s\", found \"%.64s\"", API_VERSION,
                         api ? api : "");
    rc = rc ? rc : opt_kind(c, root, "", "metadata", RES_NODE_MAP, &meta);
    rc = rc ? rc : opt_str(c, meta, "metadata", "name", name);
    rc = rc ? rc : opt_str(c, meta, "metadata", "namespace", ns);
    rc = rc ? rc : opt_kind(c, root, "", "auth", RES_NODE_MAP, &auth);
    rc = rc ? rc : opt_str(c, auth, "auth", "secretStore", store);
    if (rc < 0)
        return rc;
    if (*name == NULL || (*name)[0] == '\0')
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(meta ? meta : root),
                         "metadata.name: missing");
    if (*ns != NULL && (*ns)[0] != '\0' && strcmp(*ns, c->ns) != 0) {
        log_debug("resources", "%s: %s is in namespace %s, not %s: skipped", c->file, *name, *ns,
                  c->ns);
        *skip = true;
        return 0;
    }
    rc = in_scope(c, root, &yes);
    if (rc == 0 && !yes) {
        log_debug("resources", "%s: %s is not scoped to %s: skipped", c->file, *name, c->app_id);
        *skip = true;
    }
    return rc;
}

static int read_component(struct ctx *c, const res_node_t *root)
{
    const char *name = NULL, *ns = NULL, *store = NULL, *type = NULL, *version = NULL;
    const res_node_t *spec = NULL, *items = NULL;
    res_components_t *cs = c->cs;
    res_component_t *comp;
    bool skip;
    int rc = read_head(c, root, &name, &ns, &store, &skip);

    if (rc < 0 || skip)
        return rc;
    if (res_components_find(cs, name) != NULL)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(root),
                         "metadata.name: a Component named %.64s is already loaded (from %.64s)",
                         name, res_components_find(cs, name)->file);
    rc = opt_kind(c, root, "", "spec", RES_NODE_MAP, &spec);
    rc = rc ? rc : opt_str(c, spec, "spec", "type", &type);
    rc = rc ? rc : opt_str(c, spec, "spec", "version", &version);
    rc = rc ? rc : opt_kind(c, spec, "spec", "metadata", RES_NODE_SEQ, &items);
    if (rc < 0)
        return rc;
    if (type == NULL || type[0] == '\0')
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(spec ? spec : root),
                         "spec.type: missing");
    if (cs->ncomps == cs->capcomps) {
        cs->capcomps = cs->capcomps ? cs->capcomps * 2 : 8;
        cs->comps = mem_realloc(cs->comps, cs->capcomps * sizeof(*cs->comps));
    }
    comp = mem_alloc(sizeof(*comp));
    cs->comps[cs->ncomps++] = comp;
    *comp = (res_component_t){.name = mem_strdup(name),
                              .ns = mem_strdup(c->ns),
                              .type = mem_strdup(type),
                              .version = mem_strdup(version && version[0] ? version : "v1"),
                              .file = mem_strdup(c->file),
                              .line = (int)res_node_line(root)};
    return read_items(c, items, "spec.metadata", store, cs->ncomps - 1, &comp->meta, &comp->nmeta);
}

/* A clientTLS field: {value | secretKeyRef}, into *slot (NULL when absent). */
static int read_tls_field(struct ctx *c, const res_node_t *tls, const char *field,
                          const char *store, char **slot)
{
    const res_node_t *f = NULL;
    char path[64];
    int rc = opt_kind(c, tls, "spec.clientTLS", field, RES_NODE_MAP, &f);

    if (rc < 0 || f == NULL)
        return rc;
    snprintf(path, sizeof(path), "spec.clientTLS.%s", field);
    return read_value(c, f, path, store, slot, SIZE_MAX, false, false);
}

static int read_endpoint(struct ctx *c, const res_node_t *root)
{
    const char *name = NULL, *ns = NULL, *store = NULL, *url = NULL, *reneg = NULL;
    const res_node_t *spec = NULL, *items = NULL, *tls = NULL;
    res_components_t *cs = c->cs;
    res_endpoint_t *ep;
    size_t ul;
    bool skip;
    int rc = read_head(c, root, &name, &ns, &store, &skip);

    if (rc < 0 || skip)
        return rc;
    if (res_components_endpoint(cs, name) != NULL)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(root),
                         "metadata.name: an HTTPEndpoint named %.64s is already loaded", name);
    rc = opt_kind(c, root, "", "spec", RES_NODE_MAP, &spec);
    rc = rc ? rc : opt_str(c, spec, "spec", "baseUrl", &url);
    rc = rc ? rc : opt_kind(c, spec, "spec", "headers", RES_NODE_SEQ, &items);
    rc = rc ? rc : opt_kind(c, spec, "spec", "clientTLS", RES_NODE_MAP, &tls);
    rc = rc ? rc : opt_str(c, tls, "spec.clientTLS", "renegotiation", &reneg);
    if (rc < 0)
        return rc;
    if (url == NULL || url[0] == '\0')
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(spec ? spec : root),
                         "spec.baseUrl: missing");
    if ((strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0) ||
        url[url[4] == 's' ? 8 : 7] == '\0' || strchr("/?#", url[url[4] == 's' ? 8 : 7]) != NULL)
        return res__errf(c->d, ERR_RES_INVALID, c->file,
                         res_node_line(res_node_child(spec, "baseUrl")),
                         "spec.baseUrl: expected an http:// or https:// URL with a host, found "
                         "\"%.64s\"",
                         url);
    if (reneg != NULL && strcmp(reneg, "Never") != 0)
        return res__errf(c->d, ERR_RES_INVALID, c->file,
                         res_node_line(res_node_child(tls, "renegotiation")),
                         "spec.clientTLS.renegotiation: only Never is supported");
    if (cs->neps == cs->capeps) {
        cs->capeps = cs->capeps ? cs->capeps * 2 : 8;
        cs->eps = mem_realloc(cs->eps, cs->capeps * sizeof(*cs->eps));
    }
    ep = mem_alloc(sizeof(*ep));
    cs->eps[cs->neps++] = ep;
    ul = strlen(url);
    while (ul > 0 && url[ul - 1] == '/')
        ul--;
    *ep = (res_endpoint_t){.name = mem_strdup(name),
                           .ns = mem_strdup(c->ns),
                           .base_url = mem_strndup(url, ul),
                           .file = mem_strdup(c->file),
                           .line = (int)res_node_line(root)};
    rc = read_items(c, items, "spec.headers", store, SIZE_MAX, &ep->headers, &ep->nheaders);
    rc = rc ? rc : read_tls_field(c, tls, "rootCA", store, &ep->root_ca);
    rc = rc ? rc : read_tls_field(c, tls, "certificate", store, &ep->certificate);
    rc = rc ? rc : read_tls_field(c, tls, "privateKey", store, &ep->private_key);
    if (rc == 0 && (ep->certificate == NULL) != (ep->private_key == NULL))
        rc = res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(tls),
                       "spec.clientTLS: certificate and privateKey go together");
    return rc;
}

/* Reads one file's documents. */
static int read_doc_stream(struct ctx *c, const char *path, const char *data, size_t len)
{
    res_yaml_t *y = NULL;
    int rc = res_yaml_parse(NULL, path, data, len, &y, c->d);

    if (rc < 0)
        return rc;
    c->file = res__yaml_name(y);
    for (size_t i = 0; rc == 0 && i < res_yaml_doc_count(y); i++) {
        const res_node_t *root = res_yaml_doc(y, i);
        const char *kind;
        if (res_node_kind(root) != RES_NODE_MAP)
            continue; /* an empty document between separators, or not a resource */
        kind = res_node_get_str(root, "kind");
        if (kind != NULL && strcmp(kind, "Component") == 0)
            rc = read_component(c, root);
        else if (kind != NULL && strcmp(kind, "HTTPEndpoint") == 0)
            rc = read_endpoint(c, root);
    }
    if (rc == ERR_NOMEM)
        err_set(c->d, rc, "%s: out of memory", c->file);
    c->file = NULL;
    res_yaml_free(y);
    return rc;
}

/* Reads every resource file of @p dir (name order) into @p c; @p files collects the paths of all
 * directories, so RES_MAX_RESOURCE_FILES bounds them together. */
static int read_dir(struct ctx *c, const char *dir, res_files_t *files)
{
    size_t first = files->n;
    int rc = res_dir_files(dir, RES_MAX_RESOURCE_FILES, files, c->d);

    if (rc == ERR_NOT_FOUND) {
        log_warn("resources", "resources path %s does not exist: nothing loaded from it", dir);
        return 0;
    }
    for (size_t i = first; rc == 0 && i < files->n; i++) {
        const char *path = files->paths[i];
        buf_t b;
        buf_init(&b, RES_MAX_FILE_BYTES);
        rc = fs_read_file(path, res__display_name(path), &b, c->d);
        if (rc == 0)
            rc = read_doc_stream(c, path, buf_ptr(&b), b.len);
        buf_free(&b);
    }
    return rc;
}

/* Builds the secret stores among the loaded Components. */
static int build_stores(struct ctx *c)
{
    res_components_t *cs = c->cs;

    for (size_t i = 0; i < cs->ncomps; i++) {
        res_component_t *comp = cs->comps[i];
        const char **keys, **values;
        secrets_store_t *s = NULL;
        err_detail_t why = {{0}};
        int rc;

        if (strncmp(comp->type, "secretstores.", 13) != 0)
            continue;
        if (!secrets_type_supported(comp->type)) {
            /* A Dapr resources folder may hold stores meant for other runtimes: only a reference
             * to one (resolve_pending) is an error. */
            log_warn("resources",
                     "%s:%d: secret store %s has type %s, which is not supported (only "
                     "secretstores.local.file and secretstores.local.env): not loaded",
                     comp->file, comp->line, comp->name, comp->type);
            continue;
        }
        for (size_t j = 0; j < c->npend; j++) {
            if (c->pend[j].owner == i)
                return res__errf(c->d, ERR_RES_INVALID, comp->file, c->pend[j].line,
                                 "%s.secretKeyRef: a secret store cannot read its own metadata "
                                 "from a secret store",
                                 c->pend[j].field);
        }
        keys = mem_calloc((comp->nmeta + 1) * sizeof(*keys));
        values = mem_calloc((comp->nmeta + 1) * sizeof(*values));
        for (size_t j = 0; j < comp->nmeta; j++) {
            keys[j] = comp->meta[j].name;
            values[j] = comp->meta[j].value;
        }
        rc = secrets_store_new(comp->name, comp->type, keys, values, comp->nmeta, &s, &why);
        mem_free(keys);
        mem_free(values);
        if (rc < 0)
            return res__errf(c->d, rc, comp->file, (unsigned)comp->line, "secret store %.64s: %s",
                             comp->name, why.msg);
        cs->stores = mem_realloc(cs->stores, (cs->nstores + 1) * sizeof(*cs->stores));
        cs->stores[cs->nstores++] = s;
    }
    return 0;
}

/* RFC 9110 §5.1 token characters. */
static bool is_tchar(unsigned char ch)
{
    return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
           (ch != 0 && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/*
 * HTTPEndpoint headers go on the wire as they are: a name that is not a token, or a value with a
 * control character (a secret file's trailing newline, say), would split or corrupt the request
 * (header injection). Refused at load, naming the header but never showing the value.
 */
static int check_headers(struct ctx *c)
{
    for (size_t i = 0; i < c->cs->neps; i++) {
        const res_endpoint_t *e = c->cs->eps[i];
        for (size_t j = 0; j < e->nheaders; j++) {
            const unsigned char *n = (const unsigned char *)e->headers[j].name;
            const unsigned char *v = (const unsigned char *)e->headers[j].value;
            for (; *n; n++) {
                if (!is_tchar(*n))
                    return res__errf(c->d, ERR_RES_INVALID, e->file, (unsigned)e->line,
                                     "spec.headers.%zu.name: not a valid HTTP header name", j);
            }
            for (; *v; v++) {
                if ((*v < 0x20 && *v != '\t') || *v == 0x7f)
                    return res__errf(c->d, ERR_RES_INVALID, e->file, (unsigned)e->line,
                                     "spec.headers.%zu (%.64s): the value contains a line break "
                                     "or control character",
                                     j, e->headers[j].name);
            }
        }
    }
    return 0;
}

/* Resolves every pending secretKeyRef. */
static int resolve_pending(struct ctx *c)
{
    for (size_t i = 0; i < c->npend; i++) {
        pending_t *p = &c->pend[i];
        const secrets_store_t *s;
        err_detail_t why = {{0}};
        char *value = NULL;
        int rc;

        if (p->store == NULL || p->store[0] == '\0')
            return res__errf(c->d, ERR_RES_INVALID, p->file, p->line,
                             "%s.secretKeyRef: the resource names no auth.secretStore", p->field);
        s = res_components_secret_store(c->cs, p->store);
        if (s == NULL && res_components_find(c->cs, p->store) != NULL)
            return res__errf(c->d, ERR_RES_INVALID, p->file, p->line,
                             "%s.secretKeyRef: secret store %.64s has type %.64s, which is not "
                             "supported",
                             p->field, p->store, res_components_find(c->cs, p->store)->type);
        if (s == NULL)
            return res__errf(c->d, ERR_NOT_FOUND, p->file, p->line,
                             "%s.secretKeyRef: secret store %.64s is not loaded", p->field,
                             p->store);
        rc = secrets_get_value(s, p->name, p->key, &value, &why);
        if (rc < 0)
            return res__errf(c->d, rc, p->file, p->line, "%s.secretKeyRef: store %.64s: %s",
                             p->field, p->store, why.msg);
        wipe_free(*p->slot);
        *p->slot = value;
    }
    return 0;
}

/* Steps 3 and 4 for whatever read_* gathered, then hands the result over or frees it. */
static int finish(struct ctx *c, int rc, res_components_t **out)
{
    rc = rc ? rc : build_stores(c);
    rc = rc ? rc : resolve_pending(c);
    rc = rc ? rc : check_headers(c);
    for (size_t i = 0; i < c->npend; i++) {
        mem_free(c->pend[i].store);
        mem_free(c->pend[i].name);
        mem_free(c->pend[i].key);
        mem_free(c->pend[i].file);
        mem_free(c->pend[i].field);
    }
    mem_free(c->pend);
    if (rc < 0) {
        res_components_free(c->cs);
        return rc;
    }
    *out = c->cs;
    return 0;
}

int res_components_load(const char *const *dirs, size_t ndirs, const char *app_id, const char *ns,
                        res_components_t **out, err_detail_t *d)
{
    struct ctx c = {0};
    res_files_t files = {0};
    int rc = 0;

    if ((ndirs > 0 && dirs == NULL) || app_id == NULL || ns == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "res_components_load: invalid arguments");
    c.cs = mem_calloc(sizeof(*c.cs));
    c.app_id = app_id;
    c.ns = ns;
    c.d = d;
    for (size_t i = 0; rc == 0 && i < ndirs; i++)
        rc = read_dir(&c, dirs[i], &files);
    res_files_free(&files);
    return finish(&c, rc, out);
}

int res_components_parse(const char *name, const char *data, size_t len, const char *app_id,
                         const char *ns, res_components_t **out, err_detail_t *d)
{
    struct ctx c = {0};

    if (name == NULL || (data == NULL && len > 0) || app_id == NULL || ns == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "res_components_parse: invalid arguments");
    if (len > RES_MAX_FILE_BYTES)
        return err_set(d, ERR_TOO_LARGE, "%s: file is too large", res__display_name(name));
    c.cs = mem_calloc(sizeof(*c.cs));
    c.app_id = app_id;
    c.ns = ns;
    c.d = d;
    return finish(&c, read_doc_stream(&c, name, data ? data : "", len), out);
}
