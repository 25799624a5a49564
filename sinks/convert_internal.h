/* convert_internal.h — what the conversion files share (convert.c, sr_convert.c, rowbinary.c,
 * rowbinary_json.c, native.c): the output append and the RowBinary reader and type-name
 * walker (rowbinary.c). The rest of sinks/ uses convert.h only. */
#ifndef SLUICE_SINK_CONVERT_INTERNAL_H
#define SLUICE_SINK_CONVERT_INTERNAL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "sinks/convert.h"

/* out is the caller's buf_t, reused across batches (reset by len = 0, oom = 0). */
static inline int out_put(buf_t *o, const char *s, size_t n)
{
    return buf_append(o, s, n) ? -ENOMEM : 0;
}

/* A read position in RowBinary/Native bytes. */
typedef struct {
    const unsigned char *p, *end;
} rb_t;

int rb_uleb(rb_t *r, uint64_t *v);                /* LEB128; -1 past the end or over 64 bits */
int rb_skip(rb_t *r, uint64_t n);                 /* -1 when fewer than n bytes are left */
uint64_t rb_le(const unsigned char *p, size_t n); /* n little-endian bytes */

/* t[0..n) is word alone or word(args): args, alen the inside (NULL, 0 for the bare word). */
int rb_type_is(const char *t, size_t n, const char *word, const char **args, size_t *alen);
/* Next top-level comma-separated argument of *args (consumed); NULL when none left. */
const char *rb_next_arg(const char **args, size_t *alen, size_t *out_len);
/* A Tuple element may be "name Type": drop the name when what follows is a type. */
void rb_tuple_elem_type(const char **t, size_t *n);
/* Skip one RowBinary value of type t[0..n). -1 bytes do not fit, -2 a type not measured. */
int rb_skip_value(rb_t *r, const char *t, size_t n, int depth);

#endif
