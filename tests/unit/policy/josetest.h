/*
 * Helpers for the JOSE tests: keys made with OpenSSL, rendered as JWKs, and compact JWS tokens
 * signed here (independently of src/policy/jose.c). Included by one test file (all static).
 */
#ifndef OUTRIGGER_JOSETEST_H
#define OUTRIGGER_JOSETEST_H

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/buf.h"

#define JT_MAX (64 * 1024)

static void jt_die(const char *what)
{
    fprintf(stderr, "josetest: %s failed\n", what);
    ERR_print_errors_fp(stderr);
    abort();
}

static __attribute__((unused)) void jt_put(buf_t *b, const char *s)
{
    if (buf_append_str(b, s) < 0)
        jt_die("buf_append_str");
}

static void jt_b64(buf_t *b, const void *p, size_t n)
{
    if (b64url_put(b, p, n) < 0)
        jt_die("b64url_put");
}

static __attribute__((unused)) EVP_PKEY *jt_rsa(size_t bits)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);
    if (k == NULL)
        jt_die("RSA keygen");
    return k;
}

static __attribute__((unused)) EVP_PKEY *jt_ec(const char *curve)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
    if (k == NULL)
        jt_die("EC keygen");
    return k;
}

static __attribute__((unused)) EVP_PKEY *jt_ed25519(void)
{
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (k == NULL)
        jt_die("Ed25519 keygen");
    return k;
}

/* Big-endian bytes of a BIGNUM parameter, left-padded to @p pad bytes when pad > 0. */
static size_t jt_bn(EVP_PKEY *k, const char *name, unsigned char *out, size_t cap, size_t pad)
{
    BIGNUM *bn = NULL;
    int n;
    if (EVP_PKEY_get_bn_param(k, name, &bn) != 1 || (size_t)BN_num_bytes(bn) > cap || pad > cap)
        jt_die("EVP_PKEY_get_bn_param");
    n = pad ? BN_bn2binpad(bn, out, (int)pad) : BN_bn2bin(bn, out);
    BN_free(bn);
    if (n < 0)
        jt_die("BN_bn2bin");
    return (size_t)n;
}

/* The RSA modulus bytes (minimal big-endian). */
static __attribute__((unused)) size_t jt_rsa_n(EVP_PKEY *k, unsigned char *out, size_t cap)
{
    return jt_bn(k, OSSL_PKEY_PARAM_RSA_N, out, cap, 0);
}

/*
 * Appends the public JWK of @p k to @p b. @p kid, @p alg, @p use are added when non-NULL;
 * @p extra (raw JSON members, without a leading comma) too.
 */
static __attribute__((unused)) void jt_jwk(buf_t *b, EVP_PKEY *k, const char *kid, const char *alg,
                                           const char *use, const char *extra)
{
    unsigned char x[1024], y[64];
    size_t n;

    if (EVP_PKEY_is_a(k, "RSA")) {
        jt_put(b, "{\"kty\":\"RSA\",\"n\":\"");
        n = jt_bn(k, OSSL_PKEY_PARAM_RSA_N, x, sizeof(x), 0);
        jt_b64(b, x, n);
        jt_put(b, "\",\"e\":\"");
        n = jt_bn(k, OSSL_PKEY_PARAM_RSA_E, x, sizeof(x), 0);
        jt_b64(b, x, n);
        jt_put(b, "\"");
    } else if (EVP_PKEY_is_a(k, "EC")) {
        size_t half = (size_t)(EVP_PKEY_get_bits(k) + 7) / 8;
        jt_put(b, half == 32 ? "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\""
                             : "{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"");
        jt_bn(k, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(y), half);
        jt_b64(b, x, half);
        jt_put(b, "\",\"y\":\"");
        jt_bn(k, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y), half);
        jt_b64(b, y, half);
        jt_put(b, "\"");
    } else {
        n = sizeof(x);
        if (EVP_PKEY_get_raw_public_key(k, x, &n) != 1)
            jt_die("EVP_PKEY_get_raw_public_key");
        jt_put(b, "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"");
        jt_b64(b, x, n);
        jt_put(b, "\"");
    }
    if (kid != NULL) {
        jt_put(b, ",\"kid\":\"");
        jt_put(b, kid);
        jt_put(b, "\"");
    }
    if (alg != NULL) {
        jt_put(b, ",\"alg\":\"");
        jt_put(b, alg);
        jt_put(b, "\"");
    }
    if (use != NULL) {
        jt_put(b, ",\"use\":\"");
        jt_put(b, use);
        jt_put(b, "\"");
    }
    if (extra != NULL) {
        jt_put(b, ",");
        jt_put(b, extra);
    }
    jt_put(b, "}");
}

static const char *jt_md(const char *alg)
{
    if (strstr(alg, "256") != NULL)
        return "SHA256";
    if (strstr(alg, "384") != NULL)
        return "SHA384";
    if (strstr(alg, "512") != NULL)
        return "SHA512";
    return NULL; /* EdDSA */
}

/* Signs [in, in+n) as JOSE @p alg with private key @p k into @p sig; returns its length. */
static __attribute__((unused)) size_t jt_sign(EVP_PKEY *k, const char *alg, const char *in,
                                              size_t n, unsigned char *sig, size_t cap)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    unsigned char der[256];
    size_t dl = sizeof(der), sl = cap;

    if (mc == NULL || EVP_DigestSignInit_ex(mc, &pc, jt_md(alg), NULL, NULL, k, NULL) != 1)
        jt_die("EVP_DigestSignInit_ex");
    if (alg[0] == 'R' || alg[0] == 'P') {
        if (EVP_PKEY_CTX_set_rsa_padding(pc, alg[0] == 'P' ? RSA_PKCS1_PSS_PADDING
                                                           : RSA_PKCS1_PADDING) != 1 ||
            (alg[0] == 'P' && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1))
            jt_die("RSA padding");
    }
    if (alg[0] == 'E' && alg[1] == 'S') {
        const unsigned char *p = der;
        ECDSA_SIG *es;
        size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        if (EVP_DigestSign(mc, der, &dl, (const unsigned char *)in, n) != 1)
            jt_die("EVP_DigestSign");
        es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
        if (es == NULL || 2 * half > cap ||
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, (int)half) != (int)half ||
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + half, (int)half) != (int)half)
            jt_die("ECDSA r||s");
        ECDSA_SIG_free(es);
        sl = 2 * half;
    } else if (EVP_DigestSign(mc, sig, &sl, (const unsigned char *)in, n) != 1) {
        jt_die("EVP_DigestSign");
    }
    EVP_MD_CTX_free(mc);
    return sl;
}

/*
 * Appends a compact JWS to @p b: base64url(@p hdr).base64url(@p claims).signature, signed as
 * @p alg with @p k. @p hdr and @p claims are JSON texts used verbatim.
 */
static __attribute__((unused)) void jt_token(buf_t *b, EVP_PKEY *k, const char *alg,
                                             const char *hdr, const char *claims)
{
    unsigned char sig[1024];
    size_t start = b->len, sl;

    jt_b64(b, hdr, strlen(hdr));
    jt_put(b, ".");
    jt_b64(b, claims, strlen(claims));
    sl = jt_sign(k, alg, b->ptr + start, b->len - start, sig, sizeof(sig));
    jt_put(b, ".");
    jt_b64(b, sig, sl);
}

#endif
