/* The parts of decoding a cloud provider's streamed response that do not depend on the provider:
 * emitting events and errors (with the API key masked), splitting lines, framing server-sent
 * events, and the content-block table of Messages-shaped streams. */
#include "backend/cloud_stream.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* -----------------------------------------------------------------------------------------------
 * Emitting
 * --------------------------------------------------------------------------------------------- */

void sb__emitter_init(struct sb__emitter *e, sb__sink_fn sink, void *ud, const char *provider)
{
    *e = (struct sb__emitter){.sink = sink, .ud = ud, .provider = provider};
}

int sb__emitter_emit(struct sb__emitter *e, const struct sb_event *ev)
{
    if (e->ended)
        return 1;
    if (ev->type == SB_EV_FINISH)
        e->finished = true;
    if (e->sink(e->ud, ev) != 0 || ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR)
        e->ended = true;
    return e->ended;
}

int sb__emitter_text(struct sb__emitter *e, struct sb_str text)
{
    if (text.len == 0)
        return 0;
    struct sb_event ev = {.type = SB_EV_TEXT};
    ev.text.text = text;
    return sb__emitter_emit(e, &ev);
}

/* Overwrites every occurrence of secret in msg with '*'. */
static void mask(char *msg, struct sb_str secret)
{
    char *hit = memmem(msg, strlen(msg), secret.p, secret.len);
    while (hit != NULL) {
        memset(hit, '*', secret.len);
        hit = memmem(msg, strlen(msg), secret.p, secret.len);
    }
}

int sb__emitter_fail(struct sb__emitter *e, int code, int http_status, bool retryable,
                     uint32_t retry_after_ms, const char *fmt, ...)
{
    if (e->ended)
        return 1;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    /* A provider that quotes our key back must not hand it to our client. */
    if (e->secret.len >= 4)
        mask(msg, e->secret);
    sb__emit_error(e->sink, e->ud, code, http_status, retryable, retry_after_ms, "%s", msg);
    e->ended = true;
    return 1;
}

int sb__emitter_malformed(struct sb__emitter *e, const char *what)
{
    return sb__emitter_fail(e, SB_EUPSTREAM, 502, false, 0, "%s: malformed stream: %s", e->provider,
                            what);
}

int sb__emitter_finish(struct sb__emitter *e, const struct sb_usage *usage,
                       enum sb_finish_reason reason, struct sb_str stop_sequence)
{
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage = *usage;
    if (sb__emitter_emit(e, &ev) != 0)
        return 1;
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = reason;
    ev.finish.stop_sequence = stop_sequence;
    return sb__emitter_emit(e, &ev);
}

int sb__emitter_feed_result(const struct sb__emitter *e)
{
    return e->ended && !e->finished;
}

/* -----------------------------------------------------------------------------------------------
 * Lines
 * --------------------------------------------------------------------------------------------- */

void sb__lines_init(struct sb__lines *l, size_t line_max, bool cr_ends_line)
{
    sb_buf_init(&l->line, line_max);
    l->cr_ends_line = cr_ends_line;
    l->after_cr = false;
}

void sb__lines_free(struct sb__lines *l)
{
    sb_buf_free(&l->line);
}

static bool line_end(const struct sb__lines *l, char c)
{
    return c == '\n' || (c == '\r' && l->cr_ends_line);
}

int sb__lines_feed(struct sb__lines *l, const char *p, size_t len, sb__line_fn fn, void *ud)
{
    size_t i = 0;
    while (i < len) {
        if (l->after_cr) {
            l->after_cr = false;
            if (p[i] == '\n') {
                i++;
                continue;
            }
        }
        size_t j = i;
        while (j < len && !line_end(l, p[j]))
            j++;
        struct sb_str piece = {p + i, j - i};
        int rc;
        if (j == len) {
            /* The rest of the line comes with the next piece. */
            return sb_buf_append_str(&l->line, piece);
        }
        l->after_cr = p[j] == '\r';
        if (l->line.len > 0) {
            rc = sb_buf_append_str(&l->line, piece);
            if (rc != SB_OK)
                return rc;
            rc = fn(ud, sb_buf_view(&l->line));
            sb_buf_reset(&l->line);
        } else {
            rc = fn(ud, piece);
        }
        if (rc != 0)
            return rc;
        i = j + 1;
    }
    return 0;
}

int sb__lines_end(struct sb__lines *l, sb__line_fn fn, void *ud)
{
    if (l->line.len == 0)
        return 0;
    int rc = fn(ud, sb_buf_view(&l->line));
    sb_buf_reset(&l->line);
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * Server-sent events
 * --------------------------------------------------------------------------------------------- */

/* What one sb__sse_feed or sb__sse_end passes down to each line. */
struct sse_pass {
    struct sb__sse *s;
    sb__sse_fn fn;
    void *ud;
    const char *why; /* set with SB_EUPSTREAM */
};

/* The event ends at its blank line: handed on if it has data, then forgotten. */
static int sse_dispatch(struct sse_pass *pass)
{
    struct sb__sse *s = pass->s;
    int rc = 0;
    if (s->has_data)
        rc = pass->fn(pass->ud, sb_buf_view(&s->event), sb_buf_view(&s->data));
    sb_buf_reset(&s->event);
    sb_buf_reset(&s->data);
    s->has_data = false;
    return rc;
}

static int sse_line(void *ud, struct sb_str line)
{
    struct sse_pass *pass = ud;
    struct sb__sse *s = pass->s;
    if (line.len == 0)
        return sse_dispatch(pass);
    if (line.p[0] == ':')
        return 0; /* a comment: keep-alives, "OPENROUTER PROCESSING" */
    const char *colon = memchr(line.p, ':', line.len);
    struct sb_str field = {line.p, colon != NULL ? (size_t)(colon - line.p) : line.len};
    struct sb_str value = SB_STR_NULL;
    if (colon != NULL) {
        value = (struct sb_str){colon + 1, line.len - field.len - 1};
        if (value.len > 0 && value.p[0] == ' ') {
            value.p++;
            value.len--;
        }
    }
    int rc = 0;
    if (sb_str_eq_c(field, "data")) {
        if (s->has_data)
            rc = sb_buf_append_char(&s->data, '\n');
        if (rc == 0)
            rc = sb_buf_append_str(&s->data, value);
        s->has_data = true;
    } else if (sb_str_eq_c(field, "event")) {
        sb_buf_reset(&s->event);
        rc = sb_buf_append_str(&s->event, value);
    } /* id, retry and unknown fields mean nothing here */
    if (rc != 0) {
        pass->why = "an event too large";
        return SB_EUPSTREAM;
    }
    return 0;
}

void sb__sse_init(struct sb__sse *s, size_t line_max, size_t event_max)
{
    sb__lines_init(&s->lines, line_max, true);
    sb_buf_init(&s->event, 256);
    sb_buf_init(&s->data, event_max);
    s->has_data = false;
}

void sb__sse_free(struct sb__sse *s)
{
    sb__lines_free(&s->lines);
    sb_buf_free(&s->event);
    sb_buf_free(&s->data);
}

/* The lines' result as sb__sse_feed returns it. */
static int sse_result(const struct sse_pass *pass, int rc, const char **why)
{
    if (rc >= 0)
        return rc;
    *why = pass->why != NULL ? pass->why : "a line too long";
    return SB_EUPSTREAM;
}

int sb__sse_feed(struct sb__sse *s, const char *p, size_t len, sb__sse_fn fn, void *ud,
                 const char **why)
{
    struct sse_pass pass = {s, fn, ud, NULL};
    return sse_result(&pass, sb__lines_feed(&s->lines, p, len, sse_line, &pass), why);
}

int sb__sse_end(struct sb__sse *s, sb__sse_fn fn, void *ud, const char **why)
{
    struct sse_pass pass = {s, fn, ud, NULL};
    int rc = sb__lines_end(&s->lines, sse_line, &pass);
    if (rc == 0 && s->has_data)
        rc = sse_dispatch(&pass);
    return sse_result(&pass, rc, why);
}

/* -----------------------------------------------------------------------------------------------
 * Content blocks
 * --------------------------------------------------------------------------------------------- */

struct sb__block *sb__blocks_at(struct sb__blocks *t, const json_t *j, const char *key)
{
    json_t *idx = json_object_get(j, key);
    if (!json_is_integer(idx) || json_integer_value(idx) < 0 ||
        (size_t)json_integer_value(idx) >= t->max)
        return NULL;
    size_t i = (size_t)json_integer_value(idx);
    if (i >= t->n) {
        struct sb__block *nv = realloc(t->v, (i + 1) * sizeof *nv);
        if (!nv)
            return NULL;
        memset(nv + t->n, 0, (i + 1 - t->n) * sizeof *nv);
        t->v = nv;
        t->n = i + 1;
    }
    return &t->v[i];
}

void sb__blocks_free(struct sb__blocks *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int sb__blocks_open_tool(struct sb__blocks *t, struct sb__block *b, struct sb__emitter *e,
                         struct sb_str id, struct sb_str name)
{
    b->kind = SB__BLOCK_TOOL;
    b->tool_index = t->n_tools++;
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = b->tool_index;
    ev.tool_call.id = id;
    ev.tool_call.name = name;
    ev.tool_call.arguments = SB_STR_LIT("");
    return sb__emitter_emit(e, &ev);
}

int sb__block_args(struct sb__block *b, struct sb__emitter *e, struct sb_str args)
{
    if (args.len == 0)
        return 0;
    b->args_seen = true;
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = b->tool_index;
    ev.tool_call.arguments = args;
    return sb__emitter_emit(e, &ev);
}

int sb__block_stop(struct sb__block *b, struct sb__emitter *e)
{
    if (b->kind == SB__BLOCK_TOOL && !b->args_seen)
        return sb__block_args(b, e, SB_STR_LIT("{}"));
    return 0;
}
