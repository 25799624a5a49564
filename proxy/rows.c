/* rows.c — JSONEachRow validation: every row must be one syntactically valid JSON object
 * (common/json.c) before anything of the request is logged; normalisation to "one object per line, each
 * ending in '\n'" copies only when the input is not already in that shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "proxy/proxy_internal.h"

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int row_error(proxy_rows_t *out, uint64_t row, const char *what)
{
    out->bad_row = row;
    if (what != out->err) snprintf(out->err, sizeof out->err, "%s", what);
    free(out->owned);
    out->owned = NULL;
    out->data = NULL;
    out->len = 0;
    out->n_rows = 0;
    return -EINVAL;
}

static size_t skip_ws(const char *in, size_t len, size_t i)
{
    while (i < len && is_ws((unsigned char)in[i]))
        i++;
    return i;
}

static int parse_rows(char *in, size_t len, size_t cap, char open, proxy_rows_t *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0, canon_end = 0, olen = 0;
    char *buf = NULL;
    uint64_t rows = 0;
    int array = 0;
    if (len >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) i = canon_end = 3; /* UTF-8 BOM */
    i = skip_ws(in, len, i);
    if (open == '{' && i < len && in[i] == '[') {
        array = 1;
        i = skip_ws(in, len, i + 1);
        if (i < len && in[i] == ']') {
            i = skip_ws(in, len, i + 1);
            if (i < len) return row_error(out, 1, "data after the closing ']'");
            out->data = in;
            return 0;
        }
    }
    for (;;) {
        i = skip_ws(in, len, i);
        if (i >= len) {
            if (array) return row_error(out, rows + 1, "unterminated top-level array");
            break;
        }
        if (in[i] != open) {
            char what[96];
            snprintf(what, sizeof what, "expected '%c' at byte %zu (each row must be a JSON %s)",
                     open, i, open == '{' ? "object" : "array");
            return row_error(out, rows + 1, what);
        }
        size_t start = i;
        int has_nl = 0;
        if (json_skip_value(in, len, &i, &has_nl, out->err, sizeof out->err))
            return row_error(out, rows + 1, out->err);
        if (++rows > UINT32_MAX - 1) return row_error(out, rows, "too many rows");
        size_t end = i;
        if (!buf && start == canon_end && !has_nl && end < len && in[end] == '\n') {
            canon_end = end + 1; /* already "object\n": keep it in place */
            i = end + 1;
        } else if (!buf && start == canon_end && !has_nl && end == len && cap > len) {
            in[len] = '\n'; /* last row without a newline: the caller gave us room */
            canon_end = len + 1;
            i = len;
        } else {
            if (!buf) {
                /* Each row is an object of >= 2 input bytes plus at most one added '\n'
                 * ("{}{}" -> "{}\n{}\n"), so output <= len + len / 2 + 1. */
                buf = malloc(len + len / 2 + 2);
                if (!buf) return -ENOMEM;
                out->owned = buf;
                memcpy(buf, in, canon_end);
                olen = canon_end;
                if (canon_end >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
                    memmove(buf, buf + 3, olen - 3);
                    olen -= 3;
                }
            }
            for (size_t k = start; k < end; k++) {
                char ch = in[k];
                buf[olen++] = (has_nl && (ch == '\n' || ch == '\r')) ? ' ' : ch;
            }
            buf[olen++] = '\n';
        }
        /* Separator: whitespace and an optional ',' (required between array elements). */
        i = skip_ws(in, len, i);
        if (i < len && in[i] == ',') {
            i = skip_ws(in, len, i + 1);
            if (array && (i >= len || in[i] != '{'))
                return row_error(out, rows + 1, "expected an object after ','");
            continue;
        }
        if (array) {
            if (i < len && in[i] == ']') {
                i = skip_ws(in, len, i + 1);
                if (i < len) return row_error(out, rows + 1, "data after the closing ']'");
                break;
            }
            return row_error(out, rows + 1, "expected ',' or ']' between array elements");
        }
    }
    out->n_rows = (uint32_t)rows;
    if (buf) {
        out->data = buf;
        out->len = olen;
    } else {
        size_t s = (canon_end >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) ? 3 : 0;
        if (rows == 0) s = canon_end;
        out->data = in + s;
        out->len = canon_end - s;
    }
    return 0;
}

int proxy_rows_parse(char *in, size_t len, size_t cap, proxy_rows_t *out)
{
    return parse_rows(in, len, cap, '{', out);
}

int proxy_rows_parse_arrays(char *in, size_t len, size_t cap, proxy_rows_t *out)
{
    return parse_rows(in, len, cap, '[', out);
}

void proxy_rows_free(proxy_rows_t *r)
{
    free(r->owned);
    r->owned = NULL;
}
