/*
 * component — the resources of --resources-path: Components and HTTPEndpoints, with their secret
 * references resolved.
 *
 * Job: read every *.yaml / *.yml file of the given directories (each directory in name order,
 * multi-document files like Dapr), keep the `kind: Component` and `kind: HTTPEndpoint` documents
 * that are meant for this app (`scopes` lists the app id, or is empty; `metadata.namespace` is
 * the sidecar's or unset), build the secret stores among the Components (types
 * secretstores.local.file and secretstores.local.env), and resolve every metadata item and
 * header given as `secretKeyRef: {name, key}` (through the resource's top-level
 * `auth.secretStore`) or as `envRef: VAR` (Dapr's deny rules: DAPR_*, APP_API_TOKEN, names with
 * spaces; DAPR_ENV_KEYS as an allow-list). Documents of other kinds are skipped. Unlike Dapr,
 * which logs and carries on, an invalid Component or HTTPEndpoint, an unknown secret store, a
 * missing secret, a denied envRef and a duplicate name fail the whole load, so a sidecar never
 * starts with half its resources or an empty credential.
 * Ownership: res_components_load allocates the result; res_components_free releases it (secret
 * values are zeroed first). Every pointer reached through it lives until that free.
 * Threading: loading blocks (file I/O) and may run on any thread; the result is immutable and
 * may be read by any number of threads at once.
 * Errors: ERR_INVAL (bad arguments), ERR_IO (unreadable file or secrets file), ERR_TOO_LARGE,
 * ERR_RES_YAML, ERR_RES_INVALID (with "<file>:<line>: <field>: <problem>"), ERR_NOT_FOUND (a
 * secretKeyRef that does not resolve, also with file:line), ERR_NOMEM. No detail ever contains a
 * secret value.
 */
#ifndef OUTRIGGER_RESOURCES_COMPONENT_H
#define OUTRIGGER_RESOURCES_COMPONENT_H

#include <stddef.h>

#include "base/err.h"
#include "secrets/secrets.h"

#define RES_MAX_RESOURCE_FILES 1024 /* files read from all directories together */

/** One metadata item or header, after secretKeyRef / envRef resolution. */
typedef struct res_meta {
    char *name;  /* owned */
    char *value; /* owned; "" for an unset envRef; may be a secret: never log it */
} res_meta_t;

/** A Component (apiVersion dapr.io/v1alpha1). */
typedef struct res_component {
    char *name, *ns, *type, *version, *file; /* owned; ns is the sidecar's when unset; version
                                                "v1" when unset */
    int line;                                /* line of the document in file */
    res_meta_t *meta;                        /* spec.metadata, in order; owned */
    size_t nmeta;
} res_component_t;

/** An HTTPEndpoint (spec dapr.md §1.6). */
typedef struct res_endpoint {
    char *name, *ns, *base_url, *file; /* owned; base_url without trailing '/' */
    int line;                          /* line of the document in file */
    res_meta_t *headers;               /* spec.headers, in order; owned; values may be secrets */
    size_t nheaders;
    char *root_ca;     /* spec.clientTLS.rootCA PEM, or NULL; owned */
    char *certificate; /* spec.clientTLS.certificate PEM, or NULL; owned */
    char *private_key; /* spec.clientTLS.privateKey PEM, or NULL; owned; a secret */
} res_endpoint_t;

typedef struct res_components res_components_t; /* immutable after load; read-only across threads */

/**
 * Loads the resources of @p ndirs directories for app @p app_id in namespace @p ns. A directory
 * that does not exist is skipped with a warning. On success *@p out owns the result (possibly
 * empty).
 */
int res_components_load(const char *const *dirs, size_t ndirs, const char *app_id, const char *ns,
                        res_components_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/** res_components_load for one file already in memory: @p len bytes at @p data, called @p name in
 * error details. */
int res_components_parse(const char *name, const char *data, size_t len, const char *app_id,
                         const char *ns, res_components_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Number of Components loaded (0 for NULL). */
size_t res_components_count(const res_components_t *cs);
/** Component @p i in load order, or NULL when out of range. */
const res_component_t *res_components_at(const res_components_t *cs, size_t i);
/** The Component named exactly @p name, or NULL. */
const res_component_t *res_components_find(const res_components_t *cs, const char *name);
/** Value of metadata item @p key (ignoring ASCII case, like Dapr); NULL when absent. */
const char *res_component_meta(const res_component_t *c, const char *key);
/** Number of HTTPEndpoints loaded (0 for NULL). */
size_t res_components_endpoint_count(const res_components_t *cs);
/** HTTPEndpoint @p i in load order, or NULL when out of range. */
const res_endpoint_t *res_components_endpoint_at(const res_components_t *cs, size_t i);
/** The HTTPEndpoint named exactly @p name, or NULL (also for NULL @p cs). */
const res_endpoint_t *res_components_endpoint(const res_components_t *cs, const char *name);
/** The secret store built from the Component named @p name, or NULL. */
const secrets_store_t *res_components_secret_store(const res_components_t *cs, const char *name);
/** Number of secret stores (0 for NULL). */
size_t res_components_secret_store_count(const res_components_t *cs);
/** Releases everything (secret values zeroed). NULL is a no-op. */
void res_components_free(res_components_t *cs);

#endif
