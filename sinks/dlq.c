/* dlq.c — the dead-letter queue as people read it: the table of `sluice dlq list` and one
 * entry in full for `sluice dlq show` (cli/dlq.c parses the command line). */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sinks/sink_internal.h"

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

int sink_dlq_print_list(wal_t *w, const char *sink, FILE *out, FILE *err)
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

int sink_dlq_print_entry(wal_t *w, uint64_t id, FILE *out, FILE *err)
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
