/* The bundled price table, config overrides, pattern matching and the micro-dollar cost of a
 * request's usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/pricing.h"

/* ---------------------------------------------------------------------------------------------
 * The bundled table, read on SB_PRICING_DATE. Standard (pay-as-you-go, non-batch) prices in
 * micro-dollars per million tokens. USD(2.50) is $2.50 per 1M tokens; the rounding makes the
 * conversion exact for prices with at most six decimals, which all of these have.
 *
 * Not modelled, so left to config overrides: batch and flex discounts, priority tiers, regional
 * or data-residency surcharges on the providers' own APIs, long-context surcharges, 1-hour cache
 * writes (priced here at the 5-minute write rate, Anthropic's default TTL), and models whose price
 * depends on the prompt's length (Claude Haiku 5.5): those are left unpriced rather than priced
 * wrong. A model missing here is reported as unpriced, never as free.
 * ------------------------------------------------------------------------------------------- */
#define USD(x) ((int64_t)((x)*1000000.0 + 0.5))
#define NONE   SB_PRICE_NONE

/* Bedrock model ids come bare (anthropic.claude-sonnet-5), dated and versioned
 * (...-20251001-v1:0) or with a version alone; PFX is "" (bare), "global." or "*." (any
 * geographic cross-region inference profile: us., eu., apac., ...). */
#define BEDROCK(pfx, id) pfx id "|" pfx id "-v*|" pfx id ":*|" pfx id "-20*"

static const struct sb_price_row table[] = {
    /* OpenAI: https://platform.openai.com/docs/pricing (now
     * https://developers.openai.com/api/docs/pricing), "Standard" text-token prices: input, cached
     * input, output. As quoted from that page by docs.rs/crate/openai-cost (2026-Q2),
     * deploybase.ai/articles/openai-pricing (March 2026), tokenmath.io (checked 2026-06-21) and
     * docs.apiyi.com/models (GPT-5.x, 2026); cached input is 10% of input on the GPT-5 family,
     * 25% on GPT-4.1 and o3/o4-mini, 50% on GPT-4o, GPT-4o mini, o3-mini and o1. */
    {"openai", "gpt-5.6-sol|gpt-5.6-sol-20*", USD(4.00), USD(0.40), NONE, USD(20.00)},
    {"openai", "gpt-5.6-terra|gpt-5.6-terra-20*", USD(2.00), USD(0.20), NONE, USD(12.00)},
    {"openai", "gpt-5.6-luna|gpt-5.6-luna-20*", USD(0.20), USD(0.02), NONE, USD(1.20)},
    {"openai", "gpt-5.5|gpt-5.5-20*", USD(5.00), USD(0.50), NONE, USD(30.00)},
    {"openai", "gpt-5.4-mini|gpt-5.4-mini-20*", USD(0.75), USD(0.075), NONE, USD(4.50)},
    {"openai", "gpt-5.4|gpt-5.4-20*", USD(2.50), USD(0.25), NONE, USD(15.00)},
    {"openai", "gpt-5-mini|gpt-5-mini-20*", USD(0.25), USD(0.025), NONE, USD(2.00)},
    {"openai", "gpt-5-nano|gpt-5-nano-20*", USD(0.05), USD(0.005), NONE, USD(0.40)},
    {"openai", "gpt-5|gpt-5-20*", USD(1.25), USD(0.125), NONE, USD(10.00)},
    {"openai", "gpt-4.1-mini|gpt-4.1-mini-20*", USD(0.40), USD(0.10), NONE, USD(1.60)},
    {"openai", "gpt-4.1-nano|gpt-4.1-nano-20*", USD(0.10), USD(0.025), NONE, USD(0.40)},
    {"openai", "gpt-4.1|gpt-4.1-20*", USD(2.00), USD(0.50), NONE, USD(8.00)},
    {"openai", "gpt-4o-mini|gpt-4o-mini-20*", USD(0.15), USD(0.075), NONE, USD(0.60)},
    /* The first GPT-4o snapshot kept its launch price and has no cached rate. */
    {"openai", "gpt-4o-2024-05-13", USD(5.00), NONE, NONE, USD(15.00)},
    {"openai", "gpt-4o|gpt-4o-20*", USD(2.50), USD(1.25), NONE, USD(10.00)},
    {"openai", "o4-mini|o4-mini-20*", USD(1.10), USD(0.275), NONE, USD(4.40)},
    {"openai", "o3-mini|o3-mini-20*", USD(1.10), USD(0.55), NONE, USD(4.40)},
    {"openai", "o3|o3-20*", USD(2.00), USD(0.50), NONE, USD(8.00)},
    {"openai", "o1|o1-20*", USD(15.00), USD(7.50), NONE, USD(60.00)},

    /* Anthropic: https://platform.claude.com/docs/en/about-claude/pricing ("Model pricing": base
     * input, 5m cache writes, cache hits and refreshes, output) and the model pages under
     * https://platform.claude.com/docs/en/models/ (Opus 5, Sonnet 5, Sonnet 5.5); Opus 5.5's
     * rates as read from that page on 2026-09-23 (github.com/kurofune/claudit v1.8.2): its cache
     * hits are 0.05x input, not the usual 0.1x. */
    {"anthropic", "claude-opus-5-5|claude-opus-5-5-*", USD(4.00), USD(0.20), USD(5.00), USD(20.00)},
    {"anthropic", "claude-opus-5|claude-opus-5-2*|claude-opus-5-latest", USD(5.00), USD(0.50),
     USD(6.25), USD(25.00)},
    {"anthropic", "claude-opus-4-8|claude-opus-4-8-*", USD(5.00), USD(0.50), USD(6.25), USD(25.00)},
    {"anthropic", "claude-opus-4-7|claude-opus-4-7-*", USD(5.00), USD(0.50), USD(6.25), USD(25.00)},
    {"anthropic", "claude-opus-4-6|claude-opus-4-6-*", USD(5.00), USD(0.50), USD(6.25), USD(25.00)},
    {"anthropic", "claude-opus-4-5|claude-opus-4-5-*", USD(5.00), USD(0.50), USD(6.25), USD(25.00)},
    {"anthropic", "claude-opus-4-1|claude-opus-4-1-*", USD(15.00), USD(1.50), USD(18.75),
     USD(75.00)},
    {"anthropic", "claude-opus-4-0|claude-opus-4-2025*", USD(15.00), USD(1.50), USD(18.75),
     USD(75.00)},
    {"anthropic", "claude-sonnet-5-5|claude-sonnet-5-5-*", USD(2.00), USD(0.20), USD(2.50),
     USD(10.00)},
    {"anthropic", "claude-sonnet-5|claude-sonnet-5-2*|claude-sonnet-5-latest", USD(2.00), USD(0.20),
     USD(2.50), USD(10.00)},
    {"anthropic", "claude-sonnet-4-6|claude-sonnet-4-6-*", USD(3.00), USD(0.30), USD(3.75),
     USD(15.00)},
    {"anthropic", "claude-sonnet-4-5|claude-sonnet-4-5-*", USD(3.00), USD(0.30), USD(3.75),
     USD(15.00)},
    {"anthropic", "claude-sonnet-4-0|claude-sonnet-4-2025*", USD(3.00), USD(0.30), USD(3.75),
     USD(15.00)},
    {"anthropic", "claude-3-7-sonnet-*", USD(3.00), USD(0.30), USD(3.75), USD(15.00)},
    {"anthropic", "claude-haiku-4-5|claude-haiku-4-5-*", USD(1.00), USD(0.10), USD(1.25),
     USD(5.00)},
    {"anthropic", "claude-3-5-haiku-*", USD(0.80), USD(0.08), USD(1.00), USD(4.00)},

    /* Bedrock: https://aws.amazon.com/bedrock/pricing/, on-demand, us-east-1, as verified
     * row by row on 2026-10-05 in github.com/aws/agent-toolkit-for-aws
     * (plugins/aws-startup-advisor/skills/llm-to-bedrock/scripts/bedrock_pricing.py). Global
     * cross-region profiles (global.) and bare ids are at the base price; geographic profiles
     * (us., eu., ...) cost 10% more. Claude's cache reads and 5-minute writes on Bedrock are 0.1x
     * and 1.25x its input price, as on Anthropic's API; Nova's cache reads are 75% below input
     * (the same pricing page). Nova is listed at us-east-1 prices, bare or through us. profiles;
     * other regions differ and are left to overrides. */
    {"bedrock",
     BEDROCK("global.", "anthropic.claude-opus-4-8") "|" BEDROCK("", "anthropic.claude-opus-4-8"),
     USD(5.00), USD(0.50), USD(6.25), USD(25.00)},
    {"bedrock", BEDROCK("*.", "anthropic.claude-opus-4-8"), USD(5.50), USD(0.55), USD(6.875),
     USD(27.50)},
    {"bedrock",
     BEDROCK("global.", "anthropic.claude-sonnet-5") "|" BEDROCK("", "anthropic.claude-sonnet-5"),
     USD(2.00), USD(0.20), USD(2.50), USD(10.00)},
    {"bedrock", BEDROCK("*.", "anthropic.claude-sonnet-5"), USD(2.20), USD(0.22), USD(2.75),
     USD(11.00)},
    {"bedrock",
     BEDROCK("global.", "anthropic.claude-sonnet-4-6") "|" BEDROCK("",
                                                                   "anthropic.claude-sonnet-4-6"),
     USD(3.00), USD(0.30), USD(3.75), USD(15.00)},
    {"bedrock", BEDROCK("*.", "anthropic.claude-sonnet-4-6"), USD(3.30), USD(0.33), USD(4.125),
     USD(16.50)},
    {"bedrock",
     BEDROCK("global.", "anthropic.claude-haiku-4-5") "|" BEDROCK("", "anthropic.claude-haiku-4-5"),
     USD(1.00), USD(0.10), USD(1.25), USD(5.00)},
    {"bedrock", BEDROCK("*.", "anthropic.claude-haiku-4-5"), USD(1.10), USD(0.11), USD(1.375),
     USD(5.50)},
    {"bedrock", "amazon.nova-micro-v1*|us.amazon.nova-micro-v1*", USD(0.035), USD(0.00875), NONE,
     USD(0.14)},
    {"bedrock", "amazon.nova-lite-v1*|us.amazon.nova-lite-v1*", USD(0.06), USD(0.015), NONE,
     USD(0.24)},
    {"bedrock", "amazon.nova-pro-v1*|us.amazon.nova-pro-v1*", USD(0.80), USD(0.20), NONE,
     USD(3.20)},
};

const struct sb_price_row *sb_pricing_table(size_t *n)
{
    *n = SB_ARRAY_LEN(table);
    return table;
}

/* ---------------------------------------------------------------------------------------------
 * Patterns
 * ------------------------------------------------------------------------------------------- */
static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Whether the glob pat[0..plen) matches all of s. Iterative with one backtrack point, the
 * classic linear-space matcher: on a mismatch after a '*', retry with the star eating one more
 * character. */
static bool glob_match(const char *pat, size_t plen, const char *s)
{
    size_t p = 0, star = SIZE_MAX, mark = 0;
    size_t i = 0, n = strlen(s);
    while (i < n) {
        if (p < plen && pat[p] == '*') {
            star = p++;
            mark = i;
        } else if (p < plen && lower(pat[p]) == lower(s[i])) {
            p++;
            i++;
        } else if (star != SIZE_MAX) {
            p = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (p < plen && pat[p] == '*')
        p++;
    return p == plen;
}

bool sb_price_pattern_match(const char *pattern, const char *model)
{
    const char *alt = pattern;
    for (;;) {
        const char *bar = strchr(alt, '|');
        size_t len = bar != NULL ? (size_t)(bar - alt) : strlen(alt);
        if (len > 0 && glob_match(alt, len, model))
            return true;
        if (bar == NULL)
            return false;
        alt = bar + 1;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Prices with overrides
 * ------------------------------------------------------------------------------------------- */
/* The most a price may be: $10,000 per million tokens, far above any published one, and small
 * enough that tokens * price cannot overflow in sb_price_cost for realistic token counts. */
#define PRICE_MAX ((int64_t)10000 * 1000000)

struct sb_pricing {
    struct sb_price_row *overrides; /* patterns owned (strdup) */
    size_t n_overrides;
};

void sb_pricing_free(struct sb_pricing *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_overrides; i++)
        free((char *)p->overrides[i].pattern);
    free(p->overrides);
    free(p);
}

/* Converts one override value; text NULL gives SB_PRICE_NONE when optional. */
static int override_value(const char *text, bool optional, int64_t *out)
{
    if (text == NULL) {
        *out = SB_PRICE_NONE;
        return optional ? 0 : SB_EINVAL;
    }
    return sb_config_parse_micros(text, PRICE_MAX, out);
}

int sb_pricing_new(const struct sb_config *cfg, struct sb_pricing **out, char *err, size_t err_size)
{
    int rc = 0;
    struct sb_pricing *p = calloc(1, sizeof *p);
    *out = NULL;
    if (p == NULL)
        return SB_ENOMEM;
    size_t n = cfg != NULL ? cfg->n_pricing : 0;
    if (n > 0 && (p->overrides = calloc(n, sizeof *p->overrides)) == NULL) {
        rc = SB_ENOMEM;
        goto fail;
    }
    for (size_t i = 0; i < n; i++) {
        const struct sb_price_config *c = &cfg->pricing[i];
        struct sb_price_row *row = &p->overrides[i];
        if (c->model == NULL || c->model[0] == '\0' ||
            override_value(c->input_per_mtok, false, &row->input) != 0 ||
            override_value(c->cached_input_per_mtok, true, &row->cached_input) != 0 ||
            override_value(c->cache_write_per_mtok, true, &row->cache_write) != 0 ||
            override_value(c->output_per_mtok, false, &row->output) != 0) {
            snprintf(err, err_size,
                     "pricing[%zu]: expected a model and prices in USD per 1M tokens (decimals "
                     "with at most 6 places, up to 10000)",
                     i);
            rc = SB_EINVAL;
            goto fail;
        }
        row->provider = "config";
        if ((row->pattern = strdup(c->model)) == NULL) {
            rc = SB_ENOMEM;
            goto fail;
        }
        p->n_overrides = i + 1;
    }
    *out = p;
    return 0;

fail:
    sb_pricing_free(p);
    return rc;
}

static void fill(struct sb_price *out, const struct sb_price_row *row, const char *as_of)
{
    *out = (struct sb_price){
        .provider = row->provider,
        .pattern = row->pattern,
        .as_of = as_of,
        .input = row->input,
        .cached_input = row->cached_input,
        .cache_write = row->cache_write,
        .output = row->output,
    };
}

int sb_price_lookup(const struct sb_pricing *p, const char *model, struct sb_price *out)
{
    if (model == NULL || model[0] == '\0')
        return SB_EINVAL;
    for (size_t i = 0; p != NULL && i < p->n_overrides; i++) {
        if (sb_price_pattern_match(p->overrides[i].pattern, model)) {
            fill(out, &p->overrides[i], "config");
            return 0;
        }
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(table); i++) {
        if (sb_price_pattern_match(table[i].pattern, model)) {
            fill(out, &table[i], SB_PRICING_DATE);
            return 0;
        }
    }
    return SB_ENOTFOUND;
}

/* ---------------------------------------------------------------------------------------------
 * Cost
 * ------------------------------------------------------------------------------------------- */
#define MTOK 1000000

/* Adds tokens * price / 10^6 to *whole (micro-dollars) and *frac (the remainder, in millionths
 * of a micro-dollar), splitting tokens so no product overflows. Returns false on overflow. */
static bool add_term(int64_t tokens, int64_t price, int64_t *whole, int64_t *frac)
{
    if (tokens <= 0 || price <= 0)
        return true;
    int64_t q = tokens / MTOK, r = tokens % MTOK;
    if (price > PRICE_MAX || q > INT64_MAX / price)
        return false;
    int64_t w = q * price;
    if (*whole > INT64_MAX - w)
        return false;
    *whole += w;
    *frac += r * price; /* < 10^6 * PRICE_MAX = 10^16 per term: four terms fit easily */
    return true;
}

int64_t sb_price_cost(const struct sb_price *price, const struct sb_usage *usage)
{
    int64_t prompt = SB_MAX(usage->prompt_tokens, (int64_t)0);
    int64_t cached = SB_MIN(SB_MAX(usage->cached_prompt_tokens, (int64_t)0), prompt);
    int64_t written = SB_MIN(SB_MAX(usage->cache_write_tokens, (int64_t)0), prompt - cached);
    int64_t uncached = prompt - cached - written;
    int64_t completion = SB_MAX(usage->completion_tokens, (int64_t)0);
    int64_t cached_rate = price->cached_input >= 0 ? price->cached_input : price->input;
    int64_t write_rate = price->cache_write >= 0 ? price->cache_write : price->input;

    int64_t whole = 0, frac = 0;
    bool ok = add_term(uncached, price->input, &whole, &frac) &&
              add_term(cached, cached_rate, &whole, &frac) &&
              add_term(written, write_rate, &whole, &frac) &&
              add_term(completion, price->output, &whole, &frac);
    if (!ok)
        return INT64_MAX;
    int64_t up = frac / MTOK + (frac % MTOK != 0 ? 1 : 0);
    return whole > INT64_MAX - up ? INT64_MAX : whole + up;
}
