/*
 * The sentry server: answers SVID requests on a user-private Unix socket (callers attested by
 * SO_PEERCRED), optionally on TCP with TLS for sidecars on other machines (callers attested by a
 * join token), and serves the JWKS and OIDC discovery document over HTTPS.
 *
 * Shape: one thread polls the listeners and a stop pipe; each accepted connection gets its own
 * short-lived thread (at most max_connections at once) that does blocking I/O under one deadline.
 * Everything the connection threads share (the CA, the tokens, the serving TLS contexts, the
 * counters) sits behind one mutex; signing takes well under a millisecond, so it is not a
 * bottleneck for a component that sees a request per workload per half-TTL.
 *
 * Protocol (newline-delimited JSON, one request per connection; see docs/security.md):
 *   → {"app_id":"…","namespace":"…","csr":"-----BEGIN CERTIFICATE REQUEST-----…",
 *      "jwt_audiences":["…"],"token":"…"}\n
 *   ← {"cert_chain":"<PEM leaf+issuer>","trust_bundle":"<PEM roots>","valid_until":"RFC 3339",
 *      "jwt":"…","jwt_expiry":<unix s>}\n
 *   ← {"error":{"code":"INVALID_ARGUMENT|PERMISSION_DENIED|INTERNAL","message":"…"}}\n
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "identity/identity_int.h"

#define SENTRY_LOCK_FILE "sentry.lock"
#define SENTRY_SOCKET_FILE "sentry.sock"
#define SENTRY_BACKLOG 64

typedef enum conn_kind { CONN_UNIX, CONN_TCP, CONN_JWKS } conn_kind_t;

struct identity_sentry {
    identity_sentry_opts_t opts; /* copy; its strings point at the owned copies below */
    char *state_dir;             /* owned */
    char *trust_domain;          /* owned */
    char *socket_path;           /* owned */
    char *token_file;            /* owned, or NULL */
    char *jwt_issuer;            /* owned, or NULL */
    uid_t own_uid;
    int lock_fd; /* holds <state_dir>/sentry.lock while we live */
    int unix_fd; /* listeners; -1 when off */
    int tcp_fd;
    int jwks_fd;
    int tcp_port; /* bound ports (useful when 0 / -1 asked for any) */
    int jwks_port;
    int stop_pipe[2]; /* identity_sentry_stop writes, run polls */

    pthread_mutex_t mu;         /* guards everything below */
    identity__ca_t *ca;         /* owned */
    identity__tokens_t *tokens; /* owned, or NULL */
    identity__stamp_t tokens_stamp;
    SSL_CTX *tcp_ctx;         /* owned; serving context for the TCP listener (TLS 1.3) */
    SSL_CTX *jwks_ctx;        /* owned; serving context for HTTPS (TLS 1.2+) */
    int64_t serving_renew_at; /* Unix seconds when both contexts are rebuilt */
    uint64_t issued;          /* certificates issued */
    uint64_t refused;         /* requests refused or failed */

    pthread_mutex_t conn_mu; /* guards active */
    pthread_cond_t conn_cv;  /* signalled when active drops */
    int active;              /* connection threads running */
};

typedef struct conn {
    identity_sentry_t *s;
    int fd; /* owned */
    conn_kind_t kind;
    char peer[80]; /* "uid 1000 pid 42" or an address, for logs */
} conn_t;

/* Who is asking, as far as the transport can tell. */
typedef struct peer {
    conn_kind_t kind;
    const char *desc; /* for logs */
} peer_t;

void identity_sentry_opts_defaults(identity_sentry_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->trust_domain = IDENTITY_DEFAULT_TRUST_DOMAIN;
    o->workload_cert_ttl_s = IDENTITY_DEFAULT_WORKLOAD_TTL_S;
    o->allowed_clock_skew_s = IDENTITY_DEFAULT_CLOCK_SKEW_S;
    o->jwt_ttl_s = IDENTITY_DEFAULT_JWT_TTL_S;
    o->listen_address = "0.0.0.0";
    o->port = IDENTITY_DEFAULT_SENTRY_PORT;
    o->jwks_address = "127.0.0.1";
    o->max_connections = 32;
    o->io_timeout_ms = 5000;
}

/* ---- responses ------------------------------------------------------------------------- */

static int put_member(buf_t *b, const char *name, const char *s, bool comma)
{
    int rc = buf_printf(b, "%s\"%s\":\"", comma ? "," : "", name);

    if (rc == 0)
        rc = buf_append_json_str(b, s, strlen(s));
    if (rc == 0)
        rc = buf_append_str(b, "\"");
    return rc;
}

/* Replaces @p resp with an error body. @p code is one of Dapr's sentry error classes. */
static void error_body(buf_t *resp, const char *code, const char *msg)
{
    buf_reset(resp);
    if (buf_printf(resp, "{\"error\":{\"code\":\"%s\",", code) < 0 ||
        put_member(resp, "message", msg, false) < 0 || buf_append_str(resp, "}}\n") < 0) {
        buf_reset(resp);
        if (buf_append_str(resp, "{\"error\":{\"code\":\"INTERNAL\",\"message\":\"\"}}\n") < 0)
            buf_reset(resp);
    }
}

/* ---- shared state ------------------------------------------------------------------------ */

/* Picks up a rotated CA or an edited token file (mu held). Keeps the old state when the new one
 * cannot be loaded, so a bad edit never stops issuance. */
static void refresh_locked(identity_sentry_t *s)
{
    if (identity__ca_changed(s->ca)) {
        identity__ca_t *ca = NULL;
        err_detail_t d = {""};

        if (identity__ca_open(s->state_dir, s->trust_domain, &ca, &d) < 0) {
            log_error("sentry", "cannot reload the CA, still using the previous one: %s", d.msg);
        } else {
            identity__ca_free(s->ca);
            s->ca = ca;
            s->serving_renew_at = 0;
            log_info("sentry", "reloaded the CA from %s (%d trusted roots)", s->state_dir,
                     sk_X509_num(ca->bundle));
        }
    }
    if (s->token_file != NULL) {
        identity__stamp_t now;
        identity__tokens_t *t = NULL;
        err_detail_t d = {""};

        identity__stamp(s->token_file, &now);
        if (!identity__stamp_eq(&now, &s->tokens_stamp)) {
            if (identity__tokens_load(s->token_file, &t, &d) < 0) {
                log_error("sentry", "cannot reload join tokens, keeping the previous ones: %s",
                          d.msg);
            } else {
                identity__tokens_free(s->tokens);
                s->tokens = t;
            }
            s->tokens_stamp = now;
        }
    }
}

/* A serving context with the chain, key and @p min_version; no client certificates. */
static int serving_ctx(X509 *leaf, EVP_PKEY *key, X509 *issuer, int min_version, SSL_CTX **out,
                       err_detail_t *d)
{
    SSL_CTX *ctx;

    ERR_clear_error();
    ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || SSL_CTX_set_min_proto_version(ctx, min_version) != 1 ||
        SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key) != 1 ||
        SSL_CTX_add1_chain_cert(ctx, issuer) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return identity__ossl_fail(d, ERR_IDENTITY_CRYPTO, "cannot build the serving context");
    }
    *out = ctx;
    return 0;
}

/* True for a name we may put into a DNS SAN. */
static bool dns_name_ok(const char *n)
{
    size_t len = strlen(n);

    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = n[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.'))
            return false;
    }
    return true;
}

/* Returns a reference to the serving context for @p kind, making a fresh certificate (our own
 * SPIFFE ID, localhost, this host's name, loopback and listen addresses) when the old one is past
 * half its life or the CA changed (mu held). */
static int serving_ctx_get_locked(identity_sentry_t *s, conn_kind_t kind, SSL_CTX **out,
                                  err_detail_t *d)
{
    int64_t now = (int64_t)time(NULL), ttl = s->opts.workload_cert_ttl_s;
    char host[256] = "", uri[IDENTITY_URI_MAX];
    const char *dns[2], *ips[4];
    size_t ndns = 0, nips = 0;
    identity__profile_t p;
    EVP_PKEY *key = NULL;
    X509 *leaf = NULL;
    SSL_CTX *tcp = NULL, *jwks = NULL;
    int rc = 0;

    if (s->tcp_ctx == NULL || now >= s->serving_renew_at) {
        rc = spiffe_id_format(s->trust_domain, IDENTITY_SENTRY_NAMESPACE, IDENTITY_SENTRY_APP_ID,
                              uri, sizeof(uri));
        if (rc < 0) {
            rc = err_set(d, rc, "cannot form the sentry's ID");
            goto out;
        }
        dns[ndns++] = "localhost";
        if (gethostname(host, sizeof(host) - 1) == 0 && dns_name_ok(host) &&
            strcmp(host, "localhost") != 0)
            dns[ndns++] = host;
        ips[nips++] = "127.0.0.1";
        ips[nips++] = "::1";
        /* A specific listen address is how remote clients reach us: name it too. */
        if (s->tcp_fd >= 0 && strcmp(s->opts.listen_address, "0.0.0.0") != 0 &&
            strcmp(s->opts.listen_address, "::") != 0 &&
            strcmp(s->opts.listen_address, "127.0.0.1") != 0)
            ips[nips++] = s->opts.listen_address;
        if (s->jwks_fd >= 0 && strcmp(s->opts.jwks_address, "0.0.0.0") != 0 &&
            strcmp(s->opts.jwks_address, "::") != 0 &&
            strcmp(s->opts.jwks_address, "127.0.0.1") != 0 &&
            strcmp(s->opts.jwks_address, s->opts.listen_address) != 0)
            ips[nips++] = s->opts.jwks_address;
        memset(&p, 0, sizeof(p));
        p.uri = uri;
        p.dns = dns;
        p.dns_count = ndns;
        p.ips = ips;
        p.ip_count = nips;
        p.client_auth = false;
        p.not_before = now - s->opts.allowed_clock_skew_s;
        p.not_after = now + ttl;
        rc = identity__key_new(&key, d);
        if (rc == 0)
            rc = identity__ca_sign(s->ca, key, &p, &leaf, d);
        if (rc == 0)
            rc = serving_ctx(leaf, key, s->ca->active.issuer, TLS1_3_VERSION, &tcp, d);
        /* The JWKS is public and fetched by all sorts of HTTP clients: TLS 1.2 is allowed. */
        if (rc == 0)
            rc = serving_ctx(leaf, key, s->ca->active.issuer, TLS1_2_VERSION, &jwks, d);
        if (rc < 0)
            goto out;
        SSL_CTX_free(s->tcp_ctx);
        SSL_CTX_free(s->jwks_ctx);
        s->tcp_ctx = tcp;
        s->jwks_ctx = jwks;
        tcp = jwks = NULL;
        s->serving_renew_at = now + ttl / 2;
    }
    *out = kind == CONN_JWKS ? s->jwks_ctx : s->tcp_ctx;
    SSL_CTX_up_ref(*out);
out:
    SSL_CTX_free(tcp);
    SSL_CTX_free(jwks);
    X509_free(leaf);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- one SVID request -------------------------------------------------------------------- */

/* Reads an optional string member: NULL when absent; ERR_INVAL when not a string or longer than
 * @p max bytes. */
static int member_str(json_t *o, const char *name, size_t max, const char **out)
{
    json_t *v = json_object_get(o, name);

    *out = NULL;
    if (v == NULL)
        return 0;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v))
        return ERR_INVAL;
    *out = json_string_value(v);
    return 0;
}

/* The parsed and checked fields of a request (borrowed from the JSON document). */
typedef struct svid_req {
    const char *app_id;
    const char *ns;
    const char *csr;
    const char *token;
    const char *aud[IDENTITY_MAX_AUDIENCES];
    size_t aud_count;
} svid_req_t;

static int parse_request(json_t *o, svid_req_t *r, err_detail_t *d)
{
    json_t *aud;

    memset(r, 0, sizeof(*r));
    if (!json_is_object(o))
        return err_set(d, ERR_INVAL, "the request must be a JSON object");
    if (member_str(o, "app_id", IDENTITY_APP_ID_MAX, &r->app_id) < 0 || r->app_id == NULL ||
        r->app_id[0] == '\0')
        return err_set(d, ERR_INVAL, "app_id: a string of 1 to %d characters is required",
                       IDENTITY_APP_ID_MAX);
    if (member_str(o, "namespace", SPIFFE_NAME_MAX, &r->ns) < 0 || r->ns == NULL ||
        r->ns[0] == '\0')
        return err_set(d, ERR_INVAL, "namespace: a non-empty string is required");
    if (member_str(o, "csr", IDENTITY_CSR_MAX_BYTES, &r->csr) < 0 || r->csr == NULL)
        return err_set(d, ERR_INVAL, "csr: a PEM certificate request is required");
    if (member_str(o, "token", IDENTITY_TOKEN_MAX_BYTES, &r->token) < 0)
        return err_set(d, ERR_INVAL, "token: must be a string");
    aud = json_object_get(o, "jwt_audiences");
    if (aud != NULL && !json_is_null(aud)) {
        if (!json_is_array(aud) || json_array_size(aud) > IDENTITY_MAX_AUDIENCES)
            return err_set(d, ERR_INVAL, "jwt_audiences: an array of at most %d strings",
                           IDENTITY_MAX_AUDIENCES);
        for (size_t i = 0; i < json_array_size(aud); i++) {
            json_t *v = json_array_get(aud, i);
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > IDENTITY_AUDIENCE_MAX_BYTES ||
                strlen(json_string_value(v)) != json_string_length(v))
                return err_set(d, ERR_INVAL, "jwt_audiences: each must be 1 to %d bytes",
                               IDENTITY_AUDIENCE_MAX_BYTES);
            r->aud[r->aud_count++] = json_string_value(v);
        }
    }
    return 0;
}

/* Signs what @p r asks for (mu held) and renders the success body into @p resp. */
static int issue_locked(identity_sentry_t *s, const svid_req_t *r, const spiffe_id_t *id,
                        EVP_PKEY *pub, const peer_t *peer, buf_t *resp, err_detail_t *d)
{
    int64_t now = (int64_t)time(NULL);
    identity__profile_t p;
    identity__jwt_claims_t c;
    X509 *leaf = NULL;
    buf_t chain, jwt;
    char serial[48], until[32];
    int rc;

    buf_init(&chain, IDENTITY_RESP_MAX_BYTES);
    buf_init(&jwt, IDENTITY_JWT_MAX_BYTES);
    memset(&p, 0, sizeof(p));
    p.uri = id->uri;
    p.client_auth = true;
    p.not_before = now - s->opts.allowed_clock_skew_s;
    p.not_after = now + s->opts.workload_cert_ttl_s;
    rc = identity__ca_sign(s->ca, pub, &p, &leaf, d);
    if (rc < 0)
        goto out;
    rc = identity__ca_chain_pem(s->ca, leaf, &chain);
    if (rc < 0) {
        rc = err_set(d, rc, "cannot encode the chain");
        goto out;
    }
    if (r->aud_count > 0) {
        memset(&c, 0, sizeof(c));
        c.iss = s->jwt_issuer;
        c.sub = id->uri;
        c.aud = r->aud;
        c.aud_count = r->aud_count;
        c.iat = now;
        c.nbf = now - s->opts.allowed_clock_skew_s;
        c.exp = now + s->opts.jwt_ttl_s;
        rc = identity__jwt_sign(s->ca->active.jwt_key, s->ca->active.jwt_kid, &c, &jwt, d);
        if (rc < 0)
            goto out;
    }
    identity__serial_hex(leaf, serial, sizeof(serial));
    identity__rfc3339(identity__asn1_unix(X509_get0_notAfter(leaf)), until, sizeof(until));
    buf_reset(resp);
    rc = buf_append_str(resp, "{");
    if (rc == 0)
        rc = put_member(resp, "cert_chain", buf_ptr(&chain), false);
    if (rc == 0)
        rc = put_member(resp, "trust_bundle", s->ca->bundle_pem, true);
    if (rc == 0)
        rc = put_member(resp, "valid_until", until, true);
    if (rc == 0 && r->aud_count > 0) {
        rc = put_member(resp, "jwt", buf_ptr(&jwt), true);
        if (rc == 0)
            rc = buf_printf(resp, ",\"jwt_expiry\":%lld", (long long)(now + s->opts.jwt_ttl_s));
    }
    if (rc == 0)
        rc = buf_append_str(resp, "}\n");
    if (rc < 0) {
        rc = err_set(d, rc, "response too large");
        goto out;
    }
    s->issued++;
    /* The key is never logged; the serial is what revocation or forensics would need. */
    log_info("sentry",
             "issued %s serial=%s not_after=%s jwt_audiences=%zu peer=%s (issued %llu, refused "
             "%llu)",
             id->uri, serial, until, r->aud_count, peer->desc, (unsigned long long)s->issued,
             (unsigned long long)s->refused);
out:
    X509_free(leaf);
    buf_free(&chain);
    buf_free(&jwt);
    return rc;
}

/*
 * Answers one request line into @p resp:
 *  1. parse and check the fields; the app id and namespace must form a valid SPIFFE ID outside
 *     the control-plane namespace;
 *  2. on TCP, the join token must allow that app id and namespace (on the Unix socket the peer's
 *     uid was checked before the request was read);
 *  3. the CSR must be well-formed and self-signed (its subject and extensions are ignored: the
 *     identity comes from steps 1–2, never from the CSR);
 *  4. sign and answer.
 */
static void handle_request(identity_sentry_t *s, const char *line, size_t n, const peer_t *peer,
                           buf_t *resp)
{
    json_t *doc = NULL;
    json_error_t jerr;
    svid_req_t r;
    spiffe_id_t id;
    EVP_PKEY *pub = NULL;
    err_detail_t d = {""};
    const char *code = "INVALID_ARGUMENT";
    int rc = 0;

    doc = json_loadb(line, n, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        rc = err_set(&d, ERR_PARSE, "request is not valid JSON: %s", jerr.text);
        goto out;
    }
    rc = parse_request(doc, &r, &d);
    if (rc < 0)
        goto out;
    rc = spiffe_id_from_parts(s->trust_domain, r.ns, r.app_id, &id);
    if (rc < 0) {
        rc = err_set(&d, rc, "app id \"%.64s\" or namespace \"%.64s\" is not valid in a SPIFFE ID",
                     r.app_id, r.ns);
        goto out;
    }
    if (strcmp(r.ns, IDENTITY_SENTRY_NAMESPACE) == 0) {
        code = "PERMISSION_DENIED";
        rc = err_set(&d, ERR_IDENTITY_DENIED, "namespace \"%s\" is reserved for the control plane",
                     r.ns);
        goto out;
    }
    if (peer->kind == CONN_TCP) {
        pthread_mutex_lock(&s->mu);
        refresh_locked(s);
        rc = s->tokens != NULL ? identity__tokens_check(s->tokens, r.token, r.ns, r.app_id, &d)
                               : err_set(&d, ERR_IDENTITY_DENIED, "no join tokens are configured");
        pthread_mutex_unlock(&s->mu);
        if (rc < 0) {
            code = "PERMISSION_DENIED";
            goto out;
        }
    }
    rc = identity__csr_pubkey(r.csr, strlen(r.csr), &pub, &d);
    if (rc < 0)
        goto out;
    pthread_mutex_lock(&s->mu);
    refresh_locked(s);
    rc = issue_locked(s, &r, &id, pub, peer, resp, &d);
    pthread_mutex_unlock(&s->mu);
    if (rc < 0)
        code = "INTERNAL";
out:
    if (rc < 0) {
        pthread_mutex_lock(&s->mu);
        s->refused++;
        pthread_mutex_unlock(&s->mu);
        if (strcmp(code, "INTERNAL") == 0)
            log_error("sentry", "signing for %s failed: %s", peer->desc, d.msg);
        else
            log_warn("sentry", "refused a request from %s: %s", peer->desc, d.msg);
        error_body(resp, code, d.msg);
    }
    EVP_PKEY_free(pub);
    json_decref(doc);
}

void identity__sentry_handle(identity_sentry_t *s, const char *line, size_t n, bool tcp,
                             buf_t *resp)
{
    peer_t peer = {tcp ? CONN_TCP : CONN_UNIX, tcp ? "fuzz (tcp)" : "fuzz (unix)"};

    handle_request(s, line, n, &peer, resp);
}

/* ---- connections ------------------------------------------------------------------------- */

static bool uid_allowed(const identity_sentry_t *s, uid_t uid)
{
    if (s->opts.allowed_uid_count == 0)
        return uid == s->own_uid;
    for (size_t i = 0; i < s->opts.allowed_uid_count; i++) {
        if (s->opts.allowed_uids[i] == uid)
            return true;
    }
    return false;
}

/* Serves one SVID request on @p io (plain or TLS). */
static void serve_svid(conn_t *c, identity__io_t *io)
{
    identity_sentry_t *s = c->s;
    peer_t peer = {c->kind, c->peer};
    err_detail_t d = {""};
    buf_t req, resp;
    const char *nl;
    int rc;

    buf_init(&req, IDENTITY_REQ_MAX_BYTES);
    buf_init(&resp, IDENTITY_RESP_MAX_BYTES);
    if (c->kind == CONN_UNIX) {
        struct ucred cred;
        socklen_t len = sizeof(cred);

        /* The kernel's word on who connected: the uid is that of the process at connect time. */
        if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 || len != sizeof(cred)) {
            error_body(&resp, "PERMISSION_DENIED", "cannot read peer credentials");
            goto reply;
        }
        snprintf(c->peer, sizeof(c->peer), "uid %u pid %ld", (unsigned)cred.uid, (long)cred.pid);
        if (!uid_allowed(s, cred.uid)) {
            pthread_mutex_lock(&s->mu);
            s->refused++;
            pthread_mutex_unlock(&s->mu);
            log_warn("sentry", "refused a request from %s: uid not allowed", c->peer);
            error_body(&resp, "PERMISSION_DENIED", "this user may not request identities");
            goto reply;
        }
    }
    rc = identity__io_read_until(io, &req, "\n", &d);
    if (rc == ERR_CLOSED) {
        /* A liveness probe (identity_sentry_ensure) connects and closes without a request. */
        goto out;
    }
    if (rc < 0) {
        pthread_mutex_lock(&s->mu);
        s->refused++;
        pthread_mutex_unlock(&s->mu);
        log_warn("sentry", "bad request from %s: %s", c->peer, d.msg);
        error_body(&resp, rc == ERR_TOO_LARGE ? "INVALID_ARGUMENT" : "INTERNAL", d.msg);
        goto reply;
    }
    nl = memchr(req.ptr, '\n', req.len);
    handle_request(s, req.ptr, nl ? (size_t)(nl - req.ptr) : req.len, &peer, &resp);
reply:
    if (identity__io_write(io, resp.ptr, resp.len, &d) < 0)
        log_warn("sentry", "cannot answer %s: %s", c->peer, d.msg);
    identity__io_finish(io);
out:
    buf_free(&req);
    buf_free(&resp);
}

/* True when the method [p, sp) is @p m. */
static bool is_method(const char *p, const char *sp, const char *m)
{
    return str_eq(p, (size_t)(sp - p), m);
}

/* Serves GET /.well-known/jwks.json and /.well-known/openid-configuration. */
static void serve_jwks(conn_t *c, identity__io_t *io)
{
    identity_sentry_t *s = c->s;
    err_detail_t d = {""};
    buf_t req, body, out;
    const char *status = "200 OK", *p, *sp1, *sp2, *eol;
    bool head = false;
    size_t plen;
    int rc;

    buf_init(&req, IDENTITY_HTTP_HEAD_MAX_BYTES);
    buf_init(&body, IDENTITY_STATE_FILE_MAX_BYTES);
    buf_init(&out, IDENTITY_STATE_FILE_MAX_BYTES + 1024);
    rc = identity__io_read_until(io, &req, "\r\n\r\n", &d);
    if (rc < 0) {
        if (rc != ERR_CLOSED)
            log_debug("sentry", "JWKS request from %s: %s", c->peer, d.msg);
        goto done;
    }
    /* Request line: METHOD SP target SP HTTP/1.x (RFC 9112 §3). */
    p = req.ptr;
    eol = strstr(p, "\r\n");
    sp1 = eol ? memchr(p, ' ', (size_t)(eol - p)) : NULL;
    sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1)) : NULL;
    if (sp1 == NULL || sp2 == NULL || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
        status = "400 Bad Request";
        rc = buf_append_str(&body, "{\"error\":\"bad request\"}");
    } else if (!is_method(p, sp1, "GET") && !is_method(p, sp1, "HEAD")) {
        status = "405 Method Not Allowed";
        rc = buf_append_str(&body, "{\"error\":\"method not allowed\"}");
    } else {
        head = is_method(p, sp1, "HEAD");
        /* The query string, if any, does not select anything here. */
        plen = (size_t)(sp2 - sp1 - 1);
        for (size_t i = 0; i < plen; i++) {
            if (sp1[1 + i] == '?') {
                plen = i;
                break;
            }
        }
        pthread_mutex_lock(&s->mu);
        refresh_locked(s);
        if (plen == 22 && memcmp(sp1 + 1, "/.well-known/jwks.json", 22) == 0) {
            rc = buf_append_str(&body, s->ca->jwks_json);
        } else if (plen == 33 && memcmp(sp1 + 1, "/.well-known/openid-configuration", 33) == 0 &&
                   s->jwt_issuer != NULL) {
            rc = buf_append_str(&body, "{");
            if (rc == 0)
                rc = put_member(&body, "issuer", s->jwt_issuer, false);
            if (rc == 0)
                rc = buf_printf(&body, ",\"jwks_uri\":\"");
            if (rc == 0)
                rc = buf_append_json_str(&body, s->jwt_issuer, strlen(s->jwt_issuer));
            if (rc == 0)
                rc = buf_append_str(
                    &body, "/.well-known/jwks.json\",\"response_types_supported\":[\"id_token\"],"
                           "\"subject_types_supported\":[\"public\"],"
                           "\"id_token_signing_alg_values_supported\":[\"ES256\"]}");
        } else {
            status = "404 Not Found";
            rc = buf_append_str(&body, "{\"error\":\"not found\"}");
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (rc < 0)
        goto done;
    rc = buf_printf(&out,
                    "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n"
                    "Cache-Control: max-age=300\r\nConnection: close\r\n\r\n",
                    status, body.len);
    if (rc == 0 && !head)
        rc = buf_append(&out, body.ptr, body.len);
    if (rc == 0 && identity__io_write(io, out.ptr, out.len, &d) < 0)
        log_debug("sentry", "JWKS answer to %s: %s", c->peer, d.msg);
    identity__io_finish(io);
done:
    buf_free(&req);
    buf_free(&body);
    buf_free(&out);
}

static void conn_done(identity_sentry_t *s)
{
    pthread_mutex_lock(&s->conn_mu);
    s->active--;
    pthread_cond_broadcast(&s->conn_cv);
    pthread_mutex_unlock(&s->conn_mu);
}

/* The thread of one connection: TLS when needed, one exchange, close. */
static void *conn_main(void *arg)
{
    conn_t *c = arg;
    identity_sentry_t *s = c->s;
    identity__io_t io = {c->fd, NULL, identity__now_ms() + s->opts.io_timeout_ms};
    SSL_CTX *ctx = NULL;
    err_detail_t d = {""};
    int rc = 0;

    if (c->kind != CONN_UNIX) {
        pthread_mutex_lock(&s->mu);
        refresh_locked(s);
        rc = serving_ctx_get_locked(s, c->kind, &ctx, &d);
        pthread_mutex_unlock(&s->mu);
        if (rc < 0) {
            log_error("sentry", "no serving certificate: %s", d.msg);
            goto out;
        }
        ERR_clear_error();
        io.ssl = SSL_new(ctx);
        if (io.ssl == NULL || SSL_set_fd(io.ssl, c->fd) != 1) {
            identity__ossl_fail(&d, ERR_NOMEM, "cannot start TLS");
            goto out;
        }
        SSL_set_accept_state(io.ssl);
        if (identity__io_handshake(&io, &d) < 0) {
            log_debug("sentry", "TLS handshake with %s failed: %s", c->peer, d.msg);
            goto out;
        }
    }
    if (c->kind == CONN_JWKS)
        serve_jwks(c, &io);
    else
        serve_svid(c, &io);
out:
    SSL_free(io.ssl);
    SSL_CTX_free(ctx);
    ERR_clear_error();
    close(c->fd);
    mem_free(c);
    conn_done(s);
    return NULL;
}

/* Accepts one connection from @p lfd and hands it to a thread, unless too many are open. */
static void accept_one(identity_sentry_t *s, int lfd, conn_kind_t kind)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    pthread_attr_t attr;
    pthread_t tid;
    conn_t *c;
    int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);

    if (fd < 0)
        return;
    pthread_mutex_lock(&s->conn_mu);
    if (s->active >= s->opts.max_connections) {
        pthread_mutex_unlock(&s->conn_mu);
        log_warn("sentry", "too many connections (%d); dropping one", s->opts.max_connections);
        close(fd);
        return;
    }
    s->active++;
    pthread_mutex_unlock(&s->conn_mu);
    c = mem_calloc(sizeof(*c));
    c->s = s;
    c->fd = fd;
    c->kind = kind;
    if (kind == CONN_UNIX) {
        snprintf(c->peer, sizeof(c->peer), "unix socket");
    } else {
        char host[INET6_ADDRSTRLEN] = "?", port[8] = "?";
        getnameinfo((struct sockaddr *)&ss, sl, host, sizeof(host), port, sizeof(port),
                    NI_NUMERICHOST | NI_NUMERICSERV);
        snprintf(c->peer, sizeof(c->peer), "%s port %s", host, port);
    }
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    /* Small stacks: a connection thread needs a few SPIFFE IDs and buffers headers. */
    pthread_attr_setstacksize(&attr, 256 * 1024);
    if (pthread_create(&tid, &attr, conn_main, c) != 0) {
        log_warn("sentry", "cannot start a connection thread; dropping %s", c->peer);
        close(fd);
        mem_free(c);
        conn_done(s);
    }
    pthread_attr_destroy(&attr);
}

/* ---- listeners --------------------------------------------------------------------------- */

static int listen_unix(const char *path, int *out, err_detail_t *d)
{
    struct sockaddr_un sa;
    size_t n = strlen(path);
    int fd;

    if (n >= sizeof(sa.sun_path))
        return err_set(d, ERR_TOO_LARGE, "socket path longer than %zu bytes: %s",
                       sizeof(sa.sun_path) - 1, path);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, n + 1);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_set(d, ERR_IO, "socket: %s", strerror(errno));
    /* We hold the sentry lock, so a socket file left here belongs to a sentry that died. */
    unlink(path);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
        listen(fd, SENTRY_BACKLOG) < 0) {
        int e = errno;
        close(fd);
        return err_set(d, ERR_IO, "cannot listen on %s: %s", path, strerror(e));
    }
    *out = fd;
    return 0;
}

/* Listens on a numeric @p addr and @p port (0 = any free port); *bound receives the port. */
static int listen_tcp(const char *addr, int port, int *out, int *bound, err_detail_t *d)
{
    struct addrinfo hints, *ai = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char ps[8];
    int fd = -1, one = 1, rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
    snprintf(ps, sizeof(ps), "%d", port);
    rc = getaddrinfo(addr, ps, &hints, &ai);
    if (rc != 0)
        return err_set(d, ERR_INVAL, "bad listen address \"%s\": %s", addr, gai_strerror(rc));
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SENTRY_BACKLOG) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(ai);
        return err_set(d, ERR_IO, "cannot listen on %s:%d: %s", addr, port, strerror(e));
    }
    freeaddrinfo(ai);
    *bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                            : ((struct sockaddr_in *)&ss)->sin_port);
    *out = fd;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL ? mem_strdup(s) : NULL;
}

int identity_sentry_new(const identity_sentry_opts_t *opts, identity_sentry_t **out,
                        err_detail_t *d)
{
    identity_sentry_t *s;
    char path[IDENTITY_PATH_MAX], pid[32];
    int rc, n;

    if (opts == NULL || opts->state_dir == NULL || opts->trust_domain == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "a state dir and a trust domain are required");
    if (opts->workload_cert_ttl_s < 1 || opts->allowed_clock_skew_s < 0 || opts->jwt_ttl_s < 1 ||
        opts->max_connections < 1 || opts->io_timeout_ms < 1 ||
        opts->allowed_uid_count > IDENTITY_MAX_ALLOWED_UIDS)
        return err_set(d, ERR_INVAL, "sentry options out of range");
    s = mem_calloc(sizeof(*s));
    s->opts = *opts;
    s->state_dir = mem_strdup(opts->state_dir);
    s->trust_domain = mem_strdup(opts->trust_domain);
    s->token_file = dup_or_null(opts->join_token_file);
    s->own_uid = geteuid();
    s->lock_fd = s->unix_fd = s->tcp_fd = s->jwks_fd = -1;
    s->stop_pipe[0] = s->stop_pipe[1] = -1;
    s->opts.state_dir = s->state_dir;
    s->opts.trust_domain = s->trust_domain;
    s->opts.join_token_file = s->token_file;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    pthread_cond_init(&s->conn_cv, NULL);
    /* A client that goes away mid-answer must cost a write error, not the process. */
    signal(SIGPIPE, SIG_IGN);

    rc = identity__ca_open(s->state_dir, s->trust_domain, &s->ca, d);
    if (rc < 0)
        goto fail;
    if (identity__path(path, sizeof(path), s->state_dir, SENTRY_LOCK_FILE) < 0) {
        rc = err_set(d, ERR_TOO_LARGE, "state dir path too long");
        goto fail;
    }
    rc = identity__lock(path, false, &s->lock_fd, d);
    if (rc < 0) {
        rc = err_set(d, rc, "another sentry already serves %s", s->state_dir);
        goto fail;
    }
    n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(s->lock_fd, 0) < 0 || write(s->lock_fd, pid, (size_t)n) != n)
        log_warn("sentry", "cannot record our pid in %s", path);
    if (opts->socket_path != NULL) {
        s->socket_path = mem_strdup(opts->socket_path);
    } else {
        if (identity__path(path, sizeof(path), s->state_dir, SENTRY_SOCKET_FILE) < 0) {
            rc = err_set(d, ERR_TOO_LARGE, "state dir path too long");
            goto fail;
        }
        s->socket_path = mem_strdup(path);
    }
    s->opts.socket_path = s->socket_path;
    rc = listen_unix(s->socket_path, &s->unix_fd, d);
    if (rc < 0)
        goto fail;
    if (s->token_file != NULL) {
        rc = identity__tokens_load(s->token_file, &s->tokens, d);
        if (rc < 0)
            goto fail;
        identity__stamp(s->token_file, &s->tokens_stamp);
        rc = listen_tcp(opts->listen_address, opts->port, &s->tcp_fd, &s->tcp_port, d);
        if (rc < 0)
            goto fail;
    }
    if (opts->jwks_port != 0) {
        rc = listen_tcp(opts->jwks_address, opts->jwks_port < 0 ? 0 : opts->jwks_port, &s->jwks_fd,
                        &s->jwks_port, d);
        if (rc < 0)
            goto fail;
    }
    if (opts->jwt_issuer != NULL) {
        s->jwt_issuer = mem_strdup(opts->jwt_issuer);
    } else if (s->jwks_fd >= 0) {
        n = snprintf(path, sizeof(path), "https://localhost:%d", s->jwks_port);
        s->jwt_issuer = mem_strndup(path, (size_t)n);
    }
    s->opts.jwt_issuer = s->jwt_issuer;
    if (pipe2(s->stop_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        rc = err_set(d, ERR_IO, "pipe: %s", strerror(errno));
        goto fail;
    }
    log_info(
        "sentry", "serving trust domain \"%s\" from %s on %s%s%s; workload TTL %ds, clock skew %ds",
        s->trust_domain, s->state_dir, s->socket_path,
        s->tcp_fd >= 0 ? " and TCP (join tokens)" : "", s->jwks_fd >= 0 ? " and HTTPS (JWKS)" : "",
        s->opts.workload_cert_ttl_s, s->opts.allowed_clock_skew_s);
    *out = s;
    return 0;
fail:
    identity_sentry_free(s);
    return rc;
}

void identity__sentry_ports(const identity_sentry_t *s, int *tcp, int *jwks)
{
    *tcp = s->tcp_fd >= 0 ? s->tcp_port : 0;
    *jwks = s->jwks_fd >= 0 ? s->jwks_port : 0;
}

int identity_sentry_run(identity_sentry_t *s)
{
    struct pollfd p[4];
    conn_kind_t kinds[4];
    int n = 0;

    p[n] = (struct pollfd){s->stop_pipe[0], POLLIN, 0};
    kinds[n++] = CONN_UNIX;
    p[n] = (struct pollfd){s->unix_fd, POLLIN, 0};
    kinds[n++] = CONN_UNIX;
    if (s->tcp_fd >= 0) {
        p[n] = (struct pollfd){s->tcp_fd, POLLIN, 0};
        kinds[n++] = CONN_TCP;
    }
    if (s->jwks_fd >= 0) {
        p[n] = (struct pollfd){s->jwks_fd, POLLIN, 0};
        kinds[n++] = CONN_JWKS;
    }
    for (;;) {
        int r = poll(p, (nfds_t)n, -1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            log_error("sentry", "poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents != 0)
            break;
        for (int i = 1; i < n; i++) {
            if (p[i].revents & POLLIN)
                accept_one(s, p[i].fd, kinds[i]);
        }
    }
    /* Connection threads end by their deadline at the latest. */
    pthread_mutex_lock(&s->conn_mu);
    while (s->active > 0)
        pthread_cond_wait(&s->conn_cv, &s->conn_mu);
    pthread_mutex_unlock(&s->conn_mu);
    log_info("sentry", "stopped (issued %llu, refused %llu)", (unsigned long long)s->issued,
             (unsigned long long)s->refused);
    return 0;
}

void identity_sentry_stop(identity_sentry_t *s)
{
    if (s != NULL && s->stop_pipe[1] >= 0) {
        ssize_t w = write(s->stop_pipe[1], "x", 1);
        (void)w;
    }
}

void identity_sentry_free(identity_sentry_t *s)
{
    if (s == NULL)
        return;
    if (s->unix_fd >= 0) {
        close(s->unix_fd);
        unlink(s->socket_path);
    }
    if (s->tcp_fd >= 0)
        close(s->tcp_fd);
    if (s->jwks_fd >= 0)
        close(s->jwks_fd);
    if (s->stop_pipe[0] >= 0)
        close(s->stop_pipe[0]);
    if (s->stop_pipe[1] >= 0)
        close(s->stop_pipe[1]);
    identity__unlock(s->lock_fd);
    identity__ca_free(s->ca);
    identity__tokens_free(s->tokens);
    SSL_CTX_free(s->tcp_ctx);
    SSL_CTX_free(s->jwks_ctx);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->conn_mu);
    pthread_cond_destroy(&s->conn_cv);
    mem_free(s->state_dir);
    mem_free(s->trust_domain);
    mem_free(s->socket_path);
    mem_free(s->token_file);
    mem_free(s->jwt_issuer);
    mem_free(s);
}
