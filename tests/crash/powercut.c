/* powercut.c — an LD_PRELOAD layer that simulates a power cut under LMDB, in the spirit of
 * SQLite's crash-test VFS (src/test6.c): it sees every write and flush to one file, keeps
 * the image the disk is known to hold (what completed flushes covered) and the writes since,
 * and at a chosen write or flush writes out what a disk could hold after losing power there:
 * the flushed image plus a random subset of the unflushed writes, torn into 512-byte sectors
 * applied in random order (or none of them). Then it SIGKILLs the process.
 *
 * Environment: POWERCUT_FILE (path of the watched file, exactly as the program opens it),
 * POWERCUT_AT (cut before the N-th write/flush call on it, 1-based), POWERCUT_IMAGE (where
 * the image goes), POWERCUT_SEED, POWERCUT_MODE ("sectors", default, or "drop": every
 * unflushed write is lost). Without POWERCUT_FILE it passes everything through.
 *
 * What counts as durable: the data of a pwrite/write/writev/pwritev that completed before an
 * fdatasync/fsync of the same file began, once that flush returned; a write to a descriptor
 * opened with O_DSYNC/O_SYNC once it returned. LMDB without MDB_WRITEMAP writes data.mdb only
 * through these calls (mdb.c: mdb_page_flush, mdb_env_write_meta); a writable shared
 * mapping of the watched file would bypass them, so mmap of one aborts. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#define SECTOR 512
#define MAX_FD 1024

typedef struct {
    off_t off;
    size_t len;
    unsigned char *data; /* NULL: ftruncate to off */
} op_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *watch;       /* POWERCUT_FILE */
static unsigned char fd_kind[MAX_FD]; /* 0 = other file, 1 = watched, 2 = watched + O_DSYNC */
static unsigned char *dur;      /* the durable image */
static size_t dur_len;
static int dur_loaded;
static op_t *ops;               /* unflushed writes, oldest first */
static size_t n_ops, cap_ops;
static unsigned long events, cut_at;
static uint64_t seed = 88172645463325252ull;

static int (*real_open)(const char *, int, ...);
static int (*real_close)(int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_writev)(int, const struct iovec *, int);
static ssize_t (*real_pwritev)(int, const struct iovec *, int, off_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_ftruncate)(int, off_t);
static void *(*real_mmap)(void *, size_t, int, int, int, off_t);

/* Resolved on first use: a sanitizer runtime calls open() before constructors run (and
 * before the environment can be read, so that waits for the constructor). */
static void resolve(void)
{
    static int ready;
    if (ready) return;
    real_open = dlsym(RTLD_NEXT, "open");
    real_close = dlsym(RTLD_NEXT, "close");
    real_pwrite = dlsym(RTLD_NEXT, "pwrite");
    real_write = dlsym(RTLD_NEXT, "write");
    real_writev = dlsym(RTLD_NEXT, "writev");
    real_pwritev = dlsym(RTLD_NEXT, "pwritev");
    real_pread = dlsym(RTLD_NEXT, "pread");
    real_fsync = dlsym(RTLD_NEXT, "fsync");
    real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
    real_ftruncate = dlsym(RTLD_NEXT, "ftruncate");
    real_mmap = dlsym(RTLD_NEXT, "mmap");
    ready = 1;
}

__attribute__((constructor)) static void init(void)
{
    resolve();
    const char *at = getenv("POWERCUT_AT"), *s = getenv("POWERCUT_SEED");
    cut_at = at ? strtoul(at, NULL, 10) : 0;
    if (s) seed ^= strtoull(s, NULL, 10) * 2654435761u;
    watch = getenv("POWERCUT_FILE");
}

static uint64_t rnd(void)
{
    seed ^= seed << 13;
    seed ^= seed >> 7;
    seed ^= seed << 17;
    return seed;
}

static void die(const char *what)
{
    fprintf(stderr, "powercut: %s\n", what);
    abort();
}

static void img_put(unsigned char **img, size_t *len, size_t *cap, off_t off,
                    const unsigned char *p, size_t n)
{
    size_t end = (size_t)off + n;
    if (end > *cap) {
        size_t c = *cap ? *cap : 1 << 16;
        while (c < end) c *= 2;
        unsigned char *ni = realloc(*img, c);
        if (!ni) die("out of memory");
        *img = ni;
        *cap = c;
    }
    if (end > *len) {
        if ((size_t)off > *len) memset(*img + *len, 0, (size_t)off - *len);
        *len = end;
    }
    memcpy(*img + off, p, n);
}

static size_t dur_cap;

static void dur_apply(const op_t *o)
{
    if (o->data) {
        img_put(&dur, &dur_len, &dur_cap, o->off, o->data, o->len);
    } else if ((size_t)o->off < dur_len) {
        dur_len = (size_t)o->off;
    } else {
        static const unsigned char z[SECTOR];
        while (dur_len < (size_t)o->off) {
            size_t n = (size_t)o->off - dur_len < SECTOR ? (size_t)o->off - dur_len : SECTOR;
            img_put(&dur, &dur_len, &dur_cap, (off_t)dur_len, z, n);
        }
    }
}

/* The file as it is on disk when the watched file is first opened (the test made it durable
 * before starting this process). */
static void load_durable(int fd)
{
    unsigned char buf[1 << 16];
    off_t off = 0;
    ssize_t r;
    while ((r = real_pread(fd, buf, sizeof buf, off)) > 0) {
        img_put(&dur, &dur_len, &dur_cap, off, buf, (size_t)r);
        off += r;
    }
    dur_loaded = 1;
}

/* Power is lost now: write what the disk could hold, then die like the machine did. */
static void power_cut(void)
{
    const char *out = getenv("POWERCUT_IMAGE"), *mode = getenv("POWERCUT_MODE");
    int drop = mode && strcmp(mode, "drop") == 0;
    unsigned char *img = malloc(dur_len ? dur_len : 1);
    size_t len = dur_len, cap = dur_len ? dur_len : 1;
    if (!img || !out) die("no POWERCUT_IMAGE or out of memory");
    memcpy(img, dur, dur_len);
    size_t *order = malloc((n_ops ? n_ops : 1) * sizeof *order);
    if (!order) die("out of memory");
    for (size_t i = 0; i < n_ops; i++) order[i] = i;
    for (size_t i = n_ops; i > 1; i--) { /* unflushed writes reach the disk in any order */
        size_t j = (size_t)(rnd() % i), t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
    size_t kept = 0, lost = 0;
    for (size_t i = 0; i < n_ops && !drop; i++) {
        const op_t *o = &ops[order[i]];
        if (!o->data) {
            if (rnd() & 1) len = (size_t)o->off < len ? (size_t)o->off : len;
            continue;
        }
        /* Each sector of the write independently made it or not (a torn write). */
        for (size_t p = 0; p < o->len;) {
            size_t end = (size_t)((o->off + (off_t)p) / SECTOR + 1) * SECTOR - (size_t)o->off;
            if (end > o->len) end = o->len;
            if (rnd() & 1) {
                img_put(&img, &len, &cap, o->off + (off_t)p, o->data + p, end - p);
                kept++;
            } else {
                lost++;
            }
            p = end;
        }
    }
    int fd = real_open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) die("cannot create POWERCUT_IMAGE");
    for (size_t off = 0; off < len;) {
        ssize_t w = real_write(fd, img + off, len - off);
        if (w <= 0) die("cannot write POWERCUT_IMAGE");
        off += (size_t)w;
    }
    real_close(fd);
    fprintf(stderr, "powercut: cut at call %lu: %zu bytes durable, %zu unflushed writes, "
                    "%zu sectors kept, %zu lost\n", events, dur_len, n_ops, kept, lost);
    raise(SIGKILL);
    _exit(137);
}

/* Called with mu held before each write or flush call on the watched file. */
static void event(void)
{
    if (++events == cut_at) power_cut();
}

static void record(off_t off, const void *p, size_t n, int dsync)
{
    op_t o = {off, n, malloc(n ? n : 1)};
    if (!o.data) die("out of memory");
    memcpy(o.data, p, n);
    if (dsync) { /* O_DSYNC: on disk when the call returned */
        dur_apply(&o);
        free(o.data);
        return;
    }
    if (n_ops == cap_ops) {
        cap_ops = cap_ops ? cap_ops * 2 : 256;
        ops = realloc(ops, cap_ops * sizeof *ops);
        if (!ops) die("out of memory");
    }
    ops[n_ops++] = o;
}

static void record_iov(off_t off, const struct iovec *iov, int n, ssize_t done, int dsync)
{
    for (int i = 0; i < n && done > 0; i++) {
        size_t k = iov[i].iov_len < (size_t)done ? iov[i].iov_len : (size_t)done;
        record(off, iov[i].iov_base, k, dsync);
        off += (off_t)k;
        done -= (ssize_t)k;
    }
}

static int watched(int fd)
{
    return watch && fd >= 0 && fd < MAX_FD && fd_kind[fd];
}

int open(const char *path, int flags, ...)
{
    resolve();
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    int fd = real_open(path, flags, mode);
    if (fd >= 0 && watch && strcmp(path, watch) == 0) {
        if (fd >= MAX_FD) die("descriptor too large");
        pthread_mutex_lock(&mu);
        fd_kind[fd] = (flags & O_DSYNC) ? 2 : 1;
        if (!dur_loaded) load_durable(fd);
        pthread_mutex_unlock(&mu);
    }
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int close(int fd)
{
    resolve();
    if (watched(fd)) fd_kind[fd] = 0;
    return real_close(fd);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    resolve();
    if (!watched(fd)) return real_pwrite(fd, p, n, off);
    pthread_mutex_lock(&mu);
    event();
    ssize_t r = real_pwrite(fd, p, n, off);
    if (r > 0) record(off, p, (size_t)r, fd_kind[fd] == 2);
    pthread_mutex_unlock(&mu);
    return r;
}

ssize_t pwrite64(int fd, const void *p, size_t n, off_t off) __attribute__((alias("pwrite")));

ssize_t write(int fd, const void *p, size_t n)
{
    resolve();
    if (!watched(fd)) return real_write(fd, p, n);
    pthread_mutex_lock(&mu);
    event();
    off_t off = lseek(fd, 0, SEEK_CUR);
    ssize_t r = real_write(fd, p, n);
    if (r > 0) record(off, p, (size_t)r, fd_kind[fd] == 2);
    pthread_mutex_unlock(&mu);
    return r;
}

ssize_t writev(int fd, const struct iovec *iov, int n)
{
    resolve();
    if (!watched(fd)) return real_writev(fd, iov, n);
    pthread_mutex_lock(&mu);
    event();
    off_t off = lseek(fd, 0, SEEK_CUR);
    ssize_t r = real_writev(fd, iov, n);
    record_iov(off, iov, n, r, fd_kind[fd] == 2);
    pthread_mutex_unlock(&mu);
    return r;
}

ssize_t pwritev(int fd, const struct iovec *iov, int n, off_t off)
{
    resolve();
    if (!watched(fd)) return real_pwritev(fd, iov, n, off);
    pthread_mutex_lock(&mu);
    event();
    ssize_t r = real_pwritev(fd, iov, n, off);
    record_iov(off, iov, n, r, fd_kind[fd] == 2);
    pthread_mutex_unlock(&mu);
    return r;
}

/* A completed flush of the file makes every write that completed before it durable. */
static int flush(int fd, int (*fn)(int))
{
    resolve();
    if (!watched(fd)) return fn(fd);
    pthread_mutex_lock(&mu);
    event();
    int r = fn(fd);
    if (r == 0) {
        for (size_t i = 0; i < n_ops; i++) {
            dur_apply(&ops[i]);
            free(ops[i].data);
        }
        n_ops = 0;
    }
    pthread_mutex_unlock(&mu);
    return r;
}

int fsync(int fd)
{
    resolve();
    return flush(fd, real_fsync);
}

int fdatasync(int fd)
{
    resolve();
    return flush(fd, real_fdatasync);
}

int ftruncate(int fd, off_t len)
{
    resolve();
    if (!watched(fd)) return real_ftruncate(fd, len);
    pthread_mutex_lock(&mu);
    event();
    int r = real_ftruncate(fd, len);
    if (r == 0) {
        if (n_ops == cap_ops) {
            cap_ops = cap_ops ? cap_ops * 2 : 256;
            ops = realloc(ops, cap_ops * sizeof *ops);
            if (!ops) die("out of memory");
        }
        ops[n_ops++] = (op_t){len, 0, NULL};
    }
    pthread_mutex_unlock(&mu);
    return r;
}

int ftruncate64(int fd, off_t len) __attribute__((alias("ftruncate")));

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    resolve();
    if (watched(fd) && (prot & PROT_WRITE) && (flags & MAP_SHARED))
        die("a writable shared mapping of the watched file (MDB_WRITEMAP?) is not simulated");
    return real_mmap(addr, len, prot, flags, fd, off);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
    __attribute__((alias("mmap")));
