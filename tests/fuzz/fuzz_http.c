/* fuzz_http.c — libFuzzer target: the HTTP request parser (http_rp_*), fed the input in
 * pieces whose sizes come from the first byte, with tight limits so the 413/431 paths run. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "proxy/http_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    size_t step = (size_t)(data[0] % 17) + 1;
    data++;
    size--;
    http_rp_t rp;
    http_rp_init(&rp, NULL, 2048, 4096);
    size_t off = 0;
    while (off < size && !rp.status) {
        size_t n = size - off < step ? size - off : step;
        size_t used = http_rp_feed(&rp, (const char *)data + off, n);
        if (used > n) __builtin_trap();
        off += used;
        if (rp.complete) {
            http_req_t *r = http_rp_take(&rp);
            /* Touch what the handler reads. */
            volatile size_t sink = r->body_len + r->path_len + r->query_len;
            for (size_t i = 0; i < r->n_hdrs; i++)
                sink += strlen(http_req_hdr_name(r, i)) + strlen(http_req_hdr_value(r, i));
            if (r->body_len && r->body_cap <= r->body_len) __builtin_trap();
            if (r->body_len) sink += (unsigned char)r->body[r->body_len - 1];
            (void)sink;
            http_req_unref(r);
        } else if (used < n && !rp.status) {
            __builtin_trap(); /* stopped without a request or an error */
        }
    }
    http_rp_free(&rp);
    return 0;
}
