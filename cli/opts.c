/* opts.c — what every command starts with: the option parser (table-driven, cli_opt_t, so
 * the parser and each command's usage text come from the same list) and the config load. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int n_opts(const cli_cmd_t *cmd)
{
    int n = 0;
    while (cmd->opts && cmd->opts[n].name)
        n++;
    return n;
}

static const cli_opt_t *row(const void *table, size_t stride, size_t k)
{
    return (const cli_opt_t *)(const void *)((const char *)table + k * stride);
}

static long find_row(const void *table, size_t stride, size_t n, const char *a, size_t alen)
{
    for (size_t k = 0; k < n; k++) {
        const char *name = row(table, stride, k)->name;
        if (strlen(name) == alen && strncmp(name, a, alen) == 0) return (long)k;
    }
    return -1;
}

int cli_walk(const void *table, size_t stride, size_t n, int argc, char **argv, const char **vals,
             const char **pos, int *npos, int max_pos, char *err, size_t errlen)
{
    int only_pos = 0, np = 0;
    for (size_t k = 0; k < n; k++)
        vals[k] = NULL;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (!pos || np >= max_pos) {
                snprintf(err, errlen, "unexpected argument '%.200s'", a);
                return -1;
            }
            pos[np++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        long k = find_row(table, stride, n, a, alen);
        if (k < 0) {
            snprintf(err, errlen, "unknown option %.*s", (int)(alen > 200 ? 200 : alen), a);
            return -1;
        }
        const cli_opt_t *o = row(table, stride, (size_t)k);
        if (!o->value) {
            if (eq) {
                snprintf(err, errlen, "%s is a flag and takes no value", o->name);
                return -1;
            }
            vals[k] = "";
        } else if (eq) {
            vals[k] = eq + 1;
        } else if (i + 1 < argc) {
            vals[k] = argv[++i];
        } else {
            snprintf(err, errlen, "%s needs a value (%s)", o->name, o->value);
            return -1;
        }
    }
    if (npos) *npos = np;
    return 0;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *out)
{
    char err[300];
    memset(out, 0, sizeof *out);
    int max = cmd->max_pos < CLI_MAX_POS ? cmd->max_pos : CLI_MAX_POS;
    if (cli_walk(cmd->opts, sizeof *cmd->opts, (size_t)n_opts(cmd), argc, argv, out->val, out->pos,
                 &out->npos, max, err, sizeof err) < 0) {
        fprintf(stderr, "sluice %s: %s (see sluice help %s)\n", cmd->name, err, cmd->name);
        return -1;
    }
    return 0;
}

static int find(const cli_cmd_t *cmd, const char *a, size_t alen)
{
    return (int)find_row(cmd->opts, sizeof *cmd->opts, (size_t)n_opts(cmd), a, alen);
}

const char *cli_get(const cli_cmd_t *cmd, const cli_args_t *a, const char *name)
{
    int k = find(cmd, name, strlen(name));
    return k < 0 ? NULL : a->val[k];
}

void cli_usage(const cli_cmd_t *cmd, FILE *f)
{
    if (cmd->usage) {
        cmd->usage(f);
        return;
    }
    fprintf(f, "usage: sluice %s%s%s\n%s\n", cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis,
            cmd->summary);
    if (n_opts(cmd) == 0) return;
    fputs("options:\n", f);
    for (int i = 0; cmd->opts[i].name; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", cmd->opts[i].name, cmd->opts[i].value ? " " : "",
                 cmd->opts[i].value ? cmd->opts[i].value : "");
        fprintf(f, "  %-22s %s\n", left, cmd->opts[i].help);
    }
}

int cli_parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

int cli_load_config(const char *path, sluice_cfg_t *cfg, int allow_default)
{
    char err[1024] = "";
    int rc;
    if (path) {
        rc = cfg_load(cfg, path, err, sizeof err);
    } else if (allow_default) {
        cfg_defaults(cfg);
        rc = 0;
    } else {
        fprintf(stderr, "sluice: --config FILE is required\n");
        return EXIT_USAGE;
    }
    if (rc == 0) rc = cfg_finish(cfg, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "sluice: config: %s\n", err);
        cfg_free(cfg);
        return EXIT_CONFIG;
    }
    return EXIT_OK;
}
