/* engine.c — the sink engine: one thread per enabled sink reads batches after its durable
 * cursor, groups them per table, persists the in-flight range, sends each group through its
 * backend (clickhouse.c / starrocks.c), retries transient failures forever with full-jitter
 * backoff, bisects permanently refused groups down to the bad rows, dead-letters those, and
 * advances the cursor together with the DLQ entries in one wal transaction. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/hash.h"
#include "common/log.h"
#include "common/time.h"
#include "sinks/sink_internal.h"

#define SINK_IDLE_SLICE_MS 100      /* longest wal_wait before re-checking stop / pause */
#define SINK_SUMMARY_EVERY_MS 30000 /* periodic "still degraded" line */
#define SINK_DIRECT_CONFIG_TRIES 3  /* direct delivery: configuration errors before giving up */
#define SINK_REFUSED (-2)           /* send_range: refused for good (direct delivery only) */

struct sink {
    const cfg_sink_t *cfg; /* owned by the caller's sluice_cfg_t, which outlives the sinks */
    wal_t *w;
    const sink_backend_t *be;
    void *be_state; /* touched only by the sink thread (and by sinks_stop after join) */
    pthread_t thread;
    int thread_started;
    uint64_t logid;
    uint64_t rnd;        /* sink thread only */
    int direct_prepared; /* sink_direct_*: prepare succeeded (the caller's thread only) */
    int direct;          /* opened by sink_direct_open: a configuration error or a refusal
                          * of the whole statement ends the call (SINK_REFUSED) instead of
                          * being retried forever or dead-lettered row by row */

    /* Control, protected by mu; cv is signalled on every change and when the thread ends. */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC */
    int paused;
    int draining;
    uint64_t drain_target; /* with draining: exit once delivered >= this */
    int finished;          /* the thread left its loop */
    atomic_int abort_flag; /* stop now: sleeps wake up, HTTP transfers abort (also read
                            * lock-free by the backend's progress callback) */

    atomic_uint_fast64_t delivered; /* acked seq, published after the cursor commit */
    atomic_uint_fast64_t deliver_now; /* sink_deliver_now: send up to here without waiting
                                       * for the batch to fill (max seq asked so far) */
    atomic_int state_now;             /* sink_state_t, for sink_state (lock-free) */
    void (*on_progress)(void *ctx);   /* mu: sink_on_progress */
    void *on_progress_ctx;            /* mu */

    /* Statistics, protected by stats_mu. */
    pthread_mutex_t stats_mu;
    sink_state_t state;
    uint64_t rows_sent, bytes_sent, batches_sent, retries, dlq_rows, rows_filtered;
    uint64_t retries_at_degrade;
    uint64_t last_summary_ms;
    char last_error[256];
    char last_error_url[256];
    sink_endpoint_stats_t ep[CFG_MAX_ENDPOINTS];
    size_t n_ep;
};

/* ---- sleeping ---- */

static int should_abort(sink_t *s)
{
    return atomic_load(&s->abort_flag) != 0;
}

/* Sleep up to ms, woken early by abort. Returns -1 when aborted. */
static int sleep_interruptible(sink_t *s, uint32_t ms)
{
    struct timespec ts;
    time_mono_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (!should_abort(s)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&s->mu);
    return should_abort(s) ? -1 : 0;
}

/* The loop ends on abort, or while draining once everything up to the target is delivered
 * (or the sink is paused: a paused sink delivers nothing more). */
static int should_exit(sink_t *s)
{
    if (should_abort(s)) return 1;
    pthread_mutex_lock(&s->mu);
    int ex = s->draining && (s->paused || atomic_load(&s->delivered) >= s->drain_target);
    pthread_mutex_unlock(&s->mu);
    return ex;
}

/* ---- state, stats ---- */

/* Tell the sink_on_progress listener (the proxy's read barrier) that delivered or the
 * state moved. Under mu so that sink_on_progress(s, NULL, NULL) returning means no call is
 * running or will run. */
static void notify_progress(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->on_progress) s->on_progress(s->on_progress_ctx);
    pthread_mutex_unlock(&s->mu);
}

static void set_state(sink_t *s, sink_state_t st)
{
    atomic_store(&s->state_now, (int)st);
}

static void set_last_error(sink_t *s, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof s->last_error) n = sizeof s->last_error - 1;
    memcpy(s->last_error, msg, n);
    s->last_error[n] = '\0';
}

static void note_failure(sink_t *s, const sink_result_t *res)
{
    char status[16];
    snprintf(status, sizeof status, "%d", res->http_status);
    pthread_mutex_lock(&s->stats_mu);
    s->retries++;
    set_last_error(s, res->msg);
    uint64_t t = time_mono_ms();
    if (s->state != SINK_DEGRADED) {
        s->state = SINK_DEGRADED;
        set_state(s, SINK_DEGRADED);
        s->retries_at_degrade = s->retries - 1;
        s->last_summary_ms = t;
        pthread_mutex_unlock(&s->stats_mu);
        notify_progress(s); /* reads held by the barrier go now: waiting cannot help */
        log_warn("sink degraded, retrying", "sink", s->cfg->name, "#http_status", status, "kind",
                 res->kind == SINK_RES_CONFIG ? "configuration" : "transient", "error", res->msg);
        return;
    }
    if (t - s->last_summary_ms >= SINK_SUMMARY_EVERY_MS) {
        char n[24];
        snprintf(n, sizeof n, "%" PRIu64, s->retries - s->retries_at_degrade);
        s->last_summary_ms = t;
        pthread_mutex_unlock(&s->stats_mu);
        log_warn("sink still degraded", "sink", s->cfg->name, "#retries", n, "error", res->msg);
        return;
    }
    pthread_mutex_unlock(&s->stats_mu);
}

/* Which endpoints answered and which could not be reached during one send. */
static void note_endpoints(sink_t *s, const sink_result_t *res)
{
    pthread_mutex_lock(&s->stats_mu);
    for (size_t i = 0; i < s->n_ep; i++) {
        sink_endpoint_stats_t *e = &s->ep[i];
        if (res->endpoints_failed & (1u << i)) {
            if (e->up)
                log_warn("sink endpoint down", "sink", s->cfg->name, "url", e->url, "error",
                         res->endpoint_error);
            e->up = 0;
            e->failures++;
            snprintf(e->last_error, sizeof e->last_error, "%s", res->endpoint_error);
        } else if (res->endpoint == (int)i) {
            if (!e->up) log_info("sink endpoint up", "sink", s->cfg->name, "url", e->url);
            e->up = 1;
        }
    }
    pthread_mutex_unlock(&s->stats_mu);
}

static void note_recovered(sink_t *s)
{
    pthread_mutex_lock(&s->stats_mu);
    if (s->state == SINK_DEGRADED) {
        char n[24];
        snprintf(n, sizeof n, "%" PRIu64, s->retries - s->retries_at_degrade);
        s->state = SINK_OK;
        set_state(s, SINK_OK);
        pthread_mutex_unlock(&s->stats_mu);
        log_info("sink recovered", "sink", s->cfg->name, "#retries", n);
        return;
    }
    pthread_mutex_unlock(&s->stats_mu);
}

/* Wait after a failed attempt: RUNNING labels 1-5 s, configuration errors the max backoff,
 * everything else full-jitter exponential. -1 when aborted. */
static int backoff(sink_t *s, const sink_result_t *res, uint32_t *attempt)
{
    uint32_t d;
    if (res->min_delay_ms)
        d = res->min_delay_ms + (uint32_t)(sink_rand(&s->rnd) % 4001);
    else if (res->kind == SINK_RES_CONFIG && !s->direct) /* direct: a few quick tries, then out */
        d = s->cfg->retry_max_backoff_ms;
    else
        d = sink_backoff_ms(s->cfg->retry_initial_backoff_ms, s->cfg->retry_max_backoff_ms,
                            *attempt, &s->rnd);
    if (*attempt < 64) (*attempt)++;
    return sleep_interruptible(s, d);
}

/* ---- one batch ---- */

typedef struct {
    wal_dlq_entry_t *e;
    size_t n, cap;
} dlq_vec_t;

static void dlq_vec_free(dlq_vec_t *v)
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
    dlq_vec_t *dlq;
    uint32_t attempt; /* consecutive failures, for the backoff */
    const char *hdr;  /* header rows sent ahead of every part (the records', or a split
                       * unit's own header) */
    size_t hdr_len;
    int split; /* the rows are a split whole unit: not split again */
} group_ctx_t;

static int dlq_add(group_ctx_t *c, uint32_t lo, uint32_t hi, const char *err)
{
    dlq_vec_t *v = c->dlq;
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
        if (should_abort(s)) return -1;
        sink_result_t res;
        s->be->send(s->be_state, &b, &res);
        note_endpoints(s, &res);
        if (res.kind == SINK_RES_OK) {
            c->attempt = 0;
            note_recovered(s);
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
            set_last_error(s, res.msg);
            pthread_mutex_unlock(&s->stats_mu);
            return SINK_REFUSED;
        }
        if (res.kind == SINK_RES_PERMANENT) {
            c->attempt = 0;
            note_recovered(s); /* the backend answers: not an outage */
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
        note_failure(s, &res);
        if (backoff(s, &res, &c->attempt) < 0) return -1;
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
static int deliver_group(sink_t *s, const sink_group_t *g, const char *key, dlq_vec_t *dlq)
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
    group_ctx_t c = {.s = s, .g = g, .body = body, .dlq = dlq, .hdr = g->recs[0]->hdr,
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
static int commit_cursor(sink_t *s, const wal_cursor_t *cur, const wal_dlq_entry_t *dlq,
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
        note_failure(s, &res);
        if (backoff(s, &res, &attempt) < 0) return -1;
    }
}

/* Deliver records recs[0..n) (seq order), then advance the cursor to the last one. resend:
 * the in-flight range is already persisted (restart). Returns 0 or -1 when aborted. */
static int process_batch(sink_t *s, const wal_record_t *const *recs, size_t n, int resend)
{
    sink_group_t *g = NULL;
    size_t ng = 0;
    dlq_vec_t dlq = {0};
    int rc = -1;
    uint64_t first = recs[0]->seq, last = recs[n - 1]->seq;
    while (sink_group_records(s->cfg, recs, n, &g, &ng) < 0) {
        if (sleep_interruptible(s, 100) < 0) return -1;
    }
    if (ng > 0 && !resend) {
        /* Durability: the range is on disk before the first byte is sent, so after a crash
         * the resend covers exactly these records, grouped the same way, under the same
         * keys: the backend deduplicates instead of doubling. */
        wal_cursor_t inflight = {
            .acked = first - 1, .inflight_first = first, .inflight_last = last};
        if (commit_cursor(s, &inflight, NULL, 0) < 0) goto out;
    }
    for (size_t i = 0; i < ng; i++) {
        int r;
        while ((r = deliver_group(s, &g[i], NULL, &dlq)) == -ENOMEM)
            if (sleep_interruptible(s, 100) < 0) goto out;
        if (r < 0) goto out; /* aborted: the persisted in-flight range is resent on restart */
    }
    /* Ordering: the cursor passes these records only in the same transaction that puts
     * their refused rows into the DLQ, so no row is ever neither delivered nor queued. */
    wal_cursor_t done = {.acked = last};
    if (commit_cursor(s, &done, dlq.e, dlq.n) < 0) goto out;
    atomic_store(&s->delivered, last);
    notify_progress(s);
    rc = 0;
out:
    dlq_vec_free(&dlq);
    sink_groups_free(g, ng);
    return rc;
}

/* ---- reading ---- */

typedef struct {
    wal_batch_t *chunks;
    size_t n_chunks, cap_chunks;
    const wal_record_t **recs;
    size_t n, cap;
} batch_t;

static void batch_clear(batch_t *b)
{
    for (size_t i = 0; i < b->n_chunks; i++)
        wal_batch_free(&b->chunks[i]);
    b->n_chunks = 0;
    b->n = 0;
}

static void batch_free(batch_t *b)
{
    batch_clear(b);
    free(b->chunks);
    free(b->recs);
    memset(b, 0, sizeof *b);
}

/* Append the records of one wal_read (taking ownership): those <= upto only, and no more
 * once max_rows is reached (the batch always takes at least one record). */
static int batch_add(batch_t *b, wal_batch_t *wb, uint64_t upto, uint32_t max_rows, uint32_t *rows,
                     size_t *bytes)
{
    if (b->n_chunks == b->cap_chunks) {
        size_t nc = b->cap_chunks ? b->cap_chunks * 2 : 8;
        wal_batch_t *c = realloc(b->chunks, nc * sizeof *c);
        if (!c) return -ENOMEM;
        b->chunks = c;
        b->cap_chunks = nc;
    }
    if (b->n + wb->n > b->cap) {
        size_t nc = (b->n + wb->n) * 2;
        const wal_record_t **r = realloc(b->recs, nc * sizeof *r);
        if (!r) return -ENOMEM;
        b->recs = r;
        b->cap = nc;
    }
    b->chunks[b->n_chunks++] = *wb;
    for (size_t i = 0; i < wb->n && wb->recs[i].seq <= upto; i++) {
        if (b->n > 0 && *rows + wb->recs[i].n_rows > max_rows) break;
        b->recs[b->n++] = &wb->recs[i];
        *rows += wb->recs[i].n_rows;
        *bytes += wb->recs[i].raw_bytes;
    }
    memset(wb, 0, sizeof *wb);
    return 0;
}

/* Read the next batch after `after`: up to batch_max_rows / batch_max_bytes, waiting up to
 * batch_max_wait_ms for more when short (not while draining). Empty when nothing came in
 * one idle slice. */
static int read_batch(sink_t *s, uint64_t after, batch_t *b)
{
    const cfg_sink_t *c = s->cfg;
    int rc = wal_wait(s->w, after, SINK_IDLE_SLICE_MS);
    if (rc == WAL_ETIMEDOUT) return 0;
    if (rc < 0) return rc;
    pthread_mutex_lock(&s->mu);
    int draining = s->draining;
    uint64_t upto = draining ? s->drain_target : UINT64_MAX;
    pthread_mutex_unlock(&s->mu);
    uint64_t deadline = time_mono_ms() + (draining ? 0 : c->batch_max_wait_ms);
    uint32_t max_rows = c->batch_max_rows ? c->batch_max_rows : 10000;
    size_t max_bytes = c->batch_max_bytes ? (size_t)c->batch_max_bytes : (8u << 20);
    uint32_t rows = 0;
    size_t bytes = 0;
    uint64_t last = after;
    for (;;) {
        wal_batch_t wb = {0};
        rc = wal_read(s->w, last, max_rows - rows, max_bytes - bytes, &wb);
        if (rc < 0) return rc;
        if (wb.n > 0) {
            size_t before = b->n;
            if ((rc = batch_add(b, &wb, upto, max_rows, &rows, &bytes)) < 0) {
                wal_batch_free(&wb);
                return rc;
            }
            if (b->n == before) break; /* past the drain target, or the batch is full */
            last = b->recs[b->n - 1]->seq;
        } else {
            wal_batch_free(&wb);
        }
        uint64_t t = time_mono_ms();
        /* A read is waiting for records up to now_upto (the proxy's read barrier): send
         * once they are in, instead of waiting for the batch to fill. */
        uint64_t now_upto = atomic_load(&s->deliver_now);
        if (rows >= max_rows || bytes >= max_bytes || t >= deadline || last >= upto ||
            (now_upto > after && last >= now_upto) || should_abort(s))
            break;
        uint64_t left = deadline - t;
        rc =
            wal_wait(s->w, last, (uint32_t)(left < SINK_IDLE_SLICE_MS ? left : SINK_IDLE_SLICE_MS));
        if (rc < 0 && rc != WAL_ETIMEDOUT) return rc;
    }
    return 0;
}

/* Read exactly the persisted in-flight range (first..last) again. */
static int read_range(sink_t *s, uint64_t after, uint64_t last, batch_t *b)
{
    wal_batch_t wb = {0};
    uint32_t rows = 0;
    size_t bytes = 0;
    int rc = wal_read(s->w, after, (size_t)(last - after), SIZE_MAX, &wb);
    if (rc < 0) return rc;
    if ((rc = batch_add(b, &wb, last, UINT32_MAX, &rows, &bytes)) < 0) wal_batch_free(&wb);
    return rc;
}

/* ---- the thread ---- */

/* Block while paused; returns 1 when still paused on the way out (stopping). */
static int wait_while_paused(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->paused && !s->draining && !should_abort(s))
        pthread_cond_wait(&s->cv, &s->mu);
    int paused = s->paused;
    pthread_mutex_unlock(&s->mu);
    return paused;
}

static void *sink_thread(void *arg)
{
    sink_t *s = arg;
    batch_t b = {0};
    wal_cursor_t cur = {0};
    uint32_t attempt = 0;
    int prepared = 0;
    sink_result_t res;

    for (;;) { /* the cursor: wal_set_consumers made it */
        int rc = wal_cursor_get(s->w, s->cfg->name, &cur);
        if (rc == 0) break;
        if (rc == WAL_ENOENT) {
            memset(&cur, 0, sizeof cur);
            break;
        }
        memset(&res, 0, sizeof res);
        res.kind = SINK_RES_RETRY;
        snprintf(res.msg, sizeof res.msg, "wal cursor read: %s", wal_strerror(rc));
        note_failure(s, &res);
        if (backoff(s, &res, &attempt) < 0) goto done;
    }
    atomic_store(&s->delivered, cur.acked);
    uint64_t acked = cur.acked;
    int resend = cur.inflight_first && cur.inflight_last > cur.acked;
    if (resend) {
        char a[24], z[24];
        snprintf(a, sizeof a, "%" PRIu64, cur.inflight_first);
        snprintf(z, sizeof z, "%" PRIu64, cur.inflight_last);
        log_info("resending the in-flight range under its keys", "sink", s->cfg->name, "#first", a,
                 "#last", z);
    }
    attempt = 0;

    while (!should_exit(s)) {
        wait_while_paused(s);
        if (should_exit(s)) break;
        if (!prepared) {
            memset(&res, 0, sizeof res);
            if (s->be->prepare(s->be_state, &res) == 0) {
                prepared = 1;
                attempt = 0;
                note_recovered(s);
            } else {
                res.endpoint = -1;
                note_endpoints(s, &res);
                note_failure(s, &res);
                if (backoff(s, &res, &attempt) < 0) break;
                continue;
            }
        }
        int rc;
        if (resend) {
            uint64_t from = cur.inflight_first - 1 > acked ? cur.inflight_first - 1 : acked;
            rc = read_range(s, from, cur.inflight_last, &b);
        } else {
            rc = read_batch(s, acked, &b);
        }
        if (rc < 0) {
            batch_clear(&b);
            if (rc == WAL_ECLOSED) break;
            memset(&res, 0, sizeof res);
            res.kind = SINK_RES_RETRY;
            snprintf(res.msg, sizeof res.msg, "wal read: %s", wal_strerror(rc));
            note_failure(s, &res);
            if (backoff(s, &res, &attempt) < 0) break;
            continue;
        }
        if (b.n == 0) {
            resend = 0; /* the range is gone (dropped as a gap): nothing to resend */
            batch_clear(&b);
            continue;
        }
        /* Paused while this batch was being gathered (wal_wait): hold it until resumed. */
        if (wait_while_paused(s)) { /* stopping while paused: deliver nothing more */
            batch_clear(&b);
            break;
        }
        rc = process_batch(s, b.recs, b.n, resend);
        if (rc == 0) {
            acked = b.recs[b.n - 1]->seq;
            resend = 0;
        }
        batch_clear(&b);
        if (rc < 0) break;
    }
done:
    batch_free(&b);
    pthread_mutex_lock(&s->mu);
    s->finished = 1;
    if (s->on_progress) s->on_progress(s->on_progress_ctx); /* held reads go */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- lifecycle ---- */

static void sink_free(sink_t *s)
{
    if (!s) return;
    if (s->be_state) s->be->close(s->be_state);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

static sink_t *sink_new(const cfg_sink_t *cfg, wal_t *w, const sink_backend_t *be)
{
    sink_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    s->w = w;
    s->be = be;
    s->logid = w ? wal_log_id(w) : 0;
    s->rnd = (uint64_t)time_wall_ms() ^ ((uint64_t)fnv1a32(cfg->name, strlen(cfg->name)) << 32) ^ (uintptr_t)s;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->stats_mu, NULL);
    atomic_init(&s->abort_flag, 0);
    atomic_init(&s->delivered, 0);
    atomic_init(&s->deliver_now, 0);
    atomic_init(&s->state_now, SINK_OK);
    s->state = SINK_OK;
    s->n_ep = cfg->n_urls ? cfg->n_urls : 1;
    if (s->n_ep > CFG_MAX_ENDPOINTS) s->n_ep = CFG_MAX_ENDPOINTS;
    for (size_t i = 0; i < s->n_ep; i++) {
        s->ep[i].url = cfg->n_urls ? cfg->urls[i] : cfg->url;
        s->ep[i].up = 1; /* until a connect error says otherwise */
    }
    return s;
}

int sink_start_with_backend(const cfg_sink_t *cfg, wal_t *w, const sink_backend_t *be, sink_t **out,
                            char *err, size_t errlen)
{
    sink_t *s = sink_new(cfg, w, be);
    if (!s) {
        snprintf(err, errlen, "sink %s: out of memory", cfg->name);
        return -ENOMEM;
    }
    int rc = be->open(cfg, &s->abort_flag, &s->be_state, err, errlen);
    if (rc < 0) goto fail;
    wal_cursor_t cur;
    if (wal_cursor_get(w, cfg->name, &cur) == 0) atomic_store(&s->delivered, cur.acked);
    rc = pthread_create(&s->thread, NULL, sink_thread, s);
    if (rc != 0) {
        snprintf(err, errlen, "sink %s: pthread_create: %s", cfg->name, strerror(rc));
        rc = -rc;
        goto fail;
    }
    s->thread_started = 1;
    *out = s;
    return 0;
fail:
    sink_free(s);
    return rc;
}

/* Record "sink_started_ms:<sink>" in meta for a sink that had no cursor before this start:
 * the arrival time (wal ts_ms) of the first record it will deliver, or now when the log holds
 * none after its cursor. `sluice backfill` copies history only below this time, the live log
 * delivers everything from it on, so the two never carry the same row (DESIGN.md §6). A sink
 * that already had a cursor keeps whatever is recorded (nothing, if it predates this key). */
static void note_sink_started(wal_t *w, const char *name)
{
    char key[300], val[32];
    size_t len = 0;
    snprintf(key, sizeof key, "sink_started_ms:%s", name);
    if (wal_meta_get(w, key, val, sizeof val, &len) == 0) return;
    uint64_t t = time_wall_ms();
    wal_cursor_t cur;
    wal_batch_t b = {0};
    if (wal_cursor_get(w, name, &cur) == 0 && wal_read(w, cur.acked, 1, 1, &b) == 0 && b.n > 0 &&
        b.recs[0].ts_ms < t)
        t = b.recs[0].ts_ms;
    wal_batch_free(&b);
    int n = snprintf(val, sizeof val, "%" PRIu64, t);
    int rc = wal_meta_put(w, key, val, (size_t)n);
    if (rc < 0)
        log_warn("cannot record the sink's start time", "sink", name, "error", wal_strerror(rc));
}

int sinks_start(const sluice_cfg_t *cfg, wal_t *w, sink_t ***out, size_t *n_out, char *err,
                size_t errlen)
{
    size_t n = 0, k = 0;
    for (size_t i = 0; i < cfg->n_sinks; i++)
        n += cfg->sinks[i].enabled ? 1 : 0;
    *out = NULL;
    *n_out = 0;
    if (n == 0) return 0;
    wal_consumer_t *cons = calloc(n, sizeof *cons);
    sink_t **arr = calloc(n, sizeof *arr);
    char *is_new = calloc(n, 1);
    int rc = -ENOMEM;
    if (!cons || !arr || !is_new) {
        snprintf(err, errlen, "sinks: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const cfg_sink_t *c = &cfg->sinks[i];
        if (!c->enabled) continue;
        cons[k].name = c->name;
        cons[k].start_latest = c->start_from == CFG_START_LATEST;
        cons[k].drop_oldest = c->overflow == CFG_OVERFLOW_DROP_OLDEST;
        wal_cursor_t cur;
        is_new[k] = wal_cursor_get(w, c->name, &cur) == WAL_ENOENT;
        k++;
    }
    if ((rc = wal_set_consumers(w, cons, n)) < 0) {
        snprintf(err, errlen, "sinks: wal_set_consumers: %s", wal_strerror(rc));
        goto fail;
    }
    for (size_t i = 0; i < n; i++)
        if (is_new[i]) note_sink_started(w, cons[i].name);
    k = 0;
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const cfg_sink_t *c = &cfg->sinks[i];
        if (!c->enabled) continue;
        const sink_backend_t *be =
            c->type == CFG_SINK_STARROCKS ? &sink_starrocks_backend : &sink_clickhouse_backend;
        if ((rc = sink_start_with_backend(c, w, be, &arr[k], err, errlen)) < 0) goto fail;
        k++;
        log_info("sink started", "sink", c->name, "type", be->type, "url", c->url);
    }
    free(cons);
    free(is_new);
    *out = arr;
    *n_out = n;
    return 0;
fail:
    if (arr)
        sinks_stop(arr, k, 0);
    else
        free(arr);
    free(cons);
    free(is_new);
    return rc < 0 ? rc : -EINVAL;
}

int sinks_add(const sluice_cfg_t *cfg, wal_t *w, sink_t *const *running, size_t n_running,
              sink_t ***added, size_t *n_added, char *err, size_t errlen)
{
    size_t n_new = 0, k = 0;
    *added = NULL;
    *n_added = 0;
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        int known = 0;
        for (size_t j = 0; j < n_running && !known; j++)
            known = strcmp(running[j]->cfg->name, cfg->sinks[i].name) == 0;
        n_new += cfg->sinks[i].enabled && !known;
    }
    if (n_new == 0) return 0;
    wal_consumer_t *cons = calloc(n_running + n_new, sizeof *cons);
    const cfg_sink_t **fresh = calloc(n_new, sizeof *fresh);
    sink_t **arr = calloc(n_new, sizeof *arr);
    int rc = -ENOMEM;
    if (!cons || !fresh || !arr) {
        snprintf(err, errlen, "sinks: out of memory");
        goto fail;
    }
    /* The consumer list is the whole set: the running sinks keep their cursors, and the
     * new ones are declared before their threads start, so truncation waits for them. */
    for (size_t j = 0; j < n_running; j++) {
        const cfg_sink_t *c = running[j]->cfg;
        cons[j] = (wal_consumer_t){.name = c->name,
                                   .start_latest = c->start_from == CFG_START_LATEST,
                                   .drop_oldest = c->overflow == CFG_OVERFLOW_DROP_OLDEST};
    }
    for (size_t i = 0, m = 0; i < cfg->n_sinks; i++) {
        const cfg_sink_t *c = &cfg->sinks[i];
        int known = 0;
        for (size_t j = 0; j < n_running && !known; j++)
            known = strcmp(running[j]->cfg->name, c->name) == 0;
        if (!c->enabled || known) continue;
        fresh[m] = c;
        cons[n_running + m++] =
            (wal_consumer_t){.name = c->name,
                             .start_latest = c->start_from == CFG_START_LATEST,
                             .drop_oldest = c->overflow == CFG_OVERFLOW_DROP_OLDEST};
    }
    char *had_cursor = calloc(n_new, 1);
    if (!had_cursor) goto fail;
    for (size_t m = 0; m < n_new; m++) {
        wal_cursor_t cur;
        had_cursor[m] = wal_cursor_get(w, fresh[m]->name, &cur) == 0;
    }
    if ((rc = wal_set_consumers(w, cons, n_running + n_new)) < 0) {
        snprintf(err, errlen, "sinks: wal_set_consumers: %s", wal_strerror(rc));
        free(had_cursor);
        goto fail;
    }
    for (size_t m = 0; m < n_new; m++)
        if (!had_cursor[m]) note_sink_started(w, fresh[m]->name);
    free(had_cursor);
    for (k = 0; k < n_new; k++) {
        const cfg_sink_t *c = fresh[k];
        const sink_backend_t *be =
            c->type == CFG_SINK_STARROCKS ? &sink_starrocks_backend : &sink_clickhouse_backend;
        if ((rc = sink_start_with_backend(c, w, be, &arr[k], err, errlen)) < 0) goto fail;
        log_info("sink started", "sink", c->name, "type", be->type, "url", c->url);
    }
    free(cons);
    free(fresh);
    *added = arr;
    *n_added = n_new;
    return 0;
fail:
    if (arr) sinks_stop(arr, k, 0);
    free(cons);
    free(fresh);
    return rc < 0 ? rc : -EINVAL;
}

void sinks_stop(sink_t **s, size_t n, uint32_t drain_ms)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) continue;
        pthread_mutex_lock(&s[i]->mu);
        s[i]->draining = 1;
        s[i]->drain_target = wal_last_seq(s[i]->w);
        if (drain_ms == 0) atomic_store(&s[i]->abort_flag, 1);
        pthread_cond_broadcast(&s[i]->cv);
        pthread_mutex_unlock(&s[i]->mu);
    }
    struct timespec deadline;
    time_mono_deadline(&deadline, drain_ms);
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) continue;
        pthread_mutex_lock(&s[i]->mu);
        while (s[i]->thread_started && !s[i]->finished)
            if (pthread_cond_timedwait(&s[i]->cv, &s[i]->mu, &deadline) == ETIMEDOUT) break;
        pthread_mutex_unlock(&s[i]->mu);
    }
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) continue;
        pthread_mutex_lock(&s[i]->mu);
        atomic_store(&s[i]->abort_flag, 1);
        pthread_cond_broadcast(&s[i]->cv);
        pthread_mutex_unlock(&s[i]->mu);
    }
    for (size_t i = 0; i < n; i++) {
        if (!s[i]) continue;
        if (s[i]->thread_started) pthread_join(s[i]->thread, NULL);
        if (atomic_load(&s[i]->delivered) < s[i]->drain_target) {
            char a[24], t[24];
            snprintf(a, sizeof a, "%" PRIu64, (uint64_t)atomic_load(&s[i]->delivered));
            snprintf(t, sizeof t, "%" PRIu64, s[i]->drain_target);
            log_warn("sink stopped before draining; the rest is delivered after restart", "sink",
                     s[i]->cfg->name, "#delivered", a, "#last_seq", t);
        }
        sink_free(s[i]);
    }
    free(s);
}

const char *sink_name(const sink_t *s)
{
    return s->cfg->name;
}

void sink_get_stats(sink_t *s, sink_stats_t *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&s->stats_mu);
    out->state = s->state;
    out->rows_sent = s->rows_sent;
    out->bytes_sent = s->bytes_sent;
    out->batches_sent = s->batches_sent;
    out->retries = s->retries;
    out->dlq_rows = s->dlq_rows;
    out->rows_filtered = s->rows_filtered;
    snprintf(out->last_error, sizeof out->last_error, "%s", s->last_error);
    snprintf(out->last_error_url, sizeof out->last_error_url, "%s", s->last_error_url);
    out->n_endpoints = s->n_ep;
    memcpy(out->endpoints, s->ep, s->n_ep * sizeof *s->ep);
    pthread_mutex_unlock(&s->stats_mu);
    pthread_mutex_lock(&s->mu);
    if (s->finished)
        out->state = SINK_STOPPED;
    else if (s->paused)
        out->state = SINK_PAUSED;
    pthread_mutex_unlock(&s->mu);
    if (s->be->dedup_unsafe && s->be_state)
        out->dedup_unsafe_tables =
            s->be->dedup_unsafe(s->be_state, out->dedup_unsafe, sizeof out->dedup_unsafe);
    out->cursor = atomic_load(&s->delivered);
    if (!s->w) return; /* direct delivery: no log */
    /* overflow: drop_oldest moves the durable cursor past records this sink never sent */
    wal_cursor_t cur;
    if (wal_cursor_get(s->w, s->cfg->name, &cur) == 0 && cur.acked > out->cursor)
        out->cursor = cur.acked;
    uint64_t last = wal_last_seq(s->w);
    out->lag_records = last > out->cursor ? last - out->cursor : 0;
    if (out->lag_records) {
        wal_batch_t b = {0};
        if (wal_read(s->w, out->cursor, 1, 1, &b) == 0 && b.n > 0) {
            uint64_t t = time_wall_ms();
            out->lag_seconds = t > b.recs[0].ts_ms ? (double)(t - b.recs[0].ts_ms) / 1000.0 : 0;
        }
        wal_batch_free(&b);
    }
}

void sink_pause(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->paused = 1;
    if (s->on_progress) s->on_progress(s->on_progress_ctx); /* held reads go */
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

void sink_resume(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    s->paused = 0;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

uint64_t sink_delivered_seq(sink_t *s)
{
    return atomic_load(&s->delivered);
}

sink_state_t sink_state(sink_t *s)
{
    if (atomic_load(&s->abort_flag)) return SINK_STOPPED;
    pthread_mutex_lock(&s->mu);
    int paused = s->paused, finished = s->finished;
    pthread_mutex_unlock(&s->mu);
    if (finished) return SINK_STOPPED;
    if (paused) return SINK_PAUSED;
    return (sink_state_t)atomic_load(&s->state_now);
}

void sink_deliver_now(sink_t *s, uint64_t upto)
{
    uint64_t cur = atomic_load(&s->deliver_now);
    while (cur < upto && !atomic_compare_exchange_weak(&s->deliver_now, &cur, upto))
        ;
    if (s->w) wal_wake(s->w); /* ends the batch's wait for more records */
}

void sink_on_progress(sink_t *s, void (*cb)(void *ctx), void *ctx)
{
    pthread_mutex_lock(&s->mu);
    s->on_progress = cb;
    s->on_progress_ctx = ctx;
    pthread_mutex_unlock(&s->mu);
}

/* ---- direct delivery (sluice backfill) ---- */

int sink_direct_open(const cfg_sink_t *cfg, uint64_t logid, sink_t **out, char *err, size_t errlen)
{
    const sink_backend_t *be =
        cfg->type == CFG_SINK_STARROCKS ? &sink_starrocks_backend : &sink_clickhouse_backend;
    sink_t *s = sink_new(cfg, NULL, be);
    if (!s) {
        snprintf(err, errlen, "sink %s: out of memory", cfg->name);
        return -ENOMEM;
    }
    s->logid = logid;
    s->direct = 1;
    int rc = be->open(cfg, &s->abort_flag, &s->be_state, err, errlen);
    if (rc < 0) {
        sink_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sink_wants_table(const cfg_sink_t *cfg, const char *db, const char *table)
{
    wal_record_t r = {.db = db, .table = table, .rows = "{}\n", .rows_len = 3, .n_rows = 1};
    return sink_record_wanted(cfg, &r);
}

int sink_direct_deliver(sink_t *s, const char *db, const char *table, const char *rows,
                        size_t rows_len, uint32_t n_rows, const char *key, sink_dead_cb dead,
                        void *ctx)
{
    wal_record_t rec = {.db = db ? db : "",
                        .table = table,
                        .fmt = "JSONEachRow",
                        .rows = rows,
                        .rows_len = rows_len,
                        .n_rows = n_rows,
                        .raw_bytes = rows_len};
    const wal_record_t *recs[1] = {&rec};
    sink_group_t *g = NULL;
    size_t ng = 0;
    dlq_vec_t dlq = {0};
    uint32_t attempt = 0;
    int rc;
    if (!key || !*key || strlen(key) > SINK_KEY_MAX) return -EINVAL;
    if (rows_len == 0) return 0;
    if ((rc = sink_group_records(s->cfg, recs, 1, &g, &ng)) < 0) return rc;
    if (ng == 0) {
        rc = -ENOENT; /* excluded by the sink's include/exclude */
        goto out;
    }
    while (!s->direct_prepared) { /* e.g. the ClickHouse version probe */
        sink_result_t res;
        memset(&res, 0, sizeof res);
        if (s->be->prepare(s->be_state, &res) == 0) {
            s->direct_prepared = 1;
            note_recovered(s);
        } else {
            if (res.kind == SINK_RES_CONFIG && attempt + 1 >= SINK_DIRECT_CONFIG_TRIES) {
                pthread_mutex_lock(&s->stats_mu);
                set_last_error(s, res.msg);
                pthread_mutex_unlock(&s->stats_mu);
                rc = -EACCES;
                goto out;
            }
            note_failure(s, &res);
            if (backoff(s, &res, &attempt) < 0) {
                rc = -ECANCELED;
                goto out;
            }
        }
    }
    rc = deliver_group(s, &g[0], key, &dlq);
    if (rc == -1) rc = -ECANCELED;
    if (rc == SINK_REFUSED) rc = -EACCES;
    if (rc < 0) goto out;
    for (size_t i = 0; i < dlq.n && dead; i++)
        if ((rc = dead(ctx, &dlq.e[i])) < 0) goto out;
out:
    dlq_vec_free(&dlq);
    sink_groups_free(g, ng);
    return rc;
}

void sink_direct_close(sink_t *s)
{
    sink_free(s);
}
