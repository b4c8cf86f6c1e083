/* Logging to stderr (see log.h). Lines are assembled in one buffer and
 * written with one write(2) so that lines from several processes sharing
 * stderr do not interleave. */
#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

#include "core/buf.h"

static log_level min_level = LOG_INFO;
static bool as_json;

void log_set_level(log_level min) { min_level = min; }
void log_set_json(bool json) { as_json = json; }

static const char *level_name(log_level level)
{
    switch (level) {
    case LOG_DEBUG: return "debug";
    case LOG_INFO: return "info";
    case LOG_WARN: return "warn";
    default: return "error";
    }
}

static void emit(log_level level, const char *tenant, const char *fmt, va_list ap);

void log_msg(log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, NULL, fmt, ap);
    va_end(ap);
}

void log_tenant(log_level level, const char *tenant, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    emit(level, tenant ? tenant : "?", fmt, ap);
    va_end(ap);
}

static void emit(log_level level, const char *tenant, const char *fmt, va_list ap)
{
    if (level < min_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[64];
    snprintf(when, sizeof when, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    buf text;
    buf_init(&text, 1 << 20);
    if (buf_vprintf(&text, fmt, ap) == -E2BIG)
        buf_append_str(&text, "(message over 1 MiB dropped)");

    buf line;
    buf_init(&line, 2 << 20);
    if (as_json) {
        buf_printf(&line, "{\"time\":\"%s\",\"level\":\"%s\",", when, level_name(level));
        if (tenant) {
            buf_append_str(&line, "\"tenant\":");
            buf_append_json_string(&line, tenant);
            buf_append_str(&line, ",");
        }
        buf_append_str(&line, "\"msg\":");
        buf_append_json_string(&line, text.data ? text.data : "");
        buf_append_str(&line, "}\n");
    } else {
        buf_printf(&line, "%s %-5s %s%s%s%s\n", when, level_name(level), tenant ? "[" : "", tenant ? tenant : "",
                   tenant ? "] " : "", text.data ? text.data : "");
    }
    if (line.data) {
        ssize_t ignored = write(STDERR_FILENO, line.data, line.len);
        (void)ignored; /* nowhere left to report a failing stderr */
    }
    buf_free(&text);
    buf_free(&line);
}
