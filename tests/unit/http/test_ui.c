/* Tests for the dashboard's HTTP side: every compiled-in file and the summary have a route to their
 * handler, and a finished request reaches the ring of recent decisions with its routing rule and
 * reason (the default policy named, not left blank as in the ledger row) and nothing else. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "http/internal.h"
#include "ui/ui.h"

#define MS 1000000ull /* nanoseconds */

Test(http_ui, every_file_and_the_summary_have_a_route)
{
    const struct sb__route *r;
    unsigned allowed;
    size_t n;
    const struct sb_ui_asset *a = sb_ui_assets(&n);

    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(
            sb__route_find(sb__routes, sb__n_routes, a[i].path, EVHTTP_REQ_GET, &r, &allowed),
            SB__ROUTE_FOUND, "%s has no route", a[i].path);
        cr_assert_eq(r->handler, sb__ui_handle_asset, "%s", a[i].path);
        cr_assert_eq(
            sb__route_find(sb__routes, sb__n_routes, a[i].path, EVHTTP_REQ_HEAD, &r, &allowed),
            SB__ROUTE_FOUND, "HEAD %s", a[i].path);
    }
    /* And no route serves a file the table does not have. */
    for (size_t i = 0; i < sb__n_routes; i++) {
        if (sb__routes[i].handler == sb__ui_handle_asset)
            cr_assert_not_null(sb_ui_asset_find(sb__routes[i].path), "%s", sb__routes[i].path);
    }
    cr_assert_eq(
        sb__route_find(sb__routes, sb__n_routes, "/ui/api/summary", EVHTTP_REQ_GET, &r, &allowed),
        SB__ROUTE_FOUND);
    cr_assert_eq(r->handler, sb__ui_handle_summary);
    cr_assert_eq(
        sb__route_find(sb__routes, sb__n_routes, "/ui/api/summary", EVHTTP_REQ_POST, &r, &allowed),
        SB__ROUTE_NO_METHOD);
    cr_assert_eq(
        sb__route_find(sb__routes, sb__n_routes, "/ui/other", EVHTTP_REQ_GET, &r, &allowed),
        SB__ROUTE_NO_PATH);
}

Test(http_ui, a_finished_request_becomes_a_recent_decision)
{
    struct sb_server s = {0};
    struct sb__meter m = {0};
    struct sb_ledger_row row = {0};
    struct sb_ui_decision out[2];
    struct sb_usage usage = {.prompt_tokens = 12, .completion_tokens = 3};

    /* Off: nothing is kept and nothing fails. */
    sb__ui_record(&s, &m, &row);
    cr_assert_eq(sb_ui_new(2, &s.ui), 0);
    m.request_id = "req_1";
    m.api = SB_API_OLLAMA;
    m.model = SB_STR_LIT("local:latest");
    m.tried = m.backend = "local";
    m.rule = "default";
    m.sensitivity = "medium";
    m.reason = "default none: no rule matched -> the configured chain of local";
    snprintf(m.pii_counts, sizeof(m.pii_counts), "{\"email\":1}");
    m.t0 = 1000 * MS;
    m.t_first = 1040 * MS;
    m.t_end = 1100 * MS;
    m.status = 200;
    m.have_usage = true;
    m.usage = usage;
    sb__meter_row(&m, 1700000000000, 1200 * MS, -1, &row);
    cr_assert_str_eq(row.rule_id, "", "the ledger stores the default policy as \"\"");
    sb__ui_record(&s, &m, &row);

    cr_assert_eq(sb_ui_recent(s.ui, out, 2, NULL), 1);
    cr_assert_eq(out[0].ts_ms, 1700000000000);
    cr_assert_str_eq(out[0].request_id, "req_1");
    cr_assert_str_eq(out[0].api, "ollama");
    cr_assert_str_eq(out[0].model, "local:latest");
    cr_assert_str_eq(out[0].backend, "local");
    cr_assert_str_eq(out[0].rule, "default");
    cr_assert_str_eq(out[0].reason, m.reason);
    cr_assert_str_eq(out[0].sensitivity, "medium");
    cr_assert_str_eq(out[0].error_class, "");
    cr_assert_eq(out[0].status, 200);
    cr_assert_eq(out[0].prompt_tokens, 12);
    cr_assert_eq(out[0].completion_tokens, 3);
    cr_assert_eq(out[0].cost_microusd, -1);
    cr_assert_float_eq(out[0].latency_ms, 100.0, 1e-9);
    cr_assert_float_eq(out[0].ttft_ms, 40.0, 1e-9);
    sb_ui_free(s.ui);
}
