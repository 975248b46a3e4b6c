/* The `ollama` backend: an Ollama server over its native API (/api/chat with NDJSON streaming,
 * /api/generate for raw completions, /api/embed), reached through the loop's upstream client. */
#include <stdio.h>
#include <string.h>

#include "backend/ollama_remote.h"

/* A key, when configured, is for an authenticating proxy in front of the server. */
#define DEFAULT_BASE_URL "http://127.0.0.1:11434"

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
 * Rendering (with sb__jw)
 * ------------------------------------------------------------------------------------------- */
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

static int message(struct sb__jw *w, const struct sb_request *req, size_t i, char *err,
                   size_t err_size)
{
    const struct sb_message *m = &req->messages[i];
    sb__jw_raw(w, i > 0 ? ",{\"role\":" : "{\"role\":");
    sb__jw_str(w, sb_str_c(sb_role_name(m->role)));
    /* Ollama's content is one string; text parts are joined, images go to "images". */
    sb__jw_raw(w, ",\"content\":\"");
    size_t n_images = 0;
    for (size_t k = 0; k < m->n_parts; k++) {
        if (m->parts[k].type == SB_PART_TEXT && w->rc == 0)
            w->rc = sb_buf_append_json_escaped(w->b, m->parts[k].text);
        else if (m->parts[k].type == SB_PART_IMAGE)
            n_images++;
    }
    sb__jw_raw(w, "\"");
    if (n_images > 0) {
        sb__jw_key(w, "images");
        sb__jw_raw(w, "[");
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
            sb__jw_raw(w, written++ > 0 ? "," : "");
            sb__jw_str(w, data);
        }
        sb__jw_raw(w, "]");
    }
    if (m->n_tool_calls > 0) {
        sb__jw_key(w, "tool_calls");
        sb__jw_raw(w, "[");
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            const struct sb_tool_call *tc = &m->tool_calls[k];
            if (tc->arguments.len > 0 && !sb__cloud_json_is_object(tc->arguments)) {
                snprintf(err, err_size,
                         "messages[%zu].tool_calls[%zu].arguments: expected a JSON object", i, k);
                return SB_EINVAL;
            }
            sb__jw_raw(w, k > 0 ? ",{\"function\":{\"name\":" : "{\"function\":{\"name\":");
            sb__jw_str(w, tc->name);
            sb__jw_raw(w, ",\"arguments\":");
            sb__jw_raw_str(w, tc->arguments.len > 0 ? tc->arguments : SB_STR_LIT("{}"));
            sb__jw_raw(w, "}}");
        }
        sb__jw_raw(w, "]");
    }
    if (m->role == SB_ROLE_TOOL) {
        struct sb_str name = tool_name_for(req, i, m->tool_call_id);
        if (name.len > 0) {
            sb__jw_key(w, "tool_name");
            sb__jw_str(w, name);
        }
    }
    sb__jw_raw(w, "}");
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
        sb__jw_key(w, "description");
        sb__jw_str(w, t->description);
        sb__jw_key(w, "parameters");
        sb__jw_raw_str(w, t->parameters.len > 0
                              ? t->parameters
                              : SB_STR_LIT("{\"type\":\"object\",\"properties\":{}}"));
        sb__jw_raw(w, "}}");
    }
    sb__jw_raw(w, "]");
    return 0;
}

/* "options": Ollama's names for the sampling parameters that are set. */
static void options(struct sb__jw *w, const struct sb_request *req)
{
    const struct sb_sampling *s = &req->sampling;
    sb__jw_key(w, "options");
    sb__jw_raw(w, "{");
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
        sb__jw_num(w, floats[i].value);
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
        sb__jw_raw(w, w->b->len > start ? ",\"stop\":[" : "\"stop\":[");
        for (size_t i = 0; i < req->n_stop; i++) {
            sb__jw_raw(w, i > 0 ? "," : "");
            sb__jw_str(w, req->stop[i]);
        }
        sb__jw_raw(w, "]");
    }
    sb__jw_raw(w, "}");
}

/* ,"keep_alive":.. when the request set one: whole seconds as a number (-1 for good, as Ollama
 * reads a negative), anything finer as a duration in nanoseconds. */
static void keep_alive(struct sb__jw *w, const struct sb_request *req)
{
    if (!req->has_keep_alive)
        return;
    sb__jw_key(w, "keep_alive");
    if (req->keep_alive_ns < 0)
        sb__jw_raw(w, "-1");
    else if (req->keep_alive_ns % 1000000000 == 0)
        sb__jw_int(w, req->keep_alive_ns / 1000000000);
    else if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, "\"%lldns\"", (long long)req->keep_alive_ns);
}

int sb__ollama_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
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
        sb__jw_raw(&w, "[");
        /* A load or unload request: no messages, so the server does its own (nothing runs). */
        for (size_t i = 0; i < req->n_messages && rc == 0 && req->model_op == SB_MODEL_OP_NONE; i++)
            rc = message(&w, req, i, err, err_size);
        sb__jw_raw(&w, "]");
        if (rc == 0 && req->n_tools > 0 && req->tool_choice != SB_TOOL_CHOICE_NONE)
            rc = tools(&w, req, err, err_size);
        break;
    case SB_REQ_COMPLETION:
        /* raw: the prompt is sent as it is, without the model's template, as /v1/completions
         * means it. */
        sb__jw_key(&w, "prompt");
        sb__jw_str(&w, req->prompt);
        sb__jw_key(&w, "raw");
        sb__jw_raw(&w, "true");
        break;
    case SB_REQ_EMBED:
        sb__jw_key(&w, "input");
        sb__jw_raw(&w, "[");
        for (size_t i = 0; i < req->n_inputs; i++) {
            sb__jw_raw(&w, i > 0 ? "," : "");
            sb__jw_str(&w, req->inputs[i]);
        }
        sb__jw_raw(&w, "]");
        if (req->dimensions > 0 && w.rc == 0)
            w.rc = sb_buf_printf(out, ",\"dimensions\":%d", (int)req->dimensions);
        keep_alive(&w, req);
        sb__jw_raw(&w, "}");
        return w.rc;
    }
    if (rc != 0)
        return rc;
    if (req->json_mode) {
        sb__jw_key(&w, "format");
        sb__jw_raw(&w, "\"json\"");
    }
    sb__jw_key(&w, "stream");
    sb__jw_raw(&w, "true");
    keep_alive(&w, req);
    options(&w, req);
    sb__jw_raw(&w, "}");
    return w.rc;
}

/* ---------------------------------------------------------------------------------------------
 * The codec plugged into the shared cloud call, and the backend
 * ------------------------------------------------------------------------------------------- */
static void *codec_create(sb__sink_fn sink, void *ud, const void *ctx)
{
    const struct sb__bearer_codec_ctx *c = ctx;
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

static const struct sb__bearer_kind ollama_kind = {
    .ops = &sb_ollama_backend_ops,
    .default_base_url = DEFAULT_BASE_URL,
    .paths = kind_paths,
    .stream_accept = "Accept: application/x-ndjson",
    .body_max = SB__OLLAMA_BODY_MAX,
    .render = sb__ollama_render, /* never SB_EUNSUPPORTED */
    .codec = &ollama_codec,
};

static int ollama_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                         size_t err_size)
{
    return sb__bearer_create(&ollama_kind, cfg, out, err, err_size);
}

const struct sb_backend_ops sb_ollama_backend_ops = {
    .kind = "ollama",
    .create = ollama_create,
    .start = sb__bearer_start,
    .cancel = sb__cloud_call_cancel,
    .info = sb__bearer_info,
    .count_tokens = sb__cloud_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = sb__bearer_free,
};
