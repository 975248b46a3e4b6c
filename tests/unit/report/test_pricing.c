/* Tests for pricing: bundled models are priced, the micro-dollar arithmetic is exact with cached
 * and cache-written tokens, unknown models are unpriced (never $0), config overrides win, and
 * decimal config values convert exactly or are refused with a location. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "report/pricing.h"

static struct sb_price lookup_ok(const struct sb_pricing *p, const char *model)
{
    struct sb_price price;
    int rc = sb_price_lookup(p, model, &price);
    cr_assert_eq(rc, 0, "%s: %s", model, sb_strerror(rc));
    return price;
}

static struct sb_config *parse_ok(const char *yaml)
{
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    int rc = sb_config_parse("test.yaml", yaml, strlen(yaml), NULL, &cfg, &errors);
    cr_assert_eq(rc, 0, "%s", errors.p != NULL ? errors.p : "");
    sb_buf_free(&errors);
    return cfg;
}

/* Parses yaml expecting failure; returns the error text (the caller frees it). */
static char *parse_fails(const char *yaml)
{
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    int rc = sb_config_parse("test.yaml", yaml, strlen(yaml), NULL, &cfg, &errors);
    cr_assert_eq(rc, SB_EINVAL);
    cr_assert_null(cfg);
    return sb_buf_steal(&errors);
}

Test(pricing, known_models_are_priced)
{
    static const struct {
        const char *model;
        const char *provider;
        int64_t input, cached, write, output;
    } cases[] = {
        {"gpt-4o-mini", "openai", 150000, 75000, SB_PRICE_NONE, 600000},
        {"gpt-4o-mini-2024-07-18", "openai", 150000, 75000, SB_PRICE_NONE, 600000},
        {"GPT-4o", "openai", 2500000, 1250000, SB_PRICE_NONE, 10000000},
        {"gpt-4o-2024-05-13", "openai", 5000000, SB_PRICE_NONE, SB_PRICE_NONE, 15000000},
        {"gpt-4.1", "openai", 2000000, 500000, SB_PRICE_NONE, 8000000},
        {"gpt-4.1-mini", "openai", 400000, 100000, SB_PRICE_NONE, 1600000},
        {"gpt-4.1-nano-2025-04-14", "openai", 100000, 25000, SB_PRICE_NONE, 400000},
        {"o3", "openai", 2000000, 500000, SB_PRICE_NONE, 8000000},
        {"o4-mini", "openai", 1100000, 275000, SB_PRICE_NONE, 4400000},
        {"claude-sonnet-4-5-20250929", "anthropic", 3000000, 300000, 3750000, 15000000},
        {"claude-opus-4-5", "anthropic", 5000000, 500000, 6250000, 25000000},
        {"claude-opus-4-20250514", "anthropic", 15000000, 1500000, 18750000, 75000000},
        {"claude-opus-4-1-20250805", "anthropic", 15000000, 1500000, 18750000, 75000000},
        {"claude-haiku-4-5", "anthropic", 1000000, 100000, 1250000, 5000000},
        {"claude-sonnet-5", "anthropic", 2000000, 200000, 2500000, 10000000},
        {"anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock", 1000000, 100000, 1250000, 5000000},
        {"global.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock", 1000000, 100000, 1250000,
         5000000},
        {"us.anthropic.claude-haiku-4-5-20251001-v1:0", "bedrock", 1100000, 110000, 1375000,
         5500000},
        {"eu.anthropic.claude-sonnet-4-6", "bedrock", 3300000, 330000, 4125000, 16500000},
        {"amazon.nova-lite-v1:0", "bedrock", 60000, 15000, SB_PRICE_NONE, 240000},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct sb_price p = lookup_ok(NULL, cases[i].model);
        cr_assert_str_eq(p.provider, cases[i].provider, "%s", cases[i].model);
        cr_assert_eq(p.input, cases[i].input, "%s input %lld", cases[i].model, (long long)p.input);
        cr_assert_eq(p.cached_input, cases[i].cached, "%s cached", cases[i].model);
        cr_assert_eq(p.cache_write, cases[i].write, "%s write", cases[i].model);
        cr_assert_eq(p.output, cases[i].output, "%s output", cases[i].model);
        cr_assert_str_eq(p.as_of, SB_PRICING_DATE);
    }
}

Test(pricing, unknown_models_are_unpriced)
{
    static const char *const models[] = {
        "llama-3-8b", "gpt-4o-audio-preview", "gpt-5.5-pro",     "claude-haiku-5-5",
        "o3-pro",     "claude-sonnet-4-7",    "gpt-4o-mini-tts", "ca.amazon.nova-lite-v1:0",
    };
    struct sb_price p;
    for (size_t i = 0; i < SB_ARRAY_LEN(models); i++)
        cr_assert_eq(sb_price_lookup(NULL, models[i], &p), SB_ENOTFOUND, "%s", models[i]);
    cr_assert_eq(sb_price_lookup(NULL, "", &p), SB_EINVAL);
    cr_assert_eq(sb_price_lookup(NULL, NULL, &p), SB_EINVAL);
}

Test(pricing, table_rows_are_sane)
{
    size_t n = 0;
    const struct sb_price_row *t = sb_pricing_table(&n);
    cr_assert_gt(n, 30);
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(t[i].input, 0, "%s", t[i].pattern);
        cr_assert_geq(t[i].output, t[i].input, "%s", t[i].pattern);
        cr_assert(t[i].cached_input == SB_PRICE_NONE ||
                      (t[i].cached_input > 0 && t[i].cached_input < t[i].input),
                  "%s", t[i].pattern);
        cr_assert(t[i].cache_write == SB_PRICE_NONE || t[i].cache_write > t[i].input, "%s",
                  t[i].pattern);
    }
}

Test(pricing, patterns)
{
    cr_assert(sb_price_pattern_match("gpt-4o|gpt-4o-20*", "gpt-4o-2024-08-06"));
    cr_assert(sb_price_pattern_match("gpt-4o|gpt-4o-20*", "GPT-4O"));
    cr_assert_not(sb_price_pattern_match("gpt-4o|gpt-4o-20*", "gpt-4o-mini"));
    cr_assert(sb_price_pattern_match("*.anthropic.x", "us.anthropic.x"));
    cr_assert_not(sb_price_pattern_match("*.anthropic.x", "anthropic.x"));
    cr_assert(sb_price_pattern_match("a*b*c", "aXXbYYc"));
    cr_assert_not(sb_price_pattern_match("a*b*c", "aXXbYY"));
    cr_assert(sb_price_pattern_match("*", "anything"));
    cr_assert_not(sb_price_pattern_match("|", "x"));
}

Test(pricing, cost_with_cached_tokens_is_exact)
{
    struct sb_price mini = lookup_ok(NULL, "gpt-4o-mini");
    /* 1,000,000 uncached * $0.15 = 150,000 u$; 234,567 cached * $0.075 = 17,592.525 u$;
     * 89,012 out * $0.60 = 53,407.2 u$; total 220,999.725, rounded up once: 221,000. */
    struct sb_usage u = {
        .prompt_tokens = 1234567, .cached_prompt_tokens = 234567, .completion_tokens = 89012};
    cr_assert_eq(sb_price_cost(&mini, &u), 221000);

    /* Anthropic, with cache writes: 2,000 uncached * $3 = 6,000; 6,000 read * $0.30 = 1,800;
     * 2,000 written * $3.75 = 7,500; 500 out * $15 = 7,500: 22,800 exactly. */
    struct sb_price sonnet = lookup_ok(NULL, "claude-sonnet-4-5");
    struct sb_usage a = {.prompt_tokens = 10000,
                         .cached_prompt_tokens = 6000,
                         .cache_write_tokens = 2000,
                         .completion_tokens = 500};
    cr_assert_eq(sb_price_cost(&sonnet, &a), 22800);

    /* One token is never free: $0.15 / 1M tokens is 0.15 u$, charged as 1 u$. */
    struct sb_usage one = {.prompt_tokens = 1};
    cr_assert_eq(sb_price_cost(&mini, &one), 1);
    struct sb_usage none = {0};
    cr_assert_eq(sb_price_cost(&mini, &none), 0);

    /* A price without a cached rate charges cached tokens at the input rate. */
    struct sb_price old = lookup_ok(NULL, "gpt-4o-2024-05-13");
    struct sb_usage c = {.prompt_tokens = 2000000, .cached_prompt_tokens = 1000000};
    cr_assert_eq(sb_price_cost(&old, &c), 10000000);

    /* Nonsense counts are clamped: cached above prompt counts as prompt, negatives as zero. */
    struct sb_usage bad = {
        .prompt_tokens = 100, .cached_prompt_tokens = 500, .completion_tokens = -3};
    cr_assert_eq(sb_price_cost(&mini, &bad), 8); /* 100 * 0.075 = 7.5 -> 8 */

    /* Overflow saturates instead of wrapping. */
    struct sb_price huge = {.input = (int64_t)10000 * 1000000,
                            .cached_input = SB_PRICE_NONE,
                            .cache_write = SB_PRICE_NONE,
                            .output = 1};
    struct sb_usage lots = {.prompt_tokens = INT64_MAX};
    cr_assert_eq(sb_price_cost(&huge, &lots), INT64_MAX);
}

Test(pricing, config_override_wins)
{
    struct sb_config *cfg = parse_ok("pricing:\n"
                                     "  - model: gpt-4o-mini\n"
                                     "    input_per_mtok: 1\n"
                                     "    output_per_mtok: 2.5\n"
                                     "  - model: my-llama*\n"
                                     "    input_per_mtok: 0.000001\n"
                                     "    cached_input_per_mtok: 0\n"
                                     "    cache_write_per_mtok: 0.5\n"
                                     "    output_per_mtok: 0.2\n");
    cr_assert_eq(cfg->n_pricing, 2);
    struct sb_pricing *p = NULL;
    char err[256] = "";
    cr_assert_eq(sb_pricing_new(cfg, &p, err, sizeof err), 0, "%s", err);
    struct sb_price price = lookup_ok(p, "gpt-4o-mini");
    cr_assert_str_eq(price.provider, "config");
    cr_assert_str_eq(price.as_of, "config");
    cr_assert_eq(price.input, 1000000);
    cr_assert_eq(price.cached_input, SB_PRICE_NONE);
    cr_assert_eq(price.output, 2500000);
    struct sb_usage u = {
        .prompt_tokens = 1000000, .cached_prompt_tokens = 500000, .completion_tokens = 1000000};
    cr_assert_eq(sb_price_cost(&price, &u), 3500000); /* cached at the input price */
    price = lookup_ok(p, "my-llama-70b");
    cr_assert_eq(price.input, 1);
    cr_assert_eq(price.cached_input, 0);
    cr_assert_eq(price.cache_write, 500000);
    /* Bundled rows still answer for everything else. */
    cr_assert_str_eq(lookup_ok(p, "gpt-4o").provider, "openai");
    sb_pricing_free(p);
    sb_config_free(cfg);
}

Test(pricing, malformed_overrides_are_refused_with_a_location)
{
    char *e = parse_fails("pricing:\n"
                          "  - model: x\n"
                          "    input_per_mtok: 0.1234567\n"
                          "    output_per_mtok: 1\n");
    cr_assert_not_null(strstr(e, "test.yaml:3:21: pricing[0].input_per_mtok: expected a decimal"),
                       "%s", e);
    free(e);
    e = parse_fails("pricing:\n  - model: x\n    input_per_mtok: -1\n    output_per_mtok: 1\n");
    cr_assert_not_null(strstr(e, "pricing[0].input_per_mtok"), "%s", e);
    free(e);
    e = parse_fails("pricing:\n  - model: x\n    input_per_mtok: 1\n");
    cr_assert_not_null(strstr(e, "missing required key \"output_per_mtok\""), "%s", e);
    free(e);
    e = parse_fails("infra:\n  utilization: 1.5\n");
    cr_assert_not_null(strstr(e, "infra.utilization: expected a decimal number above 0 and at "
                                 "most 1"),
                       "%s", e);
    free(e);
    e = parse_fails("infra:\n  utilization: 0\n");
    cr_assert_not_null(strstr(e, "infra.utilization"), "%s", e);
    free(e);
}

Test(pricing, decimals_convert_exactly)
{
    static const struct {
        const char *text;
        int64_t want; /* -1 = refused */
    } cases[] = {
        {"0.15", 150000},
        {"12", 12000000},
        {".5", 500000},
        {"3.", 3000000},
        {"0.000001", 1},
        {"1.2500000", 1250000},
        {"0", 0},
        {"0.0000001", -1},
        {"-1", -1},
        {"+1", -1},
        {"1e3", -1},
        {"", -1},
        {".", -1},
        {"1.2.3", -1},
        {"1,000", -1},
        {" 1", -1},
        {"10000", 10000000000},
        {"10000.000001", -1},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        int64_t v = -1;
        int rc = sb_config_parse_micros(cases[i].text, (int64_t)10000 * 1000000, &v);
        if (cases[i].want < 0) {
            cr_assert_eq(rc, SB_EINVAL, "\"%s\" accepted as %lld", cases[i].text, (long long)v);
        } else {
            cr_assert_eq(rc, 0, "\"%s\" refused", cases[i].text);
            cr_assert_eq(v, cases[i].want, "\"%s\" gave %lld", cases[i].text, (long long)v);
        }
    }
    int64_t v = 0;
    cr_assert_eq(sb_config_parse_micros("99999999999999999999", INT64_MAX, &v), SB_EINVAL);
}
