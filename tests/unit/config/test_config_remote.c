/* Unit tests for the config keys of remote backends and resilience: every key into its field,
 * defaults, secrets kept out of the summary, backend kinds' needs, and fallback chains (names,
 * self-reference, repeats, cycles). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config_test.h"

Test(config_remote, every_key_reaches_its_field)
{
    struct sb_config *cfg = parse_ok("models:\n"
                                     "  - name: gpt\n"
                                     "    backend: openai\n"
                                     "    base_url: http://127.0.0.1:9/v1\n"
                                     "    api_key: sk-secret\n"
                                     "    upstream_model: gpt-4o-mini\n"
                                     "    timeouts: {connect_ms: 1, first_byte_ms: 2, idle_ms: 3,"
                                     " total_ms: 4}\n"
                                     "    fallback: [br, local]\n"
                                     "    retries: {max: 3, base_ms: 10, max_ms: 20}\n"
                                     "    breaker: {failures: 7, open_ms: 99, probes: 2}\n"
                                     "  - name: br\n"
                                     "    backend: bedrock\n"
                                     "    region: eu-west-1\n"
                                     "    aws_access_key_id: AKID\n"
                                     "    aws_secret_access_key: SECRET\n"
                                     "    aws_session_token: TOKEN\n"
                                     "  - name: local\n"
                                     "    backend: local\n"
                                     "    path: a.gguf\n");
    const struct sb_model_config *m = &cfg->models[0];
    cr_assert_str_eq(m->backend, "openai");
    cr_assert_str_eq(m->base_url, "http://127.0.0.1:9/v1");
    cr_assert_str_eq(m->api_key, "sk-secret");
    cr_assert_str_eq(m->upstream_model, "gpt-4o-mini");
    cr_assert_eq(m->timeouts.connect_ms, 1);
    cr_assert_eq(m->timeouts.first_byte_ms, 2);
    cr_assert_eq(m->timeouts.idle_ms, 3);
    cr_assert_eq(m->timeouts.total_ms, 4);
    cr_assert_eq(m->n_fallback, 2);
    cr_assert_str_eq(m->fallback[0], "br");
    cr_assert_str_eq(m->fallback[1], "local");
    cr_assert_eq(m->retries.max, 3);
    cr_assert_eq(m->retries.base_ms, 10);
    cr_assert_eq(m->retries.max_ms, 20);
    cr_assert_eq(m->breaker.failures, 7);
    cr_assert_eq(m->breaker.open_ms, 99);
    cr_assert_eq(m->breaker.probes, 2);
    const struct sb_model_config *b = &cfg->models[1];
    cr_assert_str_eq(b->region, "eu-west-1");
    cr_assert_str_eq(b->aws_access_key_id, "AKID");
    cr_assert_str_eq(b->aws_secret_access_key, "SECRET");
    cr_assert_str_eq(b->aws_session_token, "TOKEN");
    sb_config_free(cfg);
}

Test(config_remote, defaults)
{
    struct sb_config *cfg = parse_ok("models:\n  - name: o\n    backend: ollama\n");
    const struct sb_model_config *m = &cfg->models[0];
    cr_assert_null(m->base_url);
    cr_assert_null(m->api_key);
    cr_assert_null(m->upstream_model);
    cr_assert_null(m->path);
    cr_assert_eq(m->timeouts.connect_ms, 5000);
    cr_assert_eq(m->timeouts.first_byte_ms, 60000);
    cr_assert_eq(m->timeouts.idle_ms, 120000);
    cr_assert_eq(m->timeouts.total_ms, 600000);
    cr_assert_eq(m->n_fallback, 0);
    cr_assert_eq(m->retries.max, 2);
    cr_assert_eq(m->retries.base_ms, 250);
    cr_assert_eq(m->retries.max_ms, 8000);
    cr_assert_eq(m->breaker.failures, 5);
    cr_assert_eq(m->breaker.open_ms, 30000);
    cr_assert_eq(m->breaker.probes, 1);
    sb_config_free(cfg);
}

Test(config_remote, part_of_a_section_keeps_the_other_defaults)
{
    struct sb_config *cfg =
        parse_ok("models:\n  - name: o\n    backend: openai\n    timeouts:\n      idle_ms: 0\n");
    cr_assert_eq(cfg->models[0].timeouts.idle_ms, 0);
    cr_assert_eq(cfg->models[0].timeouts.connect_ms, 5000);
    sb_config_free(cfg);
}

Test(config_remote, secrets_stay_out_of_the_summary)
{
    setenv("SB_TEST_KEY", "sk-from-env-123", 1);
    struct sb_config *cfg = parse_ok("models:\n"
                                     "  - name: gpt\n"
                                     "    backend: openai\n"
                                     "    api_key: ${SB_TEST_KEY}\n"
                                     "  - name: br\n"
                                     "    backend: bedrock\n"
                                     "    region: us-east-1\n"
                                     "    aws_secret_access_key: wJalrXUtnFEMI\n");
    cr_assert_str_eq(cfg->models[0].api_key, "sk-from-env-123");
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    sb_config_print_summary(cfg, &out);
    cr_assert_null(strstr(out.p, "sk-from-env"), "%s", out.p);
    cr_assert_null(strstr(out.p, "wJalr"), "%s", out.p);
    cr_assert_not_null(strstr(out.p, "api_key: (set, not shown)"), "%s", out.p);
    sb_buf_free(&out);
    sb_config_free(cfg);
    unsetenv("SB_TEST_KEY");
}

Test(config_remote, kinds_and_their_needs)
{
    sb_config_free(parse_ok("models:\n  - name: a\n    backend: anthropic\n"));
    sb_config_free(parse_ok("models:\n  - name: a\n    backend: openai\n"));
    expect_errors("models:\n  - name: b\n    backend: bedrock\n",
                  "t.yaml:2:5: models[0]: missing key \"region\", which backend \"bedrock\" "
                  "needs (bedrock: the AWS region, e.g. us-east-1)\n");
    expect_errors("models:\n  - name: a\n    backend: olama\n",
                  "t.yaml:3:14: models[0].backend: unknown backend \"olama\"; did you mean "
                  "\"ollama\"?\n");
}

Test(config_remote, values_are_checked)
{
    expect_errors("models:\n  - name: a\n    backend: openai\n    base_url: api.openai.com\n",
                  "t.yaml:4:15: models[0].base_url: expected an http:// or https:// URL, got "
                  "\"api.openai.com\"\n");
    expect_errors("models:\n  - name: a\n    backend: openai\n    timeouts: {connect_ms: -1}\n",
                  "t.yaml:4:28: models[0].timeouts.connect_ms: expected an integer from 0 to "
                  "86400000, got \"-1\"\n");
    expect_errors("models:\n  - name: a\n    backend: openai\n    retries: {max: 11}\n",
                  "t.yaml:4:20: models[0].retries.max: expected an integer from 0 to 10, got "
                  "\"11\"\n");
    expect_errors("models:\n  - name: a\n    backend: openai\n"
                  "    retries: {base_ms: 500, max_ms: 100}\n",
                  "t.yaml:4:14: models[0].retries: max_ms (100) is less than base_ms (500); "
                  "expected max_ms >= base_ms\n");
    expect_errors("models:\n  - name: a\n    backend: openai\n    breaker: {probes: 0}\n",
                  "t.yaml:4:23: models[0].breaker.probes: expected an integer from 1 to 100, got "
                  "\"0\"\n");
    expect_errors("models:\n  - name: a\n    backend: openai\n    timeouts: {conect_ms: 1}\n",
                  "t.yaml:4:16: models[0].timeouts.conect_ms: unknown key; did you mean "
                  "\"connect_ms\"?\n");
}

#define TWO_MODELS(fa, fb)                                                                         \
    "models:\n  - name: alpha\n    backend: openai\n    fallback: " fa "\n"                        \
    "  - name: beta\n    backend: openai\n    fallback: " fb "\n"

Test(config_fallback, a_chain_that_ends_is_fine)
{
    struct sb_config *cfg = parse_ok(TWO_MODELS("[beta]", "[]"));
    cr_assert_eq(cfg->models[0].n_fallback, 1);
    sb_config_free(cfg);
}

Test(config_fallback, unknown_names_with_a_suggestion)
{
    expect_errors(TWO_MODELS("[betta, gamma]", "[]"),
                  "t.yaml:4:16: models[0].fallback[0]: unknown model \"betta\"; expected the name "
                  "of another model in this file; did you mean \"beta\"?\n"
                  "t.yaml:4:23: models[0].fallback[1]: unknown model \"gamma\"; expected the name "
                  "of another model in this file\n");
}

Test(config_fallback, itself_and_repeats)
{
    expect_errors(TWO_MODELS("[alpha]", "[]"),
                  "t.yaml:4:16: models[0].fallback[0]: a model cannot fall back to itself; "
                  "expected another model\n");
    expect_errors(TWO_MODELS("[beta, beta]", "[]"),
                  "t.yaml:4:22: models[0].fallback[1]: the model is listed twice; expected each "
                  "model once\n");
}

Test(config_fallback, cycles_are_reported_once_with_their_path)
{
    expect_errors(TWO_MODELS("[beta]", "[alpha]"),
                  "t.yaml:7:16: models[1].fallback[0]: a fallback cycle: alpha -> beta -> alpha; "
                  "expected every chain to end\n");
    expect_errors("models:\n"
                  "  - {name: a, backend: openai, fallback: [b]}\n"
                  "  - {name: b, backend: openai, fallback: [c]}\n"
                  "  - {name: c, backend: openai, fallback: [x, a]}\n",
                  "t.yaml:4:43: models[2].fallback[0]: unknown model \"x\"; expected the name of "
                  "another model in this file\n"
                  "t.yaml:4:46: models[2].fallback[1]: a fallback cycle: a -> b -> c -> a; "
                  "expected every chain to end\n");
}

Test(config_fallback, shared_tails_are_not_cycles)
{
    struct sb_config *cfg = parse_ok("models:\n"
                                     "  - {name: a, backend: openai, fallback: [b, c]}\n"
                                     "  - {name: b, backend: openai, fallback: [c]}\n"
                                     "  - {name: c, backend: openai}\n");
    sb_config_free(cfg);
}
