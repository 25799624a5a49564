/* url.h — URLs, once: split scheme://[userinfo@]host[:port][path], percent-decode and
 * -encode by one rule, and print a URL with its password masked. Used by config (sink URLs,
 * SLUICE_CLICKHOUSE_URL), proxy (query strings), sinks (request URLs) and migrate.
 * Not on libcurl's URL API on purpose: config/ stays free of libcurl (the loader is fuzzed
 * and linked by every module), the loader refuses with its own reasons what curl_url would
 * normalise (spaces, a query string, odd host characters), and curl_easy_unescape passes a
 * malformed or NUL escape through where we must refuse it. */
#ifndef SLUICE_URL_H
#define SLUICE_URL_H

#include <stddef.h>

#include "common/buf.h"

/* The parts of a URL; each points into the string split (lengths given). */
typedef struct {
    const char *scheme; /* "http", without "://" */
    size_t scheme_len;
    const char *user; /* userinfo ("user" or "user:password", still encoded) or NULL */
    size_t user_len;
    const char *host; /* host[:port] ([v6]:port keeps its brackets) */
    size_t host_len;  /* including :port */
    const char *port; /* digits, or NULL when absent */
    size_t port_len;
    const char *path; /* "/..." up to the end, or "" */
} url_t;

/* Split s (any scheme://) and check what every URL here must be: a host of
 * [A-Za-z0-9._-] or [IPv6], a port 1-65535 when given, no query string or fragment, no
 * spaces or control characters in the path. 0, or -EINVAL with *why saying what is wrong. */
int url_split(const char *s, url_t *u, const char **why);

#define URL_PLUS_IS_SPACE 1u /* query strings (application/x-www-form-urlencoded) */
#define URL_REFUSE_NUL                                                                             \
    2u /* %00 is an error: the result is used as a C string (names,                                \
        * passwords); query values are kept with their length */

/* Percent-decode s[0..n) into dst (room for n + 1 bytes, NUL-terminated). A '%' without two
 * hex digits after it is refused: -1 (so is %00 with URL_REFUSE_NUL). Else the length. */
long url_pct_decode(const char *s, size_t n, unsigned flags, char *dst);

/* Append s[0..n) percent-encoded: everything but RFC 3986's unreserved characters
 * (A-Z a-z 0-9 - _ . ~) as %XX. 0, or -1 when b ran out of memory. */
int url_pct_encode(buf_t *b, const char *s, size_t n);

/* url with the password of its userinfo (scheme://user:PASSWORD@host) printed as ***, the
 * one place secrets in URLs are masked for messages; truncated to outlen. */
void url_redact(const char *url, char *out, size_t outlen);

#endif
