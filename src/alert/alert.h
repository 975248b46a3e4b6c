/* Alerts: spend spikes (the recent spend rate against its trailing average) and budget thresholds,
 * each logged as one WARN line and posted as JSON to a webhook by a sender thread of its own, so
 * that raising an alert never waits on the network. docs/alerts.md describes the JSON. */
#ifndef SB_ALERT_H
#define SB_ALERT_H

#include "config/config.h"
#include "core/core.h"

/* ---------------------------------------------------------------------------------------------
 * The spend-spike detector: pure logic over an injected clock (milliseconds of any monotonic
 * clock, never negative), so that tests drive it exactly. Not thread-safe; struct sb_alerts
 * serializes its calls.
 *
 * Spend is summed in buckets of sb_alert_spike_bucket_ms(): the window is the latest
 * window_buckets of them (the current one included), the baseline the baseline_buckets before
 * it. Memory is one int64 per bucket, at most SB_ALERT_SPIKE_MAX_BUCKETS.
 * ------------------------------------------------------------------------------------------- */
#define SB_ALERT_SPIKE_MAX_BUCKETS 8192

struct sb_alert_spike_params {
    int64_t window_ms;     /* > 0 */
    int64_t baseline_ms;   /* > window_ms */
    int64_t factor_micros; /* the rate ratio that is a spike, in millionths; > 1000000 */
    int64_t min_micros;    /* the least window spend that may be a spike, micro-dollars; >= 0 */
};

/* What a spike is reported with. Amounts in micro-dollars. */
struct sb_alert_spike_report {
    int64_t window_micros;   /* spent in the window */
    int64_t baseline_micros; /* spent in the baseline before it (its observed part) */
    int64_t expected_micros; /* a window's spend at the baseline's average rate; 0 = no baseline */
    int64_t window_ms;       /* the window and baseline as measured: whole buckets, and the */
    int64_t baseline_ms;     /* baseline only as far back as the detector has been watching */
};

struct sb_alert_spike;

/* The bucket length the detector uses for these spans: the shortest of 1 s, 2 s, 5 s, 10 s, 15 s,
 * 30 s, 1 min, 2 min, 5 min, 10 min, 15 min, 30 min, 1 h and 2 h that keeps window and baseline
 * within SB_ALERT_SPIKE_MAX_BUCKETS buckets (2 h if none does). */
int64_t sb_alert_spike_bucket_ms(int64_t window_ms, int64_t baseline_ms);

/* Makes a detector that starts watching at now_ms: the baseline counts only time since then.
 * Returns 0 and *out (the caller frees it with sb_alert_spike_free), SB_EINVAL for params
 * outside their ranges (above) or spans needing more than SB_ALERT_SPIKE_MAX_BUCKETS buckets, or
 * SB_ENOMEM. */
int sb_alert_spike_new(const struct sb_alert_spike_params *p, int64_t now_ms,
                       struct sb_alert_spike **out);
/* NULL is allowed. */
void sb_alert_spike_free(struct sb_alert_spike *d);

/* Adds cost_micros (<= 0: nothing is added) spent at now_ms (a time before the latest one seen
 * counts as the latest) and returns true, with *out filled, when the window is now a spike: its
 * spend is at least min_micros and either the baseline saw no spend or the window's rate is at
 * least factor times the baseline's average rate (the baseline's spend over its observed length).
 * After a spike no other is reported until a window's length has passed. */
bool sb_alert_spike_add(struct sb_alert_spike *d, int64_t now_ms, int64_t cost_micros,
                        struct sb_alert_spike_report *out);

/* ---------------------------------------------------------------------------------------------
 * Alerts
 * ------------------------------------------------------------------------------------------- */
struct sb_alerts;

struct sb_alert_params {
    const char *webhook_url; /* NULL = alerts are only logged; copied */
    uint32_t timeout_ms;     /* one POST; 0 = none */
    int retries;             /* after a 5xx or a connection failure */
    uint32_t backoff_ms;     /* the wait before the first retry, doubled for each next one */
    uint32_t drain_ms;       /* how long sb_alert_free keeps posting what is queued */
    const char *instance;    /* this gateway's name in alerts, copied; NULL = the host name */
    size_t queue_size;       /* alerts waiting for the sender (> 0); more are dropped */
    bool spike;              /* watch for spend spikes with spike_params */
    struct sb_alert_spike_params spike_params;
};

/* What sb_alert_config_params fills in besides the config's own values. */
#define SB_ALERT_BACKOFF_MS 1000
#define SB_ALERT_DRAIN_MS   5000

/* Starts the sender thread (when p has a webhook URL). Returns 0 and *out, which the caller frees
 * with sb_alert_free; SB_EINVAL (bad params), SB_ENOMEM or SB_EIO (no thread), with a message in
 * err (NUL-terminated, at most err_size bytes). */
int sb_alert_new(const struct sb_alert_params *p, struct sb_alerts **out, char *err,
                 size_t err_size);

/* The params of an `alerts:` section (its decimals read exactly). Borrows the config's strings:
 * use the result before the config is freed. Returns 0, or SB_EINVAL with a message in err. */
int sb_alert_config_params(const struct sb_alerts_config *c, struct sb_alert_params *p, char *err,
                           size_t err_size);

/* sb_alert_config_params then sb_alert_new, for `serve`: 0 with *out NULL when the config has no
 * `alerts:` section (alerts off; every sb_alert_* function takes NULL and does nothing). */
int sb_alert_from_config(const struct sb_alerts_config *c, struct sb_alerts **out, char *err,
                         size_t err_size);

/* Stops accepting alerts, keeps posting the queued ones for at most drain_ms (plus one POST's
 * timeout at worst, since a POST under way is not interrupted), counts what is left as failed,
 * then joins the sender and frees a. NULL is allowed. */
void sb_alert_free(struct sb_alerts *a);

/* A request was priced at cost_micros (<= 0, e.g. -1 for unpriced: ignored) at now_ms (the
 * sb_now_ns() clock in milliseconds). Raises a spend_spike alert when the detector says so.
 * Thread-safe; never waits on the network (a short lock, one log line). a may be NULL. */
void sb_alert_spend(struct sb_alerts *a, int64_t now_ms, int64_t cost_micros);

/* A budget crossed a threshold: raises a budget_threshold alert. alerts is a struct sb_alerts *
 * (void * so the budget module can hold it as a callback's argument) and may be NULL; scope is
 * "key", "team" or "global" (anything else is logged and dropped); name the key or team (NULL or
 * "" for global); percent the threshold crossed (50, 80, 100); amounts in micro-dollars. Borrows
 * the strings for the call. Thread-safe from any thread; never waits on the network. */
void sb_alert_budget(void *alerts /* struct sb_alerts * */, const char *scope, const char *name,
                     int percent, int64_t spent_micros, int64_t limit_micros);

/* Counts since sb_alert_new, for tests and logs. */
struct sb_alert_stats {
    uint64_t raised;  /* alerts logged */
    uint64_t sent;    /* POSTs answered with 2xx */
    uint64_t failed;  /* given up on: retries spent, a 4xx, or left at shutdown */
    uint64_t dropped; /* not queued: the queue was full */
};
void sb_alert_stats(const struct sb_alerts *a, struct sb_alert_stats *out);

/* Waits until every queued alert has been posted or given up on, or timeout_ms has passed.
 * Returns true when the queue is empty and the sender idle. For tests and orderly shutdowns. */
bool sb_alert_flush(struct sb_alerts *a, uint32_t timeout_ms);

#endif
