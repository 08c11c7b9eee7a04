/* JWKS parsing and JWT verification over OpenSSL 3 (see jose.h). */
#include "policy/jose.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>

#include "base/alloc.h"
#include "base/b64.h"

typedef enum kty { KTY_RSA, KTY_EC256, KTY_EC384, KTY_ED25519 } kty_t;

typedef struct key {
    EVP_PKEY *pkey;
    kty_t kty;
    char kid[128];
    char alg[16]; /* "" = any algorithm of the type */
} key_t_;

struct pol_jwks {
    atomic_int refs;
    size_t n;
    key_t_ keys[POL_JWKS_KEYS_MAX];
};

typedef struct alg {
    const char *name;
    kty_t kty;
    const char *md; /* digest name; NULL for EdDSA */
    bool pss;
    size_t sig_half; /* ECDSA: bytes of r and of s */
} alg_t;

static const alg_t algs[] = {
    {"RS256", KTY_RSA, "SHA256", false, 0},    {"RS384", KTY_RSA, "SHA384", false, 0},
    {"RS512", KTY_RSA, "SHA512", false, 0},    {"PS256", KTY_RSA, "SHA256", true, 0},
    {"PS384", KTY_RSA, "SHA384", true, 0},     {"PS512", KTY_RSA, "SHA512", true, 0},
    {"ES256", KTY_EC256, "SHA256", false, 32}, {"ES384", KTY_EC384, "SHA384", false, 48},
    {"EdDSA", KTY_ED25519, NULL, false, 0},
};

static const alg_t *alg_find(const char *name)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (strcmp(algs[i].name, name) == 0)
            return &algs[i];
    return NULL;
}

/* Decodes a base64url member of @p o into @p out. */
static int b64_member(json_t *o, const char *name, unsigned char *out, size_t cap, size_t *n)
{
    json_t *v = json_object_get(o, name);
    if (!json_is_string(v))
        return ERR_PARSE;
    return b64url_decode(json_string_value(v), json_string_length(v), out, cap, n);
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);

    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pkey = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_key(json_t *o)
{
    unsigned char n[1024], e[16];
    size_t nl, el;
    BIGNUM *bn = NULL, *be = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *k = NULL;

    if (b64_member(o, "n", n, sizeof(n), &nl) < 0 || b64_member(o, "e", e, sizeof(e), &el) < 0)
        return NULL;
    bn = BN_bin2bn(n, (int)nl, NULL);
    be = BN_bin2bn(e, (int)el, NULL);
    bld = OSSL_PARAM_BLD_new();
    /* Under 2048 bits: refused. Counted in bits, not in bytes: leading zero bytes in "n" would
     * pass a weak modulus off as a long one. */
    if (bn != NULL && be != NULL && bld != NULL && BN_num_bits(bn) >= 2048 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) == 1)
        k = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return k;
}

static EVP_PKEY *ec_key(json_t *o, kty_t *kty)
{
    json_t *crv = json_object_get(o, "crv");
    unsigned char pt[1 + 2 * 48];
    size_t half, xl, yl;
    const char *group;
    OSSL_PARAM_BLD *bld;
    EVP_PKEY *k = NULL;

    if (!json_is_string(crv))
        return NULL;
    if (strcmp(json_string_value(crv), "P-256") == 0) {
        half = 32;
        group = "P-256";
        *kty = KTY_EC256;
    } else if (strcmp(json_string_value(crv), "P-384") == 0) {
        half = 48;
        group = "P-384";
        *kty = KTY_EC384;
    } else {
        return NULL;
    }
    pt[0] = 0x04;
    if (b64_member(o, "x", pt + 1, half, &xl) < 0 ||
        b64_member(o, "y", pt + 1 + half, half, &yl) < 0 || xl != half || yl != half)
        return NULL;
    bld = OSSL_PARAM_BLD_new();
    if (bld != NULL &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * half) == 1)
        k = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    return k;
}

static EVP_PKEY *okp_key(json_t *o)
{
    json_t *crv = json_object_get(o, "crv");
    unsigned char x[32];
    size_t xl;
    if (!json_is_string(crv) || strcmp(json_string_value(crv), "Ed25519") != 0 ||
        b64_member(o, "x", x, sizeof(x), &xl) < 0 || xl != 32)
        return NULL;
    return EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, xl);
}

void pol_jwks_unref(pol_jwks_t *ks)
{
    if (ks == NULL || atomic_fetch_sub(&ks->refs, 1) != 1)
        return;
    for (size_t i = 0; i < ks->n; i++)
        EVP_PKEY_free(ks->keys[i].pkey);
    mem_free(ks);
}

pol_jwks_t *pol_jwks_ref(pol_jwks_t *ks)
{
    if (ks != NULL)
        atomic_fetch_add(&ks->refs, 1);
    return ks;
}

size_t pol_jwks_count(const pol_jwks_t *ks)
{
    return ks ? ks->n : 0;
}

int pol_jwks_parse(const char *json, size_t len, pol_jwks_t **out, err_detail_t *d)
{
    json_error_t je;
    json_t *root = json_loadb(json, len, 0, &je), *keys;
    pol_jwks_t *ks;
    size_t i;

    *out = NULL;
    if (root == NULL)
        return err_set(d, ERR_PARSE, "JWKS is not JSON: %s", je.text);
    keys = json_object_get(root, "keys");
    if (!json_is_array(keys)) {
        json_decref(root);
        return err_set(d, ERR_PARSE, "JWKS has no \"keys\" array");
    }
    ks = mem_calloc(sizeof(*ks));
    atomic_init(&ks->refs, 1);
    for (i = 0; i < json_array_size(keys) && ks->n < POL_JWKS_KEYS_MAX; i++) {
        json_t *k = json_array_get(keys, i);
        json_t *kty = json_object_get(k, "kty"), *use = json_object_get(k, "use");
        json_t *kid = json_object_get(k, "kid"), *alg = json_object_get(k, "alg");
        key_t_ *dst = &ks->keys[ks->n];

        if (!json_is_object(k) || !json_is_string(kty))
            continue;
        if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0))
            continue;
        if (strcmp(json_string_value(kty), "RSA") == 0) {
            dst->pkey = rsa_key(k);
            dst->kty = KTY_RSA;
        } else if (strcmp(json_string_value(kty), "EC") == 0) {
            dst->pkey = ec_key(k, &dst->kty);
        } else if (strcmp(json_string_value(kty), "OKP") == 0) {
            dst->pkey = okp_key(k);
            dst->kty = KTY_ED25519;
        }
        if (dst->pkey == NULL)
            continue;
        /* A kid or alg we cannot keep whole is a key we cannot select or restrict as its
         * publisher meant (an alg dropped would make it valid for every algorithm): skipped. */
        if ((kid != NULL &&
             (!json_is_string(kid) || json_string_length(kid) >= sizeof(dst->kid))) ||
            (alg != NULL &&
             (!json_is_string(alg) || json_string_length(alg) >= sizeof(dst->alg)))) {
            EVP_PKEY_free(dst->pkey);
            dst->pkey = NULL;
            continue;
        }
        if (kid != NULL)
            memcpy(dst->kid, json_string_value(kid), json_string_length(kid) + 1);
        if (alg != NULL)
            memcpy(dst->alg, json_string_value(alg), json_string_length(alg) + 1);
        ks->n++;
    }
    json_decref(root);
    ERR_clear_error();
    if (ks->n == 0) {
        pol_jwks_unref(ks);
        return err_set(d, ERR_PARSE, "JWKS holds no usable signing key");
    }
    *out = ks;
    return 0;
}

/* ECDSA: JOSE's fixed r||s to the DER form OpenSSL verifies. */
static int ecdsa_der(const unsigned char *sig, size_t half, unsigned char *der, size_t cap,
                     size_t *dl)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)half, NULL), *s = BN_bin2bn(sig + half, (int)half, NULL);
    unsigned char *p = der;
    int n;

    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        ECDSA_SIG_free(es);
        BN_free(r);
        BN_free(s);
        return ERR_PARSE;
    }
    n = i2d_ECDSA_SIG(es, NULL);
    if (n <= 0 || (size_t)n > cap) {
        ECDSA_SIG_free(es);
        return ERR_PARSE;
    }
    n = i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    *dl = (size_t)n;
    return 0;
}

static bool sig_ok(const key_t_ *k, const alg_t *a, const char *input, size_t in_len,
                   const unsigned char *sig, size_t sig_len)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    unsigned char der[160];
    size_t dl;
    bool ok = false;

    if (mc == NULL)
        return false;
    if (a->sig_half != 0) {
        if (sig_len != 2 * a->sig_half || ecdsa_der(sig, a->sig_half, der, sizeof(der), &dl) < 0)
            goto out;
        sig = der;
        sig_len = dl;
    }
    if (EVP_DigestVerifyInit_ex(mc, &pc, a->md, NULL, NULL, k->pkey, NULL) != 1)
        goto out;
    if (a->kty == KTY_RSA &&
        (EVP_PKEY_CTX_set_rsa_padding(pc, a->pss ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING) !=
             1 ||
         (a->pss && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1)))
        goto out;
    ok = EVP_DigestVerify(mc, sig, sig_len, (const unsigned char *)input, in_len) == 1;
out:
    EVP_MD_CTX_free(mc);
    ERR_clear_error();
    return ok;
}

/* Decodes one base64url JSON segment of the token. */
static json_t *segment(const char *p, size_t n)
{
    unsigned char tmp[POL_JWT_MAX];
    size_t tl;
    if (b64url_decode(p, n, tmp, sizeof(tmp), &tl) < 0)
        return NULL;
    return json_loadb((const char *)tmp, tl, JSON_REJECT_DUPLICATES, NULL);
}

static int num_claim(json_t *c, const char *name, int64_t *v, bool *present)
{
    json_t *x = json_object_get(c, name);
    *present = x != NULL;
    if (x == NULL)
        return 0;
    if (json_is_integer(x)) {
        *v = (int64_t)json_integer_value(x);
    } else if (json_is_real(x)) {
        /* Converting a double outside int64_t's range is undefined: saturate instead. */
        double r = json_real_value(x);
        if (r != r)
            return ERR_POLICY_TOKEN;
        *v = r >= 9.2e18 ? INT64_MAX : r <= -9.2e18 ? INT64_MIN : (int64_t)r;
    } else {
        return ERR_POLICY_TOKEN;
    }
    return 0;
}

/* a + b without overflow (saturating). */
static int64_t add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r))
        return b > 0 ? INT64_MAX : INT64_MIN;
    return r;
}

static int check_claims(json_t *c, const pol_jwt_expect_t *e, pol_jwt_info_t *info, err_detail_t *d)
{
    json_t *iss = json_object_get(c, "iss"), *aud = json_object_get(c, "aud");
    json_t *sub = json_object_get(c, "sub");
    int64_t exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat, aud_ok = false;

    if (num_claim(c, "exp", &exp, &has_exp) < 0 || num_claim(c, "nbf", &nbf, &has_nbf) < 0 ||
        num_claim(c, "iat", &iat, &has_iat) < 0)
        return err_set(d, ERR_POLICY_TOKEN, "malformed time claim");
    if (!has_exp)
        return err_set(d, ERR_POLICY_TOKEN, "token has no exp claim");
    /* RFC 7519 4.1.4: not accepted "on or after" exp; nbf and iat may equal now. */
    if (e->now >= add_sat(exp, e->skew))
        return err_set(d, ERR_POLICY_TOKEN, "token expired");
    if (has_nbf && add_sat(e->now, e->skew) < nbf)
        return err_set(d, ERR_POLICY_TOKEN, "token not valid yet (nbf)");
    if (has_iat && add_sat(e->now, e->skew) < iat)
        return err_set(d, ERR_POLICY_TOKEN, "token issued in the future (iat)");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), e->issuer) != 0)
        return err_set(d, ERR_POLICY_TOKEN, "wrong issuer");
    if (json_is_string(aud)) {
        aud_ok = strcmp(json_string_value(aud), e->audience) == 0;
    } else if (json_is_array(aud)) {
        for (size_t i = 0; i < json_array_size(aud) && !aud_ok; i++) {
            json_t *a = json_array_get(aud, i);
            aud_ok = json_is_string(a) && strcmp(json_string_value(a), e->audience) == 0;
        }
    }
    if (!aud_ok)
        return err_set(d, ERR_POLICY_TOKEN, "wrong audience");
    if (info != NULL) {
        info->exp = exp;
        info->sub[0] = '\0';
        if (json_is_string(sub)) {
            size_t n = json_string_length(sub);
            if (n >= sizeof(info->sub))
                n = sizeof(info->sub) - 1;
            memcpy(info->sub, json_string_value(sub), n);
            info->sub[n] = '\0';
        }
    }
    return 0;
}

int pol_jwt_verify(const pol_jwks_t *ks, const char *tok, size_t len, const pol_jwt_expect_t *e,
                   pol_jwt_info_t *info, err_detail_t *d)
{
    const char *dot1, *dot2;
    json_t *hdr = NULL, *claims = NULL, *jalg, *jkid;
    const alg_t *a;
    unsigned char sig[1024];
    size_t sl;
    bool tried = false, ok = false, kid_known = false;
    int rc;

    if (len > POL_JWT_MAX)
        return err_set(d, ERR_POLICY_TOKEN, "token too long");
    dot1 = memchr(tok, '.', len);
    dot2 = dot1 ? memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - tok)) : NULL;
    if (dot2 == NULL || memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - tok)) != NULL)
        return err_set(d, ERR_POLICY_TOKEN, "not a compact JWS");
    hdr = segment(tok, (size_t)(dot1 - tok));
    if (!json_is_object(hdr)) {
        rc = err_set(d, ERR_POLICY_TOKEN, "malformed JOSE header");
        goto out;
    }
    jalg = json_object_get(hdr, "alg");
    jkid = json_object_get(hdr, "kid");
    a = json_is_string(jalg) ? alg_find(json_string_value(jalg)) : NULL;
    if (a == NULL) {
        rc = err_set(d, ERR_POLICY_TOKEN, "algorithm not accepted");
        goto out;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        rc = err_set(d, ERR_POLICY_TOKEN, "critical header extensions are not supported");
        goto out;
    }
    if (jkid != NULL && !json_is_string(jkid)) {
        rc = err_set(d, ERR_POLICY_TOKEN, "malformed kid");
        goto out;
    }
    if (b64url_decode(dot2 + 1, len - (size_t)(dot2 + 1 - tok), sig, sizeof(sig), &sl) < 0) {
        rc = err_set(d, ERR_POLICY_TOKEN, "malformed signature");
        goto out;
    }
    for (size_t i = 0; i < ks->n && !ok; i++) {
        const key_t_ *k = &ks->keys[i];
        if (jkid != NULL && strcmp(k->kid, json_string_value(jkid)) != 0)
            continue;
        kid_known = true;
        if (k->kty != a->kty || (k->alg[0] != '\0' && strcmp(k->alg, a->name) != 0))
            continue;
        tried = true;
        ok = sig_ok(k, a, tok, (size_t)(dot2 - tok), sig, sl);
    }
    if (!tried) {
        /* Unknown kid only when no key has it: a known key of another type or algorithm is a
         * refusal, not a reason to fetch the set again. */
        rc = jkid != NULL && !kid_known ? err_set(d, ERR_POLICY_UNKNOWN_KID, "unknown signing key")
                                        : err_set(d, ERR_POLICY_TOKEN, "no key for the algorithm");
        goto out;
    }
    if (!ok) {
        rc = err_set(d, ERR_POLICY_TOKEN, "bad signature");
        goto out;
    }
    claims = segment(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    if (!json_is_object(claims)) {
        rc = err_set(d, ERR_POLICY_TOKEN, "malformed claims");
        goto out;
    }
    rc = check_claims(claims, e, info, d);
out:
    json_decref(hdr);
    json_decref(claims);
    return rc;
}
