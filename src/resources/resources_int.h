/*
 * resources_int.h — declarations shared by the files of resources/ only.
 *
 * A res_yaml_t owns a chunked pool; every node, string and array of a parsed stream lives in it,
 * and so do the typed structs that loaders derive from the tree, so one free releases everything.
 * Not thread-safe while a stream is being built; immutable afterwards.
 */
#ifndef OUTRIGGER_RESOURCES_INT_H
#define OUTRIGGER_RESOURCES_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/buf.h"
#include "resources/resources.h"

struct res_node {
    res_node_kind_t kind;
    bool plain;               /* scalar written plain and untagged (may be null / bool / number) */
    unsigned line;            /* 1-based line of the node's first character */
    size_t count;             /* map entries or sequence items; 0 for a scalar */
    const char *str;          /* scalar text, NUL-terminated; NULL for collections */
    const char **keys;        /* map: count keys in document order; NULL otherwise */
    const res_node_t **items; /* map values / sequence items, count of them */
    const size_t *sorted;     /* map: entry indexes ordered by key (strcmp), for lookups */
};

/** Allocates @p n bytes (16-byte aligned) from @p y's pool; NULL when out of memory. */
void *res__alloc(res_yaml_t *y, size_t n) __attribute__((warn_unused_result));
/** Copies @p n bytes of @p s plus a NUL into @p y's pool; NULL when out of memory. */
char *res__strndup(res_yaml_t *y, const char *s, size_t n) __attribute__((warn_unused_result));
/** The name used in error details for @p y (shortened when long). */
const char *res__yaml_name(const res_yaml_t *y);
/** Shortens @p name for error details: long paths keep their last component (or last bytes). */
const char *res__display_name(const char *name);

/**
 * Appends [data, data+len) to @p out with $VAR / ${VAR} replaced the way Go's os.ExpandEnv does
 * it. @p out's max bounds the result (ERR_TOO_LARGE past it); ERR_NOMEM otherwise possible.
 */
int res__expand_env(const char *data, size_t len, buf_t *out) __attribute__((warn_unused_result));

/** Writes "<file>:<line>: " + the formatted text into @p d and returns @p code. */
int res__errf(err_detail_t *d, int code, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

#endif
