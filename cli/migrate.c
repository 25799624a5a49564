/* migrate.c — the command lines of `sluice backfill` and `sluice verify`: one option table per
 * command drives both the parser and the usage text (so --help always shows every option
 * with its default). Flags take no value; every other option takes exactly one (`--opt V`
 * or `--opt=V`); unknown options and bad values are errors with a one-line reason. What the
 * options must be together is migrate/'s to say (migrate_*_check). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "migrate/migrate.h"

#define DEFAULT_TIME_COLUMN "timestamp" /* as migrate_*_defaults set it */

typedef enum {
    OPT_STR = 0,
    OPT_FLAG,
    OPT_TIME,     /* sets the int64 at off and the int at has_off */
    OPT_DURATION, /* int64 seconds */
    OPT_UINT,     /* uint32 */
    OPT_BY,       /* verify --by day|hour */
    OPT_COLUMNS,  /* verify --columns a,b,c */
} opt_kind_t;

/* A row: the option as cli_walk reads it (name, value placeholder, help), then where its
 * value goes in the options struct and the default shown in the usage. */
typedef struct {
    cli_opt_t o; /* first: cli_walk reads the table through it */
    opt_kind_t kind;
    size_t off, has_off;
    const char *def; /* or NULL */
} opt_t;

#define NO_HAS ((size_t)-1)
#define BF(f) offsetof(backfill_opts_t, f)
#define VF(f) offsetof(verify_opts_t, f)

static const opt_t backfill_table[] = {
    {{"--config", "FILE", "sluice's config (sinks, wal.dir); required"},
     OPT_STR,
     BF(config),
     NO_HAS,
     NULL},
    {{"--source", "URL",
      "ClickHouse to copy from: http://[user@]host:8123 (password: the next options)"},
     OPT_STR,
     BF(source),
     NO_HAS,
     NULL},
    {{"--source-sink", "NAME",
      "or: the config's ClickHouse sink NAME is the source (its url, user, password)"},
     OPT_STR,
     BF(source_sink),
     NO_HAS,
     NULL},
    {{"--source-password-env", "VAR", "the source password from environment variable VAR"},
     OPT_STR,
     BF(source_password_env),
     NO_HAS,
     NULL},
    {{"--source-password-file", "FILE", "the source password from FILE (first line)"},
     OPT_STR,
     BF(source_password_file),
     NO_HAS,
     NULL},
    {{"--sink", "NAME", "the config's sink to copy into; required"},
     OPT_STR,
     BF(sink),
     NO_HAS,
     NULL},
    {{"--table", "[DB.]T", "table to copy; required"}, OPT_STR, BF(table_arg), NO_HAS, NULL},
    {{"--database", "DB", "database of --table"}, OPT_STR, BF(database_arg), NO_HAS, "default"},
    {{"--time-column", "C", "DateTime column the slices cut"},
     OPT_STR,
     BF(time_column),
     NO_HAS,
     DEFAULT_TIME_COLUMN},
    {{"--since", "TS", "UTC: 2024-05-01[ 10:00:00] or unix seconds"},
     OPT_TIME,
     BF(since),
     BF(has_since),
     "the oldest row"},
    {{"--until", "TS", "UTC, exclusive"},
     OPT_TIME,
     BF(until),
     BF(has_until),
     "the sink's live start, the dual-write boundary recorded in the WAL"},
    {{"--slice", "D", "slice grid and smallest slice (90s, 30m, 1h, 1d)"},
     OPT_DURATION,
     BF(slice_s),
     NO_HAS,
     "1h"},
    {{"--max-slice", "D", "grid cells merge into slices up to this wide and 50000 rows"},
     OPT_DURATION,
     BF(max_slice_s),
     NO_HAS,
     "1d, or --slice if longer"},
    {{"--parallel", "N", "slices in flight (1-16)"}, OPT_UINT, BF(parallel), NO_HAS, "2"},
    {{"--where", "SQL", "extra condition on the source rows"}, OPT_STR, BF(where), NO_HAS, NULL},
    {{"--dry-run", NULL, "print the range, the boundary and rows per slice; send nothing"},
     OPT_FLAG,
     BF(dry_run),
     NO_HAS,
     NULL},
    {{"--status", NULL, "show the progress of a running or stopped backfill of --sink/--table"},
     OPT_FLAG,
     BF(status),
     NO_HAS,
     NULL},
    {{"--retry-dlq", NULL,
      "re-send the rows dead-lettered by earlier runs (after fixing the cause)"},
     OPT_FLAG,
     BF(retry_dlq),
     NO_HAS,
     NULL},
    {{"--restart", NULL, "forget the recorded progress and plan, start over"},
     OPT_FLAG,
     BF(restart),
     NO_HAS,
     NULL},
    {{"--force", NULL, "copy even when the sink is the source (same host, port, database)"},
     OPT_FLAG,
     BF(force),
     NO_HAS,
     NULL},
    {{"--json", NULL, "progress and summary as JSON lines (progress on stderr, summary on stdout)"},
     OPT_FLAG,
     BF(json),
     NO_HAS,
     NULL},
};

static const opt_t verify_table[] = {
    {{"--a", "URL",
      "one side: http://, clickhouse://, mysql://user@host:9030/db, emu+http://; required"},
     OPT_STR,
     VF(a),
     NO_HAS,
     NULL},
    {{"--b", "URL", "the other side; required"}, OPT_STR, VF(b), NO_HAS, NULL},
    {{"--a-password-env", "VAR", "--a's password from environment variable VAR"},
     OPT_STR,
     VF(a_password_env),
     NO_HAS,
     NULL},
    {{"--a-password-file", "FILE", "--a's password from FILE"},
     OPT_STR,
     VF(a_password_file),
     NO_HAS,
     NULL},
    {{"--b-password-env", "VAR", "--b's password from environment variable VAR"},
     OPT_STR,
     VF(b_password_env),
     NO_HAS,
     NULL},
    {{"--b-password-file", "FILE", "--b's password from FILE"},
     OPT_STR,
     VF(b_password_file),
     NO_HAS,
     NULL},
    {{"--table", "[DB.]T", "table to compare; required"}, OPT_STR, VF(table_arg), NO_HAS, NULL},
    {{"--database", "DB", "database of --table"}, OPT_STR, VF(database_arg), NO_HAS, "default"},
    {{"--time-column", "C", "DateTime column the buckets cut"},
     OPT_STR,
     VF(time_column),
     NO_HAS,
     DEFAULT_TIME_COLUMN},
    {{"--by", "day|hour", "bucket width"}, OPT_BY, VF(by), NO_HAS, "day"},
    {{"--columns", "c1,c2", "also compare a checksum of these columns per bucket"},
     OPT_COLUMNS,
     0,
     NO_HAS,
     NULL},
    {{"--key", "C", "column naming a row in the list of differing rows"},
     OPT_STR,
     VF(key),
     NO_HAS,
     "the first of --columns"},
    {{"--since", "TS", "UTC, inclusive"}, OPT_TIME, VF(since), VF(has_since), NULL},
    {{"--until", "TS", "UTC, exclusive"},
     OPT_TIME,
     VF(until),
     VF(has_until),
     "with --config/--sink: the sink's live start (the dual-write boundary)"},
    {{"--config", "FILE", "sluice's config, with --sink: read the live boundary from its WAL"},
     OPT_STR,
     VF(config),
     NO_HAS,
     NULL},
    {{"--sink", "NAME", "the sink --b is fed by (for the boundary)"},
     OPT_STR,
     VF(sink),
     NO_HAS,
     NULL},
    {{"--all", NULL, "compare up to now, not only up to the boundary"},
     OPT_FLAG,
     VF(all),
     NO_HAS,
     NULL},
};

#define N_OF(t) (sizeof(t) / sizeof((t)[0]))

static int fail(char *err, size_t errlen, const char *fmt, const char *a)
{
    snprintf(err, errlen, fmt, a);
    return -EINVAL;
}

static void print_usage(FILE *f, const char *synopsis, const opt_t *t, size_t n, const char *tail)
{
    fputs(synopsis, f);
    fputs("\noptions:\n", f);
    for (size_t i = 0; i < n; i++) {
        char head[64];
        snprintf(head, sizeof head, "%s%s%s", t[i].o.name, t[i].o.value ? " " : "",
                 t[i].o.value ? t[i].o.value : "");
        fprintf(f, "  %-28s %s", head, t[i].o.help);
        if (t[i].def) fprintf(f, " (default: %s)", t[i].def);
        fputc('\n', f);
    }
    fputs(tail, f);
}

void cli_backfill_usage(FILE *f)
{
    print_usage(f,
                "usage: sluice backfill --config FILE --source URL --sink NAME --table [DB.]T "
                "[options]\n"
                "Copy a ClickHouse table's history into a sink, slice by slice, resumably "
                "(deploy/MIGRATION.md).",
                backfill_table, N_OF(backfill_table),
                "exit codes: 0 done, 1 runtime error, 2 usage, 3 refused (configuration, plan, "
                "sink), 4 WAL refused,\n"
                "            5 done but rows were dead-lettered (see --retry-dlq), 130 "
                "interrupted (rerun to resume)\n");
}

void cli_verify_usage(FILE *f)
{
    print_usage(f,
                "usage: sluice verify --a URL --b URL --table [DB.]T [options]\n"
                "Compare row counts (and column checksums) per time bucket between two "
                "backends.",
                verify_table, N_OF(verify_table),
                "exit codes: 0 same, 1 differs, 2 usage, 3 could not run (connection, "
                "authentication, missing table)\n");
}

static int parse_columns(verify_opts_t *o, const char *v, char *err, size_t errlen)
{
    if (strlen(v) >= sizeof o->cols_buf) return fail(err, errlen, "%s", "--columns: too long");
    snprintf(o->cols_buf, sizeof o->cols_buf, "%s", v);
    o->n_columns = 0;
    for (char *save = NULL, *c = strtok_r(o->cols_buf, ",", &save); c;
         c = strtok_r(NULL, ",", &save)) {
        while (*c == ' ')
            c++;
        char *e = c + strlen(c);
        while (e > c && e[-1] == ' ')
            *--e = '\0';
        if (!migrate_ident_ok(c)) return fail(err, errlen, "--columns: bad column name '%s'", c);
        if (o->n_columns == MIGRATE_MAX_COLUMNS)
            return fail(err, errlen, "%s", "--columns: at most 64 columns");
        o->columns[o->n_columns++] = c;
    }
    if (o->n_columns == 0) return fail(err, errlen, "%s", "--columns: no column given");
    return 0;
}

/* Walk argv with the one walker (cli_walk), then store each value given into the struct at
 * base as its row says. */
static int parse_table(const opt_t *t, size_t n, int argc, char **argv, void *base, char *err,
                       size_t errlen)
{
    char *o = base;
    const char *vals[CLI_MAX_OPTS * 2];
    if (n > sizeof vals / sizeof vals[0]) return fail(err, errlen, "%s", "option table too long");
    if (cli_walk(t, sizeof *t, n, argc, argv, vals, NULL, NULL, 0, err, errlen) < 0) return -EINVAL;
    for (size_t k = 0; k < n; k++) {
        const opt_t *op = &t[k];
        const char *v = vals[k];
        if (!v) continue;
        if (op->kind == OPT_FLAG) {
            *(int *)(o + op->off) = 1;
            continue;
        }
        switch (op->kind) {
        case OPT_FLAG:
            break;
        case OPT_STR:
            *(const char **)(o + op->off) = v;
            break;
        case OPT_TIME:
            if (migrate_parse_time(v, (int64_t *)(o + op->off)) < 0)
                return fail(err, errlen, "%s: expected YYYY-MM-DD[ HH:MM:SS] (UTC) or unix seconds",
                            op->o.name);
            *(int *)(o + op->has_off) = 1;
            break;
        case OPT_DURATION:
            if (migrate_parse_duration(v, (int64_t *)(o + op->off)) < 0) {
                char m[160];
                snprintf(m, sizeof m, "%s: expected a duration like 1h, 30m, 1d, not '%.60s'",
                         op->o.name, v);
                return fail(err, errlen, "%s", m);
            }
            break;
        case OPT_UINT: {
            char *end;
            errno = 0;
            unsigned long x = strtoul(v, &end, 10);
            if (errno || end == v || *end || v[0] == '-' || x > 1000000)
                return fail(err, errlen, "%s: expected a number", op->o.name);
            *(uint32_t *)(o + op->off) = (uint32_t)x;
            break;
        }
        case OPT_BY:
            if (strcmp(v, "day") == 0)
                *(verify_by_t *)(o + op->off) = VERIFY_BY_DAY;
            else if (strcmp(v, "hour") == 0)
                *(verify_by_t *)(o + op->off) = VERIFY_BY_HOUR;
            else
                return fail(err, errlen, "--by: expected day or hour, not '%s'", v);
            break;
        case OPT_COLUMNS:
            if (parse_columns(base, v, err, errlen) < 0) return -EINVAL;
            break;
        }
    }
    return 0;
}

int cli_backfill_parse(int argc, char **argv, backfill_opts_t *o, char *err, size_t errlen)
{
    migrate_backfill_defaults(o);
    if (parse_table(backfill_table, N_OF(backfill_table), argc, argv, o, err, errlen) < 0)
        return -EINVAL;
    return migrate_backfill_check(o, err, errlen); /* --config: cli_load_config says */
}

int cli_verify_parse(int argc, char **argv, verify_opts_t *o, char *err, size_t errlen)
{
    migrate_verify_defaults(o);
    if (parse_table(verify_table, N_OF(verify_table), argc, argv, o, err, errlen) < 0)
        return -EINVAL;
    return migrate_verify_check(o, err, errlen);
}
