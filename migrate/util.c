/* util.c — the pure pieces of backfill and verify: time parsing and formatting (UTC), slice
 * arithmetic, backfill labels, the canonical value form and row hash behind verify's
 * checksums, a flat JSON-object splitter, identifier checks. No I/O here. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/url.h"
#include "migrate/migrate_internal.h"
#include "sinks/sink.h"

/* ---- time ---- */

static int digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

int migrate_parse_wallclock(const char *s, size_t len, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0;
    if (len < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) || s[7] != '-' ||
        digits(s + 8, 2, &d))
        return -EINVAL;
    size_t p = 10;
    if (len > 10) {
        if (len < 19 || (s[10] != ' ' && s[10] != 'T') || digits(s + 11, 2, &h) || s[13] != ':' ||
            digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &se))
            return -EINVAL;
        p = 19;
        if (p < len && s[p] == '.') { /* fraction: ignored (slices are whole seconds) */
            p++;
            while (p < len && s[p] >= '0' && s[p] <= '9')
                p++;
        }
        if (p < len && s[p] == 'Z') p++;
    }
    if (p != len || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60)
        return -EINVAL;
    *out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + se;
    return 0;
}

int migrate_parse_time(const char *s, int64_t *out)
{
    if (!s || !*s) return -EINVAL;
    size_t n = strlen(s);
    if (strspn(s, "0123456789") == n) {
        if (n > 12) return -EINVAL;
        *out = (int64_t)strtoll(s, NULL, 10);
        return 0;
    }
    return migrate_parse_wallclock(s, n, out);
}

int migrate_parse_duration(const char *s, int64_t *out)
{
    if (!s || !*s) return -EINVAL;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v <= 0 || s[0] == '-' || s[0] == '+') return -EINVAL;
    int64_t mul = 1;
    if (*end == 's')
        end++;
    else if (*end == 'm')
        mul = 60, end++;
    else if (*end == 'h')
        mul = 3600, end++;
    else if (*end == 'd')
        mul = 86400, end++;
    if (*end || v > INT64_MAX / mul / 1000) return -EINVAL;
    *out = (int64_t)v * mul;
    return 0;
}

void migrate_format_time(int64_t t, char out[20])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    memcpy(out, tmp, 19); /* years past 9999 are not a time anyone backfills */
    out[19] = '\0';
}

/* ---- slices ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

uint64_t migrate_slice_count(int64_t since, int64_t until, int64_t width)
{
    if (width <= 0 || until <= since) return 0;
    int64_t first = floor_div(since, width), last = floor_div(until - 1, width);
    return (uint64_t)(last - first + 1);
}

void migrate_slice_get(int64_t since, int64_t until, int64_t width, uint64_t i, int64_t *start,
                       int64_t *end)
{
    int64_t a = (floor_div(since, width) + (int64_t)i) * width;
    *start = a < since ? since : a;
    *end = a + width > until ? until : a + width;
}

/* ---- labels ---- */

uint32_t backfill_plan_hash(const char *where, const char *time_column, int64_t slice_end,
                            uint32_t max_rows, uint64_t max_bytes)
{
    char tmp[128];
    int n = snprintf(tmp, sizeof tmp, "|%" PRId64 "|%" PRIu32 "|%" PRIu64 "|", slice_end, max_rows,
                     max_bytes);
    uint32_t h = fnv1a32(where ? where : "", where ? strlen(where) : 0);
    h ^= fnv1a32(time_column, strlen(time_column)) * 31u;
    h ^= fnv1a32(tmp, (size_t)n) * 131u;
    return h;
}

void backfill_label(char *out, uint64_t logid, const char *sink, const char *table,
                    int64_t slice_start, uint32_t batch, uint32_t plan)
{
    char s[40], t[40];
    sink_key_name(s, sizeof s, sink);
    sink_key_name(t, sizeof t, table);
    /* 7 + 16 + 33 + 33 + 2 + 20 (a negative start is written as its u64) + 11 + 9 <= 131:
     * only an absurd start needs the cut, which keeps it deterministic. */
    char tmp[160];
    snprintf(tmp, sizeof tmp, "sluice_%016" PRIx64 "_%s_%s_b%" PRIu64 "_%" PRIu32 "_%08x", logid, s,
             t, (uint64_t)slice_start, batch, plan);
    size_t n = strlen(tmp);
    if (n > MIGRATE_LABEL_MAX) n = MIGRATE_LABEL_MAX;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

void backfill_retry_label(char *out, uint64_t logid, const char *sink, const char *table,
                          uint32_t rows_hash, uint32_t n_rows)
{
    char s[40], t[40], tmp[160];
    sink_key_name(s, sizeof s, sink);
    sink_key_name(t, sizeof t, table);
    snprintf(tmp, sizeof tmp, "sluice_%016" PRIx64 "_%s_%s_d%08x_%" PRIu32, logid, s, t, rows_hash,
             n_rows);
    size_t n = strlen(tmp);
    if (n > MIGRATE_LABEL_MAX) n = MIGRATE_LABEL_MAX;
    memcpy(out, tmp, n);
    out[n] = '\0';
}

/* ---- URLs ---- */

static int scheme_is(const url_t *u, const char *name)
{
    return u->scheme_len == strlen(name) && strncmp(u->scheme, name, u->scheme_len) == 0;
}

/* The first segment of u's path (the database of a ClickHouse URL) into db. */
static int path_db(const url_t *u, char *db, size_t dblen)
{
    const char *p = u->path;
    size_t n = *p == '/' ? strcspn(p + 1, "/") : 0;
    if (n >= dblen) return -EINVAL;
    memcpy(db, p + (n ? 1 : 0), n);
    db[n] = '\0';
    return 0;
}

int migrate_url_with_auth(const char *url, const char *user, const char *password, char *out,
                          size_t outlen)
{
    url_t u;
    const char *why;
    if (url_split(url, &u, &why)) return -EINVAL;
    buf_t b = {0};
    buf_append(&b, url, u.scheme_len + 3);
    if (user) {
        url_pct_encode(&b, user, strlen(user));
    } else if (u.user) {
        const char *colon = memchr(u.user, ':', u.user_len);
        buf_append(&b, u.user, colon ? (size_t)(colon - u.user) : u.user_len); /* encoded */
    } else {
        buf_puts(&b, "default");
    }
    buf_puts(&b, ":");
    url_pct_encode(&b, password, strlen(password));
    buf_puts(&b, "@");
    buf_append(&b, u.host, u.host_len);
    buf_puts(&b, u.path);
    int rc = b.oom || !b.data || b.len >= outlen ? -EINVAL : 0;
    if (rc == 0) memcpy(out, b.data, b.len + 1);
    buf_free(&b);
    return rc;
}

int migrate_url_endpoint(const char *url, char *host, size_t hostlen, unsigned *port, char *db,
                         size_t dblen)
{
    url_t u;
    const char *why;
    if (url_split(url, &u, &why)) return -EINVAL;
    *port = scheme_is(&u, "https") ? 443 : scheme_is(&u, "clickhouse") ? 8123 : 80;
    size_t hl = u.port ? (size_t)(u.port - 1 - u.host) : u.host_len;
    if (hl >= hostlen) return -EINVAL;
    for (size_t i = 0; i < hl; i++)
        host[i] = (char)(u.host[i] >= 'A' && u.host[i] <= 'Z' ? u.host[i] + 32 : u.host[i]);
    host[hl] = '\0';
    if (strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
        strcmp(host, "[::1]") == 0)
        snprintf(host, hostlen, "loopback");
    if (u.port) *port = (unsigned)strtoul(u.port, NULL, 10); /* url_split checked 1-65535 */
    return path_db(&u, db, dblen);
}

int migrate_http_base(const char *url, const char *strip_scheme, char *base, size_t baselen,
                      char *db, size_t dblen, const char **why)
{
    url_t u;
    if (url_split(url, &u, why)) return -EINVAL;
    const char *scheme = "http";
    *why = "expected http://, https:// or the tool's own scheme";
    if (scheme_is(&u, "https"))
        scheme = "https";
    else if (!scheme_is(&u, "http") &&
             !(strip_scheme && strncmp(url, strip_scheme, strlen(strip_scheme)) == 0))
        return -EINVAL;
    *why = "URL too long";
    const char *auth = u.user ? u.user : u.host; /* userinfo kept: libcurl sends it */
    int n = snprintf(base, baselen, "%s://%.*s/", scheme, (int)(u.host + u.host_len - auth), auth);
    if (n <= 0 || (size_t)n >= baselen) return -EINVAL;
    return path_db(&u, db, dblen);
}

/* ---- canonical form ---- */

static int is_int_text(const char *v, size_t n)
{
    size_t i = (n > 0 && (v[0] == '-' || v[0] == '+')) ? 1 : 0;
    if (i == n) return 0;
    for (; i < n; i++)
        if (v[i] < '0' || v[i] > '9') return 0;
    return 1;
}

/* -?digits[.digits][e[+-]digits], as JSON and SQL print decimals (no hex, inf, nan). */
static int is_decimal_text(const char *v, size_t n)
{
    size_t i = (n > 0 && v[0] == '-') ? 1 : 0, d = 0;
    while (i < n && v[i] >= '0' && v[i] <= '9')
        i++, d++;
    if (i < n && v[i] == '.') {
        i++;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++, d++;
    }
    if (d == 0) return 0;
    if (i < n && (v[i] == 'e' || v[i] == 'E')) {
        i++;
        if (i < n && (v[i] == '+' || v[i] == '-')) i++;
        size_t e = 0;
        while (i < n && v[i] >= '0' && v[i] <= '9')
            i++, e++;
        if (e == 0) return 0;
    }
    return i == n;
}

static int is_datetime_text(const char *v, size_t n)
{
    int64_t t;
    return n >= 19 && (v[10] == ' ' || v[10] == 'T') && migrate_parse_wallclock(v, n, &t) == 0 &&
           v[n - 1] != 'Z';
}


#define CANON_JSON_DEPTH 64
#define CANON_JSON_FIELDS 1024

typedef struct {
    buf_t key; /* decoded */
    const char *val;
    size_t val_len;
} canon_member_t;

static int cmp_member(const void *a, const void *b)
{
    const buf_t *x = &((const canon_member_t *)a)->key, *y = &((const canon_member_t *)b)->key;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = n ? memcmp(x->data, y->data, n) : 0;
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* A JSON string's value re-encoded minimally: StarRocks and ClickHouse escape differently
 * (\u00e9 vs é, \/ vs /), the value is what counts. */
static int canon_json_string(buf_t *out, const char *v, size_t n)
{
    buf_t d = {0};
    int is_null, rc = json_value_text(v, n, &d, &is_null);
    if (rc == 0 && memchr(d.data ? d.data : "", '\0', d.len)) rc = -EINVAL; /* \u0000: as text */
    if (rc == 0) {
        buf_append(out, "\"", 1);
        buf_json_escape(out, d.data ? d.data : "");
        buf_append(out, "\"", 1);
    }
    buf_free(&d);
    return rc < 0 ? rc : (out->oom ? -ENOMEM : 0);
}

/* JSON text → its value in one spelling: no whitespace, object members sorted by key,
 * strings re-escaped, numbers as migrate_canonical prints them. -EINVAL when v is not one
 * JSON value (the caller then keeps the text). */
static int canon_json(buf_t *out, const char *v, size_t n, int depth)
{
    size_t i = json_skip_ws(v, 0, n);
    while (n > i && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    if (i >= n || depth > CANON_JSON_DEPTH) return -EINVAL;
    v += i, n -= i;
    if (v[0] == '"') return json_value_end(v, 0, n) == n ? canon_json_string(out, v, n) : -EINVAL;
    if (v[0] == '[') {
        size_t j = json_skip_ws(v, 1, n);
        if (buf_append(out, "[", 1)) return -ENOMEM;
        if (j < n && v[j] == ']')
            return j + 1 == n ? (buf_append(out, "]", 1) ? -ENOMEM : 0) : -EINVAL;
        for (int first = 1;; first = 0) {
            size_t e = json_value_end(v, j, n);
            if (!e) return -EINVAL;
            if (!first && buf_append(out, ",", 1)) return -ENOMEM;
            int rc = canon_json(out, v + j, e - j, depth + 1);
            if (rc < 0) return rc;
            j = json_skip_ws(v, e, n);
            if (j < n && v[j] == ',') {
                j = json_skip_ws(v, j + 1, n);
                continue;
            }
            if (j + 1 == n && v[j] == ']') return buf_append(out, "]", 1) ? -ENOMEM : 0;
            return -EINVAL;
        }
    }
    if (v[0] == '{') {
        json_member_t *f = malloc(CANON_JSON_FIELDS * sizeof *f);
        if (!f) return -ENOMEM;
        int k = json_members(v, n, f, CANON_JSON_FIELDS), rc = k < 0 ? k : 0;
        canon_member_t *m = k > 0 ? calloc((size_t)k, sizeof *m) : NULL;
        if (k > 0 && !m) rc = -ENOMEM;
        for (int x = 0; rc == 0 && x < k; x++) {
            int is_null;
            m[x].val = f[x].val;
            m[x].val_len = f[x].val_len;
            rc = json_value_text(f[x].key - 1, f[x].key_len + 2, &m[x].key, &is_null);
        }
        if (rc == 0) {
            qsort(m, (size_t)k, sizeof *m, cmp_member);
            buf_append(out, "{", 1);
            for (int x = 0; rc == 0 && x < k; x++) {
                if (x) buf_append(out, ",", 1);
                buf_append(out, "\"", 1);
                buf_json_escape(out, m[x].key.data ? m[x].key.data : "");
                buf_append(out, "\":", 2);
                rc = canon_json(out, m[x].val, m[x].val_len, depth + 1);
            }
            if (rc == 0 && buf_append(out, "}", 1)) rc = -ENOMEM;
        }
        for (int x = 0; m && x < k; x++)
            buf_free(&m[x].key);
        free(m);
        free(f);
        return rc;
    }
    if ((n == 4 && memcmp(v, "null", 4) == 0) || (n == 4 && memcmp(v, "true", 4) == 0) ||
        (n == 5 && memcmp(v, "false", 5) == 0))
        return buf_append(out, v, n) ? -ENOMEM : 0;
    if (!is_decimal_text(v, n)) return -EINVAL;
    return migrate_canonical(out, v, n);
}

int migrate_canonical(buf_t *out, const char *v, size_t n)
{
    char tmp[64];
    /* A JSON object or array (a ClickHouse String holding JSON, a StarRocks JSON column):
     * compared by value, since StarRocks prints {"k": "v"} and ClickHouse {"k":"v"}. */
    if (n >= 2 && (v[0] == '{' || v[0] == '[')) {
        size_t mark = out->len;
        int rc = canon_json(out, v, n, 0);
        if (rc == 0 || rc == -ENOMEM) return rc;
        out->len = mark; /* not JSON: the text itself */
        if (out->data) out->data[mark] = '\0';
    }
    if ((n == 4 && memcmp(v, "true", 4) == 0) || (n == 5 && memcmp(v, "false", 5) == 0))
        return buf_append(out, n == 4 ? "1" : "0", 1) ? -ENOMEM : 0;
    if (n > 0 && n < 40 && is_int_text(v, n)) {
        memcpy(tmp, v, n);
        tmp[n] = '\0';
        errno = 0;
        char *end;
        if (v[0] == '-') {
            long long x = strtoll(tmp, &end, 10);
            if (!errno) return buf_printf(out, "%lld", x);
        } else {
            unsigned long long x = strtoull(tmp, &end, 10);
            if (!errno) return buf_printf(out, "%llu", x);
        }
    }
    if (n > 0 && n < 60 && is_decimal_text(v, n)) {
        memcpy(tmp, v, n);
        tmp[n] = '\0';
        double d = strtod(tmp, NULL);
        if (d == 0) d = 0; /* -0 and 0 agree */
        return buf_printf(out, "%.17g", d);
    }
    if (is_datetime_text(v, n)) {
        size_t end = n;
        if (n > 19 && v[19] == '.') {
            while (end > 20 && v[end - 1] == '0')
                end--;
            if (end == 20) end = 19;
        }
        if (buf_append(out, v, 10) || buf_append(out, " ", 1)) return -ENOMEM;
        return buf_append(out, v + 11, end - 11) ? -ENOMEM : 0;
    }
    return buf_append(out, v, n) ? -ENOMEM : 0;
}

uint64_t migrate_row_hash(const char *const *vals, const size_t *lens, size_t n, buf_t *scratch)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        scratch->len = 0;
        if (!vals[i]) {
            buf_append(scratch, "N;", 2);
        } else {
            buf_t c = {0};
            migrate_canonical(&c, vals[i], lens[i]);
            buf_printf(scratch, "%zu:", c.len);
            buf_append(scratch, c.data ? c.data : "", c.len);
            buf_append(scratch, ";", 1);
            buf_free(&c);
        }
        for (size_t k = 0; k < scratch->len; k++) {
            h ^= (unsigned char)scratch->data[k];
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

/* ---- identifiers ---- */

int migrate_ident_ok(const char *s)
{
    if (!s || !*s || strlen(s) > 200) return 0;
    for (; *s; s++)
        if (*s == '`' || *s == '"' || *s == '\'' || *s == '\\' || (unsigned char)*s < 0x20)
            return 0;
    return 1;
}
