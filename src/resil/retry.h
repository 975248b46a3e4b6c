/* Retry policy: which failures are worth another try (and which are worth another backend), how
 * long to wait before the next try (exponential backoff with full jitter, honouring Retry-After),
 * and a per-request budget so that no request retries or waits forever. */
#ifndef SB_RESIL_RETRY_H
#define SB_RESIL_RETRY_H

#include "core/core.h"
#include "resil/breaker.h"

/* ---------------------------------------------------------------------------------------------
 * Failure classes. One table (retry.c) maps an error's SB_E* code, or failing that its HTTP
 * status, to what the resilience layer does about it:
 *
 *   class            matched by                  retry  next backend  breaker
 *   connect          SB_ECONNECT                 yes    yes           failure
 *   timeout          SB_ETIMEOUT, HTTP 408       yes    yes           failure
 *   queue full       SB_EFULL                    yes    yes           neutral (busy, not broken)
 *   unavailable      SB_ESTATE                   yes    yes           failure (loading, stopping)
 *   out of memory    SB_ENOMEM                   yes    yes           neutral
 *   context window   SB_ECONTEXT                 no     yes           neutral (a bigger one may
 * fit) unsupported      SB_EUNSUPPORTED             no     yes           neutral (another may do
 * it) invalid request  SB_EINVAL                   no     no            neutral (the client's
 * fault) denied           SB_EDENIED                  no     no            neutral (our own policy)
 *   rate limited     HTTP 429                    yes    yes           failure
 *   credentials      HTTP 401, 403               no     yes           failure (misconfigured key)
 *   not found        HTTP 404                    no     yes           failure (model not there)
 *   bad request      other HTTP 4xx              no     no            neutral (the client's fault)
 *   server error     HTTP 5xx                    yes    yes           failure
 *   failure          anything else               no     yes           failure
 *
 * "retry" is the most the class allows: an error event that came with retryable = false (e.g. a
 * stream that broke after the provider began answering) is not retried whatever its class.
 * ------------------------------------------------------------------------------------------- */
struct sb_retry_class {
    const char *name; /* "connect", ... for messages and logs */
    int status;       /* what a client sees when the failure came without a status (start()) */
    bool retry;       /* the same backend may be tried again, after a backoff */
    bool fallback;    /* the next backend of the chain may be tried */
    enum sb_breaker_outcome breaker; /* what it tells the backend's circuit breaker */
};

/* Returns the class of a failure: code (SB_E*) first, then http_status (0 when unknown). Never
 * NULL; the result is static. */
const struct sb_retry_class *sb_retry_classify(int code, int http_status);

/* ---------------------------------------------------------------------------------------------
 * Random numbers for jitter: a small generator whose state the caller owns (one per request, so
 * threads share nothing, and tests seed it to get repeatable sequences).
 * ------------------------------------------------------------------------------------------- */
struct sb_rng {
    uint64_t state;
};

void sb_rng_seed(struct sb_rng *r, uint64_t seed);
uint64_t sb_rng_next(struct sb_rng *r);
/* A uniformly distributed value in [0, hi], both ends included. */
uint32_t sb_rng_upto(struct sb_rng *r, uint32_t hi);

/* ---------------------------------------------------------------------------------------------
 * Backoff and budget
 * ------------------------------------------------------------------------------------------- */
struct sb_retry_policy {
    int32_t max;      /* retries after the first try, per backend; <= 0 = none */
    uint32_t base_ms; /* the cap of the first retry's delay; each retry doubles it */
    uint32_t max_ms;  /* no computed delay exceeds it (a larger Retry-After still wins) */
};

/* What one request has used of its retries. Plain data in the request's own state. */
struct sb_retry_budget {
    uint64_t deadline_ms; /* no retry is scheduled to begin after it (caller's clock); 0 = none */
    int32_t retries;      /* retries of the current backend so far */
};

/* The delay before retry number `retry` (0 for the first): full jitter, uniform in
 * [0, min(max_ms, base_ms * 2^retry)]. */
uint32_t sb_retry_backoff_ms(const struct sb_retry_policy *p, int32_t retry, struct sb_rng *rng);

/* Starts a request's budget: at now_ms, allowed total_ms in all (0 = no deadline). */
void sb_retry_budget_init(struct sb_retry_budget *b, uint64_t now_ms, uint32_t total_ms);

/* Decides whether the current backend gets one more try. The delay is the backoff, or
 * retry_after_ms (the provider's Retry-After, 0 = none) when that is larger. Returns true, with
 * the delay in *delay_ms, and counts the retry; returns false when p allows no more retries of
 * this backend, or when the retry would begin after the deadline (moving on beats waiting). */
bool sb_retry_next(const struct sb_retry_policy *p, struct sb_retry_budget *b, uint64_t now_ms,
                   uint32_t retry_after_ms, struct sb_rng *rng, uint32_t *delay_ms);

/* The request moves on to another backend: its retries start from zero, its deadline stays. */
void sb_retry_budget_next_backend(struct sb_retry_budget *b);

#endif
