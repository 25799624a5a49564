/* http.c — the HTTP client backfill and verify read with: one POST whose 200 reply is cut
 * into lines and handed to a callback as libcurl delivers it (so a slice or a table never
 * sits in memory), plus a small whole-reply variant and URL base handling. */
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/migrate_internal.h"

#define HTTP_ERR_KEEP 4096 /* bytes of a non-200 reply kept for the message */

typedef struct {
    CURL *h;
    migrate_line_cb cb;
    void *ctx;
    buf_t line; /* the partial line carried between writes */
    buf_t errbody;
    long status;
    int rc; /* first error from cb or the line limit */
} stream_t;

static size_t on_write(char *p, size_t sz, size_t nm, void *ud)
{
    stream_t *st = ud;
    size_t n = sz * nm;
    if (!st->status) curl_easy_getinfo(st->h, CURLINFO_RESPONSE_CODE, &st->status);
    if (st->status != 200) {
        size_t keep = st->errbody.len < HTTP_ERR_KEEP ? HTTP_ERR_KEEP - st->errbody.len : 0;
        buf_append(&st->errbody, p, n < keep ? n : keep);
        return n;
    }
    size_t i = 0;
    while (i < n) {
        char *nl = memchr(p + i, '\n', n - i);
        size_t take = nl ? (size_t)(nl - (p + i)) : n - i;
        if (st->line.len + take > MIGRATE_MAX_LINE) {
            st->rc = -E2BIG;
            return 0;
        }
        if (!nl) {
            if (buf_append(&st->line, p + i, take)) goto oom;
            break;
        }
        int rc;
        if (st->line.len) {
            if (buf_append(&st->line, p + i, take)) goto oom;
            rc = st->cb(st->ctx, st->line.data, st->line.len);
            st->line.len = 0;
        } else {
            rc = st->cb(st->ctx, p + i, take);
        }
        if (rc < 0) {
            st->rc = rc;
            return 0; /* aborts the transfer */
        }
        i += take + 1;
    }
    return n;
oom:
    st->rc = -ENOMEM;
    return 0;
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void set_err(char *err, size_t errlen, const char *what, const char *detail, size_t dlen)
{
    size_t n = dlen;
    while (n && (detail[n - 1] == '\n' || detail[n - 1] == '\r' || detail[n - 1] == ' '))
        n--;
    snprintf(err, errlen, "%s%s%.*s", what, n ? ": " : "", (int)(n > 600 ? 600 : n), detail);
    for (char *p = err; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int migrate_http_lines(const char *url, const char *body, migrate_line_cb cb, void *ctx, char *err,
                       size_t errlen)
{
    pthread_once(&curl_once, curl_init_once);
    stream_t st = {.cb = cb, .ctx = ctx};
    char cerr[CURL_ERROR_SIZE] = "";
    int rc = 0;
    if (!(st.h = curl_easy_init())) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -ENOMEM;
    }
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: text/plain; charset=utf-8");
    curl_easy_setopt(st.h, CURLOPT_URL, url);
    curl_easy_setopt(st.h, CURLOPT_POST, 1L);
    curl_easy_setopt(st.h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(st.h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(body));
    curl_easy_setopt(st.h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(st.h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(st.h, CURLOPT_WRITEDATA, &st);
    curl_easy_setopt(st.h, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(st.h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(st.h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    /* No overall timeout: a slice may take long, and delivering a batch from inside the
     * write callback holds the transfer. A dead peer is caught by the low-speed limit. */
    curl_easy_setopt(st.h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(st.h, CURLOPT_LOW_SPEED_TIME, 600L);
    curl_easy_setopt(st.h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    CURLcode cc = curl_easy_perform(st.h);
    if (!st.status) curl_easy_getinfo(st.h, CURLINFO_RESPONSE_CODE, &st.status);
    if (st.rc < 0) {
        rc = st.rc;
        if (rc == -E2BIG)
            snprintf(err, errlen, "a reply line is longer than %u bytes", MIGRATE_MAX_LINE);
        else if (rc == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        /* else: the callback wrote err itself */
    } else if (cc != CURLE_OK) {
        rc = -EIO;
        set_err(err, errlen, "request failed", cerr[0] ? cerr : curl_easy_strerror(cc),
                strlen(cerr[0] ? cerr : curl_easy_strerror(cc)));
    } else if (st.status != 200) {
        char what[48];
        snprintf(what, sizeof what, "HTTP %ld", st.status);
        set_err(err, errlen, what, st.errbody.data ? st.errbody.data : "", st.errbody.len);
        /* 4xx (authentication, unknown table, bad SQL) does not get better by retrying;
         * 408/429 and 5xx may. */
        rc = st.status >= 400 && st.status < 500 && st.status != 408 && st.status != 429 ? -EACCES
                                                                                         : -EIO;
    } else if (st.line.len) { /* a last line without '\n' */
        rc = cb(ctx, st.line.data, st.line.len);
    }
    curl_slist_free_all(hdr);
    curl_easy_cleanup(st.h);
    buf_free(&st.line);
    buf_free(&st.errbody);
    return rc;
}

static int append_line(void *ctx, const char *line, size_t len)
{
    buf_t *b = ctx;
    if (buf_append(b, line, len) || buf_append(b, "\n", 1)) return -ENOMEM;
    return 0;
}

int migrate_http_text(const char *url, const char *body, buf_t *out, char *err, size_t errlen)
{
    return migrate_http_lines(url, body, append_line, out, err, errlen);
}

