/* clickhouse.c — the ClickHouse backend: one keep-alive libcurl handle per sink thread,
 * `POST {url}/?query=INSERT INTO `db`.`t` [(cols)] FORMAT JSONEachRow` with the rows as body,
 * the request's settings (minus async_insert & co. and drop_settings) and the sink's own as
 * URL params, optional gzip, and insert_deduplication_token where the server has it
 * (version probed at start: >= 22.2 in dedup auto). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sinks/http.h"
#include "sinks/sink_internal.h"

typedef struct {
    const cfg_sink_t *cfg;
    CURL *h;
    struct curl_slist *hdrs; /* auth (+ gzip) headers */
    sink_http_resp_t resp;
    char errbuf[CURL_ERROR_SIZE];
    int version; /* major*1000+minor, -1 unknown */
    int dedup;   /* send insert_deduplication_token */
    char *url;   /* request URL, reused */
    size_t url_len, url_cap;
    unsigned char *gz; /* compressed body, reused */
    size_t gz_cap;
    size_t ep;   /* endpoint (replica) in use: the last one that answered */
    CURLcode cc; /* of the last transfer */
} ch_t;

static int ch_open(const cfg_sink_t *cfg, atomic_int *abort, void **state, char *err, size_t errlen)
{
    sink_http_global_init();
    ch_t *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->cfg = cfg;
    c->version = -1;
    c->resp.abort = abort;
    c->h = curl_easy_init();
    if (!c->h) goto oom;
    char line[1024];
    snprintf(line, sizeof line, "X-ClickHouse-User: %s", cfg->user ? cfg->user : "default");
    struct curl_slist *l = curl_slist_append(NULL, line);
    if (!l) goto oom;
    c->hdrs = l;
    if (cfg->password && *cfg->password) {
        snprintf(line, sizeof line, "X-ClickHouse-Key: %s", cfg->password);
        if (!(l = curl_slist_append(c->hdrs, line))) goto oom;
    }
    /* No 100-continue round trip: ClickHouse reads the body anyway. */
    if (!(l = curl_slist_append(c->hdrs, "Expect:"))) goto oom;
    if (!(l = curl_slist_append(c->hdrs, "Content-Type: text/plain; charset=UTF-8"))) goto oom;
    if (cfg->compress && !(l = curl_slist_append(c->hdrs, "Content-Encoding: gzip"))) goto oom;
    sink_http_setup(c->h, &c->resp, c->errbuf);
    curl_easy_setopt(c->h, CURLOPT_HTTPHEADER, c->hdrs);
    curl_easy_setopt(c->h, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->connect_timeout_ms);
    curl_easy_setopt(c->h, CURLOPT_TIMEOUT_MS, (long)cfg->request_timeout_ms);
    c->dedup = cfg->dedup == CFG_DEDUP_ON;
    *state = c;
    return 0;
oom:
    if (c) {
        curl_slist_free_all(c->hdrs);
        if (c->h) curl_easy_cleanup(c->h);
        free(c);
    }
    snprintf(err, errlen, "sink %s: cannot initialise libcurl", cfg->name);
    return -ENOMEM;
}

static void ch_close(void *state)
{
    ch_t *c = state;
    curl_slist_free_all(c->hdrs);
    curl_easy_cleanup(c->h);
    sink_http_resp_free(&c->resp);
    free(c->url);
    free(c->gz);
    free(c);
}

static int url_base(ch_t *c)
{
    c->url_len = 0;
    const char *u = sink_endpoint_url(c->cfg, c->ep);
    size_t n = strlen(u);
    while (n && u[n - 1] == '/')
        n--;
    return sink_buf_put(&c->url, &c->url_len, &c->url_cap, u, n) < 0 ||
                   sink_buf_put(&c->url, &c->url_len, &c->url_cap, "/?query=", 8) < 0
               ? -ENOMEM
               : 0;
}

static void perform(ch_t *c, int *status, int *failed)
{
    sink_http_resp_reset(&c->resp);
    c->errbuf[0] = '\0';
    CURLcode cc = c->cc = curl_easy_perform(c->h);
    long st = 0;
    curl_easy_getinfo(c->h, CURLINFO_RESPONSE_CODE, &st);
    *status = (int)st;
    *failed = cc != CURLE_OK;
    if (*failed && !c->errbuf[0])
        snprintf(c->errbuf, sizeof c->errbuf, "%s", curl_easy_strerror(cc));
}

/* SELECT version() — decides whether insert_deduplication_token is sent (dedup: auto). */
static int ch_prepare(void *state, sink_result_t *res)
{
    ch_t *c = state;
    if (c->cfg->dedup != CFG_DEDUP_AUTO || c->version >= 0) return 0;
    if (url_base(c) < 0 ||
        sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, "SELECT version()") < 0) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        return -ENOMEM;
    }
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    int st, failed;
    perform(c, &st, &failed);
    if (failed || st != 200) {
        int code = failed ? 0 : sink_ch_error_code(c->resp.exc_code, c->resp.body, c->resp.len);
        sink_ch_classify(st, code, c->resp.body, c->resp.len, failed, c->errbuf, res);
        if (res->kind != SINK_RES_CONFIG) res->kind = SINK_RES_RETRY;
        if (failed && sink_http_failover_error(c->cc)) {
            res->endpoints_failed = 1u << c->ep;
            snprintf(res->endpoint_error, sizeof res->endpoint_error, "%.159s", res->msg);
            c->ep = (c->ep + 1) % sink_endpoint_count(c->cfg); /* next replica next time */
        }
        char m[sizeof res->msg];
        snprintf(m, sizeof m, "version probe: %.480s", res->msg);
        memcpy(res->msg, m, sizeof m);
        return -EAGAIN;
    }
    while (c->resp.len &&
           (c->resp.body[c->resp.len - 1] == '\n' || c->resp.body[c->resp.len - 1] == '\r'))
        c->resp.body[--c->resp.len] = '\0';
    c->version = sink_ch_parse_version(c->resp.body);
    c->dedup = sink_ch_dedup_enabled(c->cfg->dedup, c->version);
    log_info("clickhouse server version", "sink", c->cfg->name, "version",
             c->resp.body ? c->resp.body : "?", "dedup_token", c->dedup ? "on" : "off");
    return 0;
}

/* `name` with backticks, escaping ` and \ inside. */
static int put_ident(char **b, size_t *l, size_t *cap, const char *name)
{
    if (sink_buf_put(b, l, cap, "`", 1) < 0) return -ENOMEM;
    for (const char *p = name; *p; p++) {
        if ((*p == '`' || *p == '\\') && sink_buf_put(b, l, cap, "\\", 1) < 0) return -ENOMEM;
        if (sink_buf_put(b, l, cap, p, 1) < 0) return -ENOMEM;
    }
    return sink_buf_put(b, l, cap, "`", 1);
}

static int put_param(ch_t *c, const char *k, const char *v)
{
    return sink_buf_put(&c->url, &c->url_len, &c->url_cap, "&", 1) < 0 ||
                   sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, k) < 0 ||
                   sink_buf_put(&c->url, &c->url_len, &c->url_cap, "=", 1) < 0 ||
                   sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, v ? v : "") < 0
               ? -ENOMEM
               : 0;
}

static int build_url(ch_t *c, const sink_batch_t *b)
{
    char *q = NULL;
    size_t ql = 0, qc = 0;
    int rc = -ENOMEM;
    if (sink_buf_put(&q, &ql, &qc, "INSERT INTO ", 12) < 0 || put_ident(&q, &ql, &qc, b->db) < 0 ||
        sink_buf_put(&q, &ql, &qc, ".", 1) < 0 || put_ident(&q, &ql, &qc, b->table) < 0)
        goto out;
    if (b->columns && *b->columns &&
        (sink_buf_put(&q, &ql, &qc, " (", 2) < 0 ||
         sink_buf_put(&q, &ql, &qc, b->columns, strlen(b->columns)) < 0 ||
         sink_buf_put(&q, &ql, &qc, ")", 1) < 0))
        goto out;
    if (sink_buf_put(&q, &ql, &qc, " FORMAT JSONEachRow", 19) < 0) goto out;
    if (url_base(c) < 0 || sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, q) < 0) goto out;
    for (size_t i = 0; i < b->n_settings; i++)
        if (b->settings[i].key && sink_ch_setting_forwarded(c->cfg, b->settings[i].key) &&
            put_param(c, b->settings[i].key, b->settings[i].value) < 0)
            goto out;
    for (size_t i = 0; i < c->cfg->n_settings; i++)
        if (put_param(c, c->cfg->settings[i].key, c->cfg->settings[i].value) < 0) goto out;
    if (c->dedup && put_param(c, "insert_deduplication_token", b->key) < 0) goto out;
    rc = 0;
out:
    free(q);
    return rc;
}

/* One INSERT through the current endpoint. */
static void send_once(ch_t *c, const sink_batch_t *b, const char *body, size_t len,
                      sink_result_t *res)
{
    if (build_url(c, b) < 0) {
        memset(res, 0, sizeof *res);
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        return;
    }
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_POST, 1L);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c->h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    int st, failed;
    perform(c, &st, &failed);
    int code = failed ? 0 : sink_ch_error_code(c->resp.exc_code, c->resp.body, c->resp.len);
    sink_ch_classify(st, code, c->resp.body, c->resp.len, failed, c->errbuf, res);
}

static void ch_send(void *state, const sink_batch_t *b, sink_result_t *res)
{
    ch_t *c = state;
    memset(res, 0, sizeof *res);
    const char *body = b->body;
    size_t len = b->body_len;
    if (c->cfg->compress) {
        size_t zl = 0;
        if (sink_gzip(b->body, b->body_len, &c->gz, &c->gz_cap, &zl) < 0) {
            res->kind = SINK_RES_RETRY;
            snprintf(res->msg, sizeof res->msg, "gzip failed");
            return;
        }
        body = (const char *)c->gz;
        len = zl;
    }
    /* Replicas in turn from the one that answered last, on connect errors and timeouts
     * only; the dedup token is the batch's whatever replica takes it. */
    size_t n = sink_endpoint_count(c->cfg);
    uint32_t failed_mask = 0;
    char eperr[sizeof res->endpoint_error] = "";
    for (size_t k = 0; k < n; k++) {
        send_once(c, b, body, len, res);
        if (!(res->kind == SINK_RES_RETRY && res->http_status == 0 &&
              sink_http_failover_error(c->cc))) {
            res->endpoint = (int)c->ep;
            break;
        }
        failed_mask |= 1u << c->ep;
        snprintf(eperr, sizeof eperr, "%.159s", res->msg);
        c->ep = (c->ep + 1) % n;
    }
    res->endpoints_failed = failed_mask;
    memcpy(res->endpoint_error, eperr, sizeof eperr);
}

const sink_backend_t sink_clickhouse_backend = {
    .type = "clickhouse",
    .open = ch_open,
    .prepare = ch_prepare,
    .send = ch_send,
    .close = ch_close,
};
