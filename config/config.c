/* config.c — the key tables and defaults, and cfg_finish, which every config goes through
 * however it was built: environment overrides (env.c), then the checks (check.c). YAML
 * reading is in load.c, YAML writing in print.c; both walk the tables below. */
#include "common/url.h"
#include "config/cfg_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
    F(cfg_wal_t, checkpoint_ms, CFG_T_U32, checkpoint_ms, 1, 60000),
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

void cfg_free_strs(char **v, size_t n)
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
    cfg_free_strs(s->urls, s->n_urls);
    free(s->user);
    free(s->password);
    free(s->database);
    cfg_free_strs(s->include, s->n_include);
    cfg_free_strs(s->exclude, s->n_exclude);
    free_kvs(s->rename, s->n_rename);
    free_kvs(s->settings, s->n_settings);
    cfg_free_strs(s->drop_settings, s->n_drop_settings);
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

void cfg_wal_defaults(cfg_wal_t *wal)
{
    memset(wal, 0, sizeof *wal);
    wal->max_bytes = GiB;
    wal->max_record_bytes = (uint32_t)MiB;
    wal->sync = CFG_SYNC_ALWAYS;
    wal->sync_interval_ms = 100;
    wal->checkpoint_ms = 100;
    wal->when_full = CFG_FULL_REJECT;
    wal->block_timeout_ms = 5000;
    wal->truncate_chunk = 1000;
    wal->ready_below_pct = 90;
}

void cfg_defaults(sluice_cfg_t *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg_wal_defaults(&cfg->wal);
    cfg->wal.dir = cfg_strdup("./sluice-wal");
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

int cfg_finish(sluice_cfg_t *cfg, char *err, size_t errlen)
{
    int rc;
    if (err && errlen) err[0] = '\0';
    if (!cfg) return -EINVAL;
    if ((rc = cfg_apply_env(cfg, err, errlen)) != 0) {
        if (rc == -ENOMEM && err && !err[0]) cfg_errf(err, errlen, "out of memory");
        return rc;
    }
    for (size_t i = 0; i < cfg->n_sinks; i++)
        if (cfg_sink_sync_urls(&cfg->sinks[i]) < 0) {
            cfg_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
    rc = cfg_validate(cfg, err, errlen);
    if (rc == -ENOMEM && err && !err[0]) cfg_errf(err, errlen, "out of memory");
    return rc;
}
