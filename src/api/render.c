/* Output scaffolding shared by the wire codecs' renderers (see render.h). */
#include "api/render.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>
#include <time.h>

/* ---------------------------------------------------------------------------------------------
 * Writer
 * ------------------------------------------------------------------------------------------- */

void sb__put(struct sb__writer *w, const char *s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_c(w->b, s);
}

void sb__put_str(struct sb__writer *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_str(w->b, s);
}

void sb__put_escaped(struct sb__writer *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_json_escaped(w->b, s);
}

void sb__put_json(struct sb__writer *w, struct sb_str s)
{
    sb__put(w, "\"");
    sb__put_escaped(w, s);
    sb__put(w, "\"");
}

void sb__put_i64(struct sb__writer *w, int64_t v)
{
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%" PRId64, v);
}

void sb__put_time(struct sb__writer *w, int64_t t)
{
    char text[40];
    time_t tt = (time_t)t;
    struct tm tm;

    if (!gmtime_r(&tt, &tm) || strftime(text, sizeof(text), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        sb__put(w, "\"1970-01-01T00:00:00Z\"");
        return;
    }
    sb__put(w, "\"");
    sb__put(w, text);
    sb__put(w, "\"");
}

void sb__buf_truncate(struct sb_buf *b, size_t len)
{
    if (b->len > len) {
        b->len = len;
        b->p[len] = '\0';
    }
}

int sb__writer_finish(struct sb__writer *w, size_t mark)
{
    if (w->rc)
        sb__buf_truncate(w->b, mark);
    return w->rc;
}

/* ---------------------------------------------------------------------------------------------
 * Phases
 * ------------------------------------------------------------------------------------------- */

bool sb__phase_accepts(enum sb__phase p, const struct sb_event *ev)
{
    return p != SB__PHASE_DONE && (p == SB__PHASE_WAIT_START) == (ev->type == SB_EV_START);
}

bool sb__phase_ends(const struct sb_event *ev)
{
    return ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR;
}

/* The only place the phase changes after init; leaving for DONE also frees what was
 * accumulated. */
static void set_phase(const struct sb__render_ops *ops, void *state, enum sb__phase *phase,
                      enum sb__phase next)
{
    if (next == SB__PHASE_DONE)
        ops->release(state);
    *phase = next;
}

int sb__render_event(const struct sb__render_ops *ops, void *state, enum sb__phase *phase,
                     bool stream, const struct sb_event *ev, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;
    int rc;

    /* START exactly once and first; nothing after FINISH or ERROR. */
    if (!sb__phase_accepts(*phase, ev))
        return SB_ESTATE;
    rc = ops->begin ? ops->begin(state, ev) : 0;
    if (rc)
        goto fail;
    if (ev->type == SB_EV_START)
        set_phase(ops, state, phase, SB__PHASE_OPEN);
    rc = stream ? ops->stream(state, ev, &w) : ops->plain(state, ev, &w);
    if (rc == 0)
        rc = sb__writer_finish(&w, mark);
    if (rc)
        goto fail;
    if (sb__phase_ends(ev))
        set_phase(ops, state, phase, SB__PHASE_DONE);
    return 0;

fail:
    sb__buf_truncate(out, mark);
    /* A response that failed to render cannot be continued: a later event would either repeat
     * the failure or send output with a hole in it. */
    set_phase(ops, state, phase, SB__PHASE_DONE);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Tool call arguments
 * ------------------------------------------------------------------------------------------- */

void sb__put_tool_args(struct sb__writer *w, struct sb_str args)
{
    json_error_t e;
    json_t *v;
    char *text;

    if (args.len == 0) {
        sb__put(w, "{}");
        return;
    }
    v = json_loadb(args.p, args.len, JSON_REJECT_DUPLICATES, &e);
    if (json_is_object(v)) {
        /* Compact: a newline from the model's formatting would end an NDJSON line. */
        text = json_dumps(v, JSON_COMPACT);
        if (text)
            sb__put(w, text);
        else if (w->rc == 0)
            w->rc = SB_ENOMEM;
        free(text);
    } else {
        sb__put(w, "{\"_raw_arguments\":");
        sb__put_json(w, args);
        sb__put(w, "}");
    }
    json_decref(v);
}

/* ---------------------------------------------------------------------------------------------
 * Accumulation
 * ------------------------------------------------------------------------------------------- */

void sb__accum_init(struct sb__accum *acc, size_t max_held, size_t max_calls, size_t max_field)
{
    acc->max_held = max_held;
    acc->max_calls = max_calls;
    acc->max_field = max_field;
    acc->held = 0;
    sb_buf_init(&acc->text, max_held);
    acc->calls = NULL;
    acc->n_calls = 0;
}

void sb__accum_free(struct sb__accum *acc)
{
    sb_buf_free(&acc->text);
    for (size_t i = 0; i < acc->n_calls; i++) {
        sb_buf_free(&acc->calls[i].id);
        sb_buf_free(&acc->calls[i].name);
        sb_buf_free(&acc->calls[i].args);
    }
    free(acc->calls);
    acc->calls = NULL;
    acc->n_calls = 0;
    acc->held = 0;
}

int sb__accum_hold(struct sb__accum *acc, size_t len)
{
    if (len > acc->max_held - acc->held)
        return SB_ETOOBIG;
    acc->held += len;
    return 0;
}

int sb__accum_text(struct sb__accum *acc, struct sb_str text)
{
    int rc = sb__accum_hold(acc, text.len);

    if (rc == 0)
        rc = sb_buf_append_str(&acc->text, text);
    return rc;
}

int sb__accum_tool_slot(struct sb__accum *acc, int32_t index, struct sb__tool_acc **out)
{
    struct sb__tool_acc *grown;
    size_t want;

    if (index < 0 || (size_t)index >= acc->max_calls)
        return SB_ETOOBIG;
    want = (size_t)index + 1;
    if (want > acc->n_calls) {
        grown = realloc(acc->calls, want * sizeof(*grown));
        if (!grown)
            return SB_ENOMEM;
        for (size_t i = acc->n_calls; i < want; i++) {
            grown[i].started = false;
            sb_buf_init(&grown[i].id, acc->max_field);
            sb_buf_init(&grown[i].name, acc->max_field);
            sb_buf_init(&grown[i].args, acc->max_held);
        }
        acc->calls = grown;
        acc->n_calls = want;
    }
    *out = &acc->calls[index];
    return 0;
}

int sb__accum_tool_call(struct sb__accum *acc, const struct sb_event *ev)
{
    struct sb__tool_acc *call = NULL;
    int rc;

    rc = sb__accum_tool_slot(acc, ev->tool_call.index, &call);
    if (rc == 0)
        rc = sb__accum_hold(acc, ev->tool_call.id.len + ev->tool_call.name.len +
                                     ev->tool_call.arguments.len);
    if (rc == 0 && !call->started) {
        call->started = true;
        rc = sb_buf_append_str(&call->id, ev->tool_call.id);
        if (rc == 0)
            rc = sb_buf_append_str(&call->name, ev->tool_call.name);
    }
    if (rc == 0)
        rc = sb_buf_append_str(&call->args, ev->tool_call.arguments);
    return rc;
}
