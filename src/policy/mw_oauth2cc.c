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
#include <openssl/crypto.h>
#include <regex.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "policy/fetch.h"
#include "policy/mw.h"
#include "policy/policy_int.h"

#define POL_CC_EARLY_PCT 10     /* refresh when this share of the lifetime is left */
#define POL_CC_WAIT_MS 15000    /* longest a request waits for a running fetch */
#define POL_CC_DEFAULT_TTL 3600 /* lifetime assumed when the server gives no expires_in */

typedef struct occ {
    atomic_int refs; /* the pipeline's, plus one per job on the thread pool (a reload may drop the
                        pipeline while a background refresh still runs) */
    char name[128];
    char token_url[1024];
    char header[128];
    char client_id[256];
    char *secret;     /* owned; zeroed on free */
    buf_t form_extra; /* "&scope=...&<endpointParamsQuery>" */
    pol_auth_style_t auth_style;
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

static void cc_destroy(void *inst)
{
    occ_t *c = inst;
    if (c == NULL || atomic_fetch_sub(&c->refs, 1) != 1)
        return;
    pol__secret_free(c->secret);
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

    rc = pol__meta_require(comp, req, sizeof(req) / sizeof(req[0]), d);
    if (rc < 0)
        return rc;
    c = mem_calloc(sizeof(*c));
    atomic_init(&c->refs, 1);
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
        c->auth_style = (pol_auth_style_t)(style[0] - '0');
    }
    if (scopes != NULL && scopes[0] != '\0') {
        /* Dapr splits scopes on ","; the token request joins them with spaces. */
        rc = buf_append_str(&c->form_extra, "&scope=");
        rc = rc ? rc : pol__scopes_put(&c->form_extra, scopes);
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

/* Fetches a token and stores it (called without the lock held). */
static int fetch_token(occ_t *c, err_detail_t *d)
{
    static const char head[] = "grant_type=client_credentials";
    pol_token_req_t r = {.token_url = c->token_url,
                         .client_id = c->client_id,
                         .secret = c->secret,
                         .style = c->auth_style,
                         .head = head,
                         .head_len = sizeof(head) - 1,
                         .tail = c->form_extra.ptr,
                         .tail_len = c->form_extra.len};
    uint64_t secs = 0;
    int64_t ttl, now;
    char value[sizeof(c->value)];
    int rc = pol__token_fetch(&r, value, sizeof(value), &secs, d);

    if (rc < 0)
        return rc;
    ttl = secs > 0 ? (int64_t)secs : POL_CC_DEFAULT_TTL;
    now = pol__mono_s();
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
        if (c->value[0] != '\0' && pol__mono_s() < c->exp) {
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
    int64_t now = pol__mono_s();
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
    cc_destroy(j->c); /* the job's reference */
    mem_free(j);
}

static pol_verdict_t cc_handle(void *inst, pol_call_t *call)
{
    occ_t *c = inst;
    bool early = false;
    job_t *j;

    if (c->has_filter && !pol__path_matches(&c->filter, call->path, call->path_len))
        return POL_NEXT;
    if (apply(c, call, &early)) {
        if (early && call->loop != NULL) {
            j = mem_calloc(sizeof(*j));
            j->c = c;
            atomic_fetch_add(&c->refs, 1);
            j->work.data = j;
            if (uv_queue_work(call->loop, &j->work, do_job, after_job) != 0) {
                cc_destroy(c);
                mem_free(j);
            }
        }
        return POL_NEXT;
    }
    j = mem_calloc(sizeof(*j));
    j->c = c;
    atomic_fetch_add(&c->refs, 1);
    j->call = call;
    j->work.data = j;
    if (call->loop == NULL || uv_queue_work(call->loop, &j->work, do_job, after_job) != 0) {
        cc_destroy(c);
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
