/*
 * resolve_int.h — what resolve.c shares with its backends (sqlite.c, dns.c); nothing else
 * includes it.
 *
 * resolve.c owns the handle, the mutex and the choice of backend; a backend is a plain object
 * whose functions are only ever called with that mutex held, so backends need no locking.
 */
#ifndef OUTRIGGER_INVOKE_RESOLVE_INT_H
#define OUTRIGGER_INVOKE_RESOLVE_INT_H

#include <stdint.h>

#include "invoke/resolve.h"

/* The nameResolution.configuration map of a Configuration, plus where it came from. */
typedef struct resolve__conf {
    const res_node_t *node; /* NULL: no configuration, every key takes its default */
    const char *file;       /* file name for error details; "" when there is no config */
} resolve__conf_t;

/**
 * Finds @p key (else @p alias, which may be NULL) in @p c ignoring ASCII case, as Dapr's metadata
 * decoder does. *out is the scalar text, or NULL when absent or null. ERR_INVAL (with a detail
 * naming file, line and key) for a non-scalar value or a key given twice.
 */
int resolve__conf_str(const resolve__conf_t *c, const char *key, const char *alias,
                      const char **out, err_detail_t *d) __attribute__((warn_unused_result));

/**
 * Reads @p key / @p alias as a duration: a Go duration string ("5s", "800ms") or a bare integer
 * number of seconds (Dapr's fallback). Absent: *out_ms = @p def_ms. ERR_INVAL past @p max_ms or
 * when malformed.
 */
int resolve__conf_dur_ms(const resolve__conf_t *c, const char *key, const char *alias,
                         uint64_t def_ms, uint64_t max_ms, uint64_t *out_ms, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Writes an ERR_INVAL detail "<file>:<line>: spec.nameResolution.configuration.<key>: ...". */
int resolve__conf_err(const resolve__conf_t *c, const char *key, err_detail_t *d, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* ---- sqlite backend (sqlite.c) ---- */

typedef struct resolve__sqlite resolve__sqlite_t;

int resolve__sqlite_new(const resolve__conf_t *c, const char *home, resolve__sqlite_t **out,
                        err_detail_t *d) __attribute__((warn_unused_result));
int resolve__sqlite_register(resolve__sqlite_t *s, const char *app_id, const char *ns,
                             const char *addr, err_detail_t *d) __attribute__((warn_unused_result));
int resolve__sqlite_heartbeat(resolve__sqlite_t *s, err_detail_t *d)
    __attribute__((warn_unused_result));
int resolve__sqlite_lookup(resolve__sqlite_t *s, const char *app_id, const char *ns, char *out,
                           size_t out_len, err_detail_t *d) __attribute__((warn_unused_result));
int resolve__sqlite_cleanup(resolve__sqlite_t *s, err_detail_t *d)
    __attribute__((warn_unused_result));
int resolve__sqlite_heartbeat_ms(const resolve__sqlite_t *s);
/** Deletes our row if any (errors are logged) and frees @p s. */
void resolve__sqlite_free(resolve__sqlite_t *s);

/* ---- dns backend (dns.c) ---- */

typedef struct resolve__dns resolve__dns_t;

int resolve__dns_new(const resolve__conf_t *c, int default_port, resolve__dns_t **out,
                     err_detail_t *d) __attribute__((warn_unused_result));
int resolve__dns_lookup(const resolve__dns_t *s, const char *app_id, const char *ns, char *out,
                        size_t out_len, err_detail_t *d) __attribute__((warn_unused_result));
void resolve__dns_free(resolve__dns_t *s);

#endif
