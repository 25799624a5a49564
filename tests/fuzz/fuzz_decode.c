/* fuzz_decode.c — libFuzzer target: Content-Encoding decoders (gzip, deflate, zstd, br),
 * chosen by the first byte, output bounded by a small max so bombs end as ETOOBIG. */
#include <stdint.h>
#include <stdlib.h>

#include "proxy/proxy_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const enc[] = {"gzip", "deflate", "zstd", "br"};
    if (size < 1) return 0;
    const char *e = enc[data[0] & 3];
    char *out = NULL;
    size_t out_len = 0;
    char err[160];
    int rc =
        proxy_decode(e, (const char *)data + 1, size - 1, 1 << 20, &out, &out_len, err, sizeof err);
    if (rc == 0) {
        if (!out || out_len > (1 << 20)) __builtin_trap();
        volatile char c = out_len ? out[out_len - 1] : 0;
        (void)c;
        free(out);
    } else if (out) {
        __builtin_trap();
    }
    return 0;
}
