/* The `openai` backend: OpenAI and every OpenAI-compatible server (vLLM, llama-server, Ollama's
 * /v1, Groq, Together, OpenRouter, another Switchboard), reached through the loop's upstream
 * client. The canonical request is written as a Chat Completions, Completions or Embeddings
 * body; the answer is always asked for as a stream so usage is exact and the first token timed. */
#include <stdio.h>

#include "backend/openai.h"

#define DEFAULT_BASE_URL "https://api.openai.com/v1"

/* ---------------------------------------------------------------------------------------------
 * Rendering the request (with sb__jw: every key follows "model", so each has a leading comma)
 * ------------------------------------------------------------------------------------------- */
static bool all_text(const struct sb_message *m)
{
    for (size_t i = 0; i < m->n_parts; i++)
        if (m->parts[i].type != SB_PART_TEXT)
            return false;
    return true;
}

static void image_url(struct sb__jw *w, const struct sb_part *p)
{
    sb__jw_raw(w, "{\"type\":\"image_url\",\"image_url\":{\"url\":");
    if (p->url.len > 0) {
        sb__jw_str(w, p->url);
    } else {
        /* data:<media type>;base64,<data>, written straight into the JSON string */
        sb__jw_raw(w, "\"data:");
        if (w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, p->media_type);
        sb__jw_raw(w, ";base64,");
        if (w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, p->data);
        sb__jw_raw(w, "\"");
    }
    sb__jw_raw(w, "}}");
}

/* "content": a string for one text part, else an array of parts. */
static void content(struct sb__jw *w, const struct sb_message *m)
{
    if (m->n_parts == 1 && m->parts[0].type == SB_PART_TEXT) {
        sb__jw_str(w, m->parts[0].text);
        return;
    }
    if (m->n_parts == 0) {
        sb__jw_raw(w, m->n_tool_calls > 0 ? "null" : "\"\"");
        return;
    }
    sb__jw_raw(w, "[");
    for (size_t i = 0; i < m->n_parts; i++) {
        if (i > 0)
            sb__jw_raw(w, ",");
        if (m->parts[i].type == SB_PART_TEXT) {
            sb__jw_raw(w, "{\"type\":\"text\",\"text\":");
            sb__jw_str(w, m->parts[i].text);
            sb__jw_raw(w, "}");
        } else {
            image_url(w, &m->parts[i]);
        }
    }
    sb__jw_raw(w, "]");
}

static void tool_calls(struct sb__jw *w, const struct sb_message *m)
{
    sb__jw_key(w, "tool_calls");
    sb__jw_raw(w, "[");
    for (size_t i = 0; i < m->n_tool_calls; i++) {
        const struct sb_tool_call *tc = &m->tool_calls[i];
        sb__jw_raw(w, i > 0 ? ",{\"id\":" : "{\"id\":");
        sb__jw_str(w, tc->id);
        sb__jw_raw(w, ",\"type\":\"function\",\"function\":{\"name\":");
        sb__jw_str(w, tc->name);
        sb__jw_raw(w, ",\"arguments\":");
        sb__jw_str(w, tc->arguments.len > 0 ? tc->arguments : SB_STR_LIT("{}"));
        sb__jw_raw(w, "}}");
    }
    sb__jw_raw(w, "]");
}

/* Only user messages may carry images in OpenAI's API. */
static int messages(struct sb__jw *w, const struct sb_request *req, char *err, size_t err_size)
{
    sb__jw_raw(w, "[");
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct sb_message *m = &req->messages[i];
        if (m->role != SB_ROLE_USER && !all_text(m)) {
            snprintf(err, err_size, "messages[%zu]: only user messages may contain images", i);
            return SB_EINVAL;
        }
        sb__jw_raw(w, i > 0 ? ",{\"role\":" : "{\"role\":");
        sb__jw_str(w, sb_str_c(sb_role_name(m->role)));
        sb__jw_key(w, "content");
        content(w, m);
        if (m->role == SB_ROLE_TOOL) {
            sb__jw_key(w, "tool_call_id");
            sb__jw_str(w, m->tool_call_id);
        } else if (m->name.len > 0) {
            sb__jw_key(w, "name");
            sb__jw_str(w, m->name);
        }
        if (m->role == SB_ROLE_ASSISTANT && m->n_tool_calls > 0)
            tool_calls(w, m);
        sb__jw_raw(w, "}");
    }
    sb__jw_raw(w, "]");
    return 0;
}

static int tools(struct sb__jw *w, const struct sb_request *req, char *err, size_t err_size)
{
    sb__jw_key(w, "tools");
    sb__jw_raw(w, "[");
    for (size_t i = 0; i < req->n_tools; i++) {
        const struct sb_tool *t = &req->tools[i];
        if (t->parameters.len > 0 && !sb__cloud_json_is_object(t->parameters)) {
            snprintf(err, err_size, "tools[%zu].parameters: expected a JSON object", i);
            return SB_EINVAL;
        }
        sb__jw_raw(w, i > 0 ? ",{\"type\":\"function\",\"function\":{\"name\":"
                            : "{\"type\":\"function\",\"function\":{\"name\":");
        sb__jw_str(w, t->name);
        if (t->description.len > 0) {
            sb__jw_key(w, "description");
            sb__jw_str(w, t->description);
        }
        sb__jw_key(w, "parameters");
        if (t->parameters.len > 0) {
            if (w->rc == 0)
                w->rc = sb_buf_append_str(w->b, t->parameters);
        } else {
            sb__jw_raw(w, "{\"type\":\"object\",\"properties\":{}}");
        }
        sb__jw_raw(w, "}}");
    }
    sb__jw_raw(w, "]");
    /* "auto" is OpenAI's default when tools are given. */
    if (req->tool_choice == SB_TOOL_CHOICE_NONE) {
        sb__jw_key(w, "tool_choice");
        sb__jw_raw(w, "\"none\"");
    } else if (req->tool_choice == SB_TOOL_CHOICE_REQUIRED) {
        sb__jw_key(w, "tool_choice");
        sb__jw_raw(w, "\"required\"");
    } else if (req->tool_choice == SB_TOOL_CHOICE_NAMED) {
        sb__jw_key(w, "tool_choice");
        sb__jw_raw(w, "{\"type\":\"function\",\"function\":{\"name\":");
        sb__jw_str(w, req->tool_choice_name);
        sb__jw_raw(w, "}}");
    }
    if (!req->parallel_tool_calls) {
        sb__jw_key(w, "parallel_tool_calls");
        sb__jw_raw(w, "false");
    }
    return 0;
}

/* The sampling fields OpenAI defines, when set; top_k, min_p and repeat_penalty have no
 * OpenAI name, and OpenAI refuses unknown fields. */
static void sampling(struct sb__jw *w, const struct sb_request *req)
{
    const struct sb_sampling *s = &req->sampling;
    if (s->temperature >= 0.0f) {
        sb__jw_key(w, "temperature");
        sb__jw_num(w, s->temperature);
    }
    if (s->top_p >= 0.0f) {
        sb__jw_key(w, "top_p");
        sb__jw_num(w, s->top_p);
    }
    if (s->presence_penalty != 0.0f) {
        sb__jw_key(w, "presence_penalty");
        sb__jw_num(w, s->presence_penalty);
    }
    if (s->frequency_penalty != 0.0f) {
        sb__jw_key(w, "frequency_penalty");
        sb__jw_num(w, s->frequency_penalty);
    }
    if (s->has_seed) {
        sb__jw_key(w, "seed");
        if (w->rc == 0)
            w->rc = sb_buf_printf(w->b, "%llu", (unsigned long long)s->seed);
    }
    if (req->max_tokens > 0) {
        sb__jw_key(w, "max_tokens");
        sb__jw_int(w, req->max_tokens);
    }
    if (req->n_stop > 0) {
        sb__jw_key(w, "stop");
        sb__jw_raw(w, "[");
        for (size_t i = 0; i < req->n_stop; i++) {
            if (i > 0)
                sb__jw_raw(w, ",");
            sb__jw_str(w, req->stop[i]);
        }
        sb__jw_raw(w, "]");
    }
    if (req->user.len > 0) {
        sb__jw_key(w, "user");
        sb__jw_str(w, req->user);
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
    struct sb__jw w = {out, 0};
    int rc = 0;
    err[0] = '\0';
    sb__jw_raw(&w, "{\"model\":");
    sb__jw_str(&w, model);
    switch (req->kind) {
    case SB_REQ_CHAT:
        sb__jw_key(&w, "messages");
        rc = messages(&w, req, err, err_size);
        if (rc == 0 && req->n_tools > 0)
            rc = tools(&w, req, err, err_size);
        if (req->json_mode) {
            sb__jw_key(&w, "response_format");
            sb__jw_raw(&w, "{\"type\":\"json_object\"}");
        }
        break;
    case SB_REQ_COMPLETION:
        sb__jw_key(&w, "prompt");
        sb__jw_str(&w, req->prompt);
        if (req->echo) {
            sb__jw_key(&w, "echo");
            sb__jw_raw(&w, "true");
        }
        break;
    case SB_REQ_EMBED:
        sb__jw_key(&w, "input");
        sb__jw_raw(&w, "[");
        for (size_t i = 0; i < req->n_inputs; i++) {
            if (i > 0)
                sb__jw_raw(&w, ",");
            sb__jw_str(&w, req->inputs[i]);
        }
        sb__jw_raw(&w, "]");
        sb__jw_key(&w, "encoding_format");
        sb__jw_raw(&w, "\"float\"");
        if (req->dimensions > 0) {
            sb__jw_key(&w, "dimensions");
            sb__jw_int(&w, req->dimensions);
        }
        if (req->user.len > 0) {
            sb__jw_key(&w, "user");
            sb__jw_str(&w, req->user);
        }
        sb__jw_raw(&w, "}");
        return rc != 0 ? rc : w.rc;
    }
    if (rc != 0)
        return rc;
    /* Always a stream upstream: usage comes exact in its last chunk, whatever the client asked. */
    sb__jw_key(&w, "stream");
    sb__jw_raw(&w, "true");
    sb__jw_key(&w, "stream_options");
    sb__jw_raw(&w, "{\"include_usage\":true}");
    sampling(&w, req);
    sb__jw_raw(&w, "}");
    return w.rc;
}

/* ---------------------------------------------------------------------------------------------
 * The codec plugged into the shared cloud call, and the backend
 * ------------------------------------------------------------------------------------------- */
static void *codec_create(sb__sink_fn sink, void *ud, const void *ctx)
{
    const struct sb__bearer_codec_ctx *c = ctx;
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

static const struct sb__bearer_kind openai_kind = {
    .ops = &sb_openai_backend_ops,
    .default_base_url = DEFAULT_BASE_URL,
    .paths = kind_paths,
    .stream_accept = "Accept: text/event-stream",
    .body_max = SB__OPENAI_BODY_MAX,
    .render = sb__openai_render,
    .codec = &openai_codec,
};

static int openai_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                         size_t err_size)
{
    return sb__bearer_create(&openai_kind, cfg, out, err, err_size);
}

const struct sb_backend_ops sb_openai_backend_ops = {
    .kind = "openai",
    .create = openai_create,
    .start = sb__bearer_start,
    .cancel = sb__cloud_call_cancel,
    .info = sb__bearer_info,
    .count_tokens = sb__cloud_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = sb__bearer_free,
};
