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
    int32_t n_ctx;       /* context in tokens; 0 = the model's training context, at most 8192 */
    int32_t n_threads;   /* 0 = online cores - 1, at least 1 */
    int32_t n_parallel;  /* sequence slots decoded together; default 4 */
    int32_t n_batch;     /* prompt tokens per decode step; default 512 */
    int32_t gpu_layers;  /* layers offloaded to a GPU; default 0 */
    char *chat_template; /* NULL = the GGUF's own; else a Jinja template text that overrides it */
    bool embeddings;     /* the model serves /v1/embeddings */

    /* Remote backends (openai, anthropic, bedrock, ollama). Secrets are never logged or printed. */
    char *base_url;       /* e.g. https://api.openai.com/v1; NULL = the kind's default */
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
        int32_t max;          /* retries after the first try; default 2 */
        uint32_t base_ms;     /* backoff base; default 250 */
        uint32_t max_ms;      /* backoff cap; default 8000 */
    } retries;                /* key `retries: {max, base_ms, max_ms}` */
    struct {
        int32_t failures;     /* consecutive failures that open the breaker; default 5 */
        uint32_t open_ms;     /* how long it stays open before probing; default 30000 */
        int32_t probes;       /* requests let through while half-open; default 1 */
    } breaker;                /* key `breaker: {failures, open_ms, probes}` */

    int line;            /* where the entry starts in the file (1-based), for messages */
    int column;          /* and its column (1-based) */
};

/* The request ledger (section `ledger:`). */
struct sb_ledger_config {
    char *path;                 /* SQLite file, relative to the config file's folder; "" = none */
    int32_t commit_interval_ms; /* the longest a row waits to be gathered into a commit; 50 */
    size_t queue_size;          /* rows waiting for the writer; more are dropped; default 2048 */
    int32_t retention_days;     /* rows older than this many days are deleted; 0 = keep all */
    bool content_logging;       /* record prompt and completion text; default false */
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

#endif
