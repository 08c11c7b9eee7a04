/* The strict HTTP/1.1 head parser and chunked decoder: fields, framing, every rejection rule,
 * limits, and inputs split at every byte offset. */
#include <http_parser.h>

#include "net/h1.h"
#include "test.h"

#define MAXF 16
static net_header_t fields[MAXF + 1];
static const h1_limits_t lim = {.max_head_bytes = 1024, .max_url_bytes = 64};

static int req(const char *s, h1_msg_t *m)
{
    return h1_parse_request(s, strlen(s), &lim, m, fields, MAXF);
}

static int resp(const char *s, bool head, h1_msg_t *m)
{
    return h1_parse_response(s, strlen(s), &lim, head, m, fields, MAXF);
}

static bool span_is(const char *p, size_t n, const char *want)
{
    return n == strlen(want) && memcmp(p, want, n) == 0;
}

TEST(request_fields_and_framing)
{
    static const char s[] = "POST /a?b=1 HTTP/1.1\r\nHost: x\r\nX-Long:  v a l  \t\r\n"
                            "Content-Length: 12\r\nEmpty:\r\nExpect: 100-Continue\r\n\r\nbody";
    h1_msg_t m;
    ASSERT_EQ(req(s, &m), (int)(sizeof(s) - 1 - 4));
    ASSERT_EQ(m.method, HTTP_POST);
    ASSERT(span_is(m.url, m.url_len, "/a?b=1"));
    ASSERT_EQ(m.http_minor, 1);
    ASSERT_EQ(m.field_count, 5);
    ASSERT(span_is(fields[1].name, fields[1].name_len, "X-Long"));
    ASSERT(span_is(fields[1].value, fields[1].value_len, "v a l"));
    ASSERT(span_is(fields[3].name, fields[3].name_len, "Empty"));
    ASSERT_EQ(fields[3].value_len, 0);
    ASSERT_EQ(m.content_length, 12);
    ASSERT_EQ(m.body, H1_BODY_LENGTH);
    ASSERT(m.keep_alive);
    ASSERT(m.expect_continue);
    ASSERT(!m.has_connection);
}

TEST(request_methods_versions_keepalive)
{
    h1_msg_t m;
    ASSERT(req("GET / HTTP/1.0\r\n\r\n", &m) > 0);
    ASSERT_EQ(m.method, HTTP_GET);
    ASSERT_EQ(m.http_minor, 0);
    ASSERT(!m.keep_alive);
    ASSERT(req("M-SEARCH * HTTP/1.0\r\nConnection: foo, Keep-Alive\r\n\r\n", &m) > 0);
    ASSERT_EQ(m.method, HTTP_MSEARCH);
    ASSERT(m.keep_alive);
    ASSERT(m.has_connection);
    ASSERT(req("DELETE /x HTTP/1.7\r\nHost: h\r\nConnection: close\r\n\r\n", &m) > 0);
    ASSERT_EQ(m.method, HTTP_DELETE);
    ASSERT_EQ(m.http_minor, 1);
    ASSERT(!m.keep_alive);
    ASSERT(req("PATCH / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n", &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_CHUNKED);
    ASSERT(req("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT_EQ(m.content_length, 0);
    /* Upgrade without "Connection: upgrade" is only a hop-by-hop field. */
    ASSERT(req("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n", &m) > 0);
}

TEST(leading_empty_lines_and_bare_lf)
{
    h1_msg_t m;
    ASSERT_EQ(req("\r\n\nGET / HTTP/1.1\nHost: x\n\n", &m), 27);
    ASSERT_EQ(m.field_count, 1);
    ASSERT(span_is(fields[0].value, fields[0].value_len, "x"));
    ASSERT_EQ(req("GET / HTTP/1.1\r\nHost: x\n\r\n", &m), 26);
}

static const struct {
    const char *in;
    int status;
} bad_requests[] = {
    {"get / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                     /* unknown method */
    {"FOO / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                     /* unknown method */
    {"GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                    /* two spaces */
    {"GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400},                /* control byte in target */
    {"GET /a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400},                /* DEL in target */
    {"GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400},                 /* HTAB in target */
    {"GET /\r\n\r\n", 400},                                         /* HTTP/0.9 */
    {"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},                     /* other major */
    {"GET / HTTX/1.1\r\nHost: x\r\n\r\n", 400},                     /* garbage version */
    {"GET / HTTP/1.x\r\nHost: x\r\n\r\n", 400},                     /* garbage version */
    {"GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400},                    /* junk after version */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\n two\r\n\r\n", 400}, /* obs-fold */
    {"GET / HTTP/1.1\r\n\tHost: x\r\n\r\n", 400},                   /* obs-fold first line */
    {"GET / HTTP/1.1\r\nHost: x\r\nX A: one\r\n\r\n", 400},         /* space in name */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A : one\r\n\r\n", 400},        /* space before colon */
    {"GET / HTTP/1.1\r\nHost: x\r\n: one\r\n\r\n", 400},            /* empty name */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-\xc3\xa9: one\r\n\r\n", 400},  /* non-tchar name */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: o\rne\r\n\r\n", 400},       /* bare CR in value */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: o\x01ne\r\n\r\n", 400},     /* control in value */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: o\x7fne\r\n\r\n", 400},     /* DEL in value */
    {"GET / HTTP/1.1\r\nHost: x\r\nX-A: one\r\r\n\r\n", 400},       /* CR CR LF */
    {"GET / HTTP/1.1\r\nHost: x\r\n\rX", 400},                      /* bare CR at the end */
    {"\rGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400},                   /* bare CR before */
    {"GET / HTTP/1.1\r\n\r\n", 400},                                /* no Host */
    {"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400},          /* two Hosts */
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
    {"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     501},
    {"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 501},
    {"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n", 501},
};

TEST(every_rejection_rule)
{
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        h1_msg_t m;
        int rc = req(bad_requests[i].in, &m);
        if (rc != -bad_requests[i].status)
            TEST_FAIL_("case %zu: %d != %d", i, rc, -bad_requests[i].status);
        ASSERT(m.reason != NULL && m.reason[0] != '\0');
    }
}

TEST(limits)
{
    h1_msg_t m;
    char big[2048];
    int n;
    /* target too long: 414, even before the head is complete */
    n = snprintf(big, sizeof(big), "GET /%065d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    ASSERT_EQ(h1_parse_request(big, (size_t)n, &lim, &m, fields, MAXF), -414);
    ASSERT_EQ(h1_parse_request(big, 70, &lim, &m, fields, MAXF), -414);
    ASSERT_EQ(h1_parse_request(big, 60, &lim, &m, fields, MAXF), 0);
    /* too many fields: 431 */
    n = snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: x\r\n");
    for (int i = 0; i < MAXF; i++)
        n += snprintf(big + n, sizeof(big) - (size_t)n, "X-%d: v\r\n", i);
    n += snprintf(big + n, sizeof(big) - (size_t)n, "\r\n");
    ASSERT_EQ(h1_parse_request(big, (size_t)n, &lim, &m, fields, MAXF), -431);
    ASSERT_EQ(h1_parse_request(big, (size_t)n, &lim, &m, fields, MAXF + 1), n);
    /* head too large: 431 when more bytes than the limit hold no complete head */
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET / HTTP/1.1\r\nX: ", 19);
    ASSERT_EQ(h1_parse_request(big, 1024, &lim, &m, fields, MAXF), 0);
    ASSERT_EQ(h1_parse_request(big, 1025, &lim, &m, fields, MAXF), -431);
    ASSERT_STREQ(m.reason, "request header section too large");
    ASSERT_EQ(h1_parse_request(big, sizeof(big), &lim, &m, fields, MAXF), -431);
}

/* Every prefix of @p s parses as incomplete or as the same error as the whole; once the head is
 * all there, as the whole. */
static int split_consistent(const char *s, bool response)
{
    size_t n = strlen(s);
    h1_msg_t m;
    int whole = response ? h1_parse_response(s, n, &lim, false, &m, fields, MAXF)
                         : h1_parse_request(s, n, &lim, &m, fields, MAXF);
    for (size_t k = 0; k < n; k++) {
        int rc = response ? h1_parse_response(s, k, &lim, false, &m, fields, MAXF)
                          : h1_parse_request(s, k, &lim, &m, fields, MAXF);
        if (whole > 0 && rc != ((size_t)whole <= k ? whole : 0))
            return (int)k + 1;
        if (whole <= 0 && rc != 0 && rc != whole)
            return (int)k + 1;
    }
    return 0;
}

TEST(heads_split_at_every_offset)
{
    static const char *good[] = {
        "GET /a HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\nextra",
        "\r\n\nPOST /p HTTP/1.0\nContent-Length: 3\n\nabc",
        "GET / HTTP/1.1\r\nHost: x\r\nEmpty:\r\nT:  \t v \t\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        ASSERT_EQ(split_consistent(good[i], false), 0);
    for (size_t i = 0; i < sizeof(bad_requests) / sizeof(bad_requests[0]); i++) {
        int k = split_consistent(bad_requests[i].in, false);
        if (k != 0)
            TEST_FAIL_("case %zu differs at prefix %d", i, k - 1);
    }
    ASSERT_EQ(split_consistent("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", true), 0);
    ASSERT_EQ(split_consistent("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n", true), 0);
}

TEST(responses_and_their_framing)
{
    h1_msg_t m;
    ASSERT_EQ(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", false, &m), 38);
    ASSERT_EQ(m.status, 200);
    ASSERT_EQ(m.body, H1_BODY_LENGTH);
    ASSERT_EQ(m.content_length, 5);
    ASSERT(m.keep_alive);
    ASSERT(resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT(m.keep_alive);
    ASSERT(resp("HTTP/1.1 204 No Content\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT(m.keep_alive);
    ASSERT(resp("HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT(resp("HTTP/1.1 100 Continue\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.status, 100);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT(resp("HTTP/1.1 200\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_CHUNKED);
    ASSERT(m.keep_alive);
    ASSERT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", false,
                &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_CHUNKED);
    ASSERT_EQ(m.content_length, -1);
    ASSERT(!m.keep_alive);
    ASSERT(resp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_CLOSE);
    ASSERT(!m.keep_alive);
    ASSERT(resp("HTTP/1.1 200 OK\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_CLOSE);
    ASSERT(!m.keep_alive);
    ASSERT(resp("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, &m) > 0);
    ASSERT_EQ(m.body, H1_BODY_NONE);
    ASSERT(!m.keep_alive);
    ASSERT(resp("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\n", false,
                &m) > 0);
    ASSERT(m.keep_alive);
    ASSERT_EQ(m.http_minor, 0);
    ASSERT(resp("HTTP/1.1 200 \r\n\r\n", false, &m) > 0);
}

TEST(bad_responses)
{
    static const char *bad[] = {
        "HTTP/2 200 OK\r\n\r\n",
        "HTTP/2.0 200 OK\r\n\r\n",
        "HTTP/1.1 20 OK\r\n\r\n",
        "HTTP/1.1 2000 OK\r\n\r\n",
        "HTTP/1.1 200 O\x01K\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
        "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        "HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n",
        "ICY 200 OK\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        h1_msg_t m;
        int rc = resp(bad[i], false, &m);
        if (rc != -502)
            TEST_FAIL_("case %zu: %d", i, rc);
    }
}

TEST(worth_parsing)
{
    char big[3 * H1_RESCAN_BYTES];
    size_t from = 1;
    memset(big, 'a', sizeof(big));
    /* short heads: every read */
    ASSERT(h1_worth_parsing(big, 10, &from));
    ASSERT_EQ(from, 10);
    ASSERT(h1_worth_parsing(big, H1_RESCAN_BYTES, &from));
    /* long ones: only when a line ended in the new bytes */
    ASSERT(!h1_worth_parsing(big, H1_RESCAN_BYTES + 10, &from));
    ASSERT_EQ(from, H1_RESCAN_BYTES + 10);
    big[H1_RESCAN_BYTES + 5] = '\n';
    ASSERT(!h1_worth_parsing(big, H1_RESCAN_BYTES + 20, &from));
    big[H1_RESCAN_BYTES + 25] = '\n';
    ASSERT(h1_worth_parsing(big, H1_RESCAN_BYTES + 26, &from));
    ASSERT(!h1_worth_parsing(big, H1_RESCAN_BYTES + 26, &from));
}

/* Decodes @p s in pieces of at most @p step bytes (0: split once at @p at). Returns the decoded
 * bytes in @p out and where the body ended in *end (or -1 on error). */
static long decode(const char *s, size_t n, size_t at, size_t step, char *out, size_t *out_len)
{
    h1_chunked_t d;
    size_t off = 0, lim2;
    h1_chunked_init(&d);
    *out_len = 0;
    while (off < n && !h1_chunked_done(&d)) {
        const char *p;
        size_t dn;
        long used;
        if (step)
            lim2 = off + step < n ? off + step : n;
        else
            lim2 = off < at ? at : n;
        used = h1_chunked_decode(&d, s + off, lim2 - off, &p, &dn);
        if (used < 0)
            return -1;
        if (dn > 0) {
            if (p < s + off || p + dn > s + off + (size_t)used)
                return -2; /* a span outside the consumed bytes */
            memcpy(out + *out_len, p, dn);
            *out_len += dn;
        }
        off += (size_t)used;
    }
    return h1_chunked_done(&d) ? (long)off : -3;
}

TEST(chunked_bodies_split_at_every_offset)
{
    static const struct {
        const char *in;
        const char *body; /* NULL: an error */
        size_t end;       /* where the body ends */
    } cases[] = {
        {"3\r\nabc\r\n4;ext=1;q=\"x y\"\r\ndefg\r\n0\r\n\r\nNEXT", "abcdefg", 36},
        {"A\nabcdefghij\n0\n\nGET", "abcdefghij", 16},
        {"00003 \t;e\r\nabc\r\n0\r\nX-Sum: 1\r\nX-B: 2\r\n\r\n", "abc", 39},
        {"0\r\n\r\n", "", 5},
        {"f\r\n0123456789abcde\r\n0\r\n\r\n", "0123456789abcde", 25},
        {"x\r\n", NULL, 0},
        {"\r\n", NULL, 0},
        {"3\r\nabcX\r\n0\r\n\r\n", NULL, 0},
        {"3\rX", NULL, 0},
        {"3 x\r\n", NULL, 0},
        {"3;e\x01\r\n", NULL, 0},
        {"11111111111111111\r\n", NULL, 0},
        {"0\r\nX: a\rb\r\n\r\n", NULL, 0},
        {"0\r\n folded\r\n\r\n", NULL, 0},
        {"0\r\n\rX", NULL, 0},
    };
    char out[256];
    size_t out_len;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *in = cases[i].in;
        size_t n = strlen(in);
        for (size_t at = 0; at <= n; at++) {
            for (size_t step = 0; step <= (at == 0 ? 3u : 0u); step++) {
                long end = decode(in, n, at, step, out, &out_len);
                if (cases[i].body == NULL) {
                    if (end != -1)
                        TEST_FAIL_("case %zu at %zu step %zu: %ld", i, at, step, end);
                    continue;
                }
                if (end != (long)cases[i].end || out_len != strlen(cases[i].body) ||
                    memcmp(out, cases[i].body, out_len) != 0)
                    TEST_FAIL_("case %zu at %zu step %zu: end %ld len %zu", i, at, step, end,
                               out_len);
            }
        }
    }
}

TEST(chunked_limits)
{
    char big[80000];
    size_t out_len;
    h1_chunked_t d;
    const char *p;
    size_t dn;
    /* a chunk-size line with a long extension, and a trailer section past its bound */
    memset(big, 'e', sizeof(big));
    memcpy(big, "1;", 2);
    h1_chunked_init(&d);
    ASSERT_EQ(h1_chunked_decode(&d, big, 5000, &p, &dn), -1);
    memcpy(big, "0\r\nX: ", 6);
    ASSERT_EQ(decode(big, sizeof(big), 0, 0, big, &out_len), -1);
    /* the largest chunk size accepted; data spans never reach past the input */
    h1_chunked_init(&d);
    ASSERT_EQ(h1_chunked_decode(&d, "7fffffffffffffff\r\nab", 20, &p, &dn), 20);
    ASSERT_EQ(dn, 2);
    h1_chunked_init(&d);
    ASSERT_EQ(h1_chunked_decode(&d, "8000000000000000\r\n", 18, &p, &dn), -1);
}

TEST(control_bytes_found_at_every_position)
{
    /* The value and target scans go eight bytes at a time: try each position of a long value. */
    static const unsigned char bytes[] = {0x00, 0x01, 0x08, 0x0b, 0x1f, 0x7f, '\t', 0x80, 0xff};
    for (size_t len = 1; len < 40; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t b = 0; b < sizeof(bytes); b++) {
                char s[128], target[64];
                h1_msg_t m;
                int n, rc;
                memset(target, 'a', len);
                target[len] = '\0';
                n = snprintf(s, sizeof(s), "GET /%s HTTP/1.1\r\nHost: x\r\nV: %s\r\n\r\n", target,
                             target);
                s[n - 4 - len + at] = (char)bytes[b]; /* in the value */
                rc = h1_parse_request(s, (size_t)n, &lim, &m, fields, MAXF);
                if (bytes[b] == '\t' || bytes[b] >= 0x80) {
                    ASSERT_EQ(rc, n);
                    ASSERT_EQ(fields[1].value_len,
                              bytes[b] == '\t' && (at == 0 || at == len - 1) ? len - 1 : len);
                } else {
                    ASSERT_EQ(rc, -400);
                }
                s[n - 4 - len + at] = 'a';
                s[5 + at] = (char)bytes[b]; /* in the target */
                rc = h1_parse_request(s, (size_t)n, &lim, &m, fields, MAXF);
                if (bytes[b] >= 0x80)
                    ASSERT_EQ(rc, n);
                else
                    ASSERT_EQ(rc, -400);
            }
        }
    }
}
