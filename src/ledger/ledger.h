/* The request ledger: one flat row per request, handed over by I/O threads without waiting and
 * written by a writer thread in group commits to SQLite (PostgreSQL later, behind the same API). */
#ifndef SB_LEDGER_H
#define SB_LEDGER_H

#include "config/config.h"
#include "core/canon.h"
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * A row: one request and its chain of attempts. It holds no pointers, so it is copied whole into
 * the ledger's queue and may live on the caller's stack. Strings are NUL-terminated within their
 * arrays (a string that fills its array without a NUL is taken as cut at the array's end); fill
 * them with sb_ledger_copy, which cuts long values at a UTF-8 character boundary. Never put
 * prompt or completion text, API keys or PII values in a row.
 * ------------------------------------------------------------------------------------------- */
struct sb_ledger_row {
    int64_t ts_ms;            /* when the request arrived, Unix milliseconds; 0 = when recorded */
    char request_id[40];      /* "req_..." */
    char key_id[64];          /* the API key's id (never the key itself); "" = none */
    char team[64];            /* the key's team; "" = none */
    enum sb_api api;          /* the inbound wire format */
    char model[96];           /* the alias the caller asked for */
    char backends_tried[256]; /* every backend attempted, comma-separated, in order */
    char backend[96];         /* the backend that served; "" when none did */
    char rule_id[64];         /* the routing rule that chose the chain; "" = default */
    char sensitivity[16];     /* the request's sensitivity class; "" = unclassified */
    char pii_counts[128];     /* JSON object of PII kind -> count, e.g. {"email":2}; "" = none */
    char error_class[32];  /* "" on success, else "timeout", "upstream_4xx", "context_length"... */
    int32_t status;        /* the HTTP status sent to the client */
    int32_t attempts;      /* backend attempts made, retries and fallbacks included */
    int64_t prompt_tokens; /* all prompt tokens, cached ones included (as struct sb_usage) */
    int64_t cached_prompt_tokens; /* of prompt_tokens, those served from a cache */
    int64_t completion_tokens;
    double queue_ms;       /* time waiting for a slot; < 0 = not measured (stored as NULL) */
    double ttft_ms;        /* time to the first token; < 0 = none (errors, embeddings) */
    double latency_ms;     /* from arrival to the last byte sent */
    double tokens_per_s;   /* completion tokens per second of generation; < 0 = not measured */
    int64_t cost_microusd; /* the priced cost in micro-dollars; -1 = unpriced (stored as NULL) */
    bool streamed;         /* the response was streamed */
};

/* Copies src into the array dst of dst_size bytes, cut at a UTF-8 character boundary if it does
 * not fit, NUL-terminated. Use as sb_ledger_copy(row.model, sizeof row.model, name). */
void sb_ledger_copy(char *dst, size_t dst_size, struct sb_str src);

/* Returns "openai", "anthropic" or "ollama" (static), or "" for a value outside the enum. */
const char *sb_ledger_api_name(enum sb_api api);

/* ---------------------------------------------------------------------------------------------
 * The ledger
 * ------------------------------------------------------------------------------------------- */
struct sb_ledger;

/* Opens (creating and migrating as needed) the ledger cfg describes and starts its writer thread.
 * cfg is read during the call only. On success returns 0 and *out is the ledger, which the caller
 * closes with sb_ledger_close; when cfg->path is "" the ledger is disabled: 0 and *out = NULL, and
 * every function below accepts NULL and does nothing. On failure *out is NULL, err (when not NULL)
 * receives one line saying what failed, where and what to do, and the result is:
 *   SB_EIO          the database cannot be opened, made WAL, or migrated (a folder that does not
 *                   exist, no permission, a file that is not a database, a newer schema);
 *   SB_EUNSUPPORTED a store this build cannot use (a postgres:// URL, for now);
 *   SB_EINVAL       a cfg value out of range; SB_ENOMEM. */
int sb_ledger_open(const struct sb_ledger_config *cfg, struct sb_ledger **out, char *err,
                   size_t err_size);

/* Copies row into the ledger's queue and returns at once: never touches the disk, never waits
 * for the writer (a short mutex only). Safe from any thread. Returns 0, or SB_EFULL when the
 * queue is full: the row is dropped, counted (switchboard_ledger_dropped_total) and a warning is
 * logged, at most every 10 s. Must not be called concurrently with or after sb_ledger_close. */
int sb_ledger_record(struct sb_ledger *l, const struct sb_ledger_row *row);

/* Waits until every row recorded before the call (by any thread) is committed, and any due
 * retention pass has finished. For tests and shutdown: it blocks. Returns 0, or SB_EIO when a
 * write failed since the previous flush (those rows are lost and counted). */
int sb_ledger_flush(struct sb_ledger *l);

/* Flushes, stops the writer and closes the store; the SIGTERM path, once the I/O threads have
 * stopped recording. Frees l (NULL is allowed). Returns what the final flush returns. */
int sb_ledger_close(struct sb_ledger *l);

/* Counts the rows in the store, through a read connection of its own (it does not wait for the
 * writer; rows still queued are not counted). Thread-safe. Returns 0 or SB_EIO. */
int sb_ledger_count(struct sb_ledger *l, int64_t *out);

/* Counters since open, for tests, logs and health checks. */
struct sb_ledger_stats {
    uint64_t recorded;  /* rows accepted into the queue */
    uint64_t dropped;   /* rows refused because the queue was full */
    uint64_t committed; /* rows written and committed */
    uint64_t failed;    /* rows lost because a write failed */
    uint64_t commits;   /* transactions that wrote rows (group commits) */
    uint64_t purged;    /* rows deleted by retention */
    size_t queued;      /* rows waiting now */
};

/* Fills *out (zeros for a NULL ledger). Thread-safe. */
void sb_ledger_get_stats(struct sb_ledger *l, struct sb_ledger_stats *out);

#ifdef __cplusplus
}
#endif

#endif
