/* The CA: state dir, reload, rotation, and the exact content of the certificates it signs. */
#include <openssl/bn.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include "idtest.h"
#include "test.h"

#define URI "spiffe://public/ns/default/checkout"

static int mode_of(const char *dir, const char *name)
{
    char path[512];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (stat(path, &st) < 0)
        return -1;
    return (int)(st.st_mode & 0777);
}

static int64_t asn1_unix(const ASN1_TIME *t)
{
    return identity__asn1_unix(t);
}

/* A store trusting every root of @p ca's bundle. */
static X509_STORE *store_of(const identity__ca_t *ca)
{
    X509_STORE *st = NULL;
    return identity__store_new(ca->bundle, &st, NULL) == 0 ? st : NULL;
}

TEST(ca_creates_private_state)
{
    char dir[64], sub[128];
    identity__ca_t *ca;
    X509 *root, *issuer;

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "a/b/sentry");
    ASSERT(ca != NULL);
    snprintf(sub, sizeof(sub), "%s/a/b/sentry", dir);
    ASSERT_EQ(mode_of(sub, ""), 0700);
    ASSERT_EQ(mode_of(sub, "ca.pem"), 0600);
    ASSERT_EQ(mode_of(sub, "bundle.pem"), 0644);
    ASSERT_EQ(mode_of(sub, "jwt-keys.pem"), 0644);
    ASSERT_EQ(sk_X509_num(ca->bundle), 1);
    root = ca->active.root;
    issuer = ca->active.issuer;
    ASSERT_EQ(X509_cmp(sk_X509_value(ca->bundle, 0), root), 0);
    /* Root: self-signed CA; issuer: CA with pathlen 0 under it; both ~365 days, P-256. */
    ASSERT_EQ(X509_check_issued(root, root), X509_V_OK);
    ASSERT_EQ(X509_check_issued(root, issuer), X509_V_OK);
    ASSERT(X509_check_ca(root) > 0);
    ASSERT(X509_check_ca(issuer) > 0);
    ASSERT_EQ(X509_get_pathlen(issuer), 0);
    ASSERT_EQ(EVP_PKEY_get_base_id(ca->active.issuer_key), EVP_PKEY_EC);
    ASSERT_EQ(EVP_PKEY_get_bits(ca->active.issuer_key), 256);
    {
        int64_t life = asn1_unix(X509_get0_notAfter(issuer)) - time(NULL);
        ASSERT(life > 364 * 86400 && life <= 365 * 86400);
    }
    ASSERT(strstr(ca->bundle_pem, "BEGIN CERTIFICATE") != NULL);
    ASSERT(strstr(ca->jwks_json, ca->active.jwt_kid) != NULL);
    identity__ca_free(ca);
    idt_rmtree(dir);
}

TEST(ca_reload_keeps_the_same_ca)
{
    char dir[64];
    identity__ca_t *a, *b;

    idt_tmpdir(dir, sizeof(dir));
    a = idt_ca(dir, "ca");
    b = idt_ca(dir, "ca");
    ASSERT(a != NULL && b != NULL);
    ASSERT_EQ(X509_cmp(a->active.root, b->active.root), 0);
    ASSERT_EQ(X509_cmp(a->active.issuer, b->active.issuer), 0);
    ASSERT_EQ(EVP_PKEY_eq(a->active.issuer_key, b->active.issuer_key), 1);
    ASSERT_STREQ(a->active.jwt_kid, b->active.jwt_kid);
    ASSERT_STREQ(a->bundle_pem, b->bundle_pem);
    ASSERT(!identity__ca_changed(a));
    identity__ca_free(a);
    identity__ca_free(b);
    idt_rmtree(dir);
}

TEST(ca_refuses_wrong_trust_domain_open_dir_and_damage)
{
    char dir[64], sub[128], path[160];
    identity__ca_t *ca = NULL;
    err_detail_t d = {""};
    FILE *f;

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    ASSERT(ca != NULL);
    identity__ca_free(ca);
    ca = NULL;
    snprintf(sub, sizeof(sub), "%s/ca", dir);
    ASSERT_EQ(identity__ca_open(sub, "other.domain", &ca, &d), ERR_IDENTITY_CA);
    ASSERT(strstr(d.msg, "other.domain") != NULL);
    ASSERT_EQ(identity__ca_open(sub, "Bad Domain", &ca, &d), ERR_INVAL);
    chmod(sub, 0750);
    ASSERT_EQ(identity__ca_open(sub, "public", &ca, &d), ERR_IDENTITY_CA);
    ASSERT(strstr(d.msg, "chmod 700") != NULL);
    chmod(sub, 0700);
    snprintf(path, sizeof(path), "%s/ca.pem", sub);
    f = fopen(path, "w");
    ASSERT(f != NULL);
    fputs("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n", f);
    fclose(f);
    ASSERT_EQ(identity__ca_open(sub, "public", &ca, &d), ERR_IDENTITY_CA);
    ASSERT(ca == NULL);
    idt_rmtree(dir);
}

TEST(ca_repairs_a_missing_bundle)
{
    char dir[64], path[160];
    identity__ca_t *a, *b;

    idt_tmpdir(dir, sizeof(dir));
    a = idt_ca(dir, "ca");
    ASSERT(a != NULL);
    snprintf(path, sizeof(path), "%s/ca/bundle.pem", dir);
    unlink(path);
    ASSERT(identity__ca_changed(a));
    b = idt_ca(dir, "ca");
    ASSERT(b != NULL);
    ASSERT_STREQ(a->bundle_pem, b->bundle_pem);
    identity__ca_free(a);
    identity__ca_free(b);
    idt_rmtree(dir);
}

TEST(ca_root_rotation_stage_activate_prune)
{
    char dir[64], sub[128];
    identity__ca_t *ca1, *ca2, *ca3, *ca4;
    identity_svid_t *old_leaf, *new_leaf;
    X509_STORE *st;
    err_detail_t d = {""};

    idt_tmpdir(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/ca", dir);
    ca1 = idt_ca(dir, "ca");
    ASSERT(ca1 != NULL);
    old_leaf = idt_issue(ca1, URI, -60, 3600, true);
    ASSERT(old_leaf != NULL);
    ASSERT_EQ(identity_ca_activate_root(sub, "public", &d), ERR_IDENTITY_CA);

    /* 1. Stage: the bundle and JWKS gain the new root and key; signing does not change. */
    ASSERT_EQ(identity_ca_stage_root(sub, "public", &d), 0);
    ASSERT(identity__ca_changed(ca1));
    ASSERT_EQ(identity_ca_stage_root(sub, "public", &d), ERR_IDENTITY_CA);
    ca2 = idt_ca(dir, "ca");
    ASSERT(ca2 != NULL);
    ASSERT_EQ(X509_cmp(ca2->active.issuer, ca1->active.issuer), 0);
    ASSERT_EQ(sk_X509_num(ca2->bundle), 2);
    ASSERT(strstr(ca2->jwks_json, "},{") != NULL);

    /* 2. Activate: a new issuer signs; the old root stays trusted, so old leaves still verify. */
    ASSERT_EQ(identity_ca_activate_root(sub, "public", &d), 0);
    ca3 = idt_ca(dir, "ca");
    ASSERT(ca3 != NULL);
    ASSERT(X509_cmp(ca3->active.root, ca1->active.root) != 0);
    ASSERT_EQ(sk_X509_num(ca3->bundle), 2);
    new_leaf = idt_issue(ca3, URI, -60, 3600, true);
    ASSERT(new_leaf != NULL);
    st = store_of(ca3);
    ASSERT_EQ(identity__verify_chain(st, identity_svid_leaf(old_leaf),
                                     identity__svid_chain(old_leaf), 0, &d),
              0);
    ASSERT_EQ(identity__verify_chain(st, identity_svid_leaf(new_leaf),
                                     identity__svid_chain(new_leaf), 0, &d),
              0);
    X509_STORE_free(st);

    /* 3. Prune: only the active root remains; leaves of the old root no longer verify. */
    ASSERT_EQ(identity_ca_prune_roots(sub, "public", &d), 1);
    ca4 = idt_ca(dir, "ca");
    ASSERT(ca4 != NULL);
    ASSERT_EQ(sk_X509_num(ca4->bundle), 1);
    ASSERT_EQ(X509_cmp(sk_X509_value(ca4->bundle, 0), ca3->active.root), 0);
    ASSERT(strstr(ca4->jwks_json, "},{") == NULL);
    ASSERT(strstr(ca4->jwks_json, ca3->active.jwt_kid) != NULL);
    st = store_of(ca4);
    ASSERT_EQ(identity__verify_chain(st, identity_svid_leaf(old_leaf),
                                     identity__svid_chain(old_leaf), 0, &d),
              ERR_IDENTITY_CERT);
    ASSERT_EQ(identity__verify_chain(st, identity_svid_leaf(new_leaf),
                                     identity__svid_chain(new_leaf), 0, &d),
              0);
    X509_STORE_free(st);
    ASSERT_EQ(identity_ca_prune_roots(sub, "public", &d), 0);

    identity_svid_unref(old_leaf);
    identity_svid_unref(new_leaf);
    identity__ca_free(ca1);
    identity__ca_free(ca2);
    identity__ca_free(ca3);
    identity__ca_free(ca4);
    idt_rmtree(dir);
}

TEST(signed_svid_has_exactly_the_specified_fields)
{
    char dir[64];
    identity__ca_t *ca, *other;
    EVP_PKEY *key = NULL, *pub = NULL;
    X509 *leaf = NULL;
    identity__profile_t p;
    buf_t csr, chain;
    STACK_OF(X509) *certs = NULL;
    GENERAL_NAMES *sans;
    BIGNUM *serial;
    X509_STORE *st;
    err_detail_t d = {""};
    int64_t now = (int64_t)time(NULL);
    int idx, crit = -1;

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    other = idt_ca(dir, "other");
    ASSERT(ca != NULL && other != NULL);
    buf_init(&csr, 8192);
    buf_init(&chain, 1 << 16);
    ASSERT_EQ(identity__key_new(&key, &d), 0);
    ASSERT_EQ(identity__csr_new(key, &csr, &d), 0);
    ASSERT_EQ(identity__csr_pubkey(csr.ptr, csr.len, &pub, &d), 0);
    ASSERT_EQ(EVP_PKEY_eq(pub, key), 1);
    memset(&p, 0, sizeof(p));
    p.uri = URI;
    p.client_auth = true;
    p.not_before = now - 900;
    p.not_after = now + 86400;
    ASSERT_EQ(identity__ca_sign(ca, pub, &p, &leaf, &d), 0);

    ASSERT_EQ(X509_get_version(leaf), X509_VERSION_3);
    ASSERT_EQ(X509_NAME_entry_count(X509_get_subject_name(leaf)), 0);
    ASSERT_EQ(X509_NAME_cmp(X509_get_issuer_name(leaf), X509_get_subject_name(ca->active.issuer)),
              0);
    ASSERT_EQ(asn1_unix(X509_get0_notBefore(leaf)), now - 900);
    ASSERT_EQ(asn1_unix(X509_get0_notAfter(leaf)), now + 86400);
    ASSERT_EQ(X509_get_signature_nid(leaf), NID_ecdsa_with_SHA256);
    /* Serial: positive, random, at most 128 bits (a 96-bit floor fails once in 2^32 runs). */
    serial = ASN1_INTEGER_to_BN(X509_get0_serialNumber(leaf), NULL);
    ASSERT(serial != NULL);
    ASSERT(!BN_is_negative(serial));
    ASSERT(BN_num_bits(serial) <= 128 && BN_num_bits(serial) > 96);
    BN_free(serial);
    /* SAN: critical (empty subject), exactly one name, the URI. */
    sans = X509_get_ext_d2i(leaf, NID_subject_alt_name, &crit, NULL);
    ASSERT(sans != NULL);
    ASSERT_EQ(crit, 1);
    ASSERT_EQ(sk_GENERAL_NAME_num(sans), 1);
    ASSERT_EQ(sk_GENERAL_NAME_value(sans, 0)->type, GEN_URI);
    ASSERT_MEMEQ(ASN1_STRING_get0_data(sk_GENERAL_NAME_value(sans, 0)->d.uniformResourceIdentifier),
                 ASN1_STRING_length(sk_GENERAL_NAME_value(sans, 0)->d.uniformResourceIdentifier),
                 URI);
    GENERAL_NAMES_free(sans);
    /* KeyUsage digitalSignature only, critical; EKU serverAuth + clientAuth; not a CA. */
    ASSERT_EQ(X509_get_key_usage(leaf), KU_DIGITAL_SIGNATURE);
    idx = X509_get_ext_by_NID(leaf, NID_key_usage, -1);
    ASSERT(idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(leaf, idx)) == 1);
    ASSERT_EQ(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER | XKU_SSL_CLIENT);
    ASSERT_EQ(X509_check_ca(leaf), 0);
    idx = X509_get_ext_by_NID(leaf, NID_basic_constraints, -1);
    ASSERT(idx >= 0 && X509_EXTENSION_get_critical(X509_get_ext(leaf, idx)) == 1);
    /* Chain = leaf + issuer; it verifies against our bundle and not against another CA's. */
    ASSERT_EQ(identity__ca_chain_pem(ca, leaf, &chain), 0);
    ASSERT_EQ(identity__pem_certs(chain.ptr, chain.len, 8, &certs, &d), 0);
    ASSERT_EQ(sk_X509_num(certs), 2);
    ASSERT_EQ(X509_cmp(sk_X509_value(certs, 0), leaf), 0);
    ASSERT_EQ(X509_cmp(sk_X509_value(certs, 1), ca->active.issuer), 0);
    X509_free(sk_X509_shift(certs));
    st = store_of(ca);
    ASSERT_EQ(identity__verify_chain(st, leaf, certs, 0, &d), 0);
    X509_STORE_free(st);
    st = store_of(other);
    ASSERT_EQ(identity__verify_chain(st, leaf, certs, 0, &d), ERR_IDENTITY_CERT);
    X509_STORE_free(st);
    /* Past NotAfter and before NotBefore, verification refuses it. */
    st = store_of(ca);
    ASSERT_EQ(identity__verify_chain(st, leaf, certs, now + 86401, &d), ERR_IDENTITY_CERT);
    ASSERT(strstr(d.msg, "expired") != NULL);
    ASSERT_EQ(identity__verify_chain(st, leaf, certs, now - 1000, &d), ERR_IDENTITY_CERT);
    ASSERT(strstr(d.msg, "not yet valid") != NULL);
    X509_STORE_free(st);

    sk_X509_pop_free(certs, X509_free);
    X509_free(leaf);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(key);
    buf_free(&csr);
    buf_free(&chain);
    identity__ca_free(ca);
    identity__ca_free(other);
    idt_rmtree(dir);
}

TEST(leaf_never_outlives_the_issuer)
{
    char dir[64];
    identity__ca_t *ca;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    identity__profile_t p;
    err_detail_t d = {""};
    int64_t now = (int64_t)time(NULL);

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    ASSERT(ca != NULL);
    ASSERT_EQ(identity__key_new(&key, &d), 0);
    memset(&p, 0, sizeof(p));
    p.uri = URI;
    p.not_before = now;
    p.not_after = now + 400 * 86400;
    ASSERT_EQ(identity__ca_sign(ca, key, &p, &leaf, &d), 0);
    ASSERT_EQ(asn1_unix(X509_get0_notAfter(leaf)),
              asn1_unix(X509_get0_notAfter(ca->active.issuer)));
    ASSERT_EQ(X509_get_extended_key_usage(leaf), XKU_SSL_SERVER);
    X509_free(leaf);
    EVP_PKEY_free(key);
    identity__ca_free(ca);
    idt_rmtree(dir);
}

/* PEM of a CSR for @p key signed by @p signer (a mismatch makes the signature invalid). */
static void csr_pem(EVP_PKEY *key, EVP_PKEY *signer, buf_t *out)
{
    X509_REQ *req = X509_REQ_new();
    BIO *bio = BIO_new(BIO_s_mem());
    char *p = NULL;
    long n;

    X509_REQ_set_pubkey(req, signer);
    X509_REQ_sign(req, signer,
                  signer && EVP_PKEY_get_base_id(signer) == EVP_PKEY_ED25519 ? NULL : EVP_sha256());
    X509_REQ_set_pubkey(req, key);
    PEM_write_bio_X509_REQ(bio, req);
    n = BIO_get_mem_data(bio, &p);
    buf_reset(out);
    if (buf_append(out, p, (size_t)n) < 0)
        abort();
    BIO_free(bio);
    X509_REQ_free(req);
}

TEST(csr_must_be_well_formed_self_signed_and_strong)
{
    EVP_PKEY *a = EVP_EC_gen("P-256"), *b = EVP_EC_gen("P-256"), *pub = NULL;
    EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    err_detail_t d = {""};
    buf_t pem;

    buf_init(&pem, 16384);
    ASSERT_EQ(identity__csr_pubkey("", 0, &pub, &d), ERR_IDENTITY_CSR);
    ASSERT_EQ(identity__csr_pubkey("garbage", 7, &pub, &d), ERR_IDENTITY_CSR);
    csr_pem(a, a, &pem);
    ASSERT_EQ(identity__csr_pubkey(pem.ptr, pem.len, &pub, &d), 0);
    EVP_PKEY_free(pub);
    pub = NULL;
    /* Signed by another key than the one it names: no proof of possession. */
    csr_pem(a, b, &pem);
    ASSERT_EQ(identity__csr_pubkey(pem.ptr, pem.len, &pub, &d), ERR_IDENTITY_CSR);
    ASSERT(strstr(d.msg, "signature") != NULL);
    csr_pem(ed, ed, &pem);
    ASSERT_EQ(identity__csr_pubkey(pem.ptr, pem.len, &pub, &d), 0);
    EVP_PKEY_free(pub);
    pub = NULL;
    csr_pem(rsa, rsa, &pem);
    ASSERT_EQ(identity__csr_pubkey(pem.ptr, pem.len, &pub, &d), ERR_IDENTITY_CSR);
    ASSERT(strstr(d.msg, "1024") != NULL);
    ASSERT(pub == NULL);
    ERR_clear_error();
    buf_free(&pem);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    EVP_PKEY_free(ed);
    EVP_PKEY_free(rsa);
}

/* Signs a leaf with @p san_conf (OpenSSL config syntax; NULL = no SAN) by @p ca's issuer. */
static X509 *raw_leaf(const identity__ca_t *ca, const char *san_conf)
{
    X509 *x = X509_new();
    EVP_PKEY *k = EVP_EC_gen("P-256");
    X509V3_CTX v3;

    X509_set_version(x, X509_VERSION_3);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 7);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, k);
    X509_set_issuer_name(x, X509_get_subject_name(ca->active.issuer));
    X509V3_set_ctx(&v3, ca->active.issuer, x, NULL, NULL, 0);
    if (san_conf != NULL) {
        X509_EXTENSION *e = X509V3_EXT_nconf_nid(NULL, &v3, NID_subject_alt_name, san_conf);
        X509_add_ext(x, e, -1);
        X509_EXTENSION_free(e);
    }
    X509_sign(x, ca->active.issuer_key, EVP_sha256());
    EVP_PKEY_free(k);
    return x;
}

TEST(leaf_needs_exactly_one_valid_spiffe_uri)
{
    static const struct {
        const char *san;
        int ok;
    } cases[] = {
        {"critical,URI:" URI, 1},
        {"critical,URI:" URI ",DNS:example.com", 1},
        {NULL, 0},
        {"critical,DNS:example.com", 0},
        {"critical,URI:" URI ",URI:spiffe://public/ns/default/other", 0},
        {"critical,URI:https://example.com/ns/default/checkout", 0},
        {"critical,URI:spiffe://public/checkout", 0},
        {"critical,URI:spiffe://public/ns/default", 0},
        {"critical,URI:spiffe://Public/ns/default/checkout", 0},
        {"critical,URI:spiffe://public/ns/default/check%20out", 0},
    };
    char dir[64];
    identity__ca_t *ca;
    static spiffe_id_t id;
    err_detail_t d = {""};

    idt_tmpdir(dir, sizeof(dir));
    ca = idt_ca(dir, "ca");
    ASSERT(ca != NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        X509 *x = raw_leaf(ca, cases[i].san);
        int rc = identity__cert_spiffe_id(x, &id, &d);
        X509_free(x);
        if (cases[i].ok && rc != 0)
            TEST_FAIL_("case %zu (%s) refused: %s", i, cases[i].san, d.msg);
        if (!cases[i].ok && rc != ERR_IDENTITY_CERT)
            TEST_FAIL_("case %zu (%s) accepted", i, cases[i].san ? cases[i].san : "no SAN");
    }
    /* A CA certificate is never an SVID, whatever its SAN. */
    ASSERT_EQ(identity__cert_spiffe_id(ca->active.issuer, &id, &d), ERR_IDENTITY_CERT);
    identity__ca_free(ca);
    idt_rmtree(dir);
}
