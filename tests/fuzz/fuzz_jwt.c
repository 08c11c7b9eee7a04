/*
 * fuzz_jwt — pol_jwt_verify on arbitrary tokens against a fixed JWKS (RSA 2048, EC P-256, EC P-384,
 * Ed25519 test keys, built once from the private keys below).
 *
 * The first input byte chooses what is fuzzed:
 * - 0x01: the claims. The rest is the claims text, signed here with the Ed25519 key under a fixed
 *   header; the verdict must equal an independent check of the claims (object without duplicate
 *   members, numeric exp required and now < exp + skew, nbf/iat <= now + skew, exact iss, aud
 *   string or array containing the audience), and info.sub/info.exp must match.
 * - 0x02: the JOSE header. The rest is the header text, signed here with the Ed25519 key over
 *   valid claims; valid exactly when the header is an object without duplicates or crit, with alg
 *   "EdDSA" and no kid or kid "ed"; a kid outside the set must give ERR_POLICY_UNKNOWN_KID.
 * - anything else: the whole input is the token. A 0 must survive an independent re-verification
 *   (signature checked here with OpenSSL against the harness' own keys, then the claims check).
 * Always: no crash, only ERR_POLICY_TOKEN / ERR_POLICY_UNKNOWN_KID as errors with a detail, and
 * all memory taken through base/alloc given back.
 */
#include <jansson.h>
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/policy/josetest.h"
#include "base/alloc.h"
#include "base/b64.h"
#include "jose_keys.h"
#include "policy/jose.h"
#include "fuzz.h"

#define NOW INT64_C(1700000000)
#define SKEW 60
#define ISS "https://issuer.example"
#define AUD "mcp-api"

static const struct {
    const char *pem, *kid, *alg;
} KEYS[] = {
    {FZ_PEM_RSA, "rsa", NULL},
    {FZ_PEM_EC256, "ec256", "ES256"},
    {FZ_PEM_EC384, "ec384", NULL},
    {FZ_PEM_ED25519, "ed", "EdDSA"},
};
#define NKEYS 4

static EVP_PKEY *keys[NKEYS];
static pol_jwks_t *set;

static void init(void)
{
    buf_t b;
    err_detail_t d = {{0}};

    buf_init(&b, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    for (size_t i = 0; i < NKEYS; i++) {
        BIO *bio = BIO_new_mem_buf(KEYS[i].pem, -1);
        keys[i] = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
        BIO_free(bio);
        CHECK(keys[i] != NULL);
        if (i > 0)
            jt_put(&b, ",");
        jt_jwk(&b, keys[i], KEYS[i].kid, KEYS[i].alg, "sig", NULL);
    }
    jt_put(&b, "]}");
    CHECK(pol_jwks_parse(b.ptr, b.len, &set, &d) == 0 && pol_jwks_count(set) == NKEYS);
    buf_free(&b);
}

/* --- the independent checks ------------------------------------------------------------------ */

static bool time_of(json_t *c, const char *name, int64_t *v, bool *present, bool *bad)
{
    json_t *x = json_object_get(c, name);
    *present = x != NULL;
    if (x == NULL)
        return true;
    if (json_is_integer(x)) {
        *v = json_integer_value(x);
    } else if (json_is_real(x)) {
        double r = json_real_value(x);
        *v = r >= 9.2e18 ? INT64_MAX : r <= -9.2e18 ? INT64_MIN : (int64_t)r;
    } else {
        *bad = true;
        return false;
    }
    return true;
}

/* Are these claims acceptable (NOW, SKEW, ISS, AUD)? Fills exp and sub when they are. */
static bool claims_ok(const char *p, size_t n, int64_t *exp_out, char *sub)
{
    json_t *c = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL), *aud, *iss, *s;
    int64_t exp = 0, nbf = 0, iat = 0;
    bool has_exp, has_nbf, has_iat, bad = false, ok = false;

    if (!json_is_object(c))
        goto out;
    time_of(c, "exp", &exp, &has_exp, &bad);
    time_of(c, "nbf", &nbf, &has_nbf, &bad);
    time_of(c, "iat", &iat, &has_iat, &bad);
    if (bad || !has_exp)
        goto out;
    /* now < exp + skew, nbf <= now + skew, iat <= now + skew, in 128-bit arithmetic. */
    if (!((__int128)NOW < (__int128)exp + SKEW) || (has_nbf && (__int128)nbf > NOW + SKEW) ||
        (has_iat && (__int128)iat > NOW + SKEW))
        goto out;
    iss = json_object_get(c, "iss");
    if (!json_is_string(iss) || strcmp(json_string_value(iss), ISS) != 0)
        goto out;
    aud = json_object_get(c, "aud");
    if (json_is_string(aud)) {
        ok = strcmp(json_string_value(aud), AUD) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        json_t *a;
        json_array_foreach(aud, i, a) ok =
            ok || (json_is_string(a) && strcmp(json_string_value(a), AUD) == 0);
    }
    if (ok) {
        s = json_object_get(c, "sub");
        *exp_out = exp;
        sub[0] = '\0';
        if (json_is_string(s)) {
            size_t l = json_string_length(s) < 255 ? json_string_length(s) : 255;
            memcpy(sub, json_string_value(s), l);
            sub[l] = '\0';
        }
    }
out:
    json_decref(c);
    return ok;
}

static int key_type(const char *alg)
{
    if (alg[0] == 'R' || alg[0] == 'P')
        return 0;
    if (strcmp(alg, "ES256") == 0)
        return 1;
    if (strcmp(alg, "ES384") == 0)
        return 2;
    return 3;
}

/* Verifies signature @p sig over @p in with key @p k as @p alg, with OpenSSL directly. */
static bool sig_verifies(EVP_PKEY *k, const char *alg, const char *in, size_t n,
                         const unsigned char *sig, size_t sl)
{
    EVP_MD_CTX *mc = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    unsigned char der[256];
    bool ok = false;

    CHECK(mc != NULL);
    if (alg[0] == 'E' && alg[1] == 'S') {
        size_t half = strcmp(alg, "ES256") == 0 ? 32 : 48;
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char *p = der;
        int dl;
        if (sl != 2 * half)
            goto out;
        CHECK(es != NULL && ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)half, NULL),
                                           BN_bin2bn(sig + half, (int)half, NULL)) == 1);
        dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        CHECK(dl > 0);
        sig = der;
        sl = (size_t)dl;
    }
    if (EVP_DigestVerifyInit_ex(mc, &pc, jt_md(alg), NULL, NULL, k, NULL) != 1)
        goto out;
    if (alg[0] == 'R' || alg[0] == 'P') {
        if (EVP_PKEY_CTX_set_rsa_padding(pc, alg[0] == 'P' ? RSA_PKCS1_PSS_PADDING
                                                           : RSA_PKCS1_PADDING) != 1 ||
            (alg[0] == 'P' && EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, RSA_PSS_SALTLEN_DIGEST) != 1))
            goto out;
    }
    ok = EVP_DigestVerify(mc, sig, sl, (const unsigned char *)in, n) == 1;
out:
    EVP_MD_CTX_free(mc);
    ERR_clear_error();
    return ok;
}

static const char *const ALGS[] = {"RS256", "RS384", "RS512", "PS256", "PS384",
                                   "PS512", "ES256", "ES384", "EdDSA"};

/* An independent verification of an accepted compact token. */
static void reverify(const char *t, size_t n, const pol_jwt_info_t *info)
{
    const char *d1 = memchr(t, '.', n), *d2, *alg = NULL;
    static unsigned char seg[POL_JWT_MAX], sig[1024];
    static char sub[256];
    size_t sl, cl;
    json_t *h, *a, *kid;
    bool verified = false;
    int64_t exp = 0;

    CHECK(n <= POL_JWT_MAX && d1 != NULL);
    d2 = memchr(d1 + 1, '.', n - (size_t)(d1 + 1 - t));
    CHECK(d2 != NULL && memchr(d2 + 1, '.', n - (size_t)(d2 + 1 - t)) == NULL);
    CHECK(b64url_decode(t, (size_t)(d1 - t), seg, sizeof(seg), &sl) == 0);
    h = json_loadb((const char *)seg, sl, JSON_REJECT_DUPLICATES, NULL);
    CHECK(json_is_object(h) && json_object_get(h, "crit") == NULL);
    a = json_object_get(h, "alg");
    kid = json_object_get(h, "kid");
    CHECK(json_is_string(a) && (kid == NULL || json_is_string(kid)));
    for (size_t i = 0; i < sizeof(ALGS) / sizeof(ALGS[0]); i++)
        if (strcmp(json_string_value(a), ALGS[i]) == 0)
            alg = ALGS[i];
    CHECK(alg != NULL);
    CHECK(b64url_decode(d2 + 1, n - (size_t)(d2 + 1 - t), sig, sizeof(sig), &sl) == 0);
    for (size_t i = 0; i < NKEYS && !verified; i++) {
        if (kid != NULL && strcmp(json_string_value(kid), KEYS[i].kid) != 0)
            continue;
        if ((int)i != key_type(alg) || (KEYS[i].alg != NULL && strcmp(KEYS[i].alg, alg) != 0))
            continue;
        verified = sig_verifies(keys[i], alg, t, (size_t)(d2 - t), sig, sl);
    }
    json_decref(h);
    CHECK(verified);
    CHECK(b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), seg, sizeof(seg), &cl) == 0);
    CHECK(claims_ok((const char *)seg, cl, &exp, sub));
    CHECK(info->exp == exp && strcmp(info->sub, sub) == 0);
}

/* Is this header one the fixed Ed25519 signature must pass with? 1 yes, 0 no, -1 unknown kid. */
static int header_ok(const char *p, size_t n)
{
    json_t *h = json_loadb(p, n, JSON_REJECT_DUPLICATES, NULL), *a, *kid;
    bool alg_known = false, kid_known = false;
    int r = 0;

    if (!json_is_object(h) || json_object_get(h, "crit") != NULL)
        goto out;
    a = json_object_get(h, "alg");
    kid = json_object_get(h, "kid");
    for (size_t i = 0; json_is_string(a) && i < sizeof(ALGS) / sizeof(ALGS[0]); i++)
        alg_known = alg_known || strcmp(json_string_value(a), ALGS[i]) == 0;
    if (!alg_known || (kid != NULL && !json_is_string(kid)))
        goto out;
    for (size_t i = 0; kid != NULL && i < NKEYS; i++)
        kid_known = kid_known || strcmp(json_string_value(kid), KEYS[i].kid) == 0;
    if (kid != NULL && !kid_known)
        r = -1;
    else if (strcmp(json_string_value(a), "EdDSA") == 0 &&
             (kid == NULL || strcmp(json_string_value(kid), "ed") == 0))
        r = 1;
out:
    json_decref(h);
    return r;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static buf_t t;
    static char sub[256];
    pol_jwt_expect_t e = {.issuer = ISS, .audience = AUD, .now = NOW, .skew = SKEW};
    pol_jwt_info_t info;
    err_detail_t d = {{0}};
    size_t before;
    int rc, want;
    int64_t exp = 0;

    if (set == NULL) {
        init();
        buf_init(&t, JT_MAX);
    }
    memset(&info, 0xa5, sizeof(info));
    if (size > 0 && (data[0] == 1 || data[0] == 2) && size < POL_JWT_MAX) {
        static const char fixed_claims[] =
            "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"s\",\"exp\":1700000600}";
        static const char fixed_hdr[] = "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}";
        const char *hdr = data[0] == 1 ? fixed_hdr : (const char *)data + 1;
        size_t hl = data[0] == 1 ? sizeof(fixed_hdr) - 1 : size - 1;
        const char *cl = data[0] == 1 ? (const char *)data + 1 : fixed_claims;
        size_t cll = data[0] == 1 ? size - 1 : sizeof(fixed_claims) - 1;
        unsigned char sig[64];
        size_t sl;

        buf_reset(&t);
        jt_b64(&t, hdr, hl);
        jt_put(&t, ".");
        jt_b64(&t, cl, cll);
        sl = jt_sign(keys[3], "EdDSA", t.ptr, t.len, sig, sizeof(sig));
        jt_put(&t, ".");
        jt_b64(&t, sig, sl);
        before = mem_used();
        rc = pol_jwt_verify(set, t.ptr, t.len, &e, &info, &d);
        if (t.len > POL_JWT_MAX) {
            CHECK(rc == ERR_POLICY_TOKEN);
        } else if (data[0] == 1) {
            want = claims_ok(cl, cll, &exp, sub);
            CHECK((rc == 0) == want);
            if (rc == 0)
                CHECK(info.exp == exp && strcmp(info.sub, sub) == 0);
        } else {
            want = header_ok(hdr, hl);
            CHECK((rc == 0) == (want == 1));
            if (want == -1)
                CHECK(rc == ERR_POLICY_UNKNOWN_KID);
            if (want == 0)
                CHECK(rc == ERR_POLICY_TOKEN);
        }
    } else {
        before = mem_used();
        rc = pol_jwt_verify(set, (const char *)data, size, &e, &info, &d);
        if (rc == 0)
            reverify((const char *)data, size, &info);
    }
    CHECK(rc == 0 || rc == ERR_POLICY_TOKEN || rc == ERR_POLICY_UNKNOWN_KID);
    CHECK(rc == 0 || d.msg[0] != '\0');
    CHECK(mem_used() == before); /* jose allocates through base/alloc only for sets */
    return 0;
}
