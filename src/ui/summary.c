/* The dashboard's summary: the metrics registry read back series by series (sb_metrics_read, the
 * same values the exposition prints), summed per backend, per model asked and in total, with
 * percentiles estimated from the histograms' buckets, then written as one JSON object together
 * with the recent decisions. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics/metrics.h"
#include "resil/breaker.h"
#include "ui/ui.h"

/* ---------------------------------------------------------------------------------------------
 * What is summed
 * ------------------------------------------------------------------------------------------- */
/* The values of switchboard_tokens_total's direction label, in the order the JSON lists them. */
enum { DIR_PROMPT, DIR_CACHED, DIR_COMPLETION, N_DIRS };
static const char *const directions[N_DIRS] = {"prompt", "cached", "completion"};

/* The histograms summarized, each under its JSON key; all are labelled {model, backend}. */
enum { H_TTFT, H_LATENCY, H_RATE, N_HISTS };
static const struct hist_kind {
    enum sb_metric metric;
    const char *key;
} hist_kinds[N_HISTS] = {
    [H_TTFT] = {SB_METRIC_TTFT, "ttft_seconds"},
    [H_LATENCY] = {SB_METRIC_REQUEST_DURATION, "latency_seconds"},
    [H_RATE] = {SB_METRIC_TOKENS_PER_SECOND, "generation_tokens_per_second"},
};

/* The percentiles written for each histogram. */
static const struct quantile {
    const char *key;
    double q;
} quantiles[] = {{"p50", 0.50}, {"p95", 0.95}, {"p99", 0.99}};

/* The gauges, each kept per backend (a breaker is named after its model; queue and slots belong
 * to the local model that serves). */
enum { G_BREAKER, G_QUEUE, G_BUSY, N_GAUGES };
static const enum sb_metric gauge_metrics[N_GAUGES] = {
    [G_BREAKER] = SB_METRIC_BREAKER_STATE, /* {backend} */
    [G_QUEUE] = SB_METRIC_QUEUE_DEPTH,     /* {model} */
    [G_BUSY] = SB_METRIC_BUSY_SLOTS,       /* {model} */
};

/* Merged histogram: every series of one metric shares its bounds, so buckets add up. */
struct hist {
    uint64_t cumulative[SB_METRICS_MAX_BUCKETS + 1];
    double sum;
};

/* One row of a table: a backend, a model asked, or the total. */
struct group {
    char name[SB_METRICS_MAX_LABEL_VALUE + 1];
    bool configured; /* a model of the config (else a label value seen in the registry) */
    bool priced;
    uint64_t requests;
    uint64_t classes[5]; /* 1xx .. 5xx */
    uint64_t errors;     /* status >= 400 */
    uint64_t tokens[N_DIRS];
    uint64_t cost_microusd;
    struct hist hist[N_HISTS];
    bool has_gauge[N_GAUGES];
    int64_t gauge[N_GAUGES];
};

struct groups {
    struct group *v; /* owned */
    size_t n, cap;
};

struct tally {
    struct group total;
    struct groups backends; /* by the backend label */
    struct groups models;   /* by the model label */
    bool nomem;
};

/* The row named name, made (at the end) when new; NULL when out of memory. */
static struct group *group_get(struct tally *t, struct groups *gs, const char *name)
{
    for (size_t i = 0; i < gs->n; i++) {
        if (strcmp(gs->v[i].name, name) == 0)
            return &gs->v[i];
    }
    if (gs->n == gs->cap) {
        size_t cap = gs->cap ? 2 * gs->cap : 8;
        struct group *v = realloc(gs->v, cap * sizeof(*v));
        if (v == NULL) {
            t->nomem = true;
            return NULL;
        }
        gs->v = v;
        gs->cap = cap;
    }
    struct group *g = &gs->v[gs->n++];
    memset(g, 0, sizeof(*g));
    snprintf(g->name, sizeof(g->name), "%s", name);
    return g;
}

/* Applies fn to the total and to the rows of the backend and of the model named. */
static void for_rows(struct tally *t, const char *model, const char *backend,
                     void (*fn)(struct group *g, const struct sb_metric_reading *r, bool model_row),
                     const struct sb_metric_reading *r)
{
    struct group *b = group_get(t, &t->backends, backend);
    struct group *m = model != NULL ? group_get(t, &t->models, model) : NULL;

    fn(&t->total, r, false);
    if (b != NULL)
        fn(b, r, false);
    if (m != NULL)
        fn(m, r, true);
}

static void add_requests(struct group *g, const struct sb_metric_reading *r, bool model_row)
{
    long status = strtol(r->labels[2], NULL, 10);

    SB_UNUSED(model_row);
    g->requests += r->counter;
    if (status >= 100 && status <= 599)
        g->classes[status / 100 - 1] += r->counter;
    if (status >= 400 || status < 100)
        g->errors += r->counter;
}

static void add_tokens(struct group *g, const struct sb_metric_reading *r, bool model_row)
{
    SB_UNUSED(model_row);
    for (size_t d = 0; d < N_DIRS; d++) {
        if (strcmp(r->labels[2], directions[d]) == 0)
            g->tokens[d] += r->counter;
    }
}

static void add_cost(struct group *g, const struct sb_metric_reading *r, bool model_row)
{
    SB_UNUSED(model_row);
    g->cost_microusd += r->counter;
}

/* Histograms are kept per backend and in total: the model table shows counts only. */
static void add_hist(struct group *g, const struct sb_metric_reading *r, bool model_row)
{
    if (model_row)
        return;
    for (size_t k = 0; k < N_HISTS; k++) {
        if (r->def != sb_metrics_def(hist_kinds[k].metric))
            continue;
        for (size_t b = 0; b <= r->def->n_buckets; b++)
            g->hist[k].cumulative[b] += r->cumulative[b];
        g->hist[k].sum += r->sum;
    }
}

/* sb_metrics_read callbacks: labels[0] is the model asked, labels[1] the backend. */
static void read_by_model_backend(const struct sb_metric_reading *r, void *ud)
{
    struct tally *t = ud;
    const struct sb_metric_def *def = r->def;

    if (def == sb_metrics_def(SB_METRIC_REQUESTS))
        for_rows(t, r->labels[0], r->labels[1], add_requests, r);
    else if (def == sb_metrics_def(SB_METRIC_TOKENS))
        for_rows(t, r->labels[0], r->labels[1], add_tokens, r);
    else if (def == sb_metrics_def(SB_METRIC_COST))
        for_rows(t, r->labels[0], r->labels[1], add_cost, r);
    else
        for_rows(t, NULL, r->labels[1], add_hist, r);
}

/* Gauges have one label, the backend's name; the total sums queue and slots. */
static void read_gauge(const struct sb_metric_reading *r, void *ud)
{
    struct tally *t = ud;
    struct group *g = group_get(t, &t->backends, r->labels[0]);

    for (size_t k = 0; k < N_GAUGES && g != NULL; k++) {
        if (r->def != sb_metrics_def(gauge_metrics[k]))
            continue;
        g->has_gauge[k] = true;
        g->gauge[k] = r->gauge;
        if (k != G_BREAKER) {
            t->total.has_gauge[k] = true;
            t->total.gauge[k] += r->gauge;
        }
    }
}

static void tally_read(struct tally *t, const struct sb_ui_summary_params *p)
{
    static const enum sb_metric by_model_backend[] = {
        SB_METRIC_REQUESTS, SB_METRIC_TOKENS,           SB_METRIC_COST,
        SB_METRIC_TTFT,     SB_METRIC_REQUEST_DURATION, SB_METRIC_TOKENS_PER_SECOND,
    };

    /* The configured models first, in the config's order, so that idle ones are listed too. */
    for (size_t i = 0; i < p->n_models; i++) {
        struct group *b = group_get(t, &t->backends, p->models[i].name);
        struct group *m = group_get(t, &t->models, p->models[i].name);
        if (b != NULL) {
            b->configured = true;
            b->priced = p->models[i].priced;
        }
        if (m != NULL) {
            m->configured = true;
            m->priced = p->models[i].priced;
        }
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(by_model_backend); i++)
        sb_metrics_read(by_model_backend[i], read_by_model_backend, t);
    for (size_t k = 0; k < N_GAUGES; k++)
        sb_metrics_read(gauge_metrics[k], read_gauge, t);
}

/* ---------------------------------------------------------------------------------------------
 * Percentiles
 * ------------------------------------------------------------------------------------------- */
double sb_ui_quantile(double q, const double *bounds, size_t n, const uint64_t *cumulative)
{
    uint64_t total = cumulative[n];
    double rank = q * (double)total;
    size_t b = 0;

    if (total == 0 || !(q > 0 && q < 1))
        return NAN;
    while (b < n && (double)cumulative[b] < rank)
        b++;
    if (b == n)
        return n > 0 ? bounds[n - 1] : NAN; /* in the +Inf bucket: its lower bound is all we know */
    double lower = b > 0 ? bounds[b - 1] : 0;
    double below = b > 0 ? (double)cumulative[b - 1] : 0;
    return lower + (bounds[b] - lower) * (rank - below) / ((double)cumulative[b] - below);
}

/* ---------------------------------------------------------------------------------------------
 * JSON. Each writer appends when *rc is 0 and leaves the first failure in it.
 * ------------------------------------------------------------------------------------------- */
static void put(struct sb_buf *o, int *rc, const char *fmt, ...) SB_PRINTF(3, 4);

static void put(struct sb_buf *o, int *rc, const char *fmt, ...)
{
    va_list ap;

    if (*rc != 0)
        return;
    va_start(ap, fmt);
    *rc = sb_buf_vprintf(o, fmt, ap);
    va_end(ap);
}

/* "text", escaped. */
static void put_string(struct sb_buf *o, int *rc, const char *s)
{
    put(o, rc, "\"");
    if (*rc == 0)
        *rc = sb_buf_append_json_escaped(o, sb_str_c(s));
    put(o, rc, "\"");
}

/* A string, or null when it is empty. */
static void put_opt_string(struct sb_buf *o, int *rc, const char *s)
{
    if (s == NULL || s[0] == '\0')
        put(o, rc, "null");
    else
        put_string(o, rc, s);
}

/* A number, or null when it is not finite (a percentile of nothing). */
static void put_number(struct sb_buf *o, int *rc, double v)
{
    if (isfinite(v))
        put(o, rc, "%.9g", v);
    else
        put(o, rc, "null");
}

/* "<key>_microusd":N,"<key>_usd":N.NNNNNN — the dollars written exactly from the integer. */
static void put_cost(struct sb_buf *o, int *rc, const char *key, uint64_t microusd)
{
    put(o, rc, "\"%s_microusd\":%llu,\"%s_usd\":%llu.%06llu", key, (unsigned long long)microusd,
        key, (unsigned long long)(microusd / 1000000), (unsigned long long)(microusd % 1000000));
}

static void put_hist(struct sb_buf *o, int *rc, const struct hist *h, enum sb_metric metric)
{
    const struct sb_metric_def *def = sb_metrics_def(metric);

    put(o, rc, "{\"count\":%llu,\"sum\":", (unsigned long long)h->cumulative[def->n_buckets]);
    put_number(o, rc, h->sum);
    for (size_t i = 0; i < SB_ARRAY_LEN(quantiles); i++) {
        put(o, rc, ",\"%s\":", quantiles[i].key);
        put_number(o, rc,
                   sb_ui_quantile(quantiles[i].q, def->buckets, def->n_buckets, h->cumulative));
    }
    put(o, rc, "}");
}

/* The members every row has: requests by status class, tokens and cost. */
static void put_counts(struct sb_buf *o, int *rc, const struct group *g)
{
    put(o, rc, "\"requests\":%llu,\"status_classes\":{", (unsigned long long)g->requests);
    for (size_t c = 0; c < SB_ARRAY_LEN(g->classes); c++)
        put(o, rc, "%s\"%zuxx\":%llu", c ? "," : "", c + 1, (unsigned long long)g->classes[c]);
    put(o, rc, "},\"errors\":%llu,\"tokens\":{", (unsigned long long)g->errors);
    for (size_t d = 0; d < N_DIRS; d++)
        put(o, rc, "%s\"%s\":%llu", d ? "," : "", directions[d], (unsigned long long)g->tokens[d]);
    put(o, rc, "},");
    put_cost(o, rc, "cost", g->cost_microusd);
}

static void put_hists(struct sb_buf *o, int *rc, const struct group *g)
{
    for (size_t k = 0; k < N_HISTS; k++) {
        put(o, rc, ",\"%s\":", hist_kinds[k].key);
        put_hist(o, rc, &g->hist[k], hist_kinds[k].metric);
    }
}

/* ,"key":N or ,"key":null when the gauge has no series for this row. */
static void put_gauge(struct sb_buf *o, int *rc, const struct group *g, size_t k, const char *key)
{
    if (g->has_gauge[k])
        put(o, rc, ",\"%s\":%lld", key, (long long)g->gauge[k]);
    else
        put(o, rc, ",\"%s\":null", key);
}

static void put_backend(struct sb_buf *o, int *rc, const struct group *g)
{
    put(o, rc, "{\"name\":");
    put_string(o, rc, g->name);
    put(o, rc, ",\"configured\":%s,\"priced\":%s,", g->configured ? "true" : "false",
        g->priced ? "true" : "false");
    put_counts(o, rc, g);
    put_hists(o, rc, g);
    put(o, rc, ",\"breaker\":");
    if (g->has_gauge[G_BREAKER])
        put_string(o, rc, sb_breaker_state_name((enum sb_breaker_state)g->gauge[G_BREAKER]));
    else
        put(o, rc, "null");
    put_gauge(o, rc, g, G_QUEUE, "queue_depth");
    put_gauge(o, rc, g, G_BUSY, "busy_slots");
    put(o, rc, "}");
}

static void put_model(struct sb_buf *o, int *rc, const struct group *g)
{
    put(o, rc, "{\"name\":");
    put_string(o, rc, g->name);
    put(o, rc, ",\"configured\":%s,\"priced\":%s,", g->configured ? "true" : "false",
        g->priced ? "true" : "false");
    put_counts(o, rc, g);
    put(o, rc, "}");
}

static void put_decision(struct sb_buf *o, int *rc, const struct sb_ui_decision *d)
{
    put(o, rc, "{\"time_ms\":%lld,\"request_id\":", (long long)d->ts_ms);
    put_string(o, rc, d->request_id);
    put(o, rc, ",\"api\":");
    put_string(o, rc, d->api);
    put(o, rc, ",\"model\":");
    put_string(o, rc, d->model);
    put(o, rc, ",\"backend\":");
    put_opt_string(o, rc, d->backend);
    put(o, rc, ",\"rule\":");
    put_opt_string(o, rc, d->rule);
    put(o, rc, ",\"reason\":");
    put_opt_string(o, rc, d->reason);
    put(o, rc, ",\"sensitivity\":");
    put_opt_string(o, rc, d->sensitivity);
    put(o, rc, ",\"status\":%d,\"error_class\":", (int)d->status);
    put_opt_string(o, rc, d->error_class);
    put(o, rc, ",\"attempts\":%d,\"streamed\":%s,\"prompt_tokens\":%lld,\"completion_tokens\":%lld",
        (int)d->attempts, d->streamed ? "true" : "false", (long long)d->prompt_tokens,
        (long long)d->completion_tokens);
    put(o, rc, ",\"cost_microusd\":");
    if (d->cost_microusd >= 0)
        put(o, rc, "%lld", (long long)d->cost_microusd);
    else
        put(o, rc, "null");
    put(o, rc, ",\"latency_ms\":");
    put_number(o, rc, d->latency_ms);
    put(o, rc, ",\"ttft_ms\":");
    put_number(o, rc, d->ttft_ms >= 0 ? d->ttft_ms : NAN);
    put(o, rc, "}");
}

static void put_recent(struct sb_buf *o, int *rc, struct sb_ui *ui)
{
    size_t cap = ui != NULL ? sb_ui_capacity(ui) : 0;
    struct sb_ui_decision *list = cap != 0 ? malloc(cap * sizeof(*list)) : NULL;
    uint64_t total = 0;
    size_t n = list != NULL ? sb_ui_recent(ui, list, cap, &total) : 0;

    if (cap != 0 && list == NULL && *rc == 0)
        *rc = SB_ENOMEM;
    put(o, rc, "{\"capacity\":%zu,\"total\":%llu,\"decisions\":[", cap, (unsigned long long)total);
    for (size_t i = 0; i < n; i++) {
        put(o, rc, "%s", i ? "," : "");
        put_decision(o, rc, &list[i]);
    }
    put(o, rc, "]}");
    free(list);
}

/* The header members: who, since when, and what the numbers are. */
static void put_header(struct sb_buf *o, int *rc, const struct sb_ui_summary_params *p)
{
    time_t now_s = (time_t)(p->now_ms / 1000);
    struct tm tm;
    char day[16] = "";

    if (gmtime_r(&now_s, &tm) != NULL)
        strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    put(o, rc, "{\"version\":");
    put_string(o, rc, p->version);
    put(o, rc, ",\"instance\":");
    put_opt_string(o, rc, p->instance);
    put(o, rc, ",\"listen\":");
    put_opt_string(o, rc, p->listen);
    put(o, rc, ",\"now_ms\":%lld,\"started_ms\":%lld,\"uptime_s\":%.3f,\"day\":\"%s\"",
        (long long)p->now_ms, (long long)p->started_ms,
        (double)SB_MAX(p->now_ms - p->started_ms, (int64_t)0) / 1e3, day);
    put(o, rc, ",\"quantiles\":\"bucket-interpolated\"");
}

int sb_ui_write_summary(struct sb_ui *ui, const struct sb_ui_summary_params *p, struct sb_buf *out)
{
    struct tally t = {0};
    int rc = 0;

    tally_read(&t, p);
    if (t.nomem)
        rc = SB_ENOMEM;
    put_header(out, &rc, p);
    put(out, &rc, ",\"totals\":{");
    put_counts(out, &rc, &t.total);
    put(out, &rc, ",");
    put_cost(out, &rc, "cost_today", (uint64_t)(ui != NULL ? sb_ui_cost_today(ui, p->now_ms) : 0));
    put_hists(out, &rc, &t.total);
    put_gauge(out, &rc, &t.total, G_QUEUE, "queue_depth");
    put_gauge(out, &rc, &t.total, G_BUSY, "busy_slots");
    put(out, &rc, "},\"backends\":[");
    for (size_t i = 0; i < t.backends.n; i++) {
        put(out, &rc, "%s", i ? "," : "");
        put_backend(out, &rc, &t.backends.v[i]);
    }
    put(out, &rc, "],\"models\":[");
    for (size_t i = 0; i < t.models.n; i++) {
        put(out, &rc, "%s", i ? "," : "");
        put_model(out, &rc, &t.models.v[i]);
    }
    put(out, &rc, "],\"recent\":");
    put_recent(out, &rc, ui);
    put(out, &rc, "}");
    free(t.backends.v);
    free(t.models.v);
    return rc;
}
