#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "base/alloc.h"
#include "base/str.h"
#include "resources/resources_int.h"

#define POOL_CHUNK_BYTES (32 * 1024) /* default chunk; bigger requests get a chunk of their own */
#define POOL_ALIGN 16
#define DISPLAY_NAME_MAX 64 /* bytes of a file name kept in error details */
#define DEPTH_CEILING 65536 /* largest max_depth accepted: frames are allocated up front */

struct chunk {
    struct chunk *next; /* older chunk, owned */
    size_t used;        /* bytes handed out from data */
    size_t cap;         /* bytes in data */
    _Alignas(POOL_ALIGN) unsigned char data[];
};

struct res_yaml {
    struct chunk *chunks;    /* owned, newest first */
    char *name;              /* display name for errors, in the pool */
    const res_node_t **docs; /* document roots, in the pool */
    size_t doc_count;
};

static const res_limits_t default_limits = {RES_MAX_FILE_BYTES, RES_MAX_DEPTH, RES_MAX_NODES};

void *res__alloc(res_yaml_t *y, size_t n)
{
    struct chunk *c = y->chunks;
    size_t need = (n + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    void *p;

    if (need < n)
        return NULL;
    if (c == NULL || c->cap - c->used < need) {
        size_t cap = need > POOL_CHUNK_BYTES / 4 ? need : POOL_CHUNK_BYTES;
        if (cap > SIZE_MAX - sizeof(*c))
            return NULL;
        c = mem_try_alloc(sizeof(*c) + cap);
        if (c == NULL)
            return NULL;
        c->used = 0;
        c->cap = cap;
        /* A dedicated big chunk goes behind the current one so the current one keeps filling. */
        if (need > POOL_CHUNK_BYTES / 4 && y->chunks != NULL) {
            c->next = y->chunks->next;
            y->chunks->next = c;
        } else {
            c->next = y->chunks;
            y->chunks = c;
        }
    }
    p = c->data + c->used;
    c->used += need;
    return p;
}

char *res__strndup(res_yaml_t *y, const char *s, size_t n)
{
    char *p;

    if (n == SIZE_MAX)
        return NULL;
    p = res__alloc(y, n + 1);
    if (p == NULL)
        return NULL;
    if (n > 0)
        memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

const char *res__display_name(const char *name)
{
    size_t n;
    const char *slash;

    if (name == NULL)
        return "(input)";
    n = strlen(name);
    if (n <= DISPLAY_NAME_MAX)
        return name;
    slash = strrchr(name, '/');
    if (slash != NULL && strlen(slash + 1) <= DISPLAY_NAME_MAX && slash[1] != '\0')
        return slash + 1;
    return name + n - DISPLAY_NAME_MAX;
}

const char *res__yaml_name(const res_yaml_t *y)
{
    return y->name;
}

int res__errf(err_detail_t *d, int code, const char *file, unsigned line, const char *fmt, ...)
{
    va_list ap;
    int n;

    if (d == NULL)
        return code;
    n = snprintf(d->msg, sizeof(d->msg), "%s:%u: ", file, line);
    if (n < 0 || (size_t)n >= sizeof(d->msg))
        return code;
    va_start(ap, fmt);
    vsnprintf(d->msg + n, sizeof(d->msg) - (size_t)n, fmt, ap);
    va_end(ap);
    return code;
}

void res_yaml_free(res_yaml_t *y)
{
    struct chunk *c, *next;

    if (y == NULL)
        return;
    for (c = y->chunks; c != NULL; c = next) {
        next = c->next;
        mem_free(c);
    }
    mem_free(y);
}

size_t res_yaml_doc_count(const res_yaml_t *y)
{
    return y->doc_count;
}

const res_node_t *res_yaml_doc(const res_yaml_t *y, size_t i)
{
    return i < y->doc_count ? y->docs[i] : NULL;
}

/* ---- building the tree from libyaml events ------------------------------------------------ */

/* A child of an open collection, waiting on the shared entry stack until the collection ends. */
struct entry {
    const char *key;   /* map key (in the pool), NULL for sequence items */
    unsigned key_line; /* line of the key, for duplicate-key errors */
    res_node_t *node;  /* the value; NULL while a map key waits for its value */
};

/* An open map or sequence: its children are entries[start..] on the entry stack. */
struct frame {
    res_node_t *node;
    size_t start;
};

struct builder {
    res_yaml_t *y;           /* the stream being built; owned until handed to the caller */
    const res_limits_t *lim; /* borrowed */
    const char *name;        /* display name, in y's pool */
    err_detail_t *d;         /* borrowed; may be NULL */
    struct entry *ents;      /* owned scratch stack of children of open collections */
    size_t nents;            /* entries in use */
    size_t cap_ents;         /* entries allocated */
    struct frame *frames;    /* owned; lim->max_depth slots */
    size_t nframes;          /* open collections */
    res_node_t **docs;       /* owned scratch list of document roots */
    size_t ndocs;            /* roots in use */
    size_t cap_docs;         /* roots allocated */
    size_t nodes;            /* nodes created so far (keys included) */
};

/* Grows a scratch array to hold one more element; returns 0 or ERR_NOMEM. */
static int grow(void **arr, size_t *cap, size_t len, size_t elem)
{
    size_t ncap;
    void *p;

    if (len < *cap)
        return 0;
    ncap = *cap ? *cap * 2 : 16;
    if (ncap > SIZE_MAX / elem)
        return ERR_NOMEM;
    p = mem_try_realloc(*arr, ncap * elem);
    if (p == NULL)
        return ERR_NOMEM;
    *arr = p;
    *cap = ncap;
    return 0;
}

static int count_node(struct builder *b, unsigned line)
{
    if (b->nodes >= b->lim->max_nodes)
        return res__errf(b->d, ERR_TOO_LARGE, b->name, line, "more than %zu YAML nodes",
                         b->lim->max_nodes);
    b->nodes++;
    return 0;
}

static bool expects_key(const struct builder *b)
{
    const struct frame *f;

    if (b->nframes == 0)
        return false;
    f = &b->frames[b->nframes - 1];
    /* In a map, entries alternate key, value: a key is due when the last entry has its value. */
    return f->node->kind == RES_NODE_MAP &&
           (b->nents == f->start || b->ents[b->nents - 1].node != NULL);
}

/* Hands a finished node to its parent (or makes it a document root). */
static int attach(struct builder *b, res_node_t *n)
{
    int rc;

    if (b->nframes == 0) {
        rc = grow((void **)&b->docs, &b->cap_docs, b->ndocs, sizeof(*b->docs));
        if (rc < 0)
            return rc;
        b->docs[b->ndocs++] = n;
        return 0;
    }
    if (b->frames[b->nframes - 1].node->kind == RES_NODE_MAP) {
        b->ents[b->nents - 1].node = n;
        return 0;
    }
    rc = grow((void **)&b->ents, &b->cap_ents, b->nents, sizeof(*b->ents));
    if (rc < 0)
        return rc;
    b->ents[b->nents++] = (struct entry){NULL, 0, n};
    return 0;
}

static int on_scalar(struct builder *b, const yaml_event_t *ev)
{
    const char *text = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    unsigned line = (unsigned)ev->start_mark.line + 1;
    res_node_t *n;
    char *s;
    int rc;

    rc = count_node(b, line);
    if (rc < 0)
        return rc;
    /* "\0" escapes would silently cut every C string we hand out; refuse them. */
    if (memchr(text, '\0', len) != NULL)
        return res__errf(b->d, ERR_RES_YAML, b->name, line, "NUL byte in a scalar");
    s = res__strndup(b->y, text, len);
    if (s == NULL)
        return ERR_NOMEM;
    if (expects_key(b)) {
        rc = grow((void **)&b->ents, &b->cap_ents, b->nents, sizeof(*b->ents));
        if (rc < 0)
            return rc;
        b->ents[b->nents++] = (struct entry){s, line, NULL};
        return 0;
    }
    n = res__alloc(b->y, sizeof(*n));
    if (n == NULL)
        return ERR_NOMEM;
    *n = (res_node_t){.kind = RES_NODE_SCALAR, .line = line, .str = s};
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && ev->data.scalar.tag == NULL;
    return attach(b, n);
}

static int on_start(struct builder *b, const yaml_event_t *ev, res_node_kind_t kind)
{
    unsigned line = (unsigned)ev->start_mark.line + 1;
    res_node_t *n;
    int rc;

    if (expects_key(b))
        return res__errf(b->d, ERR_RES_YAML, b->name, line,
                         "mapping keys must be scalars, not a %s",
                         kind == RES_NODE_MAP ? "mapping" : "sequence");
    if (b->nframes >= b->lim->max_depth)
        return res__errf(b->d, ERR_TOO_LARGE, b->name, line, "nesting deeper than %u levels",
                         b->lim->max_depth);
    rc = count_node(b, line);
    if (rc < 0)
        return rc;
    n = res__alloc(b->y, sizeof(*n));
    if (n == NULL)
        return ERR_NOMEM;
    *n = (res_node_t){.kind = kind, .line = line};
    b->frames[b->nframes++] = (struct frame){n, b->nents};
    return 0;
}

struct sort_key {
    const char *key;
    size_t idx;
};

static int cmp_sort_key(const void *a, const void *b)
{
    const struct sort_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c != 0)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Builds the sorted index of a finished map and rejects duplicate keys. */
static int index_map(struct builder *b, res_node_t *n, const struct entry *ents)
{
    struct sort_key *tmp = NULL;
    size_t *sorted, i;
    int rc = 0;

    if (n->count == 0)
        goto out;
    sorted = res__alloc(b->y, n->count * sizeof(*sorted));
    tmp = mem_try_alloc(n->count * sizeof(*tmp));
    if (sorted == NULL || tmp == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    for (i = 0; i < n->count; i++)
        tmp[i] = (struct sort_key){ents[i].key, i};
    qsort(tmp, n->count, sizeof(*tmp), cmp_sort_key);
    for (i = 0; i < n->count; i++) {
        if (i > 0 && strcmp(tmp[i - 1].key, tmp[i].key) == 0) {
            rc = res__errf(b->d, ERR_RES_YAML, b->name, ents[tmp[i].idx].key_line,
                           "duplicate key \"%.64s\"", tmp[i].key);
            goto out;
        }
        sorted[i] = tmp[i].idx;
    }
    n->sorted = sorted;
out:
    mem_free(tmp);
    return rc;
}

static int on_end(struct builder *b)
{
    struct frame f = b->frames[--b->nframes];
    res_node_t *n = f.node;
    const struct entry *ents = b->ents != NULL ? b->ents + f.start : NULL;
    const res_node_t **items;
    size_t i;
    int rc;

    n->count = b->nents - f.start;
    if (n->count > 0) {
        items = res__alloc(b->y, n->count * sizeof(*items));
        if (items == NULL)
            return ERR_NOMEM;
        for (i = 0; i < n->count; i++)
            items[i] = ents[i].node;
        n->items = items;
    }
    if (n->kind == RES_NODE_MAP && n->count > 0) {
        const char **keys = res__alloc(b->y, n->count * sizeof(*keys));
        if (keys == NULL)
            return ERR_NOMEM;
        for (i = 0; i < n->count; i++)
            keys[i] = ents[i].key;
        n->keys = keys;
        rc = index_map(b, n, ents);
        if (rc < 0)
            return rc;
    }
    b->nents = f.start;
    return attach(b, n);
}

static unsigned line_at_offset(const char *data, size_t len, size_t off)
{
    unsigned line = 1;
    size_t i;

    for (i = 0; i < off && i < len; i++)
        line += data[i] == '\n';
    return line;
}

/* Turns libyaml's error state into our code and a "<file>:<line>: YAML: ..." detail. */
static int parser_error(struct builder *b, const yaml_parser_t *p, const char *data, size_t len)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";

    switch (p->error) {
    case YAML_MEMORY_ERROR:
        return ERR_NOMEM;
    case YAML_READER_ERROR:
        if (p->problem_value != -1)
            return res__errf(b->d, ERR_RES_YAML, b->name,
                             line_at_offset(data, len, p->problem_offset), "YAML: %s (byte 0x%02x)",
                             problem, (unsigned)p->problem_value & 0xffu);
        return res__errf(b->d, ERR_RES_YAML, b->name, line_at_offset(data, len, p->problem_offset),
                         "YAML: %s", problem);
    default:
        if (p->context != NULL)
            return res__errf(b->d, ERR_RES_YAML, b->name, (unsigned)p->problem_mark.line + 1,
                             "YAML: %s (%s started at line %u)", problem, p->context,
                             (unsigned)p->context_mark.line + 1);
        return res__errf(b->d, ERR_RES_YAML, b->name, (unsigned)p->problem_mark.line + 1,
                         "YAML: %s", problem);
    }
}

/* Feeds one event to the builder; sets *done at the end of the stream. */
static int on_event(struct builder *b, const yaml_event_t *ev, bool *done)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        return on_scalar(b, ev);
    case YAML_MAPPING_START_EVENT:
        return on_start(b, ev, RES_NODE_MAP);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(b, ev, RES_NODE_SEQ);
    case YAML_MAPPING_END_EVENT:
    case YAML_SEQUENCE_END_EVENT:
        return on_end(b);
    case YAML_ALIAS_EVENT:
        /* Aliases let a few bytes expand into a huge tree ("billion laughs"); no Dapr resource
         * needs them, so they are refused outright rather than expanded under a budget. */
        return res__errf(b->d, ERR_RES_YAML, b->name, (unsigned)ev->start_mark.line + 1,
                         "YAML aliases (*name) are not supported");
    case YAML_STREAM_END_EVENT:
        *done = true;
        return 0;
    default:
        return 0;
    }
}

/*
 * Parses the stream event by event into a tree in a fresh pool:
 * 1. check the size limit before libyaml sees a byte;
 * 2. keep the children of every open collection on one scratch stack, and copy them into the
 *    pool when the collection ends (so no per-collection growth in the pool);
 * 3. copy the document roots into the pool at the end.
 */
int res_yaml_parse(const res_limits_t *lim, const char *name, const char *data, size_t len,
                   res_yaml_t **out, err_detail_t *d)
{
    struct builder b = {0};
    yaml_parser_t parser;
    bool parser_ready = false, done = false;
    const char *shown = res__display_name(name);
    int rc = 0;

    if (lim == NULL)
        lim = &default_limits;
    if ((data == NULL && len > 0) || out == NULL || lim->max_depth == 0 ||
        lim->max_depth > DEPTH_CEILING)
        return err_set(d, ERR_INVAL, "res_yaml_parse: invalid arguments");
    if (len > lim->max_file_bytes)
        return err_set(d, ERR_TOO_LARGE, "%s: file is larger than %zu bytes", shown,
                       lim->max_file_bytes);
    b.lim = lim;
    b.d = d;
    b.y = mem_try_alloc(sizeof(*b.y));
    if (b.y == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    *b.y = (res_yaml_t){0};
    b.y->name = res__strndup(b.y, shown, strlen(shown));
    b.frames = mem_try_alloc((size_t)lim->max_depth * sizeof(*b.frames));
    if (b.y->name == NULL || b.frames == NULL) {
        rc = ERR_NOMEM;
        goto out;
    }
    b.name = b.y->name;
    if (!yaml_parser_initialize(&parser)) {
        rc = ERR_NOMEM;
        goto out;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)(data ? data : ""), len);
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parser_error(&b, &parser, data, len);
            goto out;
        }
        rc = on_event(&b, &ev, &done);
        yaml_event_delete(&ev);
        if (rc < 0)
            goto out;
    }
    if (b.ndocs > 0) {
        b.y->docs = res__alloc(b.y, b.ndocs * sizeof(*b.y->docs));
        if (b.y->docs == NULL) {
            rc = ERR_NOMEM;
            goto out;
        }
        memcpy(b.y->docs, b.docs, b.ndocs * sizeof(*b.y->docs));
        b.y->doc_count = b.ndocs;
    }
    *out = b.y;
    b.y = NULL;
out:
    if (rc == ERR_NOMEM)
        err_set(d, rc, "%s: out of memory while parsing YAML", shown);
    if (parser_ready)
        yaml_parser_delete(&parser);
    mem_free(b.docs);
    mem_free(b.frames);
    mem_free(b.ents);
    res_yaml_free(b.y);
    return rc;
}

/* ---- reading the tree ---------------------------------------------------------------------- */

res_node_kind_t res_node_kind(const res_node_t *n)
{
    return n->kind;
}

unsigned res_node_line(const res_node_t *n)
{
    return n->line;
}

const char *res_node_scalar(const res_node_t *n)
{
    return n->kind == RES_NODE_SCALAR ? n->str : NULL;
}

bool res_node_is_null(const res_node_t *n)
{
    const char *s = n->str;

    if (n->kind != RES_NODE_SCALAR || !n->plain)
        return false;
    return s[0] == '\0' || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 ||
           strcmp(s, "Null") == 0 || strcmp(s, "NULL") == 0;
}

size_t res_node_count(const res_node_t *n)
{
    return n->count;
}

const char *res_node_key_at(const res_node_t *n, size_t i)
{
    return n->kind == RES_NODE_MAP && i < n->count ? n->keys[i] : NULL;
}

const res_node_t *res_node_at(const res_node_t *n, size_t i)
{
    return n->kind != RES_NODE_SCALAR && i < n->count ? n->items[i] : NULL;
}

/* Compares map key @p key with the byte range [s, s+n) in strcmp order. */
static int cmp_key_range(const char *key, const char *s, size_t n)
{
    size_t klen = strlen(key);
    int c = memcmp(key, s, klen < n ? klen : n);
    if (c != 0)
        return c;
    return klen < n ? -1 : klen > n;
}

static const res_node_t *child_range(const res_node_t *n, const char *s, size_t len)
{
    size_t lo = 0, hi;

    if (n == NULL || n->kind != RES_NODE_MAP)
        return NULL;
    hi = n->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2, idx = n->sorted[mid];
        int c = cmp_key_range(n->keys[idx], s, len);
        if (c == 0)
            return n->items[idx];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const res_node_t *res_node_child(const res_node_t *n, const char *key)
{
    if (key == NULL)
        return NULL;
    return child_range(n, key, strlen(key));
}

const res_node_t *res_node_get(const res_node_t *n, const char *path)
{
    const char *p = path;

    if (n == NULL || path == NULL)
        return NULL;
    while (*p != '\0' && n != NULL) {
        const char *dot = strchr(p, '.');
        size_t len = dot ? (size_t)(dot - p) : strlen(p);
        if (n->kind == RES_NODE_SEQ) {
            uint64_t idx;
            if (str_u64(p, len, SIZE_MAX, &idx) < 0 || idx >= n->count)
                return NULL;
            n = n->items[idx];
        } else {
            n = child_range(n, p, len);
        }
        p += len;
        if (*p == '.')
            p++;
    }
    return n;
}

const char *res_node_get_str(const res_node_t *n, const char *path)
{
    const res_node_t *v = res_node_get(n, path);

    if (v == NULL || v->kind != RES_NODE_SCALAR || res_node_is_null(v))
        return NULL;
    return v->str;
}
