/* native.c — block boundaries of a Native body (sink_native_split), measured column by
 * column from the names and types each block carries, so the engine can bisect a refused
 * Native body by its blocks. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sinks/convert_internal.h"

/* Skip the data of one column of `rows` values in a Native block (columnar: Nullable is a null
 * map then all values, Array/Map their UInt64 end offsets then the flattened elements, Tuple
 * one column per element; other types as in RowBinary, value after value). */
static int skip_column(rb_t *r, const char *t, size_t n, uint64_t rows, int depth)
{
    const char *a;
    size_t al;
    if (depth > 32) return -2;
    while (n && *t == ' ') t++, n--;
    while (n && t[n - 1] == ' ') n--;
    if (rb_type_is(t, n, "Nullable", &a, &al) && a) {
        if (rb_skip(r, rows)) return -1;
        return skip_column(r, a, al, rows, depth + 1);
    }
    if ((rb_type_is(t, n, "Array", &a, &al) || rb_type_is(t, n, "Map", &a, &al)) && a) {
        if (rows > (uint64_t)(r->end - r->p) / 8) return -1;
        uint64_t total = rows ? rb_le(r->p + 8 * (rows - 1), 8) : 0;
        r->p += 8 * rows;
        if (t[0] == 'A') return skip_column(r, a, al, total, depth + 1);
        size_t kl, vl;
        const char *kt = rb_next_arg(&a, &al, &kl), *vt = rb_next_arg(&a, &al, &vl);
        if (!kt || !vt) return -2;
        int rc = skip_column(r, kt, kl, total, depth + 1);
        return rc ? rc : skip_column(r, vt, vl, total, depth + 1);
    }
    if (rb_type_is(t, n, "Tuple", &a, &al) && a) {
        size_t el;
        const char *e;
        while ((e = rb_next_arg(&a, &al, &el))) {
            rb_tuple_elem_type(&e, &el);
            int rc = skip_column(r, e, el, rows, depth + 1);
            if (rc) return rc;
        }
        return 0;
    }
    if (rb_type_is(t, n, "LowCardinality", &a, &al)) return -2; /* dictionary-encoded */
    for (uint64_t i = 0; i < rows; i++) {
        const unsigned char *before = r->p;
        int rc = rb_skip_value(r, t, n, depth + 1);
        if (rc) return rc;
        if (r->p == before) return 0; /* zero-width values */
    }
    return 0;
}

int sink_native_split(const char *data, size_t len, size_t **off, uint32_t *n_blocks, char *err,
                      size_t errlen)
{
    rb_t r = {(const unsigned char *)data, (const unsigned char *)data + len};
    size_t cap = 16, n = 0;
    size_t *o = malloc(cap * sizeof *o);
    if (!o) return -ENOMEM;
    o[0] = 0;
    while (r.p < r.end) {
        uint64_t ncols, nrows;
        if (rb_uleb(&r, &ncols) || rb_uleb(&r, &nrows) || ncols > 100000) goto bad;
        for (uint64_t c = 0; c < ncols; c++) {
            uint64_t l;
            if (rb_uleb(&r, &l) || rb_skip(&r, l) || rb_uleb(&r, &l) ||
                (uint64_t)(r.end - r.p) < l)
                goto bad;
            const char *type = (const char *)r.p;
            r.p += l;
            int rc = skip_column(&r, type, (size_t)l, nrows, 0);
            if (rc == -2) {
                snprintf(err, errlen, "Native: cannot measure a column of type %.*s",
                         (int)(l > 100 ? 100 : l), type);
                free(o);
                return -EINVAL;
            }
            if (rc) goto bad;
        }
        if (n + 2 > cap) {
            cap *= 2;
            size_t *no = realloc(o, cap * sizeof *no);
            if (!no) {
                free(o);
                return -ENOMEM;
            }
            o = no;
        }
        o[++n] = (size_t)((const char *)r.p - data);
        if (o[n] == o[n - 1] || n >= UINT32_MAX - 1) goto bad;
    }
    *off = o;
    *n_blocks = (uint32_t)n;
    return 0;
bad:
    snprintf(err, errlen, "Native: block %zu does not end where its columns say", n + 1);
    free(o);
    return -EINVAL;
}
