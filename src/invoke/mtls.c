/*
 * The sidecar's workload identity: an SVID from the local sentry, the TLS contexts built from it
 * for the internal port (server) and calls to peer sidecars (client), and their rotation. The
 * contexts are swapped under a mutex taken only when a connection is created, never per request.
 */
#include <openssl/ssl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "identity/identity.h"
#include "identity/spiffe.h"
#include "invoke/invoke_int.h"

struct invoke_mtls {
    invoke_sidecar_t *sc;      /* owner */
    uv_mutex_t lock;           /* guards the three pointers below */
    SSL_CTX *server_ctx;       /* for the internal port; one reference */
    SSL_CTX *client_ctx;       /* for calls to peers; one reference */
    identity_svid_t *svid;     /* current SVID; one reference */
    char trust_domain[256];    /* ours, also expected of peers */
    net_tls_t tls;             /* handed to the net layer */
    uv_timer_t renew;          /* next renewal, on the main loop */
    uv_work_t work;            /* a renewal in flight */
    identity_svid_t *fetched;  /* result of the renewal in flight */
    err_detail_t fetch_detail; /* its error */
    int fetch_rc;              /* its outcome */
    bool renewing;             /* work in flight */
    bool closed;               /* stop requested */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct ssl_ctx_st *get_ctx(void *arg, bool server)
{
    invoke_mtls_t *m = arg;
    SSL_CTX *c;
    uv_mutex_lock(&m->lock);
    c = server ? m->server_ctx : m->client_ctx;
    if (c != NULL)
        SSL_CTX_up_ref(c);
    uv_mutex_unlock(&m->lock);
    return c;
}

static int prepare(struct ssl_st *ssl, const char *expect, const char *session_key, void *arg)
{
    spiffe_id_t want;
    (void)arg;
    if (expect == NULL || spiffe_id_parse(expect, strlen(expect), &want) < 0)
        return ERR_INVAL;
    return identity_tls_client_prepare(ssl, &want, session_key);
}

static int check_peer(struct ssl_st *ssl, const char *expect, char *id, size_t id_len, void *arg,
                      err_detail_t *why)
{
    spiffe_id_t peer;
    int rc;
    (void)expect; /* enforced inside the handshake by prepare, re-checked here */
    (void)arg;
    rc = identity_tls_peer_id(ssl, &peer, why);
    if (rc < 0)
        return ERR_NET_PEER_REFUSED;
    if (id != NULL)
        snprintf(id, id_len, "%s", peer.uri);
    return 0;
}

/* Builds both contexts from @p svid and makes them current. Takes over @p svid's reference. */
static int install(invoke_mtls_t *m, identity_svid_t *svid, err_detail_t *d)
{
    SSL_CTX *s = NULL, *c = NULL, *old_s, *old_c;
    identity_svid_t *old;
    int rc = identity_tls_server_ctx_new(svid, &s, d);
    if (rc == 0)
        rc = identity_tls_client_ctx_new(svid, &c, d);
    if (rc < 0) {
        SSL_CTX_free(s);
        identity_svid_unref(svid);
        return rc;
    }
    uv_mutex_lock(&m->lock);
    old_s = m->server_ctx;
    old_c = m->client_ctx;
    old = m->svid;
    m->server_ctx = s;
    m->client_ctx = c;
    m->svid = svid;
    uv_mutex_unlock(&m->lock);
    /* Connections made with the old contexts keep their own references. */
    SSL_CTX_free(old_s);
    SSL_CTX_free(old_c);
    identity_svid_unref(old);
    snprintf(m->trust_domain, sizeof(m->trust_domain), "%s", identity_svid_id(svid)->trust_domain);
    {
        time_t until = (time_t)identity_svid_not_after(svid);
        struct tm tm;
        char when[40];
        gmtime_r(&until, &tm);
        strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        log_info("mtls", "workload certificate for %s installed (serial %s, valid until %s)",
                 identity_svid_id(svid)->uri, identity_svid_serial(svid), when);
    }
    return 0;
}

static int fetch(invoke_sidecar_t *sc, identity_svid_t **out, err_detail_t *d)
{
    identity_client_opts_t co = {.home = sc->opts->home};
    identity_svid_req_t req = {.app_id = sc->opts->app_id, .namespace_ = sc->opts->namespace_};
    return identity_svid_fetch(&co, &req, out, d);
}

int invoke__mtls_start(invoke_sidecar_t *sc, invoke_mtls_t **out, err_detail_t *d)
{
    invoke_mtls_t *m = mem_calloc(sizeof(*m));
    identity_svid_t *svid = NULL;
    int rc;

    m->sc = sc;
    uv_mutex_init(&m->lock);
    m->tls = (net_tls_t){get_ctx, check_peer, prepare, m};
    rc = identity_sentry_ensure(sc->opts->home, NULL, d);
    if (rc == 0)
        rc = fetch(sc, &svid, d);
    if (rc == 0)
        rc = install(m, svid, d);
    invoke__metrics_mtls(sc->metrics, rc == 0 ? INVOKE_MTLS_INIT : INVOKE_MTLS_INIT_FAIL);
    if (rc < 0) {
        uv_mutex_destroy(&m->lock);
        mem_free(m);
        return rc;
    }
    *out = m;
    return 0;
}

const net_tls_t *invoke__mtls_tls(invoke_mtls_t *m)
{
    return &m->tls;
}

int invoke__mtls_peer_uri(invoke_mtls_t *m, const char *app_id, const char *ns, char *out,
                          size_t len)
{
    return spiffe_id_format(m->trust_domain, ns, app_id, out, len);
}

static void schedule(invoke_mtls_t *m, int64_t at_ms);

static void do_fetch(uv_work_t *w)
{
    invoke_mtls_t *m = w->data;
    m->fetch_detail.msg[0] = '\0';
    m->fetch_rc = identity_sentry_ensure(m->sc->opts->home, NULL, &m->fetch_detail);
    if (m->fetch_rc == 0)
        m->fetch_rc = fetch(m->sc, &m->fetched, &m->fetch_detail);
}

static void after_fetch(uv_work_t *w, int status)
{
    invoke_mtls_t *m = w->data;
    err_detail_t d = {{0}};
    int rc = status < 0 ? status : m->fetch_rc;

    m->renewing = false;
    if (m->closed) {
        identity_svid_unref(m->fetched);
        m->fetched = NULL;
        return;
    }
    if (rc == 0) {
        identity_svid_t *s = m->fetched;
        m->fetched = NULL;
        rc = install(m, s, &d);
    } else {
        snprintf(d.msg, sizeof(d.msg), "%s", m->fetch_detail.msg);
    }
    invoke__metrics_mtls(m->sc->metrics, rc == 0 ? INVOKE_MTLS_ROTATED : INVOKE_MTLS_ROTATED_FAIL);
    if (rc < 0) {
        log_error("mtls", "certificate renewal failed (retrying in %d s): %s",
                  IDENTITY_RENEW_RETRY_MS / 1000, d.msg[0] ? d.msg : err_str(rc));
        schedule(m, now_ms() + IDENTITY_RENEW_RETRY_MS);
        return;
    }
    schedule(m, identity_svid_renew_at_ms(m->svid));
}

static void on_renew(uv_timer_t *t)
{
    invoke_mtls_t *m = t->data;
    if (m->renewing || m->closed)
        return;
    m->renewing = true;
    m->work.data = m;
    if (uv_queue_work(t->loop, &m->work, do_fetch, after_fetch) < 0) {
        m->renewing = false;
        schedule(m, now_ms() + IDENTITY_RENEW_RETRY_MS);
    }
}

static void schedule(invoke_mtls_t *m, int64_t at_ms)
{
    int64_t wait = at_ms - now_ms();
    if (wait < 0)
        wait = 0;
    uv_timer_start(&m->renew, on_renew, (uint64_t)wait, 0);
}

void invoke__mtls_run(invoke_mtls_t *m, uv_loop_t *loop)
{
    uv_timer_init(loop, &m->renew);
    m->renew.data = m;
    schedule(m, identity_svid_renew_at_ms(m->svid));
}

void invoke__mtls_stop(invoke_mtls_t *m)
{
    if (m == NULL || m->closed)
        return;
    m->closed = true;
    uv_timer_stop(&m->renew);
    uv_close((uv_handle_t *)&m->renew, NULL);
}

void invoke__mtls_free(invoke_mtls_t *m)
{
    if (m == NULL)
        return;
    SSL_CTX_free(m->server_ctx);
    SSL_CTX_free(m->client_ctx);
    identity_svid_unref(m->svid);
    identity_svid_unref(m->fetched);
    uv_mutex_destroy(&m->lock);
    mem_free(m);
}
