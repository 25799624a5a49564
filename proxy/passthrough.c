/* passthrough.c — everything that is not a JSONEachRow INSERT goes to the primary
 * ClickHouse unchanged (method, path, query string, end-to-end headers, credentials, raw
 * body) and its answer (status, headers incl. X-ClickHouse-*, body) is streamed back, with
 * backpressure: the transfer pauses while the client's write queue is over HTTP_WRITE_HIGH. */
#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proxy/passthrough.h"

typedef struct xfer xfer_t;

struct pt {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *base; /* "http://host:port" without a trailing '/' */
    uint32_t timeout_ms;
    xfer_t *xfers;
    size_t n;
    int closing, open_handles;
};

typedef struct {
    uv_poll_t poll;
    pt_t *pt;
    curl_socket_t fd;
} pollctx_t;

struct xfer {
    pt_t *pt;
    http_req_t *req; /* a ref until the transfer ends */
    CURL *easy;
    struct curl_slist *hdrs;
    char *url;
    int status;
    buf_t rh; /* forwarded response header lines */
    const char *extra; /* pt_forward's extra_hdrs (static storage), or NULL */
    int64_t content_length;
    int started, paused, in_cb, aborted;
    char errbuf[CURL_ERROR_SIZE];
    xfer_t *prev, *next;
};

static void check_done(pt_t *pt);

/* ---------------------------------------------------------------- uv <-> curl glue */

static void on_poll_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    pollctx_t *pc = h->data;
    int flags = 0, running;
    if (status < 0) flags |= CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    pt_t *pt = pc->pt;
    curl_multi_socket_action(pt->multi, pc->fd, flags, &running);
    check_done(pt);
}

static int sock_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
    (void)e;
    pt_t *pt = userp;
    pollctx_t *pc = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (pc) {
            uv_poll_stop(&pc->poll);
            uv_close((uv_handle_t *)&pc->poll, on_poll_closed);
            curl_multi_assign(pt->multi, s, NULL);
        }
        return 0;
    }
    if (!pc) {
        pc = calloc(1, sizeof *pc);
        if (!pc) return -1;
        pc->pt = pt;
        pc->fd = s;
        if (uv_poll_init_socket(pt->loop, &pc->poll, s)) {
            free(pc);
            return -1;
        }
        pc->poll.data = pc;
        curl_multi_assign(pt->multi, s, pc);
    }
    int ev = 0;
    if (what & CURL_POLL_IN) ev |= UV_READABLE;
    if (what & CURL_POLL_OUT) ev |= UV_WRITABLE;
    uv_poll_start(&pc->poll, ev, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *t)
{
    pt_t *pt = t->data;
    int running;
    curl_multi_socket_action(pt->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(pt);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
    (void)m;
    pt_t *pt = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&pt->timer);
    else
        uv_timer_start(&pt->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---------------------------------------------------------------- transfers */

static void xfer_free(xfer_t *x)
{
    pt_t *pt = x->pt;
    if (x->prev)
        x->prev->next = x->next;
    else
        pt->xfers = x->next;
    if (x->next) x->next->prev = x->prev;
    pt->n--;
    curl_multi_remove_handle(pt->multi, x->easy);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    if (x->req) {
        x->req->on_abort = NULL;
        x->req->on_drain = NULL;
        x->req->data = NULL;
        http_req_unref(x->req);
    }
    free(x->url);
    buf_free(&x->rh);
    free(x);
}

static int rh_put(xfer_t *x, const char *p, size_t n)
{
    if (x->rh.len + n + 1 > 256 * 1024) return -1; /* a reply's header block, bounded */
    return buf_append(&x->rh, p, n);
}

static int hop_by_hop(const char *name, size_t n)
{
    static const char *const hop[] = {"Connection", "Keep-Alive",     "Transfer-Encoding",
                                      "TE",         "Trailer",        "Trailers",
                                      "Upgrade",    "Content-Length", "Host",
                                      "Expect",     "Date",           NULL};
    for (size_t i = 0; hop[i]; i++)
        if (strlen(hop[i]) == n && strncasecmp(name, hop[i], n) == 0) return 1;
    return n >= 6 && strncasecmp(name, "Proxy-", 6) == 0;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
    xfer_t *x = ud;
    size_t n = size * nitems, len = n;
    while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
        const char *sp = memchr(buf, ' ', len);
        x->status = sp ? atoi(sp + 1) : 502;
        x->rh.len = 0;
        x->content_length = -1;
        return n;
    }
    if (len == 0) return n; /* end of a header block (a 1xx one is followed by another) */
    const char *colon = memchr(buf, ':', len);
    if (!colon) return n;
    size_t nl = (size_t)(colon - buf);
    if (nl == 14 && strncasecmp(buf, "Content-Length", 14) == 0) {
        x->content_length = strtoll(colon + 1, NULL, 10);
        return n;
    }
    if (hop_by_hop(buf, nl)) return n;
    if (rh_put(x, buf, len) || rh_put(x, "\r\n", 2)) return 0;
    return n;
}

static int xfer_start_answer(xfer_t *x)
{
    if (x->started) return 0;
    x->started = 1;
    int64_t cl = x->content_length;
    if (x->status == 204 || x->status == 304) cl = 0;
    if (x->extra && rh_put(x, x->extra, strlen(x->extra))) return -1;
    return http_stream_begin(x->req, x->status ? x->status : 502, x->rh.data, cl);
}

static size_t on_write(char *buf, size_t size, size_t nmemb, void *ud)
{
    xfer_t *x = ud;
    size_t n = size * nmemb;
    if (x->aborted || !x->req->conn) return 0;
    if (http_req_write_queue(x->req) > HTTP_WRITE_HIGH) {
        x->paused = 1; /* curl keeps these bytes and gives them again after the resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    x->in_cb = 1;
    int rc = xfer_start_answer(x);
    if (!rc) rc = http_stream_write(x->req, buf, n);
    x->in_cb = 0;
    return rc || x->aborted ? 0 : n;
}

static void on_req_drain(http_req_t *r)
{
    xfer_t *x = r->data;
    if (x && x->paused && !x->in_cb) {
        x->paused = 0;
        curl_easy_pause(x->easy, CURLPAUSE_CONT);
    }
}

/* The client went away: stop the transfer (unless curl is in one of our callbacks, then
 * the callback's return value stops it and check_done cleans up). */
static void on_req_abort(http_req_t *r)
{
    xfer_t *x = r->data;
    if (!x) return;
    x->aborted = 1;
    if (!x->in_cb) xfer_free(x);
}

static void answer_error(xfer_t *x, CURLcode rc)
{
    http_req_t *r = x->req;
    char body[1024], hdrs[256];
    int code = 210, status = 502;
    const char *name = "NETWORK_ERROR";
    const char *what = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    int n;
    if (rc == CURLE_OPERATION_TIMEDOUT) {
        code = 159;
        status = 504;
        name = "TIMEOUT_EXCEEDED";
        n = snprintf(body, sizeof body,
                     "Code: 159. DB::Exception: sluice: primary ClickHouse at %s did not answer "
                     "within proxy.passthrough_timeout_ms: %s. (%s)\n",
                     x->pt->base, what, name);
    } else {
        n = snprintf(body, sizeof body,
                     "Code: 210. DB::Exception: sluice: primary ClickHouse at %s is unreachable: "
                     "%s. (%s)\n",
                     x->pt->base, what, name);
    }
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof body) n = sizeof body - 1;
    snprintf(hdrs, sizeof hdrs,
             "Content-Type: text/plain; charset=UTF-8\r\nX-ClickHouse-Exception-Code: %d\r\n%s",
             code, x->extra ? x->extra : "");
    http_respond(r, status, hdrs, body, (size_t)n);
}

static void check_done(pt_t *pt)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(pt->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        xfer_t *x = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode rc = m->data.result;
        if (!x) continue;
        http_req_t *r = x->req;
        if (!x->aborted && r->conn) {
            if (rc == CURLE_OK) {
                if (!xfer_start_answer(x)) http_stream_end(r);
            } else if (!x->started) {
                answer_error(x, rc);
            } else {
                http_stream_abort(r); /* mid-body failure: only closing tells the client */
            }
        }
        xfer_free(x);
    }
}

/* ---------------------------------------------------------------- API */

int pt_init(pt_t **out, uv_loop_t *loop, const char *base_url, uint32_t timeout_ms, char *err,
            size_t errlen)
{
    *out = NULL;
    static int curl_ready; /* curl_global_init once per process (main thread, at start) */
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
            snprintf(err, errlen, "curl_global_init failed");
            return -EIO;
        }
        curl_ready = 1;
    }
    pt_t *pt = calloc(1, sizeof *pt);
    if (!pt) return -ENOMEM;
    pt->loop = loop;
    pt->timeout_ms = timeout_ms ? timeout_ms : 300000;
    pt->base = strdup(base_url ? base_url : "");
    if (!pt->base) {
        free(pt);
        return -ENOMEM;
    }
    size_t bl = strlen(pt->base);
    while (bl && pt->base[bl - 1] == '/')
        pt->base[--bl] = '\0';
    pt->multi = curl_multi_init();
    if (!pt->multi) {
        free(pt->base);
        free(pt);
        snprintf(err, errlen, "curl_multi_init failed");
        return -ENOMEM;
    }
    curl_multi_setopt(pt->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(pt->multi, CURLMOPT_SOCKETDATA, pt);
    curl_multi_setopt(pt->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(pt->multi, CURLMOPT_TIMERDATA, pt);
    curl_multi_setopt(pt->multi, CURLMOPT_MAX_HOST_CONNECTIONS, 64L);
    uv_timer_init(loop, &pt->timer);
    pt->timer.data = pt;
    *out = pt;
    return 0;
}

static int add_header(xfer_t *x, const char *line)
{
    struct curl_slist *n = curl_slist_append(x->hdrs, line);
    if (!n) return -1;
    x->hdrs = n;
    return 0;
}

/* Is name listed in the request's Connection header (hop-by-hop by declaration)? */
static int in_connection_header(const http_req_t *r, const char *name)
{
    const char *c = http_req_header(r, "Connection");
    size_t n = strlen(name);
    while (c && *c) {
        while (*c == ' ' || *c == ',' || *c == '\t')
            c++;
        const char *e = c;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > c && (t[-1] == ' ' || t[-1] == '\t'))
            t--;
        if ((size_t)(t - c) == n && strncasecmp(c, name, n) == 0) return 1;
        c = e;
    }
    return 0;
}

static void answer_plain_502(http_req_t *r, const char *msg)
{
    char body[512];
    int n =
        snprintf(body, sizeof body, "Code: 210. DB::Exception: sluice: %s. (NETWORK_ERROR)\n", msg);
    if (n < 0) n = 0;
    if ((size_t)n >= sizeof body) n = sizeof body - 1;
    http_respond(r, 502,
                 "Content-Type: text/plain; charset=UTF-8\r\nX-ClickHouse-Exception-Code: 210\r\n",
                 body, (size_t)n);
}

int pt_forward(pt_t *pt, http_req_t *r, const char *extra_hdrs)
{
    if (!pt->base[0]) {
        answer_plain_502(r, "no primary ClickHouse is configured for passthrough "
                            "(proxy.passthrough_url)");
        return 0;
    }
    /* Header injection guard: a value with CR or LF never reaches the backend. */
    for (size_t i = 0; i < r->n_hdrs_main; i++) {
        if (strpbrk(http_req_hdr_value(r, i), "\r\n") ||
            strpbrk(http_req_hdr_name(r, i), "\r\n:")) {
            static const char msg[] =
                "Code: 36. DB::Exception: sluice: a header contains CR or LF. (BAD_ARGUMENTS)\n";
            http_respond(r, 400,
                         "Content-Type: text/plain; charset=UTF-8\r\n"
                         "X-ClickHouse-Exception-Code: 36\r\n",
                         msg, sizeof msg - 1);
            return 0;
        }
    }
    xfer_t *x = calloc(1, sizeof *x);
    if (!x) return -ENOMEM;
    x->pt = pt;
    x->extra = extra_hdrs;
    x->content_length = -1;
    size_t ul = strlen(pt->base) + r->path_len + r->query_len + 4;
    x->url = malloc(ul);
    x->easy = curl_easy_init();
    if (!x->url || !x->easy) goto fail;
    const char *path = r->path_len && r->path[0] == '/' ? r->path : "/";
    size_t plen = r->path_len && r->path[0] == '/' ? r->path_len : 1;
    snprintf(x->url, ul, "%s%.*s%s%.*s", pt->base, (int)plen, path, r->query ? "?" : "",
             (int)r->query_len, r->query ? r->query : "");

    int has_accept = 0, has_ctype = 0;
    char line[8192];
    for (size_t i = 0; i < r->n_hdrs_main; i++) {
        const char *name = http_req_hdr_name(r, i), *val = http_req_hdr_value(r, i);
        size_t nl = strlen(name);
        if (hop_by_hop(name, nl) || in_connection_header(r, name)) continue;
        if (strcasecmp(name, "Accept") == 0) has_accept = 1;
        if (strcasecmp(name, "Content-Type") == 0) has_ctype = 1;
        int n = *val ? snprintf(line, sizeof line, "%s: %s", name, val)
                     : snprintf(line, sizeof line, "%s;", name); /* curl: empty value */
        if (n < 0 || (size_t)n >= sizeof line) continue;
        if (add_header(x, line)) goto fail;
    }
    /* No headers the client did not send: switch off curl's defaults. */
    if (add_header(x, "Expect:")) goto fail;
    if (!has_accept && add_header(x, "Accept:")) goto fail;
    if (!has_ctype && add_header(x, "Content-Type:")) goto fail;

    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, x->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)pt->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     (long)(pt->timeout_ms < 10000 ? pt->timeout_ms : 10000));
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    const char *method = http_method_str((enum http_method)r->method);
    if (r->method == HTTP_HEAD) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (r->body_len || r->method == HTTP_POST || r->method == HTTP_PUT) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body ? r->body : "");
        if (r->method != HTTP_POST) curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    } else if (r->method != HTTP_GET) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    http_req_ref(r);
    x->req = r;
    r->data = x;
    r->on_abort = on_req_abort;
    r->on_drain = on_req_drain;
    x->next = pt->xfers;
    if (pt->xfers) pt->xfers->prev = x;
    pt->xfers = x;
    pt->n++;
    if (curl_multi_add_handle(pt->multi, e) != CURLM_OK) {
        xfer_free(x);
        return -EIO;
    }
    return 0;
fail:
    if (x->easy) curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->hdrs);
    free(x->url);
    free(x);
    return -ENOMEM;
}

size_t pt_in_flight(const pt_t *pt)
{
    return pt->n;
}

static void on_pt_timer_closed(uv_handle_t *h)
{
    pt_t *pt = h->data;
    free(pt->base);
    free(pt);
}

void pt_close(pt_t *pt)
{
    if (!pt) return;
    while (pt->xfers)
        xfer_free(pt->xfers);
    curl_multi_cleanup(pt->multi); /* removes sockets: sock_cb closes their poll handles */
    uv_timer_stop(&pt->timer);
    uv_close((uv_handle_t *)&pt->timer, on_pt_timer_closed);
}
