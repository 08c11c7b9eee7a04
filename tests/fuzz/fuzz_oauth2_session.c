/*
 * fuzz_oauth2_session — what middleware.http.oauth2 reads from a browser: the Cookie header, the
 * query string (state, code) and the session cookie's value.
 *
 * The whole input is used three ways. Invariants beyond "no crash, no leak":
 * - Cookie: a value found lies inside the header, holds no ";" and follows "<name>=" (optional
 *   whitespace and a quote aside);
 * - query: a decoded value is never longer than the query, and a value that fits an output of
 *   the query's size is never refused as too large; looking up the same name twice gives the
 *   same bytes;
 * - session cookie: with a fixed key an input is accepted only when it is exactly the cookie
 *   made for the id it names (one accepted encoding per id), so a forged or altered cookie never
 *   passes. Signing is deterministic, so the key can be fixed.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/buf.h"
#include "base/err.h"
#include "policy/session.h"
#include "fuzz.h"

static const char *const names[] = {"outrigger_oauth2.web.login", "state", "code", "a", ""};

static void check_cookie(const char *in, size_t size, const char *name)
{
    const char *v = NULL;
    size_t vl = 0, nl = strlen(name);
    if (pol_cookie_get(in, size, name, &v, &vl) != 0)
        return;
    CHECK(v >= in && v + vl <= in + size && v + vl <= in + POL_COOKIE_HEADER_MAX);
    CHECK(memchr(v, ';', vl) == NULL);
    {
        /* Walk back over an opening quote, whitespace and "=" to the name. */
        const char *p = v;
        if (p > in && p[-1] == '"')
            p--;
        while (p > in && (p[-1] == ' ' || p[-1] == '\t'))
            p--;
        CHECK(p > in && p[-1] == '=');
        p--;
        while (p > in && (p[-1] == ' ' || p[-1] == '\t'))
            p--;
        CHECK((size_t)(p - in) >= nl && memcmp(p - nl, name, nl) == 0);
    }
}

static void check_query(const char *in, size_t size, const char *name)
{
    buf_t a, b;
    int ra, rb;
    buf_init(&a, size + 1);
    buf_init(&b, size + 1);
    ra = pol_query_get(in, size, name, &a);
    rb = pol_query_get(in, size, name, &b);
    CHECK(ra == 0 || ra == ERR_NOT_FOUND);
    CHECK(ra == rb);
    if (ra == 0) {
        CHECK(a.len <= size && a.len == b.len);
        CHECK(a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
    }
    buf_free(&a);
    buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const unsigned char key[POL_SESS_KEY_LEN] = "fuzz-key-0123456789abcdef-fuzz!";
    const char *in = (const char *)data;
    pol_sess_id_t id;

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        check_cookie(in, size, names[i]);
        check_query(in, size, names[i]);
    }
    if (pol_sess_cookie_check(key, in, size, &id) == 0) {
        char again[POL_SESS_COOKIE_LEN + 1];
        pol_sess_cookie_make(key, &id, again);
        CHECK(size == POL_SESS_COOKIE_LEN && memcmp(again, in, size) == 0);
    }
    return 0;
}
