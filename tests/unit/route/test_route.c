/* Tests for the routing decision: each condition predicate (holds and does not hold), first-match
 * order, the hybrid policy's table row by row, the label and detection inputs, token estimates,
 * routers over live backends (kind, context and exact counts from the backend) and the helpers
 * the HTTP layer calls. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "route/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Fixtures
 * ------------------------------------------------------------------------------------------- */
/* Two local models (chat, embeddings) and two cloud ones; `local` holds 1000 tokens. */
#define MODELS                                                                                     \
    "models:\n"                                                                                    \
    "  - name: local\n"                                                                            \
    "    backend: local\n"                                                                         \
    "    path: x.gguf\n"                                                                           \
    "    context: 1000\n"                                                                          \
    "  - name: gpt\n"                                                                              \
    "    backend: openai\n"                                                                        \
    "  - name: claude\n"                                                                           \
    "    backend: anthropic\n"                                                                     \
    "  - name: embed\n"                                                                            \
    "    backend: local\n"                                                                         \
    "    path: e.gguf\n"                                                                           \
    "    embeddings: true\n"

struct fixture {
    struct sb_config *cfg;
    struct sb_router *r;
};

static struct fixture setup_yaml(const char *yaml)
{
    struct fixture f = {0};
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    int rc = sb_config_parse("t.yaml", yaml, strlen(yaml), NULL, &f.cfg, &errors);
    cr_assert_eq(rc, 0, "%s", errors.p ? errors.p : "");
    sb_buf_free(&errors);
    char err[256];
    cr_assert_eq(sb_router_new(f.cfg, NULL, 0, &f.r, err, sizeof err), 0, "%s", err);
    return f;
}

static void teardown_fx(struct fixture *f)
{
    sb_router_free(f->r);
    sb_config_free(f->cfg);
}

/* A plain request for alias: low label, nothing detected, 10 tokens. */
static struct sb_route_input input(const char *alias)
{
    return (struct sb_route_input){
        .model = sb_str_c(alias), .kind = SB_REQ_CHAT, .prompt_tokens = 10};
}

/* counts with one value of each kind given (a -1 terminated list). */
static struct sb_pii_counts pii_of(const int *kinds)
{
    struct sb_pii_counts c = {0};
    for (size_t i = 0; kinds[i] >= 0; i++) {
        c.by_kind[kinds[i]]++;
        c.kinds |= (uint64_t)1 << kinds[i];
        c.total++;
    }
    return c;
}

/* The decided chain as "a,b,c". */
static const char *chain_of(const struct fixture *f, const struct sb_route_decision *d)
{
    static char buf[512];
    size_t n = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < d->n_chain; i++)
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", i ? "," : "",
                              f->cfg->models[d->chain[i]].name);
    return buf;
}

/* ---------------------------------------------------------------------------------------------
 * Labels and detection
 * ------------------------------------------------------------------------------------------- */
Test(route_input, sensitivity_parse)
{
    enum sb_sensitivity s = SB_SENSITIVITY_UNSET;
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT("low"), &s), 0);
    cr_expect_eq(s, SB_SENSITIVITY_LOW);
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT(" High\t"), &s), 0);
    cr_expect_eq(s, SB_SENSITIVITY_HIGH);
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT("MEDIUM"), &s), 0);
    cr_expect_eq(s, SB_SENSITIVITY_MEDIUM);
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT("secret"), &s), SB_EINVAL);
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT(""), &s), SB_EINVAL);
    cr_expect_eq(sb_route_sensitivity_parse(SB_STR_LIT("lo"), &s), SB_EINVAL);
    cr_expect_eq(s, SB_SENSITIVITY_MEDIUM, "a failed parse leaves *out alone");
    cr_expect_str_eq(sb_route_sensitivity_name(SB_SENSITIVITY_HIGH), "high");
}

Test(route_input, request_label_header_and_metadata)
{
    struct sb_request req;
    sb_request_init(&req);
    struct sb_label label = {SB_STR_LIT("sensitivity"), SB_STR_LIT("medium")};
    enum sb_sensitivity s;
    const char *bad = NULL;
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_NULL, &s, &bad), 0);
    cr_expect_eq(s, SB_SENSITIVITY_UNSET);
    req.labels = &label;
    req.n_labels = 1;
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_NULL, &s, &bad), 0);
    cr_expect_eq(s, SB_SENSITIVITY_MEDIUM);
    /* Both given: the more careful one wins, whichever it is. */
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_LIT("low"), &s, &bad), 0);
    cr_expect_eq(s, SB_SENSITIVITY_MEDIUM);
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_LIT("high"), &s, &bad), 0);
    cr_expect_eq(s, SB_SENSITIVITY_HIGH);
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_LIT("top"), &s, &bad), SB_EINVAL);
    cr_expect_str_eq(bad, "header x-switchboard-sensitivity");
    label.value = SB_STR_LIT("confidential");
    cr_expect_eq(sb_route_request_sensitivity(&req, SB_STR_NULL, &s, &bad), SB_EINVAL);
    cr_expect_str_eq(bad, "metadata.sensitivity");
}

Test(route_input, detected_sensitivity_by_kind)
{
    /* Every built-in kind, as docs/routing.md lists it. */
    static const struct {
        int kind;
        enum sb_sensitivity s;
    } rows[] = {
        {SB_PII_EMAIL, SB_SENSITIVITY_MEDIUM}, {SB_PII_CARD, SB_SENSITIVITY_HIGH},
        {SB_PII_SSN, SB_SENSITIVITY_HIGH},     {SB_PII_IBAN, SB_SENSITIVITY_HIGH},
        {SB_PII_IPV4, SB_SENSITIVITY_MEDIUM},  {SB_PII_IPV6, SB_SENSITIVITY_MEDIUM},
        {SB_PII_PHONE, SB_SENSITIVITY_MEDIUM}, {SB_PII_AWS_KEY, SB_SENSITIVITY_HIGH},
        {SB_PII_API_KEY, SB_SENSITIVITY_HIGH}, {SB_PII_GITHUB_TOKEN, SB_SENSITIVITY_HIGH},
        {SB_PII_JWT, SB_SENSITIVITY_HIGH},     {SB_PII_PRIVATE_KEY, SB_SENSITIVITY_HIGH},
        {SB_PII_TERM, SB_SENSITIVITY_MEDIUM},  {SB_PII_CUSTOM, SB_SENSITIVITY_MEDIUM},
    };
    cr_assert_eq(SB_PII_N_BUILTIN, 12, "a new detector needs a row here and in input.c");
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        struct sb_pii_counts c = pii_of((int[]){rows[i].kind, -1});
        cr_expect_eq(sb_route_detected_sensitivity(&c), rows[i].s, "kind %d", rows[i].kind);
    }
    struct sb_pii_counts none = {0};
    cr_expect_eq(sb_route_detected_sensitivity(&none), SB_SENSITIVITY_LOW);
    cr_expect_eq(sb_route_detected_sensitivity(NULL), SB_SENSITIVITY_LOW);
    struct sb_pii_counts mixed = pii_of((int[]){SB_PII_EMAIL, SB_PII_IBAN, -1});
    cr_expect_eq(sb_route_detected_sensitivity(&mixed), SB_SENSITIVITY_HIGH);
}

Test(route_input, token_estimate_is_bytes_over_four_rounded_up)
{
    struct sb_request req;
    sb_request_init(&req);
    cr_expect_eq(sb_route_estimate_tokens(&req), 0);
    struct sb_part parts[2] = {{.type = SB_PART_TEXT, .text = SB_STR_LIT("12345")},
                               {.type = SB_PART_TEXT, .text = SB_STR_LIT("678")}};
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = parts, .n_parts = 2};
    req.messages = &msg;
    req.n_messages = 1;
    cr_expect_eq(sb_route_estimate_tokens(&req), 2); /* 8 bytes */
    struct sb_tool tool = {SB_STR_LIT("f"), SB_STR_LIT(""), SB_STR_LIT("{}")};
    req.tools = &tool;
    req.n_tools = 1;
    cr_expect_eq(sb_route_estimate_tokens(&req), 3); /* 11 bytes */
}

/* ---------------------------------------------------------------------------------------------
 * Conditions: one rule with one condition routes to claude; otherwise the hybrid default.
 * ------------------------------------------------------------------------------------------- */
static void expect_rule(const char *when, struct sb_route_input in, bool matches)
{
    char yaml[2048];
    snprintf(yaml, sizeof yaml,
             MODELS
             "policy:\n  rules:\n    - id: r\n      when: %s\n      action: {route: [claude]}\n",
             when);
    struct fixture f = setup_yaml(yaml);
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0, "%s", d.reason);
    if (matches) {
        cr_expect_str_eq(d.rule, "r", "%s: %s", when, d.reason);
        cr_expect_str_eq(chain_of(&f, &d), "claude");
        cr_expect_eq(strncmp(d.reason, "rule r: ", 8), 0, "%s", d.reason);
    } else {
        cr_expect_str_eq(d.rule, "default", "%s: %s", when, d.reason);
    }
    teardown_fx(&f);
}

Test(route_cond, model)
{
    expect_rule("{model: [gpt, local]}", input("local"), true);
    expect_rule("{model: [gpt]}", input("local"), false);
}

Test(route_cond, key_and_team)
{
    struct sb_route_input in = input("local");
    expect_rule("{key: [alice, bob]}", in, false); /* no key at all */
    in.key = SB_STR_LIT("bob");
    expect_rule("{key: [alice, bob]}", in, true);
    in.key = SB_STR_LIT("bo");
    expect_rule("{key: [alice, bob]}", in, false);
    in.team = SB_STR_LIT("ml");
    expect_rule("{team: [ml]}", in, true);
    expect_rule("{team: [data]}", in, false);
}

Test(route_cond, sensitivity_is_the_effective_one)
{
    struct sb_route_input in = input("local");
    expect_rule("{sensitivity: [low]}", in, true); /* unlabelled, nothing found: low */
    expect_rule("{sensitivity: [medium, high]}", in, false);
    in.label = SB_SENSITIVITY_MEDIUM;
    expect_rule("{sensitivity: [medium]}", in, true);
    struct sb_pii_counts card = pii_of((int[]){SB_PII_CARD, -1});
    in.pii = &card; /* detection outranks the label */
    expect_rule("{sensitivity: [medium]}", in, false);
    expect_rule("{sensitivity: [high]}", in, true);
    in.pii = NULL;
    in.scan_failed = true;
    expect_rule("{sensitivity: [high]}", in, true);
}

Test(route_cond, pii_any_of)
{
    struct sb_route_input in = input("local");
    expect_rule("{pii: [email, phone]}", in, false);
    struct sb_pii_counts c = pii_of((int[]){SB_PII_PHONE, -1});
    in.pii = &c;
    expect_rule("{pii: [email, phone]}", in, true);
    expect_rule("{pii: [email]}", in, false);
    struct sb_pii_counts t = pii_of((int[]){SB_PII_TERM, -1});
    in.pii = &t;
    expect_rule("{pii: [term]}", in, true);
}

Test(route_cond, pii_custom_pattern_by_name)
{
    const char *yaml =
        MODELS "privacy:\n  custom_patterns:\n    - {name: cust, regex: 'C-[0-9]{4}'}\n"
               "policy:\n  rules:\n    - {id: r, when: {pii: [cust]}, action: "
               "{route: [claude]}}\n";
    struct fixture f = setup_yaml(yaml);
    struct sb_route_input in = input("local");
    struct sb_pii_counts c = pii_of((int[]){SB_PII_CUSTOM, -1});
    in.pii = &c;
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(d.rule, "r");
    cr_expect_str_eq(d.reason, "rule r: pii cust -> claude");
    teardown_fx(&f);
}

Test(route_cond, prompt_tokens_bounds_inclusive)
{
    struct sb_route_input in = input("local");
    in.prompt_tokens = 500;
    expect_rule("{min_prompt_tokens: 500}", in, true);
    expect_rule("{min_prompt_tokens: 501}", in, false);
    expect_rule("{max_prompt_tokens: 500}", in, true);
    expect_rule("{max_prompt_tokens: 499}", in, false);
    expect_rule("{min_prompt_tokens: 100, max_prompt_tokens: 600}", in, true);
}

Test(route_cond, min_max_tokens)
{
    struct sb_route_input in = input("local");
    expect_rule("{min_max_tokens: 2000}", in, true); /* unset: unbounded */
    in.max_tokens = 1999;
    expect_rule("{min_max_tokens: 2000}", in, false);
    in.max_tokens = 2000;
    expect_rule("{min_max_tokens: 2000}", in, true);
}

Test(route_cond, tools)
{
    struct sb_route_input in = input("local");
    expect_rule("{tools: true}", in, false);
    expect_rule("{tools: false}", in, true);
    in.tools = true;
    expect_rule("{tools: true}", in, true);
    expect_rule("{tools: false}", in, false);
}

Test(route_cond, budget_below)
{
    struct sb_route_input in = input("local");
    expect_rule("{budget_below_usd: 1.5}", in, false); /* no budget kept */
    in.has_budget = true;
    in.budget_left_micros = 1499999;
    expect_rule("{budget_below_usd: 1.5}", in, true);
    in.budget_left_micros = 1500000;
    expect_rule("{budget_below_usd: 1.5}", in, false);
    in.budget_left_micros = -20;
    expect_rule("{budget_below_usd: 0}", in, true);
}

Test(route_cond, no_conditions_match_everything)
{
    expect_rule("{}", input("gpt"), true);
}

/* ---------------------------------------------------------------------------------------------
 * Rules: order, conjunction, actions, explanations
 * ------------------------------------------------------------------------------------------- */
Test(route_rules, first_match_wins_and_conditions_all_hold)
{
    struct fixture f = setup_yaml(
        MODELS "policy:\n  rules:\n"
               "    - {id: both, when: {model: [local], tools: true}, action: {route: [gpt]}}\n"
               "    - {id: local-any, when: {model: [local]}, action: {route: [claude, local]}}\n"
               "    - {id: also-local, when: {model: [local]}, action: {route: [gpt]}}\n");
    struct sb_route_input in = input("local");
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(d.rule, "local-any", "one condition of 'both' fails");
    cr_expect_str_eq(chain_of(&f, &d), "claude,local");
    in.tools = true;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(d.rule, "both");
    cr_expect_str_eq(d.reason, "rule both: model local, tools -> gpt");
    cr_assert_eq(sb_route_decide(f.r, &(struct sb_route_input){.model = SB_STR_LIT("gpt")}, &d), 0);
    cr_expect_str_eq(d.rule, "default");
    teardown_fx(&f);
}

Test(route_rules, deny_and_pseudonymize_actions)
{
    struct fixture f = setup_yaml(
        MODELS "policy:\n  rules:\n"
               "    - {id: no-tools, when: {tools: true}, action: {deny: \"tools are off here\"}}\n"
               "    - {id: redact, when: {model: [gpt]}, action: {pseudonymize: true}}\n"
               "    - {id: redact-to, when: {model: [claude]}, action: {route: [claude, local], "
               "pseudonymize: true}}\n");
    struct sb_route_input in = input("local");
    in.tools = true;
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), SB_EDENIED);
    cr_expect(d.deny);
    cr_expect_eq(d.n_chain, 0);
    cr_expect_str_eq(d.rule, "no-tools");
    cr_expect_str_eq(d.deny_reason, "tools are off here");
    cr_expect_str_eq(d.reason, "rule no-tools: tools -> deny");
    /* pseudonymize alone: the alias's configured chain. */
    cr_assert_eq(sb_route_decide(f.r, &(struct sb_route_input){.model = SB_STR_LIT("gpt")}, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "gpt");
    cr_expect(d.pseudonymize);
    cr_expect_str_eq(d.reason, "rule redact: model gpt -> the configured chain, pseudonymized");
    cr_assert_eq(sb_route_decide(f.r, &(struct sb_route_input){.model = SB_STR_LIT("claude")}, &d),
                 0);
    cr_expect_str_eq(chain_of(&f, &d), "claude,local");
    cr_expect(d.pseudonymize);
    teardown_fx(&f);
}

Test(route_rules, unknown_alias_is_not_found)
{
    struct fixture f = setup_yaml(MODELS);
    struct sb_route_decision d;
    cr_expect_eq(sb_route_decide(f.r, &(struct sb_route_input){.model = SB_STR_LIT("nope")}, &d),
                 SB_ENOTFOUND);
    cr_expect_str_eq(d.reason, "no model is named \"nope\"");
    cr_expect_eq(sb_route_decide(f.r, &(struct sb_route_input){0}, &d), SB_ENOTFOUND);
    teardown_fx(&f);
}

/* ---------------------------------------------------------------------------------------------
 * The hybrid policy, row by row (docs/routing.md)
 * ------------------------------------------------------------------------------------------- */
struct hybrid_row {
    const char *name;
    const char *alias;
    enum sb_sensitivity label;
    int kinds[4]; /* detected, -1 terminated */
    int64_t tokens;
    bool scan_failed;
    int rc;
    const char *chain;
    bool pseudonymize;
    const char *reason;
};

static const struct hybrid_row hybrid_rows[] = {
    {"high label: local only",
     "local",
     SB_SENSITIVITY_HIGH,
     {-1},
     10,
     false,
     0,
     "local",
     false,
     "default hybrid: sensitivity high (label) -> local only"},
    {"high detected on a cloud alias: local only",
     "gpt",
     SB_SENSITIVITY_UNSET,
     {SB_PII_CARD, -1},
     10,
     false,
     0,
     "local",
     false,
     "default hybrid: sensitivity high (detected: card) -> local only"},
    {"failed scan: as high",
     "gpt",
     SB_SENSITIVITY_LOW,
     {-1},
     10,
     true,
     0,
     "local",
     false,
     "default hybrid: sensitivity high (PII scan failed) -> local only"},
    {"long prompt: cloud, pseudonymized",
     "local",
     SB_SENSITIVITY_UNSET,
     {-1},
     999,
     false,
     0,
     "gpt",
     true,
     "default hybrid: ~999 prompt tokens exceed the local context (1000) -> cloud, "
     "pseudonymized"},
    {"long and high: deny",
     "local",
     SB_SENSITIVITY_UNSET,
     {SB_PII_SSN, -1},
     5000,
     false,
     SB_EDENIED,
     "",
     false,
     "default hybrid: sensitivity high (detected: ssn), ~5000 prompt tokens exceed the local "
     "context (1000) -> deny"},
    {"medium: local, then cloud pseudonymized",
     "local",
     SB_SENSITIVITY_UNSET,
     {SB_PII_EMAIL, -1},
     10,
     false,
     0,
     "local,gpt",
     true,
     "default hybrid: sensitivity medium (detected: email) -> local first, cloud fallback "
     "pseudonymized"},
    {"low: local, then cloud",
     "local",
     SB_SENSITIVITY_LOW,
     {-1},
     10,
     false,
     0,
     "local,gpt",
     false,
     "default hybrid: sensitivity low (label) -> local first, cloud fallback"},
    {"cloud alias: cloud, then local",
     "claude",
     SB_SENSITIVITY_UNSET,
     {-1},
     10,
     false,
     0,
     "claude,local",
     false,
     "default hybrid: cloud alias, sensitivity low -> cloud first, local fallback"},
    {"cloud alias, medium: pseudonymized",
     "claude",
     SB_SENSITIVITY_MEDIUM,
     {-1},
     10,
     false,
     0,
     "claude,local",
     true,
     "default hybrid: cloud alias, sensitivity medium (label) -> cloud first pseudonymized, local "
     "fallback"},
    {"cloud alias, long: cloud only",
     "claude",
     SB_SENSITIVITY_UNSET,
     {-1},
     1200,
     false,
     0,
     "claude",
     true,
     "default hybrid: ~1200 prompt tokens exceed the local context (1000) -> cloud, "
     "pseudonymized"},
};

Test(route_hybrid, table_rows)
{
    struct fixture f = setup_yaml(MODELS);
    for (size_t i = 0; i < SB_ARRAY_LEN(hybrid_rows); i++) {
        const struct hybrid_row *row = &hybrid_rows[i];
        struct sb_pii_counts c = pii_of(row->kinds);
        struct sb_route_input in = input(row->alias);
        in.label = row->label;
        in.pii = &c;
        in.prompt_tokens = row->tokens;
        in.scan_failed = row->scan_failed;
        struct sb_route_decision d;
        cr_expect_eq(sb_route_decide(f.r, &in, &d), row->rc, "%s", row->name);
        cr_expect_str_eq(chain_of(&f, &d), row->chain, "%s", row->name);
        cr_expect_eq(d.pseudonymize, row->pseudonymize, "%s", row->name);
        cr_expect_str_eq(d.rule, "default", "%s", row->name);
        cr_expect_str_eq(d.reason, row->reason, "%s", row->name);
        /* The guarantee: at high sensitivity the chain holds local members only. */
        if (d.sensitivity == SB_SENSITIVITY_HIGH)
            for (size_t j = 0; j < d.n_chain; j++)
                cr_expect(sb_route_is_local(f.r, d.chain[j]), "%s", row->name);
    }
    teardown_fx(&f);
}

Test(route_hybrid, long_and_high_denies_with_the_documented_reason)
{
    struct fixture f = setup_yaml(MODELS);
    struct sb_route_input in = input("gpt");
    in.label = SB_SENSITIVITY_HIGH;
    in.prompt_tokens = 999; /* + BOS + one generated token > 1000 */
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), SB_EDENIED);
    cr_expect(d.deny);
    cr_expect_str_eq(d.deny_reason,
                     "prompt exceeds the local context and the data may not leave the machine");
    in.prompt_tokens = 998;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "local");
    teardown_fx(&f);
}

Test(route_hybrid, configured_fallbacks_come_first)
{
    struct fixture f = setup_yaml("models:\n"
                                  "  - {name: gpt, backend: openai}\n"
                                  "  - {name: small, backend: local, path: s.gguf, context: 512}\n"
                                  "  - {name: big, backend: local, path: b.gguf, context: 4096}\n"
                                  "  - {name: claude, backend: anthropic, fallback: [big]}\n"
                                  "  - {name: main, backend: local, path: m.gguf, context: 2048,\n"
                                  "     fallback: [claude]}\n");
    struct sb_route_decision d;
    struct sb_route_input in = input("main");
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    /* main's own chain is main -> claude -> big: locals first, then its cloud. */
    cr_expect_str_eq(chain_of(&f, &d), "main,big,claude");
    /* Too long for main, fits big. */
    in.prompt_tokens = 3000;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "big,claude");
    /* A cloud alias without a local fallback gets the first local model that fits. */
    in = input("gpt");
    in.prompt_tokens = 1000;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "gpt,big");
    teardown_fx(&f);
}

Test(route_hybrid, embeddings_stay_with_embedding_models)
{
    struct fixture f = setup_yaml(MODELS);
    struct sb_route_input in = input("embed");
    in.kind = SB_REQ_EMBED;
    in.prompt_tokens = 100000; /* inputs are checked one by one by the backend */
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "embed");
    teardown_fx(&f);
}

Test(route_hybrid, cloud_only_and_local_only_configs)
{
    struct fixture f = setup_yaml("models:\n  - {name: gpt, backend: openai}\n");
    struct sb_route_input in = input("gpt");
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "gpt");
    in.label = SB_SENSITIVITY_MEDIUM;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect(d.pseudonymize);
    in.label = SB_SENSITIVITY_HIGH;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), SB_EDENIED);
    cr_expect_str_eq(d.deny_reason,
                     "no local model can serve this request and the data may not leave the "
                     "machine");
    teardown_fx(&f);

    f = setup_yaml("models:\n  - {name: l, backend: local, path: l.gguf, context: 100}\n");
    in = input("l");
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "l");
    cr_expect_not(d.pseudonymize);
    in.prompt_tokens = 500; /* nowhere fits: the configured chain gives the context error */
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "l");
    teardown_fx(&f);
}

Test(route_hybrid, default_none_uses_the_configured_chain)
{
    struct fixture f = setup_yaml(MODELS "  - {name: g2, backend: openai, fallback: [local]}\n"
                                         "policy: {default: none}\n");
    struct sb_route_input in = input("g2");
    in.label = SB_SENSITIVITY_HIGH;
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    cr_expect_str_eq(chain_of(&f, &d), "g2,local");
    cr_expect_str_eq(d.reason, "default none: no rule matched -> the configured chain of g2");
    teardown_fx(&f);
}

/* ---------------------------------------------------------------------------------------------
 * Routers over live backends: kind and context from info(), exact counts from the tokenizer
 * ------------------------------------------------------------------------------------------- */
struct fake {
    struct sb_backend base;
    const char *kind;
    int64_t n_ctx;
};

static void fake_info(const struct sb_backend *b, struct sb_backend_info *out)
{
    const struct fake *f = (const struct fake *)b;
    *out = (struct sb_backend_info){.name = "fake", .kind = f->kind, .n_ctx = f->n_ctx};
}

/* Renders a chat as its texts joined by spaces. */
static int fake_render(struct sb_backend *b, const struct sb_request *req, struct sb_buf *out)
{
    SB_UNUSED(b);
    for (size_t i = 0; i < req->n_messages; i++)
        for (size_t j = 0; j < req->messages[i].n_parts; j++) {
            sb_buf_append_str(out, req->messages[i].parts[j].text);
            sb_buf_append_char(out, ' ');
        }
    return 0;
}

/* One token a word. */
static int fake_count(struct sb_backend *b, struct sb_str text, int64_t *out)
{
    SB_UNUSED(b);
    int64_t n = 0;
    for (size_t i = 0; i < text.len; i++)
        n += text.p[i] == ' ';
    *out = n;
    return 0;
}

static const struct sb_backend_ops fake_local_ops = {
    .kind = "local", .info = fake_info, .count_tokens = fake_count, .render_prompt = fake_render};
static const struct sb_backend_ops fake_cloud_ops = {.kind = "openai", .info = fake_info};

Test(route_live, kind_context_and_exact_counts_come_from_the_backends)
{
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    const char *yaml = MODELS;
    cr_assert_eq(sb_config_parse("t.yaml", yaml, strlen(yaml), NULL, &cfg, &errors), 0);
    struct fake fl = {{&fake_local_ops}, "local", 8}, fg = {{&fake_cloud_ops}, "openai", 0};
    struct fake fc = {{&fake_cloud_ops}, "anthropic", 0}, fe = {{&fake_local_ops}, "local", 0};
    struct sb_backend *backends[] = {&fl.base, &fg.base, &fc.base, &fe.base};
    struct sb_router *r = NULL;
    char err[256];
    cr_assert_eq(sb_router_new(cfg, backends, 3, &r, err, sizeof err), SB_EINVAL);
    cr_assert_eq(sb_router_new(cfg, backends, 4, &r, err, sizeof err), 0, "%s", err);

    struct sb_part part = {.type = SB_PART_TEXT, .text = SB_STR_LIT("one two three four five")};
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = &part, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.model = SB_STR_LIT("gpt");
    req.messages = &msg;
    req.n_messages = 1;
    struct sb_route_input in;
    cr_assert_eq(sb_route_input_from_request(r, &req, SB_STR_NULL, NULL, 0, &in, NULL), 0);
    cr_expect(in.prompt_tokens_exact, "the cloud alias's local fallback counts");
    cr_expect_eq(in.prompt_tokens, 5);
    struct sb_route_decision d;
    cr_assert_eq(sb_route_decide(r, &in, &d), 0);
    /* Context 8 from info(), not 1000 from the config: 5 + 2 fit. */
    cr_expect_eq(d.n_chain, 2);
    fl.n_ctx = 6;
    cr_assert_eq(sb_route_decide(r, &in, &d), 0);
    cr_expect_eq(d.n_chain, 1, "the context is read at each decision");

    struct sb_chain_member members[SB_ROUTE_MAX_CHAIN];
    cr_expect_eq(sb_route_chain_members(r, &d, NULL, NULL, members), 1);
    cr_expect_eq(members[0].backend, &fg.base);
    cr_expect_str_eq(members[0].name, "gpt");
    cr_expect_eq(members[0].retry.max, 2);

    /* An unknown label is the caller's error. */
    const char *bad = NULL;
    cr_expect_eq(sb_route_input_from_request(r, &req, SB_STR_LIT("x"), NULL, 0, &in, &bad),
                 SB_EINVAL);
    /* A failed scan is carried into the input. */
    cr_assert_eq(sb_route_input_from_request(r, &req, SB_STR_NULL, NULL, SB_ENOMEM, &in, NULL), 0);
    cr_expect(in.scan_failed);
    sb_router_free(r);
    sb_config_free(cfg);
    sb_buf_free(&errors);
}

Test(route_live, chain_members_need_backends)
{
    struct fixture f = setup_yaml(MODELS);
    struct sb_route_decision d;
    struct sb_route_input in = input("local");
    cr_assert_eq(sb_route_decide(f.r, &in, &d), 0);
    struct sb_chain_member members[SB_ROUTE_MAX_CHAIN];
    cr_expect_eq(sb_route_chain_members(f.r, &d, NULL, NULL, members), SB_EINVAL);
    bool exact = true;
    struct sb_request req;
    sb_request_init(&req);
    req.model = SB_STR_LIT("local");
    req.prompt = SB_STR_LIT("123456789");
    cr_expect_eq(sb_route_count_prompt(f.r, &req, &exact), 3);
    cr_expect_not(exact, "no backends: the estimate");
    teardown_fx(&f);
}

Test(route_header, value_is_one_safe_line)
{
    struct sb_route_decision d = {.rule = "r1"};
    snprintf(d.reason, sizeof d.reason, "say \"hi\"\n\xc3\xa9");
    struct sb_buf out;
    sb_buf_init(&out, 4096);
    cr_assert_eq(sb_route_write_header(&d, SB_STR_LIT("local"), &out), 0);
    cr_expect_str_eq(out.p, "backend=local; rule=r1; reason=\"say \\\"hi\\\"???\"");
    sb_buf_reset(&out);
    cr_assert_eq(sb_route_write_header(&d, SB_STR_NULL, &out), 0);
    cr_expect_eq(strncmp(out.p, "backend=none; ", 14), 0);
    sb_buf_free(&out);
}
