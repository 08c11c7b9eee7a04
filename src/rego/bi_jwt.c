/*
 * bi_jwt.c — io.jwt.decode, io.jwt.verify_* and io.jwt.decode_verify over OpenSSL 3.
 *
 * Keys for the asymmetric algorithms come as a PEM certificate, a PEM public key, a JWK or a
 * JWK Set (RSA and EC keys). ES* signatures are JOSE's raw r||s, converted to DER for OpenSSL.
 */
#include <math.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <string.h>

#include "rego/rego_int.h"

#define A (&ev->arena)

bool rego__b64_decode(rego__arena_t *a, const char *s, size_t n, bool url, char **out,
                      size_t *outn);

typedef struct jwt_parts {
    rv_t *header, *payload;
    const char *signing; /* header.payload */
    size_t signing_len;
    char *sig; /* decoded signature */
    size_t sig_len;
} jwt_parts_t;

static rv_t *parse_json_bytes(rego_eval_t *ev, const char *s, size_t n)
{
    json_error_t jerr;
    json_t *j = json_loadb(s, n, JSON_DECODE_INT_AS_REAL, &jerr);
    rv_t *v;
    if (j == NULL)
        return NULL;
    v = rego__from_json(A, j, 0);
    json_decref(j);
    return v;
}

/* Index of the first byte that is not base64url, or @p n. */
static size_t bad_b64(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '='))
            return i;
    }
    return n;
}

/* Splits and decodes a compact JWS (following nested JWTs); NULL or OPA's error text. */
static const char *jwt_split(rego_eval_t *ev, const rv_t *tok, jwt_parts_t *out)
{
    static char msg[128];
    const char *s = tok->str, *e = s + tok->len;
    const char *dots[3];
    int nd = 0;
    char *h, *p;
    size_t hn, pn;
    for (const char *x = s; x < e; x++)
        if (*x == '.' && nd < 3)
            dots[nd++] = x;
    if (nd == 0)
        return "encoded JWT had no period separators";
    if (nd != 2) {
        int sections = nd + 1;
        for (const char *x = dots[nd - 1] + 1; x < e; x++)
            sections += *x == '.';
        snprintf(msg, sizeof(msg), "encoded JWT must have 3 sections, found %d", sections);
        return msg;
    }
    const char *d1 = dots[0], *d2 = dots[1];
    if (!rego__b64_decode(A, s, (size_t)(d1 - s), true, &h, &hn)) {
        snprintf(msg, sizeof(msg),
                 "JWT header had invalid encoding: illegal base64 data at input byte %zu",
                 bad_b64(s, (size_t)(d1 - s)));
        return msg;
    }
    if (!rego__b64_decode(A, d1 + 1, (size_t)(d2 - d1 - 1), true, &p, &pn)) {
        snprintf(msg, sizeof(msg),
                 "JWT payload had invalid encoding: illegal base64 data at input byte %zu",
                 bad_b64(d1 + 1, (size_t)(d2 - d1 - 1)));
        return msg;
    }
    if (!rego__b64_decode(A, d2 + 1, (size_t)(e - d2 - 1), true, &out->sig, &out->sig_len)) {
        snprintf(msg, sizeof(msg),
                 "JWT signature had invalid encoding: illegal base64 data at input byte %zu",
                 bad_b64(d2 + 1, (size_t)(e - d2 - 1)));
        return msg;
    }
    out->header = parse_json_bytes(ev, h, hn);
    if (out->header == NULL || out->header->kind != REGO_OBJECT)
        return "JWT header had invalid JSON";
    if (rego__obj_gets(out->header, "enc", 3) != NULL)
        return "JWT is a JWE object, which is not supported";
    const rv_t *cty = rego__obj_gets(out->header, "cty", 3);
    if (cty != NULL && cty->kind == REGO_STRING && strcmp(cty->str, "JWT") == 0) {
        rv_t inner = {.kind = REGO_STRING, .str = p, .len = (uint32_t)pn};
        return jwt_split(ev, &inner, out);
    }
    out->payload = parse_json_bytes(ev, p, pn);
    if (out->payload == NULL)
        return "JWT payload had invalid JSON";
    out->signing = s;
    out->signing_len = (size_t)(d2 - s);
    return NULL;
}

static rv_t *hex_of(rego_eval_t *ev, const char *b, size_t n)
{
    char *o = rego__alloc(A, n * 2 + 1);
    for (size_t i = 0; i < n; i++) {
        o[2 * i] = "0123456789abcdef"[(unsigned char)b[i] >> 4];
        o[2 * i + 1] = "0123456789abcdef"[(unsigned char)b[i] & 15];
    }
    o[2 * n] = '\0';
    return rego__str_own(A, o, 2 * n);
}

static rv_t *bi_decode(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    jwt_parts_t jp;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, "io.jwt.decode", 1, "string", args[0]);
    const char *err = jwt_split(ev, args[0], &jp);
    if (err != NULL)
        return rego__bi_err(ev, "io.jwt.decode: %s", err);
    if (jp.payload->kind != REGO_OBJECT)
        return rego__bi_err(ev, "io.jwt.decode: JWT payload is not an object");
    rv_t *r = rego__arr(A, 3);
    rego__arr_push(A, r, jp.header);
    rego__arr_push(A, r, jp.payload);
    rego__arr_push(A, r, hex_of(ev, jp.sig, jp.sig_len));
    return r;
}

/* ---- keys ---- */

static BIGNUM *b64_bn(rego_eval_t *ev, const rv_t *v)
{
    char *raw;
    size_t rn;
    if (v == NULL || v->kind != REGO_STRING ||
        !rego__b64_decode(A, v->str, v->len, true, &raw, &rn))
        return NULL;
    return BN_bin2bn((const unsigned char *)raw, (int)rn, NULL);
}

static EVP_PKEY *jwk_key(rego_eval_t *ev, const rv_t *jwk)
{
    const rv_t *kty = rego__obj_gets(jwk, "kty", 3);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *a = NULL, *b = NULL;
    unsigned char *pt = NULL;

    if (kty == NULL || kty->kind != REGO_STRING)
        return NULL;
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL)
        goto out;
    if (strcmp(kty->str, "RSA") == 0) {
        a = b64_bn(ev, rego__obj_gets(jwk, "n", 1));
        b = b64_bn(ev, rego__obj_gets(jwk, "e", 1));
        if (a == NULL || b == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, a) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, b))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    } else if (strcmp(kty->str, "EC") == 0) {
        const rv_t *crv = rego__obj_gets(jwk, "crv", 3);
        const char *group = NULL;
        size_t clen;
        char *x, *y;
        size_t xn, yn;
        const rv_t *xv = rego__obj_gets(jwk, "x", 1), *yv = rego__obj_gets(jwk, "y", 1);
        if (crv == NULL || crv->kind != REGO_STRING)
            goto out;
        group = strcmp(crv->str, "P-256") == 0   ? "prime256v1"
                : strcmp(crv->str, "P-384") == 0 ? "secp384r1"
                : strcmp(crv->str, "P-521") == 0 ? "secp521r1"
                                                 : NULL;
        clen = strcmp(crv->str, "P-256") == 0 ? 32 : strcmp(crv->str, "P-384") == 0 ? 48 : 66;
        if (group == NULL || xv == NULL || yv == NULL || xv->kind != REGO_STRING ||
            yv->kind != REGO_STRING || !rego__b64_decode(A, xv->str, xv->len, true, &x, &xn) ||
            !rego__b64_decode(A, yv->str, yv->len, true, &y, &yn) || xn > clen || yn > clen)
            goto out;
        pt = OPENSSL_zalloc(1 + 2 * clen);
        if (pt == NULL)
            goto out;
        pt[0] = 4;
        memcpy(pt + 1 + clen - xn, x, xn);
        memcpy(pt + 1 + 2 * clen - yn, y, yn);
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen))
            goto out;
        ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    } else {
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (ctx == NULL || params == NULL || EVP_PKEY_fromdata_init(ctx) <= 0 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
        pkey = NULL;
out:
    OPENSSL_free(pt);
    BN_free(a);
    BN_free(b);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* Loads the keys in @p k (PEM certificate, PEM public key, JWK or JWKS); at most @p max. */
static int load_keys(rego_eval_t *ev, const rv_t *k, EVP_PKEY **keys, int max)
{
    int nk = 0;
    if (k->len > 0 && (k->str[0] == '{' || k->str[0] == '[')) {
        rv_t *j = parse_json_bytes(ev, k->str, k->len);
        const rv_t *set;
        if (j == NULL || j->kind != REGO_OBJECT)
            return 0;
        set = rego__obj_gets(j, "keys", 4);
        if (set != NULL && set->kind == REGO_ARRAY) {
            for (uint32_t i = 0; i < set->len && nk < max; i++)
                if (set->a[i]->kind == REGO_OBJECT && (keys[nk] = jwk_key(ev, set->a[i])) != NULL)
                    nk++;
        } else if ((keys[0] = jwk_key(ev, j)) != NULL) {
            nk = 1;
        }
        return nk;
    }
    BIO *bio = BIO_new_mem_buf(k->str, (int)k->len);
    if (bio == NULL)
        return 0;
    X509 *cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    if (cert != NULL) {
        keys[0] = X509_get_pubkey(cert);
        X509_free(cert);
        nk = keys[0] != NULL;
    } else {
        (void)BIO_reset(bio);
        keys[0] = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
        nk = keys[0] != NULL;
    }
    BIO_free(bio);
    return nk;
}

/* ---- signatures ---- */

static const EVP_MD *alg_md(const char *alg)
{
    size_t n = strlen(alg);
    if (n != 5)
        return NULL;
    if (strcmp(alg + 2, "256") == 0)
        return EVP_sha256();
    if (strcmp(alg + 2, "384") == 0)
        return EVP_sha384();
    if (strcmp(alg + 2, "512") == 0)
        return EVP_sha512();
    return NULL;
}

static bool verify_with(EVP_PKEY *key, const char *alg, const jwt_parts_t *jp)
{
    const EVP_MD *md = alg_md(alg);
    EVP_MD_CTX *mctx = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    const unsigned char *sig = (const unsigned char *)jp->sig;
    size_t sig_len = jp->sig_len;
    bool ok = false;
    if (md == NULL)
        return false;
    if (alg[0] == 'E') {
        /* raw r||s → DER */
        if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC || sig_len % 2 != 0)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, (int)(sig_len / 2), NULL);
        BIGNUM *s = BN_bin2bn(sig + sig_len / 2, (int)(sig_len / 2), NULL);
        int dl;
        if (es == NULL || r == NULL || s == NULL || !ECDSA_SIG_set0(es, r, s)) {
            BN_free(r);
            BN_free(s);
            ECDSA_SIG_free(es);
            return false;
        }
        dl = i2d_ECDSA_SIG(es, &der);
        ECDSA_SIG_free(es);
        if (dl <= 0)
            return false;
        sig = der;
        sig_len = (size_t)dl;
    } else if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
        return false;
    }
    mctx = EVP_MD_CTX_new();
    if (mctx != NULL && EVP_DigestVerifyInit(mctx, &pctx, md, NULL, key) > 0) {
        bool setup = true;
        if (alg[0] == 'P')
            setup = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) > 0 &&
                    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) > 0;
        ok = setup && EVP_DigestVerify(mctx, sig, sig_len, (const unsigned char *)jp->signing,
                                       jp->signing_len) == 1;
    }
    EVP_MD_CTX_free(mctx);
    OPENSSL_free(der);
    return ok;
}

static bool verify_hmac(const char *alg, const rv_t *secret, const jwt_parts_t *jp)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;
    const EVP_MD *md = alg_md(alg);
    if (md == NULL || HMAC(md, secret->str, (int)secret->len, (const unsigned char *)jp->signing,
                           jp->signing_len, mac, &ml) == NULL)
        return false;
    return ml == jp->sig_len && CRYPTO_memcmp(mac, jp->sig, ml) == 0;
}

static bool verify_asym(rego_eval_t *ev, const char *alg, const rv_t *keytext,
                        const jwt_parts_t *jp)
{
    EVP_PKEY *keys[16];
    int nk = load_keys(ev, keytext, keys, 16);
    bool ok = false;
    for (int i = 0; i < nk; i++) {
        if (!ok)
            ok = verify_with(keys[i], alg, jp);
        EVP_PKEY_free(keys[i]);
    }
    return ok;
}

static rv_t *verify_fn(rego_eval_t *ev, rv_t **args, const char *name, const char *alg)
{
    jwt_parts_t jp;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, name, 1, "string", args[0]);
    if (args[1]->kind != REGO_STRING)
        rego__type_err(ev, name, 2, "string", args[1]);
    const char *err = jwt_split(ev, args[0], &jp);
    if (err != NULL)
        return rego__bi_err(ev, "%s: %s", name, err);
    if (alg[0] == 'H')
        return verify_hmac(alg, args[1], &jp) ? &rego__true : &rego__false;
    EVP_PKEY *probe[16];
    int nk = load_keys(ev, args[1], probe, 16);
    for (int i = 0; i < nk; i++)
        EVP_PKEY_free(probe[i]);
    if (nk == 0)
        return rego__bi_err(ev, "%s: failed to extract a Key from the PEM certificate", name);
    return verify_asym(ev, alg, args[1], &jp) ? &rego__true : &rego__false;
}

#define VERIFY(fname, lower, alg)                                                                  \
    static rv_t *fname(rego_eval_t *ev, rv_t **args, uint32_t n)                                   \
    {                                                                                              \
        (void)n;                                                                                   \
        return verify_fn(ev, args, "io.jwt.verify_" #lower, #alg);                                 \
    }
VERIFY(bi_rs256, rs256, RS256)
VERIFY(bi_rs384, rs384, RS384)
VERIFY(bi_rs512, rs512, RS512)
VERIFY(bi_ps256, ps256, PS256)
VERIFY(bi_ps384, ps384, PS384)
VERIFY(bi_ps512, ps512, PS512)
VERIFY(bi_es256, es256, ES256)
VERIFY(bi_es384, es384, ES384)
VERIFY(bi_es512, es512, ES512)
VERIFY(bi_hs256, hs256, HS256)
VERIFY(bi_hs384, hs384, HS384)
VERIFY(bi_hs512, hs512, HS512)

static rv_t *dv_false(rego_eval_t *ev)
{
    rv_t *r = rego__arr(A, 3);
    rego__arr_push(A, r, &rego__false);
    rego__arr_push(A, r, rego__obj(A, 0));
    rego__arr_push(A, r, rego__obj(A, 0));
    return r;
}

static bool num_claim(const rv_t *payload, const char *name, double *out)
{
    const rv_t *v = rego__obj_gets(payload, name, strlen(name));
    if (v == NULL || v->kind != REGO_NUMBER)
        return false;
    *out = v->num;
    return true;
}

static rv_t *bi_decode_verify(rego_eval_t *ev, rv_t **args, uint32_t n)
{
    jwt_parts_t jp;
    const rv_t *c = args[1], *cert, *secret, *want_alg, *iss, *aud, *tv;
    const rv_t *alg;
    double now, exp, nbf;
    (void)n;
    if (args[0]->kind != REGO_STRING)
        rego__type_err(ev, "io.jwt.decode_verify", 1, "string", args[0]);
    if (c->kind != REGO_OBJECT)
        rego__type_err(ev, "io.jwt.decode_verify", 2, "object", c);
    for (uint32_t i = 0; i < c->len; i++) {
        static const char *const known[] = {"cert", "secret", "alg", "iss", "aud", "time", NULL};
        bool ok = false;
        for (int k = 0; known[k] != NULL; k++)
            if (c->a[i]->kind == REGO_STRING && strcmp(c->a[i]->str, known[k]) == 0)
                ok = true;
        if (!ok)
            return rego__bi_err(ev, "io.jwt.decode_verify: unknown token validation constraint");
    }
    if (jwt_split(ev, args[0], &jp) != NULL || jp.payload->kind != REGO_OBJECT)
        return dv_false(ev);
    cert = rego__obj_gets(c, "cert", 4);
    secret = rego__obj_gets(c, "secret", 6);
    want_alg = rego__obj_gets(c, "alg", 3);
    iss = rego__obj_gets(c, "iss", 3);
    aud = rego__obj_gets(c, "aud", 3);
    tv = rego__obj_gets(c, "time", 4);
    alg = rego__obj_gets(jp.header, "alg", 3);
    if (alg == NULL || alg->kind != REGO_STRING)
        return dv_false(ev);
    if (want_alg != NULL && !rego__eq(want_alg, alg))
        return dv_false(ev);
    if (alg->str[0] == 'H') {
        if (secret == NULL || secret->kind != REGO_STRING || !verify_hmac(alg->str, secret, &jp))
            return dv_false(ev);
    } else {
        if (cert == NULL || cert->kind != REGO_STRING || !verify_asym(ev, alg->str, cert, &jp))
            return dv_false(ev);
    }
    now = tv != NULL && tv->kind == REGO_NUMBER ? tv->num : (double)ev->now_ns;
    if (num_claim(jp.payload, "exp", &exp) && now >= exp * 1e9)
        return dv_false(ev);
    if (num_claim(jp.payload, "nbf", &nbf) && now < nbf * 1e9)
        return dv_false(ev);
    if (iss != NULL) {
        const rv_t *pi = rego__obj_gets(jp.payload, "iss", 3);
        if (pi == NULL || !rego__eq(pi, iss))
            return dv_false(ev);
    }
    {
        const rv_t *pa = rego__obj_gets(jp.payload, "aud", 3);
        if (pa != NULL) {
            bool found = false;
            if (aud == NULL)
                return dv_false(ev);
            if (pa->kind == REGO_ARRAY) {
                for (uint32_t i = 0; i < pa->len; i++)
                    found = found || rego__eq(pa->a[i], aud);
            } else {
                found = rego__eq(pa, aud);
            }
            if (!found)
                return dv_false(ev);
        } else if (aud != NULL) {
            return dv_false(ev);
        }
    }
    rv_t *r = rego__arr(A, 3);
    rego__arr_push(A, r, &rego__true);
    rego__arr_push(A, r, jp.header);
    rego__arr_push(A, r, jp.payload);
    return r;
}

const rego__builtin_t rego__bi_jwt[] = {
    {"io.jwt.decode", 1, bi_decode},
    {"io.jwt.decode_verify", 2, bi_decode_verify},
    {"io.jwt.verify_rs256", 2, bi_rs256},
    {"io.jwt.verify_rs384", 2, bi_rs384},
    {"io.jwt.verify_rs512", 2, bi_rs512},
    {"io.jwt.verify_ps256", 2, bi_ps256},
    {"io.jwt.verify_ps384", 2, bi_ps384},
    {"io.jwt.verify_ps512", 2, bi_ps512},
    {"io.jwt.verify_es256", 2, bi_es256},
    {"io.jwt.verify_es384", 2, bi_es384},
    {"io.jwt.verify_es512", 2, bi_es512},
    {"io.jwt.verify_hs256", 2, bi_hs256},
    {"io.jwt.verify_hs384", 2, bi_hs384},
    {"io.jwt.verify_hs512", 2, bi_hs512},
    {NULL, 0, NULL},
};
