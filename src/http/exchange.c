/* One model call from the client's side: the body parsed by the route's codec, the model found,
 * the backend started, and each event it sends rendered by the codec onto the client's connection,
 * streamed or whole, until both the response is handed over and the backend is done. */
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
    struct sb_backend *backend;
    const char *model;      /* the configured name; owned by the config */
    struct sb_arena *arena; /* owned: the body, the parsed request, the renderer */
    struct sb_request req;
    struct sb_call call;
    void *render; /* the codec's renderer state, in the arena */
    struct sb_buf out;
    struct sb_usage usage;
    enum x_state state;
    int status;       /* what the client was told; 499 when it left first (nginx's convention) */
    const char *note; /* static; for the log line */
    unsigned method;
    uint64_t t0;
    bool render_ready; /* render_init succeeded: render_deinit is owed */
    bool started;      /* the backend accepted the call: on_done is owed */
    bool backend_done;
    bool cancel_sent;
    bool have_usage;
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
    sb_arena_free(x->arena);
    free(x);
}

/* Both sides are finished: log the request, unlink and free it. */
static void exchange_finish(struct sb__exchange *x)
{
    struct sb__loop *loop = x->loop;

    if (x->status == 499)
        x->note = "(the client closed the connection)";
    sb__log_request(x->id, x->method, x->route->path, x->status, x->model, x->t0,
                    x->have_usage ? &x->usage : NULL, x->req.stream, x->note);
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

static void exchange_handed_over(struct sb__exchange *x)
{
    x->state = X_ENDED;
    x->ev = NULL;
    x->conn = NULL;
}

/* The client has gone (seen at a send): nothing more is sent, and the call stops. */
static void exchange_lost(struct sb__exchange *x)
{
    exchange_detach(x);
    exchange_handed_over(x);
    x->status = 499;
}

/* ---------------------------------------------------------------------------------------------
 * Answering
 * ------------------------------------------------------------------------------------------- */
/* A whole error response in the route's codec shape; hands the request over. */
static void send_error(struct sb__exchange *x, const struct sb_api_error *err)
{
    struct sb_buf body;
    struct sb__conn *conn = x->conn;

    sb_buf_init(&body, SB__MAX_SMALL_REPLY_BYTES);
    if (x->route->codec->write_error(err, &body) != 0)
        sb_buf_reset(&body);
    x->status = err->http_status >= 400 && err->http_status <= 599 ? err->http_status : 500;
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

static void on_stream_event(struct sb__exchange *x, const struct sb_event *ev)
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
            return;
        }
        if (!sb__send_stream_start(x->loop, conn, x->ev, codec->stream_content_type, x->id,
                                   x->model)) {
            exchange_lost(x);
            exchange_cancel(x);
            return;
        }
        x->state = X_STREAMING;
        x->status = 200;
    }
    sb_buf_reset(&x->out);
    if (codec->render_event(x->render, ev, &x->out) != 0) {
        sb_log(SB_LOG_ERROR, x->id, "rendering a %s event failed; ending the stream",
               sb_event_type_name(ev->type));
        end_stream_with_error(x, SB_ENOMEM, 500, "The server could not render the response.");
        exchange_cancel(x);
        return;
    }
    if (!sb__send_stream_chunk(conn, x->ev, sb_buf_view(&x->out))) {
        exchange_lost(x);
        exchange_cancel(x);
        return;
    }
    if (last) {
        if (ev->type == SB_EV_ERROR)
            x->note = "(the stream ended with an error event)";
        exchange_detach(x);
        sb__send_stream_end(conn, x->ev);
        exchange_handed_over(x);
    }
}

static void on_whole_event(struct sb__exchange *x, const struct sb_event *ev)
{
    const struct sb_codec *codec = x->route->codec;
    struct sb__conn *conn = x->conn;
    struct sb_api_error err;
    char *body;
    size_t len;

    if (ev->type == SB_EV_ERROR) {
        sb_api_error_from_event(ev, &err);
        send_error(x, &err);
        return;
    }
    if (codec->render_event(x->render, ev, &x->out) != 0) {
        sb_log(SB_LOG_ERROR, x->id, "rendering a %s event failed", sb_event_type_name(ev->type));
        sb_api_fail(&err, 500, "server_error", NULL, NULL,
                    "The server could not build the response (it may be too large).");
        send_error(x, &err);
        exchange_cancel(x);
        return;
    }
    if (ev->type != SB_EV_FINISH)
        return;
    len = x->out.len;
    body = sb_buf_steal(&x->out);
    if (body == NULL) {
        sb_api_fail(&err, 500, "server_error", NULL, NULL, "The server ran out of memory.");
        send_error(x, &err);
        return;
    }
    x->status = 200;
    exchange_detach(x);
    if (!sb__send_reply_owned(x->loop, conn, x->ev, 200, json_type, body, len, x->id, x->model))
        x->status = 499;
    exchange_handed_over(x);
}

/* ---------------------------------------------------------------------------------------------
 * Backend callbacks (loop thread)
 * ------------------------------------------------------------------------------------------- */
static void on_event(struct sb_call *call, const struct sb_event *ev)
{
    struct sb__exchange *x = call->ud;
    const char *served_by = NULL;

    /* After a fallback another configured model serves: the header and the log name it. */
    if (ev->type == SB_EV_START && ev->start.backend.len != 0 &&
        sb__server_find_backend(x->loop->server, ev->start.backend, &served_by) != NULL)
        x->model = served_by;
    if (ev->type == SB_EV_USAGE) {
        x->usage = ev->usage;
        x->have_usage = true;
    }
    if (x->state == X_ENDED)
        return; /* the client left or was answered; the cancel is on its way */
    if (x->req.stream)
        on_stream_event(x, ev);
    else
        on_whole_event(x, ev);
}

static void on_done(struct sb_call *call)
{
    struct sb__exchange *x = call->ud;

    x->backend_done = true;
    if (x->state != X_ENDED) {
        /* The stream ended without FINISH or ERROR: a backend bug, but the client must not hang. */
        sb_log(SB_LOG_ERROR, x->id, "the backend of model %s ended the call without finishing it",
               x->model);
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

/* Parses, resolves and starts; fills err and returns a negative code on failure. */
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
    if (body == NULL || evbuffer_copyout(in, body, len) != (ev_ssize_t)len)
        return sb_api_fail(err, 413, "invalid_request_error", "request_too_large", NULL,
                           "The request body could not be held in memory.");
    /* In case a parse fails without saying why. */
    sb_api_fail(err, 400, "invalid_request_error", NULL, NULL, "The request body is invalid.");
    rc = codec->parse(x->route->kind, x->arena, (struct sb_str){body, len}, &x->req, err);
    if (rc != 0)
        return rc;
    memcpy(x->req.id, x->id, sizeof(x->req.id));
    x->backend = sb__server_find_backend(s, x->req.model, &x->model);
    if (x->backend == NULL) {
        sb__server_model_not_found(s, x->req.model, err);
        return SB_ENOTFOUND;
    }
    x->render = sb_arena_alloc(x->arena, codec->render_size ? codec->render_size : 1);
    rc = x->render != NULL ? codec->render_init(x->render, &x->req) : SB_ENOMEM;
    x->render_ready = x->render != NULL;
    if (rc != 0)
        return sb_api_fail(err, 500, "server_error", NULL, NULL,
                           "The server could not prepare the response: %s.", sb_strerror(rc));
    x->call.req = &x->req;
    x->call.base = x->loop->base;
    x->call.upstream = x->loop->upstream;
    x->call.on_event = on_event;
    x->call.on_done = on_done;
    x->call.ud = x;
    rc = sb_backend_start(x->backend, &x->call);
    if (rc != 0) {
        start_failed(err, rc);
        return rc;
    }
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
    if (exchange_begin(x, r->ev, &err) != 0) {
        sb__reply_error(r, &err, x->model);
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
