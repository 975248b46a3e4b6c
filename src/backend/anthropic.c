/* The anthropic backend: Anthropic's Messages API (POST {base_url}/v1/messages, always streamed
 * upstream), the canonical request rendered as its JSON body, its event stream decoded by
 * anthropic_sse.c, sent through the loop's upstream client. */
#include "backend/anthropic.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

#define ANTHROPIC_DEFAULT_BASE_URL "https://api.anthropic.com"

/* -----------------------------------------------------------------------------------------------
 * Request rendering
 * --------------------------------------------------------------------------------------------- */

static int write_text_block(struct sb_buf *b, struct sb_str text)
{
    int rc = sb_buf_append_c(b, "{\"type\":\"text\",\"text\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, text);
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

/* An image as a base64 source (from data or a data: URL) or a URL source. */
static int write_image_block(struct sb_buf *b, const struct sb_part *part, char *err,
                             size_t err_size)
{
    struct sb_str media = part->media_type, data = part->data;
    static const struct sb_str data_prefix = SB_STR_LIT("data:");
    static const struct sb_str b64_marker = SB_STR_LIT(";base64,");
    int rc;

    if (data.len == 0 && sb_str_starts_with(part->url, data_prefix)) {
        ptrdiff_t at = sb_str_find(part->url, b64_marker);
        if (at < 0)
            return sb__cloud_errf(err, err_size, SB_EINVAL,
                                  "an image data: URL must be base64-encoded for Anthropic");
        media = (struct sb_str){part->url.p + data_prefix.len, (size_t)at - data_prefix.len};
        data = (struct sb_str){part->url.p + at + b64_marker.len,
                               part->url.len - (size_t)at - b64_marker.len};
    }
    if (data.len > 0) {
        if (media.len == 0)
            return sb__cloud_errf(err, err_size, SB_EINVAL, "an image has no media type");
        rc = sb_buf_append_c(b,
                             "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, media);
        if (rc == SB_OK)
            rc = sb_buf_append_c(b, ",\"data\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, data);
    } else {
        if (part->url.len == 0)
            return sb__cloud_errf(err, err_size, SB_EINVAL, "an image has neither data nor a URL");
        rc = sb_buf_append_c(b, "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, part->url);
    }
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, "}}");
    return rc;
}

static int write_tool_use(struct sb_buf *b, const struct sb_tool_call *tc, struct sb_str args)
{
    int rc = sb_buf_append_c(b, "{\"type\":\"tool_use\",\"id\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, tc->id);
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, ",\"name\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, tc->name);
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, ",\"input\":");
    if (rc == SB_OK)
        rc = sb_buf_append_str(b, args);
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

/* A tool message's tool_result block (in a user turn). */
static int write_tool_result(struct sb_buf *b, const struct sb_message *m,
                             const struct sb__turn_blocks *blocks, char *err, size_t err_size)
{
    int rc = sb_buf_append_c(b, "{\"type\":\"tool_result\",\"tool_use_id\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, m->tool_call_id);
    bool any = false;
    for (size_t i = 0; i < m->n_parts; i++)
        any = any || m->parts[i].type != SB_PART_TEXT || m->parts[i].text.len > 0;
    if (rc == SB_OK && any) {
        size_t n = 0;
        rc = sb_buf_append_c(b, ",\"content\":[");
        if (rc == SB_OK)
            rc = sb__turns_parts(NULL, b, "user", m, blocks, &n, err, err_size);
        if (rc == SB_OK)
            rc = sb_buf_append_char(b, ']');
    }
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

static const struct sb__turn_blocks anthropic_blocks = {
    .text = write_text_block,
    .image = write_image_block,
    .tool_use = write_tool_use,
    .tool_result = write_tool_result,
};

static int write_messages(const struct sb_request *req, struct sb_buf *b, char *err,
                          size_t err_size)
{
    struct sb__turns t = {.b = b};
    int rc = sb_buf_append_c(b, ",\"messages\":[");

    if (req->kind == SB_REQ_COMPLETION) {
        /* Anthropic has no completion API: the prompt is the user's one message. */
        if (rc == SB_OK)
            rc = sb__turns_block(&t, "user");
        if (rc == SB_OK)
            rc = write_text_block(b, req->prompt);
    }
    if (rc == SB_OK && req->kind == SB_REQ_CHAT)
        rc = sb__turns_chat(&t, req, &anthropic_blocks, err, err_size);
    if (rc == SB_OK)
        rc = sb__turns_end(&t, err, err_size);
    return rc;
}

static int write_system(const struct sb_request *req, struct sb_buf *b)
{
    bool any = false;
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < req->n_messages; i++) {
        const struct sb_message *m = &req->messages[i];
        for (size_t k = 0; rc == SB_OK && m->role == SB_ROLE_SYSTEM && k < m->n_parts; k++) {
            if (m->parts[k].type != SB_PART_TEXT || m->parts[k].text.len == 0)
                continue;
            rc = sb_buf_append_c(b, any ? "\\n\\n" : ",\"system\":\"");
            if (rc == SB_OK)
                rc = sb_buf_append_json_escaped(b, m->parts[k].text);
            any = true;
        }
    }
    if (rc == SB_OK && any)
        rc = sb_buf_append_char(b, '"');
    return rc;
}

static int write_tools(const struct sb_request *req, struct sb_buf *b, char *err, size_t err_size)
{
    static const char *const choice_types[] = {
        [SB_TOOL_CHOICE_AUTO] = "auto",
        [SB_TOOL_CHOICE_NONE] = "none",
        [SB_TOOL_CHOICE_REQUIRED] = "any",
        [SB_TOOL_CHOICE_NAMED] = "tool",
    };
    int rc = SB_OK;

    if (req->n_tools == 0)
        return SB_OK;
    rc = sb_buf_append_c(b, ",\"tools\":[");
    for (size_t i = 0; rc == SB_OK && i < req->n_tools; i++) {
        const struct sb_tool *tool = &req->tools[i];
        struct sb_str schema = tool->parameters;
        if (schema.len == 0)
            schema = SB_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
        else if (!sb__cloud_json_is_object(schema))
            return sb__cloud_errf(err, err_size, SB_EINVAL,
                                  "tools[%zu]: parameters must be a JSON Schema object", i);
        rc = sb_buf_append_c(b, i ? ",{\"name\":" : "{\"name\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, tool->name);
        if (rc == SB_OK && tool->description.len) {
            rc = sb_buf_append_c(b, ",\"description\":");
            if (rc == SB_OK)
                rc = sb__cloud_json_string(b, tool->description);
        }
        if (rc == SB_OK)
            rc = sb_buf_append_c(b, ",\"input_schema\":");
        if (rc == SB_OK)
            rc = sb_buf_append_str(b, schema);
        if (rc == SB_OK)
            rc = sb_buf_append_char(b, '}');
    }
    if (rc != SB_OK)
        return rc;
    if ((size_t)req->tool_choice >= SB_ARRAY_LEN(choice_types))
        return sb__cloud_errf(err, err_size, SB_EINVAL, "an unknown tool_choice");
    rc = sb_buf_printf(b, "],\"tool_choice\":{\"type\":\"%s\"", choice_types[req->tool_choice]);
    if (rc == SB_OK && req->tool_choice == SB_TOOL_CHOICE_NAMED) {
        rc = sb_buf_append_c(b, ",\"name\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, req->tool_choice_name);
    }
    if (rc == SB_OK && !req->parallel_tool_calls && req->tool_choice != SB_TOOL_CHOICE_NONE)
        rc = sb_buf_append_c(b, ",\"disable_parallel_tool_use\":true");
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

static int write_sampling(const struct sb_request *req, struct sb_buf *b)
{
    const struct sb_sampling *s = &req->sampling;
    int rc = SB_OK;

    if (s->temperature != SB_UNSET_F) {
        /* OpenAI's range is [0, 2], Anthropic's [0, 1]. */
        rc = sb_buf_append_c(b, ",\"temperature\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_float(b, SB_MAX(0.0f, SB_MIN(s->temperature, 1.0f)));
    }
    if (rc == SB_OK && s->top_p != SB_UNSET_F) {
        rc = sb_buf_append_c(b, ",\"top_p\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_float(b, s->top_p);
    }
    if (rc == SB_OK && s->top_k > 0)
        rc = sb_buf_printf(b, ",\"top_k\":%d", (int)s->top_k);
    for (size_t i = 0; rc == SB_OK && i < req->n_stop; i++) {
        rc = sb_buf_append_c(b, i ? "," : ",\"stop_sequences\":[");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, req->stop[i]);
    }
    if (rc == SB_OK && req->n_stop > 0)
        rc = sb_buf_append_char(b, ']');
    return rc;
}

int sb__anthropic_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
                         char *err, size_t err_size)
{
    if (err_size > 0)
        err[0] = '\0';
    if (req->kind != SB_REQ_CHAT && req->kind != SB_REQ_COMPLETION)
        return sb__cloud_errf(err, err_size, SB_EUNSUPPORTED,
                              "Anthropic models serve no embeddings");

    int64_t max_tokens = req->max_tokens > 0 ? req->max_tokens : SB__ANTHROPIC_DEFAULT_MAX_TOKENS;
    int rc = sb_buf_append_c(out, "{\"model\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(out, model);
    if (rc == SB_OK)
        rc = sb_buf_printf(out, ",\"max_tokens\":%lld,\"stream\":true", (long long)max_tokens);
    if (rc == SB_OK)
        rc = write_system(req, out);
    if (rc == SB_OK)
        rc = write_messages(req, out, err, err_size);
    if (rc == SB_OK)
        rc = write_tools(req, out, err, err_size);
    if (rc == SB_OK)
        rc = write_sampling(req, out);
    if (rc == SB_OK && req->user.len > 0) {
        rc = sb_buf_append_c(out, ",\"metadata\":{\"user_id\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(out, req->user);
        if (rc == SB_OK)
            rc = sb_buf_append_char(out, '}');
    }
    if (rc == SB_OK)
        rc = sb_buf_append_char(out, '}');
    if (rc == SB_EINVAL && err_size > 0 && err[0] == '\0')
        sb__cloud_errf(err, err_size, rc, "a sampling value is not a finite number");
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * The backend
 * --------------------------------------------------------------------------------------------- */

struct anthropic_backend {
    struct sb_backend base;
    char *name;    /* the alias */
    char *url;     /* .../v1/messages */
    char *model;   /* the provider's model id */
    char *api_key; /* secret: only ever in the x-api-key header */
    struct sb_upstream_timeouts timeouts;
    char *ca_file; /* NULL = the system's CAs */
    int64_t n_ctx;
    int64_t created;
};

static void *codec_create(sb__sink_fn sink, void *ud, const void *ctx)
{
    SB_UNUSED(ctx);
    return sb__anth_stream_new(sink, ud);
}

static int codec_feed(void *dec, const char *p, size_t len)
{
    return sb__anth_stream_feed(dec, p, len);
}

static void codec_eof(void *dec)
{
    sb__anth_stream_eof(dec);
}

static void codec_http_error(void *dec, int status, struct sb_str body, struct sb_str hdr,
                             uint32_t retry_after_ms)
{
    SB_UNUSED(hdr);
    sb__anth_stream_http_error(dec, status, body, retry_after_ms);
}

static void codec_free(void *dec)
{
    sb__anth_stream_free(dec);
}

static const struct sb__cloud_codec anthropic_codec = {
    .provider = "anthropic",
    .create = codec_create,
    .feed = codec_feed,
    .eof = codec_eof,
    .http_error = codec_http_error,
    .error_header = NULL,
    .free = codec_free,
};

static void backend_destroy(struct anthropic_backend *b)
{
    if (!b)
        return;
    free(b->ca_file);
    free(b->name);
    free(b->url);
    free(b->model);
    sb__cloud_free_secret(b->api_key);
    free(b);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* base_url + "/v1/messages"; a base_url that already ends in /v1 gets only "/messages". */
static char *messages_url(const char *base_url)
{
    struct sb_buf u;
    sb_buf_init(&u, 4096);
    struct sb_str base = sb_str_c(base_url && *base_url ? base_url : ANTHROPIC_DEFAULT_BASE_URL);
    while (base.len > 0 && base.p[base.len - 1] == '/')
        base.len--;
    bool has_v1 = base.len >= 3 && memcmp(base.p + base.len - 3, "/v1", 3) == 0;
    int rc = sb_buf_append_str(&u, base);
    if (rc == SB_OK)
        rc = sb_buf_append_c(&u, has_v1 ? "/messages" : "/v1/messages");
    char *s = rc == SB_OK ? sb_buf_steal(&u) : NULL;
    sb_buf_free(&u);
    return s;
}

static int anthropic_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                            size_t err_size)
{
    struct anthropic_backend *b = NULL;
    int rc;

    *out = NULL;
    if (!cfg->api_key || !*cfg->api_key) {
        rc = sb__cloud_errf(err, err_size, SB_EINVAL,
                            "model '%s' (line %d): backend anthropic needs api_key, e.g. "
                            "api_key: ${ANTHROPIC_API_KEY}",
                            cfg->name ? cfg->name : "?", cfg->line);
        goto fail;
    }
    rc = sb__cloud_check_base_url(cfg, err, err_size);
    if (rc != SB_OK)
        goto fail;
    b = calloc(1, sizeof *b);
    if (!b) {
        rc = sb__cloud_errf(err, err_size, SB_ENOMEM, "out of memory");
        goto fail;
    }
    b->base.ops = &sb_anthropic_backend_ops;
    b->name = dup_or_null(cfg->name ? cfg->name : "anthropic");
    b->url = messages_url(cfg->base_url);
    b->model =
        dup_or_null(cfg->upstream_model && *cfg->upstream_model ? cfg->upstream_model : cfg->name);
    b->api_key = strdup(cfg->api_key);
    if (!b->name || !b->url || !b->model || !b->api_key) {
        rc = sb__cloud_errf(err, err_size, SB_ENOMEM, "out of memory");
        goto fail;
    }
    b->timeouts = sb__cloud_timeouts(cfg);
    b->n_ctx = cfg->n_ctx;
    if (cfg->ca_file != NULL && (b->ca_file = strdup(cfg->ca_file)) == NULL) {
        rc = sb__cloud_errf(err, err_size, SB_ENOMEM, "out of memory");
        goto fail;
    }
    b->created = sb_unix_time();
    *out = &b->base;
    return SB_OK;

fail:
    backend_destroy(b);
    return rc;
}

static int anthropic_start(struct sb_backend *base, struct sb_call *call)
{
    struct anthropic_backend *b = (struct anthropic_backend *)base;
    struct sb_buf body, key_header;
    char err[512];
    int rc;

    sb_buf_init(&body, SB__ANTHROPIC_BODY_MAX);
    sb_buf_init(&key_header, 4096);
    if (!call || !call->req) {
        rc = SB_EINVAL;
        goto fail;
    }
    if (call->req->kind == SB_REQ_EMBED) {
        rc = SB_EUNSUPPORTED; /* refused now, so that routing can look elsewhere */
        goto fail;
    }
    rc = sb__anthropic_render(call->req, sb_str_c(b->model), &body, err, sizeof err);
    if (rc == SB_EINVAL || rc == SB_EUNSUPPORTED) {
        /* The client's request cannot be said in Anthropic's terms: tell it why. */
        rc = sb__cloud_call_fail(call, b->name, rc, 400, err);
        goto fail;
    }
    if (rc != SB_OK)
        goto fail;
    rc = sb_buf_printf(&key_header, "x-api-key: %s", b->api_key);
    if (rc != SB_OK)
        goto fail;
    const char *headers[] = {
        "content-type: application/json",
        "accept: text/event-stream",
        "anthropic-version: " SB__ANTHROPIC_VERSION,
        key_header.p,
    };
    struct sb_upstream_request r = {
        .method = "POST",
        .url = b->url,
        .headers = headers,
        .n_headers = SB_ARRAY_LEN(headers),
        .body = sb_buf_view(&body),
        .timeouts = b->timeouts,
        .ca_file = b->ca_file,
    };
    rc = sb__cloud_call_start(call, b->name, b->model, &anthropic_codec, NULL, &r);

fail:
    if (key_header.p)
        OPENSSL_cleanse(key_header.p, key_header.len);
    sb_buf_free(&key_header);
    sb_buf_free(&body);
    return rc;
}

static void anthropic_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct anthropic_backend *b = (const struct anthropic_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "anthropic";
    out->n_ctx = b->n_ctx;
    out->ready = true;
    out->embeddings = false;
    out->created = b->created;
}

static void anthropic_free(struct sb_backend *base)
{
    backend_destroy((struct anthropic_backend *)base);
}

const struct sb_backend_ops sb_anthropic_backend_ops = {
    .kind = "anthropic",
    .create = anthropic_create,
    .start = anthropic_start,
    .cancel = sb__cloud_call_cancel,
    .info = anthropic_info,
    .count_tokens = sb__cloud_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = anthropic_free,
};
