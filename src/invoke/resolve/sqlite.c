/*
 * The sqlite name resolution backend: Dapr's nameresolution.sqlite, schema and queries included,
 * so the database layout matches Dapr's. Two deliberate differences:
 * - Dapr always stores namespace "" and looks rows up by app id alone; we store the namespace
 *   and match app id and namespace together, so apps in different namespaces sharing one file
 *   do not find each other. (Rows written by daprd therefore never match; daprd's internal
 *   protocol is gRPC, which we do not speak, so there is nothing to find there anyway.)
 * - Dapr's cleanup deletes rows with `now - last_update < updateInterval`, which removes the
 *   live rows; we delete the stale ones (`>=`), which is what the cleanup is for.
 */
#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <uv.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/fs.h"
#include "base/log.h"
#include "base/str.h"
#include "invoke/resolve/resolve_int.h"

#define DEFAULT_DB_FILE "nameresolution.db"
#define DEFAULT_TABLE "hosts"
#define DEFAULT_META_TABLE "metadata"
#define DEFAULT_UPDATE_MS 5000ull
#define DEFAULT_CLEANUP_MS 3600000ull
#define DEFAULT_TIMEOUT_MS 1000ull
#define DEFAULT_BUSY_MS 800ull
#define MAX_DURATION_MS (24ull * 3600 * 1000) /* for update interval and timeouts */
#define MAX_CLEANUP_MS (30ull * 24 * 3600 * 1000)
#define MIGRATION_TIMEOUT_MS 30000ull
#define MIN_HEARTBEAT_MS 500
#define IDENT_MAX 48 /* table names; index names add up to 16 bytes */
#define PATH_MAX_BYTES 4096
#define SQL_MAX 640
#define UUID_LEN 36
#define MIGRATIONS_KEY "nr-migrations"
#define LAST_CLEANUP_KEY "nr-last-cleanup"
#define SCHEMA_VERSION 1

struct resolve__sqlite {
    sqlite3 *db;               /* owned connection */
    char path[PATH_MAX_BYTES]; /* database path or URI as opened */
    const char *shown;         /* points into path: the part named in error details */
    char table[IDENT_MAX + 1]; /* hosts table */
    char meta[IDENT_MAX + 1];  /* metadata table */
    uint64_t update_ms;        /* updateInterval: rows older than this are dead */
    uint64_t cleanup_ms;       /* cleanupInterval; 0 disables cleanup */
    uint64_t timeout_ms;       /* per-query deadline */
    uint64_t busy_ms;          /* SQLite busy timeout; 0 = fail at once when locked */
    uint64_t deadline_ms;      /* monotonic deadline of the running query; 0 = none */
    uint64_t next_cleanup_ms;  /* monotonic time the next cleanup is due */
    sqlite3_stmt *st_register; /* owned prepared statements, see prepare_all() */
    sqlite3_stmt *st_heartbeat;
    sqlite3_stmt *st_lookup;
    sqlite3_stmt *st_unregister;
    sqlite3_stmt *st_gc_mark;
    sqlite3_stmt *st_gc_delete;
    char reg_id[UUID_LEN + 1];   /* our registration id while registered */
    char addr[RESOLVE_ADDR_MAX]; /* our registered address */
    bool registered;             /* a row of ours should exist */
};

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* SQLite calls this every few hundred VM steps; a non-zero return interrupts the query. */
static int on_progress(void *arg)
{
    const resolve__sqlite_t *s = arg;

    return s->deadline_ms != 0 && now_ms() > s->deadline_ms;
}

/* Turns a failed SQLite call into ERR_TIMEOUT or ERR_RESOLVE_DB with SQLite's message. */
static int db_err(const resolve__sqlite_t *s, int src, const char *what, err_detail_t *d)
{
    if (src == SQLITE_INTERRUPT)
        return err_set(d, ERR_TIMEOUT, "%s: %s: query took longer than %llu ms", s->shown, what,
                       (unsigned long long)s->timeout_ms);
    return err_set(d, ERR_RESOLVE_DB, "%s: %s: %s", s->shown, what,
                   s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(src));
}

/* Runs a prepared statement for one step under the query deadline. */
static int step(resolve__sqlite_t *s, sqlite3_stmt *st)
{
    int src;

    s->deadline_ms = now_ms() + s->timeout_ms;
    src = sqlite3_step(st);
    s->deadline_ms = 0;
    return src;
}

/* Runs SQL text (DDL, pragmas, transaction control) under a deadline of @p timeout_ms. */
static int exec_sql(resolve__sqlite_t *s, const char *sql, uint64_t timeout_ms, const char *what,
                    err_detail_t *d)
{
    uint64_t until = now_ms() + timeout_ms;
    int src;

    /* SQLite returns SQLITE_BUSY without calling the busy handler where waiting could deadlock,
     * e.g. switching to WAL while another process opens the same new file: retry those here,
     * within the same deadline. */
    for (;;) {
        s->deadline_ms = until;
        src = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        s->deadline_ms = 0;
        if ((src & 0xff) != SQLITE_BUSY || now_ms() >= until)
            break;
        uv_sleep(10);
    }
    return src == SQLITE_OK ? 0 : db_err(s, src, what, d);
}

/* Resets a statement after use so it releases its read/write locks. */
static void done_with(sqlite3_stmt *st)
{
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Dapr's ValidIdentifier (ASCII letters, digits, '_'), plus a length cap for index names. */
static bool valid_ident(const char *v)
{
    size_t i, n = strlen(v);

    if (n == 0 || n > IDENT_MAX)
        return false;
    for (i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
              c == '_'))
            return false;
    }
    return true;
}

/* Dapr's utils.IsTruthy: "1", "true", "t", "yes", "y", "on", ignoring case. */
static bool truthy(const char *v)
{
    static const char *const yes[] = {"1", "true", "t", "yes", "y", "on"};
    size_t i, n;

    if (v == NULL)
        return false;
    n = strlen(v);
    for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        if (str_ieq(v, n, yes[i]))
            return true;
    }
    return false;
}

static bool is_memory_db(const char *conn)
{
    size_t n = strlen(conn);

    return (n >= 8 && str_ieq(conn, 8, ":memory:")) ||
           (n >= 13 && str_ieq(conn, 13, "file::memory:"));
}

/* Fills @p out with a random RFC 4122 version-4 UUID, as Dapr's uuid.NewRandom() does. */
static int random_uuid(char out[UUID_LEN + 1], err_detail_t *d)
{
    unsigned char b[16];
    size_t got = 0;

    while (got < sizeof(b)) {
        ssize_t n = getrandom(b + got, sizeof(b) - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    if (got < sizeof(b)) {
        /* Kernels without getrandom(2): fall back to the device. */
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        got = 0;
        while (fd >= 0 && got < sizeof(b)) {
            ssize_t n = read(fd, b + got, sizeof(b) - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        if (fd >= 0)
            close(fd);
        if (got < sizeof(b))
            return err_set(d, ERR_IO, "cannot read random bytes for a registration id");
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    snprintf(out, UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

/* Reads and checks every configuration key (Dapr's names, aliases and defaults). */
static int read_config(resolve__sqlite_t *s, const resolve__conf_t *c, const char *home,
                       bool *memory, bool *wal, err_detail_t *d)
{
    const char *conn = NULL, *table = NULL, *meta = NULL, *nowal = NULL;
    int rc, n;

    rc = resolve__conf_str(c, "connectionString", "url", &conn, d);
    if (rc == 0)
        rc = resolve__conf_str(c, "tableName", NULL, &table, d);
    if (rc == 0)
        rc = resolve__conf_str(c, "metadataTableName", NULL, &meta, d);
    if (rc == 0)
        rc = resolve__conf_str(c, "disableWAL", NULL, &nowal, d);
    if (rc == 0)
        rc = resolve__conf_dur_ms(c, "timeout", "timeoutInSeconds", DEFAULT_TIMEOUT_MS,
                                  MAX_DURATION_MS, &s->timeout_ms, d);
    if (rc == 0)
        rc = resolve__conf_dur_ms(c, "busyTimeout", NULL, DEFAULT_BUSY_MS, MAX_DURATION_MS,
                                  &s->busy_ms, d);
    if (rc == 0)
        rc = resolve__conf_dur_ms(c, "updateInterval", NULL, DEFAULT_UPDATE_MS, MAX_DURATION_MS,
                                  &s->update_ms, d);
    if (rc == 0)
        rc = resolve__conf_dur_ms(c, "cleanupInterval", "cleanupIntervalInSeconds",
                                  DEFAULT_CLEANUP_MS, MAX_CLEANUP_MS, &s->cleanup_ms, d);
    if (rc < 0)
        return rc;
    if (s->timeout_ms < 1000)
        return resolve__conf_err(c, "timeout", d, "must be at least 1s");
    /* Rows carry whole seconds (unixepoch), so a fractional interval would be silently cut. */
    if (s->update_ms % 1000 != 0)
        return resolve__conf_err(c, "updateInterval", d, "must be whole seconds");
    if (s->update_ms < s->timeout_ms + 1000)
        return resolve__conf_err(c, "updateInterval", d,
                                 "must be at least 1s longer than timeout (%llu ms)",
                                 (unsigned long long)s->timeout_ms);
    if (table != NULL && !valid_ident(table))
        return resolve__conf_err(c, "tableName", d,
                                 "\"%.64s\" is not a valid name (letters, digits, '_'; at most %d)",
                                 table, IDENT_MAX);
    if (meta != NULL && !valid_ident(meta))
        return resolve__conf_err(c, "metadataTableName", d,
                                 "\"%.64s\" is not a valid name (letters, digits, '_'; at most %d)",
                                 meta, IDENT_MAX);
    snprintf(s->table, sizeof(s->table), "%s", table ? table : DEFAULT_TABLE);
    snprintf(s->meta, sizeof(s->meta), "%s", meta ? meta : DEFAULT_META_TABLE);
    if (strcmp(s->table, s->meta) == 0)
        return resolve__conf_err(c, "metadataTableName", d, "must differ from tableName");
    if (conn != NULL && conn[0] != '\0') {
        n = snprintf(s->path, sizeof(s->path), "%s", conn);
        if (n < 0 || (size_t)n >= sizeof(s->path))
            return resolve__conf_err(c, "connectionString", d, "longer than %d bytes",
                                     PATH_MAX_BYTES - 1);
    } else {
        if (home == NULL || home[0] == '\0')
            return err_set(d, ERR_INVAL,
                           "no home directory for the name resolution database; "
                           "set connectionString");
        n = snprintf(s->path, sizeof(s->path), "%s/%s", home, DEFAULT_DB_FILE);
        if (n < 0 || (size_t)n >= sizeof(s->path))
            return err_set(d, ERR_INVAL, "home directory path too long");
        rc = fs_mkdir_p(home, 0700, d);
        if (rc < 0)
            return rc;
    }
    *memory = is_memory_db(s->path);
    *wal = !*memory && !truthy(nowal);
    return 0;
}

/* Creates the metadata table, then the hosts table and its indexes unless the recorded schema
 * version says they exist; all in one exclusive transaction, as Dapr's migrations do. */
static int migrate(resolve__sqlite_t *s, err_detail_t *d)
{
    char sql[SQL_MAX];
    sqlite3_stmt *st = NULL;
    uint64_t level = 0;
    bool in_tx = false;
    int rc, src;

    rc = exec_sql(s, "BEGIN EXCLUSIVE TRANSACTION", MIGRATION_TIMEOUT_MS, "migrate", d);
    if (rc < 0)
        goto out;
    in_tx = true;
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS \"%s\" (key text NOT NULL PRIMARY KEY, "
             "value text NOT NULL)",
             s->meta);
    rc = exec_sql(s, sql, MIGRATION_TIMEOUT_MS, "create metadata table", d);
    if (rc < 0)
        goto out;
    snprintf(sql, sizeof(sql), "SELECT value FROM \"%s\" WHERE key = '" MIGRATIONS_KEY "'",
             s->meta);
    src = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = db_err(s, src, "read schema version", d);
        goto out;
    }
    src = step(s, st);
    if (src == SQLITE_ROW) {
        const char *v = (const char *)sqlite3_column_text(st, 0);
        if (v == NULL || str_u64(v, strlen(v), 1000000, &level) < 0) {
            rc = err_set(d, ERR_RESOLVE_DB, "%s: invalid schema version \"%.32s\" in table %s",
                         s->shown, v ? v : "", s->meta);
            goto out;
        }
    } else if (src != SQLITE_DONE) {
        rc = db_err(s, src, "read schema version", d);
        goto out;
    }
    if (level > SCHEMA_VERSION) {
        rc = err_set(d, ERR_RESOLVE_DB, "%s: schema version %llu is newer than this build's %d",
                     s->shown, (unsigned long long)level, SCHEMA_VERSION);
        goto out;
    }
    if (level < 1) {
        snprintf(sql, sizeof(sql),
                 "CREATE TABLE \"%s\" (registration_id TEXT NOT NULL PRIMARY KEY, "
                 "address TEXT NOT NULL, app_id TEXT NOT NULL, namespace TEXT NOT NULL, "
                 "last_update INTEGER NOT NULL);"
                 "CREATE UNIQUE INDEX \"%s_address_idx\" ON \"%s\" (address);"
                 "CREATE INDEX \"%s_last_update_idx\" ON \"%s\" (last_update);",
                 s->table, s->table, s->table, s->table, s->table);
        rc = exec_sql(s, sql, MIGRATION_TIMEOUT_MS, "create hosts table", d);
        if (rc < 0)
            goto out;
        snprintf(sql, sizeof(sql),
                 "REPLACE INTO \"%s\" (key, value) VALUES ('" MIGRATIONS_KEY "', '1')", s->meta);
        rc = exec_sql(s, sql, MIGRATION_TIMEOUT_MS, "record schema version", d);
        if (rc < 0)
            goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    rc = exec_sql(s, "COMMIT TRANSACTION", MIGRATION_TIMEOUT_MS, "migrate", d);
    if (rc == 0)
        in_tx = false;
out:
    sqlite3_finalize(st);
    if (in_tx)
        sqlite3_exec(s->db, "ROLLBACK TRANSACTION", NULL, NULL, NULL);
    return rc;
}

static int prepare(resolve__sqlite_t *s, sqlite3_stmt **st, const char *what, err_detail_t *d,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int prepare(resolve__sqlite_t *s, sqlite3_stmt **st, const char *what, err_detail_t *d,
                   const char *fmt, ...)
{
    char sql[SQL_MAX];
    va_list ap;
    int src;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    src = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, st, NULL);
    return src == SQLITE_OK ? 0 : db_err(s, src, what, d);
}

/* Prepares the six statements the backend runs for its whole life. Times are the database's
 * clock in whole seconds (unixepoch), as in Dapr, so every sidecar on the file agrees. */
static int prepare_all(resolve__sqlite_t *s, err_detail_t *d)
{
    const char *t = s->table, *m = s->meta;
    int rc;

    rc = prepare(s, &s->st_register, "prepare register", d,
                 "REPLACE INTO \"%s\" (registration_id, address, app_id, namespace, last_update) "
                 "VALUES (?1, ?2, ?3, ?4, unixepoch(CURRENT_TIMESTAMP))",
                 t);
    if (rc == 0)
        rc = prepare(s, &s->st_heartbeat, "prepare heartbeat", d,
                     "UPDATE \"%s\" SET last_update = unixepoch(CURRENT_TIMESTAMP) "
                     "WHERE registration_id = ?1 AND address = ?2",
                     t);
    /* A random live row: pick its ROWID in a subquery so only one row is sorted by RANDOM(). */
    if (rc == 0)
        rc = prepare(s, &s->st_lookup, "prepare lookup", d,
                     "SELECT address FROM \"%s\" WHERE ROWID = (SELECT ROWID FROM \"%s\" "
                     "WHERE app_id = ?1 AND namespace = ?2 "
                     "AND unixepoch(CURRENT_TIMESTAMP) - last_update < ?3 "
                     "ORDER BY RANDOM() LIMIT 1)",
                     t, t);
    if (rc == 0)
        rc = prepare(s, &s->st_unregister, "prepare unregister", d,
                     "DELETE FROM \"%s\" WHERE registration_id = ?1 AND address = ?2", t);
    /* Claims the cleanup for this round: changes() is 1 only if no process cleaned up within
     * ?1 seconds (or the recorded time is unreadable). */
    if (rc == 0)
        rc = prepare(s, &s->st_gc_mark, "prepare cleanup", d,
                     "INSERT INTO \"%s\" (key, value) VALUES ('" LAST_CLEANUP_KEY
                     "', CURRENT_TIMESTAMP) ON CONFLICT (key) DO UPDATE SET value = "
                     "CURRENT_TIMESTAMP WHERE unixepoch(value) IS NULL OR "
                     "unixepoch(CURRENT_TIMESTAMP) - unixepoch(value) >= ?1",
                     m);
    if (rc == 0)
        rc =
            prepare(s, &s->st_gc_delete, "prepare cleanup", d,
                    "DELETE FROM \"%s\" WHERE unixepoch(CURRENT_TIMESTAMP) - last_update >= ?1", t);
    return rc;
}

/*
 * Opens the backend:
 * 1. read and validate the configuration; make the home directory for the default file;
 * 2. open the database with busy timeout and query deadline, and pick the journal mode;
 * 3. run the migrations and prepare the statements.
 */
int resolve__sqlite_new(const resolve__conf_t *c, const char *home, resolve__sqlite_t **out,
                        err_detail_t *d)
{
    resolve__sqlite_t *s = mem_calloc(sizeof(*s));
    bool memory = false, wal = true;
    const char *slash;
    int rc, src;

    rc = read_config(s, c, home, &memory, &wal, d);
    if (rc < 0)
        goto out;
    slash = strrchr(s->path, '/');
    s->shown = slash != NULL && strlen(s->path) > 64 ? slash + 1 : s->path;
    if (memory)
        log_warn("resolve", "name resolution uses an in-memory SQLite database; other apps' "
                            "sidecars will not be found");
    src = sqlite3_open_v2(s->path, &s->db,
                          SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_URI, NULL);
    if (src != SQLITE_OK) {
        rc = db_err(s, src, "open", d);
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, (int)s->busy_ms);
    sqlite3_progress_handler(s->db, 1000, on_progress, s);
    rc = exec_sql(s,
                  memory ? "PRAGMA journal_mode=MEMORY"
                         : (wal ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode=DELETE"),
                  MIGRATION_TIMEOUT_MS, "set journal mode", d);
    if (rc == 0)
        rc = migrate(s, d);
    if (rc == 0)
        rc = prepare_all(s, d);
    if (rc < 0)
        goto out;
    *out = s;
    s = NULL;
out:
    resolve__sqlite_free(s);
    return rc;
}

/* Deletes our row; returns 0 also when it was already gone. */
static int unregister(resolve__sqlite_t *s, err_detail_t *d)
{
    int src;

    sqlite3_bind_text(s->st_unregister, 1, s->reg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_unregister, 2, s->addr, -1, SQLITE_STATIC);
    src = step(s, s->st_unregister);
    done_with(s->st_unregister);
    if (src != SQLITE_DONE)
        return db_err(s, src, "unregister", d);
    s->registered = false;
    return 0;
}

/* Runs the cleanup if it is due locally; failures are logged, never returned. */
static void cleanup_if_due(resolve__sqlite_t *s)
{
    err_detail_t d = {{0}};

    if (s->cleanup_ms == 0 || now_ms() < s->next_cleanup_ms)
        return;
    if (resolve__sqlite_cleanup(s, &d) < 0)
        log_warn("resolve", "cleanup of stale registrations failed: %s", d.msg);
}

int resolve__sqlite_register(resolve__sqlite_t *s, const char *app_id, const char *ns,
                             const char *addr, err_detail_t *d)
{
    int rc, src;

    if (s->registered) {
        rc = unregister(s, d);
        if (rc < 0)
            return rc;
    }
    rc = random_uuid(s->reg_id, d);
    if (rc < 0)
        return rc;
    snprintf(s->addr, sizeof(s->addr), "%s", addr);
    /* REPLACE: the unique address index makes a new sidecar on a reused port take over the row
     * a crashed one left behind. */
    sqlite3_bind_text(s->st_register, 1, s->reg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_register, 2, s->addr, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_register, 3, app_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_register, 4, ns, -1, SQLITE_STATIC);
    src = step(s, s->st_register);
    done_with(s->st_register);
    if (src != SQLITE_DONE)
        return db_err(s, src, "register", d);
    s->registered = true;
    cleanup_if_due(s);
    return 0;
}

int resolve__sqlite_heartbeat(resolve__sqlite_t *s, err_detail_t *d)
{
    int src;

    if (!s->registered)
        return err_set(d, ERR_INVAL, "heartbeat: not registered");
    sqlite3_bind_text(s->st_heartbeat, 1, s->reg_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_heartbeat, 2, s->addr, -1, SQLITE_STATIC);
    src = step(s, s->st_heartbeat);
    done_with(s->st_heartbeat);
    if (src != SQLITE_DONE)
        return db_err(s, src, "heartbeat", d);
    if (sqlite3_changes(s->db) == 0) {
        s->registered = false;
        return err_set(d, ERR_RESOLVE_LOST,
                       "%s: host registration lost: no row for %s (id %s) in table %s", s->shown,
                       s->addr, s->reg_id, s->table);
    }
    cleanup_if_due(s);
    return 0;
}

int resolve__sqlite_lookup(resolve__sqlite_t *s, const char *app_id, const char *ns, char *out,
                           size_t out_len, err_detail_t *d)
{
    const char *addr;
    size_t n;
    int rc = 0, src;

    sqlite3_bind_text(s->st_lookup, 1, app_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s->st_lookup, 2, ns, -1, SQLITE_STATIC);
    sqlite3_bind_int64(s->st_lookup, 3, (sqlite3_int64)(s->update_ms / 1000));
    src = step(s, s->st_lookup);
    if (src == SQLITE_DONE) {
        rc =
            err_set(d, ERR_INVOKE_NO_HOST,
                    "no host found with the given ID \"%.64s\" in namespace \"%.64s\"", app_id, ns);
        goto out;
    }
    if (src != SQLITE_ROW) {
        rc = db_err(s, src, "lookup", d);
        goto out;
    }
    addr = (const char *)sqlite3_column_text(s->st_lookup, 0);
    n = addr ? strlen(addr) : 0;
    if (n == 0) {
        rc = err_set(d, ERR_RESOLVE_DB, "%s: empty address registered for \"%.64s\"", s->shown,
                     app_id);
        goto out;
    }
    if (n >= out_len) {
        rc = err_set(d, ERR_TOO_LARGE, "address of \"%.64s\" does not fit in %zu bytes", app_id,
                     out_len);
        goto out;
    }
    memcpy(out, addr, n + 1);
out:
    done_with(s->st_lookup);
    return rc;
}

int resolve__sqlite_cleanup(resolve__sqlite_t *s, err_detail_t *d)
{
    int src;

    if (s->cleanup_ms == 0)
        return 0;
    s->next_cleanup_ms = now_ms() + s->cleanup_ms;
    sqlite3_bind_int64(s->st_gc_mark, 1, (sqlite3_int64)(s->cleanup_ms / 1000));
    src = step(s, s->st_gc_mark);
    done_with(s->st_gc_mark);
    if (src != SQLITE_DONE)
        return db_err(s, src, "cleanup", d);
    if (sqlite3_changes(s->db) == 0)
        return 0; /* another process (or we) cleaned up recently */
    sqlite3_bind_int64(s->st_gc_delete, 1, (sqlite3_int64)(s->update_ms / 1000));
    src = step(s, s->st_gc_delete);
    done_with(s->st_gc_delete);
    if (src != SQLITE_DONE)
        return db_err(s, src, "cleanup", d);
    if (sqlite3_changes(s->db) > 0)
        log_info("resolve", "removed %d stale registrations", sqlite3_changes(s->db));
    return 0;
}

/* Refresh early enough that a row never looks stale to a reader: a heartbeat may take up to
 * `timeout`, and last_update is truncated to whole seconds, hence the extra second. */
int resolve__sqlite_heartbeat_ms(const resolve__sqlite_t *s)
{
    uint64_t ms = s->update_ms - s->timeout_ms - 1000;

    return ms < MIN_HEARTBEAT_MS ? MIN_HEARTBEAT_MS : (int)ms;
}

void resolve__sqlite_free(resolve__sqlite_t *s)
{
    err_detail_t d = {{0}};

    if (s == NULL)
        return;
    if (s->registered && unregister(s, &d) < 0)
        log_warn("resolve", "could not remove our registration: %s", d.msg);
    sqlite3_finalize(s->st_register);
    sqlite3_finalize(s->st_heartbeat);
    sqlite3_finalize(s->st_lookup);
    sqlite3_finalize(s->st_unregister);
    sqlite3_finalize(s->st_gc_mark);
    sqlite3_finalize(s->st_gc_delete);
    if (s->db != NULL)
        sqlite3_close(s->db);
    mem_free(s);
}
