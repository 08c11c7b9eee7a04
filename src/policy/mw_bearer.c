/*
 * middleware.http.bearer — JWT bearer tokens checked against the issuer's JWKS (spec dapr.md §4.2),
 * plus what the MCP authorization specification asks of a protected resource: a 401 names the
 * Protected Resource Metadata (RFC 9728) in WWW-Authenticate, and the metadata is served at
 * /.well-known/oauth-protected-resource[/<path>] of the app.
 *
 * Keys: fetched at init (OIDC discovery when jwksURL is not given; failure fails the init, as in
 * Dapr) and again, off the worker loop, when a token names a kid the set does not have — at most
 * once per POL_BEARER_REFRESH_S. Verified tokens are cached per worker thread (no lock) until they
 * expire; the cache compares whole tokens, never hashes alone.
 */
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "policy/fetch.h"
#include "policy/jose.h"
#include "policy/mw.h"
#include "policy/policy_int.h"

#define POL_BEARER_SKEW_S 300   /* clock skew allowed on exp/nbf/iat (Dapr: 5 min) */
#define POL_BEARER_REFRESH_S 10 /* least time between key refreshes triggered by unknown kids */
#define CACHE_SLOTS 256         /* verified tokens remembered per worker */
#define PRM_PATH "/.well-known/oauth-protected-resource"

typedef struct centry {
    char *tok; /* owned copy; NULL = empty slot */
    size_t len;
    uint64_t hash;
    int64_t exp;
} centry_t;

typedef struct bearer {
    char issuer[512];
    char audience[512];
    char jwks_url[1024];
    char scopes[512]; /* advertised in metadata and challenges; "" = none */
    char name[128];
    uv_mutex_t mu;                    /* guards keys and last_refresh */
    pol_jwks_t *keys;                 /* current key set (one reference) */
    int64_t last_refresh;             /* monotonic seconds of the last kid-triggered refresh */
    atomic_bool refreshing;           /* a refresh runs on the thread pool */
    centry_t *cache[POL_WORKERS_MAX]; /* per worker, allocated on first use by that worker */
} bearer_t;

/* GETs @p url and parses it as JSON. */
static json_t *get_json(const char *url, err_detail_t *d)
{
    pol_fetch_req_t r = {.method = "GET", .url = url};
    pol_fetch_resp_t resp;
    json_t *j = NULL;
    int rc = pol_fetch(&r, &resp, d);

    if (rc == 0 && resp.status != 200)
        rc = err_set(d, ERR_POLICY_UPSTREAM, "GET %s answered %d", url, resp.status);
    if (rc == 0) {
        j = json_loadb(buf_ptr(&resp.body), resp.body.len, 0, NULL);
        if (j == NULL)
            err_set(d, ERR_POLICY_UPSTREAM, "GET %s: not JSON", url);
    }
    pol_fetch_resp_free(&resp);
    return j;
}

static int fetch_keys(const char *url, pol_jwks_t **out, err_detail_t *d)
{
    pol_fetch_req_t r = {.method = "GET", .url = url};
    pol_fetch_resp_t resp;
    int rc = pol_fetch(&r, &resp, d);

    if (rc == 0 && resp.status != 200)
        rc = err_set(d, ERR_POLICY_UPSTREAM, "GET %s answered %d", url, resp.status);
    if (rc == 0)
        rc = pol_jwks_parse(buf_ptr(&resp.body), resp.body.len, out, d);
    pol_fetch_resp_free(&resp);
    return rc;
}

static void bearer_destroy(void *inst)
{
    bearer_t *b = inst;
    if (b == NULL)
        return;
    for (size_t w = 0; w < POL_WORKERS_MAX; w++) {
        for (size_t i = 0; b->cache[w] != NULL && i < CACHE_SLOTS; i++)
            mem_free(b->cache[w][i].tok);
        mem_free(b->cache[w]);
    }
    pol_jwks_unref(b->keys);
    uv_mutex_destroy(&b->mu);
    mem_free(b);
}

static const char *meta2(const res_component_t *c, const char *a, const char *b)
{
    const char *v = res_component_meta(c, a);
    return v != NULL && v[0] != '\0' ? v : res_component_meta(c, b);
}

static int bearer_create(const res_component_t *c, void **inst, err_detail_t *d)
{
    const char *iss = meta2(c, "issuer", "issuerURL"), *aud = meta2(c, "audience", "clientID");
    const char *jwks = res_component_meta(c, "jwksURL"), *scopes = res_component_meta(c, "scopes");
    bearer_t *b;
    bool tls;
    char host[256], path[16];
    int port, rc;

    if (iss == NULL || iss[0] == '\0' || aud == NULL || aud[0] == '\0')
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata issuer and audience are required",
                       c->file, c->line, c->name);
    if (strlen(iss) >= sizeof(((bearer_t *)0)->issuer) ||
        strlen(aud) >= sizeof(((bearer_t *)0)->audience) ||
        (jwks != NULL && strlen(jwks) >= sizeof(((bearer_t *)0)->jwks_url)))
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: issuer, audience or jwksURL too long",
                       c->file, c->line, c->name);
    b = mem_calloc(sizeof(*b));
    uv_mutex_init(&b->mu);
    str_copy(b->issuer, sizeof(b->issuer), iss);
    str_copy(b->audience, sizeof(b->audience), aud);
    str_copy(b->name, sizeof(b->name), c->name);
    if (scopes != NULL)
        str_copy(b->scopes, sizeof(b->scopes), scopes);
    if (jwks != NULL && jwks[0] != '\0') {
        str_copy(b->jwks_url, sizeof(b->jwks_url), jwks);
    } else {
        /* OIDC discovery: the document's issuer must be ours exactly. */
        char url[1100];
        json_t *doc, *ji, *ju;
        size_t il = strlen(iss);
        snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration",
                 (int)(il > 0 && iss[il - 1] == '/' ? il - 1 : il), iss);
        doc = get_json(url, d);
        if (doc == NULL) {
            bearer_destroy(b);
            return ERR_POLICY_UPSTREAM;
        }
        ji = json_object_get(doc, "issuer");
        ju = json_object_get(doc, "jwks_uri");
        if (!json_is_string(ji) || strcmp(json_string_value(ji), iss) != 0 || !json_is_string(ju)) {
            json_decref(doc);
            bearer_destroy(b);
            return err_set(d, ERR_POLICY_UPSTREAM,
                           "%s: OIDC discovery document of %s has another issuer or no jwks_uri",
                           c->name, iss);
        }
        str_copy(b->jwks_url, sizeof(b->jwks_url), json_string_value(ju));
        json_decref(doc);
    }
    if (pol_url_split(b->jwks_url, &tls, host, sizeof(host), &port, path, sizeof(path)) == 0 &&
        !tls)
        log_warn("bearer", "%s: keys are fetched over plain HTTP from %s (loopback only)", c->name,
                 host);
    rc = fetch_keys(b->jwks_url, &b->keys, d);
    if (rc < 0) {
        bearer_destroy(b);
        return rc;
    }
    log_info("bearer", "%s: %zu signing keys from %s", c->name, pol_jwks_count(b->keys),
             b->jwks_url);
    *inst = b;
    return 0;
}

static size_t bearer_body_limit(const void *inst, const pol_call_t *call)
{
    (void)inst;
    (void)call;
    return 0;
}

/* --- per-worker cache of verified tokens ------------------------------------------------------ */

static uint64_t tok_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

static bool cache_hit(bearer_t *b, unsigned w, const char *tok, size_t len, uint64_t h, int64_t now)
{
    centry_t *e;
    if (w >= POL_WORKERS_MAX || b->cache[w] == NULL)
        return false;
    e = &b->cache[w][h % CACHE_SLOTS];
    return e->tok != NULL && e->hash == h && e->len == len && memcmp(e->tok, tok, len) == 0 &&
           now <= e->exp;
}

static void cache_put(bearer_t *b, unsigned w, const char *tok, size_t len, uint64_t h, int64_t exp)
{
    centry_t *e;
    if (w >= POL_WORKERS_MAX)
        return;
    if (b->cache[w] == NULL)
        b->cache[w] = mem_calloc(sizeof(centry_t) * CACHE_SLOTS);
    e = &b->cache[w][h % CACHE_SLOTS];
    mem_free(e->tok);
    e->tok = mem_alloc(len);
    memcpy(e->tok, tok, len);
    e->len = len;
    e->hash = h;
    e->exp = exp;
}

/* --- decisions -------------------------------------------------------------------------------- */

/* 401 with the challenge that points MCP clients at the metadata. */
static pol_verdict_t unauthorized(bearer_t *b, pol_call_t *call, bool had_token)
{
    char ch[2048];
    int n = snprintf(ch, sizeof(ch), "Bearer realm=\"%s\"", call->app_id ? call->app_id : "");
    if (had_token)
        n += snprintf(ch + n, sizeof(ch) - (size_t)n, ", error=\"invalid_token\"");
    if (call->prm_base != NULL && call->prm_base[0] != '\0')
        n += snprintf(ch + n, sizeof(ch) - (size_t)n, ", resource_metadata=\"%s%.*s\"",
                      call->prm_base, (int)call->path_len, call->path);
    if (b->scopes[0] != '\0' && n > 0 && (size_t)n < sizeof(ch))
        snprintf(ch + n, sizeof(ch) - (size_t)n, ", scope=\"%s\"", b->scopes);
    call->deny_layer = "bearer";
    (void)pol_call_resp_header(call, "www-authenticate", ch);
    return pol_call_reject(call, 401);
}

/* RFC 9728 metadata for the resource at resource_base + rest. */
static pol_verdict_t serve_prm(bearer_t *b, pol_call_t *call, const char *rest, size_t rest_len)
{
    json_t *o = json_object(), *as = json_array(), *bm = json_array();
    char res[2048], txt[8192];
    size_t n;

    snprintf(res, sizeof(res), "%s%.*s", call->resource_base ? call->resource_base : "",
             (int)rest_len, rest);
    json_object_set_new(o, "resource", json_string(res));
    json_array_append_new(as, json_string(b->issuer));
    json_object_set_new(o, "authorization_servers", as);
    json_array_append_new(bm, json_string("header"));
    json_object_set_new(o, "bearer_methods_supported", bm);
    if (b->scopes[0] != '\0') {
        json_t *sc = json_array();
        char tmp[512];
        char *save = NULL, *tokp;
        str_copy(tmp, sizeof(tmp), b->scopes);
        for (tokp = strtok_r(tmp, ", ", &save); tokp != NULL; tokp = strtok_r(NULL, ", ", &save))
            json_array_append_new(sc, json_string(tokp));
        json_object_set_new(o, "scopes_supported", sc);
    }
    n = json_dumpb(o, txt, sizeof(txt), JSON_COMPACT);
    json_decref(o);
    call->status = 200;
    buf_reset(&call->resp_body);
    if (n == 0 || n > sizeof(txt) || buf_append(&call->resp_body, txt, n) < 0)
        return pol_call_reject(call, 500);
    (void)pol_call_resp_header(call, "content-type", "application/json");
    (void)pol_call_resp_header(call, "cache-control", "max-age=3600");
    return POL_RESPOND;
}

static int verify(bearer_t *b, const char *tok, size_t len, pol_jwt_info_t *info, err_detail_t *d)
{
    pol_jwks_t *ks;
    pol_jwt_expect_t e = {.issuer = b->issuer,
                          .audience = b->audience,
                          .now = (int64_t)time(NULL),
                          .skew = POL_BEARER_SKEW_S};
    int rc;

    uv_mutex_lock(&b->mu);
    ks = pol_jwks_ref(b->keys);
    uv_mutex_unlock(&b->mu);
    rc = pol_jwt_verify(ks, tok, len, &e, info, d);
    pol_jwks_unref(ks);
    return rc;
}

/* A refresh of the key set off the loop, then the same token checked again. */
typedef struct refresh {
    uv_work_t work;
    bearer_t *b;
    pol_call_t *call;
    char *tok;
    size_t len;
    pol_jwks_t *fresh;
} refresh_t;

static void do_refresh(uv_work_t *w)
{
    refresh_t *r = w->data;
    err_detail_t d = {{0}};
    if (fetch_keys(r->b->jwks_url, &r->fresh, &d) < 0)
        log_warn("bearer", "%s: refreshing keys from %s failed: %s", r->b->name, r->b->jwks_url,
                 d.msg);
}

static void after_refresh(uv_work_t *w, int status)
{
    refresh_t *r = w->data;
    bearer_t *b = r->b;
    pol_jwt_info_t info;
    err_detail_t d = {{0}};
    pol_verdict_t v;
    (void)status;

    if (r->fresh != NULL) {
        pol_jwks_t *old;
        uv_mutex_lock(&b->mu);
        old = b->keys;
        b->keys = r->fresh;
        uv_mutex_unlock(&b->mu);
        pol_jwks_unref(old);
        log_info("bearer", "%s: key set refreshed (%zu keys)", b->name, pol_jwks_count(r->fresh));
    }
    atomic_store(&b->refreshing, false);
    if (verify(b, r->tok, r->len, &info, &d) == 0) {
        cache_put(b, r->call->worker, r->tok, r->len, tok_hash(r->tok, r->len), info.exp);
        v = POL_NEXT;
    } else {
        log_debug("bearer", "%s: token rejected: %s", b->name, d.msg);
        v = unauthorized(b, r->call, true);
    }
    mem_free(r->tok);
    pol_call_resume(r->call, v);
    mem_free(r);
}

static pol_verdict_t bearer_handle(void *inst, pol_call_t *call)
{
    bearer_t *b = inst;
    const net_header_t *auth;
    const char *tok;
    size_t len;
    uint64_t h;
    pol_jwt_info_t info;
    err_detail_t d = {{0}};
    int64_t now = (int64_t)time(NULL);
    int rc;

    if (call->path_len >= sizeof(PRM_PATH) - 1 &&
        memcmp(call->path, PRM_PATH, sizeof(PRM_PATH) - 1) == 0 &&
        (call->path_len == sizeof(PRM_PATH) - 1 || call->path[sizeof(PRM_PATH) - 1] == '/'))
        return serve_prm(b, call, call->path + sizeof(PRM_PATH) - 1,
                         call->path_len - (sizeof(PRM_PATH) - 1));
    auth = net_head_get(call->head, "authorization");
    if (auth == NULL || auth->value_len < 7 || strncasecmp(auth->value, "bearer ", 7) != 0)
        return unauthorized(b, call, false);
    tok = auth->value + 7;
    len = auth->value_len - 7;
    while (len > 0 && tok[0] == ' ') {
        tok++;
        len--;
    }
    if (len < 10 || len > POL_JWT_MAX)
        return unauthorized(b, call, true);
    h = tok_hash(tok, len);
    if (cache_hit(b, call->worker, tok, len, h, now))
        return POL_NEXT;
    rc = verify(b, tok, len, &info, &d);
    if (rc == 0) {
        cache_put(b, call->worker, tok, len, h, info.exp);
        return POL_NEXT;
    }
    if (rc == ERR_POLICY_UNKNOWN_KID && call->loop != NULL) {
        bool busy = false;
        int64_t t = pol__mono_s();
        uv_mutex_lock(&b->mu);
        if (t - b->last_refresh < POL_BEARER_REFRESH_S)
            busy = true;
        else
            b->last_refresh = t;
        uv_mutex_unlock(&b->mu);
        if (!busy && !atomic_exchange(&b->refreshing, true)) {
            refresh_t *r = mem_calloc(sizeof(*r));
            r->b = b;
            r->call = call;
            r->tok = mem_alloc(len);
            memcpy(r->tok, tok, len);
            r->len = len;
            r->work.data = r;
            if (uv_queue_work(call->loop, &r->work, do_refresh, after_refresh) == 0)
                return POL_PENDING;
            atomic_store(&b->refreshing, false);
            mem_free(r->tok);
            mem_free(r);
        }
    }
    log_debug("bearer", "%s: token rejected: %s", b->name, d.msg);
    return unauthorized(b, call, true);
}

const pol_mw_ops_t pol_mw_bearer = {
    .type = "middleware.http.bearer",
    .create = bearer_create,
    .destroy = bearer_destroy,
    .body_limit = bearer_body_limit,
    .handle = bearer_handle,
};
