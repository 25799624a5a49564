/* admin.c — the admin listener (admin.listen): health and readiness probes, Prometheus
 * metrics, sink pause/resume and the dead-letter queue of a running instance. Built on the
 * same HTTP server core as the proxy. Probes and /metrics are read-only and open; every
 * /v1/ route needs `Authorization: Bearer <admin.token>` when a token is configured. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"
#include "proxy/admin_internal.h"
#include "proxy/http_server.h"
#include "proxy/proxy_internal.h"

#define ADMIN_MAX_IDS 1024

struct proxy_admin {
    http_server_t *srv;
    const sluice_cfg_t *cfg;
    wal_t *wal;
    proxy_t *proxy;
    sink_t **sinks;
    size_t n_sinks;
    int draining;                   /* loop thread only */
    proxy_metrics_fn extra_metrics; /* appended to /metrics (loop thread), or NULL */
    void *extra_ctx;
};

static const char json_hdr[] = "Content-Type: application/json\r\n";

static void reply_json(http_req_t *r, int status, buf_t *b)
{
    if (b->oom) {
        http_respond(r, 500, json_hdr, "{\"error\":\"out of memory\"}\n", 26);
        return;
    }
    buf_puts(b, "\n");
    http_respond(r, status, json_hdr, b->data, b->len);
}

static void reply_error(http_req_t *r, int status, const char *msg)
{
    buf_t b = {0};
    buf_puts(&b, "{\"error\":\"");
    buf_json_escape(&b, msg);
    buf_puts(&b, "\"}");
    reply_json(r, status, &b);
    buf_free(&b);
}

/* Read every counter at one moment (loop thread). */
static void snapshot(proxy_admin_t *a, admin_snapshot_t *s, sink_stats_t *st, const char **names)
{
    memset(s, 0, sizeof *s);
    if (a->proxy) proxy_get_stats(a->proxy, &s->proxy);
    wal_stats(a->wal, &s->wal);
    /* wal_stats gives the range still held (0 once truncated empty); the gauge is the
     * highest seq ever committed, comparable with the sink cursors. */
    s->wal.last_seq = wal_last_seq(a->wal);
    for (size_t i = 0; i < a->n_sinks; i++) {
        sink_get_stats(a->sinks[i], &st[i]);
        names[i] = sink_name(a->sinks[i]);
    }
    s->sinks = st;
    s->sink_names = names;
    s->n_sinks = a->n_sinks;
    s->draining = a->draining;
}

static void route_metrics(proxy_admin_t *a, http_req_t *r)
{
    sink_stats_t *st = calloc(a->n_sinks + 1, sizeof *st);
    const char **names = calloc(a->n_sinks + 1, sizeof *names);
    buf_t b = {0};
    admin_snapshot_t s;
    if (!st || !names) {
        http_respond(r, 500, NULL, "out of memory\n", 14);
        goto out;
    }
    snapshot(a, &s, st, names);
    if (admin_render_metrics(&b, &s) != 0 ||
        (a->extra_metrics && a->extra_metrics(a->extra_ctx, &b) != 0)) {
        http_respond(r, 500, NULL, "out of memory\n", 14);
        goto out;
    }
    http_respond(r, 200, "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n", b.data,
                 b.len);
out:
    buf_free(&b);
    free(st);
    free(names);
}

/* Ready: not draining, WAL open and below wal.ready_below_pct of wal.max_bytes. */
static void route_readyz(proxy_admin_t *a, http_req_t *r)
{
    wal_stats_t w;
    char msg[160];
    if (a->draining) {
        http_respond(r, 503, NULL, "draining\n", 9);
        return;
    }
    if (wal_stats(a->wal, &w) != 0) {
        http_respond(r, 503, NULL, "write-ahead log unavailable\n", 28);
        return;
    }
    uint64_t limit = w.max_bytes / 100 * a->cfg->wal.ready_below_pct;
    if (w.max_bytes && w.live_bytes >= limit) {
        int n = snprintf(msg, sizeof msg, "write-ahead log %" PRIu64 "%% full (ready below %u%%)\n",
                         w.live_bytes * 100 / w.max_bytes, a->cfg->wal.ready_below_pct);
        http_respond(r, 503, NULL, msg, (size_t)n);
        return;
    }
    http_respond(r, 200, NULL, "ready\n", 6);
}

static const char *state_name(sink_state_t s)
{
    static const char *n[] = {"ok", "degraded", "paused", "stopped"};
    return (unsigned)s < 4 ? n[s] : "unknown";
}

static void sink_json(buf_t *b, sink_t *s)
{
    sink_stats_t st;
    sink_get_stats(s, &st);
    buf_puts(b, "{\"name\":\"");
    buf_json_escape(b, sink_name(s));
    buf_printf(b,
               "\",\"state\":\"%s\",\"cursor\":%" PRIu64 ",\"lag_records\":%" PRIu64
               ",\"lag_seconds\":%.3f,\"rows_sent\":%" PRIu64 ",\"bytes_sent\":%" PRIu64
               ",\"batches_sent\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"dlq_rows\":%" PRIu64
               ",\"rows_filtered\":%" PRIu64 ",\"last_error\":\"",
               state_name(st.state), st.cursor, st.lag_records, st.lag_seconds, st.rows_sent,
               st.bytes_sent, st.batches_sent, st.retries, st.dlq_rows, st.rows_filtered);
    buf_json_escape(b, st.last_error);
    buf_puts(b, "\",\"last_error_url\":\"");
    buf_json_escape(b, st.last_error_url);
    buf_puts(b, "\",\"endpoints\":[");
    for (size_t i = 0; i < st.n_endpoints; i++) {
        const sink_endpoint_stats_t *e = &st.endpoints[i];
        buf_puts(b, i ? ",{\"url\":\"" : "{\"url\":\"");
        buf_json_escape(b, e->url ? e->url : "");
        buf_printf(b, "\",\"state\":\"%s\",\"failures\":%" PRIu64 ",\"last_error\":\"",
                   e->up ? "up" : "down", e->failures);
        buf_json_escape(b, e->last_error);
        buf_puts(b, "\"}");
    }
    buf_puts(b, "]");
    /* Tables where a retried batch may double rows (DESIGN.md §5): names as a JSON array. */
    buf_printf(b, ",\"dedup_unsafe_count\":%" PRIu64 ",\"dedup_unsafe_tables\":[",
               st.dedup_unsafe_tables);
    for (const char *p = st.dedup_unsafe; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char name[sizeof st.dedup_unsafe];
        memcpy(name, p, n);
        name[n] = '\0';
        buf_printf(b, "%s\"", p == st.dedup_unsafe ? "" : ",");
        buf_json_escape(b, name);
        buf_puts(b, "\"");
        p += n + (e ? 1 : 0);
    }
    buf_puts(b, "]}");
}

static sink_t *find_sink(proxy_admin_t *a, const char *name, size_t len)
{
    for (size_t i = 0; i < a->n_sinks; i++) {
        const char *n = sink_name(a->sinks[i]);
        if (strlen(n) == len && memcmp(n, name, len) == 0) return a->sinks[i];
    }
    return NULL;
}

static void route_sinks(proxy_admin_t *a, http_req_t *r)
{
    buf_t b = {0};
    buf_puts(&b, "[");
    for (size_t i = 0; i < a->n_sinks; i++) {
        if (i) buf_puts(&b, ",");
        sink_json(&b, a->sinks[i]);
    }
    buf_puts(&b, "]");
    reply_json(r, 200, &b);
    buf_free(&b);
}

/* POST /v1/sinks/{name}/pause|resume: the name must be a configured sink, compared whole. */
static void route_sink_action(proxy_admin_t *a, http_req_t *r, const char *rest, size_t len)
{
    const char *slash = memchr(rest, '/', len);
    if (!slash) {
        reply_error(r, 404, "no such route");
        return;
    }
    sink_t *s = find_sink(a, rest, (size_t)(slash - rest));
    const char *action = slash + 1;
    size_t alen = len - (size_t)(action - rest);
    if (!s) {
        reply_error(r, 404, "no such sink");
        return;
    }
    if (alen == 5 && memcmp(action, "pause", 5) == 0)
        sink_pause(s);
    else if (alen == 6 && memcmp(action, "resume", 6) == 0)
        sink_resume(s);
    else {
        reply_error(r, 404, "unknown action: use pause or resume");
        return;
    }
    buf_t b = {0};
    sink_json(&b, s);
    reply_json(r, 200, &b);
    buf_free(&b);
}

/* ---- DLQ routes: the WAL calls wait for a commit, so they run on the thread pool ---- */

typedef struct {
    uv_work_t work;
    proxy_admin_t *a;
    http_req_t *r;
    int op; /* 0 list, 1 replay, 2 drop */
    char sink[128];
    int has_sink;
    uint64_t ids[ADMIN_MAX_IDS];
    size_t n_ids;
    uint64_t after;
    size_t limit;
    int rc;
    size_t moved;
    buf_t out;
} dlq_job_t;

static void dlq_work(uv_work_t *w)
{
    dlq_job_t *j = w->data;
    const char *sink = j->has_sink ? j->sink : NULL;
    if (j->op == 1) {
        j->rc = wal_dlq_replay(j->a->wal, sink, j->n_ids ? j->ids : NULL, j->n_ids, &j->moved);
        return;
    }
    if (j->op == 2) {
        j->rc = wal_dlq_drop(j->a->wal, sink, j->n_ids ? j->ids : NULL, j->n_ids);
        return;
    }
    wal_dlq_list_t l = {0};
    j->rc = wal_dlq_list(j->a->wal, sink, j->after, j->limit, &l);
    if (j->rc) return;
    buf_puts(&j->out, "[");
    for (size_t i = 0; i < l.n; i++) {
        const wal_dlq_entry_t *e = &l.e[i];
        buf_printf(&j->out, "%s{\"id\":%" PRIu64 ",\"sink\":\"", i ? "," : "", e->id);
        buf_json_escape(&j->out, e->sink ? e->sink : "");
        buf_puts(&j->out, "\",\"db\":\"");
        buf_json_escape(&j->out, e->db ? e->db : "");
        buf_puts(&j->out, "\",\"table\":\"");
        buf_json_escape(&j->out, e->table ? e->table : "");
        buf_printf(&j->out, "\",\"ts_ms\":%" PRIu64 ",\"n_rows\":%u,\"error\":\"", e->ts_ms,
                   e->n_rows);
        buf_json_escape(&j->out, e->error ? e->error : "");
        buf_puts(&j->out, "\"}");
    }
    buf_puts(&j->out, "]");
    wal_dlq_free(&l);
}

static void dlq_done(uv_work_t *w, int status)
{
    dlq_job_t *j = w->data;
    http_req_t *r = j->r;
    if (status != 0 || j->rc != 0) {
        reply_error(r, 500, status ? "cancelled" : wal_strerror(j->rc));
    } else if (j->op == 0) {
        reply_json(r, 200, &j->out);
    } else {
        buf_t b = {0};
        buf_printf(&b, "{\"%s\":%zu}", j->op == 1 ? "replayed" : "dropped",
                   j->op == 1 ? j->moved : j->n_ids);
        reply_json(r, 200, &b);
        buf_free(&b);
    }
    buf_free(&j->out);
    http_req_unref(r);
    free(j);
}

/* Query: sink=NAME, ids=1,2,3, after=N, limit=N. */
static int dlq_parse_query(proxy_admin_t *a, http_req_t *r, dlq_job_t *j, const char **why)
{
    proxy_param_t p[PROXY_MAX_PARAMS];
    size_t n = 0;
    char *store = NULL;
    int rc = 0;
    j->limit = 100;
    if (r->query && proxy_params_parse(r->query, r->query_len, p, &n, &store) != 0) {
        *why = "bad query string";
        return -1;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *k = p[i].key, *v = p[i].value;
        char *end;
        if (strcmp(k, "sink") == 0) {
            if (!find_sink(a, v, strlen(v)) || strlen(v) >= sizeof j->sink) {
                *why = "no such sink";
                rc = -1;
            } else {
                snprintf(j->sink, sizeof j->sink, "%s", v);
                j->has_sink = 1;
            }
        } else if (strcmp(k, "ids") == 0) {
            const char *s = v;
            while (*s && rc == 0) {
                unsigned long long id = strtoull(s, &end, 10);
                if (end == s || (*end && *end != ',') || j->n_ids >= ADMIN_MAX_IDS || *s == '-') {
                    *why = "ids must be a comma-separated list of DLQ ids";
                    rc = -1;
                    break;
                }
                j->ids[j->n_ids++] = id;
                s = *end ? end + 1 : end;
            }
        } else if (strcmp(k, "after") == 0 || strcmp(k, "limit") == 0) {
            unsigned long long x = strtoull(v, &end, 10);
            if (end == v || *end || *v == '-') {
                *why = "after and limit take a number";
                rc = -1;
            } else if (k[0] == 'a') {
                j->after = x;
            } else {
                j->limit = x > 10000 ? 10000 : (size_t)x;
            }
        } else {
            *why = "unknown parameter (use sink, ids, after, limit)";
            rc = -1;
        }
    }
    free(store);
    return rc;
}

static void route_dlq(proxy_admin_t *a, http_req_t *r, int op)
{
    dlq_job_t *j = calloc(1, sizeof *j);
    const char *why = NULL;
    if (!j) {
        reply_error(r, 500, "out of memory");
        return;
    }
    j->a = a;
    j->r = r;
    j->op = op;
    if (dlq_parse_query(a, r, j, &why) != 0) {
        reply_error(r, 400, why);
        free(j);
        return;
    }
    j->work.data = j;
    http_req_ref(r);
    if (uv_queue_work(http_server_loop(a->srv), &j->work, dlq_work, dlq_done) != 0) {
        http_req_unref(r);
        reply_error(r, 500, "cannot queue the DLQ operation");
        free(j);
    }
}

/* Constant-time comparison of the bearer token. */
static int token_ok(proxy_admin_t *a, http_req_t *r)
{
    const char *tok = a->cfg->admin.token;
    if (!tok || !*tok) return 1;
    const char *h = http_req_header(r, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0) return 0;
    h += 7;
    size_t n = strlen(tok), m = strlen(h);
    unsigned char diff = (unsigned char)(n != m);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)(tok[i] ^ (i < m ? h[i] : 0));
    return diff == 0;
}

static int path_is(http_req_t *r, const char *p)
{
    size_t n = strlen(p);
    return r->path_len == n && memcmp(r->path, p, n) == 0;
}

static void on_admin_request(http_req_t *r, void *ctx)
{
    proxy_admin_t *a = ctx;
    int get = r->method == HTTP_GET || r->method == HTTP_HEAD, post = r->method == HTTP_POST;
    if (path_is(r, "/healthz")) {
        if (!get) goto method;
        http_respond(r, 200, NULL, "ok\n", 3);
        return;
    }
    if (path_is(r, "/readyz")) {
        if (!get) goto method;
        route_readyz(a, r);
        return;
    }
    if (path_is(r, "/metrics")) {
        if (!get) goto method;
        route_metrics(a, r);
        return;
    }
    if (r->path_len >= 4 && memcmp(r->path, "/v1/", 4) == 0) {
        if (!token_ok(a, r)) {
            http_respond(r, 401,
                         "WWW-Authenticate: Bearer realm=\"sluice\"\r\n"
                         "Content-Type: application/json\r\n",
                         "{\"error\":\"missing or wrong bearer token\"}\n", 42);
            return;
        }
        if (path_is(r, "/v1/sinks")) {
            if (!get) goto method;
            route_sinks(a, r);
            return;
        }
        if (r->path_len > 10 && memcmp(r->path, "/v1/sinks/", 10) == 0) {
            if (!post) goto method;
            route_sink_action(a, r, r->path + 10, r->path_len - 10);
            return;
        }
        if (path_is(r, "/v1/dlq")) {
            if (!get) goto method;
            route_dlq(a, r, 0);
            return;
        }
        if (path_is(r, "/v1/dlq/replay") || path_is(r, "/v1/dlq/drop")) {
            if (!post) goto method;
            route_dlq(a, r, path_is(r, "/v1/dlq/replay") ? 1 : 2);
            return;
        }
    }
    reply_error(r, 404, "no such route");
    return;
method:
    reply_error(r, 405, "method not allowed");
}

int proxy_admin_start(proxy_admin_t **out, uv_loop_t *loop, const sluice_cfg_t *cfg, wal_t *w,
                      proxy_t *p, sink_t **sinks, size_t n_sinks, char *err, size_t errlen)
{
    *out = NULL;
    if (!cfg->admin.listen || !*cfg->admin.listen) return 0; /* disabled */
    proxy_admin_t *a = calloc(1, sizeof *a);
    if (!a) return -1;
    a->cfg = cfg;
    a->wal = w;
    a->proxy = p;
    a->sinks = sinks;
    a->n_sinks = n_sinks;
    http_server_opts_t o = {
        .listen = cfg->admin.listen,
        .max_header_bytes = 16384,
        .max_body_bytes = 65536,
        .idle_timeout_ms = 30000,
        .max_connections = 256,
        .on_request = on_admin_request,
        .ctx = a,
    };
    int rc = http_server_start(&a->srv, loop, &o, err, errlen);
    if (rc != 0) {
        free(a);
        return rc;
    }
    *out = a;
    return 0;
}

void proxy_admin_set_draining(proxy_admin_t *a)
{
    if (a) a->draining = 1;
}

void proxy_admin_set_metrics(proxy_admin_t *a, proxy_metrics_fn fn, void *ctx)
{
    if (!a) return;
    a->extra_metrics = fn;
    a->extra_ctx = ctx;
}

void proxy_admin_set_sinks(proxy_admin_t *a, sink_t **sinks, size_t n_sinks)
{
    if (!a) return;
    a->sinks = sinks;
    a->n_sinks = n_sinks;
}

void proxy_admin_stop(proxy_admin_t *a)
{
    if (a) http_server_stop(a->srv);
}

void proxy_admin_free(proxy_admin_t *a)
{
    if (!a) return;
    http_server_free(a->srv);
    free(a);
}
