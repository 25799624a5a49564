/* passthrough.h — forwards a request to the primary ClickHouse with libcurl's multi
 * interface driven by the libuv loop (uv_poll + uv_timer + curl_multi_socket_action) and
 * streams the answer back. Loop thread only. */
#ifndef SLUICE_PASSTHROUGH_H
#define SLUICE_PASSTHROUGH_H

#include <stdint.h>
#include <uv.h>

#include "proxy/http_server.h"

typedef struct pt pt_t;

/* base_url NULL or "": every forward answers 502 (no primary ClickHouse configured). */
int pt_init(pt_t **out, uv_loop_t *loop, const char *base_url, uint32_t timeout_ms, char *err,
            size_t errlen);
/* Forward r (method, path, query, end-to-end headers, raw body) and answer it, adding
 * extra_hdrs (NULL, or "Name: value\r\n" lines in static storage) to the answer. 0, or
 * negative when nothing was started (r is then still unanswered). */
int pt_forward(pt_t *pt, http_req_t *r, const char *extra_hdrs);
size_t pt_in_flight(const pt_t *pt);
/* Cancel every transfer and release everything (memory goes in close callbacks). */
void pt_close(pt_t *pt);

#endif
