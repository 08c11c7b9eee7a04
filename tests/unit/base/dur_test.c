#include <string.h>

#include "base/dur.h"
#include "base/err.h"
#include "test.h"

static int parse(const char *s, uint64_t max, uint64_t *out)
{
    return dur_parse_ms(s, strlen(s), max, out);
}

TEST(dur_go_forms)
{
    static const struct {
        const char *in;
        uint64_t ms;
    } ok[] = {
        {"0", 0},           {"5s", 5000},      {"800ms", 800},       {"1h", 3600000},
        {"1h30m", 5400000}, {"1.5h", 5400000}, {"+2m", 120000},      {".5s", 500},
        {"5.s", 5000},      {"1500us", 1},     {"1500\xc2\xb5s", 1}, {"999999ns", 0},
        {"2000000ns", 2},   {"0s", 0},         {"1m0.25s", 60250},   {"1.0001s", 1000},
    };
    size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        uint64_t v = 12345;
        int rc = parse(ok[i].in, UINT64_MAX, &v);
        if (rc != 0 || v != ok[i].ms)
            TEST_FAIL_("\"%s\": rc=%d v=%llu, want %llu", ok[i].in, rc, (unsigned long long)v,
                       (unsigned long long)ok[i].ms);
    }
}

TEST(dur_rejects)
{
    static const char *const bad[] = {"",       "5", "s",  "-5s", "5x",   "5 s",   " 5s", "5s ",
                                      "1.2.3s", "+", ".s", "5sm", "1e3s", "0x10s", "5S"};
    size_t i;
    uint64_t v = 7;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = parse(bad[i], UINT64_MAX, &v);
        if (rc != ERR_PARSE)
            TEST_FAIL_("\"%s\": rc=%d, want ERR_PARSE", bad[i], rc);
    }
    ASSERT_EQ(v, 7);
}

TEST(dur_bounds)
{
    uint64_t v = 7;

    ASSERT_EQ(parse("1h", 3600000, &v), 0);
    ASSERT_EQ(v, 3600000);
    ASSERT_EQ(parse("1h1ms", 3600000, &v), ERR_TOO_LARGE);
    ASSERT_EQ(parse("99999999999999999999h", UINT64_MAX, &v), ERR_TOO_LARGE);
    ASSERT_EQ(parse("9999999999999h", UINT64_MAX, &v), ERR_TOO_LARGE);
    ASSERT_EQ(parse("18446744073709551615ns", UINT64_MAX, &v), 0);
    ASSERT_EQ(v, 18446744073709ull);
    ASSERT_EQ(parse("18446744073709551615ns1ns", UINT64_MAX, &v), ERR_TOO_LARGE);
    ASSERT_EQ(dur_parse_ms("5s", 1, UINT64_MAX, &v), ERR_PARSE);
}
