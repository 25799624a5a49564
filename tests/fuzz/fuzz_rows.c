/* fuzz_rows.c — libFuzzer target: the JSONEachRow validator/normaliser. On success the
 * output must be n_rows lines, each one JSON object that validates again on its own. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "proxy/proxy_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int spare = size && (data[0] & 1);
    char *in = malloc(size + 1);
    if (!in) return 0;
    memcpy(in, data, size);
    proxy_rows_t r;
    int rc = proxy_rows_parse(in, size, spare ? size + 1 : size, &r);
    if (rc == 0) {
        uint32_t n = 0;
        const char *p = r.data, *end = r.data + r.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            if (!nl) __builtin_trap(); /* every row ends in '\n' */
            size_t pos = 0;
            int has_nl;
            char err[64];
            if (*p != '{') __builtin_trap();
            if (json_skip_value(p, (size_t)(nl - p), &pos, &has_nl, err, sizeof err) ||
                pos != (size_t)(nl - p) || has_nl)
                __builtin_trap();
            n++;
            p = nl + 1;
        }
        if (n != r.n_rows) __builtin_trap();
        proxy_rows_free(&r);
    } else if (rc != -EINVAL || r.bad_row == 0 || !r.err[0]) {
        __builtin_trap();
    }
    free(in);
    return 0;
}
