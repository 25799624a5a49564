/* main.c — the sluice command line: the table of commands, `help [COMMAND]`, and the
 * dispatch. Every command parses its words with cli_parse (opts.c) against its own option
 * table, so `sluice help X` and `sluice X --help` print X's options and defaults. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include "cli/cli.h"
#include "common/log.h"
#include "migrate/migrate.h"
#include "sinks/sink.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

static const cli_opt_t config_only[] = {
    {"--config", "FILE", "the YAML config (required); environment overrides apply"},
    {NULL, NULL, NULL},
};

static const cli_opt_t check_config_opts[] = {
    {"--config", "FILE", "the YAML config (required); environment overrides apply"},
    {"--online", NULL,
     "also ask each enabled clickhouse sink which tables may duplicate a "
     "retried batch (default: off)"},
    {NULL, NULL, NULL},
};

static int cmd_check_config(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    sluice_cfg_t cfg;
    int rc = cli_load_config(cli_get(cmd, &a, "--config"), &cfg, 0);
    if (rc) return rc;
    cfg_print(&cfg, stdout);
    if (cli_get(cmd, &a, "--online")) {
        /* Ask each enabled clickhouse sink's server which tables may duplicate a retried
         * batch (the same report the running sink logs and shows in /v1/sinks). */
        for (size_t i = 0; i < cfg.n_sinks; i++)
            if (cfg.sinks[i].enabled && sink_dedup_check(&cfg.sinks[i], stdout, stderr) < 0)
                rc = EXIT_ERR;
    }
    cfg_free(&cfg);
    return rc;
}

/* backfill and verify read their options with their own tables (cli/migrate.c). */
static int cmd_backfill(const cli_cmd_t *cmd, int argc, char **argv)
{
    (void)cmd;
    backfill_opts_t o;
    char msg[1024];
    if (cli_backfill_parse(argc, argv, &o, msg, sizeof msg) < 0) {
        fprintf(stderr, "sluice backfill: %s\n", msg);
        return EXIT_USAGE;
    }
    sluice_cfg_t cfg;
    int rc = cli_load_config(o.config, &cfg, 0);
    if (rc) return rc;
    log_set_level(cfg.log.level);
    signal(SIGPIPE, SIG_IGN);
    rc = migrate_backfill(&cfg, &o, stdout, stderr);
    cfg_free(&cfg);
    return rc;
}

static int cmd_verify(const cli_cmd_t *cmd, int argc, char **argv)
{
    (void)cmd;
    verify_opts_t o;
    char msg[1024];
    if (cli_verify_parse(argc, argv, &o, msg, sizeof msg) < 0) {
        fprintf(stderr, "sluice verify: %s\n", msg);
        return EXIT_USAGE;
    }
    return migrate_verify(&o, stdout, stderr);
}

static int cmd_version(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    printf("sluice %s\n", SLUICE_VERSION);
    return EXIT_OK;
}

static const cli_opt_t wal_opts[] = {
    {"--dir", "DIR", "the wal directory (default: wal.dir of --config)"},
    {"--config", "FILE", "read the wal directory from this config"},
    {"--from", "SEQ", "dump: the first record (default: the oldest)"},
    {"--limit", "N", "dump: at most N records (default: 0, no limit)"},
    {NULL, NULL, NULL},
};

static const cli_opt_t dlq_opts[] = {
    {"--config", "FILE", "the YAML config (required)"},
    {"--dir", "DIR", "the wal directory (default: wal.dir of the config)"},
    {"--sink", "NAME", "only the entries of this sink (default: every sink)"},
    {"--all", NULL, "drop: every entry (default: only the IDs or --sink given)"},
    {NULL, NULL, NULL},
};

static const cli_opt_t no_opts[] = {{NULL, NULL, NULL}};

static int cmd_help(const cli_cmd_t *cmd, int argc, char **argv);

static const cli_cmd_t commands[] = {
    {"run", "--config FILE", "start the proxy, the WAL writer and the sinks", config_only, 0,
     cli_run, NULL},
    {"check-config", "--config FILE [--online]",
     "validate FILE and print the effective config (secrets ***)", check_config_opts, 0,
     cmd_check_config, NULL},
    {"wal", "stats|dump --dir DIR [--from SEQ] [--limit N]",
     "inspect a log read-only: stats (records, seq range, live bytes, cursors, DLQ size) or "
     "dump (records as JSON lines: \"rows\" for the JSON formats, else \"data\" as text, or "
     "\"data_base64\" for binary ones)",
     wal_opts, 1, cli_wal, NULL},
    {"dlq", "list|show ID|replay [ID..]|drop [ID..] --config FILE [--sink NAME]",
     "the dead-letter queue of a stopped instance (replay: no ID means every entry [of the "
     "sink])",
     dlq_opts, CLI_MAX_POS, cli_dlq, NULL},
    {"backfill", "--config FILE --source URL --sink NAME --table [DB.]T [options]",
     "copy history into a sink, resumably", NULL, 0, cmd_backfill, cli_backfill_usage},
    {"verify", "--a URL --b URL --table [DB.]T [options]",
     "compare counts (and checksums) per bucket", NULL, 0, cmd_verify, cli_verify_usage},
    {"version", "", "print the version", no_opts, 0, cmd_version, NULL},
    {"help", "[COMMAND]", "the commands, or COMMAND's options and defaults", no_opts, 1, cmd_help,
     NULL},
};
#define N_COMMANDS (sizeof commands / sizeof commands[0])

static const cli_cmd_t *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

static int usage(FILE *f, int code)
{
    fputs("usage: sluice <command> [options]\n\ncommands:\n", f);
    for (size_t i = 0; i < N_COMMANDS; i++) {
        const cli_cmd_t *c = &commands[i];
        fprintf(f, "  %s %s\n", c->name, c->synopsis);
        fprintf(f, "      %s\n", c->summary);
    }
    fputs("\nsluice help COMMAND (or sluice COMMAND --help): that command's options and "
          "defaults\n"
          "exit codes: 0 ok, 1 runtime error, 2 usage, 3 bad config, 4 WAL refused\n",
          f);
    return code;
}

static int cmd_help(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    if (a.npos == 0) return usage(stdout, EXIT_OK);
    const cli_cmd_t *c = find_command(a.pos[0]);
    if (!c) {
        fprintf(stderr, "sluice help: unknown command '%s'\n\n", a.pos[0]);
        return usage(stderr, EXIT_USAGE);
    }
    cli_usage(c, stdout);
    return EXIT_OK;
}

/* --help or -h standing as an option word (before any "--"), not as another option's value:
 * a word right after an option that takes a value is that value. */
static int wants_help(const cli_cmd_t *c, int argc, char **argv)
{
    for (int i = 0; i < argc; i++) {
        const char *w = argv[i];
        if (strcmp(w, "--") == 0) return 0;
        if (strcmp(w, "--help") == 0 || strcmp(w, "-h") == 0) return 1;
        if (!c->opts || strncmp(w, "--", 2) != 0 || strchr(w, '=')) continue;
        for (int k = 0; c->opts[k].name; k++)
            if (strcmp(c->opts[k].name, w) == 0 && c->opts[k].value) i++;
    }
    return 0;
}

/* glibc raises its mmap threshold to the largest block freed so far (up to 32 MiB), after
 * which a sink's batch (a few MiB, every batch.max_wait_ms) comes from a thread's arena and
 * stays there when freed: 18 MiB of anonymous RSS at 64 connections instead of 5 (measured
 * with tests/bench/durable_bench.sh, peak 35 MiB instead of 26-30). A fixed threshold sends
 * such blocks to mmap and back to the kernel on free. The price: a 1 MiB insert's buffers go
 * through mmap, munmap and fresh page faults too, 20-28 % fewer 1 MiB inserts per second
 * (sync: always, 4 connections, against a 32 MiB threshold). 4 MiB plus a malloc_trim after
 * each large group got no more than 128 KiB under sync: always; 4 MiB alone left 53 MiB
 * after a 40 MiB insert (test_proxy). GLIBC_TUNABLES naming mmap_threshold still wins. */
static void malloc_setup(void)
{
#ifdef __GLIBC__
    const char *t = getenv("GLIBC_TUNABLES");
    if (!t || !strstr(t, "mmap_threshold")) mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif
}

int main(int argc, char **argv)
{
    malloc_setup();
    if (argc < 2) return usage(stderr, EXIT_USAGE);
    const char *name = argv[1];
    if (strcmp(name, "--version") == 0) name = "version";
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) name = "help";
    const cli_cmd_t *c = find_command(name);
    if (!c) {
        fprintf(stderr, "sluice: unknown command '%s'\n\n", name);
        return usage(stderr, EXIT_USAGE);
    }
    if (c->run != cmd_help && wants_help(c, argc - 2, argv + 2)) {
        cli_usage(c, stdout);
        return EXIT_OK;
    }
    return c->run(c, argc - 2, argv + 2);
}
