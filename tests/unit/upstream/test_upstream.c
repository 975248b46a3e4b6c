/* Tests for the upstream HTTP client against an evhttp server on the same loop (127.0.0.1): body
 * streaming, headers, connection reuse, the four deadlines, cancellation and abort. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upstream/upstream.h"

/* ---------------------------------------------------------------------------------------------
 * The server: paths select behaviours.
 *   /hello   200 "hello world" with X-Test: yes
 *   /echo    200, the request's body, with X-Got-Auth: the Authorization header's length
 *   /chunks  200 chunked: "one ", "two ", "three"
 *   /hold    never answers
 *   /stall   200 chunked: "partial", then nothing
 *   /429     429 {"error":"slow down"} with Retry-After: 7
 * ------------------------------------------------------------------------------------------- */
struct fixture {
    struct event_base *base;
    struct evhttp *http;
    int port;
    struct sb_upstream *u;
    struct event *guard; /* a hang guard: fails the test if the loop never finishes */
};

static void reply_text(struct evhttp_request *req, int code, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply(req, code, "x", b);
    evbuffer_free(b);
}

static void send_chunk(struct evhttp_request *req, const char *text)
{
    struct evbuffer *b = evbuffer_new();
    evbuffer_add(b, text, strlen(text));
    evhttp_send_reply_chunk(req, b);
    evbuffer_free(b);
}

static void serve(struct evhttp_request *req, void *arg)
{
    (void)arg;
    const char *path = evhttp_request_get_uri(req);
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    if (strcmp(path, "/hello") == 0) {
        evhttp_add_header(out, "X-Test", "yes");
        reply_text(req, 200, "hello world");
    } else if (strcmp(path, "/echo") == 0) {
        const char *auth =
            evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
        char n[32];
        snprintf(n, sizeof n, "%zu", auth ? strlen(auth) : (size_t)0);
        evhttp_add_header(out, "X-Got-Auth", n);
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        evhttp_send_reply(req, 200, "OK", in);
    } else if (strcmp(path, "/chunks") == 0) {
        evhttp_send_reply_start(req, 200, "OK");
        send_chunk(req, "one ");
        send_chunk(req, "two ");
        send_chunk(req, "three");
        evhttp_send_reply_end(req);
    } else if (strcmp(path, "/hold") == 0) {
        /* nothing: the client's first-byte deadline ends it */
    } else if (strcmp(path, "/stall") == 0) {
        evhttp_send_reply_start(req, 200, "OK");
        send_chunk(req, "partial");
    } else if (strcmp(path, "/429") == 0) {
        evhttp_add_header(out, "Retry-After", "7");
        reply_text(req, 429, "{\"error\":\"slow down\"}");
    } else {
        reply_text(req, 404, "no");
    }
}

static void on_guard(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    cr_assert_fail("the loop did not finish (hang guard)");
}

static struct fixture fx;

static void setup(void)
{
    memset(&fx, 0, sizeof fx);
    fx.base = event_base_new();
    cr_assert_not_null(fx.base);
    fx.http = evhttp_new(fx.base);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(fx.http, "127.0.0.1", 0);
    cr_assert_not_null(bs);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
    fx.port = ntohs(sin.sin_port);
    evhttp_set_gencb(fx.http, serve, NULL);
    fx.u = sb_upstream_new(fx.base);
    cr_assert_not_null(fx.u);
    fx.guard = evtimer_new(fx.base, on_guard, NULL);
    struct timeval tv = {30, 0};
    evtimer_add(fx.guard, &tv);
}

static void teardown(void)
{
    sb_upstream_free(fx.u);
    event_free(fx.guard);
    evhttp_free(fx.http);
    event_base_free(fx.base);
}

/* ---------------------------------------------------------------------------------------------
 * A transfer's observer
 * ------------------------------------------------------------------------------------------- */
struct seen {
    int status;
    int n_response, n_done, n_data;
    int err;
    char message[256];
    struct sb_buf body;
    char x_test[16];
    char retry_after[16];
    bool reused;
    int abort_after;     /* on_data returns non-zero once this many pieces arrived (0 = never) */
    bool cancel_in_data; /* cancel from inside on_data */
    bool stop_loop;      /* on_done breaks the loop */
    struct sb_upstream_xfer *x;
    /* on_done starts this one next (for reuse) */
    struct seen *then;
    const char *then_path;
};

static void copy_view(char *dst, size_t n, struct sb_str v)
{
    size_t k = SB_MIN(v.len, n - 1);
    if (k > 0)
        memcpy(dst, v.p, k);
    dst[k] = '\0';
}

static void t_on_response(void *ud, struct sb_upstream_xfer *x, int status)
{
    struct seen *s = ud;
    s->n_response++;
    s->status = status;
    cr_assert_eq(s->n_data, 0, "on_response after data");
    copy_view(s->x_test, sizeof s->x_test, sb_upstream_header(x, "x-TEST"));
    copy_view(s->retry_after, sizeof s->retry_after, sb_upstream_header(x, "Retry-After"));
}

static int t_on_data(void *ud, struct sb_upstream_xfer *x, const char *p, size_t len)
{
    struct seen *s = ud;
    s->n_data++;
    cr_assert_eq(s->n_response, 1, "data before on_response");
    sb_buf_append(&s->body, p, len);
    if (s->cancel_in_data) {
        sb_upstream_cancel(x);
        event_base_loopbreak(fx.base);
        return 0;
    }
    return s->abort_after > 0 && s->n_data >= s->abort_after;
}

static void start_path(struct seen *s, const char *path, struct sb_upstream_timeouts t,
                       const char *body);

static void t_on_done(void *ud, struct sb_upstream_xfer *x, int err, const char *message)
{
    struct seen *s = ud;
    s->n_done++;
    s->err = err;
    snprintf(s->message, sizeof s->message, "%s", message);
    s->reused = sb_upstream_reused_connection(x);
    if (s->then != NULL) {
        start_path(s->then, s->then_path, (struct sb_upstream_timeouts){0}, NULL);
        return;
    }
    if (s->stop_loop)
        event_base_loopbreak(fx.base);
}

static struct sb_upstream_request make_req(struct seen *s, const char *url, const char *body)
{
    static const char *const headers[] = {"Authorization: Bearer sk-test-123",
                                          "Content-Type: application/json"};
    struct sb_upstream_request r = {
        .method = body ? "POST" : "GET",
        .url = url,
        .headers = headers,
        .n_headers = SB_ARRAY_LEN(headers),
        .body = sb_str_c(body),
        .on_response = t_on_response,
        .on_data = t_on_data,
        .on_done = t_on_done,
        .ud = s,
    };
    return r;
}

static void start_path(struct seen *s, const char *path, struct sb_upstream_timeouts t,
                       const char *body)
{
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", fx.port, path);
    struct sb_upstream_request r = make_req(s, url, body);
    r.timeouts = t;
    cr_assert_eq(sb_upstream_start(fx.u, &r, &s->x), 0);
}

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof *s);
    sb_buf_init(&s->body, 1 << 20);
    s->stop_loop = true;
}

static void run(void)
{
    event_base_dispatch(fx.base);
}

TestSuite(upstream, .init = setup, .fini = teardown);

Test(upstream, get_streams_the_body_and_headers)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/hello", (struct sb_upstream_timeouts){0}, NULL);
    cr_assert_eq(s.n_done, 0, "a callback ran inside start");
    run();
    cr_assert_eq(s.n_done, 1);
    cr_assert_eq(s.err, 0, "%s", s.message);
    cr_assert_eq(s.status, 200);
    cr_assert_eq(s.n_response, 1);
    cr_assert_str_eq(s.body.p, "hello world");
    cr_assert_str_eq(s.x_test, "yes");
    sb_buf_free(&s.body);
}

Test(upstream, post_sends_body_and_headers)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/echo", (struct sb_upstream_timeouts){0}, "{\"a\":1}");
    run();
    cr_assert_eq(s.err, 0, "%s", s.message);
    cr_assert_str_eq(s.body.p, "{\"a\":1}");
    sb_buf_free(&s.body);
}

Test(upstream, chunked_body_arrives_whole)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/chunks", (struct sb_upstream_timeouts){.idle_ms = 5000}, NULL);
    run();
    cr_assert_eq(s.err, 0, "%s", s.message);
    cr_assert_str_eq(s.body.p, "one two three");
    sb_buf_free(&s.body);
}

Test(upstream, error_status_is_a_response_not_a_failure)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/429", (struct sb_upstream_timeouts){0}, NULL);
    run();
    cr_assert_eq(s.err, 0);
    cr_assert_eq(s.status, 429);
    cr_assert_str_eq(s.retry_after, "7");
    cr_assert_str_eq(s.body.p, "{\"error\":\"slow down\"}");
    sb_buf_free(&s.body);
}

Test(upstream, second_request_reuses_the_connection)
{
    struct seen a, b;
    seen_init(&a);
    seen_init(&b);
    a.then = &b;
    a.then_path = "/hello";
    start_path(&a, "/hello", (struct sb_upstream_timeouts){0}, NULL);
    run();
    cr_assert_eq(a.err, 0, "%s", a.message);
    cr_assert_eq(b.n_done, 1);
    cr_assert_eq(b.err, 0, "%s", b.message);
    cr_assert(!a.reused);
    cr_assert(b.reused, "the second transfer opened a new connection");
    sb_buf_free(&a.body);
    sb_buf_free(&b.body);
}

Test(upstream, first_byte_deadline)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/hold", (struct sb_upstream_timeouts){.first_byte_ms = 100}, NULL);
    run();
    cr_assert_eq(s.n_done, 1);
    cr_assert_eq(s.err, SB_ETIMEOUT);
    cr_assert_eq(s.n_response, 0);
    cr_assert(strstr(s.message, "first_byte_ms") != NULL, "%s", s.message);
    sb_buf_free(&s.body);
}

Test(upstream, idle_deadline)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/stall", (struct sb_upstream_timeouts){.first_byte_ms = 5000, .idle_ms = 100},
               NULL);
    run();
    cr_assert_eq(s.err, SB_ETIMEOUT);
    cr_assert_eq(s.n_response, 1);
    cr_assert_str_eq(s.body.p, "partial");
    cr_assert(strstr(s.message, "idle_ms") != NULL, "%s", s.message);
    sb_buf_free(&s.body);
}

Test(upstream, total_deadline)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/stall", (struct sb_upstream_timeouts){.total_ms = 150}, NULL);
    run();
    cr_assert_eq(s.err, SB_ETIMEOUT);
    cr_assert(strstr(s.message, "total_ms") != NULL, "%s", s.message);
    sb_buf_free(&s.body);
}

Test(upstream, refused_connection_is_a_connect_error)
{
    /* A port that was just free: bind, read it, close. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    getsockname(fd, (struct sockaddr *)&sin, &len);
    close(fd);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", ntohs(sin.sin_port));
    struct seen s;
    seen_init(&s);
    struct sb_upstream_request r = make_req(&s, url, NULL);
    cr_assert_eq(sb_upstream_start(fx.u, &r, &s.x), 0);
    run();
    cr_assert_eq(s.n_done, 1);
    cr_assert_eq(s.err, SB_ECONNECT, "%d %s", s.err, s.message);
    cr_assert(strstr(s.message, "sk-test") == NULL);
    sb_buf_free(&s.body);
}

Test(upstream, on_data_can_abort)
{
    struct seen s;
    seen_init(&s);
    s.abort_after = 1;
    start_path(&s, "/stall", (struct sb_upstream_timeouts){0}, NULL);
    run();
    cr_assert_eq(s.n_done, 1);
    cr_assert_eq(s.err, SB_ECANCELED);
    sb_buf_free(&s.body);
}

Test(upstream, cancel_inside_on_data_stops_every_callback)
{
    struct seen s, after;
    seen_init(&s);
    seen_init(&after);
    s.cancel_in_data = true;
    start_path(&s, "/chunks", (struct sb_upstream_timeouts){0}, NULL);
    run(); /* breaks from on_data */
    /* Another transfer runs to its end; the cancelled one says nothing meanwhile. */
    start_path(&after, "/hello", (struct sb_upstream_timeouts){0}, NULL);
    run();
    cr_assert_eq(after.err, 0, "%s", after.message);
    cr_assert_eq(s.n_done, 0);
    cr_assert_eq(s.n_data, 1);
    sb_buf_free(&s.body);
    sb_buf_free(&after.body);
}

Test(upstream, cancel_right_after_start)
{
    struct seen s, after;
    seen_init(&s);
    seen_init(&after);
    start_path(&s, "/hello", (struct sb_upstream_timeouts){0}, NULL);
    sb_upstream_cancel(s.x);
    start_path(&after, "/chunks", (struct sb_upstream_timeouts){0}, NULL);
    run();
    cr_assert_eq(after.err, 0, "%s", after.message);
    cr_assert_eq(s.n_response + s.n_data + s.n_done, 0);
    sb_buf_free(&s.body);
    sb_buf_free(&after.body);
}

Test(upstream, free_with_transfers_in_flight)
{
    struct seen s;
    seen_init(&s);
    start_path(&s, "/hold", (struct sb_upstream_timeouts){0}, NULL);
    event_base_loop(fx.base, EVLOOP_NONBLOCK);
    sb_upstream_free(fx.u);
    fx.u = NULL;
    cr_assert_eq(s.n_done, 0);
    sb_buf_free(&s.body);
}

Test(upstream, rejects_bad_arguments)
{
    struct seen s;
    seen_init(&s);
    struct sb_upstream_request r = make_req(&s, NULL, NULL);
    struct sb_upstream_xfer *x = NULL;
    cr_assert_eq(sb_upstream_start(fx.u, &r, &x), SB_EINVAL);
    r.url = "ftp://127.0.0.1/x";
    r.on_done = t_on_done;
    /* An unsupported scheme is refused when the transfer runs, as a failure, not a crash. */
    if (sb_upstream_start(fx.u, &r, &x) == 0) {
        run();
        cr_assert_eq(s.n_done, 1);
        cr_assert_neq(s.err, 0);
    }
    sb_buf_free(&s.body);
}
