/* backfill_status.c — what a backfill left behind, read back: `--status`, the metrics of the
 * running instance (from every progress file in wal.dir), and `--retry-dlq`, which re-sends
 * the rows of the backfill's dead-letter file. */
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

/* ---- metrics of the running instance ---- */

static void prom_label(buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '"' || *v == '\\') buf_append(b, "\\", 1);
        if (*v == '\n') continue;
        buf_append(b, v, 1);
    }
}

typedef struct {
    char sink[256], table[512];
    uint64_t rows, slices, dead;
    int running;
} bf_metric_t;

int migrate_backfill_metrics(const char *wal_dir, buf_t *out)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%.4000s/backfill", wal_dir);
    DIR *d = opendir(dir);
    if (!d) return 0; /* no backfill ever ran on this log */
    bf_metric_t *m = NULL;
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t l = strlen(e->d_name);
        if (l < 10 || strcmp(e->d_name + l - 9, ".progress") != 0) continue;
        char path[4400], v[600];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        bf_progress_t p;
        if (bf_progress_read(path, &p) < 0 || !p.has_plan) {
            bf_progress_free(&p);
            continue;
        }
        if (bf_grow((void **)&m, n, sizeof *m) < 0) {
            bf_progress_free(&p);
            break;
        }
        bf_metric_t *x = &m[n++];
        memset(x, 0, sizeof *x);
        snprintf(x->sink, sizeof x->sink, "%.200s",
                 bf_plan_field(p.plan, "sink", v, sizeof v) ? v : "");
        snprintf(x->table, sizeof x->table, "%.500s",
                 bf_plan_field(p.plan, "table", v, sizeof v) ? v : "");
        for (size_t i = 0; i < p.n_done; i++)
            x->rows += p.done_rows[i];
        x->slices = p.n_done;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            x->running = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
            close(fd);
        }
        char dlq[4400];
        uint64_t entries;
        snprintf(dlq, sizeof dlq, "%.*s.dlq.jsonl", (int)(strlen(path) - 9), path);
        bf_dlq_count(dlq, &entries, &x->dead);
        bf_progress_free(&p);
    }
    closedir(d);
    static const struct {
        const char *name, *help;
    } fam[] = {{"sluice_backfill_rows_done", "Rows of finished backfill slices."},
               {"sluice_backfill_slices_done", "Finished backfill slices."},
               {"sluice_backfill_dead_rows", "Rows a backfill dead-lettered into its own file."},
               {"sluice_backfill_running", "1 while a backfill of the table runs."}};
    for (size_t f = 0; n && f < sizeof fam / sizeof fam[0]; f++) {
        buf_printf(out, "# HELP %s %s\n# TYPE %s gauge\n", fam[f].name, fam[f].help, fam[f].name);
        for (size_t i = 0; i < n; i++) {
            uint64_t val = f == 0   ? m[i].rows
                           : f == 1 ? m[i].slices
                           : f == 2 ? m[i].dead
                                    : (uint64_t)m[i].running;
            buf_printf(out, "%s{sink=\"", fam[f].name);
            prom_label(out, m[i].sink);
            buf_puts(out, "\",table=\"");
            prom_label(out, m[i].table);
            buf_printf(out, "\"} %" PRIu64 "\n", val);
        }
    }
    free(m);
    return out->oom ? -ENOMEM : 0;
}

int bf_status(bf_t *b, FILE *out, FILE *err)
{
    bf_progress_t p;
    int rc = bf_progress_read(b->progress_path, &p);
    if (rc < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b->progress_path, strerror(-rc));
        return BF_ERR;
    }
    if (!p.has_plan && !p.n_done) {
        fprintf(err, "sluice backfill: no backfill of %s.%s into %s recorded (%s)\n",
                b->o->database, b->o->table, b->o->sink, b->progress_path);
        bf_progress_free(&p);
        return BF_ERR;
    }
    int running = 0;
    int fd = open(b->progress_path, O_RDONLY);
    if (fd >= 0) {
        running = flock(fd, LOCK_SH | LOCK_NB) < 0 && errno == EWOULDBLOCK;
        close(fd);
    }
    uint64_t rows = 0, dead_e, dead_r, open_slices = 0;
    for (size_t i = 0; i < p.n_done; i++)
        rows += p.done_rows[i];
    for (size_t i = 0; i < p.n_begun; i++)
        open_slices += !bf_is_done(&p, p.begun[i].start, p.begun[i].end);
    bf_dlq_count(b->dlq_path, &dead_e, &dead_r);
    char v[256], since[20] = "?", until[20] = "?", covered[20] = "-", mod[24] = "?";
    if (bf_plan_field(p.plan, "since", v, sizeof v))
        migrate_format_time(strtoll(v, NULL, 10), since);
    if (bf_plan_field(p.plan, "until", v, sizeof v))
        migrate_format_time(strtoll(v, NULL, 10), until);
    int64_t hi = INT64_MIN;
    for (size_t i = 0; i < p.n_done; i++)
        if (p.done[i].end > hi) hi = p.done[i].end;
    if (hi != INT64_MIN) migrate_format_time(hi, covered);
    struct stat sb;
    if (stat(b->progress_path, &sb) == 0) {
        struct tm tm;
        gmtime_r(&sb.st_mtime, &tm);
        strftime(mod, sizeof mod, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
    const char *state = running       ? "running"
                        : open_slices ? "stopped (rerun the same command to resume)"
                                      : "stopped";
    if (b->o->json)
        fprintf(out,
                "{\"table\":\"%s.%s\",\"sink\":\"%s\",\"state\":\"%s\",\"since\":\"%s\","
                "\"until\":\"%s\",\"slices_done\":%zu,\"slices_unfinished\":%" PRIu64
                ",\"rows_done\":%" PRIu64 ",\"done_up_to\":\"%s\",\"dead_rows\":%" PRIu64
                ",\"updated\":\"%s\",\"progress_file\":\"%s\"}\n",
                b->o->database, b->o->table, b->o->sink, running ? "running" : "stopped", since,
                until, p.n_done, open_slices, rows, covered, dead_r, mod, b->progress_path);
    else
        fprintf(out,
                "backfill %s.%s -> %s: %s\n  plan: [%s, %s) UTC%s\n  done: %zu slices, %" PRIu64
                " rows, up to %s; %" PRIu64 " slices started and unfinished\n"
                "  dead-lettered: %" PRIu64 " rows%s%s\n  last update: %s (%s)\n",
                b->o->database, b->o->table, b->o->sink, state, since, until,
                p.old_format ? " (progress written by an older sluice)" : "", p.n_done, rows,
                covered, open_slices, dead_r, dead_r ? " in " : "", dead_r ? b->dlq_path : "", mod,
                b->progress_path);
    bf_progress_free(&p);
    return BF_OK;
}

/* --retry-dlq: re-send the rows of the dead-letter file. The file is renamed to .retrying
 * first; rows refused again go to a new dead-letter file; the .retrying file is removed only
 * once every entry was delivered or dead-lettered again, so a kill half way leaves it for
 * the next --retry-dlq (same rows, same labels: deduplicated). */
int bf_retry_dlq(bf_t *b, FILE *out, FILE *err)
{
    char retrying[4200];
    snprintf(retrying, sizeof retrying, "%s.retrying", b->dlq_path);
    if (access(retrying, F_OK) != 0 && rename(b->dlq_path, retrying) < 0) {
        if (errno == ENOENT) {
            fprintf(out, "backfill %s.%s -> %s: no dead-lettered rows to retry (%s)\n",
                    b->o->database, b->o->table, b->o->sink, b->dlq_path);
            return BF_OK;
        }
        fprintf(err, "sluice backfill: %s: %s\n", b->dlq_path, strerror(errno));
        return BF_ERR;
    }
    FILE *f = fopen(retrying, "r");
    if (!f) {
        fprintf(err, "sluice backfill: %s: %s\n", retrying, strerror(errno));
        return BF_ERR;
    }
    char *line = NULL, msg[512] = "";
    size_t cap = 0;
    ssize_t n;
    int code = BF_OK;
    uint64_t entries = 0, rows_sent = 0;
    bf_worker_t *w = &b->w[0];
    w->b = b;
    if (sink_direct_open(b->sc, b->logid, &w->sink, msg, sizeof msg) < 0) {
        fprintf(err, "sluice backfill: %s\n", msg);
        fclose(f);
        return BF_ERR;
    }
    while ((n = getline(&line, &cap, f)) > 0) {
        json_member_t fl[16];
        int nf = json_members(line, (size_t)n - (line[n - 1] == '\n'), fl, 16);
        buf_t rows = {0}, db = {0}, table = {0}, start = {0};
        int is_null;
        for (int i = 0; i < nf; i++) {
            buf_t *t = fl[i].key_len == 4 && memcmp(fl[i].key, "rows", 4) == 0            ? &rows
                       : fl[i].key_len == 2 && memcmp(fl[i].key, "db", 2) == 0            ? &db
                       : fl[i].key_len == 5 && memcmp(fl[i].key, "table", 5) == 0         ? &table
                       : fl[i].key_len == 11 && memcmp(fl[i].key, "slice_start", 11) == 0 ? &start
                                                                                          : NULL;
            if (t) json_value_text(fl[i].val, fl[i].val_len, t, &is_null);
        }
        int rc = -EINVAL;
        if (rows.data && table.data && !rows.oom) {
            uint32_t nr = 0;
            for (size_t k = 0; k < rows.len; k++)
                nr += rows.data[k] == '\n';
            if (rows.len && rows.data[rows.len - 1] != '\n') nr++;
            char label[MIGRATE_LABEL_MAX + 1];
            backfill_retry_label(label, b->logid, b->sc->name, table.data,
                                 fnv1a32(rows.data, rows.len), nr);
            w->s_start = start.data ? strtoll(start.data, NULL, 10) : 0;
            rc = sink_direct_deliver(w->sink, db.data ? db.data : b->o->database, table.data,
                                     rows.data, rows.len, nr, label, bf_on_dead, w);
            if (rc == 0) rows_sent += nr;
            if (rc == -EACCES) {
                sink_stats_t st;
                sink_get_stats(w->sink, &st);
                snprintf(w->msg, sizeof w->msg, "sink %s refused the load: %s", b->sc->name,
                         st.last_error);
            }
        } else {
            snprintf(w->msg, sizeof w->msg, "entry %" PRIu64 " of %.900s is not a dead-letter line",
                     entries + 1, retrying);
        }
        buf_free(&rows);
        buf_free(&db);
        buf_free(&table);
        buf_free(&start);
        if (rc < 0) {
            fprintf(err,
                    "sluice backfill: --retry-dlq: %s\n(the entries not yet re-sent stay in %s; "
                    "run --retry-dlq again after fixing this)\n",
                    w->msg[0] ? w->msg : strerror(-rc), retrying);
            code = rc == -EACCES ? BF_REFUSED : BF_ERR;
            break;
        }
        entries++;
    }
    free(line);
    fclose(f);
    sink_direct_close(w->sink);
    w->sink = NULL;
    if (code != BF_OK) return code;
    unlink(retrying);
    fprintf(out,
            "backfill %s.%s -> %s: --retry-dlq re-sent %" PRIu64 " entries, %" PRIu64
            " rows delivered, %" PRIu64 " dead-lettered again%s%s\n",
            b->o->database, b->o->table, b->o->sink, entries, rows_sent, b->dead_rows,
            b->dead_rows ? " into " : "", b->dead_rows ? b->dlq_path : "");
    return b->dead_rows ? BF_DEAD : BF_OK;
}
