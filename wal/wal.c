/* wal.c — opening and closing the log: the LMDB environment and its four databases, the
 * checks that refuse a damaged, foreign or newer file (never re-creating it), the meta
 * records made at creation, and recovery of the writer's state from what is on disk. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "wal/wal_internal.h"

const char *wal_strerror(int code)
{
    switch (code) {
    case 0: return "ok";
    case WAL_EFULL: return "write-ahead log full (wal.max_bytes reached)";
    case WAL_ECORRUPT: return "write-ahead log damaged (file or record does not decode)";
    case WAL_EFOREIGN: return "not a sluice write-ahead log";
    case WAL_EVERSION: return "write-ahead log made by a newer sluice";
    case WAL_ECLOSED: return "write-ahead log is closing";
    case WAL_EINVAL: return "invalid argument";
    case WAL_ENOENT: return "not found";
    case WAL_ETIMEDOUT: return "timed out";
    case WAL_EBUSY: return "in use by another sluice process";
    default: break;
    }
    if (code >= MDB_KEYEXIST && code <= MDB_LAST_ERRCODE) return mdb_strerror(code);
    if (code < 0 && code > -4096) return strerror(-code);
    return "unknown error";
}

void wal_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8) p[i] = (uint8_t)v;
}

uint64_t wal_get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

int wal_mdb_code(int rc)
{
    switch (rc) {
    case 0: return 0;
    case MDB_MAP_FULL: return WAL_EFULL;
    case MDB_NOTFOUND: return WAL_ENOENT;
    case MDB_INVALID:
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_PANIC:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_VALSIZE: return WAL_ECORRUPT;
    case MDB_INCOMPATIBLE: return WAL_EFOREIGN;
    default: return rc > 0 ? -rc : rc;
    }
}

/* LMDB stores a record inline in a leaf page (node header 8 + key 8 + data + 2 bytes of
 * page index) unless it is larger than the node limit, then in whole overflow pages. */
uint64_t wal_rec_cost(const wal_t *w, size_t len)
{
    size_t nodemax = ((w->psize - 16) / 2) & ~(size_t)1;
    if (16 + len > nodemax) return ((len + 16 + w->psize - 1) / w->psize) * w->psize + 26;
    return 16 + len + 2;
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static int mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) return -ENAMETOOLONG;
    memcpy(tmp, dir, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) && errno != EEXIST) return -errno;
    return 0;
}

static int meta_get_str(wal_t *w, MDB_txn *txn, const char *key, char *buf, size_t cap)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(txn, w->dbi_meta, &k, &v);
    if (rc) return rc;
    size_t n = v.mv_size < cap - 1 ? v.mv_size : cap - 1;
    memcpy(buf, v.mv_data, n);
    buf[n] = '\0';
    return 0;
}

static int meta_put_str(wal_t *w, MDB_txn *txn, const char *key, const char *val)
{
    MDB_val k = {strlen(key), (void *)key}, v = {strlen(val), (void *)val};
    return mdb_put(txn, w->dbi_meta, &k, &v, 0);
}

int wal_load_state(wal_t *w, MDB_txn *txn)
{
    MDB_cursor *c = NULL;
    MDB_val k, v;
    MDB_stat ms;
    char buf[64];
    int rc;

    w->first_seq = 0;
    w->live_bytes = 0;
    w->trunc_seq = 0;
    w->n_gaps = 0;
    uint64_t last = 0;
    if ((rc = mdb_stat(txn, w->dbi_log, &ms))) return rc;
    w->n_records = ms.ms_entries;
    if ((rc = mdb_cursor_open(txn, w->dbi_log, &c))) return rc;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size != 8) {
            rc = MDB_CORRUPTED;
            break;
        }
        last = wal_get_be64(k.mv_data);
        if (!w->first_seq) w->first_seq = last;
        w->live_bytes += wal_rec_cost(w, v.mv_size);
    }
    mdb_cursor_close(c);
    if (rc != MDB_NOTFOUND) return rc;

    rc = meta_get_str(w, txn, "trunc_seq", buf, sizeof buf);
    if (rc == 0) w->trunc_seq = strtoull(buf, NULL, 10);
    else if (rc != MDB_NOTFOUND) return rc;
    w->next_seq = (last > w->trunc_seq ? last : w->trunc_seq) + 1;

    if ((rc = mdb_stat(txn, w->dbi_dlq, &ms))) return rc;
    w->n_dlq = ms.ms_entries;
    w->next_dlq_id = 1;
    if ((rc = mdb_cursor_open(txn, w->dbi_dlq, &c))) return rc;
    rc = mdb_cursor_get(c, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8) w->next_dlq_id = wal_get_be64(k.mv_data) + 1;
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return rc;

    if ((rc = mdb_cursor_open(txn, w->dbi_meta, &c))) return rc;
    k = (MDB_val){4, "gap:"};
    for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= 4 && memcmp(k.mv_data, "gap:", 4) == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
        w->n_gaps++;
    mdb_cursor_close(c);
    if (rc && rc != MDB_NOTFOUND) return rc;

    for (size_t i = 0; i < w->n_cons; i++) {
        k = (MDB_val){strlen(w->cons[i].name), w->cons[i].name};
        rc = mdb_get(txn, w->dbi_cur, &k, &v);
        if (rc == 0 && v.mv_size == 24) w->cons[i].acked = wal_get_be64(v.mv_data);
        else if (rc && rc != MDB_NOTFOUND) return rc;
    }
    atomic_store(&w->last_seq, w->next_seq - 1);
    return 0;
}

/* Create the databases and meta records of a new log, in the caller's txn. */
static int init_new(wal_t *w, MDB_txn *txn)
{
    int rc;
    char buf[32];
    if ((rc = mdb_dbi_open(txn, "log", MDB_CREATE, &w->dbi_log)) ||
        (rc = mdb_dbi_open(txn, "cursors", MDB_CREATE, &w->dbi_cur)) ||
        (rc = mdb_dbi_open(txn, "dlq", MDB_CREATE, &w->dbi_dlq)) ||
        (rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &w->dbi_meta)))
        return rc;
    uint64_t id = 0;
    while (id == 0)
        if (getrandom(&id, sizeof id, 0) != (ssize_t)sizeof id) return errno ? errno : EIO;
    w->log_id = id;
    if ((rc = meta_put_str(w, txn, "magic", WAL_MAGIC))) return rc;
    snprintf(buf, sizeof buf, "%d", WAL_FORMAT_VERSION);
    if ((rc = meta_put_str(w, txn, "format_version", buf))) return rc;
    snprintf(buf, sizeof buf, "%016" PRIx64, id);
    if ((rc = meta_put_str(w, txn, "log_id", buf))) return rc;
    snprintf(buf, sizeof buf, "%" PRIu64, time_wall_ms());
    return meta_put_str(w, txn, "created_ms", buf);
}

/* Check that an existing environment is a sluice log this version can read. */
static int check_existing(wal_t *w, MDB_txn *txn, const char *path, char *err, size_t errlen)
{
    char buf[64];
    unsigned flags = w->readonly ? 0 : MDB_CREATE;
    int rc = mdb_dbi_open(txn, "meta", 0, &w->dbi_meta);
    if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
        seterr(err, errlen,
               "%s is an LMDB environment without sluice's meta database: not a sluice "
               "write-ahead log; refusing to use it (point wal.dir at an empty directory)",
               path);
        return WAL_EFOREIGN;
    }
    if (rc) goto lmdb_fail;
    rc = meta_get_str(w, txn, "magic", buf, sizeof buf);
    if (rc == MDB_NOTFOUND || (rc == 0 && strcmp(buf, WAL_MAGIC) != 0)) {
        seterr(err, errlen,
               "%s: meta database has %s%s%s instead of magic \"%s\": not a sluice "
               "write-ahead log; refusing to use it",
               path, rc ? "no magic" : "magic \"", rc ? "" : buf, rc ? "" : "\"", WAL_MAGIC);
        return WAL_EFOREIGN;
    }
    if (rc) goto lmdb_fail;
    rc = meta_get_str(w, txn, "format_version", buf, sizeof buf);
    if (rc && rc != MDB_NOTFOUND) goto lmdb_fail;
    char *end = NULL;
    unsigned long long ver = rc ? 0 : strtoull(buf, &end, 10);
    if (rc || !end || *end || end == buf || ver < 1) {
        seterr(err, errlen, "%s: meta format_version is missing or unreadable: log damaged",
               path);
        return WAL_ECORRUPT;
    }
    if (ver > WAL_FORMAT_JOURNALED) {
        seterr(err, errlen,
               "%s has format version %llu, this sluice reads up to version %d: it was written "
               "by a newer sluice; upgrade sluice (the file was left untouched)",
               path, ver, WAL_FORMAT_JOURNALED);
        return WAL_EVERSION;
    }
    w->format = (int)ver;
    rc = meta_get_str(w, txn, "log_id", buf, sizeof buf);
    if (rc && rc != MDB_NOTFOUND) goto lmdb_fail;
    w->log_id = rc ? 0 : strtoull(buf, &end, 16);
    if (rc || w->log_id == 0) {
        seterr(err, errlen, "%s: meta log_id is missing or unreadable: log damaged", path);
        return WAL_ECORRUPT;
    }
    const char *names[3] = {"log", "cursors", "dlq"};
    MDB_dbi *dbis[3] = {&w->dbi_log, &w->dbi_cur, &w->dbi_dlq};
    for (int i = 0; i < 3; i++) {
        rc = mdb_dbi_open(txn, names[i], flags, dbis[i]);
        if (rc == MDB_NOTFOUND || rc == MDB_INCOMPATIBLE) {
            seterr(err, errlen, "%s: database '%s' is missing: log damaged", path, names[i]);
            return WAL_ECORRUPT;
        }
        if (rc) goto lmdb_fail;
    }
    return 0;
lmdb_fail:
    seterr(err, errlen, "%s: cannot read the log: %s", path, mdb_strerror(rc));
    return wal_mdb_code(rc);
}

/* A data.mdb shorter than the pages its meta page says it holds was truncated (reading it
 * would fault): LMDB does not check this itself. */
static int check_file_size(wal_t *w, const char *path, char *err, size_t errlen)
{
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat sb;
    if (mdb_env_info(w->env, &info) || mdb_env_stat(w->env, &st) ||
        mdb_env_get_fd(w->env, &fd) || fstat(fd, &sb))
        return 0;
    uint64_t need = ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
    /* LMDB never writes a page that its txn allocated and freed again (a loose page,
     * mdb_page_flush skips it), so the last few pages of a sound file may lie past its end.
     * They are free: a writer gives them zeros, a reader never reads them. More than that
     * missing is a truncated file, refused before LMDB could fault on a page that is gone. */
    uint64_t slack = 16 * (uint64_t)st.ms_psize;
    if ((uint64_t)sb.st_size < need && (uint64_t)sb.st_size + slack >= need) {
        if (!w->readonly && ftruncate(fd, (off_t)need) == 0) fsync(fd);
    } else if ((uint64_t)sb.st_size < need) {
        seterr(err, errlen,
               "%s is truncated: the file has %lld bytes but its header says the log uses "
               "%" PRIu64 " bytes; log damaged (restore it or move it away)",
               path, (long long)sb.st_size, need);
        return WAL_ECORRUPT;
    }
    w->psize = st.ms_psize;
    return 0;
}

static uint64_t map_size(const wal_t *w)
{
    /* Room for max_bytes of live records plus pages LMDB cannot reuse yet (still seen by a
     * reader, or on the free list), the DLQ, cursors and meta. */
    uint64_t map = w->cfg.max_bytes + w->cfg.max_bytes / 2 + (64u << 20);
    return (map + 65535) & ~(uint64_t)65535;
}

/* Make a new log in a private directory and move its data.mdb into place with one rename:
 * a crash during creation leaves either no data.mdb or a complete one, never an empty file
 * (which open refuses as damaged). RENAME_NOREPLACE: an existing log is never overwritten. */
static int create_atomically(wal_t *w, const char *path, char *err, size_t errlen)
{
    char tmp[PATH_MAX - 32], tmpdata[PATH_MAX], tmplock[PATH_MAX];
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    uint64_t r = 0;
    if (getrandom(&r, sizeof r, 0) < 0) r = (uint64_t)getpid();
    snprintf(tmp, sizeof tmp, "%s/.sluice-new-%d-%016" PRIx64, w->dir, (int)getpid(), r);
    snprintf(tmpdata, sizeof tmpdata, "%s/data.mdb", tmp);
    snprintf(tmplock, sizeof tmplock, "%s/lock.mdb", tmp);
    if (mkdir(tmp, 0755)) {
        int e = errno;
        seterr(err, errlen, "cannot create %s: %s", tmp, strerror(e));
        return -e;
    }
    int rc = mdb_env_create(&env);
    if (rc == 0) {
        mdb_env_set_maxdbs(env, 8);
        mdb_env_set_mapsize(env, (size_t)map_size(w));
        rc = mdb_env_open(env, tmp, 0, 0644);
    }
    if (rc == 0) rc = mdb_txn_begin(env, NULL, 0, &txn);
    if (rc == 0) rc = init_new(w, txn);
    if (rc == 0) rc = mdb_txn_commit(txn); /* fsyncs the new file */
    else if (txn) mdb_txn_abort(txn);
    if (env) mdb_env_close(env);
    if (rc) {
        seterr(err, errlen, "cannot create a new log in %s: %s", tmp, mdb_strerror(rc));
        rc = wal_mdb_code(rc);
    } else if (renameat2(AT_FDCWD, tmpdata, AT_FDCWD, path, RENAME_NOREPLACE) != 0) {
        if (errno == EEXIST) {
            rc = 0; /* someone else created it meanwhile: use theirs */
        } else if ((errno == EINVAL || errno == ENOSYS) && link(tmpdata, path) == 0) {
            rc = 0; /* file system without renameat2: link() does not replace either */
        } else if (errno != EEXIST) {
            rc = -errno;
            seterr(err, errlen, "cannot move the new log to %s: %s", path, strerror(errno));
        }
    }
    unlink(tmpdata);
    unlink(tmplock);
    rmdir(tmp);
    if (rc == 0) {
        int dfd = open(w->dir, O_RDONLY | O_DIRECTORY);
        if (dfd >= 0) {
            fsync(dfd); /* the new name is durable before anything is acked in it */
            close(dfd);
        }
        log_info("created write-ahead log", "dir", w->dir);
    }
    return rc;
}

static int open_env(wal_t *w, char *err, size_t errlen)
{
    char path[PATH_MAX];
    struct stat sb;
    int rc;
    MDB_txn *txn = NULL;

    snprintf(path, sizeof path, "%s/data.mdb", w->dir);
    if (!w->readonly && (rc = mkdir_p(w->dir))) {
        seterr(err, errlen, "cannot create directory %s: %s", w->dir, strerror(-rc));
        return rc;
    }
    if (stat(path, &sb) == 0) {
        if (!S_ISREG(sb.st_mode)) {
            seterr(err, errlen, "%s is not a regular file: refusing to use it", path);
            return WAL_ECORRUPT;
        }
        /* LMDB would initialise an empty file as a new log; an existing empty file means
         * something truncated the log, so refuse instead of silently starting over. */
        if (sb.st_size == 0) {
            seterr(err, errlen,
                   "%s is empty (0 bytes): log damaged or truncated; refusing to re-create "
                   "it (delete the file yourself if the log never held data)",
                   path);
            return WAL_ECORRUPT;
        }
    } else if (errno != ENOENT || w->readonly) {
        rc = -errno;
        seterr(err, errlen, "no write-ahead log at %s: %s", path, strerror(errno));
        return rc;
    } else if ((rc = create_atomically(w, path, err, errlen))) {
        return rc;
    }

    if ((rc = mdb_env_create(&w->env))) goto lmdb_fail;
    mdb_env_set_maxdbs(w->env, 8);
    mdb_env_set_maxreaders(w->env, 1024);
    unsigned flags = MDB_NOTLS;
    if (w->readonly) {
        flags |= MDB_RDONLY;
    } else {
        if ((rc = mdb_env_set_mapsize(w->env, (size_t)map_size(w)))) goto lmdb_fail;
        /* sync: always keeps LMDB's fsync on commit (acked = durable); interval and none
         * trade the last moments of acks for speed, as documented in DESIGN.md §3. */
        if (w->cfg.sync != CFG_SYNC_ALWAYS) flags |= MDB_NOSYNC;
#ifndef SLUICE_WAL_META_SYNC
        /* sync: always still acks only what is on disk: the writer acks a commit once a
         * later flush has covered its meta page (writer.c, "durability"). */
        else flags |= MDB_NOMETASYNC;
#endif
    }
    rc = mdb_env_open(w->env, w->dir, flags, 0644);
    if (rc) {
        if (rc == MDB_INVALID)
            seterr(err, errlen,
                   "%s is not an LMDB file or its header is damaged (%s): log damaged; "
                   "refusing to re-create it",
                   path, mdb_strerror(rc));
        else if (rc == MDB_VERSION_MISMATCH)
            seterr(err, errlen, "%s was written by an incompatible LMDB version (%s)", path,
                   mdb_strerror(rc));
        else
            seterr(err, errlen, "cannot open %s: %s", path, mdb_strerror(rc));
        return wal_mdb_code(rc);
    }
    if ((rc = check_file_size(w, path, err, errlen))) return rc;
    wal_find_map(w);
    if (!w->readonly) {
        int dead = 0;
        mdb_reader_check(w->env, &dead); /* slots of killed readers would pin old pages */
    }
    if (!w->psize) {
        MDB_stat st;
        mdb_env_stat(w->env, &st);
        w->psize = st.ms_psize;
    }

    if ((rc = mdb_txn_begin(w->env, NULL, w->readonly ? MDB_RDONLY : 0, &txn))) goto lmdb_fail;
    MDB_dbi main_dbi;
    MDB_stat ms;
    if ((rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) || (rc = mdb_stat(txn, main_dbi, &ms)))
        goto lmdb_fail;
    if (ms.ms_entries == 0) {
        seterr(err, errlen, "%s is an empty LMDB environment, not a sluice write-ahead log; "
               "refusing to use it", path);
        rc = WAL_EFOREIGN;
        goto fail;
    } else if ((rc = check_existing(w, txn, path, err, errlen))) {
        goto fail;
    }
    if ((rc = wal_load_state(w, txn))) goto lmdb_fail;
    /* Commit also for a read-only txn: it keeps the opened database handles. */
    rc = mdb_txn_commit(txn);
    txn = NULL;
    if (rc) goto lmdb_fail;
    return 0;
lmdb_fail:
    seterr(err, errlen, "%s: %s", path, mdb_strerror(rc));
    rc = wal_mdb_code(rc);
fail:
    if (txn) mdb_txn_abort(txn);
    return rc;
}

static void publish_state(wal_t *w)
{
    pthread_mutex_lock(&w->slock);
    w->st.records = w->n_records;
    w->st.first_seq = w->n_records ? w->first_seq : 0;
    w->st.last_seq = w->n_records ? w->next_seq - 1 : 0;
    w->st.live_bytes = w->live_bytes;
    w->st.max_bytes = w->readonly ? 0 : w->cfg.max_bytes;
    w->st.dlq_entries = w->n_dlq;
    w->st.gaps = w->n_gaps;
    pthread_mutex_unlock(&w->slock);
}

static wal_t *wal_new(const char *dir)
{
    wal_t *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    w->dir = strdup(dir);
    if (!w->dir) {
        free(w);
        return NULL;
    }
    w->lock_fd = -1;
    w->j.fd[0] = w->j.fd[1] = -1;
    pthread_mutex_init(&w->qlock, NULL);
    pthread_cond_init(&w->qcond, NULL);
    pthread_mutex_init(&w->slock, NULL);
    pthread_mutex_init(&w->clock, NULL);
    pthread_mutex_init(&w->smu, NULL);
    pthread_mutex_init(&w->vlock, NULL);
    pthread_cond_init(&w->sdone, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->ccond, &ca);
    pthread_cond_init(&w->scond, NULL);
    pthread_condattr_destroy(&ca);
    return w;
}

static void wal_free(wal_t *w)
{
    if (w->txn) mdb_txn_abort(w->txn); /* only when the writer could not stop cleanly */
    wal_journal_close(&w->j);
    if (w->env) mdb_env_close(w->env);
    if (w->lock_fd >= 0) close(w->lock_fd); /* after the env: the next writer may start */
    for (size_t i = 0; i < w->n_cons; i++) free(w->cons[i].name);
    free(w->cons);
    pthread_mutex_destroy(&w->qlock);
    pthread_cond_destroy(&w->qcond);
    pthread_mutex_destroy(&w->slock);
    pthread_mutex_destroy(&w->clock);
    pthread_mutex_destroy(&w->smu);
    pthread_mutex_destroy(&w->vlock);
    pthread_cond_destroy(&w->scond);
    pthread_cond_destroy(&w->sdone);
    pthread_cond_destroy(&w->ccond);
    free(w->dir);
    free(w);
}

/* The single-writer lock: LMDB lets two processes open one env for writing, and each would
 * then truncate and cursor-commit behind the other's back. A `sluice dlq` write or a second
 * `sluice run` on the same dir is refused instead. The pid in the file is informative only. */
static int take_lock(wal_t *w, char *err, size_t errlen)
{
    char path[PATH_MAX];
    int rc = mkdir_p(w->dir);
    if (rc) {
        seterr(err, errlen, "cannot create directory %s: %s", w->dir, strerror(-rc));
        return rc;
    }
    snprintf(path, sizeof path, "%s/sinks.lock", w->dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        seterr(err, errlen, "%s: %s", path, strerror(errno));
        return rc;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        seterr(err, errlen, "the wal in %s is in use by a running sluice%s%s%s; stop it first", w->dir,
               pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        close(fd);
        return WAL_EBUSY;
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && write(fd, pid, (size_t)n) < 0) { /* informative only */
    }
    w->lock_fd = fd;
    return 0;
}

/* meta format_version = ver, committed and flushed (see WAL_FORMAT_JOURNALED). */
static int put_format(wal_t *w, int ver)
{
    if (w->format == ver) return 0;
    char buf[16];
    snprintf(buf, sizeof buf, "%d", ver);
    MDB_txn *txn;
    int rc = mdb_txn_begin(w->env, NULL, 0, &txn);
    if (rc) return rc;
    if ((rc = meta_put_str(w, txn, "format_version", buf))) {
        mdb_txn_abort(txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(txn)) == 0) rc = mdb_env_sync(w->env, 1);
    if (rc == 0) w->format = ver;
    return rc;
}

int wal_open(wal_t **out, const cfg_wal_t *cfg, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg || !cfg->dir || !*cfg->dir) {
        seterr(err, errlen, "wal.dir is not set");
        return WAL_EINVAL;
    }
    wal_t *w = wal_new(cfg->dir);
    if (!w) return -ENOMEM;
    w->cfg = *cfg;
    w->cfg.dir = w->dir;
    cfg_wal_t d; /* a field the caller left 0 gets the config's default (one place for them) */
    cfg_wal_defaults(&d);
    if (!w->cfg.max_bytes) w->cfg.max_bytes = d.max_bytes;
    if (!w->cfg.max_record_bytes) w->cfg.max_record_bytes = d.max_record_bytes;
    if (!w->cfg.sync_interval_ms) w->cfg.sync_interval_ms = d.sync_interval_ms;
    if (!w->cfg.checkpoint_ms) w->cfg.checkpoint_ms = d.checkpoint_ms;
    if (!w->cfg.truncate_chunk) w->cfg.truncate_chunk = d.truncate_chunk;
    int rc = take_lock(w, err, errlen);
    if (rc == 0) rc = open_env(w, err, errlen);
#ifdef SLUICE_WAL_META_SYNC
    int journal = 0; /* the two-flush build: LMDB alone, as before the journal */
#else
    int journal = w->cfg.sync == CFG_SYNC_ALWAYS;
#endif
    /* Also without a journal: put back what one left (sync was always before this start). */
    if (rc == 0) rc = wal_journal_open(w, journal, err, errlen);
    if (rc) goto fail;
    /* What the journal holds from now on is acked: mark the log for older sluices. Not a
     * reason to stay down (a full disk must still let the sinks drain the log): warn. */
    if ((rc = put_format(w, journal ? WAL_FORMAT_JOURNALED : WAL_FORMAT_VERSION)))
        log_warn("wal: cannot write meta format_version (a sluice older than the journal "
                 "could open this log without the acked rows only in the journal)",
                 "dir", w->dir, "error", mdb_strerror(rc));
    rc = 0;
    w->commit_seq = w->jseq = w->next_seq - 1;
    publish_state(w);
    w->last_sync_ms = time_mono_ms();
    if ((rc = wal_writer_start(w))) {
        seterr(err, errlen, "cannot start the wal writer thread: %s", strerror(-rc));
        goto fail;
    }
    *out = w;
    return 0;
fail:
    wal_free(w);
    return rc;
}

int wal_open_readonly(wal_t **out, const char *dir, char *err, size_t errlen)
{
    *out = NULL;
    if (!dir || !*dir) {
        seterr(err, errlen, "no wal directory given");
        return WAL_EINVAL;
    }
    wal_t *w = wal_new(dir);
    if (!w) return -ENOMEM;
    w->readonly = 1;
    w->cfg.dir = w->dir;
    int rc = open_env(w, err, errlen);
    if (rc) {
        wal_free(w);
        return rc;
    }
    publish_state(w);
    *out = w;
    return 0;
}

void wal_close(wal_t *w)
{
    if (!w) return;
    if (w->writer_started) wal_writer_stop(w);
    if (w->clean_stop && w->format == WAL_FORMAT_JOURNALED) {
        int rc = put_format(w, WAL_FORMAT_VERSION); /* all in LMDB: any sluice may open it */
        if (rc) log_error("wal: cannot write meta format_version at close", "error", mdb_strerror(rc));
    }
    pthread_mutex_lock(&w->clock);
    w->closed = 1;
    pthread_cond_broadcast(&w->ccond);
    pthread_mutex_unlock(&w->clock);
    wal_free(w);
}

void wal_publish_state(wal_t *w)
{
    publish_state(w);
}
