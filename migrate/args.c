/* args.c — command-line parsing for `sluice backfill` and `sluice verify`: every option
 * takes one value, unknown options and bad values are errors with a one-line reason. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "migrate/migrate_internal.h"

#define DEFAULT_TIME_COLUMN "timestamp"

static int fail(char *err, size_t errlen, const char *fmt, const char *a)
{
    snprintf(err, errlen, fmt, a);
    return -EINVAL;
}

/* "db.table" → db_buf, table_buf (when no --database was given). */
static int split_table(const char *t, const char **table, const char **db, char *tbuf, size_t tlen,
                       char *dbuf, size_t dlen)
{
    const char *dot = strchr(t, '.');
    if (!dot || *db) {
        *table = t;
        return 0;
    }
    if (dot == t || !dot[1] || (size_t)(dot - t) >= dlen || strlen(dot + 1) >= tlen) return -EINVAL;
    memcpy(dbuf, t, (size_t)(dot - t));
    dbuf[dot - t] = '\0';
    snprintf(tbuf, tlen, "%s", dot + 1);
    *db = dbuf;
    *table = tbuf;
    return 0;
}

/* The checks backfill and verify share: --table [db.]name split (database from --database
 * or "default") and every name safe to put between quotes in SQL. tbuf/dbuf hold 256. */
static int finish_target(const char *table, const char *database, const char *time_column,
                         char *tbuf, char *dbuf, const char **out_table, const char **out_db,
                         char *err, size_t errlen)
{
    if (split_table(table, &table, &database, tbuf, 256, dbuf, 256) < 0)
        return fail(err, errlen, "--table: cannot read '%s' as [db.]table", table);
    *out_table = table;
    *out_db = database ? database : "default";
    if (!migrate_ident_ok(*out_table) || !migrate_ident_ok(*out_db) ||
        !migrate_ident_ok(time_column))
        return fail(err, errlen, "%s",
                    "table, database and time column names must not contain "
                    "quotes, backticks or control characters");
    return 0;
}

static int time_opt(const char *name, const char *v, int64_t *out, int *has, char *err,
                    size_t errlen)
{
    if (migrate_parse_time(v, out) < 0)
        return fail(err, errlen, "%s: expected YYYY-MM-DD[ HH:MM:SS] (UTC) or unix seconds", name);
    *has = 1;
    return 0;
}

int backfill_parse_args(int argc, char **argv, backfill_opts_t *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->slice_s = 3600;
    o->time_column = DEFAULT_TIME_COLUMN;
    const char *database = NULL, *table = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return fail(err, errlen, "unexpected argument '%s'", a);
        if (i + 1 >= argc) return fail(err, errlen, "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--config") == 0) continue; /* main.c loads it */
        if (strcmp(a, "--source") == 0)
            o->source = v;
        else if (strcmp(a, "--sink") == 0)
            o->sink = v;
        else if (strcmp(a, "--table") == 0)
            table = v;
        else if (strcmp(a, "--database") == 0)
            database = v;
        else if (strcmp(a, "--where") == 0)
            o->where = v;
        else if (strcmp(a, "--time-column") == 0)
            o->time_column = v;
        else if (strcmp(a, "--since") == 0) {
            if (time_opt(a, v, &o->since, &o->has_since, err, errlen)) return -EINVAL;
        } else if (strcmp(a, "--until") == 0) {
            if (time_opt(a, v, &o->until, &o->has_until, err, errlen)) return -EINVAL;
        } else if (strcmp(a, "--slice") == 0) {
            if (migrate_parse_duration(v, &o->slice_s) < 0)
                return fail(err, errlen, "--slice: expected a duration like 1h, 30m, 1d, not '%s'",
                            v);
        } else
            return fail(err, errlen, "unknown option %s", a);
    }
    if (!o->source) return fail(err, errlen, "%s is required", "--source CLICKHOUSE_URL");
    if (!o->sink) return fail(err, errlen, "%s is required", "--sink NAME");
    if (!table) return fail(err, errlen, "%s is required", "--table T");
    if (finish_target(table, database, o->time_column, o->table_buf, o->db_buf, &o->table,
                      &o->database, err, errlen) < 0)
        return -1;
    if (o->has_since && o->has_until && o->since >= o->until)
        return fail(err, errlen, "%s", "--since must be before --until");
    if (o->where && !*o->where) o->where = NULL;
    return 0;
}

int verify_parse_args(int argc, char **argv, verify_opts_t *o, char *err, size_t errlen)
{
    memset(o, 0, sizeof *o);
    o->by = VERIFY_BY_DAY;
    o->time_column = DEFAULT_TIME_COLUMN;
    const char *database = NULL, *table = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) != 0) return fail(err, errlen, "unexpected argument '%s'", a);
        if (i + 1 >= argc) return fail(err, errlen, "%s needs a value", a);
        const char *v = argv[++i];
        if (strcmp(a, "--a") == 0)
            o->a = v;
        else if (strcmp(a, "--b") == 0)
            o->b = v;
        else if (strcmp(a, "--table") == 0)
            table = v;
        else if (strcmp(a, "--database") == 0)
            database = v;
        else if (strcmp(a, "--time-column") == 0)
            o->time_column = v;
        else if (strcmp(a, "--by") == 0) {
            if (strcmp(v, "day") == 0)
                o->by = VERIFY_BY_DAY;
            else if (strcmp(v, "hour") == 0)
                o->by = VERIFY_BY_HOUR;
            else
                return fail(err, errlen, "--by: expected day or hour, not '%s'", v);
        } else if (strcmp(a, "--columns") == 0) {
            if (strlen(v) >= sizeof o->cols_buf)
                return fail(err, errlen, "%s", "--columns: too long");
            snprintf(o->cols_buf, sizeof o->cols_buf, "%s", v);
            o->n_columns = 0;
            for (char *save = NULL, *c = strtok_r(o->cols_buf, ",", &save); c;
                 c = strtok_r(NULL, ",", &save)) {
                while (*c == ' ')
                    c++;
                char *e = c + strlen(c);
                while (e > c && e[-1] == ' ')
                    *--e = '\0';
                if (!migrate_ident_ok(c))
                    return fail(err, errlen, "--columns: bad column name '%s'", c);
                if (o->n_columns == MIGRATE_MAX_COLUMNS)
                    return fail(err, errlen, "%s", "--columns: at most 64 columns");
                o->columns[o->n_columns++] = c;
            }
            if (o->n_columns == 0) return fail(err, errlen, "%s", "--columns: no column given");
        } else if (strcmp(a, "--since") == 0) {
            if (time_opt(a, v, &o->since, &o->has_since, err, errlen)) return -EINVAL;
        } else if (strcmp(a, "--until") == 0) {
            if (time_opt(a, v, &o->until, &o->has_until, err, errlen)) return -EINVAL;
        } else
            return fail(err, errlen, "unknown option %s", a);
    }
    if (!o->a || !o->b) return fail(err, errlen, "%s are required", "--a URL and --b URL");
    if (!table) return fail(err, errlen, "%s is required", "--table T");
    if (!verify_reader_for(o->a))
        return fail(
            err, errlen,
            "--a: unknown URL scheme in '%s' (clickhouse://, http://, emu+http://, mysql://)",
            o->a);
    if (!verify_reader_for(o->b))
        return fail(
            err, errlen,
            "--b: unknown URL scheme in '%s' (clickhouse://, http://, emu+http://, mysql://)",
            o->b);
    if (finish_target(table, database, o->time_column, o->table_buf, o->db_buf, &o->table,
                      &o->database, err, errlen) < 0)
        return -1;
    if (o->has_since && o->has_until && o->since >= o->until)
        return fail(err, errlen, "%s", "--since must be before --until");
    return 0;
}
