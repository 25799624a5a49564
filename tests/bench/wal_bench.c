/* wal_bench.c — group commit under load: T producer threads each append ~400-byte records and
 * wait for the ack (sync: always), while one consumer reads and acks like a sink (so the
 * writer also truncates). Prints acked appends/s, ack latency p50/p99/p999, commits/s,
 * appends and device flushes per commit (the wal's own count: fsyncs in wal_stats), and the
 * raw fdatasync rate of the same directory for comparison.
 * Usage: wal_bench [DIR] [SECONDS_PER_RUN] [T,T,...]   (defaults: ./wal-bench-*, 3, 1,16,64,256) */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "wal/wal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* 4 KiB pwrite + fdatasync in a loop: what one durable commit at least costs on this disk. */
static double raw_fdatasync_rate(const char *dir, double secs)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/fsync-probe", dir);
    int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0644);
    if (fd < 0) return 0;
    char buf[4096];
    memset(buf, 'x', sizeof buf);
    long n = 0;
    double t0 = now_s(), t;
    do {
        if (pwrite(fd, buf, sizeof buf, (off_t)(n % 256) * 4096) < 0 || fdatasync(fd)) break;
        n++;
    } while ((t = now_s()) - t0 < secs);
    close(fd);
    unlink(path);
    return (double)n / (now_s() - t0);
}

typedef struct {
    wal_t *w;
    atomic_int *stop;
    double *lat;
    size_t n, cap;
    int id;
} producer_t;

static void *producer(void *arg)
{
    producer_t *p = arg;
    char row[512];
    int len = snprintf(row, sizeof row,
                       "{\"ts\":\"2024-05-01 12:00:00.000\",\"service\":\"checkout-%d\",\"level\":"
                       "\"info\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"msg\":\"",
                       p->id);
    while (len < 396) row[len++] = 'm';
    memcpy(row + len, "\"}\n", 4);
    len += 3;
    wal_insert_t ins = {.db = "obs", .table = "logs", .rows = row, .rows_len = (size_t)len,
                        .n_rows = 1};
    while (!atomic_load(p->stop)) {
        double t0 = now_s();
        if (wal_append_wait(p->w, &ins, NULL, NULL) != 0) {
            fprintf(stderr, "append failed\n");
            exit(1);
        }
        if (p->n < p->cap) p->lat[p->n] = now_s() - t0;
        p->n++;
    }
    return NULL;
}

/* A sink that reads everything and acks it, so truncation runs during the benchmark. */
static void *consumer(void *arg)
{
    producer_t *c = arg;
    uint64_t after = 0;
    while (!atomic_load(c->stop)) {
        if (wal_wait(c->w, after, 50) != 0) continue;
        wal_batch_t b;
        if (wal_read(c->w, after, 10000, 8u << 20, &b) || b.n == 0) continue;
        after = b.recs[b.n - 1].seq;
        wal_batch_free(&b);
        wal_cursor_t cur = {after, 0, 0};
        wal_cursor_commit(c->w, "bench", &cur, NULL, 0);
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void run(const char *base, int threads, double secs)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/wal-%d", base, threads);
    cfg_wal_t cfg = {.dir = dir, .max_bytes = 2ull << 30, .max_record_bytes = 1u << 20,
                     .sync = CFG_SYNC_ALWAYS, .sync_interval_ms = 100,
                     .when_full = CFG_FULL_REJECT, .block_timeout_ms = 5000,
                     .truncate_chunk = 1000};
    char err[1024];
    wal_t *w;
    if (wal_open(&w, &cfg, err, sizeof err)) {
        fprintf(stderr, "wal_open: %s\n", err);
        exit(1);
    }
    wal_consumer_t cons = {"bench", 0, 0};
    wal_set_consumers(w, &cons, 1);
    atomic_int stop = 0;
    producer_t *p = calloc((size_t)threads + 1, sizeof *p);
    pthread_t *th = calloc((size_t)threads + 1, sizeof *th);
    wal_stats_t s0, s1;
    wal_stats(w, &s0);
    double t0 = now_s();
    for (int i = 0; i <= threads; i++) {
        p[i] = (producer_t){.w = w, .stop = &stop, .id = i, .cap = 400000};
        if (i < threads) {
            p[i].lat = malloc(p[i].cap * sizeof(double));
            pthread_create(&th[i], NULL, producer, &p[i]);
        } else {
            pthread_create(&th[i], NULL, consumer, &p[i]);
        }
    }
    usleep((useconds_t)(secs * 1e6));
    atomic_store(&stop, 1);
    for (int i = 0; i <= threads; i++) pthread_join(th[i], NULL);
    double el = now_s() - t0;
    wal_stats(w, &s1);
    size_t total = 0, kept = 0;
    for (int i = 0; i < threads; i++) {
        total += p[i].n;
        kept += p[i].n < p[i].cap ? p[i].n : p[i].cap;
    }
    double *all = malloc((kept ? kept : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < threads; i++) {
        size_t m = p[i].n < p[i].cap ? p[i].n : p[i].cap;
        memcpy(all + k, p[i].lat, m * sizeof *all);
        k += m;
        free(p[i].lat);
    }
    qsort(all, kept, sizeof *all, cmp_d);
    double p50 = kept ? all[kept / 2] : 0, p99 = kept ? all[(size_t)((double)kept * 0.99)] : 0;
    double p999 = kept ? all[(size_t)((double)kept * 0.999)] : 0;
    uint64_t fs = s1.fsyncs - s0.fsyncs, ap = s1.appends - s0.appends;
    uint64_t cm = s1.commits - s0.commits;
    printf("%9d %12.0f %9.2f %9.2f %9.2f %10.0f %14.1f %14.2f\n", threads, (double)total / el,
           p50 * 1e3, p99 * 1e3, p999 * 1e3, (double)cm / el, cm ? (double)ap / (double)cm : 0,
           cm ? (double)fs / (double)cm : 0);
    fflush(stdout);
    free(all);
    free(p);
    free(th);
    wal_close(w);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(int argc, char **argv)
{
    char base[4096];
    if (argc > 1) {
        snprintf(base, sizeof base, "%s", argv[1]);
        mkdir(base, 0755);
    } else {
        snprintf(base, sizeof base, "./wal-bench-XXXXXX");
        if (!mkdtemp(base)) return 1;
    }
    double secs = argc > 2 ? atof(argv[2]) : 3.0;
    const char *list = argc > 3 ? argv[3] : "1,16,64,256";
    log_set_level(LOG_LEVEL_WARN);

    double raw = raw_fdatasync_rate(base, 2.0);
    printf("dir %s: raw fdatasync rate (4 KiB pwrite + fdatasync): %.0f/s\n", base, raw);
    printf("sync: always, ~400-byte records, each producer waits for its ack\n");
    printf("%9s %12s %9s %9s %9s %10s %14s %14s\n", "producers", "acked/s", "p50 ms", "p99 ms",
           "p999 ms", "commits/s", "appends/commit", "flushes/commit");
    char *copy = strdup(list);
    for (char *tok = strtok(copy, ","); tok; tok = strtok(NULL, ","))
        run(base, atoi(tok), secs);
    free(copy);
    if (argc <= 1) rmdir(base);
    return 0;
}
