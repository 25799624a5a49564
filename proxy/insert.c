/* insert.c — the INSERT path between the request and the WAL: statement (query parameter,
 * body head, or both joined), Content-Encoding, rows validated and split per format, settings
 * collected, wal_append. It only reads the request and writes its proxy_ins_t, so it runs on
 * the loop or, as a job, on a pool thread alike (insert.h); the answer is the caller's. */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "proxy/insert.h"

static void fail(proxy_ins_t *in, int http_status, int code, const char *name, const char *fmt,
                 ...) __attribute__((format(printf, 5, 6)));

static void fail(proxy_ins_t *in, int http_status, int code, const char *name, const char *fmt,
                 ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->msg, sizeof in->msg, fmt, ap);
    va_end(ap);
    in->result = PROXY_INS_ERROR;
    in->http_status = http_status;
    in->code = code;
    in->name = name;
}

static void fail_oom(proxy_ins_t *in)
{
    fail(in, 500, 241, "MEMORY_LIMIT_EXCEEDED", "sluice: out of memory");
}

static int is_ws_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strchr(" \t\r\n", s[i])) return 0;
    return 1;
}

/* Validate and append rows_in[0..rows_len) (rows_cap: how far the splitter may write). */
static void append_rows(proxy_ins_t *in, char *rows_in, size_t rows_len, size_t rows_cap)
{
    proxy_stmt_t *st = in->st;
    const proxy_param_t *pr = in->pr;
    size_t npr = in->npr;
    /* Settings: URL params that are settings, then the SETTINGS clause (which wins). */
    wal_kv_t kv[PROXY_MAX_PARAMS + PROXY_STMT_MAX_SETTINGS];
    size_t nkv = 0;
    for (size_t i = 0; i < npr; i++) {
        if (!proxy_param_is_setting(pr[i].key)) continue;
        size_t j;
        for (j = 0; j < nkv; j++)
            if (strcmp(kv[j].key, pr[i].key) == 0) break;
        int in_stmt = 0;
        for (size_t k = 0; k < st->n_settings; k++)
            if (strcmp(st->settings[k].key, pr[i].key) == 0) in_stmt = 1;
        if (in_stmt) continue;
        kv[j].key = pr[i].key;
        kv[j].value = pr[i].value;
        if (j == nkv) nkv++;
    }
    for (size_t k = 0; k < st->n_settings; k++)
        kv[nkv++] = st->settings[k];

    proxy_body_t rows;
    int rc = proxy_format_split(st->format, kv, nkv, rows_in, rows_len, rows_cap, &rows);
    if (rc == PROXY_FMT_UNBUFFERED) {
        st->unbuffered = "VALUES with {name:Type} parameters";
        in->result = PROXY_INS_PASS;
        return;
    }
    if (rc == -EINVAL) {
        if (st->format->kind == PROXY_FMT_JSON_OBJ)
            fail(in, 400, 26, "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
                 "Cannot parse JSON object at row %llu: %s", (unsigned long long)rows.bad_row,
                 rows.err);
        else
            fail(in, 400, 27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
                 "Cannot parse %s input at row %llu: %s", st->format->name,
                 (unsigned long long)rows.bad_row, rows.err);
        return;
    }
    if (rc) {
        fail_oom(in);
        return;
    }
    if (rows.n_rows == 0) {
        proxy_body_free(&rows);
        in->result = PROXY_INS_EMPTY;
        return;
    }
    const char *db = st->db;
    if (!db) db = proxy_param_get(pr, npr, "database");
    if (!db) db = http_req_header(in->req, "X-ClickHouse-Database");
    if (!db) db = "";
    wal_insert_t ins = {
        .db = db,
        .table = st->table,
        .columns = st->columns,
        .settings = kv,
        .n_settings = nkv,
        .rows = rows.data,
        .rows_len = rows.len,
        .n_rows = rows.n_rows,
        .ts_ms = 0,
        .fmt = st->format->name,
        .hdr = rows.hdr,
        .hdr_len = rows.hdr_len,
        .whole = rows.whole,
    };
    in->result = PROXY_INS_APPENDED;
    *in->n_rows_out = rows.n_rows;
    *in->bytes_out = rows.len;
    /* wal_append copies everything it needs before returning and calls done exactly once,
     * also when it refuses the append synchronously (then on this thread, which only
     * queues). The 200 is sent only from that completion, i.e. after the commit. */
    (void)wal_append(in->w, &ins, in->done, in->done_ctx);
    proxy_body_free(&rows);
}

void proxy_insert_run(proxy_ins_t *in)
{
    http_req_t *r = in->req;
    proxy_stmt_t *st = in->st;
    const proxy_param_t *pr = in->pr;
    size_t npr = in->npr;
    char *decoded = in->decoded, *joined = NULL;
    size_t dlen = in->decoded_len;
    in->decoded = NULL;
    in->result = PROXY_INS_PASS;
    const char *q = proxy_param_get(pr, npr, "query");
    size_t qlen = q ? strlen(q) : 0;
    int rc = PROXY_STMT_OTHER;
    char *rows = NULL;
    size_t rows_len = 0, rows_cap = 0;
    int need_join = 0;
    if (qlen) {
        rc = proxy_stmt_parse(q, qlen, st);
        if (rc == PROXY_STMT_OTHER) goto out; /* PASS */
        if (rc == PROXY_STMT_ESYNTAX) goto syntax;
        need_join =
            rc == PROXY_STMT_INCOMPLETE || !is_ws_only(q + st->data_off, qlen - st->data_off);
    }
    /* The body: decoded when compressed (passthrough forwards the raw bytes). */
    char *body = r->body;
    size_t blen = r->body_len, bcap = r->body_cap;
    const char *enc = http_req_header(r, "Content-Encoding");
    if (decoded) {
        body = decoded;
        blen = bcap = dlen;
    } else if (enc && *enc && strcasecmp(enc, "identity") != 0) {
        char err[160];
        int drc = proxy_decode(enc, r->body ? r->body : "", r->body_len, in->max_body_bytes,
                               &decoded, &dlen, err, sizeof err);
        if (drc == PROXY_DECODE_EUNSUPPORTED) {
            fail(in, 415, 48, "NOT_IMPLEMENTED", "sluice: %s", err);
            goto out;
        }
        if (drc == PROXY_DECODE_ETOOBIG) {
            fail(in, 413, 36, "BAD_ARGUMENTS", "sluice: %s", err);
            goto out;
        }
        if (drc) {
            fail(in, 400, 354, "ZLIB_INFLATE_FAILED",
                 "sluice: cannot decode the %s request body: %s", enc, err);
            goto out;
        }
        body = decoded;
        blen = bcap = dlen;
    }
    if (!body) body = "";
    if (qlen && !need_join) {
        rows = body;
        rows_len = blen;
        rows_cap = bcap;
    } else {
        const char *text = body;
        size_t tlen = blen;
        if (qlen) {
            /* ClickHouse reads the query parameter, a '\n', then the body as one text. */
            joined = malloc(qlen + 1 + blen + 1);
            if (!joined) {
                fail_oom(in);
                goto out;
            }
            memcpy(joined, q, qlen);
            joined[qlen] = '\n';
            memcpy(joined + qlen + 1, body, blen);
            text = joined;
            tlen = qlen + 1 + blen;
        }
        rc = proxy_stmt_parse(text, tlen, st);
        if (rc == PROXY_STMT_OTHER || (rc == PROXY_STMT_INCOMPLETE && !st->err[0]))
            goto out; /* PASS */
        if (rc != PROXY_STMT_INSERT) goto syntax;
        rows = (char *)text + st->data_off;
        rows_len = tlen - st->data_off;
        rows_cap = joined ? rows_len + 1 : (text == r->body ? bcap - st->data_off : rows_len);
    }
    /* rows_cap is how far the format splitter may write in place past rows_len: the
     * request body keeps one spare byte (body_cap > body_len, http_server.h), the joined
     * text was allocated with one, a decoded body has none beyond its length. */
    append_rows(in, rows, rows_len, rows_cap);
    goto out;
syntax:
    fail(in, 400, 62, "SYNTAX_ERROR", "Syntax error: %s",
         st->err[0] ? st->err : "bad INSERT statement");
out:
    free(joined);
    free(decoded);
}

/* ---------------------------------------------------------------- on the thread pool */

struct proxy_ins_job {
    uv_work_t work;
    proxy_ins_t in;
    proxy_ins_done_fn done;
    void *ctx;
    proxy_ins_job_t **list;
    proxy_ins_job_t *prev, *next; /* *list (loop) */
    char *pstore;                 /* the strings pr points to */
    atomic_int aborted; /* set on the loop when the connection closes: skip the work */
    atomic_int returned; /* set by the pool thread when the work function returned */
    int skipped;        /* pool thread, read in job_done: aborted before it started */
    proxy_param_t pr[PROXY_MAX_PARAMS];
    proxy_stmt_t stmt;
};

static void job_work(uv_work_t *w)
{
    proxy_ins_job_t *j = w->data;
    /* Below the loop in the scheduler's eyes: on a small machine the loop, the WAL writer
     * and this compete for the same cores, and a large body must not be what delays the
     * small requests. Per thread on Linux; pool threads stay niced (they only run
     * background work: these jobs, DLQ operations, the shutdown drain). */
    static __thread int niced;
    if (!niced) {
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10);
        niced = 1;
    }
    if (atomic_load(&j->aborted))
        j->skipped = 1; /* the client is gone: nothing to answer, nothing worth logging */
    else
        proxy_insert_run(&j->in);
    if (j->skipped || j->in.result != PROXY_INS_PASS) {
        /* The loop does not look at the body while the job runs, and the job's ref keeps the
         * request; a passthrough still needs it. */
        http_req_body_free(j->in.req);
    }
    atomic_store(&j->returned, 1);
}

static void job_abort(http_req_t *r)
{
    proxy_ins_job_t *j = r->data;
    atomic_store(&j->aborted, 1);
}

static void job_done(uv_work_t *w, int status)
{
    proxy_ins_job_t *j = w->data;
    http_req_t *r = j->in.req;
    if (j->prev)
        j->prev->next = j->next;
    else
        *j->list = j->next;
    if (j->next) j->next->prev = j->prev;
    r->on_abort = NULL;
    r->data = NULL;
    j->done(&j->in, status == UV_ECANCELED || j->skipped, j->ctx);
    http_req_unref(r);
    free(j->pstore);
    free(j);
}

int proxy_insert_queue(uv_loop_t *loop, const proxy_ins_t *in, char **pstore,
                       proxy_ins_done_fn done, void *ctx, proxy_ins_job_t **list)
{
    if (http_req_own_body(in->req)) return -ENOMEM; /* the job reads it after on_request */
    proxy_ins_job_t *j = malloc(sizeof *j);
    if (!j) return -ENOMEM;
    memset(j, 0, offsetof(proxy_ins_job_t, pr));
    memcpy(j->pr, in->pr, in->npr * sizeof *in->pr);
    j->in = *in;
    j->in.pr = j->pr;
    j->in.st = &j->stmt;
    j->done = done;
    j->ctx = ctx;
    j->list = list;
    j->work.data = j;
    if (uv_queue_work(loop, &j->work, job_work, job_done) != 0) {
        free(j);
        return -ENOMEM;
    }
    j->pstore = *pstore;
    *pstore = NULL;
    http_req_t *r = in->req;
    http_req_ref(r); /* the job's: r->data and on_abort are reset in job_done */
    r->data = j;
    r->on_abort = job_abort;
    j->next = *list;
    if (*list) (*list)->prev = j;
    *list = j;
    return 0;
}

void proxy_insert_cancel_all(proxy_ins_job_t *list)
{
    for (proxy_ins_job_t *j = list; j; j = j->next)
        if (uv_cancel((uv_req_t *)&j->work) != 0) /* running or finished: not cancellable */
            while (!atomic_load(&j->returned))
                uv_sleep(1);
}
