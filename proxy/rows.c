/* rows.c — JSONEachRow validation: every row must be one syntactically valid JSON object
 * before anything of the request is logged. The validator is iterative with a fixed-size
 * depth stack (no recursion, no allocation); normalisation to "one object per line, each
 * ending in '\n'" copies only when the input is not already in that shape. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy/proxy_internal.h"

static int is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(unsigned char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int jerr(char *err, size_t errlen, const char *what, size_t at)
{
    if (err && errlen) snprintf(err, errlen, "%s at byte %zu", what, at);
    return -EINVAL;
}

/* Scan a string starting at in[i] == '"'; returns the index after the closing quote, or
 * 0 with *what set. */
static size_t scan_string(const char *in, size_t len, size_t i, const char **what)
{
    i++;
    while (i < len) {
        unsigned char c = (unsigned char)in[i];
        if (c == '"') return i + 1;
        if (c == '\\') {
            if (i + 1 >= len) break;
            unsigned char e = (unsigned char)in[i + 1];
            if (e == 'u') {
                if (i + 6 > len) break;
                for (size_t k = 2; k < 6; k++)
                    if (!is_hex((unsigned char)in[i + k])) {
                        *what = "bad \\u escape in string";
                        return 0;
                    }
                i += 6;
                continue;
            }
            if (!strchr("\"\\/bfnrt", e) || e == 0) {
                *what = "bad escape in string";
                return 0;
            }
            i += 2;
            continue;
        }
        if (c < 0x20) {
            *what = "control character in string";
            return 0;
        }
        i++;
    }
    *what = "unterminated string";
    return 0;
}

/* Scan a number per RFC 8259 at in[i]; index after it, or 0 with *what set. */
static size_t scan_number(const char *in, size_t len, size_t i, const char **what)
{
    if (i < len && in[i] == '-') i++;
    if (i >= len || !is_digit((unsigned char)in[i])) goto bad;
    if (in[i] == '0') {
        i++;
    } else {
        while (i < len && is_digit((unsigned char)in[i]))
            i++;
    }
    if (i < len && in[i] == '.') {
        i++;
        if (i >= len || !is_digit((unsigned char)in[i])) goto bad;
        while (i < len && is_digit((unsigned char)in[i]))
            i++;
    }
    if (i < len && (in[i] == 'e' || in[i] == 'E')) {
        i++;
        if (i < len && (in[i] == '+' || in[i] == '-')) i++;
        if (i >= len || !is_digit((unsigned char)in[i])) goto bad;
        while (i < len && is_digit((unsigned char)in[i]))
            i++;
    }
    return i;
bad:
    *what = "bad number";
    return 0;
}

enum { ST_VALUE, ST_ARR_FIRST, ST_OBJ_FIRST, ST_OBJ_KEY, ST_COLON, ST_AFTER };

int proxy_json_skip_value(const char *in, size_t len, size_t *pos, int *has_nl, char *err,
                          size_t errlen)
{
    unsigned char stack[PROXY_JSON_MAX_DEPTH]; /* '{' or '[' per open container */
    size_t depth = 0, i = *pos;
    int st = ST_VALUE;
    const char *what = NULL;
    *has_nl = 0;
    for (;;) {
        while (i < len && is_ws((unsigned char)in[i])) {
            if (in[i] == '\n' || in[i] == '\r') *has_nl = 1;
            i++;
        }
        if (i >= len) return jerr(err, errlen, "unexpected end of input", i);
        unsigned char c = (unsigned char)in[i];
        size_t next;
        switch (st) {
        case ST_ARR_FIRST:
            if (c == ']') {
                i++;
                depth--;
                goto after_value;
            }
            /* fall through */
        case ST_VALUE:
            if (c == '{' || c == '[') {
                if (depth == PROXY_JSON_MAX_DEPTH) return jerr(err, errlen, "nesting too deep", i);
                stack[depth++] = c;
                i++;
                st = c == '{' ? ST_OBJ_FIRST : ST_ARR_FIRST;
                continue;
            }
            if (c == '"') {
                next = scan_string(in, len, i, &what);
            } else if (c == '-' || is_digit(c)) {
                next = scan_number(in, len, i, &what);
            } else if (c == 't' && len - i >= 4 && memcmp(in + i, "true", 4) == 0) {
                next = i + 4;
            } else if (c == 'f' && len - i >= 5 && memcmp(in + i, "false", 5) == 0) {
                next = i + 5;
            } else if (c == 'n' && len - i >= 4 && memcmp(in + i, "null", 4) == 0) {
                next = i + 4;
            } else {
                return jerr(err, errlen, "expected a JSON value", i);
            }
            if (!next) return jerr(err, errlen, what, i);
            i = next;
            goto after_value;
        case ST_OBJ_FIRST:
            if (c == '}') {
                i++;
                depth--;
                goto after_value;
            }
            /* fall through */
        case ST_OBJ_KEY:
            if (c != '"') return jerr(err, errlen, "expected a string key", i);
            next = scan_string(in, len, i, &what);
            if (!next) return jerr(err, errlen, what, i);
            i = next;
            st = ST_COLON;
            continue;
        case ST_COLON:
            if (c != ':') return jerr(err, errlen, "expected ':'", i);
            i++;
            st = ST_VALUE;
            continue;
        case ST_AFTER: {
            unsigned char top = stack[depth - 1];
            if (c == ',') {
                i++;
                st = top == '{' ? ST_OBJ_KEY : ST_VALUE;
                continue;
            }
            if ((top == '{' && c == '}') || (top == '[' && c == ']')) {
                i++;
                depth--;
                goto after_value;
            }
            return jerr(err, errlen, top == '{' ? "expected ',' or '}'" : "expected ',' or ']'", i);
        }
        }
    after_value:
        if (depth == 0) {
            *pos = i;
            return 0;
        }
        st = ST_AFTER;
    }
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

int proxy_rows_parse(char *in, size_t len, size_t cap, proxy_rows_t *out)
{
    memset(out, 0, sizeof *out);
    size_t i = 0, canon_end = 0, olen = 0;
    char *buf = NULL;
    uint64_t rows = 0;
    int array = 0;
    if (len >= 3 && memcmp(in, "\xEF\xBB\xBF", 3) == 0) i = canon_end = 3; /* UTF-8 BOM */
    i = skip_ws(in, len, i);
    if (i < len && in[i] == '[') {
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
        if (in[i] != '{') {
            char what[96];
            snprintf(what, sizeof what, "expected '{' at byte %zu (each row must be a JSON object)",
                     i);
            return row_error(out, rows + 1, what);
        }
        size_t start = i;
        int has_nl = 0;
        if (proxy_json_skip_value(in, len, &i, &has_nl, out->err, sizeof out->err))
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

void proxy_rows_free(proxy_rows_t *r)
{
    free(r->owned);
    r->owned = NULL;
}
