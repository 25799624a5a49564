/* convert.c — from stored rows to the body a backend takes; the ClickHouse half. ClickHouse
 * gets the very bytes the client sent (header rows ahead of each chunk; JSONObjectEachRow rows
 * wrapped back into one object). StarRocks' conversion is sr_convert.c. */
#include <errno.h>
#include <string.h>

#include "sinks/convert_internal.h"

int sink_fmt_name_ok(const char *fmt)
{
    size_t n = 0;
    for (; fmt && fmt[n]; n++) {
        char c = fmt[n];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return 0;
    }
    return n > 0 && n <= 64;
}

static int is_fmt(const sink_batch_t *b, const char *name)
{
    return strcmp(b->fmt, name) == 0;
}

int sink_ch_body(const sink_batch_t *b, buf_t *out, const char **body, size_t *len)
{
    out->len = 0;
    out->oom = 0;
    if (is_fmt(b, "JSONObjectEachRow")) {
        /* Rows are `"name": {row}` lines: one object again, members comma-separated. */
        if (out_put(out, "{", 1) < 0) return -ENOMEM;
        const char *p = b->body, *end = b->body + b->body_len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            const char *e = nl ? nl + 1 : end;
            if (p != b->body && out_put(out, ",", 1) < 0) return -ENOMEM;
            if (out_put(out, p, (size_t)(e - p)) < 0) return -ENOMEM;
            p = e;
        }
        if (out_put(out, "}\n", 2) < 0) return -ENOMEM;
    } else if (b->hdr_len) {
        if (out_put(out, b->hdr, b->hdr_len) < 0 || out_put(out, b->body, b->body_len) < 0)
            return -ENOMEM;
    } else {
        *body = b->body;
        *len = b->body_len;
        return 0;
    }
    *body = out->data;
    *len = out->len;
    return 0;
}
