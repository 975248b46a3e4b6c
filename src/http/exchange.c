/* One model call from the client's side: the body parsed by the route's codec, the model found,
 * the request routed by policy (route/route.h: scanned for PII, decided, denied or pseudonymized
 * for the cloud members of a chain built for it), the backend started, and each event it sends
 * rendered by the codec onto the client's connection, streamed or whole, until both the response is
 * handed over and the backend is done; then it is metered (meter.c) as one ledger row and its
 * metrics. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

/* Where the response stands, from the client's side. */
enum x_state {
    X_WAITING,   /* nothing sent: an error can still be a plain error response */
    X_STREAMING, /* status and headers sent; chunks follow */
    X_ENDED,     /* handed over to libevent (or the client left): nothing more is sent */
};

struct sb__exchange {
    struct sb__loop *loop;
    struct sb__exchange *prev, *next;
    struct evhttp_request *ev; /* libevent's; NULL once the response is handed over */
    struct sb__conn *conn;     /* NULL once detached (handed over, or the client left) */
    const struct sb__route *route;
    struct sb_backend *backend; /* the routed chain (owned, see chain) or the model's own chain */
    struct sb_backend *chain;   /* owned: the chain built from the decision; NULL = not routed */
    const char *model;          /* the configured name (the served one after START); the config's */
    struct sb_arena *arena;     /* owned: the body, the parsed request, the renderer */
    struct sb_request req;
    struct sb_call call;
    void *render; /* the codec's renderer state, in the arena */
    struct sb_buf out;
    /* Routing. The map and the pseudonymized copy live in the arena: never logged or stored. */
    bool routed; /* decision holds a decision (served or denied) */
    struct sb_route_decision decision;
    struct sb_pii_counts pii;
    struct sb_request pseudo;           /* what the cloud members are sent */
    struct sb_privacy_map *map;         /* NULL = nothing was replaced */
    bool restore;                       /* the member that serves got the copy: restore output */
    struct sb_privacy_restorer text_r;  /* the text stream's */
    struct sb_privacy_restorer *tool_r; /* per tool-call index, in the arena */
    size_t n_tool_r;
    struct sb_buf restored;   /* a restored delta, while its event is rendered */
    struct sb_buf completion; /* the text the client was sent, when content logging is on */
    struct sb__meter meter;
    struct sb__quota quota; /* the caller's key, rate-limit ticket and budget hold (quota.c) */
    const struct sb__meter_series *series; /* the served (model, backend)'s, from START */
    size_t asked, served;                  /* model indexes; sb__server_n_models() = none */
    char served_model[128];                /* START's model name, cut to fit */
    enum x_state state;
    int status;       /* what the client was told; 499 when it left first (nginx's convention) */
    const char *note; /* static; for the log line */
    unsigned method;
    uint64_t t0;
    bool render_ready; /* render_init succeeded: render_deinit is owed */
    bool started;      /* the backend accepted the call: on_done is owed */
    bool backend_done;
    bool cancel_sent;
    bool metered;      /* the ledger row and metrics are done */
    uint64_t event_t0; /* when handling the current backend event began; 0 outside one */
    char id[40];
};

static const char json_type[] = "application/json; charset=utf-8";

struct sb__exchange *sb__exchange_next(const struct sb__exchange *x)
{
    return x->next;
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------------- */
static void exchange_free(struct sb__exchange *x)
{
    const struct sb_codec *codec = x->route->codec;

    if (x->render_ready && codec->render_deinit != NULL)
        codec->render_deinit(x->render);
    sb_buf_free(&x->out);
    sb_buf_free(&x->restored);
    sb_buf_free(&x->completion);
    /* After on_done: the chain's call is over (it calls on_done last). */
    if (x->chain != NULL)
        sb_backend_free(x->chain);
    sb_arena_free(x->arena);
    free(x);
}

/* The response is over for the client: the request's ledger row and metrics, once. Done when
 * the response is handed over rather than when the backend is done, so that a client that has
 * read a whole response finds it in /metrics (and the row queued for the ledger). */
static void exchange_meter(struct sb__exchange *x)
{
    if (x->metered)
        return;
    x->metered = true;
    /* Inside an event's handling: what it took so far counts; on_event adds the rest. */
    if (x->event_t0 != 0) {
        uint64_t now = sb_now_ns();
        x->meter.handling_ns += now - x->event_t0;
        x->event_t0 = now;
    }
    x->meter.status = x->status;
    if (x->meter.content)
        x->meter.completion = sb_buf_view(&x->completion);
    int64_t cost = sb__meter_record(x->loop->server, &x->meter, x->asked, x->served);
    /* What the request really used replaces what its admission assumed. */
    sb__quota_settle(x->loop->server, &x->quota, &x->meter, cost);
}

/* Both sides are finished: meter and log the request, unlink and free it. */
static void exchange_finish(struct sb__exchange *x)
{
    struct sb__loop *loop = x->loop;

    if (x->status == 499)
        x->note = "(the client closed the connection)";
    exchange_meter(x); /* already done unless the response never ended (a bug elsewhere) */
    sb__log_request(x->id, x->method, x->route->path, x->status, x->model, x->t0,
                    x->meter.have_usage ? &x->meter.usage : NULL, x->req.stream, x->note);
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        loop->exchanges = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    loop->n_exchanges--;
    exchange_free(x);
    sb__loop_check_drained(loop);
}

/* Asks the backend to stop, once. Must be the caller's last touch of x: a backend may finish the
 * call (on_done frees x) before cancel returns. */
static void exchange_cancel(struct sb__exchange *x)
{
    if (!x->started || x->backend_done || x->cancel_sent)
        return;
    x->cancel_sent = true;
    sb_backend_cancel(x->backend, &x->call);
}

/* Before the last send: stop watching the connection and let its close callback forget us. The
 * connection pointer stays set for that send, which must know the bytes are ours. */
static void exchange_detach(struct sb__exchange *x)
{
    if (x->conn == NULL)
        return;
    sb__conn_unwatch(x->conn);
    x->conn->exchange = NULL;
}

/* x->status must be final before this: the request is metered here. */
static void exchange_handed_over(struct sb__exchange *x)
{
    if (x->meter.t_end == 0)
        x->meter.t_end = sb_now_ns();
    x->state = X_ENDED;
    x->ev = NULL;
    x->conn = NULL;
    exchange_meter(x);
}

/* The client has gone (seen at a send): nothing more is sent, and the call stops. */
static void exchange_lost(struct sb__exchange *x)
{
    exchange_detach(x);
    x->status = 499;
    exchange_handed_over(x);
}

/* ---------------------------------------------------------------------------------------------
 * Answering
 * ------------------------------------------------------------------------------------------- */
/* x-switchboard-route: the decision, and the model that serves once START has named it (served
 * may be NULL). */
static void add_route_header(struct sb__exchange *x, struct evhttp_request *ev, const char *served)
{
    struct sb_buf v;

    if (!x->routed || ev == NULL)
        return;
    sb_buf_init(&v, 4096);
    if (sb_route_write_header(&x->decision, sb_str_c(served), &v) == 0 &&
        sb_buf_append_char(&v, '\0') == 0)
        evhttp_add_header(evhttp_request_get_output_headers(ev), "x-switchboard-route", v.p);
    sb_buf_free(&v);
}

/* x-switchboard-attempts beside x-switchboard-backend, once START has said how many tries it
 * took, and x-switchboard-route. Before the response's first send, while x->ev is ours. */
static void add_attempts_header(struct sb__exchange *x)
{
    char n[16];

    if (x->ev == NULL)
        return;
    add_route_header(x, x->ev, x->meter.have_start ? x->model : NULL);
    if (!x->meter.have_start)
        return;
    snprintf(n, sizeof(n), "%d", (int)SB_MAX(x->meter.attempts, 1));
    evhttp_add_header(evhttp_request_get_output_headers(x->ev), "x-switchboard-attempts", n);
}

/* A whole error response in the route's codec shape; hands the request over. */
static void send_error(struct sb__exchange *x, const struct sb_api_error *err)
{
    struct sb_buf body;
    struct sb__conn *conn = x->conn;

    sb_buf_init(&body, SB__MAX_SMALL_REPLY_BYTES);
    if (x->route->codec->write_error(err, &body) != 0)
        sb_buf_reset(&body);
    x->status = err->http_status >= 400 && err->http_status <= 599 ? err->http_status : 500;
    add_attempts_header(x);
    exchange_detach(x);
    if (!sb__send_reply(x->loop, conn, x->ev, x->status, json_type, sb_buf_view(&body), x->id,
                        x->model))
        x->status = 499;
    exchange_handed_over(x);
    sb_buf_free(&body);
}

/* Ends a started stream with an error event rendered by the codec (its closing bytes included). */
static void end_stream_with_error(struct sb__exchange *x, int code, int http_status,
                                  const char *message)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    struct sb__conn *conn = x->conn;

    ev.error.code = code;
    ev.error.http_status = http_status;
    ev.error.message = sb_str_c(message);
    x->note = "(the stream ended with an error event)";
    sb_buf_reset(&x->out);
    if (x->route->codec->render_event(x->render, &ev, &x->out) == 0 &&
        !sb__send_stream_chunk(conn, x->ev, sb_buf_view(&x->out))) {
        exchange_lost(x);
        return;
    }
    exchange_detach(x);
    sb__send_stream_end(conn, x->ev);
    exchange_handed_over(x);
}

/* The response cannot go on (the renderer failed, the backend broke its contract, the server is
 * stopping): tell the client as well as the state allows. */
static void fail_response(struct sb__exchange *x, int code, int http_status, const char *message)
{
    struct sb_api_error err;
    struct sb_event ev = {.type = SB_EV_ERROR};

    sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, code, http_status);
    if (x->state == X_STREAMING) {
        end_stream_with_error(x, code, http_status, message);
    } else if (x->state == X_WAITING) {
        ev.error.code = code;
        ev.error.http_status = http_status;
        ev.error.message = sb_str_c(message);
        sb_api_error_from_event(&ev, &err);
        send_error(x, &err);
    }
}

/* Each of these handles one event and returns true when the call must be cancelled, which the
 * caller does last (a cancel may free x). */
static bool on_stream_event(struct sb__exchange *x, const struct sb_event *ev)
{
    const struct sb_codec *codec = x->route->codec;
    bool last = ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR;
    struct sb__conn *conn = x->conn;
    struct sb_api_error err;

    if (x->state == X_WAITING) {
        /* Nothing sent yet: an error is still a real error status, not a 200 stream. */
        if (ev->type == SB_EV_ERROR) {
            sb_api_error_from_event(ev, &err);
            send_error(x, &err);
            return false;
        }
        add_attempts_header(x);
        if (!sb__send_stream_start(x->loop, conn, x->ev, codec->stream_content_type, x->id,
                                   x->model)) {
            exchange_lost(x);
            return true;
        }
        x->state = X_STREAMING;
        x->status = 200;
    }
    sb_buf_reset(&x->out);
    if (codec->render_event(x->render, ev, &x->out) != 0) {
        sb_log(SB_LOG_ERROR, x->id, "rendering a %s event failed; ending the stream",
               sb_event_type_name(ev->type));
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, SB_ENOMEM, 500);
        end_stream_with_error(x, SB_ENOMEM, 500, "The server could not render the response.");
        return true;
    }
    if (!sb__send_stream_chunk(conn, x->ev, sb_buf_view(&x->out))) {
        exchange_lost(x);
        return true;
    }
    if (last) {
        if (ev->type == SB_EV_ERROR)
            x->note = "(the stream ended with an error event)";
        exchange_detach(x);
        sb__send_stream_end(conn, x->ev);
        exchange_handed_over(x);
    }
    return false;
}

static bool on_whole_event(struct sb__exchange *x, const struct sb_event *ev)
{
    const struct sb_codec *codec = x->route->codec;
    struct sb__conn *conn = x->conn;
    struct sb_api_error err;
    char *body;
    size_t len;

    if (ev->type == SB_EV_ERROR) {
        sb_api_error_from_event(ev, &err);
        send_error(x, &err);
        return false;
    }
    if (codec->render_event(x->render, ev, &x->out) != 0) {
        sb_log(SB_LOG_ERROR, x->id, "rendering a %s event failed", sb_event_type_name(ev->type));
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, SB_ENOMEM, 500);
        sb_api_fail(&err, 500, "server_error", NULL, NULL,
                    "The server could not build the response (it may be too large).");
        send_error(x, &err);
        return true;
    }
    if (ev->type != SB_EV_FINISH)
        return false;
    len = x->out.len;
    body = sb_buf_steal(&x->out);
    if (body == NULL) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, SB_ENOMEM, 500);
        sb_api_fail(&err, 500, "server_error", NULL, NULL, "The server ran out of memory.");
        send_error(x, &err);
        return false;
    }
    x->status = 200;
    add_attempts_header(x);
    exchange_detach(x);
    if (!sb__send_reply_owned(x->loop, conn, x->ev, 200, json_type, body, len, x->id, x->model))
        x->status = 499;
    exchange_handed_over(x);
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Backend callbacks (loop thread)
 * ------------------------------------------------------------------------------------------- */
/* START: which configured model serves (after a fallback, another than the one asked, which the
 * header, the log and the metrics then name), and the metric handles for the pair. */
static void note_start(struct sb__exchange *x, const struct sb_event *ev)
{
    struct sb_server *s = x->loop->server;
    size_t i = ev->start.backend.len != 0 ? sb__server_model_index(s, ev->start.backend)
                                          : sb__server_n_models(s);
    size_t n = SB_MIN(ev->start.model.len, sizeof(x->served_model) - 1);

    x->served = i < sb__server_n_models(s) ? i : x->asked;
    if (x->served < sb__server_n_models(s))
        x->model = s->cfg->models[x->served].name;
    x->meter.backend = x->model;
    if (n != 0) {
        memcpy(x->served_model, ev->start.model.p, n);
        x->served_model[n] = '\0';
        x->meter.served_model = x->served_model;
    }
    x->series = sb__meter_series(s, x->asked, x->served);
    /* Only a cloud member was sent the pseudonymized copy; a local one answers the original. */
    x->restore = x->map != NULL && x->served < sb__server_n_models(s) &&
                 !sb_route_is_local(s->router, x->served);
}

/* With content logging on: the text as the client gets it (restored), up to the buffer's
 * maximum. */
static void keep_text(struct sb__exchange *x, const struct sb_event *ev)
{
    struct sb_buf *b = &x->completion;
    if (!x->meter.content || ev->type != SB_EV_TEXT)
        return;
    size_t n = SB_MIN(ev->text.text.len, b->max - b->len);
    if (n > 0)
        sb_buf_append(b, ev->text.text.p, n); /* out of memory: the text stays short */
}

/* Hands one event to the client's side; true when the call must be cancelled. */
static bool deliver(struct sb__exchange *x, const struct sb_event *ev)
{
    keep_text(x, ev);
    return x->req.stream ? on_stream_event(x, ev) : on_whole_event(x, ev);
}

/* The restorer of tool call index (grown in the arena), or NULL when out of memory. */
static struct sb_privacy_restorer *tool_restorer(struct sb__exchange *x, int32_t index)
{
    size_t i = index > 0 ? (size_t)index : 0;

    if (i >= x->n_tool_r) {
        size_t n = SB_MAX(i + 1, 2 * x->n_tool_r);
        struct sb_privacy_restorer *r = sb_arena_alloc(x->arena, n * sizeof(*r));
        if (r == NULL)
            return NULL;
        if (x->n_tool_r != 0)
            memcpy(r, x->tool_r, x->n_tool_r * sizeof(*r));
        for (size_t k = x->n_tool_r; k < n; k++)
            sb_privacy_restorer_init(&r[k], x->map, true);
        x->tool_r = r;
        x->n_tool_r = n;
    }
    return &x->tool_r[i];
}

/* Before FINISH or ERROR: what the restorers held back, as the last TEXT and TOOL_CALL deltas. */
static int flush_restorers(struct sb__exchange *x, bool *cancel)
{
    struct sb_event out = {.type = SB_EV_TEXT};
    int rc;

    sb_buf_reset(&x->restored);
    rc = sb_privacy_restore_flush(&x->text_r, &x->restored);
    if (rc == 0 && x->restored.len != 0) {
        out.text.text = sb_buf_view(&x->restored);
        *cancel = deliver(x, &out);
    }
    for (size_t i = 0; rc == 0 && i < x->n_tool_r && x->state != X_ENDED && !*cancel; i++) {
        sb_buf_reset(&x->restored);
        rc = sb_privacy_restore_flush(&x->tool_r[i], &x->restored);
        if (rc == 0 && x->restored.len != 0) {
            out = (struct sb_event){.type = SB_EV_TOOL_CALL};
            out.tool_call.index = (int32_t)i;
            out.tool_call.arguments = sb_buf_view(&x->restored);
            *cancel = deliver(x, &out);
        }
    }
    return rc;
}

/* The event with the pseudonymized values put back: TEXT and tool-call arguments through their
 * stream's restorer (a placeholder split across deltas is held back until complete), FINISH's
 * stop sequence whole. Returns true when the call must be cancelled. */
static bool deliver_restored(struct sb__exchange *x, const struct sb_event *ev)
{
    struct sb_event out = *ev;
    struct sb_privacy_restorer *r;
    bool cancel = false;
    int rc = 0;

    sb_buf_reset(&x->restored);
    switch (ev->type) {
    case SB_EV_TEXT:
        rc = sb_privacy_restore_feed(&x->text_r, ev->text.text, &x->restored);
        if (rc == 0 && x->restored.len == 0)
            return false; /* all held back */
        out.text.text = sb_buf_view(&x->restored);
        break;
    case SB_EV_TOOL_CALL:
        r = tool_restorer(x, ev->tool_call.index);
        rc = r != NULL ? sb_privacy_restore_feed(r, ev->tool_call.arguments, &x->restored)
                       : SB_ENOMEM;
        if (rc == 0 && x->restored.len == 0 && ev->tool_call.id.len == 0 &&
            ev->tool_call.name.len == 0)
            return false;
        out.tool_call.arguments = sb_buf_view(&x->restored);
        break;
    case SB_EV_FINISH:
    case SB_EV_ERROR:
        rc = flush_restorers(x, &cancel);
        if (cancel || x->state == X_ENDED)
            return cancel;
        if (rc == 0 && ev->type == SB_EV_FINISH && ev->finish.stop_sequence.len != 0) {
            sb_buf_reset(&x->restored);
            rc = sb_privacy_restore(x->map, ev->finish.stop_sequence, false, &x->restored);
            out.finish.stop_sequence = sb_buf_view(&x->restored);
        }
        break;
    default: break;
    }
    if (rc != 0) {
        sb_log(SB_LOG_ERROR, x->id, "restoring a %s event failed", sb_event_type_name(ev->type));
        fail_response(x, rc, 500, "The server could not restore the response.");
        return true;
    }
    return deliver(x, &out);
}

static void on_event(struct sb_call *call, const struct sb_event *ev)
{
    struct sb__exchange *x = call->ud;
    uint64_t now = sb_now_ns();
    uint64_t gap = 0;
    bool cancel = false;

    x->event_t0 = now;
    if (ev->type == SB_EV_START)
        note_start(x, ev);
    /* Inter-token latency is what a streaming client sees between pieces. */
    if (sb__meter_event(&x->meter, ev, now, &gap) && x->req.stream && x->series != NULL)
        sb_metrics_observe(x->series->inter_token, (double)gap / 1e9);
    if (x->state == X_ENDED) {
        x->event_t0 = 0;
        return; /* the client left or was answered; the cancel is on its way */
    }
    cancel = x->restore ? deliver_restored(x, ev) : deliver(x, ev);
    x->meter.handling_ns += sb_now_ns() - x->event_t0;
    x->event_t0 = 0;
    if (cancel)
        exchange_cancel(x);
}

static void on_done(struct sb_call *call)
{
    struct sb__exchange *x = call->ud;

    x->backend_done = true;
    if (x->state != X_ENDED) {
        /* The stream ended without FINISH or ERROR: a backend bug, but the client must not hang. */
        sb_log(SB_LOG_ERROR, x->id, "the backend of model %s ended the call without finishing it",
               x->model);
        sb__meter_fail(&x->meter, SB__ORIGIN_BACKEND, SB_EBACKEND, 502);
        fail_response(x, SB_EBACKEND, 502, "The model backend ended the response unexpectedly.");
    }
    exchange_finish(x);
}

/* ---------------------------------------------------------------------------------------------
 * Entry points
 * ------------------------------------------------------------------------------------------- */
struct start_error {
    int rc;
    int http_status;
    const char *type;
    const char *code;
    const char *message;
};

/* Failures of start() that the event mapping (sb_api_error_from_event) has no words for. */
static const struct start_error start_errors[] = {
    {SB_ESTATE, 503, "server_error", "model_unavailable",
     "The model is not accepting requests right now (it is loading or stopping). Retry shortly."},
    {SB_ENOMEM, 503, "server_error", NULL,
     "The server is out of memory for new requests. Retry shortly."},
};

static void start_failed(struct sb_api_error *err, int rc)
{
    struct sb_event ev = {.type = SB_EV_ERROR};

    for (size_t i = 0; i < SB_ARRAY_LEN(start_errors); i++) {
        const struct start_error *e = &start_errors[i];
        if (e->rc == rc) {
            sb_api_fail(err, e->http_status, e->type, e->code, NULL, "%s", e->message);
            return;
        }
    }
    /* SB_EFULL becomes 429 rate_limit_exceeded (and send_reply adds Retry-After), SB_ECONTEXT
     * 400 context_length_exceeded, anything unknown 500. */
    ev.error.code = rc;
    sb_api_error_from_event(&ev, err);
}

/* The meter's PII counts: {"email":2,"card":1}, kinds that do not fit the field left out. */
static void format_pii_counts(const struct sb_privacy *p, const struct sb_pii_counts *c, char *out,
                              size_t cap)
{
    size_t len = 0;

    out[0] = '\0';
    if (p == NULL || c->total == 0)
        return;
    out[len++] = '{';
    for (uint32_t k = 0; k < sb_privacy_n_kinds(p) && k < SB_PRIVACY_MAX_KINDS; k++) {
        const char *name = sb_privacy_kind_name(p, k);
        if (c->by_kind[k] == 0 || name == NULL)
            continue;
        int n = snprintf(out + len, cap - len, "%s\"%s\":%u", len > 1 ? "," : "", name,
                         (unsigned)c->by_kind[k]);
        if (n < 0 || (size_t)n >= cap - len - 1) {
            out[len] = '\0';
            break;
        }
        len += (size_t)n;
    }
    out[len++] = '}';
    out[len] = '\0';
}

/* The key's sensitivity scope, its rate limits and the budgets, for the decided chain, which a
 * budget may cut down to its local members (the route header then says so). */
static int admit_decided(struct sb__exchange *x, struct evhttp_request *ev,
                         struct sb_api_error *err)
{
    const struct sb_server *s = x->loop->server;
    size_t n = x->decision.n_chain;
    int rc = sb__quota_check_sensitivity(s, &x->quota, x->decision.sensitivity, &x->meter, err);

    if (rc == 0)
        rc = sb__quota_admit(s, &x->quota, &x->req, x->decision.chain, &n, ev, &x->meter, err);
    if (rc == 0 && n != x->decision.n_chain) {
        size_t len = strlen(x->decision.reason);
        x->decision.n_chain = n;
        snprintf(x->decision.reason + len, sizeof(x->decision.reason) - len,
                 "; over budget -> local only");
    }
    return rc;
}

/* Routes the parsed request (route/route.h's order): scan, inputs, decision, pseudonymized copy
 * for the cloud members, and the chain that serves it, which becomes x->backend. Nothing happens
 * without a router. Fills err and returns a negative code when the request is refused. */
static int exchange_route(struct sb__exchange *x, struct evhttp_request *ev,
                          struct sb_api_error *err)
{
    const struct sb_server *s = x->loop->server;
    const struct sb_config *cfg = s->cfg;
    const char *hdr =
        evhttp_find_header(evhttp_request_get_input_headers(ev), "x-switchboard-sensitivity");
    struct sb_chain_member members[SB_ROUTE_MAX_CHAIN];
    struct sb_route_input in;
    const char *bad = NULL;
    int scan_rc = 0;
    int rc;

    if (s->router == NULL)
        return 0;
    if (s->privacy != NULL)
        scan_rc = x->loop->scratch != NULL
                      ? sb_privacy_scan_request(s->privacy, x->loop->scratch, &x->req, &x->pii)
                      : SB_ENOMEM;
    format_pii_counts(s->privacy, &x->pii, x->meter.pii_counts, sizeof(x->meter.pii_counts));
    rc = sb_route_input_from_request(s->router, &x->req, sb_str_c(hdr != NULL ? hdr : ""), &x->pii,
                                     scan_rc, &in, &bad);
    if (rc != 0) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 400);
        return sb_api_fail(err, 400, "invalid_request_error", "invalid_sensitivity", NULL,
                           "Unknown sensitivity in %s: use low, medium or high.",
                           bad != NULL ? bad : "the request");
    }
    in.model = sb_str_c(cfg->models[x->asked].name); /* Ollama's "name:latest" is "name" */
    sb__quota_route_input(s, &x->quota, &in);
    rc = sb_route_decide(s->router, &in, &x->decision);
    x->routed = rc == 0 || rc == SB_EDENIED;
    if (x->routed) {
        x->meter.rule = x->decision.rule;
        x->meter.sensitivity = sb_route_sensitivity_name(x->decision.sensitivity);
        x->meter.reason = x->decision.reason;
    }
    if (rc == SB_EDENIED) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 403);
        return sb_api_fail(err, 403, "permission_error", "policy_denied", NULL,
                           "Denied by routing rule %s: %s", x->decision.rule,
                           x->decision.deny_reason != NULL ? x->decision.deny_reason
                                                           : "the policy forbids this request");
    }
    if (rc != 0) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 500);
        return sb_api_fail(err, 500, "server_error", NULL, NULL, "Routing failed: %s (%s).",
                           sb_strerror(rc), x->decision.reason);
    }
    rc = admit_decided(x, ev, err);
    if (rc != 0)
        return rc;
    if (x->decision.pseudonymize && x->pii.total > 0) {
        /* A copy that fails must not be sent: the request fails instead. */
        rc = sb_privacy_pseudonymize(s->privacy, x->loop->scratch, &x->req, x->arena, &x->pseudo,
                                     &x->map, NULL);
        if (rc != 0) {
            x->map = NULL;
            sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 500);
            return sb_api_fail(err, 500, "server_error", NULL, NULL,
                               "The request could not be pseudonymized (%s); nothing was sent.",
                               sb_strerror(rc));
        }
        sb_privacy_restorer_init(&x->text_r, x->map, false);
    }
    rc = sb_route_chain_members(s->router, &x->decision, NULL, s->resil, members);
    for (int j = 0; j < rc && x->map != NULL; j++) {
        if (!sb_route_is_local(s->router, x->decision.chain[j]))
            members[j].req = &x->pseudo;
    }
    if (rc > 0)
        rc = sb_chain_new(cfg->models[x->asked].name, members, (size_t)rc,
                          cfg->models[x->decision.chain[0]].timeouts.total_ms, &x->chain);
    if (rc != 0) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 500);
        return sb_api_fail(err, 500, "server_error", NULL, NULL,
                           "The server could not build the route's chain: %s.", sb_strerror(rc));
    }
    x->backend = x->chain;
    return 0;
}

/* Parses, resolves and starts; fills err (and notes the failure in the meter) and returns a
 * negative code on failure. */
static int exchange_begin(struct sb__exchange *x, struct evhttp_request *ev,
                          struct sb_api_error *err)
{
    const struct sb_server *s = x->loop->server;
    const struct sb_codec *codec = x->route->codec;
    struct evbuffer *in = evhttp_request_get_input_buffer(ev);
    size_t len = evbuffer_get_length(in);
    char *body;
    int rc;

    /* The body is copied so that the parsed request outlives libevent's request, which is freed
     * when the client leaves while the backend may still read the request. */
    body = sb_arena_alloc(x->arena, len + 1);
    if (body == NULL || evbuffer_copyout(in, body, len) != (ev_ssize_t)len) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, SB_ENOMEM, 413);
        return sb_api_fail(err, 413, "invalid_request_error", "request_too_large", NULL,
                           "The request body could not be held in memory.");
    }
    if (x->meter.content)
        x->meter.prompt_json = (struct sb_str){body, len};
    /* Who is calling comes first: a caller without a valid key learns nothing about the body. */
    rc = sb__quota_authenticate(s, ev, &x->quota, &x->meter, err);
    if (rc != 0)
        return rc;
    /* In case a parse fails without saying why. */
    sb_api_fail(err, 400, "invalid_request_error", NULL, NULL, "The request body is invalid.");
    rc = codec->parse(x->route->kind, x->arena, (struct sb_str){body, len}, &x->req, err);
    if (rc != 0) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, err->http_status);
        return rc;
    }
    memcpy(x->req.id, x->id, sizeof(x->req.id));
    x->meter.model = x->req.model;
    x->meter.streamed = x->req.stream;
    x->asked = sb__server_model_index_for(s, codec->api, x->req.model);
    if (x->asked == sb__server_n_models(s)) {
        sb__server_model_not_found(s, codec->api, x->req.model, err);
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, SB_ENOTFOUND, err->http_status);
        return SB_ENOTFOUND;
    }
    x->backend = s->backends[x->asked];
    x->model = s->cfg->models[x->asked].name;
    rc = sb__quota_check_model(s, &x->quota, x->model, &x->meter, err);
    if (rc == 0)
        rc = exchange_route(x, ev, err);
    if (rc != 0)
        return rc;
    x->render = sb_arena_alloc(x->arena, codec->render_size ? codec->render_size : 1);
    rc = x->render != NULL ? codec->render_init(x->render, &x->req) : SB_ENOMEM;
    x->render_ready = x->render != NULL;
    if (rc != 0) {
        sb__meter_fail(&x->meter, SB__ORIGIN_GATEWAY, rc, 500);
        return sb_api_fail(err, 500, "server_error", NULL, NULL,
                           "The server could not prepare the response: %s.", sb_strerror(rc));
    }
    x->call.req = &x->req;
    x->call.base = x->loop->base;
    x->call.upstream = x->loop->upstream;
    x->call.on_event = on_event;
    x->call.on_done = on_done;
    x->call.ud = x;
    x->meter.tried = x->model;
    rc = sb_backend_start(x->backend, &x->call);
    if (rc != 0) {
        start_failed(err, rc);
        sb__meter_fail(&x->meter, SB__ORIGIN_BACKEND, rc, err->http_status);
        return rc;
    }
    x->meter.t_started = sb_now_ns();
    x->started = true;
    return 0;
}

void sb__exchange_start(struct sb__req *r)
{
    const struct sb_server *s = r->loop->server;
    struct sb_api_error err;
    struct sb__exchange *x = calloc(1, sizeof(*x));
    /* Room for the body, the strings the parse copies out of it, and the structures around them. */
    size_t arena_max = 4 * s->cfg->listen.max_body_bytes + ((size_t)1 << 20);

    if (x == NULL || (x->arena = sb_arena_new(arena_max)) == NULL) {
        free(x);
        sb_api_fail(&err, 503, "server_error", NULL, NULL,
                    "The server is out of memory for new requests. Retry shortly.");
        sb__reply_error(r, &err, NULL);
        return;
    }
    x->loop = r->loop;
    x->route = r->route;
    x->method = r->method;
    x->t0 = r->t0;
    memcpy(x->id, r->id, sizeof(x->id));
    sb_buf_init(&x->out, SB__MAX_RESPONSE_BYTES);
    sb_buf_init(&x->restored, SB__MAX_RESPONSE_BYTES);
    sb_buf_init(&x->completion, SB_LEDGER_CONTENT_MAX);
    x->meter.content = sb_ledger_content_logging(s->ledger);
    x->asked = x->served = sb__server_n_models(s);
    x->meter.request_id = x->id;
    x->meter.api = x->route->codec->api;
    x->meter.t0 = r->t0;
    if (exchange_begin(x, r->ev, &err) != 0) {
        add_route_header(x, r->ev, NULL);
        sb__reply_error(r, &err, x->model);
        x->meter.t_end = sb_now_ns();
        x->status = err.http_status >= 400 && err.http_status <= 599 ? err.http_status : 500;
        exchange_meter(x);
        exchange_free(x);
        return;
    }
    x->ev = r->ev;
    x->conn = r->conn;
    x->state = X_WAITING;
    x->next = r->loop->exchanges;
    if (x->next != NULL)
        x->next->prev = x;
    r->loop->exchanges = x;
    r->loop->n_exchanges++;
    if (x->conn != NULL) {
        x->conn->exchange = x;
        sb__conn_watch(x->conn);
    }
}

void sb__exchange_client_gone(struct sb__exchange *x)
{
    /* If libevent detached the request from the dying connection, it is ours to free; if not
     * (the whole server is being freed), libevent frees it right after this callback. */
    if (x->ev != NULL && evhttp_request_get_connection(x->ev) == NULL)
        evhttp_request_free(x->ev);
    if (x->state != X_ENDED)
        x->status = 499;
    exchange_handed_over(x);
    exchange_cancel(x);
}

void sb__exchange_abort(struct sb__exchange *x)
{
    fail_response(x, SB_ECANCELED, 503,
                  "The server is shutting down and stopped this request. Retry it.");
    exchange_cancel(x);
}
