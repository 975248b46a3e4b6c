/* The HTTP module's private vocabulary: the server, loop, connection and exchange structures that
 * server.c, respond.c, routes.c and exchange.c share, and the route table. Nothing outside
 * src/http (and its tests) includes this. */
#ifndef SB_HTTP_INTERNAL_H
#define SB_HTTP_INTERNAL_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "api/api.h"
#include "http/http.h"
#include "upstream/upstream.h"

/* ---------------------------------------------------------------------------------------------
 * Limits and timeouts. The config sets only the body limit; these bound what a slow or hostile
 * client can hold.
 * ------------------------------------------------------------------------------------------- */
/* No byte moving for this long while a request is read, while a keep-alive connection idles, or
 * while a response waits for the client to read it: the connection is closed. */
#define SB__IO_TIMEOUT_S 30
/* A whole request (headers and body) must arrive within this long of the connection starting to
 * wait for it, however slowly its bytes trickle in (slowloris). */
#define SB__REQUEST_DEADLINE_S 60
/* Request line plus headers; more gets 400. Generous for bearer tokens and tracing headers. */
#define SB__MAX_HEADERS_BYTES (32 * 1024)
/* After SIGTERM, in-flight requests get this long to finish before they are cancelled... */
#define SB__GRACE_S 10
/* ...and cancelled calls this long to come back from their backends before the loop gives up. */
#define SB__CANCEL_WAIT_S 5
/* While a model answers, the connection is read only to notice the client leaving; a client that
 * sends more than this meanwhile (pipelining) is no longer watched. */
#define SB__WATCH_INPUT_MAX 4096
/* A non-streamed response body is built in memory; a model's output is far below this. */
#define SB__MAX_RESPONSE_BYTES ((size_t)64 << 20)
/* A small JSON reply (health, errors, token lists) is built in memory up to this. */
#define SB__MAX_SMALL_REPLY_BYTES ((size_t)16 << 20)

struct sb__loop;
struct sb__conn;
struct sb__exchange;
struct sb__route;

/* ---------------------------------------------------------------------------------------------
 * Server and loops
 * ------------------------------------------------------------------------------------------- */
enum sb__phase {
    SB__RUNNING,    /* accepting and serving */
    SB__DRAINING,   /* listener closed; in-flight requests finish, new ones get 503 */
    SB__CANCELLING, /* the grace period ran out: in-flight calls were answered and cancelled */
};

/* One I/O loop: an event base with its own evhttp. One today; io_threads > 1 will run one per
 * thread, each bound to the port with SO_REUSEPORT, and everything below stays per loop. */
struct sb__loop {
    struct sb_server *server;
    struct event_base *base;           /* owned */
    struct evhttp *http;               /* owned */
    struct evhttp_bound_socket *bound; /* owned by http; NULL once the listener is closed */
    struct sb_upstream *upstream;      /* owned: this loop's HTTP client for remote backends */
    struct sb__conn *conns;            /* every tracked connection (doubly linked) */
    struct sb__conn **by_fd;           /* owned array: a tracked connection by its socket */
    size_t by_fd_cap;
    struct sb__exchange *exchanges; /* every model call not yet done (doubly linked) */
    size_t n_exchanges;
    size_t n_busy; /* connections with a request whose response is not fully written yet */
};

struct sb_server {
    const struct sb_config *cfg;  /* borrowed */
    struct sb_backend **backends; /* borrowed; backends[i] serves cfg->models[i] */
    size_t n_backends;
    struct sb__loop loop;
    enum sb__phase phase;
    struct event *stop_ev;   /* made active by sb_server_stop, from any thread */
    struct event *sigint_ev; /* SIGINT and SIGTERM */
    struct event *sigterm_ev;
    struct event *phase_timer; /* the grace period, then the wait for cancelled calls */
    int port;
};

/* Stops the loop if the server is stopping and nothing is left in flight. Loop thread. */
void sb__loop_check_drained(struct sb__loop *loop);

/* The backend serving the model named name, or NULL. *cfg_name gets the configured name (owned by
 * the config) when found. */
struct sb_backend *sb__server_find_backend(const struct sb_server *s, struct sb_str name,
                                           const char **cfg_name);
/* Fills err with a 404 model_not_found that lists the models that exist. */
void sb__server_model_not_found(const struct sb_server *s, struct sb_str name,
                                struct sb_api_error *err);

/* ---------------------------------------------------------------------------------------------
 * Connections. libevent owns the connection; this is what we keep beside it to notice the client
 * leaving, to answer libevent's own errors in JSON, and to close slow or idle connections.
 * ------------------------------------------------------------------------------------------- */
struct sb__conn {
    struct sb__loop *loop;
    struct sb__conn *prev, *next;
    struct bufferevent *bev;          /* referenced (bufferevent_incref) until conn_free */
    struct evhttp_connection *evcon;  /* libevent's; NULL until the setup step has run */
    struct evbuffer_cb_entry *out_cb; /* our watch on the output buffer */
    struct event *kick;               /* one-shot: setup after accept, later the error rewrite */
    struct event *deadline;           /* SB__REQUEST_DEADLINE_S while a request is being read */
    struct sb__exchange *exchange;    /* the model call answering on this connection, or NULL */
    size_t fix_offset;                /* where libevent's own error page starts in the output */
    int fd;                           /* the socket, once mapped in loop->by_fd; -1 before */
    bool in_send;     /* inside one of our evhttp_send_* calls: the output is ours */
    bool closed;      /* libevent closed it while in_send; freed when the send returns */
    bool busy;        /* a request arrived and its response is not fully written yet */
    bool watching;    /* reading only to notice the client leaving (sb__conn_watch) */
    bool fix_pending; /* libevent wrote an error page that the kick will rewrite */
};

/* Frees a connection that libevent closed while one of our sends was running on it. */
void sb__conn_free_closed(struct sb__conn *c);
/* Starts reading the connection while a model answers, only to learn at once when the client
 * closes it; its close callback then cancels the call. NULL is allowed. */
void sb__conn_watch(struct sb__conn *c);
/* Stops that, restoring what libevent expects before the response is handed over. */
void sb__conn_unwatch(struct sb__conn *c);

/* ---------------------------------------------------------------------------------------------
 * Requests and responses (respond.c)
 * ------------------------------------------------------------------------------------------- */
/* One request being answered: what a route's handler is given. It lives on the stack of the
 * request callback; a handler that answers later (an exchange) copies what it keeps. */
struct sb__req {
    struct sb__loop *loop;
    struct evhttp_request *ev;     /* libevent's; ours until the response is handed over */
    struct sb__conn *conn;         /* NULL when the connection could not be tracked */
    const struct sb__route *route; /* NULL until the path is matched */
    const char *path;              /* the URL's path as sent; valid while ev is */
    unsigned method;               /* one EVHTTP_REQ_* bit */
    uint64_t t0;                   /* sb_now_ns() when the request had arrived */
    char id[40];                   /* "req_..." */
};

/* The headers every response carries, plus x-switchboard-backend when model is not NULL, and
 * Connection: close while the server stops. */
void sb__add_std_headers(struct sb__loop *loop, struct evhttp_request *ev, const char *req_id,
                         const char *model);
/* The reason phrase for a status ("Too Many Requests"), or NULL for libevent's own. Static. */
const char *sb__status_reason(int status);
/* Sends a whole response with body (copied) and the standard headers; ev belongs to libevent
 * afterwards. Returns false when the client had already left (ev was freed here). */
bool sb__send_reply(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                    int status, const char *content_type, struct sb_str body, const char *req_id,
                    const char *model);
/* The same, but takes the bytes of body (malloc'd, len bytes) without copying them. */
bool sb__send_reply_owned(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                          int status, const char *content_type, char *body, size_t len,
                          const char *req_id, const char *model);
/* Streaming: the status line and headers, then chunks, then the end (which hands ev over).
 * Each returns false when the client has gone (ev is then freed and must not be used again). */
bool sb__send_stream_start(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                           const char *content_type, const char *req_id, const char *model);
bool sb__send_stream_chunk(struct sb__conn *conn, struct evhttp_request *ev, struct sb_str bytes);
void sb__send_stream_end(struct sb__conn *conn, struct evhttp_request *ev);

/* Answers r with a JSON body and logs the request. model may be NULL. */
void sb__reply(struct sb__req *r, int status, struct sb_str json, const char *model);
/* Answers r with err in the codec's error shape (the route's, else OpenAI's) and logs it. */
void sb__reply_error(struct sb__req *r, const struct sb_api_error *err, const char *model);

/* One INFO line per request, at its end: id, method, path, status, model, duration and tokens.
 * Never the prompt or the output. method 0 and path NULL when libevent refused the request before
 * it was parsed (t0 0: no duration); path is sanitized here; model and usage may be NULL; note is
 * a static remark or NULL. */
void sb__log_request(const char *req_id, unsigned method, const char *path, int status,
                     const char *model, uint64_t t0, const struct sb_usage *usage, bool stream,
                     const char *note);

/* Copies at most cap-1 bytes of a client-supplied path into out for messages and logs, with
 * control and non-ASCII bytes shown as '?', and "..." when it was cut. */
void sb__sanitize_path(const char *path, char *out, size_t cap);

/* libevent answers a few requests itself before they reach us (a body over the limit, a
 * malformed request line, headers too large, an unknown method), with an HTML page. These turn
 * such a page into our JSON error: the status of the page that starts at head (at least 12 bytes:
 * "HTTP/1.1 413"), or 0 if it is not an error page; and the complete response to send instead,
 * with Connection: close since libevent closes the connection after it. */
int sb__parser_error_status(struct sb_str head);
int sb__parser_error_response(int status, char http_minor, size_t max_body, const char *req_id,
                              struct sb_buf *out);

/* ---------------------------------------------------------------------------------------------
 * Routes (routes.c): the table is data; the request callback looks a request up in it.
 * ------------------------------------------------------------------------------------------- */
typedef void (*sb__handler_fn)(struct sb__req *r);

struct sb__route {
    unsigned methods;             /* EVHTTP_REQ_* bits it answers */
    const char *path;             /* exact match on the URL's path (the query is ignored) */
    const struct sb_codec *codec; /* the wire format of its bodies and errors */
    enum sb_request_kind kind;    /* for a model route: what the body is parsed as */
    sb__handler_fn handler;
    const char *doc; /* one line for docs and `switchboard routes` */
};

extern const struct sb__route sb__routes[];
extern const size_t sb__n_routes;

enum sb__route_match {
    SB__ROUTE_FOUND,     /* *out is the route */
    SB__ROUTE_NO_PATH,   /* 404 */
    SB__ROUTE_NO_METHOD, /* 405; *allowed has the methods the path answers */
};

/* Looks path and method up in table[0..n). *allowed gets the union of the methods of every entry
 * with that path (for the Allow header). */
enum sb__route_match sb__route_find(const struct sb__route *table, size_t n, const char *path,
                                    unsigned method, const struct sb__route **out,
                                    unsigned *allowed);
/* "GET", "POST", ... for one EVHTTP_REQ_* bit; "?" for anything else. Static. */
const char *sb__method_name(unsigned method);
/* Appends "GET, POST" for a set of EVHTTP_REQ_* bits, in a fixed order. */
int sb__methods_format(unsigned methods, struct sb_buf *out);
/* Every method libevent can parse: evhttp is told to let them all through so that we, not it,
 * answer the ones a path does not take (405 with Allow rather than libevent's 501). */
unsigned sb__methods_all(void);

/* Answers a request whose path is unknown (404) or whose method the path does not take (405). */
void sb__reply_no_route(struct sb__req *r, enum sb__route_match m, unsigned allowed);

/* ---------------------------------------------------------------------------------------------
 * Exchanges (exchange.c): one model call, from the parsed body to the last byte sent.
 * ------------------------------------------------------------------------------------------- */
/* The handler of the model routes: parses the body with the route's codec, finds the model,
 * starts the backend call and answers as its events arrive. Answers any failure itself. */
void sb__exchange_start(struct sb__req *r);
/* The client closed the connection before the response was handed over: forget the request
 * (freeing it if libevent left it to us) and cancel the call. x may be freed before this returns.
 */
void sb__exchange_client_gone(struct sb__exchange *x);
/* The server gives up waiting: answer the client (503, or an error event ending the stream) and
 * cancel the call. x may be freed before this returns. */
void sb__exchange_abort(struct sb__exchange *x);
/* Every exchange on the loop's list is linked through this. */
struct sb__exchange *sb__exchange_next(const struct sb__exchange *x);

#endif
