/* Unit tests for src/server/cron: parsing, the next matching minute, and
 * the minute timer's bookkeeping (early ticks, no minute twice). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "server/cron.h"

static time_t utc(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {.tm_year = y - 1900, .tm_mon = mo - 1, .tm_mday = d, .tm_hour = h, .tm_min = mi};
    return timegm(&tm);
}

static time_t next_of(const char *expr, time_t after)
{
    cron_expr c;
    err e;
    if (cron_parse(expr, &c, &e) != 0)
        fail_msg("%s: %s", expr, e.msg);
    return cron_next(&c, after);
}

static void next_minute_matches(void **state)
{
    time_t t = utc(2026, 11, 27, 19, 58);
    assert_int_equal(next_of("* * * * *", t), utc(2026, 11, 27, 19, 59));
    assert_int_equal(next_of("*/5 * * * *", t), utc(2026, 11, 27, 20, 0));
    assert_int_equal(next_of("30 9 * * *", t), utc(2026, 11, 28, 9, 30));
    assert_int_equal(next_of("0 0 1 JAN *", t), utc(2027, 1, 1, 0, 0));
    assert_int_equal(next_of("0 12 * * MON-FRI", t), utc(2026, 11, 30, 12, 0)); /* the 28th is a Saturday */
    assert_int_equal(next_of("0 0 * * 7", t), utc(2026, 11, 29, 0, 0));        /* 7 is Sunday */
    assert_int_equal(next_of("15,45 */6 * * *", t), utc(2026, 11, 28, 0, 15));
    assert_int_equal(next_of("0 0 29 2 *", t), utc(2028, 2, 29, 0, 0));
    /* Both day fields restricted: either one fires. */
    assert_int_equal(next_of("0 0 1 * SUN", t), utc(2026, 11, 29, 0, 0));
    /* Strictly after: a matching minute is skipped. */
    assert_int_equal(next_of("58 19 * * *", t), utc(2026, 11, 28, 19, 58));
}

static void impossible_dates_have_no_next(void **state)
{
    assert_int_equal(next_of("0 0 31 2 *", utc(2026, 1, 1, 0, 0)), (time_t)-1);
}

static void bad_expressions_are_refused_with_the_field(void **state)
{
    static const struct { const char *text, *want; } cases[] = {
        {"* * * *", "five fields"},      {"60 * * * *", "minute field"}, {"* 24 * * *", "hour field"},
        {"* * 0 * *", "day of month"},   {"* * * 13 *", "month field"},  {"* * * * 8", "day of week"},
        {"*/0 * * * *", "minute field"}, {"5-1 * * * *", "minute field"}, {"a * * * *", "minute field"},
        {"1,,2 * * * *", "minute field"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cron_expr c;
        err e;
        err_clear(&e);
        assert_int_not_equal(cron_parse(cases[i].text, &c, &e), 0);
        if (!strstr(e.msg, cases[i].want))
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].text, e.msg, cases[i].want);
    }
}

/* A server started at 21:48:37 whose timer fires 35 ms before 21:49:00
 * (seen under `atoll serve`: "* * * * *" then ran at 21:48:59.965 and
 * again at 21:49:00.010). The early tick runs nothing and waits for the
 * boundary; each minute runs once. */
static void the_minute_timer_runs_each_minute_once(void **state)
{
    time_t start = utc(2026, 11, 27, 21, 48) + 37, boundary = utc(2026, 11, 27, 21, 49);
    cron_clock c;
    cron_clock_init(&c, start);
    assert_int_equal(cron_clock_delay_ms(&c, (uint64_t)start * 1000), 23 * 1000 + 5);
    /* Early: 21:48:59.965. Nothing runs; the next tick is just past 21:49. */
    assert_int_equal(cron_clock_due(&c, boundary - 1), (time_t)-1);
    assert_int_equal(cron_clock_delay_ms(&c, (uint64_t)boundary * 1000 - 35), 35 + 5);
    /* On time: 21:49:00.010 runs 21:49, once. */
    assert_int_equal(cron_clock_due(&c, boundary), boundary);
    assert_int_equal(cron_clock_due(&c, boundary + 30), (time_t)-1);
    assert_int_equal(cron_clock_delay_ms(&c, (uint64_t)boundary * 1000 + 10), 60000 - 10 + 5);
    /* Early again at 21:49:59.990: 21:49 does not run a second time. */
    assert_int_equal(cron_clock_due(&c, boundary + 59), (time_t)-1);
    assert_int_equal(cron_clock_due(&c, boundary + 60), boundary + 60);
    /* A loop blocked past a boundary: the tick is due at once and runs the
     * current minute. */
    assert_int_equal(cron_clock_delay_ms(&c, (uint64_t)(boundary + 185) * 1000), 0);
    assert_int_equal(cron_clock_due(&c, boundary + 185), boundary + 180);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(next_minute_matches),
        cmocka_unit_test(impossible_dates_have_no_next),
        cmocka_unit_test(bad_expressions_are_refused_with_the_field),
        cmocka_unit_test(the_minute_timer_runs_each_minute_once),
    };
    return cmocka_run_group_tests_name("cron", tests, NULL, NULL);
}
