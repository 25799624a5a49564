/* clickhouse.c — the ClickHouse backend: one keep-alive libcurl handle per sink thread,
 * `POST {url}/?query=INSERT INTO `db`.`t` [(cols)] FORMAT fmt` with the rows (framed by
 * convert.c: header rows ahead) as body,
 * the request's settings (minus async_insert & co. and drop_settings) and the sink's own as
 * URL params, optional gzip, and insert_deduplication_token where the server has it
 * (version probed at start: >= 22.2 in dedup auto). After the first delivery to each table it
 * reads the table's engine from system.tables and warns when a retried batch could double
 * rows there (no replication, no non_replicated_deduplication_window). */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sinks/convert.h"
#include "sinks/http.h"
#include "sinks/sink_internal.h"

/* A target table whose engine was read, and whether a retry may duplicate into it. */
typedef struct {
    char *name; /* db.table */
    int unsafe;
} ch_table_t;

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
    /* Tables checked for dedup: appended by the sink thread, read by ch_dedup_unsafe from
     * the admin's thread; both under dedup_mu. */
    pthread_mutex_t dedup_mu;
    ch_table_t *tables;
    size_t n_tables, cap_tables;
    uint32_t n_unsafe;
    buf_t framed; /* body with header rows / JSONObjectEachRow braces, reused */
} ch_t;

static int ch_open(const cfg_sink_t *cfg, atomic_int *abort, void **state, char *err, size_t errlen)
{
    sink_http_global_init();
    ch_t *c = calloc(1, sizeof *c);
    if (!c) goto oom;
    c->cfg = cfg;
    c->version = -1;
    pthread_mutex_init(&c->dedup_mu, NULL);
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
        pthread_mutex_destroy(&c->dedup_mu);
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
    for (size_t i = 0; i < c->n_tables; i++)
        free(c->tables[i].name);
    free(c->tables);
    pthread_mutex_destroy(&c->dedup_mu);
    buf_free(&c->framed);
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

/* name between quote chars q (` for identifiers, ' for string literals), escaping q and \. */
static int put_quoted(char **b, size_t *l, size_t *cap, const char *name, char q)
{
    if (sink_buf_put(b, l, cap, &q, 1) < 0) return -ENOMEM;
    for (const char *p = name; *p; p++) {
        if ((*p == q || *p == '\\') && sink_buf_put(b, l, cap, "\\", 1) < 0) return -ENOMEM;
        if (sink_buf_put(b, l, cap, p, 1) < 0) return -ENOMEM;
    }
    return sink_buf_put(b, l, cap, &q, 1);
}

static int put_ident(char **b, size_t *l, size_t *cap, const char *name)
{
    return put_quoted(b, l, cap, name, '`');
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
    if (sink_buf_put(&q, &ql, &qc, " FORMAT ", 8) < 0 ||
        sink_buf_put(&q, &ql, &qc, b->fmt, strlen(b->fmt)) < 0)
        goto out;
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

static void dedup_check(ch_t *c, const char *db, const char *table);

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
    if (!sink_fmt_name_ok(b->fmt)) { /* only from a damaged or foreign record */
        res->kind = SINK_RES_PERMANENT;
        res->whole = 1;
        snprintf(res->msg, sizeof res->msg, "record has an invalid format name");
        return;
    }
    const char *body = b->body;
    size_t len = b->body_len;
    if (sink_ch_body(b, &c->framed, &body, &len) < 0) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "out of memory");
        return;
    }
    if (c->cfg->compress) {
        size_t zl = 0;
        if (sink_gzip(body, len, &c->gz, &c->gz_cap, &zl) < 0) {
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
    if (res->kind == SINK_RES_OK) dedup_check(c, b->db, b->table);
}

/* ---- dedup report ---- */

static int table_checked(ch_t *c, const char *qualified)
{
    for (size_t i = 0; i < c->n_tables; i++) /* sink thread: the only writer */
        if (strcmp(c->tables[i].name, qualified) == 0) return 1;
    return 0;
}

/* Read db.table's engine from system.tables (same columns on 18.16 and modern servers) and
 * remember whether a retried batch may duplicate into it; warn once when it may. Runs after a
 * successful send, so the table exists and the server answers; a failed probe is retried
 * after the next one. */
static void dedup_check(ch_t *c, const char *db, const char *table)
{
    char qualified[512];
    snprintf(qualified, sizeof qualified, "%s.%s", db, table);
    if (table_checked(c, qualified)) return;
    char *q = NULL;
    size_t ql = 0, qc = 0;
    static const char head[] = "SELECT engine, engine_full FROM system.tables WHERE database = ";
    int bad = sink_buf_put(&q, &ql, &qc, head, sizeof head - 1) < 0 ||
              put_quoted(&q, &ql, &qc, db, '\'') < 0 ||
              sink_buf_put(&q, &ql, &qc, " AND name = ", 12) < 0 ||
              put_quoted(&q, &ql, &qc, table, '\'') < 0 ||
              sink_buf_put(&q, &ql, &qc, " FORMAT JSONEachRow", 19) < 0 || url_base(c) < 0 ||
              sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, q) < 0;
    free(q);
    if (bad) return;
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    int st, failed;
    perform(c, &st, &failed);
    char engine[128], full[2048], why[256], fix[512];
    if (failed || st != 200 || !c->resp.body ||
        sink_json_get(c->resp.body, c->resp.len, "engine", engine, sizeof engine) != 1 ||
        sink_json_get(c->resp.body, c->resp.len, "engine_full", full, sizeof full) != 1)
        return;
    int unsafe =
        sink_ch_dedup_unsafe(c->version, qualified, engine, full, why, sizeof why, fix, sizeof fix);
    char *name = strdup(qualified);
    if (!name) return;
    pthread_mutex_lock(&c->dedup_mu);
    if (c->n_tables == c->cap_tables) {
        size_t nc = c->cap_tables ? c->cap_tables * 2 : 8;
        ch_table_t *t = realloc(c->tables, nc * sizeof *t);
        if (!t) {
            pthread_mutex_unlock(&c->dedup_mu);
            free(name);
            return;
        }
        c->tables = t;
        c->cap_tables = nc;
    }
    c->tables[c->n_tables].name = name;
    c->tables[c->n_tables].unsafe = unsafe;
    c->n_tables++;
    c->n_unsafe += unsafe ? 1 : 0;
    pthread_mutex_unlock(&c->dedup_mu);
    if (unsafe)
        log_warn("a retried batch may duplicate rows in this table (insert_deduplication_token "
                 "is ignored there)",
                 "sink", c->cfg->name, "table", qualified, "why", why, "fix", fix);
}

static uint32_t ch_dedup_unsafe(void *state, char *out, size_t outlen)
{
    ch_t *c = state;
    size_t len = 0;
    if (outlen) out[0] = '\0';
    pthread_mutex_lock(&c->dedup_mu);
    uint32_t n = c->n_unsafe;
    for (size_t i = 0; i < c->n_tables && outlen; i++) {
        if (!c->tables[i].unsafe) continue;
        int w = snprintf(out + len, outlen - len, "%s%s", len ? "," : "", c->tables[i].name);
        if (w < 0 || (size_t)w >= outlen - len) {
            out[len] = '\0'; /* names are never cut in the middle */
            break;
        }
        len += (size_t)w;
    }
    pthread_mutex_unlock(&c->dedup_mu);
    return n;
}

/* On demand (`sluice check-config --online`): every table of the sink's server (of its
 * database when set; views and system databases left out; include/exclude applied to the
 * server's names) checked as dedup_check does, one line per table that may duplicate. */
int sink_dedup_check(const cfg_sink_t *cfg, FILE *out, FILE *err)
{
    atomic_int abort_flag;
    atomic_init(&abort_flag, 0);
    void *state = NULL;
    char e[512];
    if (cfg->type != CFG_SINK_CLICKHOUSE) return 0;
    if (ch_open(cfg, &abort_flag, &state, e, sizeof e) < 0) {
        fprintf(err, "sink %s: %s\n", cfg->name, e);
        return -EIO;
    }
    ch_t *c = state;
    sink_result_t res;
    memset(&res, 0, sizeof res);
    int rc = -EIO;
    if (cfg->dedup == CFG_DEDUP_AUTO && ch_prepare(c, &res) < 0) {
        fprintf(err, "sink %s: %s\n", cfg->name, res.msg);
        goto out;
    }
    char *q = NULL;
    size_t ql = 0, qc = 0;
    static const char head[] =
        "SELECT database, name, engine, engine_full FROM system.tables WHERE ";
    int bad = sink_buf_put(&q, &ql, &qc, head, sizeof head - 1) < 0;
    if (!bad && cfg->database && *cfg->database)
        bad = sink_buf_put(&q, &ql, &qc, "database = ", 11) < 0 ||
              put_quoted(&q, &ql, &qc, cfg->database, '\'') < 0;
    else if (!bad) {
        static const char sysdb[] =
            "database NOT IN ('system', 'INFORMATION_SCHEMA', 'information_schema')";
        bad = sink_buf_put(&q, &ql, &qc, sysdb, sizeof sysdb - 1) < 0;
    }
    static const char tail[] = " AND engine NOT LIKE '%View' ORDER BY database, name "
                               "FORMAT JSONEachRow";
    bad = bad || sink_buf_put(&q, &ql, &qc, tail, sizeof tail - 1) < 0 || url_base(c) < 0 ||
          sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, q) < 0;
    free(q);
    if (bad) {
        fprintf(err, "sink %s: out of memory\n", cfg->name);
        goto out;
    }
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    int st, failed;
    perform(c, &st, &failed);
    if (failed || st != 200) {
        fprintf(err, "sink %s: reading system.tables at %s failed: %s\n", cfg->name,
                sink_endpoint_url(cfg, c->ep),
                failed ? c->errbuf : (c->resp.body ? c->resp.body : "?"));
        goto out;
    }
    rc = 0;
    for (const char *p = c->resp.body ? c->resp.body : "", *end; *p; p = end + (*end ? 1 : 0)) {
        end = strchr(p, '\n');
        if (!end) end = p + strlen(p);
        char db[256], name[256], engine[128], full[2048], why[256], fix[512], qual[520];
        size_t len = (size_t)(end - p);
        if (sink_json_get(p, len, "database", db, sizeof db) != 1 ||
            sink_json_get(p, len, "name", name, sizeof name) != 1 ||
            sink_json_get(p, len, "engine", engine, sizeof engine) != 1 ||
            sink_json_get(p, len, "engine_full", full, sizeof full) != 1)
            continue;
        if (!sink_wants_table(cfg, db, name)) continue;
        snprintf(qual, sizeof qual, "%s.%s", db, name);
        if (sink_ch_dedup_unsafe(c->version, qual, engine, full, why, sizeof why, fix,
                                 sizeof fix)) {
            fprintf(out, "sink %s: %s: a retried batch may duplicate rows (%s); fix: %s\n",
                    cfg->name, qual, why, fix);
            rc++;
        }
    }
    if (rc == 0) fprintf(out, "sink %s: every table deduplicates retried batches\n", cfg->name);
out:
    ch_close(c);
    return rc;
}

/* DESCRIBE TABLE for the RowBinary splitter: "name\ttype\n" of the insertable columns
 * (MATERIALIZED and ALIAS ones are not in a RowBinary row). Asked again at every split, so
 * a schema change is always seen; splits happen only for refused bodies. */
static int describe(ch_t *c, const sink_batch_t *b, char **out, char *err, size_t errlen)
{
    char *q = NULL;
    size_t ql = 0, qc = 0;
    *out = NULL;
    if (sink_buf_put(&q, &ql, &qc, "DESCRIBE TABLE ", 15) < 0 || put_ident(&q, &ql, &qc, b->db) < 0 ||
        sink_buf_put(&q, &ql, &qc, ".", 1) < 0 || put_ident(&q, &ql, &qc, b->table) < 0 ||
        sink_buf_put(&q, &ql, &qc, " FORMAT TSV", 11) < 0 || url_base(c) < 0 ||
        sink_buf_urlenc(&c->url, &c->url_len, &c->url_cap, q) < 0) {
        free(q);
        return -ENOMEM;
    }
    free(q);
    curl_easy_setopt(c->h, CURLOPT_URL, c->url);
    curl_easy_setopt(c->h, CURLOPT_HTTPGET, 1L);
    int st, failed;
    perform(c, &st, &failed);
    if (failed || st != 200) {
        snprintf(err, errlen, "DESCRIBE TABLE failed: %s",
                 failed ? c->errbuf : (c->resp.body ? c->resp.body : "?"));
        return -EAGAIN;
    }
    char *o = malloc(c->resp.len + 1);
    if (!o) return -ENOMEM;
    size_t n = 0;
    for (const char *l = c->resp.body, *end = c->resp.body + c->resp.len; l < end;) {
        const char *nl = memchr(l, '\n', (size_t)(end - l));
        const char *e = nl ? nl : end;
        const char *t1 = memchr(l, '\t', (size_t)(e - l));
        const char *t2 = t1 ? memchr(t1 + 1, '\t', (size_t)(e - t1 - 1)) : NULL;
        const char *t3 = t2 ? memchr(t2 + 1, '\t', (size_t)(e - t2 - 1)) : e;
        if (t1 && t2) {
            size_t dl = (size_t)((t3 ? t3 : e) - t2 - 1);
            int skip = (dl == 12 && memcmp(t2 + 1, "MATERIALIZED", 12) == 0) ||
                       (dl == 5 && memcmp(t2 + 1, "ALIAS", 5) == 0);
            if (!skip) {
                memcpy(o + n, l, (size_t)(t2 - l));
                n += (size_t)(t2 - l);
                o[n++] = '\n';
            }
        }
        l = nl ? nl + 1 : end;
    }
    o[n] = '\0';
    *out = o;
    return 0;
}

static int ch_split(void *state, const sink_batch_t *b, size_t *hdr_len, size_t **off,
                    uint32_t *n, char *err, size_t errlen)
{
    ch_t *c = state;
    if (strcmp(b->fmt, "Native") == 0) { /* bisected by blocks, which describe themselves */
        *hdr_len = 0;
        return sink_native_split(b->body, b->body_len, off, n, err, errlen);
    }
    if (strncmp(b->fmt, "RowBinary", 9) != 0) return -ENOTSUP;
    char *desc = NULL;
    if (!strstr(b->fmt, "AndTypes")) {
        int rc = describe(c, b, &desc, err, errlen);
        if (rc) return rc;
    }
    int rc = sink_rowbinary_split(b->fmt, b->columns, desc, b->body, b->body_len, hdr_len, off, n,
                                  err, errlen);
    free(desc);
    return rc;
}

const sink_backend_t sink_clickhouse_backend = {
    .split = ch_split,
    .type = "clickhouse",
    .open = ch_open,
    .prepare = ch_prepare,
    .send = ch_send,
    .close = ch_close,
    .dedup_unsafe = ch_dedup_unsafe,
};
