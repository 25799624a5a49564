/* dlq.c — `sluice dlq list|show|replay|drop` on a stopped instance. Reads open the log
 * read-only; writes (replay, drop) open it normally, which takes the log's single-writer
 * lock (wal_open), so a live sluice is never written behind its back: exit 4 then. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "sinks/sink.h"
#include "wal/wal.h"

static int run_dlq(const char *sub, const char *dir, const char *sink, int all, const uint64_t *ids,
                   size_t n_ids, const cfg_wal_t *wcfg)
{
    wal_t *w = NULL;
    char e[512] = "";
    int r;
    if (strcmp(sub, "list") == 0 || strcmp(sub, "show") == 0) {
        if (wal_open_readonly(&w, dir, e, sizeof e) < 0) {
            fprintf(stderr, "sluice dlq: %s\n", e);
            return EXIT_WAL;
        }
        r = strcmp(sub, "list") == 0 ? sink_dlq_print_list(w, sink, stdout, stderr)
                                     : sink_dlq_print_entry(w, ids[0], stdout, stderr);
        wal_close(w);
        return r < 0 ? EXIT_ERR : EXIT_OK;
    }
    cfg_wal_t wc = *wcfg;
    wc.dir = (char *)dir;
    if ((r = wal_open(&w, &wc, e, sizeof e)) < 0) {
        fprintf(stderr, "sluice dlq: %s\n", e[0] ? e : wal_strerror(r));
        return EXIT_WAL;
    }
    int rc = EXIT_OK;
    if (strcmp(sub, "replay") == 0) {
        size_t moved = 0;
        if ((r = wal_dlq_replay(w, sink, n_ids ? ids : NULL, n_ids, &moved)) < 0) {
            fprintf(stderr, "sluice dlq replay: %s\n", wal_strerror(r));
            rc = EXIT_ERR;
        } else {
            printf("replayed %zu entr%s: they are delivered when sluice runs again\n", moved,
                   moved == 1 ? "y" : "ies");
        }
    } else {
        (void)all; /* --all only makes an id-less, sink-less drop explicit */
        if ((r = wal_dlq_drop(w, sink, n_ids ? ids : NULL, n_ids)) < 0) {
            fprintf(stderr, "sluice dlq drop: %s\n", wal_strerror(r));
            rc = EXIT_ERR;
        } else {
            printf("dropped\n");
        }
    }
    wal_close(w);
    return rc;
}

int cli_dlq(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    if (a.npos < 1) {
        cli_usage(cmd, stderr);
        return EXIT_USAGE;
    }
    const char *sub = a.pos[0];
    if (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "replay") &&
        strcmp(sub, "drop")) {
        fprintf(stderr, "sluice dlq: unknown command %s\n", sub);
        cli_usage(cmd, stderr);
        return EXIT_USAGE;
    }
    uint64_t ids[CLI_MAX_POS];
    size_t n_ids = 0;
    for (int i = 1; i < a.npos; i++) {
        if (cli_parse_u64(a.pos[i], &ids[n_ids]) < 0) {
            fprintf(stderr, "sluice dlq: not an entry id: %s\n", a.pos[i]);
            return EXIT_USAGE;
        }
        n_ids++;
    }
    const char *sink = cli_get(cmd, &a, "--sink");
    int all = cli_get(cmd, &a, "--all") != NULL;
    if (strcmp(sub, "show") == 0 && n_ids != 1) {
        cli_usage(cmd, stderr);
        return EXIT_USAGE;
    }
    if (strcmp(sub, "drop") == 0 && n_ids == 0 && !sink && !all) {
        fprintf(stderr, "sluice dlq drop: give entry ids, --sink S, or --all\n");
        return EXIT_USAGE;
    }
    sluice_cfg_t cfg;
    int rc = cli_load_config(cli_get(cmd, &a, "--config"), &cfg, 0);
    if (rc) return rc;
    const char *dir = cli_get(cmd, &a, "--dir");
    rc = run_dlq(sub, dir ? dir : cfg.wal.dir, sink, all, ids, n_ids, &cfg.wal);
    cfg_free(&cfg);
    return rc;
}
