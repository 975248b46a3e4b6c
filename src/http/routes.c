/* The route table — method, path, codec, request kind, handler, doc — and the handlers that answer
 * at once: health, readiness, metrics, the model lists, Ollama's informational endpoints and the
 * llama-server-compatible helpers. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static void handle_health(struct sb__req *r);
static void handle_ready(struct sb__req *r);
static void handle_metrics(struct sb__req *r);
static void handle_models(struct sb__req *r);
static void handle_tokenize(struct sb__req *r);
static void handle_apply_template(struct sb__req *r);
static void handle_ollama_root(struct sb__req *r);
static void handle_ollama_version(struct sb__req *r);
static void handle_ollama_ps(struct sb__req *r);
static void handle_ollama_show(struct sb__req *r);

/* ---------------------------------------------------------------------------------------------
 * The table. A path may appear in several entries (one per method set); 405's Allow lists them all.
 * ------------------------------------------------------------------------------------------- */
const struct sb__route sb__routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", &sb_openai_codec, SB_REQ_CHAT, sb__exchange_start,
     "OpenAI chat completions; streamed as server-sent events when the body says \"stream\": true"},
    {EVHTTP_REQ_POST, "/v1/completions", &sb_openai_codec, SB_REQ_COMPLETION, sb__exchange_start,
     "OpenAI text completions (a raw prompt, no chat template)"},
    {EVHTTP_REQ_POST, "/v1/embeddings", &sb_openai_codec, SB_REQ_EMBED, sb__exchange_start,
     "OpenAI embeddings: one vector per input (float or base64 encoding_format)"},
    {EVHTTP_REQ_GET, "/v1/models", &sb_openai_codec, SB_REQ_CHAT, handle_models,
     "the configured models, in OpenAI's list shape, or Anthropic's when the request has an "
     "anthropic-version or x-api-key header"},
    /* Anthropic's Messages API. The key may come as x-api-key or Authorization: Bearer, with any
     * anthropic-version; neither is checked until API keys exist. */
    {EVHTTP_REQ_POST, "/v1/messages", &sb_anthropic_codec, SB_REQ_CHAT, sb__exchange_start,
     "Anthropic messages; streamed as server-sent events when the body says \"stream\": true"},
    /* Ollama's native API. */
    {EVHTTP_REQ_POST, "/api/chat", &sb_ollama_codec, SB_REQ_CHAT, sb__exchange_start,
     "Ollama chat; NDJSON lines unless the body says \"stream\": false"},
    {EVHTTP_REQ_POST, "/api/generate", &sb_ollama_codec, SB_REQ_COMPLETION, sb__exchange_start,
     "Ollama generate: the prompt through the chat template, or raw with \"raw\": true"},
    {EVHTTP_REQ_POST, "/api/embed", &sb_ollama_codec, SB_REQ_EMBED, sb__exchange_start,
     "Ollama embeddings: one vector per input"},
    {EVHTTP_REQ_GET, "/api/tags", &sb_ollama_codec, SB_REQ_CHAT, handle_models,
     "the configured models, in Ollama's shape"},
    {EVHTTP_REQ_POST, "/api/show", &sb_ollama_codec, SB_REQ_CHAT, handle_ollama_show,
     "Ollama: what is known of one model (details, model_info, capabilities)"},
    {EVHTTP_REQ_GET, "/api/ps", &sb_ollama_codec, SB_REQ_CHAT, handle_ollama_ps,
     "Ollama: the models that can serve now, with size and context"},
    {EVHTTP_REQ_GET, "/api/version", &sb_ollama_codec, SB_REQ_CHAT, handle_ollama_version,
     "Ollama: the version of the Ollama API these endpoints match"},
    /* Ollama's CLI checks the server with HEAD / before every command. */
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/", &sb_ollama_codec, SB_REQ_CHAT, handle_ollama_root,
     "200 \"Ollama is running\", as Ollama answers, for clients that check it"},
    {EVHTTP_REQ_GET, "/health", &sb_openai_codec, SB_REQ_CHAT, handle_health,
     "liveness: 200 {\"status\":\"ok\"} while the process serves"},
    {EVHTTP_REQ_GET, "/ready", &sb_openai_codec, SB_REQ_CHAT, handle_ready,
     "readiness: 200 when every model is loaded, else 503 naming those that are not"},
    {EVHTTP_REQ_GET, "/metrics", &sb_openai_codec, SB_REQ_CHAT, handle_metrics,
     "Prometheus text exposition of every metric (docs/metrics.md)"},
    {EVHTTP_REQ_POST, "/tokenize", &sb_openai_codec, SB_REQ_CHAT, handle_tokenize,
     "llama-server compatible: {\"model\",\"content\",\"add_special\"} -> {\"tokens\":[...]}"},
    {EVHTTP_REQ_POST, "/apply-template", &sb_openai_codec, SB_REQ_CHAT, handle_apply_template,
     "llama-server compatible: {\"model\",\"messages\"} -> {\"prompt\"}, the chat template "
     "applied"},
    /* The dashboard (docs/dashboard.md): one entry per file of ui/ (src/ui/assets.c). */
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/ui", &sb_openai_codec, SB_REQ_CHAT, sb__ui_handle_asset,
     "the dashboard: live request rate, TTFT, latency, cost, breakers, recent routing decisions"},
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/ui/", &sb_openai_codec, SB_REQ_CHAT, sb__ui_handle_asset,
     "the dashboard, as /ui"},
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/ui/app.css", &sb_openai_codec, SB_REQ_CHAT,
     sb__ui_handle_asset, "the dashboard's style sheet"},
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/ui/app.js", &sb_openai_codec, SB_REQ_CHAT,
     sb__ui_handle_asset, "the dashboard's script"},
    {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/ui/favicon.svg", &sb_openai_codec, SB_REQ_CHAT,
     sb__ui_handle_asset, "the dashboard's icon"},
    {EVHTTP_REQ_GET, "/ui/api/summary", &sb_openai_codec, SB_REQ_CHAT, sb__ui_handle_summary,
     "the dashboard's data: totals, per-backend and per-model counts, percentiles, breakers and "
     "recent routing decisions, as JSON"},
};
const size_t sb__n_routes = SB_ARRAY_LEN(sb__routes);

struct method_name {
    unsigned bit;
    const char *name;
};

/* Every method libevent parses, in the order Allow lists them. */
static const struct method_name methods[] = {
    {EVHTTP_REQ_GET, "GET"},         {EVHTTP_REQ_HEAD, "HEAD"},     {EVHTTP_REQ_POST, "POST"},
    {EVHTTP_REQ_PUT, "PUT"},         {EVHTTP_REQ_DELETE, "DELETE"}, {EVHTTP_REQ_PATCH, "PATCH"},
    {EVHTTP_REQ_OPTIONS, "OPTIONS"}, {EVHTTP_REQ_TRACE, "TRACE"},   {EVHTTP_REQ_CONNECT, "CONNECT"},
};

const char *sb__method_name(unsigned method)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(methods); i++) {
        if (methods[i].bit == method)
            return methods[i].name;
    }
    return "?";
}

unsigned sb__methods_all(void)
{
    unsigned all = 0;

    for (size_t i = 0; i < SB_ARRAY_LEN(methods); i++)
        all |= methods[i].bit;
    return all;
}

int sb__methods_format(unsigned set, struct sb_buf *out)
{
    int rc = 0;
    bool first = true;

    for (size_t i = 0; i < SB_ARRAY_LEN(methods) && rc == 0; i++) {
        if ((set & methods[i].bit) == 0)
            continue;
        if (!first)
            rc = sb_buf_append_c(out, ", ");
        if (rc == 0)
            rc = sb_buf_append_c(out, methods[i].name);
        first = false;
    }
    return rc;
}

enum sb__route_match sb__route_find(const struct sb__route *table, size_t n, const char *path,
                                    unsigned method, const struct sb__route **out,
                                    unsigned *allowed)
{
    *allowed = 0;
    *out = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].path, path) != 0)
            continue;
        *allowed |= table[i].methods;
        if ((table[i].methods & method) != 0 && *out == NULL)
            *out = &table[i];
    }
    if (*out != NULL)
        return SB__ROUTE_FOUND;
    return *allowed != 0 ? SB__ROUTE_NO_METHOD : SB__ROUTE_NO_PATH;
}

/* Paths that belong to an API without being routes, for the shape of their 404. */
struct api_prefix {
    const char *prefix;
    const struct sb_codec *codec;
};

static const struct api_prefix api_prefixes[] = {
    {"/api/", &sb_ollama_codec},            /* Ollama's endpoints we do not serve (pull, ...) */
    {"/v1/messages/", &sb_anthropic_codec}, /* count_tokens, batches */
};

const struct sb_codec *sb__codec_for_path(const char *path)
{
    if (path == NULL)
        return &sb_openai_codec;
    for (size_t i = 0; i < sb__n_routes; i++) {
        if (strcmp(sb__routes[i].path, path) == 0)
            return sb__routes[i].codec;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(api_prefixes); i++) {
        if (strncmp(path, api_prefixes[i].prefix, strlen(api_prefixes[i].prefix)) == 0)
            return api_prefixes[i].codec;
    }
    return &sb_openai_codec;
}

/* What a 404 suggests, per API. */
static const char *const route_hints[] = {
    [SB_API_OPENAI] = "The API is under /v1 (POST /v1/chat/completions, GET /v1/models).",
    [SB_API_ANTHROPIC] = "Anthropic's API here is POST /v1/messages and GET /v1/models.",
    [SB_API_OLLAMA] = "Ollama's API here is POST /api/chat, /api/generate, /api/embed, /api/show "
                      "and GET /api/tags, /api/ps, /api/version.",
};

void sb__reply_no_route(struct sb__req *r, enum sb__route_match m, unsigned allowed)
{
    const struct sb_codec *codec = sb__codec_for_path(r->path);
    struct sb_api_error err;
    char shown[256];

    sb__sanitize_path(r->path, shown, sizeof(shown));
    /* OpenAI's own words for these, so that clients which match on them keep working. */
    if (m == SB__ROUTE_NO_METHOD) {
        struct sb_buf allow;
        sb_buf_init(&allow, 256);
        if (sb__methods_format(allowed, &allow) == 0)
            evhttp_add_header(evhttp_request_get_output_headers(r->ev), "Allow", allow.p);
        sb_api_fail(&err, 405, "invalid_request_error", "method_not_allowed", NULL,
                    "Invalid method for URL (%s %s): this URL takes %s.",
                    sb__method_name(r->method), shown, allow.len ? allow.p : "no method");
        sb_buf_free(&allow);
    } else {
        sb_api_fail(&err, 404, "invalid_request_error", "unknown_url", NULL,
                    "Invalid URL (%s %s): no such route. %s", sb__method_name(r->method), shown,
                    route_hints[codec->api]);
    }
    sb__reply_error(r, &err, NULL);
}

/* ---------------------------------------------------------------------------------------------
 * Helpers for the handlers below
 * ------------------------------------------------------------------------------------------- */
/* The request body as one contiguous view, valid while r->ev is. */
static struct sb_str request_body(struct sb__req *r)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(r->ev);
    size_t len = evbuffer_get_length(in);
    const unsigned char *p = len != 0 ? evbuffer_pullup(in, -1) : NULL;

    if (len != 0 && p == NULL)
        return SB_STR_NULL; /* out of memory; the body then reads as empty and is refused */
    return (struct sb_str){(const char *)p, p != NULL ? len : 0};
}

/* Sends a reply built in out, or a 500 when building it failed (rc). */
static void reply_built(struct sb__req *r, int rc, int status, struct sb_buf *out,
                        const char *model)
{
    struct sb_api_error err;

    if (rc != 0) {
        sb_api_fail(&err, 500, "server_error", NULL, NULL,
                    "The server could not build the response: %s.", sb_strerror(rc));
        sb__reply_error(r, &err, model);
        return;
    }
    sb__reply(r, status, sb_buf_view(out), model);
}

/* Appends ["a","b",...] for the configured names of the models whose readiness equals want
 * (all of them when only_ready_state is false). */
static int append_model_names(const struct sb_server *s, bool only_ready_state, bool want,
                              struct sb_buf *out)
{
    int rc = sb_buf_append_char(out, '[');
    bool first = true;

    for (size_t i = 0; i < s->n_backends && rc == 0; i++) {
        struct sb_backend_info info;
        sb_backend_info(s->backends[i], &info);
        if (only_ready_state && info.ready != want)
            continue;
        if (!first)
            rc = sb_buf_append_char(out, ',');
        if (rc == 0)
            rc = sb_buf_append_char(out, '"');
        if (rc == 0)
            rc = sb_buf_append_json_escaped(out, sb_str_c(s->cfg->models[i].name));
        if (rc == 0)
            rc = sb_buf_append_char(out, '"');
        first = false;
    }
    if (rc == 0)
        rc = sb_buf_append_char(out, ']');
    return rc;
}

/* Resolves the body's model, or the only model when the body names none (llama-server's clients
 * never do). Answers the client and returns NULL when there is no such model. */
static struct sb_backend *resolve_model(struct sb__req *r, struct sb_str name, const char **model)
{
    const struct sb_server *s = r->loop->server;
    struct sb_api_error err;
    struct sb_backend *b;

    if (name.len == 0 && s->n_backends == 1) {
        *model = s->cfg->models[0].name;
        return s->backends[0];
    }
    if (name.len == 0) {
        sb_api_fail(&err, 400, "invalid_request_error", NULL, "model",
                    "Missing required parameter: 'model'. GET /v1/models lists the models.");
        sb__reply_error(r, &err, NULL);
        return NULL;
    }
    b = sb__server_find_backend(s, name, model);
    if (b == NULL) {
        sb__server_model_not_found(s, r->route->codec->api, name, &err);
        sb__reply_error(r, &err, NULL);
    }
    return b;
}

/* The status and message a backend helper's failure shows the client. */
static void helper_failed(struct sb__req *r, int rc, const char *what, const char *model)
{
    struct sb_api_error err;

    if (rc == SB_EUNSUPPORTED)
        sb_api_fail(&err, 400, "invalid_request_error", "unsupported", NULL,
                    "Model '%s' cannot %s: its backend does not expose it.", model, what);
    else if (rc == SB_EINVAL || rc == SB_ETOOBIG)
        sb_api_fail(&err, 400, "invalid_request_error", NULL, NULL, "Model '%s' could not %s: %s.",
                    model, what, sb_strerror(rc));
    else
        sb_api_fail(&err, 500, "server_error", NULL, NULL, "Model '%s' failed to %s: %s.", model,
                    what, sb_strerror(rc));
    sb__reply_error(r, &err, model);
}

/* ---------------------------------------------------------------------------------------------
 * Handlers
 * ------------------------------------------------------------------------------------------- */
static void handle_health(struct sb__req *r)
{
    sb__reply(r, 200, SB_STR_LIT("{\"status\":\"ok\"}"), NULL);
}

static void handle_ready(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_buf out;
    bool all_ready = true;
    int rc;

    for (size_t i = 0; i < s->n_backends; i++) {
        struct sb_backend_info info;
        sb_backend_info(s->backends[i], &info);
        all_ready = all_ready && info.ready;
    }
    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    rc = sb_buf_append_c(&out, all_ready ? "{\"status\":\"ready\",\"models\":"
                                         : "{\"status\":\"not_ready\",\"models\":");
    if (rc == 0)
        rc = append_model_names(s, false, false, &out);
    if (rc == 0 && !all_ready) {
        rc = sb_buf_append_c(&out, ",\"not_ready\":");
        if (rc == 0)
            rc = append_model_names(s, true, false, &out);
    }
    if (rc == 0)
        rc = sb_buf_append_char(&out, '}');
    reply_built(r, rc, all_ready ? 200 : 503, &out, NULL);
    sb_buf_free(&out);
}

/* What every backend tells of itself, named by its configured alias (what clients send back as
 * "model"). Returns a malloc'd array of sb__server_n_models(s) entries (at least one), or NULL. */
static struct sb_backend_info *model_infos(const struct sb_server *s)
{
    size_t n = sb__server_n_models(s);
    struct sb_backend_info *infos = calloc(n ? n : 1, sizeof(*infos));

    for (size_t i = 0; i < n && infos != NULL; i++) {
        sb_backend_info(s->backends[i], &infos[i]);
        infos[i].name = s->cfg->models[i].name;
    }
    return infos;
}

/* Headers only Anthropic's clients send: GET /v1/models then answers in Anthropic's shape. */
static const char *const anthropic_headers[] = {"anthropic-version", "x-api-key"};

/* The codec whose list shape the client of a model list expects. */
static const struct sb_codec *models_codec(struct sb__req *r)
{
    struct evkeyvalq *h = evhttp_request_get_input_headers(r->ev);

    if (r->route->codec != &sb_openai_codec)
        return r->route->codec;
    for (size_t i = 0; i < SB_ARRAY_LEN(anthropic_headers); i++) {
        if (evhttp_find_header(h, anthropic_headers[i]) != NULL)
            return &sb_anthropic_codec;
    }
    return &sb_openai_codec;
}

static void handle_models(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_backend_info *infos = model_infos(s);
    struct sb_buf out;
    int rc = SB_ENOMEM;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (infos != NULL)
        rc = models_codec(r)->write_models(infos, sb__server_n_models(s), &out);
    reply_built(r, rc, 200, &out, NULL);
    sb_buf_free(&out);
    free(infos);
}

static void handle_metrics(struct sb__req *r)
{
    struct sb_buf out;
    int rc;

    sb_buf_init(&out, SB__MAX_METRICS_BYTES);
    rc = sb_metrics_render(&out);
    if (rc != 0) {
        reply_built(r, rc, 500, &out, NULL);
    } else {
        sb__reply_typed(r, 200, SB_METRICS_CONTENT_TYPE, sb_buf_view(&out), NULL);
    }
    sb_buf_free(&out);
}

/* ---------------------------------------------------------------------------------------------
 * Ollama's informational endpoints
 * ------------------------------------------------------------------------------------------- */
static void handle_ollama_root(struct sb__req *r)
{
    /* Ollama's exact body; HEAD gets the same headers without it (libevent drops the body). */
    sb__reply_typed(r, 200, "text/plain; charset=utf-8", SB_STR_LIT("Ollama is running"), NULL);
}

static void handle_ollama_version(struct sb__req *r)
{
    struct sb_buf out;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    reply_built(r, sb_ollama_write_version(&out), 200, &out, NULL);
    sb_buf_free(&out);
}

static void handle_ollama_ps(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_backend_info *infos = model_infos(s);
    struct sb_buf out;
    int rc = SB_ENOMEM;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (infos != NULL)
        rc = sb_ollama_write_ps(infos, sb__server_n_models(s), &out);
    reply_built(r, rc, 200, &out, NULL);
    sb_buf_free(&out);
    free(infos);
}

static void handle_ollama_show(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_arena *a = sb_arena_new(2 * s->cfg->listen.max_body_bytes + ((size_t)64 << 10));
    struct sb_api_error err;
    struct sb_backend_info info;
    struct sb_str name = SB_STR_NULL;
    struct sb_buf out;
    size_t i;
    int rc;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (a == NULL) {
        reply_built(r, SB_ENOMEM, 500, &out, NULL);
        goto done;
    }
    sb_api_fail(&err, 400, "invalid_request_error", NULL, NULL, "The request body is invalid.");
    if (sb_ollama_parse_show(a, request_body(r), &name, &err) != 0) {
        sb__reply_error(r, &err, NULL);
        goto done;
    }
    i = sb__server_model_index_for(s, SB_API_OLLAMA, name);
    if (i == sb__server_n_models(s)) {
        sb__server_model_not_found(s, SB_API_OLLAMA, name, &err);
        sb__reply_error(r, &err, NULL);
        goto done;
    }
    sb_backend_info(s->backends[i], &info);
    info.name = s->cfg->models[i].name;
    rc = sb_ollama_write_show(&info, &out);
    reply_built(r, rc, 200, &out, info.name);
done:
    sb_buf_free(&out);
    sb_arena_free(a);
}

/* Reads an optional member: a string into *str, or a boolean into *flag. Returns false and
 * answers 400 when the member has another type. */
static bool tokenize_member(struct sb__req *r, json_t *root, const char *key, struct sb_str *str,
                            bool *flag)
{
    json_t *v = json_object_get(root, key);
    struct sb_api_error err;

    if (v == NULL || json_is_null(v))
        return true;
    if (str != NULL && json_is_string(v)) {
        *str = (struct sb_str){json_string_value(v), json_string_length(v)};
        return true;
    }
    if (flag != NULL && json_is_boolean(v)) {
        *flag = json_is_true(v);
        return true;
    }
    sb_api_fail(&err, 400, "invalid_request_error", "invalid_type", key,
                "Invalid type for '%s': expected %s.", key, str != NULL ? "a string" : "a boolean");
    sb__reply_error(r, &err, NULL);
    return false;
}

static void handle_tokenize(struct sb__req *r)
{
    struct sb_str body = request_body(r);
    struct sb_str model_name = SB_STR_NULL, content = SB_STR_NULL;
    struct sb_api_error err;
    struct sb_backend *b;
    const char *model = NULL;
    int32_t *tokens = NULL;
    size_t n = 0;
    bool add_special = false;
    json_error_t jerr;
    json_t *root = json_loadb(body.p ? body.p : "", body.len, JSON_REJECT_DUPLICATES, &jerr);
    struct sb_buf out;
    int rc;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (root == NULL || !json_is_object(root)) {
        sb_api_fail(&err, 400, "invalid_request_error", "invalid_json", NULL,
                    "The body must be a JSON object like {\"content\": \"text\"}%s%s.",
                    root == NULL ? ": " : "", root == NULL ? jerr.text : "");
        sb__reply_error(r, &err, NULL);
        goto done;
    }
    if (!tokenize_member(r, root, "model", &model_name, NULL) ||
        !tokenize_member(r, root, "content", &content, NULL) ||
        !tokenize_member(r, root, "add_special", NULL, &add_special))
        goto done;
    if (json_object_get(root, "content") == NULL) {
        sb_api_fail(&err, 400, "invalid_request_error", NULL, "content",
                    "Missing required parameter: 'content'.");
        sb__reply_error(r, &err, NULL);
        goto done;
    }
    b = resolve_model(r, model_name, &model);
    if (b == NULL)
        goto done;
    rc =
        b->ops->tokenize ? b->ops->tokenize(b, content, add_special, &tokens, &n) : SB_EUNSUPPORTED;
    if (rc != 0) {
        helper_failed(r, rc, "tokenize", model);
        goto done;
    }
    rc = sb_buf_append_c(&out, "{\"tokens\":[");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sb_buf_printf(&out, i ? ",%ld" : "%ld", (long)tokens[i]);
    if (rc == 0)
        rc = sb_buf_append_c(&out, "]}");
    reply_built(r, rc, 200, &out, model);
done:
    free(tokens);
    sb_buf_free(&out);
    json_decref(root);
}

static void handle_apply_template(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_arena *a = sb_arena_new(4 * s->cfg->listen.max_body_bytes + ((size_t)1 << 20));
    const struct sb_codec *codec = r->route->codec;
    struct sb_request req;
    struct sb_api_error err;
    struct sb_backend *b;
    const char *model = NULL;
    struct sb_buf prompt, out;
    int rc;

    sb_buf_init(&prompt, SB__MAX_SMALL_REPLY_BYTES);
    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (a == NULL) {
        reply_built(r, SB_ENOMEM, 500, &out, NULL);
        goto done;
    }
    /* The same parse as the chat route: the prompt shown is exactly the one a chat would get. */
    sb_api_fail(&err, 400, "invalid_request_error", NULL, NULL, "The request body is invalid.");
    rc = codec->parse(SB_REQ_CHAT, a, request_body(r), &req, &err);
    if (rc != 0) {
        sb__reply_error(r, &err, NULL);
        goto done;
    }
    b = resolve_model(r, req.model, &model);
    if (b == NULL)
        goto done;
    rc = b->ops->render_prompt ? b->ops->render_prompt(b, &req, &prompt) : SB_EUNSUPPORTED;
    if (rc != 0) {
        helper_failed(r, rc, "apply its chat template", model);
        goto done;
    }
    rc = sb_buf_append_c(&out, "{\"prompt\":\"");
    if (rc == 0)
        rc = sb_buf_append_json_escaped(&out, sb_buf_view(&prompt));
    if (rc == 0)
        rc = sb_buf_append_c(&out, "\"}");
    reply_built(r, rc, 200, &out, model);
done:
    sb_buf_free(&prompt);
    sb_buf_free(&out);
    sb_arena_free(a);
}
