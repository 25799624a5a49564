/* api.c — the write side of wal.h as seen by callers: validate arguments, encode envelopes on
 * the caller's thread (so the writer only copies bytes into LMDB), queue a request to the
 * writer, and for the synchronous calls wait for its commit on a condition variable. */
#include <errno.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "wal/wal_internal.h"

/* A synchronous caller waits on a futex word instead of a mutex + condvar: the writer's
 * completion is one atomic store and one wake, and the woken thread never contends for a
 * lock on its way out (context switches are the main cost of group commit on small VMs). */
typedef struct {
    _Atomic uint32_t done;
    int status;
    uint64_t first_seq, second; /* what complete() passes: see writer.c */
} waiter_t;

static void waiter_cb(void *ctx, int status, uint64_t first_seq, uint64_t second)
{
    waiter_t *wt = ctx;
    wt->status = status;
    wt->first_seq = first_seq;
    wt->second = second;
    atomic_store_explicit(&wt->done, 1, memory_order_release);
    /* The waiter may already have returned (it saw done): waking a stale address is
     * harmless, futex waiters tolerate spurious wakeups. */
    syscall(SYS_futex, &wt->done, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void waiter_wait(waiter_t *wt)
{
    while (!atomic_load_explicit(&wt->done, memory_order_acquire))
        syscall(SYS_futex, &wt->done, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

/* Submit r and wait for its completion (commit done, or refused). *second: an append's last
 * seq, a dlq drop/replay's n_moved. */
static int submit_wait(wal_t *w, wal_req_t *r, uint64_t *first_seq, uint64_t *second)
{
    waiter_t wt = {.done = 0};
    r->cb = waiter_cb;
    r->ctx = &wt;
    wal_submit(w, r);
    waiter_wait(&wt);
    if (first_seq) *first_seq = wt.first_seq;
    if (second) *second = wt.second;
    return wt.status;
}

static int name_ok(const char *s, size_t max)
{
    return s && *s && strlen(s) <= max;
}

static int settings_ok(const wal_kv_t *kv, size_t n)
{
    if (n && !kv) return 0;
    for (size_t i = 0; i < n; i++)
        if (!kv[i].key || !kv[i].value || strlen(kv[i].key) > WAL_MAX_TEXT ||
            strlen(kv[i].value) > WAL_MAX_TEXT)
            return 0;
    return 1;
}

static int insert_ok(const wal_insert_t *ins)
{
    return ins && name_ok(ins->table, WAL_MAX_IDENT) &&
           (!ins->db || strlen(ins->db) <= WAL_MAX_IDENT) &&
           (!ins->columns || strlen(ins->columns) <= WAL_MAX_TEXT) && ins->rows &&
           ins->rows_len > 0 && ins->rows_len <= UINT32_MAX &&
           (!ins->fmt || name_ok(ins->fmt, WAL_MAX_IDENT)) && (ins->hdr || !ins->hdr_len) &&
           ins->hdr_len <= WAL_MAX_TEXT &&
           settings_ok(ins->settings, ins->n_settings);
}

static wal_req_t *req_new(wal_req_kind_t kind)
{
    wal_req_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->kind = kind;
    r->lens = &r->len1;
    return r;
}

int wal_append(wal_t *w, const wal_insert_t *ins, wal_done_cb cb, void *ctx)
{
    int rc;
    wal_req_t *r = NULL;
    if (!w || w->readonly) {
        rc = -EROFS;
        goto fail;
    }
    if (!insert_ok(ins)) {
        rc = WAL_EINVAL;
        goto fail;
    }
    if (!(r = req_new(WAL_REQ_APPEND))) {
        rc = -ENOMEM;
        goto fail;
    }
    r->cb = cb;
    r->ctx = ctx;
    wal_env_hdr_t h = {.db = wal_slice(ins->db ? ins->db : ""),
                       .table = wal_slice(ins->table),
                       .cols = wal_slice(ins->columns),
                       .fmt = wal_slice(ins->fmt),
                       .hdr = ins->hdr ? (wal_slice_t){ins->hdr, ins->hdr_len, 1}
                                       : (wal_slice_t){NULL, 0, 0},
                       .whole = ins->whole,
                       .settings = ins->settings,
                       .n_settings = ins->n_settings,
                       .ts_ms = ins->ts_ms ? ins->ts_ms : time_wall_ms()};
    wal_sbuf_t sb = {0};
    msgpack_sbuffer_init(&sb.sb);
    size_t est = ins->rows_len + ins->hdr_len + 320 + strlen(ins->table) + (ins->db ? strlen(ins->db) : 0) +
                 (ins->columns ? strlen(ins->columns) : 0);
    if ((ins->rows_len <= w->cfg.max_record_bytes || ins->whole) && (sb.sb.data = malloc(est)))
        sb.sb.alloc = est; /* one allocation for the usual single-record request */
    int n = wal_env_pack_records(&sb, &h, ins->rows, ins->rows_len, ins->n_rows,
                                 w->cfg.max_record_bytes, &r->lens, &r->len1);
    r->buf = sb.sb.data;
    if (n < 0) {
        rc = n;
        goto fail;
    }
    r->n_items = (size_t)n;
    for (size_t i = 0; i < r->n_items; i++) r->cost += wal_rec_cost(w, r->lens[i]);
    r->n_rows = ins->n_rows;
    if (w->cfg.when_full == CFG_FULL_BLOCK) r->deadline = time_mono_ms() + w->cfg.block_timeout_ms;
    return wal_submit(w, r);
fail:
    wal_req_free(r);
    if (cb) cb(ctx, rc, 0, 0);
    return rc;
}

int wal_append_wait(wal_t *w, const wal_insert_t *ins, uint64_t *first_seq, uint64_t *last_seq)
{
    waiter_t wt = {.done = 0};
    wal_append(w, ins, waiter_cb, &wt);
    waiter_wait(&wt);
    if (first_seq) *first_seq = wt.first_seq;
    if (last_seq) *last_seq = wt.second;
    return wt.status;
}

int wal_cursor_commit(wal_t *w, const char *sink, const wal_cursor_t *c,
                      const wal_dlq_entry_t *dlq, size_t n_dlq)
{
    if (!w || w->readonly) return -EROFS;
    if (!name_ok(sink, WAL_MAX_NAME) || !c || (n_dlq && !dlq)) return WAL_EINVAL;
    for (size_t i = 0; i < n_dlq; i++)
        if (!name_ok(dlq[i].table, WAL_MAX_IDENT) || (!dlq[i].rows && dlq[i].rows_len) ||
            !settings_ok(dlq[i].settings, dlq[i].n_settings) ||
            (dlq[i].sink && !name_ok(dlq[i].sink, WAL_MAX_NAME)))
            return WAL_EINVAL;
    wal_req_t *r = req_new(WAL_REQ_CURSOR);
    if (!r) return -ENOMEM;
    memcpy(r->name, sink, strlen(sink) + 1);
    r->cursor = *c;
    if (n_dlq) {
        wal_sbuf_t sb = {0};
        msgpack_sbuffer_init(&sb.sb);
        if (!(r->lens = malloc(n_dlq * sizeof *r->lens))) {
            r->lens = &r->len1;
            wal_req_free(r);
            return -ENOMEM;
        }
        for (size_t i = 0; i < n_dlq; i++) {
            wal_dlq_entry_t e = dlq[i];
            if (!e.sink) e.sink = sink;
            if (!e.ts_ms) e.ts_ms = time_wall_ms();
            size_t before = sb.sb.size;
            int rc = wal_env_pack_dlq(&sb, &e);
            if (rc) {
                msgpack_sbuffer_destroy(&sb.sb);
                wal_req_free(r);
                return rc;
            }
            r->lens[i] = sb.sb.size - before;
        }
        r->buf = sb.sb.data;
        r->n_items = n_dlq;
    }
    return submit_wait(w, r, NULL, NULL);
}

static wal_req_t *dlq_req(wal_req_kind_t kind, const char *sink, const uint64_t *ids, size_t n)
{
    wal_req_t *r = req_new(kind);
    if (!r) return NULL;
    if (sink) {
        memcpy(r->name, sink, strlen(sink) + 1);
        r->has_name = 1;
    }
    if (n) {
        if (!(r->ids = malloc(n * sizeof *ids))) {
            wal_req_free(r);
            return NULL;
        }
        memcpy(r->ids, ids, n * sizeof *ids);
        r->n_items = n;
    }
    return r;
}

int wal_dlq_drop(wal_t *w, const char *sink, const uint64_t *ids, size_t n)
{
    if (!w || w->readonly) return -EROFS;
    if ((sink && !name_ok(sink, WAL_MAX_NAME)) || (n && !ids)) return WAL_EINVAL;
    wal_req_t *r = dlq_req(WAL_REQ_DLQ_DROP, sink, ids, n);
    return r ? submit_wait(w, r, NULL, NULL) : -ENOMEM;
}

int wal_dlq_replay(wal_t *w, const char *sink, const uint64_t *ids, size_t n, size_t *n_out)
{
    uint64_t moved = 0;
    if (n_out) *n_out = 0;
    if (!w || w->readonly) return -EROFS;
    if ((sink && !name_ok(sink, WAL_MAX_NAME)) || (n && !ids)) return WAL_EINVAL;
    wal_req_t *r = dlq_req(WAL_REQ_DLQ_REPLAY, sink, ids, n);
    if (!r) return -ENOMEM;
    int rc = submit_wait(w, r, NULL, &moved);
    if (n_out) *n_out = (size_t)moved;
    return rc;
}

static int reserved_meta(const char *key)
{
    static const char *const keys[] = {"magic", "format_version", "log_id", "created_ms",
                                       "trunc_seq"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        if (strcmp(key, keys[i]) == 0) return 1;
    return 0;
}

int wal_meta_put(wal_t *w, const char *key, const void *val, size_t len)
{
    if (!w || w->readonly) return -EROFS;
    if (!name_ok(key, WAL_MAX_NAME) || reserved_meta(key) || (len && !val) ||
        len > WAL_MAX_TEXT)
        return WAL_EINVAL;
    wal_req_t *r = req_new(WAL_REQ_META_PUT);
    if (!r) return -ENOMEM;
    memcpy(r->name, key, strlen(key) + 1);
    if (!(r->buf = malloc(len ? len : 1))) {
        wal_req_free(r);
        return -ENOMEM;
    }
    if (len) memcpy(r->buf, val, len);
    r->len1 = len;
    return submit_wait(w, r, NULL, NULL);
}

int wal_flush(wal_t *w)
{
    if (!w || w->readonly) return -EROFS;
    wal_req_t *r = req_new(WAL_REQ_FLUSH);
    if (!r) return -ENOMEM;
    return submit_wait(w, r, NULL, NULL);
}

int wal_set_consumers(wal_t *w, const wal_consumer_t *c, size_t n)
{
    if (!w || w->readonly) return -EROFS;
    if (n && !c) return WAL_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_ok(c[i].name, WAL_MAX_NAME)) return WAL_EINVAL;
    wal_req_t *r = req_new(WAL_REQ_CONSUMERS);
    if (!r || !(r->consumers = calloc(n ? n : 1, sizeof *r->consumers))) {
        wal_req_free(r);
        return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        r->consumers[i] = c[i];
        if (!(r->consumers[i].name = strdup(c[i].name))) {
            r->n_items = i;
            wal_req_free(r);
            return -ENOMEM;
        }
    }
    r->n_items = n;
    return submit_wait(w, r, NULL, NULL);
}
