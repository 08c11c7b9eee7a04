#include <ftw.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/err.h"
#include "invoke/resolve.h"
#include "resources/resources.h"
#include <sys/wait.h>
#include <unistd.h>

#include "test.h"

/* A scratch OUTRIGGER_HOME under a fresh temp dir; `home` is a subdirectory that does not exist
 * yet, so resolve_new has to create it. */
struct tmp {
    char root[64];
    char home[96];
    char db[128];
};

static int tmp_make(struct tmp *t)
{
    snprintf(t->root, sizeof(t->root), "/tmp/outrigger-nr-XXXXXX");
    if (mkdtemp(t->root) == NULL)
        return -1;
    snprintf(t->home, sizeof(t->home), "%s/home/.outrigger", t->root);
    snprintf(t->db, sizeof(t->db), "%s/nameresolution.db", t->home);
    return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmp_clean(struct tmp *t)
{
    nftw(t->root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Parses a Configuration whose nameResolution block is @p nr (indented under spec). */
static res_config_t *config_with(const char *nr)
{
    char text[2048];
    res_config_t *c = NULL;
    err_detail_t d = {{0}};

    snprintf(text, sizeof(text),
             "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: t\nspec:\n"
             "  nameResolution:\n%s",
             nr);
    if (res_config_parse(NULL, "config.yaml", text, strlen(text), 0, &c, &d) < 0) {
        fprintf(stderr, "config: %s\n", d.msg);
        return NULL;
    }
    return c;
}

static int open_sqlite(const struct tmp *t, const res_config_t *cfg, resolve_t **out)
{
    resolve_opts_t o = {.home = t->home, .config = cfg};
    err_detail_t d = {{0}};
    int rc = resolve_new(&o, out, &d);

    if (rc < 0)
        fprintf(stderr, "resolve_new: %s: %s\n", err_name(rc), d.msg);
    return rc;
}

/* Runs one SQL statement on the test's own connection and returns the first column of the first
 * row as an integer (or -1). */
static long long sql1(const struct tmp *t, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long long v = -1;

    if (sqlite3_open(t->db, &db) != SQLITE_OK)
        goto out;
    sqlite3_busy_timeout(db, 2000);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "sql1: %s\n", sqlite3_errmsg(db));
        goto out;
    }
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        v = sqlite3_changes(db);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

TEST(resolve_two_registries_find_each_other)
{
    struct tmp t;
    resolve_t *a = NULL, *b = NULL;
    char addr[RESOLVE_ADDR_MAX], wal[160];
    err_detail_t d = {{0}};
    struct stat st;
    size_t before = mem_used();

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &b), 0);
    ASSERT_EQ(stat(t.home, &st), 0);
    ASSERT_EQ(st.st_mode & 0777, 0700);
    ASSERT_EQ(stat(t.db, &st), 0);
    ASSERT_EQ(resolve_register(a, "app-a", "default", "127.0.0.1", 47001, &d), 0);
    ASSERT_EQ(resolve_register(b, "app-b", "default", "::1", 47002, &d), 0);
    ASSERT_EQ(resolve_lookup(a, "app-b", "default", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "[::1]:47002");
    ASSERT_EQ(resolve_lookup(b, "app-a", "default", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "127.0.0.1:47001");
    ASSERT_EQ(resolve_lookup(b, "app-a", "default", addr, 8, &d), ERR_TOO_LARGE);
    ASSERT_EQ(resolve_heartbeat(a, &d), 0);
    ASSERT_EQ(resolve_heartbeat(b, &d), 0);
    ASSERT_EQ(resolve_heartbeat_interval_ms(a), 3000);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts WHERE namespace = 'default'"), 2);
    ASSERT_EQ(sql1(&t, "SELECT value FROM metadata WHERE key = 'nr-migrations'"), 1);
    /* WAL mode: the write-ahead log sits beside the database while connections are open. */
    snprintf(wal, sizeof(wal), "%s-wal", t.db);
    ASSERT_EQ(stat(wal, &st), 0);
    resolve_free(a);
    resolve_free(b);
    ASSERT_EQ(mem_used(), before);
    tmp_clean(&t);
}

TEST(resolve_namespace_must_match)
{
    struct tmp t;
    resolve_t *a = NULL;
    char addr[RESOLVE_ADDR_MAX] = "untouched";
    err_detail_t d = {{0}};

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(resolve_register(a, "orders", "prod", "10.0.0.1", 47001, &d), 0);
    ASSERT_EQ(resolve_lookup(a, "orders", "staging", addr, sizeof(addr), &d), ERR_INVOKE_NO_HOST);
    ASSERT_STREQ(d.msg, "no host found with the given ID \"orders\" in namespace \"staging\"");
    ASSERT_STREQ(addr, "untouched");
    ASSERT_EQ(resolve_lookup(a, "Orders", "prod", addr, sizeof(addr), &d), ERR_INVOKE_NO_HOST);
    ASSERT_EQ(resolve_lookup(a, "orders", "prod", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "10.0.0.1:47001");
    resolve_free(a);
    tmp_clean(&t);
}

TEST(resolve_stale_rows_ignored_and_cleaned)
{
    struct tmp t;
    resolve_t *a = NULL;
    char addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    /* Registering runs the first cleanup and records it in the metadata table. */
    ASSERT_EQ(resolve_register(a, "live", "default", "127.0.0.1", 47001, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM metadata WHERE key = 'nr-last-cleanup'"), 1);
    ASSERT_EQ(sql1(&t, "INSERT INTO hosts VALUES ('id-old', '127.0.0.1:47009', 'old', 'default', "
                       "unixepoch() - 100)"),
              1);
    ASSERT_EQ(sql1(&t, "INSERT INTO hosts VALUES ('id-edge', '127.0.0.1:47008', 'old', "
                       "'default', unixepoch() - 5)"),
              1);
    ASSERT_EQ(resolve_lookup(a, "old", "default", addr, sizeof(addr), &d), ERR_INVOKE_NO_HOST);

    /* Another process cleaned up moments ago: the shared record makes this a no-op. */
    ASSERT_EQ(resolve_cleanup(a, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 3);

    /* Once the record is old enough, stale rows go and the live one stays (Dapr's predicate is
     * inverted and would do the opposite). */
    ASSERT_EQ(sql1(&t, "UPDATE metadata SET value = datetime('now', '-2 hours') "
                       "WHERE key = 'nr-last-cleanup'"),
              1);
    ASSERT_EQ(resolve_cleanup(a, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 1);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts WHERE app_id = 'live'"), 1);
    ASSERT_EQ(resolve_heartbeat(a, &d), 0);

    /* An unreadable record does not block cleanup forever. */
    ASSERT_EQ(sql1(&t, "INSERT INTO hosts VALUES ('id-old', '127.0.0.1:47009', 'old', 'default', "
                       "unixepoch() - 100)"),
              1);
    ASSERT_EQ(sql1(&t, "UPDATE metadata SET value = 'garbage' WHERE key = 'nr-last-cleanup'"), 1);
    ASSERT_EQ(resolve_cleanup(a, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 1);
    resolve_free(a);
    tmp_clean(&t);
}

TEST(resolve_heartbeat_detects_lost_row)
{
    struct tmp t;
    resolve_t *a = NULL;
    err_detail_t d = {{0}};

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(resolve_heartbeat(a, &d), ERR_INVAL);
    ASSERT_EQ(resolve_register(a, "app", "default", "127.0.0.1", 47001, &d), 0);
    ASSERT_EQ(resolve_heartbeat(a, &d), 0);
    ASSERT_EQ(sql1(&t, "DELETE FROM hosts"), 1);
    ASSERT_EQ(resolve_heartbeat(a, &d), ERR_RESOLVE_LOST);
    ASSERT(strstr(d.msg, "host registration lost: no row for 127.0.0.1:47001") != NULL);
    /* Registering again recovers. */
    ASSERT_EQ(resolve_register(a, "app", "default", "127.0.0.1", 47001, &d), 0);
    ASSERT_EQ(resolve_heartbeat(a, &d), 0);
    /* A new sidecar taking over the address (REPLACE) also means our row is lost. */
    ASSERT_EQ(sql1(&t, "REPLACE INTO hosts VALUES ('other', '127.0.0.1:47001', 'app', "
                       "'default', unixepoch())"),
              1);
    ASSERT_EQ(resolve_heartbeat(a, &d), ERR_RESOLVE_LOST);
    resolve_free(a);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 1);
    tmp_clean(&t);
}

TEST(resolve_free_unregisters)
{
    struct tmp t;
    resolve_t *a = NULL, *b = NULL;
    char addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &b), 0);
    ASSERT_EQ(resolve_register(a, "app-a", "default", "127.0.0.1", 47001, &d), 0);
    /* Registering again moves the registration instead of leaving a second row. */
    ASSERT_EQ(resolve_register(a, "app-a", "default", "127.0.0.1", 47011, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 1);
    ASSERT_EQ(resolve_lookup(b, "app-a", "default", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "127.0.0.1:47011");
    resolve_free(a);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM hosts"), 0);
    ASSERT_EQ(resolve_lookup(b, "app-a", "default", addr, sizeof(addr), &d), ERR_INVOKE_NO_HOST);
    resolve_free(b);
    tmp_clean(&t);
}

TEST(resolve_picks_among_instances)
{
    struct tmp t;
    resolve_t *a = NULL, *b = NULL;
    char addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};
    int seen1 = 0, seen2 = 0, i;

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &b), 0);
    ASSERT_EQ(resolve_register(a, "svc", "default", "127.0.0.1", 47001, &d), 0);
    ASSERT_EQ(resolve_register(b, "svc", "default", "127.0.0.1", 47002, &d), 0);
    for (i = 0; i < 64; i++) {
        ASSERT_EQ(resolve_lookup(a, "svc", "default", addr, sizeof(addr), &d), 0);
        seen1 += strcmp(addr, "127.0.0.1:47001") == 0;
        seen2 += strcmp(addr, "127.0.0.1:47002") == 0;
    }
    ASSERT_EQ(seen1 + seen2, 64);
    ASSERT(seen1 > 0 && seen2 > 0);
    resolve_free(a);
    resolve_free(b);
    tmp_clean(&t);
}

TEST(resolve_sqlite_config_keys)
{
    struct tmp t;
    resolve_t *a = NULL;
    res_config_t *cfg;
    char text[512], addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};

    ASSERT_EQ(tmp_make(&t), 0);
    snprintf(t.db, sizeof(t.db), "%s/custom.db", t.root);
    snprintf(text, sizeof(text),
             "    component: sqlite\n    version: v1\n    configuration:\n"
             "      ConnectionString: \"%s\"\n      tableName: nr_hosts\n"
             "      metadataTableName: nr_meta\n      updateInterval: 3\n"
             "      cleanupIntervalInSeconds: 0\n      timeout: 1s\n      busyTimeout: 2s\n"
             "      somethingElse: ignored\n",
             t.db);
    cfg = config_with(text);
    ASSERT(cfg != NULL);
    ASSERT_EQ(open_sqlite(&t, cfg, &a), 0);
    res_config_free(cfg);
    ASSERT_EQ(resolve_heartbeat_interval_ms(a), 1000);
    ASSERT_EQ(resolve_register(a, "app", "ns1", "localhost", 47001, &d), 0);
    ASSERT_EQ(resolve_lookup(a, "app", "ns1", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "localhost:47001");
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM nr_hosts"), 1);
    /* cleanupInterval 0 disables cleanup: no record, nothing deleted. */
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM nr_meta WHERE key = 'nr-last-cleanup'"), 0);
    ASSERT_EQ(sql1(&t, "INSERT INTO nr_hosts VALUES ('x', 'h:1', 'old', 'ns1', 0)"), 1);
    ASSERT_EQ(resolve_cleanup(a, &d), 0);
    ASSERT_EQ(sql1(&t, "SELECT count(*) FROM nr_hosts"), 2);
    resolve_free(a);
    tmp_clean(&t);
}

/* Builds a resolver from a nameResolution block and expects ERR_INVAL with @p want inside. */
static int fails_with(const char *nr, const char *want, char *got, size_t got_len)
{
    struct tmp t;
    res_config_t *cfg = config_with(nr);
    resolve_t *r = NULL;
    resolve_opts_t o = {0};
    err_detail_t d = {{0}};
    int rc;

    if (cfg == NULL || tmp_make(&t) < 0)
        return 0;
    o.home = t.home;
    o.config = cfg;
    rc = resolve_new(&o, &r, &d);
    snprintf(got, got_len, "%s: %s", err_name(rc), d.msg);
    resolve_free(r);
    res_config_free(cfg);
    tmp_clean(&t);
    return rc == ERR_INVAL && r == NULL && strstr(d.msg, want) != NULL;
}

#define ASSERT_BAD_CONFIG(nr, want)                                                                \
    do {                                                                                           \
        char got_[300];                                                                            \
        if (!fails_with((nr), (want), got_, sizeof(got_)))                                         \
            TEST_FAIL_("want \"%s\", got %s", (want), got_);                                       \
    } while (0)

TEST(resolve_bad_config_values)
{
    ASSERT_BAD_CONFIG("    configuration:\n      updateInterval: 1500ms\n",
                      "config.yaml:8: spec.nameResolution.configuration.updateInterval: must be "
                      "whole seconds");
    ASSERT_BAD_CONFIG("    configuration:\n      updateInterval: 1s\n",
                      "updateInterval: must be at least 1s longer than timeout (1000 ms)");
    ASSERT_BAD_CONFIG("    configuration:\n      timeout: 500ms\n",
                      "config.yaml:8: spec.nameResolution.configuration.timeout: must be at "
                      "least 1s");
    ASSERT_BAD_CONFIG("    configuration:\n      cleanupInterval: soon\n",
                      "cleanupInterval: \"soon\" is not a duration");
    ASSERT_BAD_CONFIG("    configuration:\n      busyTimeout: 100000h\n",
                      "busyTimeout: \"100000h\" is longer than");
    ASSERT_BAD_CONFIG("    configuration:\n      tableName: bad-name\n",
                      "config.yaml:8: spec.nameResolution.configuration.tableName: \"bad-name\" "
                      "is not a valid name");
    ASSERT_BAD_CONFIG("    configuration:\n      tableName: {a: b}\n",
                      "config.yaml:8: spec.nameResolution.configuration.tableName: expected a "
                      "string");
    ASSERT_BAD_CONFIG("    configuration:\n      updateInterval: 5s\n      UPDATEINTERVAL: 6s\n",
                      "config.yaml:9: spec.nameResolution.configuration.updateInterval: given "
                      "twice");
    ASSERT_BAD_CONFIG("    configuration:\n      metadataTableName: hosts\n",
                      "metadataTableName: must differ from tableName");
    ASSERT_BAD_CONFIG("    component: consul\n",
                      "spec.nameResolution.component: \"consul\" is not supported");
    ASSERT_BAD_CONFIG("    component: sqlite\n    version: v2\n",
                      "spec.nameResolution.version: \"v2\" is not supported");
    ASSERT_BAD_CONFIG("    component: kubernetes\n    configuration:\n"
                      "      template: \"{{.ID}}-{{.Data.region}}:{{.Port}}\"\n",
                      "config.yaml:9: spec.nameResolution.configuration.template: unsupported "
                      "placeholder \"{{.Data.region}}\"");
    ASSERT_BAD_CONFIG("    component: dns\n    configuration:\n      template: \"{{.ID\"\n",
                      "template: unsupported placeholder");
    ASSERT_BAD_CONFIG("    component: dns\n    configuration:\n      port: 70000\n",
                      "port: \"70000\" is not a port");
    ASSERT_BAD_CONFIG("    component: dns\n    configuration:\n      clusterDomain: \"a b\"\n",
                      "clusterDomain: \"a b\" is not a DNS domain");
}

TEST(resolve_no_home_needs_connection_string)
{
    resolve_t *r = NULL;
    resolve_opts_t o = {0};
    err_detail_t d = {{0}};

    ASSERT_EQ(resolve_new(&o, &r, &d), ERR_INVAL);
    ASSERT(strstr(d.msg, "set connectionString") != NULL);
    o.home = "/proc/outrigger-cannot-exist";
    ASSERT_EQ(resolve_new(&o, &r, &d), ERR_IO);
    ASSERT(strstr(d.msg, "cannot create /proc/outrigger-cannot-exist") != NULL);
    ASSERT(r == NULL);
}

TEST(resolve_dns_addresses)
{
    resolve_t *r = NULL;
    resolve_opts_t o = {.component = "dns"};
    res_config_t *cfg;
    char addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};

    ASSERT_EQ(resolve_new(&o, &r, &d), 0);
    ASSERT_EQ(resolve_register(r, "a", "default", "127.0.0.1", 1, &d), 0);
    ASSERT_EQ(resolve_heartbeat(r, &d), 0);
    ASSERT_EQ(resolve_cleanup(r, &d), 0);
    ASSERT_EQ(resolve_heartbeat_interval_ms(r), 0);
    ASSERT_EQ(resolve_lookup(r, "orders", "shop", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "orders-dapr.shop.svc.cluster.local:50002");
    ASSERT_EQ(resolve_lookup(r, "orders", "", addr, sizeof(addr), &d), ERR_INVAL);
    ASSERT_EQ(resolve_lookup(r, "orders", "shop", addr, 10, &d), ERR_TOO_LARGE);
    resolve_free(r);

    /* "kubernetes" from the Configuration, our own internal port as the peers' port. */
    cfg = config_with("    component: kubernetes\n    configuration:\n"
                      "      clusterDomain: corp.example\n");
    ASSERT(cfg != NULL);
    o = (resolve_opts_t){.config = cfg, .internal_port = 3501};
    ASSERT_EQ(resolve_new(&o, &r, &d), 0);
    res_config_free(cfg);
    ASSERT_EQ(resolve_lookup(r, "orders", "shop", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "orders-dapr.shop.svc.corp.example:3501");
    resolve_free(r);

    cfg = config_with("    component: dns\n    configuration:\n"
                      "      template: \"{{.ID}}.{{ .Namespace }}.internal:{{.Port}}/{x}}\"\n"
                      "      port: \"4000\"\n");
    ASSERT(cfg != NULL);
    o = (resolve_opts_t){.config = cfg, .internal_port = 3501};
    ASSERT_EQ(resolve_new(&o, &r, &d), 0);
    res_config_free(cfg);
    ASSERT_EQ(resolve_lookup(r, "orders", "shop", addr, sizeof(addr), &d), 0);
    ASSERT_STREQ(addr, "orders.shop.internal:4000/{x}}");
    resolve_free(r);
}

struct worker {
    resolve_t *r;
    int failures;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    char addr[RESOLVE_ADDR_MAX];
    err_detail_t d = {{0}};
    int i;

    for (i = 0; i < 200; i++) {
        if (resolve_lookup(w->r, "app", "default", addr, sizeof(addr), &d) != 0 ||
            strcmp(addr, "127.0.0.1:47001") != 0)
            w->failures++;
        if (i % 20 == 0 && resolve_heartbeat(w->r, &d) != 0)
            w->failures++;
    }
    return NULL;
}

TEST(resolve_handle_shared_by_threads)
{
    struct tmp t;
    resolve_t *a = NULL;
    struct worker w[4];
    pthread_t th[4];
    err_detail_t d = {{0}};
    int i;

    ASSERT_EQ(tmp_make(&t), 0);
    ASSERT_EQ(open_sqlite(&t, NULL, &a), 0);
    ASSERT_EQ(resolve_register(a, "app", "default", "127.0.0.1", 47001, &d), 0);
    for (i = 0; i < 4; i++) {
        w[i] = (struct worker){a, 0};
        ASSERT_EQ(pthread_create(&th[i], NULL, hammer, &w[i]), 0);
    }
    for (i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        ASSERT_EQ(w[i].failures, 0);
    }
    resolve_free(a);
    tmp_clean(&t);
}

TEST(resolve_busy_database_fails_after_busy_timeout)
{
    struct tmp t;
    resolve_t *a = NULL;
    res_config_t *cfg;
    sqlite3 *db = NULL;
    err_detail_t d = {{0}};
    struct timespec t0, t1;
    long ms;

    ASSERT_EQ(tmp_make(&t), 0);
    cfg = config_with("    configuration:\n      busyTimeout: 200ms\n");
    ASSERT(cfg != NULL);
    ASSERT_EQ(open_sqlite(&t, cfg, &a), 0);
    res_config_free(cfg);
    ASSERT_EQ(sqlite3_open(t.db, &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ASSERT_EQ(resolve_register(a, "app", "default", "127.0.0.1", 47001, &d), ERR_RESOLVE_DB);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
    ASSERT(ms >= 150 && ms < 2000);
    ASSERT(strstr(d.msg, "nameresolution.db: register: database is locked") != NULL);
    ASSERT_EQ(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ASSERT_EQ(resolve_register(a, "app", "default", "127.0.0.1", 47001, &d), 0);
    resolve_free(a);
    tmp_clean(&t);
}

/* Several sidecars starting at the same instant on a fresh home: each must open, switch the new
 * file to WAL and migrate it without "database is locked". They are separate processes (SQLite's
 * file locks are per process, so threads would not contend the same way), released together by a
 * pipe. */
#define STARTERS 8

TEST(resolve_concurrent_first_opens_succeed)
{
    struct tmp t;
    for (int round = 0; round < 5; round++) {
        pid_t pids[STARTERS];
        int gate[2], failures = 0;
        ASSERT_EQ(tmp_make(&t), 0);
        ASSERT_EQ(pipe(gate), 0);
        for (int i = 0; i < STARTERS; i++) {
            pids[i] = fork();
            if (pids[i] == 0) {
                resolve_t *r = NULL;
                char c;
                int rc;
                close(gate[1]);
                if (read(gate[0], &c, 1) < 0)
                    _exit(3);
                rc = open_sqlite(&t, NULL, &r);
                resolve_free(r);
                _exit(rc == 0 ? 0 : 1);
            }
        }
        close(gate[0]);
        close(gate[1]); /* EOF releases every child at once */
        for (int i = 0; i < STARTERS; i++) {
            int st = 0;
            waitpid(pids[i], &st, 0);
            failures += !(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        }
        tmp_clean(&t);
        ASSERT_EQ(failures, 0);
    }
}
