/* insert.h — one INSERT request from its statement to wal_append, touching no loop state:
 * proxy.c runs it on the loop for small bodies and on libuv's thread pool for large ones
 * (proxy_insert_offloop). Not for other modules. */
#ifndef SLUICE_PROXY_INSERT_H
#define SLUICE_PROXY_INSERT_H

#include "proxy/http_server.h"
#include "proxy/proxy_internal.h"

/* A body whose decoded size is above this is decompressed, validated and handed to
 * wal_append on the thread pool. Below it the work costs less than the hop: JSON validation
 * runs at several hundred MB/s, so 64 KiB is ~0.1 ms of loop time (about a thread-pool round
 * trip: queue, wake a worker, uv_async back), and it is the read buffer's size, so a body
 * that arrived in one read stays on the loop. Every connection's worst stall per request is
 * then bounded by this, not by proxy.max_body_bytes. */
#define PROXY_OFFLOOP_BYTES (64u << 10)

typedef enum {
    PROXY_INS_APPENDED, /* handed to wal_append: done(done_ctx, ...) answers it */
    PROXY_INS_EMPTY,    /* valid, no rows: answer 200 with nothing written */
    PROXY_INS_PASS,     /* not buffered (st->unbuffered may say why): pass it through */
    PROXY_INS_ERROR,    /* answer http_status with a ClickHouse error (code, name, msg) */
} proxy_ins_result_t;

typedef struct {
    /* in: read-only during proxy_insert_run, which may run on any thread while the caller
     * holds a ref on req and keeps pr (and the strings it points to) alive */
    http_req_t *req;
    const proxy_param_t *pr;
    size_t npr;
    proxy_stmt_t *st; /* scratch for the statement, owned by this run */
    uint64_t max_body_bytes;
    wal_t *w;
    wal_done_cb done; /* passed to wal_append (then called exactly once) */
    void *done_ctx;
    uint32_t *n_rows_out; /* set before wal_append: its completion may come first */
    size_t *bytes_out;
    char *decoded; /* NULL, or the body already decoded (malloc'd; the run frees it) */
    size_t decoded_len;
    /* out */
    proxy_ins_result_t result;
    int http_status, code; /* ERROR */
    const char *name;
    char msg[768];
} proxy_ins_t;

/* Read the statement from the query parameter, the body or both joined as ClickHouse joins
 * them; decode the body (Content-Encoding), validate and split the rows, and append them. */
void proxy_insert_run(proxy_ins_t *in);

/* ---- the same on libuv's thread pool (every function here: loop thread) ---- */

typedef struct proxy_ins_job proxy_ins_job_t;

/* The job ended: in->result is set, or cancelled is 1 (proxy_insert_cancel_all, or the
 * client closed the connection before the job started: then nothing was run). */
typedef void (*proxy_ins_done_fn)(proxy_ins_t *in, int cancelled, void *ctx);

/* Run proxy_insert_run(in) on the pool. The job copies *in, in->pr and the statement scratch
 * (in->st is replaced by its own), takes *pstore (the strings pr points to; set to NULL) and
 * a ref on in->req, sets req->data/on_abort until done runs, and links itself into *list.
 * The request's body is freed on the pool thread once it is no longer needed (returning
 * tens of MiB to the kernel takes milliseconds). -ENOMEM: nothing was taken. */
int proxy_insert_queue(uv_loop_t *loop, const proxy_ins_t *in, char **pstore,
                       proxy_ins_done_fn done, void *ctx, proxy_ins_job_t **list);

/* Cancel the queued jobs of list and wait for the running ones to return from their work
 * (after this nothing calls wal_append); their done callbacks run on later loop turns. */
void proxy_insert_cancel_all(proxy_ins_job_t *list);

#endif
