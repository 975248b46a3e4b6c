/* Budgets: USD per calendar period (UTC day, ISO week, month) for each API key, each team and the
 * whole gateway, kept in memory in exact micro-dollars and enforced by reservation: before a
 * request is sent its worst-case cost is reserved against every budget that applies, all or none
 * under one lock, so concurrent requests can never together reserve more than a budget holds; when
 * it ends the reservation is replaced by what it actually cost. The spend of the current periods is
 * loaded from the ledger at startup (sb_budget_load_ledger). Optional callbacks hear when a
 * budget's settled spend first crosses 50%, 80% and 100% of its limit in a period.
 *
 * Thread-safety: every function on a struct sb_budget may be called from any thread at once,
 * except sb_budget_free and the setters (sb_budget_set_notify), which run before the budget is
 * shared or after every other caller is done. Nothing here touches the disk except
 * sb_budget_load_ledger. */
#ifndef SB_BUDGET_H
#define SB_BUDGET_H

#include "config/config.h"
#include "core/core.h"

/* ---------------------------------------------------------------------------------------------
 * Periods: calendar UTC. A day starts at 00:00 UTC, a week on Monday 00:00 UTC (ISO 8601), a
 * month on its first day at 00:00 UTC.
 * ------------------------------------------------------------------------------------------- */
enum sb_budget_period { SB_BUDGET_DAY, SB_BUDGET_WEEK, SB_BUDGET_MONTH };

#define SB_BUDGET_N_PERIODS 3

/* Parses "day", "week" or "month" (any case). Returns 0, or SB_EINVAL (*out untouched). */
int sb_budget_period_parse(const char *text, enum sb_budget_period *out);
/* "day", "week", "month" (static; "?" out of range). */
const char *sb_budget_period_name(enum sb_budget_period p);
/* "daily", "weekly", "monthly", for messages (static). */
const char *sb_budget_period_adjective(enum sb_budget_period p);
/* The period of kind p that holds the instant now_s (Unix seconds): [*start, *end). */
void sb_budget_period_bounds(enum sb_budget_period p, int64_t now_s, int64_t *start, int64_t *end);

/* ---------------------------------------------------------------------------------------------
 * Who pays, and what a refusal says
 * ------------------------------------------------------------------------------------------- */
enum sb_budget_scope { SB_BUDGET_SCOPE_KEY, SB_BUDGET_SCOPE_TEAM, SB_BUDGET_SCOPE_GLOBAL };

/* "key", "team", "global" (static). */
const char *sb_budget_scope_name(enum sb_budget_scope s);

/* The caller a request is charged to. Strings are borrowed for the call. */
struct sb_budget_payer {
    const char *key_id;       /* the key's id; NULL or "" = anonymous (no key budget) */
    const char *key_name;     /* for messages and notifications; NULL = key_id */
    int64_t key_limit_micros; /* the key's own budget; < 0 = none */
    enum sb_budget_period key_period;
    const char *team; /* the key's team; NULL or "" = none (no team budget) */
};

/* Why a reservation did not fit: the first budget (key, then team, then global) it would
 * overflow. */
struct sb_budget_refusal {
    enum sb_budget_scope scope;
    char name[96]; /* the key's name, the team, or "" for global */
    enum sb_budget_period period;
    int64_t limit_micros; /* the budget */
    int64_t spent_micros; /* settled spend this period */
    int64_t held_micros;  /* reserved by requests in flight */
    int64_t cost_micros;  /* what this request asked to reserve */
    int64_t resets_s;     /* when the period ends (Unix seconds) */
};

#define SB_BUDGET_MAX_SCOPES 3 /* key, team, global */

struct sb__budget_entry; /* internal.h */

/* One request's reservation: filled by sb_budget_reserve, handed back to sb_budget_settle. Plain
 * data that the caller embeds (zero-initialized = holds nothing); it points into the budget, so it
 * must be settled before the budget is freed. */
struct sb_budget_hold {
    int64_t micros; /* reserved against each budget in at[] */
    size_t n;       /* 0 = nothing held */
    struct {
        struct sb__budget_entry *entry;
        int64_t period_start; /* the period the reservation was made in */
    } at[SB_BUDGET_MAX_SCOPES];
};

/* ---------------------------------------------------------------------------------------------
 * The budget
 * ------------------------------------------------------------------------------------------- */
enum sb_budget_on_limit {
    SB_BUDGET_DENY,  /* a request that does not fit gets 429 */
    SB_BUDGET_LOCAL, /* it is served by the free (local) members of its chain, 429 if none */
};

/* One configured budget (global or a team's). */
struct sb_budget_limit {
    const char *name; /* the team; ignored for the global budget. Copied. */
    int64_t micros;   /* >= 0 */
    enum sb_budget_period period;
};

struct sb_budget_params {
    const struct sb_budget_limit *global; /* NULL = no global budget */
    const struct sb_budget_limit *teams;  /* teams[0, n_teams) */
    size_t n_teams;
    enum sb_budget_on_limit on_limit;
    int64_t default_max_tokens; /* output tokens reserved for a request that sets no max_tokens */
};

struct sb_budget;

/* Builds a budget from p (copied). Returns 0 and *out (freed with sb_budget_free), SB_EINVAL (a
 * negative limit, a team named twice or without a name) or SB_ENOMEM. */
int sb_budget_new(const struct sb_budget_params *p, struct sb_budget **out);
/* Builds a budget from the config's `budgets:` section (validated by the config parser). Returns
 * 0 and *out, or SB_EINVAL / SB_ENOMEM with a line in err. A section that sets nothing still gives
 * a budget: key budgets need one. */
int sb_budget_from_config(const struct sb_budgets_config *cfg, struct sb_budget **out, char *err,
                          size_t err_size);
/* Frees b; every hold must have been settled. NULL is allowed. */
void sb_budget_free(struct sb_budget *b);

enum sb_budget_on_limit sb_budget_on_limit(const struct sb_budget *b);
int64_t sb_budget_default_max_tokens(const struct sb_budget *b);
/* Whether a team budget is configured for team. */
bool sb_budget_has_team(const struct sb_budget *b, const char *team);

/* Called the first time in a period that a budget's settled spend reaches 50%, 80% and 100% of
 * its limit (each threshold once; a settle that jumps over several calls for each, lowest first).
 * scope is "key", "team" or "global"; name the key's name, the team, or "" (static or borrowed for
 * the call). Called on the thread that settles (an HTTP I/O thread), after the budget's lock is
 * released: it must return quickly and must not block. Spend loaded from the ledger counts as
 * already notified. */
typedef void (*sb_budget_notify_fn)(void *ud, const char *scope /* "key"|"team"|"global" */,
                                    const char *name, int percent, int64_t spent_micros,
                                    int64_t limit_micros);
/* Sets the callback (NULL = none) and its ud (borrowed). Before the budget is shared. */
void sb_budget_set_notify(struct sb_budget *b, sb_budget_notify_fn fn, void *ud);

/* Whether any budget applies to who (its key's own, its team's, the global one), from the
 * configuration alone: no lock, no entry made. */
bool sb_budget_applies(const struct sb_budget *b, const struct sb_budget_payer *who);

/* Reserves cost_micros (>= 0) against every budget that applies to who at now_s: the key's own,
 * its team's when one is configured, and the global one. Either all of them take it or none does.
 * It fits a budget when settled spend + reservations in flight + cost <= limit. Returns 0 with
 * *hold filled (n = 0 when no budget applies), or SB_EDENIED with *why describing the first budget
 * it would overflow and nothing reserved. *hold must hold nothing on entry. */
int sb_budget_reserve(struct sb_budget *b, const struct sb_budget_payer *who, int64_t cost_micros,
                      int64_t now_s, struct sb_budget_hold *hold, struct sb_budget_refusal *why);

/* Replaces hold's reservation with the actual cost (< 0 = unpriced, counted as 0) and empties
 * hold. The cost counts in the period the reservation was made in: when that period has ended,
 * only the reservation is released. May call the notify callback. A hold that holds nothing is a
 * no-op. */
void sb_budget_settle(struct sb_budget *b, struct sb_budget_hold *hold, int64_t actual_micros,
                      int64_t now_s);

/* The least that is left (limit - settled - reserved; negative when overspent) among the budgets
 * that apply to who at now_s. Returns false (and leaves *left) when none applies. */
bool sb_budget_left(struct sb_budget *b, const struct sb_budget_payer *who, int64_t now_s,
                    int64_t *left);

/* One budget's state, for `keys list` and tests: name is the key's id, the team, or "" for the
 * global budget. Returns false when no entry exists for it (no request was charged to it and
 * nothing was loaded): then nothing is spent. */
bool sb_budget_spent(struct sb_budget *b, enum sb_budget_scope scope, const char *name,
                     int64_t now_s, int64_t *spent, int64_t *held);

/* Sets the spend of a budget's period that began at period_start (Unix seconds), as loaded from
 * the ledger; thresholds it already crossed are not notified again. For key budgets name is the
 * key's id and limit/period its own; for teams and global they come from the params. Before the
 * budget is shared. Returns 0 or SB_ENOMEM. */
int sb_budget_preload(struct sb_budget *b, enum sb_budget_scope scope, const char *name,
                      int64_t limit_micros, enum sb_budget_period period, int64_t period_start,
                      int64_t spent_micros);

/* A key as the ledger knows it, for sb_budget_load_ledger. Strings borrowed for the call. */
struct sb_budget_key_info {
    const char *id;
    const char *team;     /* "" = none */
    int64_t limit_micros; /* < 0 = no budget of its own */
    enum sb_budget_period period;
};

/* Loads the current periods' spend (sum of priced cost) from the ledger at target: the global
 * budget's, each key's with a budget of its own among keys[0, n), and each configured team's (the
 * sum over the keys of that team: a key's team never changes). At most one query per period kind.
 * A missing ledger file loads nothing. Before the budget is shared. Returns 0, or SB_EIO /
 * SB_ENOMEM with a line in err. */
int sb_budget_load_ledger(struct sb_budget *b, const char *target,
                          const struct sb_budget_key_info *keys, size_t n, int64_t now_s, char *err,
                          size_t err_size);

/* Appends micros as dollars with two to six decimals: 1500000 gives "$1.50", 1234 "$0.001234". */
int sb_budget_format_usd(int64_t micros, struct sb_buf *out);

#endif
