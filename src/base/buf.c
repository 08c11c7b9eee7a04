#include "base/buf.h"

#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

void buf_init(buf_t *b, size_t max)
{
    b->ptr = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->local = false;
}

void buf_init_local(buf_t *b, char *mem, size_t size, size_t max)
{
    b->ptr = mem;
    b->len = 0;
    b->cap = size < max + 1 ? size : max + 1; /* the inline append trusts cap to respect max */
    b->max = max;
    b->local = true;
    mem[0] = '\0';
}

void buf_free(buf_t *b)
{
    if (!b->local)
        mem_free(b->ptr);
    buf_init(b, b->max);
}

void buf_reset(buf_t *b)
{
    b->len = 0;
    if (b->ptr != NULL)
        b->ptr[0] = '\0';
}

static int reserve(buf_t *b, size_t extra)
{
    size_t need, cap;
    char *p;

    if (extra > b->max - b->len) {
        buf_free(b);
        return ERR_TOO_LARGE;
    }
    need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    /* Start at 256 bytes: most users (message heads, error bodies) fit without a regrowth. */
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap = cap * 2 < cap ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    if (b->local) { /* outgrew the caller's memory: move to the heap */
        p = mem_try_alloc(cap);
        if (p == NULL)
            return ERR_NOMEM;
        memcpy(p, b->ptr, b->len + 1);
        b->local = false;
    } else {
        p = mem_try_realloc(b->ptr, cap);
        if (p == NULL)
            return ERR_NOMEM;
    }
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int buf_reserve(buf_t *b, size_t n)
{
    return reserve(b, n);
}

int buf__append_slow(buf_t *b, const void *p, size_t n)
{
    int rc = reserve(b, n);
    if (rc < 0)
        return rc;
    if (n > 0)
        memcpy(b->ptr + b->len, p, n);
    b->len += n;
    b->ptr[b->len] = '\0';
    return 0;
}

int buf_append_str(buf_t *b, const char *s)
{
    return buf_append(b, s, strlen(s));
}

int buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return ERR_INVAL;
    rc = reserve(b, (size_t)n);
    if (rc < 0)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

int buf_append_u64(buf_t *b, uint64_t v)
{
    char tmp[24];
    size_t i = sizeof(tmp);
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return buf_append(b, tmp + i, sizeof(tmp) - i);
}

int buf_append_json_str(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t run = 0; /* start of the bytes not appended yet, none of which needs an escape */
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f)
            continue;
        rc = i > run ? buf_append(b, s + run, i - run) : 0;
        if (rc == 0 && (c == '"' || c == '\\')) {
            char two[2] = {'\\', (char)c};
            rc = buf_append(b, two, 2);
        } else if (rc == 0) {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            rc = buf_append(b, esc, sizeof(esc));
        }
        run = i + 1;
    }
    return rc || run == n ? rc : buf_append(b, s + run, n - run);
}

int buf_append_prom_label(buf_t *b, const char *s)
{
    int rc = 0;

    for (const char *p = s; *p && rc == 0; p++) {
        if (*p == '\\' || *p == '"')
            rc = buf_append(b, "\\", 1);
        rc = rc ? rc : (*p == '\n' ? buf_append(b, "\\n", 2) : buf_append(b, p, 1));
    }
    return rc;
}

const char *buf_ptr(const buf_t *b)
{
    return b->ptr ? b->ptr : "";
}

char *buf_take(buf_t *b)
{
    char *p = b->ptr;
    if (b->local)
        p = b->len > 0 ? mem_strndup(b->ptr, b->len) : NULL;
    buf_init(b, b->max);
    return p;
}
