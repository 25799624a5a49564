/* inspect.c — a log as people read it: the report of `sluice wal stats` and the JSON lines
 * of `sluice wal dump` (cli/wal.c parses the command line), read-only, also while a running
 * sluice has the log open (LMDB readers never block the writer). */
#include <inttypes.h>
#include <string.h>

#include "common/buf.h"
#include "wal/wal_internal.h"

static void json_str(FILE *out, const char *s)
{
    if (!s) {
        fputs("null", out);
        return;
    }
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[6];
        fwrite(e, 1, json_escape_byte(*p, e), out);
    }
    fputc('"', out);
}

static int open_ro(const char *dir, FILE *err, const char *cmd, wal_t **w)
{
    char msg[1024] = "";
    int rc = wal_open_readonly(w, dir, msg, sizeof msg);
    if (rc) {
        fprintf(err, "sluice wal %s: %s\n", cmd, msg[0] ? msg : wal_strerror(rc));
        return 1;
    }
    return 0;
}

/* Acked records only in the journal: `wal stats` and `wal dump` read LMDB alone, so say so
 * instead of showing fewer records than were acked. lead starts the line, where names what
 * the records are missing from. */
static void note_journal(wal_t *w, FILE *to, const char *lead, const char *where)
{
    uint64_t n = 0;
    int rc = wal_journal_pending(w, &n);
    if (rc)
        fprintf(to, "%scannot read the journal: %s\n", lead, wal_strerror(rc));
    else if (n)
        fprintf(to, "%s%" PRIu64 " acked records are in the journal only, not in the log %s (a "
                    "running sluice checkpoints them within wal.checkpoint_ms; after a crash the "
                    "next start puts them back)\n", lead, n, where);
}

static int print_cursors(wal_t *w, FILE *out)
{
    MDB_txn *txn;
    MDB_cursor *c;
    MDB_val k, v;
    int rc = mdb_txn_begin(w->env, NULL, MDB_RDONLY, &txn);
    if (rc) return rc;
    if ((rc = mdb_cursor_open(txn, w->dbi_cur, &c))) {
        mdb_txn_abort(txn);
        return rc;
    }
    fprintf(out, "cursors:\n");
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (v.mv_size != 24) continue;
        const uint8_t *b = v.mv_data;
        uint64_t f = wal_get_be64(b + 8), l = wal_get_be64(b + 16);
        fprintf(out, "  %-24.*s acked %" PRIu64, (int)k.mv_size, (const char *)k.mv_data,
                wal_get_be64(b));
        if (f) fprintf(out, "  inflight %" PRIu64 "-%" PRIu64 "\n", f, l);
        else fprintf(out, "  inflight none\n");
    }
    mdb_cursor_close(c);
    if ((rc = mdb_cursor_open(txn, w->dbi_meta, &c)) == 0) {
        k = (MDB_val){4, "gap:"};
        for (rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
             rc == 0 && k.mv_size > 4 && memcmp(k.mv_data, "gap:", 4) == 0;
             rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
            fprintf(out, "  gap %.*s .. %.*s\n", (int)k.mv_size - 4, (const char *)k.mv_data + 4,
                    (int)v.mv_size, (const char *)v.mv_data);
        mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

int wal_print_stats(const char *dir, FILE *out, FILE *err)
{
    wal_t *w;
    wal_stats_t st;
    if (open_ro(dir, err, "stats", &w)) return 1;
    wal_stats(w, &st);
    fprintf(out, "dir:          %s\n", dir);
    fprintf(out, "log id:       %016" PRIx64 "\n", wal_log_id(w));
    fprintf(out, "records:      %" PRIu64 "\n", st.records);
    fprintf(out, "first seq:    %" PRIu64 "\n", st.first_seq);
    fprintf(out, "last seq:     %" PRIu64 "\n", st.last_seq);
    fprintf(out, "live bytes:   %" PRIu64 "\n", st.live_bytes);
    fprintf(out, "max bytes:    unknown (set by wal.max_bytes in the config)\n");
    fprintf(out, "dlq entries:  %" PRIu64 "\n", st.dlq_entries);
    fprintf(out, "gaps:         %" PRIu64 "\n", st.gaps);
    note_journal(w, out, "journal:      ", "above");
    int rc = print_cursors(w, out);
    if (rc) fprintf(err, "sluice wal stats: reading cursors: %s\n", mdb_strerror(rc));
    wal_close(w);
    return rc ? 1 : 0;
}

static void dump_record(FILE *out, const wal_record_t *r)
{
    fprintf(out, "{\"seq\":%" PRIu64 ",\"ts_ms\":%" PRIu64 ",\"db\":", r->seq, r->ts_ms);
    json_str(out, r->db);
    fputs(",\"table\":", out);
    json_str(out, r->table);
    fputs(",\"columns\":", out);
    json_str(out, r->columns);
    fputs(",\"target\":", out);
    json_str(out, r->target);
    fputs(",\"settings\":{", out);
    for (size_t i = 0; i < r->n_settings; i++) {
        if (i) fputc(',', out);
        json_str(out, r->settings[i].key);
        fputc(':', out);
        json_str(out, r->settings[i].value);
    }
    fprintf(out, "},\"n_rows\":%" PRIu32 ",\"rows\":[", r->n_rows);
    /* Rows are JSON objects already (validated by the proxy): written verbatim. */
    const char *p = r->rows, *end = r->rows + r->rows_len;
    int first = 1;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if (e > p) {
            if (!first) fputc(',', out);
            fwrite(p, 1, (size_t)(e - p), out);
            first = 0;
        }
        p = nl ? nl + 1 : end;
    }
    fputs("]}\n", out);
}

int wal_print_dump(const char *dir, uint64_t from, uint64_t limit, FILE *out, FILE *err)
{
    wal_t *w;
    if (open_ro(dir, err, "dump", &w)) return 1;
    note_journal(w, err, "sluice wal dump: ", "dumped here");
    uint64_t after = from ? from - 1 : 0, done = 0;
    int rc = 0;
    for (;;) {
        wal_batch_t b;
        size_t want = 1000;
        if (limit && limit - done < want) want = (size_t)(limit - done);
        if (want == 0) break;
        if ((rc = wal_read(w, after, want, 16u << 20, &b))) {
            fprintf(err, "sluice wal dump: reading after seq %" PRIu64 ": %s\n", after,
                    wal_strerror(rc));
            break;
        }
        if (b.n == 0) break;
        for (size_t i = 0; i < b.n; i++) dump_record(out, &b.recs[i]);
        after = b.recs[b.n - 1].seq;
        done += b.n;
        wal_batch_free(&b);
    }
    wal_close(w);
    if (fflush(out)) rc = -1;
    return rc ? 1 : 0;
}
