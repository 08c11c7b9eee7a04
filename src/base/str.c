#include "base/str.h"

#include <string.h>

#include "base/err.h"

int str_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    size_t i;

    if (n == 0)
        return ERR_PARSE;
    for (i = 0; i < n; i++) {
        unsigned d;
        if (p[i] < '0' || p[i] > '9')
            return ERR_PARSE;
        d = (unsigned)(p[i] - '0');
        if (v > (max - d) / 10)
            return ERR_TOO_LARGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int str_port(const char *s, int *out)
{
    uint64_t v;
    int rc = str_u64(s, strlen(s), 65535, &v);
    if (rc < 0)
        return rc;
    if (v == 0)
        return ERR_INVAL;
    *out = (int)v;
    return 0;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + 32) : c;
}

bool str_ieq(const char *a, size_t n, const char *b)
{
    size_t i;
    for (i = 0; i < n; i++) {
        if (b[i] == '\0' || lower(a[i]) != lower(b[i]))
            return false;
    }
    return b[n] == '\0';
}

size_t str_copy(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (size == 0)
        return 0;
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return n;
}

size_t str_host_port(char *dst, size_t size, const char *host, int port)
{
    char digits[12];
    size_t d = sizeof(digits), n;
    unsigned v = port < 0 ? 0u : (unsigned)port;

    do {
        digits[--d] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    n = str_copy(dst, size, host);
    if (n + 1 + (sizeof(digits) - d) >= size)
        return n;
    dst[n++] = ':';
    memcpy(dst + n, digits + d, sizeof(digits) - d);
    n += sizeof(digits) - d;
    dst[n] = '\0';
    return n;
}

void str_trim(const char **p, size_t *n)
{
    while (*n > 0 && (**p == ' ' || **p == '\t')) {
        (*p)++;
        (*n)--;
    }
    while (*n > 0 && ((*p)[*n - 1] == ' ' || (*p)[*n - 1] == '\t'))
        (*n)--;
}

int str_unescape_byte(const char *p, size_t n, size_t *i, unsigned flags)
{
    unsigned char c = (unsigned char)p[*i];

    if (c == '+' && (flags & STR_UNESCAPE_PLUS)) {
        (*i)++;
        return ' ';
    }
    if (c == '%') {
        int hi = *i + 2 < n ? str_hex_digit(p[*i + 1]) : -1;
        int lo = *i + 2 < n ? str_hex_digit(p[*i + 2]) : -1;
        if (hi >= 0 && lo >= 0) {
            *i += 3;
            return hi * 16 + lo;
        }
        if (flags & STR_UNESCAPE_STRICT)
            return ERR_PARSE;
    }
    (*i)++;
    return c;
}

int str_unescape(const char *p, size_t n, unsigned flags, buf_t *out)
{
    size_t run = 0, i = 0; /* run: start of the bytes copied as they are */

    while (i < n) {
        size_t at = i;
        char c;
        int v, rc;
        if (!(flags & STR_UNESCAPE_PLUS)) {
            const char *pct = memchr(p + i, '%', n - i); /* the common case: no escapes at all */
            if (pct == NULL)
                break;
            i = (size_t)(pct - p);
            at = i;
        } else if (p[i] != '%' && p[i] != '+') {
            i++;
            continue;
        }
        v = str_unescape_byte(p, n, &i, flags);
        if (v < 0)
            return v;
        /* Flush the plain run before this escape in one append. */
        c = (char)v;
        rc = buf_append(out, p + run, at - run);
        rc = rc ? rc : buf_append(out, &c, 1);
        if (rc < 0)
            return rc;
        run = i;
    }
    return buf_append(out, p + run, n - run);
}
