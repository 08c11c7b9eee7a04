#include "invoke/invoke.h"

#include <stdio.h>

/* Placeholder until the real runtime lands. */
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
}

int invoke_sidecar_run(const invoke_opts_t *opts)
{
    fprintf(stderr, "sidecar %s: not implemented yet\n", opts->app_id);
    return 1;
}
