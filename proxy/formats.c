/* formats.c — the input formats sluice makes durable: the table of names the modern engine
 * takes over HTTP (and their aliases), and for each family a validator that checks what can be
 * checked without the table's schema and cuts the body into one row per line, so the WAL can
 * split it into records and a sink can bisect it. Header rows of ...WithNames[AndTypes]
 * formats are kept apart (hdr): a sink sends them ahead of every chunk of rows, so each
 * delivered body describes itself. Binary formats are kept as one whole unit.
 *
 * Names: the input formats of src/Formats/registerFormats.cpp in ClickHouse (registered by
 * registerInputFormatJSONEachRow, ...JSONCompactEachRow, ...CSV, ...TabSeparated, ...Values,
 * ...RowBinary, ...Native in src/Processors/Formats/Impl/), checked against the engine of
 * tests/support/chserver (chdb 3.4.0): `SELECT name FROM system.formats WHERE is_input`
 * lists every name below; JSONLines, NDJSON and JSONL are JSONEachRow's aliases
 * (registerFormatAlias in JSONEachRowRowInputFormat.cpp), TSV* TabSeparated*'s. The engine
 * resolves a name case-insensitively when no exact match exists (FormatFactory::
 * getCreators, "jsoneachrow" is accepted), so lookup here is case-insensitive and the record
 * keeps the canonical spelling. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "proxy/proxy_internal.h"

static const proxy_format_t formats[] = {
    {"JSONEachRow", PROXY_FMT_JSON_OBJ, 0},
    {"JSONLines", PROXY_FMT_JSON_OBJ, 0},
    {"NDJSON", PROXY_FMT_JSON_OBJ, 0},
    {"JSONL", PROXY_FMT_JSON_OBJ, 0},
    {"JSONStringsEachRow", PROXY_FMT_JSON_OBJ, 0},
    {"JSONCompactEachRow", PROXY_FMT_JSON_ARR, 0},
    {"JSONCompactEachRowWithNames", PROXY_FMT_JSON_ARR, 1},
    {"JSONCompactEachRowWithNamesAndTypes", PROXY_FMT_JSON_ARR, 2},
    {"JSONCompactStringsEachRow", PROXY_FMT_JSON_ARR, 0},
    {"JSONCompactStringsEachRowWithNames", PROXY_FMT_JSON_ARR, 1},
    {"JSONCompactStringsEachRowWithNamesAndTypes", PROXY_FMT_JSON_ARR, 2},
    {"JSONObjectEachRow", PROXY_FMT_JSON_OBJECT_EACH_ROW, 0},
    {"CSV", PROXY_FMT_CSV, 0},
    {"CSVWithNames", PROXY_FMT_CSV, 1},
    {"CSVWithNamesAndTypes", PROXY_FMT_CSV, 2},
    {"TabSeparated", PROXY_FMT_TSV, 0},
    {"TSV", PROXY_FMT_TSV, 0},
    {"TabSeparatedWithNames", PROXY_FMT_TSV, 1},
    {"TSVWithNames", PROXY_FMT_TSV, 1},
    {"TabSeparatedWithNamesAndTypes", PROXY_FMT_TSV, 2},
    {"TSVWithNamesAndTypes", PROXY_FMT_TSV, 2},
    {"TabSeparatedRaw", PROXY_FMT_TSV_RAW, 0},
    {"TSVRaw", PROXY_FMT_TSV_RAW, 0},
    {"TabSeparatedRawWithNames", PROXY_FMT_TSV_RAW, 1},
    {"TSVRawWithNames", PROXY_FMT_TSV_RAW, 1},
    {"TabSeparatedRawWithNamesAndTypes", PROXY_FMT_TSV_RAW, 2},
    {"TSVRawWithNamesAndTypes", PROXY_FMT_TSV_RAW, 2},
    {"Values", PROXY_FMT_VALUES, 0},
    {"RowBinary", PROXY_FMT_BINARY, 0},
    {"RowBinaryWithNames", PROXY_FMT_BINARY, 0},
    {"RowBinaryWithNamesAndTypes", PROXY_FMT_BINARY, 0},
    {"RowBinaryWithDefaults", PROXY_FMT_BINARY, 0},
    {"Native", PROXY_FMT_BINARY, 0},
};

const proxy_format_t *proxy_format_find(const char *name)
{
    size_t n = sizeof formats / sizeof *formats;
    for (size_t i = 0; i < n; i++)
        if (strcmp(formats[i].name, name) == 0) return &formats[i];
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(formats[i].name, name) == 0) return &formats[i];
    return NULL;
}

/* ---------------------------------------------------------------- helpers */

static int body_error(proxy_body_t *b, uint64_t row, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int body_error(proxy_body_t *b, uint64_t row, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->err, sizeof b->err, fmt, ap);
    va_end(ap);
    b->bad_row = row;
    free(b->owned);
    b->owned = NULL;
    b->data = b->hdr = NULL;
    b->len = b->hdr_len = 0;
    b->n_rows = 0;
    return -EINVAL;
}

static const char *setting(const wal_kv_t *kv, size_t n, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (kv[i].key && strcmp(kv[i].key, key) == 0) v = kv[i].value;
    return v;
}

static int setting_true(const wal_kv_t *kv, size_t n, const char *key)
{
    const char *v = setting(kv, n, key);
    return v && (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0);
}

/* Make data end in '\n' (the sinks' and the WAL's row framing): in place when the caller
 * gave room past len, else a copy. */
static int terminate(proxy_body_t *b, char *in, size_t start, size_t len, size_t cap)
{
    if (len == start || in[len - 1] == '\n') {
        b->data = in + start;
        b->len = len - start;
        return 0;
    }
    if (cap > len) {
        in[len] = '\n';
        b->data = in + start;
        b->len = len - start + 1;
        return 0;
    }
    char *c = malloc(len - start + 1);
    if (!c) return -ENOMEM;
    memcpy(c, in + start, len - start);
    c[len - start] = '\n';
    b->owned = c;
    b->data = c;
    b->len = len - start + 1;
    return 0;
}

/* Move the first n lines of data into hdr (they point into the same bytes). */
static int peel_header(proxy_body_t *b, int n)
{
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const char *nl = memchr(b->data + off, '\n', b->len - off);
        if (!nl) return body_error(b, (uint64_t)k + 1, "missing header row %d", k + 1);
        off = (size_t)(nl - b->data) + 1;
    }
    b->hdr = b->data;
    b->hdr_len = off;
    b->data += off;
    b->len -= off;
    b->n_rows -= (uint32_t)n;
    return 0;
}

/* ---------------------------------------------------------------- JSON families */

static int split_json(const proxy_format_t *f, char *in, size_t len, size_t cap, proxy_body_t *b)
{
    proxy_rows_t r;
    int rc = f->kind == PROXY_FMT_JSON_OBJ ? proxy_rows_parse(in, len, cap, &r)
                                           : proxy_rows_parse_arrays(in, len, cap, &r);
    if (rc == -EINVAL) return body_error(b, r.bad_row, "%s", r.err);
    if (rc) return rc;
    b->data = r.data;
    b->len = r.len;
    b->n_rows = r.n_rows;
    b->owned = r.owned;
    if (f->header_rows && b->n_rows) return peel_header(b, f->header_rows);
    return 0;
}

static size_t skip_json_ws(const char *in, size_t len, size_t i)
{
    while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
        i++;
    return i;
}

/* JSONObjectEachRow: {"name": {row}, "name2": {row}}. Stored as one `"name": {row}` per
 * line; the ClickHouse sink puts the braces and commas back (sinks/convert.c). */
static int split_json_object(char *in, size_t len, proxy_body_t *b)
{
    size_t i = 0;
    if (len >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) i = 3;
    i = skip_json_ws(in, len, i);
    if (i >= len) return 0; /* empty body: no rows */
    if (in[i] != '{') return body_error(b, 1, "expected '{' at byte %zu", i);
    char *out = malloc(len + 2);
    if (!out) return -ENOMEM;
    b->owned = out;
    size_t o = 0;
    uint64_t rows = 0;
    i = skip_json_ws(in, len, i + 1);
    if (i < len && in[i] == '}') {
        i = skip_json_ws(in, len, i + 1);
        goto end;
    }
    for (;;) {
        if (i >= len || in[i] != '"')
            return body_error(b, rows + 1, "expected a string key at byte %zu", i);
        size_t ks = i, ke = json_scan_string(in, len, i);
        if (!ke) return body_error(b, rows + 1, "bad string key at byte %zu", i);
        i = skip_json_ws(in, len, ke);
        if (i >= len || in[i] != ':') return body_error(b, rows + 1, "expected ':' at byte %zu", i);
        i = skip_json_ws(in, len, i + 1);
        if (i >= len || in[i] != '{')
            return body_error(b, rows + 1, "expected an object at byte %zu (each row)", i);
        size_t vs = i;
        int has_nl = 0;
        char err[128];
        if (json_skip_value(in, len, &i, &has_nl, err, sizeof err))
            return body_error(b, rows + 1, "%s", err);
        memcpy(out + o, in + ks, ke - ks);
        o += ke - ks;
        out[o++] = ':';
        for (size_t k = vs; k < i; k++)
            out[o++] = (has_nl && (in[k] == '\n' || in[k] == '\r')) ? ' ' : in[k];
        out[o++] = '\n';
        if (++rows > UINT32_MAX - 1) return body_error(b, rows, "too many rows");
        i = skip_json_ws(in, len, i);
        if (i < len && in[i] == ',') {
            i = skip_json_ws(in, len, i + 1);
            continue;
        }
        if (i < len && in[i] == '}') {
            i = skip_json_ws(in, len, i + 1);
            break;
        }
        return body_error(b, rows + 1, "expected ',' or '}' at byte %zu", i);
    }
end:
    if (i < len && in[i] == ';') i = skip_json_ws(in, len, i + 1);
    if (i < len) return body_error(b, rows + 1, "data after the closing '}' at byte %zu", i);
    b->data = out;
    b->len = o;
    b->n_rows = (uint32_t)rows;
    return 0;
}

/* ---------------------------------------------------------------- CSV, TSV */

/* One pass over delimiter-separated rows: counts fields per row (all rows must agree unless
 * the variable-columns setting is on), checks quoting (CSV) or escapes (TSV), and notes a
 * line break inside a quoted field or after a backslash: then rows are not lines, and the
 * body becomes one whole unit. */
static int split_separated(const proxy_format_t *f, const wal_kv_t *kv, size_t nkv, char *in,
                           size_t len, size_t cap, proxy_body_t *b)
{
    int csv = f->kind == PROXY_FMT_CSV, raw = f->kind == PROXY_FMT_TSV_RAW;
    char delim = '\t', q2 = 0;
    int variable;
    if (csv) {
        const char *d = setting(kv, nkv, "format_csv_delimiter");
        if (d && strlen(d) != 1)
            return body_error(b, 0, "format_csv_delimiter must be one character");
        delim = d ? d[0] : ',';
        if (setting_true(kv, nkv, "format_csv_allow_single_quotes")) q2 = '\'';
        variable = setting_true(kv, nkv, "input_format_csv_allow_variable_number_of_columns");
    } else {
        variable = setting_true(kv, nkv, "input_format_tsv_allow_variable_number_of_columns");
    }
    size_t i = 0, start = 0;
    if (len >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) i = start = 3;
    uint64_t rows = 0;
    size_t want = 0, fields = 1;
    int multiline = 0, at_field = 1;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (csv && at_field && (c == '"' || (q2 && c == q2))) {
            size_t j = i + 1;
            for (;;) {
                if (j >= len) return body_error(b, rows + 1, "unterminated quoted field");
                if ((unsigned char)in[j] == c) {
                    if (j + 1 < len && (unsigned char)in[j + 1] == c) {
                        j += 2;
                        continue;
                    }
                    break;
                }
                if (in[j] == '\n' || in[j] == '\r') multiline = 1;
                j++;
            }
            i = j + 1;
            if (i < len && in[i] != delim && in[i] != '\n' &&
                !(in[i] == '\r' && (i + 1 >= len || in[i + 1] == '\n')))
                return body_error(b, rows + 1, "unexpected '%c' after a quoted field at byte %zu",
                                  in[i], i);
            at_field = 0;
            continue;
        }
        at_field = 0;
        if (c == '\\' && !csv && !raw) {
            if (i + 1 >= len) return body_error(b, rows + 1, "backslash at the end of the data");
            if (in[i + 1] == '\n') multiline = 1;
            i += 2;
            continue;
        }
        if (c == (unsigned char)delim) {
            fields++;
            at_field = 1;
        } else if (c == '\n') {
            if (!variable) {
                if (rows == 0) want = fields;
                else if (fields != want)
                    return body_error(b, rows + 1, "row has %zu fields, the first had %zu", fields,
                                      want);
            }
            rows++;
            fields = 1;
            at_field = 1;
        }
        i++;
    }
    if (len > start && in[len - 1] != '\n') { /* last row without its line break */
        if (!variable && rows && fields != want)
            return body_error(b, rows + 1, "row has %zu fields, the first had %zu", fields, want);
        rows++;
    }
    if (rows > UINT32_MAX - 1) return body_error(b, rows, "too many rows");
    int rc = terminate(b, in, start, len, cap);
    if (rc) return rc;
    b->n_rows = (uint32_t)rows;
    if (f->header_rows && b->n_rows) {
        if ((rc = peel_header(b, f->header_rows))) return rc;
    }
    b->whole = multiline;
    return 0;
}

/* ---------------------------------------------------------------- Values */

/* (..), (..), ...: tuples with nested brackets and quoted strings. A `{name:Type}`
 * placeholder (a query parameter the server substitutes) means the rows are not data yet:
 * PROXY_FMT_UNBUFFERED. One tuple per line; line breaks between tokens become spaces, one
 * inside a string keeps the body whole. */
static int split_values(char *in, size_t len, proxy_body_t *b)
{
    /* Each row is a tuple of >= 2 input bytes plus at most one added '\n' ("()()" ->
     * "()\n()\n"): output <= len + len / 2 + 1 (found by fuzz_formats). */
    char *out = malloc(len + len / 2 + 2);
    if (!out) return -ENOMEM;
    b->owned = out;
    size_t i = 0, o = 0;
    uint64_t rows = 0;
    int multiline = 0;
    char stack[JSON_MAX_DEPTH];
    for (;;) {
        while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
            i++;
        if (i >= len) break;
        if (in[i] == ';') {
            i++;
            while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
                i++;
            if (i < len) return body_error(b, rows + 1, "data after ';' at byte %zu", i);
            break;
        }
        if (in[i] != '(') return body_error(b, rows + 1, "expected '(' at byte %zu", i);
        size_t depth = 0;
        do {
            char c = in[i];
            if (c == '\'' || c == '"' || c == '`') {
                size_t j = i + 1;
                for (;;) {
                    if (j >= len) return body_error(b, rows + 1, "unterminated quoted string");
                    if (in[j] == '\\') {
                        if (j + 1 < len && (in[j + 1] == '\n' || in[j + 1] == '\r'))
                            multiline = 1;
                        j += 2;
                        continue;
                    }
                    if (in[j] == c) {
                        if (j + 1 < len && in[j + 1] == c) {
                            j += 2;
                            continue;
                        }
                        break;
                    }
                    if (in[j] == '\n' || in[j] == '\r') multiline = 1;
                    j++;
                }
                memcpy(out + o, in + i, j + 1 - i);
                o += j + 1 - i;
                i = j + 1;
                continue;
            }
            if (c == '(' || c == '[' || c == '{') {
                if (c == '{') {
                    size_t j = i + 1;
                    while (j < len && (in[j] == ' ' || in[j] == '\t' || in[j] == '\n'))
                        j++;
                    if (j < len && ((in[j] >= 'a' && in[j] <= 'z') ||
                                    (in[j] >= 'A' && in[j] <= 'Z') || in[j] == '_')) {
                        free(b->owned);
                        b->owned = NULL;
                        return PROXY_FMT_UNBUFFERED;
                    }
                }
                if (depth == JSON_MAX_DEPTH) return body_error(b, rows + 1, "nesting too deep");
                stack[depth++] = c == '(' ? ')' : c == '[' ? ']' : '}';
            } else if (c == ')' || c == ']' || c == '}') {
                if (!depth || stack[depth - 1] != c)
                    return body_error(b, rows + 1, "unbalanced '%c' at byte %zu", c, i);
                depth--;
            }
            out[o++] = (c == '\n' || c == '\r') ? ' ' : c;
            i++;
        } while (depth && i < len);
        if (depth) return body_error(b, rows + 1, "unterminated row");
        out[o++] = '\n';
        if (++rows > UINT32_MAX - 1) return body_error(b, rows, "too many rows");
        while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\n' || in[i] == '\r'))
            i++;
        if (i < len && in[i] == ',') i++;
    }
    b->n_rows = (uint32_t)rows;
    if (multiline) {
        /* A line break inside a string: keep the body as it came, as one unit. */
        memcpy(out, in, len);
        o = len;
        if (!o || out[o - 1] != '\n') out[o++] = '\n';
        b->whole = 1;
    }
    b->data = out;
    b->len = o;
    return 0;
}

/* ---------------------------------------------------------------- entry */

int proxy_format_split(const proxy_format_t *f, const wal_kv_t *kv, size_t nkv, char *in,
                       size_t len, size_t cap, proxy_body_t *b)
{
    memset(b, 0, sizeof *b);
    switch (f->kind) {
    case PROXY_FMT_JSON_OBJ:
    case PROXY_FMT_JSON_ARR:
        return split_json(f, in, len, cap, b);
    case PROXY_FMT_JSON_OBJECT_EACH_ROW:
        return split_json_object(in, len, b);
    case PROXY_FMT_CSV:
    case PROXY_FMT_TSV:
    case PROXY_FMT_TSV_RAW:
        return split_separated(f, kv, nkv, in, len, cap, b);
    case PROXY_FMT_VALUES:
        return split_values(in, len, b);
    case PROXY_FMT_BINARY:
        /* No schema here: the body is one unit, delivered as it came. */
        b->data = in;
        b->len = len;
        b->n_rows = len ? 1 : 0;
        b->whole = 1;
        return 0;
    }
    return -EINVAL;
}

void proxy_body_free(proxy_body_t *b)
{
    free(b->owned);
    b->owned = NULL;
}
