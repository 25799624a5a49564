/* json.c — the one JSON syntax scanner: strict RFC 8259, iterative with a fixed-size depth
 * stack (no recursion, no allocation). The proxy validates rows with it, the StarRocks
 * conversion walks array elements with it. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"

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

int json_skip_value(const char *in, size_t len, size_t *pos, int *has_nl, char *err,
                          size_t errlen)
{
    unsigned char stack[JSON_MAX_DEPTH]; /* '{' or '[' per open container */
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
                if (depth == JSON_MAX_DEPTH) return jerr(err, errlen, "nesting too deep", i);
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

size_t json_scan_string(const char *in, size_t len, size_t i)
{
    const char *what = NULL;
    return scan_string(in, len, i, &what);
}
