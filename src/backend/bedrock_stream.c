/* Bedrock's ConverseStream response decoded into canonical events: event-stream frames (CRCs
 * checked by eventstream.c), then one handler per :event-type (messageStart, contentBlockStart,
 * contentBlockDelta, contentBlockStop, messageStop, metadata), and exception frames and HTTP
 * errors mapped to canonical error events. */
#include "backend/bedrock.h"
#include "backend/cloud_stream.h"
#include "backend/eventstream.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BEDROCK_MAX_BLOCKS 1024 /* content blocks in one message */
#define BEDROCK_FRAME_MAX  (16u << 20)

struct sb__bedrock_stream {
    struct sb__emitter out;
    struct sb__es_decoder frames;
    struct sb__blocks blocks;
    struct sb_usage usage;
    enum sb_finish_reason reason;
    struct sb_buf stop_sequence;
    bool started;
    bool stopped;   /* messageStop came */
    bool have_meta; /* metadata came */
};

/* -----------------------------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------------------------------- */

/* AWS's error and exception types (lower camel case in stream frames, upper in the HTTP
 * x-amzn-ErrorType header: compared ignoring case), as a client of the gateway should see them. */
static const struct {
    const char *type;
    int http_status;
    bool retryable;
} exceptions[] = {
    {"throttlingException", 429, true},          {"serviceUnavailableException", 503, true},
    {"modelNotReadyException", 503, true},       {"internalServerException", 502, true},
    {"modelStreamErrorException", 502, true},    {"modelErrorException", 502, false},
    {"modelTimeoutException", 504, true},        {"validationException", 400, false},
    {"resourceNotFoundException", 404, false},   {"accessDeniedException", 403, false},
    {"unrecognizedClientException", 403, false}, /* an unknown access key id */
    {"invalidSignatureException", 403, false},   /* a wrong secret, or a signing bug */
    {"expiredTokenException", 403, false},       {"serviceQuotaExceededException", 429, false},
};

static int malformed(struct sb__bedrock_stream *s, const char *what)
{
    return sb__emitter_malformed(&s->out, what);
}

/* The type's entry, comparing only up to a ':' (the header appends a URL), or NULL. */
static int find_exception(struct sb_str type)
{
    const char *colon = type.len ? memchr(type.p, ':', type.len) : NULL;
    size_t len = colon ? (size_t)(colon - type.p) : type.len;
    for (size_t i = 0; i < SB_ARRAY_LEN(exceptions); i++) {
        if (strlen(exceptions[i].type) == len && strncasecmp(exceptions[i].type, type.p, len) == 0)
            return (int)i;
    }
    return -1;
}

/* AWS's message from an error payload: "message", or "Message" as some services spell it. */
static const char *aws_message(json_t *j)
{
    const char *m = json_string_value(json_object_get(j, "message"));
    return m ? m : json_string_value(json_object_get(j, "Message"));
}

static void emit_exception(struct sb__bedrock_stream *s, struct sb_str type, struct sb_str payload)
{
    json_t *j = payload.len ? json_loadb(payload.p, payload.len, 0, NULL) : NULL;
    const char *msg = aws_message(j);
    int i = find_exception(type);
    sb__emitter_fail(&s->out, SB_EUPSTREAM, i >= 0 ? exceptions[i].http_status : 502,
                     i >= 0 && exceptions[i].retryable, 0, "bedrock: %.*s: %s",
                     (int)SB_MIN(type.len, 128), type.p ? type.p : "", msg ? msg : "no message");
    json_decref(j);
}

void sb__bedrock_stream_http_error(struct sb__bedrock_stream *s, int status, struct sb_str body,
                                   struct sb_str error_type, uint32_t retry_after_ms)
{
    json_t *j = body.len ? json_loadb(body.p, body.len, 0, NULL) : NULL;
    const char *msg = aws_message(j);
    struct sb_str type = error_type;
    if (type.len == 0)
        type = sb_str_c(json_string_value(json_object_get(j, "__type")));
    const char *colon = type.len ? memchr(type.p, ':', type.len) : NULL;
    if (colon)
        type.len = (size_t)(colon - type.p);
    int mapped;
    bool retryable;
    sb__map_http_status(status, &mapped, &retryable);
    const char *what =
        status == 401 || status == 403 ? "bedrock refused the credentials" : "bedrock";
    sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                     "%s (HTTP %d%s%.*s): %s", what, status, type.len ? ", " : "",
                     (int)SB_MIN(type.len, 128), type.p ? type.p : "", msg ? msg : "no message");
    json_decref(j);
}

/* -----------------------------------------------------------------------------------------------
 * Event handlers
 * --------------------------------------------------------------------------------------------- */

static int on_message_start(struct sb__bedrock_stream *s, json_t *j)
{
    SB_UNUSED(j);
    if (s->started)
        return malformed(s, "a second messageStart");
    s->started = true;
    struct sb_event ev = {.type = SB_EV_START}; /* the model: the backend's id (cloud.c) */
    return sb__emitter_emit(&s->out, &ev);
}

static int on_block_start(struct sb__bedrock_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "contentBlockIndex");
    if (!b)
        return malformed(s, "contentBlockStart without a valid contentBlockIndex");
    if (b->kind != SB__BLOCK_NONE)
        return malformed(s, "a content block started twice");
    json_t *tool = json_object_get(json_object_get(j, "start"), "toolUse");
    if (!json_is_object(tool)) {
        b->kind = SB__BLOCK_OTHER;
        return 0;
    }
    struct sb_str id = sb__json_str(json_object_get(tool, "toolUseId"));
    struct sb_str name = sb__json_str(json_object_get(tool, "name"));
    if (id.len == 0 || name.len == 0)
        return malformed(s, "a toolUse start without a toolUseId or a name");
    return sb__blocks_open_tool(&s->blocks, b, &s->out, id, name);
}

static int on_block_delta(struct sb__bedrock_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "contentBlockIndex");
    json_t *d = json_object_get(j, "delta");
    if (!b || !json_is_object(d))
        return malformed(s, "contentBlockDelta without a valid contentBlockIndex or delta");
    json_t *text = json_object_get(d, "text");
    if (json_is_string(text)) {
        /* Text blocks have no start event: their first delta opens them. */
        if (b->kind == SB__BLOCK_NONE)
            b->kind = SB__BLOCK_TEXT;
        if (b->kind != SB__BLOCK_TEXT)
            return malformed(s, "a text delta for a block that is not text");
        return sb__emitter_text(&s->out, sb__json_str(text));
    }
    json_t *tool = json_object_get(d, "toolUse");
    if (json_is_object(tool)) {
        if (b->kind != SB__BLOCK_TOOL)
            return malformed(s, "a toolUse delta for a block that is not toolUse");
        return sb__block_args(b, &s->out, sb__json_str(json_object_get(tool, "input")));
    }
    if (b->kind == SB__BLOCK_NONE)
        b->kind = SB__BLOCK_OTHER; /* reasoningContent, citations: not for clients */
    return 0;
}

static int on_block_stop(struct sb__bedrock_stream *s, json_t *j)
{
    struct sb__block *b = sb__blocks_at(&s->blocks, j, "contentBlockIndex");
    if (!b)
        return malformed(s, "contentBlockStop without a valid contentBlockIndex");
    return sb__block_stop(b, &s->out);
}

static const struct {
    const char *name;
    enum sb_finish_reason reason;
} stop_reasons[] = {
    {"end_turn", SB_FINISH_STOP},
    {"stop_sequence", SB_FINISH_STOP},
    {"max_tokens", SB_FINISH_LENGTH},
    {"model_context_window_exceeded", SB_FINISH_LENGTH},
    {"tool_use", SB_FINISH_TOOL_CALLS},
    {"content_filtered", SB_FINISH_CONTENT_FILTER},
    {"guardrail_intervened", SB_FINISH_CONTENT_FILTER},
};

static int finish(struct sb__bedrock_stream *s)
{
    return sb__emitter_finish(&s->out, &s->usage, s->reason, sb_buf_view(&s->stop_sequence));
}

static int on_message_stop(struct sb__bedrock_stream *s, json_t *j)
{
    if (!s->started)
        return malformed(s, "messageStop before messageStart");
    s->stopped = true;
    const char *reason = json_string_value(json_object_get(j, "stopReason"));
    for (size_t i = 0; reason && i < SB_ARRAY_LEN(stop_reasons); i++) {
        if (strcmp(stop_reasons[i].name, reason) == 0)
            s->reason = stop_reasons[i].reason;
    }
    /* Anthropic models on Bedrock report the matched stop sequence here. */
    json_t *extra = json_object_get(j, "additionalModelResponseFields");
    struct sb_str seq = sb__json_str(json_object_get(extra, "stop_sequence"));
    if (seq.len > 0 && sb_buf_append_str(&s->stop_sequence, seq) != SB_OK)
        return malformed(s, "a stop sequence too long");
    return s->have_meta ? finish(s) : 0;
}

static int64_t count(json_t *u, const char *key)
{
    json_t *v = json_object_get(u, key);
    return json_is_integer(v) && json_integer_value(v) > 0 ? json_integer_value(v) : 0;
}

/* Bedrock's inputTokens leave out cache reads and writes, as Anthropic's do; the canonical
 * prompt_tokens counts every input token. */
static int on_metadata(struct sb__bedrock_stream *s, json_t *j)
{
    json_t *u = json_object_get(j, "usage");
    if (json_is_object(u)) {
        int64_t read = count(u, "cacheReadInputTokens");
        int64_t write = count(u, "cacheWriteInputTokens");
        s->usage.prompt_tokens = count(u, "inputTokens") + read + write;
        s->usage.cached_prompt_tokens = read;
        s->usage.cache_write_tokens = write;
        s->usage.completion_tokens = count(u, "outputTokens");
    }
    s->have_meta = true;
    return s->stopped ? finish(s) : 0;
}

/* The stream's :event-type values and their handlers; others are skipped. */
static const struct {
    const char *name;
    int (*fn)(struct sb__bedrock_stream *s, json_t *payload);
} handlers[] = {
    {"messageStart", on_message_start},    /* {"role":"assistant"} */
    {"contentBlockStart", on_block_start}, /* a toolUse block's id and name */
    {"contentBlockDelta", on_block_delta}, /* text / toolUse.input pieces */
    {"contentBlockStop", on_block_stop},   /* a block ends */
    {"messageStop", on_message_stop},      /* stopReason */
    {"metadata", on_metadata},             /* usage (and metrics) */
};

/* -----------------------------------------------------------------------------------------------
 * Frames
 * --------------------------------------------------------------------------------------------- */

static int on_frame(void *ud, const struct sb__es_message *m)
{
    struct sb__bedrock_stream *s = ud;
    struct sb_str mtype = sb__es_header_str(m, ":message-type");

    if (sb_str_eq_c(mtype, "exception")) {
        emit_exception(s, sb__es_header_str(m, ":exception-type"), m->payload);
        return 1;
    }
    if (sb_str_eq_c(mtype, "error")) {
        struct sb_str code = sb__es_header_str(m, ":error-code");
        struct sb_str msg = sb__es_header_str(m, ":error-message");
        return sb__emitter_fail(&s->out, SB_EUPSTREAM, 502, false, 0, "bedrock: %.*s: %.*s",
                                (int)SB_MIN(code.len, 128), code.p ? code.p : "",
                                (int)SB_MIN(msg.len, 512), msg.p ? msg.p : "");
    }
    if (!sb_str_eq_c(mtype, "event"))
        return malformed(s, "a frame that is neither an event nor an exception");
    struct sb_str etype = sb__es_header_str(m, ":event-type");
    for (size_t i = 0; i < SB_ARRAY_LEN(handlers); i++) {
        if (!sb_str_eq_c(etype, handlers[i].name))
            continue;
        json_t *j = m->payload.len ? json_loadb(m->payload.p, m->payload.len, 0, NULL) : NULL;
        int rc = json_is_object(j) ? handlers[i].fn(s, j)
                                   : malformed(s, "an event whose payload is not a JSON object");
        json_decref(j);
        return rc;
    }
    return 0;
}

int sb__bedrock_stream_feed(struct sb__bedrock_stream *s, const char *p, size_t len)
{
    const char *why = NULL;
    if (s->out.ended)
        return sb__emitter_feed_result(&s->out);
    int rc = sb__es_decoder_feed(&s->frames, p, len, on_frame, s, &why);
    if (rc == SB_EUPSTREAM)
        malformed(s, why ? why : "a bad frame");
    if (rc == SB_ENOMEM)
        malformed(s, "out of memory");
    return sb__emitter_feed_result(&s->out);
}

void sb__bedrock_stream_eof(struct sb__bedrock_stream *s)
{
    if (s->out.ended)
        return;
    if (sb__es_decoder_pending(&s->frames)) {
        malformed(s, "the stream ended inside a frame");
    } else if (s->stopped) {
        finish(s); /* no metadata: the usage is what we know, zeros */
    } else {
        sb__emitter_fail(&s->out, SB_EUPSTREAM, 502, false, 0,
                         "bedrock: the stream ended before messageStop");
    }
}

struct sb__bedrock_stream *sb__bedrock_stream_new(sb__sink_fn sink, void *ud)
{
    struct sb__bedrock_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    sb__emitter_init(&s->out, sink, ud, "bedrock");
    s->blocks.max = BEDROCK_MAX_BLOCKS;
    sb__es_decoder_init(&s->frames, BEDROCK_FRAME_MAX);
    sb_buf_init(&s->stop_sequence, 4096);
    s->reason = SB_FINISH_STOP;
    return s;
}

void sb__bedrock_stream_free(struct sb__bedrock_stream *s)
{
    if (!s)
        return;
    sb__es_decoder_free(&s->frames);
    sb_buf_free(&s->stop_sequence);
    sb__blocks_free(&s->blocks);
    free(s);
}
