/*
 * `outrigger run`: a sidecar and an app side by side, like `dapr run`.
 *
 * One libuv loop drives everything: the two child processes, their four output pipes (re-emitted
 * line by line with a prefix), SIGINT/SIGTERM/SIGHUP, the health poll of the sidecar and the
 * kill timers. The run moves through the states below; every change goes through set_state().
 *
 *   WAIT_HEALTHY --healthz 204--> RUNNING
 *   WAIT_HEALTHY --timeout, signal, app cannot start--> STOP_SIDECAR
 *   RUNNING --signal (forwarded to the app), or the sidecar died--> STOP_APP
 *   RUNNING without an app --signal (forwarded to the sidecar)--> STOP_SIDECAR
 *   RUNNING, STOP_APP --app exited--> STOP_SIDECAR
 *   any --both children exited--> DRAIN --output read, or RUN_DRAIN_MS--> DONE
 */
#include "cli/cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/str.h"
#include "cli/runfile.h"

/* Longest output line re-emitted whole; longer lines are split at this many bytes. */
#define RUN_LINE_MAX 8192
/* Bytes read from a child's pipe per read callback. */
#define RUN_READ_BUF 16384
/* How long the sidecar has to answer 204 on /v1.0/healthz, and how often it is asked. */
#define RUN_HEALTH_TIMEOUT_MS 30000
#define RUN_HEALTH_INTERVAL_MS 100
/* One health request may take this long before it counts as failed. */
#define RUN_PROBE_TIMEOUT_MS 2000
/* The sidecar gets its own graceful shutdown time plus this before SIGKILL. */
#define RUN_SIDECAR_KILL_EXTRA_S 5
/* The app gets this long after SIGTERM (sent because its sidecar died) before SIGKILL. */
#define RUN_APP_KILL_S 10
/* After both children exited, output still buffered in pipes (or held open by grandchildren) is
 * read for at most this long. */
#define RUN_DRAIN_MS 500
/* Signals to `run` after which children are killed rather than asked. */
#define RUN_SIGNALS_TO_KILL 3

enum run_state {
    RUN_WAIT_HEALTHY, /* sidecar started; polling its health */
    RUN_RUNNING,      /* sidecar healthy; the app (if any) running */
    RUN_STOP_APP,     /* the app was signalled; waiting for it to exit */
    RUN_STOP_SIDECAR, /* the app is gone (or never came); the sidecar got SIGTERM */
    RUN_DRAIN,        /* both children exited; flushing their output */
    RUN_DONE,         /* every handle is closing */
};

static const char *const state_names[] = {"WAIT_HEALTHY", "RUNNING", "STOP_APP",
                                          "STOP_SIDECAR", "DRAIN",   "DONE"};

typedef struct run run_t;

/* One child output pipe, re-emitted line by line with a prefix. */
typedef struct run_stream {
    uv_pipe_t pipe;               /* read end of the child's stdout or stderr */
    run_t *run;                   /* owner */
    const char *prefix;           /* static "== APP == " or "== OUTRIGGER == " */
    size_t prefix_len;            /* bytes of prefix at the start of line */
    int out_fd;                   /* where lines go: 1 or 2 */
    bool eof;                     /* nothing more will be read */
    size_t len;                   /* bytes in line, prefix included */
    char line[RUN_LINE_MAX + 64]; /* prefix, then the pending partial line */
    char rbuf[RUN_READ_BUF];      /* lent to libuv for reads */
} run_stream_t;

/* A single GET /v1.0/healthz in flight. */
typedef struct run_probe {
    uv_tcp_t tcp;      /* the connection; closed after each attempt */
    uv_connect_t conn; /* connect request */
    uv_write_t wr;     /* request write */
    bool active;       /* tcp is initialised and not yet closed */
    bool closing;      /* uv_close was called */
    bool ok;           /* the answer was 204 */
    uint64_t started;  /* uv_now when the attempt began, ms */
    size_t len;        /* bytes in resp */
    char resp[32];     /* start of the status line */
    char rbuf[256];    /* lent to libuv for reads */
} run_probe_t;

struct run {
    uv_loop_t loop;                /* private loop of this command */
    cli_args_t *args;              /* borrowed: the parsed command line */
    enum run_state state;          /* changed only through set_state() */
    int exit_code;                 /* -1 until decided */
    int signals_seen;              /* SIGINT/SIGTERM/SIGHUP received */
    uv_process_t sidecar;          /* the `outrigger sidecar` child */
    uv_process_t app;              /* the app child */
    bool sidecar_inited;           /* uv_spawn was called for it (the handle must be closed) */
    bool app_inited;               /* likewise for the app */
    bool sidecar_alive;            /* spawned and not yet exited */
    bool app_alive;                /* likewise */
    bool sidecar_termed;           /* a stop signal was sent to the sidecar */
    run_stream_t sc_out, sc_err;   /* the sidecar's stdout and stderr */
    run_stream_t app_out, app_err; /* the app's stdout and stderr */
    uv_signal_t sig[3];            /* SIGINT, SIGTERM, SIGHUP */
    uv_timer_t health_timer;       /* drives the health poll */
    uv_timer_t sidecar_kill_timer; /* SIGKILL for a sidecar that does not stop */
    uv_timer_t app_kill_timer;     /* SIGKILL for an app that does not stop */
    uv_timer_t drain_timer;        /* bounds DRAIN */
    uint64_t health_deadline;      /* uv_now by which the sidecar must be healthy, ms */
    run_probe_t probe;             /* the health request in flight */
    struct sockaddr_storage addr;  /* where the sidecar's API listens, for the probe */
    char authority[80];            /* "127.0.0.1:3500" or "[::1]:3500" */
    char req[256];                 /* the health request */
    char *runfile;                 /* owned: registry entry path, or NULL */
    cli_argv_t sc_argv, sc_env;    /* owned: the sidecar's argv and environment */
    cli_argv_t app_argv, app_env;  /* owned: the app's argv and environment */
};

static void stop_sidecar(run_t *r);
static void check_done(run_t *r);

/* Changes state, tracing old -> new when debug logging is on. */
static void set_state_at(run_t *r, enum run_state s, int line)
{
    log_debug("run", "state %s -> %s (run.c:%d)", state_names[r->state], state_names[s], line);
    r->state = s;
}
#define set_state(r, s) set_state_at((r), (s), __LINE__)

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A message from `run` itself, on stderr, prefixed like the rest of the CLI. */
static void note(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "outrigger: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
}

/* Writes all of [p, p+n) to @p fd. A terminal shared with a child may have been made
 * non-blocking by it, so EAGAIN waits for room instead of losing output. Errors drop the rest. */
static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                struct pollfd pfd = {fd, POLLOUT, 0};
                if (poll(&pfd, 1, 1000) > 0)
                    continue;
            }
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

/* ---- output relay ---- */

static void stream_emit(run_stream_t *s)
{
    s->line[s->len++] = '\n';
    write_all(s->out_fd, s->line, s->len);
    s->len = s->prefix_len;
}

/* Splits [p, p+n) into lines; a line reaching RUN_LINE_MAX bytes is emitted as is. */
static void stream_feed(run_stream_t *s, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;
        size_t room = RUN_LINE_MAX - (s->len - s->prefix_len);

        if (take > room)
            take = room;
        memcpy(s->line + s->len, p, take);
        s->len += take;
        p += take;
        n -= take;
        if (nl != NULL && p == nl) {
            p++;
            n--;
            stream_emit(s);
        } else if (s->len - s->prefix_len == RUN_LINE_MAX) {
            stream_emit(s);
        }
    }
}

static void stream_flush(run_stream_t *s)
{
    if (s->len > s->prefix_len)
        stream_emit(s);
}

static void stream_init(run_t *r, run_stream_t *s, const char *prefix, int out_fd)
{
    s->run = r;
    s->prefix = prefix;
    s->prefix_len = strlen(prefix);
    s->out_fd = out_fd;
    s->eof = false;
    memcpy(s->line, prefix, s->prefix_len);
    s->len = s->prefix_len;
    /* Cannot fail for a non-IPC pipe on a live loop. */
    (void)uv_pipe_init(&r->loop, &s->pipe, 0);
    s->pipe.data = s;
}

static void on_stream_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    run_stream_t *s = h->data;
    (void)suggested;
    *buf = uv_buf_init(s->rbuf, sizeof(s->rbuf));
}

static void stream_end(run_stream_t *s)
{
    if (s->eof)
        return;
    s->eof = true;
    stream_flush(s);
    uv_read_stop((uv_stream_t *)&s->pipe);
}

static void on_stream_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    run_stream_t *s = st->data;

    if (nread > 0) {
        stream_feed(s, buf->base, (size_t)nread);
        return;
    }
    if (nread < 0) {
        stream_end(s);
        check_done(s->run);
    }
}

static void stream_start(run_stream_t *s)
{
    if (uv_read_start((uv_stream_t *)&s->pipe, on_stream_alloc, on_stream_read) < 0)
        s->eof = true;
}

/* ---- health probe ---- */

static void on_probe_closed(uv_handle_t *h);

static void probe_finish(run_t *r, bool ok)
{
    run_probe_t *p = &r->probe;

    if (!p->active || p->closing)
        return;
    p->closing = true;
    p->ok = ok;
    uv_close((uv_handle_t *)&p->tcp, on_probe_closed);
}

static bool status_is_204(const char *s, size_t n)
{
    /* "HTTP/1.x 204" */
    return n >= 12 && memcmp(s, "HTTP/1.", 7) == 0 && s[8] == ' ' && memcmp(s + 9, "204", 3) == 0;
}

static void on_probe_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    run_t *r = h->data;
    (void)suggested;
    *buf = uv_buf_init(r->probe.rbuf, sizeof(r->probe.rbuf));
}

static void on_probe_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    run_t *r = st->data;
    run_probe_t *p = &r->probe;

    if (nread < 0) {
        probe_finish(r, status_is_204(p->resp, p->len));
        return;
    }
    for (ssize_t i = 0; i < nread && p->len < sizeof(p->resp); i++)
        p->resp[p->len++] = buf->base[i];
    if (p->len >= 12)
        probe_finish(r, status_is_204(p->resp, p->len));
}

static void on_probe_write(uv_write_t *req, int status)
{
    run_t *r = req->data;
    if (status < 0)
        probe_finish(r, false);
}

static void on_probe_connect(uv_connect_t *req, int status)
{
    run_t *r = req->data;
    run_probe_t *p = &r->probe;
    uv_buf_t b = uv_buf_init(r->req, (unsigned)strlen(r->req));

    if (status < 0 || p->closing) {
        probe_finish(r, false);
        return;
    }
    p->wr.data = r;
    if (uv_write(&p->wr, (uv_stream_t *)&p->tcp, &b, 1, on_probe_write) < 0 ||
        uv_read_start((uv_stream_t *)&p->tcp, on_probe_alloc, on_probe_read) < 0)
        probe_finish(r, false);
}

static void probe_start(run_t *r)
{
    run_probe_t *p = &r->probe;

    memset(p, 0, sizeof(*p));
    if (uv_tcp_init(&r->loop, &p->tcp) < 0)
        return;
    p->active = true;
    p->started = uv_now(&r->loop);
    p->tcp.data = r;
    p->conn.data = r;
    if (uv_tcp_connect(&p->conn, &p->tcp, (const struct sockaddr *)&r->addr, on_probe_connect) < 0)
        probe_finish(r, false);
}

static void on_healthy(run_t *r);

static void on_probe_closed(uv_handle_t *h)
{
    run_t *r = h->data;
    bool ok = r->probe.ok;

    r->probe.active = false;
    r->probe.closing = false;
    if (ok && r->state == RUN_WAIT_HEALTHY)
        on_healthy(r);
}

static void on_health_tick(uv_timer_t *t)
{
    run_t *r = t->data;
    uint64_t now = uv_now(&r->loop);

    if (r->state != RUN_WAIT_HEALTHY) {
        uv_timer_stop(t);
        return;
    }
    if (now >= r->health_deadline) {
        note("the sidecar did not become healthy within %d s (GET http://%s/v1.0/healthz); "
             "stopping it",
             RUN_HEALTH_TIMEOUT_MS / 1000, r->authority);
        if (r->exit_code < 0)
            r->exit_code = 1;
        probe_finish(r, false);
        stop_sidecar(r);
        return;
    }
    if (r->probe.active) {
        if (now - r->probe.started > RUN_PROBE_TIMEOUT_MS)
            probe_finish(r, false);
        return;
    }
    probe_start(r);
}

/* ---- children ---- */

static void on_sidecar_kill_timer(uv_timer_t *t)
{
    run_t *r = t->data;
    if (r->sidecar_alive) {
        note("the sidecar did not stop in time; killing it");
        uv_process_kill(&r->sidecar, SIGKILL);
    }
}

static void on_app_kill_timer(uv_timer_t *t)
{
    run_t *r = t->data;
    if (r->app_alive) {
        note("the app did not stop in time; killing it");
        uv_process_kill(&r->app, SIGKILL);
    }
}

/* Asks the sidecar to stop with @p signum, then SIGKILL after its grace period. */
static void stop_sidecar_with(run_t *r, int signum)
{
    uint64_t grace_ms =
        ((uint64_t)r->args->opts.graceful_shutdown_seconds + RUN_SIDECAR_KILL_EXTRA_S) * 1000;

    uv_timer_stop(&r->health_timer);
    if (!r->sidecar_alive) {
        check_done(r);
        return;
    }
    set_state(r, RUN_STOP_SIDECAR);
    if (r->sidecar_termed)
        return;
    r->sidecar_termed = true;
    uv_process_kill(&r->sidecar, signum);
    uv_timer_start(&r->sidecar_kill_timer, on_sidecar_kill_timer, grace_ms, 0);
}

static void stop_sidecar(run_t *r)
{
    stop_sidecar_with(r, SIGTERM);
}

/* The code a shell would report for a child. */
static int exit_code_of(int64_t status, int term_signal)
{
    return term_signal != 0 ? 128 + term_signal : (int)(status & 0xff);
}

static void on_sidecar_exit(uv_process_t *p, int64_t status, int term_signal)
{
    run_t *r = p->data;
    int code = exit_code_of(status, term_signal);

    r->sidecar_alive = false;
    uv_timer_stop(&r->sidecar_kill_timer);
    switch (r->state) {
    case RUN_WAIT_HEALTHY:
        note("the sidecar exited with code %d before it became healthy", code);
        if (r->exit_code < 0)
            r->exit_code = 1;
        break;
    case RUN_RUNNING:
        if (r->app_alive) {
            note("the sidecar exited with code %d; stopping the app", code);
            uv_process_kill(&r->app, SIGTERM);
            uv_timer_start(&r->app_kill_timer, on_app_kill_timer, RUN_APP_KILL_S * 1000, 0);
            set_state(r, RUN_STOP_APP);
        } else {
            r->exit_code = code;
        }
        break;
    case RUN_STOP_SIDECAR:
        /* Without an app, the sidecar's own code is the result (a clean stop gives 0). */
        if (r->args->command == NULL && r->exit_code < 0)
            r->exit_code = code;
        break;
    case RUN_STOP_APP:
    case RUN_DRAIN:
    case RUN_DONE:
        break;
    }
    check_done(r);
}

static void on_app_exit(uv_process_t *p, int64_t status, int term_signal)
{
    run_t *r = p->data;

    r->app_alive = false;
    uv_timer_stop(&r->app_kill_timer);
    r->exit_code = exit_code_of(status, term_signal);
    if (term_signal != 0)
        note("the app was stopped by signal %d", term_signal);
    else
        note("the app exited with code %d", (int)status);
    stop_sidecar(r);
}

/* ---- signals ---- */

static void on_signal(uv_signal_t *h, int signum)
{
    run_t *r = h->data;

    r->signals_seen++;
    if (r->signals_seen == 1)
        note("received %s; stopping", signum == SIGINT    ? "SIGINT"
                                      : signum == SIGTERM ? "SIGTERM"
                                                          : "SIGHUP");
    switch (r->state) {
    case RUN_WAIT_HEALTHY:
        if (r->exit_code < 0)
            r->exit_code = 128 + signum;
        stop_sidecar(r);
        break;
    case RUN_RUNNING:
        if (r->app_alive) {
            uv_process_kill(&r->app, signum);
            set_state(r, RUN_STOP_APP);
        } else {
            /* Alone, the sidecar gets the user's signal itself. */
            stop_sidecar_with(r, signum);
        }
        break;
    case RUN_STOP_APP:
        if (r->app_alive)
            uv_process_kill(&r->app, r->signals_seen >= RUN_SIGNALS_TO_KILL ? SIGKILL : signum);
        break;
    case RUN_STOP_SIDECAR:
        /* A second request while the sidecar drains means: now. */
        if (r->sidecar_alive && r->signals_seen >= 2)
            uv_process_kill(&r->sidecar, SIGKILL);
        break;
    case RUN_DRAIN:
    case RUN_DONE:
        break;
    }
}

/* ---- the end ---- */

static void close_if(uv_handle_t *h)
{
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void finish(run_t *r)
{
    run_stream_t *streams[] = {&r->sc_out, &r->sc_err, &r->app_out, &r->app_err};

    if (r->state == RUN_DONE)
        return;
    set_state(r, RUN_DONE);
    for (size_t i = 0; i < 4; i++) {
        stream_end(streams[i]);
        close_if((uv_handle_t *)&streams[i]->pipe);
    }
    for (size_t i = 0; i < 3; i++)
        close_if((uv_handle_t *)&r->sig[i]);
    close_if((uv_handle_t *)&r->health_timer);
    close_if((uv_handle_t *)&r->sidecar_kill_timer);
    close_if((uv_handle_t *)&r->app_kill_timer);
    close_if((uv_handle_t *)&r->drain_timer);
    if (r->probe.active)
        probe_finish(r, false);
    if (r->sidecar_inited)
        close_if((uv_handle_t *)&r->sidecar);
    if (r->app_inited)
        close_if((uv_handle_t *)&r->app);
}

static void on_drain_timer(uv_timer_t *t)
{
    finish(t->data);
}

/* Moves to DRAIN once both children are gone, and to DONE once their output is read. */
static void check_done(run_t *r)
{
    if (r->state == RUN_DONE || r->app_alive || r->sidecar_alive)
        return;
    if (r->state != RUN_DRAIN) {
        uv_timer_stop(&r->health_timer);
        set_state(r, RUN_DRAIN);
        uv_timer_start(&r->drain_timer, on_drain_timer, RUN_DRAIN_MS, 0);
    }
    if (r->sc_out.eof && r->sc_err.eof && r->app_out.eof && r->app_err.eof)
        finish(r);
}

/* ---- start-up ---- */

/* Gives every port flag that was not set a free loopback port: all sockets stay bound until each
 * port is known, so the ports differ, then they are closed for the sidecar to take. */
static int pick_ports(cli_args_t *a, err_detail_t *d)
{
    static const char *const names[3] = {"dapr-http-port", "dapr-internal-port", "metrics-port"};
    int *fields[3] = {&a->opts.http_port, &a->opts.internal_port, &a->opts.metrics_port};
    int fds[3] = {-1, -1, -1};
    int rc = 0;

    for (int i = 0; i < 3; i++) {
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);

        if (cli_args_given(a, names[i]))
            continue;
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
            getsockname(fds[i], (struct sockaddr *)&sin, &len) < 0) {
            rc = err_set(d, ERR_IO, "cannot pick a free port for --%s: %s", names[i],
                         strerror(errno));
            goto out;
        }
        *fields[i] = ntohs(sin.sin_port);
        cli_args_mark(a, names[i]);
    }
out:
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    return rc;
}

/* Works out where the probe and the app reach the sidecar: the first listen address, with the
 * wildcard addresses replaced by loopback. */
static void pick_address(run_t *r)
{
    const char *la = r->args->opts.listen_address;
    char host[64];
    size_t n = strcspn(la, ",");
    int port = r->args->opts.http_port;

    while (n > 0 && la[0] == ' ') {
        la++;
        n--;
    }
    if (n >= 2 && la[0] == '[' && la[n - 1] == ']') {
        la++;
        n -= 2;
    }
    if (n == 0 || n >= sizeof(host))
        n = 0;
    memcpy(host, la, n);
    host[n] = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || strcmp(host, "localhost") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof(host), "::1");
    if (uv_ip4_addr(host, port, (struct sockaddr_in *)&r->addr) == 0) {
        snprintf(r->authority, sizeof(r->authority), "%s:%d", host, port);
    } else if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)&r->addr) == 0) {
        snprintf(r->authority, sizeof(r->authority), "[%s]:%d", host, port);
    } else {
        (void)uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)&r->addr);
        snprintf(r->authority, sizeof(r->authority), "127.0.0.1:%d", port);
    }
    snprintf(r->req, sizeof(r->req),
             "GET /v1.0/healthz HTTP/1.1\r\nHost: %s\r\nUser-Agent: outrigger-run\r\n"
             "Connection: close\r\n\r\n",
             r->authority);
}

/* True when environ entry @p kv sets one of the NULL-terminated @p names. */
static bool env_is(const char *kv, const char *const *names)
{
    size_t n = strcspn(kv, "=");
    for (; *names != NULL; names++) {
        if (str_eq(kv, n, *names))
            return true;
    }
    return false;
}

extern char **environ;

/* Copies the environment without @p drop. */
static void env_copy(cli_argv_t *out, const char *const *drop)
{
    for (char **e = environ; *e != NULL; e++) {
        if (!env_is(*e, drop))
            cli_argv_push(out, *e);
    }
}

static void build_sidecar(run_t *r)
{
    static const char *const drop[] = {CLI_ENV_RUN_PARENT, NULL};
    char exe[4096];
    size_t n = sizeof(exe);

    /* argv[0] is the real path for ps; the file executed is /proc/self/exe (see spawn_sidecar). */
    if (uv_exepath(exe, &n) < 0)
        snprintf(exe, sizeof(exe), "outrigger");
    cli_argv_push(&r->sc_argv, exe);
    cli_argv_push(&r->sc_argv, "sidecar");
    cli_args_render(r->args, CLI_CMD_SIDECAR, &r->sc_argv);
    env_copy(&r->sc_env, drop);
    cli_argv_pushf(&r->sc_env, "%s=%ld", CLI_ENV_RUN_PARENT, (long)getpid());
}

static void build_app_env(run_t *r)
{
    static const char *const drop[] = {"APP_ID",
                                       "APP_PORT",
                                       "DAPR_HTTP_PORT",
                                       "DAPR_HTTP_ENDPOINT",
                                       "DAPR_METRICS_PORT",
                                       "APP_CHANNEL_ADDRESS",
                                       "APP_PROTOCOL",
                                       CLI_ENV_RUN_PARENT,
                                       NULL};
    const invoke_opts_t *o = &r->args->opts;

    env_copy(&r->app_env, drop);
    cli_argv_pushf(&r->app_env, "APP_ID=%s", o->app_id);
    if (o->app_port > 0)
        cli_argv_pushf(&r->app_env, "APP_PORT=%d", o->app_port);
    cli_argv_pushf(&r->app_env, "DAPR_HTTP_PORT=%d", o->http_port);
    cli_argv_pushf(&r->app_env, "DAPR_HTTP_ENDPOINT=http://%s", r->authority);
    cli_argv_pushf(&r->app_env, "DAPR_METRICS_PORT=%d", o->metrics_port);
    cli_argv_pushf(&r->app_env, "APP_CHANNEL_ADDRESS=%s", o->app_channel_address);
    cli_argv_pushf(&r->app_env, "APP_PROTOCOL=%s", o->app_protocol);
}

/*
 * Both children get their own session (UV_PROCESS_DETACHED): a Ctrl-C on the terminal then
 * reaches only `run`, which forwards it once to the app and stops the sidecar after the app, in
 * that order. The sidecar also dies with `run` (see CLI_ENV_RUN_PARENT).
 */
static int spawn_sidecar(run_t *r)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    int rc;

    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->sc_out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->sc_err.pipe;
    o.file = getenv(CLI_ENV_SIDECAR) ? getenv(CLI_ENV_SIDECAR) : "/proc/self/exe";
    o.args = r->sc_argv.v;
    o.env = r->sc_env.v;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_sidecar_exit;
    r->sidecar.data = r;
    r->sidecar_inited = true;
    rc = uv_spawn(&r->loop, &r->sidecar, &o);
    if (rc < 0) {
        r->sc_out.eof = r->sc_err.eof = true;
        return rc;
    }
    r->sidecar_alive = true;
    stream_start(&r->sc_out);
    stream_start(&r->sc_err);
    return 0;
}

static int spawn_app(run_t *r)
{
    uv_process_options_t o;
    uv_stdio_container_t stdio[3];
    int rc;

    memset(&o, 0, sizeof(o));
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = 0;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&r->app_out.pipe;
    stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[2].data.stream = (uv_stream_t *)&r->app_err.pipe;
    /* A copy, because the parsed command need not end with a NULL. */
    for (int i = 0; i < r->args->command_argc; i++)
        cli_argv_push(&r->app_argv, r->args->command[i]);
    o.file = r->app_argv.v[0];
    o.args = r->app_argv.v;
    o.env = r->app_env.v;
    o.flags = UV_PROCESS_DETACHED;
    o.stdio = stdio;
    o.stdio_count = 3;
    o.exit_cb = on_app_exit;
    r->app.data = r;
    r->app_inited = true;
    rc = uv_spawn(&r->loop, &r->app, &o);
    if (rc < 0) {
        r->app_out.eof = r->app_err.eof = true;
        return rc;
    }
    r->app_alive = true;
    r->app_out.eof = r->app_err.eof = false;
    stream_start(&r->app_out);
    stream_start(&r->app_err);
    return 0;
}

/* Registers the run for `outrigger list`; failing to is worth a warning, not a stop. */
static void register_run(run_t *r)
{
    const invoke_opts_t *o = &r->args->opts;
    runfile_entry_t e;
    err_detail_t d = {""};
    buf_t cmd;

    buf_init(&cmd, RUNFILE_COMMAND_MAX);
    for (int i = 0; i < r->args->command_argc; i++) {
        if ((i > 0 && buf_append_str(&cmd, " ") < 0) ||
            buf_append_str(&cmd, r->args->command[i]) < 0)
            break;
    }
    memset(&e, 0, sizeof(e));
    e.app_id = o->app_id;
    e.namespace_ = o->namespace_;
    e.command = buf_ptr(&cmd);
    e.http_port = o->http_port;
    e.internal_port = o->internal_port;
    e.metrics_port = o->metrics_port;
    e.app_port = o->app_port;
    e.sidecar_pid = (long)r->sidecar.pid;
    e.app_pid = r->app_alive ? (long)r->app.pid : 0;
    e.cli_pid = (long)getpid();
    e.created = (int64_t)time(NULL);
    if (runfile_write(o->home, &e, (long)getpid(), &r->runfile, &d) < 0)
        note("warning: not listed by 'outrigger list': %s", d.msg);
    buf_free(&cmd);
}

static void on_healthy(run_t *r)
{
    int rc;

    uv_timer_stop(&r->health_timer);
    if (r->args->command == NULL) {
        note("the sidecar for app \"%s\" is up: http://%s", r->args->opts.app_id, r->authority);
        set_state(r, RUN_RUNNING);
        register_run(r);
        return;
    }
    build_app_env(r);
    rc = spawn_app(r);
    if (rc < 0) {
        note("cannot start the app \"%s\": %s", r->args->command[0], err_str(rc));
        r->exit_code = 1;
        stop_sidecar(r);
        return;
    }
    note("the sidecar is up; started the app (pid %d)", r->app.pid);
    set_state(r, RUN_RUNNING);
    register_run(r);
}

/* Generates an app id like `dapr run` does when none is given. */
static void generate_app_id(cli_args_t *a)
{
    unsigned char rnd[4] = {0};

    if (uv_random(NULL, NULL, rnd, sizeof(rnd), 0, NULL) < 0) {
        uint32_t v = (uint32_t)getpid() ^ (uint32_t)time(NULL);
        memcpy(rnd, &v, sizeof(rnd));
    }
    a->app_id_owned = mem_alloc(32);
    snprintf(a->app_id_owned, 32, "app-%02x%02x%02x%02x", rnd[0], rnd[1], rnd[2], rnd[3]);
    a->opts.app_id = a->app_id_owned;
    cli_args_mark(a, "app-id");
}

/* Runs the loop to the end and returns the exit code. Every handle below is initialised before
 * anything can fail, so finish() may close them all. */
static int run_main(cli_args_t *a)
{
    static const int sigs[3] = {SIGINT, SIGTERM, SIGHUP};
    run_t *r = mem_calloc(sizeof(*r));
    err_detail_t d = {""};
    int rc, code;

    r->args = a;
    r->exit_code = -1;
    rc = uv_loop_init(&r->loop);
    if (rc < 0) {
        note("cannot start the event loop: %s", err_str(rc));
        mem_free(r);
        return 1;
    }
    r->state = RUN_WAIT_HEALTHY;
    stream_init(r, &r->sc_out, "== OUTRIGGER == ", STDOUT_FILENO);
    stream_init(r, &r->sc_err, "== OUTRIGGER == ", STDERR_FILENO);
    stream_init(r, &r->app_out, "== APP == ", STDOUT_FILENO);
    stream_init(r, &r->app_err, "== APP == ", STDERR_FILENO);
    /* The app pipes count as read until the app starts. */
    r->app_out.eof = r->app_err.eof = true;
    uv_timer_init(&r->loop, &r->health_timer);
    uv_timer_init(&r->loop, &r->sidecar_kill_timer);
    uv_timer_init(&r->loop, &r->app_kill_timer);
    uv_timer_init(&r->loop, &r->drain_timer);
    r->health_timer.data = r->sidecar_kill_timer.data = r;
    r->app_kill_timer.data = r->drain_timer.data = r;
    for (int i = 0; i < 3; i++) {
        uv_signal_init(&r->loop, &r->sig[i]);
        r->sig[i].data = r;
        uv_signal_start(&r->sig[i], on_signal, sigs[i]);
    }
    rc = pick_ports(a, &d);
    if (rc < 0) {
        note("%s", d.msg);
        r->exit_code = 1;
        finish(r);
        goto loop;
    }
    pick_address(r);
    build_sidecar(r);
    note("starting the sidecar for app \"%s\": HTTP port %d, internal port %d, metrics port %d",
         a->opts.app_id, a->opts.http_port, a->opts.internal_port, a->opts.metrics_port);
    rc = spawn_sidecar(r);
    if (rc < 0) {
        note("cannot start the sidecar: %s", err_str(rc));
        r->exit_code = 1;
        finish(r);
        goto loop;
    }
    r->health_deadline = uv_now(&r->loop) + RUN_HEALTH_TIMEOUT_MS;
    uv_timer_start(&r->health_timer, on_health_tick, 0, RUN_HEALTH_INTERVAL_MS);
loop:
    uv_run(&r->loop, UV_RUN_DEFAULT);
    rc = uv_loop_close(&r->loop);
    if (rc < 0)
        log_error("run", "event loop closed with handles open: %s", err_str(rc));
    if (r->runfile != NULL)
        runfile_remove(r->runfile);
    code = r->exit_code < 0 ? 1 : r->exit_code;
    mem_free(r->runfile);
    cli_argv_free(&r->sc_argv);
    cli_argv_free(&r->sc_env);
    cli_argv_free(&r->app_argv);
    cli_argv_free(&r->app_env);
    mem_free(r);
    return code;
}

int cli_cmd_run(int argc, char **argv)
{
    cli_args_t a;
    err_detail_t d = {""};
    int code;

    if (cli_args_parse(CLI_CMD_RUN, argc, argv, &a, &d) < 0) {
        fprintf(stderr, "outrigger: %s\nRun 'outrigger run --help' for usage.\n", d.msg);
        return CLI_EXIT_USAGE;
    }
    if (a.help) {
        cli_help(CLI_CMD_RUN, stdout);
        cli_args_free(&a);
        return 0;
    }
    if (a.opts.app_id == NULL)
        generate_app_id(&a);
    log_init(a.level, a.log_as_json, a.opts.app_id);
    /* A closed stdout must not kill `run` (and orphan its children); writes then just fail. */
    signal(SIGPIPE, SIG_IGN);
    code = run_main(&a);
    cli_args_free(&a);
    return code;
}
