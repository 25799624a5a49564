/* log.c — JSON-lines logger on stderr; one write(2) per line so lines never interleave. */
#include "common/log.h"
#include "common/buf.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int g_level = LOG_LEVEL_INFO; /* the one global: set at startup */

static const char *level_name[] = {"debug", "info", "warn", "error"};

void log_set_level(log_level_t level)
{
    atomic_store(&g_level, (int)level);
}

int log_enabled(log_level_t level)
{
    return (int)level >= atomic_load(&g_level);
}

void log_json_escape(char *buf, size_t cap, size_t *len, const char *s)
{
    for (; s && *s; s++) {
        char tmp[6];
        size_t n = json_escape_byte((unsigned char)*s, tmp);
        if (*len + n + 1 > cap) return;
        memcpy(buf + *len, tmp, n);
        *len += n;
    }
    buf[*len < cap ? *len : cap - 1] = '\0';
}

static void put(char *buf, size_t cap, size_t *len, const char *s)
{
    size_t n = strlen(s);
    if (*len + n + 1 > cap) n = cap - *len - 1;
    memcpy(buf + *len, s, n);
    *len += n;
    buf[*len] = '\0';
}

void log_msg(log_level_t level, const char *msg, ...)
{
    if (!log_enabled(level)) return;
    char line[4096];
    size_t len = 0;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    gmtime_r(&tv.tv_sec, &tm);
    char ts[64];
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(tv.tv_usec / 1000));
    put(line, sizeof line - 2, &len, "{\"ts\":\"");
    put(line, sizeof line - 2, &len, ts);
    put(line, sizeof line - 2, &len, "\",\"level\":\"");
    put(line, sizeof line - 2, &len, level_name[level]);
    put(line, sizeof line - 2, &len, "\",\"msg\":\"");
    log_json_escape(line, sizeof line - 2, &len, msg);
    put(line, sizeof line - 2, &len, "\"");
    va_list ap;
    va_start(ap, msg);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (!k) break;
        const char *v = va_arg(ap, const char *);
        int raw = k[0] == '#';
        put(line, sizeof line - 2, &len, ",\"");
        log_json_escape(line, sizeof line - 2, &len, raw ? k + 1 : k);
        put(line, sizeof line - 2, &len, raw ? "\":" : "\":\"");
        if (raw)
            put(line, sizeof line - 2, &len, v ? v : "null");
        else
            log_json_escape(line, sizeof line - 2, &len, v ? v : "");
        if (!raw) put(line, sizeof line - 2, &len, "\"");
    }
    va_end(ap);
    line[len++] = '}';
    line[len++] = '\n';
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc;
}
