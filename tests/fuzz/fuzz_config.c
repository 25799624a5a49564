/* fuzz_config.c — libFuzzer target for the config loader: any input must load or fail
 * cleanly (no crash, leak or UB), and whatever loads must print as YAML that loads back
 * and prints the same (the round trip `sluice check-config` output relies on). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

static char *print_cfg(const sluice_cfg_t *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f) abort();
    cfg_print(cfg, f);
    fclose(f);
    return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[512];
    sluice_cfg_t cfg, again;
    char *yaml = malloc(size + 1);
    if (!yaml) return 0;
    memcpy(yaml, data, size);
    yaml[size] = '\0';
    if (cfg_load_string(&cfg, yaml, "fuzz.yaml", err, sizeof err) == 0) {
        char *text = print_cfg(&cfg);
        if (cfg_load_string(&again, text, "printed.yaml", err, sizeof err) != 0) {
            fprintf(stderr, "printed config does not load back: %s\n---\n%s\n", err, text);
            abort();
        }
        char *text2 = print_cfg(&again);
        /* Only the header comment (file name) may differ. */
        const char *a = strchr(text, '\n'), *b = strchr(text2, '\n');
        if (!a || !b || strcmp(a, b) != 0) {
            fprintf(stderr, "print is not a fixed point:\n%s\n---\n%s\n", text, text2);
            abort();
        }
        (void)cfg_finish(&again, err, sizeof err);
        free(text);
        free(text2);
        cfg_free(&again);
        cfg_free(&cfg);
    }
    free(yaml);
    return 0;
}
