/* The `openai` backend: OpenAI and every OpenAI-compatible server (vLLM, llama-server, Ollama's
 * /v1, Groq, Together, OpenRouter, another Switchboard), reached through the loop's upstream
 * client. The canonical request is written as a Chat Completions, Completions or Embeddings
 * body; the answer is always asked for as a stream so usage is exact and the first token timed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/openai.h"

#ifndef SB_VERSION
#define SB_VERSION "dev"
#endif

#define DEFAULT_BASE_URL "https://api.openai.com/v1"

struct openai_backend {
    struct sb_backend base;
    char *name;         /* the alias */
    char *model;        /* the provider's model id */
    char *urls[3];      /* by request kind: base_url + path */
    char *auth;         /* "Authorization: Bearer KEY", or NULL without a key */
    struct sb_str key;  /* the key inside auth, to scrub from messages */
    struct sb_upstream_timeouts timeouts;
    bool embeddings;
    int64_t created;
};

/* ---------------------------------------------------------------------------------------------
 * Rendering the request
 * ------------------------------------------------------------------------------------------- */
/* A JSON writer that stops at the first failure and remembers it. */
struct w {
    struct sb_buf *b;
    int rc;
};

static void raw(struct w *w, const char *s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_c(w->b, s);
}

static void str(struct w *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb__cloud_json_string(w->b, s);
}

/* ,"key": (a leading comma: every key follows "model") */
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

static void integer(struct w *w, int64_t v)
{
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%lld", (long long)v);
}

static bool all_text(const struct sb_message *m)
{
    for (size_t i = 0; i < m->n_parts; i++)
        if (m->parts[i].type != SB_PART_TEXT)
            return false;
    return true;
}

static void image_url(struct w *w, const struct sb_part *p)
{
    raw(w, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
    if (p->url.len > 0) {
        str(w, p->url);
    } else {
        /* data:<media type>;base64,<data>, written straight into the JSON string */
        raw(w, "\"data:");
        if (w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, p->media_type);
        raw(w, ";base64,");
        if (w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, p->data);
        raw(w, "\"");
    }
    raw(w, "}}");
}

/* "content": a string for one text part, else an array of parts. */
static void content(struct w *w, const struct sb_message *m)
{
    if (m->n_parts == 1 && m->parts[0].type == SB_PART_TEXT) {
        str(w, m->parts[0].text);
        return;
    }
    if (m->n_parts == 0) {
        raw(w, m->n_tool_calls > 0 ? "null" : "\"\"");
        return;
    }
    raw(w, "[");
    for (size_t i = 0; i < m->n_parts; i++) {
        if (i > 0)
            raw(w, ",");
        if (m->parts[i].type == SB_PART_TEXT) {
            raw(w, "{\"type\":\"text\",\"text\":");
            str(w, m->parts[i].text);
            raw(w, "}");
        } else {
            image_url(w, &m->parts[i]);
        }
    }
    raw(w, "]");
}

static void tool_calls(struct w *w, const struct sb_message *m)
{
    key(w, "tool_calls");
    raw(w, "[");
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const struct sb_tool_call *tc = &m->tool_calls[i];
        raw(w, i > 0 ? ",{\"id\":" : "{\"id\":");
        str(w, tc->id);
        raw(w, ",\"type\":\"function\",\"function\":{\"name\":");
        str(w, tc->name);
        raw(w, ",\"arguments\":");
        str(w, tc->arguments.len > 0 ? tc->arguments : SB_STR_LIT("{}"));
        raw(w, "}}");
    }
    raw(w, "]");
}

/* Only user messages may carry images in OpenAI's API. */
static int messages(struct w *w, const struct sb_request *req, char *err, size_t err_size)
{
    raw(w, "[");
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct sb_message *m = &req->messages[i];
        if (m->role != SB_ROLE_USER && !all_text(m)) {
            snprintf(err, err_size, "messages[%zu]: only user messages may contain images", i);
            return SB_EINVAL;
        }
        raw(w, i > 0 ? ",{\"role\":" : "{\"role\":");
        str(w, sb_str_c(sb_role_name(m->role)));
        key(w, "content");
        content(w, m);
        if (m->role == SB_ROLE_TOOL) {
            key(w, "tool_call_id");
            str(w, m->tool_call_id);
        } else if (m->name.len > 0) {
            key(w, "name");
            str(w, m->name);
        }
        if (m->role == SB_ROLE_ASSISTANT && m->n_tool_calls > 0)
            tool_calls(w, m);
        raw(w, "}");
    }
    raw(w, "]");
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
        if (t->description.len > 0) {
            key(w, "description");
            str(w, t->description);
        }
        key(w, "parameters");
        if (t->parameters.len > 0) {
            if (w->rc == 0)
                w->rc = sb_buf_append_str(w->b, t->parameters);
        } else {
            raw(w, "{\"type\":\"object\",\"properties\":{}}");
        }
        raw(w, "}}");
    }
    raw(w, "]");
    /* "auto" is OpenAI's default when tools are given. */
    if (req->tool_choice == SB_TOOL_CHOICE_NONE) {
        key(w, "tool_choice");
        raw(w, "\"none\"");
    } else if (req->tool_choice == SB_TOOL_CHOICE_REQUIRED) {
        key(w, "tool_choice");
        raw(w, "\"required\"");
    } else if (req->tool_choice == SB_TOOL_CHOICE_NAMED) {
        key(w, "tool_choice");
        raw(w, "{\"type\":\"function\",\"function\":{\"name\":");
        str(w, req->tool_choice_name);
        raw(w, "}}");
    }
    if (!req->parallel_tool_calls) {
        key(w, "parallel_tool_calls");
        raw(w, "false");
    }
    return 0;
}

/* The sampling fields OpenAI defines, when set; top_k, min_p and repeat_penalty have no
 * OpenAI name, and OpenAI refuses unknown fields. */
static void sampling(struct w *w, const struct sb_request *req)
{
    const struct sb_sampling *s = &req->sampling;
    if (s->temperature >= 0.0f) {
        key(w, "temperature");
        num(w, s->temperature);
    }
    if (s->top_p >= 0.0f) {
        key(w, "top_p");
        num(w, s->top_p);
    }
    if (s->presence_penalty != 0.0f) {
        key(w, "presence_penalty");
        num(w, s->presence_penalty);
    }
    if (s->frequency_penalty != 0.0f) {
        key(w, "frequency_penalty");
        num(w, s->frequency_penalty);
    }
    if (s->has_seed) {
        key(w, "seed");
        if (w->rc == 0)
            w->rc = sb_buf_printf(w->b, "%llu", (unsigned long long)s->seed);
    }
    if (req->max_tokens > 0) {
        key(w, "max_tokens");
        integer(w, req->max_tokens);
    }
    if (req->n_stop > 0) {
        key(w, "stop");
        raw(w, "[");
        for (size_t i = 0; i < req->n_stop; i++) {
            if (i > 0)
                raw(w, ",");
            str(w, req->stop[i]);
        }
        raw(w, "]");
    }
    if (req->user.len > 0) {
        key(w, "user");
        str(w, req->user);
    }
}

static const char *const kind_paths[] = {
    [SB_REQ_CHAT] = "/chat/completions",
    [SB_REQ_COMPLETION] = "/completions",
    [SB_REQ_EMBED] = "/embeddings",
};

const char *sb__openai_path(enum sb_request_kind kind)
{
    return (size_t)kind < SB_ARRAY_LEN(kind_paths) ? kind_paths[kind] : kind_paths[SB_REQ_CHAT];
}

int sb__openai_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
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
        rc = messages(&w, req, err, err_size);
        if (rc == 0 && req->n_tools > 0)
            rc = tools(&w, req, err, err_size);
        if (req->json_mode) {
            key(&w, "response_format");
            raw(&w, "{\"type\":\"json_object\"}");
        }
        break;
    case SB_REQ_COMPLETION:
        key(&w, "prompt");
        str(&w, req->prompt);
        if (req->echo) {
            key(&w, "echo");
            raw(&w, "true");
        }
        break;
    case SB_REQ_EMBED:
        key(&w, "input");
        raw(&w, "[");
        for (size_t i = 0; i < req->n_inputs; i++) {
            if (i > 0)
                raw(&w, ",");
            str(&w, req->inputs[i]);
        }
        raw(&w, "]");
        key(&w, "encoding_format");
        raw(&w, "\"float\"");
        if (req->dimensions > 0) {
            key(&w, "dimensions");
            integer(&w, req->dimensions);
        }
        if (req->user.len > 0) {
            key(&w, "user");
            str(&w, req->user);
        }
        raw(&w, "}");
        return rc != 0 ? rc : w.rc;
    }
    if (rc != 0)
        return rc;
    /* Always a stream upstream: usage comes exact in its last chunk, whatever the client asked. */
    key(&w, "stream");
    raw(&w, "true");
    key(&w, "stream_options");
    raw(&w, "{\"include_usage\":true}");
    sampling(&w, req);
    raw(&w, "}");
    return w.rc;
}

/* ---------------------------------------------------------------------------------------------
 * The codec plugged into the shared cloud call
 * ------------------------------------------------------------------------------------------- */
/* What the decoder of the call being started needs from its backend. The cloud call creates the
 * decoder synchronously inside sb__cloud_call_start, on this thread, so start() hands these over
 * through a thread-local set just around that call. */
struct start_ctx {
    bool embeddings;
    struct sb_str secret;
};
static _Thread_local const struct start_ctx *t_starting;

static void *codec_create(sb__sink_fn sink, void *ud)
{
    const struct start_ctx *c = t_starting;
    struct sb__oai_stream *s = sb__oai_stream_new(sink, ud, c != NULL && c->embeddings, "openai");
    if (s != NULL && c != NULL)
        sb__oai_stream_set_secret(s, c->secret);
    return s;
}

static int codec_feed(void *dec, const char *p, size_t len)
{
    return sb__oai_stream_feed(dec, p, len);
}

static void codec_eof(void *dec)
{
    sb__oai_stream_eof(dec);
}

static void codec_http_error(void *dec, int status, struct sb_str body, struct sb_str hdr,
                             uint32_t retry_after_ms)
{
    SB_UNUSED(hdr);
    sb__oai_stream_http_error(dec, status, body, retry_after_ms);
}

static void codec_free(void *dec)
{
    sb__oai_stream_free(dec);
}

static const struct sb__cloud_codec openai_codec = {
    .provider = "openai",
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
static void backend_destroy(struct openai_backend *b)
{
    free(b->name);
    free(b->model);
    for (size_t i = 0; i < SB_ARRAY_LEN(b->urls); i++)
        free(b->urls[i]);
    if (b->auth != NULL) {
        /* The key should not linger in freed memory. */
        memset(b->auth, 0, strlen(b->auth));
        free(b->auth);
    }
    free(b);
}

static int openai_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                         size_t err_size)
{
    int rc = SB_ENOMEM;
    struct sb_buf buf;
    sb_buf_init(&buf, 1 << 16);
    struct openai_backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        goto fail;
    b->base.ops = &sb_openai_backend_ops;
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
    sb_log(SB_LOG_INFO, NULL, "model %s: openai backend, upstream model %s at %.*s%s", b->name,
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
    return rc;
}

static int openai_start(struct sb_backend *base, struct sb_call *call)
{
    struct openai_backend *b = (struct openai_backend *)base;
    if (call == NULL || call->req == NULL || call->upstream == NULL)
        return SB_EINVAL;
    const struct sb_request *req = call->req;
    if (req->kind == SB_REQ_EMBED && !b->embeddings)
        return SB_EUNSUPPORTED;
    if (req->kind == SB_REQ_CHAT && req->n_messages == 0)
        return SB_EINVAL;

    struct sb_buf body;
    sb_buf_init(&body, SB__OPENAI_BODY_MAX);
    char err[512];
    int rc = sb__openai_render(req, sb_str_c(b->model), &body, err, sizeof err);
    if (rc == SB_EINVAL || rc == SB_EUNSUPPORTED) {
        /* The client learns why, as an error of its own request. */
        rc = sb__cloud_call_fail(call, b->name, rc, 400, err);
        goto done;
    }
    if (rc != 0)
        goto done;

    const char *headers[4];
    size_t n = 0;
    headers[n++] = "Content-Type: application/json";
    headers[n++] = req->kind == SB_REQ_EMBED ? "Accept: application/json"
                                             : "Accept: text/event-stream";
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
    rc = sb__cloud_call_start(call, b->name, b->model, &openai_codec, &r);
    t_starting = NULL;
done:
    sb_buf_free(&body);
    return rc;
}

static void openai_cancel(struct sb_backend *base, struct sb_call *call)
{
    SB_UNUSED(base);
    sb__cloud_call_cancel(call);
}

static void openai_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct openai_backend *b = (const struct openai_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "openai";
    out->n_ctx = 0;
    out->ready = true;
    out->embeddings = b->embeddings;
    out->created = b->created;
}

static int openai_count_tokens(struct sb_backend *base, struct sb_str text, int64_t *out)
{
    SB_UNUSED(base);
    SB_UNUSED(text);
    *out = 0;
    return SB_EUNSUPPORTED;
}

static void openai_free(struct sb_backend *base)
{
    backend_destroy((struct openai_backend *)base);
}

const struct sb_backend_ops sb_openai_backend_ops = {
    .kind = "openai",
    .create = openai_create,
    .start = openai_start,
    .cancel = openai_cancel,
    .info = openai_info,
    .count_tokens = openai_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = openai_free,
};
