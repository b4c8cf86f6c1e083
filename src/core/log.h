/* Process-wide logging to stderr: one line per event, human-readable by
 * default or one JSON object per line (log_set_json) for log collectors. */
#ifndef ATOLL_CORE_LOG_H
#define ATOLL_CORE_LOG_H
#include <stdbool.h>

typedef enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

void log_set_level(log_level min);
void log_set_json(bool json);
void log_msg(log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A line on behalf of a tenant (its console output, its errors): text
 * "[tenant] message", or JSON with a "tenant" field. */
void log_tenant(log_level level, const char *tenant, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)

#endif
