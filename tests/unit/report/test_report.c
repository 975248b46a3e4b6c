/* Tests for reports and advice: a ledger written through the real ledger API with a known mix of
 * rows, the JSON report checked total by total against sums done by hand, percentiles on known
 * values, break-even on a known case, the HTML page's structure, and the advice for three
 * crafted ledgers. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config/config.h"
#include "ledger/ledger.h"
#include "report/report.h"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */
static char dir[64];
static char db_path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-report-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/ledger.db", dir);
}

static void remove_dir(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(report, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* The report's "now": every row is placed relative to it. */
#define NOW    ((int64_t)1790000000000)
#define HOUR   ((int64_t)3600 * 1000)
#define DAY    (24 * HOUR)
#define NO_VAL (-1.0)

/* One row as the tests describe it; strings may be NULL (empty). */
struct spec {
    int64_t ago_ms; /* arrival = NOW - ago_ms */
    const char *backend, *model, *key, *sensitivity, *pii, *error, *tried;
    int32_t status, attempts;
    int64_t prompt, cached, completion;
    double latency, ttft, tps;
    int64_t cost; /* -1 = unpriced */
};

static void write_ledger(const struct spec *rows, size_t n)
{
    struct sb_ledger_config lc = {
        .path = db_path, .commit_interval_ms = 1, .queue_size = 4096, .retention_days = 0};
    struct sb_ledger *l = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_open(&lc, &l, err, sizeof err), 0, "%s", err);
    for (size_t i = 0; i < n; i++) {
        const struct spec *s = &rows[i];
        struct sb_ledger_row r;
        memset(&r, 0, sizeof r);
        char id[40];
        snprintf(id, sizeof id, "req_%zu", i);
        r.ts_ms = NOW - s->ago_ms;
        sb_ledger_copy(r.request_id, sizeof r.request_id, sb_str_c(id));
        sb_ledger_copy(r.backend, sizeof r.backend, sb_str_c(s->backend));
        sb_ledger_copy(r.model, sizeof r.model, sb_str_c(s->model ? s->model : s->backend));
        sb_ledger_copy(r.key_id, sizeof r.key_id, sb_str_c(s->key));
        sb_ledger_copy(r.sensitivity, sizeof r.sensitivity, sb_str_c(s->sensitivity));
        sb_ledger_copy(r.pii_counts, sizeof r.pii_counts, sb_str_c(s->pii));
        sb_ledger_copy(r.error_class, sizeof r.error_class, sb_str_c(s->error));
        sb_ledger_copy(r.backends_tried, sizeof r.backends_tried,
                       sb_str_c(s->tried ? s->tried : s->backend));
        r.api = SB_API_OPENAI;
        r.status = s->status ? s->status : 200;
        r.attempts = s->attempts ? s->attempts : 1;
        r.prompt_tokens = s->prompt;
        r.cached_prompt_tokens = s->cached;
        r.completion_tokens = s->completion;
        r.queue_ms = NO_VAL;
        r.latency_ms = s->latency;
        r.ttft_ms = s->ttft;
        r.tokens_per_s = s->tps;
        r.cost_microusd = s->cost;
        r.streamed = true;
        cr_assert_eq(sb_ledger_record(l, &r), 0);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
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

/* Runs the report; returns its text (the caller frees it). */
static char *run_report(const struct sb_config *cfg, enum sb_report_format format)
{
    struct sb_report_params p = {
        .ledger = db_path, .cfg = cfg, .window_ms = 30 * DAY, .now_ms = NOW, .format = format};
    struct sb_buf out;
    sb_buf_init(&out, 16 << 20);
    char err[512] = "";
    int rc = sb_report_write(&p, &out, err, sizeof err);
    cr_assert_eq(rc, 0, "%s", err);
    return sb_buf_steal(&out);
}

static json_t *run_json(const struct sb_config *cfg)
{
    char *text = run_report(cfg, SB_REPORT_JSON);
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    cr_assert_not_null(j, "%s at %d: %s", e.text, e.position, text);
    free(text);
    return j;
}

static json_int_t jint(json_t *obj, const char *path)
{
    json_t *v = json_object_get(obj, path);
    cr_assert(json_is_integer(v), "%s is not an integer", path);
    return json_integer_value(v);
}

static double jnum(json_t *obj, const char *path)
{
    json_t *v = json_object_get(obj, path);
    cr_assert(json_is_number(v), "%s is not a number", path);
    return json_number_value(v);
}

/* The array element whose "name" is name. */
static json_t *named(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
            return v;
    }
    cr_assert_fail("no entry named %s", name);
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * The known mix
 * ------------------------------------------------------------------------------------------- */
static const char mix_config[] = "models:\n"
                                 "  - name: local\n"
                                 "    backend: local\n"
                                 "    path: x.gguf\n"
                                 "    context: 4096\n"
                                 "  - name: gpt-4o-mini\n"
                                 "    backend: openai\n"
                                 "  - name: claude\n"
                                 "    backend: anthropic\n"
                                 "    upstream_model: claude-sonnet-4-5\n"
                                 "infra:\n"
                                 "  hardware_usd: 3600\n"
                                 "  depreciation_years: 1\n"
                                 "  power_watts: 1000\n"
                                 "  electricity_usd_per_kwh: 0.10\n"
                                 "  utilization: 0.5\n";

/* Three local requests (two overlapping: busy 1.5 s, then 2.1 s: 3.6 s for 9,000 tokens, 2,500
 * tokens/s), four cloud requests (one unpriced and failed, one served after a fallback), and one
 * row outside the 30-day window. The first in the window arrived 10 h before NOW. */
static const struct spec mix[] = {
    {.ago_ms = 10 * HOUR,
     .backend = "local",
     .key = "k1",
     .prompt = 1000,
     .completion = 500,
     .latency = 1000,
     .ttft = 100,
     .tps = 50,
     .cost = -1},
    {.ago_ms = 10 * HOUR - 500,
     .backend = "local",
     .key = "k1",
     .prompt = 2000,
     .completion = 1000,
     .latency = 1000,
     .ttft = 120,
     .tps = 60,
     .cost = -1},
    {.ago_ms = 5 * HOUR,
     .backend = "local",
     .key = "k1",
     .sensitivity = "confidential",
     .prompt = 3000,
     .completion = 1500,
     .latency = 2100,
     .ttft = 200,
     .tps = 40,
     .cost = -1},
    {.ago_ms = 4 * HOUR,
     .backend = "gpt-4o-mini",
     .key = "k2",
     .prompt = 1234567,
     .cached = 234567,
     .completion = 89012,
     .latency = 800,
     .ttft = 300,
     .tps = 30,
     .cost = 221000},
    {.ago_ms = 3 * HOUR,
     .backend = "claude",
     .key = "k2",
     .pii = "{\"email\":1}",
     .prompt = 10000,
     .cached = 6000,
     .completion = 500,
     .latency = 1500,
     .ttft = 600,
     .tps = 25,
     .cost = 22800},
    {.ago_ms = 2 * HOUR,
     .backend = "claude",
     .error = "upstream_5xx",
     .status = 502,
     .attempts = 2,
     .prompt = 300000,
     .completion = 100,
     .latency = 30000,
     .ttft = NO_VAL,
     .tps = NO_VAL,
     .cost = -1},
    {.ago_ms = 1 * HOUR,
     .backend = "gpt-4o-mini",
     .model = "claude",
     .key = "k2",
     .tried = "claude,gpt-4o-mini",
     .attempts = 2,
     .prompt = 100,
     .completion = 50,
     .latency = 900,
     .ttft = 400,
     .tps = 35,
     .cost = 45},
    {.ago_ms = 40 * DAY,
     .backend = "gpt-4o-mini",
     .key = "k2",
     .prompt = 999999,
     .completion = 999999,
     .latency = 1,
     .ttft = 1,
     .tps = 1,
     .cost = 999999},
};

Test(report, json_totals_match_hand_sums)
{
    write_ledger(mix, SB_ARRAY_LEN(mix));
    struct sb_config *cfg = parse_ok(mix_config);
    json_t *j = run_json(cfg);

    json_t *tot = json_object_get(j, "totals");
    cr_assert_eq(jint(tot, "requests"), 7);
    cr_assert_eq(jint(tot, "errors"), 1);
    cr_assert_eq(jint(tot, "retried"), 2);
    cr_assert_eq(jint(tot, "fell_back"), 1);
    cr_assert_eq(jint(tot, "prompt_tokens"), 1000 + 2000 + 3000 + 1234567 + 10000 + 300000 + 100);
    cr_assert_eq(jint(tot, "cached_prompt_tokens"), 234567 + 6000);
    cr_assert_eq(jint(tot, "completion_tokens"), 500 + 1000 + 1500 + 89012 + 500 + 100 + 50);
    cr_assert_eq(jint(tot, "tokens"), 1643329);
    cr_assert_eq(jint(tot, "recorded_cost_microusd"), 221000 + 22800 + 45);
    cr_assert_eq(jint(tot, "priced"), 3);
    cr_assert_eq(jint(tot, "unpriced"), 4);
    cr_assert_eq(jint(tot, "pii"), 1);
    cr_assert_eq(jint(tot, "long_prompts"), 3); /* above the local context of 4,096 */
    cr_assert_eq(jint(tot, "sensitive"), 2);    /* one confidential, one with PII */

    json_t *backends = json_object_get(j, "backends");
    cr_assert_eq(json_array_size(backends), 3);
    json_t *local = named(backends, "local");
    cr_assert_str_eq(json_string_value(json_object_get(local, "class")), "local");
    cr_assert_eq(jint(local, "requests"), 3);
    cr_assert_eq(jint(local, "prompt_tokens"), 6000);
    cr_assert_eq(jint(local, "completion_tokens"), 3000);
    /* 9,000 tokens at the all-in $0.102435 per million: 921.9 -> 922 u$, an estimate. */
    cr_assert_eq(jint(local, "cost_microusd"), 922);
    cr_assert(json_is_true(json_object_get(local, "cost_estimated")));
    json_t *mini = named(backends, "gpt-4o-mini");
    cr_assert_str_eq(json_string_value(json_object_get(mini, "class")), "cloud");
    cr_assert_eq(jint(mini, "requests"), 2);
    cr_assert_eq(jint(mini, "prompt_tokens"), 1234667);
    cr_assert_eq(jint(mini, "cost_microusd"), 221045);
    json_t *claude = named(backends, "claude");
    cr_assert_eq(jint(claude, "requests"), 2);
    cr_assert_eq(jint(claude, "errors"), 1);
    cr_assert_eq(jint(claude, "unpriced"), 1);
    cr_assert_eq(jint(claude, "cost_microusd"), 22800);

    json_t *models = json_object_get(j, "models");
    cr_assert_eq(json_array_size(models), 3);
    cr_assert_eq(jint(named(models, "claude"), "requests"), 3); /* asked for, whoever served */
    cr_assert_eq(jint(named(models, "claude"), "recorded_cost_microusd"), 22845);
    json_t *keys = json_object_get(j, "keys");
    cr_assert_eq(json_array_size(keys), 3);
    cr_assert_eq(jint(named(keys, ""), "requests"), 1);
    cr_assert_eq(jint(named(keys, "k1"), "requests"), 3);
    cr_assert_eq(jint(named(keys, "k2"), "prompt_tokens"), 1234567 + 10000 + 100);

    /* Local throughput: 9,000 tokens over 3,600 ms of busy time. */
    json_t *l = json_object_get(j, "local");
    cr_assert_eq(jint(l, "busy_ms"), 3600);
    cr_assert_eq(jint(l, "served_tokens"), 9000);
    cr_assert_float_eq(jnum(l, "tokens_per_s"), 2500.0, 1e-9);
    cr_assert(json_is_true(json_object_get(l, "tokens_per_s_measured")));

    /* Infra: $3,600 over 12 months = $300/month; 1 kW at $0.10 = $0.10 per busy hour. */
    json_t *infra = json_object_get(j, "infra");
    cr_assert_eq(jint(infra, "fixed_microusd_per_month"), 300000000);
    cr_assert_eq(jint(infra, "fixed_microusd_per_hour"), 410959);
    cr_assert_eq(jint(infra, "power_microusd_per_busy_hour"), 100000);
    cr_assert_eq(jint(infra, "microusd_per_hour"), 460959);
    cr_assert_eq(jint(infra, "microusd_per_mtok"), 102435);
    cr_assert_eq(jint(infra, "marginal_microusd_per_mtok"), 11111);
    cr_assert_eq(jint(infra, "capacity_tokens_per_month"), 3285000000);

    /* All cloud at gpt-4o-mini: 1,310,100 uncached * $0.15 + 240,567 cached * $0.075 + 92,662
     * out * $0.60 = 196,515 + 18,042.525 + 55,597.2 = 270,154.725 -> 270,155 u$. */
    json_t *costs = json_object_get(j, "costs");
    cr_assert_eq(jint(costs, "recorded_microusd"), 243845);
    cr_assert_eq(jint(costs, "unpriced_requests"), 1);
    cr_assert_eq(jint(costs, "all_cloud_microusd"), 270155);
    cr_assert_eq(jint(costs, "cloud_microusd_per_mtok"), 164395);
    /* All local over the 10 h period: one machine (capacity 45M tokens in 10 h), fixed
     * $300 * 10/730 = 4,109,589 u$, plus 1,643,329 tokens * $0.011111/M = 18,259 u$. */
    cr_assert_eq(jint(costs, "all_local_machines"), 1);
    cr_assert_eq(jint(costs, "all_local_microusd"), 4109589 + 18259);

    /* 1,643,329 tokens in 10 h: 73 times that in a 730 h month. */
    json_t *volume = json_object_get(j, "volume");
    cr_assert_eq(jint(volume, "monthly_tokens"), 1643329 * 73);
    cr_assert_eq(jint(json_object_get(j, "window"), "period_ms"), 10 * HOUR);

    /* Break-even: ceil($300/month / ($0.164395 - $0.011111) per million) = 1,957,151,432. */
    json_t *be = json_object_get(j, "break_even");
    cr_assert_str_eq(json_string_value(json_object_get(be, "status")), "at");
    cr_assert_eq(jint(be, "monthly_tokens"), 1957151432);

    json_decref(j);
    sb_config_free(cfg);
}

Test(report, percentiles_on_known_values)
{
    write_ledger(mix, SB_ARRAY_LEN(mix));
    struct sb_config *cfg = parse_ok(mix_config);
    json_t *j = run_json(cfg);
    json_t *local = named(json_object_get(j, "backends"), "local");
    json_t *lat = json_object_get(local, "latency_ms");
    /* Latencies 1000, 1000, 2100 by nearest rank: p50 is the 2nd, p90 and p99 the 3rd. */
    cr_assert_eq(jint(lat, "count"), 3);
    cr_assert_float_eq(jnum(lat, "p50"), 1000, 1e-9);
    cr_assert_float_eq(jnum(lat, "p90"), 2100, 1e-9);
    cr_assert_float_eq(jnum(lat, "p99"), 2100, 1e-9);
    json_t *ttft = json_object_get(local, "ttft_ms");
    cr_assert_float_eq(jnum(ttft, "p50"), 120, 1e-9);
    cr_assert_float_eq(jnum(ttft, "p90"), 200, 1e-9);
    /* The failed claude request has no TTFT: one value. */
    json_t *claude_ttft =
        json_object_get(named(json_object_get(j, "backends"), "claude"), "ttft_ms");
    cr_assert_eq(jint(claude_ttft, "count"), 1);
    cr_assert_float_eq(jnum(claude_ttft, "p99"), 600, 1e-9);
    json_decref(j);
    sb_config_free(cfg);

    cr_assert_eq(sb_ledger_percentile_index(10, 50), 4);
    cr_assert_eq(sb_ledger_percentile_index(10, 90), 8);
    cr_assert_eq(sb_ledger_percentile_index(10, 99), 9);
    cr_assert_eq(sb_ledger_percentile_index(100, 99), 98);
    cr_assert_eq(sb_ledger_percentile_index(3, 50), 1);
    cr_assert_eq(sb_ledger_percentile_index(1, 99), 0);
    cr_assert_eq(sb_ledger_percentile_index(7, 100), 6);
}

Test(report, break_even_never_when_cloud_is_cheaper_per_token)
{
    write_ledger(mix, SB_ARRAY_LEN(mix));
    /* 1 MW of power makes local's marginal cost far above gpt-4o-mini's price per token. */
    struct sb_config *cfg = parse_ok("models:\n"
                                     "  - {name: local, backend: local, path: x.gguf}\n"
                                     "infra:\n"
                                     "  hardware_usd: 1000\n"
                                     "  power_watts: 1000000\n"
                                     "  electricity_usd_per_kwh: 1\n");
    json_t *j = run_json(cfg);
    json_t *be = json_object_get(j, "break_even");
    cr_assert_str_eq(json_string_value(json_object_get(be, "status")), "never");
    cr_assert(json_is_null(json_object_get(be, "monthly_tokens")));
    json_decref(j);
    sb_config_free(cfg);

    /* Without an infra section, local cost is unknown: null, never $0. */
    cfg = parse_ok("models:\n  - {name: local, backend: local, path: x.gguf}\n");
    j = run_json(cfg);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(j, "break_even"), "status")),
                     "unknown");
    cr_assert(json_is_null(json_object_get(json_object_get(j, "costs"), "all_local_microusd")));
    cr_assert(json_is_null(
        json_object_get(named(json_object_get(j, "backends"), "local"), "cost_microusd")));
    json_decref(j);
    sb_config_free(cfg);
}

/* Checks that every element opened is closed in order (void and self-closed ones aside). */
static void assert_balanced(const char *html)
{
    static const char *const voids[] = {"meta", "br", "img", "input", "link", "hr"};
    char stack[64][16];
    size_t depth = 0;
    for (const char *p = strchr(html, '<'); p != NULL; p = strchr(p + 1, '<')) {
        const char *end = strchr(p, '>');
        cr_assert_not_null(end);
        if (p[1] == '!')
            continue;
        bool closing = p[1] == '/';
        const char *name = p + (closing ? 2 : 1);
        size_t len = strcspn(name, " >/\n");
        cr_assert(len > 0 && len < 16, "odd tag at %.20s", p);
        char tag[16];
        memcpy(tag, name, len);
        tag[len] = '\0';
        if (!closing && end[-1] == '/')
            continue;
        bool is_void = false;
        for (size_t i = 0; i < SB_ARRAY_LEN(voids); i++)
            is_void = is_void || strcmp(tag, voids[i]) == 0;
        if (is_void)
            continue;
        if (closing) {
            cr_assert_gt(depth, 0, "</%s> closes nothing", tag);
            cr_assert_str_eq(stack[depth - 1], tag, "</%s> closes <%s>", tag, stack[depth - 1]);
            depth--;
        } else {
            cr_assert_lt(depth, 64);
            memcpy(stack[depth++], tag, len + 1);
        }
    }
    cr_assert_eq(depth, 0, "%zu elements left open, the last <%s>", depth,
                 depth > 0 ? stack[depth - 1] : "");
}

Test(report, html_is_self_contained_and_balanced)
{
    write_ledger(mix, SB_ARRAY_LEN(mix));
    struct sb_config *cfg = parse_ok(mix_config);
    char *html = run_report(cfg, SB_REPORT_HTML);
    cr_assert(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    cr_assert_not_null(strstr(html, "<svg"));
    cr_assert_not_null(strstr(html, "break-even: "));
    cr_assert_not_null(strstr(html, "<polyline"));
    cr_assert_null(strstr(html, "src="), "no external assets");
    cr_assert_null(strstr(html, "href="), "no external assets");
    assert_balanced(html);
    free(html);
    char *text = run_report(cfg, SB_REPORT_TEXT);
    cr_assert_not_null(strstr(text, "local breaks even at 1,957,151,432 tokens/month"), "%s", text);
    cr_assert_not_null(strstr(text, "1 unpriced cloud requests"), "%s", text);
    free(text);
    sb_config_free(cfg);
}

Test(report, unreadable_ledgers_say_why)
{
    /* Nothing listens on port 1: the server cannot be reached. */
    struct sb_report_params p = {.ledger = "postgres://sb:hunter2@127.0.0.1:1/ledger",
                                 .window_ms = DAY};
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    char err[512] = "";
    cr_assert_eq(sb_report_write(&p, &out, err, sizeof err), SB_EIO);
    cr_assert_not_null(strstr(err, "cannot connect to PostgreSQL"), "%s", err);
    cr_assert_not_null(strstr(err, "postgres://sb:***@127.0.0.1:1/ledger"), "%s", err);
    cr_assert_null(strstr(err, "hunter2"), "%s", err);
    p.ledger = db_path; /* not created */
    cr_assert_eq(sb_report_write(&p, &out, err, sizeof err), SB_EIO);
    cr_assert_not_null(strstr(err, "cannot open"), "%s", err);
    enum sb_advice v;
    p.ledger = "postgresql://127.0.0.1:1/x";
    cr_assert_eq(sb_advise_write(&p, &out, &v, err, sizeof err), SB_EIO);
    cr_assert_not_null(strstr(err, "127.0.0.1"), "%s", err);
    sb_buf_free(&out);
}

/* ---------------------------------------------------------------------------------------------
 * Advice
 * ------------------------------------------------------------------------------------------- */
static enum sb_advice advise(const char *yaml, char **text)
{
    struct sb_config *cfg = parse_ok(yaml);
    struct sb_report_params p = {
        .ledger = db_path, .cfg = cfg, .window_ms = 30 * DAY, .now_ms = NOW};
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    char err[512] = "";
    enum sb_advice v = SB_ADVICE_HYBRID;
    cr_assert_eq(sb_advise_write(&p, &out, &v, err, sizeof err), 0, "%s", err);
    *text = sb_buf_steal(&out);
    sb_config_free(cfg);
    return v;
}

/* Cheap hardware: $3,600 a year, 1 kW at $0.10. */
#define CHEAP_INFRA                                                                                \
    "infra:\n  hardware_usd: 3600\n  depreciation_years: 1\n  power_watts: 1000\n"                 \
    "  electricity_usd_per_kwh: 0.10\n"

Test(report, advise_all_sensitive_high_volume_is_local)
{
    /* Ten confidential local requests of 1.1M tokens each in one hour, 100 s busy each: 110,000
     * tokens/s, ~8 billion tokens a month against a break-even of ~1.6 billion. */
    struct spec rows[10];
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++)
        rows[i] = (struct spec){.ago_ms = HOUR - (int64_t)i * 200000,
                                .backend = "local",
                                .sensitivity = "confidential",
                                .prompt = 1000000,
                                .completion = 100000,
                                .latency = 10000,
                                .ttft = 50,
                                .tps = 100,
                                .cost = -1};
    write_ledger(rows, SB_ARRAY_LEN(rows));
    char *text = NULL;
    enum sb_advice v = advise("models:\n  - {name: local, backend: local, path: x.gguf, context: "
                              "1048576}\n" CHEAP_INFRA,
                              &text);
    cr_assert_eq(v, SB_ADVICE_LOCAL, "%s", text);
    cr_assert(strncmp(text, "Advice: LOCAL\n\n1. ", 18) == 0, "%s", text);
    cr_assert_not_null(strstr(text, "100.0% of requests carry PII or a sensitive class"), "%s",
                       text);
    cr_assert_not_null(strstr(text, "at or above local's break-even"), "%s", text);
    free(text);
}

Test(report, advise_tiny_volume_long_prompts_is_cloud)
{
    /* Three cloud requests in ten days, each with a prompt far above the local context. */
    struct spec rows[3];
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++)
        rows[i] = (struct spec){.ago_ms = (int64_t)(i + 1) * 3 * DAY,
                                .backend = "gpt-4o-mini",
                                .prompt = 100000,
                                .completion = 500,
                                .latency = 4000,
                                .ttft = 900,
                                .tps = 40,
                                .cost = 15300};
    write_ledger(rows, SB_ARRAY_LEN(rows));
    char *text = NULL;
    enum sb_advice v = advise("models:\n  - {name: local, backend: local, path: x.gguf, context: "
                              "4096}\n  - {name: gpt-4o-mini, backend: openai}\n" CHEAP_INFRA
                              "  tokens_per_s: 5000\n",
                              &text);
    cr_assert_eq(v, SB_ADVICE_CLOUD, "%s", text);
    cr_assert_not_null(strstr(text, "100.0% of prompts are longer than the local context of "
                                    "4,096 tokens"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "under half of local's break-even"), "%s", text);
    free(text);
}

Test(report, advise_mixed_is_hybrid)
{
    /* Twenty requests, half local and half cloud; four sensitive (20%), one long (5%). */
    struct spec rows[20];
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        bool local = i % 2 == 0;
        rows[i] = (struct spec){.ago_ms = (int64_t)(i + 1) * HOUR,
                                .backend = local ? "local" : "gpt-4o-mini",
                                .sensitivity = i < 4 ? "internal" : NULL,
                                .prompt = i == 5 ? 10000 : 1000,
                                .completion = 200,
                                .latency = 2000,
                                .ttft = local ? 100 : 300,
                                .tps = 30,
                                .cost = local ? -1 : 300};
    }
    write_ledger(rows, SB_ARRAY_LEN(rows));
    char *text = NULL;
    enum sb_advice v = advise("models:\n  - {name: local, backend: local, path: x.gguf, context: "
                              "4096}\n  - {name: gpt-4o-mini, backend: openai}\n" CHEAP_INFRA,
                              &text);
    cr_assert_eq(v, SB_ADVICE_HYBRID, "%s", text);
    cr_assert_not_null(strstr(text, "20.0% of requests carry PII or a sensitive class: route"),
                       "%s", text);
    cr_assert_not_null(strstr(text, "5.0% of prompts are longer"), "%s", text);
    cr_assert_not_null(strstr(text, "Local answers faster"), "%s", text);
    free(text);
}

Test(report, advise_json)
{
    write_ledger(mix, SB_ARRAY_LEN(mix));
    struct sb_config *cfg = parse_ok(mix_config);
    struct sb_report_params p = {.ledger = db_path,
                                 .cfg = cfg,
                                 .window_ms = 30 * DAY,
                                 .now_ms = NOW,
                                 .format = SB_REPORT_JSON};
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    char err[512] = "";
    enum sb_advice v;
    cr_assert_eq(sb_advise_write(&p, &out, &v, err, sizeof err), 0, "%s", err);
    json_error_t e;
    json_t *j = json_loads(out.p, 0, &e);
    cr_assert_not_null(j, "%s: %s", e.text, out.p);
    cr_assert_str_eq(json_string_value(json_object_get(j, "verdict")), sb_advice_name(v));
    cr_assert_gt(json_array_size(json_object_get(j, "reasons")), 0);
    json_decref(j);
    sb_buf_free(&out);
    sb_config_free(cfg);
}
