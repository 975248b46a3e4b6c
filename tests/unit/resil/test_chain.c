/* Tests for the chain backend over real members: local llama.cpp backends on the tiny
 * stories260K model, and openai backends pointed at a closed loopback port (connection refused)
 * or at a provider scripted per path on a loopback HTTP server. Covers skipping (context,
 * breaker), retries, fallback, errors before and after START, cancellation and the config
 * builder. */
#include "metrics/metrics.h"
#include "resil/resil.h"
#include "upstream/upstream.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MODEL        "stories260K.gguf"
#define SHORT_PROMPT "Once upon a time"
/* Far more than 32 tokens of the tiny model's vocabulary. */
#define LONG_PROMPT                                                                                \
    "Once upon a time there was a little girl named Lily who loved to play in the big green "      \
    "park near her house with her brown dog Max and her best friend Tom, and every day they ran "  \
    "and jumped and laughed until the sun went down."

/* -----------------------------------------------------------------------------------------------
 * A provider on loopback, scripted by the first path segment of base_url
 * --------------------------------------------------------------------------------------------- */
enum script { S_OK, S_CUT, S_E401, S_E400, S_E500, S_COUNT };

static const struct {
    const char *prefix; /* the path's first segment */
    int status;         /* 200: an SSE stream */
    bool complete;      /* 200: the stream ends with its finish and [DONE] (else it is cut) */
} scripts[S_COUNT] = {
    [S_OK] = {"/ok/", 200, true},      [S_CUT] = {"/cut/", 200, false},
    [S_E401] = {"/e401/", 401, false}, [S_E400] = {"/e400/", 400, false},
    [S_E500] = {"/e500/", 500, false},
};

static struct {
    struct event_base *base;
    struct sb_upstream *up;
    struct evhttp *http;
    int port;        /* the scripted provider */
    int closed_port; /* nothing listens here */
    int hits[S_COUNT];
    struct event *keep;
} fx;

static void serve(struct evhttp_request *req, void *arg)
{
    SB_UNUSED(arg);
    const char *uri = evhttp_request_get_uri(req);
    struct evbuffer *out = evbuffer_new();
    for (size_t i = 0; i < S_COUNT; i++) {
        if (strncmp(uri, scripts[i].prefix, strlen(scripts[i].prefix)) != 0)
            continue;
        fx.hits[i]++;
        struct evkeyvalq *h = evhttp_request_get_output_headers(req);
        if (scripts[i].status != 200) {
            evhttp_add_header(h, "Content-Type", "application/json");
            evbuffer_add_printf(out, "{\"error\":{\"message\":\"scripted %d\",\"type\":\"x\"}}",
                                scripts[i].status);
            evhttp_send_reply(req, scripts[i].status, "Scripted", out);
            evbuffer_free(out);
            return;
        }
        evhttp_add_header(h, "Content-Type", "text/event-stream");
        evbuffer_add_printf(out, "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":"
                                 "\"Hello\",\"finish_reason\":null}]}\n\n");
        if (scripts[i].complete)
            evbuffer_add_printf(out,
                                "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"text\":\"\","
                                "\"finish_reason\":\"stop\"}]}\n\n"
                                "data: {\"model\":\"m\",\"choices\":[],\"usage\":{"
                                "\"prompt_tokens\":4,\"completion_tokens\":1}}\n\n"
                                "data: [DONE]\n\n");
        /* A cut stream: sent with a length, so it ends cleanly but without its finish. */
        evhttp_send_reply(req, 200, "OK", out);
        evbuffer_free(out);
        return;
    }
    evhttp_send_reply(req, 404, "Not Found", out);
    evbuffer_free(out);
}

static void keepalive(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    SB_UNUSED(arg);
}

/* A port that was free a moment ago and that nothing listens on. */
static int closed_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    socklen_t len = sizeof sin;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    close(fd);
    return ntohs(sin.sin_port);
}

static void setup(void)
{
    evthread_use_pthreads();
    /* stories260K makes llama.cpp warn about its unset special tokens on every load. */
    sb_log_set_level(SB_LOG_ERROR);
    memset(&fx, 0, sizeof fx);
    fx.base = event_base_new();
    cr_assert_not_null(fx.base);
    fx.up = sb_upstream_new(fx.base);
    cr_assert_not_null(fx.up);
    fx.http = evhttp_new(fx.base);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(fx.http, "127.0.0.1", 0);
    cr_assert_not_null(bs);
    struct sockaddr_in sin;
    socklen_t len = sizeof sin;
    cr_assert_eq(getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sin, &len), 0);
    fx.port = ntohs(sin.sin_port);
    evhttp_set_gencb(fx.http, serve, NULL);
    fx.closed_port = closed_port();
    /* Keeps the loop blocking in the kernel while the engine thread works. */
    fx.keep = event_new(fx.base, -1, EV_PERSIST, keepalive, NULL);
    struct timeval hour = {3600, 0};
    event_add(fx.keep, &hour);
}

static void teardown(void)
{
    event_free(fx.keep);
    sb_upstream_free(fx.up);
    evhttp_free(fx.http);
    event_base_free(fx.base);
}

/* The timeout only stops a hung test; nothing here depends on timing. */
TestSuite(chain, .init = setup, .fini = teardown, .timeout = 120);

/* -----------------------------------------------------------------------------------------------
 * Members
 * --------------------------------------------------------------------------------------------- */
static struct sb_backend *local_member(const char *name, int32_t n_ctx)
{
    const char *dir = getenv("SWITCHBOARD_MODELS");
    struct sb_buf path;
    sb_buf_init(&path, 4096);
    cr_assert_eq(sb_buf_printf(&path, "%s/%s", dir && *dir ? dir : "../shared/models", MODEL), 0);
    struct sb_model_config cfg = {.name = (char *)name, .backend = "local", .path = path.p};
    cfg.n_ctx = n_ctx;
    cfg.n_parallel = 2;
    cfg.keep_alive = -1; /* the config's default: stays loaded */
    struct sb_backend *b = NULL;
    char err[512] = "";
    cr_assert_eq(sb_local_backend_ops.create(&cfg, &b, err, sizeof err), 0, "%s", err);
    sb_buf_free(&path);
    return b;
}

/* An openai backend at http://127.0.0.1:port/segment (segment "" for the bare host). */
static struct sb_backend *openai_member(const char *name, int port, const char *segment)
{
    struct sb_buf url;
    sb_buf_init(&url, 256);
    cr_assert_eq(sb_buf_printf(&url, "http://127.0.0.1:%d/%s", port, segment), 0);
    struct sb_model_config cfg = {.name = (char *)name, .backend = "openai", .base_url = url.p};
    cfg.timeouts.connect_ms = 5000;
    const struct sb_backend_ops *ops = sb_backend_find_ops("openai");
    cr_assert_not_null(ops);
    struct sb_backend *b = NULL;
    char err[512] = "";
    cr_assert_eq(ops->create(&cfg, &b, err, sizeof err), 0, "%s", err);
    sb_buf_free(&url);
    return b;
}

static struct sb_breaker *breaker(const char *name, int32_t failures)
{
    struct sb_breaker_params p = sb_breaker_default_params();
    p.failures = failures;
    p.open_ms = 3600 * 1000; /* stays open for the whole test */
    struct sb_breaker *b = NULL;
    cr_assert_eq(sb_breaker_new(name, &p, &b), 0);
    return b;
}

static struct sb_chain_member member(struct sb_backend *b, struct sb_breaker *br, int32_t retries)
{
    /* 1-2 ms backoffs: the waits are real timers on the loop, kept short. */
    return (struct sb_chain_member){b, br, {retries, 1, 2}, NULL};
}

static struct sb_backend *chain(const struct sb_chain_member *m, size_t n)
{
    struct sb_backend *c = NULL;
    cr_assert_eq(sb_chain_new("alias", m, n, 0, &c), 0);
    return c;
}

/* -----------------------------------------------------------------------------------------------
 * A call and what it received
 * --------------------------------------------------------------------------------------------- */
struct run {
    struct sb_call call;
    struct sb_request req;
    struct sb_backend *b;
    int n_events, n_start, n_text, n_usage, n_finish, n_error, n_done;
    int n_after_end, n_after_cancel;
    bool first_was_start, ended, canceled;
    int cancel_after_texts; /* cancel from on_event after this many TEXT events; 0 = never */
    char backend[64];
    int attempts;
    int err_code, err_status;
    bool err_retryable;
    uint32_t err_retry_after_ms;
    char err_msg[2400];
    char err_param[64];
    char tried[256]; /* START's, or the final ERROR's */
};

static void copy_view(char *dst, size_t cap, struct sb_str s)
{
    size_t n = SB_MIN(s.len, cap - 1);
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static void on_event(struct sb_call *call, const struct sb_event *ev)
{
    struct run *r = call->ud;
    if (r->n_events++ == 0)
        r->first_was_start = ev->type == SB_EV_START;
    r->n_after_end += r->ended;
    r->n_after_cancel += r->canceled;
    switch (ev->type) {
    case SB_EV_START:
        r->n_start++;
        copy_view(r->backend, sizeof r->backend, ev->start.backend);
        r->attempts = ev->start.attempts;
        copy_view(r->tried, sizeof r->tried, ev->start.tried);
        break;
    case SB_EV_TEXT: r->n_text++; break;
    case SB_EV_USAGE: r->n_usage++; break;
    case SB_EV_FINISH:
        r->n_finish++;
        r->ended = true;
        break;
    case SB_EV_ERROR:
        r->n_error++;
        r->ended = true;
        r->err_code = ev->error.code;
        r->err_status = ev->error.http_status;
        r->err_retryable = ev->error.retryable;
        r->err_retry_after_ms = ev->error.retry_after_ms;
        copy_view(r->err_msg, sizeof r->err_msg, ev->error.message);
        copy_view(r->err_param, sizeof r->err_param, ev->error.param);
        if (ev->error.tried.len > 0)
            copy_view(r->tried, sizeof r->tried, ev->error.tried);
        break;
    default: break;
    }
    if (ev->type == SB_EV_TEXT && r->cancel_after_texts && r->n_text == r->cancel_after_texts) {
        sb_backend_cancel(r->b, call);
        r->canceled = true;
    }
}

static void on_done(struct sb_call *call)
{
    struct run *r = call->ud;
    r->n_done++;
}

static void run_init(struct run *r, struct sb_backend *b, const char *prompt, int64_t max_tokens)
{
    memset(r, 0, sizeof *r);
    sb_request_init(&r->req);
    r->req.kind = SB_REQ_COMPLETION;
    r->req.prompt = sb_str_c(prompt);
    r->req.sampling.temperature = 0;
    r->req.max_tokens = max_tokens;
    snprintf(r->req.id, sizeof r->req.id, "req_test");
    r->b = b;
    r->call.req = &r->req;
    r->call.base = fx.base;
    r->call.upstream = fx.up;
    r->call.on_event = on_event;
    r->call.on_done = on_done;
    r->call.ud = r;
}

static void wait_done(struct run *r)
{
    while (r->n_done == 0)
        event_base_loop(fx.base, EVLOOP_ONCE);
}

/* Starts r and waits for its on_done. */
static void run(struct run *r)
{
    cr_assert_eq(sb_backend_start(r->b, &r->call), 0);
    cr_assert_eq(r->n_events, 0, "no event from inside start()");
    wait_done(r);
    cr_assert_eq(r->n_done, 1);
    cr_assert_eq(r->n_after_end, 0, "no event after FINISH or ERROR");
    cr_assert_eq(r->n_after_cancel, 0, "no event after cancel");
}

static void assert_served_by(const struct run *r, const char *backend, int attempts)
{
    cr_assert_eq(r->n_error, 0, "error %d (%d): %s", r->err_code, r->err_status, r->err_msg);
    cr_assert(r->first_was_start);
    cr_assert_eq(r->n_start, 1);
    cr_assert_str_eq(r->backend, backend);
    cr_assert_eq(r->attempts, attempts);
    cr_assert_eq(r->n_usage, 1);
    cr_assert_eq(r->n_finish, 1);
}

/* The value of a series in the exposition (0 when it has none yet). */
static double metric(const char *series)
{
    struct sb_buf out;
    sb_buf_init(&out, 1 << 22);
    cr_assert_eq(sb_metrics_render(&out), 0);
    double v = 0;
    size_t len = strlen(series);
    for (const char *line = out.p; line && *line;) {
        const char *end = strchr(line, '\n');
        if (strncmp(line, series, len) == 0 && line[len] == ' ')
            v = strtod(line + len + 1, NULL);
        line = end ? end + 1 : NULL;
    }
    sb_buf_free(&out);
    return v;
}

/* -----------------------------------------------------------------------------------------------
 * Skipping
 * --------------------------------------------------------------------------------------------- */
Test(chain, a_member_whose_context_is_too_small_is_skipped_not_tried)
{
    struct sb_backend *small = local_member("small", 32);
    struct sb_backend *big = local_member("big", 0);
    struct sb_chain_member m[] = {member(small, NULL, 2), member(big, NULL, 2)};
    struct sb_backend *c = chain(m, 2);

    struct run r;
    run_init(&r, c, LONG_PROMPT, 4);
    run(&r);
    /* One attempt: the small model was never started (a try would have failed with
     * SB_ECONTEXT and counted). */
    assert_served_by(&r, "big", 1);
    cr_assert_str_eq(r.tried, "big", "a member skipped is not tried");
    cr_assert_eq(metric("switchboard_fallbacks_total{from=\"small\",to=\"big\"}"), 1);

    /* A prompt that fits is served by the first member. */
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    assert_served_by(&r, "small", 1);
    cr_assert_str_eq(r.tried, "small");

    struct sb_backend_info info;
    sb_backend_info(c, &info);
    cr_assert_str_eq(info.name, "alias");
    cr_assert_str_eq(info.kind, "local");
    cr_assert(info.ready);
    cr_assert_gt(info.n_ctx, 32, "the largest member's window");

    sb_backend_free(c);
    sb_backend_free(small);
    sb_backend_free(big);
}

Test(chain, a_prompt_that_fits_no_member_is_a_context_error)
{
    struct sb_backend *small = local_member("small", 32);
    struct sb_chain_member m[] = {member(small, NULL, 2)};
    struct sb_backend *c = chain(m, 1);
    struct run r;
    run_init(&r, c, LONG_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_code, SB_ECONTEXT);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not(r.err_retryable);
    cr_assert_not_null(strstr(r.err_msg, "small: skipped, context window 32 tokens"), "%s",
                       r.err_msg);
    sb_backend_free(c);
    sb_backend_free(small);
}

Test(chain, a_member_whose_breaker_is_open_is_skipped)
{
    struct sb_backend *a = local_member("a", 0);
    struct sb_backend *b = local_member("b", 0);
    struct sb_breaker *br = breaker("a", 1);
    struct sb_breaker_ticket t;
    cr_assert(sb_breaker_acquire(br, &t));
    sb_breaker_release(br, &t, SB_BREAKER_FAILURE); /* open now */
    struct sb_chain_member m[] = {member(a, br, 2), member(b, NULL, 2)};
    struct sb_backend *c = chain(m, 2);

    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    assert_served_by(&r, "b", 1);
    cr_assert_str_eq(r.tried, "b");
    struct sb_breaker_stats st;
    sb_breaker_stats(br, &st);
    cr_assert_eq(st.rejected, 1);
    cr_assert_eq(metric("switchboard_breaker_state{backend=\"a\"}"), 2);

    sb_backend_free(c);
    sb_breaker_free(br);
    sb_backend_free(a);
    sb_backend_free(b);
}

Test(chain, every_breaker_open_is_503_with_retry_after)
{
    struct sb_backend *a = local_member("a", 0);
    struct sb_breaker *br = breaker("a", 1);
    struct sb_breaker_ticket t;
    sb_breaker_acquire(br, &t);
    sb_breaker_release(br, &t, SB_BREAKER_FAILURE);
    struct sb_chain_member m[] = {member(a, br, 2)};
    struct sb_backend *c = chain(m, 1);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.err_code, SB_EBACKEND);
    cr_assert_eq(r.err_status, 503);
    cr_assert(r.err_retryable);
    cr_assert(r.err_retry_after_ms > 0 && r.err_retry_after_ms <= 3600u * 1000u);
    cr_assert_not_null(strstr(r.err_msg, "a: skipped, circuit breaker open"), "%s", r.err_msg);
    cr_assert_str_eq(r.tried, "", "nothing was started");
    sb_backend_free(c);
    sb_breaker_free(br);
    sb_backend_free(a);
}

/* -----------------------------------------------------------------------------------------------
 * Retries and fallback on real failures
 * --------------------------------------------------------------------------------------------- */
Test(chain, connection_refused_is_retried_then_falls_back)
{
    struct sb_backend *down = openai_member("down", fx.closed_port, "v1");
    struct sb_backend *local = local_member("local", 0);
    struct sb_breaker *br = breaker("down", 3);
    struct sb_chain_member m[] = {member(down, br, 2), member(local, NULL, 2)};
    struct sb_backend *c = chain(m, 2);

    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    /* Three tries of "down" (the first and two retries), then one of "local". */
    assert_served_by(&r, "local", 4);
    cr_assert_str_eq(r.tried, "down,local", "each member once, however many tries");
    cr_assert_eq(metric("switchboard_retries_total{backend=\"down\"}"), 2);
    cr_assert_eq(metric("switchboard_fallbacks_total{from=\"down\",to=\"local\"}"), 1);
    /* Three consecutive failures opened its breaker... */
    struct sb_breaker_stats st;
    sb_breaker_stats(br, &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);

    /* ...so the next request skips it without trying. */
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    assert_served_by(&r, "local", 1);
    cr_assert_eq(metric("switchboard_retries_total{backend=\"down\"}"), 2);

    sb_backend_free(c);
    sb_breaker_free(br);
    sb_backend_free(down);
    sb_backend_free(local);
}

Test(chain, when_every_try_fails_the_last_error_says_what_was_tried)
{
    struct sb_backend *down = openai_member("down", fx.closed_port, "v1");
    struct sb_chain_member m[] = {member(down, NULL, 1)};
    struct sb_backend *c = chain(m, 1);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_code, SB_ECONNECT);
    cr_assert_eq(r.err_status, 502);
    cr_assert_not_null(strstr(r.err_msg, "down: 2 tries, last connect (502)"), "%s", r.err_msg);
    cr_assert_str_eq(r.tried, "down");
    sb_backend_free(c);
    sb_backend_free(down);
}

Test(chain, bad_credentials_fall_back_without_a_retry)
{
    struct sb_backend *denied = openai_member("denied", fx.port, "e401/v1");
    struct sb_backend *ok = openai_member("ok", fx.port, "ok/v1");
    struct sb_chain_member m[] = {member(denied, NULL, 2), member(ok, NULL, 2)};
    struct sb_backend *c = chain(m, 2);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    assert_served_by(&r, "ok", 2);
    cr_assert_eq(fx.hits[S_E401], 1);
    cr_assert_eq(fx.hits[S_OK], 1);
    sb_backend_free(c);
    sb_backend_free(denied);
    sb_backend_free(ok);
}

Test(chain, server_errors_are_retried_then_fall_back)
{
    struct sb_backend *failing = openai_member("failing", fx.port, "e500/v1");
    struct sb_backend *ok = openai_member("ok", fx.port, "ok/v1");
    struct sb_chain_member m[] = {member(failing, NULL, 2), member(ok, NULL, 2)};
    struct sb_backend *c = chain(m, 2);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    assert_served_by(&r, "ok", 4);
    cr_assert_str_eq(r.tried, "failing,ok");
    cr_assert_eq(fx.hits[S_E500], 3);
    sb_backend_free(c);
    sb_backend_free(failing);
    sb_backend_free(ok);
}

Test(chain, the_clients_own_error_is_neither_retried_nor_passed_on)
{
    struct sb_backend *strict = openai_member("strict", fx.port, "e400/v1");
    struct sb_backend *ok = openai_member("ok", fx.port, "ok/v1");
    struct sb_chain_member m[] = {member(strict, NULL, 2), member(ok, NULL, 2)};
    struct sb_backend *c = chain(m, 2);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not_null(strstr(r.err_msg, "scripted 400"), "%s", r.err_msg);
    cr_assert_null(strstr(r.err_msg, "tried"), "a single try passes unchanged: %s", r.err_msg);
    cr_assert_eq(fx.hits[S_E400], 1);
    cr_assert_eq(fx.hits[S_OK], 0);
    sb_backend_free(c);
    sb_backend_free(strict);
    sb_backend_free(ok);
}

/* A member's refusal that names the request field at fault keeps the name through the chain, so
 * the client's error says which field (OpenAI's param). */
Test(chain, a_members_error_keeps_the_param_it_names)
{
    const char *dir = getenv("SWITCHBOARD_MODELS");
    struct sb_buf path;
    sb_buf_init(&path, 4096);
    cr_assert_eq(sb_buf_printf(&path, "%s/%s", dir && *dir ? dir : "../shared/models", MODEL), 0);
    struct sb_model_config cfg = {.name = "emb", .backend = "local", .path = path.p};
    cfg.embeddings = true;
    cfg.keep_alive = -1;
    struct sb_backend *emb = NULL;
    char err[512] = "";
    cr_assert_eq(sb_local_backend_ops.create(&cfg, &emb, err, sizeof err), 0, "%s", err);
    sb_buf_free(&path);
    struct sb_chain_member m[] = {member(emb, NULL, 2)};
    struct sb_backend *c = chain(m, 1);
    struct sb_str input = SB_STR_LIT(SHORT_PROMPT);
    struct run r;
    run_init(&r, c, "", 0);
    r.req.kind = SB_REQ_EMBED;
    r.req.inputs = &input;
    r.req.n_inputs = 1;
    r.req.dimensions = 100000; /* far past the model's width */
    run(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 400);
    cr_assert_str_eq(r.err_param, "dimensions");
    cr_assert_not_null(strstr(r.err_msg, "dimensions"), "%s", r.err_msg);
    sb_backend_free(c);
    sb_backend_free(emb);
}

Test(chain, a_stream_that_fails_after_start_is_forwarded_as_is)
{
    struct sb_backend *cut = openai_member("cut", fx.port, "cut/v1");
    struct sb_backend *ok = openai_member("ok", fx.port, "ok/v1");
    struct sb_chain_member m[] = {member(cut, NULL, 2), member(ok, NULL, 2)};
    struct sb_backend *c = chain(m, 2);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    run(&r);
    cr_assert(r.first_was_start);
    cr_assert_str_eq(r.backend, "cut");
    cr_assert_eq(r.attempts, 1);
    cr_assert_eq(r.n_text, 1);
    cr_assert_eq(r.n_error, 1, "the in-stream error reaches the client");
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(fx.hits[S_CUT], 1, "no retry once output was forwarded");
    cr_assert_eq(fx.hits[S_OK], 0, "no fallback once output was forwarded");
    sb_backend_free(c);
    sb_backend_free(cut);
    sb_backend_free(ok);
}

Test(chain, a_refusal_by_start_is_the_chains_own_when_alone)
{
    struct sb_backend *a = local_member("a", 0);
    struct sb_backend *b = local_member("b", 0);
    struct sb_chain_member m[] = {member(a, NULL, 2), member(b, NULL, 2)};
    struct sb_backend *c = chain(m, 2);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    r.req.kind = SB_REQ_CHAT; /* with no messages: the client's error, no fallback */
    cr_assert_eq(sb_backend_start(c, &r.call), SB_EINVAL);
    event_base_loop(fx.base, EVLOOP_NONBLOCK);
    cr_assert_eq(r.n_events + r.n_done, 0, "nothing is called after a refusal");

    /* Embeddings: each local member refuses (unsupported), so the chain moves on and then
     * reports the last refusal as an event. */
    run_init(&r, c, SHORT_PROMPT, 4);
    struct sb_str input = SB_STR_LIT("hello");
    r.req.kind = SB_REQ_EMBED;
    r.req.inputs = &input;
    r.req.n_inputs = 1;
    run(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_code, SB_EUNSUPPORTED);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not_null(strstr(r.err_msg, "a: 1 try, last unsupported"), "%s", r.err_msg);
    cr_assert_not_null(strstr(r.err_msg, "b: 1 try, last unsupported"), "%s", r.err_msg);
    sb_backend_free(c);
    sb_backend_free(a);
    sb_backend_free(b);
}

/* -----------------------------------------------------------------------------------------------
 * Cancellation
 * --------------------------------------------------------------------------------------------- */
Test(chain, cancel_while_streaming_stops_every_event)
{
    struct sb_backend *a = local_member("a", 0);
    struct sb_chain_member m[] = {member(a, NULL, 2)};
    struct sb_backend *c = chain(m, 1);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 64);
    r.cancel_after_texts = 2;
    run(&r);
    cr_assert(r.canceled);
    cr_assert_eq(r.n_text, 2);
    cr_assert_eq(r.n_finish + r.n_error, 0);
    sb_backend_free(c);
    sb_backend_free(a);
}

Test(chain, cancel_during_a_backoff_ends_at_once)
{
    struct sb_backend *down = openai_member("down", fx.closed_port, "v1");
    struct sb_breaker *br = breaker("down", 100);
    /* A backoff of an hour: only the cancel can end this call in time. */
    struct sb_chain_member m[] = {{down, br, {2, 3600u * 1000u, 3600u * 1000u}, NULL}};
    struct sb_backend *c = NULL;
    cr_assert_eq(sb_chain_new("alias", m, 1, 7200u * 1000u, &c), 0);
    struct run r;
    run_init(&r, c, SHORT_PROMPT, 4);
    cr_assert_eq(sb_backend_start(c, &r.call), 0);
    /* The first try's failure reaches the breaker when the retry is scheduled. */
    struct sb_breaker_stats st;
    do {
        event_base_loop(fx.base, EVLOOP_ONCE);
        sb_breaker_stats(br, &st);
    } while (st.consecutive_failures == 0);
    cr_assert_eq(metric("switchboard_retries_total{backend=\"down\"}"), 1);
    sb_backend_cancel(c, &r.call);
    cr_assert_eq(r.n_done, 0, "on_done never from inside cancel");
    wait_done(&r);
    cr_assert_eq(r.n_events, 0);
    sb_backend_free(c);
    sb_breaker_free(br);
    sb_backend_free(down);
}

/* -----------------------------------------------------------------------------------------------
 * Built from a config
 * --------------------------------------------------------------------------------------------- */
Test(chain, the_config_builder_expands_fallbacks_depth_first)
{
    struct sb_buf yaml;
    sb_buf_init(&yaml, 4096);
    const char *model_keys = "    backend: openai\n"
                             "    retries: {max: 0}\n"
                             "    breaker: {failures: 1}\n";
    sb_buf_printf(&yaml, "models:\n");
    static const char *const names[] = {"a", "b", "c", "d"};
    static const char *const fallbacks[] = {"[b, c]", "[d]", "[]", "[]"};
    for (size_t i = 0; i < 4; i++)
        sb_buf_printf(&yaml,
                      "  - name: %s\n    base_url: http://127.0.0.1:%d/v1\n%s"
                      "    fallback: %s\n",
                      names[i], fx.closed_port, model_keys, fallbacks[i]);
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 4096);
    int rc = sb_config_parse("test.yaml", yaml.p, yaml.len, NULL, &cfg, &errors);
    cr_assert_eq(rc, 0, "%s", errors.p ? errors.p : "");
    struct sb_backend *backends[4];
    for (size_t i = 0; i < 4; i++)
        backends[i] = openai_member(names[i], fx.closed_port, "v1");

    struct sb_resil *res = NULL;
    char err[256];
    cr_assert_eq(sb_resil_new(cfg, backends, 3, &res, err, sizeof err), SB_EINVAL);
    cr_assert_null(res);
    cr_assert_eq(sb_resil_new(cfg, backends, 4, &res, err, sizeof err), 0, "%s", err);
    struct sb_backend **served = sb_resil_backends(res);
    struct sb_backend_info info;
    sb_backend_info(served[0], &info);
    cr_assert_str_eq(info.name, "a");

    struct run r;
    run_init(&r, served[0], SHORT_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.err_code, SB_ECONNECT);
    const char *pa = strstr(r.err_msg, "a: 1 try");
    const char *pb = strstr(r.err_msg, "b: 1 try");
    const char *pd = strstr(r.err_msg, "d: 1 try");
    const char *pc = strstr(r.err_msg, "c: 1 try");
    cr_assert(pa && pb && pc && pd && pa < pb && pb < pd && pd < pc, "order: %s", r.err_msg);

    /* Each model's breaker (failures: 1) opened, and it is shared: b's own chain skips it. */
    struct sb_breaker_stats st;
    sb_breaker_stats(sb_resil_breaker(res, 1), &st);
    cr_assert_eq(st.state, SB_BREAKER_OPEN);
    cr_assert_null(sb_resil_breaker(res, 4));
    run_init(&r, served[1], SHORT_PROMPT, 4);
    run(&r);
    cr_assert_eq(r.err_status, 503);
    cr_assert_not_null(strstr(r.err_msg, "b: skipped, circuit breaker open"), "%s", r.err_msg);

    sb_resil_free(res);
    for (size_t i = 0; i < 4; i++)
        sb_backend_free(backends[i]);
    sb_config_free(cfg);
    sb_buf_free(&errors);
    sb_buf_free(&yaml);
}
