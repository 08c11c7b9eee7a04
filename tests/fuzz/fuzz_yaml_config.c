/*
 * fuzz_yaml_config — the YAML tree and the Configuration loader on arbitrary bytes.
 *
 * Invariants checked beyond "no crash, no leak":
 * - a parsed tree respects the limits it was given (depth, node count), every line is ≥ 1, map
 *   keys are unique and each one is found again by res_node_child and res_node_get;
 * - with tight limits, success implies the same tree shape rules, and failure never leaks;
 * - a loaded Configuration has a name and its flat nameResolution map answers for its own keys;
 * - all memory taken through base/alloc is given back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "resources/resources.h"
#include "fuzz.h"

/* Walks @p n, checks the invariants, and returns how many nodes it holds (keys included). */
static size_t walk(const res_node_t *n, unsigned depth, const res_limits_t *lim)
{
    size_t i, total = 1;

    CHECK(res_node_line(n) >= 1);
    switch (res_node_kind(n)) {
    case RES_NODE_SCALAR:
        CHECK(res_node_scalar(n) != NULL);
        CHECK(res_node_count(n) == 0);
        break;
    case RES_NODE_MAP:
        CHECK(depth + 1 <= lim->max_depth);
        for (i = 0; i < res_node_count(n); i++) {
            const char *key = res_node_key_at(n, i);
            CHECK(key != NULL);
            CHECK(res_node_child(n, key) == res_node_at(n, i));
            if (strchr(key, '.') == NULL && key[0] != '\0')
                CHECK(res_node_get(n, key) == res_node_at(n, i));
            total += 1 + walk(res_node_at(n, i), depth + 1, lim);
        }
        break;
    case RES_NODE_SEQ:
        CHECK(depth + 1 <= lim->max_depth);
        CHECK(res_node_key_at(n, 0) == NULL);
        for (i = 0; i < res_node_count(n); i++)
            total += walk(res_node_at(n, i), depth + 1, lim);
        break;
    default:
        abort();
    }
    return total;
}

static void check_tree(const res_limits_t *lim, const char *data, size_t size)
{
    res_yaml_t *y = NULL;
    err_detail_t d = {{0}};
    size_t i, nodes = 0;

    if (res_yaml_parse(lim, "fuzz.yaml", data, size, &y, &d) < 0) {
        CHECK(d.msg[0] != '\0');
        return;
    }
    for (i = 0; i < res_yaml_doc_count(y); i++)
        nodes += walk(res_yaml_doc(y, i), 0, lim);
    CHECK(nodes <= lim->max_nodes);
    CHECK(res_yaml_doc(y, res_yaml_doc_count(y)) == NULL);
    res_yaml_free(y);
}

static void check_config(const char *data, size_t size, unsigned flags)
{
    res_config_t *c = NULL;
    err_detail_t d = {{0}};
    size_t i;

    if (res_config_parse(NULL, "fuzz.yaml", data, size, flags, &c, &d) < 0) {
        CHECK(d.msg[0] != '\0');
        return;
    }
    CHECK(c->name != NULL && c->root != NULL);
    CHECK(strcmp(res_node_get_str(c->root, "kind"), "Configuration") == 0);
    for (i = 0; i < c->name_resolution.config_count; i++)
        CHECK(res_kv_get(c->name_resolution.config, c->name_resolution.config_count,
                         c->name_resolution.config[i].key) != NULL);
    (void)res_node_get(c->root, "spec.accessControl.policies.0.appId");
    res_config_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const res_limits_t tight = {4096, 8, 200};
    const res_limits_t dflt = {RES_MAX_FILE_BYTES, RES_MAX_DEPTH, RES_MAX_NODES};
    size_t before = mem_used();

    check_tree(&dflt, (const char *)data, size);
    check_tree(&tight, (const char *)data, size);
    check_config((const char *)data, size, 0);
    check_config((const char *)data, size, RES_EXPAND_ENV);
    CHECK(mem_used() == before);
    return 0;
}
