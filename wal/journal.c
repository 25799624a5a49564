/* journal.c — the append journal of wal.sync: always. A group of appends is acked after one
 * write and one fdatasync of the journal; the records also go into the LMDB txn that the
 * writer keeps open across groups and commits every wal.checkpoint_ms (the checkpoint).
 * LMDB stays the log that sinks read, truncate and count; the journal only holds what an
 * LMDB commit has not yet made durable, and at open it gives that back (wal_journal_open).
 *
 * Why: an LMDB commit is durable only after two flushes in a row (data pages, then the meta
 * page naming them: mdb.c, mdb_txn_commit), so acking on LMDB alone costs two device flushes
 * of latency per ack whatever the grouping. The journal costs one.
 *
 * Files: DIR/journal.0 and DIR/journal.1, two segments, each J_SEG_BYTES of zeros written at
 * creation (so that later writes overwrite allocated blocks and fdatasync has no file
 * metadata to flush). Writes go to the active segment, sequentially from offset 0. An entry:
 *
 *   u32 magic "SLJ2" | u32 len | u64 epoch | u64 lsn | u64 key | u64 aux | u32 crc |
 *   u32 flags | payload (len bytes)
 *
 * little-endian. lsn: the journal's own sequence, one per entry, growing forever (across
 * segments and restarts). flags: bit 0 (J_END) ends a unit, bits 8-15 the type:
 * - J_LOG: a log record, key = its seq, payload = its envelope as stored in LMDB; a unit is
 *   one request (a request larger than max_record_bytes is several records, put back all or
 *   none); aux on the unit's last record = the DLQ entry it was moved back from
 *   (wal_dlq_replay; 0 = none), deleted when it is put back;
 * - J_DLQ: a DLQ entry, key = its id, payload = its envelope;
 * - J_CURSOR: a sink's cursor, payload = acked, inflight_first, inflight_last (u64 big-endian
 *   as in LMDB) then the sink's name; it ends the unit of a cursor commit (its DLQ entries
 *   first: rows are never neither delivered nor dead-lettered).
 * crc = zlib crc32 of the header (crc field 0) and the payload. Every time a segment is
 * started again from offset 0 it gets a new epoch, higher than any on disk.
 *
 * What a segment holds after a power cut: the entries of its epoch, from offset 0, up to the
 * first one that does not check (bad magic, other epoch, bad crc, lsn not above the previous
 * one): a group is written only after the previous group's fdatasync returned, so only the
 * last group can be torn, and no acked entry lies behind a torn one. Older bytes further on
 * belong to an older epoch (or are zeros). A unit whose last entry is missing is dropped.
 *
 * Each checkpoint stores, in the same LMDB txn, meta "journal_lsn": the last lsn whose effect
 * the txn holds. Recovery applies, in lsn order, every whole unit above the journal_lsn of
 * the durable LMDB state (a log record whose seq LMDB already has is skipped: a checkpoint
 * can precede the journal write of its group). A segment is restarted only when all its
 * entries are at or below a durable journal_lsn, so the two segments together hold every
 * acked change LMDB may have lost. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include "common/log.h"
#include "wal/wal_internal.h"

#define J_MAGIC 0x324a4c53u /* "SLJ2" */
#define J_HDR 48
#define J_END 1u
#define J_CRC 40 /* offset of the crc field */

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8) p[i] = (uint8_t)v;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8) p[i] = (uint8_t)v;
}

static uint32_t get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static uint32_t rec_crc(const uint8_t *hdr, const void *payload, size_t len)
{
    uint8_t h[J_HDR];
    memcpy(h, hdr, J_HDR);
    memset(h + J_CRC, 0, 4);
    uLong c = crc32(0L, Z_NULL, 0);
    c = crc32(c, h, J_HDR);
    /* zlib takes uInt lengths: feed large payloads in pieces */
    const uint8_t *p = payload;
    while (len) {
        uInt n = len > (1u << 30) ? 1u << 30 : (uInt)len;
        c = crc32(c, p, n);
        p += n;
        len -= n;
    }
    return (uint32_t)c;
}

/* ---- gathering and writing a group ---- */

/* A payload written from where it lies: it follows buf[0, at) in the group. */
struct wal_jref {
    size_t at;
    const void *p;
    size_t n;
};

int wal_journal_add(wal_journal_t *j, int type, uint64_t key, uint64_t aux, int end, int keep,
                    const void *p1, size_t n1, const void *p2, size_t n2)
{
    size_t n = n1 + n2;
    if (n > UINT32_MAX) return WAL_EINVAL;
    int ref = keep && n1 >= J_REF_MIN && !n2;
    if (ref && j->n_refs == j->cap_refs) {
        size_t c = j->cap_refs ? j->cap_refs * 2 : 8;
        struct wal_jref *nr = realloc(j->refs, c * sizeof *nr);
        if (!nr) return -ENOMEM;
        j->refs = nr;
        j->cap_refs = c;
    }
    size_t need = j->blen + J_HDR + (ref ? 0 : n);
    if (need > j->cap) {
        size_t c = j->cap ? j->cap : 64 << 10;
        while (c < need) c *= 2;
        char *nb = realloc(j->buf, c);
        if (!nb) return -ENOMEM;
        j->buf = nb;
        j->cap = c;
    }
    uint8_t *h = (uint8_t *)j->buf + j->blen;
    put_le32(h, J_MAGIC);
    put_le32(h + 4, (uint32_t)n);
    put_le64(h + 8, j->epoch);
    put_le64(h + 16, j->next_lsn);
    put_le64(h + 24, key);
    put_le64(h + 32, aux);
    put_le32(h + J_CRC, 0);
    put_le32(h + 44, (end ? J_END : 0) | (uint32_t)type << 8);
    j->blen += J_HDR;
    if (ref) {
        j->refs[j->n_refs++] = (struct wal_jref){j->blen, p1, n1};
        put_le32(h + J_CRC, rec_crc(h, p1, n1));
    } else {
        if (n1) memcpy(h + J_HDR, p1, n1);
        if (n2) memcpy(h + J_HDR + n1, p2, n2);
        put_le32(h + J_CRC, rec_crc(h, h + J_HDR, n));
        j->blen += n;
    }
    j->len += J_HDR + n;
    j->buf_max_lsn = j->next_lsn++;
    return 0;
}

/* A group buffer grown past this for one large request is given back once written: else
 * one 64 MiB insert kept 64 MiB (and more) of RSS for the life of the process. */
#define J_BUF_KEEP (1u << 20)

void wal_journal_drop(wal_journal_t *j)
{
    j->len = j->blen = j->n_refs = 0;
    j->buf_max_lsn = 0;
    if (j->cap > J_BUF_KEEP) {
        free(j->buf);
        j->buf = NULL;
        j->cap = 0;
    }
}

int wal_journal_fits(const wal_journal_t *j)
{
    return j->off == 0 || j->off + j->len <= j->size[j->cur];
}

int wal_journal_other_free(const wal_journal_t *j, uint64_t ckpt_lsn)
{
    return j->max_lsn[1 - j->cur] <= ckpt_lsn;
}

/* The epoch in the gathered records is the active segment's: rewrite it after a switch. */
static void restamp(wal_journal_t *j)
{
    size_t r = 0;
    for (size_t off = 0; off + J_HDR <= j->blen;) {
        uint8_t *h = (uint8_t *)j->buf + off;
        size_t n = get_le32(h + 4);
        off += J_HDR;
        int ref = r < j->n_refs && j->refs[r].at == off;
        put_le64(h + 8, j->epoch);
        put_le32(h + J_CRC, rec_crc(h, ref ? j->refs[r].p : h + J_HDR, n));
        if (ref) r++;
        else off += n;
    }
}

void wal_journal_switch(wal_journal_t *j)
{
    j->cur = 1 - j->cur;
    j->off = 0;
    j->txn_off = 0;
    j->epoch = ++j->top_epoch;
    j->max_lsn[j->cur] = 0;
    /* A group larger than a segment made this one grow; all it holds is in a durable
     * checkpoint now, so give the disk back (a lost shrink leaves older-epoch bytes, which
     * recovery stops at, as it does anywhere past the active epoch). */
    if (j->size[j->cur] > J_SEG_BYTES && ftruncate(j->fd[j->cur], J_SEG_BYTES) == 0)
        j->size[j->cur] = J_SEG_BYTES;
    restamp(j);
}

static int pwrite_all(int fd, const char *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

/* pwritev until all of iov[0, cnt) is written (iov is consumed). */
static int pwritev_all(int fd, struct iovec *iov, int cnt, uint64_t off)
{
    while (cnt > 0) {
        ssize_t w = pwritev(fd, iov, cnt > IOV_MAX ? IOV_MAX : cnt, (off_t)off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return w < 0 ? -errno : -EIO;
        off += (uint64_t)w;
        size_t left = (size_t)w;
        for (; cnt > 0 && left >= iov->iov_len; iov++, cnt--) left -= iov->iov_len;
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

/* The group from buf with the referenced payloads in place: one pwritev. */
static int write_refs(wal_journal_t *j, int fd)
{
    struct iovec *iov = malloc((2 * j->n_refs + 1) * sizeof *iov);
    if (!iov) return -ENOMEM;
    int cnt = 0;
    size_t at = 0;
    for (size_t i = 0; i < j->n_refs; i++) {
        if (j->refs[i].at > at) iov[cnt++] = (struct iovec){j->buf + at, j->refs[i].at - at};
        iov[cnt++] = (struct iovec){(void *)j->refs[i].p, j->refs[i].n};
        at = j->refs[i].at;
    }
    if (j->blen > at) iov[cnt++] = (struct iovec){j->buf + at, j->blen - at};
    int rc = pwritev_all(fd, iov, cnt, j->off);
    free(iov);
    return rc;
}

int wal_journal_write(wal_journal_t *j, int *fd_out)
{
    if (!j->len) return 0;
    int fd = j->fd[j->cur];
    int rc = j->n_refs ? write_refs(j, fd) : pwrite_all(fd, j->buf, j->blen, j->off);
    if (rc) return rc;
    *fd_out = fd;
    j->off += j->len;
    if (j->off > j->size[j->cur]) j->size[j->cur] = j->off;
    if (j->buf_max_lsn > j->max_lsn[j->cur]) j->max_lsn[j->cur] = j->buf_max_lsn;
    wal_journal_drop(j);
    return 0;
}

/* ---- reading back ---- */

typedef struct {
    uint64_t lsn, key, aux;
    int type, end;
    const uint8_t *p;
    size_t n;
} jrec_t;

typedef struct {
    jrec_t *r;
    size_t n, cap;
    uint64_t epoch, max_lsn;
} jlist_t;

/* The valid entries of one segment image (see the top of this file). */
static int parse(const uint8_t *img, size_t len, jlist_t *out)
{
    uint64_t prev = 0;
    out->epoch = 0;
    for (size_t off = 0; off + J_HDR <= len;) {
        const uint8_t *h = img + off;
        if (get_le32(h) != J_MAGIC) break;
        size_t n = get_le32(h + 4);
        uint64_t epoch = get_le64(h + 8), lsn = get_le64(h + 16);
        if (n > len - off - J_HDR) break;
        if (off == 0) out->epoch = epoch;
        else if (epoch != out->epoch) break;
        uint32_t flags = get_le32(h + 44);
        int type = (int)(flags >> 8);
        if (lsn <= prev || (flags & ~(J_END | 0xff00u)) || type < J_LOG || type > J_CURSOR) break;
        if (rec_crc(h, h + J_HDR, n) != get_le32(h + J_CRC)) break;
        if (out->n == out->cap) {
            size_t c = out->cap ? out->cap * 2 : 256;
            jrec_t *nr = realloc(out->r, c * sizeof *nr);
            if (!nr) return -ENOMEM;
            out->r = nr;
            out->cap = c;
        }
        out->r[out->n++] = (jrec_t){lsn, get_le64(h + 24), get_le64(h + 32), type,
                                    (flags & J_END) != 0, h + J_HDR, n};
        prev = lsn;
        off += J_HDR + n;
    }
    /* A unit whose last entry did not make it is not applied at all. Its lsns still count
     * as written (max_lsn): the segment is not reused for them, nor are the lsns. */
    if (out->n) out->max_lsn = out->r[out->n - 1].lsn;
    while (out->n && !out->r[out->n - 1].end) out->n--;
    if (out->max_lsn == 0) out->epoch = 0;
    return 0;
}

static int read_range(int fd, uint64_t from, uint64_t to, uint8_t **out)
{
    size_t n = (size_t)(to - from);
    uint8_t *b = malloc(n ? n : 1);
    if (!b) return -ENOMEM;
    for (size_t got = 0; got < n;) {
        ssize_t r = pread(fd, b + got, n - got, (off_t)(from + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? -errno : -EIO;
            free(b);
            return e;
        }
        got += (size_t)r;
    }
    *out = b;
    return 0;
}

/* Apply one entry to txn and to the writer state. */
static int apply_one(wal_t *w, MDB_txn *txn, const jrec_t *r)
{
    uint8_t kb[8];
    int rc;
    if (r->type == J_LOG) {
        if (r->key < w->next_seq) return 0; /* LMDB has it (a checkpoint came first) */
        wal_env_view_t v;
        if (wal_env_parse_record(r->p, r->n, &v)) return WAL_ECORRUPT;
        wal_put_be64(kb, r->key);
        MDB_val k = {8, kb}, val = {r->n, (void *)r->p};
        if ((rc = mdb_put(txn, w->dbi_log, &k, &val, MDB_APPEND))) return rc;
        if (!w->n_records) w->first_seq = r->key;
        w->n_records++;
        w->live_bytes += wal_rec_cost(w, r->n);
        w->next_seq = r->key + 1;
        if (r->end && r->aux) {
            wal_put_be64(kb, r->aux);
            k = (MDB_val){8, kb};
            rc = mdb_del(txn, w->dbi_dlq, &k, NULL);
            if (rc == 0) w->n_dlq--;
            else if (rc != MDB_NOTFOUND) return rc;
        }
        return 0;
    }
    if (r->type == J_DLQ) {
        wal_env_view_t v;
        if (wal_env_parse_dlq(r->p, r->n, &v)) return WAL_ECORRUPT;
        wal_put_be64(kb, r->key);
        MDB_val k = {8, kb}, val = {r->n, (void *)r->p};
        rc = mdb_put(txn, w->dbi_dlq, &k, &val, MDB_NOOVERWRITE);
        if (rc == MDB_KEYEXIST) return 0;
        if (rc) return rc;
        w->n_dlq++;
        if (r->key >= w->next_dlq_id) w->next_dlq_id = r->key + 1;
        return 0;
    }
    /* J_CURSOR: acked never moves back */
    if (r->n <= 24 || r->n - 24 > WAL_MAX_NAME) return WAL_ECORRUPT;
    MDB_val k = {r->n - 24, (void *)(r->p + 24)}, old;
    uint8_t b[24];
    memcpy(b, r->p, 24);
    rc = mdb_get(txn, w->dbi_cur, &k, &old);
    if (rc == 0 && old.mv_size == 24 && wal_get_be64(old.mv_data) > wal_get_be64(b))
        memcpy(b, old.mv_data, 8);
    else if (rc && rc != MDB_NOTFOUND) return rc;
    MDB_val val = {24, b};
    if ((rc = mdb_put(txn, w->dbi_cur, &k, &val, 0))) return rc;
    for (size_t i = 0; i < w->n_cons; i++)
        if (strlen(w->cons[i].name) == k.mv_size && memcmp(w->cons[i].name, k.mv_data, k.mv_size) == 0)
            w->cons[i].acked = wal_get_be64(b);
    return 0;
}

/* Call fn on the entries of lists (each in lsn order) with lsn > after, merged in lsn order,
 * until it fails. *n_done / *last_lsn get what was done. */
static int merge(jlist_t *l, size_t nl, uint64_t after, int (*fn)(void *, const jrec_t *),
                 void *ctx, uint64_t *n_done, uint64_t *last_lsn)
{
    size_t pos[2] = {0, 0};
    *n_done = 0;
    *last_lsn = after;
    for (;;) {
        int best = -1;
        for (size_t i = 0; i < nl; i++) {
            while (pos[i] < l[i].n && l[i].r[pos[i]].lsn <= *last_lsn) pos[i]++;
            if (pos[i] < l[i].n &&
                (best < 0 || l[i].r[pos[i]].lsn < l[best].r[pos[best]].lsn))
                best = (int)i;
        }
        if (best < 0) return 0;
        const jrec_t *r = &l[best].r[pos[best]++];
        int rc = fn(ctx, r);
        if (rc) return rc;
        *last_lsn = r->lsn;
        (*n_done)++;
    }
}

typedef struct {
    wal_t *w;
    MDB_txn *txn;
} apply_ctx_t;

static int apply_fn(void *ctx, const jrec_t *r)
{
    apply_ctx_t *a = ctx;
    return apply_one(a->w, a->txn, r);
}

/* Apply the entries of lists with lsn > after to txn (recovery, a rebuilt txn). */
static int apply(wal_t *w, MDB_txn *txn, jlist_t *l, size_t nl, uint64_t after,
                 uint64_t *n_applied, uint64_t *last_lsn)
{
    apply_ctx_t a = {w, txn};
    return merge(l, nl, after, apply_fn, &a, n_applied, last_lsn);
}

int wal_journal_reapply(wal_t *w, MDB_txn *txn)
{
    wal_journal_t *j = &w->j;
    if (j->off <= j->txn_off) return 0;
    uint8_t *img;
    int rc = read_range(j->fd[j->cur], j->txn_off, j->off, &img);
    if (rc) return rc;
    jlist_t l = {0};
    uint64_t n, last;
    rc = parse(img, (size_t)(j->off - j->txn_off), &l);
    /* parse() takes the first entry's epoch: from txn_off on it is the active one. */
    if (rc == 0) rc = apply(w, txn, &l, 1, w->commit_lsn, &n, &last);
    free(l.r);
    free(img);
    return rc;
}

static int meta_lsn(wal_t *w, MDB_txn *txn, uint64_t *out)
{
    MDB_val k = {11, "journal_lsn"}, v;
    *out = 0;
    int rc = mdb_get(txn, w->dbi_meta, &k, &v);
    if (rc == MDB_NOTFOUND) return 0;
    if (rc) return rc;
    if (v.mv_size != 8) return MDB_CORRUPTED;
    *out = wal_get_be64(v.mv_data);
    return 0;
}

int wal_journal_put_lsn(wal_t *w, MDB_txn *txn, uint64_t lsn)
{
    uint8_t b[8];
    wal_put_be64(b, lsn);
    MDB_val k = {11, "journal_lsn"}, v = {8, b};
    return mdb_put(txn, w->dbi_meta, &k, &v, 0);
}

/* ---- open: recovery and the two segments ---- */

/* oflags: O_RDONLY (a look), O_RDWR (recovery only), O_RDWR | O_CREAT (the journal in use).
 * Absent and not created: *fd_out = -1. */
static int open_segment(const char *dir, int i, int oflags, int *fd_out, uint64_t *size,
                        char *err, size_t errlen)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/journal.%d", dir, i);
    int fd = open(path, oflags | O_CLOEXEC, 0644);
    if (fd < 0) {
        if (errno == ENOENT && !(oflags & O_CREAT)) {
            *fd_out = -1;
            *size = 0;
            return 0;
        }
        int e = errno;
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(e));
        return -e;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        snprintf(err, errlen, "%s is not a regular file: refusing to use it", path);
        close(fd);
        return WAL_ECORRUPT;
    }
    *fd_out = fd;
    *size = (uint64_t)sb.st_size;
    return 0;
}

typedef struct {
    uint64_t next_seq; /* what apply_one would skip: LMDB has it */
    wal_journal_fn fn;
    void *ctx;
    uint64_t records;
} pending_ctx_t;

static int pending_fn(void *ctx, const jrec_t *r)
{
    pending_ctx_t *pc = ctx;
    if (r->type != J_LOG || r->key < pc->next_seq) return 0;
    pc->next_seq = r->key + 1;
    pc->records++;
    return pc->fn ? pc->fn(pc->ctx, r->key, r->p, r->n) : 0;
}

int wal_journal_pending(wal_t *w, wal_journal_fn fn, void *ctx, uint64_t *records)
{
    *records = 0;
    uint64_t after = 0, n, last;
    MDB_txn *txn;
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc) return wal_mdb_code(rc);
    rc = meta_lsn(w, txn, &after);
    mdb_txn_abort(txn);
    if (rc) return wal_mdb_code(rc);
    uint8_t *img[2] = {NULL, NULL};
    jlist_t l[2] = {{0}, {0}};
    size_t nl = 0;
    for (int i = 0; i < 2 && rc == 0; i++) {
        int fd;
        uint64_t sz;
        char err[256];
        if ((rc = open_segment(w->dir, i, O_RDONLY, &fd, &sz, err, sizeof err)) || fd < 0)
            continue;
        if ((rc = read_range(fd, 0, sz, &img[nl])) == 0) rc = parse(img[nl], (size_t)sz, &l[nl]);
        nl++;
        close(fd);
    }
    pending_ctx_t pc = {w->next_seq, fn, ctx, 0};
    if (rc == 0) rc = merge(l, nl, after, pending_fn, &pc, &n, &last); /* as recovery would */
    *records = pc.records;
    for (size_t i = 0; i < nl; i++) {
        free(l[i].r);
        free(img[i]);
    }
    return rc;
}

/* Zeros up to J_SEG_BYTES, flushed: a new segment (or one a crash left short). */
static int fill_segment(int fd, uint64_t *size)
{
    static const char zeros[64 << 10];
    int rc = 0;
    while (rc == 0 && *size < J_SEG_BYTES) {
        size_t n = J_SEG_BYTES - *size < sizeof zeros ? (size_t)(J_SEG_BYTES - *size) : sizeof zeros;
        if ((rc = pwrite_all(fd, zeros, n, *size)) == 0) *size += n;
    }
    if (rc == 0 && fsync(fd) != 0) rc = -errno;
    return rc;
}

static void sync_dir(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
}

void wal_journal_close(wal_journal_t *j)
{
    for (int i = 0; i < 2; i++)
        if (j->fd[i] >= 0) close(j->fd[i]);
    j->fd[0] = j->fd[1] = -1;
    free(j->buf);
    free(j->refs);
    j->buf = NULL;
    j->refs = NULL;
    j->len = j->blen = j->cap = j->n_refs = j->cap_refs = 0;
}

int wal_journal_open(wal_t *w, int use, char *err, size_t errlen)
{
    wal_journal_t *j = &w->j;
    jlist_t l[2] = {{0}, {0}};
    uint8_t *img[2] = {NULL, NULL};
    MDB_txn *txn = NULL;
    int rc = 0, created = 0;
    j->fd[0] = j->fd[1] = -1;
    for (int i = 0; i < 2 && rc == 0; i++) {
        uint64_t sz = 0;
        int existed = 1;
        char p[PATH_MAX];
        snprintf(p, sizeof p, "%s/journal.%d", w->dir, i);
        if (access(p, F_OK) != 0) existed = 0;
        rc = open_segment(w->dir, i, O_RDWR | (use ? O_CREAT : 0), &j->fd[i], &sz, err, errlen);
        if (rc || j->fd[i] < 0) continue;
        created |= !existed;
        j->size[i] = sz;
        if ((rc = read_range(j->fd[i], 0, sz, &img[i]))) {
            snprintf(err, errlen, "cannot read %s: %s", p, strerror(-rc));
            break;
        }
        if ((rc = parse(img[i], (size_t)sz, &l[i]))) break;
    }
    if (rc) goto out;

    /* What LMDB lost (or never got) of the acked changes: put it back, durably. */
    uint64_t after = 0, n = 0, last = 0, seq0 = w->next_seq;
    if ((rc = mdb_txn_begin(w->env, NULL, 0, &txn))) goto lmdb;
    if ((rc = meta_lsn(w, txn, &after))) goto lmdb;
    if ((rc = apply(w, txn, l, 2, after, &n, &last))) {
        if (rc == WAL_ECORRUPT) {
            snprintf(err, errlen, "%s/journal.*: an entry checks but does not decode: journal "
                     "damaged; move it away to start without it (acked changes after journal "
                     "lsn %" PRIu64 " may be lost)", w->dir, after);
            goto out;
        }
        goto lmdb;
    }
    j->next_lsn = after + 1;
    for (int i = 0; i < 2; i++)
        if (l[i].max_lsn >= j->next_lsn) j->next_lsn = l[i].max_lsn + 1;
    if (n) {
        if ((rc = wal_journal_put_lsn(w, txn, last))) goto lmdb;
        rc = mdb_txn_commit(txn);
        txn = NULL;
        if (rc == 0) rc = mdb_env_sync(w->env, 1);
        if (rc) goto lmdb;
        char a[24], b[24], c[24];
        snprintf(a, sizeof a, "%" PRIu64, n);
        snprintf(b, sizeof b, "%" PRIu64, seq0);
        snprintf(c, sizeof c, "%" PRIu64, w->next_seq - 1);
        log_warn("wal: put acked changes back from the journal (the last stop was not clean)",
                 "dir", w->dir, "#entries", a, "#from_seq", b, "#to_seq", c);
        MDB_txn *rt;
        if ((rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &rt))) goto lmdb;
        rc = wal_load_state(w, rt);
        mdb_txn_abort(rt);
        if (rc) goto lmdb;
    } else {
        mdb_txn_abort(txn);
        txn = NULL;
    }

    if (!use) {
        /* sync: interval / none: no journal; what it held is in the log now. */
        for (int i = 0; i < 2; i++) {
            if (j->fd[i] < 0) continue;
            char p[PATH_MAX];
            snprintf(p, sizeof p, "%s/journal.%d", w->dir, i);
            unlink(p);
        }
        sync_dir(w->dir);
        wal_journal_close(j);
        goto out;
    }
    for (int i = 0; i < 2 && rc == 0; i++) {
        if ((rc = fill_segment(j->fd[i], &j->size[i]))) {
            snprintf(err, errlen, "cannot write %s/journal.%d: %s", w->dir, i, strerror(-rc));
            goto out;
        }
        j->max_lsn[i] = l[i].max_lsn;
        if (l[i].epoch > j->top_epoch) j->top_epoch = l[i].epoch;
    }
    if (created) sync_dir(w->dir);
    /* Everything in both segments is in the log now: start segment 0 over, with an epoch two
     * above the highest valid one. Only the active segment's first record can be torn, so no
     * epoch on disk is higher than that plus one; reusing that one could let bytes of the torn
     * group (same epoch, behind the new records) pass as valid. */
    w->commit_lsn = w->ckpt_lsn = j->next_lsn - 1;
    j->top_epoch++;
    j->cur = 1;
    wal_journal_switch(j);
    goto out;
lmdb:
    snprintf(err, errlen, "%s: replaying the journal: %s", w->dir, mdb_strerror(rc));
    rc = wal_mdb_code(rc);
out:
    if (txn) mdb_txn_abort(txn);
    for (int i = 0; i < 2; i++) {
        free(l[i].r);
        free(img[i]);
    }
    if (rc) wal_journal_close(j);
    return rc;
}
