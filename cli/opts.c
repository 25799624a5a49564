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

static int find(const cli_cmd_t *cmd, const char *a, size_t alen)
{
    for (int i = 0; cmd->opts && cmd->opts[i].name; i++)
        if (strlen(cmd->opts[i].name) == alen && strncmp(cmd->opts[i].name, a, alen) == 0) return i;
    return -1;
}

static int bad(const cli_cmd_t *cmd, const char *what, const char *word, size_t wlen)
{
    fprintf(stderr, "sluice %s: %s %.*s (see sluice help %s)\n", cmd->name, what,
            (int)(wlen > 200 ? 200 : wlen), word, cmd->name);
    return -1;
}

int cli_parse(const cli_cmd_t *cmd, int argc, char **argv, cli_args_t *out)
{
    memset(out, 0, sizeof *out);
    int only_pos = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == '\0') {
            if (out->npos >= cmd->max_pos || out->npos >= CLI_MAX_POS)
                return bad(cmd, "unexpected argument", a, strlen(a));
            out->pos[out->npos++] = a;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            only_pos = 1;
            continue;
        }
        const char *eq = strchr(a, '=');
        size_t alen = eq ? (size_t)(eq - a) : strlen(a);
        int k = find(cmd, a, alen);
        if (k < 0) return bad(cmd, "unknown option", a, alen);
        const cli_opt_t *o = &cmd->opts[k];
        if (!o->value) {
            if (eq) return bad(cmd, "this option takes no value:", a, alen);
            out->val[k] = "";
        } else if (eq) {
            out->val[k] = eq + 1;
        } else if (i + 1 < argc) {
            out->val[k] = argv[++i];
        } else {
            fprintf(stderr, "sluice %s: %s needs a value (%s)\n", cmd->name, o->name, o->value);
            return -1;
        }
    }
    return 0;
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
