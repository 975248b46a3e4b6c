/* Plumbing shared by the cloud backends (openai, ollama, anthropic, bedrock): one call's life over
 * the upstream HTTP client (start, stream decoding, HTTP errors, cancel, the single on_done), the
 * error events they emit and the parts of a backend that do not depend on the provider (cloud.c);
 * writing JSON request bodies (cloud_json.c); and the backend that openai and ollama share, JSON
 * over HTTP with an optional bearer key (cloud_bearer.c). Response decoders share cloud_stream.h.
 * Internal to backend/. */
#ifndef SB_BACKEND_CLOUD_H
#define SB_BACKEND_CLOUD_H

#include "backend/backend.h"
#include "upstream/upstream.h"

/* Where a stream decoder delivers canonical events. Returns non-zero when no more events are
 * wanted (the stream has ended or the call was cancelled): the decoder then stops. */
typedef int (*sb__sink_fn)(void *ud, const struct sb_event *ev);

/* Emits an SB_EV_ERROR whose message is printf-formatted (truncated at 1 KiB). Returns what the
 * sink returned. Never put a secret or prompt text in the message. */
int sb__emit_error(sb__sink_fn sink, void *ud, int code, int http_status, bool retryable,
                   uint32_t retry_after_ms, const char *fmt, ...) SB_PRINTF(7, 8);

/* The canonical status and retryability of a provider's HTTP error status: 429 stays 429
 * (retryable); 529 (overloaded) and 503 become 503 (retryable); 408 and 504 become 504
 * (retryable); other 5xx become 502 (retryable); other 4xx stay as they are. */
void sb__map_http_status(int upstream_status, int *http_status, bool *retryable);

/* Retry-After as milliseconds: delta-seconds or an HTTP date (relative to now); 0 when absent
 * or unparseable. Capped at one hour. */
uint32_t sb__parse_retry_after(struct sb_str value);

/* Writes the printf-formatted message into err (NUL-terminated, at most err_size bytes; nothing
 * when err_size is 0) and returns code: `return sb__cloud_errf(err, n, SB_EINVAL, "...")`. */
int sb__cloud_errf(char *err, size_t err_size, int code, const char *fmt, ...) SB_PRINTF(4, 5);

/* -----------------------------------------------------------------------------------------------
 * What every cloud backend needs the same way (cloud.c)
 * --------------------------------------------------------------------------------------------- */

/* The config's timeouts as the upstream client takes them. */
struct sb_upstream_timeouts sb__cloud_timeouts(const struct sb_model_config *cfg);

/* SB_EINVAL with a message naming the model and its config line when cfg's base_url is set and
 * starts with neither http:// nor https://; else 0. */
int sb__cloud_check_base_url(const struct sb_model_config *cfg, char *err, size_t err_size);

/* Wipes a NUL-terminated secret (an API key, a header holding one) and frees it. NULL is
 * allowed. */
void sb__cloud_free_secret(char *s);

/* A backend's count_tokens for a provider whose tokenizer we do not have: SB_EUNSUPPORTED, and
 * *out = 0. */
int sb__cloud_count_tokens(struct sb_backend *b, struct sb_str text, int64_t *out);

/* -----------------------------------------------------------------------------------------------
 * JSON writing: request bodies are written straight into a bounded buffer (cloud_json.c)
 * --------------------------------------------------------------------------------------------- */

/* Appends s as a quoted, escaped JSON string. */
int sb__cloud_json_string(struct sb_buf *b, struct sb_str s);
/* Appends v (a sampling value, written with up to 6 significant digits); SB_EINVAL when it is
 * not finite. */
int sb__cloud_json_float(struct sb_buf *b, float v);
/* Whether s is exactly one JSON object (whitespace around it allowed). */
bool sb__cloud_json_is_object(struct sb_str s);

/* A writer that stops at its first failure and remembers it in rc: a body is written as a run of
 * calls, and rc checked once at the end. b is borrowed. */
struct sb__jw {
    struct sb_buf *b;
    int rc; /* 0, or the first failure (SB_ENOMEM, SB_ETOOBIG, SB_EINVAL for a float) */
};

void sb__jw_raw(struct sb__jw *w, const char *s);       /* s as it is */
void sb__jw_raw_str(struct sb__jw *w, struct sb_str s); /* s as it is */
void sb__jw_str(struct sb__jw *w, struct sb_str s);     /* s as a JSON string */
void sb__jw_key(struct sb__jw *w, const char *k);       /* ,"k": (a leading comma) */
void sb__jw_num(struct sb__jw *w, float v);             /* as sb__cloud_json_float */
void sb__jw_int(struct sb__jw *w, int64_t v);

/* The "messages" array of a body shaped like Anthropic's Messages API (Anthropic's, Bedrock's
 * Converse): content blocks in turns, where consecutive blocks of one role share a turn because
 * both APIs want user and assistant turns to alternate. Initialize as {.b = body}. */
struct sb__turns {
    struct sb_buf *b; /* borrowed */
    const char *role; /* the open turn's, or NULL */
    bool first_block; /* the open turn has no block yet */
    size_t n;         /* turns written */
};

/* How a provider writes each kind of content block; each appends one block to b and returns 0,
 * SB_ENOMEM or SB_ETOOBIG, or SB_EINVAL / SB_EUNSUPPORTED with a message for the client in err. */
struct sb__turn_blocks {
    int (*text)(struct sb_buf *b, struct sb_str text); /* text is not empty */
    /* Any part that is not text. */
    int (*image)(struct sb_buf *b, const struct sb_part *part, char *err, size_t err_size);
    /* A call whose id and name are set; args is a JSON object ("{}" when the call had none). */
    int (*tool_use)(struct sb_buf *b, const struct sb_tool_call *tc, struct sb_str args);
    /* A tool message, whose tool_call_id is set; its parts are written by sb__turns_parts with t
     * NULL and these blocks. */
    int (*tool_result)(struct sb_buf *b, const struct sb_message *m,
                       const struct sb__turn_blocks *blocks, char *err, size_t err_size);
};

/* Opens a turn for role (a static string) unless the open one is role's, and writes the comma
 * before the block that follows. Returns 0, SB_ENOMEM or SB_ETOOBIG. */
int sb__turns_block(struct sb__turns *t, const char *role);
/* m's content parts as blocks of role's turn, empty text left out (both APIs reject it). With t
 * NULL they go straight into b instead, comma-separated after the *n already there; *n counts
 * them. Returns as the block writers. */
int sb__turns_parts(struct sb__turns *t, struct sb_buf *b, const char *role,
                    const struct sb_message *m, const struct sb__turn_blocks *blocks, size_t *n,
                    char *err, size_t err_size);
/* Every message of a chat request: system messages skipped (they are the body's own field), user
 * parts, tool messages as tool results in user turns, assistant parts then tool calls. A tool call
 * without an id or a name, or with arguments that are not a JSON object, and a tool message
 * without tool_call_id are SB_EINVAL with a message naming the message. */
int sb__turns_chat(struct sb__turns *t, const struct sb_request *req,
                   const struct sb__turn_blocks *blocks, char *err, size_t err_size);
/* Closes the open turn and the array ("]}]"); SB_EINVAL with a message when no turn was
 * written. */
int sb__turns_end(struct sb__turns *t, char *err, size_t err_size);

/* -----------------------------------------------------------------------------------------------
 * A call in flight (cloud.c)
 * --------------------------------------------------------------------------------------------- */

struct sb__cloud_call;

/* What a backend kind plugs into a cloud call: its stream decoder. */
struct sb__cloud_codec {
    const char *provider; /* "anthropic", for messages and logs */
    /* Returns a new decoder that emits through sink(ud, ...), or NULL when out of memory. ctx is
     * the codec_ctx given to sb__cloud_call_start (what this call's decoder needs from its
     * backend), borrowed for this call only. */
    void *(*create)(sb__sink_fn sink, void *ud, const void *ctx);
    /* A piece of a 2xx response body. Returns non-zero once the stream failed or the sink said
     * stop, and 0 after a FINISH (the rest is ignored, so that the transfer ends on its own and
     * its connection stays reusable). The call goes by the events emitted: an ERROR stops the
     * transfer, after a FINISH the rest of the body is read and dropped. */
    int (*feed)(void *dec, const char *p, size_t len);
    /* The 2xx body ended cleanly. The decoder emits an ERROR if the stream was cut short. */
    void (*eof)(void *dec);
    /* A non-2xx response: status, its body (at most SB__CLOUD_ERROR_BODY_MAX bytes), the value
     * of the header named by error_header (or empty), and Retry-After in ms. Emits one ERROR. */
    void (*http_error)(void *dec, int status, struct sb_str body, struct sb_str error_header,
                       uint32_t retry_after_ms);
    const char *error_header; /* e.g. "x-amzn-errortype", or NULL */
    void (*free)(void *dec);
};

#define SB__CLOUD_ERROR_BODY_MAX (64u << 10)

/* Starts r (its callbacks and ud are filled in here) for call, decoded by codec, whose create is
 * handed codec_ctx (may be NULL; borrowed until this returns). backend_name (the alias) and model
 * (the provider's model id, for a START whose decoder names none) and codec are borrowed and must
 * outlive the call. Returns 0: call->backend_data is then the cloud call, and events and exactly
 * one call->on_done follow on call->base, never from inside this function. Or a negative code,
 * and nothing will be called. */
int sb__cloud_call_start(struct sb_call *call, const char *backend_name, const char *model,
                         const struct sb__cloud_codec *codec, const void *codec_ctx,
                         struct sb_upstream_request *r);

/* Accepts call only to fail it: one ERROR (code, http_status, message copied) and then on_done
 * follow on call->base. For requests that cannot be rendered for the provider, so that the
 * client learns why. Returns 0, or SB_ENOMEM and nothing will be called. */
int sb__cloud_call_fail(struct sb_call *call, const char *backend_name, int code, int http_status,
                        const char *message);

/* A cloud backend's cancel (b is not used): no event follows; on_done does, from the loop, never
 * from inside. */
void sb__cloud_call_cancel(struct sb_backend *b, struct sb_call *call);

/* -----------------------------------------------------------------------------------------------
 * A backend that speaks JSON over HTTP with an optional bearer key: openai and ollama, which
 * differ only in their bodies, paths and decoders (cloud_bearer.c)
 * --------------------------------------------------------------------------------------------- */

/* What a kind plugs in. Static. */
struct sb__bearer_kind {
    const struct sb_backend_ops *ops; /* the kind's table, whose create calls sb__bearer_create */
    const char *default_base_url;     /* without base_url in the config */
    const char *const *paths;         /* under base_url, by request kind (3 entries) */
    const char *stream_accept;        /* the Accept line of a streamed answer */
    size_t body_max;                  /* bodies larger are refused (SB_ETOOBIG) */
    /* Appends req's body asking for model to out; SB_EINVAL or SB_EUNSUPPORTED with a message
     * for the client in err (the call then fails with 400); SB_ENOMEM or SB_ETOOBIG. */
    int (*render)(const struct sb_request *req, struct sb_str model, struct sb_buf *out, char *err,
                  size_t err_size);
    /* Its create is handed a struct sb__bearer_codec_ctx. */
    const struct sb__cloud_codec *codec;
};

/* What the decoder of one call needs from its backend. */
struct sb__bearer_codec_ctx {
    bool embeddings;      /* the answer is one embeddings object, not a stream */
    struct sb_str secret; /* the API key (or empty), borrowed for the backend's life */
};

/* The kind's create: a backend for cfg, which keeps kind (static). Returns 0 and *out, or
 * SB_ENOMEM with a message in err. The backend is freed by sb__bearer_free. */
int sb__bearer_create(const struct sb__bearer_kind *kind, const struct sb_model_config *cfg,
                      struct sb_backend **out, char *err, size_t err_size);
/* The kind's start: SB_EINVAL without a request or an upstream client, or for a chat without
 * messages; SB_EUNSUPPORTED for embeddings from a model not configured for them; else as
 * sb__cloud_call_start (a request the kind cannot render is accepted to fail with 400). */
int sb__bearer_start(struct sb_backend *b, struct sb_call *call);
/* The kind's info (kind = ops->kind, no context size) and free. */
void sb__bearer_info(const struct sb_backend *b, struct sb_backend_info *out);
void sb__bearer_free(struct sb_backend *b);

#endif
