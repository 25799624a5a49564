/* backfill_plan.c — backfill's plan and progress file: the plan line and how a changed plan
 * is told apart, reading <sink>.<db.table>.progress (begun and done slices), appending its
 * fsync'ed lines, and the lock that lets one backfill per sink and table run. */
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

/* ---- progress file ---- */

/* Durability: a slice's bounds are on disk before its first batch is sent, so a rerun after
 * a kill cuts exactly this slice again (same rows, same batches, same labels: deduplicated),
 * whatever the per-cell counts say by then. mu held. */
int bf_progress_line(bf_t *b, const char *line)
{
    if (fputs(line, b->progress) < 0 || fflush(b->progress) || fsync(fileno(b->progress)))
        return -EIO;
    return 0;
}

/* ---- plan ---- */

void bf_make_plan_line(const bf_t *b, char *out, size_t len)
{
    const backfill_opts_t *o = b->o;
    snprintf(out, len,
             "plan v2 sink=%s table=%s.%s time_column=%s since=%" PRId64 " until=%" PRId64
             " slice=%" PRId64 " max_slice=%" PRId64 " slice_rows=%u where=%08x batch=%" PRIu32
             "/%" PRIu64 "\n",
             o->sink, o->database, o->table, o->time_column, b->since, b->until, o->slice_s,
             o->max_slice_s, (unsigned)BF_SLICE_ROWS,
             o->where ? fnv1a32(o->where, strlen(o->where)) : 0, b->max_rows, b->max_bytes);
}

const char *bf_plan_field(const char *line, const char *key, char *out, size_t len)
{
    char k[40];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(line, k);
    if (!p) return NULL;
    p += strlen(k);
    size_t n = strcspn(p, " \n");
    snprintf(out, len, "%.*s", (int)n, p);
    return out;
}

/* What differs between the recorded plan and this one, in option terms ("" when the same). */
void bf_plan_diff(const char *old, const char *now, char *out, size_t len)
{
    static const struct {
        const char *key, *opt;
    } fields[] = {{"sink", "--sink"},
                  {"table", "--table"},
                  {"time_column", "--time-column"},
                  {"since", "--since"},
                  {"until", "--until"},
                  {"slice", "--slice"},
                  {"max_slice", "--max-slice"},
                  {"where", "--where"},
                  {"batch", "the sink's batch.max_rows/max_bytes"}};
    size_t k = 0;
    out[0] = '\0';
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char a[256], c[256];
        const char *x = bf_plan_field(old, fields[i].key, a, sizeof a);
        const char *y = bf_plan_field(now, fields[i].key, c, sizeof c);
        if (x && y && strcmp(x, y) == 0) continue;
        char ta[40] = "", tc[40] = "";
        int is_time = strcmp(fields[i].key, "since") == 0 || strcmp(fields[i].key, "until") == 0;
        if (is_time && x) migrate_format_time(strtoll(x, NULL, 10), ta);
        if (is_time && y) migrate_format_time(strtoll(y, NULL, 10), tc);
        int n = snprintf(out + k, len - k, "%s%s was %s, now %s", k ? "; " : "", fields[i].opt,
                         is_time ? ta : (x ? x : "?"), is_time ? tc : (y ? y : "?"));
        if (n < 0 || (size_t)n >= len - k) break;
        k += (size_t)n;
    }
}

/* The recorded plan line's options, for "to continue, run again with ...". */
void bf_plan_as_options(const char *old, char *out, size_t len)
{
    char v[256], t1[20], t2[20];
    long long since = bf_plan_field(old, "since", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long until = bf_plan_field(old, "until", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long slice = bf_plan_field(old, "slice", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    long long maxs = bf_plan_field(old, "max_slice", v, sizeof v) ? strtoll(v, NULL, 10) : 0;
    migrate_format_time(since, t1);
    migrate_format_time(until, t2);
    snprintf(out, len, "--since '%s' --until '%s' --slice %llds --max-slice %llds", t1, t2, slice,
             maxs);
}

void bf_progress_free(bf_progress_t *p)
{
    free(p->begun);
    free(p->done);
    free(p->done_rows);
    memset(p, 0, sizeof *p);
}

int bf_grow(void **arr, size_t n, size_t elem)
{
    if (n & (n - 1) && n) return 0; /* capacity is the next power of two */
    void *x = realloc(*arr, (n ? n * 2 : 16) * elem);
    if (!x) return -ENOMEM;
    *arr = x;
    return 0;
}

/* Read a progress file (missing = empty). Torn last lines (a crash mid-write) are ignored. */
int bf_progress_read(const char *path, bf_progress_t *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "r");
    if (!f) return errno == ENOENT ? 0 : -errno;
    char line[1200];
    int rc = 0;
    while (fgets(line, sizeof line, f)) {
        int64_t s, e;
        uint64_t r;
        unsigned pl;
        if (strncmp(line, "plan ", 5) == 0 && strchr(line, '\n')) {
            snprintf(p->plan, sizeof p->plan, "%.1000s", line);
            p->has_plan = 1;
        } else if (sscanf(line, "begin %" SCNd64 " %" SCNd64, &s, &e) == 2 && strchr(line, '\n')) {
            if ((rc = bf_grow((void **)&p->begun, p->n_begun, sizeof *p->begun)) < 0) break;
            p->begun[p->n_begun++] = (bf_range_t){s, e};
        } else if (sscanf(line, "done %" SCNd64 " %" SCNd64 " %" SCNu64 " %x", &s, &e, &r, &pl) ==
                       4 &&
                   strchr(line, '\n')) {
            if ((rc = bf_grow((void **)&p->done, p->n_done, sizeof *p->done)) < 0 ||
                (rc = bf_grow((void **)&p->done_rows, p->n_done, sizeof *p->done_rows)) < 0)
                break;
            p->done[p->n_done] = (bf_range_t){s, e};
            p->done_rows[p->n_done++] = r;
            if (!p->has_plan) p->old_format = 1;
        }
    }
    fclose(f);
    return rc;
}

int bf_is_done(const bf_progress_t *p, int64_t s, int64_t e)
{
    for (size_t i = 0; i < p->n_done; i++)
        if (p->done[i].start == s && p->done[i].end == e) return 1;
    return 0;
}

/* Lock the progress file (one backfill per sink and table at a time) and open it to append. */
int bf_open_progress(bf_t *b, FILE *err)
{
    int fd = open(b->progress_path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(err, "sluice backfill: %s: %s\n", b->progress_path, strerror(errno));
        return BF_ERR;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        fprintf(err,
                "sluice backfill: another backfill of %s.%s into %s is running (its progress: "
                "sluice backfill --status ...)\n",
                b->o->database, b->o->table, b->o->sink);
        close(fd);
        return BF_REFUSED;
    }
    if (!(b->progress = fdopen(fd, "a"))) {
        close(fd);
        return BF_ERR;
    }
    return BF_OK;
}
