/* Tests for `switchboard route explain` through its function: a sample body's decision in text
 * and JSON, and the refusals (malformed body, unknown model, unknown sensitivity). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "route/route.h"

static const char config_text[] = "models:\n"
                                  "  - name: local\n"
                                  "    backend: local\n"
                                  "    path: x.gguf\n"
                                  "    context: 4096\n"
                                  "  - name: gpt\n"
                                  "    backend: openai\n"
                                  "policy:\n"
                                  "  rules:\n"
                                  "    - id: keys-stay\n"
                                  "      when: {pii: [aws_key, api_key]}\n"
                                  "      action: {route: [local]}\n";

static const char body_email[] = "{\"model\":\"local\",\"max_tokens\":64,\"messages\":["
                                 "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                                 "{\"role\":\"user\",\"content\":\"Write to john.doe@example.com "
                                 "about the invoice.\"}]}";

static struct sb_config *cfg;

static void setup(void)
{
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    cr_assert_eq(sb_config_parse("t.yaml", config_text, strlen(config_text), NULL, &cfg, &errors),
                 0, "%s", errors.p);
    sb_buf_free(&errors);
}

static void teardown(void)
{
    sb_config_free(cfg);
}

/* Runs explain; returns its output (the caller frees it) or NULL with err filled. */
static char *explain(const char *body, const char *sensitivity, enum sb_route_explain_format fmt,
                     int want_rc, char *err, size_t err_size)
{
    struct sb_route_explain_params p = {.cfg = cfg,
                                        .body = sb_str_c(body),
                                        .kind = SB_REQ_CHAT,
                                        .sensitivity = sb_str_c(sensitivity),
                                        .format = fmt};
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    int rc = sb_route_explain(&p, &out, err, err_size);
    cr_assert_eq(rc, want_rc, "%s", err);
    if (rc != 0) {
        sb_buf_free(&out);
        return NULL;
    }
    return sb_buf_steal(&out);
}

TestSuite(route_explain, .init = setup, .fini = teardown);

Test(route_explain, text_shows_the_decision_and_why)
{
    char err[512];
    char *out = explain(body_email, NULL, SB_ROUTE_EXPLAIN_TEXT, 0, err, sizeof err);
    const char *want =
        "request:      model local, chat, 2 messages, no tools, max_tokens 64\n"
        "prompt:       ~15 tokens (estimated: text bytes / 4, rounded up; explain loads no "
        "tokenizer)\n"
        "pii found:    email x1\n"
        "sensitivity:  medium (label unset, detected medium)\n"
        "decision:     serve\n"
        "rule:         default\n"
        "reason:       default hybrid: sensitivity medium (detected: email) -> local first, cloud "
        "fallback pseudonymized\n"
        "chain:\n"
        "  1. local (backend local, on this machine, context 4096)\n"
        "  2. gpt (backend openai, cloud, pseudonymized)\n"
        "pseudonymize: yes: detected values are replaced before a cloud backend receives the "
        "request\n"
        "nothing was sent: no model was loaded and no connection was opened\n";
    cr_expect_str_eq(out, want);
    free(out);
}

Test(route_explain, a_rule_and_a_denial)
{
    char err[512];
    const char *body = "{\"model\":\"gpt\",\"messages\":[{\"role\":\"user\",\"content\":"
                       "\"use AKIAIOSFODNN7EXAMPLE\"}]}";
    char *out = explain(body, NULL, SB_ROUTE_EXPLAIN_TEXT, 0, err, sizeof err);
    cr_expect_not_null(strstr(out, "rule:         keys-stay\n"), "%s", out);
    cr_expect_not_null(strstr(out, "reason:       rule keys-stay: pii aws_key -> local\n"), "%s",
                       out);
    free(out);

    /* High by label, and far too long for 4096 tokens: denied, and explained. */
    size_t n = 40000;
    char *big = malloc(n + 128);
    int len = snprintf(big, 128,
                       "{\"model\":\"local\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"");
    memset(big + len, 'a', n);
    memcpy(big + len + n, "\"}]}", 5);
    out = explain(big, "high", SB_ROUTE_EXPLAIN_TEXT, 0, err, sizeof err);
    cr_expect_not_null(strstr(out, "decision:     deny (403)\n"), "%s", out);
    cr_expect_not_null(strstr(out, "denied:       prompt exceeds the local context and the data "
                                   "may not leave the machine\n"),
                       "%s", out);
    cr_expect_null(strstr(out, "chain:"), "%s", out);
    free(out);
    free(big);
}

Test(route_explain, json)
{
    char err[512];
    char *out = explain(body_email, "high", SB_ROUTE_EXPLAIN_JSON, 0, err, sizeof err);
    const char *want =
        "{\"model\":\"local\",\"kind\":\"chat\",\"prompt_tokens\":15,\"prompt_tokens_exact\":false,"
        "\"pii\":{\"email\":1},\"sensitivity\":{\"effective\":\"high\",\"label\":\"high\","
        "\"detected\":\"medium\"},\"decision\":\"serve\",\"rule\":\"default\",\"reason\":"
        "\"default hybrid: sensitivity high (label) -> local only\",\"deny_reason\":null,"
        "\"pseudonymize\":false,\"chain\":[{\"model\":\"local\",\"backend\":\"local\",\"local\":"
        "true,\"context\":4096,\"pseudonymized\":false}],\"sent\":false}\n";
    cr_expect_str_eq(out, want);
    free(out);
}

Test(route_explain, refusals)
{
    char err[512];
    cr_expect_null(explain("{\"model\":", NULL, SB_ROUTE_EXPLAIN_TEXT, SB_EINVAL, err, sizeof err));
    cr_expect_eq(strncmp(err, "the request body: ", 18), 0, "%s", err);
    cr_expect_null(
        explain(body_email, "secret", SB_ROUTE_EXPLAIN_TEXT, SB_EINVAL, err, sizeof err));
    cr_expect_str_eq(err, "header x-switchboard-sensitivity: unknown sensitivity; expected low, "
                          "medium or high (the server answers 400)");
    const char *other =
        "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    cr_expect_null(explain(other, NULL, SB_ROUTE_EXPLAIN_TEXT, SB_ENOTFOUND, err, sizeof err));
    cr_expect_str_eq(err, "no model is named \"llama\"; expected one of the models of t.yaml "
                          "(switchboard config check)");
}
