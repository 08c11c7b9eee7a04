/*
 * The local secret stores. The file store reads its JSON once, at build time, into a flat list of
 * secrets (each a small list of key/value pairs); the env store reads the environment on demand.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/fs.h"
#include "base/str.h"
#include "secrets/secrets.h"

extern char **environ;

#define TYPE_FILE "secretstores.local.file"
#define TYPE_ENV "secretstores.local.env"
#define PATH_KEY_MAX 4096 /* longest flattened key */

/* One secret: name → pairs. */
typedef struct secret {
    char *name;    /* owned */
    char **keys;   /* owned, n of them */
    char **values; /* owned, n of them; zeroed before free */
    size_t n;
} secret_t;

struct secrets_store {
    char *name;        /* owned */
    bool env;          /* env store (else file store) */
    char *prefix;      /* env: prepended to names; owned, "" when unset */
    secret_t *secrets; /* file: owned array */
    size_t count, cap; /* file: used / allocated entries */
    size_t pairs;      /* file: total pairs, bounded by SECRETS_MAX_ENTRIES */
    char sep[16];      /* file: nestedSeparator */
    bool multi;        /* file: multiValued */
};

bool secrets_type_supported(const char *type)
{
    return type != NULL && (strcmp(type, TYPE_FILE) == 0 || strcmp(type, TYPE_ENV) == 0);
}

static const char *meta(const char *const *keys, const char *const *values, size_t n,
                        const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (keys[i] != NULL && str_ieq(keys[i], strlen(keys[i]), key))
            return values[i];
    }
    return NULL;
}

static void wipe_free(char *s)
{
    if (s != NULL) {
        explicit_bzero(s, strlen(s));
        mem_free(s);
    }
}

void secrets_store_free(secrets_store_t *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->count; i++) {
        secret_t *e = &s->secrets[i];
        for (size_t j = 0; j < e->n; j++) {
            mem_free(e->keys[j]);
            wipe_free(e->values[j]);
        }
        mem_free(e->keys);
        mem_free(e->values);
        mem_free(e->name);
    }
    mem_free(s->secrets);
    mem_free(s->prefix);
    mem_free(s->name);
    mem_free(s);
}

const char *secrets_store_name(const secrets_store_t *s)
{
    return s ? s->name : "";
}

/* The text a leaf stands for: strings verbatim, everything else its compact JSON. NULL on OOM. */
static char *leaf_text(json_t *v)
{
    char *js, *out;

    if (json_is_string(v))
        return mem_strndup(json_string_value(v), json_string_length(v));
    js = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
    if (js == NULL)
        return NULL;
    out = mem_strdup(js);
    explicit_bzero(js, strlen(js));
    free(js); /* checksrc: allow free */ /* jansson's own allocation */
    return out;
}

/* Adds a new secret named @p name to @p s and returns it. */
static secret_t *add_secret(secrets_store_t *s, const char *name)
{
    secret_t *e;

    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->secrets = mem_realloc(s->secrets, s->cap * sizeof(*s->secrets));
    }
    e = &s->secrets[s->count++];
    *e = (secret_t){mem_strdup(name), NULL, NULL, 0};
    return e;
}

/* Adds the pair @p key → text of @p v to secret @p e. */
static int add_pair(secrets_store_t *s, secret_t *e, const char *key, json_t *v, err_detail_t *d)
{
    char *text;

    if (++s->pairs > SECRETS_MAX_ENTRIES)
        return err_set(d, ERR_TOO_LARGE, "secrets file has more than %d keys", SECRETS_MAX_ENTRIES);
    text = leaf_text(v);
    if (text == NULL)
        return err_set(d, ERR_NOMEM, "out of memory reading secrets");
    e->keys = mem_realloc(e->keys, (e->n + 1) * sizeof(*e->keys));
    e->values = mem_realloc(e->values, (e->n + 1) * sizeof(*e->values));
    e->keys[e->n] = mem_strdup(key);
    e->values[e->n] = text;
    e->n++;
    return 0;
}

static int flatten(secrets_store_t *s, secret_t *into, json_t *v, char *path, size_t plen,
                   unsigned depth, err_detail_t *d);

/* Appends "<sep><key>" (just the key at the top) to the @p plen bytes of @p path and flattens
 * @p child below it. */
static int flatten_child(secrets_store_t *s, secret_t *into, json_t *child, char *path, size_t plen,
                         const char *key, size_t kl, unsigned depth, err_detail_t *d)
{
    size_t seplen = strlen(s->sep), nl = plen + (plen ? seplen : 0) + kl;

    if (nl >= PATH_KEY_MAX)
        return err_set(d, ERR_TOO_LARGE, "secrets file key longer than %d bytes", PATH_KEY_MAX);
    if (plen)
        memcpy(path + plen, s->sep, seplen);
    memcpy(path + nl - kl, key, kl);
    path[nl] = '\0';
    return flatten(s, into, child, path, nl, depth + 1, d);
}

/*
 * Walks @p v below the flattened key in @p path (its first @p plen bytes), calling add_pair for
 * every leaf: into a new secret per leaf (@p into NULL, multiValued=false) or into @p into.
 */
static int flatten(secrets_store_t *s, secret_t *into, json_t *v, char *path, size_t plen,
                   unsigned depth, err_detail_t *d)
{
    int rc = 0;

    if (depth > SECRETS_MAX_DEPTH)
        return err_set(d, ERR_TOO_LARGE, "secrets file nests deeper than %d", SECRETS_MAX_DEPTH);
    if (json_is_object(v) || json_is_array(v)) {
        const char *k;
        json_t *child;
        size_t idx;
        char num[24];

        if (json_is_object(v)) {
            json_object_foreach(v, k, child)
            {
                rc = flatten_child(s, into, child, path, plen, k, strlen(k), depth, d);
                if (rc < 0)
                    return rc;
            }
        } else {
            json_array_foreach(v, idx, child)
            {
                size_t kl = (size_t)snprintf(num, sizeof(num), "%zu", idx);
                rc = flatten_child(s, into, child, path, plen, num, kl, depth, d);
                if (rc < 0)
                    return rc;
            }
        }
        path[plen] = '\0';
        return 0;
    }
    return add_pair(s, into ? into : add_secret(s, path), path, v, d);
}

/* Loads the file store's secrets from @p path. */
static int load_file(secrets_store_t *s, const char *path, err_detail_t *d)
{
    buf_t b;
    json_error_t jerr;
    json_t *doc = NULL, *v;
    const char *k;
    char *key = mem_alloc(PATH_KEY_MAX);
    char name[320];
    int rc;

    snprintf(name, sizeof(name), "secrets file %.300s", path);
    buf_init(&b, SECRETS_MAX_FILE_BYTES);
    rc = fs_read_file(path, name, &b, d);
    if (rc < 0)
        goto out;
    doc = json_loadb(buf_ptr(&b), b.len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL || !json_is_object(doc)) {
        /* jerr.text may quote the file's bytes: say only where it broke. */
        rc = err_set(d, ERR_PARSE, "secrets file %s: %s at line %d", path,
                     doc == NULL ? "invalid JSON" : "expected a JSON object", jerr.line);
        goto out;
    }
    key[0] = '\0';
    if (!s->multi) {
        rc = flatten(s, NULL, doc, key, 0, 0, d);
        goto out;
    }
    /* multiValued: each top-level string is a one-key secret, each object one secret with its
     * flattened keys; other top-level values are dropped, as in Dapr. */
    json_object_foreach(doc, k, v)
    {
        if (json_is_string(v)) {
            rc = add_pair(s, add_secret(s, k), k, v, d);
        } else if (json_is_object(v)) {
            key[0] = '\0';
            rc = flatten(s, add_secret(s, k), v, key, 0, 1, d);
        }
        if (rc < 0)
            break;
    }
out:
    if (b.ptr != NULL)
        explicit_bzero(b.ptr, b.len);
    buf_free(&b);
    json_decref(doc);
    mem_free(key);
    return rc;
}

int secrets_store_new(const char *name, const char *type, const char *const *keys,
                      const char *const *values, size_t n, secrets_store_t **out, err_detail_t *d)
{
    secrets_store_t *s;
    const char *v;
    int rc = 0;

    if (name == NULL || type == NULL || (n > 0 && (keys == NULL || values == NULL)) || out == NULL)
        return err_set(d, ERR_INVAL, "secrets_store_new: invalid arguments");
    if (!secrets_type_supported(type))
        return err_set(d, ERR_INVAL, "secret store type %s is not supported", type);
    s = mem_calloc(sizeof(*s));
    s->name = mem_strdup(name);
    s->env = strcmp(type, TYPE_ENV) == 0;
    if (s->env) {
        v = meta(keys, values, n, "prefix");
        s->prefix = mem_strdup(v ? v : "");
        *out = s;
        return 0;
    }
    v = meta(keys, values, n, "nestedSeparator");
    if (v == NULL || v[0] == '\0')
        v = ":";
    if (strlen(v) >= sizeof(s->sep)) {
        rc = err_set(d, ERR_INVAL, "nestedSeparator is longer than %zu bytes", sizeof(s->sep) - 1);
        goto fail;
    }
    memcpy(s->sep, v, strlen(v) + 1);
    v = meta(keys, values, n, "multiValued");
    if (v != NULL && v[0] != '\0') {
        if (str_ieq(v, strlen(v), "true") || strcmp(v, "1") == 0)
            s->multi = true;
        else if (!str_ieq(v, strlen(v), "false") && strcmp(v, "0") != 0) {
            rc = err_set(d, ERR_INVAL, "multiValued: expected true or false, found \"%.32s\"", v);
            goto fail;
        }
    }
    v = meta(keys, values, n, "secretsFile");
    if (v == NULL || v[0] == '\0') {
        rc = err_set(d, ERR_INVAL, "missing local secrets file in metadata");
        goto fail;
    }
    rc = load_file(s, v, d);
    if (rc < 0)
        goto fail;
    *out = s;
    return 0;
fail:
    secrets_store_free(s);
    return rc;
}

bool secrets_env_denied(const char *name)
{
    size_t n = name ? strlen(name) : 0;

    if (n == 0 || strchr(name, ' ') != NULL)
        return true;
    return str_ieq(name, n, "APP_API_TOKEN") || (n >= 5 && str_ieq(name, 5, "DAPR_"));
}

bool secrets_envref_allowed(const char *name)
{
    const char *allow = getenv("DAPR_ENV_KEYS");
    size_t n;

    if (secrets_env_denied(name))
        return false;
    if (allow == NULL || allow[0] == '\0')
        return true;
    n = strlen(name);
    for (const char *p = allow; *p;) {
        const char *e = p;
        while (*e && *e != ' ')
            e++;
        if ((size_t)(e - p) == n && memcmp(p, name, n) == 0)
            return true;
        p = *e ? e + 1 : e;
    }
    return false;
}

/* The env store's variable for @p name: its value, or NULL when denied or unset. */
static const char *env_lookup(const secrets_store_t *s, const char *name, bool *denied)
{
    char full[1024];
    size_t pl = strlen(s->prefix), nl = strlen(name);

    *denied = false;
    if (pl + nl >= sizeof(full)) {
        *denied = true;
        return NULL;
    }
    memcpy(full, s->prefix, pl);
    memcpy(full + pl, name, nl + 1);
    if (secrets_env_denied(full)) {
        *denied = true;
        return NULL;
    }
    return getenv(full);
}

static const secret_t *find(const secrets_store_t *s, const char *name)
{
    for (size_t i = 0; i < s->count; i++) {
        if (strcmp(s->secrets[i].name, name) == 0)
            return &s->secrets[i];
    }
    return NULL;
}

int secrets_get_value(const secrets_store_t *s, const char *name, const char *key, char **out,
                      err_detail_t *d)
{
    const secret_t *e;
    bool denied = false;

    if (s == NULL || name == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "secrets_get_value: invalid arguments");
    if (key == NULL || key[0] == '\0')
        key = name;
    if (s->env) {
        const char *v = strcmp(key, name) == 0 ? env_lookup(s, name, &denied) : NULL;
        if (v == NULL || v[0] == '\0')
            return err_set(d, ERR_NOT_FOUND, "secret %s not found%s", name,
                           denied ? " (reading this variable is not allowed)" : "");
        *out = mem_strdup(v);
        return 0;
    }
    e = find(s, name);
    if (e == NULL)
        return err_set(d, ERR_NOT_FOUND, "secret %s not found", name);
    for (size_t j = 0; j < e->n; j++) {
        if (strcmp(e->keys[j], key) == 0) {
            if (e->values[j][0] == '\0')
                break;
            *out = mem_strdup(e->values[j]);
            return 0;
        }
    }
    return err_set(d, ERR_NOT_FOUND, "key %s not found in secret %s", key, name);
}

static int render_pair(buf_t *out, const char *k, const char *v, bool first)
{
    int rc = first ? 0 : buf_append(out, ",", 1);
    rc = rc ? rc : buf_append(out, "\"", 1);
    rc = rc ? rc : buf_append_json_str(out, k, strlen(k));
    rc = rc ? rc : buf_append(out, "\":\"", 3);
    rc = rc ? rc : buf_append_json_str(out, v, strlen(v));
    return rc ? rc : buf_append(out, "\"", 1);
}

static int render_secret(const secret_t *e, buf_t *out)
{
    int rc = buf_append(out, "{", 1);
    for (size_t j = 0; rc == 0 && j < e->n; j++)
        rc = render_pair(out, e->keys[j], e->values[j], j == 0);
    return rc ? rc : buf_append(out, "}", 1);
}

int secrets_render(const secrets_store_t *s, const char *name, buf_t *out, err_detail_t *d)
{
    const secret_t *e;
    int rc;

    if (s == NULL || name == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "secrets_render: invalid arguments");
    if (s->env) {
        bool denied;
        const char *v = env_lookup(s, name, &denied);
        rc = buf_append(out, "{", 1);
        rc = rc ? rc : render_pair(out, name, v ? v : "", true);
        rc = rc ? rc : buf_append(out, "}", 1);
    } else {
        e = find(s, name);
        if (e == NULL)
            return err_set(d, ERR_NOT_FOUND, "secret %s not found", name);
        rc = render_secret(e, out);
    }
    return rc < 0 ? err_set(d, rc, "secret too large to send") : 0;
}

int secrets_render_bulk(const secrets_store_t *s, secrets_filter_fn allow, void *arg, buf_t *out,
                        err_detail_t *d)
{
    bool first = true;
    int rc;

    if (s == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "secrets_render_bulk: invalid arguments");
    rc = buf_append(out, "{", 1);
    if (s->env) {
        size_t pl = strlen(s->prefix);
        for (char **e = environ; rc == 0 && e != NULL && *e != NULL; e++) {
            const char *eq = strchr(*e, '=');
            char name[1024];
            size_t nl;
            if (eq == NULL || (size_t)(eq - *e) <= pl || strncmp(*e, s->prefix, pl) != 0)
                continue;
            nl = (size_t)(eq - *e);
            if (nl >= sizeof(name))
                continue;
            memcpy(name, *e, nl);
            name[nl] = '\0';
            if (secrets_env_denied(name) || (allow != NULL && !allow(name + pl, arg)))
                continue;
            rc = first ? 0 : buf_append(out, ",", 1);
            rc = rc ? rc : buf_append(out, "\"", 1);
            rc = rc ? rc : buf_append_json_str(out, name + pl, nl - pl);
            rc = rc ? rc : buf_append(out, "\":{", 3);
            rc = rc ? rc : render_pair(out, name + pl, eq + 1, true);
            rc = rc ? rc : buf_append(out, "}", 1);
            first = false;
        }
    } else {
        for (size_t i = 0; rc == 0 && i < s->count; i++) {
            if (allow != NULL && !allow(s->secrets[i].name, arg))
                continue;
            rc = first ? 0 : buf_append(out, ",", 1);
            rc = rc ? rc : buf_append(out, "\"", 1);
            rc = rc ? rc : buf_append_json_str(out, s->secrets[i].name, strlen(s->secrets[i].name));
            rc = rc ? rc : buf_append(out, "\":", 2);
            rc = rc ? rc : render_secret(&s->secrets[i], out);
            first = false;
        }
    }
    rc = rc ? rc : buf_append(out, "}", 1);
    return rc < 0 ? err_set(d, rc, "secrets too large to send") : 0;
}
