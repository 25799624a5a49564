/* engine_internal.h — what engine.c (worker loop, lifecycle, stats), deliver.c (one batch:
 * send, bisect, DLQ, cursor commit) and direct.c (sink_direct_*, for backfill) share: the
 * sink itself and the engine's helpers. Nobody outside sinks/ includes it. */
#ifndef SLUICE_ENGINE_INTERNAL_H
#define SLUICE_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

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
    /* start_from: latest: records that arrived before skip_ts (meta sink_started_ms), at the
     * front of the stream, are the backfill's and not delivered; skip_seq is the first one
     * delivered once seen (sink thread only). */
    uint64_t skip_ts, skip_seq;
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

    atomic_uint_fast64_t delivered;   /* acked seq, published after the cursor commit */
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

/* DLQ entries gathered while one batch is delivered, committed with the cursor. */
typedef struct {
    wal_dlq_entry_t *e;
    size_t n, cap;
} sink_dlq_vec_t;

/* engine.c: the sink's life, its clock and its statistics. */
sink_t *sink_new(const cfg_sink_t *cfg, wal_t *w, const sink_backend_t *be);
void sink_free(sink_t *s);
int sink_should_abort(sink_t *s);
int sink_sleep(sink_t *s, uint32_t ms); /* nonzero when woken to stop */
void sink_notify_progress(sink_t *s);
void sink_set_last_error(sink_t *s, const char *msg);
void sink_note_failure(sink_t *s, const sink_result_t *res);
void sink_note_endpoints(sink_t *s, const sink_result_t *res);
void sink_note_recovered(sink_t *s);
int sink_backoff(sink_t *s, const sink_result_t *res, uint32_t *attempt);

/* deliver.c: one batch (records in log order; resend: its range was in flight before). */
int sink_process_batch(sink_t *s, const wal_record_t *const *recs, size_t n, int resend);
/* Commit the cursor (and DLQ entries) durably, retrying wal errors. -1 when aborted. */
int sink_commit_cursor(sink_t *s, const wal_cursor_t *cur, const wal_dlq_entry_t *dlq,
                       size_t n_dlq);
int sink_deliver_group(sink_t *s, const sink_group_t *g, const char *key, sink_dlq_vec_t *dlq);
void sink_dlq_vec_free(sink_dlq_vec_t *v);

#endif
