/* cli.h — what the files of cli/ share: the exit codes, the one option parser every command
 * uses, and the commands main.c's table dispatches to. cli/ is the only place that reads
 * argv; each command is a thin call into a module's public header. */
#ifndef SLUICE_CLI_H
#define SLUICE_CLI_H

#include <stdio.h>

#include "config/config.h"
#include "migrate/migrate.h"

/* Exit codes, documented in README: */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_WAL = 4 };

#define CLI_MAX_OPTS 24
#define CLI_MAX_POS 256

/* One option of a command. value is the placeholder of the value it takes ("FILE"), NULL
 * for a flag; help says what it does and its default. */
typedef struct {
    const char *name; /* "--config" */
    const char *value;
    const char *help;
} cli_opt_t;

/* A command: `sluice NAME SYNOPSIS`, its options, how many positional words it takes. */
typedef struct cli_cmd {
    const char *name;
    const char *synopsis; /* after "sluice NAME ", may span lines */
    const char *summary;  /* one line for the command list */
    const cli_opt_t *opts;
    int max_pos;
    int (*run)(const struct cli_cmd *cmd, int argc, char **argv);
    void (*usage)(FILE *f); /* a module's own usage printer instead of the table's */
} cli_cmd_t;

/* What cli_parse found: val[i] is opts[i]'s value ("" for a flag given), NULL when absent;
 * pos the positional words in order. */
typedef struct {
    const char *val[CLI_MAX_OPTS];
    const char *pos[CLI_MAX_POS];
    int npos;
} cli_args_t;

/* The one argv walker. table: n rows of stride bytes, each starting with a cli_opt_t (so a
 * command's own row type can carry more). Fills vals[0..n) (NULL: absent, "" for a flag
 * given) and pos (up to max_pos positional words; NULL pos: none allowed). `--opt V`,
 * `--opt=V`, flags, `--` ends the options. 0, or -1 with the reason in err ("unknown option
 * --x", "--x needs a value (V)", "--x is a flag and takes no value", "unexpected argument"). */
int cli_walk(const void *table, size_t stride, size_t n, int argc, char **argv, const char **vals,
             const char **pos, int *npos, int max_pos, char *err, size_t errlen);

/* Walk argv (the words after the command) against cmd->opts: `--opt V`, `--opt=V`, flags,
 * `--` ends the options. On a bad word prints "sluice CMD: unknown option --x" (or "--x
 * needs a value", "--x takes no value", "unexpected argument") with a pointer to the help on
 * stderr and returns -1. */
int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *out);
/* The value of the option named name (NULL when absent or not an option of cmd). */
const char *cli_get(const cli_cmd_t *cmd, const cli_args_t *a, const char *name);
/* "usage: sluice NAME SYNOPSIS", the summary and every option with its help. */
void cli_usage(const cli_cmd_t *cmd, FILE *f);
/* A decimal uint64; -1 on anything else. */
int cli_parse_u64(const char *s, uint64_t *out);

/* Load the config at path (or the defaults when path is NULL and allow_default), apply the
 * environment overrides and check it; an exit code, the reason printed. */
int cli_load_config(const char *path, sluice_cfg_t *cfg, int allow_default);

/* backfill's and verify's own option tables (cli/migrate.c): parse argv into o (then
 * migrate_*_check), 0 or -EINVAL with a one-line reason; their usage with every default. */
int cli_backfill_parse(int argc, char **argv, backfill_opts_t *o, char *err, size_t errlen);
int cli_verify_parse(int argc, char **argv, verify_opts_t *o, char *err, size_t errlen);
void cli_backfill_usage(FILE *f);
void cli_verify_usage(FILE *f);

int cli_run(const cli_cmd_t *cmd, int argc, char **argv);
int cli_dlq(const cli_cmd_t *cmd, int argc, char **argv);
int cli_wal(const cli_cmd_t *cmd, int argc, char **argv);

#endif
