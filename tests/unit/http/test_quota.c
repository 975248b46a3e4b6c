/* Tests for the request path's keys, scopes, rate limits and budgets (http/quota.c) on a server
 * structure without a listener: authentication from real libevent request headers, the error each
 * refusal becomes, the worst-case reservation priced from the bundled table, the downgrade to the
 * chain's free members (and a local-first chain losing only its priced fallbacks), settling. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "http/internal.h"

static char dir[64];
static char db[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sb-quota-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/keys.db", dir);
}

static void remove_dir(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(p, sizeof(p), "%s%s", db, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(quota, .init = make_dir, .fini = remove_dir, .timeout = 60);

/* Three models: gpt (priced, falls back to local and then mini), local, mini (priced). */
static char *gpt_fallback[] = {"local", "mini"};
static struct sb_model_config models[] = {
    {.name = "gpt",
     .backend = "openai",
     .upstream_model = "gpt-4o-mini",
     .fallback = gpt_fallback,
     .n_fallback = 2},
    {.name = "local", .backend = "local"},
    {.name = "mini", .backend = "openai", .upstream_model = "gpt-4o-mini"},
};

static struct sb_server server(void)
{
    static struct sb_config cfg = {.models = models, .n_models = SB_ARRAY_LEN(models)};
    return (struct sb_server){.cfg = &cfg, .n_backends = SB_ARRAY_LEN(models)};
}

static char secret[SB_AUTH_SECRET_LEN + 1];

static struct sb_auth *auth_with_key(enum sb_auth_mode mode, const struct sb_auth_key_spec *spec)
{
    struct sb_auth_store *st = NULL;
    struct sb_auth_key k;
    struct sb_auth *a = NULL;
    char err[512] = "";
    cr_assert_eq(sb_auth_store_open(db, &st, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sb_auth_store_create(st, spec, 1, &k, secret, err, sizeof(err)), 0, "%s", err);
    sb_auth_store_close(st);
    struct sb_auth_params p = {.mode = mode, .store = db};
    cr_assert_eq(sb_auth_new(&p, &a, err, sizeof(err)), 0, "%s", err);
    return a;
}

static struct evhttp_request *request_with(const char *name, const char *value)
{
    struct evhttp_request *ev = evhttp_request_new(NULL, NULL);
    cr_assert_not_null(ev);
    if (name != NULL)
        evhttp_add_header(evhttp_request_get_input_headers(ev), name, value);
    return ev;
}

static struct sb_request chat_request(int64_t max_tokens)
{
    /* 40 bytes of text: an estimate of 10 prompt tokens. */
    static struct sb_part part = {.type = SB_PART_TEXT,
                                  .text = SB_STR_LIT("0123456789012345678901234567890123456789")};
    static struct sb_message msg = {.role = SB_ROLE_USER, .parts = &part, .n_parts = 1};
    return (struct sb_request){
        .kind = SB_REQ_CHAT, .messages = &msg, .n_messages = 1, .max_tokens = max_tokens};
}

Test(quota, authentication_fills_the_meter_or_a_401)
{
    const struct sb_auth_key_spec spec = {.name = "alice", .team = "research", .budget_micros = -1};
    struct sb_server s = server();
    struct sb__quota q;
    struct sb__meter m = {0};
    struct sb_api_error err;
    char bearer[80];

    s.auth = auth_with_key(SB_AUTH_REQUIRED, &spec);
    snprintf(bearer, sizeof(bearer), "Bearer %s", secret);
    struct evhttp_request *ev = request_with("Authorization", bearer);
    cr_assert_eq(sb__quota_authenticate(&s, ev, &q, &m, &err), 0);
    cr_assert(q.keyed);
    cr_assert_str_eq(q.key.name, "alice");
    cr_assert_str_eq(m.key_id, q.key.id);
    cr_assert_str_eq(m.team, "research");
    evhttp_request_free(ev);

    ev = request_with(NULL, NULL);
    memset(&m, 0, sizeof(m));
    cr_assert_neq(sb__quota_authenticate(&s, ev, &q, &m, &err), 0);
    cr_assert_eq(err.http_status, 401);
    cr_assert_str_eq(err.code, "invalid_api_key");
    cr_assert_str_eq(err.type, "invalid_request_error");
    cr_assert_not_null(strstr(err.message, "Missing API key"));
    cr_assert_str_eq(sb__error_class(401, m.fail_origin, m.fail_code, m.fail_status),
                     "unauthorized");
    cr_assert_null(m.key_id);
    evhttp_request_free(ev);
    sb_auth_free(s.auth);
}

Test(quota, scopes_refuse_with_403)
{
    struct sb_server s = server();
    struct sb__quota q = {.keyed = true};
    struct sb__meter m = {0};
    struct sb_api_error err;

    snprintf(q.key.name, sizeof(q.key.name), "bob");
    snprintf(q.key.models, sizeof(q.key.models), "local");
    q.key.max_sensitivity = SB_SENSITIVITY_MEDIUM;
    cr_assert_eq(sb__quota_check_model(&s, &q, "local", &m, &err), 0);
    cr_assert_neq(sb__quota_check_model(&s, &q, "gpt", &m, &err), 0);
    cr_assert_eq(err.http_status, 403);
    cr_assert_str_eq(err.code, "model_not_allowed");
    cr_assert_str_eq(err.param, "model");
    cr_assert_eq(sb__quota_check_sensitivity(&s, &q, SB_SENSITIVITY_MEDIUM, &m, &err), 0);
    cr_assert_neq(sb__quota_check_sensitivity(&s, &q, SB_SENSITIVITY_HIGH, &m, &err), 0);
    cr_assert_str_eq(err.code, "sensitivity_not_allowed");
    cr_assert_str_eq(sb__error_class(403, m.fail_origin, m.fail_code, m.fail_status), "denied");
    /* Anonymous callers have no scopes. */
    q.keyed = false;
    cr_assert_eq(sb__quota_check_model(&s, &q, "gpt", &m, &err), 0);
}

Test(quota, budgets_reserve_the_worst_case_and_downgrade_to_free_members)
{
    struct sb_server s = server();
    struct sb_budget_params p = {.on_limit = SB_BUDGET_LOCAL, .default_max_tokens = 1000};
    const struct sb_budget_limit g = {.micros = 2, .period = SB_BUDGET_MONTH};
    struct sb__quota q = {0};
    struct sb__meter m = {0};
    struct sb_api_error err;
    struct sb_request req = chat_request(0);
    uint32_t chain[SB_ROUTE_MAX_CHAIN] = {0, 1, 2}; /* gpt, then its fallbacks local and mini */
    size_t n = 3;
    int64_t spent, held;

    p.global = &g;
    cr_assert_eq(sb_budget_new(&p, &s.budget), 0);
    /* gpt-4o-mini: $0.15 and $0.60 per million tokens. 10 prompt tokens and the default 1000
     * output tokens: 1.5 + 600 micro-dollars, rounded up: 602. It does not fit $0.000002. */
    struct evhttp_request *ev = request_with(NULL, NULL);
    cr_assert_eq(sb__quota_admit(&s, &q, &req, chain, &n, ev, &m, &err), 0);
    cr_assert(q.downgraded);
    cr_assert_eq(n, 1);
    cr_assert_eq(chain[0], 1, "only the local member is left");
    cr_assert_eq(q.hold.n, 1);
    cr_assert_eq(q.hold.micros, 0);
    sb__quota_settle(&s, &q, &m, -1);
    cr_assert_eq(q.hold.n, 0);

    /* A chain without a free member: 429, with Retry-After. */
    chain[0] = 2;
    n = 1;
    memset(&q, 0, sizeof(q));
    cr_assert_neq(sb__quota_admit(&s, &q, &req, chain, &n, ev, &m, &err), 0);
    cr_assert_eq(err.http_status, 429);
    cr_assert_str_eq(err.code, "insufficient_quota");
    cr_assert_not_null(strstr(err.message, "may cost up to $0.000602"), "%s", err.message);
    cr_assert_not_null(strstr(err.message, "No local model"), "%s", err.message);
    const char *retry = evhttp_find_header(evhttp_request_get_output_headers(ev), "Retry-After");
    cr_assert_not_null(retry);
    cr_assert_gt(strtol(retry, NULL, 10), 0);
    cr_assert_str_eq(sb__error_class(429, m.fail_origin, m.fail_code, m.fail_status),
                     "over_budget");
    evhttp_request_free(ev);
    sb_budget_free(s.budget);

    /* A budget that fits: the worst case is held until the request settles with its cost. */
    const struct sb_budget_limit big = {.micros = 1000, .period = SB_BUDGET_MONTH};
    p.global = &big;
    cr_assert_eq(sb_budget_new(&p, &s.budget), 0);
    req = chat_request(100); /* 1.5 + 60, rounded up: 62 */
    memcpy(chain, (uint32_t[]){0, 1, 2}, 3 * sizeof(*chain));
    n = 3;
    ev = request_with(NULL, NULL);
    memset(&q, 0, sizeof(q));
    cr_assert_eq(sb__quota_admit(&s, &q, &req, chain, &n, ev, &m, &err), 0);
    cr_assert_not(q.downgraded);
    cr_assert_eq(n, 3);
    cr_assert(sb_budget_spent(s.budget, SB_BUDGET_SCOPE_GLOBAL, "", sb_unix_time(), &spent, &held));
    cr_assert_eq(held, 62);
    sb__quota_settle(&s, &q, &m, 40);
    cr_assert(sb_budget_spent(s.budget, SB_BUDGET_SCOPE_GLOBAL, "", sb_unix_time(), &spent, &held));
    cr_assert_eq(spent, 40);
    cr_assert_eq(held, 0);
    evhttp_request_free(ev);
    sb_budget_free(s.budget);
}

/* A chain that starts with a free member is served as asked when the budget cannot cover its
 * priced fallbacks: they are dropped, whatever on_limit says, and it is not a downgrade. */
Test(quota, a_local_first_chain_loses_only_its_priced_fallbacks)
{
    struct sb_server s = server();
    struct sb_budget_params p = {.on_limit = SB_BUDGET_DENY, .default_max_tokens = 1000};
    const struct sb_budget_limit g = {.micros = 2, .period = SB_BUDGET_MONTH};
    struct sb__quota q = {0};
    struct sb__meter m = {0};
    struct sb_api_error err;
    struct sb_request req = chat_request(0);
    uint32_t chain[SB_ROUTE_MAX_CHAIN] = {1, 0, 2}; /* local, then gpt and mini */
    size_t n = 3;

    p.global = &g;
    cr_assert_eq(sb_budget_new(&p, &s.budget), 0);
    struct evhttp_request *ev = request_with(NULL, NULL);
    cr_assert_eq(sb__quota_admit(&s, &q, &req, chain, &n, ev, &m, &err), 0);
    cr_assert_not(q.downgraded);
    cr_assert_eq(n, 1);
    cr_assert_eq(chain[0], 1);
    sb__quota_settle(&s, &q, &m, -1);
    evhttp_request_free(ev);
    sb_budget_free(s.budget);
}
