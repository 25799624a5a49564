/* verify.c — `sluice verify`: row counts per time bucket from two backends (computed by each
 * server), and with --columns an order-independent checksum per bucket: each row's chosen
 * columns are streamed to sluice, put in a canonical text form, hashed with FNV-1a 64, and
 * the hashes summed mod 2^64 (see migrate_row_hash). Hashing client-side is what makes the
 * checksum portable: ClickHouse's cityHash64 does not exist in sqlite or MySQL. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mysql.h>

#include "migrate/migrate.h"
#include "common/url.h"
#include "migrate/migrate_internal.h"

typedef struct {
    char *bucket;
    uint64_t count[2], sum[2];
    uint64_t rows_hashed[2];
    uint64_t *colsum; /* [2 * n_columns]: per-column checksums, to name the differing ones */
} bucket_t;

/* Open-addressing map bucket label → bucket_t; insertion order kept in list for sorting. */
typedef struct {
    bucket_t *list;
    size_t n, cap;
    size_t *slots; /* index + 1, 0 = empty */
    size_t n_slots;
} bucket_map_t;

static void map_free(bucket_map_t *m)
{
    for (size_t i = 0; i < m->n; i++) {
        free(m->list[i].bucket);
        free(m->list[i].colsum);
    }
    free(m->list);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

static int map_rehash(bucket_map_t *m, size_t n_slots)
{
    size_t *s = calloc(n_slots, sizeof *s);
    if (!s) return -ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        const char *b = m->list[i].bucket;
        size_t h = fnv1a32(b, strlen(b)) & (n_slots - 1);
        while (s[h])
            h = (h + 1) & (n_slots - 1);
        s[h] = i + 1;
    }
    free(m->slots);
    m->slots = s;
    m->n_slots = n_slots;
    return 0;
}

static bucket_t *map_get(bucket_map_t *m, const char *b)
{
    if ((m->n + 1) * 2 > m->n_slots && map_rehash(m, m->n_slots ? m->n_slots * 2 : 64) < 0)
        return NULL;
    size_t h = fnv1a32(b, strlen(b)) & (m->n_slots - 1);
    while (m->slots[h]) {
        bucket_t *x = &m->list[m->slots[h] - 1];
        if (strcmp(x->bucket, b) == 0) return x;
        h = (h + 1) & (m->n_slots - 1);
    }
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        bucket_t *l = realloc(m->list, nc * sizeof *l);
        if (!l) return NULL;
        m->list = l;
        m->cap = nc;
    }
    bucket_t *x = &m->list[m->n];
    memset(x, 0, sizeof *x);
    if (!(x->bucket = strdup(b))) return NULL;
    m->slots[h] = ++m->n;
    return x;
}

typedef struct {
    bucket_map_t *m;
    int side;
    buf_t scratch;
    int key_col;   /* keys pass: the column naming a row, else -1 */
    size_t n_cols; /* per-column sums kept for this many columns */
} side_ctx_t;

static int on_bucket(void *ctx, const char *bucket, uint64_t count)
{
    side_ctx_t *c = ctx;
    bucket_t *b = map_get(c->m, bucket);
    if (!b) return -ENOMEM;
    b->count[c->side] += count;
    return 0;
}

static int on_row(void *ctx, const char *bucket, const char *const *vals, const size_t *lens,
                  size_t n)
{
    side_ctx_t *c = ctx;
    if (c->key_col >= 0) { /* keys pass: one map entry per row key, the row's hash */
        buf_t k = {0};
        if (vals[c->key_col])
            buf_append(&k, vals[c->key_col], lens[c->key_col]);
        else
            buf_puts(&k, "NULL");
        if (!k.data) buf_puts(&k, "");
        bucket_t *r = k.oom ? NULL : map_get(c->m, k.data);
        buf_free(&k);
        if (!r) return -ENOMEM;
        r->count[c->side]++;
        r->sum[c->side] += migrate_row_hash(vals, lens, n, &c->scratch);
        return c->scratch.oom ? -ENOMEM : 0;
    }
    bucket_t *b = map_get(c->m, bucket);
    if (!b) return -ENOMEM;
    b->sum[c->side] += migrate_row_hash(vals, lens, n, &c->scratch);
    b->rows_hashed[c->side]++;
    if (c->n_cols) {
        if (!b->colsum && !(b->colsum = calloc(2 * c->n_cols, sizeof *b->colsum))) return -ENOMEM;
        for (size_t i = 0; i < n && i < c->n_cols; i++)
            b->colsum[c->side * c->n_cols + i] +=
                migrate_row_hash(&vals[i], &lens[i], 1, &c->scratch);
    }
    return c->scratch.oom ? -ENOMEM : 0;
}

static int cmp_bucket(const void *a, const void *b)
{
    return strcmp(((const bucket_t *)a)->bucket, ((const bucket_t *)b)->bucket);
}

/* Read one side into the map: counts, then (with columns) the checksums; or, with key_col
 * >= 0, only the rows (keys pass). */
static int read_side(const char *url, const char *shown, const verify_query_t *q, bucket_map_t *m,
                     int side, int key_col, FILE *err)
{
    const verify_reader_t *rd = verify_reader_for(url);
    void *st = NULL;
    char msg[1024] = "";
    side_ctx_t c = {.m = m, .side = side, .key_col = key_col, .n_cols = q->n_columns};
    int rc = rd->open(url, &st, msg, sizeof msg);
    if (rc < 0) goto fail;
    if (key_col < 0 && (rc = rd->buckets(st, q, on_bucket, &c, msg, sizeof msg)) < 0) goto fail;
    if (q->n_columns && (rc = rd->rows(st, q, on_row, &c, msg, sizeof msg)) < 0) goto fail;
    rd->close(st);
    buf_free(&c.scratch);
    return 0;
fail:
    if (st) rd->close(st);
    buf_free(&c.scratch);
    fprintf(err, "sluice verify: %s %s (%s): %s\n", side ? "--b" : "--a", shown, rd->name,
            msg[0] ? msg : strerror(-rc));
    return rc < 0 ? rc : -EIO;
}

/* The URL with the password from --X-password-env/-file, and its printable form. */
static int side_url(const char *url, const char *env, const char *file, char *out, size_t outlen,
                    char *shown, size_t shownlen, FILE *err)
{
    char pass[512], msg[512];
    int rc = migrate_read_password(env, file, pass, sizeof pass, msg, sizeof msg);
    if (rc < 0) {
        fprintf(err, "sluice verify: password: %s\n", msg);
        return -EINVAL;
    }
    if (rc == 1 && migrate_url_with_auth(url, NULL, pass, out, outlen) < 0) {
        fprintf(err, "sluice verify: cannot add the password to the URL\n");
        return -EINVAL;
    }
    if (rc == 0) snprintf(out, outlen, "%s", url);
    memset(pass, 0, sizeof pass);
    url_redact(out, shown, shownlen);
    return 0;
}

#define VERIFY_KEY_BUCKETS 3 /* differing buckets whose rows are listed */
#define VERIFY_KEYS_SHOWN 5  /* differing rows listed per bucket */

/* For a differing bucket: stream its rows from both sides keyed by the key column and print
 * the first few keys that are on one side only or whose rows differ. */
static int show_keys(const char *a, const char *sa, const char *b, const char *sb,
                     const verify_query_t *q0, const char *key, const bucket_t *bk, FILE *out,
                     FILE *err)
{
    verify_query_t q = *q0;
    const char *cols[MIGRATE_MAX_COLUMNS + 1];
    size_t n = q0->n_columns;
    int key_col = -1;
    for (size_t i = 0; i < n; i++) {
        cols[i] = q0->columns[i];
        if (strcmp(cols[i], key) == 0) key_col = (int)i;
    }
    if (key_col < 0) {
        cols[n] = key;
        key_col = (int)n++;
    }
    q.columns = cols;
    q.n_columns = n;
    int64_t t0;
    if (migrate_parse_wallclock(bk->bucket, strlen(bk->bucket), &t0) < 0) return 0;
    int64_t t1 = t0 + (q.by == VERIFY_BY_DAY ? 86400 : 3600);
    if (!q.has_since || q.since < t0) q.since = t0, q.has_since = 1;
    if (!q.has_until || q.until > t1) q.until = t1, q.has_until = 1;
    bucket_map_t m = {0};
    int rc = read_side(a, sa, &q, &m, 0, key_col, err);
    if (rc == 0) rc = read_side(b, sb, &q, &m, 1, key_col, err);
    if (rc == 0) {
        qsort(m.list, m.n, sizeof *m.list, cmp_bucket);
        size_t shown = 0, total = 0;
        for (size_t i = 0; i < m.n; i++) {
            bucket_t *r = &m.list[i];
            if (r->count[0] == r->count[1] && r->sum[0] == r->sum[1]) continue;
            if (total++ >= VERIFY_KEYS_SHOWN) continue;
            shown++;
            const char *what = !r->count[1]                 ? "only in a"
                               : !r->count[0]               ? "only in b"
                               : r->count[0] != r->count[1] ? "a different number of times"
                                                            : "different values";
            fprintf(out, "  %s %s=%s: %s", bk->bucket, key, r->bucket, what);
            if (r->count[0] != r->count[1] && r->count[0] && r->count[1])
                fprintf(out, " (%" PRIu64 " in a, %" PRIu64 " in b)", r->count[0], r->count[1]);
            fputc('\n', out);
        }
        if (total > shown)
            fprintf(out, "  %s: %zu more differing keys\n", bk->bucket, total - shown);
    }
    map_free(&m);
    return rc;
}

int migrate_verify(verify_opts_t *opts, FILE *out, FILE *err)
{
    verify_opts_t o = *opts;
    char msg[1024];
    static char a[2048], b[2048], sa[2048], sb[2048];
    if (side_url(o.a, o.a_password_env, o.a_password_file, a, sizeof a, sa, sizeof sa, err) < 0 ||
        side_url(o.b, o.b_password_env, o.b_password_file, b, sizeof b, sb, sizeof sb, err) < 0)
        return 2;
    if (!o.has_until && !o.all) {
        if (o.config && o.sink) {
            sluice_cfg_t cfg;
            int64_t until;
            if (cfg_load(&cfg, o.config, msg, sizeof msg) < 0) {
                fprintf(err, "sluice verify: %s\n", msg);
                return 2;
            }
            int rc = migrate_live_start(&cfg, o.sink, &until, msg, sizeof msg);
            cfg_free(&cfg);
            if (rc < 0) {
                fprintf(err, "sluice verify: no dual-write boundary: %s (give --until, or --all)\n",
                        msg);
                return 3;
            }
            o.until = until;
            o.has_until = 1;
            char t[20];
            migrate_format_time(until, t);
            fprintf(err,
                    "verify: --until defaults to sink %s's live start, %s UTC (rows after it come "
                    "through the live log; --all compares them too)\n",
                    o.sink, t);
        } else {
            fprintf(err, "verify: no --until: comparing every row up to now, so rows still on "
                         "their way through a live sink show as differences (give --config and "
                         "--sink for the dual-write boundary, or --until)\n");
        }
    }
    verify_query_t q = {.database = o.database,
                        .table = o.table,
                        .time_column = o.time_column,
                        .by = o.by,
                        .columns = o.columns,
                        .n_columns = o.n_columns,
                        .since = o.since,
                        .until = o.until,
                        .has_since = o.has_since,
                        .has_until = o.has_until};
    bucket_map_t m = {0};
    int code = 3;
    if (read_side(a, sa, &q, &m, 0, -1, err) < 0 || read_side(b, sb, &q, &m, 1, -1, err) < 0)
        goto out;
    qsort(m.list, m.n, sizeof *m.list, cmp_bucket);
    size_t differ = 0, keyed = 0;
    uint64_t total[2] = {0, 0};
    for (size_t i = 0; i < m.n; i++) {
        bucket_t *bk = &m.list[i];
        total[0] += bk->count[0];
        total[1] += bk->count[1];
        int bad = bk->count[0] != bk->count[1] || (o.n_columns && bk->sum[0] != bk->sum[1]);
        if (!bad) continue;
        if (differ++ == 0) {
            if (o.n_columns)
                fprintf(out, "%-20s %12s %12s  %-16s  %-16s  %s\n", "bucket", "count_a", "count_b",
                        "checksum_a", "checksum_b", "differing columns");
            else
                fprintf(out, "%-20s %12s %12s\n", "bucket", "count_a", "count_b");
        }
        if (o.n_columns) {
            fprintf(out, "%-20s %12" PRIu64 " %12" PRIu64 "  %016" PRIx64 "  %016" PRIx64 " ",
                    bk->bucket, bk->count[0], bk->count[1], bk->sum[0], bk->sum[1]);
            int any = 0;
            for (size_t c = 0; bk->colsum && c < o.n_columns; c++)
                if (bk->colsum[c] != bk->colsum[o.n_columns + c])
                    fprintf(out, "%s%s", any++ ? "," : " ", o.columns[c]);
            fputs(any ? "\n" : " -\n", out);
        } else {
            fprintf(out, "%-20s %12" PRIu64 " %12" PRIu64 "\n", bk->bucket, bk->count[0],
                    bk->count[1]);
        }
        if (o.n_columns && keyed < VERIFY_KEY_BUCKETS) {
            keyed++;
            if (show_keys(a, sa, b, sb, &q, o.key ? o.key : o.columns[0], bk, out, err) < 0)
                goto out;
        }
    }
    fprintf(out,
            "verify %s.%s by %s%s: %zu buckets, %" PRIu64 " rows in a, %" PRIu64
            " rows in b, %zu differ\n",
            o.database, o.table, o.by == VERIFY_BY_DAY ? "day" : "hour",
            o.n_columns ? " with checksums" : "", m.n, total[0], total[1], differ);
    code = differ ? 1 : 0;
out:
    map_free(&m);
    memset(a, 0, sizeof a);
    memset(b, 0, sizeof b);
    mysql_library_end(); /* a no-op unless the mysql reader initialised the library */
    return code;
}
