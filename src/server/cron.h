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

/* The minute timer's bookkeeping. A timer set for the next minute boundary
 * can fire a little before it (libuv measures from its cached loop time,
 * which lags the wall clock after a long start-up, and the monotonic clock
 * drifts from the wall clock), so a tick asks which minute is due instead
 * of assuming one, and no minute runs twice. */
typedef struct cron_clock {
    time_t last; /* the last minute run (or the start-up minute, never run) */
} cron_clock;

/* Starts at wall-clock second `now`: its minute, already under way, is not run. */
void cron_clock_init(cron_clock *c, time_t now);
/* The minute a tick at `now` runs, or (time_t)-1 when it came before the
 * next boundary (too early) or that minute has already run. */
time_t cron_clock_due(cron_clock *c, time_t now);
/* Milliseconds from `now_ms` (wall clock) until just past the next minute
 * boundary not yet run; 0 when it has already passed. */
uint64_t cron_clock_delay_ms(const cron_clock *c, uint64_t now_ms);

#endif
