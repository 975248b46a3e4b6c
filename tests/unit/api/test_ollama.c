/* Unit tests for the Ollama codec: /api/chat, /api/generate and /api/embed parsing (good and bad
 * bodies, each bad one a 400 {"error"}), NDJSON and plain rendering, and the model endpoints. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "helpers.h"

TestSuite(ollama_codec_parse, .init = setup, .fini = teardown);

static int parse(enum sb_request_kind kind, const char *body)
{
    return sb_ollama_codec.parse(kind, arena, sb_str_c(body), &req, &err);
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static long long jint(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

#define MSG        "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define CHAT(more) "{\"model\":\"m\"," MSG more "}"
#define PNG        "iVBORw0KGgoAAAANSUhEUg"

/* =============================================================================================
 * Parsing: good requests
 * =========================================================================================== */

Test(ollama_codec_parse, chat_minimal_streams_by_default)
{
    cr_assert_eq(parse(SB_REQ_CHAT, CHAT("")), 0, "%s", err.message);
    cr_expect_eq(req.api, SB_API_OLLAMA);
    cr_expect_eq(req.kind, SB_REQ_CHAT);
    cr_expect(eq(req.model, "m"));
    cr_expect(req.stream, "Ollama streams unless told not to");
    cr_assert_eq(req.n_messages, 1);
    cr_expect_eq(req.messages[0].role, SB_ROLE_USER);
    cr_expect(eq(req.messages[0].parts[0].text, "x"));
    cr_expect_eq(req.max_tokens, 0);
    cr_expect_eq(req.sampling.temperature, SB_UNSET_F);
    cr_expect(!req.from_prompt);
}

Test(ollama_codec_parse, chat_all_fields)
{
    const char *body =
        "{\"model\":\"llama3.2:latest\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"be brief\"},"
        "{\"role\":\"user\",\"content\":\"what is this?\",\"images\":[\"" PNG "\",\"/9j/4AAQ\","
        "\"AAAA\"]},"
        "{\"role\":\"assistant\",\"content\":\"\",\"thinking\":\"hm\",\"tool_calls\":["
        "{\"function\":{\"name\":\"get_weather\",\"arguments\":{\"city\":\"Paris\"}}},"
        "{\"function\":{\"name\":\"get_time\",\"arguments\":{}}}]},"
        "{\"role\":\"tool\",\"tool_name\":\"get_time\",\"content\":\"noon\"},"
        "{\"role\":\"tool\",\"content\":\"sunny\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Weather\",\"parameters\":{\"type\":\"object\"}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}],"
        "\"format\":\"json\",\"stream\":false,\"keep_alive\":\"5m\",\"think\":false,"
        "\"options\":{\"temperature\":0.2,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"seed\":42,"
        "\"num_predict\":100,\"stop\":[\"\\n\",\"user:\"],\"repeat_penalty\":1.1,"
        "\"presence_penalty\":0.5,\"frequency_penalty\":-0.5,\"num_ctx\":8192,\"num_gpu\":99,"
        "\"mirostat\":0,\"penalize_newline\":true}}";

    cr_assert_eq(parse(SB_REQ_CHAT, body), 0, "%s (%s)", err.message, err.param);
    cr_expect(eq(req.model, "llama3.2:latest"));
    cr_expect(!req.stream);
    cr_expect(req.json_mode);
    cr_assert_eq(req.n_messages, 5);

    cr_expect_eq(req.messages[0].role, SB_ROLE_SYSTEM);
    const struct sb_message *u = &req.messages[1];
    cr_assert_eq(u->n_parts, 4, "images first, then the text");
    cr_expect_eq(u->parts[0].type, SB_PART_IMAGE);
    cr_expect(eq(u->parts[0].data, PNG));
    cr_expect(eq(u->parts[0].media_type, "image/png"));
    cr_expect(eq(u->parts[1].media_type, "image/jpeg"));
    cr_expect_eq(u->parts[2].media_type.len, 0, "an unknown format stays unnamed");
    cr_expect_eq(u->parts[3].type, SB_PART_TEXT);
    cr_expect(eq(u->parts[3].text, "what is this?"));

    const struct sb_message *a = &req.messages[2];
    cr_expect_eq(a->role, SB_ROLE_ASSISTANT);
    cr_expect_eq(a->n_parts, 0, "a turn that only calls tools has no text");
    cr_assert_eq(a->n_tool_calls, 2);
    cr_expect(eq(a->tool_calls[0].id, "call_0"));
    cr_expect(eq(a->tool_calls[0].name, "get_weather"));
    cr_expect(eq(a->tool_calls[0].arguments, "{\"city\":\"Paris\"}"));
    cr_expect(eq(a->tool_calls[1].id, "call_1"));
    cr_expect(eq(a->tool_calls[1].arguments, "{}"));

    cr_expect_eq(req.messages[3].role, SB_ROLE_TOOL);
    cr_expect(eq(req.messages[3].tool_call_id, "call_1"), "paired by tool_name");
    cr_expect(eq(req.messages[3].name, "get_time"));
    cr_expect(eq(req.messages[4].tool_call_id, "call_0"), "then the first unanswered call");
    cr_expect(eq(req.messages[4].name, "get_weather"));
    cr_expect(eq(req.messages[4].parts[0].text, "sunny"));

    cr_assert_eq(req.n_tools, 2);
    cr_expect(eq(req.tools[0].name, "get_weather"));
    cr_expect(eq(req.tools[0].description, "Weather"));
    cr_expect(eq(req.tools[0].parameters, "{\"type\":\"object\"}"));
    cr_expect_eq(req.tools[1].parameters.len, 0);

    cr_expect_float_eq(req.sampling.temperature, 0.2f, 1e-6);
    cr_expect_float_eq(req.sampling.top_p, 0.9f, 1e-6);
    cr_expect_eq(req.sampling.top_k, 40);
    cr_expect_float_eq(req.sampling.min_p, 0.05f, 1e-6);
    cr_expect(req.sampling.has_seed);
    cr_expect_eq(req.sampling.seed, 42);
    cr_expect_float_eq(req.sampling.repeat_penalty, 1.1f, 1e-6);
    cr_expect_float_eq(req.sampling.presence_penalty, 0.5f, 1e-6);
    cr_expect_float_eq(req.sampling.frequency_penalty, -0.5f, 1e-6);
    cr_expect_eq(req.max_tokens, 100);
    cr_assert_eq(req.n_stop, 2);
    cr_expect(eq(req.stop[1], "user:"));
}

Test(ollama_codec_parse, option_translations)
{
    cr_assert_eq(parse(SB_REQ_CHAT, CHAT(",\"options\":{\"seed\":-1,\"num_predict\":-1,"
                                         "\"stop\":\"###\"},\"format\":{\"type\":\"object\"}")),
                 0, "%s", err.message);
    cr_expect(!req.sampling.has_seed, "seed -1 is a random seed");
    cr_expect_eq(req.max_tokens, 0, "num_predict -1 is no limit");
    cr_assert_eq(req.n_stop, 1);
    cr_expect(eq(req.stop[0], "###"));
    cr_expect(req.json_mode, "a schema is JSON mode");

    cr_assert_eq(parse(SB_REQ_CHAT, CHAT(",\"options\":{\"num_predict\":-2},\"format\":\"\"")), 0);
    cr_expect_eq(req.max_tokens, 0);
    cr_expect(!req.json_mode);
}

Test(ollama_codec_parse, tool_ids_given_by_the_client_are_kept)
{
    cr_assert_eq(parse(SB_REQ_CHAT,
                       "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":["
                       "{\"id\":\"abc\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}"
                       "\"}}]},{\"role\":\"tool\",\"tool_call_id\":\"abc\",\"content\":\"r\"},"
                       "{\"role\":\"tool\",\"content\":\"stray\"}]}"),
                 0, "%s", err.message);
    cr_expect(eq(req.messages[0].tool_calls[0].id, "abc"));
    cr_expect(eq(req.messages[0].tool_calls[0].arguments, "{\"a\":1}"), "string arguments pass");
    cr_expect(eq(req.messages[1].tool_call_id, "abc"));
    cr_expect(eq(req.messages[2].tool_call_id, "abc"),
              "a result without an id takes the first call not yet answered by pairing");
}

Test(ollama_codec_parse, generate_is_templated_unless_raw)
{
    cr_assert_eq(parse(SB_REQ_COMPLETION,
                       "{\"model\":\"m\",\"prompt\":\"Why?\",\"system\":\"sys\",\"images\":"
                       "[\"" PNG "\"],\"context\":[],\"template\":\"\",\"suffix\":null,"
                       "\"options\":{\"num_predict\":5}}"),
                 0, "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_CHAT, "goes through the chat template");
    cr_expect(req.from_prompt);
    cr_expect(eq(req.prompt, "Why?"));
    cr_expect(req.stream);
    cr_expect_eq(req.max_tokens, 5);
    cr_assert_eq(req.n_messages, 2);
    cr_expect_eq(req.messages[0].role, SB_ROLE_SYSTEM);
    cr_expect(eq(req.messages[0].parts[0].text, "sys"));
    cr_expect_eq(req.messages[1].role, SB_ROLE_USER);
    cr_assert_eq(req.messages[1].n_parts, 2);
    cr_expect_eq(req.messages[1].parts[0].type, SB_PART_IMAGE);
    cr_expect(eq(req.messages[1].parts[1].text, "Why?"));

    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"[INST] hi [/INST]\","
                                          "\"raw\":true,\"stream\":false}"),
                 0, "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_COMPLETION);
    cr_expect(!req.from_prompt);
    cr_expect(eq(req.prompt, "[INST] hi [/INST]"));
    cr_expect_eq(req.n_messages, 0);
    cr_expect(!req.stream);
}

Test(ollama_codec_parse, generate_without_prompt_loads)
{
    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"options\":{\"num_predict\":50}}"), 0,
                 "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_CHAT);
    cr_expect_eq(req.model_op, SB_MODEL_OP_LOAD);
    cr_expect(!req.has_keep_alive);
    cr_expect(req.from_prompt);
    cr_expect_eq(req.prompt.len, 0);
    cr_expect_eq(req.max_tokens, 1, "one token warms the model");
    cr_assert_eq(req.n_messages, 1);
    cr_expect(eq(req.messages[0].parts[0].text, ""));

    cr_assert_eq(
        parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"\",\"keep_alive\":\"1h\"}"), 0,
        "%s", err.message);
    cr_expect_eq(req.model_op, SB_MODEL_OP_LOAD, "a load that also sets keep_alive");
    cr_expect_eq(req.keep_alive_ns, INT64_C(3600000000000));

    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"hi\",\"keep_alive\":0}"),
                 0);
    cr_expect_eq(req.model_op, SB_MODEL_OP_NONE, "a prompt is generated from, then unloaded");
    cr_expect(req.has_keep_alive);
    cr_expect_eq(req.keep_alive_ns, 0);
}

Test(ollama_codec_parse, keep_alive_zero_without_prompt_or_messages_unloads)
{
    static const struct {
        enum sb_request_kind kind;
        const char *body;
    } unloads[] = {
        {SB_REQ_COMPLETION, "{\"model\":\"m\",\"keep_alive\":0}"},
        {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"\",\"keep_alive\":\"0s\"}"},
        {SB_REQ_COMPLETION, "{\"model\":\"m\",\"raw\":true,\"keep_alive\":\"0\"}"},
        {SB_REQ_CHAT, "{\"model\":\"m\",\"keep_alive\":0}"},
        {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[],\"keep_alive\":0.0}"},
        {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":null,\"keep_alive\":\"0m\"}"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(unloads); i++) {
        cr_assert_eq(parse(unloads[i].kind, unloads[i].body), 0, "%s: %s", unloads[i].body,
                     err.message);
        cr_expect_eq(req.model_op, SB_MODEL_OP_UNLOAD, "%s", unloads[i].body);
        cr_expect(req.has_keep_alive && req.keep_alive_ns == 0, "%s", unloads[i].body);
        /* Backends that cannot unload serve it as a one-token chat. */
        cr_expect_eq(req.kind, SB_REQ_CHAT, "%s", unloads[i].body);
        cr_assert_eq(req.n_messages, 1, "%s", unloads[i].body);
        cr_expect_eq(req.messages[0].role, SB_ROLE_USER);
        cr_expect_eq(req.max_tokens, 1);
    }
}

Test(ollama_codec_parse, chat_without_messages_loads)
{
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[],\"keep_alive\":-1,"
                                    "\"options\":{\"num_predict\":9}}"),
                 0, "%s", err.message);
    cr_expect_eq(req.model_op, SB_MODEL_OP_LOAD);
    cr_expect_eq(req.keep_alive_ns, SB_KEEP_ALIVE_FOREVER);
    cr_expect(!req.from_prompt, "answered in chat's shape");
    cr_expect_eq(req.max_tokens, 1, "num_predict does not make a load generate");
    cr_assert_eq(req.n_messages, 1);
    cr_expect(eq(req.messages[0].parts[0].text, ""));
    cr_assert_eq(parse(SB_REQ_CHAT, "{\"model\":\"m\"}"), 0, "%s", err.message);
    cr_expect_eq(req.model_op, SB_MODEL_OP_LOAD, "no messages at all loads too");
    cr_assert_eq(parse(SB_REQ_CHAT, CHAT(",\"keep_alive\":\"5m\"")), 0);
    cr_expect_eq(req.model_op, SB_MODEL_OP_NONE);
}

Test(ollama_codec_parse, keep_alive_durations_and_seconds)
{
    static const struct {
        const char *value; /* JSON */
        int64_t ns;
    } cases[] = {
        {"\"5m\"", INT64_C(300000000000)},
        {"\"1h30m\"", INT64_C(5400000000000)},
        {"\"10s\"", INT64_C(10000000000)},
        {"\"250ms\"", INT64_C(250000000)},
        {"\"0\"", 0},
        {"0", 0},
        {"30", INT64_C(30000000000)},
        {"1.5", INT64_C(1500000000)},
        {"\"300\"", INT64_C(300000000000)}, /* digits alone are seconds, as OLLAMA_KEEP_ALIVE */
        {"-1", SB_KEEP_ALIVE_FOREVER},
        {"-0.5", SB_KEEP_ALIVE_FOREVER},
        {"\"-1\"", SB_KEEP_ALIVE_FOREVER},
        {"\"-5m\"", SB_KEEP_ALIVE_FOREVER},
        {"1e300", SB_KEEP_ALIVE_FOREVER},             /* longer than a nanosecond count holds */
        {"\"3000000h\"", SB_KEEP_ALIVE_FOREVER},      /* the same, as a duration */
        {"9223372036", INT64_C(9223372036000000000)}, /* the longest that is still a count */
    };
    char body[256];

    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        snprintf(body, sizeof(body), CHAT(",\"keep_alive\":%s"), cases[i].value);
        cr_assert_eq(parse(SB_REQ_CHAT, body), 0, "%s: %s", body, err.message);
        cr_expect(req.has_keep_alive, "%s", body);
        cr_expect_eq(req.keep_alive_ns, cases[i].ns, "%s: %lld", body,
                     (long long)req.keep_alive_ns);
    }
    cr_assert_eq(parse(SB_REQ_CHAT, CHAT(",\"keep_alive\":null")), 0);
    cr_expect(!req.has_keep_alive, "null is not given");
    cr_assert_eq(parse(SB_REQ_EMBED, "{\"model\":\"e\",\"input\":\"x\",\"keep_alive\":\"2m\"}"), 0);
    cr_expect(req.has_keep_alive);
    cr_expect_eq(req.keep_alive_ns, INT64_C(120000000000), "/api/embed takes it too");
    cr_expect_eq(req.model_op, SB_MODEL_OP_NONE);
}

Test(ollama_codec_parse, embed_inputs)
{
    cr_assert_eq(parse(SB_REQ_EMBED, "{\"model\":\"e\",\"input\":\"one\"}"), 0, "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_EMBED);
    cr_expect(!req.stream);
    cr_assert_eq(req.n_inputs, 1);
    cr_expect(eq(req.inputs[0], "one"));

    cr_assert_eq(parse(SB_REQ_EMBED, "{\"model\":\"e\",\"input\":[\"a\",\"\",\"c\"],"
                                     "\"truncate\":false,\"dimensions\":256,\"keep_alive\":\"1h\","
                                     "\"options\":{\"temperature\":9}}"),
                 0, "%s", err.message);
    cr_assert_eq(req.n_inputs, 3);
    cr_expect(eq(req.inputs[2], "c"));
    cr_expect_eq(req.dimensions, 256);
}

Test(ollama_codec_parse, show_body)
{
    struct sb_str model = SB_STR_NULL;

    cr_assert_eq(sb_ollama_parse_show(arena, sb_str_c("{\"model\":\"llama3\",\"verbose\":true}"),
                                      &model, &err),
                 0);
    cr_expect(eq(model, "llama3"));
    cr_assert_eq(sb_ollama_parse_show(arena, sb_str_c("{\"name\":\"old\"}"), &model, &err), 0);
    cr_expect(eq(model, "old"), "the older field name");
    cr_expect_eq(sb_ollama_parse_show(arena, sb_str_c("{}"), &model, &err), SB_EINVAL);
    cr_expect_eq(err.http_status, 400);
    cr_expect_str_eq(err.param, "model");
    cr_expect_eq(sb_ollama_parse_show(arena, sb_str_c("nope"), &model, &err), SB_EINVAL);
}

/* =============================================================================================
 * Parsing: bad requests
 * =========================================================================================== */

struct bad_case {
    enum sb_request_kind kind;
    const char *body;
    const char *param;
    const char *message; /* a substring of err.message */
};

static const struct bad_case bad_cases[] = {
    {SB_REQ_CHAT, "{", "", "We could not parse"},
    {SB_REQ_CHAT, "{" MSG "}", "model", "Missing required parameter: 'model'."},
    {SB_REQ_CHAT, "{\"model\":\"\"," MSG "}", "model", "empty string"},
    {SB_REQ_CHAT, "{\"model\":7," MSG "}", "model", "expected a string"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":{}}", "messages", "expected an array"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}",
     "messages[0].role", "'system', 'user', 'assistant', and 'tool'"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":5}]}",
     "messages[0].content", "expected a string"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"\",\"images\":[\"" PNG
     "\"]}]}",
     "messages[0].images", "only read in user messages"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"images\":[1]}]}",
     "messages[0].images[0]", "expected a string"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"tool_calls\":[{\"function\":"
     "{\"name\":\"f\"}}]}]}",
     "messages[0].tool_calls", "only allowed in assistant messages"},
    {SB_REQ_CHAT, "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{}]}]}",
     "messages[0].tool_calls[0].function", "Missing required"},
    {SB_REQ_CHAT,
     "{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"function\":"
     "{\"name\":\"f\",\"arguments\":5}}]}]}",
     "messages[0].tool_calls[0].function.arguments", "expected an object"},
    {SB_REQ_CHAT, CHAT(",\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a b\"}}]"),
     "tools[0].function.name", "does not match pattern"},
    {SB_REQ_CHAT, CHAT(",\"tools\":[{\"type\":\"code\",\"function\":{\"name\":\"f\"}}]"),
     "tools[0].type", "'function'"},
    {SB_REQ_CHAT, CHAT(",\"options\":5"), "options", "expected an object"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"temperature\":\"hot\"}"), "options.temperature",
     "expected a number"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"temperature\":3}"), "options.temperature", "<= 2"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"top_k\":1.5}"), "options.top_k", "expected an integer"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"num_predict\":0}"), "options.num_predict",
     "0 would generate nothing"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"num_predict\":-3}"), "options.num_predict", ">= -2"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"num_ctx\":\"big\"}"), "options.num_ctx",
     "expected an integer"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"stop\":[\"a\",\"\"]}"), "options.stop[1]", "empty string"},
    {SB_REQ_CHAT, CHAT(",\"options\":{\"stop\":7}"), "options.stop", "a string or an array"},
    {SB_REQ_CHAT, CHAT(",\"format\":\"xml\""), "format", "'json', or a JSON schema object"},
    {SB_REQ_CHAT, CHAT(",\"format\":5"), "format", "a string or a JSON schema object"},
    {SB_REQ_CHAT, CHAT(",\"keep_alive\":true"), "keep_alive", "a duration string"},
    {SB_REQ_CHAT, CHAT(",\"keep_alive\":{\"minutes\":5}"), "keep_alive", "a duration string"},
    {SB_REQ_CHAT, CHAT(",\"keep_alive\":\"5 parsecs\""), "keep_alive",
     "'5 parsecs' is not a duration"},
    {SB_REQ_CHAT, CHAT(",\"keep_alive\":\"\""), "keep_alive", "is not a duration"},
    {SB_REQ_CHAT, CHAT(",\"keep_alive\":\"1h5\""), "keep_alive", "is not a duration"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"keep_alive\":\"1d\"}", "keep_alive",
     "units ns, us, ms, s, m, h"},
    {SB_REQ_EMBED, "{\"model\":\"e\",\"input\":\"a\",\"keep_alive\":[]}", "keep_alive",
     "a duration string"},
    {SB_REQ_CHAT, CHAT(",\"think\":5"), "think", "a boolean or 'high'"},
    {SB_REQ_CHAT, CHAT(",\"logprobs\":true"), "logprobs", "not supported"},
    {SB_REQ_CHAT, CHAT(",\"stream\":\"no\""), "stream", "expected a boolean"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":5}", "prompt", "expected a string"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"template\":\"{{ .Prompt }}\"}",
     "template", "own chat template"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"suffix\":\"end\"}", "suffix",
     "fill-in-the-middle"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"context\":[1,2,3]}", "context",
     "returns no context"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"raw\":true,\"system\":\"s\"}",
     "system", "nowhere to put a system message"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"raw\":true,\"images\":[\"" PNG "\"]}",
     "images", "raw prompt skips"},
    {SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"p\",\"raw\":1}", "raw",
     "expected a boolean"},
    {SB_REQ_EMBED, "{\"model\":\"e\"}", "input", "Missing required"},
    {SB_REQ_EMBED, "{\"model\":\"e\",\"input\":[]}", "input", "empty array"},
    {SB_REQ_EMBED, "{\"model\":\"e\",\"input\":[\"a\",1]}", "input[1]", "expected a string"},
    {SB_REQ_EMBED, "{\"model\":\"e\",\"input\":{}}", "input", "a string or an array"},
    {SB_REQ_EMBED, "{\"model\":\"e\",\"input\":\"a\",\"dimensions\":0}", "dimensions", ">= 1"},
};

Test(ollama_codec_parse, bad_requests_are_400_with_param)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        memset(&err, 0, sizeof(err));
        int rc = parse(c->kind, c->body);
        cr_expect_eq(rc, SB_EINVAL, "case %zu (%s): rc %d", i, c->body, rc);
        cr_expect_eq(err.http_status, 400, "case %zu", i);
        cr_expect_str_eq(err.param, c->param, "case %zu (%s)", i, c->body);
        cr_expect(strstr(err.message, c->message) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                  i, err.message, c->message);
    }
}

Test(ollama_codec_parse, errors_render_as_ollama_does)
{
    struct sb_buf out;

    cr_assert_eq(parse(SB_REQ_CHAT, "{\"messages\":[]}"), SB_EINVAL);
    sb_buf_init(&out, 4096);
    cr_assert_eq(sb_ollama_codec.write_error(&err, &out), 0);
    cr_expect_str_eq(out.p, "{\"error\":\"Missing required parameter: 'model'.\"}");
    sb_buf_reset(&out);
    sb_api_fail(&err, 404, "invalid_request_error", NULL, NULL, "model \"x\" not found");
    cr_assert_eq(sb_ollama_codec.write_error(&err, &out), 0);
    cr_expect_str_eq(out.p, "{\"error\":\"model \\\"x\\\" not found\"}");
    sb_buf_free(&out);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

struct render {
    void *state;
    struct sb_buf out;
    struct sb_request req;
    struct sb_str inputs[3];
};

static void render_begin(struct render *r, enum sb_request_kind kind, bool stream)
{
    sb_request_init(&r->req);
    r->req.api = SB_API_OLLAMA;
    r->req.kind = kind;
    r->req.stream = stream;
    r->req.model = SB_STR_LIT("llama3.2");
    r->state = calloc(1, sb_ollama_codec.render_size);
    cr_assert_not_null(r->state);
    sb_buf_init(&r->out, 1 << 20);
}

static void render_ready(struct render *r)
{
    cr_assert_eq(sb_ollama_codec.render_init(r->state, &r->req), 0);
}

static void render_end(struct render *r)
{
    sb_ollama_codec.render_deinit(r->state);
    free(r->state);
    sb_buf_free(&r->out);
}

static int emit(struct render *r, struct sb_event ev)
{
    return sb_ollama_codec.render_event(r->state, &ev, &r->out);
}

static struct sb_event ev_start(void)
{
    return (struct sb_event){.type = SB_EV_START, .start.model = SB_STR_LIT("backend-name")};
}

static struct sb_event ev_usage(int64_t prompt, int64_t completion)
{
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = prompt;
    ev.usage.completion_tokens = completion;
    return ev;
}

static struct sb_event ev_finish(enum sb_finish_reason reason)
{
    return (struct sb_event){.type = SB_EV_FINISH, .finish.reason = reason};
}

static struct sb_event ev_embedding(int32_t index, const float *values, size_t dim)
{
    struct sb_event ev = {.type = SB_EV_EMBEDDING};
    ev.embedding.index = index;
    ev.embedding.values = values;
    ev.embedding.dim = dim;
    return ev;
}

/* Splits NDJSON output into lines (each ending in '\n', none empty); copies are malloc'd. */
static size_t lines_split(const char *s, char **out, size_t max)
{
    size_t n = 0;

    while (*s) {
        const char *nl = strchr(s, '\n');
        cr_assert_not_null(nl, "line %zu is not terminated: %s", n, s);
        cr_assert_gt(nl - s, 0, "empty line %zu", n);
        cr_assert_lt(n, max);
        out[n++] = strndup(s, (size_t)(nl - s));
        s = nl + 1;
    }
    return n;
}

static void lines_free(char **lines, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(lines[i]);
}

/* created_at must be RFC 3339 UTC with nanoseconds: 2024-01-02T03:04:05.123456789Z. */
static void expect_stamp(const json_t *line)
{
    const char *t = jstr(line, "created_at");
    cr_assert_not_null(t);
    cr_expect_eq(strlen(t), 30, "%s", t);
    cr_expect(t[4] == '-' && t[10] == 'T' && t[19] == '.' && t[29] == 'Z', "%s", t);
}

static void expect_durations(const json_t *d)
{
    long long total = jint(d, "total_duration");
    long long parts =
        jint(d, "load_duration") + jint(d, "prompt_eval_duration") + jint(d, "eval_duration");
    cr_expect_gt(total, 0);
    cr_expect_eq(total, parts, "the three phases add up to the total");
}

Test(ollama_codec_render, chat_stream_framing_is_exact)
{
    struct render r;
    char *lines[8];
    char expect[512];

    render_begin(&r, SB_REQ_CHAT, true);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_expect_eq(r.out.len, 0, "START sends nothing");
    cr_assert_eq(emit(&r, ev_text("Hi \"there\"\n")), 0);
    cr_assert_eq(emit(&r, ev_usage(26, 2)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);

    size_t n = lines_split(r.out.p, lines, 8);
    cr_assert_eq(n, 2, "%s", r.out.p);
    json_t *l0 = load(lines[0]);
    expect_stamp(l0);
    snprintf(expect, sizeof(expect),
             "{\"model\":\"llama3.2\",\"created_at\":\"%s\",\"message\":{\"role\":\"assistant\","
             "\"content\":\"Hi \\\"there\\\"\\n\"},\"done\":false}",
             jstr(l0, "created_at"));
    cr_expect_str_eq(lines[0], expect);
    json_decref(l0);

    json_t *d = load(lines[1]);
    expect_stamp(d);
    cr_expect_str_eq(jstr(d, "model"), "llama3.2", "the name the client asked for");
    cr_expect_str_eq(jstr(json_object_get(d, "message"), "content"), "");
    cr_expect(json_is_true(json_object_get(d, "done")));
    cr_expect_str_eq(jstr(d, "done_reason"), "stop");
    cr_expect_eq(jint(d, "prompt_eval_count"), 26);
    cr_expect_eq(jint(d, "eval_count"), 2);
    expect_durations(d);
    json_decref(d);
    lines_free(lines, n);
    render_end(&r);
}

Test(ollama_codec_render, chat_stream_sends_tool_calls_whole)
{
    struct render r;
    char *lines[8];

    render_begin(&r, SB_REQ_CHAT, true);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "call_a", "get_weather", "{\"city\":")), 0);
    cr_expect_eq(r.out.len, 0, "a call is not sent in pieces");
    cr_assert_eq(emit(&r, ev_tool(1, "", "get_time", "")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "", "", " \"Paris\"}")), 0);
    cr_assert_eq(emit(&r, ev_usage(10, 8)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_TOOL_CALLS)), 0);

    size_t n = lines_split(r.out.p, lines, 8);
    cr_assert_eq(n, 2, "%s", r.out.p);
    json_t *l = load(lines[0]);
    json_t *m = json_object_get(l, "message");
    cr_expect(json_is_false(json_object_get(l, "done")));
    cr_expect_str_eq(jstr(m, "role"), "assistant");
    cr_expect_str_eq(jstr(m, "content"), "");
    json_t *calls = json_object_get(m, "tool_calls");
    cr_assert_eq(json_array_size(calls), 2);
    json_t *f0 = json_object_get(json_array_get(calls, 0), "function");
    cr_expect_str_eq(jstr(json_array_get(calls, 0), "id"), "call_a");
    cr_expect_eq(jint(f0, "index"), 0);
    cr_expect_str_eq(jstr(f0, "name"), "get_weather");
    cr_assert(json_is_object(json_object_get(f0, "arguments")), "arguments are an object");
    cr_expect_str_eq(jstr(json_object_get(f0, "arguments"), "city"), "Paris");
    json_t *f1 = json_object_get(json_array_get(calls, 1), "function");
    cr_expect_str_eq(jstr(f1, "name"), "get_time");
    cr_expect_eq(json_object_size(json_object_get(f1, "arguments")), 0);
    cr_expect(strncmp(jstr(json_array_get(calls, 1), "id"), "call_", 5) == 0);
    json_decref(l);

    json_t *d = load(lines[1]);
    cr_expect_str_eq(jstr(d, "done_reason"), "stop", "Ollama's reason for a tool turn");
    json_decref(d);
    lines_free(lines, n);
    render_end(&r);
}

Test(ollama_codec_render, chat_plain)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, false);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("Hello, ")), 0);
    cr_assert_eq(emit(&r, ev_text("w\xc3\xb6rld")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "c", "f", "{\"x\":\n 1}")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "d", "g", "{broken")), 0);
    cr_expect_eq(r.out.len, 0);
    cr_assert_eq(emit(&r, ev_usage(5, 4)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_LENGTH)), 0);

    cr_expect(strchr(r.out.p, '\n') == NULL, "one object, no line breaks");
    json_t *d = load(r.out.p);
    expect_stamp(d);
    json_t *m = json_object_get(d, "message");
    cr_expect_str_eq(jstr(m, "content"), "Hello, w\xc3\xb6rld");
    json_t *calls = json_object_get(m, "tool_calls");
    cr_assert_eq(json_array_size(calls), 2);
    cr_expect_eq(
        jint(json_object_get(json_object_get(json_array_get(calls, 0), "function"), "arguments"),
             "x"),
        1);
    cr_expect_str_eq(
        jstr(json_object_get(json_object_get(json_array_get(calls, 1), "function"), "arguments"),
             "_raw_arguments"),
        "{broken");
    cr_expect(json_is_true(json_object_get(d, "done")));
    cr_expect_str_eq(jstr(d, "done_reason"), "length");
    cr_expect_eq(jint(d, "eval_count"), 4);
    expect_durations(d);
    json_decref(d);
    render_end(&r);
}

Test(ollama_codec_render, generate_stream_and_plain)
{
    struct render r;
    char *lines[8];

    render_begin(&r, SB_REQ_COMPLETION, true);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("The")), 0);
    cr_assert_eq(emit(&r, ev_text(" sky")), 0);
    cr_assert_eq(emit(&r, ev_usage(3, 2)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);
    size_t n = lines_split(r.out.p, lines, 8);
    cr_assert_eq(n, 3);
    json_t *l = load(lines[1]);
    cr_expect_str_eq(jstr(l, "response"), " sky");
    cr_expect(json_is_false(json_object_get(l, "done")));
    cr_expect_null(json_object_get(l, "message"));
    json_decref(l);
    l = load(lines[2]);
    cr_expect_str_eq(jstr(l, "response"), "");
    cr_expect(json_is_true(json_object_get(l, "done")));
    cr_expect_null(json_object_get(l, "context"), "no context is returned");
    json_decref(l);
    lines_free(lines, n);
    render_end(&r);

    /* A templated generate (from_prompt) answers in the same shape. */
    render_begin(&r, SB_REQ_CHAT, false);
    r.req.from_prompt = true;
    r.req.prompt = SB_STR_LIT("Why?");
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("Because.")), 0);
    cr_assert_eq(emit(&r, ev_usage(3, 2)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);
    l = load(r.out.p);
    cr_expect_str_eq(jstr(l, "response"), "Because.");
    cr_expect_str_eq(jstr(l, "done_reason"), "stop");
    cr_expect_eq(jint(l, "prompt_eval_count"), 3);
    json_decref(l);
    render_end(&r);
}

Test(ollama_codec_render, load_request_answers_load)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, true);
    r.req.from_prompt = true;
    r.req.prompt = SB_STR_LIT("");
    r.req.model_op = SB_MODEL_OP_LOAD;
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("tok")), 0);
    cr_expect_eq(r.out.len, 0, "the warm-up token is not shown");
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_LENGTH)), 0);
    cr_expect_eq(r.out.p[r.out.len - 1], '\n');
    json_t *l = load(r.out.p);
    cr_expect_str_eq(jstr(l, "model"), "llama3.2");
    expect_stamp(l);
    cr_expect_str_eq(jstr(l, "response"), "");
    cr_expect(json_is_true(json_object_get(l, "done")));
    cr_expect_str_eq(jstr(l, "done_reason"), "load");
    json_decref(l);
    render_end(&r);
}

/* Ollama's load and unload answers, for /api/generate and /api/chat, streamed or not: exactly
 * these keys, whatever the backend sent for them. */
Test(ollama_codec_render, load_and_unload_answer_in_each_shape)
{
    static const struct {
        bool generate, stream;
        enum sb_model_op op;
        const char *reason;
    } cases[] = {
        {true, false, SB_MODEL_OP_UNLOAD, "unload"},  {true, true, SB_MODEL_OP_UNLOAD, "unload"},
        {false, false, SB_MODEL_OP_LOAD, "load"},     {false, true, SB_MODEL_OP_LOAD, "load"},
        {false, false, SB_MODEL_OP_UNLOAD, "unload"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct render r;
        render_begin(&r, SB_REQ_CHAT, cases[i].stream);
        r.req.from_prompt = cases[i].generate;
        r.req.prompt = SB_STR_LIT("");
        r.req.model_op = cases[i].op;
        render_ready(&r);
        cr_assert_eq(emit(&r, ev_start()), 0);
        cr_assert_eq(emit(&r, ev_usage(0, 0)), 0);
        cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);
        cr_expect_eq(r.out.p[r.out.len - 1] == '\n', cases[i].stream, "case %zu", i);
        json_t *l = load(r.out.p);
        cr_expect_eq(json_object_size(l), 5, "case %zu: %s", i, r.out.p);
        cr_expect_str_eq(jstr(l, "done_reason"), cases[i].reason, "case %zu", i);
        cr_expect(json_is_true(json_object_get(l, "done")));
        if (cases[i].generate) {
            cr_expect_str_eq(jstr(l, "response"), "", "case %zu", i);
        } else {
            json_t *m = json_object_get(l, "message");
            cr_expect_str_eq(jstr(m, "role"), "assistant", "case %zu", i);
            cr_expect_str_eq(jstr(m, "content"), "", "case %zu", i);
        }
        json_decref(l);
        render_end(&r);
    }
}

Test(ollama_codec_render, stream_error_line)
{
    struct render r;
    char *lines[8];
    struct sb_event e = {.type = SB_EV_ERROR};

    render_begin(&r, SB_REQ_CHAT, true);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("par")), 0);
    e.error.code = SB_EBACKEND;
    e.error.http_status = 502;
    e.error.message = SB_STR_LIT("upstream went \"away\"");
    cr_assert_eq(emit(&r, e), 0);
    cr_expect_eq(emit(&r, ev_text("late")), SB_ESTATE);
    size_t n = lines_split(r.out.p, lines, 8);
    cr_assert_eq(n, 2);
    cr_expect_str_eq(lines[1], "{\"error\":\"upstream went \\\"away\\\"\"}");
    cr_expect(strstr(r.out.p, "\"done\":true") == NULL);
    lines_free(lines, n);
    render_end(&r);
}

Test(ollama_codec_render, long_model_names_render)
{
    struct render r;
    char *name = malloc(10001);

    cr_assert_not_null(name);
    memset(name, '"', 10000);
    name[10000] = '\0';
    render_begin(&r, SB_REQ_CHAT, false);
    r.req.model = sb_str_c(name);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);
    json_t *d = load(r.out.p);
    cr_expect_str_eq(jstr(d, "model"), name);
    json_decref(d);
    render_end(&r);
    free(name);
}

Test(ollama_codec_render, events_out_of_order_are_refused)
{
    struct render r;

    render_begin(&r, SB_REQ_CHAT, true);
    render_ready(&r);
    cr_expect_eq(emit(&r, ev_text("early")), SB_ESTATE);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_expect_eq(emit(&r, ev_start()), SB_ESTATE);
    cr_expect_eq(emit(&r, ev_tool(128, "c", "f", "{}")), SB_ETOOBIG, "128 calls at most");
    render_end(&r);
}

Test(ollama_codec_render, embeddings_in_input_order)
{
    struct render r;
    static const float v0[] = {0.25f, -1.5f, 3e-8f};
    static const float v1[] = {1.0f, NAN, 2.0f};

    render_begin(&r, SB_REQ_EMBED, false);
    r.inputs[0] = SB_STR_LIT("a");
    r.inputs[1] = SB_STR_LIT("b");
    r.req.inputs = r.inputs;
    r.req.n_inputs = 2;
    r.req.model = SB_STR_LIT("all-minilm");
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_embedding(1, v1, 3)), 0);
    cr_expect_eq(emit(&r, ev_embedding(2, v1, 3)), SB_EINVAL, "no third input");
    render_end(&r);

    render_begin(&r, SB_REQ_EMBED, false);
    r.inputs[0] = SB_STR_LIT("a");
    r.inputs[1] = SB_STR_LIT("b");
    r.req.inputs = r.inputs;
    r.req.n_inputs = 2;
    r.req.model = SB_STR_LIT("all-minilm");
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_embedding(1, v1, 3)), 0);
    cr_assert_eq(emit(&r, ev_embedding(0, v0, 3)), 0);
    cr_assert_eq(emit(&r, ev_usage(4, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP)), 0);
    json_t *d = load(r.out.p);
    cr_expect_str_eq(jstr(d, "model"), "all-minilm");
    json_t *e = json_object_get(d, "embeddings");
    cr_assert_eq(json_array_size(e), 2);
    for (size_t i = 0; i < 3; i++)
        cr_expect_float_eq(json_number_value(json_array_get(json_array_get(e, 0), i)), v0[i],
                           1e-12);
    cr_expect_eq(json_number_value(json_array_get(json_array_get(e, 1), 1)), 0.0, "NaN is 0");
    cr_expect_eq(jint(d, "prompt_eval_count"), 4);
    cr_expect_geq(jint(d, "total_duration"), jint(d, "load_duration"));
    json_decref(d);
    render_end(&r);
}

Test(ollama_codec_render, embeddings_missing_or_repeated_fail)
{
    struct render r;
    static const float v[] = {1.0f};

    render_begin(&r, SB_REQ_EMBED, false);
    r.inputs[0] = SB_STR_LIT("a");
    r.inputs[1] = SB_STR_LIT("b");
    r.req.inputs = r.inputs;
    r.req.n_inputs = 2;
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_embedding(0, v, 1)), 0);
    cr_expect_eq(emit(&r, ev_embedding(0, v, 1)), SB_ESTATE, "a second vector for one input");
    render_end(&r);

    render_begin(&r, SB_REQ_EMBED, false);
    r.inputs[0] = SB_STR_LIT("a");
    r.inputs[1] = SB_STR_LIT("b");
    r.req.inputs = r.inputs;
    r.req.n_inputs = 2;
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_embedding(0, v, 1)), 0);
    cr_expect_eq(emit(&r, ev_finish(SB_FINISH_STOP)), SB_ESTATE, "input 1 got no vector");
    cr_expect_eq(r.out.len, 0);
    render_end(&r);
}

Test(ollama_codec_render, deinit_without_finish_frees_everything)
{
    struct render r;
    static const float v[] = {1.0f};

    render_begin(&r, SB_REQ_CHAT, false);
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_text("partial")), 0);
    cr_assert_eq(emit(&r, ev_tool(2, "c", "f", "{")), 0);
    render_end(&r);

    render_begin(&r, SB_REQ_EMBED, false);
    r.inputs[0] = SB_STR_LIT("a");
    r.req.inputs = r.inputs;
    r.req.n_inputs = 1;
    render_ready(&r);
    cr_assert_eq(emit(&r, ev_start()), 0);
    cr_assert_eq(emit(&r, ev_embedding(0, v, 1)), 0);
    render_end(&r);
}

/* =============================================================================================
 * The model endpoints
 * =========================================================================================== */

static const struct sb_backend_info infos[] = {
    {.name = "llama3.2",
     .kind = "local",
     .n_ctx = 8192,
     .ready = true,
     .loaded = true,
     .created = 1700000000,
     .size = 1321098329,
     .size_vram = 1000,
     .n_params = 1235814400,
     .family = "llama",
     .quantization = "Q8_0",
     .digest = "abc123"},
    {.name = "nomic", .kind = "local", .ready = false, .embeddings = true, .n_params = 137000000},
    {.name = "gpt-4o", .kind = "openai", .ready = true, .expires_at = 1800000000},
    /* Ready to load on demand, but not loaded: /api/ps leaves it out, as Ollama would. */
    {.name = "lazy", .kind = "local", .ready = true, .loaded = false},
};

Test(ollama_codec_render, tags)
{
    struct sb_buf out;

    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_ollama_codec.write_models(infos, 3, &out), 0);
    json_t *d = load(out.p);
    json_t *models = json_object_get(d, "models");
    cr_assert_eq(json_array_size(models), 3, "tags lists every model, loaded or not");
    json_t *m = json_array_get(models, 0);
    cr_expect_str_eq(jstr(m, "name"), "llama3.2");
    cr_expect_str_eq(jstr(m, "model"), "llama3.2");
    cr_expect_str_eq(jstr(m, "modified_at"), "2023-11-14T22:13:20Z");
    cr_expect_eq(jint(m, "size"), 1321098329);
    cr_expect_str_eq(jstr(m, "digest"), "abc123");
    json_t *det = json_object_get(m, "details");
    cr_expect_str_eq(jstr(det, "format"), "gguf");
    cr_expect_str_eq(jstr(det, "family"), "llama");
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(det, "families"), 0)),
                     "llama");
    cr_expect_str_eq(jstr(det, "parameter_size"), "1.2B");
    cr_expect_str_eq(jstr(det, "quantization_level"), "Q8_0");
    det = json_object_get(json_array_get(models, 1), "details");
    cr_expect_str_eq(jstr(det, "parameter_size"), "137M");
    cr_expect(json_is_null(json_object_get(det, "families")));
    cr_expect_str_eq(jstr(det, "family"), "", "unknown is empty, as Ollama leaves it");
    cr_expect_str_eq(jstr(json_object_get(json_array_get(models, 2), "details"), "format"), "");
    json_decref(d);

    sb_buf_reset(&out);
    cr_assert_eq(sb_ollama_codec.write_models(NULL, 0, &out), 0);
    cr_expect_str_eq(out.p, "{\"models\":[]}");
    sb_buf_free(&out);
}

Test(ollama_codec_render, ps_lists_loaded_models)
{
    struct sb_buf out;

    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_ollama_write_ps(infos, SB_ARRAY_LEN(infos), &out), 0);
    json_t *d = load(out.p);
    json_t *models = json_object_get(d, "models");
    cr_assert_eq(json_array_size(models), 2, "loaded local models and ready remote ones");
    json_t *m = json_array_get(models, 0);
    cr_expect_str_eq(jstr(m, "name"), "llama3.2");
    cr_expect_eq(jint(m, "size_vram"), 1000);
    cr_expect_eq(jint(m, "context_length"), 8192);
    cr_expect(strncmp(jstr(m, "expires_at"), "23", 2) == 0, "kept loaded: ~292 years out (%s)",
              jstr(m, "expires_at"));
    cr_expect_str_eq(jstr(json_array_get(models, 1), "expires_at"), "2027-01-15T08:00:00Z");
    json_decref(d);
    sb_buf_free(&out);
}

Test(ollama_codec_render, show_and_version)
{
    struct sb_buf out;

    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_ollama_write_show(&infos[0], &out), 0);
    json_t *d = load(out.p);
    cr_expect(strstr(jstr(d, "modelfile"), "FROM llama3.2\n") != NULL);
    cr_expect_str_eq(jstr(d, "parameters"), "num_ctx 8192");
    cr_expect_str_eq(jstr(d, "template"), "");
    cr_expect_str_eq(jstr(json_object_get(d, "details"), "family"), "llama");
    json_t *info = json_object_get(d, "model_info");
    cr_expect_str_eq(jstr(info, "general.architecture"), "llama");
    cr_expect_eq(jint(info, "general.parameter_count"), 1235814400);
    cr_expect_eq(jint(info, "llama.context_length"), 8192);
    json_t *caps = json_object_get(d, "capabilities");
    cr_assert_eq(json_array_size(caps), 2);
    cr_expect_str_eq(json_string_value(json_array_get(caps, 0)), "completion");
    cr_expect_str_eq(json_string_value(json_array_get(caps, 1)), "tools");
    json_decref(d);

    sb_buf_reset(&out);
    cr_assert_eq(sb_ollama_write_show(&infos[1], &out), 0);
    d = load(out.p);
    cr_expect_eq(json_object_size(json_object_get(d, "model_info")), 1);
    cr_expect_str_eq(json_string_value(json_array_get(json_object_get(d, "capabilities"), 0)),
                     "embedding");
    json_decref(d);

    sb_buf_reset(&out);
    cr_assert_eq(sb_ollama_write_version(&out), 0);
    cr_expect_str_eq(out.p, "{\"version\":\"0.8.0\"}");
    sb_buf_free(&out);
}

Test(ollama_codec_render, full_buffer_leaves_nothing_half_written)
{
    struct sb_buf out;

    sb_buf_init(&out, 40);
    cr_expect_eq(sb_ollama_codec.write_models(infos, 3, &out), SB_ETOOBIG);
    cr_expect_eq(out.len, 0);
    cr_expect_eq(sb_ollama_write_ps(infos, 3, &out), SB_ETOOBIG);
    cr_expect_eq(sb_ollama_write_show(&infos[0], &out), SB_ETOOBIG);
    cr_expect_eq(out.len, 0);
    sb_buf_free(&out);
}

Test(ollama_codec_render, codec_table)
{
    cr_expect_eq(sb_ollama_codec.api, SB_API_OLLAMA);
    cr_expect_str_eq(sb_ollama_codec.name, "ollama");
    cr_expect_str_eq(sb_ollama_codec.stream_content_type, "application/x-ndjson");
    cr_expect_gt(sb_ollama_codec.render_size, 0);
}

/* A parsed request renders end to end: the renderer only borrows req. */
Test(ollama_codec_render, parse_then_render, .init = setup, .fini = teardown)
{
    struct sb_buf out;
    void *st = calloc(1, sb_ollama_codec.render_size);

    cr_assert_eq(parse(SB_REQ_COMPLETION, "{\"model\":\"m\",\"prompt\":\"hi\"}"), 0);
    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_ollama_codec.render_init(st, &req), 0);
    struct sb_event ev = ev_start();
    cr_assert_eq(sb_ollama_codec.render_event(st, &ev, &out), 0);
    ev = ev_text("yo");
    cr_assert_eq(sb_ollama_codec.render_event(st, &ev, &out), 0);
    cr_expect(strstr(out.p, "\"response\":\"yo\"") != NULL, "%s", out.p);
    sb_ollama_codec.render_deinit(st);
    free(st);
    sb_buf_free(&out);
}
