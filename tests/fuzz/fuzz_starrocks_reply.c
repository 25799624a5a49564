/* fuzz_starrocks_reply.c — libFuzzer target: the Stream Load reply classification
 * (sink_sr_classify, sink_sr_load_state, and the tolerant JSON member reader sink_json_get
 * under them). The reply
 * comes from the network: any bytes, with any HTTP status, must classify without reading
 * outside the body (not NUL-terminated here), with a NUL-terminated message. Input: byte 0
 * picks the HTTP status (and whether the transfer failed), the rest is the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/sink_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 200, 200, 200, 307, 401, 403, 404,
                                   500, 503, 0,   200, 200, 400, 429, 200};
    if (size < 1) return 0;
    int status = statuses[data[0] & 15];
    int failed = (data[0] & 0xf0) == 0xf0;
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    memcpy(body, data + 1, len);

    sink_result_t res;
    sink_sr_classify(status, len ? body : NULL, len, failed, failed ? "fuzz" : NULL, &res);
    if (res.kind > SINK_RES_UNKNOWN) __builtin_trap();
    if (memchr(res.msg, '\0', sizeof res.msg) == NULL) __builtin_trap();
    if (res.kind == SINK_RES_OK && (failed || status != 200)) __builtin_trap();
    if (res.whole && res.kind != SINK_RES_PERMANENT) __builtin_trap();
    if (memchr(res.existing, '\0', sizeof res.existing) == NULL) __builtin_trap();
    if (memchr(res.error_url, '\0', sizeof res.error_url) == NULL) __builtin_trap();
    if (res.label_used && res.kind == SINK_RES_PERMANENT) __builtin_trap();

    /* The get_load_state reply reader (same body). */
    char state[32];
    if (sink_sr_load_state(body, len, state, sizeof state) == 0 &&
        memchr(state, '\0', sizeof state) == NULL)
        __builtin_trap();

    /* The member reader on its own, with outputs of every small size. */
    static const char *const keys[] = {"Status", "Message", "ExistingJobStatus", "status", "msg"};
    char out[64];
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        size_t cap = (size_t)(data[0] >> 4) % 8 + 1 + k * 7;
        char *o = malloc(cap); /* exact size: ASan sees a write past it */
        if (!o) break;
        int r = sink_json_get(body, len, keys[k], o, cap);
        if (r < -1 || r > 1 || memchr(o, '\0', cap) == NULL) __builtin_trap();
        free(o);
    }
    (void)out;
    free(body);
    return 0;
}
