/*
 * resolve — name resolution: announcing this sidecar and finding the sidecars of other apps.
 *
 * Job: map (app id, namespace) to the "host:port" of a live sidecar's internal port. Backends:
 * "sqlite" (default; Dapr's nameresolution.sqlite: sidecars on one machine share a SQLite file,
 * register a row and keep it fresh) and "dns" (alias "kubernetes"; Dapr's kubernetes resolver: the
 * address is computed from a template and resolved later by the net layer).
 * Ownership: resolve_new returns a handle that resolve_free releases. Every argument is borrowed
 * for the duration of the call only; opts->config is read during resolve_new and not kept.
 * Threading: every call blocks (file I/O, SQLite locks up to busyTimeout, queries up to timeout),
 * so call them from libuv's thread pool, never on a loop thread. Calls on one handle are
 * serialized by an internal mutex, so threads may share a handle; resolve_free must not race
 * with other calls on the same handle.
 * Errors: ERR_INVAL (bad arguments, or a bad configuration value: the detail names the key),
 * ERR_INVOKE_NO_HOST (no live registration for the app), ERR_RESOLVE_LOST (our registration row
 * vanished), ERR_RESOLVE_DB (SQLite failed; the detail carries SQLite's message), ERR_TIMEOUT (a
 * query ran past `timeout`), ERR_IO (the home directory could not be created).
 */
#ifndef OUTRIGGER_INVOKE_RESOLVE_H
#define OUTRIGGER_INVOKE_RESOLVE_H

#include <stddef.h>

#include "base/err.h"
#include "resources/resources.h"

#define RESOLVE_ADDR_MAX 320           /* bytes of a "host:port" result, NUL included */
#define RESOLVE_DEFAULT_DNS_PORT 50002 /* Dapr's internal gRPC port on Kubernetes */

typedef struct resolve resolve_t; /* opaque handle */

typedef struct resolve_opts {
    const char *component;      /* "sqlite" | "dns" | "kubernetes" | "mdns" (served by sqlite);
                                   NULL: config's spec.nameResolution.component, else "sqlite" */
    const char *home;           /* OUTRIGGER_HOME; the default sqlite file is
                                   <home>/nameresolution.db (directories made with mode 0700) */
    const res_config_t *config; /* NULL: defaults; else spec.nameResolution.configuration */
    int internal_port;          /* this sidecar's internal port; the dns backend's default port
                                   for peers, as Dapr passes its own port; 0: 50002 */
} resolve_opts_t;

/**
 * Creates a resolver from @p o: picks the backend, validates its configuration (unknown keys are
 * ignored as in Dapr; keys match ignoring ASCII case), and for sqlite opens the database, switches
 * it to WAL and creates the schema if needed. Nothing is registered yet.
 */
int resolve_new(const resolve_opts_t *o, resolve_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/**
 * Announces this sidecar as app @p app_id in namespace @p ns, reachable at @p host and
 * @p internal_port. sqlite: replaces any row for the same address with a fresh random
 * registration id (calling it again moves the registration). dns: no-op.
 */
int resolve_register(resolve_t *r, const char *app_id, const char *ns, const char *host,
                     int internal_port, err_detail_t *d) __attribute__((warn_unused_result));

/**
 * Keeps the registration alive; call every resolve_heartbeat_interval_ms(). Also runs the
 * stale-row cleanup when it is due. ERR_RESOLVE_LOST when our row is gone (another process took
 * the address over, or cleaned us up after a long stall): Dapr treats that as fatal; the caller
 * may re-register or stop. ERR_INVAL when nothing was registered. dns: no-op.
 */
int resolve_heartbeat(resolve_t *r, err_detail_t *d) __attribute__((warn_unused_result));

/**
 * Finds a live sidecar of @p app_id in @p ns and writes "host:port" (NUL-terminated) into @p out.
 * sqlite picks a random row refreshed within updateInterval; dns formats the template.
 * ERR_INVOKE_NO_HOST when there is none; ERR_TOO_LARGE when @p out_len is too small.
 */
int resolve_lookup(resolve_t *r, const char *app_id, const char *ns, char *out, size_t out_len,
                   err_detail_t *d) __attribute__((warn_unused_result));

/**
 * Deletes rows not refreshed within updateInterval, unless any process did so less than
 * cleanupInterval ago (the shared "nr-last-cleanup" record decides) or cleanup is disabled.
 * resolve_register and resolve_heartbeat call it when due; exposed for tests and tools.
 * dns: no-op.
 */
int resolve_cleanup(resolve_t *r, err_detail_t *d) __attribute__((warn_unused_result));

/** How often, in milliseconds, the sidecar should call resolve_heartbeat (0: never needed). */
int resolve_heartbeat_interval_ms(const resolve_t *r);

/** Deletes our registration (clean exit), closes the database and frees @p r. NULL is a no-op. */
void resolve_free(resolve_t *r);

#endif
