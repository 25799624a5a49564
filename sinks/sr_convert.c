/* sr_convert.c — stored rows to a StarRocks Stream Load: JSON lines (JSON families; compact
 * arrays become objects with the names from the header or the statement's column list), a CSV
 * load with the format's separator (CSV, TabSeparatedRaw, TabSeparated without escapes), or
 * RowBinaryWithNamesAndTypes decoded (rowbinary_json.c). A row that cannot be expressed is
 * refused with the reason; the engine bisects down to it and dead-letters it, so both sinks
 * never silently differ. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sinks/convert_internal.h"

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
