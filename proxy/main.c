/* main.c — the sluice command line: `run` wires config → wal → sinks → proxy on one libuv
 * loop and drains on SIGTERM; the other commands inspect a stopped instance's log. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/log.h"
#include "config/config.h"
#include "migrate/migrate.h"
#include "proxy/proxy.h"
#include "sinks/sink.h"
#include "wal/wal.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

/* Exit codes, documented in README: */
enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2, EXIT_CONFIG = 3, EXIT_WAL = 4 };

static const char usage_text[] =
    "usage: sluice <command> [options]\n"
    "\n"
    "commands:\n"
    "  run --config FILE            start the proxy, the WAL writer and the sinks\n"
    "  check-config --config FILE [--online]\n"
    "                               validate FILE and print the effective config; --online:\n"
    "                               also list the sinks' tables where a retry may duplicate\n"
    "  wal stats --dir DIR          records, seq range, live bytes, cursors, DLQ size\n"
    "  wal dump --dir DIR [--from SEQ] [--limit N]\n"
    "                               records as JSON lines\n"
    "  dlq list|show ID|replay [ID..]|drop [ID..] --config FILE [--sink NAME]\n"
    "                               dead-letter queue of a stopped instance\n"
    "  backfill --config FILE --source URL --sink NAME --table [DB.]T [options]\n"
    "                               copy history into a sink, resumably (help backfill)\n"
    "  verify --a URL --b URL --table [DB.]T [options]\n"
    "                               compare counts (and checksums) per bucket (help verify)\n"
    "  version                      print the version\n"
    "  help [COMMAND]               this text, or COMMAND's options and defaults\n"
    "\n"
    "exit codes: 0 ok, 1 runtime error, 2 usage, 3 bad config, 4 WAL refused\n";

static int usage(FILE *f, int code)
{
    fputs(usage_text, f);
    return code;
}

/* Find "--name VALUE" in argv; NULL when absent. */
static const char *opt(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc - 1; i++)
        if (strcmp(argv[i], name) == 0) return argv[i + 1];
    return NULL;
}

static int has_flag(int argc, char **argv, const char *name)
{
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], name) == 0) return 1;
    return 0;
}

/* Load --config (or defaults when absent and allow_default) and apply env overrides. */
static int load_config(int argc, char **argv, sluice_cfg_t *cfg, int allow_default)
{
    char err[1024] = "";
    const char *path = opt(argc, argv, "--config");
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

/* ---- run ---- */

typedef struct {
    uv_loop_t *loop;
    const sluice_cfg_t *cfg;
    proxy_t *proxy;
    proxy_admin_t *admin;
    sink_t **sinks;
    size_t n_sinks;
    sink_t *primary; /* the read barrier's sink, one of sinks (or NULL) */
    wal_t *wal;
    const char *config_path;
    sluice_cfg_t **reloaded; /* configs of sinks added by SIGHUP: they outlive those sinks */
    size_t n_reloaded;
    uv_signal_t sigterm, sigint, sighup;
    uv_work_t drain;
    int stopping;
} app_t;

/* Runs on the thread pool: sinks deliver what they can within shutdown.drain_timeout_s,
 * persist their cursors and stop; the admin port keeps answering (readyz: 503) meanwhile. */
static void drain_sinks(uv_work_t *w)
{
    app_t *app = w->data;
    if (app->primary) sink_on_progress(app->primary, NULL, NULL); /* before it is freed */
    sinks_stop(app->sinks, app->n_sinks, app->cfg->shutdown.drain_timeout_s * 1000u);
}

static void on_sinks_drained(uv_work_t *w, int status)
{
    app_t *app = w->data;
    (void)status;
    app->sinks = NULL;
    app->n_sinks = 0;
    uv_signal_stop(&app->sigterm);
    uv_signal_stop(&app->sigint);
    uv_signal_stop(&app->sighup);
    uv_close((uv_handle_t *)&app->sigterm, NULL);
    uv_close((uv_handle_t *)&app->sigint, NULL);
    uv_close((uv_handle_t *)&app->sighup, NULL);
    proxy_admin_stop(app->admin);
    uv_stop(app->loop); /* proxy_free / proxy_admin_free close the handles they still hold */
}

/* Every request the proxy read has been answered: everything acked is committed. */
static void on_proxy_drained(void *ctx)
{
    app_t *app = ctx;
    app->drain.data = app;
    if (uv_queue_work(app->loop, &app->drain, drain_sinks, on_sinks_drained) != 0) {
        drain_sinks(&app->drain);
        on_sinks_drained(&app->drain, 0);
    }
}

static void on_signal(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    if (app->stopping) {
        /* Second signal: leave at once. Safe: every acked row is already in the log. */
        log_warn("second signal: exiting without draining", "signal", strsignal(signum));
        _exit(0);
    }
    app->stopping = 1;
    log_info("draining", "signal", strsignal(signum));
    proxy_admin_set_draining(app->admin);
    proxy_shutdown(app->proxy, on_proxy_drained, app);
}

static int same_str(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* What a reload does not apply, said once per thing: only added sinks take effect. */
static void reload_report(const app_t *app, const sluice_cfg_t *nc)
{
    const sluice_cfg_t *oc = app->cfg;
    for (size_t i = 0; i < app->n_sinks; i++) {
        const char *name = sink_name(app->sinks[i]);
        const cfg_sink_t *o = NULL, *n = NULL;
        for (size_t k = 0; k < oc->n_sinks; k++)
            if (strcmp(oc->sinks[k].name, name) == 0) o = &oc->sinks[k];
        for (size_t r = 0; !o && r < app->n_reloaded; r++)
            for (size_t k = 0; k < app->reloaded[r]->n_sinks; k++)
                if (strcmp(app->reloaded[r]->sinks[k].name, name) == 0)
                    o = &app->reloaded[r]->sinks[k];
        for (size_t k = 0; k < nc->n_sinks; k++)
            if (strcmp(nc->sinks[k].name, name) == 0) n = &nc->sinks[k];
        if (!n || !n->enabled)
            log_warn("reload: sink removed or disabled in the config keeps running until a restart",
                     "sink", name);
        else if (o &&
                 (o->type != n->type || !same_str(o->url, n->url) || !same_str(o->user, n->user) ||
                  !same_str(o->password, n->password) || !same_str(o->database, n->database) ||
                  o->n_include != n->n_include || o->n_exclude != n->n_exclude))
            log_warn("reload: a running sink's settings changed: applied at the next restart",
                     "sink", name);
    }
    if (!same_str(oc->proxy.listen, nc->proxy.listen) || !same_str(oc->wal.dir, nc->wal.dir) ||
        !same_str(oc->admin.listen, nc->admin.listen))
        log_warn("reload: proxy.listen, wal.dir and admin.listen changes need a restart");
}

/* SIGHUP: read the config again and start the sinks it adds (dual-write to a new backend)
 * without closing a listener or pausing a running sink; anything else that changed is
 * reported and left for a restart. Runs on the loop thread, like the admin handlers that
 * read the sink list. */
static void on_hup(uv_signal_t *h, int signum)
{
    app_t *app = h->data;
    (void)signum;
    if (app->stopping || !app->config_path) return;
    char err[1024] = "";
    sluice_cfg_t *nc = calloc(1, sizeof *nc);
    sluice_cfg_t **list = realloc(app->reloaded, (app->n_reloaded + 1) * sizeof *list);
    if (!nc || !list) {
        free(nc);
        log_error("reload: out of memory");
        return;
    }
    app->reloaded = list;
    if (cfg_load(nc, app->config_path, err, sizeof err) != 0 ||
        cfg_finish(nc, err, sizeof err) != 0) {
        log_error("reload: config refused, nothing changed", "config", app->config_path, "error",
                  err);
        cfg_free(nc);
        free(nc);
        return;
    }
    reload_report(app, nc);
    sink_t **added = NULL;
    size_t n_added = 0;
    int rc = sinks_add(nc, app->wal, app->sinks, app->n_sinks, &added, &n_added, err, sizeof err);
    sink_t **all =
        rc == 0 && n_added ? realloc(app->sinks, (app->n_sinks + n_added) * sizeof *all) : NULL;
    if (rc != 0 || n_added == 0 || !all) {
        if (rc != 0)
            log_error("reload: cannot start the new sinks", "error", err);
        else if (n_added == 0)
            log_info("reload: no new sink in the config");
        if (added) sinks_stop(added, n_added, 0);
        cfg_free(nc);
        free(nc);
        return;
    }
    char names[512] = "";
    for (size_t i = 0; i < n_added; i++) {
        all[app->n_sinks + i] = added[i];
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, "%s%s", l ? "," : "", sink_name(added[i]));
    }
    free(added);
    app->sinks = all;
    app->n_sinks += n_added;
    app->reloaded[app->n_reloaded++] = nc;
    proxy_admin_set_sinks(app->admin, app->sinks, app->n_sinks);
    log_info("reload: sinks added", "sinks", names);
}

static int cmd_run(int argc, char **argv)
{
    sluice_cfg_t cfg;
    int rc = load_config(argc, argv, &cfg, 0);
    if (rc) return rc;
    log_set_level(cfg.log.level);
    signal(SIGPIPE, SIG_IGN);
    /* A write past RLIMIT_FSIZE (ulimit -f, systemd LimitFSIZE) must fail with EFBIG, which
     * the WAL writer turns into an error answer, not kill the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);

    char err[1024] = "";
    wal_t *w = NULL;
    app_t app = {.cfg = &cfg, .config_path = opt(argc, argv, "--config")};
    uv_loop_t loop;
    int loop_ok = 0;
    rc = wal_open(&w, &cfg.wal, err, sizeof err);
    if (rc) {
        log_error("cannot open the write-ahead log", "dir", cfg.wal.dir, "error", err);
        cfg_free(&cfg);
        return EXIT_WAL;
    }
    app.wal = w;
    rc = sinks_start(&cfg, w, &app.sinks, &app.n_sinks, err, sizeof err);
    if (rc) {
        log_error("cannot start sinks", "error", err);
        rc = EXIT_ERR;
        goto out;
    }
    if (uv_loop_init(&loop) != 0) {
        rc = EXIT_ERR;
        goto out;
    }
    loop_ok = 1;
    app.loop = &loop;
    const cfg_sink_t *pcfg = cfg_primary_sink(&cfg);
    for (size_t i = 0; pcfg && i < app.n_sinks; i++)
        if (strcmp(sink_name(app.sinks[i]), pcfg->name) == 0) app.primary = app.sinks[i];
    rc = proxy_start(&app.proxy, &loop, &cfg, w, app.primary, err, sizeof err);
    if (rc == 0 && app.primary) sink_on_progress(app.primary, proxy_barrier_kick, app.proxy);
    if (rc == 0)
        rc = proxy_admin_start(&app.admin, &loop, &cfg, w, app.proxy, app.sinks, app.n_sinks, err,
                               sizeof err);
    if (rc) {
        log_error("cannot start the listeners", "error", err);
        rc = EXIT_ERR;
        goto out;
    }
    uv_signal_init(&loop, &app.sigterm);
    uv_signal_init(&loop, &app.sigint);
    app.sigterm.data = app.sigint.data = &app;
    uv_signal_start(&app.sigterm, on_signal, SIGTERM);
    uv_signal_start(&app.sigint, on_signal, SIGINT);
    uv_signal_init(&loop, &app.sighup);
    app.sighup.data = &app;
    uv_signal_start(&app.sighup, on_hup, SIGHUP);

    wal_stats_t st;
    wal_stats(w, &st);
    char backlog[32], nsinks[32];
    snprintf(backlog, sizeof backlog, "%llu", (unsigned long long)st.records);
    snprintf(nsinks, sizeof nsinks, "%zu", app.n_sinks);
    log_info("sluice started", "version", SLUICE_VERSION, "listen", cfg.proxy.listen, "admin",
             cfg.admin.listen ? cfg.admin.listen : "", "wal", cfg.wal.dir, "#backlog_records",
             backlog, "#sinks", nsinks);

    uv_run(&loop, UV_RUN_DEFAULT);
    rc = EXIT_OK;
    log_info("sluice stopped");
out:
    if (app.sinks && app.primary) sink_on_progress(app.primary, NULL, NULL);
    if (app.sinks) sinks_stop(app.sinks, app.n_sinks, 0);
    if (app.admin) proxy_admin_free(app.admin);
    if (app.proxy) proxy_free(app.proxy);
    if (loop_ok) {
        for (int i = 0; i < 4 && uv_run(&loop, UV_RUN_NOWAIT); i++) /* close callbacks */
            ;
        uv_loop_close(&loop);
    }
    wal_close(w);
    for (size_t i = 0; i < app.n_reloaded; i++) { /* after the sinks that point into them */
        cfg_free(app.reloaded[i]);
        free(app.reloaded[i]);
    }
    free(app.reloaded);
    cfg_free(&cfg);
    return rc;
}

/* ---- other commands ---- */

static int cmd_check_config(int argc, char **argv)
{
    sluice_cfg_t cfg;
    int rc = load_config(argc, argv, &cfg, 0);
    if (rc) return rc;
    cfg_print(&cfg, stdout);
    if (has_flag(argc, argv, "--online")) {
        /* Ask each enabled clickhouse sink's server which tables may duplicate a retried
         * batch (the same report the running sink logs and shows in /v1/sinks). */
        for (size_t i = 0; i < cfg.n_sinks; i++)
            if (cfg.sinks[i].enabled && sink_dedup_check(&cfg.sinks[i], stdout, stderr) < 0)
                rc = EXIT_ERR;
    }
    cfg_free(&cfg);
    return rc;
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

static int cmd_wal(int argc, char **argv)
{
    if (argc < 1) return usage(stderr, EXIT_USAGE);
    const char *dir = opt(argc, argv, "--dir");
    if (!dir) {
        sluice_cfg_t cfg;
        if (!opt(argc, argv, "--config")) {
            fprintf(stderr, "sluice wal: --dir DIR (or --config FILE) is required\n");
            return EXIT_USAGE;
        }
        int rc = load_config(argc, argv, &cfg, 0);
        if (rc) return rc;
        static char dirbuf[4096];
        snprintf(dirbuf, sizeof dirbuf, "%s", cfg.wal.dir);
        cfg_free(&cfg);
        dir = dirbuf;
    }
    if (strcmp(argv[0], "stats") == 0) return wal_cli_stats(dir, stdout, stderr);
    if (strcmp(argv[0], "dump") == 0) {
        uint64_t from = 0, limit = 0;
        const char *f = opt(argc, argv, "--from"), *l = opt(argc, argv, "--limit");
        if ((f && parse_u64(f, &from)) || (l && parse_u64(l, &limit))) {
            fprintf(stderr, "sluice wal dump: --from and --limit take a number\n");
            return EXIT_USAGE;
        }
        return wal_cli_dump(dir, from, limit, stdout, stderr);
    }
    fprintf(stderr, "sluice wal: unknown subcommand '%s'\n", argv[0]);
    return EXIT_USAGE;
}

static int cmd_dlq(int argc, char **argv)
{
    sluice_cfg_t cfg;
    int rc = load_config(argc, argv, &cfg, 0);
    if (rc) return rc;
    rc = sink_dlq_cli(&cfg, argc, argv, stdout, stderr);
    cfg_free(&cfg);
    return rc;
}

static int cmd_backfill(int argc, char **argv)
{
    sluice_cfg_t cfg;
    int rc = load_config(argc, argv, &cfg, 0);
    if (rc) return rc;
    log_set_level(cfg.log.level);
    signal(SIGPIPE, SIG_IGN);
    rc = migrate_backfill_cli(&cfg, argc, argv, stdout, stderr);
    cfg_free(&cfg);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage(stderr, EXIT_USAGE);
    const char *cmd = argv[1];
    int sub_argc = argc - 2;
    char **sub_argv = argv + 2;
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("sluice %s\n", SLUICE_VERSION);
        return EXIT_OK;
    }
    const char *help_of = NULL; /* "help backfill" and "backfill --help" print its own usage */
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        if (sub_argc < 1) return usage(stdout, EXIT_OK);
        help_of = sub_argv[0];
    } else if (has_flag(sub_argc, sub_argv, "--help") || has_flag(sub_argc, sub_argv, "-h")) {
        help_of = cmd;
    }
    if (help_of) {
        if (strcmp(help_of, "backfill") == 0)
            migrate_backfill_usage(stdout);
        else if (strcmp(help_of, "verify") == 0)
            migrate_verify_usage(stdout);
        else
            return usage(stdout, EXIT_OK);
        return EXIT_OK;
    }
    if (strcmp(cmd, "run") == 0) return cmd_run(sub_argc, sub_argv);
    if (strcmp(cmd, "check-config") == 0) return cmd_check_config(sub_argc, sub_argv);
    if (strcmp(cmd, "wal") == 0) return cmd_wal(sub_argc, sub_argv);
    if (strcmp(cmd, "dlq") == 0) return cmd_dlq(sub_argc, sub_argv);
    if (strcmp(cmd, "backfill") == 0) return cmd_backfill(sub_argc, sub_argv);
    if (strcmp(cmd, "verify") == 0) return migrate_verify_cli(sub_argc, sub_argv, stdout, stderr);
    fprintf(stderr, "sluice: unknown command '%s'\n\n", cmd);
    return usage(stderr, EXIT_USAGE);
}
