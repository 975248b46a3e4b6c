/* API keys: a key store in SQLite (the ledger's file unless `auth.store` names another) that keeps
 * a SHA-256 of each secret and never the secret; an in-memory, immutable snapshot of it that
 * requests are authenticated against without touching the disk, refreshed by a background thread
 * within about a second of `switchboard keys create` or `revoke`; the scopes a key may be limited
 * to (models, sensitivity); and per-key rate limits (requests and tokens per minute).
 * docs/keys-and-budgets.md describes it for users. */
#ifndef SB_AUTH_H
#define SB_AUTH_H

#include "budget/budget.h"
#include "core/core.h"
#include "route/route.h"

/* ---------------------------------------------------------------------------------------------
 * Keys
 * ------------------------------------------------------------------------------------------- */
#define SB_AUTH_NAME_MAX   64       /* bytes of a key's name or team, NUL excluded */
#define SB_AUTH_MODELS_MAX 1024     /* bytes of a key's model list ("a,b"), NUL excluded */
#define SB_AUTH_SECRET_LEN 43       /* "sb-" and 40 base-62 characters (238 bits) */
#define SB_AUTH_RPM_MAX    1000000  /* requests per minute a key may be given */
#define SB_AUTH_TPM_MAX    50000000 /* tokens per minute a key may be given */

/* What a key may do and who it is. Plain data: copied out of the snapshot for each request. */
struct sb_auth_key {
    char id[32];                     /* "key_" + 20 base-62 characters; public */
    char name[SB_AUTH_NAME_MAX + 1]; /* unique among active keys */
    char team[SB_AUTH_NAME_MAX + 1]; /* "" = none */
    char prefix[16];                 /* the secret's first characters, for lists ("sb-Ab12Cd") */
    uint8_t sha256[32];              /* of the whole secret */
    int64_t budget_micros;           /* USD millionths per period; < 0 = no budget of its own */
    enum sb_budget_period period;    /* of the budget */
    char models[SB_AUTH_MODELS_MAX + 1]; /* comma-separated model names; "" = every model */
    enum sb_sensitivity max_sensitivity; /* UNSET = any */
    int64_t rpm, tpm;                    /* per minute; 0 = unlimited */
    int64_t created_ms;                  /* Unix milliseconds */
    int64_t revoked_ms;                  /* 0 = active */
};

/* What `keys create` asks for. Strings are borrowed for the call. */
struct sb_auth_key_spec {
    const char *name;      /* required: 1-64 letters, digits, '.', '_', '-' */
    const char *team;      /* NULL or "" = none; the same characters as a name */
    int64_t budget_micros; /* < 0 = none */
    enum sb_budget_period period;
    const char *models; /* NULL or "" = every model; else "a,b" (spaces around names dropped) */
    enum sb_sensitivity max_sensitivity;
    int64_t rpm, tpm; /* 0 = unlimited; at most SB_AUTH_RPM_MAX / SB_AUTH_TPM_MAX */
};

/* Whether name is a valid key name or team (see struct sb_auth_key_spec). */
bool sb_auth_name_valid(const char *name);
/* Whether k may use the model named model: its list is empty or names it exactly. */
bool sb_auth_key_allows_model(const struct sb_auth_key *k, struct sb_str model);

/* ---------------------------------------------------------------------------------------------
 * The store: the api_keys table, created with CREATE TABLE IF NOT EXISTS and versioned by its own
 * table (api_keys_schema), so it shares the ledger's database without touching the ledger's
 * schema. One connection; not thread-safe (one thread at a time). Every function returns 0 or a
 * negative SB_E* code with one line in err saying what failed and what to do.
 * ------------------------------------------------------------------------------------------- */
struct sb_auth_store;

/* Opens (creating the file and the tables when needed) the SQLite file at path. *out is the
 * caller's, closed with sb_auth_store_close. SB_EIO: the file cannot be opened or is not a
 * database, its folder does not exist, or its keys schema is newer than this build's. */
int sb_auth_store_open(const char *path, struct sb_auth_store **out, char *err, size_t err_size);
/* Closes st (NULL is allowed). */
void sb_auth_store_close(struct sb_auth_store *st);
/* The store cfg names: auth.store, else the ledger's file. Returns it (cfg's, lives as long as
 * cfg), or NULL with a line in err when there is none (ledger.path "" or a server URL without an
 * auth.store). */
const char *sb_auth_store_path(const struct sb_config *cfg, char *err, size_t err_size);

/* Makes a key from spec at now_ms: a secret from the OS's CSPRNG (getrandom), of which only the
 * SHA-256 and the display prefix are stored. *out receives the key's record, and secret (at least
 * SB_AUTH_SECRET_LEN + 1 bytes) the secret itself, NUL-terminated, which exists nowhere else: the
 * caller shows it once and forgets it. SB_EINVAL: the spec is invalid (err names the field);
 * SB_ESTATE: an active key has that name; SB_EIO. */
int sb_auth_store_create(struct sb_auth_store *st, const struct sb_auth_key_spec *spec,
                         int64_t now_ms, struct sb_auth_key *out, char *secret, char *err,
                         size_t err_size);
/* Revokes the active key named name at now_ms; *out (may be NULL) receives its record.
 * SB_ENOTFOUND: no active key has that name; SB_EIO. */
int sb_auth_store_revoke(struct sb_auth_store *st, const char *name, int64_t now_ms,
                         struct sb_auth_key *out, char *err, size_t err_size);
/* Every key, revoked ones included, oldest first. *out is a malloc'd array of *n records (NULL
 * when none) that the caller frees with free(). SB_EIO, SB_ENOMEM. */
int sb_auth_store_list(struct sb_auth_store *st, struct sb_auth_key **out, size_t *n, char *err,
                       size_t err_size);
/* Whether the keys may have changed since the previous call, from any connection or process:
 * SQLite's data_version first (no read of the table), then the keys' own change counter. The
 * first call says true. SB_EIO. */
int sb_auth_store_changed(struct sb_auth_store *st, bool *changed);

/* ---------------------------------------------------------------------------------------------
 * Rate limits: per key, a token bucket of requests and one of tokens, each holding a minute's
 * worth and refilled continuously. A request takes one request and its estimated prompt tokens at
 * admission; when it ends the estimate is replaced by the tokens it used (prompt and completion),
 * which may leave the tokens bucket in debt (at most a minute's worth), delaying later requests.
 * Thread-safe: one mutex; no system call.
 * ------------------------------------------------------------------------------------------- */
struct sb_rate;
struct sb__rate_bucket;

enum sb_rate_limit { SB_RATE_REQUESTS, SB_RATE_TOKENS };

/* Why a request was not admitted. */
struct sb_rate_refusal {
    enum sb_rate_limit limit; /* which bucket */
    int64_t per_minute;       /* its limit */
    int64_t asked;            /* what the request needed of it */
    int64_t retry_after_s;    /* whole seconds until the bucket holds enough (>= 1) */
    bool never;               /* it asked more than the bucket ever holds */
};

/* What an admitted request holds, for sb_rate_settle. Zero-initialized = nothing. It points into
 * the limiter, so settle before sb_rate_free. */
struct sb_rate_ticket {
    struct sb__rate_bucket *bucket; /* NULL = nothing held */
    int64_t tokens;                 /* taken at admission */
};

/* Returns 0 and *out (freed with sb_rate_free), or SB_ENOMEM. */
int sb_rate_new(struct sb_rate **out);
void sb_rate_free(struct sb_rate *r);

/* Admits a request of key_id (copied) with limits rpm and tpm (0 = unlimited; above the _MAX
 * values they are capped) and tokens estimated prompt tokens at now_ns (monotonic). Returns 0
 * with *t filled (nothing held when both limits are 0), SB_EFULL with *why (nothing taken), or
 * SB_ENOMEM. */
int sb_rate_admit(struct sb_rate *r, const char *key_id, int64_t rpm, int64_t tpm, int64_t tokens,
                  uint64_t now_ns, struct sb_rate_ticket *t, struct sb_rate_refusal *why);
/* Replaces t's estimate with actual_tokens (< 0: keep the estimate) and empties t. */
void sb_rate_settle(struct sb_rate *r, struct sb_rate_ticket *t, int64_t actual_tokens,
                    uint64_t now_ns);

/* ---------------------------------------------------------------------------------------------
 * Authentication for a running server
 * ------------------------------------------------------------------------------------------- */
enum sb_auth_mode {
    SB_AUTH_OFF,      /* keys are not read: every request is anonymous */
    SB_AUTH_OPTIONAL, /* a Switchboard key ("sb-...") is checked when presented; else anonymous */
    SB_AUTH_REQUIRED, /* every model request needs a valid Switchboard key */
};

/* "off", "optional", "required" -> the mode. Returns 0 or SB_EINVAL. */
int sb_auth_mode_parse(const char *text, enum sb_auth_mode *out);

struct sb_auth;

struct sb_auth_params {
    enum sb_auth_mode mode; /* not SB_AUTH_OFF: a server with keys off has no sb_auth */
    const char *store;      /* the key store's SQLite file (copied) */
    uint32_t refresh_ms;    /* how often the store is polled for changes; 0 = 250 */
};

/* Opens the store, loads the keys and starts the refresher thread, which polls the store (its
 * own connection; sb_auth_store_changed) and swaps in a new snapshot when the keys changed. A
 * poll that fails keeps the current snapshot and logs a warning. Returns 0 and *out (freed with
 * sb_auth_free), or a code with a line in err. */
int sb_auth_new(const struct sb_auth_params *p, struct sb_auth **out, char *err, size_t err_size);
/* Stops the refresher and frees everything. Every ticket of its limiter must be settled. NULL is
 * allowed. */
void sb_auth_free(struct sb_auth *a);

enum sb_auth_mode sb_auth_mode(const struct sb_auth *a);
/* The limiter requests of a's keys are admitted by (owned by a). */
struct sb_rate *sb_auth_rate(struct sb_auth *a);

/* What the credentials of a request say. */
enum sb_auth_verdict {
    SB_AUTH_ANONYMOUS, /* optional mode, no Switchboard key presented */
    SB_AUTH_KEY,       /* a valid, active key: *key holds it */
    SB_AUTH_MISSING,   /* required mode, no credential at all */
    SB_AUTH_FOREIGN,   /* required mode, a credential that is not a Switchboard key */
    SB_AUTH_INVALID,   /* a Switchboard key that is not in the store */
    SB_AUTH_REVOKED,   /* a Switchboard key that was revoked; *key holds it */
};

/* Authenticates from the values of the Authorization and x-api-key headers (each NULL when
 * absent): the first Switchboard key ("sb-") among `Authorization: Bearer <key>` and x-api-key is
 * looked up in the current snapshot. Never touches the disk; thread-safe (a read lock held while
 * the record is copied). */
enum sb_auth_verdict sb_auth_identify(struct sb_auth *a, const char *authorization,
                                      const char *x_api_key, struct sb_auth_key *key);

/* A copy of every key of the current snapshot (revoked ones included): *out is malloc'd (NULL when
 * none), freed by the caller. Returns 0 or SB_ENOMEM. Thread-safe. */
int sb_auth_keys(struct sb_auth *a, struct sb_auth_key **out, size_t *n);
/* Reloads the snapshot now, as the refresher would (tests). Returns 0 or a code. Thread-safe. */
int sb_auth_refresh(struct sb_auth *a);

/* What `serve` builds from cfg: *auth when auth.keys is not off (else NULL), and *budget when
 * the config sets a budget or keys are on (key budgets need one; else NULL), with the current
 * periods' spend loaded from the ledger (cfg->ledger.path, which must be open already so that the
 * file exists) for the global budget, each key's and each team's. now_s is the wall clock in Unix
 * seconds. Both are the caller's (sb_auth_free, sb_budget_free). Returns 0, or a code with a line
 * in err and both NULL. */
int sb_auth_serve_setup(const struct sb_config *cfg, int64_t now_s, struct sb_auth **auth,
                        struct sb_budget **budget, char *err, size_t err_size);

/* ---------------------------------------------------------------------------------------------
 * The `switchboard keys` commands; argv[0] is the first argument after the command words. Each
 * returns the process's exit status: 0, 1 (a runtime failure: the store cannot be written), 2
 * (bad usage, a bad config, an invalid value).
 * ------------------------------------------------------------------------------------------- */
int sb_auth_keys_create_cli(int argc, char **argv);
int sb_auth_keys_list_cli(int argc, char **argv);
int sb_auth_keys_revoke_cli(int argc, char **argv);

#endif
