/* cfg_internal.h — what config.c, check.c, env.c, load*.c and print.c share and nobody else
 * includes: the key tables (one row per YAML key: name, type, where it lives, allowed range) that
 * drive both the loader and the printer, so a key cannot be loadable but unprintable. */
#ifndef SLUICE_CFG_INTERNAL_H
#define SLUICE_CFG_INTERNAL_H

#include "common/url.h"
#include "config/config.h"

#include <stddef.h>
#include <stdint.h>

/* Units of the defaults and of size values ("64MiB"). */
#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define TiB (1024ULL * GiB)
#define DAY_MS 86400000ULL
#define HOUR_MS 3600000ULL

/* Caps on free-form collections (include lists, settings maps, users, sinks): keeps the
 * duplicate checks quadratic-but-small and a hostile file from costing much. */
#define CFG_MAX_ITEMS 1024
#define CFG_MAX_SINKS 64
#define CFG_MAX_NAME 64

/* The char * types come first (through CFG_T_OPTURL): config.c relies on the order. */
typedef enum {
    CFG_T_STR,      /* char *, non-empty */
    CFG_T_STR0,     /* char *, may be empty; YAML null reads as "" */
    CFG_T_OPTSTR,   /* char *, null or "" reads as NULL */
    CFG_T_NAME,     /* char *, [A-Za-z0-9_-]{1,64} */
    CFG_T_LISTEN,   /* char *, host:port */
    CFG_T_LISTEN0,  /* char *, host:port or "" (disabled); null reads as "" */
    CFG_T_URL,      /* char *, http(s)://host[:port][/path] */
    CFG_T_OPTURL,   /* same, or null */
    CFG_T_U32,      /* uint32_t integer in [min, max] */
    CFG_T_SIZE32,   /* uint32_t byte size with units */
    CFG_T_SIZE64,   /* uint64_t byte size with units */
    CFG_T_BOOL,     /* int 0/1 */
    CFG_T_COMPRESS, /* int: bool, or gzip (1) / none (0) */
    CFG_T_ENUM,     /* int-sized enum, names[] */
    CFG_T_RATIO,    /* double in [0, 1] */
    CFG_T_STRLIST,  /* char ** + size_t count at off_n */
    CFG_T_KVMAP,    /* cfg_kv_t * + size_t count at off_n */
    CFG_T_USERS,    /* cfg_user_t * + size_t count at off_n */
    CFG_T_URLS,     /* char ** + size_t count at off_n: one URL or a list of them */
    CFG_T_SECTION,  /* nested map whose keys are fields of the same struct (sub) */
} cfg_type_t;

typedef struct cfg_field {
    const char *key;
    cfg_type_t type;
    size_t off;                  /* offset in the section's struct */
    size_t off_n;                /* count offset for lists and maps */
    uint64_t min, max;           /* integer and size ranges */
    const char *const *names;    /* CFG_T_ENUM: NULL-terminated value names */
    const struct cfg_field *sub; /* CFG_T_SECTION: its keys, terminated by key == NULL */
    int secret;                  /* printed as "***" */
} cfg_field_t;

extern const cfg_field_t cfg_wal_fields[];
extern const cfg_field_t cfg_proxy_fields[];
extern const cfg_field_t cfg_sink_fields[];
extern const cfg_field_t cfg_admin_fields[];
extern const cfg_field_t cfg_log_fields[];
extern const cfg_field_t cfg_shutdown_fields[];

/* A top-level section: its key, its field table and where its struct is in sluice_cfg_t. */
typedef struct {
    const char *key;
    const cfg_field_t *fields;
    size_t off;
} cfg_section_t;

extern const cfg_section_t cfg_sections[]; /* all but sinks; terminated by key == NULL */

/* Defaults of one sink (type decides the default user later, see cfg_sink_finish_defaults). */
int cfg_sink_defaults(cfg_sink_t *s);
void cfg_sink_free(cfg_sink_t *s);
void cfg_free_strs(char **v, size_t n); /* each string, then the array */

/* Keep url and urls[] in agreement: url = urls[0] when the list is set, else a one-entry
 * list from url (a sink made by an environment override). 0 or -ENOMEM. */
int cfg_sink_sync_urls(cfg_sink_t *s);

/* Validators shared by the loader and cfg_finish: 0 when s is acceptable, else negative
 * with a short reason ("expected host:port, got ...") written to why. */
int cfg_check_listen(const char *s, char *why, size_t whylen);
int cfg_check_url(const char *s, char *why, size_t whylen);
int cfg_check_name(const char *s, char *why, size_t whylen);

/* Quote s for an error message: at most ~60 visible characters, control bytes escaped. */
void cfg_quote(char *out, size_t outlen, const char *s);

/* Write "prefix: " + formatted message into err (never overflows, always terminated). */
void cfg_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

char *cfg_strdup(const char *s);

/* An http(s) URL split by common/url's rule; the URL quoted for a message with its password
 * masked (a refused URL must not print the secret it carries). check.c. */
int cfg_url_split_http(const char *s, url_t *u, const char **why);
void cfg_quote_url(char *out, size_t outlen, const char *url);

/* cfg_finish's two steps: the environment overrides (env.c), then every per-field and
 * cross-field rule (check.c). 0 or negative with err filled. */
int cfg_apply_env(sluice_cfg_t *cfg, char *err, size_t errlen);
int cfg_validate(sluice_cfg_t *cfg, char *err, size_t errlen);

#endif
