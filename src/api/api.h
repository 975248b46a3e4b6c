/* Wire codecs: an inbound API's request bodies become canonical requests, and canonical events
 * become that API's response bytes (JSON, SSE, NDJSON). One table of operations per API. */
#ifndef SB_API_H
#define SB_API_H

#include "backend/backend.h"
#include "core/canon.h"

/* What a client is told when its request cannot be served. Rendered by the codec in its API's
 * error shape (OpenAI: {"error":{"message","type","param","code"}}). */
struct sb_api_error {
    int http_status;   /* 400, 401, 404, 405, 413, 429, 500, 502, 503, 504 */
    const char *type;  /* static: "invalid_request_error", "not_found_error", "server_error", ... */
    const char *code;  /* static or NULL: "model_not_found", "context_length_exceeded", ... */
    char param[64];    /* the offending field ("messages[2].content"), "" if none */
    char message[512]; /* what went wrong and what to do; never secrets or prompt text */
};

/* Fills err (message formatted from fmt). Returns SB_EINVAL, for `return sb_api_fail(...)`. */
int sb_api_fail(struct sb_api_error *err, int http_status, const char *type, const char *code,
                const char *param, const char *fmt, ...) SB_PRINTF(6, 7);
/* Turns a backend's SB_EV_ERROR into a client error (status, type and code chosen from the
 * event's code and http_status). */
void sb_api_error_from_event(const struct sb_event *ev, struct sb_api_error *err);

struct sb_codec {
    enum sb_api api;
    const char *name;                /* "openai" */
    const char *stream_content_type; /* "text/event-stream", "application/x-ndjson" */
    /* Parses a request body for an endpoint of the given kind into *req (allocated from a; views
     * may point into body, which the caller keeps alive as long as req). Returns 0, or
     * SB_EINVAL / SB_ENOMEM with err filled. */
    int (*parse)(enum sb_request_kind kind, struct sb_arena *a, struct sb_str body,
                 struct sb_request *req, struct sb_api_error *err);
    /* Appends the error body in this API's shape. Returns 0 or SB_ENOMEM / SB_ETOOBIG. */
    int (*write_error)(const struct sb_api_error *err, struct sb_buf *out);
    /* Bytes of per-response renderer state, allocated (zeroed) by the caller. */
    size_t render_size;
    /* Prepares a renderer for req's response; req must outlive the renderer. */
    int (*render_init)(void *state, const struct sb_request *req);
    /* Consumes one event. When req->stream: appends the bytes to send now (may be none) and, on
     * FINISH or ERROR, the stream's closing bytes. When not streaming: accumulates and, on FINISH,
     * appends the whole response body. Never called with ERROR for a non-streaming response, nor
     * before START has been rendered for a streaming one (the HTTP layer answers those with
     * write_error and the error's status). Returns 0 or a negative code. */
    int (*render_event)(void *state, const struct sb_event *ev, struct sb_buf *out);
    /* Frees what the renderer holds (output accumulated for a non-streamed response). Call once
     * when the response ends, however it ends (after FINISH or ERROR, or early when the client
     * went away); the state may be freed afterwards. Safe after a failed render_init. May be NULL
     * for a codec whose renderer holds nothing. */
    void (*render_deinit)(void *state);
    /* Appends the model list (GET /v1/models and the like). */
    int (*write_models)(const struct sb_backend_info *models, size_t n, struct sb_buf *out);
};

extern const struct sb_codec sb_openai_codec;
/* POST /v1/messages (SB_REQ_CHAT) and GET /v1/models in Anthropic's shapes (api/anthropic.c). */
extern const struct sb_codec sb_anthropic_codec;
/* POST /api/chat (SB_REQ_CHAT), /api/generate (SB_REQ_COMPLETION), /api/embed (SB_REQ_EMBED) and
 * GET /api/tags (write_models) in Ollama's shapes (api/ollama.c). */
extern const struct sb_codec sb_ollama_codec;

/* Ollama's endpoints that generate nothing. Each appends one JSON body to out and returns 0, or
 * SB_ENOMEM / SB_ETOOBIG with out unchanged. Errors for them are written with
 * sb_ollama_codec.write_error. */
/* GET /api/version: the Ollama API version these endpoints match (see ollama.c). */
int sb_ollama_write_version(struct sb_buf *out);
/* GET /api/ps: the local models that are loaded and the other models that are ready, with size,
 * VRAM and expiry (expires_at: when keep_alive unloads the model). */
int sb_ollama_write_ps(const struct sb_backend_info *models, size_t n, struct sb_buf *out);
/* POST /api/show, first half: reads the model name ("model", or the older "name") from body into
 * *model (copied into a, valid as long as it). Returns 0, or SB_EINVAL / SB_ENOMEM with err filled
 * (400 / 413). */
int sb_ollama_parse_show(struct sb_arena *a, struct sb_str body, struct sb_str *model,
                         struct sb_api_error *err);
/* POST /api/show, second half: what Switchboard knows of one model (details, model_info,
 * capabilities); the HTTP layer answers 404 itself when the name matches no model. */
int sb_ollama_write_show(const struct sb_backend_info *model, struct sb_buf *out);

#endif
