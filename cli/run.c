/* run.c — `sluice run`: wires config → wal → sinks → proxy on one libuv loop and drains on
 * SIGTERM (DESIGN.md §7). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "cli/cli.h"
#include "common/log.h"
#include "config/config.h"
#include "migrate/migrate.h"
#include "proxy/proxy.h"
#include "sinks/sink.h"
#include "wal/wal.h"

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "dev"
#endif

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

/* /metrics: the progress of backfills into this instance's sinks (separate processes). */
static int backfill_metrics(void *ctx, buf_t *out)
{
    return migrate_backfill_metrics(ctx, out);
}

int cli_run(const cli_cmd_t *cmd, int argc, char **argv)
{
    cli_args_t a;
    if (cli_parse(cmd, argc, argv, &a) < 0) return EXIT_USAGE;
    sluice_cfg_t cfg;
    int rc = cli_load_config(cli_get(cmd, &a, "--config"), &cfg, 0);
    if (rc) return rc;
    log_set_level(cfg.log.level);
    signal(SIGPIPE, SIG_IGN);
    /* A write past RLIMIT_FSIZE (ulimit -f, systemd LimitFSIZE) must fail with EFBIG, which
     * the WAL writer turns into an error answer, not kill the process with SIGXFSZ. */
    signal(SIGXFSZ, SIG_IGN);

    char err[1024] = "";
    wal_t *w = NULL;
    app_t app = {.cfg = &cfg, .config_path = cli_get(cmd, &a, "--config")};
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
    proxy_admin_set_metrics(app.admin, backfill_metrics, (void *)cfg.wal.dir);
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
