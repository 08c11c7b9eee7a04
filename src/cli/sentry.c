/* `outrigger sentry`: run the CA, or take one step of a root rotation. */
#include "cli/cli.h"

#include <signal.h>
#include <string.h>

#include "base/alloc.h"
#include "identity/identity.h"

/* The running sentry, for the signal handler (one per process). */
static identity_sentry_t *running;

static void on_signal(int sig)
{
    (void)sig;
    /* identity_sentry_stop only writes to a pipe: async-signal-safe. */
    identity_sentry_stop(running);
}

/* Runs a rotation step @p verb on the state dir of @p a. Returns the exit code. */
static int rotate(const char *verb, const cli_args_t *a)
{
    const char *dir = a->sentry.state_dir, *td = a->sentry.trust_domain;
    err_detail_t d = {""};
    int rc;

    if (strcmp(verb, "rotate-root") == 0) {
        rc = identity_ca_stage_root(dir, td, &d);
        if (rc == 0)
            printf("Staged a new root in %s; the trust bundle now holds it.\n"
                   "Wait at least one workload certificate TTL (every sidecar renews and fetches "
                   "the bundle), then run 'outrigger sentry activate-root'.\n",
                   dir);
    } else if (strcmp(verb, "activate-root") == 0) {
        rc = identity_ca_activate_root(dir, td, &d);
        if (rc == 0)
            printf("The staged root now signs; the old root stays trusted.\n"
                   "Wait at least one workload certificate TTL, then run 'outrigger sentry "
                   "prune-roots'.\n");
    } else {
        rc = identity_ca_prune_roots(dir, td, &d);
        if (rc >= 0)
            printf("Removed %d root(s) from the trust bundle in %s.\n", rc, dir);
    }
    if (rc < 0) {
        fprintf(stderr, "outrigger: sentry %s: %s\n", verb, d.msg[0] ? d.msg : err_str(rc));
        return 1;
    }
    return 0;
}

int cli_cmd_sentry(int argc, char **argv)
{
    const char *verb = NULL;
    identity_sentry_t *s = NULL;
    err_detail_t d = {""};
    cli_args_t a;
    int code = 0;

    if (argc > 0 && argv[0][0] != '-') {
        verb = argv[0];
        if (strcmp(verb, "rotate-root") != 0 && strcmp(verb, "activate-root") != 0 &&
            strcmp(verb, "prune-roots") != 0) {
            fprintf(stderr,
                    "outrigger: unknown sentry command \"%s\"\nRun 'outrigger sentry "
                    "--help' for usage.\n",
                    verb);
            return CLI_EXIT_USAGE;
        }
        argc--;
        argv++;
    }
    if (cli_args_parse(CLI_CMD_SENTRY, argc, argv, &a, &d) < 0) {
        fprintf(stderr, "outrigger: %s\nRun 'outrigger sentry --help' for usage.\n", d.msg);
        return CLI_EXIT_USAGE;
    }
    if (a.help) {
        cli_help(CLI_CMD_SENTRY, stdout);
        goto out;
    }
    log_init(a.level, a.log_as_json, "sentry");
    if (verb != NULL) {
        code = rotate(verb, &a);
        goto out;
    }
    if (identity_sentry_new(&a.sentry, &s, &d) < 0) {
        log_error("sentry", "cannot start: %s", d.msg);
        code = 1;
        goto out;
    }
    running = s;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    code = identity_sentry_run(s) < 0 ? 1 : 0;
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    running = NULL;
    identity_sentry_free(s);
out:
    cli_args_free(&a);
    return code;
}
