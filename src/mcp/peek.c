/* MCP request facts from a JSON-RPC body or the 2026-07-28 headers (see peek.h). */
#include "mcp/peek.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "mcp/mcp_int.h"

void mcp_peek_init(mcp_peek_t *out)
{
    memset(out, 0, sizeof(*out));
}

/* Copies [s, s+n) into the field, flagging truncation. */
static void put(mcp_peek_t *out, char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        out->truncated = true;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* One message of the body; the first one fills the fields. */
static int one(json_t *m, mcp_peek_t *out, bool first)
{
    json_t *method, *id, *params, *name;

    if (!json_is_object(m))
        return ERR_INVAL;
    method = json_object_get(m, "method");
    id = json_object_get(m, "id");
    if (method != NULL && !json_is_string(method))
        return ERR_INVAL;
    if (method == NULL && id == NULL)
        return ERR_INVAL; /* neither request, notification nor response */
    out->count++;
    if (method != NULL && id != NULL)
        out->requests++;
    if (!first)
        return 0;
    if (method != NULL)
        put(out, out->method, sizeof(out->method), json_string_value(method),
            json_string_length(method));
    if (id != NULL && !json_is_null(id)) {
        if (json_is_string(id)) {
            /* Quoted, as JSON text (the value is cut to fit). */
            out->id[0] = '"';
            put(out, out->id + 1, sizeof(out->id) - 2, json_string_value(id),
                json_string_length(id));
            memcpy(out->id + strlen(out->id), "\"", 2);
        } else if (json_is_integer(id)) {
            snprintf(out->id, sizeof(out->id), "%lld", (long long)json_integer_value(id));
        } else {
            return ERR_INVAL; /* JSON-RPC ids are strings or numbers */
        }
    }
    params = json_object_get(m, "params");
    if (params != NULL && json_is_object(params)) {
        name = json_object_get(params, "name");
        if (name == NULL || !json_is_string(name))
            name = json_object_get(params, "uri");
        if (name != NULL && json_is_string(name))
            put(out, out->name, sizeof(out->name), json_string_value(name),
                json_string_length(name));
    }
    return 0;
}

/* The reference reading: jansson builds the tree (duplicate keys refused at every depth). */
int mcp__peek_body_slow(const char *body, size_t len, mcp_peek_t *out)
{
    json_t *root;
    json_error_t jerr;
    int rc = 0;

    mcp_peek_init(out);
    if (len > MCP_PEEK_BODY_MAX)
        return ERR_TOO_LARGE;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return ERR_INVAL;
    if (json_is_array(root)) {
        size_t i;
        out->batch = true;
        if (json_array_size(root) == 0)
            rc = ERR_INVAL;
        for (i = 0; rc == 0 && i < json_array_size(root); i++)
            rc = one(json_array_get(root, i), out, i == 0);
    } else {
        rc = one(root, out, true);
    }
    json_decref(root);
    if (rc < 0) {
        mcp_peek_init(out);
        return rc;
    }
    out->valid = true;
    return 0;
}

/*
 * --- the fast reading -------------------------------------------------------------------------
 *
 * A validating scanner that reads the facts without building a tree or allocating. It covers the
 * common subset of JSON exactly as jansson reads it (strict grammar, strict UTF-8, duplicate keys
 * refused at every depth, no U+0000); whatever lies outside that subset — escaped keys, escaped
 * fact values, deep nesting, objects with many keys, numbers jansson might refuse as too large,
 * and every syntax error — makes it give up (SCAN_UNSURE) and the reference reading decides. So
 * when it answers, the answer is the reference's (the fuzz target checks exactly that).
 */
#define SCAN_UNSURE 1
#define SCAN_DEPTH_MAX 32  /* nesting the scanner follows (jansson's limit is 2048) */
#define SCAN_KEYS_MAX 128  /* keys of the open objects, for the duplicate check */
#define SCAN_INT_DIGITS 18 /* fits a long long, whatever the digits */

typedef enum { V_NONE, V_STR, V_INT, V_REAL, V_OBJ, V_ARR, V_TRUE, V_FALSE, V_NULL } vtype_t;

typedef struct {
    vtype_t type;
    const char *s; /* V_STR: the raw text between the quotes; V_INT: the digits */
    size_t n;
    bool esc; /* V_STR: has a backslash escape (raw text is not the value) */
} span_t;

/* Keys of interest in an object and where their values go; sub applies to object values. */
typedef struct capture {
    const char *const *names;
    const unsigned char *lens; /* strlen of each name */
    size_t count;
    span_t *out;
    const struct capture *const *sub;
} capture_t;

typedef struct {
    const char *p, *end;
    size_t nkeys;
    struct {
        const char *s;
        size_t n;
    } keys[SCAN_KEYS_MAX];
} scan_t;

static void scan_ws(scan_t *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static int hex4(const char *p, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? (unsigned)(c - '0')
                     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10)
                                            : 16u;
        if (d == 16)
            return -1;
        *v = *v * 16 + d;
    }
    return 0;
}

/* Length of the valid UTF-8 sequence at @p p (RFC 3629: no overlong forms, no surrogates,
 * nothing above U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], cp;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* Skips plain string bytes (0x20..0x7f but '"' and '\\') from @p p, eight at a time (SWAR): a
 * byte is flagged when below 0x20, at or above 0x80, or equal to '"' or '\\'. Borrows only flag
 * bytes above a real hit, so the lowest flagged byte is the first real one. */
static const char *skip_plain(const char *p, const char *end)
{
    const uint64_t ones = 0x0101010101010101ull, highs = ones * 0x80;
    while (end - p >= 8) {
        uint64_t w, q, b, mask;
        memcpy(&w, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        w = __builtin_bswap64(w);
#endif
        q = w ^ (ones * '"');
        b = w ^ (ones * '\\');
        mask = (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & highs;
        if (mask != 0)
            return p + (__builtin_ctzll(mask) >> 3);
        p += 8;
    }
    while (p < end) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c >= 0x80 || c == '"' || c == '\\')
            break;
        p++;
    }
    return p;
}

static int scan_string(scan_t *s, span_t *v)
{
    const char *p = s->p + 1, *end = s->end;
    v->type = V_STR;
    v->esc = false;
    v->s = p;
    while (p < end) {
        unsigned char c;
        p = skip_plain(p, end);
        if (p >= end)
            break;
        c = (unsigned char)*p;
        if (c == '"') {
            v->n = (size_t)(p - v->s);
            s->p = p + 1;
            return 0;
        }
        if (c < 0x20)
            return SCAN_UNSURE;
        if (c == '\\') {
            unsigned u, lo;
            v->esc = true;
            if (end - p < 2)
                return SCAN_UNSURE;
            if (strchr("\"\\/bfnrt", p[1]) != NULL && p[1] != '\0') {
                p += 2;
                continue;
            }
            if (p[1] != 'u' || end - p < 6 || hex4(p + 2, &u) < 0 || u == 0 ||
                (u >= 0xDC00 && u <= 0xDFFF))
                return SCAN_UNSURE;
            p += 6;
            if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate needs its low half */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &lo) < 0 ||
                    lo < 0xDC00 || lo > 0xDFFF)
                    return SCAN_UNSURE;
                p += 6;
            }
            continue;
        }
        if (c >= 0x80) {
            size_t n = utf8_len((const unsigned char *)p, (const unsigned char *)end);
            if (n == 0)
                return SCAN_UNSURE;
            p += n;
            continue;
        }
        p++;
    }
    return SCAN_UNSURE;
}

static bool is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

static int scan_number(scan_t *s, span_t *v)
{
    const char *p = s->p, *end = s->end, *digits;
    size_t exp_digits = 0;

    v->type = V_INT;
    if (*p == '-')
        p++;
    digits = p;
    if (!is_digit(p, end))
        return SCAN_UNSURE;
    if (*p == '0') {
        p++;
        if (is_digit(p, end))
            return SCAN_UNSURE; /* leading zero */
    } else {
        while (is_digit(p, end))
            p++;
    }
    if (p < end && *p == '.') {
        v->type = V_REAL;
        p++;
        if (!is_digit(p, end))
            return SCAN_UNSURE;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        v->type = V_REAL;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return SCAN_UNSURE;
        while (is_digit(p, end))
            p++, exp_digits++;
    }
    /* Sizes no double or long long overflows with (jansson refuses those). */
    if (v->type == V_INT && (size_t)(p - digits) > SCAN_INT_DIGITS)
        return SCAN_UNSURE;
    if (v->type == V_REAL && ((size_t)(p - s->p) > 40 || exp_digits > 2))
        return SCAN_UNSURE;
    v->s = s->p;
    v->n = (size_t)(p - s->p);
    s->p = p;
    return 0;
}

static int scan_word(scan_t *s, const char *w, size_t n, vtype_t t, span_t *v)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, w, n) != 0)
        return SCAN_UNSURE;
    s->p += n;
    v->type = t;
    return 0;
}

static int scan_value(scan_t *s, int depth, span_t *v, const capture_t *cap);

/* Steps over a container's opening byte; true (and past @p close) when the container is empty. */
static bool scan_open_empty(scan_t *s, char close)
{
    s->p++;
    scan_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        return true;
    }
    return false;
}

/* After a member or element: 0 with *@p more set when a ',' follows, 0 with it clear when
 * @p close does (stepped over), else SCAN_UNSURE. */
static int scan_next(scan_t *s, char close, bool *more)
{
    scan_ws(s);
    if (s->p < s->end && (*s->p == ',' || *s->p == close)) {
        *more = *s->p++ == ',';
        return 0;
    }
    return SCAN_UNSURE;
}

static int scan_object(scan_t *s, int depth, const capture_t *cap)
{
    size_t base = s->nkeys;
    int rc;

    if (depth > SCAN_DEPTH_MAX)
        return SCAN_UNSURE;
    if (scan_open_empty(s, '}'))
        return 0;
    for (bool more = true; more;) {
        span_t key, tmp, *dst = &tmp;
        const capture_t *sub = NULL;
        scan_ws(s);
        if (s->p >= s->end || *s->p != '"')
            return SCAN_UNSURE;
        rc = scan_string(s, &key);
        if (rc != 0)
            return rc;
        if (key.esc || s->nkeys == SCAN_KEYS_MAX)
            return SCAN_UNSURE;
        for (size_t i = base; i < s->nkeys; i++)
            if (s->keys[i].n == key.n && memcmp(s->keys[i].s, key.s, key.n) == 0)
                return SCAN_UNSURE; /* a duplicate key: the reference refuses it */
        s->keys[s->nkeys].s = key.s;
        s->keys[s->nkeys].n = key.n;
        s->nkeys++;
        scan_ws(s);
        if (s->p >= s->end || *s->p != ':')
            return SCAN_UNSURE;
        s->p++;
        for (size_t i = 0; cap != NULL && i < cap->count; i++) {
            if (cap->lens[i] == key.n && memcmp(cap->names[i], key.s, key.n) == 0) {
                dst = &cap->out[i];
                sub = cap->sub ? cap->sub[i] : NULL;
                break;
            }
        }
        rc = scan_value(s, depth, dst, sub);
        rc = rc ? rc : scan_next(s, '}', &more);
        if (rc != 0)
            return rc;
    }
    s->nkeys = base;
    return 0;
}

static int scan_array(scan_t *s, int depth)
{
    if (depth > SCAN_DEPTH_MAX)
        return SCAN_UNSURE;
    if (scan_open_empty(s, ']'))
        return 0;
    for (bool more = true; more;) {
        span_t tmp;
        int rc = scan_value(s, depth, &tmp, NULL);
        rc = rc ? rc : scan_next(s, ']', &more);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* One value at nesting @p depth (of its container); @p cap applies when it is an object. */
static int scan_value(scan_t *s, int depth, span_t *v, const capture_t *cap)
{
    scan_ws(s);
    if (s->p >= s->end)
        return SCAN_UNSURE;
    switch (*s->p) {
    case '{':
        v->type = V_OBJ;
        return scan_object(s, depth + 1, cap);
    case '[':
        v->type = V_ARR;
        return scan_array(s, depth + 1);
    case '"':
        return scan_string(s, v);
    case 't':
        return scan_word(s, "true", 4, V_TRUE, v);
    case 'f':
        return scan_word(s, "false", 5, V_FALSE, v);
    case 'n':
        return scan_word(s, "null", 4, V_NULL, v);
    default:
        return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) ? scan_number(s, v) : SCAN_UNSURE;
    }
}

/* The facts of one message from its captured members, as one() reads them from the tree. */
static int scan_one(const span_t *msg, const span_t *m, const span_t *params_cap, mcp_peek_t *out,
                    bool first)
{
    const span_t *method = &m[0], *id = &m[1], *params = &m[2];

    if (msg->type != V_OBJ || (method->type != V_NONE && method->type != V_STR) ||
        (method->type == V_NONE && id->type == V_NONE))
        return ERR_INVAL;
    out->count++;
    if (method->type != V_NONE && id->type != V_NONE)
        out->requests++;
    if (!first)
        return 0;
    if (method->type == V_STR) {
        if (method->esc)
            return SCAN_UNSURE; /* the value needs decoding: left to the reference */
        put(out, out->method, sizeof(out->method), method->s, method->n);
    }
    if (id->type == V_STR) {
        if (id->esc)
            return SCAN_UNSURE;
        out->id[0] = '"';
        put(out, out->id + 1, sizeof(out->id) - 2, id->s, id->n);
        memcpy(out->id + strlen(out->id), "\"", 2);
    } else if (id->type == V_INT) {
        /* The token is the value's decimal form already (no leading zeros, at most
         * SCAN_INT_DIGITS digits), except that -0 reads as 0. */
        if (id->n == 2 && id->s[0] == '-' && id->s[1] == '0')
            put(out, out->id, sizeof(out->id), "0", 1);
        else
            put(out, out->id, sizeof(out->id), id->s, id->n);
    } else if (id->type != V_NONE && id->type != V_NULL) {
        return ERR_INVAL;
    }
    if (params->type == V_OBJ) {
        const span_t *name = params_cap[0].type == V_STR ? &params_cap[0] : &params_cap[1];
        if (name->type == V_STR) {
            if (name->esc)
                return SCAN_UNSURE;
            put(out, out->name, sizeof(out->name), name->s, name->n);
        }
    }
    return 0;
}

/* The fast reading: 0 (facts in @p out), ERR_INVAL, or SCAN_UNSURE. */
static int scan_body(const char *body, size_t len, mcp_peek_t *out)
{
    static const char *const msg_names[] = {"method", "id", "params"};
    static const char *const params_names[] = {"name", "uri"};
    static const unsigned char msg_lens[] = {6, 2, 6}, params_lens[] = {4, 3};
    scan_t s;
    bool batch;
    int rc = 0;

    s.p = body;
    s.end = body + len;
    s.nkeys = 0;
    scan_ws(&s);
    if (s.p >= s.end || (*s.p != '{' && *s.p != '['))
        return SCAN_UNSURE;
    batch = *s.p == '[';
    if (batch) {
        out->batch = true;
        if (scan_open_empty(&s, ']'))
            return ERR_INVAL; /* an empty batch (valid JSON or not, it is refused) */
    }
    for (bool first = true, more = true; more; first = false) {
        span_t msg, m[3] = {{0}}, pc[2] = {{0}};
        const capture_t params_cap = {params_names, params_lens, 2, pc, NULL};
        const capture_t *const subs[] = {NULL, NULL, &params_cap};
        const capture_t cap = {msg_names, msg_lens, 3, m, subs};

        rc = scan_value(&s, batch ? 1 : 0, &msg, &cap);
        if (rc != 0)
            return rc;
        rc = scan_one(&msg, m, pc, out, first);
        if (rc != 0)
            return rc;
        more = batch;
        rc = batch ? scan_next(&s, ']', &more) : 0;
        if (rc != 0)
            return rc;
    }
    scan_ws(&s);
    return s.p == s.end ? 0 : SCAN_UNSURE;
}

int mcp_peek_body(const char *body, size_t len, mcp_peek_t *out)
{
    int rc;

    mcp_peek_init(out);
    if (len > MCP_PEEK_BODY_MAX)
        return ERR_TOO_LARGE;
    rc = scan_body(body, len, out);
    if (rc == SCAN_UNSURE)
        return mcp__peek_body_slow(body, len, out);
    if (rc < 0) {
        mcp_peek_init(out);
        return rc;
    }
    out->valid = true;
    return 0;
}

int mcp_peek_headers(const char *method, size_t method_len, const char *name, size_t name_len,
                     mcp_peek_t *out)
{
    mcp_peek_init(out);
    if (method == NULL || method_len == 0)
        return ERR_INVAL;
    put(out, out->method, sizeof(out->method), method, method_len);
    if (name != NULL)
        put(out, out->name, sizeof(out->name), name, name_len);
    out->valid = true;
    out->from_headers = true;
    out->count = 1;
    return 0;
}

bool mcp_peek_agree(const mcp_peek_t *h, const mcp_peek_t *b)
{
    if (!h->valid || !b->valid)
        return !h->valid; /* nothing claimed in headers always agrees */
    if (b->batch || strcmp(h->method, b->method) != 0)
        return false;
    return h->name[0] == '\0' || strcmp(h->name, b->name) == 0;
}

bool mcp_peek_idempotent(const mcp_peek_t *p)
{
    static const char *const safe[] = {
        "initialize",     "ping",           "tools/list",
        "prompts/list",   "resources/list", "resources/templates/list",
        "resources/read", "prompts/get",    "notifications/initialized",
    };
    size_t i;

    if (!p->valid || p->batch)
        return false;
    for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
        if (strcmp(p->method, safe[i]) == 0)
            return true;
    return false;
}
