/* The sentry end to end: a real server in a thread (or a process), real sockets, real TLS. */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>

#include "base/str.h"
#include "cli/cli.h"
#include "idtest.h"
#include "test.h"

/* identity_sentry_ensure starts "<exe> sentry": when that exe is this test binary, be the sentry.
 * The arguments are read from /proc/self/cmdline: a constructor's argc/argv (a glibc extension)
 * are not passed once link-time optimisation merges the constructors into one. */
__attribute__((constructor)) static void maybe_be_the_sentry(void)
{
    static char cmd[4096];
    char *argv[64];
    int argc = 0;
    size_t n = 0;
    FILE *f = fopen("/proc/self/cmdline", "r");

    if (f == NULL)
        return;
    n = fread(cmd, 1, sizeof(cmd) - 1, f);
    fclose(f);
    cmd[n] = '\0';
    for (size_t i = 0; i < n && argc < 63; i += strlen(cmd + i) + 1)
        argv[argc++] = cmd + i;
    argv[argc] = NULL;
    if (argc >= 2 && strcmp(argv[1], "sentry") == 0)
        _exit(cli_cmd_sentry(argc - 2, argv + 2));
}

typedef struct srv {
    char home[64];   /* temporary OUTRIGGER_HOME */
    char state[128]; /* <home>/sentry */
    identity_sentry_t *s;
    pthread_t thread;
    int tcp_port, jwks_port;
} srv_t;

static void *serve(void *arg)
{
    identity_sentry_run(arg);
    return NULL;
}

/* Starts a sentry with @p o (state dir filled in here) in a thread. */
static int srv_start(srv_t *v, identity_sentry_opts_t *o)
{
    err_detail_t d = {""};

    o->state_dir = v->state;
    if (identity_sentry_new(o, &v->s, &d) < 0) {
        fprintf(stderr, "  srv_start: %s\n", d.msg);
        return -1;
    }
    identity__sentry_ports(v->s, &v->tcp_port, &v->jwks_port);
    return pthread_create(&v->thread, NULL, serve, v->s) == 0 ? 0 : -1;
}

static void srv_init(srv_t *v)
{
    memset(v, 0, sizeof(*v));
    idt_tmpdir(v->home, sizeof(v->home));
    snprintf(v->state, sizeof(v->state), "%s/sentry", v->home);
}

static void srv_stop(srv_t *v)
{
    if (v->s != NULL) {
        identity_sentry_stop(v->s);
        pthread_join(v->thread, NULL);
        identity_sentry_free(v->s);
    }
    idt_rmtree(v->home);
}

static int fetch(const srv_t *v, const char *app, const char *const *aud, size_t naud,
                 identity_svid_t **out, err_detail_t *d)
{
    identity_client_opts_t c;
    identity_svid_req_t r;

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    c.home = v->home;
    r.app_id = app;
    r.namespace_ = "default";
    r.jwt_audiences = aud;
    r.jwt_audience_count = naud;
    return identity_svid_fetch(&c, &r, out, d);
}

/* Sends @p line on the sentry's socket and returns its answer (caller frees), or NULL. */
static char *raw(const srv_t *v, const char *line, size_t n)
{
    struct sockaddr_un sa;
    char *out = mem_calloc(65536);
    size_t got = 0;
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);

    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if (identity__path(sa.sun_path, sizeof(sa.sun_path), v->state, "sentry.sock") < 0)
        abort();
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        close(fd);
        mem_free(out);
        return NULL;
    }
    (void)!write(fd, line, n);
    for (;;) {
        ssize_t r = read(fd, out + got, 65535 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    return out;
}

static char *csr_json(const char *app, const char *ns)
{
    EVP_PKEY *k = NULL;
    buf_t csr, line;

    buf_init(&csr, 8192);
    buf_init(&line, 16384);
    if (identity__key_new(&k, NULL) < 0 || identity__csr_new(k, &csr, NULL) < 0 ||
        buf_printf(&line, "{\"app_id\":\"%s\",\"namespace\":\"%s\",\"csr\":\"", app, ns) < 0 ||
        buf_append_json_str(&line, csr.ptr, csr.len) < 0 || buf_append_str(&line, "\"}\n") < 0)
        abort();
    EVP_PKEY_free(k);
    buf_free(&csr);
    return buf_take(&line);
}

TEST(sentry_issues_over_the_unix_socket)
{
    static const char *const aud[] = {"mcp://payments"};
    identity_sentry_opts_t o;
    identity_svid_t *a = NULL, *b = NULL;
    err_detail_t d = {""};
    char path[192];
    buf_t bundle;
    srv_t v;
    int64_t now;
    SSL_CTX *ctx = NULL;
    struct stat st;

    srv_init(&v);
    identity_sentry_opts_defaults(&o);
    o.workload_cert_ttl_s = 20;
    ASSERT_EQ(srv_start(&v, &o), 0);
    snprintf(path, sizeof(path), "%s/sentry.sock", v.state);
    ASSERT_EQ(stat(path, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0600);
    {
        /* One sentry per state dir. */
        identity_sentry_t *second = NULL;
        ASSERT_EQ(identity_sentry_new(&o, &second, &d), ERR_IDENTITY_CA);
        ASSERT(strstr(d.msg, "already serves") != NULL);
        ASSERT_EQ(stat(path, &st), 0);
    }
    now = (int64_t)time(NULL);
    ASSERT_EQ(fetch(&v, "checkout", aud, 1, &a, &d), 0);
    ASSERT_STREQ(identity_svid_id(a)->uri, "spiffe://public/ns/default/checkout");
    ASSERT(identity_svid_not_after(a) - now >= 19 && identity_svid_not_after(a) - now <= 21);
    ASSERT(now - identity_svid_not_before(a) >= 899 && now - identity_svid_not_before(a) <= 901);
    ASSERT(identity_svid_jwt(a) != NULL);
    ASSERT(identity_svid_jwt_expiry(a) - now >= 299 && identity_svid_jwt_expiry(a) - now <= 301);
    /* The bundle returned is the state dir's bundle. */
    snprintf(path, sizeof(path), "%s/bundle.pem", v.state);
    ASSERT_EQ(identity__file_read(path, 1 << 20, &bundle, NULL), 0);
    ASSERT_STREQ(identity_svid_bundle_pem(a), bundle.ptr);
    buf_free(&bundle);
    ASSERT_EQ(sk_X509_num(identity__svid_chain(a)), 2);
    ASSERT_EQ(identity_tls_server_ctx_new(a, &ctx, &d), 0);
    SSL_CTX_free(ctx);
    /* Each request gets a fresh key and serial; no JWT unless asked. */
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &b, &d), 0);
    ASSERT(strcmp(identity_svid_serial(a), identity_svid_serial(b)) != 0);
    ASSERT(EVP_PKEY_eq(identity_svid_key(a), identity_svid_key(b)) != 1);
    ASSERT(identity_svid_jwt(b) == NULL);
    identity_svid_unref(a);
    identity_svid_unref(b);
    srv_stop(&v);
}

TEST(sentry_refuses_a_uid_it_does_not_allow)
{
    identity_sentry_opts_t o;
    identity_svid_t *a = NULL;
    err_detail_t d = {""};
    srv_t v;

    srv_init(&v);
    identity_sentry_opts_defaults(&o);
    o.allowed_uids[0] = geteuid() + 1;
    o.allowed_uid_count = 1;
    ASSERT_EQ(srv_start(&v, &o), 0);
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &a, &d), ERR_IDENTITY_DENIED);
    ASSERT(a == NULL);
    ASSERT(strstr(d.msg, "may not request") != NULL);
    srv_stop(&v);
}

TEST(sentry_refuses_bad_requests)
{
    static const struct {
        const char *app, *ns, *want;
    } cases[] = {
        {"checkout", "outrigger-system", "PERMISSION_DENIED"},
        {"check/out", "default", "INVALID_ARGUMENT"},
        {"checkout", "de fault", "INVALID_ARGUMENT"},
        {"a234567890123456789012345678901234567890123456789012345678901234567890", "default",
         "INVALID_ARGUMENT"},
    };
    identity_sentry_opts_t o;
    char *resp, big[20000];
    srv_t v;

    srv_init(&v);
    identity_sentry_opts_defaults(&o);
    ASSERT_EQ(srv_start(&v, &o), 0);
    resp = raw(&v, "not json\n", 9);
    ASSERT(resp != NULL && strstr(resp, "INVALID_ARGUMENT") != NULL);
    mem_free(resp);
    resp = raw(&v, "{\"app_id\":\"a\",\"namespace\":\"default\"}\n", 37);
    ASSERT(resp != NULL && strstr(resp, "csr") != NULL);
    mem_free(resp);
    resp = raw(&v, "{\"app_id\":\"a\",\"namespace\":\"default\",\"csr\":\"nope\"}\n", 50);
    ASSERT(resp != NULL && strstr(resp, "CERTIFICATE REQUEST") != NULL);
    mem_free(resp);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *line = csr_json(cases[i].app, cases[i].ns);
        resp = raw(&v, line, strlen(line));
        if (resp == NULL || strstr(resp, cases[i].want) == NULL)
            TEST_FAIL_("case %zu: %s", i, resp ? resp : "(no answer)");
        mem_free(resp);
        mem_free(line);
    }
    /* Past the request limit the sentry answers with an error instead of reading on. */
    memset(big, 'x', sizeof(big));
    resp = raw(&v, big, sizeof(big));
    ASSERT(resp != NULL && strstr(resp, "larger than") != NULL);
    mem_free(resp);
    srv_stop(&v);
}

/* Writes the join-token file with mode @p mode. */
static void write_tokens(const char *path, mode_t mode)
{
    FILE *f = fopen(path, "w");

    fputs("# token namespace apps\n"
          "tok-0123456789abcdef0123456789abcdef default remote,batch\n"
          "tok-ffffffffffffffffffffffffffffffff prod *\n",
          f);
    fclose(f);
    chmod(path, mode);
}

static int fetch_remote(const srv_t *v, const char *token, const char *anchors, const char *app,
                        const char *ns, identity_svid_t **out, err_detail_t *d)
{
    identity_client_opts_t c;
    identity_svid_req_t r;
    char addr[64];

    snprintf(addr, sizeof(addr), "127.0.0.1:%d", v->tcp_port);
    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    c.sentry_address = addr;
    c.token = token;
    c.trust_anchors_pem = anchors;
    r.app_id = app;
    r.namespace_ = ns;
    return identity_svid_fetch(&c, &r, out, d);
}

TEST(sentry_join_tokens_over_tls)
{
    identity_sentry_opts_t o;
    identity_svid_t *a = NULL;
    identity__ca_t *other;
    err_detail_t d = {""};
    char tokens[160], path[192];
    buf_t bundle;
    srv_t v;

    srv_init(&v);
    snprintf(tokens, sizeof(tokens), "%s/tokens", v.home);
    identity_sentry_opts_defaults(&o);
    o.join_token_file = tokens;
    o.listen_address = "127.0.0.1";
    o.port = 0;
    /* A token file others may read is refused. */
    write_tokens(tokens, 0644);
    o.state_dir = v.state;
    ASSERT_EQ(identity_sentry_new(&o, &v.s, &d), ERR_INVAL);
    ASSERT(strstr(d.msg, "chmod 600") != NULL);
    write_tokens(tokens, 0600);
    ASSERT_EQ(srv_start(&v, &o), 0);
    ASSERT(v.tcp_port > 0);
    snprintf(path, sizeof(path), "%s/bundle.pem", v.state);
    ASSERT_EQ(identity__file_read(path, 1 << 20, &bundle, NULL), 0);

    ASSERT_EQ(fetch_remote(&v, "tok-0123456789abcdef0123456789abcdef", bundle.ptr, "remote",
                           "default", &a, &d),
              0);
    ASSERT_STREQ(identity_svid_id(a)->uri, "spiffe://public/ns/default/remote");
    identity_svid_unref(a);
    a = NULL;
    ASSERT_EQ(fetch_remote(&v, "tok-ffffffffffffffffffffffffffffffff", bundle.ptr, "anything",
                           "prod", &a, &d),
              0);
    identity_svid_unref(a);
    a = NULL;
    /* An app id, a namespace or a token the file does not grant. */
    ASSERT_EQ(fetch_remote(&v, "tok-0123456789abcdef0123456789abcdef", bundle.ptr, "other",
                           "default", &a, &d),
              ERR_IDENTITY_DENIED);
    ASSERT(strstr(d.msg, "app id") != NULL);
    ASSERT_EQ(fetch_remote(&v, "tok-0123456789abcdef0123456789abcdef", bundle.ptr, "remote", "prod",
                           &a, &d),
              ERR_IDENTITY_DENIED);
    ASSERT_EQ(fetch_remote(&v, "tok-0123456789abcdef0123456789abcdef0", bundle.ptr, "remote",
                           "default", &a, &d),
              ERR_IDENTITY_DENIED);
    /* Without a token the Unix-socket rules do not apply over TCP. */
    ASSERT_EQ(fetch_remote(&v, "", bundle.ptr, "remote", "default", &a, &d), ERR_IDENTITY_DENIED);
    /* A client that trusts another CA does not talk to this sentry at all. */
    other = idt_ca(v.home, "other");
    ASSERT(other != NULL);
    ASSERT_EQ(fetch_remote(&v, "tok-0123456789abcdef0123456789abcdef", other->bundle_pem, "remote",
                           "default", &a, &d),
              ERR_IDENTITY_TLS);
    ASSERT(a == NULL);
    identity__ca_free(other);
    buf_free(&bundle);
    srv_stop(&v);
}

/* GET @p target over HTTPS from 127.0.0.1:@p port, verifying the server as "localhost" against
 * @p anchors. Returns the whole response (caller frees) or NULL. */
static char *https_get(int port, const char *anchors, const char *target)
{
    STACK_OF(X509) *roots = NULL;
    X509_STORE *store = NULL;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    struct sockaddr_in sa;
    char req[256], *out = NULL;
    buf_t b;
    int fd = socket(AF_INET, SOCK_STREAM, 0), n;

    buf_init(&b, 1 << 20);
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (identity__pem_certs(anchors, strlen(anchors), 32, &roots, NULL) < 0 ||
        identity__store_new(roots, &store, NULL) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        goto out;
    SSL_CTX_set1_verify_cert_store(ctx, store);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "localhost");
    SSL_set1_host(ssl, "localhost");
    if (SSL_connect(ssl) != 1)
        goto out;
    n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: localhost\r\n\r\n", target);
    SSL_write(ssl, req, n);
    for (;;) {
        char chunk[4096];
        int r = SSL_read(ssl, chunk, sizeof(chunk));
        if (r <= 0 || buf_append(&b, chunk, (size_t)r) < 0)
            break;
    }
    out = buf_take(&b);
out:
    ERR_clear_error();
    buf_free(&b);
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(roots, X509_free);
    close(fd);
    return out;
}

TEST(sentry_serves_the_jwks_over_https)
{
    identity_sentry_opts_t o;
    identity__ca_t *ca;
    char *resp, want[96];
    srv_t v;

    srv_init(&v);
    identity_sentry_opts_defaults(&o);
    o.jwks_port = -1;
    ASSERT_EQ(srv_start(&v, &o), 0);
    ASSERT(v.jwks_port > 0);
    ca = idt_ca(v.home, "sentry");
    ASSERT(ca != NULL);
    resp = https_get(v.jwks_port, ca->bundle_pem, "/.well-known/jwks.json");
    ASSERT(resp != NULL);
    ASSERT(strncmp(resp, "HTTP/1.1 200 OK\r\n", 17) == 0);
    ASSERT(strstr(resp, "Content-Type: application/json") != NULL);
    ASSERT(strstr(resp, ca->jwks_json) != NULL);
    mem_free(resp);
    resp = https_get(v.jwks_port, ca->bundle_pem, "/.well-known/openid-configuration?x=1");
    snprintf(want, sizeof(want), "\"issuer\":\"https://localhost:%d\"", v.jwks_port);
    ASSERT(resp != NULL && strstr(resp, want) != NULL);
    ASSERT(strstr(resp, "/.well-known/jwks.json\"") != NULL);
    mem_free(resp);
    resp = https_get(v.jwks_port, ca->bundle_pem, "/other");
    ASSERT(resp != NULL && strncmp(resp, "HTTP/1.1 404", 12) == 0);
    mem_free(resp);
    identity__ca_free(ca);
    srv_stop(&v);
}

TEST(sentry_follows_a_root_rotation)
{
    identity_sentry_opts_t o;
    identity_svid_t *a = NULL, *b = NULL, *c = NULL;
    err_detail_t d = {""};
    X509 *issuer_a, *issuer_c;
    srv_t v;

    srv_init(&v);
    identity_sentry_opts_defaults(&o);
    ASSERT_EQ(srv_start(&v, &o), 0);
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &a, &d), 0);
    ASSERT_EQ(identity_ca_stage_root(v.state, "public", &d), 0);
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &b, &d), 0);
    /* Staged: same issuer, but the bundle already trusts the next root. */
    ASSERT_EQ(X509_cmp(sk_X509_value(identity__svid_chain(a), 1),
                       sk_X509_value(identity__svid_chain(b), 1)),
              0);
    ASSERT(strlen(identity_svid_bundle_pem(b)) > strlen(identity_svid_bundle_pem(a)));
    ASSERT_EQ(identity_ca_activate_root(v.state, "public", &d), 0);
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &c, &d), 0);
    issuer_a = sk_X509_value(identity__svid_chain(a), 1);
    issuer_c = sk_X509_value(identity__svid_chain(c), 1);
    ASSERT(X509_cmp(issuer_a, issuer_c) != 0);
    /* A peer still holding the old leaf verifies against the new bundle. */
    ASSERT_EQ(identity__verify_chain(identity_svid_store(c), identity_svid_leaf(a),
                                     identity__svid_chain(a), 0, &d),
              0);
    identity_svid_unref(a);
    identity_svid_unref(b);
    identity_svid_unref(c);
    srv_stop(&v);
}

TEST(sentry_ensure_starts_a_detached_sentry_once)
{
    identity_ensure_opts_t eo = {"/proc/self/exe", 20000};
    identity_svid_t *a = NULL;
    err_detail_t d = {""};
    char path[192];
    buf_t pid;
    uint64_t p = 0;
    srv_t v;

    srv_init(&v);
    ASSERT_EQ(identity_sentry_ensure(v.home, &eo, &d), 0);
    /* It answers, and a second call finds it running. */
    ASSERT_EQ(fetch(&v, "checkout", NULL, 0, &a, &d), 0);
    identity_svid_unref(a);
    ASSERT_EQ(identity_sentry_ensure(v.home, &eo, &d), 0);
    snprintf(path, sizeof(path), "%s/sentry.lock", v.state);
    ASSERT_EQ(identity__file_read(path, 64, &pid, NULL), 0);
    ASSERT(pid.len > 1);
    ASSERT_EQ(str_u64(pid.ptr, pid.len - 1, 1u << 30, &p), 0);
    buf_free(&pid);
    ASSERT(p != (uint64_t)getpid());
    ASSERT_EQ(kill((pid_t)p, SIGTERM), 0);
    /* It removes its socket on the way out. */
    snprintf(path, sizeof(path), "%s/sentry.sock", v.state);
    for (int i = 0; i < 200 && access(path, F_OK) == 0; i++)
        usleep(50000);
    ASSERT(access(path, F_OK) != 0);
    srv_stop(&v);
}
