/* fuzz_json_reader.c — libFuzzer target: common/json's reader for replies (json_members,
 * json_value_text, json_get), the one migrate's rows, verify's buckets and the sinks'
 * StarRocks/ClickHouse replies go through: every span it returns lies inside the input,
 * decoding never reads past a value, nesting past JSON_MAX_DEPTH ends as an error. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    json_member_t m[16];
    int n = json_members(s, size, m, 16);
    buf_t b = {0};
    for (int i = 0; i < n; i++) {
        if (m[i].key < s || m[i].key + m[i].key_len > s + size) __builtin_trap();
        if (m[i].val < s || m[i].val + m[i].val_len > s + size) __builtin_trap();
        int is_null = 0;
        b.len = 0;
        if (b.data) b.data[0] = '\0';
        if (json_value_text(m[i].val, m[i].val_len, &b, &is_null) == 0 && b.data &&
            b.data[b.len] != '\0')
            __builtin_trap();
    }
    buf_free(&b);
    static const char *const keys[] = {"Status", "Message", "name", "a"};
    char out[64];
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        int r = json_get(s, size, keys[k], out, sizeof out);
        if (r < -1 || r > 1 || strlen(out) >= sizeof out) __builtin_trap();
    }
    return 0;
}
