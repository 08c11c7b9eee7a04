/*
 * The sidecar's side of the sentry protocol: fetch an SVID over the local Unix socket (or over
 * TLS from a remote sentry with a join token), and start a local sentry when none runs.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "identity/identity_int.h"

#define CLIENT_DEFAULT_TIMEOUT_MS 5000
#define ENSURE_DEFAULT_WAIT_MS 10000
#define ENSURE_POLL_MS 50

extern char **environ;

int identity_default_state_dir(const char *home, char *out, size_t n)
{
    if (home == NULL)
        return ERR_INVAL;
    return identity__path(out, n, home, "sentry");
}

static int local_socket_path(const identity_client_opts_t *c, char *out, size_t n)
{
    char dir[IDENTITY_PATH_MAX];

    if (c->socket_path != NULL) {
        int w = snprintf(out, n, "%s", c->socket_path);
        return w < 0 || (size_t)w >= n ? ERR_TOO_LARGE : 0;
    }
    if (identity_default_state_dir(c->home, dir, sizeof(dir)) < 0)
        return ERR_INVAL;
    return identity__path(out, n, dir, "sentry.sock");
}

/* Connects to the Unix socket @p path. ERR_IDENTITY_SENTRY when nothing listens there. */
static int connect_unix(const char *path, int *out, err_detail_t *d)
{
    struct sockaddr_un sa;
    size_t n = strlen(path);
    int fd;

    if (n >= sizeof(sa.sun_path))
        return err_set(d, ERR_TOO_LARGE, "socket path too long: %s", path);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(d, ERR_IO, "socket: %s", strerror(errno));
    /* Blocking connect: on a Unix socket it returns at once (or fails with EAGAIN when the
     * backlog is full, which we report like an absent sentry so the caller retries). */
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = errno;
        close(fd);
        return err_set(d, ERR_IDENTITY_SENTRY, "no sentry at %s: %s", path, strerror(e));
    }
    if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
        close(fd);
        return err_set(d, ERR_IO, "fcntl: %s", strerror(errno));
    }
    *out = fd;
    return 0;
}

/* Connects to "host:port" (or "[v6]:port") before @p deadline_ms. */
static int connect_tcp(const char *address, int64_t deadline_ms, int *out, err_detail_t *d)
{
    char host[256], port[8];
    const char *colon = strrchr(address, ':');
    struct addrinfo hints, *ai = NULL, *a;
    size_t hn;
    int fd = -1, rc;

    if (colon == NULL || colon == address || strlen(colon + 1) == 0 ||
        strlen(colon + 1) >= sizeof(port))
        return err_set(d, ERR_INVAL, "sentry address \"%s\" is not host:port", address);
    hn = (size_t)(colon - address);
    if (address[0] == '[' && hn >= 2 && address[hn - 1] == ']') {
        address++;
        hn -= 2;
    }
    if (hn >= sizeof(host))
        return err_set(d, ERR_INVAL, "sentry host too long");
    memcpy(host, address, hn);
    host[hn] = '\0';
    memcpy(port, colon + 1, strlen(colon + 1) + 1);
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return err_set(d, ERR_IDENTITY_SENTRY, "cannot resolve %s: %s", host, gai_strerror(rc));
    rc = err_set(d, ERR_IDENTITY_SENTRY, "cannot connect to %s", address);
    for (a = ai; a != NULL && fd < 0; a = a->ai_next) {
        identity__io_t io;
        int err = 0;
        socklen_t el = sizeof(err);

        fd = socket(a->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        io = (identity__io_t){fd, NULL, deadline_ms};
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        if (errno == EINPROGRESS) {
            struct pollfd p = {fd, POLLOUT, 0};
            int64_t left = io.deadline_ms - identity__now_ms();
            if (left > 0 && poll(&p, 1, (int)left) == 1 &&
                getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) == 0 && err == 0)
                break;
        }
        rc = err_set(d, ERR_IDENTITY_SENTRY, "cannot connect to %s: %s", address,
                     strerror(err     ? err
                              : errno ? errno
                                      : ETIMEDOUT));
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    if (fd < 0)
        return rc;
    *out = fd;
    return 0;
}

/* Appends "," "name":"<escaped s>" to @p b. */
static int put_member(buf_t *b, const char *name, const char *s, bool comma)
{
    int rc = buf_printf(b, "%s\"%s\":\"", comma ? "," : "", name);

    if (rc == 0)
        rc = buf_append_json_str(b, s, strlen(s));
    if (rc == 0)
        rc = buf_append_str(b, "\"");
    return rc;
}

static int render_request(const identity_client_opts_t *c, const identity_svid_req_t *r,
                          const char *csr, buf_t *b)
{
    int rc = buf_append_str(b, "{");

    if (rc == 0)
        rc = put_member(b, "app_id", r->app_id, false);
    if (rc == 0)
        rc = put_member(b, "namespace", r->namespace_, true);
    if (rc == 0)
        rc = put_member(b, "csr", csr, true);
    if (rc == 0 && c->sentry_address != NULL && c->token != NULL)
        rc = put_member(b, "token", c->token, true);
    if (rc == 0 && r->jwt_audience_count > 0) {
        rc = buf_append_str(b, ",\"jwt_audiences\":[");
        for (size_t i = 0; rc == 0 && i < r->jwt_audience_count; i++) {
            rc = buf_append_str(b, i ? ",\"" : "\"");
            if (rc == 0)
                rc = buf_append_json_str(b, r->jwt_audiences[i], strlen(r->jwt_audiences[i]));
            if (rc == 0)
                rc = buf_append_str(b, "\"");
        }
        if (rc == 0)
            rc = buf_append_str(b, "]");
    }
    if (rc == 0)
        rc = buf_append_str(b, "}\n");
    return rc;
}

/* A client TLS context that trusts @p anchors_pem and expects the sentry's ID in @p td. */
static int remote_ctx(const identity_client_opts_t *c, SSL_CTX **out, err_detail_t *d)
{
    STACK_OF(X509) *roots = NULL;
    X509_STORE *store = NULL;
    SSL_CTX *ctx = NULL;
    int rc;

    rc = identity__pem_certs(c->trust_anchors_pem, strlen(c->trust_anchors_pem),
                             IDENTITY_BUNDLE_MAX_CERTS, &roots, d);
    if (rc == 0)
        rc = identity__store_new(roots, &store, d);
    if (rc < 0)
        goto out;
    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        rc = identity__ossl_fail(d, ERR_NOMEM, "cannot create a TLS context");
        goto out;
    }
    rc = identity__tls_ctx_setup(ctx, store, false, d);
    if (rc < 0)
        goto out;
    *out = ctx;
    ctx = NULL;
out:
    SSL_CTX_free(ctx);
    X509_STORE_free(store);
    sk_X509_pop_free(roots, X509_free);
    return rc;
}

/* Turns the sentry's answer into an svid (taking over @p key). */
static int parse_response(const char *p, size_t n, EVP_PKEY *key, const identity_svid_req_t *r,
                          identity_svid_t **out, err_detail_t *d)
{
    json_error_t jerr;
    json_t *doc = json_loadb(p, n, JSON_REJECT_DUPLICATES, &jerr);
    json_t *err, *chain, *bundle, *jwt, *jexp;
    const spiffe_id_t *id;
    identity_svid_t *s = NULL;
    int rc = 0;

    if (!json_is_object(doc)) {
        EVP_PKEY_free(key);
        rc = err_set(d, ERR_IDENTITY_SENTRY, "the sentry's answer is not a JSON object");
        goto out;
    }
    err = json_object_get(doc, "error");
    if (err != NULL) {
        const char *code = json_string_value(json_object_get(err, "code"));
        const char *msg = json_string_value(json_object_get(err, "message"));
        EVP_PKEY_free(key);
        rc = code != NULL && strcmp(code, "PERMISSION_DENIED") == 0  ? ERR_IDENTITY_DENIED
             : code != NULL && strcmp(code, "INVALID_ARGUMENT") == 0 ? ERR_INVAL
                                                                     : ERR_IDENTITY_SENTRY;
        rc = err_set(d, rc, "sentry: %s", msg != NULL ? msg : "error");
        goto out;
    }
    chain = json_object_get(doc, "cert_chain");
    bundle = json_object_get(doc, "trust_bundle");
    jwt = json_object_get(doc, "jwt");
    jexp = json_object_get(doc, "jwt_expiry");
    if (!json_is_string(chain) || !json_is_string(bundle) ||
        (jwt != NULL && (!json_is_string(jwt) || !json_is_integer(jexp))) ||
        (r->jwt_audience_count > 0 && jwt == NULL)) {
        EVP_PKEY_free(key);
        rc = err_set(d, ERR_IDENTITY_SENTRY, "the sentry's answer lacks fields");
        goto out;
    }
    rc = identity__svid_new(key, json_string_value(chain), json_string_length(chain),
                            json_string_value(bundle), json_string_length(bundle),
                            jwt ? json_string_value(jwt) : NULL,
                            jexp ? (int64_t)json_integer_value(jexp) : 0, true, &s, d);
    if (rc < 0)
        goto out;
    id = identity_svid_id(s);
    /* The sentry must have certified what we asked for, nothing else. */
    if (strcmp(id->app_id, r->app_id) != 0 || strcmp(id->ns, r->namespace_) != 0) {
        rc = err_set(d, ERR_IDENTITY_CERT, "the sentry issued %s, not the identity asked for",
                     id->uri);
        identity_svid_unref(s);
        goto out;
    }
    *out = s;
out:
    json_decref(doc);
    return rc;
}

int identity_svid_fetch(const identity_client_opts_t *c, const identity_svid_req_t *r,
                        identity_svid_t **out, err_detail_t *d)
{
    char path[IDENTITY_PATH_MAX], uri[IDENTITY_URI_MAX];
    int64_t deadline;
    EVP_PKEY *key = NULL;
    SSL_CTX *ctx = NULL;
    identity__io_t io = {-1, NULL, 0};
    spiffe_id_t sentry_id;
    buf_t csr, req, resp;
    const char *nl;
    int rc;

    buf_init(&csr, IDENTITY_CSR_MAX_BYTES);
    buf_init(&req, IDENTITY_REQ_MAX_BYTES);
    buf_init(&resp, IDENTITY_RESP_MAX_BYTES);
    if (c == NULL || r == NULL || out == NULL || r->app_id == NULL || r->namespace_ == NULL ||
        r->jwt_audience_count > IDENTITY_MAX_AUDIENCES ||
        (r->jwt_audience_count > 0 && r->jwt_audiences == NULL)) {
        rc = err_set(d, ERR_INVAL, "an app id and a namespace are required");
        goto out;
    }
    if (c->sentry_address != NULL && (c->token == NULL || c->trust_anchors_pem == NULL)) {
        rc = err_set(d, ERR_INVAL, "a remote sentry needs a join token and trust anchors");
        goto out;
    }
    deadline = identity__now_ms() + (c->timeout_ms > 0 ? c->timeout_ms : CLIENT_DEFAULT_TIMEOUT_MS);
    rc = identity__key_new(&key, d);
    if (rc == 0)
        rc = identity__csr_new(key, &csr, d);
    if (rc == 0 && render_request(c, r, buf_ptr(&csr), &req) < 0)
        rc = err_set(d, ERR_TOO_LARGE, "request too large");
    if (rc < 0)
        goto out;
    if (c->sentry_address == NULL) {
        rc = local_socket_path(c, path, sizeof(path));
        if (rc < 0) {
            rc = err_set(d, rc, "no sentry socket path (set home or socket_path)");
            goto out;
        }
        rc = connect_unix(path, &io.fd, d);
    } else {
        rc = connect_tcp(c->sentry_address, deadline, &io.fd, d);
    }
    if (rc < 0)
        goto out;
    io.deadline_ms = deadline;
    if (c->sentry_address != NULL) {
        rc = remote_ctx(c, &ctx, d);
        if (rc < 0)
            goto out;
        ERR_clear_error();
        io.ssl = SSL_new(ctx);
        if (io.ssl == NULL || SSL_set_fd(io.ssl, io.fd) != 1) {
            rc = identity__ossl_fail(d, ERR_NOMEM, "cannot start TLS");
            goto out;
        }
        SSL_set_connect_state(io.ssl);
        /* The sentry proves its own SPIFFE ID, in the control-plane namespace no workload can
         * be issued. */
        rc = spiffe_id_format(c->sentry_trust_domain ? c->sentry_trust_domain
                                                     : IDENTITY_DEFAULT_TRUST_DOMAIN,
                              IDENTITY_SENTRY_NAMESPACE, IDENTITY_SENTRY_APP_ID, uri, sizeof(uri));
        if (rc == 0)
            rc = spiffe_id_parse(uri, strlen(uri), &sentry_id);
        if (rc == 0)
            rc = identity__tls_expect(io.ssl, &sentry_id);
        if (rc < 0) {
            rc = err_set(d, rc, "bad sentry trust domain");
            goto out;
        }
        rc = identity__io_handshake(&io, d);
        if (rc < 0)
            goto out;
    }
    rc = identity__io_write(&io, req.ptr, req.len, d);
    /* A sentry that refuses a peer answers before reading the request and closes: the write may
     * fail (EPIPE) while its answer is already waiting to be read. */
    if (rc == 0 || rc == ERR_IO)
        rc = identity__io_read_until(&io, &resp, "\n", d);
    if (rc < 0) {
        char msg[sizeof(d->msg)];
        if (d != NULL) {
            snprintf(msg, sizeof(msg), "%s", d->msg);
            err_set(d, rc, "talking to the sentry: %s", msg);
        }
        goto out;
    }
    nl = memchr(resp.ptr, '\n', resp.len);
    rc = parse_response(resp.ptr, nl ? (size_t)(nl - resp.ptr) : resp.len, key, r, out, d);
    key = NULL;
out:
    if (io.ssl != NULL)
        identity__io_finish(&io);
    SSL_free(io.ssl);
    SSL_CTX_free(ctx);
    if (io.fd >= 0)
        close(io.fd);
    EVP_PKEY_free(key);
    buf_free(&csr);
    buf_free(&req);
    buf_free(&resp);
    ERR_clear_error();
    return rc;
}

/* True when a sentry accepts connections on @p path. */
static bool sentry_answers(const char *path)
{
    int fd;

    if (connect_unix(path, &fd, NULL) < 0)
        return false;
    close(fd);
    return true;
}

/*
 * Starts `<exe> sentry` detached: fork, setsid, fork again (so the sentry is not our child and
 * never our zombie), stdio to the log file, exec. Everything the child needs is prepared before
 * the first fork, because a child of a threaded process may only call async-signal-safe
 * functions.
 */
static int spawn_sentry(const char *exe, const char *home, const char *log_path, err_detail_t *d)
{
    char **env = NULL;
    char *home_env = NULL;
    char *argv[3] = {(char *)"outrigger", (char *)"sentry", NULL};
    size_t n = 0, k = 0;
    pid_t pid;
    int status = 0, rc = 0;

    while (environ[n] != NULL)
        n++;
    env = mem_alloc((n + 2) * sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "OUTRIGGER_HOME=", 15) != 0)
            env[k++] = environ[i];
    }
    home_env = mem_alloc(strlen(home) + sizeof("OUTRIGGER_HOME="));
    memcpy(home_env, "OUTRIGGER_HOME=", 15);
    memcpy(home_env + 15, home, strlen(home) + 1);
    env[k++] = home_env;
    env[k] = NULL;

    pid = fork();
    if (pid < 0) {
        rc = err_set(d, ERR_IO, "fork: %s", strerror(errno));
        goto out;
    }
    if (pid == 0) {
        int fd;
        if (setsid() < 0)
            _exit(1);
        if (fork() != 0)
            _exit(0);
        fd = open("/dev/null", O_RDONLY);
        if (fd >= 0)
            dup2(fd, 0);
        fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        /* Our listeners and pipes must not leak into the sentry. */
        if (close_range(3, ~0U, 0) < 0) {
            for (int i = 3; i < 1024; i++)
                close(i);
        }
        execve(exe, argv, env);
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        rc = err_set(d, ERR_IO, "could not detach the sentry");
out:
    mem_free(home_env);
    mem_free(env);
    return rc;
}

int identity_sentry_ensure(const char *home, const identity_ensure_opts_t *opts, err_detail_t *d)
{
    char dir[IDENTITY_PATH_MAX], sock[IDENTITY_PATH_MAX], log_path[IDENTITY_PATH_MAX];
    const char *exe = opts != NULL && opts->exe != NULL ? opts->exe : "/proc/self/exe";
    int wait_ms = opts != NULL && opts->wait_ms > 0 ? opts->wait_ms : ENSURE_DEFAULT_WAIT_MS;
    int64_t deadline;
    int rc;

    if (home == NULL)
        return err_set(d, ERR_INVAL, "no home folder");
    if (identity_default_state_dir(home, dir, sizeof(dir)) < 0 ||
        identity__path(sock, sizeof(sock), dir, "sentry.sock") < 0 ||
        identity__path(log_path, sizeof(log_path), dir, "sentry.log") < 0)
        return err_set(d, ERR_TOO_LARGE, "home path too long");
    if (sentry_answers(sock))
        return 0;
    rc = identity__mkdir_private(dir, d);
    if (rc < 0)
        return rc;
    rc = spawn_sentry(exe, home, log_path, d);
    if (rc < 0)
        return rc;
    deadline = identity__now_ms() + wait_ms;
    while (identity__now_ms() < deadline) {
        struct timespec ts = {0, ENSURE_POLL_MS * 1000000L};
        if (sentry_answers(sock))
            return 0;
        nanosleep(&ts, NULL);
    }
    return err_set(d, ERR_IDENTITY_SENTRY, "the sentry did not start within %d ms; see %s", wait_ms,
                   log_path);
}
