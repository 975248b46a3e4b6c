/* The upstream HTTP client: one libcurl multi handle per libevent loop, driven through curl's
 * socket and timer callbacks, with our own first-byte, idle and total deadlines per transfer. */
#include <curl/curl.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream/upstream.h"

/* Response headers kept per transfer; more than this is refused, not stored (providers send a few
 * KiB). */
#define HEADERS_MAX (64u << 10)
/* Connections the multi handle keeps open for reuse. */
#define MAX_CONNECTS 64L
/* TCP keepalive: first probe after this many seconds of silence, then every interval. */
#define KEEPIDLE_S  30L
#define KEEPINTVL_S 15L

struct sock;

struct sb_upstream {
    struct event_base *base;
    CURLM *multi;
    struct event timer; /* curl's single timeout */
    struct event kick;  /* adds transfers started from inside a curl callback */
    int in_curl;        /* > 0 while curl is running our callbacks: no remove_handle then */
    struct sb_upstream_xfer *xfers; /* every transfer not yet freed, newest first */
    struct sock *socks;             /* every socket curl asked us to watch */
};

/* One socket curl watches, with its libevent event (curl_multi_assign ties it to the fd). */
struct sock {
    struct event ev;
    curl_socket_t fd;
    struct sock *prev, *next;
};

enum deadline { DL_FIRST_BYTE, DL_IDLE, DL_TOTAL, DL_COUNT };

static const char *const deadline_names[DL_COUNT] = {
    [DL_FIRST_BYTE] = "first_byte_ms",
    [DL_IDLE] = "idle_ms",
    [DL_TOTAL] = "total_ms",
};

/* One of a transfer's deadlines: its timer and what it belongs to. */
struct deadline_timer {
    struct event ev;
    struct sb_upstream_xfer *x;
    enum deadline which;
    uint32_t ms; /* 0 = none */
};

struct sb_upstream_xfer {
    struct sb_upstream *u;
    CURL *easy;
    struct curl_slist *headers;
    struct sb_upstream_request r; /* the callbacks and ud; pointers in it are not kept */
    struct deadline_timer deadlines[DL_COUNT];
    struct sb_buf resp_headers; /* raw "Name: value\r\n" lines of the final response */
    int status;
    bool added;     /* in the multi handle */
    bool responded; /* on_response has run */
    bool aborted;   /* on_data asked to stop: ends with SB_ECANCELED */
    bool canceled;  /* the owner cancelled: no callback at all */
    bool ending;    /* on_done is running or has run */
    char errbuf[CURL_ERROR_SIZE];
    struct sb_upstream_xfer *prev, *next;
};

static pthread_once_t g_curl_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_init_rc = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
    g_curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---------------------------------------------------------------------------------------------
 * Transfers: lifetime
 * ------------------------------------------------------------------------------------------- */
static void xfer_unlink(struct sb_upstream_xfer *x)
{
    struct sb_upstream *u = x->u;
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        u->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
}

static void stop_deadlines(struct sb_upstream_xfer *x)
{
    for (int i = 0; i < DL_COUNT; i++)
        event_del(&x->deadlines[i].ev);
}

/* Detaches x from curl and frees it. Call only outside curl's callbacks. */
static void xfer_free(struct sb_upstream_xfer *x)
{
    stop_deadlines(x);
    if (x->added)
        curl_multi_remove_handle(x->u->multi, x->easy);
    xfer_unlink(x);
    curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->headers);
    sb_buf_free(&x->resp_headers);
    free(x);
}

/* Ends x with on_done(err, message), then frees it. Call only outside curl's callbacks. */
static void xfer_finish(struct sb_upstream_xfer *x, int err, const char *message)
{
    stop_deadlines(x);
    if (x->added) {
        curl_multi_remove_handle(x->u->multi, x->easy);
        x->added = false;
    }
    x->ending = true;
    x->r.on_done(x->r.ud, x, err, message);
    xfer_free(x);
}

/* What a finished curl transfer means for the owner. */
static const struct {
    CURLcode code;
    int err;
} curl_errors[] = {
    {CURLE_COULDNT_RESOLVE_HOST, SB_ECONNECT},
    {CURLE_COULDNT_RESOLVE_PROXY, SB_ECONNECT},
    {CURLE_COULDNT_CONNECT, SB_ECONNECT},
    {CURLE_SSL_CONNECT_ERROR, SB_ECONNECT},
    {CURLE_SEND_ERROR, SB_ECONNECT},
    {CURLE_RECV_ERROR, SB_ECONNECT},
    {CURLE_GOT_NOTHING, SB_ECONNECT},
    {CURLE_PARTIAL_FILE, SB_ECONNECT},
    {CURLE_HTTP2, SB_ECONNECT},
    {CURLE_HTTP2_STREAM, SB_ECONNECT},
    {CURLE_OPERATION_TIMEDOUT, SB_ETIMEOUT},
};

static void xfer_completed(struct sb_upstream_xfer *x, CURLcode code)
{
    if (x->canceled) {
        xfer_free(x);
        return;
    }
    if (x->aborted) {
        xfer_finish(x, SB_ECANCELED, "the transfer was stopped by its reader");
        return;
    }
    if (code == CURLE_OK) {
        xfer_finish(x, 0, "");
        return;
    }
    int err = SB_EIO;
    for (size_t i = 0; i < SB_ARRAY_LEN(curl_errors); i++)
        if (curl_errors[i].code == code)
            err = curl_errors[i].err;
    char msg[CURL_ERROR_SIZE + 128];
    if (code == CURLE_OPERATION_TIMEDOUT && !x->responded)
        snprintf(msg, sizeof msg, "could not connect within %u ms (connect_ms)",
                 (unsigned)x->r.timeouts.connect_ms);
    else if (x->errbuf[0] != '\0')
        snprintf(msg, sizeof msg, "%s: %s", curl_easy_strerror(code), x->errbuf);
    else
        snprintf(msg, sizeof msg, "%s", curl_easy_strerror(code));
    xfer_finish(x, err, msg);
}

/* Frees what was cancelled while curl was busy, then hands finished transfers to their owners.
 * Runs after every call into curl, outside its callbacks. */
static void settle(struct sb_upstream *u)
{
    struct sb_upstream_xfer *x = u->xfers;
    while (x != NULL) {
        struct sb_upstream_xfer *next = x->next;
        if (x->canceled)
            xfer_free(x);
        x = next;
    }
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(u->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct sb_upstream_xfer *done = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&done);
        CURLcode code = msg->data.result;
        /* msg is invalid once the handle leaves the multi, which finishing does. */
        if (done != NULL)
            xfer_completed(done, code);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Our deadlines
 * ------------------------------------------------------------------------------------------- */
/* (Re)starts a deadline's timer from now; a deadline of 0 is none. */
static void arm(struct sb_upstream_xfer *x, enum deadline d)
{
    struct deadline_timer *t = &x->deadlines[d];
    if (t->ms == 0)
        return;
    struct timeval tv = {(time_t)(t->ms / 1000), (suseconds_t)(t->ms % 1000) * 1000};
    event_add(&t->ev, &tv);
}

static void disarm(struct sb_upstream_xfer *x, enum deadline d)
{
    event_del(&x->deadlines[d].ev);
}

/* What each deadline's expiry says, before its limit and config key. */
static const char *const deadline_messages[DL_COUNT] = {
    [DL_FIRST_BYTE] = "no response within",
    [DL_IDLE] = "the response stalled for",
    [DL_TOTAL] = "the transfer took longer than",
};

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    struct deadline_timer *t = arg;
    char msg[128];
    snprintf(msg, sizeof msg, "%s %u ms (%s)", deadline_messages[t->which], (unsigned)t->ms,
             deadline_names[t->which]);
    xfer_finish(t->x, SB_ETIMEOUT, msg);
}

/* ---------------------------------------------------------------------------------------------
 * curl's callbacks (no curl_multi_remove_handle from in here)
 * ------------------------------------------------------------------------------------------- */
/* The headers of the final response are complete. */
static void responded(struct sb_upstream_xfer *x)
{
    long code = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
    x->status = (int)code;
    x->responded = true;
    if (x->r.on_response != NULL && !x->canceled)
        x->r.on_response(x->r.ud, x, x->status);
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct sb_upstream_xfer *x = arg;
    size_t len = size * n;
    if (x->canceled)
        return 0;
    /* Bytes have arrived: the first-byte deadline is met and the idle one starts counting. */
    disarm(x, DL_FIRST_BYTE);
    arm(x, DL_IDLE);
    /* A status line starts a new response (after 1xx, or a redirect if one were followed). */
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        sb_buf_reset(&x->resp_headers);
        return len;
    }
    if (len <= 2 && (len == 0 || p[0] == '\r' || p[0] == '\n')) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && !x->responded)
            responded(x);
        return len;
    }
    /* Headers past the cap are dropped; lookups of them find nothing. */
    sb_buf_append(&x->resp_headers, p, len);
    return len;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
    struct sb_upstream_xfer *x = arg;
    size_t len = size * n;
    if (x->canceled || x->aborted)
        return 0;
    if (!x->responded)
        responded(x);
    arm(x, DL_IDLE);
    if (x->canceled)
        return 0;
    if (x->r.on_data != NULL && len > 0 && x->r.on_data(x->r.ud, x, p, len) != 0) {
        x->aborted = true;
        return 0;
    }
    return x->canceled ? 0 : len;
}

static void on_socket_event(evutil_socket_t fd, short what, void *arg)
{
    struct sb_upstream *u = arg;
    int flags = 0;
    if (what & EV_READ)
        flags |= CURL_CSELECT_IN;
    if (what & EV_WRITE)
        flags |= CURL_CSELECT_OUT;
    int running = 0;
    u->in_curl++;
    curl_multi_socket_action(u->multi, (curl_socket_t)fd, flags, &running);
    u->in_curl--;
    settle(u);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    struct sb_upstream *u = arg;
    int running = 0;
    u->in_curl++;
    curl_multi_socket_action(u->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    u->in_curl--;
    settle(u);
}

static void sock_free(struct sb_upstream *u, struct sock *s)
{
    event_del(&s->ev);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        u->socks = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    free(s);
}

/* curl says which sockets to watch for what (CURLMOPT_SOCKETFUNCTION). */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int action, void *arg, void *sockp)
{
    SB_UNUSED(easy);
    struct sb_upstream *u = arg;
    struct sock *s = sockp;
    if (action == CURL_POLL_REMOVE) {
        if (s != NULL) {
            sock_free(u, s);
            curl_multi_assign(u->multi, fd, NULL);
        }
        return 0;
    }
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL)
            return -1; /* curl fails the transfer */
        s->fd = fd;
        s->next = u->socks;
        if (u->socks != NULL)
            u->socks->prev = s;
        u->socks = s;
        curl_multi_assign(u->multi, fd, s);
    } else {
        event_del(&s->ev);
    }
    short kind = EV_PERSIST;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        kind |= EV_READ;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        kind |= EV_WRITE;
    event_assign(&s->ev, u->base, fd, kind, on_socket_event, u);
    event_add(&s->ev, NULL);
    return 0;
}

/* curl's single timeout (CURLMOPT_TIMERFUNCTION): -1 stops it; 0 means "as soon as possible",
 * which must not be from inside this callback, so it becomes a zero-length timer. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *arg)
{
    SB_UNUSED(multi);
    struct sb_upstream *u = arg;
    if (timeout_ms < 0) {
        event_del(&u->timer);
        return 0;
    }
    struct timeval tv = {(time_t)(timeout_ms / 1000), (suseconds_t)(timeout_ms % 1000) * 1000};
    event_add(&u->timer, &tv);
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Public
 * ------------------------------------------------------------------------------------------- */
/* Adds the transfers started from inside curl's callbacks. */
static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    struct sb_upstream *u = arg;
    struct sb_upstream_xfer *x = u->xfers;
    while (x != NULL) {
        struct sb_upstream_xfer *next = x->next;
        if (!x->added && !x->canceled) {
            if (curl_multi_add_handle(u->multi, x->easy) == CURLM_OK)
                x->added = true;
            else /* it would never run; it ends now rather than hanging */
                xfer_finish(x, SB_EIO, "the HTTP client refused the transfer");
        }
        x = next;
    }
    settle(u);
}

struct sb_upstream *sb_upstream_new(struct event_base *base)
{
    pthread_once(&g_curl_once, curl_init_once);
    if (g_curl_init_rc != CURLE_OK || base == NULL)
        return NULL;
    struct sb_upstream *u = calloc(1, sizeof *u);
    if (u == NULL)
        return NULL;
    u->base = base;
    u->multi = curl_multi_init();
    if (u->multi == NULL)
        goto fail;
    evtimer_assign(&u->timer, base, on_timer, u);
    event_assign(&u->kick, base, -1, 0, on_kick, u);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(u->multi, CURLMOPT_SOCKETDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(u->multi, CURLMOPT_TIMERDATA, u);
    curl_multi_setopt(u->multi, CURLMOPT_MAXCONNECTS, MAX_CONNECTS);
    curl_multi_setopt(u->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return u;
fail:
    free(u);
    return NULL;
}

void sb_upstream_free(struct sb_upstream *u)
{
    if (u == NULL)
        return;
    while (u->xfers != NULL)
        xfer_free(u->xfers);
    event_del(&u->timer);
    event_del(&u->kick);
    /* Closing cached connections may report their sockets as removed; the rest are freed after. */
    curl_multi_cleanup(u->multi);
    while (u->socks != NULL)
        sock_free(u, u->socks);
    free(u);
}

static int set_method_and_body(CURL *e, const struct sb_upstream_request *r)
{
    CURLcode c = CURLE_OK;
    if (strcmp(r->method, "GET") == 0 && r->body.len == 0) {
        c = curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else {
        c = curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body.len);
        if (c == CURLE_OK)
            c = curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, r->body.len > 0 ? r->body.p : "");
        if (c == CURLE_OK && strcmp(r->method, "POST") != 0)
            c = curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
    }
    return c == CURLE_OK ? 0 : SB_EINVAL;
}

int sb_upstream_start(struct sb_upstream *u, const struct sb_upstream_request *r,
                      struct sb_upstream_xfer **out)
{
    int rc = SB_ENOMEM;
    struct sb_upstream_xfer *x = NULL;
    if (u == NULL || r == NULL || out == NULL || r->url == NULL || r->method == NULL ||
        r->on_done == NULL)
        return SB_EINVAL;
    x = calloc(1, sizeof *x);
    if (x == NULL)
        goto fail;
    x->u = u;
    x->r = *r;
    x->r.headers = NULL;
    x->r.n_headers = 0;
    x->r.url = NULL;
    x->r.method = NULL;
    x->r.body = SB_STR_NULL;
    sb_buf_init(&x->resp_headers, HEADERS_MAX);
    x->easy = curl_easy_init();
    if (x->easy == NULL)
        goto fail;
    for (size_t i = 0; i < r->n_headers; i++) {
        struct curl_slist *h = curl_slist_append(x->headers, r->headers[i]);
        if (h == NULL)
            goto fail;
        x->headers = h;
    }
    /* curl would otherwise wait for "100 Continue" before sending a large body. */
    struct curl_slist *h = curl_slist_append(x->headers, "Expect:");
    if (h == NULL)
        goto fail;
    x->headers = h;

    CURL *e = x->easy;
    rc = SB_EINVAL;
    if (curl_easy_setopt(e, CURLOPT_URL, r->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        set_method_and_body(e, r) != 0)
        goto fail;
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, KEEPIDLE_S);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, KEEPINTVL_S);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (r->timeouts.connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeouts.connect_ms);
    if (r->ca_file != NULL && curl_easy_setopt(e, CURLOPT_CAINFO, r->ca_file) != CURLE_OK)
        goto fail;

    x->deadlines[DL_FIRST_BYTE].ms = r->timeouts.first_byte_ms;
    x->deadlines[DL_IDLE].ms = r->timeouts.idle_ms;
    x->deadlines[DL_TOTAL].ms = r->timeouts.total_ms;
    for (int i = 0; i < DL_COUNT; i++) {
        struct deadline_timer *t = &x->deadlines[i];
        t->x = x;
        t->which = (enum deadline)i;
        evtimer_assign(&t->ev, u->base, on_deadline, t);
    }

    x->next = u->xfers;
    if (u->xfers != NULL)
        u->xfers->prev = x;
    u->xfers = x;
    if (u->in_curl > 0) {
        /* curl refuses new handles from inside its callbacks; the kick adds it next turn. */
        event_active(&u->kick, 0, 0);
    } else if (curl_multi_add_handle(u->multi, e) != CURLM_OK) {
        xfer_unlink(x);
        rc = SB_EIO;
        goto fail;
    } else {
        x->added = true;
    }
    arm(x, DL_FIRST_BYTE);
    arm(x, DL_TOTAL);
    *out = x;
    return 0;
fail:
    if (x != NULL) {
        if (x->easy != NULL)
            curl_easy_cleanup(x->easy);
        curl_slist_free_all(x->headers);
        sb_buf_free(&x->resp_headers);
        free(x);
    }
    return rc;
}

void sb_upstream_cancel(struct sb_upstream_xfer *x)
{
    if (x == NULL || x->canceled || x->ending)
        return;
    x->canceled = true;
    stop_deadlines(x);
    /* Inside curl's callbacks the handle cannot leave the multi; settle() frees it afterwards. */
    if (x->u->in_curl == 0 || !x->added)
        xfer_free(x);
}

struct sb_str sb_upstream_header(const struct sb_upstream_xfer *x, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = x->resp_headers.p;
    const char *end = p + x->resp_headers.len;
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol != NULL ? eol : end;
        size_t llen = (size_t)(line_end - p);
        if (llen > nlen && p[nlen] == ':' && strncasecmp(p, name, nlen) == 0) {
            const char *v = p + nlen + 1;
            const char *ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            return (struct sb_str){v, (size_t)(ve - v)};
        }
        p = eol != NULL ? eol + 1 : end;
    }
    return SB_STR_NULL;
}

bool sb_upstream_was_http2(const struct sb_upstream_xfer *x)
{
    long v = 0;
    curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &v);
    return v == CURL_HTTP_VERSION_2_0;
}

bool sb_upstream_reused_connection(const struct sb_upstream_xfer *x)
{
    long n = 0;
    curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &n);
    return n == 0;
}
