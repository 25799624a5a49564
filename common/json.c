/* json.c — JSON, once. The strict scanner: RFC 8259, iterative with a fixed-size depth stack
 * (no recursion, no allocation); the proxy validates rows with it, the StarRocks conversion
 * walks array elements with it. The reader for replies (json_members, json_value_text,
 * json_get): tolerant, depth-limited, for what backends answer on the cold paths. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

int json_skip_value(const char *in, size_t len, size_t *pos, int *has_nl, char *err, size_t errlen)
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

/* ---- the reader for replies ---- */

size_t json_skip_ws(const char *s, size_t i, size_t n)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n'))
        i++;
    return i;
}

/* End (exclusive) of the JSON string starting at s[i] == '"', or 0. */
static size_t string_end(const char *s, size_t i, size_t n)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\')
            i++;
        else if (s[i] == '"')
            return i + 1;
    }
    return 0;
}

size_t json_value_end(const char *s, size_t i, size_t n)
{
    if (i >= n) return 0;
    if (s[i] == '"') return string_end(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        int depth = 0;
        for (; i < n; i++) {
            if (s[i] == '"') {
                size_t e = string_end(s, i, n);
                if (!e) return 0;
                i = e - 1;
            } else if (s[i] == '{' || s[i] == '[') {
                if (++depth > JSON_MAX_DEPTH) return 0;
            } else if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) return i + 1;
            }
        }
        return 0;
    }
    size_t b = i;
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\r' && s[i] != '\n')
        i++;
    return i > b ? i : 0;
}

/* The member at s[*i] (after '{' or ','), *i moved past it and its separator: 1 when a ','
 * followed (another member must come), 2 when the '}' closing the object did; 0 for the '}'
 * of an empty object (first only); -EINVAL on anything else. */
static int next_member(const char *s, size_t n, size_t *i, int first, json_member_t *m)
{
    size_t p = json_skip_ws(s, *i, n);
    if (first && p < n && s[p] == '}') {
        *i = p + 1;
        return 0;
    }
    if (p >= n || s[p] != '"') return -EINVAL;
    size_t ke = string_end(s, p, n);
    if (!ke) return -EINVAL;
    m->key = s + p + 1;
    m->key_len = ke - p - 2;
    p = json_skip_ws(s, ke, n);
    if (p >= n || s[p] != ':') return -EINVAL;
    p = json_skip_ws(s, p + 1, n);
    size_t ve = json_value_end(s, p, n);
    if (!ve) return -EINVAL;
    m->val = s + p;
    m->val_len = ve - p;
    p = json_skip_ws(s, ve, n);
    if (p < n && (s[p] == ',' || s[p] == '}')) {
        *i = p + 1;
        return s[p] == ',' ? 1 : 2;
    }
    return -EINVAL;
}

/* Past the '{' that opens s, or 0 when s does not start with one. */
static size_t object_start(const char *s, size_t n)
{
    size_t i = json_skip_ws(s, 0, n);
    return i < n && s[i] == '{' ? i + 1 : 0;
}

int json_members(const char *s, size_t n, json_member_t *m, size_t max)
{
    size_t i = object_start(s, n), k = 0;
    if (!i) return -EINVAL;
    for (int r = 1, first = 1; r == 1; first = 0) {
        json_member_t cur;
        r = next_member(s, n, &i, first, &cur);
        if (r < 0) return r;
        if (r == 0) break;
        if (k == max) return -E2BIG;
        m[k++] = cur;
    }
    return json_skip_ws(s, i, n) == n ? (int)k : -EINVAL;
}

int json_get(const char *json, size_t len, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key), i = object_start(json, len);
    if (outlen) out[0] = '\0';
    if (!i) return -1;
    for (int r = 1, first = 1; r == 1; first = 0) {
        json_member_t m;
        r = next_member(json, len, &i, first, &m);
        if (r < 0) return -1;
        if (r == 0) return 0;
        if (m.key_len != klen || memcmp(m.key, key, klen) != 0) continue;
        buf_t b = {0};
        int is_null = 0;
        if (m.val[0] == '"' ? json_value_text(m.val, m.val_len, &b, &is_null) < 0
                            : buf_append(&b, m.val, m.val_len) < 0) {
            buf_free(&b);
            return -1;
        }
        if (outlen) {
            size_t c = b.len < outlen - 1 ? b.len : outlen - 1;
            if (c) memcpy(out, b.data, c);
            out[c] = '\0';
        }
        buf_free(&b);
        return 1;
    }
    return 0;
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(buf_t *b, unsigned cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp, n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
    }
    buf_append(b, u, n);
}

int json_value_text(const char *v, size_t n, buf_t *out, int *is_null)
{
    *is_null = 0;
    if (n == 4 && memcmp(v, "null", 4) == 0) {
        *is_null = 1;
        return 0;
    }
    if (n == 0 || v[0] != '"') return buf_append(out, v, n) ? -ENOMEM : 0;
    if (n < 2 || v[n - 1] != '"') return -EINVAL;
    for (size_t i = 1; i < n - 1; i++) {
        char c = v[i];
        if (c != '\\') {
            size_t j = i;
            while (j < n - 1 && v[j] != '\\')
                j++;
            buf_append(out, v + i, j - i);
            i = j - 1;
            continue;
        }
        if (++i >= n - 1) return -EINVAL;
        switch (v[i]) {
        case 'n':
            buf_append(out, "\n", 1);
            break;
        case 't':
            buf_append(out, "\t", 1);
            break;
        case 'r':
            buf_append(out, "\r", 1);
            break;
        case 'b':
            buf_append(out, "\b", 1);
            break;
        case 'f':
            buf_append(out, "\f", 1);
            break;
        case 'u': {
            unsigned cp, lo;
            if (i + 4 >= n || hex4(v + i + 1, &cp)) return -EINVAL;
            i += 4;
            if (cp >= 0xd800 && cp < 0xdc00 && i + 6 < n && v[i + 1] == '\\' && v[i + 2] == 'u' &&
                hex4(v + i + 3, &lo) == 0 && lo >= 0xdc00 && lo < 0xe000) {
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                i += 6;
            }
            put_utf8(out, cp);
            break;
        }
        default:
            buf_append(out, v + i, 1);
            break; /* \" \\ \/ */
        }
    }
    return out->oom ? -ENOMEM : 0;
}
