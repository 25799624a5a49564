/* http.h — the libcurl plumbing the two backends share: response capture (body, status, a
 * few headers), an abort-aware progress callback, URL encoding, gzip. Sinks-internal. */
#ifndef SLUICE_SINK_HTTP_H
#define SLUICE_SINK_HTTP_H

#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>

#include "config/config.h"

#define SINK_HTTP_BODY_KEEP (256 * 1024) /* reply bytes kept for classification */

typedef struct {
    char *body;
    size_t len, cap;
    char exc_code[32]; /* X-ClickHouse-Exception-Code */
    atomic_int *abort;
} sink_http_resp_t;

/* Set the callbacks of h to fill r (reset by sink_http_resp_reset before each request). */
void sink_http_setup(CURL *h, sink_http_resp_t *r, char *errbuf);
void sink_http_resp_reset(sink_http_resp_t *r);
void sink_http_resp_free(sink_http_resp_t *r);

/* Append s percent-encoded (RFC 3986 unreserved kept) to a growing buffer. 0 or -ENOMEM. */
int sink_buf_urlenc(char **buf, size_t *len, size_t *cap, const char *s);
int sink_buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n);

/* gzip src into *out (grown as needed). 0 or negative. */
int sink_gzip(const char *src, size_t len, unsigned char **out, size_t *cap, size_t *out_len);

/* Endpoints of a sink: its `url` list (cfg->urls), or cfg->url alone when no list was made
 * (a config built in code). */
size_t sink_endpoint_count(const cfg_sink_t *cfg);
const char *sink_endpoint_url(const cfg_sink_t *cfg, size_t i);

/* Did the transfer fail before an answer in a way another endpoint may not share (connect
 * refused, unresolvable host, timeout, connection reset)? Those fail over. */
int sink_http_failover_error(CURLcode cc);

/* curl_global_init once per process (thread-safe since libcurl 7.84). */
void sink_http_global_init(void);

#endif
