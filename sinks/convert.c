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

static int out_put(sink_out_t *o, const char *s, size_t n)
{
    if (o->len + n + 1 > o->cap) {
        size_t nc = o->cap ? o->cap : 4096;
        while (nc < o->len + n + 1)
            nc *= 2;
        char *np = realloc(o->p, nc);
        if (!np) return -ENOMEM;
        o->p = np;
        o->cap = nc;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
    return 0;
}

void sink_out_free(sink_out_t *o)
{
    free(o->p);
    memset(o, 0, sizeof *o);
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

int sink_ch_body(const sink_batch_t *b, sink_out_t *out, const char **body, size_t *len)
{
    out->len = 0;
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
    *body = out->p;
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
                       sink_out_t *out, char *err, size_t errlen)
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

int sink_sr_convert(const sink_batch_t *b, sink_out_t *out, sink_sr_load_t *load, int *whole,
                    char *err, size_t errlen)
{
    memset(load, 0, sizeof *load);
    *whole = 0;
    out->len = 0;
    load->format = "json";
    load->body = b->body;
    load->len = b->body_len;
    sr_kind_t k = sr_kind(b->fmt);
    if (k == SR_NONE || b->whole) {
        *whole = 1;
        snprintf(err, errlen,
                 "sluice cannot convert %s%s for a StarRocks Stream Load (JSON and CSV/TSV text "
                 "formats only)",
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
            *whole = 1;
            snprintf(err, errlen,
                     "%s rows without column names (no WithNames header, no column list in "
                     "the INSERT): StarRocks needs them to map the values",
                     b->fmt);
            return -EINVAL;
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
    load->body = out->p ? out->p : "";
    load->len = out->len;
    return 0;
}
