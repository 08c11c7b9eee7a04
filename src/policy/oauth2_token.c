/*
 * The OAuth2 token request shared by middleware.http.oauth2 (authorization code) and
 * middleware.http.oauth2clientcredentials. See policy_int.h for the contract.
 */
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/alloc.h"
#include "base/str.h"
#include "policy/fetch.h"
#include "policy/policy_int.h"
#include "policy/session.h"

#define FORM_MAX (64 * 1024) /* longest token request body */
#define CRED_MAX 800         /* longest form-encoded "id:secret" */

int pol__form_escape(buf_t *b, const char *s)
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

int pol__scopes_put(buf_t *b, const char *scopes)
{
    const char *p = scopes;
    bool first = true;
    int rc = 0;

    while (rc == 0 && *p) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char one[512];
        while (n > 0 && *p == ' ') {
            p++;
            n--;
        }
        while (n > 0 && p[n - 1] == ' ')
            n--;
        if (n > 0 && n < sizeof(one)) {
            memcpy(one, p, n);
            one[n] = '\0';
            rc = first ? 0 : buf_append(b, "+", 1);
            rc = rc ? rc : pol__form_escape(b, one);
            first = false;
        } else if (n >= sizeof(one)) {
            rc = ERR_TOO_LARGE;
        }
        p = e ? e + 1 : p + strlen(p);
    }
    return rc;
}

int pol__meta_require(const res_component_t *c, const char *const *keys, size_t n, err_detail_t *d)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = res_component_meta(c, keys[i]);
        if (v == NULL || v[0] == '\0')
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata %s is required", c->file,
                           c->line, c->name, keys[i]);
    }
    return 0;
}

int64_t pol__mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec;
}

void pol__secret_free(char *s)
{
    if (s == NULL)
        return;
    OPENSSL_cleanse(s, strlen(s));
    mem_free(s);
}

bool pol__path_matches(const regex_t *re, const char *path, size_t n)
{
    char buf[2048];

    if (n > sizeof(buf) - 1)
        n = sizeof(buf) - 1;
    memcpy(buf, path, n);
    buf[n] = '\0';
    return regexec(re, buf, 0, NULL, 0) == 0;
}

/* Writes "Authorization: Basic base64(form(id):form(secret))" into @p hdr (RFC 6749 §2.3.1). */
static int basic_header(const pol_token_req_t *r, char *hdr, size_t cap)
{
    buf_t cred;
    unsigned char b64[CRED_MAX * 4 / 3 + 8];
    int rc;

    buf_init(&cred, CRED_MAX);
    rc = pol__form_escape(&cred, r->client_id);
    rc = rc ? rc : buf_append(&cred, ":", 1);
    rc = rc ? rc : pol__form_escape(&cred, r->secret);
    if (rc == 0) {
        EVP_EncodeBlock(b64, (const unsigned char *)cred.ptr, (int)cred.len);
        if ((size_t)snprintf(hdr, cap, "Authorization: Basic %s", b64) >= cap)
            rc = ERR_TOO_LARGE;
    }
    if (cred.ptr != NULL)
        OPENSSL_cleanse(cred.ptr, cred.len);
    buf_free(&cred);
    OPENSSL_cleanse(b64, sizeof(b64));
    return rc;
}

/* One POST to the token endpoint. basic: credentials in an Authorization header. */
static int token_request(const pol_token_req_t *r, bool basic, pol_fetch_resp_t *resp,
                         err_detail_t *d)
{
    buf_t form;
    char hdr[1200];
    const char *hdrs[2] = {NULL, NULL};
    int rc;

    buf_init(&form, FORM_MAX);
    hdr[0] = '\0';
    rc = buf_append(&form, r->head, r->head_len);
    if (rc == 0 && !basic) {
        rc = buf_append_str(&form, "&client_id=");
        rc = rc ? rc : pol__form_escape(&form, r->client_id);
        rc = rc ? rc : buf_append_str(&form, "&client_secret=");
        rc = rc ? rc : pol__form_escape(&form, r->secret);
    }
    if (rc == 0 && r->tail != NULL)
        rc = buf_append(&form, r->tail, r->tail_len);
    if (rc == 0 && basic) {
        rc = basic_header(r, hdr, sizeof(hdr));
        hdrs[0] = hdr;
    }
    if (rc == 0) {
        pol_fetch_req_t req = {.method = "POST",
                               .url = r->token_url,
                               .content_type = "application/x-www-form-urlencoded",
                               .body = form.ptr,
                               .body_len = form.len,
                               .headers = hdrs};
        rc = pol_fetch(&req, resp, d);
    } else {
        memset(resp, 0, sizeof(*resp));
        buf_init(&resp->body, 0);
        rc = err_set(d, ERR_TOO_LARGE, "token request too large");
    }
    OPENSSL_cleanse(hdr, sizeof(hdr));
    if (form.ptr != NULL)
        OPENSSL_cleanse(form.ptr, form.len);
    buf_free(&form);
    return rc;
}

/* Go's Token.Type(): the conventional spelling of the common types, Bearer when absent. */
static const char *token_type(const char *t)
{
    if (t == NULL || t[0] == '\0' || strcasecmp(t, "bearer") == 0)
        return "Bearer";
    if (strcasecmp(t, "mac") == 0)
        return "MAC";
    if (strcasecmp(t, "basic") == 0)
        return "Basic";
    return t;
}

/* RFC 6749 A.12: an access_token is visible ASCII (VSCHAR, %x20-7E); A.13: a token_type is
 * name-chars (ALPHA, DIGIT, "-", ".", "_"). Anything else (NUL, CR, LF above all) would cut or
 * forge the "<type> <token>" header the value goes into. */
static bool token_ok(const buf_t *at, const buf_t *tt)
{
    for (size_t i = 0; i < at->len; i++)
        if ((unsigned char)at->ptr[i] < 0x20 || (unsigned char)at->ptr[i] > 0x7e)
            return false;
    for (size_t i = 0; i < tt->len; i++) {
        char c = tt->ptr[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_'))
            return false;
    }
    return true;
}

int pol__token_parse(const pol_fetch_resp_t *resp, char *value, size_t cap, uint64_t *secs,
                     err_detail_t *d)
{
    const char *body = buf_ptr(&resp->body);
    bool form = strncasecmp(resp->content_type, "application/x-www-form-urlencoded", 33) == 0 ||
                strncasecmp(resp->content_type, "text/plain", 10) == 0;
    buf_t at, tt, ei;
    int rc = 0, n;

    *secs = 0;
    buf_init(&at, cap);
    buf_init(&tt, 64);
    buf_init(&ei, 32);
    if (form) {
        if (pol_query_get(body, resp->body.len, "access_token", &at) < 0)
            rc = err_set(d, ERR_POLICY_UPSTREAM, "token response has no access_token");
        /* Optional fields: absent or oversized ones leave their buffer empty. */
        if (pol_query_get(body, resp->body.len, "token_type", &tt) < 0)
            buf_reset(&tt);
        if (pol_query_get(body, resp->body.len, "expires_in", &ei) < 0)
            buf_reset(&ei);
    } else {
        json_t *j = json_loadb(body, resp->body.len, 0, NULL);
        json_t *a = json_object_get(j, "access_token"), *t = json_object_get(j, "token_type");
        json_t *e = json_object_get(j, "expires_in");
        if (!json_is_string(a) || buf_append_str(&at, json_string_value(a)) < 0)
            rc = err_set(d, ERR_POLICY_UPSTREAM, "token response has no access_token");
        if (json_is_string(t) && buf_append_str(&tt, json_string_value(t)) < 0)
            buf_reset(&tt);
        if (json_is_integer(e) && json_integer_value(e) > 0)
            *secs = (uint64_t)json_integer_value(e);
        else if (json_is_string(e) && buf_append_str(&ei, json_string_value(e)) < 0)
            buf_reset(&ei);
        if (j != NULL && at.ptr != NULL)
            OPENSSL_cleanse((char *)json_string_value(a), json_string_length(a));
        json_decref(j);
    }
    if (rc == 0 && at.len == 0)
        rc = err_set(d, ERR_POLICY_UPSTREAM, "token response has an empty access_token");
    if (rc == 0 && !token_ok(&at, &tt))
        rc = err_set(d, ERR_POLICY_UPSTREAM,
                     "token response has a malformed access_token or "
                     "token_type");
    if (rc == 0 && ei.len > 0 && str_u64(ei.ptr, ei.len, UINT32_MAX, secs) < 0)
        *secs = 0;
    if (rc == 0) {
        n = snprintf(value, cap, "%s %s", token_type(buf_ptr(&tt)), buf_ptr(&at));
        if (n < 0 || (size_t)n >= cap)
            rc = err_set(d, ERR_TOO_LARGE, "access token too long");
    }
    if (at.ptr != NULL)
        OPENSSL_cleanse(at.ptr, at.len);
    buf_free(&at);
    buf_free(&tt);
    buf_free(&ei);
    return rc;
}

/* An OAuth2 error code from a failed token response, for the log ("" if none or odd). */
static void error_code(const pol_fetch_resp_t *resp, char *out, size_t cap)
{
    json_t *j = json_loadb(buf_ptr(&resp->body), resp->body.len, 0, NULL);
    json_t *e = json_object_get(j, "error");
    out[0] = '\0';
    if (json_is_string(e)) {
        const char *s = json_string_value(e);
        size_t i;
        /* RFC 6749 §5.2: error codes are %x20-21 / %x23-5B / %x5D-7E; keep it short. */
        for (i = 0;
             i + 1 < cap && i < 48 && s[i] >= 0x20 && s[i] <= 0x7e && s[i] != '"' && s[i] != '\\';
             i++)
            out[i] = s[i];
        out[i] = '\0';
    }
    json_decref(j);
}

int pol__token_fetch(const pol_token_req_t *r, char *value, size_t cap, uint64_t *expires_in_s,
                     err_detail_t *d)
{
    pol_fetch_resp_t resp;
    char ecode[64] = "";
    int rc = token_request(r, r->style != POL_AUTH_PARAMS, &resp, d);

    if (rc == 0 && r->style == POL_AUTH_AUTO && (resp.status == 400 || resp.status == 401)) {
        /* Go's AuthStyleAutoDetect: the server did not take the header; try the body. */
        pol_fetch_resp_free(&resp);
        rc = token_request(r, false, &resp, d);
    }
    if (rc == 0 && resp.status != 200) {
        error_code(&resp, ecode, sizeof(ecode));
        rc = err_set(d, ERR_POLICY_UPSTREAM, "token endpoint answered %d%s%s", resp.status,
                     ecode[0] ? " " : "", ecode);
    }
    if (rc == 0)
        rc = pol__token_parse(&resp, value, cap, expires_in_s, d);
    if (resp.body.ptr != NULL)
        OPENSSL_cleanse(resp.body.ptr, resp.body.len);
    pol_fetch_resp_free(&resp);
    return rc;
}
