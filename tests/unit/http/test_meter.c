/* Tests for request metering: the error-class table, the meter fed with events, the ledger row it
 * becomes (timings, tokens, attempts, no text), tokens per second, and pricing by backend kind. */
#include <criterion/criterion.h>
#include <string.h>

#include "http/internal.h"
#include "report/pricing.h"

#define MS 1000000ull /* nanoseconds */

Test(meter, error_classes_follow_the_table)
{
    static const struct {
        int status;
        enum sb__origin origin;
        int code, fail_status;
        const char *want;
    } cases[] = {
        {200, SB__ORIGIN_NONE, 0, 0, ""},
        {499, SB__ORIGIN_NONE, 0, 0, "client_closed"},
        {499, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 502, "client_closed"},
        {400, SB__ORIGIN_BACKEND, SB_ECONTEXT, 400, "context_length"},
        {400, SB__ORIGIN_GATEWAY, SB_ECONTEXT, 400, "context_length"},
        {504, SB__ORIGIN_BACKEND, SB_ETIMEOUT, 504, "timeout"},
        {502, SB__ORIGIN_BACKEND, SB_ECONNECT, 502, "connect"},
        {429, SB__ORIGIN_BACKEND, SB_EFULL, 429, "rate_limited"},
        {429, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 429, "rate_limited"},
        {503, SB__ORIGIN_GATEWAY, SB_ECANCELED, 503, "canceled"},
        {503, SB__ORIGIN_BACKEND, SB_ESTATE, 503, "unavailable"},
        {404, SB__ORIGIN_GATEWAY, SB_ENOTFOUND, 404, "model_not_found"},
        {404, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 404, "upstream_4xx"},
        {400, SB__ORIGIN_GATEWAY, SB_EINVAL, 400, "bad_request"},
        {413, SB__ORIGIN_GATEWAY, SB_ENOMEM, 413, "out_of_memory"},
        {413, SB__ORIGIN_GATEWAY, SB_EINVAL, 413, "too_large"},
        {500, SB__ORIGIN_GATEWAY, SB_EBACKEND, 500, "internal"},
        {400, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 400, "upstream_4xx"},
        {401, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 401, "upstream_4xx"},
        {502, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 502, "upstream_5xx"},
        {500, SB__ORIGIN_BACKEND, SB_EBACKEND, 500, "upstream_5xx"},
        {504, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 504, "timeout"},
        /* A stream that had begun (200) and then broke keeps its failure's class. */
        {200, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 502, "upstream_5xx"},
        /* An error status with nothing noted is classed by the status alone. */
        {400, SB__ORIGIN_NONE, 0, 0, "bad_request"},
        {503, SB__ORIGIN_NONE, 0, 0, "internal"},
        {200, SB__ORIGIN_BACKEND, 0, 0, "error"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        const char *got =
            sb__error_class(cases[i].status, cases[i].origin, cases[i].code, cases[i].fail_status);
        cr_assert_str_eq(got, cases[i].want, "case %zu: got %s", i, got);
        cr_assert_lt(strlen(got), sizeof(((struct sb_ledger_row *)0)->error_class));
    }
}

/* Feeds a meter a streamed answer of three tokens, starting at 1 s on the monotonic clock. */
static void feed(struct sb__meter *m)
{
    struct sb_event ev = {.type = SB_EV_START};
    uint64_t gap = 12345;

    m->t0 = 1000 * MS;
    m->t_started = 1001 * MS;
    ev.start.attempts = 2;
    ev.start.queue_ms = 7;
    ev.start.backend = SB_STR_LIT("cloud");
    cr_assert(!sb__meter_event(m, &ev, 1010 * MS, &gap));
    ev = (struct sb_event){.type = SB_EV_TEXT};
    ev.text.text = SB_STR_LIT("Once");
    cr_assert(!sb__meter_event(m, &ev, 1100 * MS, &gap), "the first token has no gap");
    ev.text.text = SB_STR_LIT(" upon");
    cr_assert(sb__meter_event(m, &ev, 1150 * MS, &gap));
    cr_assert_eq(gap, 50 * MS);
    ev = (struct sb_event){.type = SB_EV_TOOL_CALL};
    ev.tool_call.arguments = SB_STR_LIT("{}");
    cr_assert(sb__meter_event(m, &ev, 1300 * MS, &gap));
    cr_assert_eq(gap, 150 * MS);
    ev = (struct sb_event){.type = SB_EV_USAGE};
    ev.usage =
        (struct sb_usage){.prompt_tokens = 20, .cached_prompt_tokens = 8, .completion_tokens = 3};
    cr_assert(!sb__meter_event(m, &ev, 1301 * MS, &gap));
    ev = (struct sb_event){.type = SB_EV_FINISH};
    cr_assert(!sb__meter_event(m, &ev, 1302 * MS, &gap));
}

Test(meter, a_successful_stream_becomes_its_row)
{
    struct sb__meter m = {0};
    struct sb_ledger_row row;

    m.request_id = "req_abc";
    m.api = SB_API_ANTHROPIC;
    m.model = SB_STR_LIT("smart");
    m.tried = "smart";
    m.backend = "cloud";
    m.streamed = true;
    feed(&m);
    m.t_end = 1400 * MS;
    m.status = 200;
    sb__meter_row(&m, 1700000000123, 2000 * MS, 42, &row);
    cr_assert_eq(row.ts_ms, 1700000000123);
    cr_assert_str_eq(row.request_id, "req_abc");
    cr_assert_eq(row.api, SB_API_ANTHROPIC);
    cr_assert_str_eq(row.model, "smart");
    cr_assert_str_eq(row.backend, "cloud");
    cr_assert_str_eq(row.backends_tried, "cloud");
    cr_assert_str_eq(row.error_class, "");
    cr_assert_str_eq(row.key_id, "");
    cr_assert_eq(row.status, 200);
    cr_assert_eq(row.attempts, 2);
    cr_assert_eq(row.prompt_tokens, 20);
    cr_assert_eq(row.cached_prompt_tokens, 8);
    cr_assert_eq(row.completion_tokens, 3);
    cr_assert_float_eq(row.queue_ms, 7.0, 1e-9);
    cr_assert_float_eq(row.ttft_ms, 100.0, 1e-9);
    cr_assert_float_eq(row.latency_ms, 400.0, 1e-9);
    /* Two tokens after the first, in 200 ms. */
    cr_assert_float_eq(row.tokens_per_s, 10.0, 1e-9);
    cr_assert_eq(row.cost_microusd, 42);
    cr_assert(row.streamed);
}

Test(meter, a_refused_request_has_no_backend_and_unmeasured_times)
{
    struct sb__meter m = {0};
    struct sb_ledger_row row;

    m.request_id = "req_x";
    m.t0 = 5 * MS;
    m.status = 400;
    sb__meter_fail(&m, SB__ORIGIN_GATEWAY, SB_EINVAL, 400);
    sb__meter_fail(&m, SB__ORIGIN_BACKEND, SB_EUPSTREAM, 502); /* the first failure counts */
    sb__meter_row(&m, 1, 8 * MS, -1, &row);
    cr_assert_str_eq(row.model, "");
    cr_assert_str_eq(row.backend, "");
    cr_assert_str_eq(row.backends_tried, "");
    cr_assert_str_eq(row.error_class, "bad_request");
    cr_assert_eq(row.attempts, 0);
    cr_assert_eq(row.prompt_tokens, 0);
    cr_assert_lt(row.queue_ms, 0);
    cr_assert_lt(row.ttft_ms, 0);
    cr_assert_lt(row.tokens_per_s, 0);
    /* No t_end: latency runs to the time given. */
    cr_assert_float_eq(row.latency_ms, 3.0, 1e-9);
    cr_assert_eq(row.cost_microusd, -1);
    cr_assert(!row.streamed);
}

Test(meter, a_backend_failure_before_start_counts_one_attempt)
{
    struct sb__meter m = {0};
    struct sb_event ev = {.type = SB_EV_ERROR};
    struct sb_ledger_row row;
    uint64_t gap;

    m.model = SB_STR_LIT("gpt");
    m.tried = "gpt";
    ev.error.code = SB_ETIMEOUT;
    ev.error.http_status = 504;
    cr_assert(!sb__meter_event(&m, &ev, 10, &gap));
    m.status = 504;
    sb__meter_row(&m, 1, 10, -1, &row);
    cr_assert_str_eq(row.backends_tried, "gpt");
    cr_assert_str_eq(row.backend, "");
    cr_assert_str_eq(row.error_class, "timeout");
    cr_assert_eq(row.attempts, 1);
}

Test(meter, a_chain_lists_every_backend_it_tried)
{
    struct sb__meter m = {0};
    struct sb_event ev = {.type = SB_EV_START};
    struct sb_ledger_row row;
    uint64_t gap;

    /* Served after a fallback: START names the members started, the server last. */
    m.model = SB_STR_LIT("primary");
    m.tried = "primary";
    ev.start.backend = SB_STR_LIT("backup");
    ev.start.attempts = 3;
    ev.start.tried = SB_STR_LIT("primary,backup");
    sb__meter_event(&m, &ev, 10, &gap);
    m.backend = "backup";
    ev = (struct sb_event){.type = SB_EV_USAGE};
    ev.usage = (struct sb_usage){.prompt_tokens = 30,
                                 .cached_prompt_tokens = 10,
                                 .cache_write_tokens = 15,
                                 .completion_tokens = 2};
    sb__meter_event(&m, &ev, 11, &gap);
    /* An error passed through after START (no list of its own) keeps START's. */
    ev = (struct sb_event){.type = SB_EV_ERROR};
    ev.error.code = SB_EUPSTREAM;
    ev.error.http_status = 502;
    sb__meter_event(&m, &ev, 12, &gap);
    m.status = 200;
    sb__meter_row(&m, 1, 20, -1, &row);
    cr_assert_str_eq(row.backends_tried, "primary,backup");
    cr_assert_str_eq(row.backend, "backup");
    cr_assert_eq(row.attempts, 3);
    cr_assert_eq(row.cache_write_tokens, 15);
    cr_assert_eq(row.cached_prompt_tokens, 10);

    /* No member served: the chain's final ERROR says what it tried. */
    struct sb__meter f = {0};
    f.model = SB_STR_LIT("dead1");
    f.tried = "dead1";
    ev = (struct sb_event){.type = SB_EV_ERROR};
    ev.error.code = SB_ECONNECT;
    ev.error.http_status = 502;
    ev.error.tried = SB_STR_LIT("dead1,dead2");
    sb__meter_event(&f, &ev, 10, &gap);
    f.status = 502;
    sb__meter_row(&f, 1, 20, -1, &row);
    cr_assert_str_eq(row.backends_tried, "dead1,dead2");
    cr_assert_str_eq(row.backend, "");
    cr_assert_eq(row.cache_write_tokens, 0);
}

Test(meter, long_names_are_cut_to_the_rows_arrays)
{
    struct sb__meter m = {0};
    struct sb_ledger_row row;
    char name[300];

    memset(name, 'm', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    m.model = sb_str_c(name);
    m.backend = name;
    sb__meter_row(&m, 1, 1, -1, &row);
    cr_assert_eq(strlen(row.model), sizeof(row.model) - 1);
    cr_assert_eq(strlen(row.backends_tried), sizeof(row.backends_tried) - 1);
}

Test(meter, tokens_per_second_needs_two_tokens_over_time)
{
    struct sb__meter m = {0};

    m.have_usage = true;
    m.usage.completion_tokens = 1;
    m.t_first = 1 * MS;
    m.t_last = 2 * MS;
    cr_assert_lt(sb__meter_tokens_per_s(&m), 0);
    m.usage.completion_tokens = 11;
    cr_assert_float_eq(sb__meter_tokens_per_s(&m), 10000.0, 1e-6);
    /* Everything at once (a non-streamed cloud answer): not measured. */
    m.t_last = m.t_first;
    cr_assert_lt(sb__meter_tokens_per_s(&m), 0);
    m.t_last = 2 * MS;
    m.have_usage = false;
    cr_assert_lt(sb__meter_tokens_per_s(&m), 0);
}

Test(meter, local_kinds_are_never_priced)
{
    cr_assert(!sb__meter_kind_priced("local"));
    cr_assert(!sb__meter_kind_priced("ollama"));
    cr_assert(!sb__meter_kind_priced(NULL));
    cr_assert(sb__meter_kind_priced("openai"));
    cr_assert(sb__meter_kind_priced("anthropic"));
    cr_assert(sb__meter_kind_priced("bedrock"));
}

Test(meter, cost_comes_from_the_first_priced_name)
{
    struct sb_usage u = {.prompt_tokens = 1000000, .completion_tokens = 1000000};
    struct sb_price price;
    const char *const names[] = {NULL, "", "no-such-model", "gpt-4o-mini"};
    const char *const none[] = {"no-such-model"};
    int64_t want;

    cr_assert_eq(sb_price_lookup(NULL, "gpt-4o-mini", &price), 0);
    want = sb_price_cost(&price, &u);
    cr_assert_gt(want, 0);
    cr_assert_eq(sb__meter_cost(NULL, true, names, SB_ARRAY_LEN(names), &u), want);
    /* A priced model with nothing used costs nothing; an unpriced one is unpriced, never $0. */
    cr_assert_eq(sb__meter_cost(NULL, true, names, SB_ARRAY_LEN(names), NULL), 0);
    cr_assert_eq(sb__meter_cost(NULL, true, none, SB_ARRAY_LEN(none), &u), -1);
    cr_assert_eq(sb__meter_cost(NULL, false, names, SB_ARRAY_LEN(names), &u), -1);
    cr_assert_eq(sb__meter_cost(NULL, true, names, 0, &u), -1);
}
