/*
 * mcp/peek — the JSON-RPC facts of one MCP request, read once and shared by everything that
 * decides on or records the request (resiliency, metrics, tracing, audit, policy).
 *
 * Job: from a complete request body (JSON-RPC object or batch array) or, for sessionless
 * 2026-07-28 requests, from the Mcp-Method / Mcp-Name headers, extract the method, the tool /
 * prompt name (params.name) or resource URI (params.uri), the id and the batch shape.
 *
 * Contract: pure functions on caller-owned memory, no allocation kept, thread-safe. A body is
 * read by a scanner that builds no tree and allocates nothing; what it does not cover (escaped
 * keys or fact values, deep nesting, huge numbers, any syntax error) goes to jansson, with the
 * same result (tests/fuzz/fuzz_mcp_peek.c checks the two agree). Values longer than the fields
 * are truncated and flagged (`truncated`); a body that is not JSON-RPC (not JSON, duplicate keys,
 * wrong shapes) yields `valid == false` and ERR_INVAL. Duplicate keys are refused
 * because a peer that reads the last "method" while we read the first could smuggle a call past a
 * policy.
 */
#ifndef OUTRIGGER_MCP_PEEK_H
#define OUTRIGGER_MCP_PEEK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MCP_PEEK_METHOD_MAX 64
#define MCP_PEEK_NAME_MAX 128
#define MCP_PEEK_ID_MAX 64
#define MCP_PEEK_BODY_MAX (1024 * 1024) /* larger bodies are not parsed */

typedef struct mcp_peek {
    bool valid;                       /* a JSON-RPC message or batch was read */
    bool batch;                       /* the body was an array */
    bool from_headers;                /* filled from Mcp-Method / Mcp-Name only */
    bool truncated;                   /* a field did not fit and was cut */
    uint32_t count;                   /* messages in the body (1 unless batch) */
    uint32_t requests;                /* messages with a method and an id */
    char method[MCP_PEEK_METHOD_MAX]; /* first message's method ("" for a response) */
    char name[MCP_PEEK_NAME_MAX];     /* params.name, or params.uri (resources/read); "" if none */
    char id[MCP_PEEK_ID_MAX];         /* first message's id as JSON text; "" for notifications */
} mcp_peek_t;

/** Clears @p out (not valid). */
void mcp_peek_init(mcp_peek_t *out);

/**
 * Reads [body, body+len). Returns 0 with @p out valid, or ERR_INVAL (not JSON-RPC; @p out not
 * valid) / ERR_TOO_LARGE (longer than MCP_PEEK_BODY_MAX).
 */
int mcp_peek_body(const char *body, size_t len, mcp_peek_t *out);

/**
 * Fills @p out from the Mcp-Method / Mcp-Name header values (either may be NULL). Returns 0, or
 * ERR_INVAL when there is no method.
 */
int mcp_peek_headers(const char *method, size_t method_len, const char *name, size_t name_len,
                     mcp_peek_t *out);

/**
 * True when header facts @p h (from mcp_peek_headers) agree with body facts @p b: same method,
 * and same name when the header names one. A request whose headers and body disagree must be
 * refused (400): routing and policy would otherwise judge a different call than the app runs.
 */
bool mcp_peek_agree(const mcp_peek_t *h, const mcp_peek_t *b);

/** True for methods that change nothing and may be retried (initialize, ping, the list methods,
 * ...). */
bool mcp_peek_idempotent(const mcp_peek_t *p);

#endif
