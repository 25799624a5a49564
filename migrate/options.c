/* options.c — what backfill's and verify's options must be once cli/ has read them: the
 * defaults, the required ones, --table's [db.]name split, names safe in SQL, ranges; and
 * the passwords they name (environment or file). */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate.h"
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

int migrate_read_password(const char *env, const char *file, char *out, size_t outlen, char *err,
                          size_t errlen)
{
    if (env && file)
        return fail(err, errlen, "%s",
                    "give the password from the environment or a file, not both");
    if (env) {
        const char *v = getenv(env);
        if (!v) return fail(err, errlen, "environment variable %s is not set", env);
        if (strlen(v) >= outlen) return fail(err, errlen, "%s: password too long", env);
        snprintf(out, outlen, "%s", v);
        return 1;
    }
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            snprintf(err, errlen, "%s: %s", file, strerror(errno));
            return -EINVAL;
        }
        size_t n = fread(out, 1, outlen - 1, f);
        int bad = ferror(f) || (n == outlen - 1 && !feof(f));
        fclose(f);
        if (bad) return fail(err, errlen, "%s: cannot read a password (too long?)", file);
        out[n] = '\0';
        out[strcspn(out, "\r\n")] = '\0';
        return 1;
    }
    return 0;
}

void migrate_backfill_defaults(backfill_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->slice_s = 3600;
    o->max_slice_s = 0;
    o->parallel = 2;
    o->time_column = DEFAULT_TIME_COLUMN;
}

int migrate_backfill_check(backfill_opts_t *o, char *err, size_t errlen)
{
    if (!o->source && !o->source_sink && !o->status && !o->retry_dlq)
        return fail(err, errlen, "%s is required",
                    "--source CLICKHOUSE_URL (or --source-sink NAME)");
    if (o->source && o->source_sink)
        return fail(err, errlen, "%s", "give --source or --source-sink, not both");
    if (!o->sink) return fail(err, errlen, "%s is required", "--sink NAME");
    if (!o->table_arg) return fail(err, errlen, "%s is required", "--table T");
    if (finish_target(o->table_arg, o->database_arg, o->time_column, o->table_buf, o->db_buf,
                      &o->table, &o->database, err, errlen) < 0)
        return -1;
    if (o->has_since && o->has_until && o->since >= o->until)
        return fail(err, errlen, "%s", "--since must be before --until");
    if (o->parallel < 1 || o->parallel > 16)
        return fail(err, errlen, "%s", "--parallel: expected 1 to 16");
    if (!o->max_slice_s) o->max_slice_s = o->slice_s > 86400 ? o->slice_s : 86400;
    if (o->max_slice_s < o->slice_s)
        return fail(err, errlen, "%s", "--max-slice must not be smaller than --slice");
    if (o->max_slice_s % o->slice_s)
        return fail(err, errlen, "%s", "--max-slice must be a multiple of --slice");
    if (o->where && !*o->where) o->where = NULL;
    return 0;
}

void migrate_verify_defaults(verify_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->by = VERIFY_BY_DAY;
    o->time_column = DEFAULT_TIME_COLUMN;
}

int migrate_verify_check(verify_opts_t *o, char *err, size_t errlen)
{
    if (!o->a || !o->b) return fail(err, errlen, "%s are required", "--a URL and --b URL");
    if (!o->table_arg) return fail(err, errlen, "%s is required", "--table T");
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
    if (finish_target(o->table_arg, o->database_arg, o->time_column, o->table_buf, o->db_buf,
                      &o->table, &o->database, err, errlen) < 0)
        return -1;
    if (o->key && !migrate_ident_ok(o->key))
        return fail(err, errlen, "%s", "--key: bad column name");
    if (o->sink && !o->config) return fail(err, errlen, "%s", "--sink needs --config FILE");
    if (o->has_since && o->has_until && o->since >= o->until)
        return fail(err, errlen, "%s", "--since must be before --until");
    return 0;
}
