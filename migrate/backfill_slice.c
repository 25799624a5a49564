/* backfill_slice.c — backfill's slices: the source queries (columns, range, rows per grid
 * cell), cutting the range into slices that grow while small and quick, and the worker
 * threads that copy one slice each through sink_direct_deliver. */
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
#include "common/url.h"
#include "migrate/backfill_internal.h"
#include "migrate/migrate.h"
#include "migrate/migrate_internal.h"
#include "sinks/sink.h"
#include "wal/wal.h"

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
int bf_load_columns(bf_t *b, char *msg, size_t msglen)
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
int bf_load_range(bf_t *b, int64_t *since, int64_t until, int has_since, char *msg, size_t msglen)
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

/* Rows per --slice grid cell of [since, until), from one GROUP BY: what bf_slice_end cuts by.
 * The cell is computed from the wall-clock string read as UTC, as the slice bounds are. */
int bf_load_cells(bf_t *b, char *msg, size_t msglen)
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
            if (bf_grow((void **)&b->cells, b->n_cells, sizeof *b->cells) < 0) {
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

int bf_on_dead(void *ctx, const wal_dlq_entry_t *e)
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
                                 w->batch_rows, label, bf_on_dead, w);
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
        bf_note(b, "retry", m);
        int stop = b->failed;
        pthread_mutex_unlock(&b->mu);
        if (stop) break;
        sleep((unsigned)(attempt < 5 ? 1u << attempt : 30u));
    }
out:
    buf_free(&sql);
    return rc;
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
    w->s_end = bf_slice_end(b, b->next_start);
    char line[96];
    snprintf(line, sizeof line, "begin %" PRId64 " %" PRId64 "\n", w->s_start, w->s_end);
    if (bf_progress_line(b, line) < 0) {
        char m[4200];
        snprintf(m, sizeof m, "%s: %s", b->progress_path, strerror(errno));
        bf_fail_locked(b, BF_ERR, m);
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
int64_t bf_slice_end(const bf_t *b, int64_t start)
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

void *bf_worker_main(void *arg)
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
            bf_fail_locked(b, rc == -EACCES || rc == -EINVAL ? BF_REFUSED : BF_ERR, m);
            break;
        }
        char line[128];
        snprintf(line, sizeof line, "done %" PRId64 " %" PRId64 " %" PRIu64 " %08x\n", w->s_start,
                 w->s_end, w->slice_rows, w->plan);
        /* Durability: written after every batch of the slice was acknowledged by the sink
         * (and its dead rows fsync'ed), so a slice skipped on resume is really there. */
        if (bf_progress_line(b, line) < 0) {
            char m[4200];
            snprintf(m, sizeof m, "%s: %s", b->progress_path, strerror(errno));
            bf_fail_locked(b, BF_ERR, m);
            break;
        }
        b->inflight_rows -= w->inflight_added; /* this slice's rows: from in flight to done */
        w->inflight_added = 0;
        b->done_rows += w->slice_rows;
        b->sent_rows += w->slice_rows;
        b->slices_done++;
        bf_report(b, w);
    }
    b->running--;
    pthread_cond_broadcast(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return NULL;
}
