/*
 * test.h — the unit test harness: self-registering TEST() functions and ASSERT macros that print
 * both sides. Each test file is its own executable (one ctest entry); main() runs every TEST in
 * file order, or only those named on the command line, and exits non-zero if any failed.
 */
#ifndef OUTRIGGER_TEST_H
#define OUTRIGGER_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef void (*test_fn)(int *failed);

struct test_case {
    const char *name;
    test_fn fn;
    int line; /* where TEST() stands: the run order (constructors run in no guaranteed order;
                 link-time optimisation reverses it) */
};

#define TEST_MAX 512
static struct test_case test_cases[TEST_MAX];
static int test_count;

#define TEST(name)                                                                                 \
    static void test_##name(int *test_failed_);                                                    \
    __attribute__((constructor)) static void test_register_##name(void)                            \
    {                                                                                              \
        if (test_count < TEST_MAX)                                                                 \
            test_cases[test_count++] = (struct test_case){#name, test_##name, __LINE__};           \
    }                                                                                              \
    static void test_##name(int *test_failed_ __attribute__((unused)))

#define TEST_FAIL_(...)                                                                            \
    do {                                                                                           \
        fprintf(stderr, "  %s:%d: ", __FILE__, __LINE__);                                          \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fprintf(stderr, "\n");                                                                     \
        *test_failed_ = 1;                                                                         \
        return;                                                                                    \
    } while (0)

#define ASSERT(cond)                                                                               \
    do {                                                                                           \
        if (!(cond))                                                                               \
            TEST_FAIL_("assertion failed: %s", #cond);                                             \
    } while (0)

#define ASSERT_EQ(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_)                                                                              \
            TEST_FAIL_("%s == %s: %lld != %lld", #a, #b, a_, b_);                                  \
    } while (0)

#define ASSERT_STREQ(a, b)                                                                         \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0)                                       \
            TEST_FAIL_("%s == %s: \"%s\" != \"%s\"", #a, #b, a_ ? a_ : "(null)",                   \
                       b_ ? b_ : "(null)");                                                        \
    } while (0)

#define ASSERT_MEMEQ(a, alen, b)                                                                   \
    do {                                                                                           \
        const char *b_ = (b);                                                                      \
        size_t alen_ = (size_t)(alen);                                                             \
        if (alen_ != strlen(b_) || memcmp((a), b_, alen_) != 0)                                    \
            TEST_FAIL_("%s == %s: \"%.*s\" != \"%s\"", #a, #b, (int)alen_, (const char *)(a), b_); \
    } while (0)

static int test_by_line_(const void *a, const void *b)
{
    return ((const struct test_case *)a)->line - ((const struct test_case *)b)->line;
}

int main(int argc, char **argv)
{
    int failed = 0, passed = 0, ran = 0;
    qsort(test_cases, (size_t)test_count, sizeof(test_cases[0]), test_by_line_);
    for (int i = 0; i < test_count; i++) {
        int f = 0, want = argc < 2;
        for (int j = 1; j < argc; j++)
            want |= strcmp(argv[j], test_cases[i].name) == 0;
        if (!want)
            continue;
        ran++;
        test_cases[i].fn(&f);
        fprintf(stderr, "%s %s\n", f ? "FAIL" : "ok  ", test_cases[i].name);
        if (f)
            failed++;
        else
            passed++;
    }
    fprintf(stderr, "%d passed, %d failed\n", passed, failed);
    return failed || ran == 0 ? 1 : 0;
}

#endif
