/* Tests for the `policy:` config section: what parses, and each refusal with the file, line and
 * column of the offending value, as `switchboard config check` prints them. */
#include <criterion/criterion.h>
#include <string.h>

#include "config/config.h"
#include "route/route.h"

#define MODELS                                                                                     \
    "models:\n"                                                                                    \
    "  - name: local\n"                                                                            \
    "    backend: local\n"                                                                         \
    "    path: x.gguf\n"                                                                           \
    "  - name: gpt\n"                                                                              \
    "    backend: openai\n"

/* Parses text as t.yaml; returns the errors (the caller frees them) and whether it parsed. */
static char *parse_errors(const char *text, bool *ok)
{
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    int rc = sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &errors);
    *ok = rc == 0;
    sb_config_free(cfg);
    char *s = sb_buf_steal(&errors);
    cr_assert_not_null(s);
    return s;
}

/* Expects text to be refused with an error line containing want. */
static void expect_error(const char *text, const char *want)
{
    bool ok;
    char *errors = parse_errors(text, &ok);
    cr_expect_not(ok, "accepted:\n%s", text);
    cr_expect_not_null(strstr(errors, want), "wanted \"%s\" in:\n%s", want, errors);
    free(errors);
}

Test(config_policy, parses_rules_and_defaults)
{
    const char *text = MODELS "policy:\n"
                              "  rules:\n"
                              "    - id: secrets-local\n"
                              "      when:\n"
                              "        pii: [aws_key, api_key]\n"
                              "        sensitivity: [high]\n"
                              "        min_prompt_tokens: 0\n"
                              "        tools: false\n"
                              "        budget_below_usd: 2.50\n"
                              "      action: {route: [local]}\n"
                              "    - id: redact\n"
                              "      action: {pseudonymize: true}\n";
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    cr_assert_eq(sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &errors), 0, "%s",
                 errors.p);
    const struct sb_policy_config *p = &cfg->policy;
    cr_expect_str_eq(p->default_policy, "hybrid");
    cr_assert_eq(p->n_rules, 2);
    const struct sb_policy_rule_config *r = &p->rules[0];
    cr_expect_str_eq(r->id, "secrets-local");
    cr_expect_eq(r->line, 9);
    cr_expect_eq(r->when.n_pii, 2);
    cr_expect(r->when.has_min_prompt_tokens);
    cr_expect_not(r->when.has_max_prompt_tokens);
    cr_expect(r->when.has_tools);
    cr_expect_not(r->when.tools);
    cr_expect_str_eq(r->when.budget_below_usd, "2.50");
    cr_expect_eq(r->action.n_route, 1);
    cr_expect_not(p->rules[1].when.has_tools);
    cr_expect(p->rules[1].action.pseudonymize);
    sb_config_free(cfg);
    sb_buf_free(&errors);

    /* No policy section: the hybrid default, no rules. */
    bool ok;
    free(parse_errors(MODELS, &ok));
    cr_expect(ok);
}

Test(config_policy, summary_prints_the_rules)
{
    const char *text = MODELS "policy:\n  rules:\n    - {id: r, action: {deny: \"no\"}}\n";
    struct sb_config *cfg = NULL;
    struct sb_buf errors, out;
    sb_buf_init(&errors, 1 << 16);
    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &errors), 0);
    sb_config_print_summary(cfg, &out);
    cr_expect_not_null(strstr(out.p, "policy:\n  rules:\n    - id: r\n"), "%s", out.p);
    cr_expect_not_null(strstr(out.p, "  default: hybrid\n"), "%s", out.p);
    sb_config_free(cfg);
    sb_buf_free(&errors);
    sb_buf_free(&out);
}

Test(config_policy, unknown_model_in_route_names_its_line)
{
    expect_error(MODELS "policy:\n"
                        "  rules:\n"
                        "    - id: r\n"
                        "      action:\n"
                        "        route: [local, gtp]\n",
                 "t.yaml:11:24: policy.rules[0].action.route[1]: unknown model \"gtp\"; expected "
                 "the name of a model in this file; did you mean \"gpt\"?");
}

Test(config_policy, unknown_model_in_when)
{
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {model: [nope]}, action: {route: "
                        "[local]}}\n",
                 "t.yaml:9:30: policy.rules[0].when.model[0]: unknown model \"nope\"");
}

Test(config_policy, unknown_sensitivity)
{
    expect_error(MODELS "policy:\n  rules:\n    - id: r\n      when: {sensitivity: [low, hihg]}\n"
                        "      action: {route: [local]}\n",
                 "t.yaml:10:33: policy.rules[0].when.sensitivity[1]: unknown sensitivity "
                 "\"hihg\"; did you mean \"high\"?; expected low, medium or high");
}

Test(config_policy, unknown_pii_kind_lists_the_known_ones)
{
    expect_error(MODELS "privacy:\n  custom_patterns: [{name: cust, regex: 'C-[0-9]+'}]\n"
                        "policy:\n  rules:\n    - id: r\n      when: {pii: [cust, emial]}\n"
                        "      action: {route: [local]}\n",
                 "t.yaml:12:26: policy.rules[0].when.pii[1]: unknown PII kind \"emial\"; did you "
                 "mean \"email\"?; expected one of email, card, ssn");
    /* Custom pattern names and "term" are kinds. */
    bool ok;
    free(parse_errors(MODELS "privacy:\n  custom_patterns: [{name: cust, regex: 'C-[0-9]+'}]\n"
                             "policy:\n  rules:\n    - {id: r, when: {pii: [cust, term]}, "
                             "action: {route: [local]}}\n",
                      &ok));
    cr_expect(ok);
}

Test(config_policy, a_rule_needs_an_action)
{
    expect_error(MODELS "policy:\n  rules:\n    - id: r\n      when: {tools: true}\n",
                 "t.yaml:9:7: policy.rules[0]: missing required key \"action\"");
    expect_error(MODELS "policy:\n  rules:\n    - id: r\n      action: {}\n",
                 "t.yaml:10:15: policy.rules[0].action: the rule has no action; expected route: "
                 "[models], deny: \"reason\" or pseudonymize: true");
    expect_error(MODELS "policy:\n  rules:\n    - id: r\n      action: {pseudonymize: false}\n",
                 "the rule has no action");
    expect_error(MODELS "policy:\n  rules:\n    - id: r\n      action:\n",
                 "the rule has no action");
}

Test(config_policy, duplicate_ids)
{
    expect_error(MODELS "policy:\n  rules:\n"
                        "    - {id: r, action: {route: [local]}}\n"
                        "    - {id: r, action: {route: [gpt]}}\n",
                 "t.yaml:10:12: policy.rules[1].id: \"r\" is already the id of rules[0] at "
                 "t.yaml:9:12; expected each id once");
}

Test(config_policy, ids_are_header_safe_and_not_default)
{
    expect_error(MODELS "policy:\n  rules:\n    - {id: \"a b\", action: {route: [local]}}\n",
                 "t.yaml:9:12: policy.rules[0].id: expected 1 to 64 letters, digits");
    expect_error(MODELS "policy:\n  rules:\n    - {id: default, action: {route: [local]}}\n",
                 "\"default\" names the default policy");
}

Test(config_policy, contradictory_or_empty_actions)
{
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, action: {route: [local], deny: no}}\n",
                 "policy.rules[0].action.deny: deny and route exclude each other");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, action: {deny: \"\"}}\n",
                 "policy.rules[0].action.deny: an empty reason");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, action: {route: []}}\n",
                 "policy.rules[0].action.route: an empty list routes nowhere");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, action: {route: [gpt, gpt]}}\n",
                 "t.yaml:9:37: policy.rules[0].action.route[1]: the model is listed twice");
}

Test(config_policy, bad_conditions)
{
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {key: []}, action: {deny: x}}\n",
                 "policy.rules[0].when.key: an empty list matches no request");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {min_prompt_tokens: 10, "
                        "max_prompt_tokens: 5}, action: {deny: x}}\n",
                 "min_prompt_tokens (10) is above max_prompt_tokens (5)");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {budget_below_usd: -1}, action: "
                        "{deny: x}}\n",
                 "policy.rules[0].when.budget_below_usd: expected a decimal number");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {tools: maybe}, action: "
                        "{deny: x}}\n",
                 "policy.rules[0].when.tools: expected true or false");
    expect_error(MODELS "policy:\n  rules:\n    - {id: r, when: {modle: [gpt]}, action: "
                        "{deny: x}}\n",
                 "unknown key; did you mean \"model\"?");
    expect_error(MODELS "policy: {default: hybird}\n", "did you mean \"hybrid\"?");
}

Test(config_policy, errors_without_models_still_reported)
{
    expect_error("policy:\n  rules:\n    - {id: r, action: {route: [local]}}\n",
                 "t.yaml:3:32: policy.rules[0].action.route[0]: unknown model \"local\"");
}
