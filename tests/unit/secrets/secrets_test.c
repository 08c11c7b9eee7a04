#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "secrets/secrets.h"
#include "test.h"

static char path[] = "/tmp/outrigger-secrets-XXXXXX";

static void write_secrets(const char *json)
{
    int fd;
    FILE *f;

    memcpy(path + strlen(path) - 6, "XXXXXX", 6);
    fd = mkstemp(path);
    if (fd < 0)
        abort();
    f = fdopen(fd, "w");
    fputs(json, f);
    fclose(f);
}

static const char doc[] = "{\"a\": \"x\", \"n\": {\"num\": 1.5, \"b\": false, \"z\": null, "
                          "\"deep\": {\"k\": \"v\"}}, \"arr\": [1, \"two\"]}";

static secrets_store_t *file_store(const char *sep, const char *multi, err_detail_t *d, int *rc)
{
    const char *keys[] = {"SecretsFile", "nestedSeparator", "multiValued"};
    const char *values[] = {path, sep, multi};
    secrets_store_t *s = NULL;

    *rc = secrets_store_new("st", "secretstores.local.file", keys, values, 3, &s, d);
    return s;
}

static char *value(const secrets_store_t *s, const char *name, const char *key)
{
    char *v = NULL;
    err_detail_t d = {{0}};
    static char out[256];

    if (secrets_get_value(s, name, key, &v, &d) < 0)
        return NULL;
    snprintf(out, sizeof(out), "%s", v);
    mem_free(v);
    return out;
}

TEST(file_store_flat)
{
    err_detail_t d = {{0}};
    size_t before = mem_used();
    int rc;
    secrets_store_t *s;
    buf_t b;

    write_secrets(doc);
    s = file_store(":", "false", &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_STREQ(secrets_store_name(s), "st");
    ASSERT_STREQ(value(s, "a", NULL), "x");
    ASSERT_STREQ(value(s, "a", "a"), "x");
    ASSERT(value(s, "a", "b") == NULL);
    /* JSON text, not Go's "%!s(float64=1.5)". */
    ASSERT_STREQ(value(s, "n:num", ""), "1.5");
    ASSERT_STREQ(value(s, "n:b", ""), "false");
    ASSERT_STREQ(value(s, "n:z", ""), "null");
    ASSERT_STREQ(value(s, "n:deep:k", ""), "v");
    ASSERT_STREQ(value(s, "arr:0", ""), "1");
    ASSERT_STREQ(value(s, "arr:1", ""), "two");
    ASSERT(value(s, "n", NULL) == NULL);
    ASSERT_EQ(secrets_get_value(s, "missing", NULL, &(char *){NULL}, &d), ERR_NOT_FOUND);
    ASSERT_STREQ(d.msg, "secret missing not found");
    buf_init(&b, 4096);
    ASSERT_EQ(secrets_render(s, "n:deep:k", &b, &d), 0);
    ASSERT_STREQ(buf_ptr(&b), "{\"n:deep:k\":\"v\"}");
    buf_reset(&b);
    ASSERT_EQ(secrets_render_bulk(s, NULL, NULL, &b, &d), 0);
    ASSERT(strstr(buf_ptr(&b), "\"a\":{\"a\":\"x\"}") != NULL);
    ASSERT(strstr(buf_ptr(&b), "\"arr:1\":{\"arr:1\":\"two\"}") != NULL);
    buf_free(&b);
    secrets_store_free(s);
    unlink(path);
    ASSERT_EQ(mem_used(), before);
}

TEST(file_store_multi_valued)
{
    err_detail_t d = {{0}};
    int rc;
    secrets_store_t *s;
    buf_t b;

    write_secrets(doc);
    s = file_store(".", "true", &d, &rc);
    ASSERT_EQ(rc, 0);
    ASSERT_STREQ(value(s, "a", NULL), "x");
    ASSERT_STREQ(value(s, "n", "num"), "1.5");
    ASSERT_STREQ(value(s, "n", "deep.k"), "v");
    ASSERT(value(s, "arr", "0") == NULL); /* top-level arrays are dropped, as in Dapr */
    buf_init(&b, 4096);
    ASSERT_EQ(secrets_render(s, "n", &b, &d), 0);
    ASSERT_STREQ(buf_ptr(&b), "{\"num\":\"1.5\",\"b\":\"false\",\"z\":\"null\",\"deep.k\":\"v\"}");
    buf_free(&b);
    secrets_store_free(s);
    unlink(path);
}

TEST(file_store_errors)
{
    err_detail_t d = {{0}};
    int rc;
    secrets_store_t *s;
    const char *keys[] = {"nestedSeparator"};
    const char *values[] = {":"};

    ASSERT_EQ(secrets_store_new("st", "secretstores.local.file", keys, values, 1, &s, &d),
              ERR_INVAL);
    ASSERT_STREQ(d.msg, "missing local secrets file in metadata");
    write_secrets("[\"s3cr3t\"]");
    s = file_store(":", "false", &d, &rc);
    ASSERT_EQ(rc, ERR_PARSE);
    ASSERT(s == NULL);
    ASSERT(strstr(d.msg, "s3cr3t") == NULL);
    unlink(path);
    write_secrets("{\"a\": \"s3cr3t\", \"a\": \"s3cr3t\"}");
    s = file_store(":", "false", &d, &rc);
    ASSERT_EQ(rc, ERR_PARSE);
    ASSERT(strstr(d.msg, "s3cr3t") == NULL);
    unlink(path);
    write_secrets("{}");
    s = file_store(":", "maybe", &d, &rc);
    ASSERT_EQ(rc, ERR_INVAL);
    unlink(path);
    ASSERT_EQ(secrets_store_new("st", "secretstores.aws.ssm", NULL, NULL, 0, &s, &d), ERR_INVAL);
}

TEST(env_store_and_deny_rules)
{
    const char *keys[] = {"prefix"};
    const char *values[] = {"OUTRIGGER_T_"};
    err_detail_t d = {{0}};
    secrets_store_t *s = NULL, *plain = NULL;
    buf_t b;

    setenv("OUTRIGGER_T_ONE", "1", 1);
    setenv("DAPR_API_TOKEN", "tok", 1);
    ASSERT_EQ(secrets_store_new("env", "secretstores.local.env", keys, values, 1, &s, &d), 0);
    ASSERT_EQ(secrets_store_new("env2", "secretstores.local.env", NULL, NULL, 0, &plain, &d), 0);
    ASSERT_STREQ(value(s, "ONE", NULL), "1");
    ASSERT(value(s, "TWO", NULL) == NULL);
    ASSERT(value(plain, "DAPR_API_TOKEN", NULL) == NULL);
    ASSERT(value(plain, "dapr_api_token", NULL) == NULL);
    buf_init(&b, 1 << 20);
    ASSERT_EQ(secrets_render(plain, "DAPR_API_TOKEN", &b, &d), 0);
    ASSERT_STREQ(buf_ptr(&b), "{\"DAPR_API_TOKEN\":\"\"}");
    buf_reset(&b);
    ASSERT_EQ(secrets_render_bulk(s, NULL, NULL, &b, &d), 0);
    ASSERT_STREQ(buf_ptr(&b), "{\"ONE\":{\"ONE\":\"1\"}}");
    buf_reset(&b);
    ASSERT_EQ(secrets_render_bulk(plain, NULL, NULL, &b, &d), 0);
    ASSERT(strstr(buf_ptr(&b), "DAPR_API_TOKEN") == NULL);
    buf_free(&b);
    ASSERT(secrets_env_denied("APP_API_TOKEN"));
    ASSERT(secrets_env_denied("Dapr_Anything"));
    ASSERT(secrets_env_denied("A B"));
    ASSERT(secrets_env_denied(""));
    ASSERT(!secrets_env_denied("HOME"));
    ASSERT(secrets_envref_allowed("HOME"));
    setenv("DAPR_ENV_KEYS", "FOO HOME", 1);
    ASSERT(secrets_envref_allowed("HOME"));
    ASSERT(!secrets_envref_allowed("PATH"));
    unsetenv("DAPR_ENV_KEYS");
    secrets_store_free(s);
    secrets_store_free(plain);
}
