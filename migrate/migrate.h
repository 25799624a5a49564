/* migrate.h — the ClickHouse → StarRocks migration commands (DESIGN.md §6,
 * deploy/MIGRATION.md): `sluice backfill` copies history from ClickHouse into a configured
 * sink through the sink engine's delivery code, resumably; `sluice verify` compares two
 * backends bucket by bucket. This header is the whole interface of migrate/. */
#ifndef SLUICE_MIGRATE_H
#define SLUICE_MIGRATE_H

#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "config/config.h"

#define MIGRATE_MAX_COLUMNS 64 /* verify --columns */

/* ---- options (cli/migrate.c reads them from the command line) ---- */

typedef struct {
    const char *config;      /* sluice's config file */
    const char *source;      /* ClickHouse URL (without its password: see below) */
    const char *source_sink; /* or: the config's ClickHouse sink of this name is the source */
    const char *source_password_env, *source_password_file;
    const char *sink;     /* sink name in the config */
    const char *table;    /* table (a "db.table" form sets database) */
    const char *database; /* default: from table, else "default" */
    const char *table_arg, *database_arg; /* as given */
    int64_t since, until; /* unix seconds; has_* say whether they were given */
    int has_since, has_until;
    int64_t slice_s;     /* default 3600: the grid, and the smallest slice */
    int64_t max_slice_s; /* default max(1d, slice): adaptive slices grow up to this */
    uint32_t parallel;   /* default 2: slices in flight */
    const char *where;       /* extra SQL condition, or NULL */
    const char *time_column; /* default "timestamp" */
    int dry_run, status, json, force, restart, retry_dlq; /* flags */
    char table_buf[256], db_buf[256];
} backfill_opts_t;

typedef enum { VERIFY_BY_DAY = 0, VERIFY_BY_HOUR } verify_by_t;

typedef struct {
    const char *a, *b;
    const char *a_password_env, *a_password_file, *b_password_env, *b_password_file;
    const char *table, *database;
    const char *table_arg, *database_arg;
    verify_by_t by;
    const char *time_column;
    const char *columns[MIGRATE_MAX_COLUMNS];
    size_t n_columns;
    const char *key;          /* column naming a differing row; default columns[0] */
    const char *config, *sink; /* for the default --until: the sink's live start */
    int all;                   /* flag: no default --until */
    int64_t since, until;
    int has_since, has_until;
    char table_buf[256], db_buf[256], cols_buf[4096];
} verify_opts_t;

/* The defaults, and what the options must be together (required ones, ranges, --table's
 * [db.]name split, names safe in SQL): 0 or -EINVAL with a one-line reason in err. */
void migrate_backfill_defaults(backfill_opts_t *o);
int migrate_backfill_check(backfill_opts_t *o, char *err, size_t errlen);
void migrate_verify_defaults(verify_opts_t *o);
int migrate_verify_check(verify_opts_t *o, char *err, size_t errlen);

/* Option values: "2024-05-01", "2024-05-01T10:00:00[Z]", "2024-05-01 10:00:00" or unix
 * seconds (UTC) → unix seconds; "90s", "30m", "1h", "2d" or seconds → seconds (> 0); is s a
 * plain identifier we can quote in every dialect (no quotes, backticks, NUL)? */
int migrate_parse_time(const char *s, int64_t *out);
int migrate_parse_duration(const char *s, int64_t *out);
int migrate_ident_ok(const char *s);

/* `sluice backfill` with cfg loaded from o->config: copy history into o->sink, resumably.
 * Progress to err (in place on a terminal, timestamped lines otherwise, JSON with --json),
 * the summary to out. Returns a process exit code: 0 done, 1 runtime error, 2 usage, 3
 * refused (configuration, plan, sink), 4 the log cannot be read, 5 done but rows were
 * dead-lettered. */
int migrate_backfill(const sluice_cfg_t *cfg, backfill_opts_t *o, FILE *out, FILE *err);

/* `sluice verify`: 0 when every bucket agrees, 1 when any differs (the table of
 * differences goes to out), 2 usage, 3 could not run. */
int migrate_verify(verify_opts_t *o, FILE *out, FILE *err);

/* The dual-write boundary of sink: the second its live delivery started (WAL meta, read-only).
 * 0, or negative with the reason in msg (no WAL, or the sink never started from it). */
int migrate_live_start(const sluice_cfg_t *cfg, const char *sink, int64_t *until, char *msg,
                       size_t msglen);

/* Prometheus gauges of the backfills recorded under <wal_dir>/backfill (rows and slices
 * done, dead-lettered rows, running), for the running instance's /metrics: a backfill is a
 * separate process, its progress files are what they share. Appends to out; 0 or -ENOMEM. */
int migrate_backfill_metrics(const char *wal_dir, buf_t *out);

#endif
