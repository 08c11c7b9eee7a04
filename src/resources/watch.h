/*
 * watch — immutable configuration snapshots, a lock-free holder for the current one, and a file
 * watcher that rebuilds the snapshot when the Configuration file changes (hot reload).
 *
 * Job: (1) res_snapshot_t bundles a loaded Configuration with whatever a caller derives from it
 * (a compiled ACL, later pipelines), refcounted; (2) res_slot_t lets request handlers on any
 * worker thread take a reference to the current snapshot without a lock while a reload swaps in
 * the next one; (3) res_watch_t watches one file on a libuv loop, rebuilds off the loop thread
 * and hands each valid new snapshot to a callback; an invalid file is logged on one line
 * ("<file>:<line>: <field>: <problem>; keeping the previous configuration") and ignored.
 *
 * How the slot stays safe without a lock (the classic hazard: a reader loads the pointer, the
 * writer swaps and drops the last reference, the reader then increments freed memory): readers
 * announce themselves on one of two counters for the short window between loading the pointer
 * and taking their reference. A publisher swaps the pointer, flips which counter new readers
 * use, and waits (yielding) until the old counter drains before it drops the slot's reference
 * to the old snapshot. Readers never wait for anything, two counters keep the publisher from
 * starving under a steady stream of readers, and a reader re-checks the counter choice after
 * announcing itself so that a reader delayed across two publishes cannot hide on the wrong
 * counter. Publishers are serialised by a mutex (reloads are rare).
 *
 * Ownership: res_snapshot_load returns a snapshot with one reference; res_snapshot_ref/unref
 * share it, and the last unref frees the Configuration and runs the builder's dispose on the
 * data, on whichever thread drops it. A slot owns one reference to its current snapshot.
 * res_slot_acquire returns a new reference the caller must unref. The watcher copies its
 * options (the path included); the callback receives one reference it must eventually drop.
 * Threading: snapshots are immutable; ref/unref are atomic. res_slot_acquire may run on any
 * thread at any time; res_slot_publish on any thread (it may spin briefly). res_watch_* run on
 * the loop's thread only; the builder runs on libuv's thread pool and must be thread-safe.
 * Errors: res_snapshot_load returns res_config_parse's errors, ERR_IO (unreadable file) or the
 * builder's; res_watch_start returns ERR_INVAL or a libuv error from uv_fs_poll_start (a
 * directory that cannot be watched is only a warning: polling still works). Details read
 * "<file>:<line>: <field>: <problem>".
 */
#ifndef OUTRIGGER_RESOURCES_WATCH_H
#define OUTRIGGER_RESOURCES_WATCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "resources/resources.h"

#define RES_WATCH_DEBOUNCE_MS 100 /* quiet time after the last change before reloading */
#define RES_WATCH_POLL_MS 1000    /* stat() fallback interval (NFS, missed inotify events) */

typedef struct res_snapshot res_snapshot_t; /* opaque, immutable, refcounted */

/**
 * Derives the caller's data from a freshly loaded Configuration. Runs on a thread-pool thread
 * (reload) or the loading thread (res_snapshot_load). On success stores the data in *@p data
 * (may be NULL) and returns 0; on failure returns an error with a detail and keeps nothing.
 */
typedef int (*res_build_fn)(const res_config_t *cfg, void *ctx, void **data, err_detail_t *d);
/** Releases what a res_build_fn stored. Runs on whichever thread drops the last reference. */
typedef void (*res_dispose_fn)(void *data);

/** How snapshots get their data. All fields may be NULL (the snapshot holds only the config). */
typedef struct res_builder {
    res_build_fn build;     /* derives the data */
    res_dispose_fn dispose; /* frees it */
    void *ctx;              /* passed to build; borrowed for the builder's whole use */
} res_builder_t;

/**
 * Reads, parses (with $VAR expansion, like res_config_load) and builds a snapshot of the
 * Configuration at @p path. @p lim may be NULL (defaults), @p b may be NULL (no data). On
 * success *@p out holds one reference.
 */
int res_snapshot_load(const res_limits_t *lim, const char *path, const res_builder_t *b,
                      res_snapshot_t **out, err_detail_t *d) __attribute__((warn_unused_result));
/**
 * A snapshot that holds only @p data (no Configuration; res_snapshot_config returns NULL), for
 * sets loaded from other resources that want the same lock-free slot. One reference; the last
 * unref runs @p dispose (may be NULL) on @p data.
 */
res_snapshot_t *res_snapshot_wrap(void *data, res_dispose_fn dispose, uint64_t hash);
/** Takes one more reference to @p s (NULL allowed) and returns it. */
res_snapshot_t *res_snapshot_ref(res_snapshot_t *s);
/** Drops one reference; the last one frees the snapshot. NULL is a no-op. */
void res_snapshot_unref(res_snapshot_t *s);
/** The Configuration inside @p s (lives as long as the reference). */
const res_config_t *res_snapshot_config(const res_snapshot_t *s);
/** The builder's data inside @p s (lives as long as the reference). */
void *res_snapshot_data(const res_snapshot_t *s);
/** A 64-bit hash of the file bytes the snapshot was built from (before $VAR expansion). */
uint64_t res_snapshot_hash(const res_snapshot_t *s);

/** The current snapshot, shared by all threads. Embeddable; fields are private. */
typedef struct res_slot {
    _Atomic(res_snapshot_t *) cur_; /* owned reference; NULL when empty */
    atomic_uint phase_;             /* which readers_ counter new readers announce on */
    atomic_ulong readers_[2];       /* readers between loading cur_ and taking a reference */
    uv_mutex_t publish_;            /* serialises publishers */
} res_slot_t;

/** Initialises @p slot holding @p initial (reference taken over; NULL for an empty slot). */
void res_slot_init(res_slot_t *slot, res_snapshot_t *initial);
/**
 * A new reference to the current snapshot, or NULL when the slot is empty. Lock-free: a few
 * atomic operations, repeated only when a publish flips the phase at that very moment; never
 * blocks, never allocates. Drop it with res_snapshot_unref when the request is done.
 */
res_snapshot_t *res_slot_acquire(res_slot_t *slot);
/**
 * Makes @p s (reference taken over; NULL empties the slot) the current snapshot. Readers that
 * already hold the previous one keep it until they unref it. Returns after the slot's reference
 * to the previous snapshot is dropped.
 */
void res_slot_publish(res_slot_t *slot, res_snapshot_t *s);
/** Drops the slot's reference. No other thread may use the slot any more. */
void res_slot_destroy(res_slot_t *slot);

typedef struct res_watch res_watch_t; /* opaque; lives on one loop */

/**
 * Called on the loop thread with a newly built snapshot (one reference handed over) each time
 * the file changes into a valid Configuration different from the last one seen.
 */
typedef void (*res_watch_cb)(res_watch_t *w, res_snapshot_t *s, void *ctx);

/** Options of res_watch_start; copied. */
typedef struct res_watch_opts {
    const char *path;              /* the Configuration file; required */
    const res_limits_t *lim;       /* parse limits (copied); NULL = defaults */
    res_builder_t builder;         /* how snapshots get their data */
    res_watch_cb on_change;        /* required */
    void *ctx;                     /* passed to on_change */
    unsigned debounce_ms;          /* 0 = RES_WATCH_DEBOUNCE_MS */
    unsigned poll_ms;              /* 0 = RES_WATCH_POLL_MS */
    const res_snapshot_t *current; /* what is loaded now (its hash avoids a spurious reload) */
} res_watch_opts_t;

/**
 * Starts watching on @p loop: a uv_fs_event on the file's directory (so editors and Kubernetes
 * ConfigMaps that replace the file by rename are seen), a uv_fs_poll on the file as a fallback,
 * and a debounce timer. Changes are loaded and built on the thread pool; unchanged bytes are
 * skipped, and the same invalid bytes are logged only once. No callback runs before this
 * returns. On success *@p out is the watcher; stop it with res_watch_close.
 */
int res_watch_start(uv_loop_t *loop, const res_watch_opts_t *o, res_watch_t **out, err_detail_t *d)
    __attribute__((warn_unused_result));
/**
 * Stops watching. No callback runs after this returns. The memory is released as the loop runs
 * on (handles closed, any build in flight finished), so run the loop until it has no more work.
 */
void res_watch_close(res_watch_t *w);

#endif
