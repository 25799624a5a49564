/* wal.h — the write-ahead log: one LMDB environment (log, cursors, dlq, meta) written by one
 * writer thread that group-commits, read by sinks in read-only transactions. This header is
 * the whole interface of wal/. Thread-safety: every function may be called from any thread
 * unless its comment says otherwise. */
#ifndef SLUICE_WAL_H
#define SLUICE_WAL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config/config.h"

typedef struct wal wal_t;

/* Error codes (negative). Anything else negative is -errno or an LMDB code. */
#define WAL_EFULL (-30001)    /* live bytes would pass wal.max_bytes: answer 503 */
#define WAL_ECORRUPT (-30002) /* file damaged or an envelope does not decode */
#define WAL_EFOREIGN (-30003) /* not a sluice log (no/unknown meta) */
#define WAL_EVERSION (-30004) /* made by a newer sluice */
#define WAL_ECLOSED (-30005)  /* wal is closing: request not appended */
#define WAL_EINVAL (-30006)   /* bad argument (empty rows, name too long, ...) */
#define WAL_ENOENT (-30007)   /* no such cursor / dlq entry / meta key */
#define WAL_ETIMEDOUT (-30008) /* wal_wait or when_full: block timed out */
#define WAL_EBUSY (-30009)     /* another process has the log open for writing */

const char *wal_strerror(int code);

typedef struct {
    const char *key;
    const char *value;
} wal_kv_t;

/* One INSERT request to append. rows holds n_rows rows of format fmt, each terminated by
 * '\n' (the proxy normalises to this), unless whole is set: then rows is one unit that must
 * be delivered as it is (binary formats, CSV with line breaks inside quoted fields). hdr: the
 * header rows of a ...WithNames[AndTypes] text format, sent ahead of every chunk of rows.
 * Everything is copied by wal_append before it returns. */
typedef struct {
    const char *db;        /* may be "" (sink decides) */
    const char *table;     /* required */
    const char *columns;   /* "a, b, c" from INSERT INTO t (a, b, c), or NULL */
    const wal_kv_t *settings;
    size_t n_settings;
    const char *rows;
    size_t rows_len;
    uint32_t n_rows;
    uint64_t ts_ms;        /* 0 = now */
    const char *fmt;       /* ClickHouse input format name; NULL = "JSONEachRow" */
    const char *hdr;       /* header rows (each '\n'-terminated) or NULL */
    size_t hdr_len;
    int whole;             /* rows is one indivisible unit (never split, never bisected) */
} wal_insert_t;

/* Completion of one append: status 0 and the seq range it got, or a negative code. Called
 * on the writer thread after the commit (and fsync, with sync: always) that holds it;
 * must not block: hand the result to your own thread (e.g. uv_async_send). */
typedef void (*wal_done_cb)(void *ctx, int status, uint64_t first_seq, uint64_t last_seq);

/* Open (creating if absent) the log in cfg->dir and start the writer thread. A foreign,
 * newer or damaged file is refused with a message in err; never re-created. One writer per
 * log: the open takes an flock on DIR/sinks.lock (holding the pid) until wal_close, and
 * refuses with WAL_EBUSY while another process holds it. */
int wal_open(wal_t **out, const cfg_wal_t *cfg, char *err, size_t errlen);

/* Open read-only for the CLI (no writer thread, no creation; works while a running sluice
 * has the log open). Functions that write return -EROFS. */
int wal_open_readonly(wal_t **out, const char *dir, char *err, size_t errlen);

/* Stop the writer after it has committed everything queued, close the env. */
void wal_close(wal_t *w);

/* Queue an append; cb runs exactly once (also on error, e.g. WAL_EFULL, WAL_ECLOSED).
 * A request larger than max_record_bytes becomes several records in the same txn.
 * Returns 0 when queued, or the negative code it has already passed to cb, synchronously on
 * the calling thread, when refused at once (WAL_EINVAL, WAL_ECLOSED, -EROFS, -ENOMEM). */
int wal_append(wal_t *w, const wal_insert_t *ins, wal_done_cb cb, void *ctx);

/* Blocking append (tests, CLI, backfill): returns status, fills the seq range. */
int wal_append_wait(wal_t *w, const wal_insert_t *ins, uint64_t *first_seq, uint64_t *last_seq);

/* ---- reading (sinks, CLI) ---- */

/* A decoded record. All pointers point into the owning batch's memory. */
typedef struct {
    uint64_t seq;
    uint64_t ts_ms;
    const char *db;
    const char *table;
    const char *columns;   /* NULL when the statement had no column list */
    const char *fmt;       /* ClickHouse input format name ("JSONEachRow", "CSV", ...) */
    const char *hdr;       /* header rows to send ahead of the rows, or NULL */
    size_t hdr_len;
    int whole;             /* rows is one unit: deliver as is, never split it */
    const char *target;    /* NULL: for every sink; else only for the sink of this name
                            * (records re-appended by wal_dlq_replay) */
    wal_kv_t *settings;
    size_t n_settings;
    const char *rows;      /* n_rows lines, each ending in '\n' (one unit when whole) */
    size_t rows_len;
    uint32_t n_rows;
    size_t raw_bytes;      /* size of the stored envelope */
} wal_record_t;

typedef struct {
    wal_record_t *recs;
    size_t n;
    void *mem;             /* owned storage */
} wal_batch_t;

/* Records with seq > after, at most max_records and about max_bytes of envelopes (at least
 * one record when any exists). Empty batch (n == 0) when none. Free with wal_batch_free. */
int wal_read(wal_t *w, uint64_t after, size_t max_records, size_t max_bytes, wal_batch_t *out);
void wal_batch_free(wal_batch_t *b);

/* Wait until a record with seq > after exists, or timeout_ms passes (0 on data,
 * WAL_ETIMEDOUT, WAL_ECLOSED), or wal_wake is called (WAL_ETIMEDOUT too). */
int wal_wait(wal_t *w, uint64_t after, uint32_t timeout_ms);

/* End every wal_wait in progress now (any thread): a sink asked to deliver at once (the
 * proxy's read barrier) stops waiting for its batch to fill. With sync: always it also asks
 * the writer for a checkpoint now, so that acked records become readable at once. */
void wal_wake(wal_t *w);

/* Highest readable seq (0 when the log never held a record). With sync: always an acked
 * record becomes readable at the writer's next checkpoint: within wal.checkpoint_ms, one commit
 * after wal_wake, and before wal_flush returns. */
uint64_t wal_last_seq(wal_t *w);

/* Wait until every record acked before the call is readable and in a durable LMDB commit
 * (a checkpoint; with sync: interval/none, a commit). 0 or a negative code. */
int wal_flush(wal_t *w);

/* ---- sink cursors, DLQ ---- */

typedef struct {
    uint64_t acked;          /* every record <= acked is delivered (or dropped as a gap) */
    uint64_t inflight_first; /* batch being sent, persisted before the first send; 0 = none */
    uint64_t inflight_last;
} wal_cursor_t;

typedef struct {
    const char *name;
    int start_latest;        /* new cursor starts at the last seq instead of the first */
    int drop_oldest;         /* overflow: drop_oldest (else block) */
} wal_consumer_t;

/* Declare the sinks that hold the log (the whole set, before their threads start; again to
 * add sinks): truncation keeps every record above the minimum of their cursors. A consumer
 * without a cursor gets one, earliest (before the oldest record) or latest (after the
 * newest), and in the same transaction meta WAL_META_SINK_STARTED<name> = the arrival ms
 * (a whole second) it delivers from: earliest, the oldest record's second; latest, the next
 * second (its sink skips the records before it). `sluice backfill` copies the rows stamped
 * before it, the log delivers the rest. Cursors of names not listed are left alone but do
 * not hold truncation. */
#define WAL_META_SINK_STARTED "sink_started_ms:"
int wal_set_consumers(wal_t *w, const wal_consumer_t *c, size_t n);

int wal_cursor_get(wal_t *w, const char *sink, wal_cursor_t *out);

typedef struct {
    uint64_t id;             /* assigned by the wal on put */
    const char *sink;
    const char *db;
    const char *table;
    const char *columns;
    const wal_kv_t *settings; /* the original request's settings */
    size_t n_settings;
    const char *error;
    uint64_t ts_ms;
    const char *rows;        /* '\n'-terminated rows of format fmt (one unit when whole) */
    size_t rows_len;
    uint32_t n_rows;
    const char *fmt;         /* NULL = "JSONEachRow" */
    const char *hdr;         /* header rows of the format, or NULL */
    size_t hdr_len;
    int whole;
} wal_dlq_entry_t;

/* Durably (waits for the commit) set the cursor of sink and, in the same transaction, put
 * n_dlq entries into the DLQ: rows never end up both undelivered and out of the DLQ.
 * acked never moves back (overflow: drop_oldest may have moved it past the sink's batch);
 * an entry's sink may be NULL (= this sink), ts_ms 0 (= now). */
int wal_cursor_commit(wal_t *w, const char *sink, const wal_cursor_t *c,
                      const wal_dlq_entry_t *dlq, size_t n_dlq);

/* DLQ entries with id > after_id (at most max), copied into *out (free with
 * wal_dlq_free). Filter by sink when sink != NULL. */
typedef struct {
    wal_dlq_entry_t *e;
    size_t n;
    void *mem;
} wal_dlq_list_t;
int wal_dlq_list(wal_t *w, const char *sink, uint64_t after_id, size_t max, wal_dlq_list_t *out);
void wal_dlq_free(wal_dlq_list_t *l);

/* Delete DLQ entries by id (n == 0 with ids == NULL: all of sink, or all when sink NULL). */
int wal_dlq_drop(wal_t *w, const char *sink, const uint64_t *ids, size_t n);

/* Re-append DLQ entries as new log records targeted at the sink that dead-lettered them
 * (record.target = entry.sink, so other sinks, which delivered those rows, skip them) and
 * delete them from the DLQ, in one transaction. sink/ids as wal_dlq_drop. *n_out = moved. */
int wal_dlq_replay(wal_t *w, const char *sink, const uint64_t *ids, size_t n, size_t *n_out);

/* ---- meta, stats ---- */

/* Random 64-bit id made when the log was created (labels, dedup tokens). */
uint64_t wal_log_id(wal_t *w);

/* Copies at most buflen-1 bytes plus a NUL into buf; *len_out = the value's full length.
 * WAL_ENOENT when absent. The wal's own keys (magic, format_version, log_id, created_ms,
 * trunc_seq) cannot be put (WAL_EINVAL); it also writes "gap:<sink>:<first seq, 20 digits>"
 * -> "<last seq>" for each range dropped by overflow: drop_oldest. */
int wal_meta_get(wal_t *w, const char *key, char *buf, size_t buflen, size_t *len_out);
int wal_meta_put(wal_t *w, const char *key, const void *val, size_t len);

typedef struct {
    uint64_t first_seq, last_seq; /* 0, 0 when empty */
    uint64_t records;
    uint64_t live_bytes, max_bytes;
    uint64_t dlq_entries;
    uint64_t gaps;                /* seq ranges dropped by overflow: drop_oldest */
    uint64_t commits, fsyncs;     /* since open; commits = group commits (acks given) */
    uint64_t checkpoints;         /* LMDB commits behind the journal (sync: always) */
    uint64_t checkpoint_us;       /* time the writer spent in them (appends wait meanwhile) */
    uint64_t appends, appended_rows, rejected_full;
    uint64_t group_hist[8];       /* requests per commit: 1, 2-3, 4-7, ... 128+ */
} wal_stats_t;
int wal_stats(wal_t *w, wal_stats_t *out);

/* The log in dir, read-only, for people: stats (records, seq range, live bytes, cursors,
 * gaps) and dump (records after from-1, at most limit (0: all), as JSON lines). Write to
 * out, errors to err; return a process exit code (cli/wal.c). */
int wal_print_stats(const char *dir, FILE *out, FILE *err);
int wal_print_dump(const char *dir, uint64_t from, uint64_t limit, FILE *out, FILE *err);

#endif
