/* The outrigger binary: picks the command and hands the rest of argv to it. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static int help(int argc, char **argv)
{
    if (argc == 0) {
        cli_usage(stdout);
        return 0;
    }
    if (strcmp(argv[0], "sidecar") == 0)
        cli_help(CLI_CMD_SIDECAR, stdout);
    else if (strcmp(argv[0], "run") == 0)
        cli_help(CLI_CMD_RUN, stdout);
    else if (strcmp(argv[0], "list") == 0)
        cli_help(CLI_CMD_LIST, stdout);
    else if (strcmp(argv[0], "sentry") == 0)
        cli_help(CLI_CMD_SENTRY, stdout);
    else if (strcmp(argv[0], "version") == 0)
        printf("Usage: outrigger version\n");
    else {
        fprintf(stderr, "outrigger: unknown command \"%s\"\n\n", argv[0]);
        cli_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : NULL;

    if (cmd == NULL) {
        cli_usage(stderr);
        return CLI_EXIT_USAGE;
    }
    if (strcmp(cmd, "sidecar") == 0)
        return cli_cmd_sidecar(argc - 2, argv + 2);
    if (strcmp(cmd, "run") == 0)
        return cli_cmd_run(argc - 2, argv + 2);
    if (strcmp(cmd, "list") == 0)
        return cli_cmd_list(argc - 2, argv + 2);
    if (strcmp(cmd, "sentry") == 0)
        return cli_cmd_sentry(argc - 2, argv + 2);
    if (strcmp(cmd, "opa") == 0)
        return cli_cmd_opa(argc - 2, argv + 2);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0)
        return cli_cmd_version(argc - 2, argv + 2);
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
        return help(argc - 2, argv + 2);
    fprintf(stderr, "outrigger: unknown command \"%s\"\n\n", cmd);
    cli_usage(stderr);
    return CLI_EXIT_USAGE;
}
