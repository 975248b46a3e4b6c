/* Helpers shared by the ledger's tests on SQLite (test_ledger.c) and on PostgreSQL (test_pg.c):
 * opening a ledger that must open, and a plain row to record. Each test file includes it once. */
#ifndef SB_TEST_LEDGER_TEST_H
#define SB_TEST_LEDGER_TEST_H

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "ledger/ledger.h"

/* Opens the ledger cfg describes, asserting success; the caller closes it with sb_ledger_close. */
static inline struct sb_ledger *open_ok(struct sb_ledger_config cfg)
{
    struct sb_ledger *l = NULL;
    char err[512] = "";
    int rc = sb_ledger_open(&cfg, &l, err, sizeof err);
    cr_assert_eq(rc, 0, "open: %s", err);
    cr_assert_not_null(l);
    return l;
}

/* Fills *row with request i: "req_<i>", answered by the local model, 10 prompt tokens and i
 * completion tokens, unpriced and with no timing but its latency; at ts_ms (0: "now"). */
static inline void fill_row_at(struct sb_ledger_row *row, int64_t i, int64_t ts_ms)
{
    memset(row, 0, sizeof *row);
    char id[40];
    snprintf(id, sizeof id, "req_%lld", (long long)i);
    sb_ledger_copy(row->request_id, sizeof row->request_id, sb_str_c(id));
    sb_ledger_copy(row->model, sizeof row->model, SB_STR_LIT("local"));
    sb_ledger_copy(row->backend, sizeof row->backend, SB_STR_LIT("local"));
    sb_ledger_copy(row->backends_tried, sizeof row->backends_tried, SB_STR_LIT("local"));
    row->ts_ms = ts_ms;
    row->api = SB_API_OPENAI;
    row->status = 200;
    row->attempts = 1;
    row->prompt_tokens = 10;
    row->completion_tokens = i;
    row->latency_ms = 12.5;
    row->queue_ms = -1;
    row->ttft_ms = -1;
    row->tokens_per_s = -1;
    row->cost_microusd = -1;
}

#endif
