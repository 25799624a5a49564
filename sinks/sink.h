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

typedef struct {
    sink_state_t state;
    uint64_t cursor;          /* acked seq */
    uint64_t lag_records;     /* last_seq - cursor */
    double lag_seconds;       /* age of the oldest undelivered record */
    uint64_t rows_sent, bytes_sent, batches_sent;
    uint64_t retries;
    uint64_t dlq_rows;
    char last_error[256];
} sink_stats_t;

/* Start every configured, enabled sink (declares them to the wal as consumers first). */
int sinks_start(const sluice_cfg_t *cfg, wal_t *w, sink_t ***out, size_t *n_out, char *err,
                size_t errlen);

/* Ask every sink to stop; wait until each has delivered everything up to the log's last seq
 * or drain_ms has passed, then join the threads and free. drain_ms 0 = stop at once. */
void sinks_stop(sink_t **s, size_t n, uint32_t drain_ms);

const char *sink_name(const sink_t *s);
void sink_get_stats(sink_t *s, sink_stats_t *out);
void sink_pause(sink_t *s);
void sink_resume(sink_t *s);

/* Seq up to which this sink has delivered (for the proxy's read barrier). */
uint64_t sink_delivered_seq(sink_t *s);

/* CLI on a stopped instance: `sluice dlq list|show ID|replay [ID..]|drop [ID..]`. */
int sink_dlq_cli(const sluice_cfg_t *cfg, int argc, char **argv, FILE *out, FILE *err);

#endif
