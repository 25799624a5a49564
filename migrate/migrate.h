/* migrate.h — the ClickHouse → StarRocks migration commands (DESIGN.md §6,
 * deploy/MIGRATION.md): `sluice backfill` copies history from ClickHouse into a configured
 * sink through the sink engine's delivery code, resumably; `sluice verify` compares two
 * backends bucket by bucket. This header is the whole interface of migrate/. */
#ifndef SLUICE_MIGRATE_H
#define SLUICE_MIGRATE_H

#include <stdio.h>

#include "config/config.h"

/* `sluice backfill --config F --source URL --sink NAME --table T [...]` with cfg loaded from
 * F. argv: the arguments after "backfill". Progress to err (in place on a terminal, lines
 * otherwise), the summary to out. Returns a process exit code: 0 done, 1 runtime error,
 * 2 usage, 4 the log cannot be read. */
int migrate_backfill_cli(const sluice_cfg_t *cfg, int argc, char **argv, FILE *out, FILE *err);

/* `sluice verify --a URL --b URL --table T [...]`: 0 when every bucket agrees, 1 when any
 * differs (the table of differences goes to out) or on a runtime error, 2 usage. */
int migrate_verify_cli(int argc, char **argv, FILE *out, FILE *err);

#endif
