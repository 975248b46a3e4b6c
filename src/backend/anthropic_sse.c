/* The Anthropic Messages API's streaming response decoded into canonical events: server-sent
 * event framing (split anywhere), then one handler per event name (message_start,
 * content_block_start/delta/stop, message_delta, message_stop, ping, error). */
#include "backend/anthropic.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define SSE_LINE_MAX    (8u << 20) /* one line: a data line holds a whole JSON event */
#define SSE_EVENT_MAX   (8u << 20) /* one event's data lines together */
#define ANTH_MAX_BLOCKS 1024       /* content blocks in one message */

/* -----------------------------------------------------------------------------------------------
 * Types
 * --------------------------------------------------------------------------------------------- */

enum block_kind { BLOCK_NONE, BLOCK_TEXT, BLOCK_TOOL, BLOCK_OTHER };

/* One content block of the message, by its index in the stream. */
struct block {
    enum block_kind kind;
    int32_t tool_index; /* BLOCK_TOOL: the canonical tool-call index */
    bool args_seen;     /* BLOCK_TOOL: a non-empty arguments piece was emitted */
};

struct sb__anth_stream {
    sb__sink_fn sink;
    void *ud;
    /* SSE framing */
    struct sb_buf line;  /* the line being read */
    struct sb_buf event; /* the current event's name */
    struct sb_buf data;  /* its data lines, joined with '\n' */
    bool has_data;
    bool after_cr; /* the last byte was '\r': a '\n' next belongs to the same line end */
    /* The message */
    struct block *blocks;
    size_t n_blocks;
    int32_t n_tools;
    struct sb_usage usage;
    enum sb_finish_reason reason;
    struct sb_buf stop_sequence;
    bool started;
    bool ended; /* an end was emitted, or the sink said stop */
};

/* -----------------------------------------------------------------------------------------------
 * Emitting
 * --------------------------------------------------------------------------------------------- */

static int emit(struct sb__anth_stream *s, const struct sb_event *ev)
{
    if (s->ended)
        return 1;
    if (s->sink(s->ud, ev) != 0 || ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR)
        s->ended = true;
    return s->ended;
}

static int malformed(struct sb__anth_stream *s, const char *what)
{
    sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, 502, false, 0, "anthropic: malformed stream: %s",
                   what);
    s->ended = true;
    return 1;
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
        sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, status, retryable, retry_after_ms,
                       "%s (HTTP %d%s%s): %s", who, status_hint, type ? ", " : "", type ? type : "",
                       msg ? msg : "no error message");
    } else {
        sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, status, retryable, retry_after_ms,
                       "anthropic: %s: %s", type ? type : "error", msg ? msg : "no error message");
    }
    s->ended = true;
}

/* -----------------------------------------------------------------------------------------------
 * Event handlers
 * --------------------------------------------------------------------------------------------- */

static struct sb_str jstr(json_t *j)
{
    if (!json_is_string(j))
        return SB_STR_NULL;
    return (struct sb_str){json_string_value(j), json_string_length(j)};
}

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
    ev.start.model = jstr(json_object_get(msg, "model"));
    return emit(s, &ev);
}

/* The block at index, growing the table; NULL for an impossible index. */
static struct block *block_at(struct sb__anth_stream *s, json_t *j)
{
    json_t *idx = json_object_get(j, "index");
    if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
        json_integer_value(idx) >= ANTH_MAX_BLOCKS)
        return NULL;
    size_t i = (size_t)json_integer_value(idx);
    if (i >= s->n_blocks) {
        struct block *nb = realloc(s->blocks, (i + 1) * sizeof *nb);
        if (!nb)
            return NULL;
        memset(nb + s->n_blocks, 0, (i + 1 - s->n_blocks) * sizeof *nb);
        s->blocks = nb;
        s->n_blocks = i + 1;
    }
    return &s->blocks[i];
}

static int emit_text(struct sb__anth_stream *s, struct sb_str text)
{
    if (text.len == 0)
        return 0;
    struct sb_event ev = {.type = SB_EV_TEXT};
    ev.text.text = text;
    return emit(s, &ev);
}

static int emit_args(struct sb__anth_stream *s, struct block *b, struct sb_str args)
{
    if (args.len == 0)
        return 0;
    b->args_seen = true;
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = b->tool_index;
    ev.tool_call.arguments = args;
    return emit(s, &ev);
}

static int on_block_start(struct sb__anth_stream *s, json_t *j)
{
    struct block *b = block_at(s, j);
    json_t *cb = json_object_get(j, "content_block");
    if (!b || !json_is_object(cb))
        return malformed(s, "content_block_start without an index or a block");
    if (b->kind != BLOCK_NONE)
        return malformed(s, "a content block started twice");
    const char *type = json_string_value(json_object_get(cb, "type"));
    if (type && strcmp(type, "text") == 0) {
        b->kind = BLOCK_TEXT;
        return emit_text(s, jstr(json_object_get(cb, "text")));
    }
    if (!type || strcmp(type, "tool_use") != 0) {
        b->kind = BLOCK_OTHER; /* thinking, redacted_thinking, server tools: not for clients */
        return 0;
    }
    struct sb_str id = jstr(json_object_get(cb, "id"));
    struct sb_str name = jstr(json_object_get(cb, "name"));
    if (id.len == 0 || name.len == 0)
        return malformed(s, "a tool_use block without an id or a name");
    b->kind = BLOCK_TOOL;
    b->tool_index = s->n_tools++;
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = b->tool_index;
    ev.tool_call.id = id;
    ev.tool_call.name = name;
    ev.tool_call.arguments = SB_STR_LIT("");
    int rc = emit(s, &ev);
    /* The stream sends input as {} here and the real input as deltas; a non-empty one is the
     * whole input already. */
    json_t *input = json_object_get(cb, "input");
    if (rc == 0 && json_is_object(input) && json_object_size(input) > 0) {
        char *text = json_dumps(input, JSON_COMPACT);
        if (!text)
            return malformed(s, "a tool_use input that cannot be written back");
        rc = emit_args(s, b, sb_str_c(text));
        free(text);
    }
    return rc;
}

static int on_block_delta(struct sb__anth_stream *s, json_t *j)
{
    struct block *b = block_at(s, j);
    json_t *d = json_object_get(j, "delta");
    if (!b || !json_is_object(d))
        return malformed(s, "content_block_delta without an index or a delta");
    if (b->kind == BLOCK_NONE)
        return malformed(s, "a delta for a content block that never started");
    const char *type = json_string_value(json_object_get(d, "type"));
    if (!type)
        return malformed(s, "a delta without a type");
    if (strcmp(type, "text_delta") == 0) {
        if (b->kind != BLOCK_TEXT)
            return malformed(s, "a text delta for a block that is not text");
        return emit_text(s, jstr(json_object_get(d, "text")));
    }
    if (strcmp(type, "input_json_delta") == 0) {
        if (b->kind != BLOCK_TOOL)
            return malformed(s, "an input_json_delta for a block that is not tool_use");
        return emit_args(s, b, jstr(json_object_get(d, "partial_json")));
    }
    return 0; /* thinking_delta, signature_delta, citations_delta: not for clients */
}

static int on_block_stop(struct sb__anth_stream *s, json_t *j)
{
    struct block *b = block_at(s, j);
    if (!b || b->kind == BLOCK_NONE)
        return malformed(s, "content_block_stop for a block that never started");
    /* A tool called without arguments streams none; clients expect an object. */
    if (b->kind == BLOCK_TOOL && !b->args_seen)
        return emit_args(s, b, SB_STR_LIT("{}"));
    return 0;
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
    struct sb_str seq = jstr(json_object_get(d, "stop_sequence"));
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
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage = s->usage;
    if (emit(s, &ev) != 0)
        return 1;
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = s->reason;
    ev.finish.stop_sequence = sb_buf_view(&s->stop_sequence);
    return emit(s, &ev);
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
 * Server-sent event framing
 * --------------------------------------------------------------------------------------------- */

static int dispatch(struct sb__anth_stream *s)
{
    json_t *j = NULL;
    int rc = 0;

    if (!s->has_data)
        goto done;
    j = json_loadb(s->data.p, s->data.len, 0, NULL);
    if (!json_is_object(j)) {
        rc = malformed(s, "an event whose data is not a JSON object");
        goto done;
    }
    /* The event: line names it; its data's "type" says the same, and stands in if it is absent. */
    const char *name = s->event.len ? s->event.p : json_string_value(json_object_get(j, "type"));
    for (size_t i = 0; name && i < SB_ARRAY_LEN(handlers); i++) {
        if (strcmp(handlers[i].name, name) == 0) {
            rc = handlers[i].fn(s, j);
            break;
        }
    }
done:
    json_decref(j);
    sb_buf_reset(&s->event);
    sb_buf_reset(&s->data);
    s->has_data = false;
    return rc;
}

/* One complete line (without its end). */
static int on_line(struct sb__anth_stream *s, struct sb_str line)
{
    if (line.len == 0)
        return dispatch(s);
    if (line.p[0] == ':')
        return 0; /* a comment */
    const char *colon = memchr(line.p, ':', line.len);
    struct sb_str field = {line.p, colon ? (size_t)(colon - line.p) : line.len};
    struct sb_str value = SB_STR_NULL;
    if (colon) {
        value = (struct sb_str){colon + 1, line.len - field.len - 1};
        if (value.len > 0 && value.p[0] == ' ') {
            value.p++;
            value.len--;
        }
    }
    int rc = SB_OK;
    if (sb_str_eq_c(field, "event")) {
        sb_buf_reset(&s->event);
        rc = sb_buf_append_str(&s->event, value);
    } else if (sb_str_eq_c(field, "data")) {
        if (s->has_data)
            rc = sb_buf_append_char(&s->data, '\n');
        if (rc == SB_OK)
            rc = sb_buf_append_str(&s->data, value);
        s->has_data = true;
    } /* id, retry and unknown fields: nothing to do */
    if (rc != SB_OK)
        return malformed(s, "an event too large");
    return 0;
}

int sb__anth_stream_feed(struct sb__anth_stream *s, const char *p, size_t len)
{
    size_t i = 0;

    while (!s->ended && i < len) {
        if (s->after_cr && p[i] == '\n') {
            i++;
            s->after_cr = false;
            continue;
        }
        s->after_cr = false;
        /* The next line end, '\r' or '\n'. */
        size_t j = i;
        while (j < len && p[j] != '\n' && p[j] != '\r')
            j++;
        struct sb_str line = {p + i, j - i};
        if (j == len) {
            if (sb_buf_append_str(&s->line, line) != SB_OK)
                return malformed(s, "a line too long");
            break;
        }
        s->after_cr = p[j] == '\r';
        int rc;
        if (s->line.len > 0) {
            rc = sb_buf_append_str(&s->line, line);
            if (rc != SB_OK)
                return malformed(s, "a line too long");
            rc = on_line(s, sb_buf_view(&s->line));
            sb_buf_reset(&s->line);
        } else {
            rc = on_line(s, line);
        }
        if (rc != 0)
            break;
        i = j + 1;
    }
    return s->ended;
}

void sb__anth_stream_eof(struct sb__anth_stream *s)
{
    /* An event not closed by its blank line is discarded, as SSE says: the stream was cut. */
    if (!s->ended) {
        sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, 502, false, 0,
                       "anthropic: the stream ended before message_stop");
        s->ended = true;
    }
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
        sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                       "anthropic answered HTTP %d without an error object", status);
        s->ended = true;
    }
    json_decref(j);
}

struct sb__anth_stream *sb__anth_stream_new(sb__sink_fn sink, void *ud)
{
    struct sb__anth_stream *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->sink = sink;
    s->ud = ud;
    sb_buf_init(&s->line, SSE_LINE_MAX);
    sb_buf_init(&s->event, 256);
    sb_buf_init(&s->data, SSE_EVENT_MAX);
    sb_buf_init(&s->stop_sequence, 4096);
    s->reason = SB_FINISH_STOP;
    return s;
}

void sb__anth_stream_free(struct sb__anth_stream *s)
{
    if (!s)
        return;
    sb_buf_free(&s->line);
    sb_buf_free(&s->event);
    sb_buf_free(&s->data);
    sb_buf_free(&s->stop_sequence);
    free(s->blocks);
    free(s);
}
