/* sink.h — sink workers: one thread per configured sink replays the log into a backend
 * (ClickHouse over HTTP, StarRocks over Stream Load) from its durable cursor, with batching,
 * retries, idempotency keys and a dead-letter queue. This header is the whole interface. */
#ifndef SLUICE_SINK_H
#define SLUICE_SINK_H

#include <stdint.h>
#include <stdio.h>

#include "config/config.h"
#include "wal/wal.h"

typedef struct sink sink_t;

typedef enum { SINK_OK = 0, SINK_DEGRADED, SINK_PAUSED, SINK_STOPPED } sink_state_t;

/* One endpoint of a sink (its `url` list): up until a connect error or timeout, up again
 * once it answers. */
typedef struct {
    const char *url; /* the config's string */
    int up;
    uint64_t failures; /* connect errors / timeouts so far */
    char last_error[160];
} sink_endpoint_stats_t;

typedef struct {
    sink_state_t state;
    uint64_t cursor;      /* acked seq */
    uint64_t lag_records; /* last_seq - cursor */
    double lag_seconds;   /* age of the oldest undelivered record */
    uint64_t rows_sent, bytes_sent, batches_sent;
    uint64_t retries;
    uint64_t dlq_rows;
    uint64_t rows_filtered; /* rows the backend dropped in loads it accepted (StarRocks
                             * NumberFilteredRows with max_filter_ratio > 0) */
    uint64_t dedup_unsafe_tables; /* target tables where a retried batch may double rows */
    char dedup_unsafe[512];       /* their names, db.table comma separated (may be cut short) */
    char last_error[256];
    char last_error_url[256]; /* ErrorURL of the last load with filtered rows */
    size_t n_endpoints;
    sink_endpoint_stats_t endpoints[CFG_MAX_ENDPOINTS];
} sink_stats_t;

/* Start every configured, enabled sink (declares them to the wal as consumers first). */
int sinks_start(const sluice_cfg_t *cfg, wal_t *w, sink_t ***out, size_t *n_out, char *err,
                size_t errlen);

/* Start the enabled sinks of cfg that are not among running (matched by name), without
 * touching the running ones: SIGHUP adds a sink to a live instance. cfg must outlive the
 * added sinks. Sinks changed or removed in cfg are not this function's business (the caller
 * says they need a restart). *added may be NULL (n_added 0) when there is nothing new. */
int sinks_add(const sluice_cfg_t *cfg, wal_t *w, sink_t *const *running, size_t n_running,
              sink_t ***added, size_t *n_added, char *err, size_t errlen);

/* Ask every sink to stop; wait until each has delivered everything up to the log's last seq
 * or drain_ms has passed, then join the threads and free. drain_ms 0 = stop at once. */
void sinks_stop(sink_t **s, size_t n, uint32_t drain_ms);

const char *sink_name(const sink_t *s);
void sink_get_stats(sink_t *s, sink_stats_t *out);
void sink_pause(sink_t *s);
void sink_resume(sink_t *s);

/* ---- the proxy's read barrier (any thread, no LMDB transaction) ---- */

/* Seq up to which this sink has delivered. */
uint64_t sink_delivered_seq(sink_t *s);
/* OK, DEGRADED, PAUSED or STOPPED, from atomics and a mutex only (sink_get_stats reads the
 * log; this does not). */
sink_state_t sink_state(sink_t *s);
/* Deliver every record up to upto now: the batch stops waiting for batch.max_wait_ms once
 * it holds them. */
void sink_deliver_now(sink_t *s, uint64_t upto);
/* cb(ctx) runs on the sink's thread each time delivered advances or the sink turns
 * degraded; it must only signal (uv_async_send). cb NULL: none; once this returns, the
 * previous cb is not running and never runs again. */
void sink_on_progress(sink_t *s, void (*cb)(void *ctx), void *ctx);

/* ---- direct delivery: batches that do not come from the log (`sluice backfill`) ---- */

/* Open cfg's backend for sink_direct_deliver, used from the calling thread only. logid: the
 * log's id (wal_log_id), for log messages and nothing else: the caller chooses every key. */
int sink_direct_open(const cfg_sink_t *cfg, uint64_t logid, sink_t **out, char *err, size_t errlen);

/* Rows refused for good, with the backend's message (e->error); e->rows is n_rows lines.
 * The pointers live until the callback returns. Return 0, or negative to stop delivering. */
typedef int (*sink_dead_cb)(void *ctx, const wal_dlq_entry_t *e);

/* Deliver n_rows '\n'-terminated JSON rows of db.table (names as a client writes them: the
 * sink's database override and rename apply) with the engine's code path: same send,
 * full-jitter retries of transient failures (forever), bisection of refused batches. key
 * ([A-Za-z0-9_], <= 128 chars) is the label / dedup token; a bisected part [lo, hi) gets
 * key_r{lo}_{hi} (hashed past 128), so a resend of the same rows under the same key never
 * doubles them. Refused rows go to dead before it returns. 0, -ENOENT when the sink's
 * include/exclude filters the table out, -EINVAL for a bad key, -EACCES when the backend
 * refuses the statement whatever the rows (unknown database or table: nothing dead-lettered)
 * or keeps answering with a configuration error (401/403: after a few tries), with the
 * backend's message in sink_get_stats' last_error; other negative errors. */
int sink_direct_deliver(sink_t *s, const char *db, const char *table, const char *rows,
                        size_t rows_len, uint32_t n_rows, const char *key, sink_dead_cb dead,
                        void *ctx);
void sink_direct_close(sink_t *s);

/* Would this sink deliver rows written to db.table (its include/exclude lists)? */
int sink_wants_table(const cfg_sink_t *cfg, const char *db, const char *table);

/* A sink or table name as it stands in an idempotency key or label: as is when it is
 * [A-Za-z0-9_]{1,32}, else h{fnv1a32:08x} (out: 40 bytes are enough). */
void sink_key_name(char *out, size_t cap, const char *name);

/* 1 when key, a URL parameter of ClickHouse's HTTP interface, is a setting (kept with the
 * rows and forwarded), 0 for the interface's own parameters (query, database, user,
 * query_id, session_*, compress, param_*, ...). The one list: the proxy and the sinks ask it. */
int sink_ch_param_is_setting(const char *key);

/* `sluice check-config --online`: for a clickhouse sink, read its server's tables (of its
 * database when set) from system.tables and print one line per table where a retried batch
 * may double rows, with the fix. Number of such tables, or negative when the server could not
 * be read (the reason on err). Other sink types: 0. */
int sink_dedup_check(const cfg_sink_t *cfg, FILE *out, FILE *err);

/* The dead-letter queue of w (of one sink, or all when sink is NULL) as a table on out, and
 * entry id in full (fields, then its rows); 0, or 1 with the reason on err. */
int sink_dlq_print_list(wal_t *w, const char *sink, FILE *out, FILE *err);
int sink_dlq_print_entry(wal_t *w, uint64_t id, FILE *out, FILE *err);

#endif
