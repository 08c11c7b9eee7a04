/* TLS between the net module's client and server on one loop, with certificates made here. */
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/buf.h"
#include "net/net.h"
#include "test.h"

typedef struct pki {
    EVP_PKEY *key;
    X509 *cert;
} pki_t;

static EVP_PKEY *new_key(void)
{
    return EVP_EC_gen("P-256");
}

/* Issues a certificate for @p key signed by @p ca (self-signed when NULL), with an optional URI
 * SAN. */
static X509 *issue(EVP_PKEY *key, const pki_t *ca, const char *uri, int days_from, int days_to)
{
    X509 *x = X509_new();
    X509V3_CTX v3;
    X509_EXTENSION *ext;
    char san[300];

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), (long)(uintptr_t)x & 0x7fffffff);
    X509_gmtime_adj(X509_getm_notBefore(x), (long)days_from * 86400);
    X509_gmtime_adj(X509_getm_notAfter(x), (long)days_to * 86400);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)(ca ? "leaf" : "test ca"), -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(ca ? ca->cert : x));
    X509V3_set_ctx(&v3, ca ? ca->cert : x, x, NULL, NULL, 0);
    if (ca == NULL) {
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        snprintf(san, sizeof(san), "URI:%s", uri);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        X509_add_ext(x, ext, -1);
        X509_EXTENSION_free(ext);
        ext = X509V3_EXT_conf_nid(NULL, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
    }
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(x, ca ? ca->key : key, EVP_sha256());
    return x;
}

static pki_t ca, other_ca, server_id, client_id, rogue_id;

static SSL_CTX *make_ctx(const pki_t *id, const pki_t *trust, bool server)
{
    SSL_CTX *c = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    SSL_CTX_set_min_proto_version(c, TLS1_3_VERSION);
    SSL_CTX_use_certificate(c, id->cert);
    SSL_CTX_use_PrivateKey(c, id->key);
    X509_STORE_add_cert(SSL_CTX_get_cert_store(c), trust->cert);
    SSL_CTX_set_verify(c, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return c;
}

static SSL_CTX *server_ctx, *client_ctx;

static struct ssl_ctx_st *get_ctx(void *arg, bool server)
{
    SSL_CTX *c = server ? server_ctx : (arg ? (SSL_CTX *)arg : client_ctx);
    SSL_CTX_up_ref(c);
    return c;
}

/* Accepts a peer whose first URI SAN equals @p expect (when given) and reports it. */
static int check_peer(struct ssl_st *ssl, const char *expect, char *id, size_t id_len, void *arg,
                      err_detail_t *why)
{
    X509 *peer = SSL_get0_peer_certificate(ssl);
    GENERAL_NAMES *names;
    char uri[300] = "";
    (void)arg;
    if (peer == NULL)
        return err_set(why, ERR_NET_PEER_REFUSED, "no peer certificate");
    names = X509_get_ext_d2i(peer, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type == GEN_URI)
            snprintf(uri, sizeof(uri), "%.*s", ASN1_STRING_length(g->d.uniformResourceIdentifier),
                     (const char *)ASN1_STRING_get0_data(g->d.uniformResourceIdentifier));
    }
    GENERAL_NAMES_free(names);
    if (expect != NULL && strcmp(expect, uri) != 0)
        return err_set(why, ERR_NET_PEER_REFUSED, "peer is %s, expected %s", uri, expect);
    if (id != NULL)
        snprintf(id, id_len, "%s", uri);
    return 0;
}

static net_tls_t tls = {get_ctx, check_peer, NULL, NULL};
static net_tls_t rogue_tls = {get_ctx, check_peer, NULL, NULL};

/* Server: answers with the peer id and, for /big, 1 MiB. */
static void on_request(net_sreq_t *r, void *ctx)
{
    static char big[1 << 20];
    const net_head_t *h = net_sreq_head(r);
    (void)ctx;
    if (strcmp(h->url, "/big") == 0) {
        memset(big, 'b', sizeof(big));
        if (net_sreq_respond(r, 200, NULL, sizeof(big)) == 0 &&
            net_sreq_write(r, big, sizeof(big)) == 0)
            net_sreq_end(r);
        return;
    }
    net_sreq_respond_simple(r, 200, "text/plain", net_sreq_peer_id(r), strlen(net_sreq_peer_id(r)));
}

typedef struct result {
    int status, http;
    buf_t body;
    bool done;
} result_t;

static void on_head(net_creq_t *c, const net_head_t *h, void *ctx)
{
    (void)c;
    ((result_t *)ctx)->http = h->status;
}
static void on_body(net_creq_t *c, const char *p, size_t n, void *ctx)
{
    (void)c;
    if (buf_append(&((result_t *)ctx)->body, p, n) < 0)
        abort();
}
static void on_end(net_creq_t *c, int status, const char *detail, void *ctx)
{
    result_t *r = ctx;
    (void)c;
    (void)detail;
    r->status = status;
    r->done = true;
}
static const net_creq_cbs_t cbs = {on_head, on_body, on_end, NULL};

static net_worker_t *w;
static int port;

static void setup(void)
{
    net_limits_t l;
    net_server_cbs_t scbs = {.on_request = on_request};
    if (w != NULL)
        return;
    ca.key = new_key();
    ca.cert = issue(ca.key, NULL, NULL, -1, 30);
    other_ca.key = new_key();
    other_ca.cert = issue(other_ca.key, NULL, NULL, -1, 30);
    server_id.key = new_key();
    server_id.cert = issue(server_id.key, &ca, "spiffe://public/ns/default/srv", -1, 1);
    client_id.key = new_key();
    client_id.cert = issue(client_id.key, &ca, "spiffe://public/ns/default/cli", -1, 1);
    rogue_id.key = new_key();
    rogue_id.cert = issue(rogue_id.key, &other_ca, "spiffe://public/ns/default/cli", -1, 1);
    server_ctx = make_ctx(&server_id, &ca, true);
    client_ctx = make_ctx(&client_id, &ca, false);
    rogue_tls.arg = make_ctx(&rogue_id, &ca, false);
    net_limits_defaults(&l);
    w = net_worker_new(&l, 0);
    if (net_listen_tls(w, "127.0.0.1", 0, &scbs, NULL, &tls, &port) != 0)
        abort();
}

static int call(const net_tls_t *t, const char *url, const char *expect, result_t *res)
{
    net_head_t h;
    net_creq_t *c;
    int rc;
    net_head_init(&h);
    h.method = 1; /* GET */
    if (net_head_set_url(&h, url, strlen(url)) < 0)
        return -1;
    memset(res, 0, sizeof(*res));
    buf_init(&res->body, 4 << 20);
    rc = net_creq_start_tls(w, "127.0.0.1", port, "x", &h, 0, 5000, t, expect, &cbs, res, &c);
    net_head_free(&h);
    if (rc < 0)
        return rc;
    while (!res->done)
        uv_run(net_worker_loop(w), UV_RUN_ONCE);
    return 0;
}

TEST(tls_request_carries_peer_identity)
{
    result_t r;
    setup();
    ASSERT_EQ(call(&tls, "/", "spiffe://public/ns/default/srv", &r), 0);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.http, 200);
    ASSERT_STREQ(buf_ptr(&r.body), "spiffe://public/ns/default/cli");
    buf_free(&r.body);
}

TEST(tls_big_response_streams_and_connection_is_reused)
{
    result_t r;
    size_t before;
    setup();
    ASSERT_EQ(call(&tls, "/big", "spiffe://public/ns/default/srv", &r), 0);
    ASSERT_EQ(r.status, 0);
    ASSERT_EQ(r.body.len, 1 << 20);
    buf_free(&r.body);
    before = net_worker_active(w);
    ASSERT_EQ(call(&tls, "/", "spiffe://public/ns/default/srv", &r), 0);
    ASSERT_EQ(r.status, 0);
    buf_free(&r.body);
    ASSERT_EQ(net_worker_active(w), before);
}

TEST(tls_client_refuses_unexpected_server_identity)
{
    result_t r;
    setup();
    ASSERT_EQ(call(&tls, "/", "spiffe://public/ns/default/other", &r), 0);
    ASSERT_EQ(r.status, ERR_NET_PEER_REFUSED);
    buf_free(&r.body);
}

TEST(tls_server_refuses_client_from_another_ca)
{
    result_t r;
    setup();
    ASSERT_EQ(call(&rogue_tls, "/", "spiffe://public/ns/default/srv", &r), 0);
    ASSERT(r.status < 0);
    ASSERT(r.http == 0);
    buf_free(&r.body);
    /* The server still serves good clients. */
    ASSERT_EQ(call(&tls, "/", "spiffe://public/ns/default/srv", &r), 0);
    ASSERT_EQ(r.status, 0);
    buf_free(&r.body);
}

TEST(zz_cleanup)
{
    net_worker_stop_async(w);
    net_worker_run(w);
    net_worker_free(w);
    SSL_CTX_free(server_ctx);
    SSL_CTX_free(client_ctx);
    SSL_CTX_free(rogue_tls.arg);
    pki_t *all[] = {&ca, &other_ca, &server_id, &client_id, &rogue_id};
    for (size_t i = 0; i < 5; i++) {
        X509_free(all[i]->cert);
        EVP_PKEY_free(all[i]->key);
    }
}
