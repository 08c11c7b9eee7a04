/*
 * Snapshots, the current-snapshot slot and the file watcher behind hot reload. See watch.h for
 * the contract and for why the slot is safe without a lock on the reader side.
 */
#include "resources/watch.h"

#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/fs.h"
#include "base/log.h"

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

struct res_snapshot {
    atomic_uint refs;       /* references; the last unref frees */
    res_config_t *config;   /* owned */
    void *data;             /* owned through dispose */
    res_dispose_fn dispose; /* may be NULL */
    uint64_t hash;          /* FNV-1a of the file bytes */
};

static const res_limits_t default_limits = {RES_MAX_FILE_BYTES, RES_MAX_DEPTH, RES_MAX_NODES};

/* ---- snapshots ------------------------------------------------------------------------------ */

static uint64_t bytes_hash(const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return h;
}

/* Parses @p len bytes read from @p path and builds a snapshot with hash @p hash. */
static int snapshot_build(const res_limits_t *lim, const char *path, const res_builder_t *b,
                          const char *data, size_t len, uint64_t hash, res_snapshot_t **out,
                          err_detail_t *d)
{
    res_config_t *cfg = NULL;
    res_snapshot_t *s;
    void *derived = NULL;
    int rc;

    rc = res_config_parse(lim, path, data, len, RES_EXPAND_ENV, &cfg, d);
    if (rc < 0)
        return rc;
    if (b != NULL && b->build != NULL) {
        rc = b->build(cfg, b->ctx, &derived, d);
        if (rc < 0) {
            res_config_free(cfg);
            return rc;
        }
    }
    s = mem_alloc(sizeof(*s));
    atomic_init(&s->refs, 1);
    s->config = cfg;
    s->data = derived;
    s->dispose = b ? b->dispose : NULL;
    s->hash = hash;
    *out = s;
    return 0;
}

int res_snapshot_load(const res_limits_t *lim, const char *path, const res_builder_t *b,
                      res_snapshot_t **out, err_detail_t *d)
{
    buf_t bytes;
    int rc;

    if (lim == NULL)
        lim = &default_limits;
    if (path == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "res_snapshot_load: invalid arguments");
    buf_init(&bytes, lim->max_file_bytes);
    rc = fs_read_file(path, NULL, &bytes, d);
    if (rc == 0)
        rc = snapshot_build(lim, path, b, buf_ptr(&bytes), bytes.len,
                            bytes_hash(buf_ptr(&bytes), bytes.len), out, d);
    buf_free(&bytes);
    return rc;
}

res_snapshot_t *res_snapshot_wrap(void *data, res_dispose_fn dispose, uint64_t hash)
{
    res_snapshot_t *s = mem_calloc(sizeof(*s));

    atomic_init(&s->refs, 1);
    s->data = data;
    s->dispose = dispose;
    s->hash = hash;
    return s;
}

res_snapshot_t *res_snapshot_ref(res_snapshot_t *s)
{
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    return s;
}

void res_snapshot_unref(res_snapshot_t *s)
{
    if (s == NULL || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (s->dispose != NULL)
        s->dispose(s->data);
    res_config_free(s->config);
    mem_free(s);
}

const res_config_t *res_snapshot_config(const res_snapshot_t *s)
{
    return s->config;
}

void *res_snapshot_data(const res_snapshot_t *s)
{
    return s->data;
}

uint64_t res_snapshot_hash(const res_snapshot_t *s)
{
    return s->hash;
}

/* ---- the slot ------------------------------------------------------------------------------- */

void res_slot_init(res_slot_t *slot, res_snapshot_t *initial)
{
    atomic_init(&slot->cur_, initial);
    atomic_init(&slot->phase_, 0);
    atomic_init(&slot->readers_[0], 0);
    atomic_init(&slot->readers_[1], 0);
    if (uv_mutex_init(&slot->publish_) != 0) {
        log_msg(LOG_FATAL, "resources", "cannot initialise a mutex");
        abort();
    }
}

res_snapshot_t *res_slot_acquire(res_slot_t *slot)
{
    res_snapshot_t *s;
    unsigned ph;

    /*
     * Announce on the counter of the current phase, then confirm the phase did not flip in
     * between; otherwise a publisher may already have stopped watching that counter.
     */
    for (;;) {
        ph = atomic_load(&slot->phase_) & 1u;
        atomic_fetch_add(&slot->readers_[ph], 1);
        if ((atomic_load(&slot->phase_) & 1u) == ph)
            break;
        atomic_fetch_sub(&slot->readers_[ph], 1);
    }
    s = atomic_load(&slot->cur_);
    if (s != NULL)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
    atomic_fetch_sub(&slot->readers_[ph], 1);
    return s;
}

void res_slot_publish(res_slot_t *slot, res_snapshot_t *s)
{
    res_snapshot_t *old;
    unsigned ph;

    uv_mutex_lock(&slot->publish_);
    old = atomic_exchange(&slot->cur_, s);
    ph = atomic_load(&slot->phase_) & 1u;
    atomic_store(&slot->phase_, ph ^ 1u);
    /* Every reader still announced on the old counter may hold `old` without a reference. */
    while (atomic_load(&slot->readers_[ph]) != 0)
        sched_yield();
    uv_mutex_unlock(&slot->publish_);
    res_snapshot_unref(old);
}

void res_slot_destroy(res_slot_t *slot)
{
    res_snapshot_unref(atomic_exchange(&slot->cur_, NULL));
    uv_mutex_destroy(&slot->publish_);
}

/* ---- the watcher ---------------------------------------------------------------------------- */

struct res_watch {
    uv_loop_t *loop;        /* borrowed */
    uv_fs_event_t ev;       /* inotify on the directory */
    uv_fs_poll_t poll;      /* stat() fallback on the file */
    uv_timer_t timer;       /* debounce */
    uv_work_t work;         /* the load in flight */
    char *path;             /* owned copy */
    char *dir;              /* owned: directory of path */
    const char *base;       /* points into path: the file name */
    res_limits_t lim;       /* parse limits */
    res_builder_t builder;  /* copied */
    res_watch_cb on_change; /* the callback */
    void *ctx;              /* its context */
    unsigned debounce_ms;   /* quiet time */
    int handles;            /* handles not yet closed */
    bool busy;              /* work queued or running; fields below marked (w) are its own */
    bool dirty;             /* a change arrived while busy */
    bool closing;           /* res_watch_close was called */
    bool have_applied;      /* applied_hash is set */
    uint64_t applied_hash;  /* bytes behind the last snapshot handed out (or given) */
    bool have_failed;       /* failed_* describe the last failure since the last success */
    bool failed_parse;      /* that failure was about the bytes (not reading them) */
    uint64_t failed_hash;   /* its bytes */
    char failed_msg[256];   /* its detail, to log each distinct failure once */
    int rc;                 /* (w) result code */
    bool skipped;           /* (w) the bytes were already known */
    uint64_t hash;          /* (w) hash of the bytes read */
    err_detail_t detail;    /* (w) failure detail */
    res_snapshot_t *result; /* (w) new snapshot, owned until handed out */
};

static void maybe_free(res_watch_t *w)
{
    if (!w->closing || w->handles > 0 || w->busy)
        return;
    mem_free(w->path);
    mem_free(w->dir);
    mem_free(w);
}

static void on_close(uv_handle_t *h)
{
    res_watch_t *w = h->data;

    w->handles--;
    maybe_free(w);
}

/* Thread pool: read, skip known bytes, else parse and build. Touches only (w) fields. */
static void on_work(uv_work_t *req)
{
    res_watch_t *w = container_of(req, res_watch_t, work);
    buf_t bytes;

    w->result = NULL;
    w->skipped = false;
    w->hash = 0;
    w->detail.msg[0] = '\0';
    buf_init(&bytes, w->lim.max_file_bytes);
    w->rc = fs_read_file(w->path, NULL, &bytes, &w->detail);
    if (w->rc == 0) {
        w->hash = bytes_hash(buf_ptr(&bytes), bytes.len);
        if ((w->have_applied && w->hash == w->applied_hash) ||
            (w->have_failed && w->failed_parse && w->hash == w->failed_hash))
            w->skipped = true;
        else
            w->rc = snapshot_build(&w->lim, w->path, &w->builder, buf_ptr(&bytes), bytes.len,
                                   w->hash, &w->result, &w->detail);
    }
    buf_free(&bytes);
}

static void queue_load(res_watch_t *w);

/*
 * Loop thread, after a load: hand out a new snapshot, or log a new failure once, then start
 * the next load if changes arrived meanwhile. The callback may close the watcher.
 */
static void after_work(uv_work_t *req, int status)
{
    res_watch_t *w = container_of(req, res_watch_t, work);
    res_snapshot_t *s = w->result;

    w->busy = false;
    w->result = NULL;
    if (status < 0 || w->closing) {
        res_snapshot_unref(s);
        maybe_free(w);
        return;
    }
    if (w->rc == 0 && w->skipped && w->have_applied && w->hash == w->applied_hash) {
        /* The file is back to what is in force: a later broken edit deserves a new log line. */
        w->have_failed = false;
    } else if (w->rc == 0 && !w->skipped) {
        w->applied_hash = w->hash;
        w->have_applied = true;
        w->have_failed = false;
        log_info("config", "%s: reloaded", w->path);
        w->on_change(w, s, w->ctx);
    } else if (w->rc < 0) {
        const char *msg = w->detail.msg[0] ? w->detail.msg : err_str(w->rc);
        bool parse = w->rc != ERR_IO;
        if (!w->have_failed || w->failed_parse != parse || w->failed_hash != w->hash ||
            strcmp(w->failed_msg, msg) != 0) {
            log_error("config", "%s; keeping the previous configuration", msg);
            w->have_failed = true;
            w->failed_parse = parse;
            w->failed_hash = w->hash;
            snprintf(w->failed_msg, sizeof(w->failed_msg), "%s", msg);
        }
    }
    if (w->closing) {
        maybe_free(w);
        return;
    }
    if (w->dirty) {
        w->dirty = false;
        queue_load(w);
    }
}

static void queue_load(res_watch_t *w)
{
    int rc;

    w->busy = true;
    rc = uv_queue_work(w->loop, &w->work, on_work, after_work);
    if (rc < 0) {
        w->busy = false;
        log_error("config", "%s: cannot schedule a reload: %s", w->path, uv_strerror(rc));
    }
}

static void on_timer(uv_timer_t *t)
{
    res_watch_t *w = t->data;

    if (w->closing)
        return;
    if (w->busy)
        w->dirty = true;
    else
        queue_load(w);
}

/* Restarts the debounce: a burst of writes becomes one reload, debounce_ms after the last. */
static void changed(res_watch_t *w)
{
    if (!w->closing)
        uv_timer_start(&w->timer, on_timer, w->debounce_ms, 0);
}

static void on_fs_event(uv_fs_event_t *h, const char *name, int events, int status)
{
    res_watch_t *w = h->data;

    (void)events;
    if (status < 0) {
        log_warn("config", "%s: watching the directory failed: %s (polling continues)", w->dir,
                 uv_strerror(status));
        return;
    }
    /*
     * The file itself (written in place or renamed over), or Kubernetes' "..data" symlink swap
     * that replaces a mounted ConfigMap; other files in the directory are ignored.
     */
    if (name == NULL || strcmp(name, w->base) == 0 || strncmp(name, "..", 2) == 0)
        changed(w);
}

static void on_poll(uv_fs_poll_t *h, int status, const uv_stat_t *prev, const uv_stat_t *curr)
{
    (void)status;
    (void)prev;
    (void)curr;
    changed(h->data);
}

int res_watch_start(uv_loop_t *loop, const res_watch_opts_t *o, res_watch_t **out, err_detail_t *d)
{
    res_watch_t *w;
    const char *slash;
    int rc;

    if (loop == NULL || o == NULL || o->path == NULL || o->path[0] == '\0' ||
        o->on_change == NULL || out == NULL)
        return err_set(d, ERR_INVAL, "res_watch_start: invalid arguments");
    w = mem_calloc(sizeof(*w));
    w->loop = loop;
    w->path = mem_strdup(o->path);
    slash = strrchr(w->path, '/');
    if (slash == NULL)
        w->dir = mem_strdup(".");
    else
        w->dir = mem_strndup(w->path, slash == w->path ? 1 : (size_t)(slash - w->path));
    w->base = slash ? slash + 1 : w->path;
    w->lim = o->lim ? *o->lim : default_limits;
    w->builder = o->builder;
    w->on_change = o->on_change;
    w->ctx = o->ctx;
    w->debounce_ms = o->debounce_ms ? o->debounce_ms : RES_WATCH_DEBOUNCE_MS;
    if (o->current != NULL) {
        w->applied_hash = res_snapshot_hash(o->current);
        w->have_applied = true;
    }

    uv_timer_init(loop, &w->timer);
    uv_fs_event_init(loop, &w->ev);
    uv_fs_poll_init(loop, &w->poll);
    w->timer.data = w->ev.data = w->poll.data = w;
    w->handles = 3;
    rc = uv_fs_event_start(&w->ev, on_fs_event, w->dir, 0);
    if (rc < 0)
        log_warn("config", "%s: cannot watch the directory: %s; polling every %u ms instead",
                 w->dir, uv_strerror(rc), o->poll_ms ? o->poll_ms : RES_WATCH_POLL_MS);
    rc = uv_fs_poll_start(&w->poll, on_poll, w->path, o->poll_ms ? o->poll_ms : RES_WATCH_POLL_MS);
    if (rc < 0) {
        err_set(d, rc, "%s: cannot poll the file: %s", w->path, uv_strerror(rc));
        res_watch_close(w);
        return rc;
    }
    *out = w;
    return 0;
}

void res_watch_close(res_watch_t *w)
{
    if (w == NULL || w->closing)
        return;
    w->closing = true;
    if (w->busy)
        uv_cancel((uv_req_t *)&w->work); /* fails harmlessly when already running */
    uv_close((uv_handle_t *)&w->timer, on_close);
    uv_close((uv_handle_t *)&w->ev, on_close);
    uv_close((uv_handle_t *)&w->poll, on_close);
}
