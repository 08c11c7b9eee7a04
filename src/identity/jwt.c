/*
 * JWT SVIDs: ES256 tokens (RFC 7515/7518/7519) signed with the CA's JWT key, and the JWKS
 * (RFC 7517) that verifiers fetch. Only P-256 keys are used, so every JOSE library can verify.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <string.h>

#include "identity/identity_int.h"

/* The 32-byte big-endian coordinates of a P-256 public key. */
static int ec_coords(EVP_PKEY *key, unsigned char x[32], unsigned char y[32], err_detail_t *d)
{
    BIGNUM *bx = NULL, *by = NULL;
    char group[64] = "";
    size_t glen = 0;
    int rc = 0;

    ERR_clear_error();
    if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC ||
        EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       &glen) != 1 ||
        (strcmp(group, "prime256v1") != 0 && strcmp(group, "P-256") != 0)) {
        ERR_clear_error();
        return err_set(d, ERR_IDENTITY_CRYPTO, "JWT key is not a P-256 key");
    }
    if (EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_X, &bx) != 1 ||
        EVP_PKEY_get_bn_param(key, OSSL_PKEY_PARAM_EC_PUB_Y, &by) != 1 ||
        BN_bn2binpad(bx, x, 32) != 32 || BN_bn2binpad(by, y, 32) != 32)
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot read the JWT key");
    BN_free(bx);
    BN_free(by);
    return rc;
}

/* Appends "<name>":"<base64url of p>". */
static int put_b64_member(buf_t *b, const char *name, const void *p, size_t n)
{
    int rc = buf_printf(b, "\"%s\":\"", name);

    if (rc == 0)
        rc = b64url_put(b, p, n);
    if (rc == 0)
        rc = buf_append_str(b, "\"");
    return rc;
}

int identity__jwk_kid(EVP_PKEY *key, char *out, size_t n, err_detail_t *d)
{
    unsigned char x[32], y[32], digest[32];
    unsigned int dlen = 0;
    buf_t b;
    int rc = ec_coords(key, x, y, d);

    if (rc < 0)
        return rc;
    /* RFC 7638 §3.2: the required members in lexicographic order, no whitespace. */
    buf_init(&b, 256);
    rc = buf_append_str(&b, "{\"crv\":\"P-256\",\"kty\":\"EC\",");
    if (rc == 0)
        rc = put_b64_member(&b, "x", x, 32);
    if (rc == 0)
        rc = buf_append_str(&b, ",");
    if (rc == 0)
        rc = put_b64_member(&b, "y", y, 32);
    if (rc == 0)
        rc = buf_append_str(&b, "}");
    if (rc == 0 && EVP_Digest(b.ptr, b.len, digest, &dlen, EVP_sha256(), NULL) != 1)
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot hash the JWK");
    buf_free(&b);
    if (rc < 0)
        return rc;
    buf_init(&b, 64);
    rc = b64url_put(&b, digest, dlen);
    if (rc == 0 && b.len < n)
        memcpy(out, b.ptr, b.len + 1);
    else if (rc == 0)
        rc = ERR_TOO_LARGE;
    buf_free(&b);
    return rc;
}

int identity__jwks_render(EVP_PKEY *const *keys, size_t n, buf_t *out, err_detail_t *d)
{
    unsigned char x[32], y[32];
    char kid[64];
    int rc = buf_append_str(out, "{\"keys\":[");

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = ec_coords(keys[i], x, y, d);
        if (rc == 0)
            rc = identity__jwk_kid(keys[i], kid, sizeof(kid), d);
        if (rc == 0)
            rc = buf_printf(out, "%s{\"kty\":\"EC\",\"crv\":\"P-256\",", i ? "," : "");
        if (rc == 0)
            rc = put_b64_member(out, "x", x, 32);
        if (rc == 0)
            rc = buf_append_str(out, ",");
        if (rc == 0)
            rc = put_b64_member(out, "y", y, 32);
        if (rc == 0)
            rc = buf_printf(out, ",\"kid\":\"%s\",\"use\":\"sig\",\"alg\":\"ES256\"}", kid);
    }
    if (rc == 0)
        rc = buf_append_str(out, "]}");
    if (rc < 0 && d != NULL && d->msg[0] == '\0')
        err_set(d, rc, "cannot render the JWKS");
    return rc;
}

/* Appends "<name>":"<JSON-escaped s>". */
static int put_str_member(buf_t *b, const char *name, const char *s)
{
    int rc = buf_printf(b, "\"%s\":\"", name);

    if (rc == 0)
        rc = buf_append_json_str(b, s, strlen(s));
    if (rc == 0)
        rc = buf_append_str(b, "\"");
    return rc;
}

/* Renders the claims set, with a fresh random jti. */
static int claims_json(const identity__jwt_claims_t *c, buf_t *b)
{
    unsigned char jti[16];
    int rc;

    if (RAND_bytes(jti, sizeof(jti)) != 1)
        return ERR_IDENTITY_CRYPTO;
    rc = buf_append_str(b, "{");
    if (rc == 0 && c->iss != NULL) {
        rc = put_str_member(b, "iss", c->iss);
        if (rc == 0)
            rc = buf_append_str(b, ",");
    }
    if (rc == 0)
        rc = put_str_member(b, "sub", c->sub);
    /* RFC 7519 §4.1.3: a single audience may be a plain string, which every verifier accepts;
     * several need the array form. */
    if (rc == 0 && c->aud_count == 1) {
        rc = buf_append_str(b, ",");
        if (rc == 0)
            rc = put_str_member(b, "aud", c->aud[0]);
    } else if (rc == 0) {
        rc = buf_append_str(b, ",\"aud\":[");
        for (size_t i = 0; rc == 0 && i < c->aud_count; i++) {
            rc = buf_append_str(b, i ? ",\"" : "\"");
            if (rc == 0)
                rc = buf_append_json_str(b, c->aud[i], strlen(c->aud[i]));
            if (rc == 0)
                rc = buf_append_str(b, "\"");
        }
        if (rc == 0)
            rc = buf_append_str(b, "]");
    }
    if (rc == 0)
        rc = buf_printf(b, ",\"iat\":%lld,\"nbf\":%lld,\"exp\":%lld,", (long long)c->iat,
                        (long long)c->nbf, (long long)c->exp);
    if (rc == 0)
        rc = put_b64_member(b, "jti", jti, sizeof(jti));
    if (rc == 0)
        rc = buf_append_str(b, "}");
    return rc;
}

int identity__jwt_sign(EVP_PKEY *key, const char *kid, const identity__jwt_claims_t *c, buf_t *out,
                       err_detail_t *d)
{
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *sig = NULL;
    unsigned char der[128], raw[64];
    const unsigned char *dp = der;
    const BIGNUM *r, *s;
    size_t der_len = sizeof(der);
    buf_t head, claims;
    int rc;

    if (c->sub == NULL || c->aud_count == 0)
        return err_set(d, ERR_INVAL, "a JWT needs a subject and an audience");
    buf_init(&head, 512);
    buf_init(&claims, IDENTITY_JWT_MAX_BYTES);
    rc = buf_printf(&head, "{\"alg\":\"ES256\",\"kid\":\"%s\",\"typ\":\"JWT\"}", kid);
    if (rc == 0)
        rc = claims_json(c, &claims);
    if (rc < 0) {
        rc = err_set(d, rc, "JWT claims too large");
        goto out;
    }
    rc = b64url_put(out, head.ptr, head.len);
    if (rc == 0)
        rc = buf_append_str(out, ".");
    if (rc == 0)
        rc = b64url_put(out, claims.ptr, claims.len);
    if (rc < 0) {
        rc = err_set(d, rc, "JWT too large");
        goto out;
    }
    ERR_clear_error();
    md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestSign(md, der, &der_len, (const unsigned char *)out->ptr, out->len) != 1 ||
        (sig = d2i_ECDSA_SIG(NULL, &dp, (long)der_len)) == NULL) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot sign the JWT");
        goto out;
    }
    /* RFC 7518 §3.4: ES256 signatures are R || S, each 32 bytes, not DER. */
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "bad ECDSA signature size");
        goto out;
    }
    rc = buf_append_str(out, ".");
    if (rc == 0)
        rc = b64url_put(out, raw, sizeof(raw));
    if (rc < 0)
        rc = err_set(d, rc, "JWT too large");
out:
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    buf_free(&head);
    buf_free(&claims);
    ERR_clear_error();
    return rc;
}
