/* The bedrock backend's wire codec, internal to backend/: the canonical request rendered as an
 * Amazon Bedrock Converse API body, the request's SigV4-signed headers, and the ConverseStream
 * event stream (application/vnd.amazon.eventstream frames of JSON events) decoded into canonical
 * events. Split from the backend so that all of it is unit-tested without a network. */
#ifndef SB_BACKEND_BEDROCK_H
#define SB_BACKEND_BEDROCK_H

#include "backend/cloud.h"
#include "backend/sigv4.h"

#define SB__BEDROCK_BODY_MAX (64u << 20)
#define SB__BEDROCK_SERVICE  "bedrock" /* the SigV4 signing name of bedrock-runtime */

/* The backend kind "bedrock" (backend/bedrock.c), listed in backend/registry.c. */
extern const struct sb_backend_ops sb_bedrock_backend_ops;

/* Appends the JSON body of a Converse / ConverseStream request for req to out: messages with
 * text, image, toolUse and toolResult blocks (consecutive turns of one role merged; tool results
 * in user turns), system, inferenceConfig, toolConfig. Returns 0; SB_EINVAL or SB_EUNSUPPORTED
 * with a message for the client in err (NUL-terminated, at most err_size bytes); SB_ENOMEM or
 * SB_ETOOBIG. */
int sb__bedrock_render(const struct sb_request *req, struct sb_buf *out, char *err,
                       size_t err_size);

/* Appends the wire path of model's ConverseStream call, "/model/{id}/converse-stream", with the
 * id percent-encoded (a ':' in "...-v1:0" becomes %3A). */
int sb__bedrock_path(struct sb_str model, struct sb_buf *out);

/* The signed headers of one request. */
struct sb__bedrock_signed {
    struct sb_buf lines; /* "name: value" lines, NUL-separated (use the pointers below) */
    const char *headers[8];
    size_t n_headers;
};

/* Signs a POST of body to path on host (host[:port] as sent in the Host header) for region, at
 * unix time now, and fills out with the headers to send: host, x-amz-date, x-amz-content-sha256,
 * x-amz-security-token (when creds has one), authorization, content-type and accept. out is
 * initialized here; free it with sb__bedrock_signed_free (which wipes it) even on failure.
 * Returns 0, SB_EINVAL, SB_ENOMEM or SB_ETOOBIG. */
int sb__bedrock_sign(const char *host, const char *path, const char *region, struct sb_str body,
                     const struct sb__sigv4_creds *creds, int64_t now,
                     struct sb__bedrock_signed *out);
void sb__bedrock_signed_free(struct sb__bedrock_signed *s);

/* A ConverseStream response decoder. */
struct sb__bedrock_stream;

/* Returns a decoder that delivers canonical events to sink(ud, ...), or NULL when out of memory.
 * The caller frees it with sb__bedrock_stream_free. */
struct sb__bedrock_stream *sb__bedrock_stream_new(sb__sink_fn sink, void *ud);
void sb__bedrock_stream_free(struct sb__bedrock_stream *s);
/* Feeds a piece of the response body (frames split anywhere). Emits START at messageStart, TEXT
 * and TOOL_CALL deltas, and USAGE then FINISH once messageStop and metadata have both come; an
 * exception frame, a bad CRC or malformed JSON emits one ERROR. Returns non-zero once the stream
 * failed or the sink said stop; after a FINISH, 0 (the rest is ignored, so the transfer ends on
 * its own and its connection stays reusable). */
int sb__bedrock_stream_feed(struct sb__bedrock_stream *s, const char *p, size_t len);
/* The body ended: finishes a stream that stopped without metadata, or emits an ERROR for one cut
 * short. */
void sb__bedrock_stream_eof(struct sb__bedrock_stream *s);
/* Emits the ERROR for a non-2xx response: body is AWS's {"message": ...}, error_type the
 * x-amzn-ErrorType header ("ThrottlingException:http://..."), both possibly empty. */
void sb__bedrock_stream_http_error(struct sb__bedrock_stream *s, int status, struct sb_str body,
                                   struct sb_str error_type, uint32_t retry_after_ms);

#endif
