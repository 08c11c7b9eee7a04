/*
 * middleware.http.oauth2clientcredentials — an OAuth2 client-credentials token added to requests
 * (spec dapr.md §4.4), so an app reaches a protected server without holding credentials.
 *
 * One token per middleware instance, shared by every worker: the hot path takes a short lock to
 * copy the cached "<type> <token>" value. A missing or expired token is fetched on libuv's thread
 * pool; requests that arrive during a fetch wait for that one fetch (one token request per token
 * lifetime, not one per call). A token nearing expiry (last POL_CC_EARLY_PCT of its lifetime) is
 * refreshed in the background while the current one is still used. Unlike Dapr (which lets the
 * request through with an empty 200), a failed token request answers 500 with a plain reason.
 * Neither the client secret nor the token is ever logged.
 */
#include <jansson.h>
#include <openssl/evp.h>
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

#define POL_CC_EARLY_PCT 10     /* refresh when this share of the lifetime is left */
#define POL_CC_WAIT_MS 15000    /* longest a request waits for a running fetch */
#define POL_CC_DEFAULT_TTL 3600 /* lifetime assumed when the server gives no expires_in */

typedef struct occ {
    char name[128];
    char token_url[1024];
    char header[128];
    char client_id[256];
    char *secret;     /* owned; zeroed on free */
    buf_t form_extra; /* "&scope=...&<endpointParamsQuery>" */
    int auth_style;   /* 0 auto, 1 params, 2 basic */
    bool has_filter;
    regex_t filter;
    uv_mutex_t mu;
    uv_cond_t cv;
    char value[8192]; /* "<type> <token>"; "" = none */
    int64_t exp;      /* monotonic seconds */
    int64_t early;    /* monotonic seconds after which a background refresh starts */
    bool fetching;
    int64_t fetches; /* token requests made (for logs) */
} occ_t;

static int64_t mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

/* application/x-www-form-urlencoded. */
static int form_escape(buf_t *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;
    for (; rc == 0 && *s; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            rc = buf_append(b, s, 1);
        } else if (c == ' ') {
            rc = buf_append(b, "+", 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, e, 3);
        }
    }
    return rc;
}

static void cc_destroy(void *inst)
{
    occ_t *c = inst;
    if (c == NULL)
        return;
    if (c->secret != NULL) {
        OPENSSL_cleanse(c->secret, strlen(c->secret));
        mem_free(c->secret);
    }
    OPENSSL_cleanse(c->value, sizeof(c->value));
    buf_free(&c->form_extra);
    if (c->has_filter)
        regfree(&c->filter);
    uv_cond_destroy(&c->cv);
    uv_mutex_destroy(&c->mu);
    mem_free(c);
}

static int cc_create(const res_component_t *comp, void **inst, err_detail_t *d)
{
    static const char *const req[] = {"clientID", "clientSecret", "tokenURL", "headerName"};
    const char *scopes = res_component_meta(comp, "scopes");
    const char *params = res_component_meta(comp, "endpointParamsQuery");
    const char *style = res_component_meta(comp, "authStyle");
    const char *filter = res_component_meta(comp, "pathFilter");
    occ_t *c;
    int rc = 0;

    for (size_t i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
        const char *v = res_component_meta(comp, req[i]);
        if (v == NULL || v[0] == '\0')
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata %s is required", comp->file,
                           comp->line, comp->name, req[i]);
    }
    c = mem_calloc(sizeof(*c));
    uv_mutex_init(&c->mu);
    uv_cond_init(&c->cv);
    buf_init(&c->form_extra, 16 * 1024);
    str_copy(c->name, sizeof(c->name), comp->name);
    str_copy(c->token_url, sizeof(c->token_url), res_component_meta(comp, "tokenURL"));
    str_copy(c->header, sizeof(c->header), res_component_meta(comp, "headerName"));
    str_copy(c->client_id, sizeof(c->client_id), res_component_meta(comp, "clientID"));
    c->secret = mem_strdup(res_component_meta(comp, "clientSecret"));
    if (style != NULL && style[0] != '\0') {
        if (strcmp(style, "0") != 0 && strcmp(style, "1") != 0 && strcmp(style, "2") != 0) {
            cc_destroy(c);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: authStyle must be 0, 1 or 2", comp->file,
                           comp->line, comp->name);
        }
        c->auth_style = style[0] - '0';
    }
    if (scopes != NULL && scopes[0] != '\0') {
        /* Dapr splits scopes on ","; the token request joins them with spaces. */
        char tmp[1024], *save = NULL, *t;
        bool first = true;
        str_copy(tmp, sizeof(tmp), scopes);
        rc = buf_append_str(&c->form_extra, "&scope=");
        for (t = strtok_r(tmp, ",", &save); rc == 0 && t != NULL; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (*t == '\0')
                continue;
            rc = first ? 0 : buf_append(&c->form_extra, "+", 1);
            rc = rc ? rc : form_escape(&c->form_extra, t);
            first = false;
        }
    }
    if (rc == 0 && params != NULL && params[0] != '\0')
        rc = buf_printf(&c->form_extra, "&%s", params[0] == '?' ? params + 1 : params);
    if (rc == 0 && filter != NULL && filter[0] != '\0') {
        if (regcomp(&c->filter, filter, REG_EXTENDED | REG_NOSUB) != 0) {
            cc_destroy(c);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: pathFilter is not a valid regex",
                           comp->file, comp->line, comp->name);
        }
        c->has_filter = true;
    }
    if (rc < 0) {
        cc_destroy(c);
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata too long", comp->file, comp->line,
                       comp->name);
    }
    *inst = c;
    return 0;
}

static size_t cc_body_limit(const void *inst, const pol_call_t *call)
{
    (void)inst;
    (void)call;
    return 0;
}

/* One token request (blocking; thread pool). basic: credentials in an Authorization header. */
static int token_request(occ_t *c, bool basic, pol_fetch_resp_t *resp, err_detail_t *d)
{
    buf_t form;
    char hdr[1200], *hdrs[2] = {NULL, NULL};
    int rc;

    buf_init(&form, 64 * 1024);
    rc = buf_append_str(&form, "grant_type=client_credentials");
    if (rc == 0 && !basic) {
        rc = buf_append_str(&form, "&client_id=");
        rc = rc ? rc : form_escape(&form, c->client_id);
        rc = rc ? rc : buf_append_str(&form, "&client_secret=");
        rc = rc ? rc : form_escape(&form, c->secret);
    }
    rc = rc ? rc : buf_append(&form, c->form_extra.ptr ? c->form_extra.ptr : "", c->form_extra.len);
    if (rc == 0 && basic) {
        /* RFC 6749 §2.3.1: each part form-encoded, then base64 of "id:secret". */
        buf_t cred;
        unsigned char b64[1100];
        buf_init(&cred, 800);
        rc = form_escape(&cred, c->client_id);
        rc = rc ? rc : buf_append(&cred, ":", 1);
        rc = rc ? rc : form_escape(&cred, c->secret);
        if (rc == 0 && cred.len * 4 / 3 + 4 < sizeof(b64)) {
            EVP_EncodeBlock(b64, (const unsigned char *)cred.ptr, (int)cred.len);
            snprintf(hdr, sizeof(hdr), "Authorization: Basic %s", b64);
            hdrs[0] = hdr;
        } else {
            rc = ERR_TOO_LARGE;
        }
        if (cred.ptr != NULL)
            OPENSSL_cleanse(cred.ptr, cred.len);
        buf_free(&cred);
        OPENSSL_cleanse(b64, sizeof(b64));
    }
    if (rc == 0) {
        pol_fetch_req_t r = {.method = "POST",
                             .url = c->token_url,
                             .content_type = "application/x-www-form-urlencoded",
                             .body = form.ptr,
                             .body_len = form.len,
                             .headers = (const char *const *)hdrs};
        rc = pol_fetch(&r, resp, d);
    } else {
        memset(resp, 0, sizeof(*resp));
        rc = err_set(d, ERR_TOO_LARGE, "token request too large");
    }
    OPENSSL_cleanse(hdr, sizeof(hdr));
    if (form.ptr != NULL)
        OPENSSL_cleanse(form.ptr, form.len);
    buf_free(&form);
    return rc;
}

/* Fetches a token and stores it (called without the lock held). */
static int fetch_token(occ_t *c, err_detail_t *d)
{
    pol_fetch_resp_t resp;
    json_t *j = NULL, *at, *tt, *ei;
    int64_t ttl = POL_CC_DEFAULT_TTL, now;
    char value[sizeof(c->value)];
    int rc = token_request(c, c->auth_style != 1, &resp, d);

    if (rc == 0 && c->auth_style == 0 && (resp.status == 400 || resp.status == 401)) {
        /* auto: the server did not take the header; try the credentials in the body. */
        pol_fetch_resp_free(&resp);
        rc = token_request(c, false, &resp, d);
    }
    if (rc == 0 && resp.status != 200)
        rc = err_set(d, ERR_POLICY_UPSTREAM, "token endpoint answered %d", resp.status);
    if (rc == 0)
        j = json_loadb(buf_ptr(&resp.body), resp.body.len, 0, NULL);
    at = json_object_get(j, "access_token");
    tt = json_object_get(j, "token_type");
    ei = json_object_get(j, "expires_in");
    if (rc == 0 && (!json_is_string(at) || json_string_length(at) == 0))
        rc = err_set(d, ERR_POLICY_UPSTREAM, "token response has no access_token");
    if (rc == 0) {
        const char *type = json_is_string(tt) ? json_string_value(tt) : "Bearer";
        if (strcasecmp(type, "bearer") == 0)
            type = "Bearer";
        if (json_is_integer(ei) && json_integer_value(ei) > 0)
            ttl = (int64_t)json_integer_value(ei);
        if ((size_t)snprintf(value, sizeof(value), "%s %s", type, json_string_value(at)) >=
            sizeof(value))
            rc = err_set(d, ERR_TOO_LARGE, "access token too long");
    }
    json_decref(j);
    if (resp.body.ptr != NULL)
        OPENSSL_cleanse(resp.body.ptr, resp.body.len);
    pol_fetch_resp_free(&resp);
    if (rc < 0)
        return rc;
    now = mono_s();
    uv_mutex_lock(&c->mu);
    memcpy(c->value, value, sizeof(value));
    c->exp = now + ttl;
    c->early = now + ttl - (ttl * POL_CC_EARLY_PCT + 99) / 100;
    c->fetches++;
    uv_mutex_unlock(&c->mu);
    OPENSSL_cleanse(value, sizeof(value));
    log_info("oauth2cc", "%s: token obtained (expires in %llds, request #%lld)", c->name,
             (long long)ttl, (long long)c->fetches);
    return 0;
}

/* Thread pool: get a token, either by fetching it or by waiting for the fetch in progress. */
typedef struct job {
    uv_work_t work;
    occ_t *c;
    pol_call_t *call; /* NULL for a background refresh */
    int rc;
    char reason[200];
} job_t;

static void do_job(uv_work_t *w)
{
    job_t *j = w->data;
    occ_t *c = j->c;
    err_detail_t d = {{0}};
    bool mine = false;

    uv_mutex_lock(&c->mu);
    if (j->call != NULL) {
        uint64_t waited = 0;
        while (c->fetching && waited < POL_CC_WAIT_MS) {
            (void)uv_cond_timedwait(&c->cv, &c->mu, 100 * 1000000ull);
            waited += 100;
        }
        if (c->value[0] != '\0' && mono_s() < c->exp) {
            uv_mutex_unlock(&c->mu);
            j->rc = 0;
            return;
        }
    }
    if (!c->fetching) {
        c->fetching = true;
        mine = true;
    }
    uv_mutex_unlock(&c->mu);
    if (!mine) {
        j->rc = ERR_TIMEOUT;
        str_copy(j->reason, sizeof(j->reason), "token request still running");
        return;
    }
    j->rc = fetch_token(c, &d);
    if (j->rc < 0) {
        str_copy(j->reason, sizeof(j->reason), d.msg);
        log_warn("oauth2cc", "%s: token request to %s failed: %s", c->name, c->token_url, d.msg);
    }
    uv_mutex_lock(&c->mu);
    c->fetching = false;
    uv_cond_broadcast(&c->cv);
    uv_mutex_unlock(&c->mu);
}

/* Copies the cached token into the request; false when there is none valid. */
static bool apply(occ_t *c, pol_call_t *call, bool *early)
{
    bool ok;
    int64_t now = mono_s();
    uv_mutex_lock(&c->mu);
    ok = c->value[0] != '\0' && now < c->exp;
    *early = ok && now >= c->early && !c->fetching;
    if (ok && pol_call_set_header(call, c->header, c->value) < 0)
        ok = false;
    uv_mutex_unlock(&c->mu);
    return ok;
}

static void after_job(uv_work_t *w, int status)
{
    job_t *j = w->data;
    bool early;
    (void)status;
    if (j->call != NULL) {
        pol_verdict_t v = POL_NEXT;
        if (j->rc < 0 || !apply(j->c, j->call, &early)) {
            pol_call_t *call = j->call;
            call->status = 500;
            buf_reset(&call->resp_body);
            if (buf_printf(&call->resp_body,
                           "oauth2clientcredentials %s: could not obtain a token: %s\n", j->c->name,
                           j->reason[0] ? j->reason : "no token") < 0)
                buf_reset(&call->resp_body);
            v = POL_RESPOND;
        }
        pol_call_resume(j->call, v);
    }
    mem_free(j);
}

static pol_verdict_t cc_handle(void *inst, pol_call_t *call)
{
    occ_t *c = inst;
    bool early = false;
    job_t *j;

    if (c->has_filter) {
        char path[2048];
        size_t n = call->path_len < sizeof(path) - 1 ? call->path_len : sizeof(path) - 1;
        memcpy(path, call->path, n);
        path[n] = '\0';
        if (regexec(&c->filter, path, 0, NULL, 0) != 0)
            return POL_NEXT;
    }
    if (apply(c, call, &early)) {
        if (early && call->loop != NULL) {
            j = mem_calloc(sizeof(*j));
            j->c = c;
            j->work.data = j;
            if (uv_queue_work(call->loop, &j->work, do_job, after_job) != 0)
                mem_free(j);
        }
        return POL_NEXT;
    }
    j = mem_calloc(sizeof(*j));
    j->c = c;
    j->call = call;
    j->work.data = j;
    if (call->loop == NULL || uv_queue_work(call->loop, &j->work, do_job, after_job) != 0) {
        mem_free(j);
        return pol_call_reject(call, 500);
    }
    return POL_PENDING;
}

const pol_mw_ops_t pol_mw_oauth2cc = {
    .type = "middleware.http.oauth2clientcredentials",
    .create = cc_create,
    .destroy = cc_destroy,
    .body_limit = cc_body_limit,
    .handle = cc_handle,
};
