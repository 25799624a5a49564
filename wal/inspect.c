/* inspect.c — a log as people read it: the report of `sluice wal stats` and the JSON lines
 * of `sluice wal dump` (cli/wal.c parses the command line), read-only, also while a running
 * sluice has the log open (LMDB readers never block the writer). Both count, and dump
 * prints, the acked records still only in the journal, so neither shows less than was acked.
 * Each record names its format: rows of the JSON formats are a JSON array, other formats'
 * bytes one JSON string (text) or base64 (binary). */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "wal/wal_internal.h"

/* p[0..n) as a JSON string, quotes included. */
static void json_bytes(FILE *out, const char *p, size_t n)
{
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        char e[6];
        fwrite(e, 1, json_escape_byte((unsigned char)p[i], e), out);
    }
    fputc('"', out);
}

static void json_str(FILE *out, const char *s)
{
    if (s) json_bytes(out, s, strlen(s));
    else fputs("null", out);
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

/* Acked records only in the journal: `wal stats` reads LMDB alone, so say so instead of
 * showing fewer records than were acked. */
static void note_journal(wal_t *w, FILE *to)
{
    uint64_t n = 0;
    int rc = wal_journal_pending(w, NULL, NULL, &n);
    if (rc)
        fprintf(to, "journal:      cannot read the journal: %s\n", wal_strerror(rc));
    else if (n)
        fprintf(to, "journal:      %" PRIu64 " acked records are in the journal only, not in the "
                    "log above (a running sluice checkpoints them within wal.checkpoint_ms; after "
                    "a crash the next start puts them back)\n", n);
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
    note_journal(w, out);
    int rc = print_cursors(w, out);
    if (rc) fprintf(err, "sluice wal stats: reading cursors: %s\n", mdb_strerror(rc));
    wal_close(w);
    return rc ? 1 : 0;
}

/* Formats whose rows are one JSON value per line as the proxy stores them: JSONEachRow and
 * its aliases, JSONStringsEachRow, the JSONCompact... family (their header rows are JSON
 * arrays too). JSONObjectEachRow's lines are `"name": {row}`, not values. */
static int rows_are_json(const char *fmt)
{
    return !fmt || (strncmp(fmt, "JSON", 4) == 0 && strcmp(fmt, "JSONObjectEachRow") != 0);
}

/* Lines of JSON values as the elements of one JSON array. */
static void json_lines(FILE *out, const char *p, size_t n)
{
    const char *end = p + n;
    int first = 1;
    fputc('[', out);
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
    fputc(']', out);
}

/* Well-formed UTF-8 without NUL: such bytes can be one JSON string. */
static int utf8_text(const unsigned char *p, size_t n)
{
    unsigned cp;
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = utf8_seq(p + i, n - i, &cp)) || cp == 0) return 0;
    return 1;
}

static void base64(FILE *out, const unsigned char *p, size_t n)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputc('"', out);
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        char q[4] = {a[v >> 18], a[(v >> 12) & 63], i + 1 < n ? a[(v >> 6) & 63] : '=',
                     i + 2 < n ? a[v & 63] : '='};
        fwrite(q, 1, 4, out);
    }
    fputc('"', out);
}

/* Bytes of another format under key: "key":"text" when they are UTF-8 text (CSV, TSV,
 * Values...), else "key_base64":"..." (RowBinary, Native). */
static void raw_member(FILE *out, const char *key, const char *p, size_t n)
{
    if (utf8_text((const unsigned char *)p, n)) {
        fprintf(out, ",\"%s\":", key);
        json_bytes(out, p, n);
    } else {
        fprintf(out, ",\"%s_base64\":", key);
        base64(out, (const unsigned char *)p, n);
    }
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
    fputs(",\"format\":", out);
    json_str(out, r->fmt ? r->fmt : "JSONEachRow");
    fputs(",\"settings\":{", out);
    for (size_t i = 0; i < r->n_settings; i++) {
        if (i) fputc(',', out);
        json_str(out, r->settings[i].key);
        fputc(':', out);
        json_str(out, r->settings[i].value);
    }
    fprintf(out, "},\"n_rows\":%" PRIu32, r->n_rows);
    if (rows_are_json(r->fmt)) { /* validated by the proxy: written verbatim */
        if (r->hdr) {
            fputs(",\"header\":", out);
            json_lines(out, r->hdr, r->hdr_len);
        }
        fputs(",\"rows\":", out);
        json_lines(out, r->rows, r->rows_len);
    } else {
        if (r->hdr) raw_member(out, "header", r->hdr, r->hdr_len);
        raw_member(out, "data", r->rows, r->rows_len);
    }
    fputs("}\n", out);
}

/* wal_print_dump after the log's records: those only in the journal yet. */
typedef struct {
    FILE *out;
    uint64_t after, limit, done, first, last;
} jdump_t;

static int dump_journal_fn(void *ctx, uint64_t seq, const void *env, size_t len)
{
    jdump_t *d = ctx;
    if (seq <= d->after) return 0;
    if (d->limit && d->done >= d->limit) return 1; /* enough: stop the walk */
    wal_env_view_t v;
    if (wal_env_parse_record(env, len, &v)) return WAL_ECORRUPT;
    wal_kv_t *kv = malloc(v.n_settings * sizeof *kv + wal_env_copy_size(&v) + 1);
    if (!kv) return -ENOMEM;
    wal_kv_t *kp = kv;
    char *cp = (char *)(kv + v.n_settings);
    wal_record_t r;
    wal_env_to_record(&v, seq, len, &r, &kp, &cp);
    dump_record(d->out, &r);
    free(kv);
    if (!d->first) d->first = seq;
    d->last = d->after = seq;
    d->done++;
    return 0;
}

int wal_print_dump(const char *dir, uint64_t from, uint64_t limit, FILE *out, FILE *err)
{
    wal_t *w;
    if (open_ro(dir, err, "dump", &w)) return 1;
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
    /* Acked records a checkpoint has not put into the log yet (a running sluice does within
     * wal.checkpoint_ms; after a crash, the next start does): from the journal, in order. */
    jdump_t d = {out, after, limit, done, 0, 0};
    uint64_t pending = 0;
    int jrc = rc ? 0 : wal_journal_pending(w, dump_journal_fn, &d, &pending);
    if (jrc < 0) {
        fprintf(err, "sluice wal dump: reading the journal: %s\n", wal_strerror(jrc));
        rc = jrc;
    } else if (d.first) {
        fprintf(err, "sluice wal dump: seqs %" PRIu64 "-%" PRIu64 " are acked and only in the "
                     "journal yet (not in the log until a checkpoint or the next start): dumped "
                     "from the journal\n", d.first, d.last);
    }
    wal_close(w);
    if (fflush(out)) rc = -1;
    return rc ? 1 : 0;
}
