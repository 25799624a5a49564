/* wal.c — `sluice wal stats|dump`: read a log read-only (also while a running sluice has it
 * open) through wal/wal.h's report functions. */
#include <stdint.h>
#include <string.h>

#include "cli/cli.h"
#include "wal/wal.h"

int cli_wal(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    if (a.npos < 1) {
        cli_usage(cmd, stderr);
        return EXIT_USAGE;
    }
    const char *sub = a.pos[0], *dir = cli_get(cmd, &a, "--dir");
    char dirbuf[4096];
    if (!dir) {
        const char *path = cli_get(cmd, &a, "--config");
        if (!path) {
            fprintf(stderr, "sluice wal: --dir DIR (or --config FILE) is required\n");
            return EXIT_USAGE;
        }
        sluice_cfg_t cfg;
        int rc = cli_load_config(path, &cfg, 0);
        if (rc) return rc;
        snprintf(dirbuf, sizeof dirbuf, "%s", cfg.wal.dir);
        cfg_free(&cfg);
        dir = dirbuf;
    }
    if (strcmp(sub, "stats") == 0) return wal_print_stats(dir, stdout, stderr);
    if (strcmp(sub, "dump") == 0) {
        uint64_t from = 0, limit = 0;
        const char *f = cli_get(cmd, &a, "--from"), *l = cli_get(cmd, &a, "--limit");
        if ((f && cli_parse_u64(f, &from)) || (l && cli_parse_u64(l, &limit))) {
            fprintf(stderr, "sluice wal dump: --from and --limit take a number\n");
            return EXIT_USAGE;
        }
        return wal_print_dump(dir, from, limit, stdout, stderr);
    }
    fprintf(stderr, "sluice wal: unknown subcommand '%s'\n", sub);
    return EXIT_USAGE;
}
