/* Configuration: the YAML file (or the embedded default) parsed into plain structs, with ${ENV}
 * expansion and errors that name file, line and column. */
#ifndef SB_CONFIG_H
#define SB_CONFIG_H

#include "core/core.h"

struct sb_listen_config {
    char *host;            /* default "127.0.0.1" */
    int port;              /* default 8080; 0 = an ephemeral port */
    size_t max_body_bytes; /* request bodies above this get 413; default 8 MiB */
    int io_threads;        /* default 1 */
};

struct sb_model_config {
    char *name;          /* the alias clients ask for */
    char *backend;       /* "local" (more kinds come with the cloud backends) */
    char *path;          /* GGUF file; absolute once sb_config_resolve_models has run */
    char *sha256;        /* hex sha256 the GGUF must have; serve checks it (NULL = no pin) */
    int32_t n_ctx;       /* context in tokens; 0 = the model's training context, at most 8192 */
    int32_t n_threads;   /* 0 = online cores - 1, at least 1 */
    int32_t n_parallel;  /* sequence slots decoded together; default 4 */
    int32_t n_batch;     /* prompt tokens per decode step; default 512 */
    int32_t gpu_layers;  /* layers offloaded to a GPU; default 0 */
    char *chat_template; /* NULL = the GGUF's own; else a Jinja template text that overrides it */
    bool embeddings;     /* the model serves /v1/embeddings (and only embeddings) */
    /* Local models' lifecycle (backend/local.c). */
    char *load;         /* "startup" (default: loaded before serving) | "lazy" (on first request) */
    int32_t keep_alive; /* seconds a loaded model stays after its last request; -1 = forever, 0 =
                           unloaded as soon as it is idle; default -1 */
    int32_t queue_size; /* key `queue`: requests waiting for a slot; more get 429; default 128 */

    /* Remote backends (openai, anthropic, bedrock, ollama). Secrets are never logged or printed. */
    char *base_url;       /* e.g. https://api.openai.com/v1; NULL = the kind's default */
    char *ca_file;        /* PEM file of the CAs trusted for an https base_url (a private PKI, a TLS
                             proxy); relative to the config file's folder; NULL = the system's CAs */
    char *api_key;        /* secret; usually "${OPENAI_API_KEY}" */
    char *upstream_model; /* the provider's model id; NULL = name */
    char *region;         /* bedrock: AWS region, e.g. us-east-1 */
    char *aws_access_key_id;     /* bedrock; secret */
    char *aws_secret_access_key; /* bedrock; secret */
    char *aws_session_token;     /* bedrock; secret, optional */
    struct {
        uint32_t connect_ms, first_byte_ms, idle_ms, total_ms; /* 0 = none */
    } timeouts; /* key `timeouts: {connect_ms, first_byte_ms, idle_ms, total_ms}` */

    /* Resilience (any backend). */
    char **fallback; /* `fallback: [model, ...]`: models tried in order when this one fails */
    size_t n_fallback;
    struct {
        int32_t max;      /* retries after the first try; default 2 */
        uint32_t base_ms; /* backoff base; default 250 */
        uint32_t max_ms;  /* backoff cap; default 8000 */
    } retries;            /* key `retries: {max, base_ms, max_ms}` */
    struct {
        int32_t failures; /* consecutive failures that open the breaker; default 5 */
        uint32_t open_ms; /* how long it stays open before probing; default 30000 */
        int32_t probes;   /* requests let through while half-open; default 1 */
    } breaker;            /* key `breaker: {failures, open_ms, probes}` */

    int line;   /* where the entry starts in the file (1-based), for messages */
    int column; /* and its column (1-based) */
};

/* The request ledger (section `ledger:`). */
struct sb_ledger_config {
    char *path;                 /* SQLite file, relative to the config file's folder; "" = none */
    int32_t commit_interval_ms; /* the longest a row waits to be gathered into a commit; 50 */
    size_t queue_size;          /* rows waiting for the writer; more are dropped; default 2048 */
    int32_t retention_days;     /* rows older than this many days are deleted; 0 = keep all */
    bool content_logging;       /* record prompt and completion text; default false */
};

/* One custom PII pattern (section `privacy.custom_patterns[]`). */
struct sb_privacy_pattern_config {
    char *name;  /* letters, digits, '_', starting with a letter, <= 32 bytes; the placeholder tag
                    is its upper case: name customer_id gives <CUSTOMER_ID_1> */
    char *regex; /* Vectorscan syntax (PCRE without back-references or look-around) */
    int line;    /* where the entry starts in the file (1-based), for messages */
    int column;  /* and its column (1-based) */
};

/* PII detection (section `privacy:`); compiled by sb_privacy_new. */
struct sb_privacy_config {
    char **custom_terms; /* literal words found case-insensitively (project code names, ...) */
    size_t n_custom_terms;
    struct sb_privacy_pattern_config *custom_patterns; /* regexes, each its own kind */
    size_t n_custom_patterns;
    char **detectors; /* the built-in detectors turned on, by name; empty = all of them, and
                         the single name "none" = none of them (custom terms and patterns only) */
    size_t n_detectors;
};

/* What every local model shares (section `local:`). */
struct sb_local_config {
    int32_t max_loaded; /* local models loaded at once, least recently used unloaded first; 0 = no
                           limit */
};

/* The dashboard (section `ui:`; docs/dashboard.md). */
struct sb_ui_config {
    bool enabled;  /* serve GET /ui and /ui/api/summary; default true */
    size_t recent; /* routing decisions kept in memory for it; default 50 */
};

/* A price override (section `pricing[]`): USD per million tokens, as decimal text (at most six
 * decimal places), converted exactly with sb_config_parse_micros. */
struct sb_price_config {
    char *model;                 /* a model id, or globs ('*') separated by '|'; required */
    char *input_per_mtok;        /* uncached input tokens; required */
    char *cached_input_per_mtok; /* input read from a provider cache; NULL = the input price */
    char *cache_write_per_mtok;  /* input written to a provider cache; NULL = the input price */
    char *output_per_mtok;       /* completion tokens; required */
    int line;                    /* where the entry starts in the file (1-based), for messages */
    int column;                  /* and its column (1-based) */
};

/* The infra cost model of the local hardware (section `infra:`): decimal text, NULL = not set.
 * See src/report/infra.h for how the figures combine. */
struct sb_infra_config {
    char *hardware_usd;              /* purchase price */
    char *depreciation_years;        /* written off over; default 3 */
    char *power_watts;               /* draw while serving */
    char *electricity_usd_per_kwh;   /* energy price */
    char *utilization;               /* planned busy share of the time, (0, 1]; default 0.5 */
    char *engineer_hours_per_month;  /* people's time the hardware takes */
    char *engineer_usd_per_hour;     /* what that time costs */
    char *maintenance_usd_per_month; /* hosting, support, spares */
    char *tokens_per_s;              /* throughput assumed when the ledger measured none */
};

/* The most models a policy rule's `route` may list (the router's chains hold at most this many). */
#define SB_POLICY_MAX_ROUTE 32

/* A policy rule's conditions (section `policy.rules[].when`). Every condition written must hold
 * for the rule to match; one not written always holds. Validated by the config parser: model
 * names exist, sensitivities are low/medium/high, PII kinds are detector, "term" or custom
 * pattern names, lists are not empty, min <= max. src/route compiles and evaluates them. */
struct sb_policy_when_config {
    char **model; /* requested aliases (models[].name) */
    size_t n_model;
    char **key; /* API key names */
    size_t n_key;
    char **team; /* teams of the API key */
    size_t n_team;
    char **sensitivity; /* "low", "medium", "high": the request's effective sensitivity */
    size_t n_sensitivity;
    char **pii; /* PII kinds; holds when any of them was detected */
    size_t n_pii;
    int64_t min_prompt_tokens; /* holds when the prompt has at least this many tokens */
    int64_t max_prompt_tokens; /* holds when the prompt has at most this many tokens */
    int64_t min_max_tokens;    /* holds when max_tokens is at least this (unset = unbounded) */
    bool tools;                /* holds when the request has tools (true) or has none (false) */
    char *budget_below_usd;    /* decimal text: holds when the remaining budget is below it */
    /* Which scalar conditions were written (lists and strings tell by their own emptiness). */
    bool has_min_prompt_tokens, has_max_prompt_tokens, has_min_max_tokens, has_tools;
};

/* What a matching rule does (section `policy.rules[].action`): route, or deny; pseudonymize may
 * come with route or alone (then the requested model's configured chain serves). */
struct sb_policy_action_config {
    char **route; /* models (models[].name) to try, in order; at most SB_POLICY_MAX_ROUTE */
    size_t n_route;
    bool pseudonymize; /* detected values are replaced before a non-local backend receives them */
    char *deny;        /* the reason given to the client (403); NULL = not a deny */
};

/* One rule (section `policy.rules[]`). */
struct sb_policy_rule_config {
    char *id; /* unique; letters, digits, '-', '_', '.'; in x-switchboard-route and messages */
    struct sb_policy_when_config when;
    struct sb_policy_action_config action;
    int line;   /* where the entry starts in the file (1-based), for messages */
    int column; /* and its column (1-based) */
};

/* Routing policy (section `policy:`): rules tried in order, first match wins; when none matches,
 * `default` decides: "hybrid" (the built-in hybrid policy, docs/routing.md) or "none" (the
 * requested model's configured chain). */
struct sb_policy_config {
    struct sb_policy_rule_config *rules;
    size_t n_rules;
    char *default_policy; /* key `default`: "hybrid" (default) | "none" */
};

/* Spend-spike detection (section `alerts.spend_spike`): the spend rate over the last window
 * against its trailing average over the baseline before it. Decimals are text, read exactly with
 * sb_config_parse_micros. */
struct sb_alerts_spike_config {
    bool enabled;       /* default true */
    int32_t window_s;   /* default 300; less than baseline_s */
    int32_t baseline_s; /* default 86400 */
    char *factor;       /* the window's rate over the baseline's average, above 1; default "3" */
    char *min_usd;      /* the least spend in a window that may alert; default "1.00" */
};

/* Alerts (section `alerts:`): spend spikes and budget thresholds, logged and posted to a
 * webhook. Off unless the file has an `alerts:` mapping. */
struct sb_alerts_config {
    bool enabled;               /* set when the file has the section (not a key) */
    char *webhook_url;          /* http(s) URL that receives a JSON POST; NULL = log only; secret */
    int32_t webhook_timeout_ms; /* one POST, connecting included; default 5000 */
    int32_t webhook_retries;    /* retries after a 5xx or a connection failure; default 2 */
    char *instance;             /* this gateway's name in alerts; NULL = the host name */
    size_t queue_size;          /* alerts waiting for the sender; more are dropped; default 64 */
    struct sb_alerts_spike_config spend_spike;
};

/* API keys (section `auth:`): whether requests must, may or need not present a Switchboard key
 * (docs/keys-and-budgets.md). */
struct sb_auth_config {
    char *keys;  /* "off" (default: keys are not read), "optional" or "required" */
    char *store; /* the SQLite file of the keys; "" (default) = the ledger's file (ledger.path) */
};

/* A budget: USD per calendar UTC period, as decimal text read with sb_config_parse_micros. */
struct sb_budget_limit_config {
    char *usd;    /* NULL = no budget */
    char *period; /* "day" | "week" | "month" (default) */
};

/* One team's budget (section `budgets.teams[]`). */
struct sb_budget_team_config {
    char *name;   /* the team, as keys are created with --team */
    char *usd;    /* required */
    char *period; /* "day" | "week" | "month" (default) */
    int line;     /* where the entry starts in the file (1-based), for messages */
    int column;   /* and its column (1-based) */
};

/* Budgets (section `budgets:`): global and per team; keys carry their own (switchboard keys). */
struct sb_budgets_config {
    struct sb_budget_limit_config global;
    struct sb_budget_team_config *teams;
    size_t n_teams;
    char *on_limit;             /* "deny" (default: 429) | "local" (serve from free members) */
    int32_t default_max_tokens; /* output tokens reserved when a request sets none; 4096 */
};

struct sb_config {
    char *source; /* the file it came from, or "<default>" */
    struct sb_listen_config listen;
    struct sb_model_config *models;
    size_t n_models;
    char **model_dirs; /* where relative model paths are looked up, in order */
    size_t n_model_dirs;
    char *log_level; /* "debug" | "info" | "warn" | "error"; default "info" */
    struct sb_ledger_config ledger;
    struct sb_price_config *pricing; /* `pricing:` overrides, tried before the bundled prices */
    size_t n_pricing;
    struct sb_infra_config infra;
    struct sb_privacy_config privacy;
    struct sb_local_config local;
    struct sb_ui_config ui;
    struct sb_policy_config policy;
    struct sb_alerts_config alerts;
    struct sb_auth_config auth;
    struct sb_budgets_config budgets;
};

/* Parses YAML text. name is used in error messages ("switchboard.yaml:12:5: ..."). base_dir is
 * the folder relative paths in the file are taken from (NULL = the current one). On success *out
 * is a new config the caller frees with sb_config_free. On failure returns SB_EINVAL (or
 * SB_ENOMEM), *out is NULL, and errors receives one line per problem found. Model paths are not
 * resolved here (see sb_config_resolve_models). */
int sb_config_parse(const char *name, const char *text, size_t len, const char *base_dir,
                    struct sb_config **out, struct sb_buf *errors);

/* Reads and parses a file; same contract as sb_config_parse, SB_EIO when it cannot be read. */
int sb_config_load_file(const char *path, struct sb_config **out, struct sb_buf *errors);

/* Parses the embedded default configuration (config/default.yaml, built into the binary). */
int sb_config_load_default(struct sb_config **out, struct sb_buf *errors);

/* For commands' --config: loads path, or the embedded default when path is NULL. On failure
 * prints the problems to stderr (each line ended) and returns NULL. The caller frees the result
 * with sb_config_free. Model paths are not resolved. */
struct sb_config *sb_config_load_for_command(const char *path);

/* The embedded default configuration's text (NUL-terminated, static). */
const char *sb_config_default_text(void);

/* Makes every model path absolute: an absolute path is kept, a relative one is looked up in
 * $SWITCHBOARD_MODELS, then the config's model_dirs, in order. Returns 0, or SB_ENOTFOUND with
 * one line per missing model (and the folders searched) appended to errors. */
int sb_config_resolve_models(struct sb_config *cfg, struct sb_buf *errors);

/* Returns the model named name, or NULL. The pointer lives as long as cfg. */
const struct sb_model_config *sb_config_find_model(const struct sb_config *cfg, struct sb_str name);

/* Appends a human-readable summary of what cfg declares once defaults are applied (listener,
 * models with their resolved paths), in the file's own key names, YAML-like, one key a line, for
 * `switchboard config check`. Secrets are not printed. Output stops silently at out's maximum. */
void sb_config_print_summary(const struct sb_config *cfg, struct sb_buf *out);

/* Frees cfg and everything it owns. NULL is allowed. */
void sb_config_free(struct sb_config *cfg);

/* Reads a non-negative decimal ("12", "0.15", ".5") exactly as millionths of its unit: "0.15"
 * gives 150000. Refuses signs, exponents, separators, digits finer than a millionth (unless
 * zeros) and values above max millionths. Returns 0 or SB_EINVAL (*out untouched). */
int sb_config_parse_micros(const char *text, int64_t max, int64_t *out);

/* Appends v (>= 0) millionths as the shortest exact decimal, the inverse of
 * sb_config_parse_micros: 3000000 gives "3", 1500000 "1.5". Returns 0, SB_ENOMEM or SB_ETOOBIG. */
int sb_config_format_micros(struct sb_buf *b, int64_t v);

#endif
