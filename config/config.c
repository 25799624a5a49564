/* config.c — the key tables, defaults, value checkers, environment overrides and the
 * cross-field validation that cfg_finish runs on every config, however it was built.
 * YAML reading is in load.c, YAML writing in print.c; both walk the tables below. */
#include "config/cfg_internal.h"
#include "common/url.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define KiB 1024ULL
#define MiB (1024ULL * KiB)
#define GiB (1024ULL * MiB)
#define TiB (1024ULL * GiB)
#define DAY_MS 86400000ULL
#define HOUR_MS 3600000ULL

_Static_assert(sizeof(cfg_sync_t) == sizeof(int), "enums are read and written as int");
_Static_assert(sizeof(cfg_dedup_t) == sizeof(int), "enums are read and written as int");

static const char *const sync_names[] = {"always", "interval", "none", NULL};
static const char *const when_full_names[] = {"reject", "block", NULL};
static const char *const sink_type_names[] = {"clickhouse", "starrocks", NULL};
static const char *const start_from_names[] = {"earliest", "latest", NULL};
static const char *const overflow_names[] = {"block", "drop_oldest", NULL};
static const char *const dedup_names[] = {"auto", "on", "off", NULL};
static const char *const log_level_names[] = {"debug", "info", "warn", "error", NULL};

/* One table row per key: positional initializers keep each row on one line. */
/* clang-format off */
#define F(st, k, t, field, lo, hi) {#k, t, offsetof(st, field), 0, lo, hi, NULL, NULL, 0}
#define FE(st, k, field, nm) {#k, CFG_T_ENUM, offsetof(st, field), 0, 0, 0, nm, NULL, 0}
#define FL(st, k, t, field, nfield) {#k, t, offsetof(st, field), offsetof(st, nfield), 0, 0, NULL, NULL, 0}
#define FS(st, k, t, field) {#k, t, offsetof(st, field), 0, 0, 0, NULL, NULL, 1}
#define FEND {NULL, 0, 0, 0, 0, 0, NULL, NULL, 0}
/* clang-format on */

const cfg_field_t cfg_wal_fields[] = {
    F(cfg_wal_t, dir, CFG_T_STR, dir, 0, 0),
    F(cfg_wal_t, max_bytes, CFG_T_SIZE64, max_bytes, MiB, 16 * TiB),
    F(cfg_wal_t, max_record_bytes, CFG_T_SIZE32, max_record_bytes, KiB, GiB),
    FE(cfg_wal_t, sync, sync, sync_names),
    F(cfg_wal_t, sync_interval_ms, CFG_T_U32, sync_interval_ms, 1, HOUR_MS),
    FE(cfg_wal_t, when_full, when_full, when_full_names),
    F(cfg_wal_t, block_timeout_ms, CFG_T_U32, block_timeout_ms, 0, HOUR_MS),
    F(cfg_wal_t, truncate_chunk, CFG_T_U32, truncate_chunk, 1, 1000000),
    F(cfg_wal_t, ready_below_pct, CFG_T_U32, ready_below_pct, 1, 100),
    FEND,
};

const cfg_field_t cfg_proxy_fields[] = {
    F(cfg_proxy_t, listen, CFG_T_LISTEN, listen, 0, 0),
    F(cfg_proxy_t, passthrough_url, CFG_T_OPTURL, passthrough_url, 0, 0),
    F(cfg_proxy_t, max_body_bytes, CFG_T_SIZE64, max_body_bytes, KiB, 64 * GiB),
    F(cfg_proxy_t, max_header_bytes, CFG_T_SIZE32, max_header_bytes, KiB, 16 * MiB),
    F(cfg_proxy_t, idle_timeout_ms, CFG_T_U32, idle_timeout_ms, 1, DAY_MS),
    F(cfg_proxy_t, passthrough_timeout_ms, CFG_T_U32, passthrough_timeout_ms, 1, DAY_MS),
    F(cfg_proxy_t, read_barrier_ms, CFG_T_U32, read_barrier_ms, 0, 600000),
    F(cfg_proxy_t, max_connections, CFG_T_U32, max_connections, 1, 1000000),
    FL(cfg_proxy_t, users, CFG_T_USERS, users, n_users),
    FEND,
};

static const cfg_field_t sink_batch_fields[] = {
    F(cfg_sink_t, max_rows, CFG_T_U32, batch_max_rows, 1, 10000000),
    F(cfg_sink_t, max_bytes, CFG_T_SIZE64, batch_max_bytes, KiB, GiB),
    F(cfg_sink_t, max_wait_ms, CFG_T_U32, batch_max_wait_ms, 0, 600000),
    FEND,
};

static const cfg_field_t sink_retry_fields[] = {
    F(cfg_sink_t, initial_backoff_ms, CFG_T_U32, retry_initial_backoff_ms, 1, HOUR_MS),
    F(cfg_sink_t, max_backoff_ms, CFG_T_U32, retry_max_backoff_ms, 1, DAY_MS),
    FEND,
};

const cfg_field_t cfg_sink_fields[] = {
    F(cfg_sink_t, name, CFG_T_NAME, name, 0, 0),
    FE(cfg_sink_t, type, type, sink_type_names),
    F(cfg_sink_t, enabled, CFG_T_BOOL, enabled, 0, 1),
    F(cfg_sink_t, primary, CFG_T_BOOL, primary, 0, 1),
    FL(cfg_sink_t, url, CFG_T_URLS, urls, n_urls),
    F(cfg_sink_t, user, CFG_T_STR, user, 0, 0),
    FS(cfg_sink_t, password, CFG_T_STR0, password),
    F(cfg_sink_t, database, CFG_T_OPTSTR, database, 0, 0),
    FL(cfg_sink_t, include, CFG_T_STRLIST, include, n_include),
    FL(cfg_sink_t, exclude, CFG_T_STRLIST, exclude, n_exclude),
    /* rename values must be non-empty (min 1); settings values may be "" */
    {"rename", CFG_T_KVMAP, offsetof(cfg_sink_t, rename), offsetof(cfg_sink_t, n_rename), 1, 0,
     NULL, NULL, 0},
    FL(cfg_sink_t, settings, CFG_T_KVMAP, settings, n_settings),
    FL(cfg_sink_t, drop_settings, CFG_T_STRLIST, drop_settings, n_drop_settings),
    {"batch", CFG_T_SECTION, 0, 0, 0, 0, NULL, sink_batch_fields, 0},
    {"retry", CFG_T_SECTION, 0, 0, 0, 0, NULL, sink_retry_fields, 0},
    F(cfg_sink_t, connect_timeout_ms, CFG_T_U32, connect_timeout_ms, 1, 600000),
    F(cfg_sink_t, request_timeout_ms, CFG_T_U32, request_timeout_ms, 1, DAY_MS),
    F(cfg_sink_t, compress, CFG_T_COMPRESS, compress, 0, 1),
    FE(cfg_sink_t, start_from, start_from, start_from_names),
    FE(cfg_sink_t, overflow, overflow, overflow_names),
    FE(cfg_sink_t, dedup, dedup, dedup_names),
    F(cfg_sink_t, max_filter_ratio, CFG_T_RATIO, max_filter_ratio, 0, 1),
    FEND,
};

const cfg_field_t cfg_admin_fields[] = {
    F(cfg_admin_t, listen, CFG_T_LISTEN0, listen, 0, 0),
    FS(cfg_admin_t, token, CFG_T_OPTSTR, token),
    FEND,
};

const cfg_field_t cfg_log_fields[] = {
    FE(cfg_log_t, level, level, log_level_names),
    FEND,
};

const cfg_field_t cfg_shutdown_fields[] = {
    F(cfg_shutdown_t, drain_timeout_s, CFG_T_U32, drain_timeout_s, 0, 86400),
    FEND,
};

const cfg_section_t cfg_sections[] = {
    {"wal", cfg_wal_fields, offsetof(sluice_cfg_t, wal)},
    {"proxy", cfg_proxy_fields, offsetof(sluice_cfg_t, proxy)},
    {"admin", cfg_admin_fields, offsetof(sluice_cfg_t, admin)},
    {"log", cfg_log_fields, offsetof(sluice_cfg_t, log)},
    {"shutdown", cfg_shutdown_fields, offsetof(sluice_cfg_t, shutdown)},
    {NULL, NULL, 0},
};

/* ---- small helpers ---- */

char *cfg_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void cfg_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

void cfg_quote(char *out, size_t outlen, const char *s)
{
    size_t o = 0, shown = 0;
    if (outlen < 8) {
        if (outlen) out[0] = '\0';
        return;
    }
    out[o++] = '"';
    for (; s && *s && o + 8 < outlen; s++) {
        unsigned char c = (unsigned char)*s;
        if (shown == 60) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c == 0x7f) {
            o += (size_t)snprintf(out + o, outlen - o, "\\x%02x", c);
        } else {
            out[o++] = (char)c;
        }
        shown++;
    }
    out[o++] = '"';
    out[o] = '\0';
}

/* ---- value checkers ---- */

int cfg_parse_bytes(const char *s, uint64_t *out)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {
        {"", 1},         {"b", 1},     {"kb", 1000},       {"kib", KiB},
        {"mb", 1000000}, {"mib", MiB}, {"gb", 1000000000}, {"gib", GiB},
    };
    uint64_t v = 0;
    const char *p = s;
    if (!s || !out || !isdigit((unsigned char)*p)) return -EINVAL;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return -ERANGE;
        v = v * 10 + d;
    }
    if (*p == ' ') p++;
    if (p > s && p[-1] == ' ' && *p == '\0') return -EINVAL; /* "12 " */
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcasecmp(p, units[i].unit) != 0) continue;
        if (units[i].mult > 1 && v > UINT64_MAX / units[i].mult) return -ERANGE;
        *out = v * units[i].mult;
        return 0;
    }
    return -EINVAL;
}

/* host:port, host a name, IPv4 or [IPv6]; port 1-65535. Exposed as cfg_parse_listen. */
int cfg_parse_listen(const char *s, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon, *h = s;
    size_t hl;
    if (!s || !*s) return -EINVAL;
    if (*s == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || end == s + 1) return -EINVAL;
        for (const char *q = s + 1; q < end; q++)
            if (!isxdigit((unsigned char)*q) && *q != ':' && *q != '.') return -EINVAL;
        h = s + 1;
        hl = (size_t)(end - h);
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s) return -EINVAL;
        hl = (size_t)(colon - s);
        for (const char *q = s; q < colon; q++)
            if (!isalnum((unsigned char)*q) && *q != '.' && *q != '-' && *q != '_') return -EINVAL;
    }
    const char *p = colon + 1;
    unsigned long v = 0;
    if (!*p || strlen(p) > 5) return -EINVAL;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) return -EINVAL;
        v = v * 10 + (unsigned long)(*p - '0');
    }
    if (v < 1 || v > 65535) return -EINVAL;
    if (host) {
        if (hl + 1 > hostlen) return -ENAMETOOLONG;
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    if (port) *port = (uint16_t)v;
    return 0;
}

int cfg_check_listen(const char *s, char *why, size_t whylen)
{
    char q[96];
    if (cfg_parse_listen(s, NULL, 0, NULL) == 0) return 0;
    cfg_quote(q, sizeof q, s);
    cfg_errf(why, whylen, "expected host:port with port 1-65535 (IPv6 as [::1]:port), got %s", q);
    return -EINVAL;
}

/* Sink URLs are http(s) only; the rest of the rule is common/url's. */
static int url_split_http(const char *s, url_t *u, const char **why)
{
    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return *why = "expected an http:// or https:// URL", -EINVAL;
    return url_split(s, u, why);
}

/* cfg_quote of a URL with its password masked (url_redact), for error messages: a refused
 * URL must not print the secret it carries. */
static void quote_url_redacted(char *out, size_t outlen, const char *url)
{
    char tmp[160];
    url_redact(url, tmp, sizeof tmp);
    cfg_quote(out, outlen, tmp);
}

int cfg_check_url(const char *s, char *why, size_t whylen)
{
    url_t u;
    const char *reason = NULL;
    char q[96];
    if (!s) s = "";
    int rc = url_split_http(s, &u, &reason);
    if (rc == 0 && u.user) {
        reason = "credentials in the URL are not allowed here: use the user and password keys";
        rc = -EINVAL;
    }
    if (rc == 0) return 0;
    quote_url_redacted(q, sizeof q, s);
    cfg_errf(why, whylen, "%s, got %s", reason, q);
    return rc;
}

int cfg_check_name(const char *s, char *why, size_t whylen)
{
    char q[96];
    size_t n = s ? strlen(s) : 0;
    int ok = n >= 1 && n <= CFG_MAX_NAME;
    for (size_t i = 0; ok && i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-') ok = 0;
    if (ok) return 0;
    cfg_quote(q, sizeof q, s ? s : "");
    cfg_errf(why, whylen, "expected a name of 1-64 characters [A-Za-z0-9_-], got %s", q);
    return -EINVAL;
}

/* ---- defaults and freeing ---- */

int cfg_sink_defaults(cfg_sink_t *s)
{
    memset(s, 0, sizeof *s);
    s->type = CFG_SINK_CLICKHOUSE;
    s->enabled = 1;
    s->password = cfg_strdup("");
    s->batch_max_rows = 10000;
    s->batch_max_bytes = 8 * MiB;
    s->batch_max_wait_ms = 200;
    s->retry_initial_backoff_ms = 100;
    s->retry_max_backoff_ms = 30000;
    s->connect_timeout_ms = 2000;
    s->request_timeout_ms = 30000;
    s->compress = 0;
    s->start_from = CFG_START_EARLIEST;
    s->overflow = CFG_OVERFLOW_BLOCK;
    s->dedup = CFG_DEDUP_AUTO;
    s->max_filter_ratio = 0.0;
    return s->password ? 0 : -ENOMEM;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static void free_kvs(cfg_kv_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].key);
        free(v[i].value);
    }
    free(v);
}

int cfg_sink_sync_urls(cfg_sink_t *s)
{
    if (s->n_urls) {
        if (s->url && strcmp(s->url, s->urls[0]) == 0) return 0;
        char *u = cfg_strdup(s->urls[0]);
        if (!u) return -ENOMEM;
        free(s->url);
        s->url = u;
        return 0;
    }
    if (!s->url) return 0;
    char **v = calloc(1, sizeof *v);
    if (!v || !(v[0] = cfg_strdup(s->url))) {
        free(v);
        return -ENOMEM;
    }
    s->urls = v;
    s->n_urls = 1;
    return 0;
}

void cfg_sink_free(cfg_sink_t *s)
{
    free(s->name);
    free(s->url);
    free_strs(s->urls, s->n_urls);
    free(s->user);
    free(s->password);
    free(s->database);
    free_strs(s->include, s->n_include);
    free_strs(s->exclude, s->n_exclude);
    free_kvs(s->rename, s->n_rename);
    free_kvs(s->settings, s->n_settings);
    free_strs(s->drop_settings, s->n_drop_settings);
    memset(s, 0, sizeof *s);
}

void cfg_free(sluice_cfg_t *cfg)
{
    if (!cfg) return;
    free(cfg->path);
    free(cfg->wal.dir);
    free(cfg->proxy.listen);
    free(cfg->proxy.passthrough_url);
    for (size_t i = 0; i < cfg->proxy.n_users; i++) {
        free(cfg->proxy.users[i].user);
        free(cfg->proxy.users[i].password);
    }
    free(cfg->proxy.users);
    for (size_t i = 0; i < cfg->n_sinks; i++)
        cfg_sink_free(&cfg->sinks[i]);
    free(cfg->sinks);
    free(cfg->admin.listen);
    free(cfg->admin.token);
    memset(cfg, 0, sizeof *cfg);
}

void cfg_defaults(sluice_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->wal.dir = cfg_strdup("./sluice-wal");
    cfg->wal.max_bytes = GiB;
    cfg->wal.max_record_bytes = (uint32_t)MiB;
    cfg->wal.sync = CFG_SYNC_ALWAYS;
    cfg->wal.sync_interval_ms = 100;
    cfg->wal.when_full = CFG_FULL_REJECT;
    cfg->wal.block_timeout_ms = 5000;
    cfg->wal.truncate_chunk = 1000;
    cfg->wal.ready_below_pct = 90;
    cfg->proxy.listen = cfg_strdup("127.0.0.1:8123");
    cfg->proxy.max_body_bytes = 64 * MiB;
    cfg->proxy.max_header_bytes = (uint32_t)(64 * KiB);
    cfg->proxy.idle_timeout_ms = 60000;
    cfg->proxy.passthrough_timeout_ms = 300000;
    cfg->proxy.read_barrier_ms = 3000;
    cfg->proxy.max_connections = 10000;
    cfg->admin.listen = cfg_strdup("127.0.0.1:8124");
    cfg->log.level = LOG_LEVEL_INFO;
    cfg->shutdown.drain_timeout_s = 30;
    /* An allocation failure leaves a NULL string that cfg_finish reports as missing. */
}

const cfg_sink_t *cfg_primary_sink(const sluice_cfg_t *cfg)
{
    if (!cfg) return NULL;
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg->sinks[i].primary) return &cfg->sinks[i];
    return NULL;
}

/* ---- environment overrides ---- */

/* Percent-decode s[0..n) into a new string (url_pct_decode's rule); NULL with *bad set on a
 * malformed or NUL escape, NULL alone when out of memory. */
static char *pct_decode(const char *s, size_t n, int *bad)
{
    char *out = malloc(n + 1);
    if (!out) return NULL;
    if (url_pct_decode(s, n, URL_REFUSE_NUL, out) < 0) {
        free(out);
        *bad = 1;
        return NULL;
    }
    return out;
}

static int set_str(char **dst, const char *src)
{
    char *p = cfg_strdup(src);
    if (!p) return -ENOMEM;
    free(*dst);
    *dst = p;
    return 0;
}

static int set_owned(char **dst, char *src)
{
    free(*dst);
    *dst = src;
    return 0;
}

/* SLUICE_CLICKHOUSE_URL, as TensorZero's TENSORZERO_CLICKHOUSE_URL:
 * http[s]://[user[:pass]@]host[:port][/database]. */
static int apply_clickhouse_url(sluice_cfg_t *cfg, const char *val, char *err, size_t errlen)
{
    url_t u;
    const char *reason = NULL;
    char q[96], *user = NULL, *pass = NULL, *db = NULL, *base = NULL;
    int bad = 0, rc;
    cfg_sink_t *target = NULL;

    quote_url_redacted(q, sizeof q, val);
    if (url_split_http(val, &u, &reason) != 0) {
        cfg_errf(err, errlen, "SLUICE_CLICKHOUSE_URL: %s, got %s", reason, q);
        return -EINVAL;
    }
    if (u.user) {
        const char *colon = memchr(u.user, ':', u.user_len);
        size_t ul = colon ? (size_t)(colon - u.user) : u.user_len;
        user = pct_decode(u.user, ul, &bad);
        if (!bad && user)
            pass = colon ? pct_decode(colon + 1, u.user_len - ul - 1, &bad) : cfg_strdup("");
        if (!bad && user && !*user) bad = 2;
    }
    const char *path = u.path;
    while (*path == '/')
        path++;
    if (!bad && *path) {
        if (strchr(path, '/'))
            bad = 3;
        else
            db = pct_decode(path, strlen(path), &bad);
    }
    if (bad) {
        cfg_errf(err, errlen, "SLUICE_CLICKHOUSE_URL: %s, got %s",
                 bad == 2   ? "empty user name before ':' or '@'"
                 : bad == 3 ? "expected at most one path segment (the database)"
                            : "malformed %-escape in user, password or database",
                 q);
        rc = -EINVAL;
        goto done;
    }
    rc = -ENOMEM;
    if ((u.user && (!user || !pass)) || (*path && !db)) goto done;
    /* The sink url keeps scheme://host:port only; ClickHouse's default ports fill a gap. */
    size_t blen = (size_t)(u.host + u.host_len - val) + 8;
    base = malloc(blen);
    if (!base) goto done;
    int https = strncasecmp(val, "https", 5) == 0;
    snprintf(base, blen, "%s://%.*s%s", https ? "https" : "http", (int)u.host_len, u.host,
             u.port  ? ""
             : https ? ":8443"
                     : ":8123");

    target = (cfg_sink_t *)cfg_primary_sink(cfg);
    if (!target) {
        for (size_t i = 0; i < cfg->n_sinks; i++) {
            if (cfg->sinks[i].type == CFG_SINK_CLICKHOUSE) {
                cfg_errf(err, errlen,
                         "SLUICE_CLICKHOUSE_URL: no primary clickhouse sink to apply it to "
                         "(sinks[%zu] \"%s\" is a clickhouse sink but not the primary)",
                         i, cfg->sinks[i].name ? cfg->sinks[i].name : "");
                rc = -EINVAL;
                goto done;
            }
        }
        if (cfg->n_sinks >= CFG_MAX_SINKS) {
            cfg_errf(err, errlen, "SLUICE_CLICKHOUSE_URL: too many sinks to add one");
            rc = -EINVAL;
            goto done;
        }
        cfg_sink_t *v = realloc(cfg->sinks, (cfg->n_sinks + 1) * sizeof *v);
        if (!v) goto done;
        cfg->sinks = v;
        target = &cfg->sinks[cfg->n_sinks];
        if (cfg_sink_defaults(target) != 0) goto done;
        cfg->n_sinks++;
        target->name = cfg_strdup("clickhouse");
        target->user = cfg_strdup("default");
        target->primary = 1;
        if (!target->name || !target->user) goto done;
    }
    set_owned(&target->url, base);
    base = NULL;
    free_strs(target->urls, target->n_urls); /* the override names the one endpoint */
    target->urls = NULL;
    target->n_urls = 0;
    if (cfg_sink_sync_urls(target) < 0) goto done;
    if (user) {
        set_owned(&target->user, user);
        set_owned(&target->password, pass);
        user = pass = NULL;
    }
    if (db) {
        set_owned(&target->database, db);
        db = NULL;
    }
    rc = 0;
done:
    if (rc == -ENOMEM) cfg_errf(err, errlen, "SLUICE_CLICKHOUSE_URL: out of memory");
    free(user);
    free(pass);
    free(db);
    free(base);
    return rc;
}

static int apply_env(sluice_cfg_t *cfg, char *err, size_t errlen)
{
    char why[200];
    const char *v;
    if ((v = getenv("SLUICE_LISTEN")) && *v) {
        if (cfg_check_listen(v, why, sizeof why) != 0) goto bad_listen;
        if (set_str(&cfg->proxy.listen, v) != 0) return -ENOMEM;
    }
    if ((v = getenv("SLUICE_ADMIN_LISTEN")) && *v) {
        if (cfg_check_listen(v, why, sizeof why) != 0) {
            cfg_errf(err, errlen, "SLUICE_ADMIN_LISTEN: %s", why);
            return -EINVAL;
        }
        if (set_str(&cfg->admin.listen, v) != 0) return -ENOMEM;
    }
    if ((v = getenv("SLUICE_WAL_DIR")) && *v)
        if (set_str(&cfg->wal.dir, v) != 0) return -ENOMEM;
    if ((v = getenv("SLUICE_CLICKHOUSE_URL")) && *v)
        return apply_clickhouse_url(cfg, v, err, errlen);
    return 0;
bad_listen:
    cfg_errf(err, errlen, "SLUICE_LISTEN: %s", why);
    return -EINVAL;
}

/* ---- validation ---- */

static int is_loopback(const char *listen)
{
    char host[256];
    if (cfg_parse_listen(listen, host, sizeof host, NULL) != 0) return 0;
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcasecmp(host, "localhost") == 0;
}

/* Check one table's values (ranges, formats) on a config that may have been built in
 * code rather than loaded, so cfg_finish is the one gate every config passes. */
static int check_fields(const char *name, const char *path, const void *base, const cfg_field_t *f,
                        char *err, size_t errlen)
{
    char why[200];
    for (; f->key; f++) {
        const char *p = (const char *)base + f->off;
        const char *s = NULL;
        uint64_t v = 0;
        if (f->type <= CFG_T_OPTURL) s = *(char *const *)p; /* the string-typed fields */
        why[0] = '\0';
        switch (f->type) {
        case CFG_T_STR:
            if (!s || !*s) snprintf(why, sizeof why, "must not be empty");
            break;
        case CFG_T_STR0:
            if (!s) snprintf(why, sizeof why, "missing");
            break;
        case CFG_T_NAME:
            cfg_check_name(s, why, sizeof why);
            break;
        case CFG_T_LISTEN:
            cfg_check_listen(s, why, sizeof why);
            break;
        case CFG_T_LISTEN0:
            if (!s)
                snprintf(why, sizeof why, "missing (use \"\" to disable)");
            else if (*s)
                cfg_check_listen(s, why, sizeof why);
            break;
        case CFG_T_URL:
            cfg_check_url(s, why, sizeof why);
            break;
        case CFG_T_OPTURL:
            if (s) cfg_check_url(s, why, sizeof why);
            break;
        case CFG_T_U32:
        case CFG_T_SIZE32:
            v = *(const uint32_t *)p;
            goto range;
        case CFG_T_SIZE64:
            v = *(const uint64_t *)p;
        range:
            if (v < f->min || v > f->max)
                snprintf(why, sizeof why, "%llu is out of range %llu..%llu", (unsigned long long)v,
                         (unsigned long long)f->min, (unsigned long long)f->max);
            break;
        case CFG_T_BOOL:
        case CFG_T_COMPRESS:
            if (*(const int *)p != 0 && *(const int *)p != 1)
                snprintf(why, sizeof why, "must be 0 or 1");
            break;
        case CFG_T_ENUM: {
            int e = *(const int *)p, n = 0;
            while (f->names[n])
                n++;
            if (e < 0 || e >= n) snprintf(why, sizeof why, "invalid value %d", e);
            break;
        }
        case CFG_T_RATIO: {
            double d = *(const double *)p;
            if (!(d >= 0.0 && d <= 1.0)) snprintf(why, sizeof why, "must be between 0 and 1");
            break;
        }
        case CFG_T_SECTION: {
            char sub[160];
            snprintf(sub, sizeof sub, "%s.%s", path, f->key);
            int rc = check_fields(name, sub, base, f->sub, err, errlen);
            if (rc) return rc;
            break;
        }
        case CFG_T_URLS: {
            char *const *uv = *(char **const *)p;
            size_t un = *(const size_t *)((const char *)base + f->off_n);
            if (un == 0) snprintf(why, sizeof why, "missing");
            if (un > CFG_MAX_ENDPOINTS)
                snprintf(why, sizeof why, "more than %d endpoints", CFG_MAX_ENDPOINTS);
            for (size_t k = 0; !why[0] && k < un; k++)
                cfg_check_url(uv[k], why, sizeof why);
            break;
        }
        case CFG_T_OPTSTR:
        case CFG_T_STRLIST:
        case CFG_T_KVMAP:
        case CFG_T_USERS:
            break;
        }
        if (why[0]) {
            cfg_errf(err, errlen, "%s: %s.%s: %s", name, path, f->key, why);
            return -EINVAL;
        }
    }
    return 0;
}

static int validate(sluice_cfg_t *cfg, char *err, size_t errlen)
{
    const char *name = cfg->path ? cfg->path : "config";
    const cfg_sink_t *primary = NULL;
    size_t primary_i = 0;
    int rc;

    for (const cfg_section_t *sec = cfg_sections; sec->key; sec++)
        if ((rc = check_fields(name, sec->key, (const char *)cfg + sec->off, sec->fields, err,
                               errlen)))
            return rc;
    if (cfg->wal.max_record_bytes > cfg->wal.max_bytes) {
        cfg_errf(err, errlen, "%s: wal.max_record_bytes: %u is larger than wal.max_bytes (%llu)",
                 name, cfg->wal.max_record_bytes, (unsigned long long)cfg->wal.max_bytes);
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->proxy.n_users; i++) {
        const cfg_user_t *u = &cfg->proxy.users[i];
        if (!u->user || !*u->user || !u->password) {
            cfg_errf(err, errlen, "%s: proxy.users[%zu]: user must be non-empty", name, i);
            return -EINVAL;
        }
    }
    if (cfg->n_sinks == 0) {
        cfg_errf(err, errlen,
                 "%s: sinks: no sinks configured (add one under sinks, or set "
                 "SLUICE_CLICKHOUSE_URL)",
                 name);
        return -EINVAL;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++) {
        const cfg_sink_t *s = &cfg->sinks[i];
        char path[48];
        snprintf(path, sizeof path, "sinks[%zu]", i);
        if ((rc = check_fields(name, path, s, cfg_sink_fields, err, errlen))) return rc;
        if (s->retry_max_backoff_ms < s->retry_initial_backoff_ms) {
            cfg_errf(err, errlen, "%s: %s.retry.max_backoff_ms: smaller than initial_backoff_ms",
                     name, path);
            return -EINVAL;
        }
        if (s->type == CFG_SINK_STARROCKS && s->batch_max_bytes > CFG_STARROCKS_MAX_BATCH_BYTES) {
            cfg_errf(
                err, errlen,
                "%s: %s.batch.max_bytes: %llu is more than %u (90MiB): StarRocks refuses a JSON "
                "load over streaming_load_max_batch_size_mb (100MiB), and a batch may pass "
                "max_bytes by one record",
                name, path, (unsigned long long)s->batch_max_bytes, CFG_STARROCKS_MAX_BATCH_BYTES);
            return -EINVAL;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->sinks[j].name, s->name) == 0) {
                cfg_errf(err, errlen, "%s: %s.name: duplicate sink name \"%s\" (also sinks[%zu])",
                         name, path, s->name, j);
                return -EINVAL;
            }
        }
        if (!s->primary) continue;
        if (primary) {
            cfg_errf(err, errlen, "%s: %s.primary: only one sink may be primary (also sinks[%zu])",
                     name, path, primary_i);
            return -EINVAL;
        }
        if (s->type != CFG_SINK_CLICKHOUSE || !s->enabled) {
            cfg_errf(err, errlen,
                     "%s: %s.primary: the primary sink must be an enabled clickhouse sink", name,
                     path);
            return -EINVAL;
        }
        primary = s;
        primary_i = i;
    }
    if (!cfg->proxy.passthrough_url) {
        if (!primary) {
            cfg_errf(err, errlen,
                     "%s: proxy.passthrough_url: required when there is no primary clickhouse "
                     "sink (queries other than INSERT need somewhere to go)",
                     name);
            return -EINVAL;
        }
        if (!(cfg->proxy.passthrough_url = cfg_strdup(primary->url))) return -ENOMEM;
    }
    if (cfg->admin.listen && *cfg->admin.listen && !is_loopback(cfg->admin.listen) &&
        (!cfg->admin.token || !*cfg->admin.token)) {
        cfg_errf(err, errlen,
                 "%s: admin.token: required when admin.listen (%s) is not a loopback address", name,
                 cfg->admin.listen);
        return -EINVAL;
    }
    return 0;
}

int cfg_finish(sluice_cfg_t *cfg, char *err, size_t errlen)
{
    int rc;
    if (err && errlen) err[0] = '\0';
    if (!cfg) return -EINVAL;
    if ((rc = apply_env(cfg, err, errlen)) != 0) {
        if (rc == -ENOMEM && err && !err[0]) cfg_errf(err, errlen, "out of memory");
        return rc;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg_sink_sync_urls(&cfg->sinks[i]) < 0) {
            cfg_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    rc = validate(cfg, err, errlen);
    if (rc == -ENOMEM && err && !err[0]) cfg_errf(err, errlen, "out of memory");
    return rc;
}
