#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/err.h"
#include "cli/cli.h"
#include "test.h"

#define ARGC(v) ((int)(sizeof(v) / sizeof((v)[0])))

static void clean_env(void)
{
    unsetenv("NAMESPACE");
    setenv("OUTRIGGER_HOME", "/tmp/outrigger-test-home", 1);
}

TEST(defaults_come_from_invoke)
{
    const char *argv[] = {"--app-id", "orders"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.app_id, "orders");
    ASSERT_EQ(a.opts.app_port, 0);
    ASSERT_EQ(a.opts.http_port, 3500);
    ASSERT_EQ(a.opts.metrics_port, 9090);
    ASSERT_EQ(a.opts.internal_port, 0);
    ASSERT_STREQ(a.opts.app_protocol, "http");
    ASSERT_STREQ(a.opts.app_channel_address, "127.0.0.1");
    ASSERT_STREQ(a.opts.listen_address, "127.0.0.1");
    ASSERT_STREQ(a.opts.namespace_, "default");
    ASSERT_STREQ(a.opts.home, "/tmp/outrigger-test-home");
    ASSERT_EQ(a.opts.resources_path_count, 0);
    ASSERT(a.opts.config_path == NULL);
    ASSERT_STREQ(a.log_level, "info");
    ASSERT_EQ(a.level, LOG_INFO);
    ASSERT(!a.log_as_json);
    ASSERT(!a.help);
    ASSERT(a.command == NULL);
    ASSERT(cli_args_given(&a, "app-id"));
    ASSERT(!cli_args_given(&a, "dapr-http-port"));
    cli_args_free(&a);
}

TEST(both_value_forms)
{
    const char *argv[] = {"--app-id=a",
                          "--app-port",
                          "8080",
                          "--dapr-http-port=3600",
                          "--metrics-port",
                          "9191",
                          "--app-channel-address=10.0.0.2",
                          "--dapr-listen-addresses",
                          "0.0.0.0",
                          "--config=cfg.yaml",
                          "--log-level",
                          "debug",
                          "--log-as-json",
                          "--workers=4",
                          "--max-connections",
                          "500",
                          "--dapr-graceful-shutdown-seconds=0",
                          "--stream-idle-timeout=15m"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.app_id, "a");
    ASSERT_EQ(a.opts.app_port, 8080);
    ASSERT_EQ(a.opts.http_port, 3600);
    ASSERT_EQ(a.opts.metrics_port, 9191);
    ASSERT_STREQ(a.opts.app_channel_address, "10.0.0.2");
    ASSERT_STREQ(a.opts.listen_address, "0.0.0.0");
    ASSERT_STREQ(a.opts.config_path, "cfg.yaml");
    ASSERT_EQ(a.level, LOG_DEBUG);
    ASSERT(a.log_as_json);
    ASSERT_EQ(a.opts.workers, 4);
    ASSERT_EQ(a.opts.max_connections, 500);
    ASSERT_EQ(a.opts.graceful_shutdown_seconds, 0);
    ASSERT_EQ(a.opts.stream_idle_timeout_s, 900);
    cli_args_free(&a);
}

TEST(aliases_and_repeats)
{
    const char *argv[] = {"--app-id",
                          "a",
                          "--resources-path",
                          "r1",
                          "--components-path=r2",
                          "--resources-path=r3",
                          "--dapr-internal-grpc-port",
                          "50002"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_EQ(a.opts.resources_path_count, 3);
    ASSERT_STREQ(a.opts.resources_paths[0], "r1");
    ASSERT_STREQ(a.opts.resources_paths[1], "r2");
    ASSERT_STREQ(a.opts.resources_paths[2], "r3");
    ASSERT_EQ(a.opts.internal_port, 50002);
    ASSERT(cli_args_given(&a, "dapr-internal-port"));
    cli_args_free(&a);
}

TEST(too_many_resources_paths)
{
    const char *argv[2 + 2 * (INVOKE_MAX_RESOURCES_PATHS + 1)];
    int n = 0;
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    argv[n++] = "--app-id";
    argv[n++] = "a";
    for (int i = 0; i <= INVOKE_MAX_RESOURCES_PATHS; i++) {
        argv[n++] = "-d";
        argv[n++] = "dir";
    }
    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, n, (char **)argv, &a, &d), ERR_INVAL);
    ASSERT_STREQ(d.msg, "-d: at most 16 folders may be given");
}

TEST(run_short_flags)
{
    const char *argv[] = {"-a",   "web", "-p8123", "-H=3501", "-I",     "50003", "-M",
                          "9092", "-P",  "http",   "-c",      "c.yaml", "-d",    "res"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.app_id, "web");
    ASSERT_EQ(a.opts.app_port, 8123);
    ASSERT_EQ(a.opts.http_port, 3501);
    ASSERT_EQ(a.opts.internal_port, 50003);
    ASSERT_EQ(a.opts.metrics_port, 9092);
    ASSERT_STREQ(a.opts.config_path, "c.yaml");
    ASSERT_STREQ(a.opts.resources_paths[0], "res");
    ASSERT(a.command == NULL);
    cli_args_free(&a);
}

TEST(sidecar_has_no_short_flags)
{
    const char *argv[] = {"-a", "web"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), ERR_INVAL);
    ASSERT_STREQ(d.msg, "unknown flag -a for \"sidecar\"");
}

TEST(run_command_after_dashes_or_first_word)
{
    const char *argv1[] = {"--app-id", "x", "--", "node", "--inspect", "app.js"};
    const char *argv2[] = {"-p", "80", "python3", "-m", "http.server"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, ARGC(argv1), (char **)argv1, &a, &d), 0);
    ASSERT_EQ(a.command_argc, 3);
    ASSERT_STREQ(a.command[0], "node");
    ASSERT_STREQ(a.command[1], "--inspect");
    cli_args_free(&a);

    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, ARGC(argv2), (char **)argv2, &a, &d), 0);
    ASSERT_EQ(a.command_argc, 3);
    ASSERT_STREQ(a.command[0], "python3");
    ASSERT_STREQ(a.command[2], "http.server");
    ASSERT(a.opts.app_id == NULL);
    cli_args_free(&a);
}

TEST(sidecar_rejects_positional)
{
    const char *argv[] = {"--app-id", "x", "extra"};
    const char *argv2[] = {"--app-id", "x", "--", "extra"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), ERR_INVAL);
    ASSERT_STREQ(d.msg, "unexpected argument \"extra\"");
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv2), (char **)argv2, &a, &d), ERR_INVAL);
}

/* Each bad command line and the exact message it earns. */
TEST(errors_name_the_flag)
{
    static struct {
        cli_cmd_t cmd;
        const char *args[3];
        const char *msg;
    } cases[] = {
        {CLI_CMD_SIDECAR,
         {"--app-port", "x"},
         "--app-port: expected a port number (1-65535), got \"x\""},
        {CLI_CMD_SIDECAR,
         {"--app-port=0"},
         "--app-port: expected a port number (1-65535), got \"0\""},
        {CLI_CMD_SIDECAR,
         {"--dapr-http-port", "65536"},
         "--dapr-http-port: expected a port number (1-65535), got \"65536\""},
        {CLI_CMD_RUN, {"-p", "-1"}, "-p: expected a port number (1-65535), got \"-1\""},
        {CLI_CMD_SIDECAR, {"--app-id"}, "--app-id: needs a value"},
        {CLI_CMD_SIDECAR, {"--app-id="}, "--app-id: expected 1 to 64 characters, got 0"},
        {CLI_CMD_SIDECAR,
         {"--app-id", "a/b"},
         "--app-id: \"a/b\" may only hold letters, digits, '-', '_' and '.'"},
        {CLI_CMD_SIDECAR, {"--bogus"}, "unknown flag --bogus for \"sidecar\""},
        {CLI_CMD_SIDECAR, {"--output=json"}, "unknown flag --output for \"sidecar\""},
        {CLI_CMD_SIDECAR,
         {"--app-protocol", "grpc"},
         "--app-protocol: \"grpc\" is not supported yet; only \"http\" is"},
        {CLI_CMD_SIDECAR,
         {"--app-protocol", "ftp"},
         "--app-protocol: expected http, https, h2c, grpc or grpcs, got \"ftp\""},
        {CLI_CMD_SIDECAR,
         {"--log-level", "loud"},
         "--log-level: expected debug, info, warn, error or fatal, got \"loud\""},
        {CLI_CMD_SIDECAR,
         {"--log-as-json=yes"},
         "--log-as-json: expected true or false, got \"yes\""},
        {CLI_CMD_SIDECAR,
         {"--workers", "2000"},
         "--workers: expected a whole number from 0 to 1024, got \"2000\""},
        {CLI_CMD_SIDECAR,
         {"--max-connections=0"},
         "--max-connections: expected a whole number from 1 to 1000000, got \"0\""},
        {CLI_CMD_SIDECAR,
         {"--stream-idle-timeout=1d"},
         "--stream-idle-timeout: expected seconds from 1 to 604800 (suffix s, m or h allowed), "
         "got \"1d\""},
        {CLI_CMD_SIDECAR, {"--namespace="}, "--namespace: must not be empty"},
        {CLI_CMD_SIDECAR, {"--log-level=info"}, "--app-id is required"},
        {CLI_CMD_LIST, {"-o", "yaml"}, "-o: expected table or json, got \"yaml\""},
    };

    clean_env();
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *argv[3];
        int argc = 0;
        cli_args_t a;
        err_detail_t d = {""};

        while (argc < 3 && cases[i].args[argc] != NULL) {
            argv[argc] = cases[i].args[argc];
            argc++;
        }
        ASSERT_EQ(cli_args_parse(cases[i].cmd, argc, (char **)argv, &a, &d), ERR_INVAL);
        ASSERT_STREQ(d.msg, cases[i].msg);
    }
}

TEST(bool_forms)
{
    const char *argv[] = {"--app-id", "x", "--enable-mtls=false", "--log-as-json=true"};
    const char *argv2[] = {"--app-id", "x", "--enable-mtls"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT(!a.enable_mtls);
    ASSERT(a.log_as_json);
    cli_args_free(&a);
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv2), (char **)argv2, &a, &d), 0);
    ASSERT(a.enable_mtls);
    cli_args_free(&a);
}

TEST(namespace_from_env_then_flag)
{
    const char *argv[] = {"--app-id", "x"};
    const char *argv2[] = {"--app-id", "x", "--namespace", "prod"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    setenv("NAMESPACE", "staging", 1);
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.namespace_, "staging");
    cli_args_free(&a);
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv2), (char **)argv2, &a, &d), 0);
    ASSERT_STREQ(a.opts.namespace_, "prod");
    cli_args_free(&a);
    setenv("NAMESPACE", "", 1);
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.namespace_, "default");
    cli_args_free(&a);
    unsetenv("NAMESPACE");
}

TEST(home_defaults_to_dot_outrigger)
{
    const char *argv[] = {"--app-id", "x"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    unsetenv("OUTRIGGER_HOME");
    setenv("HOME", "/home/someone", 1);
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT_STREQ(a.opts.home, "/home/someone/.outrigger");
    cli_args_free(&a);
}

TEST(help_skips_checks)
{
    const char *argv[] = {"--help"};
    const char *argv2[] = {"-h", "--app-port", "x"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    ASSERT(a.help);
    cli_args_free(&a);
    /* A bad value after --help is still reported. */
    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, ARGC(argv2), (char **)argv2, &a, &d), ERR_INVAL);
}

TEST(render_for_child_sidecar)
{
    const char *argv[] = {"-a", "x",  "-p", "8080",          "-d",
                          "r1", "-d", "r2", "--log-as-json", "--stream-idle-timeout=1h",
                          "--", "app"};
    cli_args_t a;
    cli_argv_t v = {NULL, 0, 0};
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_RUN, ARGC(argv), (char **)argv, &a, &d), 0);
    a.opts.http_port = 4000;
    cli_args_mark(&a, "dapr-http-port");
    cli_args_render(&a, CLI_CMD_SIDECAR, &v);
    ASSERT_EQ(v.n, 7);
    ASSERT_STREQ(v.v[0], "--app-id=x");
    ASSERT_STREQ(v.v[1], "--app-port=8080");
    ASSERT_STREQ(v.v[2], "--dapr-http-port=4000");
    ASSERT_STREQ(v.v[3], "--resources-path=r1");
    ASSERT_STREQ(v.v[4], "--resources-path=r2");
    ASSERT_STREQ(v.v[5], "--log-as-json=true");
    ASSERT_STREQ(v.v[6], "--stream-idle-timeout=3600");
    ASSERT(v.v[7] == NULL);
    cli_argv_free(&v);
    cli_args_free(&a);
}

TEST(help_lists_every_flag_with_default)
{
    FILE *f = tmpfile();
    char text[8192];
    size_t n;

    ASSERT(f != NULL);
    cli_help(CLI_CMD_RUN, f);
    rewind(f);
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    ASSERT(strstr(text, "  -p, --app-port port ") != NULL);
    ASSERT(strstr(text, "(default a free port)") != NULL);
    ASSERT(strstr(text, "also --components-path") != NULL);
    ASSERT(strstr(text, "--max-connections int") != NULL);
    ASSERT(strstr(text, "(default 10000)") != NULL);
    ASSERT(strstr(text, "--output") == NULL);
}

TEST(nothing_leaks)
{
    size_t before = mem_used();
    const char *argv[] = {"--app-id", "x"};
    cli_args_t a;
    err_detail_t d = {""};

    clean_env();
    ASSERT_EQ(cli_args_parse(CLI_CMD_SIDECAR, ARGC(argv), (char **)argv, &a, &d), 0);
    cli_args_free(&a);
    ASSERT_EQ(mem_used(), before);
}
