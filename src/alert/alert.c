/* Raising alerts: the spend hook that feeds the spike detector, the budget callback, and for each
 * alert its log line and its JSON body (docs/alerts.md), handed to the sender's queue (send.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alert/internal.h"
#include "budget/budget.h"

const char *const sb__alert_type_names[SB__ALERT_TYPES] = {
    [SB__ALERT_SPEND_SPIKE] = "spend_spike",
    [SB__ALERT_BUDGET] = "budget_threshold",
};

/* Indexed by enum sb__alert_outcome: the metric's outcome label. */
static const char *const outcome_names[SB__ALERT_OUTCOMES] = {
    [SB__ALERT_SENT] = "sent",
    [SB__ALERT_FAILED] = "failed",
    [SB__ALERT_DROPPED] = "dropped",
};

/* The scopes a budget alert may name. */
static const char *const budget_scopes[] = {
    "key",    /* one API key's budget */
    "team",   /* the budget shared by a team's keys */
    "global", /* the whole gateway's budget */
};

/* An alert's JSON and its text are far below this; a longer budget name is cut first. */
#define BODY_MAX       ((size_t)16 << 10)
#define TEXT_MAX       ((size_t)4 << 10)
#define NAME_MAX_BYTES 256
#define INSTANCE_MAX   256

/* ---------------------------------------------------------------------------------------------
 * Formatting
 * ------------------------------------------------------------------------------------------- */
/* Appends at most max bytes of s with control bytes shown as '?', so that a name cannot break the
 * log line it is in. */
static void append_clean(struct sb_buf *b, const char *s, size_t max)
{
    size_t len = strlen(s);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        sb_buf_append_char(b, c < 0x20 || c == 0x7F ? '?' : (char)c);
    }
}

/* A JSON object written with a sticky error: after the first failed append nothing more is
 * written, and the caller checks rc once. */
struct json {
    struct sb_buf buf;
    int rc;
};

static void json_raw(struct json *j, const char *fmt, ...) SB_PRINTF(2, 3);

static void json_raw(struct json *j, const char *fmt, ...)
{
    if (j->rc != 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    j->rc = sb_buf_vprintf(&j->buf, fmt, ap);
    va_end(ap);
}

/* ,"key":"s" with s escaped, or ,"key":null when null is true; the object's first field has no
 * comma. */
static void json_str(struct json *j, const char *key, struct sb_str s, bool null)
{
    json_raw(j, "%s\"%s\":", j->buf.len > 1 ? "," : "", key);
    if (null) {
        json_raw(j, "null");
        return;
    }
    json_raw(j, "\"");
    if (j->rc == 0)
        j->rc = sb_buf_append_json_escaped(&j->buf, s);
    json_raw(j, "\"");
}

static void json_int(struct json *j, const char *key, int64_t v)
{
    json_raw(j, ",\"%s\":%lld", key, (long long)v);
}

/* Starts the object with what every alert carries: its type, the time and the instance. */
static void json_begin(struct json *j, const struct sb_alerts *a, enum sb__alert_type type)
{
    char ts[32];
    struct tm tm;
    time_t now = (time_t)sb_unix_time();
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    sb_buf_init(&j->buf, BODY_MAX);
    j->rc = 0;
    json_raw(j, "{");
    json_str(j, "type", sb_str_c(sb__alert_type_names[type]), false);
    json_str(j, "ts", sb_str_c(ts), false);
    json_str(j, "instance", sb_str_c(a->instance), false);
}

/* ---------------------------------------------------------------------------------------------
 * Raising
 * ------------------------------------------------------------------------------------------- */
void sb__alert_count(struct sb_alerts *a, enum sb__alert_type type, enum sb__alert_outcome o)
{
    atomic_fetch_add(&a->outcomes[o], 1);
    sb_metrics_add(a->m[type][o], 1);
}

/* Logs the alert's line, ends its JSON with the same line as "text", and queues it for the
 * webhook. Frees j's buffer. */
static void raise_alert(struct sb_alerts *a, enum sb__alert_type type, struct sb_buf *text,
                        struct json *j)
{
    const char *line = text->p != NULL ? text->p : "(out of memory)";
    sb_log(SB_LOG_WARN, NULL, "alert %s: %s", sb__alert_type_names[type], line);
    atomic_fetch_add(&a->raised, 1);
    if (a->url == NULL) {
        sb_buf_free(&j->buf);
        return;
    }
    struct sb_buf full;
    sb_buf_init(&full, TEXT_MAX + INSTANCE_MAX + 8);
    sb_buf_printf(&full, "[%s] %s", a->instance, line);
    json_str(j, "text", sb_buf_view(&full), false);
    json_raw(j, "}");
    sb_buf_free(&full);
    if (j->rc != 0) {
        sb_log(SB_LOG_ERROR, NULL, "alert %s: not sent: its JSON could not be built (%s)",
               sb__alert_type_names[type], sb_strerror(j->rc));
        sb__alert_count(a, type, SB__ALERT_FAILED);
        sb_buf_free(&j->buf);
        return;
    }
    size_t len = j->buf.len;
    char *body = sb_buf_steal(&j->buf);
    if (body == NULL) {
        sb__alert_count(a, type, SB__ALERT_FAILED);
        return;
    }
    sb__alert_enqueue(a, type, body, len);
}

/* "300 s", or "5 min" / "24 h" when whole: spans in messages. */
static void append_span(struct sb_buf *b, int64_t ms)
{
    int64_t s = ms / 1000;
    if (s >= 3600 && s % 3600 == 0)
        sb_buf_printf(b, "%lld h", (long long)(s / 3600));
    else if (s >= 60 && s % 60 == 0)
        sb_buf_printf(b, "%lld min", (long long)(s / 60));
    else
        sb_buf_printf(b, "%lld s", (long long)s);
}

/* The line a spike is logged and posted with. */
static void spike_text(const struct sb_alerts *a, const struct sb_alert_spike_report *r,
                       double ratio, struct sb_buf *text)
{
    sb_buf_append_c(text, "spend spike: ");
    sb_budget_format_usd(r->window_micros, text);
    sb_buf_append_c(text, " in the last ");
    append_span(text, r->window_ms);
    if (r->baseline_micros > 0) {
        sb_buf_printf(text, ", %.2f times the average rate of the ", ratio);
        append_span(text, r->baseline_ms);
        sb_buf_append_c(text, " before (");
        sb_budget_format_usd(r->expected_micros, text);
        sb_buf_append_c(text, " per ");
        append_span(text, r->window_ms);
        sb_buf_append_c(text, "); alerts at ");
        sb_config_format_micros(text, a->factor_micros);
        sb_buf_append_c(text, " times and ");
    } else {
        sb_buf_append_c(text, ", with no spend before it to compare with; alerts at ");
    }
    sb_budget_format_usd(a->min_micros, text);
}

static void raise_spike(struct sb_alerts *a, const struct sb_alert_spike_report *r)
{
    struct sb_buf text;
    struct json j;
    bool baseline = r->baseline_micros > 0;
    /* Rates per millisecond, for the ratio shown; the decision itself was exact. */
    double ratio = baseline ? ((double)r->window_micros / (double)r->window_ms) /
                                  ((double)r->baseline_micros / (double)r->baseline_ms)
                            : 0;

    sb_buf_init(&text, TEXT_MAX);
    spike_text(a, r, ratio, &text);
    json_begin(&j, a, SB__ALERT_SPEND_SPIKE);
    json_int(&j, "window_s", r->window_ms / 1000);
    json_int(&j, "window_microusd", r->window_micros);
    json_int(&j, "baseline_s", r->baseline_ms / 1000);
    json_int(&j, "baseline_microusd", r->baseline_micros);
    json_int(&j, "expected_microusd", r->expected_micros);
    if (baseline)
        json_raw(&j, ",\"ratio\":%.2f", ratio);
    else
        json_raw(&j, ",\"ratio\":null");
    json_raw(&j, ",\"factor\":");
    if (j.rc == 0)
        sb_config_format_micros(&j.buf, a->factor_micros);
    json_int(&j, "min_microusd", a->min_micros);
    raise_alert(a, SB__ALERT_SPEND_SPIKE, &text, &j);
    sb_buf_free(&text);
}

void sb_alert_spend(struct sb_alerts *a, int64_t now_ms, int64_t cost_micros)
{
    struct sb_alert_spike_report r;
    bool spike;

    if (a == NULL || a->spike == NULL || cost_micros <= 0)
        return;
    pthread_mutex_lock(&a->spike_lock);
    spike = sb_alert_spike_add(a->spike, now_ms, cost_micros, &r);
    pthread_mutex_unlock(&a->spike_lock);
    if (spike)
        raise_spike(a, &r);
}

static bool scope_known(const char *scope)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(budget_scopes); i++) {
        if (strcmp(scope, budget_scopes[i]) == 0)
            return true;
    }
    return false;
}

void sb_alert_budget(void *alerts, const char *scope, const char *name, int percent,
                     int64_t spent_micros, int64_t limit_micros)
{
    struct sb_alerts *a = alerts;
    struct sb_buf text, clean_name;
    struct json j;

    if (a == NULL)
        return;
    if (scope == NULL || !scope_known(scope)) {
        sb_log(SB_LOG_WARN, NULL, "alert budget_threshold: unknown scope \"%s\"; not raised",
               scope != NULL ? scope : "(null)");
        return;
    }
    bool named = name != NULL && name[0] != '\0';
    sb_buf_init(&clean_name, NAME_MAX_BYTES + 8);
    if (named)
        append_clean(&clean_name, name, NAME_MAX_BYTES);

    sb_buf_init(&text, TEXT_MAX);
    if (named)
        sb_buf_printf(&text, "budget of %s \"%s\"", scope,
                      clean_name.p != NULL ? clean_name.p : "");
    else
        sb_buf_printf(&text, "%s budget", scope);
    sb_buf_printf(&text, " reached %d%%: ", percent);
    sb_budget_format_usd(spent_micros, &text);
    sb_buf_append_c(&text, " spent of ");
    sb_budget_format_usd(limit_micros, &text);

    json_begin(&j, a, SB__ALERT_BUDGET);
    json_str(&j, "scope", sb_str_c(scope), false);
    json_str(&j, "name", sb_buf_view(&clean_name), !named);
    json_int(&j, "percent", percent);
    json_int(&j, "spent_microusd", spent_micros);
    json_int(&j, "limit_microusd", limit_micros);
    raise_alert(a, SB__ALERT_BUDGET, &text, &j);
    sb_buf_free(&text);
    sb_buf_free(&clean_name);
}

/* ---------------------------------------------------------------------------------------------
 * Life
 * ------------------------------------------------------------------------------------------- */
void sb_alert_stats(const struct sb_alerts *a, struct sb_alert_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (a == NULL)
        return;
    out->raised = atomic_load(&a->raised);
    out->sent = atomic_load(&a->outcomes[SB__ALERT_SENT]);
    out->failed = atomic_load(&a->outcomes[SB__ALERT_FAILED]);
    out->dropped = atomic_load(&a->outcomes[SB__ALERT_DROPPED]);
}

static bool is_http_url(const char *url)
{
    static const char *const schemes[] = {"http://", "https://"};
    for (size_t i = 0; i < SB_ARRAY_LEN(schemes); i++) {
        size_t n = strlen(schemes[i]);
        if (strncmp(url, schemes[i], n) == 0 && url[n] != '\0')
            return true;
    }
    return false;
}

/* A copy of the instance name: p's, else the host name, else "switchboard". */
static char *instance_name(const char *configured)
{
    char host[INSTANCE_MAX + 1] = "";
    struct sb_buf b;

    if (configured == NULL) {
        if (gethostname(host, sizeof host - 1) != 0 || host[0] == '\0')
            snprintf(host, sizeof host, "switchboard");
        configured = host;
    }
    sb_buf_init(&b, INSTANCE_MAX + 8);
    append_clean(&b, configured, INSTANCE_MAX);
    return b.p != NULL ? sb_buf_steal(&b) : strdup("");
}

/* Frees what sb_alert_new made; the sender must not be running. */
static void alerts_free(struct sb_alerts *a, bool queue_ready, bool spike_lock_ready)
{
    if (queue_ready)
        sb__alert_queue_deinit(a);
    if (spike_lock_ready)
        pthread_mutex_destroy(&a->spike_lock);
    sb_alert_spike_free(a->spike);
    free(a->url);
    free(a->instance);
    free(a);
}

int sb_alert_new(const struct sb_alert_params *p, struct sb_alerts **out, char *err,
                 size_t err_size)
{
    struct sb_alerts *a;
    int rc;

    *out = NULL;
    err[0] = '\0';
    if (p->webhook_url != NULL && !is_http_url(p->webhook_url)) {
        snprintf(err, err_size, "the webhook URL is not an http:// or https:// URL");
        return SB_EINVAL;
    }
    if (p->queue_size == 0 || p->retries < 0) {
        snprintf(err, err_size, "the queue size must be above 0 and retries at least 0");
        return SB_EINVAL;
    }
    a = calloc(1, sizeof(*a));
    if (a == NULL)
        goto oom;
    a->timeout_ms = p->timeout_ms;
    a->backoff_ms = p->backoff_ms;
    a->drain_ms = p->drain_ms;
    a->retries = p->retries;
    a->cap = p->queue_size;
    a->url = p->webhook_url != NULL ? strdup(p->webhook_url) : NULL;
    a->instance = instance_name(p->instance);
    if ((p->webhook_url != NULL && a->url == NULL) || a->instance == NULL) {
        alerts_free(a, false, false);
        goto oom;
    }
    if (p->spike) {
        rc = sb_alert_spike_new(&p->spike_params, (int64_t)(sb_now_ns() / 1000000u), &a->spike);
        if (rc != 0) {
            snprintf(err, err_size, "%s",
                     rc == SB_EINVAL
                         ? "spend_spike: window, baseline, factor or min_usd out of range"
                         : sb_strerror(rc));
            alerts_free(a, false, false);
            return rc;
        }
        a->factor_micros = p->spike_params.factor_micros;
        a->min_micros = p->spike_params.min_micros;
    }
    if (pthread_mutex_init(&a->spike_lock, NULL) != 0) {
        alerts_free(a, false, false);
        goto oom;
    }
    if (sb__alert_queue_init(a) != 0) {
        alerts_free(a, false, true);
        goto oom;
    }
    for (int t = 0; t < SB__ALERT_TYPES; t++) {
        for (int o = 0; o < SB__ALERT_OUTCOMES; o++) {
            const char *const labels[] = {sb__alert_type_names[t], outcome_names[o]};
            a->m[t][o] = sb_metrics_series(SB_METRIC_ALERTS, labels);
        }
    }
    if (a->url != NULL && sb__alert_sender_start(a) != 0) {
        snprintf(err, err_size, "cannot start the alert sender thread");
        alerts_free(a, true, true);
        return SB_EIO;
    }
    *out = a;
    return 0;
oom:
    snprintf(err, err_size, "out of memory");
    return SB_ENOMEM;
}

void sb_alert_free(struct sb_alerts *a)
{
    if (a == NULL)
        return;
    sb__alert_sender_stop(a);
    alerts_free(a, true, true);
}

int sb_alert_config_params(const struct sb_alerts_config *c, struct sb_alert_params *p, char *err,
                           size_t err_size)
{
    const struct sb_alerts_spike_config *sc = &c->spend_spike;

    memset(p, 0, sizeof(*p));
    err[0] = '\0';
    p->webhook_url = c->webhook_url;
    p->timeout_ms = c->webhook_timeout_ms > 0 ? (uint32_t)c->webhook_timeout_ms : 0;
    p->retries = c->webhook_retries;
    p->backoff_ms = SB_ALERT_BACKOFF_MS;
    p->drain_ms = SB_ALERT_DRAIN_MS;
    p->instance = c->instance;
    p->queue_size = c->queue_size;
    p->spike = sc->enabled;
    p->spike_params.window_ms = (int64_t)sc->window_s * 1000;
    p->spike_params.baseline_ms = (int64_t)sc->baseline_s * 1000;
    /* The config's check read them already; a caller that built c by hand gets the same rules. */
    if (sc->factor == NULL ||
        sb_config_parse_micros(sc->factor, INT64_MAX / 4, &p->spike_params.factor_micros) != 0 ||
        sc->min_usd == NULL ||
        sb_config_parse_micros(sc->min_usd, INT64_MAX / 4, &p->spike_params.min_micros) != 0) {
        snprintf(err, err_size, "alerts.spend_spike: factor and min_usd must be decimal numbers");
        return SB_EINVAL;
    }
    return 0;
}

int sb_alert_from_config(const struct sb_alerts_config *c, struct sb_alerts **out, char *err,
                         size_t err_size)
{
    struct sb_alert_params p;

    *out = NULL;
    err[0] = '\0';
    if (!c->enabled)
        return 0;
    int rc = sb_alert_config_params(c, &p, err, err_size);
    if (rc == 0)
        rc = sb_alert_new(&p, out, err, err_size);
    if (rc == 0)
        sb_log(SB_LOG_INFO, NULL, "alerts: on (%s%s)",
               p.webhook_url != NULL ? "webhook" : "log only",
               p.spike ? ", spend spikes watched" : "");
    return rc;
}
