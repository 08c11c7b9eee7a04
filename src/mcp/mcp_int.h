/*
 * mcp_int.h — declarations shared by the files of mcp/ (and its tests); no other module includes
 * this header.
 */
#ifndef OUTRIGGER_MCP_INT_H
#define OUTRIGGER_MCP_INT_H

#include "mcp/peek.h"

/**
 * mcp_peek_body() through the reference reading only (jansson builds the whole tree). Same
 * contract and results; mcp_peek_body() answers from a scanner that allocates nothing and falls
 * back on this one for whatever the scanner does not cover. Exposed for the differential fuzz
 * target.
 */
int mcp__peek_body_slow(const char *body, size_t len, mcp_peek_t *out);

#endif
