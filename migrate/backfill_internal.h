/* backfill_internal.h — what the backfill files share (backfill.c: run loop, output;
 * backfill_slice.c: queries, slicing, workers; backfill_plan.c: plan, progress file;
 * backfill_status.c: --status, --retry-dlq, metrics): the run's state and their functions. */
#ifndef SLUICE_BACKFILL_INTERNAL_H
#define SLUICE_BACKFILL_INTERNAL_H

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "common/buf.h"
#include "migrate/migrate.h"
#include "sinks/sink.h"
#include "wal/wal.h"

enum { BF_OK = 0, BF_ERR = 1, BF_USAGE = 2, BF_REFUSED = 3, BF_WAL = 4, BF_DEAD = 5 };

#define BF_SLICE_ATTEMPTS 8 /* a failing SELECT is retried this often */
#define BF_SLICE_ROWS 50000 /* slices grow across grid cells while they stay under this */
#define BF_MAX_PARALLEL 16
#define BF_DRY_RUN_LINES 2000

typedef struct {
    int64_t start, end;
} bf_range_t;

typedef struct {
    int64_t start; /* a grid cell of --slice seconds */
    uint64_t rows;
} bf_cell_t;

typedef struct bf bf_t;

/* One slice copier: a thread with its own source transfer and sink handle. */
typedef struct {
    bf_t *b;
    pthread_t th;
    int started;
    sink_t *sink;
    int64_t s_start, s_end;
    uint32_t plan, batch_idx, batch_rows;
    buf_t batch;
    uint64_t slice_rows, slice_bytes;
    char msg[1024];
    uint64_t retries_seen;   /* main thread: the sink's retries last reported */
    uint64_t inflight_added; /* rows of the current slice counted in b->inflight_rows (mu) */
} bf_worker_t;

struct bf {
    const backfill_opts_t *o;
    const sluice_cfg_t *cfg;
    const cfg_sink_t *sc;
    uint64_t logid;
    char source[1200]; /* with credentials: never printed */
    char shown[1200];  /* the source as printed (password ***) */
    char base[1200];   /* source URL with a trailing '/' */
    buf_t order_by;    /* ORDER BY list: the time column, then every column */
    char progress_path[4096], dlq_path[4096];
    FILE *err, *out;
    int tty;
    uint32_t max_rows;
    uint64_t max_bytes;
    int64_t since, until;
    char plan_line[1024];
    bf_cell_t *cells; /* rows per grid cell in [since, until), by start; empty cells absent */
    size_t n_cells;

    /* Shared by the workers and the main thread: protected by mu. */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    FILE *progress;   /* append: "begin" and "done" lines, fsync'ed */
    bf_range_t *redo; /* begun in an earlier run, not done: redone with the same bounds */
    size_t n_redo, i_redo;
    int64_t next_start;
    uint64_t total_rows, done_rows, sent_rows, inflight_rows, dead_rows;
    uint64_t slices_done, slices_before, slices_begun;
    unsigned running;
    int failed, fail_code;
    char fail_msg[1400];

    struct timespec t0;
    double last_draw, last_retry_note;
    bf_worker_t w[BF_MAX_PARALLEL];
};

typedef struct {
    char plan[1024];
    int has_plan, old_format;
    bf_range_t *begun;
    size_t n_begun;
    bf_range_t *done;
    uint64_t *done_rows;
    size_t n_done;
} bf_progress_t;

/* ---- progress output (backfill.c; mu held) ---- */
void bf_report(bf_t *b, const bf_worker_t *slice_done);
void bf_note(bf_t *b, const char *what, const char *msg);
void bf_fail_locked(bf_t *b, int code, const char *msg);
void bf_dlq_count(const char *path, uint64_t *entries, uint64_t *rows);

/* ---- queries, slices, workers (backfill_slice.c) ---- */
int bf_load_columns(bf_t *b, char *msg, size_t msglen);
int bf_load_range(bf_t *b, int64_t *since, int64_t until, int has_since, char *msg, size_t msglen);
int bf_load_cells(bf_t *b, char *msg, size_t msglen);
int bf_on_dead(void *ctx, const wal_dlq_entry_t *e);
int64_t bf_slice_end(const bf_t *b, int64_t start);
void *bf_worker_main(void *arg);

/* ---- plan and progress file (backfill_plan.c) ---- */
int bf_progress_line(bf_t *b, const char *line);
void bf_make_plan_line(const bf_t *b, char *out, size_t len);
const char *bf_plan_field(const char *line, const char *key, char *out, size_t len);
void bf_plan_diff(const char *old, const char *now, char *out, size_t len);
void bf_plan_as_options(const char *old, char *out, size_t len);
void bf_progress_free(bf_progress_t *p);
int bf_grow(void **arr, size_t n, size_t elem);
int bf_progress_read(const char *path, bf_progress_t *p);
int bf_is_done(const bf_progress_t *p, int64_t s, int64_t e);
int bf_open_progress(bf_t *b, FILE *err);

/* ---- what a backfill left (backfill_status.c) ---- */
int bf_status(bf_t *b, FILE *out, FILE *err);
int bf_retry_dlq(bf_t *b, FILE *out, FILE *err);

#endif
