/* The Prometheus registry: the metric table, lock-free series lookup, relaxed atomic updates and
 * the text exposition format. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/metrics.h"

/* ---------------------------------------------------------------------------------------------
 * The table. One row per metric, in enum sb_metric order; docs/metrics.md explains each one and a
 * unit test checks that every name appears there.
 * ------------------------------------------------------------------------------------------- */
/* Seconds from a fast local step to a slow cloud completion. */
#define DURATION_BUCKETS                                                                           \
    .buckets = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},             \
    .n_buckets = 14
/* Local first tokens land around 0.1 s, cloud ones from 0.1 s to several seconds. */
#define TTFT_BUCKETS                                                                               \
    .buckets = {0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10},            \
    .n_buckets = 14
/* 45–65 tok/s locally is 15–22 ms a token; 18–28 tok/s in the cloud is 35–55 ms. */
#define INTER_TOKEN_BUCKETS                                                                        \
    .buckets = {0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025,                                    \
                0.035, 0.05,   0.075, 0.1,  0.25,  0.5,  1},                                       \
    .n_buckets = 14
#define QUEUE_BUCKETS                                                                              \
    .buckets = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}, .n_buckets = 13
/* The gateway's own time: the target is well under 0.1 ms. */
#define OVERHEAD_BUCKETS                                                                           \
    .buckets = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,                               \
                0.001,   0.0025,   0.005,   0.01,   0.025,   0.1},                                 \
    .n_buckets = 12
#define RATE_BUCKETS                                                                               \
    .buckets = {1, 5, 10, 15, 20, 25, 30, 40, 50, 65, 80, 100, 150, 250, 500, 1000}, .n_buckets = 16

static const struct sb_metric_def defs[SB_METRIC_COUNT] = {
    [SB_METRIC_REQUESTS] = {.name = "switchboard_requests_total",
                            .help = "Requests finished, by the model asked for, the backend that "
                                    "answered last (empty when none was tried) and HTTP status.",
                            .type = SB_METRIC_COUNTER,
                            .labels = {"model", "backend", "status"}},
    [SB_METRIC_REQUEST_DURATION] = {.name = "switchboard_request_duration_seconds",
                                    .help = "End-to-end request latency, from the request's "
                                            "arrival to its last byte.",
                                    .type = SB_METRIC_HISTOGRAM,
                                    .labels = {"model", "backend"},
                                    DURATION_BUCKETS,
                                    .sum_decimals = 6},
    [SB_METRIC_TTFT] = {.name = "switchboard_ttft_seconds",
                        .help = "Time to first token, from the request's arrival to the first "
                                "generated token.",
                        .type = SB_METRIC_HISTOGRAM,
                        .labels = {"model", "backend"},
                        TTFT_BUCKETS,
                        .sum_decimals = 6},
    [SB_METRIC_INTER_TOKEN] = {.name = "switchboard_inter_token_seconds",
                               .help = "Time between consecutive streamed tokens.",
                               .type = SB_METRIC_HISTOGRAM,
                               .labels = {"model", "backend"},
                               INTER_TOKEN_BUCKETS,
                               .sum_decimals = 7},
    [SB_METRIC_TOKENS] = {.name = "switchboard_tokens_total",
                          .help = "Tokens processed, by direction: prompt (not from cache), "
                                  "cached (prompt tokens served from a cache), completion.",
                          .type = SB_METRIC_COUNTER,
                          .labels = {"model", "backend", "direction"}},
    [SB_METRIC_TOKENS_PER_SECOND] = {.name = "switchboard_generation_tokens_per_second",
                                     .help = "Completion tokens per second of generation, one "
                                             "observation per request.",
                                     .type = SB_METRIC_HISTOGRAM,
                                     .labels = {"model", "backend"},
                                     RATE_BUCKETS,
                                     .sum_decimals = 3},
    [SB_METRIC_COST] = {.name = "switchboard_cost_microusd_total",
                        .help = "Priced cost of requests in micro-dollars (unpriced requests add "
                                "nothing).",
                        .type = SB_METRIC_COUNTER,
                        .labels = {"model", "backend"}},
    [SB_METRIC_QUEUE_DEPTH] = {.name = "switchboard_queue_depth",
                               .help = "Requests waiting for a slot of a local model.",
                               .type = SB_METRIC_GAUGE,
                               .labels = {"model"}},
    [SB_METRIC_QUEUE_SECONDS] = {.name = "switchboard_queue_seconds",
                                 .help = "Time requests waited for a slot of a local model.",
                                 .type = SB_METRIC_HISTOGRAM,
                                 .labels = {"model"},
                                 QUEUE_BUCKETS,
                                 .sum_decimals = 6},
    [SB_METRIC_BUSY_SLOTS] = {.name = "switchboard_busy_slots",
                              .help = "Sequence slots of a local model decoding a request now.",
                              .type = SB_METRIC_GAUGE,
                              .labels = {"model"}},
    [SB_METRIC_BREAKER_STATE] = {.name = "switchboard_breaker_state",
                                 .help = "Circuit-breaker state of a backend: 0 closed, 1 "
                                         "half-open, 2 open.",
                                 .type = SB_METRIC_GAUGE,
                                 .labels = {"backend"}},
    [SB_METRIC_RETRIES] = {.name = "switchboard_retries_total",
                           .help = "Retries of a backend after a failed attempt.",
                           .type = SB_METRIC_COUNTER,
                           .labels = {"backend"}},
    [SB_METRIC_FALLBACKS] = {.name = "switchboard_fallbacks_total",
                             .help = "Requests moved from a failed model to its fallback.",
                             .type = SB_METRIC_COUNTER,
                             .labels = {"from", "to"}},
    [SB_METRIC_GATEWAY_OVERHEAD] = {.name = "switchboard_gateway_overhead_seconds",
                                    .help = "Time Switchboard itself added to a request: total "
                                            "time minus time spent waiting on the backend.",
                                    .type = SB_METRIC_HISTOGRAM,
                                    OVERHEAD_BUCKETS,
                                    .sum_decimals = 9},
    [SB_METRIC_LEDGER_ROWS] = {.name = "switchboard_ledger_rows_total",
                               .help = "Request rows committed to the ledger.",
                               .type = SB_METRIC_COUNTER},
    [SB_METRIC_LEDGER_DROPPED] = {.name = "switchboard_ledger_dropped_total",
                                  .help = "Request rows dropped because the ledger's queue was "
                                          "full.",
                                  .type = SB_METRIC_COUNTER},
    [SB_METRIC_LEDGER_WRITE_FAILED] = {.name = "switchboard_ledger_write_failed_total",
                                       .help = "Request rows lost because a ledger write failed.",
                                       .type = SB_METRIC_COUNTER},
    [SB_METRIC_ALERTS] = {.name = "switchboard_alerts_total",
                          .help = "Alerts for the webhook, by type and outcome: sent (a 2xx "
                                  "reply), failed (given up on), dropped (the queue was full).",
                          .type = SB_METRIC_COUNTER,
                          .labels = {"type", "outcome"}},
    [SB_METRIC_REFUSED] = {.name = "switchboard_refused_total",
                           .help = "Model requests refused before any backend, by reason: "
                                   "missing_key, invalid_key, revoked_key, model_scope, "
                                   "sensitivity_scope, rate_requests, rate_tokens, budget.",
                           .type = SB_METRIC_COUNTER,
                           .labels = {"reason"}},
    [SB_METRIC_BUDGET_DOWNGRADES] = {.name = "switchboard_budget_downgrades_total",
                                     .help = "Requests that did not fit a budget and were served "
                                             "by the free (local) members of their chain.",
                                     .type = SB_METRIC_COUNTER},
};

/* Indexed by enum sb_metric_type. */
static const char *const type_names[] = {"counter", "gauge", "histogram"};

const struct sb_metric_def *sb_metrics_def(enum sb_metric id)
{
    if ((unsigned)id >= SB_METRIC_COUNT)
        return NULL;
    return &defs[id];
}

/* ---------------------------------------------------------------------------------------------
 * Series and their per-metric maps.
 *
 * Each metric has an open-addressing hash set of series pointers, allocated on its first series,
 * with twice SB_METRICS_MAX_SERIES slots so probes stay short and always reach an empty slot.
 * Series are only ever added (never moved or removed while running), so a lookup is a lock-free
 * walk with acquire loads; an insertion takes the metric's mutex, probes again, and publishes the
 * new series with a release store, which readers see whole or not at all.
 * ------------------------------------------------------------------------------------------- */
#define SLOTS (2 * SB_METRICS_MAX_SERIES)
_Static_assert((SLOTS & (SLOTS - 1)) == 0, "the slot count must be a power of two");

struct sb_metric_series {
    const struct sb_metric_def *def; /* NULL for the sink */
    uint64_t hash;
    const char *values[SB_METRICS_MAX_LABELS]; /* NUL-terminated, in the same allocation */
    size_t lens[SB_METRICS_MAX_LABELS];
    _Atomic uint64_t count;  /* counters: the value */
    _Atomic int64_t gauge;   /* gauges: the value */
    _Atomic uint64_t sum;    /* histograms: the sum, in 10^-sum_decimals units */
    _Atomic uint64_t hist[]; /* histograms: n_buckets + 1 per-bucket (not cumulative) counts */
};

struct metric_state {
    _Atomic(_Atomic(struct sb_metric_series *) *) slots; /* SLOTS entries, or NULL */
    size_t n_series;                                     /* under insert_lock */
    bool warned; /* under insert_lock: the overflow warning was logged */
};

static struct metric_state states[SB_METRIC_COUNT];
/* Insertions happen once per label set, so one lock for all metrics costs nothing measurable. */
static pthread_mutex_t insert_lock = PTHREAD_MUTEX_INITIALIZER;

/* Updates to the sink go nowhere: its def is NULL and every update checks. */
static struct sb_metric_series sink;

static size_t n_labels(const struct sb_metric_def *def)
{
    size_t n = 0;
    while (n < SB_METRICS_MAX_LABELS && def->labels[n] != NULL)
        n++;
    return n;
}

/* The length a label value is kept at: at most SB_METRICS_MAX_LABEL_VALUE bytes, cut before a
 * UTF-8 continuation byte so the exposition stays valid UTF-8. */
static size_t value_len(const char *v)
{
    if (v == NULL)
        return 0;
    size_t len = strnlen(v, SB_METRICS_MAX_LABEL_VALUE + 1);
    if (len <= SB_METRICS_MAX_LABEL_VALUE)
        return len;
    len = SB_METRICS_MAX_LABEL_VALUE;
    while (len > 0 && ((unsigned char)v[len] & 0xC0) == 0x80)
        len--;
    return len;
}

/* FNV-1a over the values, each followed by a byte no UTF-8 text contains, so ("ab","c") and
 * ("a","bc") differ. */
static uint64_t hash_values(const char *const *vals, const size_t *lens, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < lens[i]; j++) {
            h ^= (unsigned char)vals[i][j];
            h *= 0x100000001b3ull;
        }
        h ^= 0xff;
        h *= 0x100000001b3ull;
    }
    return h;
}

static bool same_values(const struct sb_metric_series *s, const char *const *vals,
                        const size_t *lens, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s->lens[i] != lens[i] || memcmp(s->values[i], vals[i], lens[i]) != 0)
            return false;
    return true;
}

/* Returns the series with these values, or NULL. Lock-free. */
static struct sb_metric_series *find(_Atomic(struct sb_metric_series *) *slots, uint64_t h,
                                     const char *const *vals, const size_t *lens, size_t n)
{
    if (slots == NULL)
        return NULL;
    for (size_t i = h & (SLOTS - 1);; i = (i + 1) & (SLOTS - 1)) {
        struct sb_metric_series *s = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (s == NULL)
            return NULL;
        if (s->hash == h && same_values(s, vals, lens, n))
            return s;
    }
}

/* Allocates a series (with its values and histogram counts in one block), or returns NULL. */
static struct sb_metric_series *series_new(const struct sb_metric_def *def, uint64_t h,
                                           const char *const *vals, const size_t *lens, size_t n)
{
    size_t n_hist = def->type == SB_METRIC_HISTOGRAM ? def->n_buckets + 1 : 0;
    size_t head = sizeof(struct sb_metric_series) + n_hist * sizeof(_Atomic uint64_t);
    size_t text = 0;
    for (size_t i = 0; i < n; i++)
        text += lens[i] + 1;
    struct sb_metric_series *s = calloc(1, head + text);
    if (s == NULL)
        return NULL;
    s->def = def;
    s->hash = h;
    char *p = (char *)s + head;
    for (size_t i = 0; i < n; i++) {
        memcpy(p, vals[i], lens[i]);
        p[lens[i]] = '\0';
        s->values[i] = p;
        s->lens[i] = lens[i];
        p += lens[i] + 1;
    }
    atomic_init(&s->count, 0);
    atomic_init(&s->gauge, 0);
    atomic_init(&s->sum, 0);
    for (size_t i = 0; i < n_hist; i++)
        atomic_init(&s->hist[i], 0);
    return s;
}

/* The slow path: under the metric's lock, find again or insert. */
static struct sb_metric_series *insert(enum sb_metric id, uint64_t h, const char *const *vals,
                                       const size_t *lens, size_t n)
{
    struct metric_state *st = &states[id];
    struct sb_metric_series *s = NULL;
    pthread_mutex_lock(&insert_lock);
    _Atomic(struct sb_metric_series *) *slots =
        atomic_load_explicit(&st->slots, memory_order_relaxed);
    s = find(slots, h, vals, lens, n);
    if (s != NULL)
        goto out;
    if (st->n_series >= SB_METRICS_MAX_SERIES) {
        if (!st->warned)
            sb_log(SB_LOG_WARN, NULL,
                   "metric %s has %d label sets, its maximum; updates to new ones are dropped",
                   defs[id].name, SB_METRICS_MAX_SERIES);
        st->warned = true;
        goto out;
    }
    if (slots == NULL) {
        slots = calloc(SLOTS, sizeof *slots);
        if (slots == NULL)
            goto out;
        for (size_t i = 0; i < SLOTS; i++)
            atomic_init(&slots[i], NULL);
        atomic_store_explicit(&st->slots, slots, memory_order_release);
    }
    s = series_new(&defs[id], h, vals, lens, n);
    if (s == NULL)
        goto out;
    size_t i = h & (SLOTS - 1);
    while (atomic_load_explicit(&slots[i], memory_order_relaxed) != NULL)
        i = (i + 1) & (SLOTS - 1);
    atomic_store_explicit(&slots[i], s, memory_order_release);
    st->n_series++;
out:
    pthread_mutex_unlock(&insert_lock);
    return s;
}

struct sb_metric_series *sb_metrics_series(enum sb_metric id, const char *const *labels)
{
    if ((unsigned)id >= SB_METRIC_COUNT)
        return &sink;
    size_t n = n_labels(&defs[id]);
    const char *vals[SB_METRICS_MAX_LABELS];
    size_t lens[SB_METRICS_MAX_LABELS];
    for (size_t i = 0; i < n; i++) {
        vals[i] = labels != NULL && labels[i] != NULL ? labels[i] : "";
        lens[i] = value_len(vals[i]);
    }
    uint64_t h = hash_values(vals, lens, n);
    _Atomic(struct sb_metric_series *) *slots =
        atomic_load_explicit(&states[id].slots, memory_order_acquire);
    struct sb_metric_series *s = find(slots, h, vals, lens, n);
    if (s == NULL)
        s = insert(id, h, vals, lens, n);
    return s != NULL ? s : &sink;
}

void sb_metrics_reset(void)
{
    for (size_t id = 0; id < SB_METRIC_COUNT; id++) {
        struct metric_state *st = &states[id];
        _Atomic(struct sb_metric_series *) *slots =
            atomic_load_explicit(&st->slots, memory_order_relaxed);
        if (slots != NULL) {
            for (size_t i = 0; i < SLOTS; i++)
                free(atomic_load_explicit(&slots[i], memory_order_relaxed));
            free(slots);
        }
        atomic_store_explicit(&st->slots, NULL, memory_order_relaxed);
        st->n_series = 0;
        st->warned = false;
    }
}

/* ---------------------------------------------------------------------------------------------
 * Updates. Relaxed ordering: each value only has to be exact on its own; nothing else is
 * published through it.
 * ------------------------------------------------------------------------------------------- */
static bool is(const struct sb_metric_series *s, enum sb_metric_type type)
{
    return s != NULL && s->def != NULL && s->def->type == type;
}

void sb_metrics_add(struct sb_metric_series *s, uint64_t n)
{
    if (is(s, SB_METRIC_COUNTER))
        atomic_fetch_add_explicit(&s->count, n, memory_order_relaxed);
}

void sb_metrics_set(struct sb_metric_series *s, int64_t v)
{
    if (is(s, SB_METRIC_GAUGE))
        atomic_store_explicit(&s->gauge, v, memory_order_relaxed);
}

void sb_metrics_gauge_add(struct sb_metric_series *s, int64_t delta)
{
    if (is(s, SB_METRIC_GAUGE))
        atomic_fetch_add_explicit(&s->gauge, delta, memory_order_relaxed);
}

static const double pow10_table[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9};
static const uint64_t pow10_int[] = {1,      10,      100,      1000,      10000,
                                     100000, 1000000, 10000000, 100000000, 1000000000};

void sb_metrics_observe(struct sb_metric_series *s, double v)
{
    if (!is(s, SB_METRIC_HISTOGRAM))
        return;
    const struct sb_metric_def *def = s->def;
    /* !(v > 0) also catches NaN. */
    if (!(v > 0))
        v = 0;
    size_t b = 0;
    while (b < def->n_buckets && v > def->buckets[b])
        b++;
    atomic_fetch_add_explicit(&s->hist[b], 1, memory_order_relaxed);
    double units = v * pow10_table[SB_MIN(def->sum_decimals, 9u)] + 0.5;
    /* A value too large for the sum (centuries of seconds) saturates rather than wrapping. */
    uint64_t add = units < 1.8e19 ? (uint64_t)units : UINT64_MAX / 2;
    atomic_fetch_add_explicit(&s->sum, add, memory_order_relaxed);
}

void sb_metrics_counter_add(enum sb_metric id, const char *const *labels, uint64_t n)
{
    sb_metrics_add(sb_metrics_series(id, labels), n);
}

void sb_metrics_gauge_set(enum sb_metric id, const char *const *labels, int64_t v)
{
    sb_metrics_set(sb_metrics_series(id, labels), v);
}

void sb_metrics_histogram_observe(enum sb_metric id, const char *const *labels, double v)
{
    sb_metrics_observe(sb_metrics_series(id, labels), v);
}

/* ---------------------------------------------------------------------------------------------
 * Exposition (text format 0.0.4)
 * ------------------------------------------------------------------------------------------- */
/* Writes v in the fewest significant digits that read back as v, positional unless very small or
 * large: "0.005", "120", "5e-05", as Prometheus's own clients write bucket bounds. */
static void format_double(char *text, size_t size, double v)
{
    char sci[40];
    int digits = 1;
    for (; digits <= 17; digits++) {
        snprintf(sci, sizeof sci, "%.*e", digits - 1, v);
        if (strtod(sci, NULL) == v)
            break;
    }
    const char *e = strchr(sci, 'e');
    long exp = e != NULL ? strtol(e + 1, NULL, 10) : 0;
    if (exp < -4 || exp >= 15) {
        snprintf(text, size, "%s", sci);
        return;
    }
    long decimals = digits - 1 - exp;
    snprintf(text, size, "%.*f", (int)(decimals > 0 ? decimals : 0), v);
}

/* Help text escapes backslash and newline; label values also escape the double quote. */
static void append_escaped(struct sb_buf *out, const char *s, size_t len, bool quote, int *rc)
{
    size_t run = 0;
    for (size_t i = 0; i < len && *rc == 0; i++) {
        const char *esc = NULL;
        if (s[i] == '\\')
            esc = "\\\\";
        else if (s[i] == '\n')
            esc = "\\n";
        else if (s[i] == '"' && quote)
            esc = "\\\"";
        if (esc == NULL)
            continue;
        *rc = sb_buf_append(out, s + run, i - run);
        if (*rc == 0)
            *rc = sb_buf_append_c(out, esc);
        run = i + 1;
    }
    if (*rc == 0)
        *rc = sb_buf_append(out, s + run, len - run);
}

/* Writes "name{a="x",b="y",le="0.5"} " (the braces only when there are labels). */
static void append_series_name(struct sb_buf *out, const struct sb_metric_series *s,
                               const char *suffix, const char *le, int *rc)
{
    const struct sb_metric_def *def = s->def;
    size_t n = n_labels(def);
    if (*rc == 0)
        *rc = sb_buf_printf(out, "%s%s", def->name, suffix);
    if (n == 0 && le == NULL) {
        if (*rc == 0)
            *rc = sb_buf_append_char(out, ' ');
        return;
    }
    if (*rc == 0)
        *rc = sb_buf_append_char(out, '{');
    for (size_t i = 0; i < n && *rc == 0; i++) {
        *rc = sb_buf_printf(out, "%s%s=\"", i > 0 ? "," : "", def->labels[i]);
        append_escaped(out, s->values[i], s->lens[i], true, rc);
        if (*rc == 0)
            *rc = sb_buf_append_char(out, '"');
    }
    if (le != NULL && *rc == 0)
        *rc = sb_buf_printf(out, "%sle=\"%s\"", n > 0 ? "," : "", le);
    if (*rc == 0)
        *rc = sb_buf_append_c(out, "} ");
}

static void render_histogram(struct sb_buf *out, const struct sb_metric_series *s, int *rc)
{
    const struct sb_metric_def *def = s->def;
    uint64_t cumulative = 0;
    for (size_t b = 0; b <= def->n_buckets; b++) {
        cumulative += atomic_load_explicit(&s->hist[b], memory_order_relaxed);
        char le[40];
        if (b < def->n_buckets)
            format_double(le, sizeof le, def->buckets[b]);
        else
            snprintf(le, sizeof le, "+Inf");
        append_series_name(out, s, "_bucket", le, rc);
        if (*rc == 0)
            *rc = sb_buf_printf(out, "%llu\n", (unsigned long long)cumulative);
    }
    /* The sum as an exact decimal: whole part, then the fraction without trailing zeros. */
    unsigned d = SB_MIN(def->sum_decimals, 9u);
    uint64_t sum = atomic_load_explicit(&s->sum, memory_order_relaxed);
    uint64_t whole = sum / pow10_int[d], frac = sum % pow10_int[d];
    append_series_name(out, s, "_sum", NULL, rc);
    if (*rc == 0)
        *rc = sb_buf_printf(out, "%llu", (unsigned long long)whole);
    if (frac != 0 && *rc == 0) {
        char digits[24];
        snprintf(digits, sizeof digits, "%0*llu", (int)d, (unsigned long long)frac);
        size_t len = d;
        while (len > 0 && digits[len - 1] == '0')
            len--;
        *rc = sb_buf_append_char(out, '.');
        if (*rc == 0)
            *rc = sb_buf_append(out, digits, len);
    }
    if (*rc == 0)
        *rc = sb_buf_append_char(out, '\n');
    append_series_name(out, s, "_count", NULL, rc);
    if (*rc == 0)
        *rc = sb_buf_printf(out, "%llu\n", (unsigned long long)cumulative);
}

static int compare_series(const void *a, const void *b)
{
    const struct sb_metric_series *x = *(struct sb_metric_series *const *)a;
    const struct sb_metric_series *y = *(struct sb_metric_series *const *)b;
    for (size_t i = 0; i < SB_METRICS_MAX_LABELS && x->values[i] != NULL; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c != 0)
            return c;
    }
    return 0;
}

int sb_metrics_render(struct sb_buf *out)
{
    int rc = 0;
    struct sb_metric_series **list = malloc(SB_METRICS_MAX_SERIES * sizeof *list);
    if (list == NULL)
        return SB_ENOMEM;
    for (size_t id = 0; id < SB_METRIC_COUNT && rc == 0; id++) {
        const struct sb_metric_def *def = &defs[id];
        rc = sb_buf_printf(out, "# HELP %s ", def->name);
        append_escaped(out, def->help, strlen(def->help), false, &rc);
        if (rc == 0)
            rc = sb_buf_printf(out, "\n# TYPE %s %s\n", def->name, type_names[def->type]);
        /* A metric without labels always has its one series, so it shows 0 before any update. */
        if (n_labels(def) == 0)
            sb_metrics_series((enum sb_metric)id, NULL);
        _Atomic(struct sb_metric_series *) *slots =
            atomic_load_explicit(&states[id].slots, memory_order_acquire);
        size_t n = 0;
        for (size_t i = 0; slots != NULL && i < SLOTS && n < SB_METRICS_MAX_SERIES; i++) {
            struct sb_metric_series *s = atomic_load_explicit(&slots[i], memory_order_acquire);
            if (s != NULL)
                list[n++] = s;
        }
        qsort(list, n, sizeof *list, compare_series);
        for (size_t i = 0; i < n && rc == 0; i++) {
            const struct sb_metric_series *s = list[i];
            switch (def->type) {
            case SB_METRIC_COUNTER:
                append_series_name(out, s, "", NULL, &rc);
                if (rc == 0)
                    rc = sb_buf_printf(
                        out, "%llu\n",
                        (unsigned long long)atomic_load_explicit(&s->count, memory_order_relaxed));
                break;
            case SB_METRIC_GAUGE:
                append_series_name(out, s, "", NULL, &rc);
                if (rc == 0)
                    rc = sb_buf_printf(
                        out, "%lld\n",
                        (long long)atomic_load_explicit(&s->gauge, memory_order_relaxed));
                break;
            case SB_METRIC_HISTOGRAM: render_histogram(out, s, &rc); break;
            }
        }
    }
    free(list);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reading series in process
 * ------------------------------------------------------------------------------------------- */
int sb_metrics_read(enum sb_metric id, sb_metrics_read_fn fn, void *ud)
{
    if ((unsigned)id >= SB_METRIC_COUNT || fn == NULL)
        return SB_EINVAL;
    const struct sb_metric_def *def = &defs[id];
    _Atomic(struct sb_metric_series *) *slots =
        atomic_load_explicit(&states[id].slots, memory_order_acquire);
    for (size_t i = 0; slots != NULL && i < SLOTS; i++) {
        struct sb_metric_series *s = atomic_load_explicit(&slots[i], memory_order_acquire);
        if (s == NULL)
            continue;
        uint64_t cumulative[SB_METRICS_MAX_BUCKETS + 1];
        struct sb_metric_reading r = {.def = def, .labels = s->values};
        switch (def->type) {
        case SB_METRIC_COUNTER:
            r.counter = atomic_load_explicit(&s->count, memory_order_relaxed);
            break;
        case SB_METRIC_GAUGE:
            r.gauge = atomic_load_explicit(&s->gauge, memory_order_relaxed);
            break;
        case SB_METRIC_HISTOGRAM:
            /* The bucket counts first, then the sum: the order render_histogram reads them in. */
            for (size_t b = 0; b <= def->n_buckets; b++) {
                r.count += atomic_load_explicit(&s->hist[b], memory_order_relaxed);
                cumulative[b] = r.count;
            }
            r.cumulative = cumulative;
            r.sum = (double)atomic_load_explicit(&s->sum, memory_order_relaxed) /
                    pow10_table[SB_MIN(def->sum_decimals, 9u)];
            break;
        }
        fn(&r, ud);
    }
    return 0;
}
