/*
 * secrets — Dapr's local secret stores: secretstores.local.file and secretstores.local.env.
 *
 * Job: build a store from a Component's type and metadata, and answer "value of key K of secret
 * N" (for secretKeyRef resolution) and "secret N" / "every secret" as JSON (for Dapr's secrets
 * API). Also the rules that decide which environment variables a resource may read (envRef).
 * Semantics follow spec dapr.md §8, except that numbers, booleans and null in a secrets file keep
 * their JSON text ("1", "true") instead of Go's "%!s(float64=1)".
 * Ownership: secrets_store_new returns a store the caller frees with secrets_store_free; the
 * store copies what it needs from its arguments (the file store reads and keeps the whole file's
 * secrets in memory; the env store reads the environment on each lookup). Strings returned
 * through out-parameters belong to the caller (mem_free). Freed secret values are zeroed first.
 * Threading: a built store is immutable; any number of threads may read it at once. The env
 * store calls getenv(), so nobody may change the environment while stores are in use.
 * Errors: ERR_INVAL (bad arguments, unknown type, missing or bad metadata), ERR_IO (secrets file
 * unreadable), ERR_PARSE (secrets file is not a JSON object), ERR_TOO_LARGE (file or entry count
 * past the limits below), ERR_NOT_FOUND (no such secret or key), ERR_NOMEM. Details never
 * contain a secret value.
 * Secrets: values never reach a log line or an error detail from this module.
 */
#ifndef OUTRIGGER_SECRETS_H
#define OUTRIGGER_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"

#define SECRETS_MAX_FILE_BYTES (4 * 1024 * 1024) /* a secrets file larger than this is refused */
#define SECRETS_MAX_ENTRIES 100000               /* flattened keys in one secrets file */
#define SECRETS_MAX_DEPTH 64                     /* nesting of the secrets file */

typedef struct secrets_store secrets_store_t; /* opaque, immutable after secrets_store_new */

/** True when @p type is a store this module builds ("secretstores.local.file", ".env"). */
bool secrets_type_supported(const char *type);

/**
 * Builds the store @p name of @p type from @p n metadata pairs (@p keys matched ignoring ASCII
 * case, as Dapr does). local.file: secretsFile (required), nestedSeparator (":"), multiValued
 * ("false"); local.env: prefix (""). On success *@p out owns the store.
 */
int secrets_store_new(const char *name, const char *type, const char *const *keys,
                      const char *const *values, size_t n, secrets_store_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Releases a store (secret values zeroed). NULL is a no-op. */
void secrets_store_free(secrets_store_t *s);

/** The store's name (its Component's metadata.name). */
const char *secrets_store_name(const secrets_store_t *s);

/**
 * Copies the value of key @p key of secret @p name into *@p out (mem_free it; zero it first if
 * you can). An empty or NULL @p key means @p name, as in Dapr's secretKeyRef. A missing secret,
 * a missing key, an empty value and (env store) a denied variable are ERR_NOT_FOUND.
 */
int secrets_get_value(const secrets_store_t *s, const char *name, const char *key, char **out,
                      err_detail_t *d) __attribute__((warn_unused_result));

/** Appends secret @p name as a JSON object {"key":"value",...} to @p out. ERR_NOT_FOUND when the
 * secret is unknown (the env store answers every allowed name, "" when unset, like Dapr). */
int secrets_render(const secrets_store_t *s, const char *name, buf_t *out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Decides whether secret @p name may be handed out (a Configuration's secrets.scopes). */
typedef bool (*secrets_filter_fn)(const char *name, void *arg);

/** Appends every secret that @p allow (NULL: all) accepts as {"name":{"key":"value"},...} to
 * @p out (env store: the variables starting with its prefix, prefix removed, denied ones left
 * out). */
int secrets_render_bulk(const secrets_store_t *s, secrets_filter_fn allow, void *arg, buf_t *out,
                        err_detail_t *d) __attribute__((warn_unused_result));

/**
 * Dapr's deny rule for environment variables read on a resource's behalf: empty names, names
 * with spaces, APP_API_TOKEN and anything starting with DAPR_ (ignoring case) are refused.
 */
bool secrets_env_denied(const char *name);

/** secrets_env_denied plus envRef's allow-list: when DAPR_ENV_KEYS is set (space separated
 * names), only those names may be read. */
bool secrets_envref_allowed(const char *name);

#endif
