/* admin_internal.h — pieces of the admin listener that tests call directly. */
#ifndef SLUICE_ADMIN_INTERNAL_H
#define SLUICE_ADMIN_INTERNAL_H

#include <stddef.h>

#include "common/buf.h"
#include "proxy/proxy.h"
#include "sinks/sink.h"
#include "wal/wal.h"

/* Everything /metrics shows, read at one moment. */
typedef struct {
    proxy_stats_t proxy;
    wal_stats_t wal;
    const sink_stats_t *sinks;
    const char *const *sink_names;
    size_t n_sinks;
    int draining;
} admin_snapshot_t;

/* Append the Prometheus text exposition of s to b. */
int admin_render_metrics(buf_t *b, const admin_snapshot_t *s);

#endif
