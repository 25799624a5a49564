/* route.c — what a request is, from its line, headers and parameters alone (no I/O, no
 * allocation, unit-tested): a health probe answered here, a statement sluice reads (an
 * INSERT goes to the WAL), or anything else, forwarded to the primary ClickHouse. */
#include <http_parser.h>
#include <string.h>
#include <strings.h>

#include "proxy/proxy_internal.h"

static int path_is(const proxy_req_view_t *v, const char *path)
{
    size_t n = strlen(path);
    return v->path_len == n && memcmp(v->path, path, n) == 0;
}

proxy_route_t proxy_classify(const proxy_req_view_t *v)
{
    int get_or_head = v->method == HTTP_GET || v->method == HTTP_HEAD;
    /* "/" alone (no query string, no body) is ClickHouse's static "Ok." too: health checks
     * keep answering during a backend outage. */
    int root_ok = path_is(v, "/") && !v->has_query && !v->body_len && get_or_head;
    if (root_ok || path_is(v, "/ping") || path_is(v, "/replicas_status"))
        return get_or_head ? PROXY_ROUTE_OK : PROXY_ROUTE_BAD_METHOD;
    /* Statements come as POST/PUT to "/"; a multipart form (external tables) or a body the
     * client compressed in ClickHouse's own framing (decompress=1) is ClickHouse's to read. */
    int statement =
        (path_is(v, "/") || v->path_len == 0) &&
        (v->method == HTTP_POST || v->method == HTTP_PUT) &&
        !(v->content_type && strncasecmp(v->content_type, "multipart/form-data", 19) == 0) &&
        !(v->decompress && strcmp(v->decompress, "0") != 0);
    return statement ? PROXY_ROUTE_STATEMENT : PROXY_ROUTE_PASS;
}
