/* backfill.c — `sluice backfill`, the run: copy a ClickHouse table's history into one configured
 * sink through the sink engine's own delivery code (sink_direct_deliver: same send, retries,
 * bisection), slice by slice, several slices in flight. The SELECT of a slice is ordered by
 * the time column and then every column, so re-reading a slice yields the same rows in the
 * same order and cuts them into the same batches; each batch's label comes from (log id,
 * sink, table, slice start, batch index, plan), so a slice resent after a kill is
 * deduplicated by StarRocks. The progress file <wal.dir>/backfill/<sink>.<db.table>.progress
 * records the plan, each slice's bounds before its first batch and each finished slice, so a
 * rerun redoes the unfinished slices with the same bounds and labels, and refuses a changed
 * plan. Slices grow (up to --max-slice) while they stay small and quick. The default upper
 * bound is the time the sink started live delivery (meta WAL_META_SINK_STARTED<sink>, written
 * with its cursor by wal_set_consumers): rows newer than that come through the live log. Here: the run loop, the
 * progress output and summary, --dry-run; slicing and copying are backfill_slice.c, the plan
 * and progress file backfill_plan.c, --status/--retry-dlq/metrics backfill_status.c. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/url.h"
#include "migrate/backfill_internal.h"
#include "migrate/migrate.h"
#include "migrate/migrate_internal.h"
#include "sinks/sink.h"
#include "wal/wal.h"

/* The message a Ctrl-C prints; written before the handler is installed (signal-safe write). */
static char interrupt_msg[1024];

static void on_interrupt(int sig)
{
    (void)sig;
    ssize_t r = write(STDERR_FILENO, interrupt_msg, strlen(interrupt_msg));
    (void)r;
    _exit(130);
}

static double elapsed(const bf_t *b)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - b->t0.tv_sec) + (double)(t.tv_nsec - b->t0.tv_nsec) / 1e9;
}

static void fmt_dur(double s, char *out, size_t len)
{
    long v = s < 0 ? 0 : (long)(s + 0.5);
    snprintf(out, len, "%ld:%02ld:%02ld", v / 3600, v / 60 % 60, v % 60);
}

static void utc_now(char out[24])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 24, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- progress output (mu held) ---- */

static uint64_t slices_estimate(const bf_t *b)
{
    uint64_t left = 0;
    for (int64_t a = b->next_start; a < b->until; a = bf_slice_end(b, a))
        left++;
    return b->slices_before + b->slices_begun + (b->n_redo - b->i_redo) + left;
}

/* One progress bf_report: the line rewritten in place on a terminal, else one timestamped line
 * (or a JSON object) per finished slice. slice_done: the worker that just finished, or NULL. */
void bf_report(bf_t *b, const bf_worker_t *slice_done)
{
    double t = elapsed(b);
    uint64_t now_rows = b->done_rows + b->inflight_rows;
    double rate = t > 0 ? (double)(b->sent_rows + b->inflight_rows) / t : 0;
    double left = b->total_rows > now_rows ? (double)(b->total_rows - now_rows) : 0;
    double eta = rate > 0 ? left / rate : -1;
    uint64_t i = b->slices_done + b->slices_before, n = slices_estimate(b);
    int pct = b->total_rows ? (int)(100.0 * (double)now_rows / (double)b->total_rows) : 100;
    char etas[32], ts[24];
    if (eta >= 0)
        fmt_dur(eta, etas, sizeof etas);
    else
        snprintf(etas, sizeof etas, "?");
    utc_now(ts);
    if (b->o->json) {
        if (!slice_done) return;
        char s[20], e[20];
        migrate_format_time(slice_done->s_start, s);
        migrate_format_time(slice_done->s_end, e);
        fprintf(b->err,
                "{\"event\":\"slice\",\"ts\":\"%s\",\"slice\":%" PRIu64 ",\"slices\":%" PRIu64
                ",\"start\":\"%s\",\"end\":\"%s\",\"slice_rows\":%" PRIu64 ",\"rows\":%" PRIu64
                ",\"rows_total\":%" PRIu64
                ",\"rows_per_s\":%.0f,\"eta_s\":%.0f,\"dead_rows\":%" PRIu64 "}\n",
                ts, i, n, s, e, slice_done->slice_rows, now_rows, b->total_rows, rate, eta,
                b->dead_rows);
    } else if (b->tty) {
        b->last_draw = t;
        fprintf(b->err,
                "\r\033[Kslice %" PRIu64 "/%" PRIu64 "  %" PRIu64 "/%" PRIu64
                " rows (%d%%)  %.0f rows/s  ETA %s%s",
                i, n, now_rows, b->total_rows, pct, rate, etas,
                b->dead_rows ? "  DEAD-LETTERED ROWS" : "");
    } else {
        if (!slice_done) return;
        char s[20], e[20];
        migrate_format_time(slice_done->s_start, s);
        migrate_format_time(slice_done->s_end, e);
        fprintf(b->err,
                "%s backfill: slice %" PRIu64 "/%" PRIu64 " [%s, %s) %" PRIu64 " rows; %" PRIu64
                "/%" PRIu64 " rows (%d%%), %.0f rows/s, ETA %s%s\n",
                ts, i, n, s, e, slice_done->slice_rows, now_rows, b->total_rows, pct, rate, etas,
                b->dead_rows ? ", rows dead-lettered" : "");
    }
    fflush(b->err);
}

/* A line that must not be overwritten by the progress line (warnings, retries). mu held. */
void bf_note(bf_t *b, const char *what, const char *msg)
{
    char ts[24];
    utc_now(ts);
    if (b->o->json) {
        buf_t j = {0};
        buf_printf(&j, "{\"event\":\"%s\",\"ts\":\"%s\",\"message\":\"", what, ts);
        buf_json_escape(&j, msg);
        buf_puts(&j, "\"}\n");
        if (j.data) fputs(j.data, b->err);
        buf_free(&j);
    } else {
        fprintf(b->err, "%s%s backfill: %s: %s\n", b->tty ? "\r\033[K" : "", ts, what, msg);
    }
    fflush(b->err);
}

void bf_fail_locked(bf_t *b, int code, const char *msg)
{
    if (!b->failed) {
        b->failed = 1;
        b->fail_code = code;
        snprintf(b->fail_msg, sizeof b->fail_msg, "%.1300s", msg);
    }
    pthread_cond_broadcast(&b->cv);
}

static void name_part(char *out, size_t len, const char *s)
{
    size_t k = 0;
    for (; *s && k + 1 < len; s++)
        out[k++] = (*s == '/') ? '_' : *s;
    out[k] = '\0';
}

/* ---- WAL ---- */

/* Log id and the sink's live start from the wal (read-only: a running sluice may own it).
 * A missing log is created only when allowed (create) and said so: an empty log where the
 * running instance's was expected is a wrong wal.dir, not a fresh start. */
static int read_wal(const sluice_cfg_t *cfg, const char *sink, int create, uint64_t *logid,
                    int64_t *started_ms, int *has_started, int *created, char *msg, size_t msglen)
{
    char key[300], val[32];
    size_t len = 0;
    wal_t *w = NULL;
    *has_started = 0;
    int rc = wal_open_readonly(&w, cfg->wal.dir, msg, msglen);
    if (rc == -ENOENT && !create) return -ENOENT;
    if (rc == -ENOENT) {
        rc = wal_open(&w, &cfg->wal, msg, msglen);
        *created = rc == 0;
    }
    if (rc < 0) return rc;
    *logid = wal_log_id(w);
    snprintf(key, sizeof key, "%s%s", WAL_META_SINK_STARTED, sink);
    *has_started = wal_meta_get(w, key, val, sizeof val, &len) == 0;
    if (*has_started) *started_ms = strtoll(val, NULL, 10);
    wal_close(w);
    return 0;
}

int migrate_live_start(const sluice_cfg_t *cfg, const char *sink, int64_t *until, char *msg,
                       size_t msglen)
{
    uint64_t logid;
    int64_t ms = 0;
    int has = 0, created = 0;
    int rc = read_wal(cfg, sink, 0, &logid, &ms, &has, &created, msg, msglen);
    if (rc == -ENOENT) {
        snprintf(msg, msglen, "no WAL in %s (wal.dir of %s)", cfg->wal.dir,
                 cfg->path ? cfg->path : "the config");
        return rc;
    }
    if (rc < 0) return rc;
    if (!has) {
        snprintf(msg, msglen, "sink %s has not started live delivery from the WAL in %s", sink,
                 cfg->wal.dir);
        return -ENOENT;
    }
    *until = ms / 1000;
    return 0;
}

/* ---- the commands ---- */

static const cfg_sink_t *find_sink(const sluice_cfg_t *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (strcmp(cfg->sinks[i].name, name) == 0) return &cfg->sinks[i];
    return NULL;
}

static void paths(bf_t *b, const sluice_cfg_t *cfg, char *dir, size_t dirlen)
{
    char tbl[600], sk[300], dt[600];
    snprintf(dir, dirlen, "%.2900s/backfill", cfg->wal.dir);
    name_part(sk, sizeof sk, b->o->sink);
    snprintf(dt, sizeof dt, "%s.%s", b->o->database, b->o->table);
    name_part(tbl, sizeof tbl, dt);
    snprintf(b->progress_path, sizeof b->progress_path, "%.3000s/%s.%s.progress", dir, sk, tbl);
    snprintf(b->dlq_path, sizeof b->dlq_path, "%.3000s/%s.%s.dlq.jsonl", dir, sk, tbl);
}

/* Rows and entries in a backfill dead-letter file (count of lines, sum of n_rows). */
void bf_dlq_count(const char *path, uint64_t *entries, uint64_t *rows)
{
    *entries = *rows = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        const char *p = strstr(line, "\"n_rows\":");
        (*entries)++;
        if (p) *rows += strtoull(p + 9, NULL, 10);
    }
    free(line);
    fclose(f);
}

/* --dry-run: the range, the boundary, and the rows per grid cell, from one GROUP BY. */
static int dry_run(bf_t *b, const bf_progress_t *p, const char *until_why, FILE *out)
{
    char s[20], u[20], e[20];
    migrate_format_time(b->since, s);
    migrate_format_time(b->until, u);
    uint64_t n = 0;
    for (int64_t a = b->since; a < b->until; a = bf_slice_end(b, a))
        n++;
    fprintf(out,
            "backfill %s.%s -> %s (dry run: nothing is sent)\n"
            "  source:   %s\n  range:    [%s, %s) UTC\n  boundary: %s\n"
            "  rows:     %" PRIu64 " in %" PRIu64 " slices: cells of %" PRId64
            " s merged up to %" PRId64 " s or %u rows; %" PRIu32 " in flight\n"
            "  progress: %zu slices done before (%s)\n"
            "  labels:   sluice_%016" PRIx64 "_%s_%s_b<slice start>_<batch>_<plan>\n"
            "  slice start          slice end                  rows%s\n",
            b->o->database, b->o->table, b->o->sink, b->shown, s, u, until_why, b->total_rows, n,
            b->o->slice_s, b->o->max_slice_s, (unsigned)BF_SLICE_ROWS, b->o->parallel, p->n_done,
            b->progress_path, b->logid, b->sc->name, b->o->table,
            p->n_done ? "  (done: already copied)" : "");
    uint64_t lines = 0;
    size_t c = 0;
    for (int64_t a = b->since, z; a < b->until; a = z) {
        z = bf_slice_end(b, a);
        uint64_t rows = 0;
        while (c < b->n_cells && b->cells[c].start < z) {
            if (b->cells[c].start + b->o->slice_s > a) rows += b->cells[c].rows;
            c++;
        }
        if (lines++ >= BF_DRY_RUN_LINES) continue;
        migrate_format_time(a, s);
        migrate_format_time(z, e);
        fprintf(out, "  %-20s %-20s %10" PRIu64 "%s\n", s, e, rows,
                bf_is_done(p, a, z) ? "  done" : "");
    }
    if (lines > BF_DRY_RUN_LINES)
        fprintf(out, "  ... %" PRIu64 " more slices\n", lines - BF_DRY_RUN_LINES);
    return BF_OK;
}

/* Is the sink the very ClickHouse the rows come from? Then backfill would copy the table
 * into itself. Same host (loopback names agree), port and database. */
static int sink_is_source(const bf_t *b)
{
    if (b->sc->type != CFG_SINK_CLICKHOUSE) return 0;
    char h1[256], h2[256], d1[256], d2[256];
    unsigned p1, p2;
    if (migrate_url_endpoint(b->source, h1, sizeof h1, &p1, d1, sizeof d1) < 0 ||
        migrate_url_endpoint(b->sc->url, h2, sizeof h2, &p2, d2, sizeof d2) < 0)
        return 0;
    const char *db = b->sc->database && *b->sc->database ? b->sc->database : b->o->database;
    return strcmp(h1, h2) == 0 && p1 == p2 && strcmp(db, b->o->database) == 0;
}

/* The source URL with its credentials: --source-sink's, or --source with a password from
 * the environment or a file. */
static int resolve_source(bf_t *b, FILE *err)
{
    const backfill_opts_t *o = b->o;
    char pass[512], msg[512];
    if (o->source_sink) {
        const cfg_sink_t *s = find_sink(b->cfg, o->source_sink);
        if (!s || s->type != CFG_SINK_CLICKHOUSE) {
            fprintf(err, "sluice backfill: --source-sink: no ClickHouse sink named %s in %s\n",
                    o->source_sink, b->cfg->path ? b->cfg->path : "the config");
            return BF_USAGE;
        }
        if (o->source_password_env || o->source_password_file) {
            fprintf(err, "sluice backfill: --source-sink uses that sink's password; drop "
                         "--source-password-env/-file\n");
            return BF_USAGE;
        }
        if (migrate_url_with_auth(s->url, s->user ? s->user : "default",
                                  s->password ? s->password : "", b->source,
                                  sizeof b->source) < 0) {
            fprintf(err, "sluice backfill: sink %s: cannot use its url as a source\n", s->name);
            return BF_USAGE;
        }
    } else {
        int rc = migrate_read_password(o->source_password_env, o->source_password_file, pass,
                                       sizeof pass, msg, sizeof msg);
        if (rc < 0) {
            fprintf(err, "sluice backfill: source password: %s\n", msg);
            return BF_USAGE;
        }
        if (rc == 1) {
            if (migrate_url_with_auth(o->source, NULL, pass, b->source, sizeof b->source) < 0) {
                fprintf(err, "sluice backfill: --source: cannot parse URL\n");
                return BF_USAGE;
            }
        } else {
            snprintf(b->source, sizeof b->source, "%s", o->source);
            char shown[1200];
            url_redact(o->source, shown, sizeof shown);
            if (strcmp(shown, o->source) != 0)
                fprintf(err, "backfill: bf_note: the password in --source is visible to every user "
                             "(ps, shell history): prefer --source-password-env VAR\n");
        }
        memset(pass, 0, sizeof pass);
    }
    url_redact(b->source, b->shown, sizeof b->shown);
    char dbdir[256];
    const char *why;
    if (migrate_http_base(b->source, "clickhouse://", b->base, sizeof b->base, dbdir,
                          sizeof dbdir, &why) < 0) {
        fprintf(err, "sluice backfill: --source %s: %s\n", b->shown, why);
        return BF_USAGE;
    }
    return BF_OK;
}

static void summary(bf_t *b, FILE *out, double secs, int code)
{
    char s[20], u[20], d[32];
    migrate_format_time(b->since, s);
    migrate_format_time(b->until, u);
    fmt_dur(secs, d, sizeof d);
    double rate = secs > 0 ? (double)b->sent_rows / secs : 0;
    uint64_t n = b->slices_before + b->slices_done;
    if (b->o->json) {
        fprintf(out,
                "{\"event\":\"summary\",\"table\":\"%s.%s\",\"sink\":\"%s\",\"since\":\"%s\","
                "\"until\":\"%s\",\"slices\":%" PRIu64 ",\"slices_done_before\":%" PRIu64
                ",\"rows_sent\":%" PRIu64 ",\"elapsed_s\":%.3f,\"rows_per_s\":%.0f,"
                "\"dead_rows\":%" PRIu64 ",\"dlq_file\":\"%s\",\"exit\":%d}\n",
                b->o->database, b->o->table, b->o->sink, s, u, n, b->slices_before, b->sent_rows,
                secs, rate, b->dead_rows, b->dead_rows ? b->dlq_path : "", code);
        return;
    }
    fprintf(out,
            "backfill %s.%s -> %s: [%s, %s) UTC, %" PRIu64 " slices (%" PRIu64
            " done before), %" PRIu64 " rows sent in %s (%.0f rows/s), %" PRIu64
            " dead-lettered%s%s\n",
            b->o->database, b->o->table, b->o->sink, s, u, n, b->slices_before, b->sent_rows, d,
            rate, b->dead_rows, b->dead_rows ? " into " : "", b->dead_rows ? b->dlq_path : "");
}

static int run_slices(bf_t *b, FILE *err)
{
    char msg[512];
    unsigned nw = b->o->parallel;
    for (unsigned i = 0; i < nw; i++) {
        b->w[i].b = b;
        msg[0] = '\0';
        if (sink_direct_open(b->sc, b->logid, &b->w[i].sink, msg, sizeof msg) < 0) {
            fprintf(err, "sluice backfill: %s\n", msg);
            return BF_ERR;
        }
    }
    pthread_mutex_lock(&b->mu);
    for (unsigned i = 0; i < nw; i++) {
        if (pthread_create(&b->w[i].th, NULL, bf_worker_main, &b->w[i]) == 0) {
            b->w[i].started = 1;
            b->running++;
        }
    }
    /* The main thread draws the terminal line and reports a sink that keeps retrying. */
    while (b->running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 250 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) ts.tv_sec++, ts.tv_nsec -= 1000000000L;
        pthread_cond_timedwait(&b->cv, &b->mu, &ts);
        if (b->tty && !b->o->json) bf_report(b, NULL);
        double t = elapsed(b);
        for (unsigned i = 0; i < nw && t - b->last_retry_note >= 5.0; i++) {
            sink_stats_t st;
            if (!b->w[i].started) continue;
            sink_get_stats(b->w[i].sink, &st);
            if (st.state == SINK_DEGRADED && st.retries > b->w[i].retries_seen) {
                char m[512];
                snprintf(m, sizeof m, "sink %s: %s (retrying, %" PRIu64 " retries so far)",
                         b->sc->name, st.last_error, st.retries);
                bf_note(b, "waiting", m);
                b->w[i].retries_seen = st.retries;
                b->last_retry_note = t;
            }
        }
    }
    pthread_mutex_unlock(&b->mu);
    for (unsigned i = 0; i < nw; i++)
        if (b->w[i].started) pthread_join(b->w[i].th, NULL);
    if (b->tty && !b->o->json) {
        bf_report(b, NULL);
        fputc('\n', b->err);
    }
    return b->failed ? b->fail_code : BF_OK;
}

int migrate_backfill(const sluice_cfg_t *cfg, backfill_opts_t *opts, FILE *out, FILE *err)
{
    backfill_opts_t o = *opts;
    bf_t b;
    memset(&b, 0, sizeof b);
    b.o = &o;
    b.cfg = cfg;
    b.err = err;
    b.out = out;
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cv, NULL);
    char msg[1024], dir[3000];
    int code = BF_ERR, rc;
    bf_progress_t prog = {0};
    if (!(b.sc = find_sink(cfg, o.sink))) {
        fprintf(err, "sluice backfill: no sink named %s in %s\n", o.sink,
                cfg->path ? cfg->path : "the config");
        return BF_USAGE;
    }
    paths(&b, cfg, dir, sizeof dir);
    if (o.status) return bf_status(&b, out, err);
    {
        char cmd[600];
        snprintf(cmd, sizeof cmd, "sluice backfill --status --config %s --sink %s --table %s.%s",
                 cfg->path ? cfg->path : "FILE", o.sink, o.database, o.table);
        snprintf(interrupt_msg, sizeof interrupt_msg,
                 "\nsluice backfill: interrupted. Every finished slice is recorded: run the same "
                 "command again to resume\n(slices cut short are resent under the same labels). "
                 "Where it stopped: %.500s\n",
                 cmd);
        signal(SIGINT, on_interrupt);
        signal(SIGTERM, on_interrupt);
    }
    /* The engine's own warnings (retries, dead-lettered rows) are reported here, in the
     * progress format, instead of as interleaved JSON log lines. */
    log_set_level(LOG_LEVEL_ERROR);
    if (!sink_wants_table(b.sc, o.database, o.table)) {
        fprintf(err,
                "sluice backfill: sink %s does not take %s.%s (its include/exclude lists in %s): "
                "add the table to include, or the rows would all be dropped\n",
                o.sink, o.database, o.table, cfg->path ? cfg->path : "the config");
        return BF_REFUSED;
    }
    b.max_rows = b.sc->batch_max_rows ? b.sc->batch_max_rows : 10000;
    b.max_bytes = b.sc->batch_max_bytes ? b.sc->batch_max_bytes : (8u << 20);
    b.tty = isatty(fileno(err));

    int64_t started_ms = 0;
    int has_started = 0;
    int create_wal = o.has_until && !o.dry_run;
    int created = 0;
    rc = read_wal(cfg, o.sink, create_wal || o.retry_dlq, &b.logid, &started_ms, &has_started,
                  &created, msg, sizeof msg);
    if (rc == -ENOENT && o.dry_run && o.has_until) {
        rc = 0; /* a dry run creates nothing; the log id in the labels shown is then 0 */
    } else if (rc == -ENOENT) {
        fprintf(err,
                "sluice backfill: no WAL in %s (wal.dir of %s): is this the running instance's "
                "config? Without its WAL there is no dual-write boundary and no log id for the "
                "labels. Run `sluice run` with this config first, or give --until to start a "
                "new log here\n",
                cfg->wal.dir, cfg->path ? cfg->path : "the config");
        return BF_REFUSED;
    }
    if (rc < 0) {
        fprintf(err, "sluice backfill: wal %s: %s\n", cfg->wal.dir, msg);
        return BF_WAL;
    }
    if (created)
        fprintf(err,
                "backfill: warning: there was no WAL in %s (wal.dir of %s): created a new, empty "
                "one; its log id goes into the labels, so run `sluice run` with this same wal.dir "
                "for the live sink\n",
                cfg->wal.dir, cfg->path ? cfg->path : "the config");
    if (!o.dry_run && mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(err, "sluice backfill: %s: %s\n", dir, strerror(errno));
        return BF_ERR;
    }
    if (o.retry_dlq) {
        if ((code = bf_open_progress(&b, err)) != BF_OK) return code;
        code = bf_retry_dlq(&b, out, err);
        fclose(b.progress);
        return code;
    }
    if ((code = resolve_source(&b, err)) != BF_OK) return code;
    code = BF_ERR;
    if (sink_is_source(&b) && !o.force) {
        fprintf(err,
                "sluice backfill: sink %s (%s) is the source itself (same host, port and "
                "database %s): the table would be copied into itself. Pick the new backend's "
                "sink, or give --force if this is really meant\n",
                o.sink, b.sc->url, o.database);
        return BF_REFUSED;
    }
    b.since = o.since;
    b.until = o.until;
    char until_why[256];
    if (!o.has_until) {
        if (!has_started) {
            fprintf(err,
                    "sluice backfill: sink %s has not started live delivery from this log, so "
                    "there is no dual-write boundary: give --until, or start `sluice run` with "
                    "the sink first (deploy/MIGRATION.md)\n",
                    o.sink);
            return BF_USAGE;
        }
        /* The boundary: rows from this second on arrived through the live log. */
        b.until = started_ms / 1000;
        char t[20];
        migrate_format_time(b.until, t);
        snprintf(until_why, sizeof until_why,
                 "%s UTC, the sink's live start (rows from then on come through the live log)", t);
        if (!o.dry_run && !o.json)
            fprintf(err, "backfill: --until defaults to the sink's live start, %s UTC\n", t);
    } else {
        char t[20];
        migrate_format_time(b.until, t);
        snprintf(until_why, sizeof until_why, "--until %s UTC%s", t,
                 has_started ? " (the sink's live start is recorded: rows after it come live)"
                             : "");
    }

    if ((rc = bf_progress_read(b.progress_path, &prog)) < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(-rc));
        goto out;
    }
    if (o.restart && !o.dry_run) {
        bf_progress_free(&prog);
    } else if (!o.has_since && prog.has_plan) {
        char v[64];
        if (bf_plan_field(prog.plan, "since", v, sizeof v)) b.since = strtoll(v, NULL, 10);
    }
    clock_gettime(CLOCK_MONOTONIC, &b.t0);
    if ((rc = bf_load_columns(&b, msg, sizeof msg)) < 0 ||
        (rc = bf_load_range(&b, &b.since, b.until, o.has_since || (prog.has_plan && !o.restart),
                            msg, sizeof msg)) < 0) {
        fprintf(err, "sluice backfill: source %s: %s\n", b.shown, msg);
        goto out;
    }
    if (b.since > b.until) b.since = b.until;
    bf_make_plan_line(&b, b.plan_line, sizeof b.plan_line);
    if (!o.restart && (prog.has_plan || prog.old_format)) {
        char diff[1500] = "", again[256] = "";
        if (prog.has_plan) bf_plan_diff(prog.plan, b.plan_line, diff, sizeof diff);
        if (prog.old_format || diff[0]) {
            if (prog.has_plan) bf_plan_as_options(prog.plan, again, sizeof again);
            fprintf(err,
                    "sluice backfill: the plan differs from the one recorded in %s: %s.\n"
                    "  To start over with the new plan: add --restart (slices sent already are "
                    "sent again under new labels;\n  Primary Key tables absorb that).\n"
                    "  To continue the recorded plan: run the same command as before%s%s.\n",
                    b.progress_path,
                    prog.old_format ? "it was written by an older sluice and records no plan"
                                    : diff,
                    again[0] ? " (" : "", again[0] ? again : "");
            if (again[0]) fputs(")\n", err);
            code = BF_REFUSED;
            goto out;
        }
    }
    if ((rc = bf_load_cells(&b, msg, sizeof msg)) < 0) {
        fprintf(err, "sluice backfill: source %s: %s\n", b.shown, msg);
        goto out;
    }
    if (o.dry_run) {
        code = dry_run(&b, &prog, until_why, out);
        goto out;
    }
    if ((code = bf_open_progress(&b, err)) != BF_OK) goto out;
    code = BF_ERR;
    if (o.restart) {
        if (ftruncate(fileno(b.progress), 0) < 0) {
            fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(errno));
            goto out;
        }
    }
    if (!prog.has_plan && bf_progress_line(&b, b.plan_line) < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b.progress_path, strerror(errno));
        goto out;
    }
    /* Resume: finished slices are skipped, begun ones redone with their recorded bounds, new
     * ones start where the last begun one ended. */
    b.next_start = b.since;
    for (size_t i = 0; i < prog.n_done; i++) {
        b.done_rows += prog.done_rows[i];
        b.slices_before++;
    }
    for (size_t i = 0; i < prog.n_begun; i++) {
        if (prog.begun[i].end > b.next_start) b.next_start = prog.begun[i].end;
        if (bf_is_done(&prog, prog.begun[i].start, prog.begun[i].end)) continue;
        if (bf_grow((void **)&b.redo, b.n_redo, sizeof *b.redo) < 0) goto out;
        b.redo[b.n_redo++] = prog.begun[i];
    }
    code = run_slices(&b, err);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    double secs = elapsed(&b);
    if (code != BF_OK) {
        fprintf(err,
                "sluice backfill: %s\n  Nothing of the failed slice is recorded as done: fix the "
                "cause and run the same command again to resume.\n",
                b.fail_msg);
        if (code == BF_REFUSED)
            fprintf(err, "  (a missing table: create it in the sink first, deploy/MIGRATION.md "
                         "step 2; 401/403: check the sink's user and password)\n");
        summary(&b, out, secs, code);
        goto out;
    }
    code = b.dead_rows ? BF_DEAD : BF_OK;
    summary(&b, out, secs, code);
    if (b.dead_rows)
        fprintf(err,
                "sluice backfill: %" PRIu64 " rows were refused by sink %s and dead-lettered into "
                "%s (each line has the reason in \"error\").\n  Fix the cause (the table's DDL, "
                "or the rows in that file), then re-send them with:\n    sluice backfill "
                "--config %s --sink %s --table %s.%s --retry-dlq\n",
                b.dead_rows, o.sink, b.dlq_path, cfg->path ? cfg->path : "FILE", o.sink, o.database,
                o.table);
out:
    for (unsigned i = 0; i < BF_MAX_PARALLEL; i++) {
        if (b.w[i].sink) sink_direct_close(b.w[i].sink);
        buf_free(&b.w[i].batch);
    }
    if (b.progress) fclose(b.progress);
    bf_progress_free(&prog);
    free(b.redo);
    free(b.cells);
    buf_free(&b.order_by);
    memset(b.source, 0, sizeof b.source);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cv);
    return code;
}
