/* util.c — the pure pieces of the sinks: idempotency keys, backoff, a tolerant JSON member
 * reader for Stream Load replies, ClickHouse / StarRocks reply classification and the
 * grouping of log records per table. No I/O here, so the unit tests call all of it. */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/hash.h"
#include "common/json.h"
#include "sinks/sink_internal.h"

/* ---- keys ---- */

/* The live keys' rule, also backfill's labels (migrate/): a name part is kept when it is
 * [A-Za-z0-9_]{1,32}, else it becomes h{fnv1a32:08x}. */
void sink_key_name(char *out, size_t cap, const char *name)
{
    size_t n = name ? strlen(name) : 0;
    int ok = n > 0 && n <= 32;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    }
    if (ok)
        snprintf(out, cap, "%s", name);
    else
        snprintf(out, cap, "h%08x", fnv1a32(name ? name : "", n));
}

void sink_build_key(char *out, uint64_t logid, const char *sink, const char *table, uint64_t first,
                    uint64_t last, uint32_t lo, uint32_t hi)
{
    char s[40], t[40], tmp[256];
    sink_key_name(s, sizeof s, sink);
    sink_key_name(t, sizeof t, table);
    int n;
    if (lo == 0 && hi == 0)
        n = snprintf(tmp, sizeof tmp, "sluice_%016" PRIx64 "_%s_%s_%" PRIu64 "_%" PRIu64, logid, s,
                     t, first, last);
    else
        n = snprintf(tmp, sizeof tmp,
                     "sluice_%016" PRIx64 "_%s_%s_%" PRIu64 "_%" PRIu64 "_r%" PRIu32 "_%" PRIu32,
                     logid, s, t, first, last, lo, hi);
    if (n > 0 && n <= SINK_KEY_MAX) {
        memcpy(out, tmp, (size_t)n + 1);
        return;
    }
    /* Only reachable with huge seqs: keep it deterministic and unique enough by hashing the
     * tail (everything after the log id) with two different seeds. */
    const char *tail = tmp + 24;
    uint32_t h1 = fnv1a32(tail, strlen(tail)), h2 = 0x9e3779b9u;
    for (const char *p = tail; *p; p++)
        h2 = (h2 ^ (unsigned char)*p) * 0x01000193u + 7u;
    snprintf(out, SINK_KEY_MAX + 1, "sluice_%016" PRIx64 "_%s_%s_h%08x%08x", logid, s, t, h1, h2);
}

/* ---- backoff ---- */

uint64_t sink_rand(uint64_t *state)
{
    uint64_t x = *state ? *state : 0x2545F4914F6CDD1Dull;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return x;
}

uint32_t sink_backoff_ms(uint32_t initial_ms, uint32_t max_ms, uint32_t attempt, uint64_t *rnd)
{
    uint64_t cap = initial_ms ? initial_ms : 1;
    for (uint32_t i = 0; i < attempt && cap < max_ms; i++)
        cap *= 2;
    if (cap > max_ms) cap = max_ms;
    if (cap < 1) cap = 1;
    return (uint32_t)(1 + sink_rand(rnd) % cap);
}

/* ---- JSON ---- */

/* The sinks read their backends' replies with common/json's reader. */
int sink_json_get(const char *json, size_t len, const char *key, char *out, size_t outlen)
{
    return json_get(json, len, key, out, outlen);
}

/* ---- ClickHouse ---- */

int sink_ch_error_code(const char *header, const char *body, size_t body_len)
{
    if (header && *header) {
        int c = atoi(header);
        if (c > 0) return c;
    }
    /* "Code: 27, e.displayText() = ..." (18.16) or "Code: 27. DB::Exception: ..." */
    static const char pat[] = "Code: ";
    for (size_t i = 0; body && i + sizeof pat - 1 < body_len; i++) {
        if (memcmp(body + i, pat, sizeof pat - 1) != 0) continue;
        size_t j = i + sizeof pat - 1;
        int c = 0, digits = 0;
        while (j < body_len && isdigit((unsigned char)body[j]) && digits < 6) {
            c = c * 10 + (body[j] - '0');
            j++;
            digits++;
        }
        if (digits && j < body_len && (body[j] == ',' || body[j] == '.')) return c;
    }
    return 0;
}

static int in_list(int code, const int *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (list[i] == code) return 1;
    return 0;
}

/* Codes the rows themselves cause: bisect to find them. */
static const int ch_row_codes[] = {
    6,   /* CANNOT_PARSE_TEXT */
    16,  /* NO_SUCH_COLUMN_IN_TABLE */
    25,  /* CANNOT_PARSE_ESCAPE_SEQUENCE */
    26,  /* CANNOT_PARSE_QUOTED_STRING */
    27,  /* CANNOT_PARSE_INPUT_ASSERTION_FAILED */
    32,  /* ATTEMPT_TO_READ_AFTER_EOF */
    33,  /* CANNOT_READ_ALL_DATA */
    38,  /* CANNOT_PARSE_DATE */
    41,  /* CANNOT_PARSE_DATETIME */
    53,  /* TYPE_MISMATCH */
    69,  /* ARGUMENT_OUT_OF_BOUND */
    70,  /* CANNOT_CONVERT_TYPE */
    72,  /* CANNOT_PARSE_NUMBER */
    117, /* INCORRECT_DATA (unknown field with skip_unknown_fields=0, bad JSON) */
    131, /* TOO_LARGE_STRING_SIZE */
    349, /* CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN */
    376, /* CANNOT_PARSE_UUID */
    407, /* DECIMAL_OVERFLOW */
    469, /* VIOLATED_CONSTRAINT (a CHECK: "... is violated at row 1", the 26.7 engine) */
    691, /* UNKNOWN_ELEMENT_OF_ENUM */
};
/* Codes that refuse the statement whatever the rows: DLQ the whole batch. */
static const int ch_whole_codes[] = {
    50,  /* UNKNOWN_TYPE */
    62,  /* SYNTAX_ERROR */
    73,  /* UNKNOWN_FORMAT */
    115, /* UNKNOWN_SETTING */
};
/* Credentials / rights, or a table or database that is not there (yet): configuration,
 * never the rows' fault: retried slowly, without end, never dead-lettered. */
static const int ch_config_codes[] = {
    60,  /* UNKNOWN_TABLE */
    81,  /* UNKNOWN_DATABASE */
    164, /* READONLY */
    192, /* UNKNOWN_USER */
    193, /* WRONG_PASSWORD */
    194, /* REQUIRED_PASSWORD */
    291, /* DATABASE_ACCESS_DENIED */
    497, /* ACCESS_DENIED */
    516, /* AUTHENTICATION_FAILED */
};
/* The server or the cluster, not the rows: retried without end. */
static const int ch_transient_codes[] = {
    159, /* TIMEOUT_EXCEEDED */
    173, /* CANNOT_ALLOCATE_MEMORY */
    202, /* TOO_MANY_SIMULTANEOUS_QUERIES */
    203, /* NO_FREE_CONNECTION */
    209, /* SOCKET_TIMEOUT */
    210, /* NETWORK_ERROR */
    225, /* NO_ZOOKEEPER */
    236, /* ABORTED */
    241, /* MEMORY_LIMIT_EXCEEDED */
    242, /* TABLE_IS_READ_ONLY */
    243, /* NOT_ENOUGH_SPACE */
    252, /* TOO_MANY_PARTS */
    279, /* ALL_CONNECTION_TRIES_FAILED */
    285, /* TOO_FEW_LIVE_REPLICAS */
    319, /* UNKNOWN_STATUS_OF_INSERT */
    394, /* QUERY_WAS_CANCELLED */
    425, /* SYSTEM_ERROR */
    439, /* CANNOT_SCHEDULE_TASK */
    999, /* KEEPER_EXCEPTION */
};

static void set_msg(sink_result_t *res, const char *s, size_t n)
{
    if (n >= sizeof res->msg) n = sizeof res->msg - 1;
    memcpy(res->msg, s, n);
    res->msg[n] = '\0';
    /* trim trailing whitespace */
    while (n && isspace((unsigned char)res->msg[n - 1]))
        res->msg[--n] = '\0';
}

#define IN(code, list) in_list(code, list, sizeof list / sizeof *list)

void sink_ch_classify(int http_status, int code, const char *body, size_t body_len, int curl_failed,
                      const char *curl_err, sink_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->http_status = http_status;
    res->code = code;
    res->endpoint = -1;
    if (curl_failed) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "clickhouse: %s",
                 curl_err ? curl_err : "transfer failed");
        return;
    }
    if (http_status == 200) {
        res->kind = SINK_RES_OK;
        return;
    }
    if (body && body_len)
        set_msg(res, body, body_len);
    else
        snprintf(res->msg, sizeof res->msg, "clickhouse: HTTP %d", http_status);
    if (IN(code, ch_config_codes) || http_status == 401 || http_status == 403)
        res->kind = SINK_RES_CONFIG;
    else if (IN(code, ch_whole_codes)) {
        res->kind = SINK_RES_PERMANENT;
        res->whole = 1;
    } else if (IN(code, ch_row_codes))
        res->kind = SINK_RES_PERMANENT;
    else if (IN(code, ch_transient_codes) || http_status == 429 || http_status == 408 ||
             http_status == 502 || http_status == 503 || http_status == 504)
        res->kind = SINK_RES_RETRY; /* overload, or a proxy / load balancer in front */
    else if (code == 0 && http_status >= 500)
        res->kind = SINK_RES_RETRY; /* a 5xx that is not a ClickHouse exception */
    else if (code == 0 && (http_status == 400 || http_status == 422))
        res->kind = SINK_RES_PERMANENT; /* a plain client error without a code: the rows */
    else
        /* An exception code sluice does not know (ClickHouse answers most with HTTP 500):
         * bounded retries, then bisected, so a new server's new code never wedges a sink. */
        res->kind = SINK_RES_UNKNOWN;
}

int sink_ch_parse_version(const char *s)
{
    if (!s) return -1;
    while (*s && isspace((unsigned char)*s))
        s++;
    char *end;
    long maj = strtol(s, &end, 10);
    if (end == s || *end != '.') return -1;
    const char *m = end + 1;
    long min = strtol(m, &end, 10);
    if (end == m || maj < 0 || min < 0 || min > 999 || maj > 100000) return -1;
    return (int)(maj * 1000 + min);
}

int sink_ch_dedup_enabled(cfg_dedup_t mode, int version)
{
    if (mode == CFG_DEDUP_ON) return 1;
    if (mode == CFG_DEDUP_OFF) return 0;
    return version >= 22002; /* insert_deduplication_token appeared in 22.2 */
}

/* Value of `name = N` in the SETTINGS part of a system.tables engine_full, or -1 when absent. */
static long long engine_setting(const char *engine_full, const char *name)
{
    const char *set = strstr(engine_full, " SETTINGS ");
    size_t n = strlen(name);
    for (const char *p = set; p && (p = strstr(p, name)); p += n) {
        char before = p[-1];
        if (before != ' ' && before != ',') continue;
        const char *v = p + n;
        while (*v == ' ')
            v++;
        if (*v != '=') continue;
        v++;
        while (*v == ' ')
            v++;
        char *end;
        long long x = strtoll(v, &end, 10);
        if (end != v) return x;
    }
    return -1;
}

int sink_ch_dedup_unsafe(int version, const char *qualified, const char *engine,
                         const char *engine_full, char *why, size_t whylen, char *fix,
                         size_t fixlen)
{
    size_t el = strlen(engine);
    int mergetree = el >= 9 && strcmp(engine + el - 9, "MergeTree") == 0;
    int replicated = mergetree && (strncmp(engine, "Replicated", 10) == 0 ||
                                   strncmp(engine, "Shared", 6) == 0); /* ClickHouse Cloud */
    if (replicated) {
        /* Replicated tables deduplicate inserted blocks unless the window is set to 0. */
        if (engine_setting(engine_full, "replicated_deduplication_window") != 0) return 0;
        snprintf(why, whylen, "%s with replicated_deduplication_window = 0", engine);
        snprintf(fix, fixlen,
                 "ALTER TABLE %s MODIFY SETTING replicated_deduplication_window = 1000", qualified);
        return 1;
    }
    if (mergetree) {
        if (engine_setting(engine_full, "non_replicated_deduplication_window") > 0) return 0;
        snprintf(why, whylen, "%s without non_replicated_deduplication_window", engine);
        if (version >= 0 && version < 20010) /* the setting is newer than this server */
            snprintf(fix, fixlen,
                     "upgrade ClickHouse (>= 20.10), then ALTER TABLE %s MODIFY SETTING "
                     "non_replicated_deduplication_window = 1000; or use Replicated%s",
                     qualified, engine);
        else
            snprintf(fix, fixlen,
                     "ALTER TABLE %s MODIFY SETTING non_replicated_deduplication_window = 1000",
                     qualified);
        return 1;
    }
    snprintf(why, whylen, "engine %s does not deduplicate inserts", engine);
    snprintf(fix, fixlen,
             "use a MergeTree-family engine with non_replicated_deduplication_window > 0, or a "
             "Replicated one");
    return 1;
}

int sink_ch_param_is_setting(const char *key)
{
    /* Case-insensitive: a mixed-case spelling of one of these is never forwarded either. */
    static const char *const not_settings[] = {"query",
                                               "database",
                                               "user",
                                               "password",
                                               "query_id",
                                               "default_format",
                                               "session_id",
                                               "session_timeout",
                                               "session_check",
                                               "compress",
                                               "decompress",
                                               "buffer_size",
                                               "wait_end_of_query",
                                               "quota_key",
                                               "stacktrace",
                                               "role",
                                               "client_protocol_version",
                                               "with_stacktrace",
                                               NULL};
    if (!key[0] || strncmp(key, "param_", 6) == 0) return 0;
    for (size_t i = 0; not_settings[i]; i++)
        if (strcasecmp(key, not_settings[i]) == 0) return 0;
    return 1;
}

int sink_ch_setting_forwarded(const cfg_sink_t *cfg, const char *key)
{
    /* Settings the sink must not forward: sluice is the batching layer, and it sets the
     * deduplication token itself. */
    static const char *const never[] = {"async_insert", "wait_for_async_insert",
                                        "insert_deduplication_token", NULL};
    if (!sink_ch_param_is_setting(key)) return 0;
    for (int i = 0; never[i]; i++)
        if (strcasecmp(key, never[i]) == 0) return 0;
    for (size_t i = 0; i < cfg->n_drop_settings; i++)
        if (strcmp(key, cfg->drop_settings[i]) == 0) return 0;
    /* the sink's own settings win over the request's */
    for (size_t i = 0; i < cfg->n_settings; i++)
        if (strcmp(key, cfg->settings[i].key) == 0) return 0;
    return 1;
}

/* ---- StarRocks ---- */

static int contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0) return 1;
    return 0;
}

/* Which kind of failure a StarRocks message names. Facts from StarRocks' source:
 * be/src/http/action/stream_load.cpp (the JSON size limit, "exceed http cuncurrent limit",
 * the quit check), fe/.../http/rest/LoadAction.java ("No backend alive.", "No database
 * selected."), be/src/exec/json_scanner.cpp and be/src/exprs/json_parser.cpp (simdjson's
 * parse and UTF-8 errors, which fail the whole load). Anything not listed is UNKNOWN: it is
 * retried a bounded number of times, then bisected (never stuck on wording). */
static sink_res_kind_t sr_message_kind(const char *m, int *whole)
{
    static const char *const config[] = {"Access denied",
                                         "privilege",
                                         "unknown database",
                                         "unknown table",
                                         "There is no 100-continue header",
                                         "No database selected",
                                         "No table selected",
                                         "no valid Basic authorization",
                                         NULL};
    static const char *const data[] = {
        "too many filtered rows",
        "parse json",
        "should be object type",
        "iterate document stream",
        "UTF8_ERROR",
        "not valid UTF-8",
        "exceed the max size", /* JSON load over streaming_load_max_batch_size_mb: bisect */
        "body size",           /* over streaming_load_max_mb */
        "JSON data is",
        "strip_outer_array",
        NULL};
    static const char *const transient[] = {"No backend alive",
                                            "No backend or compute node alive",
                                            "too many versions",
                                            "service unavailable",
                                            "memory limit",
                                            "Memory of process",
                                            "timeout",
                                            "timed out",
                                            "try again later",
                                            "cuncurrent limit",
                                            "concurrent limit",
                                            "is going to quit",
                                            "ResourceBusy",
                                            "publish",
                                            NULL};
    *whole = 0;
    for (int i = 0; config[i]; i++)
        if (contains_ci(m, config[i])) return SINK_RES_CONFIG;
    for (int i = 0; data[i]; i++)
        if (contains_ci(m, data[i])) return SINK_RES_PERMANENT;
    for (int i = 0; transient[i]; i++)
        if (contains_ci(m, transient[i])) return SINK_RES_RETRY;
    return SINK_RES_UNKNOWN;
}

void sink_sr_classify(int http_status, const char *body, size_t body_len, int curl_failed,
                      const char *curl_err, sink_result_t *res)
{
    char status[64], message[448], lstatus[32], lmsg[448], num[32];
    int whole;
    memset(res, 0, sizeof *res);
    res->http_status = http_status;
    res->endpoint = -1;
    if (curl_failed) {
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "starrocks: %s",
                 curl_err ? curl_err : "transfer failed");
        return;
    }
    int has_status = body && sink_json_get(body, body_len, "Status", status, sizeof status) == 1;
    if (body)
        sink_json_get(body, body_len, "Message", message, sizeof message);
    else
        message[0] = '\0';
    int has_lower = body && sink_json_get(body, body_len, "status", lstatus, sizeof lstatus) == 1;
    if (has_lower) {
        if (sink_json_get(body, body_len, "msg", lmsg, sizeof lmsg) != 1) lmsg[0] = '\0';
    }

    if (http_status >= 500 || http_status == 429) {
        /* Overloaded or down (FE or BE), whatever JSON the body carries: back off briefly and
         * resend with the same label; this is not a configuration error. */
        res->kind = SINK_RES_RETRY;
        snprintf(res->msg, sizeof res->msg, "starrocks: HTTP %d %.*s", http_status,
                 (int)(body_len > 300 ? 300 : body_len), body ? body : "");
        return;
    }
    if (http_status == 401 || http_status == 403 || http_status == 404) {
        res->kind = SINK_RES_CONFIG; /* credentials, or not a Stream Load URL */
        snprintf(res->msg, sizeof res->msg, "starrocks FE refused (HTTP %d): %.440s", http_status,
                 has_lower            ? lmsg
                 : http_status == 404 ? "no such endpoint"
                                      : "unauthorized");
        return;
    }
    if (has_lower || (has_status && strcmp(status, "FAILED") == 0)) {
        /* FE refusal (fe/.../http/rest/LoadAction.java, RestBaseAction.java): no Expect
         * header, no database/table, auth → configuration; "No backend alive." (BEs
         * restarting) → transient with the normal backoff; anything else → unknown. */
        const char *m = has_lower ? lmsg : message;
        res->kind = sr_message_kind(m, &whole);
        if (res->kind == SINK_RES_PERMANENT) res->kind = SINK_RES_UNKNOWN;
        snprintf(res->msg, sizeof res->msg, "starrocks FE refused (HTTP %d): %.440s", http_status,
                 m);
        return;
    }
    if (http_status != 200 || !has_status) {
        res->kind = SINK_RES_UNKNOWN;
        if (http_status == 200)
            snprintf(res->msg, sizeof res->msg, "starrocks: reply without a Status: %.*s",
                     (int)(body_len > 300 ? 300 : body_len), body ? body : "");
        else
            snprintf(res->msg, sizeof res->msg, "starrocks: HTTP %d %.*s", http_status,
                     (int)(body_len > 300 ? 300 : body_len), body ? body : "");
        return;
    }
    if (strcmp(status, "Success") == 0 || strcmp(status, "Publish Timeout") == 0) {
        res->kind = SINK_RES_OK;
        snprintf(res->msg, sizeof res->msg, "%s", status);
        if (sink_json_get(body, body_len, "NumberFilteredRows", num, sizeof num) == 1)
            res->filtered_rows = strtoull(num, NULL, 10);
        if (res->filtered_rows &&
            sink_json_get(body, body_len, "ErrorURL", res->error_url, sizeof res->error_url) != 1)
            res->error_url[0] = '\0';
        return;
    }
    if (strcmp(status, "Label Already Exists") == 0 ||
        (strcmp(status, "Fail") == 0 && contains_ci(message, "has already been used"))) {
        /* The label exists: the two shapes of test/sql/test_stream_load/R/
         * test_stream_load_label_already_exist and StarRocks issue #57982. Decided by the
         * backend from get_load_state; this is the answer when that cannot be asked. */
        res->label_used = 1;
        if (sink_json_get(body, body_len, "ExistingJobStatus", res->existing,
                          sizeof res->existing) != 1)
            res->existing[0] = '\0';
        if (strcmp(res->existing, "FINISHED") == 0) {
            res->kind = SINK_RES_OK;
            snprintf(res->msg, sizeof res->msg, "Label Already Exists (FINISHED)");
        } else {
            /* RUNNING, or no state in the reply: an earlier attempt may still commit, so
             * resend only with the same label, later. */
            res->kind = SINK_RES_RETRY;
            res->min_delay_ms = 1000;
            snprintf(res->msg, sizeof res->msg, "label already used (%s): %.400s",
                     res->existing[0] ? res->existing : "state unknown", message);
        }
        return;
    }
    if (strcmp(status, "Fail") == 0) {
        snprintf(res->msg, sizeof res->msg, "%s", message[0] ? message : "Fail");
        res->kind = sr_message_kind(message, &whole);
        res->whole = whole;
        return;
    }
    res->kind = SINK_RES_UNKNOWN;
    snprintf(res->msg, sizeof res->msg, "starrocks: unknown Status \"%.40s\": %.400s", status,
             message);
}

int sink_sr_load_state(const char *body, size_t body_len, char *state, size_t statelen)
{
    char st[32];
    if (!body || sink_json_get(body, body_len, "state", state, statelen) != 1) return -1;
    /* RestBaseResult: {"status":"OK",...} on success, "FAILED" with msg otherwise */
    if (sink_json_get(body, body_len, "status", st, sizeof st) == 1 && strcmp(st, "OK") != 0)
        return -1;
    return state[0] ? 0 : -1;
}

/* ---- grouping ---- */

static int name_matches(const char *pat, const wal_record_t *r)
{
    if (strcmp(pat, r->table) == 0) return 1;
    size_t dl = strlen(r->db ? r->db : "");
    return dl && strncmp(pat, r->db, dl) == 0 && pat[dl] == '.' &&
           strcmp(pat + dl + 1, r->table) == 0;
}

int sink_record_wanted(const cfg_sink_t *cfg, const wal_record_t *r)
{
    if (r->target && strcmp(r->target, cfg->name) != 0) return 0;
    if (r->n_rows == 0 || r->rows_len == 0) return 0;
    if (cfg->n_include) {
        int hit = 0;
        for (size_t i = 0; i < cfg->n_include && !hit; i++)
            hit = name_matches(cfg->include[i], r);
        if (!hit) return 0;
    }
    for (size_t i = 0; i < cfg->n_exclude; i++)
        if (name_matches(cfg->exclude[i], r)) return 0;
    return 1;
}

static const char *eff_db(const cfg_sink_t *cfg, const wal_record_t *r)
{
    if (cfg->database && *cfg->database) return cfg->database;
    if (r->db && *r->db) return r->db;
    return "default";
}

static const char *eff_table(const cfg_sink_t *cfg, const wal_record_t *r)
{
    for (size_t i = 0; i < cfg->n_rename; i++)
        if (name_matches(cfg->rename[i].key, r)) return cfg->rename[i].value;
    return r->table;
}

static int same_str(const char *a, const char *b)
{
    if (!a || !b) return a == b;
    return strcmp(a, b) == 0;
}

static int same_settings(const wal_record_t *a, const wal_record_t *b)
{
    if (a->n_settings != b->n_settings) return 0;
    for (size_t i = 0; i < a->n_settings; i++)
        if (!same_str(a->settings[i].key, b->settings[i].key) ||
            !same_str(a->settings[i].value, b->settings[i].value))
            return 0;
    return 1;
}

int sink_group_records(const cfg_sink_t *cfg, const wal_record_t *const *recs, size_t n,
                       sink_group_t **groups, size_t *n_groups)
{
    sink_group_t *g = NULL;
    size_t ng = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        const wal_record_t *r = recs[i];
        if (!sink_record_wanted(cfg, r)) continue;
        const char *db = eff_db(cfg, r), *tb = eff_table(cfg, r);
        size_t j;
        for (j = 0; j < ng; j++) {
            const wal_record_t *h = g[j].recs[0];
            /* A whole record (binary body, or one that cannot be cut at lines) is a group
             * of its own: two RowBinaryWithNames bodies do not concatenate. */
            if (strcmp(g[j].db, db) == 0 && strcmp(g[j].table, tb) == 0 &&
                same_str(h->columns, r->columns) && same_settings(h, r) && !h->whole &&
                !r->whole && same_str(h->fmt, r->fmt) && h->hdr_len == r->hdr_len &&
                (!h->hdr_len || memcmp(h->hdr, r->hdr, h->hdr_len) == 0))
                break;
        }
        if (j == ng) {
            if (ng == cap) {
                size_t nc = cap ? cap * 2 : 8;
                sink_group_t *ngp = realloc(g, nc * sizeof *g);
                if (!ngp) goto fail;
                g = ngp;
                cap = nc;
            }
            memset(&g[ng], 0, sizeof g[ng]);
            g[ng].recs = malloc(n * sizeof *g[ng].recs);
            g[ng].db = strdup(db);
            g[ng].table = strdup(tb);
            g[ng].orig_table = r->table;
            g[ng].first_seq = r->seq;
            ng++;
            if (!g[j].recs || !g[j].db || !g[j].table) goto fail;
        }
        g[j].recs[g[j].n++] = r;
        g[j].last_seq = r->seq;
        g[j].n_rows += r->n_rows;
        g[j].rows_len += r->rows_len;
    }
    *groups = g;
    *n_groups = ng;
    return 0;
fail:
    sink_groups_free(g, ng);
    *groups = NULL;
    *n_groups = 0;
    return -12; /* -ENOMEM */
}

void sink_groups_free(sink_group_t *g, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(g[i].recs);
        free(g[i].db);
        free(g[i].table);
    }
    free(g);
}
