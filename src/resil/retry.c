/* The retry policy: the failure-class table, exponential backoff with full jitter, and the
 * per-request retry budget. */
#include "resil/retry.h"

#include <limits.h>

/* ---------------------------------------------------------------------------------------------
 * Failure classes (the table in retry.h explains each row). First match wins: rows with a code
 * match that SB_E* code whatever the status; rows with code 0 match a status range.
 * ------------------------------------------------------------------------------------------- */
struct class_row {
    int code;   /* SB_E*, or 0 to match by status */
    int lo, hi; /* status range, when code is 0 */
    struct sb_retry_class cls;
};

/* The table reads as columns. */
/* clang-format off */
#define F SB_BREAKER_FAILURE
#define N SB_BREAKER_NEUTRAL
static const struct class_row classes[] = {
    /* code           lo   hi        name               status retry  fallback breaker */
    {SB_ECONNECT,     0,   0,       {"connect",         502,   true,  true,    F}},
    {SB_ETIMEOUT,     0,   0,       {"timeout",         504,   true,  true,    F}},
    {SB_EFULL,        0,   0,       {"queue full",      429,   true,  true,    N}},
    {SB_ESTATE,       0,   0,       {"unavailable",     503,   true,  true,    F}},
    {SB_ENOMEM,       0,   0,       {"out of memory",   503,   true,  true,    N}},
    {SB_ECONTEXT,     0,   0,       {"context window",  400,   false, true,    N}},
    {SB_EUNSUPPORTED, 0,   0,       {"unsupported",     400,   false, true,    N}},
    {SB_EINVAL,       0,   0,       {"invalid request", 400,   false, false,   N}},
    {SB_EDENIED,      0,   0,       {"denied",          403,   false, false,   N}},
    {0,               429, 429,     {"rate limited",    429,   true,  true,    F}},
    {0,               408, 408,     {"timeout",         504,   true,  true,    F}},
    {0,               401, 401,     {"credentials",     401,   false, true,    F}},
    {0,               403, 403,     {"credentials",     403,   false, true,    F}},
    {0,               404, 404,     {"not found",       404,   false, true,    F}},
    {0,               400, 499,     {"bad request",     400,   false, false,   N}},
    {0,               500, 599,     {"server error",    502,   true,  true,    F}},
    {0,               0,   INT_MAX, {"failure",         502,   false, true,    F}},
};
#undef F
#undef N
/* clang-format on */

const struct sb_retry_class *sb_retry_classify(int code, int http_status)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(classes); i++) {
        const struct class_row *r = &classes[i];
        bool hit = r->code != 0 ? r->code == code : http_status >= r->lo && http_status <= r->hi;
        if (hit)
            return &r->cls;
    }
    return &classes[SB_ARRAY_LEN(classes) - 1].cls; /* unreachable: the last row matches all */
}

/* ---------------------------------------------------------------------------------------------
 * Random numbers: SplitMix64 (Steele, Lea and Flood), which passes BigCrush and needs one word of
 * state, plenty for spreading retries apart.
 * ------------------------------------------------------------------------------------------- */
void sb_rng_seed(struct sb_rng *r, uint64_t seed)
{
    r->state = seed;
}

uint64_t sb_rng_next(struct sb_rng *r)
{
    r->state += 0x9E3779B97F4A7C15u;
    uint64_t z = r->state;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

uint32_t sb_rng_upto(struct sb_rng *r, uint32_t hi)
{
    uint64_t x = sb_rng_next(r) >> 32; /* the high bits are the better ones */
    if (hi == UINT32_MAX)
        return (uint32_t)x;
    /* Multiply-shift maps 32 random bits onto [0, hi]; the bias is below 2^-32 per value. */
    return (uint32_t)((x * ((uint64_t)hi + 1)) >> 32);
}

/* ---------------------------------------------------------------------------------------------
 * Backoff and budget
 * ------------------------------------------------------------------------------------------- */
uint32_t sb_retry_backoff_ms(const struct sb_retry_policy *p, int32_t retry, struct sb_rng *rng)
{
    uint64_t cap = p->max_ms;
    if (retry >= 0 && retry < 32)
        cap = SB_MIN(cap, (uint64_t)p->base_ms << retry);
    return sb_rng_upto(rng, (uint32_t)cap);
}

void sb_retry_budget_init(struct sb_retry_budget *b, uint64_t now_ms, uint32_t total_ms)
{
    b->deadline_ms = total_ms != 0 ? now_ms + total_ms : 0;
    b->retries = 0;
}

bool sb_retry_next(const struct sb_retry_policy *p, struct sb_retry_budget *b, uint64_t now_ms,
                   uint32_t retry_after_ms, struct sb_rng *rng, uint32_t *delay_ms)
{
    *delay_ms = 0;
    if (p->max <= 0 || b->retries >= p->max)
        return false;
    uint32_t delay = sb_retry_backoff_ms(p, b->retries, rng);
    if (retry_after_ms > delay)
        delay = retry_after_ms;
    if (b->deadline_ms != 0 && now_ms + delay > b->deadline_ms)
        return false;
    b->retries++;
    *delay_ms = delay;
    return true;
}

void sb_retry_budget_next_backend(struct sb_retry_budget *b)
{
    b->retries = 0;
}
