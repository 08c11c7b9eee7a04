/* tools/list filtering: JSON bodies, SSE events split anywhere, untouched traffic, limits. */
#include <string.h>

#include "mcp/toolfilter.h"
#include "test.h"

static const char *const visible[] = {"get_inventory", "get_schema"};

#define LIST                                                                                       \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"get_inventory\"},"           \
    "{\"name\":\"drop_table\"},{\"name\":\"get_schema\",\"inputSchema\":{}}]}}"

TEST(json_body_keeps_visible_tools_only)
{
    mcp_toolfilter_t *f = mcp_toolfilter_new(visible, 2);
    buf_t out;
    buf_init(&out, 1 << 20);
    ASSERT_EQ(mcp_toolfilter_json(f, LIST, strlen(LIST), &out), 0);
    ASSERT(strstr(buf_ptr(&out), "drop_table") == NULL);
    ASSERT(strstr(buf_ptr(&out), "get_inventory") != NULL);
    ASSERT(strstr(buf_ptr(&out), "get_schema") != NULL);
    ASSERT_EQ(mcp_toolfilter_removed(f), 1u);
    buf_free(&out);
    mcp_toolfilter_free(f);
}

TEST(other_bodies_pass_byte_for_byte)
{
    static const char *const bodies[] = {
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}",
        "not json at all",
        "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"get_schema\"}]}}",
        "",
    };
    mcp_toolfilter_t *f = mcp_toolfilter_new(visible, 2);
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        buf_t out;
        buf_init(&out, 1 << 20);
        ASSERT_EQ(mcp_toolfilter_json(f, bodies[i], strlen(bodies[i]), &out), 0);
        ASSERT_MEMEQ(out.ptr ? out.ptr : "", out.len, bodies[i]);
        buf_free(&out);
    }
    mcp_toolfilter_free(f);
}

TEST(sse_split_at_every_byte)
{
    static const char stream[] = ": comment\n\nevent: message\nid: 7\ndata: " LIST "\n\n"
                                 "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n";
    size_t n = sizeof(stream) - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        mcp_toolfilter_t *f = mcp_toolfilter_new(visible, 2);
        buf_t out;
        buf_init(&out, 1 << 20);
        ASSERT_EQ(mcp_toolfilter_sse(f, stream, cut, &out), 0);
        ASSERT_EQ(mcp_toolfilter_sse(f, stream + cut, n - cut, &out), 0);
        ASSERT_EQ(mcp_toolfilter_sse_end(f, &out), 0);
        ASSERT(strstr(buf_ptr(&out), "drop_table") == NULL);
        ASSERT(strstr(buf_ptr(&out), "id: 7\n") != NULL);
        ASSERT(strstr(buf_ptr(&out), "get_schema") != NULL);
        ASSERT(strstr(buf_ptr(&out), "{\"jsonrpc\":\"2.0\",\"method\":\"x\"}") != NULL);
        ASSERT(strstr(buf_ptr(&out), ": comment\n") != NULL);
        buf_free(&out);
        mcp_toolfilter_free(f);
    }
}

TEST(sse_crlf_and_multiline_data)
{
    static const char stream[] =
        "data: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":\r\n"
        "data: [{\"name\":\"drop_table\"},{\"name\":\"get_inventory\"}]}}\r\n\r\n";
    mcp_toolfilter_t *f = mcp_toolfilter_new(visible, 2);
    buf_t out;
    buf_init(&out, 1 << 20);
    ASSERT_EQ(mcp_toolfilter_sse(f, stream, sizeof(stream) - 1, &out), 0);
    ASSERT(strstr(buf_ptr(&out), "drop_table") == NULL);
    ASSERT(strstr(buf_ptr(&out), "get_inventory") != NULL);
    ASSERT(out.len > 4 && memcmp(out.ptr + out.len - 4, "\r\n\r\n", 4) == 0);
    buf_free(&out);
    mcp_toolfilter_free(f);
}

TEST(empty_visible_set_hides_everything)
{
    mcp_toolfilter_t *f = mcp_toolfilter_new(NULL, 0);
    buf_t out;
    buf_init(&out, 1 << 20);
    ASSERT_EQ(mcp_toolfilter_json(f, LIST, strlen(LIST), &out), 0);
    ASSERT(strstr(buf_ptr(&out), "\"tools\":[]") != NULL);
    ASSERT_EQ(mcp_toolfilter_removed(f), 3u);
    buf_free(&out);
    mcp_toolfilter_free(f);
}
