/*
 * buf — a growable byte buffer with a mandatory maximum.
 *
 * Job: hold bytes that arrive piecewise (headers, bodies that must be kept, rendered JSON) without
 * ever growing past a limit chosen by the caller.
 * Ownership: buf_t is caller storage; its bytes are owned by the buf and released by buf_free() or
 * by a failing append. A pointer from buf_ptr() dies at the next append.
 * Threading: not thread-safe.
 * Errors: appends return 0, ERR_TOO_LARGE (past max; the buffer is freed and reset) or ERR_NOMEM.
 */
#ifndef OUTRIGGER_BASE_BUF_H
#define OUTRIGGER_BASE_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct buf {
    char *ptr;  /* owned (or the caller's, see local); NULL until the first append; always
                   NUL-terminated after one */
    size_t len; /* bytes held, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* largest len allowed */
    bool local; /* ptr is the caller's memory from buf_init_local: never freed or reallocated */
} buf_t;

/** Prepares an empty buffer that may hold at most @p max bytes. Cannot fail. */
void buf_init(buf_t *b, size_t max);
/** Like buf_init, but the bytes start in the caller's @p mem (@p size > 0 bytes, e.g. an array on
 * the stack that outlives the buffer's use); they move to the heap only when they outgrow it. For
 * request-scoped temporaries that are usually short (paths, methods): no allocation at all.
 * buf_free releases only heap memory; buf_take always returns heap memory. */
void buf_init_local(buf_t *b, char *mem, size_t size, size_t max);
/** Releases the bytes and leaves an empty buffer with the same max. */
void buf_free(buf_t *b);
/** Empties the buffer but keeps its memory. */
void buf_reset(buf_t *b);
/** Appends @p n bytes. */
int buf__append_slow(buf_t *b, const void *p, size_t n) __attribute__((warn_unused_result));
/* Inline because message heads are built with many small appends: the common case (room left)
 * is a copy and two stores; growing and the limit check live in buf__append_slow. */
static inline __attribute__((warn_unused_result)) int buf_append(buf_t *b, const void *p, size_t n)
{
    if (b->ptr != NULL && n < b->cap - b->len) {
        __builtin_memcpy(b->ptr + b->len, p, n);
        b->len += n;
        b->ptr[b->len] = '\0';
        return 0;
    }
    return buf__append_slow(b, p, n);
}
/** Makes room for @p n more bytes (and the NUL) so that up to n bytes can be written at
 * ptr + len without another check; the writer then sets len and the NUL. Errors as appends. */
int buf_reserve(buf_t *b, size_t n) __attribute__((warn_unused_result));
/** Appends a NUL-terminated string. */
int buf_append_str(buf_t *b, const char *s) __attribute__((warn_unused_result));
/** Appends printf-formatted text. */
int buf_printf(buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), warn_unused_result));
/** Appends @p v in decimal (no printf on hot paths). */
int buf_append_u64(buf_t *b, uint64_t v) __attribute__((warn_unused_result));
/** Appends @p s as the inside of a JSON string literal (no surrounding quotes). */
int buf_append_json_str(buf_t *b, const char *s, size_t n) __attribute__((warn_unused_result));
/** Appends NUL-terminated @p s as a Prometheus label value (the text between the quotes of
 * name="value"): backslash, double quote and newline escaped, as the text format requires. */
int buf_append_prom_label(buf_t *b, const char *s) __attribute__((warn_unused_result));
/** The bytes (NUL-terminated), or "" when empty. */
const char *buf_ptr(const buf_t *b);
/** Gives the bytes to the caller (free with mem_free) and leaves the buffer empty; NULL if empty.
 */
char *buf_take(buf_t *b);

#endif
