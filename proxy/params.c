/* params.c — URL query strings: split, percent-decode (common/url's rule), and tell
 * ClickHouse settings (kept with the rows in the log) from the HTTP interface's own
 * parameters. */
#include <stdlib.h>
#include <string.h>

#include "common/url.h"
#include "proxy/proxy_internal.h"
#include "sinks/sink.h"

int proxy_params_parse(const char *qs, size_t len, proxy_param_t *out, size_t *n, char **store)
{
    *n = 0;
    *store = NULL;
    if (!len) return 0;
    char *s = malloc(PROXY_PARAMS_STORE(len));
    if (!s) return -1;
    if (proxy_params_parse_in(qs, len, out, n, s)) {
        free(s);
        return -1;
    }
    *store = s;
    return 0;
}

int proxy_params_parse_in(const char *qs, size_t len, proxy_param_t *out, size_t *n, char *s)
{
    *n = 0;
    size_t o = 0, i = 0;
    while (i <= len) {
        size_t j = i;
        while (j < len && qs[j] != '&')
            j++;
        if (j > i) {
            if (*n == PROXY_MAX_PARAMS) goto fail;
            const char *eq = memchr(qs + i, '=', j - i);
            size_t klen = eq ? (size_t)(eq - (qs + i)) : j - i;
            long kl = url_pct_decode(qs + i, klen, URL_PLUS_IS_SPACE, s + o);
            if (kl < 0) goto fail;
            out[*n].key = s + o;
            o += (size_t)kl + 1;
            size_t voff = eq ? klen + 1 : j - i;
            long vl = url_pct_decode(qs + i + voff, j - i - voff, URL_PLUS_IS_SPACE, s + o);
            if (vl < 0) goto fail;
            out[*n].value = s + o;
            o += (size_t)vl + 1;
            (*n)++;
        }
        i = j + 1;
    }
    return 0;
fail:
    *n = 0;
    return -1;
}

const char *proxy_param_get(const proxy_param_t *p, size_t n, const char *key)
{
    const char *v = NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(p[i].key, key) == 0) v = p[i].value; /* the last one wins */
    return v;
}

/* The proxy keeps with the rows exactly what the sinks forward: one list, in sinks/. */
int proxy_param_is_setting(const char *key)
{
    return sink_ch_param_is_setting(key);
}
