/* The infra cost model in integer micro-dollars: hardware depreciation, people and maintenance as
 * fixed monthly costs, power as the marginal one, and per-token costs at a measured throughput. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/internal.h"

/* GCC and Clang have a 128-bit integer on every 64-bit target we build for. */
__extension__ typedef unsigned __int128 u128;

/* a * b / c with the remainder rounded as bias says: c / 2 to the nearest, c - 1 up. */
static int64_t muldiv(int64_t a, int64_t b, int64_t c, bool up)
{
    if (a <= 0 || b <= 0 || c <= 0)
        return 0;
    u128 prod = (u128)a * (u128)b;
    u128 q = (prod + (up ? (u128)c - 1 : (u128)c / 2)) / (u128)c;
    return q > (u128)INT64_MAX ? INT64_MAX : (int64_t)q;
}

int64_t sb__report_muldiv(int64_t a, int64_t b, int64_t c)
{
    return muldiv(a, b, c, false);
}

int64_t sb__report_muldiv_up(int64_t a, int64_t b, int64_t c)
{
    return muldiv(a, b, c, true);
}

/* ---------------------------------------------------------------------------------------------
 * Config
 * ------------------------------------------------------------------------------------------- */
/* Upper bounds, generous but small enough that no product below overflows 128 bits. */
#define MICRO         1000000
#define MAX_USD       ((int64_t)1000000000 * MICRO) /* a billion dollars */
#define MAX_YEARS     ((int64_t)100 * MICRO)
#define MAX_WATTS     ((int64_t)100000000 * MICRO) /* 100 MW */
#define MAX_PER_KWH   ((int64_t)1000 * MICRO)
#define MAX_HOURS     ((int64_t)100000 * MICRO)
#define MAX_PER_HOUR  ((int64_t)1000000 * MICRO)
#define MAX_TOKENS_PS ((int64_t)100000000 * MICRO)

/* One row per key of the `infra:` section: where its text is, where its number goes, its bounds,
 * and whether setting it means an infra model is configured. */
#define TEXT(member) offsetof(struct sb_infra_config, member)
#define NUM(member)  offsetof(struct sb_infra, member)

static const struct {
    const char *key;
    size_t text, num;
    int64_t min, max;
    bool costs; /* a cost: setting it configures the model */
} infra_keys[] = {
    {"hardware_usd", TEXT(hardware_usd), NUM(hardware_microusd), 0, MAX_USD, true},
    {"depreciation_years", TEXT(depreciation_years), NUM(depreciation_microyears), 1, MAX_YEARS,
     false},
    {"power_watts", TEXT(power_watts), NUM(power_microwatts), 0, MAX_WATTS, true},
    {"electricity_usd_per_kwh", TEXT(electricity_usd_per_kwh), NUM(electricity_microusd_per_kwh), 0,
     MAX_PER_KWH, false},
    {"utilization", TEXT(utilization), NUM(utilization_ppm), 1, MICRO, false},
    {"engineer_hours_per_month", TEXT(engineer_hours_per_month), NUM(engineer_microhours_per_month),
     0, MAX_HOURS, true},
    {"engineer_usd_per_hour", TEXT(engineer_usd_per_hour), NUM(engineer_microusd_per_hour), 0,
     MAX_PER_HOUR, false},
    {"maintenance_usd_per_month", TEXT(maintenance_usd_per_month),
     NUM(maintenance_microusd_per_month), 0, MAX_USD, true},
    {"tokens_per_s", TEXT(tokens_per_s), NUM(tokens_per_s_micro), 0, MAX_TOKENS_PS, false},
};

/* What an unset key means (the config's own defaults normally fill these two first). */
static const struct sb_infra infra_defaults = {
    .depreciation_microyears = 3 * MICRO,
    .utilization_ppm = MICRO / 2,
};

int sb_infra_from_config(const struct sb_infra_config *cfg, struct sb_infra *out, char *err,
                         size_t err_size)
{
    bool configured = false;
    *out = infra_defaults;
    for (size_t i = 0; i < SB_ARRAY_LEN(infra_keys); i++) {
        const char *text;
        memcpy(&text, (const char *)cfg + infra_keys[i].text, sizeof text);
        if (text == NULL)
            continue;
        int64_t v = 0;
        if (sb_config_parse_micros(text, infra_keys[i].max, &v) != 0 || v < infra_keys[i].min) {
            snprintf(err, err_size,
                     "infra.%s: expected a decimal number from %.6g to %.6g, got \"%s\"",
                     infra_keys[i].key, (double)infra_keys[i].min / MICRO,
                     (double)infra_keys[i].max / MICRO, text);
            return SB_EINVAL;
        }
        memcpy((char *)out + infra_keys[i].num, &v, sizeof v);
        configured = configured || infra_keys[i].costs;
    }
    return configured ? 0 : SB_ENOTFOUND;
}

/* ---------------------------------------------------------------------------------------------
 * Costs
 * ------------------------------------------------------------------------------------------- */
void sb_infra_hourly(const struct sb_infra *in, struct sb_infra_hourly *out)
{
    /* hardware (uUSD) / (years (uyears) / 10^6 * 12 months) */
    int64_t depreciation =
        sb__report_muldiv(in->hardware_microusd, MICRO, in->depreciation_microyears * 12);
    /* hours (uh) / 10^6 * rate (uUSD/h) */
    int64_t people =
        sb__report_muldiv(in->engineer_microhours_per_month, in->engineer_microusd_per_hour, MICRO);
    out->fixed_microusd_per_month = depreciation + people + in->maintenance_microusd_per_month;
    out->fixed_microusd_per_hour =
        sb__report_muldiv(out->fixed_microusd_per_month, 1, SB_INFRA_HOURS_PER_MONTH);
    /* watts (uW) / 10^6 / 1000 = kW, times uUSD per kWh: uUSD per hour */
    out->power_microusd_per_busy_hour = sb__report_muldiv(
        in->power_microwatts, in->electricity_microusd_per_kwh, (int64_t)1000 * MICRO);
    out->microusd_per_hour =
        out->fixed_microusd_per_hour +
        sb__report_muldiv(out->power_microusd_per_busy_hour, in->utilization_ppm, MICRO);
}

int sb_infra_per_token(const struct sb_infra *in, double tokens_per_s,
                       struct sb_infra_per_token *out)
{
    if (!(tokens_per_s > 0) || !isfinite(tokens_per_s) || in->utilization_ppm <= 0)
        return SB_EINVAL;
    struct sb_infra_hourly h;
    sb_infra_hourly(in, &h);
    double u = (double)in->utilization_ppm / MICRO;
    /* One division each from exact integers: no accumulation in floating point. */
    double busy_tokens_per_hour = tokens_per_s * 3600.0;
    out->microusd_per_mtok =
        llround((double)h.microusd_per_hour * 1e6 / (busy_tokens_per_hour * u));
    out->marginal_microusd_per_mtok =
        llround((double)h.power_microusd_per_busy_hour * 1e6 / busy_tokens_per_hour);
    out->capacity_tokens_per_month = llround(busy_tokens_per_hour * u * SB_INFRA_HOURS_PER_MONTH);
    return 0;
}

double sb_infra_throughput(int64_t tokens, int64_t busy_ms)
{
    if (busy_ms <= 0 || tokens <= 0)
        return 0;
    return (double)tokens * 1000.0 / (double)busy_ms;
}
