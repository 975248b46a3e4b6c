/* Tests for the infra cost model: dollars per month, hour and token checked against figures
 * computed by hand, an unconfigured model reported as unknown, and throughput from busy time. */
#include <criterion/criterion.h>
#include <string.h>

#include "report/infra.h"

/* A $30,000 machine over 3 years, 700 W at $0.15/kWh, busy half the time, 10 engineer hours a
 * month at $100 and $50 a month of maintenance. */
static const struct sb_infra_config example = {
    .hardware_usd = "30000",
    .depreciation_years = "3",
    .power_watts = "700",
    .electricity_usd_per_kwh = "0.15",
    .utilization = "0.5",
    .engineer_hours_per_month = "10",
    .engineer_usd_per_hour = "100",
    .maintenance_usd_per_month = "50",
};

Test(infra, hourly_by_hand)
{
    struct sb_infra in;
    char err[256] = "";
    cr_assert_eq(sb_infra_from_config(&example, &in, err, sizeof err), 0, "%s", err);
    cr_assert_eq(in.hardware_microusd, 30000000000);
    cr_assert_eq(in.utilization_ppm, 500000);
    struct sb_infra_hourly h;
    sb_infra_hourly(&in, &h);
    /* Depreciation $30,000 / 36 months = $833.333333 (833,333,333 u$, rounded); people
     * 10 h * $100 = $1,000; maintenance $50: $1,883.333333 a month. */
    cr_assert_eq(h.fixed_microusd_per_month, 1883333333);
    /* / 730 hours = 2,579,908.68 -> 2,579,909 u$ an hour. */
    cr_assert_eq(h.fixed_microusd_per_hour, 2579909);
    /* 0.7 kW * $0.15 = $0.105 per busy hour. */
    cr_assert_eq(h.power_microusd_per_busy_hour, 105000);
    /* The average hour: fixed + power * 0.5 = 2,579,909 + 52,500. */
    cr_assert_eq(h.microusd_per_hour, 2632409);
}

Test(infra, per_token_by_hand)
{
    struct sb_infra in;
    char err[256] = "";
    cr_assert_eq(sb_infra_from_config(&example, &in, err, sizeof err), 0, "%s", err);
    struct sb_infra_per_token t;
    cr_assert_eq(sb_infra_per_token(&in, 50.0, &t), 0);
    /* 50 tokens/s busy half the time: 90,000 tokens an hour. $2.632409 / 90,000 tokens =
     * $29.248989 per million (29,248,988.9 -> 29,248,989 u$). */
    cr_assert_eq(t.microusd_per_mtok, 29248989);
    /* Power alone: $0.105 per 180,000 busy tokens = $0.583333 per million. */
    cr_assert_eq(t.marginal_microusd_per_mtok, 583333);
    /* 90,000 tokens an hour * 730 hours. */
    cr_assert_eq(t.capacity_tokens_per_month, 65700000);
    cr_assert_eq(sb_infra_per_token(&in, 0, &t), SB_EINVAL);
    cr_assert_eq(sb_infra_per_token(&in, -1, &t), SB_EINVAL);
}

Test(infra, defaults_and_unconfigured)
{
    struct sb_infra in;
    char err[256] = "";
    struct sb_infra_config none = {0};
    cr_assert_eq(sb_infra_from_config(&none, &in, err, sizeof err), SB_ENOTFOUND);
    /* The config's defaults alone do not make a model either. */
    struct sb_infra_config defaults = {.depreciation_years = "3", .utilization = "0.5"};
    cr_assert_eq(sb_infra_from_config(&defaults, &in, err, sizeof err), SB_ENOTFOUND);
    /* Power alone does: depreciation and utilization take their defaults (3 years, 0.5). */
    struct sb_infra_config power = {.power_watts = "1000", .electricity_usd_per_kwh = "0.2"};
    cr_assert_eq(sb_infra_from_config(&power, &in, err, sizeof err), 0, "%s", err);
    cr_assert_eq(in.depreciation_microyears, 3000000);
    cr_assert_eq(in.utilization_ppm, 500000);
    struct sb_infra_hourly h;
    sb_infra_hourly(&in, &h);
    cr_assert_eq(h.fixed_microusd_per_month, 0);
    cr_assert_eq(h.power_microusd_per_busy_hour, 200000);
    cr_assert_eq(h.microusd_per_hour, 100000);
    struct sb_infra_config bad = {.hardware_usd = "lots"};
    cr_assert_eq(sb_infra_from_config(&bad, &in, err, sizeof err), SB_EINVAL);
    cr_assert_not_null(strstr(err, "infra.hardware_usd"), "%s", err);
    struct sb_infra_config zero_util = {.hardware_usd = "1", .utilization = "0"};
    cr_assert_eq(sb_infra_from_config(&zero_util, &in, err, sizeof err), SB_EINVAL);
}

Test(infra, throughput_from_busy_time)
{
    cr_assert_float_eq(sb_infra_throughput(9000, 3600), 2500.0, 1e-9);
    cr_assert_float_eq(sb_infra_throughput(50, 1000), 50.0, 1e-9);
    cr_assert_eq(sb_infra_throughput(100, 0), 0);
    cr_assert_eq(sb_infra_throughput(0, 100), 0);
}
