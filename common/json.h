/* json.h — JSON syntax scanning shared by the proxy (row validation) and the sinks (format
 * conversion): one scanner, bounded and allocation-free. */
#ifndef SLUICE_JSON_H
#define SLUICE_JSON_H

#include <stddef.h>

#include "common/buf.h"

#define JSON_MAX_DEPTH 128

/* Validate one JSON value at in[*pos..len) (strict RFC 8259 syntax, depth-bounded) and
 * advance *pos past it. *has_nl is set when whitespace inside it held CR or LF. 0 or
 * -EINVAL with err filled. */
int json_skip_value(const char *in, size_t len, size_t *pos, int *has_nl, char *err, size_t errlen);

/* in[i] == '"': index after the closing quote of a valid string, 0 when invalid. */
size_t json_scan_string(const char *in, size_t len, size_t i);

/* ---- the reader for replies (cold paths: StarRocks and ClickHouse answers, migrate's
 * rows, summaries). Tolerant by design: it takes what a backend prints (values are spans,
 * scanned by brackets with a depth limit, not validated), and a member found before a cut
 * tail is still found. */

/* Past the whitespace at s[i]; the end (exclusive) of the value starting at s[i] (strings to
 * their closing quote, objects and arrays by brackets up to JSON_MAX_DEPTH, scalars to the
 * next separator), or 0 when there is none. */
size_t json_skip_ws(const char *s, size_t i, size_t n);
size_t json_value_end(const char *s, size_t i, size_t n);

/* One member of an object: the key's raw text (between its quotes, still escaped) and the
 * value's raw JSON text (strings with their quotes, nested values whole). */
typedef struct {
    const char *key;
    size_t key_len;
    const char *val;
    size_t val_len;
} json_member_t;

/* The members of the one object that is s[0..n) (nothing but whitespace after it). The
 * count, -EINVAL when s is not one object, -E2BIG past max. */
int json_members(const char *s, size_t n, json_member_t *m, size_t max);

/* A raw value as text, appended to out: strings unescaped to UTF-8 (\uXXXX and surrogate
 * pairs included), null sets *is_null, anything else verbatim. 0, -EINVAL, -ENOMEM. */
int json_value_text(const char *v, size_t n, buf_t *out, int *is_null);

/* The top-level member key of the object in json[0..len) as text (json_value_text),
 * truncated to outlen: 1 found, 0 absent, -1 when json is not an object up to that key. */
int json_get(const char *json, size_t len, const char *key, char *out, size_t outlen);

#endif
