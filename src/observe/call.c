/*
 * Recording one request: the Dapr API port's metrics and API log line, and each proxied exchange
 * (service invocation on both sides, the app channel, MCP-aware metrics, the span, the audit line).
 */
#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "base/log.h"
#include "base/str.h"
#include "observe/obs_int.h"

#define AUDIT_ARGS_MAX 4096 /* bytes of redacted arguments in one audit line */

/* An HTTP status as text, without printf (this runs for every request). */
static void status_text(char out[16], int status)
{
    if (status >= 100 && status <= 999) {
        out[0] = (char)('0' + status / 100);
        out[1] = (char)('0' + status / 10 % 10);
        out[2] = (char)('0' + status % 10);
        out[3] = '\0';
    } else {
        snprintf(out, 16, "%d", status);
    }
}

/* @p us microseconds as milliseconds with three decimals ("%.3f" of us / 1000), without printf. */
static void ms_text(char out[32], uint64_t us)
{
    char tmp[24];
    size_t i = sizeof(tmp), k = 0;
    uint64_t ms = us / 1000, frac = us % 1000;
    do {
        tmp[--i] = (char)('0' + ms % 10);
        ms /= 10;
    } while (ms != 0);
    while (i < sizeof(tmp))
        out[k++] = tmp[i++];
    out[k++] = '.';
    out[k++] = (char)('0' + frac / 100);
    out[k++] = (char)('0' + frac / 10 % 10);
    out[k++] = (char)('0' + frac % 10);
    out[k] = '\0';
}

static size_t path_len(const char *url, size_t n)
{
    const char *q = memchr(url, '?', n);
    return q ? (size_t)(q - url) : n;
}

/* Dapr's obfuscated form of an API URL: the route, without ids, methods or query. */
static const char *obfuscated(const char *p, size_t n)
{
    if (n >= 13 && memcmp(p, "/v1.0/invoke/", 13) == 0)
        return "/v1.0/invoke/{id}/method/{method}";
    if (str_eq(p, n, "/v1.0/healthz") || str_eq(p, n, "/v1.0/healthz/outbound") ||
        str_eq(p, n, "/v1.0/metadata"))
        return NULL; /* fixed routes are shown as they are */
    return "/{method}";
}

void obs_http_server_done(obs_t *o, int worker, const net_head_t *h, const net_sreq_stats_t *st)
{
    char path[OBS_LABEL_MAX], status[16];
    size_t pl;
    uint64_t lat_us;
    const char *method;

    if (o == NULL || h == NULL || st == NULL)
        return;
    pl = path_len(h->url, h->url_len);
    lat_us = (st->end_ns - st->start_ns) / 1000;
    method = obs__method_label(o, h->method);
    obs__path_label(o, h->url, pl, path, sizeof(path));
    status_text(status, st->status);
    {
        const char *v3[] = {method, path, status};
        const char *rc3[] = {path, method, status};
        obs__count(o, worker, OBS_F_HTTP_SERVER_REQUEST_COUNT, v3, 1);
        obs__observe(o, worker, OBS_F_HTTP_SERVER_LATENCY, v3, lat_us);
        obs__observe(o, worker, OBS_F_HTTP_SERVER_REQUEST_BYTES, NULL, st->in_bytes * 1000);
        obs__observe(o, worker, OBS_F_HTTP_SERVER_RESPONSE_BYTES, NULL, st->out_bytes * 1000);
        obs__count(o, worker, OBS_F_HTTP_SERVER_RESPONSE_COUNT, rc3, 1);
    }
    if (o->api_logging &&
        !(o->omit_health && pl >= 13 && memcmp(h->url, "/v1.0/healthz", 13) == 0)) {
        const net_header_t *ua = net_head_get(h, "user-agent");
        const char *ob = o->obfuscate_urls ? obfuscated(h->url, pl) : NULL;
        char ubuf[OBS_ATTR_MAX];
        /* The query string is never logged: tokens and keys travel there. */
        obs__label_copy(ubuf, sizeof(ubuf), ob ? ob : h->url, ob ? strlen(ob) : pl);
        {
            char code[16], dur[32], uab[256];
            log_kv_t kv[] = {
                {"method", http_method_str((enum http_method)h->method), false},
                {"url", ubuf, false},
                {"code", code, true},
                {"duration_ms", dur, true},
                {"useragent", uab, false},
            };
            status_text(code, st->status);
            ms_text(dur, lat_us);
            obs__label_copy(uab, sizeof(uab), ua ? ua->value : "", ua ? ua->value_len : 0);
            log_kv(LOG_INFO, "api", kv, sizeof(kv) / sizeof(kv[0]), "HTTP API Called");
        }
    }
}

static void hdr_copy(const net_head_t *in, const char *name, char *out, size_t n)
{
    const net_header_t *h = in ? net_head_get(in, name) : NULL;
    if (h != NULL)
        obs__label_copy(out, n, h->value, h->value_len);
}

void obs_call_start(obs_t *o, obs_call_t *c, int worker, obs_side_t side, const net_head_t *in,
                    const char *peer_app, const char *path, size_t plen)
{
    memset(c, 0, sizeof(*c));
    if (o == NULL)
        return;
    c->obs = o;
    c->worker = worker;
    c->side = side;
    c->http_method = in ? in->method : HTTP_GET;
    c->start_ns = uv_hrtime();
    obs__label_copy(c->peer_app, sizeof(c->peer_app), peer_app ? peer_app : "unknown",
                    strlen(peer_app ? peer_app : "unknown"));
    /* The app's path as the app sees it: always with its leading '/'. */
    if (path != NULL && plen > 0 && path[0] != '/') {
        c->path[0] = '/';
        obs__label_copy(c->path + 1, sizeof(c->path) - 1, path, path_len(path, plen));
    } else {
        obs__label_copy(c->path, sizeof(c->path), path, path ? path_len(path, plen) : 0);
    }
    /* Sessionless MCP (2026-07-28) names method and target in headers; the body may refine.
     * One pass over the fields for the four Mcp-* names (the first of each counts). */
    for (size_t i = 0, seen = 0; in != NULL && i < in->header_count; i++) {
        const net_header_t *h = &in->headers[i];
        char *dst = NULL;
        size_t cap = 0, bit = 0;
        if (h->name_len < 8 || memcmp(h->name, "mcp-", 4) != 0)
            continue;
        if (str_eq(h->name, h->name_len, "mcp-method"))
            dst = c->mcp_method, cap = sizeof(c->mcp_method), bit = 1;
        else if (str_eq(h->name, h->name_len, "mcp-name"))
            dst = c->mcp_tool, cap = sizeof(c->mcp_tool), bit = 2;
        else if (str_eq(h->name, h->name_len, "mcp-session-id"))
            dst = c->mcp_session, cap = sizeof(c->mcp_session), bit = 4;
        else if (str_eq(h->name, h->name_len, "mcp-protocol-version"))
            dst = c->mcp_version, cap = sizeof(c->mcp_version), bit = 8;
        if (dst != NULL && !(seen & bit)) {
            seen |= bit;
            obs__label_copy(dst, cap, h->value, h->value_len);
        }
    }
    obs__trace_begin(o, &c->trace, worker, in);
    if (side == OBS_SIDE_CALLER || side == OBS_SIDE_EXTERNAL) {
        const char *v[] = {c->peer_app, "unary"};
        obs__count(o, c->worker, OBS_F_SI_REQ_SENT, v, 1);
    } else if (side == OBS_SIDE_CALLEE) {
        const char *v[] = {c->peer_app};
        obs__count(o, c->worker, OBS_F_SI_REQ_RECV, v, 1);
    }
}

bool obs_skip_header(const obs_call_t *c, const char *lname, size_t len)
{
    return c != NULL && c->obs != NULL && str_eq(lname, len, "traceparent");
}

int obs_call_headers(obs_call_t *c, net_head_t *out)
{
    char tp[56];
    if (c == NULL || c->obs == NULL)
        return 0;
    obs_traceparent_format(&c->trace, tp);
    return net_head_add(out, "traceparent", 11, tp, 55);
}

void obs_call_mcp(obs_call_t *c, const char *method, const char *tool, const char *session,
                  const char *request_id)
{
    if (c == NULL || c->obs == NULL)
        return;
    if (method != NULL && *method)
        obs__label_copy(c->mcp_method, sizeof(c->mcp_method), method, strlen(method));
    if (tool != NULL && *tool)
        obs__label_copy(c->mcp_tool, sizeof(c->mcp_tool), tool, strlen(tool));
    if (session != NULL && *session)
        obs__label_copy(c->mcp_session, sizeof(c->mcp_session), session, strlen(session));
    if (request_id != NULL && *request_id)
        obs__label_copy(c->mcp_request_id, sizeof(c->mcp_request_id), request_id,
                        strlen(request_id));
}

void obs_call_response(obs_call_t *c, int status, const net_head_t *h)
{
    if (c == NULL || c->obs == NULL || c->resp_ns != 0)
        return;
    c->status = status;
    c->resp_ns = uv_hrtime();
    if (c->mcp_session[0] == '\0')
        hdr_copy(h, "mcp-session-id", c->mcp_session, sizeof(c->mcp_session));
}

void obs_call_bytes(obs_call_t *c, uint64_t sent, uint64_t recv)
{
    if (c == NULL || c->obs == NULL)
        return;
    c->sent_bytes += sent;
    c->recv_bytes += recv;
}

static bool redacted_key(const obs_t *o, const char *k)
{
    /* Names that carry credentials are hidden even when not listed. */
    static const char *const builtin[] = {"password",      "passwd",     "secret",
                                          "token",         "apikey",     "api_key",
                                          "authorization", "credential", "key"};
    for (size_t i = 0; i < o->nredact; i++)
        if (strcasecmp(o->redact[i], k) == 0)
            return true;
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (strcasestr(k, builtin[i]) != NULL)
            return true;
    return false;
}

static void redact(const obs_t *o, json_t *v, int depth)
{
    const char *k;
    json_t *x;
    size_t i;
    if (depth > 32)
        return;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            if (redacted_key(o, k))
                json_object_set_new(v, k, json_string("[REDACTED]"));
            else
                redact(o, x, depth + 1);
        }
    } else if (json_is_array(v)) {
        json_array_foreach(v, i, x) redact(o, x, depth + 1);
    }
}

/* The redacted `params.arguments` of the tools/call in @p body, into @p out ("" if none). */
static void audit_args(const obs_t *o, const char *body, size_t n, char *out, size_t out_len)
{
    json_error_t e;
    json_t *root = body && n ? json_loadb(body, n, 0, &e) : NULL;
    json_t *args = NULL;
    out[0] = '\0';
    if (json_is_array(root)) { /* a batch: the first tools/call */
        size_t i;
        json_t *x;
        json_array_foreach(root, i, x)
        {
            if (json_is_string(json_object_get(x, "method")) &&
                strcmp(json_string_value(json_object_get(x, "method")), "tools/call") == 0) {
                args = json_object_get(json_object_get(x, "params"), "arguments");
                break;
            }
        }
    } else if (json_is_object(root)) {
        args = json_object_get(json_object_get(root, "params"), "arguments");
    }
    if (args != NULL) {
        redact(o, args, 0);
        size_t w = json_dumpb(args, out, out_len - 1, JSON_COMPACT | JSON_SORT_KEYS);
        /* Too long for the line: say so rather than cut JSON in the middle. */
        if (w == 0 || w >= out_len)
            snprintf(out, out_len, "\"(too large)\"");
        else
            out[w] = '\0';
    }
    json_decref(root);
}

static void audit(obs_call_t *c, const char *outcome, const char *status, uint64_t lat_us,
                  const char *body, size_t body_len)
{
    obs_t *o = c->obs;
    char tid[56], args[AUDIT_ARGS_MAX], st[16], lat[32];
    const char *caller = c->side == OBS_SIDE_CALLEE ? c->peer_app : o->app_id;
    const char *target = c->side == OBS_SIDE_EXTERNAL ? c->peer_app : o->app_id;

    obs_traceparent_format(&c->trace, tid);
    tid[35] = '\0';
    args[0] = '\0';
    if (o->audit_args)
        audit_args(o, body, body_len, args, sizeof(args));
    str_copy(st, sizeof(st), status);
    ms_text(lat, lat_us);
    {
        log_kv_t kv[] = {
            {"caller", caller, false},
            {"target", target, false},
            {"tool", c->mcp_tool, false},
            {"outcome", outcome, false},
            {"status", st, true},
            {"latency_ms", lat, true},
            {"trace_id", tid + 3, false},
            {"session", c->mcp_session, false},
            {"arguments", args[0] ? args : "{}", true},
            {"error", c->error, false},
        };
        size_t n = sizeof(kv) / sizeof(kv[0]);
        if (c->error[0] == '\0')
            n--;              /* error is last */
        if (!o->audit_args) { /* arguments: drop the entry, keep what follows */
            kv[8] = kv[9];
            n--;
        }
        log_kv(LOG_INFO, "audit", kv, n, "mcp tool call");
    }
}

void obs_call_end(obs_call_t *c, const char *error, const char *body, size_t body_len)
{
    obs_t *o;
    uint64_t end_ns, lat_us;
    char status[16], path[OBS_LABEL_MAX];
    const char *method;
    int st;

    if (c == NULL || c->obs == NULL || c->ended)
        return;
    o = c->obs;
    c->ended = true;
    end_ns = uv_hrtime();
    lat_us = (end_ns - c->start_ns) / 1000;
    if (error != NULL && *error)
        obs__label_copy(c->error, sizeof(c->error), error, strlen(error));
    st = c->status > 0 ? c->status : 500;
    status_text(status, st);
    method = obs__method_label(o, c->http_method);
    obs__path_label(o, c->path, strlen(c->path), path, sizeof(path));

    if (c->side == OBS_SIDE_CALLER || c->side == OBS_SIDE_EXTERNAL) {
        const char *v3[] = {c->peer_app, status, "unary"};
        obs__count(o, c->worker, OBS_F_SI_RES_RECV, v3, 1);
        obs__observe(o, c->worker, OBS_F_SI_RES_RECV_LATENCY, v3, lat_us);
    } else {
        const char *v2[] = {path, method};
        const char *v3[] = {path, method, status};
        if (c->side == OBS_SIDE_CALLEE) {
            const char *vs[] = {c->peer_app, status};
            obs__count(o, c->worker, OBS_F_SI_RES_SENT, vs, 1);
        }
        obs__count(o, c->worker, OBS_F_HTTP_CLIENT_COMPLETED_COUNT, v3, 1);
        obs__observe(o, c->worker, OBS_F_HTTP_CLIENT_ROUNDTRIP_LATENCY, v3, lat_us);
        obs__observe(o, c->worker, OBS_F_HTTP_CLIENT_SENT_BYTES, v2, c->sent_bytes * 1000);
        obs__observe(o, c->worker, OBS_F_HTTP_CLIENT_RECEIVED_BYTES, NULL, c->recv_bytes * 1000);
    }
    if (c->mcp_method[0]) {
        static const char *const sides[] = {"client", "server", "server", "client"};
        bool outward = c->side == OBS_SIDE_CALLER || c->side == OBS_SIDE_EXTERNAL;
        const char *caller = c->side == OBS_SIDE_CALLEE ? c->peer_app : o->app_id;
        const char *target = outward ? c->peer_app : o->app_id;
        const char *tool = c->mcp_tool;
        const char *v6[] = {sides[c->side], caller, target, c->mcp_method, tool, status};
        obs__count(o, c->worker, OBS_F_MCP_REQUESTS, v6, 1);
        obs__observe(o, c->worker, OBS_F_MCP_LATENCY, v6, lat_us);
        /* Audited once: by the sidecar in front of the app, or by the caller when no sidecar
         * stands in front of the target (HTTPEndpoint, full URL). */
        if (o->audit && c->side != OBS_SIDE_CALLER && strcmp(c->mcp_method, "tools/call") == 0 &&
            log_enabled(LOG_INFO))
            audit(c,
                  c->denied                  ? "denied"
                  : c->error[0] || st >= 400 ? "error"
                                             : "ok",
                  status, lat_us, body, body_len);
    }
    if (o->tracing && c->trace.sampled) {
        /* Written straight into the ring slot; strings copied up to their length only. */
        obs_span_t *s = obs__span_reserve(o, c->worker);
        struct timespec now;
        uint64_t unix_end;
        if (s == NULL)
            return;
        clock_gettime(CLOCK_REALTIME, &now);
        unix_end = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
        memcpy(s->trace_id, c->trace.trace_id, 16);
        memcpy(s->span_id, c->trace.span_id, 8);
        memcpy(s->parent_id, c->trace.parent_id, 8);
        s->has_parent = c->trace.has_parent;
        s->side = (uint8_t)c->side;
        s->http_method = c->http_method;
        s->status = c->status;
        s->end_unix_ns = unix_end;
        s->start_unix_ns = unix_end - (end_ns - c->start_ns);
        str_copy(s->peer_app, sizeof(s->peer_app), c->peer_app);
        str_copy(s->path, sizeof(s->path), c->path);
        str_copy(s->mcp_method, sizeof(s->mcp_method), c->mcp_method);
        str_copy(s->mcp_tool, sizeof(s->mcp_tool), c->mcp_tool);
        str_copy(s->mcp_session, sizeof(s->mcp_session), c->mcp_session);
        str_copy(s->mcp_request_id, sizeof(s->mcp_request_id), c->mcp_request_id);
        str_copy(s->mcp_version, sizeof(s->mcp_version), c->mcp_version);
        str_copy(s->error, sizeof(s->error), c->error);
        obs__span_commit(o, c->worker);
    }
}

void obs_denied(obs_t *o, obs_call_t *c, int worker, const char *layer, const char *caller,
                const char *target, const char *mcp_method, const char *tool)
{
    char cl[OBS_LABEL_MAX], t[OBS_LABEL_MAX], m[64], n[OBS_LABEL_MAX];
    const char *v[] = {layer, cl, t, m, n};
    if (o == NULL)
        return;
    /* These may come straight from a peer's headers: labels must be valid UTF-8. */
    obs__label_copy(cl, sizeof(cl), caller, caller ? strlen(caller) : 0);
    obs__label_copy(t, sizeof(t), target, target ? strlen(target) : 0);
    obs__label_copy(m, sizeof(m), mcp_method, mcp_method ? strlen(mcp_method) : 0);
    obs__label_copy(n, sizeof(n), tool, tool ? strlen(tool) : 0);
    obs__count(o, worker, OBS_F_MCP_DENIED, v, 1);
    if (c != NULL && c->obs != NULL)
        c->denied = true;
}
