/* JWT SVIDs: verified here the way any JOSE library would, from the JWKS alone. */
#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>

#include "idtest.h"
#include "test.h"

#define URI "spiffe://public/ns/default/checkout"

/* Decodes base64url [p, p+n) into a NUL-terminated buffer the caller frees. */
static unsigned char *b64(const char *p, size_t n, size_t *len)
{
    unsigned char *out = mem_alloc(n + 1);

    if (b64url_decode(p, n, out, n, len) < 0) {
        mem_free(out);
        return NULL;
    }
    out[*len] = '\0';
    return out;
}

/* The public key with @p kid from a JWKS document, or NULL. */
static EVP_PKEY *jwks_key(const char *jwks, const char *kid)
{
    json_t *doc = json_loads(jwks, 0, NULL), *keys = json_object_get(doc, "keys");
    EVP_PKEY *pkey = NULL;

    for (size_t i = 0; i < json_array_size(keys) && pkey == NULL; i++) {
        json_t *k = json_array_get(keys, i);
        const char *x = json_string_value(json_object_get(k, "x"));
        const char *y = json_string_value(json_object_get(k, "y"));
        unsigned char *xb, *yb, point[65];
        size_t xl = 0, yl = 0;
        OSSL_PARAM_BLD *bld;
        OSSL_PARAM *params;
        EVP_PKEY_CTX *ctx;

        if (strcmp(json_string_value(json_object_get(k, "kid")), kid) != 0)
            continue;
        if (strcmp(json_string_value(json_object_get(k, "kty")), "EC") != 0 ||
            strcmp(json_string_value(json_object_get(k, "crv")), "P-256") != 0 ||
            strcmp(json_string_value(json_object_get(k, "alg")), "ES256") != 0 ||
            strcmp(json_string_value(json_object_get(k, "use")), "sig") != 0)
            break;
        xb = b64(x, strlen(x), &xl);
        yb = b64(y, strlen(y), &yl);
        if (xb != NULL && yb != NULL && xl == 32 && yl == 32) {
            point[0] = 0x04;
            memcpy(point + 1, xb, 32);
            memcpy(point + 33, yb, 32);
            bld = OSSL_PARAM_BLD_new();
            OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point));
            params = OSSL_PARAM_BLD_to_param(bld);
            ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
            if (EVP_PKEY_fromdata_init(ctx) != 1 ||
                EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
                pkey = NULL;
            EVP_PKEY_CTX_free(ctx);
            OSSL_PARAM_free(params);
            OSSL_PARAM_BLD_free(bld);
        }
        mem_free(xb);
        mem_free(yb);
    }
    json_decref(doc);
    return pkey;
}

/* Verifies @p jwt against @p jwks for @p aud at @p now, as a relying party does. Returns 0, or
 * a small positive number saying which check failed. On success *claims holds the payload. */
static int verify(const char *jwks, const char *jwt, const char *aud, int64_t now, json_t **claims)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 ? strchr(d1 + 1, '.') : NULL;
    unsigned char *hb = NULL, *pb = NULL, *sb = NULL, der[80], *dp = der;
    size_t hl = 0, pl = 0, sl = 0;
    json_t *head = NULL, *body = NULL, *a;
    EVP_PKEY *key = NULL;
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *sig = NULL;
    int rc = 0, der_len;
    bool aud_ok = false;

    if (d2 == NULL)
        return 1;
    hb = b64(jwt, (size_t)(d1 - jwt), &hl);
    pb = b64(d1 + 1, (size_t)(d2 - d1 - 1), &pl);
    sb = b64(d2 + 1, strlen(d2 + 1), &sl);
    head = hb ? json_loads((const char *)hb, 0, NULL) : NULL;
    body = pb ? json_loads((const char *)pb, 0, NULL) : NULL;
    if (head == NULL || body == NULL || sb == NULL || sl != 64) {
        rc = 2;
        goto out;
    }
    if (strcmp(json_string_value(json_object_get(head, "alg")), "ES256") != 0) {
        rc = 3;
        goto out;
    }
    key = jwks_key(jwks, json_string_value(json_object_get(head, "kid")));
    if (key == NULL) {
        rc = 4;
        goto out;
    }
    sig = ECDSA_SIG_new();
    ECDSA_SIG_set0(sig, BN_bin2bn(sb, 32, NULL), BN_bin2bn(sb + 32, 32, NULL));
    der_len = i2d_ECDSA_SIG(sig, &dp);
    md = EVP_MD_CTX_new();
    if (EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) != 1 ||
        EVP_DigestVerify(md, der, (size_t)der_len, (const unsigned char *)jwt,
                         (size_t)(d2 - jwt)) != 1) {
        rc = 5;
        goto out;
    }
    a = json_object_get(body, "aud");
    if (json_is_string(a))
        aud_ok = strcmp(json_string_value(a), aud) == 0;
    for (size_t i = 0; json_is_array(a) && i < json_array_size(a); i++)
        aud_ok |= strcmp(json_string_value(json_array_get(a, i)), aud) == 0;
    if (!aud_ok) {
        rc = 6;
        goto out;
    }
    if (json_integer_value(json_object_get(body, "exp")) <= now ||
        json_integer_value(json_object_get(body, "nbf")) > now) {
        rc = 7;
        goto out;
    }
    *claims = json_incref(body);
out:
    ERR_clear_error();
    ECDSA_SIG_free(sig);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(key);
    json_decref(head);
    json_decref(body);
    mem_free(hb);
    mem_free(pb);
    mem_free(sb);
    return rc;
}

static int sign(const identity__ca_t *ca, const char *const *aud, size_t n, int64_t now, buf_t *out)
{
    identity__jwt_claims_t c;

    memset(&c, 0, sizeof(c));
    c.sub = URI;
    c.aud = aud;
    c.aud_count = n;
    c.iat = now;
    c.nbf = now - 900;
    c.exp = now + 300;
    buf_reset(out);
    return identity__jwt_sign(ca->active.jwt_key, ca->active.jwt_kid, &c, out, NULL);
}

TEST(jwt_verifies_against_the_jwks_and_only_for_its_audience)
{
    static const char *const aud[] = {"mcp://payments"};
    char dir[64];
    identity__ca_t *ca;
    int64_t now = (int64_t)time(NULL);
    json_t *claims = NULL, *head;
    unsigned char *hb;
    size_t hl;
    buf_t jwt;

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    ASSERT(ca != NULL);
    buf_init(&jwt, 8192);
    ASSERT_EQ(sign(ca, aud, 1, now, &jwt), 0);
    ASSERT_EQ(verify(ca->jwks_json, jwt.ptr, "mcp://payments", now, &claims), 0);
    ASSERT_STREQ(json_string_value(json_object_get(claims, "sub")), URI);
    ASSERT_STREQ(json_string_value(json_object_get(claims, "aud")), "mcp://payments");
    ASSERT_EQ(json_integer_value(json_object_get(claims, "iat")), now);
    ASSERT_EQ(json_integer_value(json_object_get(claims, "nbf")), now - 900);
    ASSERT_EQ(json_integer_value(json_object_get(claims, "exp")), now + 300);
    ASSERT_EQ(strlen(json_string_value(json_object_get(claims, "jti"))), 22);
    ASSERT(json_object_get(claims, "iss") == NULL);
    json_decref(claims);
    claims = NULL;
    hb = b64(jwt.ptr, (size_t)(strchr(jwt.ptr, '.') - jwt.ptr), &hl);
    head = json_loads((const char *)hb, 0, NULL);
    ASSERT_STREQ(json_string_value(json_object_get(head, "kid")), ca->active.jwt_kid);
    ASSERT_STREQ(json_string_value(json_object_get(head, "typ")), "JWT");
    ASSERT_EQ(strlen(ca->active.jwt_kid), 43);
    json_decref(head);
    mem_free(hb);
    /* Another audience, an expired token and a not-yet-valid one are all refused. */
    ASSERT_EQ(verify(ca->jwks_json, jwt.ptr, "mcp://other", now, &claims), 6);
    ASSERT_EQ(verify(ca->jwks_json, jwt.ptr, "mcp://payments", now + 301, &claims), 7);
    ASSERT_EQ(verify(ca->jwks_json, jwt.ptr, "mcp://payments", now - 901, &claims), 7);
    buf_free(&jwt);
    identity__ca_free(ca);
    idt_rmtree(dir);
}

TEST(jwt_tampering_and_foreign_keys_fail)
{
    static const char *const aud[] = {"mcp://payments", "spiffe://public/ns/default/x"};
    char dir[64];
    identity__ca_t *ca, *other;
    int64_t now = (int64_t)time(NULL);
    json_t *claims = NULL;
    buf_t jwt, forged;
    char *dot;

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    other = idt_ca(dir, "other");
    ASSERT(ca != NULL && other != NULL);
    buf_init(&jwt, 8192);
    buf_init(&forged, 8192);
    ASSERT_EQ(sign(ca, aud, 2, now, &jwt), 0);
    ASSERT_EQ(verify(ca->jwks_json, jwt.ptr, "spiffe://public/ns/default/x", now, &claims), 0);
    ASSERT(json_is_array(json_object_get(claims, "aud")));
    json_decref(claims);
    /* The other CA's JWKS does not hold our key. */
    ASSERT_EQ(verify(other->jwks_json, jwt.ptr, "mcp://payments", now, &claims), 4);
    /* One changed payload byte breaks the signature. */
    dot = strchr(jwt.ptr, '.');
    dot[3] = dot[3] == 'A' ? 'B' : 'A';
    ASSERT(verify(ca->jwks_json, jwt.ptr, "mcp://payments", now, &claims) != 0);
    /* A token signed by the other CA but claiming our kid fails too. */
    ASSERT_EQ(identity__jwt_sign(other->active.jwt_key, ca->active.jwt_kid,
                                 &(identity__jwt_claims_t){NULL, URI, aud, 1, now, now, now + 60},
                                 &forged, NULL),
              0);
    ASSERT_EQ(verify(ca->jwks_json, forged.ptr, "mcp://payments", now, &claims), 5);
    buf_free(&jwt);
    buf_free(&forged);
    identity__ca_free(ca);
    identity__ca_free(other);
    idt_rmtree(dir);
}

TEST(base64url_round_trip_and_strictness)
{
    unsigned char in[40], out[40];
    size_t n = 0;
    buf_t b;

    for (size_t i = 0; i < sizeof(in); i++)
        in[i] = (unsigned char)(i * 37 + 250);
    buf_init(&b, 256);
    for (size_t len = 0; len <= sizeof(in); len++) {
        buf_reset(&b);
        ASSERT_EQ(b64url_put(&b, in, len), 0);
        ASSERT(strchr(buf_ptr(&b), '=') == NULL && strchr(buf_ptr(&b), '+') == NULL);
        ASSERT_EQ(b64url_decode(b.ptr, b.len, out, sizeof(out), &n), 0);
        ASSERT_EQ(n, len);
        ASSERT(memcmp(in, out, len) == 0);
    }
    ASSERT_EQ(b64url_decode("QQ==", 4, out, sizeof(out), &n), ERR_PARSE);
    ASSERT_EQ(b64url_decode("Q", 1, out, sizeof(out), &n), ERR_PARSE);
    ASSERT_EQ(b64url_decode("QR", 2, out, sizeof(out), &n), ERR_PARSE);
    ASSERT_EQ(b64url_decode("a+b/", 4, out, sizeof(out), &n), ERR_PARSE);
    ASSERT_EQ(b64url_decode("QUFB", 4, out, 2, &n), ERR_TOO_LARGE);
    buf_free(&b);
}
