/* Blocking transfers off the event loop: downloads for command-line tools (libcurl's easy
 * interface on the calling thread, with the final response's status, Content-Range and
 * Content-Length handed to the caller before the body so that it can decide to append (206),
 * restart (200) or stop), and the small POSTs of alert webhooks. */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "upstream/upstream.h"

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_init_rc = CURLE_FAILED_INIT;

static void init_once(void)
{
    /* Reference-counted by libcurl: the event-loop client's own init is unaffected. */
    g_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

struct dl {
    const struct sb_upstream_download *d;
    CURL *easy;
    int64_t range_start; /* of the latest response's headers; -1 = none */
    int64_t length;      /* of the latest response's headers; -1 = none */
    bool responded;      /* on_response has been called */
    bool stopped;        /* a callback asked to stop */
};

/* The value of header line p (len bytes) when its name is name, else NULL. */
static const char *header_value(const char *p, size_t len, const char *name, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || strncasecmp(p, name, n) != 0 || p[n] != ':')
        return NULL;
    const char *v = p + n + 1;
    const char *end = p + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    *vlen = (size_t)(end - v);
    return v;
}

/* Parses a decimal at the start of p (at most len bytes); -1 when there is none. */
static int64_t parse_decimal(const char *p, size_t len)
{
    int64_t v = 0;
    size_t i = 0;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        if (v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    return i > 0 ? v : -1;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
    struct dl *dl = ud;
    size_t len = size * n;
    if (len >= 5 && memcmp(p, "HTTP/", 5) == 0) {
        /* A new response (after a redirect or an interim one): forget the last one's headers. */
        dl->range_start = -1;
        dl->length = -1;
        return len;
    }
    size_t vlen = 0;
    const char *v = header_value(p, len, "Content-Length", &vlen);
    if (v != NULL)
        dl->length = parse_decimal(v, vlen);
    v = header_value(p, len, "Content-Range", &vlen);
    /* "bytes START-END/TOTAL" */
    if (v != NULL && vlen > 6 && strncasecmp(v, "bytes ", 6) == 0)
        dl->range_start = parse_decimal(v + 6, vlen - 6);
    return len;
}

/* Calls on_response once; returns false when the caller wants to stop. */
static bool respond(struct dl *dl)
{
    if (dl->responded)
        return true;
    dl->responded = true;
    long status = 0;
    curl_easy_getinfo(dl->easy, CURLINFO_RESPONSE_CODE, &status);
    if (dl->d->on_response != NULL &&
        dl->d->on_response(dl->d->ud, (int)status, dl->range_start, dl->length) != 0) {
        dl->stopped = true;
        return false;
    }
    return true;
}

static size_t on_write(char *p, size_t size, size_t n, void *ud)
{
    struct dl *dl = ud;
    size_t len = size * n;
    if (!respond(dl))
        return 0;
    if (dl->d->on_data != NULL && dl->d->on_data(dl->d->ud, p, len) != 0) {
        dl->stopped = true;
        return 0; /* curl ends the transfer with CURLE_WRITE_ERROR */
    }
    return len;
}

/* How libcurl's results read as our codes; anything not listed is SB_EIO. */
static const struct {
    CURLcode curl;
    int code;
} results[] = {
    {CURLE_COULDNT_RESOLVE_HOST, SB_ECONNECT},
    {CURLE_COULDNT_RESOLVE_PROXY, SB_ECONNECT},
    {CURLE_COULDNT_CONNECT, SB_ECONNECT},
    {CURLE_PARTIAL_FILE, SB_ECONNECT}, /* the connection closed before Content-Length bytes */
    {CURLE_RECV_ERROR, SB_ECONNECT},
    {CURLE_SEND_ERROR, SB_ECONNECT},
    {CURLE_GOT_NOTHING, SB_ECONNECT},
    {CURLE_SSL_CONNECT_ERROR, SB_ECONNECT},
    {CURLE_HTTP2, SB_ECONNECT},
    {CURLE_HTTP2_STREAM, SB_ECONNECT},
    {CURLE_OPERATION_TIMEDOUT, SB_ETIMEOUT},
    {CURLE_URL_MALFORMAT, SB_EINVAL},
    {CURLE_UNSUPPORTED_PROTOCOL, SB_EINVAL},
    {CURLE_OUT_OF_MEMORY, SB_ENOMEM},
};

static int result_code(CURLcode c)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(results); i++) {
        if (results[i].curl == c)
            return results[i].code;
    }
    return SB_EIO;
}

/* ---------------------------------------------------------------------------------------------
 * What both blocking transfers do alike
 * ------------------------------------------------------------------------------------------- */
/* libcurl initialized (once), a new easy handle in *e and the header lines[0..n) as a list in
 * *list, with the options both transfers set: the headers, the user agent, no signals, errbuf
 * (CURL_ERROR_SIZE bytes, which must outlive the transfer) for libcurl's messages. Returns 0,
 * SB_EIO with a line in err, or SB_ENOMEM; on failure *e and *list hold what was made, for
 * easy_end. */
static int easy_begin(const char *const *lines, size_t n, char *errbuf, CURL **e,
                      struct curl_slist **list, char *err, size_t err_size)
{
    *e = NULL;
    *list = NULL;
    pthread_once(&g_once, init_once);
    if (g_init_rc != CURLE_OK) {
        snprintf(err, err_size, "libcurl failed to initialize");
        return SB_EIO;
    }
    *e = curl_easy_init();
    if (*e == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        struct curl_slist *grown = curl_slist_append(*list, lines[i]);
        if (grown == NULL)
            return SB_ENOMEM;
        *list = grown;
    }
    curl_easy_setopt(*e, CURLOPT_HTTPHEADER, *list);
    curl_easy_setopt(*e, CURLOPT_USERAGENT, "switchboard");
    curl_easy_setopt(*e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(*e, CURLOPT_ERRORBUFFER, errbuf);
    return 0;
}

/* The SB_E* code of a failed transfer, and libcurl's words for it in err. They name the host at
 * most, never the URL's path (where webhook tokens live). */
static int easy_failed(CURLcode c, const char *errbuf, char *err, size_t err_size)
{
    snprintf(err, err_size, "%s%s%s", curl_easy_strerror(c), errbuf[0] ? ": " : "", errbuf);
    return result_code(c);
}

/* Frees what easy_begin made (either may be NULL) and returns rc, with a message in err when rc
 * is SB_ENOMEM and there is none yet. */
static int easy_end(int rc, CURL *e, struct curl_slist *list, char *err, size_t err_size)
{
    if (rc == SB_ENOMEM && err[0] == '\0')
        snprintf(err, err_size, "out of memory");
    curl_slist_free_all(list);
    if (e != NULL)
        curl_easy_cleanup(e);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Downloads
 * ------------------------------------------------------------------------------------------- */
int sb_upstream_download(const struct sb_upstream_download *d, char *err, size_t err_size)
{
    int rc;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    struct dl dl = {.d = d, .range_start = -1, .length = -1};
    err[0] = '\0';
    rc = easy_begin(d->headers, d->n_headers, errbuf, &dl.easy, &headers, err, err_size);
    if (rc != 0)
        goto fail;
    char range[32] = "";
    if (d->range_from > 0)
        snprintf(range, sizeof range, "%llu-", (unsigned long long)d->range_from);
    bool https = strncasecmp(d->url, "https://", 8) == 0;
    CURL *e = dl.easy;
    if (curl_easy_setopt(e, CURLOPT_URL, d->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http,https") !=
            CURLE_OK) {
        snprintf(err, err_size, "unsupported URL %s", d->url);
        rc = SB_EINVAL;
        goto fail;
    }
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &dl);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &dl);
    if (range[0] != '\0')
        curl_easy_setopt(e, CURLOPT_RANGE, range);
    if (d->connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)d->connect_ms);
    if (d->idle_ms > 0) {
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(d->idle_ms + 999) / 1000);
    }

    CURLcode c = curl_easy_perform(e);
    if (c == CURLE_OK && !respond(&dl))
        c = CURLE_WRITE_ERROR; /* an empty body, and the caller stopped at the headers */
    if (c == CURLE_OK) {
        rc = 0;
    } else if (dl.stopped) {
        rc = SB_ECANCELED;
        snprintf(err, err_size, "stopped");
    } else {
        rc = easy_failed(c, errbuf, err, err_size);
    }
fail:
    return easy_end(rc, dl.easy, headers, err, err_size);
}

/* ---------------------------------------------------------------------------------------------
 * Blocking POSTs (webhooks): the same easy interface, the reply's status and its first bytes.
 * ------------------------------------------------------------------------------------------- */
struct post_reply {
    char *p;     /* the caller's buffer, or NULL */
    size_t size; /* its size */
    size_t len;  /* bytes kept so far */
};

/* Keeps what fits of the reply's body (for the caller's messages) and drops the rest. */
static size_t on_post_data(char *p, size_t size, size_t n, void *ud)
{
    struct post_reply *r = ud;
    size_t len = size * n;
    if (r->p != NULL && r->len + 1 < r->size) {
        size_t take = SB_MIN(len, r->size - 1 - r->len);
        memcpy(r->p + r->len, p, take);
        r->len += take;
        r->p[r->len] = '\0';
    }
    return len;
}

int sb_upstream_post(const struct sb_upstream_post *req, int *status, char *err, size_t err_size)
{
    int rc;
    char errbuf[CURL_ERROR_SIZE] = "";
    struct curl_slist *headers = NULL;
    struct post_reply reply = {req->reply, req->reply_size, 0};
    CURL *e = NULL;

    err[0] = '\0';
    *status = 0;
    if (reply.p != NULL && reply.size > 0)
        reply.p[0] = '\0';
    rc = easy_begin(req->headers, req->n_headers, errbuf, &e, &headers, err, err_size);
    if (rc != 0)
        goto fail;
    /* No redirects: a POST that is redirected is not what the owner of the URL asked for. */
    if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
        snprintf(err, err_size, "unsupported URL");
        rc = SB_EINVAL;
        goto fail;
    }
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_post_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &reply);
    if (req->timeout_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);

    CURLcode c = curl_easy_perform(e);
    if (c == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        *status = (int)code;
        rc = 0;
    } else {
        rc = easy_failed(c, errbuf, err, err_size);
    }
fail:
    return easy_end(rc, e, headers, err, err_size);
}
