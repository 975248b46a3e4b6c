/* The report module's private vocabulary: the numbers a report is built from, shared by the code
 * that gathers them (report.c), renders them (render.c) and advises from them (advise.c). Nothing
 * outside src/report (and its tests) includes this. */
#ifndef SB_REPORT_INTERNAL_H
#define SB_REPORT_INTERNAL_H

#include "ledger/ledger.h"
#include "report/infra.h"
#include "report/pricing.h"
#include "report/report.h"

/* round(a * b / c) for non-negative a, b and positive c, exact (128-bit intermediate); saturates
 * at INT64_MAX. */
int64_t sb__report_muldiv(int64_t a, int64_t b, int64_t c);
/* ceil(a * b / c), likewise. */
int64_t sb__report_muldiv_up(int64_t a, int64_t b, int64_t c);

/* Where a backend runs, from its config entry's kind (and, for OpenAI-compatible and Ollama
 * servers, whether its base_url is on this machine). */
enum sb__backend_class { SB__CLASS_LOCAL, SB__CLASS_CLOUD, SB__CLASS_UNKNOWN };

/* The percentiles every report shows, in this order. */
#define SB__N_PCT 3
extern const double sb__report_pcts[SB__N_PCT]; /* 50, 90, 99 */

struct sb__pct {
    int64_t count;       /* values measured (rows where the column is not NULL) */
    double v[SB__N_PCT]; /* p50, p90, p99; meaningful when count > 0 */
};

/* One backend's row of the report. */
struct sb__backend_stats {
    struct sb_ledger_agg agg;
    enum sb__backend_class cls;
    struct sb__pct latency, ttft, tps;
    int64_t cost_microusd; /* recorded cost for cloud rows; the infra estimate for local ones
                              (-1 when no infra model or throughput is known) */
    bool cost_estimated;   /* cost_microusd comes from the infra model, not the ledger */
};

/* Break-even: the monthly token volume from which local costs less than the compare model. */
enum sb__break_even {
    SB__BE_AT,                 /* local breaks even at volume_tokens_per_month */
    SB__BE_NEVER_PER_TOKEN,    /* cloud's price per token is at or below local's marginal cost */
    SB__BE_NEVER_CAPACITY,     /* the volume exceeds one machine's capacity: more machines add
                                  the same fixed cost, so local never catches up */
    SB__BE_UNKNOWN_INFRA,      /* no infra model configured */
    SB__BE_UNKNOWN_THROUGHPUT, /* no local throughput measured or assumed */
    SB__BE_UNKNOWN_PRICE,      /* the compare model has no price, or there was no traffic */
};

struct sb__report {
    /* The window. */
    int64_t since_ms, until_ms; /* rows with since <= ts < until */
    int64_t period_ms;          /* from the first row in the window (or since) to until, at
                                   least an hour: what "per month" extrapolates from */
    const char *compare_model;

    /* Totals and groups; the group arrays are owned. */
    struct sb_ledger_agg total;
    struct sb__backend_stats *backends;
    size_t n_backends;
    struct sb_ledger_agg *models, *keys, *classes; /* classes: by sensitivity */
    size_t n_models, n_keys, n_classes;
    int64_t local_context; /* prompts above this many tokens are "long"; 0 = no local model */

    /* Local and cloud, by class. */
    struct sb_ledger_agg local, cloud;
    struct sb__pct ttft_local, ttft_cloud;
    int64_t local_busy_ms, local_tokens; /* from sb_ledger_busy over the local backends */
    double tokens_per_s;                 /* measured, else infra.tokens_per_s, else 0 */
    bool tokens_per_s_measured;
    double utilization_measured; /* local busy time over the period */
    int64_t sensitive_requests;  /* a sensitive class, or PII found */

    /* Costs. */
    bool has_infra;
    struct sb_infra infra;
    struct sb_infra_hourly hourly;
    bool has_per_token;
    struct sb_infra_per_token per_token;
    bool compare_priced;
    struct sb_price compare_price;
    int64_t recorded_cost_microusd;  /* what the ledger says cloud requests cost */
    int64_t unpriced_requests;       /* cloud rows the ledger could not price */
    int64_t all_cloud_microusd;      /* every token at the compare model's prices; -1 = unknown */
    int64_t all_local_microusd;      /* every token on local machines; -1 = unknown */
    int64_t all_local_machines;      /* machines all-local needs at the planned utilization */
    int64_t cloud_microusd_per_mtok; /* all-cloud over the tokens; -1 = unknown */
    int64_t monthly_tokens;          /* the window's tokens extrapolated to a month */
    enum sb__break_even break_even;
    int64_t break_even_tokens_per_month; /* when break_even == SB__BE_AT */
};

/* Gathers and computes everything a report shows. On failure writes err and returns SB_EIO,
 * SB_EUNSUPPORTED (a ledger URL this build cannot read), SB_EINVAL or SB_ENOMEM. The caller frees
 * r with sb__report_free either way. */
int sb__report_build(const struct sb_report_params *p, struct sb__report *r, char *err,
                     size_t err_size);
void sb__report_free(struct sb__report *r);

/* Renderers: append the report to out. Return 0, SB_ENOMEM or SB_ETOOBIG. */
int sb__report_text(const struct sb__report *r, struct sb_buf *out);
int sb__report_json(const struct sb__report *r, struct sb_buf *out);
int sb__report_html(const struct sb__report *r, struct sb_buf *out);

/* Appends micro-dollars as dollars with cents and only the further decimals that carry
 * something ("$1,234.50", "$0.000150"), or "unknown" for a negative amount. Returns 0, SB_ENOMEM
 * or SB_ETOOBIG. */
int sb__append_usd(struct sb_buf *out, int64_t microusd);
/* Appends n with thousands separators ("1,234,567"). Returns as sb__append_usd. */
int sb__append_count(struct sb_buf *out, int64_t n);

#endif
