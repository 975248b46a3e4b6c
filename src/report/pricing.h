/* Cloud prices: a bundled, dated table of per-token prices with overrides from the config, and the
 * integer micro-dollar arithmetic that turns a request's usage into its cost. */
#ifndef SB_REPORT_PRICING_H
#define SB_REPORT_PRICING_H

#include "config/config.h"
#include "core/canon.h"
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The day the bundled prices were read from the providers' pages (ISO 8601). Reports print it. */
#define SB_PRICING_DATE "2026-11-24"

/* A price has no separate rate for this kind of token (it is charged at the input rate). */
#define SB_PRICE_NONE (-1)

/* One model's prices, in micro-dollars per million tokens (so $2.50 / 1M tokens is 2500000):
 * integers, exact for every published price, and the unit reports compare per-token costs in. */
struct sb_price {
    const char *provider; /* "openai", "anthropic", "bedrock", or "config" for an override */
    const char *pattern;  /* the table row's model pattern that matched */
    const char *as_of;    /* when the price was taken: SB_PRICING_DATE, or "config" */
    int64_t input;        /* uncached input tokens */
    int64_t cached_input; /* input tokens read from a provider cache; SB_PRICE_NONE = input */
    int64_t cache_write;  /* input tokens written to a provider cache; SB_PRICE_NONE = input */
    int64_t output;       /* completion tokens (reasoning tokens included, as providers bill) */
};

/* A row of the bundled table. A pattern is one or more globs separated by '|'; '*' matches any
 * run of characters; matching ignores ASCII case. Rows are tried in order and the first match
 * wins, so a narrower pattern comes before a wider one. */
struct sb_price_row {
    const char *provider;
    const char *pattern;
    int64_t input, cached_input, cache_write, output; /* as in struct sb_price */
};

/* The bundled table (static); *n receives its length. */
const struct sb_price_row *sb_pricing_table(size_t *n);

/* Whether model matches a row pattern as described above. */
bool sb_price_pattern_match(const char *pattern, const char *model);

/* The bundled table plus the config's `pricing:` overrides, which are tried first. */
struct sb_pricing;

/* Builds the prices cfg describes (cfg may be NULL: the bundled table alone). cfg is read during
 * the call only: the result copies what it keeps. On success *out is the caller's, freed with
 * sb_pricing_free. Returns 0; SB_EINVAL with a line in err when an override's value is malformed
 * (sb_config_parse has already refused such a file, so only hand-built configs reach this);
 * SB_ENOMEM. */
int sb_pricing_new(const struct sb_config *cfg, struct sb_pricing **out, char *err,
                   size_t err_size);

/* Frees p (NULL is allowed). */
void sb_pricing_free(struct sb_pricing *p);

/* Finds model's price: the first config override whose pattern matches, else the first bundled
 * row. p may be NULL (the bundled table alone). On success fills *out, whose strings live as long
 * as p (or forever, for bundled rows). Returns 0, SB_ENOTFOUND when the model is unpriced (the
 * caller records cost -1, never 0), or SB_EINVAL for a NULL or empty model. */
int sb_price_lookup(const struct sb_pricing *p, const char *model, struct sb_price *out);

/* The cost of usage at price, in whole micro-dollars, rounded UP once per call: a request is never
 * under-charged and never shows $0 when it used tokens; the rounding adds less than one
 * micro-dollar per call. usage->prompt_tokens includes the cached and cache-written tokens:
 *   (prompt - cached - cache_write) * input + cached * cached_input + cache_write * cache_write
 *   + completion * output, all divided by 10^6 tokens.
 * Counts below zero are taken as zero and cached + cache_write are capped at prompt. A result too
 * large for int64_t saturates at INT64_MAX. */
int64_t sb_price_cost(const struct sb_price *price, const struct sb_usage *usage);

#ifdef __cplusplus
}
#endif

#endif
