/* The middleware pipeline: building it from a Configuration, running it per request (see mw.h). */
#include <http_parser.h>
#include <string.h>

#include "base/alloc.h"
#include "base/log.h"
#include "base/str.h"
#include "mcp/toolfilter.h"
#include "policy/mw.h"

typedef struct stage {
    const pol_mw_ops_t *ops;
    void *inst;
    char name[128];
} stage_t;

struct pol_pipeline {
    size_t n;
    stage_t st[POL_PIPELINE_MAX];
};

static const pol_mw_ops_t *const builtin[] = {&pol_mw_bearer, &pol_mw_oauth2cc, &pol_mw_oauth2,
                                              &pol_mw_opa};

static const pol_mw_ops_t *ops_for(const char *type)
{
    for (size_t i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
        if (strcmp(builtin[i]->type, type) == 0)
            return builtin[i];
    return NULL;
}

void pol_pipeline_free(pol_pipeline_t *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n; i++)
        p->st[i].ops->destroy(p->st[i].inst);
    mem_free(p);
}

size_t pol_pipeline_len(const pol_pipeline_t *p)
{
    return p ? p->n : 0;
}

int pol_pipeline_build(const res_node_t *handlers, const res_components_t *cs, pol_side_t side,
                       pol_pipeline_t **out, err_detail_t *d)
{
    const char *section = side == POL_SIDE_HTTP ? "httpPipeline" : "appHttpPipeline";
    pol_pipeline_t *p;
    size_t i;

    *out = NULL;
    if (handlers == NULL || res_node_is_null(handlers))
        return 0;
    if (res_node_kind(handlers) != RES_NODE_SEQ)
        return err_set(d, ERR_RES_INVALID, "line %u: spec.%s.handlers: must be a list",
                       res_node_line(handlers), section);
    if (res_node_count(handlers) > POL_PIPELINE_MAX)
        return err_set(d, ERR_RES_INVALID, "line %u: spec.%s.handlers: more than %d handlers",
                       res_node_line(handlers), section, POL_PIPELINE_MAX);
    p = mem_calloc(sizeof(*p));
    for (i = 0; i < res_node_count(handlers); i++) {
        const res_node_t *h = res_node_at(handlers, i);
        const char *name = res_node_get_str(h, "name"), *type = res_node_get_str(h, "type");
        const char *version = res_node_get_str(h, "version");
        const res_component_t *c;
        const pol_mw_ops_t *ops;
        stage_t *s;
        int rc;

        if (name == NULL || type == NULL) {
            pol_pipeline_free(p);
            return err_set(d, ERR_RES_INVALID,
                           "line %u: spec.%s.handlers.%zu: name and type are required",
                           res_node_line(h), section, i);
        }
        c = res_components_find(cs, name);
        if (c == NULL || strcmp(c->type, type) != 0 ||
            (version != NULL && strcmp(c->version, version) != 0)) {
            /* Dapr skips a handler whose Component is not loaded; say so loudly. */
            log_warn("middleware", "%s handler %s (%s) has no matching Component; skipped", section,
                     name, type);
            continue;
        }
        ops = ops_for(type);
        if (ops == NULL) {
            pol_pipeline_free(p);
            return err_set(d, ERR_RES_INVALID, "%s:%d: %s: middleware type %s is not supported",
                           c->file, c->line, name, type);
        }
        s = &p->st[p->n];
        rc = ops->create(c, &s->inst, d);
        if (rc < 0) {
            pol_pipeline_free(p);
            return rc;
        }
        s->ops = ops;
        str_copy(s->name, sizeof(s->name), name);
        p->n++;
        log_info("middleware", "%s: %s (%s) loaded", section, name, type);
    }
    if (p->n == 0) {
        mem_free(p);
        return 0;
    }
    *out = p;
    return 0;
}

bool pol_pipeline_has(const pol_pipeline_t *p, const char *type)
{
    for (size_t i = 0; p != NULL && i < p->n; i++)
        if (strcmp(p->st[i].ops->type, type) == 0)
            return true;
    return false;
}

size_t pol_pipeline_body_limit(const pol_pipeline_t *p, const pol_call_t *call)
{
    size_t max = 0;
    for (size_t i = 0; p != NULL && i < p->n; i++) {
        size_t n = p->st[i].ops->body_limit ? p->st[i].ops->body_limit(p->st[i].inst, call) : 0;
        if (n > max)
            max = n;
    }
    return max;
}

void pol_call_init(pol_call_t *call)
{
    memset(call, 0, sizeof(*call));
    net_head_init(&call->resp_headers);
    net_head_init(&call->set_headers);
    buf_init(&call->resp_body, 64 * 1024);
}

void pol_call_free(pol_call_t *call)
{
    mcp_toolfilter_free(call->tool_filter);
    call->tool_filter = NULL;
    net_head_free(&call->resp_headers);
    net_head_free(&call->set_headers);
    buf_free(&call->resp_body);
}

/* Runs handlers from call->next_ until one answers, defers, or all passed. */
static pol_verdict_t run(pol_call_t *call)
{
    const pol_pipeline_t *p = call->pl_;
    while (call->next_ < p->n) {
        const stage_t *s = &p->st[call->next_++];
        pol_verdict_t v = s->ops->handle(s->inst, call);
        if (v != POL_NEXT)
            return v;
    }
    return POL_NEXT;
}

pol_verdict_t pol_pipeline_start(const pol_pipeline_t *p, pol_call_t *call, pol_call_done_fn done,
                                 void *arg)
{
    if (p == NULL)
        return POL_NEXT;
    call->pl_ = p;
    call->next_ = 0;
    call->done_ = done;
    call->done_arg_ = arg;
    return run(call);
}

void pol_call_resume(pol_call_t *call, pol_verdict_t v)
{
    if (v == POL_NEXT)
        v = run(call);
    if (v != POL_PENDING)
        call->done_(call, v);
}

pol_verdict_t pol_call_reject(pol_call_t *call, int status)
{
    const char *text = http_status_str((enum http_status)status);
    call->status = status;
    buf_reset(&call->resp_body);
    if (buf_append_str(&call->resp_body, text) < 0)
        buf_reset(&call->resp_body);
    return POL_RESPOND;
}

/* A header a middleware adds may carry outside data (a token, a policy's result): a name must
 * be an HTTP token and a value must hold no CR, LF or NUL, or it could inject headers. */
static bool header_ok(const char *name, const char *value)
{
    static const char tchar[] = "!#$%&'*+-.^_`|~";
    if (name[0] == '\0')
        return false;
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr(tchar, c) != NULL))
            return false;
    }
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return false;
    return true;
}

int pol_call_set_header(pol_call_t *call, const char *name, const char *value)
{
    if (!header_ok(name, value))
        return ERR_INVAL;
    return net_head_add(&call->set_headers, name, strlen(name), value, strlen(value));
}

int pol_call_resp_header(pol_call_t *call, const char *name, const char *value)
{
    if (!header_ok(name, value))
        return ERR_INVAL;
    return net_head_add(&call->resp_headers, name, strlen(name), value, strlen(value));
}
