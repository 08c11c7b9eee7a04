/*
 * h1 — a strict HTTP/1.1 message-head parser and chunked-body decoder (RFC 9112), internal to the
 * net module.
 *
 * Job: turn the bytes of a whole request or response head into spans plus the framing facts
 * (method, target, version, status, Content-Length, chunked, keep-alive, Expect, Upgrade) in one
 * pass, refusing anything a proxy must not pass on (obs-fold, bare CR, control bytes, whitespace
 * before ':', conflicting framing); and decode a chunked body into data spans.
 *
 * Ownership: nothing is allocated. Every span handed out (target, field names and values, chunk
 * data) points into the caller's input and lives as long as it. Field names are not lower-cased:
 * the caller does that when it copies the head (net__head_adopt).
 *
 * Threading: pure functions over caller state; any thread.
 *
 * Errors: the head parsers return the head's length (> 0) when [buf, buf+len) holds a complete
 * head, 0 when more bytes are needed (the caller keeps the bytes and calls again with more), or a
 * negative HTTP status to answer (-400, -414, -431, -501, -505) with msg->reason set to a short
 * fixed string (never input bytes). The chunked decoder returns -1 with its reason set.
 */
#ifndef OUTRIGGER_NET_H1_H
#define OUTRIGGER_NET_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net.h"

/* How a message's body is delimited (RFC 9112 §6.3). */
enum h1_body {
    H1_BODY_NONE,    /* no body */
    H1_BODY_LENGTH,  /* content_length bytes (> 0) */
    H1_BODY_CHUNKED, /* chunked transfer coding */
    H1_BODY_CLOSE,   /* responses only: until the connection closes */
};

/* What bounds one head. */
typedef struct h1_limits {
    size_t max_head_bytes; /* the whole head, from the first byte to the empty line; beyond → 431 */
    size_t max_url_bytes; /* the request target; beyond → 414 */
} h1_limits_t;

/* A parsed head. Spans point into the parsed buffer. */
typedef struct h1_msg {
    int method;             /* enum http_method (requests) */
    int status;             /* status code (responses) */
    int http_minor;         /* 0 or 1 (a later 1.x minor reads as 1) */
    const char *url;        /* request target (requests) */
    size_t url_len;         /* its length */
    size_t field_count;     /* fields written to the caller's array */
    int64_t content_length; /* -1 when absent (or ignored because of Transfer-Encoding) */
    enum h1_body body;      /* framing of the body */
    bool keep_alive;        /* the connection may carry another message after this one */
    bool has_connection;    /* a Connection field is present */
    bool upgrade;           /* Upgrade present and Connection names "upgrade" */
    bool expect_continue;   /* Expect: 100-continue (requests) */
    const char *reason;     /* why a head was refused; a fixed string */
} h1_msg_t;

/**
 * Parses a request head from [buf, buf+len). @p fields (room for @p max_fields) receives the
 * field spans, values trimmed; more than @p max_fields fields → 431. Leading empty lines are
 * skipped and counted in the returned length. Returns the head length, 0 (incomplete), or a
 * negative status (see the file comment). *@p msg is written in every case; on 0 or error its
 * contents other than reason are unspecified.
 */
int h1_parse_request(const char *buf, size_t len, const h1_limits_t *limits, h1_msg_t *msg,
                     net_header_t *fields, size_t max_fields);

/**
 * Parses a response head; like h1_parse_request. @p head_request says the response answers a
 * HEAD request (no body whatever the fields say). Errors are -502 (malformed), -431 (limits).
 * A 1xx is parsed like any head (body NONE): the caller skips it and parses the next.
 */
int h1_parse_response(const char *buf, size_t len, const h1_limits_t *limits, bool head_request,
                      h1_msg_t *msg, net_header_t *fields, size_t max_fields);

/* Below this many bytes an incomplete head is parsed again on every read. */
#define H1_RESCAN_BYTES 4096

/**
 * Whether an incomplete head, last parsed when it had *@p from bytes, is worth parsing again now
 * that it has @p len: when it is still short (H1_RESCAN_BYTES; errors are then answered as soon
 * as their bytes arrive), or when a line ended in the new bytes (any complete head, and most
 * errors, end a line). *@p from becomes @p len. A head arriving in many small reads so costs
 * O(lines x bytes), bounded by the field count and head limits, instead of O(bytes^2).
 */
bool h1_worth_parsing(const char *buf, size_t len, size_t *from);

/* Chunked-body decoder state (caller storage; no allocation). */
typedef struct h1_chunked {
    uint64_t left;      /* private: data bytes left in the current chunk */
    size_t line_bytes;  /* private: bytes of the current size line or trailer section */
    int state;          /* private */
    bool saw_digit;     /* private */
    bool in_ext;        /* private */
    const char *reason; /* why decoding failed */
} h1_chunked_t;

/** Prepares @p d for a new body. */
void h1_chunked_init(h1_chunked_t *d);

/**
 * Decodes from [p, p+n). Returns the bytes consumed (>= 0) or -1 on malformed framing
 * (d->reason set). *@p data / *@p data_len receive at most one span of body data inside the
 * consumed bytes (data_len 0 when none). The call stops after a data span, at the end of the
 * body, or when the input is used up; framing bytes are remembered in @p d, so the caller never
 * keeps bytes for it. Bytes after the end (h1_chunked_done) belong to the next message.
 * Chunk extensions and trailer fields are checked for bare CR, bounded and discarded.
 */
long h1_chunked_decode(h1_chunked_t *d, const char *p, size_t n, const char **data,
                       size_t *data_len);

/** True once the last chunk and the trailer section have been read. */
bool h1_chunked_done(const h1_chunked_t *d);

#endif
