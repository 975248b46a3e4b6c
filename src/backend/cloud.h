/* Plumbing shared by the streaming cloud backends (anthropic, bedrock): one call's life over the
 * upstream HTTP client (start, stream decoding, HTTP errors, cancel, the single on_done), the
 * error events they emit, and small helpers for writing JSON request bodies. Internal to
 * backend/. */
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

/* -----------------------------------------------------------------------------------------------
 * JSON writing (request bodies are written straight into a bounded buffer)
 * --------------------------------------------------------------------------------------------- */

/* Appends s as a quoted, escaped JSON string. */
int sb__cloud_json_string(struct sb_buf *b, struct sb_str s);
/* Appends v (a sampling value, written with up to 6 significant digits). */
int sb__cloud_json_float(struct sb_buf *b, float v);
/* Whether s is exactly one JSON object (whitespace around it allowed). */
bool sb__cloud_json_is_object(struct sb_str s);

/* -----------------------------------------------------------------------------------------------
 * A call in flight
 * --------------------------------------------------------------------------------------------- */

struct sb__cloud_call;

/* What a backend kind plugs into a cloud call: its stream decoder. */
struct sb__cloud_codec {
    const char *provider; /* "anthropic", for messages and logs */
    /* Returns a new decoder that emits through sink(ud, ...), or NULL when out of memory. */
    void *(*create)(sb__sink_fn sink, void *ud);
    /* A piece of a 2xx response body. Returns 0, or non-zero to stop the transfer (after an end
     * or error event was emitted). */
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

/* Starts r (its callbacks and ud are filled in here) for call, decoded by codec. backend_name
 * (the alias) and model (the provider's model id, for a START whose decoder names none) and codec
 * are borrowed and must outlive the call. Returns 0: call->backend_data is then the
 * cloud call, and events and exactly one call->on_done follow on call->base, never from inside
 * this function. Or a negative code, and nothing will be called. */
int sb__cloud_call_start(struct sb_call *call, const char *backend_name, const char *model,
                         const struct sb__cloud_codec *codec, struct sb_upstream_request *r);

/* Accepts call only to fail it: one ERROR (code, http_status, message copied) and then on_done
 * follow on call->base. For requests that cannot be rendered for the provider, so that the
 * client learns why. Returns 0, or SB_ENOMEM and nothing will be called. */
int sb__cloud_call_fail(struct sb_call *call, const char *backend_name, int code, int http_status,
                        const char *message);

/* The backend's cancel(): no event follows; on_done does, from the loop, never from inside. */
void sb__cloud_call_cancel(struct sb_call *call);

#endif
