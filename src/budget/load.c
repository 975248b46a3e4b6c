/* Budgets from the config, and the current periods' spend from the ledger: what a restarted
 * gateway must remember so that a budget is not spent twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "budget/internal.h"
#include "ledger/ledger.h"

/* The config's amounts are at most a billion dollars (config.c's tables). */
#define USD_MAX_MICROS ((int64_t)1000000000 * 1000000)

static int read_limit(const char *what, const char *usd, const char *period,
                      struct sb_budget_limit *out, char *err, size_t err_size)
{
    if (sb_config_parse_micros(usd, USD_MAX_MICROS, &out->micros) != 0) {
        snprintf(err, err_size, "budgets: %s: usd \"%s\" is not a decimal amount", what, usd);
        return SB_EINVAL;
    }
    if (sb_budget_period_parse(period != NULL ? period : "month", &out->period) != 0) {
        snprintf(err, err_size, "budgets: %s: period \"%s\" is not day, week or month", what,
                 period);
        return SB_EINVAL;
    }
    return 0;
}

int sb_budget_from_config(const struct sb_budgets_config *cfg, struct sb_budget **out, char *err,
                          size_t err_size)
{
    struct sb_budget_limit global = {0};
    struct sb_budget_params p = {
        .on_limit = cfg->on_limit != NULL && strcmp(cfg->on_limit, "local") == 0 ? SB_BUDGET_LOCAL
                                                                                 : SB_BUDGET_DENY,
        .default_max_tokens = cfg->default_max_tokens > 0 ? cfg->default_max_tokens : 4096,
    };
    struct sb_budget_limit *teams = calloc(cfg->n_teams ? cfg->n_teams : 1, sizeof(*teams));
    int rc = 0;

    *out = NULL;
    if (teams == NULL) {
        snprintf(err, err_size, "budgets: out of memory");
        return SB_ENOMEM;
    }
    if (cfg->global.usd != NULL) {
        rc = read_limit("global", cfg->global.usd, cfg->global.period, &global, err, err_size);
        p.global = &global;
    }
    for (size_t i = 0; rc == 0 && i < cfg->n_teams; i++) {
        const struct sb_budget_team_config *t = &cfg->teams[i];
        char what[96];
        snprintf(what, sizeof(what), "team %s", t->name != NULL ? t->name : "?");
        rc = read_limit(what, t->usd != NULL ? t->usd : "", t->period, &teams[i], err, err_size);
        teams[i].name = t->name;
    }
    p.teams = teams;
    p.n_teams = cfg->n_teams;
    if (rc == 0) {
        rc = sb_budget_new(&p, out);
        if (rc != 0)
            snprintf(err, err_size, "budgets: %s",
                     rc == SB_ENOMEM ? "out of memory" : "a team is named twice or not at all");
    }
    free(teams);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Loading spend from the ledger
 * ------------------------------------------------------------------------------------------- */
/* Cost by key id since a period start, one query per period kind asked for. */
struct by_key {
    bool loaded;
    int64_t start;
    struct sb_ledger_agg *groups; /* owned, sorted by name (the reader's order) */
    size_t n;
};

static int cmp_name(const void *key, const void *elem)
{
    return strcmp(key, ((const struct sb_ledger_agg *)elem)->name);
}

static int cmp_groups(const void *a, const void *b)
{
    return strcmp(((const struct sb_ledger_agg *)a)->name, ((const struct sb_ledger_agg *)b)->name);
}

static int load_by_key(struct sb_ledger_reader *r, enum sb_budget_period p, int64_t now_s,
                       struct by_key *k, char *err, size_t err_size)
{
    int64_t end;
    if (k->loaded)
        return 0;
    sb_budget_period_bounds(p, now_s, &k->start, &end);
    struct sb_ledger_filter f = {.since_ms = k->start * 1000, .until_ms = INT64_MAX};
    int rc = sb_ledger_aggregate(r, SB_LEDGER_GROUP_KEY, &f, &k->groups, &k->n);
    if (rc != 0) {
        snprintf(err, err_size, "budgets: reading this %s's spend from the ledger failed: %s",
                 sb_budget_period_name(p), sb_ledger_reader_error(r));
        return rc;
    }
    /* Sorted here: a server's collation may order names otherwise than bytes do. */
    if (k->n > 1)
        qsort(k->groups, k->n, sizeof(*k->groups), cmp_groups);
    k->loaded = true;
    return 0;
}

static int64_t cost_of(const struct by_key *k, const char *key_id)
{
    const struct sb_ledger_agg *g =
        k->n != 0 ? bsearch(key_id, k->groups, k->n, sizeof(*k->groups), cmp_name) : NULL;
    return g != NULL ? g->cost_microusd : 0;
}

static int load_global(struct sb_budget *b, struct sb_ledger_reader *r, int64_t limit,
                       enum sb_budget_period p, int64_t now_s, char *err, size_t err_size)
{
    int64_t start, end;
    struct sb_ledger_agg *all = NULL;
    size_t n = 0;

    sb_budget_period_bounds(p, now_s, &start, &end);
    struct sb_ledger_filter f = {.since_ms = start * 1000, .until_ms = INT64_MAX};
    int rc = sb_ledger_aggregate(r, SB_LEDGER_GROUP_ALL, &f, &all, &n);
    if (rc != 0) {
        snprintf(err, err_size, "budgets: reading the global spend from the ledger failed: %s",
                 sb_ledger_reader_error(r));
        return rc;
    }
    rc = sb_budget_preload(b, SB_BUDGET_SCOPE_GLOBAL, "", limit, p, start,
                           n > 0 ? all[0].cost_microusd : 0);
    free(all);
    return rc;
}

static bool is_file_target(const char *target)
{
    return strstr(target, "://") == NULL;
}

int sb_budget_load_ledger(struct sb_budget *b, const char *target,
                          const struct sb_budget_key_info *keys, size_t n, int64_t now_s, char *err,
                          size_t err_size)
{
    struct by_key by[SB_BUDGET_N_PERIODS] = {{0}};
    struct sb_ledger_reader *r = NULL;
    int rc;

    if (target == NULL || target[0] == '\0' ||
        (is_file_target(target) && access(target, F_OK) != 0))
        return 0;
    rc = sb_ledger_reader_open(target, &r, err, err_size);
    if (rc != 0)
        return rc;
    if (b->has_global)
        rc = load_global(b, r, b->global_micros, b->global_period, now_s, err, err_size);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct sb_budget_key_info *k = &keys[i];
        if (k->limit_micros < 0)
            continue;
        rc = load_by_key(r, k->period, now_s, &by[k->period], err, err_size);
        if (rc == 0)
            rc = sb_budget_preload(b, SB_BUDGET_SCOPE_KEY, k->id, k->limit_micros, k->period,
                                   by[k->period].start, cost_of(&by[k->period], k->id));
    }
    for (size_t t = 0; rc == 0 && t < b->n_teams; t++) {
        const struct sb__budget_team *team = &b->teams[t];
        int64_t sum = 0;
        rc = load_by_key(r, team->period, now_s, &by[team->period], err, err_size);
        for (size_t i = 0; rc == 0 && i < n; i++)
            if (keys[i].team != NULL && strcmp(keys[i].team, team->name) == 0)
                sum += cost_of(&by[team->period], keys[i].id);
        if (rc == 0)
            rc = sb_budget_preload(b, SB_BUDGET_SCOPE_TEAM, team->name, team->micros, team->period,
                                   by[team->period].start, sum);
    }
    for (size_t p = 0; p < SB_BUDGET_N_PERIODS; p++)
        free(by[p].groups);
    sb_ledger_reader_close(r);
    return rc;
}
