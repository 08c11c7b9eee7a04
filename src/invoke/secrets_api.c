/*
 * Dapr's secrets API on the API port (spec dapr.md §8, §6 secrets.scopes):
 *   GET /v1.0/secrets/<store>/<name>  → 200 {"key":"value",...}
 *   GET /v1.0/secrets/<store>/bulk    → 200 {"name":{"key":"value"},...}
 * with Dapr's error codes. The Configuration's spec.secrets.scopes decides which names may be
 * read; httpPipeline runs first (api.c → invoke__api_local). Values go only into the response
 * body, never into a log line.
 */
#include <http_parser.h>
#include <string.h>

#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"

#define SECRETS_PREFIX "/v1.0/secrets/"
#define SECRET_NAME_MAX 1024
#define SECRETS_RESPONSE_MAX (16 * 1024 * 1024)

/* The scope entry of the Configuration for @p store (secrets.scopes[storeName == store]). */
static const res_node_t *find_scope(const res_snapshot_t *snap, const char *store)
{
    const res_config_t *cfg = snap ? res_snapshot_config(snap) : NULL;
    const res_node_t *scopes = cfg ? res_node_get(cfg->root, "spec.secrets.scopes") : NULL;

    for (size_t i = 0; scopes != NULL && i < res_node_count(scopes); i++) {
        const char *n = res_node_get_str(res_node_at(scopes, i), "storeName");
        if (n != NULL && strcmp(n, store) == 0)
            return res_node_at(scopes, i);
    }
    return NULL;
}

static bool listed(const res_node_t *scope, const char *field, const char *name)
{
    const res_node_t *l = res_node_child(scope, field);
    for (size_t i = 0; l != NULL && i < res_node_count(l); i++) {
        const char *s = res_node_scalar(res_node_at(l, i));
        if (s != NULL && strcmp(s, name) == 0)
            return true;
    }
    return false;
}

/* Dapr's isSecretAllowed: allowedSecrets (when non-empty) is the whole truth; then
 * deniedSecrets; then defaultAccess (allow unless "deny"). No scope: allowed. */
static bool allowed(const char *name, void *arg)
{
    const res_node_t *scope = arg, *allow;
    const char *def;

    if (scope == NULL)
        return true;
    allow = res_node_child(scope, "allowedSecrets");
    if (allow != NULL && res_node_count(allow) > 0)
        return listed(scope, "allowedSecrets", name);
    if (listed(scope, "deniedSecrets", name))
        return false;
    def = res_node_get_str(scope, "defaultAccess");
    return def == NULL || !str_ieq(def, strlen(def), "deny");
}

/* Splits "/v1.0/secrets/<store>/<name>" into @p store and @p name; false when it is not one. */
static bool split_route(const char *path, size_t len, char *store, size_t store_len, char *name,
                        size_t name_len)
{
    const size_t plen = sizeof(SECRETS_PREFIX) - 1;
    const char *rest, *slash;
    size_t sl, nl;

    if (len <= plen || memcmp(path, SECRETS_PREFIX, plen) != 0)
        return false;
    rest = path + plen;
    slash = memchr(rest, '/', len - plen);
    if (slash == NULL || slash == rest || slash + 1 == path + len)
        return false;
    sl = (size_t)(slash - rest);
    nl = (size_t)(path + len - slash - 1);
    if (sl >= store_len || nl >= name_len || memchr(slash + 1, '/', nl) != NULL)
        return false; /* not a secrets route: Dapr's router falls back to invocation */
    memcpy(store, rest, sl);
    store[sl] = '\0';
    memcpy(name, slash + 1, nl);
    name[nl] = '\0';
    return true;
}

bool invoke__secrets_route(const net_head_t *h, const char *path, size_t len)
{
    char store[INVOKE_ID_MAX], name[SECRET_NAME_MAX];
    return h->method == HTTP_GET &&
           split_route(path, len, store, sizeof(store), name, sizeof(name));
}

void invoke__secrets_serve(invoke_worker_t *iw, net_sreq_t *req)
{
    invoke_sidecar_t *sc = iw->sc;
    const net_head_t *h = net_sreq_head(req);
    char store[INVOKE_ID_MAX], name[SECRET_NAME_MAX];
    const secrets_store_t *s;
    res_snapshot_t *snap;
    const res_node_t *scope;
    err_detail_t d = {{0}};
    const char *q;
    size_t qlen;
    buf_t b, path;
    int rc = 0;

    buf_init(&path, 64 * 1024);
    if (invoke_url_split(h->url, h->url_len, &path, &q, &qlen, &d) < 0 ||
        !split_route(path.ptr, path.len, store, sizeof(store), name, sizeof(name))) {
        buf_free(&path);
        invoke__respond_error(req, 400, "ERR_MALFORMED_REQUEST", "malformed secrets request");
        return;
    }
    buf_free(&path);
    if (res_components_secret_store_count(sc->components) == 0) {
        invoke__respond_error(req, 500, "ERR_SECRET_STORES_NOT_CONFIGURED",
                              "secret store is not configured");
        return;
    }
    s = res_components_secret_store(sc->components, store);
    if (s == NULL) {
        invoke__respond_error(req, 401, "ERR_SECRET_STORE_NOT_FOUND",
                              "failed finding secret store with key %s", store);
        return;
    }
    snap = res_slot_acquire(&sc->config);
    scope = find_scope(snap, store);
    buf_init(&b, SECRETS_RESPONSE_MAX);
    if (strcmp(name, "bulk") == 0) {
        rc = secrets_render_bulk(s, allowed, (void *)scope, &b, &d);
    } else if (!allowed(name, (void *)scope)) {
        invoke__respond_error(req, 403, "ERR_PERMISSION_DENIED",
                              "access denied by policy to get \"%s\" from \"%s\"", name, store);
        goto out;
    } else {
        rc = secrets_render(s, name, &b, &d);
    }
    if (rc < 0)
        invoke__respond_error(req, 500, "ERR_SECRET_GET",
                              "failed getting secret with key %s from secret store %s: %s", name,
                              store, d.msg);
    else
        net_sreq_respond_simple(req, 200, "application/json", b.ptr, b.len);
    log_debug("secrets", "GET secret %s from store %s: %s", name, store,
              rc < 0 ? err_name(rc) : "ok");
out:
    if (b.ptr != NULL)
        explicit_bzero(b.ptr, b.len);
    buf_free(&b);
    res_snapshot_unref(snap);
}
