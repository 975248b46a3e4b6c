/* A streaming cloud call's life over the upstream HTTP client, shared by the cloud backends:
 * status and body routing to the kind's decoder, HTTP and transport errors as canonical error
 * events, cancellation, and exactly one on_done. Also the small parts of a backend that do not
 * depend on the provider (timeouts, base_url checks, secrets, token counting). */
#include "backend/cloud.h"

#include <event2/event.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RETRY_AFTER_MAX_MS (3600u * 1000u)

/* -----------------------------------------------------------------------------------------------
 * Errors
 * --------------------------------------------------------------------------------------------- */

int sb__emit_error(sb__sink_fn sink, void *ud, int code, int http_status, bool retryable,
                   uint32_t retry_after_ms, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = http_status;
    ev.error.message = sb_str_c(msg);
    ev.error.retryable = retryable;
    ev.error.retry_after_ms = retry_after_ms;
    return sink(ud, &ev);
}

void sb__map_http_status(int upstream_status, int *http_status, bool *retryable)
{
    /* Ranges, first match wins. 529 is Anthropic's "overloaded"; a client sees it as 503. */
    static const struct {
        int lo, hi; /* upstream statuses */
        int status; /* what the client sees; 0 = the upstream's own */
        bool retryable;
    } map[] = {
        {429, 429, 429, true}, {408, 408, 504, true}, {504, 504, 504, true}, {503, 503, 503, true},
        {529, 529, 503, true}, {500, 599, 502, true}, {400, 499, 0, false},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(map); i++) {
        if (upstream_status >= map[i].lo && upstream_status <= map[i].hi) {
            *http_status = map[i].status ? map[i].status : upstream_status;
            *retryable = map[i].retryable;
            return;
        }
    }
    /* 1xx and 3xx: we follow no redirects, so the provider answered something unusable. */
    *http_status = 502;
    *retryable = false;
}

uint32_t sb__parse_retry_after(struct sb_str v)
{
    char tmp[64];
    if (v.len == 0 || v.len >= sizeof tmp)
        return 0;
    memcpy(tmp, v.p, v.len);
    tmp[v.len] = '\0';
    char *end = NULL;
    double secs = strtod(tmp, &end);
    if (end != tmp && *end == '\0') {
        if (!(secs > 0))
            return 0;
        return secs * 1000.0 >= RETRY_AFTER_MAX_MS ? RETRY_AFTER_MAX_MS : (uint32_t)(secs * 1000.0);
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    end = strptime(tmp, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end != '\0')
        return 0;
    int64_t delta = (int64_t)timegm(&tm) - sb_unix_time();
    if (delta <= 0)
        return 0;
    return delta >= RETRY_AFTER_MAX_MS / 1000 ? RETRY_AFTER_MAX_MS : (uint32_t)delta * 1000u;
}

int sb__cloud_errf(char *err, size_t err_size, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err_size > 0 && vsnprintf(err, err_size, fmt, ap) < 0)
        err[0] = '\0';
    va_end(ap);
    return code;
}

/* -----------------------------------------------------------------------------------------------
 * What every cloud backend needs the same way
 * --------------------------------------------------------------------------------------------- */

struct sb_upstream_timeouts sb__cloud_timeouts(const struct sb_model_config *cfg)
{
    return (struct sb_upstream_timeouts){cfg->timeouts.connect_ms, cfg->timeouts.first_byte_ms,
                                         cfg->timeouts.idle_ms, cfg->timeouts.total_ms};
}

int sb__cloud_check_base_url(const struct sb_model_config *cfg, char *err, size_t err_size)
{
    if (cfg->base_url && strncmp(cfg->base_url, "http://", 7) != 0 &&
        strncmp(cfg->base_url, "https://", 8) != 0)
        return sb__cloud_errf(err, err_size, SB_EINVAL,
                              "model '%s' (line %d): base_url must start with http:// or https://",
                              cfg->name ? cfg->name : "?", cfg->line);
    return SB_OK;
}

void sb__cloud_free_secret(char *s)
{
    if (s) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

int sb__cloud_count_tokens(struct sb_backend *b, struct sb_str text, int64_t *out)
{
    SB_UNUSED(b);
    SB_UNUSED(text);
    *out = 0;
    return SB_EUNSUPPORTED;
}

/* -----------------------------------------------------------------------------------------------
 * A call in flight
 * --------------------------------------------------------------------------------------------- */

struct sb__cloud_call {
    struct sb_call *call; /* the owner's */
    const char *backend_name;
    const char *model; /* the provider's model id, or NULL */
    const struct sb__cloud_codec *codec;
    void *dec;                     /* the codec's decoder, owned */
    struct sb_upstream_xfer *xfer; /* NULL once it ended or was cancelled */
    struct event *done_ev;         /* delivers on_done after a cancel, from the loop */
    int status;                    /* the response's HTTP status, 0 before it arrived */
    struct sb_buf err_body;        /* a non-2xx response's body */
    bool started;                  /* START was delivered */
    bool ended;                    /* FINISH or ERROR was delivered */
    bool failed;                   /* ERROR was delivered: the rest of the body is not wanted */
    bool canceled;                 /* the owner cancelled: no more events */
    bool finishing;                /* inside the upstream's on_done: it calls our on_done */
    int fail_code;                 /* sb__cloud_call_fail: the error to emit (in err_body) */
    int fail_status;
};

static bool ok_status(int status)
{
    return status >= 200 && status < 300;
}

static void cloud_free(struct sb__cloud_call *cc)
{
    if (cc->dec && cc->codec)
        cc->codec->free(cc->dec);
    if (cc->done_ev)
        event_free(cc->done_ev);
    sb_buf_free(&cc->err_body);
    free(cc);
}

/* Frees the cloud call, then tells the owner: it holds nothing of the call any more. */
static void cloud_done(struct sb__cloud_call *cc)
{
    struct sb_call *call = cc->call;
    call->backend_data = NULL;
    cloud_free(cc);
    call->on_done(call);
}

/* Delivers a decoder's event to the owner: adds START (once, with the backend's name and attempts
 * 1) before a first event that is not one, drops everything after the first FINISH or ERROR and
 * after a cancel, and reports both as "stop". */
static int cloud_sink(void *ud, const struct sb_event *ev)
{
    struct sb__cloud_call *cc = ud;
    struct sb_call *call = cc->call;

    if (cc->canceled || cc->ended)
        return 1;
    if (ev->type == SB_EV_START) {
        if (cc->started)
            return 0;
        struct sb_event start = *ev;
        if (start.start.backend.len == 0)
            start.start.backend = sb_str_c(cc->backend_name);
        if (start.start.model.len == 0)
            start.start.model = sb_str_c(cc->model);
        if (start.start.attempts < 1)
            start.start.attempts = 1;
        cc->started = true;
        call->on_event(call, &start);
        return cc->canceled;
    }
    if (!cc->started && ev->type != SB_EV_ERROR) {
        struct sb_event start = {.type = SB_EV_START};
        start.start.model = sb_str_c(cc->model);
        start.start.backend = sb_str_c(cc->backend_name);
        start.start.attempts = 1;
        cc->started = true;
        call->on_event(call, &start);
        if (cc->canceled)
            return 1;
    }
    if (ev->type == SB_EV_FINISH || ev->type == SB_EV_ERROR)
        cc->ended = true;
    if (ev->type == SB_EV_ERROR)
        cc->failed = true;
    call->on_event(call, ev);
    return cc->canceled || cc->ended;
}

static void on_response(void *ud, struct sb_upstream_xfer *x, int status)
{
    struct sb__cloud_call *cc = ud;
    SB_UNUSED(x);
    cc->status = status;
}

/* Returns non-zero (stop the transfer) after a cancel or an error. After a FINISH the rest of the
 * body is read and dropped, so that the connection can be reused. */
static int on_data(void *ud, struct sb_upstream_xfer *x, const char *p, size_t len)
{
    struct sb__cloud_call *cc = ud;
    SB_UNUSED(x);
    if (cc->canceled || cc->failed)
        return 1;
    if (cc->ended)
        return 0;
    if (ok_status(cc->status)) {
        cc->codec->feed(cc->dec, p, len); /* its events tell how it went */
        return cc->canceled || cc->failed;
    }
    /* An error body: keep what fits; the message is in its first bytes. */
    size_t room = cc->err_body.max - cc->err_body.len;
    if (room > 0 && sb_buf_append(&cc->err_body, p, SB_MIN(room, len)) != SB_OK)
        return 1;
    return 0;
}

/* The transport failed (or we stopped it) without the stream having ended. */
static void transport_error(struct sb__cloud_call *cc, int err, const char *message)
{
    const char *provider = cc->codec->provider;
    const char *req_id = cc->call->req ? cc->call->req->id : NULL;
    const char *m = message && *message ? message : sb_strerror(err);
    /* Once the provider has begun answering, trying again costs a second generation: leave
     * that to the retry layer only when nothing came yet. */
    bool again = !cc->started;

    sb_log(SB_LOG_WARN, req_id, "backend %s: %s upstream failed: %s", cc->backend_name, provider,
           m);
    if (err == SB_ETIMEOUT) {
        sb__emit_error(cloud_sink, cc, SB_ETIMEOUT, 504, again, 0, "%s: timed out: %s", provider,
                       m);
    } else if (err == SB_ECONNECT) {
        sb__emit_error(cloud_sink, cc, SB_ECONNECT, 502, again, 0, "%s: connection failed: %s",
                       provider, m);
    } else if (err == SB_ECANCELED) {
        sb__emit_error(cloud_sink, cc, SB_EUPSTREAM, 502, false, 0,
                       "%s: the response could not be read", provider);
    } else {
        sb__emit_error(cloud_sink, cc, SB_EUPSTREAM, 502, again, 0, "%s: %s", provider, m);
    }
}

static void on_done(void *ud, struct sb_upstream_xfer *x, int err, const char *message)
{
    struct sb__cloud_call *cc = ud;
    cc->xfer = NULL;
    cc->finishing = true;
    if (!cc->canceled && !cc->ended) {
        if (cc->status != 0 && !ok_status(cc->status)) {
            const char *req_id = cc->call->req ? cc->call->req->id : NULL;
            sb_log(SB_LOG_WARN, req_id, "backend %s: %s answered HTTP %d", cc->backend_name,
                   cc->codec->provider, cc->status);
            struct sb_str hdr = SB_STR_NULL;
            if (cc->codec->error_header)
                hdr = sb_upstream_header(x, cc->codec->error_header);
            uint32_t ra = sb__parse_retry_after(sb_upstream_header(x, "retry-after"));
            cc->codec->http_error(cc->dec, cc->status, sb_buf_view(&cc->err_body), hdr, ra);
        } else if (err == 0) {
            cc->codec->eof(cc->dec);
        } else {
            transport_error(cc, err, message);
        }
        if (!cc->ended && !cc->canceled) {
            /* A codec that emitted nothing final; the contract still needs an end. */
            sb__emit_error(cloud_sink, cc, SB_EUPSTREAM, 502, false, 0,
                           "%s: the response ended without a result", cc->codec->provider);
        }
    }
    cloud_done(cc);
}

/* The deferred end of a cancelled call, or of one accepted only to fail. */
static void on_deferred(evutil_socket_t fd, short what, void *arg)
{
    struct sb__cloud_call *cc = arg;
    SB_UNUSED(fd);
    SB_UNUSED(what);
    cc->finishing = true; /* a cancel from inside the error's delivery changes nothing now */
    if (cc->fail_code != 0 && !cc->canceled) {
        sb__emit_error(cloud_sink, cc, cc->fail_code, cc->fail_status, false, 0, "%s",
                       cc->err_body.p ? cc->err_body.p : "");
    }
    cloud_done(cc);
}

static struct sb__cloud_call *cloud_new(struct sb_call *call, const char *backend_name,
                                        const struct sb__cloud_codec *codec)
{
    struct sb__cloud_call *cc = calloc(1, sizeof *cc);
    if (!cc)
        return NULL;
    cc->call = call;
    cc->backend_name = backend_name;
    cc->codec = codec;
    sb_buf_init(&cc->err_body, SB__CLOUD_ERROR_BODY_MAX);
    cc->done_ev = event_new(call->base, -1, 0, on_deferred, cc);
    if (!cc->done_ev) {
        cloud_free(cc);
        return NULL;
    }
    return cc;
}

static bool call_ok(const struct sb_call *call)
{
    return call && call->base && call->on_event && call->on_done;
}

int sb__cloud_call_start(struct sb_call *call, const char *backend_name, const char *model,
                         const struct sb__cloud_codec *codec, const void *codec_ctx,
                         struct sb_upstream_request *r)
{
    struct sb__cloud_call *cc = NULL;
    int rc;

    if (!call_ok(call) || !call->upstream) {
        rc = SB_EINVAL;
        goto fail;
    }
    cc = cloud_new(call, backend_name, codec);
    if (!cc) {
        rc = SB_ENOMEM;
        goto fail;
    }
    cc->model = model;
    cc->dec = codec->create(cloud_sink, cc, codec_ctx);
    if (!cc->dec) {
        rc = SB_ENOMEM;
        goto fail;
    }
    r->on_response = on_response;
    r->on_data = on_data;
    r->on_done = on_done;
    r->ud = cc;
    rc = sb_upstream_start(call->upstream, r, &cc->xfer);
    if (rc != SB_OK)
        goto fail;
    call->backend_data = cc;
    return SB_OK;

fail:
    if (cc)
        cloud_free(cc);
    return rc;
}

int sb__cloud_call_fail(struct sb_call *call, const char *backend_name, int code, int http_status,
                        const char *message)
{
    if (!call_ok(call))
        return SB_EINVAL;
    struct sb__cloud_call *cc = cloud_new(call, backend_name, NULL);
    if (!cc)
        return SB_ENOMEM;
    if (sb_buf_append_c(&cc->err_body, message) != SB_OK) {
        cloud_free(cc);
        return SB_ENOMEM;
    }
    cc->fail_code = code;
    cc->fail_status = http_status;
    call->backend_data = cc;
    event_active(cc->done_ev, 0, 0);
    return SB_OK;
}

void sb__cloud_call_cancel(struct sb_backend *b, struct sb_call *call)
{
    SB_UNUSED(b);
    struct sb__cloud_call *cc = call->backend_data;
    if (!cc || cc->canceled)
        return;
    cc->canceled = true;
    if (cc->finishing)
        return; /* the upstream's on_done is on the stack and ends the call when it returns */
    if (cc->xfer) {
        sb_upstream_cancel(cc->xfer);
        cc->xfer = NULL;
    }
    /* Already active for a failed call: activating again is harmless. */
    event_active(cc->done_ev, 0, 0);
}
