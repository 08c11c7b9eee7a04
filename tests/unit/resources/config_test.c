#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "resources/resources.h"
#include "test.h"

static const char sqlite_cfg[] = "apiVersion: dapr.io/v1alpha1\n"
                                 "kind: Configuration\n"
                                 "metadata:\n"
                                 "  name: appconfig\n"
                                 "spec:\n"
                                 "  nameResolution:\n"
                                 "    component: \"sqlite\"\n"
                                 "    version: v1\n"
                                 "    configuration:\n"
                                 "      connectionString: /tmp/nr.db\n"
                                 "      updateInterval: 5s\n"
                                 "      cleanupIntervalInSeconds: 3600\n"
                                 "      nothing: ~\n"
                                 "      nested:\n"
                                 "        deep: yes\n"
                                 "  accessControl:\n"
                                 "    defaultAction: deny\n"
                                 "    policies:\n"
                                 "    - appId: app1\n"
                                 "      operations: [{name: /op1, action: allow}]\n";

/* Parses @p text as a Configuration and expects failure @p code with a detail containing
 * @p want. */
static int parse_fails(const char *text, int code, const char *want, char *got, size_t got_len)
{
    res_config_t *c = NULL;
    err_detail_t d = {{0}};
    int rc = res_config_parse(NULL, "config.yaml", text, strlen(text), 0, &c, &d);

    snprintf(got, got_len, "rc=%s msg=%s", err_name(rc), d.msg);
    if (rc == 0)
        res_config_free(c);
    return rc == code && c == NULL && strstr(d.msg, want) != NULL;
}

#define ASSERT_FAILS(text, code, want)                                                             \
    do {                                                                                           \
        char got_[400];                                                                            \
        if (!parse_fails((text), (code), (want), got_, sizeof(got_)))                              \
            TEST_FAIL_("expected %s with \"%s\", got %s", #code, (want), got_);                    \
    } while (0)

TEST(config_reads_name_resolution)
{
    res_config_t *c = NULL;
    err_detail_t d = {{0}};
    size_t before = mem_used();

    ASSERT_EQ(res_config_parse(NULL, "config.yaml", sqlite_cfg, strlen(sqlite_cfg), 0, &c, &d), 0);
    ASSERT_STREQ(c->file, "config.yaml");
    ASSERT_STREQ(c->name, "appconfig");
    ASSERT_STREQ(c->name_resolution.component, "sqlite");
    ASSERT_STREQ(c->name_resolution.version, "v1");
    ASSERT_EQ(c->name_resolution.config_count, 3);
    ASSERT_STREQ(c->name_resolution.config[0].key, "connectionString");
    ASSERT_STREQ(c->name_resolution.config[0].value, "/tmp/nr.db");
    ASSERT_STREQ(res_kv_get(c->name_resolution.config, 3, "UPDATEINTERVAL"), "5s");
    ASSERT_STREQ(res_kv_get(c->name_resolution.config, 3, "cleanupIntervalInSeconds"), "3600");
    ASSERT(res_kv_get(c->name_resolution.config, 3, "nothing") == NULL);
    ASSERT(res_kv_get(c->name_resolution.config, 3, "nested") == NULL);
    ASSERT_STREQ(res_node_get_str(c->name_resolution.config_node, "nested.deep"), "yes");
    res_config_free(c);
    ASSERT_EQ(mem_used(), before);
}

TEST(config_tree_lookups)
{
    res_config_t *c = NULL;
    const res_node_t *acl, *ops;

    ASSERT_EQ(res_config_parse(NULL, "c.yaml", sqlite_cfg, strlen(sqlite_cfg), 0, &c, NULL), 0);
    acl = res_node_get(c->root, "spec.accessControl");
    ASSERT(acl != NULL);
    ASSERT_EQ(res_node_kind(acl), RES_NODE_MAP);
    ASSERT_EQ(res_node_line(acl), 17);
    ASSERT(res_node_get(c->spec, "accessControl") == acl);
    ASSERT_STREQ(res_node_get_str(acl, "defaultAction"), "deny");
    ASSERT_STREQ(res_node_get_str(c->root, "spec.accessControl.policies.0.appId"), "app1");
    ASSERT_STREQ(res_node_get_str(acl, "policies.0.operations.0.name"), "/op1");
    ASSERT(res_node_get(acl, "policies.1") == NULL);
    ASSERT(res_node_get(acl, "policies.x") == NULL);
    ASSERT(res_node_get(c->root, "") == c->root);
    ops = res_node_get(acl, "policies.0.operations");
    ASSERT_EQ(res_node_kind(ops), RES_NODE_SEQ);
    ASSERT_EQ(res_node_count(ops), 1);
    ASSERT(res_node_key_at(ops, 0) == NULL);
    ASSERT(res_node_get(c->root, "spec.mtls") == NULL);
    ASSERT(res_node_scalar(acl) == NULL);
    res_config_free(c);
}

TEST(config_scalars_and_nulls)
{
    static const char text[] = "a: ~\nb: null\nc: \"null\"\nd:\ne: ''\nf: 0x1F\ng: 'it''s'\n"
                               "h: |\n  two\n  lines\n"
                               "i: {}\n"
                               "j: []\n";
    res_yaml_t *y = NULL;
    const res_node_t *r;

    ASSERT_EQ(res_yaml_parse(NULL, "s.yaml", text, strlen(text), &y, NULL), 0);
    ASSERT_EQ(res_yaml_doc_count(y), 1);
    r = res_yaml_doc(y, 0);
    ASSERT(res_node_is_null(res_node_child(r, "a")));
    ASSERT(res_node_is_null(res_node_child(r, "b")));
    ASSERT(!res_node_is_null(res_node_child(r, "c")));
    ASSERT(res_node_is_null(res_node_child(r, "d")));
    ASSERT(!res_node_is_null(res_node_child(r, "e")));
    ASSERT(res_node_get_str(r, "a") == NULL);
    ASSERT_STREQ(res_node_get_str(r, "c"), "null");
    ASSERT_STREQ(res_node_get_str(r, "f"), "0x1F");
    ASSERT_STREQ(res_node_get_str(r, "g"), "it's");
    ASSERT_STREQ(res_node_get_str(r, "h"), "two\nlines\n");
    ASSERT_STREQ(res_node_key_at(r, 6), "g");
    ASSERT(res_node_child(r, "zz") == NULL);
    ASSERT_EQ(res_node_kind(res_node_child(r, "i")), RES_NODE_MAP);
    ASSERT_EQ(res_node_count(res_node_child(r, "i")), 0);
    ASSERT(res_node_child(res_node_child(r, "i"), "x") == NULL);
    ASSERT_EQ(res_node_kind(res_node_child(r, "j")), RES_NODE_SEQ);
    ASSERT(res_node_at(res_node_child(r, "j"), 0) == NULL);
    res_yaml_free(y);
}

TEST(config_missing_sections_are_defaults)
{
    static const char text[] = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n";
    res_config_t *c = NULL;

    ASSERT_EQ(res_config_parse(NULL, "c.yaml", text, strlen(text), 0, &c, NULL), 0);
    ASSERT_STREQ(c->name, "");
    ASSERT(c->spec == NULL);
    ASSERT(c->name_resolution.component == NULL);
    ASSERT_EQ(c->name_resolution.config_count, 0);
    ASSERT(c->name_resolution.config_node == NULL);
    res_config_free(c);
}

TEST(config_errors_name_file_line_field)
{
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  nameResolution:\n"
                 "    component: [sqlite]\n",
                 ERR_RES_INVALID,
                 "config.yaml:5: spec.nameResolution.component: expected a string, found a "
                 "sequence");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec:\n  nameResolution:\n"
                 "    configuration: 5s\n",
                 ERR_RES_INVALID,
                 "config.yaml:5: spec.nameResolution.configuration: expected a mapping");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nspec: [1]\n", ERR_RES_INVALID,
                 "config.yaml:3: spec: expected a mapping, found a sequence");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Component\n", ERR_RES_INVALID,
                 "config.yaml:2: kind: expected \"Configuration\", found \"Component\"");
    ASSERT_FAILS("kind: Configuration\n", ERR_RES_INVALID,
                 "config.yaml:1: apiVersion: missing; expected \"dapr.io/v1alpha1\"");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: {a: 1}\n",
                 ERR_RES_INVALID, "config.yaml:4: metadata.name: expected a string");
    ASSERT_FAILS("", ERR_RES_INVALID, "config.yaml:1: empty file");
    ASSERT_FAILS("- a\n", ERR_RES_INVALID, "config.yaml:1: expected a mapping at the top level");
    ASSERT_FAILS("apiVersion: dapr.io/v1alpha1\nkind: Configuration\n---\na: 1\n", ERR_RES_INVALID,
                 "config.yaml:4: more than one YAML document");
}

TEST(config_yaml_errors)
{
    ASSERT_FAILS("a: 1\nb: [1, 2\nc: 3\n", ERR_RES_YAML, "config.yaml:");
    ASSERT_FAILS("a: 1\n  b: 2\n", ERR_RES_YAML, "config.yaml:2: YAML:");
    ASSERT_FAILS("a: 1\nb: 2\na: 3\n", ERR_RES_YAML, "config.yaml:3: duplicate key \"a\"");
    ASSERT_FAILS("? [x]\n: 1\n", ERR_RES_YAML, "config.yaml:1: mapping keys must be scalars");
    ASSERT_FAILS("a: \"x\\0y\"\n", ERR_RES_YAML, "config.yaml:1: NUL byte in a scalar");
    ASSERT_FAILS("a: \xff\xfe\n", ERR_RES_YAML, "config.yaml:1: YAML: invalid");
}

TEST(config_refuses_aliases)
{
    static const char bomb[] = "a: &a [x, x, x, x, x, x, x, x, x]\n"
                               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                               "d: [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n";
    ASSERT_FAILS(bomb, ERR_RES_YAML, "config.yaml:2: YAML aliases (*name) are not supported");
}

TEST(config_limits)
{
    res_limits_t lim = {RES_MAX_FILE_BYTES, RES_MAX_DEPTH, RES_MAX_NODES};
    res_yaml_t *y = NULL;
    err_detail_t d = {{0}};
    char *big;
    size_t i, n;

    /* Depth: 64 nested sequences pass, 65 fail. */
    big = mem_alloc(1024);
    for (n = 0; n < 2; n++) {
        size_t depth = 64 + n;
        for (i = 0; i < depth; i++)
            big[i] = '[';
        for (i = 0; i < depth; i++)
            big[depth + i] = ']';
        ASSERT_EQ(res_yaml_parse(&lim, "deep.yaml", big, depth * 2, &y, &d),
                  n == 0 ? 0 : ERR_TOO_LARGE);
        res_yaml_free(y);
        y = NULL;
    }
    ASSERT_STREQ(d.msg, "deep.yaml:1: nesting deeper than 64 levels");
    mem_free(big);

    /* Size: one byte over the limit. */
    n = RES_MAX_FILE_BYTES + 1;
    big = mem_alloc(n);
    memset(big, ' ', n);
    ASSERT_EQ(res_yaml_parse(NULL, "big.yaml", big, n, &y, &d), ERR_TOO_LARGE);
    ASSERT_STREQ(d.msg, "big.yaml: file is larger than 1048576 bytes");
    ASSERT_EQ(res_yaml_parse(NULL, "big.yaml", big, n - 1, &y, &d), 0);
    ASSERT_EQ(res_yaml_doc_count(y), 0);
    res_yaml_free(y);
    y = NULL;

    /* Nodes: "[1,1,...]" with 100k scalars plus the sequence is one too many. */
    big[0] = '[';
    for (i = 0; i < 100000; i++) {
        big[1 + 2 * i] = '1';
        big[2 + 2 * i] = ',';
    }
    big[2 * i] = ']';
    ASSERT_EQ(res_yaml_parse(NULL, "many.yaml", big, 1 + 2 * i, &y, &d), ERR_TOO_LARGE);
    ASSERT_STREQ(d.msg, "many.yaml:1: more than 100000 YAML nodes");
    /* One scalar fewer fits exactly. */
    big[2 * i - 2] = ']';
    ASSERT_EQ(res_yaml_parse(NULL, "many.yaml", big, 2 * i - 1, &y, &d), 0);
    ASSERT_EQ(res_node_count(res_yaml_doc(y, 0)), 99999);
    res_yaml_free(y);
    mem_free(big);
}

TEST(config_expands_env_like_dapr)
{
    static const char text[] = "apiVersion: dapr.io/v1alpha1\nkind: Configuration\n"
                               "metadata:\n  name: ${OR_TEST_NAME}-$OR_TEST_NAME-$OR_UNSET-x\n"
                               "spec:\n  nameResolution:\n    configuration:\n"
                               "      a: \"cost $5 ${} $\"\n";
    res_config_t *c = NULL;

    setenv("OR_TEST_NAME", "cfg", 1);
    unsetenv("OR_UNSET");
    ASSERT_EQ(res_config_parse(NULL, "c.yaml", text, strlen(text), RES_EXPAND_ENV, &c, NULL), 0);
    ASSERT_STREQ(c->name, "cfg-cfg--x");
    /* Go: "$5" is the special variable 5 (unset), "${}" is dropped, a final "$" stays. */
    ASSERT_STREQ(res_kv_get(c->name_resolution.config, c->name_resolution.config_count, "a"),
                 "cost   $");
    res_config_free(c);
    ASSERT_EQ(res_config_parse(NULL, "c.yaml", text, strlen(text), 0, &c, NULL), 0);
    ASSERT_STREQ(c->name, "${OR_TEST_NAME}-$OR_TEST_NAME-$OR_UNSET-x");
    res_config_free(c);
}

TEST(config_load_from_file)
{
    char dir[] = "/tmp/outrigger-res-XXXXXX", path[128];
    res_config_t *c = NULL;
    err_detail_t d = {{0}};
    FILE *f;

    ASSERT(mkdtemp(dir) != NULL);
    snprintf(path, sizeof(path), "%s/config.yaml", dir);
    f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs(sqlite_cfg, f);
    fclose(f);
    ASSERT_EQ(res_config_load(NULL, path, &c, &d), 0);
    ASSERT_STREQ(c->file, path);
    ASSERT_STREQ(c->name_resolution.component, "sqlite");
    res_config_free(c);
    c = NULL;
    unlink(path);
    ASSERT_EQ(res_config_load(NULL, path, &c, &d), ERR_IO);
    ASSERT(strstr(d.msg, "config.yaml: cannot open: No such file") != NULL);
    rmdir(dir);
}

/* Every allocation failure on the way comes back as ERR_NOMEM with nothing leaked. */
TEST(config_out_of_memory_at_each_step)
{
    size_t before = mem_used();
    unsigned long n;
    int rc = ERR_NOMEM;

    for (n = 1; n < 10000 && rc == ERR_NOMEM; n++) {
        res_config_t *c = NULL;
        err_detail_t d = {{0}};
        mem_fail_after(n);
        rc = res_config_parse(NULL, "config.yaml", sqlite_cfg, strlen(sqlite_cfg), RES_EXPAND_ENV,
                              &c, &d);
        mem_fail_after(0);
        if (rc == ERR_NOMEM) {
            ASSERT(c == NULL);
            ASSERT(strstr(d.msg, "out of memory") != NULL);
            ASSERT_EQ(mem_used(), before);
        } else {
            ASSERT_EQ(rc, 0);
            ASSERT_STREQ(c->name_resolution.component, "sqlite");
            res_config_free(c);
        }
    }
    ASSERT_EQ(rc, 0);
    ASSERT(n > 3);
    ASSERT_EQ(mem_used(), before);
}
