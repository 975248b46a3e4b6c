/* Tests for budgets: calendar UTC periods, reservation arithmetic (all or nothing across key, team
 * and global), settling in and across periods, threshold notifications, concurrent reservations
 * that never overspend, the config, and the spend loaded back from a real ledger. The clock is
 * always passed in. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget/budget.h"
#include "ledger/ledger.h"

/* 2024-02-29T12:00:00Z, a Thursday in a leap month. */
#define T0 1709208000

/* ---------------------------------------------------------------------------------------------
 * Periods
 * ------------------------------------------------------------------------------------------- */
Test(budget_period, calendar_utc_bounds)
{
    static const struct {
        enum sb_budget_period p;
        int64_t now, start, end;
    } cases[] = {
        {SB_BUDGET_DAY, T0, 1709164800, 1709251200},
        {SB_BUDGET_WEEK, T0, 1708905600, 1709510400},  /* Monday 26 Feb to Monday 4 Mar */
        {SB_BUDGET_MONTH, T0, 1706745600, 1709251200}, /* February 2024 has 29 days */
        /* The last second of a year and the first of the next. */
        {SB_BUDGET_MONTH, 1704067199, 1701388800, 1704067200},
        {SB_BUDGET_DAY, 1704067200, 1704067200, 1704153600},
        {SB_BUDGET_WEEK, 1704067200, 1704067200, 1704672000}, /* 2024-01-01 was a Monday */
        /* 2100 is not a leap year; 2000 was. */
        {SB_BUDGET_MONTH, 4107456000, 4105123200, 4107542400},
        {SB_BUDGET_MONTH, 951782400, 949363200, 951868800},
        /* Before the epoch: the epoch was a Thursday. */
        {SB_BUDGET_WEEK, 0, -259200, 345600},
        {SB_BUDGET_MONTH, -43200, -2678400, 0},
        {SB_BUDGET_DAY, -1, -86400, 0},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        int64_t start = 0, end = 0;
        sb_budget_period_bounds(cases[i].p, cases[i].now, &start, &end);
        cr_assert_eq(start, cases[i].start, "case %zu: start %lld, want %lld", i, (long long)start,
                     (long long)cases[i].start);
        cr_assert_eq(end, cases[i].end, "case %zu: end %lld, want %lld", i, (long long)end,
                     (long long)cases[i].end);
    }
}

Test(budget_period, names_parse_both_ways)
{
    enum sb_budget_period p = SB_BUDGET_DAY;
    cr_assert_eq(sb_budget_period_parse("Week", &p), 0);
    cr_assert_eq(p, SB_BUDGET_WEEK);
    cr_assert_str_eq(sb_budget_period_name(p), "week");
    cr_assert_str_eq(sb_budget_period_adjective(SB_BUDGET_MONTH), "monthly");
    cr_assert_eq(sb_budget_period_parse("year", &p), SB_EINVAL);
    cr_assert_eq(p, SB_BUDGET_WEEK);
}

Test(budget_format, dollars_with_two_to_six_decimals)
{
    static const struct {
        int64_t micros;
        const char *want;
    } cases[] = {
        {0, "$0.00"},           {1500000, "$1.50"},  {1234, "$0.001234"},
        {100000000, "$100.00"}, {-250000, "-$0.25"}, {1, "$0.000001"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct sb_buf b;
        sb_buf_init(&b, 64);
        cr_assert_eq(sb_budget_format_usd(cases[i].micros, &b), 0);
        cr_assert_str_eq(b.p, cases[i].want);
        sb_buf_free(&b);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Reservations
 * ------------------------------------------------------------------------------------------- */
static struct sb_budget *make(const struct sb_budget_limit *global,
                              const struct sb_budget_limit *teams, size_t n_teams)
{
    struct sb_budget_params p = {
        .global = global, .teams = teams, .n_teams = n_teams, .default_max_tokens = 4096};
    struct sb_budget *b = NULL;
    cr_assert_eq(sb_budget_new(&p, &b), 0);
    return b;
}

static const struct sb_budget_payer anonymous = {.key_limit_micros = -1};

Test(budget, reservations_fit_up_to_the_limit_exactly)
{
    const struct sb_budget_limit g = {.micros = 100, .period = SB_BUDGET_DAY};
    struct sb_budget *b = make(&g, NULL, 0);
    struct sb_budget_hold h1, h2, h3;
    struct sb_budget_refusal why;
    int64_t left = 0, spent = -1, held = -1;

    cr_assert_eq(sb_budget_reserve(b, &anonymous, 60, T0, &h1, &why), 0);
    cr_assert_eq(h1.n, 1);
    cr_assert_eq(sb_budget_reserve(b, &anonymous, 50, T0, &h2, &why), SB_EDENIED);
    cr_assert_eq(h2.n, 0, "a refused reservation holds nothing");
    cr_assert_eq(why.scope, SB_BUDGET_SCOPE_GLOBAL);
    cr_assert_eq(why.limit_micros, 100);
    cr_assert_eq(why.spent_micros, 0);
    cr_assert_eq(why.held_micros, 60);
    cr_assert_eq(why.cost_micros, 50);
    cr_assert_eq(why.resets_s, 1709251200);
    cr_assert_eq(sb_budget_reserve(b, &anonymous, 40, T0, &h2, &why), 0, "60 + 40 = the limit");
    cr_assert(sb_budget_left(b, &anonymous, T0, &left));
    cr_assert_eq(left, 0);
    /* The first request cost less than it reserved: the difference is free again. */
    sb_budget_settle(b, &h1, 30, T0);
    cr_assert_eq(h1.n, 0);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_GLOBAL, "", T0, &spent, &held));
    cr_assert_eq(spent, 30);
    cr_assert_eq(held, 40);
    cr_assert_eq(sb_budget_reserve(b, &anonymous, 31, T0, &h3, &why), SB_EDENIED);
    cr_assert_eq(sb_budget_reserve(b, &anonymous, 30, T0, &h3, &why), 0);
    sb_budget_settle(b, &h2, -1, T0); /* unpriced: nothing spent */
    sb_budget_settle(b, &h3, 30, T0);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_GLOBAL, "", T0, &spent, &held));
    cr_assert_eq(spent, 60);
    cr_assert_eq(held, 0);
    sb_budget_free(b);
}

Test(budget, all_budgets_or_none)
{
    const struct sb_budget_limit g = {.micros = 1000, .period = SB_BUDGET_MONTH};
    const struct sb_budget_limit teams[] = {{"research", 100, SB_BUDGET_DAY}};
    struct sb_budget *b = make(&g, teams, 1);
    const struct sb_budget_payer k = {"key_a", "alice", 500, SB_BUDGET_WEEK, "research"};
    const struct sb_budget_payer other = {"key_b", "bob", -1, SB_BUDGET_MONTH, "ops"};
    struct sb_budget_hold h;
    struct sb_budget_refusal why;
    int64_t spent, held, left;

    cr_assert(sb_budget_has_team(b, "research"));
    cr_assert_not(sb_budget_has_team(b, "ops"));
    cr_assert(sb_budget_applies(b, &other), "the global budget applies to everyone");
    struct sb_budget *none = make(NULL, teams, 1);
    cr_assert_not(sb_budget_applies(none, &other));
    cr_assert_not(sb_budget_applies(none, &anonymous));
    cr_assert(sb_budget_applies(none, &k));
    sb_budget_free(none);
    /* The key's 500 would fit, the team's 100 would not: nothing is held anywhere. */
    cr_assert_eq(sb_budget_reserve(b, &k, 150, T0, &h, &why), SB_EDENIED);
    cr_assert_eq(why.scope, SB_BUDGET_SCOPE_TEAM);
    cr_assert_str_eq(why.name, "research");
    cr_assert_eq(why.period, SB_BUDGET_DAY);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_a", T0, &spent, &held));
    cr_assert_eq(held, 0);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_GLOBAL, "", T0, &spent, &held));
    cr_assert_eq(held, 0);
    /* Within all three: each holds it. */
    cr_assert_eq(sb_budget_reserve(b, &k, 80, T0, &h, &why), 0);
    cr_assert_eq(h.n, 3);
    cr_assert(sb_budget_left(b, &k, T0, &left));
    cr_assert_eq(left, 20, "the least left: the team's");
    sb_budget_settle(b, &h, 80, T0);
    /* A key of a team without a budget, without one of its own: the global one only. */
    cr_assert_eq(sb_budget_reserve(b, &other, 900, T0, &h, &why), 0);
    cr_assert_eq(h.n, 1);
    sb_budget_settle(b, &h, 900, T0);
    cr_assert_eq(sb_budget_reserve(b, &other, 21, T0, &h, &why), SB_EDENIED);
    cr_assert_eq(why.scope, SB_BUDGET_SCOPE_GLOBAL);
    cr_assert_eq(why.spent_micros, 980);
    /* A free request passes even an exhausted budget. */
    cr_assert_eq(sb_budget_reserve(b, &other, 0, T0, &h, &why), 0);
    sb_budget_settle(b, &h, 0, T0);
    sb_budget_free(b);
}

Test(budget, a_new_period_starts_from_zero_and_old_holds_settle_into_the_old_one)
{
    const struct sb_budget_payer k = {"key_a", "alice", 100, SB_BUDGET_DAY, NULL};
    struct sb_budget *b = make(NULL, NULL, 0);
    struct sb_budget_hold h1, h2;
    struct sb_budget_refusal why;
    int64_t spent, held;
    const int64_t midnight = 1709251200; /* the day after T0 */

    cr_assert_eq(sb_budget_reserve(b, &k, 60, T0, &h1, &why), 0);
    sb_budget_settle(b, &h1, 60, T0);
    cr_assert_eq(sb_budget_reserve(b, &k, 50, T0, &h1, &why), SB_EDENIED);
    cr_assert_eq(sb_budget_reserve(b, &k, 30, midnight - 1, &h1, &why), 0);
    /* Past midnight: the day's spend is 0, but the reservation in flight still holds. */
    cr_assert_eq(sb_budget_reserve(b, &k, 71, midnight, &h2, &why), SB_EDENIED);
    cr_assert_eq(why.spent_micros, 0);
    cr_assert_eq(why.held_micros, 30);
    cr_assert_eq(sb_budget_reserve(b, &k, 70, midnight, &h2, &why), 0);
    /* The old request's cost belongs to the day it was made in: not to the new one. */
    sb_budget_settle(b, &h1, 30, midnight + 5);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_a", midnight + 5, &spent, &held));
    cr_assert_eq(spent, 0);
    cr_assert_eq(held, 70);
    sb_budget_settle(b, &h2, 70, midnight + 6);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_a", midnight + 6, &spent, &held));
    cr_assert_eq(spent, 70);
    cr_assert_eq(held, 0);
    sb_budget_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Thresholds
 * ------------------------------------------------------------------------------------------- */
struct heard {
    int n;
    char scope[8][16];
    char name[8][32];
    int percent[8];
    int64_t spent[8], limit[8];
};

static void on_notify(void *ud, const char *scope, const char *name, int percent, int64_t spent,
                      int64_t limit)
{
    struct heard *h = ud;
    cr_assert_lt(h->n, 8);
    snprintf(h->scope[h->n], sizeof(h->scope[0]), "%s", scope);
    snprintf(h->name[h->n], sizeof(h->name[0]), "%s", name);
    h->percent[h->n] = percent;
    h->spent[h->n] = spent;
    h->limit[h->n] = limit;
    h->n++;
}

static void spend(struct sb_budget *b, const struct sb_budget_payer *p, int64_t micros, int64_t t)
{
    struct sb_budget_hold h;
    struct sb_budget_refusal why;
    cr_assert_eq(sb_budget_reserve(b, p, micros, t, &h, &why), 0);
    sb_budget_settle(b, &h, micros, t);
}

Test(budget, thresholds_are_announced_once_per_period)
{
    const struct sb_budget_limit teams[] = {{"research", 1000, SB_BUDGET_MONTH}};
    const struct sb_budget_payer k = {"key_a", "alice", 100, SB_BUDGET_DAY, "research"};
    struct sb_budget *b = make(NULL, teams, 1);
    struct heard h = {0};

    sb_budget_set_notify(b, on_notify, &h);
    spend(b, &k, 49, T0);
    cr_assert_eq(h.n, 0);
    spend(b, &k, 1, T0);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.scope[0], "key");
    cr_assert_str_eq(h.name[0], "alice");
    cr_assert_eq(h.percent[0], 50);
    cr_assert_eq(h.spent[0], 50);
    cr_assert_eq(h.limit[0], 100);
    spend(b, &k, 29, T0);
    cr_assert_eq(h.n, 1, "79%% crosses nothing new");
    /* One settle over two thresholds announces both, lowest first. */
    spend(b, &k, 21, T0);
    cr_assert_eq(h.n, 3);
    cr_assert_eq(h.percent[1], 80);
    cr_assert_eq(h.percent[2], 100);
    cr_assert_eq(h.spent[2], 100);
    /* The team's 1000 is at 10%: nothing. The next day starts the key over. */
    spend(b, &k, 60, T0 + 86400);
    cr_assert_eq(h.n, 4);
    cr_assert_eq(h.percent[3], 50);
    cr_assert_eq(h.spent[3], 60);
    sb_budget_free(b);
}

Test(budget, spend_loaded_at_startup_is_not_announced_again)
{
    const struct sb_budget_limit g = {.micros = 100, .period = SB_BUDGET_MONTH};
    struct sb_budget *b = make(&g, NULL, 0);
    struct heard h = {0};
    int64_t start, end;

    sb_budget_period_bounds(SB_BUDGET_MONTH, T0, &start, &end);
    cr_assert_eq(sb_budget_preload(b, SB_BUDGET_SCOPE_GLOBAL, "", 100, SB_BUDGET_MONTH, start, 60),
                 0);
    sb_budget_set_notify(b, on_notify, &h);
    spend(b, &anonymous, 25, T0);
    cr_assert_eq(h.n, 1);
    cr_assert_str_eq(h.scope[0], "global");
    cr_assert_str_eq(h.name[0], "");
    cr_assert_eq(h.percent[0], 80);
    cr_assert_eq(h.spent[0], 85);
    struct sb_budget_hold hold;
    struct sb_budget_refusal why;
    cr_assert_eq(sb_budget_reserve(b, &anonymous, 16, T0, &hold, &why), SB_EDENIED);
    sb_budget_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Concurrency
 * ------------------------------------------------------------------------------------------- */
#define THREADS 8
#define ROUNDS  2000

struct racer {
    struct sb_budget *b;
    int admitted;
};

static void *race(void *arg)
{
    struct racer *r = arg;
    const struct sb_budget_payer k = {"key_a", "alice", 5000, SB_BUDGET_DAY, "t"};
    for (int i = 0; i < ROUNDS; i++) {
        struct sb_budget_hold h;
        struct sb_budget_refusal why;
        if (sb_budget_reserve(r->b, &k, 7, T0, &h, &why) == 0) {
            r->admitted++;
            sb_budget_settle(r->b, &h, 7, T0);
        }
    }
    return NULL;
}

Test(budget, concurrent_reservations_never_overspend)
{
    const struct sb_budget_limit g = {.micros = 3000, .period = SB_BUDGET_DAY};
    const struct sb_budget_limit teams[] = {{"t", 4000, SB_BUDGET_DAY}};
    struct sb_budget *b = make(&g, teams, 1);
    struct racer r[THREADS];
    pthread_t t[THREADS];
    int admitted = 0;
    int64_t spent, held;

    for (int i = 0; i < THREADS; i++) {
        r[i] = (struct racer){b, 0};
        cr_assert_eq(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        admitted += r[i].admitted;
    }
    /* 3000 / 7 = 428 requests fit the tightest (global) budget; the rest were refused. */
    cr_assert_eq(admitted, 3000 / 7);
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_GLOBAL, "", T0, &spent, &held));
    cr_assert_eq(spent, (int64_t)admitted * 7);
    cr_assert_leq(spent, 3000);
    cr_assert_eq(held, 0);
    sb_budget_free(b);
}

/* ---------------------------------------------------------------------------------------------
 * Config and ledger
 * ------------------------------------------------------------------------------------------- */
Test(budget_config, from_the_config_section)
{
    struct sb_budget_team_config teams[] = {{.name = "research", .usd = "20.5", .period = "day"}};
    struct sb_budgets_config cfg = {
        .global = {.usd = "100", .period = "month"},
        .teams = teams,
        .n_teams = 1,
        .on_limit = "local",
        .default_max_tokens = 512,
    };
    struct sb_budget *b = NULL;
    struct sb_budget_hold h;
    struct sb_budget_refusal why;
    char err[256] = "";
    const struct sb_budget_payer k = {"key_a", "alice", -1, SB_BUDGET_MONTH, "research"};

    cr_assert_eq(sb_budget_from_config(&cfg, &b, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(sb_budget_on_limit(b), SB_BUDGET_LOCAL);
    cr_assert_eq(sb_budget_default_max_tokens(b), 512);
    cr_assert_eq(sb_budget_reserve(b, &k, 20500001, T0, &h, &why), SB_EDENIED);
    cr_assert_eq(why.limit_micros, 20500000);
    cr_assert_eq(sb_budget_reserve(b, &k, 20500000, T0, &h, &why), 0);
    sb_budget_settle(b, &h, 0, T0);
    sb_budget_free(b);

    teams[0].usd = "1e3";
    cr_assert_eq(sb_budget_from_config(&cfg, &b, err, sizeof(err)), SB_EINVAL);
    cr_assert_null(b);
    cr_assert_not_null(strstr(err, "team research"), "%s", err);
}

static char dir[64];
static char db[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sb-budget-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/ledger.db", dir);
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

static void row(struct sb_ledger *l, int64_t ts_s, const char *key, const char *team, int64_t cost)
{
    struct sb_ledger_row r = {0};
    r.ts_ms = ts_s * 1000;
    sb_ledger_copy(r.request_id, sizeof(r.request_id), sb_str_c("req_test"));
    sb_ledger_copy(r.key_id, sizeof(r.key_id), sb_str_c(key));
    sb_ledger_copy(r.team, sizeof(r.team), sb_str_c(team));
    sb_ledger_copy(r.model, sizeof(r.model), sb_str_c("gpt"));
    r.status = 200;
    r.attempts = 1;
    r.queue_ms = r.ttft_ms = r.tokens_per_s = -1;
    r.cost_microusd = cost;
    cr_assert_eq(sb_ledger_record(l, &r), 0);
}

Test(budget_ledger, spend_of_the_current_periods_is_loaded, .init = make_dir, .fini = remove_dir)
{
    struct sb_ledger_config lc = {.path = db, .commit_interval_ms = 5, .queue_size = 64};
    struct sb_ledger *l = NULL;
    char err[512] = "";
    const int64_t day = 1709164800; /* T0's day; its week began 3 days before */

    cr_assert_eq(sb_ledger_open(&lc, &l, err, sizeof(err)), 0, "%s", err);
    row(l, T0, "key_a", "research", 10);          /* today */
    row(l, day - 86400, "key_a", "research", 20); /* yesterday: this week and month */
    row(l, T0, "key_b", "research", 300);
    row(l, day - 5 * 86400, "key_b", "research", 4000); /* last week, this month */
    row(l, T0, "key_c", "ops", 7);
    row(l, T0, "", "", 50000);                              /* anonymous */
    row(l, day - 40 * 86400, "key_a", "research", 1000000); /* last month */
    row(l, T0, "key_a", "research", -1);                    /* unpriced */
    cr_assert_eq(sb_ledger_close(l), 0);

    const struct sb_budget_limit g = {.micros = 1000000, .period = SB_BUDGET_MONTH};
    const struct sb_budget_limit teams[] = {{"research", 10000, SB_BUDGET_WEEK}};
    struct sb_budget *b = make(&g, teams, 1);
    const struct sb_budget_key_info keys[] = {
        {"key_a", "research", 100, SB_BUDGET_DAY},
        {"key_b", "research", 100000, SB_BUDGET_MONTH},
        {"key_c", "ops", -1, SB_BUDGET_MONTH},
    };
    cr_assert_eq(sb_budget_load_ledger(b, db, keys, SB_ARRAY_LEN(keys), T0, err, sizeof(err)), 0,
                 "%s", err);
    int64_t spent, held;
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_a", T0, &spent, &held));
    cr_assert_eq(spent, 10, "key_a's day");
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_b", T0, &spent, &held));
    cr_assert_eq(spent, 4300, "key_b's month");
    cr_assert_not(sb_budget_spent(b, SB_BUDGET_SCOPE_KEY, "key_c", T0, &spent, &held),
                  "a key without a budget has no entry");
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_TEAM, "research", T0, &spent, &held));
    cr_assert_eq(spent, 10 + 20 + 300, "the team's week: its keys' rows since Monday");
    cr_assert(sb_budget_spent(b, SB_BUDGET_SCOPE_GLOBAL, "", T0, &spent, &held));
    cr_assert_eq(spent, 10 + 20 + 300 + 4000 + 7 + 50000, "every priced row of the month");
    sb_budget_free(b);

    /* No ledger file: nothing to load, no error. */
    b = make(&g, NULL, 0);
    cr_assert_eq(sb_budget_load_ledger(b, "/nonexistent/ledger.db", keys, 1, T0, err, sizeof(err)),
                 0);
    sb_budget_free(b);
}
