/* envelope.c — the msgpack values stored in the log and DLQ databases: packing with msgpack-c,
 * and a bounds-checked, allocation-free reader for decoding (a stored value is never trusted:
 * every length is checked against the bytes that are there, damage gives WAL_ECORRUPT). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "wal/wal_internal.h"

/* ---- reader ---- */

enum { MP_NIL, MP_BOOL, MP_UINT, MP_INT, MP_FLOAT, MP_STR, MP_BIN, MP_ARR, MP_MAP, MP_EXT };

typedef struct {
    const uint8_t *p, *end;
} rd_t;

static int rd_take(rd_t *r, uint64_t n, const uint8_t **out)
{
    if (n > (uint64_t)(r->end - r->p)) return -1;
    if (out) *out = r->p;
    r->p += n;
    return 0;
}

static int rd_be(rd_t *r, unsigned n, uint64_t *out)
{
    const uint8_t *b;
    if (rd_take(r, n, &b)) return -1;
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++) v = v << 8 | b[i];
    *out = v;
    return 0;
}

/* One header: type and its value (uint value, or length / element count). */
static int rd_head(rd_t *r, int *type, uint64_t *val)
{
    const uint8_t *bp;
    if (rd_take(r, 1, &bp)) return -1;
    uint8_t b = *bp;
    *val = 0;
    if (b <= 0x7f) return *type = MP_UINT, *val = b, 0;
    if (b >= 0xe0) return *type = MP_INT, 0;
    if (b <= 0x8f) return *type = MP_MAP, *val = b & 0x0f, 0;
    if (b <= 0x9f) return *type = MP_ARR, *val = b & 0x0f, 0;
    if (b <= 0xbf) return *type = MP_STR, *val = b & 0x1f, 0;
    switch (b) {
    case 0xc0: *type = MP_NIL; return 0;
    case 0xc2: case 0xc3: *type = MP_BOOL; return 0;
    case 0xc4: *type = MP_BIN; return rd_be(r, 1, val);
    case 0xc5: *type = MP_BIN; return rd_be(r, 2, val);
    case 0xc6: *type = MP_BIN; return rd_be(r, 4, val);
    case 0xc7: *type = MP_EXT; return rd_be(r, 1, val) || rd_take(r, 1, NULL);
    case 0xc8: *type = MP_EXT; return rd_be(r, 2, val) || rd_take(r, 1, NULL);
    case 0xc9: *type = MP_EXT; return rd_be(r, 4, val) || rd_take(r, 1, NULL);
    case 0xca: *type = MP_FLOAT; *val = 4; return 0;
    case 0xcb: *type = MP_FLOAT; *val = 8; return 0;
    case 0xcc: *type = MP_UINT; return rd_be(r, 1, val);
    case 0xcd: *type = MP_UINT; return rd_be(r, 2, val);
    case 0xce: *type = MP_UINT; return rd_be(r, 4, val);
    case 0xcf: *type = MP_UINT; return rd_be(r, 8, val);
    case 0xd0: *type = MP_INT; return rd_take(r, 1, NULL);
    case 0xd1: *type = MP_INT; return rd_take(r, 2, NULL);
    case 0xd2: *type = MP_INT; return rd_take(r, 4, NULL);
    case 0xd3: *type = MP_INT; return rd_take(r, 8, NULL);
    case 0xd4: *type = MP_EXT; *val = 1; return rd_take(r, 1, NULL);
    case 0xd5: *type = MP_EXT; *val = 2; return rd_take(r, 1, NULL);
    case 0xd6: *type = MP_EXT; *val = 4; return rd_take(r, 1, NULL);
    case 0xd7: *type = MP_EXT; *val = 8; return rd_take(r, 1, NULL);
    case 0xd8: *type = MP_EXT; *val = 16; return rd_take(r, 1, NULL);
    case 0xd9: *type = MP_STR; return rd_be(r, 1, val);
    case 0xda: *type = MP_STR; return rd_be(r, 2, val);
    case 0xdb: *type = MP_STR; return rd_be(r, 4, val);
    case 0xdc: *type = MP_ARR; return rd_be(r, 2, val);
    case 0xdd: *type = MP_ARR; return rd_be(r, 4, val);
    case 0xde: *type = MP_MAP; return rd_be(r, 2, val);
    case 0xdf: *type = MP_MAP; return rd_be(r, 4, val);
    default: return -1; /* 0xc1: never used */
    }
}

static int rd_skip(rd_t *r, int depth)
{
    int t;
    uint64_t v;
    if (depth > 16 || rd_head(r, &t, &v)) return -1;
    switch (t) {
    case MP_STR: case MP_BIN: case MP_EXT: case MP_FLOAT: return rd_take(r, v, NULL);
    case MP_MAP:
        if (v > (uint64_t)(r->end - r->p) / 2) return -1;
        v *= 2;
        /* fall through */
    case MP_ARR:
        if (v > (uint64_t)(r->end - r->p)) return -1; /* each element takes >= 1 byte */
        for (uint64_t i = 0; i < v; i++)
            if (rd_skip(r, depth + 1)) return -1;
        return 0;
    default: return 0;
    }
}

static int rd_str(rd_t *r, wal_slice_t *s, int allow_nil, int allow_bin)
{
    int t;
    uint64_t n;
    const uint8_t *p;
    if (rd_head(r, &t, &n)) return -1;
    if (t == MP_NIL && allow_nil) {
        *s = (wal_slice_t){NULL, 0, 0};
        return 0;
    }
    if (t != MP_STR && !(allow_bin && t == MP_BIN)) return -1;
    if (rd_take(r, n, &p)) return -1;
    *s = (wal_slice_t){(const char *)p, (size_t)n, 1};
    return 0;
}

static int rd_uint(rd_t *r, uint64_t *out)
{
    int t;
    if (rd_head(r, &t, out) || t != MP_UINT) return -1;
    return 0;
}

static int key_is(wal_slice_t k, const char *name)
{
    size_t n = strlen(name);
    return k.n == n && memcmp(k.p, name, n) == 0;
}

static int rd_settings(rd_t *r, wal_env_view_t *v)
{
    const uint8_t *start = r->p;
    int t;
    uint64_t n;
    if (rd_head(r, &t, &n)) return -1;
    if (t == MP_NIL) return 0;
    if (t != MP_MAP || n > (uint64_t)(r->end - r->p) / 2) return -1;
    v->settings = r->p;
    v->n_settings = (uint32_t)n;
    v->settings_chars = 0;
    for (uint64_t i = 0; i < n; i++) {
        wal_slice_t k, val;
        if (rd_str(r, &k, 0, 0) || rd_str(r, &val, 0, 0)) return -1;
        v->settings_chars += k.n + val.n;
    }
    v->settings_map = start;
    v->settings_len = (size_t)(r->p - start);
    return 0;
}

int wal_env_parse(const void *buf, size_t len, wal_env_view_t *v)
{
    rd_t r = {buf, (const uint8_t *)buf + len};
    int t;
    uint64_t n;
    memset(v, 0, sizeof *v);
    if (!buf || rd_head(&r, &t, &n) || t != MP_MAP || n > len) return WAL_ECORRUPT;
    for (uint64_t i = 0; i < n; i++) {
        wal_slice_t k;
        int rc;
        if (rd_str(&r, &k, 0, 0)) return WAL_ECORRUPT;
        if (key_is(k, "v")) rc = rd_uint(&r, &v->v);
        else if (key_is(k, "ts_ms")) rc = rd_uint(&r, &v->ts_ms);
        else if (key_is(k, "nrows")) rc = rd_uint(&r, &v->nrows);
        else if (key_is(k, "whole")) rc = rd_uint(&r, &v->whole);
        else if (key_is(k, "hdr")) rc = rd_str(&r, &v->hdr, 1, 1);
        else if (key_is(k, "db")) rc = rd_str(&r, &v->db, 1, 0);
        else if (key_is(k, "table")) rc = rd_str(&r, &v->table, 1, 0);
        else if (key_is(k, "fmt")) rc = rd_str(&r, &v->fmt, 1, 0);
        else if (key_is(k, "cols")) rc = rd_str(&r, &v->cols, 1, 0);
        else if (key_is(k, "target")) rc = rd_str(&r, &v->target, 1, 0);
        else if (key_is(k, "sink")) rc = rd_str(&r, &v->sink, 1, 0);
        else if (key_is(k, "error")) rc = rd_str(&r, &v->error, 1, 0);
        else if (key_is(k, "rows")) rc = rd_str(&r, &v->rows, 0, 1);
        else if (key_is(k, "settings")) rc = rd_settings(&r, v);
        else rc = rd_skip(&r, 0); /* a field a later version added */
        if (rc) return WAL_ECORRUPT;
    }
    if (r.p != r.end || v->nrows > UINT32_MAX) return WAL_ECORRUPT;
    return 0;
}

int wal_env_parse_record(const void *buf, size_t len, wal_env_view_t *v)
{
    if (wal_env_parse(buf, len, v)) return WAL_ECORRUPT;
    if (v->v != 1 || !v->table.present || !v->rows.present || !v->fmt.present)
        return WAL_ECORRUPT;
    return 0;
}

int wal_env_parse_dlq(const void *buf, size_t len, wal_env_view_t *v)
{
    if (wal_env_parse(buf, len, v)) return WAL_ECORRUPT;
    if (!v->sink.present || !v->table.present || !v->rows.present) return WAL_ECORRUPT;
    return 0;
}

/* ---- copying a view into a caller's arena ---- */

static size_t slice_size(wal_slice_t s)
{
    return s.present ? s.n + 1 : 0;
}

/* db and error are copied with copy_or_empty: an absent one still takes its "". */
static size_t or_empty_size(wal_slice_t s)
{
    return s.present ? s.n + 1 : 1;
}

size_t wal_env_copy_size(const wal_env_view_t *v)
{
    return or_empty_size(v->db) + slice_size(v->table) + slice_size(v->fmt) +
           slice_size(v->cols) + slice_size(v->target) + slice_size(v->rows) +
           slice_size(v->sink) + or_empty_size(v->error) + slice_size(v->hdr) + v->settings_chars +
           2 * (size_t)v->n_settings;
}

static const char *copy_slice(wal_slice_t s, char **chars)
{
    if (!s.present) return NULL;
    char *d = *chars;
    if (s.n) memcpy(d, s.p, s.n);
    d[s.n] = '\0';
    *chars += s.n + 1;
    return d;
}

static const char *copy_or_empty(wal_slice_t s, char **chars)
{
    const char *d = copy_slice(s, chars);
    if (d) return d;
    **chars = '\0';
    return (*chars)++;
}

/* The settings map into *kv; *n is how many were copied. wal_env_parse validated the map, so
 * all v->n_settings are; should a read still fail, only the pairs before it are handed out
 * (never a slice that was not read, which gcc -O2 rightly warned about). */
static wal_kv_t *copy_settings(const wal_env_view_t *v, wal_kv_t **kv, char **chars, size_t *n)
{
    wal_kv_t *out = *kv;
    rd_t r = {v->settings, v->settings_map + v->settings_len};
    uint32_t i;
    for (i = 0; i < v->n_settings; i++) {
        wal_slice_t k, val;
        if (rd_str(&r, &k, 0, 0) || rd_str(&r, &val, 0, 0)) break;
        out[i].key = copy_slice(k, chars);
        out[i].value = copy_slice(val, chars);
    }
    *kv += i;
    *n = i;
    return i ? out : NULL;
}

void wal_env_to_record(const wal_env_view_t *v, uint64_t seq, size_t raw, wal_record_t *r,
                       wal_kv_t **kv, char **chars)
{
    r->seq = seq;
    r->ts_ms = v->ts_ms;
    r->db = copy_or_empty(v->db, chars);
    r->table = copy_slice(v->table, chars);
    r->columns = copy_slice(v->cols, chars);
    r->fmt = copy_slice(v->fmt, chars);
    r->target = copy_slice(v->target, chars);
    r->rows = copy_slice(v->rows, chars);
    r->rows_len = v->rows.n;
    r->n_rows = (uint32_t)v->nrows;
    r->hdr = copy_slice(v->hdr, chars);
    r->hdr_len = v->hdr.n;
    r->whole = v->whole != 0;
    r->raw_bytes = raw;
    r->settings = copy_settings(v, kv, chars, &r->n_settings);
}

void wal_env_to_dlq(const wal_env_view_t *v, uint64_t id, wal_dlq_entry_t *e, wal_kv_t **kv,
                    char **chars)
{
    e->id = id;
    e->sink = copy_slice(v->sink, chars);
    e->db = copy_or_empty(v->db, chars);
    e->table = copy_slice(v->table, chars);
    e->columns = copy_slice(v->cols, chars);
    e->error = copy_or_empty(v->error, chars);
    e->ts_ms = v->ts_ms;
    e->rows = copy_slice(v->rows, chars);
    e->rows_len = v->rows.n;
    e->n_rows = (uint32_t)v->nrows;
    e->fmt = copy_slice(v->fmt, chars);
    e->hdr = copy_slice(v->hdr, chars);
    e->hdr_len = v->hdr.n;
    e->whole = v->whole != 0;
    e->settings = copy_settings(v, kv, chars, &e->n_settings);
}

/* ---- packing ---- */

static int sbuf_write(void *data, const char *buf, size_t len)
{
    wal_sbuf_t *b = data;
    if (!b->oom && msgpack_sbuffer_write(&b->sb, buf, len)) b->oom = 1;
    return b->oom ? -1 : 0;
}

wal_slice_t wal_slice(const char *s)
{
    return s ? (wal_slice_t){s, strlen(s), 1} : (wal_slice_t){NULL, 0, 0};
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pack_slice(msgpack_packer *pk, wal_slice_t s)
{
    if (s.present) msgpack_pack_str_with_body(pk, s.p, s.n);
    else msgpack_pack_nil(pk);
}

static void pack_kv(msgpack_packer *pk, const wal_kv_t *kv, size_t n)
{
    msgpack_pack_map(pk, n);
    for (size_t i = 0; i < n; i++) {
        pack_cstr(pk, kv[i].key ? kv[i].key : "");
        pack_cstr(pk, kv[i].value ? kv[i].value : "");
    }
}

static void pack_record(msgpack_packer *pk, const wal_env_hdr_t *h, const char *rows, size_t len,
                        uint32_t n_rows)
{
    /* hdr and whole only when present, so JSONEachRow records stay as they were. */
    msgpack_pack_map(pk, 10 + (h->hdr.present ? 1 : 0) + (h->whole ? 1 : 0));
    pack_cstr(pk, "v");
    msgpack_pack_uint64(pk, 1);
    pack_cstr(pk, "db");
    pack_slice(pk, h->db.present ? h->db : wal_slice(""));
    pack_cstr(pk, "table");
    pack_slice(pk, h->table);
    pack_cstr(pk, "fmt");
    if (h->fmt.present && h->fmt.n) msgpack_pack_str_with_body(pk, h->fmt.p, h->fmt.n);
    else pack_cstr(pk, "JSONEachRow");
    pack_cstr(pk, "cols");
    pack_slice(pk, h->cols);
    pack_cstr(pk, "settings");
    if (h->settings_map) msgpack_pack_v4raw_body(pk, h->settings_map, h->settings_map_len);
    else pack_kv(pk, h->settings, h->n_settings);
    pack_cstr(pk, "ts_ms");
    msgpack_pack_uint64(pk, h->ts_ms);
    pack_cstr(pk, "nrows");
    msgpack_pack_uint64(pk, n_rows);
    pack_cstr(pk, "rows");
    msgpack_pack_bin_with_body(pk, rows, len);
    pack_cstr(pk, "target");
    pack_slice(pk, h->target);
    if (h->hdr.present) {
        pack_cstr(pk, "hdr");
        msgpack_pack_bin_with_body(pk, h->hdr.p, h->hdr.n);
    }
    if (h->whole) {
        pack_cstr(pk, "whole");
        msgpack_pack_uint64(pk, 1);
    }
}

static uint32_t count_rows(const char *p, size_t n)
{
    uint32_t c = 0;
    const char *end = p + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        c++;
        p = nl ? nl + 1 : end;
    }
    return c;
}

int wal_env_pack_records(wal_sbuf_t *sb, const wal_env_hdr_t *h, const char *rows,
                         size_t rows_len, uint32_t n_rows, size_t max_record, size_t **lens,
                         size_t *len1)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, sbuf_write);
    *lens = len1;
    if (rows_len <= max_record || h->whole) {
        size_t before = sb->sb.size;
        pack_record(&pk, h, rows, rows_len, n_rows);
        *len1 = sb->sb.size - before;
        return sb->oom ? -ENOMEM : 1;
    }
    /* Split at row boundaries; all records go into the same txn, so the request stays
     * all-or-nothing. A row longer than max_record is a record of its own. */
    size_t cap = 0, n = 0, start = 0;
    size_t *arr = NULL;
    while (start < rows_len) {
        size_t end = start;
        while (end < rows_len) {
            const char *nl = memchr(rows + end, '\n', rows_len - end);
            size_t line_end = nl ? (size_t)(nl - rows) + 1 : rows_len;
            if (end > start && line_end - start > max_record) break;
            end = line_end;
            if (end - start >= max_record) break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 8;
            size_t *na = realloc(arr, cap * sizeof *arr);
            if (!na) {
                free(arr);
                return -ENOMEM;
            }
            arr = na;
        }
        size_t before = sb->sb.size;
        pack_record(&pk, h, rows + start, end - start, count_rows(rows + start, end - start));
        arr[n++] = sb->sb.size - before;
        start = end;
    }
    *lens = arr;
    if (sb->oom) {
        free(arr);
        *lens = len1;
        return -ENOMEM;
    }
    return (int)n;
}

int wal_env_pack_dlq(wal_sbuf_t *sb, const wal_dlq_entry_t *e)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, sbuf_write);
    int extra = (e->fmt ? 1 : 0) + (e->hdr ? 1 : 0) + (e->whole ? 1 : 0);
    msgpack_pack_map(&pk, 9 + extra);
    pack_cstr(&pk, "sink");
    pack_cstr(&pk, e->sink);
    pack_cstr(&pk, "db");
    pack_cstr(&pk, e->db ? e->db : "");
    pack_cstr(&pk, "table");
    pack_cstr(&pk, e->table);
    pack_cstr(&pk, "cols");
    pack_slice(&pk, wal_slice(e->columns));
    pack_cstr(&pk, "settings");
    pack_kv(&pk, e->settings, e->n_settings);
    pack_cstr(&pk, "error");
    pack_cstr(&pk, e->error ? e->error : "");
    pack_cstr(&pk, "ts_ms");
    msgpack_pack_uint64(&pk, e->ts_ms);
    pack_cstr(&pk, "nrows");
    msgpack_pack_uint64(&pk, e->n_rows);
    pack_cstr(&pk, "rows");
    msgpack_pack_bin_with_body(&pk, e->rows ? e->rows : "", e->rows_len);
    if (e->fmt) {
        pack_cstr(&pk, "fmt");
        pack_cstr(&pk, e->fmt);
    }
    if (e->hdr) {
        pack_cstr(&pk, "hdr");
        msgpack_pack_bin_with_body(&pk, e->hdr, e->hdr_len);
    }
    if (e->whole) {
        pack_cstr(&pk, "whole");
        msgpack_pack_uint64(&pk, 1);
    }
    return sb->oom ? -ENOMEM : 0;
}
