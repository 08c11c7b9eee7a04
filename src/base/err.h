/*
 * err — one numbering for every error code in Outrigger.
 *
 * Job: define the error codes (an X-macro table, grouped by module), their names and texts, and the
 * err_detail_t that carries a human explanation next to a code.
 * Ownership: err_name()/err_str() return static strings. err_detail_t is caller-owned storage.
 * Threading: all functions are thread-safe (pure).
 * Errors: codes are negative ints below -10000; libuv's UV_E* codes (above -10000) pass through and
 * err_str() hands them to uv_strerror().
 */
#ifndef OUTRIGGER_BASE_ERR_H
#define OUTRIGGER_BASE_ERR_H

#include <stdarg.h>
#include <stddef.h>

#define ERR_MAP(X)                                                                                 \
    X(NOMEM, -10001, "out of memory")                                                              \
    X(INVAL, -10002, "invalid argument")                                                           \
    X(TOO_LARGE, -10003, "too large")                                                              \
    X(NOT_FOUND, -10004, "not found")                                                              \
    X(IO, -10005, "input/output error")                                                            \
    X(PARSE, -10006, "parse error")                                                                \
    X(TIMEOUT, -10007, "timed out")                                                                \
    X(CLOSED, -10008, "closed")                                                                    \
    X(NET_BAD_REQUEST, -10100, "malformed HTTP request")                                           \
    X(NET_HEADERS_TOO_LARGE, -10101, "HTTP header section too large")                              \
    X(NET_URL_TOO_LONG, -10102, "request target too long")                                         \
    X(NET_BAD_RESPONSE, -10103, "malformed HTTP response")                                         \
    X(NET_UPSTREAM_CLOSED, -10104, "upstream closed the connection")                               \
    X(NET_CONNECT, -10105, "could not connect")                                                    \
    X(NET_NOT_IMPLEMENTED, -10106, "not implemented")                                              \
    X(NET_TLS, -10107, "TLS failure")                                                              \
    X(NET_PEER_REFUSED, -10108, "peer identity refused")                                           \
    X(INVOKE_NO_APP_ID, -10200, "no app id in the request")                                        \
    X(INVOKE_BAD_METHOD, -10201, "invalid method")                                                 \
    X(INVOKE_BAD_APP_ID, -10202, "invalid app id")                                                 \
    X(INVOKE_NO_HOST, -10203, "no host found with the given ID")                                   \
    X(INVOKE_NO_APP_CHANNEL, -10204, "app channel is not initialized")                             \
    X(RES_YAML, -10300, "YAML error")                                                              \
    X(RES_INVALID, -10301, "invalid resource")                                                     \
    X(RESOLVE_DB, -10400, "name resolution database error")                                        \
    X(RESOLVE_LOST, -10401, "host registration lost")                                              \
    X(RESIL_CB_OPEN, -10450, "circuit breaker is open")                                            \
    X(RESIL_CB_TOO_MANY, -10451, "too many requests")                                              \
    X(RESIL_EXPR, -10452, "invalid expression")                                                    \
    X(IDENTITY_CRYPTO, -10500, "cryptographic operation failed")                                   \
    X(IDENTITY_CSR, -10501, "invalid certificate signing request")                                 \
    X(IDENTITY_DENIED, -10502, "identity request denied")                                          \
    X(IDENTITY_CERT, -10503, "certificate is not an acceptable SVID")                              \
    X(IDENTITY_CA, -10504, "certificate authority state unusable")                                 \
    X(IDENTITY_SENTRY, -10505, "sentry unavailable")                                               \
    X(IDENTITY_TLS, -10506, "TLS handshake or verification failed")                                \
    X(IDENTITY_BAD_SPIFFE_ID, -10550, "malformed SPIFFE ID")                                       \
    X(POLICY_TOKEN, -10650, "token rejected")                                                      \
    X(POLICY_UNKNOWN_KID, -10651, "signing key not in the key set")                                \
    X(POLICY_UPSTREAM, -10652, "identity provider unavailable")                                    \
    X(REGO_PARSE, -10600, "Rego parse error")                                                      \
    X(REGO_COMPILE, -10601, "Rego compile error")                                                  \
    X(REGO_EVAL, -10602, "Rego evaluation error")                                                  \
    X(REGO_CONFLICT, -10603, "Rego rule conflict")                                                 \
    X(REGO_TYPE, -10604, "Rego type error")                                                        \
    X(REGO_BUILTIN, -10605, "Rego builtin error")                                                  \
    X(REGO_LIMIT, -10606, "Rego evaluation limit reached")

enum err_code {
#define ERR_ENUM(name, code, text) ERR_##name = (code),
    ERR_MAP(ERR_ENUM)
#undef ERR_ENUM
};

/** A human explanation that travels next to an error code (file:line:field, peer, reason). */
typedef struct err_detail {
    char msg[256]; /* NUL-terminated text, empty when nothing was said */
} err_detail_t;

/** The symbolic name of @p code ("ERR_TOO_LARGE", or libuv's "ECONNREFUSED"). Never NULL. */
const char *err_name(int code);

/** A short human text for @p code. Never NULL. */
const char *err_str(int code);

/** Writes a formatted message into @p d (NULL allowed: then nothing happens) and returns @p code.
 */
int err_set(err_detail_t *d, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
