/* http_parse.c — the HTTP/1.1 request parser behind http_rp_* (http_server.h): http_parser
 * driven incrementally, every size checked before it is trusted (header bytes, header
 * count, body against Content-Length and chunk framing), a strict scan of the header block
 * and of chunk lines; no I/O, so the fuzzer (tests/fuzz/fuzz_http.c) drives it directly. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/http_server.h"

#define MAX_HEADERS 256

/* ---------------------------------------------------------------- requests */

void http_req_ref(http_req_t *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void http_req_unref(http_req_t *r)
{
    if (!r || atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) > 1) return;
    if (!r->hb_inline) buf_free(&r->hb);
    if (r->hdrs != r->hdrs_inline) free(r->hdrs);
    http_req_body_free(r);
    free(r);
}

void *http_req_alloc(http_req_t *r, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > HTTP_REQ_ARENA - r->arena_used) return NULL;
    void *p = r->arena + r->arena_used;
    r->arena_used += n;
    return p;
}

/* Room for cap body bytes: the arena when they fit, else the heap. */
static char *body_mem(http_req_t *r, size_t cap)
{
    char *b = http_req_alloc(r, cap);
    r->body_inline = b != NULL;
    return b ? b : malloc(cap);
}

int http_req_own_body(http_req_t *r)
{
    if (!r->body_borrowed) return 0;
    char *b = body_mem(r, r->body_len + 1);
    if (!b) return -ENOMEM;
    memcpy(b, r->body, r->body_len);
    r->body = b;
    r->body_cap = r->body_len + 1;
    r->body_borrowed = 0;
    return 0;
}

void http_req_body_free(http_req_t *r)
{
    if (!r->body_inline && !r->body_borrowed) free(r->body);
    r->body = NULL;
    r->body_len = r->body_cap = 0;
    r->body_inline = r->body_borrowed = 0;
}

/* Append to hb: in the arena while it fits, then on the heap (moved once). */
static int hb_put(http_req_t *r, const char *p, size_t n)
{
    if (r->hb_inline && r->hb.len + n + 1 > r->hb.cap) {
        size_t cap = r->hb.cap * 2;
        while (cap < r->hb.len + n + 1)
            cap *= 2;
        char *d = malloc(cap);
        if (!d) return -1;
        memcpy(d, r->hb.data, r->hb.len + 1);
        r->hb.data = d;
        r->hb.cap = cap;
        r->hb_inline = 0;
    }
    return buf_append(&r->hb, p, n);
}

const char *http_req_hdr_name(const http_req_t *r, size_t i)
{
    return r->hb.data + r->hdrs[i].name_off;
}

const char *http_req_hdr_value(const http_req_t *r, size_t i)
{
    return r->hb.data + r->hdrs[i].value_off;
}

const char *http_req_header(const http_req_t *r, const char *name)
{
    for (size_t i = 0; i < r->n_hdrs_main; i++)
        if (strcasecmp(http_req_hdr_name(r, i), name) == 0) return http_req_hdr_value(r, i);
    return NULL;
}

int http_req_header_count(const http_req_t *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->n_hdrs_main; i++)
        if (strcasecmp(http_req_hdr_name(r, i), name) == 0) n++;
    return n;
}

/* ---------------------------------------------------------------- parser */

static int rp_fail(http_rp_t *rp, int status, const char *what)
{
    if (!rp->status) {
        rp->status = status;
        snprintf(rp->error, sizeof rp->error, "%s", what);
    }
    return -1;
}

static int count_header_bytes(http_rp_t *rp, size_t n)
{
    rp->header_bytes += n;
    if (rp->header_bytes > rp->max_header_bytes)
        return rp_fail(rp, 431, "request headers are larger than proxy.max_header_bytes");
    return 0;
}

static int on_message_begin(http_parser *p)
{
    http_rp_t *rp = p->data;
    http_req_t *r = malloc(sizeof *r);
    if (!r) return rp_fail(rp, 503, "out of memory");
    memset(r, 0, offsetof(http_req_t, hdrs_inline)); /* the arenas need no zeroing */
    atomic_init(&r->refs, 1);
    r->hdrs = r->hdrs_inline;
    r->hdr_cap = HTTP_REQ_INLINE_HDRS;
    r->hb.data = r->arena;
    r->hb.cap = HTTP_REQ_HB_INLINE;
    r->hb.data[0] = '\0';
    r->hb_inline = 1;
    r->arena_used = HTTP_REQ_HB_INLINE;
    r->srv = rp->srv;
    r->t_begin_ns = uv_hrtime();
    rp->req = r;
    rp->part = HTTP_RP_NONE;
    rp->header_bytes = 0;
    return 0;
}

static int on_url(http_parser *p, const char *at, size_t n)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    if (count_header_bytes(rp, n)) return -1;
    if (rp->part != HTTP_RP_URL) {
        r->url_off = (uint32_t)r->hb.len;
        rp->part = HTTP_RP_URL;
    }
    if (hb_put(r, at, n)) return rp_fail(rp, 503, "out of memory");
    r->url_len += (uint32_t)n;
    return 0;
}

static int on_header_field(http_parser *p, const char *at, size_t n)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    if (count_header_bytes(rp, n + 4)) return -1;
    if (rp->part != HTTP_RP_HEADER_NAME) {
        if (r->n_hdrs == MAX_HEADERS) return rp_fail(rp, 431, "too many request headers");
        if (r->n_hdrs == r->hdr_cap) {
            size_t nc = r->hdr_cap * 2;
            int inl = r->hdrs == r->hdrs_inline;
            http_hdr_t *nh = inl ? malloc(nc * sizeof *nh) : realloc(r->hdrs, nc * sizeof *nh);
            if (!nh) return rp_fail(rp, 503, "out of memory");
            if (inl) memcpy(nh, r->hdrs, r->n_hdrs * sizeof *nh);
            r->hdrs = nh;
            r->hdr_cap = nc;
        }
        if (hb_put(r, "", 1)) return rp_fail(rp, 503, "out of memory"); /* ends previous */
        http_hdr_t *h = &r->hdrs[r->n_hdrs++];
        h->name_off = (uint32_t)r->hb.len;
        h->name_len = 0;
        h->value_off = 0;
        h->value_len = 0;
        rp->part = HTTP_RP_HEADER_NAME;
    }
    if (hb_put(r, at, n)) return rp_fail(rp, 503, "out of memory");
    r->hdrs[r->n_hdrs - 1].name_len += (uint32_t)n;
    return 0;
}

static int on_header_value(http_parser *p, const char *at, size_t n)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    if (count_header_bytes(rp, n)) return -1;
    if (rp->part != HTTP_RP_HEADER_VALUE) {
        if (hb_put(r, "", 1)) return rp_fail(rp, 503, "out of memory");
        r->hdrs[r->n_hdrs - 1].value_off = (uint32_t)r->hb.len;
        rp->part = HTTP_RP_HEADER_VALUE;
    }
    if (hb_put(r, at, n)) return rp_fail(rp, 503, "out of memory");
    r->hdrs[r->n_hdrs - 1].value_len += (uint32_t)n;
    return 0;
}

/* "chunked" with optional surrounding whitespace, any case. */
static int te_is_chunked(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (strncasecmp(v, "chunked", 7) != 0) return 0;
    for (v += 7; *v == ' ' || *v == '\t'; v++) {
    }
    return *v == '\0';
}

static int on_headers_complete(http_parser *p)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    if (hb_put(r, "", 1)) return rp_fail(rp, 503, "out of memory");
    rp->part = HTTP_RP_NONE;
    /* A header with no value at all ("Name:" then CRLF) has value_off 0: point it at "". */
    for (size_t i = 0; i < r->n_hdrs; i++)
        if (!r->hdrs[i].value_off) r->hdrs[i].value_off = (uint32_t)(r->hb.len);
    r->n_hdrs_main = r->n_hdrs;
    r->method = p->method;
    r->http_major = p->http_major;
    r->http_minor = p->http_minor;
    if (!r->url_len) return rp_fail(rp, 400, "empty request target");
    const char *url = r->hb.data + r->url_off;
    const char *q = memchr(url, '?', r->url_len);
    const char *hash = memchr(url, '#', r->url_len);
    size_t end = hash ? (size_t)(hash - url) : r->url_len;
    r->path = url;
    r->path_len = q && q < url + end ? (size_t)(q - url) : end;
    if (q && q < url + end) {
        r->query = q + 1;
        r->query_len = end - r->path_len - 1;
    }
    /* Request smuggling guards: one framing, stated once. */
    r->n_content_length = http_req_header_count(r, "Content-Length");
    int n_te = http_req_header_count(r, "Transfer-Encoding");
    r->has_transfer_encoding = n_te > 0;
    if (r->n_content_length > 1) return rp_fail(rp, 400, "duplicate Content-Length header");
    if (r->n_content_length && r->has_transfer_encoding)
        return rp_fail(rp, 400, "both Content-Length and Transfer-Encoding");
    /* Exactly "chunked", once: http_parser takes any list ending in chunked ("gzip,
     * chunked", two headers) as chunked and ignores the other codings, which another
     * implementation would apply. */
    if (n_te > 1) return rp_fail(rp, 400, "more than one Transfer-Encoding header");
    if (r->has_transfer_encoding &&
        (!(p->flags & F_CHUNKED) || !te_is_chunked(http_req_header(r, "Transfer-Encoding"))))
        return rp_fail(rp, 501, "unsupported Transfer-Encoding (only chunked)");
    if (p->method == HTTP_CONNECT) return rp_fail(rp, 405, "CONNECT is not supported");
    const char *expect = http_req_header(r, "Expect");
    if (expect) {
        if (strcasecmp(expect, "100-continue") != 0)
            return rp_fail(rp, 417, "unsupported Expect header");
        r->expect_continue = HTTP_EXPECT_WANTED;
    }
    if (r->n_content_length && p->content_length > rp->max_body_bytes)
        return rp_fail(rp, 413, "request body is larger than proxy.max_body_bytes");
    return 0; /* the body's memory is chosen when its first bytes arrive (on_body) */
}

static int on_body(http_parser *p, const char *at, size_t n)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    if (r->expect_continue == HTTP_EXPECT_WANTED)
        r->expect_continue = HTTP_EXPECT_DONE; /* the client did not wait */
    if (n > rp->max_body_bytes - r->body_len)
        return rp_fail(rp, 413, "request body is larger than proxy.max_body_bytes");
    /* http_parser has already counted these bytes off content_length. */
    if (!r->body && r->n_content_length) {
        if (rp->may_borrow && p->content_length == 0) {
            /* The whole body in one piece: no copy, it stays where it was read (valid while
             * on_request runs, http_server.h). The byte after it is ours when the body ends
             * the fed bytes and the buffer has room. */
            r->body = (char *)at;
            r->body_len = n;
            r->body_cap = n + (at + n == rp->feed_end && rp->feed_room ? 1 : 0);
            r->body_borrowed = 1;
            return 0;
        }
        size_t cap = n + (size_t)p->content_length + 1;
        if (!(r->body = body_mem(r, cap))) return rp_fail(rp, 503, "out of memory");
        r->body_cap = cap;
    }
    if (r->body_len + n + 1 > r->body_cap) { /* chunked: grow on the heap */
        size_t nc = r->body_cap ? r->body_cap : 16384;
        while (nc < r->body_len + n + 1)
            nc *= 2;
        if (nc > rp->max_body_bytes + 1) nc = (size_t)rp->max_body_bytes + 1;
        int moved = r->body_inline || r->body_borrowed;
        char *nb = moved ? malloc(nc) : realloc(r->body, nc);
        if (!nb) return rp_fail(rp, 503, "out of memory");
        if (moved) memcpy(nb, r->body, r->body_len);
        r->body_inline = r->body_borrowed = 0;
        r->body = nb;
        r->body_cap = nc;
    }
    memcpy(r->body + r->body_len, at, n);
    r->body_len += n;
    return 0;
}

static int on_message_complete(http_parser *p)
{
    http_rp_t *rp = p->data;
    http_req_t *r = rp->req;
    r->keep_alive = http_should_keep_alive(p) && !p->upgrade;
    r->t_complete_ns = uv_hrtime();
    if (r->n_hdrs > r->n_hdrs_main) {
        /* Chunked trailers went into hb after the head, which may have moved it. */
        r->path = r->hb.data + r->url_off;
        if (r->query) r->query = r->path + r->path_len + 1;
    }
    rp->complete = 1;
    http_parser_pause(p, 1); /* one request at a time: the rest waits in the buffer */
    return 0;
}

static const http_parser_settings rp_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
};

void http_rp_init(http_rp_t *rp, http_server_t *srv, size_t max_header_bytes,
                  uint64_t max_body_bytes)
{
    memset(rp, 0, sizeof *rp);
    http_parser_init(&rp->p, HTTP_REQUEST);
    rp->p.data = rp;
    rp->srv = srv;
    rp->max_header_bytes = max_header_bytes;
    rp->max_body_bytes = max_body_bytes;
}

/* http_parser silently unfolds obs-fold lines ("Name: a\r\n b", or "Transfer-Encoding:\r\n
 * chunked", which another HTTP implementation may read as no Transfer-Encoding at all) and
 * accepts a header line that starts with whitespace. Either is a framing ambiguity
 * (RFC 9112 §5.2 lets a server reject it): scan the header block of each request for a
 * line that starts with SP or HT and refuse with 400. The scan stops at the empty line, so
 * body bytes are never looked at. Every feed starts where the parser stopped, so the scanner
 * sees exactly the bytes the parser reads. */
enum { HS_PRE = 0, HS_LINE, HS_LF, HS_LFCR, HS_DONE };

static int head_scan(http_rp_t *rp, const char *data, size_t len, size_t *body_off)
{
    *body_off = rp->head_scan == HS_DONE ? 0 : len;
    for (size_t i = 0; i < len && rp->head_scan != HS_DONE; i++) {
        char ch = data[i];
        switch (rp->head_scan) {
        case HS_PRE: /* CRLFs before the request line are skipped (RFC 9112 §2.2) */
            if (ch != '\r' && ch != '\n') rp->head_scan = HS_LINE;
            break;
        case HS_LINE:
            if (ch == '\n') rp->head_scan = HS_LF;
            break;
        case HS_LF:
            if (ch == ' ' || ch == '\t')
                return rp_fail(rp, 400,
                               "folded header line (obs-fold) or a header line that "
                               "starts with whitespace");
            rp->head_scan = ch == '\r' ? HS_LFCR : ch == '\n' ? HS_DONE : HS_LINE;
            break;
        case HS_LFCR:
            rp->head_scan = ch == '\n' ? HS_DONE : HS_LINE;
            break;
        }
        if (rp->head_scan == HS_DONE) *body_off = i + 1;
    }
    return 0;
}

/* http_parser (built without HTTP_PARSER_STRICT) takes any two bytes after a chunk's data
 * as its CRLF ("2\r\n{}XX0\r\n\r\n" is accepted) and any bytes but CR as a chunk
 * extension (NUL, control characters): framings a stricter implementation in front of sluice
 * would read differently. This checker follows the chunked body the parser has consumed and
 * holds it to RFC 9112 §7.1: hex size, optional extensions of visible characters, CRLF line
 * ends, CRLF after each chunk's data. Trailers are left to the parser. */
enum {
    CS_SIZE0 = 0,
    CS_SIZE,
    CS_BWS,
    CS_EXT,
    CS_LF,
    CS_DATA,
    CS_DCR,
    CS_DLF,
    CS_TSTART,
    CS_TLINE,
    CS_TLF,
    CS_DONE
};

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int chunk_scan(http_rp_t *rp, const char *data, size_t len)
{
    for (size_t i = 0; i < len && rp->chunk_scan != CS_DONE; i++) {
        unsigned char ch = (unsigned char)data[i];
        int st = rp->chunk_scan, h = hexval((char)ch);
        if (st == CS_DATA) {
            size_t take = len - i < rp->chunk_left ? len - i : (size_t)rp->chunk_left;
            rp->chunk_left -= take;
            i += take - 1;
            if (!rp->chunk_left) rp->chunk_scan = CS_DCR;
            continue;
        }
        if (st == CS_SIZE0 || st == CS_SIZE) {
            if (h >= 0) {
                if (rp->chunk_left > (UINT64_MAX >> 4)) break; /* the parser refuses it */
                rp->chunk_left = rp->chunk_left << 4 | (uint64_t)h;
                rp->chunk_scan = CS_SIZE;
                continue;
            }
            if (st == CS_SIZE0) return rp_fail(rp, 400, "bad chunk size");
            st = CS_BWS; /* fall into the checks after the size */
        }
        switch (st) {
        case CS_BWS:
        case CS_EXT:
            if (ch == '\r')
                rp->chunk_scan = CS_LF;
            else if (ch == ';' || (st == CS_EXT && (ch == '\t' || ch >= 0x20) && ch != 0x7f))
                rp->chunk_scan = CS_EXT;
            else if (ch == ' ' || ch == '\t')
                rp->chunk_scan = CS_BWS;
            else
                return rp_fail(rp, 400, "bad chunk extension");
            break;
        case CS_LF:
            if (ch != '\n') return rp_fail(rp, 400, "chunk size line not ended by CRLF");
            rp->chunk_scan = rp->chunk_left ? CS_DATA : CS_TSTART;
            break;
        case CS_DCR:
        case CS_DLF:
            if (ch != (st == CS_DCR ? '\r' : '\n'))
                return rp_fail(rp, 400, "chunk data not followed by CRLF");
            rp->chunk_scan = st == CS_DCR ? CS_DLF : CS_SIZE0;
            break;
        case CS_TSTART:
            rp->chunk_scan = ch == '\r' ? CS_TLF : ch == '\n' ? CS_DONE : CS_TLINE;
            break;
        case CS_TLINE:
            if (ch == '\n') rp->chunk_scan = CS_TSTART;
            break;
        case CS_TLF:
            rp->chunk_scan = ch == '\n' ? CS_DONE : CS_TLINE;
            break;
        }
    }
    return 0;
}

size_t http_rp_feed(http_rp_t *rp, const char *data, size_t len)
{
    if (rp->status || rp->complete) return 0;
    rp->feed_end = data + len;
    size_t body_off;
    if (head_scan(rp, data, len, &body_off)) return 0;
    size_t n = http_parser_execute(&rp->p, &rp_settings, data, len);
    enum http_errno e = HTTP_PARSER_ERRNO(&rp->p);
    if ((e == HPE_OK || e == HPE_PAUSED) && !rp->status && (rp->p.flags & F_CHUNKED) &&
        body_off < n && chunk_scan(rp, data + body_off, n - body_off))
        return n;
    if (e == HPE_PAUSED) return n;
    if (e != HPE_OK) {
        if (e == HPE_HEADER_OVERFLOW)
            rp_fail(rp, 431, "request headers are too large");
        else
            rp_fail(rp, 400, http_errno_description(e));
        return n;
    }
    if (rp->p.upgrade && !rp->complete) rp_fail(rp, 400, "protocol upgrade is not supported");
    return n;
}

http_req_t *http_rp_take(http_rp_t *rp)
{
    http_req_t *r = rp->complete ? rp->req : NULL;
    if (!r) return NULL;
    rp->req = NULL;
    rp->complete = 0;
    rp->head_scan = HS_PRE;
    rp->chunk_scan = CS_SIZE0;
    rp->chunk_left = 0;
    http_parser_pause(&rp->p, 0);
    if (rp->p.upgrade) rp_fail(rp, 400, "protocol upgrade is not supported"); /* no more */
    return r;
}

void http_rp_free(http_rp_t *rp)
{
    http_req_unref(rp->req);
    rp->req = NULL;
}
