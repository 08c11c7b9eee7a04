/* Declarations shared by the files of the identity module only. */
#ifndef OUTRIGGER_IDENTITY_INT_H
#define OUTRIGGER_IDENTITY_INT_H

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "base/b64.h"
#include "base/buf.h"
#include "identity/identity.h"

/* Every limit of the module, in one place. */
#define IDENTITY_REQ_MAX_BYTES (16 * 1024)         /* one sentry request line */
#define IDENTITY_RESP_MAX_BYTES (256 * 1024)       /* one sentry response line */
#define IDENTITY_CSR_MAX_BYTES (8 * 1024)          /* PEM of one CSR */
#define IDENTITY_STATE_FILE_MAX_BYTES (512 * 1024) /* any file of the CA state dir */
#define IDENTITY_CHAIN_MAX_CERTS 8                 /* certificates in a returned chain */
#define IDENTITY_BUNDLE_MAX_CERTS 32               /* roots in a trust bundle (and JWT keys) */
#define IDENTITY_AUDIENCE_MAX_BYTES 256            /* one JWT audience */
#define IDENTITY_JWT_MAX_BYTES (8 * 1024)          /* one rendered JWT */
#define IDENTITY_HTTP_HEAD_MAX_BYTES (8 * 1024)    /* a JWKS request head */
#define IDENTITY_TOKEN_FILE_MAX_BYTES (64 * 1024)  /* the join-token file */
#define IDENTITY_TOKEN_MAX_ENTRIES 1024            /* tokens in that file */
#define IDENTITY_TOKEN_MIN_BYTES 32                /* shorter tokens are refused as guessable */
#define IDENTITY_TOKEN_MAX_BYTES 256               /* longest token */
#define IDENTITY_TOKEN_MAX_APPS 64                 /* app ids one token may name */
#define IDENTITY_APP_ID_MAX 64                     /* Dapr's sentry refuses longer app ids */
#define IDENTITY_URI_MAX 2048                      /* SPIFFE's limit on an ID */
#define IDENTITY_PATH_MAX 4096                     /* file paths built here */
#define IDENTITY_SESSION_SLOTS 256                 /* client session cache entries per context */
#define IDENTITY_SESSION_KEY_MAX 160               /* bytes of a session cache key */
#define IDENTITY_SESSION_TIMEOUT_S 300             /* lifetime of a resumable TLS session */
#define IDENTITY_CA_WARN_S (30 * 86400)            /* warn when the CA expires sooner */

/* Puts OpenSSL's first queued reason after @p what into @p d, clears the queue, returns @p code. */
int identity__ossl_fail(err_detail_t *d, int code, const char *what);

/* Monotonic clock in milliseconds. */
int64_t identity__now_ms(void);

/* ---- files (store.c) -------------------------------------------------------------------- */

/* Joins @p dir and @p name into @p out. ERR_TOO_LARGE when it does not fit. */
int identity__path(char *out, size_t n, const char *dir, const char *name);
/* Creates @p path (and missing parents) with mode 0700, then checks that it is a directory owned
 * by us that no one else may enter. ERR_IDENTITY_CA explains otherwise. */
int identity__mkdir_private(const char *path, err_detail_t *d);
/* Reads a whole file of at most @p max bytes into @p out (initialised here). ERR_NOT_FOUND when
 * it does not exist. */
int identity__file_read(const char *path, size_t max, buf_t *out, err_detail_t *d);
/* Writes @p n bytes to @p path atomically: a temporary file of mode @p mode, fsync, rename, fsync
 * of the directory. */
int identity__file_write(const char *path, const void *p, size_t n, mode_t mode, err_detail_t *d);
/* Takes an exclusive flock on @p path (created 0600); waits when @p wait, else returns
 * ERR_IDENTITY_CA at once if taken. *fd holds the lock until identity__unlock. */
int identity__lock(const char *path, bool wait, int *fd, err_detail_t *d);
void identity__unlock(int fd);

/* Identifies one version of a file: atomic rename changes the inode. */
typedef struct identity__stamp {
    bool exists;
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    off_t size;
} identity__stamp_t;
void identity__stamp(const char *path, identity__stamp_t *out);
bool identity__stamp_eq(const identity__stamp_t *a, const identity__stamp_t *b);

/* ---- X.509 and keys (x509.c) ------------------------------------------------------------ */

/* A new ECDSA P-256 key. */
int identity__key_new(EVP_PKEY **out, err_detail_t *d);
/* Parses every CERTIFICATE block of [pem, pem+n): at least one, at most @p max. */
int identity__pem_certs(const char *pem, size_t n, size_t max, STACK_OF(X509) * *out,
                        err_detail_t *d);
/* Appends @p x as PEM; the private key @p k as PKCS#8 PEM; the public key as PEM. */
int identity__pem_put_cert(buf_t *b, X509 *x);
int identity__pem_put_key(buf_t *b, EVP_PKEY *k);
int identity__pem_put_pubkey(buf_t *b, EVP_PKEY *k);
/* An ASN1_TIME as Unix seconds. */
int64_t identity__asn1_unix(const ASN1_TIME *t);
/* Unix seconds as "2006-01-02T15:04:05Z". */
void identity__rfc3339(int64_t t, char *out, size_t n);
/* The serial of @p x as lower-case hex into @p out (41 bytes suffice). */
void identity__serial_hex(X509 *x, char *out, size_t n);
/*
 * Reads the SPIFFE ID of a leaf: it must have exactly one URI SAN, that URI must be a valid
 * `spiffe://<td>/ns/<ns>/<app>` ID, and the certificate must not be a CA. ERR_IDENTITY_CERT with
 * the reason otherwise.
 */
int identity__cert_spiffe_id(X509 *x, spiffe_id_t *out, err_detail_t *d);
/* A CSR for @p key with an empty subject, as PEM appended to @p out. */
int identity__csr_new(EVP_PKEY *key, buf_t *out, err_detail_t *d);
/* Parses one PEM CSR, checks its self-signature and its key type (P-256/P-384, Ed25519, RSA of
 * at least 2048 bits), and returns its public key (new reference). ERR_IDENTITY_CSR otherwise. */
int identity__csr_pubkey(const char *pem, size_t n, EVP_PKEY **out, err_detail_t *d);
/* Checks @p leaf (+ @p untrusted intermediates) against @p store at time @p at (0 = now).
 * ERR_IDENTITY_CERT with OpenSSL's verify reason otherwise. */
int identity__verify_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) * untrusted, int64_t at,
                           err_detail_t *d);
/* A store holding every certificate of @p roots as a trust anchor. */
int identity__store_new(STACK_OF(X509) * roots, X509_STORE **out, err_detail_t *d);

/* ---- the CA (ca.c) ---------------------------------------------------------------------- */

/* What to put into a certificate the CA signs. */
typedef struct identity__profile {
    const char *uri;        /* the one URI SAN (a SPIFFE ID), required */
    const char *const *dns; /* DNS SANs, or NULL */
    size_t dns_count;
    const char *const *ips; /* IP SANs in text form, or NULL */
    size_t ip_count;
    bool client_auth;   /* ExtKeyUsage clientAuth besides serverAuth */
    int64_t not_before; /* Unix seconds */
    int64_t not_after;  /* Unix seconds; clamped to the issuer's NotAfter */
} identity__profile_t;

/* One generation: a root, the issuer it signed, and the key that signs JWTs. */
typedef struct identity__gen {
    X509 *root;
    EVP_PKEY *root_key;
    X509 *issuer;
    EVP_PKEY *issuer_key;
    EVP_PKEY *jwt_key;
    char jwt_kid[64]; /* RFC 7638 thumbprint of the JWT key */
} identity__gen_t;

typedef struct identity__ca {
    char *state_dir;             /* owned */
    char *trust_domain;          /* owned */
    identity__gen_t active;      /* signs everything */
    STACK_OF(X509) * bundle;     /* every trusted root, active first */
    char *bundle_pem;            /* owned; PEM of bundle */
    char *jwks_json;             /* owned; {"keys":[...]} of every published JWT key */
    identity__stamp_t stamps[3]; /* ca.pem, bundle.pem, jwt-keys.pem when loaded */
} identity__ca_t;

/* Loads the CA of @p state_dir, creating the directory and a first generation when there is
 * none, under the CA lock. */
int identity__ca_open(const char *state_dir, const char *trust_domain, identity__ca_t **out,
                      err_detail_t *d) __attribute__((warn_unused_result));
void identity__ca_free(identity__ca_t *ca);
/* True when a file of the state dir changed since @p ca was loaded (a rotation happened). */
bool identity__ca_changed(const identity__ca_t *ca);
/* Signs a certificate for @p pub (borrowed) as @p p says: no subject, the URI SAN (critical),
 * KeyUsage digitalSignature, ExtKeyUsage serverAuth (+clientAuth), 128-bit random serial. */
int identity__ca_sign(const identity__ca_t *ca, EVP_PKEY *pub, const identity__profile_t *p,
                      X509 **out, err_detail_t *d) __attribute__((warn_unused_result));
/* Appends PEM of @p leaf then the active issuer. */
int identity__ca_chain_pem(const identity__ca_t *ca, X509 *leaf, buf_t *out);

/* ---- JWT (jwt.c) ------------------------------------------------------------------------ */

typedef struct identity__jwt_claims {
    const char *iss;        /* NULL = no iss claim */
    const char *sub;        /* the SPIFFE ID */
    const char *const *aud; /* at least one */
    size_t aud_count;
    int64_t iat, nbf, exp; /* Unix seconds */
} identity__jwt_claims_t;

/* Signs an ES256 JWT with header {alg, kid, typ} and the claims plus a random jti into @p out. */
int identity__jwt_sign(EVP_PKEY *key, const char *kid, const identity__jwt_claims_t *c, buf_t *out,
                       err_detail_t *d) __attribute__((warn_unused_result));
/* The RFC 7638 thumbprint of a P-256 public key, base64url, into @p out (44 bytes suffice). */
int identity__jwk_kid(EVP_PKEY *key, char *out, size_t n, err_detail_t *d);
/* {"keys":[...]} with one EC JWK (kty, crv, x, y, kid, use, alg) per key. */
int identity__jwks_render(EVP_PKEY *const *keys, size_t n, buf_t *out, err_detail_t *d);

/* ---- TLS (tls.c) ------------------------------------------------------------------------ */

/* Sets TLS 1.3 only, the trust store, the SPIFFE verify callback and peer verification on @p ctx
 * (requiring a client certificate on a server). */
int identity__tls_ctx_setup(SSL_CTX *ctx, X509_STORE *store, bool server, err_detail_t *d);
/* Makes the handshake of @p ssl fail unless the peer's ID has @p expected's namespace and app id
 * (and trust domain when non-empty). */
int identity__tls_expect(SSL *ssl, const spiffe_id_t *expected);

/* ---- SVIDs (svid.c) --------------------------------------------------------------------- */

/* Builds an svid taking over @p key (also on failure), from chain and bundle PEM (@p jwt may be
 * NULL). With @p verify_now the chain must verify against the bundle at this moment; tests turn
 * it off to build expired or foreign identities. */
int identity__svid_new(EVP_PKEY *key, const char *chain_pem, size_t chain_len,
                       const char *bundle_pem, size_t bundle_len, const char *jwt, int64_t jwt_exp,
                       bool verify_now, identity_svid_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/* The svid's certificates, leaf first (borrowed). */
STACK_OF(X509) * identity__svid_chain(const identity_svid_t *s);

/* ---- blocking I/O with a deadline (io.c) ------------------------------------------------ */

typedef struct identity__io {
    int fd;              /* non-blocking socket; borrowed */
    SSL *ssl;            /* NULL for plain; borrowed */
    int64_t deadline_ms; /* identity__now_ms() time after which every call fails with timeout */
} identity__io_t;

/* Runs the TLS handshake of io->ssl (accept or connect state set by the caller). */
int identity__io_handshake(identity__io_t *io, err_detail_t *d);
/* Reads until @p term appears in @p b or the peer closes, at most b->max bytes. Returns 0 (term
 * seen or EOF after some bytes), ERR_CLOSED (EOF before any byte), ERR_TOO_LARGE, ERR_TIMEOUT. */
int identity__io_read_until(identity__io_t *io, buf_t *b, const char *term, err_detail_t *d);
/* Writes all @p n bytes. */
int identity__io_write(identity__io_t *io, const void *p, size_t n, err_detail_t *d);
/* Sends close_notify (TLS) and shuts the write side down; errors are ignored. */
void identity__io_finish(identity__io_t *io);

/* ---- sentry (sentry.c) ----------------------------------------------------------------- */

/* The ports the TCP and JWKS listeners were bound to (0 when off); tests ask for any free port
 * with port 0 / jwks_port -1. */
void identity__sentry_ports(const identity_sentry_t *s, int *tcp, int *jwks);
/* Answers one request line into @p resp as if it came over the Unix socket from an allowed uid
 * (or over TCP when @p tcp, so a join token is required). For the fuzz target. */
void identity__sentry_handle(identity_sentry_t *s, const char *line, size_t n, bool tcp,
                             buf_t *resp);

/* ---- join tokens (token.c) -------------------------------------------------------------- */

typedef struct identity__tokens identity__tokens_t;

/* Loads a join-token file (format in docs/security.md); refuses one others may read. */
int identity__tokens_load(const char *path, identity__tokens_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
void identity__tokens_free(identity__tokens_t *t);
/* 0 when @p token exists and allows @p ns / @p app_id; ERR_IDENTITY_DENIED otherwise. The token
 * comparison takes the same time whichever token matches. */
int identity__tokens_check(const identity__tokens_t *t, const char *token, const char *ns,
                           const char *app_id, err_detail_t *d);

#endif
