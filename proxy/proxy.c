/* proxy.c — the ClickHouse-compatible front: routes each request (/ping, JSONEachRow INSERT
 * → WAL, anything else → passthrough), answers INSERTs only from the WAL completion, and
 * drains on shutdown. Everything here runs on the loop thread except wal_done(), which runs
 * on the WAL writer thread and only queues, and the INSERT jobs of large bodies, which
 * insert.c runs on libuv's thread pool and which touch only their job. Over 700 lines because
 * answers, WAL completions, INSERT jobs, barrier and lifecycle all work on struct proxy, kept
 * private to this file; the parts that need none of it are out (insert.c, route.c, stmt.c,
 * params.c, rows.c, formats.c, passthrough.c). */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "proxy/http_server.h"
#include "proxy/insert.h"
#include "proxy/passthrough.h"
#include "proxy/proxy.h"
#include "proxy/proxy_internal.h"

typedef struct ack_op ack_op_t;

/* WAL completions travel from the writer thread to the loop through this queue. It is
 * refcounted apart from proxy_t so a completion arriving after proxy_free is still safe. */
typedef struct {
    pthread_mutex_t mu;
    ack_op_t *head, *tail; /* mu */
    int refs;              /* mu: the proxy's + one per append in flight */
    uv_async_t *async;     /* mu: NULL once the proxy is gone */
} acks_t;

struct ack_op {
    ack_op_t *next;
    acks_t *acks;
    http_req_t *req; /* a ref: the connection may be gone when the WAL answers */
    int status;
    uint64_t first_seq, last_seq;
    uint64_t t_done_ns; /* set on the writer thread */
    uint32_t n_rows;
    size_t bytes;
    int offloop; /* appended by a pool job: on_acks counts the request (before its answer) */
    int heap;    /* calloc'd; else in the request's own memory (http_req_alloc) */
    char query_id[64];
    char fmt[64]; /* the response's format (response_format; the longest of ClickHouse 26 is 42) */
};

/* A read held by the read barrier until the primary sink has delivered target_seq (woken by
 * barrier_async, which the sink signals) or its timer (proxy.read_barrier_ms) fires. */
typedef struct barrier {
    http_req_t *req;
    proxy_t *p;
    uv_timer_t timer;
    uint64_t target_seq;
    struct barrier *prev, *next;
} barrier_t;

struct proxy {
    uv_loop_t *loop;
    const sluice_cfg_t *cfg;
    wal_t *w;
    sink_t *primary;          /* read barrier target, or NULL */
    uv_async_t barrier_async; /* the primary sink delivered or changed state */
    uint64_t acked_seq;       /* highest seq acked to a client (loop only) */
    http_server_t *http;
    pt_t *pt;
    acks_t *acks;
    uv_async_t async;
    uv_timer_t drain_timer;
    int async_open, drain_timer_open;
    size_t appends_in_flight, barriers_in_flight;
    size_t works_in_flight;   /* INSERT jobs on the thread pool (loop only) */
    proxy_ins_job_t *jobs;    /* ... their list, for proxy_free */
    barrier_t *barriers; /* reads waiting for the read barrier */
    int shutting;
    void (*shutdown_cb)(void *ctx);
    void *shutdown_ctx;
    proxy_stats_t st;
    uint64_t rng;
    proxy_stmt_t stmt; /* scratch: requests are classified one at a time on the loop */
    int handles_open;
};

/* ---------------------------------------------------------------- answers */

static uint64_t rng_next(proxy_t *p)
{
    uint64_t x = p->rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    p->rng = x;
    return x * 2685821657736338717ull;
}

static void make_query_id(proxy_t *p, const char *given, char *out, size_t cap)
{
    if (given && *given && strlen(given) < cap && !strpbrk(given, "\r\n")) {
        snprintf(out, cap, "%s", given);
        return;
    }
    uint64_t a = rng_next(p), b = rng_next(p);
    snprintf(out, cap, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)(a >> 16) & 0xffff, (unsigned)a & 0xfff,
             (unsigned)((b >> 48) & 0x3fff) | 0x8000, (unsigned long long)(b & 0xffffffffffffull));
}

/* ClickHouse-shaped error: "Code: N. DB::Exception: msg. (NAME)" + X-ClickHouse-Exception-Code. */
static size_t ch_error_body(char *body, size_t cap, int code, const char *name, const char *msg)
{
    int n = snprintf(body, cap, "Code: %d. DB::Exception: %s. (%s)\n", code, msg, name);
    if (n < 0) return 0;
    return (size_t)n < cap ? (size_t)n : cap - 1;
}

static void ch_error(proxy_t *p, http_req_t *r, int http_status, int code, const char *name,
                     const char *fmt, ...)
{
    char msg[768], body[1024], hdrs[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = ch_error_body(body, sizeof body, code, name, msg);
    snprintf(hdrs, sizeof hdrs,
             "Content-Type: text/plain; charset=UTF-8\r\nX-ClickHouse-Exception-Code: %d\r\n%s",
             code, http_status == 503 ? "Retry-After: 1\r\n" : "");
    p->st.requests_error++;
    log_debug("request refused", "error", msg);
    http_respond(r, http_status, hdrs, body, n);
}

static size_t on_protocol_error(void *ctx, int status, const char *what, char *body, size_t cap,
                                char *hdrs, size_t hcap)
{
    proxy_t *p = ctx;
    p->st.requests_error++;
    log_debug("bad HTTP request", "error", what);
    snprintf(hdrs, hcap, "X-ClickHouse-Exception-Code: 36\r\n");
    char msg[256];
    snprintf(msg, sizeof msg, "sluice: %s (HTTP %d)", what, status);
    return ch_error_body(body, cap, 36, "BAD_ARGUMENTS", msg);
}

/* The format ClickHouse names in an INSERT's answer (X-ClickHouse-Format, with its
 * Content-Type): the default_format setting, which the X-ClickHouse-Format request header
 * also sets, else TabSeparated (HTTPHandler; tests/support/chserver/server.js follows it). A
 * name that is not a plain identifier is not echoed into a header. */
static void response_format(const proxy_param_t *pr, size_t npr, http_req_t *r, char *out,
                            size_t cap)
{
    const char *f = proxy_param_get(pr, npr, "default_format");
    if (!f || !*f) f = http_req_header(r, "X-ClickHouse-Format");
    size_t n = f ? strspn(f, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_")
                 : 0;
    if (!n || f[n] || n >= cap) f = "TabSeparated";
    snprintf(out, cap, "%s", f);
}

/* The Content-Type ClickHouse gives an output format, as the engine's own system.formats
 * lists it (column content_type; ClickHouse 26 through chDB; FormatFactory.h: text/plain
 * unless the format registers one). Every TabSeparated*, TSV* and CSV* format has its
 * prefix's; the others that are not text/plain are named here. test_proxy.py compares
 * this with system.formats for every output format the engine has. */
enum { CT_PLAIN, CT_TSV, CT_CSV, CT_CSV_HDR, CT_NDJSON, CT_JSON, CT_OCTET, CT_XML, CT_GEO,
       CT_PNG, CT_PROM };
static const char *const ctypes[] = {
    "text/plain; charset=UTF-8", "text/tab-separated-values; charset=UTF-8",
    "text/csv; charset=UTF-8; header=absent", "text/csv; charset=UTF-8; header=present",
    "application/x-ndjson; charset=UTF-8", "application/json; charset=UTF-8",
    "application/octet-stream", "application/xml; charset=UTF-8",
    "application/geo+json; charset=UTF-8", "image/png",
    "text/plain; version=0.0.4; charset=UTF-8"};
static const struct {
    const char *name;
    unsigned char ct;
} named_ctypes[] = {
    {"JSONEachRow", CT_NDJSON}, {"JSONStringsEachRow", CT_NDJSON}, {"JSONLines", CT_NDJSON},
    {"JSONL", CT_NDJSON}, {"NDJSON", CT_NDJSON}, {"PrettyJSONEachRow", CT_NDJSON},
    {"PrettyJSONLines", CT_NDJSON}, {"PrettyNDJSON", CT_NDJSON},
    {"JSON", CT_JSON}, {"JSONStrings", CT_JSON}, {"JSONCompact", CT_JSON},
    {"JSONCompactStrings", CT_JSON}, {"JSONColumns", CT_JSON}, {"JSONCompactColumns", CT_JSON},
    {"JSONColumnsWithMetadata", CT_JSON}, {"JSONObjectEachRow", CT_JSON},
    {"JSONEachRowWithProgress", CT_JSON}, {"JSONStringsEachRowWithProgress", CT_JSON},
    {"JSONCompactEachRowWithProgress", CT_JSON},
    {"JSONCompactStringsEachRowWithProgress", CT_JSON},
    {"Native", CT_OCTET}, {"RowBinary", CT_OCTET}, {"RowBinaryWithNames", CT_OCTET},
    {"RowBinaryWithNamesAndTypes", CT_OCTET}, {"Parquet", CT_OCTET}, {"Arrow", CT_OCTET},
    {"ArrowStream", CT_OCTET}, {"ORC", CT_OCTET}, {"Avro", CT_OCTET},
    {"AvroConfluent", CT_OCTET}, {"BSONEachRow", CT_OCTET}, {"Protobuf", CT_OCTET},
    {"ProtobufList", CT_OCTET}, {"ProtobufSingle", CT_OCTET}, {"MsgPack", CT_OCTET},
    {"Npy", CT_OCTET}, {"Buffers", CT_OCTET}, {"MySQLWire", CT_OCTET},
    {"PostgreSQLWire", CT_OCTET}, {"ODBCDriver2", CT_OCTET},
    {"TSKV", CT_TSV}, {"Raw", CT_TSV}, {"RawWithNames", CT_TSV},
    {"RawWithNamesAndTypes", CT_TSV}, {"LineAsString", CT_TSV},
    {"LineAsStringWithNames", CT_TSV}, {"LineAsStringWithNamesAndTypes", CT_TSV},
    {"XML", CT_XML}, {"GeoJSON", CT_GEO}, {"PNG", CT_PNG}, {"Prometheus", CT_PROM}};

static const char *content_type(const char *fmt)
{
    if (!strncasecmp(fmt, "TabSeparated", 12) || !strncasecmp(fmt, "TSV", 3))
        return ctypes[CT_TSV];
    if (!strncasecmp(fmt, "CSVWithNames", 12)) return ctypes[CT_CSV_HDR];
    if (!strncasecmp(fmt, "CSV", 3)) return ctypes[CT_CSV];
    for (size_t i = 0; i < sizeof named_ctypes / sizeof *named_ctypes; i++)
        if (!strcasecmp(fmt, named_ctypes[i].name)) return ctypes[named_ctypes[i].ct];
    return ctypes[CT_PLAIN];
}

static void respond_ok(http_req_t *r, uint32_t rows, size_t bytes, uint64_t elapsed_ns,
                       const ack_op_t *op)
{
    char hdrs[640];
    snprintf(hdrs, sizeof hdrs,
             "Content-Type: %s\r\nX-ClickHouse-Query-Id: %s\r\nX-ClickHouse-Format: %s\r\n"
             "X-ClickHouse-Summary: {\"read_rows\":\"0\",\"read_bytes\":\"0\",\"written_rows\":"
             "\"%u\",\"written_bytes\":\"%zu\",\"total_rows_to_read\":\"0\",\"result_rows\":\"0\","
             "\"result_bytes\":\"0\",\"elapsed_ns\":\"%llu\"}\r\n",
             content_type(op->fmt), op->query_id, op->fmt, rows, bytes,
             (unsigned long long)elapsed_ns);
    http_respond(r, 200, hdrs, "", 0);
}

/* ---------------------------------------------------------------- WAL completions */

static void acks_unref(acks_t *a)
{
    pthread_mutex_lock(&a->mu);
    int left = --a->refs;
    pthread_mutex_unlock(&a->mu);
    if (left == 0) {
        pthread_mutex_destroy(&a->mu);
        free(a);
    }
}

/* Any thread: the op is finished with. It may live in its request's memory, so it goes
 * first and the request's ref after. */
static void op_free(ack_op_t *op)
{
    http_req_t *r = op->req;
    if (op->heap) free(op);
    http_req_unref(r);
}

/* Writer thread: the commit holding this request is done (fsync'ed with sync: always). */
static void wal_done(void *ctx, int status, uint64_t first_seq, uint64_t last_seq)
{
    ack_op_t *op = ctx;
    acks_t *a = op->acks;
    op->status = status;
    op->first_seq = first_seq;
    op->last_seq = last_seq;
    op->t_done_ns = uv_hrtime();
    op->next = NULL;
    pthread_mutex_lock(&a->mu);
    if (a->async) {
        if (a->tail)
            a->tail->next = op;
        else
            a->head = op;
        a->tail = op;
        uv_async_send(a->async);
        pthread_mutex_unlock(&a->mu);
        return;
    }
    pthread_mutex_unlock(&a->mu);
    /* The proxy is gone: its connections are closed. */
    op_free(op);
    acks_unref(a);
}

const uint32_t proxy_ack_bounds_us[PROXY_ACK_BUCKETS] = {
    250, 500, 1000, 2000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000};

static void record_latency(proxy_t *p, uint64_t ns)
{
    uint64_t us = ns / 1000;
    size_t i = 0;
    while (i < PROXY_ACK_BUCKETS && us > proxy_ack_bounds_us[i])
        i++;
    p->st.ack_latency_hist[i]++;
    p->st.ack_latency_sum_us += us;
}

static void on_acks(uv_async_t *h)
{
    proxy_t *p = h->data;
    acks_t *a = p->acks;
    pthread_mutex_lock(&a->mu);
    ack_op_t *op = a->head;
    a->head = a->tail = NULL;
    pthread_mutex_unlock(&a->mu);
    while (op) {
        ack_op_t *next = op->next;
        http_req_t *r = op->req;
        p->appends_in_flight--;
        if (op->offloop) p->st.requests_insert++;
        uint64_t lat = op->t_done_ns > r->t_complete_ns ? op->t_done_ns - r->t_complete_ns : 0;
        if (op->status == 0) {
            /* Read-your-writes: a read arriving after this 200 waits for last_seq. */
            if (op->last_seq > p->acked_seq) p->acked_seq = op->last_seq;
            p->st.rows_ingested += op->n_rows;
            p->st.bytes_ingested += op->bytes;
            record_latency(p, lat);
            /* Durable: the WAL called back after the commit holding these rows. */
            if (r->conn)
                respond_ok(r, op->n_rows, op->bytes, uv_hrtime() - r->t_begin_ns, op);
        } else if (r->conn) {
            if (op->status == WAL_EFULL) {
                ch_error(p, r, 503, 202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                         "sluice write-ahead log is full (wal.max_bytes reached while sinks "
                         "catch up); nothing was written, retry later");
            } else if (op->status == WAL_ETIMEDOUT) {
                ch_error(p, r, 503, 202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                         "sluice write-ahead log stayed full for wal.block_timeout_ms; nothing "
                         "was written, retry later");
            } else if (op->status == WAL_ECLOSED) {
                ch_error(p, r, 503, 202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                         "sluice is shutting down; nothing was written, retry");
            } else {
                log_error("write-ahead log append failed", "error", wal_strerror(op->status));
                ch_error(p, r, 500, 1001, "STD_EXCEPTION",
                         "sluice write-ahead log append failed: %s; nothing was written",
                         wal_strerror(op->status));
            }
        }
        op_free(op);
        acks_unref(a);
        op = next;
    }
}

/* ---------------------------------------------------------------- passthrough, barrier */

static void barrier_closed(uv_handle_t *h)
{
    barrier_t *b = h->data; /* h is inside b: nothing may touch h after the free */
    proxy_t *p = b->p;
    free(b);
    if (--p->handles_open == 0) free(p);
}

static void barrier_end(barrier_t *b)
{
    proxy_t *p = b->p;
    if (b->prev)
        b->prev->next = b->next;
    else
        p->barriers = b->next;
    if (b->next) b->next->prev = b->prev;
    p->barriers_in_flight--;
    uv_timer_stop(&b->timer);
    http_req_unref(b->req);
    uv_close((uv_handle_t *)&b->timer, barrier_closed);
}

static void forward(proxy_t *p, http_req_t *r, const char *extra_hdrs)
{
    if (!r->conn) return;
    if (pt_forward(p->pt, r, extra_hdrs))
        ch_error(p, r, 502, 210, "NETWORK_ERROR", "sluice: cannot start the passthrough request");
}

#define BARRIER_HDR "X-Sluice-Read-Barrier: "

/* The bound passed: forward anyway (reads must not hang), and say so. */
static void barrier_timeout(uv_timer_t *t)
{
    barrier_t *b = t->data;
    b->p->st.barrier_timeouts++;
    forward(b->p, b->req, BARRIER_HDR "timeout\r\n");
    barrier_end(b);
}

static const char *barrier_skip_hdr(sink_state_t st)
{
    if (st == SINK_DEGRADED) return BARRIER_HDR "skipped-degraded\r\n";
    if (st == SINK_PAUSED) return BARRIER_HDR "skipped-paused\r\n";
    return BARRIER_HDR "skipped-stopped\r\n";
}

/* The primary sink signalled (delivered more, or turned degraded/paused/stopped): release
 * the reads it no longer holds. One atomic load per held read, no LMDB. */
static void on_barrier_async(uv_async_t *h)
{
    proxy_t *p = h->data;
    if (!p->barriers) return;
    uint64_t d = sink_delivered_seq(p->primary);
    sink_state_t st = sink_state(p->primary);
    barrier_t *b = p->barriers;
    while (b) {
        barrier_t *next = b->next;
        if (!b->req->conn) {
            barrier_end(b);
        } else if (d >= b->target_seq) {
            forward(p, b->req, BARRIER_HDR "waited\r\n");
            barrier_end(b);
        } else if (st != SINK_OK) {
            forward(p, b->req, barrier_skip_hdr(st));
            barrier_end(b);
        }
        b = next;
    }
}

void proxy_barrier_kick(void *proxy)
{
    proxy_t *p = proxy;
    uv_async_send(&p->barrier_async);
}

/* Read-your-writes (DESIGN.md §1): a read that arrives while the primary sink has not yet
 * delivered every record acked before it is held until it has. Rule: every pending record
 * of the primary, whatever its table, because a read of one table can depend on writes to
 * another (InferenceById is a materialized view fed by ChatInference). A read with nothing
 * pending goes straight through: one atomic load. */
static void passthrough(proxy_t *p, http_req_t *r)
{
    if (http_req_own_body(r)) { /* forwarded after on_request returns */
        ch_error(p, r, 500, 241, "MEMORY_LIMIT_EXCEEDED", "sluice: out of memory");
        return;
    }
    p->st.requests_passthrough++;
    uint64_t target = p->acked_seq;
    if (!p->cfg->proxy.read_barrier_ms || !p->primary || target == 0 ||
        sink_delivered_seq(p->primary) >= target) {
        forward(p, r, NULL);
        return;
    }
    sink_state_t st = sink_state(p->primary);
    if (st != SINK_OK) { /* waiting cannot help: fail or answer fast, and say why */
        p->st.barrier_skipped++;
        forward(p, r, barrier_skip_hdr(st));
        return;
    }
    barrier_t *b = calloc(1, sizeof *b);
    if (!b) {
        forward(p, r, NULL);
        return;
    }
    p->st.barrier_waits++;
    b->req = r;
    b->p = p;
    b->target_seq = target;
    http_req_ref(r);
    uv_timer_init(p->loop, &b->timer);
    b->timer.data = b;
    p->barriers_in_flight++;
    p->handles_open++;
    b->next = p->barriers;
    if (p->barriers) p->barriers->prev = b;
    p->barriers = b;
    uv_timer_start(&b->timer, barrier_timeout, p->cfg->proxy.read_barrier_ms, 0);
    /* The sink sends what it holds now instead of after batch.max_wait_ms; its signal
     * (sink_on_progress -> proxy_barrier_kick) releases the read. The delivered check runs
     * once more in case it delivered between the load above and the list insert. */
    sink_deliver_now(p->primary, target);
    if (sink_delivered_seq(p->primary) >= target) uv_async_send(&p->barrier_async);
}

/* ---------------------------------------------------------------- routing */

/* An INSERT that goes to the primary ClickHouse unbuffered (not durable through an outage):
 * counted per table for /metrics, logged once per table so the user learns it. */
static void note_unbuffered(proxy_t *p, const proxy_stmt_t *st, const proxy_param_t *pr,
                            size_t npr, http_req_t *r)
{
    if (!st->unbuffered || !st->table) return;
    const char *db = st->db;
    if (!db) db = proxy_param_get(pr, npr, "database");
    if (!db) db = http_req_header(r, "X-ClickHouse-Database");
    char name[PROXY_UNBUF_NAME];
    snprintf(name, sizeof name, "%s%s%s", db && *db ? db : "", db && *db ? "." : "", st->table);
    proxy_stats_t *s = &p->st;
    for (size_t i = 0; i < s->n_unbuffered; i++)
        if (strcmp(s->unbuffered[i].table, name) == 0) {
            s->unbuffered[i].requests++;
            return;
        }
    log_warn("INSERT passed through unbuffered: not durable while ClickHouse is down", "table",
             name, "why", st->unbuffered);
    if (s->n_unbuffered == PROXY_UNBUF_MAX) {
        s->unbuffered_other++; /* more tables than slots: counted, not named */
        return;
    }
    snprintf(s->unbuffered[s->n_unbuffered].table, PROXY_UNBUF_NAME, "%s", name);
    s->unbuffered[s->n_unbuffered++].requests = 1;
}

/* ---------------------------------------------------------------- INSERT */

/* The request will not be appended: give back what on_statement reserved for the ack. */
static void op_release(proxy_t *p, ack_op_t *op)
{
    acks_t *a = op->acks;
    p->appends_in_flight--;
    op_free(op);
    acks_unref(a);
}

/* Loop: answer what proxy_insert_run decided (the 200 of an append comes from on_acks). */
static void insert_finish(proxy_t *p, http_req_t *r, proxy_ins_t *in, ack_op_t *op, int offloop)
{
    if (in->result == PROXY_INS_APPENDED) {
        /* op is the WAL's now (on_acks may even have freed it). A pool job's is counted by
         * on_acks, so the counter never lags its 200. */
        if (!offloop) p->st.requests_insert++;
        return;
    }
    if (in->result == PROXY_INS_EMPTY) {
        p->st.requests_insert++;
        if (r->conn) respond_ok(r, 0, 0, uv_hrtime() - r->t_begin_ns, op);
    } else if (in->result == PROXY_INS_PASS) {
        if (r->conn) {
            note_unbuffered(p, in->st, in->pr, in->npr, r);
            passthrough(p, r);
        }
    } else if (r->conn) {
        ch_error(p, r, in->http_status, in->code, in->name, "%s", in->msg);
    }
    op_release(p, op);
}

/* Loop: a pool job ended (or was cancelled by proxy_free, or skipped because its client
 * left first: nothing to answer then). */
static void job_finished(proxy_ins_t *in, int cancelled, void *ctx)
{
    proxy_t *p = ctx;
    ack_op_t *op = in->done_ctx;
    p->works_in_flight--;
    if (cancelled) {
        if (in->req->conn)
            ch_error(p, in->req, 503, 202, "TOO_MANY_SIMULTANEOUS_QUERIES",
                     "sluice is shutting down; nothing was written, retry");
        op_release(p, op);
    } else {
        insert_finish(p, in->req, in, op, 1);
    }
    if (--p->handles_open == 0) free(p); /* p outlives its jobs: they may end after proxy_free */
}

/* A POST/PUT to "/" (proxy_classify): an INSERT sluice buffers goes to the WAL
 * (proxy_insert_run, insert.c), anything else, or an INSERT it does not buffer, is forwarded
 * as it came. A body larger than PROXY_OFFLOOP_BYTES once decoded is handled on the thread
 * pool: a compressed one is first decoded here up to that size, which settles it. */
static void on_statement(proxy_t *p, http_req_t *r, const proxy_param_t *pr, size_t npr,
                         char **pstore)
{
    /* One allocation for request and op: the op lives in the request's memory. */
    ack_op_t *op = http_req_alloc(r, sizeof *op);
    int heap = !op;
    if (heap && !(op = malloc(sizeof *op))) {
        ch_error(p, r, 500, 241, "MEMORY_LIMIT_EXCEEDED", "sluice: out of memory");
        return;
    }
    memset(op, 0, sizeof *op);
    op->heap = heap;
    op->acks = p->acks;
    op->req = r;
    make_query_id(p, proxy_param_get(pr, npr, "query_id"), op->query_id, sizeof op->query_id);
    response_format(pr, npr, r, op->fmt, sizeof op->fmt);
    http_req_ref(r);
    pthread_mutex_lock(&p->acks->mu);
    p->acks->refs++;
    pthread_mutex_unlock(&p->acks->mu);
    p->appends_in_flight++; /* reserved now: on_acks may run before a pool job is done */

    uint64_t max_body = p->cfg->proxy.max_body_bytes;
    const char *enc = http_req_header(r, "Content-Encoding");
    char *decoded = NULL;
    size_t dlen = 0;
    int offloop = r->body_len > PROXY_OFFLOOP_BYTES;
    if (!offloop && r->body_len && enc && *enc && strcasecmp(enc, "identity") != 0) {
        uint64_t lim = max_body < PROXY_OFFLOOP_BYTES ? max_body : PROXY_OFFLOOP_BYTES;
        int drc = proxy_decode(enc, r->body, r->body_len, lim, &decoded, &dlen, NULL, 0);
        if (drc == PROXY_DECODE_ETOOBIG && lim < max_body) offloop = 1;
        /* Any other failure: proxy_insert_run decodes again and words the answer. */
    }
    proxy_ins_t in = {.req = r,
                      .pr = pr,
                      .npr = npr,
                      .st = &p->stmt,
                      .max_body_bytes = max_body,
                      .w = p->w,
                      .done = wal_done,
                      .done_ctx = op,
                      .n_rows_out = &op->n_rows,
                      .bytes_out = &op->bytes,
                      .decoded = decoded,
                      .decoded_len = dlen};
    if (offloop) {
        op->offloop = 1;
        if (proxy_insert_queue(p->loop, &in, pstore, job_finished, p, &p->jobs) == 0) {
            p->works_in_flight++;
            p->st.inserts_offloop++;
            p->handles_open++;
            return;
        }
        op->offloop = 0; /* no memory for the job: do it here */
    }
    proxy_insert_run(&in);
    if (in.result != PROXY_INS_PASS) http_req_body_free(r); /* in the WAL, or refused */
    insert_finish(p, r, &in, op, 0);
}

static void on_request(http_req_t *r, void *ctx)
{
    proxy_t *p = ctx;
    proxy_req_view_t view = {.method = r->method,
                             .path = r->path,
                             .path_len = r->path_len,
                             .has_query = r->query != NULL,
                             .body_len = r->body_len,
                             .content_type = http_req_header(r, "Content-Type")};
    proxy_route_t route = proxy_classify(&view);
    if (route == PROXY_ROUTE_BAD_METHOD) {
        http_respond(r, 405, "Content-Type: text/plain; charset=UTF-8\r\n", "", 0);
        return;
    }
    if (route == PROXY_ROUTE_OK) {
        http_respond(r, 200, "Content-Type: text/plain; charset=UTF-8\r\n", "Ok.\n", 4);
        return;
    }

    proxy_param_t pr[PROXY_MAX_PARAMS];
    size_t npr = 0;
    char *pstore = NULL, *pmem = r->query_len ? http_req_alloc(r, PROXY_PARAMS_STORE(r->query_len)) : NULL;
    if (pmem ? proxy_params_parse_in(r->query, r->query_len, pr, &npr, pmem)
             : proxy_params_parse(r->query ? r->query : "", r->query_len, pr, &npr, &pstore)) {
        ch_error(p, r, 400, 36, "BAD_ARGUMENTS", "Cannot parse the URL query string");
        return;
    }
    proxy_creds_t cr;
    if (proxy_creds_from(&cr, http_req_header(r, "Authorization"),
                         http_req_header(r, "X-ClickHouse-User"),
                         http_req_header(r, "X-ClickHouse-Key"), proxy_param_get(pr, npr, "user"),
                         proxy_param_get(pr, npr, "password"))) {
        ch_error(p, r, 403, 516, "AUTHENTICATION_FAILED",
                 "Invalid authentication: use only one of HTTP Basic, X-ClickHouse-User/Key "
                 "headers or user/password parameters");
        goto out;
    }
    if (proxy_auth_check(&p->cfg->proxy, &cr)) {
        /* As modern ClickHouse (exceptionCodeToHTTPStatus: AUTHENTICATION_FAILED -> 403
         * Forbidden; 18.16 answered 401 with Code 192): the user is echoed, the password
         * never, and nothing is logged. */
        p->st.requests_error++;
        char body[512], hdrs[160];
        size_t n = (size_t)snprintf(body, sizeof body,
                                    "Code: 516. DB::Exception: %s: Authentication failed: password "
                                    "is incorrect, or there is no user with such name. "
                                    "(AUTHENTICATION_FAILED)\n",
                                    cr.user);
        if (n >= sizeof body) n = sizeof body - 1;
        snprintf(hdrs, sizeof hdrs,
                 "Content-Type: text/plain; charset=UTF-8\r\nX-ClickHouse-Exception-Code: 516\r\n");
        http_respond(r, 403, hdrs, body, n);
        goto out;
    }

    view.decompress = proxy_param_get(pr, npr, "decompress");
    if (proxy_classify(&view) != PROXY_ROUTE_STATEMENT) {
        passthrough(p, r);
        goto out;
    }

    on_statement(p, r, pr, npr, &pstore);
out:
    free(pstore);
}

/* ---------------------------------------------------------------- lifecycle */

static void on_handle_closed(uv_handle_t *h)
{
    proxy_t *p = h->data;
    if (--p->handles_open == 0) free(p);
}

int proxy_start(proxy_t **out, uv_loop_t *loop, const sluice_cfg_t *cfg, wal_t *w,
                sink_t *primary, char *err, size_t errlen)
{
    *out = NULL;
    proxy_t *p = calloc(1, sizeof *p);
    if (!p) return -ENOMEM;
    p->loop = loop;
    p->cfg = cfg;
    p->w = w;
    p->primary = primary;
    p->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)p;
    if (!p->rng) p->rng = 88172645463325252ull;
    int rc;
    p->acks = calloc(1, sizeof *p->acks);
    if (!p->acks) {
        free(p);
        return -ENOMEM;
    }
    pthread_mutex_init(&p->acks->mu, NULL);
    p->acks->refs = 1;
    p->acks->async = &p->async;
    uv_async_init(loop, &p->async, on_acks);
    p->async.data = p;
    uv_timer_init(loop, &p->drain_timer);
    p->drain_timer.data = p;
    uv_async_init(loop, &p->barrier_async, on_barrier_async);
    p->barrier_async.data = p;
    p->handles_open = 3;

    const char *url = cfg->proxy.passthrough_url;
    if (!url || !*url) {
        const cfg_sink_t *ps = cfg_primary_sink(cfg);
        url = ps ? ps->url : NULL;
    }
    rc = pt_init(&p->pt, loop, url, cfg->proxy.passthrough_timeout_ms, err, errlen);
    if (rc) goto fail;
    http_server_opts_t o = {
        .listen = cfg->proxy.listen ? cfg->proxy.listen : "127.0.0.1:8123",
        .max_header_bytes = cfg->proxy.max_header_bytes ? cfg->proxy.max_header_bytes : 65536,
        .max_body_bytes = cfg->proxy.max_body_bytes ? cfg->proxy.max_body_bytes : 64u << 20,
        .idle_timeout_ms = cfg->proxy.idle_timeout_ms,
        .max_connections = cfg->proxy.max_connections,
        .on_request = on_request,
        .borrow_bodies = 1, /* every path that keeps the body past on_request owns it */
        .format_error = on_protocol_error,
        .ctx = p,
    };
    rc = http_server_start(&p->http, loop, &o, err, errlen);
    if (rc) goto fail;
    *out = p;
    return 0;
fail:
    proxy_free(p);
    return rc;
}

static void drain_check(uv_timer_t *t)
{
    proxy_t *p = t->data;
    if (http_server_in_flight(p->http) || p->appends_in_flight || p->barriers_in_flight ||
        p->works_in_flight)
        return;
    uv_timer_stop(t);
    void (*cb)(void *) = p->shutdown_cb;
    p->shutdown_cb = NULL;
    if (cb) cb(p->shutdown_ctx);
}

void proxy_shutdown(proxy_t *p, void (*cb)(void *ctx), void *ctx)
{
    if (p->shutting) return;
    p->shutting = 1;
    p->shutdown_cb = cb;
    p->shutdown_ctx = ctx;
    http_server_stop(p->http);
    /* In-flight requests finish (their WAL callbacks included); poll, never block. */
    uv_timer_start(&p->drain_timer, drain_check, 0, 5);
}

void proxy_free(proxy_t *p)
{
    if (!p) return;
    if (p->http) http_server_free(p->http); /* aborts what is left: on_abort cancels transfers */
    p->http = NULL;
    if (p->pt) pt_close(p->pt);
    p->pt = NULL;
    proxy_insert_cancel_all(p->jobs); /* the caller closes the WAL after this */
    if (p->acks) {
        pthread_mutex_lock(&p->acks->mu);
        p->acks->async = NULL;
        pthread_mutex_unlock(&p->acks->mu);
        /* Completions already queued: drop them (their connections are closed). */
        on_acks(&p->async);
        acks_unref(p->acks);
        p->acks = NULL;
    }
    while (p->barriers)
        barrier_end(p->barriers);
    uv_timer_stop(&p->drain_timer);
    uv_close((uv_handle_t *)&p->async, on_handle_closed);
    uv_close((uv_handle_t *)&p->drain_timer, on_handle_closed);
    uv_close((uv_handle_t *)&p->barrier_async, on_handle_closed);
}

void proxy_get_stats(proxy_t *p, proxy_stats_t *out)
{
    *out = p->st;
    if (p->http) {
        http_server_stats_t hs;
        http_server_stats(p->http, &hs);
        out->connections_open = hs.connections_open;
    }
    out->offloop_in_flight = p->works_in_flight;
}
