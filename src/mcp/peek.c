/* MCP request facts from a JSON-RPC body or the 2026-07-28 headers (see peek.h). */
#include "mcp/peek.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"

void mcp_peek_init(mcp_peek_t *out)
{
    memset(out, 0, sizeof(*out));
}

/* Copies [s, s+n) into the field, flagging truncation. */
static void put(mcp_peek_t *out, char *dst, size_t cap, const char *s, size_t n)
{
    if (n >= cap) {
        n = cap - 1;
        out->truncated = true;
    }
    memcpy(dst, s, n);
    dst[n] = '\0';
}

/* One message of the body; the first one fills the fields. */
static int one(json_t *m, mcp_peek_t *out, bool first)
{
    json_t *method, *id, *params, *name;

    if (!json_is_object(m))
        return ERR_INVAL;
    method = json_object_get(m, "method");
    id = json_object_get(m, "id");
    if (method != NULL && !json_is_string(method))
        return ERR_INVAL;
    if (method == NULL && id == NULL)
        return ERR_INVAL; /* neither request, notification nor response */
    out->count++;
    if (method != NULL && id != NULL)
        out->requests++;
    if (!first)
        return 0;
    if (method != NULL)
        put(out, out->method, sizeof(out->method), json_string_value(method),
            json_string_length(method));
    if (id != NULL && !json_is_null(id)) {
        if (json_is_string(id)) {
            /* Quoted, as JSON text (the value is cut to fit). */
            out->id[0] = '"';
            put(out, out->id + 1, sizeof(out->id) - 2, json_string_value(id),
                json_string_length(id));
            memcpy(out->id + strlen(out->id), "\"", 2);
        } else if (json_is_integer(id)) {
            snprintf(out->id, sizeof(out->id), "%lld", (long long)json_integer_value(id));
        } else {
            return ERR_INVAL; /* JSON-RPC ids are strings or numbers */
        }
    }
    params = json_object_get(m, "params");
    if (params != NULL && json_is_object(params)) {
        name = json_object_get(params, "name");
        if (name == NULL || !json_is_string(name))
            name = json_object_get(params, "uri");
        if (name != NULL && json_is_string(name))
            put(out, out->name, sizeof(out->name), json_string_value(name),
                json_string_length(name));
    }
    return 0;
}

int mcp_peek_body(const char *body, size_t len, mcp_peek_t *out)
{
    json_t *root;
    json_error_t jerr;
    int rc = 0;

    mcp_peek_init(out);
    if (len > MCP_PEEK_BODY_MAX)
        return ERR_TOO_LARGE;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return ERR_INVAL;
    if (json_is_array(root)) {
        size_t i;
        out->batch = true;
        if (json_array_size(root) == 0)
            rc = ERR_INVAL;
        for (i = 0; rc == 0 && i < json_array_size(root); i++)
            rc = one(json_array_get(root, i), out, i == 0);
    } else {
        rc = one(root, out, true);
    }
    json_decref(root);
    if (rc < 0) {
        mcp_peek_init(out);
        return rc;
    }
    out->valid = true;
    return 0;
}

int mcp_peek_headers(const char *method, size_t method_len, const char *name, size_t name_len,
                     mcp_peek_t *out)
{
    mcp_peek_init(out);
    if (method == NULL || method_len == 0)
        return ERR_INVAL;
    put(out, out->method, sizeof(out->method), method, method_len);
    if (name != NULL)
        put(out, out->name, sizeof(out->name), name, name_len);
    out->valid = true;
    out->from_headers = true;
    out->count = 1;
    return 0;
}

bool mcp_peek_agree(const mcp_peek_t *h, const mcp_peek_t *b)
{
    if (!h->valid || !b->valid)
        return !h->valid; /* nothing claimed in headers always agrees */
    if (b->batch || strcmp(h->method, b->method) != 0)
        return false;
    return h->name[0] == '\0' || strcmp(h->name, b->name) == 0;
}

bool mcp_peek_idempotent(const mcp_peek_t *p)
{
    static const char *const safe[] = {
        "initialize",     "ping",           "tools/list",
        "prompts/list",   "resources/list", "resources/templates/list",
        "resources/read", "prompts/get",    "notifications/initialized",
    };
    size_t i;

    if (!p->valid || p->batch)
        return false;
    for (i = 0; i < sizeof(safe) / sizeof(safe[0]); i++)
        if (strcmp(p->method, safe[i]) == 0)
            return true;
    return false;
}
