/* Metering of model requests: the error-class table, the ledger row built from an exchange's
 * timings and events, its price, and the Prometheus updates made once per request (and once per
 * token for the inter-token gap) through handles resolved once per (model, backend).
 *
 * What the gateway overhead measures (docs/metrics.md says the same to users): the time the HTTP
 * layer itself spends on a request on its loop thread. That is the time from the request's arrival
 * (its body read) until the backend's start() has returned (parsing, model lookup, renderer setup,
 * the backend's own setup of the call), plus the time spent handling each event the backend sends
 * (rendering it in the client's API and handing the bytes to the connection), plus this file's
 * bookkeeping at the end. Everything else of the request's duration is waiting on the backend:
 * a local model's queue, prompt processing and decoding; a remote provider's network and
 * generation, and the upstream client's parsing of what it sends. A request refused before any
 * backend started is all overhead. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert/alert.h"
#include "http/internal.h"
#include "report/pricing.h"

/* ---------------------------------------------------------------------------------------------
 * Error classes
 * ------------------------------------------------------------------------------------------- */
struct class_row {
    enum sb__origin origin; /* SB__ORIGIN_NONE: any origin */
    int code;               /* SB_E*, or 0: any code */
    int lo, hi;             /* the failure's status range; 0, 0: any status */
    const char *name;
};

/* First match wins: a specific code names the cause whatever its status; then what is left of
 * the gateway's own refusals; then a backend's failures by the status they carry. */
/* clang-format off */
static const struct class_row classes[] = {
    /* origin             code             lo   hi   class */
    {SB__ORIGIN_NONE,     SB_ECONTEXT,     0,   0,   "context_length"}, /* prompt over the window */
    {SB__ORIGIN_NONE,     SB_ETIMEOUT,     0,   0,   "timeout"},        /* a deadline upstream */
    {SB__ORIGIN_NONE,     SB_ECONNECT,     0,   0,   "connect"},        /* upstream unreachable */
    {SB__ORIGIN_NONE,     SB_EFULL,        0,   0,   "rate_limited"},   /* a local queue is full */
    {SB__ORIGIN_NONE,     SB_ECANCELED,    0,   0,   "canceled"},       /* the server stopped it */
    {SB__ORIGIN_NONE,     SB_ESTATE,       0,   0,   "unavailable"},    /* loading, failed load */
    {SB__ORIGIN_NONE,     SB_ENOMEM,       0,   0,   "out_of_memory"},
    {SB__ORIGIN_GATEWAY,  SB_EDENIED,      401, 401, "unauthorized"},   /* no valid API key */
    {SB__ORIGIN_GATEWAY,  SB_EDENIED,      429, 429, "over_budget"},    /* a budget refused it */
    {SB__ORIGIN_NONE,     SB_EDENIED,      0,   0,   "denied"},         /* a policy refused it */
    {SB__ORIGIN_NONE,     SB_EUNSUPPORTED, 0,   0,   "unsupported"},    /* a feature not served */
    {SB__ORIGIN_GATEWAY,  SB_ENOTFOUND,    0,   0,   "model_not_found"},
    {SB__ORIGIN_GATEWAY,  0,               413, 413, "too_large"},
    {SB__ORIGIN_GATEWAY,  0,               400, 499, "bad_request"},    /* the body was refused */
    {SB__ORIGIN_GATEWAY,  0,               0,   0,   "internal"},       /* rendering, a bad stream */
    {SB__ORIGIN_BACKEND,  0,               429, 429, "rate_limited"},   /* a provider's 429 */
    {SB__ORIGIN_BACKEND,  0,               408, 408, "timeout"},
    {SB__ORIGIN_BACKEND,  0,               504, 504, "timeout"},
    {SB__ORIGIN_BACKEND,  0,               400, 499, "upstream_4xx"},
    {SB__ORIGIN_BACKEND,  0,               500, 599, "upstream_5xx"},
    {SB__ORIGIN_NONE,     0,               0,   0,   "error"},
};
/* clang-format on */

const char *sb__error_class(int status, enum sb__origin origin, int code, int fail_status)
{
    if (status == 499)
        return "client_closed";
    if (origin == SB__ORIGIN_NONE) {
        if (status < 400)
            return "";
        /* An error status with no failure noted: the gateway's, by that status. */
        origin = SB__ORIGIN_GATEWAY;
        fail_status = status;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(classes); i++) {
        const struct class_row *r = &classes[i];
        if (r->origin != SB__ORIGIN_NONE && r->origin != origin)
            continue;
        if (r->code != 0 && r->code != code)
            continue;
        if (r->lo != 0 && (fail_status < r->lo || fail_status > r->hi))
            continue;
        return r->name;
    }
    return "error"; /* unreachable: the last row matches everything */
}

/* ---------------------------------------------------------------------------------------------
 * The meter
 * ------------------------------------------------------------------------------------------- */
bool sb__meter_event(struct sb__meter *m, const struct sb_event *ev, uint64_t now, uint64_t *gap_ns)
{
    bool gap = false;

    switch (ev->type) {
    case SB_EV_START:
        m->have_start = true;
        m->attempts = ev->start.attempts;
        m->queue_ms = ev->start.queue_ms;
        if (ev->start.tried.len > 0)
            sb_ledger_copy(m->backends_tried, sizeof(m->backends_tried), ev->start.tried);
        break;
    case SB_EV_TEXT:
    case SB_EV_TOOL_CALL:
        if (m->t_first == 0) {
            m->t_first = now;
        } else {
            *gap_ns = now > m->t_last ? now - m->t_last : 0;
            gap = true;
        }
        m->t_last = now;
        break;
    case SB_EV_USAGE:
        m->usage = ev->usage;
        m->have_usage = true;
        break;
    case SB_EV_ERROR:
        sb__meter_fail(m, SB__ORIGIN_BACKEND, ev->error.code, ev->error.http_status);
        if (ev->error.tried.len > 0)
            sb_ledger_copy(m->backends_tried, sizeof(m->backends_tried), ev->error.tried);
        break;
    case SB_EV_EMBEDDING:
    case SB_EV_FINISH: break;
    }
    return gap;
}

void sb__meter_fail(struct sb__meter *m, enum sb__origin origin, int code, int fail_status)
{
    if (m->fail_origin != SB__ORIGIN_NONE || origin == SB__ORIGIN_NONE)
        return;
    m->fail_origin = origin;
    m->fail_code = code;
    m->fail_status = fail_status;
}

double sb__meter_tokens_per_s(const struct sb__meter *m)
{
    if (!m->have_usage || m->usage.completion_tokens < 2 || m->t_first == 0 ||
        m->t_last <= m->t_first)
        return -1;
    return (double)(m->usage.completion_tokens - 1) / ((double)(m->t_last - m->t_first) / 1e9);
}

static double ms_between(uint64_t from, uint64_t to)
{
    return to > from ? (double)(to - from) / 1e6 : 0;
}

void sb__meter_row(const struct sb__meter *m, int64_t ts_ms, uint64_t now_ns, int64_t cost_microusd,
                   struct sb_ledger_row *row)
{
    const char *tried = m->backend != NULL ? m->backend : m->tried;

    memset(row, 0, sizeof(*row));
    row->ts_ms = ts_ms;
    sb_ledger_copy(row->request_id, sizeof(row->request_id), sb_str_c(m->request_id));
    sb_ledger_copy(row->key_id, sizeof(row->key_id), sb_str_c(m->key_id));
    sb_ledger_copy(row->team, sizeof(row->team), sb_str_c(m->team));
    row->api = m->api;
    sb_ledger_copy(row->model, sizeof(row->model), m->model);
    /* A chain lists every member it started; without one, the backend started is all we know. */
    sb_ledger_copy(row->backends_tried, sizeof(row->backends_tried),
                   m->backends_tried[0] != '\0' ? sb_str_c(m->backends_tried) : sb_str_c(tried));
    sb_ledger_copy(row->backend, sizeof(row->backend), sb_str_c(m->backend));
    sb_ledger_copy(
        row->error_class, sizeof(row->error_class),
        sb_str_c(sb__error_class(m->status, m->fail_origin, m->fail_code, m->fail_status)));
    if (m->rule != NULL && strcmp(m->rule, "default") != 0)
        sb_ledger_copy(row->rule_id, sizeof(row->rule_id), sb_str_c(m->rule));
    sb_ledger_copy(row->sensitivity, sizeof(row->sensitivity), sb_str_c(m->sensitivity));
    sb_ledger_copy(row->pii_counts, sizeof(row->pii_counts), sb_str_c(m->pii_counts));
    row->status = m->status;
    /* Without a START the backend was tried once as far as this layer can tell. */
    row->attempts = m->have_start ? m->attempts : tried != NULL ? 1 : 0;
    if (m->have_usage) {
        row->prompt_tokens = m->usage.prompt_tokens;
        row->cached_prompt_tokens = m->usage.cached_prompt_tokens;
        row->cache_write_tokens = m->usage.cache_write_tokens;
        row->completion_tokens = m->usage.completion_tokens;
    }
    row->queue_ms = m->have_start ? (double)m->queue_ms : -1;
    row->ttft_ms = m->t_first != 0 ? ms_between(m->t0, m->t_first) : -1;
    row->latency_ms = ms_between(m->t0, m->t_end != 0 ? m->t_end : now_ns);
    row->tokens_per_s = sb__meter_tokens_per_s(m);
    row->cost_microusd = cost_microusd;
    row->streamed = m->streamed;
}

/* ---------------------------------------------------------------------------------------------
 * Prices
 * ------------------------------------------------------------------------------------------- */
/* Backend kinds that run on our own hardware: their cost is the infra model's, computed by
 * reports from measured throughput, so no table price applies. */
static const char *const unpriced_kinds[] = {
    "local",  /* in-process llama.cpp */
    "ollama", /* an Ollama server (ours) */
};

bool sb__meter_kind_priced(const char *kind)
{
    if (kind == NULL)
        return false;
    for (size_t i = 0; i < SB_ARRAY_LEN(unpriced_kinds); i++) {
        if (strcmp(kind, unpriced_kinds[i]) == 0)
            return false;
    }
    return true;
}

int64_t sb__meter_cost(const struct sb_pricing *p, bool priced, const char *const *names, size_t n,
                       const struct sb_usage *usage)
{
    static const struct sb_usage none;
    struct sb_price price;

    if (!priced)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (names[i] == NULL || names[i][0] == '\0')
            continue;
        if (sb_price_lookup(p, names[i], &price) == 0)
            return sb_price_cost(&price, usage != NULL ? usage : &none);
    }
    return -1;
}

/* ---------------------------------------------------------------------------------------------
 * Metric handles
 * ------------------------------------------------------------------------------------------- */
static void resolve_series(struct sb__meter_series *ms, const char *model, const char *backend)
{
    const char *const mb[] = {model, backend};
    const char *const prompt[] = {model, backend, "prompt"};
    const char *const cached[] = {model, backend, "cached"};
    const char *const completion[] = {model, backend, "completion"};

    ms->duration = sb_metrics_series(SB_METRIC_REQUEST_DURATION, mb);
    ms->ttft = sb_metrics_series(SB_METRIC_TTFT, mb);
    ms->inter_token = sb_metrics_series(SB_METRIC_INTER_TOKEN, mb);
    ms->tokens_per_s = sb_metrics_series(SB_METRIC_TOKENS_PER_SECOND, mb);
    ms->cost = sb_metrics_series(SB_METRIC_COST, mb);
    ms->tokens_prompt = sb_metrics_series(SB_METRIC_TOKENS, prompt);
    ms->tokens_cached = sb_metrics_series(SB_METRIC_TOKENS, cached);
    ms->tokens_completion = sb_metrics_series(SB_METRIC_TOKENS, completion);
}

/* The configured name at index i, or "" past the models (none). */
static const char *model_label(const struct sb_server *s, size_t i)
{
    return i < sb__server_n_models(s) ? s->cfg->models[i].name : "";
}

int sb__meter_init(struct sb_server *s)
{
    size_t side = sb__server_n_models(s) + 1;

    s->m_overhead = sb_metrics_series(SB_METRIC_GATEWAY_OVERHEAD, NULL);
    if (side > SIZE_MAX / side / sizeof(*s->meter_series))
        return SB_ENOMEM;
    s->meter_series = calloc(side * side, sizeof(*s->meter_series));
    if (s->meter_series == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < side * side; i++)
        atomic_init(&s->meter_series[i], NULL);
    s->n_meter_side = side;
    return 0;
}

void sb__meter_deinit(struct sb_server *s)
{
    if (s->meter_series == NULL)
        return;
    for (size_t i = 0; i < s->n_meter_side * s->n_meter_side; i++)
        free(atomic_load_explicit(&s->meter_series[i], memory_order_relaxed));
    free(s->meter_series);
    s->meter_series = NULL;
    s->n_meter_side = 0;
}

const struct sb__meter_series *sb__meter_series(struct sb_server *s, size_t asked, size_t served)
{
    static _Thread_local struct sb__meter_series spare;
    size_t none = sb__server_n_models(s);
    _Atomic(struct sb__meter_series *) *slot;
    struct sb__meter_series *ms, *expected = NULL;

    asked = SB_MIN(asked, none);
    served = SB_MIN(served, none);
    if (s->meter_series == NULL) {
        resolve_series(&spare, model_label(s, asked), model_label(s, served));
        return &spare;
    }
    slot = &s->meter_series[asked * s->n_meter_side + served];
    ms = atomic_load_explicit(slot, memory_order_acquire);
    if (ms != NULL)
        return ms;
    ms = calloc(1, sizeof(*ms));
    if (ms == NULL) {
        resolve_series(&spare, model_label(s, asked), model_label(s, served));
        return &spare;
    }
    resolve_series(ms, model_label(s, asked), model_label(s, served));
    /* Two threads may race to make the same entry: one wins, the other's copy goes. */
    if (!atomic_compare_exchange_strong_explicit(slot, &expected, ms, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(ms);
        return expected;
    }
    return ms;
}

/* ---------------------------------------------------------------------------------------------
 * The end of a request
 * ------------------------------------------------------------------------------------------- */
/* The Unix time in milliseconds of the monotonic instant t (in the past). */
static int64_t unix_ms_of(uint64_t t, uint64_t now)
{
    struct timespec ts;
    int64_t wall;

    clock_gettime(CLOCK_REALTIME, &ts);
    wall = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    return wall - (int64_t)((now > t ? now - t : 0) / 1000000u);
}

/* The request's price: of the model that served, else (nothing started) of the one asked. */
static int64_t request_cost(const struct sb_server *s, const struct sb__meter *m, size_t asked,
                            size_t served)
{
    size_t n = sb__server_n_models(s);
    size_t i = served < n ? served : asked;
    const struct sb_model_config *mc;

    if (i >= n)
        return -1;
    mc = &s->cfg->models[i];
    /* The provider's name for the model first: it carries the dated version prices key on. */
    const char *const names[] = {served < n ? m->served_model : NULL, mc->upstream_model, mc->name};
    return sb__meter_cost(s->pricing, sb__meter_kind_priced(mc->backend), names,
                          SB_ARRAY_LEN(names), m->have_usage ? &m->usage : NULL);
}

int64_t sb__meter_record(struct sb_server *s, const struct sb__meter *m, size_t asked,
                         size_t served)
{
    uint64_t now = sb_now_ns();
    const struct sb__meter_series *ms = sb__meter_series(s, asked, served);
    struct sb_ledger_row row;
    char status[16];
    uint64_t before_start, overhead;

    sb__meter_row(m, unix_ms_of(m->t0, now), now, request_cost(s, m, asked, served), &row);
    /* A full queue drops the row; the ledger counts and logs that itself. */
    if (m->content)
        sb_ledger_record_content(s->ledger, &row, m->prompt_json, m->completion);
    else
        sb_ledger_record(s->ledger, &row);
    sb__ui_record(s, m, &row); /* the dashboard's recent decisions */
    /* Unpriced (-1) and free requests are ignored there. */
    sb_alert_spend(s->alerts, (int64_t)(now / 1000000u), row.cost_microusd);

    snprintf(status, sizeof(status), "%d", m->status);
    const char *const labels[] = {model_label(s, asked), model_label(s, served), status};
    sb_metrics_counter_add(SB_METRIC_REQUESTS, labels, 1);
    sb_metrics_observe(ms->duration, row.latency_ms / 1e3);
    if (row.ttft_ms >= 0)
        sb_metrics_observe(ms->ttft, row.ttft_ms / 1e3);
    if (m->have_usage) {
        int64_t cached = SB_MAX(m->usage.cached_prompt_tokens, (int64_t)0);
        int64_t prompt = SB_MAX(m->usage.prompt_tokens, (int64_t)0);
        sb_metrics_add(ms->tokens_prompt, (uint64_t)(prompt > cached ? prompt - cached : 0));
        sb_metrics_add(ms->tokens_cached, (uint64_t)SB_MIN(cached, prompt));
        sb_metrics_add(ms->tokens_completion,
                       (uint64_t)SB_MAX(m->usage.completion_tokens, (int64_t)0));
    }
    if (row.tokens_per_s >= 0)
        sb_metrics_observe(ms->tokens_per_s, row.tokens_per_s);
    if (row.cost_microusd > 0)
        sb_metrics_add(ms->cost, (uint64_t)row.cost_microusd);

    /* Before the backend started; all of it when none did. */
    if (m->t_started != 0)
        before_start = m->t_started - m->t0;
    else
        before_start = (m->t_end != 0 ? m->t_end : now) - m->t0;
    overhead = before_start + m->handling_ns + (sb_now_ns() - now);
    sb_metrics_observe(s->m_overhead, (double)overhead / 1e9);
    return row.cost_microusd;
}
