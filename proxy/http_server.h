/* http_server.h — a small HTTP/1.1 server core on libuv: keep-alive, chunked request
 * bodies, bounded header/body sizes, idle timeouts, one request per connection at a time
 * (pipelined requests wait, unread, until the current one is answered). The request
 * handler is a callback, so the proxy and the admin listener share it. Loop thread only. */
#ifndef SLUICE_HTTP_SERVER_H
#define SLUICE_HTTP_SERVER_H

#include <http_parser.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/buf.h"

typedef struct http_server http_server_t;
typedef struct http_conn http_conn_t;
typedef struct http_req http_req_t;

typedef struct {
    uint32_t name_off, name_len, value_off, value_len; /* into http_req_t.hb */
} http_hdr_t;

/* Expect: 100-continue, as far as it has gone. */
typedef enum {
    HTTP_EXPECT_NONE = 0, /* no Expect header */
    HTTP_EXPECT_WANTED,   /* asked for, not answered yet: send 100 Continue before reading on */
    HTTP_EXPECT_DONE,     /* 100 Continue sent, or the client sent the body without waiting */
} http_expect_t;

#define HTTP_REQ_INLINE_HDRS 16 /* headers held in the request itself before a heap array */
#define HTTP_REQ_HB_INLINE 1024  /* url + header bytes held in the arena before the heap */
#define HTTP_REQ_ARENA 2816      /* the request's own bytes: hb, small bodies, the handler's */

struct http_req {
    atomic_int refs;   /* the connection holds one until the answer is complete; atomic
                        * because a WAL completion may drop its ref on the writer thread */
    http_conn_t *conn; /* NULL once the connection is gone */
    http_server_t *srv;
    int method; /* enum http_method */
    unsigned short http_major, http_minor;
    int keep_alive;
    http_expect_t expect_continue;
    buf_t hb; /* url and header strings, each NUL-terminated (in the arena until it grows) */
    http_hdr_t *hdrs; /* hdrs_inline until more are needed */
    size_t n_hdrs, hdr_cap, n_hdrs_main; /* n_hdrs_main: before any chunked trailers */
    uint32_t url_off, url_len;
    const char *path, *query; /* into hb after headers; query NULL when absent */
    size_t path_len, query_len;
    /* De-chunked body. body_cap - body_len bytes past it are writable (one spare byte, except
     * for a borrowed body with nothing writable after it). Borrowed (body_borrowed): the body
     * arrived whole in one read and points into the connection's read buffer, valid only
     * during on_request; a handler that uses it later calls http_req_own_body first. */
    char *body;
    size_t body_len, body_cap;
    int body_borrowed;
    int n_content_length, has_transfer_encoding;
    uint64_t t_begin_ns, t_complete_ns;
    /* answer */
    int responded, streaming, stream_chunked, stream_close;
    /* handler's */
    void *data;
    void (*on_abort)(http_req_t *r); /* the connection closed before the answer completed */
    void (*on_drain)(http_req_t *r); /* write queue went below HTTP_WRITE_LOW */
    /* the request's own memory: one allocation holds the request, its header strings and
     * header array, a small body and what the handler takes with http_req_alloc */
    int hb_inline, body_inline;
    size_t arena_used;
    http_hdr_t hdrs_inline[HTTP_REQ_INLINE_HDRS];
    _Alignas(16) char arena[HTTP_REQ_ARENA];
};

#define HTTP_WRITE_HIGH (1u << 20)
#define HTTP_WRITE_LOW (256u << 10)

/* ---- the request parser (also driven directly by the fuzzer) ---- */

/* The piece of the request head the parser's callbacks are appending to: http_parser may
 * hand one piece over in several calls, and a change of piece starts a new string. */
typedef enum {
    HTTP_RP_NONE = 0,
    HTTP_RP_URL,
    HTTP_RP_HEADER_NAME,
    HTTP_RP_HEADER_VALUE,
} http_rp_part_t;

typedef struct {
    http_parser p;
    http_req_t *req; /* being parsed */
    http_server_t *srv;
    size_t max_header_bytes;
    uint64_t max_body_bytes;
    int may_borrow;   /* a body that arrives whole in one feed may point into the fed bytes */
    size_t feed_room; /* writable bytes after the bytes of the current feed (a spare byte) */
    const char *feed_end;
    size_t header_bytes;
    http_rp_part_t part; /* which piece the last callback appended to */
    int complete;        /* req is a whole request: take it */
    int status;          /* != 0: protocol error to answer with (400, 413, 431, ...) */
    int head_scan;       /* line-start scanner of the header block (obs-fold guard) */
    int chunk_scan;      /* chunked-framing checker state (strict chunk lines) */
    uint64_t chunk_left; /* data bytes left in the current chunk (chunk_scan) */
    char error[160];
} http_rp_t;

void http_rp_init(http_rp_t *rp, http_server_t *srv, size_t max_header_bytes,
                  uint64_t max_body_bytes);
/* Feed bytes; returns how many were consumed. Stops after a complete request (rp->complete)
 * or an error (rp->status). */
size_t http_rp_feed(http_rp_t *rp, const char *data, size_t len);
http_req_t *http_rp_take(http_rp_t *rp); /* the completed request (caller owns a ref) */
void http_rp_free(http_rp_t *rp);

/* Any thread; the last unref frees the request. Everything else about a request (answers,
 * on_abort, data) belongs to the loop thread. */
void http_req_ref(http_req_t *r);
void http_req_unref(http_req_t *r);
/* n bytes (16-aligned, not zeroed) that live as long as the request, from its own
 * allocation; NULL when they do not fit (allocate them yourself). Loop thread. */
void *http_req_alloc(http_req_t *r, size_t n);
/* A borrowed body becomes the request's own (copied): -ENOMEM. 0 when it already is. */
int http_req_own_body(http_req_t *r);
/* The handler is done with the body (e.g. it is in the WAL): release it now. Any thread that
 * owns the request's body at that moment (the loop, or a job the loop handed it to). */
void http_req_body_free(http_req_t *r);
/* Header value by case-insensitive name (first occurrence), NULL when absent. */
const char *http_req_header(const http_req_t *r, const char *name);
/* Number of headers with that name. */
int http_req_header_count(const http_req_t *r, const char *name);
const char *http_req_hdr_name(const http_req_t *r, size_t i);
const char *http_req_hdr_value(const http_req_t *r, size_t i);

/* ---- the server ---- */

typedef void (*http_on_request_fn)(http_req_t *r, void *ctx);
/* Shape the body of a protocol error the server answers itself (status 400/408/413/431...):
 * write at most cap bytes of body into body and optional "Name: value\r\n" lines into
 * hdrs. Returns the body length. NULL: a plain-text body. */
typedef size_t (*http_error_fn)(void *ctx, int status, const char *what, char *body, size_t cap,
                                char *hdrs, size_t hcap);

typedef struct {
    const char *listen; /* "host:port", "[v6]:port" */
    size_t max_header_bytes;
    uint64_t max_body_bytes;
    uint32_t idle_timeout_ms;
    uint32_t max_connections;
    http_on_request_fn on_request;
    int borrow_bodies; /* a body that arrives in one read is not copied (body_borrowed) */
    http_error_fn format_error;
    void *ctx;
} http_server_opts_t;

typedef struct {
    uint64_t connections_open, connections_total, requests, protocol_errors;
} http_server_stats_t;

int http_server_start(http_server_t **out, uv_loop_t *loop, const http_server_opts_t *o, char *err,
                      size_t errlen);
/* Stop accepting, close idle connections; connections with a request in flight close
 * after answering it. */
void http_server_stop(http_server_t *s);
/* Requests handed to the handler and not yet answered (or aborted). */
size_t http_server_in_flight(const http_server_t *s);
void http_server_stats(const http_server_t *s, http_server_stats_t *out);
/* Close everything; memory is released in the close callbacks (run the loop once). */
void http_server_free(http_server_t *s);
uv_loop_t *http_server_loop(const http_server_t *s);

/* ---- answers ---- */

const char *http_status_text(int status);
/* A whole answer. headers: "Name: value\r\n" lines or NULL. Completes the request. */
int http_respond(http_req_t *r, int status, const char *headers, const char *body, size_t len);
/* Streaming: content_length < 0 means unknown (chunked for HTTP/1.1, else close-delimited). */
int http_stream_begin(http_req_t *r, int status, const char *headers, int64_t content_length);
int http_stream_write(http_req_t *r, const char *data, size_t len);
int http_stream_end(http_req_t *r);
/* The answer cannot be completed: close the connection. */
void http_stream_abort(http_req_t *r);
size_t http_req_write_queue(const http_req_t *r);

#endif
