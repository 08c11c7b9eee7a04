/*
 * middleware.http.oauth2 — the OAuth2 authorization-code flow in front of an app (spec dapr.md
 * §4.3): a browser without a session is sent to the provider's login, comes back with a code,
 * the sidecar exchanges it for a token and from then on adds "<type> <token>" in authHeaderName
 * to every request of that browser session.
 *
 * Sessions: a signed, HttpOnly, SameSite=Lax cookie (Secure with forceHTTPS) naming a session in
 * an in-memory store shared by the worker threads (policy/session.h: bounded, expiring, short
 * mutex per request). The cookie is named after the app and the component, so several apps
 * behind one browser-facing sidecar keep separate sessions. A login rotates the session id.
 * A session lasts as long as its access token (expires_in; POL_OAUTH2_TTL_DEFAULT_S without
 * one), then the next request logs in again; refresh tokens are not used. Sessions live in the
 * middleware instance: a Configuration reload (which rebuilds the pipeline) or a restart ends
 * them.
 *
 * The code exchange is a blocking HTTP request, so it runs on libuv's thread pool, never on the
 * worker loop. The client secret, codes and tokens are never logged or put in a response.
 */
#include <openssl/crypto.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "policy/fetch.h"
#include "policy/mw.h"
#include "policy/policy_int.h"
#include "policy/session.h"

#define POL_OAUTH2_LOGIN_TTL_S 600       /* a login must come back within this time */
#define POL_OAUTH2_TTL_DEFAULT_S 3600    /* session lifetime when the token has no expires_in */
#define POL_OAUTH2_TTL_MAX_S (24 * 3600) /* longest session, whatever the token says */
#define POL_OAUTH2_CODE_MAX 4096         /* longest authorization code accepted */
#define POL_OAUTH2_PARAM_MAX 1024        /* longest state parameter looked at */
#define COOKIE_NAME_MAX 300

typedef struct oauth2 {
    char name[128];                      /* the Component's name */
    char client_id[256];                 /* */
    char *secret;                        /* owned; wiped on free */
    char auth_url[1024];                 /* */
    char token_url[1024];                /* */
    char redirect_url[1024];             /* */
    char header[128];                    /* authHeaderName */
    buf_t auth_query;                    /* "access_type=...&scope=..." without &state= */
    bool force_https;                    /* */
    bool has_filter;                     /* */
    regex_t filter;                      /* pathFilter */
    unsigned char key[POL_SESS_KEY_LEN]; /* signs the session cookies */
    pol_sess_store_t *store;             /* owned */
} oauth2_t;

/* Dapr's utils.IsTruthy. */
static bool truthy(const char *v)
{
    static const char *const yes[] = {"y", "yes", "true", "t", "on", "1"};
    for (size_t i = 0; v != NULL && i < sizeof(yes) / sizeof(yes[0]); i++)
        if (strcasecmp(v, yes[i]) == 0)
            return true;
    return false;
}

/* A URL path: pchar and "/" stay, the rest is %XX; with @p raw a "%" stays (already escaped). */
static int path_escape(buf_t *b, const char *p, size_t n, bool raw)
{
    static const char hex[] = "0123456789ABCDEF";
    static const char keep[] = "-._~!$&'()*+,;=:@/";
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            (c != '\0' && strchr(keep, c) != NULL) || (raw && c == '%')) {
            rc = buf_append(b, p + i, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 3);
        }
    }
    return rc;
}

static void o2_destroy(void *inst)
{
    oauth2_t *o = inst;
    if (o == NULL)
        return;
    pol__secret_free(o->secret);
    OPENSSL_cleanse(o->key, sizeof(o->key));
    buf_free(&o->auth_query);
    if (o->has_filter)
        regfree(&o->filter);
    pol_sess_store_free(o->store);
    mem_free(o);
}

/* Copies metadata @p key into @p dst; false when it does not fit. */
static bool meta_copy(const res_component_t *c, const char *key, char *dst, size_t cap)
{
    const char *v = res_component_meta(c, key);
    return str_copy(dst, cap, v ? v : "") < cap;
}

/* Checks that @p url is an http(s) URL; one the sidecar fetches (@p fetched) must be https, or
 * plain http to a loopback host (local identity providers in development). */
static int check_url(const res_component_t *c, const char *field, const char *url, bool fetched,
                     err_detail_t *d)
{
    bool tls;
    char host[256], path[1100];
    int port;

    if (pol_url_split(url, &tls, host, sizeof(host), &port, path, sizeof(path)) < 0)
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: %s is not an http(s) URL", c->file, c->line,
                       c->name, field);
    if (fetched && !tls) {
        if (!pol_host_is_loopback(host))
            return err_set(d, ERR_RES_INVALID,
                           "%s:%d: %s: %s must be https (plain http only to loopback)", c->file,
                           c->line, c->name, field);
        log_warn("oauth2", "%s: tokens are fetched over plain HTTP from %s (loopback only)",
                 c->name, host);
    }
    return 0;
}

/* The callback must pass through the middleware, or the browser lands in the app with a code
 * and no session. pathFilter sees the app's path on appHttpPipeline ("/callback") and the
 * sidecar's on httpPipeline ("/v1.0/invoke/web/method/callback"): warn when it matches neither. */
static void warn_unguarded_redirect(const oauth2_t *o)
{
    char path[1100], app[1100];
    bool tls;
    char host[256];
    int port;
    const char *m, *q;

    if (pol_url_split(o->redirect_url, &tls, host, sizeof(host), &port, path, sizeof(path)) < 0)
        return;
    q = strpbrk(path, "?#");
    if (q != NULL)
        path[q - path] = '\0';
    m = strncmp(path, "/v1.0/invoke/", 13) == 0 ? strstr(path + 13, "/method/") : NULL;
    snprintf(app, sizeof(app), "%s", m != NULL ? m + 7 : path);
    if (regexec(&o->filter, path, 0, NULL, 0) != 0 && regexec(&o->filter, app, 0, NULL, 0) != 0)
        log_warn("oauth2",
                 "%s: pathFilter does not match the path of redirectURL (%s): the provider's "
                 "callback would bypass the middleware",
                 o->name, app);
}

static int o2_create(const res_component_t *comp, void **inst, err_detail_t *d)
{
    static const char *const req[] = {"clientID", "clientSecret", "authURL", "tokenURL",
                                      "redirectURL"};
    const char *scopes = res_component_meta(comp, "scopes");
    const char *header = res_component_meta(comp, "authHeaderName");
    const char *filter = res_component_meta(comp, "pathFilter");
    oauth2_t *o;
    int rc = 0;

    rc = pol__meta_require(comp, req, sizeof(req) / sizeof(req[0]), d);
    if (rc < 0)
        return rc;
    o = mem_calloc(sizeof(*o));
    buf_init(&o->auth_query, 16 * 1024);
    str_copy(o->name, sizeof(o->name), comp->name);
    if (!meta_copy(comp, "clientID", o->client_id, sizeof(o->client_id)) ||
        !meta_copy(comp, "authURL", o->auth_url, sizeof(o->auth_url)) ||
        !meta_copy(comp, "tokenURL", o->token_url, sizeof(o->token_url)) ||
        !meta_copy(comp, "redirectURL", o->redirect_url, sizeof(o->redirect_url)) ||
        str_copy(o->header, sizeof(o->header),
                 header != NULL && header[0] != '\0' ? header : "Authorization") >=
            sizeof(o->header)) {
        o2_destroy(o);
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata too long", comp->file, comp->line,
                       comp->name);
    }
    for (const char *h = o->header; *h; h++) {
        /* A header name is an RFC 9110 token. */
        if (!((*h >= 'a' && *h <= 'z') || (*h >= 'A' && *h <= 'Z') || (*h >= '0' && *h <= '9') ||
              strchr("!#$%&'*+-.^_`|~", *h) != NULL)) {
            o2_destroy(o);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: authHeaderName is not a header name",
                           comp->file, comp->line, comp->name);
        }
    }
    rc = check_url(comp, "authURL", o->auth_url, false, d);
    rc = rc ? rc : check_url(comp, "redirectURL", o->redirect_url, false, d);
    rc = rc ? rc : check_url(comp, "tokenURL", o->token_url, true, d);
    if (rc < 0) {
        o2_destroy(o);
        return rc;
    }
    o->secret = mem_strdup(res_component_meta(comp, "clientSecret"));
    o->force_https = truthy(res_component_meta(comp, "forceHTTPS"));

    /* Go's AuthCodeURL: parameters sorted by name; state goes last. */
    rc = buf_append_str(&o->auth_query, "access_type=offline&client_id=");
    rc = rc ? rc : pol__form_escape(&o->auth_query, o->client_id);
    rc = rc ? rc : buf_append_str(&o->auth_query, "&redirect_uri=");
    rc = rc ? rc : pol__form_escape(&o->auth_query, o->redirect_url);
    rc = rc ? rc : buf_append_str(&o->auth_query, "&response_type=code");
    if (rc == 0 && scopes != NULL && scopes[0] != '\0') {
        /* Dapr splits scopes on ","; the request joins them with spaces. */
        rc = buf_append_str(&o->auth_query, "&scope=");
        rc = rc ? rc : pol__scopes_put(&o->auth_query, scopes);
    }
    if (rc == 0 && filter != NULL && filter[0] != '\0') {
        if (regcomp(&o->filter, filter, REG_EXTENDED | REG_NOSUB) != 0) {
            o2_destroy(o);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: pathFilter is not a valid regex",
                           comp->file, comp->line, comp->name);
        }
        o->has_filter = true;
        warn_unguarded_redirect(o);
    }
    if (rc < 0) {
        o2_destroy(o);
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata too long", comp->file, comp->line,
                       comp->name);
    }
    if (pol_sess_key_new(o->key) < 0) {
        o2_destroy(o);
        return err_set(d, ERR_IDENTITY_CRYPTO, "%s: no random bytes for the session key",
                       comp->name);
    }
    o->store = pol_sess_store_new(POL_SESS_MAX_DEFAULT);
    *inst = o;
    return 0;
}

static size_t o2_body_limit(const void *inst, const pol_call_t *call)
{
    (void)inst;
    (void)call;
    return 0;
}

/* --- responses -------------------------------------------------------------------------------- */

/* "outrigger_oauth2.<app>.<component>" with anything outside a cookie-name token replaced. */
static void cookie_name(const oauth2_t *o, const pol_call_t *call, char out[COOKIE_NAME_MAX])
{
    size_t n = (size_t)snprintf(out, COOKIE_NAME_MAX, "outrigger_oauth2.%s.%s",
                                call->app_id ? call->app_id : "", o->name);
    if (n >= COOKIE_NAME_MAX)
        n = COOKIE_NAME_MAX - 1;
    for (size_t i = 0; i < n; i++) {
        char c = out[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            out[i] = '_';
    }
}

/* The session named by the request's cookies, if one is signed by this instance. */
static bool session_of(const oauth2_t *o, const pol_call_t *call, const char *cname,
                       pol_sess_id_t *id)
{
    const net_head_t *h = call->head;
    for (size_t i = 0; h != NULL && i < h->header_count; i++) {
        const net_header_t *x = &h->headers[i];
        const char *v;
        size_t vl;
        if (!str_eq(x->name, x->name_len, "cookie"))
            continue;
        if (pol_cookie_get(x->value, x->value_len, cname, &v, &vl) == 0 &&
            pol_sess_cookie_check(o->key, v, vl, id) == 0)
            return true;
    }
    return false;
}

/* Answers @p status with a short text (no caching: these answers are per browser). */
static pol_verdict_t respond(pol_call_t *call, int status, const char *text)
{
    call->status = status;
    call->deny_layer = "oauth2";
    buf_reset(&call->resp_body);
    if (buf_append_str(&call->resp_body, text) < 0)
        buf_reset(&call->resp_body);
    (void)pol_call_resp_header(call, "cache-control", "no-store");
    return POL_RESPOND;
}

/* A 302 to @p location that also sets the session cookie for @p id. */
static pol_verdict_t redirect(const oauth2_t *o, pol_call_t *call, const char *cname,
                              const pol_sess_id_t *id, int64_t max_age, const char *location)
{
    char cookie[POL_SESS_COOKIE_LEN + 1], sc[COOKIE_NAME_MAX + POL_SESS_COOKIE_LEN + 128];
    pol_sess_cookie_make(o->key, id, cookie);
    snprintf(sc, sizeof(sc), "%s=%s; Path=/; Max-Age=%lld; HttpOnly; SameSite=Lax%s", cname, cookie,
             (long long)max_age, o->force_https ? "; Secure" : "");
    respond(call, 302, "Found");
    if (pol_call_resp_header(call, "location", location) < 0 ||
        pol_call_resp_header(call, "set-cookie", sc) < 0)
        return pol_call_reject(call, 500);
    return POL_RESPOND;
}

/* The URL the browser asked for: on appHttpPipeline the app's URL as the caller reached it
 * (resource_base + path), on httpPipeline this sidecar's origin + the path as received. */
static int original_url(const pol_call_t *call, buf_t *out)
{
    const char *base = call->resource_base ? call->resource_base : "";
    size_t blen = strlen(base);
    int rc;

    if (call->side == POL_SIDE_HTTP) {
        const char *s = strstr(base, "://");
        const char *p = s ? strchr(s + 3, '/') : NULL;
        if (p != NULL)
            blen = (size_t)(p - base);
    }
    rc = buf_append(out, base, blen);
    rc = rc ? rc : path_escape(out, call->path, call->path_len, call->side == POL_SIDE_HTTP);
    if (rc == 0 && call->query != NULL && call->query_len > 0) {
        rc = buf_append(out, "?", 1);
        rc = rc ? rc : buf_append(out, call->query, call->query_len);
    }
    return rc;
}

/* No session token and no state: remember where the browser wanted to go, send it to log in. */
static pol_verdict_t start_login(oauth2_t *o, pol_call_t *call, const char *cname,
                                 const pol_sess_id_t *cur, int64_t now)
{
    char state[POL_SESS_STATE_LEN + 1];
    pol_sess_id_t id;
    bool is_new;
    buf_t url, loc;
    pol_verdict_t v;
    int rc;

    buf_init(&url, POL_SESS_URL_MAX);
    buf_init(&loc, 3 * 1024 + 16 * 1024);
    rc = original_url(call, &url);
    if (rc < 0) {
        buf_free(&url);
        return pol_call_reject(call, 414);
    }
    rc = pol_sess_state_new(state);
    rc = rc ? rc
            : pol_sess_begin(o->store, cur, state, buf_ptr(&url), now, POL_OAUTH2_LOGIN_TTL_S, &id,
                             &is_new);
    rc = rc ? rc : buf_append_str(&loc, o->auth_url);
    rc = rc ? rc : buf_append(&loc, strchr(o->auth_url, '?') ? "&" : "?", 1);
    rc = rc ? rc : buf_append(&loc, buf_ptr(&o->auth_query), o->auth_query.len);
    rc = rc ? rc : buf_printf(&loc, "&state=%s", state);
    if (rc < 0) {
        log_warn("oauth2", "%s: cannot start a login: %s", o->name, err_str(rc));
        v = pol_call_reject(call, 500);
    } else {
        log_debug("oauth2", "%s: %s session, login started", o->name, is_new ? "new" : "existing");
        v = redirect(o, call, cname, &id, POL_OAUTH2_LOGIN_TTL_S, buf_ptr(&loc));
    }
    buf_free(&url);
    buf_free(&loc);
    return v;
}

/* --- the code exchange (thread pool) -----------------------------------------------------------
 */

typedef struct xjob {
    uv_work_t work;
    oauth2_t *o;
    pol_call_t *call;
    pol_sess_id_t id;                   /* the session that started the login */
    char cname[COOKIE_NAME_MAX];        /* its cookie's name */
    char *code;                         /* owned; wiped */
    buf_t url;                          /* where the browser returns */
    int rc;                             /* exchange outcome */
    char reason[200];                   /* for the log (no secrets) */
    char value[POL_SESS_VALUE_MAX + 1]; /* "<type> <token>"; wiped */
    int64_t ttl;                        /* seconds the token lives */
} xjob_t;

static void xjob_free(xjob_t *j)
{
    if (j->code != NULL) {
        OPENSSL_cleanse(j->code, strlen(j->code));
        mem_free(j->code);
    }
    OPENSSL_cleanse(j->value, sizeof(j->value));
    buf_free(&j->url);
    mem_free(j);
}

static void do_exchange(uv_work_t *w)
{
    xjob_t *j = w->data;
    const oauth2_t *o = j->o;
    err_detail_t d = {{0}};
    uint64_t secs = 0;
    buf_t head;
    int rc;

    buf_init(&head, POL_OAUTH2_CODE_MAX * 3 + 4096);
    rc = buf_append_str(&head, "grant_type=authorization_code&code=");
    rc = rc ? rc : pol__form_escape(&head, j->code);
    rc = rc ? rc : buf_append_str(&head, "&redirect_uri=");
    rc = rc ? rc : pol__form_escape(&head, o->redirect_url);
    if (rc == 0) {
        pol_token_req_t r = {.token_url = o->token_url,
                             .client_id = o->client_id,
                             .secret = o->secret,
                             .style = POL_AUTH_AUTO,
                             .head = head.ptr,
                             .head_len = head.len};
        rc = pol__token_fetch(&r, j->value, sizeof(j->value), &secs, &d);
    } else {
        rc = err_set(&d, ERR_TOO_LARGE, "token request too large");
    }
    if (head.ptr != NULL)
        OPENSSL_cleanse(head.ptr, head.len);
    buf_free(&head);
    j->ttl = secs > 0 ? (int64_t)secs : POL_OAUTH2_TTL_DEFAULT_S;
    if (j->ttl > POL_OAUTH2_TTL_MAX_S)
        j->ttl = POL_OAUTH2_TTL_MAX_S;
    j->rc = rc;
    if (rc < 0)
        str_copy(j->reason, sizeof(j->reason), d.msg);
}

static void after_exchange(uv_work_t *w, int status)
{
    xjob_t *j = w->data;
    oauth2_t *o = j->o;
    pol_call_t *call = j->call;
    pol_verdict_t v;
    int rc = status < 0 ? status : j->rc;

    if (rc == 0)
        rc = pol_sess_login(o->store, &j->id, j->value, pol__mono_s(), j->ttl);
    if (rc < 0) {
        log_warn("oauth2", "%s: code exchange at %s failed: %s", o->name, o->token_url,
                 j->reason[0] ? j->reason : err_str(rc));
        v = respond(call, 500, "Internal Server Error");
    } else {
        buf_t back;
        buf_init(&back, POL_SESS_URL_MAX + 8);
        if (o->force_https && strncmp(buf_ptr(&j->url), "http://", 7) == 0)
            rc = buf_printf(&back, "https://%s", buf_ptr(&j->url) + 7);
        else
            rc = buf_append_str(&back, buf_ptr(&j->url));
        log_info("oauth2", "%s: login completed (session valid for %llds)", o->name,
                 (long long)j->ttl);
        v = rc < 0 ? pol_call_reject(call, 500)
                   : redirect(o, call, j->cname, &j->id, j->ttl, buf_ptr(&back));
        buf_free(&back);
    }
    xjob_free(j);
    pol_call_resume(call, v);
}

/* The provider sent the browser back with state (and, we hope, code). */
static pol_verdict_t finish_login(oauth2_t *o, pol_call_t *call, const char *cname,
                                  const pol_sess_id_t *id, bool have_id, const char *state,
                                  int64_t now)
{
    buf_t code;
    xjob_t *j;
    bool has_code;

    buf_init(&code, POL_OAUTH2_CODE_MAX);
    has_code = pol_query_get(call->query, call->query_len, "code", &code) == 0 && code.len > 0;
    j = mem_calloc(sizeof(*j));
    buf_init(&j->url, POL_SESS_URL_MAX);
    if (!have_id || pol_sess_take(o->store, id, state, has_code, now, &j->url) < 0) {
        log_debug("oauth2", "%s: callback with a state this session did not issue", o->name);
        buf_free(&code);
        xjob_free(j);
        return respond(call, 400, "invalid state");
    }
    if (!has_code) {
        buf_free(&code);
        xjob_free(j);
        return respond(call, 400, "code not found");
    }
    j->o = o;
    j->call = call;
    j->id = *id;
    str_copy(j->cname, sizeof(j->cname), cname);
    j->code = buf_take(&code);
    j->work.data = j;
    if (call->loop == NULL ||
        uv_queue_work(call->loop, &j->work, do_exchange, after_exchange) < 0) {
        xjob_free(j);
        return pol_call_reject(call, 500);
    }
    return POL_PENDING;
}

static pol_verdict_t o2_handle(void *inst, pol_call_t *call)
{
    oauth2_t *o = inst;
    char cname[COOKIE_NAME_MAX], value[POL_SESS_VALUE_MAX + 1];
    pol_sess_id_t id;
    bool have_id;
    buf_t state;
    int64_t now = pol__mono_s();
    pol_verdict_t v;
    int rc;

    if (o->has_filter && !pol__path_matches(&o->filter, call->path, call->path_len))
        return POL_NEXT;
    cookie_name(o, call, cname);
    have_id = session_of(o, call, cname, &id);
    if (have_id && pol_sess_value(o->store, &id, now, value, sizeof(value)) == 0) {
        rc = pol_call_set_header(call, o->header, value);
        OPENSSL_cleanse(value, strlen(value));
        return rc < 0 ? pol_call_reject(call, 500) : POL_NEXT;
    }
    buf_init(&state, POL_OAUTH2_PARAM_MAX);
    rc = pol_query_get(call->query, call->query_len, "state", &state);
    if (rc == ERR_NOT_FOUND || (rc == 0 && state.len == 0))
        v = start_login(o, call, cname, have_id ? &id : NULL, now);
    else if (rc < 0)
        v = respond(call, 400, "invalid state");
    else
        v = finish_login(o, call, cname, &id, have_id, buf_ptr(&state), now);
    buf_free(&state);
    return v;
}

const pol_mw_ops_t pol_mw_oauth2 = {
    .type = "middleware.http.oauth2",
    .create = o2_create,
    .destroy = o2_destroy,
    .body_limit = o2_body_limit,
    .handle = o2_handle,
};
