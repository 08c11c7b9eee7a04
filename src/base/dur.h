/*
 * dur — bounded parsing of Go-style duration strings ("5s", "800ms", "1h30m", "1.5h").
 *
 * Job: turn the durations that Dapr resources write in Go's time.ParseDuration syntax into
 * milliseconds, without strtol/sscanf and with a caller-chosen maximum.
 * Ownership: borrows its input; writes only to the out-parameter.
 * Threading: thread-safe (pure).
 * Errors: ERR_PARSE for anything Go would reject, and for negative durations (no caller wants
 * one); ERR_TOO_LARGE past the given maximum.
 */
#ifndef OUTRIGGER_BASE_DUR_H
#define OUTRIGGER_BASE_DUR_H

#include <stddef.h>
#include <stdint.h>

/**
 * Parses all of [p, p+n) as a Go duration: an optional '+', then one or more decimal numbers with
 * an optional fraction, each followed by a unit (ns, us, µs, ms, s, m, h); "0" alone is allowed.
 * The result is rounded down to whole milliseconds and must be ≤ @p max_ms. @p out_ms is written
 * only on success.
 */
int dur_parse_ms(const char *p, size_t n, uint64_t max_ms, uint64_t *out_ms)
    __attribute__((warn_unused_result));

#endif
