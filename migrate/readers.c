/* readers.c — verify's SQL (bucketed counts and bucketed column values, in the ClickHouse,
 * sqlite and MySQL dialects) and the two HTTP readers: ClickHouse's HTTP interface
 * (JSONEachRow) and the StarRocks emulator's read-only `POST /_emu/sql` (JSON lines). Both
 * stream: rows are hashed as they arrive. The MySQL-protocol reader is read_mysql.c. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "migrate/migrate_internal.h"

/* ---- SQL ---- */

static void quote_ident(migrate_sql_t d, buf_t *out, const char *s)
{
    const char *q = d == MIGRATE_SQL_SQLITE ? "\"" : "`";
    buf_puts(out, q);
    buf_puts(out, s);
    buf_puts(out, q);
}

static void bucket_expr(migrate_sql_t d, verify_by_t by, const char *col, buf_t *out)
{
    buf_t c = {0};
    quote_ident(d, &c, col);
    const char *x = c.data ? c.data : "";
    switch (d) {
    case MIGRATE_SQL_CLICKHOUSE:
        buf_printf(out,
                   by == VERIFY_BY_DAY ? "toString(toDate(%s))" : "toString(toStartOfHour(%s))", x);
        break;
    case MIGRATE_SQL_SQLITE:
        buf_printf(out, by == VERIFY_BY_DAY ? "substr(%s, 1, 10)" : "substr(%s, 1, 13) || ':00:00'",
                   x);
        break;
    case MIGRATE_SQL_MYSQL:
        buf_printf(out,
                   by == VERIFY_BY_DAY ? "DATE_FORMAT(%s, '%%Y-%%m-%%d')"
                                       : "DATE_FORMAT(%s, '%%Y-%%m-%%d %%H:00:00')",
                   x);
        break;
    }
    buf_free(&c);
}

static void time_literal(migrate_sql_t d, int64_t t, buf_t *out)
{
    char ts[20];
    migrate_format_time(t, ts);
    if (d == MIGRATE_SQL_CLICKHOUSE)
        buf_printf(out, "toDateTime('%s')", ts);
    else
        buf_printf(out, "'%s'", ts);
}

int verify_build_sql(migrate_sql_t d, const verify_query_t *q, int with_columns, const char *db,
                     buf_t *out)
{
    if (!migrate_ident_ok(q->table) || !migrate_ident_ok(q->time_column) ||
        (db && *db && !migrate_ident_ok(db)))
        return -EINVAL;
    for (size_t i = 0; with_columns && i < q->n_columns; i++)
        if (!migrate_ident_ok(q->columns[i])) return -EINVAL;
    buf_t b = {0};
    bucket_expr(d, q->by, q->time_column, &b);
    buf_printf(out, "SELECT %s AS b", b.data ? b.data : "");
    if (with_columns) {
        for (size_t i = 0; i < q->n_columns; i++) {
            buf_puts(out, ", ");
            quote_ident(d, out, q->columns[i]);
            buf_printf(out, " AS v%zu", i);
        }
    } else {
        buf_puts(out, ", count(*) AS n");
    }
    buf_puts(out, " FROM ");
    if (d == MIGRATE_SQL_SQLITE) { /* the emulator's table is the one identifier "db.table" */
        buf_t full = {0};
        buf_printf(&full, "%s%s%s", db && *db ? db : "", db && *db ? "." : "", q->table);
        quote_ident(d, out, full.data ? full.data : "");
        buf_free(&full);
    } else {
        if (db && *db) {
            quote_ident(d, out, db);
            buf_puts(out, ".");
        }
        quote_ident(d, out, q->table);
    }
    const char *join = " WHERE ";
    if (q->has_since) {
        buf_puts(out, join);
        quote_ident(d, out, q->time_column);
        buf_puts(out, " >= ");
        time_literal(d, q->since, out);
        join = " AND ";
    }
    if (q->has_until) {
        buf_puts(out, join);
        quote_ident(d, out, q->time_column);
        buf_puts(out, " < ");
        time_literal(d, q->until, out);
    }
    if (!with_columns) buf_printf(out, " GROUP BY %s ORDER BY b", b.data ? b.data : "");
    if (d == MIGRATE_SQL_CLICKHOUSE) buf_puts(out, " FORMAT JSONEachRow");
    buf_free(&b);
    return out->oom ? -ENOMEM : 0;
}

/* ---- JSON-lines readers ---- */

typedef struct {
    migrate_sql_t dialect;
    char url[1024]; /* where the SQL is POSTed */
    char db[256];   /* database from the URL path; "" = the query's */
} http_reader_t;

static int http_open(const char *url, const char *scheme, migrate_sql_t d, const char *path,
                     void **state, char *err, size_t errlen)
{
    http_reader_t *r = calloc(1, sizeof *r);
    char base[900];
    if (!r) return -ENOMEM;
    const char *why;
    if (migrate_http_base(url, scheme, base, sizeof base, r->db, sizeof r->db, &why) < 0) {
        char shown[512];
        url_redact(url, shown, sizeof shown);
        snprintf(err, errlen, "%s: %s", shown, why);
        free(r);
        return -EINVAL;
    }
    r->dialect = d;
    snprintf(r->url, sizeof r->url, "%s%s", base, path);
    *state = r;
    return 0;
}

static int ch_open(const char *url, void **state, char *err, size_t errlen)
{
    return http_open(url, "clickhouse://", MIGRATE_SQL_CLICKHOUSE, "", state, err, errlen);
}

static int emu_open(const char *url, void **state, char *err, size_t errlen)
{
    return http_open(url, "emu+http://", MIGRATE_SQL_SQLITE, "_emu/sql", state, err, errlen);
}

static void http_close(void *state)
{
    free(state);
}

typedef struct {
    verify_bucket_cb bcb;
    verify_row_cb rcb;
    void *ctx;
    size_t n_columns;
    char *err;
    size_t errlen;
    buf_t vals, bucket;
} lines_ctx_t;

static const json_member_t *field(const json_member_t *f, int n, const char *key)
{
    size_t kl = strlen(key);
    for (int i = 0; i < n; i++)
        if (f[i].key_len == kl && memcmp(f[i].key, key, kl) == 0) return &f[i];
    return NULL;
}

static int bad_line(lines_ctx_t *c, const char *line, size_t len)
{
    snprintf(c->err, c->errlen, "unexpected reply line: %.*s", (int)(len > 300 ? 300 : len), line);
    return -EPROTO;
}

static int get_bucket(lines_ctx_t *c, const json_member_t *f, int n)
{
    const json_member_t *b = field(f, n, "b");
    int is_null;
    c->bucket.len = 0;
    if (!b || json_value_text(b->val, b->val_len, &c->bucket, &is_null) < 0) return -1;
    if (is_null) buf_puts(&c->bucket, "(null)");
    if (!c->bucket.data) buf_puts(&c->bucket, "");
    return c->bucket.oom ? -1 : 0;
}

static int on_bucket_line(void *ctx, const char *line, size_t len)
{
    lines_ctx_t *c = ctx;
    json_member_t f[4];
    int n = json_members(line, len, f, 4);
    if (n < 0 || get_bucket(c, f, n) < 0) return bad_line(c, line, len);
    const json_member_t *cnt = field(f, n, "n");
    buf_t t = {0};
    int is_null;
    uint64_t v = 0;
    int ok = cnt && json_value_text(cnt->val, cnt->val_len, &t, &is_null) == 0 && !is_null &&
             t.data && sscanf(t.data, "%" SCNu64, &v) == 1;
    buf_free(&t);
    if (!ok) return bad_line(c, line, len);
    return c->bcb(c->ctx, c->bucket.data, v);
}

static int on_row_line(void *ctx, const char *line, size_t len)
{
    lines_ctx_t *c = ctx;
    json_member_t f[MIGRATE_MAX_COLUMNS + 2];
    const char *vals[MIGRATE_MAX_COLUMNS];
    size_t lens[MIGRATE_MAX_COLUMNS], offs[MIGRATE_MAX_COLUMNS];
    int n = json_members(line, len, f, MIGRATE_MAX_COLUMNS + 2);
    if (n < 0 || get_bucket(c, f, n) < 0) return bad_line(c, line, len);
    c->vals.len = 0;
    for (size_t i = 0; i < c->n_columns; i++) {
        char key[24];
        snprintf(key, sizeof key, "v%zu", i);
        const json_member_t *v = field(f, n, key);
        int is_null = 0;
        offs[i] = c->vals.len;
        if (!v || json_value_text(v->val, v->val_len, &c->vals, &is_null) < 0)
            return bad_line(c, line, len);
        lens[i] = is_null ? SIZE_MAX : c->vals.len - offs[i];
    }
    if (c->vals.oom) return -ENOMEM;
    for (size_t i = 0; i < c->n_columns; i++) /* vals.data is stable now */
        vals[i] = lens[i] == SIZE_MAX ? NULL : (c->vals.data ? c->vals.data + offs[i] : "");
    for (size_t i = 0; i < c->n_columns; i++)
        if (lens[i] == SIZE_MAX) lens[i] = 0;
    return c->rcb(c->ctx, c->bucket.data, vals, lens, c->n_columns);
}

static int http_query(http_reader_t *r, const verify_query_t *q, int with_columns, lines_ctx_t *c)
{
    buf_t sql = {0};
    int rc = verify_build_sql(r->dialect, q, with_columns, r->db[0] ? r->db : q->database, &sql);
    if (rc < 0) {
        snprintf(c->err, c->errlen, "names must not contain quotes, backticks or control chars");
        goto out;
    }
    rc = migrate_http_lines(r->url, sql.data, with_columns ? on_row_line : on_bucket_line, c,
                            c->err, c->errlen);
out:
    buf_free(&sql);
    buf_free(&c->vals);
    buf_free(&c->bucket);
    return rc;
}

static int http_buckets(void *state, const verify_query_t *q, verify_bucket_cb cb, void *ctx,
                        char *err, size_t errlen)
{
    lines_ctx_t c = {.bcb = cb, .ctx = ctx, .err = err, .errlen = errlen};
    return http_query(state, q, 0, &c);
}

static int http_rows(void *state, const verify_query_t *q, verify_row_cb cb, void *ctx, char *err,
                     size_t errlen)
{
    lines_ctx_t c = {
        .rcb = cb, .ctx = ctx, .n_columns = q->n_columns, .err = err, .errlen = errlen};
    return http_query(state, q, 1, &c);
}

const verify_reader_t verify_reader_clickhouse = {
    .name = "clickhouse",
    .open = ch_open,
    .buckets = http_buckets,
    .rows = http_rows,
    .close = http_close,
};

const verify_reader_t verify_reader_emu = {
    .name = "starrocks-emulator",
    .open = emu_open,
    .buckets = http_buckets,
    .rows = http_rows,
    .close = http_close,
};

const verify_reader_t *verify_reader_for(const char *url)
{
    if (!url) return NULL;
    if (strncmp(url, "emu+http://", 11) == 0) return &verify_reader_emu;
    if (strncmp(url, "mysql://", 8) == 0) return &verify_reader_mysql;
    if (strncmp(url, "clickhouse://", 13) == 0 || strncmp(url, "http://", 7) == 0 ||
        strncmp(url, "https://", 8) == 0)
        return &verify_reader_clickhouse;
    return NULL;
}
