#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "resources/component.h"
#include "resources/resources.h"
#include "test.h"

/* A fresh temporary directory per test; removed (with its files) by cleanup(). */
static char dir[256];

static void mkdir_tmp(void)
{
    snprintf(dir, sizeof(dir), "/tmp/outrigger-comp-XXXXXX");
    if (mkdtemp(dir) == NULL)
        abort();
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "w");
    if (f == NULL)
        abort();
    fputs(text, f);
    fclose(f);
}

static void cleanup(void)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        abort();
}

static int load(const char *app, res_components_t **out, err_detail_t *d)
{
    const char *dirs[] = {dir};
    return res_components_load(dirs, 1, app, "default", out, d);
}

static const char secrets_json[] = "{\"tok\": \"s3cr3t-value\", \"db\": {\"user\": \"admin\", "
                                   "\"port\": 5432, \"tls\": true}, \"list\": [\"a\", \"b\"]}";

TEST(components_multi_document_scopes_namespace)
{
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};
    const res_component_t *c;
    size_t before = mem_used();

    mkdir_tmp();
    write_file("a.yaml", "apiVersion: dapr.io/v1alpha1\n"
                         "kind: Component\n"
                         "metadata:\n"
                         "  name: bearer\n"
                         "spec:\n"
                         "  type: middleware.http.bearer\n"
                         "  version: v1\n"
                         "  metadata:\n"
                         "  - name: issuer\n"
                         "    value: https://issuer.example\n"
                         "  - name: audience\n"
                         "    value: 42\n"
                         "  - name: structured\n"
                         "    value: {list: [1, -2.5e3, \"3\", x, true, null, 01], m: {}}\n"
                         "  - name: emptyList\n"
                         "    value: []\n"
                         "  - name: consumerID\n"
                         "    value: \"{appID}|{namespace}|{uuid}|{other}\"\n"
                         "---\n"
                         "apiVersion: dapr.io/v1alpha1\n"
                         "kind: Component\n"
                         "metadata:\n"
                         "  name: other-app-only\n"
                         "spec:\n"
                         "  type: middleware.http.bearer\n"
                         "scopes: [someone-else]\n"
                         "---\n"
                         "apiVersion: dapr.io/v1alpha1\n"
                         "kind: Component\n"
                         "metadata:\n"
                         "  name: other-ns\n"
                         "  namespace: prod\n"
                         "spec:\n"
                         "  type: middleware.http.bearer\n"
                         "---\n"
                         "apiVersion: dapr.io/v1alpha1\n"
                         "kind: Resiliency\n"
                         "metadata:\n"
                         "  name: ignored\n");
    write_file("b.yml", "apiVersion: dapr.io/v1alpha1\n"
                        "kind: Component\n"
                        "metadata:\n"
                        "  name: scoped\n"
                        "  namespace: default\n"
                        "spec:\n"
                        "  type: middleware.http.oauth2clientcredentials\n"
                        "scopes: [agent, other]\n");
    write_file("notes.txt", "not: yaml: at all: [\n");
    ASSERT_EQ(load("agent", &cs, &d), 0);
    ASSERT_EQ(res_components_count(cs), 2);
    c = res_components_at(cs, 0);
    ASSERT_STREQ(c->name, "bearer");
    ASSERT_STREQ(c->type, "middleware.http.bearer");
    ASSERT_STREQ(c->version, "v1");
    ASSERT_STREQ(c->ns, "default");
    ASSERT_EQ(c->line, 1);
    ASSERT(strstr(c->file, "a.yaml") != NULL);
    ASSERT_STREQ(res_component_meta(c, "ISSUER"), "https://issuer.example");
    ASSERT_STREQ(res_component_meta(c, "audience"), "42");
    ASSERT(res_component_meta(c, "nope") == NULL);
    ASSERT_STREQ(res_component_meta(c, "structured"),
                 "{\"list\":[1,-2.5e3,\"3\",\"x\",true,null,\"01\"],\"m\":{}}");
    ASSERT_STREQ(res_component_meta(c, "emptyList"), "[]");
    {
        const char *v = res_component_meta(c, "consumerID");
        ASSERT_EQ(strlen(v), strlen("agent|default.agent|") + 36 + strlen("|{other}"));
        ASSERT(strncmp(v, "agent|default.agent|", 20) == 0);
        ASSERT(v[20 + 14] == '4');
        ASSERT_STREQ(v + 20 + 36, "|{other}");
    }
    c = res_components_find(cs, "scoped");
    ASSERT(c != NULL);
    ASSERT_STREQ(c->version, "v1");
    ASSERT(res_components_find(cs, "other-app-only") == NULL);
    ASSERT(res_components_find(cs, "other-ns") == NULL);
    ASSERT(res_components_at(cs, 2) == NULL);
    res_components_free(cs);
    cleanup();
    ASSERT_EQ(mem_used(), before);
}

TEST(components_secret_refs_resolve)
{
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};
    const res_component_t *c;
    const res_endpoint_t *e;
    char text[2048];

    mkdir_tmp();
    write_file("secrets.json", secrets_json);
    setenv("OUTRIGGER_TEST_CLIENT", "client-from-env", 1);
    snprintf(text, sizeof(text),
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: localsecrets}\n"
             "spec:\n"
             "  type: secretstores.local.file\n"
             "  version: v1\n"
             "  metadata:\n"
             "  - {name: secretsFile, value: %s/secrets.json}\n"
             "  - {name: nestedSeparator, value: \".\"}\n"
             "---\n"
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: Component\n"
             "metadata: {name: cc}\n"
             "spec:\n"
             "  type: middleware.http.oauth2clientcredentials\n"
             "  metadata:\n"
             "  - name: clientSecret\n"
             "    secretKeyRef: {name: tok, key: tok}\n"
             "  - name: clientID\n"
             "    envRef: OUTRIGGER_TEST_CLIENT\n"
             "  - name: port\n"
             "    secretKeyRef: {name: db.port}\n"
             "  - name: first\n"
             "    secretKeyRef: {name: list.0}\n"
             "auth: {secretStore: localsecrets}\n"
             "---\n"
             "apiVersion: dapr.io/v1alpha1\n"
             "kind: HTTPEndpoint\n"
             "metadata: {name: remote}\n"
             "spec:\n"
             "  baseUrl: http://127.0.0.1:9/base/\n"
             "  headers:\n"
             "  - name: Authorization\n"
             "    secretKeyRef: {name: tok, key: tok}\n"
             "  - name: X-Plain\n"
             "    value: plain\n"
             "auth:\n"
             "  secretStore: localsecrets\n",
             dir);
    write_file("all.yaml", text);
    ASSERT_EQ(load("agent", &cs, &d), 0);
    ASSERT_EQ(res_components_secret_store_count(cs), 1);
    ASSERT(res_components_secret_store(cs, "localsecrets") != NULL);
    c = res_components_find(cs, "cc");
    ASSERT_STREQ(res_component_meta(c, "clientSecret"), "s3cr3t-value");
    ASSERT_STREQ(res_component_meta(c, "clientID"), "client-from-env");
    ASSERT_STREQ(res_component_meta(c, "port"), "5432");
    ASSERT_STREQ(res_component_meta(c, "first"), "a");
    ASSERT_EQ(res_components_endpoint_count(cs), 1);
    e = res_components_endpoint(cs, "remote");
    ASSERT(e != NULL);
    ASSERT_STREQ(e->base_url, "http://127.0.0.1:9/base");
    ASSERT_EQ(e->nheaders, 2);
    ASSERT_STREQ(e->headers[0].name, "Authorization");
    ASSERT_STREQ(e->headers[0].value, "s3cr3t-value");
    ASSERT_STREQ(e->headers[1].value, "plain");
    ASSERT(e->root_ca == NULL);
    res_components_free(cs);
    cleanup();
}

/* Loads @p text as the only file and expects @p code with @p want in the detail. */
static int fails_with(const char *text, int code, const char *want, char *got, size_t n)
{
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};
    int rc;

    mkdir_tmp();
    write_file("bad.yaml", text);
    rc = load("agent", &cs, &d);
    snprintf(got, n, "rc=%s msg=%s", err_name(rc), d.msg);
    if (rc == 0)
        res_components_free(cs);
    cleanup();
    return rc == code && strstr(d.msg, want) != NULL && strstr(d.msg, "s3cr3t") == NULL;
}

#define ASSERT_FAILS(text, code, want)                                                             \
    do {                                                                                           \
        char got_[400];                                                                            \
        if (!fails_with((text), (code), (want), got_, sizeof(got_)))                               \
            TEST_FAIL_("expected %s with \"%s\", got %s", #code, (want), got_);                    \
    } while (0)

#define HDR "apiVersion: dapr.io/v1alpha1\nkind: Component\n"

TEST(components_errors_have_file_and_line)
{
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec: {version: v1}\n", ERR_RES_INVALID,
                 "bad.yaml:4: spec.type: missing");
    ASSERT_FAILS(HDR "spec: {type: a.b}\n", ERR_RES_INVALID, "bad.yaml:1: metadata.name: missing");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n  - value: 1\n",
                 ERR_RES_INVALID, "bad.yaml:7: spec.metadata.0.name: missing");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata: {a: b}\n",
                 ERR_RES_INVALID, "bad.yaml:6: spec.metadata: expected a sequence");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                     "  - name: k\n    secretKeyRef: {name: tok}\n",
                 ERR_RES_INVALID,
                 "bad.yaml:8: spec.metadata.0.secretKeyRef: the resource names "
                 "no auth.secretStore");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                     "  - name: k\n    secretKeyRef: {name: tok}\nauth: {secretStore: nope}\n",
                 ERR_NOT_FOUND, "bad.yaml:8: spec.metadata.0.secretKeyRef: secret store nope is");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                     "  - name: k\n    envRef: DAPR_API_TOKEN\n",
                 ERR_RES_INVALID, "bad.yaml:8: spec.metadata.0.envRef: reading DAPR_API_TOKEN");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                     "  - name: k\n    envRef: app_api_token\n",
                 ERR_RES_INVALID, "envRef: reading app_api_token is not allowed");
    ASSERT_FAILS(HDR "metadata: {name: x}\nspec: {type: a.b}\n---\n" HDR
                     "metadata: {name: x}\nspec: {type: a.c}\n",
                 ERR_RES_INVALID, "bad.yaml:6: metadata.name: a Component named x is already");
    ASSERT_FAILS("apiVersion: v2\nkind: Component\nmetadata: {name: x}\n", ERR_RES_INVALID,
                 "bad.yaml:1: apiVersion: expected");
    ASSERT_FAILS(HDR "metadata: {name: s}\nspec:\n  type: secretstores.local.file\n", ERR_INVAL,
                 "bad.yaml:1: secret store s: missing local secrets file in metadata");
    ASSERT_FAILS(HDR "metadata: {name: s}\nspec:\n  type: secretstores.hashicorp.vault\n---\n" HDR
                     "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                     "  - name: k\n    secretKeyRef: {name: tok}\nauth: {secretStore: s}\n",
                 ERR_RES_INVALID,
                 "bad.yaml:14: spec.metadata.0.secretKeyRef: secret store s has type "
                 "secretstores.hashicorp.vault, which is not supported");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\n"
                 "spec: {baseUrl: ftp://x}\n",
                 ERR_RES_INVALID, "bad.yaml:4: spec.baseUrl: expected an http:// or https:// URL");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\n"
                 "spec: {headers: []}\n",
                 ERR_RES_INVALID, "bad.yaml:4: spec.baseUrl: missing");
    ASSERT_FAILS("kind: Component\nmetadata: [\n", ERR_RES_YAML, "bad.yaml");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\n"
                 "spec: {baseUrl: \"https://\"}\n",
                 ERR_RES_INVALID, "bad.yaml:4: spec.baseUrl: expected an http:// or https:// URL");
    ASSERT_FAILS(
        "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\n"
        "spec:\n  baseUrl: http://x\n  headers:\n  - {name: X-Key, value: \"a\\r\\nb: s3cr3t\"}\n",
        ERR_RES_INVALID, "bad.yaml:1: spec.headers.0 (X-Key): the value contains a line");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: e}\n"
                 "spec:\n  baseUrl: http://x\n  headers:\n  - {name: \"X Key\", value: v}\n",
                 ERR_RES_INVALID, "bad.yaml:1: spec.headers.0.name: not a valid HTTP header name");
}

TEST(components_missing_secret_names_no_value)
{
    char text[1024], got[400];

    mkdir_tmp();
    write_file("secrets.json", secrets_json);
    snprintf(text, sizeof(text),
             HDR "metadata: {name: st}\nspec:\n  type: secretstores.local.file\n  metadata:\n"
                 "  - {name: secretsFile, value: %s/secrets.json}\n"
                 "---\n" HDR "metadata: {name: x}\nspec:\n  type: a.b\n  metadata:\n"
                 "  - name: k\n    secretKeyRef: {name: tok, key: other}\n"
                 "auth: {secretStore: st}\n",
             dir);
    write_file("a.yaml", text);
    {
        res_components_t *cs = NULL;
        err_detail_t d = {{0}};
        int rc = load("agent", &cs, &d);
        snprintf(got, sizeof(got), "%s", d.msg);
        if (rc == 0)
            res_components_free(cs);
        ASSERT_EQ(rc, ERR_NOT_FOUND);
    }
    cleanup();
    ASSERT(strstr(got, "a.yaml:16: spec.metadata.0.secretKeyRef: store st: key other not found "
                       "in secret tok") != NULL);
    ASSERT(strstr(got, "s3cr3t") == NULL);
}

TEST(components_unsupported_store_unreferenced_is_skipped)
{
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};

    mkdir_tmp();
    write_file("vault.yaml",
               HDR "metadata: {name: vault}\nspec:\n  type: secretstores.hashicorp.vault\n");
    ASSERT_EQ(load("agent", &cs, &d), 0);
    ASSERT_EQ(res_components_count(cs), 1);
    ASSERT_EQ(res_components_secret_store_count(cs), 0);
    res_components_free(cs);
    cleanup();
}

TEST(components_missing_dir_is_empty)
{
    const char *dirs[] = {"/nonexistent/outrigger-components"};
    res_components_t *cs = NULL;
    err_detail_t d = {{0}};

    ASSERT_EQ(res_components_load(dirs, 1, "a", "default", &cs, &d), 0);
    ASSERT_EQ(res_components_count(cs), 0);
    ASSERT(res_components_endpoint(cs, "x") == NULL);
    res_components_free(cs);
    ASSERT_EQ(res_components_load(NULL, 0, "a", "default", &cs, &d), 0);
    res_components_free(cs);
}

TEST(res_dir_files_lists_yaml_in_name_order)
{
    res_files_t f = {0};
    err_detail_t d = {{0}};
    char sub[300], want[300];
    size_t before = mem_used();

    mkdir_tmp();
    write_file("b.yaml", "x: 1\n");
    write_file("a.yml", "x: 1\n");
    write_file(".hidden.yaml", "x: 1\n");
    write_file("notes.txt", "x\n");
    snprintf(sub, sizeof(sub), "%s/dir.yaml", dir); /* a directory, not a file */
    ASSERT_EQ(mkdir(sub, 0700), 0);
    ASSERT_EQ(res_dir_files(dir, 10, &f, &d), 0);
    ASSERT_EQ(f.n, 2);
    snprintf(want, sizeof(want), "%s/a.yml", dir);
    ASSERT_STREQ(f.paths[0], want);
    snprintf(want, sizeof(want), "%s/b.yaml", dir);
    ASSERT_STREQ(f.paths[1], want);
    /* A second call appends; max bounds the total. */
    ASSERT_EQ(res_dir_files(dir, 3, &f, &d), ERR_TOO_LARGE);
    ASSERT_EQ(f.n, 3);
    res_files_free(&f);
    ASSERT_EQ(f.n, 0);
    cleanup();
    ASSERT_EQ(res_dir_files(dir, 10, &f, &d), ERR_NOT_FOUND);
    ASSERT_EQ(f.n, 0);
    ASSERT_EQ(mem_used(), before);
}
