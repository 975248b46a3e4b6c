/* Tests for the dashboard's ring of recent decisions: capacity limits, newest-first reads,
 * wrapping, the running cost of the current UTC day, and every entry kept whole under concurrent
 * writers. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

#define DAY_MS 86400000ll

static struct sb_ui_decision decision(int n, int64_t ts_ms, int64_t cost)
{
    struct sb_ui_decision d = {.ts_ms = ts_ms, .status = 200, .cost_microusd = cost};

    snprintf(d.request_id, sizeof(d.request_id), "req_%d", n);
    d.prompt_tokens = n;
    return d;
}

static struct sb_ui *new_ui(size_t capacity)
{
    struct sb_ui *ui = NULL;

    cr_assert_eq(sb_ui_new(capacity, &ui), 0);
    cr_assert_not_null(ui);
    return ui;
}

Test(ui_recent, capacity_must_be_between_one_and_the_maximum)
{
    struct sb_ui *ui = (struct sb_ui *)1;

    cr_assert_eq(sb_ui_new(0, &ui), SB_EINVAL);
    cr_assert_null(ui);
    cr_assert_eq(sb_ui_new(SB_UI_MAX_RECENT + 1, &ui), SB_EINVAL);
    cr_assert_null(ui);
    ui = new_ui(SB_UI_MAX_RECENT);
    cr_assert_eq(sb_ui_capacity(ui), SB_UI_MAX_RECENT);
    sb_ui_free(ui);
    sb_ui_free(NULL);
    sb_ui_record(NULL, &(struct sb_ui_decision){0}); /* no dashboard: nothing happens */
}

Test(ui_recent, reads_newest_first_and_only_what_was_recorded)
{
    struct sb_ui *ui = new_ui(8);
    struct sb_ui_decision out[8];
    uint64_t total = 99;

    cr_assert_eq(sb_ui_recent(ui, out, 8, &total), 0);
    cr_assert_eq(total, 0);
    for (int i = 1; i <= 3; i++) {
        struct sb_ui_decision d = decision(i, 1000 * i, -1);
        sb_ui_record(ui, &d);
    }
    cr_assert_eq(sb_ui_recent(ui, out, 8, &total), 3);
    cr_assert_eq(total, 3);
    cr_assert_str_eq(out[0].request_id, "req_3");
    cr_assert_str_eq(out[1].request_id, "req_2");
    cr_assert_str_eq(out[2].request_id, "req_1");
    /* Fewer than held: the newest. */
    cr_assert_eq(sb_ui_recent(ui, out, 2, NULL), 2);
    cr_assert_str_eq(out[0].request_id, "req_3");
    cr_assert_str_eq(out[1].request_id, "req_2");
    sb_ui_free(ui);
}

Test(ui_recent, a_full_ring_drops_the_oldest)
{
    struct sb_ui *ui = new_ui(3);
    struct sb_ui_decision out[3];
    uint64_t total;

    for (int i = 1; i <= 7; i++) {
        struct sb_ui_decision d = decision(i, 1000 * i, -1);
        sb_ui_record(ui, &d);
    }
    cr_assert_eq(sb_ui_recent(ui, out, 3, &total), 3);
    cr_assert_eq(total, 7);
    cr_assert_str_eq(out[0].request_id, "req_7");
    cr_assert_str_eq(out[1].request_id, "req_6");
    cr_assert_str_eq(out[2].request_id, "req_5");
    cr_assert_eq(out[2].prompt_tokens, 5);
    sb_ui_free(ui);
}

Test(ui_recent, cost_today_counts_priced_requests_of_the_current_utc_day)
{
    struct sb_ui *ui = new_ui(2); /* the day's cost outlives the entries */
    int64_t day = 20000 * DAY_MS;
    struct sb_ui_decision d;

    cr_assert_eq(sb_ui_cost_today(ui, day), 0);
    d = decision(1, day + 10, 25);
    sb_ui_record(ui, &d);
    d = decision(2, day + 20, -1); /* unpriced: adds nothing */
    sb_ui_record(ui, &d);
    d = decision(3, day + DAY_MS - 1, 100);
    sb_ui_record(ui, &d);
    cr_assert_eq(sb_ui_cost_today(ui, day + 5), 125);
    cr_assert_eq(sb_ui_cost_today(ui, day + DAY_MS), 0, "tomorrow has spent nothing yet");
    d = decision(4, day + DAY_MS + 5, 7);
    sb_ui_record(ui, &d);
    cr_assert_eq(sb_ui_cost_today(ui, day + DAY_MS + 6), 7);
    /* A request that arrived before midnight and ended after it stays with its own day. */
    d = decision(5, day + DAY_MS - 2, 1000);
    sb_ui_record(ui, &d);
    cr_assert_eq(sb_ui_cost_today(ui, day + DAY_MS + 7), 7);
    cr_assert_eq(sb_ui_cost_today(ui, day + 5), 0, "yesterday's total is not kept");
    sb_ui_free(ui);
}

/* ---------------------------------------------------------------------------------------------
 * Concurrent writers and a reader: every entry read is one that was written, whole.
 * ------------------------------------------------------------------------------------------- */
enum { WRITERS = 4, PER_WRITER = 5000, CAP = 64 };

static struct sb_ui *shared;

static void *writer(void *arg)
{
    int w = (int)(intptr_t)arg;

    for (int i = 0; i < PER_WRITER; i++) {
        struct sb_ui_decision d = decision(w * PER_WRITER + i, 0, 1);
        /* Fields that must agree with each other in a whole copy. */
        d.completion_tokens = 3 * d.prompt_tokens;
        snprintf(d.model, sizeof(d.model), "model-%lld", (long long)d.prompt_tokens);
        sb_ui_record(shared, &d);
    }
    return NULL;
}

static void check_whole(const struct sb_ui_decision *d)
{
    char want[96];

    cr_assert_eq(d->completion_tokens, 3 * d->prompt_tokens);
    snprintf(want, sizeof(want), "model-%lld", (long long)d->prompt_tokens);
    cr_assert_str_eq(d->model, want);
    snprintf(want, sizeof(want), "req_%lld", (long long)d->prompt_tokens);
    cr_assert_str_eq(d->request_id, want);
}

Test(ui_recent, concurrent_writers_keep_every_entry_whole)
{
    pthread_t t[WRITERS];
    struct sb_ui_decision *out = calloc(CAP, sizeof(*out));
    uint64_t total;

    cr_assert_not_null(out);
    shared = new_ui(CAP);
    for (int i = 0; i < WRITERS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, writer, (void *)(intptr_t)i), 0);
    for (int r = 0; r < 200; r++) {
        size_t n = sb_ui_recent(shared, out, CAP, NULL);
        for (size_t i = 0; i < n; i++)
            check_whole(&out[i]);
    }
    for (int i = 0; i < WRITERS; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(sb_ui_recent(shared, out, CAP, &total), CAP);
    cr_assert_eq(total, (uint64_t)WRITERS * PER_WRITER);
    for (size_t i = 0; i < CAP; i++)
        check_whole(&out[i]);
    cr_assert_eq(sb_ui_cost_today(shared, 0), WRITERS * PER_WRITER);
    sb_ui_free(shared);
    free(out);
}
