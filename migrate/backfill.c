/* backfill.c — `sluice backfill`: copy a ClickHouse table's history into one configured sink
 * through the sink engine's own delivery code (sink_direct_deliver: same send, retries,
 * bisection), slice by slice, several slices in flight. The SELECT of a slice is ordered by
 * the time column and then every column, so re-reading a slice yields the same rows in the
 * same order and cuts them into the same batches; each batch's label comes from (log id,
 * sink, table, slice start, batch index, plan), so a slice resent after a kill is
 * deduplicated by StarRocks. The progress file <wal.dir>/backfill/<sink>.<db.table>.progress
 * records the plan, each slice's bounds before its first batch and each finished slice, so a
 * rerun redoes the unfinished slices with the same bounds and labels, and refuses a changed
 * plan. Slices grow (up to --max-slice) while they stay small and quick. The default upper
 * bound is the time the sink started live delivery (meta "sink_started_ms:<sink>", written
 * by sinks_start): rows newer than that come through the live log. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "migrate/migrate.h"
#include "common/url.h"
#include "migrate/migrate_internal.h"
#include "sinks/sink.h"
#include "wal/wal.h"

enum { BF_OK = 0, BF_ERR = 1, BF_USAGE = 2, BF_REFUSED = 3, BF_WAL = 4, BF_DEAD = 5 };

#define BF_SLICE_ATTEMPTS 8 /* a failing SELECT is retried this often */
#define BF_SLICE_ROWS 50000 /* slices grow across grid cells while they stay under this */
#define BF_MAX_PARALLEL 16
#define BF_DRY_RUN_LINES 2000

typedef struct {
    int64_t start, end;
} bf_range_t;

typedef struct {
    int64_t start; /* a grid cell of --slice seconds */
    uint64_t rows;
} bf_cell_t;

typedef struct bf bf_t;

/* One slice copier: a thread with its own source transfer and sink handle. */
typedef struct {
    bf_t *b;
    pthread_t th;
    int started;
    sink_t *sink;
    int64_t s_start, s_end;
    uint32_t plan, batch_idx, batch_rows;
    buf_t batch;
    uint64_t slice_rows, slice_bytes;
    char msg[1024];
    uint64_t retries_seen;   /* main thread: the sink's retries last reported */
    uint64_t inflight_added; /* rows of the current slice counted in b->inflight_rows (mu) */
} bf_worker_t;

struct bf {
    const backfill_opts_t *o;
    const sluice_cfg_t *cfg;
    const cfg_sink_t *sc;
    uint64_t logid;
    char source[1200]; /* with credentials: never printed */
    char shown[1200];  /* the source as printed (password ***) */
    char base[1200];   /* source URL with a trailing '/' */
    buf_t order_by;    /* ORDER BY list: the time column, then every column */
    char progress_path[4096], dlq_path[4096];
    FILE *err, *out;
    int tty;
    uint32_t max_rows;
    uint64_t max_bytes;
    int64_t since, until;
    char plan_line[1024];
    bf_cell_t *cells; /* rows per grid cell in [since, until), by start; empty cells absent */
    size_t n_cells;

    /* Shared by the workers and the main thread: protected by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    FILE *progress;   /* append: "begin" and "done" lines, fsync'ed */
    bf_range_t *redo; /* begun in an earlier run, not done: redone with the same bounds */
    size_t n_redo, i_redo;
    int64_t next_start;
    uint64_t total_rows, done_rows, sent_rows, inflight_rows, dead_rows;
    uint64_t slices_done, slices_before, slices_begun;
    unsigned running;
    int failed, fail_code;
    char fail_msg[1400];

    struct timespec t0;
    double last_draw, last_retry_note;
    bf_worker_t w[BF_MAX_PARALLEL];
};

/* The message a Ctrl-C prints; written before the handler is installed (signal-safe write). */
static char interrupt_msg[1024];

static void on_interrupt(int sig)
{
    (void)sig;
    ssize_t r = write(STDERR_FILENO, interrupt_msg, strlen(interrupt_msg));
    (void)r;
    _exit(130);
}

static double elapsed(const bf_t *b)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - b->t0.tv_sec) + (double)(t.tv_nsec - b->t0.tv_nsec) / 1e9;
}

static void fmt_dur(double s, char *out, size_t len)
{
    long v = s < 0 ? 0 : (long)(s + 0.5);
    snprintf(out, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
}

static void utc_now(char out[24])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- progress output (mu held) ---- */

static int64_t slice_end(const bf_t *b, int64_t start);
static int grow(void **arr, size_t n, size_t elem);

static uint64_t slices_estimate(const bf_t *b)
{
    uint64_t left = 0;
    for (int64_t a = b->next_start; a < b->until; a = slice_end(b, a))
        left++;
    return b->slices_before + b->slices_begun + (b->n_redo - b->i_redo) + left;
}

/* One progress report: the line rewritten in place on a terminal, else one timestamped line
 * (or a JSON object) per finished slice. slice_done: the worker that just finished, or NULL. */
static void report(bf_t *b, const bf_worker_t *slice_done)
{
    double t = elapsed(b);
    uint64_t now_rows = b->done_rows + b->inflight_rows;
    double rate = t > 0 ? (double)(b->sent_rows + b->inflight_rows) / t : 0;
    double left = b->total_rows > now_rows ? (double)(b->total_rows - now_rows) : 0;
    double eta = rate > 0 ? left / rate : -1;
    uint64_t i = b->slices_done + b->slices_before, n = slices_estimate(b);
    int pct = b->total_rows ? (int)(100.0 * (double)now_rows / (double)b->total_rows) : 100;
    char etas[32], ts[24];
    if (eta >= 0)
        fmt_dur(eta, etas, sizeof etas);
    else
        snprintf(etas, sizeof etas, "?");
    utc_now(ts);
    if (b->o->json) {
        if (!slice_done) return;
        char s[20], e[20];
        migrate_format_time(slice_done->s_start, s);
        migrate_format_time(slice_done->s_end, e);
        fprintf(b->err,
                "{\"event\":\"slice\",\"ts\":\"%s\",\"slice\":%" PRIu64 ",\"slices\":%" PRIu64
                ",\"start\":\"%s\",\"end\":\"%s\",\"slice_rows\":%" PRIu64 ",\"rows\":%" PRIu64
                ",\"rows_total\":%" PRIu64
                ",\"rows_per_s\":%.0f,\"eta_s\":%.0f,\"dead_rows\":%" PRIu64 "}\n",
                ts, i, n, s, e, slice_done->slice_rows, now_rows, b->total_rows, rate, eta,
                b->dead_rows);
    } else if (b->tty) {
        b->last_draw = t;
        fprintf(b->err,
                "\r\033[Kslice %" PRIu64 "/%" PRIu64 "  %" PRIu64 "/%" PRIu64
                " rows (%d%%)  %.0f rows/s  ETA %s%s",
                i, n, now_rows, b->total_rows, pct, rate, etas,
                b->dead_rows ? "  DEAD-LETTERED ROWS" : "");
    } else {
        if (!slice_done) return;
        char s[20], e[20];
        migrate_format_time(slice_done->s_start, s);
        migrate_format_time(slice_done->s_end, e);
        fprintf(b->err,
                "%s backfill: slice %" PRIu64 "/%" PRIu64 " [%s, %s) %" PRIu64 " rows; %" PRIu64
                "/%" PRIu64 " rows (%d%%), %.0f rows/s, ETA %s%s\n",
                ts, i, n, s, e, slice_done->slice_rows, now_rows, b->total_rows, pct, rate, etas,
                b->dead_rows ? ", rows dead-lettered" : "");
    }
    fflush(b->err);
}

/* A line that must not be overwritten by the progress line (warnings, retries). mu held. */
static void note(bf_t *b, const char *what, const char *msg)
{
    char ts[24];
    utc_now(ts);
    if (b->o->json) {
        buf_t j = {0};
        buf_printf(&j, "{\"event\":\"%s\",\"ts\":\"%s\",\"message\":\"", what, ts);
        buf_json_escape(&j, msg);
        buf_puts(&j, "\"}\n");
        if (j.data) fputs(j.data, b->err);
        buf_free(&j);
    } else {
        fprintf(b->err, "%s%s backfill: %s: %s\n", b->tty ? "\r\033[K" : "", ts, what, msg);
    }
    fflush(b->err);
}

static void fail_locked(bf_t *b, int code, const char *msg)
{
    if (!b->failed) {
        b->failed = 1;
        b->fail_code = code;
        snprintf(b->fail_msg, sizeof b->fail_msg, "%.1300s", msg);
    }
    pthread_cond_broadcast(&b->cv);
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
static int load_columns(bf_t *b, char *msg, size_t msglen)
{
    buf_t sql = {0}, reply = {0};
    int rc, found = 0;
    buf_printf(&sql, "DESCRIBE TABLE `%s`.`%s` FORMAT JSONEachRow", b->o->database, b->o->table);
    if ((rc = migrate_http_text(b->base, sql.data, &reply, msg, msglen)) < 0) goto out;
    buf_printf(&b->order_by, "`%s`", b->o->time_column);
    for (char *line = reply.data, *nl; line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        json_member_t f[16];
        int n = json_members(line, (size_t)(nl - line), f, 16);
        buf_t name = {0}, type = {0}, kind = {0};
        int is_null;
        for (int i = 0; i < n; i++) {
            buf_t *t = f[i].key_len == 4 && memcmp(f[i].key, "name", 4) == 0             ? &name
                       : f[i].key_len == 4 && memcmp(f[i].key, "type", 4) == 0           ? &type
                       : f[i].key_len == 12 && memcmp(f[i].key, "default_type", 12) == 0 ? &kind
                                                                                         : NULL;
            if (t) json_value_text(f[i].val, f[i].val_len, t, &is_null);
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
        snprintf(msg, msglen, "%s.%s has no column %s (give --time-column)", b->o->database,
                 b->o->table, b->o->time_column);
        rc = -ENOENT;
    }
out:
    buf_free(&sql);
    buf_free(&reply);
    return rc;
}

/* min(time) (when no --since) and the row count to copy, for the plan and the ETA. */
static int load_range(bf_t *b, int64_t *since, int64_t until, int has_since, char *msg,
                      size_t msglen)
{
    buf_t sql = {0}, reply = {0};
    int rc;
    buf_printf(&sql, "SELECT toString(min(`%s`)) AS lo, count() AS n FROM `%s`.`%s`",
               b->o->time_column, b->o->database, b->o->table);
    where_clause(b, *since, until, has_since, &sql);
    buf_puts(&sql, " FORMAT JSONEachRow");
    if ((rc = migrate_http_text(b->base, sql.data, &reply, msg, msglen)) < 0) goto out;
    json_member_t f[4];
    int n = reply.data ? json_members(reply.data, strcspn(reply.data, "\n"), f, 4) : -1;
    rc = -EPROTO;
    snprintf(msg, msglen, "unexpected reply to the range query");
    for (int i = 0; i < n; i++) {
        buf_t v = {0};
        int is_null;
        json_value_text(f[i].val, f[i].val_len, &v, &is_null);
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

/* Rows per --slice grid cell of [since, until), from one GROUP BY: what slice_end cuts by.
 * The cell is computed from the wall-clock string read as UTC, as the slice bounds are. */
static int load_cells(bf_t *b, char *msg, size_t msglen)
{
    buf_t sql = {0}, reply = {0};
    int64_t g = b->o->slice_s;
    buf_printf(&sql,
               "SELECT intDiv(toUInt32(toDateTime(toString(toDateTime(`%s`)), 'UTC')), %" PRId64
               ") * %" PRId64 " AS s, count() AS n FROM `%s`.`%s`",
               b->o->time_column, g, g, b->o->database, b->o->table);
    where_clause(b, b->since, b->until, 1, &sql);
    buf_puts(&sql, " GROUP BY s ORDER BY s FORMAT JSONEachRow");
    int rc = migrate_http_text(b->base, sql.data, &reply, msg, msglen);
    for (char *line = reply.data, *nl; rc == 0 && line && *line; line = nl + 1) {
        nl = strchr(line, '\n');
        json_member_t f[4];
        int n = json_members(line, (size_t)(nl - line), f, 4);
        buf_t cs = {0}, cn = {0};
        int is_null;
        for (int i = 0; i < n; i++) {
            if (f[i].key_len == 1 && f[i].key[0] == 's')
                json_value_text(f[i].val, f[i].val_len, &cs, &is_null);
            if (f[i].key_len == 1 && f[i].key[0] == 'n')
                json_value_text(f[i].val, f[i].val_len, &cn, &is_null);
        }
        if (cs.data && cn.data) {
            if (grow((void **)&b->cells, b->n_cells, sizeof *b->cells) < 0) {
                rc = -ENOMEM;
            } else {
                b->cells[b->n_cells].start = strtoll(cs.data, NULL, 10);
                b->cells[b->n_cells++].rows = strtoull(cn.data, NULL, 10);
            }
        } else {
            snprintf(msg, msglen, "unexpected reply to the slice count query: %.200s", line);
            rc = -EPROTO;
        }
        buf_free(&cs);
        buf_free(&cn);
    }
    buf_free(&sql);
    buf_free(&reply);
    return rc;
}

/* ---- delivery (worker threads) ---- */

static int on_dead(void *ctx, const wal_dlq_entry_t *e)
{
    bf_worker_t *w = ctx;
    bf_t *b = w->b;
    buf_t line = {0};
    buf_printf(&line, "{\"ts_ms\":%" PRIu64 ",\"sink\":\"", (uint64_t)time(NULL) * 1000);
    buf_json_escape(&line, b->sc->name);
    buf_puts(&line, "\",\"db\":\"");
    buf_json_escape(&line, e->db ? e->db : "");
    buf_puts(&line, "\",\"table\":\"");
    buf_json_escape(&line, e->table);
    buf_printf(&line, "\",\"slice_start\":%" PRId64 ",\"n_rows\":%" PRIu32 ",\"error\":\"",
               w->s_start, e->n_rows);
    buf_json_escape(&line, e->error ? e->error : "");
    buf_puts(&line, "\",\"rows\":\"");
    buf_json_escape(&line, e->rows); /* NUL-terminated by the engine */
    buf_puts(&line, "\"}\n");
    int rc = -ENOMEM;
    FILE *f = NULL;
    pthread_mutex_lock(&b->mu);
    if (line.oom) goto out;
    rc = -EIO;
    if (!(f = fopen(b->dlq_path, "a"))) goto out;
    /* Durability: the dead rows are on disk before the slice is marked done. */
    if (fwrite(line.data, 1, line.len, f) != line.len || fflush(f) || fsync(fileno(f))) goto out;
    b->dead_rows += e->n_rows;
    rc = 0;
out:
    pthread_mutex_unlock(&b->mu);
    if (f) fclose(f);
    if (rc < 0) snprintf(w->msg, sizeof w->msg, "%.900s: %s", b->dlq_path, strerror(-rc));
    buf_free(&line);
    return rc;
}

static int flush_batch(bf_worker_t *w)
{
    bf_t *b = w->b;
    if (w->batch_rows == 0) return 0;
    char label[MIGRATE_LABEL_MAX + 1];
    backfill_label(label, b->logid, b->sc->name, b->o->table, w->s_start, w->batch_idx, w->plan);
    int rc = sink_direct_deliver(w->sink, b->o->database, b->o->table, w->batch.data, w->batch.len,
                                 w->batch_rows, label, on_dead, w);
    if (rc < 0) {
        sink_stats_t st;
        sink_get_stats(w->sink, &st);
        if (rc == -EACCES)
            snprintf(w->msg, sizeof w->msg, "sink %s refused the load into %s.%s: %s", b->sc->name,
                     b->o->database, b->o->table, st.last_error);
        else if (!w->msg[0])
            snprintf(w->msg, sizeof w->msg, "delivery failed: %s", strerror(-rc));
        return rc;
    }
    pthread_mutex_lock(&b->mu);
    b->inflight_rows += w->batch_rows;
    w->inflight_added += w->batch_rows;
    pthread_mutex_unlock(&b->mu);
    w->batch_idx++;
    w->batch_rows = 0;
    w->batch.len = 0;
    return 0;
}

/* One row of the slice's stream. Batches are cut by row count and bytes only, both part of
 * the plan, so the same rows always make the same batches. */
static int on_row(void *ctx, const char *line, size_t len)
{
    bf_worker_t *w = ctx;
    if (len == 0) return 0;
    if (line[0] != '{') { /* ClickHouse reports a failure after the 200 as plain text */
        snprintf(w->msg, sizeof w->msg, "ClickHouse: %.*s", (int)(len > 400 ? 400 : len), line);
        return -EPROTO;
    }
    if (w->batch_rows > 0 &&
        (w->batch_rows >= w->b->max_rows || w->batch.len + len + 1 > w->b->max_bytes)) {
        int rc = flush_batch(w);
        if (rc < 0) return rc;
    }
    if (buf_append(&w->batch, line, len) || buf_append(&w->batch, "\n", 1)) return -ENOMEM;
    w->batch_rows++;
    w->slice_rows++;
    w->slice_bytes += len + 1;
    return 0;
}

static int copy_slice(bf_worker_t *w)
{
    bf_t *b = w->b;
    buf_t sql = {0};
    buf_printf(&sql, "SELECT * FROM `%s`.`%s`", b->o->database, b->o->table);
    where_clause(b, w->s_start, w->s_end, 1, &sql);
    buf_printf(&sql, " ORDER BY %s FORMAT JSONEachRow", b->order_by.data);
    int rc = -ENOMEM;
    if (sql.oom) goto out;
    for (int attempt = 0;; attempt++) {
        pthread_mutex_lock(&b->mu); /* a retried slice's batches are counted again */
        b->inflight_rows -= w->inflight_added;
        w->inflight_added = 0;
        pthread_mutex_unlock(&b->mu);
        w->batch_idx = 0;
        w->batch_rows = 0;
        w->batch.len = 0;
        w->slice_rows = 0;
        w->slice_bytes = 0;
        w->msg[0] = '\0';
        rc = migrate_http_lines(b->base, sql.data, on_row, w, w->msg, sizeof w->msg);
        if (rc == 0) rc = flush_batch(w);
        /* Refusals (sink 401/403, unknown table; source 4xx) do not get better by waiting. */
        if (rc == 0 || rc == -EACCES || rc == -ENOENT || rc == -EINVAL ||
            attempt + 1 >= BF_SLICE_ATTEMPTS)
            break;
        /* Resending the slice's first batches is harmless: same rows, same labels. */
        pthread_mutex_lock(&b->mu);
        char m[1300];
        snprintf(m, sizeof m, "slice at %" PRId64 " failed (%s); retrying (attempt %d of %d)",
                 w->s_start, w->msg, attempt + 2, BF_SLICE_ATTEMPTS);
        note(b, "retry", m);
        int stop = b->failed;
        pthread_mutex_unlock(&b->mu);
        if (stop) break;
        sleep((unsigned)(attempt < 5 ? 1u << attempt : 30u));
    }
out:
    buf_free(&sql);
    return rc;
}

/* ---- progress file ---- */

/* Durability: a slice's bounds are on disk before its first batch is sent, so a rerun after
 * a kill cuts exactly this slice again (same rows, same batches, same labels: deduplicated),
 * whatever the per-cell counts say by then. mu held. */
static int progress_line(bf_t *b, const char *line)
{
    if (fputs(line, b->progress) < 0 || fflush(b->progress) || fsync(fileno(b->progress)))
        return -EIO;
    return 0;
}

/* Next slice for a worker, or 0 when there is none (all handed out, or a failure). mu held. */
static int take_slice(bf_t *b, bf_worker_t *w)
{
    if (b->failed) return 0;
    if (b->i_redo < b->n_redo) {
        w->s_start = b->redo[b->i_redo].start;
        w->s_end = b->redo[b->i_redo].end;
        b->i_redo++;
        return 1;
    }
    if (b->next_start >= b->until) return 0;
    w->s_start = b->next_start;
    w->s_end = slice_end(b, b->next_start);
    char line[96];
    snprintf(line, sizeof line, "begin %" PRId64 " %" PRId64 "\n", w->s_start, w->s_end);
    if (progress_line(b, line) < 0) {
        char m[4200];
        snprintf(m, sizeof m, "%s: %s", b->progress_path, strerror(errno));
        fail_locked(b, BF_ERR, m);
        return 0;
    }
    b->next_start = w->s_end;
    b->slices_begun++;
    return 1;
}

static int64_t floor_to(int64_t a, int64_t g)
{
    return (a / g - (a % g < 0 ? 1 : 0)) * g;
}

/* End of the slice starting at start: whole --slice grid cells are added while the slice
 * stays under BF_SLICE_ROWS rows (by the per-cell counts read before the first slice) and
 * within --max-slice. Only the data decides, never timing or which slice finished first, so
 * a rerun of the same plan cuts the same slices under the same labels. */
static int64_t slice_end(const bf_t *b, int64_t start)
{
    int64_t g = b->o->slice_s, cell = floor_to(start, g), end = cell + g;
    size_t lo = 0, hi = b->n_cells;
    while (lo < hi) { /* first cell >= this one */
        size_t mid = lo + (hi - lo) / 2;
        if (b->cells[mid].start < cell)
            lo = mid + 1;
        else
            hi = mid;
    }
    uint64_t acc = 0;
    if (lo < b->n_cells && b->cells[lo].start == cell) acc = b->cells[lo++].rows;
    while (end < b->until && end + g - start <= b->o->max_slice_s) {
        uint64_t next = lo < b->n_cells && b->cells[lo].start == end ? b->cells[lo].rows : 0;
        if (acc > 0 && acc + next > BF_SLICE_ROWS) break;
        if (next) lo++;
        acc += next;
        end += g;
    }
    return end > b->until ? b->until : end;
}

static void *worker_main(void *arg)
{
    bf_worker_t *w = arg;
    bf_t *b = w->b;
    pthread_mutex_lock(&b->mu);
    while (take_slice(b, w)) {
        pthread_mutex_unlock(&b->mu);
        w->plan =
            backfill_plan_hash(b->o->where, b->o->time_column, w->s_end, b->max_rows, b->max_bytes);
        int rc = copy_slice(w);
        pthread_mutex_lock(&b->mu);
        if (rc < 0) {
            char s[20], m[1400];
            migrate_format_time(w->s_start, s);
            snprintf(m, sizeof m, "slice %s: %s", s, w->msg[0] ? w->msg : strerror(-rc));
            fail_locked(b, rc == -EACCES || rc == -EINVAL ? BF_REFUSED : BF_ERR, m);
            break;
        }
        char line[128];
        snprintf(line, sizeof line, "done %" PRId64 " %" PRId64 " %" PRIu64 " %08x\n", w->s_start,
                 w->s_end, w->slice_rows, w->plan);
        /* Durability: written after every batch of the slice was acknowledged by the sink
         * (and its dead rows fsync'ed), so a slice skipped on resume is really there. */
        if (progress_line(b, line) < 0) {
            char m[4200];
            snprintf(m, sizeof m, "%s: %s", b->progress_path, strerror(errno));
            fail_locked(b, BF_ERR, m);
            break;
        }
        b->inflight_rows -= w->inflight_added; /* this slice's rows: from in flight to done */
        w->inflight_added = 0;
        b->done_rows += w->slice_rows;
        b->sent_rows += w->slice_rows;
        b->slices_done++;
        report(b, w);
    }
    b->running--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

static void name_part(char *out, size_t len, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < len; s++)
        out[k++] = (*s == '/') ? '_' : *s;
    out[k] = '\0';
}

/* ---- plan ---- */

static void make_plan_line(const bf_t *b, char *out, size_t len)
{
    const backfill_opts_t *o = b->o;
    snprintf(out, len,
             "plan v2 sink=%s table=%s.%s time_column=%s since=%" PRId64 " until=%" PRId64
             " slice=%" PRId64 " max_slice=%" PRId64 " slice_rows=%u where=%08x batch=%" PRIu32
             "/%" PRIu64 "\n",
             o->sink, o->database, o->table, o->time_column, b->since, b->until, o->slice_s,
             o->max_slice_s, (unsigned)BF_SLICE_ROWS,
             o->where ? fnv1a32(o->where, strlen(o->where)) : 0, b->max_rows, b->max_bytes);
}

static const char *plan_field(const char *line, const char *key, char *out, size_t len)
{
    char k[40];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    if (!p) return NULL;
    p += strlen(k);
    size_t n = strcspn(p, " \n");
    snprintf(out, len, "%.*s", (int)n, p);
    return out;
}

/* What differs between the recorded plan and this one, in option terms ("" when the same). */
static void plan_diff(const char *old, const char *now, char *out, size_t len)
{
    static const struct {
        const char *key, *opt;
    } fields[] = {{"sink", "--sink"},
                  {"table", "--table"},
                  {"time_column", "--time-column"},
                  {"since", "--since"},
                  {"until", "--until"},
                  {"slice", "--slice"},
                  {"max_slice", "--max-slice"},
                  {"where", "--where"},
                  {"batch", "the sink's batch.max_rows/max_bytes"}};
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char a[256], c[256];
        const char *x = plan_field(old, fields[i].key, a, sizeof a);
        const char *y = plan_field(now, fields[i].key, c, sizeof c);
        if (x && y && strcmp(x, y) == 0) continue;
        char ta[40] = "", tc[40] = "";
        int is_time = strcmp(fields[i].key, "since") == 0 || strcmp(fields[i].key, "until") == 0;
        if (is_time && x) migrate_format_time(strtoll(x, NULL, 10), ta);
        if (is_time && y) migrate_format_time(strtoll(y, NULL, 10), tc);
        int n = snprintf(out + k, len - k, "%s%s was %s, now %s", k ? "; " : "", fields[i].opt,
                         is_time ? ta : (x ? x : "?"), is_time ? tc : (y ? y : "?"));
        if (n < 0 || (size_t)n >= len - k) break;
        k += (size_t)n;
    }
}

/* The recorded plan line's options, for "to continue, run again with ...". */
static void plan_as_options(const char *old, char *out, size_t len)
{
    char v[256], t1[20], t2[20];
    long long since = plan_field(old, "since", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long until = plan_field(old, "until", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long slice = plan_field(old, "slice", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long maxs = plan_field(old, "max_slice", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    migrate_format_time(since, t1);
    migrate_format_time(until, t2);
    snprintf(out, len, "--since '%s' --until '%s' --slice %llds --max-slice %llds", t1, t2, slice,
             maxs);
}

typedef struct {
    char plan[1024];
    int has_plan, old_format;
    bf_range_t *begun;
    size_t n_begun;
    bf_range_t *done;
    uint64_t *done_rows;
    size_t n_done;
} bf_progress_t;

static void progress_free(bf_progress_t *p)
{
    free(p->begun);
    free(p->done);
    free(p->done_rows);
    memset(p, 0, sizeof *p);
}

static int grow(void **arr, size_t n, size_t elem)
{
    if (n & (n - 1) && n) return 0; /* capacity is the next power of two */
    void *x = realloc(*arr, (n ? n * 2 : 16) * elem);
    if (!x) return -ENOMEM;
    *arr = x;
    return 0;
}

/* Read a progress file (missing = empty). Torn last lines (a crash mid-write) are ignored. */
static int progress_read(const char *path, bf_progress_t *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : -errno;
    char line[1200];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        int64_t s, e;
        uint64_t r;
        unsigned pl;
        if (strncmp(line, "plan ", 5) == 0 && strchr(line, '\n')) {
            snprintf(p->plan, sizeof p->plan, "%.1000s", line);
            p->has_plan = 1;
        } else if (sscanf(line, "begin %" SCNd64 " %" SCNd64, &s, &e) == 2 && strchr(line, '\n')) {
            if ((rc = grow((void **)&p->begun, p->n_begun, sizeof *p->begun)) < 0) break;
            p->begun[p->n_begun++] = (bf_range_t){s, e};
        } else if (sscanf(line, "done %" SCNd64 " %" SCNd64 " %" SCNu64 " %x", &s, &e, &r, &pl) ==
                       4 &&
                   strchr(line, '\n')) {
            if ((rc = grow((void **)&p->done, p->n_done, sizeof *p->done)) < 0 ||
                (rc = grow((void **)&p->done_rows, p->n_done, sizeof *p->done_rows)) < 0)
                break;
            p->done[p->n_done] = (bf_range_t){s, e};
            p->done_rows[p->n_done++] = r;
            if (!p->has_plan) p->old_format = 1;
        }
    }
    fclose(f);
    return rc;
}

static int is_done(const bf_progress_t *p, int64_t s, int64_t e)
{
    for (size_t i = 0; i < p->n_done; i++)
        if (p->done[i].start == s && p->done[i].end == e) return 1;
    return 0;
}

/* ---- WAL ---- */

/* Log id and the sink's live start from the wal (read-only: a running sluice may own it).
 * A missing log is created only when allowed (create) and said so: an empty log where the
 * running instance's was expected is a wrong wal.dir, not a fresh start. */
static int read_wal(const sluice_cfg_t *cfg, const char *sink, int create, uint64_t *logid,
                    int64_t *started_ms, int *has_started, int *created, char *msg, size_t msglen)
{
    char key[300], val[32];
    size_t len = 0;
    wal_t *w = NULL;
    *has_started = 0;
    int rc = wal_open_readonly(&w, cfg->wal.dir, msg, msglen);
    if (rc == -ENOENT && !create) return -ENOENT;
    if (rc == -ENOENT) {
        rc = wal_open(&w, &cfg->wal, msg, msglen);
        *created = rc == 0;
    }
    if (rc < 0) return rc;
    *logid = wal_log_id(w);
    snprintf(key, sizeof key, "sink_started_ms:%s", sink);
    *has_started = wal_meta_get(w, key, val, sizeof val, &len) == 0;
    if (*has_started) *started_ms = strtoll(val, NULL, 10);
    wal_close(w);
    return 0;
}

int migrate_live_start(const sluice_cfg_t *cfg, const char *sink, int64_t *until, char *msg,
                       size_t msglen)
{
    uint64_t logid;
    int64_t ms = 0;
    int has = 0, created = 0;
    int rc = read_wal(cfg, sink, 0, &logid, &ms, &has, &created, msg, msglen);
    if (rc == -ENOENT) {
        snprintf(msg, msglen, "no WAL in %s (wal.dir of %s)", cfg->wal.dir,
                 cfg->path ? cfg->path : "the config");
        return rc;
    }
    if (rc < 0) return rc;
    if (!has) {
        snprintf(msg, msglen, "sink %s has not started live delivery from the WAL in %s", sink,
                 cfg->wal.dir);
        return -ENOENT;
    }
    *until = ms / 1000;
    return 0;
}

/* ---- the commands ---- */

static const cfg_sink_t *find_sink(const sluice_cfg_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (strcmp(cfg->sinks[i].name, name) == 0) return &cfg->sinks[i];
    return NULL;
}

static void paths(bf_t *b, const sluice_cfg_t *cfg, char *dir, size_t dirlen)
{
    char tbl[600], sk[300], dt[600];
    snprintf(dir, dirlen, "%.2900s/backfill", cfg->wal.dir);
    name_part(sk, sizeof sk, b->o->sink);
    snprintf(dt, sizeof dt, "%s.%s", b->o->database, b->o->table);
    name_part(tbl, sizeof tbl, dt);
    snprintf(b->progress_path, sizeof b->progress_path, "%.3000s/%s.%s.progress", dir, sk, tbl);
    snprintf(b->dlq_path, sizeof b->dlq_path, "%.3000s/%s.%s.dlq.jsonl", dir, sk, tbl);
}

/* Rows and entries in a backfill dead-letter file (count of lines, sum of n_rows). */
static void dlq_count(const char *path, uint64_t *entries, uint64_t *rows)
{
    *entries = *rows = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        const char *p = strstr(line, "\"n_rows\":");
        (*entries)++;
        if (p) *rows += strtoull(p + 9, NULL, 10);
    }
    free(line);
    fclose(f);
}

/* ---- metrics of the running instance ---- */

static void prom_label(buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') buf_append(b, "\\", 1);
        if (*v == '\n') continue;
        buf_append(b, v, 1);
    }
}

typedef struct {
    char sink[256], table[512];
    uint64_t rows, slices, dead;
    int running;
} bf_metric_t;

int migrate_backfill_metrics(const char *wal_dir, buf_t *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%.4000s/backfill", wal_dir);
    DIR *d = opendir(dir);
    if (!d) return 0; /* no backfill ever ran on this log */
    bf_metric_t *m = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 10 || strcmp(e->d_name + l - 9, ".progress") != 0) continue;
        char path[4400], v[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        bf_progress_t p;
        if (progress_read(path, &p) < 0 || !p.has_plan) {
            progress_free(&p);
            continue;
        }
        if (grow((void **)&m, n, sizeof *m) < 0) {
            progress_free(&p);
            break;
        }
        bf_metric_t *x = &m[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->sink, sizeof x->sink, "%.200s",
                 plan_field(p.plan, "sink", v, sizeof v) ? v : "");
        snprintf(x->table, sizeof x->table, "%.500s",
                 plan_field(p.plan, "table", v, sizeof v) ? v : "");
        for (size_t i = 0; i < p.n_done; i++)
            x->rows += p.done_rows[i];
        x->slices = p.n_done;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            x->running = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
            close(fd);
        }
        char dlq[4400];
        uint64_t entries;
        snprintf(dlq, sizeof dlq, "%.*s.dlq.jsonl", (int)(strlen(path) - 9), path);
        dlq_count(dlq, &entries, &x->dead);
        progress_free(&p);
    }
    closedir(d);
    static const struct {
        const char *name, *help;
    } fam[] = {{"sluice_backfill_rows_done", "Rows of finished backfill slices."},
               {"sluice_backfill_slices_done", "Finished backfill slices."},
               {"sluice_backfill_dead_rows", "Rows a backfill dead-lettered into its own file."},
               {"sluice_backfill_running", "1 while a backfill of the table runs."}};
    for (size_t f = 0; n && f < sizeof fam / sizeof fam[0]; f++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", fam[f].name, fam[f].help, fam[f].name);
        for (size_t i = 0; i < n; i++) {
            uint64_t val = f == 0   ? m[i].rows
                           : f == 1 ? m[i].slices
                           : f == 2 ? m[i].dead
                                    : (uint64_t)m[i].running;
            buf_printf(out, "%s{sink=\"", fam[f].name);
            prom_label(out, m[i].sink);
            buf_puts(out, "\",table=\"");
            prom_label(out, m[i].table);
            buf_printf(out, "\"} %" PRIu64 "\n", val);
        }
    }
    free(m);
    return out->oom ? -ENOMEM : 0;
}

static int backfill_status(bf_t *b, FILE *out, FILE *err)
{
    bf_progress_t p;
    int rc = progress_read(b->progress_path, &p);
    if (rc < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b->progress_path, strerror(-rc));
        return BF_ERR;
    }
    if (!p.has_plan && !p.n_done) {
        fprintf(err, "sluice backfill: no backfill of %s.%s into %s recorded (%s)\n",
                b->o->database, b->o->table, b->o->sink, b->progress_path);
        progress_free(&p);
        return BF_ERR;
    }
    int running = 0;
    int fd = open(b->progress_path, O_RDONLY);
    if (fd >= 0) {
        running = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);
    }
    uint64_t rows = 0, dead_e, dead_r, open_slices = 0;
    for (size_t i = 0; i < p.n_done; i++)
        rows += p.done_rows[i];
    for (size_t i = 0; i < p.n_begun; i++)
        open_slices += !is_done(&p, p.begun[i].start, p.begun[i].end);
    dlq_count(b->dlq_path, &dead_e, &dead_r);
    char v[256], since[20] = "?", until[20] = "?", covered[20] = "-", mod[24] = "?";
    if (plan_field(p.plan, "since", v, sizeof v)) migrate_format_time(strtoll(v, NULL, 10), since);
    if (plan_field(p.plan, "until", v, sizeof v)) migrate_format_time(strtoll(v, NULL, 10), until);
    int64_t hi = INT64_MIN;
    for (size_t i = 0; i < p.n_done; i++)
        if (p.done[i].end > hi) hi = p.done[i].end;
    if (hi != INT64_MIN) migrate_format_time(hi, covered);
    struct stat sb;
    if (stat(b->progress_path, &sb) == 0) {
        struct tm tm;
        gmtime_r(&sb.st_mtime, &tm);
        strftime(mod, sizeof mod, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    const char *state = running       ? "running"
                        : open_slices ? "stopped (rerun the same command to resume)"
                                      : "stopped";
    if (b->o->json)
        fprintf(out,
                "{\"table\":\"%s.%s\",\"sink\":\"%s\",\"state\":\"%s\",\"since\":\"%s\","
                "\"until\":\"%s\",\"slices_done\":%zu,\"slices_unfinished\":%" PRIu64
                ",\"rows_done\":%" PRIu64 ",\"done_up_to\":\"%s\",\"dead_rows\":%" PRIu64
                ",\"updated\":\"%s\",\"progress_file\":\"%s\"}\n",
                b->o->database, b->o->table, b->o->sink, running ? "running" : "stopped", since,
                until, p.n_done, open_slices, rows, covered, dead_r, mod, b->progress_path);
    else
        fprintf(out,
                "backfill %s.%s -> %s: %s\n  plan: [%s, %s) UTC%s\n  done: %zu slices, %" PRIu64
                " rows, up to %s; %" PRIu64 " slices started and unfinished\n"
                "  dead-lettered: %" PRIu64 " rows%s%s\n  last update: %s (%s)\n",
                b->o->database, b->o->table, b->o->sink, state, since, until,
                p.old_format ? " (progress written by an older sluice)" : "", p.n_done, rows,
                covered, open_slices, dead_r, dead_r ? " in " : "", dead_r ? b->dlq_path : "", mod,
                b->progress_path);
    progress_free(&p);
    return BF_OK;
}

/* --retry-dlq: re-send the rows of the dead-letter file. The file is renamed to .retrying
 * first; rows refused again go to a new dead-letter file; the .retrying file is removed only
 * once every entry was delivered or dead-lettered again, so a kill half way leaves it for
 * the next --retry-dlq (same rows, same labels: deduplicated). */
static int retry_dlq(bf_t *b, FILE *out, FILE *err)
{
    char retrying[4200];
    snprintf(retrying, sizeof retrying, "%s.retrying", b->dlq_path);
    if (access(retrying, F_OK) != 0 && rename(b->dlq_path, retrying) < 0) {
        if (errno == ENOENT) {
            fprintf(out, "backfill %s.%s -> %s: no dead-lettered rows to retry (%s)\n",
                    b->o->database, b->o->table, b->o->sink, b->dlq_path);
            return BF_OK;
        }
        fprintf(err, "sluice backfill: %s: %s\n", b->dlq_path, strerror(errno));
        return BF_ERR;
    }
    FILE *f = fopen(retrying, "r");
    if (!f) {
        fprintf(err, "sluice backfill: %s: %s\n", retrying, strerror(errno));
        return BF_ERR;
    }
    char *line = NULL, msg[512] = "";
    size_t cap = 0;
    ssize_t n;
    int code = BF_OK;
    uint64_t entries = 0, rows_sent = 0;
    bf_worker_t *w = &b->w[0];
    w->b = b;
    if (sink_direct_open(b->sc, b->logid, &w->sink, msg, sizeof msg) < 0) {
        fprintf(err, "sluice backfill: %s\n", msg);
        fclose(f);
        return BF_ERR;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        json_member_t fl[16];
        int nf = json_members(line, (size_t)n - (line[n - 1] == '\n'), fl, 16);
        buf_t rows = {0}, db = {0}, table = {0}, start = {0};
        int is_null;
        for (int i = 0; i < nf; i++) {
            buf_t *t = fl[i].key_len == 4 && memcmp(fl[i].key, "rows", 4) == 0            ? &rows
                       : fl[i].key_len == 2 && memcmp(fl[i].key, "db", 2) == 0            ? &db
                       : fl[i].key_len == 5 && memcmp(fl[i].key, "table", 5) == 0         ? &table
                       : fl[i].key_len == 11 && memcmp(fl[i].key, "slice_start", 11) == 0 ? &start
                                                                                          : NULL;
            if (t) json_value_text(fl[i].val, fl[i].val_len, t, &is_null);
        }
        int rc = -EINVAL;
        if (rows.data && table.data && !rows.oom) {
            uint32_t nr = 0;
            for (size_t k = 0; k < rows.len; k++)
                nr += rows.data[k] == '\n';
            if (rows.len && rows.data[rows.len - 1] != '\n') nr++;
            char label[MIGRATE_LABEL_MAX + 1];
            backfill_retry_label(label, b->logid, b->sc->name, table.data,
                                 fnv1a32(rows.data, rows.len), nr);
            w->s_start = start.data ? strtoll(start.data, NULL, 10) : 0;
            rc = sink_direct_deliver(w->sink, db.data ? db.data : b->o->database, table.data,
                                     rows.data, rows.len, nr, label, on_dead, w);
            if (rc == 0) rows_sent += nr;
            if (rc == -EACCES) {
                sink_stats_t st;
                sink_get_stats(w->sink, &st);
                snprintf(w->msg, sizeof w->msg, "sink %s refused the load: %s", b->sc->name,
                         st.last_error);
            }
        } else {
            snprintf(w->msg, sizeof w->msg, "entry %" PRIu64 " of %.900s is not a dead-letter line",
                     entries + 1, retrying);
        }
        buf_free(&rows);
        buf_free(&db);
        buf_free(&table);
        buf_free(&start);
        if (rc < 0) {
            fprintf(err,
                    "sluice backfill: --retry-dlq: %s\n(the entries not yet re-sent stay in %s; "
                    "run --retry-dlq again after fixing this)\n",
                    w->msg[0] ? w->msg : strerror(-rc), retrying);
            code = rc == -EACCES ? BF_REFUSED : BF_ERR;
            break;
        }
        entries++;
    }
    free(line);
    fclose(f);
    sink_direct_close(w->sink);
    w->sink = NULL;
    if (code != BF_OK) return code;
    unlink(retrying);
    fprintf(out,
            "backfill %s.%s -> %s: --retry-dlq re-sent %" PRIu64 " entries, %" PRIu64
            " rows delivered, %" PRIu64 " dead-lettered again%s%s\n",
            b->o->database, b->o->table, b->o->sink, entries, rows_sent, b->dead_rows,
            b->dead_rows ? " into " : "", b->dead_rows ? b->dlq_path : "");
    return b->dead_rows ? BF_DEAD : BF_OK;
}

/* --dry-run: the range, the boundary, and the rows per grid cell, from one GROUP BY. */
static int dry_run(bf_t *b, const bf_progress_t *p, const char *until_why, FILE *out)
{
    char s[20], u[20], e[20];
    migrate_format_time(b->since, s);
    migrate_format_time(b->until, u);
    uint64_t n = 0;
    for (int64_t a = b->since; a < b->until; a = slice_end(b, a))
        n++;
    fprintf(out,
            "backfill %s.%s -> %s (dry run: nothing is sent)\n"
            "  source:   %s\n  range:    [%s, %s) UTC\n  boundary: %s\n"
            "  rows:     %" PRIu64 " in %" PRIu64 " slices: cells of %" PRId64
            " s merged up to %" PRId64 " s or %u rows; %" PRIu32 " in flight\n"
            "  progress: %zu slices done before (%s)\n"
            "  labels:   sluice_%016" PRIx64 "_%s_%s_b<slice start>_<batch>_<plan>\n"
            "  slice start          slice end                  rows%s\n",
            b->o->database, b->o->table, b->o->sink, b->shown, s, u, until_why, b->total_rows, n,
            b->o->slice_s, b->o->max_slice_s, (unsigned)BF_SLICE_ROWS, b->o->parallel, p->n_done,
            b->progress_path, b->logid, b->sc->name, b->o->table,
            p->n_done ? "  (done: already copied)" : "");
    uint64_t lines = 0;
    size_t c = 0;
    for (int64_t a = b->since, z; a < b->until; a = z) {
        z = slice_end(b, a);
        uint64_t rows = 0;
        while (c < b->n_cells && b->cells[c].start < z) {
            if (b->cells[c].start + b->o->slice_s > a) rows += b->cells[c].rows;
            c++;
        }
        if (lines++ >= BF_DRY_RUN_LINES) continue;
        migrate_format_time(a, s);
        migrate_format_time(z, e);
        fprintf(out, "  %-20s %-20s %10" PRIu64 "%s\n", s, e, rows,
                is_done(p, a, z) ? "  done" : "");
    }
    if (lines > BF_DRY_RUN_LINES)
        fprintf(out, "  ... %" PRIu64 " more slices\n", lines - BF_DRY_RUN_LINES);
    return BF_OK;
}

/* Is the sink the very ClickHouse the rows come from? Then backfill would copy the table
 * into itself. Same host (loopback names agree), port and database. */
static int sink_is_source(const bf_t *b)
{
    if (b->sc->type != CFG_SINK_CLICKHOUSE) return 0;
    char h1[256], h2[256], d1[256], d2[256];
    unsigned p1, p2;
    if (migrate_url_endpoint(b->source, h1, sizeof h1, &p1, d1, sizeof d1) < 0 ||
        migrate_url_endpoint(b->sc->url, h2, sizeof h2, &p2, d2, sizeof d2) < 0)
        return 0;
    const char *db = b->sc->database && *b->sc->database ? b->sc->database : b->o->database;
    return strcmp(h1, h2) == 0 && p1 == p2 && strcmp(db, b->o->database) == 0;
}

/* The source URL with its credentials: --source-sink's, or --source with a password from
 * the environment or a file. */
static int resolve_source(bf_t *b, FILE *err)
{
    const backfill_opts_t *o = b->o;
    char pass[512], msg[512];
    if (o->source_sink) {
        const cfg_sink_t *s = find_sink(b->cfg, o->source_sink);
        if (!s || s->type != CFG_SINK_CLICKHOUSE) {
            fprintf(err, "sluice backfill: --source-sink: no ClickHouse sink named %s in %s\n",
                    o->source_sink, b->cfg->path ? b->cfg->path : "the config");
            return BF_USAGE;
        }
        if (o->source_password_env || o->source_password_file) {
            fprintf(err, "sluice backfill: --source-sink uses that sink's password; drop "
                         "--source-password-env/-file\n");
            return BF_USAGE;
        }
        if (migrate_url_with_auth(s->url, s->user ? s->user : "default",
                                  s->password ? s->password : "", b->source,
                                  sizeof b->source) < 0) {
            fprintf(err, "sluice backfill: sink %s: cannot use its url as a source\n", s->name);
            return BF_USAGE;
        }
    } else {
        int rc = migrate_read_password(o->source_password_env, o->source_password_file, pass,
                                       sizeof pass, msg, sizeof msg);
        if (rc < 0) {
            fprintf(err, "sluice backfill: source password: %s\n", msg);
            return BF_USAGE;
        }
        if (rc == 1) {
            if (migrate_url_with_auth(o->source, NULL, pass, b->source, sizeof b->source) < 0) {
                fprintf(err, "sluice backfill: --source: cannot parse URL\n");
                return BF_USAGE;
            }
        } else {
            snprintf(b->source, sizeof b->source, "%s", o->source);
            char shown[1200];
            url_redact(o->source, shown, sizeof shown);
            if (strcmp(shown, o->source) != 0)
                fprintf(err, "backfill: note: the password in --source is visible to every user "
                             "(ps, shell history): prefer --source-password-env VAR\n");
        }
        memset(pass, 0, sizeof pass);
    }
    url_redact(b->source, b->shown, sizeof b->shown);
    char dbdir[256];
    if (migrate_http_base(b->source, "clickhouse://", b->base, sizeof b->base, dbdir,
                          sizeof dbdir) < 0) {
        fprintf(err, "sluice backfill: --source: cannot parse URL %s\n", b->shown);
        return BF_USAGE;
    }
    return BF_OK;
}

/* Lock the progress file (one backfill per sink and table at a time) and open it to append. */
static int open_progress(bf_t *b, FILE *err)
{
    int fd = open(b->progress_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b->progress_path, strerror(errno));
        return BF_ERR;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(err,
                "sluice backfill: another backfill of %s.%s into %s is running (its progress: "
                "sluice backfill --status ...)\n",
                b->o->database, b->o->table, b->o->sink);
        close(fd);
        return BF_REFUSED;
    }
    if (!(b->progress = fdopen(fd, "a"))) {
        close(fd);
        return BF_ERR;
    }
    return BF_OK;
}

static void summary(bf_t *b, FILE *out, double secs, int code)
{
    char s[20], u[20], d[32];
    migrate_format_time(b->since, s);
    migrate_format_time(b->until, u);
    fmt_dur(secs, d, sizeof d);
    double rate = secs > 0 ? (double)b->sent_rows / secs : 0;
    uint64_t n = b->slices_before + b->slices_done;
    if (b->o->json) {
        fprintf(out,
                "{\"event\":\"summary\",\"table\":\"%s.%s\",\"sink\":\"%s\",\"since\":\"%s\","
                "\"until\":\"%s\",\"slices\":%" PRIu64 ",\"slices_done_before\":%" PRIu64
                ",\"rows_sent\":%" PRIu64 ",\"elapsed_s\":%.3f,\"rows_per_s\":%.0f,"
                "\"dead_rows\":%" PRIu64 ",\"dlq_file\":\"%s\",\"exit\":%d}\n",
                b->o->database, b->o->table, b->o->sink, s, u, n, b->slices_before, b->sent_rows,
                secs, rate, b->dead_rows, b->dead_rows ? b->dlq_path : "", code);
        return;
    }
    fprintf(out,
            "backfill %s.%s -> %s: [%s, %s) UTC, %" PRIu64 " slices (%" PRIu64
            " done before), %" PRIu64 " rows sent in %s (%.0f rows/s), %" PRIu64
            " dead-lettered%s%s\n",
            b->o->database, b->o->table, b->o->sink, s, u, n, b->slices_before, b->sent_rows, d,
            rate, b->dead_rows, b->dead_rows ? " into " : "", b->dead_rows ? b->dlq_path : "");
}

static int run_slices(bf_t *b, FILE *err)
{
    char msg[512];
    unsigned nw = b->o->parallel;
    for (unsigned i = 0; i < nw; i++) {
        b->w[i].b = b;
        msg[0] = '\0';
        if (sink_direct_open(b->sc, b->logid, &b->w[i].sink, msg, sizeof msg) < 0) {
            fprintf(err, "sluice backfill: %s\n", msg);
            return BF_ERR;
        }
    }
    pthread_mutex_lock(&b->mu);
    for (unsigned i = 0; i < nw; i++) {
        if (pthread_create(&b->w[i].th, NULL, worker_main, &b->w[i]) == 0) {
            b->w[i].started = 1;
            b->running++;
        }
    }
    /* The main thread draws the terminal line and reports a sink that keeps retrying. */
    while (b->running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        if (b->tty && !b->o->json) report(b, NULL);
        double t = elapsed(b);
        for (unsigned i = 0; i < nw && t - b->last_retry_note >= 5.0; i++) {
            sink_stats_t st;
            if (!b->w[i].started) continue;
            sink_get_stats(b->w[i].sink, &st);
            if (st.state == SINK_DEGRADED && st.retries > b->w[i].retries_seen) {
                char m[512];
                snprintf(m, sizeof m, "sink %s: %s (retrying, %" PRIu64 " retries so far)",
                         b->sc->name, st.last_error, st.retries);
                note(b, "waiting", m);
                b->w[i].retries_seen = st.retries;
                b->last_retry_note = t;
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    for (unsigned i = 0; i < nw; i++)
        if (b->w[i].started) pthread_join(b->w[i].th, NULL);
    if (b->tty && !b->o->json) {
        report(b, NULL);
        fputc('\n', b->err);
    }
    return b->failed ? b->fail_code : BF_OK;
}

int migrate_backfill(const sluice_cfg_t *cfg, backfill_opts_t *opts, FILE *out, FILE *err)
{
    backfill_opts_t o = *opts;
    bf_t b;
    memset(&b, 0, sizeof b);
    b.o = &o;
    b.cfg = cfg;
    b.err = err;
    b.out = out;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    char msg[1024], dir[3000];
    int code = BF_ERR, rc;
    bf_progress_t prog = {0};
    if (!(b.sc = find_sink(cfg, o.sink))) {
        fprintf(err, "sluice backfill: no sink named %s in %s\n", o.sink,
                cfg->path ? cfg->path : "the config");
        return BF_USAGE;
    }
    paths(&b, cfg, dir, sizeof dir);
    if (o.status) return backfill_status(&b, out, err);
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "sluice backfill --status --config %s --sink %s --table %s.%s",
                 cfg->path ? cfg->path : "FILE", o.sink, o.database, o.table);
        snprintf(interrupt_msg, sizeof interrupt_msg,
                 "\nsluice backfill: interrupted. Every finished slice is recorded: run the same "
                 "command again to resume\n(slices cut short are resent under the same labels). "
                 "Where it stopped: %.500s\n",
                 cmd);
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
    }
    /* The engine's own warnings (retries, dead-lettered rows) are reported here, in the
     * progress format, instead of as interleaved JSON log lines. */
    log_set_level(LOG_LEVEL_ERROR);
    if (!sink_wants_table(b.sc, o.database, o.table)) {
        fprintf(err,
                "sluice backfill: sink %s does not take %s.%s (its include/exclude lists in %s): "
                "add the table to include, or the rows would all be dropped\n",
                o.sink, o.database, o.table, cfg->path ? cfg->path : "the config");
        return BF_REFUSED;
    }
    b.max_rows = b.sc->batch_max_rows ? b.sc->batch_max_rows : 10000;
    b.max_bytes = b.sc->batch_max_bytes ? b.sc->batch_max_bytes : (8u << 20);
    b.tty = isatty(fileno(err));

    int64_t started_ms = 0;
    int has_started = 0;
    int create_wal = o.has_until && !o.dry_run;
    int created = 0;
    rc = read_wal(cfg, o.sink, create_wal || o.retry_dlq, &b.logid, &started_ms, &has_started,
                  &created, msg, sizeof msg);
    if (rc == -ENOENT && o.dry_run && o.has_until) {
        rc = 0; /* a dry run creates nothing; the log id in the labels shown is then 0 */
    } else if (rc == -ENOENT) {
        fprintf(err,
                "sluice backfill: no WAL in %s (wal.dir of %s): is this the running instance's "
                "config? Without its WAL there is no dual-write boundary and no log id for the "
                "labels. Run `sluice run` with this config first, or give --until to start a "
                "new log here\n",
                cfg->wal.dir, cfg->path ? cfg->path : "the config");
        return BF_REFUSED;
    }
    if (rc < 0) {
        fprintf(err, "sluice backfill: wal %s: %s\n", cfg->wal.dir, msg);
        return BF_WAL;
    }
    if (created)
        fprintf(err,
                "backfill: warning: there was no WAL in %s (wal.dir of %s): created a new, empty "
                "one; its log id goes into the labels, so run `sluice run` with this same wal.dir "
                "for the live sink\n",
                cfg->wal.dir, cfg->path ? cfg->path : "the config");
    if (!o.dry_run && mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(err, "sluice backfill: %s: %s\n", dir, strerror(errno));
        return BF_ERR;
    }
    if (o.retry_dlq) {
        if ((code = open_progress(&b, err)) != BF_OK) return code;
        code = retry_dlq(&b, out, err);
        fclose(b.progress);
        return code;
    }
    if ((code = resolve_source(&b, err)) != BF_OK) return code;
    code = BF_ERR;
    if (sink_is_source(&b) && !o.force) {
        fprintf(err,
                "sluice backfill: sink %s (%s) is the source itself (same host, port and "
                "database %s): the table would be copied into itself. Pick the new backend's "
                "sink, or give --force if this is really meant\n",
                o.sink, b.sc->url, o.database);
        return BF_REFUSED;
    }
    b.since = o.since;
    b.until = o.until;
    char until_why[256];
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
        b.until = started_ms / 1000;
        char t[20];
        migrate_format_time(b.until, t);
        snprintf(until_why, sizeof until_why,
                 "%s UTC, the sink's live start (rows from then on come through the live log)", t);
        if (!o.dry_run && !o.json)
            fprintf(err, "backfill: --until defaults to the sink's live start, %s UTC\n", t);
    } else {
        char t[20];
        migrate_format_time(b.until, t);
        snprintf(until_why, sizeof until_why, "--until %s UTC%s", t,
                 has_started ? " (the sink's live start is recorded: rows after it come live)"
                             : "");
    }

    if ((rc = progress_read(b.progress_path, &prog)) < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(-rc));
        goto out;
    }
    if (o.restart && !o.dry_run) {
        progress_free(&prog);
    } else if (!o.has_since && prog.has_plan) {
        char v[64];
        if (plan_field(prog.plan, "since", v, sizeof v)) b.since = strtoll(v, NULL, 10);
    }
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    if ((rc = load_columns(&b, msg, sizeof msg)) < 0 ||
        (rc = load_range(&b, &b.since, b.until, o.has_since || (prog.has_plan && !o.restart), msg,
                         sizeof msg)) < 0) {
        fprintf(err, "sluice backfill: source %s: %s\n", b.shown, msg);
        goto out;
    }
    if (b.since > b.until) b.since = b.until;
    make_plan_line(&b, b.plan_line, sizeof b.plan_line);
    if (!o.restart && (prog.has_plan || prog.old_format)) {
        char diff[1500] = "", again[256] = "";
        if (prog.has_plan) plan_diff(prog.plan, b.plan_line, diff, sizeof diff);
        if (prog.old_format || diff[0]) {
            if (prog.has_plan) plan_as_options(prog.plan, again, sizeof again);
            fprintf(err,
                    "sluice backfill: the plan differs from the one recorded in %s: %s.\n"
                    "  To start over with the new plan: add --restart (slices sent already are "
                    "sent again under new labels;\n  Primary Key tables absorb that).\n"
                    "  To continue the recorded plan: run the same command as before%s%s.\n",
                    b.progress_path,
                    prog.old_format ? "it was written by an older sluice and records no plan"
                                    : diff,
                    again[0] ? " (" : "", again[0] ? again : "");
            if (again[0]) fputs(")\n", err);
            code = BF_REFUSED;
            goto out;
        }
    }
    if ((rc = load_cells(&b, msg, sizeof msg)) < 0) {
        fprintf(err, "sluice backfill: source %s: %s\n", b.shown, msg);
        goto out;
    }
    if (o.dry_run) {
        code = dry_run(&b, &prog, until_why, out);
        goto out;
    }
    if ((code = open_progress(&b, err)) != BF_OK) goto out;
    code = BF_ERR;
    if (o.restart) {
        if (ftruncate(fileno(b.progress), 0) < 0) {
            fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(errno));
            goto out;
        }
    }
    if (!prog.has_plan && progress_line(&b, b.plan_line) < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(errno));
        goto out;
    }
    /* Resume: finished slices are skipped, begun ones redone with their recorded bounds, new
     * ones start where the last begun one ended. */
    b.next_start = b.since;
    for (size_t i = 0; i < prog.n_done; i++) {
        b.done_rows += prog.done_rows[i];
        b.slices_before++;
    }
    for (size_t i = 0; i < prog.n_begun; i++) {
        if (prog.begun[i].end > b.next_start) b.next_start = prog.begun[i].end;
        if (is_done(&prog, prog.begun[i].start, prog.begun[i].end)) continue;
        if (grow((void **)&b.redo, b.n_redo, sizeof *b.redo) < 0) goto out;
        b.redo[b.n_redo++] = prog.begun[i];
    }
    code = run_slices(&b, err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    double secs = elapsed(&b);
    if (code != BF_OK) {
        fprintf(err,
                "sluice backfill: %s\n  Nothing of the failed slice is recorded as done: fix the "
                "cause and run the same command again to resume.\n",
                b.fail_msg);
        if (code == BF_REFUSED)
            fprintf(err, "  (a missing table: create it in the sink first, deploy/MIGRATION.md "
                         "step 2; 401/403: check the sink's user and password)\n");
        summary(&b, out, secs, code);
        goto out;
    }
    code = b.dead_rows ? BF_DEAD : BF_OK;
    summary(&b, out, secs, code);
    if (b.dead_rows)
        fprintf(err,
                "sluice backfill: %" PRIu64 " rows were refused by sink %s and dead-lettered into "
                "%s (each line has the reason in \"error\").\n  Fix the cause (the table's DDL, "
                "or the rows in that file), then re-send them with:\n    sluice backfill "
                "--config %s --sink %s --table %s.%s --retry-dlq\n",
                b.dead_rows, o.sink, b.dlq_path, cfg->path ? cfg->path : "FILE", o.sink, o.database,
                o.table);
out:
    for (unsigned i = 0; i < BF_MAX_PARALLEL; i++) {
        if (b.w[i].sink) sink_direct_close(b.w[i].sink);
        buf_free(&b.w[i].batch);
    }
    if (b.progress) fclose(b.progress);
    progress_free(&prog);
    free(b.redo);
    free(b.cells);
    buf_free(&b.order_by);
    memset(b.source, 0, sizeof b.source);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return code;
}
