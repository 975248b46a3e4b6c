/* The infra cost model: what owning local inference hardware costs per month, per hour and per
 * token, from the config's `infra:` section and the throughput the ledger measured. */
#ifndef SB_REPORT_INFRA_H
#define SB_REPORT_INFRA_H

#include "config/config.h"
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hours in a month: a year's 8760 over 12. Every "per month" figure uses it. */
#define SB_INFRA_HOURS_PER_MONTH 730

/* The model's inputs as exact integers: every decimal of the config in millionths of its unit. */
struct sb_infra {
    int64_t hardware_microusd;              /* purchase price of the hardware */
    int64_t depreciation_microyears;        /* written off over this long; > 0 */
    int64_t power_microwatts;               /* draw while serving requests */
    int64_t electricity_microusd_per_kwh;   /* price of energy */
    int64_t utilization_ppm;                /* planned busy share of the time, 1..10^6 */
    int64_t engineer_microhours_per_month;  /* people's time the hardware takes */
    int64_t engineer_microusd_per_hour;     /* what that time costs */
    int64_t maintenance_microusd_per_month; /* hosting, support contracts, spares */
    int64_t tokens_per_s_micro;             /* throughput to assume when none was measured; 0 */
};

/* Reads cfg->infra. Returns 0; SB_ENOTFOUND when the section sets none of hardware_usd,
 * power_watts, engineer_hours_per_month or maintenance_usd_per_month (no model: local cost is
 * unknown, never 0); SB_EINVAL with a line in err for a malformed value (which sb_config_parse
 * has already refused, so only hand-built configs reach it). */
int sb_infra_from_config(const struct sb_infra_config *cfg, struct sb_infra *out, char *err,
                         size_t err_size);

/* Costs by the hour and month, in micro-dollars, each rounded to the nearest:
 *   fixed per month   = hardware / (depreciation_years * 12)
 *                       + engineer_hours_per_month * engineer_usd_per_hour + maintenance
 *   fixed per hour    = fixed per month / 730
 *   power per busy h  = power_watts / 1000 * electricity_usd_per_kwh
 *   per hour          = fixed per hour + power per busy hour * utilization
 * Power is the only cost that grows with use (idle draw is not modelled): it is the marginal
 * cost; the rest is paid whether the hardware serves or not. */
struct sb_infra_hourly {
    int64_t fixed_microusd_per_month;
    int64_t fixed_microusd_per_hour;
    int64_t power_microusd_per_busy_hour;
    int64_t microusd_per_hour; /* the average hour at the planned utilization */
};

void sb_infra_hourly(const struct sb_infra *in, struct sb_infra_hourly *out);

/* Per-token costs at a throughput of tokens_per_s (prompt and completion tokens served per second
 * of busy time), in micro-dollars per million tokens, rounded to the nearest:
 *   all-in   = per hour / (tokens_per_s * utilization * 3600) * 10^6
 *   marginal = power per busy hour / (tokens_per_s * 3600) * 10^6
 *   capacity = tokens_per_s * utilization * 3600 * 730 tokens a month (one machine)
 * Returns 0, or SB_EINVAL when tokens_per_s is not above zero. */
struct sb_infra_per_token {
    int64_t microusd_per_mtok;          /* all-in: what a token costs at the planned use */
    int64_t marginal_microusd_per_mtok; /* what one more token costs */
    int64_t capacity_tokens_per_month;  /* what one machine serves at the planned use */
};

int sb_infra_per_token(const struct sb_infra *in, double tokens_per_s,
                       struct sb_infra_per_token *out);

/* Throughput from the ledger: tokens served over busy time, where busy time is the union of the
 * requests' [arrival, arrival + latency] intervals (so concurrent requests are not counted twice
 * and idle gaps not at all). Returns tokens per second, or 0 when busy_ms is not above zero. */
double sb_infra_throughput(int64_t tokens, int64_t busy_ms);

#ifdef __cplusplus
}
#endif

#endif
