/* `switchboard advise`: LOCAL, CLOUD or HYBRID from a table of rules over facts the report
 * measured (volume against break-even, sensitive share, long prompts, latency, failures); each
 * rule that holds adds its weight to a verdict and gives its reason. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "report/internal.h"

const char *sb_advice_name(enum sb_advice a)
{
    static const char *const names[] = {
        [SB_ADVICE_LOCAL] = "LOCAL", [SB_ADVICE_CLOUD] = "CLOUD", [SB_ADVICE_HYBRID] = "HYBRID"};
    return (unsigned)a < SB_ARRAY_LEN(names) ? names[a] : "";
}

/* ---------------------------------------------------------------------------------------------
 * Facts: numbers a rule compares, each known or not (a rule on an unknown fact never holds).
 * ------------------------------------------------------------------------------------------- */
enum fact {
    F_REQUESTS,        /* requests in the window */
    F_VOLUME_RATIO,    /* monthly volume / break-even volume (break-even known) */
    F_NEVER,           /* 1 when local never breaks even */
    F_SENSITIVE_SHARE, /* requests of a sensitive class or with PII / requests */
    F_LONG_SHARE,      /* prompts above the local context / requests (a local model exists) */
    F_TTFT_RATIO,      /* local TTFT p50 / cloud TTFT p50 (both measured) */
    F_LOCAL_ERRORS,    /* failed local requests / local requests */
    F_CLOUD_ERRORS,    /* failed cloud requests / cloud requests */
    F_FALLBACKS,       /* requests served after a fallback / requests */
    F_COUNT
};

/* Texts the reasons quote, by name: "{volume}" in a template becomes the value. */
enum placeholder {
    P_VOLUME,
    P_BREAK_EVEN,
    P_COMPARE,
    P_NEVER_REASON,
    P_SENSITIVE,
    P_LONG,
    P_CONTEXT,
    P_TTFT_LOCAL,
    P_TTFT_CLOUD,
    P_LOCAL_ERRORS,
    P_CLOUD_ERRORS,
    P_FALLBACKS,
    P_COUNT
};

static const char *const placeholder_names[P_COUNT] = {
    [P_VOLUME] = "volume",
    [P_BREAK_EVEN] = "break_even",
    [P_COMPARE] = "compare",
    [P_NEVER_REASON] = "never_reason",
    [P_SENSITIVE] = "sensitive",
    [P_LONG] = "long",
    [P_CONTEXT] = "context",
    [P_TTFT_LOCAL] = "ttft_local",
    [P_TTFT_CLOUD] = "ttft_cloud",
    [P_LOCAL_ERRORS] = "local_errors",
    [P_CLOUD_ERRORS] = "cloud_errors",
    [P_FALLBACKS] = "fallbacks",
};

struct facts {
    bool known[F_COUNT];
    double v[F_COUNT];
    char text[P_COUNT][160];
};

/* ---------------------------------------------------------------------------------------------
 * Rules. A rule holds when its fact is known and lo <= value < hi; it adds weight to verdict and
 * its reason (a template with {placeholders}) to the list. Thresholds are round numbers meant to
 * be read: a tenth of a team's requests being sensitive is already a reason to keep a local path.
 * ------------------------------------------------------------------------------------------- */
struct rule {
    const char *id;
    enum fact fact;
    double lo, hi;
    enum sb_advice verdict;
    int weight;
    const char *reason;
};

static const struct rule rules[] = {
    {"no-traffic", F_REQUESTS, 0, 1, SB_ADVICE_HYBRID, 1,
     "There are no requests in the window, so nothing is measured yet: start hybrid and ask "
     "again once traffic has been recorded."},
    {"volume-above-break-even", F_VOLUME_RATIO, 1, INFINITY, SB_ADVICE_LOCAL, 3,
     "Your volume, {volume} tokens a month, is at or above local's break-even of {break_even} "
     "tokens a month: owning the hardware costs less than paying {compare} per token."},
    {"volume-near-break-even", F_VOLUME_RATIO, 0.5, 1, SB_ADVICE_HYBRID, 1,
     "Your volume, {volume} tokens a month, is within a factor of two of local's break-even of "
     "{break_even}: growth or cheaper hardware would tip it to local."},
    {"volume-below-break-even", F_VOLUME_RATIO, 0, 0.5, SB_ADVICE_CLOUD, 2,
     "Your volume, {volume} tokens a month, is under half of local's break-even of {break_even} "
     "tokens a month: paying {compare} per token is cheaper than owning hardware."},
    {"never-breaks-even", F_NEVER, 1, INFINITY, SB_ADVICE_CLOUD, 3,
     "Local never breaks even against {compare}: {never_reason}."},
    {"mostly-sensitive", F_SENSITIVE_SHARE, 0.5, INFINITY, SB_ADVICE_LOCAL, 3,
     "{sensitive} of requests carry PII or a sensitive class: serving them on your own "
     "hardware keeps them out of a third party's infrastructure."},
    {"some-sensitive", F_SENSITIVE_SHARE, 0.05, 0.5, SB_ADVICE_HYBRID, 2,
     "{sensitive} of requests carry PII or a sensitive class: route those to local backends "
     "and the rest wherever it is cheapest."},
    {"little-sensitive", F_SENSITIVE_SHARE, 0, 0.05, SB_ADVICE_CLOUD, 1,
     "Only {sensitive} of requests carry PII or a sensitive class: privacy does not require "
     "local serving."},
    {"mostly-long-context", F_LONG_SHARE, 0.2, INFINITY, SB_ADVICE_CLOUD, 2,
     "{long} of prompts are longer than the local context of {context} tokens: they need a "
     "cloud model's long context."},
    {"some-long-context", F_LONG_SHARE, 0.02, 0.2, SB_ADVICE_HYBRID, 2,
     "{long} of prompts are longer than the local context of {context} tokens: send those to "
     "the cloud and keep the rest local."},
    {"local-faster", F_TTFT_RATIO, 0, 0.5, SB_ADVICE_LOCAL, 1,
     "Local answers faster: time to first token p50 is {ttft_local} ms locally against "
     "{ttft_cloud} ms in the cloud."},
    {"cloud-faster", F_TTFT_RATIO, 1, INFINITY, SB_ADVICE_CLOUD, 1,
     "The cloud answers as fast or faster: time to first token p50 is {ttft_cloud} ms in the "
     "cloud against {ttft_local} ms locally."},
    {"local-failing", F_LOCAL_ERRORS, 0.05, INFINITY, SB_ADVICE_HYBRID, 1,
     "Local backends failed {local_errors} of their requests: keep a cloud fallback."},
    {"cloud-failing", F_CLOUD_ERRORS, 0.05, INFINITY, SB_ADVICE_HYBRID, 1,
     "Cloud backends failed {cloud_errors} of their requests: keep a local fallback."},
    {"falling-back", F_FALLBACKS, 0.05, INFINITY, SB_ADVICE_HYBRID, 1,
     "{fallbacks} of requests were served only after falling back to another backend: both "
     "sides are carrying traffic."},
};

/* ---------------------------------------------------------------------------------------------
 * From a report to facts
 * ------------------------------------------------------------------------------------------- */
static void set(struct facts *f, enum fact which, double v)
{
    f->known[which] = true;
    f->v[which] = v;
}

static void text_count(char *out, size_t size, int64_t n)
{
    struct sb_buf b;
    sb_buf_init(&b, size - 1);
    sb__append_count(&b, n);
    snprintf(out, size, "%s", b.p != NULL ? b.p : "");
    sb_buf_free(&b);
}

static void text_share(char *out, size_t size, double share)
{
    snprintf(out, size, "%.1f%%", share * 100);
}

static void compute_facts(const struct sb__report *r, struct facts *f)
{
    memset(f, 0, sizeof *f);
    const double requests = (double)r->total.requests;
    set(f, F_REQUESTS, requests);
    text_count(f->text[P_VOLUME], sizeof f->text[P_VOLUME], r->monthly_tokens);
    snprintf(f->text[P_COMPARE], sizeof f->text[P_COMPARE], "%s", r->compare_model);
    if (r->break_even == SB__BE_AT) {
        /* A break-even of 0 (no fixed cost) is passed at any volume. */
        set(f, F_VOLUME_RATIO,
            r->break_even_tokens_per_month > 0
                ? (double)r->monthly_tokens / (double)r->break_even_tokens_per_month
                : INFINITY);
        text_count(f->text[P_BREAK_EVEN], sizeof f->text[P_BREAK_EVEN],
                   r->break_even_tokens_per_month);
    } else if (r->break_even == SB__BE_NEVER_PER_TOKEN || r->break_even == SB__BE_NEVER_CAPACITY) {
        set(f, F_NEVER, 1);
        snprintf(f->text[P_NEVER_REASON], sizeof f->text[P_NEVER_REASON], "%s",
                 r->break_even == SB__BE_NEVER_PER_TOKEN
                     ? "its price per token is at or below local's marginal power cost"
                     : "the break-even volume is more than one machine can serve, and each "
                       "added machine adds the same fixed cost");
    }
    if (requests <= 0)
        return;
    double sensitive = (double)r->sensitive_requests / requests;
    set(f, F_SENSITIVE_SHARE, sensitive);
    text_share(f->text[P_SENSITIVE], sizeof f->text[P_SENSITIVE], sensitive);
    if (r->local_context > 0) {
        double longs = (double)r->total.long_prompts / requests;
        set(f, F_LONG_SHARE, longs);
        text_share(f->text[P_LONG], sizeof f->text[P_LONG], longs);
        text_count(f->text[P_CONTEXT], sizeof f->text[P_CONTEXT], r->local_context);
    }
    if (r->ttft_local.count > 0 && r->ttft_cloud.count > 0 && r->ttft_cloud.v[0] > 0) {
        set(f, F_TTFT_RATIO, r->ttft_local.v[0] / r->ttft_cloud.v[0]);
        snprintf(f->text[P_TTFT_LOCAL], sizeof f->text[P_TTFT_LOCAL], "%.0f", r->ttft_local.v[0]);
        snprintf(f->text[P_TTFT_CLOUD], sizeof f->text[P_TTFT_CLOUD], "%.0f", r->ttft_cloud.v[0]);
    }
    if (r->local.requests > 0) {
        double e = (double)r->local.errors / (double)r->local.requests;
        set(f, F_LOCAL_ERRORS, e);
        text_share(f->text[P_LOCAL_ERRORS], sizeof f->text[P_LOCAL_ERRORS], e);
    }
    if (r->cloud.requests > 0) {
        double e = (double)r->cloud.errors / (double)r->cloud.requests;
        set(f, F_CLOUD_ERRORS, e);
        text_share(f->text[P_CLOUD_ERRORS], sizeof f->text[P_CLOUD_ERRORS], e);
    }
    double fb = (double)r->total.fell_back / requests;
    set(f, F_FALLBACKS, fb);
    text_share(f->text[P_FALLBACKS], sizeof f->text[P_FALLBACKS], fb);
}

/* Appends template with each {name} replaced by its fact text (unknown names are kept). */
static int expand(struct sb_buf *out, const char *template, const struct facts *f)
{
    int rc = 0;
    const char *p = template;
    while (*p != '\0' && rc == 0) {
        const char *open = strchr(p, '{');
        const char *close = open != NULL ? strchr(open, '}') : NULL;
        if (open == NULL || close == NULL)
            return sb_buf_append_c(out, p);
        rc = sb_buf_append(out, p, (size_t)(open - p));
        size_t len = (size_t)(close - open - 1);
        const char *value = NULL;
        for (size_t i = 0; i < P_COUNT && value == NULL; i++)
            if (strlen(placeholder_names[i]) == len &&
                strncmp(open + 1, placeholder_names[i], len) == 0)
                value = f->text[i];
        if (rc == 0)
            rc = value != NULL ? sb_buf_append_c(out, value)
                               : sb_buf_append(out, open, (size_t)(close - open + 1));
        p = close + 1;
    }
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The verdict
 * ------------------------------------------------------------------------------------------- */
static bool holds(const struct rule *rule, const struct facts *f)
{
    double v = f->v[rule->fact];
    return f->known[rule->fact] && v >= rule->lo && v < rule->hi;
}

/* The verdict with the most weight; a tie, or nothing at all, is HYBRID (both sides have a
 * case). */
static enum sb_advice decide(const int *score)
{
    static const enum sb_advice order[] = {SB_ADVICE_LOCAL, SB_ADVICE_CLOUD, SB_ADVICE_HYBRID};
    enum sb_advice best = SB_ADVICE_HYBRID;
    int best_score = -1;
    bool tie = false;
    for (size_t i = 0; i < SB_ARRAY_LEN(order); i++) {
        int s = score[order[i]];
        if (s > best_score) {
            best = order[i];
            best_score = s;
            tie = false;
        } else if (s == best_score) {
            tie = true;
        }
    }
    return tie ? SB_ADVICE_HYBRID : best;
}

static int render(const struct sb__report *r, const struct facts *f, enum sb_advice verdict,
                  const int *score, bool json, struct sb_buf *out)
{
    int rc = json ? sb_buf_printf(out,
                                  "{\"verdict\":\"%s\",\"scores\":{\"local\":%d,"
                                  "\"cloud\":%d,\"hybrid\":%d},\"requests\":%lld,"
                                  "\"reasons\":[",
                                  sb_advice_name(verdict), score[SB_ADVICE_LOCAL],
                                  score[SB_ADVICE_CLOUD], score[SB_ADVICE_HYBRID],
                                  (long long)r->total.requests)
                  : sb_buf_printf(out, "Advice: %s\n\n", sb_advice_name(verdict));
    struct sb_buf text;
    sb_buf_init(&text, 4096);
    int n = 0;
    /* Reasons for the verdict first, then the others, each group in table order. */
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        for (size_t i = 0; i < SB_ARRAY_LEN(rules) && rc == 0; i++) {
            const struct rule *rule = &rules[i];
            if (!holds(rule, f) || (rule->verdict == verdict) != (pass == 0))
                continue;
            sb_buf_reset(&text);
            rc = expand(&text, rule->reason, f);
            if (rc != 0)
                break;
            n++;
            if (json) {
                rc = sb_buf_printf(out,
                                   "%s{\"rule\":\"%s\",\"verdict\":\"%s\",\"weight\":%d,"
                                   "\"text\":\"",
                                   n > 1 ? "," : "", rule->id, sb_advice_name(rule->verdict),
                                   rule->weight);
                if (rc == 0)
                    rc = sb_buf_append_json_escaped(out, sb_buf_view(&text));
                if (rc == 0)
                    rc = sb_buf_append_c(out, "\"}");
            } else {
                rc = sb_buf_printf(out, "%d. [%s +%d] %s\n", n, sb_advice_name(rule->verdict),
                                   rule->weight, text.p);
            }
        }
    }
    sb_buf_free(&text);
    if (rc == 0)
        rc = json ? sb_buf_append_c(out, "]}\n")
                  : sb_buf_printf(out,
                                  "\nScores: local %d, cloud %d, hybrid %d, from %lld requests "
                                  "(see switchboard report for the numbers).\n",
                                  score[SB_ADVICE_LOCAL], score[SB_ADVICE_CLOUD],
                                  score[SB_ADVICE_HYBRID], (long long)r->total.requests);
    return rc;
}

int sb_advise_write(const struct sb_report_params *p, struct sb_buf *out, enum sb_advice *verdict,
                    char *err, size_t err_size)
{
    struct sb__report r;
    struct facts f;
    int score[3] = {0};
    int rc = sb__report_build(p, &r, err, err_size);
    if (rc != 0)
        goto fail;
    compute_facts(&r, &f);
    for (size_t i = 0; i < SB_ARRAY_LEN(rules); i++)
        if (holds(&rules[i], &f))
            score[rules[i].verdict] += rules[i].weight;
    enum sb_advice v = decide(score);
    if (verdict != NULL)
        *verdict = v;
    rc = render(&r, &f, v, score, p->format == SB_REPORT_JSON, out);
    if (rc != 0)
        snprintf(err, err_size, "cannot write the advice: %s", sb_strerror(rc));

fail:
    sb__report_free(&r);
    return rc;
}
