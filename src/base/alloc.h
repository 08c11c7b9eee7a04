/*
 * alloc — the only place Outrigger allocates heap memory.
 *
 * Job: wrap malloc/realloc/free so that live bytes are counted (for metrics and leak checks) and a
 * test build can make the Nth allocation fail.
 * Ownership: whatever mem_* returns is owned by the caller and released with mem_free().
 * Threading: thread-safe. Each thread keeps the small blocks it frees (up to 24 per 32-byte size
 * class up to 1 KiB, and 8 blocks up to 16 KiB by exact size) for its next allocations, and its own
 * byte count; both are folded back when the thread ends. Memory may be freed by another thread than
 * the one that allocated it. Under AddressSanitizer cached blocks stay poisoned.
 * Errors: mem_alloc/mem_calloc/mem_realloc/mem_strdup abort the process with a message when memory
 * runs out (use them for small fixed-size objects). mem_try_* return NULL instead (use them for
 * anything sized by a peer).
 */
#ifndef OUTRIGGER_BASE_ALLOC_H
#define OUTRIGGER_BASE_ALLOC_H

#include <stddef.h>

/** Allocates @p n bytes or aborts. Never returns NULL. */
void *mem_alloc(size_t n) __attribute__((malloc, returns_nonnull));
/** Allocates @p n zeroed bytes or aborts. */
void *mem_calloc(size_t n) __attribute__((malloc, returns_nonnull));
/** Resizes @p p (may be NULL) to @p n bytes or aborts. */
void *mem_realloc(void *p, size_t n) __attribute__((returns_nonnull));
/** Like mem_alloc but returns NULL on failure. */
void *mem_try_alloc(size_t n) __attribute__((malloc, warn_unused_result));
/** Like mem_realloc but returns NULL on failure (then @p p is untouched). */
void *mem_try_realloc(void *p, size_t n) __attribute__((warn_unused_result));
/** Releases memory from any mem_* call. NULL is a no-op. */
void mem_free(void *p);
/** Copies a NUL-terminated string or aborts. */
char *mem_strdup(const char *s) __attribute__((malloc, returns_nonnull));
/** Copies @p n bytes of @p s and appends a NUL, or aborts. */
char *mem_strndup(const char *s, size_t n) __attribute__((malloc, returns_nonnull));
/** Bytes currently allocated through this module. */
size_t mem_used(void);
/** Test hook: make the @p nth next try-allocation fail (0 disables). */
void mem_fail_after(unsigned long nth);

#endif
