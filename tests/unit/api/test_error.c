/* Tests for client-facing errors: sb_api_fail and the SB_EV_ERROR → status/type/code table. */
#include <criterion/criterion.h>
#include <string.h>

#include "api/api.h"

static struct sb_event error_event(int code, int status, const char *message)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = status;
    ev.error.message = sb_str_c(message);
    return ev;
}

Test(api_error, fail_fills_every_field)
{
    struct sb_api_error e;

    cr_expect_eq(sb_api_fail(&e, 404, "invalid_request_error", "model_not_found", "model",
                             "The model '%s' does not exist.", "nope"),
                 SB_EINVAL);
    cr_expect_eq(e.http_status, 404);
    cr_expect_str_eq(e.type, "invalid_request_error");
    cr_expect_str_eq(e.code, "model_not_found");
    cr_expect_str_eq(e.param, "model");
    cr_expect_str_eq(e.message, "The model 'nope' does not exist.");

    sb_api_fail(&e, 500, "server_error", NULL, NULL, "x");
    cr_expect_null(e.code);
    cr_expect_str_eq(e.param, "");
}

Test(api_error, fail_cuts_long_param_and_message)
{
    struct sb_api_error e;
    char big[2048];

    memset(big, 'p', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sb_api_fail(&e, 400, "invalid_request_error", NULL, big, "%s", big);
    cr_expect_eq(strlen(e.param), sizeof(e.param) - 1);
    cr_expect_eq(strlen(e.message), sizeof(e.message) - 1);
}

/* The mapping, one row per case: event code and status in, what the client sees out. */
static const struct {
    int code, status;
    int want_status;
    const char *want_type, *want_code;
} mapping[] = {
    {SB_ECONTEXT, 0, 400, "invalid_request_error", "context_length_exceeded"},
    {SB_EFULL, 0, 429, "requests", "rate_limit_exceeded"},
    {SB_ENOTFOUND, 0, 404, "invalid_request_error", "model_not_found"},
    {SB_EINVAL, 0, 400, "invalid_request_error", NULL},
    {SB_EUNSUPPORTED, 0, 400, "invalid_request_error", NULL},
    {SB_EBACKEND, 0, 500, "server_error", NULL},
    {SB_EBACKEND, 502, 502, "server_error", NULL},
    {SB_EBACKEND, 503, 503, "server_error", NULL},
    {SB_EBACKEND, 504, 504, "server_error", NULL},
    {SB_EBACKEND, 429, 429, "requests", "rate_limit_exceeded"}, /* an upstream's rate limit */
    {SB_EBACKEND, 401, 401, "invalid_request_error", NULL},
    {SB_ECONTEXT, 400, 400, "invalid_request_error", "context_length_exceeded"},
    {SB_ENOMEM, 0, 500, "server_error", NULL},
    {SB_EIO, 0, 500, "server_error", NULL},
    {SB_ECANCELED, 0, 500, "server_error", NULL},
    {12345, 0, 500, "server_error", NULL},
    {SB_EBACKEND, 200, 500, "server_error", NULL}, /* not an error status: ignored */
};

Test(api_error, from_event_table)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(mapping); i++) {
        struct sb_api_error e;
        struct sb_event ev = error_event(mapping[i].code, mapping[i].status, "");

        memset(&e, 0x5a, sizeof(e));
        sb_api_error_from_event(&ev, &e);
        cr_expect_eq(e.http_status, mapping[i].want_status, "row %zu: %d", i, e.http_status);
        cr_expect_str_eq(e.type, mapping[i].want_type, "row %zu", i);
        if (mapping[i].want_code)
            cr_expect(e.code && strcmp(e.code, mapping[i].want_code) == 0, "row %zu", i);
        else
            cr_expect_null(e.code, "row %zu: %s", i, e.code);
        cr_expect_str_eq(e.param, "", "row %zu", i);
        cr_expect_gt(strlen(e.message), 10, "row %zu gets a default message", i);
    }
}

Test(api_error, from_event_keeps_message_and_cuts_on_a_code_point)
{
    struct sb_api_error e;
    char msg[600];
    struct sb_event ev;

    ev = error_event(SB_EBACKEND, 502, "upstream said no");
    sb_api_error_from_event(&ev, &e);
    cr_expect_str_eq(e.message, "upstream said no");

    /* 510 ASCII bytes then "é" (2 bytes) straddles the 511-byte limit: the é must go whole. */
    memset(msg, 'a', 510);
    memcpy(msg + 510, "\xc3\xa9tail", 7);
    ev = error_event(SB_EBACKEND, 0, msg);
    sb_api_error_from_event(&ev, &e);
    cr_expect_eq(strlen(e.message), 510);
}

Test(api_error, from_event_names_the_param_a_backend_named)
{
    struct sb_api_error e;
    struct sb_event ev;

    memset(&e, 'x', sizeof(e));
    ev = error_event(SB_EINVAL, 400, "Invalid 'dimensions': 4096.");
    sb_api_error_from_event(&ev, &e);
    cr_expect_str_eq(e.param, "", "none named: empty, not left over");

    ev.error.param = SB_STR_LIT("dimensions");
    sb_api_error_from_event(&ev, &e);
    cr_expect_str_eq(e.param, "dimensions");
    cr_expect_eq(e.http_status, 400);
    cr_expect_str_eq(e.type, "invalid_request_error");
}
