#include "invoke/invoke_int.h"
#include "test.h"

/* The route borrows the query from the head, so the head lives until the next call. */
static net_head_t h;

static int route(const char *url, const char *hname, const char *hval, invoke_route_t *r)
{
    err_detail_t d = {{0}};
    int rc;

    net_head_free(&h);
    net_head_init(&h);
    if (net_head_set_url(&h, url, strlen(url)) < 0)
        return -1;
    if (hname && net_head_add(&h, hname, strlen(hname), hval, strlen(hval)) < 0)
        return -1;
    invoke_route_init(r);
    rc = invoke_route_parse(&h, r, &d);
    return rc;
}

TEST(url_form)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/mcp-server/method/mcp?x=1&y=2", NULL, NULL, &r), 0);
    ASSERT_STREQ(r.target, "mcp-server");
    ASSERT_STREQ(buf_ptr(&r.method), "mcp");
    ASSERT_MEMEQ(r.query, r.query_len, "x=1&y=2");
    invoke_route_free(&r);
}

TEST(url_form_nested_method_and_namespace)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/app.prod/method/a/b/../c//d/./e", NULL, NULL, &r), 0);
    ASSERT_STREQ(r.target, "app.prod");
    ASSERT_STREQ(buf_ptr(&r.method), "a/c/d/e");
    invoke_route_free(&r);
}

TEST(url_form_encoded_slash_becomes_separator)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%2Fb", NULL, NULL, &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "a/b");
    invoke_route_free(&r);
}

TEST(url_form_dotdot_cannot_escape)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/app/method/../../admin", NULL, NULL, &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "admin");
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/%2e%2e/%2e%2e/admin", NULL, NULL, &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "admin");
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/..", NULL, NULL, &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "");
    invoke_route_free(&r);
}

TEST(url_form_empty_method)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/app/method/", NULL, NULL, &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "");
    invoke_route_free(&r);
}

TEST(url_form_target_query_unescaped)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/http%253A%252F%252Fexample.com/method/x", NULL, NULL, &r), 0);
    ASSERT_STREQ(r.target, "http://example.com");
    invoke_route_free(&r);
}

TEST(forbidden_characters)
{
    invoke_route_t r;
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%00b", NULL, NULL, &r), ERR_INVOKE_BAD_METHOD);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%3Fb", NULL, NULL, &r), ERR_INVOKE_BAD_METHOD);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%23b", NULL, NULL, &r), ERR_INVOKE_BAD_METHOD);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%0Ab", NULL, NULL, &r), ERR_INVOKE_BAD_METHOD);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/a%zzb", NULL, NULL, &r), ERR_NET_BAD_REQUEST);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app/method/a#frag", NULL, NULL, &r), ERR_NET_BAD_REQUEST);
    invoke_route_free(&r);
}

TEST(target_with_control_bytes_refused)
{
    invoke_route_t r;
    /* %2500 is "%00" after the path is decoded, then NUL after the target is: it must not cut
     * the target short. */
    ASSERT_EQ(route("/v1.0/invoke/app%2500evil/method/x", NULL, NULL, &r), ERR_INVOKE_BAD_APP_ID);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/a%0D%0AX-A:1/method/x", NULL, NULL, &r), ERR_INVOKE_BAD_APP_ID);
    invoke_route_free(&r);
    ASSERT_EQ(route("/x", "dapr-app-id", "a\x01b", &r), ERR_INVOKE_BAD_APP_ID);
    invoke_route_free(&r);
    /* "dapr-app-id:a\nb" */
    ASSERT_EQ(route("/x", "authorization", "Basic ZGFwci1hcHAtaWQ6YQpi", &r),
              ERR_INVOKE_BAD_APP_ID);
    invoke_route_free(&r);
}

TEST(header_form_uses_whole_path)
{
    invoke_route_t r;
    ASSERT_EQ(route("/mcp?a=b", "dapr-app-id", "mcp-server", &r), 0);
    ASSERT_STREQ(r.target, "mcp-server");
    ASSERT_STREQ(buf_ptr(&r.method), "mcp");
    ASSERT(r.from_header);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/other/method/x", "Dapr-App-Id", "hdr", &r), 0);
    ASSERT_STREQ(r.target, "hdr");
    ASSERT_STREQ(buf_ptr(&r.method), "v1.0/invoke/other/method/x");
    invoke_route_free(&r);
    ASSERT_EQ(route("/", "dapr-app-id", "x", &r), 0);
    ASSERT_STREQ(buf_ptr(&r.method), "");
    invoke_route_free(&r);
}

TEST(basic_auth_form)
{
    invoke_route_t r;
    /* base64("DAPR-APP-ID:svc") */
    ASSERT_EQ(route("/orders/1", "authorization", "Basic REFQUi1BUFAtSUQ6c3Zj", &r), 0);
    ASSERT_STREQ(r.target, "svc");
    ASSERT_STREQ(buf_ptr(&r.method), "orders/1");
    invoke_route_free(&r);
}

TEST(no_target)
{
    invoke_route_t r;
    ASSERT_EQ(route("/foo", NULL, NULL, &r), ERR_INVOKE_NO_APP_ID);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke/app", NULL, NULL, &r), ERR_INVOKE_NO_APP_ID);
    invoke_route_free(&r);
    ASSERT_EQ(route("/v1.0/invoke//method/x", NULL, NULL, &r), ERR_INVOKE_NO_APP_ID);
    invoke_route_free(&r);
}

TEST(path_clean_matches_go)
{
    static const char *cases[][2] = {
        {"", "."},
        {"/", "/"},
        {"abc", "abc"},
        {"a/b/c", "a/b/c"},
        {"a//b", "a/b"},
        {"a/./b", "a/b"},
        {"a/b/..", "a"},
        {"/../a", "/a"},
        {"../a", "../a"},
        {"../../a/..", "../.."},
        {"a/../..", ".."},
        {"/a/b/", "/a/b"},
        {"abc/def/../../..", ".."},
        {"./", "."},
        {"/..", "/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        buf_t b;
        buf_init(&b, 100);
        ASSERT_EQ(invoke_path_clean(cases[i][0], strlen(cases[i][0]), &b), 0);
        if (strcmp(buf_ptr(&b), cases[i][1]) != 0)
            fprintf(stderr, "  clean(%s) = %s, want %s\n", cases[i][0], buf_ptr(&b), cases[i][1]);
        ASSERT_STREQ(buf_ptr(&b), cases[i][1]);
        buf_free(&b);
    }
}

TEST(split_target)
{
    char id[64], ns[64];
    err_detail_t d;
    ASSERT_EQ(invoke_split_target("app", "default", id, sizeof(id), ns, sizeof(ns), &d), 0);
    ASSERT_STREQ(id, "app");
    ASSERT_STREQ(ns, "default");
    ASSERT_EQ(invoke_split_target("app.prod", "default", id, sizeof(id), ns, sizeof(ns), &d), 0);
    ASSERT_STREQ(ns, "prod");
    ASSERT_EQ(invoke_split_target("a.b.c", "default", id, sizeof(id), ns, sizeof(ns), &d),
              ERR_INVOKE_BAD_APP_ID);
    ASSERT_STREQ(d.msg, "invalid app id a.b.c");
}

TEST(zz_cleanup)
{
    net_head_free(&h);
}

TEST(escape_for_wire)
{
    buf_t b;
    buf_init(&b, 100);
    ASSERT_EQ(invoke_path_escape(&b, "a b/%c@:x", 9), 0);
    ASSERT_STREQ(buf_ptr(&b), "a%20b/%25c@:x");
    buf_free(&b);
}
