/* Statistics over benchmark samples: percentiles by linear interpolation,
 * the median absolute deviation as a robust spread, and the rule that says
 * when a figure is too noisy to trust (a shared 2-core machine often is). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/bench.h"
#include "core/alloc.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double bench_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0)
        return 0;
    if (p <= 0)
        return sorted[0];
    if (p >= 100)
        return sorted[n - 1];
    double rank = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)floor(rank);
    double frac = rank - (double)lo;
    if (lo + 1 >= n)
        return sorted[n - 1];
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}

void bench_summarize(double *v, size_t n, bench_summary *s)
{
    memset(s, 0, sizeof *s);
    s->n = n;
    if (n == 0) {
        s->too_wide = true;
        return;
    }
    qsort(v, n, sizeof *v, cmp_double);
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    s->min = v[0];
    s->max = v[n - 1];
    s->mean = sum / (double)n;
    s->p50 = bench_percentile(v, n, 50);
    s->p90 = bench_percentile(v, n, 90);
    s->p99 = bench_percentile(v, n, 99);
    /* The deviations need their own sorted copy; v stays sorted for callers. */
    double *dev = xmalloc(n * sizeof *dev);
    for (size_t i = 0; i < n; i++)
        dev[i] = fabs(v[i] - s->p50);
    qsort(dev, n, sizeof *dev, cmp_double);
    s->mad = bench_percentile(dev, n, 50);
    free(dev);
    /* Why these bounds: a MAD above half the median means the typical sample
     * is far from the median (a busy neighbour, frequency scaling); a p99
     * ten times the median means stalls dominate the tail. Either way the
     * figure says more about the machine than about the code. */
    s->too_wide = n < 5 || s->mad > 0.5 * s->p50 || s->p99 > 10 * s->p50;
}
