/* `switchboard route explain`: the routing decision for a request body, and why, worked out
 * offline — the body is parsed and scanned and the policy applied, but no model is loaded and
 * nothing is sent. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "route/internal.h"

/* Exit statuses, as the other commands use them. */
enum { EXIT_RUNTIME = 1, EXIT_SETUP = 2 };

/* Parsed requests live in an arena this big at most (a body is at most listen.max_body_bytes,
 * 1 GiB, and the canonical request holds views into it plus small arrays). */
#define EXPLAIN_ARENA_MAX ((size_t)256 << 20)

static const char *const kind_names[] = {
    [SB_REQ_CHAT] = "chat",
    [SB_REQ_COMPLETION] = "completion",
    [SB_REQ_EMBED] = "embeddings",
};

/* ---------------------------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------------------------- */
/* What the renderers need besides the decision. */
struct explained {
    const struct sb_router *r;
    const struct sb_request *req;
    const struct sb_route_input *in;
    const struct sb_pii_counts *counts;
    const struct sb_route_decision *d;
    int rc; /* of sb_route_decide: 0 or SB_EDENIED */
};

static void text_pii(struct sb_buf *out, const struct explained *x)
{
    bool any = false;
    for (uint32_t k = 0; k < SB_PRIVACY_MAX_KINDS; k++) {
        if (x->counts->by_kind[k] == 0)
            continue;
        sb_buf_printf(out, "%s%s x%u", any ? ", " : "", sb__route_kind_name(x->r, k),
                      (unsigned)x->counts->by_kind[k]);
        any = true;
    }
    if (!any)
        sb_buf_append_c(out, "none");
}

static void render_text(struct sb_buf *out, const struct explained *x)
{
    const struct sb_config *cfg = sb__route_config(x->r);
    const struct sb_route_decision *d = x->d;
    sb_buf_printf(out, "request:      model %.*s, %s", (int)x->req->model.len, x->req->model.p,
                  kind_names[x->req->kind]);
    if (x->req->kind == SB_REQ_CHAT)
        sb_buf_printf(out, ", %zu message%s, %s", x->req->n_messages,
                      x->req->n_messages == 1 ? "" : "s", x->in->tools ? "tools" : "no tools");
    if (x->req->max_tokens > 0)
        sb_buf_printf(out, ", max_tokens %lld", (long long)x->req->max_tokens);
    sb_buf_printf(out, "\nprompt:       %s%lld tokens (%s)\n",
                  x->in->prompt_tokens_exact ? "" : "~", (long long)x->in->prompt_tokens,
                  x->in->prompt_tokens_exact ? "counted"
                                             : "estimated: text bytes / 4, rounded up; explain "
                                               "loads no tokenizer");
    sb_buf_append_c(out, "pii found:    ");
    text_pii(out, x);
    sb_buf_printf(out, "\nsensitivity:  %s (label %s, detected %s)\n",
                  sb_route_sensitivity_name(d->sensitivity),
                  sb_route_sensitivity_name(x->in->label), sb_route_sensitivity_name(d->detected));
    sb_buf_printf(out, "decision:     %s\nrule:         %s\nreason:       %s\n",
                  x->rc == SB_EDENIED ? "deny (403)" : "serve", d->rule, d->reason);
    if (x->rc == SB_EDENIED) {
        sb_buf_printf(out, "denied:       %s\n", d->deny_reason);
    } else {
        sb_buf_append_c(out, "chain:\n");
        for (size_t j = 0; j < d->n_chain; j++) {
            const struct sb_model_config *m = &cfg->models[d->chain[j]];
            bool local = sb_route_is_local(x->r, d->chain[j]);
            sb_buf_printf(out, "  %zu. %s (backend %s, ", j + 1, m->name, m->backend);
            if (local)
                sb_buf_printf(out, "on this machine, context %lld)\n",
                              (long long)sb__route_model_ctx(x->r, d->chain[j]));
            else
                sb_buf_printf(out, "cloud%s)\n", d->pseudonymize ? ", pseudonymized" : "");
        }
        sb_buf_printf(out, "pseudonymize: %s\n",
                      d->pseudonymize ? "yes: detected values are replaced before a cloud "
                                        "backend receives the request"
                                      : "no");
    }
    sb_buf_append_c(out, "nothing was sent: no model was loaded and no connection was opened\n");
}

static void json_string(struct sb_buf *out, const char *s)
{
    if (s == NULL) {
        sb_buf_append_c(out, "null");
        return;
    }
    sb_buf_append_char(out, '"');
    sb_buf_append_json_escaped(out, sb_str_c(s));
    sb_buf_append_char(out, '"');
}

static void render_json(struct sb_buf *out, const struct explained *x)
{
    const struct sb_config *cfg = sb__route_config(x->r);
    const struct sb_route_decision *d = x->d;
    sb_buf_append_c(out, "{\"model\":\"");
    sb_buf_append_json_escaped(out, x->req->model);
    sb_buf_printf(out, "\",\"kind\":\"%s\",\"prompt_tokens\":%lld,\"prompt_tokens_exact\":%s,",
                  kind_names[x->req->kind], (long long)x->in->prompt_tokens,
                  x->in->prompt_tokens_exact ? "true" : "false");
    sb_buf_append_c(out, "\"pii\":{");
    bool any = false;
    for (uint32_t k = 0; k < SB_PRIVACY_MAX_KINDS; k++) {
        if (x->counts->by_kind[k] == 0)
            continue;
        sb_buf_append_c(out, any ? "," : "");
        json_string(out, sb__route_kind_name(x->r, k));
        sb_buf_printf(out, ":%u", (unsigned)x->counts->by_kind[k]);
        any = true;
    }
    sb_buf_printf(out,
                  "},\"sensitivity\":{\"effective\":\"%s\",\"label\":\"%s\",\"detected\":\"%s\"},",
                  sb_route_sensitivity_name(d->sensitivity),
                  sb_route_sensitivity_name(x->in->label), sb_route_sensitivity_name(d->detected));
    sb_buf_printf(out, "\"decision\":\"%s\",\"rule\":", x->rc == SB_EDENIED ? "deny" : "serve");
    json_string(out, d->rule);
    sb_buf_append_c(out, ",\"reason\":");
    json_string(out, d->reason);
    sb_buf_append_c(out, ",\"deny_reason\":");
    json_string(out, d->deny_reason);
    sb_buf_printf(out, ",\"pseudonymize\":%s,\"chain\":[", d->pseudonymize ? "true" : "false");
    for (size_t j = 0; j < d->n_chain; j++) {
        const struct sb_model_config *m = &cfg->models[d->chain[j]];
        bool local = sb_route_is_local(x->r, d->chain[j]);
        sb_buf_append_c(out, j > 0 ? ",{\"model\":" : "{\"model\":");
        json_string(out, m->name);
        sb_buf_append_c(out, ",\"backend\":");
        json_string(out, m->backend);
        sb_buf_printf(out, ",\"local\":%s", local ? "true" : "false");
        if (local)
            sb_buf_printf(out, ",\"context\":%lld",
                          (long long)sb__route_model_ctx(x->r, d->chain[j]));
        sb_buf_printf(out, ",\"pseudonymized\":%s}", !local && d->pseudonymize ? "true" : "false");
    }
    sb_buf_append_c(out, "],\"sent\":false}\n");
}

/* ---------------------------------------------------------------------------------------------
 * The explanation
 * ------------------------------------------------------------------------------------------- */
int sb_route_explain(const struct sb_route_explain_params *p, struct sb_buf *out, char *err,
                     size_t err_size)
{
    int rc = SB_ENOMEM;
    struct sb_arena *arena = NULL;
    struct sb_privacy *priv = NULL;
    struct sb_privacy_scratch *scratch = NULL;
    struct sb_router *router = NULL;
    struct sb_request req;
    struct sb_api_error apierr = {0};
    struct sb_pii_counts counts = {0};
    struct sb_route_input in;
    struct sb_route_decision d;
    const char *bad = NULL;
    err[0] = '\0';

    arena = sb_arena_new(EXPLAIN_ARENA_MAX);
    if (arena == NULL)
        goto fail;
    rc = sb_openai_codec.parse(p->kind, arena, p->body, &req, &apierr);
    if (rc != 0) {
        snprintf(err, err_size, "the request body: %s",
                 apierr.message[0] != '\0' ? apierr.message : sb_strerror(rc));
        goto fail;
    }
    rc = sb_privacy_new(&p->cfg->privacy, &priv, err, err_size);
    if (rc == 0)
        rc = sb_privacy_scratch_new(priv, &scratch);
    if (rc == 0)
        rc = sb_router_new(p->cfg, NULL, 0, &router, err, err_size);
    if (rc != 0)
        goto fail;
    int scan_rc = sb_privacy_scan_request(priv, scratch, &req, &counts);
    rc = sb_route_input_from_request(router, &req, p->sensitivity, &counts, scan_rc, &in, &bad);
    if (rc != 0) {
        snprintf(err, err_size,
                 "%s: unknown sensitivity; expected low, medium or high (the server answers 400)",
                 bad != NULL ? bad : "sensitivity");
        goto fail;
    }
    rc = sb_route_decide(router, &in, &d);
    if (rc == SB_ENOTFOUND) {
        snprintf(err, err_size, "%s; expected one of the models of %s (switchboard config check)",
                 d.reason, p->cfg->source != NULL ? p->cfg->source : "the config");
        goto fail;
    }
    struct explained x = {router, &req, &in, &counts, &d, rc};
    if (p->format == SB_ROUTE_EXPLAIN_JSON)
        render_json(out, &x);
    else
        render_text(out, &x);
    rc = 0;

fail:
    if (rc != 0 && err[0] == '\0')
        snprintf(err, err_size, "%s", sb_strerror(rc));
    sb_router_free(router);
    sb_privacy_scratch_free(scratch);
    sb_privacy_free(priv);
    sb_arena_free(arena);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * The command
 * ------------------------------------------------------------------------------------------- */
struct cli_opts {
    const char *config, *sensitivity, *format, *endpoint, *file;
};

/* Options, each taking a value. */
static const struct {
    const char *name;
    size_t offset; /* of the value's pointer in struct cli_opts */
} cli_options[] = {
    {"--config", offsetof(struct cli_opts, config)},
    {"--sensitivity", offsetof(struct cli_opts, sensitivity)},
    {"--format", offsetof(struct cli_opts, format)},
    {"--endpoint", offsetof(struct cli_opts, endpoint)},
};

static const struct {
    const char *name;
    enum sb_route_explain_format format;
} formats[] = {
    {"text", SB_ROUTE_EXPLAIN_TEXT},
    {"json", SB_ROUTE_EXPLAIN_JSON},
};

/* The OpenAI endpoints a body may be for. */
static const struct {
    const char *name;
    enum sb_request_kind kind;
} endpoints[] = {
    {"chat", SB_REQ_CHAT},              /* /v1/chat/completions */
    {"completions", SB_REQ_COMPLETION}, /* /v1/completions */
    {"embeddings", SB_REQ_EMBED},       /* /v1/embeddings */
};

/* Parses the options; prints what is wrong and returns EXIT_SETUP on failure. */
static int parse_cli(int argc, char **argv, struct cli_opts *o)
{
    memset(o, 0, sizeof *o);
    for (int i = 0; i < argc; i++) {
        bool known = false;
        for (size_t k = 0; k < SB_ARRAY_LEN(cli_options) && !known; k++) {
            if (strcmp(argv[i], cli_options[k].name) != 0)
                continue;
            if (i + 1 >= argc) {
                fprintf(stderr,
                        "switchboard route explain: %s needs a value (see switchboard "
                        "help)\n",
                        argv[i]);
                return EXIT_SETUP;
            }
            const char *val = argv[++i];
            memcpy((char *)o + cli_options[k].offset, &val, sizeof val);
            known = true;
        }
        if (known)
            continue;
        if ((argv[i][0] == '-' && argv[i][1] != '\0') || o->file != NULL) {
            fprintf(stderr,
                    "switchboard route explain: unexpected \"%s\"; expected options and one FILE "
                    "(or - for standard input)\n",
                    argv[i]);
            return EXIT_SETUP;
        }
        o->file = argv[i];
    }
    return 0;
}

/* Reads the body from path ("-" or NULL: standard input), at most out->max bytes. */
static int read_body(const char *path, struct sb_buf *out)
{
    bool std_in = path == NULL || strcmp(path, "-") == 0;
    FILE *f = std_in ? stdin : fopen(path, "rb");
    if (f == NULL)
        return SB_EIO;
    int rc = 0;
    char chunk[16384];
    size_t n;
    while (rc == 0 && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = sb_buf_append(out, chunk, n);
    if (rc == 0 && ferror(f))
        rc = SB_EIO;
    if (!std_in)
        fclose(f);
    return rc;
}

int sb_route_explain_cli(int argc, char **argv)
{
    struct cli_opts o;
    struct sb_config *cfg = NULL;
    struct sb_buf body, out;
    char err[1024];
    sb_buf_init(&body, 0);
    sb_buf_init(&out, 1 << 20);
    struct sb_route_explain_params p = {.kind = SB_REQ_CHAT, .format = SB_ROUTE_EXPLAIN_TEXT};

    int status = parse_cli(argc, argv, &o);
    if (status != 0)
        goto fail;
    status = EXIT_SETUP;
    bool found = o.format == NULL;
    for (size_t i = 0; i < SB_ARRAY_LEN(formats) && !found; i++)
        if (strcmp(o.format, formats[i].name) == 0) {
            p.format = formats[i].format;
            found = true;
        }
    if (!found) {
        fprintf(stderr, "switchboard route explain: --format takes text or json, got \"%s\"\n",
                o.format);
        goto fail;
    }
    found = o.endpoint == NULL;
    for (size_t i = 0; i < SB_ARRAY_LEN(endpoints) && !found; i++)
        if (strcmp(o.endpoint, endpoints[i].name) == 0) {
            p.kind = endpoints[i].kind;
            found = true;
        }
    if (!found) {
        fprintf(stderr,
                "switchboard route explain: --endpoint takes chat, completions or embeddings, "
                "got \"%s\"\n",
                o.endpoint);
        goto fail;
    }
    cfg = sb_config_load_for_command(o.config);
    if (cfg == NULL)
        goto fail;
    body.max = cfg->listen.max_body_bytes;
    int rc = read_body(o.file, &body);
    if (rc != 0) {
        fprintf(stderr, "switchboard route explain: %s: %s\n", o.file != NULL ? o.file : "-",
                rc == SB_ETOOBIG ? "larger than listen.max_body_bytes (the server answers 413)"
                                 : "cannot be read");
        goto fail;
    }
    p.cfg = cfg;
    p.body = sb_buf_view(&body);
    p.sensitivity = sb_str_c(o.sensitivity);
    rc = sb_route_explain(&p, &out, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "switchboard route explain: %s\n", err);
        status = rc == SB_ENOMEM ? EXIT_RUNTIME : EXIT_SETUP;
        goto fail;
    }
    status = 0;
    if (out.len > 0 && fwrite(out.p, 1, out.len, stdout) != out.len)
        status = EXIT_RUNTIME;
    if (fflush(stdout) != 0)
        status = EXIT_RUNTIME;

fail:
    sb_buf_free(&out);
    sb_buf_free(&body);
    sb_config_free(cfg);
    return status;
}
