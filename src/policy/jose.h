/*
 * jose — JSON Web Key Sets and JWT verification for the bearer middleware.
 *
 * Job: parse a JWKS (RFC 7517) into public keys once; verify a compact JWS (RFC 7515) against it
 * and check the registered claims (RFC 7519) of the token.
 *
 * What is accepted, deliberately narrow: algorithms RS256/384/512, PS256/384/512, ES256/384 and
 * EdDSA (Ed25519), each only with a key of the matching type (and curve); the key is chosen by
 * the token's `kid` among the set's keys, or — without a `kid` — every key of the matching type is
 * tried. Never accepted: `alg: none`, any HMAC algorithm (so a public key can never be used as an
 * HMAC secret), a key carried by or pointed to from the token (`jwk`, `jku`, `x5u`, `x5c` headers
 * are ignored), a `crit` header (no extension is understood), keys whose `use` is not "sig" or
 * whose `alg` differs from the token's. Claims: `iss` must equal the expected issuer exactly;
 * `aud` (string or array) must contain the expected audience; `exp` is required; `exp`, `nbf` and
 * `iat` are checked with a clock skew allowance.
 *
 * Ownership: pol_jwks_t is immutable and refcounted (ref/unref are atomic), shared by all threads.
 * Threading: every function is thread-safe. Errors: ERR_PARSE (malformed JWKS/JWT),
 * ERR_POLICY_UNKNOWN_KID (the kid is not in the set: the caller may refresh the set),
 * ERR_POLICY_TOKEN (signature or claims rejected); the detail says why without the token.
 */
#ifndef OUTRIGGER_POLICY_JOSE_H
#define OUTRIGGER_POLICY_JOSE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

#define POL_JWT_MAX (16 * 1024) /* longest token considered */
#define POL_JWKS_KEYS_MAX 64    /* keys kept from one set */

typedef struct pol_jwks pol_jwks_t;

/** Parses a JWKS document. Skipped: keys of unsupported types or curves, RSA under 2048 bits,
 * `use` other than "sig", a `kid` or `alg` that is not a string or longer than 127 / 15 bytes.
 * Needs at least one key. */
int pol_jwks_parse(const char *json, size_t len, pol_jwks_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
pol_jwks_t *pol_jwks_ref(pol_jwks_t *ks);
void pol_jwks_unref(pol_jwks_t *ks);
size_t pol_jwks_count(const pol_jwks_t *ks);

typedef struct pol_jwt_expect {
    const char *issuer;   /* required exact `iss` */
    const char *audience; /* required member of `aud` */
    int64_t now;          /* seconds since the epoch */
    int64_t skew;         /* seconds allowed on exp/nbf/iat */
} pol_jwt_expect_t;

/* What a verified token said (for caching and logs). */
typedef struct pol_jwt_info {
    int64_t exp;   /* expiry, seconds since the epoch */
    char sub[256]; /* subject, cut to fit */
} pol_jwt_info_t;

/** Verifies compact token [tok, tok+len). 0 when valid (fills @p info, may be NULL). */
int pol_jwt_verify(const pol_jwks_t *ks, const char *tok, size_t len, const pol_jwt_expect_t *e,
                   pol_jwt_info_t *info, err_detail_t *d) __attribute__((warn_unused_result));

#endif
