/*
 * fuzz_jwks — pol_jwks_parse on arbitrary JWKS documents, then the parsed set in use.
 *
 * Invariants checked beyond "no crash, no leak":
 * - the result is 0 with a set of 1..POL_JWKS_KEYS_MAX keys, or ERR_PARSE with no set and a
 *   detail; never a set with no key;
 * - verifying fixed tokens (signed with the test keys of jose_keys.h, with and without kid)
 *   against the set gives 0, ERR_POLICY_TOKEN or ERR_POLICY_UNKNOWN_KID, and a 0 only when the
 *   document really holds the signing public key (its base64url "x" or "n" is in the input);
 * - all memory taken through base/alloc is given back once the set is released.
 */
#include <openssl/pem.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/policy/josetest.h"
#include "base/alloc.h"
#include "jose_keys.h"
#include "policy/jose.h"
#include "fuzz.h"

#define CLAIMS "{\"iss\":\"i\",\"aud\":\"a\",\"exp\":1700000600}"

static struct {
    buf_t tok;  /* the token */
    buf_t mark; /* the base64url public value the document must contain for a 0 */
} toks[4];
static bool ready;

static EVP_PKEY *load(const char *pem)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    CHECK(k != NULL);
    return k;
}

static void init(void)
{
    EVP_PKEY *ed = load(FZ_PEM_ED25519), *rsa = load(FZ_PEM_RSA);
    unsigned char v[512];
    size_t n = sizeof(v);

    for (size_t i = 0; i < 4; i++) {
        buf_init(&toks[i].tok, JT_MAX);
        buf_init(&toks[i].mark, JT_MAX);
    }
    jt_token(&toks[0].tok, ed, "EdDSA", "{\"alg\":\"EdDSA\",\"kid\":\"ed\"}", CLAIMS);
    jt_token(&toks[1].tok, ed, "EdDSA", "{\"alg\":\"EdDSA\"}", CLAIMS);
    CHECK(EVP_PKEY_get_raw_public_key(ed, v, &n) == 1);
    jt_b64(&toks[0].mark, v, n);
    jt_b64(&toks[1].mark, v, n);
    jt_token(&toks[2].tok, rsa, "RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa\"}", CLAIMS);
    jt_token(&toks[3].tok, rsa, "PS256", "{\"alg\":\"PS256\"}", CLAIMS);
    n = jt_rsa_n(rsa, v, sizeof(v));
    jt_b64(&toks[2].mark, v, n);
    jt_b64(&toks[3].mark, v, n);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
    ready = true;
}

static bool contains(const uint8_t *data, size_t size, const buf_t *needle)
{
    return memmem(data, size, needle->ptr, needle->len) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pol_jwt_expect_t e = {.issuer = "i", .audience = "a", .now = 1700000000, .skew = 0};
    pol_jwks_t *ks = (pol_jwks_t *)&e; /* must be overwritten */
    err_detail_t d = {{0}};
    size_t before;
    int rc;

    if (!ready)
        init();
    before = mem_used();
    rc = pol_jwks_parse((const char *)data, size, &ks, &d);
    if (rc != 0) {
        CHECK(rc == ERR_PARSE && ks == NULL && d.msg[0] != '\0');
        CHECK(mem_used() == before);
        return 0;
    }
    CHECK(ks != NULL && pol_jwks_count(ks) >= 1 && pol_jwks_count(ks) <= POL_JWKS_KEYS_MAX);
    for (size_t i = 0; i < 4; i++) {
        pol_jwt_info_t info;
        rc = pol_jwt_verify(ks, toks[i].tok.ptr, toks[i].tok.len, &e, &info, &d);
        CHECK(rc == 0 || rc == ERR_POLICY_TOKEN || rc == ERR_POLICY_UNKNOWN_KID);
        if (rc == 0)
            CHECK(contains(data, size, &toks[i].mark) && info.exp == 1700000600);
    }
    CHECK(pol_jwks_ref(ks) == ks);
    pol_jwks_unref(ks);
    pol_jwks_unref(ks);
    CHECK(mem_used() == before);
    return 0;
}
