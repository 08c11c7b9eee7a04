#include <pthread.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/err.h"
#include "base/str.h"
#include "test.h"

TEST(buf_grows_and_stays_terminated)
{
    buf_t b;
    buf_init(&b, 1000);
    for (int i = 0; i < 100; i++)
        ASSERT_EQ(buf_append(&b, "0123456789", 10), 0);
    ASSERT_EQ(b.len, 1000);
    ASSERT_EQ(b.ptr[1000], '\0');
    ASSERT_EQ(buf_append(&b, "x", 1), ERR_TOO_LARGE);
    ASSERT_EQ(b.len, 0);
    ASSERT(b.ptr == NULL);
    buf_free(&b);
}

TEST(buf_json_escape)
{
    buf_t b;
    buf_init(&b, 100);
    ASSERT_EQ(buf_append_json_str(&b, "a\"b\\c\n\x01", 7), 0);
    ASSERT_STREQ(buf_ptr(&b), "a\\\"b\\\\c\\u000a\\u0001");
    buf_free(&b);
}

TEST(buf_prom_label_escape)
{
    buf_t b;
    buf_init(&b, 64);
    ASSERT_EQ(buf_append_prom_label(&b, "a\"b\\c\nd\te"), 0);
    ASSERT_STREQ(buf_ptr(&b), "a\\\"b\\\\c\\nd\te");
    buf_free(&b);
    buf_init(&b, 3);
    ASSERT_EQ(buf_append_prom_label(&b, "\"\"\""), ERR_TOO_LARGE);
    buf_free(&b);
}

TEST(str_u64_bounds)
{
    uint64_t v = 7;
    ASSERT_EQ(str_u64("123", 3, 1000, &v), 0);
    ASSERT_EQ(v, 123);
    ASSERT_EQ(str_u64("1001", 4, 1000, &v), ERR_TOO_LARGE);
    ASSERT_EQ(str_u64("18446744073709551616", 20, UINT64_MAX, &v), ERR_TOO_LARGE);
    ASSERT_EQ(str_u64("-1", 2, 1000, &v), ERR_PARSE);
    ASSERT_EQ(str_u64("", 0, 1000, &v), ERR_PARSE);
    ASSERT_EQ(v, 123);
}

TEST(str_ieq_cases)
{
    ASSERT(str_ieq("Dapr-App-Id", 11, "dapr-app-id"));
    ASSERT(!str_ieq("Dapr-App-I", 10, "dapr-app-id"));
    ASSERT(!str_ieq("Dapr-App-Idx", 12, "dapr-app-id"));
}

TEST(mem_counts_bytes)
{
    size_t before = mem_used();
    char *p = mem_alloc(100);
    ASSERT_EQ(mem_used(), before + 100);
    p = mem_realloc(p, 10);
    ASSERT_EQ(mem_used(), before + 10);
    mem_free(p);
    ASSERT_EQ(mem_used(), before);
}

TEST(buf_local_moves_to_heap_when_outgrown)
{
    char mem[8];
    buf_t b;
    size_t before = mem_used();
    char *taken;

    buf_init_local(&b, mem, sizeof(mem), 100);
    ASSERT_STREQ(buf_ptr(&b), "");
    ASSERT_EQ(buf_append(&b, "abc", 3), 0);
    ASSERT(b.ptr == mem); /* fits: no allocation */
    ASSERT_EQ(mem_used(), before);
    ASSERT_EQ(buf_append(&b, "defghij", 7), 0);
    ASSERT(b.ptr != mem);
    ASSERT_STREQ(buf_ptr(&b), "abcdefghij");
    buf_free(&b);
    ASSERT_EQ(mem_used(), before);

    buf_init_local(&b, mem, sizeof(mem), 100);
    ASSERT_EQ(buf_append(&b, "xy", 2), 0);
    taken = buf_take(&b); /* always heap memory, even from the caller's bytes */
    ASSERT(taken != mem);
    ASSERT_STREQ(taken, "xy");
    mem_free(taken);
    buf_init_local(&b, mem, sizeof(mem), 4);
    ASSERT_EQ(buf_append(&b, "12345", 5), ERR_TOO_LARGE);
    buf_free(&b); /* never frees mem */
    ASSERT_EQ(mem_used(), before);
}

TEST(mem_cache_reuses_blocks_and_keeps_counts)
{
    size_t before = mem_used();
    char *a = mem_alloc(200), *b;
    memset(a, 'x', 200);
    mem_free(a);
    b = mem_alloc(210); /* same 32-byte class (193..224): the block just freed */
    ASSERT(b == a);
    ASSERT_EQ(mem_used(), before + 210);
    b = mem_realloc(b, 220); /* still the same class: grows in place */
    ASSERT(b == a);
    ASSERT_EQ(mem_used(), before + 220);
    b = mem_realloc(b, 5000); /* beyond the classes: moves, contents kept */
    ASSERT_EQ(b[0], 'x');
    ASSERT_EQ(b[189], 'x');
    ASSERT_EQ(mem_used(), before + 5000);
    mem_free(b);
    ASSERT_EQ(mem_used(), before);
    b = mem_calloc(64);
    for (int i = 0; i < 64; i++)
        ASSERT_EQ(b[i], 0); /* a cached block handed out by calloc is zeroed */
    mem_free(b);
    ASSERT_EQ(mem_used(), before);
}

static void *alloc_on_thread(void *arg)
{
    char **out = arg;
    for (int i = 0; i < 100; i++)
        mem_free(mem_alloc(64)); /* fills this thread's cache; drained when it ends */
    *out = mem_alloc(300);
    return NULL;
}

TEST(mem_blocks_cross_threads_and_counts_fold_back)
{
    size_t before = mem_used();
    char *p = NULL;
    pthread_t t;

    ASSERT_EQ(pthread_create(&t, NULL, alloc_on_thread, &p), 0);
    ASSERT_EQ(pthread_join(t, NULL), 0);
    ASSERT(p != NULL);
    ASSERT_EQ(mem_used(), before + 300);
    mem_free(p); /* freed on another thread than the one that allocated it */
    ASSERT_EQ(mem_used(), before);
}
