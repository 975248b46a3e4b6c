/* The `switchboard keys` commands: create (prints the secret once), list (never secrets; with
 * each key's spend this period, read from the ledger) and revoke. Options are one table. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/auth.h"
#include "core/opts.h"
#include "ledger/ledger.h"

/* Exit statuses, as src/cli/main.c's. */
enum { EXIT_RUNTIME = 1, EXIT_SETUP = 2 };

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */
struct opts {
    const char *arg; /* revoke's NAME */
    const char *config, *name, *team, *budget_usd, *period, *models, *max_sensitivity, *rpm, *tpm;
    const char *format;
};

/* Which commands take an option. */
enum { C_CREATE = 1 << 0, C_LIST = 1 << 1, C_REVOKE = 1 << 2 };

static const struct sb_opt options[] = {
    {"--config", offsetof(struct opts, config), C_CREATE | C_LIST | C_REVOKE},
    {"--name", offsetof(struct opts, name), C_CREATE},
    {"--team", offsetof(struct opts, team), C_CREATE},
    {"--budget-usd", offsetof(struct opts, budget_usd), C_CREATE},
    {"--period", offsetof(struct opts, period), C_CREATE},
    {"--models", offsetof(struct opts, models), C_CREATE},
    {"--max-sensitivity", offsetof(struct opts, max_sensitivity), C_CREATE},
    {"--rpm", offsetof(struct opts, rpm), C_CREATE},
    {"--tpm", offsetof(struct opts, tpm), C_CREATE},
    {"--format", offsetof(struct opts, format), C_LIST},
};

static const char create_usage[] =
    "keys create --name NAME [--team TEAM] [--budget-usd USD [--period day|week|month]] "
    "[--models A,B] [--max-sensitivity low|medium|high] [--rpm N] [--tpm N] [--config FILE]";
static const char list_usage[] = "keys list [--format text|json] [--config FILE]";
static const char revoke_usage[] = "keys revoke NAME [--config FILE]";

/* Parses argv into o for command (a C_* bit) taking exactly `positional` plain arguments.
 * Returns 0, or prints what is wrong with usage and returns EXIT_SETUP. */
static int parse(int argc, char **argv, unsigned command, int positional, const char *usage,
                 struct opts *o)
{
    memset(o, 0, sizeof(*o));
    return sb_opts_parse(argc, argv, options, SB_ARRAY_LEN(options), command, positional, usage, o,
                         &o->arg) == 0
               ? 0
               : EXIT_SETUP;
}

/* A whole non-negative number up to max; false otherwise. */
static bool parse_count(const char *text, int64_t max, int64_t *out)
{
    char *end;
    long long v;
    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    v = strtoll(text, &end, 10);
    if (*end != '\0' || v < 0 || v > max)
        return false;
    *out = v;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * The config and the store
 * ------------------------------------------------------------------------------------------- */
/* Opens the store cfg names. Returns 0, or prints why and returns an exit status. */
static int open_store(const struct sb_config *cfg, struct sb_auth_store **st)
{
    char err[1024];
    const char *path = sb_auth_store_path(cfg, err, sizeof(err));

    *st = NULL;
    if (path == NULL) {
        fprintf(stderr, "switchboard: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_auth_store_open(path, st, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return EXIT_RUNTIME;
    }
    return 0;
}

/* parse, then the config (--config or the built-in default). */
static int start(int argc, char **argv, unsigned command, int positional, const char *usage,
                 struct opts *o, struct sb_config **cfg)
{
    int status = parse(argc, argv, command, positional, usage, o);
    *cfg = NULL;
    if (status == 0 && (*cfg = sb_config_load_for_command(o->config)) == NULL)
        status = EXIT_SETUP;
    return status;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---------------------------------------------------------------------------------------------
 * create
 * ------------------------------------------------------------------------------------------- */
/* Every name of the list models must be a configured model. Prints the first that is not. */
static bool models_known(const struct sb_config *cfg, const char *models)
{
    const char *p = models;
    while (p != NULL && *p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        struct sb_str name = {p, n};
        while (name.len > 0 && (name.p[0] == ' ' || name.p[0] == '\t')) {
            name.p++;
            name.len--;
        }
        while (name.len > 0 && (name.p[name.len - 1] == ' ' || name.p[name.len - 1] == '\t'))
            name.len--;
        if (name.len > 0 && sb_config_find_model(cfg, name) == NULL) {
            fprintf(stderr,
                    "switchboard: --models: \"%.*s\" is not a model in %s; it has:", (int)name.len,
                    name.p, cfg->source);
            for (size_t i = 0; i < cfg->n_models; i++)
                fprintf(stderr, "%s %s", i ? "," : "", cfg->models[i].name);
            fputc('\n', stderr);
            return false;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return true;
}

/* Turns the options into a spec; prints the first problem and returns EXIT_SETUP. */
static int read_spec(const struct opts *o, const struct sb_config *cfg,
                     struct sb_auth_key_spec *spec)
{
    *spec = (struct sb_auth_key_spec){.name = o->name,
                                      .team = o->team,
                                      .budget_micros = -1,
                                      .period = SB_BUDGET_MONTH,
                                      .models = o->models};
    if (o->name == NULL) {
        fprintf(stderr, "switchboard: keys create needs --name\nusage: switchboard %s\n",
                create_usage);
        return EXIT_SETUP;
    }
    if (o->period != NULL && o->budget_usd == NULL) {
        fprintf(stderr, "switchboard: --period needs --budget-usd: it is the budget's period\n");
        return EXIT_SETUP;
    }
    if (o->budget_usd != NULL &&
        sb_config_parse_micros(o->budget_usd, (int64_t)1000000000 * 1000000,
                               &spec->budget_micros) != 0) {
        fprintf(stderr,
                "switchboard: --budget-usd takes a decimal amount of dollars from 0 to "
                "1000000000 with at most 6 decimals, got \"%s\"\n",
                o->budget_usd);
        return EXIT_SETUP;
    }
    if (o->period != NULL && sb_budget_period_parse(o->period, &spec->period) != 0) {
        fprintf(stderr, "switchboard: --period takes day, week or month, got \"%s\"\n", o->period);
        return EXIT_SETUP;
    }
    if (o->max_sensitivity != NULL &&
        sb_route_sensitivity_parse(sb_str_c(o->max_sensitivity), &spec->max_sensitivity) != 0) {
        fprintf(stderr, "switchboard: --max-sensitivity takes low, medium or high, got \"%s\"\n",
                o->max_sensitivity);
        return EXIT_SETUP;
    }
    if (o->rpm != NULL && !parse_count(o->rpm, SB_AUTH_RPM_MAX, &spec->rpm)) {
        fprintf(stderr, "switchboard: --rpm takes a whole number from 0 to %d, got \"%s\"\n",
                SB_AUTH_RPM_MAX, o->rpm);
        return EXIT_SETUP;
    }
    if (o->tpm != NULL && !parse_count(o->tpm, SB_AUTH_TPM_MAX, &spec->tpm)) {
        fprintf(stderr, "switchboard: --tpm takes a whole number from 0 to %d, got \"%s\"\n",
                SB_AUTH_TPM_MAX, o->tpm);
        return EXIT_SETUP;
    }
    if (!models_known(cfg, o->models))
        return EXIT_SETUP;
    return 0;
}

int sb_auth_keys_create_cli(int argc, char **argv)
{
    struct opts o;
    struct sb_config *cfg = NULL;
    struct sb_auth_store *st = NULL;
    struct sb_auth_key_spec spec;
    struct sb_auth_key k;
    char secret[SB_AUTH_SECRET_LEN + 1];
    char err[1024];
    int status = start(argc, argv, C_CREATE, 0, create_usage, &o, &cfg);

    if (status == 0)
        status = read_spec(&o, cfg, &spec);
    if (status == 0)
        status = open_store(cfg, &st);
    if (status == 0) {
        int rc = sb_auth_store_create(st, &spec, now_ms(), &k, secret, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            status = rc == SB_EIO || rc == SB_ENOMEM ? EXIT_RUNTIME : EXIT_SETUP;
        }
    }
    if (status == 0) {
        /* The secret alone on stdout, so that KEY=$(switchboard keys create ...) works. */
        printf("%s\n", secret);
        fflush(stdout);
        memset(secret, 0, sizeof(secret));
        fprintf(stderr,
                "switchboard: created key %s (%s)%s%s\n"
                "switchboard: this is the only time the key is shown; it cannot be shown again "
                "(only its SHA-256 is stored), so keep it now\n",
                k.name, k.id, k.team[0] != '\0' ? ", team " : "", k.team);
        if (cfg->auth.keys == NULL || strcmp(cfg->auth.keys, "off") == 0)
            fprintf(stderr,
                    "switchboard: note: auth.keys is off in %s, so the server does not check "
                    "keys; set it to optional or required\n",
                    cfg->source);
    }
    sb_auth_store_close(st);
    sb_config_free(cfg);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * list
 * ------------------------------------------------------------------------------------------- */
/* What each key spent in its budget's period (this month for a key without a budget), from the
 * ledger; zeros when there is none. One query per period kind. */
static void read_spend(const struct sb_config *cfg, const struct sb_auth_key *keys, size_t n,
                       int64_t *spent)
{
    const char *target = cfg->ledger.path;
    struct sb_ledger_reader *r = NULL;
    char err[512];
    int64_t now = now_ms() / 1000;

    memset(spent, 0, n * sizeof(*spent));
    if (target == NULL || target[0] == '\0' ||
        (strstr(target, "://") == NULL && access(target, F_OK) != 0))
        return;
    if (sb_ledger_reader_open(target, &r, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: spend not shown: %s\n", err);
        return;
    }
    for (int p = 0; p < SB_BUDGET_N_PERIODS; p++) {
        int64_t start, end;
        struct sb_ledger_agg *g = NULL;
        size_t ng = 0;
        bool wanted = false;
        for (size_t i = 0; i < n; i++)
            wanted = wanted || (int)keys[i].period == p;
        if (!wanted)
            continue;
        sb_budget_period_bounds((enum sb_budget_period)p, now, &start, &end);
        struct sb_ledger_filter f = {.since_ms = start * 1000, .until_ms = INT64_MAX};
        if (sb_ledger_aggregate(r, SB_LEDGER_GROUP_KEY, &f, &g, &ng) != 0) {
            fprintf(stderr, "switchboard: spend not shown: %s\n", sb_ledger_reader_error(r));
            break;
        }
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < ng && (int)keys[i].period == p; j++)
                if (strcmp(g[j].name, keys[i].id) == 0)
                    spent[i] = g[j].cost_microusd;
        free(g);
    }
    sb_ledger_reader_close(r);
}

static void format_time(int64_t ms, char *out, size_t cap)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "-");
}

static const char *sensitivity_text(enum sb_sensitivity s)
{
    return s == SB_SENSITIVITY_UNSET ? "any" : sb_route_sensitivity_name(s);
}

static void list_text(const struct sb_auth_key *keys, size_t n, const int64_t *spent,
                      struct sb_buf *out)
{
    sb_buf_printf(out, "%-20s %-24s %-12s %-12s %-8s %-7s %-9s %-28s %-20s %-8s %s\n", "NAME", "ID",
                  "PREFIX", "TEAM", "MAX-SENS", "RPM", "TPM", "SPENT / BUDGET", "CREATED", "STATUS",
                  "MODELS");
    for (size_t i = 0; i < n; i++) {
        const struct sb_auth_key *k = &keys[i];
        char created[32], rpm[24], tpm[24];
        struct sb_buf money;
        sb_buf_init(&money, 256);
        sb_budget_format_usd(spent[i], &money);
        if (k->budget_micros >= 0) {
            sb_buf_append_c(&money, " / ");
            sb_budget_format_usd(k->budget_micros, &money);
            sb_buf_printf(&money, " %s", sb_budget_period_name(k->period));
        } else {
            sb_buf_append_c(&money, " this month");
        }
        format_time(k->created_ms, created, sizeof(created));
        snprintf(rpm, sizeof(rpm), "%lld", (long long)k->rpm);
        snprintf(tpm, sizeof(tpm), "%lld", (long long)k->tpm);
        sb_buf_printf(out, "%-20s %-24s %-12s %-12s %-8s %-7s %-9s %-28s %-20s %-8s %s\n", k->name,
                      k->id, k->prefix, k->team[0] ? k->team : "-",
                      sensitivity_text(k->max_sensitivity), k->rpm ? rpm : "-", k->tpm ? tpm : "-",
                      money.p != NULL ? money.p : "", created, k->revoked_ms ? "revoked" : "active",
                      k->models[0] ? k->models : "*");
        sb_buf_free(&money);
    }
}

static void json_string(struct sb_buf *out, const char *key, const char *value)
{
    sb_buf_printf(out, "\"%s\":\"", key);
    sb_buf_append_json_escaped(out, sb_str_c(value));
    sb_buf_append_c(out, "\"");
}

static void list_json(const struct sb_auth_key *keys, size_t n, const int64_t *spent,
                      struct sb_buf *out)
{
    sb_buf_append_c(out, "[");
    for (size_t i = 0; i < n; i++) {
        const struct sb_auth_key *k = &keys[i];
        char created[32], revoked[32];
        format_time(k->created_ms, created, sizeof(created));
        format_time(k->revoked_ms, revoked, sizeof(revoked));
        sb_buf_append_c(out, i ? ",\n {" : "{");
        json_string(out, "name", k->name);
        sb_buf_append_c(out, ",");
        json_string(out, "id", k->id);
        sb_buf_append_c(out, ",");
        json_string(out, "prefix", k->prefix);
        sb_buf_append_c(out, ",");
        json_string(out, "team", k->team);
        sb_buf_append_c(out, ",\"models\":[");
        for (const char *p = k->models; *p != '\0';) {
            const char *end = strchr(p, ',');
            size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
            sb_buf_append_c(out, p == k->models ? "\"" : ",\"");
            sb_buf_append_json_escaped(out, (struct sb_str){p, len});
            sb_buf_append_c(out, "\"");
            p += len + (end != NULL);
        }
        sb_buf_append_c(out, "],");
        json_string(out, "max_sensitivity",
                    k->max_sensitivity == SB_SENSITIVITY_UNSET
                        ? ""
                        : sb_route_sensitivity_name(k->max_sensitivity));
        sb_buf_printf(out, ",\"rpm\":%lld,\"tpm\":%lld,", (long long)k->rpm, (long long)k->tpm);
        if (k->budget_micros >= 0)
            sb_buf_printf(out, "\"budget_microusd\":%lld,\"period\":\"%s\",",
                          (long long)k->budget_micros, sb_budget_period_name(k->period));
        else
            sb_buf_append_c(out, "\"budget_microusd\":null,\"period\":\"month\",");
        sb_buf_printf(out, "\"spent_microusd\":%lld,", (long long)spent[i]);
        json_string(out, "created", created);
        sb_buf_append_c(out, ",\"revoked\":");
        if (k->revoked_ms != 0) {
            sb_buf_append_c(out, "\"");
            sb_buf_append_c(out, revoked);
            sb_buf_append_c(out, "\"}");
        } else {
            sb_buf_append_c(out, "null}");
        }
    }
    sb_buf_append_c(out, "]\n");
}

int sb_auth_keys_list_cli(int argc, char **argv)
{
    struct opts o;
    struct sb_config *cfg = NULL;
    struct sb_auth_store *st = NULL;
    struct sb_auth_key *keys = NULL;
    int64_t *spent = NULL;
    size_t n = 0;
    char err[1024];
    int status = start(argc, argv, C_LIST, 0, list_usage, &o, &cfg);
    bool json = o.format != NULL && strcmp(o.format, "json") == 0;

    if (status == 0 && o.format != NULL && !json && strcmp(o.format, "text") != 0) {
        fprintf(stderr, "switchboard: --format takes text or json, got \"%s\"\n", o.format);
        status = EXIT_SETUP;
    }
    if (status == 0)
        status = open_store(cfg, &st);
    if (status == 0 && sb_auth_store_list(st, &keys, &n, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        status = EXIT_RUNTIME;
    }
    if (status == 0 && (spent = calloc(n ? n : 1, sizeof(*spent))) == NULL)
        status = EXIT_RUNTIME;
    if (status == 0) {
        struct sb_buf out;
        sb_buf_init(&out, (size_t)1 << 30);
        read_spend(cfg, keys, n, spent);
        if (json)
            list_json(keys, n, spent, &out);
        else if (n == 0)
            sb_buf_append_c(&out, "no keys yet (switchboard keys create --name NAME)\n");
        else
            list_text(keys, n, spent, &out);
        fwrite(out.p != NULL ? out.p : "", 1, out.len, stdout);
        sb_buf_free(&out);
    }
    free(spent);
    free(keys);
    sb_auth_store_close(st);
    sb_config_free(cfg);
    return status;
}

/* ---------------------------------------------------------------------------------------------
 * revoke
 * ------------------------------------------------------------------------------------------- */
int sb_auth_keys_revoke_cli(int argc, char **argv)
{
    struct opts o;
    struct sb_config *cfg = NULL;
    struct sb_auth_store *st = NULL;
    struct sb_auth_key k;
    char err[1024];
    int status = start(argc, argv, C_REVOKE, 1, revoke_usage, &o, &cfg);

    if (status == 0)
        status = open_store(cfg, &st);
    if (status == 0) {
        int rc = sb_auth_store_revoke(st, o.arg, now_ms(), &k, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "switchboard: %s\n", err);
            status = rc == SB_ENOTFOUND ? EXIT_SETUP : EXIT_RUNTIME;
        } else {
            printf("revoked key %s (%s); a running server refuses it within a second\n", k.name,
                   k.id);
        }
    }
    sb_auth_store_close(st);
    sb_config_free(cfg);
    return status;
}
