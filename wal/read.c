/* read.c — the read side of the log: batches of records for sinks and the CLI, cursors, DLQ
 * listing, meta and stats. Every read is its own read-only LMDB transaction (MDB_NOTLS, so
 * any thread may read), and everything returned is copied out before it ends. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "wal/wal_internal.h"

/* Views gathered inside a read txn: slices point into the txn's snapshot of the map. */
typedef struct {
    wal_env_view_t *v;
    uint64_t *keys;
    size_t *raw;
    size_t n, cap, chars, kvs;
} views_t;

static int views_add(views_t *vs, uint64_t key, size_t raw, const wal_env_view_t *v)
{
    if (vs->n == vs->cap) {
        size_t cap = vs->cap ? vs->cap * 2 : 64;
        wal_env_view_t *nv = realloc(vs->v, cap * sizeof *nv);
        if (!nv) return -ENOMEM;
        vs->v = nv;
        uint64_t *nk = realloc(vs->keys, cap * sizeof *nk);
        if (!nk) return -ENOMEM;
        vs->keys = nk;
        size_t *nr = realloc(vs->raw, cap * sizeof *nr);
        if (!nr) return -ENOMEM;
        vs->raw = nr;
        vs->cap = cap;
    }
    vs->v[vs->n] = *v;
    vs->keys[vs->n] = key;
    vs->raw[vs->n] = raw;
    vs->n++;
    vs->chars += wal_env_copy_size(v);
    vs->kvs += v->n_settings;
    return 0;
}

static void views_free(views_t *vs)
{
    free(vs->v);
    free(vs->keys);
    free(vs->raw);
}

/* One allocation: [items][wal_kv_t slots][chars]. */
static void *arena_alloc(const views_t *vs, size_t item_size, wal_kv_t **kv, char **chars)
{
    size_t items = vs->n * item_size;
    items = (items + 15) & ~(size_t)15;
    char *mem = malloc(items + vs->kvs * sizeof(wal_kv_t) + vs->chars + 1);
    if (!mem) return NULL;
    *kv = (wal_kv_t *)(mem + items);
    *chars = mem + items + vs->kvs * sizeof(wal_kv_t);
    return mem;
}

typedef int (*parse_fn)(const void *p, size_t n, wal_env_view_t *v);

/* Gather the views of dbi's entries with key > after (at most max, about max_bytes; 0 = no
 * bound; only sink's when sink != NULL) inside a read txn left open in *txn: the views point
 * into its snapshot, so the caller copies them out, then aborts *txn. */
static int gather(wal_t *w, MDB_dbi dbi, parse_fn parse, uint64_t after, uint64_t upto,
                  size_t max, size_t max_bytes, const char *sink, MDB_txn **txn,
                  views_t *vs)
{
    MDB_cursor *c = NULL;
    uint8_t kb[8];
    size_t bytes = 0;
    int rc;
    *txn = NULL;
    if (after == UINT64_MAX) return 0;
    if ((rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, txn))) goto out;
    if ((rc = mdb_cursor_open(*txn, dbi, &c))) goto out;
    wal_put_be64(kb, after + 1);
    MDB_val k = {8, kb}, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (max && vs->n >= max) break;
        if (k.mv_size == 8 && wal_get_be64(k.mv_data) > upto) break;
        if (max_bytes && vs->n > 0 && bytes + v.mv_size > max_bytes) break;
        wal_env_view_t view;
        if (k.mv_size != 8 || parse(v.mv_data, v.mv_size, &view)) {
            rc = WAL_ECORRUPT;
            goto out;
        }
        if (sink && (view.sink.n != strlen(sink) || memcmp(view.sink.p, sink, view.sink.n)))
            continue;
        if ((rc = views_add(vs, wal_get_be64(k.mv_data), v.mv_size, &view))) goto out;
        bytes += v.mv_size;
    }
    if (rc == MDB_NOTFOUND) rc = 0;
out:
    if (c) mdb_cursor_close(c);
    return wal_mdb_code(rc);
}

/* LMDB maps data.mdb PROT_READ, MAP_SHARED (mdb.c, mdb_env_map; no MDB_WRITEMAP here).
 * Records are copied out of LMDB's map (sinks' reads, the writer's truncation), yet the pages
 * read stay mapped into the process (RssFile): over a day the whole file passes through the
 * map. Every MAP_RELEASE bytes read, drop the map's page table entries (MADV_DONTNEED on a read-only shared file mapping
 * only unmaps: the next access maps the page cache page again, the data is the file's). */
#define MAP_RELEASE (2u << 20)
void wal_map_touched(wal_t *w, size_t bytes)
{
    if (atomic_fetch_add(&w->map_read, bytes) + bytes < MAP_RELEASE) return;
    atomic_store(&w->map_read, 0);
    MDB_envinfo info;
    if (!w->map_base || mdb_env_info(w->env, &info)) return;
    size_t used = ((size_t)info.me_last_pgno + 1) * w->psize, pg = (size_t)sysconf(_SC_PAGESIZE);
    if (used > w->map_len) used = w->map_len;
    madvise(w->map_base, (used + pg - 1) / pg * pg, MADV_DONTNEED);
}

/* LMDB does not tell where it mapped the file (me_mapaddr is set only with MDB_FIXEDMAP):
 * the process's own map list does. Without it nothing is released. */
void wal_find_map(wal_t *w)
{
    char path[PATH_MAX], real[PATH_MAX], line[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/data.mdb", w->dir);
    if (!realpath(path, real)) return;
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        char perms[8];
        int n = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &lo, &hi, perms, &n) < 3 || !n) continue;
        char *name = line + n;
        name[strcspn(name, "\n")] = '\0';
        if (strcmp(name, real) == 0 && perms[0] == 'r' && perms[1] == '-' && perms[3] == 's' &&
            hi - lo > w->map_len) {
            w->map_base = (void *)lo;
            w->map_len = hi - lo;
        }
    }
    fclose(f);
}

int wal_read(wal_t *w, uint64_t after, size_t max_records, size_t max_bytes, wal_batch_t *out)
{
    MDB_txn *txn;
    views_t vs = {0};
    memset(out, 0, sizeof *out);
    /* Only what is acked: a committed record may still wait for the flush that makes it
     * durable (writer.c, "durability"); last_seq moves when it is. A read-only open has no
     * writer, and reads what is committed. */
    uint64_t upto = w->readonly ? UINT64_MAX : atomic_load(&w->last_seq);
    int rc = gather(w, w->dbi_log, wal_env_parse_record, after, upto, max_records, max_bytes,
                    NULL, &txn, &vs);
    if (rc == 0 && vs.n) {
        wal_kv_t *kv;
        char *chars;
        out->mem = arena_alloc(&vs, sizeof(wal_record_t), &kv, &chars);
        if (!out->mem) {
            rc = -ENOMEM;
        } else {
            out->recs = out->mem;
            for (size_t i = 0; i < vs.n; i++)
                wal_env_to_record(&vs.v[i], vs.keys[i], vs.raw[i], &out->recs[i], &kv, &chars);
            out->n = vs.n;
        }
    }
    if (txn) mdb_txn_abort(txn);
    views_free(&vs);
    size_t read = 0;
    for (size_t i = 0; rc == 0 && i < out->n; i++) read += out->recs[i].raw_bytes;
    if (read) wal_map_touched(w, read);
    return rc;
}

void wal_batch_free(wal_batch_t *b)
{
    if (!b) return;
    free(b->mem);
    memset(b, 0, sizeof *b);
}

int wal_wait(wal_t *w, uint64_t after, uint32_t timeout_ms)
{
    struct timespec ts;
    time_mono_deadline(&ts, timeout_ms);
    int rc = 0;
    pthread_mutex_lock(&w->clock);
    uint64_t wakes = w->wakes;
    while (atomic_load(&w->last_seq) <= after) {
        if (w->closed) {
            rc = WAL_ECLOSED;
            break;
        }
        if (w->wakes != wakes) {
            rc = WAL_ETIMEDOUT;
            break;
        }
        if (pthread_cond_timedwait(&w->ccond, &w->clock, &ts) == ETIMEDOUT) {
            rc = atomic_load(&w->last_seq) > after ? 0 : WAL_ETIMEDOUT;
            break;
        }
    }
    pthread_mutex_unlock(&w->clock);
    return rc;
}

void wal_wake(wal_t *w)
{
    /* With the journal, acked records reach readers at the next checkpoint: now. */
    atomic_store(&w->commit_now, 1);
    pthread_mutex_lock(&w->qlock);
    pthread_cond_signal(&w->qcond);
    pthread_mutex_unlock(&w->qlock);
    pthread_mutex_lock(&w->clock);
    w->wakes++;
    pthread_cond_broadcast(&w->ccond);
    pthread_mutex_unlock(&w->clock);
}

uint64_t wal_last_seq(wal_t *w)
{
    return atomic_load(&w->last_seq);
}

uint64_t wal_log_id(wal_t *w)
{
    return w->log_id;
}

/* Cursor commits (and their DLQ entries) are acked once journaled, before the checkpoint
 * that lets a read txn see them: a reader of cursors or the DLQ asks for it first. */
static void catch_up(wal_t *w)
{
    if (!w->readonly && atomic_load(&w->unckpt)) wal_flush(w);
}

int wal_cursor_get(wal_t *w, const char *sink, wal_cursor_t *out)
{
    MDB_txn *txn;
    if (!sink || !*sink || strlen(sink) > WAL_MAX_NAME) return WAL_EINVAL;
    catch_up(w);
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc) return wal_mdb_code(rc);
    MDB_val k = {strlen(sink), (void *)sink}, v;
    rc = mdb_get(txn, w->dbi_cur, &k, &v);
    if (rc == 0 && v.mv_size != 24) rc = WAL_ECORRUPT;
    if (rc == 0) {
        out->acked = wal_get_be64(v.mv_data);
        out->inflight_first = wal_get_be64((uint8_t *)v.mv_data + 8);
        out->inflight_last = wal_get_be64((uint8_t *)v.mv_data + 16);
    }
    mdb_txn_abort(txn);
    return wal_mdb_code(rc);
}

int wal_dlq_list(wal_t *w, const char *sink, uint64_t after_id, size_t max, wal_dlq_list_t *out)
{
    MDB_txn *txn;
    views_t vs = {0};
    memset(out, 0, sizeof *out);
    catch_up(w);
    int rc = gather(w, w->dbi_dlq, wal_env_parse_dlq, after_id, UINT64_MAX, max, 0, sink, &txn,
                    &vs);
    if (rc == 0 && vs.n) {
        wal_kv_t *kv;
        char *chars;
        out->mem = arena_alloc(&vs, sizeof(wal_dlq_entry_t), &kv, &chars);
        if (!out->mem) {
            rc = -ENOMEM;
        } else {
            out->e = out->mem;
            for (size_t i = 0; i < vs.n; i++)
                wal_env_to_dlq(&vs.v[i], vs.keys[i], &out->e[i], &kv, &chars);
            out->n = vs.n;
        }
    }
    if (txn) mdb_txn_abort(txn);
    views_free(&vs);
    return rc;
}

void wal_dlq_free(wal_dlq_list_t *l)
{
    if (!l) return;
    free(l->mem);
    memset(l, 0, sizeof *l);
}

int wal_meta_get(wal_t *w, const char *key, char *buf, size_t buflen, size_t *len_out)
{
    MDB_txn *txn;
    if (!key || !*key || strlen(key) > WAL_MAX_NAME) return WAL_EINVAL;
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc) return wal_mdb_code(rc);
    MDB_val k = {strlen(key), (void *)key}, v;
    rc = mdb_get(txn, w->dbi_meta, &k, &v);
    if (rc == 0) {
        if (len_out) *len_out = v.mv_size;
        if (buf && buflen) {
            size_t n = v.mv_size < buflen - 1 ? v.mv_size : buflen - 1;
            memcpy(buf, v.mv_data, n);
            buf[n] = '\0';
        }
    }
    mdb_txn_abort(txn);
    return wal_mdb_code(rc);
}

int wal_stats(wal_t *w, wal_stats_t *out)
{
    pthread_mutex_lock(&w->slock);
    *out = w->st;
    pthread_mutex_unlock(&w->slock);
    return 0;
}
