/*
 * The Dapr HTTP API port: the sidecar's own routes (health, metadata) and, for every other path,
 * service invocation — exactly as Dapr registers its invoke handler as the router's fallback.
 */
#include <http_parser.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/invoke_int.h"
#include "resiliency/resiliency.h"

void invoke__respond_error(net_sreq_t *req, int status, const char *code, const char *fmt, ...)
{
    char msg[1024];
    buf_t b;
    va_list ap;
    int rc;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    buf_init(&b, 8192);
    rc = buf_append_str(&b, "{\"errorCode\":\"");
    rc = rc ? rc : buf_append_json_str(&b, code, strlen(code));
    rc = rc ? rc : buf_append_str(&b, "\",\"message\":\"");
    rc = rc ? rc : buf_append_json_str(&b, msg, strlen(msg));
    rc = rc ? rc : buf_append_str(&b, "\"}");
    if (rc == 0)
        net_sreq_respond_simple(req, status, "application/json", b.ptr, b.len);
    else
        net_sreq_abort(req);
    buf_free(&b);
}

/* Finds query parameter @p key in [q, q+n); copies its raw value into @p out. */
static bool query_param(const char *q, size_t n, const char *key, char *out, size_t out_len)
{
    size_t klen = strlen(key), i = 0;
    while (q != NULL && i < n) {
        size_t j = i;
        while (j < n && q[j] != '&')
            j++;
        if (j - i > klen && memcmp(q + i, key, klen) == 0 && q[i + klen] == '=') {
            size_t vlen = j - i - klen - 1;
            if (vlen >= out_len)
                vlen = out_len - 1;
            memcpy(out, q + i + klen + 1, vlen);
            out[vlen] = '\0';
            return true;
        }
        i = j + 1;
    }
    return false;
}

/* Beyond Dapr's fields: the Resiliency resources in force and where the Configuration came from
 * (both hot-reloaded, so read at the time of the request). */
static int metadata_resiliency_config(invoke_sidecar_t *sc, buf_t *b)
{
    resil_spec_t *rs = sc->resil ? resil_acquire(sc->resil) : NULL;
    res_snapshot_t *snap = res_slot_acquire(&sc->config);
    const res_config_t *cfg = snap ? res_snapshot_config(snap) : NULL;
    int rc = buf_append_str(b, ",\"resiliencies\":[");

    for (size_t i = 0; rc == 0 && i < resil_spec_resource_count(rs); i++) {
        const char *n = resil_spec_resource_name(rs, i);
        rc = buf_append_str(b, i ? ",{\"name\":\"" : "{\"name\":\"");
        rc = rc ? rc : buf_append_json_str(b, n, strlen(n));
        rc = rc ? rc : buf_append_str(b, "\"}");
    }
    rc = rc ? rc : buf_append_str(b, "],\"configuration\":{");
    if (rc == 0 && cfg != NULL) {
        rc = buf_append_str(b, "\"name\":\"");
        rc = rc ? rc : buf_append_json_str(b, cfg->name, strlen(cfg->name));
        rc = rc ? rc : buf_append_str(b, "\",\"source\":\"");
        rc = rc ? rc : buf_append_json_str(b, cfg->file, strlen(cfg->file));
        rc = rc ? rc : buf_append_str(b, "\"");
    }
    rc = rc ? rc : buf_append_str(b, "}");
    res_snapshot_unref(snap);
    resil_spec_unref(rs);
    return rc;
}

static void respond_metadata(invoke_worker_t *iw, net_sreq_t *req)
{
    invoke_sidecar_t *sc = iw->sc;
    const invoke_opts_t *o = sc->opts;
    buf_t b;
    int rc;

    buf_init(&b, 64 * 1024);
    rc = buf_append_str(&b, "{\"id\":\"");
    rc = rc ? rc : buf_append_json_str(&b, o->app_id, strlen(o->app_id));
    rc = rc ? rc
            : buf_printf(&b, "\",\"runtimeVersion\":\"%s\",\"enabledFeatures\":[\"HotReload\"]",
                         OUTRIGGER_VERSION);
    rc = rc ? rc : buf_append_str(&b, sc->res_names_json ? sc->res_names_json : "");
    rc = rc ? rc : metadata_resiliency_config(sc, &b);
    rc = rc ? rc : buf_append_str(&b, ",\"extended\":{\"appCommand\":\"\",\"namespace\":\"");
    rc = rc ? rc : buf_append_json_str(&b, o->namespace_, strlen(o->namespace_));
    rc = rc ? rc : buf_printf(&b, "\",\"daprRuntimeVersion\":\"outrigger-%s\"}", OUTRIGGER_VERSION);
    if (rc == 0 && o->app_port > 0) {
        rc = buf_printf(&b,
                        ",\"appConnectionProperties\":{\"port\":%d,\"protocol\":\"%s\","
                        "\"channelAddress\":\"",
                        o->app_port, o->app_protocol);
        rc = rc ? rc
                : buf_append_json_str(&b, o->app_channel_address, strlen(o->app_channel_address));
        rc = rc ? rc : buf_append_str(&b, "\"}");
    }
    rc = rc ? rc : buf_append_str(&b, "}");
    if (rc == 0)
        net_sreq_respond_simple(req, 200, "application/json", b.ptr, b.len);
    else
        invoke__respond_error(req, 500, "ERR_METADATA_GET", "metadata too large");
    buf_free(&b);
}

bool invoke__api_builtin(invoke_worker_t *iw, net_sreq_t *req, const char *path, size_t len,
                         const char *query, size_t qlen)
{
    const net_head_t *h = net_sreq_head(req);
    char appid[INVOKE_ID_MAX];

    if (h->method != HTTP_GET && h->method != HTTP_HEAD)
        return false;
    if (str_eq(path, len, "/v1.0/healthz")) {
        if (query_param(query, qlen, "appid", appid, sizeof(appid)) &&
            strcmp(appid, iw->sc->opts->app_id) != 0) {
            invoke__respond_error(req, 500, "ERR_HEALTH_APPID_NOT_MATCH",
                                  "dapr app-id does not match");
            return true;
        }
        net_sreq_respond_simple(req, 204, NULL, NULL, 0);
        return true;
    }
    if (str_eq(path, len, "/v1.0/healthz/outbound")) {
        net_sreq_respond_simple(req, 204, NULL, NULL, 0);
        return true;
    }
    if (str_eq(path, len, "/v1.0/metadata")) {
        respond_metadata(iw, req);
        return true;
    }
    return false;
}

/* Health endpoints stay reachable without the API token (spec §11.2). */
static bool token_exempt(const net_head_t *h, const char *path, size_t len)
{
    return h->method == HTTP_GET &&
           (str_eq(path, len, "/v1.0/healthz") || str_eq(path, len, "/v1.0/healthz/outbound"));
}

static bool token_ok(const invoke_sidecar_t *sc, const net_head_t *h)
{
    const net_header_t *t = net_head_get(h, "dapr-api-token");
    size_t n = strlen(sc->api_token);
    unsigned char diff = 0;

    if (t == NULL || t->value_len != n)
        return false;
    for (size_t i = 0; i < n; i++) /* constant time: the token is a secret */
        diff |= (unsigned char)(t->value[i] ^ sc->api_token[i]);
    return diff == 0;
}

void invoke__on_api_request(net_sreq_t *req, void *ctx)
{
    invoke_worker_t *iw = ctx;
    const net_head_t *h = net_sreq_head(req);
    invoke_route_t route;
    err_detail_t d = {{0}};
    char path_mem[256];
    buf_t path;
    const char *q = NULL;
    size_t qlen = 0;
    int rc;

    buf_init_local(&path, path_mem, sizeof(path_mem), 64 * 1024);
    invoke_route_init(&route);
    rc = invoke_url_split(h->url, h->url_len, &path, &q, &qlen, &d);
    if (rc < 0) {
        invoke__respond_error(req, 400, "ERR_MALFORMED_REQUEST", "%s", d.msg);
        goto out;
    }
    if (iw->sc->api_token != NULL && !token_exempt(h, path.ptr, path.len) && !token_ok(iw->sc, h)) {
        net_sreq_respond_simple(req, 401, "text/plain", "invalid api token", 17);
        goto out;
    }
    if (invoke__api_builtin(iw, req, path.ptr, path.len, q, qlen))
        goto out;
    if (invoke__secrets_route(h, path.ptr, path.len)) {
        invoke__api_local(iw, req, path.ptr, path.len, invoke__secrets_serve);
        goto out;
    }
    rc = invoke_route_parse(h, &route, &d);
    if (rc == ERR_INVOKE_NO_APP_ID) {
        invoke__respond_error(req, 404, "ERR_DIRECT_INVOKE", "%s", d.msg);
        goto out;
    }
    if (rc < 0) {
        invoke__respond_error(req, 400, "ERR_DIRECT_INVOKE", "failed to invoke, id: %s, err: %s",
                              route.target[0] ? route.target : "", d.msg);
        goto out;
    }
    invoke__forward(iw, req, &route);
out:
    invoke_route_free(&route);
    buf_free(&path);
}

void invoke__on_api_done(net_sreq_t *req, const net_sreq_stats_t *st, void *ctx)
{
    invoke_worker_t *iw = ctx;
    obs_http_server_done(iw->sc->obs, net_worker_index(iw->nw), net_sreq_head(req), st);
}
