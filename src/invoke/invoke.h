/*
 * invoke — the sidecar: Dapr's service-invocation API, the sidecar-to-sidecar hop and the app
 * channel, with name resolution.
 *
 * Job: run one sidecar process from a set of options until it is told to stop.
 * Ownership: invoke_sidecar_run borrows @p opts for its whole run.
 * Threading: call from the main thread only; it starts its own worker threads and loops.
 * Errors: invoke_sidecar_run returns a process exit code (0 clean stop, 1 failure to start).
 */
#ifndef OUTRIGGER_INVOKE_H
#define OUTRIGGER_INVOKE_H

#include <stdbool.h>
#include <stddef.h>

#define INVOKE_MAX_RESOURCES_PATHS 16

typedef struct invoke_opts {
    const char *app_id;              /* --app-id; required */
    int app_port;                    /* --app-port; 0 = no app channel */
    const char *app_channel_address; /* --app-channel-address; default "127.0.0.1" */
    const char *app_protocol;        /* --app-protocol; only "http" is served today */
    int http_port;                   /* --dapr-http-port; default 3500 */
    int internal_port;          /* --dapr-internal-port / --dapr-internal-grpc-port; 0 = derived */
    int metrics_port;           /* --metrics-port; default 9090 */
    const char *listen_address; /* --dapr-listen-addresses; default "127.0.0.1" */
    const char *resources_paths[INVOKE_MAX_RESOURCES_PATHS]; /* --resources-path, repeatable */
    size_t resources_path_count;
    const char *config_path;       /* --config; NULL = none */
    const char *namespace_;        /* --namespace, else $NAMESPACE, else "default" */
    const char *home;              /* $OUTRIGGER_HOME, else ~/.outrigger */
    int workers;                   /* --workers; 0 = one per core */
    int max_connections;           /* --max-connections; per worker, default 10000 */
    int graceful_shutdown_seconds; /* --dapr-graceful-shutdown-seconds; default 5 */
    int stream_idle_timeout_s;     /* --stream-idle-timeout; default 3600 */
    int mtls;        /* --enable-mtls: 1 on, 0 off, -1 (default) on unless the Configuration's
                        spec.mtls.enabled is false */
    int api_logging; /* --enable-api-logging: 1 on, 0 off, -1 (default) per the Configuration */
    int metrics;     /* --enable-metrics: 0 off, else per the Configuration (default on) */
} invoke_opts_t;

/** Fills @p o with the defaults listed beside each field (app_id stays NULL). */
void invoke_opts_defaults(invoke_opts_t *o);

/**
 * Runs the sidecar until SIGINT or SIGTERM. Registers the app with name resolution on start and
 * removes it on a clean stop. Returns the process exit code.
 */
int invoke_sidecar_run(const invoke_opts_t *opts);

#endif
