/* The alert module's private vocabulary: the alerts object that alert.c (raising alerts) and
 * send.c (the queue and the sender thread) share. Nothing outside src/alert (and its tests)
 * includes this. */
#ifndef SB_ALERT_INTERNAL_H
#define SB_ALERT_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "alert/alert.h"
#include "metrics/metrics.h"

/* The kinds of alert; indexes of sb__alert_type_names. */
enum sb__alert_type { SB__ALERT_SPEND_SPIKE, SB__ALERT_BUDGET, SB__ALERT_TYPES };

/* What happened to an alert meant for the webhook; indexes of the metric's outcome label. */
enum sb__alert_outcome { SB__ALERT_SENT, SB__ALERT_FAILED, SB__ALERT_DROPPED, SB__ALERT_OUTCOMES };

/* "spend_spike", "budget_threshold": the JSON "type" and the metric's label. Static. */
extern const char *const sb__alert_type_names[SB__ALERT_TYPES];

/* One alert waiting for the sender. */
struct sb__alert_item {
    enum sb__alert_type type;
    char *body; /* owned: the JSON to POST */
    size_t len;
};

struct sb_alerts {
    /* Set by sb_alert_new, read-only afterwards. */
    char *url;      /* owned; NULL = log only (no sender thread) */
    char *instance; /* owned */
    uint32_t timeout_ms, backoff_ms, drain_ms;
    int retries;

    /* The spike detector, behind its own lock: I/O threads feed it. NULL = not watching. */
    pthread_mutex_t spike_lock;
    struct sb_alert_spike *spike;
    int64_t factor_micros, min_micros; /* the detector's thresholds, for messages */

    /* The queue: a ring of items under lock. wake tells the sender there is work or a stop; idle
     * tells flushes that the queue emptied. */
    pthread_mutex_t lock;
    pthread_cond_t wake, idle;
    struct sb__alert_item *ring; /* owned, cap items */
    size_t cap, first, count;
    bool busy;            /* the sender is posting an item it took */
    bool stopping;        /* sb_alert_free has begun: nothing new is queued */
    uint64_t deadline_ns; /* once stopping: the sender gives up on what is left after this */
    bool thread_started;
    pthread_t thread;

    /* Counts (sb_alert_stats) and their metric series by type and outcome. */
    _Atomic uint64_t raised;
    _Atomic uint64_t outcomes[SB__ALERT_OUTCOMES];
    struct sb_metric_series *m[SB__ALERT_TYPES][SB__ALERT_OUTCOMES];
};

/* Makes the queue's lock and condition variables. Returns 0 or SB_ENOMEM (nothing to undo). */
int sb__alert_queue_init(struct sb_alerts *a);
/* Frees them and whatever items are left. The sender must not be running. */
void sb__alert_queue_deinit(struct sb_alerts *a);
/* Starts the sender thread. Returns 0 or SB_EIO. */
int sb__alert_sender_start(struct sb_alerts *a);
/* Tells the sender to post what is queued until drain_ms from now, then joins it. */
void sb__alert_sender_stop(struct sb_alerts *a);
/* Queues body (taking it: it is freed here when it cannot be queued). A full queue or a stopping
 * sender drops it: counted, and logged. Any thread. */
void sb__alert_enqueue(struct sb_alerts *a, enum sb__alert_type type, char *body, size_t len);
/* Counts one alert's outcome in the stats and the metric. */
void sb__alert_count(struct sb_alerts *a, enum sb__alert_type type, enum sb__alert_outcome o);

#endif
