/* dlq.c — `sluice dlq list|show|replay|drop` on a stopped instance (exit codes as main.c:
 * 0 ok, 1 runtime error, 2 usage, 4 wal refused or in use). Writes (replay, drop) open
 * the wal normally after taking the same flock a running instance holds (sinks.lock in the
 * wal dir, see engine.c), so a live sluice is never written behind its back. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "sinks/sink_internal.h"

static void usage(FILE *err)
{
    fprintf(err, "usage: sluice dlq list [--sink S]\n"
                 "       sluice dlq show ID\n"
                 "       sluice dlq replay [--sink S] [ID...]   (no ID: every entry [of S])\n"
                 "       sluice dlq drop [--sink S] [--all] [ID...]\n"
                 "options: --dir D (wal directory, default wal.dir of the config)\n");
}

static void fmt_time(uint64_t ts_ms, char *buf, size_t len)
{
    time_t t = (time_t)(ts_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* One line: no newlines or tabs from the backend's message. */
static void put_oneline(FILE *out, const char *s, size_t max)
{
    for (size_t i = 0; s && s[i] && i < max; i++) {
        char c = s[i];
        fputc(c == '\n' || c == '\r' || c == '\t' ? ' ' : c, out);
    }
}

static int lock_dir(const char *dir, FILE *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sinks.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(err, "sluice dlq: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        if (n > 0) pid[n] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        fprintf(err,
                "sluice dlq: the wal in %s is in use by a running sluice%s%s%s; stop it first "
                "(or use the admin API)\n",
                dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        close(fd);
        return -1;
    }
    return fd;
}

static int parse_ids(int argc, char **argv, int i, uint64_t **ids, size_t *n, FILE *err)
{
    *ids = calloc((size_t)(argc > 0 ? argc : 1), sizeof **ids);
    *n = 0;
    if (!*ids) return -1;
    for (; i < argc; i++) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(argv[i], &end, 10);
        if (errno || end == argv[i] || *end) {
            fprintf(err, "sluice dlq: not an entry id: %s\n", argv[i]);
            return -1;
        }
        (*ids)[(*n)++] = v;
    }
    return 0;
}

static int cmd_list(wal_t *w, const char *sink, FILE *out, FILE *err)
{
    uint64_t after = 0;
    size_t total = 0;
    fprintf(out, "%-8s %-16s %-32s %6s %-20s %s\n", "ID", "SINK", "TABLE", "ROWS", "TIME", "ERROR");
    for (;;) {
        wal_dlq_list_t l = {0};
        int rc = wal_dlq_list(w, sink, after, 256, &l);
        if (rc < 0) {
            fprintf(err, "sluice dlq: %s\n", wal_strerror(rc));
            return 1;
        }
        for (size_t i = 0; i < l.n; i++) {
            wal_dlq_entry_t *e = &l.e[i];
            char tm[32], tb[512];
            fmt_time(e->ts_ms, tm, sizeof tm);
            snprintf(tb, sizeof tb, "%s%s%s", e->db && *e->db ? e->db : "",
                     e->db && *e->db ? "." : "", e->table ? e->table : "");
            fprintf(out, "%-8" PRIu64 " %-16s %-32s %6" PRIu32 " %-20s ", e->id,
                    e->sink ? e->sink : "", tb, e->n_rows, tm);
            put_oneline(out, e->error, 300);
            fputc('\n', out);
            after = e->id;
        }
        total += l.n;
        size_t got = l.n;
        wal_dlq_free(&l);
        if (got < 256) break;
    }
    fprintf(out, "%zu entr%s\n", total, total == 1 ? "y" : "ies");
    return 0;
}

static int cmd_show(wal_t *w, uint64_t id, FILE *out, FILE *err)
{
    wal_dlq_list_t l = {0};
    int rc = wal_dlq_list(w, NULL, id ? id - 1 : 0, 1, &l);
    if (rc < 0) {
        fprintf(err, "sluice dlq: %s\n", wal_strerror(rc));
        return 1;
    }
    if (l.n == 0 || l.e[0].id != id) {
        fprintf(err, "sluice dlq: no entry %" PRIu64 "\n", id);
        wal_dlq_free(&l);
        return 1;
    }
    wal_dlq_entry_t *e = &l.e[0];
    char tm[32];
    fmt_time(e->ts_ms, tm, sizeof tm);
    fprintf(out, "id: %" PRIu64 "\nsink: %s\ndatabase: %s\ntable: %s\n", e->id,
            e->sink ? e->sink : "", e->db ? e->db : "", e->table ? e->table : "");
    if (e->columns) fprintf(out, "columns: %s\n", e->columns);
    fprintf(out, "format: %s\n", e->fmt ? e->fmt : "JSONEachRow");
    for (size_t i = 0; i < e->n_settings; i++)
        fprintf(out, "setting: %s=%s\n", e->settings[i].key, e->settings[i].value);
    fprintf(out, "time: %s\nrows: %" PRIu32 "\nerror: %s\n---\n", tm, e->n_rows,
            e->error ? e->error : "");
    int binary = e->fmt && (strncmp(e->fmt, "RowBinary", 9) == 0 || strcmp(e->fmt, "Native") == 0);
    if (binary && e->rows) {
        /* Not text: say what it is and show the start in hex, never raw bytes to a tty. */
        fprintf(out, "<%zu bytes of %s; first bytes:", e->rows_len, e->fmt);
        for (size_t i = 0; i < e->rows_len && i < 64; i++)
            fprintf(out, " %02x", (unsigned char)e->rows[i]);
        fprintf(out, ">\n");
    } else if (e->rows) {
        if (e->hdr) fwrite(e->hdr, 1, e->hdr_len, out); /* header rows: the rows' names */
        fwrite(e->rows, 1, e->rows_len, out);
        if (e->rows_len && e->rows[e->rows_len - 1] != '\n') fputc('\n', out);
    }
    wal_dlq_free(&l);
    return 0;
}

int sink_dlq_cli(const sluice_cfg_t *cfg, int argc, char **argv, FILE *out, FILE *err)
{
    if (argc > 0 && strcmp(argv[0], "dlq") == 0) {
        argc--;
        argv++;
    }
    if (argc < 1) {
        usage(err);
        return 2;
    }
    const char *cmd = argv[0], *sink = NULL, *dir = cfg ? cfg->wal.dir : NULL;
    int all = 0;
    /* options anywhere; the rest are positional */
    char **pos = calloc((size_t)argc, sizeof *pos);
    int npos = 0, rc = 2, lock_fd = -1;
    uint64_t *ids = NULL;
    size_t n_ids = 0;
    wal_t *w = NULL;
    char e[512] = "";
    if (!pos) return 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--sink") == 0 && i + 1 < argc)
            sink = argv[++i];
        else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
            dir = argv[++i];
        else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            i++; /* read by main */
        else if (strcmp(argv[i], "--all") == 0)
            all = 1;
        else if (strncmp(argv[i], "--", 2) == 0) {
            fprintf(err, "sluice dlq: unknown option %s\n", argv[i]);
            usage(err);
            goto out;
        } else
            pos[npos++] = argv[i];
    }
    if (!dir) {
        fprintf(err, "sluice dlq: no wal directory (config wal.dir or --dir)\n");
        goto out;
    }
    if (parse_ids(npos, pos, 0, &ids, &n_ids, err) < 0) goto out;

    if (strcmp(cmd, "list") == 0 || strcmp(cmd, "show") == 0) {
        if (strcmp(cmd, "show") == 0 && n_ids != 1) {
            usage(err);
            goto out;
        }
        rc = 4;
        if (wal_open_readonly(&w, dir, e, sizeof e) < 0) {
            fprintf(err, "sluice dlq: %s\n", e);
            goto out;
        }
        rc = strcmp(cmd, "list") == 0 ? cmd_list(w, sink, out, err) : cmd_show(w, ids[0], out, err);
        goto out;
    }
    if (strcmp(cmd, "replay") != 0 && strcmp(cmd, "drop") != 0) {
        fprintf(err, "sluice dlq: unknown command %s\n", cmd);
        usage(err);
        goto out;
    }
    if (strcmp(cmd, "drop") == 0 && n_ids == 0 && !sink && !all) {
        fprintf(err, "sluice dlq drop: give entry ids, --sink S, or --all\n");
        goto out;
    }
    rc = 4; /* the wal is refused: in use, or cannot be opened */
    if ((lock_fd = lock_dir(dir, err)) < 0) goto out;
    cfg_wal_t wc;
    if (cfg)
        wc = cfg->wal;
    else
        memset(&wc, 0, sizeof wc);
    wc.dir = (char *)dir;
    int r = wal_open(&w, &wc, e, sizeof e);
    if (r < 0) {
        fprintf(err, "sluice dlq: %s\n", e[0] ? e : wal_strerror(r));
        goto out;
    }
    rc = 1;
    if (strcmp(cmd, "replay") == 0) {
        size_t moved = 0;
        r = wal_dlq_replay(w, sink, n_ids ? ids : NULL, n_ids, &moved);
        if (r < 0) {
            fprintf(err, "sluice dlq replay: %s\n", wal_strerror(r));
            goto out;
        }
        fprintf(out, "replayed %zu entr%s: they are delivered when sluice runs again\n", moved,
                moved == 1 ? "y" : "ies");
    } else {
        r = wal_dlq_drop(w, sink, n_ids ? ids : NULL, n_ids);
        if (r < 0) {
            fprintf(err, "sluice dlq drop: %s\n", wal_strerror(r));
            goto out;
        }
        fprintf(out, "dropped\n");
    }
    rc = 0;
out:
    if (w) wal_close(w);
    if (lock_fd >= 0) close(lock_fd);
    free(ids);
    free(pos);
    return rc;
}
