/*
 * fetch — a small blocking HTTP/1.1 client for control-plane requests: OIDC discovery, JWKS, OAuth2
 * token endpoints. Never used on a request's data path.
 *
 * Job: one request (GET or POST with a body) to an http:// or https:// URL, one connection
 * ("Connection: close"), the whole response body collected up to a limit. HTTPS verifies the
 * server against the system trust store (OpenSSL's default paths) and the URL's host name, with
 * SNI. Plain http:// is allowed only to loopback hosts (127.0.0.0/8, ::1, localhost) unless the
 * caller opts in; it is for local identity providers in development and tests.
 *
 * Threading: blocking; call it on a thread that may block (start-up, reload, libuv's thread pool),
 * never on a worker loop. Reentrant: no shared state.
 * Ownership: the caller owns the request (borrowed for the call) and the response (free with
 * pol_fetch_resp_free).
 * Errors: ERR_INVAL (bad URL, plain http to a non-loopback host), ERR_NET_CONNECT, ERR_TIMEOUT,
 * ERR_NET_TLS (handshake or verification), ERR_NET_BAD_RESPONSE, ERR_TOO_LARGE (body past the
 * limit); always with a detail that names the host but never the request body or headers (they
 * may carry secrets).
 */
#ifndef OUTRIGGER_POLICY_FETCH_H
#define OUTRIGGER_POLICY_FETCH_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "base/err.h"

#define POL_FETCH_BODY_MAX (1024 * 1024)
#define POL_FETCH_TIMEOUT_MS 10000

typedef struct pol_fetch_req {
    const char *method;       /* "GET" or "POST" */
    const char *url;          /* http(s)://host[:port]/path?query */
    const char *content_type; /* for a body; NULL = none */
    const char *body;         /* NULL = none */
    size_t body_len;
    const char *const *headers; /* extra "Name: value" lines, NULL-terminated; may be NULL */
    unsigned timeout_ms;        /* whole exchange; 0 = POL_FETCH_TIMEOUT_MS */
    bool allow_plain_remote;    /* plain http:// to any host */
} pol_fetch_req_t;

typedef struct pol_fetch_resp {
    int status;             /* HTTP status */
    buf_t body;             /* the response body (NUL-terminated through buf_ptr) */
    char content_type[128]; /* the Content-Type value, "" if none */
    long max_age;           /* Cache-Control max-age in seconds, -1 if none */
} pol_fetch_resp_t;

/** Sends @p r and fills @p out (initialised here; free it with pol_fetch_resp_free even on error).
 */
int pol_fetch(const pol_fetch_req_t *r, pol_fetch_resp_t *out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Releases what @p r owns. */
void pol_fetch_resp_free(pol_fetch_resp_t *r);

/** Splits @p url into scheme (https?), host, port and path+query. Returns 0 or ERR_INVAL. */
int pol_url_split(const char *url, bool *tls, char *host, size_t host_len, int *port, char *path,
                  size_t path_len);

/** True for 127.0.0.0/8, ::1 and "localhost". */
bool pol_host_is_loopback(const char *host);

#endif
