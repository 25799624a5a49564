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

/* `sluice backfill --config F --source URL --sink NAME --table T [...]` with cfg loaded from
 * F. argv: the arguments after "backfill". Progress to err (in place on a terminal,
 * timestamped lines otherwise, JSON with --json), the summary to out. Returns a process exit
 * code: 0 done, 1 runtime error, 2 usage, 3 refused (configuration, plan, sink), 4 the log
 * cannot be read, 5 done but rows were dead-lettered. */
int migrate_backfill_cli(const sluice_cfg_t *cfg, int argc, char **argv, FILE *out, FILE *err);

/* `sluice verify --a URL --b URL --table T [...]`: 0 when every bucket agrees, 1 when any
 * differs (the table of differences goes to out), 2 usage, 3 could not run. */
int migrate_verify_cli(int argc, char **argv, FILE *out, FILE *err);

/* The usage of each command, every option with its default (help backfill, backfill --help). */
void migrate_backfill_usage(FILE *f);
void migrate_verify_usage(FILE *f);

/* The dual-write boundary of sink: the second its live delivery started (WAL meta, read-only).
 * 0, or negative with the reason in msg (no WAL, or the sink never started from it). */
int migrate_live_start(const sluice_cfg_t *cfg, const char *sink, int64_t *until, char *msg,
                       size_t msglen);

/* Prometheus gauges of the backfills recorded under <wal_dir>/backfill (rows and slices
 * done, dead-lettered rows, running), for the running instance's /metrics: a backfill is a
 * separate process, its progress files are what they share. Appends to out; 0 or -ENOMEM. */
int migrate_backfill_metrics(const char *wal_dir, buf_t *out);

#endif
