/* The switchboard command: a table of subcommands (serve, config check, version, help). */
#include <event2/thread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert/alert.h"
#include "auth/auth.h"
#include "backend/backend.h"
#include "config/config.h"
#include "http/http.h"
#include "ledger/ledger.h"
#include "models/models.h"
#include "privacy/privacy.h"
#include "report/pricing.h"
#include "report/report.h"
#include "resil/resil.h"
#include "route/route.h"

#ifndef SB_VERSION
#define SB_VERSION "0.1.0"
#endif
#ifndef SB_LLAMA_CPP_TAG
#define SB_LLAMA_CPP_TAG "unknown"
#endif

/* Exit statuses: 0 success, 1 a failure while running, 2 bad usage, configuration or model. */
enum { EXIT_RUNTIME = 1, EXIT_SETUP = 2 };

struct command {
    const char *name;                  /* first word */
    const char *sub;                   /* second word, or NULL */
    const char *usage;                 /* arguments, for help */
    const char *summary;               /* one line, for help */
    int (*run)(int argc, char **argv); /* argv[0] is the first argument after the command words */
};

static int cmd_serve(int argc, char **argv);
static int cmd_config_check(int argc, char **argv);
static int cmd_config_default(int argc, char **argv);
static int cmd_version(int argc, char **argv);
static int cmd_help(int argc, char **argv);

static const struct command commands[] = {
    {"serve", NULL, "[--config FILE] [--port N] [--log-level LEVEL]",
     "serve the configured models over HTTP (the built-in default without --config)", cmd_serve},
    {"config", "check", "FILE", "validate a configuration file and print what it declares",
     cmd_config_check},
    {"config", "default", "", "print the built-in default configuration", cmd_config_default},
    {"version", NULL, "", "print the version and the llama.cpp release", cmd_version},
    {"report", NULL,
     "[--since 30d] [--format text|json|html] [--ledger PATH|URL] [--config FILE] "
     "[--compare-model MODEL]",
     "tokens, cost and latency by backend, model and key; all-cloud and all-local what-ifs; "
     "break-even",
     sb_report_cli},
    {"advise", NULL, "[--since 30d] [--format text|json] [--ledger PATH|URL] [--config FILE]",
     "LOCAL, CLOUD or HYBRID, with the measured reasons", sb_advise_cli},
    {"route", "explain",
     "[--config FILE] [--sensitivity low|medium|high] [--format text|json] "
     "[--endpoint chat|completions|embeddings] [FILE|-]",
     "the routing decision for an OpenAI-style request body, and why; loads and sends nothing",
     sb_route_explain_cli},
    {"models", "list", "[--config FILE] [--dir DIR]",
     "the models in the model folders, with size, sha256 and source when pulled",
     sb_models_list_cli},
    {"models", "show", "NAME|FILE [--config FILE] [--dir DIR]",
     "a model's GGUF metadata: architecture, parameters, quantization, context, chat template",
     sb_models_show_cli},
    {"models", "pull", "SOURCE [--name NAME] [--sha256 HEX] [--dir DIR] [--config FILE]",
     "download a GGUF from an https:// URL or hf:ORG/REPO/FILE.gguf (resumes; checks the "
     "header and sha256) into the first model folder",
     sb_models_pull_cli},
    {"models", "rm", "NAME [--config FILE] [--dir DIR]",
     "delete a model's file (and partial download) and its manifest entry", sb_models_rm_cli},
    {"models", "synth",
     "--shape SHAPE --type f16|q8_0|q4_0 --vocab VOCAB.gguf --out FILE [--seed N]",
     "write a random-weight GGUF in a real model's shape (llama-3.2-1b, ...), for benchmarks",
     sb_models_synth_cli},
    {"keys", "create",
     "--name NAME [--team TEAM] [--budget-usd USD [--period day|week|month]] [--models A,B] "
     "[--max-sensitivity low|medium|high] [--rpm N] [--tpm N] [--config FILE]",
     "make an API key; prints it once (only its hash is stored)", sb_auth_keys_create_cli},
    {"keys", "list", "[--format text|json] [--config FILE]",
     "the API keys (never their secrets): prefix, team, scopes, limits, spend this period",
     sb_auth_keys_list_cli},
    {"keys", "revoke", "NAME [--config FILE]",
     "revoke the active key NAME; a running server refuses it within a second",
     sb_auth_keys_revoke_cli},
    {"help", NULL, "", "print this help", cmd_help},
};

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */
struct serve_opts {
    const char *config;
    const char *log_level;
    int port; /* -1 = the config's */
};

/* Parses serve's options; returns 0 or prints what is wrong and returns EXIT_SETUP. */
static int parse_serve_opts(int argc, char **argv, struct serve_opts *o)
{
    *o = (struct serve_opts){NULL, NULL, -1};
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "--config") == 0 && val) {
            o->config = val;
        } else if (strcmp(arg, "--log-level") == 0 && val) {
            o->log_level = val;
        } else if (strcmp(arg, "--port") == 0 && val) {
            char *end;
            long p = strtol(val, &end, 10);
            if (*end != '\0' || p < 0 || p > 65535) {
                fprintf(stderr, "switchboard: --port takes a number from 0 to 65535, got \"%s\"\n",
                        val);
                return EXIT_SETUP;
            }
            o->port = (int)p;
        } else {
            fprintf(
                stderr,
                "switchboard: serve: unknown or incomplete option \"%s\" (see switchboard help)\n",
                arg);
            return EXIT_SETUP;
        }
        i++;
    }
    return 0;
}

/* Loads the config (a file, or the built-in default) and resolves its model paths. Prints the
 * problems and returns NULL on failure. The caller frees the result with sb_config_free. */
static struct sb_config *load_config(const char *path)
{
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 20);
    struct sb_config *cfg = NULL;
    int rc =
        path ? sb_config_load_file(path, &cfg, &errors) : sb_config_load_default(&cfg, &errors);
    if (rc == 0)
        rc = sb_config_resolve_models(cfg, &errors);
    if (rc != 0) {
        fprintf(stderr, "%s", errors.len ? errors.p : sb_strerror(rc));
        if (errors.len == 0 || errors.p[errors.len - 1] != '\n')
            fputc('\n', stderr);
        sb_config_free(cfg);
        cfg = NULL;
    }
    sb_buf_free(&errors);
    return cfg;
}

/* ---------------------------------------------------------------------------------------------
 * serve
 * ------------------------------------------------------------------------------------------- */
static void free_backends(struct sb_backend **backends, size_t n)
{
    for (size_t i = 0; i < n; i++)
        sb_backend_free(backends[i]);
    free(backends);
}

/* Creates one backend per configured model. Prints the failure and returns NULL if any fails. */
static struct sb_backend **create_backends(const struct sb_config *cfg)
{
    struct sb_backend **backends = calloc(cfg->n_models ? cfg->n_models : 1, sizeof(*backends));
    if (backends == NULL)
        return NULL;
    for (size_t i = 0; i < cfg->n_models; i++) {
        const struct sb_model_config *m = &cfg->models[i];
        const struct sb_backend_ops *ops = sb_backend_find_ops(m->backend);
        char err[1024] = "";
        if (ops == NULL) {
            fprintf(stderr, "switchboard: model \"%s\": unknown backend \"%s\"\n", m->name,
                    m->backend);
            goto fail;
        }
        int rc = sb_models_verify_pin(m, err, sizeof(err)); /* a sha256: pin, checked first */
        if (rc == 0)
            rc = ops->create(m, &backends[i], err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "switchboard: model \"%s\" could not be loaded: %s\n", m->name,
                    err[0] ? err : sb_strerror(rc));
            goto fail;
        }
        struct sb_backend_info info;
        sb_backend_info(backends[i], &info);
        fprintf(stderr, "switchboard: model %s (%s) %s %s, context %lld tokens\n", m->name,
                info.kind, info.loaded ? "loaded from" : "will load on first use from",
                m->path       ? m->path
                : m->base_url ? m->base_url
                              : "-",
                (long long)info.n_ctx);
    }
    return backends;
fail:
    free_backends(backends, cfg->n_models);
    return NULL;
}

/* Everything `serve` owns, set up in order and torn down in reverse by serve_teardown. */
struct serve_state {
    struct sb_config *cfg;
    struct sb_backend **backends; /* backends[i] serves cfg->models[i] */
    struct sb_resil *resil;       /* a chain per model: retries, breakers, fallback */
    struct sb_privacy *privacy;   /* the compiled PII detectors */
    struct sb_router *router;     /* the policy, over the models' own backends */
    struct sb_pricing *pricing;
    struct sb_ledger *ledger; /* NULL when the config disables it */
    struct sb_auth *auth;     /* API keys; NULL when auth.keys is off */
    struct sb_budget *budget; /* NULL without budgets or keys */
    struct sb_alerts *alerts; /* NULL without an `alerts:` section */
    struct sb_server *server;
};

/* Applies the log level from the options or the config. Returns 0 or EXIT_SETUP. */
static int apply_log_level(const struct serve_opts *o, const struct sb_config *cfg)
{
    enum sb_log_level level;
    const char *name = o->log_level ? o->log_level : cfg->log_level;
    if (name == NULL)
        return 0;
    if (sb_log_parse_level(name, &level) != 0) {
        fprintf(stderr, "switchboard: unknown log level \"%s\" (debug, info, warn, error)\n", name);
        return EXIT_SETUP;
    }
    sb_log_set_level(level);
    return 0;
}

/* Builds what the server needs, after the config is loaded. Prints what failed and returns
 * EXIT_SETUP, or 0. */
static int serve_setup(struct serve_state *st)
{
    struct sb_config *cfg = st->cfg;
    char err[1024] = "";
    sb_local_configure(&cfg->local); /* before any local model exists: max_loaded */
    st->backends = create_backends(cfg);
    if (st->backends == NULL)
        return EXIT_SETUP;
    if (sb_resil_new(cfg, st->backends, cfg->n_models, &st->resil, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_privacy_new(&cfg->privacy, &st->privacy, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: privacy: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_router_new(cfg, st->backends, cfg->n_models, &st->router, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: policy: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_pricing_new(cfg, &st->pricing, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: pricing: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_ledger_open(&cfg->ledger, &st->ledger, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: ledger: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_alert_from_config(&cfg->alerts, &st->alerts, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: alerts: %s\n", err);
        return EXIT_SETUP;
    }
    if (sb_server_new(cfg, sb_resil_backends(st->resil), cfg->n_models, &st->server, err,
                      sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: cannot listen on %s:%d: %s\n", cfg->listen.host,
                cfg->listen.port, err);
        return EXIT_SETUP;
    }
    sb_server_set_ledger(st->server, st->ledger);   /* borrowed; NULL = no ledger */
    sb_server_set_pricing(st->server, st->pricing); /* borrowed */
    sb_server_set_alerts(st->server, st->alerts);   /* borrowed; NULL = no alerts */
    /* After the ledger: budgets read this period's spend back from it. */
    if (sb_auth_serve_setup(cfg, sb_unix_time(), &st->auth, &st->budget, err, sizeof(err)) != 0) {
        fprintf(stderr, "switchboard: %s\n", err);
        return EXIT_SETUP;
    }
    if (st->budget != NULL) /* thresholds (50/80/100%) go to the alerts; NULL alerts: logged only */
        sb_budget_set_notify(st->budget, sb_alert_budget, st->alerts);
    sb_server_set_quota(st->server, st->auth, st->budget); /* borrowed */
    /* Every model request is routed by policy: the config's rules, else its default (the
     * built-in hybrid policy, or `policy: {default: none}` for each model's configured chain). */
    if (sb_server_set_routing(st->server, st->router, st->privacy, st->resil) != 0) {
        fprintf(stderr, "switchboard: out of memory\n");
        return EXIT_SETUP;
    }
    return 0;
}

/* Frees in the reverse order of serve_setup: the server stops recording before the ledger's
 * last flush, and chains go before the backends they borrow. */
static int serve_teardown(struct serve_state *st)
{
    int status = 0;
    sb_server_free(st->server);
    sb_auth_free(st->auth); /* every request has settled: the server is gone */
    sb_budget_free(st->budget);
    sb_alert_free(st->alerts); /* posts what is queued, for at most a few seconds */
    if (sb_ledger_close(st->ledger) != 0) {
        fprintf(stderr, "switchboard: ledger: the last rows could not be written\n");
        status = EXIT_RUNTIME;
    }
    sb_pricing_free(st->pricing);
    sb_router_free(st->router);
    sb_privacy_free(st->privacy);
    sb_resil_free(st->resil);
    if (st->backends)
        free_backends(st->backends, st->cfg->n_models);
    sb_config_free(st->cfg);
    return status;
}

static int cmd_serve(int argc, char **argv)
{
    struct serve_opts o;
    int rc = parse_serve_opts(argc, argv, &o);
    if (rc != 0)
        return rc;
    struct serve_state st = {0};
    st.cfg = load_config(o.config);
    if (st.cfg == NULL)
        return EXIT_SETUP;
    if (o.port >= 0)
        st.cfg->listen.port = o.port;
    int status = apply_log_level(&o, st.cfg);
    if (status == 0)
        status = serve_setup(&st);
    if (status == 0) {
        /* Tests and scripts wait for this exact line to learn the port. */
        fprintf(stderr, "switchboard: listening on http://%s:%d\n", st.cfg->listen.host,
                sb_server_port(st.server));
        status = sb_server_run(st.server) == 0 ? 0 : EXIT_RUNTIME;
        fprintf(stderr, "switchboard: stopped\n");
    }
    int down = serve_teardown(&st);
    return status != 0 ? status : down;
}

/* ---------------------------------------------------------------------------------------------
 * config check / config default / version / help
 * ------------------------------------------------------------------------------------------- */
static int cmd_config_check(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: switchboard config check FILE\n");
        return EXIT_SETUP;
    }
    struct sb_config *cfg = load_config(argv[0]);
    if (cfg == NULL)
        return EXIT_SETUP;
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    sb_config_print_summary(cfg, &out);
    printf("%s: ok\n%s", argv[0], out.len ? out.p : "");
    sb_buf_free(&out);
    sb_config_free(cfg);
    return 0;
}

static int cmd_config_default(int argc, char **argv)
{
    SB_UNUSED(argc);
    SB_UNUSED(argv);
    fputs(sb_config_default_text(), stdout);
    return 0;
}

static int cmd_version(int argc, char **argv)
{
    SB_UNUSED(argc);
    SB_UNUSED(argv);
    printf("switchboard %s (llama.cpp %s)\n", SB_VERSION, SB_LLAMA_CPP_TAG);
    return 0;
}

static int cmd_help(int argc, char **argv)
{
    SB_UNUSED(argc);
    SB_UNUSED(argv);
    printf("switchboard: a local-first LLM gateway\n\nusage:\n");
    for (size_t i = 0; i < SB_ARRAY_LEN(commands); i++) {
        const struct command *c = &commands[i];
        char words[64];
        snprintf(words, sizeof(words), "%s%s%s", c->name, c->sub ? " " : "", c->sub ? c->sub : "");
        printf("  switchboard %s %s\n      %s\n", words, c->usage, c->summary);
    }
    return 0;
}

/* Finds the command named by argv's first one or two words; sets *used to how many it took. */
static const struct command *find_command(int argc, char **argv, int *used)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(commands); i++) {
        const struct command *c = &commands[i];
        if (argc < 1 || strcmp(argv[0], c->name) != 0)
            continue;
        if (c->sub == NULL) {
            *used = 1;
            return c;
        }
        if (argc >= 2 && strcmp(argv[1], c->sub) == 0) {
            *used = 2;
            return c;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    /* A client that goes away must not kill the server with SIGPIPE: writes fail with EPIPE. */
    signal(SIGPIPE, SIG_IGN);
    /* Engine threads wake I/O loops with event_active, which needs libevent's locking on. */
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "switchboard: libevent has no pthreads support\n");
        return EXIT_RUNTIME;
    }
    int used = 0;
    const struct command *c = find_command(argc - 1, argv + 1, &used);
    if (c == NULL) {
        if (argc > 1)
            fprintf(stderr, "switchboard: unknown command \"%s\"\n\n", argv[1]);
        cmd_help(0, NULL);
        return argc > 1 ? EXIT_SETUP : 0;
    }
    return c->run(argc - 1 - used, argv + 1 + used);
}
