/*
 * middleware.http.oauth2 without the network: signed session cookies, the Cookie and query
 * parsers, the session store (state checks, id rotation, expiry, bounds), and the middleware's
 * decisions up to the code exchange (redirect to the provider, forged state, missing code,
 * tampered cookie, pathFilter, the session header on later requests).
 */
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "policy/mw.h"
#include "policy/policy_int.h"
#include "policy/session.h"
#include "test.h"

/* --- cookies ---------------------------------------------------------------------------------- */

TEST(cookie_roundtrip_and_tamper)
{
    unsigned char key[POL_SESS_KEY_LEN], other[POL_SESS_KEY_LEN];
    pol_sess_id_t id, got;
    char c[POL_SESS_COOKIE_LEN + 1];

    ASSERT_EQ(pol_sess_key_new(key), 0);
    ASSERT_EQ(pol_sess_key_new(other), 0);
    ASSERT_EQ(pol_sess_id_new(&id), 0);
    pol_sess_cookie_make(key, &id, c);
    ASSERT_EQ(strlen(c), POL_SESS_COOKIE_LEN);
    ASSERT_EQ(pol_sess_cookie_check(key, c, strlen(c), &got), 0);
    ASSERT(memcmp(got.b, id.b, sizeof(id.b)) == 0);
    /* Another instance's key, every single-character change, truncation, extension. */
    ASSERT_EQ(pol_sess_cookie_check(other, c, strlen(c), &got), ERR_NOT_FOUND);
    for (size_t i = 0; i < POL_SESS_COOKIE_LEN; i++) {
        char t[POL_SESS_COOKIE_LEN + 1];
        memcpy(t, c, sizeof(t));
        t[i] = t[i] == 'A' ? 'B' : 'A';
        ASSERT_EQ(pol_sess_cookie_check(key, t, strlen(t), &got), ERR_NOT_FOUND);
    }
    ASSERT_EQ(pol_sess_cookie_check(key, c, strlen(c) - 1, &got), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_cookie_check(key, "", 0, &got), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_cookie_check(key, NULL, 0, &got), ERR_NOT_FOUND);
}

TEST(state_is_random_and_url_safe)
{
    char a[POL_SESS_STATE_LEN + 1], b[POL_SESS_STATE_LEN + 1];
    ASSERT_EQ(pol_sess_state_new(a), 0);
    ASSERT_EQ(pol_sess_state_new(b), 0);
    ASSERT_EQ(strlen(a), POL_SESS_STATE_LEN);
    ASSERT(strcmp(a, b) != 0);
    ASSERT_EQ(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
              POL_SESS_STATE_LEN);
}

/* --- parsers ---------------------------------------------------------------------------------- */

static int cookie(const char *hdr, const char *name, char *out, size_t cap)
{
    const char *v;
    size_t n;
    int rc = pol_cookie_get(hdr, strlen(hdr), name, &v, &n);
    if (rc == 0)
        snprintf(out, cap, "%.*s", (int)n, v);
    return rc;
}

TEST(cookie_header_parsing)
{
    char v[64];
    ASSERT_EQ(cookie("a=1; b=2", "b", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "2");
    ASSERT_EQ(cookie("a=1;b=2;  c = 3 ", "c", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "3");
    ASSERT_EQ(cookie("x=\"quoted\"", "x", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "quoted");
    ASSERT_EQ(cookie("x=", "x", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "");
    ASSERT_EQ(cookie("x=1; x=2", "x", v, sizeof(v)), 0);
    ASSERT_STREQ(v, "1");
    ASSERT_EQ(cookie("xx=1; X=2; novalue; =3", "x", v, sizeof(v)), ERR_NOT_FOUND);
    ASSERT_EQ(cookie("", "x", v, sizeof(v)), ERR_NOT_FOUND);
    ASSERT_EQ(cookie(";;;", "x", v, sizeof(v)), ERR_NOT_FOUND);
    ASSERT_EQ(pol_cookie_get(NULL, 0, "x", NULL, NULL), ERR_NOT_FOUND);
}

static int query(const char *q, const char *name, buf_t *out)
{
    buf_reset(out);
    return pol_query_get(q, strlen(q), name, out);
}

TEST(query_parsing)
{
    buf_t b;
    buf_init(&b, 16);
    ASSERT_EQ(query("state=abc&code=x%2By+z", "code", &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "x+y z");
    ASSERT_EQ(query("state=abc&code=1", "state", &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "abc");
    ASSERT_EQ(query("st%61te=enc", "state", &b), 0); /* keys are decoded too */
    ASSERT_STREQ(buf_ptr(&b), "enc");
    ASSERT_EQ(query("a=1&a=2", "a", &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "1");
    ASSERT_EQ(query("a&b=", "a", &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "");
    ASSERT_EQ(query("a=%zz%4", "a", &b), 0); /* malformed escapes stay as they are */
    ASSERT_STREQ(buf_ptr(&b), "%zz%4");
    ASSERT_EQ(query("codex=1&xcode=2", "code", &b), ERR_NOT_FOUND);
    ASSERT_EQ(query("", "code", &b), ERR_NOT_FOUND);
    ASSERT_EQ(query("a=0123456789abcdefXYZ", "a", &b), ERR_TOO_LARGE);
    ASSERT_EQ(pol_query_get(NULL, 0, "a", &b), ERR_NOT_FOUND);
    buf_free(&b);
}

/* --- the store -------------------------------------------------------------------------------- */

TEST(store_state_is_checked_and_single_use)
{
    pol_sess_store_t *s = pol_sess_store_new(16);
    pol_sess_id_t id, id2, stranger;
    bool is_new = false;
    buf_t url;
    char v[64];

    buf_init(&url, POL_SESS_URL_MAX);
    ASSERT_EQ(pol_sess_id_new(&stranger), 0);
    ASSERT_EQ(pol_sess_begin(s, NULL, "state-1", "http://h/a?x=1", 100, 600, &id, &is_new), 0);
    ASSERT(is_new);
    /* Another tab of the same browser: same session, second pending login. */
    ASSERT_EQ(pol_sess_begin(s, &id, "state-2", "http://h/b", 100, 600, &id2, &is_new), 0);
    ASSERT(!is_new);
    ASSERT(memcmp(id.b, id2.b, sizeof(id.b)) == 0);
    ASSERT_EQ(pol_sess_store_count(s), 1);
    /* Not logged in yet. */
    ASSERT_EQ(pol_sess_value(s, &id, 101, v, sizeof(v)), ERR_NOT_FOUND);
    /* Forged or foreign states, unknown sessions. */
    ASSERT_EQ(pol_sess_take(s, &id, "state-3", true, 101, &url), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_take(s, &id, "state-", true, 101, &url), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_take(s, &id, "", true, 101, &url), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_take(s, &stranger, "state-1", true, 101, &url), ERR_NOT_FOUND);
    /* Peek, then consume: the URL comes back once. */
    ASSERT_EQ(pol_sess_take(s, &id, "state-1", false, 101, NULL), 0);
    ASSERT_EQ(pol_sess_take(s, &id, "state-1", true, 101, &url), 0);
    ASSERT_STREQ(buf_ptr(&url), "http://h/a?x=1");
    ASSERT_EQ(pol_sess_take(s, &id, "state-1", true, 101, &url), ERR_NOT_FOUND);
    buf_reset(&url);
    ASSERT_EQ(pol_sess_take(s, &id, "state-2", true, 101, &url), 0);
    ASSERT_STREQ(buf_ptr(&url), "http://h/b");
    buf_free(&url);
    pol_sess_store_free(s);
}

TEST(store_login_rotates_the_id_and_expires)
{
    pol_sess_store_t *s = pol_sess_store_new(16);
    pol_sess_id_t id, old;
    bool is_new;
    buf_t url;
    char v[64], tiny[4];

    buf_init(&url, POL_SESS_URL_MAX);
    ASSERT_EQ(pol_sess_begin(s, NULL, "st", "http://h/", 100, 600, &id, &is_new), 0);
    ASSERT_EQ(pol_sess_take(s, &id, "st", true, 101, &url), 0);
    old = id;
    ASSERT_EQ(pol_sess_login(s, &id, "Bearer tok", 102, 60), 0);
    ASSERT(memcmp(old.b, id.b, sizeof(id.b)) != 0);
    ASSERT_EQ(pol_sess_value(s, &old, 103, v, sizeof(v)), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_value(s, &id, 103, v, sizeof(v)), 0);
    ASSERT_STREQ(v, "Bearer tok");
    ASSERT_EQ(pol_sess_value(s, &id, 103, tiny, sizeof(tiny)), ERR_TOO_LARGE);
    ASSERT_EQ(pol_sess_store_count(s), 1);
    /* The token's lifetime ends the session. */
    ASSERT_EQ(pol_sess_value(s, &id, 161, v, sizeof(v)), 0);
    ASSERT_EQ(pol_sess_value(s, &id, 162, v, sizeof(v)), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_store_count(s), 0);
    /* A pending login expires too. */
    ASSERT_EQ(pol_sess_begin(s, NULL, "st2", "http://h/", 200, 10, &id, &is_new), 0);
    ASSERT_EQ(pol_sess_take(s, &id, "st2", false, 210, NULL), ERR_NOT_FOUND);
    /* A login whose session vanished meanwhile still gets one. */
    ASSERT_EQ(pol_sess_id_new(&id), 0);
    ASSERT_EQ(pol_sess_login(s, &id, "Bearer t2", 300, 60), 0);
    ASSERT_EQ(pol_sess_value(s, &id, 301, v, sizeof(v)), 0);
    ASSERT_STREQ(v, "Bearer t2");
    /* Limits. */
    ASSERT_EQ(pol_sess_login(s, &id, "", 300, 60), ERR_INVAL);
    ASSERT_EQ(pol_sess_begin(s, NULL, "", "u", 300, 60, &id, &is_new), ERR_INVAL);
    {
        char big[POL_SESS_URL_MAX + 2];
        memset(big, 'a', sizeof(big) - 1);
        big[sizeof(big) - 1] = '\0';
        ASSERT_EQ(pol_sess_begin(s, NULL, "s", big, 300, 60, &id, &is_new), ERR_TOO_LARGE);
    }
    buf_free(&url);
    pol_sess_store_free(s);
}

TEST(store_oldest_pending_login_of_a_session_makes_room)
{
    pol_sess_store_t *s = pol_sess_store_new(16);
    pol_sess_id_t id;
    bool is_new;
    char st[16];

    ASSERT_EQ(pol_sess_begin(s, NULL, "s0", "u0", 100, 600, &id, &is_new), 0);
    for (int i = 1; i <= POL_SESS_LOGINS; i++) {
        snprintf(st, sizeof(st), "s%d", i);
        ASSERT_EQ(pol_sess_begin(s, &id, st, "u", 100 + i, 600, &id, &is_new), 0);
        ASSERT(!is_new);
    }
    ASSERT_EQ(pol_sess_take(s, &id, "s0", false, 110, NULL), ERR_NOT_FOUND);
    ASSERT_EQ(pol_sess_take(s, &id, "s1", false, 110, NULL), 0);
    snprintf(st, sizeof(st), "s%d", POL_SESS_LOGINS);
    ASSERT_EQ(pol_sess_take(s, &id, st, false, 110, NULL), 0);
    pol_sess_store_free(s);
}

TEST(store_is_bounded_and_a_login_flood_keeps_logged_in_sessions)
{
    enum { MAX = 16 };
    pol_sess_store_t *s = pol_sess_store_new(MAX);
    pol_sess_id_t in[MAX / 2], id;
    bool is_new;
    char v[64];

    for (int i = 0; i < MAX / 2; i++) {
        ASSERT_EQ(pol_sess_id_new(&in[i]), 0);
        ASSERT_EQ(pol_sess_login(s, &in[i], "Bearer x", 100, 3600), 0);
    }
    /* Anyone can start logins: thousands of them never push the store past its size, and never
     * push out a logged-in session while those fit. */
    for (int i = 0; i < 5000; i++)
        ASSERT_EQ(pol_sess_begin(s, NULL, "flood", "http://h/", 100, 600, &id, &is_new), 0);
    ASSERT(pol_sess_store_count(s) <= MAX);
    for (int i = 0; i < MAX / 2; i++)
        ASSERT_EQ(pol_sess_value(s, &in[i], 101, v, sizeof(v)), 0);
    /* Logged-in sessions past the size push out the least recently used ones. */
    for (int i = 0; i < MAX * 2; i++) {
        ASSERT_EQ(pol_sess_id_new(&id), 0);
        ASSERT_EQ(pol_sess_login(s, &id, "Bearer y", 102, 3600), 0);
    }
    ASSERT_EQ(pol_sess_store_count(s), MAX);
    ASSERT_EQ(pol_sess_value(s, &id, 103, v, sizeof(v)), 0);
    ASSERT_EQ(pol_sess_value(s, &in[0], 103, v, sizeof(v)), ERR_NOT_FOUND);
    pol_sess_store_free(s);
}

/* --- the middleware, up to the code exchange ---------------------------------------------------
 */

static char k_client_id[] = "clientID", v_client_id[] = "webapp";
static char k_secret[] = "clientSecret", v_secret[] = "s3cret-value";
static char k_scopes[] = "scopes", v_scopes[] = "openid, mcp";
static char k_auth[] = "authURL", v_auth[] = "https://idp.example/auth?prompt=login";
static char k_token[] = "tokenURL", v_token[] = "https://idp.example/token";
static char k_redirect[] = "redirectURL",
            v_redirect[] = "http://127.0.0.1:3500/v1.0/invoke/web/method/callback";
static char k_filter[] = "pathFilter", v_filter[] = "^/(echo|callback)";
static char c_name[] = "login", c_ns[] = "default", c_type[] = "middleware.http.oauth2",
            c_version[] = "v1", c_file[] = "oauth2.yaml";

static res_meta_t meta[] = {
    {k_client_id, v_client_id}, {k_secret, v_secret},     {k_scopes, v_scopes}, {k_auth, v_auth},
    {k_token, v_token},         {k_redirect, v_redirect}, {k_filter, v_filter},
};

static res_component_t comp = {c_name, c_ns, c_type, c_version, c_file, 1, meta, 7};

typedef struct req {
    net_head_t head;
    pol_call_t call;
} req_t;

/* A request for the app's @p path?@p query arriving on appHttpPipeline, with @p cookie. */
static void req_init(req_t *r, const char *path, const char *query, const char *cookie)
{
    net_head_init(&r->head);
    if (cookie != NULL && net_head_add(&r->head, "cookie", 6, cookie, strlen(cookie)) < 0)
        abort();
    pol_call_init(&r->call);
    r->call.head = &r->head;
    r->call.path = path;
    r->call.path_len = strlen(path);
    r->call.query = query;
    r->call.query_len = query ? strlen(query) : 0;
    r->call.app_id = "web";
    r->call.resource_base = "http://127.0.0.1:3500/v1.0/invoke/web/method";
    r->call.side = POL_SIDE_APP;
}

static void req_free(req_t *r)
{
    pol_call_free(&r->call);
    net_head_free(&r->head);
}

static const char *resp_header(const req_t *r, const char *name)
{
    const net_header_t *h = net_head_get(&r->call.resp_headers, name);
    static char v[4096];
    if (h == NULL)
        return NULL;
    snprintf(v, sizeof(v), "%.*s", (int)h->value_len, h->value);
    return v;
}

/* "name=value" of the Set-Cookie of @p r (attributes cut). */
static void cookie_of(const req_t *r, char *out, size_t cap)
{
    const char *sc = resp_header(r, "set-cookie");
    size_t n = sc ? strcspn(sc, ";") : 0;
    snprintf(out, cap, "%.*s", (int)n, sc ? sc : "");
}

/* The state parameter of the Location of @p r. */
static void state_of(const req_t *r, char *out, size_t cap)
{
    const char *loc = resp_header(r, "location");
    const char *s = loc ? strstr(loc, "&state=") : NULL;
    snprintf(out, cap, "%s", s ? s + 7 : "");
}

TEST(middleware_redirects_checks_state_and_code)
{
    void *inst = NULL;
    err_detail_t d = {{0}};
    req_t r;
    char ck[256], st[64], q[256], forged[256];
    const char *sc;
    static const char want_loc[] =
        "https://idp.example/auth?prompt=login&access_type=offline&client_id=webapp"
        "&redirect_uri=http%3A%2F%2F127.0.0.1%3A3500%2Fv1.0%2Finvoke%2Fweb%2Fmethod%2Fcallback"
        "&response_type=code&scope=openid+mcp&state=";

    ASSERT_EQ(pol_mw_oauth2.create(&comp, &inst, &d), 0);

    /* 1. No session, no state: 302 to the provider, with a fresh signed cookie. */
    req_init(&r, "/echo/page", "x=1&y=a b", NULL);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 302);
    ASSERT(strncmp(resp_header(&r, "location"), want_loc, strlen(want_loc)) == 0);
    sc = resp_header(&r, "set-cookie");
    ASSERT(strncmp(sc, "outrigger_oauth2.web.login=", 27) == 0);
    ASSERT(strstr(sc, "; Path=/; Max-Age=600; HttpOnly; SameSite=Lax") != NULL);
    ASSERT(strstr(sc, "Secure") == NULL);
    ASSERT(strstr(resp_header(&r, "location"), v_secret) == NULL);
    ASSERT_STREQ(resp_header(&r, "cache-control"), "no-store");
    cookie_of(&r, ck, sizeof(ck));
    state_of(&r, st, sizeof(st));
    ASSERT_EQ(strlen(st), POL_SESS_STATE_LEN);
    req_free(&r);

    /* 2. The callback with a forged state: 400 "invalid state". */
    req_init(&r, "/callback", "state=forged-state-value&code=abc", ck);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 400);
    ASSERT_STREQ(buf_ptr(&r.call.resp_body), "invalid state");
    req_free(&r);

    /* 3. The right state without the cookie (another browser): 400 "invalid state". */
    snprintf(q, sizeof(q), "state=%s&code=abc", st);
    req_init(&r, "/callback", q, NULL);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 400);
    ASSERT_STREQ(buf_ptr(&r.call.resp_body), "invalid state");
    req_free(&r);

    /* 4. The right state and cookie, but the provider sent no code: 400 "code not found". */
    snprintf(q, sizeof(q), "state=%s&error=access_denied", st);
    req_init(&r, "/callback", q, ck);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 400);
    ASSERT_STREQ(buf_ptr(&r.call.resp_body), "code not found");
    req_free(&r);

    /* 5. A tampered cookie is no session: a new login starts (new cookie, new state). */
    snprintf(forged, sizeof(forged), "%s", ck);
    forged[strlen(forged) - 2] = forged[strlen(forged) - 2] == 'A' ? 'B' : 'A';
    req_init(&r, "/echo/page", NULL, forged);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 302);
    cookie_of(&r, q, sizeof(q));
    ASSERT(strcmp(q, ck) != 0);
    req_free(&r);
    /* ...and the tampered cookie cannot finish the first login either. */
    snprintf(q, sizeof(q), "state=%s&code=abc", st);
    req_init(&r, "/callback", q, forged);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 400);
    req_free(&r);

    /* 6. Paths outside pathFilter pass untouched. */
    req_init(&r, "/public", NULL, NULL);
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_NEXT);
    ASSERT_EQ(r.call.set_headers.header_count, 0);
    req_free(&r);

    pol_mw_oauth2.destroy(inst);
}

TEST(middleware_metadata_is_checked)
{
    static char plain[] = "http://idp.example/token", bad_re[] = "(", bad_hdr[] = "Bad Header";
    static char k_hdr[] = "authHeaderName";
    res_meta_t m[8];
    res_component_t c = comp;
    void *inst = NULL;
    err_detail_t d = {{0}};

    c.meta = m;
    /* Every required item. */
    for (size_t skip = 0; skip < 6; skip++) {
        size_t n = 0;
        if (skip == 2)
            continue; /* scopes are optional */
        for (size_t i = 0; i < 6; i++)
            if (i != skip)
                m[n++] = meta[i];
        c.nmeta = n;
        ASSERT_EQ(pol_mw_oauth2.create(&c, &inst, &d), ERR_RES_INVALID);
        ASSERT(strstr(d.msg, "is required") != NULL);
    }
    memcpy(m, meta, sizeof(meta));
    c.nmeta = 7;
    m[4].value = plain; /* tokens over plain http to a remote host */
    ASSERT_EQ(pol_mw_oauth2.create(&c, &inst, &d), ERR_RES_INVALID);
    ASSERT(strstr(d.msg, "tokenURL must be https") != NULL);
    m[4] = meta[4];
    m[6].value = bad_re;
    ASSERT_EQ(pol_mw_oauth2.create(&c, &inst, &d), ERR_RES_INVALID);
    m[6] = meta[6];
    m[7].name = k_hdr;
    m[7].value = bad_hdr;
    c.nmeta = 8;
    ASSERT_EQ(pol_mw_oauth2.create(&c, &inst, &d), ERR_RES_INVALID);
    ASSERT(strstr(d.msg, "authHeaderName") != NULL);
    /* No detail ever carries the secret. */
    ASSERT(strstr(d.msg, v_secret) == NULL);
}

TEST(middleware_https_cookie_and_http_pipeline_url)
{
    static char k_force[] = "forceHTTPS", v_force[] = "true";
    res_meta_t m[8];
    res_component_t c = comp;
    void *inst = NULL;
    err_detail_t d = {{0}};
    req_t r;
    char st[64];

    memcpy(m, meta, sizeof(meta));
    m[6].name = k_force; /* no pathFilter: everything is guarded */
    m[6].value = v_force;
    c.meta = m;
    c.nmeta = 7;
    ASSERT_EQ(pol_mw_oauth2.create(&c, &inst, &d), 0);
    /* On httpPipeline the path is the sidecar's own URL path. */
    req_init(&r, "/v1.0/invoke/web/method/a%20b", "q=1", NULL);
    r.call.side = POL_SIDE_HTTP;
    ASSERT_EQ(pol_mw_oauth2.handle(inst, &r.call), POL_RESPOND);
    ASSERT_EQ(r.call.status, 302);
    ASSERT(strstr(resp_header(&r, "set-cookie"), "; Secure") != NULL);
    state_of(&r, st, sizeof(st));
    ASSERT_EQ(strlen(st), POL_SESS_STATE_LEN);
    req_free(&r);
    pol_mw_oauth2.destroy(inst);
}

TEST(oauth2_scopes_and_form_escape)
{
    buf_t b;
    char big[600];

    buf_init(&b, 256);
    ASSERT_EQ(pol__scopes_put(&b, " openid, mcp ,,read:all ,a b"), 0);
    ASSERT_STREQ(buf_ptr(&b), "openid+mcp+read%3Aall+a+b");
    buf_free(&b);
    ASSERT_EQ(pol__form_escape(&b, "id:s&c=r~t/"), 0);
    ASSERT_STREQ(buf_ptr(&b), "id%3As%26c%3Dr~t%2F");
    buf_free(&b);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    ASSERT_EQ(pol__scopes_put(&b, big), ERR_TOO_LARGE);
    buf_free(&b);
}
