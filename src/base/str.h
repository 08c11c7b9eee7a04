/*
 * str — bounded parsing and comparison of byte ranges.
 *
 * Job: the number parsers, case-insensitive comparisons and percent-decoding every other parser
 * uses, so that no code calls atoi/strtol/sscanf or keeps its own hex table.
 * Ownership: borrows its inputs; writes only to out-parameters (str_unescape appends to the
 * caller's buf_t).
 * Threading: thread-safe (pure).
 * Errors: ERR_PARSE for a malformed number or escape, ERR_TOO_LARGE past the given maximum,
 * ERR_NOMEM.
 */
#ifndef OUTRIGGER_BASE_STR_H
#define OUTRIGGER_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/** Parses all of [p, p+n) as a decimal number ≤ @p max into @p out (written only on success). */
int str_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
    __attribute__((warn_unused_result));
/** Parses a NUL-terminated TCP port (1..65535) into @p out. */
int str_port(const char *s, int *out) __attribute__((warn_unused_result));
/** True when [a, a+n) equals the NUL-terminated @p b, ignoring ASCII case. */
bool str_ieq(const char *a, size_t n, const char *b);
/** True when [a, a+n) equals the NUL-terminated @p b exactly. Inline so that the length of a
 * literal @p b is known at compile time (header lookups call this on every request). */
static inline bool str_eq(const char *a, size_t n, const char *b)
{
    return __builtin_strlen(b) == n && __builtin_memcmp(a, b, n) == 0;
}
/** Copies NUL-terminated @p src into @p dst of @p size bytes (truncating, always terminated) and
 * returns the bytes copied. No printf: for request paths. */
size_t str_copy(char *dst, size_t size, const char *src);
/** Writes "<host>:<port>" into @p dst (truncating, always terminated); returns its length. */
size_t str_host_port(char *dst, size_t size, const char *host, int port);
/** Trims ASCII spaces and tabs from both ends of [*p, *p+*n). */
void str_trim(const char **p, size_t *n);

/** The value of hex digit @p c (0-9, a-f, A-F), or -1. */
static inline int str_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Flags of str_unescape and str_unescape_byte. */
#define STR_UNESCAPE_PLUS 1u   /* "+" is a space (query strings, form bodies) */
#define STR_UNESCAPE_STRICT 2u /* "%" without two hex digits is ERR_PARSE (else kept as is) */

/** Decodes the byte at p[*i] of [p, p+n): "%XX" is one byte, "+" a space with
 * STR_UNESCAPE_PLUS, anything else itself; advances *i past what it read. Returns the byte
 * (0..255), or ERR_PARSE for a bad escape with STR_UNESCAPE_STRICT (*i unchanged). */
int str_unescape_byte(const char *p, size_t n, size_t *i, unsigned flags);
/** Appends the percent-decoding of [p, p+n) to @p out (see str_unescape_byte for @p flags).
 * Returns 0, ERR_PARSE (strict, bad escape), ERR_TOO_LARGE or ERR_NOMEM. */
int str_unescape(const char *p, size_t n, unsigned flags, buf_t *out)
    __attribute__((warn_unused_result));

#endif
