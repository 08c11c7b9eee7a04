#include <string.h>

#include "base/err.h"
#include "base/str.h"
#include "test.h"

/* Decodes @p in with @p flags into @p out (max 64 bytes); returns str_unescape's code. */
static int unescape(const char *in, unsigned flags, buf_t *out)
{
    buf_init(out, 64);
    return str_unescape(in, strlen(in), flags, out);
}

TEST(str_hex_digit_values)
{
    ASSERT_EQ(str_hex_digit('0'), 0);
    ASSERT_EQ(str_hex_digit('9'), 9);
    ASSERT_EQ(str_hex_digit('a'), 10);
    ASSERT_EQ(str_hex_digit('F'), 15);
    ASSERT_EQ(str_hex_digit('g'), -1);
    ASSERT_EQ(str_hex_digit('/'), -1);
    ASSERT_EQ(str_hex_digit((char)0xC3), -1);
}

TEST(str_unescape_forms)
{
    buf_t b;

    ASSERT_EQ(unescape("a%20b+c%2fd", STR_UNESCAPE_PLUS, &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "a b c/d");
    buf_free(&b);
    ASSERT_EQ(unescape("a+b%2B", 0, &b), 0); /* paths: "+" stays */
    ASSERT_STREQ(buf_ptr(&b), "a+b+");
    buf_free(&b);
    ASSERT_EQ(unescape("plain", STR_UNESCAPE_STRICT, &b), 0);
    ASSERT_STREQ(buf_ptr(&b), "plain");
    buf_free(&b);
}

TEST(str_unescape_bad_escapes)
{
    static const char *const bad[] = {"%", "%4", "a%zz", "%4g", "x%"};
    buf_t b;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ASSERT_EQ(unescape(bad[i], STR_UNESCAPE_STRICT, &b), ERR_PARSE);
        buf_free(&b);
        ASSERT_EQ(unescape(bad[i], STR_UNESCAPE_PLUS, &b), 0); /* lenient: kept as they are */
        ASSERT_STREQ(buf_ptr(&b), bad[i]);
        buf_free(&b);
    }
}

TEST(str_unescape_limit)
{
    buf_t b;

    buf_init(&b, 4);
    ASSERT_EQ(str_unescape("%41%42%43%44%45", 15, 0, &b), ERR_TOO_LARGE);
    buf_free(&b);
}

TEST(str_unescape_byte_steps)
{
    const char *s = "%41+%x";
    size_t i = 0;

    ASSERT_EQ(str_unescape_byte(s, 6, &i, STR_UNESCAPE_PLUS), 'A');
    ASSERT_EQ(i, 3);
    ASSERT_EQ(str_unescape_byte(s, 6, &i, STR_UNESCAPE_PLUS), ' ');
    ASSERT_EQ(i, 4);
    ASSERT_EQ(str_unescape_byte(s, 6, &i, STR_UNESCAPE_STRICT), ERR_PARSE);
    ASSERT_EQ(i, 4);
    ASSERT_EQ(str_unescape_byte(s, 6, &i, 0), '%');
    ASSERT_EQ(i, 5);
}
