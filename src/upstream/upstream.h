/* The upstream HTTP client: libcurl's multi interface driven by an I/O thread's libevent loop, so
 * that calls to cloud providers never block the loop. One client per loop; transfers stream their
 * response body to callbacks as it arrives. curl.h is included only by this module's .c files. */
#ifndef SB_UPSTREAM_H
#define SB_UPSTREAM_H

#include "core/core.h"

struct event_base;
struct sb_upstream;      /* one per loop */
struct sb_upstream_xfer; /* one request in flight */

/* Returns a client for base's loop, or NULL when out of memory. Use it only on that loop's
 * thread. The caller frees it with sb_upstream_free after every transfer has ended. */
struct sb_upstream *sb_upstream_new(struct event_base *base);
/* Cancels what is still in flight (no callbacks follow) and frees the client. NULL is allowed. */
void sb_upstream_free(struct sb_upstream *u);

/* Deadlines for one transfer, in milliseconds; 0 = none. */
struct sb_upstream_timeouts {
    uint32_t connect_ms;    /* TCP + TLS established */
    uint32_t first_byte_ms; /* from start to the response's status line */
    uint32_t idle_ms;       /* longest silence between two pieces of the body */
    uint32_t total_ms;      /* the whole transfer */
};

struct sb_upstream_request {
    const char *method;         /* "POST", "GET" */
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines; borrowed until sb_upstream_start returns */
    size_t n_headers;
    struct sb_str body; /* copied by sb_upstream_start */
    struct sb_upstream_timeouts timeouts;
    const char *ca_file; /* PEM CAs to verify an https server with; NULL = the system's. Borrowed
                            until sb_upstream_start returns */

    /* Callbacks run on the loop's thread, never from inside sb_upstream_start. */
    /* The status line and headers have arrived. */
    void (*on_response)(void *ud, struct sb_upstream_xfer *x, int status);
    /* A piece of the body, borrowed for the call. Returning non-zero aborts the transfer, which
     * then ends with on_done(SB_ECANCELED). */
    int (*on_data)(void *ud, struct sb_upstream_xfer *x, const char *p, size_t len);
    /* Exactly once, last: 0 when the whole response arrived, else SB_ETIMEOUT (message says which
     * deadline), SB_ECONNECT (could not connect, or the connection broke), SB_ECANCELED, SB_EIO.
     * message is borrowed for the call and never contains credentials. The transfer is freed after
     * this returns. */
    void (*on_done)(void *ud, struct sb_upstream_xfer *x, int err, const char *message);
    void *ud;
};

/* Starts a transfer. Returns 0 and *out (valid until on_done returns), or a negative code, in
 * which case no callback will run. */
int sb_upstream_start(struct sb_upstream *u, const struct sb_upstream_request *r,
                      struct sb_upstream_xfer **out);
/* Stops a transfer that has not ended; no callback runs afterwards, on_done included. */
void sb_upstream_cancel(struct sb_upstream_xfer *x);
/* A response header's value (case-insensitive name), valid until on_done; empty if absent. Call
 * from on_response, on_data or on_done. */
struct sb_str sb_upstream_header(const struct sb_upstream_xfer *x, const char *name);
/* Whether the response came over HTTP/2, and whether a connection was reused (for tests). */
bool sb_upstream_was_http2(const struct sb_upstream_xfer *x);
bool sb_upstream_reused_connection(const struct sb_upstream_xfer *x);

/* ---------------------------------------------------------------------------------------------
 * Blocking downloads (upstream/download.c), for command-line tools such as `models pull`: libcurl's
 * easy interface on the calling thread, no event loop. Never call it on a server loop's thread.
 * ------------------------------------------------------------------------------------------- */
struct sb_upstream_download {
    const char *url; /* http:// or https://; redirects are followed (not https -> http) */
    const char *const *headers; /* "Name: value" lines, borrowed for the call; not sent on to
                                   another host after a redirect */
    size_t n_headers;
    uint64_t range_from; /* > 0: ask for the bytes from this offset on (Range: bytes=N-) */
    uint32_t connect_ms; /* TCP + TLS established; 0 = libcurl's default */
    uint32_t idle_ms;    /* stop when no byte arrives for this long (whole seconds); 0 = never */
    /* The final response's status line and headers have arrived (redirects are not reported).
     * range_start is the first byte of its Content-Range (-1 when absent), length its
     * Content-Length (-1 when unknown). Called once, before the first on_data (after the
     * transfer when the body is empty). Non-zero stops the download (SB_ECANCELED). */
    int (*on_response)(void *ud, int status, int64_t range_start, int64_t length);
    /* A piece of the body, borrowed for the call. Non-zero stops the download (SB_ECANCELED). */
    int (*on_data)(void *ud, const char *p, size_t len);
    void *ud;
};

/* Downloads d->url, calling d's callbacks on this thread, and returns when the transfer ends: 0
 * when the whole body arrived (whatever the status); SB_ECANCELED when a callback stopped it;
 * SB_ECONNECT (no connection, or it broke before the body was complete), SB_ETIMEOUT (connect or
 * idle deadline), SB_EINVAL (a malformed or unsupported URL), SB_ENOMEM, SB_EIO, with a message
 * (never credentials) in err, NUL-terminated, at most err_size bytes. */
int sb_upstream_download(const struct sb_upstream_download *d, char *err, size_t err_size);

/* A blocking POST (upstream/download.c), for threads of their own such as the alert sender: no
 * event loop, no redirects followed. */
struct sb_upstream_post {
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" lines, borrowed for the call */
    size_t n_headers;
    const char *body; /* borrowed for the call; len bytes */
    size_t len;
    uint32_t timeout_ms; /* the whole transfer, connecting included; 0 = none */
    char *reply;         /* NULL, or where the first reply_size - 1 bytes of the reply's body go,
                            NUL-terminated (for messages); the rest is read and dropped */
    size_t reply_size;
};

/* Sends req and returns when the reply has been read: 0 with *status the reply's HTTP status
 * (whatever it is); else *status 0 and SB_ECONNECT (no connection, or it broke), SB_ETIMEOUT,
 * SB_EINVAL (a malformed or unsupported URL), SB_ENOMEM or SB_EIO, with a message in err
 * (NUL-terminated, at most err_size bytes) that names at most the host, never the URL's path. */
int sb_upstream_post(const struct sb_upstream_post *req, int *status, char *err, size_t err_size);

#endif
