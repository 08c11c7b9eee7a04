/*
 * str — bounded parsing and comparison of byte ranges.
 *
 * Job: the number parsers and case-insensitive comparisons every other parser uses, so that no
 * code calls atoi/strtol/sscanf.
 * Ownership: borrows its inputs; writes only to out-parameters.
 * Threading: thread-safe (pure).
 * Errors: ERR_PARSE for a malformed number, ERR_TOO_LARGE past the given maximum.
 */
#ifndef OUTRIGGER_BASE_STR_H
#define OUTRIGGER_BASE_STR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

#endif
