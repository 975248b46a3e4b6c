/* The backend that openai and ollama share: a server that takes a JSON body over HTTP at one path
 * per request kind under base_url, with an optional "Authorization: Bearer" key, and answers as the
 * kind's decoder reads it. The kinds differ only in what struct sb__bearer_kind holds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/cloud.h"

#ifndef SB_VERSION
#define SB_VERSION "dev"
#endif

#define AUTH_PREFIX "Authorization: Bearer "

struct bearer_backend {
    struct sb_backend base;
    const struct sb__bearer_kind *kind;
    char *name;        /* the alias */
    char *model;       /* the provider's model id */
    char *urls[3];     /* by request kind: base_url + path */
    char *auth;        /* "Authorization: Bearer KEY", or NULL without a key */
    struct sb_str key; /* the key inside auth, to scrub from messages */
    struct sb_upstream_timeouts timeouts;
    char *ca_file; /* NULL = the system's CAs */
    bool embeddings;
    int64_t created;
};

static void backend_destroy(struct bearer_backend *b)
{
    free(b->ca_file);
    free(b->name);
    free(b->model);
    for (size_t i = 0; i < SB_ARRAY_LEN(b->urls); i++)
        free(b->urls[i]);
    sb__cloud_free_secret(b->auth); /* the key should not linger in freed memory */
    free(b);
}

int sb__bearer_create(const struct sb__bearer_kind *kind, const struct sb_model_config *cfg,
                      struct sb_backend **out, char *err, size_t err_size)
{
    struct sb_buf buf;
    sb_buf_init(&buf, 1 << 16);
    struct bearer_backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        goto fail;
    b->base.ops = kind->ops;
    b->kind = kind;
    b->created = sb_unix_time();
    b->embeddings = cfg->embeddings;
    b->timeouts = sb__cloud_timeouts(cfg);
    b->name = strdup(cfg->name);
    b->model = strdup(cfg->upstream_model != NULL ? cfg->upstream_model : cfg->name);
    b->ca_file = cfg->ca_file != NULL ? strdup(cfg->ca_file) : NULL;
    if (b->name == NULL || b->model == NULL || (cfg->ca_file != NULL && b->ca_file == NULL))
        goto fail;
    struct sb_str base = sb_str_c(cfg->base_url != NULL ? cfg->base_url : kind->default_base_url);
    while (base.len > 0 && base.p[base.len - 1] == '/')
        base.len--;
    for (size_t i = 0; i < SB_ARRAY_LEN(b->urls); i++) {
        sb_buf_reset(&buf);
        if (sb_buf_append_str(&buf, base) != 0 || sb_buf_append_c(&buf, kind->paths[i]) != 0)
            goto fail;
        b->urls[i] = sb_buf_steal(&buf);
        if (b->urls[i] == NULL)
            goto fail;
    }
    if (cfg->api_key != NULL && cfg->api_key[0] != '\0') {
        if (sb_buf_printf(&buf, AUTH_PREFIX "%s", cfg->api_key) != 0)
            goto fail;
        b->auth = sb_buf_steal(&buf);
        if (b->auth == NULL)
            goto fail;
        b->key = (struct sb_str){b->auth + strlen(AUTH_PREFIX), strlen(cfg->api_key)};
    }
    bool creds_in_url = memchr(base.p, '@', base.len) != NULL;
    sb_log(SB_LOG_INFO, NULL, "model %s: %s backend, upstream model %s at %.*s%s", b->name,
           kind->ops->kind, b->model, creds_in_url ? 0 : (int)base.len, base.p,
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

int sb__bearer_start(struct sb_backend *base, struct sb_call *call)
{
    struct bearer_backend *b = (struct bearer_backend *)base;
    const struct sb__bearer_kind *kind = b->kind;
    if (call == NULL || call->req == NULL || call->upstream == NULL)
        return SB_EINVAL;
    const struct sb_request *req = call->req;
    if (req->kind == SB_REQ_EMBED && !b->embeddings)
        return SB_EUNSUPPORTED;
    if (req->kind == SB_REQ_CHAT && req->n_messages == 0)
        return SB_EINVAL;

    struct sb_buf body;
    sb_buf_init(&body, kind->body_max);
    char err[512];
    int rc = kind->render(req, sb_str_c(b->model), &body, err, sizeof err);
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
    headers[n++] = req->kind == SB_REQ_EMBED ? "Accept: application/json" : kind->stream_accept;
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
        .ca_file = b->ca_file,
    };
    struct sb__bearer_codec_ctx ctx = {req->kind == SB_REQ_EMBED, b->key};
    rc = sb__cloud_call_start(call, b->name, b->model, kind->codec, &ctx, &r);
done:
    sb_buf_free(&body);
    return rc;
}

void sb__bearer_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct bearer_backend *b = (const struct bearer_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = b->kind->ops->kind;
    out->n_ctx = 0;
    out->ready = true;
    out->embeddings = b->embeddings;
    out->created = b->created;
}

void sb__bearer_free(struct sb_backend *base)
{
    backend_destroy((struct bearer_backend *)base);
}
