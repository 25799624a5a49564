/* sink_bench.c — helper of sink_bench.py (drain-rate benchmark, issue 5):
 *   sink_bench fill  --dir WAL --rows N --db DB --table T --out FILE
 *       append N TensorZero-shaped rows (~400 B) to a fresh log in records of 1000 rows with
 *       wal_append_wait, and write the same rows to FILE (for the direct bulk load);
 *   sink_bench drain --config YAML
 *       open the log, start the configured sinks, wait until every sink's cursor reaches the
 *       last seq, print {"rows":..,"seconds":..,"rows_per_s":..} as one JSON line. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "config/config.h"
#include "sinks/sink.h"
#include "wal/wal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *opt(int argc, char **argv, const char *name, const char *def)
{
    for (int i = 0; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return def;
}

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void uuid(char *out, uint64_t *s, uint64_t ms)
{
    uint64_t a = rnd(s), b = rnd(s);
    snprintf(out, 48, "%08" PRIx64 "-%04" PRIx64 "-7%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
             (ms >> 16) & 0xffffffffu, ms & 0xffff, a & 0xfff, 0x8000 | ((a >> 12) & 0x3fff),
             (uint64_t)(b & 0xffffffffffffull));
}

/* One ChatInference-shaped row (~400 bytes) ending in '\n'. */
static int make_row(char *buf, size_t cap, uint64_t i, uint64_t *s)
{
    char id[48], ep[48];
    uint64_t ms = 1767225600000ull + i * 7;
    uuid(id, s, ms);
    uuid(ep, s, ms - 1000);
    static const char *fn[] = {"draft_email", "summarize", "classify", "extract_entities"};
    return snprintf(buf, cap,
                    "{\"id\":\"%s\",\"function_name\":\"%s\",\"variant_name\":\"gpt_4o_mini_v%d\","
                    "\"episode_id\":\"%s\",\"input\":\"{\\\"messages\\\":[{\\\"role\\\":"
                    "\\\"user\\\",\\\"content\\\":"
                    "\\\"Write item %" PRIu64
                    " please\\\"}]}\",\"output\":\"[{\\\"type\\\":\\\"text"
                    "\\\",\\\"text\\\":\\\"Sure, here is item %" PRIu64 "."
                    "\\\"}]\",\"inference_params\":\"{\\\"chat_completion\\\":{}}\","
                    "\"processing_time_ms\":%d,\"tags\":\"{\\\"user\\\":\\\"u%d\\\"}\","
                    "\"timestamp\":\"2026-01-01 00:%02d:%02d\"}\n",
                    id, fn[i % 4], (int)(i % 3), ep, i, i, (int)(rnd(s) % 5000), (int)(i % 1000),
                    (int)((i / 60) % 60), (int)(i % 60));
}

static int cmd_fill(int argc, char **argv)
{
    const char *dir = opt(argc, argv, "--dir", NULL), *out = opt(argc, argv, "--out", NULL);
    const char *db = opt(argc, argv, "--db", "bench"),
               *table = opt(argc, argv, "--table", "ChatInference");
    uint64_t n = strtoull(opt(argc, argv, "--rows", "1000000"), NULL, 10);
    if (!dir || !out) {
        fprintf(stderr, "fill: --dir and --out are required\n");
        return 2;
    }
    sluice_cfg_t cfg;
    cfg_defaults(&cfg);
    free(cfg.wal.dir);
    cfg.wal.dir = strdup(dir);
    cfg.wal.max_bytes = 4ull << 30;
    cfg.wal.sync = CFG_SYNC_NONE;
    char err[512];
    wal_t *w;
    if (wal_open(&w, &cfg.wal, err, sizeof err) < 0) {
        fprintf(stderr, "fill: %s\n", err);
        return 1;
    }
    FILE *f = fopen(out, "w");
    size_t cap = 1000 * 1024, len = 0;
    char *rows = malloc(cap);
    uint64_t s = 88172645463325252ull, bytes = 0;
    for (uint64_t i = 0; i < n;) {
        len = 0;
        uint32_t k = 0;
        for (; k < 1000 && i < n; k++, i++)
            len += (size_t)make_row(rows + len, cap - len, i, &s);
        wal_insert_t ins = {.db = db, .table = table, .rows = rows, .rows_len = len, .n_rows = k};
        uint64_t a, b;
        int rc = wal_append_wait(w, &ins, &a, &b);
        if (rc < 0) {
            fprintf(stderr, "fill: append: %s\n", wal_strerror(rc));
            return 1;
        }
        fwrite(rows, 1, len, f);
        bytes += len;
    }
    fclose(f);
    free(rows);
    wal_flush(w); /* every acked record readable: last_seq below is the fill's last */
    printf("{\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"last_seq\":%" PRIu64 "}\n", n, bytes,
           wal_last_seq(w));
    wal_close(w);
    cfg_free(&cfg);
    return 0;
}

static int cmd_drain(int argc, char **argv)
{
    const char *path = opt(argc, argv, "--config", NULL);
    sluice_cfg_t cfg;
    char err[1024];
    if (!path || cfg_load(&cfg, path, err, sizeof err) < 0 ||
        cfg_finish(&cfg, err, sizeof err) < 0) {
        fprintf(stderr, "drain: config: %s\n", path ? err : "--config required");
        return 2;
    }
    log_set_level(cfg.log.level);
    wal_t *w;
    if (wal_open(&w, &cfg.wal, err, sizeof err) < 0) {
        fprintf(stderr, "drain: %s\n", err);
        return 1;
    }
    uint64_t last = wal_last_seq(w);
    wal_stats_t ws;
    wal_stats(w, &ws);
    double t0 = now_s();
    sink_t **s;
    size_t n;
    if (sinks_start(&cfg, w, &s, &n, err, sizeof err) < 0) {
        fprintf(stderr, "drain: %s\n", err);
        return 1;
    }
    for (;;) {
        int done = 1;
        for (size_t i = 0; i < n; i++)
            done &= sink_delivered_seq(s[i]) >= last;
        if (done) break;
        usleep(2000);
    }
    double dt = now_s() - t0;
    uint64_t rows = 0;
    for (size_t i = 0; i < n; i++) {
        sink_stats_t st;
        sink_get_stats(s[i], &st);
        rows += st.rows_sent;
    }
    printf("{\"rows\":%" PRIu64 ",\"seconds\":%.3f,\"rows_per_s\":%.0f}\n", rows, dt,
           (double)rows / dt);
    sinks_stop(s, n, 0);
    wal_close(w);
    cfg_free(&cfg);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "fill") == 0) return cmd_fill(argc - 2, argv + 2);
    if (argc >= 2 && strcmp(argv[1], "drain") == 0) return cmd_drain(argc - 2, argv + 2);
    fprintf(stderr, "usage: sink_bench fill|drain ...\n");
    return 2;
}
