/* The openai backend's wire codec, internal to backend/: the canonical request rendered as an
 * OpenAI Chat Completions, Completions or Embeddings body, and OpenAI's streamed (SSE) and plain
 * JSON responses decoded into canonical events. Split from the backend so that both are
 * unit-tested without a network. */
#ifndef SB_BACKEND_OPENAI_H
#define SB_BACKEND_OPENAI_H

#include "backend/cloud.h"

/* Request bodies larger than this are refused (SB_ETOOBIG). */
#define SB__OPENAI_BODY_MAX (64u << 20)

/* The backend kind "openai" (backend/openai.c), listed in backend/registry.c. */
extern const struct sb_backend_ops sb_openai_backend_ops;

/* Appends to out the JSON body that asks model for req: /chat/completions for SB_REQ_CHAT,
 * /completions for SB_REQ_COMPLETION (both with "stream": true and stream_options.include_usage,
 * whatever the client asked, so usage is exact and the first token is timed), /embeddings for
 * SB_REQ_EMBED (not streamed). Sampling fields the client left unset are left out, and so are
 * those OpenAI does not define (top_k, min_p, repeat_penalty). Returns 0; SB_EINVAL with a
 * message for the client in err (NUL-terminated, at most err_size bytes) for what cannot be
 * expressed; SB_ENOMEM or SB_ETOOBIG. */
int sb__openai_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
                      char *err, size_t err_size);

/* The path under base_url for a request kind ("/chat/completions", ...). Static. */
const char *sb__openai_path(enum sb_request_kind kind);

/* ---------------------------------------------------------------------------------------------
 * A decoder of one response: SSE chunks of chat or text completions, or one embeddings object.
 * ------------------------------------------------------------------------------------------- */
struct sb__oai_stream;

/* Returns a decoder that delivers canonical events to sink(ud, ...), or NULL when out of memory.
 * embeddings: the response is one JSON embeddings object rather than a stream. provider names
 * the upstream in messages ("openai"); borrowed for the decoder's life. The caller frees it with
 * sb__oai_stream_free. */
struct sb__oai_stream *sb__oai_stream_new(sb__sink_fn sink, void *ud, bool embeddings,
                                          const char *provider);
void sb__oai_stream_free(struct sb__oai_stream *s);
/* Sets text that error messages must never contain (the API key), borrowed for the decoder's
 * life: a provider that quotes it back has it masked with '*'. */
void sb__oai_stream_set_secret(struct sb__oai_stream *s, struct sb_str secret);
/* Feeds a piece of a 2xx response body (split anywhere). Emits START (model = the chunk's model)
 * with the first chunk, TEXT and TOOL_CALL deltas (a call's first delta carries its id and name;
 * calls are numbered 0, 1, ... in the order they start), and at "data: [DONE]" USAGE (cached
 * tokens from prompt_tokens_details) then FINISH. An error object in the stream, a malformed
 * chunk or an oversized line emits one ERROR. Returns non-zero once the stream failed or the sink
 * said stop: feed nothing more. After a FINISH it returns 0 and ignores the rest, so the transfer
 * ends on its own and its connection stays reusable. */
int sb__oai_stream_feed(struct sb__oai_stream *s, const char *p, size_t len);
/* The body ended. A stream that saw its finish_reason but no [DONE] ends normally (some
 * compatible servers omit it); otherwise emits an ERROR. An embeddings body is decoded here. */
void sb__oai_stream_eof(struct sb__oai_stream *s);
/* Emits the ERROR for a non-2xx response: the provider's error.message (or the body's start),
 * the status mapped by sb__map_http_status, and Retry-After. */
void sb__oai_stream_http_error(struct sb__oai_stream *s, int status, struct sb_str body,
                               uint32_t retry_after_ms);

#endif
