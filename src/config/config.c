/* Configuration parsing: a YAML document walked against tables of keys (one table per section),
 * so that defaults, conversion, validation, freeing and the summary are written once. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "config/internal.h"
#include "privacy/privacy.h"

/* Built from config/default.yaml by scripts/embed.sh (see the Makefile). */
extern const char sb__default_config_text[];

/* Integer fields are stored through fixed-width types; `int` fields rely on this. */
_Static_assert(sizeof(int) == sizeof(int32_t), "int fields are stored as int32_t");

/* ---------------------------------------------------------------------------------------------
 * The tables. Each row is one YAML key: where it goes, how it converts, its default and meaning.
 * docs/configuration.md describes the same keys; a unit test checks that none is missing there.
 * ------------------------------------------------------------------------------------------- */
#define FIELD(type, member) .offset = offsetof(type, member), .size = sizeof(((type *)0)->member)

static const struct sb__cfg_key listen_keys[] = {
    {.name = "host",
     .type = SB__CFG_STR,
     FIELD(struct sb_listen_config, host),
     .def = "127.0.0.1",
     .doc = "the address to listen on; 0.0.0.0 for every interface"},
    {.name = "port",
     .type = SB__CFG_INT,
     FIELD(struct sb_listen_config, port),
     .min = 0,
     .max = 65535,
     .def = "8080",
     .doc = "the TCP port; 0 picks a free one"},
    {.name = "max_body_bytes",
     .type = SB__CFG_SIZE,
     FIELD(struct sb_listen_config, max_body_bytes),
     .min = 1,
     .max = (int64_t)1 << 30,
     .def = "8388608",
     .doc = "request bodies larger than this get 413"},
    {.name = "io_threads",
     .type = SB__CFG_INT,
     FIELD(struct sb_listen_config, io_threads),
     .min = 1,
     .max = 1024,
     .def = "1",
     .doc = "threads that serve HTTP, each with its own loop"},
};

static const struct sb__cfg_section listen_section = {
    .name = "listen",
    .keys = listen_keys,
    .n_keys = SB_ARRAY_LEN(listen_keys),
    .size = sizeof(struct sb_listen_config),
};

static void check_model(struct sb__cfg_check *chk, void *entry);

/* Fields of a struct embedded in another (a MAP section), relative to the embedded struct. */
#define SUBFIELD(type, member, sub)                                                                \
    .offset = offsetof(type, member.sub) - offsetof(type, member),                                 \
    .size = sizeof(((type *)0)->member.sub)

/* Upper bound for every duration in milliseconds: a day. */
#define MS_MAX 86400000

static const struct sb__cfg_key timeout_keys[] = {
    {.name = "connect_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, timeouts, connect_ms),
     .min = 0,
     .max = MS_MAX,
     .def = "5000",
     .doc = "TCP and TLS connection established; 0 = no limit"},
    {.name = "first_byte_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, timeouts, first_byte_ms),
     .min = 0,
     .max = MS_MAX,
     .def = "60000",
     .doc = "from sending the request to the response's status line; 0 = no limit"},
    {.name = "idle_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, timeouts, idle_ms),
     .min = 0,
     .max = MS_MAX,
     .def = "120000",
     .doc = "longest silence between two pieces of a streamed response; 0 = no limit"},
    {.name = "total_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, timeouts, total_ms),
     .min = 0,
     .max = MS_MAX,
     .def = "600000",
     .doc = "the whole upstream exchange; 0 = no limit"},
};

static const struct sb__cfg_section timeout_section = {
    .name = "models[].timeouts",
    .keys = timeout_keys,
    .n_keys = SB_ARRAY_LEN(timeout_keys),
    .size = sizeof(((struct sb_model_config *)0)->timeouts),
};

static const struct sb__cfg_key retry_keys[] = {
    {.name = "max",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, retries, max),
     .min = 0,
     .max = 10,
     .def = "2",
     .doc = "retries after the first try, for failures that are safe to retry; 0 = none"},
    {.name = "base_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, retries, base_ms),
     .min = 1,
     .max = MS_MAX,
     .def = "250",
     .doc = "backoff before the first retry (doubling each time, with full jitter)"},
    {.name = "max_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, retries, max_ms),
     .min = 1,
     .max = MS_MAX,
     .def = "8000",
     .doc = "the longest backoff (a provider's Retry-After may ask for longer)"},
};

static const struct sb__cfg_section retry_section = {
    .name = "models[].retries",
    .keys = retry_keys,
    .n_keys = SB_ARRAY_LEN(retry_keys),
    .size = sizeof(((struct sb_model_config *)0)->retries),
};

static const struct sb__cfg_key breaker_keys[] = {
    {.name = "failures",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, breaker, failures),
     .min = 0,
     .max = 1000,
     .def = "5",
     .doc = "consecutive failures that open the breaker; 0 = never open"},
    {.name = "open_ms",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, breaker, open_ms),
     .min = 1,
     .max = MS_MAX,
     .def = "30000",
     .doc = "how long an open breaker refuses requests before letting probes through"},
    {.name = "probes",
     .type = SB__CFG_INT,
     SUBFIELD(struct sb_model_config, breaker, probes),
     .min = 1,
     .max = 100,
     .def = "1",
     .doc = "requests let through while half-open; all must succeed to close it"},
};

static const struct sb__cfg_section breaker_section = {
    .name = "models[].breaker",
    .keys = breaker_keys,
    .n_keys = SB_ARRAY_LEN(breaker_keys),
    .size = sizeof(((struct sb_model_config *)0)->breaker),
};

static const char *const load_modes[] = {"startup", "lazy", NULL};

static const struct sb__cfg_key model_keys[] = {
    {.name = "name",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, name),
     .flags = SB__CFG_REQUIRED,
     .doc = "the alias clients ask for in \"model\""},
    {.name = "backend",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, backend),
     .flags = SB__CFG_REQUIRED,
     .doc = "what serves the model: local, openai, anthropic, bedrock or ollama"},
    {.name = "path",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, path),
     .doc = "the GGUF file, looked up along the model search path when relative"},
    {.name = "sha256",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, sha256),
     .doc = "local: the GGUF's sha256 (64 hex digits); serve refuses a file that differs"},
    {.name = "context",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, n_ctx),
     .min = 0,
     .max = INT32_MAX,
     .def = "0",
     .doc = "context window in tokens; 0 = the model's training context, capped at 8192"},
    {.name = "threads",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, n_threads),
     .min = 0,
     .max = 1024,
     .def = "0",
     .doc = "CPU threads for decoding; 0 = online cores - 1, at least 1"},
    {.name = "parallel",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, n_parallel),
     .min = 1,
     .max = 256,
     .def = "4",
     .doc = "sequence slots decoded together (concurrent requests)"},
    {.name = "batch",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, n_batch),
     .min = 1,
     .max = INT32_MAX,
     .def = "512",
     .doc = "prompt tokens per decode step"},
    {.name = "gpu_layers",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, gpu_layers),
     .min = -1,
     .max = INT32_MAX,
     .def = "0",
     .doc = "layers offloaded to a GPU; -1 = all"},
    {.name = "chat_template",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, chat_template),
     .doc = "a Jinja chat template that overrides the GGUF's own"},
    {.name = "embeddings",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_model_config, embeddings),
     .def = "false",
     .doc = "the model serves /v1/embeddings (and only embeddings)"},
    {.name = "load",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_model_config, load),
     .choices = load_modes,
     .def = "startup",
     .doc = "local: startup loads before serving (a failure stops serve); lazy on first request"},
    {.name = "keep_alive",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, keep_alive),
     .min = -1,
     .max = INT32_MAX,
     .def = "-1",
     .doc = "local: seconds a model stays loaded after its last request; -1 forever, 0 none"},
    {.name = "queue",
     .type = SB__CFG_INT,
     FIELD(struct sb_model_config, queue_size),
     .min = 1,
     .max = 65536,
     .def = "128",
     .doc = "local: requests waiting for a slot; more are refused with 429"},
    {.name = "base_url",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, base_url),
     .doc = "remote backends: the provider's API root; unset = the kind's default"},
    {.name = "ca_file",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, ca_file),
     .flags = SB__CFG_PATH,
     .doc = "remote backends: PEM file of the CAs to trust for https; unset = the system's"},
    {.name = "api_key",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, api_key),
     .flags = SB__CFG_SECRET,
     .doc = "remote backends: the provider's API key, usually ${OPENAI_API_KEY} or the like"},
    {.name = "upstream_model",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, upstream_model),
     .doc = "remote backends: the provider's model id; unset = name"},
    {.name = "region",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, region),
     .doc = "bedrock: the AWS region, e.g. us-east-1"},
    {.name = "aws_access_key_id",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, aws_access_key_id),
     .flags = SB__CFG_SECRET,
     .doc = "bedrock: the AWS access key id"},
    {.name = "aws_secret_access_key",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, aws_secret_access_key),
     .flags = SB__CFG_SECRET,
     .doc = "bedrock: the AWS secret access key"},
    {.name = "aws_session_token",
     .type = SB__CFG_STR,
     FIELD(struct sb_model_config, aws_session_token),
     .flags = SB__CFG_SECRET,
     .doc = "bedrock: the AWS session token, for temporary credentials"},
    {.name = "timeouts",
     .type = SB__CFG_MAP,
     FIELD(struct sb_model_config, timeouts),
     .section = &timeout_section,
     .doc = "remote backends: deadlines for each upstream request"},
    {.name = "fallback",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_model_config, fallback),
     .count_offset = offsetof(struct sb_model_config, n_fallback),
     .doc = "models (by name) tried in order when this one fails"},
    {.name = "retries",
     .type = SB__CFG_MAP,
     FIELD(struct sb_model_config, retries),
     .section = &retry_section,
     .doc = "retries of failures that are safe to retry, with exponential backoff"},
    {.name = "breaker",
     .type = SB__CFG_MAP,
     FIELD(struct sb_model_config, breaker),
     .section = &breaker_section,
     .doc = "the circuit breaker that stops sending to a failing backend"},
};

static const struct sb__cfg_section model_section = {
    .name = "models[]",
    .keys = model_keys,
    .n_keys = SB_ARRAY_LEN(model_keys),
    .size = sizeof(struct sb_model_config),
    .line_offset = offsetof(struct sb_model_config, line),
    .column_offset = offsetof(struct sb_model_config, column),
    .unique_key = "name",
    .check = check_model,
};

static const struct sb__cfg_key ledger_keys[] = {
    {.name = "path",
     .type = SB__CFG_STR,
     FIELD(struct sb_ledger_config, path),
     .def = "switchboard.db",
     .flags = SB__CFG_PATH | SB__CFG_URL_PASSWORD,
     .doc = "the SQLite ledger file, or a postgres:// URL; \"\" records nothing"},
    {.name = "commit_interval_ms",
     .type = SB__CFG_INT,
     FIELD(struct sb_ledger_config, commit_interval_ms),
     .min = 1,
     .max = 60000,
     .def = "50",
     .doc = "the longest a row waits to join a commit: what a kill -9 can lose"},
    {.name = "queue_size",
     .type = SB__CFG_SIZE,
     FIELD(struct sb_ledger_config, queue_size),
     .min = 16,
     .max = 1 << 20,
     .def = "2048",
     .doc = "rows waiting for the writer (about 1 KiB each); more are dropped and counted"},
    {.name = "retention_days",
     .type = SB__CFG_INT,
     FIELD(struct sb_ledger_config, retention_days),
     .min = 0,
     .max = 36500,
     .def = "0",
     .doc = "rows older than this many days are deleted; 0 keeps every row"},
    {.name = "content_logging",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_ledger_config, content_logging),
     .def = "false",
     .doc = "record prompt and completion text in the ledger's request_content table"},
};

static const struct sb__cfg_section ledger_section = {
    .name = "ledger",
    .keys = ledger_keys,
    .n_keys = SB_ARRAY_LEN(ledger_keys),
    .size = sizeof(struct sb_ledger_config),
};

static const struct sb__cfg_key local_keys[] = {
    {.name = "max_loaded",
     .type = SB__CFG_INT,
     FIELD(struct sb_local_config, max_loaded),
     .min = 0,
     .max = 1024,
     .def = "0",
     .doc = "local models loaded at once; the least recently used is unloaded; 0 = no limit"},
};

static const struct sb__cfg_section local_section = {
    .name = "local",
    .keys = local_keys,
    .n_keys = SB_ARRAY_LEN(local_keys),
    .size = sizeof(struct sb_local_config),
};

static const struct sb__cfg_key ui_keys[] = {
    {.name = "enabled",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_ui_config, enabled),
     .def = "true",
     .doc = "serve the dashboard: GET /ui and its JSON, /ui/api/summary"},
    {.name = "recent",
     .type = SB__CFG_SIZE,
     FIELD(struct sb_ui_config, recent),
     .min = 1,
     .max = 10000,
     .def = "50",
     .doc = "routing decisions kept in memory for the dashboard's table (about 700 bytes each)"},
};

static const struct sb__cfg_section ui_section = {
    .name = "ui",
    .keys = ui_keys,
    .n_keys = SB_ARRAY_LEN(ui_keys),
    .size = sizeof(struct sb_ui_config),
};

/* Decimal keys (prices, watts, years) are strings checked by check_decimals: a row whose .max is
 * above zero must read, with sb_config_parse_micros, as millionths within [.min, .max]. */
static void check_decimals(struct sb__cfg_check *chk, void *entry);

#define MICROS(whole) ((int64_t)1000000 * (whole))

static const struct sb__cfg_key price_keys[] = {
    {.name = "model",
     .type = SB__CFG_STR,
     FIELD(struct sb_price_config, model),
     .flags = SB__CFG_REQUIRED,
     .doc = "the model id the price is for; '*' matches any run of characters, '|' separates "
            "alternatives"},
    {.name = "input_per_mtok",
     .type = SB__CFG_STR,
     FIELD(struct sb_price_config, input_per_mtok),
     .max = MICROS(10000),
     .flags = SB__CFG_REQUIRED,
     .doc = "USD per million uncached input tokens"},
    {.name = "cached_input_per_mtok",
     .type = SB__CFG_STR,
     FIELD(struct sb_price_config, cached_input_per_mtok),
     .max = MICROS(10000),
     .doc = "USD per million input tokens read from the provider's cache; unset = the input price"},
    {.name = "cache_write_per_mtok",
     .type = SB__CFG_STR,
     FIELD(struct sb_price_config, cache_write_per_mtok),
     .max = MICROS(10000),
     .doc = "USD per million input tokens written to the provider's cache; unset = input price"},
    {.name = "output_per_mtok",
     .type = SB__CFG_STR,
     FIELD(struct sb_price_config, output_per_mtok),
     .max = MICROS(10000),
     .flags = SB__CFG_REQUIRED,
     .doc = "USD per million completion tokens"},
};

static const struct sb__cfg_section price_section = {
    .name = "pricing[]",
    .keys = price_keys,
    .n_keys = SB_ARRAY_LEN(price_keys),
    .size = sizeof(struct sb_price_config),
    .line_offset = offsetof(struct sb_price_config, line),
    .column_offset = offsetof(struct sb_price_config, column),
    .unique_key = "model",
    .check = check_decimals,
};

static const struct sb__cfg_key infra_keys[] = {
    {.name = "hardware_usd",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, hardware_usd),
     .max = MICROS(1000000000),
     .doc = "what the local inference hardware cost"},
    {.name = "depreciation_years",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, depreciation_years),
     .min = 1,
     .max = MICROS(100),
     .def = "3",
     .doc = "years the hardware is written off over"},
    {.name = "power_watts",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, power_watts),
     .max = MICROS(100000000),
     .doc = "the hardware's power draw while serving"},
    {.name = "electricity_usd_per_kwh",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, electricity_usd_per_kwh),
     .max = MICROS(1000),
     .doc = "the price of electricity, USD per kWh"},
    {.name = "utilization",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, utilization),
     .min = 1,
     .max = MICROS(1),
     .def = "0.5",
     .doc = "the share of time the hardware is planned to be busy, above 0 and at most 1"},
    {.name = "engineer_hours_per_month",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, engineer_hours_per_month),
     .max = MICROS(100000),
     .doc = "people's time the hardware takes each month"},
    {.name = "engineer_usd_per_hour",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, engineer_usd_per_hour),
     .max = MICROS(1000000),
     .doc = "what an hour of that time costs"},
    {.name = "maintenance_usd_per_month",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, maintenance_usd_per_month),
     .max = MICROS(1000000000),
     .doc = "hosting, support contracts and spares each month"},
    {.name = "tokens_per_s",
     .type = SB__CFG_STR,
     FIELD(struct sb_infra_config, tokens_per_s),
     .max = MICROS(100000000),
     .doc = "throughput to assume when the ledger has measured none"},
};

static const struct sb__cfg_section infra_section = {
    .name = "infra",
    .keys = infra_keys,
    .n_keys = SB_ARRAY_LEN(infra_keys),
    .size = sizeof(struct sb_infra_config),
    .check = check_decimals,
};

static void check_privacy_pattern(struct sb__cfg_check *chk, void *entry);
static void check_privacy(struct sb__cfg_check *chk, void *entry);

static const struct sb__cfg_key privacy_pattern_keys[] = {
    {.name = "name",
     .type = SB__CFG_STR,
     FIELD(struct sb_privacy_pattern_config, name),
     .flags = SB__CFG_REQUIRED,
     .doc = "the kind's name; its upper case is the placeholder tag (<NAME_1>)"},
    {.name = "regex",
     .type = SB__CFG_STR,
     FIELD(struct sb_privacy_pattern_config, regex),
     .flags = SB__CFG_REQUIRED,
     .doc = "what to find, in Vectorscan syntax (no back-references or look-around)"},
};

static const struct sb__cfg_section privacy_pattern_section = {
    .name = "privacy.custom_patterns[]",
    .keys = privacy_pattern_keys,
    .n_keys = SB_ARRAY_LEN(privacy_pattern_keys),
    .size = sizeof(struct sb_privacy_pattern_config),
    .line_offset = offsetof(struct sb_privacy_pattern_config, line),
    .column_offset = offsetof(struct sb_privacy_pattern_config, column),
    .unique_key = "name",
    .check = check_privacy_pattern,
};

static const struct sb__cfg_key privacy_keys[] = {
    {.name = "custom_terms",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_privacy_config, custom_terms),
     .count_offset = offsetof(struct sb_privacy_config, n_custom_terms),
     .doc = "words found case-insensitively, as whole words (project code names, customers)"},
    {.name = "custom_patterns",
     .type = SB__CFG_LIST,
     FIELD(struct sb_privacy_config, custom_patterns),
     .count_offset = offsetof(struct sb_privacy_config, n_custom_patterns),
     .section = &privacy_pattern_section,
     .doc = "regexes, each a kind of its own: {name, regex}"},
    {.name = "detectors",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_privacy_config, detectors),
     .count_offset = offsetof(struct sb_privacy_config, n_detectors),
     .doc = "the built-in detectors turned on; empty = all, [none] = none"},
};

static const struct sb__cfg_section privacy_section = {
    .name = "privacy",
    .keys = privacy_keys,
    .n_keys = SB_ARRAY_LEN(privacy_keys),
    .size = sizeof(struct sb_privacy_config),
    .check = check_privacy,
};

/* Routing policy: rules of conditions and actions. Checks within an entry run with the entry;
 * model and PII kind names are checked with the root, once models and privacy are read. */
static void check_policy_when(struct sb__cfg_check *chk, void *entry);
static void check_policy_action(struct sb__cfg_check *chk, void *entry);
static void check_policy_rule(struct sb__cfg_check *chk, void *entry);

static const struct sb__cfg_key policy_when_keys[] = {
    {.name = "model",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_when_config, model),
     .count_offset = offsetof(struct sb_policy_when_config, n_model),
     .doc = "the requested model aliases the rule applies to"},
    {.name = "key",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_when_config, key),
     .count_offset = offsetof(struct sb_policy_when_config, n_key),
     .doc = "API key names the rule applies to"},
    {.name = "team",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_when_config, team),
     .count_offset = offsetof(struct sb_policy_when_config, n_team),
     .doc = "teams (of the API key) the rule applies to"},
    {.name = "sensitivity",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_when_config, sensitivity),
     .count_offset = offsetof(struct sb_policy_when_config, n_sensitivity),
     .doc = "effective sensitivities (low, medium, high): the label or what was detected, the "
            "higher"},
    {.name = "pii",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_when_config, pii),
     .count_offset = offsetof(struct sb_policy_when_config, n_pii),
     .doc = "PII kinds; the rule applies when any of them was detected in the request"},
    {.name = "min_prompt_tokens",
     .type = SB__CFG_INT,
     FIELD(struct sb_policy_when_config, min_prompt_tokens),
     .min = 0,
     .max = INT64_MAX,
     .doc = "the rule applies to prompts of at least this many tokens"},
    {.name = "max_prompt_tokens",
     .type = SB__CFG_INT,
     FIELD(struct sb_policy_when_config, max_prompt_tokens),
     .min = 0,
     .max = INT64_MAX,
     .doc = "the rule applies to prompts of at most this many tokens"},
    {.name = "min_max_tokens",
     .type = SB__CFG_INT,
     FIELD(struct sb_policy_when_config, min_max_tokens),
     .min = 0,
     .max = INT64_MAX,
     .doc = "the rule applies when max_tokens is at least this (or not set)"},
    {.name = "tools",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_policy_when_config, tools),
     .doc = "true: the rule applies to requests with tools; false: to requests without"},
    {.name = "budget_below_usd",
     .type = SB__CFG_STR,
     FIELD(struct sb_policy_when_config, budget_below_usd),
     .max = MICROS(1000000000),
     .doc = "the rule applies when the remaining budget is below this many USD"},
};

static const struct sb__cfg_section policy_when_section = {
    .name = "policy.rules[].when",
    .keys = policy_when_keys,
    .n_keys = SB_ARRAY_LEN(policy_when_keys),
    .size = sizeof(struct sb_policy_when_config),
    .check = check_policy_when,
};

static const struct sb__cfg_key policy_action_keys[] = {
    {.name = "route",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_policy_action_config, route),
     .count_offset = offsetof(struct sb_policy_action_config, n_route),
     .doc = "the models (by name) that serve the request, tried in order"},
    {.name = "pseudonymize",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_policy_action_config, pseudonymize),
     .def = "false",
     .doc = "replace detected values with placeholders before a non-local backend gets them"},
    {.name = "deny",
     .type = SB__CFG_STR,
     FIELD(struct sb_policy_action_config, deny),
     .doc = "refuse the request (403) with this reason"},
};

static const struct sb__cfg_section policy_action_section = {
    .name = "policy.rules[].action",
    .keys = policy_action_keys,
    .n_keys = SB_ARRAY_LEN(policy_action_keys),
    .size = sizeof(struct sb_policy_action_config),
    .check = check_policy_action,
};

static const struct sb__cfg_key policy_rule_keys[] = {
    {.name = "id",
     .type = SB__CFG_STR,
     FIELD(struct sb_policy_rule_config, id),
     .flags = SB__CFG_REQUIRED,
     .doc = "the rule's name, unique; shown in x-switchboard-route and route explain"},
    {.name = "when",
     .type = SB__CFG_MAP,
     FIELD(struct sb_policy_rule_config, when),
     .section = &policy_when_section,
     .doc = "conditions that must all hold; none = every request"},
    {.name = "action",
     .type = SB__CFG_MAP,
     FIELD(struct sb_policy_rule_config, action),
     .section = &policy_action_section,
     .flags = SB__CFG_REQUIRED,
     .doc = "what a matching request gets: route, pseudonymize, deny"},
};

static const struct sb__cfg_section policy_rule_section = {
    .name = "policy.rules[]",
    .keys = policy_rule_keys,
    .n_keys = SB_ARRAY_LEN(policy_rule_keys),
    .size = sizeof(struct sb_policy_rule_config),
    .line_offset = offsetof(struct sb_policy_rule_config, line),
    .column_offset = offsetof(struct sb_policy_rule_config, column),
    .unique_key = "id",
    .check = check_policy_rule,
};

static const char *const policy_defaults[] = {"hybrid", "none", NULL};

static const struct sb__cfg_key policy_keys[] = {
    {.name = "rules",
     .type = SB__CFG_LIST,
     FIELD(struct sb_policy_config, rules),
     .count_offset = offsetof(struct sb_policy_config, n_rules),
     .section = &policy_rule_section,
     .doc = "rules tried in order; the first that matches decides"},
    {.name = "default",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_policy_config, default_policy),
     .choices = policy_defaults,
     .def = "hybrid",
     .doc = "when no rule matches: hybrid (the built-in policy) or none (the model's own chain)"},
};

static const struct sb__cfg_section policy_section = {
    .name = "policy",
    .keys = policy_keys,
    .n_keys = SB_ARRAY_LEN(policy_keys),
    .size = sizeof(struct sb_policy_config),
};

/* Alerts: the spike detector's keys are checked together (window below baseline, factor above
 * 1); the section's check also marks alerts as on, since only a file that has it turns them on. */
static void check_alerts_spike(struct sb__cfg_check *chk, void *entry);
static void check_alerts(struct sb__cfg_check *chk, void *entry);

static const struct sb__cfg_key alerts_spike_keys[] = {
    {.name = "enabled",
     .type = SB__CFG_BOOL,
     FIELD(struct sb_alerts_spike_config, enabled),
     .def = "true",
     .doc = "watch the spend rate for spikes"},
    {.name = "window_s",
     .type = SB__CFG_INT,
     FIELD(struct sb_alerts_spike_config, window_s),
     .min = 1,
     .max = 2592000,
     .def = "300",
     .doc = "seconds of recent spend whose rate is compared with the baseline's"},
    {.name = "baseline_s",
     .type = SB__CFG_INT,
     FIELD(struct sb_alerts_spike_config, baseline_s),
     .min = 2,
     .max = 2592000,
     .def = "86400",
     .doc = "seconds before the window whose average rate is the baseline; above window_s"},
    {.name = "factor",
     .type = SB__CFG_STR,
     FIELD(struct sb_alerts_spike_config, factor),
     .max = MICROS(1000000),
     .def = "3",
     .doc = "a spike is a window rate at least this many times the baseline's; above 1"},
    {.name = "min_usd",
     .type = SB__CFG_STR,
     FIELD(struct sb_alerts_spike_config, min_usd),
     .max = MICROS(1000000000),
     .def = "1.00",
     .doc = "USD a window must reach before it can be a spike"},
};

static const struct sb__cfg_section alerts_spike_section = {
    .name = "alerts.spend_spike",
    .keys = alerts_spike_keys,
    .n_keys = SB_ARRAY_LEN(alerts_spike_keys),
    .size = sizeof(struct sb_alerts_spike_config),
    .check = check_alerts_spike,
};

static const struct sb__cfg_key alerts_keys[] = {
    {.name = "webhook_url",
     .type = SB__CFG_STR,
     FIELD(struct sb_alerts_config, webhook_url),
     .flags = SB__CFG_SECRET,
     .doc = "an http(s) URL each alert is POSTed to as JSON; unset = alerts are only logged"},
    {.name = "webhook_timeout_ms",
     .type = SB__CFG_INT,
     FIELD(struct sb_alerts_config, webhook_timeout_ms),
     .min = 100,
     .max = 600000,
     .def = "5000",
     .doc = "the longest one POST may take, connecting included"},
    {.name = "webhook_retries",
     .type = SB__CFG_INT,
     FIELD(struct sb_alerts_config, webhook_retries),
     .min = 0,
     .max = 10,
     .def = "2",
     .doc = "retries after a 5xx reply or a connection failure, 1 s apart and doubling"},
    {.name = "instance",
     .type = SB__CFG_STR,
     FIELD(struct sb_alerts_config, instance),
     .doc = "this gateway's name in alerts; unset = the host name"},
    {.name = "queue_size",
     .type = SB__CFG_SIZE,
     FIELD(struct sb_alerts_config, queue_size),
     .min = 1,
     .max = 65536,
     .def = "64",
     .doc = "alerts waiting to be posted; more are dropped, counted and logged"},
    {.name = "spend_spike",
     .type = SB__CFG_MAP,
     FIELD(struct sb_alerts_config, spend_spike),
     .section = &alerts_spike_section,
     .doc = "spend-spike detection: the recent spend rate against its trailing average"},
};

static const struct sb__cfg_section alerts_section = {
    .name = "alerts",
    .keys = alerts_keys,
    .n_keys = SB_ARRAY_LEN(alerts_keys),
    .size = sizeof(struct sb_alerts_config),
    .check = check_alerts,
};

/* API keys and budgets (docs/keys-and-budgets.md). Amounts are decimals checked by
 * check_decimals; team names follow the key names' rule (check_budget_team). */
static void check_budget_team(struct sb__cfg_check *chk, void *entry);

static const char *const auth_modes[] = {"off", "optional", "required", NULL};
static const char *const budget_periods[] = {"day", "week", "month", NULL};
static const char *const budget_on_limit[] = {"deny", "local", NULL};

static const struct sb__cfg_key auth_keys[] = {
    {.name = "keys",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_auth_config, keys),
     .choices = auth_modes,
     .def = "off",
     .doc = "off: keys are not read; optional: a Switchboard key is checked when presented; "
            "required: every model request needs one"},
    {.name = "store",
     .type = SB__CFG_STR,
     FIELD(struct sb_auth_config, store),
     .def = "",
     .flags = SB__CFG_PATH,
     .doc = "the SQLite file that holds the keys; \"\" = the ledger's file"},
};

static const struct sb__cfg_section auth_section = {
    .name = "auth",
    .keys = auth_keys,
    .n_keys = SB_ARRAY_LEN(auth_keys),
    .size = sizeof(struct sb_auth_config),
};

static const struct sb__cfg_key budget_limit_keys[] = {
    {.name = "usd",
     .type = SB__CFG_STR,
     FIELD(struct sb_budget_limit_config, usd),
     .max = MICROS(1000000000),
     .doc = "USD the whole gateway may spend per period; unset = no global budget"},
    {.name = "period",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_budget_limit_config, period),
     .choices = budget_periods,
     .def = "month",
     .doc = "the calendar UTC period the budget renews: day, week (from Monday) or month"},
};

static const struct sb__cfg_section budget_limit_section = {
    .name = "budgets.global",
    .keys = budget_limit_keys,
    .n_keys = SB_ARRAY_LEN(budget_limit_keys),
    .size = sizeof(struct sb_budget_limit_config),
    .check = check_decimals,
};

static const struct sb__cfg_key budget_team_keys[] = {
    {.name = "name",
     .type = SB__CFG_STR,
     FIELD(struct sb_budget_team_config, name),
     .flags = SB__CFG_REQUIRED,
     .doc = "the team, as keys name it (switchboard keys create --team)"},
    {.name = "usd",
     .type = SB__CFG_STR,
     FIELD(struct sb_budget_team_config, usd),
     .max = MICROS(1000000000),
     .flags = SB__CFG_REQUIRED,
     .doc = "USD the team's keys may spend together per period"},
    {.name = "period",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_budget_team_config, period),
     .choices = budget_periods,
     .def = "month",
     .doc = "the calendar UTC period the budget renews: day, week (from Monday) or month"},
};

static const struct sb__cfg_section budget_team_section = {
    .name = "budgets.teams[]",
    .keys = budget_team_keys,
    .n_keys = SB_ARRAY_LEN(budget_team_keys),
    .size = sizeof(struct sb_budget_team_config),
    .line_offset = offsetof(struct sb_budget_team_config, line),
    .column_offset = offsetof(struct sb_budget_team_config, column),
    .unique_key = "name",
    .check = check_budget_team,
};

static const struct sb__cfg_key budgets_keys[] = {
    {.name = "global",
     .type = SB__CFG_MAP,
     FIELD(struct sb_budgets_config, global),
     .section = &budget_limit_section,
     .doc = "the whole gateway's budget"},
    {.name = "teams",
     .type = SB__CFG_LIST,
     FIELD(struct sb_budgets_config, teams),
     .count_offset = offsetof(struct sb_budgets_config, n_teams),
     .section = &budget_team_section,
     .doc = "a budget per team, shared by the team's keys"},
    {.name = "on_limit",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_budgets_config, on_limit),
     .choices = budget_on_limit,
     .def = "deny",
     .doc = "a request that does not fit a budget: deny (429) or local (served by the free "
            "members of its chain)"},
    {.name = "default_max_tokens",
     .type = SB__CFG_INT,
     FIELD(struct sb_budgets_config, default_max_tokens),
     .min = 1,
     .max = 10000000,
     .def = "4096",
     .doc = "output tokens a request without max_tokens is assumed to cost before it is sent"},
};

static const struct sb__cfg_section budgets_section = {
    .name = "budgets",
    .keys = budgets_keys,
    .n_keys = SB_ARRAY_LEN(budgets_keys),
    .size = sizeof(struct sb_budgets_config),
};

static void check_root(struct sb__cfg_check *chk, void *entry);

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};

static const struct sb__cfg_key root_keys[] = {
    {.name = "listen",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, listen),
     .section = &listen_section,
     .doc = "the HTTP listener"},
    {.name = "log_level",
     .type = SB__CFG_ENUM,
     FIELD(struct sb_config, log_level),
     .choices = log_levels,
     .def = "info",
     .doc = "the least severe log lines written"},
    {.name = "model_dirs",
     .type = SB__CFG_STR_LIST,
     FIELD(struct sb_config, model_dirs),
     .count_offset = offsetof(struct sb_config, n_model_dirs),
     .flags = SB__CFG_PATH,
     .doc = "folders searched for relative model paths, after $SWITCHBOARD_MODELS"},
    {.name = "models",
     .type = SB__CFG_LIST,
     FIELD(struct sb_config, models),
     .count_offset = offsetof(struct sb_config, n_models),
     .section = &model_section,
     .doc = "the models served, each under its own name"},
    {.name = "ledger",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, ledger),
     .section = &ledger_section,
     .doc = "the request ledger: one row per request, in SQLite or PostgreSQL"},
    {.name = "local",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, local),
     .section = &local_section,
     .doc = "what the local models share: how many may be loaded at once"},
    {.name = "ui",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, ui),
     .section = &ui_section,
     .doc = "the dashboard at /ui (docs/dashboard.md)"},
    {.name = "pricing",
     .type = SB__CFG_LIST,
     FIELD(struct sb_config, pricing),
     .count_offset = offsetof(struct sb_config, n_pricing),
     .section = &price_section,
     .doc = "price overrides, tried before the bundled table (switchboard report)"},
    {.name = "infra",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, infra),
     .section = &infra_section,
     .doc = "what the local hardware costs, for reports' local cost and break-even"},
    {.name = "privacy",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, privacy),
     .section = &privacy_section,
     .doc = "PII detection: built-in detectors, custom terms and patterns"},
    {.name = "policy",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, policy),
     .section = &policy_section,
     .doc = "routing rules: where each request may and should go (docs/routing.md)"},
    {.name = "alerts",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, alerts),
     .section = &alerts_section,
     .doc = "spend-spike and budget alerts, logged and posted to a webhook (docs/alerts.md)"},
    {.name = "auth",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, auth),
     .section = &auth_section,
     .doc = "API keys: off, optional or required (docs/keys-and-budgets.md)"},
    {.name = "budgets",
     .type = SB__CFG_MAP,
     FIELD(struct sb_config, budgets),
     .section = &budgets_section,
     .doc = "USD budgets per period: global and per team (keys carry their own)"},
};

static const struct sb__cfg_section root_section = {
    .name = "",
    .keys = root_keys,
    .n_keys = SB_ARRAY_LEN(root_keys),
    .size = sizeof(struct sb_config),
    .check = check_root,
};

const struct sb__cfg_section *sb__config_root_section(void)
{
    return &root_section;
}

/* The kinds of backend a model may name, and the keys each needs. */
static const char *const local_required[] = {"path", NULL};
static const char *const nothing_required[] = {NULL};
static const char *const bedrock_required[] = {"region", NULL};

static const struct sb__backend_kind backend_kinds[] = {
    {"local", local_required, "in-process llama.cpp engine serving a GGUF file"},
    {"openai", nothing_required,
     "OpenAI or any OpenAI-compatible server; base_url defaults to https://api.openai.com/v1"},
    {"anthropic", nothing_required,
     "Anthropic's Messages API; base_url defaults to https://api.anthropic.com"},
    {"bedrock", bedrock_required, "AWS Bedrock's Converse API in region"},
    {"ollama", nothing_required,
     "an Ollama server's native /api/chat; base_url defaults to http://127.0.0.1:11434"},
};

const struct sb__backend_kind *sb__config_backend_kinds(size_t *n)
{
    *n = SB_ARRAY_LEN(backend_kinds);
    return backend_kinds;
}

/* ---------------------------------------------------------------------------------------------
 * Parse state and error reports
 * ------------------------------------------------------------------------------------------- */
/* Past this many, further problems are counted but not listed: by then the file is the wrong one.
 */
#define MAX_REPORTED 50
/* A scalar after ${ENV} expansion; bigger ones are refused rather than copied. */
#define SCALAR_MAX ((size_t)4 << 20)
/* Values quoted in messages are cut to this many bytes. */
#define QUOTE_MAX 60

struct parse {
    const char *name;     /* the file, for messages */
    const char *base_dir; /* what SB__CFG_PATH values are relative to; NULL = the current folder */
    yaml_document_t *doc;
    struct sb_buf *errors; /* where reports go, one line each */
    size_t n_errors;       /* every problem found, reported or not */
    bool oom;              /* an allocation failed: the result is SB_ENOMEM whatever else */
    char path[256];        /* where in the document we are: "models[0].parallel" */
    size_t path_len;
    struct sb_buf scalar; /* the current scalar's text after expansion */
};

/* What a section's check function sees: the entry's value nodes, to test presence and to point
 * reports at the right place. */
struct sb__cfg_check {
    struct parse *ps;
    const struct sb__cfg_section *sec;
    yaml_node_t *const *values; /* by key index; NULL where the key is absent */
    const yaml_node_t *map;
};

static size_t path_push(struct parse *ps, const char *fmt, ...) SB_PRINTF(2, 3);

/* Appends to the current path; returns the length to restore with path_pop. */
static size_t path_push(struct parse *ps, const char *fmt, ...)
{
    size_t old = ps->path_len;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(ps->path + old, sizeof ps->path - old, fmt, ap);
    va_end(ap);
    /* A cut path still locates the problem (the line and column do), so truncation is fine. */
    if (n > 0)
        ps->path_len = SB_MIN(old + (size_t)n, sizeof ps->path - 1);
    return old;
}

static size_t path_push_key(struct parse *ps, const char *key)
{
    return path_push(ps, "%s%s", ps->path_len > 0 ? "." : "", key);
}

static void path_pop(struct parse *ps, size_t old)
{
    ps->path_len = old;
    ps->path[old] = '\0';
}

static void report(struct parse *ps, yaml_mark_t mark, const char *fmt, ...) SB_PRINTF(3, 4);

/* Appends "FILE:LINE:COL: PATH: message" as one line (libyaml counts from 0; editors from 1). */
static void report(struct parse *ps, yaml_mark_t mark, const char *fmt, ...)
{
    ps->n_errors++;
    if (ps->n_errors > MAX_REPORTED)
        return;
    struct sb_buf line;
    sb_buf_init(&line, 64 << 10);
    va_list ap;
    va_start(ap, fmt);
    int rc = sb_buf_printf(&line, "%s:%zu:%zu: ", ps->name, mark.line + 1, mark.column + 1);
    if (rc == 0 && ps->path_len > 0)
        rc = sb_buf_printf(&line, "%s: ", ps->path);
    if (rc == 0)
        rc = sb_buf_vprintf(&line, fmt, ap);
    if (rc == 0)
        rc = sb_buf_append_char(&line, '\n');
    va_end(ap);
    /* A full errors buffer loses lines, not the verdict: n_errors still fails the parse. */
    if (rc == 0)
        rc = sb_buf_append_str(ps->errors, sb_buf_view(&line));
    if (rc == SB_ENOMEM)
        ps->oom = true;
    sb_buf_free(&line);
}

/* Appends s as a double-quoted, escaped string, cut after QUOTE_MAX bytes at a character
 * boundary. */
static void append_quoted(struct sb_buf *b, const char *s, size_t len)
{
    size_t shown = len;
    if (shown > QUOTE_MAX) {
        shown = QUOTE_MAX;
        while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
            shown--;
    }
    sb_buf_append_char(b, '"');
    sb_buf_append_json_escaped(b, (struct sb_str){s, shown});
    sb_buf_append_c(b, shown < len ? "...\"" : "\"");
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    size_t len = n->data.scalar.length;
    return len == 0 || (len == 1 && v[0] == '~') || strcmp(v, "null") == 0 ||
           strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* Appends what a node is, for "got ..." in messages. */
static void append_got(struct sb_buf *b, const yaml_node_t *n)
{
    if (n->type == YAML_MAPPING_NODE)
        sb_buf_append_c(b, "a mapping");
    else if (n->type == YAML_SEQUENCE_NODE)
        sb_buf_append_c(b, "a list");
    else if (is_null(n))
        sb_buf_append_c(b, "an empty value");
    else
        append_quoted(b, (const char *)n->data.scalar.value, n->data.scalar.length);
}

static void append_key_names(struct sb_buf *b, const struct sb__cfg_section *sec)
{
    for (size_t i = 0; i < sec->n_keys; i++)
        sb_buf_printf(b, "%s%s", i > 0 ? ", " : "", sec->keys[i].name);
}

/* Appends what a key accepts: "expected an integer from 1 to 256". */
static void append_expected(struct sb_buf *b, const struct sb__cfg_key *key)
{
    int64_t type_max =
        key->type == SB__CFG_INT && key->size == sizeof(int32_t) ? INT32_MAX : INT64_MAX;
    switch (key->type) {
    case SB__CFG_STR:
        sb_buf_append_c(b, key->flags & SB__CFG_PATH ? "expected a path" : "expected a string");
        break;
    case SB__CFG_INT:
    case SB__CFG_SIZE:
        if (key->max >= type_max)
            sb_buf_printf(b, "expected an integer of at least %lld", (long long)key->min);
        else
            sb_buf_printf(b, "expected an integer from %lld to %lld", (long long)key->min,
                          (long long)key->max);
        break;
    case SB__CFG_BOOL: sb_buf_append_c(b, "expected true or false"); break;
    case SB__CFG_ENUM:
        sb_buf_append_c(b, "expected one of ");
        for (size_t i = 0; key->choices[i] != NULL; i++)
            sb_buf_printf(b, "%s%s", i > 0 ? ", " : "", key->choices[i]);
        break;
    case SB__CFG_STR_LIST:
        sb_buf_append_c(b, key->flags & SB__CFG_PATH ? "expected a list of folders"
                                                     : "expected a list of strings");
        break;
    case SB__CFG_MAP:
        sb_buf_append_c(b, "expected a mapping with keys ");
        append_key_names(b, key->section);
        break;
    case SB__CFG_LIST:
        sb_buf_append_c(b, "expected a list of mappings with keys ");
        append_key_names(b, key->section);
        break;
    }
}

/* ---------------------------------------------------------------------------------------------
 * "Did you mean"
 * ------------------------------------------------------------------------------------------- */
/* Longer names than this are never close to one of ours; it bounds the distance table. */
#define EDIT_MAX_LEN 64

size_t sb__config_edit_distance(const char *a, const char *b, size_t limit)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > EDIT_MAX_LEN || lb > EDIT_MAX_LEN || (la > lb ? la - lb : lb - la) > limit)
        return limit + 1;
    /* Three rows of the dynamic-programming table: two back (for swaps), one back, current. */
    size_t rows[3][EDIT_MAX_LEN + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            size_t d = SB_MIN(prev[j] + 1, cur[j - 1] + 1);
            d = SB_MIN(d, prev[j - 1] + cost);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
                d = SB_MIN(d, prev2[j - 2] + 1);
            cur[j] = d;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return SB_MIN(prev[lb], limit + 1);
}

/* Returns the name closest to word if it is close enough to be a likely typo, else NULL. Short
 * words get less slack, so "x" does not suggest "id". */
static const char *closest(const char *word, const char *const *names, size_t n)
{
    size_t limit = SB_MIN((size_t)2, strlen(word) / 2);
    const char *best = NULL;
    size_t best_d = limit + 1;
    for (size_t i = 0; i < n; i++) {
        size_t d = sb__config_edit_distance(word, names[i], limit);
        if (d < best_d) {
            best = names[i];
            best_d = d;
        }
    }
    return best;
}

static const char *closest_key(const char *word, const struct sb__cfg_section *sec)
{
    const char *names[SB__CFG_MAX_KEYS];
    size_t n = SB_MIN(sec->n_keys, (size_t)SB__CFG_MAX_KEYS);
    for (size_t i = 0; i < n; i++)
        names[i] = sec->keys[i].name;
    return closest(word, names, n);
}

/* ---------------------------------------------------------------------------------------------
 * Converting scalars into fields
 * ------------------------------------------------------------------------------------------- */
static void *field_at(void *obj, size_t offset)
{
    return (char *)obj + offset;
}

/* Decimal only: "0x10" or "1e3" in a port is more likely a mistake than a wish. */
static bool parse_int(const char *s, size_t len, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (i < len && (s[i] == '-' || s[i] == '+')) {
        neg = s[i] == '-';
        i++;
    }
    if (i == len)
        return false;
    uint64_t v = 0;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned digit = (unsigned)(s[i] - '0');
        if (v > (limit - digit) / 10)
            return false;
        v = v * 10 + digit;
    }
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    return true;
}

/* YAML 1.1's spellings, which is what people who write YAML expect to work. */
static const struct {
    const char *text;
    bool value;
} bool_words[] = {
    {"true", true}, {"false", false}, {"yes", true}, {"no", false}, {"on", true}, {"off", false},
};

static void free_string_field(void *field)
{
    char *old;
    memcpy(&old, field, sizeof old);
    free(old);
}

static void set_string_field(void *field, char *s)
{
    free_string_field(field);
    memcpy(field, &s, sizeof s);
}

/* Converts text into key's field. Returns 0, SB_EINVAL when the text does not fit the key (the
 * caller reports it), or SB_ENOMEM. */
static int convert(struct parse *ps, const struct sb__cfg_key *key, const char *text, size_t len,
                   void *field)
{
    int64_t v = 0;
    switch (key->type) {
    case SB__CFG_STR: {
        /* C strings cannot carry a NUL; YAML's "\0" escape can. */
        if (memchr(text, '\0', len) != NULL)
            return SB_EINVAL;
        char *s = strndup(text, len);
        /* An empty path stays empty (it means "none", not the base folder), and a URL
         * (ledger.path: postgres://...) is not a path. */
        if (s != NULL && (key->flags & SB__CFG_PATH) && s[0] != '/' && s[0] != '\0' &&
            strstr(s, "://") == NULL && ps->base_dir != NULL) {
            char *joined = sb__config_join_path(ps->base_dir, s);
            free(s);
            s = joined;
        }
        if (s == NULL)
            return SB_ENOMEM;
        set_string_field(field, s);
        return 0;
    }
    case SB__CFG_INT:
    case SB__CFG_SIZE:
        if (!parse_int(text, len, &v) || v < key->min || v > key->max)
            return SB_EINVAL;
        if (key->type == SB__CFG_SIZE) {
            size_t z = (size_t)v;
            memcpy(field, &z, sizeof z);
        } else if (key->size == sizeof(int32_t)) {
            int32_t i32 = (int32_t)v;
            memcpy(field, &i32, sizeof i32);
        } else {
            memcpy(field, &v, sizeof v);
        }
        return 0;
    case SB__CFG_BOOL:
        for (size_t i = 0; i < SB_ARRAY_LEN(bool_words); i++) {
            if (strlen(bool_words[i].text) == len &&
                strncasecmp(text, bool_words[i].text, len) == 0) {
                memcpy(field, &bool_words[i].value, sizeof(bool));
                return 0;
            }
        }
        return SB_EINVAL;
    case SB__CFG_ENUM:
        for (size_t i = 0; key->choices[i] != NULL; i++) {
            if (strlen(key->choices[i]) == len && strncasecmp(text, key->choices[i], len) == 0) {
                char *s = strdup(key->choices[i]);
                if (s == NULL)
                    return SB_ENOMEM;
                set_string_field(field, s);
                return 0;
            }
        }
        return SB_EINVAL;
    case SB__CFG_STR_LIST:
    case SB__CFG_MAP:
    case SB__CFG_LIST: break;
    }
    return SB_EINVAL;
}

/* Fills every key's default (recursing into embedded sections). Lists start empty. */
static void apply_defaults(struct parse *ps, const struct sb__cfg_section *sec, void *obj)
{
    for (size_t i = 0; i < sec->n_keys; i++) {
        const struct sb__cfg_key *key = &sec->keys[i];
        void *field = field_at(obj, key->offset);
        if (key->type == SB__CFG_MAP) {
            apply_defaults(ps, key->section, field);
        } else if (key->def != NULL) {
            int rc = convert(ps, key, key->def, strlen(key->def), field);
            /* A default that does not convert is a bug in the table; the unit tests parse every
             * table's defaults, so this only guards against running out of memory. */
            if (rc != 0)
                ps->oom = true;
        }
    }
}

/* Expands node's scalar into ps->scalar. Returns true, or false after reporting why not. */
static bool expand_scalar(struct parse *ps, const yaml_node_t *node)
{
    struct sb_buf why;
    sb_buf_init(&why, 4096);
    sb_buf_reset(&ps->scalar);
    struct sb_str in = {(const char *)node->data.scalar.value, node->data.scalar.length};
    int rc = sb__config_expand_env(in, &ps->scalar, &why);
    if (rc == SB_ENOMEM)
        ps->oom = true;
    else if (rc == SB_ETOOBIG)
        report(ps, node->start_mark, "the value is longer than %zu bytes after ${} expansion",
               SCALAR_MAX);
    else if (rc != 0)
        report(ps, node->start_mark, "%s", why.len ? why.p : "malformed value");
    sb_buf_free(&why);
    /* An empty buffer has no bytes yet; callers want a string either way. */
    if (rc == 0 && ps->scalar.p == NULL && sb_buf_append(&ps->scalar, "", 0) != 0) {
        ps->oom = true;
        rc = SB_ENOMEM;
    }
    return rc == 0;
}

static void report_expected(struct parse *ps, const struct sb__cfg_key *key, yaml_node_t *node,
                            const char *text, size_t len)
{
    struct sb_buf msg;
    sb_buf_init(&msg, 16 << 10);
    append_expected(&msg, key);
    sb_buf_append_c(&msg, ", got ");
    if (text != NULL)
        append_quoted(&msg, text, len);
    else
        append_got(&msg, node);
    if (text != NULL && key->type == SB__CFG_ENUM) {
        size_t n = 0;
        while (key->choices[n] != NULL)
            n++;
        const char *hint = closest(text, key->choices, n);
        if (hint != NULL)
            sb_buf_printf(&msg, "; did you mean \"%s\"?", hint);
    }
    report(ps, node->start_mark, "%s", msg.p != NULL ? msg.p : "unexpected value");
    sb_buf_free(&msg);
}

/* ---------------------------------------------------------------------------------------------
 * Walking the document
 * ------------------------------------------------------------------------------------------- */
static void parse_value(struct parse *ps, const struct sb__cfg_key *key, void *obj,
                        yaml_node_t *node);

static yaml_node_t *node_at(struct parse *ps, int index)
{
    return yaml_document_get_node(ps->doc, index);
}

static ptrdiff_t find_key(const struct sb__cfg_section *sec, const char *name)
{
    for (size_t i = 0; i < sec->n_keys; i++)
        if (strcmp(sec->keys[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

/* Fills obj from a mapping node. values receives each key's value node (by key index), for the
 * caller's checks across entries. */
static void parse_mapping(struct parse *ps, const struct sb__cfg_section *sec, void *obj,
                          yaml_node_t *map, yaml_node_t **values)
{
    const yaml_node_t *key_nodes[SB__CFG_MAX_KEYS] = {0};
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = node_at(ps, pair->key);
        yaml_node_t *v = node_at(ps, pair->value);
        if (k->type != YAML_SCALAR_NODE) {
            struct sb_buf got;
            sb_buf_init(&got, 256);
            append_got(&got, k);
            report(ps, k->start_mark, "expected a key name, got %s", got.p ? got.p : "?");
            sb_buf_free(&got);
            continue;
        }
        const char *name = (const char *)k->data.scalar.value;
        ptrdiff_t idx = find_key(sec, name);
        size_t old = path_push_key(ps, name);
        if (idx < 0) {
            const char *hint = closest_key(name, sec);
            if (hint != NULL) {
                report(ps, k->start_mark, "unknown key; did you mean \"%s\"?", hint);
            } else {
                struct sb_buf names;
                sb_buf_init(&names, 4096);
                append_key_names(&names, sec);
                report(ps, k->start_mark, "unknown key; expected one of %s",
                       names.p ? names.p : "?");
                sb_buf_free(&names);
            }
        } else if (values[idx] != NULL) {
            report(ps, k->start_mark, "the key appears twice (first at %zu:%zu); expected it once",
                   key_nodes[idx]->start_mark.line + 1, key_nodes[idx]->start_mark.column + 1);
        } else {
            values[idx] = v;
            key_nodes[idx] = k;
            parse_value(ps, &sec->keys[idx], obj, v);
        }
        path_pop(ps, old);
    }
    for (size_t i = 0; i < sec->n_keys; i++) {
        const struct sb__cfg_key *key = &sec->keys[i];
        if ((key->flags & SB__CFG_REQUIRED) && values[i] == NULL)
            report(ps, map->start_mark, "missing required key \"%s\" (%s)", key->name, key->doc);
    }
    if (sec->check != NULL) {
        struct sb__cfg_check chk = {ps, sec, values, map};
        sec->check(&chk, obj);
    }
}

/* Parses a sequence of section entries into a new array at key's field. */
static void parse_list(struct parse *ps, const struct sb__cfg_key *key, void *obj,
                       yaml_node_t *node)
{
    const struct sb__cfg_section *sec = key->section;
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    char *arr = n > 0 ? calloc(n, sec->size) : NULL;
    yaml_node_t **uniq = n > 0 && sec->unique_key != NULL ? calloc(n, sizeof *uniq) : NULL;
    ptrdiff_t uidx = sec->unique_key != NULL ? find_key(sec, sec->unique_key) : -1;
    if (n > 0 && (arr == NULL || (uidx >= 0 && uniq == NULL))) {
        ps->oom = true;
        free(arr);
        free(uniq);
        return;
    }
    /* The array is in place before its entries fill, so a failure part-way frees cleanly. */
    memcpy(field_at(obj, key->offset), &arr, sizeof arr);
    memcpy(field_at(obj, key->count_offset), &n, sizeof n);

    for (size_t i = 0; i < n; i++) {
        void *entry = arr + i * sec->size;
        yaml_node_t *item = node_at(ps, node->data.sequence.items.start[i]);
        apply_defaults(ps, sec, entry);
        if (sec->line_offset != 0) {
            int line = (int)item->start_mark.line + 1;
            memcpy(field_at(entry, sec->line_offset), &line, sizeof line);
        }
        if (sec->column_offset != 0) {
            int column = (int)item->start_mark.column + 1;
            memcpy(field_at(entry, sec->column_offset), &column, sizeof column);
        }
        size_t old = path_push(ps, "[%zu]", i);
        if (item->type != YAML_MAPPING_NODE) {
            report_expected(ps, key, item, NULL, 0);
            path_pop(ps, old);
            continue;
        }
        yaml_node_t *values[SB__CFG_MAX_KEYS] = {0};
        parse_mapping(ps, sec, entry, item, values);
        if (uidx >= 0) {
            const struct sb__cfg_key *ukey = &sec->keys[uidx];
            const char *mine;
            memcpy(&mine, field_at(entry, ukey->offset), sizeof mine);
            uniq[i] = mine != NULL ? values[uidx] : NULL;
            for (size_t j = 0; j < i && uniq[i] != NULL; j++) {
                const char *theirs;
                memcpy(&theirs, field_at(arr + j * sec->size, ukey->offset), sizeof theirs);
                if (uniq[j] == NULL || strcmp(mine, theirs) != 0)
                    continue;
                size_t at = path_push_key(ps, ukey->name);
                report(ps, uniq[i]->start_mark,
                       "\"%s\" is already the %s of %s[%zu] at %s:%zu:%zu; expected each %s once",
                       mine, ukey->name, key->name, j, ps->name, uniq[j]->start_mark.line + 1,
                       uniq[j]->start_mark.column + 1, ukey->name);
                path_pop(ps, at);
                break;
            }
        }
        path_pop(ps, old);
    }
    free(uniq);
}

/* Parses a sequence of scalars into a new array of strings at key's field. */
static void parse_str_list(struct parse *ps, const struct sb__cfg_key *key, void *obj,
                           yaml_node_t *node)
{
    size_t n = (size_t)(node->data.sequence.items.top - node->data.sequence.items.start);
    char **arr = n > 0 ? calloc(n, sizeof *arr) : NULL;
    if (n > 0 && arr == NULL) {
        ps->oom = true;
        return;
    }
    memcpy(field_at(obj, key->offset), &arr, sizeof arr);
    memcpy(field_at(obj, key->count_offset), &n, sizeof n);
    /* Each element converts as a STR key with the list's flags would. */
    struct sb__cfg_key elem = {.name = key->name, .type = SB__CFG_STR, .flags = key->flags};
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *item = node_at(ps, node->data.sequence.items.start[i]);
        size_t old = path_push(ps, "[%zu]", i);
        if (item->type != YAML_SCALAR_NODE || is_null(item)) {
            report_expected(ps, &elem, item, NULL, 0);
        } else if (expand_scalar(ps, item)) {
            int rc = convert(ps, &elem, ps->scalar.p, ps->scalar.len, &arr[i]);
            if (rc == SB_ENOMEM)
                ps->oom = true;
            else if (rc != 0)
                report_expected(ps, &elem, item, ps->scalar.p, ps->scalar.len);
        }
        path_pop(ps, old);
    }
}

/* Frees what a list or string field holds before a new value replaces it. */
static void free_fields(const struct sb__cfg_section *sec, void *obj);

static void free_value(const struct sb__cfg_key *key, void *obj)
{
    void *field = field_at(obj, key->offset);
    size_t count = 0;
    if (key->type == SB__CFG_STR_LIST || key->type == SB__CFG_LIST)
        memcpy(&count, field_at(obj, key->count_offset), sizeof count);
    switch (key->type) {
    case SB__CFG_STR:
    case SB__CFG_ENUM: set_string_field(field, NULL); break;
    case SB__CFG_STR_LIST: {
        char **arr;
        memcpy(&arr, field, sizeof arr);
        for (size_t i = 0; i < count; i++)
            free(arr[i]);
        free(arr);
        break;
    }
    case SB__CFG_LIST: {
        char *arr;
        memcpy(&arr, field, sizeof arr);
        for (size_t i = 0; i < count; i++)
            free_fields(key->section, arr + i * key->section->size);
        free(arr);
        break;
    }
    case SB__CFG_MAP: free_fields(key->section, field); return;
    case SB__CFG_INT:
    case SB__CFG_SIZE:
    case SB__CFG_BOOL: return;
    }
    if (key->type == SB__CFG_STR_LIST || key->type == SB__CFG_LIST) {
        void *null = NULL;
        size_t zero = 0;
        memcpy(field, &null, sizeof null);
        memcpy(field_at(obj, key->count_offset), &zero, sizeof zero);
    }
}

static void free_fields(const struct sb__cfg_section *sec, void *obj)
{
    for (size_t i = 0; i < sec->n_keys; i++)
        free_value(&sec->keys[i], obj);
}

static void parse_value(struct parse *ps, const struct sb__cfg_key *key, void *obj,
                        yaml_node_t *node)
{
    switch (key->type) {
    case SB__CFG_MAP: {
        /* An empty section ("listen:") keeps its defaults. */
        if (is_null(node))
            return;
        if (node->type != YAML_MAPPING_NODE) {
            report_expected(ps, key, node, NULL, 0);
            return;
        }
        yaml_node_t *values[SB__CFG_MAX_KEYS] = {0};
        parse_mapping(ps, key->section, field_at(obj, key->offset), node, values);
        return;
    }
    case SB__CFG_LIST:
    case SB__CFG_STR_LIST:
        free_value(key, obj);
        /* An empty list ("models:") is no entries. */
        if (is_null(node))
            return;
        if (node->type != YAML_SEQUENCE_NODE) {
            report_expected(ps, key, node, NULL, 0);
            return;
        }
        if (key->type == SB__CFG_LIST)
            parse_list(ps, key, obj, node);
        else
            parse_str_list(ps, key, obj, node);
        return;
    case SB__CFG_STR:
    case SB__CFG_INT:
    case SB__CFG_SIZE:
    case SB__CFG_BOOL:
    case SB__CFG_ENUM: break;
    }
    if (node->type != YAML_SCALAR_NODE || is_null(node)) {
        report_expected(ps, key, node, NULL, 0);
        return;
    }
    if (!expand_scalar(ps, node))
        return;
    int rc = convert(ps, key, ps->scalar.p, ps->scalar.len, field_at(obj, key->offset));
    if (rc == SB_ENOMEM)
        ps->oom = true;
    else if (rc != 0)
        report_expected(ps, key, node, ps->scalar.p, ps->scalar.len);
}

/* ---------------------------------------------------------------------------------------------
 * Rules across keys
 * ------------------------------------------------------------------------------------------- */
static void check_report(struct sb__cfg_check *chk, const char *key, const char *fmt, ...)
    SB_PRINTF(3, 4);

/* Reports a problem at key's value (or at the entry when key is NULL or absent). */
static void check_report(struct sb__cfg_check *chk, const char *key, const char *fmt, ...)
{
    struct parse *ps = chk->ps;
    ptrdiff_t idx = key != NULL ? find_key(chk->sec, key) : -1;
    yaml_mark_t mark =
        idx >= 0 && chk->values[idx] != NULL ? chk->values[idx]->start_mark : chk->map->start_mark;
    size_t old = idx >= 0 && chk->values[idx] != NULL ? path_push_key(ps, key) : ps->path_len;
    struct sb_buf msg;
    sb_buf_init(&msg, 16 << 10);
    va_list ap;
    va_start(ap, fmt);
    sb_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    report(ps, mark, "%s", msg.p != NULL ? msg.p : "invalid entry");
    sb_buf_free(&msg);
    path_pop(ps, old);
}

static bool check_has(const struct sb__cfg_check *chk, const char *key)
{
    ptrdiff_t idx = find_key(chk->sec, key);
    return idx >= 0 && chk->values[idx] != NULL;
}

/* A model's backend must be a known kind, and the entry must carry what that kind needs. */
static void check_model(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_model_config *m = entry;
    /* A missing or malformed backend was reported already. */
    if (m->backend == NULL)
        return;
    const struct sb__backend_kind *kind = NULL;
    const char *names[SB_ARRAY_LEN(backend_kinds)];
    for (size_t i = 0; i < SB_ARRAY_LEN(backend_kinds); i++) {
        names[i] = backend_kinds[i].name;
        if (strcmp(m->backend, backend_kinds[i].name) == 0)
            kind = &backend_kinds[i];
    }
    if (kind == NULL) {
        struct sb_buf msg;
        sb_buf_init(&msg, 4096);
        sb_buf_append_c(&msg, "unknown backend ");
        append_quoted(&msg, m->backend, strlen(m->backend));
        const char *hint = closest(m->backend, names, SB_ARRAY_LEN(names));
        if (hint != NULL) {
            sb_buf_printf(&msg, "; did you mean \"%s\"?", hint);
        } else {
            sb_buf_append_c(&msg, "; expected one of ");
            for (size_t i = 0; i < SB_ARRAY_LEN(names); i++)
                sb_buf_printf(&msg, "%s%s", i > 0 ? ", " : "", names[i]);
        }
        check_report(chk, "backend", "%s", msg.p != NULL ? msg.p : "unknown backend");
        sb_buf_free(&msg);
        return;
    }
    for (size_t i = 0; kind->required[i] != NULL; i++) {
        const char *need = kind->required[i];
        if (check_has(chk, need))
            continue;
        ptrdiff_t idx = find_key(chk->sec, need);
        check_report(chk, NULL, "missing key \"%s\", which backend \"%s\" needs (%s)", need,
                     kind->name, idx >= 0 ? chk->sec->keys[idx].doc : "");
    }
    if (m->base_url != NULL && strncmp(m->base_url, "http://", 7) != 0 &&
        strncmp(m->base_url, "https://", 8) != 0)
        check_report(chk, "base_url", "expected an http:// or https:// URL, got \"%s\"",
                     m->base_url);
    if (m->retries.max_ms < m->retries.base_ms)
        check_report(chk, "retries",
                     "max_ms (%u) is less than base_ms (%u); expected max_ms >= "
                     "base_ms",
                     (unsigned)m->retries.max_ms, (unsigned)m->retries.base_ms);
}

static void check_decimals(struct sb__cfg_check *chk, void *entry)
{
    for (size_t i = 0; i < chk->sec->n_keys; i++) {
        const struct sb__cfg_key *key = &chk->sec->keys[i];
        const char *text;
        int64_t v = 0;
        if (key->type != SB__CFG_STR || key->max <= 0 || chk->values[i] == NULL)
            continue;
        memcpy(&text, field_at(entry, key->offset), sizeof text);
        if (text == NULL || (sb_config_parse_micros(text, key->max, &v) == 0 && v >= key->min))
            continue;
        struct sb_buf msg;
        sb_buf_init(&msg, 4096);
        sb_buf_append_c(&msg, "expected a decimal number ");
        if (key->min > 0) {
            sb_buf_append_c(&msg, "above 0 and at most ");
        } else {
            sb_buf_append_c(&msg, "from 0 to ");
        }
        sb_config_format_micros(&msg, key->max);
        sb_buf_append_c(&msg, " with at most 6 decimal places, got ");
        append_quoted(&msg, text, strlen(text));
        check_report(chk, key->name, "%s", msg.p != NULL ? msg.p : "expected a decimal number");
        sb_buf_free(&msg);
    }
}

/* The spike detector's rules across keys: a valid factor is above 1; the window is shorter than
 * the baseline it is compared with. */
static void check_alerts_spike(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_alerts_spike_config *sc = entry;
    int64_t factor = 0;

    check_decimals(chk, entry);
    /* A factor that is not a decimal was reported by check_decimals. */
    if (sc->factor != NULL && sb_config_parse_micros(sc->factor, MICROS(1000000), &factor) == 0 &&
        factor <= MICROS(1))
        check_report(chk, "factor", "expected a factor above 1, got \"%s\"", sc->factor);
    if (sc->window_s >= sc->baseline_s)
        check_report(chk, "window_s",
                     "window_s (%d) is not less than baseline_s (%d); expected a window shorter "
                     "than the baseline it is compared with",
                     (int)sc->window_s, (int)sc->baseline_s);
}

static void check_alerts(struct sb__cfg_check *chk, void *entry)
{
    struct sb_alerts_config *ac = entry;

    ac->enabled = true;
    if (ac->webhook_url == NULL)
        return;
    const char *u = ac->webhook_url;
    size_t scheme = strncmp(u, "http://", 7) == 0 ? 7 : strncmp(u, "https://", 8) == 0 ? 8 : 0;
    /* The URL is a secret (a Slack webhook's path is its token): messages do not repeat it. */
    if (scheme == 0 || u[scheme] == '\0')
        check_report(chk, "webhook_url", "expected an http:// or https:// URL");
}

/* A team's amount is a decimal; its name is what `keys create --team` accepts: 1 to 64 letters,
 * digits, '.', '_' or '-'. */
static void check_budget_team(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_budget_team_config *t = entry;
    size_t n = t->name != NULL ? strlen(t->name) : 0;

    check_decimals(chk, entry);
    if (t->name == NULL)
        return;
    bool ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++) {
        char c = t->name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '_' || c == '-';
    }
    if (!ok)
        check_report(chk, "name",
                     "expected 1 to 64 letters, digits, '.', '_' or '-' (as keys name teams), "
                     "got \"%s\"",
                     t->name);
}

/* ---------------------------------------------------------------------------------------------
 * Fallback chains: checked once every model is read, since they name each other.
 * ------------------------------------------------------------------------------------------- */
/* The value node of key in the mapping node map, or NULL. */
static yaml_node_t *mapping_value(struct parse *ps, const yaml_node_t *map, const char *key)
{
    if (map == NULL || map->type != YAML_MAPPING_NODE)
        return NULL;
    for (yaml_node_pair_t *pair = map->data.mapping.pairs.start; pair < map->data.mapping.pairs.top;
         pair++) {
        yaml_node_t *k = node_at(ps, pair->key);
        if (k->type == YAML_SCALAR_NODE && strcmp((const char *)k->data.scalar.value, key) == 0)
            return node_at(ps, pair->value);
    }
    return NULL;
}

/* The i-th item of a sequence node, or NULL. */
static yaml_node_t *sequence_item(struct parse *ps, const yaml_node_t *seq, size_t i)
{
    if (seq == NULL || seq->type != YAML_SEQUENCE_NODE ||
        i >= (size_t)(seq->data.sequence.items.top - seq->data.sequence.items.start))
        return NULL;
    return node_at(ps, seq->data.sequence.items.start[i]);
}

struct fallback_walk {
    struct sb__cfg_check *chk;
    const struct sb_config *cfg;
    const yaml_node_t *models; /* the `models` sequence node */
    unsigned char *state;      /* per model: 0 unvisited, 1 on the path, 2 done */
    size_t *path;              /* the models on the current path, in order */
};

static ptrdiff_t model_index(const struct sb_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (cfg->models[i].name != NULL && strcmp(cfg->models[i].name, name) == 0)
            return (ptrdiff_t)i;
    return -1;
}

static void fallback_report(struct fallback_walk *w, size_t model, size_t item, const char *msg)
{
    struct parse *ps = w->chk->ps;
    yaml_node_t *entry = sequence_item(ps, w->models, model);
    yaml_node_t *node = sequence_item(ps, mapping_value(ps, entry, "fallback"), item);
    yaml_mark_t mark = node != NULL ? node->start_mark : w->chk->map->start_mark;
    size_t old = path_push(ps, "models[%zu].fallback[%zu]", model, item);
    report(ps, mark, "%s", msg);
    path_pop(ps, old);
}

/* Names that are not models, a model naming itself, and names listed twice. */
static void fallback_check_names(struct fallback_walk *w, size_t v)
{
    const struct sb_model_config *m = &w->cfg->models[v];
    struct sb_buf msg;
    sb_buf_init(&msg, 4096);
    for (size_t j = 0; j < m->n_fallback; j++) {
        const char *name = m->fallback[j];
        if (name == NULL)
            continue;
        sb_buf_reset(&msg);
        ptrdiff_t target = model_index(w->cfg, name);
        bool twice = false;
        for (size_t k = 0; k < j && !twice; k++)
            twice = m->fallback[k] != NULL && strcmp(m->fallback[k], name) == 0;
        if (target < 0) {
            sb_buf_append_c(&msg, "unknown model ");
            append_quoted(&msg, name, strlen(name));
            sb_buf_append_c(&msg, "; expected the name of another model in this file");
            const char *names[64];
            size_t n = 0;
            for (size_t i = 0; i < w->cfg->n_models && n < SB_ARRAY_LEN(names); i++)
                if (w->cfg->models[i].name != NULL)
                    names[n++] = w->cfg->models[i].name;
            const char *hint = closest(name, names, n);
            if (hint != NULL)
                sb_buf_printf(&msg, "; did you mean \"%s\"?", hint);
        } else if ((size_t)target == v) {
            sb_buf_append_c(&msg, "a model cannot fall back to itself; expected another model");
        } else if (twice) {
            sb_buf_append_c(&msg, "the model is listed twice; expected each model once");
        } else {
            continue;
        }
        fallback_report(w, v, j, msg.p != NULL ? msg.p : "invalid fallback");
    }
    sb_buf_free(&msg);
}

/* Depth-first walk that reports each cycle once, at the entry that closes it. */
static void fallback_visit(struct fallback_walk *w, size_t v, size_t depth)
{
    const struct sb_model_config *m = &w->cfg->models[v];
    w->state[v] = 1;
    w->path[depth] = v;
    for (size_t j = 0; j < m->n_fallback; j++) {
        ptrdiff_t t = m->fallback[j] != NULL ? model_index(w->cfg, m->fallback[j]) : -1;
        if (t < 0 || (size_t)t == v)
            continue; /* reported by fallback_check_names */
        if (w->state[t] == 0) {
            fallback_visit(w, (size_t)t, depth + 1);
        } else if (w->state[t] == 1) {
            struct sb_buf msg;
            sb_buf_init(&msg, 16 << 10);
            sb_buf_append_c(&msg, "a fallback cycle: ");
            size_t from = 0;
            while (w->path[from] != (size_t)t)
                from++;
            for (size_t k = from; k <= depth; k++)
                sb_buf_printf(&msg, "%s -> ", w->cfg->models[w->path[k]].name);
            sb_buf_printf(&msg, "%s; expected every chain to end", w->cfg->models[t].name);
            fallback_report(w, v, j, msg.p != NULL ? msg.p : "a fallback cycle");
            sb_buf_free(&msg);
        }
    }
    w->state[v] = 2;
}

static void check_policy_refs(struct sb__cfg_check *chk, const struct sb_config *cfg);

static void check_root(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_config *cfg = entry;
    check_policy_refs(chk, cfg);
    ptrdiff_t idx = find_key(chk->sec, "models");
    if (cfg->n_models == 0 || idx < 0)
        return;
    struct fallback_walk w = {chk, cfg, chk->values[idx], NULL, NULL};
    w.state = calloc(cfg->n_models, sizeof *w.state);
    w.path = calloc(cfg->n_models, sizeof *w.path);
    if (w.state == NULL || w.path == NULL) {
        chk->ps->oom = true;
        goto fail;
    }
    for (size_t v = 0; v < cfg->n_models; v++)
        fallback_check_names(&w, v);
    for (size_t v = 0; v < cfg->n_models; v++)
        if (w.state[v] == 0)
            fallback_visit(&w, v, 0);
fail:
    free(w.state);
    free(w.path);
}

/* ---------------------------------------------------------------------------------------------
 * Privacy: names and regexes are checked here, so that `config check` (and a server that would
 * otherwise start) names the line of a pattern that does not compile.
 * ------------------------------------------------------------------------------------------- */
static void check_privacy_pattern(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_privacy_pattern_config *pc = entry;
    if (pc->name != NULL) {
        size_t n = strlen(pc->name);
        bool ok = n > 0 && n <= SB_PRIVACY_NAME_MAX &&
                  ((pc->name[0] >= 'a' && pc->name[0] <= 'z') ||
                   (pc->name[0] >= 'A' && pc->name[0] <= 'Z'));
        for (size_t i = 0; i < n && ok; i++) {
            char c = pc->name[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_';
        }
        size_t nb = 0;
        const char *const *builtin = sb_privacy_detector_names(&nb);
        bool taken = strcasecmp(pc->name, "term") == 0;
        for (size_t i = 0; i < nb && !taken; i++)
            taken = strcasecmp(pc->name, builtin[i]) == 0;
        if (!ok)
            check_report(chk, "name",
                         "expected letters, digits and '_', starting with a letter, at most %d "
                         "bytes (it becomes the placeholder tag), got \"%s\"",
                         SB_PRIVACY_NAME_MAX, pc->name);
        else if (taken)
            check_report(chk, "name", "\"%s\" is a built-in kind; expected another name", pc->name);
    }
    if (pc->regex != NULL) {
        char why[512];
        int rc = sb_privacy_check_pattern(pc->regex, why, sizeof why);
        if (rc == SB_ENOMEM)
            chk->ps->oom = true;
        else if (rc != 0)
            check_report(chk, "regex",
                         "the pattern does not compile: %s; expected a Vectorscan regex (PCRE "
                         "without back-references or look-around, not matching empty text)",
                         why);
    }
}

static void check_privacy(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_privacy_config *pc = entry;
    char why[256];
    if (sb_privacy_check_detectors((const char *const *)pc->detectors, pc->n_detectors, why,
                                   sizeof why) != 0) {
        size_t nb = 0;
        const char *const *builtin = sb_privacy_detector_names(&nb);
        struct sb_buf msg;
        sb_buf_init(&msg, 4096);
        sb_buf_append_c(&msg, why);
        for (size_t i = 0; i < pc->n_detectors; i++) {
            const char *d = pc->detectors[i];
            const char *hint = d != NULL ? closest(d, builtin, nb) : NULL;
            if (d != NULL && sb_privacy_detector_find(d) < 0 && hint != NULL) {
                sb_buf_printf(&msg, "; did you mean \"%s\"?", hint);
                break;
            }
        }
        sb_buf_append_c(&msg, "; expected [none] or some of ");
        for (size_t i = 0; i < nb; i++)
            sb_buf_printf(&msg, "%s%s", i > 0 ? ", " : "", builtin[i]);
        check_report(chk, "detectors", "%s", msg.p != NULL ? msg.p : why);
        sb_buf_free(&msg);
    }
    for (size_t i = 0; i < pc->n_custom_terms; i++)
        if (pc->custom_terms[i] != NULL &&
            (pc->custom_terms[i][0] == '\0' || strlen(pc->custom_terms[i]) > 256))
            check_report(chk, "custom_terms", "custom_terms[%zu]: expected 1 to 256 bytes", i);
    if (pc->n_custom_terms > SB_PRIVACY_MAX_TERMS)
        check_report(chk, "custom_terms", "%zu terms; expected at most %d", pc->n_custom_terms,
                     SB_PRIVACY_MAX_TERMS);
    if (pc->n_custom_patterns > SB_PRIVACY_MAX_PATTERNS)
        check_report(chk, "custom_patterns", "%zu patterns; expected at most %d",
                     pc->n_custom_patterns, SB_PRIVACY_MAX_PATTERNS);
    /* Names that differ only in case would share a placeholder tag (exact repeats were
     * reported already). */
    for (size_t i = 0; i < pc->n_custom_patterns; i++) {
        const char *a = pc->custom_patterns[i].name;
        for (size_t j = 0; j < i && a != NULL; j++) {
            const char *b = pc->custom_patterns[j].name;
            if (b != NULL && strcmp(a, b) != 0 && strcasecmp(a, b) == 0) {
                check_report(chk, "custom_patterns",
                             "custom_patterns[%zu] (line %d): \"%s\" and \"%s\" (line %d) make "
                             "the same placeholder tag; expected names that differ in more than "
                             "case",
                             i, pc->custom_patterns[i].line, a, b, pc->custom_patterns[j].line);
                break;
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * Policy: what an entry can tell alone is checked with it; names of models and PII kinds once the
 * whole file is read (check_policy_refs, from check_root).
 * ------------------------------------------------------------------------------------------- */
/* The sensitivity labels; route/route.c parses the same three (config does not depend on it). */
static const char *const sensitivity_names[] = {"low", "medium", "high"};

/* Ids go into a response header and messages: a small, safe alphabet. */
#define POLICY_ID_MAX 64

static void report_item(struct parse *ps, const yaml_node_t *item, const yaml_node_t *fallback,
                        const char *fmt, ...) SB_PRINTF(4, 5);

/* Reports at item (a list element) or, when it is unknown, at fallback. */
static void report_item(struct parse *ps, const yaml_node_t *item, const yaml_node_t *fallback,
                        const char *fmt, ...)
{
    struct sb_buf msg;
    sb_buf_init(&msg, 16 << 10);
    va_list ap;
    va_start(ap, fmt);
    sb_buf_vprintf(&msg, fmt, ap);
    va_end(ap);
    report(ps, item != NULL ? item->start_mark : fallback->start_mark, "%s",
           msg.p != NULL ? msg.p : "invalid value");
    sb_buf_free(&msg);
}

/* Reports a problem with element i of the list at key (of the entry being checked). */
static void check_report_item(struct sb__cfg_check *chk, const char *key, size_t i, const char *msg)
{
    ptrdiff_t idx = find_key(chk->sec, key);
    const yaml_node_t *list = idx >= 0 ? chk->values[idx] : NULL;
    const yaml_node_t *item = sequence_item(chk->ps, list, i);
    size_t old = path_push(chk->ps, "%s%s[%zu]", chk->ps->path_len > 0 ? "." : "", key, i);
    report_item(chk->ps, item, list != NULL ? list : chk->map, "%s", msg);
    path_pop(chk->ps, old);
}

static void check_policy_when(struct sb__cfg_check *chk, void *entry)
{
    struct sb_policy_when_config *w = entry;
    w->has_min_prompt_tokens = check_has(chk, "min_prompt_tokens");
    w->has_max_prompt_tokens = check_has(chk, "max_prompt_tokens");
    w->has_min_max_tokens = check_has(chk, "min_max_tokens");
    w->has_tools = check_has(chk, "tools");
    check_decimals(chk, entry);
    /* An empty list would match no request at all, which is never what was meant. */
    for (size_t i = 0; i < chk->sec->n_keys; i++) {
        const struct sb__cfg_key *key = &chk->sec->keys[i];
        size_t count;
        if (key->type != SB__CFG_STR_LIST || chk->values[i] == NULL)
            continue;
        memcpy(&count, field_at(entry, key->count_offset), sizeof count);
        if (count == 0)
            check_report(chk, key->name,
                         "an empty list matches no request; expected at least one value, or no "
                         "\"%s\" key (any value)",
                         key->name);
    }
    struct sb_buf msg;
    sb_buf_init(&msg, 4096);
    for (size_t i = 0; i < w->n_sensitivity; i++) {
        const char *v = w->sensitivity[i];
        bool known = false;
        for (size_t k = 0; k < SB_ARRAY_LEN(sensitivity_names) && v != NULL && !known; k++)
            known = strcmp(v, sensitivity_names[k]) == 0;
        if (known || v == NULL)
            continue;
        sb_buf_reset(&msg);
        sb_buf_append_c(&msg, "unknown sensitivity ");
        append_quoted(&msg, v, strlen(v));
        const char *hint = closest(v, sensitivity_names, SB_ARRAY_LEN(sensitivity_names));
        if (hint != NULL)
            sb_buf_printf(&msg, "; did you mean \"%s\"?", hint);
        sb_buf_append_c(&msg, "; expected low, medium or high");
        check_report_item(chk, "sensitivity", i, msg.p != NULL ? msg.p : "unknown sensitivity");
    }
    sb_buf_free(&msg);
    if (w->has_min_prompt_tokens && w->has_max_prompt_tokens &&
        w->min_prompt_tokens > w->max_prompt_tokens)
        check_report(chk, "min_prompt_tokens",
                     "min_prompt_tokens (%lld) is above max_prompt_tokens (%lld), so no prompt "
                     "matches; expected min_prompt_tokens <= max_prompt_tokens",
                     (long long)w->min_prompt_tokens, (long long)w->max_prompt_tokens);
}

static void check_policy_action(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_policy_action_config *a = entry;
    if (a->deny != NULL && a->deny[0] == '\0')
        check_report(chk, "deny", "an empty reason; expected what the client is told (403)");
    if (check_has(chk, "route") && a->n_route == 0)
        check_report(chk, "route",
                     "an empty list routes nowhere; expected at least one model, or "
                     "deny: \"reason\"");
    if (a->n_route > SB_POLICY_MAX_ROUTE)
        check_report(chk, "route", "%zu models; expected at most %d", a->n_route,
                     SB_POLICY_MAX_ROUTE);
    if (a->deny != NULL && a->n_route > 0)
        check_report(chk, "deny", "deny and route exclude each other; expected one of them");
    if (a->deny != NULL && a->pseudonymize)
        check_report(chk, "deny",
                     "pseudonymize does nothing for a denied request; expected deny alone");
    for (size_t j = 0; j < a->n_route; j++) {
        bool twice = false;
        for (size_t k = 0; k < j && !twice && a->route[j] != NULL; k++)
            twice = a->route[k] != NULL && strcmp(a->route[k], a->route[j]) == 0;
        if (twice)
            check_report_item(chk, "route", j,
                              "the model is listed twice; expected each model once");
    }
}

static void check_policy_rule(struct sb__cfg_check *chk, void *entry)
{
    const struct sb_policy_rule_config *r = entry;
    if (r->id != NULL) {
        size_t n = strlen(r->id);
        bool ok = n > 0 && n <= POLICY_ID_MAX;
        for (size_t i = 0; i < n && ok; i++) {
            char c = r->id[i];
            ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.';
        }
        if (!ok)
            check_report(chk, "id",
                         "expected 1 to %d letters, digits, '-', '_' or '.' (the id goes into the "
                         "x-switchboard-route header), got \"%s\"",
                         POLICY_ID_MAX, r->id);
        else if (strcmp(r->id, "default") == 0)
            check_report(chk, "id",
                         "\"default\" names the default policy in explanations; expected another "
                         "id");
    }
    /* A missing action was reported as a missing required key; an empty one is reported here. */
    const struct sb_policy_action_config *a = &r->action;
    ptrdiff_t idx = find_key(chk->sec, "action");
    const yaml_node_t *action = idx >= 0 ? chk->values[idx] : NULL;
    /* An empty route list was reported by check_policy_action already. */
    if (action != NULL && a->n_route == 0 && a->deny == NULL && !a->pseudonymize &&
        mapping_value(chk->ps, action, "route") == NULL)
        check_report(chk, "action",
                     "the rule has no action; expected route: [models], deny: \"reason\" or "
                     "pseudonymize: true");
}

/* Appends "; did you mean ...?" for an unknown model name. */
static void append_model_hint(struct sb_buf *msg, const struct sb_config *cfg, const char *name)
{
    const char *names[64];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_models && n < SB_ARRAY_LEN(names); i++)
        if (cfg->models[i].name != NULL)
            names[n++] = cfg->models[i].name;
    const char *hint = closest(name, names, n);
    if (hint != NULL)
        sb_buf_printf(msg, "; did you mean \"%s\"?", hint);
}

/* True when name is a PII kind a rule may name: a built-in detector, "term", or a custom pattern
 * of this file. */
static bool pii_kind_known(const struct sb_config *cfg, const char *name)
{
    if (sb_privacy_detector_find(name) >= 0 || strcmp(name, "term") == 0)
        return true;
    for (size_t i = 0; i < cfg->privacy.n_custom_patterns; i++)
        if (cfg->privacy.custom_patterns[i].name != NULL &&
            strcmp(cfg->privacy.custom_patterns[i].name, name) == 0)
            return true;
    return false;
}

static void append_pii_kinds(struct sb_buf *msg, const struct sb_config *cfg, const char *name)
{
    size_t nb = 0;
    const char *const *builtin = sb_privacy_detector_names(&nb);
    const char *names[SB_PRIVACY_MAX_KINDS];
    size_t n = 0;
    for (size_t i = 0; i < nb && n < SB_ARRAY_LEN(names); i++)
        names[n++] = builtin[i];
    if (n < SB_ARRAY_LEN(names))
        names[n++] = "term";
    for (size_t i = 0; i < cfg->privacy.n_custom_patterns && n < SB_ARRAY_LEN(names); i++)
        if (cfg->privacy.custom_patterns[i].name != NULL)
            names[n++] = cfg->privacy.custom_patterns[i].name;
    const char *hint = closest(name, names, n);
    if (hint != NULL)
        sb_buf_printf(msg, "; did you mean \"%s\"?", hint);
    sb_buf_append_c(msg, "; expected one of ");
    for (size_t i = 0; i < n; i++)
        sb_buf_printf(msg, "%s%s", i > 0 ? ", " : "", names[i]);
}

/* Where the names of one list of a rule are checked: the list's field, and how to judge a name. */
struct policy_names {
    const char *map;  /* "when" or "action" */
    const char *list; /* the key of the list in it */
    size_t field;     /* offset of the char ** in struct sb_policy_rule_config */
    size_t count;     /* offset of its size_t count */
    bool pii;         /* names are PII kinds, else models */
};

static const struct policy_names policy_name_lists[] = {
    {"when", "model", offsetof(struct sb_policy_rule_config, when.model),
     offsetof(struct sb_policy_rule_config, when.n_model), false},
    {"when", "pii", offsetof(struct sb_policy_rule_config, when.pii),
     offsetof(struct sb_policy_rule_config, when.n_pii), true},
    {"action", "route", offsetof(struct sb_policy_rule_config, action.route),
     offsetof(struct sb_policy_rule_config, action.n_route), false},
};

static void check_policy_refs(struct sb__cfg_check *chk, const struct sb_config *cfg)
{
    struct parse *ps = chk->ps;
    const yaml_node_t *rules = mapping_value(ps, mapping_value(ps, chk->map, "policy"), "rules");
    struct sb_buf msg;
    sb_buf_init(&msg, 16 << 10);
    for (size_t i = 0; i < cfg->policy.n_rules; i++) {
        struct sb_policy_rule_config *r = &cfg->policy.rules[i];
        const yaml_node_t *item = sequence_item(ps, rules, i);
        for (size_t l = 0; l < SB_ARRAY_LEN(policy_name_lists); l++) {
            const struct policy_names *pl = &policy_name_lists[l];
            char **names;
            size_t n;
            memcpy(&names, field_at(r, pl->field), sizeof names);
            memcpy(&n, field_at(r, pl->count), sizeof n);
            const yaml_node_t *list = mapping_value(ps, mapping_value(ps, item, pl->map), pl->list);
            for (size_t j = 0; j < n; j++) {
                const char *name = names[j];
                if (name == NULL ||
                    (pl->pii ? pii_kind_known(cfg, name) : model_index(cfg, name) >= 0))
                    continue;
                sb_buf_reset(&msg);
                sb_buf_append_c(&msg, pl->pii ? "unknown PII kind " : "unknown model ");
                append_quoted(&msg, name, strlen(name));
                if (pl->pii) {
                    append_pii_kinds(&msg, cfg, name);
                } else {
                    sb_buf_append_c(&msg, "; expected the name of a model in this file");
                    append_model_hint(&msg, cfg, name);
                }
                size_t old = path_push(ps, "policy.rules[%zu].%s.%s[%zu]", i, pl->map, pl->list, j);
                report_item(ps, sequence_item(ps, list, j), item != NULL ? item : chk->map, "%s",
                            msg.p != NULL ? msg.p : "unknown name");
                path_pop(ps, old);
            }
        }
    }
    sb_buf_free(&msg);
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */
/* Reports libyaml's own complaint. Reader errors (bad encoding) carry a byte offset, not a mark. */
static void report_yaml_error(struct parse *ps, const yaml_parser_t *parser, const char *text,
                              size_t len)
{
    /* libyaml's composer fails some allocations without setting an error; syntax errors always
     * come with a problem, so an undescribed failure is taken as out of memory. */
    if (parser->error == YAML_MEMORY_ERROR || parser->error == YAML_NO_ERROR) {
        ps->oom = true;
        return;
    }
    const char *problem = parser->problem != NULL ? parser->problem : "cannot parse";
    if (parser->error == YAML_READER_ERROR) {
        yaml_mark_t mark = {0};
        for (size_t i = 0; i < parser->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                mark.line++;
                mark.column = 0;
            } else {
                mark.column++;
            }
        }
        report(ps, mark, "invalid YAML: %s; expected UTF-8 text", problem);
        return;
    }
    if (parser->context != NULL)
        report(ps, parser->problem_mark, "invalid YAML: %s (%s at %zu:%zu)", problem,
               parser->context, parser->context_mark.line + 1, parser->context_mark.column + 1);
    else
        report(ps, parser->problem_mark, "invalid YAML: %s", problem);
}

int sb_config_parse(const char *name, const char *text, size_t len, const char *base_dir,
                    struct sb_config **out, struct sb_buf *errors)
{
    int rc = 0;
    struct parse ps = {
        .name = name != NULL ? name : "<config>", .base_dir = base_dir, .errors = errors};
    struct sb_config *cfg = NULL;
    yaml_parser_t parser;
    bool parser_ready = false;
    yaml_document_t doc, extra;
    bool doc_ready = false, extra_ready = false;
    *out = NULL;
    sb_buf_init(&ps.scalar, SCALAR_MAX);
    /* An empty base folder means the current one, as NULL does. */
    if (ps.base_dir != NULL && ps.base_dir[0] == '\0')
        ps.base_dir = NULL;

    cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL || (cfg->source = strdup(ps.name)) == NULL)
        goto fail;
    apply_defaults(&ps, &root_section, cfg);
    if (!yaml_parser_initialize(&parser)) {
        ps.oom = true;
        goto fail;
    }
    parser_ready = true;
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &doc)) {
        report_yaml_error(&ps, &parser, text, len);
        goto fail;
    }
    doc_ready = true;
    ps.doc = &doc;
    /* An empty file is all defaults. */
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (root != NULL && !is_null(root)) {
        if (root->type != YAML_MAPPING_NODE) {
            struct sb__cfg_key whole = {.type = SB__CFG_MAP, .section = &root_section};
            report_expected(&ps, &whole, root, NULL, 0);
        } else {
            yaml_node_t *values[SB__CFG_MAX_KEYS] = {0};
            parse_mapping(&ps, &root_section, cfg, root, values);
        }
    }
    /* A second document ("---" then more) would be ignored silently otherwise. */
    if (!yaml_parser_load(&parser, &extra)) {
        report_yaml_error(&ps, &parser, text, len);
        goto fail;
    }
    extra_ready = true;
    yaml_node_t *extra_root = yaml_document_get_root_node(&extra);
    if (extra_root != NULL)
        report(&ps, extra.start_mark, "a second YAML document; expected one per file");

fail:
    rc = ps.oom || cfg == NULL || cfg->source == NULL ? SB_ENOMEM : ps.n_errors > 0 ? SB_EINVAL : 0;
    if (ps.n_errors > MAX_REPORTED)
        sb_buf_printf(errors, "%s: %zu more problems not shown\n", ps.name,
                      ps.n_errors - MAX_REPORTED);
    if (rc == 0) {
        *out = cfg;
        cfg = NULL;
    }
    if (extra_ready)
        yaml_document_delete(&extra);
    if (doc_ready)
        yaml_document_delete(&doc);
    if (parser_ready)
        yaml_parser_delete(&parser);
    sb_buf_free(&ps.scalar);
    sb_config_free(cfg);
    return rc;
}

const char *sb_config_default_text(void)
{
    return sb__default_config_text;
}

int sb_config_load_default(struct sb_config **out, struct sb_buf *errors)
{
    /* Relative model_dirs in the default are taken from the current folder (base_dir NULL). */
    return sb_config_parse("<default>", sb__default_config_text, strlen(sb__default_config_text),
                           NULL, out, errors);
}

const struct sb_model_config *sb_config_find_model(const struct sb_config *cfg, struct sb_str name)
{
    for (size_t i = 0; i < cfg->n_models; i++)
        if (sb_str_eq_c(name, cfg->models[i].name))
            return &cfg->models[i];
    return NULL;
}

void sb_config_free(struct sb_config *cfg)
{
    if (cfg == NULL)
        return;
    free_fields(&root_section, cfg);
    free(cfg->source);
    free(cfg);
}

/* ---------------------------------------------------------------------------------------------
 * Summary
 * ------------------------------------------------------------------------------------------- */
/* Long texts (chat templates) are shown by their start and size, not in full. */
#define SUMMARY_STR_MAX 60

/* Writes a string plain when YAML would read it back unchanged, else double-quoted. */
static void summary_string(struct sb_buf *out, const char *s)
{
    size_t len = strlen(s);
    bool plain = len > 0 && len <= SUMMARY_STR_MAX;
    for (size_t i = 0; i < len && plain; i++) {
        char c = s[i];
        plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                strchr("_./+-@", c) != NULL;
    }
    if (plain) {
        sb_buf_append_c(out, s);
        return;
    }
    size_t shown = len;
    if (shown > SUMMARY_STR_MAX) {
        shown = SUMMARY_STR_MAX;
        while (shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80)
            shown--;
    }
    sb_buf_append_char(out, '"');
    sb_buf_append_json_escaped(out, (struct sb_str){s, shown});
    sb_buf_append_char(out, '"');
    if (shown < len)
        sb_buf_printf(out, "... (%zu bytes)", len);
}

static void summary_section(struct sb_buf *out, const struct sb__cfg_section *sec, void *obj,
                            int indent, bool first_dash);

/* Writes one key's line (and, for sections and lists, the lines beneath it). */
static void summary_key(struct sb_buf *out, const struct sb__cfg_key *key, void *obj, int indent)
{
    void *field = field_at(obj, key->offset);
    size_t count = 0;
    if (key->type == SB__CFG_STR_LIST || key->type == SB__CFG_LIST)
        memcpy(&count, field_at(obj, key->count_offset), sizeof count);
    sb_buf_printf(out, "%s:", key->name);
    switch (key->type) {
    case SB__CFG_STR:
    case SB__CFG_ENUM: {
        const char *s;
        memcpy(&s, field, sizeof s);
        sb_buf_append_char(out, ' ');
        if (key->flags & SB__CFG_SECRET) {
            sb_buf_append_c(out, s != NULL ? "(set, not shown)" : "(not set)");
        } else if ((key->flags & SB__CFG_URL_PASSWORD) && s != NULL) {
            char shown[2048];
            sb_redact_url(s, shown, sizeof shown);
            summary_string(out, shown);
        } else if (s != NULL) {
            summary_string(out, s);
        } else {
            sb_buf_append_c(out, "(not set)");
        }
        break;
    }
    case SB__CFG_INT:
        if (key->size == sizeof(int32_t)) {
            int32_t v;
            memcpy(&v, field, sizeof v);
            sb_buf_printf(out, " %d", (int)v);
        } else {
            int64_t v;
            memcpy(&v, field, sizeof v);
            sb_buf_printf(out, " %lld", (long long)v);
        }
        break;
    case SB__CFG_SIZE: {
        size_t v;
        memcpy(&v, field, sizeof v);
        sb_buf_printf(out, " %zu", v);
        break;
    }
    case SB__CFG_BOOL: {
        bool v;
        memcpy(&v, field, sizeof v);
        sb_buf_append_c(out, v ? " true" : " false");
        break;
    }
    case SB__CFG_STR_LIST: {
        char **arr;
        memcpy(&arr, field, sizeof arr);
        if (count == 0)
            sb_buf_append_c(out, " []");
        for (size_t i = 0; i < count; i++) {
            sb_buf_printf(out, "\n%*s- ", indent + 2, "");
            summary_string(out, arr[i]);
        }
        break;
    }
    case SB__CFG_MAP:
        sb_buf_append_char(out, '\n');
        summary_section(out, key->section, field, indent + 2, false);
        return;
    case SB__CFG_LIST: {
        char *arr;
        memcpy(&arr, field, sizeof arr);
        if (count == 0)
            sb_buf_append_c(out, " []");
        sb_buf_append_char(out, '\n');
        for (size_t i = 0; i < count; i++)
            summary_section(out, key->section, arr + i * key->section->size, indent + 2, true);
        return;
    }
    }
    sb_buf_append_char(out, '\n');
}

static void summary_section(struct sb_buf *out, const struct sb__cfg_section *sec, void *obj,
                            int indent, bool first_dash)
{
    for (size_t i = 0; i < sec->n_keys; i++) {
        if (first_dash && i == 0)
            sb_buf_printf(out, "%*s- ", indent, "");
        else
            sb_buf_printf(out, "%*s", indent + (first_dash ? 2 : 0), "");
        summary_key(out, &sec->keys[i], obj, indent + (first_dash ? 2 : 0));
    }
}

void sb_config_print_summary(const struct sb_config *cfg, struct sb_buf *out)
{
    /* The walk reads through the tables' offsets; nothing is written to cfg. */
    summary_section(out, &root_section, (void *)cfg, 0, false);
}
