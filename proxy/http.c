/* http.c — the HTTP/1.1 connection engine behind http_server.h: libuv TCP, reads fed to the
 * request parser (http_parse.c), one request in flight per connection (the rest of a
 * pipeline stays unread until the answer is written), answers, timeouts, draining. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "config/config.h"
#include "proxy/http_server.h"

#define READ_BUF (64u << 10)

struct http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    http_server_t *srv;
    http_rp_t rp;
    http_req_t *cur; /* handed to the handler, not answered yet */
    char *pending;   /* read but not parsed (pipelining) */
    size_t pending_len;
    size_t writes; /* uv_write requests in flight */
    int reading, closing, close_after_write, in_process, open_handles;
    int lingering;  /* after a protocol error: discard input until EOF or timeout */
    int eof;        /* the client half-closed: answer what it sent, then close */
    int in_request; /* bytes of the next request have arrived: its header deadline runs */
    uint64_t discarded;
    uv_shutdown_t shut;
    http_conn_t *prev, *next;
};

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    int listening, freeing, listener_open;
    http_server_opts_t o;
    char *listen;
    http_conn_t *conns; /* every open connection */
    size_t in_flight;
    http_server_stats_t st;
    char readbuf[READ_BUF];
    int readbuf_busy;
    char date[40];
    uint64_t date_sec;
};

/* ---------------------------------------------------------------- status text, date */

const char *http_status_text(int s)
{
    switch (s) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return s < 300 ? "OK" : s < 500 ? "Bad Request" : "Internal Server Error";
    }
}

static const char *http_date(http_server_t *s)
{
    uint64_t now = (uint64_t)time(NULL);
    if (now != s->date_sec) {
        struct tm tm;
        time_t t = (time_t)now;
        gmtime_r(&t, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* ---------------------------------------------------------------- connections */

static void conn_close(http_conn_t *c);
static void on_linger_timeout(uv_timer_t *t);
static void conn_save_pending(http_conn_t *c, const char *data, size_t len);
static void conn_process(http_conn_t *c, char *data, size_t len, size_t room);
static void conn_resume(http_conn_t *c);
static void conn_read_start(http_conn_t *c);
static void conn_read_stop(http_conn_t *c);

static void server_maybe_free(http_server_t *s)
{
    if (s->freeing && !s->listener_open && !s->conns) {
        free(s->listen);
        free(s);
    }
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    http_conn_t *c = h->data;
    if (--c->open_handles > 0) return;
    http_server_t *s = c->srv;
    free(c->pending);
    free(c);
    server_maybe_free(s);
}

static void conn_close(http_conn_t *c)
{
    if (c->closing) return;
    c->closing = 1;
    http_server_t *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    c->prev = c->next = NULL;
    s->st.connections_open--;
    if (c->cur) {
        http_req_t *r = c->cur;
        c->cur = NULL;
        r->conn = NULL;
        s->in_flight--;
        if (!r->responded && r->on_abort) r->on_abort(r);
        http_req_unref(r);
    }
    http_rp_free(&c->rp);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
}

static void on_shutdown(uv_shutdown_t *sh, int status)
{
    (void)sh;
    (void)status; /* the timer or the client's EOF ends the connection */
}

/* Everything is written and nothing more will be: close. After a protocol error the client
 * may still be sending (e.g. a body over the limit): closing with unread input would make
 * the kernel send RST and the client could lose our answer, so half-close and drain first
 * (bounded by 2 s and 16 MiB). */
static void conn_finish(http_conn_t *c)
{
    if (!c->lingering) {
        conn_close(c);
        return;
    }
    if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    uv_timer_start(&c->timer, on_linger_timeout, 2000, 0);
}

typedef struct {
    uv_write_t w;
    http_conn_t *c;
    char mem[]; /* header + copied body */
} wreq_t;

static void on_write(uv_write_t *w, int status)
{
    wreq_t *wr = (wreq_t *)w;
    http_conn_t *c = wr->c;
    free(wr);
    c->writes--;
    if (c->closing) return;
    if (status < 0) {
        conn_close(c);
        return;
    }
    if (c->close_after_write && c->writes == 0) {
        conn_finish(c);
        return;
    }
    if (c->cur && c->cur->on_drain &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp) < HTTP_WRITE_LOW)
        c->cur->on_drain(c->cur);
}

/* Write a + b (copied) to the connection. */
static int conn_write2(http_conn_t *c, const char *a, size_t alen, const char *b, size_t blen)
{
    if (c->closing) return -1;
    wreq_t *wr = malloc(sizeof *wr + alen + blen);
    if (!wr) {
        conn_close(c);
        return -1;
    }
    wr->c = c;
    memcpy(wr->mem, a, alen);
    if (blen) memcpy(wr->mem + alen, b, blen);
    uv_buf_t buf = uv_buf_init(wr->mem, (unsigned)(alen + blen));
    c->writes++;
    int rc = uv_write(&wr->w, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc) {
        c->writes--;
        free(wr);
        conn_close(c);
        return -1;
    }
    return 0;
}

/* conn_write2, but first straight to the socket when nothing is queued ahead: an answer the
 * kernel takes at once (the usual small one) needs no allocation and no copy. What it does
 * not take is queued as conn_write2 would. */
static int conn_write_now(http_conn_t *c, const char *a, size_t alen, const char *b, size_t blen)
{
    if (c->closing) return -1;
    if (c->writes == 0) {
        uv_buf_t bufs[2] = {uv_buf_init((char *)a, (unsigned)alen),
                            uv_buf_init((char *)b, (unsigned)blen)};
        int n = uv_try_write((uv_stream_t *)&c->tcp, bufs, blen ? 2 : 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return -1;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done >= alen + blen) return 0;
        if (done >= alen) {
            b += done - alen;
            blen -= done - alen;
            alen = 0;
        } else {
            a += done;
            alen -= done;
        }
    }
    return conn_write2(c, a, alen, b, blen);
}

static void on_linger_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

static void on_timeout(uv_timer_t *t)
{
    http_conn_t *c = t->data;
    if (c->cur) return; /* the handler owns the time; it has its own bounds */
    conn_close(c);      /* idle keep-alive, or a client too slow to send its request */
}

static void arm_timer(http_conn_t *c)
{
    if (c->srv->o.idle_timeout_ms && !c->closing)
        uv_timer_start(&c->timer, on_timeout, c->srv->o.idle_timeout_ms, 0);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    http_conn_t *c = h->data;
    http_server_t *s = c->srv;
    /* One buffer for the whole server: read_cb consumes it (parsing copies what it keeps,
     * leftovers go to c->pending) before the next read happens. */
    if (s->readbuf_busy) {
        buf->base = NULL;
        buf->len = 0;
        return;
    }
    s->readbuf_busy = 1;
    buf->base = s->readbuf;
    buf->len = sizeof s->readbuf;
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    http_conn_t *c = st->data;
    if (buf->base == c->srv->readbuf) c->srv->readbuf_busy = 0;
    if (nread == UV_ENOBUFS) return;
    if (nread < 0) {
        if (nread == UV_EOF && (c->cur || c->writes) && !c->lingering) {
            /* Half-close after sending request(s): answer them (or finish writing the
             * answer already given), then close. */
            c->eof = 1;
            conn_read_stop(c);
            if (!c->cur) c->close_after_write = 1; /* on_write closes after the last one */
            return;
        }
        conn_close(c); /* EOF or error: a half-read request is dropped, never handled */
        return;
    }
    if (nread == 0) return;
    if (c->lingering) {
        c->discarded += (uint64_t)nread;
        if (c->discarded > (16u << 20)) conn_close(c);
        return;
    }
    if (c->cur) {
        /* A request is being answered: keep what follows (pipelining) for later, and stop
         * reading only when that grows past one read buffer. Not stopping for every request
         * saves two epoll_ctl calls per request on keep-alive connections. */
        conn_save_pending(c, buf->base, (size_t)nread);
        if (c->pending_len >= READ_BUF) conn_read_stop(c);
        return;
    }
    /* Slowloris guard: the headers must all arrive within idle_timeout_ms of the request's
     * first bytes, however they trickle in; only body reads restart the timer (idle between
     * reads, so a big upload on a slow link is not cut off). */
    if (!c->in_request) {
        c->in_request = 1;
        arm_timer(c);
    } else if (c->rp.req && c->rp.req->path) {
        arm_timer(c);
    }
    if (c->pending_len) {
        /* Never parse new bytes ahead of older unparsed ones. */
        conn_save_pending(c, buf->base, (size_t)nread);
        if (!c->closing) conn_resume(c);
        return;
    }
    conn_process(c, buf->base, (size_t)nread, buf->len - (size_t)nread);
}

static void conn_read_start(http_conn_t *c)
{
    if (c->reading || c->closing || (c->close_after_write && !c->lingering)) return;
    if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0) c->reading = 1;
}

static void conn_read_stop(http_conn_t *c)
{
    if (!c->reading) return;
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = 0;
}

/* Answer a protocol error and close: the byte stream can no longer be trusted. */
static void conn_protocol_error(http_conn_t *c, int status, const char *what)
{
    http_server_t *s = c->srv;
    s->st.protocol_errors++;
    char body[512], hdrs[256] = "", head[1024];
    size_t blen;
    if (s->o.format_error) {
        blen = s->o.format_error(s->o.ctx, status, what, body, sizeof body, hdrs, sizeof hdrs);
        if (blen > sizeof body) blen = sizeof body;
    } else {
        blen = (size_t)snprintf(body, sizeof body, "%s\n", what);
        if (blen >= sizeof body) blen = sizeof body - 1;
    }
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 %d %s\r\nDate: %s\r\nConnection: Close\r\n"
                      "Content-Type: text/plain; charset=UTF-8\r\n%sContent-Length: %zu\r\n\r\n",
                      status, http_status_text(status), http_date(s), hdrs, blen);
    if (hn < 0 || (size_t)hn >= sizeof head) hn = 0;
    c->close_after_write = 1;
    c->lingering = 1;
    uv_timer_stop(&c->timer);
    conn_read_start(c); /* keep draining what the client still sends */
    if (conn_write2(c, head, (size_t)hn, body, blen) == 0) return;
}

static void conn_save_pending(http_conn_t *c, const char *data, size_t len)
{
    if (!len) return;
    char *np = realloc(c->pending, c->pending_len + len);
    if (!np) {
        conn_close(c);
        return;
    }
    memcpy(np + c->pending_len, data, len);
    c->pending = np;
    c->pending_len += len;
}

/* Parse and hand over the requests in data[0..len) (room: writable bytes after it). */
static void conn_process(http_conn_t *c, char *data, size_t len, size_t room)
{
    http_server_t *s = c->srv;
    c->in_process = 1;
    c->rp.may_borrow = s->o.borrow_bodies;
    c->rp.feed_room = room;
    while (len > 0 && !c->cur && !c->closing && !c->close_after_write) {
        size_t n = http_rp_feed(&c->rp, data, len);
        if (c->rp.status) {
            conn_protocol_error(c, c->rp.status, c->rp.error);
            break;
        }
        data += n;
        len -= n;
        if (c->rp.req && c->rp.req->expect_continue == HTTP_EXPECT_WANTED && !c->rp.complete) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            c->rp.req->expect_continue = HTTP_EXPECT_DONE;
            conn_write2(c, cont, sizeof cont - 1, NULL, 0);
        }
        if (!c->rp.complete) {
            if (n == 0) break; /* cannot happen without an error; do not spin */
            continue;
        }
        http_req_t *r = http_rp_take(&c->rp);
        r->conn = c;
        c->cur = r;
        c->in_request = 0;
        s->in_flight++;
        s->st.requests++;
        uv_timer_stop(&c->timer);
        if (!s->listening) r->keep_alive = 0; /* draining: last request on this connection */
        int borrowed = r->body_borrowed;
        if (borrowed) http_req_ref(r);
        s->o.on_request(r, s->o.ctx);
        if (borrowed) {
            /* data is read into again or freed once this returns: a request still held
             * keeps its body only as a copy (a handler that needed it called
             * http_req_own_body, one that was done with it http_req_body_free). */
            if (r->body_borrowed && atomic_load(&r->refs) > 1 && http_req_own_body(r)) {
                http_req_body_free(r);
                if (r->conn) conn_close(r->conn);
            }
            http_req_unref(r);
        }
    }
    c->in_process = 0;
    if (c->closing || c->close_after_write) return;
    if (len > 0) conn_save_pending(c, data, len);
    if (c->cur) {
        if (c->pending_len >= READ_BUF) conn_read_stop(c); /* bounded look-ahead */
    } else if (c->eof) {
        c->close_after_write = 1; /* nothing more will come */
        if (c->writes == 0) conn_close(c);
    } else {
        conn_read_start(c);
    }
}

/* The current request is answered: go on with what the client already sent. */
static void conn_request_done(http_conn_t *c)
{
    http_req_t *r = c->cur;
    c->cur = NULL;
    c->srv->in_flight--;
    if (!r->keep_alive || r->stream_close) c->close_after_write = 1;
    http_req_unref(r);
    if (c->close_after_write) {
        conn_read_stop(c);
        if (c->writes == 0) conn_finish(c);
        return;
    }
    if (c->in_process) return; /* conn_process's loop continues */
    conn_resume(c);
}

static void conn_resume(http_conn_t *c)
{
    arm_timer(c);
    if (c->pending_len) {
        char *p = c->pending;
        size_t n = c->pending_len;
        c->pending = NULL;
        c->pending_len = 0;
        conn_process(c, p, n, 0);
        free(p);
    } else if (c->eof) {
        c->close_after_write = 1;
        if (c->writes == 0) conn_close(c);
    } else {
        conn_read_start(c);
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    http_server_t *s = server->data;
    if (status < 0 || !s->listening) return;
    http_conn_t *c = calloc(1, sizeof *c);
    if (!c) return;
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    c->open_handles = 1;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0 ||
        s->st.connections_open >= s->o.max_connections) {
        /* Over proxy.max_connections: refuse by closing at once; the client retries. */
        c->closing = 1;
        uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        return;
    }
    uv_timer_init(s->loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 2;
    uv_tcp_nodelay(&c->tcp, 1);
    http_rp_init(&c->rp, s, s->o.max_header_bytes, s->o.max_body_bytes);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    s->st.connections_open++;
    s->st.connections_total++;
    arm_timer(c);
    conn_read_start(c);
}

/* ---------------------------------------------------------------- answers */

static int stream_head(http_req_t *r, int status, const char *headers, const char *framing,
                       char *out, size_t cap)
{
    http_conn_t *c = r->conn;
    int close = !r->keep_alive || r->stream_close || !c->srv->listening;
    int n =
        snprintf(out, cap, "HTTP/1.1 %d %s\r\nDate: %s\r\n%s%s%s", status, http_status_text(status),
                 http_date(c->srv), close ? "Connection: Close\r\n" : "Connection: Keep-Alive\r\n",
                 headers ? headers : "", framing);
    if (n < 0 || (size_t)n >= cap) return -1;
    if (close) r->keep_alive = 0;
    return n;
}

int http_respond(http_req_t *r, int status, const char *headers, const char *body, size_t len)
{
    if (r->responded) return -1;
    r->responded = 1;
    http_conn_t *c = r->conn;
    if (!c) return -1;
    char framing[64], head[8192];
    snprintf(framing, sizeof framing, "Content-Length: %zu\r\n\r\n", len);
    int n = stream_head(r, status, headers, framing, head, sizeof head);
    if (n < 0) {
        r->keep_alive = 0;
        n = snprintf(head, sizeof head,
                     "HTTP/1.1 500 Internal Server Error\r\n"
                     "Connection: Close\r\nContent-Length: 0\r\n\r\n");
        len = 0;
    }
    if (r->method == HTTP_HEAD) len = 0;
    conn_write_now(c, head, (size_t)n, body, len);
    if (r->conn) conn_request_done(c);
    return 0;
}

int http_stream_begin(http_req_t *r, int status, const char *headers, int64_t content_length)
{
    if (r->responded || r->streaming || !r->conn) return -1;
    r->streaming = 1;
    char framing[80], head[16384];
    if (content_length >= 0) {
        snprintf(framing, sizeof framing, "Content-Length: %lld\r\n\r\n",
                 (long long)content_length);
    } else if (r->http_major == 1 && r->http_minor >= 1 && r->method != HTTP_HEAD) {
        r->stream_chunked = 1;
        snprintf(framing, sizeof framing, "Transfer-Encoding: chunked\r\n\r\n");
    } else {
        r->stream_close = 1; /* HTTP/1.0: the end of the body is the end of the connection */
        snprintf(framing, sizeof framing, "\r\n");
    }
    int n = stream_head(r, status, headers, framing, head, sizeof head);
    if (n < 0) return -1;
    return conn_write2(r->conn, head, (size_t)n, NULL, 0);
}

int http_stream_write(http_req_t *r, const char *data, size_t len)
{
    if (!r->conn || !r->streaming || r->responded) return -1;
    if (!len || r->method == HTTP_HEAD) return 0;
    if (r->stream_chunked) {
        char hex[24];
        int n = snprintf(hex, sizeof hex, "%zx\r\n", len);
        /* chunk = size line + data + CRLF: one allocation, data copied once */
        http_conn_t *c = r->conn;
        wreq_t *wr = malloc(sizeof *wr + (size_t)n + len + 2);
        if (!wr) {
            conn_close(c);
            return -1;
        }
        wr->c = c;
        memcpy(wr->mem, hex, (size_t)n);
        memcpy(wr->mem + n, data, len);
        memcpy(wr->mem + n + len, "\r\n", 2);
        uv_buf_t b = uv_buf_init(wr->mem, (unsigned)((size_t)n + len + 2));
        c->writes++;
        if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write)) {
            c->writes--;
            free(wr);
            conn_close(c);
            return -1;
        }
        return 0;
    }
    return conn_write2(r->conn, data, len, NULL, 0);
}

int http_stream_end(http_req_t *r)
{
    if (r->responded) return -1;
    r->responded = 1;
    http_conn_t *c = r->conn;
    if (!c) return -1;
    if (r->stream_chunked) conn_write2(c, "0\r\n\r\n", 5, NULL, 0);
    if (r->conn) conn_request_done(c);
    return 0;
}

void http_stream_abort(http_req_t *r)
{
    r->responded = 1;
    if (r->conn) conn_close(r->conn);
}

size_t http_req_write_queue(const http_req_t *r)
{
    return r->conn ? uv_stream_get_write_queue_size((const uv_stream_t *)&r->conn->tcp) : 0;
}

/* ---------------------------------------------------------------- server */

/* The address to bind: split by config's one listen-address rule (cfg_parse_listen, which
 * already validated it), then a numeric IPv4/IPv6 address or localhost. */
static int parse_listen(const char *listen, struct sockaddr_storage *ss, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (cfg_parse_listen(listen, host, sizeof host, &port) == 0) {
        if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0) return 0;
        if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0) return 0;
        if (strcmp(host, "localhost") == 0)
            return uv_ip4_addr("127.0.0.1", port, (struct sockaddr_in *)ss);
    }
    snprintf(err, errlen, "bad listen address '%s' (want host:port)", listen);
    return -EINVAL;
}

int http_server_start(http_server_t **out, uv_loop_t *loop, const http_server_opts_t *o, char *err,
                      size_t errlen)
{
    *out = NULL;
    struct sockaddr_storage ss;
    int rc = parse_listen(o->listen, &ss, err, errlen);
    if (rc) return rc;
    http_server_t *s = calloc(1, sizeof *s);
    if (!s) return -ENOMEM;
    s->loop = loop;
    s->o = *o;
    s->listen = strdup(o->listen);
    s->o.listen = s->listen;
    if (!s->o.max_connections) s->o.max_connections = 10000;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&ss, 0);
    if (!rc) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc) {
        snprintf(err, errlen, "cannot listen on %s: %s", o->listen, uv_strerror(rc));
        s->freeing = 1;
        http_server_free(s);
        return rc;
    }
    s->listening = 1;
    *out = s;
    return 0;
}

static void on_listener_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->listener_open = 0;
    server_maybe_free(s);
}

void http_server_stop(http_server_t *s)
{
    if (s->listening) {
        s->listening = 0;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    }
    /* Idle connections go now; busy ones close after their answer (keep_alive = 0). */
    http_conn_t *c = s->conns;
    while (c) {
        http_conn_t *next = c->next;
        if (c->cur)
            c->cur->keep_alive = 0;
        else
            conn_close(c);
        c = next;
    }
}

size_t http_server_in_flight(const http_server_t *s)
{
    return s->in_flight;
}

void http_server_stats(const http_server_t *s, http_server_stats_t *out)
{
    *out = s->st;
}

uv_loop_t *http_server_loop(const http_server_t *s)
{
    return s->loop;
}

void http_server_free(http_server_t *s)
{
    if (!s) return;
    s->freeing = 1;
    if (s->listener_open && !uv_is_closing((uv_handle_t *)&s->listener)) {
        s->listening = 0;
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    }
    while (s->conns)
        conn_close(s->conns);
    server_maybe_free(s);
}
