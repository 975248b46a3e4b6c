/* Tests for the dashboard's summary: Prometheus-style percentile interpolation, the JSON built from
 * the metrics registry (totals, per backend and per model, status classes, tokens, cost, breakers,
 * queues, percentiles from merged buckets) with the recent decisions, its escaping and its bound,
 * and the page's compiled-in files. Each test runs in its own process: the registry starts empty.
 */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "metrics/metrics.h"
#include "ui/ui.h"

#define DAY_MS 86400000ll

/* ---------------------------------------------------------------------------------------------
 * Percentiles
 * ------------------------------------------------------------------------------------------- */
Test(ui_summary, quantiles_interpolate_inside_the_bucket_like_prometheus)
{
    const double bounds[] = {1, 2, 4};
    /* 10 observations in (1, 2]; none elsewhere. */
    const uint64_t mid[] = {0, 10, 10, 10};
    /* 4 in [0, 1], 4 in (2, 4], 2 above 4. */
    const uint64_t spread[] = {4, 4, 8, 10};
    const uint64_t none[] = {0, 0, 0, 0};

    cr_assert_float_eq(sb_ui_quantile(0.5, bounds, 3, mid), 1.5, 1e-12);
    cr_assert_float_eq(sb_ui_quantile(0.9, bounds, 3, mid), 1.9, 1e-12);
    /* The lowest bucket starts at 0. */
    cr_assert_float_eq(sb_ui_quantile(0.2, bounds, 3, spread), 0.5, 1e-12);
    /* Rank 4 is the last of the first bucket: its upper bound, not the next bucket. */
    cr_assert_float_eq(sb_ui_quantile(0.4, bounds, 3, spread), 1.0, 1e-12);
    cr_assert_float_eq(sb_ui_quantile(0.6, bounds, 3, spread), 2.0 + 2.0 * 2 / 4, 1e-12);
    /* In the +Inf bucket: the highest finite bound is all that is known. */
    cr_assert_float_eq(sb_ui_quantile(0.95, bounds, 3, spread), 4.0, 1e-12);
    cr_assert(isnan(sb_ui_quantile(0.5, bounds, 3, none)));
    cr_assert(isnan(sb_ui_quantile(0, bounds, 3, mid)));
    cr_assert(isnan(sb_ui_quantile(1, bounds, 3, mid)));
}

/* ---------------------------------------------------------------------------------------------
 * The summary
 * ------------------------------------------------------------------------------------------- */
static const struct sb_ui_model models[] = {{"local", false}, {"gpt", true}};

static void count(const char *model, const char *backend, const char *status, uint64_t n)
{
    const char *const labels[] = {model, backend, status};
    sb_metrics_counter_add(SB_METRIC_REQUESTS, labels, n);
}

static void tokens(const char *model, const char *backend, const char *dir, uint64_t n)
{
    const char *const labels[] = {model, backend, dir};
    sb_metrics_counter_add(SB_METRIC_TOKENS, labels, n);
}

static void observe(enum sb_metric id, const char *model, const char *backend, double v)
{
    const char *const labels[] = {model, backend};
    sb_metrics_histogram_observe(id, labels, v);
}

static void gauge(enum sb_metric id, const char *name, int64_t v)
{
    const char *const labels[] = {name};
    sb_metrics_gauge_set(id, labels, v);
}

/* Traffic as the meter records it: the local model, the cloud one priced, a cloud request that
 * fell back to local, a cloud failure before any backend answered, two unknown models. */
static void traffic(void)
{
    const char *const gpt[] = {"gpt", "gpt"};

    count("local", "local", "200", 3);
    count("gpt", "gpt", "200", 1);
    count("gpt", "local", "200", 1);
    count("gpt", "", "502", 1);
    count("", "", "404", 2);
    tokens("local", "local", "prompt", 30);
    tokens("local", "local", "cached", 5);
    tokens("local", "local", "completion", 12);
    tokens("gpt", "gpt", "prompt", 5);
    tokens("gpt", "gpt", "cached", 16);
    tokens("gpt", "gpt", "completion", 6);
    tokens("gpt", "local", "completion", 4);
    sb_metrics_counter_add(SB_METRIC_COST, gpt, 25);
    observe(SB_METRIC_TTFT, "local", "local", 0.03);
    observe(SB_METRIC_TTFT, "local", "local", 0.04);
    observe(SB_METRIC_TTFT, "gpt", "local", 0.2);
    observe(SB_METRIC_TTFT, "gpt", "gpt", 0.6);
    observe(SB_METRIC_REQUEST_DURATION, "local", "local", 0.3);
    gauge(SB_METRIC_BREAKER_STATE, "local", 0);
    gauge(SB_METRIC_BREAKER_STATE, "gpt", 2);
    gauge(SB_METRIC_QUEUE_DEPTH, "local", 3);
    gauge(SB_METRIC_BUSY_SLOTS, "local", 2);
}

static struct sb_ui_summary_params params(void)
{
    return (struct sb_ui_summary_params){
        .version = "9.9.9",
        .instance = "host-a",
        .listen = "127.0.0.1:8080",
        .now_ms = 20000 * DAY_MS + 1500,
        .started_ms = 20000 * DAY_MS,
        .models = models,
        .n_models = SB_ARRAY_LEN(models),
    };
}

static json_t *summary(struct sb_ui *ui)
{
    struct sb_ui_summary_params p = params();
    struct sb_buf out;
    json_error_t jerr;

    sb_buf_init(&out, 1 << 20);
    cr_assert_eq(sb_ui_write_summary(ui, &p, &out), 0);
    json_t *root = json_loadb(out.p, out.len, JSON_REJECT_DUPLICATES, &jerr);
    cr_assert_not_null(root, "not JSON (%s): %s", jerr.text, out.p);
    sb_buf_free(&out);
    return root;
}

static long long num(json_t *o, const char *path)
{
    json_t *v = json_object_get(o, path);
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return (long long)json_integer_value(v);
}

static json_t *row(json_t *list, size_t i, const char *name)
{
    json_t *r = json_array_get(list, i);
    cr_assert_not_null(r, "no row %zu (%s)", i, name);
    cr_assert_str_eq(json_string_value(json_object_get(r, "name")), name);
    return r;
}

Test(ui_summary, totals_backends_and_models_come_from_the_registry)
{
    traffic();
    json_t *s = summary(NULL);
    json_t *t = json_object_get(s, "totals");

    cr_assert_str_eq(json_string_value(json_object_get(s, "version")), "9.9.9");
    cr_assert_str_eq(json_string_value(json_object_get(s, "instance")), "host-a");
    cr_assert_str_eq(json_string_value(json_object_get(s, "listen")), "127.0.0.1:8080");
    cr_assert_str_eq(json_string_value(json_object_get(s, "day")), "2024-10-04");
    cr_assert_float_eq(json_real_value(json_object_get(s, "uptime_s")), 1.5, 1e-9);
    cr_assert_str_eq(json_string_value(json_object_get(s, "quantiles")), "bucket-interpolated");

    cr_assert_eq(num(t, "requests"), 8);
    cr_assert_eq(num(t, "errors"), 3);
    json_t *classes = json_object_get(t, "status_classes");
    cr_assert_eq(num(classes, "2xx"), 5);
    cr_assert_eq(num(classes, "4xx"), 2);
    cr_assert_eq(num(classes, "5xx"), 1);
    cr_assert_eq(num(json_object_get(t, "tokens"), "completion"), 22);
    cr_assert_eq(num(t, "cost_microusd"), 25);
    cr_assert_float_eq(json_real_value(json_object_get(t, "cost_usd")), 0.000025, 1e-12);
    cr_assert_eq(num(t, "cost_today_microusd"), 0, "no dashboard state: nothing recorded today");
    cr_assert_eq(num(t, "queue_depth"), 3);
    cr_assert_eq(num(t, "busy_slots"), 2);

    /* Configured backends first, in the config's order, then label values seen. */
    json_t *b = json_object_get(s, "backends");
    cr_assert_eq(json_array_size(b), 3);
    json_t *local = row(b, 0, "local"), *gpt = row(b, 1, "gpt"), *none = row(b, 2, "");
    cr_assert(json_is_false(json_object_get(local, "priced")));
    cr_assert(json_is_true(json_object_get(gpt, "priced")));
    cr_assert(json_is_false(json_object_get(none, "configured")));
    cr_assert_eq(num(local, "requests"), 4, "served for local and for gpt's fallback");
    cr_assert_eq(num(json_object_get(local, "tokens"), "prompt"), 30);
    cr_assert_eq(num(json_object_get(local, "tokens"), "cached"), 5);
    cr_assert_eq(num(json_object_get(local, "tokens"), "completion"), 16);
    cr_assert_eq(num(gpt, "cost_microusd"), 25);
    cr_assert_eq(num(none, "requests"), 3);
    cr_assert_eq(num(none, "errors"), 3);
    cr_assert_str_eq(json_string_value(json_object_get(local, "breaker")), "closed");
    cr_assert_str_eq(json_string_value(json_object_get(gpt, "breaker")), "open");
    cr_assert(json_is_null(json_object_get(none, "breaker")));
    cr_assert_eq(num(local, "queue_depth"), 3);
    cr_assert(json_is_null(json_object_get(gpt, "queue_depth")));

    /* By the model asked for. */
    json_t *m = json_object_get(s, "models");
    cr_assert_eq(json_array_size(m), 3);
    cr_assert_eq(num(row(m, 0, "local"), "requests"), 3);
    cr_assert_eq(num(row(m, 1, "gpt"), "requests"), 3);
    cr_assert_eq(num(json_object_get(row(m, 1, "gpt"), "tokens"), "completion"), 10);
    cr_assert_eq(num(row(m, 2, ""), "requests"), 2);
    json_decref(s);
}

Test(ui_summary, percentiles_come_from_the_merged_buckets)
{
    traffic();
    json_t *s = summary(NULL);
    json_t *ttft = json_object_get(json_object_get(s, "totals"), "ttft_seconds");

    /* TTFT bounds 0.01, 0.025, 0.05, ...: 0.03 and 0.04 in (0.025, 0.05], 0.2 in (0.15, 0.2],
     * 0.6 in (0.5, 0.75]. */
    cr_assert_eq(num(ttft, "count"), 4);
    cr_assert_float_eq(json_real_value(json_object_get(ttft, "sum")), 0.87, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(ttft, "p50")), 0.05, 1e-9);
    cr_assert_float_eq(json_number_value(json_object_get(ttft, "p95")), 0.5 + 0.25 * 0.8, 1e-9);
    /* Per backend: local holds 0.03, 0.04 and 0.2. */
    json_t *local =
        json_object_get(json_array_get(json_object_get(s, "backends"), 0), "ttft_seconds");
    cr_assert_eq(num(local, "count"), 3);
    cr_assert_float_eq(json_number_value(json_object_get(local, "p50")), 0.025 + 0.025 * 0.75,
                       1e-9);
    /* Nothing observed: null, not 0. */
    json_t *rate = json_object_get(json_object_get(s, "totals"), "generation_tokens_per_second");
    cr_assert_eq(num(rate, "count"), 0);
    cr_assert(json_is_null(json_object_get(rate, "p50")));
    json_decref(s);
}

Test(ui_summary, recent_decisions_newest_first_with_nulls_for_what_is_unknown)
{
    struct sb_ui *ui = NULL;
    struct sb_ui_decision a = {.ts_ms = 20000 * DAY_MS + 10,
                               .status = 200,
                               .attempts = 1,
                               .prompt_tokens = 21,
                               .completion_tokens = 6,
                               .cost_microusd = 25,
                               .latency_ms = 18.5,
                               .ttft_ms = 9.25,
                               .streamed = true};
    struct sb_ui_decision b = {.ts_ms = 20000 * DAY_MS + 20,
                               .status = 404,
                               .cost_microusd = -1,
                               .latency_ms = 0.5,
                               .ttft_ms = -1};

    cr_assert_eq(sb_ui_new(4, &ui), 0);
    snprintf(a.request_id, sizeof(a.request_id), "req_a");
    snprintf(a.api, sizeof(a.api), "openai");
    snprintf(a.model, sizeof(a.model), "gpt");
    snprintf(a.backend, sizeof(a.backend), "gpt");
    snprintf(a.rule, sizeof(a.rule), "gpt-to-cloud");
    snprintf(a.reason, sizeof(a.reason), "rule gpt-to-cloud: model gpt -> gpt");
    snprintf(a.sensitivity, sizeof(a.sensitivity), "low");
    snprintf(b.request_id, sizeof(b.request_id), "req_b");
    snprintf(b.api, sizeof(b.api), "ollama");
    snprintf(b.model, sizeof(b.model), "we\"ird\n</td>");
    snprintf(b.error_class, sizeof(b.error_class), "model_not_found");
    sb_ui_record(ui, &a);
    sb_ui_record(ui, &b);

    json_t *s = summary(ui);
    json_t *recent = json_object_get(s, "recent");
    cr_assert_eq(num(recent, "capacity"), 4);
    cr_assert_eq(num(recent, "total"), 2);
    json_t *list = json_object_get(recent, "decisions");
    cr_assert_eq(json_array_size(list), 2);
    json_t *first = json_array_get(list, 0), *second = json_array_get(list, 1);
    cr_assert_str_eq(json_string_value(json_object_get(first, "request_id")), "req_b");
    cr_assert_str_eq(json_string_value(json_object_get(first, "model")), "we\"ird\n</td>");
    cr_assert_str_eq(json_string_value(json_object_get(first, "error_class")), "model_not_found");
    static const char *const nulls[] = {"backend",     "rule",          "reason",
                                        "sensitivity", "cost_microusd", "ttft_ms"};
    for (size_t i = 0; i < SB_ARRAY_LEN(nulls); i++)
        cr_assert(json_is_null(json_object_get(first, nulls[i])), "%s is not null", nulls[i]);
    cr_assert_str_eq(json_string_value(json_object_get(second, "rule")), "gpt-to-cloud");
    cr_assert_str_eq(json_string_value(json_object_get(second, "reason")),
                     "rule gpt-to-cloud: model gpt -> gpt");
    cr_assert(json_is_null(json_object_get(second, "error_class")));
    cr_assert_eq(num(second, "cost_microusd"), 25);
    cr_assert_eq(num(second, "time_ms"), 20000 * DAY_MS + 10);
    cr_assert(json_is_true(json_object_get(second, "streamed")));
    cr_assert_float_eq(json_number_value(json_object_get(second, "ttft_ms")), 9.25, 1e-9);
    /* The day's cost is the ring's, for the day of now_ms. */
    cr_assert_eq(num(json_object_get(s, "totals"), "cost_today_microusd"), 25);
    json_decref(s);
    sb_ui_free(ui);
}

Test(ui_summary, an_idle_gateway_lists_its_models_with_zeros)
{
    json_t *s = summary(NULL);
    json_t *b = json_object_get(s, "backends");

    cr_assert_eq(json_array_size(b), 2);
    cr_assert_eq(num(row(b, 0, "local"), "requests"), 0);
    cr_assert(
        json_is_null(json_object_get(json_object_get(row(b, 1, "gpt"), "latency_seconds"), "p95")));
    cr_assert(json_is_null(json_object_get(json_object_get(s, "totals"), "queue_depth")));
    cr_assert_eq(json_array_size(json_object_get(json_object_get(s, "recent"), "decisions")), 0);
    json_decref(s);
}

Test(ui_summary, a_buffer_too_small_fails_cleanly)
{
    struct sb_ui_summary_params p = params();
    struct sb_buf out;

    traffic();
    sb_buf_init(&out, 64);
    cr_assert_eq(sb_ui_write_summary(NULL, &p, &out), SB_ETOOBIG);
    cr_assert_leq(out.len, 64);
    sb_buf_free(&out);
}

/* ---------------------------------------------------------------------------------------------
 * The page's files
 * ------------------------------------------------------------------------------------------- */
Test(ui_assets, each_file_has_a_type_a_body_and_an_etag)
{
    size_t n;
    const struct sb_ui_asset *a = sb_ui_assets(&n);

    cr_assert_geq(n, 4);
    for (size_t i = 0; i < n; i++) {
        cr_assert_gt(a[i].body.len, 0, "%s is empty", a[i].path);
        cr_assert_eq(strlen(a[i].etag), 18, "%s: %s", a[i].path, a[i].etag);
        cr_assert_eq(sb_ui_asset_find(a[i].path), &a[i]);
    }
    const struct sb_ui_asset *page = sb_ui_asset_find("/ui");
    cr_assert_not_null(page);
    cr_assert_str_eq(page->content_type, "text/html; charset=utf-8");
    cr_assert(sb_str_starts_with(page->body, SB_STR_LIT("<!doctype html>")));
    cr_assert_str_eq(sb_ui_asset_find("/ui/app.js")->content_type,
                     "text/javascript; charset=utf-8");
    cr_assert_str_eq(sb_ui_asset_find("/ui/app.css")->content_type, "text/css; charset=utf-8");
    cr_assert_null(sb_ui_asset_find("/ui/nope"));
    cr_assert_null(sb_ui_asset_find("/ui/app.js?v=1"));
    cr_assert_neq(strcmp(sb_ui_asset_find("/ui/app.js")->etag, page->etag), 0);
}

/* Every /ui/... URL the page names (src="..." and href="...") is a file of the table. */
Test(ui_assets, the_page_names_only_files_it_has)
{
    const struct sb_ui_asset *page = sb_ui_asset_find("/ui");
    const char *p = page->body.p;
    int found = 0;

    for (const char *q = strstr(p, "=\"/"); q != NULL; q = strstr(q + 1, "=\"/")) {
        const char *start = q + 2;
        const char *end = strchr(start, '"');
        char path[128];
        cr_assert_not_null(end);
        cr_assert_lt((size_t)(end - start), sizeof(path));
        memcpy(path, start, (size_t)(end - start));
        path[end - start] = '\0';
        cr_assert_not_null(sb_ui_asset_find(path), "the page links %s, which is not served", path);
        found++;
    }
    cr_assert_geq(found, 3);
}
