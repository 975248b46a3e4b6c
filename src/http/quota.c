/* Keys, scopes, rate limits and budgets on the request path: who is calling (401), whether the
 * key may use this model and this data (403), whether its rate limits and every budget that
 * applies have room for the request's worst case (429, or a downgrade to the chain's free
 * members), and, when the request is over, what it really used. Nothing here touches the disk:
 * keys come from auth's in-memory snapshot and spend from the budget's memory. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "http/internal.h"
#include "report/pricing.h"

void sb_server_set_quota(struct sb_server *s, struct sb_auth *auth, struct sb_budget *budget)
{
    s->auth = auth;
    s->budget = budget;
}

/* A refusal: the meter's failure, the metric by reason, and the error for the client. */
static void count_refusal(struct sb__meter *m, const char *reason, int status)
{
    const char *const labels[] = {reason};
    sb__meter_fail(m, SB__ORIGIN_GATEWAY,
                   status == 429 && strncmp(reason, "rate", 4) == 0 ? SB_EFULL : SB_EDENIED,
                   status);
    sb_metrics_counter_add(SB_METRIC_REFUSED, labels, 1);
    sb_log(SB_LOG_DEBUG, m->request_id, "refused (%s)", reason);
}

static void set_retry_after(struct evhttp_request *ev, int64_t seconds)
{
    char v[24];
    snprintf(v, sizeof(v), "%lld", (long long)SB_MAX(seconds, (int64_t)1));
    evhttp_add_header(evhttp_request_get_output_headers(ev), "Retry-After", v);
}

/* ---------------------------------------------------------------------------------------------
 * Authentication
 * ------------------------------------------------------------------------------------------- */
/* What each failed verdict tells the client (OpenAI's 401 invalid_api_key; Anthropic's codec
 * makes it authentication_error, Ollama's a plain message). */
static const struct {
    enum sb_auth_verdict verdict;
    const char *reason; /* switchboard_refused_total's label */
    const char *message;
} verdicts[] = {
    {SB_AUTH_MISSING, "missing_key",
     "Missing API key. Send a Switchboard key as \"Authorization: Bearer sb-...\" or "
     "\"x-api-key: sb-...\" (switchboard keys create makes one)."},
    {SB_AUTH_FOREIGN, "invalid_key",
     "Invalid API key: this server accepts only Switchboard keys (sb-...), made with "
     "switchboard keys create."},
    {SB_AUTH_INVALID, "invalid_key", "Invalid API key: the key is not known to this server."},
    {SB_AUTH_REVOKED, "revoked_key", "Invalid API key: the key was revoked."},
};

int sb__quota_authenticate(const struct sb_server *s, struct evhttp_request *ev,
                           struct sb__quota *q, struct sb__meter *m, struct sb_api_error *err)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(ev);
    enum sb_auth_verdict v;

    memset(q, 0, sizeof(*q));
    if (s->auth == NULL)
        return 0;
    v = sb_auth_identify(s->auth, evhttp_find_header(h, "Authorization"),
                         evhttp_find_header(h, "x-api-key"), &q->key);
    if (v == SB_AUTH_ANONYMOUS)
        return 0;
    if (v == SB_AUTH_KEY || v == SB_AUTH_REVOKED) {
        /* A revoked key's requests are still the key's in the ledger. */
        m->key_id = q->key.id;
        m->team = q->key.team[0] != '\0' ? q->key.team : NULL;
    }
    if (v == SB_AUTH_KEY) {
        q->keyed = true;
        return 0;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(verdicts); i++) {
        if (verdicts[i].verdict != v)
            continue;
        count_refusal(m, verdicts[i].reason, 401);
        return sb_api_fail(err, 401, "invalid_request_error", "invalid_api_key", NULL, "%s",
                           verdicts[i].message);
    }
    count_refusal(m, "invalid_key", 401);
    return sb_api_fail(err, 401, "invalid_request_error", "invalid_api_key", NULL,
                       "Invalid API key.");
}

/* ---------------------------------------------------------------------------------------------
 * Scopes
 * ------------------------------------------------------------------------------------------- */
int sb__quota_check_model(const struct sb_server *s, const struct sb__quota *q, const char *model,
                          struct sb__meter *m, struct sb_api_error *err)
{
    SB_UNUSED(s);
    if (!q->keyed || sb_auth_key_allows_model(&q->key, sb_str_c(model)))
        return 0;
    count_refusal(m, "model_scope", 403);
    return sb_api_fail(err, 403, "permission_error", "model_not_allowed", "model",
                       "API key %s may not use model %s; it may use: %s.", q->key.name, model,
                       q->key.models);
}

int sb__quota_check_sensitivity(const struct sb_server *s, const struct sb__quota *q,
                                enum sb_sensitivity sensitivity, struct sb__meter *m,
                                struct sb_api_error *err)
{
    SB_UNUSED(s);
    if (!q->keyed || q->key.max_sensitivity == SB_SENSITIVITY_UNSET ||
        sensitivity <= q->key.max_sensitivity)
        return 0;
    count_refusal(m, "sensitivity_scope", 403);
    return sb_api_fail(err, 403, "permission_error", "sensitivity_not_allowed", NULL,
                       "API key %s may send data of %s sensitivity at most; this request is %s "
                       "(its label, or the PII found in it).",
                       q->key.name, sb_route_sensitivity_name(q->key.max_sensitivity),
                       sb_route_sensitivity_name(sensitivity));
}

static struct sb_budget_payer payer_of(const struct sb__quota *q)
{
    struct sb_budget_payer p = {.key_limit_micros = -1};
    if (!q->keyed)
        return p;
    p.key_id = q->key.id;
    p.key_name = q->key.name;
    p.key_limit_micros = q->key.budget_micros;
    p.key_period = q->key.period;
    p.team = q->key.team;
    return p;
}

void sb__quota_route_input(const struct sb_server *s, const struct sb__quota *q,
                           struct sb_route_input *in)
{
    if (q->keyed) {
        in->key = sb_str_c(q->key.name);
        in->team = sb_str_c(q->key.team);
    }
    if (s->budget != NULL) {
        struct sb_budget_payer p = payer_of(q);
        in->has_budget = sb_budget_left(s->budget, &p, sb_unix_time(), &in->budget_left_micros);
    }
}

/* Members that cost nothing: those the meter never prices (local and ollama models). */
static bool free_member(const struct sb_server *s, uint32_t i)
{
    return !sb__meter_kind_priced(s->cfg->models[i].backend);
}

/* The most the request can cost on any member of the chain: prompt tokens as estimated at the
 * input price and out output tokens at the output price. A priced kind without a known price
 * counts as free here (and is recorded unpriced). */
static int64_t worst_cost(const struct sb_server *s, const uint32_t *chain, size_t n,
                          int64_t prompt, int64_t out)
{
    const struct sb_usage u = {.prompt_tokens = prompt, .completion_tokens = out};
    int64_t worst = 0;

    for (size_t i = 0; i < n; i++) {
        const struct sb_model_config *mc = &s->cfg->models[chain[i]];
        const char *const names[] = {mc->upstream_model, mc->name};
        if (free_member(s, chain[i]))
            continue;
        worst = SB_MAX(worst, sb__meter_cost(s->pricing, true, names, SB_ARRAY_LEN(names), &u));
    }
    return worst;
}

/* ---------------------------------------------------------------------------------------------
 * Admission
 * ------------------------------------------------------------------------------------------- */
static int refuse_rate(const struct sb__quota *q, const struct sb_rate_refusal *why,
                       struct evhttp_request *ev, struct sb__meter *m, struct sb_api_error *err)
{
    bool tokens = why->limit == SB_RATE_TOKENS;

    count_refusal(m, tokens ? "rate_tokens" : "rate_requests", 429);
    set_retry_after(ev, why->retry_after_s);
    if (why->never)
        return sb_api_fail(err, 429, "tokens", "rate_limit_exceeded", NULL,
                           "Request too large for API key %s: it needs about %lld prompt tokens, "
                           "more than its limit of %lld tokens per minute. Shorten it, or give "
                           "the key a higher --tpm.",
                           q->key.name, (long long)why->asked, (long long)why->per_minute);
    return sb_api_fail(err, 429, tokens ? "tokens" : "requests", "rate_limit_exceeded", NULL,
                       "Rate limit reached for API key %s: %lld %s per minute%s. Retry in %lld "
                       "s.",
                       q->key.name, (long long)why->per_minute, tokens ? "tokens" : "requests",
                       tokens ? " (requests are charged their estimated prompt tokens, then what "
                                "they used)"
                              : "",
                       (long long)why->retry_after_s);
}

static void format_utc(int64_t t, char *out, size_t cap)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "the end of the period");
}

static int refuse_budget(const struct sb_budget_refusal *why, bool no_local, int64_t now_s,
                         struct evhttp_request *ev, struct sb__meter *m, struct sb_api_error *err)
{
    struct sb_buf who, spent, limit, held, cost;
    char resets[40];

    sb_buf_init(&who, 256);
    sb_buf_init(&spent, 64);
    sb_buf_init(&limit, 64);
    sb_buf_init(&held, 64);
    sb_buf_init(&cost, 64);
    if (why->scope == SB_BUDGET_SCOPE_GLOBAL)
        sb_buf_append_c(&who, "the gateway");
    else
        sb_buf_printf(&who, "%s %s", why->scope == SB_BUDGET_SCOPE_KEY ? "API key" : "team",
                      why->name);
    sb_budget_format_usd(why->spent_micros, &spent);
    sb_budget_format_usd(why->limit_micros, &limit);
    sb_budget_format_usd(why->held_micros, &held);
    sb_budget_format_usd(why->cost_micros, &cost);
    format_utc(why->resets_s, resets, sizeof(resets));
    count_refusal(m, "budget", 429);
    set_retry_after(ev, why->resets_s - now_s);
    sb_api_fail(err, 429, "insufficient_quota", "insufficient_quota", NULL,
                "Budget exceeded: %s has spent %s of its %s budget of %s%s%s%s; this request may "
                "cost up to %s. The budget renews at %s.%s",
                who.p, spent.p, sb_budget_period_adjective(why->period), limit.p,
                why->held_micros > 0 ? " (and requests in flight hold " : "",
                why->held_micros > 0 ? held.p : "", why->held_micros > 0 ? ")" : "", cost.p, resets,
                no_local ? " No local model in the request's route could serve it." : "");
    sb_buf_free(&who);
    sb_buf_free(&spent);
    sb_buf_free(&limit);
    sb_buf_free(&held);
    sb_buf_free(&cost);
    return SB_EDENIED;
}

static int out_of_memory(struct sb__meter *m, struct sb_api_error *err)
{
    sb__meter_fail(m, SB__ORIGIN_GATEWAY, SB_ENOMEM, 503);
    return sb_api_fail(err, 503, "server_error", NULL, NULL,
                       "The server is out of memory for new requests. Retry shortly.");
}

int sb__quota_admit(const struct sb_server *s, struct sb__quota *q, const struct sb_request *req,
                    uint32_t *chain, size_t *n, struct evhttp_request *ev, struct sb__meter *m,
                    struct sb_api_error *err)
{
    uint64_t now_ns = sb_now_ns();
    int64_t now_s = sb_unix_time();
    int64_t prompt = sb_route_estimate_tokens(req);
    struct sb_rate_refusal rate_why;
    struct sb_budget_refusal why;
    int rc;

    if (q->keyed && s->auth != NULL && (q->key.rpm > 0 || q->key.tpm > 0)) {
        rc = sb_rate_admit(sb_auth_rate(s->auth), q->key.id, q->key.rpm, q->key.tpm, prompt, now_ns,
                           &q->rate, &rate_why);
        if (rc == SB_EFULL)
            return refuse_rate(q, &rate_why, ev, m, err);
        if (rc != 0)
            return out_of_memory(m, err);
    }
    struct sb_budget_payer p = payer_of(q);
    if (s->budget == NULL || !sb_budget_applies(s->budget, &p))
        return 0;
    int64_t out = req->kind == SB_REQ_EMBED ? 0
                  : req->max_tokens > 0     ? req->max_tokens
                                            : sb_budget_default_max_tokens(s->budget);
    rc = sb_budget_reserve(s->budget, &p, worst_cost(s, chain, *n, prompt, out), now_s, &q->hold,
                           &why);
    if (rc == SB_ENOMEM)
        return out_of_memory(m, err);
    if (rc == 0)
        return 0;
    /* It does not fit. A chain that starts with a free member is served as asked, without its
     * priced fallbacks; otherwise on_limit decides between its free members and a refusal. */
    bool free_first = free_member(s, chain[0]);
    size_t k = 0;
    if (free_first || sb_budget_on_limit(s->budget) == SB_BUDGET_LOCAL) {
        for (size_t i = 0; i < *n; i++)
            if (free_member(s, chain[i]))
                chain[k++] = chain[i];
    }
    if (k == 0) {
        /* The request is not sent: its tokens go back to the rate limiter. */
        if (q->rate.bucket != NULL)
            sb_rate_settle(sb_auth_rate(s->auth), &q->rate, 0, now_ns);
        return refuse_budget(&why, sb_budget_on_limit(s->budget) == SB_BUDGET_LOCAL, now_s, ev, m,
                             err);
    }
    /* Free members cost nothing: the reservation of 0 always fits, and records the spend of a
     * member that turns out to be priced after all. */
    rc = sb_budget_reserve(s->budget, &p, 0, now_s, &q->hold, &why);
    if (rc != 0)
        return out_of_memory(m, err);
    *n = k;
    q->downgraded = !free_first;
    if (q->downgraded)
        sb_metrics_counter_add(SB_METRIC_BUDGET_DOWNGRADES, NULL, 1);
    sb_log(SB_LOG_INFO, m->request_id, "over the %s budget of %s%s%s: served by local models only",
           sb_budget_period_adjective(why.period),
           why.scope == SB_BUDGET_SCOPE_GLOBAL ? "the gateway" : sb_budget_scope_name(why.scope),
           why.scope == SB_BUDGET_SCOPE_GLOBAL ? "" : " ", why.name);
    return 0;
}

void sb__quota_settle(const struct sb_server *s, struct sb__quota *q, const struct sb__meter *m,
                      int64_t cost_microusd)
{
    if (q->rate.bucket != NULL && s->auth != NULL) {
        int64_t used = m->have_usage ? SB_MAX(m->usage.prompt_tokens, (int64_t)0) +
                                           SB_MAX(m->usage.completion_tokens, (int64_t)0)
                                     : -1;
        sb_rate_settle(sb_auth_rate(s->auth), &q->rate, used, sb_now_ns());
    }
    if (q->hold.n != 0 && s->budget != NULL)
        sb_budget_settle(s->budget, &q->hold, cost_microusd, sb_unix_time());
}
