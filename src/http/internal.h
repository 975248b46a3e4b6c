/* The HTTP module's private vocabulary: the server, loop, connection and exchange structures that
 * server.c, respond.c, routes.c, exchange.c and meter.c share, the route table and the metering of
 * model requests. Nothing outside src/http (and its tests) includes this. */
#ifndef SB_HTTP_INTERNAL_H
#define SB_HTTP_INTERNAL_H

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdatomic.h>

#include "api/api.h"
#include "auth/auth.h"
#include "budget/budget.h"
#include "http/http.h"
#include "ledger/ledger.h"
#include "metrics/metrics.h"
#include "privacy/privacy.h"
#include "route/route.h"
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
/* After libevent refused a request with an error page and closed the connection, the rest of
 * what the client sends is read and dropped for at most this long and this many bytes, so that
 * the close does not reset the connection before the client has read the error (a chunked body
 * over the limit, which libevent 2.1 does not linger over itself). */
#define SB__LINGER_S         5
#define SB__LINGER_MAX_BYTES ((size_t)64 << 20)
/* While a model answers, the connection is read only to notice the client leaving; a client that
 * sends more than this meanwhile (pipelining) is no longer watched. */
#define SB__WATCH_INPUT_MAX 4096
/* A non-streamed response body is built in memory; a model's output is far below this. */
#define SB__MAX_RESPONSE_BYTES ((size_t)64 << 20)
/* A small JSON reply (health, errors, token lists) is built in memory up to this. */
#define SB__MAX_SMALL_REPLY_BYTES ((size_t)16 << 20)
/* GET /metrics: every series of every metric; far above what bounded label sets produce. */
#define SB__MAX_METRICS_BYTES ((size_t)64 << 20)
/* The longest request path remembered per connection for the shape of a parser error. */
#define SB__MAX_SNIFFED_PATH 128

struct sb__loop;
struct sb__conn;
struct sb__exchange;
struct sb__route;
struct sb__meter_series;
struct sb__linger;
struct sb_ui; /* ui/ui.h */

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
    struct event_base *base;            /* owned */
    struct evhttp *http;                /* owned */
    struct evhttp_bound_socket *bound;  /* owned by http; NULL once the listener is closed */
    struct sb_upstream *upstream;       /* owned: this loop's HTTP client for remote backends */
    struct sb_privacy_scratch *scratch; /* owned: this loop's PII scan scratch; NULL = no scan */
    struct sb__conn *conns;             /* every tracked connection (doubly linked) */
    struct sb__conn **by_fd;            /* owned array: a tracked connection by its socket */
    size_t by_fd_cap;
    struct sb__exchange *exchanges; /* every model call not yet done (doubly linked) */
    size_t n_exchanges;
    size_t n_busy; /* connections with a request whose response is not fully written yet */
    struct sb__linger *lingers; /* closed connections still being drained (server.c) */
    bool freeing;               /* sb_server_free is closing every connection */
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
    struct sb_ledger *ledger;         /* borrowed (sb_server_set_ledger); NULL = no ledger */
    const struct sb_pricing *pricing; /* borrowed (sb_server_set_pricing); NULL = bundled table */
    struct sb_alerts *alerts;         /* borrowed (sb_server_set_alerts); NULL = no alerts */
    /* Borrowed (sb_server_set_routing); router NULL = requests go to backends[i] as they are,
     * without keys' sensitivity scopes, rate limits or budgets (serve always routes). */
    const struct sb_router *router;
    const struct sb_privacy *privacy; /* NULL = no PII scan */
    struct sb_resil *resil;           /* breakers for routed chains; NULL = none */
    /* Keys, rate limits and budgets (sb_server_set_quota; quota.c), borrowed. auth NULL = keys off;
     * budget NULL = no budgets. */
    struct sb_auth *auth;
    struct sb_budget *budget;
    /* Metric handles per (model asked, backend that served), made on first use: index
     * asked * n_meter_side + served, where n_meter_side - 1 stands for "none" (an unknown model,
     * no backend reached). Owned, with what each entry points to. */
    _Atomic(struct sb__meter_series *) *meter_series;
    size_t n_meter_side;
    struct sb_metric_series *m_overhead; /* switchboard_gateway_overhead_seconds */
    /* The dashboard (ui.c): owned; NULL when the config turns it off. */
    struct sb_ui *ui;
    int64_t started_ms; /* Unix milliseconds, for its uptime */
    char instance[256]; /* the host name, for its header */
};

/* Stops the loop if the server is stopping and nothing is left in flight. Loop thread. */
void sb__loop_check_drained(struct sb__loop *loop);

/* The models the server serves: min(n_backends, cfg->n_models). */
size_t sb__server_n_models(const struct sb_server *s);
/* The backend serving the model named name, or NULL. *cfg_name gets the configured name (owned by
 * the config) when found. */
struct sb_backend *sb__server_find_backend(const struct sb_server *s, struct sb_str name,
                                           const char **cfg_name);
/* The index of the model named name among the configured ones, or sb__server_n_models(s). */
size_t sb__server_model_index(const struct sb_server *s, struct sb_str name);
/* The same as a client of api names it: Ollama's "name:latest" is the model "name". */
size_t sb__server_model_index_for(const struct sb_server *s, enum sb_api api, struct sb_str name);
/* Fills err with a 404 model_not_found: for API api's clients, in its words (Ollama's "model 'x'
 * not found"; otherwise a message that lists the models that exist). */
void sb__server_model_not_found(const struct sb_server *s, enum sb_api api, struct sb_str name,
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
    bool refused;     /* we rewrote such a page: libevent closes the connection after it */
    struct evbuffer_cb_entry *in_cb; /* our watch on the input buffer, for path */
    /* The path of the latest request line seen at the head of the input, so that an error page
     * libevent writes for that request (413, bad headers) gets the path's API error shape; "" when
     * none was seen. See conn_input_changed. */
    char path[SB__MAX_SNIFFED_PATH];
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
/* The same with another content type (static or outliving the call). */
void sb__reply_typed(struct sb__req *r, int status, const char *content_type, struct sb_str body,
                     const char *model);
/* Answers r with err in the error shape of the API r's path belongs to (sb__codec_for_path) and
 * logs it. */
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
 * "HTTP/1.1 413"), or 0 if it is not an error page; and the complete response to send instead, in
 * codec's error shape (the request's path's API), with Connection: close since libevent closes the
 * connection after it. */
int sb__parser_error_status(struct sb_str head);
int sb__parser_error_response(int status, char http_minor, size_t max_body, const char *req_id,
                              const struct sb_codec *codec, struct sb_buf *out);

/* The path of the request line at the start of head ("POST /v1/messages?x HTTP/1.1..." gives
 * "/v1/messages"), copied NUL-terminated into out (cap bytes; a longer path is cut to cap - 1);
 * false, with out untouched, when head does not start with a method, a space and a path ended by
 * a space, '?' or '#' (or at least cap - 1 bytes of one). */
bool sb__sniff_request_path(struct sb_str head, char *out, size_t cap);

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

/* The codec whose error shape a client of path expects: the first route with that exact path;
 * else the API whose prefix the path has (/api/ is Ollama's, /v1/messages Anthropic's); else
 * OpenAI's. path may be NULL (OpenAI's). Static. */
const struct sb_codec *sb__codec_for_path(const char *path);

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

/* ---------------------------------------------------------------------------------------------
 * Metering (meter.c): what one model request is recorded as, in the ledger and the metrics, when
 * it ends. The exchange fills a meter as the request goes; the functions that turn it into a row,
 * an error class and a cost are pure, so that they are tested without a server.
 * ------------------------------------------------------------------------------------------- */
/* Where a failure came from, for its error class. */
enum sb__origin {
    SB__ORIGIN_NONE,    /* no failure */
    SB__ORIGIN_GATEWAY, /* refused or failed here: the body, the model name, rendering, shutdown */
    SB__ORIGIN_BACKEND, /* an ERROR event or a start() failure of the backend (or its chain) */
};

/* The ledger's error class of a request: "" for a success (no failure and a status below 400),
 * else a short static name chosen by the table in meter.c from the status sent (499: the client
 * closed), the failure's origin, its SB_E* code and the status the failure asked for. Static. */
const char *sb__error_class(int status, enum sb__origin origin, int code, int fail_status);

/* One model request as it is metered. Times are sb_now_ns() values; 0 = not reached. */
struct sb__meter {
    /* Who and what. The pointers are borrowed from the exchange and the config. */
    const char *request_id;
    enum sb_api api;
    struct sb_str model; /* the alias asked for, as sent (may name no model); empty if unparsed */
    const char *backend; /* the configured model that served (START's backend), or NULL */
    const char *tried;   /* the configured model whose backend was started, or NULL */
    const char *served_model; /* START's model (as the provider names it), or NULL */
    const char *key_id;       /* the API key's id (never the key), or NULL; quota.c's */
    const char *team;         /* its team, or NULL */
    bool streamed;
    int status; /* the HTTP status sent to the client (499: the client left first) */
    /* When. */
    uint64_t t0;          /* the request had arrived */
    uint64_t t_started;   /* the backend's start() returned */
    uint64_t t_first;     /* the first output event (TEXT or TOOL_CALL) */
    uint64_t t_last;      /* the latest output event */
    uint64_t t_end;       /* the response was handed to the connection (or the client left) */
    uint64_t handling_ns; /* spent handling the backend's events: rendering and writing */
    /* Routing: the deciding rule (NULL or "default": the default policy), the effective
     * sensitivity (NULL = not routed) and the PII counts as a JSON object of kind -> count
     * ("" = none): counts only, never values. */
    const char *rule;
    const char *sensitivity;
    char pii_counts[128];
    const char *reason; /* the decision's one-line explanation; NULL = not routed */
    /* What the events said. */
    bool have_start;
    int32_t attempts; /* START's; 0 without a START */
    /* The chain's members tried, comma-separated (START's, or the final ERROR's when none
     * served); "" when no chain said (backend or tried stands in). */
    char backends_tried[256];
    uint32_t queue_ms; /* START's */
    bool have_usage;
    struct sb_usage usage;
    /* The first failure noted. */
    enum sb__origin fail_origin;
    int fail_code;   /* SB_E* */
    int fail_status; /* the status the failure asked for */
    /* Content logging (ledger.content_logging), only when on: the request body and the text the
     * client was sent, borrowed from the exchange; content false = no text is carried. */
    bool content;
    struct sb_str prompt_json;
    struct sb_str completion;
};

/* Notes one event seen at now: START's attempts and queue time, the first and latest output
 * (TEXT, TOOL_CALL), USAGE, and an ERROR as a backend failure. Returns true with *gap_ns set when
 * ev is an output event after another one: the time between them. */
bool sb__meter_event(struct sb__meter *m, const struct sb_event *ev, uint64_t now,
                     uint64_t *gap_ns);
/* Notes a failure; the first one noted is the one that counts. */
void sb__meter_fail(struct sb__meter *m, enum sb__origin origin, int code, int fail_status);

/* Completion tokens per second between the first and the last output event: (completion - 1) /
 * (t_last - t_first), since the first token opens the window; -1 when that is not measurable
 * (fewer than two tokens, no usage, or every output in one instant, as a non-streamed cloud reply
 * arrives). */
double sb__meter_tokens_per_s(const struct sb__meter *m);

/* Fills row from m (a row holds no prompt or completion text; the meter's, when content logging
 * is on, goes to the ledger beside the row, in sb__meter_record).
 * ts_ms is the arrival in Unix milliseconds; latency runs to t_end (to now_ns when t_end is 0);
 * cost_microusd as sb__meter_cost gave it. */
void sb__meter_row(const struct sb__meter *m, int64_t ts_ms, uint64_t now_ns, int64_t cost_microusd,
                   struct sb_ledger_row *row);

/* Whether requests to a backend of this config kind ("openai", "local") are priced from the price
 * table: cloud kinds are; local models ("local", "ollama") are not (reports cost them with the
 * infra model). */
bool sb__meter_kind_priced(const char *kind);

/* The cost in micro-dollars of usage (NULL: nothing used) at the price of the first of names[0..n)
 * (NULL and empty entries skipped) that p prices (sb_price_lookup; p NULL = the bundled table), or
 * -1 when none is priced or priced is false. */
int64_t sb__meter_cost(const struct sb_pricing *p, bool priced, const char *const *names, size_t n,
                       const struct sb_usage *usage);

/* The handles of the per-(model, backend) metrics. */
struct sb__meter_series {
    struct sb_metric_series *duration, *ttft, *inter_token, *tokens_per_s, *cost;
    struct sb_metric_series *tokens_prompt, *tokens_cached, *tokens_completion;
};

/* The handles for the model at index asked and the backend at index served (each
 * sb__server_n_models(s) or more for none), made on first use and kept for the server's life.
 * Never NULL (out of memory gives a per-thread set resolved on the spot). Thread-safe. */
const struct sb__meter_series *sb__meter_series(struct sb_server *s, size_t asked, size_t served);
/* Makes the server's (empty) table of handles; 0 or SB_ENOMEM. */
int sb__meter_init(struct sb_server *s);
/* Frees it. */
void sb__meter_deinit(struct sb_server *s);

/* The request is over: prices it, records its row in the server's ledger and updates the metrics
 * (requests, duration, TTFT, tokens, tokens/s, cost and the gateway overhead). asked and served
 * are model indexes as for sb__meter_series. Returns the cost recorded (-1 = unpriced). Loop
 * thread. */
int64_t sb__meter_record(struct sb_server *s, const struct sb__meter *m, size_t asked,
                         size_t served);

/* ---------------------------------------------------------------------------------------------
 * The dashboard (ui.c; docs/dashboard.md)
 * ------------------------------------------------------------------------------------------- */
/* Makes the server's dashboard state when cfg->ui.enabled (the ring of recent decisions, the
 * start time, the host name). Returns 0 or SB_ENOMEM. */
int sb__ui_init(struct sb_server *s);
/* Frees it. */
void sb__ui_deinit(struct sb_server *s);
/* Adds a finished request to the ring: its ledger row's metadata and m's routing reason. Does
 * nothing when the dashboard is off. Any thread. */
void sb__ui_record(struct sb_server *s, const struct sb__meter *m, const struct sb_ledger_row *row);
/* Handlers: the page and its files (GET, HEAD; ETag and If-None-Match), and the JSON summary.
 * Both answer 404 when the dashboard is off. */
void sb__ui_handle_asset(struct sb__req *r);
void sb__ui_handle_summary(struct sb__req *r);

/* ---------------------------------------------------------------------------------------------
 * Keys, scopes, rate limits and budgets (quota.c; docs/keys-and-budgets.md). An exchange calls
 * these in order: authenticate (before the body is parsed: 401), check_model (403), route_input
 * (fills the policy's key, team and budget), check_sensitivity (403), admit (rate limit and
 * budget reservation: 429, or a downgrade to the chain's free members), and settle once when the
 * request is metered. Each refusal fills err in OpenAI's vocabulary (the codec renders it in the
 * caller's shape), notes the failure in the meter, counts it in switchboard_refused_total and
 * returns a negative code. Loop thread.
 * ------------------------------------------------------------------------------------------- */
/* One request's standing. Zero-initialized = anonymous, nothing held. */
struct sb__quota {
    bool keyed;                 /* key holds the caller's key */
    struct sb_auth_key key;     /* copied from the snapshot at authentication */
    struct sb_rate_ticket rate; /* what the rate limiter admitted */
    struct sb_budget_hold hold; /* what the budgets reserved */
    bool downgraded;            /* a budget sent it to the free members of its chain */
};

int sb__quota_authenticate(const struct sb_server *s, struct evhttp_request *ev,
                           struct sb__quota *q, struct sb__meter *m, struct sb_api_error *err);
int sb__quota_check_model(const struct sb_server *s, const struct sb__quota *q, const char *model,
                          struct sb__meter *m, struct sb_api_error *err);
/* Fills in's key, team and remaining budget (has_budget false when none applies). */
void sb__quota_route_input(const struct sb_server *s, const struct sb__quota *q,
                           struct sb_route_input *in);
/* sensitivity: the request's effective one (the routing decision's). */
int sb__quota_check_sensitivity(const struct sb_server *s, const struct sb__quota *q,
                                enum sb_sensitivity sensitivity, struct sb__meter *m,
                                struct sb_api_error *err);
/* Admits req, whose chain is cfg->models[chain[0, *n)], against q's rate limits and every budget
 * that applies, reserving the chain's worst-case cost. When a budget refuses: a chain that starts
 * with a free member keeps its free members only (*n shrinks; the request is served as asked,
 * without its priced fallbacks); otherwise, with on_limit local, the same happens and
 * q->downgraded is set; 429 (with Retry-After on ev) when no free member is left or on_limit is
 * deny. */
int sb__quota_admit(const struct sb_server *s, struct sb__quota *q, const struct sb_request *req,
                    uint32_t *chain, size_t *n, struct evhttp_request *ev, struct sb__meter *m,
                    struct sb_api_error *err);
/* The request is over: the rate limiter learns its tokens (m's usage) and the budgets its cost
 * (-1 = unpriced: nothing). Releases what q holds; safe to call with nothing held. */
void sb__quota_settle(const struct sb_server *s, struct sb__quota *q, const struct sb__meter *m,
                      int64_t cost_microusd);

#endif
