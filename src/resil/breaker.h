/* A circuit breaker per backend: after enough consecutive failures it stops sending requests to
 * the backend for a while, then lets a few probe requests through to learn whether it recovered.
 * Shared by every I/O thread; time comes from an injectable clock so that tests need no sleeps. */
#ifndef SB_RESIL_BREAKER_H
#define SB_RESIL_BREAKER_H

#include "core/core.h"

/* The values are those of the switchboard_breaker_state gauge. */
enum sb_breaker_state {
    SB_BREAKER_CLOSED = 0,    /* requests flow; consecutive failures are counted */
    SB_BREAKER_HALF_OPEN = 1, /* at most `probes` requests are let through to test the backend */
    SB_BREAKER_OPEN = 2,      /* requests are refused until open_ms has passed */
};

/* How one admitted request went, as far as the backend's health is concerned. */
enum sb_breaker_outcome {
    SB_BREAKER_SUCCESS, /* the backend accepted the request and began answering */
    SB_BREAKER_FAILURE, /* the backend failed (unreachable, timed out, 5xx, 429, bad credentials) */
    SB_BREAKER_NEUTRAL, /* says nothing about the backend (the client's own error, a cancel) */
};

/* Milliseconds on a monotonic clock. ud is the params' clock_ud. Must be thread-safe. */
typedef uint64_t (*sb_breaker_clock_fn)(void *ud);

struct sb_breaker_params {
    int32_t failures;          /* consecutive failures that open it; <= 0 = it never opens */
    uint32_t open_ms;          /* how long it stays open before letting probes through */
    int32_t probes;            /* requests let through while half-open; < 1 counts as 1 */
    sb_breaker_clock_fn clock; /* NULL = sb_now_ns() in milliseconds */
    void *clock_ud;
};

/* The config's defaults (5 failures, 30 s open, 1 probe) and the monotonic clock. */
struct sb_breaker_params sb_breaker_default_params(void);

/* Permission for one request, from sb_breaker_acquire. Plain data: the caller keeps it in its own
 * per-request state and hands it back to sb_breaker_release exactly once. */
struct sb_breaker_ticket {
    bool admitted;  /* false: the breaker refused the request; releasing it does nothing */
    bool probe;     /* admitted as one of the half-open state's probes */
    uint32_t epoch; /* the state it was admitted in; a report from an older state is ignored */
};

struct sb_breaker;

/* Returns 0 and *out, a closed breaker whose gauge switchboard_breaker_state{backend=name} is set
 * to 0; or SB_ENOMEM / SB_EINVAL (name NULL or p NULL). name and *p are copied. The caller frees
 * it with sb_breaker_free after every ticket has been released. */
int sb_breaker_new(const char *name, const struct sb_breaker_params *p, struct sb_breaker **out);
/* Frees b. NULL is allowed. */
void sb_breaker_free(struct sb_breaker *b);

/* Asks to send one request. Returns true and fills *t (admitted) when the breaker is closed, or
 * half-open with a probe left (an open breaker whose open_ms has passed turns half-open here).
 * Returns false when it is open or every probe is out; *t is then not admitted. Thread-safe.
 * Every admitted ticket must be released exactly once, whatever happens to the request. */
bool sb_breaker_acquire(struct sb_breaker *b, struct sb_breaker_ticket *t);

/* Reports how the request of an admitted ticket went, and forgets the ticket (*t is marked not
 * admitted, so a second release is harmless). Closed: a failure adds one to the consecutive
 * failures and opens the breaker at the threshold, a success resets the count. Half-open: it
 * closes once `probes` probes have succeeded (the config's "all must succeed"; one by default),
 * a probe's failure opens it again, and a neutral outcome gives the probe's slot back.
 * Reports from a ticket admitted before the last state change are ignored. Thread-safe. */
void sb_breaker_release(struct sb_breaker *b, struct sb_breaker_ticket *t,
                        enum sb_breaker_outcome outcome);

/* What a breaker looks like now (for tests, logs and status pages). */
struct sb_breaker_stats {
    enum sb_breaker_state state;  /* as last changed; an open one past open_ms still says open */
    int32_t consecutive_failures; /* while closed */
    int32_t probes_out;           /* while half-open: probes admitted, successful ones included */
    uint64_t opened;              /* times it opened since it was created */
    uint64_t rejected;            /* requests it refused */
    uint32_t retry_in_ms;         /* while open: how long until it lets a probe through */
};

/* Fills *out. Thread-safe. */
void sb_breaker_stats(struct sb_breaker *b, struct sb_breaker_stats *out);
/* The name it was created with (borrowed for b's life). */
const char *sb_breaker_name(const struct sb_breaker *b);
/* A state's name: "closed", "half-open", "open". Static. */
const char *sb_breaker_state_name(enum sb_breaker_state s);

#endif
