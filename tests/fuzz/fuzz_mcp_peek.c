/*
 * fuzz_mcp_peek — JSON-RPC facts from arbitrary request bodies.
 *
 * Invariants beyond "no crash, no leak": a refused body leaves the facts cleared; accepted facts
 * are NUL-terminated within their fields, count >= 1 and requests <= count; a batch has count
 * equal to its array length (checked indirectly: count >= 1); header facts built from the parsed
 * method and name agree with the body unless it is a batch. Differential: mcp_peek_body() (a
 * scanner that falls back on jansson when unsure) gives exactly what the jansson reading gives.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mcp/mcp_int.h"
#include "mcp/peek.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    mcp_peek_t p, h, ref;
    int rc = mcp_peek_body((const char *)data, size, &p);

    CHECK(mcp__peek_body_slow((const char *)data, size, &ref) == rc);
    CHECK(memcmp(&p, &ref, sizeof(p)) == 0);

    if (rc < 0) {
        CHECK(!p.valid && p.count == 0 && p.method[0] == '\0');
        return 0;
    }
    CHECK(p.valid && p.count >= 1 && p.requests <= p.count);
    CHECK(memchr(p.method, '\0', sizeof(p.method)) != NULL);
    CHECK(memchr(p.name, '\0', sizeof(p.name)) != NULL);
    CHECK(memchr(p.id, '\0', sizeof(p.id)) != NULL);
    if (p.method[0] != '\0' &&
        mcp_peek_headers(p.method, strlen(p.method), p.name, strlen(p.name), &h) == 0)
        CHECK(mcp_peek_agree(&h, &p) == !p.batch);
    return 0;
}
