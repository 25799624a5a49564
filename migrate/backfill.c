/* backfill.c — `sluice backfill`: copy a ClickHouse table's history into one configured sink
 * through the sink engine's own delivery code (sink_direct_deliver: same send, retries,
 * bisection), slice by slice. The SELECT of a slice is ordered by the time column and then
 * every column, so re-reading a slice yields the same rows in the same order and cuts them
 * into the same batches; each batch's label comes from (log id, sink, table, slice start,
 * batch index, plan), so a slice resent after a kill is deduplicated by StarRocks. Finished
 * slices are recorded (fsync'ed) in <wal.dir>/backfill/<sink>.<db.table>.progress; a rerun
 * starts at the first unfinished one. The default upper bound is the time the sink started
 * live delivery (meta "sink_started_ms:<sink>", written by sinks_start): rows newer than that
 * come through the live log, so backfill and dual-write never carry the same row. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "migrate/migrate.h"
#include "migrate/migrate_internal.h"
#include "sinks/sink.h"
#include "wal/wal.h"

enum { BF_OK = 0, BF_ERR = 1, BF_USAGE = 2, BF_WAL = 4 };

#define BF_SLICE_ATTEMPTS 8 /* a failing SELECT is retried this often before giving up */

typedef struct {
    const backfill_opts_t *o;
    const cfg_sink_t *sc;
    sink_t *sink;
    uint64_t logid;
    char base[900]; /* ClickHouse URL with a trailing '/' */
    buf_t order_by; /* ORDER BY list: the time column, then every column */
    char progress_path[4096], dlq_path[4096];
    FILE *progress; /* append; one "done" line per finished slice */
    FILE *err;
    int tty;

    /* the slice being copied */
    int64_t s_start, s_end;
    uint32_t plan;
    uint32_t batch_idx;
    buf_t batch;
    uint32_t batch_rows;
    uint64_t slice_rows;
    uint32_t max_rows;
    uint64_t max_bytes;
    char msg[1024];

    /* progress */
    uint64_t total_rows, done_rows, sent_rows, dead_rows;
    uint64_t slice_i, n_slices;
    struct timespec t0;
    double last_draw;
} bf_t;

static double elapsed(const bf_t *b)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - b->t0.tv_sec) + (double)(t.tv_nsec - b->t0.tv_nsec) / 1e9;
}

static void draw(bf_t *b, int final)
{
    double t = elapsed(b);
    if (b->tty && !final && t - b->last_draw < 0.2) return;
    b->last_draw = t;
    uint64_t now_rows = b->done_rows + b->slice_rows;
    double rate = t > 0 ? (double)b->sent_rows / t : 0;
    double left = b->total_rows > now_rows ? (double)(b->total_rows - now_rows) : 0;
    long eta = rate > 0 ? (long)(left / rate) : -1;
    char etas[32];
    if (eta >= 0)
        snprintf(etas, sizeof etas, "%ld:%02ld:%02ld", eta / 3600, eta / 60 % 60, eta % 60);
    else
        snprintf(etas, sizeof etas, "?");
    if (b->tty)
        fprintf(b->err,
                "\r\033[Kslice %" PRIu64 "/%" PRIu64 "  %" PRIu64 "/%" PRIu64
                " rows  %.0f rows/s  ETA %s%s",
                b->slice_i + 1, b->n_slices, now_rows, b->total_rows, rate, etas,
                final ? "\n" : "");
    else
        fprintf(b->err,
                "backfill: slice %" PRIu64 "/%" PRIu64 " rows %" PRIu64 "/%" PRIu64
                " rate %.0f/s eta %s\n",
                b->slice_i + 1, b->n_slices, now_rows, b->total_rows, rate, etas);
    fflush(b->err);
}

/* ---- source queries ---- */

static void where_clause(const bf_t *b, int64_t since, int64_t until, int has_since, buf_t *out)
{
    char s[20], u[20];
    migrate_format_time(since, s);
    migrate_format_time(until, u);
    buf_printf(out, " WHERE `%s` < toDateTime('%s')", b->o->time_column, u);
    if (has_since) buf_printf(out, " AND `%s` >= toDateTime('%s')", b->o->time_column, s);
    if (b->o->where) buf_printf(out, " AND (%s)", b->o->where);
}

/* DESCRIBE the table: the ORDER BY list (time column first, then every column: a total
 * order over distinct rows, so a slice always comes back in the same order). */
static int load_columns(bf_t *b)
{
    buf_t sql = {0}, reply = {0};
    int rc, found = 0;
    buf_printf(&sql, "DESCRIBE TABLE `%s`.`%s` FORMAT JSONEachRow", b->o->database, b->o->table);
    if ((rc = migrate_http_text(b->base, sql.data, &reply, b->msg, sizeof b->msg)) < 0) goto out;
    buf_printf(&b->order_by, "`%s`", b->o->time_column);
    for (char *line = reply.data, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        migrate_field_t f[16];
        int n = migrate_json_fields(line, (size_t)(nl - line), f, 16);
        buf_t name = {0}, type = {0}, kind = {0};
        int is_null;
        for (int i = 0; i < n; i++) {
            buf_t *t = f[i].key_len == 4 && memcmp(f[i].key, "name", 4) == 0             ? &name
                       : f[i].key_len == 4 && memcmp(f[i].key, "type", 4) == 0           ? &type
                       : f[i].key_len == 12 && memcmp(f[i].key, "default_type", 12) == 0 ? &kind
                                                                                         : NULL;
            if (t) migrate_json_value(f[i].val, f[i].val_len, t, &is_null);
        }
        if (name.data && strcmp(name.data, b->o->time_column) == 0) found = 1;
        /* Only what SELECT * returns (not MATERIALIZED/ALIAS) and what ORDER BY accepts. */
        int sortable = type.data && strncmp(type.data, "Map", 3) &&
                       strncmp(type.data, "Object", 6) && strncmp(type.data, "JSON", 4) &&
                       strncmp(type.data, "AggregateFunction", 17) &&
                       strncmp(type.data, "Nested", 6);
        int plain = !kind.data || !kind.data[0] || strcmp(kind.data, "DEFAULT") == 0;
        if (name.data && migrate_ident_ok(name.data) && sortable && plain)
            buf_printf(&b->order_by, ", `%s`", name.data);
        buf_free(&name);
        buf_free(&type);
        buf_free(&kind);
    }
    if (!found) {
        snprintf(b->msg, sizeof b->msg, "%s.%s has no column %s (give --time-column)",
                 b->o->database, b->o->table, b->o->time_column);
        rc = -ENOENT;
    }
out:
    buf_free(&sql);
    buf_free(&reply);
    return rc;
}

/* min(time) (when no --since) and the row count to copy, for the plan and the ETA. */
static int load_range(bf_t *b, int64_t *since, int64_t until, int has_since)
{
    buf_t sql = {0}, reply = {0};
    int rc;
    buf_printf(&sql, "SELECT toString(min(`%s`)) AS lo, count() AS n FROM `%s`.`%s`",
               b->o->time_column, b->o->database, b->o->table);
    where_clause(b, *since, until, has_since, &sql);
    buf_puts(&sql, " FORMAT JSONEachRow");
    if ((rc = migrate_http_text(b->base, sql.data, &reply, b->msg, sizeof b->msg)) < 0) goto out;
    migrate_field_t f[4];
    int n = reply.data ? migrate_json_fields(reply.data, strcspn(reply.data, "\n"), f, 4) : -1;
    rc = -EPROTO;
    snprintf(b->msg, sizeof b->msg, "unexpected reply to the range query");
    for (int i = 0; i < n; i++) {
        buf_t v = {0};
        int is_null;
        migrate_json_value(f[i].val, f[i].val_len, &v, &is_null);
        if (f[i].key_len == 1 && f[i].key[0] == 'n' && v.data)
            b->total_rows = strtoull(v.data, NULL, 10), rc = 0;
        if (f[i].key_len == 2 && f[i].key[0] == 'l' && v.data && !has_since &&
            migrate_parse_wallclock(v.data, v.len, since) < 0)
            *since = until; /* empty table: nothing to do */
        buf_free(&v);
    }
out:
    buf_free(&sql);
    buf_free(&reply);
    return rc;
}

/* ---- delivery ---- */

static int on_dead(void *ctx, const wal_dlq_entry_t *e)
{
    bf_t *b = ctx;
    buf_t line = {0};
    buf_printf(&line, "{\"ts_ms\":%" PRIu64 ",\"sink\":\"", (uint64_t)time(NULL) * 1000);
    buf_json_escape(&line, b->sc->name);
    buf_puts(&line, "\",\"db\":\"");
    buf_json_escape(&line, e->db ? e->db : "");
    buf_puts(&line, "\",\"table\":\"");
    buf_json_escape(&line, e->table);
    buf_printf(&line, "\",\"slice_start\":%" PRId64 ",\"n_rows\":%" PRIu32 ",\"error\":\"",
               b->s_start, e->n_rows);
    buf_json_escape(&line, e->error ? e->error : "");
    buf_puts(&line, "\",\"rows\":\"");
    buf_json_escape(&line, e->rows); /* NUL-terminated by the engine */
    buf_puts(&line, "\"}\n");
    int rc = -ENOMEM;
    FILE *f = NULL;
    if (line.oom) goto out;
    rc = -EIO;
    if (!(f = fopen(b->dlq_path, "a"))) goto out;
    /* Durability: the dead rows are on disk before the slice is marked done. */
    if (fwrite(line.data, 1, line.len, f) != line.len || fflush(f) || fsync(fileno(f))) goto out;
    b->dead_rows += e->n_rows;
    rc = 0;
out:
    if (f) fclose(f);
    if (rc < 0) snprintf(b->msg, sizeof b->msg, "%.900s: %s", b->dlq_path, strerror(-rc));
    buf_free(&line);
    return rc;
}

static int flush_batch(bf_t *b)
{
    if (b->batch_rows == 0) return 0;
    char label[MIGRATE_LABEL_MAX + 1];
    backfill_label(label, b->logid, b->sc->name, b->o->table, b->s_start, b->batch_idx, b->plan);
    int rc = sink_direct_deliver(b->sink, b->o->database, b->o->table, b->batch.data, b->batch.len,
                                 b->batch_rows, label, on_dead, b);
    if (rc < 0) {
        if (rc == -ENOENT)
            snprintf(b->msg, sizeof b->msg, "sink %s excludes table %s (include/exclude)",
                     b->sc->name, b->o->table);
        else if (!b->msg[0])
            snprintf(b->msg, sizeof b->msg, "delivery failed: %s", strerror(-rc));
        return rc;
    }
    b->sent_rows += b->batch_rows;
    b->batch_idx++;
    b->batch_rows = 0;
    b->batch.len = 0;
    draw(b, 0);
    return 0;
}

/* One row of the slice's stream. Batches are cut by row count and bytes only, both part of
 * the plan, so the same rows always make the same batches. */
static int on_row(void *ctx, const char *line, size_t len)
{
    bf_t *b = ctx;
    if (len == 0) return 0;
    if (line[0] != '{') { /* ClickHouse reports a failure after the 200 as plain text */
        snprintf(b->msg, sizeof b->msg, "ClickHouse: %.*s", (int)(len > 400 ? 400 : len), line);
        return -EPROTO;
    }
    if (b->batch_rows > 0 &&
        (b->batch_rows >= b->max_rows || b->batch.len + len + 1 > b->max_bytes)) {
        int rc = flush_batch(b);
        if (rc < 0) return rc;
    }
    if (buf_append(&b->batch, line, len) || buf_append(&b->batch, "\n", 1)) return -ENOMEM;
    b->batch_rows++;
    b->slice_rows++;
    return 0;
}

static int copy_slice(bf_t *b)
{
    buf_t sql = {0};
    buf_printf(&sql, "SELECT * FROM `%s`.`%s`", b->o->database, b->o->table);
    where_clause(b, b->s_start, b->s_end, 1, &sql);
    buf_printf(&sql, " ORDER BY %s FORMAT JSONEachRow", b->order_by.data);
    int rc = -ENOMEM;
    if (sql.oom) goto out;
    for (int attempt = 0;; attempt++) {
        b->batch_idx = 0;
        b->batch_rows = 0;
        b->batch.len = 0;
        b->slice_rows = 0;
        b->msg[0] = '\0';
        rc = migrate_http_lines(b->base, sql.data, on_row, b, b->msg, sizeof b->msg);
        if (rc == 0) rc = flush_batch(b);
        if (rc == 0 || rc == -ENOENT || attempt + 1 >= BF_SLICE_ATTEMPTS) break;
        /* Resending the slice's first batches is harmless: same rows, same labels. */
        fprintf(b->err, "%sbackfill: slice %" PRIu64 " failed (%s); retrying\n", b->tty ? "\n" : "",
                b->slice_i + 1, b->msg);
        b->sent_rows -= b->sent_rows >= b->slice_rows ? b->slice_rows : 0;
        sleep((unsigned)(attempt < 5 ? 1u << attempt : 30u));
    }
out:
    buf_free(&sql);
    return rc;
}

/* ---- progress file ---- */

/* Is "done START END ROWS PLAN" for this slice in the file? Fills *rows. */
static int slice_done(const char *path, int64_t start, int64_t end, uint32_t plan, uint64_t *rows)
{
    FILE *f = fopen(path, "r");
    char line[256];
    int done = 0;
    if (!f) return 0;
    while (fgets(line, sizeof line, f)) {
        int64_t s, e;
        uint64_t r;
        unsigned p;
        if (sscanf(line, "done %" SCNd64 " %" SCNd64 " %" SCNu64 " %x", &s, &e, &r, &p) == 4 &&
            s == start && e == end && p == plan) {
            *rows = r;
            done = 1;
        }
    }
    fclose(f);
    return done;
}

static int mark_done(bf_t *b)
{
    /* Durability: a slice is skipped on resume only once this line is on disk, and it is
     * written after every batch of the slice was acknowledged by the sink. */
    if (fprintf(b->progress, "done %" PRId64 " %" PRId64 " %" PRIu64 " %08x\n", b->s_start,
                b->s_end, b->slice_rows, b->plan) < 0 ||
        fflush(b->progress) || fsync(fileno(b->progress))) {
        snprintf(b->msg, sizeof b->msg, "%.900s: %s", b->progress_path, strerror(errno));
        return -EIO;
    }
    return 0;
}

static void name_part(char *out, size_t len, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < len; s++)
        out[k++] = (*s == '/' || *s == '\0') ? '_' : *s;
    out[k] = '\0';
}

/* ---- the command ---- */

/* Log id and the sink's live start from the wal (read-only: a running sluice may own it);
 * a log that does not exist yet is created, so backfill and the later live sink share the id. */
static int read_wal(const sluice_cfg_t *cfg, const char *sink, uint64_t *logid, int64_t *started_ms,
                    int *has_started, FILE *err)
{
    char msg[1024] = "", key[300], val[32];
    size_t len = 0;
    wal_t *w = NULL;
    int rc = wal_open_readonly(&w, cfg->wal.dir, msg, sizeof msg);
    if (rc == -ENOENT) rc = wal_open(&w, &cfg->wal, msg, sizeof msg);
    if (rc < 0) {
        fprintf(err, "sluice backfill: wal %s: %s\n", cfg->wal.dir, msg);
        return rc;
    }
    *logid = wal_log_id(w);
    snprintf(key, sizeof key, "sink_started_ms:%s", sink);
    *has_started = wal_meta_get(w, key, val, sizeof val, &len) == 0;
    if (*has_started) *started_ms = strtoll(val, NULL, 10);
    wal_close(w);
    return 0;
}

int migrate_backfill_cli(const sluice_cfg_t *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    backfill_opts_t o;
    bf_t b = {.o = &o, .err = err};
    char msg[512], dbdir[128];
    int code = BF_ERR, rc;
    if (backfill_parse_args(argc, argv, &o, msg, sizeof msg) < 0) {
        fprintf(err, "sluice backfill: %s\n", msg);
        return BF_USAGE;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (strcmp(cfg->sinks[i].name, o.sink) == 0) b.sc = &cfg->sinks[i];
    if (!b.sc) {
        fprintf(err, "sluice backfill: no sink named %s in %s\n", o.sink,
                cfg->path ? cfg->path : "the config");
        return BF_USAGE;
    }
    if (migrate_http_base(o.source, "clickhouse://", b.base, sizeof b.base, dbdir, sizeof dbdir) <
        0) {
        fprintf(err, "sluice backfill: --source: cannot parse URL %s\n", o.source);
        return BF_USAGE;
    }
    int64_t started_ms = 0;
    int has_started = 0;
    if (read_wal(cfg, o.sink, &b.logid, &started_ms, &has_started, err) < 0) return BF_WAL;
    int64_t since = o.since, until = o.until;
    if (!o.has_until) {
        if (!has_started) {
            fprintf(err,
                    "sluice backfill: sink %s has not started live delivery from this log, so "
                    "there is no dual-write boundary: give --until, or start `sluice run` with "
                    "the sink first (deploy/MIGRATION.md)\n",
                    o.sink);
            return BF_USAGE;
        }
        /* The boundary: rows from this second on arrived through the live log. */
        until = started_ms / 1000;
        char t[20];
        migrate_format_time(until, t);
        fprintf(err, "backfill: --until defaults to the sink's live start, %s UTC\n", t);
    }
    b.max_rows = b.sc->batch_max_rows ? b.sc->batch_max_rows : 10000;
    b.max_bytes = b.sc->batch_max_bytes ? b.sc->batch_max_bytes : (8u << 20);
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    b.tty = isatty(fileno(err));

    if ((rc = load_columns(&b)) < 0 || (rc = load_range(&b, &since, until, o.has_since)) < 0) {
        fprintf(err, "sluice backfill: source %s: %s\n", o.source, b.msg);
        goto out;
    }
    char dir[3000], tbl[600], sk[300];
    snprintf(dir, sizeof dir, "%.2900s/backfill", cfg->wal.dir);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(err, "sluice backfill: %s: %s\n", dir, strerror(errno));
        goto out;
    }
    name_part(sk, sizeof sk, o.sink);
    snprintf(msg, sizeof msg, "%s.%s", o.database, o.table);
    name_part(tbl, sizeof tbl, msg);
    snprintf(b.progress_path, sizeof b.progress_path, "%s/%s.%s.progress", dir, sk, tbl);
    snprintf(b.dlq_path, sizeof b.dlq_path, "%s/%s.%s.dlq.jsonl", dir, sk, tbl);
    if (!(b.progress = fopen(b.progress_path, "a"))) {
        fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(errno));
        goto out;
    }
    msg[0] = '\0';
    if ((rc = sink_direct_open(b.sc, b.logid, &b.sink, msg, sizeof msg)) < 0) {
        fprintf(err, "sluice backfill: %s\n", msg);
        goto out;
    }
    b.n_slices = migrate_slice_count(since, until, o.slice_s);
    uint64_t skipped = 0;
    for (b.slice_i = 0; b.slice_i < b.n_slices; b.slice_i++) {
        migrate_slice_get(since, until, o.slice_s, b.slice_i, &b.s_start, &b.s_end);
        b.plan = backfill_plan_hash(o.where, o.time_column, b.s_end, b.max_rows, b.max_bytes);
        uint64_t rows = 0;
        if (slice_done(b.progress_path, b.s_start, b.s_end, b.plan, &rows)) {
            b.done_rows += rows;
            skipped++;
            continue;
        }
        if ((rc = copy_slice(&b)) < 0 || (rc = mark_done(&b)) < 0) {
            char s[20];
            migrate_format_time(b.s_start, s);
            fprintf(err, "%ssluice backfill: slice %s: %s (rerun to resume here)\n",
                    b.tty ? "\n" : "", s, b.msg[0] ? b.msg : strerror(-rc));
            goto out;
        }
        b.done_rows += b.slice_rows;
        b.slice_rows = 0;
        draw(&b, 0);
    }
    if (b.n_slices) b.slice_i = b.n_slices - 1;
    draw(&b, 1);
    {
        char s[20], u[20];
        migrate_format_time(since, s);
        migrate_format_time(until, u);
        fprintf(out,
                "backfill %s.%s -> %s: [%s, %s) UTC, %" PRIu64 " slices (%" PRIu64
                " done before), %" PRIu64 " rows sent, %" PRIu64 " dead-lettered%s%s\n",
                o.database, o.table, o.sink, s, u, b.n_slices, skipped, b.sent_rows, b.dead_rows,
                b.dead_rows ? " into " : "", b.dead_rows ? b.dlq_path : "");
    }
    code = BF_OK;
out:
    if (b.sink) sink_direct_close(b.sink);
    if (b.progress) fclose(b.progress);
    buf_free(&b.order_by);
    buf_free(&b.batch);
    return code;
}
