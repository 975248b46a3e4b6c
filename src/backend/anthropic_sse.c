/* The Anthropic Messages API's streaming response decoded into canonical events: server-sent
 * event framing (split anywhere), then one handler per event name (message_start,
 * content_block_start/delta/stop, message_delta, message_stop, ping, error). */
#include "backend/anthropic.h"
#include "backend/cloud_stream.h"

#include <stdlib.h>
#include <string.h>

#define SSE_LINE_MAX    (8u << 20) /* one line: a data line holds a whole JSON event */
#define SSE_EVENT_MAX   (8u << 20) /* one event's data lines together */
#define ANTH_MAX_BLOCKS 1024       /* content blocks in one message */

struct sb__anth_stream {
    struct sb__emitter out;
    struct sb__sse sse;
    /* The message */
    struct sb__blocks blocks;
    struct sb_usage usage;
    enum sb_finish_reason reason;
    struct sb_buf stop_sequence;
    bool started;
};

/* -----------------------------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------------------------------- */

static int malformed(struct sb__anth_stream *s, const char *what)
{
    return sb__emitter_malformed(&s->out, what);
}

/* Anthropic's error types, as a client of the gateway should see them. */
static const struct {
    const char *type;
    int http_status;
    bool retryable;
} error_types[] = {
    {"invalid_request_error", 400, false},
    {"authentication_error", 401, false}, /* our key for Anthropic is wrong */
    {"billing_error", 402, false},
    {"permission_error", 403, false},
    {"not_found_error", 404, false},
    {"request_too_large", 413, false},
    {"rate_limit_error", 429, true},
    {"api_error", 502, true}, /* Anthropic's own 500 */
    {"timeout_error", 504, true},
    {"overloaded_error", 503, true}, /* HTTP 529 when it comes before the stream */
};

/* Emits an ERROR for an Anthropic error object {"type","message"} (or NULL). status_hint is the
 * HTTP status it came with (0 inside a stream). */
static void emit_api_error(struct sb__anth_stream *s, json_t *err, int status_hint,
                           uint32_t retry_after_ms)
{
    const char *type = json_string_value(json_object_get(err, "type"));
    const char *msg = json_string_value(json_object_get(err, "message"));
    int status = 502;
    bool retryable = false;

    if (status_hint) {
        sb__map_http_status(status_hint, &status, &retryable);
    } else {
        for (size_t i = 0; type && i < SB_ARRAY_LEN(error_types); i++) {
            if (strcmp(error_types[i].type, type) == 0) {
                status = error_types[i].http_status;
                retryable = error_types[i].retryable;
                break;
            }
        }
    }
    if (status_hint) {
        /* A refused key is the gateway's configuration, not the client's: say whose it is. */
        const char *who = status_hint == 401 || status_hint == 403
                              ? "anthropic refused the gateway's API key"
                              : "anthropic";
        sb__emitter_fail(&s->out, SB_EUPSTREAM, status, retryable, retry_after_ms,
                         "%s (HTTP %d%s%s): %s", who, status_hint, type ? ", " : "",
                         type ? type : "", msg ? msg : "no error message");
    } else {
        sb__emitter_fail(&s->out, SB_EUPSTREAM, status, retryable, retry_after_ms,
                         "anthropic: %s: %s", type ? type : "error",
                         msg ? msg : "no error message");
    }
}

/* -----------------------------------------------------------------------------------------------
 * Event handlers
 * --------------------------------------------------------------------------------------------- */

/* A usage object's counts; absent fields leave the totals as they are (message_delta repeats
 * only some of them). */
static void read_usage(struct sb__anth_stream *s, json_t *u, int64_t *input, int64_t *cache_read,
                       int64_t *cache_write)
{
    json_t *v;
    if ((v = json_object_get(u, "input_tokens")) && json_is_integer(v))
        *input = json_integer_value(v);
    if ((v = json_object_get(u, "cache_read_input_tokens")) && json_is_integer(v))
        *cache_read = json_integer_value(v);
    if ((v = json_object_get(u, "cache_creation_input_tokens")) && json_is_integer(v))
        *cache_write = json_integer_value(v);
    if ((v = json_object_get(u, "output_tokens")) && json_is_integer(v))
        s->usage.completion_tokens = json_integer_value(v);
}

/* Anthropic counts input_tokens without the cached ones; the canonical prompt_tokens is all. */
static void apply_usage(struct sb__anth_stream *s, json_t *u)
{
    int64_t input =
        s->usage.prompt_tokens - s->usage.cached_prompt_tokens - s->usage.cache_write_tokens;
    int64_t cache_read = s->usage.cached_prompt_tokens;
    int64_t cache_write = s->usage.cache_write_tokens;
    if (!json_is_object(u))
        return;
    read_usage(s, u, &input, &cache_read, &cache_write);
    s->usage.prompt_tokens = input + cache_read + cache_write;
    s->usage.cached_prompt_tokens = cache_read;
    s->usage.cache_write_tokens = cache_write;
}

static int on_message_start(struct sb__anth_stream *s, json_t *j)
{
    json_t *msg = json_object_get(j, "message");
    if (!json_is_object(msg))
        return malformed(s, "message_start without a message");
    if (s->started)
        return malformed(s, "a second message_start");
    s->started = true;
    apply_usage(s, json_object_get(msg, "usage"));
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb__json_str(json_object_get(msg, "model"));
    return sb__emitter_emit(&s->out, &ev);
}

static int on_block_start(struct sb__anth_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "index");
    json_t *cb = json_object_get(j, "content_block");
    if (!b || !json_is_object(cb))
        return malformed(s, "content_block_start without an index or a block");
    if (b->kind != SB__BLOCK_NONE)
        return malformed(s, "a content block started twice");
    const char *type = json_string_value(json_object_get(cb, "type"));
    if (type && strcmp(type, "text") == 0) {
        b->kind = SB__BLOCK_TEXT;
        return sb__emitter_text(&s->out, sb__json_str(json_object_get(cb, "text")));
    }
    if (!type || strcmp(type, "tool_use") != 0) {
        b->kind = SB__BLOCK_OTHER; /* thinking, redacted_thinking, server tools: not for clients */
        return 0;
    }
    struct sb_str id = sb__json_str(json_object_get(cb, "id"));
    struct sb_str name = sb__json_str(json_object_get(cb, "name"));
    if (id.len == 0 || name.len == 0)
        return malformed(s, "a tool_use block without an id or a name");
    int rc = sb__blocks_open_tool(&s->blocks, b, &s->out, id, name);
    /* The stream sends input as {} here and the real input as deltas; a non-empty one is the
     * whole input already. */
    json_t *input = json_object_get(cb, "input");
    if (rc == 0 && json_is_object(input) && json_object_size(input) > 0) {
        char *text = json_dumps(input, JSON_COMPACT);
        if (!text)
            return malformed(s, "a tool_use input that cannot be written back");
        rc = sb__block_args(b, &s->out, sb_str_c(text));
        free(text);
    }
    return rc;
}

static int on_block_delta(struct sb__anth_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "index");
    json_t *d = json_object_get(j, "delta");
    if (!b || !json_is_object(d))
        return malformed(s, "content_block_delta without an index or a delta");
    if (b->kind == SB__BLOCK_NONE)
        return malformed(s, "a delta for a content block that never started");
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type)
        return malformed(s, "a delta without a type");
    if (strcmp(type, "text_delta") == 0) {
        if (b->kind != SB__BLOCK_TEXT)
            return malformed(s, "a text delta for a block that is not text");
        return sb__emitter_text(&s->out, sb__json_str(json_object_get(d, "text")));
    }
    if (strcmp(type, "input_json_delta") == 0) {
        if (b->kind != SB__BLOCK_TOOL)
            return malformed(s, "an input_json_delta for a block that is not tool_use");
        return sb__block_args(b, &s->out, sb__json_str(json_object_get(d, "partial_json")));
    }
    return 0; /* thinking_delta, signature_delta, citations_delta: not for clients */
}

static int on_block_stop(struct sb__anth_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "index");
    if (!b || b->kind == SB__BLOCK_NONE)
        return malformed(s, "content_block_stop for a block that never started");
    /* A tool called without arguments streams none; clients expect an object. */
    return sb__block_stop(b, &s->out);
}

/* Anthropic's stop reasons. */
static const struct {
    const char *name;
    enum sb_finish_reason reason;
} stop_reasons[] = {
    {"end_turn", SB_FINISH_STOP},          {"stop_sequence", SB_FINISH_STOP},
    {"max_tokens", SB_FINISH_LENGTH},      {"model_context_window_exceeded", SB_FINISH_LENGTH},
    {"tool_use", SB_FINISH_TOOL_CALLS},    {"pause_turn", SB_FINISH_STOP},
    {"refusal", SB_FINISH_CONTENT_FILTER},
};

static int on_message_delta(struct sb__anth_stream *s, json_t *j)
{
    json_t *d = json_object_get(j, "delta");
    const char *reason = json_string_value(json_object_get(d, "stop_reason"));
    for (size_t i = 0; reason && i < SB_ARRAY_LEN(stop_reasons); i++) {
        if (strcmp(stop_reasons[i].name, reason) == 0)
            s->reason = stop_reasons[i].reason;
    }
    struct sb_str seq = sb__json_str(json_object_get(d, "stop_sequence"));
    if (seq.len > 0) {
        sb_buf_reset(&s->stop_sequence);
        if (sb_buf_append_str(&s->stop_sequence, seq) != SB_OK)
            return malformed(s, "a stop sequence too long");
    }
    apply_usage(s, json_object_get(j, "usage"));
    return 0;
}

static int on_message_stop(struct sb__anth_stream *s, json_t *j)
{
    SB_UNUSED(j);
    if (!s->started)
        return malformed(s, "message_stop before message_start");
    return sb__emitter_finish(&s->out, &s->usage, s->reason, sb_buf_view(&s->stop_sequence));
}

static int on_error(struct sb__anth_stream *s, json_t *j)
{
    emit_api_error(s, json_object_get(j, "error"), 0, 0);
    return 1;
}

static int on_ping(struct sb__anth_stream *s, json_t *j)
{
    SB_UNUSED(s);
    SB_UNUSED(j);
    return 0;
}

/* The stream's event names and their handlers. Names not listed are skipped: Anthropic says new
 * event types may appear. */
static const struct {
    const char *name;
    int (*fn)(struct sb__anth_stream *s, json_t *data);
} handlers[] = {
    {"message_start", on_message_start},     /* the message, its model and input usage */
    {"content_block_start", on_block_start}, /* a text or tool_use block begins */
    {"content_block_delta", on_block_delta}, /* text_delta / input_json_delta */
    {"content_block_stop", on_block_stop},   /* a block ends */
    {"message_delta", on_message_delta},     /* stop_reason, stop_sequence, output usage */
    {"message_stop", on_message_stop},       /* the end: USAGE, FINISH */
    {"ping", on_ping},                       /* keep-alive */
    {"error", on_error},                     /* e.g. overloaded_error mid-stream */
};

/* -----------------------------------------------------------------------------------------------
 * Server-sent events (framed by cloud_stream.c)
 * --------------------------------------------------------------------------------------------- */

static int on_event(void *ud, struct sb_str event, struct sb_str data)
{
    struct sb__anth_stream *s = ud;
    int rc = 0;

    json_t *j = json_loadb(data.p, data.len, 0, NULL);
    if (!json_is_object(j)) {
        rc = malformed(s, "an event whose data is not a JSON object");
        goto done;
    }
    /* The event: line names it; its data's "type" says the same, and stands in if it is absent. */
    const char *name = event.len ? event.p : json_string_value(json_object_get(j, "type"));
    for (size_t i = 0; name && i < SB_ARRAY_LEN(handlers); i++) {
        if (strcmp(handlers[i].name, name) == 0) {
            rc = handlers[i].fn(s, j);
            break;
        }
    }
done:
    json_decref(j);
    return rc != 0 || s->out.ended;
}

int sb__anth_stream_feed(struct sb__anth_stream *s, const char *p, size_t len)
{
    const char *why = NULL;
    if (!s->out.ended && sb__sse_feed(&s->sse, p, len, on_event, s, &why) == SB_EUPSTREAM)
        malformed(s, why);
    return sb__emitter_feed_result(&s->out);
}

void sb__anth_stream_eof(struct sb__anth_stream *s)
{
    /* An event not closed by its blank line is discarded, as SSE says: the stream was cut. */
    sb__emitter_fail(&s->out, SB_EUPSTREAM, 502, false, 0,
                     "anthropic: the stream ended before message_stop");
}

void sb__anth_stream_http_error(struct sb__anth_stream *s, int status, struct sb_str body,
                                uint32_t retry_after_ms)
{
    json_t *j = body.len ? json_loadb(body.p, body.len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    if (json_is_object(err)) {
        emit_api_error(s, err, status, retry_after_ms);
    } else {
        int mapped;
        bool retryable;
        sb__map_http_status(status, &mapped, &retryable);
        sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                         "anthropic answered HTTP %d without an error object", status);
    }
    json_decref(j);
}

struct sb__anth_stream *sb__anth_stream_new(sb__sink_fn sink, void *ud)
{
    struct sb__anth_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    sb__emitter_init(&s->out, sink, ud, "anthropic");
    sb__sse_init(&s->sse, SSE_LINE_MAX, SSE_EVENT_MAX);
    s->blocks.max = ANTH_MAX_BLOCKS;
    sb_buf_init(&s->stop_sequence, 4096);
    s->reason = SB_FINISH_STOP;
    return s;
}

void sb__anth_stream_free(struct sb__anth_stream *s)
{
    if (!s)
        return;
    sb__sse_free(&s->sse);
    sb_buf_free(&s->stop_sequence);
    sb__blocks_free(&s->blocks);
    free(s);
}
