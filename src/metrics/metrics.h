/* The Prometheus registry: a fixed table of metrics, label sets resolved once into series that I/O
 * and engine threads update with relaxed atomics, and the text exposition format for /metrics. */
#ifndef SB_METRICS_H
#define SB_METRICS_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every metric Switchboard exports; docs/metrics.md says what each one means. The order is the
 * order of the exposition. */
enum sb_metric {
    SB_METRIC_REQUESTS,            /* counter {model,backend,status} */
    SB_METRIC_REQUEST_DURATION,    /* histogram, seconds {model,backend} */
    SB_METRIC_TTFT,                /* histogram, seconds {model,backend} */
    SB_METRIC_INTER_TOKEN,         /* histogram, seconds {model,backend} */
    SB_METRIC_TOKENS,              /* counter {model,backend,direction} */
    SB_METRIC_TOKENS_PER_SECOND,   /* histogram, tokens/s {model,backend} */
    SB_METRIC_COST,                /* counter, micro-dollars {model,backend} */
    SB_METRIC_QUEUE_DEPTH,         /* gauge {model} */
    SB_METRIC_QUEUE_SECONDS,       /* histogram, seconds {model} */
    SB_METRIC_BUSY_SLOTS,          /* gauge {model} */
    SB_METRIC_BREAKER_STATE,       /* gauge {backend}: 0 closed, 1 half-open, 2 open */
    SB_METRIC_RETRIES,             /* counter {backend} */
    SB_METRIC_FALLBACKS,           /* counter {from,to} */
    SB_METRIC_GATEWAY_OVERHEAD,    /* histogram, seconds */
    SB_METRIC_LEDGER_ROWS,         /* counter: rows committed to the ledger */
    SB_METRIC_LEDGER_DROPPED,      /* counter: rows dropped because the ledger's queue was full */
    SB_METRIC_LEDGER_WRITE_FAILED, /* counter: rows lost because a ledger write failed */
    SB_METRIC_ALERTS,              /* counter {type,outcome}: alert webhook deliveries */
    SB_METRIC_REFUSED,             /* counter {reason}: refused by keys, rate limits, budgets */
    SB_METRIC_BUDGET_DOWNGRADES,   /* counter: requests served locally because of a budget */
    SB_METRIC_COUNT
};

enum sb_metric_type { SB_METRIC_COUNTER, SB_METRIC_GAUGE, SB_METRIC_HISTOGRAM };

#define SB_METRICS_MAX_LABELS  3  /* label names per metric */
#define SB_METRICS_MAX_BUCKETS 16 /* finite histogram bounds per metric (+Inf is implied) */
/* Distinct label sets per metric. Past it, updates go to a sink that is never rendered and a
 * warning is logged once: label values come from configuration (model and backend names, status
 * codes), so reaching it means a caller passed something unbounded. */
#define SB_METRICS_MAX_SERIES 2048
/* A label value longer than this is cut (at a UTF-8 character boundary). */
#define SB_METRICS_MAX_LABEL_VALUE 128

/* One row of the metric table. */
struct sb_metric_def {
    const char *name;         /* full name, e.g. "switchboard_requests_total" */
    const char *help;         /* one line for # HELP */
    enum sb_metric_type type; /* counter, gauge or histogram */
    const char *labels[SB_METRICS_MAX_LABELS + 1]; /* label names, NULL-terminated */
    double buckets[SB_METRICS_MAX_BUCKETS];        /* histograms: increasing upper bounds */
    size_t n_buckets;                              /* how many of buckets are used */
    /* Histograms: _sum is kept as a whole number of 10^-sum_decimals units, so concurrent sums
     * are exact and render as exact decimals. Chosen per metric so that a busy gateway's sum does
     * not reach 2^64 units in years: 6 (microseconds) for request durations, 9 for the gateway's
     * sub-millisecond overhead. At most 9. */
    unsigned sum_decimals;
};

/* Returns the definition of id (static), or NULL when id is out of range. */
const struct sb_metric_def *sb_metrics_def(enum sb_metric id);

/* A metric with one set of label values: what updates act on. Opaque; lives until the process
 * ends (or sb_metrics_reset), so callers resolve one once and keep the pointer. */
struct sb_metric_series;

/* Returns the series of metric id for label values (as many as the metric has label names, in
 * their order; NULL or empty strings are the empty value; labels itself may be NULL for a metric
 * without labels). Never NULL: on out-of-memory, past SB_METRICS_MAX_SERIES or for an invalid id
 * it returns a sink whose updates are discarded. The values are copied; the caller keeps its
 * strings. Thread-safe; lock-free when the series exists, a short per-metric lock when it is new.
 */
struct sb_metric_series *sb_metrics_series(enum sb_metric id, const char *const *labels);

/* Updates. Each is a relaxed atomic operation, safe from any thread; a call that does not match
 * the series' type (adding to a histogram) does nothing. */
/* Counters: counts are whole numbers (requests, tokens, micro-dollars), so sums are exact. */
void sb_metrics_add(struct sb_metric_series *s, uint64_t n);
/* Gauges. */
void sb_metrics_set(struct sb_metric_series *s, int64_t v);
void sb_metrics_gauge_add(struct sb_metric_series *s, int64_t delta);
/* Histograms: v in the metric's unit (seconds for *_seconds). The sum adds v rounded to the
 * metric's sum_decimals. Negative and NaN values count as 0. */
void sb_metrics_observe(struct sb_metric_series *s, double v);

/* One-call forms for code off the hot path: resolve the series, then update it. */
void sb_metrics_counter_add(enum sb_metric id, const char *const *labels, uint64_t n);
void sb_metrics_gauge_set(enum sb_metric id, const char *const *labels, int64_t v);
void sb_metrics_histogram_observe(enum sb_metric id, const char *const *labels, double v);

/* Appends every metric in the text exposition format 0.0.4 (HELP and TYPE for each metric, even
 * one without series yet; series sorted by label values). Values read concurrently with updates
 * are each exact but not a single snapshot; a histogram's +Inf bucket always equals its _count.
 * Returns 0, SB_ENOMEM or SB_ETOOBIG (out then holds a partial text). */
int sb_metrics_render(struct sb_buf *out);

/* The Content-Type of what sb_metrics_render writes. */
#define SB_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* One series as sb_metrics_read sees it: the same loads the exposition makes, for in-process
 * readers (the dashboard) that must show exactly what /metrics shows. Everything it points to is
 * borrowed for the callback only. */
struct sb_metric_reading {
    const struct sb_metric_def *def; /* the metric's row */
    const char *const *labels;       /* def's label values, in the order of def->labels */
    uint64_t counter;                /* counters: the value */
    int64_t gauge;                   /* gauges: the value */
    /* Histograms: cumulative[b] counts observations <= def->buckets[b]; cumulative[n_buckets] is
     * the +Inf bucket, equal to count, as in the exposition. sum is _sum in the metric's unit. */
    const uint64_t *cumulative;
    uint64_t count;
    double sum;
};

typedef void (*sb_metrics_read_fn)(const struct sb_metric_reading *r, void *ud);

/* Calls fn(reading, ud) once for every series of metric id, in no particular order, with the
 * values each holds now (each exact, not one snapshot, as for sb_metrics_render). fn must not
 * create series. Returns 0, or SB_EINVAL for an invalid id. Thread-safe. */
int sb_metrics_read(enum sb_metric id, sb_metrics_read_fn fn, void *ud);

/* For tests: forgets every series, freeing them. Not thread-safe: no other thread may hold or use a
 * series, and pointers from sb_metrics_series become invalid. */
void sb_metrics_reset(void);

#ifdef __cplusplus
}
#endif

#endif
