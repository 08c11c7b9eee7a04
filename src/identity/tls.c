/*
 * TLS 1.3 contexts for the sidecar-to-sidecar hop: both sides present SVIDs, both verify the
 * peer's chain against the trust bundle, and a verify callback insists on exactly one valid SPIFFE
 * ID in the peer's leaf (and, on a client, on the ID the caller expected). Client contexts keep
 * session tickets per peer so that pooled reconnects resume instead of doing a full handshake.
 */
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "identity/identity_int.h"

/* Per-SSL state, attached as ex_data: what the caller expects, the cache key, and why the verify
 * callback refused (OpenSSL only keeps a numeric code). */
typedef struct tls_ex {
    spiffe_id_t expected; /* valid when has_expected */
    bool has_expected;
    char key[IDENTITY_SESSION_KEY_MAX]; /* session cache key; empty = no caching */
    char reason[256];                   /* the verify callback's refusal, or empty */
} tls_ex_t;

typedef struct session_slot {
    char key[IDENTITY_SESSION_KEY_MAX]; /* empty = free */
    SSL_SESSION *sess;                  /* owned reference */
    uint64_t used;                      /* tick of the last store, for eviction */
} session_slot_t;

/* Per-SSL_CTX client session cache, attached as ex_data and freed with the context. */
typedef struct session_cache {
    pthread_mutex_t mu;
    uint64_t tick;
    session_slot_t slots[IDENTITY_SESSION_SLOTS];
} session_cache_t;

static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static int ssl_ex_idx = -1;
static int ctx_ex_idx = -1;

static void ssl_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    mem_free(ptr);
}

static void ctx_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    session_cache_t *c = ptr;

    (void)parent;
    (void)ad;
    (void)idx;
    (void)argl;
    (void)argp;
    if (c == NULL)
        return;
    for (size_t i = 0; i < IDENTITY_SESSION_SLOTS; i++)
        SSL_SESSION_free(c->slots[i].sess);
    pthread_mutex_destroy(&c->mu);
    mem_free(c);
}

static void ex_init(void)
{
    ssl_ex_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, ssl_ex_free);
    ctx_ex_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, ctx_ex_free);
}

/* The per-SSL state, created on first use. NULL only when OpenSSL cannot store it. */
static tls_ex_t *ssl_ex(SSL *ssl)
{
    tls_ex_t *ex;

    pthread_once(&ex_once, ex_init);
    if (ssl_ex_idx < 0)
        return NULL;
    ex = SSL_get_ex_data(ssl, ssl_ex_idx);
    if (ex != NULL)
        return ex;
    ex = mem_calloc(sizeof(*ex));
    if (SSL_set_ex_data(ssl, ssl_ex_idx, ex) != 1) {
        mem_free(ex);
        ERR_clear_error();
        return NULL;
    }
    return ex;
}

static bool id_matches(const spiffe_id_t *want, const spiffe_id_t *got)
{
    /* Dapr's client authorises /ns/<ns>/<app> in any trust domain of the bundle; a caller that
     * knows the trust domain can pin it too. */
    if (want->trust_domain[0] != '\0' && strcmp(want->trust_domain, got->trust_domain) != 0)
        return false;
    return strcmp(want->ns, got->ns) == 0 && strcmp(want->app_id, got->app_id) == 0;
}

/* Runs after OpenSSL's own checks of each certificate; only the leaf (depth 0) is ours to judge:
 * exactly one valid SPIFFE ID, and the expected one when the caller said which. */
static int verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl;
    tls_ex_t *ex;
    spiffe_id_t id;
    err_detail_t d = {""};

    if (!ok || X509_STORE_CTX_get_error_depth(xs) != 0)
        return ok;
    ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    /* Servers have no per-SSL state unless a refusal must be explained: accepted connections
     * cost no extra memory. */
    ex = ssl != NULL && ssl_ex_idx >= 0 ? SSL_get_ex_data(ssl, ssl_ex_idx) : NULL;
    if (identity__cert_spiffe_id(X509_STORE_CTX_get_current_cert(xs), &id, &d) < 0)
        goto refuse;
    if (ex != NULL && ex->has_expected && !id_matches(&ex->expected, &id)) {
        snprintf(d.msg, sizeof(d.msg), "peer is %.100s, expected namespace %.40s app %.64s", id.uri,
                 ex->expected.ns, ex->expected.app_id);
        goto refuse;
    }
    return 1;
refuse:
    ex = ssl != NULL ? ssl_ex(ssl) : NULL;
    if (ex != NULL)
        snprintf(ex->reason, sizeof(ex->reason), "%s", d.msg);
    X509_STORE_CTX_set_error(xs, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

int identity__tls_ctx_setup(SSL_CTX *ctx, X509_STORE *store, bool server, err_detail_t *d)
{
    ERR_clear_error();
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        SSL_CTX_set1_verify_cert_store(ctx, store) != 1)
        return identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot configure TLS");
    SSL_CTX_set_verify(ctx,
                       server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER,
                       verify_cb);
    /* Leaf + issuer: no longer chain is ever valid here. */
    SSL_CTX_set_verify_depth(ctx, 4);
    return 0;
}

int identity__tls_expect(SSL *ssl, const spiffe_id_t *expected)
{
    tls_ex_t *ex = ssl_ex(ssl);

    if (ex == NULL)
        return ERR_NOMEM;
    ex->expected = *expected;
    ex->has_expected = true;
    return 0;
}

/*
 * Stores a copy of a ticket the server sent (TLS 1.3 sends them after the handshake). Always
 * returns 0: OpenSSL keeps and drops its own reference. A copy, because OpenSSL marks the
 * session attached to a connection as not resumable when that connection ends without a
 * close_notify — pooled connections often just close — and that must not spoil the cache.
 */
static int on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    session_cache_t *c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_ex_idx);
    tls_ex_t *ex = SSL_get_ex_data(ssl, ssl_ex_idx);
    session_slot_t *slot = NULL;
    SSL_SESSION *copy;

    if (c == NULL || ex == NULL || ex->key[0] == '\0')
        return 0;
    copy = SSL_SESSION_dup(sess);
    if (copy == NULL) {
        ERR_clear_error();
        return 0;
    }
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < IDENTITY_SESSION_SLOTS && slot == NULL; i++) {
        if (strcmp(c->slots[i].key, ex->key) == 0)
            slot = &c->slots[i];
    }
    /* Otherwise a free slot, else the least recently stored one. */
    for (size_t i = 0; i < IDENTITY_SESSION_SLOTS && slot == NULL; i++) {
        if (c->slots[i].key[0] == '\0')
            slot = &c->slots[i];
    }
    if (slot == NULL) {
        slot = &c->slots[0];
        for (size_t i = 1; i < IDENTITY_SESSION_SLOTS; i++) {
            if (c->slots[i].used < slot->used)
                slot = &c->slots[i];
        }
    }
    SSL_SESSION_free(slot->sess);
    slot->sess = copy;
    memcpy(slot->key, ex->key, sizeof(slot->key));
    slot->used = ++c->tick;
    pthread_mutex_unlock(&c->mu);
    return 0;
}

/* Builds a context for @p svid: TLS 1.3, our certificate and chain, peer verification. */
static int ctx_new(const identity_svid_t *svid, bool server, SSL_CTX **out, err_detail_t *d)
{
    STACK_OF(X509) * all;
    session_cache_t *cache = NULL;
    SSL_CTX *ctx;
    int rc;

    if (svid == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "no svid");
    pthread_once(&ex_once, ex_init);
    if (ssl_ex_idx < 0 || ctx_ex_idx < 0)
        return err_set(d, ERR_NOMEM, "cannot register TLS state");
    ERR_clear_error();
    ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (ctx == NULL)
        return identity__ossl_fail(d, ERR_NOMEM, "cannot create a TLS context");
    rc = identity__tls_ctx_setup(ctx, identity_svid_store(svid), server, d);
    if (rc < 0)
        goto out;
    ERR_clear_error();
    if (SSL_CTX_use_certificate(ctx, identity_svid_leaf(svid)) != 1 ||
        SSL_CTX_use_PrivateKey(ctx, identity_svid_key(svid)) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot use the SVID");
        goto out;
    }
    all = identity__svid_chain(svid);
    for (int i = 1; i < sk_X509_num(all); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(all, i)) != 1) {
            rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot add the chain");
            goto out;
        }
    }
    /* Resumption: the server keys its session state under a fixed context id (OpenSSL refuses
     * to resume a session with a client certificate without one); the client keeps tickets. */
    SSL_CTX_set_timeout(ctx, IDENTITY_SESSION_TIMEOUT_S);
    if (server) {
        if (SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"outrigger-mtls", 14) != 1 ||
            SSL_CTX_set_num_tickets(ctx, 1) != 1) {
            rc = identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot enable resumption");
            goto out;
        }
    } else {
        cache = mem_calloc(sizeof(*cache));
        pthread_mutex_init(&cache->mu, NULL);
        if (SSL_CTX_set_ex_data(ctx, ctx_ex_idx, cache) != 1) {
            pthread_mutex_destroy(&cache->mu);
            mem_free(cache);
            rc = identity__ossl_fail(d, ERR_NOMEM, "cannot attach the session cache");
            goto out;
        }
        SSL_CTX_set_session_cache_mode(ctx,
                                       SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
    }
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

int identity_tls_server_ctx_new(const identity_svid_t *svid, SSL_CTX **out, err_detail_t *d)
{
    return ctx_new(svid, true, out, d);
}

int identity_tls_client_ctx_new(const identity_svid_t *svid, SSL_CTX **out, err_detail_t *d)
{
    return ctx_new(svid, false, out, d);
}

int identity_tls_client_prepare(SSL *ssl, const spiffe_id_t *expected, const char *session_key)
{
    tls_ex_t *ex;
    session_cache_t *c;
    int w;

    if (ssl == NULL)
        return ERR_INVAL;
    ex = ssl_ex(ssl);
    if (ex == NULL)
        return ERR_NOMEM;
    if (expected != NULL) {
        ex->expected = *expected;
        ex->has_expected = true;
    }
    ex->key[0] = '\0';
    if (session_key == NULL)
        return 0;
    /* The expected ID is part of the key: a ticket from a connection made for one app is never
     * offered on a connection made for another. A key that does not fit just disables caching. */
    w = snprintf(ex->key, sizeof(ex->key), "%s|%s", session_key,
                 expected != NULL ? expected->uri : "*");
    if (w < 0 || (size_t)w >= sizeof(ex->key)) {
        ex->key[0] = '\0';
        return 0;
    }
    c = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ctx_ex_idx);
    if (c == NULL)
        return 0;
    pthread_mutex_lock(&c->mu);
    for (size_t i = 0; i < IDENTITY_SESSION_SLOTS; i++) {
        session_slot_t *s = &c->slots[i];
        if (s->sess == NULL || strcmp(s->key, ex->key) != 0)
            continue;
        ERR_clear_error();
        /* The connection gets its own copy, for the reason given at on_new_session. */
        if (SSL_SESSION_is_resumable(s->sess)) {
            SSL_SESSION *copy = SSL_SESSION_dup(s->sess);
            if (copy == NULL || SSL_set_session(ssl, copy) != 1)
                ERR_clear_error();
            SSL_SESSION_free(copy);
        }
        break;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

int identity_tls_peer_id(SSL *ssl, spiffe_id_t *out, err_detail_t *d)
{
    X509 *peer;
    tls_ex_t *ex;
    spiffe_id_t id;
    long vr;
    int rc;

    if (ssl == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "no connection");
    peer = SSL_get0_peer_certificate(ssl);
    if (peer == NULL)
        return err_set(d, ERR_IDENTITY_CERT, "peer presented no certificate");
    vr = SSL_get_verify_result(ssl);
    if (vr != X509_V_OK)
        return err_set(d, ERR_IDENTITY_CERT, "peer certificate: %s",
                       X509_verify_cert_error_string(vr));
    /* A resumed session skips verification, so its certificate may have expired since the full
     * handshake: check the validity period again, against now. */
    if (X509_cmp_current_time(X509_get0_notAfter(peer)) <= 0)
        return err_set(d, ERR_IDENTITY_CERT, "peer certificate has expired");
    if (X509_cmp_current_time(X509_get0_notBefore(peer)) >= 0)
        return err_set(d, ERR_IDENTITY_CERT, "peer certificate is not yet valid");
    ERR_clear_error();
    rc = identity__cert_spiffe_id(peer, &id, d);
    if (rc < 0)
        return rc;
    ex = SSL_get_ex_data(ssl, ssl_ex_idx);
    if (!SSL_is_server(ssl) && ex != NULL && ex->has_expected && !id_matches(&ex->expected, &id))
        return err_set(d, ERR_IDENTITY_CERT, "peer is %s, expected %s", id.uri, ex->expected.uri);
    *out = id;
    return 0;
}

int identity_tls_error(SSL *ssl, int ret, err_detail_t *d)
{
    tls_ex_t *ex = ssl_ex_idx >= 0 ? SSL_get_ex_data(ssl, ssl_ex_idx) : NULL;
    int e = SSL_get_error(ssl, ret);
    long vr = SSL_get_verify_result(ssl);

    if (e == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return err_set(d, ERR_CLOSED, "peer closed the TLS connection");
    }
    if (ex != NULL && ex->reason[0] != '\0') {
        ERR_clear_error();
        return err_set(d, ERR_IDENTITY_TLS, "peer certificate refused: %s", ex->reason);
    }
    if (vr != X509_V_OK) {
        ERR_clear_error();
        return err_set(d, ERR_IDENTITY_TLS, "peer certificate refused: %s",
                       X509_verify_cert_error_string(vr));
    }
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)
        return err_set(d, ERR_IDENTITY_TLS, "connection closed during TLS");
    return identity__ossl_fail(d, ERR_IDENTITY_TLS, "TLS failed");
}
