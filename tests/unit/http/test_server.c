/* Tests for the server over loopback, with no models configured: routing answers, JSON for the
 * requests libevent refuses itself (body over the limit, Content-Length or chunked; malformed
 * requests; oversized headers), keep-alive, and a stop requested from another thread. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "http/internal.h"

#define LIMIT 1000 /* listen.max_body_bytes for these tests */

static char host[] = "127.0.0.1";
static struct sb_config cfg;
static struct sb_server *server;
static pthread_t thread;
static int run_rc = -1;

static void *run_server(void *arg)
{
    SB_UNUSED(arg);
    run_rc = sb_server_run(server);
    return NULL;
}

static void start(void)
{
    char err[256] = "";

    cr_assert_eq(evthread_use_pthreads(), 0);
    sb_log_set_level(SB_LOG_WARN);
    cfg = (struct sb_config){0};
    cfg.listen.host = host;
    cfg.listen.port = 0;
    cfg.listen.max_body_bytes = LIMIT;
    cfg.listen.io_threads = 1;
    cr_assert_eq(sb_server_new(&cfg, NULL, 0, &server, err, sizeof(err)), 0, "%s", err);
    cr_assert_gt(sb_server_port(server), 0);
    cr_assert_eq(pthread_create(&thread, NULL, run_server, NULL), 0);
}

static void stop(void)
{
    sb_server_stop(server);
    pthread_join(thread, NULL);
    cr_assert_eq(run_rc, 0);
    sb_server_free(server);
}

TestSuite(server, .init = start, .fini = stop, .timeout = 30);

static int dial(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(sb_server_port(server))};
    struct timeval tv = {5, 0};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    cr_assert_geq(fd, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        cr_assert_gt(n, 0);
        p += n;
        len -= (size_t)n;
    }
}

/* Reads one response: the head, then Content-Length bytes of body. Returns it malloc'd. */
static char *read_response(int fd)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);

    cr_assert_not_null(buf);
    for (;;) {
        buf[len] = '\0';
        const char *end = strstr(buf, "\r\n\r\n");
        const char *cl = strstr(buf, "Content-Length: ");
        if (end != NULL && cl != NULL && cl < end &&
            len >= (size_t)(end + 4 - buf) + strtoul(cl + 16, NULL, 10))
            break;
        cr_assert_lt(len, cap - 1, "response too long");
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        cr_assert_gt(n, 0, "connection closed or timed out after %zu bytes: %s", len, buf);
        len += (size_t)n;
    }
    return buf;
}

/* Reads until what has arrived contains want. Returns it malloc'd. */
static char *read_until(int fd, const char *want)
{
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);

    cr_assert_not_null(buf);
    buf[0] = '\0';
    while (strstr(buf, want) == NULL) {
        cr_assert_lt(len, cap - 1, "response too long");
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        cr_assert_gt(n, 0, "connection closed or timed out after %zu bytes: %s", len, buf);
        len += (size_t)n;
        buf[len] = '\0';
    }
    return buf;
}

static char *exchange(const char *request)
{
    int fd = dial();
    char *resp;

    send_all(fd, request, strlen(request));
    resp = read_response(fd);
    close(fd);
    return resp;
}

/* POSTs body (a NUL-terminated string) to path on a new connection. */
static char *post(const char *path, const char *body)
{
    char req[4096];

    snprintf(req, sizeof(req), "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s", path,
             strlen(body), body);
    return exchange(req);
}

static void assert_has(const char *resp, const char *what)
{
    cr_assert_not_null(strstr(resp, what), "no \"%s\" in:\n%s", what, resp);
}

Test(server, health_is_json_with_a_request_id)
{
    char *r = exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "\r\nContent-Type: application/json; charset=utf-8\r\n");
    assert_has(r, "\r\nx-request-id: req_");
    assert_has(r, "\r\n\r\n{\"status\":\"ok\"}");
    free(r);
}

Test(server, ready_with_no_models_is_ready)
{
    char *r = exchange("GET /ready?verbose=1 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "{\"status\":\"ready\",\"models\":[]}");
    free(r);
}

Test(server, unknown_path_is_404_in_openai_shape)
{
    char *r = exchange("GET /v2/nothing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "\"type\":\"invalid_request_error\"");
    assert_has(r, "\"code\":\"unknown_url\"");
    assert_has(r, "GET /v2/nothing");
    free(r);
}

Test(server, wrong_method_is_405_with_allow)
{
    char *r = exchange("GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 405 Method Not Allowed\r\n");
    assert_has(r, "\r\nAllow: POST\r\n");
    assert_has(r, "\"code\":\"method_not_allowed\"");
    free(r);
}

Test(server, an_unknown_model_is_404_model_not_found)
{
    char *r = post("/v1/chat/completions",
                   "{\"model\":\"gpt-4\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "\"code\":\"model_not_found\"");
    assert_has(r, "no models are configured");
    free(r);
}

Test(server, a_malformed_body_is_400_before_any_model_lookup)
{
    char *r = post("/v1/completions", "{\"mo");
    assert_has(r, "HTTP/1.1 400 Bad Request\r\n");
    assert_has(r, "\"type\":\"invalid_request_error\"");
    free(r);
}

Test(server, a_content_length_over_the_limit_is_413_json)
{
    char head[256];
    char body[LIMIT + 1];
    int fd = dial();
    char *r;

    memset(body, 'a', sizeof(body));
    snprintf(head, sizeof(head),
             "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n",
             sizeof(body));
    send_all(fd, head, strlen(head));
    send_all(fd, body, sizeof(body));
    r = read_response(fd);
    assert_has(r, "HTTP/1.1 413 Content Too Large\r\n");
    assert_has(r, "\r\nConnection: close\r\n");
    assert_has(r, "\"code\":\"request_too_large\"");
    assert_has(r, "max_body_bytes = 1000 bytes");
    cr_assert_null(strstr(r, "<HTML>"));
    free(r);
    close(fd);
}

Test(server, a_chunked_body_over_the_limit_is_413_json)
{
    const char head[] =
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    char chunk[600 + 16];
    int fd = dial();
    char *r;

    send_all(fd, head, strlen(head));
    /* Two chunks of 600: the second takes the body past the limit. */
    for (int i = 0; i < 2; i++) {
        int n = snprintf(chunk, sizeof(chunk), "258\r\n");
        memset(chunk + n, 'b', 600);
        memcpy(chunk + n + 600, "\r\n", 2);
        send_all(fd, chunk, (size_t)n + 602);
    }
    r = read_response(fd);
    assert_has(r, "HTTP/1.1 413 Content Too Large\r\n");
    assert_has(r, "\"code\":\"request_too_large\"");
    free(r);
    close(fd);
}

Test(server, a_body_at_the_limit_is_read)
{
    char req[LIMIT + 256];
    int n = snprintf(req, sizeof(req),
                     "POST /tokenize HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", LIMIT);
    char *r;

    /* A JSON object padded with spaces to exactly LIMIT bytes. */
    memset(req + n, ' ', LIMIT);
    memcpy(req + n, "{\"model\":\"m\",\"content\":\"x\"}", 27);
    req[n + LIMIT] = '\0';
    r = exchange(req);
    assert_has(r, "HTTP/1.1 404 Not Found\r\n"); /* parsed: the model does not exist */
    assert_has(r, "\"code\":\"model_not_found\"");
    free(r);
}

Test(server, a_malformed_request_line_is_400_json)
{
    char *r = exchange("NONSENSE\r\n\r\n");
    assert_has(r, "HTTP/1.1 400 Bad Request\r\n");
    assert_has(r, "\"code\":\"invalid_request\"");
    free(r);
}

Test(server, oversized_headers_are_400_json)
{
    size_t big = SB__MAX_HEADERS_BYTES + 100;
    char *req = malloc(big + 128);
    char *r;
    int n = snprintf(req, big + 128, "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ");

    memset(req + n, 'z', big);
    memcpy(req + n + big, "\r\n\r\n", 5);
    r = exchange(req);
    assert_has(r, "HTTP/1.1 400 Bad Request\r\n");
    assert_has(r, "application/json");
    free(r);
    free(req);
}

Test(server, keep_alive_serves_several_requests_on_one_connection)
{
    const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = dial();

    for (int i = 0; i < 3; i++) {
        send_all(fd, req, strlen(req));
        char *r = read_response(fd);
        assert_has(r, "HTTP/1.1 200 OK\r\n");
        free(r);
    }
    close(fd);
}

Test(server, pipelined_requests_are_answered_in_order)
{
    const char reqs[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
                        "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    int fd = dial();
    char *r;

    send_all(fd, reqs, strlen(reqs));
    /* Both may arrive in one read: read until the second is there. */
    r = read_until(fd, "\"unknown_url\"}}");
    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    cr_assert_lt(strstr(r, "HTTP/1.1 200 OK\r\n"), strstr(r, "HTTP/1.1 404 Not Found\r\n"));
    free(r);
    close(fd);
}

/* ---------------------------------------------------------------------------------------------
 * Each API's paths answer errors in that API's shape.
 * ------------------------------------------------------------------------------------------- */
/* Sends a Content-Length over the limit to path; returns the response. */
static char *post_too_large(const char *path)
{
    char head[256];
    char body[LIMIT + 1];
    int fd = dial();
    char *r;

    memset(body, 'a', sizeof(body));
    snprintf(head, sizeof(head), "POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n", path,
             sizeof(body));
    send_all(fd, head, strlen(head));
    send_all(fd, body, sizeof(body));
    r = read_response(fd);
    close(fd);
    return r;
}

Test(server, a_body_over_the_limit_gets_the_error_shape_of_its_paths_api)
{
    char *r = post_too_large("/v1/messages");
    assert_has(r, "HTTP/1.1 413 Content Too Large\r\n");
    assert_has(r, "{\"type\":\"error\",\"error\":{\"type\":\"request_too_large\"");
    free(r);
    r = post_too_large("/api/chat?x=1");
    assert_has(r, "HTTP/1.1 413 Content Too Large\r\n");
    assert_has(r, "\r\n\r\n{\"error\":\"The request body is larger");
    free(r);
    /* The next connection's request is its own: OpenAI's shape again. */
    r = post_too_large("/v1/chat/completions");
    assert_has(r, "\"code\":\"request_too_large\"");
    free(r);
}

Test(server, unknown_models_and_paths_answer_in_each_apis_shape)
{
    char *r =
        post("/v1/messages", "{\"model\":\"claude-x\",\"max_tokens\":5,\"messages\":[{\"role\":"
                             "\"user\",\"content\":\"hi\"}]}");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\"");
    free(r);
    r = post("/api/chat",
             "{\"model\":\"llama\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "\r\n\r\n{\"error\":\"model 'llama' not found\"}");
    free(r);
    r = post("/api/show", "{\"model\":\"llama\"}");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "\r\n\r\n{\"error\":\"model 'llama' not found\"}");
    free(r);
    r = exchange("POST /api/pull HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "\r\n\r\n{\"error\":\"Invalid URL (POST /api/pull)");
    free(r);
    r = exchange("GET /api/chat HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 405 Method Not Allowed\r\n");
    assert_has(r, "\r\n\r\n{\"error\":");
    free(r);
    r = exchange("GET /v1/messages/count_tokens HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 404 Not Found\r\n");
    assert_has(r, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\"");
    free(r);
}

Test(server, ollamas_informational_endpoints)
{
    const char head_req[] = "HEAD / HTTP/1.1\r\nHost: x\r\n\r\n";
    const char get_req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    char *r = exchange("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    int fd;

    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "\r\n\r\nOllama is running");
    free(r);
    /* HEAD: GET's headers and length, no body; the connection stays usable. */
    fd = dial();
    send_all(fd, head_req, strlen(head_req));
    r = read_until(fd, "\r\n\r\n");
    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "\r\nContent-Length: 17\r\n");
    cr_assert_null(strstr(r, "Ollama is running"), "HEAD has no body: %s", r);
    free(r);
    send_all(fd, get_req, strlen(get_req));
    r = read_response(fd);
    cr_assert_eq(strncmp(r, "HTTP/1.1 200 OK\r\n", 17), 0, "%s", r);
    free(r);
    close(fd);
    r = exchange("GET /api/version HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "{\"version\":\"");
    free(r);
    r = exchange("GET /api/tags HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "{\"models\":[]}");
    free(r);
    r = exchange("GET /api/ps HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "{\"models\":[]}");
    free(r);
}

Test(server, the_model_list_takes_anthropics_shape_for_anthropic_clients)
{
    char *r = exchange("GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "\"object\":\"list\"");
    free(r);
    r = exchange("GET /v1/models HTTP/1.1\r\nHost: x\r\nanthropic-version: 2023-06-01\r\n\r\n");
    assert_has(r, "\"has_more\":false");
    free(r);
    r = exchange("GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Api-Key: k\r\n\r\n");
    assert_has(r, "\"has_more\":false");
    free(r);
}

Test(server, metrics_are_prometheus_text)
{
    char *r;

    /* A refused model request is metered too. */
    free(post("/v1/chat/completions", "{\"mo"));
    r = exchange("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_has(r, "HTTP/1.1 200 OK\r\n");
    assert_has(r, "\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n");
    assert_has(r, "# TYPE switchboard_requests_total counter\n");
    assert_has(r, "switchboard_requests_total{model=\"\",backend=\"\",status=\"400\"} ");
    assert_has(r, "# TYPE switchboard_gateway_overhead_seconds histogram\n");
    free(r);
}
