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
#include "migrate/migrate_internal.h"

typedef struct {
    char *bucket;
    uint64_t count[2], sum[2];
    uint64_t rows_hashed[2];
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
    for (size_t i = 0; i < m->n; i++)
        free(m->list[i].bucket);
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
        size_t h = migrate_fnv1a32(b, strlen(b)) & (n_slots - 1);
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
    size_t h = migrate_fnv1a32(b, strlen(b)) & (m->n_slots - 1);
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
    bucket_t *b = map_get(c->m, bucket);
    if (!b) return -ENOMEM;
    b->sum[c->side] += migrate_row_hash(vals, lens, n, &c->scratch);
    b->rows_hashed[c->side]++;
    return c->scratch.oom ? -ENOMEM : 0;
}

static int cmp_bucket(const void *a, const void *b)
{
    return strcmp(((const bucket_t *)a)->bucket, ((const bucket_t *)b)->bucket);
}

/* Read one side into the map: counts, then (with columns) the checksums. */
static int read_side(const char *url, const verify_query_t *q, bucket_map_t *m, int side, FILE *err)
{
    const verify_reader_t *rd = verify_reader_for(url);
    void *st = NULL;
    char msg[1024] = "";
    side_ctx_t c = {.m = m, .side = side};
    int rc = rd->open(url, &st, msg, sizeof msg);
    if (rc < 0) goto fail;
    if ((rc = rd->buckets(st, q, on_bucket, &c, msg, sizeof msg)) < 0) goto fail;
    if (q->n_columns && (rc = rd->rows(st, q, on_row, &c, msg, sizeof msg)) < 0) goto fail;
    rd->close(st);
    buf_free(&c.scratch);
    return 0;
fail:
    if (st) rd->close(st);
    buf_free(&c.scratch);
    fprintf(err, "sluice verify: %s (%s): %s\n", side ? "--b" : "--a", rd->name,
            msg[0] ? msg : strerror(-rc));
    return rc < 0 ? rc : -EIO;
}

int migrate_verify_cli(int argc, char **argv, FILE *out, FILE *err)
{
    verify_opts_t o;
    char msg[512];
    if (verify_parse_args(argc, argv, &o, msg, sizeof msg) < 0) {
        fprintf(err, "sluice verify: %s\n", msg);
        return 2;
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
    int code = 1;
    if (read_side(o.a, &q, &m, 0, err) < 0 || read_side(o.b, &q, &m, 1, err) < 0) goto out;
    qsort(m.list, m.n, sizeof *m.list, cmp_bucket);
    size_t differ = 0;
    uint64_t total[2] = {0, 0};
    for (size_t i = 0; i < m.n; i++) {
        bucket_t *b = &m.list[i];
        total[0] += b->count[0];
        total[1] += b->count[1];
        int bad = b->count[0] != b->count[1] || (o.n_columns && b->sum[0] != b->sum[1]);
        if (!bad) continue;
        if (differ++ == 0) {
            if (o.n_columns)
                fprintf(out, "%-20s %12s %12s  %-16s  %-16s\n", "bucket", "count_a", "count_b",
                        "checksum_a", "checksum_b");
            else
                fprintf(out, "%-20s %12s %12s\n", "bucket", "count_a", "count_b");
        }
        if (o.n_columns)
            fprintf(out, "%-20s %12" PRIu64 " %12" PRIu64 "  %016" PRIx64 "  %016" PRIx64 "\n",
                    b->bucket, b->count[0], b->count[1], b->sum[0], b->sum[1]);
        else
            fprintf(out, "%-20s %12" PRIu64 " %12" PRIu64 "\n", b->bucket, b->count[0],
                    b->count[1]);
    }
    fprintf(out,
            "verify %s.%s by %s%s: %zu buckets, %" PRIu64 " rows in a, %" PRIu64
            " rows in b, %zu differ\n",
            o.database, o.table, o.by == VERIFY_BY_DAY ? "day" : "hour",
            o.n_columns ? " with checksums" : "", m.n, total[0], total[1], differ);
    code = differ ? 1 : 0;
out:
    map_free(&m);
    mysql_library_end(); /* a no-op unless the mysql reader initialised the library */
    return code;
}
