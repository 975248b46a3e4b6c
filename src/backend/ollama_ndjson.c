/* Decodes Ollama's native responses into canonical events: the NDJSON lines of /api/chat and
 * /api/generate (split anywhere across pieces), errors as {"error": "..."}, and /api/embed's one
 * JSON object. */
#include <stdlib.h>

#include "backend/cloud_stream.h"
#include "backend/ollama_remote.h"

#define LINE_MAX_BYTES (8u << 20)
#define EMBED_BODY_MAX (64u << 20)
#define MESSAGE_MAX    900

struct sb__ollama_stream {
    struct sb__emitter out; /* its secret: the API key, if any */
    bool embeddings;
    struct sb__lines lines; /* NDJSON: one JSON object a line */
    struct sb_buf body;     /* embeddings: the whole response */
    int32_t n_tool_calls;
    bool started;
};

/* Events and errors go out through s->out (cloud_stream.c). */
static int emit(struct sb__ollama_stream *s, const struct sb_event *ev)
{
    return sb__emitter_emit(&s->out, ev);
}

static int malformed(struct sb__ollama_stream *s, const char *what)
{
    return sb__emitter_malformed(&s->out, what);
}

static int start_once(struct sb__ollama_stream *s, json_t *j)
{
    if (s->started)
        return 0;
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb__json_str(json_object_get(j, "model"));
    ev.start.attempts = 1;
    s->started = true;
    return emit(s, &ev);
}

/* Ollama sends each call whole, arguments as an object. */
static int on_tool_call(struct sb__ollama_stream *s, json_t *tc)
{
    json_t *fn = json_object_get(tc, "function");
    struct sb_str name = sb__json_str(json_object_get(fn, "name"));
    if (name.len == 0)
        return malformed(s, "a tool call without a name");
    json_t *args = json_object_get(fn, "arguments");
    char *dumped = NULL;
    struct sb_str text = SB_STR_LIT("{}");
    if (json_is_string(args)) {
        text = sb__json_str(args);
    } else if (json_is_object(args)) {
        dumped = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (dumped == NULL)
            return malformed(s, "tool call arguments that cannot be written back");
        text = sb_str_c(dumped);
    }
    char gen[40];
    struct sb_str id = sb__json_str(json_object_get(tc, "id"));
    if (id.len == 0) {
        sb_random_id(gen, sizeof gen, "call_");
        id = sb_str_c(gen);
    }
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = s->n_tool_calls++;
    ev.tool_call.id = id;
    ev.tool_call.name = name;
    ev.tool_call.arguments = text;
    int rc = emit(s, &ev);
    free(dumped);
    return rc;
}

static const struct {
    const char *name;
    enum sb_finish_reason reason;
} done_reasons[] = {
    {"stop", SB_FINISH_STOP},
    {"length", SB_FINISH_LENGTH},
    {"load", SB_FINISH_STOP},   /* an empty request that only loaded the model */
    {"unload", SB_FINISH_STOP}, /* keep_alive 0 */
};

static int on_done(struct sb__ollama_stream *s, json_t *j)
{
    struct sb_usage usage = {0};
    /* Ollama reports no cache hits; prompt_eval_count is what it evaluated. */
    usage.prompt_tokens = sb__json_int(json_object_get(j, "prompt_eval_count"));
    usage.completion_tokens = sb__json_int(json_object_get(j, "eval_count"));
    struct sb_str name = sb__json_str(json_object_get(j, "done_reason"));
    enum sb_finish_reason reason = SB_FINISH_STOP;
    for (size_t i = 0; i < SB_ARRAY_LEN(done_reasons); i++)
        if (sb_str_eq_c(name, done_reasons[i].name))
            reason = done_reasons[i].reason;
    /* Ollama says "stop" after calling tools; OpenAI-shaped clients expect "tool_calls". */
    if (s->n_tool_calls > 0 && reason == SB_FINISH_STOP)
        reason = SB_FINISH_TOOL_CALLS;
    return sb__emitter_finish(&s->out, &usage, reason, SB_STR_NULL);
}

/* One line (the line splitter's sb__line_fn). Returns non-zero once the stream has ended. */
static int on_line(void *ud, struct sb_str line)
{
    struct sb__ollama_stream *s = ud;
    while (line.len > 0 && (line.p[line.len - 1] == '\r' || line.p[line.len - 1] == ' '))
        line.len--;
    if (line.len == 0)
        return 0;
    int rc = 0;
    json_t *j = json_loadb(line.p, line.len, 0, NULL);
    if (!json_is_object(j)) {
        rc = malformed(s, "a line that is not a JSON object");
        goto done;
    }
    json_t *err = json_object_get(j, "error");
    if (err != NULL) {
        struct sb_str m = sb__json_str(err);
        rc = sb__emitter_fail(
            &s->out, SB_EUPSTREAM, 502, false, 0, "ollama: error in the stream: %.*s",
            (int)SB_MIN(m.len, (size_t)MESSAGE_MAX), m.len > 0 ? m.p : "no message");
        goto done;
    }
    rc = start_once(s, j);
    json_t *msg = json_object_get(j, "message");
    struct sb_str text = json_is_object(msg) ? sb__json_str(json_object_get(msg, "content"))
                                             : sb__json_str(json_object_get(j, "response"));
    if (rc == 0)
        rc = sb__emitter_text(&s->out, text);
    json_t *tcs = json_object_get(msg, "tool_calls");
    for (size_t i = 0; rc == 0 && json_is_array(tcs) && i < json_array_size(tcs); i++)
        rc = on_tool_call(s, json_array_get(tcs, i));
    if (rc == 0 && json_is_true(json_object_get(j, "done")))
        rc = on_done(s, j);
done:
    json_decref(j);
    return rc != 0 || s->out.ended;
}

int sb__ollama_stream_feed(struct sb__ollama_stream *s, const char *p, size_t len)
{
    if (s->out.ended)
        return sb__emitter_feed_result(&s->out);
    if (s->embeddings) {
        if (sb_buf_append(&s->body, p, len) != 0)
            return malformed(s, "an embed response too large");
        return 0;
    }
    if (sb__lines_feed(&s->lines, p, len, on_line, s) < 0)
        malformed(s, "a line too long");
    return sb__emitter_feed_result(&s->out);
}

/* {"model", "embeddings": [[...], ...], "prompt_eval_count"} */
static void embed_eof(struct sb__ollama_stream *s)
{
    json_t *j = json_loadb(s->body.p != NULL ? s->body.p : "", s->body.len, 0, NULL);
    json_t *vecs = json_object_get(j, "embeddings");
    float *values = NULL;
    if (!json_is_array(vecs)) {
        malformed(s, "an embed response without embeddings");
        goto done;
    }
    if (start_once(s, j) != 0)
        goto done;
    for (size_t i = 0; i < json_array_size(vecs); i++) {
        json_t *vec = json_array_get(vecs, i);
        size_t dim = json_array_size(vec);
        free(values);
        values = calloc(dim > 0 ? dim : 1, sizeof *values);
        if (!json_is_array(vec) || values == NULL) {
            malformed(s, "an embedding that is not an array of numbers");
            goto done;
        }
        for (size_t k = 0; k < dim; k++)
            values[k] = (float)json_number_value(json_array_get(vec, k));
        struct sb_event ev = {.type = SB_EV_EMBEDDING};
        ev.embedding.index = (int32_t)i;
        ev.embedding.values = values;
        ev.embedding.dim = dim;
        if (emit(s, &ev) != 0)
            goto done;
    }
    on_done(s, j);
done:
    free(values);
    json_decref(j);
}

void sb__ollama_stream_eof(struct sb__ollama_stream *s)
{
    if (s->out.ended)
        return;
    if (s->embeddings) {
        embed_eof(s);
        return;
    }
    /* A last line without its newline still counts: the body ended cleanly. */
    sb__lines_end(&s->lines, on_line, s);
    if (!s->out.ended)
        sb__emitter_fail(&s->out, SB_EUPSTREAM, 502, false, 0,
                         "ollama: the stream ended before \"done\"");
}

void sb__ollama_stream_http_error(struct sb__ollama_stream *s, int status, struct sb_str body,
                                  uint32_t retry_after_ms)
{
    int mapped = 502;
    bool retryable = false;
    sb__map_http_status(status, &mapped, &retryable);
    json_t *j = body.len > 0 ? json_loadb(body.p, body.len, 0, NULL) : NULL;
    json_t *err = json_object_get(j, "error");
    /* Ollama's errors are {"error": "text"}; an OpenAI-shaped proxy in front may nest them. */
    struct sb_str m =
        json_is_string(err) ? sb__json_str(err) : sb__json_str(json_object_get(err, "message"));
    if (m.len > 0)
        sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                         "ollama (HTTP %d): %.*s", status, (int)SB_MIN(m.len, (size_t)MESSAGE_MAX),
                         m.p);
    else
        sb__emitter_fail(&s->out, SB_EUPSTREAM, mapped, retryable, retry_after_ms,
                         "ollama answered HTTP %d without an error", status);
    json_decref(j);
}

struct sb__ollama_stream *sb__ollama_stream_new(sb__sink_fn sink, void *ud, bool embeddings)
{
    struct sb__ollama_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    sb__emitter_init(&s->out, sink, ud, "ollama");
    s->embeddings = embeddings;
    sb__lines_init(&s->lines, LINE_MAX_BYTES, false);
    sb_buf_init(&s->body, EMBED_BODY_MAX);
    return s;
}

void sb__ollama_stream_set_secret(struct sb__ollama_stream *s, struct sb_str secret)
{
    s->out.secret = secret;
}

void sb__ollama_stream_free(struct sb__ollama_stream *s)
{
    if (s == NULL)
        return;
    sb__lines_free(&s->lines);
    sb_buf_free(&s->body);
    free(s);
}
