/* Unit tests for config parsing: every key into its field, defaults, and one exact message per
 * class of error. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"
#include "config/internal.h"
#include "config_test.h"

/* A model entry with every required key, for tests about other keys. */
#define MODEL_A "models:\n  - name: a\n    backend: local\n    path: a.gguf\n"

/* ---------------------------------------------------------------------------------------------
 * The embedded default
 * ------------------------------------------------------------------------------------------- */
Test(config_default, parses_and_has_local_model)
{
    unsetenv("SWITCHBOARD_PORT");
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_load_default(&cfg, &err), 0, "%s", err.p ? err.p : "");
    cr_assert_str_eq(cfg->source, "<default>");
    const struct sb_model_config *m = sb_config_find_model(cfg, SB_STR_LIT("local"));
    cr_assert_not_null(m);
    cr_assert_str_eq(m->backend, "local");
    cr_assert_str_eq(m->path, "stories260K-chatml.gguf");
    cr_assert_eq(m->n_ctx, 2048);
    cr_assert_eq(m->n_parallel, 4);
    cr_assert_eq(cfg->listen.port, 8080);
    cr_assert_str_eq(cfg->listen.host, "127.0.0.1");
    cr_assert_eq(cfg->n_model_dirs, 2);
    /* Relative to the current folder: left as written. */
    cr_assert_str_eq(cfg->model_dirs[0], "models");
    cr_assert_null(sb_config_find_model(cfg, SB_STR_LIT("nope")));
    sb_config_free(cfg);
    sb_buf_free(&err);
}

Test(config_default, port_comes_from_environment)
{
    setenv("SWITCHBOARD_PORT", "18181", 1);
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_load_default(&cfg, &err), 0, "%s", err.p ? err.p : "");
    cr_assert_eq(cfg->listen.port, 18181);
    sb_config_free(cfg);
    sb_buf_free(&err);
}

Test(config_default, text_is_the_file)
{
    const char *text = sb_config_default_text();
    cr_assert_not_null(strstr(text, "name: local"));
}

/* ---------------------------------------------------------------------------------------------
 * Keys into fields
 * ------------------------------------------------------------------------------------------- */
Test(config_parse, every_key_reaches_its_field)
{
    const char *text = "listen:\n"
                       "  host: 0.0.0.0\n"
                       "  port: 9090\n"
                       "  max_body_bytes: 1024\n"
                       "  io_threads: 3\n"
                       "log_level: debug\n"
                       "model_dirs:\n"
                       "  - /opt/models\n"
                       "  - rel\n"
                       "models:\n"
                       "  - name: a\n"
                       "    backend: local\n"
                       "    path: a.gguf\n"
                       "    context: 4096\n"
                       "    threads: 6\n"
                       "    parallel: 8\n"
                       "    batch: 256\n"
                       "    gpu_layers: -1\n"
                       "    chat_template: \"{{ messages }}\"\n"
                       "    embeddings: true\n"
                       "  - {name: b, backend: local, path: /abs/b.gguf, embeddings: no}\n";
    struct sb_config *cfg = parse_ok_in(text, "/etc/sb");
    cr_assert_str_eq(cfg->source, "t.yaml");
    cr_assert_str_eq(cfg->listen.host, "0.0.0.0");
    cr_assert_eq(cfg->listen.port, 9090);
    cr_assert_eq(cfg->listen.max_body_bytes, 1024);
    cr_assert_eq(cfg->listen.io_threads, 3);
    cr_assert_str_eq(cfg->log_level, "debug");
    cr_assert_eq(cfg->n_model_dirs, 2);
    cr_assert_str_eq(cfg->model_dirs[0], "/opt/models");
    cr_assert_str_eq(cfg->model_dirs[1], "/etc/sb/rel"); /* relative to the file's folder */
    cr_assert_eq(cfg->n_models, 2);
    const struct sb_model_config *a = &cfg->models[0];
    cr_assert_str_eq(a->name, "a");
    cr_assert_str_eq(a->backend, "local");
    cr_assert_str_eq(a->path, "a.gguf"); /* resolved later, along the search path */
    cr_assert_eq(a->n_ctx, 4096);
    cr_assert_eq(a->n_threads, 6);
    cr_assert_eq(a->n_parallel, 8);
    cr_assert_eq(a->n_batch, 256);
    cr_assert_eq(a->gpu_layers, -1);
    cr_assert_str_eq(a->chat_template, "{{ messages }}");
    cr_assert(a->embeddings);
    cr_assert_eq(a->line, 11);
    cr_assert_eq(a->column, 5);
    const struct sb_model_config *b = sb_config_find_model(cfg, SB_STR_LIT("b"));
    cr_assert_eq(b, &cfg->models[1]);
    cr_assert_str_eq(b->path, "/abs/b.gguf");
    cr_assert_not(b->embeddings);
    cr_assert_eq(b->line, 21);
    sb_config_free(cfg);
}

Test(config_parse, defaults_fill_what_is_absent)
{
    struct sb_config *cfg = parse_ok(MODEL_A);
    cr_assert_str_eq(cfg->listen.host, "127.0.0.1");
    cr_assert_eq(cfg->listen.port, 8080);
    cr_assert_eq(cfg->listen.max_body_bytes, 8388608);
    cr_assert_eq(cfg->listen.io_threads, 1);
    cr_assert_str_eq(cfg->log_level, "info");
    cr_assert_eq(cfg->n_model_dirs, 0);
    cr_assert_null(cfg->model_dirs);
    const struct sb_model_config *m = &cfg->models[0];
    cr_assert_eq(m->n_ctx, 0);
    cr_assert_eq(m->n_threads, 0);
    cr_assert_eq(m->n_parallel, 4);
    cr_assert_eq(m->n_batch, 512);
    cr_assert_eq(m->gpu_layers, 0);
    cr_assert_null(m->chat_template);
    cr_assert_not(m->embeddings);
    sb_config_free(cfg);
}

Test(config_parse, empty_document_is_all_defaults)
{
    struct sb_config *cfg = parse_ok("# nothing but a comment\n");
    cr_assert_eq(cfg->n_models, 0);
    cr_assert_eq(cfg->listen.port, 8080);
    sb_config_free(cfg);
    cfg = parse_ok("listen:\nmodels:\nmodel_dirs:\n");
    cr_assert_eq(cfg->n_models, 0);
    cr_assert_str_eq(cfg->listen.host, "127.0.0.1");
    sb_config_free(cfg);
}

Test(config_parse, spellings_of_values)
{
    struct sb_config *cfg =
        parse_ok("log_level: WARN\n"
                 "listen: {port: +0, max_body_bytes: 1073741824}\n" MODEL_A "    embeddings: On\n");
    cr_assert_str_eq(cfg->log_level, "warn"); /* stored as the canonical name */
    cr_assert_eq(cfg->listen.port, 0);
    cr_assert_eq(cfg->listen.max_body_bytes, (size_t)1 << 30);
    cr_assert(cfg->models[0].embeddings);
    sb_config_free(cfg);
}

Test(config_parse, anchors_and_aliases_work)
{
    struct sb_config *cfg = parse_ok("models:\n"
                                     "  - {name: a, backend: local, path: &p a.gguf}\n"
                                     "  - {name: b, backend: local, path: *p}\n");
    cr_assert_str_eq(cfg->models[1].path, "a.gguf");
    sb_config_free(cfg);
    /* A list that contains itself is a type error, not endless recursion. */
    char *got = parse_err("model_dirs: &a [*a]\n");
    cr_assert_not_null(strstr(got, "model_dirs[0]: expected a path, got a list"), "%s", got);
    free(got);
}

/* ---------------------------------------------------------------------------------------------
 * Errors: one exact line per class
 * ------------------------------------------------------------------------------------------- */
Test(config_errors, wrong_type)
{
    expect_errors(MODEL_A "    parallel: many\n",
                  "t.yaml:5:15: models[0].parallel: expected an integer from 1 to 256, got "
                  "\"many\"\n");
    expect_errors(MODEL_A "    embeddings: maybe\n",
                  "t.yaml:5:17: models[0].embeddings: expected true or false, got \"maybe\"\n");
    expect_errors("listen: 5\n", "t.yaml:1:9: listen: expected a mapping with keys host, port, "
                                 "max_body_bytes, io_threads, got \"5\"\n");
    expect_errors("model_dirs: models\n",
                  "t.yaml:1:13: model_dirs: expected a list of folders, got \"models\"\n");
    expect_errors("model_dirs: [[a]]\n",
                  "t.yaml:1:14: model_dirs[0]: expected a path, got a list\n");
    expect_errors("models: [5]\n", "t.yaml:1:10: models[0]: expected a list of mappings with keys "
                                   "name, backend, path, sha256, context, threads, parallel, "
                                   "batch, gpu_layers, chat_template, embeddings, load, "
                                   "keep_alive, "
                                   "queue, base_url, ca_file, api_key, "
                                   "upstream_model, region, aws_access_key_id, "
                                   "aws_secret_access_key, aws_session_token, timeouts, "
                                   "fallback, retries, breaker, got \"5\"\n");
    expect_errors("listen:\n  port:\n",
                  "t.yaml:2:8: listen.port: expected an integer from 0 to 65535, got an empty "
                  "value\n");
    expect_errors("listen:\n  port: 0x50\n",
                  "t.yaml:2:9: listen.port: expected an integer from 0 to 65535, got \"0x50\"\n");
    expect_errors("listen:\n  host: \"a\\0b\"\n",
                  "t.yaml:2:9: listen.host: expected a string, got \"a\\u0000b\"\n");
    expect_errors("- a\n", "t.yaml:1:1: expected a mapping with keys listen, log_level, "
                           "model_dirs, models, ledger, local, ui, pricing, infra, privacy, "
                           "policy, alerts, auth, budgets, got a list\n");
}

Test(config_errors, out_of_range)
{
    expect_errors("listen:\n  port: 70000\n",
                  "t.yaml:2:9: listen.port: expected an integer from 0 to 65535, got \"70000\"\n");
    expect_errors("listen:\n  max_body_bytes: 0\n",
                  "t.yaml:2:19: listen.max_body_bytes: expected an integer from 1 to 1073741824, "
                  "got \"0\"\n");
    expect_errors(MODEL_A "    gpu_layers: -2\n",
                  "t.yaml:5:17: models[0].gpu_layers: expected an integer of at least -1, got "
                  "\"-2\"\n");
    expect_errors(MODEL_A "    context: 99999999999999999999999\n",
                  "t.yaml:5:14: models[0].context: expected an integer of at least 0, got "
                  "\"99999999999999999999999\"\n");
}

Test(config_errors, unknown_key_with_and_without_suggestion)
{
    expect_errors("listen:\n  prot: 80\n",
                  "t.yaml:2:3: listen.prot: unknown key; did you mean \"port\"?\n");
    expect_errors(MODEL_A "    paralel: 2\n",
                  "t.yaml:5:5: models[0].paralel: unknown key; did you mean \"parallel\"?\n");
    expect_errors("colour: red\n", "t.yaml:1:1: colour: unknown key; expected one of listen, "
                                   "log_level, model_dirs, models, ledger, local, ui, pricing, "
                                   "infra, privacy, policy, alerts, auth, budgets\n");
    expect_errors("log_level: inf\n", "t.yaml:1:12: log_level: expected one of debug, info, warn, "
                                      "error, got \"inf\"; did you mean \"info\"?\n");
}

Test(config_errors, missing_required)
{
    expect_errors("models:\n  - backend: local\n    path: a.gguf\n",
                  "t.yaml:2:5: models[0]: missing required key \"name\" (the alias clients ask "
                  "for in \"model\")\n");
    expect_errors("models:\n  - name: a\n    backend: local\n",
                  "t.yaml:2:5: models[0]: missing key \"path\", which backend \"local\" needs (the "
                  "GGUF file, looked up along the model search path when relative)\n");
    expect_errors("models:\n  - name: a\n    backend: lcoal\n    path: a.gguf\n",
                  "t.yaml:3:14: models[0].backend: unknown backend \"lcoal\"; did you mean "
                  "\"local\"?\n");
    expect_errors("models:\n  - name: a\n    backend: nonesuch\n    path: a.gguf\n",
                  "t.yaml:3:14: models[0].backend: unknown backend \"nonesuch\"; expected one of "
                  "local, openai, anthropic, bedrock, ollama\n");
}

Test(config_errors, duplicate_model_name_names_both_lines)
{
    expect_errors(MODEL_A "  - name: a\n    backend: local\n    path: b.gguf\n",
                  "t.yaml:5:11: models[1].name: \"a\" is already the name of models[0] at "
                  "t.yaml:2:11; expected each name once\n");
}

Test(config_errors, duplicate_key)
{
    expect_errors("log_level: info\nlog_level: warn\n",
                  "t.yaml:2:1: log_level: the key appears twice (first at 1:1); expected it "
                  "once\n");
}

Test(config_errors, bad_yaml_reports_libyaml_problem_and_mark)
{
    expect_errors("listen: [1, 2\n",
                  "t.yaml:2:1: invalid YAML: did not find expected ',' or ']' (while parsing a "
                  "flow sequence at 1:9)\n");
    expect_errors("listen:\n  host: a\n bad\n",
                  "t.yaml:3:2: invalid YAML: did not find expected key (while parsing a block "
                  "mapping at 1:1)\n");
    expect_errors("models: *nothing\n", "t.yaml:1:9: invalid YAML: found undefined alias\n");
    expect_errors("log_level: \xff\n", "t.yaml:1:12: invalid YAML: invalid leading UTF-8 octet; "
                                       "expected UTF-8 text\n");
    expect_errors("log_level: info\n---\nlog_level: warn\n",
                  "t.yaml:2:1: a second YAML document; expected one per file\n");
}

Test(config_errors, unset_environment_variable)
{
    unsetenv("SB_TEST_UNSET_VAR");
    expect_errors("listen:\n  port: ${SB_TEST_UNSET_VAR}\n",
                  "t.yaml:2:9: listen.port: environment variable SB_TEST_UNSET_VAR is not set; "
                  "set it, or give a default with ${SB_TEST_UNSET_VAR:-VALUE}\n");
    expect_errors(
        "listen:\n  host: x${SB_TEST\n",
        "t.yaml:2:9: listen.host: malformed variable reference \"${SB_TEST\"; expected "
        "${NAME} or ${NAME:-default} (NAME: letters, digits, _), or $$ for a literal $\n");
}

Test(config_errors, all_problems_are_collected)
{
    expect_errors("listen:\n"
                  "  port: http\n"
                  "  hots: x\n"
                  "models:\n"
                  "  - name: a\n"
                  "    backend: local\n"
                  "    batch: 0\n",
                  "t.yaml:2:9: listen.port: expected an integer from 0 to 65535, got \"http\"\n"
                  "t.yaml:3:3: listen.hots: unknown key; did you mean \"host\"?\n"
                  "t.yaml:7:12: models[0].batch: expected an integer of at least 1, got \"0\"\n"
                  "t.yaml:5:5: models[0]: missing key \"path\", which backend \"local\" needs (the "
                  "GGUF file, looked up along the model search path when relative)\n");
}

Test(config_errors, long_lists_of_problems_are_cut)
{
    struct sb_buf text;
    sb_buf_init(&text, 1 << 20);
    sb_buf_append_c(&text, "models:\n");
    for (int i = 0; i < 60; i++)
        sb_buf_printf(&text, "  - {name: m%d, backend: local, path: x, batch: 0}\n", i);
    char *got = parse_err(text.p);
    size_t lines = 0;
    for (const char *p = got; *p != '\0'; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 51, "%s", got);
    cr_assert_not_null(strstr(got, "t.yaml: 10 more problems not shown\n"));
    free(got);
    sb_buf_free(&text);
}

Test(config_errors, quoted_values_are_escaped_and_cut)
{
    char *got = parse_err("listen:\n  port: \"0123456789012345678901234567890123456789"
                          "0123456789012345678901234567890123456789\\n\"\n");
    cr_assert_not_null(strstr(got, "got \"012345678901234567890123456789012345678901234567890123456"
                                   "789...\"\n"),
                       "%s", got);
    free(got);
}

/* ---------------------------------------------------------------------------------------------
 * ${ENV} in values
 * ------------------------------------------------------------------------------------------- */
Test(config_env, values_expand_before_conversion)
{
    setenv("SB_TEST_PORT", "7000", 1);
    setenv("SB_TEST_HOST", "10.0.0.1", 1);
    unsetenv("SB_TEST_UNSET_VAR");
    struct sb_config *cfg = parse_ok("listen:\n"
                                     "  host: ${SB_TEST_HOST}\n"
                                     "  port: ${SB_TEST_PORT:-9000}\n"
                                     "  io_threads: ${SB_TEST_UNSET_VAR:-2}\n" MODEL_A
                                     "    chat_template: \"$${not} $$ $5\"\n");
    cr_assert_str_eq(cfg->listen.host, "10.0.0.1");
    cr_assert_eq(cfg->listen.port, 7000);
    cr_assert_eq(cfg->listen.io_threads, 2);
    cr_assert_str_eq(cfg->models[0].chat_template, "${not} $ $5");
    sb_config_free(cfg);
}

Test(config_env, expanded_value_is_what_is_checked)
{
    setenv("SB_TEST_PORT", "many", 1);
    expect_errors("listen:\n  port: ${SB_TEST_PORT}\n",
                  "t.yaml:2:9: listen.port: expected an integer from 0 to 65535, got \"many\"\n");
}

/* ---------------------------------------------------------------------------------------------
 * Summary, tables, docs
 * ------------------------------------------------------------------------------------------- */
Test(config_summary, prints_what_was_understood)
{
    struct sb_config *cfg = parse_ok("model_dirs: [/m, \"with space\"]\n" MODEL_A
                                     "    chat_template: \"{% for m in messages %}{{ m.content }}"
                                     "{% endfor %}{{ 'and then some more text' }}\"\n");
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    sb_config_print_summary(cfg, &out);
    const char *want = "listen:\n"
                       "  host: 127.0.0.1\n"
                       "  port: 8080\n"
                       "  max_body_bytes: 8388608\n"
                       "  io_threads: 1\n"
                       "log_level: info\n"
                       "model_dirs:\n"
                       "  - /m\n"
                       "  - \"with space\"\n"
                       "models:\n"
                       "  - name: a\n"
                       "    backend: local\n"
                       "    path: a.gguf\n"
                       "    sha256: (not set)\n"
                       "    context: 0\n"
                       "    threads: 0\n"
                       "    parallel: 4\n"
                       "    batch: 512\n"
                       "    gpu_layers: 0\n"
                       "    chat_template: \"{% for m in messages %}{{ m.content }}{% endfor %}{{ "
                       "'and th\"... (81 bytes)\n"
                       "    embeddings: false\n"
                       "    load: startup\n"
                       "    keep_alive: -1\n"
                       "    queue: 128\n"
                       "    base_url: (not set)\n"
                       "    ca_file: (not set)\n"
                       "    api_key: (not set)\n"
                       "    upstream_model: (not set)\n"
                       "    region: (not set)\n"
                       "    aws_access_key_id: (not set)\n"
                       "    aws_secret_access_key: (not set)\n"
                       "    aws_session_token: (not set)\n"
                       "    timeouts:\n"
                       "      connect_ms: 5000\n"
                       "      first_byte_ms: 60000\n"
                       "      idle_ms: 120000\n"
                       "      total_ms: 600000\n"
                       "    fallback: []\n"
                       "    retries:\n"
                       "      max: 2\n"
                       "      base_ms: 250\n"
                       "      max_ms: 8000\n"
                       "    breaker:\n"
                       "      failures: 5\n"
                       "      open_ms: 30000\n"
                       "      probes: 1\n"
                       "ledger:\n"
                       "  path: switchboard.db\n"
                       "  commit_interval_ms: 50\n"
                       "  queue_size: 2048\n"
                       "  retention_days: 0\n"
                       "  content_logging: false\n"
                       "local:\n"
                       "  max_loaded: 0\n"
                       "ui:\n"
                       "  enabled: true\n"
                       "  recent: 50\n"
                       "pricing: []\n"
                       "infra:\n"
                       "  hardware_usd: (not set)\n"
                       "  depreciation_years: 3\n"
                       "  power_watts: (not set)\n"
                       "  electricity_usd_per_kwh: (not set)\n"
                       "  utilization: 0.5\n"
                       "  engineer_hours_per_month: (not set)\n"
                       "  engineer_usd_per_hour: (not set)\n"
                       "  maintenance_usd_per_month: (not set)\n"
                       "  tokens_per_s: (not set)\n"
                       "privacy:\n"
                       "  custom_terms: []\n"
                       "  custom_patterns: []\n"
                       "  detectors: []\n"
                       "policy:\n"
                       "  rules: []\n"
                       "  default: hybrid\n"
                       "alerts:\n"
                       "  webhook_url: (not set)\n"
                       "  webhook_timeout_ms: 5000\n"
                       "  webhook_retries: 2\n"
                       "  instance: (not set)\n"
                       "  queue_size: 64\n"
                       "  spend_spike:\n"
                       "    enabled: true\n"
                       "    window_s: 300\n"
                       "    baseline_s: 86400\n"
                       "    factor: 3\n"
                       "    min_usd: 1.00\n"
                       "auth:\n"
                       "  keys: off\n"
                       "  store: \"\"\n"
                       "budgets:\n"
                       "  global:\n"
                       "    usd: (not set)\n"
                       "    period: month\n"
                       "  teams: []\n"
                       "  on_limit: deny\n"
                       "  default_max_tokens: 4096\n";
    cr_assert_str_eq(out.p, want);
    sb_buf_free(&out);
    sb_config_free(cfg);
}

Test(config_summary, empty_lists_and_unset_strings)
{
    struct sb_config *cfg = parse_ok("log_level: error\n");
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    sb_config_print_summary(cfg, &out);
    cr_assert_not_null(strstr(out.p, "model_dirs: []\nmodels: []\n"), "%s", out.p);
    sb_buf_free(&out);
    sb_config_free(cfg);
}

/* Checks one section's rows against the rules parsing relies on. */
static void check_section(const struct sb__cfg_section *sec)
{
    cr_assert_leq(sec->n_keys, SB__CFG_MAX_KEYS, "%s has too many keys", sec->name);
    for (size_t i = 0; i < sec->n_keys; i++) {
        const struct sb__cfg_key *k = &sec->keys[i];
        cr_assert_not_null(k->doc, "%s.%s has no doc", sec->name, k->name);
        cr_assert_leq(k->offset + k->size, sec->size, "%s.%s lies outside", sec->name, k->name);
        cr_assert(!((k->flags & SB__CFG_REQUIRED) && k->def != NULL), "%s.%s", sec->name, k->name);
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(k->name, sec->keys[j].name, "%s repeats a key", sec->name);
        switch (k->type) {
        case SB__CFG_STR:
        case SB__CFG_ENUM:
        case SB__CFG_STR_LIST:
        case SB__CFG_LIST:
            cr_assert_eq(k->size, sizeof(char *), "%s.%s", sec->name, k->name);
            break;
        case SB__CFG_INT:
            cr_assert(k->size == 4 || k->size == 8, "%s.%s", sec->name, k->name);
            cr_assert_leq(k->min, k->max);
            break;
        case SB__CFG_SIZE:
            cr_assert_eq(k->size, sizeof(size_t));
            cr_assert_geq(k->min, 0);
            break;
        case SB__CFG_BOOL: cr_assert_eq(k->size, sizeof(bool)); break;
        case SB__CFG_MAP:
            cr_assert_not_null(k->section);
            cr_assert_eq(k->size, k->section->size);
            check_section(k->section);
            break;
        }
        if (k->type == SB__CFG_ENUM)
            cr_assert_not_null(k->choices);
        if (k->type == SB__CFG_LIST) {
            cr_assert_not_null(k->section);
            check_section(k->section);
        }
    }
}

Test(config_tables, rows_are_consistent)
{
    check_section(sb__config_root_section());
    size_t n = 0;
    const struct sb__backend_kind *kinds = sb__config_backend_kinds(&n);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_not_null(kinds[i].required);
}

/* Reads a file of the source tree (tests run from the repository root), or skips the test. */
static char *read_tree_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        cr_skip_test("%s not found: run from the repository root", path);
    struct sb_buf b;
    sb_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cr_assert_eq(sb_buf_append(&b, chunk, n), 0);
    fclose(f);
    return sb_buf_steal(&b);
}

static void check_documented(const char *doc, const struct sb__cfg_section *sec)
{
    for (size_t i = 0; i < sec->n_keys; i++) {
        char row[128];
        snprintf(row, sizeof row, "| `%s` |", sec->keys[i].name);
        cr_assert_not_null(strstr(doc, row), "docs/configuration.md lacks a row for %s", row);
        if (sec->keys[i].section != NULL)
            check_documented(doc, sec->keys[i].section);
    }
}

Test(config_tables, every_key_is_documented)
{
    char *doc = read_tree_file("docs/configuration.md");
    check_documented(doc, sb__config_root_section());
    free(doc);
}

Test(config_tables, example_file_parses)
{
    char *text = read_tree_file("switchboard.example.yaml");
    struct sb_config *cfg = parse_ok(text);
    cr_assert_gt(cfg->n_models, 0);
    sb_config_free(cfg);
    free(text);
}

Test(config_suggest, edit_distance)
{
    cr_assert_eq(sb__config_edit_distance("port", "port", 2), 0);
    cr_assert_eq(sb__config_edit_distance("prot", "port", 2), 1);
    cr_assert_eq(sb__config_edit_distance("paralel", "parallel", 2), 1);
    cr_assert_eq(sb__config_edit_distance("", "ab", 2), 2);
    cr_assert_eq(sb__config_edit_distance("kitten", "sitting", 5), 3);
    cr_assert_eq(sb__config_edit_distance("kitten", "sitting", 2), 3); /* limit + 1 */
    cr_assert_eq(sb__config_edit_distance("a", "abcdef", 2), 3);
}
