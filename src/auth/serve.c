/* What `switchboard serve` builds for keys and budgets: the authenticator over the key store, and
 * the budgets with this period's spend read back from the ledger, so that a restart neither forgets
 * a key's spend nor lets a budget be spent twice. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

static bool budgets_configured(const struct sb_budgets_config *b)
{
    return b->global.usd != NULL || b->n_teams > 0;
}

static size_t count_revoked(const struct sb_auth_key *keys, size_t n)
{
    size_t r = 0;
    for (size_t i = 0; i < n; i++)
        r += keys[i].revoked_ms != 0;
    return r;
}

/* The keys as the budget loader wants them (pointing into keys). */
static int load_spend(struct sb_budget *budget, const char *ledger, const struct sb_auth_key *keys,
                      size_t n, int64_t now_s, char *err, size_t err_size)
{
    struct sb_budget_key_info *info = calloc(n ? n : 1, sizeof(*info));
    int rc;

    if (info == NULL) {
        snprintf(err, err_size, "budgets: out of memory");
        return SB_ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        info[i] = (struct sb_budget_key_info){keys[i].id, keys[i].team, keys[i].budget_micros,
                                              keys[i].period};
    rc = sb_budget_load_ledger(budget, ledger, info, n, now_s, err, err_size);
    free(info);
    return rc;
}

int sb_auth_serve_setup(const struct sb_config *cfg, int64_t now_s, struct sb_auth **auth,
                        struct sb_budget **budget, char *err, size_t err_size)
{
    enum sb_auth_mode mode = SB_AUTH_OFF;
    struct sb_auth_key *keys = NULL;
    size_t n = 0;
    int rc = 0;

    *auth = NULL;
    *budget = NULL;
    if (cfg->auth.keys != NULL && sb_auth_mode_parse(cfg->auth.keys, &mode) != 0) {
        snprintf(err, err_size, "auth.keys \"%s\" is not off, optional or required",
                 cfg->auth.keys);
        return SB_EINVAL;
    }
    if (mode != SB_AUTH_OFF) {
        const char *store = sb_auth_store_path(cfg, err, err_size);
        if (store == NULL)
            return SB_EINVAL;
        struct sb_auth_params p = {.mode = mode, .store = store};
        rc = sb_auth_new(&p, auth, err, err_size);
        if (rc == 0)
            rc = sb_auth_keys(*auth, &keys, &n);
        if (rc != 0)
            goto fail;
    } else if (cfg->budgets.n_teams > 0) {
        sb_log(SB_LOG_WARN, NULL,
               "budgets.teams apply to the teams of API keys, and auth.keys is off: no team "
               "budget will be charged");
    }
    if (mode != SB_AUTH_OFF)
        sb_log(SB_LOG_INFO, NULL, "keys: %s; %zu keys in the store (%zu revoked)", cfg->auth.keys,
               n, count_revoked(keys, n));
    if (mode == SB_AUTH_OFF && !budgets_configured(&cfg->budgets))
        return 0;
    rc = sb_budget_from_config(&cfg->budgets, budget, err, err_size);
    if (rc == 0)
        rc = load_spend(*budget, cfg->ledger.path, keys, n, now_s, err, err_size);
    if (rc != 0)
        goto fail;
    if (budgets_configured(&cfg->budgets))
        sb_log(SB_LOG_INFO, NULL, "budgets: %s, %zu team budgets; over a budget: %s",
               cfg->budgets.global.usd != NULL ? "a global budget" : "no global budget",
               cfg->budgets.n_teams, cfg->budgets.on_limit);
    free(keys);
    return 0;
fail:
    free(keys);
    sb_budget_free(*budget);
    sb_auth_free(*auth);
    *budget = NULL;
    *auth = NULL;
    return rc;
}
