/* Message heads: a header list whose strings live in one owned buffer. */
#include <stdint.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "base/str.h"
#include "net/net_int.h"

/* Bytes a single head may hold in its store; the request parser enforces its own, smaller limit. */
#define HEAD_STORE_MAX (1024 * 1024)

void net_head_init(net_head_t *h)
{
    memset(h, 0, sizeof(*h));
    h->content_length = -1;
    buf_init(&h->store, HEAD_STORE_MAX);
}

void net_head_free(net_head_t *h)
{
    buf_free(&h->store);
    mem_free(h->headers);
    net_head_init(h);
}

/* Header strings are stored as offsets while the store may still move, and turned into pointers
 * whenever it does: every stored pointer is rebased after each append. */
static void rebase(net_head_t *h, const char *old)
{
    const char *now = h->store.ptr;
    if (old == NULL || old == now)
        return;
    for (size_t i = 0; i < h->header_count; i++) {
        h->headers[i].name = now + (h->headers[i].name - old);
        h->headers[i].value = now + (h->headers[i].value - old);
    }
    if (h->url != NULL)
        h->url = now + (h->url - old);
}

static int store(net_head_t *h, const char *p, size_t n, size_t *off)
{
    const char *old = h->store.ptr;
    size_t at = h->store.len;
    int rc = buf_append(&h->store, p, n);
    if (rc == 0)
        rc = buf_append(&h->store, "", 1); /* NUL after every string */
    if (rc < 0)
        return rc;
    rebase(h, old);
    *off = at;
    return 0;
}

/* A-Z to a-z in a word of eight bytes (bytes >= 0x80 are left alone). */
static inline uint64_t lower_word(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ull, high = ones * 0x80;
    uint64_t low7 = w & ~high;
    uint64_t ge_a = low7 + ones * (0x80 - 'A'); /* high bit: byte >= 'A' */
    uint64_t gt_z = low7 + ones * (0x7f - 'Z'); /* high bit: byte > 'Z' */
    return w | (((ge_a ^ gt_z) & ~w & high) >> 2);
}

/* A-Z to a-z in place in [p, p+n), eight bytes at a time. @p avail (>= n) bytes from p may be
 * read and written back unchanged: then a short tail is one masked word too (names are short). */
static void lower(char *p, size_t n, size_t avail)
{
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w = lower_word(w);
        memcpy(p + i, &w, 8);
    }
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (i < n && avail - i >= 8) {
        uint64_t w, mask = (1ull << (8 * (n - i))) - 1; /* the first n - i bytes in memory */
        memcpy(&w, p + i, 8);
        w = (lower_word(w) & mask) | (w & ~mask);
        memcpy(p + i, &w, 8);
        return;
    }
#endif
    for (; i < n; i++)
        p[i] = (char)(p[i] | (((unsigned char)(p[i] - 'A') < 26u) << 5));
}

int net_head_add(net_head_t *h, const char *name, size_t name_len, const char *value,
                 size_t value_len)
{
    const char *old = h->store.ptr;
    size_t noff = h->store.len, voff;
    int rc;

    if (h->header_count == h->header_cap) {
        size_t cap = h->header_cap ? h->header_cap * 2 : 16;
        net_header_t *a = mem_try_realloc(h->headers, cap * sizeof(*a));
        if (a == NULL)
            return ERR_NOMEM;
        h->headers = a;
        h->header_cap = cap;
    }
    /* name NUL value NUL, then one rebase if the store moved */
    rc = buf_append(&h->store, name, name_len);
    rc = rc ? rc : buf_append(&h->store, "", 1);
    voff = h->store.len;
    rc = rc ? rc : buf_append(&h->store, value, value_len);
    rc = rc ? rc : buf_append(&h->store, "", 1);
    if (rc < 0)
        return rc;
    rebase(h, old);
    lower(h->store.ptr + noff, name_len, h->store.len + 1 - noff);
    h->headers[h->header_count++] =
        (net_header_t){h->store.ptr + noff, name_len, h->store.ptr + voff, value_len};
    if (str_eq(h->headers[h->header_count - 1].name, name_len, "connection"))
        h->has_connection = true;
    return 0;
}

int net__head_adopt(net_head_t *h, const char *raw, size_t len, const h1_msg_t *m,
                    const net_header_t *fields)
{
    size_t n = m->field_count;
    char *copy = mem_try_alloc(len + 1);
    net_header_t *arr = mem_try_alloc((n ? n : 1) * sizeof(*arr));

    if (copy == NULL || arr == NULL) {
        mem_free(copy);
        mem_free(arr);
        return ERR_NOMEM;
    }
    memcpy(copy, raw, len);
    copy[len] = '\0';
    net_head_free(h);
    h->store.ptr = copy;
    h->store.len = len;
    h->store.cap = len + 1;
    h->headers = arr;
    h->header_cap = n ? n : 1;
    h->header_count = n;
    /* Every span is followed, inside the head, by a byte that is not part of it (':' after a
     * name, whitespace or the line end after a value, SP after the target): it becomes the NUL. */
    for (size_t i = 0; i < n; i++) {
        char *name = copy + (fields[i].name - raw);
        char *value = copy + (fields[i].value - raw);
        lower(name, fields[i].name_len, (size_t)(copy + len + 1 - name));
        name[fields[i].name_len] = '\0';
        value[fields[i].value_len] = '\0';
        arr[i] = (net_header_t){name, fields[i].name_len, value, fields[i].value_len};
    }
    if (m->url != NULL) {
        char *url = copy + (m->url - raw);
        url[m->url_len] = '\0';
        h->url = url;
        h->url_len = m->url_len;
    }
    h->method = m->method;
    h->status = m->status;
    h->http_minor = m->http_minor;
    h->content_length = m->content_length;
    h->chunked = m->body == H1_BODY_CHUNKED;
    h->keep_alive = m->keep_alive;
    h->has_connection = m->has_connection;
    return 0;
}

int net_head_set_url(net_head_t *h, const char *url, size_t len)
{
    size_t off;
    int rc = store(h, url, len, &off);
    if (rc < 0)
        return rc;
    h->url = h->store.ptr + off;
    h->url_len = len;
    return 0;
}

const net_header_t *net_head_get(const net_head_t *h, const char *lname)
{
    size_t n = strlen(lname);
    for (size_t i = 0; i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        if (f->name_len == n && f->name[0] == lname[0] && memcmp(f->name, lname, n) == 0)
            return f;
    }
    return NULL;
}

size_t net_head_count(const net_head_t *h, const char *lname)
{
    size_t n = strlen(lname), count = 0;
    for (size_t i = 0; i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        count += f->name_len == n && memcmp(f->name, lname, n) == 0;
    }
    return count;
}

/* RFC 9110 §7.6.1 hop-by-hop fields, plus the ones proxies conventionally treat the same way.
 * Called for every forwarded field, so dispatched on the length: most names are not compared. */
#define NAME_IS(lit) (len == sizeof(lit) - 1 && memcmp(lname, lit, sizeof(lit) - 1) == 0)
static bool hop_name(const char *lname, size_t len)
{
    switch (len) {
    case 2:
        return NAME_IS("te");
    case 7:
        return NAME_IS("trailer") || NAME_IS("upgrade");
    case 10:
        return NAME_IS("connection") || NAME_IS("keep-alive");
    case 14:
        return NAME_IS("http2-settings");
    case 16:
        return NAME_IS("proxy-connection");
    case 17:
        return NAME_IS("transfer-encoding");
    case 18:
        return NAME_IS("proxy-authenticate");
    case 19:
        return NAME_IS("proxy-authorization");
    default:
        return false;
    }
}
#undef NAME_IS

/* True when the comma-separated list [v, v+n) names the token [name, name+len). */
static bool list_has(const char *v, size_t n, const char *name, size_t len)
{
    size_t i = 0;
    while (i < n) {
        size_t j = i;
        const char *tok;
        size_t tlen;
        while (j < n && v[j] != ',')
            j++;
        tok = v + i;
        tlen = j - i;
        str_trim(&tok, &tlen);
        if (tlen == len) {
            size_t k;
            for (k = 0; k < len; k++) {
                char a = tok[k];
                if (a >= 'A' && a <= 'Z')
                    a = (char)(a + 32);
                if (a != name[k])
                    break;
            }
            if (k == len)
                return true;
        }
        i = j + 1;
    }
    return false;
}

bool net_head_is_hop(const net_head_t *h, const char *lname, size_t len)
{
    if (hop_name(lname, len))
        return true;
    for (size_t i = 0; h->has_connection && i < h->header_count; i++) {
        const net_header_t *f = &h->headers[i];
        if (str_eq(f->name, f->name_len, "connection") &&
            list_has(f->value, f->value_len, lname, len))
            return true;
    }
    return false;
}
