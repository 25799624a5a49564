/* writer.c — the one thread that writes LMDB. It drains the request queue, applies every
 * request in one write transaction (group commit), commits (one fsync for the whole group
 * with sync: always), and only then runs the callbacks. It also truncates the log below the
 * consumers' cursors, enforces wal.max_bytes, and holds appends under when_full: block. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "wal/wal_internal.h"

#define HELD 1 /* do_append: the request went to the held list */

typedef struct {
    uint64_t appends, rows, rejected, deleted;
    int dirty;
} group_t;

void wal_req_free(wal_req_t *r)
{
    if (!r) return;
    free(r->buf);
    if (r->lens != &r->len1) free(r->lens);
    free(r->ids);
    if (r->consumers) {
        for (size_t i = 0; i < r->n_items; i++) free((char *)r->consumers[i].name);
        free(r->consumers);
    }
    free(r);
}

/* The callback's two numbers: an append's seq range; for a dlq drop/replay the second one
 * carries n_moved (they have no seqs); other requests 0, 0. */
static void complete(wal_req_t *r, int status)
{
    uint64_t second = r->kind == WAL_REQ_APPEND ? r->last_seq : r->n_moved;
    if (r->cb) r->cb(r->ctx, status, status ? 0 : r->first_seq, status ? 0 : second);
    wal_req_free(r);
}

int wal_submit(wal_t *w, wal_req_t *r)
{
    r->next = NULL;
    pthread_mutex_lock(&w->qlock);
    if (w->closing) {
        pthread_mutex_unlock(&w->qlock);
        complete(r, WAL_ECLOSED);
        return WAL_ECLOSED;
    }
    if (w->q_tail) {
        w->q_tail->next = r;
    } else {
        w->q_head = r;
        pthread_cond_signal(&w->qcond); /* the writer sleeps only on an empty queue */
    }
    w->q_tail = r;
    pthread_mutex_unlock(&w->qlock);
    return 0;
}

/* ---- truncation and room ---- */

static uint64_t min_acked(const wal_t *w)
{
    if (!w->have_cons || w->n_cons == 0) return 0; /* nobody declared: keep everything */
    uint64_t m = UINT64_MAX;
    for (size_t i = 0; i < w->n_cons; i++)
        if (w->cons[i].acked < m) m = w->cons[i].acked;
    return m;
}

static int truncation_pending(const wal_t *w)
{
    return w->n_records && w->first_seq <= min_acked(w) && time_mono_ms() >= w->stall_until;
}

/* A log record's arrival time (wal ts_ms), 0 when its envelope cannot be read. */
static uint64_t rec_ts(const MDB_val *v)
{
    wal_env_view_t e;
    return wal_env_parse(v->mv_data, v->mv_size, &e) ? 0 : e.ts_ms;
}

#define SECOND(ms) ((ms) / 1000 * 1000)

static int put_u64_meta(wal_t *w, MDB_txn *txn, const char *key, uint64_t val)
{
    char buf[24];
    int n = snprintf(buf, sizeof buf, "%" PRIu64, val);
    MDB_val k = {strlen(key), (void *)key}, v = {(size_t)n, buf};
    return mdb_put(txn, w->dbi_meta, &k, &v, 0);
}

/* Delete log records with seq <= lim from the front, at most max_count of them, stopping
 * once at least want_bytes were freed (0 = no byte goal). Only ever called with lim <= the
 * minimum consumer cursor, so no consumer loses a record it has not acked. */
static int delete_front(wal_t *w, MDB_txn *txn, uint64_t lim, uint64_t max_count,
                        uint64_t want_bytes, group_t *g)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t n = 0, freed = 0, last = 0, touched = 0;
    int rc = mdb_cursor_open(txn, w->dbi_log, &c);
    if (rc) return rc;
    while (n < max_count && (!want_bytes || freed < want_bytes)) {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        if (rc) break;
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        uint64_t seq = wal_get_be64(k.mv_data);
        if (seq > lim) break;
        uint64_t cost = wal_rec_cost(w, v.mv_size);
        if ((rc = mdb_cursor_del(c, 0))) break;
        freed += cost;
        touched += v.mv_size;
        w->live_bytes -= cost < w->live_bytes ? cost : w->live_bytes;
        w->n_records--;
        last = seq;
        n++;
    }
    if (rc == 0 || rc == MDB_NOTFOUND) {
        rc = mdb_cursor_get(c, &k, &v, MDB_FIRST);
        w->first_seq = rc == 0 ? wal_get_be64(k.mv_data) : 0;
        rc = rc == MDB_NOTFOUND ? 0 : rc;
    }
    mdb_cursor_close(c);
    if (touched) wal_map_touched(w, touched);
    if (rc || n == 0) return rc;
    g->deleted += n;
    g->dirty = 1;
    if (last > w->trunc_seq) {
        /* Persisted so that seqs keep growing after the log was emptied: a (log id, seq)
         * pair names one batch forever (idempotency labels rely on it). */
        w->trunc_seq = last;
        rc = put_u64_meta(w, txn, "trunc_seq", last);
    }
    return rc;
}

static int put_cursor(wal_t *w, MDB_txn *txn, const char *name, const wal_cursor_t *c)
{
    uint8_t b[24];
    wal_put_be64(b, c->acked);
    wal_put_be64(b + 8, c->inflight_first);
    wal_put_be64(b + 16, c->inflight_last);
    MDB_val k = {strlen(name), (void *)name}, v = {24, b};
    return mdb_put(txn, w->dbi_cur, &k, &v, 0);
}

static int get_cursor(wal_t *w, MDB_txn *txn, const char *name, wal_cursor_t *c)
{
    MDB_val k = {strlen(name), (void *)name}, v;
    int rc = mdb_get(txn, w->dbi_cur, &k, &v);
    if (rc) return rc;
    if (v.mv_size != 24) return MDB_CORRUPTED;
    c->acked = wal_get_be64(v.mv_data);
    c->inflight_first = wal_get_be64((uint8_t *)v.mv_data + 8);
    c->inflight_last = wal_get_be64((uint8_t *)v.mv_data + 16);
    return 0;
}

/* overflow: drop_oldest. When the consumers holding the minimum cursor all drop_oldest, move
 * them past the oldest records worth `deficit` bytes (never past a block consumer's cursor),
 * record each skipped range as a gap in meta, so truncation can free the room. */
static int drop_oldest(wal_t *w, MDB_txn *txn, uint64_t deficit)
{
    uint64_t m = min_acked(w), block_min = UINT64_MAX;
    int any_drop = 0;
    for (size_t i = 0; i < w->n_cons; i++) {
        if (!w->cons[i].drop_oldest) {
            if (w->cons[i].acked == m) return 0; /* a block consumer holds the log */
            if (w->cons[i].acked < block_min) block_min = w->cons[i].acked;
        } else if (w->cons[i].acked == m) {
            any_drop = 1;
        }
    }
    if (!any_drop || !w->n_records) return 0;

    /* Find the seq up to which deleting frees deficit bytes. */
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t target = 0, sum = 0;
    int rc = mdb_cursor_open(txn, w->dbi_log, &c);
    if (rc) return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0 && sum < deficit;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        target = wal_get_be64(k.mv_data);
        sum += wal_rec_cost(w, v.mv_size);
    }
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return rc;
    if (target > block_min) target = block_min;
    if (target <= m) return 0;

    for (size_t i = 0; i < w->n_cons; i++) {
        wal_cons_t *cs = &w->cons[i];
        if (!cs->drop_oldest || cs->acked >= target) continue;
        wal_cursor_t cur = {0};
        rc = get_cursor(w, txn, cs->name, &cur);
        if (rc && rc != MDB_NOTFOUND) return rc;
        uint64_t first = cs->acked + 1;
        cur.acked = target;
        if (cur.inflight_first && cur.inflight_first <= target)
            cur.inflight_first = cur.inflight_last = 0; /* those records are gone */
        if ((rc = put_cursor(w, txn, cs->name, &cur))) return rc;
        char key[WAL_MAX_NAME + 32];
        snprintf(key, sizeof key, "gap:%s:%020" PRIu64, cs->name, first);
        if ((rc = put_u64_meta(w, txn, key, target))) return rc;
        cs->acked = target;
        w->n_gaps++;
        char f[24], l[24];
        snprintf(f, sizeof f, "%" PRIu64, first);
        snprintf(l, sizeof l, "%" PRIu64, target);
        log_warn("wal full: dropped a sink's oldest backlog (overflow: drop_oldest)", "sink",
                 cs->name, "#first_seq", f, "#last_seq", l);
    }
    return 0;
}

/* Try to make room for need more live bytes: truncate what is already acked, then apply
 * drop_oldest. Sets *ok when the request now fits. */
static int make_room(wal_t *w, MDB_txn *txn, uint64_t need, group_t *g, int *ok)
{
    uint64_t max = w->cfg.max_bytes;
    int rc;
    *ok = w->live_bytes + need <= max;
    if (*ok || !w->have_cons) return 0;
    uint64_t deficit = w->live_bytes + need - max;
    if ((rc = delete_front(w, txn, min_acked(w), UINT64_MAX, deficit, g))) return rc;
    if ((*ok = w->live_bytes + need <= max)) return 0;
    deficit = w->live_bytes + need - max;
    if ((rc = drop_oldest(w, txn, deficit))) return rc;
    if ((rc = delete_front(w, txn, min_acked(w), UINT64_MAX, deficit, g))) return rc;
    *ok = w->live_bytes + need <= max;
    return 0;
}

/* ---- applying requests ---- */

static int jmode(const wal_t *w)
{
    return w->j.fd[0] >= 0;
}

/* Put r's records into the log (and, with the journal, gather them for it; dlq_id: the DLQ
 * entry they come from, deleted with them when the journal puts them back). */
/* keep: r->buf lives until r is answered (a request's own), so the journal need not copy it. */
static int put_records(wal_t *w, MDB_txn *txn, wal_req_t *r, uint64_t dlq_id, int keep)
{
    uint8_t kb[8];
    size_t off = 0;
    r->first_seq = w->next_seq;
    for (size_t i = 0; i < r->n_items; i++) {
        wal_put_be64(kb, w->next_seq);
        MDB_val k = {8, kb}, v = {r->lens[i], r->buf + off};
        /* Seqs only grow, so MDB_APPEND (no tree search, full pages) always applies. */
        int rc = mdb_put(txn, w->dbi_log, &k, &v, MDB_APPEND);
        if (rc) return rc;
        int end = i + 1 == r->n_items;
        if (jmode(w) && (rc = wal_journal_add(&w->j, J_LOG, w->next_seq, end ? dlq_id : 0, end,
                                              keep, r->buf + off, r->lens[i], NULL, 0)))
            return rc;
        off += r->lens[i];
        w->next_seq++;
    }
    r->last_seq = w->next_seq - 1;
    if (!w->n_records) w->first_seq = r->first_seq;
    w->n_records += r->n_items;
    w->live_bytes += r->cost;
    return 0;
}

/* Returns 0 (r->status set), HELD, or an LMDB error that breaks the txn. */
static int do_append(wal_t *w, MDB_txn *txn, wal_req_t *r, group_t *g)
{
    int ok = 0, rc;
    r->status = 0;
    if (r->cost > w->cfg.max_bytes) { /* can never fit: no point in holding it */
        r->status = WAL_EFULL;
        g->rejected++;
        return 0;
    }
    if ((rc = make_room(w, txn, r->cost, g, &ok))) return rc;
    if (!ok) {
        if (w->cfg.when_full == CFG_FULL_BLOCK) return HELD;
        r->status = WAL_EFULL;
        g->rejected++;
        return 0;
    }
    if ((rc = put_records(w, txn, r, 0, 1))) return rc;
    g->appends++;
    g->rows += r->n_rows;
    g->dirty = 1;
    return 0;
}

static wal_cons_t *find_cons(wal_t *w, const char *name)
{
    for (size_t i = 0; i < w->n_cons; i++)
        if (strcmp(w->cons[i].name, name) == 0) return &w->cons[i];
    return NULL;
}

static int apply_cursor(wal_t *w, MDB_txn *txn, wal_req_t *r)
{
    wal_cursor_t cur, c = r->cursor;
    int rc = get_cursor(w, txn, r->name, &cur);
    if (rc && rc != MDB_NOTFOUND) return rc;
    /* acked never goes back: drop_oldest may have moved it past a sink's in-flight batch. */
    if (rc == 0 && cur.acked > c.acked) c.acked = cur.acked;
    if ((rc = put_cursor(w, txn, r->name, &c))) return rc;
    size_t off = 0;
    uint8_t kb[8];
    for (size_t i = 0; i < r->n_items; i++) {
        wal_put_be64(kb, w->next_dlq_id);
        MDB_val k = {8, kb}, v = {r->lens[i], r->buf + off};
        if ((rc = mdb_put(txn, w->dbi_dlq, &k, &v, MDB_APPEND))) return rc;
        if (jmode(w) && (rc = wal_journal_add(&w->j, J_DLQ, w->next_dlq_id, 0, 0, 0, v.mv_data,
                                              v.mv_size, NULL, 0)))
            return rc;
        off += r->lens[i];
        w->next_dlq_id++;
        w->n_dlq++;
    }
    if (jmode(w)) { /* the unit ends with the cursor: DLQ entries and cursor, all or none */
        uint8_t b[24];
        wal_put_be64(b, c.acked);
        wal_put_be64(b + 8, c.inflight_first);
        wal_put_be64(b + 16, c.inflight_last);
        if ((rc = wal_journal_add(&w->j, J_CURSOR, 0, 0, 1, 0, b, 24, r->name, strlen(r->name))))
            return rc;
    }
    wal_cons_t *cs = find_cons(w, r->name);
    if (cs) cs->acked = c.acked;
    return 0;
}

/* The DLQ ids a drop/replay request selects (explicit ids, or all of a sink / all). */
static int select_dlq(wal_t *w, MDB_txn *txn, wal_req_t *r, uint64_t **ids, size_t *n)
{
    MDB_cursor *c;
    MDB_val k, v;
    size_t cap = 0;
    int rc;
    *ids = NULL;
    *n = 0;
    if (r->n_items) { /* explicit ids: those that exist (and belong to the sink) */
        uint8_t kb[8];
        for (size_t i = 0; i < r->n_items; i++) {
            wal_put_be64(kb, r->ids[i]);
            k = (MDB_val){8, kb};
            rc = mdb_get(txn, w->dbi_dlq, &k, &v);
            if (rc == MDB_NOTFOUND) continue;
            if (rc) return rc;
            wal_env_view_t view;
            if (r->has_name && (wal_env_parse_dlq(v.mv_data, v.mv_size, &view) ||
                                view.sink.n != strlen(r->name) ||
                                memcmp(view.sink.p, r->name, view.sink.n)))
                continue;
            r->ids[(*n)++] = r->ids[i];
        }
        *ids = r->ids;
        return 0;
    }
    if ((rc = mdb_cursor_open(txn, w->dbi_dlq, &c))) return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        wal_env_view_t view;
        if (k.mv_size != 8) continue;
        if (r->has_name && (wal_env_parse_dlq(v.mv_data, v.mv_size, &view) ||
                            view.sink.n != strlen(r->name) ||
                            memcmp(view.sink.p, r->name, view.sink.n)))
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            uint64_t *na = realloc(*ids, cap * sizeof *na);
            if (!na) {
                rc = ENOMEM;
                break;
            }
            *ids = na;
        }
        (*ids)[(*n)++] = wal_get_be64(k.mv_data);
    }
    mdb_cursor_close(c);
    if (rc == MDB_NOTFOUND) return 0;
    free(*ids);
    *ids = NULL;
    return rc;
}

static int del_dlq(wal_t *w, MDB_txn *txn, uint64_t id)
{
    uint8_t kb[8];
    wal_put_be64(kb, id);
    MDB_val k = {8, kb};
    int rc = mdb_del(txn, w->dbi_dlq, &k, NULL);
    if (rc == 0) w->n_dlq--;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_dlq_drop(wal_t *w, MDB_txn *txn, wal_req_t *r)
{
    uint64_t *ids;
    size_t n;
    int rc = select_dlq(w, txn, r, &ids, &n);
    for (size_t i = 0; rc == 0 && i < n; i++) rc = del_dlq(w, txn, ids[i]);
    if (ids != r->ids) free(ids);
    r->n_moved = rc ? 0 : n;
    return rc;
}

/* Move DLQ entries back into the log, targeted at the sink that dead-lettered them. */
static int apply_dlq_replay(wal_t *w, MDB_txn *txn, wal_req_t *r, group_t *g)
{
    uint64_t *ids;
    size_t n, moved = 0;
    int rc = select_dlq(w, txn, r, &ids, &n);
    r->status = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        uint8_t kb[8];
        wal_put_be64(kb, ids[i]);
        MDB_val k = {8, kb}, v;
        if ((rc = mdb_get(txn, w->dbi_dlq, &k, &v))) break;
        wal_env_view_t e;
        if (wal_env_parse_dlq(v.mv_data, v.mv_size, &e)) {
            r->status = WAL_ECORRUPT;
            break;
        }
        wal_env_hdr_t h = {.db = e.db, .table = e.table, .cols = e.cols, .target = e.sink,
                           .fmt = e.fmt, .hdr = e.hdr, .whole = e.whole != 0,
                           .settings_map = e.settings_map, .settings_map_len = e.settings_len,
                           .ts_ms = e.ts_ms};
        wal_req_t tmp = {0};
        wal_sbuf_t sb = {0};
        msgpack_sbuffer_init(&sb.sb);
        int nrec = wal_env_pack_records(&sb, &h, e.rows.p, e.rows.n, (uint32_t)e.nrows,
                                        w->cfg.max_record_bytes, &tmp.lens, &tmp.len1);
        if (nrec < 0) {
            msgpack_sbuffer_destroy(&sb.sb);
            r->status = nrec;
            break;
        }
        tmp.buf = sb.sb.data;
        tmp.n_items = (size_t)nrec;
        for (size_t j = 0; j < tmp.n_items; j++) tmp.cost += wal_rec_cost(w, tmp.lens[j]);
        int ok = 0;
        rc = make_room(w, txn, tmp.cost, g, &ok);
        if (rc == 0 && !ok) r->status = WAL_EFULL;
        if (rc == 0 && ok) rc = put_records(w, txn, &tmp, ids[i], 0); /* tmp.buf is freed below */
        if (rc == 0 && ok) rc = del_dlq(w, txn, ids[i]);
        free(tmp.buf);
        if (tmp.lens != &tmp.len1) free(tmp.lens);
        if (rc || !ok) break;
        moved++;
        g->dirty = 1;
    }
    if (ids != r->ids) free(ids);
    if (moved) r->status = 0; /* partial move: the caller learns how many from n_out */
    r->n_moved = moved;
    return rc;
}

/* A new sink's cursor and the arrival time (ms) from which it delivers, the dual-write
 * boundary of `sluice backfill` (which copies the rows stamped before it). latest: after
 * the newest record, from the start of the next second: the sink skips the records of the
 * current second (sink_thread), which the other sinks delivered and backfill copies, so no
 * row of that second is in neither stream nor in both. earliest: from the oldest record,
 * and the start of its second (truncation may have freed part of that second). */
static int new_cursor_start(wal_t *w, MDB_txn *txn, int latest, uint64_t *acked,
                            uint64_t *started)
{
    MDB_cursor *c;
    MDB_val k, v;
    uint64_t now = SECOND(time_wall_ms());
    *acked = w->next_seq - 1;
    *started = latest ? now + 1000 : now;
    if (latest || !w->n_records) return 0;
    int rc = mdb_cursor_open(txn, w->dbi_log, &c);
    if (rc) return rc;
    if ((rc = mdb_cursor_get(c, &k, &v, MDB_FIRST)) == 0 && k.mv_size == 8) {
        *acked = wal_get_be64(k.mv_data) - 1;
        uint64_t s = SECOND(rec_ts(&v));
        if (s && s < now) *started = s;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_consumers(wal_t *w, MDB_txn *txn, wal_req_t *r)
{
    if (r->consumers) { /* first application: take the list over */
        for (size_t i = 0; i < w->n_cons; i++) free(w->cons[i].name);
        free(w->cons);
        w->cons = calloc(r->n_items ? r->n_items : 1, sizeof *w->cons);
        if (!w->cons) {
            w->n_cons = 0;
            return ENOMEM;
        }
        for (size_t i = 0; i < r->n_items; i++) {
            w->cons[i].name = (char *)r->consumers[i].name;
            w->cons[i].start_latest = r->consumers[i].start_latest;
            w->cons[i].drop_oldest = r->consumers[i].drop_oldest;
        }
        w->n_cons = r->n_items;
        free(r->consumers);
        r->consumers = NULL;
        w->have_cons = 1;
    }
    for (size_t i = 0; i < w->n_cons; i++) {
        wal_cursor_t c = {0};
        int rc = get_cursor(w, txn, w->cons[i].name, &c);
        if (rc == 0) {
            w->cons[i].acked = c.acked;
            continue;
        }
        if (rc != MDB_NOTFOUND) return rc;
        uint64_t started;
        if ((rc = new_cursor_start(w, txn, w->cons[i].start_latest, &c.acked, &started)))
            return rc;
        if ((rc = put_cursor(w, txn, w->cons[i].name, &c))) return rc;
        char key[sizeof WAL_META_SINK_STARTED + WAL_MAX_NAME];
        snprintf(key, sizeof key, "%s%s", WAL_META_SINK_STARTED, w->cons[i].name);
        if ((rc = put_u64_meta(w, txn, key, started))) return rc;
        w->cons[i].acked = c.acked;
    }
    return 0;
}

static int apply_other(wal_t *w, MDB_txn *txn, wal_req_t *r, group_t *g)
{
    int rc = 0;
    r->status = 0;
    switch (r->kind) {
    case WAL_REQ_CURSOR: rc = apply_cursor(w, txn, r); break;
    case WAL_REQ_DLQ_DROP: rc = apply_dlq_drop(w, txn, r); break;
    case WAL_REQ_DLQ_REPLAY: rc = apply_dlq_replay(w, txn, r, g); break;
    case WAL_REQ_CONSUMERS: rc = apply_consumers(w, txn, r); break;
    case WAL_REQ_META_PUT: {
        MDB_val k = {strlen(r->name), r->name}, v = {r->len1, r->buf};
        rc = mdb_put(txn, w->dbi_meta, &k, &v, 0);
        break;
    }
    case WAL_REQ_APPEND:
    case WAL_REQ_FLUSH: break;
    }
    g->dirty = 1;
    return rc;
}

/* ---- the group commit ---- */

static void push(wal_req_t ***tail, wal_req_t *r)
{
    r->next = NULL;
    **tail = r;
    *tail = &r->next;
}

static void hold(wal_t *w, wal_req_t *r)
{
    r->next = NULL;
    if (w->held_tail) w->held_tail->next = r;
    else w->held_head = r;
    w->held_tail = r;
}

static void reload_state(wal_t *w)
{
    MDB_txn *txn;
    if (mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn) == 0) {
        int rc = wal_load_state(w, txn);
        mdb_txn_abort(txn);
        if (rc) log_error("wal: cannot reload state", "error", mdb_strerror(rc));
    }
}

/* Apply held appends (oldest first), then the new requests, then one truncation chunk. */
static int run_group(wal_t *w, MDB_txn *txn, wal_req_t *in, wal_req_t ***done, group_t *g)
{
    int rc = 0;
    int alone = in == NULL && w->held_head == NULL;
    uint64_t seq0 = w->next_seq;
    uint64_t now = time_mono_ms();
    while (rc == 0 && w->held_head) {
        wal_req_t *r = w->held_head;
        if (now >= r->deadline) {
            r->status = WAL_ETIMEDOUT;
            g->rejected++;
        } else {
            rc = do_append(w, txn, r, g);
            if (rc == HELD) {
                rc = 0;
                break;
            }
        }
        w->held_head = r->next;
        if (!w->held_head) w->held_tail = NULL;
        push(done, r);
    }
    while (in) {
        wal_req_t *r = in;
        in = in->next;
        if (rc) {
            r->status = rc;
            push(done, r);
            continue;
        }
        if (r->kind == WAL_REQ_APPEND) {
            if (w->held_head) { /* keep FIFO order behind the held ones */
                hold(w, r);
                continue;
            }
            rc = do_append(w, txn, r, g);
            if (rc == HELD) {
                rc = 0;
                hold(w, r);
                continue;
            }
        } else {
            rc = apply_other(w, txn, r, g);
        }
        push(done, r);
    }
    /* One bounded truncation chunk per txn, after the requests. A txn that carries requests
     * delays their acks by every page it frees (a 1000-record chunk cost 10-25 ms at 16
     * connections: the tail spikes of issue 20), so it deletes at most twice what it
     * appended (at least 64), which keeps pace with any ingest rate; a txn of its own (idle
     * writer) takes the whole wal.truncate_chunk. */
    if (rc == 0 && w->n_records && w->first_seq <= min_acked(w)) {
        uint64_t lim = w->cfg.truncate_chunk;
        uint64_t want = 2 * (w->next_seq - seq0);
        if (!alone && lim > 64 && want < lim) lim = want > 64 ? want : 64;
        rc = delete_front(w, txn, min_acked(w), lim, 0, g);
    }
    return rc;
}

static unsigned hist_bucket(uint64_t n)
{
    unsigned b = 0;
    while (n > 1 && b < 7) {
        n >>= 1;
        b++;
    }
    return b;
}

static void fail_list(wal_req_t *r, int status)
{
    for (; r; r = r->next) r->status = status;
}

/* ---- durability: one device flush per commit ----
 * What a power cut keeps, with sync: always. LMDB's mdb_txn_commit (0.9.24, mdb.c:3655)
 * does, in this order: mdb_page_flush (pwrite/writev of the txn's dirty pages),
 * mdb_env_sync(env, 0) (one fdatasync of data.mdb), mdb_env_write_meta (one pwrite of the
 * meta page naming the new tree). Without MDB_NOMETASYNC that pwrite goes to an O_DSYNC
 * descriptor (mdb.c:3875-3891), a second device flush, and a txn is durable when its commit
 * returns: that is the build with SLUICE_WAL_META_SYNC (two flushes per commit).
 *
 * By default the env is opened with MDB_NOMETASYNC (wal.c): the meta pwrite only reaches
 * the page cache, and the writer acks by this reasoning:
 * - When commit k returns, its data pages are on disk, its meta page maybe not. A power cut
 *   now reopens at txn k (if that page made it) or at k-1, whose meta is on disk since
 *   commit k's fdatasync. Both trees are whole: a txn reuses only pages freed by txns older
 *   than mdb_find_oldest() = its own id - 1 (mdb.c:2095, 2227), so commit k+1 never writes
 *   over a page of tree k or k-1. The requests of commit k are therefore not acked yet:
 *   they wait in w->pend_*.
 * - Commit k+1's fdatasync writes back every dirty page of data.mdb, meta page k included
 *   (written before it began). When commit k+1 returns, commit k is durable: ack it then.
 * - When no commit follows soon, mdb_env_sync(env, 1) (one fdatasync) does the same.
 * Every ack still follows a flush that covered the data and the meta page of its txn; under
 * load each commit costs one flush instead of two. last_seq (what wal_read, wal_wait and the
 * sinks see) moves with the acks only: a sink never delivers a record a power cut could take
 * back (its seq would be reused, and with it the idempotency key of a delivered batch).
 * tests/unit/test_wal_crash.c checks this under simulated power cuts (tests/crash/). */

#ifdef SLUICE_WAL_META_SYNC
#define ACK_NEEDS_LATER_FLUSH 0
#define FLUSHES_PER_COMMIT 2
#elif defined(SLUICE_WAL_CRASH_BROKEN_ACK)
/* Deliberately wrong (only for the test that shows the power-cut harness can fail): ack at
 * commit although the meta page is not flushed. */
#define ACK_NEEDS_LATER_FLUSH 0
#define FLUSHES_PER_COMMIT 1
#else
#define ACK_NEEDS_LATER_FLUSH 1
#define FLUSHES_PER_COMMIT 1
#endif

/* The pending requests are durable (or, when publish is 0, failed): publish and ack them. */
static void ack_pending(wal_t *w, int publish)
{
    wal_req_t *r = w->pend_head;
    w->pend_head = w->pend_tail = NULL;
    w->pend_commit = 0;
    if (publish && !jmode(w)) { /* with the journal, last_seq moves in publish_visible */
        atomic_store(&w->last_seq, w->pend_seq);
        pthread_mutex_lock(&w->clock);
        pthread_cond_broadcast(&w->ccond);
        pthread_mutex_unlock(&w->clock);
    }
    for (wal_req_t *nx; r; r = nx) {
        nx = r->next;
        complete(r, r->status);
    }
}

/* Explicit flush for pending requests when no commit follows: one fdatasync of data.mdb
 * writes back the meta page of their last commit (its data pages are already on disk). */
static void flush_pending(wal_t *w)
{
    int rc = w->pend_commit ? mdb_env_sync(w->env, 1) : 0;
    if (w->pend_commit) {
        pthread_mutex_lock(&w->slock);
        w->st.fsyncs++;
        pthread_mutex_unlock(&w->slock);
        if (rc == 0) w->ckpt_lsn = w->commit_lsn; /* its meta page is on disk now */
    }
    if (rc) {
        /* Not known durable: answer an error (a retry may duplicate, never lose). */
        log_error("wal: fdatasync failed", "error", mdb_strerror(rc));
        for (wal_req_t *r = w->pend_head; r; r = r->next)
            if (r->status == 0) r->status = -EIO;
    }
    ack_pending(w, rc == 0);
}

/* After a group: ack what is durable now, keep the rest pending. committed: a txn commit
 * just returned successfully, so its fdatasync covered every earlier commit's meta page. */
static void settle_group(wal_t *w, wal_req_t *done, int committed)
{
    if (ACK_NEEDS_LATER_FLUSH && w->cfg.sync == CFG_SYNC_ALWAYS) {
        if (committed && w->pend_head) ack_pending(w, 1);
        else if (committed) w->pend_commit = 0; /* nothing waiting: just drop the mark */
    }
    if (done) {
        if (w->pend_tail) w->pend_tail->next = done;
        else w->pend_head = done;
        while (done->next) done = done->next;
        w->pend_tail = done;
    }
    if (committed) {
        w->pend_seq = w->next_seq - 1;
        w->pend_commit = 1;
    }
    /* sync: interval / none, and the two-flush build: a committed txn is as durable as it
     * will get (see maybe_sync), so ack at once. */
    if (!ACK_NEEDS_LATER_FLUSH || w->cfg.sync != CFG_SYNC_ALWAYS) ack_pending(w, 1);
    else if (!w->pend_commit && w->pend_head) ack_pending(w, 0); /* no commit among them */
}

/* Deadline us microseconds from now on CLOCK_MONOTONIC (the clock of scond and qcond). */
static struct timespec deadline_in(uint64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)(us / 1000000);
    ts.tv_nsec += (long)(us % 1000000) * 1000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* The writer has pending acks and an empty queue: wait about one flush for a request whose
 * commit would flush them anyway, else flush now. Waiting only pays when requests overlap,
 * so it is tried only when the pending group held several or the last wait caught one. */
static void settle_idle(wal_t *w, uint64_t pending_appends)
{
    if (!w->pend_head) return;
    uint64_t wait_us = w->flush_us < 50 ? 50 : w->flush_us > 2000 ? 2000 : w->flush_us;
    pthread_mutex_lock(&w->qlock);
    if (!w->q_head && !w->closing && (w->linger || pending_appends > 1)) {
        struct timespec ts = deadline_in(wait_us);
        while (!w->q_head && !w->closing)
            if (pthread_cond_timedwait(&w->qcond, &w->qlock, &ts) == ETIMEDOUT) break;
        w->linger = w->q_head != NULL;
    }
    int more = w->q_head != NULL && !w->closing;
    pthread_mutex_unlock(&w->qlock);
    if (!more) flush_pending(w);
}

/* ---- sync: always with the journal (journal.c): one flush per group ----
 * A group's records go into the LMDB txn the writer keeps open across groups and, in the same
 * step, into one journal write; the fdatasync of that write is the group's only flush before
 * its acks. Every wal.checkpoint_ms (default 100; sooner when a reader waits: wal_wake, or
 * when a DLQ, meta or flush request needs its own commit) the txn is committed: a checkpoint,
 * one flush of data.mdb with MDB_NOMETASYNC, whose meta page is durable by the next commit's
 * flush or an explicit mdb_env_sync ("durability" above). A power cut loses at most the txn since the last durable
 * checkpoint; every acked record in it is in the journal, which wal_open puts back.
 * - last_seq (what sinks read) = min(committed seq, journaled seq): a sink never sees a record
 *   that is in neither durable place, so no seq a sink delivered is ever given again.
 * - A sink's cursor commit (with its DLQ entries) is journaled too and acked with the group;
 *   the rarer requests (DLQ drop/replay, meta, consumers, wal_flush) force a checkpoint and
 *   are acked as before: after their commit and a later flush.
 * - The journal's other segment is reused only when its records are in a durable checkpoint
 *   (ckpt_seq); a checkpoint always precedes the switch, so the open txn's records lie in
 *   [txn_off, off) of the active segment, from where an aborted txn is rebuilt. */
/* Raise commit_seq (writer) or jseq (syncer), then publish their minimum. */
static void publish_visible(wal_t *w, uint64_t commit_seq, uint64_t jseq)
{
    pthread_mutex_lock(&w->vlock);
    if (commit_seq > w->commit_seq) w->commit_seq = commit_seq;
    if (jseq > w->jseq) w->jseq = jseq;
    uint64_t v = w->commit_seq < w->jseq ? w->commit_seq : w->jseq;
    int moved = v > atomic_load(&w->last_seq);
    if (moved) atomic_store(&w->last_seq, v);
    pthread_mutex_unlock(&w->vlock);
    if (!moved) return;
    pthread_mutex_lock(&w->clock);
    pthread_cond_broadcast(&w->ccond);
    pthread_mutex_unlock(&w->clock);
}

/* ---- the syncer: one fdatasync answers every group written before it began ----
 * The writer pwrites group k and hands it over here, then gathers and writes group k+1 while
 * this thread flushes; groups that queued up meanwhile share the next flush, which starts as
 * soon as the last one returns. It does not wait for more: a wait that gathered the requests
 * just answered (issue 20) doubled the requests per flush but, on a disk that was not busy
 * (flushing 40 % of the time), cost 9-24 % of the throughput at 16 connections (it saved
 * ~8 % at 64, where fewer flushes leave more CPU to HTTP); and three overlapping flushes
 * (each serving the groups written before it began) ran slower than one, as each flush took
 * longer. Still "acked means durable", and no acked entry ever lies behind a torn one: a
 * group is answered only
 * after a flush that began after it and every earlier group of its segment were written
 * (jobs are flushed and answered in order, the older segment first after a switch). After a
 * failed fdatasync the pages may be gone while later ones are not: every group from then on
 * fails (jfailed) until restart, whose recovery stops at the hole. */
typedef struct wal_sync_job {
    struct wal_sync_job *next;
    int fd;
    uint64_t seq;   /* jseq once durable */
    wal_req_t *reqs; /* answered once durable */
    size_t n_appends; /* in reqs (the writer counted them while sorting) */
} wal_sync_job_t;

static void *syncer_main(void *arg)
{
    wal_t *w = arg;
    pthread_setname_np(pthread_self(), "wal-syncer");
    pthread_mutex_lock(&w->smu);
    for (;;) {
        while (!w->sjob_head && !w->sstop) pthread_cond_wait(&w->scond, &w->smu);
        wal_sync_job_t *jl = w->sjob_head;
        if (!jl) break;
        w->sjob_head = w->sjob_tail = NULL;
        w->sbusy = 1;
        pthread_mutex_unlock(&w->smu);
        int rc = atomic_load(&w->jfailed);
        uint64_t flushes = 0, seq = 0;
        for (wal_sync_job_t *j = jl; j && !rc; j = j->next) {
            if (j->next && j->next->fd == j->fd) continue; /* one flush per run of a segment */
#ifndef SLUICE_WAL_CRASH_BROKEN_ACK /* that build acks unflushed writes: the harness must see it */
            if (fdatasync(j->fd) != 0) rc = -errno;
#endif
            flushes++;
        }
        if (rc) {
            if (!atomic_exchange(&w->jfailed, rc))
                log_error("wal: journal fdatasync failed; refusing writes until restart",
                          "error", wal_strerror(rc));
        } else {
            for (wal_sync_job_t *j = jl; j; j = j->next) seq = j->seq > seq ? j->seq : seq;
            publish_visible(w, 0, seq);
        }
        uint64_t appends = 0;
        for (wal_sync_job_t *j = jl; j && !rc; j = j->next) appends += j->n_appends;
        pthread_mutex_lock(&w->slock);
        w->st.fsyncs += flushes;
        w->st.commits += rc == 0;
        if (appends) w->st.group_hist[hist_bucket(appends)]++;
        pthread_mutex_unlock(&w->slock);
        for (wal_sync_job_t *j = jl, *nj; j; j = nj) {
            nj = j->next;
            for (wal_req_t *r = j->reqs, *nx; r; r = nx) {
                nx = r->next;
                complete(r, rc ? rc : r->status);
            }
            free(j);
        }
        pthread_mutex_lock(&w->smu);
        w->sbusy = 0;
        pthread_cond_broadcast(&w->sdone);
    }
    pthread_mutex_unlock(&w->smu);
    return NULL;
}

/* Hand a written group to the syncer (or, out of memory, flush and answer it here). */
static void sync_submit(wal_t *w, int fd, uint64_t seq, wal_req_t *reqs, size_t n_appends)
{
    wal_sync_job_t *j = malloc(sizeof *j);
    if (!j) {
        int rc = atomic_load(&w->jfailed);
        if (!rc && fdatasync(fd) != 0) rc = -errno;
        if (rc) atomic_store(&w->jfailed, rc);
        else publish_visible(w, 0, seq);
        for (wal_req_t *r = reqs, *nx; r; r = nx) {
            nx = r->next;
            complete(r, rc ? rc : r->status);
        }
        return;
    }
    *j = (wal_sync_job_t){NULL, fd, seq, reqs, n_appends};
    pthread_mutex_lock(&w->smu);
    if (w->sjob_tail) w->sjob_tail->next = j;
    else w->sjob_head = j;
    w->sjob_tail = j;
    if (w->sjob_head == j) pthread_cond_signal(&w->scond); /* it sleeps only without jobs */
    pthread_mutex_unlock(&w->smu);
}

/* Wait until every handed-over group is answered. */
static void sync_drain(wal_t *w)
{
    pthread_mutex_lock(&w->smu);
    while (w->sjob_head || w->sbusy) pthread_cond_wait(&w->sdone, &w->smu);
    pthread_mutex_unlock(&w->smu);
}

/* The open txn is gone or must go (aborted; a failed commit): make it again from LMDB and the
 * journal's records since the last checkpoint. On failure the wal refuses every request
 * until restart (the journal still holds every acked record; wal_open puts them back). */
static int rebuild_txn(wal_t *w)
{
    if (w->txn) mdb_txn_abort(w->txn);
    w->txn = NULL;
    wal_journal_drop(&w->j);
    uint64_t vis = atomic_load(&w->last_seq);
    reload_state(w);
    atomic_store(&w->last_seq, vis); /* reload_state counted the LMDB file only */
    int rc = mdb_txn_begin(w->env, NULL, 0, &w->txn);
    if (rc == 0) rc = wal_journal_reapply(w, w->txn);
    if (rc) {
        if (w->txn) mdb_txn_abort(w->txn);
        w->txn = NULL;
        w->jbroken = wal_mdb_code(rc);
        log_error("wal: cannot rebuild the write transaction from the journal; refusing "
                  "writes until restart (acked records are in the journal, put back at open)",
                  "error", wal_strerror(w->jbroken));
        return w->jbroken;
    }
    w->txn_t0 = time_mono_ms();
    return 0;
}

/* Commit the open txn (a checkpoint); with sync also flush its meta page. Requests waiting
 * for a flush after their commit (w->pend_*) are durable after either. */
static int checkpoint(wal_t *w, int sync)
{
    int rc = 0;
    if (w->txn) {
        uint64_t lsn = w->j.next_lsn - 1; /* every entry gathered so far is in this txn */
        if (lsn != w->commit_lsn && (rc = wal_journal_put_lsn(w, w->txn, lsn))) {
            log_error("wal: checkpoint failed", "error", mdb_strerror(rc));
            rebuild_txn(w);
            return wal_mdb_code(rc);
        }
        uint64_t t0 = time_mono_us();
        rc = mdb_txn_commit(w->txn);
        w->txn = NULL;
        w->flush_us = time_mono_us() - t0;
        if (rc) {
            log_error("wal: checkpoint commit failed", "error", mdb_strerror(rc));
            rebuild_txn(w);
            return wal_mdb_code(rc);
        }
        w->ckpt_lsn = w->commit_lsn; /* its meta page went out with this flush */
        w->commit_lsn = lsn;
        atomic_store(&w->unckpt, 0);
        w->j.txn_off = w->j.off;
        w->pend_commit = 1;
        pthread_mutex_lock(&w->slock);
        w->st.checkpoints++;
        w->st.checkpoint_us += w->flush_us;
        w->st.fsyncs++;
        pthread_mutex_unlock(&w->slock);
        publish_visible(w, w->next_seq - 1, 0);
        if (!sync) {
            wal_req_t *older = w->pend_head; /* committed before this one: durable now */
            if (older) ack_pending(w, 1);
            w->pend_commit = 1;
            return 0;
        }
    }
    if (sync) {
        w->pend_commit = 1;
        flush_pending(w); /* mdb_env_sync: ckpt_lsn = commit_lsn */
    }
    return 0;
}

static void complete_list(wal_req_t *r)
{
    for (wal_req_t *nx; r; r = nx) {
        nx = r->next;
        complete(r, r->status);
    }
}

static uint64_t group_commit_j(wal_t *w, wal_req_t *in, int closing)
{
    wal_req_t *done = NULL, **tail = &done;
    group_t g = {0};
    if (!w->jbroken && atomic_load(&w->jfailed)) w->jbroken = atomic_load(&w->jfailed);
    int rc = w->jbroken;
    if (rc == 0 && !w->txn) {
        if ((rc = mdb_txn_begin(w->env, NULL, 0, &w->txn))) {
            w->txn = NULL;
            log_error("wal: cannot begin a write transaction", "error", mdb_strerror(rc));
            rc = wal_mdb_code(rc);
        } else {
            w->txn_t0 = time_mono_ms();
            w->j.txn_off = w->j.off;
        }
    }
    if (rc) {
        for (wal_req_t *r = in, *nx; r; r = nx) {
            nx = r->next;
            push(&tail, r);
        }
        fail_list(done, rc);
        complete_list(done);
        return 0;
    }
    rc = run_group(w, w->txn, in, &tail, &g);
    if (rc == MDB_MAP_FULL) {
        /* The estimate let LMDB's map fill up: this group's records are out again (the txn
         * is rebuilt from the journal, which never got them); its other requests are redone. */
        log_warn("wal: LMDB map full; failing this group's appends", "dir", w->dir);
        g = (group_t){0};
        if (rebuild_txn(w) == 0) {
            int orc = 0;
            for (wal_req_t *r = done; r; r = r->next) {
                if (r->kind == WAL_REQ_APPEND || r->kind == WAL_REQ_DLQ_REPLAY) {
                    r->status = WAL_EFULL;
                    g.rejected += r->kind == WAL_REQ_APPEND;
                } else if (orc == 0) {
                    orc = apply_other(w, w->txn, r, &g);
                }
            }
            if (orc) {
                rebuild_txn(w);
                for (wal_req_t *r = done; r; r = r->next)
                    if (r->kind != WAL_REQ_APPEND && r->kind != WAL_REQ_DLQ_REPLAY)
                        r->status = wal_mdb_code(orc);
            }
        } else {
            fail_list(done, w->jbroken);
        }
        g.appends = g.rows = 0;
    } else if (rc) {
        log_error("wal: write transaction failed", "error", mdb_strerror(rc));
        w->stall_until = time_mono_ms() + 100; /* no busy loop on a persistent error */
        fail_list(done, wal_mdb_code(rc));
        rebuild_txn(w);
        g = (group_t){0};
    }

    /* One journal write, and the syncer's next fdatasync, make the group's records durable. */
    int journaled = 0, jfd = -1;
    if (w->j.len) {
        int jrc = 0;
        if (!wal_journal_fits(&w->j)) {
            /* Active segment full: checkpoint first (with its meta flush unless the other
             * segment's records are durable in LMDB already), then go on in the other one. */
            jrc = checkpoint(w, !wal_journal_other_free(&w->j, w->ckpt_lsn));
            if (jrc == 0 && !wal_journal_other_free(&w->j, w->ckpt_lsn)) jrc = -EIO;
            if (jrc == 0) wal_journal_switch(&w->j);
        }
        if (jrc == 0) jrc = wal_journal_write(&w->j, &jfd);
        if (jrc) {
            /* Not durable: answer an error (a retry may duplicate, never lose). */
            log_error("wal: journal write failed", "error", wal_strerror(jrc));
            if (w->txn) rebuild_txn(w);
            else wal_journal_drop(&w->j);
            for (wal_req_t *r = done; r; r = r->next)
                if ((r->kind == WAL_REQ_APPEND || r->kind == WAL_REQ_DLQ_REPLAY ||
                     r->kind == WAL_REQ_CURSOR) && !r->status)
                    r->status = jrc;
            g.appends = g.rows = 0;
        } else {
            journaled = 1;
            atomic_store(&w->unckpt, 1);
        }
    }
    pthread_mutex_lock(&w->slock);
    w->st.appends += g.appends;
    w->st.appended_rows += g.rows;
    w->st.rejected_full += g.rejected; /* group_hist: by the syncer, per flush */
    pthread_mutex_unlock(&w->slock);

    wal_publish_state(w); /* before the acks: a caller's next wal_stats sees its append */
    /* Failures are answered now; appends and cursor commits (journaled) by the syncer once
     * flushed; the others once their commit is durable. */
    wal_req_t *others = NULL, **otail = &others, *jdone = NULL, **jtail = &jdone;
    size_t n_japp = 0;
    for (wal_req_t *r = done, *nx; r; r = nx) {
        nx = r->next;
        if (r->status) {
            complete(r, r->status);
        } else if (r->kind == WAL_REQ_APPEND || r->kind == WAL_REQ_CURSOR) {
            push(&jtail, r);
            n_japp += r->kind == WAL_REQ_APPEND;
        } else {
            push(&otail, r);
        }
    }
    if (journaled) {
        sync_submit(w, jfd, w->next_seq - 1, jdone, n_japp);
    } else if (jdone) { /* cannot happen: each of them gathered a journal entry */
        fail_list(jdone, -EIO);
        complete_list(jdone);
    }
    int now = others || closing || atomic_load(&w->commit_now) ||
              time_mono_ms() >= w->txn_t0 + w->cfg.checkpoint_ms || w->j.off - w->j.txn_off > J_SEG_BYTES / 2;
    if (w->txn && now) {
        atomic_store(&w->commit_now, 0);
        int crc = checkpoint(w, 0);
        if (crc) {
            fail_list(others, crc);
            complete_list(others);
            others = NULL;
        }
    }
    if (others) {
        if (w->pend_tail) w->pend_tail->next = others;
        else w->pend_head = others;
        w->pend_tail = others;
        while (w->pend_tail->next) w->pend_tail = w->pend_tail->next;
    }
    return g.appends;
}

static uint64_t group_commit(wal_t *w, wal_req_t *in, int closing)
{
    if (jmode(w)) return group_commit_j(w, in, closing);
    wal_req_t *done = NULL, **tail = &done;
    group_t g = {0};
    MDB_txn *txn = NULL;
    int committed = 0;
    int rc = mdb_txn_begin(w->env, NULL, 0, &txn);
    if (rc) {
        tail = &done;
        for (wal_req_t *r = in, *nx; r; r = nx) {
            nx = r->next;
            push(&tail, r);
        }
        fail_list(done, wal_mdb_code(rc));
        log_error("wal: cannot begin a write transaction", "error", mdb_strerror(rc));
        goto callbacks;
    }
    rc = run_group(w, txn, in, &tail, &g);
    if (rc == 0) {
        if (g.dirty) {
            uint64_t t0 = time_mono_us();
            rc = mdb_txn_commit(txn); /* see "durability" above */
            w->flush_us = time_mono_us() - t0;
            committed = rc == 0;
        } else {
            mdb_txn_abort(txn);
        }
        txn = NULL;
    }
    if (rc == MDB_MAP_FULL) {
        /* The estimate let LMDB's map fill up: nothing of this txn happened. Fail the
         * appends (and replays) as full, then redo the other requests in a txn of their
         * own. Acked data is untouched: it was committed by earlier txns. */
        if (txn) mdb_txn_abort(txn);
        txn = NULL;
        reload_state(w);
        log_warn("wal: LMDB map full; failing this group's appends", "dir", w->dir);
        g = (group_t){0};
        rc = mdb_txn_begin(w->env, NULL, 0, &txn);
        for (wal_req_t *r = done; r; r = r->next) {
            if (r->kind == WAL_REQ_APPEND || r->kind == WAL_REQ_DLQ_REPLAY) {
                r->status = WAL_EFULL;
                g.rejected += r->kind == WAL_REQ_APPEND;
            } else if (rc == 0) {
                rc = apply_other(w, txn, r, &g);
            }
        }
        if (rc == 0 && g.dirty) committed = (rc = mdb_txn_commit(txn)) == 0;
        else if (rc == 0) mdb_txn_abort(txn);
        else if (txn) mdb_txn_abort(txn);
        txn = NULL;
        if (rc) {
            for (wal_req_t *r = done; r; r = r->next)
                if (r->kind != WAL_REQ_APPEND && r->kind != WAL_REQ_DLQ_REPLAY)
                    r->status = wal_mdb_code(rc);
            reload_state(w);
        }
        g.appends = g.rows = 0;
        rc = 0;
        goto publish;
    }
    if (rc) {
        if (txn) mdb_txn_abort(txn);
        log_error("wal: write transaction failed", "error", mdb_strerror(rc));
        w->stall_until = time_mono_ms() + 100; /* no busy loop on a persistent error */
        fail_list(done, wal_mdb_code(rc));
        reload_state(w);
        g = (group_t){0};
        goto callbacks;
    }
publish:
    if (g.dirty && w->cfg.sync == CFG_SYNC_INTERVAL) w->unsynced = 1;
callbacks:
    pthread_mutex_lock(&w->slock);
    if (committed) {
        w->st.commits++;
        if (w->cfg.sync == CFG_SYNC_ALWAYS) w->st.fsyncs += FLUSHES_PER_COMMIT;
    }
    w->st.appends += g.appends;
    w->st.appended_rows += g.rows;
    w->st.rejected_full += g.rejected;
    if (g.appends) w->st.group_hist[hist_bucket(g.appends)]++;
    pthread_mutex_unlock(&w->slock);
    wal_publish_state(w);
    /* Acked only once durable (see "durability"): a crash after any callback cannot lose
     * what it reported. */
    settle_group(w, done, committed);
    return g.appends;
}

/* sync: interval. Acks went out before this fsync: a power loss can lose up to one
 * interval of acked appends (documented); a process crash loses nothing (page cache). */
static void maybe_sync(wal_t *w, int force)
{
    if (w->cfg.sync != CFG_SYNC_INTERVAL || !w->unsynced) return;
    uint64_t now = time_mono_ms();
    if (!force && now < w->last_sync_ms + w->cfg.sync_interval_ms) return;
    int rc = mdb_env_sync(w->env, 1);
    if (rc) log_error("wal: fsync failed", "error", mdb_strerror(rc));
    w->unsynced = 0;
    w->last_sync_ms = now;
    pthread_mutex_lock(&w->slock);
    w->st.fsyncs++;
    pthread_mutex_unlock(&w->slock);
}

/* When the writer must wake up without a request: 0 = not before one arrives. */
static uint64_t next_wake(const wal_t *w)
{
    uint64_t t = 0;
    if (w->held_head) t = w->held_head->deadline;
    if (w->cfg.sync == CFG_SYNC_INTERVAL && w->unsynced) {
        uint64_t s = w->last_sync_ms + w->cfg.sync_interval_ms;
        if (!t || s < t) t = s;
    }
    if (w->txn) { /* the journal's checkpoint */
        uint64_t c = w->txn_t0 + w->cfg.checkpoint_ms;
        if (!t || c < t) t = c;
    }
    return t;
}

static void *writer_main(void *arg)
{
    wal_t *w = arg;
    pthread_setname_np(pthread_self(), "wal-writer");
    for (;;) {
        pthread_mutex_lock(&w->qlock);
        while (!w->q_head && !w->closing && !truncation_pending(w) &&
               !(w->txn && atomic_load(&w->commit_now))) {
            uint64_t wake = next_wake(w);
            if (!wake) {
                pthread_cond_wait(&w->qcond, &w->qlock);
                continue;
            }
            if (time_mono_ms() >= wake) break;
            struct timespec ts = {(time_t)(wake / 1000), (long)(wake % 1000) * 1000000L};
            if (pthread_cond_timedwait(&w->qcond, &w->qlock, &ts) == ETIMEDOUT) break;
        }
        wal_req_t *in = w->q_head;
        w->q_head = w->q_tail = NULL;
        int closing = w->closing;
        pthread_mutex_unlock(&w->qlock);

        uint64_t appends = group_commit(w, in, closing);
        maybe_sync(w, 0);
        settle_idle(w, appends);
        if (closing) {
            pthread_mutex_lock(&w->qlock);
            int empty = w->q_head == NULL;
            pthread_mutex_unlock(&w->qlock);
            if (empty) break;
        }
    }
    /* Closing: appends still held for room will not get it. */
    wal_req_t *r = w->held_head;
    w->held_head = w->held_tail = NULL;
    for (wal_req_t *nx; r; r = nx) {
        nx = r->next;
        complete(r, WAL_ECLOSED);
    }
    maybe_sync(w, 1);
    if (jmode(w)) sync_drain(w);
    if (jmode(w) && !w->jbroken) /* clean stop: all in LMDB, durable */
        w->clean_stop = checkpoint(w, 1) == 0 && w->ckpt_lsn == w->commit_lsn && !w->jbroken &&
                        !atomic_load(&w->jfailed);
    else if (w->pend_head) flush_pending(w);
    return NULL;
}

static void wal_syncer_stop(wal_t *w)
{
    if (!w->syncer_started) return;
    pthread_mutex_lock(&w->smu);
    w->sstop = 1;
    pthread_cond_signal(&w->scond);
    pthread_mutex_unlock(&w->smu);
    pthread_join(w->syncer, NULL);
    w->syncer_started = 0;
}

int wal_writer_start(wal_t *w)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_destroy(&w->qcond);
    pthread_cond_init(&w->qcond, &ca);
    pthread_condattr_destroy(&ca);
    w->pend_seq = atomic_load(&w->last_seq);
    w->linger = 1;
    int rc;
    if (jmode(w)) {
        if ((rc = pthread_create(&w->syncer, NULL, syncer_main, w))) return -rc;
        w->syncer_started = 1;
    }
    rc = pthread_create(&w->writer, NULL, writer_main, w);
    if (rc) {
        wal_syncer_stop(w);
        return -rc;
    }
    w->writer_started = 1;
    return 0;
}

void wal_writer_stop(wal_t *w)
{
    pthread_mutex_lock(&w->qlock);
    w->closing = 1;
    pthread_cond_signal(&w->qcond);
    pthread_mutex_unlock(&w->qlock);
    pthread_join(w->writer, NULL);
    w->writer_started = 0;
    wal_syncer_stop(w);
}
