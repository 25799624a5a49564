/* proxy_internal.h — the proxy's building blocks, exposed for its own files, the unit
 * tests and the fuzzers: INSERT statement recognition, JSONEachRow validation and
 * normalisation, request-body decoding, credentials, URL parameters. Not for other modules. */
#ifndef SLUICE_PROXY_INTERNAL_H
#define SLUICE_PROXY_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "wal/wal.h"

/* ---- formats.c: the input formats made durable ---- */

typedef enum {
    PROXY_FMT_JSON_OBJ,             /* JSONEachRow & co.: one object per row */
    PROXY_FMT_JSON_ARR,             /* JSONCompact*EachRow*: one array per row */
    PROXY_FMT_JSON_OBJECT_EACH_ROW, /* {"name": {row}, ...} */
    PROXY_FMT_CSV,
    PROXY_FMT_TSV,     /* TabSeparated: backslash escapes */
    PROXY_FMT_TSV_RAW, /* TabSeparatedRaw: none */
    PROXY_FMT_VALUES,
    PROXY_FMT_BINARY, /* RowBinary*, Native: one whole unit (no schema here) */
} proxy_fmt_kind_t;

typedef struct {
    const char *name; /* canonical spelling, as the record stores it */
    proxy_fmt_kind_t kind;
    int header_rows; /* 1: ...WithNames, 2: ...WithNamesAndTypes */
} proxy_format_t;

/* The format of this name (exact, else case-insensitive as the engine), NULL when sluice
 * does not buffer it. */
/* ---- stmt.c: INSERT INTO [db.]table [(cols)] [SETTINGS k=v, ...] FORMAT fmt | VALUES ---- */

#define PROXY_STMT_MAX_SETTINGS 64
#define PROXY_STMT_BUF 16384 /* db, table, columns, settings: all names/values together */
#define PROXY_NAME_MAX 255   /* longest db or table name accepted */

enum {
    PROXY_STMT_OTHER = 0,      /* not an insert sluice buffers: pass through */
    PROXY_STMT_INSERT = 1,     /* recognised; data starts at data_off */
    PROXY_STMT_INCOMPLETE = 2, /* the text ended inside the statement */
    PROXY_STMT_ESYNTAX = -1,   /* an INSERT we cannot accept: answer Code 62 (err says why) */
};

typedef struct {
    const char *db; /* NULL when unqualified */
    const char *table;
    const char *columns; /* normalised "a, b, c", NULL when absent */
    wal_kv_t settings[PROXY_STMT_MAX_SETTINGS];
    size_t n_settings;
    size_t data_off; /* first byte after the format name (or after VALUES) */
    const proxy_format_t *format; /* PROXY_STMT_INSERT: the data's format */
    const char *unbuffered;       /* PROXY_STMT_OTHER for an INSERT sluice passes through:
                                   * why ("INSERT ... SELECT", "format X"); table is set */
    char err[160];
    char buf[PROXY_STMT_BUF]; /* storage for the strings above */
    size_t buf_len;
} proxy_stmt_t;

/* Classify text[0..len). Keywords are case-insensitive; `--`, `#!`/`# ` and nested-free
 * block comments are skipped; identifiers may be bare, `backticked` or "double-quoted". */
int proxy_stmt_parse(const char *text, size_t len, proxy_stmt_t *st);

/* ---- rows.c: JSONEachRow ---- */

typedef struct {
    const char *data; /* n_rows objects, each ending in '\n'; the input or owned */
    size_t len;
    uint32_t n_rows;
    char *owned;      /* non-NULL when a normalised copy had to be made: free() it */
    uint64_t bad_row; /* on error: 1-based row number */
    char err[160];    /* on error: what is wrong */
} proxy_rows_t;

/* Validate JSONEachRow input (objects separated by whitespace, newlines or commas, or one
 * top-level array of objects) and normalise it to one object per line. 0 on success;
 * -EINVAL with bad_row/err filled on a syntax error; -ENOMEM. No allocation per row.
 * cap > len says in[len] is writable: a missing final '\n' is then added in place
 * instead of copying the whole input (out->data may point into in). */
int proxy_rows_parse(char *in, size_t len, size_t cap, proxy_rows_t *out);
/* The same for JSONCompact*EachRow: each row one JSON array (no outer array form). */
int proxy_rows_parse_arrays(char *in, size_t len, size_t cap, proxy_rows_t *out);
void proxy_rows_free(proxy_rows_t *r);


const proxy_format_t *proxy_format_find(const char *name);

#define PROXY_FMT_UNBUFFERED 1 /* proxy_format_split: valid, but not data yet (parameters) */

typedef struct {
    const char *data; /* n_rows rows, each ending in '\n' (one unit when whole) */
    size_t len;
    uint32_t n_rows;
    const char *hdr; /* header rows (into the same memory) or NULL */
    size_t hdr_len;
    int whole;
    char *owned;      /* free() via proxy_body_free */
    uint64_t bad_row; /* on -EINVAL: 1-based row, 0 when not about a row */
    char err[160];
} proxy_body_t;

/* Validate in[0..len) as format f (kv: the request's settings, for delimiters and the like)
 * and cut it into rows. 0; -EINVAL with bad_row/err; -ENOMEM; PROXY_FMT_UNBUFFERED. cap >
 * len says in[len] is writable (a final '\n' is added in place). */
int proxy_format_split(const proxy_format_t *f, const wal_kv_t *kv, size_t nkv, char *in,
                       size_t len, size_t cap, proxy_body_t *b);
void proxy_body_free(proxy_body_t *b);

/* ---- decode.c: Content-Encoding ---- */

enum {
    PROXY_DECODE_EUNSUPPORTED = -2, /* unknown Content-Encoding */
    PROXY_DECODE_EINVALID = -3,     /* corrupt or truncated stream */
    PROXY_DECODE_ETOOBIG = -4,      /* output would exceed max_out */
};

/* Decode in[0..len) per encoding (gzip, x-gzip, deflate, zstd, br, identity; NULL or ""
 * = identity). *out is malloc'd (free it) unless the encoding is identity, in which case
 * *out = NULL. Output never exceeds max_out bytes. */
int proxy_decode(const char *encoding, const char *in, size_t len, size_t max_out, char **out,
                 size_t *out_len, char *err, size_t errlen);

/* ---- auth.c ---- */

typedef struct {
    char user[256];
    char password[256];
    int has_header, has_basic, has_params;
} proxy_creds_t;

/* Decode base64 (standard alphabet, padding optional); -1 on bad input or overflow. */
int proxy_base64_decode(const char *in, size_t len, char *out, size_t cap, size_t *out_len);

/* Fill creds from "Basic ..." (may be NULL), X-ClickHouse-User/Key (may be NULL) and URL
 * params user/password (may be NULL). Default user "default", empty password. -1 when two
 * different methods are combined or a value is too long (ClickHouse refuses that too). */
int proxy_creds_from(proxy_creds_t *c, const char *authorization, const char *xuser,
                     const char *xkey, const char *puser, const char *ppass);

/* 0 when users is empty or (user, password) matches one entry, else -1. Constant time
 * in the password. */
int proxy_auth_check(const cfg_proxy_t *p, const proxy_creds_t *c);

/* ---- params.c: URL query strings ---- */

typedef struct {
    const char *key;
    const char *value;
} proxy_param_t;

#define PROXY_MAX_PARAMS 128

/* Split and percent-decode a query string ('+' is a space). Storage: a malloc'd copy in
 * *store (free it). -1 on too many params or bad escapes. */
/* ---- routing (route.c) ---- */

typedef enum {
    PROXY_ROUTE_OK,         /* /ping, /replicas_status, a bare "/" GET/HEAD: 200 "Ok." */
    PROXY_ROUTE_BAD_METHOD, /* those paths with another method: 405 */
    PROXY_ROUTE_PASS,       /* not a statement sluice reads: forwarded as it is */
    PROXY_ROUTE_STATEMENT,  /* POST/PUT to "/": read the statement (an INSERT goes to the WAL) */
} proxy_route_t;

/* What classify looks at: the request line, two headers, one URL parameter. */
typedef struct {
    int method; /* enum http_method */
    const char *path;
    size_t path_len;
    int has_query;
    size_t body_len;
    const char *content_type; /* Content-Type, or NULL */
    const char *decompress;   /* the decompress URL parameter, or NULL */
} proxy_req_view_t;

/* The route of a request. The health routes depend on no parameter, so on_request asks
 * before parsing the query string (a bad one must not fail /ping) and again, with
 * decompress, once it has parsed it. */
proxy_route_t proxy_classify(const proxy_req_view_t *v);

int proxy_params_parse(const char *qs, size_t len, proxy_param_t *out, size_t *n, char **store);
/* The same into caller memory of PROXY_PARAMS_STORE(len) bytes (nothing to free). */
#define PROXY_PARAMS_STORE(len) ((len) + 2 * (PROXY_MAX_PARAMS + 1) + 1)
int proxy_params_parse_in(const char *qs, size_t len, proxy_param_t *out, size_t *n, char *mem);
const char *proxy_param_get(const proxy_param_t *p, size_t n, const char *key);

/* 1 when a URL parameter is a ClickHouse setting to keep with the rows. */
int proxy_param_is_setting(const char *key);

#endif
