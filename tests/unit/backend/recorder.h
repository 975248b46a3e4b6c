/* A canonical-event sink for decoder tests: records what a stream decoder emits and checks the
 * event-stream contract as it goes (START first, nothing after FINISH or ERROR, tool-call deltas
 * that begin with id and name and arrive in index order). Header-only; each test file includes it.
 */
#ifndef SB_TEST_RECORDER_H
#define SB_TEST_RECORDER_H

#include "core/canon.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define REC_MAX_TOOLS 8

struct rec_tool {
    char id[64];
    char name[64];
    struct sb_buf args;
    int n_deltas;
};

struct rec {
    int n_events, n_start, n_text, n_tool, n_usage, n_finish, n_error;
    int n_after_end;  /* events after FINISH or ERROR: must stay 0 */
    int n_misordered; /* contract violations seen: must stay 0 */
    bool ended;
    char model[128];
    struct sb_buf text;
    struct rec_tool tools[REC_MAX_TOOLS];
    int n_tools; /* highest index + 1 */
    struct sb_usage usage;
    enum sb_finish_reason reason;
    char stop_sequence[128];
    int err_code, err_status;
    bool err_retryable;
    uint32_t err_retry_after_ms;
    char err_msg[1200];
    int stop_after; /* > 0: the sink says "stop" after this many events (an owner's cancel) */
};

static inline void rec_init(struct rec *r)
{
    memset(r, 0, sizeof *r);
    sb_buf_init(&r->text, 1u << 20);
    for (int i = 0; i < REC_MAX_TOOLS; i++)
        sb_buf_init(&r->tools[i].args, 1u << 20);
}

static inline void rec_free(struct rec *r)
{
    sb_buf_free(&r->text);
    for (int i = 0; i < REC_MAX_TOOLS; i++)
        sb_buf_free(&r->tools[i].args);
}

static inline void copy_view(char *dst, size_t cap, struct sb_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static inline int rec_sink(void *ud, const struct sb_event *ev)
{
    struct rec *r = ud;
    if (r->ended) {
        r->n_after_end++;
        return 1;
    }
    if (r->n_events == 0 && ev->type != SB_EV_START && ev->type != SB_EV_ERROR)
        r->n_misordered++;
    r->n_events++;
    switch (ev->type) {
    case SB_EV_START:
        r->n_start++;
        copy_view(r->model, sizeof r->model, ev->start.model);
        break;
    case SB_EV_TEXT:
        r->n_text++;
        cr_assert_eq(sb_buf_append_str(&r->text, ev->text.text), 0);
        break;
    case SB_EV_TOOL_CALL: {
        r->n_tool++;
        int i = ev->tool_call.index;
        cr_assert(i >= 0 && i < REC_MAX_TOOLS, "tool index %d", i);
        struct rec_tool *t = &r->tools[i];
        if (t->n_deltas == 0) {
            /* A call's first delta names it, and calls start in index order. */
            if (i != r->n_tools || ev->tool_call.id.len == 0 || ev->tool_call.name.len == 0)
                r->n_misordered++;
            r->n_tools = i + 1;
            copy_view(t->id, sizeof t->id, ev->tool_call.id);
            copy_view(t->name, sizeof t->name, ev->tool_call.name);
        } else if (ev->tool_call.id.len || ev->tool_call.name.len) {
            r->n_misordered++;
        }
        t->n_deltas++;
        cr_assert_eq(sb_buf_append_str(&t->args, ev->tool_call.arguments), 0);
        break;
    }
    case SB_EV_USAGE:
        r->n_usage++;
        r->usage = ev->usage;
        break;
    case SB_EV_FINISH:
        r->n_finish++;
        if (r->n_usage == 0)
            r->n_misordered++; /* USAGE always comes before FINISH */
        r->reason = ev->finish.reason;
        copy_view(r->stop_sequence, sizeof r->stop_sequence, ev->finish.stop_sequence);
        r->ended = true;
        break;
    case SB_EV_ERROR:
        r->n_error++;
        r->err_code = ev->error.code;
        r->err_status = ev->error.http_status;
        r->err_retryable = ev->error.retryable;
        r->err_retry_after_ms = ev->error.retry_after_ms;
        copy_view(r->err_msg, sizeof r->err_msg, ev->error.message);
        r->ended = true;
        break;
    case SB_EV_EMBEDDING: r->n_misordered++; break;
    }
    if (r->stop_after > 0 && r->n_events >= r->stop_after)
        return 1;
    return r->ended;
}

/* Asserts that two recordings of the same stream are the same. */
static inline void rec_assert_same(const struct rec *a, const struct rec *b, const char *what)
{
    cr_assert_eq(a->n_start, b->n_start, "%s: starts", what);
    cr_assert_eq(a->n_usage, b->n_usage, "%s: usages", what);
    cr_assert_eq(a->n_finish, b->n_finish, "%s: finishes", what);
    cr_assert_eq(a->n_error, b->n_error, "%s: errors", what);
    cr_assert_eq(a->text.len, b->text.len, "%s: text length", what);
    cr_assert(a->text.len == 0 || memcmp(a->text.p, b->text.p, a->text.len) == 0, "%s: text", what);
    cr_assert_eq(a->n_tools, b->n_tools, "%s: tools", what);
    for (int i = 0; i < a->n_tools; i++) {
        cr_assert_str_eq(a->tools[i].id, b->tools[i].id, "%s: tool %d id", what, i);
        cr_assert_str_eq(a->tools[i].name, b->tools[i].name, "%s: tool %d name", what, i);
        cr_assert_str_eq(a->tools[i].args.p ? a->tools[i].args.p : "",
                         b->tools[i].args.p ? b->tools[i].args.p : "", "%s: tool %d args", what, i);
    }
    cr_assert_eq(memcmp(&a->usage, &b->usage, sizeof a->usage), 0, "%s: usage", what);
    cr_assert_eq(a->reason, b->reason, "%s: reason", what);
    cr_assert_eq(a->n_misordered + b->n_misordered, 0, "%s: contract", what);
    cr_assert_eq(a->n_after_end + b->n_after_end, 0, "%s: after end", what);
}

#endif
