/* Tests for the anthropic backend's codec: the Messages API request body (system prompt, tool
 * results, merged turns, images, tools, defaults), the SSE stream decoder (split at every point,
 * tool_use deltas, cache usage, stop reasons, errors mid-stream) and the HTTP error mapping. */
#include "backend/anthropic.h"
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

/* Renders req and parses the result; fails the test if either fails. */
static json_t *render(const struct sb_request *req)
{
    struct sb_buf b;
    char err[256];
    sb_buf_init(&b, SB__ANTHROPIC_BODY_MAX);
    int rc = sb__anthropic_render(req, SB_STR_LIT("claude-test"), &b, err, sizeof err);
    cr_assert_eq(rc, 0, "render: %d %s", rc, err);
    json_error_t jerr;
    json_t *j = json_loadb(b.p, b.len, 0, &jerr);
    cr_assert_not_null(j, "not JSON (%s): %s", jerr.text, b.p);
    sb_buf_free(&b);
    return j;
}

static int render_error(const struct sb_request *req, char *err, size_t err_size)
{
    struct sb_buf b;
    sb_buf_init(&b, 1 << 20);
    int rc = sb__anthropic_render(req, SB_STR_LIT("claude-test"), &b, err, err_size);
    sb_buf_free(&b);
    return rc;
}

static const char *jpath_str(json_t *j, const char *key)
{
    return json_string_value(json_object_get(j, key));
}

Test(anthropic_render, conversation_with_tools)
{
    struct sb_part sys1 = text_part("You are terse.");
    struct sb_part sys2 = text_part("Answer in French.");
    struct sb_part u1 = text_part("Weather and time in Paris?");
    struct sb_part a1 = text_part("Checking.");
    struct sb_part r1 = text_part("18C");
    struct sb_part r2 = text_part("14:00");
    struct sb_part u2 = text_part("Thanks; and tomorrow?");
    struct sb_tool_call calls[] = {
        {SB_STR_LIT("toolu_1"), SB_STR_LIT("get_weather"), SB_STR_LIT("{\"city\":\"Paris\"}")},
        {SB_STR_LIT("toolu_2"), SB_STR_LIT("get_time"), SB_STR_NULL},
    };
    struct sb_message msgs[] = {
        {.role = SB_ROLE_SYSTEM, .parts = &sys1, .n_parts = 1},
        {.role = SB_ROLE_USER, .parts = &u1, .n_parts = 1},
        {.role = SB_ROLE_ASSISTANT,
         .parts = &a1,
         .n_parts = 1,
         .tool_calls = calls,
         .n_tool_calls = 2},
        {.role = SB_ROLE_TOOL, .parts = &r1, .n_parts = 1, .tool_call_id = SB_STR_LIT("toolu_1")},
        {.role = SB_ROLE_TOOL, .parts = &r2, .n_parts = 1, .tool_call_id = SB_STR_LIT("toolu_2")},
        {.role = SB_ROLE_SYSTEM, .parts = &sys2, .n_parts = 1},
        {.role = SB_ROLE_USER, .parts = &u2, .n_parts = 1},
    };
    struct sb_tool tools[] = {
        {SB_STR_LIT("get_weather"), SB_STR_LIT("Weather by city"),
         SB_STR_LIT("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}")},
        {SB_STR_LIT("get_time"), SB_STR_NULL, SB_STR_NULL},
    };
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = SB_ARRAY_LEN(msgs);
    req.tools = tools;
    req.n_tools = 2;
    req.tool_choice = SB_TOOL_CHOICE_REQUIRED;
    req.parallel_tool_calls = false;

    json_t *j = render(&req);
    cr_assert_str_eq(jpath_str(j, "model"), "claude-test");
    cr_assert_eq(json_integer_value(json_object_get(j, "max_tokens")),
                 SB__ANTHROPIC_DEFAULT_MAX_TOKENS, "max_tokens is required: a default is sent");
    cr_assert(json_is_true(json_object_get(j, "stream")));
    cr_assert_str_eq(jpath_str(j, "system"), "You are terse.\n\nAnswer in French.");

    json_t *m = json_object_get(j, "messages");
    cr_assert_eq(json_array_size(m), 3, "user / assistant / user (tool results + text merged)");
    cr_assert_str_eq(jpath_str(json_array_get(m, 0), "role"), "user");
    cr_assert_str_eq(jpath_str(json_array_get(m, 1), "role"), "assistant");
    cr_assert_str_eq(jpath_str(json_array_get(m, 2), "role"), "user");

    json_t *ac = json_object_get(json_array_get(m, 1), "content");
    cr_assert_eq(json_array_size(ac), 3);
    cr_assert_str_eq(jpath_str(json_array_get(ac, 0), "type"), "text");
    json_t *tu = json_array_get(ac, 1);
    cr_assert_str_eq(jpath_str(tu, "type"), "tool_use");
    cr_assert_str_eq(jpath_str(tu, "id"), "toolu_1");
    cr_assert_str_eq(jpath_str(json_object_get(tu, "input"), "city"), "Paris");
    cr_assert(json_is_object(json_object_get(json_array_get(ac, 2), "input")),
              "no arguments: an empty object");

    json_t *uc = json_object_get(json_array_get(m, 2), "content");
    cr_assert_eq(json_array_size(uc), 3, "two tool_result blocks, then the text");
    cr_assert_str_eq(jpath_str(json_array_get(uc, 0), "type"), "tool_result");
    cr_assert_str_eq(jpath_str(json_array_get(uc, 0), "tool_use_id"), "toolu_1");
    json_t *rc0 = json_object_get(json_array_get(uc, 0), "content");
    cr_assert_str_eq(jpath_str(json_array_get(rc0, 0), "text"), "18C");
    cr_assert_str_eq(jpath_str(json_array_get(uc, 1), "tool_use_id"), "toolu_2");
    cr_assert_str_eq(jpath_str(json_array_get(uc, 2), "text"), "Thanks; and tomorrow?");

    json_t *t = json_object_get(j, "tools");
    cr_assert_eq(json_array_size(t), 2);
    cr_assert_str_eq(jpath_str(json_array_get(t, 0), "description"), "Weather by city");
    cr_assert(json_is_object(json_object_get(json_array_get(t, 0), "input_schema")));
    cr_assert_str_eq(jpath_str(json_object_get(json_array_get(t, 1), "input_schema"), "type"),
                     "object", "a tool without parameters still has a schema");
    json_t *tc = json_object_get(j, "tool_choice");
    cr_assert_str_eq(jpath_str(tc, "type"), "any");
    cr_assert(json_is_true(json_object_get(tc, "disable_parallel_tool_use")));
    json_decref(j);
}

Test(anthropic_render, sampling_stop_images_and_named_tool)
{
    struct sb_part parts[] = {
        text_part("What is this?"),
        {.type = SB_PART_IMAGE, .url = SB_STR_LIT("data:image/png;base64,iVBORw0KGgo=")},
        {.type = SB_PART_IMAGE,
         .media_type = SB_STR_LIT("image/jpeg"),
         .data = SB_STR_LIT("/9j/4A==")},
        {.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://example.com/cat.png")},
        text_part(""),
    };
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = parts, .n_parts = SB_ARRAY_LEN(parts)};
    struct sb_tool tool = {SB_STR_LIT("lookup"), SB_STR_NULL, SB_STR_LIT("{\"type\":\"object\"}")};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &msg;
    req.n_messages = 1;
    req.tools = &tool;
    req.n_tools = 1;
    req.tool_choice = SB_TOOL_CHOICE_NAMED;
    req.tool_choice_name = SB_STR_LIT("lookup");
    req.sampling.temperature = 1.5f;
    req.sampling.top_p = 0.9f;
    req.sampling.top_k = 40;
    req.max_tokens = 77;
    req.stop[0] = SB_STR_LIT("END");
    req.stop[1] = SB_STR_LIT("\n\n");
    req.n_stop = 2;
    req.user = SB_STR_LIT("user-42");

    json_t *j = render(&req);
    cr_assert_eq(json_integer_value(json_object_get(j, "max_tokens")), 77);
    cr_assert_float_eq(json_number_value(json_object_get(j, "temperature")), 1.0, 1e-9,
                       "clamped to Anthropic's range");
    cr_assert_float_eq(json_number_value(json_object_get(j, "top_p")), 0.9, 1e-6);
    cr_assert_eq(json_integer_value(json_object_get(j, "top_k")), 40);
    json_t *stops = json_object_get(j, "stop_sequences");
    cr_assert_eq(json_array_size(stops), 2);
    cr_assert_str_eq(json_string_value(json_array_get(stops, 1)), "\n\n");
    cr_assert_str_eq(jpath_str(json_object_get(j, "metadata"), "user_id"), "user-42");
    json_t *tc = json_object_get(j, "tool_choice");
    cr_assert_str_eq(jpath_str(tc, "type"), "tool");
    cr_assert_str_eq(jpath_str(tc, "name"), "lookup");
    cr_assert_null(json_object_get(j, "system"));

    json_t *c = json_object_get(json_array_get(json_object_get(j, "messages"), 0), "content");
    cr_assert_eq(json_array_size(c), 4, "the empty text part is dropped");
    json_t *s1 = json_object_get(json_array_get(c, 1), "source");
    cr_assert_str_eq(jpath_str(s1, "type"), "base64");
    cr_assert_str_eq(jpath_str(s1, "media_type"), "image/png");
    cr_assert_str_eq(jpath_str(s1, "data"), "iVBORw0KGgo=");
    json_t *s2 = json_object_get(json_array_get(c, 2), "source");
    cr_assert_str_eq(jpath_str(s2, "media_type"), "image/jpeg");
    json_t *s3 = json_object_get(json_array_get(c, 3), "source");
    cr_assert_str_eq(jpath_str(s3, "type"), "url");
    cr_assert_str_eq(jpath_str(s3, "url"), "https://example.com/cat.png");
    json_decref(j);
}

Test(anthropic_render, consecutive_user_messages_merge_and_completion_prompt)
{
    struct sb_part a = text_part("one"), b = text_part("two");
    struct sb_message msgs[] = {{.role = SB_ROLE_USER, .parts = &a, .n_parts = 1},
                                {.role = SB_ROLE_USER, .parts = &b, .n_parts = 1}};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = 2;
    json_t *j = render(&req);
    json_t *m = json_object_get(j, "messages");
    cr_assert_eq(json_array_size(m), 1);
    cr_assert_eq(json_array_size(json_object_get(json_array_get(m, 0), "content")), 2);
    cr_assert_null(json_object_get(j, "tools"));
    cr_assert_null(json_object_get(j, "temperature"));
    json_decref(j);

    sb_request_init(&req);
    req.kind = SB_REQ_COMPLETION;
    req.prompt = SB_STR_LIT("Once upon a time");
    j = render(&req);
    m = json_object_get(j, "messages");
    cr_assert_eq(json_array_size(m), 1);
    cr_assert_str_eq(
        jpath_str(json_array_get(json_object_get(json_array_get(m, 0), "content"), 0), "text"),
        "Once upon a time");
    json_decref(j);
}

Test(anthropic_render, refusals_say_why)
{
    char err[256];
    struct sb_part r = text_part("x");
    struct sb_message tool_msg = {.role = SB_ROLE_TOOL, .parts = &r, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &tool_msg;
    req.n_messages = 1;
    cr_assert_eq(render_error(&req, err, sizeof err), SB_EINVAL);
    cr_assert(strstr(err, "tool_call_id"), "%s", err);

    struct sb_tool_call bad = {SB_STR_LIT("c1"), SB_STR_LIT("f"), SB_STR_LIT("[1,2]")};
    struct sb_message asst = {.role = SB_ROLE_ASSISTANT, .tool_calls = &bad, .n_tool_calls = 1};
    req.messages = &asst;
    cr_assert_eq(render_error(&req, err, sizeof err), SB_EINVAL);
    cr_assert(strstr(err, "not a JSON object"), "%s", err);

    struct sb_message only_system = {.role = SB_ROLE_SYSTEM, .parts = &r, .n_parts = 1};
    req.messages = &only_system;
    cr_assert_eq(render_error(&req, err, sizeof err), SB_EINVAL);

    sb_request_init(&req);
    req.kind = SB_REQ_EMBED;
    cr_assert_eq(render_error(&req, err, sizeof err), SB_EUNSUPPORTED);
}

/* -----------------------------------------------------------------------------------------------
 * The event stream
 * --------------------------------------------------------------------------------------------- */

#define EV(name, json) "event: " name "\ndata: " json "\n\n"

/* Text, then two tool calls whose input arrives in pieces, with cache usage: a real stream's
 * shape (docs.anthropic.com, "Streaming Messages"). */
/* clang-format off */
static const char tool_stream[] =
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_01\",\"type\":"
       "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude-test-1\","
       "\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":20,"
       "\"cache_creation_input_tokens\":5,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}")
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
       "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
    EV("ping", "{\"type\": \"ping\"}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
       "\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me check \\u00e9\"}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,"
       "\"delta\":{\"type\":\"text_delta\",\"text\":\" the weather.\"}}")
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":1,"
       "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_weather\","
       "\"input\":{}}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,"
       "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,"
       "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":1,"
       "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}")
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}")
    EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":2,"
       "\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_02\",\"name\":\"get_time\","
       "\"input\":{}}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,"
       "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"tz\\\":\"}}")
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":2,"
       "\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\\\"CET\\\"}\"}}")
    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":2}")
    EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\","
       "\"stop_sequence\":null},\"usage\":{\"output_tokens\":42}}")
    EV("message_stop", "{\"type\":\"message_stop\"}");
/* clang-format on */

/* Feeds text in the pieces cut at cuts[0..n) into a fresh decoder, then ends the body. */
static void decode(const char *text, size_t len, const size_t *cuts, size_t n, struct rec *r)
{
    rec_init(r);
    struct sb__anth_stream *s = sb__anth_stream_new(rec_sink, r);
    cr_assert_not_null(s);
    size_t at = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t end = i < n ? cuts[i] : len;
        if (sb__anth_stream_feed(s, text + at, end - at) != 0)
            break;
        at = end;
    }
    sb__anth_stream_eof(s);
    sb__anth_stream_free(s);
}

static void check_tool_stream(const struct rec *r)
{
    cr_assert_eq(r->n_misordered, 0);
    cr_assert_eq(r->n_after_end, 0);
    cr_assert_eq(r->n_error, 0, "%s", r->err_msg);
    cr_assert_eq(r->n_start, 1);
    cr_assert_str_eq(r->model, "claude-test-1");
    cr_assert_str_eq(r->text.p, "Let me check \xc3\xa9 the weather.");
    cr_assert_eq(r->n_tools, 2);
    cr_assert_str_eq(r->tools[0].id, "toolu_01");
    cr_assert_str_eq(r->tools[0].name, "get_weather");
    cr_assert_str_eq(r->tools[0].args.p, "{\"city\": \"Paris\"}");
    cr_assert_str_eq(r->tools[1].id, "toolu_02");
    cr_assert_str_eq(r->tools[1].args.p, "{\"tz\":\"CET\"}");
    cr_assert_eq(r->usage.prompt_tokens, 125, "input + cache reads + cache writes");
    cr_assert_eq(r->usage.cached_prompt_tokens, 100);
    cr_assert_eq(r->usage.cache_write_tokens, 5);
    cr_assert_eq(r->usage.completion_tokens, 42);
    cr_assert_eq(r->n_usage, 1);
    cr_assert_eq(r->n_finish, 1);
    cr_assert_eq(r->reason, SB_FINISH_TOOL_CALLS);
}

Test(anthropic_stream, whole)
{
    struct rec r;
    decode(tool_stream, sizeof tool_stream - 1, NULL, 0, &r);
    check_tool_stream(&r);
    rec_free(&r);
}

Test(anthropic_stream, every_two_way_split)
{
    struct rec whole;
    decode(tool_stream, sizeof tool_stream - 1, NULL, 0, &whole);
    for (size_t cut = 0; cut <= sizeof tool_stream - 1; cut++) {
        struct rec r;
        decode(tool_stream, sizeof tool_stream - 1, &cut, 1, &r);
        char what[32];
        snprintf(what, sizeof what, "cut at %zu", cut);
        rec_assert_same(&whole, &r, what);
        rec_free(&r);
    }
    rec_free(&whole);
}

Test(anthropic_stream, byte_by_byte_and_line_ends)
{
    size_t len = sizeof tool_stream - 1;
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    struct rec r;
    decode(tool_stream, len, cuts, len - 1, &r);
    check_tool_stream(&r);
    rec_free(&r);
    free(cuts);

    /* The same stream with CRLF and with lone CR line ends, split inside every "\r\n". */
    static const char *ends[] = {"\r\n", "\r"};
    for (size_t e = 0; e < SB_ARRAY_LEN(ends); e++) {
        struct sb_buf b;
        sb_buf_init(&b, 1 << 20);
        for (size_t i = 0; i < len; i++) {
            if (tool_stream[i] == '\n')
                cr_assert_eq(sb_buf_append_c(&b, ends[e]), 0);
            else
                cr_assert_eq(sb_buf_append_char(&b, tool_stream[i]), 0);
        }
        size_t crlf_cuts[256], n = 0;
        for (size_t i = 0; i + 1 < b.len && n < 256; i++) {
            if (b.p[i] == '\r')
                crlf_cuts[n++] = i + 1;
        }
        decode(b.p, b.len, crlf_cuts, n, &r);
        check_tool_stream(&r);
        rec_free(&r);
        sb_buf_free(&b);
    }
}

static void decode_str(const char *text, struct rec *r)
{
    decode(text, strlen(text), NULL, 0, r);
}

#define START_MIN                                                                                  \
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"model\":\"m\",\"usage\":"      \
                        "{\"input_tokens\":3,\"output_tokens\":1}}}")

Test(anthropic_stream, stop_sequence_and_max_tokens)
{
    struct rec r;
    decode_str(START_MIN EV("content_block_start",
                            "{\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}")
                   EV("message_delta",
                      "{\"delta\":{\"stop_reason\":\"stop_sequence\",\"stop_sequence\":\"END\"},"
                      "\"usage\":{\"output_tokens\":2}}") EV("message_stop", "{}"),
               &r);
    cr_assert_eq(r.n_finish, 1);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    cr_assert_str_eq(r.stop_sequence, "END");
    cr_assert_str_eq(r.text.p, "Hi");
    cr_assert_eq(r.usage.prompt_tokens, 3);
    cr_assert_eq(r.usage.completion_tokens, 2);
    rec_free(&r);

    decode_str(START_MIN EV("message_delta", "{\"delta\":{\"stop_reason\":\"max_tokens\"}}")
                   EV("message_stop", "{}"),
               &r);
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.usage.completion_tokens, 1);
    rec_free(&r);
}

Test(anthropic_stream, tool_without_arguments_gets_empty_object)
{
    struct rec r;
    decode_str(START_MIN EV("content_block_start",
                            "{\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t1\","
                            "\"name\":\"now\",\"input\":{}}}")
                   EV("content_block_stop", "{\"index\":0}")
                       EV("message_delta", "{\"delta\":{\"stop_reason\":\"tool_use\"}}")
                           EV("message_stop", "{}"),
               &r);
    cr_assert_eq(r.n_tools, 1);
    cr_assert_str_eq(r.tools[0].args.p, "{}");
    cr_assert_eq(r.reason, SB_FINISH_TOOL_CALLS);
    rec_free(&r);
}

Test(anthropic_stream, thinking_blocks_are_not_text)
{
    struct rec r;
    decode_str(
        START_MIN EV("content_block_start",
                     "{\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}")
            EV("content_block_delta",
               "{\"index\":0,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"hmm\"}}")
                EV("content_block_stop", "{\"index\":0}")
                    EV("content_block_start",
                       "{\"index\":1,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
                        EV("content_block_delta",
                           "{\"index\":1,\"delta\":{\"type\":\"text_delta\",\"text\":\"A\"}}")
                            EV("message_stop", "{}"),
        &r);
    cr_assert_str_eq(r.text.p, "A");
    cr_assert_eq(r.n_error, 0);
    rec_free(&r);
}

Test(anthropic_stream, error_event_mid_stream)
{
    struct rec r;
    decode_str(START_MIN EV("content_block_start",
                            "{\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
                   EV("content_block_delta",
                      "{\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"partial\"}}")
                       EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                                   "\"message\":\"Overloaded\"}}") EV("message_stop", "{}"),
               &r);
    cr_assert_str_eq(r.text.p, "partial");
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.n_after_end, 0, "nothing after the error, message_stop included");
    cr_assert_eq(r.err_status, 503);
    cr_assert(r.err_retryable);
    cr_assert_eq(r.err_code, SB_EUPSTREAM);
    cr_assert(strstr(r.err_msg, "Overloaded"), "%s", r.err_msg);
    rec_free(&r);
}

Test(anthropic_stream, truncated_and_malformed)
{
    struct rec r;
    /* Cut before message_stop: an error, not a finish that looks complete. */
    decode_str(START_MIN EV("content_block_start",
                            "{\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"x\"}}"),
               &r);
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 502);
    cr_assert(strstr(r.err_msg, "message_stop"), "%s", r.err_msg);
    rec_free(&r);

    /* message_stop without its blank line: the event never completed. */
    decode_str(START_MIN "event: message_stop\ndata: {}", &r);
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.n_error, 1);
    rec_free(&r);

    decode_str(START_MIN "event: content_block_delta\ndata: {not json\n\n", &r);
    cr_assert_eq(r.n_error, 1);
    cr_assert(strstr(r.err_msg, "malformed"), "%s", r.err_msg);
    rec_free(&r);

    decode_str(START_MIN EV("content_block_delta",
                            "{\"index\":5,\"delta\":{\"type\":\"text_delta\",\"text\":\"x\"}}"),
               &r);
    cr_assert_eq(r.n_error, 1, "a delta for a block that never started");
    rec_free(&r);

    decode_str(START_MIN EV("content_block_start",
                            "{\"index\":99999999,\"content_block\":{\"type\":\"text\"}}"),
               &r);
    cr_assert_eq(r.n_error, 1, "an absurd block index");
    rec_free(&r);
}

Test(anthropic_stream, sink_stop_ends_decoding)
{
    struct rec r;
    rec_init(&r);
    r.stop_after = 2; /* START, then the first text: the owner cancels */
    struct sb__anth_stream *s = sb__anth_stream_new(rec_sink, &r);
    cr_assert_neq(sb__anth_stream_feed(s, tool_stream, sizeof tool_stream - 1), 0);
    cr_assert_eq(r.n_events, 2);
    cr_assert_neq(sb__anth_stream_feed(s, "event: ping\n\n", 13), 0);
    sb__anth_stream_eof(s);
    cr_assert_eq(r.n_events, 2, "nothing after a stop, not even an error at the end");
    sb__anth_stream_free(s);
    rec_free(&r);
}

/* -----------------------------------------------------------------------------------------------
 * HTTP errors
 * --------------------------------------------------------------------------------------------- */

static void http_error(int status, const char *body, uint32_t retry_after_ms, struct rec *r)
{
    rec_init(r);
    struct sb__anth_stream *s = sb__anth_stream_new(rec_sink, r);
    sb__anth_stream_http_error(s, status, sb_str_c(body), retry_after_ms);
    sb__anth_stream_free(s);
    cr_assert_eq(r->n_events, 1);
    cr_assert_eq(r->n_error, 1);
    cr_assert_eq(r->err_code, SB_EUPSTREAM);
}

Test(anthropic_http, errors_mapped)
{
    struct rec r;
    http_error(529,
               "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
               "\"Overloaded\"}}",
               0, &r);
    cr_assert_eq(r.err_status, 503);
    cr_assert(r.err_retryable);
    cr_assert(strstr(r.err_msg, "Overloaded") && strstr(r.err_msg, "529"), "%s", r.err_msg);
    rec_free(&r);

    http_error(429,
               "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":\"slow "
               "down\"}}",
               7000, &r);
    cr_assert_eq(r.err_status, 429);
    cr_assert(r.err_retryable);
    cr_assert_eq(r.err_retry_after_ms, 7000);
    rec_free(&r);

    http_error(500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"boom\"}}",
               0, &r);
    cr_assert_eq(r.err_status, 502);
    cr_assert(r.err_retryable);
    rec_free(&r);

    http_error(400,
               "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
               "\"max_tokens: must be positive\"}}",
               0, &r);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not(r.err_retryable);
    cr_assert(strstr(r.err_msg, "max_tokens: must be positive"), "%s", r.err_msg);
    rec_free(&r);

    http_error(401,
               "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
               "\"invalid x-api-key\"}}",
               0, &r);
    cr_assert_eq(r.err_status, 401);
    cr_assert(strstr(r.err_msg, "refused the gateway's API key"), "%s", r.err_msg);
    rec_free(&r);

    http_error(502, "<html>Bad Gateway</html>", 0, &r);
    cr_assert_eq(r.err_status, 502);
    cr_assert(r.err_retryable);
    rec_free(&r);
}

Test(anthropic_http, status_map_and_retry_after)
{
    static const struct {
        int in, out;
        bool retryable;
    } cases[] = {
        {429, 429, true},  {529, 503, true},  {503, 503, true},  {500, 502, true},
        {504, 504, true},  {408, 504, true},  {400, 400, false}, {404, 404, false},
        {413, 413, false}, {302, 502, false},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        int status;
        bool retryable;
        sb__map_http_status(cases[i].in, &status, &retryable);
        cr_assert_eq(status, cases[i].out, "HTTP %d", cases[i].in);
        cr_assert_eq(retryable, cases[i].retryable, "HTTP %d", cases[i].in);
    }
    cr_assert_eq(sb__parse_retry_after(SB_STR_LIT("2")), 2000);
    cr_assert_eq(sb__parse_retry_after(SB_STR_LIT("0.25")), 250);
    cr_assert_eq(sb__parse_retry_after(SB_STR_LIT("999999")), 3600u * 1000u, "capped");
    cr_assert_eq(sb__parse_retry_after(SB_STR_LIT("Wed, 21 Oct 2015 07:28:00 GMT")), 0, "past");
    cr_assert_eq(sb__parse_retry_after(SB_STR_LIT("soon")), 0);
    cr_assert_eq(sb__parse_retry_after(SB_STR_NULL), 0);
}
