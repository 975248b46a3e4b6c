/* Tests for the metrics registry: exact sums under concurrent updates, the exposition's
 * structure and escaping, the series limit, and promtool's verdict on the text. */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metrics/metrics.h"

static char *render(void)
{
    struct sb_buf b;
    sb_buf_init(&b, 1 << 24);
    cr_assert_eq(sb_metrics_render(&b), 0);
    return sb_buf_steal(&b);
}

/* Returns the value on the line that starts with prefix (a series name with its labels and the
 * space), or fails the test. */
static double value_of(const char *text, const char *series)
{
    size_t len = strlen(series);
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        cr_assert_not_null(end, "the text does not end with a newline");
        if ((size_t)(end - line) > len && strncmp(line, series, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
        line = end + 1;
    }
    cr_assert_fail("no series %s in:\n%s", series, text);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Concurrency: every update counted, exactly
 * ------------------------------------------------------------------------------------------- */
enum { THREADS = 8, ITERS = 50000 };

static void *hammer(void *arg)
{
    int id = (int)(intptr_t)arg;
    /* Half the updates through a handle resolved once, half through a lookup each time. */
    const char *const labels[] = {"local", "local", "200"};
    struct sb_metric_series *req = sb_metrics_series(SB_METRIC_REQUESTS, labels);
    const char *const mb[] = {"local", "local"};
    struct sb_metric_series *dur = sb_metrics_series(SB_METRIC_REQUEST_DURATION, mb);
    /* Each thread also creates label sets of its own while the others read the same map. */
    char model[16];
    snprintf(model, sizeof model, "m%d", id);
    const char *const own[] = {model, "local", "200"};
    for (int i = 0; i < ITERS; i++) {
        sb_metrics_add(req, 1);
        sb_metrics_counter_add(SB_METRIC_REQUESTS, labels, 1);
        sb_metrics_counter_add(SB_METRIC_REQUESTS, own, 2);
        /* 0.25 s and 3 s: different buckets, and sums exactly representable in microseconds. */
        sb_metrics_observe(dur, i % 2 == 0 ? 0.25 : 3.0);
        sb_metrics_histogram_observe(SB_METRIC_GATEWAY_OVERHEAD, NULL, 0.00002);
        sb_metrics_gauge_add(sb_metrics_series(SB_METRIC_QUEUE_DEPTH, mb), i % 2 == 0 ? 1 : -1);
    }
    return NULL;
}

Test(metrics, concurrent_updates_sum_exactly)
{
    pthread_t th[THREADS];
    for (int i = 0; i < THREADS; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, hammer, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    char *text = render();
    cr_assert_eq(value_of(text, "switchboard_requests_total{model=\"local\",backend=\"local\","
                                "status=\"200\"}"),
                 2.0 * THREADS * ITERS);
    for (int i = 0; i < THREADS; i++) {
        char series[128];
        snprintf(series, sizeof series,
                 "switchboard_requests_total{model=\"m%d\",backend=\"local\",status=\"200\"}", i);
        cr_assert_eq(value_of(text, series), 2.0 * ITERS);
    }
    const char *h = "switchboard_request_duration_seconds";
    char series[160];
    snprintf(series, sizeof series, "%s_count{model=\"local\",backend=\"local\"}", h);
    cr_assert_eq(value_of(text, series), (double)THREADS * ITERS);
    snprintf(series, sizeof series, "%s_sum{model=\"local\",backend=\"local\"}", h);
    cr_assert_eq(value_of(text, series), THREADS * (ITERS / 2) * (0.25 + 3.0));
    snprintf(series, sizeof series, "%s_bucket{model=\"local\",backend=\"local\",le=\"0.25\"}", h);
    cr_assert_eq(value_of(text, series), (double)THREADS * ITERS / 2);
    snprintf(series, sizeof series, "%s_bucket{model=\"local\",backend=\"local\",le=\"2.5\"}", h);
    cr_assert_eq(value_of(text, series), (double)THREADS * ITERS / 2);
    snprintf(series, sizeof series, "%s_bucket{model=\"local\",backend=\"local\",le=\"5\"}", h);
    cr_assert_eq(value_of(text, series), (double)THREADS * ITERS);
    /* 20 µs, 400000 times: exact only because the sum is kept in whole nanoseconds. */
    cr_assert_eq(value_of(text, "switchboard_gateway_overhead_seconds_count"),
                 (double)THREADS * ITERS);
    cr_assert_not_null(strstr(text, "\nswitchboard_gateway_overhead_seconds_sum 8\n"), "%s", text);
    cr_assert_eq(value_of(text, "switchboard_queue_depth{model=\"local\"}"), 0);
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * The exposition
 * ------------------------------------------------------------------------------------------- */
static void populate(void)
{
    const char *const req[] = {"local", "local", "200"};
    sb_metrics_counter_add(SB_METRIC_REQUESTS, req, 3);
    const char *const req2[] = {"gpt-4o", "openai", "429"};
    sb_metrics_counter_add(SB_METRIC_REQUESTS, req2, 1);
    const char *const mb[] = {"local", "local"};
    sb_metrics_histogram_observe(SB_METRIC_REQUEST_DURATION, mb, 0.042);
    sb_metrics_histogram_observe(SB_METRIC_REQUEST_DURATION, mb, 500);
    sb_metrics_histogram_observe(SB_METRIC_TTFT, mb, 0.09);
    sb_metrics_histogram_observe(SB_METRIC_INTER_TOKEN, mb, 0.018);
    sb_metrics_histogram_observe(SB_METRIC_TOKENS_PER_SECOND, mb, 55.5);
    const char *const dirs[][3] = {{"local", "local", "prompt"},
                                   {"local", "local", "cached"},
                                   {"local", "local", "completion"}};
    for (size_t i = 0; i < 3; i++)
        sb_metrics_counter_add(SB_METRIC_TOKENS, dirs[i], 10 * (i + 1));
    const char *const cost[] = {"gpt-4o", "openai"};
    sb_metrics_counter_add(SB_METRIC_COST, cost, 1234);
    const char *const model[] = {"local"};
    sb_metrics_gauge_set(SB_METRIC_QUEUE_DEPTH, model, 2);
    sb_metrics_histogram_observe(SB_METRIC_QUEUE_SECONDS, model, 0.003);
    sb_metrics_gauge_set(SB_METRIC_BUSY_SLOTS, model, 4);
    const char *const backend[] = {"openai"};
    sb_metrics_gauge_set(SB_METRIC_BREAKER_STATE, backend, 2);
    sb_metrics_counter_add(SB_METRIC_RETRIES, backend, 2);
    const char *const fallback[] = {"gpt-4o", "local"};
    sb_metrics_counter_add(SB_METRIC_FALLBACKS, fallback, 1);
    sb_metrics_histogram_observe(SB_METRIC_GATEWAY_OVERHEAD, NULL, 0.00004);
    sb_metrics_counter_add(SB_METRIC_LEDGER_ROWS, NULL, 4);
    /* A label value that needs every escape. */
    const char *const odd[] = {"a \"quoted\"\\ model\nwith a newline", "", "500"};
    sb_metrics_counter_add(SB_METRIC_REQUESTS, odd, 1);
}

static bool name_char(char c, bool first)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
           (!first && c >= '0' && c <= '9');
}

/* Checks one sample line "name{l="v",...} value" and returns the name's length. */
static size_t check_sample(const char *line, size_t len)
{
    size_t i = 0;
    while (i < len && name_char(line[i], i == 0))
        i++;
    size_t name_len = i;
    cr_assert_gt(name_len, 0, "%.*s", (int)len, line);
    if (i < len && line[i] == '{') {
        i++;
        while (i < len && line[i] != '}') {
            size_t start = i;
            while (i < len && name_char(line[i], i == start))
                i++;
            cr_assert_gt(i, start, "a label name in %.*s", (int)len, line);
            cr_assert(i + 1 < len && line[i] == '=' && line[i + 1] == '"', "%.*s", (int)len, line);
            i += 2;
            while (i < len && line[i] != '"') {
                if (line[i] == '\\') {
                    cr_assert(i + 1 < len && strchr("\\\"n", line[i + 1]) != NULL,
                              "a bad escape in %.*s", (int)len, line);
                    i++;
                }
                i++;
            }
            cr_assert_lt(i, len, "%.*s", (int)len, line);
            i++;
            if (i < len && line[i] == ',')
                i++;
        }
        cr_assert_lt(i, len, "%.*s", (int)len, line);
        i++;
    }
    cr_assert(i < len && line[i] == ' ', "%.*s", (int)len, line);
    char *end = NULL;
    char value[64];
    snprintf(value, sizeof value, "%.*s", (int)(len - i - 1), line + i + 1);
    double v = strtod(value, &end);
    cr_assert(end != value && *end == '\0', "a bad value in %.*s", (int)len, line);
    cr_assert(isfinite(v));
    return name_len;
}

Test(metrics, exposition_is_well_formed)
{
    populate();
    char *text = render();
    size_t len = strlen(text);
    cr_assert_gt(len, 0);
    cr_assert_eq(text[len - 1], '\n');

    /* Walk the lines: each metric's HELP, then TYPE, then only its own samples. */
    size_t metric = 0;
    const struct sb_metric_def *def = NULL;
    double last_bucket = -1, last_le = -INFINITY;
    for (const char *line = text; *line != '\0';) {
        const char *end = strchr(line, '\n');
        size_t n = (size_t)(end - line);
        if (strncmp(line, "# HELP ", 7) == 0) {
            cr_assert_lt(metric, SB_METRIC_COUNT, "more metrics than the table has");
            def = sb_metrics_def((enum sb_metric)metric++);
            cr_assert(strncmp(line + 7, def->name, strlen(def->name)) == 0, "%.*s", (int)n, line);
            const char *type_line = end + 1;
            char want[160];
            snprintf(want, sizeof want, "# TYPE %s %s\n", def->name,
                     def->type == SB_METRIC_COUNTER ? "counter"
                     : def->type == SB_METRIC_GAUGE ? "gauge"
                                                    : "histogram");
            cr_assert(strncmp(type_line, want, strlen(want)) == 0, "want %s", want);
            line = type_line + strlen(want);
            last_bucket = -1;
            last_le = -INFINITY;
            continue;
        }
        cr_assert_neq(line[0], '#', "%.*s", (int)n, line);
        cr_assert_not_null(def, "a sample before any HELP");
        size_t name_len = check_sample(line, n);
        cr_assert(strncmp(line, def->name, strlen(def->name)) == 0, "%.*s under %s", (int)n, line,
                  def->name);
        const char *suffix = line + strlen(def->name);
        size_t suffix_len = name_len - strlen(def->name);
        if (def->type == SB_METRIC_HISTOGRAM) {
            double v = strtod(strrchr(line, ' ') + 1, NULL);
            if (suffix_len == 7 && strncmp(suffix, "_bucket", 7) == 0) {
                /* Buckets rise, and their bounds increase up to +Inf. */
                const char *le = strstr(line, "le=\"");
                cr_assert_not_null(le);
                double bound = strncmp(le + 4, "+Inf", 4) == 0 ? INFINITY : strtod(le + 4, NULL);
                if (last_le == INFINITY)
                    last_le = -INFINITY, last_bucket = -1; /* the next series */
                cr_assert_gt(bound, last_le, "%.*s", (int)n, line);
                cr_assert_geq(v, last_bucket, "%.*s", (int)n, line);
                last_le = bound;
                last_bucket = v;
            } else if (suffix_len == 6 && strncmp(suffix, "_count", 6) == 0) {
                cr_assert_eq(last_le, INFINITY, "_count before the +Inf bucket");
                cr_assert_eq(v, last_bucket, "_count differs from the +Inf bucket");
            } else {
                cr_assert(suffix_len == 4 && strncmp(suffix, "_sum", 4) == 0, "%.*s", (int)n, line);
            }
        } else {
            cr_assert_eq(suffix_len, 0, "%.*s", (int)n, line);
        }
        line = end + 1;
    }
    cr_assert_eq(metric, SB_METRIC_COUNT, "every metric has its HELP and TYPE");
    cr_assert_not_null(
        strstr(text, "switchboard_requests_total{model=\"a \\\"quoted\\\"\\\\ model\\nwith a "
                     "newline\",backend=\"\",status=\"500\"} 1\n"),
        "%s", text);
    /* Series come sorted by their label values. */
    cr_assert_lt(strstr(text, "model=\"gpt-4o\",backend=\"openai\",status=\"429\"} 1"),
                 strstr(text, "model=\"local\",backend=\"local\",status=\"200\"} 3"));
    /* 500 s is past the last bound: only +Inf holds it. */
    cr_assert_not_null(strstr(text, "switchboard_request_duration_seconds_bucket{model=\"local\","
                                    "backend=\"local\",le=\"120\"} 1\n"));
    cr_assert_not_null(strstr(text, "switchboard_request_duration_seconds_bucket{model=\"local\","
                                    "backend=\"local\",le=\"+Inf\"} 2\n"));
    cr_assert_not_null(strstr(text, "switchboard_request_duration_seconds_sum{model=\"local\","
                                    "backend=\"local\"} 500.042\n"));
    cr_assert_not_null(strstr(text, "switchboard_gateway_overhead_seconds_bucket{le=\"5e-05\"} 1"));
    cr_assert_not_null(strstr(text, "switchboard_breaker_state{backend=\"openai\"} 2\n"));
    /* Label-less metrics show their zero before any update. */
    cr_assert_not_null(strstr(text, "\nswitchboard_ledger_dropped_total 0\n"));
    free(text);
}

Test(metrics, mismatched_and_invalid_updates_do_nothing)
{
    const char *const model[] = {"local"};
    /* Adding to a gauge, observing a counter, an id out of range: all ignored. */
    sb_metrics_add(sb_metrics_series(SB_METRIC_QUEUE_DEPTH, model), 5);
    sb_metrics_observe(sb_metrics_series(SB_METRIC_RETRIES, model), 1.0);
    sb_metrics_counter_add(SB_METRIC_COUNT, NULL, 1);
    sb_metrics_counter_add((enum sb_metric) - 1, NULL, 1);
    cr_assert_null(sb_metrics_def(SB_METRIC_COUNT));
    /* NaN and negative observations count as zero. */
    sb_metrics_histogram_observe(SB_METRIC_GATEWAY_OVERHEAD, NULL, NAN);
    sb_metrics_histogram_observe(SB_METRIC_GATEWAY_OVERHEAD, NULL, -1);
    /* A missing label list is all empty values. */
    sb_metrics_counter_add(SB_METRIC_FALLBACKS, NULL, 1);
    char *text = render();
    cr_assert_eq(value_of(text, "switchboard_queue_depth{model=\"local\"}"), 0);
    cr_assert_eq(value_of(text, "switchboard_retries_total{backend=\"local\"}"), 0);
    cr_assert_eq(value_of(text, "switchboard_gateway_overhead_seconds_count"), 2);
    cr_assert_eq(value_of(text, "switchboard_gateway_overhead_seconds_sum"), 0);
    cr_assert_eq(value_of(text, "switchboard_gateway_overhead_seconds_bucket{le=\"1e-05\"}"), 2);
    cr_assert_eq(value_of(text, "switchboard_fallbacks_total{from=\"\",to=\"\"}"), 1);
    free(text);
}

Test(metrics, long_label_values_are_cut_at_a_character)
{
    char value[SB_METRICS_MAX_LABEL_VALUE + 10];
    memset(value, 'a', SB_METRICS_MAX_LABEL_VALUE - 1);
    /* A two-byte character straddles the limit. */
    memcpy(value + SB_METRICS_MAX_LABEL_VALUE - 1, "\xc3\xa9tail", 7);
    const char *const labels[] = {value};
    sb_metrics_counter_add(SB_METRIC_RETRIES, labels, 1);
    /* The same prefix with different tails is the same series once cut. */
    memcpy(value + SB_METRICS_MAX_LABEL_VALUE - 1, "\xc3\xa9TAIL", 7);
    sb_metrics_counter_add(SB_METRIC_RETRIES, labels, 1);
    char *text = render();
    char want[SB_METRICS_MAX_LABEL_VALUE + 64];
    snprintf(want, sizeof want, "switchboard_retries_total{backend=\"%.*s\"} 2\n",
             SB_METRICS_MAX_LABEL_VALUE - 1, value);
    cr_assert_not_null(strstr(text, want), "%s", text);
    free(text);
}

Test(metrics, the_series_limit_sends_the_rest_to_a_sink)
{
    char name[32];
    for (int i = 0; i < SB_METRICS_MAX_SERIES + 10; i++) {
        snprintf(name, sizeof name, "b%05d", i);
        const char *const labels[] = {name};
        sb_metrics_counter_add(SB_METRIC_RETRIES, labels, 1);
    }
    char *text = render();
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, "\nswitchboard_retries_total{")) != NULL; p++)
        n++;
    cr_assert_eq(n, SB_METRICS_MAX_SERIES);
    cr_assert_null(strstr(text, "backend=\"b02050\""));
    free(text);
    sb_metrics_reset();
    text = render();
    cr_assert_null(strstr(text, "backend=\"b00000\""));
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * Outside checks
 * ------------------------------------------------------------------------------------------- */
Test(metrics, promtool_accepts_the_exposition)
{
    const char *promtool = NULL;
    static const char *const candidates[] = {"/usr/bin/promtool", "/usr/local/bin/promtool"};
    for (size_t i = 0; i < SB_ARRAY_LEN(candidates) && promtool == NULL; i++)
        if (access(candidates[i], X_OK) == 0)
            promtool = candidates[i];
    if (promtool == NULL)
        cr_skip_test("promtool not installed (Debian package prometheus); not checked");
    populate();
    char *text = render();
    char path[] = "/tmp/sb-metrics-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    size_t len = strlen(text);
    cr_assert_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "%s check metrics < %s 2>&1", promtool, path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[8192];
    size_t got = fread(out, 1, sizeof out - 1, p);
    out[got] = '\0';
    int status = pclose(p);
    unlink(path);
    /* promtool prints nothing and exits 0 when the text is valid and passes its lint. */
    cr_assert_eq(status, 0, "promtool: %s\n%s", out, text);
    cr_assert_eq(got, 0, "promtool: %s", out);
    free(text);
}

Test(metrics, every_metric_is_documented)
{
    FILE *f = fopen("docs/metrics.md", "rb");
    if (f == NULL)
        cr_skip_test("docs/metrics.md not found: run from the repository root");
    struct sb_buf doc;
    sb_buf_init(&doc, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cr_assert_eq(sb_buf_append(&doc, chunk, n), 0);
    fclose(f);
    for (int id = 0; id < SB_METRIC_COUNT; id++) {
        const struct sb_metric_def *def = sb_metrics_def((enum sb_metric)id);
        char row[128];
        snprintf(row, sizeof row, "| `%s` |", def->name);
        cr_assert_not_null(strstr(doc.p, row), "docs/metrics.md lacks a row for %s", def->name);
        /* Table sanity: bounds increase, names are unique. */
        for (size_t b = 1; b < def->n_buckets; b++)
            cr_assert_gt(def->buckets[b], def->buckets[b - 1], "%s", def->name);
        cr_assert_eq(def->type == SB_METRIC_HISTOGRAM, def->n_buckets > 0, "%s", def->name);
        cr_assert_leq(def->sum_decimals, 9);
        for (int j = 0; j < id; j++)
            cr_assert_str_neq(def->name, sb_metrics_def((enum sb_metric)j)->name);
    }
    sb_buf_free(&doc);
}
