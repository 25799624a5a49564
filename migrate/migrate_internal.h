/* migrate_internal.h — what backfill.c, verify.c and the readers share: option structs and
 * their parsers, time and slice arithmetic, backfill labels, the checksum's canonical form,
 * a flat JSON-object reader, a line-streaming HTTP client and the verify reader vtable.
 * Not for other modules; the unit tests call the pure parts directly. */
#ifndef SLUICE_MIGRATE_INTERNAL_H
#define SLUICE_MIGRATE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/hash.h"
#include "common/json.h"
#include "migrate/migrate.h"

#define MIGRATE_LABEL_MAX 128        /* StarRocks label limit */
#define MIGRATE_MAX_LINE (64u << 20) /* longest JSON row accepted from a source */

/* A password from environment variable env or the first line of file (at most one of them
 * non-NULL). 1 when read into out, 0 when neither was given, -EINVAL with err. */
int migrate_read_password(const char *env, const char *file, char *out, size_t outlen, char *err,
                          size_t errlen);

/* ---- URLs ---- */

/* url with its userinfo replaced by user (NULL: keep the URL's user, else "default") and
 * password, both percent-encoded, into out. 0 or -EINVAL (no scheme, too long). */
int migrate_url_with_auth(const char *url, const char *user, const char *password, char *out,
                          size_t outlen);

/* host (lower case; localhost, 127.x and ::1 become "loopback"), port (the scheme's default
 * when absent: what libcurl connects to) and path database of an http(s):// or
 * clickhouse:// URL. 0 or -EINVAL. */
int migrate_url_endpoint(const char *url, char *host, size_t hostlen, unsigned *port, char *db,
                         size_t dblen);

/* "clickhouse://h:p[/db]" (strip_scheme) → "http://h:p/"; http(s):// kept with its userinfo;
 * path database into db (may be empty). 0 or -EINVAL with *why. All three split the URL by
 * common/url's one rule (url_split): no query string, a valid host and port. */
int migrate_http_base(const char *url, const char *strip_scheme, char *base, size_t baselen,
                      char *db, size_t dblen, const char **why);

/* ---- time ---- */


/* unix seconds → "YYYY-MM-DD HH:MM:SS" (UTC), 20 bytes with the NUL. */
void migrate_format_time(int64_t t, char out[20]);

/* "YYYY-MM-DD[ HH:MM:SS[.fff]]" (as ClickHouse prints a DateTime) → unix seconds, UTC. */
int migrate_parse_wallclock(const char *s, size_t len, int64_t *out);

/* ---- slices ---- */

/* Slices of [since, until) on a grid of width seconds aligned to the unix epoch, the first
 * and last cut to the range: [max(since, k*w), min(until, (k+1)*w)). */
uint64_t migrate_slice_count(int64_t since, int64_t until, int64_t width);
void migrate_slice_get(int64_t since, int64_t until, int64_t width, uint64_t i, int64_t *start,
                       int64_t *end);

/* ---- labels ---- */

/* What makes a slice's batches: the label changes whenever any of these would change the
 * rows a batch index stands for. */
uint32_t backfill_plan_hash(const char *where, const char *time_column, int64_t slice_end,
                            uint32_t max_rows, uint64_t max_bytes);

/* sluice_{logid}_{sink}_{table}_b{slice_start}_{batch}_{plan:08x}; sink/table outside
 * [A-Za-z0-9_] or longer than 32 become h{fnv1a32:08x}, as the live keys do. Never collides
 * with a live key (whose 4th part is a digit) and fits MIGRATE_LABEL_MAX + 1 bytes. */
void backfill_label(char *out, uint64_t logid, const char *sink, const char *table,
                    int64_t slice_start, uint32_t batch, uint32_t plan);

/* Label of a `--retry-dlq` resend: sluice_{logid}_{sink}_{table}_d{rows_hash:08x}_{n_rows}: the
 * same dead rows always get the same label, so a retry killed half way and run again is
 * deduplicated; 'd' keeps it apart from slice labels ('b') and live keys (digits). */
void backfill_retry_label(char *out, uint64_t logid, const char *sink, const char *table,
                          uint32_t rows_hash, uint32_t n_rows);


/* ---- checksum ---- */

/* The canonical text of one value (NULL when v == NULL), appended to out:
 *  - an integer ("-0012", 12 or "12" as JSON string) → its decimal form without leading
 *    zeros, when it fits 64 bits;
 *  - any other decimal number → printf %.17g of the double (so 0.5, "0.50", 5e-1 agree);
 *  - a date-time "YYYY-MM-DD[ T]HH:MM:SS[.fff]" → space separator, fraction without
 *    trailing zeros (ClickHouse DateTime64(3) and StarRocks DATETIME(6) agree);
 *  - true/false → 1/0 (StarRocks BOOLEAN reads back as 1/0 over MySQL);
 *  - anything else byte for byte. */
int migrate_canonical(buf_t *out, const char *v, size_t len);

/* FNV-1a 64 over the row's canonical form: per column "<len>:<canonical>;" or "N;" for NULL.
 * A bucket's checksum is the sum of its rows' hashes mod 2^64: independent of row order. */
uint64_t migrate_row_hash(const char *const *vals, const size_t *lens, size_t n, buf_t *scratch);

/* ---- streaming HTTP (ClickHouse, emulator) ---- */

typedef int (*migrate_line_cb)(void *ctx, const char *line, size_t len);

/* POST body to url (userinfo in the URL is sent as Basic auth) and hand each line of a 200
 * reply to cb as it arrives: memory holds one line, never the reply. A non-200 reply, a line
 * over MIGRATE_MAX_LINE or a failed transfer → negative with the reason in err (for a
 * ClickHouse error, its message): -EACCES for a 4xx other than 408/429 (not worth a retry). cb returning negative stops the transfer with that code. */
int migrate_http_lines(const char *url, const char *body, migrate_line_cb cb, void *ctx, char *err,
                       size_t errlen);

/* POST body, whole reply into out (small answers: DESCRIBE, counts). */
int migrate_http_text(const char *url, const char *body, buf_t *out, char *err, size_t errlen);



/* ---- verify readers ---- */

typedef struct {
    const char *database, *table, *time_column;
    verify_by_t by;
    const char *const *columns;
    size_t n_columns;
    int64_t since, until;
    int has_since, has_until;
} verify_query_t;

typedef enum { MIGRATE_SQL_CLICKHOUSE = 0, MIGRATE_SQL_SQLITE, MIGRATE_SQL_MYSQL } migrate_sql_t;

/* SELECT <bucket> AS b, count(*) AS n ... GROUP BY b (with_columns == 0), or
 * SELECT <bucket> AS b, c1 AS v0, ... (with_columns == 1), in the dialect. 0 or -EINVAL. */
int verify_build_sql(migrate_sql_t dialect, const verify_query_t *q, int with_columns,
                     const char *db, buf_t *out);

typedef int (*verify_bucket_cb)(void *ctx, const char *bucket, uint64_t count);
/* vals[i] NULL for SQL NULL; lens[i] their lengths. */
typedef int (*verify_row_cb)(void *ctx, const char *bucket, const char *const *vals,
                             const size_t *lens, size_t n);

typedef struct {
    const char *name;
    int (*open)(const char *url, void **state, char *err, size_t errlen);
    int (*buckets)(void *state, const verify_query_t *q, verify_bucket_cb cb, void *ctx, char *err,
                   size_t errlen);
    int (*rows)(void *state, const verify_query_t *q, verify_row_cb cb, void *ctx, char *err,
                size_t errlen);
    void (*close)(void *state);
} verify_reader_t;

extern const verify_reader_t verify_reader_clickhouse; /* clickhouse://, http://, https:// */
extern const verify_reader_t verify_reader_emu;        /* emu+http:// */
extern const verify_reader_t verify_reader_mysql;      /* mysql:// */

/* The reader for a URL's scheme, or NULL. */
const verify_reader_t *verify_reader_for(const char *url);

#endif
