/* auth.c — ClickHouse's three ways of passing credentials (X-ClickHouse-User/Key headers,
 * HTTP Basic, user/password URL params) and the check against proxy.users. */
#include <string.h>
#include <strings.h>

#include "proxy/proxy_internal.h"

static int b64val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int proxy_base64_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    while (len && in[len - 1] == '=')
        len--;
    for (size_t i = 0; i < len; i++) {
        int v = b64val((unsigned char)in[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= cap) return -1;
            out[n++] = (char)((acc >> bits) & 0xff);
        }
    }
    if (bits >= 6) return -1; /* a lone trailing character */
    *out_len = n;
    return 0;
}

static int set(char *dst, size_t cap, const char *src, size_t n)
{
    if (n >= cap) return -1;
    memcpy(dst, src, n);
    dst[n] = '\0';
    return 0;
}

int proxy_creds_from(proxy_creds_t *c, const char *authorization, const char *xuser,
                     const char *xkey, const char *puser, const char *ppass)
{
    memset(c, 0, sizeof *c);
    strcpy(c->user, "default");
    c->has_header = xuser || xkey;
    c->has_basic = authorization && strncasecmp(authorization, "Basic ", 6) == 0;
    c->has_params = puser || ppass;
    if (c->has_header + c->has_basic + c->has_params > 1) return -1;
    if (c->has_basic) {
        const char *b = authorization + 6;
        while (*b == ' ')
            b++;
        char dec[600];
        size_t n;
        if (proxy_base64_decode(b, strlen(b), dec, sizeof dec - 1, &n)) return -1;
        dec[n] = '\0';
        char *colon = memchr(dec, ':', n);
        if (!colon) return -1;
        if (set(c->user, sizeof c->user, dec, (size_t)(colon - dec))) return -1;
        if (set(c->password, sizeof c->password, colon + 1, n - (size_t)(colon - dec) - 1))
            return -1;
        if (!c->user[0]) strcpy(c->user, "default");
        return 0;
    }
    const char *u = c->has_header ? xuser : puser;
    const char *p = c->has_header ? xkey : ppass;
    if (u && *u && set(c->user, sizeof c->user, u, strlen(u))) return -1;
    if (p && set(c->password, sizeof c->password, p, strlen(p))) return -1;
    return 0;
}

/* Compare without an early exit on the first differing byte of the password. */
static int ct_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    unsigned char d = la != lb;
    for (size_t i = 0; i < la; i++)
        d |= (unsigned char)(a[i] ^ b[i < lb ? i : 0]);
    return d == 0;
}

int proxy_auth_check(const cfg_proxy_t *p, const proxy_creds_t *c)
{
    if (!p->n_users) return 0;
    int ok = 0;
    for (size_t i = 0; i < p->n_users; i++) {
        const char *pw = p->users[i].password ? p->users[i].password : "";
        if (p->users[i].user && strcmp(p->users[i].user, c->user) == 0 && ct_equal(pw, c->password))
            ok = 1;
    }
    return ok ? 0 : -1;
}
