/*
 * jose: JWKS parsing and JWT verification against keys and tokens made here with OpenSSL (RSA
 * 2048, EC P-256/P-384, Ed25519; every accepted algorithm), and the refusals the contract in
 * policy/jose.h promises: alg none, HMAC with a public key as secret, alg/kty and key alg/use
 * mismatches, crit, keys carried by the token, time claims at their exact boundaries, iss/aud,
 * duplicate members, strict base64url, malformed structure, size limits, weak RSA keys.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "base/alloc.h"
#include "base/err.h"
#include "josetest.h"
#include "policy/jose.h"
#include "test.h"

#define NOW INT64_C(1700000000)
#define ISS "https://issuer.example"
#define AUD "mcp-api"

/* Keys made once for the whole file (RSA generation is slow under ASan). */
static struct {
    EVP_PKEY *rsa, *rsa2, *ec256, *ec384, *ed, *evil_rsa, *evil_ec, *rsa1024;
} K;

static void keys(void)
{
    if (K.rsa != NULL)
        return;
    K.rsa = jt_rsa(2048);
    K.rsa2 = jt_rsa(2048);
    K.evil_rsa = jt_rsa(2048);
    K.rsa1024 = jt_rsa(1024);
    K.ec256 = jt_ec("P-256");
    K.ec384 = jt_ec("P-384");
    K.evil_ec = jt_ec("P-256");
    K.ed = jt_ed25519();
}

/* The standard set: one key of each type, with kids and use "sig", no alg. */
static pol_jwks_t *std_set(void)
{
    buf_t b;
    pol_jwks_t *ks = NULL;
    err_detail_t d = {{0}};

    keys();
    buf_init(&b, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, "rsa", NULL, "sig", NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ec256, "ec256", NULL, "sig", NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ec384, "ec384", NULL, NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ed, "ed", NULL, "sig", NULL);
    jt_put(&b, "]}");
    if (pol_jwks_parse(b.ptr, b.len, &ks, &d) != 0) {
        fprintf(stderr, "std_set: %s\n", d.msg);
        abort();
    }
    buf_free(&b);
    return ks;
}

static int parse(const char *json, pol_jwks_t **ks)
{
    err_detail_t d = {{0}};
    return pol_jwks_parse(json, strlen(json), ks, &d);
}

static int verify_e(const pol_jwks_t *ks, const buf_t *t, int64_t now, int64_t skew,
                    pol_jwt_info_t *info)
{
    pol_jwt_expect_t e = {.issuer = ISS, .audience = AUD, .now = now, .skew = skew};
    err_detail_t d = {{0}};
    int rc = pol_jwt_verify(ks, t->ptr, t->len, &e, info, &d);
    /* The detail never repeats the token or its claims. */
    if (rc < 0 && (d.msg[0] == '\0' || strstr(d.msg, "alice") != NULL ||
                   (t->len > 12 && strstr(d.msg, t->ptr + t->len - 12) != NULL)))
        return 1;
    return rc;
}

static int verify(const pol_jwks_t *ks, const buf_t *t)
{
    return verify_e(ks, t, NOW, 0, NULL);
}

/* A token signed by @p k as @p alg with header {"alg":hdr_alg[,"kid":kid]} and @p claims. */
static void tok(buf_t *b, EVP_PKEY *k, const char *alg, const char *hdr_alg, const char *kid,
                const char *claims)
{
    char hdr[512];
    if (kid != NULL)
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\",\"kid\":\"%s\"}", hdr_alg, kid);
    else
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"typ\":\"JWT\"}", hdr_alg);
    buf_reset(b);
    jt_token(b, k, alg, hdr, claims);
}

static const char *good_claims(void)
{
    return "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\",\"exp\":1700000600,"
           "\"iat\":1699999990}";
}

/* A token of good_claims() signed by @p k as @p alg under the JSON header @p hdr, verified
 * against @p ks: the code it gives. */
static int verify_hdr(const pol_jwks_t *ks, buf_t *t, EVP_PKEY *k, const char *alg, const char *hdr)
{
    buf_reset(t);
    jt_token(t, k, alg, hdr, good_claims());
    return verify(ks, t);
}

/* tok() with good_claims() into @p t, then verify() against @p ks: the code it gives. */
static int verify_good(const pol_jwks_t *ks, buf_t *t, EVP_PKEY *k, const char *alg,
                       const char *hdr_alg, const char *kid)
{
    tok(t, k, alg, hdr_alg, kid, good_claims());
    return verify(ks, t);
}

/* Claims with exp/nbf/iat as given (INT64_MIN = leave out). */
static const char *times(char *out, size_t n, int64_t exp, int64_t nbf, int64_t iat)
{
    int w = snprintf(out, n, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"alice\"");
    if (exp != INT64_MIN)
        w += snprintf(out + w, n - (size_t)w, ",\"exp\":%lld", (long long)exp);
    if (nbf != INT64_MIN)
        w += snprintf(out + w, n - (size_t)w, ",\"nbf\":%lld", (long long)nbf);
    if (iat != INT64_MIN)
        w += snprintf(out + w, n - (size_t)w, ",\"iat\":%lld", (long long)iat);
    snprintf(out + w, n - (size_t)w, "}");
    return out;
}

/* --- every algorithm ------------------------------------------------------------------------ */

TEST(every_algorithm_verifies_with_its_key)
{
    static const struct {
        const char *alg, *kid;
        int which;
    } cases[] = {
        {"RS256", "rsa", 0},   {"RS384", "rsa", 0},   {"RS512", "rsa", 0},
        {"PS256", "rsa", 0},   {"PS384", "rsa", 0},   {"PS512", "rsa", 0},
        {"ES256", "ec256", 1}, {"ES384", "ec384", 2}, {"EdDSA", "ed", 3},
    };
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    ASSERT_EQ(pol_jwks_count(ks), 4);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        EVP_PKEY *k = cases[i].which == 0   ? K.rsa
                      : cases[i].which == 1 ? K.ec256
                      : cases[i].which == 2 ? K.ec384
                                            : K.ed;
        pol_jwt_info_t info;
        memset(&info, 0xa5, sizeof(info));
        fprintf(stderr, "  %s\n", cases[i].alg);
        tok(&t, k, cases[i].alg, cases[i].alg, cases[i].kid, good_claims());
        ASSERT_EQ(verify_e(ks, &t, NOW, 0, &info), 0);
        ASSERT_EQ(info.exp, 1700000600);
        ASSERT_STREQ(info.sub, "alice");
        /* Without a kid: every key of the type is tried. */
        ASSERT_EQ(verify_good(ks, &t, k, cases[i].alg, cases[i].alg, NULL), 0);
        /* One changed character of the claims breaks the signature. */
        tok(&t, k, cases[i].alg, cases[i].alg, cases[i].kid, good_claims());
        {
            char *dot = memchr(t.ptr, '.', t.len);
            dot[3] = dot[3] == 'A' ? 'B' : 'A';
        }
        ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
        /* Nor does the same key verify with another hash (RS256 signed, RS384 claimed). */
        if (cases[i].which == 0) {
            ASSERT_EQ(verify_good(ks, &t, k, cases[i].alg,
                                  strcmp(cases[i].alg, "RS256") == 0 ? "RS384" : "RS256",
                                  cases[i].kid),
                      ERR_POLICY_TOKEN);
        }
    }
    buf_free(&t);
    pol_jwks_unref(ks);
}

TEST(kid_selects_the_key)
{
    buf_t b, t;
    pol_jwks_t *ks = NULL;

    keys();
    buf_init(&b, JT_MAX);
    buf_init(&t, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, "a", NULL, NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.rsa2, "b", NULL, NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ec256, "c", NULL, NULL, NULL);
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(pol_jwks_count(ks), 3);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", "a"), 0);
    ASSERT_EQ(verify_good(ks, &t, K.rsa2, "RS256", "RS256", "b"), 0);
    /* Signed by a, labelled b: b's key alone is tried. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", "b"), ERR_POLICY_TOKEN);
    /* Without a kid both RSA keys are tried, in either order. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa2, "PS512", "PS512", NULL), 0);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "PS512", "PS512", NULL), 0);
    /* A key outside the set: refused with or without kid. */
    ASSERT_EQ(verify_good(ks, &t, K.evil_rsa, "RS256", "RS256", NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.evil_rsa, "RS256", "RS256", "a"), ERR_POLICY_TOKEN);
    /* An unknown kid is its own error (the caller may refresh the set). */
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", "zzz"), ERR_POLICY_UNKNOWN_KID);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", ""), ERR_POLICY_UNKNOWN_KID);
    /* No key of the type without kid: a plain refusal, not unknown kid. */
    ASSERT_EQ(verify_good(ks, &t, K.ec384, "ES384", "ES384", NULL), ERR_POLICY_TOKEN);
    /* A kid that is not a string. */
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":1}"),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":null}"),
              ERR_POLICY_TOKEN);
    pol_jwks_unref(ks);
    buf_free(&b);
    buf_free(&t);
}

TEST(jwks_ref_counting)
{
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    ASSERT(pol_jwks_ref(ks) == ks);
    pol_jwks_unref(ks);
    ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "ed"), 0);
    pol_jwks_unref(ks);
    pol_jwks_unref(NULL);
    ASSERT(pol_jwks_ref(NULL) == NULL);
    ASSERT_EQ(pol_jwks_count(NULL), 0);
    buf_free(&t);
}

/* --- algorithm confusion -------------------------------------------------------------------- */

static void hmac_token(buf_t *t, const char *alg, const char *md, const void *key, size_t kl,
                       const char *kid)
{
    char hdr[128];
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int ml = 0;

    snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"%s\"}", alg, kid);
    buf_reset(t);
    jt_b64(t, hdr, strlen(hdr));
    jt_put(t, ".");
    jt_b64(t, good_claims(), strlen(good_claims()));
    if (HMAC(EVP_get_digestbyname(md), key, (int)kl, (const unsigned char *)t->ptr, t->len, mac,
             &ml) == NULL)
        jt_die("HMAC");
    jt_put(t, ".");
    jt_b64(t, mac, ml);
}

TEST(alg_none_and_hmac_refused)
{
    static const char *const nones[] = {"none", "None", "NONE", "nOnE", ""};
    pol_jwks_t *ks = std_set();
    buf_t t, pem, jwk;
    unsigned char der[1024], n[512], *p = der;
    int dl;
    size_t nl;
    BIO *bio = BIO_new(BIO_s_mem());
    char *pp;
    long pl;

    buf_init(&t, JT_MAX);
    buf_init(&pem, JT_MAX);
    buf_init(&jwk, JT_MAX);
    for (size_t i = 0; i < sizeof(nones) / sizeof(nones[0]); i++) {
        char hdr[64];
        snprintf(hdr, sizeof(hdr), "{\"alg\":\"%s\",\"kid\":\"rsa\"}", nones[i]);
        buf_reset(&t);
        jt_b64(&t, hdr, strlen(hdr));
        jt_put(&t, ".");
        jt_b64(&t, good_claims(), strlen(good_claims()));
        jt_put(&t, ".");
        ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN); /* empty signature */
        jt_put(&t, "c2lnbmF0dXJl");
        ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    }
    /* HS* with the RSA public key as the secret, in every form a confused verifier might use. */
    ASSERT(bio != NULL && PEM_write_bio_PUBKEY(bio, K.rsa) == 1);
    pl = BIO_get_mem_data(bio, &pp);
    ASSERT(pl > 0 && buf_append(&pem, pp, (size_t)pl) == 0);
    BIO_free(bio);
    dl = i2d_PUBKEY(K.rsa, &p);
    ASSERT(dl > 0);
    nl = jt_rsa_n(K.rsa, n, sizeof(n));
    jt_jwk(&jwk, K.rsa, "rsa", NULL, "sig", NULL);
    {
        static const char *const hs[][2] = {
            {"HS256", "SHA256"}, {"HS384", "SHA384"}, {"HS512", "SHA512"}};
        for (size_t i = 0; i < 3; i++) {
            hmac_token(&t, hs[i][0], hs[i][1], pem.ptr, pem.len, "rsa");
            ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
            hmac_token(&t, hs[i][0], hs[i][1], der, (size_t)dl, "rsa");
            ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
            hmac_token(&t, hs[i][0], hs[i][1], n, nl, "rsa");
            ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
            hmac_token(&t, hs[i][0], hs[i][1], jwk.ptr, jwk.len, "rsa");
            ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
        }
    }
    /* Unknown, misspelt and non-string algorithms. */
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"alg\":\"rs256\",\"kid\":\"rsa\"}"),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"alg\":\"RS256 \",\"kid\":\"rsa\"}"),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"alg\":[\"RS256\"],\"kid\":\"rsa\"}"),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", "{\"kid\":\"rsa\"}"), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.ed, "EdDSA", "{\"alg\":\"Ed25519\",\"kid\":\"ed\"}"),
              ERR_POLICY_TOKEN);
    buf_free(&t);
    buf_free(&pem);
    buf_free(&jwk);
    pol_jwks_unref(ks);
}

TEST(alg_must_fit_the_key_type)
{
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    /* A kid that names a key of another type is a refusal, not an unknown kid (which would make
     * the bearer middleware fetch the set again). */
    /* RS256 header naming the EC key (signed by the EC key: the signature is real ECDSA). */
    ASSERT_EQ(verify_good(ks, &t, K.ec256, "ES256", "RS256", "ec256"), ERR_POLICY_TOKEN);
    /* ES256 naming the P-384 key, signed by it; and ES384 naming the P-256 key. */
    ASSERT_EQ(verify_good(ks, &t, K.ec384, "ES384", "ES256", "ec384"), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.ec256, "ES256", "ES384", "ec256"), ERR_POLICY_TOKEN);
    /* Without kid the same: the keys of the named type are tried, and they don't fit. */
    ASSERT_EQ(verify_good(ks, &t, K.ec384, "ES384", "ES256", NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "ES256", NULL), ERR_POLICY_TOKEN);
    /* EdDSA header naming the RSA key; PS256 naming the Ed25519 key. */
    ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "rsa"), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "PS256", "PS256", "ed"), ERR_POLICY_TOKEN);
    buf_free(&t);
    pol_jwks_unref(ks);
}

TEST(key_alg_and_use_are_honoured)
{
    buf_t b, t;
    pol_jwks_t *ks = NULL;

    keys();
    buf_init(&b, JT_MAX);
    buf_init(&t, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, "rs", "RS256", "sig", NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.rsa2, "enc", NULL, "enc", NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ec256, "odd-use", NULL, NULL, "\"use\":1");
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(pol_jwks_count(ks), 1);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", "rs"), 0);
    /* The key says RS256: PS256 and RS512 by the same key are refused. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "PS256", "PS256", "rs"), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS512", "RS512", NULL), ERR_POLICY_TOKEN);
    /* Encryption keys are not in the set. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa2, "RS256", "RS256", "enc"), ERR_POLICY_UNKNOWN_KID);
    ASSERT_EQ(verify_good(ks, &t, K.rsa2, "RS256", "RS256", NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.ec256, "ES256", "ES256", "odd-use"), ERR_POLICY_UNKNOWN_KID);
    pol_jwks_unref(ks);
    /* A set of encryption keys only is no set at all. */
    buf_reset(&b);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, "enc", NULL, "enc", NULL);
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), ERR_PARSE);
    ASSERT(ks == NULL);
    buf_free(&b);
    buf_free(&t);
}

TEST(keys_with_kid_or_alg_that_cannot_be_kept_are_skipped)
{
    char kid[200];
    buf_t b, t;
    pol_jwks_t *ks = NULL;

    keys();
    memset(kid, 'k', sizeof(kid) - 1);
    kid[sizeof(kid) - 1] = '\0';
    buf_init(&b, JT_MAX);
    buf_init(&t, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, kid, NULL, NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.rsa2, NULL, NULL, NULL, "\"kid\":7");
    jt_put(&b, ",");
    jt_jwk(&b, K.ec256, "array-alg", NULL, NULL, "\"alg\":[\"ES256\"]");
    jt_put(&b, ",");
    jt_jwk(&b, K.ec256, "long-alg", "ES256-but-much-longer", NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.ed, "ed", NULL, NULL, NULL);
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(pol_jwks_count(ks), 1);
    /* Neither the long kid nor the empty kid reaches the first key. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", kid), ERR_POLICY_UNKNOWN_KID);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", ""), ERR_POLICY_UNKNOWN_KID);
    ASSERT_EQ(verify_good(ks, &t, K.rsa2, "RS256", "RS256", NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.ec256, "ES256", "ES256", NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "ed"), 0);
    /* A kid of 127 bytes still fits. */
    kid[127] = '\0';
    buf_reset(&b);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa, kid, "RS256", NULL, NULL);
    jt_put(&b, "]}");
    pol_jwks_unref(ks);
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", kid), 0);
    pol_jwks_unref(ks);
    buf_free(&b);
    buf_free(&t);
}

TEST(crit_header_refused)
{
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    buf_reset(&t);
    jt_token(&t, K.ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"crit\":[\"exp\"],\"exp\":1}",
             good_claims());
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"crit\":[]}"),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_hdr(ks, &t, K.ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"crit\":null}"),
              ERR_POLICY_TOKEN);
    /* Control: the same header without crit verifies. */
    ASSERT_EQ(verify_hdr(ks, &t, K.ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"exp\":1}"), 0);
    buf_free(&t);
    pol_jwks_unref(ks);
}

TEST(keys_carried_by_the_token_are_ignored)
{
    pol_jwks_t *ks = std_set();
    buf_t t, h, jwk;
    unsigned char der[1024], *p = der;
    int dl = i2d_PUBKEY(K.evil_rsa, &p);
    static const char *const kids[] = {NULL, "rsa", "evil"};

    ASSERT(dl > 0);
    buf_init(&t, JT_MAX);
    buf_init(&h, JT_MAX);
    buf_init(&jwk, JT_MAX);
    jt_jwk(&jwk, K.evil_rsa, "evil", "RS256", "sig", NULL);
    for (size_t i = 0; i < 3; i++) {
        for (int which = 0; which < 4; which++) {
            buf_reset(&h);
            jt_put(&h, "{\"alg\":\"RS256\"");
            if (kids[i] != NULL) {
                jt_put(&h, ",\"kid\":\"");
                jt_put(&h, kids[i]);
                jt_put(&h, "\"");
            }
            if (which == 0) {
                jt_put(&h, ",\"jwk\":");
                jt_put(&h, jwk.ptr);
            } else if (which == 1) {
                jt_put(&h, ",\"jku\":\"https://evil.example/jwks.json\"");
            } else if (which == 2) {
                jt_put(&h, ",\"x5u\":\"https://evil.example/cert.pem\"");
            } else {
                jt_put(&h, ",\"x5c\":[\"");
                if (b64url_put(&h, der, (size_t)dl) < 0)
                    jt_die("b64");
                jt_put(&h, "\"]");
            }
            jt_put(&h, "}");
            /* Signed by the attacker's key: never accepted. */
            buf_reset(&t);
            jt_token(&t, K.evil_rsa, "RS256", h.ptr, good_claims());
            ASSERT(verify(ks, &t) < 0);
            /* Signed by the set's key with kid rsa or none: the extra members are ignored. */
            if (kids[i] == NULL || strcmp(kids[i], "rsa") == 0) {
                ASSERT_EQ(verify_hdr(ks, &t, K.rsa, "RS256", h.ptr), 0);
            }
        }
    }
    buf_free(&t);
    buf_free(&h);
    buf_free(&jwk);
    pol_jwks_unref(ks);
}

/* --- claims ---------------------------------------------------------------------------------- */

TEST(time_claims_at_their_boundaries)
{
    pol_jwks_t *ks = std_set();
    buf_t t;
    char c[512];

    buf_init(&t, JT_MAX);
    /* exp: valid strictly before exp (RFC 7519 4.1.4); skew extends it by exactly skew. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), NOW + 1, INT64_MIN, INT64_MIN));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), 0);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), NOW, INT64_MIN, INT64_MIN));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_e(ks, &t, NOW - 1, 0, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW + 29, 30, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW + 30, 30, NULL), ERR_POLICY_TOKEN);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), NOW - 1, INT64_MIN, INT64_MIN));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), ERR_POLICY_TOKEN);
    /* Missing exp. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), INT64_MIN, NOW - 10, NOW - 10));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), ERR_POLICY_TOKEN);
    /* nbf: valid from nbf on; skew moves it earlier by exactly skew. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), NOW + 600, NOW, INT64_MIN));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW - 1, 0, NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_e(ks, &t, NOW - 30, 30, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW - 31, 30, NULL), ERR_POLICY_TOKEN);
    /* iat in the future: the same rule. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", times(c, sizeof(c), NOW + 600, INT64_MIN, NOW));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW - 1, 0, NULL), ERR_POLICY_TOKEN);
    ASSERT_EQ(verify_e(ks, &t, NOW - 30, 30, NULL), 0);
    ASSERT_EQ(verify_e(ks, &t, NOW - 31, 30, NULL), ERR_POLICY_TOKEN);
    /* Malformed and extreme time values: refused or accepted, never undefined behaviour. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":\"1700000600\"}");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":null}");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600.75}");
    ASSERT_EQ(verify(ks, &t), 0);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1e300}");
    ASSERT_EQ(verify(ks, &t), 0);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":-1e300}");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":9223372036854775807}");
    ASSERT_EQ(verify_e(ks, &t, NOW, 60, NULL), 0);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD
        "\",\"exp\":1700000600,\"nbf\":-9223372036854775807,\"iat\":-1e300}");
    ASSERT_EQ(verify_e(ks, &t, NOW, 60, NULL), 0);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1700000600,\"nbf\":1e300}");
    ASSERT_EQ(verify_e(ks, &t, NOW, 60, NULL), ERR_POLICY_TOKEN);
    buf_free(&t);
    pol_jwks_unref(ks);
}

static int claims_rc(const pol_jwks_t *ks, const char *claims)
{
    buf_t t;
    int rc;
    buf_init(&t, JT_MAX);
    tok(&t, K.ec256, "ES256", "ES256", "ec256", claims);
    rc = verify(ks, &t);
    buf_free(&t);
    return rc;
}

#define EXP ",\"exp\":1700000600}"

TEST(issuer_and_audience)
{
    pol_jwks_t *ks = std_set();

    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"" EXP), 0);
    /* iss: exact match only. */
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"https://evil.example\",\"aud\":\"" AUD "\"" EXP),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "/\",\"aud\":\"" AUD "\"" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"https://ISSUER.example\",\"aud\":\"" AUD "\"" EXP),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"https://issuer.exampl\",\"aud\":\"" AUD "\"" EXP),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"aud\":\"" AUD "\"" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":[\"" ISS "\"],\"aud\":\"" AUD "\"" EXP), ERR_POLICY_TOKEN);
    /* aud: a string equal to the audience, or an array containing it. */
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"other\"" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"mcp-api2\"" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"mcp\"" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"" AUD "\"]" EXP), 0);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":[1,null,{},\"" AUD "\"]" EXP), 0);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":[\"x\",\"y\"]" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":[]" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":[[\"" AUD "\"]]" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":{\"" AUD "\":1}" EXP), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\"" EXP), ERR_POLICY_TOKEN);
    /* Claims that are not an object. */
    ASSERT_EQ(claims_rc(ks, "[\"" ISS "\"]"), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "null"), ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, ""), ERR_POLICY_TOKEN);
    pol_jwks_unref(ks);
}

TEST(duplicate_members_refused)
{
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    ASSERT_EQ(
        claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"exp\":1,\"exp\":1700000600}"),
        ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"https://evil.example\",\"iss\":\"" ISS "\",\"aud\":\"" AUD
                            "\"" EXP),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(claims_rc(ks, "{\"iss\":\"" ISS "\",\"aud\":\"x\",\"aud\":\"" AUD "\"" EXP),
              ERR_POLICY_TOKEN);
    /* In the header too: which alg or kid would count? */
    buf_reset(&t);
    jt_token(&t, K.ed, "EdDSA", "{\"alg\":\"none\",\"alg\":\"EdDSA\",\"kid\":\"ed\"}",
             good_claims());
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    ASSERT_EQ(
        verify_hdr(ks, &t, K.ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"zz\",\"kid\":\"ed\"}"),
        ERR_POLICY_TOKEN);
    buf_free(&t);
    pol_jwks_unref(ks);
}

TEST(info_exp_and_sub)
{
    pol_jwks_t *ks = std_set();
    buf_t t, c;
    pol_jwt_info_t info;

    buf_init(&t, JT_MAX);
    buf_init(&c, JT_MAX);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\"" EXP);
    memset(&info, 0xa5, sizeof(info));
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, &info), 0);
    ASSERT_EQ(info.exp, 1700000600);
    ASSERT_STREQ(info.sub, "");
    /* A non-string sub is left empty; a long sub is cut to 255 bytes. */
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed",
        "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":42" EXP);
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, &info), 0);
    ASSERT_STREQ(info.sub, "");
    jt_put(&c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"");
    for (int i = 0; i < 300; i++)
        jt_put(&c, i % 10 == 0 ? "x" : "s");
    jt_put(&c, "\"" EXP);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", c.ptr);
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, &info), 0);
    ASSERT_EQ(strlen(info.sub), 255);
    ASSERT(info.sub[0] == 'x' && info.sub[1] == 's' && info.sub[250] == 'x');
    /* Exactly 255 fits whole. */
    buf_reset(&c);
    jt_put(&c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"sub\":\"");
    for (int i = 0; i < 255; i++)
        jt_put(&c, "s");
    jt_put(&c, "\"" EXP);
    tok(&t, K.ed, "EdDSA", "EdDSA", "ed", c.ptr);
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, &info), 0);
    ASSERT_EQ(strlen(info.sub), 255);
    /* info may be NULL. */
    ASSERT_EQ(verify_e(ks, &t, NOW, 0, NULL), 0);
    buf_free(&t);
    buf_free(&c);
    pol_jwks_unref(ks);
}

/* --- encoding and structure ------------------------------------------------------------------ */

/* Signs @p hdr_b64 "." @p claims_b64 (given as text, encoded by the caller) with Ed25519. */
static void raw_token(buf_t *t, const char *hdr_b64, const char *claims_b64)
{
    unsigned char sig[128];
    size_t sl;
    buf_reset(t);
    jt_put(t, hdr_b64);
    jt_put(t, ".");
    jt_put(t, claims_b64);
    sl = jt_sign(K.ed, "EdDSA", t->ptr, t->len, sig, sizeof(sig));
    jt_put(t, ".");
    jt_b64(t, sig, sl);
}

TEST(strict_base64url)
{
    pol_jwks_t *ks = std_set();
    buf_t t, h, c;
    char *sig;
    size_t i;
    bool changed = false;

    buf_init(&t, JT_MAX);
    buf_init(&h, JT_MAX);
    buf_init(&c, JT_MAX);
    /* A header of 32 bytes needs padding in standard base64; a signing library that pads
     * would sign the padded text. The signature is valid over it, the encoding is not. */
    jt_b64(&h, "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"x\":1}", 32);
    jt_b64(&c, good_claims(), strlen(good_claims()));
    raw_token(&t, h.ptr, c.ptr);
    ASSERT_EQ(verify(ks, &t), 0);
    jt_put(&h, "=");
    raw_token(&t, h.ptr, c.ptr);
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    jt_put(&h, "=");
    raw_token(&t, h.ptr, c.ptr);
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    /* Claims in the standard alphabet: "??>" encodes to "Pz8+" and "???" to "Pz8/". */
    buf_reset(&h);
    jt_b64(&h, "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", 26);
    buf_reset(&c);
    jt_put(&c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"x\":\"?\?>?\??\"" EXP);
    {
        buf_t e;
        buf_init(&e, JT_MAX);
        jt_b64(&e, c.ptr, c.len);
        raw_token(&t, h.ptr, e.ptr);
        ASSERT_EQ(verify(ks, &t), 0);
        for (i = 0; i < e.len; i++) {
            if (e.ptr[i] == '-' || e.ptr[i] == '_') {
                e.ptr[i] = e.ptr[i] == '-' ? '+' : '/';
                changed = true;
            }
        }
        ASSERT(changed);
        raw_token(&t, h.ptr, e.ptr);
        ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
        buf_free(&e);
    }
    /* Signature in the standard alphabet or padded. */
    raw_token(&t, h.ptr,
              "eyJleHAiOjE3MDAwMDA2MDAsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJhdWQiOi"
              "JtY3AtYXBpIn0");
    ASSERT_EQ(verify(ks, &t), 0);
    sig = strrchr(t.ptr, '.') + 1;
    changed = false;
    for (i = 0; sig[i] != '\0'; i++) {
        if (sig[i] == '-' || sig[i] == '_') {
            sig[i] = sig[i] == '-' ? '+' : '/';
            changed = true;
        }
    }
    if (changed) /* 86 random characters without '-' or '_' are unlikely but possible */
        ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    raw_token(&t, h.ptr,
              "eyJleHAiOjE3MDAwMDA2MDAsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJhdWQiOi"
              "JtY3AtYXBpIn0");
    jt_put(&t, "==");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    /* Whitespace, and a non-zero leftover bit ("fQ" -> "fR" decodes to the same byte). */
    raw_token(&t, h.ptr,
              "eyJleHAiOjE3MDAwMDA2MDAsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJhdWQiOi"
              "JtY3AtYXBpIn0 ");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    raw_token(&t, h.ptr,
              "eyJleHAiOjE3MDAwMDA2MDAsImlzcyI6Imh0dHBzOi8vaXNzdWVyLmV4YW1wbGUiLCJhdWQiOi"
              "JtY3AtYXBpIn1");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    buf_free(&t);
    buf_free(&h);
    buf_free(&c);
    pol_jwks_unref(ks);
}

static int str_rc(const pol_jwks_t *ks, const char *s)
{
    pol_jwt_expect_t e = {.issuer = ISS, .audience = AUD, .now = NOW, .skew = 0};
    err_detail_t d = {{0}};
    return pol_jwt_verify(ks, s, strlen(s), &e, NULL, &d);
}

TEST(compact_structure)
{
    pol_jwks_t *ks = std_set();
    buf_t t, x;
    const char *d1, *d2;
    size_t hl, cl;

    buf_init(&t, JT_MAX);
    buf_init(&x, JT_MAX);
    ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "ed"), 0);
    d1 = memchr(t.ptr, '.', t.len);
    d2 = memchr(d1 + 1, '.', t.len - (size_t)(d1 + 1 - t.ptr));
    hl = (size_t)(d1 - t.ptr);
    cl = (size_t)(d2 - d1 - 1);
    /* Extra dots anywhere. */
    ASSERT(buf_append(&x, t.ptr, t.len) == 0 && buf_append_str(&x, ".") == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    ASSERT(buf_append_str(&x, "e30") == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    buf_reset(&x);
    ASSERT(buf_append_str(&x, ".") == 0 && buf_append(&x, t.ptr, t.len) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    buf_reset(&x);
    ASSERT(buf_append(&x, t.ptr, hl + 1) == 0 && buf_append_str(&x, ".") == 0 &&
           buf_append(&x, d1 + 1, t.len - hl - 1) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    /* Empty segments. */
    buf_reset(&x);
    ASSERT(buf_append(&x, d1, t.len - hl) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    buf_reset(&x);
    ASSERT(buf_append(&x, t.ptr, hl + 1) == 0 &&
           buf_append(&x, d2, t.len - (size_t)(d2 - t.ptr)) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    buf_reset(&x);
    ASSERT(buf_append(&x, t.ptr, hl + cl + 2) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    /* Two segments, one, none. */
    buf_reset(&x);
    ASSERT(buf_append(&x, t.ptr, hl + cl + 1) == 0);
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    ASSERT_EQ(pol_jwt_verify(ks, t.ptr, hl, &(pol_jwt_expect_t){ISS, AUD, NOW, 0}, NULL, NULL),
              ERR_POLICY_TOKEN);
    ASSERT_EQ(str_rc(ks, ""), ERR_POLICY_TOKEN);
    ASSERT_EQ(str_rc(ks, ".."), ERR_POLICY_TOKEN);
    ASSERT_EQ(str_rc(ks, "..."), ERR_POLICY_TOKEN);
    ASSERT_EQ(str_rc(ks, "a.b.c"), ERR_POLICY_TOKEN);
    ASSERT_EQ(str_rc(ks, "e30.e30.e30"), ERR_POLICY_TOKEN);
    /* A JWE-shaped token (five segments). */
    ASSERT_EQ(str_rc(ks, "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d"),
              ERR_POLICY_TOKEN);
    /* The length passed is honoured: a valid token followed by junk outside the length. */
    ASSERT(buf_append_str(&t, ".junk") == 0);
    ASSERT_EQ(
        pol_jwt_verify(ks, t.ptr, t.len - 5, &(pol_jwt_expect_t){ISS, AUD, NOW, 0}, NULL, NULL), 0);
    /* A NUL inside the header segment. */
    buf_reset(&x);
    ASSERT(buf_append(&x, t.ptr, t.len - 5) == 0);
    x.ptr[2] = '\0';
    ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    buf_free(&t);
    buf_free(&x);
    pol_jwks_unref(ks);
}

/* A valid Ed25519 token of exactly @p len bytes (padding header and claims), or false. */
static bool token_of_len(buf_t *t, size_t len)
{
    buf_t c;
    bool hit = false;

    buf_init(&c, JT_MAX);
    for (int hp = 0; hp < 3 && !hit; hp++) {
        static const char *const hdrs[] = {"{\"alg\":\"EdDSA\",\"kid\":\"ed\"}",
                                           "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"x\":1}",
                                           "{\"alg\":\"EdDSA\",\"kid\":\"ed\",\"x\":12}"};
        for (size_t pad = (len - 400) * 3 / 4; !hit; pad++) {
            buf_reset(&c);
            jt_put(&c, "{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\",\"pad\":\"");
            for (size_t i = 0; i < pad; i++)
                jt_put(&c, "p");
            jt_put(&c, "\"" EXP);
            buf_reset(t);
            jt_token(t, K.ed, "EdDSA", hdrs[hp], c.ptr);
            if (t->len > len)
                break;
            hit = t->len == len;
        }
    }
    buf_free(&c);
    return hit;
}

TEST(token_size_limit)
{
    pol_jwks_t *ks = std_set();
    buf_t t;

    buf_init(&t, JT_MAX);
    ASSERT(token_of_len(&t, POL_JWT_MAX));
    ASSERT_EQ(verify(ks, &t), 0);
    /* One byte more (an otherwise valid token) is refused. */
    ASSERT(token_of_len(&t, POL_JWT_MAX + 1));
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    /* Way over. */
    buf_reset(&t);
    for (int i = 0; i < 4 * POL_JWT_MAX; i++)
        jt_put(&t, i == 100 || i == 200 ? "." : "A");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    buf_free(&t);
    pol_jwks_unref(ks);
}

/* --- JWKS ------------------------------------------------------------------------------------ */

TEST(weak_rsa_keys_skipped)
{
    buf_t b, t;
    pol_jwks_t *ks = NULL;
    unsigned char n[512];
    size_t nl;

    keys();
    buf_init(&b, JT_MAX);
    buf_init(&t, JT_MAX);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa1024, "small", NULL, NULL, NULL);
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), ERR_PARSE);
    buf_reset(&b);
    jt_put(&b, "{\"keys\":[");
    jt_jwk(&b, K.rsa1024, "small", NULL, NULL, NULL);
    jt_put(&b, ",");
    jt_jwk(&b, K.rsa, "big", NULL, NULL, NULL);
    jt_put(&b, "]}");
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(pol_jwks_count(ks), 1);
    ASSERT_EQ(verify_good(ks, &t, K.rsa1024, "RS256", "RS256", "small"), ERR_POLICY_UNKNOWN_KID);
    ASSERT_EQ(verify_good(ks, &t, K.rsa1024, "RS256", "RS256", NULL), ERR_POLICY_TOKEN);
    pol_jwks_unref(ks);
    /* The 1024-bit modulus with leading zero bytes up to 256 bytes is still 1024 bits. */
    nl = jt_rsa_n(K.rsa1024, n + 128, sizeof(n) - 128);
    ASSERT_EQ(nl, 128);
    memset(n, 0, 128);
    buf_reset(&b);
    jt_put(&b, "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"padded\",\"e\":\"AQAB\",\"n\":\"");
    jt_b64(&b, n, 256);
    jt_put(&b, "\"}]}");
    ks = NULL;
    ASSERT_EQ(parse(b.ptr, &ks), ERR_PARSE);
    pol_jwks_unref(ks);
    buf_free(&b);
    buf_free(&t);
}

TEST(jwks_without_usable_keys)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{}",
        "{\"keys\":{}}",
        "{\"keys\":[]}",
        "{\"keys\":[1,\"x\",null,[]]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-521\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AA\",\"y\":\"AA\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"X25519\","
        "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed448\","
        "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
        "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo=\"}]}",
        "{\"keys\":[{\"kty\":\"OKP\",\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
        "{\"keys\":[{\"kty\":\"ok\",\"crv\":\"Ed25519\","
        "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
        "{\"keys\":[{\"kty\":1,\"crv\":\"Ed25519\","
        "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
    };
    pol_jwks_t *ks = NULL;
    buf_t b;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        fprintf(stderr, "  %s\n", bad[i]);
        ASSERT_EQ(parse(bad[i], &ks), ERR_PARSE);
        ASSERT(ks == NULL);
    }
    ASSERT_EQ(parse("{\"keys\":[{\"kty\":\"OKP\",\"crv\":\"Ed25519\","
                    "\"x\":\"hSDwCYkwp1R0i33ctD73Wg2_Og0mOBr066SpjqqbTmo\"}]}",
                    &ks),
              0);
    ASSERT_EQ(pol_jwks_count(ks), 1);
    pol_jwks_unref(ks);
    /* An EC point not on the curve: a real key's x with y + 1. */
    keys();
    buf_init(&b, JT_MAX);
    {
        unsigned char x[32], y[32];
        jt_bn(K.ec256, OSSL_PKEY_PARAM_EC_PUB_X, x, sizeof(x), 32);
        jt_bn(K.ec256, OSSL_PKEY_PARAM_EC_PUB_Y, y, sizeof(y), 32);
        y[31] ^= 1;
        jt_put(&b, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"");
        jt_b64(&b, x, 32);
        jt_put(&b, "\",\"y\":\"");
        jt_b64(&b, y, 32);
        jt_put(&b, "\"}]}");
    }
    ks = NULL;
    ASSERT_EQ(parse(b.ptr, &ks), ERR_PARSE);
    pol_jwks_unref(ks);
    /* More keys than kept: the first POL_JWKS_KEYS_MAX are. */
    buf_reset(&b);
    jt_put(&b, "{\"keys\":[");
    for (int i = 0; i < POL_JWKS_KEYS_MAX + 5; i++) {
        char kid[16];
        snprintf(kid, sizeof(kid), "k%d", i);
        if (i > 0)
            jt_put(&b, ",");
        jt_jwk(&b, K.ed, kid, NULL, NULL, NULL);
    }
    jt_put(&b, "]}");
    ks = NULL;
    ASSERT_EQ(parse(b.ptr, &ks), 0);
    ASSERT_EQ(pol_jwks_count(ks), POL_JWKS_KEYS_MAX);
    {
        buf_t t;
        buf_init(&t, JT_MAX);
        ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "k63"), 0);
        ASSERT_EQ(verify_good(ks, &t, K.ed, "EdDSA", "EdDSA", "k64"), ERR_POLICY_UNKNOWN_KID);
        buf_free(&t);
    }
    pol_jwks_unref(ks);
    buf_free(&b);
}

TEST(ecdsa_signature_shapes)
{
    pol_jwks_t *ks = std_set();
    buf_t t, x;
    unsigned char sig[96];
    size_t sl;
    const char *dot;

    buf_init(&t, JT_MAX);
    buf_init(&x, JT_MAX);
    ASSERT_EQ(verify_good(ks, &t, K.ec256, "ES256", "ES256", "ec256"), 0);
    dot = strrchr(t.ptr, '.');
    ASSERT(b64url_decode(dot + 1, strlen(dot + 1), sig, sizeof(sig), &sl) == 0);
    ASSERT_EQ(sl, 64);
    /* Truncated, extended, DER instead of r||s, r or s zero. */
    for (int v = 0; v < 4; v++) {
        unsigned char s2[96];
        size_t l2 = 64;
        memcpy(s2, sig, 64);
        if (v == 0)
            l2 = 63;
        else if (v == 1)
            s2[l2++] = 0;
        else if (v == 2)
            memset(s2, 0, 32);
        else
            memset(s2 + 32, 0, 32);
        buf_reset(&x);
        ASSERT(buf_append(&x, t.ptr, (size_t)(dot - t.ptr) + 1) == 0);
        jt_b64(&x, s2, l2);
        ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    }
    {
        ECDSA_SIG *es = ECDSA_SIG_new();
        unsigned char der[128], *p = der;
        int dl;
        ASSERT(ECDSA_SIG_set0(es, BN_bin2bn(sig, 32, NULL), BN_bin2bn(sig + 32, 32, NULL)) == 1);
        dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        buf_reset(&x);
        ASSERT(buf_append(&x, t.ptr, (size_t)(dot - t.ptr) + 1) == 0);
        jt_b64(&x, der, (size_t)dl);
        ASSERT_EQ(verify(ks, &x), ERR_POLICY_TOKEN);
    }
    /* An RSA signature of the wrong length, and one over 1024 bytes. */
    ASSERT_EQ(verify_good(ks, &t, K.rsa, "RS256", "RS256", "rsa"), 0);
    t.len -= 3;
    t.ptr[t.len] = '\0';
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    for (int i = 0; i < 1400; i++)
        jt_put(&t, "A");
    ASSERT_EQ(verify(ks, &t), ERR_POLICY_TOKEN);
    buf_free(&t);
    buf_free(&x);
    pol_jwks_unref(ks);
}

TEST(zz_free_keys)
{
    EVP_PKEY_free(K.rsa);
    EVP_PKEY_free(K.rsa2);
    EVP_PKEY_free(K.ec256);
    EVP_PKEY_free(K.ec384);
    EVP_PKEY_free(K.ed);
    EVP_PKEY_free(K.evil_rsa);
    EVP_PKEY_free(K.evil_ec);
    EVP_PKEY_free(K.rsa1024);
    memset(&K, 0, sizeof(K));
    ASSERT_EQ(mem_used(), 0);
}
