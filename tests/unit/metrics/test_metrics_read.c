/* Tests for reading the registry in process (sb_metrics_read): every series once, with its label
 * values and the same counts, gauge values, cumulative buckets and sum that the exposition prints.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

struct seen {
    int calls;
    uint64_t counter_sum;
    int64_t gauge;
    uint64_t cumulative[SB_METRICS_MAX_BUCKETS + 1];
    uint64_t count;
    double sum;
    char labels[256];
};

static void on_counter(const struct sb_metric_reading *r, void *ud)
{
    struct seen *s = ud;
    size_t len = strlen(s->labels);

    s->calls++;
    s->counter_sum += r->counter;
    cr_assert_eq(r->def, sb_metrics_def(SB_METRIC_REQUESTS));
    snprintf(s->labels + len, sizeof(s->labels) - len, "[%s|%s|%s]", r->labels[0], r->labels[1],
             r->labels[2]);
}

static void on_gauge(const struct sb_metric_reading *r, void *ud)
{
    struct seen *s = ud;

    s->calls++;
    s->gauge = r->gauge;
    cr_assert_str_eq(r->labels[0], "gpt");
}

static void on_histogram(const struct sb_metric_reading *r, void *ud)
{
    struct seen *s = ud;

    s->calls++;
    memcpy(s->cumulative, r->cumulative, (r->def->n_buckets + 1) * sizeof(uint64_t));
    s->count = r->count;
    s->sum = r->sum;
}

Test(metrics_read, counters_visit_every_series_with_its_labels)
{
    const char *const a[] = {"local", "local", "200"};
    const char *const b[] = {"gpt", "", "502"};
    struct seen s = {0};

    sb_metrics_counter_add(SB_METRIC_REQUESTS, a, 3);
    sb_metrics_counter_add(SB_METRIC_REQUESTS, b, 4);
    cr_assert_eq(sb_metrics_read(SB_METRIC_REQUESTS, on_counter, &s), 0);
    cr_assert_eq(s.calls, 2);
    cr_assert_eq(s.counter_sum, 7);
    cr_assert(strstr(s.labels, "[local|local|200]") != NULL, "%s", s.labels);
    cr_assert(strstr(s.labels, "[gpt||502]") != NULL, "%s", s.labels);
}

Test(metrics_read, gauges_and_an_empty_metric)
{
    const char *const g[] = {"gpt"};
    struct seen s = {0};

    cr_assert_eq(sb_metrics_read(SB_METRIC_BREAKER_STATE, on_gauge, &s), 0);
    cr_assert_eq(s.calls, 0, "no series yet");
    sb_metrics_gauge_set(SB_METRIC_BREAKER_STATE, g, 2);
    cr_assert_eq(sb_metrics_read(SB_METRIC_BREAKER_STATE, on_gauge, &s), 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.gauge, 2);
    cr_assert_eq(sb_metrics_read(SB_METRIC_COUNT, on_gauge, &s), SB_EINVAL);
    cr_assert_eq(sb_metrics_read(SB_METRIC_REQUESTS, NULL, &s), SB_EINVAL);
}

Test(metrics_read, histograms_read_as_the_exposition_prints_them)
{
    const char *const mb[] = {"local", "local"};
    const struct sb_metric_def *def = sb_metrics_def(SB_METRIC_TTFT);
    struct seen s = {0};
    struct sb_buf text;

    sb_metrics_histogram_observe(SB_METRIC_TTFT, mb, 0.03);
    sb_metrics_histogram_observe(SB_METRIC_TTFT, mb, 0.04);
    sb_metrics_histogram_observe(SB_METRIC_TTFT, mb, 20); /* above every bound */
    cr_assert_eq(sb_metrics_read(SB_METRIC_TTFT, on_histogram, &s), 0);
    cr_assert_eq(s.calls, 1);
    cr_assert_eq(s.count, 3);
    cr_assert_eq(s.cumulative[def->n_buckets], 3, "+Inf equals the count");
    cr_assert_float_eq(s.sum, 20.07, 1e-9);
    sb_buf_init(&text, 1 << 20);
    cr_assert_eq(sb_metrics_render(&text), 0);
    for (size_t b = 0; b < def->n_buckets; b++) {
        char le[48], line[160];
        snprintf(le, sizeof(le), "%g", def->buckets[b]);
        snprintf(line, sizeof(line),
                 "switchboard_ttft_seconds_bucket{model=\"local\",backend=\"local\",le=\"%s\"} "
                 "%llu\n",
                 le, (unsigned long long)s.cumulative[b]);
        cr_assert_not_null(strstr(text.p, line), "the exposition lacks %s", line);
    }
    cr_assert_not_null(
        strstr(text.p, "switchboard_ttft_seconds_sum{model=\"local\",backend=\"local\"} 20.07\n"));
    sb_buf_free(&text);
}
