/* print.c — cfg_print: the effective config as YAML that cfg_load reads back to the same
 * values (except secrets, printed as "***"). Walks the same key tables as the loader. */
#include "config/cfg_internal.h"
#include "common/buf.h"

#include <stdio.h>
#include <string.h>

/* A double-quoted YAML scalar that libyaml reads back to the same bytes: control and
 * non-printable characters (C0, DEL, C1, U+2028/9, U+FEFF, U+FFFE/F) are escaped, since the
 * reader refuses some raw and folds others as line breaks. In values '$' is doubled, as the
 * loader interpolates values (not keys) and "$$" is its escape for '$'. Bytes that are not
 * UTF-8 (possible only from the environment) come out as \xNN, i.e. as U+00NN. */
static void put_quoted(FILE *out, const char *str, int is_value)
{
    const unsigned char *s = (const unsigned char *)str;
    fputc('"', out);
    while (*s) {
        unsigned c = *s, cp = 0;
        size_t n;
        if (c == '"' || c == '\\') {
            fprintf(out, "\\%c", c);
            s++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\x%02x", c);
            s++;
        } else if (c == '$' && is_value) {
            fputs("$$", out);
            s++;
        } else if (c < 0x80) {
            fputc((int)c, out);
            s++;
        } else if ((n = utf8_seq(s, strnlen((const char *)s, 4), &cp)) == 0) {
            fprintf(out, "\\x%02x", c);
            s++;
        } else if (cp <= 0x9f || cp == 0x2028 || cp == 0x2029 || cp == 0xfeff || cp == 0xfffe ||
                   cp == 0xffff) {
            fprintf(out, "\\u%04x", cp);
            s += n;
        } else {
            fwrite(s, 1, n, out);
            s += n;
        }
    }
    fputc('"', out);
}

static void put_str(FILE *out, const char *s, int secret)
{
    if (!s)
        fputs("null", out);
    else if (secret && *s)
        fputs("\"***\"", out);
    else
        put_quoted(out, s, 1);
}

static void put_size(FILE *out, uint64_t v)
{
    static const char *u[] = {"", "KiB", "MiB", "GiB", "TiB"};
    int i = 0;
    while (i < 4 && v >= 1024 && v % 1024 == 0) {
        v /= 1024;
        i++;
    }
    fprintf(out, "%llu%s", (unsigned long long)v, u[i]);
}

static void put_fields(FILE *out, const void *base, const cfg_field_t *f, int indent,
                       int first_dash)
{
    for (; f->key; f++) {
        const char *p = (const char *)base + f->off;
        const size_t n = f->off_n ? *(const size_t *)((const char *)base + f->off_n) : 0;
        if (first_dash) {
            fprintf(out, "%*s- ", indent - 2, "");
            first_dash = 0;
        } else {
            fprintf(out, "%*s", indent, "");
        }
        fprintf(out, "%s:", f->key);
        if (f->type != CFG_T_SECTION && !(f->type == CFG_T_USERS && n > 0)) fputc(' ', out);
        switch (f->type) {
        case CFG_T_STR:
        case CFG_T_STR0:
        case CFG_T_OPTSTR:
        case CFG_T_NAME:
        case CFG_T_LISTEN:
        case CFG_T_LISTEN0:
        case CFG_T_URL:
        case CFG_T_OPTURL:
            put_str(out, *(char *const *)p, f->secret);
            break;
        case CFG_T_U32:
            fprintf(out, "%u", *(const uint32_t *)p);
            break;
        case CFG_T_SIZE32:
            put_size(out, *(const uint32_t *)p);
            break;
        case CFG_T_SIZE64:
            put_size(out, *(const uint64_t *)p);
            break;
        case CFG_T_BOOL:
            fputs(*(const int *)p ? "true" : "false", out);
            break;
        case CFG_T_COMPRESS:
            fputs(*(const int *)p ? "gzip" : "none", out);
            break;
        case CFG_T_ENUM: {
            int e = *(const int *)p, k = 0;
            while (f->names[k] && k < e)
                k++;
            fputs(e >= 0 && f->names[k] ? f->names[k] : "null", out);
            break;
        }
        case CFG_T_RATIO:
            fprintf(out, "%.17g", *(const double *)p);
            break;
        case CFG_T_URLS: {
            char *const *v = *(char **const *)p;
            if (n == 1) {
                put_quoted(out, v[0], 1);
                break;
            }
            fputc('[', out);
            for (size_t i = 0; i < n; i++) {
                if (i) fputs(", ", out);
                put_quoted(out, v[i], 1);
            }
            fputc(']', out);
            break;
        }
        case CFG_T_STRLIST: {
            char *const *v = *(char **const *)p;
            fputc('[', out);
            for (size_t i = 0; i < n; i++) {
                if (i) fputs(", ", out);
                put_quoted(out, v[i], 1);
            }
            fputc(']', out);
            break;
        }
        case CFG_T_KVMAP: {
            const cfg_kv_t *v = *(cfg_kv_t *const *)p;
            fputc('{', out);
            for (size_t i = 0; i < n; i++) {
                if (i) fputs(", ", out);
                put_quoted(out, v[i].key, 0);
                fputs(": ", out);
                put_quoted(out, v[i].value, 1);
            }
            fputc('}', out);
            break;
        }
        case CFG_T_USERS: {
            const cfg_user_t *v = *(cfg_user_t *const *)p;
            if (n == 0) fputs("[]", out);
            for (size_t i = 0; i < n; i++) {
                fprintf(out, "\n%*s- user: ", indent + 2, "");
                put_str(out, v[i].user, 0);
                fprintf(out, "\n%*s  password: ", indent + 2, "");
                put_str(out, v[i].password, 1);
            }
            break;
        }
        case CFG_T_SECTION:
            fputc('\n', out);
            put_fields(out, base, f->sub, indent + 2, 0);
            continue;
        }
        fputc('\n', out);
    }
}

void cfg_print(const sluice_cfg_t *cfg, FILE *out)
{
    if (!cfg || !out) return;
    fputs("# effective sluice configuration", out);
    if (cfg->path) {
        fputs(" (from ", out);
        for (const char *p = cfg->path; *p; p++)
            fputc((unsigned char)*p < 0x20 ? '?' : *p, out);
        fputc(')', out);
    }
    fputs("; secrets are shown as \"***\"\n", out);
    for (const cfg_section_t *sec = cfg_sections; sec->key; sec++) {
        fprintf(out, "%s:\n", sec->key);
        put_fields(out, (const char *)cfg + sec->off, sec->fields, 2, 0);
        if (strcmp(sec->key, "proxy") != 0) continue;
        fputs("sinks:", out);
        if (cfg->n_sinks == 0) fputs(" []", out);
        fputc('\n', out);
        for (size_t i = 0; i < cfg->n_sinks; i++)
            put_fields(out, &cfg->sinks[i], cfg_sink_fields, 4, 1);
    }
}
