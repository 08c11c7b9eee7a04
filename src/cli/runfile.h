/*
 * runfile — the registry of running sidecars and apps behind `outrigger list`.
 *
 * Job: one JSON file per running instance, $OUTRIGGER_HOME/run/<app-id>.<pid>.json, where <pid>
 * is the owner: the `outrigger run` process, or a bare `outrigger sidecar`. The owner writes the
 * file when it is up and removes it when it stops; readers delete files whose owner is gone.
 * Ownership: runfile_write borrows the entry. runfile_list fills a runfile_list_t whose entries
 * and strings it owns until runfile_list_free. Paths returned through char ** are owned by the
 * caller (mem_free).
 * Threading: blocking file I/O; call at start-up or shut-down, never from a request path.
 * Errors: ERR_INVAL (bad argument), ERR_IO (file system, with the path and reason in the detail),
 * ERR_PARSE (a timestamp that is not RFC 3339).
 */
#ifndef OUTRIGGER_CLI_RUNFILE_H
#define OUTRIGGER_CLI_RUNFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

/* Longest command line kept in an entry; longer ones are cut. */
#define RUNFILE_COMMAND_MAX 4096
/* Most entries `list` reads; the rest are ignored. */
#define RUNFILE_MAX_ENTRIES 1024

typedef struct runfile_entry {
    const char *app_id;     /* appId */
    const char *namespace_; /* namespace */
    const char *command;    /* command: the app's command line, "" for a bare sidecar */
    int http_port;          /* httpPort */
    int internal_port;      /* internalPort; 0 = not known */
    int metrics_port;       /* metricsPort */
    int app_port;           /* appPort; 0 = none */
    long sidecar_pid;       /* sidecarPid */
    long app_pid;           /* appPid; 0 = none (bare sidecar) */
    long cli_pid;           /* cliPid: the `run` process; 0 = none */
    int64_t created;        /* created, Unix seconds (RFC 3339 UTC in the file) */
    long owner_pid;         /* the pid in the file name; filled by runfile_list */
} runfile_entry_t;

typedef struct runfile_list {
    runfile_entry_t *items; /* owned; strings point into docs */
    size_t count;           /* entries in items */
    void **docs;            /* owned: the parsed documents (json_t *) behind the strings */
} runfile_list_t;

/**
 * Writes the entry of @p owner_pid atomically (temporary file, then rename), creating
 * <home>/run/ (mode 0700) as needed. On success *@p path_out (may be NULL) receives the path for
 * runfile_remove.
 */
int runfile_write(const char *home, const runfile_entry_t *e, long owner_pid, char **path_out,
                  err_detail_t *d) __attribute__((warn_unused_result));

/** Deletes the file at @p path. A missing file is not an error. */
int runfile_remove(const char *path);

/**
 * Reads every entry under <home>/run/, deleting those whose owner process is gone and skipping
 * files that cannot be read. A missing folder gives an empty list. Entries are sorted by created
 * time, then app id.
 */
int runfile_list(const char *home, runfile_list_t *out, err_detail_t *d)
    __attribute__((warn_unused_result));

/** Releases a list filled by runfile_list. Safe on zeroed storage. */
void runfile_list_free(runfile_list_t *l);

/** True when a process with id @p pid exists (it may belong to another user). */
bool runfile_pid_alive(long pid);

/** Writes @p t as "YYYY-MM-DDTHH:MM:SSZ" (UTC) into @p out, which holds at least 32 bytes. */
void runfile_time_format(int64_t t, char *out, size_t n);

/** Parses the form runfile_time_format writes (also with fractional seconds or an offset). */
int runfile_time_parse(const char *s, int64_t *out) __attribute__((warn_unused_result));

/** Writes an age as `dapr list` shows it: "42s", "5m", "3h", "2d". */
void runfile_age_format(int64_t seconds, char *out, size_t n);

#endif
