/* env.c — the environment overrides of the sidecar case (SLUICE_LISTEN, SLUICE_WAL_DIR,
 * SLUICE_CLICKHOUSE_URL as TensorZero spells it, ...), applied by cfg_finish before the
 * checks. */
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

    cfg_quote_url(q, sizeof q, val);
    if (cfg_url_split_http(val, &u, &reason) != 0) {
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
    cfg_free_strs(target->urls, target->n_urls); /* the override names the one endpoint */
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

int cfg_apply_env(sluice_cfg_t *cfg, char *err, size_t errlen)
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
