/* url.c — split, percent-decode, percent-encode and redact URLs (see url.h). */
#include "common/url.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

long url_pct_decode(const char *s, size_t n, unsigned flags, char *dst)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+' && (flags & URL_PLUS_IS_SPACE)) {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n) return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0 || ((flags & URL_REFUSE_NUL) && h == 0 && l == 0)) return -1;
            c = (char)(h * 16 + l);
            i += 2;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return (long)o;
}

int url_pct_encode(buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                         (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
        char t[3] = {(char)c, hex[c >> 4], hex[c & 15]};
        if (!unreserved) t[0] = '%';
        if (buf_append(b, t, unreserved ? 1 : 3)) return -1;
    }
    return 0;
}

static int scheme_len(const char *s)
{
    int i = 0;
    if (!isalpha((unsigned char)s[0])) return -1;
    while (isalnum((unsigned char)s[i]) || s[i] == '+' || s[i] == '-' || s[i] == '.')
        i++;
    return strncmp(s + i, "://", 3) == 0 ? i : -1;
}

int url_split(const char *s, url_t *u, const char **why)
{
    memset(u, 0, sizeof *u);
    int sl = scheme_len(s);
    if (sl < 0) return *why = "expected scheme://host[:port]", -EINVAL;
    u->scheme = s;
    u->scheme_len = (size_t)sl;
    const char *auth = s + sl + 3;
    size_t alen = strcspn(auth, "/?#");
    u->path = auth + alen;
    if (strpbrk(u->path, "?#")) return *why = "a query string or fragment is not allowed", -EINVAL;
    for (const char *p = u->path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return *why = "spaces or control characters in URL", -EINVAL;
    const char *at = memrchr(auth, '@', alen);
    if (at) {
        u->user = auth;
        u->user_len = (size_t)(at - auth);
        u->host = at + 1;
    } else {
        u->host = auth;
    }
    u->host_len = (size_t)(auth + alen - u->host);
    const char *h = u->host, *hend = u->host + u->host_len, *pc = NULL;
    if (h < hend && *h == '[') {
        const char *rb = memchr(h, ']', u->host_len);
        if (!rb || rb == h + 1) return *why = "bad [IPv6] host in URL", -EINVAL;
        for (const char *q = h + 1; q < rb; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.')
                return *why = "bad [IPv6] host in URL", -EINVAL;
        if (rb + 1 < hend) {
            if (rb[1] != ':') return *why = "bad [IPv6] host in URL", -EINVAL;
            pc = rb + 1;
        }
    } else {
        pc = memchr(h, ':', u->host_len);
        const char *he = pc ? pc : hend;
        if (he == h) return *why = "URL has no host", -EINVAL;
        for (const char *q = h; q < he; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_')
                return *why = "bad character in URL host", -EINVAL;
    }
    if (pc) {
        unsigned long v = 0;
        u->port = pc + 1;
        u->port_len = (size_t)(hend - u->port);
        if (u->port_len == 0 || u->port_len > 5) return *why = "bad port in URL (1-65535)", -EINVAL;
        for (const char *q = u->port; q < hend; q++) {
            if (!isdigit((unsigned char)*q)) return *why = "bad port in URL (1-65535)", -EINVAL;
            v = v * 10 + (unsigned long)(*q - '0');
        }
        if (v < 1 || v > 65535) return *why = "bad port in URL (1-65535)", -EINVAL;
    }
    return 0;
}

void url_redact(const char *url, char *out, size_t outlen)
{
    if (!url) url = "";
    const char *auth = strstr(url, "://");
    auth = auth ? auth + 3 : url;
    size_t alen = strcspn(auth, "/?#");
    const char *at = memrchr(auth, '@', alen);
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon)
        snprintf(out, outlen, "%.*s***%s", (int)(colon + 1 - url), url, at);
    else
        snprintf(out, outlen, "%s", url);
}
