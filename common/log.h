/* log.h — the process-wide logger: one JSON object per line on stderr
 * ({"ts":..., "level":..., "msg":..., fields...}). Thread-safe. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include <stddef.h>

/* Plain levels, so the logger needs nothing from config/ (config's log.level uses them). */
typedef enum { LOG_LEVEL_DEBUG = 0, LOG_LEVEL_INFO, LOG_LEVEL_WARN, LOG_LEVEL_ERROR } log_level_t;

void log_set_level(log_level_t level);
int log_enabled(log_level_t level);

/* fields: pairs of const char *key, const char *value, terminated by NULL. Values are
 * JSON-escaped; a key starting with '#' takes its value as a raw JSON number/bool. */
void log_msg(log_level_t level, const char *msg, ...);

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__, (const char *)0)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__, (const char *)0)
#define log_warn(...) log_msg(LOG_LEVEL_WARN, __VA_ARGS__, (const char *)0)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__, (const char *)0)

/* Append s JSON-escaped (without quotes) to buf of cap bytes at *len; truncates safely. */
void log_json_escape(char *buf, size_t cap, size_t *len, const char *s);

#endif
