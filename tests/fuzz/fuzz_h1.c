/*
 * fuzz_h1 — the strict HTTP/1.1 head parser and chunked decoder (src/net/h1.c) on arbitrary bytes,
 * and the head adoption that copies a parsed head into a net_head_t (src/net/head.c).
 *
 * The first byte picks the mode: request head, response head (HEAD request or not), or chunked
 * body; the rest is the input. Small limits make the limit paths reachable.
 *
 * Invariants checked beyond "no crash, no leak":
 * - every prefix of the input parses as "incomplete" or as the same error as the whole input;
 *   once the whole head is in the prefix, as the whole (so reads split anywhere agree);
 * - a parsed head is within the limits, its spans lie inside the head, names are tchar, values
 *   hold no CR, LF or NUL and are trimmed, framing is consistent (a request is never both
 *   chunked and sized; a sized body is > 0);
 * - fed one byte at a time, h1_worth_parsing lets the parser run when the head is complete;
 * - the adopted net_head_t has lower-case NUL-terminated names equal to the spans, and
 *   net_head_add still works on it;
 * - the chunked decoder gives the same data, end and verdict whether fed whole, one byte at a time
 *   or in two pieces, and its data spans lie inside the bytes it consumed;
 * - all memory taken through base/alloc is given back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "net/net_int.h"
#include "fuzz.h"

#define MAXF 12
static const h1_limits_t lim = {.max_head_bytes = 512, .max_url_bytes = 96};

static int parse(int mode, const char *p, size_t n, h1_msg_t *m, net_header_t *f)
{
    if (mode == 0)
        return h1_parse_request(p, n, &lim, m, f, MAXF);
    return h1_parse_response(p, n, &lim, mode == 2, m, f, MAXF);
}

static bool is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void check_head(int mode, const char *p, size_t n)
{
    net_header_t f[MAXF], f2[MAXF];
    h1_msg_t m, m2;
    int whole = parse(mode, p, n, &m, f);
    size_t from = 0;
    bool found;

    CHECK(whole <= (int)n);
    CHECK(whole >= 0 || m.reason != NULL);
    if (mode == 0)
        CHECK(whole >= 0 || whole == -400 || whole == -414 || whole == -431 || whole == -501 ||
              whole == -505);
    else
        CHECK(whole >= 0 || whole == -502 || whole == -431);
    for (size_t k = 0; k < n; k++) {
        int rc = parse(mode, p, k, &m2, f2);
        if (whole > 0)
            CHECK(rc == ((size_t)whole <= k ? whole : 0));
        else
            CHECK(rc == 0 || rc == whole);
        /* Fed one more byte each time (after a first parse at one byte, as server.c does), the
         * head is parsed again at the latest when it is complete. */
        if (k > 0) {
            found = h1_worth_parsing(p, k + 1, &from);
            if (whole > 0 && (size_t)whole == k + 1)
                CHECK(found);
        } else {
            from = 1;
        }
    }
    if (whole <= 0)
        return;
    CHECK((size_t)whole <= lim.max_head_bytes);
    CHECK(m.field_count <= MAXF);
    CHECK(m.http_minor == 0 || m.http_minor == 1);
    if (mode == 0) {
        CHECK(m.url >= p && m.url + m.url_len <= p + whole && m.url_len > 0);
        CHECK(m.url_len <= lim.max_url_bytes);
        CHECK(!(m.body == H1_BODY_CHUNKED && m.content_length >= 0));
        CHECK(m.body != H1_BODY_CLOSE);
        CHECK(m.body != H1_BODY_LENGTH || m.content_length > 0);
    } else {
        CHECK(m.status >= 100 && m.status <= 999);
        CHECK(m.body != H1_BODY_CLOSE || !m.keep_alive);
    }
    for (size_t i = 0; i < m.field_count; i++) {
        CHECK(f[i].name >= p && f[i].name + f[i].name_len < p + whole && f[i].name_len > 0);
        CHECK(f[i].value >= p && f[i].value + f[i].value_len < p + whole);
        for (size_t k = 0; k < f[i].name_len; k++)
            CHECK(is_tchar((unsigned char)f[i].name[k]));
        for (size_t k = 0; k < f[i].value_len; k++)
            CHECK(f[i].value[k] != '\r' && f[i].value[k] != '\n' && f[i].value[k] != '\0');
        if (f[i].value_len > 0) {
            CHECK(f[i].value[0] != ' ' && f[i].value[0] != '\t');
            CHECK(f[i].value[f[i].value_len - 1] != ' ' && f[i].value[f[i].value_len - 1] != '\t');
        }
    }
    {
        net_head_t h;
        net_head_init(&h);
        CHECK(net__head_adopt(&h, p, (size_t)whole, &m, f) == 0);
        CHECK(h.header_count == m.field_count);
        for (size_t i = 0; i < h.header_count; i++) {
            const net_header_t *a = &h.headers[i];
            CHECK(a->name_len == f[i].name_len && a->name[a->name_len] == '\0');
            CHECK(a->value_len == f[i].value_len && a->value[a->value_len] == '\0');
            CHECK(memcmp(a->value, f[i].value, a->value_len) == 0);
            for (size_t k = 0; k < a->name_len; k++) {
                char c = f[i].name[k];
                CHECK(a->name[k] == ((c >= 'A' && c <= 'Z') ? c + 32 : c));
            }
        }
        if (mode == 0)
            CHECK(h.url_len == m.url_len && h.url[h.url_len] == '\0' &&
                  memcmp(h.url, m.url, m.url_len) == 0);
        CHECK(net_head_add(&h, "X-Added", 7, "v", 1) == 0);
        CHECK(net_head_get(&h, "x-added") != NULL);
        for (size_t i = 0; i < m.field_count; i++)
            CHECK(h.headers[i].name[h.headers[i].name_len] == '\0');
        net_head_free(&h);
    }
}

/* Decodes [p, p+n) in pieces of @p step bytes (0: split once at @p at). */
static long decode(const char *p, size_t n, size_t at, size_t step, uint64_t *sum, size_t *len)
{
    h1_chunked_t d;
    size_t off = 0;
    h1_chunked_init(&d);
    *sum = 0;
    *len = 0;
    while (off < n && !h1_chunked_done(&d)) {
        size_t end = step ? (off + step < n ? off + step : n) : (off < at ? at : n);
        const char *s;
        size_t dn;
        long used = h1_chunked_decode(&d, p + off, end - off, &s, &dn);
        if (used < 0)
            return -1;
        CHECK((size_t)used <= end - off);
        CHECK(used > 0 || h1_chunked_done(&d));
        if (dn > 0) {
            CHECK(s >= p + off && s + dn <= p + off + (size_t)used);
            for (size_t k = 0; k < dn; k++)
                *sum = *sum * 31 + (unsigned char)s[k];
            *len += dn;
        }
        off += (size_t)used;
    }
    return h1_chunked_done(&d) ? (long)off : -2;
}

static void check_chunked(const char *p, size_t n)
{
    uint64_t s1, s2;
    size_t l1, l2;
    long whole = decode(p, n, 0, 0, &s1, &l1);
    long bytes = decode(p, n, 0, 1, &s2, &l2);
    CHECK(whole == bytes && s1 == s2 && l1 == l2);
    for (size_t at = 1; at < n && at < 64; at++) {
        long r = decode(p, n, at, 0, &s2, &l2);
        CHECK(r == whole && l1 == l2 && s1 == s2);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t before = mem_used();
    int mode;

    if (size < 1 || size > 4096)
        return 0;
    mode = data[0] % 4;
    if (mode == 3)
        check_chunked((const char *)data + 1, size - 1);
    else
        check_head(mode, (const char *)data + 1, size - 1);
    CHECK(mem_used() == before);
    return 0;
}
