/* The route table — method, path, codec, request kind, handler, doc — and the handlers that answer
 * at once: health, readiness, the model list and the llama-server-compatible helpers. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static void handle_health(struct sb__req *r);
static void handle_ready(struct sb__req *r);
static void handle_models(struct sb__req *r);
static void handle_tokenize(struct sb__req *r);
static void handle_apply_template(struct sb__req *r);

/* ---------------------------------------------------------------------------------------------
 * The table. A path may appear in several entries (one per method set); 405's Allow lists them all.
 * ------------------------------------------------------------------------------------------- */
const struct sb__route sb__routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", &sb_openai_codec, SB_REQ_CHAT, sb__exchange_start,
     "OpenAI chat completions; streamed as server-sent events when the body says \"stream\": true"},
    {EVHTTP_REQ_POST, "/v1/completions", &sb_openai_codec, SB_REQ_COMPLETION, sb__exchange_start,
     "OpenAI text completions (a raw prompt, no chat template)"},
    {EVHTTP_REQ_GET, "/v1/models", &sb_openai_codec, SB_REQ_CHAT, handle_models,
     "the configured models, in OpenAI's list shape"},
    {EVHTTP_REQ_GET, "/health", &sb_openai_codec, SB_REQ_CHAT, handle_health,
     "liveness: 200 {\"status\":\"ok\"} while the process serves"},
    {EVHTTP_REQ_GET, "/ready", &sb_openai_codec, SB_REQ_CHAT, handle_ready,
     "readiness: 200 when every model is loaded, else 503 naming those that are not"},
    {EVHTTP_REQ_POST, "/tokenize", &sb_openai_codec, SB_REQ_CHAT, handle_tokenize,
     "llama-server compatible: {\"model\",\"content\",\"add_special\"} -> {\"tokens\":[...]}"},
    {EVHTTP_REQ_POST, "/apply-template", &sb_openai_codec, SB_REQ_CHAT, handle_apply_template,
     "llama-server compatible: {\"model\",\"messages\"} -> {\"prompt\"}, the chat template "
     "applied"},
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

void sb__reply_no_route(struct sb__req *r, enum sb__route_match m, unsigned allowed)
{
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
                    "Invalid URL (%s %s): no such route. The API is under /v1 (POST "
                    "/v1/chat/completions, GET /v1/models).",
                    sb__method_name(r->method), shown);
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
        sb__server_model_not_found(s, name, &err);
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

static void handle_models(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_backend_info *infos = calloc(s->n_backends ? s->n_backends : 1, sizeof(*infos));
    struct sb_buf out;
    int rc = SB_ENOMEM;

    sb_buf_init(&out, SB__MAX_SMALL_REPLY_BYTES);
    if (infos != NULL) {
        for (size_t i = 0; i < s->n_backends; i++) {
            sb_backend_info(s->backends[i], &infos[i]);
            /* The configured alias is what clients send back as "model". */
            infos[i].name = s->cfg->models[i].name;
        }
        rc = r->route->codec->write_models(infos, s->n_backends, &out);
    }
    reply_built(r, rc, 200, &out, NULL);
    sb_buf_free(&out);
    free(infos);
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
