/* test_proxy_server.c — the HTTP connection engine (http.c) on a real loop and socket: an
 * answer is first offered to the socket directly (uv_try_write) and what the kernel does not
 * take is queued, so a client that reads slowly still gets every byte in order; a borrowed
 * body (read in one piece) of a request kept past on_request is copied before the shared
 * read buffer is read into again. */
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

#include <cmocka.h>

#include "tests/unit/test_proxy_net.h"

#include "proxy/http_server.h"

#define BIG (8u << 20) /* far past any socket buffer: the answer cannot go out at once */

typedef struct {
    uv_loop_t loop;
    uv_timer_t tick;
    http_server_t *srv;
    int port;
    char *answer;
    http_req_t *kept; /* the second test's request, answered later */
} fx_t;

static void on_request(http_req_t *r, void *ctx)
{
    fx_t *f = ctx;
    if (r->path_len == 4 && memcmp(r->path, "/big", 4) == 0) {
        http_respond(r, 200, "Content-Type: application/octet-stream\r\n", f->answer, BIG);
    } else if (r->path_len == 5 && memcmp(r->path, "/keep", 5) == 0) {
        /* Kept past on_request without http_req_own_body: the server must copy the body. */
        http_req_ref(r);
        f->kept = r;
    } else {
        if (f->kept) {
            http_respond(f->kept, 200, NULL, f->kept->body, f->kept->body_len);
            http_req_unref(f->kept);
            f->kept = NULL;
        }
        http_respond(r, 200, NULL, r->body ? r->body : "", r->body_len);
    }
}

static int setup(void **state)
{
    fx_t *f = calloc(1, sizeof *f);
    f->answer = malloc(BIG);
    for (size_t i = 0; i < BIG; i++)
        f->answer[i] = (char)('a' + (i * 7 + i / 4096) % 26);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->tick);
    uv_timer_start(&f->tick, test_tick, 1, 1);
    f->port = test_free_port();
    char listen[64], err[256];
    snprintf(listen, sizeof listen, "127.0.0.1:%d", f->port);
    http_server_opts_t o = {.listen = listen,
                            .max_header_bytes = 65536,
                            .max_body_bytes = 1 << 20,
                            .on_request = on_request,
                            .borrow_bodies = 1,
                            .ctx = f};
    assert_int_equal(http_server_start(&f->srv, &f->loop, &o, err, sizeof err), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx_t *f = *state;
    http_server_free(f->srv);
    uv_close((uv_handle_t *)&f->tick, NULL);
    for (int i = 0; i < 20 && uv_run(&f->loop, UV_RUN_NOWAIT); i++) {
    }
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f->answer);
    free(f);
    return 0;
}

typedef struct {
    int port;
    const char *req;
    size_t req_len;
    int slow;      /* wait before reading: the server's first write cannot take it all */
    int half_close; /* shutdown(SHUT_WR) right after the request */
    char *resp;
    size_t got, cap;
    atomic_int done;
    atomic_int go;
} client_t;

static void *client_main(void *arg)
{
    client_t *c = arg;
    int s = test_connect(c->port);
    if (s >= 0 && send(s, c->req, c->req_len, MSG_NOSIGNAL) == (ssize_t)c->req_len) {
        if (c->half_close) shutdown(s, SHUT_WR);
        while (c->slow && !atomic_load(&c->go))
            usleep(1000);
        for (;;) {
            if (c->got == c->cap) break;
            ssize_t n = recv(s, c->resp + c->got, c->cap - c->got, 0);
            if (n <= 0) break;
            c->got += (size_t)n;
        }
    }
    if (s >= 0) close(s);
    atomic_store(&c->done, 1);
    return NULL;
}

static void pump_until_done(fx_t *f, client_t *c)
{
    uint64_t deadline = time_mono_ms() + 30000;
    while (!atomic_load(&c->done)) {
        if (time_mono_ms() > deadline) fail_msg("timed out waiting for the client");
        uv_run(&f->loop, UV_RUN_ONCE);
    }
}

/* 8 MiB answered to a client that is not reading yet: part goes out at once, the rest is
 * queued, and the client reads all of it, intact and in order. */
static void large_answer_to_slow_reader(fx_t *f, int half_close)
{
    /* Half-closing, it asks for keep-alive: its EOF is what ends the connection. */
    const char *req = half_close ? "GET /big HTTP/1.1\r\nHost: x\r\n\r\n"
                                 : "GET /big HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    client_t c = {.port = f->port,
                  .req = req,
                  .req_len = strlen(req),
                  .slow = 1,
                  .half_close = half_close};
    c.cap = BIG + 4096;
    c.resp = malloc(c.cap);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, client_main, &c), 0);
    /* Answered while the client does not read: the socket takes what fits, no more. */
    http_server_stats_t st = {0};
    uint64_t deadline = time_mono_ms() + 30000;
    while (st.requests == 0 && time_mono_ms() < deadline) {
        uv_run(&f->loop, UV_RUN_ONCE);
        http_server_stats(f->srv, &st);
    }
    assert_int_equal(st.requests, 1);
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    atomic_store(&c.go, 1);
    pump_until_done(f, &c);
    pthread_join(th, NULL);
    const char *end = memmem(c.resp, c.got, "\r\n\r\n", 4);
    assert_non_null(end);
    assert_non_null(memmem(c.resp, (size_t)(end - c.resp), "Content-Length: 8388608", 23));
    size_t head = (size_t)(end + 4 - c.resp);
    assert_int_equal(c.got - head, BIG);
    assert_memory_equal(c.resp + head, f->answer, BIG);
    free(c.resp);
}

static void test_large_answer_to_slow_reader_arrives_whole(void **state)
{
    large_answer_to_slow_reader(*state, 0);
}

/* The same from a client that half-closes after its request (its EOF arrives while the
 * answer is still queued): the rest of the answer is written before the connection closes. */
static void test_large_answer_survives_client_half_close(void **state)
{
    large_answer_to_slow_reader(*state, 1);
}

static int kept(fx_t *f)
{
    return f->kept != NULL;
}

/* A request kept past on_request holds its body, though the read buffer it arrived in is
 * filled by another connection's request next; both bodies come back as sent. */
static void test_kept_body_survives_next_read(void **state)
{
    fx_t *f = *state;
    const char ra[] = "POST /keep HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 5\r\n\r\nfirst";
    const char rb[] = "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                      "Content-Length: 6\r\n\r\nsecond";
    client_t a = {.port = f->port, .req = ra, .req_len = sizeof ra - 1, .cap = 4096};
    client_t b = {.port = f->port, .req = rb, .req_len = sizeof rb - 1, .cap = 4096};
    a.resp = calloc(1, a.cap + 1);
    b.resp = calloc(1, b.cap + 1);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, client_main, &a), 0);
    uint64_t deadline = time_mono_ms() + 30000;
    while (!kept(f) && time_mono_ms() < deadline)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_true(kept(f));
    assert_false(f->kept->body_borrowed);
    assert_int_equal(pthread_create(&tb, NULL, client_main, &b), 0);
    pump_until_done(f, &b);
    pump_until_done(f, &a);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_non_null(strstr(a.resp, "\r\n\r\nfirst"));
    assert_non_null(strstr(b.resp, "\r\n\r\nsecond"));
    free(a.resp);
    free(b.resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_large_answer_to_slow_reader_arrives_whole, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_large_answer_survives_client_half_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_kept_body_survives_next_read, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
