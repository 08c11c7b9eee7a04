/* `outrigger sentry`: run the CA, take one step of a root rotation, or fetch a JWT SVID. */
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/dur.h"
#include "base/str.h"
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

static void jwt_usage(FILE *f)
{
    fprintf(f,
            "Usage: outrigger sentry jwt --app-id ID --audience AUD [--audience AUD...] [flags]\n"
            "\n"
            "Asks the local sentry (on its Unix socket, as a sidecar does) for a JWT SVID whose\n"
            "sub is spiffe://<trust-domain>/ns/<namespace>/<ID> and whose aud holds each AUD,\n"
            "and prints the compact JWT on stdout. The sentry must be running.\n"
            "\n"
            "Flags:\n"
            "      --app-id string     The app id the token is for (required)\n"
            "      --namespace string  Its namespace (default $NAMESPACE, else \"default\")\n"
            "      --audience string   An audience (required; repeatable, at most %d)\n"
            "      --state-dir string  The sentry's folder (default $OUTRIGGER_HOME/sentry)\n"
            "      --socket string     The sentry's socket (default <state-dir>/sentry.sock)\n"
            "      --timeout duration  How long to wait for the sentry (default 5s)\n"
            "  -h, --help              Print this help\n",
            IDENTITY_MAX_AUDIENCES);
}

/* `outrigger sentry jwt`: fetches a JWT SVID through the local socket and prints it. Its flags
 * are its own (--app-id is a sidecar flag elsewhere), so it parses them here. */
static int jwt_cmd(int argc, char **argv)
{
    const char *app_id = NULL, *ns = NULL, *state_dir = NULL, *socket_path = NULL;
    const char *auds[IDENTITY_MAX_AUDIENCES];
    size_t naud = 0;
    int timeout_ms = 5000;
    char home[4096], dir[4096], sock[4096];
    identity_client_opts_t co = {0};
    identity_svid_req_t req = {0};
    identity_svid_t *svid = NULL;
    err_detail_t d = {""};
    const char *env;
    int rc;

    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i], *name, *eq, *v;
        size_t n;

        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) {
            jwt_usage(stdout);
            return 0;
        }
        if (strncmp(arg, "--", 2) != 0) {
            fprintf(stderr,
                    "outrigger: unexpected argument \"%s\"\nRun 'outrigger sentry jwt --help' "
                    "for usage.\n",
                    arg);
            return CLI_EXIT_USAGE;
        }
        name = arg + 2;
        eq = strchr(name, '=');
        n = eq ? (size_t)(eq - name) : strlen(name);
        if (eq != NULL) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "outrigger: --%.*s: needs a value\n", (int)n, name);
            return CLI_EXIT_USAGE;
        }
        if (*v == '\0') {
            fprintf(stderr, "outrigger: --%.*s: must not be empty\n", (int)n, name);
            return CLI_EXIT_USAGE;
        }
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
        if (IS("app-id")) {
            app_id = v;
        } else if (IS("namespace")) {
            ns = v;
        } else if (IS("audience")) {
            if (naud == IDENTITY_MAX_AUDIENCES) {
                fprintf(stderr, "outrigger: --audience: at most %d may be given\n",
                        IDENTITY_MAX_AUDIENCES);
                return CLI_EXIT_USAGE;
            }
            auds[naud++] = v;
        } else if (IS("state-dir")) {
            state_dir = v;
        } else if (IS("socket")) {
            socket_path = v;
        } else if (IS("timeout")) {
            /* Whole seconds ("5"), or a Go duration ("5s", "1500ms"). */
            uint64_t secs, ms;
            if (str_u64(v, strlen(v), 300, &secs) == 0)
                ms = secs * 1000;
            else if (dur_parse_ms(v, strlen(v), 300000, &ms) < 0)
                ms = 0;
            if (ms == 0) {
                fprintf(stderr,
                        "outrigger: --timeout: expected seconds (1 to 300) or a duration, got "
                        "\"%s\"\n",
                        v);
                return CLI_EXIT_USAGE;
            }
            timeout_ms = (int)ms;
        } else {
            fprintf(stderr,
                    "outrigger: unknown flag --%.*s for \"sentry jwt\"\nRun 'outrigger sentry "
                    "jwt --help' for usage.\n",
                    (int)n, name);
            return CLI_EXIT_USAGE;
        }
#undef IS
    }
    if (app_id == NULL || naud == 0) {
        fprintf(stderr, "outrigger: sentry jwt: --app-id and at least one --audience are "
                        "required\nRun 'outrigger sentry jwt --help' for usage.\n");
        return CLI_EXIT_USAGE;
    }
    if (ns == NULL) {
        env = getenv("NAMESPACE");
        ns = env != NULL && *env != '\0' ? env : "default";
    }
    /* The socket: --socket, else <state-dir>/sentry.sock, else <home>/sentry/sentry.sock. */
    env = getenv("OUTRIGGER_HOME");
    if (env != NULL && *env != '\0') {
        rc = snprintf(home, sizeof(home), "%s", env);
    } else {
        env = getenv("HOME");
        if (env == NULL || *env == '\0') {
            fprintf(stderr, "outrigger: sentry jwt: cannot find the home folder; set "
                            "OUTRIGGER_HOME\n");
            return 1;
        }
        rc = snprintf(home, sizeof(home), "%s/.outrigger", env);
    }
    if (rc < 0 || (size_t)rc >= sizeof(home))
        goto too_long;
    if (socket_path == NULL) {
        if (state_dir == NULL) {
            if (identity_default_state_dir(home, dir, sizeof(dir)) < 0)
                goto too_long;
            state_dir = dir;
        }
        rc = snprintf(sock, sizeof(sock), "%s/sentry.sock", state_dir);
        if (rc < 0 || (size_t)rc >= sizeof(sock))
            goto too_long;
        socket_path = sock;
    }
    co.home = home;
    co.socket_path = socket_path;
    co.timeout_ms = timeout_ms;
    req.app_id = app_id;
    req.namespace_ = ns;
    req.jwt_audiences = auds;
    req.jwt_audience_count = naud;
    rc = identity_svid_fetch(&co, &req, &svid, &d);
    if (rc < 0) {
        fprintf(stderr, "outrigger: sentry jwt: %s%s\n", d.msg[0] ? d.msg : err_str(rc),
                rc == ERR_IDENTITY_SENTRY ? " (is 'outrigger sentry' running?)" : "");
        return 1;
    }
    if (identity_svid_jwt(svid) == NULL) {
        fprintf(stderr, "outrigger: sentry jwt: the sentry returned no JWT\n");
        identity_svid_unref(svid);
        return 1;
    }
    printf("%s\n", identity_svid_jwt(svid));
    identity_svid_unref(svid);
    return fflush(stdout) == 0 ? 0 : 1;
too_long:
    fprintf(stderr, "outrigger: sentry jwt: path too long\n");
    return 1;
}

int cli_cmd_sentry(int argc, char **argv)
{
    const char *verb = NULL;
    identity_sentry_t *s = NULL;
    err_detail_t d = {""};
    cli_args_t a;
    int code = 0;

    if (argc > 0 && strcmp(argv[0], "jwt") == 0)
        return jwt_cmd(argc - 1, argv + 1);
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
