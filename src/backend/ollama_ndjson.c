/* Decodes Ollama's native responses into canonical events: the NDJSON lines of /api/chat and
 * /api/generate (split anywhere across pieces), errors as {"error": "..."}, and /api/embed's one
 * JSON object. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/ollama_remote.h"

#define LINE_MAX_BYTES (8u << 20)
#define EMBED_BODY_MAX (64u << 20)
#define MESSAGE_MAX 900

struct sb__ollama_stream {
    sb__sink_fn sink;
    void *ud;
    bool embeddings;
    struct sb_str secret;
    struct sb_buf line; /* a line split across pieces; embeddings: the whole body */
    int32_t n_tool_calls;
    bool started;
    bool ended;
};

static int emit(struct sb__ollama_stream *s, const struct sb_event *ev)
{
    if (s->ended)
        return 1;
    if (s->sink(s->ud, ev) != 0 || ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR)
        s->ended = true;
    return s->ended;
}

static int fail(struct sb__ollama_stream *s, int status, bool retryable, uint32_t retry_after_ms,
                const char *fmt, ...) SB_PRINTF(5, 6);

/* Emits one ERROR (SB_EUPSTREAM) with the message formatted and the secret masked. */
static int fail(struct sb__ollama_stream *s, int status, bool retryable, uint32_t retry_after_ms,
                const char *fmt, ...)
{
    if (s->ended)
        return 1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    if (s->secret.len >= 4) {
        char *hit;
        while ((hit = memmem(msg, strlen(msg), s->secret.p, s->secret.len)) != NULL)
            memset(hit, '*', s->secret.len);
    }
    sb__emit_error(s->sink, s->ud, SB_EUPSTREAM, status, retryable, retry_after_ms, "%s", msg);
    s->ended = true;
    return 1;
}

static int malformed(struct sb__ollama_stream *s, const char *what)
{
    return fail(s, 502, false, 0, "ollama: malformed stream: %s", what);
}

static struct sb_str jstr(const json_t *j)
{
    if (!json_is_string(j))
        return SB_STR_NULL;
    return (struct sb_str){json_string_value(j), json_string_length(j)};
}

static int64_t jint(const json_t *j)
{
    return json_is_integer(j) ? (int64_t)json_integer_value(j) : 0;
}

static int start_once(struct sb__ollama_stream *s, json_t *j)
{
    if (s->started)
        return 0;
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = jstr(json_object_get(j, "model"));
    ev.start.attempts = 1;
    s->started = true;
    return emit(s, &ev);
}

/* Ollama sends each call whole, arguments as an object. */
static int on_tool_call(struct sb__ollama_stream *s, json_t *tc)
{
    json_t *fn = json_object_get(tc, "function");
    struct sb_str name = jstr(json_object_get(fn, "name"));
    if (name.len == 0)
        return malformed(s, "a tool call without a name");
    json_t *args = json_object_get(fn, "arguments");
    char *dumped = NULL;
    struct sb_str text = SB_STR_LIT("{}");
    if (json_is_string(args)) {
        text = jstr(args);
    } else if (json_is_object(args)) {
        dumped = json_dumps(args, JSON_COMPACT | JSON_PRESERVE_ORDER);
        if (dumped == NULL)
            return malformed(s, "tool call arguments that cannot be written back");
        text = sb_str_c(dumped);
    }
    char gen[40];
    struct sb_str id = jstr(json_object_get(tc, "id"));
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
    struct sb_event ev = {.type = SB_EV_USAGE};
    /* Ollama reports no cache hits; prompt_eval_count is what it evaluated. */
    ev.usage.prompt_tokens = jint(json_object_get(j, "prompt_eval_count"));
    ev.usage.completion_tokens = jint(json_object_get(j, "eval_count"));
    if (emit(s, &ev) != 0)
        return 1;
    ev = (struct sb_event){.type = SB_EV_FINISH};
    struct sb_str reason = jstr(json_object_get(j, "done_reason"));
    ev.finish.reason = SB_FINISH_STOP;
    for (size_t i = 0; i < SB_ARRAY_LEN(done_reasons); i++)
        if (sb_str_eq_c(reason, done_reasons[i].name))
            ev.finish.reason = done_reasons[i].reason;
    /* Ollama says "stop" after calling tools; OpenAI-shaped clients expect "tool_calls". */
    if (s->n_tool_calls > 0 && ev.finish.reason == SB_FINISH_STOP)
        ev.finish.reason = SB_FINISH_TOOL_CALLS;
    return emit(s, &ev);
}

static int on_line(struct sb__ollama_stream *s, struct sb_str line)
{
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
        struct sb_str m = jstr(err);
        rc = fail(s, 502, false, 0, "ollama: error in the stream: %.*s",
                  (int)SB_MIN(m.len, (size_t)MESSAGE_MAX), m.len > 0 ? m.p : "no message");
        goto done;
    }
    rc = start_once(s, j);
    json_t *msg = json_object_get(j, "message");
    struct sb_str text = json_is_object(msg) ? jstr(json_object_get(msg, "content"))
                                             : jstr(json_object_get(j, "response"));
    if (rc == 0 && text.len > 0) {
        struct sb_event ev = {.type = SB_EV_TEXT};
        ev.text.text = text;
        rc = emit(s, &ev);
    }
    json_t *tcs = json_object_get(msg, "tool_calls");
    for (size_t i = 0; rc == 0 && json_is_array(tcs) && i < json_array_size(tcs); i++)
        rc = on_tool_call(s, json_array_get(tcs, i));
    if (rc == 0 && json_is_true(json_object_get(j, "done")))
        rc = on_done(s, j);
done:
    json_decref(j);
    return rc;
}

int sb__ollama_stream_feed(struct sb__ollama_stream *s, const char *p, size_t len)
{
    if (s->ended)
        return 1;
    if (s->embeddings) {
        if (sb_buf_append(&s->line, p, len) != 0)
            return malformed(s, "an embed response too large");
        return 0;
    }
    size_t i = 0;
    while (!s->ended && i < len) {
        const char *nl = memchr(p + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - p) : len;
        struct sb_str piece = {p + i, end - i};
        if (nl == NULL) {
            if (sb_buf_append_str(&s->line, piece) != 0)
                return malformed(s, "a line too long");
            break;
        }
        int rc;
        if (s->line.len > 0) {
            if (sb_buf_append_str(&s->line, piece) != 0)
                return malformed(s, "a line too long");
            rc = on_line(s, sb_buf_view(&s->line));
            sb_buf_reset(&s->line);
        } else {
            rc = on_line(s, piece);
        }
        if (rc != 0)
            break;
        i = end + 1;
    }
    return s->ended;
}

/* {"model", "embeddings": [[...], ...], "prompt_eval_count"} */
static void embed_eof(struct sb__ollama_stream *s)
{
    json_t *j = json_loadb(s->line.p != NULL ? s->line.p : "", s->line.len, 0, NULL);
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
    if (s->ended)
        return;
    if (s->embeddings) {
        embed_eof(s);
        return;
    }
    /* A last line without its newline still counts: the body ended cleanly. */
    if (s->line.len > 0) {
        on_line(s, sb_buf_view(&s->line));
        sb_buf_reset(&s->line);
    }
    if (!s->ended)
        fail(s, 502, false, 0, "ollama: the stream ended before \"done\"");
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
    struct sb_str m = json_is_string(err) ? jstr(err) : jstr(json_object_get(err, "message"));
    if (m.len > 0)
        fail(s, mapped, retryable, retry_after_ms, "ollama (HTTP %d): %.*s", status,
             (int)SB_MIN(m.len, (size_t)MESSAGE_MAX), m.p);
    else
        fail(s, mapped, retryable, retry_after_ms, "ollama answered HTTP %d without an error",
             status);
    json_decref(j);
}

struct sb__ollama_stream *sb__ollama_stream_new(sb__sink_fn sink, void *ud, bool embeddings)
{
    struct sb__ollama_stream *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->sink = sink;
    s->ud = ud;
    s->embeddings = embeddings;
    sb_buf_init(&s->line, embeddings ? EMBED_BODY_MAX : LINE_MAX_BYTES);
    return s;
}

void sb__ollama_stream_set_secret(struct sb__ollama_stream *s, struct sb_str secret)
{
    s->secret = secret;
}

void sb__ollama_stream_free(struct sb__ollama_stream *s)
{
    if (s == NULL)
        return;
    sb_buf_free(&s->line);
    free(s);
}
