/* proxy.h — the ClickHouse-compatible HTTP front: INSERT ... FORMAT fmt (the text formats,
 * RowBinary, Native) is validated and acked only after the WAL commit holding it; everything
 * else is passed
 * through to the primary ClickHouse. Runs on one libuv loop. Whole interface of proxy/. */
#ifndef SLUICE_PROXY_H
#define SLUICE_PROXY_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "config/config.h"
#include "sinks/sink.h"
#include "wal/wal.h"

typedef struct proxy proxy_t;

/* Seq up to which the primary sink has delivered, for proxy.read_barrier_ms (NULL: none). */
typedef uint64_t (*proxy_delivered_fn)(void *ctx);

#define PROXY_UNBUF_MAX 32   /* tables named in sluice_ingest_unbuffered_total */
#define PROXY_UNBUF_NAME 160 /* "db.table", cut */

/* Upper bounds of the ack latency histogram (sluice_ack_latency_seconds), microseconds. A
 * durable ack takes a few hundred (one journal flush), so the first buckets are finer than
 * a millisecond: an operator (and tests/bench) can tell sluice's own tail from the client's. */
#define PROXY_ACK_BUCKETS 13
extern const uint32_t proxy_ack_bounds_us[PROXY_ACK_BUCKETS];

typedef struct {
    uint64_t requests_insert, requests_passthrough, requests_error;
    uint64_t barrier_waits;    /* reads held by proxy.read_barrier_ms */
    uint64_t barrier_timeouts; /* ... and forwarded when the bound passed */
    uint64_t barrier_skipped;  /* reads not held: the primary sink was degraded/paused */
    struct {
        char table[PROXY_UNBUF_NAME];
        uint64_t requests;
    } unbuffered[PROXY_UNBUF_MAX]; /* INSERTs passed through unbuffered, per table */
    size_t n_unbuffered;
    uint64_t unbuffered_other; /* ... for tables past PROXY_UNBUF_MAX */
    uint64_t rows_ingested, bytes_ingested;
    uint64_t inserts_offloop;  /* INSERTs whose large body was handled on the thread pool */
    uint64_t offloop_in_flight; /* ... of those, not answered yet */
    uint64_t connections_open;
    uint64_t ack_latency_hist[PROXY_ACK_BUCKETS + 1]; /* <= proxy_ack_bounds_us[i], +Inf */
    uint64_t ack_latency_sum_us;
} proxy_stats_t;

/* primary: the sink the read barrier waits for (NULL: none). The caller connects it with
 * sink_on_progress(primary, proxy_barrier_kick, p) and disconnects it before the sink stops. */
int proxy_start(proxy_t **out, uv_loop_t *loop, const sluice_cfg_t *cfg, wal_t *w,
                sink_t *primary, char *err, size_t errlen);
/* Any thread: the primary sink made progress; re-check the reads the barrier holds. */
void proxy_barrier_kick(void *proxy);

/* Stop accepting; cb runs on the loop once every in-flight request has been answered. */
void proxy_shutdown(proxy_t *p, void (*cb)(void *ctx), void *ctx);
void proxy_free(proxy_t *p);
void proxy_get_stats(proxy_t *p, proxy_stats_t *out);


/* ---- the admin listener (admin.listen): /healthz, /readyz, /metrics, /v1/sinks, /v1/dlq ---- */

typedef struct proxy_admin proxy_admin_t;

/* Start it (a no-op with *out = NULL when admin.listen is empty). p may be NULL. */
int proxy_admin_start(proxy_admin_t **out, uv_loop_t *loop, const sluice_cfg_t *cfg, wal_t *w,
                      proxy_t *p, sink_t **sinks, size_t n_sinks, char *err, size_t errlen);
/* From now on /readyz answers 503 (SIGTERM received). */
void proxy_admin_set_draining(proxy_admin_t *a);
/* More metrics families appended to /metrics on the loop thread (the backfills' progress). */
typedef int (*proxy_metrics_fn)(void *ctx, buf_t *out);
void proxy_admin_set_metrics(proxy_admin_t *a, proxy_metrics_fn fn, void *ctx);
/* The sink list changed (SIGHUP added sinks): /v1/sinks and /metrics show these. Loop
 * thread only, like every admin handler. */
void proxy_admin_set_sinks(proxy_admin_t *a, sink_t **sinks, size_t n_sinks);
/* Stop accepting and close idle connections. */
void proxy_admin_stop(proxy_admin_t *a);
void proxy_admin_free(proxy_admin_t *a);

#endif
