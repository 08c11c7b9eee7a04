/* TLS 1.3 between contexts built from real SVIDs, over a socketpair in one thread. */
#include <fcntl.h>
#include <sys/socket.h>

#include "idtest.h"
#include "test.h"

#define SERVER_URI "spiffe://public/ns/default/server"
#define CLIENT_URI "spiffe://public/ns/default/client"

typedef struct hs {
    SSL *s, *c;
    int fds[2];
    int s_rc, c_rc;        /* 0, or the error code of the side that failed */
    err_detail_t s_d, c_d; /* why */
} hs_t;

/* Drives one SSL_* step: 1 done, 0 would block, <0 failed (detail filled). */
static int step(SSL *ssl, int r, err_detail_t *d, int *rc)
{
    int e;

    if (r > 0)
        return 1;
    e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    *rc = identity_tls_error(ssl, r, d);
    return -1;
}

/* Handshakes, then server → client "hi" and client → server "ok" (which also delivers the
 * session tickets and any late alert). Returns 0 when both sides got through. */
static int connect_pair_id(hs_t *h, SSL_CTX *sctx, SSL_CTX *cctx, const spiffe_id_t *expect,
                           const char *session_key)
{
    char buf[8];
    int phase_s = 0, phase_c = 0;

    memset(h, 0, sizeof(*h));
    socketpair(AF_UNIX, SOCK_STREAM, 0, h->fds);
    fcntl(h->fds[0], F_SETFL, O_NONBLOCK);
    fcntl(h->fds[1], F_SETFL, O_NONBLOCK);
    h->s = SSL_new(sctx);
    h->c = SSL_new(cctx);
    SSL_set_fd(h->s, h->fds[0]);
    SSL_set_fd(h->c, h->fds[1]);
    SSL_set_accept_state(h->s);
    SSL_set_connect_state(h->c);
    if (identity_tls_client_prepare(h->c, expect, session_key) < 0)
        return -1;
    for (int i = 0; i < 2000 && (phase_s < 3 || phase_c < 3); i++) {
        int r;
        if (h->s_rc == 0 && phase_s < 3) {
            ERR_clear_error();
            if (phase_s == 0)
                r = step(h->s, SSL_do_handshake(h->s), &h->s_d, &h->s_rc);
            else if (phase_s == 1)
                r = step(h->s, SSL_write(h->s, "hi", 2), &h->s_d, &h->s_rc);
            else
                r = step(h->s, SSL_read(h->s, buf, sizeof(buf)), &h->s_d, &h->s_rc);
            phase_s += r > 0;
        }
        if (h->c_rc == 0 && phase_c < 3) {
            ERR_clear_error();
            if (phase_c == 0)
                r = step(h->c, SSL_do_handshake(h->c), &h->c_d, &h->c_rc);
            else if (phase_c == 1)
                r = step(h->c, SSL_read(h->c, buf, sizeof(buf)), &h->c_d, &h->c_rc);
            else
                r = step(h->c, SSL_write(h->c, "ok", 2), &h->c_d, &h->c_rc);
            phase_c += r > 0;
        }
        if (h->s_rc < 0 || h->c_rc < 0)
            break;
    }
    ERR_clear_error();
    return h->s_rc == 0 && h->c_rc == 0 && phase_s == 3 && phase_c == 3 ? 0 : -1;
}

/* connect_pair_id expecting the ID @p expect_uri (NULL: any). */
static int connect_pair(hs_t *h, SSL_CTX *sctx, SSL_CTX *cctx, const char *expect_uri,
                        const char *session_key)
{
    static spiffe_id_t expect;

    if (expect_uri != NULL && spiffe_id_parse(expect_uri, strlen(expect_uri), &expect) < 0)
        return -2;
    return connect_pair_id(h, sctx, cctx, expect_uri ? &expect : NULL, session_key);
}

static void close_pair(hs_t *h)
{
    SSL_free(h->s);
    SSL_free(h->c);
    close(h->fds[0]);
    close(h->fds[1]);
}

typedef struct world {
    char dir[64];
    identity__ca_t *ca, *other;
    identity_svid_t *server, *client;
    SSL_CTX *sctx, *cctx;
} world_t;

static int world_init(world_t *w)
{
    err_detail_t d = {""};

    memset(w, 0, sizeof(*w));
    idt_tmpdir(w->dir, sizeof(w->dir));
    w->ca = idt_ca(w->dir, "ca");
    w->other = idt_ca(w->dir, "other");
    if (w->ca == NULL || w->other == NULL)
        return -1;
    w->server = idt_issue(w->ca, SERVER_URI, -900, 3600, true);
    w->client = idt_issue(w->ca, CLIENT_URI, -900, 3600, true);
    if (w->server == NULL || w->client == NULL ||
        identity_tls_server_ctx_new(w->server, &w->sctx, &d) < 0 ||
        identity_tls_client_ctx_new(w->client, &w->cctx, &d) < 0) {
        fprintf(stderr, "  world_init: %s\n", d.msg);
        return -1;
    }
    return 0;
}

static void world_free(world_t *w)
{
    SSL_CTX_free(w->sctx);
    SSL_CTX_free(w->cctx);
    identity_svid_unref(w->server);
    identity_svid_unref(w->client);
    identity__ca_free(w->ca);
    identity__ca_free(w->other);
    idt_rmtree(w->dir);
}

/* A client context presenting @p svid (NULL: no certificate) but trusting @p trust's bundle. */
static SSL_CTX *client_ctx_with(const identity_svid_t *svid, const identity_svid_t *trust)
{
    SSL_CTX *ctx = NULL;

    if (svid != NULL) {
        if (identity_tls_client_ctx_new(svid, &ctx, NULL) < 0)
            return NULL;
        SSL_CTX_set1_verify_cert_store(ctx, identity_svid_store(trust));
        return ctx;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    identity__tls_ctx_setup(ctx, identity_svid_store(trust), false, NULL);
    return ctx;
}

TEST(tls13_mutual_handshake_reports_both_identities)
{
    static spiffe_id_t id;
    world_t w;
    hs_t h;
    err_detail_t d = {""};

    ASSERT_EQ(world_init(&w), 0);
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, SERVER_URI, NULL), 0);
    ASSERT_EQ(SSL_version(h.s), TLS1_3_VERSION);
    ASSERT_EQ(identity_tls_peer_id(h.s, &id, &d), 0);
    ASSERT_STREQ(id.uri, CLIENT_URI);
    ASSERT_STREQ(id.app_id, "client");
    ASSERT_EQ(identity_tls_peer_id(h.c, &id, &d), 0);
    ASSERT_STREQ(id.uri, SERVER_URI);
    close_pair(&h);
    world_free(&w);
}

TEST(tls_sessions_resume_per_peer_and_expected_identity)
{
    static spiffe_id_t id;
    world_t w;
    hs_t h;
    err_detail_t d = {""};

    ASSERT_EQ(world_init(&w), 0);
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, SERVER_URI, "10.0.0.2:50002"), 0);
    ASSERT(!SSL_session_reused(h.c));
    close_pair(&h);
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, SERVER_URI, "10.0.0.2:50002"), 0);
    ASSERT(SSL_session_reused(h.c));
    ASSERT(SSL_session_reused(h.s));
    /* The identities survive resumption on both sides. */
    ASSERT_EQ(identity_tls_peer_id(h.s, &id, &d), 0);
    ASSERT_STREQ(id.uri, CLIENT_URI);
    ASSERT_EQ(identity_tls_peer_id(h.c, &id, &d), 0);
    ASSERT_STREQ(id.uri, SERVER_URI);
    close_pair(&h);
    /* Another peer key, or no key, does a full handshake. */
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, SERVER_URI, "10.0.0.3:50002"), 0);
    ASSERT(!SSL_session_reused(h.c));
    close_pair(&h);
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, NULL, NULL), 0);
    ASSERT(!SSL_session_reused(h.c));
    close_pair(&h);
    world_free(&w);
}

TEST(tls_refuses_a_peer_from_another_ca)
{
    world_t w;
    hs_t h;
    identity_svid_t *foreign;
    SSL_CTX *ctx = NULL;

    ASSERT_EQ(world_init(&w), 0);
    foreign = idt_issue(w.other, CLIENT_URI, -900, 3600, true);
    ASSERT(foreign != NULL);
    /* Our server, their client. */
    ctx = client_ctx_with(foreign, w.client);
    ASSERT(ctx != NULL);
    ASSERT(connect_pair(&h, w.sctx, ctx, SERVER_URI, NULL) < 0);
    ASSERT_EQ(h.s_rc, ERR_IDENTITY_TLS);
    ASSERT(strstr(h.s_d.msg, "unable to get local issuer") != NULL);
    close_pair(&h);
    SSL_CTX_free(ctx);
    /* Their server, our client. */
    ASSERT_EQ(identity_tls_server_ctx_new(foreign, &ctx, NULL), 0);
    ASSERT(connect_pair(&h, ctx, w.cctx, SERVER_URI, NULL) < 0);
    ASSERT_EQ(h.c_rc, ERR_IDENTITY_TLS);
    close_pair(&h);
    SSL_CTX_free(ctx);
    identity_svid_unref(foreign);
    world_free(&w);
}

TEST(tls_refuses_tls12_and_a_missing_client_certificate)
{
    world_t w;
    hs_t h;
    SSL_CTX *ctx;

    ASSERT_EQ(world_init(&w), 0);
    ctx = client_ctx_with(w.client, w.client);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    ASSERT(connect_pair(&h, w.sctx, ctx, SERVER_URI, NULL) < 0);
    ASSERT_EQ(h.s_rc, ERR_IDENTITY_TLS);
    ASSERT(strstr(h.s_d.msg, "protocol") != NULL);
    close_pair(&h);
    SSL_CTX_free(ctx);
    ctx = client_ctx_with(NULL, w.client);
    ASSERT(connect_pair(&h, w.sctx, ctx, SERVER_URI, NULL) < 0);
    ASSERT_EQ(h.s_rc, ERR_IDENTITY_TLS);
    ASSERT(strstr(h.s_d.msg, "certificate") != NULL);
    close_pair(&h);
    SSL_CTX_free(ctx);
    world_free(&w);
}

TEST(tls_refuses_expired_and_not_yet_valid_peers)
{
    world_t w;
    hs_t h;
    identity_svid_t *old, *early;
    SSL_CTX *ctx;

    ASSERT_EQ(world_init(&w), 0);
    old = idt_issue(w.ca, CLIENT_URI, -7200, -3600, false);
    early = idt_issue(w.ca, SERVER_URI, 3600, 7200, false);
    ASSERT(old != NULL && early != NULL);
    ctx = client_ctx_with(old, w.client);
    ASSERT(connect_pair(&h, w.sctx, ctx, SERVER_URI, NULL) < 0);
    ASSERT(strstr(h.s_d.msg, "expired") != NULL);
    close_pair(&h);
    SSL_CTX_free(ctx);
    ASSERT_EQ(identity_tls_server_ctx_new(early, &ctx, NULL), 0);
    ASSERT(connect_pair(&h, ctx, w.cctx, SERVER_URI, NULL) < 0);
    ASSERT(strstr(h.c_d.msg, "not yet valid") != NULL);
    close_pair(&h);
    SSL_CTX_free(ctx);
    identity_svid_unref(old);
    identity_svid_unref(early);
    world_free(&w);
}

TEST(tls_refuses_malformed_spiffe_ids)
{
    static const char *const bad[] = {"spiffe://public/checkout", "spiffe://public/ns/default",
                                      "https://public/ns/default/client"};
    world_t w;
    hs_t h;

    ASSERT_EQ(world_init(&w), 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        identity__profile_t p;
        EVP_PKEY *key = NULL;
        X509 *leaf = NULL;
        SSL_CTX *ctx = client_ctx_with(w.client, w.client);
        int64_t now = (int64_t)time(NULL);

        memset(&p, 0, sizeof(p));
        p.uri = bad[i];
        p.client_auth = true;
        p.not_before = now - 60;
        p.not_after = now + 3600;
        ASSERT_EQ(identity__key_new(&key, NULL), 0);
        ASSERT_EQ(identity__ca_sign(w.ca, key, &p, &leaf, NULL), 0);
        ASSERT_EQ(SSL_CTX_use_certificate(ctx, leaf), 1);
        ASSERT_EQ(SSL_CTX_use_PrivateKey(ctx, key), 1);
        ASSERT(connect_pair(&h, w.sctx, ctx, SERVER_URI, NULL) < 0);
        ASSERT_EQ(h.s_rc, ERR_IDENTITY_TLS);
        ASSERT(strstr(h.s_d.msg, "SPIFFE") != NULL);
        close_pair(&h);
        SSL_CTX_free(ctx);
        X509_free(leaf);
        EVP_PKEY_free(key);
    }
    world_free(&w);
}

TEST(tls_client_refuses_an_unexpected_server)
{
    static spiffe_id_t any_td;
    world_t w;
    hs_t h;

    ASSERT_EQ(world_init(&w), 0);
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, "spiffe://public/ns/default/payments", NULL), -1);
    ASSERT_EQ(h.c_rc, ERR_IDENTITY_TLS);
    ASSERT(strstr(h.c_d.msg, "expected") != NULL);
    close_pair(&h);
    /* The same app id in another namespace is another identity. */
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, "spiffe://public/ns/prod/server", NULL), -1);
    close_pair(&h);
    /* A pinned trust domain must match too ... */
    ASSERT_EQ(connect_pair(&h, w.sctx, w.cctx, "spiffe://other/ns/default/server", NULL), -1);
    close_pair(&h);
    /* ... and an empty one accepts any trust domain of the bundle (Dapr's rule). */
    memset(&any_td, 0, sizeof(any_td));
    snprintf(any_td.ns, sizeof(any_td.ns), "default");
    snprintf(any_td.app_id, sizeof(any_td.app_id), "server");
    ASSERT_EQ(connect_pair_id(&h, w.sctx, w.cctx, &any_td, NULL), 0);
    close_pair(&h);
    world_free(&w);
}

TEST(renewal_is_due_half_way_through_the_useful_life)
{
    world_t w;
    identity_svid_t *s;
    int64_t now = (int64_t)time(NULL);

    ASSERT_EQ(world_init(&w), 0);
    /* Backdated by the 15 min skew, 20 s to live: renew in 10 s, not at once. */
    s = idt_issue(w.ca, CLIENT_URI, -900, 20, true);
    ASSERT(s != NULL);
    ASSERT(identity_svid_renew_at_ms(s) >= (now + 9) * 1000);
    ASSERT(identity_svid_renew_at_ms(s) <= (now + 11) * 1000);
    identity_svid_unref(s);
    s = idt_issue(w.ca, CLIENT_URI, -900, 86400, true);
    ASSERT(identity_svid_renew_at_ms(s) >= (now + 43199) * 1000);
    ASSERT(identity_svid_renew_at_ms(s) <= (now + 43201) * 1000);
    identity_svid_unref(s);
    world_free(&w);
}

TEST(svid_from_pem_checks_key_chain_and_bundle)
{
    world_t w;
    identity_svid_t *s = NULL;
    err_detail_t d = {""};
    buf_t key, other_key;

    ASSERT_EQ(world_init(&w), 0);
    buf_init(&key, 8192);
    buf_init(&other_key, 8192);
    ASSERT_EQ(identity__pem_put_key(&key, identity_svid_key(w.client)), 0);
    ASSERT_EQ(identity__pem_put_key(&other_key, identity_svid_key(w.server)), 0);
    ASSERT_EQ(identity_svid_from_pem(key.ptr, identity_svid_chain_pem(w.client),
                                     identity_svid_bundle_pem(w.client), &s, &d),
              0);
    ASSERT_STREQ(identity_svid_id(s)->uri, CLIENT_URI);
    ASSERT_STREQ(identity_svid_serial(s), identity_svid_serial(w.client));
    identity_svid_unref(s);
    s = NULL;
    ASSERT_EQ(identity_svid_from_pem(other_key.ptr, identity_svid_chain_pem(w.client),
                                     identity_svid_bundle_pem(w.client), &s, &d),
              ERR_IDENTITY_CERT);
    ASSERT_EQ(identity_svid_from_pem(key.ptr, identity_svid_chain_pem(w.client),
                                     w.other->bundle_pem, &s, &d),
              ERR_IDENTITY_CERT);
    ASSERT_EQ(identity_svid_from_pem("junk", identity_svid_chain_pem(w.client),
                                     identity_svid_bundle_pem(w.client), &s, &d),
              ERR_PARSE);
    ASSERT(s == NULL);
    buf_free(&key);
    buf_free(&other_key);
    world_free(&w);
}
