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
