#include "cli/cli.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/str.h"

/* Longest app id accepted: Sentry refuses ids over 64 bytes, and the id names registry files. */
#define CLI_APP_ID_MAX 64

typedef enum flag_type {
    FT_STR,     /* const char *, optionally checked */
    FT_PORT,    /* int, 1..65535 */
    FT_INT,     /* int within [min, max] */
    FT_SECONDS, /* int seconds within [min, max]; "90", "90s", "15m", "1h" */
    FT_BOOL,    /* bool; "--flag" alone means true */
    FT_PATHS,   /* the repeatable --resources-path list */
} flag_type_t;

struct cli_flag;
typedef int (*flag_check_fn)(const char *spelled, const char *v, err_detail_t *d);

/* FL_RUN_FREE: `run` picks a free loopback port when the flag is absent. */
#define FL_RUN_FREE 1u

typedef struct cli_flag {
    const char *name;     /* long name without "--" */
    const char *alias;    /* second long name, or NULL */
    char short_name;      /* one-letter form (run and list only), or 0 */
    flag_type_t type;     /* how the value is parsed and stored */
    unsigned cmds;        /* CLI_CMD_* bits of the commands accepting it */
    unsigned flags;       /* FL_* bits */
    size_t off;           /* offset of the value in cli_args_t */
    int min, max;         /* FT_INT / FT_SECONDS bounds */
    const char *def_text; /* default shown in help when the value is 0 or NULL */
    flag_check_fn check;  /* extra validation for FT_STR, or NULL */
    const char *help;     /* one line for --help */
} cli_flag_t;

static int check_app_id(const char *spelled, const char *v, err_detail_t *d);
static int check_protocol(const char *spelled, const char *v, err_detail_t *d);
static int check_log_level(const char *spelled, const char *v, err_detail_t *d);
static int check_output(const char *spelled, const char *v, err_detail_t *d);
static int check_nonempty(const char *spelled, const char *v, err_detail_t *d);
static int check_trust_domain(const char *spelled, const char *v, err_detail_t *d);
static int check_uids(const char *spelled, const char *v, err_detail_t *d);
static int check_issuer(const char *spelled, const char *v, err_detail_t *d);

#define SR (CLI_CMD_SIDECAR | CLI_CMD_RUN)
#define SE CLI_CMD_SENTRY
#define OFF(field) offsetof(cli_args_t, field)

/* The one list of flags: parsing, validation, help and the argv handed to a child sidecar all
 * come from here. Defaults come from invoke_opts_defaults so they have a single source. */
static const cli_flag_t flags[] = {
    {"app-id", NULL, 'a', FT_STR, SR, 0, OFF(opts.app_id), 0, 0, NULL, check_app_id,
     "The id of the application, used for service discovery"},
    {"app-port", NULL, 'p', FT_PORT, SR, 0, OFF(opts.app_port), 0, 0, "none: no app channel", NULL,
     "The port the application listens on"},
    {"app-channel-address", NULL, 0, FT_STR, SR, 0, OFF(opts.app_channel_address), 0, 0, NULL,
     check_nonempty, "The network address the application listens on"},
    {"app-protocol", NULL, 'P', FT_STR, SR, 0, OFF(opts.app_protocol), 0, 0, NULL, check_protocol,
     "The protocol the application speaks (only http for now)"},
    {"dapr-http-port", NULL, 'H', FT_PORT, SR, FL_RUN_FREE, OFF(opts.http_port), 0, 0, NULL, NULL,
     "The HTTP port of the Dapr API"},
    {"dapr-internal-port", "dapr-internal-grpc-port", 'I', FT_PORT, SR, FL_RUN_FREE,
     OFF(opts.internal_port), 0, 0, "derived from the app id", NULL,
     "The port for calls between sidecars"},
    {"metrics-port", NULL, 'M', FT_PORT, SR, FL_RUN_FREE, OFF(opts.metrics_port), 0, 0, NULL, NULL,
     "The port of the Prometheus metrics endpoint"},
    {"dapr-listen-addresses", NULL, 0, FT_STR, SR, 0, OFF(opts.listen_address), 0, 0, NULL,
     check_nonempty, "The address the Dapr API listens on"},
    {"resources-path", "components-path", 'd', FT_PATHS, SR, 0, OFF(opts.resources_paths), 0, 0,
     "none", NULL, "A folder of resource YAML files (repeatable)"},
    {"config", NULL, 'c', FT_STR, SR, 0, OFF(opts.config_path), 0, 0, "none", check_nonempty,
     "A Configuration resource file"},
    {"namespace", NULL, 0, FT_STR, SR, 0, OFF(opts.namespace_), 0, 0, NULL, check_nonempty,
     "The namespace of the app (else $NAMESPACE)"},
    {"log-level", NULL, 0, FT_STR, SR | SE, 0, OFF(log_level), 0, 0, NULL, check_log_level,
     "One of debug, info, warn, error, fatal"},
    {"log-as-json", NULL, 0, FT_BOOL, SR | SE, 0, OFF(log_as_json), 0, 0, NULL, NULL,
     "Write logs as one JSON object per line"},
    {"enable-api-logging", NULL, 0, FT_BOOL, SR, 0, OFF(enable_api_logging), 0, 0, NULL, NULL,
     "Log one line per Dapr API call (default: the Configuration's logging.apiLogging.enabled)"},
    {"enable-metrics", NULL, 0, FT_BOOL, SR, 0, OFF(enable_metrics), 0, 0, NULL, NULL,
     "Serve Prometheus metrics on --metrics-port (default true; the Configuration's "
     "metrics.enabled: false also turns them off)"},
    {"enable-mtls", NULL, 0, FT_BOOL, SR, 0, OFF(enable_mtls), 0, 0, NULL, NULL,
     "mTLS between sidecars with SPIFFE identities from the local sentry (default on; "
     "--enable-mtls=false turns it off)"},
    {"workers", NULL, 0, FT_INT, SR, 0, OFF(opts.workers), 0, 1024, "one per core", NULL,
     "Event-loop threads"},
    {"max-connections", NULL, 0, FT_INT, SR, 0, OFF(opts.max_connections), 1, 1000000, NULL, NULL,
     "Open connections per worker"},
    {"dapr-graceful-shutdown-seconds", NULL, 0, FT_INT, SR, 0, OFF(opts.graceful_shutdown_seconds),
     0, 3600, NULL, NULL, "Seconds to finish in-flight requests on SIGTERM"},
    {"stream-idle-timeout", NULL, 0, FT_SECONDS, SR, 0, OFF(opts.stream_idle_timeout_s), 1, 604800,
     NULL, NULL, "Idle timeout of streamed responses, in seconds (or 15m, 1h)"},
    {"output", NULL, 'o', FT_STR, CLI_CMD_LIST, 0, OFF(output), 0, 0, NULL, check_output,
     "Output format: table or json"},
    {"trust-domain", NULL, 0, FT_STR, SE, 0, OFF(sentry.trust_domain), 0, 0, NULL,
     check_trust_domain, "The trust domain of the identities issued"},
    {"state-dir", NULL, 0, FT_STR, SE, 0, OFF(sentry.state_dir), 0, 0, "$OUTRIGGER_HOME/sentry",
     check_nonempty, "The folder holding the CA's keys, trust bundle and socket"},
    {"workload-cert-ttl", NULL, 0, FT_SECONDS, SE, 0, OFF(sentry.workload_cert_ttl_s), 10, 31536000,
     NULL, NULL, "Lifetime of workload certificates, in seconds (or 20s, 15m, 24h)"},
    {"allowed-clock-skew", NULL, 0, FT_SECONDS, SE, 0, OFF(sentry.allowed_clock_skew_s), 0, 86400,
     NULL, NULL, "How far certificates and JWTs are backdated, in seconds (or 15m)"},
    {"jwt-ttl", NULL, 0, FT_SECONDS, SE, 0, OFF(sentry.jwt_ttl_s), 10, 86400, NULL, NULL,
     "Lifetime of JWT SVIDs, in seconds (or 5m)"},
    {"socket", NULL, 0, FT_STR, SE, 0, OFF(sentry.socket_path), 0, 0, "<state-dir>/sentry.sock",
     check_nonempty, "The Unix socket local sidecars ask"},
    {"allowed-uid", NULL, 0, FT_STR, SE, 0, OFF(allowed_uids), 0, 0, "the sentry's own uid",
     check_uids,
     "Comma-separated uids whose processes may ask on the socket (replaces the "
     "default)"},
    {"join-token-file", NULL, 0, FT_STR, SE, 0, OFF(sentry.join_token_file), 0, 0, "none",
     check_nonempty, "Join tokens for remote sidecars; enables the TCP listener"},
    {"listen-address", NULL, 0, FT_STR, SE, 0, OFF(sentry.listen_address), 0, 0, NULL,
     check_nonempty, "Numeric address of the TCP listener for join-token requests"},
    {"port", NULL, 0, FT_PORT, SE, 0, OFF(sentry.port), 0, 0, NULL, NULL,
     "Port of the TCP listener for join-token requests"},
    {"jwks-port", NULL, 0, FT_PORT, SE, 0, OFF(sentry.jwks_port), 0, 0, "none: not served", NULL,
     "Port serving the JWKS and OIDC discovery over HTTPS"},
    {"jwks-address", NULL, 0, FT_STR, SE, 0, OFF(sentry.jwks_address), 0, 0, NULL, check_nonempty,
     "Numeric address of the JWKS server"},
    {"jwt-issuer", NULL, 0, FT_STR, SE, 0, OFF(sentry.jwt_issuer), 0, 0,
     "https://localhost:<jwks-port>", check_issuer, "The iss claim of JWT SVIDs"},
};

#define NFLAGS (sizeof(flags) / sizeof(flags[0]))
_Static_assert(sizeof(flags) / sizeof(flags[0]) <= 64, "cli_args_t.given has 64 bits");

static int check_nonempty(const char *spelled, const char *v, err_detail_t *d)
{
    if (*v == '\0')
        return err_set(d, ERR_INVAL, "%s: must not be empty", spelled);
    return 0;
}

/* App ids name registry files and appear in URLs, so only a safe character set is accepted. */
static int check_app_id(const char *spelled, const char *v, err_detail_t *d)
{
    size_t n = strlen(v);

    if (n == 0 || n > CLI_APP_ID_MAX)
        return err_set(d, ERR_INVAL, "%s: expected 1 to %d characters, got %zu", spelled,
                       CLI_APP_ID_MAX, n);
    for (size_t i = 0; i < n; i++) {
        char c = v[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || (c == '.' && i > 0)))
            return err_set(d, ERR_INVAL,
                           "%s: \"%s\" may only hold letters, digits, '-', '_' and '.'", spelled,
                           v);
    }
    return 0;
}

static int check_trust_domain(const char *spelled, const char *v, err_detail_t *d)
{
    char uri[SPIFFE_ID_MAX + 1];

    if (spiffe_id_format(v, "x", "x", uri, sizeof(uri)) < 0)
        return err_set(d, ERR_INVAL,
                       "%s: \"%s\" is not a valid trust domain (lower-case letters, digits, '.', "
                       "'-', '_')",
                       spelled, v);
    return 0;
}

static int check_issuer(const char *spelled, const char *v, err_detail_t *d)
{
    if (strncmp(v, "https://", 8) != 0 || v[8] == '\0')
        return err_set(d, ERR_INVAL, "%s: expected an https:// URL, got \"%s\"", spelled, v);
    return 0;
}

/* Parses "1000,1001" into @p out (at most IDENTITY_MAX_ALLOWED_UIDS); @p out may be NULL. */
static int parse_uids(const char *v, uid_t *out, size_t *count)
{
    size_t n = 0;

    for (const char *p = v;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        uint64_t uid;

        if (n >= IDENTITY_MAX_ALLOWED_UIDS || str_u64(p, len, UINT32_MAX - 1, &uid) < 0)
            return ERR_INVAL;
        if (out != NULL)
            out[n] = (uid_t)uid;
        n++;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    *count = n;
    return 0;
}

static int check_uids(const char *spelled, const char *v, err_detail_t *d)
{
    size_t n;

    if (parse_uids(v, NULL, &n) < 0)
        return err_set(d, ERR_INVAL, "%s: expected up to %d comma-separated uids, got \"%s\"",
                       spelled, IDENTITY_MAX_ALLOWED_UIDS, v);
    return 0;
}

static int check_protocol(const char *spelled, const char *v, err_detail_t *d)
{
    if (strcmp(v, "http") == 0)
        return 0;
    if (strcmp(v, "https") == 0 || strcmp(v, "h2c") == 0 || strcmp(v, "grpc") == 0 ||
        strcmp(v, "grpcs") == 0)
        return err_set(d, ERR_INVAL, "%s: \"%s\" is not supported yet; only \"http\" is", spelled,
                       v);
    return err_set(d, ERR_INVAL, "%s: expected http, https, h2c, grpc or grpcs, got \"%s\"",
                   spelled, v);
}

static int check_log_level(const char *spelled, const char *v, err_detail_t *d)
{
    log_level_t l;
    if (log_level_parse(v, &l) < 0)
        return err_set(d, ERR_INVAL, "%s: expected debug, info, warn, error or fatal, got \"%s\"",
                       spelled, v);
    return 0;
}

static int check_output(const char *spelled, const char *v, err_detail_t *d)
{
    if (strcmp(v, "table") == 0 || strcmp(v, "json") == 0)
        return 0;
    return err_set(d, ERR_INVAL, "%s: expected table or json, got \"%s\"", spelled, v);
}

/* Parses "N", "Ns", "Nm" or "Nh" into seconds within [min, max]. */
static int parse_seconds(const char *v, int min, int max, int *out)
{
    size_t n = strlen(v);
    uint64_t unit = 1, num;
    int rc;

    if (n > 1 && (v[n - 1] == 's' || v[n - 1] == 'm' || v[n - 1] == 'h')) {
        unit = v[n - 1] == 's' ? 1 : v[n - 1] == 'm' ? 60 : 3600;
        n--;
    }
    rc = str_u64(v, n, (uint64_t)max / unit, &num);
    if (rc < 0)
        return rc;
    if (num * unit < (uint64_t)min)
        return ERR_TOO_LARGE;
    *out = (int)(num * unit);
    return 0;
}

static int parse_bool(const char *v, bool *out)
{
    if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0) {
        *out = true;
        return 0;
    }
    if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0) {
        *out = false;
        return 0;
    }
    return ERR_PARSE;
}

/* Stores @p v into the field of @p f, or explains in @p d why it cannot. @p spelled is the flag as
 * the user typed it, so the message points at what they wrote. */
static int apply(cli_args_t *a, const cli_flag_t *f, const char *spelled, const char *v,
                 err_detail_t *d)
{
    char *field = (char *)a + f->off;
    uint64_t num;
    int port, secs, rc = 0;
    bool b;

    switch (f->type) {
    case FT_STR:
        if (f->check != NULL) {
            rc = f->check(spelled, v, d);
            if (rc < 0)
                return rc;
        }
        *(const char **)field = v;
        break;
    case FT_PORT:
        if (str_port(v, &port) < 0)
            return err_set(d, ERR_INVAL, "%s: expected a port number (1-65535), got \"%s\"",
                           spelled, v);
        *(int *)field = port;
        break;
    case FT_INT:
        if (str_u64(v, strlen(v), (uint64_t)f->max, &num) < 0 || num < (uint64_t)f->min)
            return err_set(d, ERR_INVAL, "%s: expected a whole number from %d to %d, got \"%s\"",
                           spelled, f->min, f->max, v);
        *(int *)field = (int)num;
        break;
    case FT_SECONDS:
        if (parse_seconds(v, f->min, f->max, &secs) < 0)
            return err_set(d, ERR_INVAL,
                           "%s: expected seconds from %d to %d (suffix s, m or h allowed), got "
                           "\"%s\"",
                           spelled, f->min, f->max, v);
        *(int *)field = secs;
        break;
    case FT_BOOL:
        if (parse_bool(v, &b) < 0)
            return err_set(d, ERR_INVAL, "%s: expected true or false, got \"%s\"", spelled, v);
        *(bool *)field = b;
        break;
    case FT_PATHS:
        rc = check_nonempty(spelled, v, d);
        if (rc < 0)
            return rc;
        if (a->opts.resources_path_count >= INVOKE_MAX_RESOURCES_PATHS)
            return err_set(d, ERR_INVAL, "%s: at most %d folders may be given", spelled,
                           INVOKE_MAX_RESOURCES_PATHS);
        a->opts.resources_paths[a->opts.resources_path_count++] = v;
        break;
    }
    a->given |= UINT64_C(1) << (f - flags);
    return 0;
}

static const cli_flag_t *find_long(cli_cmd_t cmd, const char *name, size_t n)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (!(flags[i].cmds & cmd))
            continue;
        if (str_eq(name, n, flags[i].name) ||
            (flags[i].alias != NULL && str_eq(name, n, flags[i].alias)))
            return &flags[i];
    }
    return NULL;
}

static const cli_flag_t *find_short(cli_cmd_t cmd, char c)
{
    /* Short forms are those of `dapr run`; daprd has none. */
    if (cmd == CLI_CMD_SIDECAR)
        return NULL;
    for (size_t i = 0; i < NFLAGS; i++) {
        if ((flags[i].cmds & cmd) && flags[i].short_name == c)
            return &flags[i];
    }
    return NULL;
}

static const char *cmd_name(cli_cmd_t cmd)
{
    return cmd == CLI_CMD_SIDECAR  ? "sidecar"
           : cmd == CLI_CMD_RUN    ? "run"
           : cmd == CLI_CMD_SENTRY ? "sentry"
                                   : "list";
}

/* Fills in the values that come from the environment once the flags are known. */
static int finish(cli_cmd_t cmd, cli_args_t *a, err_detail_t *d)
{
    const char *ns = getenv("NAMESPACE");
    const char *home = getenv("OUTRIGGER_HOME");
    char dir[4096];
    size_t len = sizeof(dir);
    int rc;

    if (!cli_args_given(a, "namespace") && ns != NULL && *ns != '\0')
        a->opts.namespace_ = ns;
    if (log_level_parse(a->log_level, &a->level) < 0)
        a->level = LOG_INFO;
    if (home != NULL && *home != '\0') {
        a->home_owned = mem_strdup(home);
    } else {
        /* uv_os_homedir reads $HOME and falls back to the password database. */
        rc = uv_os_homedir(dir, &len);
        if (rc < 0)
            return err_set(d, ERR_INVAL, "cannot find the home folder (%s); set OUTRIGGER_HOME",
                           err_str(rc));
        a->home_owned = mem_alloc(len + sizeof("/.outrigger"));
        memcpy(a->home_owned, dir, len);
        memcpy(a->home_owned + len, "/.outrigger", sizeof("/.outrigger"));
    }
    a->opts.home = a->home_owned;
    if (cmd == CLI_CMD_SENTRY) {
        if (a->allowed_uids != NULL &&
            parse_uids(a->allowed_uids, a->sentry.allowed_uids, &a->sentry.allowed_uid_count) < 0)
            return err_set(d, ERR_INVAL, "--allowed-uid: bad list");
        if (a->sentry.state_dir == NULL) {
            a->state_dir_owned = mem_alloc(strlen(a->home_owned) + sizeof("/sentry"));
            rc = identity_default_state_dir(a->home_owned, a->state_dir_owned,
                                            strlen(a->home_owned) + sizeof("/sentry"));
            if (rc < 0)
                return err_set(d, ERR_INVAL, "home folder path too long");
            a->sentry.state_dir = a->state_dir_owned;
        }
    }
    if (cmd == CLI_CMD_SIDECAR && a->opts.app_id == NULL)
        return err_set(d, ERR_INVAL, "--app-id is required");
    return 0;
}

/* Reads the value of a flag: "--f=v", "-xv" and "-x=v" carry it inline, booleans default to true,
 * everything else takes the next argument. */
static int take_value(const cli_flag_t *f, const char *inl, int argc, char **argv, int *i,
                      const char *spelled, const char **out, err_detail_t *d)
{
    if (inl != NULL) {
        *out = inl;
        return 0;
    }
    if (f->type == FT_BOOL) {
        *out = "true";
        return 0;
    }
    if (*i + 1 >= argc)
        return err_set(d, ERR_INVAL, "%s: needs a value", spelled);
    *out = argv[++*i];
    return 0;
}

int cli_args_parse(cli_cmd_t cmd, int argc, char **argv, cli_args_t *out, err_detail_t *detail)
{
    cli_args_t a;
    int rc = 0, i;

    memset(&a, 0, sizeof(a));
    invoke_opts_defaults(&a.opts);
    identity_sentry_opts_defaults(&a.sentry);
    a.log_level = "info";
    a.level = LOG_INFO;
    a.output = "table";
    for (i = 0; i < argc; i++) {
        const char *arg = argv[i], *inl = NULL, *v = NULL;
        const cli_flag_t *f;
        char spelled[96];

        if (strcmp(arg, "--") == 0) {
            i++;
            break;
        }
        if (arg[0] == '-' && arg[1] == '-') {
            const char *name = arg + 2, *eq = strchr(name, '=');
            size_t n = eq ? (size_t)(eq - name) : strlen(name);

            if (str_eq(name, n, "help")) {
                a.help = true;
                continue;
            }
            f = find_long(cmd, name, n);
            if (f == NULL) {
                rc = err_set(detail, ERR_INVAL, "unknown flag --%.*s for \"%s\"", (int)n, name,
                             cmd_name(cmd));
                goto out;
            }
            snprintf(spelled, sizeof(spelled), "--%.*s", (int)n, name);
            inl = eq ? eq + 1 : NULL;
        } else if (arg[0] == '-' && arg[1] != '\0') {
            if (arg[1] == 'h' && arg[2] == '\0') {
                a.help = true;
                continue;
            }
            f = find_short(cmd, arg[1]);
            if (f == NULL) {
                rc = err_set(detail, ERR_INVAL, "unknown flag -%c for \"%s\"", arg[1],
                             cmd_name(cmd));
                goto out;
            }
            snprintf(spelled, sizeof(spelled), "-%c", arg[1]);
            inl = arg[2] == '=' ? arg + 3 : arg[2] != '\0' ? arg + 2 : NULL;
        } else {
            /* `dapr run` treats the first plain argument as the start of the app command. */
            if (cmd == CLI_CMD_RUN)
                break;
            rc = err_set(detail, ERR_INVAL, "unexpected argument \"%s\"", arg);
            goto out;
        }
        rc = take_value(f, inl, argc, argv, &i, spelled, &v, detail);
        if (rc < 0)
            goto out;
        rc = apply(&a, f, spelled, v, detail);
        if (rc < 0)
            goto out;
    }
    if (i < argc) {
        if (cmd != CLI_CMD_RUN) {
            rc = err_set(detail, ERR_INVAL, "unexpected argument \"%s\"", argv[i]);
            goto out;
        }
        a.command = argv + i;
        a.command_argc = argc - i;
    }
    if (a.help) {
        *out = a;
        return 0;
    }
    rc = finish(cmd, &a, detail);
out:
    if (rc < 0) {
        cli_args_free(&a);
        return rc;
    }
    *out = a;
    return 0;
}

void cli_args_free(cli_args_t *a)
{
    mem_free(a->home_owned);
    mem_free(a->app_id_owned);
    mem_free(a->state_dir_owned);
    a->home_owned = NULL;
    a->app_id_owned = NULL;
    a->state_dir_owned = NULL;
}

static const cli_flag_t *find_name(const char *name)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        if (strcmp(flags[i].name, name) == 0)
            return &flags[i];
    }
    return NULL;
}

bool cli_args_given(const cli_args_t *a, const char *name)
{
    const cli_flag_t *f = find_name(name);
    return f != NULL && (a->given & (UINT64_C(1) << (f - flags))) != 0;
}

void cli_args_mark(cli_args_t *a, const char *name)
{
    const cli_flag_t *f = find_name(name);
    if (f != NULL)
        a->given |= UINT64_C(1) << (f - flags);
}

void cli_args_render(const cli_args_t *a, cli_cmd_t target, cli_argv_t *out)
{
    for (size_t i = 0; i < NFLAGS; i++) {
        const cli_flag_t *f = &flags[i];
        const char *field = (const char *)a + f->off;

        if (!(f->cmds & target) || !(a->given & (UINT64_C(1) << i)))
            continue;
        switch (f->type) {
        case FT_STR:
            cli_argv_pushf(out, "--%s=%s", f->name, *(const char *const *)field);
            break;
        case FT_PORT:
        case FT_INT:
        case FT_SECONDS:
            cli_argv_pushf(out, "--%s=%d", f->name, *(const int *)field);
            break;
        case FT_BOOL:
            cli_argv_pushf(out, "--%s=%s", f->name, *(const bool *)field ? "true" : "false");
            break;
        case FT_PATHS:
            for (size_t j = 0; j < a->opts.resources_path_count; j++)
                cli_argv_pushf(out, "--%s=%s", f->name, a->opts.resources_paths[j]);
            break;
        }
    }
}

void cli_usage(FILE *f)
{
    fprintf(f,
            "Usage: outrigger <command> [flags]\n"
            "\n"
            "Commands:\n"
            "  sidecar   Run a sidecar (the counterpart of daprd)\n"
            "  run       Start a sidecar and an app beside it (like dapr run)\n"
            "  list      List the sidecars and apps running on this machine\n"
            "  sentry    Run the certificate authority (like Dapr's sentry), or rotate its root\n"
            "  opa       Evaluate and test Rego policies (eval, test, bench)\n"
            "  version   Print the version\n"
            "  help      Print this help, or the help of a command\n"
            "\n"
            "Run 'outrigger <command> --help' for the flags of a command.\n");
}

/* Writes the default of @p f as help shows it, into @p b; nothing when there is none to show. */
static int default_text(const cli_flag_t *f, cli_cmd_t cmd, const cli_args_t *def, buf_t *b)
{
    const char *field = (const char *)def + f->off;

    if (cmd == CLI_CMD_RUN && (f->flags & FL_RUN_FREE))
        return buf_append_str(b, "a free port");
    if (cmd == CLI_CMD_RUN && strcmp(f->name, "app-id") == 0)
        return buf_append_str(b, "a generated id");
    switch (f->type) {
    case FT_STR:
        if (*(const char *const *)field != NULL)
            return buf_printf(b, "\"%s\"", *(const char *const *)field);
        break;
    case FT_PORT:
    case FT_INT:
    case FT_SECONDS:
        if (*(const int *)field != 0)
            return buf_printf(b, "%d", *(const int *)field);
        break;
    case FT_BOOL:
        return buf_append_str(b, *(const bool *)field ? "true" : "false");
    case FT_PATHS:
        break;
    }
    return f->def_text != NULL ? buf_append_str(b, f->def_text) : 0;
}

static const char *type_name(flag_type_t t)
{
    switch (t) {
    case FT_PORT:
        return " port";
    case FT_INT:
        return " int";
    case FT_SECONDS:
        return " duration";
    case FT_BOOL:
        return "";
    case FT_STR:
    case FT_PATHS:
        break;
    }
    return " string";
}

void cli_help(cli_cmd_t cmd, FILE *f)
{
    cli_args_t def;
    buf_t spec, dflt;
    size_t width = 0;

    memset(&def, 0, sizeof(def));
    invoke_opts_defaults(&def.opts);
    identity_sentry_opts_defaults(&def.sentry);
    def.log_level = "info";
    def.output = "table";
    if (cmd == CLI_CMD_SIDECAR)
        fprintf(f, "Usage: outrigger sidecar --app-id ID [flags]\n\n"
                   "Runs a sidecar (the counterpart of daprd) until SIGINT or SIGTERM.\n");
    else if (cmd == CLI_CMD_RUN)
        fprintf(f, "Usage: outrigger run [flags] [--] [COMMAND [ARGS...]]\n\n"
                   "Starts a sidecar, waits until it is healthy, then starts COMMAND with\n"
                   "APP_ID, APP_PORT, DAPR_HTTP_PORT, DAPR_HTTP_ENDPOINT and friends set.\n"
                   "Without COMMAND only the sidecar runs.\n");
    else if (cmd == CLI_CMD_SENTRY)
        fprintf(f, "Usage: outrigger sentry [flags]\n"
                   "       outrigger sentry rotate-root|activate-root|prune-roots [flags]\n"
                   "       outrigger sentry jwt --app-id ID --audience AUD [...]\n\n"
                   "Runs the certificate authority that issues workload identities (X.509 and\n"
                   "JWT SVIDs) to sidecars until SIGINT or SIGTERM. Local sidecars ask on a\n"
                   "user-private Unix socket; remote ones over TLS with a join token.\n\n"
                   "Root rotation, one step at a time (see docs/security.md):\n"
                   "  rotate-root    stage a new root and issuer; the bundle trusts both\n"
                   "  activate-root  sign with the staged root (wait one workload TTL first)\n"
                   "  prune-roots    drop old roots from the bundle (wait one more TTL)\n\n"
                   "'outrigger sentry jwt' prints a JWT SVID from the running sentry (see\n"
                   "'outrigger sentry jwt --help').\n");
    else
        fprintf(f, "Usage: outrigger list [flags]\n\n"
                   "Lists the sidecars and apps running on this machine.\n");
    fprintf(f, "\nFlags:\n");
    buf_init(&spec, 256);
    buf_init(&dflt, 256);
    /* Two passes: the first measures the widest flag column, the second prints. */
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i <= NFLAGS; i++) {
            const cli_flag_t *fl = i < NFLAGS ? &flags[i] : NULL;
            int rc = 0;

            if (fl != NULL && !(fl->cmds & cmd))
                continue;
            buf_reset(&spec);
            if (fl == NULL) {
                rc = buf_append_str(&spec, "  -h, --help");
            } else if (fl->short_name != 0 && cmd != CLI_CMD_SIDECAR) {
                rc = buf_printf(&spec, "  -%c, --%s%s", fl->short_name, fl->name,
                                type_name(fl->type));
            } else {
                rc = buf_printf(&spec, "      --%s%s", fl->name, type_name(fl->type));
            }
            if (rc < 0)
                continue;
            if (pass == 0) {
                width = spec.len > width ? spec.len : width;
                continue;
            }
            if (fl == NULL) {
                fprintf(f, "%-*s  Print this help\n", (int)width, buf_ptr(&spec));
                continue;
            }
            buf_reset(&dflt);
            fprintf(f, "%-*s  %s", (int)width, buf_ptr(&spec), fl->help);
            if (fl->alias != NULL)
                fprintf(f, "; also --%s", fl->alias);
            if (default_text(fl, cmd, &def, &dflt) == 0 && dflt.len > 0)
                fprintf(f, " (default %s)", buf_ptr(&dflt));
            fprintf(f, "\n");
        }
    }
    buf_free(&spec);
    buf_free(&dflt);
}

/* Appends @p s, which the vector takes over. */
static void argv_add(cli_argv_t *a, char *s)
{
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = mem_realloc(a->v, a->cap * sizeof(char *));
    }
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

void cli_argv_push(cli_argv_t *a, const char *s)
{
    argv_add(a, mem_strdup(s));
}

void cli_argv_pushf(cli_argv_t *a, const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    s = mem_alloc((size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    argv_add(a, s);
}

void cli_argv_free(cli_argv_t *a)
{
    for (size_t i = 0; i < a->n; i++)
        mem_free(a->v[i]);
    mem_free(a->v);
    a->v = NULL;
    a->n = 0;
    a->cap = 0;
}
