/* http.c — shared libcurl helpers for the sink backends: capture of the reply, the progress
 * callback that aborts a transfer when the sink is told to stop, URL encoding, gzip. */
#include "sinks/http.h"
#include "common/buf.h"
#include "common/url.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void sink_http_global_init(void)
{
    pthread_once(&g_curl_once, curl_init_once);
}

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    sink_http_resp_t *r = ud;
    size_t n = sz * nm;
    size_t keep = n;
    if (r->len + keep > SINK_HTTP_BODY_KEEP) keep = SINK_HTTP_BODY_KEEP - r->len;
    if (keep && sink_buf_put(&r->body, &r->len, &r->cap, p, keep) < 0) return 0;
    return n;
}

static size_t on_header(char *p, size_t sz, size_t nm, void *ud)
{
    sink_http_resp_t *r = ud;
    size_t n = sz * nm;
    static const char h[] = "X-ClickHouse-Exception-Code:";
    if (n > sizeof h - 1 && strncasecmp(p, h, sizeof h - 1) == 0) {
        size_t i = sizeof h - 1, j = 0;
        while (i < n && (p[i] == ' ' || p[i] == '\t'))
            i++;
        while (i < n && p[i] >= '0' && p[i] <= '9' && j + 1 < sizeof r->exc_code)
            r->exc_code[j++] = p[i++];
        r->exc_code[j] = '\0';
    }
    return n;
}

static int on_progress(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    sink_http_resp_t *r = ud;
    return r->abort && atomic_load(r->abort) ? 1 : 0; /* non-zero aborts the transfer */
}

void sink_http_setup(CURL *h, sink_http_resp_t *r, char *errbuf)
{
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, r);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
}

void sink_http_resp_reset(sink_http_resp_t *r)
{
    r->len = 0;
    if (r->body) r->body[0] = '\0';
    r->exc_code[0] = '\0';
}

void sink_http_resp_free(sink_http_resp_t *r)
{
    free(r->body);
    r->body = NULL;
    r->len = r->cap = 0;
}

/* The sinks keep their buffers as (data, len, cap) triples; they grow as common/buf's do. */
int sink_buf_put(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    buf_t b = {.data = *buf, .len = *len, .cap = *cap};
    int rc = buf_append(&b, s, n);
    *buf = b.data;
    *len = b.len;
    *cap = b.cap;
    return rc < 0 ? -ENOMEM : 0;
}

int sink_buf_urlenc(char **buf, size_t *len, size_t *cap, const char *s)
{
    buf_t b = {.data = *buf, .len = *len, .cap = *cap};
    int rc = url_pct_encode(&b, s, strlen(s));
    *buf = b.data;
    *len = b.len;
    *cap = b.cap;
    return rc < 0 ? -ENOMEM : 0;
}

int sink_gzip(const char *src, size_t len, unsigned char **out, size_t *cap, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (deflateInit2(&z, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return -ENOMEM;
    size_t need = deflateBound(&z, (uLong)len) + 64;
    if (need > *cap) {
        unsigned char *b = realloc(*out, need);
        if (!b) {
            deflateEnd(&z);
            return -ENOMEM;
        }
        *out = b;
        *cap = need;
    }
    z.next_in = (Bytef *)(uintptr_t)src;
    z.avail_in = (uInt)len;
    z.next_out = *out;
    z.avail_out = (uInt)*cap;
    int rc = deflate(&z, Z_FINISH);
    *out_len = z.total_out;
    deflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -EIO;
}

size_t sink_endpoint_count(const cfg_sink_t *cfg)
{
    return cfg->n_urls ? cfg->n_urls : 1;
}

const char *sink_endpoint_url(const cfg_sink_t *cfg, size_t i)
{
    return cfg->n_urls ? cfg->urls[i < cfg->n_urls ? i : 0] : cfg->url;
}

int sink_http_failover_error(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}
