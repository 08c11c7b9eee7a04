#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dur.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/resolve/resolve_int.h"

#define CONF_PATH "spec.nameResolution.configuration"
#define HOST_MAX 255 /* bytes of a registered host name or address literal */

enum backend { BACKEND_SQLITE = 1, BACKEND_DNS };

struct resolve {
    pthread_mutex_t lock;   /* serializes every call into the backend */
    enum backend kind;      /* which of the pointers below is set */
    resolve__sqlite_t *sql; /* owned; kind == BACKEND_SQLITE */
    resolve__dns_t *dns;    /* owned; kind == BACKEND_DNS */
};

/* ---- configuration helpers shared with the backends ---------------------------------------- */

int resolve__conf_err(const resolve__conf_t *c, const char *key, err_detail_t *d, const char *fmt,
                      ...)
{
    const res_node_t *v = NULL;
    char text[160];
    va_list ap;
    size_t i;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    for (i = 0; c->node != NULL && i < res_node_count(c->node); i++) {
        const char *k = res_node_key_at(c->node, i);
        if (str_ieq(k, strlen(k), key))
            v = res_node_at(c->node, i);
    }
    if (v != NULL)
        return err_set(d, ERR_INVAL, "%s:%u: %s.%s: %s", c->file, res_node_line(v), CONF_PATH, key,
                       text);
    return err_set(d, ERR_INVAL, "%s.%s: %s", CONF_PATH, key, text);
}

/* Finds the single entry of @p c named @p key ignoring case; *out is NULL when absent. */
static int find_key(const resolve__conf_t *c, const char *key, const res_node_t **out,
                    err_detail_t *d)
{
    size_t i, klen;

    *out = NULL;
    if (c->node == NULL || res_node_kind(c->node) != RES_NODE_MAP)
        return 0;
    for (i = 0; i < res_node_count(c->node); i++) {
        const char *k = res_node_key_at(c->node, i);
        klen = strlen(k);
        if (!str_ieq(k, klen, key))
            continue;
        if (*out != NULL)
            return err_set(d, ERR_INVAL, "%s:%u: %s.%s: given twice (keys ignore case)", c->file,
                           res_node_line(res_node_at(c->node, i)), CONF_PATH, key);
        *out = res_node_at(c->node, i);
    }
    return 0;
}

int resolve__conf_str(const resolve__conf_t *c, const char *key, const char *alias,
                      const char **out, err_detail_t *d)
{
    const res_node_t *v = NULL;
    const char *name = key;
    int rc;

    rc = find_key(c, key, &v, d);
    if (rc == 0 && v == NULL && alias != NULL) {
        name = alias;
        rc = find_key(c, alias, &v, d);
    }
    if (rc < 0)
        return rc;
    *out = NULL;
    if (v == NULL || res_node_is_null(v))
        return 0;
    if (res_node_kind(v) != RES_NODE_SCALAR)
        return err_set(d, ERR_INVAL, "%s:%u: %s.%s: expected a string", c->file, res_node_line(v),
                       CONF_PATH, name);
    *out = res_node_scalar(v);
    return 0;
}

int resolve__conf_dur_ms(const resolve__conf_t *c, const char *key, const char *alias,
                         uint64_t def_ms, uint64_t max_ms, uint64_t *out_ms, err_detail_t *d)
{
    const char *s = NULL, *name = key;
    uint64_t v;
    size_t n;
    int rc;

    rc = resolve__conf_str(c, key, NULL, &s, d);
    if (rc == 0 && s == NULL && alias != NULL) {
        name = alias;
        rc = resolve__conf_str(c, alias, NULL, &s, d);
    }
    if (rc < 0)
        return rc;
    if (s == NULL || s[0] == '\0') {
        *out_ms = def_ms;
        return 0;
    }
    n = strlen(s);
    rc = dur_parse_ms(s, n, max_ms, &v);
    if (rc == ERR_PARSE) {
        rc = str_u64(s, n, max_ms / 1000, &v); /* Dapr reads a bare integer as seconds */
        if (rc == 0)
            v *= 1000;
    }
    if (rc == ERR_TOO_LARGE)
        return resolve__conf_err(c, name, d, "\"%.32s\" is longer than %llu ms", s,
                                 (unsigned long long)max_ms);
    if (rc < 0)
        return resolve__conf_err(c, name, d,
                                 "\"%.32s\" is not a duration (e.g. \"5s\", \"800ms\", \"1h\")", s);
    *out_ms = v;
    return 0;
}

/* ---- the handle --------------------------------------------------------------------------- */

/* Picks the backend from the options, then the Configuration, then the default. */
static int pick_backend(const resolve_opts_t *o, enum backend *out, err_detail_t *d)
{
    const char *name = o->component, *version = NULL;

    if (name == NULL && o->config != NULL) {
        name = o->config->name_resolution.component;
        version = o->config->name_resolution.version;
    }
    if (version != NULL && version[0] != '\0' && strcmp(version, "v1") != 0)
        return err_set(d, ERR_INVAL,
                       "spec.nameResolution.version: \"%.32s\" is not supported "
                       "(only \"v1\")",
                       version);
    if (name == NULL || name[0] == '\0' || strcmp(name, "sqlite") == 0) {
        *out = BACKEND_SQLITE;
    } else if (strcmp(name, "dns") == 0 || strcmp(name, "kubernetes") == 0) {
        *out = BACKEND_DNS;
    } else if (strcmp(name, "mdns") == 0) {
        /* mDNS is Dapr's standalone default; SQLite plays the same single-machine role here, so
         * existing Dapr configurations keep working. */
        log_warn("resolve", "name resolution \"mdns\" is not available; using \"sqlite\"");
        *out = BACKEND_SQLITE;
    } else {
        return err_set(d, ERR_INVAL,
                       "spec.nameResolution.component: \"%.32s\" is not supported (use \"sqlite\", "
                       "\"dns\" or \"kubernetes\")",
                       name);
    }
    return 0;
}

int resolve_new(const resolve_opts_t *o, resolve_t **out, err_detail_t *d)
{
    resolve__conf_t conf = {NULL, ""};
    resolve_t *r = NULL;
    enum backend kind = BACKEND_SQLITE;
    int rc;

    if (o == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "resolve_new: invalid arguments");
    if (o->internal_port < 0 || o->internal_port > 65535)
        return err_set(d, ERR_INVAL, "resolve_new: internal port %d out of range",
                       o->internal_port);
    rc = pick_backend(o, &kind, d);
    if (rc < 0)
        return rc;
    if (o->config != NULL) {
        conf.node = o->config->name_resolution.config_node;
        conf.file = o->config->file;
    }
    r = mem_calloc(sizeof(*r));
    r->kind = kind;
    if (kind == BACKEND_SQLITE)
        rc = resolve__sqlite_new(&conf, o->home, &r->sql, d);
    else
        rc = resolve__dns_new(&conf, o->internal_port ? o->internal_port : RESOLVE_DEFAULT_DNS_PORT,
                              &r->dns, d);
    if (rc < 0)
        goto out;
    rc = pthread_mutex_init(&r->lock, NULL);
    if (rc != 0) {
        rc = err_set(d, ERR_NOMEM, "resolve_new: cannot create a mutex");
        goto out;
    }
    *out = r;
    r = NULL;
out:
    if (r != NULL) {
        resolve__sqlite_free(r->sql);
        resolve__dns_free(r->dns);
        mem_free(r);
    }
    return rc;
}

/* Joins host and port the way Go's net.JoinHostPort does ("[::1]:5000" for IPv6). */
static int join_host_port(const char *host, int port, char *out, size_t out_len)
{
    int n;

    if (strchr(host, ':') != NULL && host[0] != '[')
        n = snprintf(out, out_len, "[%s]:%d", host, port);
    else
        n = snprintf(out, out_len, "%s:%d", host, port);
    return n < 0 || (size_t)n >= out_len ? ERR_TOO_LARGE : 0;
}

int resolve_register(resolve_t *r, const char *app_id, const char *ns, const char *host,
                     int internal_port, err_detail_t *d)
{
    char addr[RESOLVE_ADDR_MAX];
    int rc = 0;

    if (r == NULL || app_id == NULL || app_id[0] == '\0' || ns == NULL || host == NULL ||
        host[0] == '\0' || strlen(host) > HOST_MAX || internal_port <= 0 || internal_port > 65535)
        return err_set(d, ERR_INVAL, "resolve_register: invalid arguments");
    if (r->kind != BACKEND_SQLITE)
        return 0;
    if (join_host_port(host, internal_port, addr, sizeof(addr)) < 0)
        return err_set(d, ERR_INVAL, "resolve_register: address too long");
    pthread_mutex_lock(&r->lock);
    rc = resolve__sqlite_register(r->sql, app_id, ns, addr, d);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int resolve_heartbeat(resolve_t *r, err_detail_t *d)
{
    int rc;

    if (r == NULL)
        return err_set(d, ERR_INVAL, "resolve_heartbeat: invalid arguments");
    if (r->kind != BACKEND_SQLITE)
        return 0;
    pthread_mutex_lock(&r->lock);
    rc = resolve__sqlite_heartbeat(r->sql, d);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int resolve_lookup(resolve_t *r, const char *app_id, const char *ns, char *out, size_t out_len,
                   err_detail_t *d)
{
    int rc;

    if (r == NULL || app_id == NULL || app_id[0] == '\0' || ns == NULL || out == NULL ||
        out_len == 0)
        return err_set(d, ERR_INVAL, "resolve_lookup: invalid arguments");
    if (r->kind == BACKEND_DNS)
        return resolve__dns_lookup(r->dns, app_id, ns, out, out_len, d); /* immutable: no lock */
    pthread_mutex_lock(&r->lock);
    rc = resolve__sqlite_lookup(r->sql, app_id, ns, out, out_len, d);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int resolve_cleanup(resolve_t *r, err_detail_t *d)
{
    int rc;

    if (r == NULL)
        return err_set(d, ERR_INVAL, "resolve_cleanup: invalid arguments");
    if (r->kind != BACKEND_SQLITE)
        return 0;
    pthread_mutex_lock(&r->lock);
    rc = resolve__sqlite_cleanup(r->sql, d);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int resolve_heartbeat_interval_ms(const resolve_t *r)
{
    if (r == NULL || r->kind != BACKEND_SQLITE)
        return 0;
    return resolve__sqlite_heartbeat_ms(r->sql);
}

void resolve_free(resolve_t *r)
{
    if (r == NULL)
        return;
    resolve__sqlite_free(r->sql);
    resolve__dns_free(r->dns);
    pthread_mutex_destroy(&r->lock);
    mem_free(r);
}
