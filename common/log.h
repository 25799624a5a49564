/* log.h — the process-wide logger: one JSON object per line on stderr
 * ({"ts":..., "level":..., "msg":..., fields...}). Thread-safe. */
#ifndef SLUICE_LOG_H
#define SLUICE_LOG_H

#include "config/config.h"

void log_set_level(cfg_log_level_t level);
int log_enabled(cfg_log_level_t level);

/* fields: pairs of const char *key, const char *value, terminated by NULL. Values are
 * JSON-escaped; a key starting with '#' takes its value as a raw JSON number/bool. */
void log_msg(cfg_log_level_t level, const char *msg, ...);

#define log_debug(...) log_msg(CFG_LOG_DEBUG, __VA_ARGS__, (const char *)0)
#define log_info(...) log_msg(CFG_LOG_INFO, __VA_ARGS__, (const char *)0)
#define log_warn(...) log_msg(CFG_LOG_WARN, __VA_ARGS__, (const char *)0)
#define log_error(...) log_msg(CFG_LOG_ERROR, __VA_ARGS__, (const char *)0)

/* Append s JSON-escaped (without quotes) to buf of cap bytes at *len; truncates safely. */
void log_json_escape(char *buf, size_t cap, size_t *len, const char *s);

#endif
