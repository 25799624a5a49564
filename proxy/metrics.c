/* metrics.c — Prometheus text exposition (format 0.0.4) of the proxy, WAL and sink
 * counters. Names share words with config keys (wal.max_bytes ↔ sluice_wal_max_bytes). */
#include <inttypes.h>
#include <string.h>

#include "common/buf.h"
#include "proxy/admin_internal.h"

static void head(buf_t *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void metric_u64(buf_t *b, const char *name, const char *type, const char *help, uint64_t v)
{
    head(b, name, type, help);
    buf_printf(b, "%s %" PRIu64 "\n", name, v);
}

/* Label values are sink names ([A-Za-z0-9_-], checked by config), but escape anyway. */
static void label(buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') buf_append(b, "\\", 1);
        if (*v == '\n') {
            buf_puts(b, "\\n");
            continue;
        }
        buf_append(b, v, 1);
    }
}

static const char *state_names[] = {"ok", "degraded", "paused", "stopped"};

int admin_render_metrics(buf_t *b, const admin_snapshot_t *s)
{
    const proxy_stats_t *p = &s->proxy;
    const wal_stats_t *w = &s->wal;

    head(b, "sluice_ingest_requests_total", "counter", "HTTP requests by kind.");
    buf_printf(b, "sluice_ingest_requests_total{kind=\"insert\"} %" PRIu64 "\n",
               p->requests_insert);
    buf_printf(b, "sluice_ingest_requests_total{kind=\"passthrough\"} %" PRIu64 "\n",
               p->requests_passthrough);
    buf_printf(b, "sluice_ingest_requests_total{kind=\"error\"} %" PRIu64 "\n",
               p->requests_error);
    head(b, "sluice_read_barrier_total", "counter",
         "Passthrough reads the read barrier held (waited, then timeout of those) or let through "
         "because the primary sink was degraded or paused (skipped).");
    buf_printf(b, "sluice_read_barrier_total{outcome=\"held\"} %" PRIu64 "\n", p->barrier_waits);
    buf_printf(b, "sluice_read_barrier_total{outcome=\"timeout\"} %" PRIu64 "\n",
               p->barrier_timeouts);
    buf_printf(b, "sluice_read_barrier_total{outcome=\"skipped\"} %" PRIu64 "\n",
               p->barrier_skipped);
    head(b, "sluice_ingest_unbuffered_total", "counter",
         "INSERTs passed through to the primary ClickHouse unbuffered (INSERT ... SELECT, VALUES "
         "with parameters, formats sluice does not log): not durable through an outage.");
    for (size_t i = 0; i < p->n_unbuffered; i++) {
        buf_puts(b, "sluice_ingest_unbuffered_total{table=\"");
        label(b, p->unbuffered[i].table);
        buf_printf(b, "\"} %" PRIu64 "\n", p->unbuffered[i].requests);
    }
    if (p->unbuffered_other)
        buf_printf(b, "sluice_ingest_unbuffered_total{table=\"_other\"} %" PRIu64 "\n",
                   p->unbuffered_other);
    metric_u64(b, "sluice_ingest_rows_total", "counter", "Rows acknowledged (durable in the WAL).",
               p->rows_ingested);
    metric_u64(b, "sluice_ingest_bytes_total", "counter", "Row bytes acknowledged.",
               p->bytes_ingested);
    metric_u64(b, "sluice_ingest_offloop_total", "counter",
               "INSERTs whose body (over 64 KiB decoded) was decoded, validated and appended on "
               "the thread pool instead of the event loop.",
               p->inserts_offloop);
    metric_u64(b, "sluice_connections_open", "gauge", "Open client connections.",
               p->connections_open);

    head(b, "sluice_ack_latency_seconds", "histogram",
         "Time from a complete INSERT request to its durable ack.");
    uint64_t cum = 0;
    for (int i = 0; i < PROXY_ACK_BUCKETS; i++) {
        cum += p->ack_latency_hist[i];
        buf_printf(b, "sluice_ack_latency_seconds_bucket{le=\"%g\"} %" PRIu64 "\n",
                   proxy_ack_bounds_us[i] / 1e6, cum);
    }
    cum += p->ack_latency_hist[PROXY_ACK_BUCKETS];
    buf_printf(b, "sluice_ack_latency_seconds_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    buf_printf(b, "sluice_ack_latency_seconds_sum %.6f\n", (double)p->ack_latency_sum_us / 1e6);
    buf_printf(b, "sluice_ack_latency_seconds_count %" PRIu64 "\n", cum);

    head(b, "sluice_wal_group_commit_requests", "histogram",
         "Append requests made durable by one commit.");
    cum = 0;
    uint64_t approx_sum = 0;
    for (int i = 0; i < 8; i++) {
        cum += w->group_hist[i];
        approx_sum += w->group_hist[i] * (1ull << i);
        if (i < 7)
            buf_printf(b, "sluice_wal_group_commit_requests_bucket{le=\"%llu\"} %" PRIu64 "\n",
                       (1ull << (i + 1)) - 1, cum);
    }
    buf_printf(b, "sluice_wal_group_commit_requests_bucket{le=\"+Inf\"} %" PRIu64 "\n", cum);
    buf_printf(b, "sluice_wal_group_commit_requests_sum %" PRIu64 "\n", approx_sum);
    buf_printf(b, "sluice_wal_group_commit_requests_count %" PRIu64 "\n", cum);

    metric_u64(b, "sluice_wal_commits_total", "counter",
               "WAL group commits (each acks its group; sync: always: one journal flush).",
               w->commits);
    metric_u64(b, "sluice_wal_checkpoints_total", "counter",
               "LMDB commits behind the append journal (sync: always).", w->checkpoints);
    head(b, "sluice_wal_checkpoint_seconds_total", "counter",
         "Time the WAL writer spent in checkpoints (appends queue meanwhile; wal.checkpoint_ms).");
    buf_printf(b, "sluice_wal_checkpoint_seconds_total %.6f\n", (double)w->checkpoint_us / 1e6);
    metric_u64(b, "sluice_wal_fsyncs_total", "counter",
               "Device flushes of the WAL (journal and LMDB).", w->fsyncs);
    metric_u64(b, "sluice_wal_appends_total", "counter", "Append requests committed.", w->appends);
    metric_u64(b, "sluice_wal_rejected_full_total", "counter",
               "Append requests refused because the WAL was full.", w->rejected_full);
    metric_u64(b, "sluice_wal_live_bytes", "gauge", "Bytes held by unreplayed log records.",
               w->live_bytes);
    metric_u64(b, "sluice_wal_max_bytes", "gauge", "wal.max_bytes: the WAL size ceiling.",
               w->max_bytes);
    metric_u64(b, "sluice_wal_records", "gauge", "Records in the log.", w->records);
    metric_u64(b, "sluice_wal_last_seq", "gauge", "Highest committed sequence number.",
               w->last_seq);
    metric_u64(b, "sluice_wal_gaps_total", "counter",
               "Seq ranges dropped by overflow: drop_oldest.", w->gaps);
    metric_u64(b, "sluice_dlq_entries", "gauge", "Entries in the dead-letter queue.",
               w->dlq_entries);

    struct {
        const char *name, *type, *help;
        size_t off;
    } per_sink[] = {
        {"sluice_sink_cursor", "gauge", "Seq up to which the sink has delivered.",
         offsetof(sink_stats_t, cursor)},
        {"sluice_sink_lag_records", "gauge", "Records not yet delivered.",
         offsetof(sink_stats_t, lag_records)},
        {"sluice_sink_rows_sent_total", "counter", "Rows delivered.",
         offsetof(sink_stats_t, rows_sent)},
        {"sluice_sink_bytes_sent_total", "counter", "Bytes delivered.",
         offsetof(sink_stats_t, bytes_sent)},
        {"sluice_sink_batches_sent_total", "counter", "Batches delivered.",
         offsetof(sink_stats_t, batches_sent)},
        {"sluice_sink_retries_total", "counter", "Failed sends that were retried.",
         offsetof(sink_stats_t, retries)},
        {"sluice_sink_dlq_rows_total", "counter", "Rows put in the dead-letter queue.",
         offsetof(sink_stats_t, dlq_rows)},
        {"sluice_sink_rows_filtered_total", "counter",
         "Rows the backend dropped from loads it accepted (StarRocks NumberFilteredRows).",
         offsetof(sink_stats_t, rows_filtered)},
        {"sluice_sink_dedup_unsafe_tables", "gauge",
         "Target tables where a retried batch may double rows (no replication, no "
         "non_replicated_deduplication_window); see the sink's warning log line.",
         offsetof(sink_stats_t, dedup_unsafe_tables)},
    };
    for (size_t m = 0; m < sizeof per_sink / sizeof per_sink[0]; m++) {
        head(b, per_sink[m].name, per_sink[m].type, per_sink[m].help);
        for (size_t i = 0; i < s->n_sinks; i++) {
            uint64_t v;
            memcpy(&v, (const char *)&s->sinks[i] + per_sink[m].off, sizeof v);
            buf_printf(b, "%s{sink=\"", per_sink[m].name);
            label(b, s->sink_names[i]);
            buf_printf(b, "\"} %" PRIu64 "\n", v);
        }
    }
    head(b, "sluice_sink_lag_seconds", "gauge", "Age of the oldest undelivered record.");
    for (size_t i = 0; i < s->n_sinks; i++) {
        buf_puts(b, "sluice_sink_lag_seconds{sink=\"");
        label(b, s->sink_names[i]);
        buf_printf(b, "\"} %.3f\n", s->sinks[i].lag_seconds);
    }
    head(b, "sluice_sink_state", "gauge", "1 for the sink's current state.");
    for (size_t i = 0; i < s->n_sinks; i++)
        for (int st = 0; st < 4; st++) {
            buf_puts(b, "sluice_sink_state{sink=\"");
            label(b, s->sink_names[i]);
            buf_printf(b, "\",state=\"%s\"} %d\n", state_names[st], (int)s->sinks[i].state == st);
        }
    head(b, "sluice_sink_endpoint_up", "gauge",
         "1 while the sink's endpoint answers; 0 after a connect error or timeout.");
    for (size_t i = 0; i < s->n_sinks; i++)
        for (size_t e = 0; e < s->sinks[i].n_endpoints; e++) {
            buf_puts(b, "sluice_sink_endpoint_up{sink=\"");
            label(b, s->sink_names[i]);
            buf_puts(b, "\",url=\"");
            label(b, s->sinks[i].endpoints[e].url ? s->sinks[i].endpoints[e].url : "");
            buf_printf(b, "\"} %d\n", s->sinks[i].endpoints[e].up);
        }
    metric_u64(b, "sluice_up", "gauge", "1 while sluice runs; 0 once it drains.", !s->draining);
    return b->oom ? -1 : 0;
}
