/* starrocks.c — the StarRocks backend: Stream Load (`PUT {fe}/api/{db}/{table}/_stream_load`)
 * with the batch's label, explicit `Expect: 100-continue`, Basic auth, JSON lines; the FE's
 * 307 is followed by hand (same method, headers, auth and in-memory body to the BE), and the
 * JSON reply is classified per PROTOCOLS.md §B (sink_sr_classify in util.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/http.h"
#include "sinks/sink_internal.h"

#define SR_MAX_REDIRECTS 4

typedef struct {
    const cfg_sink_t *cfg;
    CURL *h;
    sink_http_resp_t resp;
    char errbuf[CURL_ERROR_SIZE];
    char *url;
    size_t url_len, url_cap;
    char timeout_s[24];
} sr_t;

static int sr_open(const cfg_sink_t *cfg, atomic_int *abort, void **state, char *err, size_t errlen)
{
    sink_http_global_init();
    sr_t *c = calloc(1, sizeof *c);
    if (!c || !(c->h = curl_easy_init())) {
        free(c);
        snprintf(err, errlen, "sink %s: cannot initialise libcurl", cfg->name);
        return -ENOMEM;
    }
    c->cfg = cfg;
    c->resp.abort = abort;
    sink_http_setup(c->h, &c->resp, c->errbuf);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)cfg->request_timeout_ms);
    /* Basic auth on every request we make, including the one to the BE: we follow the
     * redirect ourselves, so libcurl never gets a chance to drop the credentials. */
    curl_easy_setopt(c->h, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
    curl_easy_setopt(c->h, CURLOPT_USERNAME, cfg->user ? cfg->user : "root");
    curl_easy_setopt(c->h, CURLOPT_PASSWORD, cfg->password ? cfg->password : "");
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, "PUT");
    uint32_t t = (cfg->request_timeout_ms + 999) / 1000;
    snprintf(c->timeout_s, sizeof c->timeout_s, "%u", t ? t : 1);
    *state = c;
    return 0;
}

static void sr_close(void *state)
{
    sr_t *c = state;
    curl_easy_cleanup(c->h);
    sink_http_resp_free(&c->resp);
    free(c->url);
    free(c);
}

static int sr_prepare(void *state, sink_result_t *res)
{
    (void)state, (void)res;
    return 0;
}

static struct curl_slist *add_hdr(struct curl_slist *l, int *ok, const char *k, const char *v)
{
    char line[2048];
    snprintf(line, sizeof line, "%s: %s", k, v);
    struct curl_slist *n = curl_slist_append(l, line);
    if (!n) *ok = 0;
    return n ? n : l;
}

/* A db or table name as one URL path segment: percent-encoded, '.' included, so that a name
 * "." or ".." is never a dot-segment that libcurl removes (RFC 3986 §5.2.4), which would send
 * the load to another URL (/api/db/../_stream_load). StarRocks decodes it back to the name. */
static int put_segment(sr_t *c, const char *name)
{
    for (const char *p = name; *p; p++) {
        char one[2] = {*p, '\0'};
        int rc = *p == '.' ? sink_buf_put(&c->url, &c->url_len, &c->url_cap, "%2E", 3)
                           : sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, one);
        if (rc < 0) return rc;
    }
    return 0;
}

static void sr_send(void *state, const sink_batch_t *b, sink_result_t *res)
{
    sr_t *c = state;
    int ok = 1;
    struct curl_slist *h = NULL;
    char ratio[32];
    memset(res, 0, sizeof *res);
    snprintf(ratio, sizeof ratio, "%g", c->cfg->max_filter_ratio);
    h = add_hdr(h, &ok, "Expect", "100-continue"); /* mandatory: see PROTOCOLS.md §B */
    h = add_hdr(h, &ok, "label", b->key);
    h = add_hdr(h, &ok, "format", "json");
    h = add_hdr(h, &ok, "strip_outer_array", "false");
    h = add_hdr(h, &ok, "timeout", c->timeout_s);
    h = add_hdr(h, &ok, "max_filter_ratio", ratio);
    h = add_hdr(h, &ok, "Content-Type", "application/json");
    for (size_t i = 0; i < c->cfg->n_settings; i++)
        h = add_hdr(h, &ok, c->cfg->settings[i].key, c->cfg->settings[i].value);

    c->url_len = 0;
    const char *u = c->cfg->url;
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    if (!ok || sink_buf_put(&c->url, &c->url_len, &c->url_cap, u, n) < 0 ||
        sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/api/", 5) < 0 ||
        put_segment(c, b->db) < 0 || sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/", 1) < 0 ||
        put_segment(c, b->table) < 0 ||
        sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/_stream_load", 13) < 0) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        curl_slist_free_all(h);
        return;
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body_len);

    char *target = strdup(c->url);
    int st = 0, failed = 0;
    for (int hop = 0; target && hop <= SR_MAX_REDIRECTS; hop++) {
        curl_easy_setopt(c->h, CURLOPT_URL, target);
        sink_http_resp_reset(&c->resp);
        c->errbuf[0] = '\0';
        CURLcode cc = curl_easy_perform(c->h);
        long sl = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &sl);
        st = (int)sl;
        failed = cc != CURLE_OK;
        if (failed && !c->errbuf[0])
            snprintf(c->errbuf, sizeof c->errbuf, "%s", curl_easy_strerror(cc));
        if (failed || (st != 307 && st != 302 && st != 301 && st != 308)) break;
        char *loc = NULL;
        curl_easy_getinfo(c->h, CURLINFO_REDIRECT_URL, &loc);
        free(target);
        target = loc ? strdup(loc) : NULL;
        if (!target) {
            failed = 1;
            snprintf(c->errbuf, sizeof c->errbuf, "redirect %d without Location", st);
        } else if (hop == SR_MAX_REDIRECTS) {
            failed = 1;
            snprintf(c->errbuf, sizeof c->errbuf, "too many redirects");
        }
    }
    free(target);
    sink_sr_classify(st, c->resp.body, c->resp.len, failed, c->errbuf, res);
    /* The header list is ours to free once no transfer uses it. */
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(h);
}

const sink_backend_t sink_starrocks_backend = {
    .type = "starrocks",
    .open = sr_open,
    .prepare = sr_prepare,
    .send = sr_send,
    .close = sr_close,
};
