/* Writing responses: standard headers, whole and streamed replies handed to libevent, JSON error
 * replies, the per-request log line, and the JSON stand-in for libevent's own HTML error pages. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static const char json_type[] = "application/json; charset=utf-8";

/* ---------------------------------------------------------------------------------------------
 * Status lines
 * ------------------------------------------------------------------------------------------- */
struct status_reason {
    int status;
    const char *reason;
};

/* libevent's own table stops at 417 and calls a 429 "Client Error"; these are RFC 9110's. */
static const struct status_reason reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {408, "Request Timeout"},
    {413, "Content Too Large"},
    {417, "Expectation Failed"},
    {429, "Too Many Requests"},
    {431, "Request Header Fields Too Large"},
    {500, "Internal Server Error"},
    {501, "Not Implemented"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

const char *sb__status_reason(int status)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(reasons); i++) {
        if (reasons[i].status == status)
            return reasons[i].reason;
    }
    return NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Sending. Every evhttp_send_* call is bracketed by send_enter/send_leave: the output watch in
 * server.c then knows the bytes are ours, and a connection that libevent frees from inside the
 * call (an HTTP/1.0 stream ending) is freed only once the call has returned.
 * ------------------------------------------------------------------------------------------- */
static void send_enter(struct sb__conn *c)
{
    if (c != NULL)
        c->in_send = true;
}

static void send_leave(struct sb__conn *c)
{
    if (c == NULL)
        return;
    c->in_send = false;
    if (c->closed)
        sb__conn_free_closed(c);
}

/* libevent detaches a request from its connection when the client leaves mid-response and then
 * leaves the request to us: free it, and tell the caller not to send. */
static bool client_present(struct evhttp_request *ev)
{
    if (evhttp_request_get_connection(ev) != NULL)
        return true;
    evhttp_request_free(ev);
    return false;
}

void sb__add_std_headers(struct sb__loop *loop, struct evhttp_request *ev, const char *req_id,
                         const char *model)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(ev);

    evhttp_add_header(h, "x-request-id", req_id);
    if (model != NULL)
        evhttp_add_header(h, "x-switchboard-backend", model);
    /* A stopping server answers what is in flight and then closes: tell keep-alive clients. */
    if (loop->server->phase != SB__RUNNING)
        evhttp_add_header(h, "Connection", "close");
}

static bool send_buffer(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                        int status, const char *content_type, struct evbuffer *body,
                        const char *req_id, const char *model)
{
    struct evkeyvalq *h;

    if (!client_present(ev))
        return false;
    h = evhttp_request_get_output_headers(ev);
    evhttp_add_header(h, "Content-Type", content_type);
    /* A refusal that knows when to retry (a rate limit, a budget) has set its own. */
    if (status == 429 && evhttp_find_header(h, "Retry-After") == NULL)
        evhttp_add_header(h, "Retry-After", "1");
    sb__add_std_headers(loop, ev, req_id, model);
    /* libevent 2.1 writes a HEAD response's body, without its length: the body would be read as
     * the next response. The length is the GET's, and no body follows (RFC 9110, 9.3.2). */
    if (evhttp_request_get_command(ev) == EVHTTP_REQ_HEAD && body != NULL) {
        char len[32];
        snprintf(len, sizeof(len), "%zu", evbuffer_get_length(body));
        evhttp_add_header(h, "Content-Length", len);
        evbuffer_drain(body, evbuffer_get_length(body));
    }
    send_enter(conn);
    evhttp_send_reply(ev, status, sb__status_reason(status), body);
    send_leave(conn);
    return true;
}

bool sb__send_reply(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                    int status, const char *content_type, struct sb_str body, const char *req_id,
                    const char *model)
{
    struct evbuffer *buf = evbuffer_new();
    bool sent;

    if (buf == NULL || evbuffer_add(buf, body.p, body.len) != 0) {
        /* Out of memory: an empty body still tells the client how it went. */
        if (buf != NULL)
            evbuffer_drain(buf, evbuffer_get_length(buf));
    }
    sent = send_buffer(loop, conn, ev, status, content_type, buf, req_id, model);
    if (buf != NULL)
        evbuffer_free(buf);
    return sent;
}

static void free_owned(const void *data, size_t len, void *arg)
{
    SB_UNUSED(len);
    SB_UNUSED(arg);
    free((void *)data);
}

bool sb__send_reply_owned(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                          int status, const char *content_type, char *body, size_t len,
                          const char *req_id, const char *model)
{
    struct evbuffer *buf = evbuffer_new();
    bool sent;

    /* A model's whole answer can be megabytes: the buffer references it rather than copying. */
    if (buf == NULL || evbuffer_add_reference(buf, body, len, free_owned, NULL) != 0) {
        free(body);
        if (buf != NULL)
            evbuffer_free(buf);
        return sb__send_reply(loop, conn, ev, status, content_type, SB_STR_NULL, req_id, model);
    }
    sent = send_buffer(loop, conn, ev, status, content_type, buf, req_id, model);
    evbuffer_free(buf);
    return sent;
}

bool sb__send_stream_start(struct sb__loop *loop, struct sb__conn *conn, struct evhttp_request *ev,
                           const char *content_type, const char *req_id, const char *model)
{
    struct evkeyvalq *h;

    if (!client_present(ev))
        return false;
    h = evhttp_request_get_output_headers(ev);
    evhttp_add_header(h, "Content-Type", content_type);
    /* Caches and proxies (nginx buffers by default) must pass each event on as it comes. */
    evhttp_add_header(h, "Cache-Control", "no-cache");
    evhttp_add_header(h, "X-Accel-Buffering", "no");
    sb__add_std_headers(loop, ev, req_id, model);
    send_enter(conn);
    evhttp_send_reply_start(ev, 200, "OK");
    send_leave(conn);
    return true;
}

bool sb__send_stream_chunk(struct sb__conn *conn, struct evhttp_request *ev, struct sb_str bytes)
{
    struct evbuffer *buf;

    if (!client_present(ev))
        return false;
    if (bytes.len == 0)
        return true;
    buf = evbuffer_new();
    if (buf == NULL || evbuffer_add(buf, bytes.p, bytes.len) != 0) {
        if (buf != NULL)
            evbuffer_free(buf);
        return true; /* out of memory: this chunk is lost; the stream's end still follows */
    }
    send_enter(conn);
    evhttp_send_reply_chunk(ev, buf);
    send_leave(conn);
    evbuffer_free(buf);
    return true;
}

void sb__send_stream_end(struct sb__conn *conn, struct evhttp_request *ev)
{
    /* Also frees a request whose client has gone (libevent does that when it has no connection). */
    send_enter(conn);
    evhttp_send_reply_end(ev);
    send_leave(conn);
}

/* ---------------------------------------------------------------------------------------------
 * Replies from handlers
 * ------------------------------------------------------------------------------------------- */
void sb__reply_typed(struct sb__req *r, int status, const char *content_type, struct sb_str body,
                     const char *model)
{
    sb__log_request(r->id, r->method, r->path, status, model, r->t0, NULL, false, NULL);
    sb__send_reply(r->loop, r->conn, r->ev, status, content_type, body, r->id, model);
}

void sb__reply(struct sb__req *r, int status, struct sb_str json, const char *model)
{
    sb__reply_typed(r, status, json_type, json, model);
}

void sb__reply_error(struct sb__req *r, const struct sb_api_error *err, const char *model)
{
    const struct sb_codec *codec = r->route != NULL ? r->route->codec : sb__codec_for_path(r->path);
    struct sb_buf body;

    /* A status outside the error range would be a bug upstream; the client still gets an error. */
    int status = err->http_status >= 400 && err->http_status <= 599 ? err->http_status : 500;

    sb_buf_init(&body, SB__MAX_SMALL_REPLY_BYTES);
    if (codec->write_error(err, &body) != 0)
        sb_buf_reset(&body);
    sb__reply(r, status, sb_buf_view(&body), model);
    sb_buf_free(&body);
}

/* ---------------------------------------------------------------------------------------------
 * The request log
 * ------------------------------------------------------------------------------------------- */
void sb__sanitize_path(const char *path, char *out, size_t cap)
{
    /* Room for "..." and the NUL when the path is cut. */
    const size_t room = cap > 4 ? cap - 4 : 0;
    size_t n = 0;

    if (cap == 0)
        return;
    if (path == NULL)
        path = "";
    for (; n < room && path[n] != '\0'; n++) {
        unsigned char ch = (unsigned char)path[n];
        out[n] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    if (path[n] != '\0') {
        size_t dots = SB_MIN((size_t)3, cap - 1 - n);
        memcpy(out + n, "...", dots);
        n += dots;
    }
    out[n] = '\0';
}

void sb__log_request(const char *req_id, unsigned method, const char *path, int status,
                     const char *model, uint64_t t0, const struct sb_usage *usage, bool stream,
                     const char *note)
{
    char tokens[64] = "";
    char duration[32] = "-";
    char shown[160];

    /* The path is the client's bytes: no control characters into the log. */
    sb__sanitize_path(path != NULL ? path : "-", shown, sizeof(shown));
    if (t0 != 0)
        snprintf(duration, sizeof(duration), "%.1fms", (double)(sb_now_ns() - t0) / 1e6);
    if (usage != NULL)
        snprintf(tokens, sizeof(tokens), " tokens=%lld+%lld", (long long)usage->prompt_tokens,
                 (long long)usage->completion_tokens);
    sb_log(SB_LOG_INFO, req_id, "%s %s %d model=%s %s%s%s%s%s",
           method != 0 ? sb__method_name(method) : "-", shown, status, model != NULL ? model : "-",
           duration, tokens, stream ? " stream" : "", note ? " " : "", note ? note : "");
}

/* ---------------------------------------------------------------------------------------------
 * libevent's error pages, in JSON
 * ------------------------------------------------------------------------------------------- */
struct parser_error {
    int status;
    const char *code; /* OpenAI-style error.code, or NULL */
    const char *message;
};

/* What each page libevent writes means for a client of this server. */
static const struct parser_error parser_errors[] = {
    {400, "invalid_request",
     "The request could not be read as HTTP/1.1: a malformed request line, header or chunk, or "
     "more than 32768 bytes of headers."},
    {413, "request_too_large", NULL}, /* the message names the limit: see below */
    {417, "expectation_failed", "Only \"Expect: 100-continue\" is supported."},
    {501, "method_not_supported", "The HTTP method is not supported."},
};

int sb__parser_error_status(struct sb_str head)
{
    int status = 0;

    if (head.len < 12 || memcmp(head.p, "HTTP/1.", 7) != 0 || head.p[8] != ' ')
        return 0;
    for (size_t i = 9; i < 12; i++) {
        if (head.p[i] < '0' || head.p[i] > '9')
            return 0;
        status = status * 10 + (head.p[i] - '0');
    }
    return status >= 400 && status <= 599 ? status : 0;
}

bool sb__sniff_request_path(struct sb_str head, char *out, size_t cap)
{
    /* The longest method libevent parses is "CONNECT" / "OPTIONS". */
    const size_t max_method = 16;
    size_t i = 0, start, end;

    while (i < head.len && i < max_method && head.p[i] >= 'A' && head.p[i] <= 'Z')
        i++;
    if (i == 0 || i >= head.len || head.p[i] != ' ')
        return false;
    start = i + 1;
    if (start >= head.len || head.p[start] != '/')
        return false;
    for (end = start; end < head.len; end++) {
        char ch = head.p[end];
        if (ch == ' ' || ch == '?' || ch == '#')
            break;
        if ((unsigned char)ch < 0x21 || (unsigned char)ch > 0x7e)
            return false; /* not a request line (or not one we route) */
    }
    if (cap == 0 || (end == head.len && end - start < cap - 1))
        return false; /* the line is still arriving */
    /* A path too long for out is cut: its prefix still names its API, and no route is that long. */
    end = SB_MIN(end, start + cap - 1);
    memcpy(out, head.p + start, end - start);
    out[end - start] = '\0';
    return true;
}

int sb__parser_error_response(int status, char http_minor, size_t max_body, const char *req_id,
                              const struct sb_codec *codec, struct sb_buf *out)
{
    const struct parser_error *pe = NULL;
    struct sb_api_error err;
    struct sb_buf body;
    const char *reason = sb__status_reason(status);
    int rc;

    for (size_t i = 0; i < SB_ARRAY_LEN(parser_errors); i++) {
        if (parser_errors[i].status == status)
            pe = &parser_errors[i];
    }
    if (pe != NULL && pe->message == NULL)
        sb_api_fail(&err, status, "invalid_request_error", pe->code, NULL,
                    "The request body is larger than this server accepts (listen.max_body_bytes "
                    "= %zu bytes). Send a smaller request, or raise the limit in the "
                    "configuration.",
                    max_body);
    else if (pe != NULL)
        sb_api_fail(&err, status, "invalid_request_error", pe->code, NULL, "%s", pe->message);
    else
        sb_api_fail(&err, status, status >= 500 ? "server_error" : "invalid_request_error", NULL,
                    NULL, "The HTTP server refused the request.");
    sb_buf_init(&body, 4096);
    rc = (codec != NULL ? codec : &sb_openai_codec)->write_error(&err, &body);
    if (rc == 0)
        rc = sb_buf_printf(out,
                           "HTTP/1.%c %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                           "x-request-id: %s\r\nConnection: close\r\n\r\n",
                           http_minor == '0' ? '0' : '1', status, reason ? reason : "Error",
                           json_type, body.len, req_id);
    if (rc == 0)
        rc = sb_buf_append_str(out, sb_buf_view(&body));
    sb_buf_free(&body);
    return rc;
}
