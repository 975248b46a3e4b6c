/* Tests for response helpers: status phrases, path sanitizing for logs, and the JSON response that
 * replaces libevent's own HTML error pages (413 for a body over the limit, 400, 501). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

static struct sb_str lit(const char *s)
{
    return sb_str_c(s);
}

Test(respond, recognizes_error_status_lines_only)
{
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 413 Request Entity Too Large\r\n")), 413);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.0 400 Bad Request\r\n")), 400);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 501 Not Implemented")), 501);
    /* 100 Continue is libevent's too, and must pass untouched. */
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 100 Continue\r\n\r\n")), 0);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 200 OK\r\n")), 0);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 41")), 0);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 4x3 Bad")), 0);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/2.0 413 Too Large")), 0);
    cr_assert_eq(sb__parser_error_status(lit("data: {\"x\":1}\n\n")), 0);
    cr_assert_eq(sb__parser_error_status(lit("HTTP/1.1 600 Odd\r\n")), 0);
}

/* Splits a response into its head and body; checks Content-Length matches. Returns the body. */
static const char *check_framing(const char *resp, const char *status_line)
{
    const char *end = strstr(resp, "\r\n\r\n");
    const char *cl = strstr(resp, "Content-Length: ");

    cr_assert(strncmp(resp, status_line, strlen(status_line)) == 0, "%s", resp);
    cr_assert_not_null(end);
    cr_assert_not_null(cl);
    cr_assert_eq(strtoul(cl + 16, NULL, 10), strlen(end + 4));
    cr_assert_not_null(strstr(resp, "\r\nConnection: close\r\n"));
    cr_assert_not_null(strstr(resp, "\r\nContent-Type: application/json; charset=utf-8\r\n"));
    cr_assert_not_null(strstr(resp, "\r\nx-request-id: req_test\r\n"));
    return end + 4;
}

Test(respond, a_body_over_the_limit_gets_openais_error_shape_with_the_limit)
{
    struct sb_buf b;
    json_t *root, *err;
    const char *body;

    sb_buf_init(&b, 1 << 16);
    cr_assert_eq(sb__parser_error_response(413, '1', 8388608, "req_test", &sb_openai_codec, &b), 0);
    body = check_framing(b.p, "HTTP/1.1 413 Content Too Large\r\n");
    root = json_loads(body, 0, NULL);
    cr_assert_not_null(root, "%s", body);
    err = json_object_get(root, "error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "type")), "invalid_request_error");
    cr_assert_str_eq(json_string_value(json_object_get(err, "code")), "request_too_large");
    cr_assert(json_is_null(json_object_get(err, "param")));
    cr_assert_not_null(strstr(json_string_value(json_object_get(err, "message")), "8388608"));
    json_decref(root);
    sb_buf_free(&b);
}

Test(respond, other_parser_errors_keep_their_status_and_http_version)
{
    struct sb_buf b;
    const char *body;

    sb_buf_init(&b, 1 << 16);
    cr_assert_eq(sb__parser_error_response(400, '0', 10, "req_test", &sb_openai_codec, &b), 0);
    body = check_framing(b.p, "HTTP/1.0 400 Bad Request\r\n");
    cr_assert_not_null(strstr(body, "\"invalid_request\""));
    sb_buf_reset(&b);
    cr_assert_eq(sb__parser_error_response(501, '1', 10, "req_test", &sb_openai_codec, &b), 0);
    check_framing(b.p, "HTTP/1.1 501 Not Implemented\r\n");
    sb_buf_reset(&b);
    /* A status with no entry still gets a JSON body, typed by its class. */
    cr_assert_eq(sb__parser_error_response(505, '1', 10, "req_test", &sb_openai_codec, &b), 0);
    body = check_framing(b.p, "HTTP/1.1 505 Error\r\n");
    cr_assert_not_null(strstr(body, "\"server_error\""));
    sb_buf_free(&b);
}

Test(respond, status_reasons)
{
    cr_assert_str_eq(sb__status_reason(429), "Too Many Requests");
    cr_assert_str_eq(sb__status_reason(413), "Content Too Large");
    cr_assert_str_eq(sb__status_reason(200), "OK");
    cr_assert_null(sb__status_reason(299));
}

Test(respond, paths_are_sanitized_and_cut_for_logs)
{
    char out[16];

    sb__sanitize_path("/v1/models", out, sizeof(out));
    cr_assert_str_eq(out, "/v1/models");
    sb__sanitize_path("/a\nb\x1b[31m\xc3\xa9", out, sizeof(out));
    cr_assert_str_eq(out, "/a?b?[31m??");
    sb__sanitize_path("/0123456789abcdefghij", out, sizeof(out));
    cr_assert_str_eq(out, "/0123456789a...");
    cr_assert_eq(strlen(out), sizeof(out) - 1);
    sb__sanitize_path(NULL, out, sizeof(out));
    cr_assert_str_eq(out, "");
    sb__sanitize_path("/abc", out, 3);
    cr_assert_str_eq(out, "..");
    sb__sanitize_path("/abc", out, 1);
    cr_assert_str_eq(out, "");
}

Test(respond, parser_errors_take_the_error_shape_of_the_paths_api)
{
    struct sb_buf b;
    const char *body;

    sb_buf_init(&b, 1 << 16);
    cr_assert_eq(sb__parser_error_response(413, '1', 100, "req_test",
                                           sb__codec_for_path("/v1/messages"), &b),
                 0);
    body = check_framing(b.p, "HTTP/1.1 413 Content Too Large\r\n");
    cr_assert_not_null(strstr(body, "{\"type\":\"error\",\"error\":{\"type\":"), "%s", body);
    sb_buf_reset(&b);
    cr_assert_eq(
        sb__parser_error_response(413, '1', 100, "req_test", sb__codec_for_path("/api/chat"), &b),
        0);
    body = check_framing(b.p, "HTTP/1.1 413 Content Too Large\r\n");
    cr_assert_eq(strncmp(body, "{\"error\":\"", 10), 0, "%s", body);
    sb_buf_free(&b);
}

Test(respond, paths_map_to_their_apis_codec)
{
    cr_assert_eq(sb__codec_for_path("/v1/messages"), &sb_anthropic_codec);
    cr_assert_eq(sb__codec_for_path("/v1/messages/count_tokens"), &sb_anthropic_codec);
    cr_assert_eq(sb__codec_for_path("/api/chat"), &sb_ollama_codec);
    cr_assert_eq(sb__codec_for_path("/api/pull"), &sb_ollama_codec);
    cr_assert_eq(sb__codec_for_path("/v1/chat/completions"), &sb_openai_codec);
    cr_assert_eq(sb__codec_for_path("/nowhere"), &sb_openai_codec);
    cr_assert_eq(sb__codec_for_path(""), &sb_openai_codec);
    cr_assert_eq(sb__codec_for_path(NULL), &sb_openai_codec);
}

Test(respond, the_path_of_a_request_line_is_sniffed)
{
    char out[16] = "kept";

    cr_assert(
        sb__sniff_request_path(SB_STR_LIT("POST /v1/messages HTTP/1.1\r\n"), out, sizeof(out)));
    cr_assert_str_eq(out, "/v1/messages");
    cr_assert(sb__sniff_request_path(SB_STR_LIT("GET /api/tags?x=1 HTTP/1.1"), out, sizeof(out)));
    cr_assert_str_eq(out, "/api/tags");
    /* Not yet a whole path: wait for more bytes. */
    snprintf(out, sizeof(out), "kept");
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("POST /v1/mess"), out, sizeof(out)));
    /* Not a request line: headers, bodies, lower-case methods, absolute URLs. */
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("Host: example\r\n"), out, sizeof(out)));
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("{\"model\": \"x\"}"), out, sizeof(out)));
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("post /x HTTP/1.1"), out, sizeof(out)));
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("GET http://h/x HTTP/1.1"), out, sizeof(out)));
    cr_assert(!sb__sniff_request_path(SB_STR_LIT("DNT: 1"), out, sizeof(out)));
    cr_assert_str_eq(out, "kept");
    /* A path longer than out is cut; its prefix still names the API. */
    cr_assert(sb__sniff_request_path(SB_STR_LIT("POST /api/aaaaaaaaaaaaaaaaaaaaaaaaaaaa"), out,
                                     sizeof(out)));
    cr_assert_str_eq(out, "/api/aaaaaaaaaa");
}
