/* Clocks: monotonic time for timeouts and latency, wall time for dates,
 * and the calling thread's CPU time for per-request CPU budgets. */
#ifndef ATOLL_CORE_CLOCK_H
#define ATOLL_CORE_CLOCK_H
#include <stdint.h>

uint64_t clock_mono_ns(void);
uint64_t clock_thread_cpu_ns(void);
double clock_wall_ms(void); /* milliseconds since the Unix epoch */

#endif
