/* tools/list filtering in JSON bodies and SSE streams (see toolfilter.h). */
#include "mcp/toolfilter.h"

#include <jansson.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"

struct mcp_toolfilter {
    char **names;
    size_t n;
    buf_t ev;     /* the SSE event being read */
    bool ev_over; /* the event outgrew ev */
    size_t removed;
    size_t refused;
};

mcp_toolfilter_t *mcp_toolfilter_new(const char *const *names, size_t n)
{
    mcp_toolfilter_t *f = mem_calloc(sizeof(*f));
    f->names = mem_calloc(sizeof(char *) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        f->names[i] = mem_strdup(names[i]);
    f->n = n;
    buf_init(&f->ev, MCP_FILTER_MAX);
    return f;
}

void mcp_toolfilter_free(mcp_toolfilter_t *f)
{
    if (f == NULL)
        return;
    for (size_t i = 0; i < f->n; i++)
        mem_free(f->names[i]);
    mem_free(f->names);
    buf_free(&f->ev);
    mem_free(f);
}

bool mcp_toolfilter_visible(const mcp_toolfilter_t *f, const char *name, size_t len)
{
    for (size_t i = 0; i < f->n; i++)
        if (strlen(f->names[i]) == len && memcmp(f->names[i], name, len) == 0)
            return true;
    return false;
}

size_t mcp_toolfilter_removed(const mcp_toolfilter_t *f)
{
    return f->removed;
}

size_t mcp_toolfilter_refused(const mcp_toolfilter_t *f)
{
    return f->refused;
}

/* Filters result.tools of one message; returns true when something was removed. */
static bool filter_msg(mcp_toolfilter_t *f, json_t *m)
{
    json_t *tools = json_object_get(json_object_get(m, "result"), "tools");
    size_t i = 0;
    bool changed = false;
    if (!json_is_array(tools))
        return false;
    while (i < json_array_size(tools)) {
        json_t *name = json_object_get(json_array_get(tools, i), "name");
        if (json_is_string(name) &&
            mcp_toolfilter_visible(f, json_string_value(name), json_string_length(name))) {
            i++;
            continue;
        }
        json_array_remove(tools, i);
        f->removed++;
        changed = true;
    }
    return changed;
}

/* Parses [in, in+n): when tools were removed, appends the new text to @p out and sets *done. */
static int rewrite(mcp_toolfilter_t *f, const char *in, size_t n, buf_t *out, bool *done)
{
    json_t *root = json_loadb(in, n, 0, NULL);
    bool changed = false;
    char *txt;
    int rc = 0;

    *done = false;
    if (root == NULL)
        return 0;
    if (json_is_array(root)) {
        for (size_t i = 0; i < json_array_size(root); i++)
            changed |= filter_msg(f, json_array_get(root, i));
    } else {
        changed = filter_msg(f, root);
    }
    if (changed) {
        size_t need = json_dumpb(root, NULL, 0, JSON_COMPACT);
        if (need > 0) {
            txt = mem_alloc(need);
            if (json_dumpb(root, txt, need, JSON_COMPACT) == need)
                rc = buf_append(out, txt, need);
            else
                rc = ERR_INVAL;
            mem_free(txt);
            *done = rc == 0;
        }
    }
    json_decref(root);
    return rc;
}

int mcp_toolfilter_json(const mcp_toolfilter_t *fc, const char *in, size_t n, buf_t *out)
{
    mcp_toolfilter_t *f = (mcp_toolfilter_t *)fc;
    bool done;
    int rc;
    if (n > MCP_FILTER_MAX) {
        f->refused++;
        return buf_append_str(out, "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32603,"
                                   "\"message\":\"response too large to filter\"}}");
    }
    rc = rewrite(f, in, n, out, &done);
    if (rc == 0 && !done)
        rc = buf_append(out, in, n);
    return rc;
}

/* One complete event [p, p+n) (its terminating blank line excluded): rewritten or copied. */
static int sse_event(mcp_toolfilter_t *f, const char *p, size_t n, const char *eol, buf_t *out)
{
    buf_t data, other;
    size_t i = 0, ndata = 0;
    bool done = false;
    int rc = 0;

    buf_init(&data, MCP_FILTER_MAX);
    buf_init(&other, MCP_FILTER_MAX);
    while (i < n && rc == 0) {
        size_t j = i, k;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        /* field "data" (value after "data:" and one optional space) */
        if (j - i >= 5 && memcmp(p + i, "data:", 5) == 0) {
            k = i + 5;
            if (k < j && p[k] == ' ')
                k++;
            if (ndata++ > 0)
                rc = buf_append(&data, "\n", 1);
            rc = rc ? rc : buf_append(&data, p + k, j - k);
        } else {
            rc = buf_append(&other, p + i, j - i);
            rc = rc ? rc : buf_append_str(&other, eol);
        }
        if (j < n && p[j] == '\r' && j + 1 < n && p[j + 1] == '\n')
            j++;
        i = j + 1;
    }
    if (rc == 0 && ndata > 0) {
        buf_t nd;
        buf_init(&nd, MCP_FILTER_MAX);
        rc = rewrite(f, data.ptr ? data.ptr : "", data.len, &nd, &done);
        if (rc == 0 && done) {
            /* Other fields (id:, event:, comments) first, then the one data line. */
            rc = buf_append(out, other.ptr ? other.ptr : "", other.len);
            rc = rc ? rc : buf_append_str(out, "data: ");
            rc = rc ? rc : buf_append(out, nd.ptr, nd.len);
            rc = rc ? rc : buf_append_str(out, eol);
            rc = rc ? rc : buf_append_str(out, eol);
        }
        buf_free(&nd);
    }
    if (rc == 0 && !done) {
        rc = buf_append(out, p, n);
        rc = rc ? rc : buf_append_str(out, eol);
    }
    buf_free(&data);
    buf_free(&other);
    return rc;
}

int mcp_toolfilter_sse(mcp_toolfilter_t *f, const char *in, size_t n, buf_t *out)
{
    size_t start = 0;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *eol = NULL;
        size_t cut = 0, skip = 0;
        if (in[i] != '\n')
            continue;
        /* A blank line ends the event: "\n\n" or "\r\n\r\n" across chunk boundaries. */
        if (buf_append(&f->ev, in + start, i + 1 - start) < 0) {
            f->ev_over = true;
            buf_reset(&f->ev);
        }
        start = i + 1;
        if (f->ev.len >= 2 && memcmp(f->ev.ptr + f->ev.len - 2, "\n\n", 2) == 0) {
            eol = "\n";
            skip = 2;
        } else if (f->ev.len >= 4 && memcmp(f->ev.ptr + f->ev.len - 4, "\r\n\r\n", 4) == 0) {
            eol = "\r\n";
            skip = 4;
        } else if (f->ev.len == 1 || (f->ev.len == 2 && f->ev.ptr[0] == '\r')) {
            /* a blank line with no event: pass it on */
            rc = buf_append(out, f->ev.ptr, f->ev.len);
            buf_reset(&f->ev);
            continue;
        } else {
            continue;
        }
        cut = f->ev.len - skip;
        if (f->ev_over) {
            f->refused++;
            rc = buf_append_str(out, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":null,"
                                     "\"error\":{\"code\":-32603,\"message\":\"event too large "
                                     "to filter\"}}\n\n");
            f->ev_over = false;
        } else {
            rc = sse_event(f, f->ev.ptr, cut, eol, out);
        }
        buf_reset(&f->ev);
    }
    if (rc == 0 && start < n && buf_append(&f->ev, in + start, n - start) < 0) {
        f->ev_over = true;
        buf_reset(&f->ev);
    }
    return rc;
}

int mcp_toolfilter_sse_end(mcp_toolfilter_t *f, buf_t *out)
{
    int rc = 0;
    if (f->ev.len > 0 && !f->ev_over)
        rc = buf_append(out, f->ev.ptr, f->ev.len);
    buf_reset(&f->ev);
    return rc;
}
