/* The chain backend: serves a call through an ordered list of member backends, skipping those
 * whose breaker is open or whose context is too small, retrying failures that are safe to retry
 * after a backoff, and falling back to the next member, all on the call's own event loop. */
#include "resil/resil.h"

#include "metrics/metrics.h"

#include <event2/event.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAST_MSG_MAX  1024        /* the last failure's message, as the member wrote it */
#define TRACE_MAX     1024        /* what the final error says was tried */
#define TRIED_MAX     256         /* the members started, for START and the final ERROR */
#define FINAL_MSG_MAX 2200        /* the final error's message: the last one and the trace */
#define RENDER_MAX    (64u << 20) /* a prompt rendered to count its tokens */
/* Bytes a chat template may add around the messages, for the quick "it surely fits" bound; a
 * template that adds more only costs a try that the member answers with SB_ECONTEXT. */
#define TEMPLATE_BYTES_BASE        256
#define TEMPLATE_BYTES_PER_MESSAGE 64

struct member {
    struct sb_backend *backend; /* borrowed */
    struct sb_breaker *breaker; /* borrowed; NULL = none */
    struct sb_retry_policy retry;
    const struct sb_request *req;     /* borrowed; NULL = the call's request */
    char *name;                       /* owned */
    struct sb_metric_series *retries; /* switchboard_retries_total{backend=name} */
    struct sb_metric_series *moved; /* switchboard_fallbacks_total{from=name,to=next}; NULL last */
};

struct chain {
    struct sb_backend base;
    char *name; /* owned */
    struct member *m;
    size_t n;
    uint32_t budget_ms;
    _Atomic uint64_t seq; /* mixed into each call's jitter seed */
};

/* A call's life. WAITING: the timer is armed (a backoff, the next member, or the end). RUNNING:
 * an inner call is in flight and no START has come. STREAMING: START was forwarded; the chain is
 * committed to the member. ENDING: the end is being delivered; only cancel's flag may change. */
enum cc_state { CC_WAITING, CC_RUNNING, CC_STREAMING, CC_ENDING };

struct chain_call {
    struct chain *ch;
    struct sb_call *outer; /* the owner's call */
    struct sb_call inner;  /* the call on members[idx] */
    struct event *timer;
    enum cc_state state;
    bool canceled;     /* the owner cancelled: no event follows */
    bool final;        /* the timer delivers the final error */
    bool inner_failed; /* the inner call sent its ERROR (before any START) */
    size_t idx;        /* the member being tried */
    int32_t attempts;  /* tries, every member together */
    int32_t tries;     /* tries of members[idx] */
    size_t n_skipped;
    bool skipped_breaker;     /* a member was skipped because its breaker refused */
    uint32_t breaker_wait_ms; /* the soonest such a breaker lets a probe through */
    struct sb_breaker_ticket ticket;
    struct sb_retry_budget budget;
    struct sb_rng rng;
    /* The last failure. */
    int err_code, err_status;
    bool err_retryable, err_from_start;
    uint32_t err_retry_after_ms;
    char err_msg[LAST_MSG_MAX];
    char err_param[64];    /* the request field the member's ERROR named, or "" */
    struct sb_buf trace;   /* "a: 3 tries, last connect (502); b: skipped, breaker open" */
    char tried[TRIED_MAX]; /* "a,b": members started, in order, each once; whole names only */
};

static uint64_t now_ms(void)
{
    return sb_now_ns() / 1000000u;
}

static const char *req_id(const struct chain_call *cc)
{
    return cc->outer->req->id;
}

static void copy_msg(char *dst, size_t cap, struct sb_str s)
{
    size_t n = SB_MIN(s.len, cap - 1);
    /* Never end inside a UTF-8 sequence: back up over continuation bytes to its start. */
    if (n < s.len)
        while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
            n--;
    if (n > 0)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Small steps of a call's life
 * ------------------------------------------------------------------------------------------- */
static const char *const state_names[] = {
    [CC_WAITING] = "waiting",
    [CC_RUNNING] = "running",
    [CC_STREAMING] = "streaming",
    [CC_ENDING] = "ending",
};

/* The only place a call's state changes. */
static void cc_set_state(struct chain_call *cc, enum cc_state to)
{
    if (sb_log_get_level() <= SB_LOG_DEBUG)
        sb_log(SB_LOG_DEBUG, req_id(cc), "chain %s: %s -> %s (member %zu, attempt %d)",
               cc->ch->name, state_names[cc->state], state_names[to], cc->idx, (int)cc->attempts);
    cc->state = to;
}

/* Runs the timer callback after delay_ms (0 = on the loop's next turn). */
static void cc_arm(struct chain_call *cc, uint32_t delay_ms)
{
    cc_set_state(cc, CC_WAITING);
    event_del(cc->timer);
    struct timeval tv = {(time_t)(delay_ms / 1000), (suseconds_t)(delay_ms % 1000) * 1000};
    if (delay_ms == 0 || evtimer_add(cc->timer, &tv) != 0)
        event_active(cc->timer, EV_TIMEOUT, 1); /* cannot fail; a failed add retries at once */
}

/* Tells the current member's breaker how its try went, once. */
static void cc_settle(struct chain_call *cc, enum sb_breaker_outcome outcome)
{
    struct member *m = cc->idx < cc->ch->n ? &cc->ch->m[cc->idx] : NULL;
    if (m != NULL && m->breaker != NULL)
        sb_breaker_release(m->breaker, &cc->ticket, outcome);
}

static void cc_free(struct chain_call *cc)
{
    if (cc->timer != NULL)
        event_free(cc->timer);
    sb_buf_free(&cc->trace);
    free(cc);
}

/* The owner's on_done; cc is gone afterwards. */
static void cc_end(struct chain_call *cc)
{
    struct sb_call *outer = cc->outer;
    cc_set_state(cc, CC_ENDING);
    cc_settle(cc, SB_BREAKER_NEUTRAL);
    outer->backend_data = NULL;
    cc_free(cc);
    outer->on_done(outer);
}

static void trace_sep(struct chain_call *cc)
{
    if (cc->trace.len > 0)
        sb_buf_append_c(&cc->trace, "; ");
}

/* Appends what the tries of the current member came to. Output stops silently at TRACE_MAX. */
static void trace_tried(struct chain_call *cc)
{
    const struct sb_retry_class *cls = sb_retry_classify(cc->err_code, cc->err_status);
    trace_sep(cc);
    sb_buf_printf(&cc->trace, "%s: %d %s, last %s (%d)", cc->ch->m[cc->idx].name, (int)cc->tries,
                  cc->tries == 1 ? "try" : "tries", cls->name, cc->err_status);
}

/* Remembers a failure of members[idx] (the last one is what the final error reports). */
static void cc_note_error(struct chain_call *cc, int code, int status, bool retryable,
                          uint32_t retry_after_ms, struct sb_str message, bool from_start)
{
    cc->err_code = code;
    cc->err_status = status;
    cc->err_retryable = retryable;
    cc->err_retry_after_ms = retry_after_ms;
    cc->err_from_start = from_start;
    copy_msg(cc->err_msg, sizeof cc->err_msg, message);
    cc->err_param[0] = '\0';
    sb_log(SB_LOG_WARN, req_id(cc), "chain %s: backend %s failed (try %d): %s", cc->ch->name,
           cc->ch->m[cc->idx].name, (int)cc->tries, cc->err_msg);
}

/* Adds members[idx] to the members tried, on its first try; a name that does not fit is left
 * out (with the ones after it). */
static void cc_note_tried(struct chain_call *cc)
{
    const char *name = cc->ch->m[cc->idx].name;
    size_t len = strlen(cc->tried), add = strlen(name) + (len > 0 ? 1 : 0);
    if (cc->tries != 1 || len + add >= sizeof cc->tried)
        return;
    snprintf(cc->tried + len, sizeof cc->tried - len, "%s%s", len > 0 ? "," : "", name);
}

/* Leaves members[idx] for the next one. */
static void cc_move_on(struct chain_call *cc)
{
    struct member *m = &cc->ch->m[cc->idx];
    if (cc->tries > 0)
        trace_tried(cc);
    if (m->moved != NULL) {
        sb_metrics_add(m->moved, 1);
        sb_log(SB_LOG_INFO, req_id(cc), "chain %s: falling back from %s to %s", cc->ch->name,
               m->name, cc->ch->m[cc->idx + 1].name);
    }
    cc->idx++;
    cc->tries = 0;
    sb_retry_budget_next_backend(&cc->budget);
}

/* ---------------------------------------------------------------------------------------------
 * Skipping: the prompt against a member's context window
 * ------------------------------------------------------------------------------------------- */
/* Bytes of the request's text: what a remote member would tokenize. */
static size_t content_bytes(const struct sb_request *req)
{
    size_t n = req->prompt.len;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct sb_message *msg = &req->messages[i];
        for (size_t j = 0; j < msg->n_parts; j++)
            n += msg->parts[j].text.len;
        for (size_t j = 0; j < msg->n_tool_calls; j++)
            n += msg->tool_calls[j].name.len + msg->tool_calls[j].arguments.len;
        n += msg->tool_call_id.len + msg->name.len;
    }
    for (size_t i = 0; i < req->n_tools; i++)
        n += req->tools[i].name.len + req->tools[i].description.len + req->tools[i].parameters.len;
    return n;
}

/* Tokens the member needs for the prompt, its own count when it can tell. */
static int64_t tokens_needed(struct sb_backend *b, const struct sb_request *req, int64_t n_ctx)
{
    const struct sb_backend_ops *ops = b->ops;
    size_t bytes = content_bytes(req);
    if (ops->render_prompt == NULL || ops->count_tokens == NULL)
        return (int64_t)((bytes + 3) / 4); /* the common rule of thumb: ~4 bytes a token */
    /* A token covers at least one byte, so a prompt this short surely fits: no need to render. */
    size_t slack = TEMPLATE_BYTES_BASE + TEMPLATE_BYTES_PER_MESSAGE * req->n_messages;
    if ((int64_t)(bytes + slack) + 2 <= n_ctx)
        return (int64_t)(bytes + slack) + 2;
    struct sb_buf text;
    sb_buf_init(&text, RENDER_MAX);
    int64_t n = 0;
    int rc = ops->render_prompt(b, req, &text);
    if (rc == 0)
        rc = ops->count_tokens(b, sb_buf_view(&text), &n);
    sb_buf_free(&text);
    if (rc != 0)
        return 0; /* it cannot tell: let the member decide */
    return n + 2; /* its BOS, and room for the first generated token */
}

/* True when members[idx] may be tried; else notes why it is skipped. */
static bool cc_fits(struct chain_call *cc)
{
    struct member *m = &cc->ch->m[cc->idx];
    const struct sb_request *req = cc->outer->req;
    struct sb_backend_info info;
    sb_backend_info(m->backend, &info);
    if (info.n_ctx <= 0 || req->kind == SB_REQ_EMBED)
        return true;
    int64_t need = tokens_needed(m->backend, req, info.n_ctx);
    if (need <= info.n_ctx)
        return true;
    cc->n_skipped++;
    trace_sep(cc);
    sb_buf_printf(&cc->trace, "%s: skipped, context window %lld tokens < ~%lld needed", m->name,
                  (long long)info.n_ctx, (long long)need);
    sb_log(SB_LOG_INFO, req_id(cc), "chain %s: skipping %s: ~%lld prompt tokens, context %lld",
           cc->ch->name, m->name, (long long)need, (long long)info.n_ctx);
    return false;
}

/* True when members[idx]'s breaker admits a try (cc->ticket then holds it). */
static bool cc_admitted(struct chain_call *cc)
{
    struct member *m = &cc->ch->m[cc->idx];
    if (m->breaker == NULL || sb_breaker_acquire(m->breaker, &cc->ticket))
        return true;
    struct sb_breaker_stats st;
    sb_breaker_stats(m->breaker, &st);
    uint32_t wait = st.retry_in_ms > 0 ? st.retry_in_ms : 1;
    if (!cc->skipped_breaker || wait < cc->breaker_wait_ms)
        cc->breaker_wait_ms = wait;
    cc->skipped_breaker = true;
    cc->n_skipped++;
    if (cc->tries > 0)
        trace_tried(cc);
    trace_sep(cc);
    sb_buf_printf(&cc->trace, "%s: skipped, circuit breaker %s", m->name,
                  sb_breaker_state_name(st.state));
    sb_log(SB_LOG_INFO, req_id(cc), "chain %s: skipping %s: circuit breaker %s", cc->ch->name,
           m->name, sb_breaker_state_name(st.state));
    cc->tries = 0; /* already traced */
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------------------------- */
enum next { NEXT_RETRY, NEXT_MEMBER, NEXT_FINAL };

/* After a failure of members[idx] before START: settles its breaker and says what comes next. */
static enum next cc_decide(struct chain_call *cc, uint32_t *delay_ms)
{
    struct member *m = &cc->ch->m[cc->idx];
    const struct sb_retry_class *cls = sb_retry_classify(cc->err_code, cc->err_status);
    cc_settle(cc, cls->breaker);
    *delay_ms = 0;
    if (cls->retry && cc->err_retryable &&
        sb_retry_next(&m->retry, &cc->budget, now_ms(), cc->err_retry_after_ms, &cc->rng,
                      delay_ms)) {
        sb_metrics_add(m->retries, 1);
        sb_log(SB_LOG_INFO, req_id(cc), "chain %s: retrying %s (%s) in %u ms", cc->ch->name,
               m->name, cls->name, (unsigned)*delay_ms);
        return NEXT_RETRY;
    }
    if (cls->fallback && cc->idx + 1 < cc->ch->n)
        return NEXT_MEMBER;
    return NEXT_FINAL;
}

/* The one ERROR that ends a call no member served, then on_done. */
static void cc_finish(struct chain_call *cc)
{
    struct sb_buf msg;
    sb_buf_init(&msg, FINAL_MSG_MAX);
    cc_set_state(cc, CC_ENDING);
    if (cc->idx < cc->ch->n && cc->tries > 0)
        trace_tried(cc);
    struct sb_event ev = {.type = SB_EV_ERROR};
    if (cc->attempts == 0 && cc->skipped_breaker) {
        ev.error.code = SB_EBACKEND;
        ev.error.http_status = 503;
        ev.error.retryable = true;
        ev.error.retry_after_ms = cc->breaker_wait_ms;
        sb_buf_printf(&msg, "model %s: no backend is available right now (%s)", cc->ch->name,
                      cc->trace.p != NULL ? cc->trace.p : "");
    } else if (cc->attempts == 0) {
        ev.error.code = SB_ECONTEXT;
        ev.error.http_status = 400;
        sb_buf_printf(&msg,
                      "model %s: the prompt does not fit the context window of any backend (%s)",
                      cc->ch->name, cc->trace.p != NULL ? cc->trace.p : "");
    } else {
        ev.error.code = cc->err_code;
        ev.error.http_status = cc->err_status != 0
                                   ? cc->err_status
                                   : sb_retry_classify(cc->err_code, cc->err_status)->status;
        ev.error.retryable = cc->err_retryable;
        ev.error.retry_after_ms = cc->err_retry_after_ms;
        ev.error.tried = sb_str_c(cc->tried);
        ev.error.param = sb_str_c(cc->err_param);
        if (cc->attempts == 1 && cc->n_skipped == 0)
            sb_buf_append_c(&msg, cc->err_msg); /* a chain of one says what its member said */
        else
            sb_buf_printf(&msg, "%s (model %s tried %s)", cc->err_msg, cc->ch->name,
                          cc->trace.p != NULL ? cc->trace.p : "");
    }
    ev.error.message = sb_buf_view(&msg);
    if (!cc->canceled)
        cc->outer->on_event(cc->outer, &ev);
    sb_buf_free(&msg);
    cc_end(cc);
}

static void inner_event(struct sb_call *inner, const struct sb_event *ev);
static void inner_done(struct sb_call *inner);

/* Tries members from idx on until one starts, a retry is scheduled, or none is left. in_start:
 * called from start(), where nothing may be delivered. Returns 0, or (from start() only) the
 * code of a single member's refusal, in which case nothing will be called. */
static int cc_advance(struct chain_call *cc, bool in_start)
{
    struct chain *ch = cc->ch;
    while (cc->idx < ch->n) {
        struct member *m = &ch->m[cc->idx];
        if ((cc->tries == 0 && !cc_fits(cc)) || !cc_admitted(cc)) {
            cc_move_on(cc);
            continue;
        }
        cc->attempts++;
        cc->tries++;
        cc_note_tried(cc);
        cc->inner_failed = false;
        cc->inner = (struct sb_call){0};
        cc->inner.req = m->req != NULL ? m->req : cc->outer->req;
        cc->inner.base = cc->outer->base;
        cc->inner.upstream = cc->outer->upstream;
        cc->inner.on_event = inner_event;
        cc->inner.on_done = inner_done;
        cc->inner.ud = cc;
        cc_set_state(cc, CC_RUNNING);
        int rc = sb_backend_start(m->backend, &cc->inner);
        if (rc == 0)
            return 0;
        const struct sb_retry_class *cls = sb_retry_classify(rc, 0);
        cc_note_error(cc, rc, cls->status, cls->retry, 0, sb_str_c(sb_strerror(rc)), true);
        uint32_t delay;
        enum next next = cc_decide(cc, &delay);
        if (next == NEXT_RETRY) {
            cc_arm(cc, delay);
            return 0;
        }
        if (next == NEXT_FINAL)
            break;
        cc_move_on(cc);
    }
    if (in_start && cc->attempts == 1 && cc->n_skipped == 0 && cc->err_from_start)
        return cc->err_code;
    if (in_start) {
        cc->final = true;
        cc_arm(cc, 0);
        return 0;
    }
    cc_finish(cc);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Callbacks: the inner call's events and end, and the timer
 * ------------------------------------------------------------------------------------------- */
/* Before START: an ERROR is kept (the decision waits for on_done); anything else commits the
 * chain to the member. After it, events pass through as they are. */
static void inner_event(struct sb_call *inner, const struct sb_event *ev)
{
    struct chain_call *cc = inner->ud;
    if (cc->canceled || cc->inner_failed)
        return;
    if (cc->state == CC_RUNNING) {
        if (ev->type == SB_EV_ERROR) {
            cc->inner_failed = true;
            cc_note_error(cc, ev->error.code, ev->error.http_status, ev->error.retryable,
                          ev->error.retry_after_ms, ev->error.message, false);
            copy_msg(cc->err_param, sizeof cc->err_param, ev->error.param);
            return;
        }
        struct member *m = &cc->ch->m[cc->idx];
        cc_settle(cc, SB_BREAKER_SUCCESS);
        cc_set_state(cc, CC_STREAMING);
        if (cc->attempts > 1)
            sb_log(SB_LOG_INFO, req_id(cc), "chain %s: served by %s after %d tries", cc->ch->name,
                   m->name, (int)cc->attempts);
        /* A backend that broke the contract with another first event still gets a START. */
        struct sb_event start = {.type = SB_EV_START};
        if (ev->type == SB_EV_START)
            start = *ev;
        start.start.backend = sb_str_c(m->name);
        start.start.attempts = cc->attempts;
        start.start.tried = sb_str_c(cc->tried);
        cc->outer->on_event(cc->outer, &start);
        if (ev->type == SB_EV_START || cc->canceled)
            return;
    }
    if (cc->state == CC_STREAMING)
        cc->outer->on_event(cc->outer, ev);
}

static void inner_done(struct sb_call *inner)
{
    struct chain_call *cc = inner->ud;
    if (cc->canceled || cc->state == CC_STREAMING) {
        cc_end(cc);
        return;
    }
    if (!cc->inner_failed)
        cc_note_error(cc, SB_EUPSTREAM, 502, false, 0,
                      SB_STR_LIT("the backend ended the stream without a result"), false);
    /* Never start the next try from inside a member's on_done: the timer does, on a fresh turn
     * of the loop. The final error needs no such care. */
    uint32_t delay;
    switch (cc_decide(cc, &delay)) {
    case NEXT_RETRY: cc_arm(cc, delay); break;
    case NEXT_MEMBER:
        cc_move_on(cc);
        cc_arm(cc, 0);
        break;
    case NEXT_FINAL: cc_finish(cc); break;
    }
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct chain_call *cc = arg;
    SB_UNUSED(fd);
    SB_UNUSED(what);
    if (cc->canceled)
        cc_end(cc);
    else if (cc->final)
        cc_finish(cc);
    else
        cc_advance(cc, false);
}

/* ---------------------------------------------------------------------------------------------
 * Operations
 * ------------------------------------------------------------------------------------------- */
static int chain_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                        size_t err_size)
{
    *out = NULL;
    snprintf(err, err_size,
             "model %s: a chain is built from other models (fallback:), not configured as a "
             "backend kind",
             cfg != NULL && cfg->name != NULL ? cfg->name : "?");
    return SB_EUNSUPPORTED;
}

static int chain_start(struct sb_backend *b, struct sb_call *call)
{
    struct chain *ch = (struct chain *)b;
    if (call == NULL || call->req == NULL || call->base == NULL || call->on_event == NULL ||
        call->on_done == NULL)
        return SB_EINVAL;
    struct chain_call *cc = calloc(1, sizeof *cc);
    if (cc == NULL)
        return SB_ENOMEM;
    cc->ch = ch;
    cc->outer = call;
    sb_buf_init(&cc->trace, TRACE_MAX);
    cc->timer = evtimer_new(call->base, on_timer, cc);
    if (cc->timer == NULL) {
        cc_free(cc);
        return SB_ENOMEM;
    }
    sb_retry_budget_init(&cc->budget, now_ms(), ch->budget_ms);
    uint64_t seq = atomic_fetch_add_explicit(&ch->seq, 1, memory_order_relaxed);
    sb_rng_seed(&cc->rng, sb_now_ns() ^ (seq * 0x9E3779B97F4A7C15u) ^ (uint64_t)(uintptr_t)cc);
    call->backend_data = cc;
    int rc = cc_advance(cc, true);
    if (rc != 0) {
        call->backend_data = NULL;
        cc_free(cc);
    }
    return rc;
}

static void chain_cancel(struct sb_backend *b, struct sb_call *call)
{
    struct chain_call *cc = call->backend_data;
    SB_UNUSED(b);
    if (cc == NULL || cc->canceled)
        return;
    cc->canceled = true;
    switch (cc->state) {
    case CC_WAITING:
        cc->final = false;
        cc_arm(cc, 0); /* on_done from the loop, never from inside cancel */
        break;
    case CC_RUNNING:
    case CC_STREAMING: sb_backend_cancel(cc->ch->m[cc->idx].backend, &cc->inner); break;
    case CC_ENDING: break;
    }
}

static void chain_info(const struct sb_backend *b, struct sb_backend_info *out)
{
    const struct chain *ch = (const struct chain *)b;
    sb_backend_info(ch->m[0].backend, out);
    out->name = ch->name;
    for (size_t i = 1; i < ch->n; i++) {
        struct sb_backend_info mi;
        sb_backend_info(ch->m[i].backend, &mi);
        out->ready = out->ready || mi.ready;
        out->n_ctx = out->n_ctx > 0 && mi.n_ctx > 0 ? SB_MAX(out->n_ctx, mi.n_ctx) : 0;
    }
}

static int chain_count_tokens(struct sb_backend *b, struct sb_str text, int64_t *out)
{
    struct sb_backend *first = ((struct chain *)b)->m[0].backend;
    if (first->ops->count_tokens == NULL)
        return SB_EUNSUPPORTED;
    return first->ops->count_tokens(first, text, out);
}

static int chain_tokenize(struct sb_backend *b, struct sb_str text, bool add_special,
                          int32_t **tokens, size_t *n)
{
    struct sb_backend *first = ((struct chain *)b)->m[0].backend;
    if (first->ops->tokenize == NULL)
        return SB_EUNSUPPORTED;
    return first->ops->tokenize(first, text, add_special, tokens, n);
}

static int chain_render_prompt(struct sb_backend *b, const struct sb_request *req,
                               struct sb_buf *out)
{
    struct sb_backend *first = ((struct chain *)b)->m[0].backend;
    if (first->ops->render_prompt == NULL)
        return SB_EUNSUPPORTED;
    return first->ops->render_prompt(first, req, out);
}

static void chain_free(struct sb_backend *b)
{
    struct chain *ch = (struct chain *)b;
    for (size_t i = 0; ch->m != NULL && i < ch->n; i++)
        free(ch->m[i].name);
    free(ch->m);
    free(ch->name);
    free(ch);
}

const struct sb_backend_ops sb_chain_backend_ops = {
    .kind = "chain",
    .create = chain_create,
    .start = chain_start,
    .cancel = chain_cancel,
    .info = chain_info,
    .count_tokens = chain_count_tokens,
    .tokenize = chain_tokenize,
    .render_prompt = chain_render_prompt,
    .free = chain_free,
};

int sb_chain_new(const char *name, const struct sb_chain_member *members, size_t n,
                 uint32_t budget_ms, struct sb_backend **out)
{
    *out = NULL;
    if (name == NULL || members == NULL || n == 0)
        return SB_EINVAL;
    for (size_t i = 0; i < n; i++)
        if (members[i].backend == NULL)
            return SB_EINVAL;
    struct chain *ch = calloc(1, sizeof *ch);
    if (ch == NULL)
        return SB_ENOMEM;
    ch->base.ops = &sb_chain_backend_ops;
    ch->budget_ms = budget_ms != 0 ? budget_ms : SB_RESIL_DEFAULT_BUDGET_MS;
    atomic_init(&ch->seq, 0);
    ch->name = strdup(name);
    ch->m = calloc(n, sizeof *ch->m);
    if (ch->name == NULL || ch->m == NULL)
        goto fail;
    ch->n = n;
    for (size_t i = 0; i < n; i++) {
        struct member *m = &ch->m[i];
        struct sb_backend_info info;
        sb_backend_info(members[i].backend, &info);
        const char *mname = members[i].name != NULL ? members[i].name : info.name;
        m->backend = members[i].backend;
        m->breaker = members[i].breaker;
        m->retry = members[i].retry;
        m->req = members[i].req;
        m->name = strdup(mname != NULL ? mname : "?");
        if (m->name == NULL)
            goto fail;
    }
    /* Label values come from configuration, so resolving each series once here is bounded. */
    for (size_t i = 0; i < n; i++) {
        const char *const backend[] = {ch->m[i].name};
        ch->m[i].retries = sb_metrics_series(SB_METRIC_RETRIES, backend);
        if (i + 1 < n) {
            const char *const hop[] = {ch->m[i].name, ch->m[i + 1].name};
            ch->m[i].moved = sb_metrics_series(SB_METRIC_FALLBACKS, hop);
        }
    }
    *out = &ch->base;
    return 0;
fail:
    chain_free(&ch->base);
    return SB_ENOMEM;
}
