/* Tests for the circuit breaker: every transition driven by a fake clock, the probe limit, stale
 * reports, the exported gauge, and exact counts under concurrent updates from many threads. */
#include "metrics/metrics.h"
#include "resil/breaker.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* A clock the test moves by hand. */
static _Atomic uint64_t fake_now;

static uint64_t fake_clock(void *ud)
{
    SB_UNUSED(ud);
    return atomic_load(&fake_now);
}

static void suite_init(void)
{
    sb_log_set_level(SB_LOG_ERROR);
    atomic_store(&fake_now, 1000);
}

TestSuite(breaker, .init = suite_init, .timeout = 60);

static struct sb_breaker *make(const char *name, int32_t failures, uint32_t open_ms, int32_t probes)
{
    struct sb_breaker_params p = sb_breaker_default_params();
    p.failures = failures;
    p.open_ms = open_ms;
    p.probes = probes;
    p.clock = fake_clock;
    struct sb_breaker *b = NULL;
    cr_assert_eq(sb_breaker_new(name, &p, &b), 0);
    return b;
}

static enum sb_breaker_state state_of(struct sb_breaker *b)
{
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    return st.state;
}

/* One request that ends with outcome; returns whether it was admitted. */
static bool request(struct sb_breaker *b, enum sb_breaker_outcome outcome)
{
    struct sb_breaker_ticket t;
    bool ok = sb_breaker_acquire(b, &t);
    sb_breaker_release(b, &t, outcome);
    return ok;
}

/* The gauge's value in the exposition, or -1 when the series is missing. */
static int gauge(const char *name)
{
    struct sb_buf out, key;
    sb_buf_init(&out, 1 << 22);
    sb_buf_init(&key, 256);
    cr_assert_eq(sb_metrics_render(&out), 0);
    cr_assert_eq(sb_buf_printf(&key, "switchboard_breaker_state{backend=\"%s\"} ", name), 0);
    int v = -1;
    ptrdiff_t at = sb_str_find(sb_buf_view(&out), sb_buf_view(&key));
    if (at >= 0)
        v = (int)strtol(out.p + at + key.len, NULL, 10);
    sb_buf_free(&out);
    sb_buf_free(&key);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * Transitions
 * ------------------------------------------------------------------------------------------- */
Test(breaker, starts_closed_and_admits_everything)
{
    struct sb_breaker *b = make("t-closed", 3, 1000, 1);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    cr_assert_eq(gauge("t-closed"), 0);
    for (int i = 0; i < 100; i++)
        cr_assert(request(b, SB_BREAKER_SUCCESS));
    cr_assert_str_eq(sb_breaker_name(b), "t-closed");
    sb_breaker_free(b);
}

Test(breaker, opens_after_consecutive_failures_only)
{
    struct sb_breaker *b = make("t-open", 3, 1000, 1);
    /* Two failures, a success (the count starts again), two failures: still closed. */
    request(b, SB_BREAKER_FAILURE);
    request(b, SB_BREAKER_FAILURE);
    request(b, SB_BREAKER_SUCCESS);
    request(b, SB_BREAKER_FAILURE);
    request(b, SB_BREAKER_FAILURE);
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_CLOSED);
    cr_assert_eq(st.consecutive_failures, 2);
    /* Neutral outcomes neither count nor reset. */
    request(b, SB_BREAKER_NEUTRAL);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    request(b, SB_BREAKER_FAILURE);
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);
    cr_assert_eq(st.opened, 1);
    cr_assert_eq(st.retry_in_ms, 1000);
    cr_assert_eq(gauge("t-open"), 2);
    /* Open: refused, and counted. */
    cr_assert_not(request(b, SB_BREAKER_SUCCESS));
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.rejected, 1);
    sb_breaker_free(b);
}

Test(breaker, open_turns_half_open_exactly_after_open_ms)
{
    struct sb_breaker *b = make("t-half", 1, 500, 1);
    request(b, SB_BREAKER_FAILURE);
    cr_assert_eq(state_of(b), SB_BREAKER_OPEN);
    atomic_fetch_add(&fake_now, 499);
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.retry_in_ms, 1);
    struct sb_breaker_ticket t;
    cr_assert_not(sb_breaker_acquire(b, &t));
    cr_assert_not(t.admitted);
    atomic_fetch_add(&fake_now, 1);
    cr_assert(sb_breaker_acquire(b, &t));
    cr_assert(t.probe);
    cr_assert_eq(state_of(b), SB_BREAKER_HALF_OPEN);
    cr_assert_eq(gauge("t-half"), 1);
    /* The probe succeeds: closed again. */
    sb_breaker_release(b, &t, SB_BREAKER_SUCCESS);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    cr_assert_eq(gauge("t-half"), 0);
    sb_breaker_free(b);
}

Test(breaker, a_failed_probe_reopens_for_another_open_ms)
{
    struct sb_breaker *b = make("t-reopen", 1, 100, 1);
    request(b, SB_BREAKER_FAILURE);
    atomic_fetch_add(&fake_now, 100);
    cr_assert(request(b, SB_BREAKER_FAILURE)); /* the probe, failing */
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);
    cr_assert_eq(st.opened, 2);
    cr_assert_eq(st.retry_in_ms, 100);
    atomic_fetch_add(&fake_now, 99);
    cr_assert_not(request(b, SB_BREAKER_SUCCESS));
    atomic_fetch_add(&fake_now, 1);
    cr_assert(request(b, SB_BREAKER_SUCCESS));
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    sb_breaker_free(b);
}

Test(breaker, half_open_admits_at_most_probes_and_needs_them_all)
{
    struct sb_breaker *b = make("t-probes", 1, 10, 2);
    request(b, SB_BREAKER_FAILURE);
    atomic_fetch_add(&fake_now, 10);
    struct sb_breaker_ticket p1, p2, p3;
    cr_assert(sb_breaker_acquire(b, &p1));
    cr_assert(sb_breaker_acquire(b, &p2));
    cr_assert_not(sb_breaker_acquire(b, &p3));
    /* A neutral probe gives its slot back. */
    sb_breaker_release(b, &p2, SB_BREAKER_NEUTRAL);
    cr_assert(sb_breaker_acquire(b, &p3));
    cr_assert(p3.probe);
    /* One success is not enough with two probes; a success keeps its slot. */
    sb_breaker_release(b, &p1, SB_BREAKER_SUCCESS);
    cr_assert_eq(state_of(b), SB_BREAKER_HALF_OPEN);
    struct sb_breaker_ticket p4;
    cr_assert_not(sb_breaker_acquire(b, &p4));
    sb_breaker_release(b, &p3, SB_BREAKER_SUCCESS);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    /* Releasing twice is harmless. */
    sb_breaker_release(b, &p3, SB_BREAKER_FAILURE);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    sb_breaker_free(b);
}

Test(breaker, reports_from_an_older_state_are_ignored)
{
    struct sb_breaker *b = make("t-stale", 2, 10, 1);
    struct sb_breaker_ticket old;
    cr_assert(sb_breaker_acquire(b, &old)); /* admitted while closed */
    request(b, SB_BREAKER_FAILURE);
    request(b, SB_BREAKER_FAILURE);
    cr_assert_eq(state_of(b), SB_BREAKER_OPEN);
    atomic_fetch_add(&fake_now, 10);
    struct sb_breaker_ticket probe;
    cr_assert(sb_breaker_acquire(b, &probe));
    /* The old request's success says nothing about the half-open backend. */
    sb_breaker_release(b, &old, SB_BREAKER_SUCCESS);
    cr_assert_eq(state_of(b), SB_BREAKER_HALF_OPEN);
    sb_breaker_release(b, &probe, SB_BREAKER_FAILURE);
    cr_assert_eq(state_of(b), SB_BREAKER_OPEN);
    sb_breaker_free(b);
}

Test(breaker, zero_failures_never_opens)
{
    struct sb_breaker *b = make("t-never", 0, 10, 1);
    for (int i = 0; i < 1000; i++)
        cr_assert(request(b, SB_BREAKER_FAILURE));
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    sb_breaker_free(b);
}

Test(breaker, a_lost_probe_does_not_hold_it_half_open_forever)
{
    struct sb_breaker *b = make("t-lost", 1, 50, 1);
    request(b, SB_BREAKER_FAILURE);
    atomic_fetch_add(&fake_now, 50);
    struct sb_breaker_ticket lost, next;
    cr_assert(sb_breaker_acquire(b, &lost)); /* never released */
    cr_assert_not(sb_breaker_acquire(b, &next));
    atomic_fetch_add(&fake_now, 50);
    cr_assert(sb_breaker_acquire(b, &next));
    /* The lost probe's late report belongs to the older epoch. */
    sb_breaker_release(b, &lost, SB_BREAKER_FAILURE);
    cr_assert_eq(state_of(b), SB_BREAKER_HALF_OPEN);
    sb_breaker_release(b, &next, SB_BREAKER_SUCCESS);
    cr_assert_eq(state_of(b), SB_BREAKER_CLOSED);
    sb_breaker_free(b);
}

Test(breaker, rejects_bad_arguments)
{
    struct sb_breaker *b = (struct sb_breaker *)1;
    struct sb_breaker_params p = sb_breaker_default_params();
    cr_assert_eq(sb_breaker_new(NULL, &p, &b), SB_EINVAL);
    cr_assert_null(b);
    cr_assert_eq(sb_breaker_new("x", NULL, &b), SB_EINVAL);
    sb_breaker_free(NULL);
    cr_assert_str_eq(sb_breaker_state_name(SB_BREAKER_HALF_OPEN), "half-open");
}

/* ---------------------------------------------------------------------------------------------
 * Concurrency: the same counts from 8 threads as from one
 * ------------------------------------------------------------------------------------------- */
enum { THREADS = 8, ITERS = 20000 };

struct worker {
    pthread_t tid;
    struct sb_breaker *b;
    enum sb_breaker_outcome outcome;
    int admitted;
};

static void *hammer(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ITERS; i++)
        w->admitted += request(w->b, w->outcome);
    return NULL;
}

static int run_workers(struct sb_breaker *b, enum sb_breaker_outcome outcome)
{
    struct worker w[THREADS];
    int admitted = 0;
    for (int i = 0; i < THREADS; i++) {
        w[i] = (struct worker){.b = b, .outcome = outcome};
        cr_assert_eq(pthread_create(&w[i].tid, NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].tid, NULL);
        admitted += w[i].admitted;
    }
    return admitted;
}

Test(breaker, concurrent_failures_sum_exactly)
{
    /* One below the threshold from all threads together: closed, with the exact count. */
    struct sb_breaker *b = make("t-sum", THREADS * ITERS + 1, 10, 1);
    cr_assert_eq(run_workers(b, SB_BREAKER_FAILURE), THREADS * ITERS);
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_CLOSED);
    cr_assert_eq(st.consecutive_failures, THREADS * ITERS);
    /* One more opens it, exactly once. */
    request(b, SB_BREAKER_FAILURE);
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);
    cr_assert_eq(st.opened, 1);
    sb_breaker_free(b);
}

Test(breaker, concurrent_failures_open_it_once_and_the_rest_are_rejected)
{
    /* Opens at exactly the threshold-th failure; with the clock still, everything after it is
     * refused, so admitted + rejected is every request and admitted is the threshold plus the
     * stale reports of requests admitted while it was closed (at most one per thread). */
    struct sb_breaker *b = make("t-race", 1000, 10, 1);
    int admitted = run_workers(b, SB_BREAKER_FAILURE);
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);
    cr_assert_eq(st.opened, 1);
    cr_assert_eq((uint64_t)admitted + st.rejected, (uint64_t)THREADS * ITERS);
    cr_assert(admitted >= 1000 && admitted < 1000 + THREADS, "admitted %d", admitted);
    sb_breaker_free(b);
}

struct prober {
    pthread_t tid;
    struct sb_breaker *b;
    int admitted;
};

static void *probe_hard(void *arg)
{
    struct prober *p = arg;
    for (int i = 0; i < ITERS; i++) {
        struct sb_breaker_ticket t;
        p->admitted += sb_breaker_acquire(p->b, &t); /* never released: the slots stay taken */
    }
    return NULL;
}

Test(breaker, concurrent_probes_never_exceed_the_limit)
{
    struct sb_breaker *b = make("t-probe-race", 1, 10, 3);
    request(b, SB_BREAKER_FAILURE);
    atomic_fetch_add(&fake_now, 10);
    struct prober p[THREADS];
    int admitted = 0;
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct prober){.b = b};
        cr_assert_eq(pthread_create(&p[i].tid, NULL, probe_hard, &p[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(p[i].tid, NULL);
        admitted += p[i].admitted;
    }
    cr_assert_eq(admitted, 3);
    struct sb_breaker_stats st;
    sb_breaker_stats(b, &st);
    cr_assert_eq(st.probes_out, 3);
    cr_assert_eq(st.rejected, (uint64_t)THREADS * ITERS - 3);
    sb_breaker_free(b);
}
