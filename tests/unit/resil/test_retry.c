/* Tests for the retry policy: the failure-class table, full-jitter bounds and spread over many
 * seeded samples, Retry-After, and the per-request budget (retry count and deadline). */
#include "resil/retry.h"

#include <criterion/criterion.h>

TestSuite(retry);

/* ---------------------------------------------------------------------------------------------
 * Classes
 * ------------------------------------------------------------------------------------------- */
struct class_case {
    int code, status;
    const char *name;
    bool retry, fallback;
    enum sb_breaker_outcome breaker;
};

Test(retry, classes_follow_the_table)
{
    static const struct class_case cases[] = {
        {SB_ECONNECT, 502, "connect", true, true, SB_BREAKER_FAILURE},
        {SB_ECONNECT, 0, "connect", true, true, SB_BREAKER_FAILURE},
        {SB_ETIMEOUT, 504, "timeout", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 408, "timeout", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 429, "rate limited", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 500, "server error", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 503, "server error", true, true, SB_BREAKER_FAILURE},
        {SB_EBACKEND, 503, "server error", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 401, "credentials", false, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 403, "credentials", false, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 404, "not found", false, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 400, "bad request", false, false, SB_BREAKER_NEUTRAL},
        {SB_EUPSTREAM, 422, "bad request", false, false, SB_BREAKER_NEUTRAL},
        {SB_ECONTEXT, 400, "context window", false, true, SB_BREAKER_NEUTRAL},
        {SB_EUNSUPPORTED, 400, "unsupported", false, true, SB_BREAKER_NEUTRAL},
        {SB_EINVAL, 400, "invalid request", false, false, SB_BREAKER_NEUTRAL},
        {SB_EDENIED, 403, "denied", false, false, SB_BREAKER_NEUTRAL},
        {SB_EFULL, 0, "queue full", true, true, SB_BREAKER_NEUTRAL},
        {SB_ESTATE, 500, "unavailable", true, true, SB_BREAKER_FAILURE},
        {SB_EUPSTREAM, 0, "failure", false, true, SB_BREAKER_FAILURE},
        {SB_EIO, 302, "failure", false, true, SB_BREAKER_FAILURE},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        const struct class_case *c = &cases[i];
        const struct sb_retry_class *k = sb_retry_classify(c->code, c->status);
        cr_assert_not_null(k);
        cr_assert_str_eq(k->name, c->name, "case %zu", i);
        cr_assert_eq(k->retry, c->retry, "case %zu (%s)", i, c->name);
        cr_assert_eq(k->fallback, c->fallback, "case %zu (%s)", i, c->name);
        cr_assert_eq(k->breaker, c->breaker, "case %zu (%s)", i, c->name);
    }
    /* Failures without a status (start() refusals) get one a client can be shown. */
    cr_assert_eq(sb_retry_classify(SB_ECONNECT, 0)->status, 502);
    cr_assert_eq(sb_retry_classify(SB_ETIMEOUT, 0)->status, 504);
    cr_assert_eq(sb_retry_classify(SB_EFULL, 0)->status, 429);
}

/* ---------------------------------------------------------------------------------------------
 * Random numbers and jitter
 * ------------------------------------------------------------------------------------------- */
Test(retry, the_generator_is_repeatable_per_seed)
{
    struct sb_rng a, b, c;
    sb_rng_seed(&a, 42);
    sb_rng_seed(&b, 42);
    sb_rng_seed(&c, 43);
    int same = 0;
    for (int i = 0; i < 1000; i++) {
        uint64_t x = sb_rng_next(&a);
        cr_assert_eq(x, sb_rng_next(&b));
        same += x == sb_rng_next(&c);
    }
    cr_assert_eq(same, 0);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sb_rng_upto(&a, 0), 0);
}

enum { SAMPLES = 200000 };

/* Full jitter: every delay in [0, cap], the mean near cap / 2, both ends reached. */
static void check_spread(const struct sb_retry_policy *p, int32_t retry, uint32_t cap)
{
    struct sb_rng rng;
    sb_rng_seed(&rng, 0x5eed + (uint64_t)retry);
    uint32_t lo = UINT32_MAX, hi = 0;
    double sum = 0;
    for (int i = 0; i < SAMPLES; i++) {
        uint32_t d = sb_retry_backoff_ms(p, retry, &rng);
        cr_assert_leq(d, cap, "retry %d: %u > %u", (int)retry, d, cap);
        lo = SB_MIN(lo, d);
        hi = SB_MAX(hi, d);
        sum += d;
    }
    double mean = sum / SAMPLES;
    cr_assert(mean > cap * 0.49 && mean < cap * 0.51, "retry %d: mean %f of cap %u", (int)retry,
              mean, cap);
    cr_assert_leq(lo, cap / 100, "retry %d: smallest %u", (int)retry, lo);
    cr_assert_geq(hi, cap - cap / 100, "retry %d: largest %u", (int)retry, hi);
}

Test(retry, backoff_is_full_jitter_under_a_doubling_cap)
{
    struct sb_retry_policy p = {.max = 10, .base_ms = 250, .max_ms = 8000};
    static const uint32_t caps[] = {250, 500, 1000, 2000, 4000, 8000, 8000, 8000};
    for (int32_t r = 0; r < (int32_t)SB_ARRAY_LEN(caps); r++)
        check_spread(&p, r, caps[r]);
    /* Far past the doubling's overflow the cap stays max_ms. */
    check_spread(&p, 40, 8000);
    check_spread(&p, 63, 8000);
}

Test(retry, a_zero_base_never_waits)
{
    struct sb_retry_policy p = {.max = 3, .base_ms = 0, .max_ms = 100};
    struct sb_rng rng;
    sb_rng_seed(&rng, 1);
    for (int i = 0; i < 1000; i++)
        cr_assert_eq(sb_retry_backoff_ms(&p, i % 5, &rng), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Budget and Retry-After
 * ------------------------------------------------------------------------------------------- */
Test(retry, retry_after_wins_when_larger)
{
    struct sb_retry_policy p = {.max = 5, .base_ms = 10, .max_ms = 20};
    struct sb_rng rng;
    sb_rng_seed(&rng, 7);
    for (int i = 0; i < 1000; i++) {
        struct sb_retry_budget b;
        sb_retry_budget_init(&b, 0, 0);
        uint32_t d;
        cr_assert(sb_retry_next(&p, &b, 0, 5000, &rng, &d));
        cr_assert_eq(d, 5000); /* above max_ms too: the provider asked for it */
        cr_assert(sb_retry_next(&p, &b, 0, 3, &rng, &d));
        cr_assert_leq(d, 20);
        cr_assert_geq(d, 3, "a smaller Retry-After is still a floor");
    }
}

Test(retry, the_budget_counts_retries_per_backend)
{
    struct sb_retry_policy p = {.max = 2, .base_ms = 1, .max_ms = 1};
    struct sb_rng rng;
    sb_rng_seed(&rng, 9);
    struct sb_retry_budget b;
    sb_retry_budget_init(&b, 100, 0);
    uint32_t d;
    cr_assert(sb_retry_next(&p, &b, 100, 0, &rng, &d));
    cr_assert(sb_retry_next(&p, &b, 100, 0, &rng, &d));
    cr_assert_not(sb_retry_next(&p, &b, 100, 0, &rng, &d));
    cr_assert_eq(d, 0);
    sb_retry_budget_next_backend(&b);
    cr_assert(sb_retry_next(&p, &b, 100, 0, &rng, &d));
    /* No retries at all. */
    struct sb_retry_policy none = {.max = 0, .base_ms = 1, .max_ms = 1};
    sb_retry_budget_init(&b, 0, 0);
    cr_assert_not(sb_retry_next(&none, &b, 0, 0, &rng, &d));
}

Test(retry, no_retry_begins_after_the_deadline)
{
    struct sb_retry_policy p = {.max = 10, .base_ms = 100, .max_ms = 100};
    struct sb_rng rng;
    sb_rng_seed(&rng, 11);
    struct sb_retry_budget b;
    sb_retry_budget_init(&b, 1000, 5000); /* deadline at 6000 */
    uint32_t d;
    /* A Retry-After that would end past the deadline: move on instead of waiting. */
    cr_assert_not(sb_retry_next(&p, &b, 1000, 5001, &rng, &d));
    cr_assert(sb_retry_next(&p, &b, 1000, 5000, &rng, &d));
    cr_assert_eq(d, 5000);
    /* A delay that ends exactly at the deadline still fits; one millisecond later does not. */
    cr_assert(sb_retry_next(&p, &b, 5900, 100, &rng, &d));
    cr_assert_not(sb_retry_next(&p, &b, 5901, 100, &rng, &d));
    cr_assert_eq(b.retries, 2);
    /* No deadline at all. */
    sb_retry_budget_init(&b, 1000, 0);
    cr_assert_eq(b.deadline_ms, 0);
    cr_assert(sb_retry_next(&p, &b, UINT64_MAX / 2, 100, &rng, &d));
}
