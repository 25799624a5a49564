/* read_mysql.c — verify's reader for the MySQL protocol through libmariadb: how a real
 * StarRocks is read (its FE's query port, 9030 by default), and any MySQL/MariaDB table.
 * URL: mysql://user[:password]@host[:port][/database]. Rows stream with mysql_use_result,
 * so the client holds one row at a time. */
#include <errno.h>
#include <inttypes.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "migrate/migrate_internal.h"

typedef struct {
    MYSQL *conn;
    char db[256];
} mysql_reader_t;

/* Copy s[0..n) into out, percent-decoded by common/url's rule (passwords with '@' or ':' are
 * written %40, %3A); -EINVAL when malformed or too long. */
static int pct_copy(char *out, size_t outlen, const char *s, size_t n)
{
    if (n + 1 > outlen || url_pct_decode(s, n, URL_REFUSE_NUL, out) < 0) return -EINVAL;
    return 0;
}

static int my_open(const char *url, void **state, char *err, size_t errlen)
{
    char user[256] = "root", pass[256] = "", host[256] = "", db[256] = "";
    unsigned port = 9030;
    if (strncmp(url, "mysql://", 8) != 0) goto bad;
    const char *p = url + 8;
    const char *end = p + strcspn(p, "/?#");
    const char *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (pct_copy(user, sizeof user, p, (size_t)((colon ? colon : at) - p)) < 0) goto bad;
        if (colon && pct_copy(pass, sizeof pass, colon + 1, (size_t)(at - colon - 1)) < 0) goto bad;
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    if (pct_copy(host, sizeof host, p, (size_t)((colon ? colon : end) - p)) < 0 || !host[0])
        goto bad;
    if (colon) {
        char *e;
        unsigned long v = strtoul(colon + 1, &e, 10);
        if (e != end || v == 0 || v > 65535) goto bad;
        port = (unsigned)v;
    }
    if (*end == '/' && pct_copy(db, sizeof db, end + 1, strcspn(end + 1, "?#")) < 0) goto bad;

    mysql_reader_t *r = calloc(1, sizeof *r);
    if (!r) return -ENOMEM;
    snprintf(r->db, sizeof r->db, "%s", db);
    if (!(r->conn = mysql_init(NULL))) {
        free(r);
        snprintf(err, errlen, "mysql_init failed");
        return -ENOMEM;
    }
    unsigned timeout = 10;
    mysql_optionsv(r->conn, MYSQL_OPT_CONNECT_TIMEOUT, &timeout);
    /* "localhost" would mean the Unix socket to libmariadb: keep TCP, as the URL says. */
    unsigned proto = MYSQL_PROTOCOL_TCP;
    mysql_optionsv(r->conn, MYSQL_OPT_PROTOCOL, &proto);
    if (!mysql_real_connect(r->conn, host, user, pass, db[0] ? db : NULL, port, NULL, 0)) {
        snprintf(err, errlen, "mysql %s:%u: %s", host, port, mysql_error(r->conn));
        mysql_close(r->conn);
        free(r);
        return -ECONNREFUSED;
    }
    *state = r;
    return 0;
bad:
    snprintf(err, errlen, "cannot parse URL (mysql://user[:password]@host[:port][/db])");
    return -EINVAL;
}

static void my_close(void *state)
{
    mysql_reader_t *r = state;
    mysql_close(r->conn);
    free(r);
}

/* Run the statement and hand each row to fn; one row in memory at a time. */
static int my_query(mysql_reader_t *r, const verify_query_t *q, int with_columns,
                    int (*fn)(void *, MYSQL_ROW, unsigned long *, unsigned), void *ctx, char *err,
                    size_t errlen)
{
    buf_t sql = {0};
    int rc =
        verify_build_sql(MIGRATE_SQL_MYSQL, q, with_columns, r->db[0] ? r->db : q->database, &sql);
    if (rc < 0) {
        snprintf(err, errlen, "names must not contain quotes, backticks or control chars");
        goto out;
    }
    if (mysql_real_query(r->conn, sql.data, sql.len) != 0) {
        snprintf(err, errlen, "mysql: %s", mysql_error(r->conn));
        rc = -EIO;
        goto out;
    }
    MYSQL_RES *res = mysql_use_result(r->conn);
    if (!res) {
        snprintf(err, errlen, "mysql: %s", mysql_error(r->conn));
        rc = -EIO;
        goto out;
    }
    unsigned nf = mysql_num_fields(res);
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res))) {
        unsigned long *lens = mysql_fetch_lengths(res);
        if ((rc = fn(ctx, row, lens, nf)) < 0) break;
    }
    if (rc == 0 && mysql_errno(r->conn)) {
        snprintf(err, errlen, "mysql: %s", mysql_error(r->conn));
        rc = -EIO;
    }
    mysql_free_result(res); /* also drains the rest when fn stopped early */
out:
    buf_free(&sql);
    return rc;
}

typedef struct {
    verify_bucket_cb bcb;
    verify_row_cb rcb;
    void *ctx;
    char *err;
    size_t errlen;
} my_ctx_t;

static int bucket_row(void *ctx, MYSQL_ROW row, unsigned long *lens, unsigned nf)
{
    my_ctx_t *c = ctx;
    uint64_t n = 0;
    (void)lens;
    if (nf != 2 || !row[1] || sscanf(row[1], "%" SCNu64, &n) != 1) {
        snprintf(c->err, c->errlen, "mysql: unexpected bucket row");
        return -EPROTO;
    }
    return c->bcb(c->ctx, row[0] ? row[0] : "(null)", n);
}

static int value_row(void *ctx, MYSQL_ROW row, unsigned long *lens, unsigned nf)
{
    my_ctx_t *c = ctx;
    const char *vals[MIGRATE_MAX_COLUMNS];
    size_t l[MIGRATE_MAX_COLUMNS];
    if (nf < 1 || nf - 1 > MIGRATE_MAX_COLUMNS) return -EPROTO;
    for (unsigned i = 1; i < nf; i++) {
        vals[i - 1] = row[i];
        l[i - 1] = row[i] ? (size_t)lens[i] : 0;
    }
    return c->rcb(c->ctx, row[0] ? row[0] : "(null)", vals, l, nf - 1);
}

static int my_buckets(void *state, const verify_query_t *q, verify_bucket_cb cb, void *ctx,
                      char *err, size_t errlen)
{
    my_ctx_t c = {.bcb = cb, .ctx = ctx, .err = err, .errlen = errlen};
    return my_query(state, q, 0, bucket_row, &c, err, errlen);
}

static int my_rows(void *state, const verify_query_t *q, verify_row_cb cb, void *ctx, char *err,
                   size_t errlen)
{
    my_ctx_t c = {.rcb = cb, .ctx = ctx, .err = err, .errlen = errlen};
    return my_query(state, q, 1, value_row, &c, err, errlen);
}

const verify_reader_t verify_reader_mysql = {
    .name = "mysql",
    .open = my_open,
    .buckets = my_buckets,
    .rows = my_rows,
    .close = my_close,
};
