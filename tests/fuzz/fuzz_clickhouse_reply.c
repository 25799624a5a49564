/* fuzz_clickhouse_reply.c — libFuzzer target: the ClickHouse reply handling of the
 * clickhouse sink: exception code from the X-ClickHouse-Exception-Code header or the body
 * ("Code: N," / "Code: N."), classification, and the version probe's answer. Input: byte 0
 * picks the HTTP status (and a failed transfer), byte 1 the header's length, then the
 * header value, then the body (not NUL-terminated). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/sink_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {200, 400, 404, 500, 401, 403, 422, 429,
                                   503, 0,   408, 200, 400, 500, 413, 501};
    if (size < 2) return 0;
    int status = statuses[data[0] & 15];
    int failed = (data[0] & 0xf0) == 0xf0;
    size_t hlen = data[1] % 32; /* the sink keeps at most 31 chars of the header */
    data += 2;
    size -= 2;
    if (hlen > size) hlen = size;
    char header[32];
    memcpy(header, data, hlen);
    header[hlen] = '\0';
    size_t len = size - hlen;
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    memcpy(body, data + hlen, len);

    int code = sink_ch_error_code(hlen ? header : NULL, len ? body : NULL, len);
    if (code < 0) __builtin_trap();
    sink_result_t res;
    sink_ch_classify(status, code, len ? body : NULL, len, failed, failed ? "fuzz" : NULL, &res);
    if (res.kind > SINK_RES_UNKNOWN) __builtin_trap();
    if (memchr(res.msg, '\0', sizeof res.msg) == NULL) __builtin_trap();
    if (res.kind == SINK_RES_OK && (failed || status != 200)) __builtin_trap();
    if (res.whole && res.kind != SINK_RES_PERMANENT) __builtin_trap();

    /* The version probe parses the body as a C string. */
    char *s = malloc(len + 1);
    if (s) {
        memcpy(s, body, len);
        s[len] = '\0';
        int v = sink_ch_parse_version(s);
        if (v < -1) __builtin_trap();
        (void)sink_ch_dedup_enabled(CFG_DEDUP_AUTO, v);
        free(s);
    }
    free(body);
    return 0;
}
