#include "base/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Each block carries its size in a header so mem_free can keep the byte count exact. The header is
 * 16 bytes so that the user pointer keeps malloc's alignment for every scalar type; its second word
 * links the block into a thread's cache while it is cached. */
#define HDR 16

/* Per-thread caches. A request allocates a dozen small buffers (URLs, heads, the kept body) and
 * frees them together; glibc's own per-thread cache keeps only 7 blocks of a size, so the rest took
 * its slow path (and two atomics each on a counter every worker shares). Small blocks are allocated
 * with their size rounded up to a class and, when freed, kept on the freeing thread's list of that
 * class (at most CLASS_KEEP each); blocks up to LARGE_MAX are kept by exact size (at most
 * LARGE_KEEP). The byte count is per thread and folded into used_bytes when a thread ends. */
#define CLASS_STEP 32
#define CLASS_MAX 1024 /* largest cached class, bytes */
#define NCLASS (CLASS_MAX / CLASS_STEP)
#define CLASS_KEEP 24
#define LARGE_MAX (16 * 1024)
#define LARGE_KEEP 8

#if defined(__SANITIZE_ADDRESS__)
#define MEM_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MEM_ASAN 1
#endif
#endif
#ifdef MEM_ASAN
#include <sanitizer/asan_interface.h>
/* A cached block's user bytes stay poisoned, so a use after mem_free is still reported. */
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

typedef struct mem_cache {
    atomic_llong delta; /* bytes this thread counted, not in used_bytes; written by it only */
    unsigned char *list[NCLASS];  /* cached blocks (bases), linked through the header's 2nd word */
    unsigned short count[NCLASS]; /* blocks on each list */
    unsigned char *large[LARGE_KEEP]; /* cached bigger blocks (bases) */
    size_t large_n[LARGE_KEEP];       /* their sizes */
    unsigned large_count;             /* slots used */
    struct mem_cache *next, *prev;    /* in caches, once registered */
    bool registered;                  /* in caches, with a key destructor */
} mem_cache_t;

static atomic_size_t used_bytes; /* bytes of ended threads, and adjustments */
static atomic_ulong fail_countdown;
static _Thread_local mem_cache_t tc;
static pthread_mutex_t caches_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_cache_t *caches; /* every live thread's cache, for mem_used */
static pthread_key_t cache_key;
static pthread_once_t cache_key_once = PTHREAD_ONCE_INIT;

static void oom(size_t n)
{
    fprintf(stderr, "outrigger: out of memory allocating %zu bytes\n", n);
    abort();
}

static int should_fail(void)
{
    unsigned long v = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    while (v != 0) {
        if (atomic_compare_exchange_weak(&fail_countdown, &v, v - 1))
            return v == 1;
    }
    return 0;
}

static void count(mem_cache_t *c, long long n)
{
    atomic_store_explicit(&c->delta, atomic_load_explicit(&c->delta, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static unsigned char *next_of(const unsigned char *base)
{
    unsigned char *n;
    memcpy(&n, base + sizeof(size_t), sizeof(n));
    return n;
}

static void set_next(unsigned char *base, unsigned char *n)
{
    memcpy(base + sizeof(size_t), &n, sizeof(n));
}

/* Releases a thread's cached blocks and folds its count into used_bytes (thread exit). */
static void cache_drain(void *arg)
{
    mem_cache_t *c = arg;
    pthread_mutex_lock(&caches_lock);
    for (unsigned k = 0; k < NCLASS; k++) {
        while (c->list[k] != NULL) {
            unsigned char *b = c->list[k];
            c->list[k] = next_of(b);
            free(b);
        }
        c->count[k] = 0;
    }
    for (unsigned i = 0; i < c->large_count; i++)
        free(c->large[i]);
    c->large_count = 0;
    atomic_fetch_add(&used_bytes, (size_t)atomic_load(&c->delta));
    atomic_store(&c->delta, 0);
    if (c->registered) {
        if (c->prev != NULL)
            c->prev->next = c->next;
        else
            caches = c->next;
        if (c->next != NULL)
            c->next->prev = c->prev;
        c->registered = false;
    }
    pthread_mutex_unlock(&caches_lock);
}

static void make_key(void)
{
    if (pthread_key_create(&cache_key, cache_drain) != 0)
        oom(0);
}

/* The calling thread's cache, registered on first use. */
static mem_cache_t *cache(void)
{
    mem_cache_t *c = &tc;
    if (!c->registered) {
        pthread_once(&cache_key_once, make_key);
        pthread_mutex_lock(&caches_lock);
        c->next = caches;
        c->prev = NULL;
        if (caches != NULL)
            caches->prev = c;
        caches = c;
        c->registered = true;
        pthread_mutex_unlock(&caches_lock);
        pthread_setspecific(cache_key, c);
    }
    return c;
}

/* The bytes a block of user size @p n really has: its class's size when small. */
static size_t capacity(size_t n)
{
    return n <= CLASS_MAX ? (n + CLASS_STEP - 1) / CLASS_STEP * CLASS_STEP : n;
}

/* A block for @p n user bytes (header written), from the cache or malloc; NULL when out of memory.
 */
static unsigned char *take(mem_cache_t *c, size_t n)
{
    unsigned char *b = NULL;
    if (n > 0 && n <= CLASS_MAX) {
        unsigned k = (unsigned)((n - 1) / CLASS_STEP);
        b = c->list[k];
        if (b != NULL) {
            c->list[k] = next_of(b);
            c->count[k]--;
            UNPOISON(b + HDR, capacity(n));
        } else {
            b = malloc(capacity(n) + HDR);
        }
    } else if (n <= LARGE_MAX) {
        for (unsigned i = 0; i < c->large_count; i++) {
            if (c->large_n[i] == n) {
                b = c->large[i];
                c->large_count--;
                c->large[i] = c->large[c->large_count];
                c->large_n[i] = c->large_n[c->large_count];
                UNPOISON(b + HDR, n);
                break;
            }
        }
        if (b == NULL)
            b = malloc(n + HDR);
    } else {
        b = malloc(n + HDR);
    }
    if (b == NULL)
        return NULL;
    memcpy(b, &n, sizeof(n));
    count(c, (long long)n);
    return b;
}

/* Returns a block (base) of user size @p n to the cache, or to malloc. */
static void give(mem_cache_t *c, unsigned char *b, size_t n)
{
    count(c, -(long long)n);
    if (n > 0 && n <= CLASS_MAX) {
        unsigned k = (unsigned)((n - 1) / CLASS_STEP);
        if (c->count[k] < CLASS_KEEP) {
            POISON(b + HDR, capacity(n));
            set_next(b, c->list[k]);
            c->list[k] = b;
            c->count[k]++;
            return;
        }
    } else if (n > CLASS_MAX && n <= LARGE_MAX && c->large_count < LARGE_KEEP) {
        POISON(b + HDR, n);
        c->large[c->large_count] = b;
        c->large_n[c->large_count] = n;
        c->large_count++;
        return;
    }
    free(b);
}

void *mem_try_alloc(size_t n)
{
    unsigned char *b;

    if (n > SIZE_MAX - HDR || should_fail())
        return NULL;
    b = take(cache(), n);
    return b != NULL ? b + HDR : NULL;
}

void *mem_try_realloc(void *ptr, size_t n)
{
    mem_cache_t *c;
    unsigned char *base, *b;
    size_t old;

    if (ptr == NULL)
        return mem_try_alloc(n);
    if (n > SIZE_MAX - HDR || should_fail())
        return NULL;
    c = cache();
    base = (unsigned char *)ptr - HDR;
    memcpy(&old, base, sizeof(old));
    if (old <= CLASS_MAX && n <= CLASS_MAX && old > 0 && n > 0 &&
        (old - 1) / CLASS_STEP == (n - 1) / CLASS_STEP) {
        memcpy(base, &n, sizeof(n)); /* same class: the block already has the room */
        count(c, (long long)n - (long long)old);
        return ptr;
    }
    if (old > CLASS_MAX && n > CLASS_MAX) {
        b = realloc(base, n + HDR);
        if (b == NULL)
            return NULL;
        memcpy(b, &n, sizeof(n));
        count(c, (long long)n - (long long)old);
        return b + HDR;
    }
    b = take(c, n);
    if (b == NULL)
        return NULL;
    memcpy(b + HDR, ptr, old < n ? old : n);
    give(c, base, old);
    return b + HDR;
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

    if (n <= CLASS_MAX) {
        p = mem_alloc(n);
        memset(p, 0, n);
        return p;
    }
    /* calloc rather than malloc + memset: a large zeroed table (metric series, span rings) then
     * takes resident memory only for the pages that are written, as glibc maps it fresh. */
    if (n <= SIZE_MAX - HDR && !should_fail())
        p = calloc(1, n + HDR);
    if (p == NULL)
        oom(n);
    memcpy(p, &n, sizeof(n));
    count(cache(), (long long)n);
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
    give(cache(), base, n);
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
    long long sum = (long long)atomic_load(&used_bytes);
    pthread_mutex_lock(&caches_lock);
    for (const mem_cache_t *c = caches; c != NULL; c = c->next)
        sum += atomic_load_explicit(&c->delta, memory_order_relaxed);
    pthread_mutex_unlock(&caches_lock);
    return (size_t)sum;
}

void mem_fail_after(unsigned long nth)
{
    atomic_store(&fail_countdown, nth);
}
