/* The `ollama` backend: an Ollama server over its native API (/api/chat with NDJSON streaming,
 * /api/generate for raw completions, /api/embed), reached through the loop's upstream client. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ollama_remote.h"

#ifndef SB_VERSION
#define SB_VERSION "dev"
#endif

#define DEFAULT_BASE_URL "http://127.0.0.1:11434"

struct ollama_backend {
    struct sb_backend base;
    char *name;
    char *model;
    char *urls[3]; /* by request kind */
    char *auth;    /* "Authorization: Bearer KEY" (an authenticating proxy), or NULL */
    struct sb_str key;
    struct sb_upstream_timeouts timeouts;
    bool embeddings;
    int64_t created;
};

static const char *const kind_paths[] = {
    [SB_REQ_CHAT] = "/api/chat",
    [SB_REQ_COMPLETION] = "/api/generate",
    [SB_REQ_EMBED] = "/api/embed",
};

const char *sb__ollama_path(enum sb_request_kind kind)
{
    return (size_t)kind < SB_ARRAY_LEN(kind_paths) ? kind_paths[kind] : kind_paths[SB_REQ_CHAT];
}

/* ---------------------------------------------------------------------------------------------
 * Rendering
 * ------------------------------------------------------------------------------------------- */
struct w {
    struct sb_buf *b;
    int rc;
};

static void raw(struct w *w, const char *s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_c(w->b, s);
}

static void raw_str(struct w *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_str(w->b, s);
}

static void str(struct w *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb__cloud_json_string(w->b, s);
}

static void key(struct w *w, const char *k)
{
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, ",\"%s\":", k);
}

static void num(struct w *w, float v)
{
    if (w->rc == 0)
        w->rc = sb__cloud_json_float(w->b, v);
}

/* An image's base64 bytes: its data, or the payload of a data: URL. */
static int image_data(const struct sb_part *p, struct sb_str *out)
{
    if (p->data.len > 0) {
        *out = p->data;
        return 0;
    }
    ptrdiff_t at = sb_str_find(p->url, SB_STR_LIT(";base64,"));
    if (sb_str_starts_with(p->url, SB_STR_LIT("data:")) && at >= 0) {
        size_t skip = (size_t)at + strlen(";base64,");
        *out = (struct sb_str){p->url.p + skip, p->url.len - skip};
        return 0;
    }
    return SB_EINVAL;
}

/* The name of the tool a tool message answers, from the assistant call it names. */
static struct sb_str tool_name_for(const struct sb_request *req, size_t upto, struct sb_str id)
{
    for (size_t i = upto; i-- > 0;) {
        const struct sb_message *m = &req->messages[i];
        for (size_t k = 0; k < m->n_tool_calls; k++)
            if (sb_str_eq(m->tool_calls[k].id, id))
                return m->tool_calls[k].name;
    }
    return SB_STR_NULL;
}

static int message(struct w *w, const struct sb_request *req, size_t i, char *err, size_t err_size)
{
    const struct sb_message *m = &req->messages[i];
    raw(w, i > 0 ? ",{\"role\":" : "{\"role\":");
    str(w, sb_str_c(sb_role_name(m->role)));
    /* Ollama's content is one string; text parts are joined, images go to "images". */
    raw(w, ",\"content\":\"");
    size_t n_images = 0;
    for (size_t k = 0; k < m->n_parts; k++) {
        if (m->parts[k].type == SB_PART_TEXT && w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, m->parts[k].text);
        else if (m->parts[k].type == SB_PART_IMAGE)
            n_images++;
    }
    raw(w, "\"");
    if (n_images > 0) {
        key(w, "images");
        raw(w, "[");
        size_t written = 0;
        for (size_t k = 0; k < m->n_parts; k++) {
            struct sb_str data;
            if (m->parts[k].type != SB_PART_IMAGE)
                continue;
            if (image_data(&m->parts[k], &data) != 0) {
                snprintf(err, err_size,
                         "messages[%zu]: Ollama takes images as base64 data, not by URL", i);
                return SB_EINVAL;
            }
            raw(w, written++ > 0 ? "," : "");
            str(w, data);
        }
        raw(w, "]");
    }
    if (m->n_tool_calls > 0) {
        key(w, "tool_calls");
        raw(w, "[");
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const struct sb_tool_call *tc = &m->tool_calls[k];
            if (tc->arguments.len > 0 && !sb__cloud_json_is_object(tc->arguments)) {
                snprintf(err, err_size,
                         "messages[%zu].tool_calls[%zu].arguments: expected a JSON object", i, k);
                return SB_EINVAL;
            }
            raw(w, k > 0 ? ",{\"function\":{\"name\":" : "{\"function\":{\"name\":");
            str(w, tc->name);
            raw(w, ",\"arguments\":");
            raw_str(w, tc->arguments.len > 0 ? tc->arguments : SB_STR_LIT("{}"));
            raw(w, "}}");
        }
        raw(w, "]");
    }
    if (m->role == SB_ROLE_TOOL) {
        struct sb_str name = tool_name_for(req, i, m->tool_call_id);
        if (name.len > 0) {
            key(w, "tool_name");
            str(w, name);
        }
    }
    raw(w, "}");
    return 0;
}

static int tools(struct w *w, const struct sb_request *req, char *err, size_t err_size)
{
    key(w, "tools");
    raw(w, "[");
    for (size_t i = 0; i < req->n_tools; i++) {
        const struct sb_tool *t = &req->tools[i];
        if (t->parameters.len > 0 && !sb__cloud_json_is_object(t->parameters)) {
            snprintf(err, err_size, "tools[%zu].parameters: expected a JSON object", i);
            return SB_EINVAL;
        }
        raw(w, i > 0 ? ",{\"type\":\"function\",\"function\":{\"name\":"
                     : "{\"type\":\"function\",\"function\":{\"name\":");
        str(w, t->name);
        key(w, "description");
        str(w, t->description);
        key(w, "parameters");
        raw_str(w, t->parameters.len > 0 ? t->parameters
                                         : SB_STR_LIT("{\"type\":\"object\",\"properties\":{}}"));
        raw(w, "}}");
    }
    raw(w, "]");
    return 0;
}

/* "options": Ollama's names for the sampling parameters that are set. */
static void options(struct w *w, const struct sb_request *req)
{
    const struct sb_sampling *s = &req->sampling;
    key(w, "options");
    raw(w, "{");
    size_t start = w->b->len; /* members after the first one start with a comma */
    struct {
        const char *name;
        float value;
        bool set;
    } floats[] = {
        {"temperature", s->temperature, s->temperature >= 0.0f},
        {"top_p", s->top_p, s->top_p >= 0.0f},
        {"min_p", s->min_p, s->min_p >= 0.0f},
        {"presence_penalty", s->presence_penalty, s->presence_penalty != 0.0f},
        {"frequency_penalty", s->frequency_penalty, s->frequency_penalty != 0.0f},
        {"repeat_penalty", s->repeat_penalty, s->repeat_penalty != 0.0f},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(floats); i++) {
        if (!floats[i].set)
            continue;
        if (w->rc == 0)
            w->rc = sb_buf_printf(w->b, "%s\"%s\":", w->b->len > start ? "," : "", floats[i].name);
        num(w, floats[i].value);
    }
    if (s->top_k >= 0 && w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%s\"top_k\":%d", w->b->len > start ? "," : "", (int)s->top_k);
    if (s->has_seed && w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%s\"seed\":%llu", w->b->len > start ? "," : "",
                              (unsigned long long)s->seed);
    if (req->max_tokens > 0 && w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%s\"num_predict\":%lld", w->b->len > start ? "," : "",
                              (long long)req->max_tokens);
    if (req->n_stop > 0) {
        raw(w, w->b->len > start ? ",\"stop\":[" : "\"stop\":[");
        for (size_t i = 0; i < req->n_stop; i++) {
            raw(w, i > 0 ? "," : "");
            str(w, req->stop[i]);
        }
        raw(w, "]");
    }
    raw(w, "}");
}

int sb__ollama_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
                      char *err, size_t err_size)
{
    struct w w = {out, 0};
    int rc = 0;
    err[0] = '\0';
    raw(&w, "{\"model\":");
    str(&w, model);
    switch (req->kind) {
    case SB_REQ_CHAT:
        key(&w, "messages");
        raw(&w, "[");
        for (size_t i = 0; i < req->n_messages && rc == 0; i++)
            rc = message(&w, req, i, err, err_size);
        raw(&w, "]");
        if (rc == 0 && req->n_tools > 0 && req->tool_choice != SB_TOOL_CHOICE_NONE)
            rc = tools(&w, req, err, err_size);
        break;
    case SB_REQ_COMPLETION:
        /* raw: the prompt is sent as it is, without the model's template, as /v1/completions
         * means it. */
        key(&w, "prompt");
        str(&w, req->prompt);
        key(&w, "raw");
        raw(&w, "true");
        break;
    case SB_REQ_EMBED:
        key(&w, "input");
        raw(&w, "[");
        for (size_t i = 0; i < req->n_inputs; i++) {
            raw(&w, i > 0 ? "," : "");
            str(&w, req->inputs[i]);
        }
        raw(&w, "]");
        if (req->dimensions > 0 && w.rc == 0)
            w.rc = sb_buf_printf(out, ",\"dimensions\":%d", (int)req->dimensions);
        raw(&w, "}");
        return w.rc;
    }
    if (rc != 0)
        return rc;
    if (req->json_mode) {
        key(&w, "format");
        raw(&w, "\"json\"");
    }
    key(&w, "stream");
    raw(&w, "true");
    options(&w, req);
    raw(&w, "}");
    return w.rc;
}

/* ---------------------------------------------------------------------------------------------
 * The codec plugged into the shared cloud call (see openai.c for why a thread-local)
 * ------------------------------------------------------------------------------------------- */
struct start_ctx {
    bool embeddings;
    struct sb_str secret;
};
static _Thread_local const struct start_ctx *t_starting;

static void *codec_create(sb__sink_fn sink, void *ud)
{
    const struct start_ctx *c = t_starting;
    struct sb__ollama_stream *s = sb__ollama_stream_new(sink, ud, c != NULL && c->embeddings);
    if (s != NULL && c != NULL)
        sb__ollama_stream_set_secret(s, c->secret);
    return s;
}

static int codec_feed(void *dec, const char *p, size_t len)
{
    return sb__ollama_stream_feed(dec, p, len);
}

static void codec_eof(void *dec)
{
    sb__ollama_stream_eof(dec);
}

static void codec_http_error(void *dec, int status, struct sb_str body, struct sb_str hdr,
                             uint32_t retry_after_ms)
{
    SB_UNUSED(hdr);
    sb__ollama_stream_http_error(dec, status, body, retry_after_ms);
}

static void codec_free(void *dec)
{
    sb__ollama_stream_free(dec);
}

static const struct sb__cloud_codec ollama_codec = {
    .provider = "ollama",
    .create = codec_create,
    .feed = codec_feed,
    .eof = codec_eof,
    .http_error = codec_http_error,
    .error_header = NULL,
    .free = codec_free,
};

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */
static void backend_destroy(struct ollama_backend *b)
{
    free(b->name);
    free(b->model);
    for (size_t i = 0; i < SB_ARRAY_LEN(b->urls); i++)
        free(b->urls[i]);
    if (b->auth != NULL) {
        memset(b->auth, 0, strlen(b->auth));
        free(b->auth);
    }
    free(b);
}

static int ollama_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                         size_t err_size)
{
    struct sb_buf buf;
    sb_buf_init(&buf, 1 << 16);
    struct ollama_backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        goto fail;
    b->base.ops = &sb_ollama_backend_ops;
    b->created = sb_unix_time();
    b->embeddings = cfg->embeddings;
    b->timeouts = (struct sb_upstream_timeouts){cfg->timeouts.connect_ms, cfg->timeouts.first_byte_ms,
                                                cfg->timeouts.idle_ms, cfg->timeouts.total_ms};
    b->name = strdup(cfg->name);
    b->model = strdup(cfg->upstream_model != NULL ? cfg->upstream_model : cfg->name);
    if (b->name == NULL || b->model == NULL)
        goto fail;
    struct sb_str base = sb_str_c(cfg->base_url != NULL ? cfg->base_url : DEFAULT_BASE_URL);
    while (base.len > 0 && base.p[base.len - 1] == '/')
        base.len--;
    for (size_t i = 0; i < SB_ARRAY_LEN(b->urls); i++) {
        sb_buf_reset(&buf);
        if (sb_buf_append_str(&buf, base) != 0 || sb_buf_append_c(&buf, kind_paths[i]) != 0 ||
            (b->urls[i] = sb_buf_steal(&buf)) == NULL)
            goto fail;
    }
    if (cfg->api_key != NULL && cfg->api_key[0] != '\0') {
        if (sb_buf_printf(&buf, "Authorization: Bearer %s", cfg->api_key) != 0 ||
            (b->auth = sb_buf_steal(&buf)) == NULL)
            goto fail;
        b->key = (struct sb_str){b->auth + strlen("Authorization: Bearer "), strlen(cfg->api_key)};
    }
    bool creds_in_url = memchr(base.p, '@', base.len) != NULL;
    sb_log(SB_LOG_INFO, NULL, "model %s: ollama backend, upstream model %s at %.*s%s", b->name,
           b->model, creds_in_url ? 0 : (int)base.len, base.p,
           creds_in_url ? "(URL not shown: it carries credentials)" : "");
    sb_buf_free(&buf);
    *out = &b->base;
    return 0;
fail:
    snprintf(err, err_size, "model %s: out of memory", cfg->name != NULL ? cfg->name : "?");
    sb_buf_free(&buf);
    if (b != NULL)
        backend_destroy(b);
    return SB_ENOMEM;
}

static int ollama_start(struct sb_backend *base, struct sb_call *call)
{
    struct ollama_backend *b = (struct ollama_backend *)base;
    if (call == NULL || call->req == NULL || call->upstream == NULL)
        return SB_EINVAL;
    const struct sb_request *req = call->req;
    if (req->kind == SB_REQ_EMBED && !b->embeddings)
        return SB_EUNSUPPORTED;
    if (req->kind == SB_REQ_CHAT && req->n_messages == 0)
        return SB_EINVAL;
    struct sb_buf body;
    sb_buf_init(&body, SB__OLLAMA_BODY_MAX);
    char err[512];
    int rc = sb__ollama_render(req, sb_str_c(b->model), &body, err, sizeof err);
    if (rc == SB_EINVAL) {
        rc = sb__cloud_call_fail(call, b->name, SB_EINVAL, 400, err);
        goto done;
    }
    if (rc != 0)
        goto done;
    const char *headers[4];
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = req->kind == SB_REQ_EMBED ? "Accept: application/json"
                                             : "Accept: application/x-ndjson";
    headers[n++] = "User-Agent: switchboard/" SB_VERSION;
    if (b->auth != NULL)
        headers[n++] = b->auth;
    struct sb_upstream_request r = {
        .method = "POST",
        .url = b->urls[req->kind < SB_ARRAY_LEN(b->urls) ? req->kind : SB_REQ_CHAT],
        .headers = headers,
        .n_headers = n,
        .body = sb_buf_view(&body),
        .timeouts = b->timeouts,
    };
    struct start_ctx ctx = {req->kind == SB_REQ_EMBED, b->key};
    t_starting = &ctx;
    rc = sb__cloud_call_start(call, b->name, b->model, &ollama_codec, &r);
    t_starting = NULL;
done:
    sb_buf_free(&body);
    return rc;
}

static void ollama_cancel(struct sb_backend *base, struct sb_call *call)
{
    SB_UNUSED(base);
    sb__cloud_call_cancel(call);
}

static void ollama_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct ollama_backend *b = (const struct ollama_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "ollama";
    out->ready = true;
    out->embeddings = b->embeddings;
    out->created = b->created;
}

static int ollama_count_tokens(struct sb_backend *base, struct sb_str text, int64_t *out)
{
    SB_UNUSED(base);
    SB_UNUSED(text);
    *out = 0;
    return SB_EUNSUPPORTED;
}

static void ollama_free(struct sb_backend *base)
{
    backend_destroy((struct ollama_backend *)base);
}

const struct sb_backend_ops sb_ollama_backend_ops = {
    .kind = "ollama",
    .create = ollama_create,
    .start = ollama_start,
    .cancel = ollama_cancel,
    .info = ollama_info,
    .count_tokens = ollama_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = ollama_free,
};
