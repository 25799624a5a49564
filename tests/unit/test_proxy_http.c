/* test_proxy_http.c — the HTTP request parser behind the proxy (http_rp_*): framing,
 * chunked bodies, limits, request smuggling guards, pipelining, byte-at-a-time input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proxy/http_server.h"

typedef struct {
    http_req_t *reqs[8];
    int n;
    int status;
} result_t;

/* Feed in steps of `step` bytes (0 = all at once), collecting requests. */
static void feed(const char *in, size_t len, size_t step, size_t max_hdr, uint64_t max_body,
                 result_t *res)
{
    http_rp_t rp;
    http_rp_init(&rp, NULL, max_hdr, max_body);
    memset(res, 0, sizeof *res);
    size_t off = 0;
    while (off < len && !rp.status) {
        size_t n = step ? (len - off < step ? len - off : step) : len - off;
        size_t used = http_rp_feed(&rp, in + off, n);
        off += used;
        if (rp.complete) {
            if (res->n < 8)
                res->reqs[res->n++] = http_rp_take(&rp);
            else
                http_req_unref(http_rp_take(&rp));
        } else if (used < n && !rp.status) {
            fail_msg("parser stopped without a reason");
        }
    }
    res->status = rp.status;
    http_rp_free(&rp);
}

static void release(result_t *r)
{
    for (int i = 0; i < r->n; i++)
        http_req_unref(r->reqs[i]);
}

static void test_http_simple_and_pipelined_any_split(void **state)
{
    (void)state;
    const char in[] = "POST /?query=SELECT%201&database=db HTTP/1.1\r\nHost: x\r\n"
                      "X-ClickHouse-User: u\r\nContent-Length: 5\r\n\r\nhello"
                      "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer-X: 1\r\n\r\n";
    size_t steps[] = {0, 1, 2, 7, 64};
    for (size_t s = 0; s < sizeof steps / sizeof *steps; s++) {
        result_t r;
        feed(in, sizeof in - 1, steps[s], 65536, 1 << 20, &r);
        assert_int_equal(r.status, 0);
        assert_int_equal(r.n, 3);
        http_req_t *a = r.reqs[0];
        assert_int_equal(a->method, HTTP_POST);
        assert_int_equal(a->path_len, 1);
        assert_memory_equal(a->query, "query=SELECT%201&database=db", a->query_len);
        assert_string_equal(http_req_header(a, "x-clickhouse-user"), "u");
        assert_int_equal(a->body_len, 5);
        assert_memory_equal(a->body, "hello", 5);
        assert_true(a->body_cap > a->body_len);
        assert_true(a->keep_alive);
        assert_int_equal(r.reqs[1]->method, HTTP_GET);
        assert_null(r.reqs[1]->query);
        assert_int_equal(r.reqs[2]->body_len, 5);
        assert_memory_equal(r.reqs[2]->body, "abcde", 5);
        assert_null(http_req_header(r.reqs[2], "Trailer-X")); /* trailers are not headers */
        release(&r);
    }
}

static void expect_status(const char *in, int status, size_t max_hdr, uint64_t max_body)
{
    result_t r;
    feed(in, strlen(in), 0, max_hdr, max_body, &r);
    assert_int_equal(r.status, status);
    release(&r);
    feed(in, strlen(in), 1, max_hdr, max_body, &r);
    assert_int_equal(r.status, status);
    release(&r);
}

static void test_http_smuggling_and_framing_errors(void **state)
{
    (void)state;
    expect_status("POST / HTTP/1.1\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "0\r\n\r\n",
                  400, 65536, 1 << 20);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}", 400, 65536,
                  1 << 20);
    expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501, 65536, 1 << 20);
    expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400, 65536,
                  1 << 20);
    expect_status("GARBAGE\r\n\r\n", 400, 65536, 1 << 20);
    expect_status("GET / HTTP/1.1\r\nBad Header\r\n\r\n", 400, 65536, 1 << 20);
}

static void test_http_limits(void **state)
{
    (void)state;
    char big[3000];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nX: %02000d\r\n\r\n", 0);
    expect_status(big, 431, 1024, 1 << 20);
    expect_status("POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\n", 413, 65536, 10);
    expect_status("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                  "8\r\n12345678\r\n8\r\n12345678\r\n0\r\n\r\n",
                  413, 65536, 10);
    result_t r;
    const char ok[] = "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789";
    feed(ok, sizeof ok - 1, 0, 65536, 10, &r); /* exactly the limit is fine */
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    release(&r);
    expect_status("POST / HTTP/1.1\r\nExpect: something-else\r\n\r\n", 417, 65536, 10);
}

static void test_http_keepalive_rules(void **state)
{
    (void)state;
    result_t r;
    const char in[] = "GET / HTTP/1.0\r\n\r\n";
    feed(in, sizeof in - 1, 0, 65536, 10, &r);
    assert_int_equal(r.n, 1);
    assert_false(r.reqs[0]->keep_alive);
    release(&r);
    const char in2[] = "GET / HTTP/1.1\r\nConnection: close\r\n\r\n";
    feed(in2, sizeof in2 - 1, 0, 65536, 10, &r);
    assert_false(r.reqs[0]->keep_alive);
    release(&r);
    const char in3[] = "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx";
    feed(in3, sizeof in3 - 1, 0, 65536, 10, &r);
    assert_int_equal(r.n, 1);
    assert_true(r.reqs[0]->expect_continue != 0);
    release(&r);
}

/* A body that arrives whole in one feed points into the fed bytes (no copy) when the server
 * allows it; the byte after it is writable only when it ends the feed and there is room.
 * http_req_own_body makes a copy that outlives the input. */
static void test_http_body_borrowed_only_when_whole(void **state)
{
    (void)state;
    char in[] = "POST /a HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
                "POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz";
    http_rp_t rp;
    http_rp_init(&rp, NULL, 65536, 1 << 20);
    rp.may_borrow = 1;
    rp.feed_room = 1;
    size_t len = sizeof in - 1, off = http_rp_feed(&rp, in, len);
    assert_true(rp.complete);
    http_req_t *a = http_rp_take(&rp);
    assert_true(a->body_borrowed);
    assert_ptr_equal(a->body, strstr(in, "hello"));
    assert_int_equal(a->body_cap, 5); /* "POST /b" follows: nothing writable after it */
    off += http_rp_feed(&rp, in + off, len - off);
    assert_int_equal(off, len);
    http_req_t *b = http_rp_take(&rp);
    assert_true(b->body_borrowed);
    assert_int_equal(b->body_cap, 4); /* ends the feed, room after it: one spare byte */
    assert_int_equal(http_req_own_body(a), 0);
    assert_false(a->body_borrowed);
    memset(in, '#', len); /* the read buffer is reused */
    assert_memory_equal(a->body, "hello", 5);
    assert_true(a->body_cap > a->body_len);
    http_req_body_free(b);
    assert_null(b->body);
    http_req_unref(a);
    http_req_unref(b);

    /* In two feeds, or chunked: copied as before. */
    const char two[] = "POST / HTTP/1.1\r\nContent-Length: 4\r\n\r\nabcd";
    http_rp_init(&rp, NULL, 65536, 1 << 20);
    rp.may_borrow = 1;
    size_t n = http_rp_feed(&rp, two, sizeof two - 3);
    n += http_rp_feed(&rp, two + n, sizeof two - 1 - n);
    http_req_t *c = http_rp_take(&rp);
    assert_non_null(c);
    assert_false(c->body_borrowed);
    assert_memory_equal(c->body, "abcd", 4);
    assert_true(c->body_cap > c->body_len);
    http_req_unref(c);
    const char ch[] = "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
    http_rp_init(&rp, NULL, 65536, 1 << 20);
    rp.may_borrow = 1;
    http_rp_feed(&rp, ch, sizeof ch - 1);
    c = http_rp_take(&rp);
    assert_non_null(c);
    assert_false(c->body_borrowed);
    assert_memory_equal(c->body, "abc", 3);
    http_req_unref(c);
    http_rp_free(&rp);
}

/* Header strings, header array and body move from the request's own memory to the heap as
 * they outgrow it, and stay intact; chunked trailers that move the strings keep path and
 * query valid (ASan checks the reads). */
static void test_http_request_memory_outgrown(void **state)
{
    (void)state;
    char in[16384];
    size_t n = (size_t)snprintf(in, sizeof in, "POST /p?q=1 HTTP/1.1\r\n");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(in + n, sizeof in - n, "X-H%02d: %040d\r\n", i, i);
    n += (size_t)snprintf(in + n, sizeof in - n, "Content-Length: 5000\r\n\r\n");
    memset(in + n, 'b', 5000);
    n += 5000;
    size_t steps[] = {0, 100};
    for (size_t s = 0; s < 2; s++) {
        result_t r;
        feed(in, n, steps[s], 65536, 1 << 20, &r);
        assert_int_equal(r.n, 1);
        http_req_t *a = r.reqs[0];
        assert_string_equal(http_req_header(a, "X-H39"), "0000000000000000000000000000000000000039");
        assert_string_equal(http_req_header(a, "X-H00"), "0000000000000000000000000000000000000000");
        assert_int_equal(a->body_len, 5000);
        assert_int_equal(a->body[4999], 'b');
        assert_memory_equal(a->path, "/p", 2);
        void *m = http_req_alloc(a, 64);
        assert_non_null(m);
        memset(m, 0, 64);
        assert_null(http_req_alloc(a, HTTP_REQ_ARENA));
        release(&r);
    }
    n = (size_t)snprintf(in, sizeof in,
                         "POST /t?x=y HTTP/1.1\r\nX-Long: %01500d\r\nTransfer-Encoding: chunked\r\n"
                         "\r\n1\r\nz\r\n0\r\n",
                         0); /* the head alone is past the arena: trailers realloc the heap */
    for (int i = 0; i < 60; i++) /* ~4 KiB: out of the arena, then moved again on the heap */
        n += (size_t)snprintf(in + n, sizeof in - n, "T%02d: %060d\r\n", i, i);
    n += (size_t)snprintf(in + n, sizeof in - n, "\r\n");
    result_t r;
    feed(in, n, 0, 65536, 1 << 20, &r);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.n, 1);
    assert_memory_equal(r.reqs[0]->path, "/t", 2);
    assert_memory_equal(r.reqs[0]->query, "x=y", 3);
    release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_simple_and_pipelined_any_split),
        cmocka_unit_test(test_http_smuggling_and_framing_errors),
        cmocka_unit_test(test_http_limits),
        cmocka_unit_test(test_http_keepalive_rules),
        cmocka_unit_test(test_http_body_borrowed_only_when_whole),
        cmocka_unit_test(test_http_request_memory_outgrown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
