/*
 * X.509 helpers shared by the CA, the client and the TLS code: keys, PEM in and out, CSRs,
 * SPIFFE IDs in certificates, chain verification.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>

#include "identity/identity_int.h"

int identity__key_new(EVP_PKEY **out, err_detail_t *d)
{
    EVP_PKEY *k;

    ERR_clear_error();
    /* P-256: every TLS stack and JOSE library speaks it (Ed25519 is not yet universal in JOSE
     * verifiers, and RSA keys are slow to make). */
    k = EVP_EC_gen("P-256");
    if (k == NULL)
        return identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot generate a P-256 key");
    *out = k;
    return 0;
}

int identity__pem_certs(const char *pem, size_t n, size_t max, STACK_OF(X509) * *out,
                        err_detail_t *d)
{
    STACK_OF(X509) *sk = NULL;
    BIO *bio = NULL;
    int rc = 0;

    if (n > INT32_MAX)
        return err_set(d, ERR_TOO_LARGE, "certificate PEM too large");
    ERR_clear_error();
    bio = BIO_new_mem_buf(pem, (int)n);
    sk = sk_X509_new_null();
    if (bio == NULL || sk == NULL) {
        rc = identity__ossl_fail(d, ERR_NOMEM, "cannot allocate");
        goto out;
    }
    for (;;) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        const unsigned char *q;
        unsigned long e;
        long len = 0;
        X509 *x;

        if (PEM_read_bio(bio, &name, &header, &data, &len) != 1) {
            /* Running out of blocks is the normal end; anything else is a damaged block. */
            e = ERR_peek_last_error();
            if (!(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
                rc = identity__ossl_fail(d, ERR_PARSE, "bad certificate PEM");
            break;
        }
        q = data;
        x = strcmp(name, "CERTIFICATE") == 0 ? d2i_X509(NULL, &q, len) : NULL;
        if (x != NULL && q != data + len) {
            X509_free(x);
            x = NULL;
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (x == NULL) {
            rc = identity__ossl_fail(d, ERR_PARSE, "a PEM block is not a valid CERTIFICATE");
            break;
        }
        if ((size_t)sk_X509_num(sk) >= max) {
            X509_free(x);
            rc = err_set(d, ERR_TOO_LARGE, "more than %zu certificates", max);
            break;
        }
        if (!sk_X509_push(sk, x)) {
            X509_free(x);
            rc = identity__ossl_fail(d, ERR_NOMEM, "cannot allocate");
            break;
        }
    }
    ERR_clear_error();
    if (rc == 0 && sk_X509_num(sk) == 0)
        rc = err_set(d, ERR_PARSE, "no certificate in PEM");
    if (rc < 0)
        goto out;
    *out = sk;
    sk = NULL;
out:
    sk_X509_pop_free(sk, X509_free);
    BIO_free(bio);
    return rc;
}

/* Appends what was written to the memory BIO @p bio. */
static int put_bio(buf_t *b, BIO *bio)
{
    char *p = NULL;
    long n = BIO_get_mem_data(bio, &p);

    if (n <= 0)
        return ERR_IDENTITY_CRYPTO;
    return buf_append(b, p, (size_t)n);
}

int identity__pem_put_cert(buf_t *b, X509 *x)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = ERR_IDENTITY_CRYPTO;

    ERR_clear_error();
    if (bio != NULL && PEM_write_bio_X509(bio, x) == 1)
        rc = put_bio(b, bio);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int identity__pem_put_key(buf_t *b, EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = ERR_IDENTITY_CRYPTO;

    ERR_clear_error();
    if (bio != NULL && PEM_write_bio_PrivateKey(bio, k, NULL, NULL, 0, NULL, NULL) == 1)
        rc = put_bio(b, bio);
    /* The BIO held the private key in clear: wipe it before it goes back to the heap. */
    if (bio != NULL) {
        char *p = NULL;
        long n = BIO_get_mem_data(bio, &p);
        if (n > 0)
            OPENSSL_cleanse(p, (size_t)n);
    }
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int identity__pem_put_pubkey(buf_t *b, EVP_PKEY *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    int rc = ERR_IDENTITY_CRYPTO;

    ERR_clear_error();
    if (bio != NULL && PEM_write_bio_PUBKEY(bio, k) == 1)
        rc = put_bio(b, bio);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int64_t identity__asn1_unix(const ASN1_TIME *t)
{
    struct tm tm;

    memset(&tm, 0, sizeof(tm));
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1) {
        ERR_clear_error();
        return 0;
    }
    return (int64_t)timegm(&tm);
}

void identity__rfc3339(int64_t t, char *out, size_t n)
{
    time_t tt = (time_t)t;
    struct tm tm;

    gmtime_r(&tt, &tm);
    if (strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0 && n > 0)
        out[0] = '\0';
}

void identity__serial_hex(X509 *x, char *out, size_t n)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn != NULL ? BN_bn2hex(bn) : NULL;
    size_t i = 0;

    if (n == 0)
        goto out;
    for (; hex != NULL && hex[i] != '\0' && i + 1 < n; i++)
        out[i] = (char)(hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
    out[i] = '\0';
out:
    OPENSSL_free(hex);
    BN_free(bn);
    ERR_clear_error();
}

int identity__cert_spiffe_id(X509 *x, spiffe_id_t *out, err_detail_t *d)
{
    GENERAL_NAMES *sans;
    const ASN1_IA5STRING *uri = NULL;
    int crit = -1, uris = 0, rc = 0;

    ERR_clear_error();
    sans = X509_get_ext_d2i(x, NID_subject_alt_name, &crit, NULL);
    if (sans == NULL) {
        ERR_clear_error();
        return err_set(d, ERR_IDENTITY_CERT, "%s",
                       crit == -2 ? "certificate has more than one subjectAltName extension"
                                  : "certificate has no subjectAltName");
    }
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_URI) {
            uris++;
            uri = gn->d.uniformResourceIdentifier;
        }
    }
    /* X.509-SVID §2: exactly one URI SAN. A second one could carry a second identity that some
     * other verifier would pick. */
    if (uris != 1) {
        rc = err_set(d, ERR_IDENTITY_CERT, "certificate has %d URI SANs, expected exactly one",
                     uris);
        goto out;
    }
    if (spiffe_id_parse((const char *)ASN1_STRING_get0_data(uri), (size_t)ASN1_STRING_length(uri),
                        out) < 0) {
        rc = err_set(d, ERR_IDENTITY_CERT, "URI SAN \"%.*s\" is not a valid workload SPIFFE ID",
                     ASN1_STRING_length(uri) > 200 ? 200 : ASN1_STRING_length(uri),
                     (const char *)ASN1_STRING_get0_data(uri));
        goto out;
    }
    if (X509_check_ca(x) != 0) {
        rc = err_set(d, ERR_IDENTITY_CERT, "a CA certificate cannot be an SVID");
        goto out;
    }
out:
    GENERAL_NAMES_free(sans);
    ERR_clear_error();
    return rc;
}

int identity__csr_new(EVP_PKEY *key, buf_t *out, err_detail_t *d)
{
    X509_REQ *req = NULL;
    BIO *bio = NULL;
    int rc = 0;

    ERR_clear_error();
    req = X509_REQ_new();
    bio = BIO_new(BIO_s_mem());
    /* An empty subject: the sentry decides the identity and puts it into the URI SAN. */
    if (req == NULL || bio == NULL || X509_REQ_set_version(req, X509_REQ_VERSION_1) != 1 ||
        X509_REQ_set_pubkey(req, key) != 1 || X509_REQ_sign(req, key, EVP_sha256()) <= 0 ||
        PEM_write_bio_X509_REQ(bio, req) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot make a CSR");
        goto out;
    }
    rc = put_bio(out, bio);
    if (rc < 0)
        rc = err_set(d, rc, "cannot hold the CSR");
out:
    BIO_free(bio);
    X509_REQ_free(req);
    return rc;
}

/* True when @p k is a key type and size we issue certificates for. */
static bool key_acceptable(EVP_PKEY *k, char *why, size_t n)
{
    char group[64] = "";
    size_t glen = 0;

    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &glen) != 1) {
            snprintf(why, n, "EC key without a named curve");
            return false;
        }
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0 ||
            strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            return true;
        snprintf(why, n, "EC curve %s is not accepted (P-256 or P-384)", group);
        return false;
    case EVP_PKEY_ED25519:
        return true;
    case EVP_PKEY_RSA:
        if (EVP_PKEY_get_bits(k) >= 2048 && EVP_PKEY_get_bits(k) <= 8192)
            return true;
        snprintf(why, n, "RSA key of %d bits is not accepted (2048 to 8192)", EVP_PKEY_get_bits(k));
        return false;
    default:
        snprintf(why, n, "key type is not accepted (EC P-256/P-384, Ed25519 or RSA)");
        return false;
    }
}

int identity__csr_pubkey(const char *pem, size_t n, EVP_PKEY **out, err_detail_t *d)
{
    X509_REQ *req = NULL;
    EVP_PKEY *pub = NULL;
    BIO *bio = NULL;
    char why[128];
    int rc = 0;

    if (n == 0 || n > IDENTITY_CSR_MAX_BYTES)
        return err_set(d, ERR_IDENTITY_CSR, "CSR must be 1 to %d bytes of PEM",
                       IDENTITY_CSR_MAX_BYTES);
    ERR_clear_error();
    bio = BIO_new_mem_buf(pem, (int)n);
    if (bio == NULL) {
        rc = identity__ossl_fail(d, ERR_NOMEM, "cannot allocate");
        goto out;
    }
    req = PEM_read_bio_X509_REQ(bio, NULL, NULL, NULL);
    if (req == NULL) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CSR, "CSR is not a PEM CERTIFICATE REQUEST");
        goto out;
    }
    pub = X509_REQ_get_pubkey(req);
    if (pub == NULL) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CSR, "CSR has no usable public key");
        goto out;
    }
    if (!key_acceptable(pub, why, sizeof(why))) {
        rc = err_set(d, ERR_IDENTITY_CSR, "CSR: %s", why);
        goto out;
    }
    /* Proof of possession: the requester holds the private key of what we are asked to sign. */
    if (X509_REQ_verify(req, pub) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CSR, "CSR signature does not verify");
        goto out;
    }
    *out = pub;
    pub = NULL;
out:
    EVP_PKEY_free(pub);
    X509_REQ_free(req);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int identity__verify_chain(X509_STORE *store, X509 *leaf, STACK_OF(X509) * untrusted, int64_t at,
                           err_detail_t *d)
{
    X509_STORE_CTX *ctx;
    int rc = 0;

    ERR_clear_error();
    ctx = X509_STORE_CTX_new();
    if (ctx == NULL || X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
        rc = identity__ossl_fail(d, ERR_NOMEM, "cannot set up verification");
        goto out;
    }
    if (at != 0)
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), (time_t)at);
    if (X509_verify_cert(ctx) != 1) {
        rc = err_set(d, ERR_IDENTITY_CERT, "certificate does not verify: %s",
                     X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
        goto out;
    }
out:
    X509_STORE_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int identity__store_new(STACK_OF(X509) * roots, X509_STORE **out, err_detail_t *d)
{
    X509_STORE *st;

    ERR_clear_error();
    st = X509_STORE_new();
    if (st == NULL)
        return identity__ossl_fail(d, ERR_NOMEM, "cannot allocate a trust store");
    for (int i = 0; i < sk_X509_num(roots); i++) {
        if (X509_STORE_add_cert(st, sk_X509_value(roots, i)) != 1) {
            X509_STORE_free(st);
            return identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot add a trust anchor");
        }
    }
    *out = st;
    return 0;
}
