/*
 * Hot reload: snapshots, the lock-free slot under concurrent readers (run it under
 * -DSANITIZE=thread too), and the watcher on a real loop with real files: a valid rewrite
 * arrives within 2 s, an invalid one is logged and the previous snapshot stays.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/err.h"
#include "policy/acl.h"
#include "resources/watch.h"
#include "test.h"

static const char cfg_deny[] = "apiVersion: dapr.io/v1alpha1\n"
                               "kind: Configuration\n"
                               "metadata: {name: one}\n"
                               "spec:\n"
                               "  accessControl:\n"
                               "    defaultAction: deny\n";
static const char cfg_allow[] = "apiVersion: dapr.io/v1alpha1\n"
                                "kind: Configuration\n"
                                "metadata: {name: two}\n"
                                "spec:\n"
                                "  accessControl:\n"
                                "    defaultAction: allow\n";
static const char cfg_broken[] = "apiVersion: dapr.io/v1alpha1\n"
                                 "kind: Configuration\n"
                                 "metadata: {name: three}\n"
                                 "spec:\n"
                                 "  accessControl:\n"
                                 "    defaultAction: deny\n"
                                 "    policies:\n"
                                 "    - appId: a\n";

static int write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    if (f == NULL)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Writes @p text to a temporary file next to @p path, then renames it over @p path. */
static int replace_file(const char *path, const char *text)
{
    char tmp[512];

    snprintf(tmp, sizeof(tmp), "%.500s.tmp", path);
    if (write_file(tmp, text) < 0)
        return -1;
    return rename(tmp, path);
}

static char dir_template[] = "/tmp/outrigger-watch-XXXXXX";

static const char *scratch_dir(void)
{
    static char *dir;

    if (dir == NULL)
        dir = mkdtemp(dir_template);
    return dir;
}

static const res_builder_t acl_builder = {acl_snapshot_build, acl_snapshot_dispose, NULL};

static bool allows(const res_snapshot_t *s)
{
    return acl_check(res_snapshot_data(s), NULL, "x", 1, ACL_VERB_GET, NULL);
}

TEST(snapshot_load_and_release)
{
    char path[512];
    res_snapshot_t *s = NULL;
    err_detail_t d = {{0}};
    size_t before = mem_used();

    snprintf(path, sizeof(path), "%s/load.yaml", scratch_dir());
    ASSERT_EQ(write_file(path, cfg_deny), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &s, &d), 0);
    ASSERT_STREQ(res_snapshot_config(s)->name, "one");
    ASSERT(!allows(s));
    ASSERT(res_snapshot_ref(s) == s);
    res_snapshot_unref(s);
    res_snapshot_unref(s);

    /* A builder error comes back with its file:line detail; nothing is kept. */
    ASSERT_EQ(write_file(path, cfg_broken), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &s, &d), ERR_RES_INVALID);
    ASSERT(strstr(d.msg, "load.yaml:8: spec.accessControl.policies[0]: namespace: missing") !=
           NULL);
    ASSERT_EQ(res_snapshot_load(NULL, "/nonexistent/x.yaml", NULL, &s, &d), ERR_IO);
    /* Without a builder the snapshot holds just the Configuration. */
    ASSERT_EQ(write_file(path, cfg_allow), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, NULL, &s, &d), 0);
    ASSERT(res_snapshot_data(s) == NULL);
    res_snapshot_unref(s);
    unlink(path);
    ASSERT_EQ(mem_used(), before);
}

/* ---- the slot under concurrent readers ------------------------------------------------------ */

#define READERS 4
#define PUBLISHES 300

struct stress {
    res_slot_t slot;
    atomic_int stop;
    atomic_ulong reads;
};

static void reader_main(void *arg)
{
    struct stress *st = arg;

    while (!atomic_load(&st->stop)) {
        res_snapshot_t *s = res_slot_acquire(&st->slot);
        /* Touch the snapshot's contents: a freed one would show under ASan/TSan. */
        if (s != NULL) {
            const res_config_t *c = res_snapshot_config(s);
            if (c->name[0] != 'o' && c->name[0] != 't')
                abort();
            (void)allows(s);
        }
        res_snapshot_unref(s);
        atomic_fetch_add(&st->reads, 1);
    }
}

TEST(slot_concurrent_readers)
{
    static struct stress st;
    uv_thread_t th[READERS];
    res_snapshot_t *a = NULL, *b = NULL;
    err_detail_t d = {{0}};
    char path[512];
    size_t before = mem_used();

    snprintf(path, sizeof(path), "%s/slot.yaml", scratch_dir());
    ASSERT_EQ(write_file(path, cfg_deny), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &a, &d), 0);
    ASSERT_EQ(write_file(path, cfg_allow), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &b, &d), 0);

    res_slot_init(&st.slot, res_snapshot_ref(a));
    atomic_init(&st.stop, 0);
    atomic_init(&st.reads, 0);
    for (int i = 0; i < READERS; i++)
        ASSERT_EQ(uv_thread_create(&th[i], reader_main, &st), 0);
    for (int i = 0; i < PUBLISHES; i++) {
        res_snapshot_t *fresh = NULL;
        /* Mostly fresh snapshots whose only reference is the slot's, so that dropping one
         * early would free memory a reader is about to touch. */
        if (i % 3 == 0) {
            res_slot_publish(&st.slot, res_snapshot_ref(i % 2 ? a : b));
        } else {
            ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &fresh, &d), 0);
            res_slot_publish(&st.slot, fresh);
        }
        if (i % 50 == 0)
            res_slot_publish(&st.slot, NULL); /* readers must cope with an empty slot */
    }
    atomic_store(&st.stop, 1);
    for (int i = 0; i < READERS; i++)
        uv_thread_join(&th[i]);
    ASSERT(atomic_load(&st.reads) > 0);
    res_slot_destroy(&st.slot);
    /* Only our own references remain: dropping them frees both. */
    res_snapshot_unref(a);
    res_snapshot_unref(b);
    unlink(path);
    ASSERT_EQ(mem_used(), before);
}

/* ---- the watcher ---------------------------------------------------------------------------- */

struct watch_state {
    uv_loop_t loop;
    uv_timer_t step;     /* drives the scenario */
    uv_timer_t deadline; /* fails the test when a step takes too long */
    res_watch_t *w;
    res_slot_t slot; /* what request handlers would read */
    const char *path;
    int phase;            /* scenario step */
    int changes;          /* on_change calls */
    uint64_t phase_start; /* loop time a step began */
    uint64_t latency_ms;  /* worst time from rewrite to callback */
    bool failed;          /* a step timed out */
    char why[200];        /* what went wrong */
};

static void on_change(res_watch_t *w, res_snapshot_t *s, void *ctx)
{
    struct watch_state *ws = ctx;
    uint64_t took = uv_now(&ws->loop) - ws->phase_start;

    (void)w;
    ws->changes++;
    if (took > ws->latency_ms)
        ws->latency_ms = took;
    res_slot_publish(&ws->slot, s);
}

static void finish(struct watch_state *ws)
{
    uv_timer_stop(&ws->step);
    uv_timer_stop(&ws->deadline);
    uv_close((uv_handle_t *)&ws->step, NULL);
    uv_close((uv_handle_t *)&ws->deadline, NULL);
    res_watch_close(ws->w);
}

static void on_deadline(uv_timer_t *t)
{
    struct watch_state *ws = t->data;

    ws->failed = true;
    snprintf(ws->why, sizeof(ws->why), "step %d timed out (changes=%d)", ws->phase, ws->changes);
    finish(ws);
}

static bool current_allows(struct watch_state *ws, const char **name)
{
    res_snapshot_t *s = res_slot_acquire(&ws->slot);
    bool ok = allows(s);

    *name = res_snapshot_config(s)->name[0] == 'o' ? "one" : "two";
    res_snapshot_unref(s);
    return ok;
}

/* Begins step @p phase: do its file change now and give it 2 s to be seen. */
static void begin(struct watch_state *ws, int phase)
{
    ws->phase = phase;
    ws->phase_start = uv_now(&ws->loop);
    uv_timer_start(&ws->deadline, on_deadline, 2000, 0);
}

/*
 * The scenario, polled every 20 ms:
 * 0. rename a valid file over the watched one (deny → allow): callback within 2 s;
 * 1. write a broken file in place: after 1.5 s still no callback, allow still in force;
 * 2. write a valid file in place (allow → deny): callback within 2 s;
 * 3. write the same bytes again: no callback (nothing changed), then stop.
 */
static void on_step(uv_timer_t *t)
{
    struct watch_state *ws = t->data;
    const char *name;

    switch (ws->phase) {
    case 0:
        if (ws->changes == 0)
            return;
        if (!current_allows(ws, &name) || strcmp(name, "two") != 0) {
            snprintf(ws->why, sizeof(ws->why), "step 0: the new policy is not in force");
            ws->failed = true;
            finish(ws);
            return;
        }
        if (write_file(ws->path, cfg_broken) < 0)
            abort();
        begin(ws, 1);
        return;
    case 1:
        if (ws->changes != 1) {
            snprintf(ws->why, sizeof(ws->why), "step 1: a broken file was applied");
            ws->failed = true;
            finish(ws);
            return;
        }
        if (uv_now(&ws->loop) - ws->phase_start < 1500)
            return;
        if (!current_allows(ws, &name)) {
            snprintf(ws->why, sizeof(ws->why), "step 1: the previous policy was lost");
            ws->failed = true;
            finish(ws);
            return;
        }
        if (write_file(ws->path, cfg_deny) < 0)
            abort();
        begin(ws, 2);
        return;
    case 2:
        if (ws->changes < 2)
            return;
        if (current_allows(ws, &name)) {
            snprintf(ws->why, sizeof(ws->why), "step 2: the deny policy is not in force");
            ws->failed = true;
            finish(ws);
            return;
        }
        if (write_file(ws->path, cfg_deny) < 0)
            abort();
        begin(ws, 3);
        return;
    case 3:
        if (ws->changes != 2) {
            snprintf(ws->why, sizeof(ws->why), "step 3: unchanged bytes caused a callback");
            ws->failed = true;
            finish(ws);
            return;
        }
        if (uv_now(&ws->loop) - ws->phase_start >= 1500)
            finish(ws);
        return;
    default:
        return;
    }
}

TEST(watch_reloads_and_keeps_old_on_error)
{
    static struct watch_state ws;
    res_watch_opts_t o = {0};
    res_snapshot_t *first = NULL;
    err_detail_t d = {{0}};
    char path[512];
    size_t before = mem_used();

    snprintf(path, sizeof(path), "%s/config.yaml", scratch_dir());
    ASSERT_EQ(write_file(path, cfg_deny), 0);
    ASSERT_EQ(res_snapshot_load(NULL, path, &acl_builder, &first, &d), 0);
    ASSERT_EQ(uv_loop_init(&ws.loop), 0);
    res_slot_init(&ws.slot, first);
    ws.path = path;
    o.path = path;
    o.builder = acl_builder;
    o.on_change = on_change;
    o.ctx = &ws;
    o.current = first;
    ASSERT_EQ(res_watch_start(&ws.loop, &o, &ws.w, &d), 0);
    uv_timer_init(&ws.loop, &ws.step);
    uv_timer_init(&ws.loop, &ws.deadline);
    ws.step.data = ws.deadline.data = &ws;
    uv_timer_start(&ws.step, on_step, 20, 20);

    /* Step 0 starts with an editor-style replace: write elsewhere, rename over. */
    ASSERT_EQ(replace_file(path, cfg_allow), 0);
    begin(&ws, 0);
    uv_run(&ws.loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&ws.loop), 0);

    if (ws.failed)
        TEST_FAIL_("%s", ws.why);
    ASSERT_EQ(ws.changes, 2);
    ASSERT(ws.latency_ms < 2000);
    fprintf(stderr, "  worst reload latency: %llu ms\n", (unsigned long long)ws.latency_ms);
    res_slot_destroy(&ws.slot);
    unlink(path);
    ASSERT_EQ(mem_used(), before);
}

/* Closing right after starting, and from inside the loop, frees everything. */
TEST(watch_close_immediately)
{
    uv_loop_t loop;
    res_watch_t *w = NULL;
    res_watch_opts_t o = {0};
    err_detail_t d = {{0}};
    char path[512];
    size_t before = mem_used();

    snprintf(path, sizeof(path), "%s/missing.yaml", scratch_dir());
    ASSERT_EQ(uv_loop_init(&loop), 0);
    o.path = path;
    o.on_change = on_change;
    ASSERT_EQ(res_watch_start(&loop, &o, &w, &d), 0);
    res_watch_close(w);
    uv_run(&loop, UV_RUN_DEFAULT);
    ASSERT_EQ(uv_loop_close(&loop), 0);
    o.on_change = NULL;
    ASSERT_EQ(res_watch_start(&loop, &o, &w, &d), ERR_INVAL);
    ASSERT_EQ(mem_used(), before);
    rmdir(scratch_dir());
}
