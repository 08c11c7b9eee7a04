/* The small commands: `sidecar`, `list` and `version`. */
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buf.h"
#include "base/str.h"
#include "cli/runfile.h"

/* Parses the arguments of @p cmd; prints help or the error. Returns -1 to go on, else the exit
 * code to return. */
static int parse_or_exit(cli_cmd_t cmd, int argc, char **argv, cli_args_t *a)
{
    err_detail_t d = {""};

    if (cli_args_parse(cmd, argc, argv, a, &d) < 0) {
        fprintf(stderr, "outrigger: %s\nRun 'outrigger %s --help' for usage.\n", d.msg,
                cmd == CLI_CMD_SIDECAR ? "sidecar"
                : cmd == CLI_CMD_RUN   ? "run"
                                       : "list");
        return CLI_EXIT_USAGE;
    }
    if (a->help) {
        cli_help(cmd, stdout);
        cli_args_free(a);
        return 0;
    }
    return -1;
}

/* A sidecar started by `run` gets run's pid in its environment. It then asks the kernel for
 * SIGTERM when run dies, so that a killed `run` leaves no sidecar behind, and leaves the registry
 * entry to run. Returns 1 when started by run, 0 when not, ERR_CLOSED when run is already gone. */
static int adopt_run_parent(void)
{
    const char *v = getenv(CLI_ENV_RUN_PARENT);
    uint64_t pid;

    if (v == NULL || str_u64(v, strlen(v), INT32_MAX, &pid) < 0)
        return 0;
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0)
        return 1;
    /* The parent may have died before prctl: then no signal will ever come. */
    if ((uint64_t)getppid() != pid)
        return ERR_CLOSED;
    return 1;
}

int cli_cmd_sidecar(int argc, char **argv)
{
    cli_args_t a;
    runfile_entry_t e;
    err_detail_t d = {""};
    char *path = NULL;
    int code, adopted;

    code = parse_or_exit(CLI_CMD_SIDECAR, argc, argv, &a);
    if (code >= 0)
        return code;
    log_init(a.level, a.log_as_json, a.opts.app_id);
    a.opts.mtls = cli_args_given(&a, "enable-mtls") ? (a.enable_mtls ? 1 : 0) : -1;
    a.opts.api_logging =
        cli_args_given(&a, "enable-api-logging") ? (a.enable_api_logging ? 1 : 0) : -1;
    a.opts.metrics = cli_args_given(&a, "enable-metrics") ? (a.enable_metrics ? 1 : 0) : -1;
    adopted = adopt_run_parent();
    if (adopted < 0) {
        log_error("cli", "the outrigger run process that started this sidecar is gone");
        code = 1;
        goto out;
    }
    if (adopted == 0) {
        memset(&e, 0, sizeof(e));
        e.app_id = a.opts.app_id;
        e.namespace_ = a.opts.namespace_;
        e.command = "";
        e.http_port = a.opts.http_port;
        e.internal_port = a.opts.internal_port;
        e.metrics_port = a.opts.metrics_port;
        e.app_port = a.opts.app_port;
        e.sidecar_pid = (long)getpid();
        e.created = (int64_t)time(NULL);
        if (runfile_write(a.opts.home, &e, (long)getpid(), &path, &d) < 0)
            log_warn("cli", "not listed by 'outrigger list': %s", d.msg);
    }
    code = invoke_sidecar_run(&a.opts);
out:
    if (path != NULL)
        runfile_remove(path);
    mem_free(path);
    cli_args_free(&a);
    return code;
}

int cli_cmd_version(int argc, char **argv)
{
    (void)argv;
    if (argc > 0) {
        fprintf(stderr, "outrigger: version takes no arguments\n");
        return CLI_EXIT_USAGE;
    }
    printf("outrigger %s\nRuntime API: v1.0\n", OUTRIGGER_VERSION);
    return 0;
}

/* A cell of the list table: at most this many bytes are shown. */
#define LIST_CELL_MAX 64
#define LIST_COLS 7

static void list_cells(const runfile_entry_t *e, int64_t now, char cells[LIST_COLS][LIST_CELL_MAX])
{
    snprintf(cells[0], LIST_CELL_MAX, "%s", e->app_id);
    snprintf(cells[1], LIST_CELL_MAX, "%d", e->http_port);
    if (e->internal_port > 0)
        snprintf(cells[2], LIST_CELL_MAX, "%d", e->internal_port);
    else
        snprintf(cells[2], LIST_CELL_MAX, "-");
    if (e->app_port > 0)
        snprintf(cells[3], LIST_CELL_MAX, "%d", e->app_port);
    else
        snprintf(cells[3], LIST_CELL_MAX, "-");
    /* Long commands are cut with an ellipsis so the table stays readable. */
    if (strlen(e->command) >= LIST_CELL_MAX)
        snprintf(cells[4], LIST_CELL_MAX, "%.*s...", LIST_CELL_MAX - 4, e->command);
    else
        snprintf(cells[4], LIST_CELL_MAX, "%s", e->command);
    runfile_age_format(now - e->created, cells[5], LIST_CELL_MAX);
    snprintf(cells[6], LIST_CELL_MAX, "%ld", e->owner_pid);
}

static void list_table(const runfile_list_t *l)
{
    static const char *const heads[LIST_COLS] = {
        "APP ID", "HTTP PORT", "INTERNAL PORT", "APP PORT", "COMMAND", "AGE", "PID"};
    char(*cells)[LIST_COLS][LIST_CELL_MAX];
    size_t width[LIST_COLS];
    int64_t now = (int64_t)time(NULL);

    if (l->count == 0) {
        printf("No Outrigger instances found.\n");
        return;
    }
    cells = mem_alloc(l->count * sizeof(*cells));
    for (int c = 0; c < LIST_COLS; c++)
        width[c] = strlen(heads[c]);
    for (size_t r = 0; r < l->count; r++) {
        list_cells(&l->items[r], now, cells[r]);
        for (int c = 0; c < LIST_COLS; c++) {
            size_t n = strlen(cells[r][c]);
            width[c] = n > width[c] ? n : width[c];
        }
    }
    for (int c = 0; c < LIST_COLS; c++)
        printf("  %-*s", c == LIST_COLS - 1 ? 0 : (int)width[c], heads[c]);
    printf("\n");
    for (size_t r = 0; r < l->count; r++) {
        for (int c = 0; c < LIST_COLS; c++)
            printf("  %-*s", c == LIST_COLS - 1 ? 0 : (int)width[c], cells[r][c]);
        printf("\n");
    }
    mem_free(cells);
}

static void list_json(const runfile_list_t *l)
{
    int64_t now = (int64_t)time(NULL);
    char created[32], age[32];
    json_t *arr = json_array();

    for (size_t i = 0; i < l->count; i++) {
        const runfile_entry_t *e = &l->items[i];
        json_t *o = json_object();

        runfile_time_format(e->created, created, sizeof(created));
        runfile_age_format(now - e->created, age, sizeof(age));
        json_object_set_new(o, "appId", json_string(e->app_id));
        json_object_set_new(o, "httpPort", json_integer(e->http_port));
        json_object_set_new(o, "internalPort", json_integer(e->internal_port));
        json_object_set_new(o, "metricsPort", json_integer(e->metrics_port));
        json_object_set_new(o, "appPort", json_integer(e->app_port));
        json_object_set_new(o, "command", json_string(e->command));
        json_object_set_new(o, "age", json_string(age));
        json_object_set_new(o, "created", json_string(created));
        json_object_set_new(o, "namespace", json_string(e->namespace_));
        json_object_set_new(o, "pid", json_integer(e->owner_pid));
        json_object_set_new(o, "sidecarPid", json_integer(e->sidecar_pid));
        json_object_set_new(o, "cliPid", json_integer(e->cli_pid));
        json_object_set_new(o, "appPid", json_integer(e->app_pid));
        json_array_append_new(arr, o);
    }
    json_dumpf(arr, stdout, JSON_INDENT(2));
    printf("\n");
    json_decref(arr);
}

int cli_cmd_list(int argc, char **argv)
{
    cli_args_t a;
    runfile_list_t l = {NULL, 0, NULL};
    err_detail_t d = {""};
    int code;

    code = parse_or_exit(CLI_CMD_LIST, argc, argv, &a);
    if (code >= 0)
        return code;
    code = 0;
    if (runfile_list(a.opts.home, &l, &d) < 0) {
        fprintf(stderr, "outrigger: %s\n", d.msg[0] ? d.msg : "cannot read the run registry");
        code = 1;
        goto out;
    }
    if (strcmp(a.output, "json") == 0)
        list_json(&l);
    else
        list_table(&l);
out:
    runfile_list_free(&l);
    cli_args_free(&a);
    return code;
}
