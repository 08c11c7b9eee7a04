/*
 * The certificate authority: one trust domain's root, issuer and JWT key in a state dir, the
 * published trust bundle and JWT keys, root rotation, and signing.
 *
 * State dir layout (all written atomically; the dir is 0700):
 *   ca.pem        0600  the active generation: root cert, issuer cert, root key, issuer key,
 *                       JWT key, in that order
 *   ca-next.pem   0600  a staged generation (rotate-root), same layout; absent normally
 *   bundle.pem    0644  every trusted root (CERTIFICATE blocks)
 *   jwt-keys.pem  0644  every published JWT verification key (PUBLIC KEY blocks)
 *   ca.lock             flock held while any of the above is read or changed
 * Loading repairs the published files: the active and staged roots and JWT keys are always in
 * them, so a crash between two writes never leaves a generation that peers cannot verify.
 */
#include <errno.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "identity/identity_int.h"

#define CA_FILE "ca.pem"
#define CA_NEXT_FILE "ca-next.pem"
#define BUNDLE_FILE "bundle.pem"
#define JWT_KEYS_FILE "jwt-keys.pem"
#define LOCK_FILE "ca.lock"

/* CA certificates are backdated by this much so that peers whose clocks lag still accept a CA
 * made a moment ago. */
#define CA_BACKDATE_S 3600

/* Everything in a state dir, read under the lock. */
typedef struct ca_state {
    identity__gen_t active;
    identity__gen_t next; /* valid when has_next */
    bool has_next;
    STACK_OF(X509) * roots;                        /* bundle.pem */
    EVP_PKEY *jwt_pubs[IDENTITY_BUNDLE_MAX_CERTS]; /* jwt-keys.pem */
    size_t jwt_count;
} ca_state_t;

static void gen_free(identity__gen_t *g)
{
    X509_free(g->root);
    EVP_PKEY_free(g->root_key);
    X509_free(g->issuer);
    EVP_PKEY_free(g->issuer_key);
    EVP_PKEY_free(g->jwt_key);
    memset(g, 0, sizeof(*g));
}

static void state_free(ca_state_t *st)
{
    gen_free(&st->active);
    gen_free(&st->next);
    sk_X509_pop_free(st->roots, X509_free);
    for (size_t i = 0; i < st->jwt_count; i++)
        EVP_PKEY_free(st->jwt_pubs[i]);
    memset(st, 0, sizeof(*st));
}

/* Adds one extension written in OpenSSL's configuration syntax (fixed strings only). */
static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    int ok;

    if (ext == NULL)
        return ERR_IDENTITY_CRYPTO;
    ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : ERR_IDENTITY_CRYPTO;
}

/* Adds one GeneralName of @p type holding @p value (an IA5 string, or for GEN_IPADD the text
 * form of an address). */
static int push_name(GENERAL_NAMES *gens, int type, const char *value)
{
    GENERAL_NAME *gn = GENERAL_NAME_new();
    ASN1_STRING *s = NULL;

    if (gn == NULL)
        return ERR_NOMEM;
    if (type == GEN_IPADD) {
        s = a2i_IPADDRESS(value);
    } else {
        s = ASN1_IA5STRING_new();
        if (s != NULL && ASN1_STRING_set(s, value, (int)strlen(value)) != 1) {
            ASN1_STRING_free(s);
            s = NULL;
        }
    }
    if (s == NULL) {
        GENERAL_NAME_free(gn);
        return ERR_INVAL;
    }
    GENERAL_NAME_set0_value(gn, type, s);
    if (sk_GENERAL_NAME_push(gens, gn) <= 0) {
        GENERAL_NAME_free(gn);
        return ERR_NOMEM;
    }
    return 0;
}

/* Adds the subjectAltName: @p uri plus DNS names and IP addresses. RFC 5280 §4.2.1.6 requires it
 * to be critical when the subject is empty. */
static int add_sans(X509 *x, const char *uri, const char *const *dns, size_t dns_count,
                    const char *const *ips, size_t ip_count, bool critical)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    int rc = gens == NULL ? ERR_NOMEM : 0;

    if (rc == 0)
        rc = push_name(gens, GEN_URI, uri);
    for (size_t i = 0; rc == 0 && i < dns_count; i++)
        rc = push_name(gens, GEN_DNS, dns[i]);
    for (size_t i = 0; rc == 0 && i < ip_count; i++)
        rc = push_name(gens, GEN_IPADD, ips[i]);
    if (rc == 0 &&
        X509_add1_ext_i2d(x, NID_subject_alt_name, gens, critical ? 1 : 0, X509V3_ADD_DEFAULT) != 1)
        rc = ERR_IDENTITY_CRYPTO;
    GENERAL_NAMES_free(gens);
    return rc;
}

/* Gives @p x a uniformly random positive 128-bit serial (CA/B BR §7.1 asks for ≥ 64 bits of
 * randomness; Dapr uses 128). */
static int random_serial(X509 *x)
{
    unsigned char raw[16];
    BIGNUM *bn = NULL;
    int rc = ERR_IDENTITY_CRYPTO;

    do {
        if (RAND_bytes(raw, sizeof(raw)) != 1)
            return ERR_IDENTITY_CRYPTO;
        BN_free(bn);
        bn = BN_bin2bn(raw, sizeof(raw), NULL);
    } while (bn != NULL && BN_is_zero(bn));
    if (bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL)
        rc = 0;
    BN_free(bn);
    return rc;
}

static int set_times(X509 *x, int64_t not_before, int64_t not_after)
{
    if (ASN1_TIME_set(X509_getm_notBefore(x), (time_t)not_before) == NULL ||
        ASN1_TIME_set(X509_getm_notAfter(x), (time_t)not_after) == NULL)
        return ERR_IDENTITY_CRYPTO;
    return 0;
}

/* Makes a CA certificate: a self-signed root when @p signer is NULL, else an issuer (pathlen 0)
 * signed by @p signer / @p signer_key. Its subject is "O=<td>, CN=Outrigger <role> <tag>" so that
 * the roots of different generations never share a name. */
static int make_ca_cert(const char *td, const char *role, const char *tag, EVP_PKEY *key,
                        X509 *signer, EVP_PKEY *signer_key, int64_t now, X509 **out,
                        err_detail_t *d)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    X509V3_CTX ctx;
    char cn[96], uri[IDENTITY_URI_MAX];
    int rc = 0;

    snprintf(cn, sizeof(cn), "Outrigger %s %s", role, tag);
    snprintf(uri, sizeof(uri), "spiffe://%s", td);
    if (x == NULL || name == NULL ||
        X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *)td, -1, -1,
                                   0) != 1 ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_version(x, X509_VERSION_3) != 1 || random_serial(x) < 0 ||
        X509_set_subject_name(x, name) != 1 ||
        X509_set_issuer_name(x, signer ? X509_get_subject_name(signer) : name) != 1 ||
        set_times(x, now - CA_BACKDATE_S, now + IDENTITY_CA_TTL_S) < 0 ||
        X509_set_pubkey(x, key) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot build a CA certificate");
        goto out;
    }
    X509V3_set_ctx(&ctx, signer ? signer : x, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints,
                signer ? "critical,CA:TRUE,pathlen:0" : "critical,CA:TRUE") < 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        (signer != NULL && add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0) ||
        /* SPIFFE X.509-SVID §4.1: a signing certificate may carry the trust domain's ID. */
        add_sans(x, uri, NULL, 0, NULL, 0, false) < 0 ||
        X509_sign(x, signer_key ? signer_key : key, EVP_sha256()) <= 0) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot sign a CA certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    X509_NAME_free(name);
    X509_free(x);
    return rc;
}

/* Makes a fresh generation for @p td. */
static int gen_new(const char *td, identity__gen_t *g, err_detail_t *d)
{
    unsigned char raw[4];
    char tag[9];
    int64_t now = (int64_t)time(NULL);
    int rc;

    memset(g, 0, sizeof(*g));
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "no randomness");
    snprintf(tag, sizeof(tag), "%02x%02x%02x%02x", raw[0], raw[1], raw[2], raw[3]);
    rc = identity__key_new(&g->root_key, d);
    if (rc == 0)
        rc = make_ca_cert(td, "root", tag, g->root_key, NULL, NULL, now, &g->root, d);
    if (rc == 0)
        rc = identity__key_new(&g->issuer_key, d);
    if (rc == 0)
        rc = make_ca_cert(td, "issuer", tag, g->issuer_key, g->root, g->root_key, now, &g->issuer,
                          d);
    if (rc == 0)
        rc = identity__key_new(&g->jwt_key, d);
    if (rc == 0)
        rc = identity__jwk_kid(g->jwt_key, g->jwt_kid, sizeof(g->jwt_kid), d);
    if (rc < 0)
        gen_free(g);
    return rc;
}

static int gen_write(const char *path, const identity__gen_t *g, err_detail_t *d)
{
    buf_t b;
    int rc;

    buf_init(&b, IDENTITY_STATE_FILE_MAX_BYTES);
    rc = identity__pem_put_cert(&b, g->root);
    if (rc == 0)
        rc = identity__pem_put_cert(&b, g->issuer);
    if (rc == 0)
        rc = identity__pem_put_key(&b, g->root_key);
    if (rc == 0)
        rc = identity__pem_put_key(&b, g->issuer_key);
    if (rc == 0)
        rc = identity__pem_put_key(&b, g->jwt_key);
    if (rc < 0)
        rc = err_set(d, rc, "cannot encode the CA");
    else
        rc = identity__file_write(path, b.ptr, b.len, 0600, d);
    if (b.ptr != NULL)
        OPENSSL_cleanse(b.ptr, b.len);
    buf_free(&b);
    return rc;
}

/* True when @p x carries the URI SAN "spiffe://<td>". */
static bool has_td_uri(X509 *x, const char *td)
{
    GENERAL_NAMES *sans = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    char want[IDENTITY_URI_MAX];
    bool found = false;
    int n = snprintf(want, sizeof(want), "spiffe://%s", td);

    for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
        if (gn->type == GEN_URI && ASN1_STRING_length(gn->d.uniformResourceIdentifier) == n &&
            memcmp(ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier), want, (size_t)n) == 0)
            found = true;
    }
    GENERAL_NAMES_free(sans);
    ERR_clear_error();
    return found;
}

/* Reads and checks one generation file: the issuer is signed by the root, each key matches its
 * certificate, the root belongs to @p td, the JWT key is P-256. */
static int gen_read(const char *path, const char *td, identity__gen_t *g, err_detail_t *d)
{
    buf_t b;
    BIO *bio = NULL;
    int rc;

    memset(g, 0, sizeof(*g));
    rc = identity__file_read(path, IDENTITY_STATE_FILE_MAX_BYTES, &b, d);
    if (rc < 0)
        return rc;
    ERR_clear_error();
    bio = BIO_new_mem_buf(b.ptr, (int)b.len);
    if (bio == NULL) {
        rc = identity__ossl_fail(d, ERR_NOMEM, "cannot allocate");
        goto out;
    }
    g->root = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    g->issuer = g->root ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    g->root_key = g->issuer ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    g->issuer_key = g->root_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    g->jwt_key = g->issuer_key ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    if (g->jwt_key == NULL) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CA, "damaged CA file");
        goto out;
    }
    if (X509_check_private_key(g->root, g->root_key) != 1 ||
        X509_check_private_key(g->issuer, g->issuer_key) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CA, "a CA key does not match its certificate");
        goto out;
    }
    if (X509_verify(g->root, X509_get0_pubkey(g->root)) != 1 ||
        X509_verify(g->issuer, X509_get0_pubkey(g->root)) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CA, "the issuer is not signed by the root");
        goto out;
    }
    if (!has_td_uri(g->root, td)) {
        rc = err_set(d, ERR_IDENTITY_CA, "the CA does not belong to trust domain \"%s\"", td);
        goto out;
    }
    if (EVP_PKEY_get_base_id(g->jwt_key) != EVP_PKEY_EC) {
        rc = err_set(d, ERR_IDENTITY_CA, "the JWT key is not an EC key");
        goto out;
    }
    rc = identity__jwk_kid(g->jwt_key, g->jwt_kid, sizeof(g->jwt_kid), d);
out:
    if (rc < 0) {
        char msg[sizeof(d->msg)];
        if (d != NULL) {
            snprintf(msg, sizeof(msg), "%s", d->msg);
            err_set(d, rc, "%s: %s", path, msg);
        }
        gen_free(g);
    }
    BIO_free(bio);
    if (b.ptr != NULL)
        OPENSSL_cleanse(b.ptr, b.len);
    buf_free(&b);
    ERR_clear_error();
    return rc;
}

/* Reads bundle.pem and jwt-keys.pem into @p st (missing files are empty). */
static int published_read(const char *dir, ca_state_t *st, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX];
    buf_t b;
    BIO *bio = NULL;
    EVP_PKEY *k;
    unsigned long e;
    int rc;

    st->roots = NULL;
    if (identity__path(path, sizeof(path), dir, BUNDLE_FILE) < 0)
        return err_set(d, ERR_TOO_LARGE, "state dir path too long");
    rc = identity__file_read(path, IDENTITY_STATE_FILE_MAX_BYTES, &b, d);
    if (rc == ERR_NOT_FOUND || (rc == 0 && b.len == 0)) {
        st->roots = sk_X509_new_null();
        rc = st->roots ? 0 : ERR_NOMEM;
    } else if (rc == 0) {
        rc = identity__pem_certs(b.ptr, b.len, IDENTITY_BUNDLE_MAX_CERTS, &st->roots, d);
    }
    buf_free(&b);
    if (rc < 0)
        return rc;
    if (identity__path(path, sizeof(path), dir, JWT_KEYS_FILE) < 0)
        return err_set(d, ERR_TOO_LARGE, "state dir path too long");
    rc = identity__file_read(path, IDENTITY_STATE_FILE_MAX_BYTES, &b, d);
    if (rc == ERR_NOT_FOUND)
        return 0;
    if (rc < 0)
        return rc;
    ERR_clear_error();
    bio = BIO_new_mem_buf(b.ptr, (int)b.len);
    /* Block by block with the generic reader: its end-of-input error is stable across OpenSSL
     * versions, unlike the decoder-based PEM_read_bio_PUBKEY's. */
    while (rc == 0 && bio != NULL) {
        char *name = NULL, *header = NULL;
        unsigned char *data = NULL;
        const unsigned char *q;
        long len = 0;

        if (PEM_read_bio(bio, &name, &header, &data, &len) != 1) {
            e = ERR_peek_last_error();
            if (!(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE))
                rc = identity__ossl_fail(d, ERR_IDENTITY_CA, "damaged jwt-keys.pem");
            break;
        }
        q = data;
        k = strcmp(name, "PUBLIC KEY") == 0 ? d2i_PUBKEY(NULL, &q, len) : NULL;
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        if (k == NULL) {
            rc = identity__ossl_fail(d, ERR_IDENTITY_CA, "damaged jwt-keys.pem");
        } else if (st->jwt_count >= IDENTITY_BUNDLE_MAX_CERTS) {
            EVP_PKEY_free(k);
            rc =
                err_set(d, ERR_TOO_LARGE, "%s: more than %d keys", path, IDENTITY_BUNDLE_MAX_CERTS);
        } else {
            st->jwt_pubs[st->jwt_count++] = k;
        }
    }
    ERR_clear_error();
    BIO_free(bio);
    buf_free(&b);
    return rc;
}

/* Adds the root of @p g to the bundle and its JWT key to the published keys when missing.
 * Returns 1 when something was added, 0 when not, or a negative code. */
static int publish_gen(ca_state_t *st, const identity__gen_t *g)
{
    bool root_found = false, key_found = false;
    int added = 0;

    for (int i = 0; i < sk_X509_num(st->roots); i++)
        root_found |= X509_cmp(sk_X509_value(st->roots, i), g->root) == 0;
    for (size_t i = 0; i < st->jwt_count; i++)
        key_found |= EVP_PKEY_eq(st->jwt_pubs[i], g->jwt_key) == 1;
    ERR_clear_error();
    if (!root_found) {
        if (sk_X509_num(st->roots) >= IDENTITY_BUNDLE_MAX_CERTS)
            return ERR_TOO_LARGE;
        if (X509_up_ref(g->root) != 1)
            return ERR_IDENTITY_CRYPTO;
        if (sk_X509_push(st->roots, g->root) <= 0) {
            X509_free(g->root);
            return ERR_NOMEM;
        }
        added = 1;
    }
    if (!key_found) {
        if (st->jwt_count >= IDENTITY_BUNDLE_MAX_CERTS)
            return ERR_TOO_LARGE;
        if (EVP_PKEY_up_ref(g->jwt_key) != 1)
            return ERR_IDENTITY_CRYPTO;
        st->jwt_pubs[st->jwt_count++] = g->jwt_key;
        added = 1;
    }
    return added;
}

/* Writes bundle.pem and jwt-keys.pem from @p st. */
static int published_write(const char *dir, const ca_state_t *st, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX];
    buf_t b;
    int rc = 0;

    buf_init(&b, IDENTITY_STATE_FILE_MAX_BYTES);
    for (int i = 0; rc == 0 && i < sk_X509_num(st->roots); i++)
        rc = identity__pem_put_cert(&b, sk_X509_value(st->roots, i));
    if (rc == 0 && identity__path(path, sizeof(path), dir, BUNDLE_FILE) < 0)
        rc = ERR_TOO_LARGE;
    if (rc == 0)
        rc = identity__file_write(path, b.ptr, b.len, 0644, d);
    buf_free(&b);
    for (size_t i = 0; rc == 0 && i < st->jwt_count; i++)
        rc = identity__pem_put_pubkey(&b, st->jwt_pubs[i]);
    if (rc == 0 && identity__path(path, sizeof(path), dir, JWT_KEYS_FILE) < 0)
        rc = ERR_TOO_LARGE;
    if (rc == 0)
        rc = identity__file_write(path, b.ptr, b.len, 0644, d);
    buf_free(&b);
    if (rc < 0 && d != NULL && d->msg[0] == '\0')
        err_set(d, rc, "cannot write the trust bundle");
    return rc;
}

/*
 * Reads the whole state of @p dir (the caller holds the lock):
 *  1. creates ca.pem with a first generation when there is none and @p create is set;
 *  2. reads the active and (if present) staged generations;
 *  3. reads the published roots and JWT keys and adds the generations' own when missing.
 */
static int state_load(const char *dir, const char *td, bool create, ca_state_t *st, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX];
    int rc, added;

    memset(st, 0, sizeof(*st));
    if (identity__path(path, sizeof(path), dir, CA_FILE) < 0)
        return err_set(d, ERR_TOO_LARGE, "state dir path too long");
    if (access(path, F_OK) < 0 && errno == ENOENT) {
        if (!create)
            return err_set(d, ERR_IDENTITY_CA, "no CA in %s", dir);
        rc = gen_new(td, &st->active, d);
        if (rc == 0)
            rc = gen_write(path, &st->active, d);
        if (rc < 0)
            goto out;
        log_info("identity", "created a CA for trust domain \"%s\" in %s", td, dir);
    } else {
        rc = gen_read(path, td, &st->active, d);
        if (rc < 0)
            goto out;
    }
    if (identity__path(path, sizeof(path), dir, CA_NEXT_FILE) < 0) {
        rc = err_set(d, ERR_TOO_LARGE, "state dir path too long");
        goto out;
    }
    rc = gen_read(path, td, &st->next, d);
    if (rc == ERR_NOT_FOUND) {
        rc = 0;
    } else if (rc < 0) {
        goto out;
    } else {
        st->has_next = true;
    }
    rc = published_read(dir, st, d);
    if (rc < 0)
        goto out;
    added = publish_gen(st, &st->active);
    if (added >= 0 && st->has_next) {
        int more = publish_gen(st, &st->next);
        added = more < 0 ? more : added | more;
    }
    if (added < 0) {
        rc = err_set(d, added, "cannot publish the CA's root");
        goto out;
    }
    if (added > 0)
        rc = published_write(dir, st, d);
out:
    if (rc < 0)
        state_free(st);
    return rc;
}

/* Takes the CA lock of @p dir, creating the dir when needed. */
static int lock_dir(const char *dir, int *fd, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX];
    int rc = identity__mkdir_private(dir, d);

    if (rc < 0)
        return rc;
    if (identity__path(path, sizeof(path), dir, LOCK_FILE) < 0)
        return err_set(d, ERR_TOO_LARGE, "state dir path too long");
    return identity__lock(path, true, fd, d);
}

static void stamp_files(identity__ca_t *ca)
{
    static const char *const names[3] = {CA_FILE, BUNDLE_FILE, JWT_KEYS_FILE};
    char path[IDENTITY_PATH_MAX];

    for (int i = 0; i < 3; i++) {
        memset(&ca->stamps[i], 0, sizeof(ca->stamps[i]));
        if (identity__path(path, sizeof(path), ca->state_dir, names[i]) == 0)
            identity__stamp(path, &ca->stamps[i]);
    }
}

bool identity__ca_changed(const identity__ca_t *ca)
{
    static const char *const names[3] = {CA_FILE, BUNDLE_FILE, JWT_KEYS_FILE};
    char path[IDENTITY_PATH_MAX];
    identity__stamp_t now;

    for (int i = 0; i < 3; i++) {
        if (identity__path(path, sizeof(path), ca->state_dir, names[i]) < 0)
            return false;
        identity__stamp(path, &now);
        if (!identity__stamp_eq(&now, &ca->stamps[i]))
            return true;
    }
    return false;
}

/* Checks the trust domain for use in file contents and IDs. */
static int check_td(const char *td, err_detail_t *d)
{
    char uri[IDENTITY_URI_MAX];

    if (td == NULL || spiffe_id_format(td, "x", "x", uri, sizeof(uri)) < 0)
        return err_set(d, ERR_INVAL, "invalid trust domain \"%s\"", td ? td : "(null)");
    return 0;
}

/* Checks @p td, takes the state dir's lock (*@p fd, released by identity__unlock) and loads the
 * state (creating it when @p create). On failure *@p fd may hold the lock: release it. */
static int lock_and_load(const char *dir, const char *td, bool create, int *fd, ca_state_t *st,
                         err_detail_t *d)
{
    int rc = check_td(td, d);
    if (rc == 0)
        rc = lock_dir(dir, fd, d);
    if (rc == 0)
        rc = state_load(dir, td, create, st, d);
    return rc;
}

int identity__ca_open(const char *state_dir, const char *trust_domain, identity__ca_t **out,
                      err_detail_t *d)
{
    identity__ca_t *ca = NULL;
    ca_state_t st;
    buf_t b;
    int fd = -1, rc;

    memset(&st, 0, sizeof(st));
    buf_init(&b, IDENTITY_STATE_FILE_MAX_BYTES);
    rc = lock_and_load(state_dir, trust_domain, true, &fd, &st, d);
    if (rc < 0)
        goto out;
    ca = mem_calloc(sizeof(*ca));
    ca->state_dir = mem_strdup(state_dir);
    ca->trust_domain = mem_strdup(trust_domain);
    ca->active = st.active;
    memset(&st.active, 0, sizeof(st.active));
    ca->bundle = st.roots;
    st.roots = NULL;
    for (int i = 0; rc == 0 && i < sk_X509_num(ca->bundle); i++)
        rc = identity__pem_put_cert(&b, sk_X509_value(ca->bundle, i));
    if (rc < 0) {
        rc = err_set(d, rc, "cannot encode the trust bundle");
        goto out;
    }
    ca->bundle_pem = buf_take(&b);
    rc = identity__jwks_render(st.jwt_pubs, st.jwt_count, &b, d);
    if (rc < 0)
        goto out;
    ca->jwks_json = buf_take(&b);
    stamp_files(ca);
    {
        int64_t left = identity__asn1_unix(X509_get0_notAfter(ca->active.issuer)) - time(NULL);
        if (left < IDENTITY_CA_WARN_S)
            log_warn("identity", "the CA in %s expires in %lld days; rotate the root", state_dir,
                     (long long)(left / 86400));
    }
    *out = ca;
    ca = NULL;
out:
    identity__ca_free(ca);
    state_free(&st);
    buf_free(&b);
    identity__unlock(fd);
    return rc;
}

void identity__ca_free(identity__ca_t *ca)
{
    if (ca == NULL)
        return;
    gen_free(&ca->active);
    sk_X509_pop_free(ca->bundle, X509_free);
    mem_free(ca->bundle_pem);
    mem_free(ca->jwks_json);
    mem_free(ca->state_dir);
    mem_free(ca->trust_domain);
    mem_free(ca);
}

int identity__ca_sign(const identity__ca_t *ca, EVP_PKEY *pub, const identity__profile_t *p,
                      X509 **out, err_detail_t *d)
{
    X509 *x = NULL;
    X509V3_CTX ctx;
    int64_t not_after = p->not_after;
    int64_t issuer_end = identity__asn1_unix(X509_get0_notAfter(ca->active.issuer));
    int rc = 0;

    if (p->uri == NULL)
        return err_set(d, ERR_INVAL, "no URI SAN");
    /* A leaf must not outlive the issuer that vouches for it. */
    if (not_after > issuer_end)
        not_after = issuer_end;
    if (not_after <= p->not_before)
        return err_set(d, ERR_IDENTITY_CA, "the issuing CA expires too soon; rotate the root");
    ERR_clear_error();
    x = X509_new();
    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1 || random_serial(x) < 0 ||
        X509_set_issuer_name(x, X509_get_subject_name(ca->active.issuer)) != 1 ||
        set_times(x, p->not_before, not_after) < 0 || X509_set_pubkey(x, pub) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot build the certificate");
        goto out;
    }
    X509V3_set_ctx(&ctx, ca->active.issuer, x, NULL, NULL, 0);
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") < 0 ||
        add_ext(x, &ctx, NID_ext_key_usage,
                p->client_auth ? "serverAuth,clientAuth" : "serverAuth") < 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") < 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") < 0) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot add certificate extensions");
        goto out;
    }
    rc = add_sans(x, p->uri, p->dns, p->dns_count, p->ips, p->ip_count, true);
    if (rc < 0) {
        rc = identity__ossl_fail(d, rc == ERR_INVAL ? ERR_INVAL : ERR_IDENTITY_CRYPTO,
                                 "cannot add the subjectAltName");
        goto out;
    }
    if (X509_sign(x, ca->active.issuer_key, EVP_sha256()) <= 0) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot sign the certificate");
        goto out;
    }
    *out = x;
    x = NULL;
out:
    X509_free(x);
    ERR_clear_error();
    return rc;
}

int identity__ca_chain_pem(const identity__ca_t *ca, X509 *leaf, buf_t *out)
{
    int rc = identity__pem_put_cert(out, leaf);

    if (rc == 0)
        rc = identity__pem_put_cert(out, ca->active.issuer);
    return rc;
}

int identity_ca_stage_root(const char *state_dir, const char *trust_domain, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX];
    ca_state_t st;
    int fd = -1, rc;

    memset(&st, 0, sizeof(st));
    rc = lock_and_load(state_dir, trust_domain, true, &fd, &st, d);
    if (rc < 0)
        goto out;
    if (st.has_next) {
        rc = err_set(d, ERR_IDENTITY_CA,
                     "a staged root already exists; activate it first (activate-root)");
        goto out;
    }
    rc = gen_new(trust_domain, &st.next, d);
    if (rc < 0)
        goto out;
    st.has_next = true;
    if (identity__path(path, sizeof(path), state_dir, CA_NEXT_FILE) < 0) {
        rc = err_set(d, ERR_TOO_LARGE, "state dir path too long");
        goto out;
    }
    /* The published files first: once ca-next.pem exists it may be activated, and then its root
     * must already be trusted everywhere. (state_load would repair the order, but only when it
     * runs.) */
    rc = publish_gen(&st, &st.next);
    if (rc < 0) {
        rc = err_set(d, rc, "cannot add the new root to the trust bundle");
        goto out;
    }
    rc = published_write(state_dir, &st, d);
    if (rc == 0)
        rc = gen_write(path, &st.next, d);
    if (rc == 0)
        log_info("identity", "staged a new root for \"%s\" in %s", trust_domain, state_dir);
out:
    state_free(&st);
    identity__unlock(fd);
    return rc;
}

int identity_ca_activate_root(const char *state_dir, const char *trust_domain, err_detail_t *d)
{
    char from[IDENTITY_PATH_MAX], to[IDENTITY_PATH_MAX];
    ca_state_t st;
    int fd = -1, rc;

    memset(&st, 0, sizeof(st));
    /* state_load has made sure the staged root is in the bundle before we switch to it. */
    rc = lock_and_load(state_dir, trust_domain, false, &fd, &st, d);
    if (rc < 0)
        goto out;
    if (!st.has_next) {
        rc = err_set(d, ERR_IDENTITY_CA, "no staged root; run rotate-root first");
        goto out;
    }
    if (identity__path(from, sizeof(from), state_dir, CA_NEXT_FILE) < 0 ||
        identity__path(to, sizeof(to), state_dir, CA_FILE) < 0) {
        rc = err_set(d, ERR_TOO_LARGE, "state dir path too long");
        goto out;
    }
    if (rename(from, to) < 0) {
        rc = err_set(d, ERR_IO, "cannot rename %s to %s: %s", from, to, strerror(errno));
        goto out;
    }
    log_info("identity", "activated the staged root for \"%s\" in %s", trust_domain, state_dir);
out:
    state_free(&st);
    identity__unlock(fd);
    return rc;
}

int identity_ca_prune_roots(const char *state_dir, const char *trust_domain, err_detail_t *d)
{
    ca_state_t st;
    STACK_OF(X509) *keep = NULL;
    int fd = -1, rc, removed = 0;

    memset(&st, 0, sizeof(st));
    rc = lock_and_load(state_dir, trust_domain, false, &fd, &st, d);
    if (rc < 0)
        goto out;
    removed = sk_X509_num(st.roots);
    /* Rebuild both published lists from the generations that still exist. */
    sk_X509_pop_free(st.roots, X509_free);
    for (size_t i = 0; i < st.jwt_count; i++)
        EVP_PKEY_free(st.jwt_pubs[i]);
    st.jwt_count = 0;
    st.roots = keep = sk_X509_new_null();
    if (keep == NULL) {
        rc = err_set(d, ERR_NOMEM, "cannot allocate");
        goto out;
    }
    rc = publish_gen(&st, &st.active);
    if (rc >= 0 && st.has_next)
        rc = publish_gen(&st, &st.next);
    if (rc < 0) {
        rc = err_set(d, rc, "cannot rebuild the trust bundle");
        goto out;
    }
    removed -= sk_X509_num(st.roots);
    rc = published_write(state_dir, &st, d);
    if (rc == 0)
        log_info("identity", "pruned %d root(s) from the trust bundle in %s",
                 removed > 0 ? removed : 0, state_dir);
out:
    state_free(&st);
    identity__unlock(fd);
    return rc < 0 ? rc : (removed > 0 ? removed : 0);
}
