/*
 * The metric registry: fixed families with Dapr's names and labels (spec dapr.md §6.1) plus the
 * MCP-aware ones, each a table of label sets claimed once. Recording hashes the label values into
 * a stack buffer, probes at most OBS_PROBES slots and does relaxed atomic adds: no lock, no
 * allocation. Rendering reads the same slots (Prometheus text format 0.0.4).
 */
#include <http_parser.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/str.h"
#include "observe/obs_int.h"

/* Dapr's byte-size distribution (pkg/diagnostics/utils: defaultSizeDistribution). */
static const double size_bounds[] = {1024,      2048,       4096,        16384,    65536,
                                     262144,    1048576,    4194304,     16777216, 67108864,
                                     268435456, 1073741824, 4294967296.0};
#define SIZE_NB (sizeof(size_bounds) / sizeof(size_bounds[0]))

typedef struct fam_def {
    const char *name;
    const char *help;
    bool hist, bytes;
    const char *labels[OBS_LABELS_MAX];
} fam_def_t;

static const fam_def_t defs[OBS_F_COUNT] = {
    [OBS_F_HTTP_SERVER_REQUEST_COUNT] = {"dapr_http_server_request_count",
                                         "Number of HTTP requests started in server.",
                                         false,
                                         false,
                                         {"method", "path", "status"}},
    [OBS_F_HTTP_SERVER_LATENCY] = {"dapr_http_server_latency",
                                   "HTTP request end-to-end latency in server (ms).",
                                   true,
                                   false,
                                   {"method", "path", "status"}},
    [OBS_F_HTTP_SERVER_REQUEST_BYTES] = {"dapr_http_server_request_bytes",
                                         "HTTP request size in bytes if set by Content-Length.",
                                         true,
                                         true,
                                         {NULL}},
    [OBS_F_HTTP_SERVER_RESPONSE_BYTES] =
        {"dapr_http_server_response_bytes", "HTTP response size in bytes.", true, true, {NULL}},
    [OBS_F_HTTP_SERVER_RESPONSE_COUNT] = {"dapr_http_server_response_count",
                                          "The number of HTTP responses.",
                                          false,
                                          false,
                                          {"path", "method", "status"}},
    [OBS_F_HTTP_CLIENT_SENT_BYTES] = {"dapr_http_client_sent_bytes",
                                      "Total bytes sent in request body (not including headers).",
                                      true,
                                      true,
                                      {"path", "method"}},
    [OBS_F_HTTP_CLIENT_RECEIVED_BYTES] = {"dapr_http_client_received_bytes",
                                          "Total bytes received in response bodies.",
                                          true,
                                          true,
                                          {NULL}},
    [OBS_F_HTTP_CLIENT_ROUNDTRIP_LATENCY] = {"dapr_http_client_roundtrip_latency",
                                             "Time between first byte of request headers sent "
                                             "to last byte of response received (ms).",
                                             true,
                                             false,
                                             {"path", "method", "status"}},
    [OBS_F_HTTP_CLIENT_COMPLETED_COUNT] = {"dapr_http_client_completed_count",
                                           "Count of completed requests.",
                                           false,
                                           false,
                                           {"path", "method", "status"}},
    [OBS_F_SI_REQ_SENT] = {"dapr_runtime_service_invocation_req_sent_total",
                           "The number of requests sent via service invocation.",
                           false,
                           false,
                           {"dst_app_id", "type"}},
    [OBS_F_SI_RES_RECV] = {"dapr_runtime_service_invocation_res_recv_total",
                           "The number of responses received via service invocation.",
                           false,
                           false,
                           {"src_app_id", "status", "type"}},
    [OBS_F_SI_RES_RECV_LATENCY] = {"dapr_runtime_service_invocation_res_recv_latency_ms",
                                   "The latency of service invocation response (ms).",
                                   true,
                                   false,
                                   {"src_app_id", "status"}},
    [OBS_F_SI_REQ_RECV] = {"dapr_runtime_service_invocation_req_recv_total",
                           "The number of requests received via service invocation.",
                           false,
                           false,
                           {"src_app_id"}},
    [OBS_F_SI_RES_SENT] = {"dapr_runtime_service_invocation_res_sent_total",
                           "The number of responses sent via service invocation.",
                           false,
                           false,
                           {"dst_app_id", "status"}},
    [OBS_F_MCP_REQUESTS] = {"outrigger_mcp_requests_total",
                            "MCP JSON-RPC requests by side, caller, target, method and tool.",
                            false,
                            false,
                            {"side", "caller_app_id", "target_app_id", "mcp_method", "tool",
                             "status"}},
    [OBS_F_MCP_LATENCY] = {"outrigger_mcp_request_latency_ms",
                           "MCP JSON-RPC request latency until the response ended (ms).",
                           true,
                           false,
                           {"side", "caller_app_id", "target_app_id", "mcp_method", "tool"}},
    [OBS_F_MCP_DENIED] = {"outrigger_mcp_denied_total",
                          "Calls refused by a policy layer (acl, bearer, opa).",
                          false,
                          false,
                          {"layer", "caller_app_id", "target_app_id", "mcp_method", "tool"}},
    [OBS_F_SPANS] = {"outrigger_trace_spans_total",
                     "Spans by outcome: exported, dropped (queue full), failed (export error).",
                     false,
                     false,
                     {"outcome"}},
};

void obs__families_init(obs_t *o)
{
    for (int i = 0; i < OBS_F_COUNT; i++) {
        obs_family_t *f = &o->fam[i];
        const fam_def_t *d = &defs[i];
        size_t nb = d->bytes ? SIZE_NB : o->lat_nb;
        f->name = d->name;
        f->help = d->help;
        f->hist = d->hist;
        f->bytes = d->bytes;
        for (f->nlabels = 0; f->nlabels < OBS_LABELS_MAX && d->labels[f->nlabels]; f->nlabels++)
            f->labels[f->nlabels] = d->labels[f->nlabels];
        f->enabled = o->metrics_enabled || i == OBS_F_SPANS;
        if (i == OBS_F_HTTP_SERVER_RESPONSE_COUNT && !o->increased_cardinality)
            f->enabled = false;
        f->stride = f->hist ? nb + 3 : 1;
        /* One shard of values per worker (up to OBS_SHARDS_MAX, then shared) plus one for other
         * threads: a worker's adds stay in its own cache lines; a scrape sums the shards. */
        f->shards = (size_t)(o->workers < OBS_SHARDS_MAX ? o->workers : OBS_SHARDS_MAX) + 1;
        if (!f->enabled)
            continue;
        /* Large, zeroed and mostly never touched: the pages are only mapped when written. */
        f->series = mem_calloc(sizeof(*f->series) * (OBS_SERIES_MAX + 1));
        f->vals = mem_calloc(sizeof(*f->vals) * f->stride * (OBS_SERIES_MAX + 1) * f->shards);
        {
            obs_series_t *other = &f->series[OBS_SERIES_MAX];
            size_t k = 0;
            for (size_t l = 0; l < f->nlabels; l++) {
                memcpy(other->key + k, "_other", 7);
                k += 7;
            }
            other->key_len = (uint16_t)k;
            atomic_store(&other->state, 2);
        }
    }
}

void obs__families_free(obs_t *o)
{
    for (int i = 0; i < OBS_F_COUNT; i++) {
        obs_family_t *f = &o->fam[i];
        for (size_t r = 0; r < f->nrules; r++) {
            regfree(&f->rules[r].re);
            mem_free(f->rules[r].replacement);
        }
        mem_free(f->rules);
        mem_free(f->series);
        mem_free(f->vals);
    }
}

/* Length of the valid UTF-8 sequence at p (1..4), or 0 when the bytes there are not one. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    size_t need;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        need = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        need = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        need = 4;
    else
        return 0;
    if (need > n)
        return 0;
    for (size_t i = 1; i < need; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return need;
}

void obs__label_copy(char *out, size_t out_len, const char *p, size_t n)
{
    size_t k = 0, i = 0;
    if (out_len == 0)
        return;
    while (p != NULL && i < n) {
        size_t l, run = 0, lim = n - i < out_len - 1 - k ? n - i : out_len - 1 - k;
        /* A run of printable-range ASCII (no NUL) is copied at once. */
        while (run < lim && (unsigned char)(p[i + run] - 1) < 0x7f)
            run++;
        memcpy(out + k, p + i, run);
        k += run;
        i += run;
        if (i >= n || k + 1 >= out_len)
            break;
        l = utf8_len((const unsigned char *)p + i, n - i);
        if (l == 0 || p[i] == '\0') {
            if (k + 1 >= out_len)
                break;
            out[k++] = '?'; /* Prometheus requires UTF-8; a NUL would end the value */
            i++;
            continue;
        }
        if (k + l >= out_len)
            break;
        memcpy(out + k, p + i, l);
        k += l;
        i += l;
    }
    out[k] = '\0';
}

/* Applies the family's rules to label @p li: the replacement when a regex matches, else @p v. */
static const char *apply_rules(const obs_family_t *f, size_t li, const char *v)
{
    for (size_t r = 0; r < f->nrules; r++)
        if (f->rules[r].label == li && regexec(&f->rules[r].re, v, 0, NULL, 0) == 0)
            return f->rules[r].replacement;
    return v;
}

/* Builds the key of a label set into @p key; returns its length. Values are already valid UTF-8
 * (obs__label_copy), so this is a bounded copy; only a value that a rule rewrites goes through
 * the slower path. */
static size_t make_key(const obs_family_t *f, const char *const *vals, char *key)
{
    size_t k = 0;
    for (size_t l = 0; l < f->nlabels; l++) {
        const char *v = vals && vals[l] ? vals[l] : "";
        size_t room = OBS_KEY_MAX - k, n;
        if (f->nrules)
            v = apply_rules(f, l, v);
        n = strnlen(v, OBS_LABEL_MAX - 1);
        if (n >= room)
            n = room - 1;
        while (n > 0 && v[n] != '\0' && ((unsigned char)v[n] & 0xc0) == 0x80)
            n--; /* cut: never inside a UTF-8 sequence */
        memcpy(key + k, v, n);
        key[k + n] = '\0';
        k += n + 1;
    }
    return k;
}

/* FNV-1a of a key (its NULs included). */
static uint32_t key_hash(const char *key, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

/* Finds or claims the series of @p vals; the "_other" series when the table is full. A worker
 * first tries the series it used last for this family (its memo): the same label set again costs
 * the key copy and one compare, no hash and no probe. */
/* True when the key of @p s is exactly the label values @p vals (no rules applied). */
static bool key_is(const obs_family_t *f, const obs_series_t *s, const char *const *vals)
{
    const char *k = s->key, *end = s->key + s->key_len;
    for (size_t l = 0; l < f->nlabels; l++) {
        const char *v = vals && vals[l] ? vals[l] : "";
        size_t n = strlen(v);
        if (n >= OBS_LABEL_MAX - 1 || (size_t)(end - k) < n + 1 || memcmp(k, v, n) != 0 ||
            k[n] != '\0')
            return false; /* (a value make_key would cut goes the long way) */
        k += n + 1;
    }
    return k == end;
}

static size_t series_index(obs_t *o, obs_fam_id_t fi, int worker, const char *const *vals)
{
    obs_family_t *f = &o->fam[fi];
    char key[OBS_KEY_MAX];
    size_t kl;
    uint16_t *memo = worker >= 0 ? &o->memo[worker % OBS_MAX_WORKERS][fi] : NULL;
    uint32_t h;

    if (memo != NULL && f->nrules == 0) {
        /* The same label set as last time: compared in place, no key built. */
        const obs_series_t *s = &f->series[*memo];
        if (atomic_load_explicit(&s->state, memory_order_acquire) == 2 && key_is(f, s, vals))
            return *memo;
    }
    kl = make_key(f, vals, key);
    if (memo != NULL) {
        const obs_series_t *s = &f->series[*memo];
        if (atomic_load_explicit(&s->state, memory_order_acquire) == 2 && s->key_len == kl &&
            memcmp(s->key, key, kl) == 0)
            return *memo;
    }
    h = key_hash(key, kl);
    for (size_t probe = 0; probe < OBS_PROBES; probe++) {
        size_t i = (h + probe) % OBS_SERIES_MAX;
        obs_series_t *s = &f->series[i];
        int st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (st == 0) {
            int expected = 0;
            if (atomic_compare_exchange_strong(&s->state, &expected, 1)) {
                s->hash = h;
                s->key_len = (uint16_t)kl;
                memcpy(s->key, key, kl);
                atomic_store_explicit(&s->state, 2, memory_order_release);
                if (memo != NULL)
                    *memo = (uint16_t)i;
                return i;
            }
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        }
        while (st == 1) /* another worker is filling it in: a few stores away */
            st = atomic_load_explicit(&s->state, memory_order_acquire);
        if (s->hash == h && s->key_len == kl && memcmp(s->key, key, kl) == 0) {
            if (memo != NULL)
                *memo = (uint16_t)i;
            return i;
        }
    }
    return OBS_SERIES_MAX;
}

/* The values of series @p i in the shard of @p worker (-1: not a worker thread). */
static atomic_ullong *slot_vals(const obs_family_t *f, int worker, size_t i)
{
    size_t shard = worker < 0 ? f->shards - 1 : (size_t)worker % (f->shards - 1);
    return &f->vals[(shard * (OBS_SERIES_MAX + 1) + i) * f->stride];
}

void obs__count(obs_t *o, int worker, obs_fam_id_t fi, const char *const *vals, uint64_t n)
{
    obs_family_t *f = &o->fam[fi];
    if (!f->enabled)
        return;
    atomic_fetch_add_explicit(slot_vals(f, worker, series_index(o, fi, worker, vals)), n,
                              memory_order_relaxed);
}

void obs__observe(obs_t *o, int worker, obs_fam_id_t fi, const char *const *vals, uint64_t v_milli)
{
    obs_family_t *f = &o->fam[fi];
    const double *bounds = f->bytes ? size_bounds : o->lat_bounds;
    size_t nb = f->stride - 3, b = 0;
    atomic_ullong *v;
    double x = (double)v_milli / 1000.0;

    if (!f->enabled)
        return;
    v = slot_vals(f, worker, series_index(o, fi, worker, vals));
    while (b < nb && x > bounds[b])
        b++;
    atomic_fetch_add_explicit(&v[b], 1, memory_order_relaxed); /* b == nb: only +Inf */
    atomic_fetch_add_explicit(&v[nb + 1], v_milli, memory_order_relaxed);
    atomic_fetch_add_explicit(&v[nb + 2], 1, memory_order_relaxed);
}

/* Value @p k of series @p i summed over the shards. */
static unsigned long long sum_val(const obs_family_t *f, size_t i, size_t k)
{
    unsigned long long n = 0;
    for (size_t sh = 0; sh < f->shards; sh++)
        n += atomic_load_explicit(&f->vals[(sh * (OBS_SERIES_MAX + 1) + i) * f->stride + k],
                                  memory_order_relaxed);
    return n;
}

/* Appends a label value with Prometheus escaping (\\, \", \n). */
static int esc(buf_t *b, const char *v)
{
    int rc = 0;
    for (const char *p = v; *p && rc == 0; p++) {
        if (*p == '\\' || *p == '"')
            rc = buf_append(b, "\\", 1);
        rc = rc ? rc : (*p == '\n' ? buf_append(b, "\\n", 2) : buf_append(b, p, 1));
    }
    return rc;
}

/* Appends {app_id="..",l1="..",...[,le=".."]}. */
static int labels(buf_t *b, const obs_t *o, const obs_family_t *f, const obs_series_t *s,
                  const char *le)
{
    const char *v = s->key;
    int rc = buf_append_str(b, "{app_id=\"");
    rc = rc ? rc : esc(b, o->app_id);
    for (size_t l = 0; l < f->nlabels && rc == 0; l++) {
        rc = buf_printf(b, "\",%s=\"", f->labels[l]);
        rc = rc ? rc : esc(b, v);
        v += strlen(v) + 1;
    }
    if (rc == 0 && le != NULL)
        rc = buf_printf(b, "\",le=\"%s", le);
    return rc ? rc : buf_append_str(b, "\"}");
}

static int render_family(obs_t *o, const obs_family_t *f, buf_t *b)
{
    const double *bounds = f->bytes ? size_bounds : o->lat_bounds;
    int rc = buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", f->name, f->help, f->name,
                        f->hist ? "histogram" : "counter");

    for (size_t i = 0; i <= OBS_SERIES_MAX && rc == 0; i++) {
        const obs_series_t *s = &f->series[i];
        if (atomic_load_explicit(&s->state, memory_order_acquire) != 2)
            continue;
        if (!f->hist) {
            unsigned long long n = sum_val(f, i, 0);
            if (n == 0 && i == OBS_SERIES_MAX)
                continue;
            rc = buf_append_str(b, f->name);
            rc = rc ? rc : labels(b, o, f, s, NULL);
            rc = rc ? rc : buf_printf(b, " %llu\n", n);
        } else {
            size_t nb = f->stride - 3;
            unsigned long long cum = 0, count = sum_val(f, i, nb + 2);
            if (count == 0)
                continue;
            for (size_t k = 0; k <= nb && rc == 0; k++) {
                char le[32];
                cum += sum_val(f, i, k);
                if (k < nb)
                    snprintf(le, sizeof(le), "%g", bounds[k]);
                else
                    snprintf(le, sizeof(le), "+Inf");
                rc = buf_printf(b, "%s_bucket", f->name);
                rc = rc ? rc : labels(b, o, f, s, le);
                rc = rc ? rc : buf_printf(b, " %llu\n", k < nb ? cum : count);
            }
            rc = rc ? rc : buf_printf(b, "%s_sum", f->name);
            rc = rc ? rc : labels(b, o, f, s, NULL);
            rc = rc ? rc : buf_printf(b, " %.3f\n", (double)sum_val(f, i, nb + 1) / 1000.0);
            rc = rc ? rc : buf_printf(b, "%s_count", f->name);
            rc = rc ? rc : labels(b, o, f, s, NULL);
            rc = rc ? rc : buf_printf(b, " %llu\n", count);
        }
    }
    return rc;
}

int obs_metrics_render(obs_t *o, buf_t *b)
{
    int rc = 0;
    for (int i = 0; i < OBS_F_COUNT && rc == 0; i++)
        if (o->fam[i].enabled)
            rc = render_family(o, &o->fam[i], b);
    return rc;
}

bool obs_metrics_enabled(const obs_t *o)
{
    return o->metrics_enabled;
}

bool obs__pattern_match(const char *pat, const char *path, size_t n)
{
    size_t i = 0;
    const char *p = pat;

    while (*p) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close == NULL)
                return false;
            if (close - p >= 4 && memcmp(close - 3, "...", 3) == 0)
                return true; /* "{rest...}" takes what is left, '/' included */
            if (i >= n || path[i] == '/')
                return false; /* a {name} segment is not empty */
            while (i < n && path[i] != '/')
                i++;
            p = close + 1;
            continue;
        }
        if (i >= n || path[i] != *p)
            return false;
        i++;
        p++;
    }
    return i == n;
}

void obs__path_label(const obs_t *o, const char *path, size_t n, char *out, size_t out_len)
{
    const char *q = memchr(path, '?', n);
    if (q != NULL)
        n = (size_t)(q - path); /* query strings may carry secrets and have no bound */
    for (size_t i = 0; i < o->npatterns; i++) {
        if (obs__pattern_match(o->patterns[i], path, n)) {
            obs__label_copy(out, out_len, o->patterns[i], strlen(o->patterns[i]));
            return;
        }
    }
    if (o->increased_cardinality)
        obs__label_copy(out, out_len, path, n);
    else
        out[0] = '\0';
}

const char *obs__method_label(const obs_t *o, int m)
{
    if (o->exclude_verbs)
        return "";
    switch (m) {
    case HTTP_GET:
    case HTTP_HEAD:
    case HTTP_POST:
    case HTTP_PUT:
    case HTTP_DELETE:
    case HTTP_CONNECT:
    case HTTP_OPTIONS:
    case HTTP_TRACE:
    case HTTP_PATCH:
        return http_method_str((enum http_method)m);
    default:
        return "UNKNOWN";
    }
}
