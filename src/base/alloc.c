#include "base/alloc.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries its size in a header so mem_free can keep the byte count exact. The header is
 * 16 bytes so that the user pointer keeps malloc's alignment for every scalar type. */
#define HDR 16

static atomic_size_t used_bytes;
static atomic_ulong fail_countdown;

static void oom(size_t n)
{
    fprintf(stderr, "outrigger: out of memory allocating %zu bytes\n", n);
    abort();
}

static int should_fail(void)
{
    unsigned long v = atomic_load(&fail_countdown);
    while (v != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1))
            return v == 1;
    }
    return 0;
}

void *mem_try_alloc(size_t n)
{
    unsigned char *p;

    if (n > SIZE_MAX - HDR || should_fail())
        return NULL;
    p = malloc(n + HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof(n));
    atomic_fetch_add(&used_bytes, n);
    return p + HDR;
}

void *mem_try_realloc(void *ptr, size_t n)
{
    unsigned char *base, *p;
    size_t old;

    if (ptr == NULL)
        return mem_try_alloc(n);
    if (n > SIZE_MAX - HDR || should_fail())
        return NULL;
    base = (unsigned char *)ptr - HDR;
    memcpy(&old, base, sizeof(old));
    p = realloc(base, n + HDR);
    if (p == NULL)
        return NULL;
    memcpy(p, &n, sizeof(n));
    atomic_fetch_sub(&used_bytes, old);
    atomic_fetch_add(&used_bytes, n);
    return p + HDR;
}

void *mem_alloc(size_t n)
{
    void *p = mem_try_alloc(n);
    if (p == NULL)
        oom(n);
    return p;
}

void *mem_calloc(size_t n)
{
    unsigned char *p = NULL;

    /* calloc rather than malloc + memset: a large zeroed table (metric series, span rings) then
     * takes resident memory only for the pages that are written, as glibc maps it fresh. */
    if (n <= SIZE_MAX - HDR && !should_fail())
        p = calloc(1, n + HDR);
    if (p == NULL)
        oom(n);
    memcpy(p, &n, sizeof(n));
    atomic_fetch_add(&used_bytes, n);
    return p + HDR;
}

void *mem_realloc(void *p, size_t n)
{
    void *q = mem_try_realloc(p, n);
    if (q == NULL)
        oom(n);
    return q;
}

void mem_free(void *ptr)
{
    unsigned char *base;
    size_t n;

    if (ptr == NULL)
        return;
    base = (unsigned char *)ptr - HDR;
    memcpy(&n, base, sizeof(n));
    atomic_fetch_sub(&used_bytes, n);
    free(base);
}

char *mem_strndup(const char *s, size_t n)
{
    char *p = mem_alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

char *mem_strdup(const char *s)
{
    return mem_strndup(s, strlen(s));
}

size_t mem_used(void)
{
    return atomic_load(&used_bytes);
}

void mem_fail_after(unsigned long nth)
{
    atomic_store(&fail_countdown, nth);
}
