/* load.c — reads the YAML file into sluice_cfg_t: walks libyaml's document tree against the
 * key tables in config.c, interpolates ${VAR} / ${VAR:-default} / $$ in scalar values, and
 * turns every problem into one "FILE:LINE: KEY: what is wrong" message. One key's typed value
 * (sizes, lists, URLs, users...) is load_value.c's. */
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

/* Build a dotted key path for messages; a too-long path is cut, which only shortens them. */
__attribute__((format(printf, 2, 3))) void ld_pathf(char *out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out, PATH_LEN, fmt, ap);
    va_end(ap);
}

static size_t line_of(const yaml_node_t *n)
{
    return n ? n->start_mark.line + 1 : 1;
}

/* Every error goes through here; returns the code so callers can `return ld_fail(...)`. */
__attribute__((format(printf, 5, 6))) int ld_fail(ld_t *ld, const yaml_node_t *n, const char *key,
                                                  int code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cfg_errf(ld->err, ld->errlen, "%s:%zu: %s: %s", ld->name, line_of(n), key, msg);
    return code;
}

int ld_oom(ld_t *ld, const yaml_node_t *n, const char *key)
{
    return ld_fail(ld, n, key, -ENOMEM, "out of memory");
}

yaml_node_t *ld_node(ld_t *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

int ld_is_null(const yaml_node_t *n)
{
    const char *v = (const char *)n->data.scalar.value;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE) return 0;
    return n->data.scalar.length == 0 || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

int ld_expect(ld_t *ld, const yaml_node_t *n, const char *key, yaml_node_type_t t)
{
    static const char *names[] = {"", "a scalar value", "a list", "a mapping"};
    if (n->type == t) return 0;
    return ld_fail(ld, n, key, -EINVAL, "expected %s, got %s", names[t], kind(n));
}

/* ---- interpolation ---- */

/* ${VAR} (unset is an error), ${VAR:-default} (unset or empty takes default), $$ -> $.
 * A '$' followed by anything else is kept as is, so passwords with a lone '$' survive. */
static int interpolate(ld_t *ld, const yaml_node_t *n, const char *key, const char *in, char **out)
{
    buf_t b = {0};
    int rc = -ENOMEM;
    const char *p = in;
    char q[96];
    if (buf_append(&b, "", 0)) goto fail;
    while (*p) {
        const char *dollar = strchr(p, '$');
        if (!dollar) {
            if (buf_append(&b, p, strlen(p))) goto fail;
            break;
        }
        if (buf_append(&b, p, (size_t)(dollar - p))) goto fail;
        if (dollar[1] != '{') {
            if (buf_append(&b, "$", 1)) goto fail;
            p = dollar + (dollar[1] == '$' ? 2 : 1);
            continue;
        }
        const char *name = dollar + 2, *e = name;
        while (isalnum((unsigned char)*e) || *e == '_')
            e++;
        const char *close = strchr(e, '}');
        cfg_quote(q, sizeof q, in);
        if (!close) {
            rc = ld_fail(ld, n, key, -EINVAL, "unterminated ${ in %s", q);
            goto fail;
        }
        if (e == name || isdigit((unsigned char)*name) || (*e != '}' && strncmp(e, ":-", 2) != 0)) {
            rc = ld_fail(
                ld, n, key, -EINVAL,
                "bad ${...} in %s: expected ${NAME} or ${NAME:-default} ($$ for a literal $)", q);
            goto fail;
        }
        char var[128];
        if ((size_t)(e - name) >= sizeof var) {
            rc = ld_fail(ld, n, key, -EINVAL, "variable name too long in %s", q);
            goto fail;
        }
        memcpy(var, name, (size_t)(e - name));
        var[e - name] = '\0';
        const char *val = getenv(var);
        if (*e == '}') {
            if (!val) {
                rc =
                    ld_fail(ld, n, key, -EINVAL,
                            "environment variable %s is not set (use ${%s:-default} for a default)",
                            var, var);
                goto fail;
            }
            if (buf_append(&b, val, strlen(val))) goto fail;
        } else if (val && *val) {
            if (buf_append(&b, val, strlen(val))) goto fail;
        } else {
            if (buf_append(&b, e + 2, (size_t)(close - (e + 2)))) goto fail;
        }
        p = close + 1;
    }
    *out = b.data;
    return 0;
fail:
    if (rc == -ENOMEM) ld_oom(ld, n, key);
    buf_free(&b);
    return rc;
}

/* The interpolated value of a scalar ld_node (caller frees); *null tells YAML null apart. */
int ld_scalar(ld_t *ld, const yaml_node_t *n, const char *key, char **out, int *null)
{
    int rc = ld_expect(ld, n, key, YAML_SCALAR_NODE);
    if (rc) return rc;
    if (memchr(n->data.scalar.value, '\0', n->data.scalar.length))
        return ld_fail(ld, n, key, -EINVAL, "NUL character in value");
    if (null) *null = ld_is_null(n);
    return interpolate(ld, n, key, (const char *)n->data.scalar.value, out);
}

/* A mapping key: a plain string, never interpolated. NULL (error recorded, the caller returns
 * -EINVAL) when it is not one. Returning the key itself, not an rc plus an out-param, lets the
 * compiler see that no path uses an unset key (gcc 12 -O2 could not see through ld_fail()). */
const char *ld_map_key(ld_t *ld, const yaml_node_t *k, const char *path)
{
    if (k->type != YAML_SCALAR_NODE) {
        ld_fail(ld, k, path, -EINVAL, "expected a plain key, got %s", kind(k));
        return NULL;
    }
    if (memchr(k->data.scalar.value, '\0', k->data.scalar.length) || k->data.scalar.length == 0) {
        ld_fail(ld, k, path, -EINVAL, "empty key or NUL character in key");
        return NULL;
    }
    return (const char *)k->data.scalar.value;
}

static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b), d[40];
    if (la > 38 || lb > 38) return 99;
    for (size_t j = 0; j <= lb; j++)
        d[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t prev = d[0];
        d[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = d[j];
            size_t best = prev + (a[i - 1] != b[j - 1]);
            if (d[j] + 1 < best) best = d[j] + 1;
            if (d[j - 1] + 1 < best) best = d[j - 1] + 1;
            d[j] = best;
            prev = cur;
        }
    }
    return d[lb];
}

/* "unknown key", with a "did you mean" when one known key is close. */
int ld_unknown_key(ld_t *ld, const yaml_node_t *k, const char *path, const char *key,
                   const char *const *known, size_t nknown)
{
    char full[PATH_LEN];
    const char *best = NULL;
    size_t bestd = 3;
    for (size_t i = 0; i < nknown; i++) {
        size_t d = edit_distance(key, known[i]);
        if (d < bestd) {
            bestd = d;
            best = known[i];
        }
    }
    ld_pathf(full, "%s%s%.64s", path, *path ? "." : "", key);
    if (best) return ld_fail(ld, k, full, -EINVAL, "unknown key (did you mean %s?)", best);
    return ld_fail(ld, k, full, -EINVAL, "unknown key");
}

/* The keys of mapping n into base per fields. lines[i] gets the line where fields[i] was set
 * (0 if absent), which serves duplicate detection, required keys and later messages. */
int ld_parse_fields(ld_t *ld, const yaml_node_t *n, const char *path, void *base,
                    const cfg_field_t *fields, size_t *lines)
{
    const char *known[MAX_FIELDS];
    char full[PATH_LEN];
    size_t nf = 0;
    int rc;
    while (fields[nf].key)
        known[nf] = fields[nf].key, nf++;
    if ((rc = ld_expect(ld, n, path, YAML_MAPPING_NODE))) return rc;
    for (yaml_node_pair_t *pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top; pr++) {
        const yaml_node_t *k = ld_node(ld, pr->key), *v = ld_node(ld, pr->value);
        const char *ks = ld_map_key(ld, k, path);
        if (!ks) return -EINVAL;
        size_t i;
        for (i = 0; i < nf && strcmp(ks, fields[i].key) != 0; i++)
            ;
        if (i == nf) return ld_unknown_key(ld, k, path, ks, known, nf);
        ld_pathf(full, "%s.%s", path, ks);
        if (lines[i])
            return ld_fail(ld, k, full, -EINVAL, "duplicate key (first at line %zu)", lines[i]);
        lines[i] = line_of(k);
        if ((rc = ld_parse_value(ld, v, full, base, &fields[i]))) return rc;
    }
    return 0;
}

static size_t field_index(const cfg_field_t *fields, const char *key)
{
    size_t i = 0;
    while (fields[i].key && strcmp(fields[i].key, key) != 0)
        i++;
    return i;
}

static int parse_sinks(ld_t *ld, const yaml_node_t *n, sluice_cfg_t *cfg)
{
    char path[PATH_LEN], full[PATH_LEN];
    size_t primary_line[CFG_MAX_SINKS] = {0}, name_line[CFG_MAX_SINKS] = {0};
    const size_t i_name = field_index(cfg_sink_fields, "name");
    const size_t i_type = field_index(cfg_sink_fields, "type");
    const size_t i_url = field_index(cfg_sink_fields, "url");
    const size_t i_primary = field_index(cfg_sink_fields, "primary");
    int rc;

    if (ld_is_null(n)) return 0;
    if ((rc = ld_expect(ld, n, "sinks", YAML_SEQUENCE_NODE))) return rc;
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (cnt > CFG_MAX_SINKS)
        return ld_fail(ld, n, "sinks", -EINVAL, "more than %d sinks", CFG_MAX_SINKS);
    if (cnt == 0) return 0;
    if (!(cfg->sinks = calloc(cnt, sizeof *cfg->sinks))) return ld_oom(ld, n, "sinks");
    for (size_t i = 0; i < cnt; i++) {
        const yaml_node_t *it = ld_node(ld, n->data.sequence.items.start[i]);
        cfg_sink_t *s = &cfg->sinks[i];
        size_t lines[MAX_FIELDS] = {0};
        ld_pathf(path, "sinks[%zu]", i);
        if (cfg_sink_defaults(s)) return ld_oom(ld, it, path);
        cfg->n_sinks = i + 1;
        s->primary = -1; /* unset: resolved below once every sink is known */
        if ((rc = ld_parse_fields(ld, it, path, s, cfg_sink_fields, lines))) return rc;
        const size_t required[] = {i_name, i_type, i_url};
        for (size_t r = 0; r < 3; r++) {
            if (lines[required[r]]) continue;
            ld_pathf(full, "%s.%s", path, cfg_sink_fields[required[r]].key);
            return ld_fail(ld, it, full, -EINVAL, "missing required key");
        }
        if (!s->user && !(s->user = cfg_strdup(s->type == CFG_SINK_STARROCKS ? "root" : "default")))
            return ld_oom(ld, it, path);
        if (cfg_sink_sync_urls(s) < 0) return ld_oom(ld, it, path);
        if (s->type == CFG_SINK_STARROCKS && s->batch_max_bytes > CFG_STARROCKS_MAX_BATCH_BYTES) {
            ld_pathf(full, "%s.batch.max_bytes", path);
            return ld_fail(
                ld, it, full, -EINVAL,
                "%llu is more than 90MiB: StarRocks refuses a JSON load over "
                "streaming_load_max_batch_size_mb (100MiB), and a batch may pass max_bytes "
                "by one record",
                (unsigned long long)s->batch_max_bytes);
        }
        if (s->retry_max_backoff_ms < s->retry_initial_backoff_ms) {
            ld_pathf(full, "%s.retry.max_backoff_ms", path);
            return ld_fail(ld, it, full, -EINVAL, "%u is smaller than initial_backoff_ms (%u)",
                           s->retry_max_backoff_ms, s->retry_initial_backoff_ms);
        }
        name_line[i] = lines[i_name];
        primary_line[i] = lines[i_primary];
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->sinks[j].name, s->name) != 0) continue;
            ld_pathf(full, "%s.name", path);
            cfg_errf(ld->err, ld->errlen,
                     "%s:%zu: %s: duplicate sink name \"%s\" (first at line %zu, sinks[%zu])",
                     ld->name, name_line[i], full, s->name, name_line[j], j);
            return -EINVAL;
        }
    }
    /* primary: at most one true; it must be an enabled clickhouse sink; when none says true,
     * the first enabled clickhouse sink that does not say false. */
    size_t chosen = cnt;
    for (size_t i = 0; i < cnt; i++) {
        cfg_sink_t *s = &cfg->sinks[i];
        if (s->primary != 1) continue;
        ld_pathf(full, "sinks[%zu].primary", i);
        if (chosen < cnt) {
            cfg_errf(ld->err, ld->errlen,
                     "%s:%zu: %s: only one sink may be primary (sinks[%zu] at line %zu is too)",
                     ld->name, primary_line[i], full, chosen, primary_line[chosen]);
            return -EINVAL;
        }
        if (s->type != CFG_SINK_CLICKHOUSE || !s->enabled) {
            cfg_errf(ld->err, ld->errlen,
                     "%s:%zu: %s: the primary sink must be an enabled clickhouse sink", ld->name,
                     primary_line[i], full);
            return -EINVAL;
        }
        chosen = i;
    }
    for (size_t i = 0; chosen == cnt && i < cnt; i++) {
        cfg_sink_t *s = &cfg->sinks[i];
        if (s->primary == -1 && s->enabled && s->type == CFG_SINK_CLICKHOUSE) chosen = i;
    }
    for (size_t i = 0; i < cnt; i++)
        cfg->sinks[i].primary = i == chosen;
    return 0;
}

static int parse_root(ld_t *ld, const yaml_node_t *root, sluice_cfg_t *cfg)
{
    const char *known[8];
    size_t nsec = 0, lines[8] = {0};
    int rc;
    while (cfg_sections[nsec].key)
        known[nsec] = cfg_sections[nsec].key, nsec++;
    known[nsec] = "sinks";
    if (!root || ld_is_null(root)) return 0;
    if (root->type != YAML_MAPPING_NODE)
        return ld_fail(ld, root, "(top level)", -EINVAL, "expected a mapping of sections, got %s",
                       kind(root));
    for (yaml_node_pair_t *pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top;
         pr++) {
        const yaml_node_t *k = ld_node(ld, pr->key), *v = ld_node(ld, pr->value);
        const char *ks = ld_map_key(ld, k, "(top level)");
        if (!ks) return -EINVAL;
        size_t i;
        for (i = 0; i <= nsec && strcmp(ks, known[i]) != 0; i++)
            ;
        if (i > nsec) return ld_unknown_key(ld, k, "", ks, known, nsec + 1);
        if (lines[i])
            return ld_fail(ld, k, ks, -EINVAL, "duplicate key (first at line %zu)", lines[i]);
        lines[i] = line_of(k);
        if (i == nsec) {
            rc = parse_sinks(ld, v, cfg);
        } else if (ld_is_null(v)) {
            rc = 0;
        } else {
            size_t fl[MAX_FIELDS] = {0};
            void *base = (char *)cfg + cfg_sections[i].off;
            rc = ld_parse_fields(ld, v, ks, base, cfg_sections[i].fields, fl);
            if (rc == 0 && base == &cfg->wal && cfg->wal.max_record_bytes > cfg->wal.max_bytes) {
                size_t at = fl[field_index(cfg_wal_fields, "max_record_bytes")];
                if (!at) at = fl[field_index(cfg_wal_fields, "max_bytes")];
                cfg_errf(ld->err, ld->errlen,
                         "%s:%zu: wal.max_record_bytes: %u is larger than wal.max_bytes (%llu)",
                         ld->name, at, cfg->wal.max_record_bytes,
                         (unsigned long long)cfg->wal.max_bytes);
                rc = -EINVAL;
            }
        }
        if (rc) return rc;
    }
    return 0;
}

/* libyaml's scanner costs O(depth) per token inside flow collections, so "[[[[…" is
 * quadratic (200k levels take minutes). A config never nests deeper than a handful of
 * levels: one cheap event pass refuses deep input before the document is built. */
static int check_depth(const char *yaml, size_t len, const char *name, char *err, size_t errlen)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int depth = 0, rc = 0, done = 0;
    if (!yaml_parser_initialize(&p)) return 0; /* the loader reports it */
    yaml_parser_set_input_string(&p, (const unsigned char *)yaml, len);
    while (!done && yaml_parser_parse(&p, &ev)) {
        if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_DEPTH) {
                cfg_errf(err, errlen, "%s:%zu: (yaml): nested deeper than %d levels", name,
                         (size_t)ev.start_mark.line + 1, MAX_DEPTH);
                rc = -EINVAL;
                done = 1;
            }
        } else if (ev.type == YAML_SEQUENCE_END_EVENT || ev.type == YAML_MAPPING_END_EVENT) {
            depth--;
        } else if (ev.type == YAML_STREAM_END_EVENT) {
            done = 1;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return rc; /* a syntax error is left to the loader, which reports it the same way */
}

static int load_buffer(sluice_cfg_t *cfg, const char *yaml, size_t len, const char *name, char *err,
                       size_t errlen)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    ld_t ld = {&doc, name, err, errlen};
    int rc = -EINVAL, have_doc = 0;

    cfg_defaults(cfg);
    if (!cfg->wal.dir || !cfg->proxy.listen || !cfg->admin.listen ||
        !(cfg->path = cfg_strdup(name))) {
        cfg_errf(err, errlen, "%s: out of memory", name);
        cfg_free(cfg);
        return -ENOMEM;
    }
    if ((rc = check_depth(yaml, len, name, err, errlen))) {
        cfg_free(cfg);
        return rc;
    }
    if (!yaml_parser_initialize(&parser)) {
        cfg_errf(err, errlen, "%s: out of memory", name);
        cfg_free(cfg);
        return -ENOMEM;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) goto syntax;
    have_doc = 1;
    if ((rc = parse_root(&ld, yaml_document_get_root_node(&doc), cfg))) goto done;
    /* A second document would be silently ignored by a reader that stops at the first. */
    rc = -EINVAL;
    if (!yaml_parser_load(&parser, &extra)) goto syntax;
    yaml_node_t *xroot = yaml_document_get_root_node(&extra);
    if (xroot) {
        cfg_errf(err, errlen, "%s:%zu: (top level): only one YAML document is allowed", name,
                 line_of(xroot));
        yaml_document_delete(&extra);
        goto done;
    }
    yaml_document_delete(&extra);
    rc = 0;
    goto done;
syntax:
    if (parser.error == YAML_MEMORY_ERROR) {
        cfg_errf(err, errlen, "%s: out of memory", name);
        rc = -ENOMEM;
    } else {
        cfg_errf(err, errlen, "%s:%zu: (yaml): %s%s%s", name,
                 (size_t)(parser.problem_mark.line + 1),
                 parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                 parser.context ? parser.context : "");
        rc = -EINVAL;
    }
done:
    if (have_doc) yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (rc) cfg_free(cfg);
    return rc;
}

int cfg_load_string(sluice_cfg_t *cfg, const char *yaml, const char *name, char *err, size_t errlen)
{
    if (err && errlen) err[0] = '\0';
    if (!name) name = "config";
    if (!cfg || !yaml) {
        if (cfg) memset(cfg, 0, sizeof *cfg);
        cfg_errf(err, errlen, "%s: no input", name);
        return -EINVAL;
    }
    return load_buffer(cfg, yaml, strlen(yaml), name, err, errlen);
}

int cfg_load(sluice_cfg_t *cfg, const char *path, char *err, size_t errlen)
{
    char *buf = NULL;
    size_t len = 0;
    int rc;
    FILE *f;
    if (err && errlen) err[0] = '\0';
    if (!cfg || !path) {
        if (cfg) memset(cfg, 0, sizeof *cfg);
        cfg_errf(err, errlen, "config: no file given");
        return -EINVAL;
    }
    memset(cfg, 0, sizeof *cfg);
    if (!(f = fopen(path, "rb"))) {
        rc = -errno;
        cfg_errf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return rc;
    }
    if (!(buf = malloc(MAX_FILE_BYTES + 1))) {
        fclose(f);
        cfg_errf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    errno = 0;
    len = fread(buf, 1, MAX_FILE_BYTES + 1, f);
    if (ferror(f)) {
        rc = errno ? -errno : -EIO;
        cfg_errf(err, errlen, "%s: cannot read: %s", path, strerror(-rc));
    } else if (len > MAX_FILE_BYTES) {
        rc = -EFBIG;
        cfg_errf(err, errlen, "%s: larger than %u bytes", path, MAX_FILE_BYTES);
    } else {
        buf[len] = '\0';
        rc = load_buffer(cfg, buf, len, path, err, errlen);
    }
    fclose(f);
    free(buf);
    return rc;
}
