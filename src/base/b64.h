/*
 * b64 — base64url without padding (RFC 4648 §5), the encoding of JOSE (JWS, JWK).
 *
 * Contract: pure functions, no allocation beyond @p b's growth, thread-safe. Decoding is strict:
 * no padding, no whitespace, no characters outside the URL-safe alphabet, zero leftover bits (so
 * every byte string has exactly one accepted encoding).
 */
#ifndef OUTRIGGER_BASE_B64_H
#define OUTRIGGER_BASE_B64_H

#include <stddef.h>

#include "base/buf.h"

/** Appends the base64url encoding of [p, p+n) to @p b. 0 or ERR_TOO_LARGE. */
int b64url_put(buf_t *b, const void *p, size_t n) __attribute__((warn_unused_result));

/** Decodes [p, p+n) into @p out (capacity @p cap). 0, ERR_PARSE or ERR_TOO_LARGE. */
int b64url_decode(const char *p, size_t n, unsigned char *out, size_t cap, size_t *out_len)
    __attribute__((warn_unused_result));

#endif
