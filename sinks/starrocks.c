/* starrocks.c — the StarRocks backend: Stream Load (`PUT {fe}/api/{db}/{table}/_stream_load`)
 * with the batch's label, explicit `Expect: 100-continue`, Basic auth, JSON lines; the FE's
 * 307 is followed by hand (same method, headers, auth and in-memory body to the BE), and the
 * JSON reply is classified per PROTOCOLS.md §B (sink_sr_classify in util.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sinks/convert.h"
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
    size_t ep; /* endpoint tried first: the last one that answered */
    buf_t conv; /* body converted from the record's format (sr_convert.c), reused */
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
    buf_free(&c->conv);
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

/* Follow the FE's 307 to the BE by hand (resending auth and body), up to SR_MAX_REDIRECTS.
 * *at_fe: the failure, if any, happened before the first server (the endpoint) answered. */
static void perform_hops(sr_t *c, const char *url, int *status, int *failed, CURLcode *cc,
                         int *at_fe)
{
    char *target = strdup(url);
    *status = 0;
    *failed = 0;
    *cc = CURLE_OK;
    *at_fe = 1;
    if (!target) {
        *failed = 1;
        snprintf(c->errbuf, sizeof c->errbuf, "out of memory");
        return;
    }
    for (int hop = 0; target && hop <= SR_MAX_REDIRECTS; hop++) {
        curl_easy_setopt(c->h, CURLOPT_URL, target);
        sink_http_resp_reset(&c->resp);
        c->errbuf[0] = '\0';
        *at_fe = hop == 0;
        *cc = curl_easy_perform(c->h);
        long sl = 0;
        curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &sl);
        *status = (int)sl;
        *failed = *cc != CURLE_OK;
        if (*failed && !c->errbuf[0])
            snprintf(c->errbuf, sizeof c->errbuf, "%s", curl_easy_strerror(*cc));
        if (*failed || (sl != 307 && sl != 302 && sl != 301 && sl != 308)) break;
        char *loc = NULL;
        curl_easy_getinfo(c->h, CURLINFO_REDIRECT_URL, &loc);
        free(target);
        target = loc ? strdup(loc) : NULL;
        if (!target) {
            *failed = 1;
            snprintf(c->errbuf, sizeof c->errbuf, "redirect %d without Location", (int)sl);
        } else if (hop == SR_MAX_REDIRECTS) {
            *failed = 1;
            snprintf(c->errbuf, sizeof c->errbuf, "too many redirects");
        }
    }
    free(target);
}

/* {base}/api/{db}/{table}/_stream_load, or {base}/api/{db}/get_load_state?label=key. */
static int build_url(sr_t *c, const char *base, const sink_batch_t *b, int state_query)
{
    c->url_len = 0;
    size_t n = strlen(base);
    while (n && base[n - 1] == '/')
        n--;
    if (sink_buf_put(&c->url, &c->url_len, &c->url_cap, base, n) < 0 ||
        sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/api/", 5) < 0 ||
        put_segment(c, b->db) < 0)
        return -ENOMEM;
    if (state_query)
        return sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/get_load_state?label=", 22) < 0 ||
                       sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, b->key) < 0
                   ? -ENOMEM
                   : 0;
    return sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/", 1) < 0 ||
                   put_segment(c, b->table) < 0 ||
                   sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/_stream_load", 13) < 0
               ? -ENOMEM
               : 0;
}

static int has_setting(const cfg_sink_t *cfg, const char *key)
{
    for (size_t i = 0; i < cfg->n_settings; i++)
        if (strcasecmp(cfg->settings[i].key, key) == 0) return 1;
    return 0;
}

/* One Stream Load of b through endpoint base. *failover: it failed to reach the FE at all
 * (connect error, timeout), so another endpoint may do better. */
static void load_once(sr_t *c, const char *base, const sink_batch_t *b, struct curl_slist *h,
                      sink_result_t *res, int *failover)
{
    int st, failed, at_fe;
    CURLcode cc;
    *failover = 0;
    if (build_url(c, base, b, 0) < 0) {
        memset(res, 0, sizeof *res);
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        return;
    }
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)b->body_len);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, "PUT");
    perform_hops(c, c->url, &st, &failed, &cc, &at_fe);
    sink_sr_classify(st, c->resp.body, c->resp.len, failed, c->errbuf, res);
    *failover = failed && at_fe && sink_http_failover_error(cc);
}

/* GET get_load_state for b's label at base (fe/.../http/rest/GetStreamLoadState.java; it
 * may 307 to the leader FE). 0 with the TransactionStatus name in state, or -1. */
static int query_state(sr_t *c, const char *base, const sink_batch_t *b, char *state,
                       size_t statelen)
{
    int st, failed, at_fe;
    CURLcode cc;
    if (build_url(c, base, b, 1) < 0) return -1;
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c->h, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    perform_hops(c, c->url, &st, &failed, &cc, &at_fe);
    if (failed || st != 200) return -1;
    return sink_sr_load_state(c->resp.body, c->resp.len, state, statelen);
}

/* The label of b exists already (res->label_used). Decide from its state at the FE, never
 * by a new label: committed → delivered; in progress → the same label later; aborted or
 * unknown (expired) → resend it. Returns 1 to resend, 0 when res holds the answer. */
static int resolve_label(sr_t *c, const char *base, const sink_batch_t *b, sink_result_t *res)
{
    char state[32];
    if (query_state(c, base, b, state, sizeof state) < 0) {
        char m[sizeof res->msg];
        snprintf(m, sizeof m, "%.400s; get_load_state failed: %.60s", res->msg,
                 c->errbuf[0] ? c->errbuf : "no state in the reply");
        memcpy(res->msg, m, sizeof m);
        return 0; /* the classification's own answer: FINISHED done, else same label later */
    }
    if (strcmp(state, "VISIBLE") == 0 || strcmp(state, "COMMITTED") == 0) {
        res->kind = SINK_RES_OK;
        snprintf(res->msg, sizeof res->msg, "label already loaded (state %s)", state);
        return 0;
    }
    if (strcmp(state, "ABORTED") == 0 || strcmp(state, "UNKNOWN") == 0) return 1;
    res->kind = SINK_RES_RETRY; /* PREPARE, PREPARED, PRECOMMITTED: still in flight */
    res->min_delay_ms = 1000;
    snprintf(res->msg, sizeof res->msg, "label in progress (state %s), retrying it later", state);
    return 0;
}

static void sr_send(void *state, const sink_batch_t *b, sink_result_t *res)
{
    sr_t *c = state;
    int ok = 1;
    struct curl_slist *h = NULL;
    char ratio[32];
    memset(res, 0, sizeof *res);
    sink_sr_load_t ld;
    int cv = sink_sr_convert(b, &c->conv, &ld, &res->whole, res->msg, sizeof res->msg);
    if (cv) { /* a row StarRocks cannot be given: bisect to it, DLQ it with the reason */
        res->kind = cv == -ENOMEM ? SINK_RES_RETRY : SINK_RES_PERMANENT;
        if (cv == -ENOMEM) snprintf(res->msg, sizeof res->msg, "out of memory");
        return;
    }
    sink_batch_t converted = *b; /* same rows, label and names; the body StarRocks reads */
    converted.body = ld.body;
    converted.body_len = ld.len;
    b = &converted;
    snprintf(ratio, sizeof ratio, "%g", c->cfg->max_filter_ratio);
    h = add_hdr(h, &ok, "Expect", "100-continue"); /* mandatory: see PROTOCOLS.md §B */
    h = add_hdr(h, &ok, "label", b->key);
    h = add_hdr(h, &ok, "format", ld.format);
    if (strcmp(ld.format, "json") == 0) h = add_hdr(h, &ok, "strip_outer_array", "false");
    if (ld.columns[0]) h = add_hdr(h, &ok, "columns", ld.columns);
    if (ld.separator[0]) h = add_hdr(h, &ok, "column_separator", ld.separator);
    if (ld.enclose[0]) h = add_hdr(h, &ok, "enclose", ld.enclose);
    h = add_hdr(h, &ok, "timeout", c->timeout_s);
    if (!has_setting(c->cfg, "max_filter_ratio")) h = add_hdr(h, &ok, "max_filter_ratio", ratio);
    /* Strict by default: without it a value that does not convert is stored as NULL and the
     * load says Success (PROTOCOLS.md §B); with it the row is filtered and so dead-lettered. */
    if (!has_setting(c->cfg, "strict_mode")) h = add_hdr(h, &ok, "strict_mode", "true");
    h = add_hdr(h, &ok, "Content-Type",
                strcmp(ld.format, "json") == 0 ? "application/json" : "text/plain");
    for (size_t i = 0; i < c->cfg->n_settings; i++)
        h = add_hdr(h, &ok, c->cfg->settings[i].key, c->cfg->settings[i].value);
    if (!ok) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        curl_slist_free_all(h);
        return;
    }

    /* Endpoints in turn from the one that answered last; the label is the batch's whatever
     * endpoint takes it, so a resend through another FE still deduplicates. */
    size_t n = sink_endpoint_count(c->cfg);
    uint32_t failed_mask = 0;
    char eperr[sizeof res->endpoint_error] = "";
    for (size_t k = 0; k < n; k++) {
        size_t i = (c->ep + k) % n;
        const char *base = sink_endpoint_url(c->cfg, i);
        int failover = 0, resends = 0;
        for (;;) {
            load_once(c, base, b, h, res, &failover);
            if (!res->label_used || resends >= 2 || !resolve_label(c, base, b, res)) break;
            resends++; /* aborted or expired: the same label loads the same rows again */
        }
        if (!failover) {
            c->ep = i;
            res->endpoint = (int)i;
            break;
        }
        failed_mask |= 1u << i;
        snprintf(eperr, sizeof eperr, "%.159s", res->msg);
    }
    res->endpoints_failed = failed_mask;
    memcpy(res->endpoint_error, eperr, sizeof eperr);
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
