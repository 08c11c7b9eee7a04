/*
 * The sidecar process: binds the API and internal ports on every worker loop, registers with name
 * resolution, runs until SIGINT/SIGTERM, then drains in-flight calls and stops.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/log.h"
#include "invoke/invoke_int.h"
#include "invoke/resolve.h"
#include "policy/acl.h"
#include "policy/mw.h"
#include "resiliency/resiliency.h"
#include "resources/resources.h"

#define MAX_WORKERS 64

void invoke_opts_defaults(invoke_opts_t *o)
{
    *o = (invoke_opts_t){0};
    o->app_channel_address = "127.0.0.1";
    o->app_protocol = "http";
    o->http_port = 3500;
    o->metrics_port = 9090;
    o->listen_address = "127.0.0.1";
    o->namespace_ = "default";
    o->max_connections = 10000;
    o->graceful_shutdown_seconds = 5;
    o->stream_idle_timeout_s = 3600;
    o->mtls = -1;
    o->api_logging = -1;
    o->metrics = -1;
}

typedef struct run_state {
    invoke_sidecar_t sc;              /* shared sidecar state */
    invoke_worker_t *iw;              /* per-worker state, nworkers of them, owned */
    net_worker_t *nw[MAX_WORKERS];    /* the workers */
    uv_thread_t threads[MAX_WORKERS]; /* their threads */
    int nworkers;                     /* how many */
    uv_loop_t loop;                   /* main loop: signals and heartbeats */
    uv_signal_t sigint, sigterm;      /* stop requests */
    uv_timer_t heartbeat;             /* name-resolution heartbeat */
    uv_timer_t drain;                 /* polls for in-flight calls to finish */
    uint64_t drain_deadline;          /* loop time when draining gives up */
    bool stopping;                    /* a stop signal arrived */
    res_watch_t *watch;               /* Configuration hot reload; NULL without --config */
    resil_watch_t *resil_watch;       /* Resiliency hot reload; NULL without --resources-path */
    char app_id[INVOKE_ID_MAX];       /* for re-registration */
} run_state_t;

int invoke__cfg_build(const res_config_t *cfg, void *ctx, void **data, err_detail_t *d)
{
    const invoke_sidecar_t *sc = ctx;
    invoke_cfg_t *c = mem_calloc(sizeof(*c));
    int rc = acl_snapshot_build(cfg, NULL, &c->acl, d);

    if (rc == 0)
        rc = pol_pipeline_build(res_node_get(cfg->root, "spec.httpPipeline.handlers"),
                                sc->components, POL_SIDE_HTTP, &c->http, d);
    if (rc == 0)
        rc = pol_pipeline_build(res_node_get(cfg->root, "spec.appHttpPipeline.handlers"),
                                sc->components, POL_SIDE_APP, &c->app, d);
    if (rc < 0) {
        invoke__cfg_dispose(c);
        return rc;
    }
    *data = c;
    return 0;
}

void invoke__cfg_dispose(void *data)
{
    invoke_cfg_t *c = data;
    if (c == NULL)
        return;
    acl_snapshot_dispose(c->acl);
    pol_pipeline_free(c->http);
    pol_pipeline_free(c->app);
    mem_free(c);
}

/* Dapr's "stable random" internal port: derived from the app id so a restarted app keeps it. */
static int stable_port(const char *app_id)
{
    uint32_t h = 2166136261u;
    for (const char *p = app_id; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return 47300 + (int)(h % 2048);
}

/* A valid new Configuration: in force for every request that starts from now on. */
static void on_config_change(res_watch_t *w, res_snapshot_t *s, void *ctx)
{
    invoke_sidecar_t *sc = ctx;
    (void)w;
    res_slot_publish(&sc->config, s);
    log_info("sidecar", "configuration reloaded");
}

static void worker_main(void *arg)
{
    net_worker_run(arg);
}

static void on_heartbeat(uv_timer_t *t)
{
    run_state_t *rs = t->data;
    err_detail_t d = {{0}};
    int rc = resolve_heartbeat(rs->sc.resolve, &d);

    if (rc == ERR_RESOLVE_LOST) {
        log_warn("resolve", "registration lost; registering again");
        rc = resolve_register(rs->sc.resolve, rs->sc.opts->app_id, rs->sc.opts->namespace_,
                              rs->sc.host_ip, rs->sc.internal_port, &d);
    }
    if (rc < 0)
        log_error("resolve", "heartbeat failed: %s", d.msg[0] ? d.msg : err_str(rc));
}

static void on_drain_tick(uv_timer_t *t)
{
    run_state_t *rs = t->data;
    size_t active = 0;

    for (int i = 0; i < rs->nworkers; i++)
        active += net_worker_active(rs->nw[i]);
    if (active > 0 && uv_now(&rs->loop) < rs->drain_deadline)
        return;
    if (active > 0)
        log_warn("sidecar", "graceful shutdown timed out with %zu calls in flight", active);
    for (int i = 0; i < rs->nworkers; i++)
        net_worker_stop_async(rs->nw[i]);
    uv_close((uv_handle_t *)&rs->drain, NULL);
    invoke__mtls_stop(rs->sc.mtls);
    if (rs->watch != NULL)
        res_watch_close(rs->watch);
    rs->watch = NULL;
    resil_watch_close(rs->resil_watch);
    rs->resil_watch = NULL;
    uv_close((uv_handle_t *)&rs->heartbeat, NULL);
    uv_close((uv_handle_t *)&rs->sigint, NULL);
    uv_close((uv_handle_t *)&rs->sigterm, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    run_state_t *rs = s->data;

    if (rs->stopping) {
        log_warn("sidecar", "second signal: stopping now");
        rs->drain_deadline = 0;
        return;
    }
    rs->stopping = true;
    log_info("sidecar", "received signal %d; draining (up to %d s)", signum,
             rs->sc.opts->graceful_shutdown_seconds);
    for (int i = 0; i < rs->nworkers; i++)
        net_worker_drain_async(rs->nw[i]);
    uv_timer_stop(&rs->heartbeat);
    rs->drain_deadline =
        uv_now(&rs->loop) + (uint64_t)rs->sc.opts->graceful_shutdown_seconds * 1000;
    uv_timer_start(&rs->drain, on_drain_tick, 0, 50);
}

/* Renders the metadata fragments that depend on loaded resources: names and types only, never
 * a metadata value (those may be secrets). */
static char *render_resources(const res_components_t *cs)
{
    buf_t b;
    int rc;

    buf_init(&b, 1024 * 1024);
    rc = buf_append_str(&b, ",\"components\":[");
    for (size_t i = 0; rc == 0 && i < res_components_count(cs); i++) {
        const res_component_t *c = res_components_at(cs, i);
        rc = buf_append_str(&b, i ? ",{\"name\":\"" : "{\"name\":\"");
        rc = rc ? rc : buf_append_json_str(&b, c->name, strlen(c->name));
        rc = rc ? rc : buf_append_str(&b, "\",\"type\":\"");
        rc = rc ? rc : buf_append_json_str(&b, c->type, strlen(c->type));
        rc = rc ? rc : buf_append_str(&b, "\",\"version\":\"");
        rc = rc ? rc : buf_append_json_str(&b, c->version, strlen(c->version));
        rc = rc ? rc : buf_append_str(&b, "\",\"capabilities\":[]}");
    }
    rc = rc ? rc : buf_append_str(&b, "],\"httpEndpoints\":[");
    for (size_t i = 0; rc == 0 && i < res_components_endpoint_count(cs); i++) {
        const res_endpoint_t *e = res_components_endpoint_at(cs, i);
        rc = buf_append_str(&b, i ? ",{\"name\":\"" : "{\"name\":\"");
        rc = rc ? rc : buf_append_json_str(&b, e->name, strlen(e->name));
        rc = rc ? rc : buf_append_str(&b, "\"}");
    }
    rc = rc ? rc : buf_append_str(&b, "]");
    if (rc < 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_take(&b);
}

/* Loads the Resiliency resources of --resources-path (an invalid one stops the start, as any
 * invalid resource does). */
static int load_resiliency(invoke_sidecar_t *sc, uint64_t *hash)
{
    const invoke_opts_t *o = sc->opts;
    resil_spec_t *spec = NULL;
    err_detail_t d = {{0}};
    int rc = 0;

    *hash = 0;
    if (o->resources_path_count > 0)
        rc = resil_spec_load(o->resources_paths, o->resources_path_count, o->app_id, &spec, hash,
                             &d);
    if (rc < 0) {
        log_error("resiliency", "cannot load resiliency resources: %s",
                  d.msg[0] ? d.msg : err_str(rc));
        return rc;
    }
    for (size_t i = 0; i < resil_spec_resource_count(spec); i++)
        log_info("resiliency", "resiliency loaded: %s", resil_spec_resource_name(spec, i));
    sc->resil = resil_new(o->app_id, o->namespace_, spec);
    return 0;
}

static int listen_all(run_state_t *rs, net_server_cbs_t *api, net_server_cbs_t *internal)
{
    const invoke_opts_t *o = rs->sc.opts;
    int http_port = o->http_port, internal_port = o->internal_port;
    bool derived = internal_port == 0;
    int rc = 0;

    if (derived)
        internal_port = stable_port(o->app_id);
    for (int i = 0; i < rs->nworkers && rc == 0; i++) {
        rc = net_listen(rs->nw[i], o->listen_address, http_port, api, &rs->iw[i], &http_port);
        if (rc < 0) {
            log_error("sidecar", "cannot listen on %s:%d for the HTTP API: %s", o->listen_address,
                      http_port, uv_strerror(rc));
            break;
        }
        rc = net_listen_tls(rs->nw[i], o->listen_address, internal_port, internal, &rs->iw[i],
                            rs->sc.mtls ? invoke__mtls_tls(rs->sc.mtls) : NULL, &internal_port);
        if (rc == UV_EADDRINUSE && derived && i == 0) {
            /* The derived port is taken: fall back to any free port, as Dapr does. */
            internal_port = 0;
            rc = net_listen_tls(rs->nw[i], o->listen_address, 0, internal, &rs->iw[i],
                                rs->sc.mtls ? invoke__mtls_tls(rs->sc.mtls) : NULL, &internal_port);
        }
        if (rc < 0)
            log_error("sidecar", "cannot listen on %s:%d for sidecar calls: %s", o->listen_address,
                      internal_port, uv_strerror(rc));
    }
    rs->sc.http_port = http_port;
    rs->sc.internal_port = internal_port;
    return rc;
}

int invoke_sidecar_run(const invoke_opts_t *opts)
{
    run_state_t *rs = mem_calloc(sizeof(*rs));
    invoke_sidecar_t *sc = &rs->sc;
    net_server_cbs_t api = {.on_request = invoke__on_api_request, .on_done = invoke__on_api_done};
    net_server_cbs_t internal = {.on_request = invoke__on_internal_request};
    const res_config_t *config = NULL;
    res_snapshot_t *snap = NULL;
    res_builder_t acl_builder = {invoke__cfg_build, invoke__cfg_dispose, sc};
    const char *mtls_setting;
    bool mtls;
    resolve_opts_t ro = {0};
    err_detail_t d = {{0}};
    net_limits_t limits;
    int rc = 0, started = 0, exit_code = 1;
    uint64_t resil_hash = 0;
    bool registered = false;
    const char *host_ip = getenv("DAPR_HOST_IP");

    signal(SIGPIPE, SIG_IGN);
    sc->opts = opts;
    sc->api_token = getenv("DAPR_API_TOKEN");
    if (sc->api_token != NULL && sc->api_token[0] == '\0')
        sc->api_token = NULL;
    sc->app_api_token = getenv("APP_API_TOKEN");
    if (sc->app_api_token != NULL && sc->app_api_token[0] == '\0')
        sc->app_api_token = NULL;
    snprintf(sc->host_ip, sizeof(sc->host_ip), "%s",
             host_ip ? host_ip
                     : (strcmp(opts->listen_address, "0.0.0.0") == 0 ? "127.0.0.1"
                                                                     : opts->listen_address));
    if (gethostname(sc->hostname, sizeof(sc->hostname)) != 0)
        snprintf(sc->hostname, sizeof(sc->hostname), "localhost");
    snprintf(sc->forwarded, sizeof(sc->forwarded), "for=%s;host=%s", sc->host_ip, sc->hostname);
    sc->metrics = invoke__metrics_new();
    if (opts->app_id == NULL || opts->app_id[0] == '\0') {
        log_error("sidecar", "--app-id is required");
        goto out;
    }
    rc = res_components_load(opts->resources_paths, opts->resources_path_count, opts->app_id,
                             opts->namespace_, &sc->components, &d);
    if (rc < 0) {
        log_error("sidecar", "cannot load resources: %s", d.msg[0] ? d.msg : err_str(rc));
        goto out;
    }
    for (size_t i = 0; i < res_components_count(sc->components); i++) {
        const res_component_t *c = res_components_at(sc->components, i);
        log_info("sidecar", "component loaded: %s (%s/%s)", c->name, c->type, c->version);
    }
    for (size_t i = 0; i < res_components_endpoint_count(sc->components); i++)
        log_info("sidecar", "HTTPEndpoint loaded: %s",
                 res_components_endpoint_at(sc->components, i)->name);
    sc->res_names_json = render_resources(sc->components);
    rc = invoke__ext_new(sc->components, &sc->ext, &d);
    if (rc < 0) {
        log_error("sidecar", "cannot set up HTTPEndpoints: %s", d.msg[0] ? d.msg : err_str(rc));
        goto out;
    }
    rc = load_resiliency(sc, &resil_hash);
    if (rc < 0)
        goto out;
    if (opts->config_path != NULL) {
        rc = res_snapshot_load(NULL, opts->config_path, &acl_builder, &snap, &d);
        if (rc < 0) {
            log_error("sidecar", "cannot load configuration: %s", d.msg[0] ? d.msg : err_str(rc));
            goto out;
        }
        config = res_snapshot_config(snap);
    }
    res_slot_init(&sc->config, res_snapshot_ref(snap));

    /* mTLS is on unless turned off explicitly, by flag or by the Configuration. */
    mtls_setting = config ? res_node_get_str(config->root, "spec.mtls.enabled") : NULL;
    mtls = opts->mtls == 1 ||
           (opts->mtls == -1 && !(mtls_setting && strcmp(mtls_setting, "false") == 0));
    if (mtls) {
        rc = invoke__mtls_start(sc, &sc->mtls, &d);
        if (rc < 0) {
            log_error("mtls", "cannot get a workload identity from the sentry: %s",
                      d.msg[0] ? d.msg : err_str(rc));
            goto out;
        }
    } else {
        log_warn("mtls",
                 "mTLS IS OFF (%s): calls between sidecars are plaintext and the caller's "
                 "identity is not verified; accessControl sees no caller identity",
                 opts->mtls == 0 ? "--enable-mtls=false" : "Configuration spec.mtls.enabled");
    }

    net_limits_defaults(&limits);
    if (opts->max_connections > 0)
        limits.max_connections = (size_t)opts->max_connections;
    rs->nworkers = opts->workers > 0 ? opts->workers : (int)uv_available_parallelism();
    if (rs->nworkers > MAX_WORKERS)
        rs->nworkers = MAX_WORKERS;
    if (rs->nworkers < 1)
        rs->nworkers = 1;
    {
        obs_opts_t oo = {.app_id = opts->app_id,
                         .namespace_ = opts->namespace_,
                         .config = config,
                         .workers = rs->nworkers,
                         .api_logging = opts->api_logging,
                         .no_metrics = opts->metrics == 0};
        rc = obs_new(&oo, &sc->obs, &d);
        if (rc < 0) {
            log_error("sidecar", "invalid observability settings: %s",
                      d.msg[0] ? d.msg : err_str(rc));
            rs->nworkers = 0; /* none created yet */
            goto out;
        }
    }
    rs->iw = mem_calloc(sizeof(*rs->iw) * (size_t)rs->nworkers);
    for (int i = 0; i < rs->nworkers; i++) {
        rs->nw[i] = net_worker_new(&limits, i);
        if (rs->nw[i] == NULL) {
            rs->nworkers = i;
            goto out;
        }
        rs->iw[i].sc = sc;
        rs->iw[i].nw = rs->nw[i];
        net_worker_set_data(rs->nw[i], &rs->iw[i]);
    }
    rc = listen_all(rs, &api, &internal);
    if (rc < 0)
        goto out;
    if (opts->metrics_port > 0 && opts->metrics != 0 && obs_metrics_enabled(sc->obs)) {
        net_server_cbs_t mcbs = {.on_request = invoke__on_metrics_request};
        int mrc = net_listen(rs->nw[0], opts->listen_address, opts->metrics_port, &mcbs, &rs->iw[0],
                             &sc->metrics_port);
        if (mrc < 0)
            log_warn("sidecar", "metrics are not served: cannot listen on %s:%d: %s",
                     opts->listen_address, opts->metrics_port, uv_strerror(mrc));
    }

    ro.component = NULL;
    ro.home = opts->home;
    ro.config = config;
    ro.internal_port = sc->internal_port;
    rc = resolve_new(&ro, &sc->resolve, &d);
    if (rc == 0)
        rc = resolve_register(sc->resolve, opts->app_id, opts->namespace_, sc->host_ip,
                              sc->internal_port, &d);
    if (rc < 0) {
        log_error("resolve", "name resolution failed: %s", d.msg[0] ? d.msg : err_str(rc));
        goto out;
    }
    registered = true;

    uv_loop_init(&rs->loop);
    uv_signal_init(&rs->loop, &rs->sigint);
    uv_signal_init(&rs->loop, &rs->sigterm);
    uv_timer_init(&rs->loop, &rs->heartbeat);
    uv_timer_init(&rs->loop, &rs->drain);
    rs->sigint.data = rs->sigterm.data = rs->heartbeat.data = rs->drain.data = rs;
    uv_signal_start(&rs->sigint, on_signal, SIGINT);
    uv_signal_start(&rs->sigterm, on_signal, SIGTERM);
    if (sc->mtls != NULL)
        invoke__mtls_run(sc->mtls, &rs->loop);
    if (opts->config_path != NULL) {
        res_watch_opts_t wo = {.path = opts->config_path,
                               .builder = acl_builder,
                               .on_change = on_config_change,
                               .ctx = sc,
                               .current = snap};
        if (res_watch_start(&rs->loop, &wo, &rs->watch, &d) < 0)
            log_warn("sidecar", "configuration changes will not be picked up: %s", d.msg);
    }
    if (opts->resources_path_count > 0 &&
        resil_watch_start(sc->resil, &rs->loop, opts->resources_paths, opts->resources_path_count,
                          resil_hash, &rs->resil_watch, &d) < 0)
        log_warn("resiliency", "resiliency changes will not be picked up: %s", d.msg);
    if (resolve_heartbeat_interval_ms(sc->resolve) > 0) /* 0: the backend needs none (dns) */
        uv_timer_start(&rs->heartbeat, on_heartbeat,
                       (uint64_t)resolve_heartbeat_interval_ms(sc->resolve),
                       (uint64_t)resolve_heartbeat_interval_ms(sc->resolve));

    if (obs_start(sc->obs) < 0)
        log_warn("trace", "cannot start the span exporter thread: spans are not exported");
    for (started = 0; started < rs->nworkers; started++) {
        rc = uv_thread_create(&rs->threads[started], worker_main, rs->nw[started]);
        if (rc < 0)
            break;
    }
    log_info("sidecar",
             "outrigger sidecar started: app-id=%s namespace=%s http-port=%d internal-port=%d "
             "app-port=%d workers=%d",
             opts->app_id, opts->namespace_, sc->http_port, sc->internal_port, opts->app_port,
             started);
    if (rc < 0) {
        log_error("sidecar", "cannot start worker threads: %s", uv_strerror(rc));
        uv_signal_stop(&rs->sigint);
        on_signal(&rs->sigterm, SIGTERM);
    }
    uv_run(&rs->loop, UV_RUN_DEFAULT);
    for (int i = 0; i < started; i++)
        uv_thread_join(&rs->threads[i]);
    uv_loop_close(&rs->loop);
    obs_stop(sc->obs); /* one last export of what the workers queued */
    exit_code = rc < 0 ? 1 : 0;
    log_info("sidecar", "stopped");
out:
    (void)registered;
    resolve_free(sc->resolve); /* removes our registration */
    for (int i = 0; i < rs->nworkers; i++) {
        if (i >= started) {
            net_worker_stop_async(rs->nw[i]);
            net_worker_run(rs->nw[i]);
        }
        net_worker_free(rs->nw[i]);
    }
    res_slot_destroy(&sc->config);
    res_snapshot_unref(snap);
    invoke__mtls_free(sc->mtls);
    invoke__metrics_free(sc->metrics);
    invoke__ext_free(sc->ext);
    resil_free(sc->resil);
    obs_free(sc->obs);
    res_components_free(sc->components);
    mem_free((void *)sc->res_names_json);
    mem_free(rs->iw);
    mem_free(rs);
    return exit_code;
}
