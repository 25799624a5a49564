/* config.h — sluice's configuration: the structs every module reads, with their defaults,
 * loaded from one YAML file with ${VAR} / ${VAR:-default} interpolation and environment
 * overrides for the sidecar case. This header is the whole interface of config/. */
#ifndef SLUICE_CONFIG_H
#define SLUICE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/log.h"

typedef enum { CFG_SYNC_ALWAYS = 0, CFG_SYNC_INTERVAL, CFG_SYNC_NONE } cfg_sync_t;
typedef enum { CFG_FULL_REJECT = 0, CFG_FULL_BLOCK } cfg_when_full_t;
typedef enum { CFG_SINK_CLICKHOUSE = 0, CFG_SINK_STARROCKS } cfg_sink_type_t;
typedef enum { CFG_START_EARLIEST = 0, CFG_START_LATEST } cfg_start_from_t;
typedef enum { CFG_OVERFLOW_BLOCK = 0, CFG_OVERFLOW_DROP_OLDEST } cfg_overflow_t;
typedef enum { CFG_DEDUP_AUTO = 0, CFG_DEDUP_ON, CFG_DEDUP_OFF } cfg_dedup_t;

typedef struct {
    char *key;
    char *value;
} cfg_kv_t;

#define CFG_MAX_ENDPOINTS 16 /* urls per sink */
/* A StarRocks sink's batch.max_bytes ceiling: below the BE's JSON load limit
 * (streaming_load_max_batch_size_mb, 100 MiB, checked in be/src/http/action/stream_load.cpp). */
#define CFG_STARROCKS_MAX_BATCH_BYTES (90u << 20)

typedef struct {
    char *user;
    char *password;
} cfg_user_t;

typedef struct {
    char *dir;                 /* default "./sluice-wal" */
    uint64_t max_bytes;        /* default 1 GiB: live bytes ceiling (503 above it) */
    uint32_t max_record_bytes; /* default 1 MiB: a request is split into records of this */
    cfg_sync_t sync;           /* default always */
    uint32_t sync_interval_ms; /* default 100, for sync: interval */
    uint32_t checkpoint_ms;    /* default 100, sync: always: LMDB commit behind the journal */
    cfg_when_full_t when_full; /* default reject (503 + Retry-After) */
    uint32_t block_timeout_ms; /* default 5000, for when_full: block */
    uint32_t truncate_chunk;   /* default 1000 records deleted per txn */
    uint32_t ready_below_pct;  /* default 90: /readyz fails above this fill */
} cfg_wal_t;

typedef struct {
    char *listen;                    /* default "127.0.0.1:8123" */
    char *passthrough_url;           /* default NULL: the first clickhouse sink's url */
    uint64_t max_body_bytes;         /* default 64 MiB (413 above) */
    uint32_t max_header_bytes;       /* default 64 KiB (431 above) */
    uint32_t idle_timeout_ms;        /* default 60000: keep-alive idle and header read timeout */
    uint32_t passthrough_timeout_ms; /* default 300000 */
    uint32_t read_barrier_ms;   /* default 3000; 0: off */
    uint32_t max_connections;   /* default 10000 */
    cfg_user_t *users;          /* optional: checked on every request when n_users > 0 */
    size_t n_users;
} cfg_proxy_t;

typedef struct {
    char *name;           /* required, unique, [A-Za-z0-9_-]+ */
    cfg_sink_type_t type; /* required: clickhouse | starrocks */
    int enabled;          /* default 1 */
    int primary;          /* default: 1 for the first enabled clickhouse sink */
    char *url;            /* = urls[0]: the first endpoint (passthrough, logs) */
    char **urls;          /* required: `url`, one http://host:port or a list of them
                           * (StarRocks FEs, ClickHouse replicas), tried in order */
    size_t n_urls;        /* 1..CFG_MAX_ENDPOINTS */
    char *user;           /* default "default" (clickhouse) / "root" (starrocks) */
    char *password;       /* default "" */
    char *database;       /* default NULL: keep the request's database */
    char **include;       /* tables; empty = all */
    size_t n_include;
    char **exclude;
    size_t n_exclude;
    cfg_kv_t *rename; /* table -> table in this backend */
    size_t n_rename;
    cfg_kv_t *settings; /* extra URL settings (clickhouse) or headers (starrocks) */
    size_t n_settings;
    char **drop_settings; /* request settings never forwarded to this sink */
    size_t n_drop_settings;
    uint32_t batch_max_rows;           /* default 10000 */
    uint64_t batch_max_bytes;          /* default 8 MiB */
    uint32_t batch_max_wait_ms;        /* default 200 */
    uint32_t retry_initial_backoff_ms; /* default 100 */
    uint32_t retry_max_backoff_ms;     /* default 30000 */
    uint32_t connect_timeout_ms;       /* default 2000 */
    uint32_t request_timeout_ms;       /* default 30000 */
    int compress;                      /* default 0: gzip request bodies when 1 */
    cfg_start_from_t start_from;       /* default earliest */
    cfg_overflow_t overflow;           /* default block */
    cfg_dedup_t dedup;                 /* default auto: clickhouse token when server >= 22.2 */
    double max_filter_ratio;           /* starrocks, default 0 */
} cfg_sink_t;

typedef struct {
    char *listen; /* default "127.0.0.1:8124"; "" disables */
    char *token;  /* optional bearer token; required off loopback */
} cfg_admin_t;

typedef struct {
    log_level_t level; /* default info; common/log.h's levels */
} cfg_log_t;

typedef struct {
    uint32_t drain_timeout_s; /* default 30 */
} cfg_shutdown_t;

typedef struct sluice_cfg {
    char *path; /* file it was loaded from, or NULL for defaults */
    cfg_wal_t wal;
    cfg_proxy_t proxy;
    cfg_sink_t *sinks;
    size_t n_sinks;
    cfg_admin_t admin;
    cfg_log_t log;
    cfg_shutdown_t shutdown;
} sluice_cfg_t;

/* Fill *cfg with every default (no sinks). Strings are heap copies owned by cfg. */
void cfg_defaults(sluice_cfg_t *cfg);
/* The wal: section's defaults alone (dir NULL): also what wal_open takes for a field left 0. */
void cfg_wal_defaults(cfg_wal_t *wal);

/* Load path into *cfg (defaults first). On error returns a negative code and writes
 * "FILE:LINE: KEY: what is wrong" into err; *cfg is then freed and zeroed. */
int cfg_load(sluice_cfg_t *cfg, const char *path, char *err, size_t errlen);

/* Same, from a YAML string; name is used in messages in place of a file name. */
int cfg_load_string(sluice_cfg_t *cfg, const char *yaml, const char *name, char *err,
                    size_t errlen);

/* Apply SLUICE_LISTEN, SLUICE_ADMIN_LISTEN, SLUICE_WAL_DIR, SLUICE_CLICKHOUSE_URL (which may
 * carry user:pass@ and a /database path, as TensorZero takes it) on top of *cfg, then
 * validate the whole config. Returns 0 or negative with a message in err; either way *cfg
 * stays allocated (cfg_free it). Also fills proxy.passthrough_url from the primary sink. */
int cfg_finish(sluice_cfg_t *cfg, char *err, size_t errlen);

/* Write the effective config as YAML to out, passwords and tokens masked as "***". */
void cfg_print(const sluice_cfg_t *cfg, FILE *out);

/* The primary clickhouse sink (passthrough and read barrier target), or NULL. */
const cfg_sink_t *cfg_primary_sink(const sluice_cfg_t *cfg);

/* Parse "1GiB", "64MiB", "512KB", "1000" into bytes. 0 or negative on error. */
int cfg_parse_bytes(const char *s, uint64_t *out);

/* Split a listen address "host:port" ("[::1]:port" for IPv6) into host (brackets removed)
 * and port 1-65535. host may be NULL. 0, or negative when s is not a valid listen address.
 * The proxy and admin listeners bind what it splits (proxy/http.c). */
int cfg_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port);

/* Free everything cfg owns and zero it; safe on a zeroed or defaults-only cfg. */
void cfg_free(sluice_cfg_t *cfg);

#endif
