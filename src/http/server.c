/* The HTTP server: an evhttp listener on an event loop, what we keep beside each of libevent's
 * connections (to notice a client leaving, to answer libevent's own HTML errors in JSON, to close
 * slow ones), request dispatch through the route table, and the graceful stop.
 *
 * What libevent 2.1 does and does not do, which shapes this file:
 * - It reads nothing from a connection while a response is pending, so a client that hangs up
 *   during a generation would only be noticed at the next write. sb__conn_watch turns reading on
 *   with watermarks that keep evhttp's read callback from ever running (it aborts the process if
 *   it sees data in that state), so the EOF arrives at once and the close callback cancels the
 *   call. See sb__conn_watch.
 * - When a client leaves mid-response, libevent detaches the request from the dying connection
 *   and leaves it to the owner: exchange.c frees it.
 * - A body over the limit (Content-Length or chunked), a malformed request or too many header
 *   bytes are answered by libevent itself with an HTML page, before any callback of ours runs. The
 *   only hook is the connection's output buffer: we watch it, and a page we did not write is
 *   replaced, before it reaches the socket, by the same status in OpenAI's JSON error shape.
 * - There is no callback when libevent creates a connection, only the bufferevent callback just
 *   before; a one-shot event finishes the setup once libevent has its connection. */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "http/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Models
 * ------------------------------------------------------------------------------------------- */
size_t sb__server_n_models(const struct sb_server *s)
{
    return SB_MIN(s->n_backends, s->cfg->n_models);
}

size_t sb__server_model_index(const struct sb_server *s, struct sb_str name)
{
    size_t n = sb__server_n_models(s);

    for (size_t i = 0; i < n; i++) {
        if (sb_str_eq_c(name, s->cfg->models[i].name))
            return i;
    }
    return n;
}

size_t sb__server_model_index_for(const struct sb_server *s, enum sb_api api, struct sb_str name)
{
    static const struct sb_str latest = SB_STR_LIT(":latest");
    size_t i = sb__server_model_index(s, name);

    /* Ollama's clients may name the default tag; our models have none. */
    if (i == sb__server_n_models(s) && api == SB_API_OLLAMA && name.len > latest.len &&
        memcmp(name.p + name.len - latest.len, latest.p, latest.len) == 0)
        i = sb__server_model_index(s, (struct sb_str){name.p, name.len - latest.len});
    return i;
}

struct sb_backend *sb__server_find_backend(const struct sb_server *s, struct sb_str name,
                                           const char **cfg_name)
{
    size_t i = sb__server_model_index(s, name);

    if (i == sb__server_n_models(s))
        return NULL;
    if (cfg_name != NULL)
        *cfg_name = s->cfg->models[i].name;
    return s->backends[i];
}

void sb__server_model_not_found(const struct sb_server *s, enum sb_api api, struct sb_str name,
                                struct sb_api_error *err)
{
    struct sb_buf list;
    size_t n = sb__server_n_models(s);
    int shown = (int)SB_MIN(name.len, (size_t)64);

    if (api == SB_API_OLLAMA) {
        /* Ollama's own words: its clients and scripts match on them. */
        sb_api_fail(err, 404, "not_found_error", "model_not_found", "model",
                    "model '%.*s' not found", shown, name.p ? name.p : "");
        return;
    }
    /* The list is bounded: the message field is, and a long list helps nobody. */
    sb_buf_init(&list, 300);
    for (size_t i = 0; i < n; i++) {
        if (sb_buf_printf(&list, "%s%s", i ? ", " : "", s->cfg->models[i].name) != 0) {
            sb_buf_append_c(&list, ", ...");
            break;
        }
    }
    if (n == 0)
        sb_api_fail(err, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%.*s' does not exist: no models are configured.", shown,
                    name.p ? name.p : "");
    else
        sb_api_fail(err, 404, "invalid_request_error", "model_not_found", "model",
                    "The model '%.*s' does not exist. Available models: %s.", shown,
                    name.p ? name.p : "", list.p ? list.p : "");
    sb_buf_free(&list);
}

/* ---------------------------------------------------------------------------------------------
 * Connections
 * ------------------------------------------------------------------------------------------- */
static void conn_free(struct sb__conn *c)
{
    struct sb__loop *loop = c->loop;

    if (c->fd >= 0 && (size_t)c->fd < loop->by_fd_cap && loop->by_fd[c->fd] == c)
        loop->by_fd[c->fd] = NULL;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        loop->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->busy)
        loop->n_busy--;
    event_free(c->kick);
    event_free(c->deadline);
    evbuffer_remove_cb_entry(bufferevent_get_output(c->bev), c->out_cb);
    evbuffer_remove_cb_entry(bufferevent_get_input(c->bev), c->in_cb);
    /* libevent holds its own reference until it frees the connection; this drops ours. */
    bufferevent_decref(c->bev);
    free(c);
    sb__loop_check_drained(loop);
}

void sb__conn_free_closed(struct sb__conn *c)
{
    conn_free(c);
}

static void conn_arm_deadline(struct sb__conn *c)
{
    const struct timeval tv = {SB__REQUEST_DEADLINE_S, 0};
    evtimer_add(c->deadline, &tv);
}

/* ---------------------------------------------------------------------------------------------
 * Lingering close. Closing a socket with unread input makes the kernel reset the connection, and
 * a client still sending its body then loses the error it was answered with. libevent lingers
 * over a Content-Length body that is too large, not over a chunked one; so when it closes a
 * connection it refused, we keep a duplicate of the socket and read (and drop) what still comes,
 * until the client closes, SB__LINGER_MAX_BYTES or SB__LINGER_S.
 * ------------------------------------------------------------------------------------------- */
struct sb__linger {
    struct sb__loop *loop;
    struct sb__linger *prev, *next;
    struct event *ev;
    int fd;            /* ours: a dup of the connection's socket */
    size_t left;       /* bytes still to be dropped */
    uint64_t deadline; /* sb_now_ns() */
};

static void linger_free(struct sb__linger *l)
{
    if (l->prev != NULL)
        l->prev->next = l->next;
    else
        l->loop->lingers = l->next;
    if (l->next != NULL)
        l->next->prev = l->prev;
    event_free(l->ev);
    close(l->fd);
    free(l);
}

static void linger_read(evutil_socket_t fd, short what, void *arg)
{
    struct sb__linger *l = arg;
    uint64_t now = sb_now_ns();
    char buf[16384];
    struct timeval tv;

    /* A few reads a wake-up, so that a fast sender cannot hold the loop. */
    for (int reads = 0; (what & EV_READ) != 0 && reads < 16; reads++) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            break; /* the event fires again while there is more */
        if (n <= 0 || (size_t)n >= l->left) {
            linger_free(l); /* the client closed, the connection failed, or enough was read */
            return;
        }
        l->left -= (size_t)n;
    }
    if (now >= l->deadline) {
        linger_free(l);
        return;
    }
    tv.tv_sec = (time_t)((l->deadline - now) / 1000000000u);
    tv.tv_usec = (suseconds_t)((l->deadline - now) % 1000000000u / 1000u);
    event_add(l->ev, &tv);
}

/* Takes over draining a refused connection's socket before libevent closes its own descriptor.
 * On failure the socket is simply closed, as before. */
static void linger_start(struct sb__loop *loop, int fd)
{
    struct sb__linger *l = calloc(1, sizeof(*l));
    const struct timeval tv = {SB__LINGER_S, 0};

    if (l == NULL)
        return;
    l->loop = loop;
    l->fd = fd >= 0 ? dup(fd) : -1;
    l->left = SB__LINGER_MAX_BYTES;
    l->deadline = sb_now_ns() + (uint64_t)SB__LINGER_S * 1000000000u;
    if (l->fd < 0 || evutil_make_socket_nonblocking(l->fd) != 0) {
        if (l->fd >= 0)
            close(l->fd);
        free(l);
        return;
    }
    l->ev = event_new(loop->base, l->fd, EV_READ, linger_read, l);
    if (l->ev == NULL) {
        close(l->fd);
        free(l);
        return;
    }
    /* The error page is already in the kernel's buffer: end our side so the client reads it. */
    shutdown(l->fd, SHUT_WR);
    l->next = loop->lingers;
    if (l->next != NULL)
        l->next->prev = l;
    loop->lingers = l;
    event_add(l->ev, &tv);
}

/* libevent's close callback: the client left, a timeout fired, or the server is being freed. */
static void conn_closed(struct evhttp_connection *evcon, void *arg)
{
    struct sb__conn *c = arg;
    struct sb__exchange *x = c->exchange;

    SB_UNUSED(evcon);
    if (c->refused && !c->loop->freeing)
        linger_start(c->loop, (int)bufferevent_getfd(c->bev));
    c->evcon = NULL;
    c->exchange = NULL;
    if (x != NULL)
        sb__exchange_client_gone(x);
    if (c->in_send)
        c->closed = true; /* freed when that send returns */
    else
        conn_free(c);
}

/* The request did not arrive in time (a slowloris client): close the connection. */
static void conn_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct sb__conn *c = arg;

    SB_UNUSED(fd);
    SB_UNUSED(what);
    if (c->busy || c->evcon == NULL)
        return;
    sb_log(SB_LOG_DEBUG, NULL, "closing a connection: no complete request within %d s",
           SB__REQUEST_DEADLINE_S);
    evhttp_connection_free(c->evcon); /* conn_closed frees c */
}

static int conn_map(struct sb__loop *loop, struct sb__conn *c, int fd)
{
    if (fd < 0)
        return SB_EINVAL;
    if ((size_t)fd >= loop->by_fd_cap) {
        size_t cap = SB_MAX(loop->by_fd_cap * 2, (size_t)64);
        while (cap <= (size_t)fd)
            cap *= 2;
        struct sb__conn **p = realloc(loop->by_fd, cap * sizeof(*p));
        if (p == NULL)
            return SB_ENOMEM;
        memset(p + loop->by_fd_cap, 0, (cap - loop->by_fd_cap) * sizeof(*p));
        loop->by_fd = p;
        loop->by_fd_cap = cap;
    }
    loop->by_fd[fd] = c;
    c->fd = fd;
    return 0;
}

/* The connection a request arrived on, or NULL if it is not tracked. */
static struct sb__conn *conn_of(struct sb__loop *loop, struct evhttp_request *ev)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev = evcon != NULL ? evhttp_connection_get_bufferevent(evcon) : NULL;
    int fd = bev != NULL ? (int)bufferevent_getfd(bev) : -1;
    struct sb__conn *c;

    if (fd < 0 || (size_t)fd >= loop->by_fd_cap)
        return NULL;
    c = loop->by_fd[fd];
    return c != NULL && c->bev == bev ? c : NULL;
}

/* Runs once libevent has made its connection around our bufferevent (see conn_new). */
static void conn_setup(struct sb__conn *c)
{
    bufferevent_data_cb readcb;
    bufferevent_event_cb eventcb;
    void *arg;

    /* evhttp installs its callbacks with its connection as their argument. None means it dropped
     * the connection already (its accept path failed). */
    bufferevent_getcb(c->bev, &readcb, NULL, &eventcb, &arg);
    if (eventcb == NULL || arg == NULL) {
        conn_free(c);
        return;
    }
    c->evcon = arg;
    evhttp_connection_set_closecb(c->evcon, conn_closed, c);
    if (conn_map(c->loop, c, (int)bufferevent_getfd(c->bev)) != 0)
        sb_log(SB_LOG_WARN, NULL,
               "out of memory tracking a connection: a client that hangs up on "
               "it will not stop its generation early");
    conn_arm_deadline(c);
}

/* Replaces the error page libevent wrote at c->fix_offset with our JSON response. */
static void conn_fix(struct sb__conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t max_body = c->loop->server->cfg->listen.max_body_bytes;
    struct evbuffer_ptr pos;
    struct evbuffer *keep;
    struct sb_buf resp;
    char head[12];
    char id[40];
    int status;

    c->fix_pending = false;
    if (evbuffer_ptr_set(out, &pos, c->fix_offset, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(out, &pos, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
        return;
    status = sb__parser_error_status((struct sb_str){head, sizeof(head)});
    if (status == 0)
        return;
    sb_random_id(id, sizeof(id), "req_");
    sb_buf_init(&resp, 8192);
    keep = evbuffer_new();
    if (keep != NULL && sb__parser_error_response(status, head[7], max_body, id,
                                                  sb__codec_for_path(c->path), &resp) == 0) {
        /* Anything before the page (a 100 Continue) stays; the page goes; ours takes its place. */
        c->in_send = true;
        evbuffer_remove_buffer(out, keep, c->fix_offset);
        evbuffer_drain(out, evbuffer_get_length(out));
        evbuffer_add_buffer(out, keep);
        evbuffer_add(out, resp.p, resp.len);
        c->in_send = false;
        c->refused = true;
        sb__log_request(id, 0, NULL, status, NULL, 0, NULL, false,
                        "(refused by the HTTP parser before the request was read)");
    }
    if (keep != NULL)
        evbuffer_free(keep);
    sb_buf_free(&resp);
}

/* The one-shot event: first the setup after accept, later each error page rewrite. */
static void conn_kick(evutil_socket_t fd, short what, void *arg)
{
    struct sb__conn *c = arg;

    SB_UNUSED(fd);
    SB_UNUSED(what);
    if (c->evcon == NULL) {
        conn_setup(c); /* may free c */
        return;
    }
    if (c->fix_pending)
        conn_fix(c);
}

/* Watches what is written to the connection. Bytes written outside our own sends, starting with
 * an error status line, are libevent's own error page: the kick rewrites it later in this same
 * loop pass, before the socket can become writable (a bufferevent writes only from the loop). */
static void conn_output_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info,
                                void *arg)
{
    struct sb__conn *c = arg;
    struct evbuffer_ptr pos;
    char head[12];

    if (c->in_send || c->fix_pending || info->n_added == 0)
        return;
    if (evbuffer_ptr_set(buf, &pos, info->orig_size, EVBUFFER_PTR_SET) != 0 ||
        evbuffer_copyout_from(buf, &pos, head, sizeof(head)) != (ev_ssize_t)sizeof(head))
        return;
    if (sb__parser_error_status((struct sb_str){head, sizeof(head)}) == 0)
        return; /* 100 Continue */
    c->fix_pending = true;
    c->fix_offset = info->orig_size;
    event_active(c->kick, 0, 0);
}

/* Watches what arrives. libevent consumes a request line before it can refuse the request with
 * an error page (a body over the limit, bad headers), so the line's path is kept here while it is
 * still at the head of the input: a request line is there when its first bytes arrive on an idle
 * connection, and again when the request before it has been consumed. A body that happened to
 * start like a request line would only pick the error shape of a refusal that follows. */
static void conn_input_changed(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct sb__conn *c = arg;
    char head[SB__MAX_SNIFFED_PATH + 16];
    ev_ssize_t n;

    if (info->n_added == 0 && info->n_deleted == 0)
        return;
    /* The first byte of every method is an upper-case letter; bodies rarely start with one. */
    if (evbuffer_copyout(buf, head, 1) != 1 || head[0] < 'A' || head[0] > 'Z')
        return;
    n = evbuffer_copyout(buf, head, sizeof(head));
    if (n > 0)
        sb__sniff_request_path((struct sb_str){head, (size_t)n}, c->path, sizeof(c->path));
}

/* evhttp's bufferevent callback, just before it makes a connection: the bufferevent is ours so
 * that we can watch it. On failure returns NULL and evhttp makes its own (the connection is then
 * served without our tracking). */
static struct bufferevent *conn_new(struct event_base *base, void *arg)
{
    struct sb__loop *loop = arg;
    struct sb__conn *c = calloc(1, sizeof(*c));

    if (c == NULL)
        return NULL;
    c->loop = loop;
    c->fd = -1;
    c->bev = bufferevent_socket_new(base, -1, 0);
    c->kick = event_new(base, -1, 0, conn_kick, c);
    c->deadline = evtimer_new(base, conn_deadline, c);
    if (c->bev != NULL) {
        c->out_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), conn_output_changed, c);
        c->in_cb = evbuffer_add_cb(bufferevent_get_input(c->bev), conn_input_changed, c);
    }
    if (c->bev == NULL || c->kick == NULL || c->deadline == NULL || c->out_cb == NULL ||
        c->in_cb == NULL)
        goto fail;
    /* Our reference keeps the bufferevent readable in the setup step even if libevent has dropped
     * the connection by then. */
    bufferevent_incref(c->bev);
    c->next = loop->conns;
    if (c->next != NULL)
        c->next->prev = c;
    loop->conns = c;
    event_active(c->kick, 0, 0);
    return c->bev;
fail:
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->kick != NULL)
        event_free(c->kick);
    if (c->deadline != NULL)
        event_free(c->deadline);
    free(c);
    return NULL;
}

void sb__conn_watch(struct sb__conn *c)
{
    const struct timeval write_tv = {SB__IO_TIMEOUT_S, 0};

    if (c == NULL || c->watching)
        return;
    /* A generation may run for minutes while the client sends nothing: no read timeout. The write
     * timeout still drops a client that stops reading a stream. */
    bufferevent_set_timeouts(c->bev, NULL, &write_tv);
    /* A low watermark above the high one: the read callback (evhttp's, which must not run now)
     * never fires, reading pauses after SB__WATCH_INPUT_MAX bytes (kept for the next request),
     * and an EOF or a reset reaches evhttp's event callback, which closes the connection. */
    bufferevent_setwatermark(c->bev, EV_READ, SB__WATCH_INPUT_MAX + 1, SB__WATCH_INPUT_MAX);
    bufferevent_enable(c->bev, EV_READ);
    c->watching = true;
}

void sb__conn_unwatch(struct sb__conn *c)
{
    const struct timeval tv = {SB__IO_TIMEOUT_S, 0};

    if (c == NULL || !c->watching)
        return;
    /* Reading off before the watermarks go back to normal, so evhttp's read callback cannot run
     * before evhttp itself starts reading the next request. */
    bufferevent_disable(c->bev, EV_READ);
    bufferevent_setwatermark(c->bev, EV_READ, 0, 0);
    bufferevent_set_timeouts(c->bev, &tv, &tv);
    c->watching = false;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */
/* libevent has written the whole response: the connection now waits for its next request. */
static void on_response_written(struct evhttp_request *ev, void *arg)
{
    struct sb__conn *c = arg;

    SB_UNUSED(ev);
    if (c->busy) {
        c->busy = false;
        c->loop->n_busy--;
    }
    conn_arm_deadline(c);
    sb__loop_check_drained(c->loop);
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    struct sb__loop *loop = arg;
    struct sb__req r = {.loop = loop, .ev = ev, .t0 = sb_now_ns()};
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(ev);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    enum sb__route_match m;
    struct sb_api_error err;
    unsigned allowed;

    r.method = (unsigned)evhttp_request_get_command(ev);
    r.path = path != NULL && path[0] != '\0' ? path : "/";
    sb_random_id(r.id, sizeof(r.id), "req_");
    r.conn = conn_of(loop, ev);
    if (r.conn != NULL) {
        evtimer_del(r.conn->deadline);
        if (!r.conn->busy) {
            r.conn->busy = true;
            loop->n_busy++;
        }
        evhttp_request_set_on_complete_cb(ev, on_response_written, r.conn);
    }
    if (loop->server->phase != SB__RUNNING) {
        sb_api_fail(&err, 503, "server_error", "server_shutting_down", NULL,
                    "The server is shutting down. Retry the request.");
        sb__reply_error(&r, &err, NULL);
        return;
    }
    m = sb__route_find(sb__routes, sb__n_routes, r.path, r.method, &r.route, &allowed);
    if (m != SB__ROUTE_FOUND) {
        sb__reply_no_route(&r, m, allowed);
        return;
    }
    r.route->handler(&r);
}

/* ---------------------------------------------------------------------------------------------
 * Stopping: stop accepting and close idle connections; let in-flight requests finish; after the
 * grace period answer and cancel them; after a last wait stop regardless.
 * ------------------------------------------------------------------------------------------- */
void sb__loop_check_drained(struct sb__loop *loop)
{
    if (loop->server->phase != SB__RUNNING && loop->n_exchanges == 0 && loop->n_busy == 0)
        event_base_loopbreak(loop->base);
}

static void close_idle_connections(struct sb__loop *loop)
{
    struct sb__conn *next;

    for (struct sb__conn *c = loop->conns; c != NULL; c = next) {
        next = c->next;
        if (!c->busy && c->evcon != NULL)
            evhttp_connection_free(c->evcon); /* conn_closed frees c */
    }
}

static void arm_phase_timer(struct sb_server *s, int seconds)
{
    const struct timeval tv = {seconds, 0};
    evtimer_add(s->phase_timer, &tv);
}

static void cancel_in_flight(struct sb_server *s)
{
    struct sb__loop *loop = &s->loop;
    struct sb__exchange *next;

    s->phase = SB__CANCELLING;
    for (struct sb__exchange *x = loop->exchanges; x != NULL; x = next) {
        next = sb__exchange_next(x);
        sb__exchange_abort(x); /* may free x */
    }
    arm_phase_timer(s, SB__CANCEL_WAIT_S);
}

static void begin_stop(struct sb_server *s, const char *why)
{
    struct sb__loop *loop = &s->loop;

    switch (s->phase) {
    case SB__RUNNING:
        s->phase = SB__DRAINING;
        sb_log(SB_LOG_INFO, NULL,
               "%s: stopping; %zu model requests in flight get %d s to finish (again to cancel "
               "them now)",
               why, loop->n_exchanges, SB__GRACE_S);
        if (loop->bound != NULL) {
            evhttp_del_accept_socket(loop->http, loop->bound);
            loop->bound = NULL;
        }
        close_idle_connections(loop);
        arm_phase_timer(s, SB__GRACE_S);
        break;
    case SB__DRAINING:
        sb_log(SB_LOG_INFO, NULL, "%s again: cancelling %zu model requests now", why,
               loop->n_exchanges);
        cancel_in_flight(s);
        break;
    case SB__CANCELLING:
        sb_log(SB_LOG_WARN, NULL, "%s again: stopping without waiting for %zu cancelled requests",
               why, loop->n_exchanges);
        event_base_loopbreak(loop->base);
        return;
    }
    sb__loop_check_drained(loop);
}

static void on_phase_timer(evutil_socket_t fd, short what, void *arg)
{
    struct sb_server *s = arg;
    struct sb__loop *loop = &s->loop;

    SB_UNUSED(fd);
    SB_UNUSED(what);
    if (s->phase == SB__DRAINING) {
        sb_log(SB_LOG_WARN, NULL, "grace period of %d s over: cancelling %zu model requests",
               SB__GRACE_S, loop->n_exchanges);
        cancel_in_flight(s);
        sb__loop_check_drained(loop);
        return;
    }
    sb_log(SB_LOG_WARN, NULL,
           "%zu cancelled requests and %zu unfinished responses remain after %d s; stopping anyway",
           loop->n_exchanges, loop->n_busy, SB__CANCEL_WAIT_S);
    event_base_loopbreak(loop->base);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    SB_UNUSED(what);
    begin_stop(arg, sig == SIGINT ? "SIGINT" : "SIGTERM");
}

static void on_stop_request(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    begin_stop(arg, "stop requested");
}

/* ---------------------------------------------------------------------------------------------
 * Public interface
 * ------------------------------------------------------------------------------------------- */
static int bound_port(struct evhttp_bound_socket *bound)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    if (getsockname((int)evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return -1;
}

/* Creates the loop's base and evhttp and binds the listener. */
static int loop_init(struct sb__loop *loop, const struct sb_listen_config *l, char *err,
                     size_t err_size)
{
    loop->base = event_base_new();
    loop->http = loop->base != NULL ? evhttp_new(loop->base) : NULL;
    if (loop->http == NULL) {
        snprintf(err, err_size, "cannot create the event loop (out of memory?)");
        return SB_ENOMEM;
    }
    loop->upstream = sb_upstream_new(loop->base);
    if (loop->upstream == NULL) {
        snprintf(err, err_size, "cannot create the upstream HTTP client (out of memory?)");
        return SB_ENOMEM;
    }
    evhttp_set_gencb(loop->http, on_request, loop);
    evhttp_set_bevcb(loop->http, conn_new, loop);
    evhttp_set_max_body_size(loop->http, (ev_ssize_t)SB_MIN(l->max_body_bytes, (size_t)INT64_MAX));
    evhttp_set_max_headers_size(loop->http, SB__MAX_HEADERS_BYTES);
    evhttp_set_timeout(loop->http, SB__IO_TIMEOUT_S);
    evhttp_set_allowed_methods(loop->http, (ev_uint16_t)sb__methods_all());
    evhttp_set_default_content_type(loop->http, "application/json; charset=utf-8");
    /* Over-limit bodies are read and dropped before the 413 goes out: a client still sending
     * would otherwise get a connection reset instead of the answer. The request deadline bounds
     * how long that may take. */
    evhttp_set_flags(loop->http, EVHTTP_SERVER_LINGERING_CLOSE);
    errno = 0;
    loop->bound = evhttp_bind_socket_with_handle(loop->http, l->host, (ev_uint16_t)l->port);
    if (loop->bound == NULL) {
        int e = errno;
        snprintf(err, err_size, "%s%s", e ? strerror(e) : "the address could not be resolved",
                 e == EADDRINUSE ? " (another process has the port: stop it or choose another "
                                   "with --port or listen.port)"
                                 : "");
        return SB_EIO;
    }
    return 0;
}

int sb_server_new(const struct sb_config *cfg, struct sb_backend **backends, size_t n_backends,
                  struct sb_server **out, char *err, size_t err_size)
{
    struct sb_server *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL) {
        snprintf(err, err_size, "out of memory");
        return SB_ENOMEM;
    }
    s->cfg = cfg;
    s->backends = backends;
    s->n_backends = n_backends;
    s->loop.server = s;
    s->phase = SB__RUNNING;
    if (cfg->listen.io_threads > 1)
        sb_log(SB_LOG_WARN, NULL,
               "listen.io_threads is %d, but this build serves from one I/O thread",
               cfg->listen.io_threads);
    rc = sb__meter_init(s);
    if (rc == 0)
        rc = sb__ui_init(s);
    if (rc != 0) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    rc = loop_init(&s->loop, &cfg->listen, err, err_size);
    if (rc != 0)
        goto fail;
    s->port = bound_port(s->loop.bound);
    s->stop_ev = event_new(s->loop.base, -1, 0, on_stop_request, s);
    s->sigint_ev = evsignal_new(s->loop.base, SIGINT, on_signal, s);
    s->sigterm_ev = evsignal_new(s->loop.base, SIGTERM, on_signal, s);
    s->phase_timer = evtimer_new(s->loop.base, on_phase_timer, s);
    if (!s->stop_ev || !s->sigint_ev || !s->sigterm_ev || !s->phase_timer) {
        snprintf(err, err_size, "out of memory");
        rc = SB_ENOMEM;
        goto fail;
    }
    /* Signals are ours from now on, not only once the loop runs: whoever started us may send
     * SIGTERM as soon as it reads the "listening" line, and libevent holds a signal that arrives
     * before the loop runs until it does. sb_server_free gives their old handling back. */
    evsignal_add(s->sigint_ev, NULL);
    evsignal_add(s->sigterm_ev, NULL);
    *out = s;
    return 0;
fail:
    sb_server_free(s);
    return rc;
}

void sb_server_set_ledger(struct sb_server *s, struct sb_ledger *ledger)
{
    s->ledger = ledger;
}

void sb_server_set_pricing(struct sb_server *s, const struct sb_pricing *pricing)
{
    s->pricing = pricing;
}

void sb_server_set_alerts(struct sb_server *s, struct sb_alerts *alerts)
{
    s->alerts = alerts;
}

int sb_server_set_routing(struct sb_server *s, const struct sb_router *router,
                          const struct sb_privacy *privacy, struct sb_resil *resil)
{
    struct sb_privacy_scratch *scratch = NULL;

    if (privacy != NULL && sb_privacy_scratch_new(privacy, &scratch) != 0)
        return SB_ENOMEM;
    sb_privacy_scratch_free(s->loop.scratch);
    s->loop.scratch = scratch;
    s->router = router;
    s->privacy = privacy;
    s->resil = resil;
    return 0;
}

int sb_server_port(const struct sb_server *s)
{
    return s->port;
}

int sb_server_run(struct sb_server *s)
{
    int rc;

    rc = event_base_dispatch(s->loop.base);
    evtimer_del(s->phase_timer);
    return rc < 0 ? SB_EIO : 0;
}

void sb_server_stop(struct sb_server *s)
{
    /* event_active is thread-safe once evthread_use_pthreads() has run (main does it). */
    event_active(s->stop_ev, 0, 0);
}

void sb_server_free(struct sb_server *s)
{
    struct sb__loop *loop;
    bool leak;

    if (s == NULL)
        return;
    loop = &s->loop;
    /* A backend still holding calls would deliver into freed memory: keep the loop (and what the
     * calls point to) allocated. Only a backend that ignored a cancel gets here. */
    leak = loop->n_exchanges > 0;
    if (leak)
        sb_log(SB_LOG_ERROR, NULL,
               "%zu model calls never finished; their memory stays allocated so that their "
               "backends cannot write into freed memory",
               loop->n_exchanges);
    loop->freeing = true;
    if (loop->http != NULL)
        evhttp_free(loop->http); /* closes every connection; conn_closed frees what we kept */
    while (loop->lingers != NULL)
        linger_free(loop->lingers);
    while (loop->conns != NULL)
        conn_free(loop->conns); /* connections freed before their setup step ran */
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->sigint_ev)
        event_free(s->sigint_ev);
    if (s->sigterm_ev)
        event_free(s->sigterm_ev);
    if (s->phase_timer)
        event_free(s->phase_timer);
    free(loop->by_fd);
    if (leak)
        return;
    sb__meter_deinit(s);
    sb__ui_deinit(s);
    sb_privacy_scratch_free(loop->scratch);
    sb_upstream_free(loop->upstream);
    if (loop->base != NULL)
        event_base_free(loop->base);
    free(s);
}
