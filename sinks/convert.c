/* convert.c — from stored rows to the body a backend takes. ClickHouse gets the very bytes the
 * client sent (header rows ahead of each chunk; JSONObjectEachRow rows wrapped back into one
 * object). StarRocks gets Stream Load JSON lines (JSON families; compact arrays become
 * objects with the names from the header or the statement's column list) or a CSV load with
 * the format's separator (CSV, TabSeparatedRaw, TabSeparated without escapes). A row that
 * cannot be expressed is refused with the reason; the engine bisects down to it and
 * dead-letters it, so both sinks never silently differ. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sinks/convert.h"

/* out is the caller's buf_t, reused across batches (reset by len = 0, oom = 0). */
static int out_put(buf_t *o, const char *s, size_t n)
{
    return buf_append(o, s, n) ? -ENOMEM : 0;
}

int sink_fmt_name_ok(const char *fmt)
{
    size_t n = 0;
    for (; fmt && fmt[n]; n++) {
        char c = fmt[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return n > 0 && n <= 64;
}

static int is_fmt(const sink_batch_t *b, const char *name)
{
    return strcmp(b->fmt, name) == 0;
}

int sink_ch_body(const sink_batch_t *b, buf_t *out, const char **body, size_t *len)
{
    out->len = 0;
    out->oom = 0;
    if (is_fmt(b, "JSONObjectEachRow")) {
        /* Rows are `"name": {row}` lines: one object again, members comma-separated. */
        if (out_put(out, "{", 1) < 0) return -ENOMEM;
        const char *p = b->body, *end = b->body + b->body_len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl + 1 : end;
            if (p != b->body && out_put(out, ",", 1) < 0) return -ENOMEM;
            if (out_put(out, p, (size_t)(e - p)) < 0) return -ENOMEM;
            p = e;
        }
        if (out_put(out, "}\n", 2) < 0) return -ENOMEM;
    } else if (b->hdr_len) {
        if (out_put(out, b->hdr, b->hdr_len) < 0 || out_put(out, b->body, b->body_len) < 0)
            return -ENOMEM;
    } else {
        *body = b->body;
        *len = b->body_len;
        return 0;
    }
    *body = out->data;
    *len = out->len;
    return 0;
}

/* ---------------------------------------------------------------- StarRocks */

typedef enum { SR_JSON, SR_JSON_ARR, SR_JSON_OBJ_ROW, SR_CSV, SR_TSV, SR_TSV_RAW, SR_NONE } sr_kind_t;

static sr_kind_t sr_kind(const char *fmt)
{
    static const struct {
        const char *prefix;
        sr_kind_t kind;
    } t[] = {
        {"JSONCompact", SR_JSON_ARR},  {"JSONObjectEachRow", SR_JSON_OBJ_ROW},
        {"JSONEachRow", SR_JSON},      {"JSONStringsEachRow", SR_JSON},
        {"JSONLines", SR_JSON},        {"NDJSON", SR_JSON},
        {"JSONL", SR_JSON},            {"CSV", SR_CSV},
        {"TabSeparatedRaw", SR_TSV_RAW}, {"TSVRaw", SR_TSV_RAW},
        {"TabSeparated", SR_TSV},      {"TSV", SR_TSV},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        size_t n = strlen(t[i].prefix);
        if (strncmp(fmt, t[i].prefix, n) == 0) {
            /* exact, or a ...WithNames[AndTypes] / ...EachRow... variant of the prefix */
            const char *rest = fmt + n;
            if (t[i].kind == SR_JSON && *rest) continue;
            if (t[i].kind == SR_JSON_ARR || !*rest || strncmp(rest, "WithNames", 9) == 0)
                return t[i].kind;
        }
    }
    return SR_NONE;
}

/* Names from a JSON header row ["a","b"] into a comma list and a JSON array of quoted names;
 * plain names only (no escapes), which is what ClickHouse column names in practice are. */
static int names_from_json_header(const char *h, size_t n, char *cols, size_t ccap, char *err,
                                  size_t errlen)
{
    size_t i = 0, o = 0;
    while (i < n && h[i] != '[')
        i++;
    for (i++; i < n && h[i] != ']'; i++) {
        if (h[i] != '"') continue;
        size_t j = i + 1;
        while (j < n && h[j] != '"' && h[j] != '\\')
            j++;
        if (j >= n || h[j] == '\\' || memchr(h + i + 1, ',', j - i - 1)) {
            snprintf(err, errlen, "column names in the header need escaping: not converted");
            return -EINVAL;
        }
        if (o + (j - i) + 2 >= ccap) {
            snprintf(err, errlen, "header too long");
            return -EINVAL;
        }
        if (o) cols[o++] = ',';
        memcpy(cols + o, h + i + 1, j - i - 1);
        o += j - i - 1;
        i = j;
    }
    cols[o] = '\0';
    return 0;
}

/* Names from the first CSV/TSV header line (fields split at sep, CSV quotes removed). */
static int names_from_sep_header(const char *h, size_t n, char sep, int csv, char *cols,
                                 size_t ccap, char *err, size_t errlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && h[i] != '\n' && h[i] != '\r'; i++) {
        char c = h[i];
        if (csv && c == '"') continue;
        if (c == sep) c = ',';
        else if (c == ',' || c == '\\') {
            snprintf(err, errlen, "column names in the header need escaping: not converted");
            return -EINVAL;
        }
        if (o + 2 >= ccap) {
            snprintf(err, errlen, "header too long");
            return -EINVAL;
        }
        cols[o++] = c;
    }
    cols[o] = '\0';
    return 0;
}

/* "a, `b c`, d" (the statement's list as the proxy normalised it) → "a,b c,d". */
static int names_from_columns(const char *c, char *cols, size_t ccap)
{
    size_t o = 0;
    for (; *c; c++) {
        if (*c == '`' || *c == ' ') continue;
        if (*c == '\\' && c[1]) c++;
        if (o + 2 >= ccap) return -EINVAL;
        cols[o++] = *c;
    }
    cols[o] = '\0';
    return 0;
}

static size_t count_names(const char *cols)
{
    if (!*cols) return 0;
    size_t n = 1;
    for (; *cols; cols++)
        n += *cols == ',';
    return n;
}

/* One compact row [v0, v1, ...] → {"n0":v0,"n1":v1,...} using json_skip_value for each
 * element (the one JSON scanner). */
static int compact_row(const char *row, size_t len, const char *cols, size_t n_names,
                       buf_t *out, char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && row[i] != '[')
        i++;
    i++;
    const char *name = cols;
    size_t k = 0;
    if (out_put(out, "{", 1) < 0) return -ENOMEM;
    for (;;) {
        while (i < len && (row[i] == ' ' || row[i] == '\t')) i++;
        if (i < len && row[i] == ']') break;
        size_t vs = i;
        int nl;
        if (json_skip_value(row, len, &i, &nl, err, errlen)) return -EINVAL;
        if (k >= n_names) {
            snprintf(err, errlen, "row has more values than the %zu column names", n_names);
            return -EINVAL;
        }
        const char *ne = strchr(name, ',');
        size_t nn = ne ? (size_t)(ne - name) : strlen(name);
        if ((k && out_put(out, ",", 1) < 0) || out_put(out, "\"", 1) < 0 ||
            out_put(out, name, nn) < 0 || out_put(out, "\":", 2) < 0 ||
            out_put(out, row + vs, i - vs) < 0)
            return -ENOMEM;
        name = ne ? ne + 1 : name + nn;
        k++;
        while (i < len && (row[i] == ' ' || row[i] == '\t')) i++;
        if (i < len && row[i] == ',') i++;
    }
    if (k != n_names) {
        snprintf(err, errlen, "row has %zu values for %zu column names", k, n_names);
        return -EINVAL;
    }
    return out_put(out, "}\n", 2);
}

/* Append the UTF-8 of a JSON string's contents (in[i] == '"', already validated) with CSV
 * quoting: enclosed in '"', '"' doubled. */
static int json_string_csv(const char *in, size_t end, buf_t *out)
{
    if (out_put(out, "\"", 1) < 0) return -ENOMEM;
    for (size_t i = 1; i < end - 1; i++) {
        char c = in[i];
        if (c == '"') {
            if (out_put(out, "\"\"", 2) < 0) return -ENOMEM;
            continue;
        }
        if (c != '\\') {
            if (out_put(out, &c, 1) < 0) return -ENOMEM;
            continue;
        }
        char e = in[++i], one;
        if (e == 'u') {
            unsigned cp = (unsigned)strtoul((char[5]){in[i + 1], in[i + 2], in[i + 3], in[i + 4], 0},
                                            NULL, 16);
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < end && in[i + 1] == '\\' &&
                in[i + 2] == 'u') {
                unsigned lo = (unsigned)strtoul(
                    (char[5]){in[i + 3], in[i + 4], in[i + 5], in[i + 6], 0}, NULL, 16);
                if (lo >= 0xdc00 && lo < 0xe000) {
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                    i += 6;
                }
            }
            char u[4];
            size_t n;
            if (cp < 0x80) u[0] = (char)cp, n = 1;
            else if (cp < 0x800) u[0] = (char)(0xc0 | cp >> 6), u[1] = (char)(0x80 | (cp & 63)), n = 2;
            else if (cp < 0x10000)
                u[0] = (char)(0xe0 | cp >> 12), u[1] = (char)(0x80 | ((cp >> 6) & 63)),
                u[2] = (char)(0x80 | (cp & 63)), n = 3;
            else
                u[0] = (char)(0xf0 | cp >> 18), u[1] = (char)(0x80 | ((cp >> 12) & 63)),
                u[2] = (char)(0x80 | ((cp >> 6) & 63)), u[3] = (char)(0x80 | (cp & 63)), n = 4;
            if (cp == '"' ? out_put(out, "\"\"", 2) < 0 : out_put(out, u, n) < 0) return -ENOMEM;
            continue;
        }
        one = e == 'n' ? '\n' : e == 't' ? '\t' : e == 'r' ? '\r' : e == 'b' ? '\b' : e == 'f' ? '\f' : e;
        if (one == '"' ? out_put(out, "\"\"", 2) < 0 : out_put(out, &one, 1) < 0) return -ENOMEM;
    }
    return out_put(out, "\"", 1);
}

/* One compact row [v0, v1, ...] as a CSV line: strings unescaped and enclosed, null as \N,
 * numbers and booleans as they are, arrays/objects as their JSON text, enclosed. */
static int compact_row_csv(const char *row, size_t len, buf_t *out, char *err,
                           size_t errlen)
{
    size_t i = 0;
    while (i < len && row[i] != '[')
        i++;
    i++;
    for (int k = 0;; k++) {
        while (i < len && (row[i] == ' ' || row[i] == '\t')) i++;
        if (i < len && row[i] == ']') break;
        size_t vs = i;
        int nl, rc = 0;
        if (json_skip_value(row, len, &i, &nl, err, errlen)) return -EINVAL;
        if (k && out_put(out, ",", 1) < 0) return -ENOMEM;
        if (row[vs] == '"') {
            rc = json_string_csv(row + vs, i - vs, out);
        } else if (row[vs] == 'n') {
            rc = out_put(out, "\\N", 2);
        } else if (row[vs] == '[' || row[vs] == '{') {
            rc = out_put(out, "\"", 1);
            for (size_t j = vs; rc == 0 && j < i; j++)
                rc = row[j] == '"' ? out_put(out, "\"\"", 2) : out_put(out, row + j, 1);
            if (rc == 0) rc = out_put(out, "\"", 1);
        } else {
            rc = out_put(out, row + vs, i - vs);
        }
        if (rc) return rc;
        while (i < len && (row[i] == ' ' || row[i] == '\t')) i++;
        if (i < len && row[i] == ',') i++;
    }
    return out_put(out, "\n", 1);
}

int sink_sr_convert(const sink_batch_t *b, buf_t *out, sink_sr_load_t *load, int *whole,
                    char *err, size_t errlen)
{
    memset(load, 0, sizeof *load);
    *whole = 0;
    out->len = 0;
    out->oom = 0;
    load->format = "json";
    load->body = b->body;
    load->len = b->body_len;
    sr_kind_t k = sr_kind(b->fmt);
    if (strcmp(b->fmt, "RowBinaryWithNamesAndTypes") == 0) {
        /* Names and types travel with the rows: decoded to JSON lines. A bad one makes the
         * whole unit's entry (a binary body has no lines to bisect here). */
        int rc = sink_rowbinary_json(b->body, b->body_len, out, err, errlen);
        if (rc == -EINVAL) *whole = 1;
        if (rc) return rc;
        load->body = out->data ? out->data : "";
        load->len = out->len;
        return 0;
    }
    if (k == SR_NONE || b->whole) {
        *whole = 1;
        snprintf(err, errlen,
                 "sluice cannot convert %s%s for a StarRocks Stream Load (JSON and CSV/TSV text "
                 "formats, RowBinaryWithNamesAndTypes)",
                 b->fmt, b->whole && k != SR_NONE ? " with line breaks inside values" : "");
        return -EINVAL;
    }
    const char *p = b->body, *end = b->body + b->body_len;
    switch (k) {
    case SR_JSON:
        return 0;
    case SR_JSON_OBJ_ROW: /* `"name": {row}` → {row} */
        for (; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl + 1 : end;
            size_t ke = json_scan_string(p, (size_t)(e - p), 0);
            const char *v = ke ? memchr(p + ke, '{', (size_t)(e - p) - ke) : NULL;
            if (!v) {
                snprintf(err, errlen, "not a JSONObjectEachRow row");
                return -EINVAL;
            }
            if (out_put(out, v, (size_t)(e - v)) < 0) return -ENOMEM;
            p = e;
        }
        break;
    case SR_JSON_ARR: {
        if (b->hdr_len) {
            if (names_from_json_header(b->hdr, b->hdr_len, load->columns, sizeof load->columns,
                                       err, errlen)) {
                *whole = 1;
                return -EINVAL;
            }
        } else if (!b->columns || names_from_columns(b->columns, load->columns,
                                                     sizeof load->columns)) {
            /* No names: the values are by position in the table's columns, as a CSV load
             * without a columns header is in StarRocks. */
            load->columns[0] = '\0';
            load->format = "csv";
            snprintf(load->separator, sizeof load->separator, "\\x2c");
            snprintf(load->enclose, sizeof load->enclose, "\"");
            for (; p < end;) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                const char *e = nl ? nl + 1 : end;
                int rc = compact_row_csv(p, (size_t)(e - p), out, err, errlen);
                if (rc) return rc;
                p = e;
            }
            break;
        }
        size_t nn = count_names(load->columns);
        for (; p < end;) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl + 1 : end;
            int rc = compact_row(p, (size_t)(e - p), load->columns, nn, out, err, errlen);
            if (rc) return rc;
            p = e;
        }
        load->columns[0] = '\0'; /* objects carry the names */
        break;
    }
    case SR_CSV:
    case SR_TSV:
    case SR_TSV_RAW: {
        char sep = '\t';
        load->format = "csv";
        if (k == SR_CSV) {
            sep = ',';
            for (size_t i = 0; i < b->n_settings; i++)
                if (b->settings[i].key && strcmp(b->settings[i].key, "format_csv_delimiter") == 0 &&
                    b->settings[i].value && strlen(b->settings[i].value) == 1)
                    sep = b->settings[i].value[0];
            snprintf(load->enclose, sizeof load->enclose, "\"");
        }
        if (sep == '\t') snprintf(load->separator, sizeof load->separator, "\\x09");
        else snprintf(load->separator, sizeof load->separator, "\\x%02x", (unsigned char)sep);
        if (b->hdr_len) {
            if (names_from_sep_header(b->hdr, b->hdr_len, sep, k == SR_CSV, load->columns,
                                      sizeof load->columns, err, errlen)) {
                *whole = 1;
                return -EINVAL;
            }
        } else if (b->columns) {
            names_from_columns(b->columns, load->columns, sizeof load->columns);
        }
        if (k == SR_TSV) {
            /* TabSeparated escapes (\t, \n, \\ ...) have no CSV load equivalent; \N (NULL)
             * is the same in both. */
            for (const char *q = p; q < end; q++)
                if (*q == '\\' && !(q + 1 < end && q[1] == 'N')) {
                    snprintf(err, errlen,
                             "TabSeparated escape sequence '\\%c' cannot be expressed in a "
                             "StarRocks CSV load",
                             q + 1 < end ? q[1] : ' ');
                    return -EINVAL;
                }
        }
        return 0;
    }
    case SR_NONE:
        break;
    }
    load->body = out->data ? out->data : "";
    load->len = out->len;
    return 0;
}

/* ---------------------------------------------------------------- RowBinary rows */

/* RowBinary has no row boundaries of its own: they follow from the column types (ClickHouse's
 * src/Formats/ and DataTypes' binary serialization: little-endian fixed widths, LEB128 lengths
 * for String, Array and Map sizes, a 0/1 byte ahead of a Nullable value, LowCardinality as
 * its inner type, RowBinaryWithDefaults a 0/1 byte ahead of each column). */

typedef struct {
    const unsigned char *p, *end;
} rb_t;

static int rb_uleb(rb_t *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char c = *r->p++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

static int rb_skip(rb_t *r, uint64_t n)
{
    if ((uint64_t)(r->end - r->p) < n) return -1;
    r->p += n;
    return 0;
}

/* t[0..n) with spaces trimmed starts with word followed by '(' or the end. */
static int type_is(const char *t, size_t n, const char *word, const char **args, size_t *alen)
{
    size_t w = strlen(word);
    if (n < w || memcmp(t, word, w) != 0) return 0;
    if (n == w) {
        *args = NULL;
        *alen = 0;
        return 1;
    }
    if (t[w] != '(' || t[n - 1] != ')') return 0;
    *args = t + w + 1;
    *alen = n - w - 2;
    return 1;
}

/* Next top-level comma-separated argument of args; NULL when none left. */
static const char *next_arg(const char **args, size_t *alen, size_t *out_len)
{
    const char *a = *args;
    size_t n = *alen, depth = 0, i = 0;
    int q = 0;
    while (n && (*a == ' ')) a++, n--;
    if (!n) return NULL;
    for (; i < n; i++) {
        char c = a[i];
        if (q) {
            if (c == '\\') i++;
            else if (c == '\'') q = 0;
        } else if (c == '\'') q = 1;
        else if (c == '(') depth++;
        else if (c == ')') depth--;
        else if (c == ',' && depth == 0) break;
    }
    size_t l = i;
    while (l && a[l - 1] == ' ') l--;
    *out_len = l;
    *args = a + (i < n ? i + 1 : n);
    *alen = i < n ? n - i - 1 : 0;
    return a;
}

static int skip_value(rb_t *r, const char *t, size_t n, int depth);

/* A Tuple element may be "name Type": drop the name when what follows is a type. */
static void tuple_elem_type(const char **t, size_t *n)
{
    const char *sp = memchr(*t, ' ', *n);
    const char *par = memchr(*t, '(', *n);
    if (sp && (!par || sp < par)) {
        *n -= (size_t)(sp + 1 - *t);
        *t = sp + 1;
    }
}

static int skip_value(rb_t *r, const char *t, size_t n, int depth)
{
    static const struct {
        const char *name;
        uint8_t size;
    } fixed[] = {
        {"UInt8", 1},    {"Int8", 1},      {"Bool", 1},    {"Enum8", 1},   {"UInt16", 2},
        {"Int16", 2},    {"Date", 2},      {"Enum16", 2},  {"BFloat16", 2}, {"UInt32", 4},
        {"Int32", 4},    {"Float32", 4},   {"Date32", 4},  {"DateTime", 4}, {"IPv4", 4},
        {"Decimal32", 4}, {"UInt64", 8},   {"Int64", 8},   {"Float64", 8}, {"DateTime64", 8},
        {"Decimal64", 8}, {"Time", 4},     {"Time64", 8},  {"UInt128", 16}, {"Int128", 16},
        {"UUID", 16},    {"IPv6", 16},     {"Decimal128", 16}, {"UInt256", 32}, {"Int256", 32},
        {"Decimal256", 32},
    };
    const char *a;
    size_t al;
    uint64_t k;
    if (depth > 32) return -1;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (type_is(t, n, fixed[i].name, &a, &al)) return rb_skip(r, fixed[i].size);
    if (type_is(t, n, "String", &a, &al) && !a) {
        if (rb_uleb(r, &k)) return -1;
        return rb_skip(r, k);
    }
    if (type_is(t, n, "FixedString", &a, &al) && a) {
        if (*a < '0' || *a > '9') return -2;
        return rb_skip(r, strtoull(a, NULL, 10));
    }
    if (type_is(t, n, "Decimal", &a, &al) && a) {
        unsigned long prec = strtoul(a, NULL, 10);
        return rb_skip(r, prec <= 9 ? 4 : prec <= 18 ? 8 : prec <= 38 ? 16 : 32);
    }
    if (type_is(t, n, "Nullable", &a, &al) && a) {
        if (r->p >= r->end) return -1;
        if (*r->p++) return 0; /* 1 = NULL, no value follows */
        return skip_value(r, a, al, depth + 1);
    }
    if (type_is(t, n, "LowCardinality", &a, &al) && a) return skip_value(r, a, al, depth + 1);
    if (type_is(t, n, "SimpleAggregateFunction", &a, &al) && a) {
        size_t l;
        next_arg(&a, &al, &l); /* the function */
        const char *inner = next_arg(&a, &al, &l);
        return inner ? skip_value(r, inner, l, depth + 1) : -1;
    }
    if (type_is(t, n, "Array", &a, &al) && a) {
        if (rb_uleb(r, &k)) return -1;
        for (uint64_t i = 0; i < k; i++) {
            const unsigned char *before = r->p;
            int rc = skip_value(r, a, al, depth + 1);
            if (rc) return rc;
            /* A zero-width element (Tuple(), FixedString(0)): so are all the others; never
             * loop a length read from the data over no bytes (found by fuzz_formats). */
            if (r->p == before) return 0;
        }
        return 0;
    }
    if (type_is(t, n, "Map", &a, &al) && a) {
        size_t kl, vl;
        const char *kt = next_arg(&a, &al, &kl), *vt = next_arg(&a, &al, &vl);
        if (!kt || !vt || rb_uleb(r, &k)) return -1;
        for (uint64_t i = 0; i < k; i++) {
            const unsigned char *before = r->p;
            int rc = skip_value(r, kt, kl, depth + 1);
            if (!rc) rc = skip_value(r, vt, vl, depth + 1);
            if (rc) return rc;
            if (r->p == before) return 0;
        }
        return 0;
    }
    if (type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        while ((e = next_arg(&a, &al, &el))) {
            tuple_elem_type(&e, &el);
            int rc = skip_value(r, e, el, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    return -2; /* a type sluice cannot measure (JSON, Dynamic, Variant, AggregateFunction...) */
}

/* Types from a "name\ttype\n" list (DESCRIBE output, insertable columns only) for the columns
 * named in cols ("a, `b`" or NULL = all, in order). */
static int pick_types(const char *describe, const char *cols, const char **types, size_t *lens,
                      size_t max, size_t *n)
{
    *n = 0;
    char want[256];
    const char *c = cols;
    for (;;) {
        size_t wl = 0;
        if (cols) {
            while (*c == ' ' || *c == ',') c++;
            if (!*c) break;
            while (*c && *c != ',') {
                if (*c == '\\' && c[1]) c++;
                if (*c != '`' && wl + 1 < sizeof want) want[wl++] = *c;
                c++;
            }
            while (wl && want[wl - 1] == ' ') wl--;
        }
        int found = 0;
        for (const char *l = describe; *l;) {
            const char *nl = strchr(l, '\n');
            size_t ll = nl ? (size_t)(nl - l) : strlen(l);
            const char *tab = memchr(l, '\t', ll);
            if (tab && (!cols || ((size_t)(tab - l) == wl && memcmp(l, want, wl) == 0))) {
                if (*n == max) return -1;
                types[*n] = tab + 1;
                lens[*n] = ll - (size_t)(tab + 1 - l);
                (*n)++;
                found = 1;
                if (cols) break;
            }
            l += ll + (nl ? 1 : 0);
        }
        if (!cols) break;
        if (!found) return -1;
    }
    return *n ? 0 : -1;
}

int sink_rowbinary_split(const char *fmt, const char *cols, const char *describe,
                         const char *data, size_t len, size_t *hdr_len, size_t **off,
                         uint32_t *n_rows, char *err, size_t errlen)
{
    enum { MAXC = 1024 };
    const char *types[MAXC];
    size_t tl[MAXC], nt = 0;
    char *names_buf = NULL;
    int defaults = strstr(fmt, "WithDefaults") != NULL;
    int with_names = strstr(fmt, "WithNames") != NULL, with_types = strstr(fmt, "AndTypes") != NULL;
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    *off = NULL;
    *hdr_len = 0;
    if (with_names) {
        uint64_t nc;
        if (rb_uleb(&r, &nc) || nc == 0 || nc > MAXC) goto bad_header;
        /* names as "a, b" for pick_types, then (AndTypes) the types themselves */
        names_buf = malloc(2 * len + 4 * nc + 1);
        if (!names_buf) return -ENOMEM;
        size_t o = 0;
        for (uint64_t i = 0; i < nc; i++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad_header;
            if (i) names_buf[o++] = ',';
            names_buf[o++] = '`';
            for (uint64_t j = 0; j < l; j++) {
                if (r.p[j] == '`' || r.p[j] == '\\') names_buf[o++] = '\\';
                names_buf[o++] = (char)r.p[j];
            }
            names_buf[o++] = '`';
            r.p += l;
        }
        names_buf[o] = '\0';
        if (with_types) {
            for (uint64_t i = 0; i < nc; i++) {
                uint64_t l;
                if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad_header;
                types[nt] = (const char *)r.p;
                tl[nt++] = (size_t)l;
                r.p += l;
            }
        } else if (!describe || pick_types(describe, names_buf, types, tl, MAXC, &nt)) {
            snprintf(err, errlen, "RowBinaryWithNames: no types for the header's columns");
            free(names_buf);
            return -EINVAL;
        }
        *hdr_len = (size_t)((const char *)r.p - data);
    } else if (!describe || pick_types(describe, cols, types, tl, MAXC, &nt)) {
        snprintf(err, errlen, "RowBinary: the table's column types are unknown");
        return -EINVAL;
    }
    size_t cap = 64, n = 0;
    size_t *o = malloc(cap * sizeof *o);
    if (!o) {
        free(names_buf);
        return -ENOMEM;
    }
    o[0] = *hdr_len;
    while (r.p < r.end) {
        const unsigned char *row_start = r.p;
        for (size_t i = 0; i < nt; i++) {
            if (defaults) {
                if (r.p >= r.end) goto bad_row;
                if (*r.p++) continue; /* 1: the column's default, no value */
            }
            int rc = skip_value(&r, types[i], tl[i], 0);
            if (rc == -2) {
                snprintf(err, errlen, "RowBinary: cannot measure values of type %.*s",
                         (int)(tl[i] > 100 ? 100 : tl[i]), types[i]);
                goto fail;
            }
            if (rc) goto bad_row;
        }
        if (r.p == row_start) goto bad_row; /* zero-width rows: no boundaries to find */
        if (n + 2 > cap) {
            cap *= 2;
            size_t *no = realloc(o, cap * sizeof *no);
            if (!no) {
                free(o);
                free(names_buf);
                return -ENOMEM;
            }
            o = no;
        }
        o[++n] = (size_t)((const char *)r.p - data);
        if (n >= UINT32_MAX - 1) goto bad_row;
    }
    free(names_buf);
    *off = o;
    *n_rows = (uint32_t)n;
    return 0;
bad_row:
    snprintf(err, errlen, "RowBinary: row %zu does not end where the column types say", n + 1);
fail:
    free(o);
    free(names_buf);
    return -EINVAL;
bad_header:
    snprintf(err, errlen, "RowBinary: bad header");
    free(names_buf);
    return -EINVAL;
}

/* ---------------------------------------------------------------- RowBinary → JSON */

static uint64_t rb_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Days since 1970-01-01 → y-m-d (the civil-from-days algorithm of the proleptic Gregorian
 * calendar). */
static void civil(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int put_datetime(buf_t *o, int64_t secs, int64_t frac, unsigned digits)
{
    if (secs < -62135596800ll || secs > 253402300799ll) return -1; /* outside years 1..9999 */
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int y;
    unsigned m, d;
    civil(days, &y, &m, &d);
    if (buf_printf(o, "\"%04d-%02u-%02u %02u:%02u:%02u", y, m, d, (unsigned)(rem / 3600),
                   (unsigned)(rem / 60 % 60), (unsigned)(rem % 60)))
        return -ENOMEM;
    if (digits && buf_printf(o, ".%0*lld", (int)digits, (long long)frac)) return -ENOMEM;
    return buf_puts(o, "\"") ? -ENOMEM : 0;
}

static int put_decimal(buf_t *o, int64_t v, unsigned scale)
{
    if (scale > 18) return -2; /* a scale no 64-bit Decimal has */
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, p = 1;
    for (unsigned i = 0; i < scale; i++)
        p *= 10;
    if (buf_printf(o, "%s%llu", v < 0 ? "-" : "", (unsigned long long)(a / p))) return -ENOMEM;
    if (scale && buf_printf(o, ".%0*llu", (int)scale, (unsigned long long)(a % p)))
        return -ENOMEM;
    return 0;
}

static int put_json_bytes(buf_t *o, const unsigned char *s, size_t n)
{
    if (buf_puts(o, "\"")) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char e[6];
        if (buf_append(o, e, json_escape_byte(s[i], e))) return -ENOMEM;
    }
    return buf_puts(o, "\"") ? -ENOMEM : 0;
}

/* One value of type t as JSON for a Stream Load. -1 bytes do not fit, -2 type not decoded. */
static int value_json(rb_t *r, const char *t, size_t n, buf_t *o, int depth)
{
    static const struct {
        const char *name;
        uint8_t size, sign;
    } ints[] = {{"UInt8", 1, 0}, {"UInt16", 2, 0}, {"UInt32", 4, 0}, {"UInt64", 8, 0},
                {"Int8", 1, 1},  {"Int16", 2, 1},  {"Int32", 4, 1},  {"Int64", 8, 1}};
    const char *a;
    size_t al;
    if (depth > 32) return -2;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (type_is(t, n, ints[i].name, &a, &al) && !a) {
            if (r->end - r->p < ints[i].size) return -1;
            uint64_t v = rb_le(r->p, ints[i].size);
            r->p += ints[i].size;
            if (ints[i].sign && ints[i].size < 8 && (v >> (8 * ints[i].size - 1)))
                v |= ~0ull << (8 * ints[i].size);
            return (ints[i].sign ? buf_printf(o, "%lld", (long long)v)
                                 : buf_printf(o, "%llu", (unsigned long long)v))
                       ? -ENOMEM
                       : 0;
        }
    if ((type_is(t, n, "Float32", &a, &al) || type_is(t, n, "Float64", &a, &al)) && !a) {
        size_t sz = t[5] == '3' ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        uint64_t bits = rb_le(r->p, sz);
        r->p += sz;
        double d;
        if (sz == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            d = f;
        } else {
            memcpy(&d, &bits, 8);
        }
        if (d != d || d - d != 0) return buf_puts(o, "null") ? -ENOMEM : 0;
        return buf_printf(o, sz == 4 ? "%.9g" : "%.17g", d) ? -ENOMEM : 0;
    }
    if (type_is(t, n, "Bool", &a, &al) && !a) {
        if (r->p >= r->end) return -1;
        return buf_puts(o, *r->p++ ? "true" : "false") ? -ENOMEM : 0;
    }
    if (type_is(t, n, "String", &a, &al) && !a) {
        uint64_t k;
        if (rb_uleb(r, &k) || (uint64_t)(r->end - r->p) < k) return -1;
        r->p += k;
        return put_json_bytes(o, r->p - k, (size_t)k);
    }
    if (type_is(t, n, "FixedString", &a, &al) && a) {
        if (*a < '0' || *a > '9') return -2;
        uint64_t k = strtoull(a, NULL, 10), l;
        if ((uint64_t)(r->end - r->p) < k) return -1;
        for (l = k; l && r->p[l - 1] == 0; l--) {
        }
        r->p += k;
        return put_json_bytes(o, r->p - k, (size_t)l);
    }
    if (type_is(t, n, "UUID", &a, &al) && !a) {
        if (r->end - r->p < 16) return -1;
        uint64_t hi = rb_le(r->p, 8), lo = rb_le(r->p + 8, 8);
        r->p += 16;
        return buf_printf(o, "\"%08llx-%04llx-%04llx-%04llx-%012llx\"",
                          (unsigned long long)(hi >> 32), (unsigned long long)(hi >> 16 & 0xffff),
                          (unsigned long long)(hi & 0xffff), (unsigned long long)(lo >> 48),
                          (unsigned long long)(lo & 0xffffffffffffull))
                   ? -ENOMEM
                   : 0;
    }
    if ((type_is(t, n, "Date", &a, &al) && !a) || (type_is(t, n, "Date32", &a, &al) && !a)) {
        size_t sz = n == 4 ? 2 : 4;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t days = sz == 2 ? (int64_t)rb_le(r->p, 2) : (int64_t)(int32_t)rb_le(r->p, 4);
        r->p += sz;
        int y;
        unsigned m, d;
        civil(days, &y, &m, &d);
        return buf_printf(o, "\"%04d-%02u-%02u\"", y, m, d) ? -ENOMEM : 0;
    }
    if (type_is(t, n, "DateTime", &a, &al)) { /* a time zone argument: shown in UTC */
        if (r->end - r->p < 4) return -1;
        uint64_t s = rb_le(r->p, 4);
        r->p += 4;
        return put_datetime(o, (int64_t)s, 0, 0);
    }
    if (type_is(t, n, "DateTime64", &a, &al) && a) {
        unsigned p = (unsigned)strtoul(a, NULL, 10);
        if (p > 9) return -2;
        if (r->end - r->p < 8) return -1;
        int64_t v = (int64_t)rb_le(r->p, 8), sc = 1;
        r->p += 8;
        for (unsigned i = 0; i < p; i++)
            sc *= 10;
        int64_t s = v / sc, f = v % sc;
        if (f < 0) f += sc, s--;
        return put_datetime(o, s, f, p);
    }
    if (type_is(t, n, "Decimal", &a, &al) && a) {
        unsigned long prec = strtoul(a, NULL, 10);
        const char *c = memchr(a, ',', al);
        unsigned scale = c ? (unsigned)strtoul(c + 1, NULL, 10) : 0;
        if (prec > 18) return -2;
        size_t sz = prec <= 9 ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t v = sz == 4 ? (int64_t)(int32_t)rb_le(r->p, 4) : (int64_t)rb_le(r->p, 8);
        r->p += sz;
        return put_decimal(o, v, scale);
    }
    if ((type_is(t, n, "Decimal32", &a, &al) || type_is(t, n, "Decimal64", &a, &al)) && a) {
        size_t sz = t[8] == '3' ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t v = sz == 4 ? (int64_t)(int32_t)rb_le(r->p, 4) : (int64_t)rb_le(r->p, 8);
        r->p += sz;
        return put_decimal(o, v, (unsigned)strtoul(a, NULL, 10));
    }
    if (type_is(t, n, "Nullable", &a, &al) && a) {
        if (r->p >= r->end) return -1;
        if (*r->p++) return buf_puts(o, "null") ? -ENOMEM : 0;
        return value_json(r, a, al, o, depth + 1);
    }
    if (type_is(t, n, "LowCardinality", &a, &al) && a) return value_json(r, a, al, o, depth + 1);
    if (type_is(t, n, "Array", &a, &al) && a) {
        uint64_t k;
        if (rb_uleb(r, &k) || k > (uint64_t)(r->end - r->p)) return -1;
        if (buf_puts(o, "[")) return -ENOMEM;
        for (uint64_t i = 0; i < k; i++) {
            int rc = (i && buf_puts(o, ",")) ? -ENOMEM : value_json(r, a, al, o, depth + 1);
            if (rc) return rc;
        }
        return buf_puts(o, "]") ? -ENOMEM : 0;
    }
    if (type_is(t, n, "Map", &a, &al) && a) {
        size_t kl, vl;
        const char *kt = next_arg(&a, &al, &kl), *vt = next_arg(&a, &al, &vl);
        uint64_t k;
        if (!kt || !vt || rb_uleb(r, &k) || k > (uint64_t)(r->end - r->p)) return -1;
        if (buf_puts(o, "{")) return -ENOMEM;
        for (uint64_t i = 0; i < k; i++) {
            if (i && buf_puts(o, ",")) return -ENOMEM;
            size_t at = o->len;
            int rc = value_json(r, kt, kl, o, depth + 1);
            if (rc) return rc;
            if (o->data[at] != '"') { /* a non-string key, as a JSON string */
                if (buf_puts(o, "\"\"")) return -ENOMEM;
                memmove(o->data + at + 1, o->data + at, o->len - 2 - at);
                o->data[at] = '"'; /* the second '"' appended stays last */
            }
            rc = buf_puts(o, ":") ? -ENOMEM : value_json(r, vt, vl, o, depth + 1);
            if (rc) return rc;
        }
        return buf_puts(o, "}") ? -ENOMEM : 0;
    }
    if (type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        int first = 1;
        if (buf_puts(o, "[")) return -ENOMEM;
        while ((e = next_arg(&a, &al, &el))) {
            tuple_elem_type(&e, &el);
            int rc = (!first && buf_puts(o, ",")) ? -ENOMEM : value_json(r, e, el, o, depth + 1);
            if (rc) return rc;
            first = 0;
        }
        return buf_puts(o, "]") ? -ENOMEM : 0;
    }
    return -2;
}

int sink_rowbinary_json(const char *data, size_t len, buf_t *o, char *err, size_t errlen)
{
    enum { MAXC = 1024 };
    const char *names[MAXC], *types[MAXC];
    size_t nl[MAXC], tl[MAXC];
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    uint64_t nc;
    if (rb_uleb(&r, &nc) || nc == 0 || nc > MAXC) goto bad;
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t i = 0; i < nc; i++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad;
            (pass ? types : names)[i] = (const char *)r.p;
            (pass ? tl : nl)[i] = (size_t)l;
            r.p += l;
        }
    uint64_t row = 0;
    while (r.p < r.end) {
        const unsigned char *row_start = r.p;
        row++;
        if (buf_puts(o, "{")) return -ENOMEM;
        for (uint64_t i = 0; i < nc; i++) {
            if ((i && buf_puts(o, ",")) ||
                put_json_bytes(o, (const unsigned char *)names[i], nl[i]) || buf_puts(o, ":"))
                return -ENOMEM;
            int rc = value_json(&r, types[i], tl[i], o, 0);
            if (rc == -ENOMEM) return rc;
            if (rc == -2) {
                snprintf(err, errlen, "sluice cannot decode RowBinary type %.*s for StarRocks",
                         (int)(tl[i] > 100 ? 100 : tl[i]), types[i]);
                return -EINVAL;
            }
            if (rc) {
                snprintf(err, errlen, "RowBinary row %llu does not fit its types",
                         (unsigned long long)row);
                return -EINVAL;
            }
        }
        if (buf_puts(o, "}\n")) return -ENOMEM;
        if (r.p == row_start) { /* zero-width rows: the data would never end */
            snprintf(err, errlen, "RowBinary rows of zero width");
            return -EINVAL;
        }
    }
    return 0;
bad:
    snprintf(err, errlen, "RowBinaryWithNamesAndTypes: bad header");
    return -EINVAL;
}

/* ---------------------------------------------------------------- Native blocks */

/* Skip the data of one column of `rows` values in a Native block (columnar: Nullable is a null
 * map then all values, Array/Map their UInt64 end offsets then the flattened elements, Tuple
 * one column per element; other types as in RowBinary, value after value). */
static int skip_column(rb_t *r, const char *t, size_t n, uint64_t rows, int depth)
{
    const char *a;
    size_t al;
    if (depth > 32) return -2;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    if (type_is(t, n, "Nullable", &a, &al) && a) {
        if (rb_skip(r, rows)) return -1;
        return skip_column(r, a, al, rows, depth + 1);
    }
    if ((type_is(t, n, "Array", &a, &al) || type_is(t, n, "Map", &a, &al)) && a) {
        if (rows > (uint64_t)(r->end - r->p) / 8) return -1;
        uint64_t total = rows ? rb_le(r->p + 8 * (rows - 1), 8) : 0;
        r->p += 8 * rows;
        if (t[0] == 'A') return skip_column(r, a, al, total, depth + 1);
        size_t kl, vl;
        const char *kt = next_arg(&a, &al, &kl), *vt = next_arg(&a, &al, &vl);
        if (!kt || !vt) return -2;
        int rc = skip_column(r, kt, kl, total, depth + 1);
        return rc ? rc : skip_column(r, vt, vl, total, depth + 1);
    }
    if (type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        while ((e = next_arg(&a, &al, &el))) {
            tuple_elem_type(&e, &el);
            int rc = skip_column(r, e, el, rows, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (type_is(t, n, "LowCardinality", &a, &al)) return -2; /* dictionary-encoded */
    for (uint64_t i = 0; i < rows; i++) {
        const unsigned char *before = r->p;
        int rc = skip_value(r, t, n, depth + 1);
        if (rc) return rc;
        if (r->p == before) return 0; /* zero-width values */
    }
    return 0;
}

int sink_native_split(const char *data, size_t len, size_t **off, uint32_t *n_blocks, char *err,
                      size_t errlen)
{
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    size_t cap = 16, n = 0;
    size_t *o = malloc(cap * sizeof *o);
    if (!o) return -ENOMEM;
    o[0] = 0;
    while (r.p < r.end) {
        uint64_t ncols, nrows;
        if (rb_uleb(&r, &ncols) || rb_uleb(&r, &nrows) || ncols > 100000) goto bad;
        for (uint64_t c = 0; c < ncols; c++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || rb_skip(&r, l) || rb_uleb(&r, &l) ||
                (uint64_t)(r.end - r.p) < l)
                goto bad;
            const char *type = (const char *)r.p;
            r.p += l;
            int rc = skip_column(&r, type, (size_t)l, nrows, 0);
            if (rc == -2) {
                snprintf(err, errlen, "Native: cannot measure a column of type %.*s",
                         (int)(l > 100 ? 100 : l), type);
                free(o);
                return -EINVAL;
            }
            if (rc) goto bad;
        }
        if (n + 2 > cap) {
            cap *= 2;
            size_t *no = realloc(o, cap * sizeof *no);
            if (!no) {
                free(o);
                return -ENOMEM;
            }
            o = no;
        }
        o[++n] = (size_t)((const char *)r.p - data);
        if (o[n] == o[n - 1] || n >= UINT32_MAX - 1) goto bad;
    }
    *off = o;
    *n_blocks = (uint32_t)n;
    return 0;
bad:
    snprintf(err, errlen, "Native: block %zu does not end where its columns say", n + 1);
    free(o);
    return -EINVAL;
}
