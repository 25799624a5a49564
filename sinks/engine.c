/* engine.c — the sink engine's worker loop and lifecycle: one thread per enabled sink reads
 * batches after its durable cursor and hands them to deliver.c (send, retry with full-jitter
 * backoff, bisect, DLQ, cursor commit); start, reload-add, pause, drain, stop and the
 * statistics. Over 700 lines because the loop and the lifecycle share the control fields
 * under mu and are read together; delivery and direct delivery are in their own files. */
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
#include "sinks/engine_internal.h"

/* ---- sleeping ---- */

int sink_should_abort(sink_t *s)
{
    return atomic_load(&s->abort_flag) != 0;
}

/* Sleep up to ms, woken early by abort. Returns -1 when aborted. */
int sink_sleep(sink_t *s, uint32_t ms)
{
    struct timespec ts;
    time_mono_deadline(&ts, ms);
    pthread_mutex_lock(&s->mu);
    while (!sink_should_abort(s)) {
        if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) == ETIMEDOUT) break;
    }
    pthread_mutex_unlock(&s->mu);
    return sink_should_abort(s) ? -1 : 0;
}

/* The loop ends on abort, or while draining once everything up to the target is delivered
 * (or the sink is paused: a paused sink delivers nothing more). */
static int should_exit(sink_t *s)
{
    if (sink_should_abort(s)) return 1;
    pthread_mutex_lock(&s->mu);
    int ex = s->draining && (s->paused || atomic_load(&s->delivered) >= s->drain_target);
    pthread_mutex_unlock(&s->mu);
    return ex;
}

/* ---- state, stats ---- */

/* Tell the sink_on_progress listener (the proxy's read barrier) that delivered or the
 * state moved. Under mu so that sink_on_progress(s, NULL, NULL) returning means no call is
 * running or will run. */
void sink_notify_progress(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    if (s->on_progress) s->on_progress(s->on_progress_ctx);
    pthread_mutex_unlock(&s->mu);
}

static void set_state(sink_t *s, sink_state_t st)
{
    atomic_store(&s->state_now, (int)st);
}

void sink_set_last_error(sink_t *s, const char *msg)
{
    size_t n = strlen(msg);
    if (n >= sizeof s->last_error) n = sizeof s->last_error - 1;
    memcpy(s->last_error, msg, n);
    s->last_error[n] = '\0';
}

void sink_note_failure(sink_t *s, const sink_result_t *res)
{
    char status[16];
    snprintf(status, sizeof status, "%d", res->http_status);
    pthread_mutex_lock(&s->stats_mu);
    s->retries++;
    sink_set_last_error(s, res->msg);
    uint64_t t = time_mono_ms();
    if (s->state != SINK_DEGRADED) {
        s->state = SINK_DEGRADED;
        set_state(s, SINK_DEGRADED);
        s->retries_at_degrade = s->retries - 1;
        s->last_summary_ms = t;
        pthread_mutex_unlock(&s->stats_mu);
        sink_notify_progress(s); /* reads held by the barrier go now: waiting cannot help */
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
void sink_note_endpoints(sink_t *s, const sink_result_t *res)
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

void sink_note_recovered(sink_t *s)
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

/* Wait after a failed attempt: RUNNING labels 1-5 s, configuration errors the max sink_backoff,
 * everything else full-jitter exponential. -1 when aborted. */
int sink_backoff(sink_t *s, const sink_result_t *res, uint32_t *attempt)
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
    return sink_sleep(s, d);
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
            (now_upto > after && last >= now_upto) || sink_should_abort(s))
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

/* A latest sink's first records that arrived before its start second (wal_set_consumers):
 * the other sinks delivered them and `sluice backfill` copies them, so this one passes its
 * cursor over them instead of sending. Drops them from b; 0, or -1 when stopping. */
static int skip_before_start(sink_t *s, batch_t *b, uint64_t *acked)
{
    size_t k = 0;
    while (k < b->n && (s->skip_seq ? b->recs[k]->seq < s->skip_seq
                                    : b->recs[k]->ts_ms < s->skip_ts))
        k++;
    if (k < b->n) {
        if (k == 0 && s->skip_seq) s->skip_ts = 0; /* past them: done */
        s->skip_seq = b->recs[k]->seq;
    }
    if (k == 0) return 0;
    wal_cursor_t past = {.acked = b->recs[k - 1]->seq};
    if (sink_commit_cursor(s, &past, NULL, 0) < 0) return -1;
    *acked = past.acked;
    atomic_store(&s->delivered, past.acked);
    sink_notify_progress(s);
    memmove(b->recs, b->recs + k, (b->n - k) * sizeof *b->recs);
    b->n -= k;
    return 0;
}

/* Block while paused; returns 1 when still paused on the way out (stopping). */
static int wait_while_paused(sink_t *s)
{
    pthread_mutex_lock(&s->mu);
    while (s->paused && !s->draining && !sink_should_abort(s))
        pthread_cond_wait(&s->cv, &s->mu);
    int paused = s->paused;
    pthread_mutex_unlock(&s->mu);
    return paused;
}

static void *sink_thread(void *arg)
{
    sink_t *s = arg;
    char tname[16]; /* top -H, perf and gdb show which sink it is */
    snprintf(tname, sizeof tname, "sink-%s", s->cfg->name);
    pthread_setname_np(pthread_self(), tname);
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
        sink_note_failure(s, &res);
        if (sink_backoff(s, &res, &attempt) < 0) goto done;
    }
    atomic_store(&s->delivered, cur.acked);
    uint64_t acked = cur.acked;
    int resend = cur.inflight_first && cur.inflight_last > cur.acked;
    if (s->cfg->start_from == CFG_START_LATEST) {
        char key[300], val[32];
        size_t len = 0;
        snprintf(key, sizeof key, "%s%s", WAL_META_SINK_STARTED, s->cfg->name);
        if (wal_meta_get(s->w, key, val, sizeof val, &len) == 0)
            s->skip_ts = strtoull(val, NULL, 10);
    }
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
                sink_note_recovered(s);
            } else {
                res.endpoint = -1;
                sink_note_endpoints(s, &res);
                sink_note_failure(s, &res);
                if (sink_backoff(s, &res, &attempt) < 0) break;
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
            sink_note_failure(s, &res);
            if (sink_backoff(s, &res, &attempt) < 0) break;
            continue;
        }
        if (!resend && s->skip_ts && skip_before_start(s, &b, &acked) < 0) {
            batch_clear(&b);
            break;
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
        rc = sink_process_batch(s, b.recs, b.n, resend);
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

void sink_free(sink_t *s)
{
    if (!s) return;
    if (s->be_state) s->be->close(s->be_state);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->stats_mu);
    free(s);
}

sink_t *sink_new(const cfg_sink_t *cfg, wal_t *w, const sink_backend_t *be)
{
    sink_t *s = calloc(1, sizeof *s);
    if (!s) return NULL;
    s->cfg = cfg;
    s->w = w;
    s->be = be;
    s->logid = w ? wal_log_id(w) : 0;
    s->rnd = (uint64_t)time_wall_ms() ^ ((uint64_t)fnv1a32(cfg->name, strlen(cfg->name)) << 32) ^
             (uintptr_t)s;
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
    int rc = -ENOMEM;
    if (!cons || !arr) {
        snprintf(err, errlen, "sinks: out of memory");
        goto fail;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const cfg_sink_t *c = &cfg->sinks[i];
        if (!c->enabled) continue;
        cons[k].name = c->name;
        cons[k].start_latest = c->start_from == CFG_START_LATEST;
        cons[k].drop_oldest = c->overflow == CFG_OVERFLOW_DROP_OLDEST;
        k++;
    }
    if ((rc = wal_set_consumers(w, cons, n)) < 0) {
        snprintf(err, errlen, "sinks: wal_set_consumers: %s", wal_strerror(rc));
        goto fail;
    }
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
    *out = arr;
    *n_out = n;
    return 0;
fail:
    if (arr)
        sinks_stop(arr, k, 0);
    else
        free(arr);
    free(cons);
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
    if ((rc = wal_set_consumers(w, cons, n_running + n_new)) < 0) {
        snprintf(err, errlen, "sinks: wal_set_consumers: %s", wal_strerror(rc));
        goto fail;
    }
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
    /* Everything acked is readable before the drain target is taken (the WAL's last
     * checkpoint may be a few ms behind its acks). */
    for (size_t i = 0; i < n && drain_ms; i++)
        if (s[i] && s[i]->w) {
            wal_flush(s[i]->w);
            break;
        }
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
