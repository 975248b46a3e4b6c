/* Tests for the spend-spike detector, driven by an injected clock: the bucket sizes, no spike under
 * the factor and one exactly at it, min_usd, the case without a baseline, the cooldown, gaps
 * longer than the ring, and a long random run against a detector that keeps every spend. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"

/* Window 10 s over a 60 s baseline (1 s buckets); a spike is 3 times the baseline's rate and at
 * least min_micros. */
static struct sb_alert_spike_params params(int64_t min_micros)
{
    return (struct sb_alert_spike_params){.window_ms = 10000,
                                          .baseline_ms = 60000,
                                          .factor_micros = 3000000,
                                          .min_micros = min_micros};
}

/* The detector starts in bucket 1000. */
#define T0 1000000

static struct sb_alert_spike *make(int64_t min_micros)
{
    struct sb_alert_spike_params p = params(min_micros);
    struct sb_alert_spike *d = NULL;
    cr_assert_eq(sb_alert_spike_new(&p, T0, &d), 0);
    return d;
}

static bool add(struct sb_alert_spike *d, int64_t t, int64_t cost, struct sb_alert_spike_report *r)
{
    struct sb_alert_spike_report scratch;
    return sb_alert_spike_add(d, t, cost, r != NULL ? r : &scratch);
}

/* 100 micro-dollars each second from T0 for n seconds: never a spike (the window holds 1000 at
 * most, under min 2000). */
static void steady(struct sb_alert_spike *d, int n)
{
    for (int i = 0; i < n; i++)
        cr_assert(!add(d, T0 + (int64_t)i * 1000, 100, NULL), "second %d", i);
}

Test(alert_spike, bucket_lengths)
{
    cr_assert_eq(sb_alert_spike_bucket_ms(10000, 60000), 1000);
    /* The defaults: 300 s over 86400 s needs 15 s buckets (20 + 5760). */
    cr_assert_eq(sb_alert_spike_bucket_ms(300000, 86400000), 15000);
    /* 30 days: 10 min buckets (4321 with the minute's window rounded up). */
    cr_assert_eq(sb_alert_spike_bucket_ms(60000, 2592000000), 600000);
    /* Exactly at the limit: 8192 one-second buckets. */
    cr_assert_eq(sb_alert_spike_bucket_ms(192000, 8000000), 1000);
    cr_assert_eq(sb_alert_spike_bucket_ms(192000, 8001000), 2000);
}

Test(alert_spike, params_are_checked)
{
    struct sb_alert_spike *d = NULL;
    struct sb_alert_spike_params p = params(0);
    p.window_ms = 60000;
    cr_assert_eq(sb_alert_spike_new(&p, 0, &d), SB_EINVAL, "window as long as the baseline");
    p = params(0);
    p.factor_micros = 1000000;
    cr_assert_eq(sb_alert_spike_new(&p, 0, &d), SB_EINVAL, "a factor of 1");
    p = params(-1);
    cr_assert_eq(sb_alert_spike_new(&p, 0, &d), SB_EINVAL, "a negative minimum");
    p = params(0);
    p.window_ms = 0;
    cr_assert_eq(sb_alert_spike_new(&p, 0, &d), SB_EINVAL, "an empty window");
    cr_assert_null(d);
}

Test(alert_spike, no_baseline_spike_is_the_minimum_alone)
{
    struct sb_alert_spike *d = make(1000);
    struct sb_alert_spike_report r;
    cr_assert(!add(d, T0, 999, &r), "below min_usd");
    cr_assert(!add(d, T0 + 500, 0, &r), "nothing spent");
    cr_assert(!add(d, T0 + 500, -1, &r), "unpriced");
    cr_assert(add(d, T0 + 1000, 1, &r));
    cr_assert_eq(r.window_micros, 1000);
    cr_assert_eq(r.baseline_micros, 0);
    cr_assert_eq(r.expected_micros, 0);
    cr_assert_eq(r.window_ms, 10000);
    cr_assert_eq(r.baseline_ms, 0, "nothing watched before the window yet");
    sb_alert_spike_free(d);
}

Test(alert_spike, under_the_factor_then_exactly_at_it)
{
    struct sb_alert_spike *d = make(2000);
    struct sb_alert_spike_report r;
    steady(d, 70);
    /* At second 70 the window (61..70) holds 900 before this spend and the baseline (1..60)
     * 6000 over 60 s: 3 times its rate is 3000 per window, so 2099 more is just under. */
    cr_assert(!add(d, T0 + 70000, 2099, &r));
    cr_assert(add(d, T0 + 70500, 1, &r), "3000 is exactly 3 times");
    cr_assert_eq(r.window_micros, 3000);
    cr_assert_eq(r.baseline_micros, 6000);
    cr_assert_eq(r.expected_micros, 1000);
    cr_assert_eq(r.window_ms, 10000);
    cr_assert_eq(r.baseline_ms, 60000);
    sb_alert_spike_free(d);
}

Test(alert_spike, min_usd_holds_back_a_steep_but_small_rise)
{
    struct sb_alert_spike *d = make(2000);
    struct sb_alert_spike_report r;
    cr_assert(!add(d, T0, 1, &r));
    /* Twenty seconds on, the baseline (buckets 1000..1010 watched) holds 1: any window spend is
     * far above 3 times that, but 1999 is under min_usd. */
    cr_assert(!add(d, T0 + 20000, 1999, &r));
    cr_assert(add(d, T0 + 20000, 1, &r));
    cr_assert_eq(r.window_micros, 2000);
    cr_assert_eq(r.baseline_micros, 1);
    cr_assert_eq(r.baseline_ms, 11000, "only the watched part of the baseline counts");
    cr_assert_eq(r.expected_micros, 0, "1 over 11 s is 0.9 per 10 s, rounded down");
    sb_alert_spike_free(d);
}

Test(alert_spike, one_alert_per_window)
{
    struct sb_alert_spike *d = make(1000);
    struct sb_alert_spike_report r;
    cr_assert(add(d, T0, 5000, &r));
    cr_assert(!add(d, T0 + 1000, 1000000, &r), "cooling down");
    cr_assert(!add(d, T0 + 9999, 1000000, &r), "still cooling down");
    /* A window later the baseline holds T0's 5000 over 1 s watched: 3 times its rate is 150000
     * per window, and the window holds the 2000000 of the cooldown. */
    cr_assert(add(d, T0 + 10000, 1, &r));
    cr_assert_eq(r.window_micros, 2000001);
    cr_assert_eq(r.baseline_micros, 5000);
    cr_assert_eq(r.baseline_ms, 1000);
    cr_assert_eq(r.expected_micros, 50000);
    sb_alert_spike_free(d);
}

Test(alert_spike, gaps_empty_the_window_and_then_the_baseline)
{
    struct sb_alert_spike *d = make(2000);
    struct sb_alert_spike_report r;
    steady(d, 70);
    /* 30 s of silence: the window is empty and the baseline (seconds 31..90) holds the spend of
     * seconds 31..69 (3900); 3 times its rate is 1950 per window, so min_usd (2000) decides. */
    cr_assert(!add(d, T0 + 100000, 1999, &r));
    cr_assert(add(d, T0 + 100000, 1, &r));
    cr_assert_eq(r.baseline_micros, 3900);
    cr_assert_eq(r.window_micros, 2000);
    sb_alert_spike_free(d);

    /* Longer than window and baseline together: nothing is left to compare with. */
    d = make(2000);
    steady(d, 70);
    cr_assert(add(d, T0 + 70000 + 70000, 2000, &r));
    cr_assert_eq(r.baseline_micros, 0);
    cr_assert_eq(r.window_micros, 2000);
    sb_alert_spike_free(d);
}

Test(alert_spike, a_clock_that_steps_back_counts_as_now)
{
    struct sb_alert_spike *d = make(2000);
    struct sb_alert_spike_report r;
    cr_assert(!add(d, T0 + 5000, 1500, &r));
    cr_assert(add(d, T0 + 1000, 500, &r), "added to the latest bucket");
    cr_assert_eq(r.window_micros, 2000);
    sb_alert_spike_free(d);
}

/* ---------------------------------------------------------------------------------------------
 * Against a detector that keeps every spend and sums them afresh each time.
 * ------------------------------------------------------------------------------------------- */
struct spend {
    int64_t bucket, cost;
};

struct naive {
    struct sb_alert_spike_params p;
    int64_t bucket_ms, w, b, start, head, quiet_until;
    bool quiet;
    struct spend *all;
    size_t n;
};

static bool naive_add(struct naive *m, int64_t now, int64_t cost, struct sb_alert_spike_report *r)
{
    m->head = SB_MAX(m->head, now / m->bucket_ms);
    if (cost <= 0)
        return false;
    m->all[m->n++] = (struct spend){m->head, cost};
    int64_t window = 0, baseline = 0;
    for (size_t i = 0; i < m->n; i++) {
        int64_t age = m->head - m->all[i].bucket;
        if (age < m->w)
            window += m->all[i].cost;
        else if (age < m->w + m->b)
            baseline += m->all[i].cost;
    }
    if ((m->quiet && now < m->quiet_until) || window < m->p.min_micros)
        return false;
    int64_t from = SB_MAX(m->head - m->w - m->b + 1, m->start), to = m->head - m->w;
    int64_t seen = to >= from ? to - from + 1 : 0;
    /* Small amounts in this test: 64 bits hold the products. */
    if (baseline > 0 && window * seen * 1000000 < m->p.factor_micros * baseline * m->w)
        return false;
    m->quiet = true;
    m->quiet_until = now + m->p.window_ms;
    r->window_micros = window;
    r->baseline_micros = baseline;
    r->baseline_ms = seen * m->bucket_ms;
    return true;
}

Test(alert_spike, long_random_run_matches_summing_afresh)
{
    enum { STEPS = 20000 };
    struct sb_alert_spike_params p = params(3000);
    struct sb_alert_spike *d = NULL;
    cr_assert_eq(sb_alert_spike_new(&p, T0, &d), 0);
    struct naive m = {
        .p = p, .bucket_ms = 1000, .w = 10, .b = 60, .start = T0 / 1000, .head = T0 / 1000};
    m.all = calloc(STEPS, sizeof(*m.all));
    cr_assert_not_null(m.all);
    unsigned seed = 12345;
    int64_t t = T0;
    int spikes = 0;
    for (int i = 0; i < STEPS; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = (seed >> 16) & 0x7fff;
        /* Mostly small steps, sometimes a long silence (past the ring, which is 70 buckets). */
        t += r % 97 == 0 ? (int64_t)(r % 200) * 1000 : (int64_t)(r % 1500);
        int64_t cost = r % 13 == 0 ? (int64_t)(r % 5000) : (int64_t)(r % 60);
        struct sb_alert_spike_report got, want;
        bool g = sb_alert_spike_add(d, t, cost, &got);
        bool w = naive_add(&m, t, cost, &want);
        cr_assert_eq(g, w, "step %d at %lld: detector %d, afresh %d", i, (long long)t, g, w);
        if (g) {
            spikes++;
            cr_assert_eq(got.window_micros, want.window_micros, "step %d", i);
            cr_assert_eq(got.baseline_micros, want.baseline_micros, "step %d", i);
            cr_assert_eq(got.baseline_ms, want.baseline_ms, "step %d", i);
        }
    }
    /* The run wrapped the ring hundreds of times and had spikes of both kinds to compare. */
    cr_assert_gt((t - T0) / 1000, 100 * 70);
    cr_assert_gt(spikes, 10);
    free(m.all);
    sb_alert_spike_free(d);
}
