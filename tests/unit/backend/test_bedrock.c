/* Tests for the bedrock backend's codec: the Converse request body (system, merged turns, tool
 * results, toolConfig, images), the ConverseStream decoder over real event-stream frames (split at
 * every point, toolUse deltas, cache usage, stop reasons), exception frames and HTTP errors. */
#include "backend/bedrock.h"
#include "backend/eventstream.h"
#include "recorder.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

/* -----------------------------------------------------------------------------------------------
 * Request rendering
 * --------------------------------------------------------------------------------------------- */

static struct sb_part text_part(const char *s)
{
    return (struct sb_part){.type = SB_PART_TEXT, .text = sb_str_c(s)};
}

static json_t *render(const struct sb_request *req)
{
    struct sb_buf b;
    char err[256];
    sb_buf_init(&b, SB__BEDROCK_BODY_MAX);
    int rc = sb__bedrock_render(req, &b, err, sizeof err);
    cr_assert_eq(rc, 0, "render: %d %s", rc, err);
    json_error_t jerr;
    json_t *j = json_loadb(b.p, b.len, 0, &jerr);
    cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, b.p);
    sb_buf_free(&b);
    return j;
}

static const char *jstr_at(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

Test(bedrock_render, conversation_with_tools)
{
    struct sb_part sys = text_part("Be brief.");
    struct sb_part u1 = text_part("Weather in Paris?");
    struct sb_part r1 = text_part("18C");
    struct sb_part empty = text_part("");
    struct sb_part u2 = text_part("And tomorrow?");
    struct sb_tool_call call = {SB_STR_LIT("tooluse_1"), SB_STR_LIT("get_weather"),
                                SB_STR_LIT("{\"city\":\"Paris\"}")};
    struct sb_message msgs[] = {
        {.role = SB_ROLE_SYSTEM, .parts = &sys, .n_parts = 1},
        {.role = SB_ROLE_USER, .parts = &u1, .n_parts = 1},
        {.role = SB_ROLE_ASSISTANT,
         .parts = &empty,
         .n_parts = 1,
         .tool_calls = &call,
         .n_tool_calls = 1},
        {.role = SB_ROLE_TOOL, .parts = &r1, .n_parts = 1, .tool_call_id = SB_STR_LIT("tooluse_1")},
        {.role = SB_ROLE_TOOL,
         .parts = &empty,
         .n_parts = 1,
         .tool_call_id = SB_STR_LIT("tooluse_2")},
        {.role = SB_ROLE_USER, .parts = &u2, .n_parts = 1},
    };
    struct sb_tool tool = {SB_STR_LIT("get_weather"), SB_STR_LIT("Weather by city"),
                           SB_STR_LIT("{\"type\":\"object\",\"properties\":{}}")};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = SB_ARRAY_LEN(msgs);
    req.tools = &tool;
    req.n_tools = 1;
    req.max_tokens = 300;
    req.sampling.temperature = 0.5f;
    req.stop[0] = SB_STR_LIT("STOP");
    req.n_stop = 1;

    json_t *j = render(&req);
    json_t *system = json_object_get(j, "system");
    cr_assert_eq(json_array_size(system), 1);
    cr_assert_str_eq(jstr_at(json_array_get(system, 0), "text"), "Be brief.");

    json_t *m = json_object_get(j, "messages");
    cr_assert_eq(json_array_size(m), 3);
    json_t *ac = json_object_get(json_array_get(m, 1), "content");
    cr_assert_eq(json_array_size(ac), 1, "the empty text is dropped: Converse rejects blank text");
    json_t *tu = json_object_get(json_array_get(ac, 0), "toolUse");
    cr_assert_str_eq(jstr_at(tu, "toolUseId"), "tooluse_1");
    cr_assert_str_eq(jstr_at(json_object_get(tu, "input"), "city"), "Paris");

    json_t *uc = json_object_get(json_array_get(m, 2), "content");
    cr_assert_eq(json_array_size(uc), 3, "two toolResults and the text, in one user turn");
    json_t *tr = json_object_get(json_array_get(uc, 0), "toolResult");
    cr_assert_str_eq(jstr_at(tr, "toolUseId"), "tooluse_1");
    cr_assert_str_eq(jstr_at(json_array_get(json_object_get(tr, "content"), 0), "text"), "18C");
    json_t *tr2 = json_object_get(json_array_get(uc, 1), "toolResult");
    cr_assert(
        json_is_object(json_object_get(json_array_get(json_object_get(tr2, "content"), 0), "json")),
        "an empty result still has content");
    cr_assert_str_eq(jstr_at(json_array_get(uc, 2), "text"), "And tomorrow?");

    json_t *inf = json_object_get(j, "inferenceConfig");
    cr_assert_eq(json_integer_value(json_object_get(inf, "maxTokens")), 300);
    cr_assert_float_eq(json_number_value(json_object_get(inf, "temperature")), 0.5, 1e-6);
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(inf, "stopSequences"), 0)),
                     "STOP");

    json_t *tc = json_object_get(j, "toolConfig");
    json_t *spec = json_object_get(json_array_get(json_object_get(tc, "tools"), 0), "toolSpec");
    cr_assert_str_eq(jstr_at(spec, "name"), "get_weather");
    cr_assert(json_is_object(json_object_get(json_object_get(spec, "inputSchema"), "json")));
    cr_assert_null(json_object_get(tc, "toolChoice"), "auto is the default: not sent");
    json_decref(j);
}

Test(bedrock_render, tool_choice_and_images)
{
    struct sb_part parts[] = {
        text_part("Describe"),
        {.type = SB_PART_IMAGE, .url = SB_STR_LIT("data:image/jpeg;base64,/9j/4A==")},
    };
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = parts, .n_parts = 2};
    struct sb_tool tool = {SB_STR_LIT("f"), SB_STR_NULL, SB_STR_NULL};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &msg;
    req.n_messages = 1;
    req.tools = &tool;
    req.n_tools = 1;
    req.tool_choice = SB_TOOL_CHOICE_NAMED;
    req.tool_choice_name = SB_STR_LIT("f");
    json_t *j = render(&req);
    cr_assert_null(json_object_get(j, "inferenceConfig"), "nothing set: left out");
    json_t *tc = json_object_get(j, "toolConfig");
    cr_assert_str_eq(jstr_at(json_object_get(json_object_get(tc, "toolChoice"), "tool"), "name"),
                     "f");
    json_t *img = json_object_get(
        json_array_get(
            json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content"), 1),
        "image");
    cr_assert_str_eq(jstr_at(img, "format"), "jpeg");
    cr_assert_str_eq(jstr_at(json_object_get(img, "source"), "bytes"), "/9j/4A==");
    json_decref(j);

    req.tool_choice = SB_TOOL_CHOICE_REQUIRED;
    j = render(&req);
    cr_assert(json_is_object(
        json_object_get(json_object_get(json_object_get(j, "toolConfig"), "toolChoice"), "any")));
    json_decref(j);

    req.tool_choice = SB_TOOL_CHOICE_NONE;
    j = render(&req);
    cr_assert_null(json_object_get(j, "toolConfig"), "none: the tools are not offered");
    json_decref(j);

    /* A URL image cannot be sent to Converse. */
    parts[1] = (struct sb_part){.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/y.png")};
    struct sb_buf b;
    char err[256];
    sb_buf_init(&b, 1 << 20);
    cr_assert_eq(sb__bedrock_render(&req, &b, err, sizeof err), SB_EUNSUPPORTED);
    cr_assert(strstr(err, "URL"), "%s", err);
    sb_buf_free(&b);
}

/* -----------------------------------------------------------------------------------------------
 * The event stream
 * --------------------------------------------------------------------------------------------- */

/* Appends one ConverseStream event frame, as Bedrock sends it (with its "p" padding field). */
static void frame(struct sb_buf *b, const char *type, const char *json)
{
    struct sb__es_header h[] = {
        {.name = SB_STR_LIT(":event-type"), .type = SB__ES_STRING, .bytes = sb_str_c(type)},
        {.name = SB_STR_LIT(":content-type"),
         .type = SB__ES_STRING,
         .bytes = SB_STR_LIT("application/json")},
        {.name = SB_STR_LIT(":message-type"), .type = SB__ES_STRING, .bytes = SB_STR_LIT("event")},
    };
    cr_assert_eq(sb__es_encode(b, h, 3, sb_str_c(json)), 0);
}

static void exception_frame(struct sb_buf *b, const char *type, const char *json)
{
    struct sb__es_header h[] = {
        {.name = SB_STR_LIT(":exception-type"), .type = SB__ES_STRING, .bytes = sb_str_c(type)},
        {.name = SB_STR_LIT(":content-type"),
         .type = SB__ES_STRING,
         .bytes = SB_STR_LIT("application/json")},
        {.name = SB_STR_LIT(":message-type"),
         .type = SB__ES_STRING,
         .bytes = SB_STR_LIT("exception")},
    };
    cr_assert_eq(sb__es_encode(b, h, 3, sb_str_c(json)), 0);
}

static void tool_stream(struct sb_buf *b)
{
    sb_buf_init(b, 1 << 20);
    frame(b, "messageStart", "{\"p\":\"abcd\",\"role\":\"assistant\"}");
    frame(b, "contentBlockDelta",
          "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Checking \"},\"p\":\"ab\"}");
    frame(b, "contentBlockDelta",
          "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"\xc3\xa9t\xc3\xa9.\"}}");
    frame(b, "contentBlockStop", "{\"contentBlockIndex\":0}");
    frame(b, "contentBlockStart",
          "{\"contentBlockIndex\":1,\"start\":{\"toolUse\":{\"toolUseId\":"
          "\"tooluse_A\",\"name\":\"get_weather\"}}}");
    frame(b, "contentBlockDelta",
          "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":"
          "\"{\\\"city\\\":\"}}}");
    frame(b, "contentBlockDelta",
          "{\"contentBlockIndex\":1,\"delta\":{\"toolUse\":{\"input\":"
          "\"\\\"Paris\\\"}\"}}}");
    frame(b, "contentBlockStop", "{\"contentBlockIndex\":1}");
    frame(b, "contentBlockStart",
          "{\"contentBlockIndex\":2,\"start\":{\"toolUse\":{\"toolUseId\":"
          "\"tooluse_B\",\"name\":\"now\"}}}");
    frame(b, "contentBlockStop", "{\"contentBlockIndex\":2}");
    frame(b, "messageStop", "{\"stopReason\":\"tool_use\"}");
    frame(b, "metadata",
          "{\"usage\":{\"inputTokens\":30,\"outputTokens\":12,\"totalTokens\":"
          "242,\"cacheReadInputTokens\":200,\"cacheWriteInputTokens\":0},"
          "\"metrics\":{\"latencyMs\":100}}");
}

static void decode(const char *p, size_t len, const size_t *cuts, size_t n, struct rec *r)
{
    rec_init(r);
    struct sb__bedrock_stream *s = sb__bedrock_stream_new(rec_sink, r);
    cr_assert_not_null(s);
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : len;
        if (sb__bedrock_stream_feed(s, p + at, end - at) != 0)
            break;
        at = end;
    }
    sb__bedrock_stream_eof(s);
    sb__bedrock_stream_free(s);
}

static void check_tool_stream(const struct rec *r)
{
    cr_assert_eq(r->n_misordered, 0);
    cr_assert_eq(r->n_after_end, 0);
    cr_assert_eq(r->n_error, 0, "%s", r->err_msg);
    cr_assert_eq(r->n_start, 1);
    cr_assert_str_eq(r->text.p, "Checking \xc3\xa9t\xc3\xa9.");
    cr_assert_eq(r->n_tools, 2);
    cr_assert_str_eq(r->tools[0].id, "tooluse_A");
    cr_assert_str_eq(r->tools[0].args.p, "{\"city\":\"Paris\"}");
    cr_assert_str_eq(r->tools[1].name, "now");
    cr_assert_str_eq(r->tools[1].args.p, "{}", "a call without input gets an empty object");
    cr_assert_eq(r->usage.prompt_tokens, 230, "input + cache reads + cache writes");
    cr_assert_eq(r->usage.cached_prompt_tokens, 200);
    cr_assert_eq(r->usage.completion_tokens, 12);
    cr_assert_eq(r->reason, SB_FINISH_TOOL_CALLS);
    cr_assert_eq(r->n_finish, 1);
}

Test(bedrock_stream, whole_and_every_split)
{
    struct sb_buf b;
    tool_stream(&b);
    struct rec whole;
    decode(b.p, b.len, NULL, 0, &whole);
    check_tool_stream(&whole);
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct rec r;
        decode(b.p, b.len, &cut, 1, &r);
        char what[32];
        snprintf(what, sizeof what, "cut at %zu", cut);
        rec_assert_same(&whole, &r, what);
        rec_free(&r);
    }
    rec_free(&whole);
    sb_buf_free(&b);
}

Test(bedrock_stream, byte_by_byte)
{
    struct sb_buf b;
    tool_stream(&b);
    size_t *cuts = malloc(b.len * sizeof *cuts);
    for (size_t i = 0; i < b.len; i++)
        cuts[i] = i + 1;
    struct rec r;
    decode(b.p, b.len, cuts, b.len - 1, &r);
    check_tool_stream(&r);
    rec_free(&r);
    free(cuts);
    sb_buf_free(&b);
}

Test(bedrock_stream, exception_frame_mid_stream)
{
    static const struct {
        const char *type;
        int status;
        bool retryable;
    } cases[] = {
        {"throttlingException", 429, true},    {"serviceUnavailableException", 503, true},
        {"validationException", 400, false},   {"modelStreamErrorException", 502, true},
        {"somethingNewException", 502, false},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct sb_buf b;
        sb_buf_init(&b, 1 << 16);
        frame(&b, "messageStart", "{\"role\":\"assistant\"}");
        frame(&b, "contentBlockDelta", "{\"contentBlockIndex\":0,\"delta\":{\"text\":\"Hi\"}}");
        exception_frame(&b, cases[i].type, "{\"message\":\"Too many requests, slow down\"}");
        frame(&b, "messageStop", "{\"stopReason\":\"end_turn\"}");
        struct rec r;
        decode(b.p, b.len, NULL, 0, &r);
        cr_assert_str_eq(r.text.p, "Hi");
        cr_assert_eq(r.n_error, 1, "%s", cases[i].type);
        cr_assert_eq(r.n_finish, 0);
        cr_assert_eq(r.n_after_end, 0);
        cr_assert_eq(r.err_status, cases[i].status, "%s", cases[i].type);
        cr_assert_eq(r.err_retryable, cases[i].retryable, "%s", cases[i].type);
        cr_assert(strstr(r.err_msg, "slow down") && strstr(r.err_msg, cases[i].type), "%s",
                  r.err_msg);
        rec_free(&r);
        sb_buf_free(&b);
    }
}

Test(bedrock_stream, bad_crc_truncation_and_stop_reasons)
{
    struct sb_buf b;
    tool_stream(&b);
    b.p[b.len / 2] ^= 0x20; /* somewhere inside a frame */
    struct rec r;
    decode(b.p, b.len, NULL, 0, &r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.err_status, 502);
    cr_assert(strstr(r.err_msg, "CRC"), "%s", r.err_msg);
    rec_free(&r);
    sb_buf_free(&b);

    tool_stream(&b);
    decode(b.p, b.len - 5, NULL, 0, &r); /* cut inside the last frame */
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_finish, 0);
    cr_assert(strstr(r.err_msg, "inside a frame"), "%s", r.err_msg);
    rec_free(&r);
    sb_buf_free(&b);

    /* messageStop without metadata: finished at the end of the body, usage unknown (0). */
    static const struct {
        const char *reason;
        enum sb_finish_reason want;
    } stops[] = {{"end_turn", SB_FINISH_STOP},
                 {"max_tokens", SB_FINISH_LENGTH},
                 {"stop_sequence", SB_FINISH_STOP},
                 {"content_filtered", SB_FINISH_CONTENT_FILTER},
                 {"guardrail_intervened", SB_FINISH_CONTENT_FILTER}};
    for (size_t i = 0; i < SB_ARRAY_LEN(stops); i++) {
        char json[128];
        snprintf(json, sizeof json, "{\"stopReason\":\"%s\"}", stops[i].reason);
        sb_buf_init(&b, 1 << 16);
        frame(&b, "messageStart", "{\"role\":\"assistant\"}");
        frame(&b, "messageStop", json);
        decode(b.p, b.len, NULL, 0, &r);
        cr_assert_eq(r.n_finish, 1, "%s", stops[i].reason);
        cr_assert_eq(r.reason, stops[i].want, "%s", stops[i].reason);
        cr_assert_eq(r.n_usage, 1);
        rec_free(&r);
        sb_buf_free(&b);
    }

    /* No messageStop at all: cut short. */
    sb_buf_init(&b, 1 << 16);
    frame(&b, "messageStart", "{\"role\":\"assistant\"}");
    decode(b.p, b.len, NULL, 0, &r);
    cr_assert_eq(r.n_error, 1);
    cr_assert(strstr(r.err_msg, "messageStop"), "%s", r.err_msg);
    rec_free(&r);
    sb_buf_free(&b);
}

Test(bedrock_http, errors_mapped)
{
    static const struct {
        int status;
        const char *type_header;
        const char *body;
        int want;
        bool retryable;
        const char *contains;
    } cases[] = {
        {403,
         "InvalidSignatureException:http://internal.amazon.com/coral/com.amazon.coral.service/",
         "{\"message\":\"The request signature we calculated does not match the signature you "
         "provided.\"}",
         403, false, "refused the credentials"},
        {429, "ThrottlingException", "{\"message\":\"Too many requests\"}", 429, true,
         "ThrottlingException"},
        {400, "", "{\"message\":\"Malformed input request\"}", 400, false, "Malformed input"},
        {503, "ServiceUnavailableException", "{\"Message\":\"down\"}", 503, true, "down"},
        {500, "", "not json", 502, true, "HTTP 500"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct rec r;
        rec_init(&r);
        struct sb__bedrock_stream *s = sb__bedrock_stream_new(rec_sink, &r);
        sb__bedrock_stream_http_error(s, cases[i].status, sb_str_c(cases[i].body),
                                      sb_str_c(cases[i].type_header), 1500);
        sb__bedrock_stream_free(s);
        cr_assert_eq(r.n_error, 1);
        cr_assert_eq(r.err_status, cases[i].want, "case %zu", i);
        cr_assert_eq(r.err_retryable, cases[i].retryable, "case %zu", i);
        cr_assert_eq(r.err_retry_after_ms, 1500);
        cr_assert(strstr(r.err_msg, cases[i].contains), "case %zu: %s", i, r.err_msg);
        cr_assert_null(strstr(r.err_msg, "http://internal"), "%s", r.err_msg);
        rec_free(&r);
    }
}
