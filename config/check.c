/* check.c — what a config value or a whole config must be: listen addresses, URLs, names,
 * sizes (the checkers the key tables name), then cfg_validate's per-field and cross-field
 * rules with their FILE:LINE: KEY: reasons. */
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
int cfg_url_split_http(const char *s, url_t *u, const char **why)
{
    if (strncasecmp(s, "http://", 7) != 0 && strncasecmp(s, "https://", 8) != 0)
        return *why = "expected an http:// or https:// URL", -EINVAL;
    return url_split(s, u, why);
}

/* cfg_quote of a URL with its password masked (url_redact), for error messages: a refused
 * URL must not print the secret it carries. */
void cfg_quote_url(char *out, size_t outlen, const char *url)
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
    int rc = cfg_url_split_http(s, &u, &reason);
    if (rc == 0 && u.user) {
        reason = "credentials in the URL are not allowed here: use the user and password keys";
        rc = -EINVAL;
    }
    if (rc == 0) return 0;
    cfg_quote_url(q, sizeof q, s);
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

int cfg_validate(sluice_cfg_t *cfg, char *err, size_t errlen)
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
