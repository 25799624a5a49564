/* wal_internal.h — what the files of wal/ share and nothing outside wal/ may include: the
 * wal_t struct, the writer's request queue, the msgpack envelope codec and the live-bytes
 * cost model. The public contract is wal.h. */
#ifndef SLUICE_WAL_INTERNAL_H
#define SLUICE_WAL_INTERNAL_H

#include <lmdb.h>
#include <msgpack.h>
#include <pthread.h>
#include <stdatomic.h>

#include "common/time.h"
#include "wal/wal.h"

#define WAL_FORMAT_VERSION 1 /* the log's format */
/* meta format_version while a sluice with the journal (sync: always) has the log open, and
 * after it stopped uncleanly: the journal may hold acked records LMDB lacks, so a sluice that
 * does not replay it (older than the journal) must refuse the log, as it refuses a newer
 * format, instead of opening it without them. A clean stop writes WAL_FORMAT_VERSION back. */
#define WAL_FORMAT_JOURNALED 2
#define WAL_MAGIC "sluice-wal"
#define WAL_MAX_NAME 255        /* sink names, meta keys (LMDB keys are <= 511 bytes) */
#define WAL_MAX_IDENT 4096      /* db, table */
#define WAL_MAX_TEXT (1u << 20) /* columns, one setting, a DLQ error message */

/* ---- envelope codec (envelope.c) ---- */

typedef struct {
    const char *p;
    size_t n;
    int present; /* 0 when absent or nil */
} wal_slice_t;

/* A decoded envelope (log record or DLQ entry) whose slices point into the encoded bytes. */
typedef struct {
    uint64_t v, ts_ms, nrows, whole;
    wal_slice_t db, table, fmt, cols, target, rows, sink, error, hdr;
    const uint8_t *settings; /* first key of the settings map, or NULL */
    uint32_t n_settings;
    size_t settings_len; /* encoded bytes of the settings map, header included */
    const uint8_t *settings_map;
    size_t settings_chars; /* sum of key and value lengths */
} wal_env_view_t;

/* Parse one envelope; never reads outside [buf, buf+len). 0 or WAL_ECORRUPT. */
int wal_env_parse(const void *buf, size_t len, wal_env_view_t *v);
/* Parse a log record envelope and check its required fields. */
int wal_env_parse_record(const void *buf, size_t len, wal_env_view_t *v);
/* Parse a DLQ entry and check its required fields. */
int wal_env_parse_dlq(const void *buf, size_t len, wal_env_view_t *v);

/* Chars of arena space wal_env_to_record / wal_env_to_dlq need for this view (plus
 * n_settings wal_kv_t slots). */
size_t wal_env_copy_size(const wal_env_view_t *v);
/* Copy a parsed view into the arena (*kv then *chars advance). */
void wal_env_to_record(const wal_env_view_t *v, uint64_t seq, size_t raw, wal_record_t *r,
                       wal_kv_t **kv, char **chars);
void wal_env_to_dlq(const wal_env_view_t *v, uint64_t id, wal_dlq_entry_t *e, wal_kv_t **kv,
                    char **chars);

/* What a log envelope holds, as slices (so DLQ replay can pass undecoded settings). */
typedef struct {
    wal_slice_t db, table, cols, target;
    wal_slice_t fmt, hdr; /* fmt absent = JSONEachRow; hdr absent = none */
    int whole;            /* rows is one unit: one record whatever its size */
    const wal_kv_t *settings; /* either this array ... */
    size_t n_settings;
    const uint8_t *settings_map; /* ... or an already encoded msgpack map */
    size_t settings_map_len;
    uint64_t ts_ms;
} wal_env_hdr_t;

/* A msgpack-c sbuffer that remembers an allocation failure (checked once after packing). */
typedef struct {
    msgpack_sbuffer sb;
    int oom;
} wal_sbuf_t;

/* Split rows at '\n' into records of at most max_record rows bytes (one oversize row is a
 * record by itself) and pack each as an envelope into sb; lens[i] gets record i's size.
 * Returns the number of records, or a negative code. *lens is malloc'ed when > 1 record. */
int wal_env_pack_records(wal_sbuf_t *sb, const wal_env_hdr_t *h, const char *rows,
                         size_t rows_len, uint32_t n_rows, size_t max_record, size_t **lens,
                         size_t *len1);
int wal_env_pack_dlq(wal_sbuf_t *sb, const wal_dlq_entry_t *e);

wal_slice_t wal_slice(const char *s);

/* ---- the journal (journal.c): acks of sync: always, one fdatasync per group ---- */

#define J_SEG_BYTES (4u << 20) /* each of the two segments, zeros at creation */

typedef struct {
    int fd[2];             /* DIR/journal.0, DIR/journal.1; -1 when there is no journal */
    uint64_t size[2];      /* bytes in the file */
    uint64_t max_lsn[2];   /* highest lsn written in the segment's current epoch (0: none) */
    int cur;               /* the active segment */
    uint64_t off;          /* its write position */
    uint64_t txn_off;      /* where the records of the writer's open LMDB txn begin */
    uint64_t epoch, top_epoch;
    uint64_t next_lsn;     /* the next entry's lsn */
    char *buf;             /* the group being gathered (entries, headers included) */
    size_t blen, cap;      /* bytes in buf */
    size_t len;            /* bytes the group writes: buf plus the referenced payloads */
    struct wal_jref *refs; /* large J_LOG payloads written from where they are (no copy) */
    size_t n_refs, cap_refs;
    uint64_t buf_max_lsn;
} wal_journal_t;

enum { J_LOG = 1, J_DLQ = 2, J_CURSOR = 3 }; /* entry types (journal.c) */

/* Recover: put every valid journal record above LMDB's last seq back into the log (one txn,
 * synced) and reload the writer state. use: keep (creating) the two segments for appends;
 * else remove them. Before the writer starts. */
int wal_journal_open(wal_t *w, int use, char *err, size_t errlen);
void wal_journal_close(wal_journal_t *j);
/* Gather one entry of type J_*: key (seq, DLQ id), aux (J_LOG: the DLQ id it came from, on
 * the unit's last entry), end: the last entry of its unit; payload = p1 then p2. keep: p1
 * stays as it is until wal_journal_write or wal_journal_drop (a request's own envelope), so
 * that from J_REF_MIN bytes on it is written from there, not copied. */
#define J_REF_MIN (64u << 10)
int wal_journal_add(wal_journal_t *j, int type, uint64_t key, uint64_t aux, int end, int keep,
                    const void *p1, size_t n1, const void *p2, size_t n2);
/* Read-only: the acked log records in the journal that LMDB's durable state lacks (a live
 * sluice checkpoints them soon; after a crash, the next wal_open puts them back), in seq
 * order as recovery would put them back: fn (may be NULL) gets each one's seq and envelope
 * until it returns non-zero, which ends the walk with that code. */
typedef int (*wal_journal_fn)(void *ctx, uint64_t seq, const void *env, size_t len);
int wal_journal_pending(wal_t *w, wal_journal_fn fn, void *ctx, uint64_t *records);
/* meta "journal_lsn" = lsn, in txn (each checkpoint: what the txn holds). */
int wal_journal_put_lsn(wal_t *w, MDB_txn *txn, uint64_t lsn);
void wal_journal_drop(wal_journal_t *j);   /* forget the gathered records */
int wal_journal_fits(const wal_journal_t *j); /* the gathered group fits the active segment */
int wal_journal_other_free(const wal_journal_t *j, uint64_t ckpt_lsn);
void wal_journal_switch(wal_journal_t *j); /* start the other segment (caller checked it) */
/* pwrite the group at the write position, which moves on; *fd: the segment to fdatasync
 * before the group is durable (the writer's syncer thread does). */
int wal_journal_write(wal_journal_t *j, int *fd);
/* Apply the entries of [txn_off, off) to txn again (after the open txn was aborted). */
int wal_journal_reapply(wal_t *w, MDB_txn *txn);

/* ---- the wal ---- */

typedef enum {
    WAL_REQ_APPEND = 0,
    WAL_REQ_CURSOR,
    WAL_REQ_DLQ_DROP,
    WAL_REQ_DLQ_REPLAY,
    WAL_REQ_META_PUT,
    WAL_REQ_CONSUMERS,
    WAL_REQ_FLUSH, /* wal_flush: nothing to apply, answered once its commit is durable */
} wal_req_kind_t;

typedef struct wal_req {
    struct wal_req *next;
    wal_req_kind_t kind;
    wal_done_cb cb;
    void *ctx;
    int status;
    /* results, set by the writer before complete(): */
    uint64_t first_seq, last_seq; /* append: the seqs its records took */
    uint64_t n_moved;             /* dlq drop/replay: entries dropped or moved back */
    /* payload: append = envelopes; cursor = DLQ entries; meta = value */
    char *buf;
    size_t *lens; /* n_items sizes within buf */
    size_t len1;
    size_t n_items;
    uint64_t cost;       /* append: live bytes it will hold */
    uint32_t n_rows;     /* append */
    uint64_t deadline;   /* append under when_full: block; monotonic ms */
    char name[WAL_MAX_NAME + 1]; /* sink (cursor, dlq), meta key */
    int has_name;
    wal_cursor_t cursor;
    uint64_t *ids; /* dlq drop/replay */
    wal_consumer_t *consumers; /* with names strdup'ed */
} wal_req_t;

typedef struct {
    char *name;
    int start_latest, drop_oldest;
    uint64_t acked; /* writer thread only */
} wal_cons_t;

struct wal {
    char *dir;
    cfg_wal_t cfg; /* dir points to this->dir */
    int readonly;
    int format; /* meta format_version as opened (or last written) */
    int clean_stop; /* the writer's last checkpoint put everything in LMDB, durably */
    int lock_fd; /* DIR/sinks.lock, flocked while open for writing; -1 if not */
    MDB_env *env;
    MDB_dbi dbi_log, dbi_cur, dbi_dlq, dbi_meta;
    unsigned psize;
    uint64_t log_id;

    /* Queue to the writer: protected by qlock; qcond wakes the writer. */
    pthread_mutex_t qlock;
    pthread_cond_t qcond;
    wal_req_t *q_head, *q_tail;
    int closing; /* qlock */
    pthread_t writer;
    int writer_started;

    /* Commit notification for wal_wait: clock + ccond; closed is under clock. */
    pthread_mutex_t clock;
    pthread_cond_t ccond;
    int closed;
    uint64_t wakes; /* clock: bumped by wal_wake, ends every wal_wait in progress */
    _Atomic uint64_t last_seq; /* highest committed seq: written by the writer after commit */

    /* Writer-thread-only state (also filled once at open, before the thread starts). */
    uint64_t next_seq, first_seq, n_records, live_bytes, trunc_seq, next_dlq_id;
    uint64_t n_dlq, n_gaps;
    wal_cons_t *cons;
    size_t n_cons;
    int have_cons;
    wal_req_t *held_head, *held_tail; /* when_full: block */
    uint64_t last_sync_ms;
    uint64_t stall_until; /* after a failed txn: no truncation-only txns before this */
    int unsynced;
    /* One flush per commit (writer.c, "durability"): requests of committed txns whose meta
     * page may not be on disk yet, oldest first, and the seq that becomes durable with them. */
    wal_req_t *pend_head, *pend_tail;
    uint64_t pend_seq;
    int pend_commit;   /* a commit among them still needs a flush */
    uint64_t flush_us; /* how long the last commit took (about one device flush) */
    int linger;        /* the last wait for a following commit caught one */

    /* The journal (sync: always; journal.c) and the LMDB txn it keeps open across groups:
     * records of acked groups sit in txn until the next checkpoint (its commit). */
    wal_journal_t j;
    MDB_txn *txn;
    uint64_t txn_t0;      /* monotonic ms when txn began */
    uint64_t commit_seq;  /* highest seq in a committed txn */
    uint64_t commit_lsn;  /* journal_lsn of the last committed txn */
    uint64_t ckpt_lsn;    /* journal_lsn of a durable commit (journal space below it frees) */
    uint64_t jseq;        /* highest seq durable in the journal (or in LMDB) */
    int jbroken;          /* an aborted txn could not be rebuilt: refuse until restart */
    _Atomic int commit_now; /* wal_wake: a reader waits, checkpoint at once */
    _Atomic int unckpt;     /* acked cursor/DLQ changes wait for the next checkpoint */
    /* The syncer (writer.c): fdatasyncs written groups and answers them, while the writer
     * gathers and writes the next. Jobs under smu; jseq and commit_seq under vlock. */
    pthread_t syncer;
    int syncer_started, sstop, sbusy;
    pthread_mutex_t smu, vlock;
    pthread_cond_t scond, sdone;
    struct wal_sync_job *sjob_head, *sjob_tail;
    _Atomic int jfailed;    /* an fdatasync failed: every later group fails too */
    _Atomic size_t map_read; /* bytes wal_read copied out of the map since the last release */
    void *map_base;          /* LMDB's map of data.mdb (wal_find_map), NULL if not found */
    size_t map_len;

    /* Published counters: slock. */
    pthread_mutex_t slock;
    wal_stats_t st;
};

void wal_put_be64(uint8_t *p, uint64_t v);
uint64_t wal_get_be64(const uint8_t *p);
int wal_mdb_code(int rc); /* LMDB error -> wal code (MDB_MAP_FULL -> WAL_EFULL, ...) */

/* Live bytes one log record of len envelope bytes costs in LMDB pages (estimate). */
uint64_t wal_rec_cost(const wal_t *w, size_t len);

/* Recompute the writer state (seqs, live bytes, counts, consumer acks) from txn. */
int wal_load_state(wal_t *w, MDB_txn *txn);

/* bytes of records were read through LMDB's map: now and then unmap what was read (read.c). */
void wal_map_touched(wal_t *w, size_t bytes);
void wal_find_map(wal_t *w); /* after the env is open */

/* Copy the writer's state into the stats snapshot (under slock). */
void wal_publish_state(wal_t *w);

/* writer.c */
int wal_writer_start(wal_t *w);
void wal_writer_stop(wal_t *w);
/* Queue r (cb called exactly once, maybe synchronously on error). */
int wal_submit(wal_t *w, wal_req_t *r);
void wal_req_free(wal_req_t *r);

#endif
