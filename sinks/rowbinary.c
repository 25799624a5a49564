/* rowbinary.c — walking RowBinary by its column types: the reader and type-name primitives
 * (convert_internal.h) that rowbinary_json.c and native.c share, and sink_rowbinary_split,
 * the row boundaries the engine bisects a refused RowBinary body by. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/convert_internal.h"

/* RowBinary has no row boundaries of its own: they follow from the column types (ClickHouse's
 * src/Formats/ and DataTypes' binary serialization: little-endian fixed widths, LEB128 lengths
 * for String, Array and Map sizes, a 0/1 byte ahead of a Nullable value, LowCardinality as
 * its inner type, RowBinaryWithDefaults a 0/1 byte ahead of each column). */

int rb_uleb(rb_t *r, uint64_t *v)
{
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->p >= r->end) return -1;
        unsigned char c = *r->p++;
        *v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return 0;
    }
    return -1;
}

int rb_skip(rb_t *r, uint64_t n)
{
    if ((uint64_t)(r->end - r->p) < n) return -1;
    r->p += n;
    return 0;
}

uint64_t rb_le(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* t[0..n) with spaces trimmed starts with word followed by '(' or the end. */
int rb_type_is(const char *t, size_t n, const char *word, const char **args, size_t *alen)
{
    size_t w = strlen(word);
    if (n < w || memcmp(t, word, w) != 0) return 0;
    if (n == w) {
        *args = NULL;
        *alen = 0;
        return 1;
    }
    if (t[w] != '(' || t[n - 1] != ')') return 0;
    *args = t + w + 1;
    *alen = n - w - 2;
    return 1;
}

/* Next top-level comma-separated argument of args; NULL when none left. */
const char *rb_next_arg(const char **args, size_t *alen, size_t *out_len)
{
    const char *a = *args;
    size_t n = *alen, depth = 0, i = 0;
    int q = 0;
    while (n && (*a == ' ')) a++, n--;
    if (!n) return NULL;
    for (; i < n; i++) {
        char c = a[i];
        if (q) {
            if (c == '\\') i++;
            else if (c == '\'') q = 0;
        } else if (c == '\'') q = 1;
        else if (c == '(') depth++;
        else if (c == ')') depth--;
        else if (c == ',' && depth == 0) break;
    }
    size_t l = i;
    while (l && a[l - 1] == ' ') l--;
    *out_len = l;
    *args = a + (i < n ? i + 1 : n);
    *alen = i < n ? n - i - 1 : 0;
    return a;
}

/* A Tuple element may be "name Type": drop the name when what follows is a type. */
void rb_tuple_elem_type(const char **t, size_t *n)
{
    const char *sp = memchr(*t, ' ', *n);
    const char *par = memchr(*t, '(', *n);
    if (sp && (!par || sp < par)) {
        *n -= (size_t)(sp + 1 - *t);
        *t = sp + 1;
    }
}

int rb_skip_value(rb_t *r, const char *t, size_t n, int depth)
{
    static const struct {
        const char *name;
        uint8_t size;
    } fixed[] = {
        {"UInt8", 1},    {"Int8", 1},      {"Bool", 1},    {"Enum8", 1},   {"UInt16", 2},
        {"Int16", 2},    {"Date", 2},      {"Enum16", 2},  {"BFloat16", 2}, {"UInt32", 4},
        {"Int32", 4},    {"Float32", 4},   {"Date32", 4},  {"DateTime", 4}, {"IPv4", 4},
        {"Decimal32", 4}, {"UInt64", 8},   {"Int64", 8},   {"Float64", 8}, {"DateTime64", 8},
        {"Decimal64", 8}, {"Time", 4},     {"Time64", 8},  {"UInt128", 16}, {"Int128", 16},
        {"UUID", 16},    {"IPv6", 16},     {"Decimal128", 16}, {"UInt256", 32}, {"Int256", 32},
        {"Decimal256", 32},
    };
    const char *a;
    size_t al;
    uint64_t k;
    if (depth > 32) return -1;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++)
        if (rb_type_is(t, n, fixed[i].name, &a, &al)) return rb_skip(r, fixed[i].size);
    if (rb_type_is(t, n, "String", &a, &al) && !a) {
        if (rb_uleb(r, &k)) return -1;
        return rb_skip(r, k);
    }
    if (rb_type_is(t, n, "FixedString", &a, &al) && a) {
        if (*a < '0' || *a > '9') return -2;
        return rb_skip(r, strtoull(a, NULL, 10));
    }
    if (rb_type_is(t, n, "Decimal", &a, &al) && a) {
        unsigned long prec = strtoul(a, NULL, 10);
        return rb_skip(r, prec <= 9 ? 4 : prec <= 18 ? 8 : prec <= 38 ? 16 : 32);
    }
    if (rb_type_is(t, n, "Nullable", &a, &al) && a) {
        if (r->p >= r->end) return -1;
        if (*r->p++) return 0; /* 1 = NULL, no value follows */
        return rb_skip_value(r, a, al, depth + 1);
    }
    if (rb_type_is(t, n, "LowCardinality", &a, &al) && a) return rb_skip_value(r, a, al, depth + 1);
    if (rb_type_is(t, n, "SimpleAggregateFunction", &a, &al) && a) {
        size_t l;
        rb_next_arg(&a, &al, &l); /* the function */
        const char *inner = rb_next_arg(&a, &al, &l);
        return inner ? rb_skip_value(r, inner, l, depth + 1) : -1;
    }
    if (rb_type_is(t, n, "Array", &a, &al) && a) {
        if (rb_uleb(r, &k)) return -1;
        for (uint64_t i = 0; i < k; i++) {
            const unsigned char *before = r->p;
            int rc = rb_skip_value(r, a, al, depth + 1);
            if (rc) return rc;
            /* A zero-width element (Tuple(), FixedString(0)): so are all the others; never
             * loop a length read from the data over no bytes (found by fuzz_formats). */
            if (r->p == before) return 0;
        }
        return 0;
    }
    if (rb_type_is(t, n, "Map", &a, &al) && a) {
        size_t kl, vl;
        const char *kt = rb_next_arg(&a, &al, &kl), *vt = rb_next_arg(&a, &al, &vl);
        if (!kt || !vt || rb_uleb(r, &k)) return -1;
        for (uint64_t i = 0; i < k; i++) {
            const unsigned char *before = r->p;
            int rc = rb_skip_value(r, kt, kl, depth + 1);
            if (!rc) rc = rb_skip_value(r, vt, vl, depth + 1);
            if (rc) return rc;
            if (r->p == before) return 0;
        }
        return 0;
    }
    if (rb_type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        while ((e = rb_next_arg(&a, &al, &el))) {
            rb_tuple_elem_type(&e, &el);
            int rc = rb_skip_value(r, e, el, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    return -2; /* a type sluice cannot measure (JSON, Dynamic, Variant, AggregateFunction...) */
}

/* Types from a "name\ttype\n" list (DESCRIBE output, insertable columns only) for the columns
 * named in cols ("a, `b`" or NULL = all, in order). */
static int pick_types(const char *describe, const char *cols, const char **types, size_t *lens,
                      size_t max, size_t *n)
{
    *n = 0;
    char want[256];
    const char *c = cols;
    for (;;) {
        size_t wl = 0;
        if (cols) {
            while (*c == ' ' || *c == ',') c++;
            if (!*c) break;
            while (*c && *c != ',') {
                if (*c == '\\' && c[1]) c++;
                if (*c != '`' && wl + 1 < sizeof want) want[wl++] = *c;
                c++;
            }
            while (wl && want[wl - 1] == ' ') wl--;
        }
        int found = 0;
        for (const char *l = describe; *l;) {
            const char *nl = strchr(l, '\n');
            size_t ll = nl ? (size_t)(nl - l) : strlen(l);
            const char *tab = memchr(l, '\t', ll);
            if (tab && (!cols || ((size_t)(tab - l) == wl && memcmp(l, want, wl) == 0))) {
                if (*n == max) return -1;
                types[*n] = tab + 1;
                lens[*n] = ll - (size_t)(tab + 1 - l);
                (*n)++;
                found = 1;
                if (cols) break;
            }
            l += ll + (nl ? 1 : 0);
        }
        if (!cols) break;
        if (!found) return -1;
    }
    return *n ? 0 : -1;
}

int sink_rowbinary_split(const char *fmt, const char *cols, const char *describe,
                         const char *data, size_t len, size_t *hdr_len, size_t **off,
                         uint32_t *n_rows, char *err, size_t errlen)
{
    enum { MAXC = 1024 };
    const char *types[MAXC];
    size_t tl[MAXC], nt = 0;
    char *names_buf = NULL;
    int defaults = strstr(fmt, "WithDefaults") != NULL;
    int with_names = strstr(fmt, "WithNames") != NULL, with_types = strstr(fmt, "AndTypes") != NULL;
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    *off = NULL;
    *hdr_len = 0;
    if (with_names) {
        uint64_t nc;
        if (rb_uleb(&r, &nc) || nc == 0 || nc > MAXC) goto bad_header;
        /* names as "a, b" for pick_types, then (AndTypes) the types themselves */
        names_buf = malloc(2 * len + 4 * nc + 1);
        if (!names_buf) return -ENOMEM;
        size_t o = 0;
        for (uint64_t i = 0; i < nc; i++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad_header;
            if (i) names_buf[o++] = ',';
            names_buf[o++] = '`';
            for (uint64_t j = 0; j < l; j++) {
                if (r.p[j] == '`' || r.p[j] == '\\') names_buf[o++] = '\\';
                names_buf[o++] = (char)r.p[j];
            }
            names_buf[o++] = '`';
            r.p += l;
        }
        names_buf[o] = '\0';
        if (with_types) {
            for (uint64_t i = 0; i < nc; i++) {
                uint64_t l;
                if (rb_uleb(&r, &l) || (uint64_t)(r.end - r.p) < l) goto bad_header;
                types[nt] = (const char *)r.p;
                tl[nt++] = (size_t)l;
                r.p += l;
            }
        } else if (!describe || pick_types(describe, names_buf, types, tl, MAXC, &nt)) {
            snprintf(err, errlen, "RowBinaryWithNames: no types for the header's columns");
            free(names_buf);
            return -EINVAL;
        }
        *hdr_len = (size_t)((const char *)r.p - data);
    } else if (!describe || pick_types(describe, cols, types, tl, MAXC, &nt)) {
        snprintf(err, errlen, "RowBinary: the table's column types are unknown");
        return -EINVAL;
    }
    size_t cap = 64, n = 0;
    size_t *o = malloc(cap * sizeof *o);
    if (!o) {
        free(names_buf);
        return -ENOMEM;
    }
    o[0] = *hdr_len;
    while (r.p < r.end) {
        const unsigned char *row_start = r.p;
        for (size_t i = 0; i < nt; i++) {
            if (defaults) {
                if (r.p >= r.end) goto bad_row;
                if (*r.p++) continue; /* 1: the column's default, no value */
            }
            int rc = rb_skip_value(&r, types[i], tl[i], 0);
            if (rc == -2) {
                snprintf(err, errlen, "RowBinary: cannot measure values of type %.*s",
                         (int)(tl[i] > 100 ? 100 : tl[i]), types[i]);
                goto fail;
            }
            if (rc) goto bad_row;
        }
        if (r.p == row_start) goto bad_row; /* zero-width rows: no boundaries to find */
        if (n + 2 > cap) {
            cap *= 2;
            size_t *no = realloc(o, cap * sizeof *no);
            if (!no) {
                free(o);
                free(names_buf);
                return -ENOMEM;
            }
            o = no;
        }
        o[++n] = (size_t)((const char *)r.p - data);
        if (n >= UINT32_MAX - 1) goto bad_row;
    }
    free(names_buf);
    *off = o;
    *n_rows = (uint32_t)n;
    return 0;
bad_row:
    snprintf(err, errlen, "RowBinary: row %zu does not end where the column types say", n + 1);
fail:
    free(o);
    free(names_buf);
    return -EINVAL;
bad_header:
    snprintf(err, errlen, "RowBinary: bad header");
    free(names_buf);
    return -EINVAL;
}
