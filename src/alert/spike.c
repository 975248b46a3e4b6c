/* The spend-spike detector: spend summed per time bucket in a ring covering the window and the
 * baseline before it, with both sums kept up to date as buckets move from the window into the
 * baseline and out of it, so that each spend costs O(1) plus the buckets the clock skipped. */
#include <stdlib.h>

#include "alert/alert.h"

/* Bucket lengths tried in order, in seconds: round numbers, so buckets line up with minutes. */
static const int64_t bucket_choices_s[] = {1,   2,   5,   10,  15,   30,   60,
                                           120, 300, 600, 900, 1800, 3600, 7200};

#define MICROS_PER_UNIT 1000000

struct sb_alert_spike {
    struct sb_alert_spike_params p;
    int64_t bucket_ms;
    int64_t window_buckets;   /* w: the latest w buckets, the current one included */
    int64_t baseline_buckets; /* b: the b buckets before those */
    int64_t n;                /* w + b: the ring's length */
    int64_t start;            /* the bucket the detector started in */
    int64_t head;             /* the latest bucket seen */
    int64_t window_sum;       /* micro-dollars in the window's buckets */
    int64_t baseline_sum;     /* and in the baseline's */
    int64_t quiet_until_ms;   /* no spike is reported before this (after one was) */
    bool quiet;
    int64_t ring[]; /* bucket k's spend is at ring[k mod n] while k is in the last n buckets */
};

static int64_t div_up(int64_t a, int64_t b)
{
    return a / b + (a % b != 0);
}

int64_t sb_alert_spike_bucket_ms(int64_t window_ms, int64_t baseline_ms)
{
    int64_t ms = 0;
    for (size_t i = 0; i < SB_ARRAY_LEN(bucket_choices_s); i++) {
        ms = bucket_choices_s[i] * 1000;
        if (div_up(window_ms, ms) + div_up(baseline_ms, ms) <= SB_ALERT_SPIKE_MAX_BUCKETS)
            break;
    }
    return ms;
}

/* The ring slot of bucket k (k may be below zero when the clock starts near it). */
static size_t slot(const struct sb_alert_spike *d, int64_t k)
{
    return (size_t)(((k % d->n) + d->n) % d->n);
}

int sb_alert_spike_new(const struct sb_alert_spike_params *p, int64_t now_ms,
                       struct sb_alert_spike **out)
{
    *out = NULL;
    if (p->window_ms <= 0 || p->baseline_ms <= p->window_ms ||
        p->factor_micros <= MICROS_PER_UNIT || p->min_micros < 0 || now_ms < 0)
        return SB_EINVAL;
    int64_t bucket_ms = sb_alert_spike_bucket_ms(p->window_ms, p->baseline_ms);
    int64_t w = div_up(p->window_ms, bucket_ms);
    int64_t b = div_up(p->baseline_ms, bucket_ms);
    if (w + b > SB_ALERT_SPIKE_MAX_BUCKETS)
        return SB_EINVAL;
    struct sb_alert_spike *d = calloc(1, sizeof(*d) + (size_t)(w + b) * sizeof(d->ring[0]));
    if (d == NULL)
        return SB_ENOMEM;
    d->p = *p;
    d->bucket_ms = bucket_ms;
    d->window_buckets = w;
    d->baseline_buckets = b;
    d->n = w + b;
    d->start = now_ms / bucket_ms;
    d->head = d->start;
    *out = d;
    return 0;
}

void sb_alert_spike_free(struct sb_alert_spike *d)
{
    free(d);
}

/* Moves the head to bucket k: each new bucket enters the window empty, the window's oldest moves
 * into the baseline, and the baseline's oldest (in the new bucket's slot) leaves. */
static void advance(struct sb_alert_spike *d, int64_t k)
{
    if (k <= d->head)
        return;
    if (k - d->head >= d->n) {
        /* Everything in the ring is older than the baseline now. */
        for (int64_t i = 0; i < d->n; i++)
            d->ring[i] = 0;
        d->window_sum = 0;
        d->baseline_sum = 0;
        d->head = k;
        return;
    }
    for (int64_t next = d->head + 1; next <= k; next++) {
        size_t fresh = slot(d, next); /* held bucket next - n, the baseline's oldest */
        d->baseline_sum -= d->ring[fresh];
        d->ring[fresh] = 0;
        size_t aging = slot(d, next - d->window_buckets);
        d->window_sum -= d->ring[aging];
        d->baseline_sum += d->ring[aging];
    }
    d->head = k;
}

/* The baseline buckets the detector has watched: those since it started, at most b. */
static int64_t baseline_seen(const struct sb_alert_spike *d)
{
    int64_t first_baseline = d->head - d->window_buckets - d->baseline_buckets + 1;
    int64_t from = SB_MAX(first_baseline, d->start);
    int64_t to = d->head - d->window_buckets; /* the newest baseline bucket */
    return to >= from ? to - from + 1 : 0;
}

/* Whether the window's rate is at least factor times the baseline's: window / w >= factor *
 * baseline / seen, compared multiplied out in 128 bits (sums up to 2^63 micro-dollars times
 * factors and bucket counts overflow 64). */
static bool over_factor(const struct sb_alert_spike *d, int64_t seen)
{
    __int128 lhs = (__int128)d->window_sum * seen * MICROS_PER_UNIT;
    __int128 rhs = (__int128)d->p.factor_micros * d->baseline_sum * d->window_buckets;
    return lhs >= rhs;
}

bool sb_alert_spike_add(struct sb_alert_spike *d, int64_t now_ms, int64_t cost_micros,
                        struct sb_alert_spike_report *out)
{
    advance(d, now_ms / d->bucket_ms);
    if (cost_micros <= 0)
        return false;
    d->ring[slot(d, d->head)] += cost_micros;
    d->window_sum += cost_micros;

    if (d->quiet && now_ms < d->quiet_until_ms)
        return false;
    if (d->window_sum < d->p.min_micros)
        return false;
    int64_t seen = baseline_seen(d);
    if (d->baseline_sum > 0 && !over_factor(d, seen))
        return false;

    d->quiet = true;
    d->quiet_until_ms = now_ms + d->p.window_ms;
    out->window_micros = d->window_sum;
    out->baseline_micros = d->baseline_sum;
    out->expected_micros =
        d->baseline_sum > 0 ? (int64_t)((__int128)d->baseline_sum * d->window_buckets / seen) : 0;
    out->window_ms = d->window_buckets * d->bucket_ms;
    out->baseline_ms = seen * d->bucket_ms;
    return true;
}
