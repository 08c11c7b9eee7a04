/*
 * fuzz_oauth2_token — what both OAuth2 middlewares read from a token endpoint: the body of a 200
 * token response, as JSON or form-encoded (pol__token_parse).
 *
 * The first byte picks the Content-Type (even: application/json, odd: form-encoded) and the
 * output capacity (small or large); the rest is the body. Invariants beyond "no crash, no leak":
 * - success writes "<type> <token>" that fits the capacity, with a non-empty token after the
 *   first space (the type holds none) and only visible ASCII (no NUL, CR or LF to cut or forge
 *   the header it goes into); the type is Bearer when the body names none;
 * - failure is ERR_POLICY_UPSTREAM or ERR_TOO_LARGE with one of the fixed details, so nothing
 *   of the body (it may carry a token) reaches a log;
 * - parsing is deterministic: the same input gives the same value and lifetime.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "base/str.h"
#include "policy/policy_int.h"
#include "fuzz.h"

static int parse(const pol_fetch_resp_t *r, char *value, size_t cap, uint64_t *secs,
                 err_detail_t *d)
{
    memset(value, 0x5a, cap);
    return pol__token_parse(r, value, cap, secs, d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char v1[8192], v2[8192];
    pol_fetch_resp_t r;
    err_detail_t d = {{0}};
    uint64_t s1 = 0, s2 = 0;
    size_t cap;
    int rc;

    if (size < 1 || size > POL_FETCH_BODY_MAX)
        return 0;
    memset(&r, 0, sizeof(r));
    str_copy(r.content_type, sizeof(r.content_type),
             (data[0] & 1) ? "application/x-www-form-urlencoded" : "application/json");
    cap = (data[0] & 2) ? 24 : sizeof(v1);
    r.status = 200;
    buf_init(&r.body, POL_FETCH_BODY_MAX);
    if (size > 1 && buf_append(&r.body, data + 1, size - 1) < 0)
        abort();
    rc = parse(&r, v1, cap, &s1, &d);
    if (rc == 0) {
        const char *sp = memchr(v1, ' ', cap);
        CHECK(memchr(v1, '\0', cap) != NULL);
        CHECK(sp != NULL && sp > v1 && sp[1] != '\0');
        for (const char *p = v1; *p; p++)
            CHECK(*p >= 0x20 && *p <= 0x7e);
        if (memmem(r.body.ptr, r.body.len, "token_type", 10) == NULL)
            CHECK(strncmp(v1, "Bearer ", 7) == 0);
        CHECK(parse(&r, v2, cap, &s2, &d) == 0);
        CHECK(strcmp(v1, v2) == 0 && s1 == s2);
    } else {
        CHECK(rc == ERR_POLICY_UPSTREAM || rc == ERR_TOO_LARGE);
        /* Fixed texts only: nothing of the body (which may hold a token) reaches the detail. */
        CHECK(strcmp(d.msg, "token response has no access_token") == 0 ||
              strcmp(d.msg, "token response has an empty access_token") == 0 ||
              strcmp(d.msg, "token response has a malformed access_token or token_type") == 0 ||
              strcmp(d.msg, "access token too long") == 0);
    }
    buf_free(&r.body);
    return 0;
}
