/* The circuit breaker's state machine: one small mutex per breaker, and one function,
 * breaker_set_state, through which every transition goes so that each is logged and exported. */
#include "resil/breaker.h"

#include "metrics/metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct sb_breaker {
    pthread_mutex_t mu;
    char *name;
    struct sb_breaker_params p;
    struct sb_metric_series *gauge; /* switchboard_breaker_state{backend=name} */
    /* Guarded by mu. */
    enum sb_breaker_state state;
    uint32_t epoch;      /* bumped by every transition; tickets carry the one they got */
    uint64_t since_ms;   /* when the current state began */
    int32_t consecutive; /* closed: failures in a row */
    int32_t probes_out;  /* half-open: probes admitted and not yet released */
    int32_t probes_ok;   /* half-open: probes that succeeded */
    uint64_t opened, rejected;
};

static uint64_t monotonic_ms(void *ud)
{
    SB_UNUSED(ud);
    return sb_now_ns() / 1000000u;
}

struct sb_breaker_params sb_breaker_default_params(void)
{
    return (struct sb_breaker_params){
        .failures = 5, .open_ms = 30000, .probes = 1, .clock = monotonic_ms, .clock_ud = NULL};
}

const char *sb_breaker_state_name(enum sb_breaker_state s)
{
    static const char *const names[] = {
        [SB_BREAKER_CLOSED] = "closed",
        [SB_BREAKER_HALF_OPEN] = "half-open",
        [SB_BREAKER_OPEN] = "open",
    };
    return (size_t)s < SB_ARRAY_LEN(names) ? names[s] : "?";
}

static uint64_t now_ms(const struct sb_breaker *b)
{
    return b->p.clock(b->p.clock_ud);
}

/* Milliseconds since the current state began (0 if a test's clock went backwards). */
static uint64_t in_state_ms(const struct sb_breaker *b, uint64_t now)
{
    return now >= b->since_ms ? now - b->since_ms : 0;
}

/* The only place the state changes. Called with mu held. A transition to the state it is already
 * in still starts a new epoch (a half-open breaker whose probes never came back re-arms itself). */
static void breaker_set_state(struct sb_breaker *b, enum sb_breaker_state to, uint64_t now,
                              const char *why)
{
    enum sb_breaker_state from = b->state;
    b->state = to;
    b->epoch++;
    b->since_ms = now;
    b->consecutive = 0;
    b->probes_out = 0;
    b->probes_ok = 0;
    if (to == SB_BREAKER_OPEN)
        b->opened++;
    sb_metrics_set(b->gauge, (int64_t)to);
    sb_log(to == SB_BREAKER_OPEN ? SB_LOG_WARN : SB_LOG_INFO, NULL,
           "backend %s: circuit breaker %s -> %s (%s)", b->name, sb_breaker_state_name(from),
           sb_breaker_state_name(to), why);
}

int sb_breaker_new(const char *name, const struct sb_breaker_params *p, struct sb_breaker **out)
{
    *out = NULL;
    if (name == NULL || p == NULL)
        return SB_EINVAL;
    struct sb_breaker *b = calloc(1, sizeof *b);
    if (b == NULL)
        goto fail;
    b->name = strdup(name);
    if (b->name == NULL || pthread_mutex_init(&b->mu, NULL) != 0)
        goto fail;
    b->p = *p;
    if (b->p.clock == NULL) {
        b->p.clock = monotonic_ms;
        b->p.clock_ud = NULL;
    }
    if (b->p.probes < 1)
        b->p.probes = 1;
    const char *const labels[] = {b->name};
    b->gauge = sb_metrics_series(SB_METRIC_BREAKER_STATE, labels);
    b->state = SB_BREAKER_CLOSED;
    b->since_ms = now_ms(b);
    sb_metrics_set(b->gauge, SB_BREAKER_CLOSED);
    *out = b;
    return 0;
fail:
    if (b != NULL)
        free(b->name);
    free(b);
    return SB_ENOMEM;
}

void sb_breaker_free(struct sb_breaker *b)
{
    if (b == NULL)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b->name);
    free(b);
}

const char *sb_breaker_name(const struct sb_breaker *b)
{
    return b->name;
}

bool sb_breaker_acquire(struct sb_breaker *b, struct sb_breaker_ticket *t)
{
    *t = (struct sb_breaker_ticket){0};
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ms(b);
    if (b->state == SB_BREAKER_OPEN && in_state_ms(b, now) >= b->p.open_ms)
        breaker_set_state(b, SB_BREAKER_HALF_OPEN, now, "open time passed; probing");
    /* A probe that was never released (its owner lost it) must not hold the breaker half-open
     * forever: after another open_ms with every probe out, start probing afresh. */
    if (b->state == SB_BREAKER_HALF_OPEN && b->probes_out >= b->p.probes &&
        in_state_ms(b, now) >= b->p.open_ms)
        breaker_set_state(b, SB_BREAKER_HALF_OPEN, now,
                          "probes did not report back; probing again");
    switch (b->state) {
    case SB_BREAKER_CLOSED: t->admitted = true; break;
    case SB_BREAKER_HALF_OPEN:
        if (b->probes_out < b->p.probes) {
            b->probes_out++;
            t->admitted = true;
            t->probe = true;
        }
        break;
    case SB_BREAKER_OPEN: break;
    }
    t->epoch = b->epoch;
    if (!t->admitted)
        b->rejected++;
    pthread_mutex_unlock(&b->mu);
    return t->admitted;
}

void sb_breaker_release(struct sb_breaker *b, struct sb_breaker_ticket *t,
                        enum sb_breaker_outcome outcome)
{
    if (!t->admitted)
        return;
    t->admitted = false;
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ms(b);
    if (t->epoch != b->epoch) {
        /* Admitted before the last transition: what it says is about an older state. */
    } else if (b->state == SB_BREAKER_CLOSED) {
        if (outcome == SB_BREAKER_SUCCESS) {
            b->consecutive = 0;
        } else if (outcome == SB_BREAKER_FAILURE) {
            b->consecutive++;
            if (b->p.failures > 0 && b->consecutive >= b->p.failures)
                breaker_set_state(b, SB_BREAKER_OPEN, now,
                                  "consecutive failures reached the limit");
        }
    } else if (b->state == SB_BREAKER_HALF_OPEN && t->probe) {
        /* A successful probe keeps its slot, so at most `probes` are ever let through. */
        if (outcome == SB_BREAKER_FAILURE)
            breaker_set_state(b, SB_BREAKER_OPEN, now, "a probe failed");
        else if (outcome == SB_BREAKER_SUCCESS && ++b->probes_ok >= b->p.probes)
            breaker_set_state(b, SB_BREAKER_CLOSED, now, "every probe succeeded");
        else if (outcome == SB_BREAKER_NEUTRAL && b->probes_out > 0)
            b->probes_out--;
    }
    pthread_mutex_unlock(&b->mu);
}

void sb_breaker_stats(struct sb_breaker *b, struct sb_breaker_stats *out)
{
    pthread_mutex_lock(&b->mu);
    uint64_t now = now_ms(b);
    out->state = b->state;
    out->consecutive_failures = b->consecutive;
    out->probes_out = b->probes_out;
    out->opened = b->opened;
    out->rejected = b->rejected;
    out->retry_in_ms = 0;
    if (b->state == SB_BREAKER_OPEN && in_state_ms(b, now) < b->p.open_ms)
        out->retry_in_ms = (uint32_t)(b->p.open_ms - in_state_ms(b, now));
    pthread_mutex_unlock(&b->mu);
}
