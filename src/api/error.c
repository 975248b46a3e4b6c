/* Client-facing errors shared by every codec: filling an sb_api_error, and choosing the status,
 * type and code that a backend's SB_EV_ERROR shows a client. */
#include "api/api.h"

#include <stdio.h>
#include <string.h>

int sb_api_fail(struct sb_api_error *err, int http_status, const char *type, const char *code,
                const char *param, const char *fmt, ...)
{
    va_list ap;
    size_t n = param ? strlen(param) : 0;

    err->http_status = http_status;
    err->type = type;
    err->code = code;
    /* A param longer than the field is cut: it only points the client at the field. */
    n = SB_MIN(n, sizeof(err->param) - 1);
    if (n)
        memcpy(err->param, param, n);
    err->param[n] = '\0';
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof(err->message), fmt, ap);
    va_end(ap);
    return SB_EINVAL;
}

/* ---------------------------------------------------------------------------------------------
 * Backend errors
 * Types and codes are OpenAI's, the API most clients speak; other codecs map the status onto
 * their own vocabulary when they render.
 * ------------------------------------------------------------------------------------------- */

struct code_map {
    int code;             /* SB_E* */
    int http_status;      /* when the event does not name one */
    const char *type;     /* OpenAI's error.type */
    const char *err_code; /* OpenAI's error.code, or NULL */
    const char *message;  /* when the event carries none */
};

static const struct code_map code_maps[] = {
    /* The prompt does not fit: OpenAI answers exactly this, and SDKs key truncation logic on it. */
    {SB_ECONTEXT, 400, "invalid_request_error", "context_length_exceeded",
     "The request does not fit in the model's context window. Shorten the messages or lower "
     "max_tokens."},
    /* A full queue is a rate limit from the client's view: OpenAI's 429 with type "requests"
     * (its type for request-count limits) makes SDKs back off and retry. */
    {SB_EFULL, 429, "requests", "rate_limit_exceeded",
     "The server is busy: too many requests are queued for this model. Retry after a short wait."},
    {SB_ENOTFOUND, 404, "invalid_request_error", "model_not_found",
     "The model does not exist or is not served here. GET /v1/models lists the models."},
    {SB_EINVAL, 400, "invalid_request_error", NULL, "The backend rejected the request as invalid."},
    {SB_EUNSUPPORTED, 400, "invalid_request_error", NULL,
     "The request uses a feature that the chosen backend does not support."},
    {SB_EBACKEND, 500, "server_error", NULL, "The model backend failed while serving the request."},
};

static const struct code_map fallback_map = {
    0, 500, "server_error", NULL, "The server failed while serving the request.",
};

/* The type a status implies when the backend overrode the table's status: an upstream's 429 is
 * a rate limit whatever our code called it, a 5xx is the server's fault. */
static const char *type_for_status(int status)
{
    if (status == 429)
        return "requests";
    if (status >= 500)
        return "server_error";
    return "invalid_request_error";
}

/* Copies at most cap-1 bytes of s, never ending inside a UTF-8 sequence, NUL-terminated. */
static void copy_message(char *dst, size_t cap, struct sb_str s)
{
    size_t n = SB_MIN(s.len, cap - 1);

    if (n < s.len) {
        /* Back up over continuation bytes (10xxxxxx) to the start of the cut code point. */
        while (n > 0 && ((unsigned char)s.p[n] & 0xC0) == 0x80)
            n--;
    }
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

void sb_api_error_from_event(const struct sb_event *ev, struct sb_api_error *err)
{
    const struct code_map *m = &fallback_map;
    int status;

    for (size_t i = 0; i < SB_ARRAY_LEN(code_maps); i++) {
        if (code_maps[i].code == ev->error.code) {
            m = &code_maps[i];
            break;
        }
    }
    status = ev->error.http_status;
    if (status < 400 || status > 599)
        status = m->http_status;
    err->http_status = status;
    if (status == m->http_status) {
        err->type = m->type;
        err->code = m->err_code;
    } else {
        err->type = type_for_status(status);
        err->code = status == 429 ? "rate_limit_exceeded" : NULL;
    }
    /* The field at fault, when the backend named one (cut like the message: it only points). */
    copy_message(err->param, sizeof(err->param), ev->error.param);
    if (ev->error.message.len)
        copy_message(err->message, sizeof(err->message), ev->error.message);
    else
        copy_message(err->message, sizeof(err->message), sb_str_c(m->message));
}
