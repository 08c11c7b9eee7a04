/*
 * resources — Dapr resource YAML turned into immutable, validated structs.
 *
 * Job: read resource files (today: the Configuration) into a generic YAML tree with line numbers,
 * check them, and expose both the typed fields and the tree, so that later features read their
 * own sections (accessControl, mtls, tracing, pipelines) without parsing the file again.
 * Ownership: every loader allocates its result; the caller frees it with the matching *_free. All
 * nodes and strings reached through a result belong to it and live until that free. Results are
 * never modified after loading. Every input argument is borrowed for the call only.
 * Threading: loaders are reentrant and may run on any thread. A loaded result is immutable, so
 * any number of threads may read it at once.
 * Errors: ERR_INVAL (bad arguments), ERR_IO (file unreadable), ERR_TOO_LARGE (file size, nesting
 * depth or node count past res_limits_t), ERR_RES_YAML (malformed YAML, or YAML features that
 * are refused: aliases, non-scalar keys, duplicate keys, NUL bytes), ERR_RES_INVALID (valid YAML
 * that is not a valid resource), ERR_NOMEM. The detail reads "<file>:<line>: <field>: <problem>".
 */
#ifndef OUTRIGGER_RESOURCES_H
#define OUTRIGGER_RESOURCES_H

#include <stdbool.h>
#include <stddef.h>

#include "base/err.h"

/* Defaults of res_limits_t. */
#define RES_MAX_FILE_BYTES (1024 * 1024) /* bytes of one file, after ${VAR} expansion */
#define RES_MAX_DEPTH 64                 /* nested mappings and sequences */
#define RES_MAX_NODES 100000             /* scalars (keys included), mappings and sequences */

/** Bounds applied while parsing. A NULL limits pointer means the RES_MAX_* defaults. */
typedef struct res_limits {
    size_t max_file_bytes; /* larger input fails with ERR_TOO_LARGE before parsing */
    unsigned max_depth;    /* deeper nesting fails with ERR_TOO_LARGE; 1..65536 */
    size_t max_nodes;      /* more nodes fail with ERR_TOO_LARGE */
} res_limits_t;

/* ---- Generic YAML tree ---------------------------------------------------------------------- */

typedef enum res_node_kind {
    RES_NODE_SCALAR = 1, /* a string; numbers and booleans stay as their text */
    RES_NODE_MAP,        /* string keys, unique, in document order */
    RES_NODE_SEQ,        /* items in document order */
} res_node_kind_t;

typedef struct res_node res_node_t; /* opaque, immutable */
typedef struct res_yaml res_yaml_t; /* opaque: one parsed file, possibly several documents */

/**
 * Parses a YAML stream of @p len bytes (need not be NUL-terminated). @p name is what error details
 * call the input (a file name). Aliases are refused (no alias bombs); anchors and tags are read
 * and ignored. On success *@p out owns the tree; free it with res_yaml_free().
 */
int res_yaml_parse(const res_limits_t *lim, const char *name, const char *data, size_t len,
                   res_yaml_t **out, err_detail_t *d) __attribute__((warn_unused_result));
/** Releases a parsed stream and every node in it. NULL is a no-op. */
void res_yaml_free(res_yaml_t *y);
/** Number of documents in the stream (0 for an empty file). */
size_t res_yaml_doc_count(const res_yaml_t *y);
/** Root node of document @p i, or NULL when out of range. */
const res_node_t *res_yaml_doc(const res_yaml_t *y, size_t i);

/** Kind of @p n. */
res_node_kind_t res_node_kind(const res_node_t *n);
/** "a mapping", "a sequence", "null" or "a string": for error messages. */
const char *res_node_kind_name(const res_node_t *n);
/** 1-based line where @p n starts in its file. */
unsigned res_node_line(const res_node_t *n);
/** Text of a scalar (NUL-terminated, no NUL inside), or NULL for a map or sequence. */
const char *res_node_scalar(const res_node_t *n);
/** True for YAML null: a plain, untagged scalar that is empty, "~", "null", "Null" or "NULL". */
bool res_node_is_null(const res_node_t *n);
/** Entries of a map or items of a sequence; 0 for a scalar. */
size_t res_node_count(const res_node_t *n);
/** Key of entry @p i of a map (document order), or NULL when not a map or out of range. */
const char *res_node_key_at(const res_node_t *n, size_t i);
/** Value of entry @p i of a map or item @p i of a sequence, or NULL when out of range. */
const res_node_t *res_node_at(const res_node_t *n, size_t i);
/** Value under exactly @p key in map @p n (O(log n)), or NULL when absent or @p n is no map. */
const res_node_t *res_node_child(const res_node_t *n, const char *key);
/**
 * Follows a dotted @p path ("spec.accessControl.policies.0") from @p n: each segment is a map key,
 * or a decimal index when the node there is a sequence. "" returns @p n. NULL when any step is
 * missing, so keys that contain '.' need res_node_child().
 */
const res_node_t *res_node_get(const res_node_t *n, const char *path);
/** res_node_get() narrowed to a non-null scalar: its text, or NULL. */
const char *res_node_get_str(const res_node_t *n, const char *path);

/* ---- Resource files of a directory ---------------------------------------------------------- */

/** Paths collected by res_dir_files(). The strings and the array are owned; res_files_free(). */
typedef struct res_files {
    char **paths; /* "<dir>/<name>" */
    size_t n;     /* paths held */
    size_t cap;   /* private */
} res_files_t;

/**
 * Appends the resource files of @p dir to @p f: the regular files named *.yaml or *.yml (names
 * starting with "." are skipped), as "<dir>/<name>", sorted by name within the directory. Blocking
 * (readdir, stat). ERR_NOT_FOUND when @p dir does not exist (nothing added), ERR_IO when it cannot
 * be read, ERR_TOO_LARGE once @p f would hold more than @p max paths (the ones listed stay).
 */
int res_dir_files(const char *dir, size_t max, res_files_t *f, err_detail_t *d)
    __attribute__((warn_unused_result));
/** Frees what @p f holds and leaves it empty. */
void res_files_free(res_files_t *f);

/* ---- Configuration (apiVersion dapr.io/v1alpha1, kind Configuration) ------------------------ */

/** One key/value pair of a flattened string map. */
typedef struct res_kv {
    const char *key;   /* owned by the result */
    const char *value; /* owned by the result */
} res_kv_t;

/** spec.nameResolution. Every field is read-only. */
typedef struct res_name_resolution {
    const char *component;         /* "sqlite", "dns", "kubernetes", ...; NULL when unset */
    const char *version;           /* NULL when unset (Dapr: "v1") */
    const res_kv_t *config;        /* the non-null scalar entries of `configuration`, in order */
    size_t config_count;           /* entries in config */
    const res_node_t *config_node; /* `configuration` as a tree (nested values too); may be NULL */
} res_name_resolution_t;

/** A loaded Configuration. Every field is read-only. */
typedef struct res_config {
    const char *file;                      /* name given to the loader */
    const char *name;                      /* metadata.name; "" when unset */
    res_name_resolution_t name_resolution; /* spec.nameResolution; all NULL/0 when absent */
    const res_node_t *root;                /* the whole document: res_node_get(root, "spec.mtls") */
    const res_node_t *spec;                /* root's spec map, or NULL when absent */
    res_yaml_t *yaml_;                     /* private: owns every node and string above */
} res_config_t;

/** Flag for res_config_parse: expand $VAR and ${VAR} from the environment first, like Dapr. */
#define RES_EXPAND_ENV 1u

/**
 * Reads and parses the Configuration file at @p path. As Dapr does in standalone mode, $VAR and
 * ${VAR} are replaced by environment values (unset ones by "") before parsing. @p lim may be NULL.
 * On success *@p out is the result; free it with res_config_free().
 */
int res_config_load(const res_limits_t *lim, const char *path, res_config_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/**
 * Parses a Configuration from memory: @p len bytes at @p data; @p name labels errors; @p flags is
 * 0 or RES_EXPAND_ENV. The stream must hold exactly one document, a map with apiVersion
 * "dapr.io/v1alpha1" and kind "Configuration". Unknown fields are kept in the tree, not rejected.
 */
int res_config_parse(const res_limits_t *lim, const char *name, const char *data, size_t len,
                     unsigned flags, res_config_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Releases a Configuration. NULL is a no-op. */
void res_config_free(res_config_t *c);

/**
 * Value of @p key among @p n pairs, comparing keys ignoring ASCII case (Dapr matches metadata keys
 * that way), or NULL when absent.
 */
const char *res_kv_get(const res_kv_t *kv, size_t n, const char *key);

#endif
