/* Unit tests for the OpenAI codec: request parsing (good and hostile bodies) and rendering of event
 * sequences into chat.completion / text_completion JSON and SSE chunks. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "helpers.h"

TestSuite(openai_parse, .init = setup, .fini = teardown);

static int parse(enum sb_request_kind kind, const char *body)
{
    return sb_openai_codec.parse(kind, arena, sb_str_c(body), &req, &err);
}

/* =============================================================================================
 * Parsing: good requests
 * =========================================================================================== */

Test(openai_parse, minimal_chat)
{
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"local\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"hi\"}]}"),
                 0, "%s", err.message);
    cr_expect_eq(req.api, SB_API_OPENAI);
    cr_expect_eq(req.kind, SB_REQ_CHAT);
    cr_expect(eq(req.model, "local"));
    cr_assert_eq(req.n_messages, 1);
    cr_expect_eq(req.messages[0].role, SB_ROLE_USER);
    cr_assert_eq(req.messages[0].n_parts, 1);
    cr_expect_eq(req.messages[0].parts[0].type, SB_PART_TEXT);
    cr_expect(eq(req.messages[0].parts[0].text, "hi"));
    /* Untouched fields keep the canonical defaults. */
    cr_expect_eq(req.sampling.temperature, SB_UNSET_F);
    cr_expect_eq(req.sampling.top_k, SB_UNSET_I);
    cr_expect_eq(req.max_tokens, 0);
    cr_expect(!req.stream);
    cr_expect(!req.sampling.has_seed);
    cr_expect(req.parallel_tool_calls);
    cr_expect_eq(req.tool_choice, SB_TOOL_CHOICE_AUTO);
}

Test(openai_parse, all_fields)
{
    const char *body =
        "{\"model\":\"gpt-4o\",\"messages\":["
        "{\"role\":\"developer\",\"content\":\"be brief\"},"
        "{\"role\":\"system\",\"content\":[{\"type\":\"text\",\"text\":\"sys\"}]},"
        "{\"role\":\"user\",\"name\":\"ann\",\"content\":[{\"type\":\"text\",\"text\":\"look\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://x.test/"
        "a.png\",\"detail\":\"low\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,QUJD\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\","
        "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"c\\\":1}"
        "\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"description\":"
        "\"Weather\",\"parameters\":{\"type\":\"object\",\"properties\":{\"c\":{\"type\":"
        "\"integer\"}}},"
        "\"strict\":true}}],"
        "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_weather\"}},"
        "\"parallel_tool_calls\":false,"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"seed\":-1,"
        "\"presence_penalty\":-1.5,\"frequency_penalty\":2,\"repeat_penalty\":1.1,"
        "\"max_tokens\":10,\"max_completion_tokens\":20,\"stop\":[\"\\n\",\"END\"],\"n\":1,"
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"response_format\":{\"type\":\"json_object\"},\"user\":\"u-1\","
        "\"metadata\":{\"team\":\"search\",\"env\":\"prod\"},\"logprobs\":false,"
        "\"some_future_field\":{\"x\":[1,2,3]}}";

    cr_assert_eq(parse(SB_REQ_CHAT, body), 0, "%s (%s)", err.message, err.param);
    cr_expect(eq(req.model, "gpt-4o"));
    cr_assert_eq(req.n_messages, 5);
    cr_expect_eq(req.messages[0].role, SB_ROLE_SYSTEM);
    cr_expect(eq(req.messages[0].parts[0].text, "be brief"));
    cr_expect_eq(req.messages[1].role, SB_ROLE_SYSTEM);
    cr_expect(eq(req.messages[1].parts[0].text, "sys"));

    const struct sb_message *u = &req.messages[2];
    cr_expect(eq(u->name, "ann"));
    cr_assert_eq(u->n_parts, 3);
    cr_expect(eq(u->parts[0].text, "look"));
    cr_expect_eq(u->parts[1].type, SB_PART_IMAGE);
    cr_expect(eq(u->parts[1].url, "https://x.test/a.png"));
    cr_expect_eq(u->parts[1].data.len, 0);
    cr_expect_eq(u->parts[2].type, SB_PART_IMAGE);
    cr_expect(eq(u->parts[2].media_type, "image/png"));
    cr_expect(eq(u->parts[2].data, "QUJD"));
    cr_expect_eq(u->parts[2].url.len, 0);

    const struct sb_message *as = &req.messages[3];
    cr_expect_eq(as->role, SB_ROLE_ASSISTANT);
    cr_expect_eq(as->n_parts, 0);
    cr_assert_eq(as->n_tool_calls, 1);
    cr_expect(eq(as->tool_calls[0].id, "call_1"));
    cr_expect(eq(as->tool_calls[0].name, "get_weather"));
    cr_expect(eq(as->tool_calls[0].arguments, "{\"c\":1}"));
    cr_expect_eq(req.messages[4].role, SB_ROLE_TOOL);
    cr_expect(eq(req.messages[4].tool_call_id, "call_1"));
    cr_expect(eq(req.messages[4].parts[0].text, "sunny"));

    cr_assert_eq(req.n_tools, 1);
    cr_expect(eq(req.tools[0].name, "get_weather"));
    cr_expect(eq(req.tools[0].description, "Weather"));
    cr_expect(eq(req.tools[0].parameters,
                 "{\"type\":\"object\",\"properties\":{\"c\":{\"type\":\"integer\"}}}"),
              "%.*s", (int)req.tools[0].parameters.len, req.tools[0].parameters.p);
    cr_expect_eq(req.tool_choice, SB_TOOL_CHOICE_NAMED);
    cr_expect(eq(req.tool_choice_name, "get_weather"));
    cr_expect(!req.parallel_tool_calls);

    cr_expect_float_eq(req.sampling.temperature, 0.5f, 1e-6);
    cr_expect_float_eq(req.sampling.top_p, 0.9f, 1e-6);
    cr_expect_eq(req.sampling.top_k, 40);
    cr_expect_float_eq(req.sampling.min_p, 0.05f, 1e-6);
    cr_expect_float_eq(req.sampling.presence_penalty, -1.5f, 1e-6);
    cr_expect_float_eq(req.sampling.frequency_penalty, 2.0f, 1e-6);
    cr_expect_float_eq(req.sampling.repeat_penalty, 1.1f, 1e-6);
    cr_expect(req.sampling.has_seed);
    cr_expect_eq(req.sampling.seed, UINT64_MAX);
    cr_expect_eq(req.max_tokens, 20, "max_completion_tokens wins over max_tokens");
    cr_assert_eq(req.n_stop, 2);
    cr_expect(eq(req.stop[0], "\n"));
    cr_expect(eq(req.stop[1], "END"));
    cr_expect(req.stream);
    cr_expect(req.include_usage);
    cr_expect(req.json_mode);
    cr_expect(eq(req.user, "u-1"));
    cr_assert_eq(req.n_labels, 2);
    cr_expect(eq(sb_request_label(&req, SB_STR_LIT("team")), "search"));
    cr_expect(eq(sb_request_label(&req, SB_STR_LIT("env")), "prod"));
}

Test(openai_parse, nulls_mean_not_given)
{
    cr_assert_eq(parse(SB_REQ_CHAT,
                       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                       "\"temperature\":null,\"max_tokens\":null,\"stop\":null,\"tools\":null,"
                       "\"tool_choice\":null,\"n\":null,\"stream\":null,\"stream_options\":null,"
                       "\"response_format\":null,\"user\":null,\"metadata\":null,\"seed\":null,"
                       "\"logprobs\":null}"),
                 0, "%s", err.message);
    cr_expect_eq(req.sampling.temperature, SB_UNSET_F);
    cr_expect_eq(req.n_stop, 0);
    cr_expect(!req.sampling.has_seed);
}

Test(openai_parse, stop_as_string_and_include_usage_only_when_streaming)
{
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"x\"}],\"stop\":\"###\",\"stream_options\":"
                                    "{\"include_usage\":true}}"),
                 0, "%s", err.message);
    cr_assert_eq(req.n_stop, 1);
    cr_expect(eq(req.stop[0], "###"));
    cr_expect(!req.include_usage);
}

Test(openai_parse, max_tokens_alone_and_json_schema)
{
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"x\"}],\"max_tokens\":7,\"response_format\":"
                                    "{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"a\"}}}"),
                 0, "%s", err.message);
    cr_expect_eq(req.max_tokens, 7);
    cr_expect(req.json_mode);
}

Test(openai_parse, tool_choice_strings)
{
    static const struct {
        const char *value;
        enum sb_tool_choice want;
    } cases[] = {
        {"\"auto\"", SB_TOOL_CHOICE_AUTO},
        {"\"none\"", SB_TOOL_CHOICE_NONE},
        {"\"required\"", SB_TOOL_CHOICE_REQUIRED},
    };
    char body[512];

    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        snprintf(body, sizeof(body),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
                 "\"tool_choice\":%s}",
                 cases[i].value);
        cr_assert_eq(parse(SB_REQ_CHAT, body), 0, "%s: %s", cases[i].value, err.message);
        cr_expect_eq(req.tool_choice, cases[i].want, "%s", cases[i].value);
        cr_expect_eq(req.tools[0].parameters.len, 0);
    }
}

Test(openai_parse, assistant_refusal_part_and_empty_string_content)
{
    cr_assert_eq(parse(SB_REQ_CHAT,
                       "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"\"},"
                       "{\"role\":\"assistant\",\"content\":[{\"type\":\"refusal\","
                       "\"refusal\":\"no\"}]}]}"),
                 0, "%s", err.message);
    cr_expect_eq(req.messages[0].n_parts, 1);
    cr_expect_eq(req.messages[0].parts[0].text.len, 0);
    cr_expect(eq(req.messages[1].parts[0].text, "no"));
}

Test(openai_parse, unicode_is_decoded_into_the_arena)
{
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\","
                                    "\"content\":\"caf\\u00e9 \\ud83d\\ude00\"}]}"),
                 0, "%s", err.message);
    cr_expect(eq(req.messages[0].parts[0].text, "caf\xc3\xa9 \xf0\x9f\x98\x80"));
}

Test(openai_parse, completion_prompt_forms)
{
    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"Once\",\"echo\":true,"
                                          "\"max_tokens\":5,\"suffix\":null,\"best_of\":1,"
                                          "\"temperature\":0}"),
                 0, "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_COMPLETION);
    cr_expect(eq(req.prompt, "Once"));
    cr_expect(req.echo);
    cr_expect_eq(req.max_tokens, 5);
    cr_expect_eq(req.sampling.temperature, 0.0f);
    cr_expect_eq(req.n_messages, 0);

    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":[\"Twice\"]}"), 0, "%s",
                 err.message);
    cr_expect(eq(req.prompt, "Twice"));
    cr_expect(!req.echo);
}

/* =============================================================================================
 * Parsing: bad requests. Every one is a clean 400 naming the field.
 * =========================================================================================== */

struct bad_case {
    enum sb_request_kind kind;
    const char *body;
    const char *param;   /* expected err.param */
    const char *code;    /* expected err.code, NULL for none */
    const char *message; /* a substring of err.message */
};

#define MSG         "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define CHAT(extra) "{\"model\":\"m\"," MSG extra "}"

static const struct bad_case bad_cases[] = {
    /* The body itself */
    {SB_REQ_CHAT, "", "", NULL, "We could not parse the JSON body of your request"},
    {SB_REQ_CHAT, "{\"model\":", "", NULL, "line 1"},
    {SB_REQ_CHAT, "[1,2]", "", NULL, "must be a JSON object, but it is an array"},
    {SB_REQ_CHAT, "\"text\"", "", NULL, "We could not parse"},
    {SB_REQ_CHAT, "{\"model\":\"a\",\"model\":\"b\"," MSG "}", "", NULL, "duplicate"},
    {SB_REQ_CHAT, "{\"model\":\"m\"} trailing", "", NULL, "We could not parse"},
    {SB_REQ_CHAT, "{\"model\":\"m\\u0000x\"," MSG "}", "", NULL, "We could not parse"},
    {SB_REQ_CHAT, "{\"model\":\"\xff\xfe\"," MSG "}", "", NULL, "We could not parse"},
    /* model */
    {SB_REQ_CHAT, "{" MSG "}", "model", "missing_required_parameter",
     "Missing required parameter: 'model'."},
    {SB_REQ_CHAT, "{\"model\":3," MSG "}", "model", "invalid_type",
     "Invalid type for 'model': expected a string, but got an integer instead."},
    {SB_REQ_CHAT, "{\"model\":\"\"," MSG "}", "model", "invalid_value", "empty string"},
    /* messages */
    {SB_REQ_CHAT, "{\"model\":\"m\"}", "messages", "missing_required_parameter",
     "Missing required parameter: 'messages'."},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[]}", "messages", "empty_array", "empty array"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages", "invalid_type",
     "expected an array, but got an object instead"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[\"hi\"]}", "messages[0]", "invalid_type",
     "expected an object, but got a string"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"content\":\"x\"}]}", "messages[0].role",
     "missing_required_parameter", "Missing required parameter"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"content\":\"x\"}]}",
     "messages[0].role", "invalid_value",
     "Supported values are: 'system', 'developer', 'user', 'assistant', and 'tool'."},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\","
     "\"content\":5}]}",
     "messages[1].content", "invalid_type", "expected a string or an array of content parts"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\"}]}", "messages[0].content",
     "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":null}]}",
     "messages[0].content", "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}",
     "messages[0].content", "empty_array", "empty array"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}]}",
     "messages[0].content[0].type", "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}]}",
     "messages[0].content[0].text", "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\"}]}]"
     "}",
     "messages[0].content[0].type", "invalid_value", "'input_audio'"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\","
     "\"image_url\":{\"url\":\"u\"}}]}]}",
     "messages[0].content[0].type", "invalid_value", "not allowed in system messages"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\","
     "\"image_url\":{}}]}]}",
     "messages[0].content[0].image_url.url", "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"r\"}]}",
     "messages[0].tool_call_id", "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\","
     "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":{}}}]}]}",
     "messages[0].tool_calls[0].function.arguments", "invalid_type",
     "expected a string, but got an object"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"type\":"
     "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}]}",
     "messages[0].tool_calls[0].id", "missing_required_parameter", "Missing"},
    /* sampling */
    {SB_REQ_CHAT, CHAT(",\"temperature\":\"hot\""), "temperature", "invalid_type",
     "Invalid type for 'temperature': expected a number, but got a string instead."},
    {SB_REQ_CHAT, CHAT(",\"temperature\":3"), "temperature", "decimal_above_max_value",
     "Expected a value <= 2, but got 3 instead."},
    {SB_REQ_CHAT, CHAT(",\"temperature\":-0.5"), "temperature", "decimal_below_min_value",
     "Expected a value >= 0, but got -0.5 instead."},
    {SB_REQ_CHAT, CHAT(",\"top_p\":0"), "top_p", "decimal_below_min_value", "value > 0"},
    {SB_REQ_CHAT, CHAT(",\"top_p\":1.5"), "top_p", "decimal_above_max_value", "<= 1"},
    {SB_REQ_CHAT, CHAT(",\"top_k\":-1"), "top_k", "integer_below_min_value", ">= 0"},
    {SB_REQ_CHAT, CHAT(",\"top_k\":1.5"), "top_k", "invalid_type",
     "expected an integer, but got a decimal number instead"},
    {SB_REQ_CHAT, CHAT(",\"min_p\":2"), "min_p", "decimal_above_max_value", "<= 1"},
    {SB_REQ_CHAT, CHAT(",\"presence_penalty\":-3"), "presence_penalty", "decimal_below_min_value",
     ">= -2"},
    {SB_REQ_CHAT, CHAT(",\"frequency_penalty\":true"), "frequency_penalty", "invalid_type",
     "got a boolean"},
    {SB_REQ_CHAT, CHAT(",\"repeat_penalty\":0"), "repeat_penalty", "decimal_below_min_value",
     "> 0"},
    {SB_REQ_CHAT, CHAT(",\"seed\":\"1\""), "seed", "invalid_type", "expected an integer"},
    {SB_REQ_CHAT, CHAT(",\"max_tokens\":0"), "max_tokens", "integer_below_min_value", ">= 1"},
    {SB_REQ_CHAT, CHAT(",\"max_completion_tokens\":-5"), "max_completion_tokens",
     "integer_below_min_value", ">= 1"},
    {SB_REQ_CHAT, CHAT(",\"max_tokens\":1e3"), "max_tokens", "invalid_type", "decimal number"},
    /* n, logprobs */
    {SB_REQ_CHAT, CHAT(",\"n\":2"), "n", "unsupported_value", "'n' must be 1 (got 2)"},
    {SB_REQ_CHAT, CHAT(",\"n\":0"), "n", "unsupported_value", "must be 1"},
    {SB_REQ_CHAT, CHAT(",\"n\":\"1\""), "n", "invalid_type", "expected an integer"},
    {SB_REQ_CHAT, CHAT(",\"logprobs\":true"), "logprobs", "unsupported_parameter", "not supported"},
    /* stop */
    {SB_REQ_CHAT, CHAT(",\"stop\":5"), "stop", "invalid_type",
     "expected a string or an array of strings"},
    {SB_REQ_CHAT, CHAT(",\"stop\":\"\""), "stop", "invalid_value", "empty string"},
    {SB_REQ_CHAT, CHAT(",\"stop\":[\"a\",\"\"]"), "stop[1]", "invalid_value", "empty string"},
    {SB_REQ_CHAT, CHAT(",\"stop\":[\"a\",7]"), "stop[1]", "invalid_type", "expected a string"},
    {SB_REQ_CHAT,
     CHAT(",\"stop\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\",\"11\",\"12\","
          "\"13\",\"14\",\"15\",\"16\",\"17\"]"),
     "stop", "array_above_max_length", "maximum length 16, but got an array with length 17"},
    /* stream, response_format, user, metadata */
    {SB_REQ_CHAT, CHAT(",\"stream\":\"yes\""), "stream", "invalid_type", "expected a boolean"},
    {SB_REQ_CHAT, CHAT(",\"stream\":true,\"stream_options\":{\"include_usage\":1}"),
     "stream_options.include_usage", "invalid_type", "expected a boolean"},
    {SB_REQ_CHAT, CHAT(",\"response_format\":\"json\""), "response_format", "invalid_type",
     "expected an object"},
    {SB_REQ_CHAT, CHAT(",\"response_format\":{\"type\":\"xml\"}"), "response_format.type",
     "invalid_value", "'text', 'json_object', and 'json_schema'"},
    {SB_REQ_CHAT, CHAT(",\"response_format\":{}"), "response_format.type",
     "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT, CHAT(",\"user\":42"), "user", "invalid_type", "expected a string"},
    {SB_REQ_CHAT, CHAT(",\"metadata\":{\"k\":1}"), "metadata.k", "invalid_type",
     "expected a string"},
    {SB_REQ_CHAT, CHAT(",\"metadata\":[]"), "metadata", "invalid_type", "expected an object"},
    {SB_REQ_CHAT,
     CHAT(",\"metadata\":{\"a\":\"\",\"b\":\"\",\"c\":\"\",\"d\":\"\",\"e\":\"\",\"f\":\"\","
          "\"g\":\"\",\"h\":\"\",\"i\":\"\",\"j\":\"\",\"k\":\"\",\"l\":\"\",\"m\":\"\","
          "\"n\":\"\",\"o\":\"\",\"p\":\"\",\"q\":\"\"}"),
     "metadata", "object_above_max_properties", "at most 16"},
    /* tools */
    {SB_REQ_CHAT, CHAT(",\"tools\":{}"), "tools", "invalid_type", "expected an array"},
    {SB_REQ_CHAT, CHAT(",\"tools\":[{\"type\":\"function\"}]"), "tools[0].function",
     "missing_required_parameter", "Missing"},
    {SB_REQ_CHAT, CHAT(",\"tools\":[{\"type\":\"retrieval\",\"function\":{\"name\":\"f\"}}]"),
     "tools[0].type", "invalid_value", "Supported values are: 'function'."},
    {SB_REQ_CHAT, CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a.b\"}}]"),
     "tools[0].function.name", "invalid_value", "does not match pattern"},
    {SB_REQ_CHAT,
     CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\",\"parameters\":[]}}]"),
     "tools[0].function.parameters", "invalid_type", "expected an object"},
    {SB_REQ_CHAT, CHAT(",\"tool_choice\":\"required\""), "tool_choice", "invalid_value",
     "requires 'tools'"},
    {SB_REQ_CHAT,
     CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
          "\"sometimes\""),
     "tool_choice", "invalid_value", "'auto', 'none', and 'required'"},
    {SB_REQ_CHAT,
     CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
          "{\"type\":\"function\",\"function\":{\"name\":\"g\"}}"),
     "tool_choice", "invalid_value", "no function named 'g'"},
    {SB_REQ_CHAT, CHAT(",\"tool_choice\":3"), "tool_choice", "invalid_type",
     "expected a string or an object"},
    {SB_REQ_CHAT, CHAT(",\"parallel_tool_calls\":\"no\""), "parallel_tool_calls", "invalid_type",
     "expected a boolean"},
    /* legacy completions */
    {SB_REQ_COMPLETION, "{\"model\":\"m\"}", "prompt", "missing_required_parameter", "Missing"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":[1,2,3]}", "prompt", "unsupported_value",
     "token ids"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":[[1,2]]}", "prompt", "unsupported_value",
     "token ids"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":[\"a\",\"b\"]}", "prompt", "unsupported_value",
     "one prompt per request"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":[]}", "prompt", "unsupported_value",
     "array of 0"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":{}}", "prompt", "invalid_type",
     "expected a string or an array of strings"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"suffix\":\"end\"}", "suffix",
     "unsupported_parameter", "suffix"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"logprobs\":2}", "logprobs",
     "unsupported_parameter", "log probabilities"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"best_of\":3}", "best_of",
     "unsupported_value", "must be 1"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"echo\":1}", "echo", "invalid_type",
     "expected a boolean"},
};

Test(openai_parse, bad_requests_are_400_with_param)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        memset(&err, 0, sizeof(err));
        int rc = parse(c->kind, c->body);
        cr_expect_eq(rc, SB_EINVAL, "case %zu (%s): rc %d", i, c->body, rc);
        cr_expect_eq(err.http_status, 400, "case %zu", i);
        cr_expect_str_eq(err.type, "invalid_request_error", "case %zu", i);
        cr_expect_str_eq(err.param, c->param, "case %zu (%s)", i, c->body);
        if (c->code)
            cr_expect(err.code && strcmp(err.code, c->code) == 0, "case %zu: code %s, want %s", i,
                      err.code ? err.code : "(null)", c->code);
        else
            cr_expect_null(err.code, "case %zu: code %s", i, err.code);
        cr_expect(strstr(err.message, c->message) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                  i, err.message, c->message);
    }
}

/* POST /v1/embeddings is tested in test_openai_embed.c. */

/* =============================================================================================
 * Parsing: hostile input
 * =========================================================================================== */

static char *repeat(const char *head, const char *unit, size_t n, const char *tail)
{
    size_t hl = strlen(head), ul = strlen(unit), tl = strlen(tail);
    char *s = malloc(hl + ul * n + tl + 1);
    char *p = s;

    cr_assert_not_null(s);
    memcpy(p, head, hl);
    p += hl;
    for (size_t i = 0; i < n; i++, p += ul)
        memcpy(p, unit, ul);
    memcpy(p, tail, tl + 1);
    return s;
}

Test(openai_parse, deep_nesting_is_a_clean_400)
{
    char *opens = repeat("{\"model\":\"m\"," MSG ",\"x\":", "[", 100000, "");
    int rc = parse(SB_REQ_CHAT, opens);
    cr_expect_eq(rc, SB_EINVAL);
    cr_expect_eq(err.http_status, 400);
    cr_expect(strstr(err.message, "We could not parse") != NULL, "%s", err.message);
    free(opens);
}

Test(openai_parse, deep_but_legal_tool_schema_is_kept)
{
    /* 500 levels is within jansson's limit; the schema round-trips through json_dumps. */
    char *open = repeat("{\"model\":\"m\"," MSG ",\"tools\":[{\"type\":\"function\",\"function\":"
                        "{\"name\":\"f\",\"parameters\":",
                        "{\"a\":", 500, "1");
    char *body = repeat(open, "}", 500, "}}]}");
    cr_assert_eq(parse(SB_REQ_CHAT, body), 0, "%s", err.message);
    cr_expect_eq(req.tools[0].parameters.len, 500 * 5 + 1 + 500);
    free(open);
    free(body);
}

Test(openai_parse, arena_limit_is_413_not_a_crash)
{
    /* 20,000 messages need more than the 1 MiB test arena. */
    char *body = repeat("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}",
                        ",{\"role\":\"user\",\"content\":\"x\"}", 20000, "]}");
    int rc = parse(SB_REQ_CHAT, body);
    cr_expect_eq(rc, SB_ENOMEM);
    cr_expect_eq(err.http_status, 413);
    cr_expect_str_eq(err.code, "request_too_large");
    free(body);
}

Test(openai_parse, raw_nul_byte_in_body)
{
    static const char body[] = "{\"model\":\"m\0\",\"messages\":[]}";
    struct sb_str s = {body, sizeof(body) - 1};
    cr_expect_eq(sb_openai_codec.parse(SB_REQ_CHAT, arena, s, &req, &err), SB_EINVAL);
    cr_expect_eq(err.http_status, 400);
}

Test(openai_parse, long_path_is_cut_not_overflowed)
{
    char *body = repeat("{\"model\":\"m\"," MSG ",\"metadata\":{\"", "k", 60, "\":5}}");
    cr_expect_eq(parse(SB_REQ_CHAT, body), SB_EINVAL);
    cr_expect_eq(strlen(err.param), sizeof(err.param) - 1);
    cr_expect(strncmp(err.param, "metadata.kkk", 12) == 0, "%s", err.param);
    free(body);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

struct render {
    void *state;
    struct sb_buf out;
    struct sb_request req;
};

static void render_begin(struct render *r, enum sb_request_kind kind, bool stream)
{
    sb_request_init(&r->req);
    r->req.kind = kind;
    r->req.stream = stream;
    r->req.model = SB_STR_LIT("alias");
    r->state = calloc(1, sb_openai_codec.render_size);
    cr_assert_not_null(r->state);
    sb_buf_init(&r->out, 1 << 20);
    cr_assert_eq(sb_openai_codec.render_init(r->state, &r->req), 0);
}

static void render_end(struct render *r)
{
    sb_openai_codec.render_deinit(r->state);
    free(r->state);
    sb_buf_free(&r->out);
}

static int emit(struct render *r, struct sb_event ev)
{
    return sb_openai_codec.render_event(r->state, &ev, &r->out);
}

static struct sb_event ev_start(const char *model)
{
    return (struct sb_event){.type = SB_EV_START, .start.model = sb_str_c(model)};
}

static struct sb_event ev_usage(int64_t prompt, int64_t completion, int64_t cached)
{
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = prompt;
    ev.usage.completion_tokens = completion;
    ev.usage.cached_prompt_tokens = cached;
    return ev;
}

static struct sb_event ev_finish(enum sb_finish_reason reason)
{
    return (struct sb_event){.type = SB_EV_FINISH, .finish.reason = reason};
}

static struct sb_event ev_error(int code, int status, const char *message)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = status;
    ev.error.message = sb_str_c(message);
    return ev;
}

/* Splits SSE output into its events: each must be "data: <payload>\n\n". Returns the count; the
 * payloads are malloc'd copies in out[]. */
static size_t sse_split(const char *s, char **out, size_t max)
{
    size_t n = 0;

    while (*s) {
        cr_assert(strncmp(s, "data: ", 6) == 0, "event %zu does not start with 'data: ': %.40s", n,
                  s);
        s += 6;
        const char *end = strstr(s, "\n\n");
        cr_assert_not_null(end, "event %zu is not terminated by a blank line", n);
        cr_assert_lt(n, max);
        out[n] = strndup(s, (size_t)(end - s));
        cr_assert(memchr(s, '\n', (size_t)(end - s)) == NULL, "newline inside an event");
        n++;
        s = end + 2;
    }
    return n;
}

static const char *jstr(const json_t *root, const char *path)
{
    json_t *v = json_object_get(root, path);
    return json_string_value(v);
}

Test(openai_render, chat_stream_sse_framing_is_exact)
{
    struct render r;
    char expect[2048];

    render_begin(&r, SB_REQ_CHAT, true);
    cr_assert_eq(emit(&r, ev_start("")), 0);
    cr_assert_eq(emit(&r, ev_text("Hi")), 0);
    cr_assert_eq(emit(&r, ev_usage(3, 1, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);

    /* Take id and created from the first chunk, then compare every byte. */
    char *text = strndup(r.out.p + 6, (size_t)(strstr(r.out.p, "\n\n") - r.out.p - 6));
    json_t *first = load(text);
    free(text);
    const char *id = jstr(first, "id");
    long long created = json_integer_value(json_object_get(first, "created"));
    cr_expect(strncmp(id, "chatcmpl-", 9) == 0 && strlen(id) == 9 + 24, "%s", id);
    char head[256];
    snprintf(head, sizeof(head),
             "{\"id\":\"%s\",\"object\":\"chat.completion.chunk\",\"created\":%lld,"
             "\"model\":\"alias\",\"choices\":[",
             id, created);
    snprintf(expect, sizeof(expect),
             "data: %s{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},"
             "\"logprobs\":null,\"finish_reason\":null}]}\n\n"
             "data: %s{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"logprobs\":null,"
             "\"finish_reason\":null}]}\n\n"
             "data: %s{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n"
             "data: [DONE]\n\n",
             head, head, head);
    cr_expect_str_eq(r.out.p, expect);
    json_decref(first);
    render_end(&r);
}

Test(openai_render, chat_stream_with_usage_and_tool_calls)
{
    struct render r;
    char *ev[16];

    render_begin(&r, SB_REQ_CHAT, true);
    r.req.include_usage = true;
    cr_assert_eq(emit(&r, ev_start("llama-3.2-1b")), 0);
    cr_assert_eq(emit(&r, ev_text("Let me check. \"quoted\"\n")), 0);
    cr_assert_eq(emit(&r, ev_text("")), 0); /* an empty delta sends nothing */
    cr_assert_eq(emit(&r, ev_tool(0, "call_a", "get_weather", "{\"ci")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "", "", "ty\":\"Paris\"}")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "", "get_time", "{}")), 0);
    cr_assert_eq(emit(&r, ev_usage(10, 5, 4)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_TOOL_CALLS)), 0);

    size_t n = sse_split(r.out.p, ev, 16);
    cr_assert_eq(n, 8, "%s", r.out.p);
    cr_expect_str_eq(ev[7], "[DONE]");
    for (size_t i = 0; i < 6; i++) {
        json_t *c = load(ev[i]);
        cr_expect_str_eq(jstr(c, "object"), "chat.completion.chunk");
        cr_expect_str_eq(jstr(c, "model"), "llama-3.2-1b");
        cr_expect(json_is_null(json_object_get(c, "usage")), "chunk %zu lacks usage:null", i);
        cr_expect_eq(json_array_size(json_object_get(c, "choices")), 1);
        json_decref(c);
    }
    json_t *c;
    json_t *d;
    json_t *tc;

    c = load(ev[1]);
    d = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta");
    cr_expect_str_eq(jstr(d, "content"), "Let me check. \"quoted\"\n");
    json_decref(c);

    c = load(ev[2]);
    d = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta");
    tc = json_array_get(json_object_get(d, "tool_calls"), 0);
    cr_expect_eq(json_integer_value(json_object_get(tc, "index")), 0);
    cr_expect_str_eq(jstr(tc, "id"), "call_a");
    cr_expect_str_eq(jstr(tc, "type"), "function");
    cr_expect_str_eq(jstr(json_object_get(tc, "function"), "name"), "get_weather");
    cr_expect_str_eq(jstr(json_object_get(tc, "function"), "arguments"), "{\"ci");
    json_decref(c);

    c = load(ev[3]); /* a continuation: index and arguments only */
    d = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta");
    tc = json_array_get(json_object_get(d, "tool_calls"), 0);
    cr_expect_eq(json_integer_value(json_object_get(tc, "index")), 0);
    cr_expect_null(json_object_get(tc, "id"));
    cr_expect_null(json_object_get(tc, "type"));
    cr_expect_null(json_object_get(json_object_get(tc, "function"), "name"));
    cr_expect_str_eq(jstr(json_object_get(tc, "function"), "arguments"), "ty\":\"Paris\"}");
    json_decref(c);

    c = load(ev[4]); /* a backend that gave no id still yields one */
    d = json_object_get(json_array_get(json_object_get(c, "choices"), 0), "delta");
    tc = json_array_get(json_object_get(d, "tool_calls"), 0);
    cr_expect_eq(json_integer_value(json_object_get(tc, "index")), 1);
    cr_expect(strncmp(jstr(tc, "id"), "call_", 5) == 0);
    cr_expect_str_eq(jstr(json_object_get(tc, "function"), "name"), "get_time");
    json_decref(c);

    c = load(ev[5]);
    json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    cr_expect_str_eq(jstr(ch, "finish_reason"), "tool_calls");
    cr_expect_eq(json_object_size(json_object_get(ch, "delta")), 0);
    json_decref(c);

    c = load(ev[6]); /* the usage chunk */
    cr_expect_eq(json_array_size(json_object_get(c, "choices")), 0);
    json_t *u = json_object_get(c, "usage");
    cr_expect_eq(json_integer_value(json_object_get(u, "prompt_tokens")), 10);
    cr_expect_eq(json_integer_value(json_object_get(u, "completion_tokens")), 5);
    cr_expect_eq(json_integer_value(json_object_get(u, "total_tokens")), 15);
    cr_expect_eq(json_integer_value(
                     json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens")),
                 4);
    json_decref(c);

    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    render_end(&r);
}

Test(openai_render, stream_error_after_start_has_no_done)
{
    struct render r;
    char *ev[8];

    render_begin(&r, SB_REQ_CHAT, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text("par")), 0);
    cr_assert_eq(emit(&r, ev_error(SB_EBACKEND, 502, "upstream closed the connection")), 0);
    cr_expect_eq(emit(&r, ev_text("late")), SB_ESTATE, "nothing follows an error");

    size_t n = sse_split(r.out.p, ev, 8);
    cr_assert_eq(n, 3);
    json_t *e = load(ev[2]);
    json_t *o = json_object_get(e, "error");
    cr_expect_str_eq(jstr(o, "message"), "upstream closed the connection");
    cr_expect_str_eq(jstr(o, "type"), "server_error");
    cr_expect(json_is_null(json_object_get(o, "param")));
    cr_expect(json_is_null(json_object_get(o, "code")));
    cr_expect(strstr(r.out.p, "[DONE]") == NULL);
    json_decref(e);
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    render_end(&r);
}

Test(openai_render, events_out_of_order_are_refused)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, true);
    cr_expect_eq(emit(&r, ev_text("early")), SB_ESTATE);
    cr_expect_eq(emit(&r, ev_error(SB_EBACKEND, 0, "x")), SB_ESTATE);
    cr_expect_eq(r.out.len, 0);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_eq(emit(&r, ev_start("m")), SB_ESTATE);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_LENGTH)), 0);
    cr_expect_eq(emit(&r, ev_finish(SB_FINISH_STOP)), SB_ESTATE);
    cr_expect(strstr(r.out.p, "\"finish_reason\":\"length\"") != NULL);
    render_end(&r);
}

Test(openai_render, chat_plain_text)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, false);
    cr_assert_eq(emit(&r, ev_start("served-model")), 0);
    cr_assert_eq(emit(&r, ev_text("Hello, ")), 0);
    cr_assert_eq(emit(&r, ev_text("w\xc3\xb6rld \xf0\x9f\x98\x80")), 0);
    cr_expect_eq(r.out.len, 0, "nothing is sent before FINISH");
    cr_assert_eq(emit(&r, ev_usage(7, 3, 2)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);

    json_t *c = load(r.out.p);
    cr_expect(strncmp(jstr(c, "id"), "chatcmpl-", 9) == 0);
    cr_expect_str_eq(jstr(c, "object"), "chat.completion");
    cr_expect_str_eq(jstr(c, "model"), "served-model");
    cr_expect(json_is_integer(json_object_get(c, "created")));
    json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    cr_expect_eq(json_integer_value(json_object_get(ch, "index")), 0);
    cr_expect_str_eq(jstr(ch, "finish_reason"), "stop");
    cr_expect(json_is_null(json_object_get(ch, "logprobs")));
    json_t *m = json_object_get(ch, "message");
    cr_expect_str_eq(jstr(m, "role"), "assistant");
    cr_expect_str_eq(jstr(m, "content"), "Hello, w\xc3\xb6rld \xf0\x9f\x98\x80");
    cr_expect_null(json_object_get(m, "tool_calls"));
    json_t *u = json_object_get(c, "usage");
    cr_expect_eq(json_integer_value(json_object_get(u, "total_tokens")), 10);
    cr_expect_eq(json_integer_value(
                     json_object_get(json_object_get(u, "prompt_tokens_details"), "cached_tokens")),
                 2);
    json_decref(c);
    render_end(&r);
}

Test(openai_render, chat_plain_tool_calls_have_null_content)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, false);
    cr_assert_eq(emit(&r, ev_start("")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "call_1", "f", "{\"a\":")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "call_2", "g", "{}")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "", "", "1}")), 0); /* interleaved deltas */
    cr_assert_eq(emit(&r, ev_usage(1, 1, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_TOOL_CALLS)), 0);

    json_t *c = load(r.out.p);
    cr_expect_str_eq(jstr(c, "model"), "alias", "falls back to the requested model");
    json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    json_t *m = json_object_get(ch, "message");
    cr_expect(json_is_null(json_object_get(m, "content")));
    json_t *calls = json_object_get(m, "tool_calls");
    cr_assert_eq(json_array_size(calls), 2);
    json_t *c0 = json_array_get(calls, 0);
    cr_expect_str_eq(jstr(c0, "id"), "call_1");
    cr_expect_str_eq(jstr(c0, "type"), "function");
    cr_expect_str_eq(jstr(json_object_get(c0, "function"), "name"), "f");
    cr_expect_str_eq(jstr(json_object_get(c0, "function"), "arguments"), "{\"a\":1}");
    cr_expect_str_eq(jstr(json_object_get(json_array_get(calls, 1), "function"), "name"), "g");
    cr_expect_str_eq(jstr(ch, "finish_reason"), "tool_calls");
    json_decref(c);
    render_end(&r);
}

Test(openai_render, completion_plain_with_echo)
{
    struct render r;

    render_begin(&r, SB_REQ_COMPLETION, false);
    r.req.echo = true;
    r.req.prompt = SB_STR_LIT("Once upon");
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text(" a time")), 0);
    cr_assert_eq(emit(&r, ev_usage(2, 3, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_LENGTH)), 0);

    json_t *c = load(r.out.p);
    cr_expect(strncmp(jstr(c, "id"), "cmpl-", 5) == 0);
    cr_expect_str_eq(jstr(c, "object"), "text_completion");
    json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
    cr_expect_str_eq(jstr(ch, "text"), "Once upon a time");
    cr_expect_eq(json_integer_value(json_object_get(ch, "index")), 0);
    cr_expect(json_is_null(json_object_get(ch, "logprobs")));
    cr_expect_str_eq(jstr(ch, "finish_reason"), "length");
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(c, "usage"), "total_tokens")),
                 5);
    json_decref(c);
    render_end(&r);
}

Test(openai_render, completion_stream)
{
    struct render r;
    char *ev[8];

    render_begin(&r, SB_REQ_COMPLETION, true);
    r.req.echo = true;
    r.req.prompt = SB_STR_LIT("P");
    r.req.include_usage = true;
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text("x")), 0);
    cr_assert_eq(emit(&r, ev_usage(1, 1, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_CONTENT_FILTER)), 0);

    size_t n = sse_split(r.out.p, ev, 8);
    cr_assert_eq(n, 5, "%s", r.out.p);
    static const char *const texts[] = {"P", "x", ""};
    for (size_t i = 0; i < 3; i++) {
        json_t *c = load(ev[i]);
        cr_expect_str_eq(jstr(c, "object"), "text_completion");
        json_t *ch = json_array_get(json_object_get(c, "choices"), 0);
        cr_expect_str_eq(jstr(ch, "text"), texts[i]);
        if (i == 2)
            cr_expect_str_eq(jstr(ch, "finish_reason"), "content_filter");
        else
            cr_expect(json_is_null(json_object_get(ch, "finish_reason")));
        json_decref(c);
    }
    json_t *u = load(ev[3]);
    cr_expect_eq(json_array_size(json_object_get(u, "choices")), 0);
    cr_expect_eq(json_integer_value(json_object_get(json_object_get(u, "usage"), "prompt_tokens")),
                 1);
    json_decref(u);
    cr_expect_str_eq(ev[4], "[DONE]");
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    render_end(&r);
}

Test(openai_render, completion_stream_without_echo_sends_nothing_at_start)
{
    struct render r;

    render_begin(&r, SB_REQ_COMPLETION, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_eq(r.out.len, 0);
    render_end(&r);
}

Test(openai_render, plain_output_is_bounded_and_fails_whole)
{
    struct render r;
    size_t big = (size_t)33 << 20;
    char *chunk = malloc(big + 1);

    cr_assert_not_null(chunk);
    memset(chunk, 'a', big);
    chunk[big] = '\0';
    render_begin(&r, SB_REQ_CHAT, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text(chunk)), 0);
    cr_expect_eq(emit(&r, ev_text(chunk)), SB_ETOOBIG, "64 MiB is the bound");
    cr_expect_eq(emit(&r, ev_finish(SB_FINISH_STOP)), SB_ESTATE, "a failed response stays failed");
    cr_expect_eq(r.out.len, 0, "nothing half-written");
    free(chunk);
    render_end(&r);
}

Test(openai_render, output_buffer_full_leaves_no_partial_chunk)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, true);
    sb_buf_free(&r.out);
    sb_buf_init(&r.out, 300); /* room for the first chunk, not the second */
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    size_t len = r.out.len;
    cr_expect_eq(emit(&r, ev_text("a longer piece of text that will not fit")), SB_ETOOBIG);
    cr_expect_eq(r.out.len, len);
    cr_expect_eq(r.out.p[len], '\0');
    render_end(&r);
}

Test(openai_render, bad_tool_call_index_fails)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_eq(emit(&r, ev_tool(-1, "c", "f", "{}")), SB_ETOOBIG);
    render_end(&r);
    render_begin(&r, SB_REQ_CHAT, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_eq(emit(&r, ev_tool(100000, "c", "f", "{}")), SB_ETOOBIG);
    render_end(&r);
}

Test(openai_render, deinit_without_finish_frees_everything)
{
    struct render r;

    /* ASan's leak check is the assertion: the client went away mid-response. */
    render_begin(&r, SB_REQ_CHAT, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text("partial")), 0);
    cr_assert_eq(emit(&r, ev_tool(3, "c", "f", "{")), 0);
    render_end(&r);
}

Test(openai_render, write_error_shape)
{
    struct sb_api_error e;
    struct sb_buf out;

    sb_buf_init(&out, 4096);
    sb_api_fail(&e, 400, "invalid_request_error", "invalid_type", "messages[1].content",
                "Invalid type for '%s': \"quoted\"", "messages[1].content");
    cr_assert_eq(sb_openai_codec.write_error(&e, &out), 0);
    cr_expect_str_eq(out.p, "{\"error\":{\"message\":\"Invalid type for 'messages[1].content': "
                            "\\\"quoted\\\"\",\"type\":\"invalid_request_error\",\"param\":"
                            "\"messages[1].content\",\"code\":\"invalid_type\"}}");
    sb_buf_reset(&out);
    sb_api_fail(&e, 500, "server_error", NULL, NULL, "boom");
    cr_assert_eq(sb_openai_codec.write_error(&e, &out), 0);
    cr_expect_str_eq(out.p, "{\"error\":{\"message\":\"boom\",\"type\":\"server_error\","
                            "\"param\":null,\"code\":null}}");
    sb_buf_free(&out);
}

Test(openai_render, model_list)
{
    struct sb_backend_info models[] = {
        {.name = "local", .kind = "local", .created = 1700000000},
        {.name = "gpt-\"4o\"", .kind = "openai", .created = 0},
    };
    struct sb_buf out;

    sb_buf_init(&out, 4096);
    cr_assert_eq(sb_openai_codec.write_models(models, 2, &out), 0);
    json_t *l = load(out.p);
    cr_expect_str_eq(jstr(l, "object"), "list");
    json_t *d = json_object_get(l, "data");
    cr_assert_eq(json_array_size(d), 2);
    cr_expect_str_eq(jstr(json_array_get(d, 0), "id"), "local");
    cr_expect_str_eq(jstr(json_array_get(d, 0), "object"), "model");
    cr_expect_eq(json_integer_value(json_object_get(json_array_get(d, 0), "created")), 1700000000);
    cr_expect_str_eq(jstr(json_array_get(d, 0), "owned_by"), "switchboard");
    cr_expect_str_eq(jstr(json_array_get(d, 1), "id"), "gpt-\"4o\"");
    json_decref(l);

    sb_buf_reset(&out);
    cr_assert_eq(sb_openai_codec.write_models(NULL, 0, &out), 0);
    cr_expect_str_eq(out.p, "{\"object\":\"list\",\"data\":[]}");
    sb_buf_free(&out);
}

Test(openai_render, codec_table)
{
    cr_expect_eq(sb_openai_codec.api, SB_API_OPENAI);
    cr_expect_str_eq(sb_openai_codec.name, "openai");
    cr_expect_str_eq(sb_openai_codec.stream_content_type, "text/event-stream");
    cr_expect_gt(sb_openai_codec.render_size, 0);
}

/* A parsed request renders end to end: the renderer only borrows req. */
Test(openai_render, parse_then_render, .init = setup, .fini = teardown)
{
    struct sb_buf out;
    void *st = calloc(1, sb_openai_codec.render_size);

    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"x\",\"stream\":true,\"stream_options\":"
                                    "{\"include_usage\":true}," MSG "}"),
                 0);
    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_openai_codec.render_init(st, &req), 0);
    struct sb_event ev = ev_start("");
    cr_assert_eq(sb_openai_codec.render_event(st, &ev, &out), 0);
    cr_expect(strstr(out.p, "\"model\":\"x\"") != NULL);
    cr_expect(strstr(out.p, "\"usage\":null") != NULL);
    sb_openai_codec.render_deinit(st);
    free(st);
    sb_buf_free(&out);
}
