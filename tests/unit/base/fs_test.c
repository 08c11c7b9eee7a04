#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/err.h"
#include "base/fs.h"
#include "test.h"

/* Writes @p n bytes of 'x' to a fresh temporary file; its path goes to @p path. */
static void write_tmp(char path[64], size_t n)
{
    static const char tmpl[] = "/tmp/outrigger-fs-test-XXXXXX";
    FILE *f;

    memcpy(path, tmpl, sizeof(tmpl));
    f = fdopen(mkstemp(path), "w");
    for (size_t i = 0; i < n; i++)
        fputc('x', f);
    fclose(f);
}

TEST(fs_read_file_whole)
{
    char path[64];
    buf_t b;
    err_detail_t d = {{0}};

    write_tmp(path, 40000); /* more than one read chunk */
    buf_init(&b, 40000);
    ASSERT_EQ(fs_read_file(path, NULL, &b, &d), 0);
    ASSERT_EQ(b.len, 40000);
    ASSERT(b.ptr[0] == 'x' && b.ptr[39999] == 'x');
    buf_free(&b);
    unlink(path);
}

TEST(fs_read_file_limit)
{
    char path[64];
    buf_t b;
    err_detail_t d = {{0}};

    write_tmp(path, 101);
    buf_init(&b, 100);
    ASSERT_EQ(fs_read_file(path, "small.yaml", &b, &d), ERR_TOO_LARGE);
    ASSERT_STREQ(d.msg, "small.yaml: file is larger than 100 bytes");
    ASSERT_EQ(b.len, 0);
    buf_free(&b);
    unlink(path);
}

TEST(fs_read_file_missing)
{
    buf_t b;
    err_detail_t d = {{0}};

    buf_init(&b, 100);
    ASSERT_EQ(fs_read_file("/nonexistent/outrigger/x.yaml", NULL, &b, &d), ERR_IO);
    ASSERT_STREQ(d.msg, "/nonexistent/outrigger/x.yaml: cannot open: No such file or directory");
    buf_free(&b);
}
