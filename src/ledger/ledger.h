/* The request ledger: one flat row per request, handed over by I/O threads without waiting and
 * written by a writer thread in group commits to SQLite or PostgreSQL, behind the same API. */
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
    int64_t cache_write_tokens;   /* of prompt_tokens, those written to a provider's cache */
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
 * cfg->path is a SQLite file, or a postgres:// or postgresql:// URL (libpq's form, e.g.
 * postgres://user:password@host:5432/db?sslmode=require). cfg is read during the call only. On
 * success returns 0 and *out is the ledger, which the caller closes with sb_ledger_close; when
 * cfg->path is "" the ledger is disabled: 0 and *out = NULL, and every function below accepts
 * NULL and does nothing. On failure *out is NULL, err (when not NULL) receives one line saying
 * what failed, where and what to do (a URL's password never appears in it), and the result is:
 *   SB_EIO          the database cannot be opened, made WAL, reached, or migrated (a folder that
 *                   does not exist, no permission, a file that is not a database, a server that
 *                   refuses the connection or the password, a newer schema);
 *   SB_EINVAL       a cfg value out of range, or a URL libpq cannot parse; SB_ENOMEM. */
int sb_ledger_open(const struct sb_ledger_config *cfg, struct sb_ledger **out, char *err,
                   size_t err_size);

/* Copies row into the ledger's queue and returns at once: never touches the disk, never waits
 * for the writer (a short mutex only). Safe from any thread. Returns 0, or SB_EFULL when the
 * queue is full: the row is dropped, counted (switchboard_ledger_dropped_total) and a warning is
 * logged, at most every 10 s. Must not be called concurrently with or after sb_ledger_close. */
int sb_ledger_record(struct sb_ledger *l, const struct sb_ledger_row *row);

/* Whether the ledger records prompt and completion text (ledger.content_logging); false for NULL.
 * Callers gather the text only when it is true. */
bool sb_ledger_content_logging(const struct sb_ledger *l);

/* As sb_ledger_record, and when content logging is on, also the request's text: prompt_json (the
 * request body as the client sent it) and completion (the text the client was sent), copied
 * (borrowed for the call; cut at SB_LEDGER_CONTENT_MAX bytes each, invalid UTF-8 and NUL bytes
 * replaced with U+FFFD) and written with the row, in the same transaction, to the
 * request_content table. With content logging off the text is ignored. The copy is made outside
 * the queue's lock. When the text cannot be kept (no memory, or 64 MiB of text already waiting)
 * the row is recorded without it, counted in stats.content_dropped. Returns as
 * sb_ledger_record. */
int sb_ledger_record_content(struct sb_ledger *l, const struct sb_ledger_row *row,
                             struct sb_str prompt_json, struct sb_str completion);

/* The most bytes of prompt or completion text one row records. */
#define SB_LEDGER_CONTENT_MAX ((size_t)4 << 20)

/* Waits until every row recorded before the call (by any thread) is committed, and any due
 * retention pass has finished. For tests and shutdown: it blocks. Returns 0, or SB_EIO when a
 * write failed since the previous flush (those rows are lost and counted). */
int sb_ledger_flush(struct sb_ledger *l);

/* Flushes, stops the writer and closes the store; the SIGTERM path, once the I/O threads have
 * stopped recording. Frees l (NULL is allowed). Returns 0, or SB_EIO when rows still queued could
 * not be written (rows lost earlier were counted and logged then, and do not count here). */
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
    /* rows recorded without their text (too much text waiting, or no memory for it) */
    uint64_t content_dropped;
};

/* Fills *out (zeros for a NULL ledger). Thread-safe. */
void sb_ledger_get_stats(struct sb_ledger *l, struct sb_ledger_stats *out);

/* ---------------------------------------------------------------------------------------------
 * Reading, for reports: a read-only connection of its own, which never blocks a writer (WAL) and
 * may read a ledger another instance is writing. Not thread-safe: one thread per reader.
 * ------------------------------------------------------------------------------------------- */
struct sb_ledger_reader;

/* Opens target (a SQLite file, or a postgres:// URL as for sb_ledger_open) read-only, checking
 * it holds a ledger. On success *out is the caller's, closed with sb_ledger_reader_close. On
 * failure *out is NULL, err receives one line saying what failed and what to do (without a URL's
 * password), and the result is SB_EIO (missing file, not a database, a server that cannot be
 * reached, not a ledger) or SB_ENOMEM. */
int sb_ledger_reader_open(const char *target, struct sb_ledger_reader **out, char *err,
                          size_t err_size);

/* Closes r (NULL is allowed). */
void sb_ledger_reader_close(struct sb_ledger_reader *r);

/* The store's last error message, for a query that returned SB_EIO. Static or owned by r: valid
 * until r's next call. Never NULL. */
const char *sb_ledger_reader_error(struct sb_ledger_reader *r);

/* Writes target into out (NUL-terminated, cut to out_size) as it may be shown: a URL's password
 * replaced with "***". For messages that name a ledger. */
void sb_ledger_display_name(const char *target, char *out, size_t out_size);

/* What a query selects: rows with since_ms <= ts_ms < until_ms, and, when n_backends > 0, only
 * those whose backend is one of backends[0..n_backends). Borrowed for the call. */
struct sb_ledger_filter {
    int64_t since_ms, until_ms;
    const char *const *backends;
    size_t n_backends;
    int64_t long_prompt_tokens; /* aggregates count prompts above this many tokens; 0 = none */
};

/* How rows are grouped. */
enum sb_ledger_group {
    SB_LEDGER_GROUP_ALL,         /* one group of every row (name "") */
    SB_LEDGER_GROUP_BACKEND,     /* by the backend that served ("" when none did) */
    SB_LEDGER_GROUP_MODEL,       /* by the model alias asked for */
    SB_LEDGER_GROUP_KEY,         /* by API key id ("" = no key) */
    SB_LEDGER_GROUP_SENSITIVITY, /* by sensitivity class ("" = unclassified) */
};

/* One group's sums. */
struct sb_ledger_agg {
    char name[96]; /* the group's value, NUL-terminated (cut at a character boundary) */
    int64_t requests;
    int64_t errors;        /* status >= 400 or an error class */
    int64_t retried;       /* attempts > 1 (retries or fallbacks) */
    int64_t fell_back;     /* served after another backend was tried (backends_tried has a ',') */
    int64_t prompt_tokens; /* cached ones included */
    int64_t cached_prompt_tokens;
    int64_t cache_write_tokens; /* 0 from a ledger older than that column */
    int64_t completion_tokens;
    int64_t cost_microusd;     /* sum over priced rows */
    int64_t priced;            /* rows with a cost */
    int64_t unpriced;          /* rows without one (NULL cost) */
    int64_t pii;               /* rows where PII was found (pii_counts neither "" nor "{}") */
    int64_t long_prompts;      /* rows with prompt_tokens > filter->long_prompt_tokens (when > 0) */
    int64_t first_ms, last_ms; /* earliest and latest ts_ms; 0 when requests == 0 */
};

/* Sums the selected rows by group, in ascending order of name. On success *out is a new array of
 * *n groups (NULL when none) the caller frees with free(). Returns 0, SB_EIO or SB_ENOMEM. With
 * SB_LEDGER_GROUP_ALL there is always exactly one group, zeros when no row matched. */
int sb_ledger_aggregate(struct sb_ledger_reader *r, enum sb_ledger_group by,
                        const struct sb_ledger_filter *f, struct sb_ledger_agg **out, size_t *n);

/* Columns percentiles are taken over. Rows where the column is NULL (not measured) are left out. */
enum sb_ledger_metric {
    SB_LEDGER_METRIC_LATENCY_MS,
    SB_LEDGER_METRIC_TTFT_MS,
    SB_LEDGER_METRIC_TOKENS_PER_S,
    SB_LEDGER_METRIC_QUEUE_MS,
};

/* The 0-based index of the p-th percentile (0 < p <= 100) among n sorted values by the
 * nearest-rank method: the smallest value with at least p% of the values at or below it, i.e.
 * index ceil(p / 100 * n) - 1 (0 for p <= 0). n must be > 0. */
int64_t sb_ledger_percentile_index(int64_t n, double p);

/* Percentiles ps[0..n_ps) (each in (0, 100]) of metric over the selected rows, by nearest rank,
 * into out[0..n_ps); *count receives how many values there were (out is untouched when 0). Reads
 * the values in order from the store without holding them in memory. Returns 0 or SB_EIO. */
int sb_ledger_percentiles(struct sb_ledger_reader *r, enum sb_ledger_metric metric,
                          const struct sb_ledger_filter *f, const double *ps, size_t n_ps,
                          double *out, int64_t *count);

/* Busy time of the selected rows: the total length of the union of their [ts_ms, ts_ms +
 * latency_ms] intervals (latency rounded to whole milliseconds), so overlapping requests count
 * once. *tokens receives their prompt + completion tokens. Returns 0 or SB_EIO. */
int sb_ledger_busy(struct sb_ledger_reader *r, const struct sb_ledger_filter *f, int64_t *busy_ms,
                   int64_t *tokens);

#ifdef __cplusplus
}
#endif

#endif
