/* A fast loopback stand-in for an OpenAI-compatible server, the baseline of
 * bench/gateway_overhead.sh: one thread, epoll, HTTP/1.1 keep-alive (pipelining included). Every
 * POST answers with a fixed, valid chat.completion: as one JSON object, or, when the body asks for
 * "stream": true, as server-sent chunks (role, three content deltas, finish, usage, [DONE]) with a
 * Content-Length. Anything else gets 404. It parses only what it needs (the header end,
 * Content-Length, the stream flag) so that it costs next to nothing beside the gateway.
 *
 *   loopback_upstream PORT      listens on 127.0.0.1:PORT until SIGTERM / SIGINT
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

enum { MAX_EVENTS = 256, IN_MAX = 1 << 20, OUT_MAX = 1 << 20 };

static const char json_body[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"bench-upstream\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"Hello from the loopback upstream.\"},\"logprobs\":null,\"finish_reason\":"
    "\"stop\"}],\"usage\":{\"prompt_tokens\":24,\"completion_tokens\":7,\"total_tokens\":31}}";

/* clang-format off */
#define CHUNK(delta, finish)                                                                       \
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000," \
    "\"model\":\"bench-upstream\",\"choices\":[{\"index\":0,\"delta\":" delta                       \
    ",\"logprobs\":null,\"finish_reason\":" finish "}]}\n\n"

static const char sse_body[] =
    CHUNK("{\"role\":\"assistant\",\"content\":\"\"}", "null")
    CHUNK("{\"content\":\"Hello from\"}", "null")
    CHUNK("{\"content\":\" the loopback\"}", "null")
    CHUNK("{\"content\":\" upstream.\"}", "null")
    CHUNK("{}", "\"stop\"")
    "data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
    "\"model\":\"bench-upstream\",\"choices\":[],\"usage\":{\"prompt_tokens\":24,"
    "\"completion_tokens\":7,\"total_tokens\":31}}\n\n"
    "data: [DONE]\n\n";
/* clang-format on */

static const char not_found[] = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";

/* The two full responses, headers included, built once at start. */
static char json_resp[2048], sse_resp[4096];
static size_t json_len, sse_len;

struct conn {
    int fd;
    size_t in_len, out_len, out_off;
    char in[IN_MAX];
    char out[OUT_MAX];
};

static volatile sig_atomic_t stopping;
static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static size_t build(char *dst, size_t cap, const char *type, const char *body, size_t n)
{
    int h = snprintf(dst, cap,
                     "HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: keep-alive\r\n\r\n",
                     type, n);
    if (h < 0 || (size_t)h + n > cap) {
        fprintf(stderr, "loopback_upstream: response buffer too small\n");
        exit(1);
    }
    memcpy(dst + h, body, n);
    return (size_t)h + n;
}

/* The value of Content-Length in the header block [p, end), or 0. */
static size_t content_length(const char *p, const char *end)
{
    static const char name[] = "\ncontent-length:";
    for (; p + sizeof name - 1 < end; p++) {
        if (*p == '\n' && strncasecmp(p, name, sizeof name - 1) == 0)
            return strtoul(p + sizeof name - 1, NULL, 10);
    }
    return 0;
}

/* Whether the JSON body asks for a stream: a "stream" key followed by true. */
static int wants_stream(const char *p, size_t n)
{
    const char *end = p + n, *k = p;
    while ((k = memmem(k, (size_t)(end - k), "\"stream\"", 8)) != NULL) {
        k += 8;
        while (k < end && (*k == ' ' || *k == '\t' || *k == '\n' || *k == '\r' || *k == ':'))
            k++;
        if (end - k >= 4 && memcmp(k, "true", 4) == 0)
            return 1;
    }
    return 0;
}

static void queue(struct conn *c, const char *p, size_t n)
{
    if (c->out_len + n > OUT_MAX)
        return; /* a client that never reads: drop; it will time out */
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

/* Answers every complete request in c->in; returns -1 on a request too large to hold. */
static int serve(struct conn *c)
{
    size_t off = 0;
    for (;;) {
        char *start = c->in + off, *end = c->in + c->in_len;
        char *hdr_end = memmem(start, (size_t)(end - start), "\r\n\r\n", 4);
        if (hdr_end == NULL)
            break;
        size_t body_len = content_length(start, hdr_end + 2);
        char *body = hdr_end + 4;
        if ((size_t)(end - body) < body_len)
            break;
        if (strncmp(start, "POST ", 5) != 0)
            queue(c, not_found, sizeof not_found - 1);
        else if (wants_stream(body, body_len))
            queue(c, sse_resp, sse_len);
        else
            queue(c, json_resp, json_len);
        off = (size_t)(body + body_len - c->in);
    }
    if (off > 0) {
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
    return c->in_len == IN_MAX ? -1 : 0;
}

/* Writes what is queued; 1 when some is left (wait for EPOLLOUT), -1 on error. */
static int flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t w = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (w < 0)
            return errno == EAGAIN ? 1 : -1;
        c->out_off += (size_t)w;
    }
    c->out_off = c->out_len = 0;
    return 0;
}

static void drop(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* Reads, answers and writes for one ready connection. */
static void on_conn(int ep, struct conn *c)
{
    for (;;) {
        ssize_t r = recv(c->fd, c->in + c->in_len, IN_MAX - c->in_len, 0);
        if (r == 0 || (r < 0 && errno != EAGAIN)) {
            drop(ep, c);
            return;
        }
        if (r < 0)
            break;
        c->in_len += (size_t)r;
        if (serve(c) < 0) {
            drop(ep, c);
            return;
        }
    }
    int left = flush(c);
    if (left < 0) {
        drop(ep, c);
        return;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | (left ? EPOLLOUT : 0u),
                             .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

static int listen_on(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 1024) != 0) {
        perror("loopback_upstream: listen");
        exit(1);
    }
    return fd;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: loopback_upstream PORT\n");
        return 2;
    }
    json_len =
        build(json_resp, sizeof json_resp, "application/json", json_body, sizeof json_body - 1);
    sse_len = build(sse_resp, sizeof sse_resp, "text/event-stream", sse_body, sizeof sse_body - 1);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int lfd = listen_on((int)strtol(argv[1], NULL, 10)), ep = epoll_create1(EPOLL_CLOEXEC), one = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL}, evs[MAX_EVENTS];
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    while (!stopping) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, 500);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c != NULL) {
                on_conn(ep, c);
                continue;
            }
            int fd;
            while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                c = malloc(sizeof *c);
                if (c == NULL) {
                    close(fd);
                    continue;
                }
                c->fd = fd;
                c->in_len = c->out_len = c->out_off = 0;
                struct epoll_event cev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
            }
        }
    }
    close(lfd);
    return 0;
}
