/* identity_svid_t: an immutable, reference-counted workload identity (key, chain, bundle, JWT). */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "identity/identity_int.h"

struct identity_svid {
    atomic_int refs;
    EVP_PKEY *key;          /* owned */
    X509 *leaf;             /* owned reference; also chain[0] */
    STACK_OF(X509) * chain; /* owned; leaf first, then intermediates */
    X509_STORE *store;      /* owned reference; the trust bundle's roots */
    spiffe_id_t id;         /* from the leaf's URI SAN */
    int64_t not_before;     /* Unix seconds */
    int64_t not_after;      /* Unix seconds */
    char serial[48];        /* lower-case hex */
    char *chain_pem;        /* owned */
    char *bundle_pem;       /* owned */
    char *jwt;              /* owned, or NULL */
    int64_t jwt_exp;        /* Unix seconds, 0 without a JWT */
    int64_t created;        /* Unix seconds when this svid was built (fetched) */
};

static void svid_free(identity_svid_t *s)
{
    EVP_PKEY_free(s->key);
    X509_free(s->leaf);
    sk_X509_pop_free(s->chain, X509_free);
    X509_STORE_free(s->store);
    mem_free(s->chain_pem);
    mem_free(s->bundle_pem);
    if (s->jwt != NULL) {
        OPENSSL_cleanse(s->jwt, strlen(s->jwt));
        mem_free(s->jwt);
    }
    mem_free(s);
}

identity_svid_t *identity_svid_ref(identity_svid_t *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void identity_svid_unref(identity_svid_t *s)
{
    if (s != NULL && atomic_fetch_sub(&s->refs, 1) == 1)
        svid_free(s);
}

int identity__svid_new(EVP_PKEY *key, const char *chain_pem, size_t chain_len,
                       const char *bundle_pem, size_t bundle_len, const char *jwt, int64_t jwt_exp,
                       bool verify_now, identity_svid_t **out, err_detail_t *d)
{
    identity_svid_t *s = mem_calloc(sizeof(*s));
    STACK_OF(X509) *roots = NULL, *untrusted = NULL;
    int rc;

    atomic_init(&s->refs, 1);
    s->key = key;
    s->created = (int64_t)time(NULL);
    rc = identity__pem_certs(chain_pem, chain_len, IDENTITY_CHAIN_MAX_CERTS, &s->chain, d);
    if (rc < 0)
        goto out;
    s->leaf = sk_X509_value(s->chain, 0);
    if (X509_up_ref(s->leaf) != 1) {
        s->leaf = NULL;
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot reference the leaf");
        goto out;
    }
    ERR_clear_error();
    if (X509_check_private_key(s->leaf, key) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CERT, "the key does not match the certificate");
        goto out;
    }
    rc = identity__cert_spiffe_id(s->leaf, &s->id, d);
    if (rc < 0)
        goto out;
    rc = identity__pem_certs(bundle_pem, bundle_len, IDENTITY_BUNDLE_MAX_CERTS, &roots, d);
    if (rc == 0)
        rc = identity__store_new(roots, &s->store, d);
    if (rc < 0)
        goto out;
    if (verify_now) {
        untrusted = sk_X509_dup(s->chain);
        if (untrusted == NULL) {
            rc = err_set(d, ERR_NOMEM, "cannot allocate");
            goto out;
        }
        (void)sk_X509_shift(untrusted);
        rc = identity__verify_chain(s->store, s->leaf, untrusted, 0, d);
        if (rc < 0)
            goto out;
    }
    s->not_before = identity__asn1_unix(X509_get0_notBefore(s->leaf));
    s->not_after = identity__asn1_unix(X509_get0_notAfter(s->leaf));
    identity__serial_hex(s->leaf, s->serial, sizeof(s->serial));
    s->chain_pem = mem_strndup(chain_pem, chain_len);
    s->bundle_pem = mem_strndup(bundle_pem, bundle_len);
    if (jwt != NULL) {
        s->jwt = mem_strdup(jwt);
        s->jwt_exp = jwt_exp;
    }
    *out = s;
    s = NULL;
out:
    sk_X509_free(untrusted);
    sk_X509_pop_free(roots, X509_free);
    if (s != NULL)
        svid_free(s);
    return rc;
}

int identity_svid_from_pem(const char *key_pem, const char *chain_pem, const char *bundle_pem,
                           identity_svid_t **out, err_detail_t *d)
{
    EVP_PKEY *key;
    BIO *bio;
    size_t n;

    if (key_pem == NULL || chain_pem == NULL || bundle_pem == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "key, chain and bundle are required");
    n = strlen(key_pem);
    if (n > IDENTITY_STATE_FILE_MAX_BYTES)
        return err_set(d, ERR_TOO_LARGE, "key PEM too large");
    ERR_clear_error();
    bio = BIO_new_mem_buf(key_pem, (int)n);
    key = bio != NULL ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (key == NULL)
        return identity__ossl_fail(d, ERR_PARSE, "bad private key PEM");
    return identity__svid_new(key, chain_pem, strlen(chain_pem), bundle_pem, strlen(bundle_pem),
                              NULL, 0, true, out, d);
}

const spiffe_id_t *identity_svid_id(const identity_svid_t *s)
{
    return &s->id;
}

int64_t identity_svid_not_before(const identity_svid_t *s)
{
    return s->not_before;
}

int64_t identity_svid_not_after(const identity_svid_t *s)
{
    return s->not_after;
}

const char *identity_svid_serial(const identity_svid_t *s)
{
    return s->serial;
}

const char *identity_svid_jwt(const identity_svid_t *s)
{
    return s->jwt;
}

int64_t identity_svid_jwt_expiry(const identity_svid_t *s)
{
    return s->jwt_exp;
}

const char *identity_svid_chain_pem(const identity_svid_t *s)
{
    return s->chain_pem;
}

const char *identity_svid_bundle_pem(const identity_svid_t *s)
{
    return s->bundle_pem;
}

EVP_PKEY *identity_svid_key(const identity_svid_t *s)
{
    return s->key;
}

X509 *identity_svid_leaf(const identity_svid_t *s)
{
    return s->leaf;
}

X509_STORE *identity_svid_store(const identity_svid_t *s)
{
    return s->store;
}

STACK_OF(X509) * identity__svid_chain(const identity_svid_t *s)
{
    return s->chain;
}

int64_t identity_svid_renew_at_ms(const identity_svid_t *s)
{
    /* Half of the lifetime, as Dapr does, but counted from when we received the certificate:
     * NotBefore is backdated by the allowed clock skew (15 min by default), and counting from it
     * would make a short-lived certificate (a 20 s test TTL) due for renewal on arrival. */
    int64_t start = s->created > s->not_before ? s->created : s->not_before;
    int64_t at = start + (s->not_after - start) / 2;

    /* A JWT is renewed at half of its remaining life when that comes first. */
    if (s->jwt != NULL && s->jwt_exp > s->created) {
        int64_t jwt_at = s->created + (s->jwt_exp - s->created) / 2;
        if (jwt_at < at)
            at = jwt_at;
    }
    return at * 1000;
}
