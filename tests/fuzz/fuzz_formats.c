/* fuzz_formats.c — libFuzzer target: the per-format validators (proxy/formats.c) and the
 * RowBinary row splitter and JSON decoder and the Native block splitter (sinks/rowbinary.c, rowbinary_json.c, native.c). First byte: which format (and settings); the rest
 * is the body. On success the rows must be n_rows '\n'-terminated lines (unless whole), the
 * header inside the buffer, and the splitter's offsets increasing within the data. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_internal.h"
#include "sinks/convert.h"

static const char *const names[] = {
    "JSONEachRow",  "JSONCompactEachRowWithNamesAndTypes", "JSONObjectEachRow", "CSV",
    "CSVWithNames", "TabSeparatedWithNames",               "TSVRaw",            "Values",
    "RowBinary",    "RowBinaryWithNamesAndTypes",          "RowBinaryWithDefaults",
    "Native",
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    const char *name = names[data[0] % (sizeof names / sizeof *names)];
    wal_kv_t kv[2] = {{"format_csv_delimiter", ";"},
                      {"input_format_csv_allow_variable_number_of_columns", "1"}};
    size_t nkv = (data[0] >> 4) & 3;
    if (nkv > 2) nkv = 2;
    size_t len = size - 1;
    char *in = malloc(len + 1);
    if (!in) return 0;
    memcpy(in, data + 1, len);
    const proxy_format_t *f = proxy_format_find(name);
    proxy_body_t b;
    int rc = proxy_format_split(f, kv, nkv, in, len, (data[0] & 0x40) ? len + 1 : len, &b);
    if (rc == 0) {
        if (b.len && !b.data) __builtin_trap();
        if (!b.whole) {
            uint32_t n = 0;
            for (size_t i = 0; i < b.len; i++)
                n += b.data[i] == '\n';
            if (n != b.n_rows || (b.len && b.data[b.len - 1] != '\n')) __builtin_trap();
        }
        if (b.hdr_len && b.hdr[b.hdr_len - 1] != '\n') __builtin_trap();
        proxy_body_free(&b);
    } else if (rc != -EINVAL && rc != PROXY_FMT_UNBUFFERED && rc != -ENOMEM) {
        __builtin_trap();
    }
    size_t hl, *off = NULL;
    uint32_t n = 0;
    char err[128];
    const char *desc = "a\tNullable(UInt16)\nb\tArray(String)\nc\tMap(String, Tuple(x UInt8, y "
                       "LowCardinality(String)))\nd\tDecimal(20, 2)\n";
    if (strcmp(name, "Native") == 0) {
        if (sink_native_split(in, len, &off, &n, err, sizeof err) == 0) {
            if (off[0] != 0 || off[n] != len) __builtin_trap();
            for (uint32_t i = 0; i < n; i++)
                if (off[i + 1] <= off[i]) __builtin_trap();
            free(off);
        }
    } else if (f->kind == PROXY_FMT_BINARY &&
        sink_rowbinary_split(name, NULL, desc, in, len, &hl, &off, &n, err, sizeof err) == 0) {
        if (off[0] != hl || off[n] != len) __builtin_trap();
        for (uint32_t i = 0; i < n; i++)
            if (off[i + 1] <= off[i]) __builtin_trap();
        free(off);
    }
    if (strcmp(name, "RowBinaryWithNamesAndTypes") == 0) {
        buf_t o = {0};
        if (sink_rowbinary_json(in, len, &o, err, sizeof err) == 0 && o.len &&
            o.data[o.len - 1] != '\n')
            __builtin_trap();
        buf_free(&o);
    }
    free(in);
    return 0;
}
