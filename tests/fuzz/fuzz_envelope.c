/* fuzz_envelope.c — libFuzzer target: the msgpack envelope reader used when log records and
 * DLQ entries are read back from disk (wal_env_parse_record / wal_env_parse_dlq and the copy
 * into the read arena). A stored value is never trusted: any bytes must decode or give
 * WAL_ECORRUPT, the arena copy must fit in exactly wal_env_copy_size bytes (ASan sees one
 * byte more), and a decoded record or entry packed again must decode to the same fields. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wal/wal_internal.h"

static int same(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

/* Exactly sized arena: [kv slots] and [chars] as two allocations so either overflow shows. */
typedef struct {
    wal_kv_t *kv;
    char *chars;
    size_t chars_len;
} arena_t;

static int arena_new(arena_t *a, const wal_env_view_t *v)
{
    a->chars_len = wal_env_copy_size(v);
    a->kv = malloc(v->n_settings ? v->n_settings * sizeof *a->kv : 1);
    a->chars = malloc(a->chars_len ? a->chars_len : 1);
    if (!a->kv || !a->chars) {
        free(a->kv);
        free(a->chars);
        return -1;
    }
    return 0;
}

static void arena_free(arena_t *a)
{
    free(a->kv);
    free(a->chars);
}

static void check_record(const void *buf, size_t len)
{
    wal_env_view_t v;
    if (wal_env_parse_record(buf, len, &v)) return;
    arena_t a;
    if (arena_new(&a, &v)) return;
    wal_kv_t *kv = a.kv;
    char *chars = a.chars;
    wal_record_t r;
    wal_env_to_record(&v, 7, len, &r, &kv, &chars);
    if ((size_t)(chars - a.chars) > a.chars_len || kv != a.kv + v.n_settings) __builtin_trap();
    if (!r.table || !r.rows || !r.fmt || !r.db || r.rows_len != v.rows.n) __builtin_trap();
    if (r.n_settings && !r.settings) __builtin_trap();

    /* Pack it again, as wal_dlq_replay re-appends records, and read that back. */
    wal_env_hdr_t h = {.db = wal_slice(r.db),
                       .table = wal_slice(r.table),
                       .cols = wal_slice(r.columns),
                       .target = wal_slice(r.target),
                       .settings = r.settings,
                       .n_settings = r.n_settings,
                       .ts_ms = r.ts_ms};
    wal_sbuf_t sb = {0};
    msgpack_sbuffer_init(&sb.sb);
    size_t len1 = 0, *lens = NULL;
    int n = wal_env_pack_records(&sb, &h, r.rows, r.rows_len, r.n_rows, (size_t)1 << 30, &lens,
                                 &len1);
    if (n == 1) {
        wal_env_view_t v2;
        if (wal_env_parse_record(sb.sb.data, sb.sb.size, &v2)) __builtin_trap();
        arena_t b;
        if (arena_new(&b, &v2) == 0) {
            wal_kv_t *kv2 = b.kv;
            char *c2 = b.chars;
            wal_record_t r2;
            wal_env_to_record(&v2, 7, sb.sb.size, &r2, &kv2, &c2);
            if (!same(r.db, r2.db) || !same(r.table, r2.table) || !same(r.columns, r2.columns) ||
                !same(r.target, r2.target) || r.rows_len != r2.rows_len ||
                memcmp(r.rows, r2.rows, r.rows_len) != 0 || r.n_rows != r2.n_rows ||
                r.ts_ms != r2.ts_ms || r.n_settings != r2.n_settings)
                __builtin_trap();
            for (size_t i = 0; i < r.n_settings; i++)
                if (!same(r.settings[i].key, r2.settings[i].key) ||
                    !same(r.settings[i].value, r2.settings[i].value))
                    __builtin_trap();
            arena_free(&b);
        }
    }
    if (lens != &len1) free(lens);
    msgpack_sbuffer_destroy(&sb.sb);
    arena_free(&a);
}

static void check_dlq(const void *buf, size_t len)
{
    wal_env_view_t v;
    if (wal_env_parse_dlq(buf, len, &v)) return;
    arena_t a;
    if (arena_new(&a, &v)) return;
    wal_kv_t *kv = a.kv;
    char *chars = a.chars;
    wal_dlq_entry_t e;
    wal_env_to_dlq(&v, 3, &e, &kv, &chars);
    if ((size_t)(chars - a.chars) > a.chars_len || kv != a.kv + v.n_settings) __builtin_trap();
    if (!e.sink || !e.table || !e.rows || !e.db || !e.error || e.rows_len != v.rows.n)
        __builtin_trap();

    wal_sbuf_t sb = {0};
    msgpack_sbuffer_init(&sb.sb);
    if (wal_env_pack_dlq(&sb, &e) == 0) {
        wal_env_view_t v2;
        if (wal_env_parse_dlq(sb.sb.data, sb.sb.size, &v2)) __builtin_trap();
        arena_t b;
        if (arena_new(&b, &v2) == 0) {
            wal_kv_t *kv2 = b.kv;
            char *c2 = b.chars;
            wal_dlq_entry_t e2;
            wal_env_to_dlq(&v2, 3, &e2, &kv2, &c2);
            if (!same(e.sink, e2.sink) || !same(e.db, e2.db) || !same(e.table, e2.table) ||
                !same(e.columns, e2.columns) || !same(e.error, e2.error) ||
                e.rows_len != e2.rows_len || memcmp(e.rows, e2.rows, e.rows_len) != 0 ||
                e.n_rows != e2.n_rows || e.ts_ms != e2.ts_ms || e.n_settings != e2.n_settings)
                __builtin_trap();
            arena_free(&b);
        }
    }
    msgpack_sbuffer_destroy(&sb.sb);
    arena_free(&a);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* Exact-size copy: an overread of the stored value shows as a heap overflow. */
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy) return 0;
    memcpy(copy, data, size);
    wal_env_view_t v;
    int rc = wal_env_parse(copy, size, &v);
    if (rc != 0 && rc != WAL_ECORRUPT) __builtin_trap();
    if (rc == 0) {
        /* Every slice lies inside the input. */
        const wal_slice_t *s[] = {&v.db,   &v.table, &v.fmt,  &v.cols,
                                  &v.target, &v.rows, &v.sink, &v.error};
        for (size_t i = 0; i < sizeof s / sizeof *s; i++)
            if (s[i]->present && s[i]->n &&
                ((const uint8_t *)s[i]->p < copy || (const uint8_t *)s[i]->p + s[i]->n > copy + size))
                __builtin_trap();
        check_record(copy, size);
        check_dlq(copy, size);
    }
    free(copy);
    return 0;
}
