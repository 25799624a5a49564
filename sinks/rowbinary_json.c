/* rowbinary_json.c — RowBinaryWithNamesAndTypes decoded to JSON lines for a StarRocks Stream
 * Load (sink_rowbinary_json): integers, floats, Bool, strings, UUID, dates and times (UTC),
 * Decimal up to 18 digits, Nullable, LowCardinality, Array, Map, Tuple. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "sinks/convert_internal.h"

/* Days since 1970-01-01 → y-m-d (the civil-from-days algorithm of the proleptic Gregorian
 * calendar). */
static void civil(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static int put_datetime(buf_t *o, int64_t secs, int64_t frac, unsigned digits)
{
    if (secs < -62135596800ll || secs > 253402300799ll) return -1; /* outside years 1..9999 */
    int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
    int64_t rem = secs - days * 86400;
    int y;
    unsigned m, d;
    civil(days, &y, &m, &d);
    if (buf_printf(o, "\"%04d-%02u-%02u %02u:%02u:%02u", y, m, d, (unsigned)(rem / 3600),
                   (unsigned)(rem / 60 % 60), (unsigned)(rem % 60)))
        return -ENOMEM;
    if (digits && buf_printf(o, ".%0*lld", (int)digits, (long long)frac)) return -ENOMEM;
    return buf_puts(o, "\"") ? -ENOMEM : 0;
}

static int put_decimal(buf_t *o, int64_t v, unsigned scale)
{
    if (scale > 18) return -2; /* a scale no 64-bit Decimal has */
    uint64_t a = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v, p = 1;
    for (unsigned i = 0; i < scale; i++)
        p *= 10;
    if (buf_printf(o, "%s%llu", v < 0 ? "-" : "", (unsigned long long)(a / p))) return -ENOMEM;
    if (scale && buf_printf(o, ".%0*llu", (int)scale, (unsigned long long)(a % p)))
        return -ENOMEM;
    return 0;
}

static int put_json_bytes(buf_t *o, const unsigned char *s, size_t n)
{
    if (buf_puts(o, "\"")) return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char e[6];
        if (buf_append(o, e, json_escape_byte(s[i], e))) return -ENOMEM;
    }
    return buf_puts(o, "\"") ? -ENOMEM : 0;
}

/* One value of type t as JSON for a Stream Load. -1 bytes do not fit, -2 type not decoded. */
static int value_json(rb_t *r, const char *t, size_t n, buf_t *o, int depth)
{
    static const struct {
        const char *name;
        uint8_t size, sign;
    } ints[] = {{"UInt8", 1, 0}, {"UInt16", 2, 0}, {"UInt32", 4, 0}, {"UInt64", 8, 0},
                {"Int8", 1, 1},  {"Int16", 2, 1},  {"Int32", 4, 1},  {"Int64", 8, 1}};
    const char *a;
    size_t al;
    if (depth > 32) return -2;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    for (size_t i = 0; i < sizeof ints / sizeof *ints; i++)
        if (rb_type_is(t, n, ints[i].name, &a, &al) && !a) {
            if (r->end - r->p < ints[i].size) return -1;
            uint64_t v = rb_le(r->p, ints[i].size);
            r->p += ints[i].size;
            if (ints[i].sign && ints[i].size < 8 && (v >> (8 * ints[i].size - 1)))
                v |= ~0ull << (8 * ints[i].size);
            return (ints[i].sign ? buf_printf(o, "%lld", (long long)v)
                                 : buf_printf(o, "%llu", (unsigned long long)v))
                       ? -ENOMEM
                       : 0;
        }
    if ((rb_type_is(t, n, "Float32", &a, &al) || rb_type_is(t, n, "Float64", &a, &al)) && !a) {
        size_t sz = t[5] == '3' ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        uint64_t bits = rb_le(r->p, sz);
        r->p += sz;
        double d;
        if (sz == 4) {
            uint32_t b32 = (uint32_t)bits;
            float f;
            memcpy(&f, &b32, 4);
            d = f;
        } else {
            memcpy(&d, &bits, 8);
        }
        if (d != d || d - d != 0) return buf_puts(o, "null") ? -ENOMEM : 0;
        return buf_printf(o, sz == 4 ? "%.9g" : "%.17g", d) ? -ENOMEM : 0;
    }
    if (rb_type_is(t, n, "Bool", &a, &al) && !a) {
        if (r->p >= r->end) return -1;
        return buf_puts(o, *r->p++ ? "true" : "false") ? -ENOMEM : 0;
    }
    if (rb_type_is(t, n, "String", &a, &al) && !a) {
        uint64_t k;
        if (rb_uleb(r, &k) || (uint64_t)(r->end - r->p) < k) return -1;
        r->p += k;
        return put_json_bytes(o, r->p - k, (size_t)k);
    }
    if (rb_type_is(t, n, "FixedString", &a, &al) && a) {
        if (*a < '0' || *a > '9') return -2;
        uint64_t k = strtoull(a, NULL, 10), l;
        if ((uint64_t)(r->end - r->p) < k) return -1;
        for (l = k; l && r->p[l - 1] == 0; l--) {
        }
        r->p += k;
        return put_json_bytes(o, r->p - k, (size_t)l);
    }
    if (rb_type_is(t, n, "UUID", &a, &al) && !a) {
        if (r->end - r->p < 16) return -1;
        uint64_t hi = rb_le(r->p, 8), lo = rb_le(r->p + 8, 8);
        r->p += 16;
        return buf_printf(o, "\"%08llx-%04llx-%04llx-%04llx-%012llx\"",
                          (unsigned long long)(hi >> 32), (unsigned long long)(hi >> 16 & 0xffff),
                          (unsigned long long)(hi & 0xffff), (unsigned long long)(lo >> 48),
                          (unsigned long long)(lo & 0xffffffffffffull))
                   ? -ENOMEM
                   : 0;
    }
    if ((rb_type_is(t, n, "Date", &a, &al) && !a) || (rb_type_is(t, n, "Date32", &a, &al) && !a)) {
        size_t sz = n == 4 ? 2 : 4;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t days = sz == 2 ? (int64_t)rb_le(r->p, 2) : (int64_t)(int32_t)rb_le(r->p, 4);
        r->p += sz;
        int y;
        unsigned m, d;
        civil(days, &y, &m, &d);
        return buf_printf(o, "\"%04d-%02u-%02u\"", y, m, d) ? -ENOMEM : 0;
    }
    if (rb_type_is(t, n, "DateTime", &a, &al)) { /* a time zone argument: shown in UTC */
        if (r->end - r->p < 4) return -1;
        uint64_t s = rb_le(r->p, 4);
        r->p += 4;
        return put_datetime(o, (int64_t)s, 0, 0);
    }
    if (rb_type_is(t, n, "DateTime64", &a, &al) && a) {
        unsigned p = (unsigned)strtoul(a, NULL, 10);
        if (p > 9) return -2;
        if (r->end - r->p < 8) return -1;
        int64_t v = (int64_t)rb_le(r->p, 8), sc = 1;
        r->p += 8;
        for (unsigned i = 0; i < p; i++)
            sc *= 10;
        int64_t s = v / sc, f = v % sc;
        if (f < 0) f += sc, s--;
        return put_datetime(o, s, f, p);
    }
    if (rb_type_is(t, n, "Decimal", &a, &al) && a) {
        unsigned long prec = strtoul(a, NULL, 10);
        const char *c = memchr(a, ',', al);
        unsigned scale = c ? (unsigned)strtoul(c + 1, NULL, 10) : 0;
        if (prec > 18) return -2;
        size_t sz = prec <= 9 ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t v = sz == 4 ? (int64_t)(int32_t)rb_le(r->p, 4) : (int64_t)rb_le(r->p, 8);
        r->p += sz;
        return put_decimal(o, v, scale);
    }
    if ((rb_type_is(t, n, "Decimal32", &a, &al) || rb_type_is(t, n, "Decimal64", &a, &al)) && a) {
        size_t sz = t[8] == '3' ? 4 : 8;
        if ((size_t)(r->end - r->p) < sz) return -1;
        int64_t v = sz == 4 ? (int64_t)(int32_t)rb_le(r->p, 4) : (int64_t)rb_le(r->p, 8);
        r->p += sz;
        return put_decimal(o, v, (unsigned)strtoul(a, NULL, 10));
    }
    if (rb_type_is(t, n, "Nullable", &a, &al) && a) {
        if (r->p >= r->end) return -1;
        if (*r->p++) return buf_puts(o, "null") ? -ENOMEM : 0;
        return value_json(r, a, al, o, depth + 1);
    }
    if (rb_type_is(t, n, "LowCardinality", &a, &al) && a) return value_json(r, a, al, o, depth + 1);
    if (rb_type_is(t, n, "Array", &a, &al) && a) {
        uint64_t k;
        if (rb_uleb(r, &k) || k > (uint64_t)(r->end - r->p)) return -1;
        if (buf_puts(o, "[")) return -ENOMEM;
        for (uint64_t i = 0; i < k; i++) {
            int rc = (i && buf_puts(o, ",")) ? -ENOMEM : value_json(r, a, al, o, depth + 1);
            if (rc) return rc;
        }
        return buf_puts(o, "]") ? -ENOMEM : 0;
    }
    if (rb_type_is(t, n, "Map", &a, &al) && a) {
        size_t kl, vl;
        const char *kt = rb_next_arg(&a, &al, &kl), *vt = rb_next_arg(&a, &al, &vl);
        uint64_t k;
        if (!kt || !vt || rb_uleb(r, &k) || k > (uint64_t)(r->end - r->p)) return -1;
        if (buf_puts(o, "{")) return -ENOMEM;
        for (uint64_t i = 0; i < k; i++) {
            if (i && buf_puts(o, ",")) return -ENOMEM;
            size_t at = o->len;
            int rc = value_json(r, kt, kl, o, depth + 1);
            if (rc) return rc;
            if (o->data[at] != '"') { /* a non-string key, as a JSON string */
                if (buf_puts(o, "\"\"")) return -ENOMEM;
                memmove(o->data + at + 1, o->data + at, o->len - 2 - at);
                o->data[at] = '"'; /* the second '"' appended stays last */
            }
            rc = buf_puts(o, ":") ? -ENOMEM : value_json(r, vt, vl, o, depth + 1);
            if (rc) return rc;
        }
        return buf_puts(o, "}") ? -ENOMEM : 0;
    }
    if (rb_type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        int first = 1;
        if (buf_puts(o, "[")) return -ENOMEM;
        while ((e = rb_next_arg(&a, &al, &el))) {
            rb_tuple_elem_type(&e, &el);
            int rc = (!first && buf_puts(o, ",")) ? -ENOMEM : value_json(r, e, el, o, depth + 1);
            if (rc) return rc;
            first = 0;
        }
        return buf_puts(o, "]") ? -ENOMEM : 0;
    }
    return -2;
}

int sink_rowbinary_json(const char *data, size_t len, buf_t *o, char *err, size_t errlen)
{
    enum { MAXC = 1024 };
    const char *names[MAXC], *types[MAXC];
    size_t nl[MAXC], tl[MAXC];
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    uint64_t nc;
    if (rb_uleb(&r, &nc) || nc == 0 || nc > MAXC) goto bad;
    for (int pass = 0; pass < 2; pass++)
        for (uint64_t i = 0; i < nc; i++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad;
            (pass ? types : names)[i] = (const char *)r.p;
            (pass ? tl : nl)[i] = (size_t)l;
            r.p += l;
        }
    uint64_t row = 0;
    while (r.p < r.end) {
        const unsigned char *row_start = r.p;
        row++;
        if (buf_puts(o, "{")) return -ENOMEM;
        for (uint64_t i = 0; i < nc; i++) {
            if ((i && buf_puts(o, ",")) ||
                put_json_bytes(o, (const unsigned char *)names[i], nl[i]) || buf_puts(o, ":"))
                return -ENOMEM;
            int rc = value_json(&r, types[i], tl[i], o, 0);
            if (rc == -ENOMEM) return rc;
            if (rc == -2) {
                snprintf(err, errlen, "sluice cannot decode RowBinary type %.*s for StarRocks",
                         (int)(tl[i] > 100 ? 100 : tl[i]), types[i]);
                return -EINVAL;
            }
            if (rc) {
                snprintf(err, errlen, "RowBinary row %llu does not fit its types",
                         (unsigned long long)row);
                return -EINVAL;
            }
        }
        if (buf_puts(o, "}\n")) return -ENOMEM;
        if (r.p == row_start) { /* zero-width rows: the data would never end */
            snprintf(err, errlen, "RowBinary rows of zero width");
            return -EINVAL;
        }
    }
    return 0;
bad:
    snprintf(err, errlen, "RowBinaryWithNamesAndTypes: bad header");
    return -EINVAL;
}
