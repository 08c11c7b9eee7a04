#include "invoke/invoke_int.h"
#include "test.h"

static int parse(const char *url, invoke_ext_target_t *t)
{
    err_detail_t d = {{0}};
    *t = (invoke_ext_target_t){0};
    return invoke__ext_parse_url(url, t, &d);
}

TEST(ext_url_forms)
{
    invoke_ext_target_t t;

    ASSERT_EQ(parse("http://127.0.0.1:8080", &t), 0);
    ASSERT(!t.tls_on);
    ASSERT_STREQ(t.host, "127.0.0.1");
    ASSERT_EQ(t.port, 8080);
    ASSERT_STREQ(t.authority, "127.0.0.1:8080");
    ASSERT_EQ(t.path_len, 0);

    ASSERT_EQ(parse("https://mcp.example.com/api/v1//", &t), 0);
    ASSERT(t.tls_on);
    ASSERT_STREQ(t.host, "mcp.example.com");
    ASSERT_EQ(t.port, 443);
    ASSERT_STREQ(t.authority, "mcp.example.com");
    ASSERT_EQ(t.path_len, 7);
    ASSERT(strncmp(t.path, "/api/v1", t.path_len) == 0);

    ASSERT_EQ(parse("http://[::1]:9000/x", &t), 0);
    ASSERT_STREQ(t.host, "::1");
    ASSERT_EQ(t.port, 9000);
    ASSERT_STREQ(t.authority, "[::1]:9000");

    ASSERT_EQ(parse("http://[::1]/", &t), 0);
    ASSERT_EQ(t.port, 80);
}

TEST(ext_url_refusals)
{
    invoke_ext_target_t t;

    ASSERT_EQ(parse("ftp://x", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://:80/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://user:pw@host/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host:0/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host:65536/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host:/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host:8x/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host/a?b=1", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host#frag", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://ho st/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://host\r\nx: y/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://[::1/", &t), ERR_INVAL);
    ASSERT_EQ(parse("http://[::1]x/", &t), ERR_INVAL);
}
