/*
 * mcp/toolfilter — removes tools a caller may not call from tools/list results, in a JSON response
 * body or in an SSE stream, so one policy governs both listing and calling.
 *
 * Job: given the set of visible tool names, rewrite each JSON-RPC response whose result has a
 * "tools" array (keeping only entries whose "name" is visible); every other message, event field
 * and byte passes unchanged. SSE is parsed event by event (fields per the WHATWG rules; events end
 * at a blank line, LF or CRLF); only the current event is buffered, so a stream flows as it comes.
 *
 * Limits: one JSON body or one SSE event larger than MCP_FILTER_MAX is passed through unfiltered
 * only if it is not a tools/list result we could have filtered — since we cannot tell without
 * reading it, it is replaced by a JSON-RPC error instead (fail closed), and counted in `refused`.
 * Ownership: a filter copies the names; output goes to caller-owned buffers.
 * Threading: a filter belongs to one exchange (one thread). Errors: ERR_TOO_LARGE from output
 * buffers.
 */
#ifndef OUTRIGGER_MCP_TOOLFILTER_H
#define OUTRIGGER_MCP_TOOLFILTER_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"

#define MCP_FILTER_MAX (4 * 1024 * 1024) /* one JSON body or one SSE event */

typedef struct mcp_toolfilter mcp_toolfilter_t;

/** A filter that keeps tools named in @p names (@p n of them; copied). */
mcp_toolfilter_t *mcp_toolfilter_new(const char *const *names, size_t n);
void mcp_toolfilter_free(mcp_toolfilter_t *f);

/** True when @p name (length @p len) is visible. */
bool mcp_toolfilter_visible(const mcp_toolfilter_t *f, const char *name, size_t len);

/**
 * Rewrites one complete JSON body [in, in+n) into @p out. A body that is not JSON or holds no
 * tools/list result is copied unchanged.
 */
int mcp_toolfilter_json(const mcp_toolfilter_t *f, const char *in, size_t n, buf_t *out);

/** Feeds SSE bytes; complete events (rewritten when needed) are appended to @p out. */
int mcp_toolfilter_sse(mcp_toolfilter_t *f, const char *in, size_t n, buf_t *out);
/** End of the stream: a last event without its blank line is flushed to @p out. */
int mcp_toolfilter_sse_end(mcp_toolfilter_t *f, buf_t *out);

/** Tools removed so far, and bodies/events refused for size. */
size_t mcp_toolfilter_removed(const mcp_toolfilter_t *f);
size_t mcp_toolfilter_refused(const mcp_toolfilter_t *f);

#endif
