/* The report's three faces: aligned text for a terminal, JSON (integer micro-dollars, exact) for
 * scripts and tests, and one self-contained HTML page with inline SVG charts for people. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/internal.h"

#define MTOK 1000000

/* ---------------------------------------------------------------------------------------------
 * Numbers as people read them
 * ------------------------------------------------------------------------------------------- */
int sb__append_usd(struct sb_buf *b, int64_t microusd)
{
    if (microusd < 0)
        return sb_buf_append_c(b, "unknown");
    /* Cents always; more decimals only when they carry something (small per-token prices). */
    char frac[8];
    snprintf(frac, sizeof frac, "%06lld", (long long)(microusd % MTOK));
    size_t n = 6;
    while (n > 2 && frac[n - 1] == '0')
        n--;
    frac[n] = '\0';
    long long whole = (long long)(microusd / MTOK);
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", whole);
    int rc = sb_buf_append_char(b, '$');
    size_t len = strlen(digits);
    for (size_t i = 0; i < len && rc == 0; i++) {
        rc = sb_buf_append_char(b, digits[i]);
        if (rc == 0 && (len - i - 1) % 3 == 0 && i + 1 < len)
            rc = sb_buf_append_char(b, ',');
    }
    return rc == 0 ? sb_buf_printf(b, ".%s", frac) : rc;
}

int sb__append_count(struct sb_buf *b, int64_t n)
{
    char digits[32];
    snprintf(digits, sizeof digits, "%lld", (long long)(n < 0 ? -n : n));
    int rc = n < 0 ? sb_buf_append_char(b, '-') : 0;
    size_t len = strlen(digits);
    for (size_t i = 0; i < len && rc == 0; i++) {
        rc = sb_buf_append_char(b, digits[i]);
        if (rc == 0 && (len - i - 1) % 3 == 0 && i + 1 < len)
            rc = sb_buf_append_char(b, ',');
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Output with a sticky error: after the first failed append nothing more is written and the
 * renderer returns that error, so a report is never silently missing a part.
 * ------------------------------------------------------------------------------------------- */
struct out {
    struct sb_buf *b;
    int rc; /* the first failure, or 0 */
};

static void put(struct out *o, const char *s)
{
    if (o->rc == 0 && s != NULL)
        o->rc = sb_buf_append_c(o->b, s);
}

static void putch(struct out *o, char c)
{
    if (o->rc == 0)
        o->rc = sb_buf_append_char(o->b, c);
}

static void putf(struct out *o, const char *fmt, ...) SB_PRINTF(2, 3);

static void putf(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (o->rc == 0)
        o->rc = sb_buf_vprintf(o->b, fmt, ap);
    va_end(ap);
}

static void usd(struct out *o, int64_t microusd)
{
    if (o->rc == 0)
        o->rc = sb__append_usd(o->b, microusd);
}

static void count(struct out *o, int64_t n)
{
    if (o->rc == 0)
        o->rc = sb__append_count(o->b, n);
}

/* Small helpers that write into a fixed cell. */
#define CELL 64

static void cell_count(char *cell, int64_t n)
{
    struct sb_buf b;
    sb_buf_init(&b, CELL - 1);
    sb__append_count(&b, n);
    snprintf(cell, CELL, "%s", b.p != NULL ? b.p : "");
    sb_buf_free(&b);
}

static void cell_usd(char *cell, int64_t microusd, bool estimated)
{
    struct sb_buf b;
    sb_buf_init(&b, CELL - 1);
    sb__append_usd(&b, microusd);
    if (estimated && microusd >= 0)
        sb_buf_append_c(&b, " (est.)");
    snprintf(cell, CELL, "%s", b.p != NULL ? b.p : "");
    sb_buf_free(&b);
}

static void cell_pct(char *cell, const struct sb__pct *p)
{
    if (p->count == 0)
        snprintf(cell, CELL, "-");
    else
        snprintf(cell, CELL, "%.0f / %.0f / %.0f", p->v[0], p->v[1], p->v[2]);
}

static const char *class_name(enum sb__backend_class c)
{
    static const char *const names[] = {
        [SB__CLASS_LOCAL] = "local", [SB__CLASS_CLOUD] = "cloud", [SB__CLASS_UNKNOWN] = "unknown"};
    return names[c];
}

/* What a break-even status means, for people; indexed by enum sb__break_even. */
static const struct {
    const char *status; /* JSON: "at", "never", "unknown" */
    const char *reason; /* JSON's reason, and the text after "never: " or "unknown: " */
} break_even_texts[] = {
    [SB__BE_AT] = {"at", "local is cheaper per month above this volume"},
    [SB__BE_NEVER_PER_TOKEN] = {"never", "the cloud price per token is at or below local's "
                                         "marginal (power) cost per token"},
    [SB__BE_NEVER_CAPACITY] = {"never", "the break-even volume is more than one machine can serve "
                                        "at the planned utilization, and each added machine adds "
                                        "the same fixed cost"},
    [SB__BE_UNKNOWN_INFRA] = {"unknown", "no infra cost model: set infra.hardware_usd, "
                                         "power_watts and the other infra keys in the config"},
    [SB__BE_UNKNOWN_THROUGHPUT] = {"unknown", "no local throughput: no local traffic in the "
                                              "window and infra.tokens_per_s is not set"},
    [SB__BE_UNKNOWN_PRICE] = {"unknown", "the compare model has no price, or there was no "
                                         "traffic; add it under pricing: or pick another with "
                                         "--compare-model"},
};

static void format_time(char *out, size_t size, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, size, "%Y-%m-%d %H:%M UTC", &tm);
}

/* ---------------------------------------------------------------------------------------------
 * Tables, shared by text and HTML: a title row and cells of at most CELL - 1 bytes.
 * ------------------------------------------------------------------------------------------- */
struct table {
    const char *const *cols; /* titles */
    size_t n_cols;
    size_t first_numeric; /* columns from here on are right-aligned */
    size_t n_rows;
    char (*cells)[CELL]; /* n_rows * n_cols, row-major; owned */
};

static char *cell_at(struct table *t, size_t row, size_t col)
{
    return t->cells[row * t->n_cols + col];
}

static int table_init(struct table *t, const char *const *cols, size_t n_cols, size_t first_num,
                      size_t n_rows)
{
    *t = (struct table){cols, n_cols, first_num, n_rows, NULL};
    if (n_rows == 0)
        return 0;
    t->cells = calloc(n_rows * n_cols, CELL);
    return t->cells != NULL ? 0 : SB_ENOMEM;
}

static void table_free(struct table *t)
{
    free(t->cells);
    t->cells = NULL;
}

static const char *const backend_cols[] = {
    "backend",
    "where",
    "requests",
    "errors",
    "prompt tok",
    "cached",
    "completion",
    "cost",
    "latency ms p50/90/99",
    "TTFT ms p50/90/99",
    "tok/s p50/90/99",
};

static int backend_table(const struct sb__report *r, struct table *t)
{
    int rc = table_init(t, backend_cols, SB_ARRAY_LEN(backend_cols), 2, r->n_backends);
    for (size_t i = 0; i < r->n_backends && rc == 0; i++) {
        const struct sb__backend_stats *b = &r->backends[i];
        sb_ledger_copy(cell_at(t, i, 0), CELL,
                       sb_str_c(b->agg.name[0] != '\0' ? b->agg.name : "(none served)"));
        snprintf(cell_at(t, i, 1), CELL, "%s", class_name(b->cls));
        cell_count(cell_at(t, i, 2), b->agg.requests);
        cell_count(cell_at(t, i, 3), b->agg.errors);
        cell_count(cell_at(t, i, 4), b->agg.prompt_tokens);
        cell_count(cell_at(t, i, 5), b->agg.cached_prompt_tokens);
        cell_count(cell_at(t, i, 6), b->agg.completion_tokens);
        cell_usd(cell_at(t, i, 7), b->cost_microusd, b->cost_estimated);
        cell_pct(cell_at(t, i, 8), &b->latency);
        cell_pct(cell_at(t, i, 9), &b->ttft);
        cell_pct(cell_at(t, i, 10), &b->tps);
    }
    return rc;
}

static const char *const group_cols[] = {
    "", "requests", "errors", "prompt tok", "cached", "completion", "recorded cost", "unpriced",
};

static int group_table(const struct sb_ledger_agg *g, size_t n, const char *title,
                       const char *empty_name, struct table *t, const char **cols)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(group_cols); i++)
        cols[i] = group_cols[i];
    cols[0] = title;
    int rc = table_init(t, cols, SB_ARRAY_LEN(group_cols), 1, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        sb_ledger_copy(cell_at(t, i, 0), CELL,
                       sb_str_c(g[i].name[0] != '\0' ? g[i].name : empty_name));
        cell_count(cell_at(t, i, 1), g[i].requests);
        cell_count(cell_at(t, i, 2), g[i].errors);
        cell_count(cell_at(t, i, 3), g[i].prompt_tokens);
        cell_count(cell_at(t, i, 4), g[i].cached_prompt_tokens);
        cell_count(cell_at(t, i, 5), g[i].completion_tokens);
        /* A group with nothing priced has no cost to show: "-", never $0. */
        if (g[i].priced == 0 && g[i].unpriced > 0)
            snprintf(cell_at(t, i, 6), CELL, "-");
        else
            cell_usd(cell_at(t, i, 6), g[i].cost_microusd, false);
        cell_count(cell_at(t, i, 7), g[i].unpriced);
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Text
 * ------------------------------------------------------------------------------------------- */
/* Display width of a UTF-8 cell (code points; our cells have no wide characters). */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s != '\0'; s++)
        w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

static void text_table(struct out *o, struct table *t)
{
    size_t w[16] = {0};
    size_t n_cols = SB_MIN(t->n_cols, SB_ARRAY_LEN(w));
    for (size_t c = 0; c < n_cols; c++) {
        w[c] = width(t->cols[c]);
        for (size_t r = 0; r < t->n_rows; r++)
            w[c] = SB_MAX(w[c], width(cell_at(t, r, c)));
    }
    for (size_t r = 0; r <= t->n_rows; r++) {
        put(o, " ");
        for (size_t c = 0; c < n_cols; c++) {
            const char *s = r == 0 ? t->cols[c] : cell_at(t, r - 1, c);
            int pad = (int)(w[c] - width(s));
            /* Padding goes before numbers and after text; none after the last column. */
            if (c >= t->first_numeric)
                putf(o, " %*s%s", pad, "", s);
            else if (c + 1 < n_cols)
                putf(o, " %s%*s", s, pad, "");
            else
                putf(o, " %s", s);
            if (c + 1 < n_cols)
                put(o, " ");
        }
        putch(o, '\n');
    }
}

static void text_price(struct out *o, const struct sb_price *p)
{
    usd(o, p->input);
    put(o, " in / ");
    usd(o, p->cached_input >= 0 ? p->cached_input : p->input);
    put(o, " cached / ");
    usd(o, p->output);
    put(o, " out per 1M tokens");
}

static int text_body(const struct sb__report *r, struct out *o)
{
    char from[32], to[32];
    struct table t = {0};
    const char *cols[SB_ARRAY_LEN(group_cols)];
    const struct sb_ledger_agg *tot = &r->total;
    format_time(from, sizeof from, r->since_ms);
    format_time(to, sizeof to, r->until_ms - 1);

    putf(o, "Switchboard report: %s to %s (traffic over %.1f days)\n", from, to,
         (double)r->period_ms / 86400000.0);
    putf(o, "Prices: bundled table of %s, with config overrides\n\n", SB_PRICING_DATE);

    put(o, "Totals\n  requests ");
    count(o, tot->requests);
    put(o, ", errors ");
    count(o, tot->errors);
    put(o, ", fell back ");
    count(o, tot->fell_back);
    put(o, "\n  tokens: prompt ");
    count(o, tot->prompt_tokens);
    put(o, " (cached ");
    count(o, tot->cached_prompt_tokens);
    put(o, "), completion ");
    count(o, tot->completion_tokens);
    put(o, "\n  recorded cloud cost ");
    usd(o, r->recorded_cost_microusd);
    if (r->unpriced_requests > 0) {
        put(o, " plus ");
        count(o, r->unpriced_requests);
        put(o, " unpriced cloud requests (no price known: not counted as $0)");
    }
    put(o, "\n\nBy backend\n");
    int rc = backend_table(r, &t);
    if (rc == 0)
        text_table(o, &t);
    table_free(&t);
    put(o, "\nBy model\n");
    if (rc == 0)
        rc = group_table(r->models, r->n_models, "model", "(none)", &t, cols);
    if (rc == 0)
        text_table(o, &t);
    table_free(&t);
    put(o, "\nBy key\n");
    if (rc == 0)
        rc = group_table(r->keys, r->n_keys, "key", "(no key)", &t, cols);
    if (rc == 0)
        text_table(o, &t);
    table_free(&t);
    if (rc != 0)
        return rc;

    put(o, "\nThe same traffic\n  all cloud at ");
    put(o, r->compare_model);
    if (r->compare_priced) {
        put(o, " (");
        text_price(o, &r->compare_price);
        put(o, "): ");
        usd(o, r->all_cloud_microusd);
    } else {
        put(o, ": unknown (the model has no price; add it under pricing:)");
    }
    put(o, "\n  all local (infra model): ");
    if (r->all_local_microusd >= 0) {
        usd(o, r->all_local_microusd);
        putf(o, " on %lld machine%s", (long long)r->all_local_machines,
             r->all_local_machines == 1 ? "" : "s");
    } else {
        put(o, "unknown (");
        put(o, break_even_texts[r->has_infra ? SB__BE_UNKNOWN_THROUGHPUT : SB__BE_UNKNOWN_INFRA]
                   .reason);
        put(o, ")");
    }

    put(o, "\n\nLocal\n  throughput ");
    if (r->tokens_per_s > 0)
        putf(o, "%.1f tokens/s (%s)", r->tokens_per_s,
             r->tokens_per_s_measured ? "measured: tokens over busy time"
                                      : "assumed: infra.tokens_per_s");
    else
        put(o, "unknown");
    putf(o, ", busy %.1f h of %.1f h (%.1f%%)\n", (double)r->local_busy_ms / 3.6e6,
         (double)r->period_ms / 3.6e6, r->utilization_measured * 100);
    if (r->has_infra) {
        put(o, "  cost per hour ");
        usd(o, r->hourly.microusd_per_hour);
        put(o, " (fixed ");
        usd(o, r->hourly.fixed_microusd_per_hour);
        put(o, " + power ");
        usd(o, r->hourly.power_microusd_per_busy_hour);
        putf(o, " per busy hour x utilization %.2f); fixed ",
             (double)r->infra.utilization_ppm / 1e6);
        usd(o, r->hourly.fixed_microusd_per_month);
        put(o, " per month\n");
    }
    if (r->has_per_token) {
        put(o, "  per 1M tokens ");
        usd(o, r->per_token.microusd_per_mtok);
        put(o, " all-in at the planned utilization, ");
        usd(o, r->per_token.marginal_microusd_per_mtok);
        put(o, " marginal; one machine serves ");
        count(o, r->per_token.capacity_tokens_per_month);
        put(o, " tokens/month\n");
    }

    put(o, "\nBreak-even\n  your volume ");
    count(o, r->monthly_tokens);
    put(o, " tokens/month\n  ");
    if (r->break_even == SB__BE_AT) {
        put(o, "local breaks even at ");
        count(o, r->break_even_tokens_per_month);
        put(o, " tokens/month (fixed ");
        usd(o, r->hourly.fixed_microusd_per_month);
        put(o, "/month over cloud ");
        usd(o, r->cloud_microusd_per_mtok);
        put(o, " minus local marginal ");
        usd(o, r->per_token.marginal_microusd_per_mtok);
        put(o, " per 1M tokens)\n");
    } else {
        putf(o, "break-even: %s: %s\n", break_even_texts[r->break_even].status,
             break_even_texts[r->break_even].reason);
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * JSON
 * ------------------------------------------------------------------------------------------- */
static void json_str(struct out *o, const char *s)
{
    putch(o, '"');
    if (o->rc == 0)
        o->rc = sb_buf_append_json_escaped(o->b, sb_str_c(s));
    putch(o, '"');
}

/* An integer, or null when negative (unknown). */
static void json_opt(struct out *o, int64_t v)
{
    if (v < 0)
        put(o, "null");
    else
        putf(o, "%lld", (long long)v);
}

static void json_agg_fields(struct out *o, const struct sb_ledger_agg *a)
{
    putf(o,
         "\"requests\":%lld,\"errors\":%lld,\"retried\":%lld,\"fell_back\":%lld,"
         "\"prompt_tokens\":%lld,\"cached_prompt_tokens\":%lld,\"cache_write_tokens\":%lld,"
         "\"completion_tokens\":%lld,"
         "\"tokens\":%lld,\"priced\":%lld,\"unpriced\":%lld,\"pii\":%lld,\"long_prompts\":%lld,"
         "\"recorded_cost_microusd\":",
         (long long)a->requests, (long long)a->errors, (long long)a->retried,
         (long long)a->fell_back, (long long)a->prompt_tokens, (long long)a->cached_prompt_tokens,
         (long long)a->cache_write_tokens, (long long)a->completion_tokens,
         (long long)(a->prompt_tokens + a->completion_tokens), (long long)a->priced,
         (long long)a->unpriced, (long long)a->pii, (long long)a->long_prompts);
    /* The sum over priced rows; null when there were requests and none was priced (unknown,
     * never $0). */
    json_opt(o, a->priced == 0 && a->unpriced > 0 ? -1 : a->cost_microusd);
}

static void json_pct(struct out *o, const char *name, const struct sb__pct *p)
{
    putf(o, "\"%s\":{\"count\":%lld", name, (long long)p->count);
    if (p->count > 0)
        putf(o, ",\"p50\":%.17g,\"p90\":%.17g,\"p99\":%.17g", p->v[0], p->v[1], p->v[2]);
    else
        put(o, ",\"p50\":null,\"p90\":null,\"p99\":null");
    putch(o, '}');
}

static void json_groups(struct out *o, const char *key, const struct sb_ledger_agg *g, size_t n)
{
    putf(o, ",\"%s\":[", key);
    for (size_t i = 0; i < n; i++) {
        put(o, i > 0 ? ",{\"name\":" : "{\"name\":");
        json_str(o, g[i].name);
        putch(o, ',');
        json_agg_fields(o, &g[i]);
        putch(o, '}');
    }
    putch(o, ']');
}

static void json_price(struct out *o, const struct sb_price *p)
{
    put(o, "\"provider\":");
    json_str(o, p->provider);
    put(o, ",\"pattern\":");
    json_str(o, p->pattern);
    put(o, ",\"as_of\":");
    json_str(o, p->as_of);
    putf(o, ",\"input_microusd_per_mtok\":%lld", (long long)p->input);
    put(o, ",\"cached_input_microusd_per_mtok\":");
    json_opt(o, p->cached_input);
    put(o, ",\"cache_write_microusd_per_mtok\":");
    json_opt(o, p->cache_write);
    putf(o, ",\"output_microusd_per_mtok\":%lld", (long long)p->output);
}

static int json_body(const struct sb__report *r, struct out *o)
{
    putf(o,
         "{\"window\":{\"since_ms\":%lld,\"until_ms\":%lld,\"period_ms\":%lld},"
         "\"pricing_date\":\"%s\",\"totals\":{",
         (long long)r->since_ms, (long long)r->until_ms, (long long)r->period_ms, SB_PRICING_DATE);
    json_agg_fields(o, &r->total);
    putf(o, ",\"sensitive\":%lld}", (long long)r->sensitive_requests);

    put(o, ",\"backends\":[");
    for (size_t i = 0; i < r->n_backends; i++) {
        const struct sb__backend_stats *b = &r->backends[i];
        put(o, i > 0 ? ",{\"name\":" : "{\"name\":");
        json_str(o, b->agg.name);
        putf(o, ",\"class\":\"%s\",", class_name(b->cls));
        json_agg_fields(o, &b->agg);
        put(o, ",\"cost_microusd\":");
        json_opt(o, b->cost_microusd);
        putf(o, ",\"cost_estimated\":%s,", b->cost_estimated ? "true" : "false");
        json_pct(o, "latency_ms", &b->latency);
        putch(o, ',');
        json_pct(o, "ttft_ms", &b->ttft);
        putch(o, ',');
        json_pct(o, "tokens_per_s", &b->tps);
        putch(o, '}');
    }
    putch(o, ']');
    json_groups(o, "models", r->models, r->n_models);
    json_groups(o, "keys", r->keys, r->n_keys);

    put(o, ",\"local\":{");
    json_agg_fields(o, &r->local);
    putf(o, ",\"busy_ms\":%lld,\"served_tokens\":%lld,\"context_tokens\":%lld,",
         (long long)r->local_busy_ms, (long long)r->local_tokens, (long long)r->local_context);
    putf(o, "\"tokens_per_s\":%.17g,\"tokens_per_s_measured\":%s,", r->tokens_per_s,
         r->tokens_per_s_measured ? "true" : "false");
    putf(o, "\"utilization_measured\":%.17g,", r->utilization_measured);
    json_pct(o, "ttft_ms", &r->ttft_local);
    put(o, "},\"cloud\":{");
    json_agg_fields(o, &r->cloud);
    putch(o, ',');
    json_pct(o, "ttft_ms", &r->ttft_cloud);
    putch(o, '}');

    put(o, ",\"infra\":");
    if (r->has_infra) {
        putf(o,
             "{\"fixed_microusd_per_month\":%lld,\"fixed_microusd_per_hour\":%lld,"
             "\"power_microusd_per_busy_hour\":%lld,\"microusd_per_hour\":%lld,"
             "\"utilization_ppm\":%lld",
             (long long)r->hourly.fixed_microusd_per_month,
             (long long)r->hourly.fixed_microusd_per_hour,
             (long long)r->hourly.power_microusd_per_busy_hour,
             (long long)r->hourly.microusd_per_hour, (long long)r->infra.utilization_ppm);
        if (r->has_per_token)
            putf(o,
                 ",\"microusd_per_mtok\":%lld,\"marginal_microusd_per_mtok\":%lld,"
                 "\"capacity_tokens_per_month\":%lld",
                 (long long)r->per_token.microusd_per_mtok,
                 (long long)r->per_token.marginal_microusd_per_mtok,
                 (long long)r->per_token.capacity_tokens_per_month);
        putch(o, '}');
    } else {
        put(o, "null");
    }

    put(o, ",\"compare\":{\"model\":");
    json_str(o, r->compare_model);
    putf(o, ",\"priced\":%s", r->compare_priced ? "true" : "false");
    if (r->compare_priced) {
        putch(o, ',');
        json_price(o, &r->compare_price);
    }
    putf(o, "},\"costs\":{\"recorded_microusd\":%lld,\"unpriced_requests\":%lld,",
         (long long)r->recorded_cost_microusd, (long long)r->unpriced_requests);
    put(o, "\"all_cloud_microusd\":");
    json_opt(o, r->all_cloud_microusd);
    put(o, ",\"all_local_microusd\":");
    json_opt(o, r->all_local_microusd);
    putf(o, ",\"all_local_machines\":%lld,\"cloud_microusd_per_mtok\":",
         (long long)r->all_local_machines);
    json_opt(o, r->cloud_microusd_per_mtok);
    putf(o, "},\"volume\":{\"tokens\":%lld,\"monthly_tokens\":%lld}",
         (long long)(r->total.prompt_tokens + r->total.completion_tokens),
         (long long)r->monthly_tokens);
    putf(o,
         ",\"break_even\":{\"status\":\"%s\",\"reason\":", break_even_texts[r->break_even].status);
    json_str(o, break_even_texts[r->break_even].reason);
    put(o, ",\"monthly_tokens\":");
    json_opt(o, r->break_even == SB__BE_AT || r->break_even == SB__BE_NEVER_CAPACITY
                    ? r->break_even_tokens_per_month
                    : -1);
    put(o, "}}\n");
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * HTML: one page, inline CSS and SVG, nothing fetched.
 * ------------------------------------------------------------------------------------------- */
/* Appends s with HTML's five special characters escaped. */
static void html_text(struct out *o, const char *s)
{
    static const struct {
        char c;
        const char *entity;
    } entities[] = {{'&', "&amp;"}, {'<', "&lt;"}, {'>', "&gt;"}, {'"', "&quot;"}, {'\'', "&#39;"}};
    for (; *s != '\0'; s++) {
        const char *e = NULL;
        for (size_t i = 0; i < SB_ARRAY_LEN(entities) && e == NULL; i++)
            if (entities[i].c == *s)
                e = entities[i].entity;
        if (e != NULL)
            put(o, e);
        else
            putch(o, *s);
    }
}

static void html_table(struct out *o, struct table *t)
{
    put(o, "<table><thead><tr>");
    for (size_t c = 0; c < t->n_cols; c++) {
        put(o, c >= t->first_numeric ? "<th class=\"n\">" : "<th>");
        html_text(o, t->cols[c]);
        put(o, "</th>");
    }
    put(o, "</tr></thead><tbody>");
    for (size_t r = 0; r < t->n_rows; r++) {
        put(o, "<tr>");
        for (size_t c = 0; c < t->n_cols; c++) {
            put(o, c >= t->first_numeric ? "<td class=\"n\">" : "<td>");
            html_text(o, cell_at(t, r, c));
            put(o, "</td>");
        }
        put(o, "</tr>");
    }
    if (t->n_rows == 0)
        putf(o, "<tr><td colspan=\"%zu\">no requests in the window</td></tr>", t->n_cols);
    put(o, "</tbody></table>\n");
}

/* Chart geometry, in SVG user units. */
#define CHART_W   720
#define LABEL_W   170
#define BAR_H     18
#define BAR_GAP   8
#define PLOT_W    (CHART_W - LABEL_W - 110)
#define PALETTE_N 3
static const char *const palette[PALETTE_N] = {"#2b6cb0", "#dd6b20", "#805ad5"};

/* Horizontal bars: one group per label, n_series bars per group. values[i * n_series + s];
 * negative values are unknown (no bar, "unknown"). unit is appended to each value's label. */
static void svg_bars(struct out *o, const char *title, const char *const *labels, size_t n_labels,
                     const double *values, size_t n_series, const char *const *series, bool dollars)
{
    double max = 0;
    for (size_t i = 0; i < n_labels * n_series; i++)
        max = SB_MAX(max, values[i]);
    size_t group_h = n_series * BAR_H + BAR_GAP;
    size_t legend_h = n_series > 1 ? 24 : 0;
    size_t h = 30 + legend_h + n_labels * group_h + 10;
    putf(o,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%zu\" "
         "viewBox=\"0 0 %d %zu\" role=\"img\"><title>",
         CHART_W, h, CHART_W, h);
    html_text(o, title);
    put(o, "</title><text x=\"0\" y=\"18\" class=\"t\">");
    html_text(o, title);
    put(o, "</text>");
    for (size_t s = 0; s < n_series && n_series > 1; s++) {
        putf(o,
             "<rect x=\"%zu\" y=\"30\" width=\"12\" height=\"12\" fill=\"%s\"/>"
             "<text x=\"%zu\" y=\"40\">",
             LABEL_W + s * 90, palette[s % PALETTE_N], LABEL_W + s * 90 + 16);
        html_text(o, series[s]);
        put(o, "</text>");
    }
    for (size_t i = 0; i < n_labels; i++) {
        size_t y0 = 30 + legend_h + i * group_h;
        putf(o, "<text x=\"%d\" y=\"%zu\" text-anchor=\"end\">", LABEL_W - 8,
             y0 + (n_series * BAR_H) / 2 + 5);
        html_text(o, labels[i]);
        put(o, "</text>");
        for (size_t s = 0; s < n_series; s++) {
            double v = values[i * n_series + s];
            size_t y = y0 + s * BAR_H;
            double w = v > 0 && max > 0 ? v / max * PLOT_W : 0;
            if (v >= 0)
                putf(o,
                     "<rect x=\"%d\" y=\"%zu\" width=\"%.1f\" height=\"%d\" "
                     "fill=\"%s\"/>",
                     LABEL_W, y + 1, w, BAR_H - 2, palette[s % PALETTE_N]);
            putf(o, "<text x=\"%.1f\" y=\"%zu\">", LABEL_W + w + 6, y + BAR_H - 5);
            if (v < 0)
                put(o, "unknown");
            else if (dollars)
                usd(o, llround(v));
            else
                putf(o, "%.0f", v);
            put(o, "</text>");
        }
    }
    put(o, "</svg>\n");
}

/* Monthly cost at volume v (tokens/month), in micro-dollars, for the break-even chart. */
static double cloud_at(const struct sb__report *r, double v)
{
    return (double)r->cloud_microusd_per_mtok * v / MTOK;
}

static double local_at(const struct sb__report *r, double v)
{
    double cap = (double)r->per_token.capacity_tokens_per_month;
    double machines = cap > 0 ? SB_MAX(1.0, ceil(v / cap)) : 1.0;
    return machines * (double)r->hourly.fixed_microusd_per_month +
           (double)r->per_token.marginal_microusd_per_mtok * v / MTOK;
}

/* Axis labels: 1.2M tokens, $3.4k. */
static void short_number(struct sb_buf *b, double v, bool dollars)
{
    static const struct {
        double scale;
        const char *suffix;
    } scales[] = {{1e12, "T"}, {1e9, "B"}, {1e6, "M"}, {1e3, "k"}, {1, ""}};
    for (size_t i = 0; i < SB_ARRAY_LEN(scales); i++) {
        if (v >= scales[i].scale || scales[i].scale == 1) {
            sb_buf_printf(b, "%s%.3g%s", dollars ? "$" : "", v / scales[i].scale, scales[i].suffix);
            return;
        }
    }
}

static void shortn(struct out *o, double v, bool dollars)
{
    struct sb_buf b;
    sb_buf_init(&b, 64);
    short_number(&b, v, dollars);
    put(o, b.p);
    sb_buf_free(&b);
}

static void svg_break_even(struct out *o, const struct sb__report *r)
{
    const int w = CHART_W, h = 340, left = 80, right = 20, top = 36, bottom = 50;
    const int pw = w - left - right, ph = h - top - bottom;
    double vmax = SB_MAX((double)r->monthly_tokens * 1.25, 1e6);
    if (r->break_even == SB__BE_AT)
        vmax = SB_MAX(vmax, (double)r->break_even_tokens_per_month * 2);
    else if (r->per_token.capacity_tokens_per_month > 0)
        vmax = SB_MAX(vmax, (double)r->per_token.capacity_tokens_per_month * 1.5);
    enum { STEPS = 120 };
    double ymax = 1;
    for (int i = 0; i <= STEPS; i++) {
        double v = vmax * i / STEPS;
        ymax = SB_MAX(ymax, SB_MAX(cloud_at(r, v), local_at(r, v)));
    }
    ymax *= 1.05;
    putf(o,
         "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
         "viewBox=\"0 0 %d %d\" role=\"img\"><title>Monthly cost against monthly "
         "volume</title><text x=\"0\" y=\"18\" class=\"t\">Monthly cost against monthly "
         "volume</text>",
         w, h, w, h);
    /* Axes and ticks. */
    putf(o,
         "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"ax\"/>"
         "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" class=\"ax\"/>",
         left, top, left, top + ph, left, top + ph, left + pw, top + ph);
    for (int i = 0; i <= 4; i++) {
        double fx = left + pw * i / 4.0, fy = top + ph - ph * i / 4.0;
        putf(o, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">", fx, top + ph + 18);
        shortn(o, vmax * i / 4, false);
        putf(o, "</text><text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">", left - 6, fy + 4);
        shortn(o, ymax * i / 4 / MTOK, true);
        putf(o, "</text><line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" class=\"grid\"/>", left,
             fy, left + pw, fy);
    }
    putf(o, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">tokens per month</text>", left + pw / 2,
         h - 8);
    /* The two curves. */
    for (int curve = 0; curve < 2; curve++) {
        putf(o, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
             palette[curve]);
        for (int i = 0; i <= STEPS; i++) {
            double v = vmax * i / STEPS;
            double y = curve == 0 ? cloud_at(r, v) : local_at(r, v);
            putf(o, "%s%.1f,%.1f", i > 0 ? " " : "", left + pw * v / vmax,
                 top + ph - ph * y / ymax);
        }
        put(o, "\"/>");
    }
    /* The legend sits beside the title, outside the plot, where no curve can cover it. */
    putf(o,
         "<rect x=\"%d\" y=\"6\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" "
         "y=\"16\">all cloud (",
         w - 360, palette[0], w - 344);
    html_text(o, r->compare_model);
    putf(o,
         ")</text><rect x=\"%d\" y=\"6\" width=\"12\" height=\"12\" fill=\"%s\"/>"
         "<text x=\"%d\" y=\"16\">all local (infra model)</text>",
         w - 170, palette[1], w - 154);
    /* Where they cross, and where this team is. */
    if (r->break_even == SB__BE_AT) {
        double v = (double)r->break_even_tokens_per_month;
        double x = left + pw * v / vmax, y = top + ph - ph * cloud_at(r, v) / ymax;
        putf(o,
             "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" class=\"cross\"/>"
             "<text x=\"%.1f\" y=\"%.1f\" class=\"b\">break-even: ",
             x, y, x + 10, y - 10);
        shortn(o, v, false);
        put(o, " tokens/month</text>");
    }
    double you = left + pw * (double)r->monthly_tokens / vmax;
    putf(o,
         "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" class=\"you\"/>"
         "<text x=\"%.1f\" y=\"%d\">you: ",
         you, top, you, top + ph, you + 4, top + ph - 6);
    shortn(o, (double)r->monthly_tokens, false);
    put(o, "/month</text></svg>\n");
}

static const char html_head[] =
    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    "<title>Switchboard report</title><style>"
    "body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;"
    "max-width:1100px;padding:0 1rem;color:#1a202c;background:#fff}"
    "h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;"
    "border-bottom:1px solid #e2e8f0;padding-bottom:.3rem}.sub{color:#4a5568;margin-top:0}"
    ".cards{display:flex;flex-wrap:wrap;gap:.8rem}.card{border:1px solid #e2e8f0;"
    "border-radius:8px;padding:.7rem 1rem;min-width:150px}.card b{display:block;"
    "font-size:1.3rem}.card span{color:#4a5568;font-size:.85rem}"
    "table{border-collapse:collapse;width:100%;font-size:.9rem;margin:.5rem 0}"
    "th,td{padding:.3rem .5rem;border-bottom:1px solid #edf2f7;text-align:left;"
    "white-space:nowrap}th{background:#f7fafc}.n{text-align:right;"
    "font-variant-numeric:tabular-nums}.note{color:#4a5568;font-size:.9rem}"
    "svg{max-width:100%;height:auto;font-size:12px;fill:#1a202c}svg .t{font-size:14px;"
    "font-weight:600}svg .b{font-weight:600}svg .ax{stroke:#4a5568}svg .grid{stroke:#edf2f7}"
    "svg .you{stroke:#38a169;stroke-dasharray:5 4;stroke-width:2}"
    "svg .cross{fill:#fff;stroke:#c53030;stroke-width:3}.verdict{font-weight:600}"
    "</style></head><body>\n";

static void html_card(struct out *o, const char *label, const char *value_html)
{
    put(o, "<div class=\"card\"><b>");
    put(o, value_html);
    put(o, "</b><span>");
    html_text(o, label);
    put(o, "</span></div>");
}

static void html_cards(struct out *o, const struct sb__report *r)
{
    struct sb_buf v;
    sb_buf_init(&v, 256);
    put(o, "<div class=\"cards\">");
    sb__append_count(&v, r->total.requests);
    html_card(o, "requests", v.p);
    sb_buf_reset(&v);
    sb__append_count(&v, r->total.prompt_tokens + r->total.completion_tokens);
    html_card(o, "tokens", v.p);
    sb_buf_reset(&v);
    sb__append_usd(&v, r->recorded_cost_microusd);
    html_card(o, "recorded cloud cost", v.p);
    sb_buf_reset(&v);
    sb__append_usd(&v, r->all_cloud_microusd);
    html_card(o, "if all cloud", v.p);
    sb_buf_reset(&v);
    sb__append_usd(&v, r->all_local_microusd);
    html_card(o, "if all local", v.p);
    sb_buf_reset(&v);
    if (r->break_even == SB__BE_AT) {
        short_number(&v, (double)r->break_even_tokens_per_month, false);
        sb_buf_append_c(&v, " tok/mo");
    } else {
        sb_buf_append_c(&v, break_even_texts[r->break_even].status);
    }
    html_card(o, "local break-even", v.p);
    put(o, "</div>\n");
    sb_buf_free(&v);
}

/* Backend labels for charts: the name, or a stand-in for rows no backend served. */
static const char *backend_label(const struct sb__backend_stats *b)
{
    return b->agg.name[0] != '\0' ? b->agg.name : "(none served)";
}

static int html_charts(struct out *o, const struct sb__report *r)
{
    size_t n = r->n_backends;
    if (n == 0)
        return 0;
    const char **labels = calloc(n, sizeof *labels);
    double *cost = calloc(n, sizeof *cost);
    double *lat = calloc(n * SB__N_PCT, sizeof *lat);
    double *ttft = calloc(n * SB__N_PCT, sizeof *ttft);
    int rc = labels != NULL && cost != NULL && lat != NULL && ttft != NULL ? 0 : SB_ENOMEM;
    static const char *const pct_names[SB__N_PCT] = {"p50", "p90", "p99"};
    for (size_t i = 0; i < n && rc == 0; i++) {
        const struct sb__backend_stats *b = &r->backends[i];
        labels[i] = backend_label(b);
        cost[i] = (double)b->cost_microusd;
        for (size_t k = 0; k < SB__N_PCT; k++) {
            lat[i * SB__N_PCT + k] = b->latency.count > 0 ? b->latency.v[k] : -1;
            ttft[i * SB__N_PCT + k] = b->ttft.count > 0 ? b->ttft.v[k] : -1;
        }
    }
    if (rc == 0) {
        put(o, "<h2>Cost by backend</h2>");
        svg_bars(o, "Cost by backend (local: infra estimate)", labels, n, cost, 1, NULL, true);
        put(o, "<h2>Latency</h2>");
        svg_bars(o, "End-to-end latency, ms", labels, n, lat, SB__N_PCT, pct_names, false);
        svg_bars(o, "Time to first token, ms", labels, n, ttft, SB__N_PCT, pct_names, false);
    }
    free(labels);
    free(cost);
    free(lat);
    free(ttft);
    return rc;
}

static int html_body(const struct sb__report *r, struct out *o)
{
    char from[32], to[32];
    struct table t = {0};
    const char *cols[SB_ARRAY_LEN(group_cols)];
    format_time(from, sizeof from, r->since_ms);
    format_time(to, sizeof to, r->until_ms - 1);

    put(o, html_head);
    putf(o,
         "<h1>Switchboard report</h1><p class=\"sub\">%s to %s &middot; traffic over "
         "%.1f days &middot; prices as of %s</p>\n",
         from, to, (double)r->period_ms / 86400000.0, SB_PRICING_DATE);
    html_cards(o, r);
    int rc = html_charts(o, r);

    put(o, "<h2>Break-even</h2>");
    if (rc == 0 && r->has_per_token && r->cloud_microusd_per_mtok >= 0) {
        svg_break_even(o, r);
    }
    put(o, "<p class=\"note\">");
    if (r->break_even == SB__BE_AT) {
        put(o, "Local breaks even at ");
        count(o, r->break_even_tokens_per_month);
        put(o, " tokens a month: its fixed ");
        usd(o, r->hourly.fixed_microusd_per_month);
        put(o, " a month over the gap between the cloud's ");
        usd(o, r->cloud_microusd_per_mtok);
        put(o, " and local's marginal ");
        usd(o, r->per_token.marginal_microusd_per_mtok);
        put(o, " per million tokens. ");
    } else {
        putf(o, "Break-even: %s. ", break_even_texts[r->break_even].status);
        html_text(o, break_even_texts[r->break_even].reason);
        put(o, ". ");
    }
    put(o, "This traffic is ");
    count(o, r->monthly_tokens);
    put(o, " tokens a month.</p>\n");

    put(o, "<h2>By backend</h2>");
    if (rc == 0)
        rc = backend_table(r, &t);
    if (rc == 0)
        html_table(o, &t);
    table_free(&t);
    put(o, "<h2>By model</h2>");
    if (rc == 0)
        rc = group_table(r->models, r->n_models, "model", "(none)", &t, cols);
    if (rc == 0)
        html_table(o, &t);
    table_free(&t);
    put(o, "<h2>By key</h2>");
    if (rc == 0)
        rc = group_table(r->keys, r->n_keys, "key", "(no key)", &t, cols);
    if (rc == 0)
        html_table(o, &t);
    table_free(&t);

    put(o, "<h2>How these numbers are made</h2><p class=\"note\">Cloud costs are "
           "what the ledger recorded from the providers' usage; unpriced requests "
           "are counted apart, never as $0. ");
    if (r->unpriced_requests > 0) {
        count(o, r->unpriced_requests);
        put(o, " cloud requests had no price. ");
    }
    put(o, "&ldquo;All cloud&rdquo; prices every token at ");
    html_text(o, r->compare_model);
    put(o, "&rsquo;s rates. Local costs come from the infra model: fixed costs "
           "(depreciation, people, maintenance) per month plus power per busy "
           "hour, spread over the throughput measured as tokens served per busy "
           "second.</p>\n</body></html>\n");
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */
/* Runs a body over out; the first failure (the body's own, or an append's) is the result. */
static int render(const struct sb__report *r, struct sb_buf *out,
                  int (*body)(const struct sb__report *, struct out *))
{
    struct out o = {out, 0};
    int rc = body(r, &o);
    return rc != 0 ? rc : o.rc;
}

int sb__report_text(const struct sb__report *r, struct sb_buf *out)
{
    return render(r, out, text_body);
}

int sb__report_json(const struct sb__report *r, struct sb_buf *out)
{
    return render(r, out, json_body);
}

int sb__report_html(const struct sb__report *r, struct sb_buf *out)
{
    return render(r, out, html_body);
}
