/* convert.h — turning a batch of stored rows (any input format sluice buffers) into the body a
 * backend takes: byte-exact framing for ClickHouse (header rows ahead, JSONObjectEachRow's
 * outer braces), conversion to Stream Load JSON or CSV for StarRocks. Sinks-internal. */
#ifndef SLUICE_SINK_CONVERT_H
#define SLUICE_SINK_CONVERT_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "sinks/sink_internal.h"

/* 1 when fmt is a name a ClickHouse query may carry after FORMAT ([A-Za-z0-9_], 1..64). */
int sink_fmt_name_ok(const char *fmt);

/* The body to POST to ClickHouse for b: b->body itself when the format needs no framing
 * (*body points into b), else built in out. 0 or -ENOMEM. */
int sink_ch_body(const sink_batch_t *b, buf_t *out, const char **body, size_t *len);

/* A StarRocks Stream Load: the body plus the headers that say how to read it. */
typedef struct {
    const char *body;
    size_t len;
    const char *format;    /* "json" or "csv" */
    char columns[2000];    /* "columns" header ("" = none); fits starrocks.c's header line */
    char separator[16];    /* column_separator for csv ("" = default) */
    char enclose[4];       /* enclose for csv ("" = none) */
} sink_sr_load_t;

/* Convert b for StarRocks. 0 on success. -EINVAL when some row cannot be converted: err says
 * why, *whole is set when no row of this format can be (the batch goes to the DLQ at once),
 * else bisecting finds the rows. -ENOMEM. */
int sink_sr_convert(const sink_batch_t *b, buf_t *out, sink_sr_load_t *load, int *whole,
                    char *err, size_t errlen);

/* Row boundaries of a RowBinary[WithNames[AndTypes]|WithDefaults] body: *hdr_len = bytes of
 * its header (WithNames...), (*off)[0..n_rows] = row starts and the end (malloc'ed, free
 * it). Types come from the header (AndTypes) or from describe ("name\ttype\n" lines of the
 * table's insertable columns, e.g. DESCRIBE TABLE ... FORMAT TSV), picked by cols (the
 * INSERT's list, or NULL = all in order) or by the header's names. -EINVAL with err when
 * the types are unknown, unsupported, or the bytes do not fit them; -ENOMEM. */
int sink_rowbinary_split(const char *fmt, const char *cols, const char *describe,
                         const char *data, size_t len, size_t *hdr_len, size_t **off,
                         uint32_t *n_rows, char *err, size_t errlen);

/* Block boundaries of a Native body ((*off)[0..n_blocks], malloc'ed): each block carries its
 * columns' names and types, so no schema is needed. -EINVAL with err for LowCardinality
 * columns or bytes that do not fit; -ENOMEM. */
int sink_native_split(const char *data, size_t len, size_t **off, uint32_t *n_blocks, char *err,
                      size_t errlen);

/* A RowBinaryWithNamesAndTypes body as JSON lines ({"name": value}) appended to o: integers
 * up to 64 bits, floats (non-finite as null), Bool, String/FixedString, UUID, Date/Date32,
 * DateTime/DateTime64 (UTC), Decimal up to 18 digits, Nullable, LowCardinality, Array, Map,
 * Tuple (as an array). -EINVAL with err for other types or bytes that do not fit; -ENOMEM. */
int sink_rowbinary_json(const char *data, size_t len, buf_t *o, char *err, size_t errlen);

#endif
