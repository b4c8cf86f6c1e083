/* Cron expressions for triggers.crons: the five standard fields (minute,
 * hour, day of month, month, day of week), each `*`, a number, a range
 * `a-b`, a step `*\/n` or `a-b/n`, or a comma list of those; month and day
 * names (JAN, MON …); day 7 is Sunday too. Times are UTC. As in cron, when
 * both day fields are restricted a day matching either one fires. */
#ifndef ATOLL_SERVER_CRON_H
#define ATOLL_SERVER_CRON_H
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "core/err.h"

typedef struct cron_expr {
    uint64_t minutes;   /* bit n: minute n */
    uint32_t hours;
    uint32_t days;      /* bit n: day of month n (1..31) */
    uint16_t months;    /* bit n: month n (1..12) */
    uint8_t weekdays;   /* bit n: day n of the week (0 = Sunday) */
    bool any_day, any_weekday;
} cron_expr;

int cron_parse(const char *text, cron_expr *out, err *e);
/* The first whole minute strictly after `after` that matches; (time_t)-1
 * if none within five years (e.g. "0 0 31 2 *"). */
time_t cron_next(const cron_expr *c, time_t after);

#endif
