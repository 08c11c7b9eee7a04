/*
 * The strict HTTP/1.1 head parser and chunked decoder (see h1.h). One pass over the head: every
 * byte is classified through a table, and the framing fields are recognised by length first, so
 * the common field costs one table walk over its name and one over its value.
 */
#include "net/h1.h"

#include <http_parser.h>
#include <string.h>

/* Byte classes for field names: 1 = tchar (RFC 9110 §5.6.2). */
static const unsigned char tchar[256] = {
    ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1, ['*'] = 1, ['+'] = 1,
    ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1, ['`'] = 1, ['|'] = 1,  ['~'] = 1, ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1, ['8'] = 1,
    ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1,  ['F'] = 1, ['G'] = 1,
    ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1,  ['N'] = 1, ['O'] = 1,
    ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1,  ['V'] = 1, ['W'] = 1,
    ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1,  ['d'] = 1, ['e'] = 1,
    ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1,  ['l'] = 1, ['m'] = 1,
    ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1,  ['t'] = 1, ['u'] = 1,
    ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

/* Byte classes for field values (RFC 9110 §5.5): 0 = field-vchar, SP, HTAB or obs-text;
 * 1 = CR; 2 = LF; 3 = any other control byte (refused). */
#define V_OK 0
#define V_CR 1
#define V_LF 2
#define V_BAD 3
static const unsigned char vclass[256] = {
    [0] = V_BAD,  [1] = V_BAD,   [2] = V_BAD,    [3] = V_BAD,   [4] = V_BAD,   [5] = V_BAD,
    [6] = V_BAD,  [7] = V_BAD,   [8] = V_BAD,    ['\t'] = V_OK, ['\n'] = V_LF, [11] = V_BAD,
    [12] = V_BAD, ['\r'] = V_CR, [14] = V_BAD,   [15] = V_BAD,  [16] = V_BAD,  [17] = V_BAD,
    [18] = V_BAD, [19] = V_BAD,  [20] = V_BAD,   [21] = V_BAD,  [22] = V_BAD,  [23] = V_BAD,
    [24] = V_BAD, [25] = V_BAD,  [26] = V_BAD,   [27] = V_BAD,  [28] = V_BAD,  [29] = V_BAD,
    [30] = V_BAD, [31] = V_BAD,  [0x7f] = V_BAD,
};

/* Request-target bytes (RFC 9112 §3.2, checked loosely as today): anything above SP but DEL. */
static inline bool target_ok(unsigned char ch)
{
    return ch > 0x20 && ch != 0x7f;
}

/* Eight bytes at a time (SWAR): a mask with the high bit set in each byte below @p n (n <= 0x80)
 * or equal to DEL. Borrows can only flag bytes above a real hit, so the lowest flagged byte is the
 * first real one; bytes >= 0x80 (obs-text) are never below. */
#define ONES 0x0101010101010101ull
#define HIGHS (ONES * 0x80)
static inline uint64_t word_mask(uint64_t w, uint64_t n)
{
    uint64_t del = w ^ (ONES * 0x7f);
    return (((w - ONES * n) & ~w) | ((del - ONES) & ~del)) & HIGHS;
}

/* Eight bytes with the first in memory as the least significant (so that borrows run in memory
 * order), and the offset of the first flagged byte of a non-zero mask of such a word. */
static inline uint64_t load8(const char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap64(w);
#endif
    return w;
}

static inline size_t first_flagged(uint64_t mask)
{
    return (size_t)__builtin_ctzll(mask) >> 3;
}

/* Skips field-value bytes from @p p: stops at the first CR, LF or other control byte, or @p end. */
static inline const char *skip_value(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t mask = word_mask(load8(p), 0x20);
        if (mask == 0) {
            p += 8;
            continue;
        }
        p += first_flagged(mask);
        if (*p != '\t')
            return p;
        p++; /* HTAB belongs to the value */
    }
    while (p < end && vclass[(unsigned char)*p] == V_OK)
        p++;
    return p;
}

/* Skips request-target bytes from @p p: stops at SP, a control byte, DEL, or @p end. */
static inline const char *skip_target(const char *p, const char *end)
{
    while (end - p >= 8) {
        uint64_t mask = word_mask(load8(p), 0x21);
        if (mask != 0)
            return p + first_flagged(mask);
        p += 8;
    }
    while (p < end && target_ok((unsigned char)*p))
        p++;
    return p;
}

/* Skips tchar bytes (a method or field name) from @p p, four at a time while it can. */
static inline const char *skip_tchar(const char *p, const char *end)
{
    while (end - p >= 4 && tchar[(unsigned char)p[0]] && tchar[(unsigned char)p[1]] &&
           tchar[(unsigned char)p[2]] && tchar[(unsigned char)p[3]])
        p += 4;
    while (p < end && tchar[(unsigned char)*p])
        p++;
    return p;
}

/* Compares [p, p+n) case-insensitively with lower-case @p lit of the same length. Only letters
 * and '-' appear in @p lit; OR-ing 0x20 maps no other tchar onto them. */
static inline bool lit_ieq(const char *p, const char *lit, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)(p[i] | 0x20) != (unsigned char)lit[i])
            return false;
    }
    return true;
}

static const struct method_name {
    const char *name;
    unsigned char len;
    unsigned char method;
} methods[] = {
#define XX(num, name, string) {#string, (unsigned char)(sizeof(#string) - 1), num},
    HTTP_METHOD_MAP(XX)
#undef XX
};

/* The method of token [p, p+n), or -1. The common methods first, by length. */
static int method_of(const char *p, size_t n)
{
    switch (n) {
    case 3:
        if (memcmp(p, "GET", 3) == 0)
            return HTTP_GET;
        if (memcmp(p, "PUT", 3) == 0)
            return HTTP_PUT;
        break;
    case 4:
        if (memcmp(p, "POST", 4) == 0)
            return HTTP_POST;
        if (memcmp(p, "HEAD", 4) == 0)
            return HTTP_HEAD;
        break;
    case 6:
        if (memcmp(p, "DELETE", 6) == 0)
            return HTTP_DELETE;
        break;
    default:
        break;
    }
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (methods[i].len == n && memcmp(methods[i].name, p, n) == 0)
            return methods[i].method;
    }
    return -1;
}

/* Framing facts gathered while the fields go by. */
typedef struct facts {
    unsigned host_count;
    unsigned cl_count;
    unsigned te_count;
    bool cl_bad;          /* a Content-Length value that is not a plain decimal number */
    bool te_chunked_only; /* the (single) Transfer-Encoding value is exactly "chunked" */
    bool te_ends_chunked; /* the last Transfer-Encoding field's last coding is chunked */
    bool conn_close;
    bool conn_keep_alive;
    bool conn_upgrade;
    bool has_upgrade;
} facts_t;

static bool is_ws(char c)
{
    return c == ' ' || c == '\t';
}

/* Walks the comma-separated list [v, v+n) and calls the matching below for each token. */
static void connection_tokens(facts_t *f, const char *v, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t s, e;
        while (i < n && (is_ws(v[i]) || v[i] == ','))
            i++;
        s = i;
        while (i < n && v[i] != ',')
            i++;
        e = i;
        while (e > s && is_ws(v[e - 1]))
            e--;
        if (e - s == 5 && lit_ieq(v + s, "close", 5))
            f->conn_close = true;
        else if (e - s == 10 && lit_ieq(v + s, "keep-alive", 10))
            f->conn_keep_alive = true;
        else if (e - s == 7 && lit_ieq(v + s, "upgrade", 7))
            f->conn_upgrade = true;
    }
}

/* Transfer-Encoding value: is it exactly "chunked", and does its last coding say chunked? */
static void transfer_codings(facts_t *f, const char *v, size_t n)
{
    size_t e = n, s;
    f->te_chunked_only = n == 7 && lit_ieq(v, "chunked", 7);
    while (e > 0 && (is_ws(v[e - 1]) || v[e - 1] == ','))
        e--;
    s = e;
    while (s > 0 && v[s - 1] != ',')
        s--;
    while (s < e && is_ws(v[s]))
        s++;
    f->te_ends_chunked = e - s == 7 && lit_ieq(v + s, "chunked", 7);
}

/* Content-Length: digits only, overflow-checked. */
static void content_length(facts_t *f, h1_msg_t *m, const char *v, size_t n)
{
    uint64_t x = 0;
    if (++f->cl_count > 1)
        return; /* counted; refused by the caller */
    if (n == 0 || n > 18) {
        f->cl_bad = true; /* 18 digits stay below INT64_MAX without a check per digit */
        return;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned char)v[i] - (unsigned)'0';
        if (d > 9) {
            f->cl_bad = true;
            return;
        }
        x = x * 10 + d;
    }
    m->content_length = (int64_t)x;
}

/* Notes what a field means for framing; names are compared by length, then case-insensitively. */
static inline void note_field(facts_t *f, h1_msg_t *m, const net_header_t *h)
{
    switch (h->name_len) {
    case 4:
        if (lit_ieq(h->name, "host", 4))
            f->host_count++;
        break;
    case 6:
        if (lit_ieq(h->name, "expect", 6))
            m->expect_continue = h->value_len == 12 && lit_ieq(h->value, "100-continue", 12);
        break;
    case 7:
        if (lit_ieq(h->name, "upgrade", 7))
            f->has_upgrade = true;
        break;
    case 10:
        if (lit_ieq(h->name, "connection", 10)) {
            m->has_connection = true;
            connection_tokens(f, h->value, h->value_len);
        }
        break;
    case 14:
        if (lit_ieq(h->name, "content-length", 14))
            content_length(f, m, h->value, h->value_len);
        break;
    case 17:
        if (lit_ieq(h->name, "transfer-encoding", 17)) {
            f->te_count++;
            transfer_codings(f, h->value, h->value_len);
        }
        break;
    default:
        break;
    }
}

/* Parser cursor: [p, end) is what may be read; past end means "need more" unless the head limit
 * cut the input, which means "too large". */
typedef struct cur {
    const char *p, *end;
    bool cut;              /* end is the head limit, not the end of the input */
    h1_msg_t *m;           /* where the reason goes */
    const char *too_large; /* reason when the head passes its limit */
} cur_t;

static int fail(h1_msg_t *m, int status, const char *why)
{
    m->reason = why;
    return -status;
}

/* Out of bytes: incomplete, or too large when the limit cut the input. */
static int need_more(const cur_t *c)
{
    return c->cut ? fail(c->m, 431, c->too_large) : 0;
}

/* Reads a line end at c->p: CRLF or LF. Returns 1 when read, 0 when more is needed, -1 when
 * the byte there is something else. */
static int line_end(cur_t *c)
{
    if (c->p >= c->end)
        return 0;
    if (*c->p == '\n') {
        c->p++;
        return 1;
    }
    if (*c->p != '\r')
        return -1;
    if (c->p + 1 >= c->end)
        return 0;
    if (c->p[1] != '\n')
        return -1;
    c->p += 2;
    return 1;
}

/* "HTTP/1.x" at c->p. Returns 1 (minor in *minor), 0 need more, or a negative status. */
static int version(cur_t *c, h1_msg_t *m, int *minor, int bad)
{
    static const char pre[] = "HTTP/";
    for (size_t i = 0; i < 5; i++) {
        if (c->p + i >= c->end)
            return need_more(c);
        if (c->p[i] != pre[i])
            return fail(m, bad, "invalid HTTP version");
    }
    if (c->p + 8 > c->end)
        return need_more(c);
    if (c->p[5] < '0' || c->p[5] > '9' || c->p[6] != '.' || c->p[7] < '0' || c->p[7] > '9')
        return fail(m, bad, "invalid HTTP version");
    if (c->p[5] != '1')
        return fail(m, bad == 400 ? 505 : bad, "only HTTP/1.x is supported");
    /* RFC 9110 §2.5: a later 1.x minor is served as 1.1. */
    *minor = c->p[7] > '0' ? 1 : 0;
    c->p += 8;
    return 1;
}

/* The field lines and the empty line that ends the head. Returns 1, 0 or a negative status. */
static int fields(cur_t *c, h1_msg_t *m, facts_t *f, net_header_t *out, size_t max_fields, int bad)
{
    for (;;) {
        const char *name, *v, *ve;
        unsigned char cls;
        net_header_t *h;
        int rc;

        if (c->p >= c->end)
            return need_more(c);
        if (*c->p == '\r' || *c->p == '\n') {
            rc = line_end(c);
            if (rc < 0)
                return fail(m, bad, "bare CR in header section");
            return rc == 0 ? need_more(c) : 1;
        }
        if (is_ws(*c->p))
            return fail(m, bad, "obsolete header line folding");
        name = c->p;
        c->p = skip_tchar(c->p, c->end);
        if (c->p >= c->end)
            return need_more(c);
        if (*c->p != ':' || c->p == name)
            return fail(m, bad, "invalid header field name");
        if (m->field_count >= max_fields)
            return fail(m, 431, "too many header fields");
        h = &out[m->field_count];
        h->name = name;
        h->name_len = (size_t)(c->p - name);
        c->p++;
        while (c->p < c->end && is_ws(*c->p))
            c->p++;
        v = c->p;
        c->p = skip_value(c->p, c->end);
        if (c->p >= c->end)
            return need_more(c);
        cls = vclass[(unsigned char)*c->p];
        if (cls == V_BAD)
            return fail(m, bad, "invalid header value");
        ve = c->p;
        rc = line_end(c);
        if (rc < 0)
            return fail(m, bad, "bare CR in header section");
        if (rc == 0)
            return need_more(c);
        while (ve > v && is_ws(ve[-1]))
            ve--;
        h->value = v;
        h->value_len = (size_t)(ve - v);
        m->field_count++;
        note_field(f, m, h);
    }
}

static void msg_init(h1_msg_t *m)
{
    memset(m, 0, sizeof(*m));
    m->method = -1;
    m->content_length = -1;
}

static void cur_init(cur_t *c, const char *buf, size_t len, size_t max_head, h1_msg_t *m,
                     const char *too_large)
{
    c->m = m;
    c->too_large = too_large;
    c->p = buf;
    c->cut = len > max_head;
    c->end = buf + (c->cut ? max_head : len);
}

int h1_parse_request(const char *buf, size_t len, const h1_limits_t *limits, h1_msg_t *m,
                     net_header_t *out, size_t max_fields)
{
    cur_t c;
    facts_t f = {0};
    const char *tok;
    int rc, minor = 1;

    msg_init(m);
    cur_init(&c, buf, len, limits->max_head_bytes, m, "request header section too large");
    /* RFC 9112 §2.2: empty lines before the request line are skipped. */
    for (;;) {
        if (c.p >= c.end)
            return need_more(&c);
        if (*c.p != '\r' && *c.p != '\n')
            break;
        rc = line_end(&c);
        if (rc < 0)
            return fail(m, 400, "bare CR before the request line");
        if (rc == 0)
            return need_more(&c);
    }
    tok = c.p;
    while (c.p < c.end && tchar[(unsigned char)*c.p])
        c.p++;
    if (c.p >= c.end)
        return need_more(&c);
    if (*c.p != ' ' || c.p == tok)
        return fail(m, 400, "invalid request line");
    m->method = method_of(tok, (size_t)(c.p - tok));
    if (m->method < 0)
        return fail(m, 400, "invalid HTTP method");
    c.p++;
    tok = c.p;
    c.p = skip_target(c.p, c.end);
    if (c.p >= c.end) {
        if ((size_t)(c.p - tok) > limits->max_url_bytes)
            return fail(m, 414, "request target too long");
        return need_more(&c);
    }
    m->url = tok;
    m->url_len = (size_t)(c.p - tok);
    if (m->url_len > limits->max_url_bytes)
        return fail(m, 414, "request target too long");
    if (*c.p != ' ' || m->url_len == 0)
        return fail(m, 400, "invalid character in request target");
    c.p++;
    rc = version(&c, m, &minor, 400);
    if (rc <= 0)
        return rc;
    rc = line_end(&c);
    if (rc < 0)
        return fail(m, 400, "invalid request line");
    if (rc == 0)
        return need_more(&c);
    m->http_minor = minor;
    rc = fields(&c, m, &f, out, max_fields, 400);
    if (rc <= 0)
        return rc;

    /* Framing (RFC 9112 §6.1-6.3) and the rules a proxy must enforce. */
    if (f.cl_count > 1 || f.cl_bad)
        return fail(m, 400, "invalid Content-Length");
    if (minor == 1 && f.host_count != 1)
        return fail(m, 400, "exactly one Host header is required");
    if (f.te_count > 0 && f.cl_count > 0)
        return fail(m, 400, "both Transfer-Encoding and Content-Length");
    if (f.te_count > 1 || (f.te_count == 1 && !f.te_chunked_only))
        return fail(m, 501, "unsupported transfer coding");
    m->upgrade = f.has_upgrade && f.conn_upgrade;
    if (m->method == HTTP_CONNECT || m->upgrade)
        return fail(m, 501, "upgrade and CONNECT are not supported");
    if (f.te_count == 1)
        m->body = H1_BODY_CHUNKED;
    else if (m->content_length > 0)
        m->body = H1_BODY_LENGTH;
    m->keep_alive = minor == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    return (int)(c.p - buf);
}

int h1_parse_response(const char *buf, size_t len, const h1_limits_t *limits, bool head_request,
                      h1_msg_t *m, net_header_t *out, size_t max_fields)
{
    cur_t c;
    facts_t f = {0};
    int rc, minor = 1, st;

    msg_init(m);
    cur_init(&c, buf, len, limits->max_head_bytes, m, "response header section too large");
    rc = version(&c, m, &minor, 502);
    if (rc <= 0)
        return rc;
    if (c.p + 4 > c.end)
        return need_more(&c);
    if (c.p[0] != ' ' || c.p[1] < '1' || c.p[1] > '9' || c.p[2] < '0' || c.p[2] > '9' ||
        c.p[3] < '0' || c.p[3] > '9')
        return fail(m, 502, "invalid status line");
    st = (c.p[1] - '0') * 100 + (c.p[2] - '0') * 10 + (c.p[3] - '0');
    c.p += 4;
    /* The reason phrase (may be absent): HTAB, SP, VCHAR, obs-text. */
    if (c.p < c.end && *c.p == ' ') {
        unsigned char cls = V_OK;
        while (c.p < c.end && (cls = vclass[(unsigned char)*c.p]) == V_OK)
            c.p++;
        if (c.p < c.end && cls == V_BAD)
            return fail(m, 502, "invalid status line");
    }
    rc = line_end(&c);
    if (rc < 0)
        return fail(m, 502, "invalid status line");
    if (rc == 0)
        return need_more(&c);
    m->status = st;
    m->http_minor = minor;
    rc = fields(&c, m, &f, out, max_fields, 502);
    if (rc <= 0)
        return rc;
    if (f.cl_count > 1 || f.cl_bad)
        return fail(m, 502, "invalid Content-Length");
    m->upgrade = f.has_upgrade && f.conn_upgrade;
    m->keep_alive = minor == 1 ? !f.conn_close : f.conn_keep_alive && !f.conn_close;
    /* RFC 9112 §6.3, in its order. */
    if (head_request || (st >= 100 && st < 200) || st == 204 || st == 304) {
        m->body = H1_BODY_NONE;
    } else if (f.te_count > 0) {
        m->content_length = -1; /* Transfer-Encoding overrides Content-Length */
        m->body = f.te_ends_chunked ? H1_BODY_CHUNKED : H1_BODY_CLOSE;
        if (f.cl_count > 0 || !f.te_ends_chunked)
            m->keep_alive = false;
    } else if (f.cl_count > 0) {
        m->body = m->content_length > 0 ? H1_BODY_LENGTH : H1_BODY_NONE;
    } else {
        m->body = H1_BODY_CLOSE;
        m->keep_alive = false;
    }
    return (int)(c.p - buf);
}

bool h1_worth_parsing(const char *buf, size_t len, size_t *from)
{
    size_t f = *from;
    *from = len;
    if (len <= H1_RESCAN_BYTES)
        return true;
    return f < len && memchr(buf + f, '\n', len - f) != NULL;
}

/* --- chunked bodies --------------------------------------------------------------------------- */

enum {
    CH_SIZE,       /* chunk-size hex digits */
    CH_EXT,        /* after the size: BWS and chunk extensions up to the line end */
    CH_SIZE_LF,    /* CR seen at the end of the size line */
    CH_DATA,       /* chunk data */
    CH_DATA_CR,    /* the line end after the data */
    CH_DATA_LF,    /* CR seen after the data */
    CH_TRAILER,    /* start of a trailer line (or the final empty line) */
    CH_TRAILER_IN, /* inside a trailer line */
    CH_TRAILER_LF, /* CR seen in the trailer section */
    CH_END_LF,     /* CR of the final empty line seen */
    CH_DONE,
};

/* Longest chunk-size line (size and extensions) and trailer section we read through. */
#define CH_MAX_LINE 4096
#define CH_MAX_TRAILER 65536

void h1_chunked_init(h1_chunked_t *d)
{
    memset(d, 0, sizeof(*d));
    d->state = CH_SIZE;
}

bool h1_chunked_done(const h1_chunked_t *d)
{
    return d->state == CH_DONE;
}

static long chunk_fail(h1_chunked_t *d, const char *why)
{
    d->reason = why;
    return -1;
}

static int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

long h1_chunked_decode(h1_chunked_t *d, const char *p, size_t n, const char **data,
                       size_t *data_len)
{
    size_t i = 0;

    *data = NULL;
    *data_len = 0;
    while (i < n) {
        unsigned char ch = (unsigned char)p[i];
        switch (d->state) {
        case CH_SIZE: {
            int v = hexval(ch);
            if (v >= 0) {
                if (d->left > (UINT64_MAX >> 4) || ++d->line_bytes > CH_MAX_LINE)
                    return chunk_fail(d, "chunk size too large");
                d->left = d->left << 4 | (uint64_t)v;
                d->saw_digit = true;
                i++;
                break;
            }
            if (!d->saw_digit || !(ch == '\r' || ch == '\n' || ch == ';' || is_ws((char)ch)))
                return chunk_fail(d, "invalid chunk size");
            if (d->left > INT64_MAX)
                return chunk_fail(d, "chunk size too large");
            d->state = CH_EXT;
            break; /* the same byte again in CH_EXT */
        }
        case CH_EXT:
            if (ch == '\n' || ch == '\r') {
                i++;
                if (ch == '\r') {
                    d->state = CH_SIZE_LF;
                    break;
                }
                goto size_line_done;
            }
            if (vclass[ch] != V_OK || (!d->in_ext && ch != ';' && !is_ws((char)ch)))
                return chunk_fail(d, "invalid chunk extension");
            d->in_ext = d->in_ext || ch == ';';
            if (++d->line_bytes > CH_MAX_LINE)
                return chunk_fail(d, "chunk extension too long");
            i++;
            break;
        case CH_SIZE_LF:
            if (ch != '\n')
                return chunk_fail(d, "bare CR in chunk size line");
            i++;
        size_line_done:
            d->line_bytes = 0;
            d->saw_digit = false;
            d->in_ext = false;
            d->state = d->left == 0 ? CH_TRAILER : CH_DATA;
            break;
        case CH_DATA: {
            size_t take = n - i;
            if ((uint64_t)take > d->left)
                take = (size_t)d->left;
            *data = p + i;
            *data_len = take;
            d->left -= take;
            i += take;
            if (d->left == 0)
                d->state = CH_DATA_CR;
            return (long)i;
        }
        case CH_DATA_CR:
            i++;
            if (ch == '\n')
                d->state = CH_SIZE;
            else if (ch == '\r')
                d->state = CH_DATA_LF;
            else
                return chunk_fail(d, "missing line end after chunk data");
            break;
        case CH_DATA_LF:
            if (ch != '\n')
                return chunk_fail(d, "bare CR after chunk data");
            i++;
            d->state = CH_SIZE;
            break;
        case CH_TRAILER:
            i++;
            if (ch == '\n') {
                d->state = CH_DONE;
                return (long)i;
            }
            if (ch == '\r') {
                d->state = CH_END_LF;
                break;
            }
            if (is_ws((char)ch))
                return chunk_fail(d, "obsolete line folding in trailer section");
            d->state = CH_TRAILER_IN;
            if (++d->line_bytes > CH_MAX_TRAILER)
                return chunk_fail(d, "trailer section too large");
            break;
        case CH_END_LF:
            if (ch != '\n')
                return chunk_fail(d, "bare CR in trailer section");
            i++;
            d->state = CH_DONE;
            return (long)i;
        case CH_TRAILER_IN: {
            /* Skip to the line end; trailer fields are discarded (RFC 9110 §6.5.1). */
            const char *e = p + i;
            while (e < p + n && vclass[(unsigned char)*e] == V_OK)
                e++;
            d->line_bytes += (size_t)(e - (p + i));
            if (d->line_bytes > CH_MAX_TRAILER)
                return chunk_fail(d, "trailer section too large");
            i = (size_t)(e - p);
            if (i >= n)
                break;
            ch = (unsigned char)p[i];
            if (vclass[ch] == V_BAD)
                return chunk_fail(d, "invalid byte in trailer section");
            i++;
            d->state = ch == '\r' ? CH_TRAILER_LF : CH_TRAILER;
            break;
        }
        case CH_TRAILER_LF:
            if (ch != '\n')
                return chunk_fail(d, "bare CR in trailer section");
            i++;
            d->state = CH_TRAILER;
            break;
        default: /* CH_DONE: nothing more is ours */
            return (long)i;
        }
    }
    return (long)i;
}
