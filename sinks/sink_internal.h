/* sink_internal.h — what the sink engine and its backends share: the backend vtable (send one
 * batch of rows for one table, get a classified result), the per-table batch the engine
 * builds, and the pure helpers (idempotency keys, reply classification, grouping, backoff,
 * a tolerant JSON field reader) that the unit tests call directly. Not for other modules. */
#ifndef SLUICE_SINK_INTERNAL_H
#define SLUICE_SINK_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "sinks/sink.h"
#include "wal/wal.h"

#define SINK_KEY_MAX 128 /* StarRocks label limit; the ClickHouse token uses the same key */

/* Outcome of one send. */
typedef enum {
    SINK_RES_OK = 0,    /* delivered (or already delivered under the same key) */
    SINK_RES_RETRY,     /* transient: back off, resend the same rows with the same key */
    SINK_RES_PERMANENT, /* the rows are refused for good: bisect to find the bad ones */
    SINK_RES_CONFIG,    /* auth / FE refusal: degraded, slow retry, never DLQ */
    SINK_RES_UNKNOWN,   /* not classifiable (a message sluice does not know): retried
                         * SINK_UNKNOWN_TRIES times for the same rows, then bisected like
                         * PERMANENT, so wording never decides whether data moves */
} sink_res_kind_t;

/* Never stuck on data (DESIGN.md §1): identical unclassified failures of one row range
 * before it is treated as refused by the data. */
#define SINK_UNKNOWN_TRIES 3
/* Endpoints per sink (`url` as a list: StarRocks FEs, ClickHouse replicas). */
#define SINK_MAX_ENDPOINTS CFG_MAX_ENDPOINTS

typedef struct {
    sink_res_kind_t kind;
    int whole;             /* PERMANENT only: the statement is refused whatever the rows
                            * (unknown table/database, syntax): DLQ the batch, no bisect */
    int http_status;       /* 0 when no HTTP answer (connect error, timeout) */
    int code;              /* ClickHouse exception code, 0 when none */
    uint32_t min_delay_ms; /* RETRY: wait at least this long (StarRocks label RUNNING) */
    char msg[512];         /* backend's message, for last_error and the DLQ */
    /* StarRocks: the label exists already (Label Already Exists, or a Fail saying it has
     * already been used); existing: ExistingJobStatus when the reply had one. The backend
     * resolves it with get_load_state before the engine sees the result. */
    int label_used;
    char existing[24];
    uint64_t filtered_rows; /* OK: rows the backend dropped (NumberFilteredRows) */
    char error_url[256];    /* OK with filtered rows: where the backend lists them */
    /* Endpoints: the one that gave this answer (-1: none answered), and those that failed
     * to connect or timed out during this send (bit i = endpoint i), with the last error. */
    int endpoint;
    uint32_t endpoints_failed;
    char endpoint_error[160];
} sink_result_t;

/* Rows of one table, in log order, as the backend must receive them. */
typedef struct {
    const char *db;           /* effective database (sink override or record's, never "") */
    const char *table;        /* effective table (after rename) */
    const char *columns;      /* column list or NULL */
    const wal_kv_t *settings; /* the original request's settings (backend filters them) */
    size_t n_settings;
    const char *body; /* n_rows lines, each '\n'-terminated (one unit when whole); never empty */
    size_t body_len;
    uint32_t n_rows;
    const char *fmt; /* ClickHouse input format of body, never NULL */
    const char *hdr; /* header rows the format wants ahead of body, or NULL */
    size_t hdr_len;
    int whole;       /* body is one unit as received (binary formats) */
    const char *key; /* idempotency key: label / insert_deduplication_token */
} sink_batch_t;

/* A backend. open/close run on the sink's thread; abort points to a flag the backend's HTTP
 * transfer must poll (progress callback) to give up promptly on stop. */
typedef struct {
    const char *type;
    int (*open)(const cfg_sink_t *cfg, atomic_int *abort, void **state, char *err, size_t errlen);
    /* Called before the first send and again after each failure until it returns 0:
     * e.g. the ClickHouse version probe. res says why not when it fails. */
    int (*prepare)(void *state, sink_result_t *res);
    void (*send)(void *state, const sink_batch_t *b, sink_result_t *res);
    void (*close)(void *state);
    /* Optional, any thread: how many target tables may duplicate a retried batch, and their
     * names (db.table, comma separated, truncated to fit) into out. */
    uint32_t (*dedup_unsafe)(void *state, char *out, size_t outlen);
    /* Optional: row boundaries inside a whole unit (a RowBinary body), so a refused one is
     * bisected to its rows. *hdr_len: bytes of its own header, sent ahead of every part;
     * (*off)[0..*n] row starts and end (malloc'ed). 0, or negative when it cannot. */
    int (*split)(void *state, const sink_batch_t *b, size_t *hdr_len, size_t **off, uint32_t *n,
                 char *err, size_t errlen);
} sink_backend_t;

extern const sink_backend_t sink_clickhouse_backend;
extern const sink_backend_t sink_starrocks_backend;

/* ---- pure helpers (sinks/util.c) ---- */

/* Idempotency key sluice_{logid hex}_{sink}_{table}_{first}_{last}[_{lo}_{hi}] into out
 * (SINK_KEY_MAX + 1 bytes). A sink or table name with chars outside [A-Za-z0-9_], or longer
 * than 32, is replaced by "h" + 8 hex of its FNV-1a hash. lo/hi: row range of a bisected
 * sub-batch, or lo == hi == 0 for the whole group. Always [A-Za-z0-9_], <= 128 chars. */
void sink_build_key(char *out, uint64_t logid, const char *sink, const char *table, uint64_t first,
                    uint64_t last, uint32_t lo, uint32_t hi);


/* Full-jitter exponential backoff: uniform in [1, min(max_ms, initial_ms * 2^attempt)]. rnd
 * is a caller-owned PRNG state (xorshift). */
uint32_t sink_backoff_ms(uint32_t initial_ms, uint32_t max_ms, uint32_t attempt, uint64_t *rnd);
uint64_t sink_rand(uint64_t *state);

/* Find the top-level member key of a JSON object text and copy its value (strings
 * unescaped, other scalars verbatim) into out. Returns 1 found, 0 absent, -1 not an
 * object / malformed before the key was found. */
int sink_json_get(const char *json, size_t len, const char *key, char *out, size_t outlen);

/* ClickHouse: exception code from the header value (may be NULL) or the body ("Code: N," on
 * 18.16, "Code: N." on modern servers); 0 when none. */
int sink_ch_error_code(const char *header, const char *body, size_t body_len);

/* ClickHouse reply → result. curl_failed: no HTTP answer (connect error, timeout). */
void sink_ch_classify(int http_status, int code, const char *body, size_t body_len, int curl_failed,
                      const char *curl_err, sink_result_t *res);

/* StarRocks Stream Load reply (final, after redirects) → result, per PROTOCOLS.md §B. */
void sink_sr_classify(int http_status, const char *body, size_t body_len, int curl_failed,
                      const char *curl_err, sink_result_t *res);

/* StarRocks get_load_state reply (fe/.../http/rest/GetStreamLoadState.java: a RestBaseResult
 * with "state" = the TransactionStatus name, "reason") → state into out. 0, or -1 when the
 * reply is a refusal or has no state. */
int sink_sr_load_state(const char *body, size_t body_len, char *state, size_t statelen);

/* Parse "18.16.1" / "24.3.2.23" → major*1000 + minor; -1 when unparseable. */
int sink_ch_parse_version(const char *s);

/* Does the ClickHouse sink send insert_deduplication_token for this server version? */
int sink_ch_dedup_enabled(cfg_dedup_t mode, int version);

/* Can a retried batch into this table double its rows? (insert_deduplication_token and the
 * block hash only deduplicate on Replicated*MergeTree, or *MergeTree with
 * non_replicated_deduplication_window > 0.) engine / engine_full: system.tables columns of
 * the table `qualified` (db.table, as shown). Returns 1 and fills why and a one-line fix, or 0
 * when the table deduplicates. version: sink_ch_parse_version of the server, -1 unknown. */
int sink_ch_dedup_unsafe(int version, const char *qualified, const char *engine,
                         const char *engine_full, char *why, size_t whylen, char *fix,
                         size_t fixlen);

/* Is this request setting forwarded to the ClickHouse sink? (not async_insert,
 * wait_for_async_insert, the sink's drop_settings, or non-setting params). */
int sink_ch_setting_forwarded(const cfg_sink_t *cfg, const char *key);

/* ---- grouping (sinks/util.c) ---- */

/* One group: records for one (db, table, columns, settings, fmt, hdr), in log order; a
 * whole record is always a group by itself. */
typedef struct {
    const wal_record_t **recs;
    size_t n;
    char *db;    /* effective, owned */
    char *table; /* effective, owned */
    const char *orig_table;
    uint64_t first_seq, last_seq;
    uint32_t n_rows;
    size_t rows_len;
} sink_group_t;

/* Is this record for this sink (target) and not filtered out by include/exclude? */
int sink_record_wanted(const cfg_sink_t *cfg, const wal_record_t *r);

/* Group the wanted records of recs[0..n) (in seq order). Fills *groups (malloc'ed array,
 * free with sink_groups_free). Groups are ordered by their first record's seq. */
int sink_group_records(const cfg_sink_t *cfg, const wal_record_t *const *recs, size_t n,
                       sink_group_t **groups, size_t *n_groups);
void sink_groups_free(sink_group_t *g, size_t n);

/* ---- engine hooks for tests (sinks/engine.c) ---- */

/* Start one sink with an explicit backend (tests inject a fake). The wal consumer must have
 * been declared by the caller (wal_set_consumers). */
int sink_start_with_backend(const cfg_sink_t *cfg, wal_t *w, const sink_backend_t *be, sink_t **out,
                            char *err, size_t errlen);

#endif
