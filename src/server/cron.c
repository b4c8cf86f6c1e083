/* Cron expressions (see cron.h). */
#include "server/cron.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

typedef struct field {
    const char *name;
    int min, max;
    const char *const *names; /* names for min, min+1, … or NULL */
} field;

static const char *const month_names[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                          "JUL", "AUG", "SEP", "OCT", "NOV", "DEC", NULL};
static const char *const day_names[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", NULL};
static const field fields[5] = {
    {"minute", 0, 59, NULL},      {"hour", 0, 23, NULL}, {"day of month", 1, 31, NULL},
    {"month", 1, 12, month_names}, {"day of week", 0, 7, day_names},
};

static int number(const field *f, const char **p, int *out)
{
    const char *s = *p;
    if (isdigit((unsigned char)*s)) {
        char *end;
        long v = strtol(s, &end, 10);
        if (v < f->min || v > f->max)
            return -ERANGE;
        *out = (int)v;
        *p = end;
        return 0;
    }
    for (int i = 0; f->names && f->names[i]; i++)
        if (strncasecmp(s, f->names[i], 3) == 0) {
            *out = f->min + i;
            *p = s + 3;
            return 0;
        }
    return -EINVAL;
}

/* One field into a bit set. */
static int parse_field(const field *f, const char *text, uint64_t *bits, bool *any, err *e)
{
    *bits = 0;
    *any = false;
    const char *p = text;
    for (;;) {
        int lo = f->min, hi = f->max, step = 1, rc = 0;
        bool star = *p == '*';
        if (star) {
            p++;
        } else {
            rc = number(f, &p, &lo);
            hi = lo;
            if (rc == 0 && *p == '-') {
                p++;
                rc = number(f, &p, &hi);
            }
        }
        if (rc == 0 && *p == '/') {
            char *end;
            long s = strtol(++p, &end, 10);
            if (end == p || s < 1 || s > f->max)
                rc = -EINVAL;
            step = (int)s;
            p = end;
            if (!star && hi == lo)
                hi = f->max; /* "5/15": from 5 on */
        }
        if (rc != 0 || lo > hi)
            return err_set(e, -EINVAL, "%s field \"%s\": expected *, a number from %d to %d, a range or a step",
                           f->name, text, f->min, f->max);
        if (star && step == 1)
            *any = true;
        for (int v = lo; v <= hi; v += step)
            *bits |= 1ull << v;
        if (*p == '\0')
            return 0;
        if (*p != ',')
            return err_set(e, -EINVAL, "%s field \"%s\": unexpected '%c'", f->name, text, *p);
        p++;
    }
}

int cron_parse(const char *text, cron_expr *out, err *e)
{
    memset(out, 0, sizeof *out);
    char copy[256];
    if (strlen(text) >= sizeof copy)
        return err_set(e, -EINVAL, "cron \"%.40s…\": too long", text);
    strcpy(copy, text);
    char *parts[6], *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(copy, " \t", &save); tok && n < 6; tok = strtok_r(NULL, " \t", &save))
        parts[n++] = tok;
    if (n != 5)
        return err_set(e, -EINVAL, "cron \"%s\": expected five fields (minute hour day month weekday)", text);
    uint64_t bits[5];
    bool any[5];
    for (int i = 0; i < 5; i++)
        if (parse_field(&fields[i], parts[i], &bits[i], &any[i], e) != 0)
            return err_prefix(e, "cron \"%s\"", text);
    out->minutes = bits[0];
    out->hours = (uint32_t)bits[1];
    out->days = (uint32_t)bits[2];
    out->months = (uint16_t)bits[3];
    out->weekdays = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    out->any_day = any[2];
    out->any_weekday = any[4];
    return 0;
}

static bool day_matches(const cron_expr *c, const struct tm *tm)
{
    bool dom = c->days & (1u << tm->tm_mday), dow = c->weekdays & (1u << tm->tm_wday);
    if (c->any_day && c->any_weekday)
        return true;
    if (c->any_day)
        return dow;
    if (c->any_weekday)
        return dom;
    return dom || dow; /* both restricted: either one, as cron does */
}

time_t cron_next(const cron_expr *c, time_t after)
{
    time_t t = after - after % 60 + 60;
    time_t limit = after + 5 * 366 * 86400;
    struct tm tm;
    while (t <= limit) {
        gmtime_r(&t, &tm);
        if (!(c->months & (1u << (tm.tm_mon + 1))) || !day_matches(c, &tm)) {
            t += 86400 - (tm.tm_hour * 3600 + tm.tm_min * 60); /* next day, 00:00 */
            continue;
        }
        if (!(c->hours & (1u << tm.tm_hour))) {
            t += 3600 - tm.tm_min * 60; /* next hour */
            continue;
        }
        if (!(c->minutes & (1ull << tm.tm_min))) {
            t += 60;
            continue;
        }
        return t;
    }
    return (time_t)-1;
}

void cron_clock_init(cron_clock *c, time_t now)
{
    c->last = now - now % 60;
}

time_t cron_clock_due(cron_clock *c, time_t now)
{
    time_t minute = now - now % 60;
    if (minute <= c->last)
        return (time_t)-1;
    c->last = minute;
    return minute;
}

uint64_t cron_clock_delay_ms(const cron_clock *c, uint64_t now_ms)
{
    uint64_t next_ms = (uint64_t)(c->last + 60) * 1000;
    /* A few ms past the boundary, so that time() already reads the new minute. */
    return now_ms >= next_ms ? 0 : next_ms - now_ms + 5;
}
