/* test_proxy_offloop.c — INSERTs with a large body run on libuv's thread pool, not on the
 * proxy's loop: a real proxy (proxy_start on a loop this thread runs) and WAL, clients on
 * their own threads with blocking sockets. The pool has one thread (UV_THREADPOOL_SIZE=1)
 * which a test can hold with a blocker job: a large INSERT queued behind it cannot finish,
 * so what else completes meanwhile was served by the loop alone — order, never timing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cmocka.h>

#include "tests/unit/test_proxy_net.h"

#include "config/config.h"
#include "proxy/proxy.h"
#include "wal/wal.h"

#define ROW                                                                                        \
    "{\"id\":\"0192ced0-947e-74b3-a3d7-02fd2c54d637\",\"function_name\":\"draft_email\","     \
    "\"variant_name\":\"gpt4o_mini_v2\",\"input\":\"{\\\"messages\\\":[]}\",\"n\":412}"

/* ---------------------------------------------------------------- fixture */

typedef struct {
    char dir[64];
    uv_loop_t loop;
    uv_timer_t tick; /* wakes uv_run so conditions set by client threads are seen */
    sluice_cfg_t cfg;
    wal_t *w;
    proxy_t *p;
    int port;
    int drained;
} fx_t;

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/sluice-test-offloop-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->port = test_free_port();
    char yaml[512], err[512];
    snprintf(yaml, sizeof yaml,
             "wal:\n  dir: %s\n  sync: none\nproxy:\n  listen: 127.0.0.1:%d\n"
             "  max_body_bytes: 4MiB\n  passthrough_url: http://127.0.0.1:1\n"
             "  read_barrier_ms: 0\n",
             f->dir, f->port);
    int rc = cfg_load_string(&f->cfg, yaml, "test", err, sizeof err);
    if (rc) fprintf(stderr, "cfg: %s\n", err);
    assert_int_equal(rc, 0);
    rc = wal_open(&f->w, &f->cfg.wal, err, sizeof err);
    if (rc) fprintf(stderr, "wal_open: %s\n", err);
    assert_int_equal(rc, 0);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, test_tick, 1, 1);
    rc = proxy_start(&f->p, &f->loop, &f->cfg, f->w, NULL, err, sizeof err);
    if (rc) fprintf(stderr, "proxy_start: %s\n", err);
    assert_int_equal(rc, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    if (f->p) proxy_free(f->p);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 20 && uv_run(&f->loop, UV_RUN_NOWAIT); i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    wal_close(f->w);
    cfg_free(&f->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

/* Run the loop until cond(arg) holds; fail after 30 s (a deadline, not a measurement). */
static void pump_until(fx_t *f, int (*cond)(fx_t *f, void *arg), void *arg, const char *what)
{
    uint64_t deadline = time_mono_ms() + 30000;
    while (!cond(f, arg)) {
        if (time_mono_ms() > deadline) fail_msg("timed out waiting for %s", what);
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

/* Give the loop n turns (the 1 ms tick wakes it): room for something that must not happen
 * to happen, before asserting that it did not. */
static void pump_turns(fx_t *f, int n)
{
    for (int i = 0; i < n; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
}

static proxy_stats_t stats(fx_t *f)
{
    proxy_stats_t st;
    proxy_get_stats(f->p, &st);
    return st;
}

/* ---------------------------------------------------------------- the pool blocker */

typedef struct {
    uv_work_t work;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int released, done;
    atomic_int running;
} blocker_t;

static void blocker_work(uv_work_t *w)
{
    blocker_t *b = w->data;
    atomic_store(&b->running, 1);
    pthread_mutex_lock(&b->mu);
    while (!b->released)
        pthread_cond_wait(&b->cv, &b->mu);
    pthread_mutex_unlock(&b->mu);
}

static void blocker_done(uv_work_t *w, int status)
{
    blocker_t *b = w->data;
    (void)status;
    b->done = 1;
}

static int blocker_running(fx_t *f, void *arg)
{
    (void)f;
    return atomic_load(&((blocker_t *)arg)->running);
}

/* Occupy the pool's only thread until blocker_release. */
static void blocker_hold(fx_t *f, blocker_t *b)
{
    memset(b, 0, sizeof *b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    b->work.data = b;
    assert_int_equal(uv_queue_work(&f->loop, &b->work, blocker_work, blocker_done), 0);
    pump_until(f, blocker_running, b, "the blocker to hold the pool thread");
}

static void blocker_release(blocker_t *b)
{
    pthread_mutex_lock(&b->mu);
    b->released = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

/* ---------------------------------------------------------------- clients */

typedef struct {
    int port;
    char *req; /* whole request */
    size_t req_len;
    int reset_after_send; /* close with RST once go_close is set, without reading */
    atomic_int go_close;
    pthread_t th;
    /* result */
    int status;
    char resp[4096];
    atomic_int done;
    int order; /* 1 + the number of clients done before this one */
} client_t;

static atomic_int g_done_order;

typedef struct {
    char *p; /* malloc'd */
    size_t len;
} req_t;

static req_t build_req(const char *method, const char *target, const char *extra_hdrs,
                       const char *body, size_t blen)
{
    size_t cap = blen + 1024;
    req_t r = {malloc(cap), 0};
    int n = snprintf(r.p, cap, "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n",
                     method, target, extra_hdrs ? extra_hdrs : "", blen);
    memcpy(r.p + n, body, blen);
    r.len = (size_t)n + blen;
    return r;
}

static void *client_main(void *arg)
{
    client_t *c = arg;
    int s = test_connect(c->port);
    if (s < 0) goto out;
    for (size_t off = 0; off < c->req_len;) {
        ssize_t n = send(s, c->req + off, c->req_len - off, MSG_NOSIGNAL);
        if (n <= 0) goto out;
        off += (size_t)n;
    }
    if (c->reset_after_send) {
        while (!atomic_load(&c->go_close))
            usleep(1000);
        struct linger l = {1, 0}; /* RST: the server sees the connection fail, not EOF */
        setsockopt(s, SOL_SOCKET, SO_LINGER, &l, sizeof l);
        goto out;
    }
    size_t got = 0;
    for (;;) {
        ssize_t n = recv(s, c->resp + got, sizeof c->resp - 1 - got, 0);
        if (n <= 0) break;
        got += (size_t)n;
        c->resp[got] = '\0';
        const char *end = strstr(c->resp, "\r\n\r\n");
        const char *cl = strcasestr(c->resp, "Content-Length: ");
        if (end && cl && got >= (size_t)(end + 4 - c->resp) + (size_t)atol(cl + 16)) break;
    }
    sscanf(c->resp, "HTTP/1.1 %d", &c->status);
out:
    if (s >= 0) close(s);
    c->order = atomic_fetch_add(&g_done_order, 1) + 1;
    atomic_store(&c->done, 1);
    return NULL;
}

static void client_start_opt(client_t *c, int port, req_t req, int reset)
{
    memset(c, 0, sizeof *c);
    c->port = port;
    c->req = req.p;
    c->req_len = req.len;
    c->reset_after_send = reset;
    assert_int_equal(pthread_create(&c->th, NULL, client_main, c), 0);
}

static void client_start(client_t *c, int port, req_t req)
{
    client_start_opt(c, port, req, 0);
}

static void client_join(client_t *c)
{
    pthread_join(c->th, NULL);
    free(c->req);
}

static int client_done(fx_t *f, void *arg)
{
    (void)f;
    return atomic_load(&((client_t *)arg)->done);
}

static int offloop_queued(fx_t *f, void *arg)
{
    return stats(f).inserts_offloop >= (uint64_t)(uintptr_t)arg;
}

static int no_connections(fx_t *f, void *arg)
{
    (void)arg;
    return stats(f).connections_open == 0;
}

static int jobs_done(fx_t *f, void *arg)
{
    (void)arg;
    return stats(f).offloop_in_flight == 0;
}

static int drained(fx_t *f, void *arg)
{
    (void)arg;
    return f->drained;
}

static void on_drained(void *ctx)
{
    ((fx_t *)ctx)->drained = 1;
}

/* n rows of ROW, one per line: above PROXY_OFFLOOP_BYTES from ~700 rows on. */
static char *rows_body(int n, size_t *len)
{
    size_t rl = strlen(ROW);
    char *b = malloc((rl + 1) * (size_t)n + 1);
    for (int i = 0; i < n; i++) {
        memcpy(b + (rl + 1) * (size_t)i, ROW, rl);
        b[(rl + 1) * (size_t)i + rl] = '\n';
    }
    *len = (rl + 1) * (size_t)n;
    return b;
}

static char *gzip(const char *in, size_t len, size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&z, len);
    char *out = malloc(cap);
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)len;
    z.next_out = (Bytef *)out;
    z.avail_out = (uInt)cap;
    assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
    *out_len = z.total_out;
    deflateEnd(&z);
    return out;
}

static req_t insert_req(const char *table, const char *body, size_t blen, const char *hdrs)
{
    char target[256];
    snprintf(target, sizeof target,
             "/?database=db&query=INSERT%%20INTO%%20%s%%20FORMAT%%20JSONEachRow", table);
    return build_req("POST", target, hdrs, body, blen);
}

/* The tables of the WAL's records in seq order, joined with ',' (a table's consecutive
 * records, one request cut into several, once). */
static void wal_tables(fx_t *f, char *out, size_t cap)
{
    wal_batch_t b;
    assert_int_equal(wal_read(f->w, 0, 1000, 64u << 20, &b), 0);
    out[0] = '\0';
    for (size_t i = 0; i < b.n; i++) {
        if (i && strcmp(b.recs[i].table, b.recs[i - 1].table) == 0) continue;
        snprintf(out + strlen(out), cap - strlen(out), "%s%s", i ? "," : "", b.recs[i].table);
    }
    wal_batch_free(&b);
}

static uint32_t wal_rows_of(fx_t *f, const char *table)
{
    wal_batch_t b;
    assert_int_equal(wal_read(f->w, 0, 1000, 64u << 20, &b), 0);
    uint32_t n = 0;
    for (size_t i = 0; i < b.n; i++)
        if (strcmp(b.recs[i].table, table) == 0) n += b.recs[i].n_rows;
    wal_batch_free(&b);
    return n;
}

/* ---------------------------------------------------------------- tests */

/* While a large INSERT (plain, and gzip'd so only its decoded size is large) waits for the
 * pool, /ping, a small INSERT and a small gzip'd INSERT are answered and logged: the loop
 * never ran the large ones. Released, the large ones are answered 200 with all their rows. */
static void test_large_insert_waits_on_pool_while_small_ones_complete(void **state)
{
    fx_t *f = *state;
    blocker_t blk;
    blocker_hold(f, &blk);

    size_t blen, glen;
    char *big = rows_body(2000, &blen); /* ~200 KiB */
    char *gz = gzip(big, blen, &glen);  /* a few KiB that decode to ~200 KiB */
    assert_true(glen < (64u << 10));
    client_t large, large_gz, ping, small, small_gz;
    client_start(&large, f->port, insert_req("large", big, blen, NULL));
    pump_until(f, offloop_queued, (void *)(uintptr_t)1, "the large INSERT to be queued");
    client_start(&large_gz, f->port,
                 insert_req("large_gz", gz, glen, "Content-Encoding: gzip\r\n"));
    pump_until(f, offloop_queued, (void *)(uintptr_t)2, "the gzip'd large INSERT to be queued");

    client_start(&ping, f->port, build_req("GET", "/ping", NULL, "", 0));
    pump_until(f, client_done, &ping, "/ping");
    size_t rl;
    char *row = rows_body(1, &rl);
    client_start(&small, f->port, insert_req("small", row, rl, NULL));
    pump_until(f, client_done, &small, "the small INSERT");
    size_t sgl;
    char *sgz = gzip(row, rl, &sgl);
    client_start(&small_gz, f->port,
                 insert_req("small_gz", sgz, sgl, "Content-Encoding: gzip\r\n"));
    pump_until(f, client_done, &small_gz, "the small gzip'd INSERT");

    assert_int_equal(ping.status, 200);
    assert_non_null(strstr(ping.resp, "\r\n\r\nOk.\n"));
    assert_int_equal(small.status, 200);
    assert_non_null(strstr(small.resp, "\"written_rows\":\"1\""));
    assert_int_equal(small_gz.status, 200);
    assert_false(atomic_load(&large.done));
    assert_false(atomic_load(&large_gz.done));
    assert_int_equal(stats(f).offloop_in_flight, 2);
    char tables[256];
    wal_tables(f, tables, sizeof tables);
    assert_string_equal(tables, "small,small_gz"); /* committed before the large ones */

    blocker_release(&blk);
    pump_until(f, client_done, &large, "the large INSERT");
    pump_until(f, client_done, &large_gz, "the gzip'd large INSERT");
    assert_int_equal(large.status, 200);
    assert_non_null(strstr(large.resp, "\"written_rows\":\"2000\""));
    assert_int_equal(large_gz.status, 200);
    assert_non_null(strstr(large_gz.resp, "\"written_rows\":\"2000\""));
    assert_true(large.order > small_gz.order && large_gz.order > small_gz.order);
    assert_int_equal(wal_rows_of(f, "large"), 2000);
    assert_int_equal(wal_rows_of(f, "large_gz"), 2000);
    assert_int_equal(wal_rows_of(f, "small"), 1);
    pump_until(f, jobs_done, NULL, "the jobs to end");
    assert_int_equal(stats(f).inserts_offloop, 2);

    client_t *all[] = {&large, &large_gz, &ping, &small, &small_gz};
    for (size_t i = 0; i < 5; i++)
        client_join(all[i]);
    free(big);
    free(gz);
    free(row);
    free(sgz);
    while (!blk.done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* Off the loop, the answers are the ones the loop gives: a bad row, a body that decodes past
 * proxy.max_body_bytes, a syntax error in the body's statement. */
static void test_large_insert_errors_answered_as_on_the_loop(void **state)
{
    fx_t *f = *state;
    size_t blen, glen;
    char *big = rows_body(2000, &blen);
    big[blen - 3] = ','; /* row 2000 ends in "412,}" */
    client_t bad;
    client_start(&bad, f->port, insert_req("t", big, blen, NULL));
    pump_until(f, client_done, &bad, "the bad large INSERT");
    assert_int_equal(bad.status, 400);
    assert_non_null(strstr(bad.resp, "X-ClickHouse-Exception-Code: 26"));
    assert_non_null(strstr(bad.resp, "Code: 26. DB::Exception: Cannot parse JSON object at row "
                                     "2000: "));
    client_join(&bad);
    free(big);

    big = rows_body(12000, &blen); /* ~1.2 MiB, 5 MiB gzip'd 4x over max_body_bytes (4 MiB) */
    char *four = malloc(blen * 4);
    for (int i = 0; i < 4; i++)
        memcpy(four + blen * (size_t)i, big, blen);
    char *gz = gzip(four, blen * 4, &glen);
    client_t toobig;
    client_start(&toobig, f->port,
                 insert_req("t", gz, glen, "Content-Encoding: gzip\r\n"));
    pump_until(f, client_done, &toobig, "the too large gzip'd INSERT");
    assert_int_equal(toobig.status, 413);
    assert_non_null(strstr(toobig.resp, "Code: 36. DB::Exception: sluice: decompressed body is "
                                        "larger than proxy.max_body_bytes. (BAD_ARGUMENTS)"));
    client_join(&toobig);
    free(four);
    free(gz);

    /* The statement at the head of a large body: INSERT INTO with no table. */
    size_t sl = strlen("INSERT INTO FORMAT JSONEachRow\n");
    char *body = malloc(sl + blen);
    memcpy(body, "INSERT INTO FORMAT JSONEachRow\n", sl);
    memcpy(body + sl, big, blen);
    client_t syn;
    client_start(&syn, f->port, build_req("POST", "/", NULL, body, sl + blen));
    pump_until(f, client_done, &syn, "the large INSERT with a bad statement");
    assert_int_equal(syn.status, 400);
    assert_non_null(strstr(syn.resp, "Code: 62. DB::Exception: Syntax error: missing table name "
                                     "after INSERT INTO. (SYNTAX_ERROR)"));
    client_join(&syn);
    free(body);
    free(big);
    assert_int_equal(stats(f).inserts_offloop, 3);
    pump_until(f, jobs_done, NULL, "the jobs to end");
    assert_int_equal(wal_last_seq(f->w), 0);
}

/* The client resets the connection while its large INSERT waits for the pool: nothing is
 * answered or logged, nothing leaks (ASan), the graceful drain waits for the job and the
 * proxy keeps serving until then. */
static void test_connection_closed_while_large_insert_waits(void **state)
{
    fx_t *f = *state;
    blocker_t blk;
    blocker_hold(f, &blk);
    size_t blen;
    char *big = rows_body(2000, &blen);
    client_t gone;
    client_start_opt(&gone, f->port, insert_req("gone", big, blen, NULL), 1);
    pump_until(f, offloop_queued, (void *)(uintptr_t)1, "the large INSERT to be queued");
    atomic_store(&gone.go_close, 1);
    pump_until(f, client_done, &gone, "the client to reset");
    pump_until(f, no_connections, NULL, "the proxy to see the reset");

    client_t ping;
    client_start(&ping, f->port, build_req("GET", "/ping", NULL, "", 0));
    pump_until(f, client_done, &ping, "/ping");
    assert_int_equal(ping.status, 200);

    proxy_shutdown(f->p, on_drained, f);
    pump_turns(f, 50);
    assert_false(f->drained); /* the job still holds the drain */
    assert_int_equal(stats(f).offloop_in_flight, 1);

    blocker_release(&blk);
    pump_until(f, drained, NULL, "the drain");
    assert_int_equal(stats(f).offloop_in_flight, 0);
    assert_int_equal(wal_last_seq(f->w), 0); /* skipped: nobody was left to answer */
    client_join(&gone);
    client_join(&ping);
    free(big);
    while (!blk.done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

/* SIGTERM's drain (proxy_shutdown) with a large INSERT on the pool: the client gets its 200
 * and the rows are in the WAL before the drain completes. */
static void test_drain_waits_for_large_insert(void **state)
{
    fx_t *f = *state;
    blocker_t blk;
    blocker_hold(f, &blk);
    size_t blen;
    char *big = rows_body(2000, &blen);
    client_t c;
    client_start(&c, f->port, insert_req("t", big, blen, NULL));
    pump_until(f, offloop_queued, (void *)(uintptr_t)1, "the large INSERT to be queued");
    proxy_shutdown(f->p, on_drained, f);
    pump_turns(f, 50);
    assert_false(f->drained);
    assert_false(atomic_load(&c.done));
    blocker_release(&blk);
    pump_until(f, drained, NULL, "the drain");
    pump_until(f, client_done, &c, "the large INSERT's answer");
    assert_int_equal(c.status, 200);
    assert_non_null(strstr(c.resp, "Connection: Close"));
    assert_int_equal(wal_rows_of(f, "t"), 2000);
    client_join(&c);
    free(big);
    while (!blk.done)
        uv_run(&f->loop, UV_RUN_ONCE);
}

int main(void)
{
    /* One pool thread, so a blocker job holds the whole pool (read once, at the pool's start). */
    setenv("UV_THREADPOOL_SIZE", "1", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_insert_waits_on_pool_while_small_ones_complete,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_insert_errors_answered_as_on_the_loop, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_connection_closed_while_large_insert_waits, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_drain_waits_for_large_insert, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
