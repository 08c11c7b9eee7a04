/*
 * External targets (spec dapr.md §1.1, §1.6): a loaded HTTPEndpoint's name, or a full
 * http(s):// URL. This file parses the base URL, owns the TLS client contexts used for them (the
 * system CAs by default; an HTTPEndpoint's clientTLS rootCA / certificate / privateKey when
 * given), and knows which headers an endpoint sets. proxy.c does the forwarding itself.
 */
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"

/* The TLS settings of one kind of external target: the default or one HTTPEndpoint's. */
typedef struct ext_tls {
    SSL_CTX *_Atomic ctx; /* owned reference; the system-CA one is built on first use */
    net_tls_t tls;        /* handed to the client; arg points back here */
    uv_mutex_t *lazy;     /* non-NULL for the system-CA context: guards building it */
} ext_tls_t;

struct invoke_ext {
    ext_tls_t def;     /* system CAs (loading them costs ~1 MiB: only when HTTPS is used) */
    uv_mutex_t def_mu; /* guards building def.ctx */
    bool def_failed;   /* the system CAs could not be loaded (warned once) */
    ext_tls_t *eps;    /* one per HTTPEndpoint (ctx NULL: uses def), res_components order */
    size_t neps;
};

static int ctx_new(const char *name, const char *root_ca, const char *cert, const char *key,
                   SSL_CTX **out, err_detail_t *d);

/* The system-CA context, built by the first connection that needs it (on a worker thread). */
static SSL_CTX *lazy_ctx(ext_tls_t *t)
{
    invoke_ext_t *x = (invoke_ext_t *)((char *)t - offsetof(invoke_ext_t, def));
    SSL_CTX *ctx;
    uv_mutex_lock(t->lazy);
    ctx = atomic_load(&t->ctx);
    if (ctx == NULL && !x->def_failed) {
        err_detail_t d = {{0}};
        if (ctx_new("(default)", NULL, NULL, NULL, &ctx, &d) < 0) {
            log_warn("invoke", "HTTPS to external targets fails: %s", d.msg);
            x->def_failed = true;
            ctx = NULL;
        } else {
            atomic_store(&t->ctx, ctx);
        }
    }
    uv_mutex_unlock(t->lazy);
    return ctx;
}

static SSL_CTX *get_ctx(void *arg, bool server)
{
    ext_tls_t *t = arg;
    SSL_CTX *ctx = atomic_load(&t->ctx);
    (void)server;
    if (ctx == NULL && t->lazy != NULL)
        ctx = lazy_ctx(t);
    if (ctx == NULL || SSL_CTX_up_ref(ctx) != 1)
        return NULL;
    return ctx;
}

/* Before the handshake: SNI and the name the certificate must carry (RFC 6125), or the address
 * for an IP literal. */
static int prepare(SSL *ssl, const char *expect, const char *session_key, void *arg)
{
    X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
    (void)session_key;
    (void)arg;

    if (expect == NULL || expect[0] == '\0')
        return ERR_NET_TLS;
    if (X509_VERIFY_PARAM_set1_ip_asc(vp, expect) == 1) {
        ERR_clear_error();
        return 0; /* no SNI for addresses (RFC 6066 §3) */
    }
    ERR_clear_error();
    if (SSL_set_tlsext_host_name(ssl, expect) != 1 || SSL_set1_host(ssl, expect) != 1) {
        ERR_clear_error();
        return ERR_NET_TLS;
    }
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    return 0;
}

/* After the handshake: OpenSSL verified chain and name already (SSL_VERIFY_PEER). */
static int check_peer(SSL *ssl, const char *expect, char *id, size_t id_len, void *arg,
                      err_detail_t *why)
{
    long v = SSL_get_verify_result(ssl);
    (void)arg;
    if (v != X509_V_OK)
        return err_set(why, ERR_NET_TLS, "certificate for %s: %s", expect,
                       X509_verify_cert_error_string(v));
    if (id != NULL && id_len > 0)
        str_copy(id, id_len, expect);
    return 0;
}

/* Adds every certificate in PEM @p pem to @p store; returns how many. */
static int add_pem_cas(X509_STORE *store, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    X509 *x;
    int n = 0;

    if (b == NULL)
        return 0;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        if (X509_STORE_add_cert(store, x) == 1)
            n++;
        X509_free(x);
    }
    ERR_clear_error();
    BIO_free(b);
    return n;
}

/* Builds a client context: TLS ≥ 1.2, peer verification against @p root_ca (PEM) or else the
 * system CAs, and a client certificate when @p cert / @p key are given. */
static int ctx_new(const char *name, const char *root_ca, const char *cert, const char *key,
                   SSL_CTX **out, err_detail_t *d)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = 0;

    if (ctx == NULL)
        return err_set(d, ERR_NOMEM, "cannot create a TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION);
    if (root_ca != NULL) {
        X509_STORE *store = X509_STORE_new();
        if (store == NULL || add_pem_cas(store, root_ca) == 0) {
            X509_STORE_free(store);
            rc = err_set(d, ERR_INVAL,
                         "HTTPEndpoint %s: spec.clientTLS.rootCA holds no PEM "
                         "certificate",
                         name);
            goto out;
        }
        SSL_CTX_set_cert_store(ctx, store);
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        rc = err_set(d, ERR_NET_TLS, "cannot load the system CA certificates");
        goto out;
    }
    if (cert != NULL && key != NULL) {
        BIO *cb = BIO_new_mem_buf(cert, -1), *kb = BIO_new_mem_buf(key, -1);
        X509 *x = cb ? PEM_read_bio_X509(cb, NULL, NULL, NULL) : NULL;
        EVP_PKEY *k = kb ? PEM_read_bio_PrivateKey(kb, NULL, NULL, NULL) : NULL;
        bool ok = x != NULL && k != NULL && SSL_CTX_use_certificate(ctx, x) == 1 &&
                  SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
        /* The rest of the chain, if the PEM holds one. */
        while (ok) {
            X509 *extra = PEM_read_bio_X509(cb, NULL, NULL, NULL);
            if (extra == NULL)
                break;
            if (SSL_CTX_add_extra_chain_cert(ctx, extra) != 1)
                X509_free(extra);
        }
        X509_free(x);
        EVP_PKEY_free(k);
        BIO_free(cb);
        BIO_free(kb);
        if (!ok) {
            /* OpenSSL's reason may quote nothing secret, but keep it out anyway. */
            rc = err_set(d, ERR_INVAL,
                         "HTTPEndpoint %s: spec.clientTLS certificate and privateKey are not a "
                         "matching PEM certificate and key",
                         name);
            goto out;
        }
    }
out:
    ERR_clear_error();
    if (rc < 0) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

static void ext_tls_init(ext_tls_t *t, SSL_CTX *ctx)
{
    atomic_init(&t->ctx, ctx);
    t->tls = (net_tls_t){get_ctx, check_peer, prepare, t};
}

int invoke__ext_new(const res_components_t *cs, invoke_ext_t **out, err_detail_t *d)
{
    invoke_ext_t *x = mem_calloc(sizeof(*x));
    SSL_CTX *ctx = NULL;
    int rc;

    /* The system CAs load on the first HTTPS call that needs them (without them only HTTPS
     * fails, per call, with a clear error). */
    uv_mutex_init(&x->def_mu);
    ext_tls_init(&x->def, NULL);
    x->def.lazy = &x->def_mu;
    x->neps = res_components_endpoint_count(cs);
    x->eps = x->neps ? mem_calloc(x->neps * sizeof(*x->eps)) : NULL;
    for (size_t i = 0; i < x->neps; i++) {
        const res_endpoint_t *e = res_components_endpoint_at(cs, i);
        invoke_ext_target_t t = {0};
        err_detail_t why = {{0}};
        /* A base URL that cannot be called is a start-up error, not a per-call surprise. */
        if (invoke__ext_parse_url(e->base_url, &t, &why) < 0) {
            rc = err_set(d, ERR_RES_INVALID, "%s:%d: spec.baseUrl: %s", e->file, e->line, why.msg);
            invoke__ext_free(x);
            return rc;
        }
        if (e->root_ca == NULL && e->certificate == NULL)
            continue;
        ctx = NULL;
        rc = ctx_new(e->name, e->root_ca, e->certificate, e->private_key, &ctx, d);
        if (rc < 0) {
            invoke__ext_free(x);
            return rc;
        }
        ext_tls_init(&x->eps[i], ctx);
    }
    *out = x;
    return 0;
}

void invoke__ext_free(invoke_ext_t *x)
{
    if (x == NULL)
        return;
    SSL_CTX_free(atomic_load(&x->def.ctx));
    for (size_t i = 0; i < x->neps; i++)
        SSL_CTX_free(atomic_load(&x->eps[i].ctx));
    uv_mutex_destroy(&x->def_mu);
    mem_free(x->eps);
    mem_free(x);
}

/*
 * Splits @p url ("http[s]://host[:port][/path]") into @p t. Refuses user info (credentials do not
 * belong in a URL the sidecar may log), queries and fragments in a base URL, and empty hosts.
 */
int invoke__ext_parse_url(const char *url, invoke_ext_target_t *t, err_detail_t *d)
{
    const char *p, *auth, *auth_end, *host, *host_end, *colon = NULL;
    size_t hl, al;

    if (strncmp(url, "https://", 8) == 0) {
        t->tls_on = true;
        t->port = 443;
        auth = url + 8;
    } else if (strncmp(url, "http://", 7) == 0) {
        t->tls_on = false;
        t->port = 80;
        auth = url + 7;
    } else {
        return err_set(d, ERR_INVAL, "unsupported URL scheme");
    }
    auth_end = auth + strcspn(auth, "/?#");
    if (*auth_end == '?' || *auth_end == '#' || strpbrk(auth_end, "?#") != NULL)
        return err_set(d, ERR_INVAL, "a base URL may not have a query or fragment");
    if (memchr(auth, '@', (size_t)(auth_end - auth)) != NULL)
        return err_set(d, ERR_INVAL, "user info in a URL is not supported");
    host = auth;
    if (*host == '[') {
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL)
            return err_set(d, ERR_INVAL, "malformed IPv6 address in URL");
        p = host_end + 1;
        host++;
        if (p < auth_end && *p == ':')
            colon = p;
        else if (p != auth_end)
            return err_set(d, ERR_INVAL, "malformed URL authority");
    } else {
        colon = memchr(host, ':', (size_t)(auth_end - host));
        host_end = colon ? colon : auth_end;
    }
    hl = (size_t)(host_end - host);
    if (hl == 0 || hl >= sizeof(t->host))
        return err_set(d, ERR_INVAL, "URL host is empty or too long");
    for (size_t i = 0; i < hl; i++) {
        unsigned char c = (unsigned char)host[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}%", c) != NULL)
            return err_set(d, ERR_INVAL, "invalid character in URL host");
    }
    memcpy(t->host, host, hl);
    t->host[hl] = '\0';
    if (colon != NULL) {
        char port[8];
        size_t pl = (size_t)(auth_end - colon - 1);
        if (pl == 0 || pl >= sizeof(port))
            return err_set(d, ERR_INVAL, "invalid port in URL");
        memcpy(port, colon + 1, pl);
        port[pl] = '\0';
        if (str_port(port, &t->port) < 0)
            return err_set(d, ERR_INVAL, "invalid port in URL");
    }
    al = (size_t)(auth_end - auth);
    if (al >= sizeof(t->authority))
        return err_set(d, ERR_INVAL, "URL authority too long");
    memcpy(t->authority, auth, al);
    t->authority[al] = '\0';
    t->path = auth_end;
    t->path_len = strlen(auth_end);
    while (t->path_len > 0 && t->path[t->path_len - 1] == '/')
        t->path_len--;
    return 0;
}

int invoke__ext_target(const invoke_ext_t *x, const res_components_t *cs, const char *target,
                       invoke_ext_target_t *t, err_detail_t *d)
{
    const res_endpoint_t *ep = NULL;
    int rc;

    *t = (invoke_ext_target_t){0};
    if (x == NULL)
        return 0; /* no external targets set up (unit tests of the routing) */
    if (strncmp(target, "http://", 7) != 0 && strncmp(target, "https://", 8) != 0) {
        for (size_t i = 0; i < res_components_endpoint_count(cs); i++) {
            if (strcmp(res_components_endpoint_at(cs, i)->name, target) == 0) {
                ep = res_components_endpoint_at(cs, i);
                t->tls = x->eps[i].ctx ? &x->eps[i].tls : &x->def.tls;
                break;
            }
        }
        if (ep == NULL)
            return 0;
        t->ep = ep;
        rc = invoke__ext_parse_url(ep->base_url, t, d);
    } else {
        t->tls = &x->def.tls;
        t->escape_path = true;
        rc = invoke__ext_parse_url(target, t, d);
    }
    if (rc < 0)
        return rc;
    if (!t->tls_on)
        t->tls = NULL;
    return 1;
}

int invoke__ext_add_headers(const invoke_ext_target_t *t, net_head_t *out)
{
    int rc = 0;
    for (size_t i = 0; t->ep != NULL && rc == 0 && i < t->ep->nheaders; i++) {
        const res_meta_t *h = &t->ep->headers[i];
        rc = net_head_add(out, h->name, strlen(h->name), h->value, strlen(h->value));
    }
    return rc;
}

bool invoke__ext_overrides(const invoke_ext_target_t *t, const char *lname, size_t len)
{
    for (size_t i = 0; t->ep != NULL && i < t->ep->nheaders; i++) {
        if (str_ieq(lname, len, t->ep->headers[i].name))
            return true;
    }
    return false;
}
