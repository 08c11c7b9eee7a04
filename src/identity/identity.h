/*
 * identity — workload identity: the sentry CA, X.509 and JWT SVIDs, the client that fetches them,
 * and the TLS 1.3 contexts that use them between sidecars.
 *
 * Job: issue SPIFFE identities (`spiffe://<td>/ns/<namespace>/<app-id>`) to workloads that can
 * prove who they are to the sentry, and turn an issued identity into OpenSSL contexts for mutually
 * authenticated TLS whose peer identity can be read back after the handshake.
 *
 * Ownership:
 *  - identity_svid_t is immutable once built and reference-counted: identity_svid_fetch and
 *    identity_svid_from_pem return it with one reference; identity_svid_ref/unref manage the rest;
 *    the last unref frees it. Pointers from its accessors live as long as the reference used.
 *  - An SSL_CTX from identity_tls_*_ctx_new holds its own references to the key, certificates and
 *    trust store (OpenSSL counts them), so the svid may be released right after; free the context
 *    with SSL_CTX_free. Client contexts also own a small session cache released with them.
 *  - identity_sentry_t is created by identity_sentry_new and released by identity_sentry_free.
 *  - Options structs are borrowed for the duration of the call only, except that identity_sentry_t
 *    copies the strings it keeps.
 *
 * Threading:
 *  - identity_svid_* accessors and the TLS helpers may be called from any thread (svids are
 *    immutable; SSL_CTX setup is done before the context is shared). Each SSL belongs to the
 *    thread driving it.
 *  - identity_svid_fetch, identity_sentry_ensure and the CA commands block (sockets, files, fork):
 *    never call them on an event loop; use the thread pool or a dedicated thread.
 *  - identity_sentry_run blocks the calling thread until identity_sentry_stop, which any thread or
 *    a signal handler may call.
 *
 * Errors: functions return 0 or a negative code from base/err.h: ERR_INVAL (arguments),
 * ERR_IDENTITY_CRYPTO (an OpenSSL operation failed; the reason is in the detail),
 * ERR_IDENTITY_CSR, ERR_IDENTITY_DENIED (the sentry refused to vouch for the caller),
 * ERR_IDENTITY_CERT (a certificate is not an acceptable SVID), ERR_IDENTITY_CA (the CA state on
 * disk is unusable), ERR_IDENTITY_SENTRY (no sentry answered), ERR_IDENTITY_TLS (handshake or
 * verification failure), ERR_TIMEOUT, ERR_TOO_LARGE, ERR_PARSE, ERR_IO.
 */
#ifndef OUTRIGGER_IDENTITY_H
#define OUTRIGGER_IDENTITY_H

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/err.h"
#include "identity/spiffe.h"

#define IDENTITY_DEFAULT_TRUST_DOMAIN "public"
#define IDENTITY_DEFAULT_WORKLOAD_TTL_S 86400 /* 24 h, Dapr's workloadCertTTL */
#define IDENTITY_DEFAULT_CLOCK_SKEW_S 900     /* 15 min, Dapr's allowedClockSkew */
#define IDENTITY_DEFAULT_JWT_TTL_S 300        /* 5 min */
#define IDENTITY_DEFAULT_SENTRY_PORT 50001    /* Dapr's sentry port, for join-token clients */
#define IDENTITY_CA_TTL_S (365 * 86400)       /* root and issuer lifetime */
#define IDENTITY_RENEW_RETRY_MS 10000         /* retry period after a failed renewal */
/* The control-plane namespace: no workload may be issued an identity in it, so the sentry's own
 * identity (IDENTITY_SENTRY_APP_ID there) cannot be impersonated. */
#define IDENTITY_SENTRY_NAMESPACE "outrigger-system"
#define IDENTITY_SENTRY_APP_ID "sentry"
/* Most app ids and audiences accepted in one request. */
#define IDENTITY_MAX_AUDIENCES 8
#define IDENTITY_MAX_ALLOWED_UIDS 16

/* ---------------------------------------------------------------------------------------------
 * SVIDs
 */

typedef struct identity_svid identity_svid_t;

/** Takes one more reference and returns @p s. */
identity_svid_t *identity_svid_ref(identity_svid_t *s);
/** Drops one reference; the last one frees the svid. NULL is a no-op. */
void identity_svid_unref(identity_svid_t *s);

/**
 * Builds an svid from PEM text: the private key, the chain (leaf first, then intermediates) and
 * the trust bundle (one or more roots). Checks that the key matches the leaf, that the leaf holds
 * exactly one valid SPIFFE ID, and that the chain verifies against the bundle now. Everything is
 * copied. On success *out holds one reference.
 */
int identity_svid_from_pem(const char *key_pem, const char *chain_pem, const char *bundle_pem,
                           identity_svid_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** The SPIFFE ID in the leaf. */
const spiffe_id_t *identity_svid_id(const identity_svid_t *s);
/** Validity of the leaf, in Unix seconds. */
int64_t identity_svid_not_before(const identity_svid_t *s);
int64_t identity_svid_not_after(const identity_svid_t *s);
/** The leaf's serial number as lower-case hex (NUL-terminated, at most 41 bytes). */
const char *identity_svid_serial(const identity_svid_t *s);
/** The JWT SVID fetched with the certificate, or NULL when none was asked for. */
const char *identity_svid_jwt(const identity_svid_t *s);
/** Expiry of the JWT in Unix seconds, 0 when there is none. */
int64_t identity_svid_jwt_expiry(const identity_svid_t *s);
/** PEM of the leaf followed by the intermediates; of the trust bundle's roots. */
const char *identity_svid_chain_pem(const identity_svid_t *s);
const char *identity_svid_bundle_pem(const identity_svid_t *s);
/** Borrowed OpenSSL objects (valid while the reference is held; do not modify). */
EVP_PKEY *identity_svid_key(const identity_svid_t *s);
X509 *identity_svid_leaf(const identity_svid_t *s);
X509_STORE *identity_svid_store(const identity_svid_t *s);

/**
 * When to renew, in Unix milliseconds: half-way from when the svid was fetched (or its NotBefore,
 * if later) to its NotAfter — NotBefore itself is backdated by the clock skew, so it is not the
 * start of the useful life — or half-way through the JWT's remaining life when that comes first.
 * After a failed renewal, retry every IDENTITY_RENEW_RETRY_MS.
 */
int64_t identity_svid_renew_at_ms(const identity_svid_t *s);

/* ---------------------------------------------------------------------------------------------
 * Client: fetching SVIDs from a sentry
 */

typedef struct identity_client_opts {
    const char *home;           /* OUTRIGGER_HOME; the local socket is <home>/sentry/sentry.sock */
    const char *socket_path;    /* overrides the local socket path; NULL = derived from home */
    const char *sentry_address; /* "host:port" of a remote sentry (TLS + join token); NULL =
                                   local socket */
    const char *token;          /* join token, required with sentry_address */
    const char *trust_anchors_pem;   /* roots the remote sentry's certificate must chain to;
                                        required with sentry_address */
    const char *sentry_trust_domain; /* trust domain of the remote sentry's ID; NULL = "public" */
    int timeout_ms;                  /* whole request; 0 = 5000 */
} identity_client_opts_t;

typedef struct identity_svid_req {
    const char *app_id;               /* required */
    const char *namespace_;           /* required ("default" when the sidecar has none) */
    const char *const *jwt_audiences; /* audiences of a JWT SVID to fetch too, or NULL */
    size_t jwt_audience_count;        /* at most IDENTITY_MAX_AUDIENCES */
} identity_svid_req_t;

/**
 * Generates a P-256 key and a CSR, asks the sentry to sign it for @p req's app id and namespace,
 * checks the answer (key matches, SPIFFE ID is the one asked for, chain verifies against the
 * returned bundle) and returns the svid with one reference. Blocks for at most timeout_ms.
 * ERR_IDENTITY_SENTRY when nothing listens, ERR_IDENTITY_DENIED when the sentry refused.
 */
int identity_svid_fetch(const identity_client_opts_t *c, const identity_svid_req_t *req,
                        identity_svid_t **out, err_detail_t *d) __attribute__((warn_unused_result));

typedef struct identity_ensure_opts {
    const char *exe; /* binary to start as `<exe> sentry`; NULL = /proc/self/exe */
    int wait_ms;     /* how long to wait for the socket; 0 = 10000 */
} identity_ensure_opts_t;

/**
 * Makes sure a local sentry answers on <home>/sentry/sentry.sock: returns 0 at once when one
 * does; otherwise starts `<exe> sentry` with OUTRIGGER_HOME=@p home, detached in its own session
 * (logging to <home>/sentry/sentry.log), and waits until it answers. Several callers may race:
 * the sentries they start agree through a lock on who serves. @p opts may be NULL.
 */
int identity_sentry_ensure(const char *home, const identity_ensure_opts_t *opts, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Writes "<home>/sentry" into @p out. ERR_TOO_LARGE when it does not fit in @p n bytes. */
int identity_default_state_dir(const char *home, char *out, size_t n);

/* ---------------------------------------------------------------------------------------------
 * TLS between sidecars
 */

/**
 * A server context: TLS 1.3 only; presents the svid's leaf, chain and key; requires a client
 * certificate that chains to the svid's trust bundle and whose leaf carries exactly one valid
 * SPIFFE ID (else the handshake fails); issues session tickets for resumption. On success *out is
 * a new context owned by the caller.
 */
int identity_tls_server_ctx_new(const identity_svid_t *svid, SSL_CTX **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/**
 * A client context: TLS 1.3 only; presents the svid; requires the server's certificate to chain
 * to the bundle and to carry exactly one valid SPIFFE ID; keeps received session tickets in a
 * per-context cache keyed as identity_tls_client_prepare says.
 */
int identity_tls_client_ctx_new(const identity_svid_t *svid, SSL_CTX **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/**
 * Prepares a client SSL (from a context of identity_tls_client_ctx_new) before its handshake:
 * @p expected (may be NULL: any) is the peer identity the caller resolved — the handshake fails
 * unless the server's namespace and app id (and trust domain, when expected's is non-empty) are
 * those; @p session_key (may be NULL: no resumption) names the peer for the session cache, e.g.
 * "10.0.0.2:50002" — a cached ticket for the same key and expected ID is offered. Copies both.
 */
int identity_tls_client_prepare(SSL *ssl, const spiffe_id_t *expected, const char *session_key)
    __attribute__((warn_unused_result));

/**
 * After a completed handshake (full or resumed): checks that the peer's certificate was verified,
 * is still within its validity period now, carries exactly one valid SPIFFE ID and, on a client
 * SSL, matches the expected ID given to identity_tls_client_prepare; writes that ID to @p out.
 * ERR_IDENTITY_CERT with the reason in @p d otherwise.
 */
int identity_tls_peer_id(SSL *ssl, spiffe_id_t *out, err_detail_t *d)
    __attribute__((warn_unused_result));

/**
 * Explains a failed TLS operation: @p ret is what the SSL_* call returned. Puts the verify
 * reason (when verification failed) or OpenSSL's first queued reason into @p d, clears the error
 * queue, and returns ERR_IDENTITY_TLS (or ERR_CLOSED for a clean close by the peer).
 */
int identity_tls_error(SSL *ssl, int ret, err_detail_t *d);

/* ---------------------------------------------------------------------------------------------
 * The sentry
 */

typedef struct identity_sentry_opts {
    const char *trust_domain; /* --trust-domain; default "public" */
    const char *state_dir;    /* --state-dir; required (the CLI defaults it to <home>/sentry) */
    const char *socket_path;  /* --socket; NULL = <state_dir>/sentry.sock */
    int workload_cert_ttl_s;  /* --workload-cert-ttl; default 24 h */
    int allowed_clock_skew_s; /* --allowed-clock-skew; default 15 min */
    int jwt_ttl_s;            /* --jwt-ttl; default 5 min */
    uid_t allowed_uids[IDENTITY_MAX_ALLOWED_UIDS]; /* --allowed-uid: local peers accepted; when
                                                      empty, only the sentry's own uid */
    size_t allowed_uid_count;
    const char *join_token_file; /* --join-token-file; NULL = no TCP listener */
    const char *listen_address;  /* --listen-address for the TCP listener; default "0.0.0.0" */
    int port;                    /* --port of the TCP listener; default 50001; 0 = any free */
    int jwks_port;               /* --jwks-port; 0 = no JWKS server; -1 = any free port */
    const char *jwks_address;    /* --jwks-address; default "127.0.0.1" */
    const char *jwt_issuer;      /* --jwt-issuer; NULL = https://localhost:<jwks-port> when the
                                    JWKS server runs, else no iss claim */
    int max_connections;         /* --max-connections; concurrent, default 32 */
    int io_timeout_ms;           /* whole-connection deadline; default 5000 */
} identity_sentry_opts_t;

typedef struct identity_sentry identity_sentry_t;

/** Fills @p o with the defaults beside each field (state_dir stays NULL). */
void identity_sentry_opts_defaults(identity_sentry_opts_t *o);

/**
 * Loads or creates the CA in opts->state_dir, takes the state dir's sentry lock (ERR_IDENTITY_CA
 * with "already running" when another sentry holds it), and binds every listener. Nothing is
 * served until identity_sentry_run.
 */
int identity_sentry_new(const identity_sentry_opts_t *opts, identity_sentry_t **out,
                        err_detail_t *d) __attribute__((warn_unused_result));

/** Serves until identity_sentry_stop; returns 0, or a code when serving could not go on. */
int identity_sentry_run(identity_sentry_t *s);

/** Asks identity_sentry_run to return. Async-signal-safe; callable from any thread. */
void identity_sentry_stop(identity_sentry_t *s);

/** Closes the listeners (removing the socket file) and frees. Call after run has returned. */
void identity_sentry_free(identity_sentry_t *s);

/* ---------------------------------------------------------------------------------------------
 * Root rotation (see docs/security.md): stage a new root and issuer, activate it, prune old roots.
 * Each takes the CA lock; a running sentry picks the change up on its next request.
 */

/** Creates a new root + issuer + JWT key as the staged generation, and adds its root and JWT key
 * to the trust bundle and JWKS. The active issuer keeps signing. */
int identity_ca_stage_root(const char *state_dir, const char *trust_domain, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Makes the staged generation the active one. The old root stays in the bundle. */
int identity_ca_activate_root(const char *state_dir, const char *trust_domain, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Removes every root and JWT key but the active (and staged) ones from the bundle and JWKS.
 * Returns the number of roots removed (≥ 0) or a negative code. */
int identity_ca_prune_roots(const char *state_dir, const char *trust_domain, err_detail_t *d)
    __attribute__((warn_unused_result));

#endif
