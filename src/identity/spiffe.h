/*
 * spiffe — strict parsing and formatting of Dapr workload SPIFFE IDs.
 *
 * Job: turn the URI SAN of a peer certificate into (trust domain, namespace, app id), and build
 * the ID for our own workload, with the rules of the SPIFFE ID spec as go-spiffe enforces them
 * plus Dapr's path shape `spiffe://<td>/ns/<namespace>/<app id>[/<more>...]` (spec dapr.md §2.3,
 * §3).
 *
 * Accepted, byte by byte (no decoding of any kind):
 * - the scheme is exactly "spiffe://" (lower case);
 * - the trust domain is 1..SPIFFE_TRUST_DOMAIN_MAX bytes of [a-z0-9.-_] (so no upper case, no
 *   userinfo '@', no port ':', no percent-encoding);
 * - the path is one or more segments "/" + 1..n bytes of [a-zA-Z0-9.-_], none of them "." or
 *   ".."; so no empty segment ("//"), no trailing '/', no '%', no '?' query, no '#' fragment;
 * - the first segment is "ns", the second (namespace) and third (app id) exist and are at most
 *   SPIFFE_NAME_MAX bytes; further segments are allowed and ignored, as in Dapr;
 * - the whole ID is at most SPIFFE_ID_MAX bytes.
 * Anything else is ERR_IDENTITY_BAD_SPIFFE_ID; Dapr's access control denies such a caller.
 *
 * Ownership: spiffe_id_t is caller storage holding copies; inputs are borrowed for the call.
 * Threading: all functions are thread-safe (pure).
 * Errors: ERR_IDENTITY_BAD_SPIFFE_ID (malformed or over a limit), ERR_INVAL (NULL arguments),
 * ERR_TOO_LARGE (spiffe_id_format: output buffer too small). Out-parameters are written only on
 * success.
 */
#ifndef OUTRIGGER_IDENTITY_SPIFFE_H
#define OUTRIGGER_IDENTITY_SPIFFE_H

#include <stddef.h>

#define SPIFFE_ID_MAX 2048          /* bytes of a whole ID (SPIFFE ID spec §2.4) */
#define SPIFFE_TRUST_DOMAIN_MAX 255 /* bytes of a trust domain (SPIFFE ID spec §2.1) */
#define SPIFFE_NAME_MAX 255         /* bytes of a namespace or an app id (ours; Sentry: 64) */

/** A parsed Dapr workload identity. Every string is NUL-terminated. */
typedef struct spiffe_id {
    char uri[SPIFFE_ID_MAX + 1];                    /* the whole ID, extra segments included */
    size_t uri_len;                                 /* bytes in uri */
    char trust_domain[SPIFFE_TRUST_DOMAIN_MAX + 1]; /* "public" */
    char ns[SPIFFE_NAME_MAX + 1];                   /* namespace: "default" */
    char app_id[SPIFFE_NAME_MAX + 1];               /* "analyst-agent" */
} spiffe_id_t;

/**
 * Parses the @p len bytes at @p uri (need not be NUL-terminated; an embedded NUL is malformed)
 * into *@p out. Returns 0, ERR_IDENTITY_BAD_SPIFFE_ID or ERR_INVAL.
 */
int spiffe_id_parse(const char *uri, size_t len, spiffe_id_t *out)
    __attribute__((warn_unused_result));

/**
 * Builds the ID "spiffe://<td>/ns/<ns>/<app_id>" into *@p out after checking each part with the
 * rules above. Returns 0, ERR_IDENTITY_BAD_SPIFFE_ID or ERR_INVAL.
 */
int spiffe_id_from_parts(const char *td, const char *ns, const char *app_id, spiffe_id_t *out)
    __attribute__((warn_unused_result));

/**
 * Writes "spiffe://<td>/ns/<ns>/<app_id>" and a NUL into @p out (@p out_len bytes), checking
 * each part. Returns 0, ERR_IDENTITY_BAD_SPIFFE_ID, ERR_INVAL or ERR_TOO_LARGE (then @p out is
 * untouched).
 */
int spiffe_id_format(const char *td, const char *ns, const char *app_id, char *out, size_t out_len)
    __attribute__((warn_unused_result));

#endif
