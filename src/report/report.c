/* `switchboard report` and `switchboard advise`: options, gathering the ledger's numbers through
 * its read API, and the cost analysis (per-backend cost, all-cloud and all-local what-ifs,
 * break-even) that the renderers and the advice share. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "report/internal.h"

/* One month of the cost model, in milliseconds. */
#define MONTH_MS ((int64_t)SB_INFRA_HOURS_PER_MONTH * 3600 * 1000)
#define HOUR_MS  ((int64_t)3600 * 1000)
#define MTOK     1000000
/* A prompt is "long" above the local context; a local model with context 0 uses its training
 * context, which the engine caps at this. */
#define LOCAL_CONTEXT_CAP 8192
/* Reports are bounded like every buffer. */
#define REPORT_MAX ((size_t)64 << 20)

const double sb__report_pcts[SB__N_PCT] = {50, 90, 99};

/* ---------------------------------------------------------------------------------------------
 * Backends: local or cloud, from the config entry the ledger's backend column names.
 * ------------------------------------------------------------------------------------------- */
static const struct {
    const char *kind;           /* models[].backend */
    enum sb__backend_class cls; /* where it runs */
    bool local_when_loopback;   /* a base_url on this machine makes it local */
} kind_classes[] = {
    {"local", SB__CLASS_LOCAL, false},  /* in-process llama.cpp */
    {"ollama", SB__CLASS_LOCAL, false}, /* a self-hosted Ollama server */
    {"openai", SB__CLASS_CLOUD, true},  /* OpenAI, or llama-server / vLLM on this machine */
    {"anthropic", SB__CLASS_CLOUD, false}, {"bedrock", SB__CLASS_CLOUD, false},
};

static const char *const loopback_urls[] = {
    "http://127.",  "http://localhost",  "http://[::1]",
    "https://127.", "https://localhost", "https://[::1]",
};

static bool starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static enum sb__backend_class classify(const struct sb_config *cfg, const char *backend)
{
    const struct sb_model_config *m =
        cfg != NULL ? sb_config_find_model(cfg, sb_str_c(backend)) : NULL;
    if (m == NULL || m->backend == NULL)
        return SB__CLASS_UNKNOWN;
    for (size_t i = 0; i < SB_ARRAY_LEN(kind_classes); i++) {
        if (strcmp(m->backend, kind_classes[i].kind) != 0)
            continue;
        if (kind_classes[i].local_when_loopback)
            for (size_t j = 0; j < SB_ARRAY_LEN(loopback_urls); j++)
                if (starts_with(m->base_url, loopback_urls[j]))
                    return SB__CLASS_LOCAL;
        return kind_classes[i].cls;
    }
    return SB__CLASS_UNKNOWN;
}

/* The largest context of a local model, or 0 when there is none. */
static int64_t local_context(const struct sb_config *cfg)
{
    int64_t ctx = 0;
    for (size_t i = 0; cfg != NULL && i < cfg->n_models; i++) {
        const struct sb_model_config *m = &cfg->models[i];
        if (classify(cfg, m->name) != SB__CLASS_LOCAL)
            continue;
        ctx = SB_MAX(ctx, m->n_ctx > 0 ? (int64_t)m->n_ctx : (int64_t)LOCAL_CONTEXT_CAP);
    }
    return ctx;
}

/* Sensitivity classes that are NOT sensitive; any other class is, and so is any request in which
 * PII was found, whatever its class. */
static const char *const plain_classes[] = {"", "none", "public", "low", "normal"};

static bool class_is_sensitive(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(plain_classes); i++)
        if (strcmp(name, plain_classes[i]) == 0)
            return false;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Gathering
 * ------------------------------------------------------------------------------------------- */
static int64_t now_unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t tokens_of(const struct sb_ledger_agg *a)
{
    return a->prompt_tokens + a->completion_tokens;
}

/* Percentiles of metric over the filter's rows. */
static int pct(struct sb_ledger_reader *rd, enum sb_ledger_metric metric,
               const struct sb_ledger_filter *f, struct sb__pct *out)
{
    memset(out, 0, sizeof *out);
    return sb_ledger_percentiles(rd, metric, f, sb__report_pcts, SB__N_PCT, out->v, &out->count);
}

/* Sums of the rows of the given backends (none: zeros). */
static int class_sums(struct sb_ledger_reader *rd, struct sb_ledger_filter f, const char **names,
                      size_t n, struct sb_ledger_agg *out)
{
    memset(out, 0, sizeof *out);
    if (n == 0)
        return 0;
    f.backends = names;
    f.n_backends = n;
    struct sb_ledger_agg *all = NULL;
    size_t got = 0;
    int rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_ALL, &f, &all, &got);
    if (rc == 0 && got == 1)
        *out = all[0];
    free(all);
    return rc;
}

/* Reads everything from the ledger into r. */
static int gather(struct sb_ledger_reader *rd, const struct sb_report_params *p,
                  struct sb__report *r)
{
    const char **local_names = NULL, **cloud_names = NULL;
    size_t n_local = 0, n_cloud = 0;
    struct sb_ledger_agg *groups = NULL, *all = NULL;
    size_t n_groups = 0, n_all = 0;
    struct sb_ledger_filter f = {
        .since_ms = r->since_ms, .until_ms = r->until_ms, .long_prompt_tokens = r->local_context};
    struct sb_ledger_filter lf = f, cf = f; /* the local and the cloud backends */

    int rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_ALL, &f, &all, &n_all);
    if (rc == 0 && n_all == 1)
        r->total = all[0];
    if (rc == 0)
        rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_MODEL, &f, &r->models, &r->n_models);
    if (rc == 0)
        rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_KEY, &f, &r->keys, &r->n_keys);
    if (rc == 0)
        rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_SENSITIVITY, &f, &r->classes, &r->n_classes);
    if (rc == 0)
        rc = sb_ledger_aggregate(rd, SB_LEDGER_GROUP_BACKEND, &f, &groups, &n_groups);
    if (rc != 0)
        goto fail;

    r->backends = n_groups > 0 ? calloc(n_groups, sizeof *r->backends) : NULL;
    local_names = calloc(n_groups + 1, sizeof *local_names);
    cloud_names = calloc(n_groups + 1, sizeof *cloud_names);
    if ((n_groups > 0 && r->backends == NULL) || local_names == NULL || cloud_names == NULL) {
        rc = SB_ENOMEM;
        goto fail;
    }
    r->n_backends = n_groups;
    for (size_t i = 0; i < n_groups && rc == 0; i++) {
        struct sb__backend_stats *b = &r->backends[i];
        b->agg = groups[i];
        b->cls = classify(p->cfg, b->agg.name);
        /* A backend the config does not name (a ledger from another instance) is cloud when
         * any of its requests was priced: local requests carry no price. */
        if (b->cls == SB__CLASS_UNKNOWN && b->agg.name[0] != '\0' && b->agg.priced > 0)
            b->cls = SB__CLASS_CLOUD;
        if (b->cls == SB__CLASS_LOCAL)
            local_names[n_local++] = b->agg.name;
        else if (b->cls == SB__CLASS_CLOUD)
            cloud_names[n_cloud++] = b->agg.name;
        const char *one[] = {b->agg.name};
        struct sb_ledger_filter bf = f;
        bf.backends = one;
        bf.n_backends = 1;
        rc = pct(rd, SB_LEDGER_METRIC_LATENCY_MS, &bf, &b->latency);
        if (rc == 0)
            rc = pct(rd, SB_LEDGER_METRIC_TTFT_MS, &bf, &b->ttft);
        if (rc == 0)
            rc = pct(rd, SB_LEDGER_METRIC_TOKENS_PER_S, &bf, &b->tps);
    }
    if (rc == 0)
        rc = class_sums(rd, f, local_names, n_local, &r->local);
    if (rc == 0)
        rc = class_sums(rd, f, cloud_names, n_cloud, &r->cloud);
    lf.backends = local_names;
    lf.n_backends = n_local;
    cf.backends = cloud_names;
    cf.n_backends = n_cloud;
    if (rc == 0 && n_local > 0)
        rc = pct(rd, SB_LEDGER_METRIC_TTFT_MS, &lf, &r->ttft_local);
    if (rc == 0 && n_cloud > 0)
        rc = pct(rd, SB_LEDGER_METRIC_TTFT_MS, &cf, &r->ttft_cloud);
    if (rc == 0 && n_local > 0)
        rc = sb_ledger_busy(rd, &lf, &r->local_busy_ms, &r->local_tokens);

fail:
    free(all);
    free(groups); /* names were copied into r->backends, which local_names point into */
    free(local_names);
    free(cloud_names);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Analysis
 * ------------------------------------------------------------------------------------------- */
static void analyze(const struct sb_report_params *p, const struct sb_pricing *prices,
                    struct sb__report *r)
{
    int64_t tokens = tokens_of(&r->total);

    /* Sensitive requests: every request of a sensitive class, plus those of plain classes in
     * which PII was found. */
    for (size_t i = 0; i < r->n_classes; i++)
        r->sensitive_requests +=
            class_is_sensitive(r->classes[i].name) ? r->classes[i].requests : r->classes[i].pii;

    /* The period the window's traffic covers, for per-month figures: from the first request in
     * the window (a young ledger is not diluted by days before it existed) to now. */
    int64_t start = r->total.requests > 0 ? SB_MAX(r->since_ms, r->total.first_ms) : r->since_ms;
    r->period_ms = SB_MAX(r->until_ms - 1 - start, HOUR_MS);
    r->monthly_tokens = sb__report_muldiv(tokens, MONTH_MS, r->period_ms);
    r->utilization_measured = (double)r->local_busy_ms / (double)r->period_ms;

    /* Local throughput and costs. */
    char err[256];
    r->has_infra = sb_infra_from_config(&p->cfg->infra, &r->infra, err, sizeof err) == 0;
    double measured = sb_infra_throughput(r->local_tokens, r->local_busy_ms);
    r->tokens_per_s_measured = measured > 0;
    r->tokens_per_s = measured > 0 ? measured : (double)r->infra.tokens_per_s_micro / 1e6;
    if (r->has_infra) {
        sb_infra_hourly(&r->infra, &r->hourly);
        r->has_per_token = sb_infra_per_token(&r->infra, r->tokens_per_s, &r->per_token) == 0;
    }

    /* Per-backend cost: the ledger's for cloud rows, the infra model's for local ones. */
    for (size_t i = 0; i < r->n_backends; i++) {
        struct sb__backend_stats *b = &r->backends[i];
        b->cost_microusd = b->agg.cost_microusd;
        if (b->cls == SB__CLASS_LOCAL) {
            b->cost_estimated = true;
            b->cost_microusd =
                r->has_per_token
                    ? sb__report_muldiv(tokens_of(&b->agg), r->per_token.microusd_per_mtok, MTOK)
                    : -1;
        }
    }
    r->recorded_cost_microusd = r->total.cost_microusd;
    r->unpriced_requests = r->cloud.unpriced;

    /* All cloud: every token at the compare model's prices, priced as one bill. */
    r->compare_priced = sb_price_lookup(prices, r->compare_model, &r->compare_price) == 0;
    r->all_cloud_microusd = -1;
    r->cloud_microusd_per_mtok = -1;
    if (r->compare_priced) {
        struct sb_usage u = {.prompt_tokens = r->total.prompt_tokens,
                             .cached_prompt_tokens = r->total.cached_prompt_tokens,
                             .cache_write_tokens = r->total.cache_write_tokens,
                             .completion_tokens = r->total.completion_tokens};
        r->all_cloud_microusd = sb_price_cost(&r->compare_price, &u);
        if (tokens > 0)
            r->cloud_microusd_per_mtok = sb__report_muldiv(r->all_cloud_microusd, MTOK, tokens);
    }

    /* All local: enough machines for the traffic at the planned utilization, each paying its
     * fixed cost for the period, plus power for every token. */
    r->all_local_microusd = -1;
    if (r->has_per_token) {
        int64_t capacity =
            sb__report_muldiv(r->per_token.capacity_tokens_per_month, r->period_ms, MONTH_MS);
        int64_t machines = capacity > 0 ? (tokens + capacity - 1) / capacity : 1;
        r->all_local_machines = SB_MAX(machines, (int64_t)1);
        int64_t fixed =
            sb__report_muldiv(r->hourly.fixed_microusd_per_month, r->period_ms, MONTH_MS);
        r->all_local_microusd =
            r->all_local_machines * fixed +
            sb__report_muldiv(tokens, r->per_token.marginal_microusd_per_mtok, MTOK);
    }

    /* Break-even: fixed monthly cost / (cloud per token - local marginal per token). */
    if (!r->has_infra) {
        r->break_even = SB__BE_UNKNOWN_INFRA;
    } else if (!r->has_per_token) {
        r->break_even = SB__BE_UNKNOWN_THROUGHPUT;
    } else if (r->cloud_microusd_per_mtok < 0) {
        r->break_even = SB__BE_UNKNOWN_PRICE;
    } else if (r->cloud_microusd_per_mtok <= r->per_token.marginal_microusd_per_mtok) {
        r->break_even = SB__BE_NEVER_PER_TOKEN;
    } else {
        int64_t gap = r->cloud_microusd_per_mtok - r->per_token.marginal_microusd_per_mtok;
        /* Rounded up: at this volume local is no dearer. */
        int64_t v = sb__report_muldiv_up(r->hourly.fixed_microusd_per_month, MTOK, gap);
        r->break_even_tokens_per_month = v;
        r->break_even =
            v > r->per_token.capacity_tokens_per_month ? SB__BE_NEVER_CAPACITY : SB__BE_AT;
    }
}

void sb__report_free(struct sb__report *r)
{
    free(r->backends);
    free(r->models);
    free(r->keys);
    free(r->classes);
    memset(r, 0, sizeof *r);
}

int sb__report_build(const struct sb_report_params *p, struct sb__report *r, char *err,
                     size_t err_size)
{
    static const struct sb_config no_config;
    struct sb_report_params params = *p;
    struct sb_ledger_reader *rd = NULL;
    struct sb_pricing *prices = NULL;
    memset(r, 0, sizeof *r);
    if (params.cfg == NULL)
        params.cfg = &no_config;

    int64_t now = params.now_ms > 0 ? params.now_ms : now_unix_ms();
    r->until_ms = now + 1;
    r->since_ms = params.window_ms > 0 ? now - params.window_ms : 0;
    r->compare_model =
        params.compare_model != NULL ? params.compare_model : SB_REPORT_DEFAULT_COMPARE;
    r->local_context = local_context(params.cfg);

    int rc = sb_pricing_new(params.cfg, &prices, err, err_size);
    if (rc != 0)
        goto fail;
    rc = sb_ledger_reader_open(params.ledger, &rd, err, err_size);
    if (rc != 0)
        goto fail;
    rc = gather(rd, &params, r);
    if (rc != 0) {
        char shown[512]; /* a URL without its password */
        sb_ledger_display_name(params.ledger, shown, sizeof shown);
        snprintf(err, err_size, "ledger %s: cannot read it: %s", shown,
                 rc == SB_ENOMEM ? "out of memory" : sb_ledger_reader_error(rd));
        goto fail;
    }
    analyze(&params, prices, r);

fail:
    sb_ledger_reader_close(rd);
    sb_pricing_free(prices);
    return rc;
}

int sb_report_write(const struct sb_report_params *p, struct sb_buf *out, char *err,
                    size_t err_size)
{
    /* The renderers, by enum sb_report_format. */
    static int (*const renderers[])(const struct sb__report *, struct sb_buf *) = {
        [SB_REPORT_TEXT] = sb__report_text,
        [SB_REPORT_JSON] = sb__report_json,
        [SB_REPORT_HTML] = sb__report_html,
    };
    struct sb__report r;
    if ((unsigned)p->format >= SB_ARRAY_LEN(renderers)) {
        snprintf(err, err_size, "unknown report format");
        return SB_EINVAL;
    }
    int rc = sb__report_build(p, &r, err, err_size);
    if (rc == 0) {
        rc = renderers[p->format](&r, out);
        if (rc != 0)
            snprintf(err, err_size, "cannot render the report: %s", sb_strerror(rc));
    }
    sb__report_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Command line
 * ------------------------------------------------------------------------------------------- */
enum { EXIT_RUNTIME = 1, EXIT_SETUP = 2 };

struct cli_opts {
    const char *since, *format, *ledger, *config, *compare;
};

/* Options, each taking a value; report and advise take the same ones. */
static const struct {
    const char *name;
    size_t offset; /* of the value's pointer in struct cli_opts */
} cli_options[] = {
    {"--since", offsetof(struct cli_opts, since)},
    {"--format", offsetof(struct cli_opts, format)},
    {"--ledger", offsetof(struct cli_opts, ledger)},
    {"--config", offsetof(struct cli_opts, config)},
    {"--compare-model", offsetof(struct cli_opts, compare)},
};

/* Duration suffixes for --since. */
static const struct {
    char suffix;
    int64_t ms;
} units[] = {
    {'m', (int64_t)60 * 1000},
    {'h', (int64_t)3600 * 1000},
    {'d', (int64_t)86400 * 1000},
    {'w', (int64_t)7 * 86400 * 1000},
};

static const struct {
    const char *name;
    enum sb_report_format format;
} formats[] = {
    {"text", SB_REPORT_TEXT},
    {"json", SB_REPORT_JSON},
    {"html", SB_REPORT_HTML},
};

/* Parses "30d", "12h", "90m", "2w" or "all" (0: every row). Returns 0 or SB_EINVAL. */
static int parse_since(const char *s, int64_t *out)
{
    if (strcmp(s, "all") == 0) {
        *out = 0;
        return 0;
    }
    size_t len = strlen(s);
    if (len < 2)
        return SB_EINVAL;
    char *end = NULL;
    long long n = strtoll(s, &end, 10);
    if (end != s + len - 1 || n <= 0 || n > 100000 || s[0] < '0' || s[0] > '9')
        return SB_EINVAL;
    for (size_t i = 0; i < SB_ARRAY_LEN(units); i++) {
        if (units[i].suffix == s[len - 1]) {
            *out = n * units[i].ms;
            return 0;
        }
    }
    return SB_EINVAL;
}

/* Parses the options; prints what is wrong and returns EXIT_SETUP on failure. */
static int parse_cli(const char *cmd, int argc, char **argv, struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        bool known = false;
        for (size_t k = 0; k < SB_ARRAY_LEN(cli_options) && !known; k++) {
            if (strcmp(argv[i], cli_options[k].name) != 0)
                continue;
            if (i + 1 >= argc) {
                fprintf(stderr, "switchboard %s: %s needs a value (see switchboard help)\n", cmd,
                        argv[i]);
                return EXIT_SETUP;
            }
            const char *val = argv[++i];
            memcpy((char *)o + cli_options[k].offset, &val, sizeof val);
            known = true;
        }
        if (!known) {
            fprintf(stderr, "switchboard %s: unknown option \"%s\" (see switchboard help)\n", cmd,
                    argv[i]);
            return EXIT_SETUP;
        }
    }
    return 0;
}

/* Turns the options into params; the config is loaded into *cfg (the caller frees it). Prints
 * what is wrong and returns EXIT_SETUP on failure. */
static int setup(const char *cmd, const struct cli_opts *o, bool advise, struct sb_report_params *p,
                 struct sb_config **cfg)
{
    *p = (struct sb_report_params){.window_ms = SB_REPORT_DEFAULT_WINDOW_MS,
                                   .compare_model = o->compare,
                                   .format = SB_REPORT_TEXT};
    if (o->since != NULL && parse_since(o->since, &p->window_ms) != 0) {
        fprintf(stderr,
                "switchboard %s: --since takes a number and a unit (m, h, d or w), e.g. 30d, or "
                "\"all\"; got \"%s\"\n",
                cmd, o->since);
        return EXIT_SETUP;
    }
    if (o->format != NULL) {
        bool found = false;
        for (size_t i = 0; i < SB_ARRAY_LEN(formats) && !found; i++) {
            /* advise writes text or JSON. */
            if (strcmp(o->format, formats[i].name) == 0 &&
                (!advise || formats[i].format != SB_REPORT_HTML)) {
                p->format = formats[i].format;
                found = true;
            }
        }
        if (!found) {
            fprintf(stderr, "switchboard %s: --format takes %s, got \"%s\"\n", cmd,
                    advise ? "text or json" : "text, json or html", o->format);
            return EXIT_SETUP;
        }
    }
    *cfg = sb_config_load_for_command(o->config);
    if (*cfg == NULL)
        return EXIT_SETUP;
    p->cfg = *cfg;
    p->ledger = o->ledger != NULL ? o->ledger : (*cfg)->ledger.path;
    if (p->ledger == NULL || p->ledger[0] == '\0') {
        fprintf(stderr,
                "switchboard %s: no ledger: ledger.path is empty in %s; pass --ledger PATH or a "
                "postgres:// URL\n",
                cmd, (*cfg)->source);
        return EXIT_SETUP;
    }
    return 0;
}

/* Runs report (advise = false) or advise, writing to stdout. */
static int run_cli(const char *cmd, bool advise, int argc, char **argv)
{
    struct cli_opts o;
    struct sb_report_params p;
    struct sb_config *cfg = NULL;
    struct sb_buf out;
    char err[1024] = "";
    sb_buf_init(&out, REPORT_MAX);

    int status = parse_cli(cmd, argc, argv, &o);
    if (status == 0)
        status = setup(cmd, &o, advise, &p, &cfg);
    if (status != 0)
        goto fail;
    int rc = advise ? sb_advise_write(&p, &out, NULL, err, sizeof err)
                    : sb_report_write(&p, &out, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "switchboard %s: %s\n", cmd, err[0] != '\0' ? err : sb_strerror(rc));
        status = rc == SB_EUNSUPPORTED || rc == SB_EINVAL ? EXIT_SETUP : EXIT_RUNTIME;
        goto fail;
    }
    if (out.len > 0 && fwrite(out.p, 1, out.len, stdout) != out.len)
        status = EXIT_RUNTIME;
    if (fflush(stdout) != 0)
        status = EXIT_RUNTIME;

fail:
    sb_buf_free(&out);
    sb_config_free(cfg);
    return status;
}

int sb_report_cli(int argc, char **argv)
{
    return run_cli("report", false, argc, argv);
}

int sb_advise_cli(int argc, char **argv)
{
    return run_cli("advise", true, argc, argv);
}
