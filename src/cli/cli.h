/*
 * cli — the command line: one flag table, its parser, and the commands `sidecar`, `run`, `list`,
 * `sentry`, `version` that main.c dispatches to.
 *
 * Job: turn argv (and the NAMESPACE / OUTRIGGER_HOME environment) into an invoke_opts_t (or, for
 * `sentry`, an identity_sentry_opts_t) plus the few CLI-only settings, print help generated from
 * the same table, and run the commands.
 * Ownership: cli_args_t is caller storage. String fields point into the argv given to
 * cli_args_parse (which must outlive the args) or into memory the args own; cli_args_free releases
 * the latter. cli_argv_t owns every string it holds.
 * Threading: main thread only; the commands install signal handlers and run their own loops.
 * Errors: cli_args_parse returns 0 or ERR_INVAL with a one-line explanation in the detail (the
 * caller prints "outrigger: <detail>" and exits with CLI_EXIT_USAGE). Commands return a process
 * exit code.
 */
#ifndef OUTRIGGER_CLI_H
#define OUTRIGGER_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/err.h"
#include "base/log.h"
#include "identity/identity.h"
#include "invoke/invoke.h"

/* Exit code for a command line that cannot be understood. */
#define CLI_EXIT_USAGE 2

/* Set in the environment of a sidecar started by `run` to run's pid: the sidecar then dies with
 * its parent and leaves the run registry entry to `run`. */
#define CLI_ENV_RUN_PARENT "OUTRIGGER_RUN_PARENT"

/* When set, `run` starts this executable as the sidecar instead of itself (tests use a fake). */
#define CLI_ENV_SIDECAR "OUTRIGGER_SIDECAR"

/* Which command a flag belongs to (bits). */
typedef enum cli_cmd {
    CLI_CMD_SIDECAR = 1 << 0,
    CLI_CMD_RUN = 1 << 1,
    CLI_CMD_LIST = 1 << 2,
    CLI_CMD_SENTRY = 1 << 3,
} cli_cmd_t;

typedef struct cli_args {
    invoke_opts_t opts;      /* the sidecar's options; strings borrowed from argv or owned below */
    const char *log_level;   /* --log-level, validated; default "info" */
    log_level_t level;       /* log_level parsed */
    bool log_as_json;        /* --log-as-json */
    bool enable_mtls;        /* --enable-mtls (see invoke_opts_t.mtls) */
    bool enable_api_logging; /* --enable-api-logging (see invoke_opts_t.api_logging) */
    bool enable_metrics;     /* --enable-metrics (see invoke_opts_t.metrics) */
    const char *output;      /* list --output / -o: "table" or "json" */
    bool help;               /* -h / --help was given; nothing else is checked then */
    char **command;          /* run: the app's argv (borrowed; command_argc entries), or NULL */
    int command_argc;        /* entries in command */
    uint64_t given;          /* bit i: flag table entry i was given (or marked by cli_args_mark) */
    char *home_owned;        /* owned: storage behind opts.home */
    char *app_id_owned;      /* owned: storage behind a generated opts.app_id, or NULL */
    identity_sentry_opts_t sentry; /* sentry: its options; strings borrowed or owned below */
    const char *allowed_uids;      /* sentry --allowed-uid: comma-separated, parsed into sentry */
    char *state_dir_owned;         /* owned: storage behind a defaulted sentry.state_dir */
} cli_args_t;

/** A growable NULL-terminated vector of owned strings (argv or environ for a child). */
typedef struct cli_argv {
    char **v;   /* owned; v[n] == NULL once anything was pushed */
    size_t n;   /* strings held */
    size_t cap; /* slots allocated, including the NULL */
} cli_argv_t;

/**
 * Parses the arguments that follow the command name. @p argv must stay valid while @p out is used.
 * Fills defaults (invoke_opts_defaults), then flags, then NAMESPACE and OUTRIGGER_HOME (or
 * ~/.outrigger). For `run`, "--" or the first argument that is not a flag starts the app command.
 * `sidecar` requires --app-id. On error @p out holds nothing to free and @p detail says why.
 */
int cli_args_parse(cli_cmd_t cmd, int argc, char **argv, cli_args_t *out, err_detail_t *detail)
    __attribute__((warn_unused_result));

/** Releases what cli_args_parse allocated. Safe on zeroed storage and after a failed parse. */
void cli_args_free(cli_args_t *a);

/** True when the long flag @p name (without "--") was given or marked. */
bool cli_args_given(const cli_args_t *a, const char *name);

/** Records that the long flag @p name now carries a value to pass on (see cli_args_render). */
void cli_args_mark(cli_args_t *a, const char *name);

/**
 * Appends "--name=value" for every given flag that command @p target accepts, in table order,
 * so that a child `outrigger sidecar` sees the same settings. Aborts only when memory runs out.
 */
void cli_args_render(const cli_args_t *a, cli_cmd_t target, cli_argv_t *out);

/** Prints the top-level usage. */
void cli_usage(FILE *f);

/** Prints the help of one command, generated from the flag table with each default. */
void cli_help(cli_cmd_t cmd, FILE *f);

/** Appends a copy of @p s. Aborts when memory runs out. */
void cli_argv_push(cli_argv_t *a, const char *s);

/** Appends a printf-formatted string. Aborts when memory runs out. */
void cli_argv_pushf(cli_argv_t *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Releases every string and the vector; leaves an empty vector. */
void cli_argv_free(cli_argv_t *a);

/** `outrigger sidecar [flags]`: runs invoke_sidecar_run, registered in the run registry. */
int cli_cmd_sidecar(int argc, char **argv);

/** `outrigger run [flags] [--] [CMD ARGS...]`: a sidecar plus the app beside it. */
int cli_cmd_run(int argc, char **argv);

/** `outrigger list [-o table|json]`: the sidecars and apps running on this machine. */
int cli_cmd_list(int argc, char **argv);

/** `outrigger sentry [rotate-root|activate-root|prune-roots|jwt] [flags]`: the CA, a rotation
 * step, or a JWT SVID fetched from the running sentry. */
int cli_cmd_sentry(int argc, char **argv);

/** `outrigger opa eval|test|bench`: the Rego engine offline (cli/opa.c). */
int cli_cmd_opa(int argc, char **argv);

/** `outrigger version`: the program and runtime API versions. */
int cli_cmd_version(int argc, char **argv);

#endif
