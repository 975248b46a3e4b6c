/* Unit tests for the `auth:` and `budgets:` sections: defaults that change nothing for existing
 * configs, every key into its field, and the errors for an unknown mode or period, an amount that
 * is not an exact decimal, a bad or repeated team name and a team without an amount. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config_test.h"

Test(config_quota, defaults_change_nothing)
{
    struct sb_config *cfg = parse_ok_in("log_level: info\n", "/base");
    cr_assert_str_eq(cfg->auth.keys, "off");
    cr_assert_str_eq(cfg->auth.store, "");
    cr_assert_null(cfg->budgets.global.usd);
    cr_assert_str_eq(cfg->budgets.global.period, "month");
    cr_assert_eq(cfg->budgets.n_teams, 0);
    cr_assert_str_eq(cfg->budgets.on_limit, "deny");
    cr_assert_eq(cfg->budgets.default_max_tokens, 4096);
    sb_config_free(cfg);
}

Test(config_quota, every_key_into_its_field)
{
    struct sb_config *cfg = parse_ok_in("auth:\n"
                                        "  keys: Required\n"
                                        "  store: keys.db\n"
                                        "budgets:\n"
                                        "  global: {usd: \"100\", period: week}\n"
                                        "  teams:\n"
                                        "    - {name: research, usd: \"20.50\", period: day}\n"
                                        "    - {name: ops, usd: \"5\"}\n"
                                        "  on_limit: local\n"
                                        "  default_max_tokens: 1000\n",
                                        "/base");
    cr_assert_str_eq(cfg->auth.keys, "required");
    cr_assert_str_eq(cfg->auth.store, "/base/keys.db", "relative to the file's folder");
    cr_assert_str_eq(cfg->budgets.global.usd, "100");
    cr_assert_str_eq(cfg->budgets.global.period, "week");
    cr_assert_eq(cfg->budgets.n_teams, 2);
    cr_assert_str_eq(cfg->budgets.teams[0].name, "research");
    cr_assert_str_eq(cfg->budgets.teams[0].usd, "20.50");
    cr_assert_str_eq(cfg->budgets.teams[0].period, "day");
    cr_assert_str_eq(cfg->budgets.teams[1].period, "month");
    cr_assert_eq(cfg->budgets.teams[1].line, 8);
    cr_assert_str_eq(cfg->budgets.on_limit, "local");
    cr_assert_eq(cfg->budgets.default_max_tokens, 1000);
    sb_config_free(cfg);
}

Test(config_quota, errors_name_the_key)
{
    expect_error("auth: {keys: sometimes}\n", "auth.keys: expected one of off, optional, required");
    expect_error("budgets: {global: {usd: \"1e3\"}}\n",
                 "budgets.global.usd: expected a decimal number");
    expect_error("budgets: {global: {usd: \"-5\"}}\n", "budgets.global.usd");
    expect_error("budgets: {global: {usd: \"1\", period: year}}\n",
                 "expected one of day, week, month");
    expect_error("budgets: {teams: [{name: \"r d\", usd: \"1\"}]}\n",
                 "expected 1 to 64 letters, digits");
    expect_error("budgets: {teams: [{name: r}]}\n", "missing required key \"usd\"");
    expect_error("budgets: {teams: [{name: r, usd: \"1\"}, {name: r, usd: \"2\"}]}\n",
                 "is already the name of");
    expect_error("budgets: {on_limit: queue}\n", "expected one of deny, local");
    expect_error("budgets: {default_max_tokens: 0}\n", "budgets.default_max_tokens");
}
