/* The anthropic backend's wire codec, internal to backend/: the canonical request rendered as an
 * Anthropic Messages API body, and the Messages API's server-sent event stream decoded into
 * canonical events. Split from the backend so that both are unit-tested without a network. */
#ifndef SB_BACKEND_ANTHROPIC_H
#define SB_BACKEND_ANTHROPIC_H

#include "backend/cloud.h"

/* Anthropic requires max_tokens; a request that sets none gets this many: enough for ordinary
 * answers, few enough to bound a runaway one. */
#define SB__ANTHROPIC_DEFAULT_MAX_TOKENS 4096
#define SB__ANTHROPIC_VERSION            "2023-06-01"
#define SB__ANTHROPIC_BODY_MAX           (64u << 20)

/* The backend kind "anthropic" (backend/anthropic.c), listed in backend/registry.c. */
extern const struct sb_backend_ops sb_anthropic_backend_ops;

/* Appends the JSON body of a streaming Messages API request for req, asking for model, to out.
 * System messages become the top-level "system"; tool results become user turns of tool_result
 * blocks; consecutive turns of one role are merged; max_tokens defaults as above; temperature is
 * clamped to Anthropic's [0, 1]. Returns 0; SB_EINVAL or SB_EUNSUPPORTED with a message for the
 * client in err (NUL-terminated, at most err_size bytes); SB_ENOMEM or SB_ETOOBIG. */
int sb__anthropic_render(const struct sb_request *req, struct sb_str model, struct sb_buf *out,
                         char *err, size_t err_size);

/* A Messages API event-stream decoder. */
struct sb__anth_stream;

/* Returns a decoder that delivers canonical events to sink(ud, ...), or NULL when out of memory.
 * The caller frees it with sb__anth_stream_free. */
struct sb__anth_stream *sb__anth_stream_new(sb__sink_fn sink, void *ud);
void sb__anth_stream_free(struct sb__anth_stream *s);
/* Feeds a piece of the response body (any split). Emits START at message_start, TEXT and
 * TOOL_CALL deltas, and USAGE then FINISH at message_stop; an SSE error event, malformed data or
 * an impossible sequence emits one ERROR. Returns non-zero once the stream failed or the sink said
 * stop: feed nothing more. After a FINISH it returns 0 and ignores the rest, so the transfer ends
 * on its own and its connection stays reusable. */
int sb__anth_stream_feed(struct sb__anth_stream *s, const char *p, size_t len);
/* The body ended: emits an ERROR unless the stream already ended. */
void sb__anth_stream_eof(struct sb__anth_stream *s);
/* Emits the ERROR for a non-2xx response whose body is Anthropic's {"type":"error","error":
 * {"type","message"}} (or anything else), with the status mapped by sb__map_http_status. */
void sb__anth_stream_http_error(struct sb__anth_stream *s, int status, struct sb_str body,
                                uint32_t retry_after_ms);

#endif
