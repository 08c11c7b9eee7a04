/*
 * middleware.http.opa — a Rego policy decides each request (spec dapr.md §4.5), evaluated by our
 * own interpreter (src/rego/).
 *
 * Input: Dapr's document — input.request {method, path, path_parts, raw_query, query, headers,
 * scheme, body (with readBody)} — with each included header under Go's canonical key and also
 * lower-cased (Dapr's code-style policies read the first, Dapr's MCP docs the second). The
 * identity headers (dapr-caller-app-id, dapr-caller-namespace) always carry the verified caller,
 * never what a peer wrote. Beyond Dapr, input.mcp = {method, name, arguments, id,
 * protocol_version, batch, messages} describes the JSON-RPC request, so a policy need not parse
 * the body; for a batch, messages lists every {method, name} so a policy can judge all of them.
 *
 * Result of data.http.allow: true → continue; false → defaultStatus; an object {allow,
 * status_code, additional_headers} → as Dapr (headers go on the response when denying, on the
 * request when allowing); an error, no result or another type → x-dapr-opa-error: true and
 * defaultStatus (fail closed).
 *
 * The compiled policy is shared read-only by every worker; each worker keeps its own evaluation
 * context (created on first use, reused, reset per request).
 */
#include <ctype.h>
#include <http_parser.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "mcp/toolfilter.h"
#include "policy/mw.h"
#include "rego/rego.h"

#define OPA_MAX_HEADERS 32

typedef struct opa {
    char name[128];
    rego_policy_t *policy;
    rego_query_t *allow;   /* data.http.allow */
    rego_query_t *visible; /* data.http.visible_tools, when the policy defines it */
    int default_status;
    bool read_body;
    bool judge_notifications; /* mcpNotifications: policy */
    bool uses_mcp;            /* the policy reads input.mcp (else it is not built) */
    bool uses_args;           /* ... and its arguments or messages (the body is parsed again) */
    size_t nheaders;
    char *headers[OPA_MAX_HEADERS]; /* included headers, lower-case; owned */
    rego_eval_t *ev[POL_WORKERS_MAX];
} opa_t;

static void opa_destroy(void *inst)
{
    opa_t *o = inst;
    if (o == NULL)
        return;
    for (size_t i = 0; i < POL_WORKERS_MAX; i++)
        if (o->ev[i] != NULL)
            rego_eval_free(o->ev[i]);
    for (size_t i = 0; i < o->nheaders; i++)
        mem_free(o->headers[i]);
    rego_query_free(o->allow);
    rego_query_free(o->visible);
    rego_policy_unref(o->policy);
    mem_free(o);
}

static bool truthy(const char *v)
{
    return v != NULL &&
           (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0 || strcasecmp(v, "yes") == 0 ||
            strcasecmp(v, "on") == 0 || strcasecmp(v, "y") == 0);
}

static int opa_create(const res_component_t *c, void **inst, err_detail_t *d)
{
    const char *rego = res_component_meta(c, "rego");
    const char *st = res_component_meta(c, "defaultStatus");
    const char *inc = res_component_meta(c, "includedHeaders");
    rego_module_src_t mod;
    rego_compile_opts_t co = {.default_syntax = REGO_SYNTAX_V0};
    const char *code = NULL;
    err_detail_t why = {{0}};
    opa_t *o;

    if (rego == NULL || rego[0] == '\0')
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: metadata rego is required", c->file, c->line,
                       c->name);
    o = mem_calloc(sizeof(*o));
    str_copy(o->name, sizeof(o->name), c->name);
    o->default_status = 403;
    if (st != NULL && st[0] != '\0') {
        char *end;
        long v = strtol(st, &end, 10);
        if (*end != '\0' || v < 100 || v > 599) {
            opa_destroy(o);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: defaultStatus must be 100..599", c->file,
                           c->line, c->name);
        }
        o->default_status = (int)v;
    }
    o->read_body = truthy(res_component_meta(c, "readBody"));
    {
        const char *mn = res_component_meta(c, "mcpNotifications");
        if (mn != NULL && strcmp(mn, "policy") != 0 && strcmp(mn, "allow") != 0) {
            opa_destroy(o);
            return err_set(d, ERR_RES_INVALID,
                           "%s:%d: %s: mcpNotifications must be \"allow\" or \"policy\"", c->file,
                           c->line, c->name);
        }
        o->judge_notifications = mn != NULL && strcmp(mn, "policy") == 0;
    }
    if (inc != NULL) {
        char tmp[2048], *save = NULL, *t;
        str_copy(tmp, sizeof(tmp), inc);
        for (t = strtok_r(tmp, ",", &save); t != NULL && o->nheaders < OPA_MAX_HEADERS;
             t = strtok_r(NULL, ",", &save)) {
            char h[256];
            size_t n = 0;
            for (const char *q = t; *q && n + 1 < sizeof(h); q++)
                if (*q != ' ' && *q != '\t')
                    h[n++] = (char)tolower((unsigned char)*q);
            h[n] = '\0';
            if (n > 0)
                o->headers[o->nheaders++] = mem_strdup(h);
        }
    }
    /* Building input.mcp costs a little per request: only for policies that read it. */
    o->uses_mcp = strstr(rego, "mcp") != NULL;
    o->uses_args = strstr(rego, "arguments") != NULL || strstr(rego, "messages") != NULL;
    /* Dapr's middleware runs OPA 0.x: v0 syntax unless the module imports rego.v1. */
    mod.name = c->name;
    mod.text = rego;
    mod.len = strlen(rego);
    if (rego_policy_new(&mod, 1, NULL, &co, &o->policy, &why, &code) < 0 ||
        rego_query_new(o->policy, "data.http.allow", &o->allow, &why, &code) < 0) {
        opa_destroy(o);
        return err_set(d, ERR_RES_INVALID, "%s:%d: %s: rego: %s", c->file, c->line, c->name,
                       why.msg);
    }
    /* Beyond Dapr: a policy may name the tools a caller sees in tools/list. */
    if (rego_policy_defines(o->policy, "http.visible_tools") &&
        rego_query_new(o->policy, "data.http.visible_tools", &o->visible, &why, &code) < 0)
        o->visible = NULL;
    *inst = o;
    return 0;
}

static size_t opa_body_limit(const void *inst, const pol_call_t *call)
{
    const opa_t *o = inst;
    const net_header_t *ct = net_head_get(call->head, "content-type");
    /* The body is read for readBody, and for JSON requests so input.mcp can describe them. */
    if (o->read_body ||
        (ct != NULL && ct->value_len >= 16 && str_ieq(ct->value, 16, "application/json")))
        return POL_BODY_LIMIT_DEFAULT;
    return 0;
}

/* Go's textproto.CanonicalMIMEHeaderKey. */
static void canonical(char *dst, const char *src, size_t n)
{
    bool up = true;
    for (size_t i = 0; i < n; i++) {
        char ch = src[i];
        dst[i] = up ? (char)toupper((unsigned char)ch) : (char)tolower((unsigned char)ch);
        up = ch == '-';
    }
    dst[n] = '\0';
}

static rego_val_t *str_val(rego_eval_t *ev, const char *s)
{
    return rego_val_new_string(ev, s, strlen(s));
}

/* URL query decoding ('+' is a space) into @p out; returns the length. */
static size_t qdecode(const char *s, size_t n, char *out)
{
    size_t o = 0, i = 0;
    while (i < n)
        out[o++] = (char)str_unescape_byte(s, n, &i, STR_UNESCAPE_PLUS);
    return o;
}

/* input.request.query: {key: [values...]} in order of appearance. */
static rego_val_t *query_val(rego_eval_t *ev, const char *q, size_t n)
{
    rego_val_t *obj = rego_val_new_object(ev);
    char k[1024], v[4096];
    size_t i = 0;
    while (q != NULL && i < n) {
        size_t j = i, eq;
        rego_val_t *arr;
        size_t kl, vl;
        while (j < n && q[j] != '&')
            j++;
        for (eq = i; eq < j && q[eq] != '='; eq++)
            ;
        if (eq - i < sizeof(k) && (j > eq ? j - eq - 1 : 0) < sizeof(v) && j > i) {
            kl = qdecode(q + i, eq - i, k);
            vl = eq < j ? qdecode(q + eq + 1, j - eq - 1, v) : 0;
            arr = NULL;
            for (size_t x = 0; x < rego_val_len(obj); x++) {
                size_t el;
                const char *ks = rego_val_string(rego_val_elem(obj, x), &el);
                if (ks != NULL && el == kl && memcmp(ks, k, kl) == 0)
                    arr = rego_val_obj_value(obj, x);
            }
            if (arr == NULL) {
                arr = rego_val_new_array(ev);
                rego_val_object_put(ev, obj, k, kl, arr);
            }
            rego_val_array_push(ev, arr, rego_val_new_string(ev, v, vl));
        }
        i = j + 1;
    }
    return obj;
}

static rego_val_t *headers_val(const opa_t *o, rego_eval_t *ev, const pol_call_t *call)
{
    rego_val_t *obj = rego_val_new_object(ev);
    for (size_t i = 0; i < o->nheaders; i++) {
        const char *name = o->headers[i];
        size_t nl = strlen(name);
        char canon[256];
        rego_val_t *v = NULL;

        if (strcmp(name, "dapr-caller-app-id") == 0 && call->side == POL_SIDE_APP) {
            v = str_val(ev, call->caller ? call->caller : "");
        } else {
            /* Several fields of one name join with ", " (Go's Header.Values). */
            buf_t joined;
            size_t count = 0;
            buf_init(&joined, 64 * 1024);
            for (size_t k = 0; k < call->head->header_count; k++) {
                const net_header_t *h = &call->head->headers[k];
                if (h->name_len != nl || memcmp(h->name, name, nl) != 0)
                    continue;
                if ((count++ > 0 && buf_append(&joined, ", ", 2) < 0) ||
                    buf_append(&joined, h->value, h->value_len) < 0)
                    break;
            }
            if (count > 0)
                v = rego_val_new_string(ev, joined.ptr ? joined.ptr : "", joined.len);
            buf_free(&joined);
        }
        if (v == NULL)
            continue;
        canonical(canon, name, nl);
        rego_val_object_put(ev, obj, canon, nl, v);
        if (strcmp(canon, name) != 0)
            rego_val_object_put(ev, obj, name, nl, v);
    }
    return obj;
}

/* Converts JSON into a Rego value (the builder has no null: null members are left out). */
static rego_val_t *json_val(rego_eval_t *ev, json_t *j, int depth)
{
    if (depth > 64)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        rego_val_t *o = rego_val_new_object(ev);
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            rego_val_t *x = json_val(ev, v, depth + 1);
            if (x != NULL)
                rego_val_object_put(ev, o, k, strlen(k), x);
        }
        return o;
    }
    case JSON_ARRAY: {
        rego_val_t *a = rego_val_new_array(ev);
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            rego_val_t *x = json_val(ev, v, depth + 1);
            if (x != NULL)
                rego_val_array_push(ev, a, x);
        }
        return a;
    }
    case JSON_STRING:
        return rego_val_new_string(ev, json_string_value(j), json_string_length(j));
    case JSON_INTEGER:
        return rego_val_new_number(ev, (double)json_integer_value(j));
    case JSON_REAL:
        return rego_val_new_number(ev, json_real_value(j));
    case JSON_TRUE:
        return rego_val_new_bool(ev, true);
    case JSON_FALSE:
        return rego_val_new_bool(ev, false);
    default:
        return NULL;
    }
}

/* input.mcp, from the request's JSON-RPC facts and (for arguments and batches) its body. */
static rego_val_t *mcp_val(const opa_t *o, rego_eval_t *ev, const pol_call_t *call)
{
    rego_val_t *m = rego_val_new_object(ev);
    const mcp_peek_t *p = call->mcp;
    const net_header_t *pv = net_head_get(call->head, "mcp-protocol-version");
    json_t *root = NULL;

    /* A batch has no method, name or id of its own: a policy that judges input.mcp.method would
     * otherwise let the first message vouch for the rest. It must look at every message. */
    rego_val_object_put(ev, m, "method", 6, str_val(ev, p->batch ? "" : p->method));
    rego_val_object_put(ev, m, "batch", 5, rego_val_new_bool(ev, p->batch));
    if (!p->batch && p->name[0] != '\0')
        rego_val_object_put(ev, m, "name", 4, str_val(ev, p->name));
    if (!p->batch && p->id[0] != '\0')
        rego_val_object_put(ev, m, "id", 2, str_val(ev, p->id));
    if (pv != NULL)
        rego_val_object_put(ev, m, "protocol_version", 16,
                            rego_val_new_string(ev, pv->value, pv->value_len));
    if (o->uses_args && call->body != NULL && call->body_len > 0)
        root = json_loadb(call->body, call->body_len, JSON_REJECT_DUPLICATES, NULL);
    if (json_is_object(root)) {
        json_t *args = json_object_get(json_object_get(root, "params"), "arguments");
        rego_val_t *a = args != NULL ? json_val(ev, args, 0) : NULL;
        if (a != NULL)
            rego_val_object_put(ev, m, "arguments", 9, a);
    } else if (json_is_array(root)) {
        rego_val_t *msgs = rego_val_new_array(ev);
        size_t i;
        json_t *x;
        json_array_foreach(root, i, x)
        {
            rego_val_t *e = rego_val_new_object(ev);
            json_t *meth = json_object_get(x, "method");
            json_t *params = json_object_get(x, "params");
            json_t *nm = json_object_get(params, "name");
            if (!json_is_string(nm))
                nm = json_object_get(params, "uri");
            if (json_is_string(meth))
                rego_val_object_put(
                    ev, e, "method", 6,
                    rego_val_new_string(ev, json_string_value(meth), json_string_length(meth)));
            if (json_is_string(nm))
                rego_val_object_put(
                    ev, e, "name", 4,
                    rego_val_new_string(ev, json_string_value(nm), json_string_length(nm)));
            rego_val_array_push(ev, msgs, e);
        }
        rego_val_object_put(ev, m, "messages", 8, msgs);
    }
    json_decref(root);
    return m;
}

static rego_val_t *input_val(const opa_t *o, rego_eval_t *ev, const pol_call_t *call)
{
    rego_val_t *in = rego_val_new_object(ev), *req = rego_val_new_object(ev);
    rego_val_t *parts = rego_val_new_array(ev);
    const char *method = http_method_str((enum http_method)call->head->method);
    const char *p = call->path;
    size_t n = call->path_len;

    rego_val_object_put(ev, req, "method", 6, str_val(ev, method));
    rego_val_object_put(ev, req, "path", 4, rego_val_new_string(ev, p, n));
    while (n > 0 && *p == '/') {
        p++;
        n--;
    }
    while (n > 0 && p[n - 1] == '/')
        n--;
    while (n > 0) {
        const char *s = memchr(p, '/', n);
        size_t l = s ? (size_t)(s - p) : n;
        rego_val_array_push(ev, parts, rego_val_new_string(ev, p, l));
        p += l;
        n -= l;
        if (n > 0) {
            p++;
            n--;
        }
    }
    rego_val_object_put(ev, req, "path_parts", 10, parts);
    rego_val_object_put(ev, req, "raw_query", 9,
                        rego_val_new_string(ev, call->query ? call->query : "", call->query_len));
    rego_val_object_put(ev, req, "query", 5, query_val(ev, call->query, call->query_len));
    rego_val_object_put(ev, req, "headers", 7, headers_val(o, ev, call));
    rego_val_object_put(ev, req, "scheme", 6, str_val(ev, ""));
    if (o->read_body)
        rego_val_object_put(
            ev, req, "body", 4,
            rego_val_new_string(ev, call->body ? call->body : "", call->body ? call->body_len : 0));
    rego_val_object_put(ev, in, "request", 7, req);
    if (o->uses_mcp && call->mcp != NULL && call->mcp->valid)
        rego_val_object_put(ev, in, "mcp", 3, mcp_val(o, ev, call));
    return in;
}

static pol_verdict_t deny(opa_t *o, pol_call_t *call, int status, bool error)
{
    call->deny_layer = "opa";
    if (error)
        (void)pol_call_resp_header(call, "x-dapr-opa-error", "true");
    (void)o;
    return pol_call_reject(call, status);
}

/* Copies additional_headers (an object of strings) to the response or the request. */
static void add_headers(pol_call_t *call, rego_val_t *hs, bool on_request)
{
    for (size_t i = 0; hs != NULL && rego_val_kind(hs) == REGO_OBJECT && i < rego_val_len(hs);
         i++) {
        size_t kl, vl;
        const char *k = rego_val_string(rego_val_elem(hs, i), &kl);
        const char *v = rego_val_string(rego_val_obj_value(hs, i), &vl);
        char kn[256], vv[4096];
        if (k == NULL || v == NULL || kl >= sizeof(kn) || vl >= sizeof(vv))
            continue;
        memcpy(kn, k, kl);
        kn[kl] = '\0';
        memcpy(vv, v, vl);
        vv[vl] = '\0';
        if (on_request)
            (void)pol_call_set_header(call, kn, vv);
        else
            (void)pol_call_resp_header(call, kn, vv);
    }
}

/*
 * The MCP client's own lifecycle notifications (one JSON-RPC notification, no id): they invoke
 * nothing on the server, and an MCP client cannot work if they are refused — Dapr's documented MCP
 * policy does not allow notifications/initialized, so the official clients fail to connect under
 * it. They pass unless the component says mcpNotifications: policy.
 */
static bool lifecycle_notification(const pol_call_t *call)
{
    static const char *const names[] = {"notifications/initialized", "notifications/cancelled",
                                        "notifications/progress",
                                        "notifications/roots/list_changed"};
    const mcp_peek_t *m = call->mcp;
    if (m == NULL || !m->valid || m->batch || m->from_headers || m->requests != 0 ||
        m->id[0] != '\0' || call->body == NULL)
        return false;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (strcmp(m->method, names[i]) == 0)
            return true;
    return false;
}

/* Evaluates data.http.visible_tools (same input) into the call's tools/list filter. */
static void set_tool_filter(opa_t *o, rego_eval_t *ev, pol_call_t *call)
{
    rego_val_t *v = NULL;
    err_detail_t d = {{0}};
    const char *names[512];
    char *copies[512];
    size_t n = 0;

    if (rego_eval_value(ev, o->visible, &v, &d) < 0) {
        /* Fail closed: an error hides every tool. */
        log_warn("opa", "%s: visible_tools failed: %s", o->name, d.msg);
        call->tool_filter = mcp_toolfilter_new(names, 0);
        return;
    }
    if (v == NULL)
        return; /* undefined: no filtering */
    if (rego_val_kind(v) != REGO_SET && rego_val_kind(v) != REGO_ARRAY) {
        call->tool_filter = mcp_toolfilter_new(names, 0);
        return;
    }
    for (size_t i = 0; i < rego_val_len(v) && n < 512; i++) {
        size_t l;
        const char *s = rego_val_string(rego_val_elem(v, i), &l);
        if (s == NULL)
            continue;
        copies[n] = mem_alloc(l + 1);
        memcpy(copies[n], s, l);
        copies[n][l] = '\0';
        names[n] = copies[n];
        n++;
    }
    call->tool_filter = mcp_toolfilter_new(names, n);
    for (size_t i = 0; i < n; i++)
        mem_free(copies[i]);
}

static pol_verdict_t opa_handle(void *inst, pol_call_t *call)
{
    opa_t *o = inst;
    rego_eval_t *ev;
    rego_val_t *res = NULL;
    err_detail_t d = {{0}};
    bool allow;
    int status = o->default_status;

    if (call->worker >= POL_WORKERS_MAX)
        return deny(o, call, status, true);
    if (!o->judge_notifications && lifecycle_notification(call))
        return POL_NEXT;
    if (o->ev[call->worker] == NULL)
        o->ev[call->worker] = rego_eval_new(NULL);
    ev = o->ev[call->worker];
    rego_eval_reset(ev);
    rego_eval_set_input(ev, input_val(o, ev, call));
    if (rego_eval_value(ev, o->allow, &res, &d) < 0) {
        log_warn("opa", "%s: policy evaluation failed: %s", o->name, d.msg);
        return deny(o, call, status, true);
    }
    if (res == NULL)
        return deny(o, call, status, true);
    if (rego_val_kind(res) == REGO_BOOL) {
        allow = rego_val_bool(res);
    } else if (rego_val_kind(res) == REGO_OBJECT) {
        rego_val_t *a = rego_val_get(res, "allow"), *sc = rego_val_get(res, "status_code");
        if (a == NULL || rego_val_kind(a) != REGO_BOOL)
            return deny(o, call, status, true);
        allow = rego_val_bool(a);
        if (sc != NULL && rego_val_kind(sc) == REGO_NUMBER) {
            double v = rego_val_number(sc);
            if (v >= 100 && v <= 599)
                status = (int)v;
        }
        add_headers(call, rego_val_get(res, "additional_headers"), allow);
    } else {
        return deny(o, call, status, true);
    }
    if (allow) {
        if (o->visible != NULL && call->mcp != NULL && call->mcp->valid && !call->mcp->batch &&
            strcmp(call->mcp->method, "tools/list") == 0)
            set_tool_filter(o, ev, call);
        return POL_NEXT;
    }
    log_debug("opa", "%s: denied %s %.*s (caller %s, mcp %s %s)", o->name,
              http_method_str((enum http_method)call->head->method), (int)call->path_len,
              call->path, call->caller ? call->caller : "-",
              call->mcp && call->mcp->valid ? call->mcp->method : "-",
              call->mcp && call->mcp->valid ? call->mcp->name : "-");
    return deny(o, call, status, false);
}

const pol_mw_ops_t pol_mw_opa = {
    .type = "middleware.http.opa",
    .create = opa_create,
    .destroy = opa_destroy,
    .body_limit = opa_body_limit,
    .handle = opa_handle,
};
