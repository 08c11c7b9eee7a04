/*
 * Reading the observability settings: Configuration `spec.metric` / `spec.metrics` (the latter's
 * fields win), `spec.tracing`, `spec.logging`, then the OTEL_EXPORTER_OTLP_* and OTEL_BSP_*
 * environment (spec dapr.md §6). Every problem names the field.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dur.h"
#include "base/log.h"
#include "base/str.h"
#include "observe/obs_int.h"

/* Dapr's default latencyDistributionBuckets (ms). */
static const double default_buckets[] = {1,    2,    3,    4,     5,     6,     8,     10,  13,
                                         16,   20,   25,   30,    40,    50,    65,    80,  100,
                                         130,  160,  200,  250,   300,   400,   500,   650, 800,
                                         1000, 2000, 5000, 10000, 20000, 50000, 100000};

static const char *file_of(const obs_opts_t *o)
{
    return o->config && o->config->file ? o->config->file : "configuration";
}

static int bad(err_detail_t *d, const obs_opts_t *o, const res_node_t *n, const char *field,
               const char *what)
{
    if (d != NULL)
        snprintf(d->msg, sizeof(d->msg), "%s:%u: %s: %s", file_of(o), n ? res_node_line(n) : 0,
                 field, what);
    return ERR_RES_INVALID;
}

/* Reads a boolean scalar at @p path under @p root into @p out (left alone when absent). */
static int get_bool(const obs_opts_t *o, const res_node_t *root, const char *path, bool *out,
                    err_detail_t *d)
{
    const res_node_t *n = root ? res_node_get(root, path) : NULL;
    const char *v = n ? res_node_scalar(n) : NULL;
    if (n == NULL || res_node_is_null(n))
        return 0;
    if (v != NULL && (strcmp(v, "true") == 0 || strcmp(v, "True") == 0))
        *out = true;
    else if (v != NULL && (strcmp(v, "false") == 0 || strcmp(v, "False") == 0))
        *out = false;
    else
        return bad(d, o, n, path, "must be true or false");
    return 0;
}

static bool parse_double(const char *s, double *out)
{
    char *end = NULL;
    double v;
    if (s == NULL || *s == '\0')
        return false;
    v = strtod(s, &end);
    if (end == NULL || *end != '\0' || v != v)
        return false;
    *out = v;
    return true;
}

static int read_rules(obs_t *ob, const obs_opts_t *o, const res_node_t *rules, err_detail_t *d)
{
    for (size_t i = 0; i < res_node_count(rules); i++) {
        const res_node_t *r = res_node_at(rules, i);
        const char *name = res_node_get_str(r, "name");
        const res_node_t *labels = res_node_get(r, "labels");
        obs_family_t *f = NULL;
        for (int k = 0; k < OBS_F_COUNT && name; k++)
            if (strcmp(ob->fam[k].name, name) == 0)
                f = &ob->fam[k];
        if (name == NULL)
            return bad(d, o, r, "spec.metrics.rules.name", "missing");
        if (f == NULL) {
            log_warn("observe", "%s:%u: metrics rule for unknown metric %s ignored", file_of(o),
                     res_node_line(r), name);
            continue;
        }
        for (size_t j = 0; labels && j < res_node_count(labels); j++) {
            const res_node_t *l = res_node_at(labels, j);
            const char *lname = res_node_get_str(l, "name");
            const res_node_t *re = res_node_get(l, "regex");
            size_t li = f->nlabels;
            for (size_t k = 0; lname && k < f->nlabels; k++)
                if (strcmp(f->labels[k], lname) == 0)
                    li = k;
            if (li == f->nlabels)
                return bad(d, o, l, "spec.metrics.rules.labels.name", "not a label of the metric");
            for (size_t k = 0; re && k < res_node_count(re); k++) {
                const char *repl = res_node_key_at(re, k);
                const char *pat = res_node_scalar(res_node_at(re, k));
                obs_rule_t *nr;
                if (pat == NULL)
                    return bad(d, o, l, "spec.metrics.rules.labels.regex", "must map to regex");
                f->rules = mem_realloc(f->rules, sizeof(*f->rules) * (f->nrules + 1));
                nr = &f->rules[f->nrules];
                if (regcomp(&nr->re, pat, REG_EXTENDED | REG_NOSUB) != 0)
                    return bad(d, o, l, "spec.metrics.rules.labels.regex", "invalid regex");
                nr->label = li;
                nr->replacement = mem_strdup(repl);
                f->nrules++;
            }
        }
    }
    return 0;
}

/* metric then metrics: the later section's fields override. */
static int read_metrics(obs_t *ob, const obs_opts_t *o, const res_node_t *spec, err_detail_t *d)
{
    static const char *const sections[] = {"metric", "metrics"};
    int rc = 0;

    ob->metrics_enabled = true;
    ob->increased_cardinality = true;
    memcpy(ob->lat_bounds, default_buckets, sizeof(default_buckets));
    ob->lat_nb = sizeof(default_buckets) / sizeof(default_buckets[0]);
    for (int s = 0; s < 2 && rc == 0 && spec != NULL; s++) {
        const res_node_t *m = res_node_child(spec, sections[s]);
        const res_node_t *pm, *lb;
        if (m == NULL)
            continue;
        rc = get_bool(o, m, "enabled", &ob->metrics_enabled, d);
        rc = rc ? rc : get_bool(o, m, "http.increasedCardinality", &ob->increased_cardinality, d);
        rc = rc ? rc : get_bool(o, m, "http.excludeVerbs", &ob->exclude_verbs, d);
        pm = res_node_get(m, "http.pathMatching");
        for (size_t i = 0; rc == 0 && pm && i < res_node_count(pm); i++) {
            const char *p = res_node_scalar(res_node_at(pm, i));
            if (p == NULL || p[0] != '/')
                rc = bad(d, o, pm, "http.pathMatching", "each entry must be a path starting /");
            else if (ob->npatterns < OBS_PATTERNS_MAX)
                ob->patterns[ob->npatterns++] = mem_strdup(p);
        }
        lb = res_node_get(m, "latencyDistributionBuckets");
        if (rc == 0 && lb != NULL && res_node_count(lb) > 0) {
            size_t n = res_node_count(lb);
            if (n > OBS_BUCKETS_MAX)
                rc = bad(d, o, lb, "latencyDistributionBuckets", "at most 64 buckets");
            for (size_t i = 0; rc == 0 && i < n; i++) {
                double v;
                if (!parse_double(res_node_scalar(res_node_at(lb, i)), &v) || v <= 0 ||
                    (i > 0 && v <= ob->lat_bounds[i - 1]))
                    rc = bad(d, o, lb, "latencyDistributionBuckets",
                             "must be increasing positive numbers");
                else
                    ob->lat_bounds[i] = v;
            }
            if (rc == 0)
                ob->lat_nb = n;
        }
    }
    return rc;
}

/* "host:port", "http://host:port[/path]" or "https://..." into the endpoint fields. */
static int set_endpoint(obs_t *ob, const char *v, bool env_full_path, bool *secure_set)
{
    const char *hp = v, *slash, *colon;
    size_t hl;

    if (strncmp(v, "http://", 7) == 0) {
        hp = v + 7;
        ob->secure = false;
        *secure_set = true;
    } else if (strncmp(v, "https://", 8) == 0) {
        hp = v + 8;
        ob->secure = true;
        *secure_set = true;
    }
    slash = strchr(hp, '/');
    hl = slash ? (size_t)(slash - hp) : strlen(hp);
    if (hl == 0 || hl >= sizeof(ob->endpoint_host))
        return ERR_INVAL;
    memcpy(ob->endpoint_host, hp, hl);
    ob->endpoint_host[hl] = '\0';
    colon = strrchr(ob->endpoint_host, ':');
    if (colon != NULL && strchr(ob->endpoint_host, ']') < colon) {
        if (str_port(colon + 1, &ob->endpoint_port) < 0)
            return ERR_INVAL;
        ob->endpoint_host[colon - ob->endpoint_host] = '\0';
    } else {
        ob->endpoint_port = ob->secure ? 443 : 4318;
    }
    if (ob->endpoint_host[0] == '[') { /* "[::1]" */
        size_t l = strlen(ob->endpoint_host);
        memmove(ob->endpoint_host, ob->endpoint_host + 1, l);
        if (l >= 2)
            ob->endpoint_host[l - 2] = '\0';
    }
    if (env_full_path && slash != NULL)
        snprintf(ob->endpoint_path, sizeof(ob->endpoint_path), "%s", slash);
    else if (slash != NULL && strcmp(slash, "/") != 0)
        snprintf(ob->endpoint_path, sizeof(ob->endpoint_path), "%.*s/v1/traces",
                 (int)(strlen(slash) - (slash[strlen(slash) - 1] == '/')), slash);
    else
        snprintf(ob->endpoint_path, sizeof(ob->endpoint_path), "/v1/traces");
    return 0;
}

/* Appends "Name: value\r\n" to the collector headers (names and values without CR/LF). */
static int add_header(buf_t *h, const char *name, size_t nl, const char *value, size_t vl)
{
    int rc;
    str_trim(&name, &nl);
    str_trim(&value, &vl);
    if (nl == 0 || memchr(name, '\r', nl) || memchr(name, '\n', nl) || memchr(name, ':', nl) ||
        memchr(value, '\r', vl) || memchr(value, '\n', vl))
        return ERR_INVAL;
    rc = buf_append(h, name, nl);
    rc = rc ? rc : buf_append(h, ": ", 2);
    rc = rc ? rc : buf_append(h, value, vl);
    return rc ? rc : buf_append(h, "\r\n", 2);
}

/* "k=v,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS and Dapr's string form). */
static int add_header_list(buf_t *h, const char *s)
{
    int rc = 0;
    while (rc == 0 && s != NULL && *s) {
        const char *comma = strchr(s, ',');
        size_t n = comma ? (size_t)(comma - s) : strlen(s);
        const char *eq = memchr(s, '=', n);
        if (eq == NULL)
            return ERR_INVAL;
        rc = add_header(h, s, (size_t)(eq - s), eq + 1, n - (size_t)(eq - s) - 1);
        s = comma ? comma + 1 : NULL;
    }
    return rc;
}

static const char *env2(const char *traces, const char *generic)
{
    const char *v = getenv(traces);
    if (v == NULL || *v == '\0')
        v = getenv(generic);
    return v != NULL && *v != '\0' ? v : NULL;
}

static uint64_t env_u64(const char *name, uint64_t def, uint64_t max)
{
    const char *v = getenv(name);
    uint64_t out;
    if (v == NULL || *v == '\0' || str_u64(v, strlen(v), max, &out) < 0 || out == 0)
        return def;
    return out;
}

static int read_tracing(obs_t *ob, const obs_opts_t *o, const res_node_t *spec, err_detail_t *d)
{
    const res_node_t *t = spec ? res_node_child(spec, "tracing") : NULL;
    const char *rate = t ? res_node_get_str(t, "samplingRate") : NULL;
    const char *ep = t ? res_node_get_str(t, "otel.endpointAddress") : NULL;
    const char *proto = t ? res_node_get_str(t, "otel.protocol") : NULL;
    const res_node_t *hdrs = t ? res_node_get(t, "otel.headers") : NULL;
    const char *timeout = t ? res_node_get_str(t, "otel.timeout") : NULL;
    bool secure_set = false, from_env = false;
    buf_t h;
    int rc = 0;

    ob->secure = true; /* Dapr's default for tracing.otel.isSecure */
    rc = get_bool(o, t, "stdout", &ob->stdout_spans, d);
    rc = rc ? rc : get_bool(o, t, "otel.isSecure", &ob->secure, d);
    if (rc < 0)
        return rc;
    secure_set = t && res_node_get(t, "otel.isSecure") != NULL;
    buf_init(&h, 16 * 1024);
    if (ep == NULL) {
        /* Dapr fills an unset otel section from the standard exporter environment. */
        const char *full = getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        const char *env_ep =
            env2("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT");
        const char *env_insecure =
            env2("OTEL_EXPORTER_OTLP_TRACES_INSECURE", "OTEL_EXPORTER_OTLP_INSECURE");
        if (env_ep != NULL) {
            from_env = true;
            if (set_endpoint(ob, env_ep, full != NULL && *full != '\0', &secure_set) < 0) {
                buf_free(&h);
                return bad(d, o, NULL, "OTEL_EXPORTER_OTLP_ENDPOINT", "not host:port or a URL");
            }
            if (env_insecure != NULL)
                ob->secure = !(strcmp(env_insecure, "true") == 0);
            else if (!secure_set)
                ob->secure = false;
            proto = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
            if (proto == NULL || strncmp(proto, "http", 4) == 0)
                proto = "http";
            if (rate == NULL || *rate == '\0')
                rate = "1";
            if (add_header_list(&h, env2("OTEL_EXPORTER_OTLP_TRACES_HEADERS",
                                         "OTEL_EXPORTER_OTLP_HEADERS")) < 0) {
                buf_free(&h);
                return bad(d, o, NULL, "OTEL_EXPORTER_OTLP_HEADERS", "must be k=v[,k=v]");
            }
            timeout = env2("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT");
            ob->export_timeout_ms = timeout ? env_u64(getenv("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT")
                                                          ? "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"
                                                          : "OTEL_EXPORTER_OTLP_TIMEOUT",
                                                      OBS_EXPORT_TIMEOUT_MS, 600000)
                                            : OBS_EXPORT_TIMEOUT_MS;
            timeout = NULL;
        }
    } else {
        bool ignored = false;
        if (proto == NULL) {
            log_warn("observe", "%s: tracing.otel.endpointAddress without protocol: no exporter",
                     file_of(o));
        } else if (set_endpoint(ob, ep, false, &ignored) < 0) {
            buf_free(&h);
            return bad(d, o, res_node_get(t, "otel.endpointAddress"),
                       "tracing.otel.endpointAddress", "must be host:port");
        }
        if (ignored) /* a scheme in endpointAddress decides, as the Go exporter does */
            secure_set = true;
    }
    if (!from_env && proto != NULL && strcmp(proto, "http") != 0) {
        buf_free(&h);
        return bad(d, o, t ? res_node_get(t, "otel.protocol") : NULL, "tracing.otel.protocol",
                   strcmp(proto, "grpc") == 0 ? "grpc is not supported; use http"
                                              : "must be http or grpc");
    }
    if (proto == NULL)
        ob->endpoint_host[0] = '\0';
    if (hdrs != NULL && res_node_kind(hdrs) == RES_NODE_SEQ) {
        for (size_t i = 0; i < res_node_count(hdrs) && rc == 0; i++) {
            const char *n = res_node_get_str(res_node_at(hdrs, i), "name");
            const char *v = res_node_get_str(res_node_at(hdrs, i), "value");
            rc = n && v ? add_header(&h, n, strlen(n), v, strlen(v)) : ERR_INVAL;
        }
    } else if (hdrs != NULL && res_node_scalar(hdrs) != NULL) {
        rc = add_header_list(&h, res_node_scalar(hdrs));
    }
    if (rc < 0) {
        buf_free(&h);
        return bad(d, o, hdrs, "tracing.otel.headers", "must be [{name, value}] or k=v[,k=v]");
    }
    ob->headers = h.len ? buf_take(&h) : NULL;
    buf_free(&h);
    if (timeout != NULL) {
        uint64_t ms;
        if (dur_parse_ms(timeout, strlen(timeout), 600000, &ms) < 0 || ms == 0)
            return bad(d, o, res_node_get(t, "otel.timeout"), "tracing.otel.timeout",
                       "must be a duration such as 10s");
        ob->export_timeout_ms = ms;
    }
    if (ob->export_timeout_ms == 0)
        ob->export_timeout_ms = OBS_EXPORT_TIMEOUT_MS;
    /* Dapr: empty or unparsable → 0.0001 (tracing stays on); "0" disables. */
    ob->rate = 0.0001;
    if (rate != NULL && *rate != '\0' && !parse_double(rate, &ob->rate))
        ob->rate = 0.0001;
    if (ob->rate < 0)
        ob->rate = 0;
    if (ob->rate > 1)
        ob->rate = 1;
    {
        /* The CA that signs the collector's certificate (OpenTelemetry's variable), for any
         * endpoint source; else the system's roots. */
        const char *ca =
            env2("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE");
        if (ca != NULL &&
            snprintf(ob->ca_file, sizeof(ob->ca_file), "%s", ca) >= (int)sizeof(ob->ca_file))
            return bad(d, o, NULL, "OTEL_EXPORTER_OTLP_CERTIFICATE", "path too long");
    }
    ob->delay_ms = env_u64("OTEL_BSP_SCHEDULE_DELAY", OBS_DELAY_MS_DEFAULT, 3600000);
    ob->batch = (size_t)env_u64("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", OBS_BATCH_DEFAULT, 65536);
    ob->tracing = ob->rate > 0 && (ob->endpoint_host[0] != '\0' || ob->stdout_spans);
    (void)secure_set;
    return 0;
}

static int read_logging(obs_t *ob, const obs_opts_t *o, const res_node_t *spec, err_detail_t *d)
{
    const res_node_t *l = spec ? res_node_child(spec, "logging") : NULL;
    const res_node_t *red = l ? res_node_get(l, "mcpAudit.redact") : NULL;
    int rc;

    ob->audit = true;
    rc = get_bool(o, l, "apiLogging.enabled", &ob->api_logging, d);
    rc = rc ? rc : get_bool(o, l, "apiLogging.obfuscateURLs", &ob->obfuscate_urls, d);
    rc = rc ? rc : get_bool(o, l, "apiLogging.omitHealthChecks", &ob->omit_health, d);
    rc = rc ? rc : get_bool(o, l, "mcpAudit.enabled", &ob->audit, d);
    rc = rc ? rc : get_bool(o, l, "mcpAudit.arguments", &ob->audit_args, d);
    for (size_t i = 0; rc == 0 && red && i < res_node_count(red); i++) {
        const char *k = res_node_scalar(res_node_at(red, i));
        if (k == NULL)
            return bad(d, o, red, "logging.mcpAudit.redact", "must be a list of key names");
        if (ob->nredact < OBS_REDACT_MAX)
            ob->redact[ob->nredact++] = mem_strdup(k);
    }
    if (rc == 0 && o->api_logging >= 0)
        ob->api_logging = o->api_logging == 1; /* the flag wins over the Configuration */
    return rc;
}

int obs__config_rules(obs_t *ob, const obs_opts_t *o, err_detail_t *d)
{
    const res_node_t *spec = o->config ? o->config->spec : NULL;
    static const char *const sections[] = {"metric.rules", "metrics.rules"};
    int rc = 0;
    for (int s = 0; s < 2 && rc == 0 && spec != NULL; s++) {
        const res_node_t *r = res_node_get(spec, sections[s]);
        if (r != NULL)
            rc = read_rules(ob, o, r, d);
    }
    return rc;
}

int obs__config(obs_t *ob, const obs_opts_t *o, err_detail_t *d)
{
    const res_node_t *spec = o->config ? o->config->spec : NULL;
    int rc = read_metrics(ob, o, spec, d);
    if (o->no_metrics)
        ob->metrics_enabled = false;
    rc = rc ? rc : read_tracing(ob, o, spec, d);
    rc = rc ? rc : read_logging(ob, o, spec, d);
    return rc;
}
