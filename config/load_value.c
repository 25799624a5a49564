/* load_value.c — one YAML value into its typed field for load.c's walk: strings, names, URLs,
 * listen addresses, integers and byte sizes in range, booleans, enums, ratios, lists, maps and
 * users, each refused with its "FILE:LINE: KEY: what is wrong" message. */
#include "common/buf.h"
#include "config/cfg_internal.h"
#include "config/load_internal.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

static void fmt_size(char *out, size_t n, uint64_t v)
{
    static const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (i < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        i++;
    }
    snprintf(out, n, "%llu%s", (unsigned long long)v, u[i]);
}

static int parse_uint(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!isdigit((unsigned char)*s)) return -EINVAL;
    for (; *s; s++) {
        if (!isdigit((unsigned char)*s)) return -EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10) return -ERANGE;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *t[] = {"true", "yes", "on", "1"}, *f[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(s, t[i]) == 0) return *out = 1, 0;
        if (strcasecmp(s, f[i]) == 0) return *out = 0, 0;
    }
    return -EINVAL;
}

static void store_str(char **dst, char *v)
{
    free(*dst);
    *dst = v;
}

/* Common start of a list or map value: null is empty; else check the node kind, the item
 * cap, and allocate zeroed room. *cnt is 0 (and *out untouched) for an empty collection. */
static int items_alloc(ld_t *ld, const yaml_node_t *n, const char *key, yaml_node_type_t t,
                       size_t elem, void **out, size_t *cnt)
{
    int rc;
    *cnt = 0;
    if (ld_is_null(n)) return 0;
    if ((rc = ld_expect(ld, n, key, t))) return rc;
    size_t c = t == YAML_SEQUENCE_NODE
                   ? (size_t)(n->data.sequence.items.top - n->data.sequence.items.start)
                   : (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
    if (c > CFG_MAX_ITEMS)
        return ld_fail(ld, n, key, -EINVAL, "more than %d entries", CFG_MAX_ITEMS);
    if (c == 0) return 0;
    if (!(*out = calloc(c, elem))) return ld_oom(ld, n, key);
    *cnt = c;
    return 0;
}

static int parse_strlist(ld_t *ld, const yaml_node_t *n, const char *key, char ***out, size_t *nout)
{
    char sub[PATH_LEN];
    int rc;
    size_t cnt;
    /* Owned by the caller's struct from here on, so every failure below is freed by cfg_free. */
    void *mem = NULL;
    if ((rc = items_alloc(ld, n, key, YAML_SEQUENCE_NODE, sizeof **out, &mem, &cnt)) || !cnt)
        return rc;
    char **v = *out = mem;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = ld_node(ld, n->data.sequence.items.start[i]);
        ld_pathf(sub, "%s[%zu]", key, i);
        if ((rc = ld_scalar(ld, it, sub, &v[i], NULL))) return rc;
        *nout = i + 1;
        if (!*v[i]) return ld_fail(ld, it, sub, -EINVAL, "expected a non-empty string");
    }
    return 0;
}

/* `url`: one URL, or a list of them (several StarRocks FEs / ClickHouse replicas). Each is
 * checked with the one URL parser (cfg_check_url). */
static int parse_urls(ld_t *ld, const yaml_node_t *n, const char *key, char ***out, size_t *nout)
{
    char sub[PATH_LEN], why[200];
    int rc;
    size_t cnt;
    void *mem = NULL;
    if (n->type == YAML_SCALAR_NODE) {
        char *s = NULL;
        if ((rc = ld_scalar(ld, n, key, &s, NULL))) return rc;
        if (cfg_check_url(s, why, sizeof why)) {
            free(s);
            return ld_fail(ld, n, key, -EINVAL, "%s", why);
        }
        if (!(*out = calloc(1, sizeof **out))) {
            free(s);
            return ld_oom(ld, n, key);
        }
        (*out)[0] = s;
        *nout = 1;
        return 0;
    }
    if ((rc = items_alloc(ld, n, key, YAML_SEQUENCE_NODE, sizeof **out, &mem, &cnt))) return rc;
    if (cnt == 0) return ld_fail(ld, n, key, -EINVAL, "expected a URL or a non-empty list of URLs");
    if (cnt > CFG_MAX_ENDPOINTS)
        return ld_fail(ld, n, key, -EINVAL, "more than %d endpoints", CFG_MAX_ENDPOINTS);
    char **v = *out = mem;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = ld_node(ld, n->data.sequence.items.start[i]);
        ld_pathf(sub, "%s[%zu]", key, i);
        if ((rc = ld_scalar(ld, it, sub, &v[i], NULL))) return rc;
        *nout = i + 1;
        if (cfg_check_url(v[i], why, sizeof why)) return ld_fail(ld, it, sub, -EINVAL, "%s", why);
    }
    return 0;
}

static int parse_kvmap(ld_t *ld, const yaml_node_t *n, const char *key, int need_value,
                       cfg_kv_t **out, size_t *nout)
{
    char sub[PATH_LEN];
    int rc;
    size_t cnt;
    void *mem = NULL;
    if ((rc = items_alloc(ld, n, key, YAML_MAPPING_NODE, sizeof **out, &mem, &cnt)) || !cnt)
        return rc;
    cfg_kv_t *v = *out = mem;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_pair_t *pr = &n->data.mapping.pairs.start[i];
        const yaml_node_t *k = ld_node(ld, pr->key), *val = ld_node(ld, pr->value);
        const char *ks = ld_map_key(ld, k, key);
        if (!ks) return -EINVAL;
        ld_pathf(sub, "%s.%.64s", key, ks);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j].key, ks) == 0) return ld_fail(ld, k, sub, -EINVAL, "duplicate key");
        if (!(v[i].key = cfg_strdup(ks))) return ld_oom(ld, k, sub);
        *nout = i + 1;
        if ((rc = ld_scalar(ld, val, sub, &v[i].value, NULL))) return rc;
        if (need_value && !*v[i].value)
            return ld_fail(ld, val, sub, -EINVAL, "expected a non-empty string");
    }
    return 0;
}

static int parse_users(ld_t *ld, const yaml_node_t *n, const char *key, cfg_user_t **out,
                       size_t *nout)
{
    static const char *const known[] = {"user", "password"};
    char sub[PATH_LEN], full[PATH_LEN];
    int rc;
    size_t cnt;
    void *mem = NULL;
    if ((rc = items_alloc(ld, n, key, YAML_SEQUENCE_NODE, sizeof **out, &mem, &cnt)) || !cnt)
        return rc;
    cfg_user_t *v = *out = mem;
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = ld_node(ld, n->data.sequence.items.start[i]);
        ld_pathf(sub, "%s[%zu]", key, i);
        if ((rc = ld_expect(ld, it, sub, YAML_MAPPING_NODE))) return rc;
        *nout = i + 1;
        for (yaml_node_pair_t *pr = it->data.mapping.pairs.start; pr < it->data.mapping.pairs.top;
             pr++) {
            const yaml_node_t *k = ld_node(ld, pr->key), *val = ld_node(ld, pr->value);
            const char *ks = ld_map_key(ld, k, sub);
            if (!ks) return -EINVAL;
            int null;
            char *s;
            size_t which = strcmp(ks, "user") == 0 ? 0 : strcmp(ks, "password") == 0 ? 1 : 2;
            if (which == 2) return ld_unknown_key(ld, k, sub, ks, known, 2);
            ld_pathf(full, "%s.%s", sub, ks);
            char **dst = which == 0 ? &v[i].user : &v[i].password;
            if (*dst) return ld_fail(ld, k, full, -EINVAL, "duplicate key");
            if ((rc = ld_scalar(ld, val, full, &s, &null))) return rc;
            *dst = s;
            if (which == 0 && !*s)
                return ld_fail(ld, val, full, -EINVAL, "expected a non-empty user name");
        }
        if (!v[i].user) {
            ld_pathf(full, "%s.user", sub);
            return ld_fail(ld, it, full, -EINVAL, "missing required key");
        }
        if (!v[i].password && !(v[i].password = cfg_strdup(""))) return ld_oom(ld, it, sub);
        for (size_t j = 0; j < i; j++)
            if (strcmp(v[j].user, v[i].user) == 0)
                return ld_fail(ld, it, sub, -EINVAL, "duplicate user \"%.64s\" (also %s[%zu])",
                               v[i].user, key, j);
    }
    return 0;
}

/* One key's value into its field. The string is interpolated before any conversion. */
int ld_parse_value(ld_t *ld, const yaml_node_t *n, const char *key, void *base,
                   const cfg_field_t *f)
{
    char *p = (char *)base + f->off, *s = NULL, why[200], q[96], lo[32], hi[32];
    int null = 0, rc;
    uint64_t v;

    switch (f->type) {
    case CFG_T_STRLIST:
        return parse_strlist(ld, n, key, (char ***)p, (size_t *)((char *)base + f->off_n));
    case CFG_T_URLS:
        return parse_urls(ld, n, key, (char ***)p, (size_t *)((char *)base + f->off_n));
    case CFG_T_KVMAP:
        return parse_kvmap(ld, n, key, f->min > 0, (cfg_kv_t **)p,
                           (size_t *)((char *)base + f->off_n));
    case CFG_T_USERS:
        return parse_users(ld, n, key, (cfg_user_t **)p, (size_t *)((char *)base + f->off_n));
    case CFG_T_SECTION: {
        size_t lines[MAX_FIELDS] = {0};
        if (ld_is_null(n)) return 0;
        return ld_parse_fields(ld, n, key, base, f->sub, lines);
    }
    default:
        break;
    }
    if ((rc = ld_scalar(ld, n, key, &s, &null))) return rc;
    cfg_quote(q, sizeof q, s);
    rc = -EINVAL;
    switch (f->type) {
    case CFG_T_STR:
    case CFG_T_NAME:
        if (null || !*s) {
            ld_fail(ld, n, key, rc, "expected a non-empty string");
            break;
        }
        if (f->type == CFG_T_NAME && cfg_check_name(s, why, sizeof why)) {
            ld_fail(ld, n, key, rc, "%s", why);
            break;
        }
        store_str((char **)p, s);
        return 0;
    case CFG_T_STR0:
        if (null) *s = '\0';
        store_str((char **)p, s);
        return 0;
    case CFG_T_OPTSTR:
    case CFG_T_OPTURL:
        if (null || !*s) {
            free(s);
            store_str((char **)p, NULL);
            return 0;
        }
        if (f->type == CFG_T_OPTURL && cfg_check_url(s, why, sizeof why)) {
            ld_fail(ld, n, key, rc, "%s", why);
            break;
        }
        store_str((char **)p, s);
        return 0;
    case CFG_T_URL:
        if (cfg_check_url(s, why, sizeof why)) {
            ld_fail(ld, n, key, rc, "%s", why);
            break;
        }
        store_str((char **)p, s);
        return 0;
    case CFG_T_LISTEN0:
        if (null) *s = '\0';
        if (!*s) {
            store_str((char **)p, s);
            return 0;
        }
        /* fall through */
    case CFG_T_LISTEN:
        if (cfg_check_listen(s, why, sizeof why)) {
            ld_fail(ld, n, key, rc, "%s", why);
            break;
        }
        store_str((char **)p, s);
        return 0;
    case CFG_T_U32:
        rc = parse_uint(s, &v);
        if (rc == -EINVAL) {
            ld_fail(ld, n, key, rc, "expected a %s integer, got %s",
                    f->min > 0 ? "positive" : "non-negative", q);
            break;
        }
        if (rc || v < f->min || v > f->max) {
            rc = ld_fail(ld, n, key, -EINVAL, "%s is out of range %llu..%llu", q,
                         (unsigned long long)f->min, (unsigned long long)f->max);
            break;
        }
        *(uint32_t *)p = (uint32_t)v;
        free(s);
        return 0;
    case CFG_T_SIZE32:
    case CFG_T_SIZE64:
        rc = cfg_parse_bytes(s, &v);
        fmt_size(lo, sizeof lo, f->min);
        fmt_size(hi, sizeof hi, f->max);
        if (rc == -EINVAL) {
            ld_fail(ld, n, key, rc,
                    "expected a size in bytes (an integer, or with a unit B, KB, KiB, MB, MiB, GB, "
                    "GiB), got %s",
                    q);
            break;
        }
        if (rc || v < f->min || v > f->max) {
            rc = ld_fail(ld, n, key, -EINVAL, "%s is out of range %s..%s", q, lo, hi);
            break;
        }
        if (f->type == CFG_T_SIZE32)
            *(uint32_t *)p = (uint32_t)v;
        else
            *(uint64_t *)p = v;
        free(s);
        return 0;
    case CFG_T_BOOL:
        if (parse_bool(s, (int *)p)) {
            ld_fail(ld, n, key, rc, "expected true or false, got %s", q);
            break;
        }
        free(s);
        return 0;
    case CFG_T_COMPRESS:
        if (strcmp(s, "gzip") == 0)
            *(int *)p = 1;
        else if (strcmp(s, "none") == 0)
            *(int *)p = 0;
        else if (parse_bool(s, (int *)p)) {
            ld_fail(ld, n, key, rc, "expected gzip, none, true or false, got %s", q);
            break;
        }
        free(s);
        return 0;
    case CFG_T_ENUM: {
        char list[128] = "";
        size_t len = 0;
        for (int i = 0; f->names[i]; i++) {
            if (strcmp(s, f->names[i]) == 0) {
                *(int *)p = i;
                free(s);
                return 0;
            }
            len +=
                (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", f->names[i]);
        }
        ld_fail(ld, n, key, rc, "expected one of %s, got %s", list, q);
        break;
    }
    case CFG_T_RATIO: {
        char *end = NULL;
        double d = 0;
        if (isdigit((unsigned char)s[0]) || (s[0] == '.' && isdigit((unsigned char)s[1])))
            d = strtod(s, &end);
        if (!end || *end || !isfinite(d) || d < 0.0 || d > 1.0) {
            ld_fail(ld, n, key, rc, "expected a number between 0 and 1, got %s", q);
            break;
        }
        *(double *)p = d;
        free(s);
        return 0;
    }
    default:
        ld_fail(ld, n, key, rc, "internal error: unhandled type");
        break;
    }
    free(s);
    return rc;
}
