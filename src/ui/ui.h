/* The dashboard's data (docs/dashboard.md): the ring of recent routing decisions the server keeps
 * in memory, the JSON summary that GET /ui/api/summary answers with (read from the metrics
 * registry, so that it shows exactly what /metrics shows), and the page's files, compiled into the
 * binary. Nothing here speaks HTTP: src/http/ui.c serves it. */
#ifndef SB_UI_H
#define SB_UI_H

#include "core/core.h"

/* The most recent decisions a server may keep (config `ui.recent`). */
#define SB_UI_MAX_RECENT 10000

/* ---------------------------------------------------------------------------------------------
 * Recent decisions. One entry per model request, made when it ends: who asked for what, where it
 * went and why, how it went. Metadata only: never prompt or completion text, never a PII value
 * (the reason names rules, sensitivities and PII kinds, as the x-switchboard-route header does).
 * ------------------------------------------------------------------------------------------- */
struct sb_ui_decision {
    int64_t ts_ms;         /* arrival, Unix milliseconds */
    char request_id[40];   /* "req_..." */
    char api[16];          /* the inbound API: "openai", "anthropic", "ollama" */
    char model[96];        /* the alias asked for, as sent (cut to fit) */
    char backend[96];      /* the configured model that served; "" = none */
    char rule[64];         /* the routing rule that decided; "default"; "" = not routed */
    char reason[256];      /* the router's one-line explanation; "" = not routed */
    char sensitivity[16];  /* the effective sensitivity; "" = not routed */
    char error_class[32];  /* "" on success (the ledger's error classes) */
    int32_t status;        /* the HTTP status sent (499: the client left) */
    int32_t attempts;      /* backend attempts, retries and fallbacks included */
    int64_t prompt_tokens; /* cached ones included */
    int64_t completion_tokens;
    int64_t cost_microusd; /* -1 = unpriced */
    double latency_ms;     /* arrival to last byte */
    double ttft_ms;        /* arrival to first token; < 0 = none */
    bool streamed;
};

struct sb_ui;

/* Returns 0 and *out, an empty ring of capacity decisions (1 to SB_UI_MAX_RECENT); SB_EINVAL for
 * another capacity, SB_ENOMEM. The caller frees it with sb_ui_free once no thread records. */
int sb_ui_new(size_t capacity, struct sb_ui **out);
/* NULL is allowed. */
void sb_ui_free(struct sb_ui *ui);
/* Copies d in, dropping the oldest entry when full, and adds its cost (when priced) to the day
 * of d->ts_ms (UTC). ui NULL: nothing. Thread-safe; holds a mutex for a copy. */
void sb_ui_record(struct sb_ui *ui, const struct sb_ui_decision *d);
/* Copies the newest min(max, held) decisions into out, newest first, and returns how many.
 * *total (may be NULL) gets the count ever recorded. Thread-safe. */
size_t sb_ui_recent(struct sb_ui *ui, struct sb_ui_decision *out, size_t max, uint64_t *total);
/* The ring's capacity. */
size_t sb_ui_capacity(const struct sb_ui *ui);
/* The priced cost, in micro-dollars, of the decisions recorded whose arrival falls on the UTC
 * day of now_ms (0 when none, or when the latest recorded day is another). Thread-safe. */
int64_t sb_ui_cost_today(struct sb_ui *ui, int64_t now_ms);

/* ---------------------------------------------------------------------------------------------
 * The summary
 * ------------------------------------------------------------------------------------------- */
/* A configured model, for the per-backend table: listed even before it served anything. */
struct sb_ui_model {
    const char *name; /* borrowed for the call */
    bool priced;      /* its requests are priced from the price table (cloud kinds) */
};

struct sb_ui_summary_params {
    const char *version;  /* the gateway's version */
    const char *instance; /* what names this instance (its host name); may be NULL */
    const char *listen;   /* "host:port"; may be NULL */
    int64_t now_ms;       /* Unix milliseconds */
    int64_t started_ms;   /* when the server started, Unix milliseconds */
    const struct sb_ui_model *models;
    size_t n_models;
};

/* Appends the summary as one JSON object (docs/dashboard.md lists its members): totals, one
 * entry per backend (the `backend` label) and per model asked (the `model` label) with requests
 * by status class, tokens and cost from the counters /metrics exposes, TTFT and latency
 * percentiles estimated from the same histograms, breaker states, queue depth and busy slots,
 * and ui's recent decisions (ui may be NULL: none). Everything borrowed for the call. Returns 0,
 * SB_ENOMEM or SB_ETOOBIG (out then holds a partial text). Thread-safe. */
int sb_ui_write_summary(struct sb_ui *ui, const struct sb_ui_summary_params *p, struct sb_buf *out);

/* The q-quantile (0 < q < 1) of a histogram as Prometheus's histogram_quantile() estimates it:
 * linear interpolation inside the bucket that holds rank q * count, the lowest bucket starting at
 * 0, and the highest finite bound when the rank falls in the +Inf bucket. bounds[0, n) increase;
 * cumulative[0, n] are the cumulative counts, cumulative[n] the total. NaN when the total is 0. */
double sb_ui_quantile(double q, const double *bounds, size_t n, const uint64_t *cumulative);

/* ---------------------------------------------------------------------------------------------
 * The page's files
 * ------------------------------------------------------------------------------------------- */
struct sb_ui_asset {
    const char *path;         /* the URL path that serves it */
    const char *content_type; /* with its charset */
    struct sb_str body;       /* static: compiled in from ui/ */
    const char *etag;         /* a strong validator of body, quoted: "\"9f86d081884c7d65\"" */
};

/* The file served at path (the query excluded), or NULL. Static. Thread-safe. */
const struct sb_ui_asset *sb_ui_asset_find(const char *path);
/* Every file; *n gets the count. Static. */
const struct sb_ui_asset *sb_ui_assets(size_t *n);

#endif
