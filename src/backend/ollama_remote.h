/* The ollama backend's wire codec, internal to backend/: the canonical request rendered as a body
 * for Ollama's native API (/api/chat, /api/generate, /api/embed), and its NDJSON stream decoded
 * into canonical events. Split from the backend so both are unit-tested without a network. */
#ifndef SB_BACKEND_OLLAMA_REMOTE_H
#define SB_BACKEND_OLLAMA_REMOTE_H

#include "backend/cloud.h"

#define SB__OLLAMA_BODY_MAX (64u << 20)

/* The backend kind "ollama" (backend/ollama_remote.c), listed in backend/registry.c. */
extern const struct sb_backend_ops sb_ollama_backend_ops;

/* The path under base_url for a request kind ("/api/chat", "/api/generate", "/api/embed"). */
const char *sb__ollama_path(enum sb_request_kind kind);

/* Appends to out the JSON body that asks model for req: a streamed /api/chat for SB_REQ_CHAT, a
 * streamed raw /api/generate for SB_REQ_COMPLETION, /api/embed for SB_REQ_EMBED. Sampling goes
 * into "options" (max_tokens as num_predict), json_mode into "format": "json". Returns 0; SB_EINVAL
 * with a message for the client in err (at most err_size bytes, NUL-terminated) for what Ollama
 * cannot take (an image by URL, tool-call arguments that are not a JSON object); SB_ENOMEM or
 * SB_ETOOBIG. */
int sb__ollama_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
                      char *err, size_t err_size);

struct sb__ollama_stream;

/* Returns a decoder delivering to sink(ud, ...), or NULL when out of memory; embeddings: the
 * response is one /api/embed object. The caller frees it with sb__ollama_stream_free. */
struct sb__ollama_stream *sb__ollama_stream_new(sb__sink_fn sink, void *ud, bool embeddings);
void sb__ollama_stream_free(struct sb__ollama_stream *s);
/* Text that error messages must never contain (the API key, if any); borrowed. */
void sb__ollama_stream_set_secret(struct sb__ollama_stream *s, struct sb_str secret);
/* Feeds a piece of a 2xx body (split anywhere). Emits START (the line's model) with the first
 * line, TEXT for message.content (or response), one TOOL_CALL per call in message.tool_calls
 * (whole: id, name and arguments as JSON text), and at "done": true USAGE (prompt_eval_count,
 * eval_count) then FINISH (done_reason; tool_calls when the message called tools). A line
 * {"error": "..."} or a malformed line emits one ERROR. Returns non-zero once the stream failed or
 * the sink said stop; after a FINISH, 0 (the rest is ignored and the connection stays reusable). */
int sb__ollama_stream_feed(struct sb__ollama_stream *s, const char *p, size_t len);
/* The body ended: an ERROR unless "done" was seen; an embed body is decoded here. */
void sb__ollama_stream_eof(struct sb__ollama_stream *s);
/* The ERROR for a non-2xx response ({"error": "..."}), status mapped by sb__map_http_status. */
void sb__ollama_stream_http_error(struct sb__ollama_stream *s, int status, struct sb_str body,
                                  uint32_t retry_after_ms);

#endif
