/*
 * `outrigger run` against a fake sidecar (a small Node.js script named by OUTRIGGER_SIDECAR that
 * answers 204 on /v1.0/healthz). Skipped when node is not installed.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "cli/cli.h"
#include "test.h"

#define ARGC(v) ((int)(sizeof(v) / sizeof((v)[0])))

static const char fake_sidecar[] =
    "#!/usr/bin/env node\n"
    "const http = require('http');\n"
    "const a = process.argv.slice(2);\n"
    "const get = (n) => { const x = a.find((s) => s.startsWith('--' + n + '='));\n"
    "  return x && x.slice(n.length + 3); };\n"
    "console.log('fake ' + a.join(' '));\n"
    "process.stderr.write('long ' + 'x'.repeat(20000) + '\\n');\n"
    "process.stdout.write('no newline');\n"
    "if (process.env.FAKE_EXIT) process.exit(Number(process.env.FAKE_EXIT));\n"
    "http.createServer((q, s) => { s.statusCode = q.url === '/v1.0/healthz' ? 204 : 404; "
    "s.end(); })\n"
    "  .listen(Number(get('dapr-http-port')), '127.0.0.1');\n"
    "process.on('SIGTERM', () => process.stdout.write('fake stopping\\n', () => "
    "process.exit(0)));\n";

static char script[64], home[64];
static char out[65536], err[65536];

static bool have_node(void)
{
    return system("command -v node >/dev/null 2>&1") == 0;
}

static bool setup(void)
{
    int fd;

    if (script[0] != '\0')
        return true;
    snprintf(script, sizeof(script), "/tmp/outrigger-fake-XXXXXX");
    fd = mkstemp(script);
    if (fd < 0 || write(fd, fake_sidecar, sizeof(fake_sidecar) - 1) < 0)
        return false;
    fchmod(fd, 0755);
    close(fd);
    snprintf(home, sizeof(home), "/tmp/outrigger-runhome-XXXXXX");
    if (mkdtemp(home) == NULL)
        return false;
    setenv("OUTRIGGER_SIDECAR", script, 1);
    setenv("OUTRIGGER_HOME", home, 1);
    unsetenv("FAKE_EXIT");
    return true;
}

static void slurp(FILE *f, char *buf, size_t n)
{
    size_t got;
    rewind(f);
    got = fread(buf, 1, n - 1, f);
    buf[got] = '\0';
    fclose(f);
}

/* Runs `outrigger run` with @p argv, capturing what it writes to stdout and stderr. */
static int run_captured(int argc, char **argv)
{
    FILE *fo = tmpfile(), *fe = tmpfile();
    int so = dup(1), se = dup(2), code;

    fflush(stdout);
    fflush(stderr);
    dup2(fileno(fo), 1);
    dup2(fileno(fe), 2);
    code = cli_cmd_run(argc, argv);
    fflush(stdout);
    fflush(stderr);
    dup2(so, 1);
    dup2(se, 2);
    close(so);
    close(se);
    slurp(fo, out, sizeof(out));
    slurp(fe, err, sizeof(err));
    return code;
}

TEST(app_gets_env_and_its_exit_code_wins)
{
    static const char script_text[] =
        "echo \"$APP_ID $APP_PORT $APP_PROTOCOL $DAPR_HTTP_ENDPOINT\"; echo oops >&2; "
        "printf tail; exit 3";
    const char *argv[] = {"-a", "x", "-p", "8123", "--", "sh", "-c", script_text};
    char want[64];
    const char *p;

    if (!have_node())
        return;
    ASSERT(setup());
    ASSERT_EQ(run_captured(ARGC(argv), (char **)argv), 3);
    ASSERT(strstr(out, "== APP == x 8123 http http://127.0.0.1:") != NULL);
    ASSERT(strstr(out, "== APP == tail\n") != NULL);
    ASSERT(strstr(err, "== APP == oops\n") != NULL);
    ASSERT(strstr(out, "== OUTRIGGER == fake sidecar --app-id=x --app-port=8123 ") != NULL);
    ASSERT(strstr(out, "== OUTRIGGER == no newline") != NULL);
    ASSERT(strstr(out, "fake stopping\n") != NULL);
    ASSERT(strstr(err, "the app exited with code 3") != NULL);
    /* The endpoint names the port that was handed to the sidecar. */
    p = strstr(out, "--dapr-http-port=");
    ASSERT(p != NULL);
    snprintf(want, sizeof(want), "127.0.0.1:%.*s", (int)strspn(p + 17, "0123456789"), p + 17);
    ASSERT(strstr(out, want) != NULL);
}

TEST(long_lines_are_split)
{
    const char *argv[] = {"-a", "y", "--", "true"};
    size_t longest = 0;

    if (!have_node())
        return;
    ASSERT(setup());
    ASSERT_EQ(run_captured(ARGC(argv), (char **)argv), 0);
    for (char *line = err, *nl; (nl = strchr(line, '\n')) != NULL; line = nl + 1)
        longest = (size_t)(nl - line) > longest ? (size_t)(nl - line) : longest;
    ASSERT_EQ(longest, strlen("== OUTRIGGER == ") + 8192);
}

TEST(app_that_cannot_start)
{
    const char *argv[] = {"-a", "z", "--", "/nonexistent/app"};

    if (!have_node())
        return;
    ASSERT(setup());
    ASSERT_EQ(run_captured(ARGC(argv), (char **)argv), 1);
    ASSERT(strstr(err, "cannot start the app \"/nonexistent/app\"") != NULL);
}

TEST(sidecar_that_dies_before_healthy)
{
    const char *argv[] = {"-a", "w", "--", "true"};

    if (!have_node())
        return;
    ASSERT(setup());
    setenv("FAKE_EXIT", "4", 1);
    ASSERT_EQ(run_captured(ARGC(argv), (char **)argv), 1);
    unsetenv("FAKE_EXIT");
    ASSERT(strstr(err, "the sidecar exited with code 4 before it became healthy") != NULL);
    ASSERT(strstr(out, "== APP ==") == NULL);
}

TEST(sigterm_is_forwarded_to_the_app)
{
    const char *argv[] = {"-a", "s", "--", "sh", "-c", "kill -TERM $RUN_PID; exec sleep 30"};
    char pid[32];

    if (!have_node())
        return;
    ASSERT(setup());
    snprintf(pid, sizeof(pid), "%ld", (long)getpid());
    setenv("RUN_PID", pid, 1);
    ASSERT_EQ(run_captured(ARGC(argv), (char **)argv), 128 + SIGTERM);
    ASSERT(strstr(err, "received SIGTERM; stopping") != NULL);
    ASSERT(strstr(err, "the app was stopped by signal 15") != NULL);
    ASSERT(strstr(out, "fake stopping\n") != NULL);
}

TEST(cleanup)
{
    char path[128];

    if (script[0] != '\0')
        unlink(script);
    if (home[0] != '\0') {
        snprintf(path, sizeof(path), "%s/run", home);
        rmdir(path);
        rmdir(home);
    }
}
