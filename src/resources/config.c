#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/str.h"
#include "resources/resources_int.h"

#define CONFIG_API_VERSION "dapr.io/v1alpha1"
#define CONFIG_KIND "Configuration"

static const res_limits_t default_limits = {RES_MAX_FILE_BYTES, RES_MAX_DEPTH, RES_MAX_NODES};

/* What the checks below need: the stream (for the pool and the file name) and the detail. */
struct ctx {
    res_yaml_t *y;
    const char *file;
    err_detail_t *d;
};

const char *res_node_kind_name(const res_node_t *n)
{
    switch (res_node_kind(n)) {
    case RES_NODE_MAP:
        return "a mapping";
    case RES_NODE_SEQ:
        return "a sequence";
    default:
        return res_node_is_null(n) ? "null" : "a string";
    }
}

/*
 * Reads @p field of map @p parent (whose dotted name is @p path) as an optional map: *out is the
 * map, or NULL when the field is absent or null. Anything else is ERR_RES_INVALID.
 */
static int opt_map(const struct ctx *c, const res_node_t *parent, const char *path,
                   const char *field, const res_node_t **out)
{
    const res_node_t *v = parent ? res_node_child(parent, field) : NULL;

    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != RES_NODE_MAP)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(v),
                         "%s%s%s: expected a mapping, found %s", path, *path ? "." : "", field,
                         res_node_kind_name(v));
    *out = v;
    return 0;
}

/* Like opt_map, for a string (any non-null scalar); *out is NULL when absent or null. */
static int opt_str(const struct ctx *c, const res_node_t *parent, const char *path,
                   const char *field, const char **out)
{
    const res_node_t *v = parent ? res_node_child(parent, field) : NULL;

    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != RES_NODE_SCALAR)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(v),
                         "%s%s%s: expected a string, found %s", path, *path ? "." : "", field,
                         res_node_kind_name(v));
    *out = res_node_scalar(v);
    return 0;
}

/* Requires top-level @p field to be the string @p want. */
static int want_str(const struct ctx *c, const res_node_t *root, const char *field,
                    const char *want)
{
    const char *s = NULL;
    int rc = opt_str(c, root, "", field, &s);

    if (rc < 0)
        return rc;
    if (s == NULL)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(root),
                         "%s: missing; expected \"%s\"", field, want);
    if (strcmp(s, want) != 0)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(res_node_child(root, field)),
                         "%s: expected \"%s\", found \"%.64s\"", field, want, s);
    return 0;
}

/* Fills cfg->name_resolution from spec.nameResolution (absent: all NULL). */
static int read_name_resolution(const struct ctx *c, const res_node_t *spec, res_config_t *cfg)
{
    static const char *const path = "spec.nameResolution";
    res_name_resolution_t *nr = &cfg->name_resolution;
    const res_node_t *node = NULL, *conf = NULL;
    res_kv_t *kv;
    size_t i, n = 0;
    int rc;

    rc = opt_map(c, spec, "spec", "nameResolution", &node);
    if (rc < 0 || node == NULL)
        return rc;
    rc = opt_str(c, node, path, "component", &nr->component);
    if (rc == 0)
        rc = opt_str(c, node, path, "version", &nr->version);
    if (rc == 0)
        rc = opt_map(c, node, path, "configuration", &conf);
    if (rc < 0 || conf == NULL)
        return rc;
    nr->config_node = conf;
    /* Only scalars go into the flat map; nested values stay reachable through config_node. */
    kv = res__alloc(c->y, res_node_count(conf) * sizeof(*kv) + 1);
    if (kv == NULL)
        return ERR_NOMEM;
    for (i = 0; i < res_node_count(conf); i++) {
        const res_node_t *v = res_node_at(conf, i);
        if (res_node_kind(v) != RES_NODE_SCALAR || res_node_is_null(v))
            continue;
        kv[n++] = (res_kv_t){res_node_key_at(conf, i), res_node_scalar(v)};
    }
    nr->config = kv;
    nr->config_count = n;
    return 0;
}

/*
 * Checks the parsed stream and derives the typed fields:
 * 1. exactly one document, a map;
 * 2. apiVersion and kind are Dapr's Configuration;
 * 3. metadata.name, spec and spec.nameResolution have the right shapes.
 */
static int build(const struct ctx *c, res_config_t *cfg)
{
    const res_node_t *root, *meta = NULL;
    int rc;

    if (res_yaml_doc_count(c->y) == 0)
        return res__errf(c->d, ERR_RES_INVALID, c->file, 1, "empty file; expected a %s",
                         CONFIG_KIND);
    if (res_yaml_doc_count(c->y) > 1)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(res_yaml_doc(c->y, 1)),
                         "more than one YAML document; expected a single %s", CONFIG_KIND);
    root = res_yaml_doc(c->y, 0);
    if (res_node_kind(root) != RES_NODE_MAP)
        return res__errf(c->d, ERR_RES_INVALID, c->file, res_node_line(root),
                         "expected a mapping at the top level, found %s", res_node_kind_name(root));
    cfg->root = root;
    rc = want_str(c, root, "apiVersion", CONFIG_API_VERSION);
    if (rc == 0)
        rc = want_str(c, root, "kind", CONFIG_KIND);
    if (rc == 0)
        rc = opt_map(c, root, "", "metadata", &meta);
    if (rc == 0)
        rc = opt_str(c, meta, "metadata", "name", &cfg->name);
    if (rc == 0)
        rc = opt_map(c, root, "", "spec", &cfg->spec);
    if (rc == 0)
        rc = read_name_resolution(c, cfg->spec, cfg);
    if (rc == 0 && cfg->name == NULL)
        cfg->name = "";
    return rc;
}

int res_config_parse(const res_limits_t *lim, const char *name, const char *data, size_t len,
                     unsigned flags, res_config_t **out, err_detail_t *d)
{
    buf_t expanded;
    res_config_t *cfg = NULL;
    struct ctx c = {NULL, NULL, d};
    int rc;

    if (lim == NULL)
        lim = &default_limits;
    buf_init(&expanded, lim->max_file_bytes);
    if (name == NULL || (data == NULL && len > 0) || out == NULL) {
        rc = err_set(d, ERR_INVAL, "res_config_parse: invalid arguments");
        goto out;
    }
    if (flags & RES_EXPAND_ENV) {
        if (len > lim->max_file_bytes) {
            rc = err_set(d, ERR_TOO_LARGE, "%s: file is larger than %zu bytes",
                         res__display_name(name), lim->max_file_bytes);
            goto out;
        }
        rc = res__expand_env(data ? data : "", len, &expanded);
        if (rc == ERR_TOO_LARGE) {
            rc = err_set(d, rc, "%s: larger than %zu bytes after expanding environment variables",
                         res__display_name(name), lim->max_file_bytes);
            goto out;
        }
        if (rc < 0) {
            rc = err_set(d, rc, "%s: out of memory expanding environment variables",
                         res__display_name(name));
            goto out;
        }
        data = buf_ptr(&expanded);
        len = expanded.len;
    }
    rc = res_yaml_parse(lim, name, data, len, &c.y, d);
    if (rc < 0)
        goto out;
    c.file = res__yaml_name(c.y);
    cfg = res__alloc(c.y, sizeof(*cfg));
    if (cfg == NULL) {
        rc = err_set(d, ERR_NOMEM, "%s: out of memory", c.file);
        goto out;
    }
    *cfg = (res_config_t){0};
    cfg->file = res__strndup(c.y, name, strlen(name));
    if (cfg->file == NULL) {
        rc = err_set(d, ERR_NOMEM, "%s: out of memory", c.file);
        goto out;
    }
    rc = build(&c, cfg);
    if (rc == ERR_NOMEM)
        err_set(d, rc, "%s: out of memory", c.file);
    if (rc < 0)
        goto out;
    cfg->yaml_ = c.y;
    c.y = NULL;
    *out = cfg;
out:
    res_yaml_free(c.y);
    buf_free(&expanded);
    return rc;
}

int res_config_load(const res_limits_t *lim, const char *path, res_config_t **out, err_detail_t *d)
{
    buf_t b;
    int rc;

    if (lim == NULL)
        lim = &default_limits;
    buf_init(&b, lim->max_file_bytes);
    if (path == NULL || out == NULL) {
        rc = err_set(d, ERR_INVAL, "res_config_load: invalid arguments");
        goto out;
    }
    rc = fs_read_file(path, res__display_name(path), &b, d);
    if (rc < 0)
        goto out;
    rc = res_config_parse(lim, path, buf_ptr(&b), b.len, RES_EXPAND_ENV, out, d);
out:
    buf_free(&b);
    return rc;
}

void res_config_free(res_config_t *c)
{
    if (c != NULL)
        res_yaml_free(c->yaml_);
}

const char *res_kv_get(const res_kv_t *kv, size_t n, const char *key)
{
    size_t i;

    if (kv == NULL || key == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        if (str_ieq(kv[i].key, strlen(kv[i].key), key))
            return kv[i].value;
    }
    return NULL;
}
