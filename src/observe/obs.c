/* The obs_t handle: building it from the Configuration, starting and stopping the exporter. */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "observe/obs_int.h"

int obs_new(const obs_opts_t *opts, obs_t **out, err_detail_t *d)
{
    obs_t *o;
    size_t per_ring;
    int rc;

    if (opts == NULL || out == NULL || opts->app_id == NULL || opts->workers < 1 ||
        opts->workers > OBS_MAX_WORKERS)
        return ERR_INVAL;
    o = mem_calloc(sizeof(*o));
    str_copy(o->app_id, sizeof(o->app_id), opts->app_id);
    str_copy(o->namespace_, sizeof(o->namespace_), opts->namespace_ ? opts->namespace_ : "");
    o->workers = opts->workers;
    rc = obs__config(o, opts, d);
    if (rc == 0) {
        obs__families_init(o);
        rc = obs__config_rules(o, opts, d);
    }
    if (rc < 0) {
        obs_free(o);
        return rc;
    }
    for (int w = 0; w < OBS_MAX_WORKERS; w++) {
        uint64_t seed = 0;
        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed))
            seed = (uint64_t)time(NULL) * 2654435761u + (uint64_t)w;
        o->rng[w][0] = seed | 1; /* xorshift state must not be zero */
    }
    if (o->tracing) {
        /* OTEL_BSP_MAX_QUEUE_SIZE spans in all, split over the workers' rings. */
        const char *q = getenv("OTEL_BSP_MAX_QUEUE_SIZE");
        uint64_t total = OBS_RING_DEFAULT;
        if (q != NULL && *q && (str_u64(q, strlen(q), 1u << 20, &total) < 0 || total == 0))
            total = OBS_RING_DEFAULT;
        per_ring = (size_t)total / (size_t)o->workers;
        if (per_ring < 16)
            per_ring = 16;
        for (int w = 0; w < o->workers; w++) {
            o->rings[w].cap = per_ring;
            o->rings[w].slots = mem_calloc(sizeof(obs_span_t) * per_ring);
        }
    }
    if (o->tracing && o->endpoint_host[0])
        log_info("observe", "tracing: samplingRate=%g exporter=%s://%s:%d%s stdout=%s", o->rate,
                 o->secure ? "https" : "http", o->endpoint_host, o->endpoint_port, o->endpoint_path,
                 o->stdout_spans ? "true" : "false");
    else if (o->tracing)
        log_info("observe", "tracing: samplingRate=%g exporter=none stdout=true", o->rate);
    *out = o;
    return 0;
}

int obs_start(obs_t *o)
{
    return o ? obs__export_start(o) : 0;
}

void obs_stop(obs_t *o)
{
    if (o != NULL)
        obs__export_stop(o);
}

void obs_free(obs_t *o)
{
    if (o == NULL)
        return;
    obs__export_stop(o);
    obs__families_free(o);
    for (size_t i = 0; i < o->npatterns; i++)
        mem_free(o->patterns[i]);
    for (size_t i = 0; i < o->nredact; i++)
        mem_free(o->redact[i]);
    for (int w = 0; w < OBS_MAX_WORKERS; w++)
        mem_free(o->rings[w].slots);
    mem_free(o->headers);
    mem_free(o);
}
