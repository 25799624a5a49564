/* deliver.c — one batch of the log to the backend: grouped per target table, sent with its
 * idempotency key, retried with sink_backoff, split in halves down to the poison rows (which go
 * to the DLQ with the reason) when the backend refuses, then the cursor committed with the
 * DLQ entries in one WAL transaction. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/time.h"
#include "sinks/engine_internal.h"

/* ---- one batch ---- */

void sink_dlq_vec_free(sink_dlq_vec_t *v)
{
    for (size_t i = 0; i < v->n; i++) {
        free((char *)v->e[i].rows);
        free((char *)v->e[i].error);
    }
    free(v->e);
    memset(v, 0, sizeof *v);
}

typedef struct {
    sink_t *s;
    const sink_group_t *g;
    const char *body;
    size_t *off; /* row i is body[off[i] .. off[i+1]) */
    uint32_t n_rows;
    char base_key[SINK_KEY_MAX + 1];
    int ext_key; /* base_key came from the caller (backfill): sub-keys derive from it */
    sink_dlq_vec_t *dlq;
    uint32_t attempt; /* consecutive failures, for the sink_backoff */
    const char *hdr;  /* header rows sent ahead of every part (the records', or a split
                       * unit's own header) */
    size_t hdr_len;
    int split; /* the rows are a split whole unit: not split again */
} group_ctx_t;

static int dlq_add(group_ctx_t *c, uint32_t lo, uint32_t hi, const char *err)
{
    sink_dlq_vec_t *v = c->dlq;
    if (v->n == v->cap) {
        size_t nc = v->cap ? v->cap * 2 : 8;
        wal_dlq_entry_t *ne = realloc(v->e, nc * sizeof *ne);
        if (!ne) return -ENOMEM;
        v->e = ne;
        v->cap = nc;
    }
    size_t len = c->off[hi] - c->off[lo];
    char *rows = malloc(len + 1);
    char *msg = strdup(err);
    if (!rows || !msg) {
        free(rows);
        free(msg);
        return -ENOMEM;
    }
    memcpy(rows, c->body + c->off[lo], len);
    rows[len] = '\0';
    const wal_record_t *r0 = c->g->recs[0];
    wal_dlq_entry_t *e = &v->e[v->n++];
    memset(e, 0, sizeof *e);
    e->sink = c->s->cfg->name;
    e->db = r0->db ? r0->db : ""; /* the original names: a replay goes through the same */
    e->table = r0->table;         /* database override and rename again */
    e->columns = r0->columns;
    e->settings = r0->settings;
    e->n_settings = r0->n_settings;
    e->error = msg;
    e->ts_ms = time_wall_ms();
    e->rows = rows;
    e->rows_len = len;
    e->n_rows = hi - lo;
    if (r0->fmt && strcmp(r0->fmt, "JSONEachRow") != 0) e->fmt = r0->fmt;
    e->hdr = c->hdr;
    e->hdr_len = c->hdr_len;
    e->whole = r0->whole;
    pthread_mutex_lock(&c->s->stats_mu);
    c->s->dlq_rows += hi - lo;
    pthread_mutex_unlock(&c->s->stats_mu);
    char n[16];
    snprintf(n, sizeof n, "%" PRIu32, hi - lo);
    log_warn("rows dead-lettered", "sink", c->s->cfg->name, "table", r0->table, "#rows", n, "error",
             err);
    return 0;
}

/* Key of the bisected part [lo, hi) of a batch whose key the caller chose: base_r{lo}_{hi},
 * or, past SINK_KEY_MAX, the base's first 100 chars plus a hash of the whole: deterministic,
 * so a resent part carries the key it had before. */
static void ext_subkey(char *out, const char *base, uint32_t lo, uint32_t hi)
{
    char tmp[SINK_KEY_MAX + 64];
    int n = snprintf(tmp, sizeof tmp, "%s_r%" PRIu32 "_%" PRIu32, base, lo, hi);
    if (n > 0 && n <= SINK_KEY_MAX) {
        memcpy(out, tmp, (size_t)n + 1);
        return;
    }
    uint32_t h1 = fnv1a32(tmp, strlen(tmp)), h2 = 0x9e3779b9u;
    for (const char *p = tmp; *p; p++)
        h2 = (h2 ^ (unsigned char)*p) * 0x01000193u + 7u;
    snprintf(out, SINK_KEY_MAX + 1, "%.100s_h%08x%08x", base, h1, h2);
}

static int send_range(group_ctx_t *c, uint32_t lo, uint32_t hi);

/* A refused whole unit (a RowBinary body, kept whole because the proxy has no schema): ask
 * the backend for its row boundaries (it knows the table's columns) and bisect those, its own
 * header ahead of every part, so one bad row no longer dead-letters the whole request. 1 when
 * it cannot be split (the caller dead-letters the unit), else as send_range. */
static int split_unit(group_ctx_t *c, const sink_batch_t *b, const char *key)
{
    size_t hl = 0, *off = NULL;
    uint32_t n = 0;
    char err[256] = "";
    int rc = c->s->be->split(c->s->be_state, b, &hl, &off, &n, err, sizeof err);
    if (rc || n < 2) {
        if (rc && rc != -ENOTSUP)
            log_warn("cannot split a refused body into rows: dead-lettering it whole", "sink",
                     c->s->cfg->name, "format", b->fmt, "error", err);
        free(off);
        return 1;
    }
    group_ctx_t sub = *c;
    sub.body = b->body;
    sub.off = off;
    sub.n_rows = n;
    sub.split = 1;
    if (hl) {
        sub.hdr = b->body;
        sub.hdr_len = hl;
    }
    snprintf(sub.base_key, sizeof sub.base_key, "%s", key);
    sub.ext_key = 1; /* part keys derive from the unit's: a resend after a crash reuses them */
    /* The whole was just refused: start with its halves. */
    rc = send_range(&sub, 0, n / 2);
    if (rc >= 0) rc = send_range(&sub, n / 2, n);
    c->attempt = sub.attempt;
    free(off);
    return rc;
}

/* Deliver rows [lo, hi) of the group: retry transient failures, bisect permanent ones.
 * Returns 0 (delivered or dead-lettered), -1 when aborted, SINK_REFUSED (direct only). */
static int send_range(group_ctx_t *c, uint32_t lo, uint32_t hi)
{
    sink_t *s = c->s;
    char key[SINK_KEY_MAX + 1];
    if (lo == 0 && hi == c->n_rows)
        memcpy(key, c->base_key, sizeof key);
    else if (c->ext_key)
        ext_subkey(key, c->base_key, lo, hi);
    else
        sink_build_key(key, s->logid, s->cfg->name, c->g->table, c->g->first_seq, c->g->last_seq,
                       lo, hi);
    sink_batch_t b = {
        .db = c->g->db,
        .table = c->g->table,
        .columns = c->g->recs[0]->columns,
        .settings = c->g->recs[0]->settings,
        .n_settings = c->g->recs[0]->n_settings,
        .body = c->body + c->off[lo],
        .body_len = c->off[hi] - c->off[lo],
        .n_rows = hi - lo,
        .fmt = c->g->recs[0]->fmt ? c->g->recs[0]->fmt : "JSONEachRow",
        .hdr = c->hdr,
        .hdr_len = c->hdr_len,
        .whole = c->g->recs[0]->whole,
        .key = key,
    };
    uint32_t unknown = 0; /* unclassified failures of exactly these rows */
    for (;;) {
        if (sink_should_abort(s)) return -1;
        sink_result_t res;
        s->be->send(s->be_state, &b, &res);
        sink_note_endpoints(s, &res);
        if (res.kind == SINK_RES_OK) {
            c->attempt = 0;
            sink_note_recovered(s);
            pthread_mutex_lock(&s->stats_mu);
            s->rows_sent +=
                b.n_rows - (res.filtered_rows < b.n_rows ? res.filtered_rows : b.n_rows);
            s->bytes_sent += b.body_len;
            s->batches_sent++;
            s->rows_filtered += res.filtered_rows;
            if (res.filtered_rows)
                snprintf(s->last_error_url, sizeof s->last_error_url, "%s", res.error_url);
            pthread_mutex_unlock(&s->stats_mu);
            if (res.filtered_rows) {
                /* Accepted with rows dropped (max_filter_ratio > 0): never silent. */
                char nf[24];
                snprintf(nf, sizeof nf, "%" PRIu64, res.filtered_rows);
                log_warn("backend filtered rows of a delivered batch", "sink", s->cfg->name,
                         "label", key, "#rows_filtered", nf, "error_url",
                         res.error_url[0] ? res.error_url : "(none)");
            }
            if (res.label_used)
                log_info("batch already loaded under its label", "sink", s->cfg->name, "label", key,
                         "detail", res.msg);
            return 0;
        }
        if (res.kind == SINK_RES_UNKNOWN) {
            /* Never stuck on data (DESIGN.md §1): an answer sluice cannot classify is retried
             * SINK_UNKNOWN_TRIES times for these rows, then treated as caused by them. */
            if (++unknown >= SINK_UNKNOWN_TRIES) {
                char nt[16];
                snprintf(nt, sizeof nt, "%u", unknown);
                log_warn("unclassified failure repeats for the same rows: bisecting", "sink",
                         s->cfg->name, "label", key, "#attempts", nt, "error", res.msg);
                res.kind = SINK_RES_PERMANENT;
                res.whole = 0;
            } else {
                res.kind = SINK_RES_RETRY;
            }
        }
        if (s->direct &&
            ((res.kind == SINK_RES_PERMANENT && res.whole) ||
             (res.kind == SINK_RES_CONFIG && c->attempt + 1 >= SINK_DIRECT_CONFIG_TRIES))) {
            pthread_mutex_lock(&s->stats_mu);
            sink_set_last_error(s, res.msg);
            pthread_mutex_unlock(&s->stats_mu);
            return SINK_REFUSED;
        }
        if (res.kind == SINK_RES_PERMANENT) {
            c->attempt = 0;
            sink_note_recovered(s); /* the backend answers: not an outage */
            if (res.whole || hi - lo == 1) {
                if (!res.whole && b.whole && !c->split && s->be->split) {
                    int sr = split_unit(c, &b, key);
                    if (sr != 1) return sr;
                }
                if (dlq_add(c, lo, hi, res.msg) == 0) return 0;
                /* out of memory: treat as transient */
                res.kind = SINK_RES_RETRY;
                snprintf(res.msg, sizeof res.msg, "out of memory building a DLQ entry");
            } else {
                uint32_t mid = lo + (hi - lo) / 2;
                int rc = send_range(c, lo, mid);
                if (rc < 0) return rc;
                return send_range(c, mid, hi);
            }
        }
        sink_note_failure(s, &res);
        if (sink_backoff(s, &res, &c->attempt) < 0) return -1;
    }
}

/* Row offsets of a '\n'-terminated body; returns the row count. A whole record (one
 * group by itself) is a single unit: its bytes are not lines. */
static uint32_t row_offsets(const sink_group_t *g, const char *body, size_t len, size_t *off)
{
    uint32_t n = 0;
    off[0] = 0;
    if (g->n == 1 && g->recs[0]->whole) {
        off[1] = len;
        return len ? 1 : 0;
    }
    for (size_t i = 0; i < len; i++)
        if (body[i] == '\n') off[++n] = i + 1;
    if (off[n] != len) off[++n] = len; /* tolerate a missing final newline */
    return n;
}

/* key: NULL for the log's own key (from the group's seq range), else the caller's. */
int sink_deliver_group(sink_t *s, const sink_group_t *g, const char *key, sink_dlq_vec_t *dlq)
{
    char *concat = NULL;
    const char *body;
    if (g->n == 1) {
        body = g->recs[0]->rows;
    } else {
        concat = malloc(g->rows_len ? g->rows_len : 1);
        if (!concat) return -ENOMEM;
        size_t p = 0;
        for (size_t i = 0; i < g->n; i++) {
            memcpy(concat + p, g->recs[i]->rows, g->recs[i]->rows_len);
            p += g->recs[i]->rows_len;
        }
        body = concat;
    }
    group_ctx_t c = {.s = s,
                     .g = g,
                     .body = body,
                     .dlq = dlq,
                     .hdr = g->recs[0]->hdr,
                     .hdr_len = g->recs[0]->hdr_len};
    int rc = 0;
    c.off = malloc(((size_t)g->n_rows + g->n + 2) * sizeof *c.off);
    if (!c.off) {
        rc = -ENOMEM;
        goto out;
    }
    c.n_rows = row_offsets(g, body, g->rows_len, c.off);
    if (c.n_rows == 0) goto out; /* never send an empty batch */
    if (key) {
        snprintf(c.base_key, sizeof c.base_key, "%s", key);
        c.ext_key = 1;
    } else {
        sink_build_key(c.base_key, s->logid, s->cfg->name, g->table, g->first_seq, g->last_seq, 0,
                       0);
    }
    rc = send_range(&c, 0, c.n_rows);
out:
    free(c.off);
    free(concat);
    return rc;
}

/* Commit the cursor (and DLQ entries) durably, retrying wal errors. -1 when aborted. */
int sink_commit_cursor(sink_t *s, const wal_cursor_t *cur, const wal_dlq_entry_t *dlq,
                       size_t n_dlq)
{
    uint32_t attempt = 0;
    for (;;) {
        int rc = wal_cursor_commit(s->w, s->cfg->name, cur, dlq, n_dlq);
        if (rc == 0) return 0;
        sink_result_t res = {.kind = SINK_RES_RETRY};
        snprintf(res.msg, sizeof res.msg, "wal cursor commit: %s", wal_strerror(rc));
        if (rc == WAL_ECLOSED) {
            log_error("wal closed under a running sink", "sink", s->cfg->name);
            atomic_store(&s->abort_flag, 1);
            return -1;
        }
        sink_note_failure(s, &res);
        if (sink_backoff(s, &res, &attempt) < 0) return -1;
    }
}

/* Deliver records recs[0..n) (seq order), then advance the cursor to the last one. resend:
 * the in-flight range is already persisted (restart). Returns 0 or -1 when aborted. */
int sink_process_batch(sink_t *s, const wal_record_t *const *recs, size_t n, int resend)
{
    sink_group_t *g = NULL;
    size_t ng = 0;
    sink_dlq_vec_t dlq = {0};
    int rc = -1;
    uint64_t first = recs[0]->seq, last = recs[n - 1]->seq;
    while (sink_group_records(s->cfg, recs, n, &g, &ng) < 0) {
        if (sink_sleep(s, 100) < 0) return -1;
    }
    if (ng > 0 && !resend) {
        /* Durability: the range is on disk before the first byte is sent, so after a crash
         * the resend covers exactly these records, grouped the same way, under the same
         * keys: the backend deduplicates instead of doubling. */
        wal_cursor_t inflight = {
            .acked = first - 1, .inflight_first = first, .inflight_last = last};
        if (sink_commit_cursor(s, &inflight, NULL, 0) < 0) goto out;
    }
    for (size_t i = 0; i < ng; i++) {
        int r;
        while ((r = sink_deliver_group(s, &g[i], NULL, &dlq)) == -ENOMEM)
            if (sink_sleep(s, 100) < 0) goto out;
        if (r < 0) goto out; /* aborted: the persisted in-flight range is resent on restart */
    }
    /* Ordering: the cursor passes these records only in the same transaction that puts
     * their refused rows into the DLQ, so no row is ever neither delivered nor queued. */
    wal_cursor_t done = {.acked = last};
    if (sink_commit_cursor(s, &done, dlq.e, dlq.n) < 0) goto out;
    atomic_store(&s->delivered, last);
    sink_notify_progress(s);
    rc = 0;
out:
    sink_dlq_vec_free(&dlq);
    sink_groups_free(g, ng);
    return rc;
}
