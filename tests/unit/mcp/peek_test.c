/* JSON-RPC facts of MCP requests: shapes, batches, header agreement, refusals. */
#include <string.h>

#include "base/err.h"
#include "mcp/mcp_int.h"
#include "mcp/peek.h"
#include "test.h"

static int peek(const char *s, mcp_peek_t *p)
{
    return mcp_peek_body(s, strlen(s), p);
}

TEST(tools_call)
{
    mcp_peek_t p;
    ASSERT_EQ(peek("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/call\","
                   "\"params\":{\"name\":\"get_inventory\",\"arguments\":{}}}",
                   &p),
              0);
    ASSERT(p.valid && !p.batch);
    ASSERT_EQ(p.count, 1u);
    ASSERT_EQ(p.requests, 1u);
    ASSERT_STREQ(p.method, "tools/call");
    ASSERT_STREQ(p.name, "get_inventory");
    ASSERT_STREQ(p.id, "7");
    ASSERT(!mcp_peek_idempotent(&p));
}

TEST(string_id_resource_uri_and_notification)
{
    mcp_peek_t p;
    ASSERT_EQ(peek("{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"resources/read\","
                   "\"params\":{\"uri\":\"file:///x\"}}",
                   &p),
              0);
    ASSERT_STREQ(p.id, "\"a-1\"");
    ASSERT_STREQ(p.name, "file:///x");
    ASSERT(mcp_peek_idempotent(&p));
    ASSERT_EQ(peek("{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}", &p), 0);
    ASSERT_EQ(p.requests, 0u);
    ASSERT_STREQ(p.id, "");
}

TEST(batch_counts_every_message)
{
    mcp_peek_t p;
    ASSERT_EQ(peek("[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"},"
                   "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\","
                   "\"params\":{\"name\":\"drop_table\"}}]",
                   &p),
              0);
    ASSERT(p.batch);
    ASSERT_EQ(p.count, 2u);
    ASSERT_STREQ(p.method, "tools/list");
    /* A batch is never "safe" as a whole: a later message may change state. */
    ASSERT(!mcp_peek_idempotent(&p));
}

TEST(refusals)
{
    mcp_peek_t p;
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "42",
        "{\"jsonrpc\":\"2.0\"}",
        "{\"method\":7,\"id\":1}",
        "{\"method\":\"a\",\"id\":{}}",
        "[{\"method\":\"tools/list\",\"id\":1}, 5]",
        /* duplicate keys: a peer reading the last one would run a different call */
        "{\"method\":\"tools/list\",\"method\":\"tools/call\",\"id\":1}",
    };
    size_t i;
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(peek(bad[i], &p), ERR_INVAL);
        ASSERT(!p.valid);
    }
}

TEST(truncation_is_flagged)
{
    static const char head[] = "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"";
    char body[600];
    mcp_peek_t p;
    memset(body, 0, sizeof(body));
    memcpy(body, head, sizeof(head) - 1);
    memset(body + sizeof(head) - 1, 'x', 300);
    memcpy(body + sizeof(head) - 1 + 300, "\"}}", 3);
    ASSERT_EQ(peek(body, &p), 0);
    ASSERT(p.truncated);
    ASSERT_EQ(strlen(p.name), (size_t)MCP_PEEK_NAME_MAX - 1);
}

TEST(headers_must_agree_with_body)
{
    mcp_peek_t h, b;
    ASSERT_EQ(mcp_peek_headers("tools/call", 10, "get_inventory", 13, &h), 0);
    ASSERT(h.from_headers);
    ASSERT_EQ(
        peek("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"get_inventory\"}}", &b),
        0);
    ASSERT(mcp_peek_agree(&h, &b));
    ASSERT_EQ(peek("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"drop_table\"}}", &b),
              0);
    ASSERT(!mcp_peek_agree(&h, &b));
    ASSERT_EQ(peek("{\"id\":1,\"method\":\"tools/list\"}", &b), 0);
    ASSERT(!mcp_peek_agree(&h, &b));
    ASSERT_EQ(mcp_peek_headers(NULL, 0, NULL, 0, &h), ERR_INVAL);
}

/* The fast reading (a scanner) and the reference (jansson) agree on every input: same result and
 * same facts, whether the scanner answers or hands over. */
TEST(fast_reading_agrees_with_reference)
{
    static const char *const bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"echo\","
        "\"arguments\":{\"message\":\"hi\"}}}",
        " \t\r\n{ \"id\" : -42 , \"method\" : \"ping\" } \n",
        "{\"id\":-0,\"method\":\"ping\"}",
        "{\"id\":123456789012345678,\"method\":\"ping\"}",
        "{\"id\":1234567890123456789012,\"method\":\"ping\"}", /* too big for a long long */
        "{\"id\":1.5,\"method\":\"ping\"}",
        "{\"id\":1e400,\"method\":\"ping\"}",
        "{\"id\":1,\"method\":\"ping\",\"params\":{\"x\":1e400}}", /* real overflow: refused */
        "{\"id\":1,\"method\":\"ping\",\"params\":{\"x\":[1.25e-7,-0.5,true,false,null,{}]}}",
        "{\"id\":null,\"method\":\"ping\"}",
        "{\"id\":true,\"method\":\"ping\"}",
        "{\"id\":\"a\\\"b\",\"method\":\"ping\"}", /* escaped id: decoded by jansson */
        "{\"id\":1,\"method\":\"tools\\/call\"}",  /* escaped method */
        "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"caf\\u00e9\"}}",
        "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"caf\xc3\xa9\"}}",
        "{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"bad\xc3\"}}", /* bad UTF-8 */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\xed\xa0\x80\"}}",        /* surrogate */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\xe0\x80\xaf\"}}",        /* overlong */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\\ud83d\\ude00\"}}",
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\\ud83d\"}}",   /* lone high */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\\u0000\"}}",   /* NUL */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"tab\there\"}}", /* raw control */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":\"\\q\"}}",       /* bad escape */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"uri\":\"file:///a\",\"name\":7}}",
        "{\"id\":1,\"method\":\"x\",\"params\":[\"name\"]}",
        /* duplicates at any depth are refused, escaped or not */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"arguments\":{\"a\":1,\"a\":2}}}",
        "{\"id\":1,\"method\":\"x\",\"params\":{\"name\":\"a\",\"n\\u0061me\":\"b\"}}",
        "{\"id\":1,\"m\\u0065thod\":\"x\"}",
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":{\"b\":1},\"b\":{\"a\":1}}}",
        "{\"id\":01,\"method\":\"x\"}",
        "{\"id\":1,\"method\":\"x\"} x",
        "{\"id\":1,\"method\":\"x\",}",
        "{\"id\":1,\"method\":\"x\"",
        "[{\"id\":1,\"method\":\"a\"},{\"method\":\"b\"},{\"id\":2}]",
        "[{\"id\":1,\"method\":\"a\"},{\"method\":\"b\\n\"}]",
        "[{\"id\":1.5,\"method\":\"a\"}]",
        "[{\"id\":1,\"method\":\"a\"},]",
        "[ ]",
        "[] x",
        "{}",
        "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]"
        "]"
        "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}}",
        "\xef\xbb\xbf{\"id\":1,\"method\":\"x\"}", /* a BOM */
        "{\"id\":1,\"method\":\"x\",\"params\":{\"a\":tru}}",
    };
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        mcp_peek_t fast, ref;
        int rc = mcp_peek_body(bodies[i], strlen(bodies[i]), &fast);
        ASSERT_EQ(mcp__peek_body_slow(bodies[i], strlen(bodies[i]), &ref), rc);
        ASSERT(memcmp(&fast, &ref, sizeof(fast)) == 0);
    }
}

TEST(fast_reading_refuses_nested_duplicates_and_reads_escapes)
{
    mcp_peek_t p;
    ASSERT_EQ(peek("{\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"a\","
                   "\"arguments\":{\"k\":1,\"k\":2}}}",
                   &p),
              ERR_INVAL);
    ASSERT(!p.valid);
    ASSERT_EQ(peek("{\"id\":\"x\\\"y\",\"method\":\"tools\\/call\"}", &p), 0);
    ASSERT_STREQ(p.method, "tools/call");
    ASSERT_STREQ(p.id, "\"x\"y\"");
    ASSERT_EQ(peek("{\"id\":-0,\"method\":\"ping\"}", &p), 0);
    ASSERT_STREQ(p.id, "0");
}
