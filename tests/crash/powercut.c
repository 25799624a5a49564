/* powercut.c — an LD_PRELOAD layer that simulates a power cut under LMDB, in the spirit of
 * SQLite's crash-test VFS (src/test6.c): it sees every write and flush to one file, keeps
 * the image the disk is known to hold (what completed flushes covered) and the writes since,
 * and at a chosen write or flush writes out what a disk could hold after losing power there:
 * the flushed image plus a random subset of the unflushed writes, torn into 512-byte sectors
 * applied in random order (or none of them). Then it SIGKILLs the process.
 *
 * Environment: POWERCUT_FILE (paths of the watched files, ':'-separated, exactly as the
 * program opens them: LMDB's data.mdb, the WAL's journal segments), POWERCUT_AT (cut before
 * the N-th write/flush call on any of them, 1-based), POWERCUT_IMAGE (where the image of the
 * first file goes; file i > 0 goes to POWERCUT_IMAGE.i, written only if the program opened
 * it), POWERCUT_SEED, POWERCUT_MODE ("sectors", default, or "drop": every unflushed write is
 * lost). Each file has its own durable image and unflushed writes: a flush of one file makes
 * only that file's writes durable. Without POWERCUT_FILE it passes everything through.
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

#define MAX_FILES 8

typedef struct {
    char path[4096];
    unsigned char *dur; /* the durable image */
    size_t dur_len, dur_cap;
    int dur_loaded;
    op_t *ops;          /* unflushed writes, oldest first */
    size_t n_ops, cap_ops;
} file_t;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static const char *watch;       /* POWERCUT_FILE */
static file_t files[MAX_FILES];
static int n_files;
static unsigned char fd_file[MAX_FD]; /* 0 = other file, else 1 + index into files */
static unsigned char fd_dsync[MAX_FD]; /* opened with O_DSYNC/O_SYNC */
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
    for (const char *p = watch; p && *p && n_files < MAX_FILES;) {
        size_t n = strcspn(p, ":");
        if (n && n < sizeof files[0].path) {
            memcpy(files[n_files].path, p, n);
            files[n_files++].path[n] = '\0';
        }
        p += n;
        if (*p == ':') p++;
    }
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

static void dur_apply(file_t *f, const op_t *o)
{
    if (o->data) {
        img_put(&f->dur, &f->dur_len, &f->dur_cap, o->off, o->data, o->len);
    } else if ((size_t)o->off < f->dur_len) {
        f->dur_len = (size_t)o->off;
    } else {
        static const unsigned char z[SECTOR];
        while (f->dur_len < (size_t)o->off) {
            size_t n = (size_t)o->off - f->dur_len < SECTOR ? (size_t)o->off - f->dur_len : SECTOR;
            img_put(&f->dur, &f->dur_len, &f->dur_cap, (off_t)f->dur_len, z, n);
        }
    }
}

/* The file as it is on disk when the watched file is first opened (the test made it durable
 * before starting this process; a file created now starts empty). */
static void load_durable(file_t *f, int fd)
{
    unsigned char buf[1 << 16];
    off_t off = 0;
    ssize_t r;
    while ((r = real_pread(fd, buf, sizeof buf, off)) > 0) {
        img_put(&f->dur, &f->dur_len, &f->dur_cap, off, buf, (size_t)r);
        off += r;
    }
    f->dur_loaded = 1;
}

static void cut_file(file_t *f, const char *out, int drop);

/* Power is lost now: write what the disks could hold, then die like the machine did. */
static void power_cut(void)
{
    const char *out = getenv("POWERCUT_IMAGE"), *mode = getenv("POWERCUT_MODE");
    int drop = mode && strcmp(mode, "drop") == 0;
    if (!out) die("no POWERCUT_IMAGE");
    for (int i = 0; i < n_files; i++) {
        if (!files[i].dur_loaded) continue;
        char path[4200];
        if (i == 0) snprintf(path, sizeof path, "%s", out);
        else snprintf(path, sizeof path, "%s.%d", out, i);
        cut_file(&files[i], path, drop);
    }
    raise(SIGKILL);
    _exit(137);
}

/* The image of one file: its durable bytes plus a random torn subset of its unflushed writes. */
static void cut_file(file_t *f, const char *out, int drop)
{
    size_t dur_len = f->dur_len, n_ops = f->n_ops;
    const op_t *ops = f->ops;
    unsigned char *img = malloc(dur_len ? dur_len : 1);
    size_t len = dur_len, cap = dur_len ? dur_len : 1;
    if (!img) die("out of memory");
    memcpy(img, f->dur, dur_len);
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
    fprintf(stderr, "powercut: cut at call %lu: %s: %zu bytes durable, %zu unflushed writes, "
                    "%zu sectors kept, %zu lost\n", events, f->path, dur_len, n_ops, kept, lost);
    free(img);
    free(order);
}

/* Called with mu held before each write or flush call on the watched file. */
static void event(void)
{
    if (++events == cut_at) power_cut();
}

static void push_op(file_t *f, op_t o)
{
    if (f->n_ops == f->cap_ops) {
        f->cap_ops = f->cap_ops ? f->cap_ops * 2 : 256;
        f->ops = realloc(f->ops, f->cap_ops * sizeof *f->ops);
        if (!f->ops) die("out of memory");
    }
    f->ops[f->n_ops++] = o;
}

static void record(int fd, off_t off, const void *p, size_t n)
{
    file_t *f = &files[fd_file[fd] - 1];
    op_t o = {off, n, malloc(n ? n : 1)};
    if (!o.data) die("out of memory");
    memcpy(o.data, p, n);
    if (fd_dsync[fd]) { /* O_DSYNC: on disk when the call returned */
        dur_apply(f, &o);
        free(o.data);
        return;
    }
    push_op(f, o);
}

static void record_iov(int fd, off_t off, const struct iovec *iov, int n, ssize_t done)
{
    for (int i = 0; i < n && done > 0; i++) {
        size_t k = iov[i].iov_len < (size_t)done ? iov[i].iov_len : (size_t)done;
        record(fd, off, iov[i].iov_base, k);
        off += (off_t)k;
        done -= (ssize_t)k;
    }
}

static int watched(int fd)
{
    return watch && fd >= 0 && fd < MAX_FD && fd_file[fd];
}

static int file_index(const char *path)
{
    for (int i = 0; i < n_files; i++)
        if (strcmp(path, files[i].path) == 0) return i;
    return -1;
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
    int i = fd >= 0 && watch ? file_index(path) : -1;
    if (i >= 0) {
        if (fd >= MAX_FD) die("descriptor too large");
        pthread_mutex_lock(&mu);
        fd_file[fd] = (unsigned char)(i + 1);
        fd_dsync[fd] = (flags & O_DSYNC) != 0;
        if (!files[i].dur_loaded) load_durable(&files[i], fd);
        pthread_mutex_unlock(&mu);
    }
    return fd;
}

int open64(const char *path, int flags, ...) __attribute__((alias("open")));

int close(int fd)
{
    resolve();
    if (watched(fd)) fd_file[fd] = 0;
    return real_close(fd);
}

ssize_t pwrite(int fd, const void *p, size_t n, off_t off)
{
    resolve();
    if (!watched(fd)) return real_pwrite(fd, p, n, off);
    pthread_mutex_lock(&mu);
    event();
    ssize_t r = real_pwrite(fd, p, n, off);
    if (r > 0) record(fd, off, p, (size_t)r);
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
    if (r > 0) record(fd, off, p, (size_t)r);
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
    record_iov(fd, off, iov, n, r);
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
    record_iov(fd, off, iov, n, r);
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
        file_t *f = &files[fd_file[fd] - 1];
        for (size_t i = 0; i < f->n_ops; i++) {
            dur_apply(f, &f->ops[i]);
            free(f->ops[i].data);
        }
        f->n_ops = 0;
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
    if (r == 0) push_op(&files[fd_file[fd] - 1], (op_t){len, 0, NULL});
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
