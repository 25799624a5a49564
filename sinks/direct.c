/* direct.c — delivery without the log's worker loop, for `sluice backfill`: the same
 * grouping, keys, bisecting and DLQ rules as the live sink (deliver.c), called on the
 * caller's thread, with a refusal of the whole statement ending the call. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "sinks/engine_internal.h"

/* ---- direct delivery (sluice backfill) ---- */

int sink_direct_open(const cfg_sink_t *cfg, uint64_t logid, sink_t **out, char *err, size_t errlen)
{
    const sink_backend_t *be =
        cfg->type == CFG_SINK_STARROCKS ? &sink_starrocks_backend : &sink_clickhouse_backend;
    sink_t *s = sink_new(cfg, NULL, be);
    if (!s) {
        snprintf(err, errlen, "sink %s: out of memory", cfg->name);
        return -ENOMEM;
    }
    s->logid = logid;
    s->direct = 1;
    int rc = be->open(cfg, &s->abort_flag, &s->be_state, err, errlen);
    if (rc < 0) {
        sink_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int sink_wants_table(const cfg_sink_t *cfg, const char *db, const char *table)
{
    wal_record_t r = {.db = db, .table = table, .rows = "{}\n", .rows_len = 3, .n_rows = 1};
    return sink_record_wanted(cfg, &r);
}

int sink_direct_deliver(sink_t *s, const char *db, const char *table, const char *rows,
                        size_t rows_len, uint32_t n_rows, const char *key, sink_dead_cb dead,
                        void *ctx)
{
    wal_record_t rec = {.db = db ? db : "",
                        .table = table,
                        .fmt = "JSONEachRow",
                        .rows = rows,
                        .rows_len = rows_len,
                        .n_rows = n_rows,
                        .raw_bytes = rows_len};
    const wal_record_t *recs[1] = {&rec};
    sink_group_t *g = NULL;
    size_t ng = 0;
    sink_dlq_vec_t dlq = {0};
    uint32_t attempt = 0;
    int rc;
    if (!key || !*key || strlen(key) > SINK_KEY_MAX) return -EINVAL;
    if (rows_len == 0) return 0;
    if ((rc = sink_group_records(s->cfg, recs, 1, &g, &ng)) < 0) return rc;
    if (ng == 0) {
        rc = -ENOENT; /* excluded by the sink's include/exclude */
        goto out;
    }
    while (!s->direct_prepared) { /* e.g. the ClickHouse version probe */
        sink_result_t res;
        memset(&res, 0, sizeof res);
        if (s->be->prepare(s->be_state, &res) == 0) {
            s->direct_prepared = 1;
            sink_note_recovered(s);
        } else {
            if (res.kind == SINK_RES_CONFIG && attempt + 1 >= SINK_DIRECT_CONFIG_TRIES) {
                pthread_mutex_lock(&s->stats_mu);
                sink_set_last_error(s, res.msg);
                pthread_mutex_unlock(&s->stats_mu);
                rc = -EACCES;
                goto out;
            }
            sink_note_failure(s, &res);
            if (sink_backoff(s, &res, &attempt) < 0) {
                rc = -ECANCELED;
                goto out;
            }
        }
    }
    rc = sink_deliver_group(s, &g[0], key, &dlq);
    if (rc == -1) rc = -ECANCELED;
    if (rc == SINK_REFUSED) rc = -EACCES;
    if (rc < 0) goto out;
    for (size_t i = 0; i < dlq.n && dead; i++)
        if ((rc = dead(ctx, &dlq.e[i])) < 0) goto out;
out:
    sink_dlq_vec_free(&dlq);
    sink_groups_free(g, ng);
    return rc;
}

void sink_direct_close(sink_t *s)
{
    sink_free(s);
}
