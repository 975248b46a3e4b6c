/* Decodes OpenAI's responses into canonical events: the SSE stream of chat and text completion
 * chunks (split anywhere across pieces), tool-call deltas reassembled in order, usage, finish
 * reasons, errors inside the stream and error bodies; and the one JSON object of /embeddings. */
#include <stdlib.h>

#include "backend/cloud_stream.h"
#include "backend/openai.h"

/* One SSE line, and one event's data, may be this large (a big tool-call argument chunk). */
#define SSE_LINE_MAX  (8u << 20)
#define SSE_EVENT_MAX (8u << 20)
/* An embeddings response is read whole. */
#define EMBED_BODY_MAX (64u << 20)
/* Tool calls in one response; more is taken as a malformed stream. */
#define MAX_TOOL_CALLS 128
/* Error messages longer than this are cut (provider messages can quote the whole request). */
#define MESSAGE_MAX 900

/* One tool call being assembled: OpenAI's index, and what must come before its first event. */
struct tool_acc {
    int64_t upstream_index;
    struct sb_buf id;      /* until announced */
    struct sb_buf name;    /* until announced */
    struct sb_buf pending; /* arguments that came before the name (some compatible servers) */
    bool announced;        /* its first TOOL_CALL (with id and name) went out */
};

struct sb__oai_stream {
    struct sb__emitter out; /* its secret: the API key */
    bool embeddings;
    struct sb__sse sse;
    struct sb_buf body; /* embeddings: the whole response */

    struct tool_acc calls[MAX_TOOL_CALLS];
    size_t n_calls;
    struct sb_usage usage;
    enum sb_finish_reason reason;
    bool has_finish;
    bool started;
};

/* Events and errors go out through s->out (cloud_stream.c). */
static int emit(struct sb__oai_stream *s, const struct sb_event *ev)
{
    return sb__emitter_emit(&s->out, ev);
}

static int malformed(struct sb__oai_stream *s, const char *what)
{
    return sb__emitter_malformed(&s->out, what);
}

/* ---------------------------------------------------------------------------------------------
 * Errors: {"error": {"message", "type", "code"}} (OpenAI, llama-server), {"error": "text"},
 * {"object": "error", "message", "type", "code"} (vLLM)
 * ------------------------------------------------------------------------------------------- */
struct api_error {
    struct sb_str message, type;
    int64_t code; /* a numeric code (some servers put the HTTP status there), else 0 */
};

static bool read_api_error(json_t *j, struct api_error *out)
{
    *out = (struct api_error){0};
    json_t *err = json_object_get(j, "error");
    if (json_is_string(err)) {
        out->message = sb__json_str(err);
        return true;
    }
    json_t *o = json_is_object(err) ? err : NULL;
    if (o == NULL && sb_str_eq_c(sb__json_str(json_object_get(j, "object")), "error"))
        o = j;
    if (o == NULL)
        return false;
    out->message = sb__json_str(json_object_get(o, "message"));
    out->type = sb__json_str(json_object_get(o, "type"));
    out->code = sb__json_int(json_object_get(o, "code"));
    return true;
}

static int stream_error(struct sb__oai_stream *s, json_t *j)
{
    struct api_error e;
    if (!read_api_error(j, &e))
        e.message = sb__json_str(json_object_get(j, "message"));
    int status = 502;
    bool retryable = false;
    if (e.code >= 400 && e.code <= 599)
        sb__map_http_status((int)e.code, &status, &retryable);
    /* Once output has begun, trying again would produce it twice. */
    retryable = retryable && !s->started;
    return sb__emitter_fail(&s->out, SB_EUPSTREAM, status, retryable, 0,
                            "%s: error in the stream: %.*s%s%.*s", s->out.provider, (int)e.type.len,
                            e.type.p ? e.type.p : "", e.type.len ? ": " : "",
                            (int)SB_MIN(e.message.len, (size_t)MESSAGE_MAX),
                            e.message.len ? e.message.p : "no message");
}

/* ---------------------------------------------------------------------------------------------
 * Chunks
 * ------------------------------------------------------------------------------------------- */
static const struct {
    const char *name;
    enum sb_finish_reason reason;
} finish_reasons[] = {
    {"stop", SB_FINISH_STOP},
    {"length", SB_FINISH_LENGTH},
    {"tool_calls", SB_FINISH_TOOL_CALLS},
    {"function_call", SB_FINISH_TOOL_CALLS}, /* the deprecated functions API */
    {"content_filter", SB_FINISH_CONTENT_FILTER},
    {"eos", SB_FINISH_STOP}, /* some compatible servers */
};

static int start_once(struct sb__oai_stream *s, json_t *j)
{
    if (s->started)
        return 0;
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb__json_str(json_object_get(j, "model"));
    ev.start.attempts = 1;
    s->started = true;
    return emit(s, &ev);
}

static struct tool_acc *tool_slot(struct sb__oai_stream *s, int64_t upstream_index, size_t *idx)
{
    for (size_t i = 0; i < s->n_calls; i++) {
        if (s->calls[i].upstream_index == upstream_index) {
            *idx = i;
            return &s->calls[i];
        }
    }
    if (s->n_calls == MAX_TOOL_CALLS)
        return NULL;
    struct tool_acc *t = &s->calls[s->n_calls];
    t->upstream_index = upstream_index;
    sb_buf_init(&t->id, 4096);
    sb_buf_init(&t->name, 4096);
    sb_buf_init(&t->pending, SSE_EVENT_MAX);
    *idx = s->n_calls++;
    return t;
}

/* One element of delta.tool_calls. pos is its place in the array (for servers without index). */
static int on_tool_delta(struct sb__oai_stream *s, json_t *tc, size_t pos)
{
    if (!json_is_object(tc))
        return malformed(s, "a tool call that is not an object");
    json_t *jidx = json_object_get(tc, "index");
    int64_t upstream_index =
        json_is_integer(jidx) ? (int64_t)json_integer_value(jidx) : (int64_t)pos;
    size_t idx = 0;
    struct tool_acc *t = tool_slot(s, upstream_index, &idx);
    if (t == NULL)
        return malformed(s, "too many tool calls");
    json_t *fn = json_object_get(tc, "function");
    json_t *jargs = json_object_get(fn, "arguments");
    char *dumped = NULL;
    struct sb_str args = sb__json_str(jargs);
    if (json_is_object(jargs)) {
        /* Not OpenAI's shape (arguments are JSON text), but some servers send the object. */
        dumped = json_dumps(jargs, JSON_COMPACT);
        if (dumped == NULL)
            return malformed(s, "tool call arguments that cannot be written back");
        args = sb_str_c(dumped);
    }
    int rc = 0;
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = (int32_t)idx;
    if (t->announced) {
        ev.tool_call.arguments = args;
        if (args.len > 0)
            rc = emit(s, &ev);
        goto done;
    }
    struct sb_str id = sb__json_str(json_object_get(tc, "id"));
    struct sb_str name = sb__json_str(json_object_get(fn, "name"));
    if ((t->id.len == 0 && sb_buf_append_str(&t->id, id) != 0) ||
        sb_buf_append_str(&t->name, name) != 0 || sb_buf_append_str(&t->pending, args) != 0) {
        rc = malformed(s, "a tool call too large");
        goto done;
    }
    if (t->name.len == 0)
        goto done; /* arguments wait for the name */
    if (t->id.len == 0) {
        char gen[40];
        sb_random_id(gen, sizeof gen, "call_");
        sb_buf_append_c(&t->id, gen);
    }
    ev.tool_call.id = sb_buf_view(&t->id);
    ev.tool_call.name = sb_buf_view(&t->name);
    ev.tool_call.arguments = sb_buf_view(&t->pending);
    t->announced = true;
    rc = emit(s, &ev);
    sb_buf_free(&t->pending);
done:
    free(dumped);
    return rc;
}

static int on_choice(struct sb__oai_stream *s, json_t *choice)
{
    if (!json_is_object(choice))
        return malformed(s, "a choice that is not an object");
    /* We never ask for n > 1; other choices are not ours to mix in. */
    if (sb__json_int(json_object_get(choice, "index")) != 0)
        return 0;
    json_t *delta = json_object_get(choice, "delta");
    int rc = 0;
    if (json_is_object(delta)) {
        rc = sb__emitter_text(&s->out, sb__json_str(json_object_get(delta, "content")));
        json_t *tcs = json_object_get(delta, "tool_calls");
        for (size_t i = 0; rc == 0 && json_is_array(tcs) && i < json_array_size(tcs); i++)
            rc = on_tool_delta(s, json_array_get(tcs, i), i);
    } else {
        /* a text completion */
        rc = sb__emitter_text(&s->out, sb__json_str(json_object_get(choice, "text")));
    }
    struct sb_str fr = sb__json_str(json_object_get(choice, "finish_reason"));
    if (rc == 0 && fr.len > 0) {
        s->has_finish = true;
        s->reason = SB_FINISH_STOP;
        for (size_t i = 0; i < SB_ARRAY_LEN(finish_reasons); i++)
            if (sb_str_eq_c(fr, finish_reasons[i].name))
                s->reason = finish_reasons[i].reason;
    }
    return rc;
}

static void read_usage(struct sb__oai_stream *s, json_t *u)
{
    s->usage.prompt_tokens = sb__json_int(json_object_get(u, "prompt_tokens"));
    s->usage.completion_tokens = sb__json_int(json_object_get(u, "completion_tokens"));
    s->usage.cached_prompt_tokens =
        sb__json_int(json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens"));
}

static int on_chunk(struct sb__oai_stream *s, json_t *j)
{
    if (json_object_get(j, "error") != NULL ||
        sb_str_eq_c(sb__json_str(json_object_get(j, "object")), "error"))
        return stream_error(s, j);
    int rc = start_once(s, j);
    json_t *choices = json_object_get(j, "choices");
    for (size_t i = 0; rc == 0 && json_is_array(choices) && i < json_array_size(choices); i++)
        rc = on_choice(s, json_array_get(choices, i));
    json_t *u = json_object_get(j, "usage");
    if (rc == 0 && json_is_object(u))
        read_usage(s, u);
    return rc;
}

/* The end: calls still waiting for a name are malformed; then USAGE and FINISH. */
static int finish(struct sb__oai_stream *s)
{
    for (size_t i = 0; i < s->n_calls; i++)
        if (!s->calls[i].announced)
            return malformed(s, "a tool call without a name");
    if (!s->started) {
        struct sb_event start = {.type = SB_EV_START};
        start.start.attempts = 1;
        s->started = true;
        if (emit(s, &start) != 0)
            return 1;
    }
    return sb__emitter_finish(&s->out, &s->usage, s->has_finish ? s->reason : SB_FINISH_STOP,
                              SB_STR_NULL);
}

/* ---------------------------------------------------------------------------------------------
 * SSE events (framed by cloud_stream.c)
 * ------------------------------------------------------------------------------------------- */
static int on_event(void *ud, struct sb_str event, struct sb_str data)
{
    struct sb__oai_stream *s = ud;
    int rc = 0;
    json_t *j = NULL;
    if (sb_str_eq_c(data, "[DONE]")) {
        rc = finish(s);
        goto done;
    }
    j = json_loadb(data.p, data.len, 0, NULL);
    if (!json_is_object(j)) {
        rc = malformed(s, "a chunk that is not a JSON object");
        goto done;
    }
    if (sb_str_eq_c(event, "error"))
        rc = stream_error(s, j);
    else
        rc = on_chunk(s, j);
done:
    json_decref(j);
    return rc != 0 || s->out.ended;
}

/* ---------------------------------------------------------------------------------------------
 * Embeddings: {"object":"list","data":[{"index","embedding":[...]}],"model","usage"}
 * ------------------------------------------------------------------------------------------- */
static int emit_embedding(struct sb__oai_stream *s, json_t *item, size_t pos)
{
    json_t *vec = json_object_get(item, "embedding");
    if (!json_is_array(vec))
        return malformed(s, "an embedding that is not an array of numbers");
    size_t dim = json_array_size(vec);
    float *values = calloc(dim > 0 ? dim : 1, sizeof *values);
    if (values == NULL)
        return sb__emitter_fail(&s->out, SB_ENOMEM, 500, false, 0, "%s: out of memory",
                                s->out.provider);
    for (size_t k = 0; k < dim; k++) {
        json_t *v = json_array_get(vec, k);
        if (!json_is_number(v)) {
            free(values);
            return malformed(s, "an embedding that is not an array of numbers");
        }
        values[k] = (float)json_number_value(v);
    }
    json_t *jidx = json_object_get(item, "index");
    struct sb_event ev = {.type = SB_EV_EMBEDDING};
    ev.embedding.index = json_is_integer(jidx) ? (int32_t)json_integer_value(jidx) : (int32_t)pos;
    ev.embedding.values = values;
    ev.embedding.dim = dim;
    int rc = emit(s, &ev);
    free(values);
    return rc;
}

static void embeddings_eof(struct sb__oai_stream *s)
{
    json_t *j = json_loadb(s->body.p != NULL ? s->body.p : "", s->body.len, 0, NULL);
    json_t *data = json_object_get(j, "data");
    if (!json_is_array(data)) {
        malformed(s, "an embeddings response without data");
        goto done;
    }
    if (start_once(s, j) != 0)
        goto done;
    for (size_t i = 0; i < json_array_size(data); i++)
        if (emit_embedding(s, json_array_get(data, i), i) != 0)
            goto done;
    s->usage.prompt_tokens =
        sb__json_int(json_object_get(json_object_get(j, "usage"), "prompt_tokens"));
    s->has_finish = true;
    s->reason = SB_FINISH_STOP;
    finish(s);
done:
    json_decref(j);
}

/* ---------------------------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------------------------- */
int sb__oai_stream_feed(struct sb__oai_stream *s, const char *p, size_t len)
{
    if (s->out.ended)
        return sb__emitter_feed_result(&s->out);
    if (s->embeddings) {
        if (sb_buf_append(&s->body, p, len) != 0)
            return malformed(s, "an embeddings response too large");
        return 0;
    }
    const char *why = NULL;
    if (sb__sse_feed(&s->sse, p, len, on_event, s, &why) == SB_EUPSTREAM)
        malformed(s, why);
    return sb__emitter_feed_result(&s->out);
}

void sb__oai_stream_eof(struct sb__oai_stream *s)
{
    if (s->out.ended)
        return;
    if (s->embeddings) {
        embeddings_eof(s);
        return;
    }
    /* A last event without its blank line still counts: the body ended cleanly. */
    const char *why = NULL;
    if (sb__sse_end(&s->sse, on_event, s, &why) == SB_EUPSTREAM)
        malformed(s, why);
    if (s->out.ended)
        return;
    if (s->has_finish) {
        finish(s);
        return;
    }
    sb__emitter_fail(&s->out, SB_EUPSTREAM, 502, false, 0,
                     "%s: the stream ended before the response was complete", s->out.provider);
}

void sb__oai_stream_http_error(struct sb__oai_stream *s, int status, struct sb_str body,
                               uint32_t retry_after_ms)
{
    int mapped = 502;
    bool retryable = false;
    sb__map_http_status(status, &mapped, &retryable);
    json_t *j = body.len > 0 ? json_loadb(body.p, body.len, 0, NULL) : NULL;
    struct api_error e;
    if (json_is_object(j) && read_api_error(j, &e) && e.message.len > 0) {
        sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                         "%s (HTTP %d%s%.*s): %.*s", s->out.provider, status,
                         e.type.len ? ", " : "", (int)e.type.len, e.type.p ? e.type.p : "",
                         (int)SB_MIN(e.message.len, (size_t)MESSAGE_MAX), e.message.p);
    } else {
        sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                         "%s answered HTTP %d without an error object", s->out.provider, status);
    }
    json_decref(j);
}

struct sb__oai_stream *sb__oai_stream_new(sb__sink_fn sink, void *ud, bool embeddings,
                                          const char *provider)
{
    struct sb__oai_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    sb__emitter_init(&s->out, sink, ud, provider != NULL ? provider : "openai");
    s->embeddings = embeddings;
    sb__sse_init(&s->sse, SSE_LINE_MAX, SSE_EVENT_MAX);
    sb_buf_init(&s->body, EMBED_BODY_MAX);
    s->reason = SB_FINISH_STOP;
    return s;
}

void sb__oai_stream_set_secret(struct sb__oai_stream *s, struct sb_str secret)
{
    s->out.secret = secret;
}

void sb__oai_stream_free(struct sb__oai_stream *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->n_calls; i++) {
        sb_buf_free(&s->calls[i].id);
        sb_buf_free(&s->calls[i].name);
        sb_buf_free(&s->calls[i].pending);
    }
    sb__sse_free(&s->sse);
    sb_buf_free(&s->body);
    free(s);
}
