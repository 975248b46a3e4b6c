/* The bedrock backend: Amazon Bedrock's ConverseStream API (POST
 * {base_url}/model/{modelId}/converse-stream), the canonical request rendered as a Converse body,
 * signed with AWS Signature Version 4, its event stream decoded by bedrock_stream.c, sent through
 * the loop's upstream client. */
#include "backend/bedrock.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

/* -----------------------------------------------------------------------------------------------
 * Request rendering
 * --------------------------------------------------------------------------------------------- */

static int write_text(struct sb_buf *b, struct sb_str text)
{
    int rc = sb_buf_append_c(b, "{\"text\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, text);
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

/* Media types Converse takes, and its names for them. */
static const struct {
    const char *media_type;
    const char *format;
} image_formats[] = {
    {"image/png", "png"}, {"image/jpeg", "jpeg"}, {"image/jpg", "jpeg"},
    {"image/gif", "gif"}, {"image/webp", "webp"},
};

/* An image as {"image":{"format","source":{"bytes": base64}}}: from data or a base64 data: URL. */
static int write_image(struct sb_buf *b, const struct sb_part *part, char *err, size_t err_size)
{
    static const struct sb_str data_prefix = SB_STR_LIT("data:");
    static const struct sb_str b64_marker = SB_STR_LIT(";base64,");
    struct sb_str media = part->media_type, data = part->data;

    if (data.len == 0) {
        ptrdiff_t at = sb_str_find(part->url, b64_marker);
        if (!sb_str_starts_with(part->url, data_prefix) || at < 0)
            return sb__cloud_errf(err, err_size, SB_EUNSUPPORTED,
                                  "Bedrock takes images as base64 data, not as URLs");
        media = (struct sb_str){part->url.p + data_prefix.len, (size_t)at - data_prefix.len};
        data = (struct sb_str){part->url.p + at + b64_marker.len,
                               part->url.len - (size_t)at - b64_marker.len};
    }
    const char *format = NULL;
    for (size_t i = 0; i < SB_ARRAY_LEN(image_formats); i++) {
        if (sb_str_eq_c(media, image_formats[i].media_type))
            format = image_formats[i].format;
    }
    if (!format)
        return sb__cloud_errf(err, err_size, SB_EUNSUPPORTED,
                              "Bedrock takes PNG, JPEG, GIF or WebP images, not '%.*s'",
                              (int)SB_MIN(media.len, 64), media.p ? media.p : "");
    int rc = sb_buf_printf(b, "{\"image\":{\"format\":\"%s\",\"source\":{\"bytes\":", format);
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, data);
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, "}}}");
    return rc;
}

static int write_tool_use(struct sb_buf *b, const struct sb_tool_call *tc, struct sb_str args)
{
    int rc = sb_buf_append_c(b, "{\"toolUse\":{\"toolUseId\":");
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
        rc = sb_buf_append_c(b, "}}");
    return rc;
}

static int write_tool_result(struct sb_buf *b, const struct sb_message *m,
                             const struct sb__turn_blocks *blocks, char *err, size_t err_size)
{
    int rc = sb_buf_append_c(b, "{\"toolResult\":{\"toolUseId\":");
    if (rc == SB_OK)
        rc = sb__cloud_json_string(b, m->tool_call_id);
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, ",\"content\":[");
    size_t n = 0;
    if (rc == SB_OK)
        rc = sb__turns_parts(NULL, b, "user", m, blocks, &n, err, err_size);
    /* content is required and text may not be blank: an empty result is an empty JSON value. */
    if (rc == SB_OK && n == 0)
        rc = sb_buf_append_c(b, "{\"json\":{}}");
    if (rc == SB_OK)
        rc = sb_buf_append_c(b, "]}}");
    return rc;
}

static const struct sb__turn_blocks converse_blocks = {
    .text = write_text,
    .image = write_image,
    .tool_use = write_tool_use,
    .tool_result = write_tool_result,
};

static int write_messages(const struct sb_request *req, struct sb_buf *b, char *err,
                          size_t err_size)
{
    struct sb__turns t = {.b = b};
    int rc = sb_buf_append_c(b, "{\"messages\":[");

    if (req->kind == SB_REQ_COMPLETION) {
        /* Converse has no completion call: the prompt is the user's one message. */
        if (rc == SB_OK && req->prompt.len > 0)
            rc = sb__turns_block(&t, "user");
        if (rc == SB_OK && req->prompt.len > 0)
            rc = write_text(b, req->prompt);
    }
    if (rc == SB_OK && req->kind == SB_REQ_CHAT)
        rc = sb__turns_chat(&t, req, &converse_blocks, err, err_size);
    if (rc == SB_OK)
        rc = sb__turns_end(&t, err, err_size);
    return rc;
}

static int write_system(const struct sb_request *req, struct sb_buf *b)
{
    size_t n = 0;
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < req->n_messages; i++) {
        const struct sb_message *m = &req->messages[i];
        for (size_t k = 0; rc == SB_OK && m->role == SB_ROLE_SYSTEM && k < m->n_parts; k++) {
            if (m->parts[k].type != SB_PART_TEXT || m->parts[k].text.len == 0)
                continue;
            rc = sb_buf_append_c(b, n++ ? "," : ",\"system\":[");
            if (rc == SB_OK)
                rc = write_text(b, m->parts[k].text);
        }
    }
    if (rc == SB_OK && n > 0)
        rc = sb_buf_append_char(b, ']');
    return rc;
}

static int write_inference(const struct sb_request *req, struct sb_buf *b)
{
    const struct sb_sampling *s = &req->sampling;
    size_t n = 0;
    int rc = SB_OK;
    const size_t mark = b->len;

    rc = sb_buf_append_c(b, ",\"inferenceConfig\":{");
    if (rc == SB_OK && req->max_tokens > 0)
        rc = sb_buf_printf(b, "%s\"maxTokens\":%lld", n++ ? "," : "", (long long)req->max_tokens);
    if (rc == SB_OK && s->temperature != SB_UNSET_F) {
        /* OpenAI's range is [0, 2]; Bedrock's models take [0, 1]. */
        rc = sb_buf_append_c(b, n++ ? ",\"temperature\":" : "\"temperature\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_float(b, SB_MAX(0.0f, SB_MIN(s->temperature, 1.0f)));
    }
    if (rc == SB_OK && s->top_p != SB_UNSET_F) {
        rc = sb_buf_append_c(b, n++ ? ",\"topP\":" : "\"topP\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_float(b, s->top_p);
    }
    for (size_t i = 0; rc == SB_OK && i < req->n_stop; i++) {
        if (i == 0)
            rc = sb_buf_append_c(b, n++ ? ",\"stopSequences\":[" : "\"stopSequences\":[");
        else
            rc = sb_buf_append_char(b, ',');
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, req->stop[i]);
        if (rc == SB_OK && i + 1 == req->n_stop)
            rc = sb_buf_append_char(b, ']');
    }
    if (rc == SB_OK && n == 0) {
        b->len = mark; /* nothing set: leave the object out */
        b->p[mark] = '\0';
        return SB_OK;
    }
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

static bool has_tool_history(const struct sb_request *req)
{
    for (size_t i = 0; i < req->n_messages; i++) {
        if (req->messages[i].role == SB_ROLE_TOOL || req->messages[i].n_tool_calls > 0)
            return true;
    }
    return false;
}

/* toolConfig. Converse cannot forbid tools: tool_choice "none" leaves them out, unless the
 * conversation already holds tool blocks, which Converse accepts only with tools declared. */
static int write_tools(const struct sb_request *req, struct sb_buf *b, char *err, size_t err_size)
{
    if (req->n_tools == 0)
        return SB_OK;
    bool none = req->tool_choice == SB_TOOL_CHOICE_NONE;
    if (none && !has_tool_history(req))
        return SB_OK;
    int rc = sb_buf_append_c(b, ",\"toolConfig\":{\"tools\":[");
    for (size_t i = 0; rc == SB_OK && i < req->n_tools; i++) {
        const struct sb_tool *tool = &req->tools[i];
        struct sb_str schema = tool->parameters;
        if (schema.len == 0)
            schema = SB_STR_LIT("{\"type\":\"object\",\"properties\":{}}");
        else if (!sb__cloud_json_is_object(schema))
            return sb__cloud_errf(err, err_size, SB_EINVAL,
                                  "tools[%zu]: parameters must be a JSON Schema object", i);
        rc = sb_buf_append_c(b, i ? ",{\"toolSpec\":{\"name\":" : "{\"toolSpec\":{\"name\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, tool->name);
        if (rc == SB_OK && tool->description.len) {
            rc = sb_buf_append_c(b, ",\"description\":");
            if (rc == SB_OK)
                rc = sb__cloud_json_string(b, tool->description);
        }
        if (rc == SB_OK)
            rc = sb_buf_append_c(b, ",\"inputSchema\":{\"json\":");
        if (rc == SB_OK)
            rc = sb_buf_append_str(b, schema);
        if (rc == SB_OK)
            rc = sb_buf_append_c(b, "}}}");
    }
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, ']');
    /* auto is Converse's default, and some models reject an explicit toolChoice: say only more. */
    if (rc == SB_OK && req->tool_choice == SB_TOOL_CHOICE_REQUIRED)
        rc = sb_buf_append_c(b, ",\"toolChoice\":{\"any\":{}}");
    if (rc == SB_OK && req->tool_choice == SB_TOOL_CHOICE_NAMED) {
        rc = sb_buf_append_c(b, ",\"toolChoice\":{\"tool\":{\"name\":");
        if (rc == SB_OK)
            rc = sb__cloud_json_string(b, req->tool_choice_name);
        if (rc == SB_OK)
            rc = sb_buf_append_c(b, "}}");
    }
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '}');
    return rc;
}

int sb__bedrock_render(const struct sb_request *req, struct sb_buf *out, char *err, size_t err_size)
{
    if (err_size > 0)
        err[0] = '\0';
    if (req->kind != SB_REQ_CHAT && req->kind != SB_REQ_COMPLETION)
        return sb__cloud_errf(err, err_size, SB_EUNSUPPORTED,
                              "the bedrock backend serves chat, not embeddings");
    int rc = write_messages(req, out, err, err_size);
    if (rc == SB_OK)
        rc = write_system(req, out);
    if (rc == SB_OK)
        rc = write_inference(req, out);
    if (rc == SB_OK)
        rc = write_tools(req, out, err, err_size);
    if (rc == SB_OK)
        rc = sb_buf_append_char(out, '}');
    if (rc == SB_EINVAL && err_size > 0 && err[0] == '\0')
        sb__cloud_errf(err, err_size, rc, "a sampling value is not a finite number");
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * Path and signature
 * --------------------------------------------------------------------------------------------- */

int sb__bedrock_path(struct sb_str model, struct sb_buf *out)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = sb_buf_append_c(out, "/model/");
    for (size_t i = 0; rc == SB_OK && i < model.len; i++) {
        unsigned char c = (unsigned char)model.p[i];
        bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '_' || c == '.' || c == '~';
        if (plain) {
            rc = sb_buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', hex[c >> 4], hex[c & 15]};
            rc = sb_buf_append(out, esc, 3);
        }
    }
    if (rc == SB_OK)
        rc = sb_buf_append_c(out, "/converse-stream");
    return rc;
}

int sb__bedrock_sign(const char *host, const char *path, const char *region, struct sb_str body,
                     const struct sb__sigv4_creds *creds, int64_t now,
                     struct sb__bedrock_signed *out)
{
    char date[SB__SIGV4_AMZ_DATE_SIZE], hash[65];
    struct sb_buf auth;
    size_t offs[SB_ARRAY_LEN(out->headers)];
    size_t n = 0;
    int rc;

    sb_buf_init(&out->lines, 64u << 10);
    out->n_headers = 0;
    sb_buf_init(&auth, 4096);
    sb__sigv4_amz_date(now, date);
    sb__sigv4_sha256_hex(body, hash);
    bool token = creds->session_token && *creds->session_token;

    struct sb__sigv4_header signed_headers[] = {
        {"host", host},
        {"x-amz-date", date},
        {"x-amz-content-sha256", hash},
        {"x-amz-security-token", token ? creds->session_token : ""},
    };
    struct sb__sigv4_request r = {
        .method = "POST",
        .path = path,
        .query = "",
        .headers = signed_headers,
        .n_headers = token ? 4 : 3,
        .payload_hash = hash,
        .amz_date = date,
        .region = region,
        .service = SB__BEDROCK_SERVICE,
    };
    rc = sb__sigv4_sign(&r, creds, &auth, NULL);
    if (rc != SB_OK)
        goto fail;
    for (size_t i = 0; rc == SB_OK && i < r.n_headers; i++) {
        offs[n++] = out->lines.len;
        rc = sb_buf_printf(&out->lines, "%s: %s", signed_headers[i].name, signed_headers[i].value);
        if (rc == SB_OK)
            rc = sb_buf_append_char(&out->lines, '\0');
    }
    const char *unsigned_lines[] = {
        "content-type: application/json",
        "accept: application/vnd.amazon.eventstream",
    };
    for (size_t i = 0; rc == SB_OK && i < SB_ARRAY_LEN(unsigned_lines); i++) {
        offs[n++] = out->lines.len;
        rc = sb_buf_append_c(&out->lines, unsigned_lines[i]);
        if (rc == SB_OK)
            rc = sb_buf_append_char(&out->lines, '\0');
    }
    if (rc == SB_OK) {
        offs[n++] = out->lines.len;
        rc = sb_buf_printf(&out->lines, "authorization: %s", auth.p);
    }
    if (rc != SB_OK)
        goto fail;
    /* The buffer has stopped moving: point into it now. */
    for (size_t i = 0; i < n; i++)
        out->headers[i] = out->lines.p + offs[i];
    out->n_headers = n;

fail:
    if (auth.p)
        OPENSSL_cleanse(auth.p, auth.len);
    sb_buf_free(&auth);
    return rc;
}

void sb__bedrock_signed_free(struct sb__bedrock_signed *s)
{
    /* The session token is a credential. */
    if (s->lines.p)
        OPENSSL_cleanse(s->lines.p, s->lines.len);
    sb_buf_free(&s->lines);
    s->n_headers = 0;
}

/* -----------------------------------------------------------------------------------------------
 * The backend
 * --------------------------------------------------------------------------------------------- */

struct bedrock_backend {
    struct sb_backend base;
    char *name;   /* the alias */
    char *model;  /* the Bedrock model id or inference profile */
    char *region; /* the SigV4 credential scope's */
    char *url;    /* base_url + the path */
    char *host;   /* host[:port] of base_url, as the Host header says it */
    char *path;   /* the wire path, model id percent-encoded */
    char *key_id; /* secret */
    char *secret; /* secret */
    char *token;  /* secret; NULL without one */
    struct sb_upstream_timeouts timeouts;
    char *ca_file; /* NULL = the system's CAs */
    int64_t n_ctx;
    int64_t created;
};

static void *codec_create(sb__sink_fn sink, void *ud, const void *ctx)
{
    SB_UNUSED(ctx);
    return sb__bedrock_stream_new(sink, ud);
}

static int codec_feed(void *dec, const char *p, size_t len)
{
    return sb__bedrock_stream_feed(dec, p, len);
}

static void codec_eof(void *dec)
{
    sb__bedrock_stream_eof(dec);
}

static void codec_http_error(void *dec, int status, struct sb_str body, struct sb_str hdr,
                             uint32_t retry_after_ms)
{
    sb__bedrock_stream_http_error(dec, status, body, hdr, retry_after_ms);
}

static void codec_free(void *dec)
{
    sb__bedrock_stream_free(dec);
}

static const struct sb__cloud_codec bedrock_codec = {
    .provider = "bedrock",
    .create = codec_create,
    .feed = codec_feed,
    .eof = codec_eof,
    .http_error = codec_http_error,
    .error_header = "x-amzn-errortype",
    .free = codec_free,
};

static void backend_destroy(struct bedrock_backend *b)
{
    if (!b)
        return;
    free(b->ca_file);
    free(b->name);
    free(b->model);
    free(b->region);
    free(b->url);
    free(b->host);
    free(b->path);
    sb__cloud_free_secret(b->key_id);
    sb__cloud_free_secret(b->secret);
    sb__cloud_free_secret(b->token);
    free(b);
}

/* Fills the URL, host and path from base_url (or the region's endpoint). */
static int make_endpoint(struct bedrock_backend *b, const char *base_url)
{
    struct sb_buf base, u, p;
    int rc;

    sb_buf_init(&base, 4096);
    sb_buf_init(&u, 8192);
    sb_buf_init(&p, 4096);
    if (base_url && *base_url)
        rc = sb_buf_append_c(&base, base_url);
    else
        rc = sb_buf_printf(&base, "https://bedrock-runtime.%s.amazonaws.com", b->region);
    while (rc == SB_OK && base.len > 0 && base.p[base.len - 1] == '/')
        base.p[--base.len] = '\0';
    if (rc == SB_OK)
        rc = sb__bedrock_path(sb_str_c(b->model), &p);
    if (rc == SB_OK)
        rc = sb_buf_printf(&u, "%s%s", base.p, p.p);
    if (rc != SB_OK)
        goto fail;
    /* host[:port]: after "://", up to the first '/'. */
    const char *h = strstr(base.p, "://");
    h = h ? h + 3 : base.p;
    size_t hlen = strcspn(h, "/");
    if (hlen == 0) {
        rc = SB_EINVAL;
        goto fail;
    }
    b->host = strndup(h, hlen);
    b->path = sb_buf_steal(&p);
    b->url = sb_buf_steal(&u);
    rc = b->host && b->path && b->url ? SB_OK : SB_ENOMEM;
fail:
    sb_buf_free(&base);
    sb_buf_free(&u);
    sb_buf_free(&p);
    return rc;
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

static int bedrock_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                          size_t err_size)
{
    struct bedrock_backend *b = NULL;
    const char *name = cfg->name ? cfg->name : "?";
    int rc;

    *out = NULL;
    if (!cfg->region || !*cfg->region) {
        rc = sb__cloud_errf(
            err, err_size, SB_EINVAL,
            "model '%s' (line %d): backend bedrock needs region, e.g. region: us-east-1", name,
            cfg->line);
        goto fail;
    }
    if (!cfg->aws_access_key_id || !*cfg->aws_access_key_id || !cfg->aws_secret_access_key ||
        !*cfg->aws_secret_access_key) {
        rc = sb__cloud_errf(err, err_size, SB_EINVAL,
                            "model '%s' (line %d): backend bedrock needs aws_access_key_id and "
                            "aws_secret_access_key, e.g. ${AWS_ACCESS_KEY_ID} and "
                            "${AWS_SECRET_ACCESS_KEY}",
                            name, cfg->line);
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
    b->base.ops = &sb_bedrock_backend_ops;
    b->name = dup_or_null(cfg->name ? cfg->name : "bedrock");
    b->model =
        dup_or_null(cfg->upstream_model && *cfg->upstream_model ? cfg->upstream_model : cfg->name);
    b->region = dup_or_null(cfg->region);
    b->key_id = dup_or_null(cfg->aws_access_key_id);
    b->secret = dup_or_null(cfg->aws_secret_access_key);
    b->token = dup_or_null(cfg->aws_session_token);
    bool token_lost = cfg->aws_session_token && *cfg->aws_session_token && !b->token;
    if (!b->name || !b->model || !b->region || !b->key_id || !b->secret || token_lost) {
        rc = sb__cloud_errf(err, err_size, SB_ENOMEM, "out of memory");
        goto fail;
    }
    rc = make_endpoint(b, cfg->base_url);
    if (rc != SB_OK) {
        rc = sb__cloud_errf(err, err_size, rc, "model '%s' (line %d): base_url has no host", name,
                            cfg->line);
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

static int bedrock_start(struct sb_backend *base, struct sb_call *call)
{
    struct bedrock_backend *b = (struct bedrock_backend *)base;
    struct sb__bedrock_signed sig = {0};
    struct sb_buf body;
    char err[512];
    int rc;

    sb_buf_init(&body, SB__BEDROCK_BODY_MAX);
    if (!call || !call->req) {
        rc = SB_EINVAL;
        goto fail;
    }
    if (call->req->kind == SB_REQ_EMBED) {
        rc = SB_EUNSUPPORTED; /* refused now, so that routing can look elsewhere */
        goto fail;
    }
    rc = sb__bedrock_render(call->req, &body, err, sizeof err);
    if (rc == SB_EINVAL || rc == SB_EUNSUPPORTED) {
        rc = sb__cloud_call_fail(call, b->name, rc, 400, err);
        goto fail;
    }
    if (rc != SB_OK)
        goto fail;
    struct sb__sigv4_creds creds = {b->key_id, b->secret, b->token};
    rc = sb__bedrock_sign(b->host, b->path, b->region, sb_buf_view(&body), &creds, sb_unix_time(),
                          &sig);
    if (rc != SB_OK)
        goto fail;
    struct sb_upstream_request r = {
        .method = "POST",
        .url = b->url,
        .headers = sig.headers,
        .n_headers = sig.n_headers,
        .body = sb_buf_view(&body),
        .timeouts = b->timeouts,
        .ca_file = b->ca_file,
    };
    rc = sb__cloud_call_start(call, b->name, b->model, &bedrock_codec, NULL, &r);

fail:
    sb__bedrock_signed_free(&sig);
    sb_buf_free(&body);
    return rc;
}

static void bedrock_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct bedrock_backend *b = (const struct bedrock_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "bedrock";
    out->n_ctx = b->n_ctx;
    out->ready = true;
    out->embeddings = false;
    out->created = b->created;
}

static void bedrock_free(struct sb_backend *base)
{
    backend_destroy((struct bedrock_backend *)base);
}

const struct sb_backend_ops sb_bedrock_backend_ops = {
    .kind = "bedrock",
    .create = bedrock_create,
    .start = bedrock_start,
    .cancel = sb__cloud_call_cancel,
    .info = bedrock_info,
    .count_tokens = sb__cloud_count_tokens,
    .tokenize = NULL,
    .render_prompt = NULL,
    .free = bedrock_free,
};
