/* Unit tests for the Anthropic codec: request parsing (good and bad bodies, each bad one a 400 in
 * Anthropic's error shape) and rendering of event sequences into message objects and SSE. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "helpers.h"

TestSuite(anthropic_codec_parse, .init = setup, .fini = teardown);

static int parse(const char *body)
{
    return sb_anthropic_codec.parse(SB_REQ_CHAT, arena, sb_str_c(body), &req, &err);
}

static const char *jstr(const json_t *obj, const char *key)
{
    return json_string_value(json_object_get(obj, key));
}

static long long jint(const json_t *obj, const char *key)
{
    return json_integer_value(json_object_get(obj, key));
}

#define MSG           "\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]"
#define BODY(extra)   "{\"model\":\"m\",\"max_tokens\":10," MSG extra "}"
#define MSGS(content) "{\"model\":\"m\",\"max_tokens\":10,\"messages\":[" content "]}"

/* =============================================================================================
 * Parsing: good requests
 * =========================================================================================== */

Test(anthropic_codec_parse, minimal)
{
    cr_assert_eq(parse(BODY("")), 0, "%s", err.message);
    cr_expect_eq(req.api, SB_API_ANTHROPIC);
    cr_expect_eq(req.kind, SB_REQ_CHAT);
    cr_expect(eq(req.model, "m"));
    cr_expect_eq(req.max_tokens, 10);
    cr_assert_eq(req.n_messages, 1);
    cr_expect_eq(req.messages[0].role, SB_ROLE_USER);
    cr_assert_eq(req.messages[0].n_parts, 1);
    cr_expect(eq(req.messages[0].parts[0].text, "x"));
    cr_expect(!req.stream);
    cr_expect_eq(req.sampling.temperature, SB_UNSET_F);
    cr_expect_eq(req.sampling.top_k, SB_UNSET_I);
    cr_expect_eq(req.tool_choice, SB_TOOL_CHOICE_AUTO);
    cr_expect(req.parallel_tool_calls);
    cr_expect(!req.json_mode);
}

Test(anthropic_codec_parse, all_fields)
{
    const char *body =
        "{\"model\":\"claude-x\",\"max_tokens\":1024,\"system\":\"be brief\",\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\",\"cache_control\":"
        "{\"type\":\"ephemeral\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\","
        "\"data\":\"QUJD\"}},"
        "{\"type\":\"image\",\"source\":{\"type\":\"url\",\"url\":\"https://x.test/a.png\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"hmm\","
        "\"signature\":\"s\"},{\"type\":\"text\",\"text\":\"checking\"},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":"
        "{\"city\":\"Paris\"}},"
        "{\"type\":\"tool_use\",\"id\":\"toolu_2\",\"name\":\"get_time\",\"input\":{}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":\"sunny\"},"
        "{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_2\",\"is_error\":true,\"content\":["
        "{\"type\":\"text\",\"text\":\"clock broke\"},{\"type\":\"image\",\"source\":{\"type\":"
        "\"url\",\"url\":\"https://x.test/c.png\"}}]},"
        "{\"type\":\"text\",\"text\":\"and then?\"}]}],"
        "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather\",\"input_schema\":"
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}},"
        "{\"type\":\"custom\",\"name\":\"get_time\",\"input_schema\":{\"type\":\"object\"}}],"
        "\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\","
        "\"disable_parallel_tool_use\":true},"
        "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"stop_sequences\":[\"\\n\\nHuman:\","
        "\"END\"],\"stream\":true,\"metadata\":{\"user_id\":\"u-1\"},"
        "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2048},"
        "\"output_config\":{\"format\":{\"type\":\"json_schema\",\"schema\":{}}},"
        "\"service_tier\":\"auto\",\"some_future_field\":[1]}";

    cr_assert_eq(parse(body), 0, "%s (%s)", err.message, err.param);
    cr_expect(eq(req.model, "claude-x"));
    cr_expect_eq(req.max_tokens, 1024);
    cr_assert_eq(req.n_messages, 6);

    cr_expect_eq(req.messages[0].role, SB_ROLE_SYSTEM);
    cr_expect(eq(req.messages[0].parts[0].text, "be brief"));

    const struct sb_message *u = &req.messages[1];
    cr_expect_eq(u->role, SB_ROLE_USER);
    cr_assert_eq(u->n_parts, 3);
    cr_expect(eq(u->parts[0].text, "look"));
    cr_expect_eq(u->parts[1].type, SB_PART_IMAGE);
    cr_expect(eq(u->parts[1].media_type, "image/png"));
    cr_expect(eq(u->parts[1].data, "QUJD"));
    cr_expect_eq(u->parts[2].type, SB_PART_IMAGE);
    cr_expect(eq(u->parts[2].url, "https://x.test/a.png"));

    const struct sb_message *a = &req.messages[2];
    cr_expect_eq(a->role, SB_ROLE_ASSISTANT);
    cr_assert_eq(a->n_parts, 1, "the thinking block is dropped");
    cr_expect(eq(a->parts[0].text, "checking"));
    cr_assert_eq(a->n_tool_calls, 2);
    cr_expect(eq(a->tool_calls[0].id, "toolu_1"));
    cr_expect(eq(a->tool_calls[0].name, "get_weather"));
    cr_expect(eq(a->tool_calls[0].arguments, "{\"city\":\"Paris\"}"));
    cr_expect(eq(a->tool_calls[1].arguments, "{}"));

    const struct sb_message *t1 = &req.messages[3];
    cr_expect_eq(t1->role, SB_ROLE_TOOL);
    cr_expect(eq(t1->tool_call_id, "toolu_1"));
    cr_expect(eq(t1->name, "get_weather"), "named after the call it answers");
    cr_expect(!t1->is_error);
    cr_assert_eq(t1->n_parts, 1);
    cr_expect(eq(t1->parts[0].text, "sunny"));

    const struct sb_message *t2 = &req.messages[4];
    cr_expect_eq(t2->role, SB_ROLE_TOOL);
    cr_expect(eq(t2->tool_call_id, "toolu_2"));
    cr_expect(eq(t2->name, "get_time"));
    cr_expect(t2->is_error);
    cr_assert_eq(t2->n_parts, 2);
    cr_expect(eq(t2->parts[0].text, "clock broke"));
    cr_expect(eq(t2->parts[1].url, "https://x.test/c.png"));

    cr_expect_eq(req.messages[5].role, SB_ROLE_USER, "text after the results keeps its place");
    cr_expect(eq(req.messages[5].parts[0].text, "and then?"));

    cr_assert_eq(req.n_tools, 2);
    cr_expect(eq(req.tools[0].name, "get_weather"));
    cr_expect(eq(req.tools[0].description, "Weather"));
    cr_expect(eq(req.tools[0].parameters,
                 "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}}}"));
    cr_expect(eq(req.tools[1].name, "get_time"));
    cr_expect_eq(req.tool_choice, SB_TOOL_CHOICE_NAMED);
    cr_expect(eq(req.tool_choice_name, "get_time"));
    cr_expect(!req.parallel_tool_calls);

    cr_expect_float_eq(req.sampling.temperature, 0.5f, 1e-6);
    cr_expect_float_eq(req.sampling.top_p, 0.9f, 1e-6);
    cr_expect_eq(req.sampling.top_k, 40);
    cr_assert_eq(req.n_stop, 2);
    cr_expect(eq(req.stop[0], "\n\nHuman:"));
    cr_expect(eq(req.stop[1], "END"));
    cr_expect(req.stream);
    cr_expect(eq(req.user, "u-1"));
    cr_expect(req.json_mode);
}

Test(anthropic_codec_parse, system_blocks_and_system_role)
{
    cr_assert_eq(parse("{\"model\":\"m\",\"max_tokens\":1,\"system\":[{\"type\":\"text\","
                       "\"text\":\"one\"},{\"type\":\"text\",\"text\":\"two\"}],\"messages\":["
                       "{\"role\":\"system\",\"content\":\"three\"},"
                       "{\"role\":\"user\",\"content\":\"x\"}]}"),
                 0, "%s", err.message);
    cr_assert_eq(req.n_messages, 3);
    cr_expect_eq(req.messages[0].role, SB_ROLE_SYSTEM);
    cr_assert_eq(req.messages[0].n_parts, 2);
    cr_expect(eq(req.messages[0].parts[1].text, "two"));
    cr_expect_eq(req.messages[1].role, SB_ROLE_SYSTEM);
    cr_expect(eq(req.messages[1].parts[0].text, "three"));

    cr_assert_eq(parse("{\"model\":\"m\",\"max_tokens\":1,\"system\":\"\"," MSG "}"), 0);
    cr_expect_eq(req.n_messages, 1, "an empty system prompt adds nothing");
}

Test(anthropic_codec_parse, tool_choice_types)
{
    static const struct {
        const char *value;
        enum sb_tool_choice want;
    } cases[] = {
        {"{\"type\":\"auto\"}", SB_TOOL_CHOICE_AUTO},
        {"{\"type\":\"any\"}", SB_TOOL_CHOICE_REQUIRED},
        {"{\"type\":\"none\"}", SB_TOOL_CHOICE_NONE},
    };
    char body[512];

    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        snprintf(body, sizeof(body),
                 BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\"}}],"
                      "\"tool_choice\":%s"),
                 cases[i].value);
        cr_assert_eq(parse(body), 0, "%s: %s", cases[i].value, err.message);
        cr_expect_eq(req.tool_choice, cases[i].want, "%s", cases[i].value);
        cr_expect(req.parallel_tool_calls);
    }
}

Test(anthropic_codec_parse, tool_result_without_content_and_thinking_only_turn)
{
    cr_assert_eq(parse(MSGS("{\"role\":\"user\",\"content\":\"q\"},"
                            "{\"role\":\"assistant\",\"content\":[{\"type\":\"redacted_thinking\","
                            "\"data\":\"x\"}]},"
                            "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
                            "\"tool_use_id\":\"t\"}]}")),
                 0, "%s", err.message);
    cr_assert_eq(req.n_messages, 2, "a turn of thinking alone is dropped");
    cr_expect_eq(req.messages[1].role, SB_ROLE_TOOL);
    cr_assert_eq(req.messages[1].n_parts, 1);
    cr_expect(eq(req.messages[1].parts[0].text, ""));
    cr_expect_eq(req.messages[1].name.len, 0, "no call to take a name from");
}

Test(anthropic_codec_parse, nulls_mean_not_given)
{
    cr_assert_eq(parse(BODY(",\"system\":null,\"temperature\":null,\"tools\":null,"
                            "\"tool_choice\":null,\"stop_sequences\":null,\"stream\":null,"
                            "\"metadata\":null,\"thinking\":null,\"top_k\":null")),
                 0, "%s", err.message);
    cr_expect_eq(req.sampling.temperature, SB_UNSET_F);
    cr_expect_eq(req.n_stop, 0);
}

/* =============================================================================================
 * Parsing: bad requests. Every one is a 400 naming the field.
 * =========================================================================================== */

struct bad_case {
    const char *body;
    const char *param;   /* expected err.param */
    const char *message; /* a substring of err.message */
};

static const struct bad_case bad_cases[] = {
    /* the body */
    {"", "", "We could not parse the JSON body"},
    {"[1]", "", "must be a JSON object"},
    {"{\"model\":\"a\",\"model\":\"b\"}", "", "duplicate"},
    /* model and max_tokens */
    {"{\"max_tokens\":1," MSG "}", "model", "Missing required parameter: 'model'."},
    {"{\"model\":\"\",\"max_tokens\":1," MSG "}", "model", "empty string"},
    {"{\"model\":\"m\"," MSG "}", "max_tokens", "Missing required parameter: 'max_tokens'."},
    {"{\"model\":\"m\",\"max_tokens\":null," MSG "}", "max_tokens", "Missing required"},
    {"{\"model\":\"m\",\"max_tokens\":0," MSG "}", "max_tokens", "Expected a value >= 1"},
    {"{\"model\":\"m\",\"max_tokens\":\"5\"," MSG "}", "max_tokens", "expected an integer"},
    /* messages */
    {"{\"model\":\"m\",\"max_tokens\":1}", "messages", "Missing required parameter"},
    {"{\"model\":\"m\",\"max_tokens\":1,\"messages\":[]}", "messages", "empty array"},
    {MSGS("\"hi\""), "messages[0]", "expected an object, but got a string"},
    {MSGS("{\"role\":\"tool\",\"content\":\"x\"}"), "messages[0].role",
     "Supported values are: 'user', 'assistant', and 'system'."},
    {MSGS("{\"role\":\"user\"}"), "messages[0].content", "Missing required"},
    {MSGS("{\"role\":\"user\",\"content\":5}"), "messages[0].content",
     "expected a string or an array of content blocks"},
    {MSGS("{\"role\":\"user\",\"content\":[]}"), "messages[0].content", "empty array"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"text\":\"x\"}]}"), "messages[0].content[0].type",
     "Missing required"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"document\"}]}"),
     "messages[0].content[0].type", "'document'. Supported values are: 'text', 'image'"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"text\"}]}"), "messages[0].content[0].text",
     "Missing required"},
    {MSGS("{\"role\":\"assistant\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"url\","
          "\"url\":\"u\"}}]}"),
     "messages[0].content[0].type", "not allowed in assistant messages"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\","
          "\"input\":{}}]}"),
     "messages[0].content[0].type", "not allowed in user messages"},
    {MSGS("{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
          "\"t\"}]}"),
     "messages[0].content[0].type", "not allowed in assistant messages"},
    {MSGS("{\"role\":\"system\",\"content\":[{\"type\":\"image\",\"source\":{}}]}"),
     "messages[0].content[0].type", "not allowed in system messages"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}"),
     "messages[0].content[0].source", "Missing required"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"file\","
          "\"file_id\":\"f\"}}]}"),
     "messages[0].content[0].source.type", "Supported values are: 'base64' and 'url'."},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"image\",\"source\":{\"type\":\"base64\","
          "\"media_type\":\"image/png\"}}]}"),
     "messages[0].content[0].source.data", "Missing required"},
    {MSGS("{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"name\":\"f\"}]}"),
     "messages[0].content[0].id", "Missing required"},
    {MSGS("{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
          "\"f\",\"input\":[]}]}"),
     "messages[0].content[0].input", "expected an object, but got an array"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\"}]}"),
     "messages[0].content[0].tool_use_id", "Missing required"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
          "\"content\":5}]}"),
     "messages[0].content[0].content", "expected a string or an array"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
          "\"is_error\":\"yes\"}]}"),
     "messages[0].content[0].is_error", "expected a boolean"},
    {MSGS("{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"t\","
          "\"content\":[{\"type\":\"tool_use\"}]}]}"),
     "messages[0].content[0].content[0].type", "Supported values are: 'text' and 'image'."},
    {MSGS("{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":[{\"type\":"
          "\"text\",\"text\":\"b\"},{\"type\":\"tool_result\",\"tool_use_id\":\"t\"},{\"type\":"
          "\"text\",\"text\":7}]}"),
     "messages[1].content[2].text", "expected a string"},
    /* system */
    {BODY(",\"system\":5"), "system", "expected a string or an array of text blocks"},
    {BODY(",\"system\":[{\"type\":\"image\"}]"), "system[0].type", "Supported values are: 'text'."},
    /* sampling */
    {BODY(",\"temperature\":1.5"), "temperature", "Expected a value <= 1"},
    {BODY(",\"top_p\":0"), "top_p", "value > 0"},
    {BODY(",\"top_k\":-1"), "top_k", ">= 0"},
    {BODY(",\"stop_sequences\":\"x\""), "stop_sequences", "expected an array"},
    {BODY(",\"stop_sequences\":[\"a\",\"\"]"), "stop_sequences[1]", "empty string"},
    {BODY(",\"stop_sequences\":[\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\",\"10\","
          "\"11\",\"12\",\"13\",\"14\",\"15\",\"16\",\"17\"]"),
     "stop_sequences", "at most 16 stop sequences, but got 17"},
    /* tools */
    {BODY(",\"tools\":{}"), "tools", "expected an array"},
    {BODY(",\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]"),
     "tools[0].type", "custom tools only"},
    {BODY(",\"tools\":[{\"name\":\"a b\",\"input_schema\":{}}]"), "tools[0].name",
     "does not match pattern"},
    {BODY(",\"tools\":[{\"name\":\"f\"}]"), "tools[0].input_schema", "Missing required"},
    {BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":\"{}\"}]"), "tools[0].input_schema",
     "expected an object"},
    {BODY(",\"tool_choice\":{\"type\":\"any\"}"), "tool_choice", "requires 'tools'"},
    {BODY(",\"tool_choice\":\"auto\""), "tool_choice", "expected an object"},
    {BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":{\"type\":"
          "\"maybe\"}"),
     "tool_choice.type", "'auto', 'any', 'tool', and 'none'"},
    {BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":{\"type\":"
          "\"tool\"}"),
     "tool_choice.name", "Missing required"},
    {BODY(",\"tools\":[{\"name\":\"f\",\"input_schema\":{}}],\"tool_choice\":{\"type\":"
          "\"tool\",\"name\":\"g\"}"),
     "tool_choice", "no tool named 'g'"},
    /* the rest */
    {BODY(",\"stream\":\"yes\""), "stream", "expected a boolean"},
    {BODY(",\"metadata\":{\"user_id\":5}"), "metadata.user_id", "expected a string"},
    {BODY(",\"thinking\":{\"type\":\"on\"}"), "thinking.type",
     "'enabled', 'disabled', and 'adaptive'"},
    {BODY(",\"output_config\":{\"format\":{\"type\":\"xml\"}}"), "output_config.format.type",
     "'json_schema'"},
    {BODY(",\"mcp_servers\":[{\"type\":\"url\",\"url\":\"https://x\"}]"), "mcp_servers",
     "MCP servers are not supported"},
};

Test(anthropic_codec_parse, bad_requests_are_400_with_param)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        memset(&err, 0, sizeof(err));
        int rc = parse(c->body);
        cr_expect_eq(rc, SB_EINVAL, "case %zu (%s): rc %d", i, c->body, rc);
        cr_expect_eq(err.http_status, 400, "case %zu", i);
        cr_expect_str_eq(err.param, c->param, "case %zu (%s)", i, c->body);
        cr_expect(strstr(err.message, c->message) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                  i, err.message, c->message);
    }
}

Test(anthropic_codec_parse, bad_request_renders_in_anthropic_shape)
{
    struct sb_buf out;

    cr_assert_eq(parse("{\"model\":\"m\"," MSG "}"), SB_EINVAL);
    sb_buf_init(&out, 4096);
    cr_assert_eq(sb_anthropic_codec.write_error(&err, &out), 0);
    cr_expect_str_eq(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\","
                            "\"message\":\"Missing required parameter: 'max_tokens'.\"}}");
    sb_buf_free(&out);
}

Test(anthropic_codec_parse, other_endpoints_are_404)
{
    cr_expect_eq(sb_anthropic_codec.parse(SB_REQ_COMPLETION, arena, sb_str_c(BODY("")), &req, &err),
                 SB_EINVAL);
    cr_expect_eq(err.http_status, 404);
}

/* head + n copies of unit + tail, malloc'd. */
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

Test(anthropic_codec_parse, arena_limit_is_413)
{
    /* 20,000 turns need more than the 1 MiB test arena. */
    char *body = repeat("{\"model\":\"m\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                        "\"content\":\"x\"}",
                        ",{\"role\":\"user\",\"content\":\"x\"}", 20000, "]}");
    cr_expect_eq(parse(body), SB_ENOMEM);
    cr_expect_eq(err.http_status, 413);
    free(body);
}

Test(anthropic_codec_parse, deep_nesting_is_a_clean_400)
{
    char *body = repeat("{\"model\":\"m\",\"max_tokens\":1," MSG ",\"x\":", "[", 100000, "");
    cr_expect_eq(parse(body), SB_EINVAL);
    cr_expect_eq(err.http_status, 400);
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

static void render_begin(struct render *r, bool stream)
{
    sb_request_init(&r->req);
    r->req.api = SB_API_ANTHROPIC;
    r->req.stream = stream;
    r->req.model = SB_STR_LIT("alias");
    r->state = calloc(1, sb_anthropic_codec.render_size);
    cr_assert_not_null(r->state);
    sb_buf_init(&r->out, 1 << 20);
    cr_assert_eq(sb_anthropic_codec.render_init(r->state, &r->req), 0);
}

static void render_end(struct render *r)
{
    sb_anthropic_codec.render_deinit(r->state);
    free(r->state);
    sb_buf_free(&r->out);
}

static int emit(struct render *r, struct sb_event ev)
{
    return sb_anthropic_codec.render_event(r->state, &ev, &r->out);
}

static struct sb_event ev_start(const char *model)
{
    return (struct sb_event){.type = SB_EV_START, .start.model = sb_str_c(model)};
}

static struct sb_event ev_usage(int64_t prompt, int64_t completion, int64_t cached, int64_t write)
{
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = prompt;
    ev.usage.completion_tokens = completion;
    ev.usage.cached_prompt_tokens = cached;
    ev.usage.cache_write_tokens = write;
    return ev;
}

static struct sb_event ev_finish(enum sb_finish_reason reason, const char *stop)
{
    struct sb_event ev = {.type = SB_EV_FINISH};
    ev.finish.reason = reason;
    ev.finish.stop_sequence = sb_str_c(stop);
    return ev;
}

static struct sb_event ev_error(int code, int status, const char *message)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = status;
    ev.error.message = sb_str_c(message);
    return ev;
}

/* One SSE event: its name and its data (a malloc'd copy). */
struct sse {
    char name[40];
    char *data;
};

/* Splits output into "event: NAME\ndata: JSON\n\n" events, checking the framing. */
static size_t sse_split(const char *s, struct sse *out, size_t max)
{
    size_t n = 0;

    while (*s) {
        cr_assert(strncmp(s, "event: ", 7) == 0, "event %zu lacks 'event: ': %.60s", n, s);
        s += 7;
        const char *nl = strchr(s, '\n');
        cr_assert_not_null(nl);
        cr_assert_lt(n, max);
        cr_assert_lt((size_t)(nl - s), sizeof(out[n].name));
        memcpy(out[n].name, s, (size_t)(nl - s));
        out[n].name[nl - s] = '\0';
        s = nl + 1;
        cr_assert(strncmp(s, "data: ", 6) == 0, "event %zu lacks 'data: '", n);
        s += 6;
        const char *end = strstr(s, "\n\n");
        cr_assert_not_null(end, "event %zu is not ended by a blank line", n);
        cr_assert(memchr(s, '\n', (size_t)(end - s)) == NULL, "newline inside event %zu", n);
        out[n].data = strndup(s, (size_t)(end - s));
        n++;
        s = end + 2;
    }
    return n;
}

static void sse_free(struct sse *ev, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(ev[i].data);
}

Test(anthropic_codec_render, stream_framing_is_exact)
{
    struct render r;
    char expect[4096];

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("")), 0);
    cr_assert_eq(emit(&r, ev_text("Hi")), 0);
    cr_assert_eq(emit(&r, ev_usage(12, 3, 2, 1)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP, "")), 0);

    /* The id is random: take it from the output, then compare every byte. */
    const char *idp = strstr(r.out.p, "\"id\":\"msg_");
    cr_assert_not_null(idp);
    char id[64];
    snprintf(id, sizeof(id), "%.28s", idp + 6);
    cr_expect_eq(strlen(id), 4 + 24);
    snprintf(expect, sizeof(expect),
             "event: message_start\n"
             "data: {\"type\":\"message_start\",\"message\":{\"id\":\"%s\",\"type\":\"message\","
             "\"role\":\"assistant\",\"model\":\"alias\",\"content\":[],\"stop_reason\":null,"
             "\"stop_sequence\":null,\"usage\":{\"input_tokens\":0,"
             "\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
             "\"output_tokens\":0}}}\n\n"
             "event: content_block_start\n"
             "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
             "\"text\",\"text\":\"\"}}\n\n"
             "event: content_block_delta\n"
             "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
             "\"text_delta\",\"text\":\"Hi\"}}\n\n"
             "event: content_block_stop\n"
             "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n"
             "event: message_delta\n"
             "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
             "\"stop_sequence\":null},\"usage\":{\"input_tokens\":9,"
             "\"cache_creation_input_tokens\":1,\"cache_read_input_tokens\":2,"
             "\"output_tokens\":3}}\n\n"
             "event: message_stop\n"
             "data: {\"type\":\"message_stop\"}\n\n",
             id);
    cr_expect_str_eq(r.out.p, expect);
    render_end(&r);
}

Test(anthropic_codec_render, stream_tool_calls_as_input_json_deltas)
{
    struct render r;
    struct sse ev[32];

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("served")), 0);
    cr_assert_eq(emit(&r, ev_text("Let me check. \"q\"\n")), 0);
    cr_assert_eq(emit(&r, ev_text("")), 0); /* nothing to send */
    cr_assert_eq(emit(&r, ev_tool(0, "call_a", "get_weather", "{\"ci")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "", "", "ty\":\"Paris\"}")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "", "get_time", "")), 0);
    cr_assert_eq(emit(&r, ev_usage(10, 5, 0, 0)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP, "")), 0);

    size_t n = sse_split(r.out.p, ev, 32);
    static const char *const names[] = {
        "message_start",       "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_stop",  "message_delta",       "message_stop",
    };
    cr_assert_eq(n, SB_ARRAY_LEN(names), "%s", r.out.p);
    for (size_t i = 0; i < n; i++) {
        json_t *d = load(ev[i].data);
        cr_expect_str_eq(ev[i].name, names[i], "event %zu", i);
        cr_expect_str_eq(jstr(d, "type"), names[i], "event %zu: data.type matches the name", i);
        json_decref(d);
    }
    json_t *d = load(ev[0].data);
    cr_expect_str_eq(jstr(json_object_get(d, "message"), "model"), "served");
    json_decref(d);

    d = load(ev[4].data);
    json_t *cb = json_object_get(d, "content_block");
    cr_expect_eq(jint(d, "index"), 1);
    cr_expect_str_eq(jstr(cb, "type"), "tool_use");
    cr_expect_str_eq(jstr(cb, "id"), "call_a");
    cr_expect_str_eq(jstr(cb, "name"), "get_weather");
    cr_expect(json_is_object(json_object_get(cb, "input")));
    cr_expect_eq(json_object_size(json_object_get(cb, "input")), 0);
    json_decref(d);

    /* The partial_json pieces concatenate to the call's arguments. */
    char args[128];
    size_t used = 0;
    for (size_t i = 5; i <= 6; i++) {
        d = load(ev[i].data);
        json_t *delta = json_object_get(d, "delta");
        cr_expect_eq(jint(d, "index"), 1);
        cr_expect_str_eq(jstr(delta, "type"), "input_json_delta");
        used +=
            (size_t)snprintf(args + used, sizeof(args) - used, "%s", jstr(delta, "partial_json"));
        json_decref(d);
    }
    cr_expect_str_eq(args, "{\"city\":\"Paris\"}");

    d = load(ev[8].data);
    cb = json_object_get(d, "content_block");
    cr_expect_eq(jint(d, "index"), 2);
    cr_expect(strncmp(jstr(cb, "id"), "toolu_", 6) == 0, "a call without an id gets one");
    cr_expect_str_eq(jstr(cb, "name"), "get_time");
    json_decref(d);

    d = load(ev[10].data);
    cr_expect_str_eq(jstr(json_object_get(d, "delta"), "stop_reason"), "tool_use",
                     "a turn that called tools stops with tool_use");
    cr_expect_eq(jint(json_object_get(d, "usage"), "output_tokens"), 5);
    cr_expect_eq(jint(json_object_get(d, "usage"), "input_tokens"), 10);
    json_decref(d);
    sse_free(ev, n);
    render_end(&r);
}

Test(anthropic_codec_render, stream_text_after_tool_opens_a_new_block)
{
    struct render r;
    struct sse ev[16];

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "t", "f", "{}")), 0);
    cr_assert_eq(emit(&r, ev_text("after")), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_TOOL_CALLS, "")), 0);
    size_t n = sse_split(r.out.p, ev, 16);
    cr_assert_eq(n, 9, "%s", r.out.p);
    json_t *d = load(ev[4].data);
    cr_expect_str_eq(ev[4].name, "content_block_start");
    cr_expect_eq(jint(d, "index"), 1);
    cr_expect_str_eq(jstr(json_object_get(d, "content_block"), "type"), "text");
    json_decref(d);
    sse_free(ev, n);
    render_end(&r);
}

Test(anthropic_codec_render, stream_refuses_a_delta_for_a_closed_call)
{
    struct render r;

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "a", "f", "{")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "b", "g", "{}")), 0);
    size_t len = r.out.len;
    cr_expect_eq(emit(&r, ev_tool(0, "", "", "}")), SB_EINVAL);
    cr_expect_eq(r.out.len, len, "nothing half-written");
    cr_expect_eq(emit(&r, ev_finish(SB_FINISH_STOP, "")), SB_ESTATE, "a failed stream stays so");
    render_end(&r);
}

Test(anthropic_codec_render, stream_stop_sequence_and_max_tokens)
{
    struct render r;
    struct sse ev[8];

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP, "END")), 0);
    size_t n = sse_split(r.out.p, ev, 8);
    cr_assert_eq(n, 3, "no content blocks for an empty answer");
    json_t *d = load(ev[1].data);
    cr_expect_str_eq(jstr(json_object_get(d, "delta"), "stop_reason"), "stop_sequence");
    cr_expect_str_eq(jstr(json_object_get(d, "delta"), "stop_sequence"), "END");
    json_decref(d);
    sse_free(ev, n);
    render_end(&r);

    render_begin(&r, true);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_LENGTH, "")), 0);
    cr_expect(strstr(r.out.p, "\"stop_reason\":\"max_tokens\",\"stop_sequence\":null") != NULL);
    render_end(&r);
}

Test(anthropic_codec_render, stream_error_event_mid_stream)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {{502, "api_error"}, {503, "overloaded_error"}, {429, "rate_limit_error"}};

    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct render r;
        struct sse ev[8];

        render_begin(&r, true);
        cr_assert_eq(emit(&r, ev_start("m")), 0);
        cr_assert_eq(emit(&r, ev_text("par")), 0);
        cr_assert_eq(emit(&r, ev_error(SB_EBACKEND, cases[i].status, "upstream went away")), 0);
        cr_expect_eq(emit(&r, ev_text("late")), SB_ESTATE, "nothing follows an error");
        size_t n = sse_split(r.out.p, ev, 8);
        cr_assert_eq(n, 4);
        cr_expect_str_eq(ev[3].name, "error");
        json_t *d = load(ev[3].data);
        cr_expect_str_eq(jstr(d, "type"), "error");
        cr_expect_str_eq(jstr(json_object_get(d, "error"), "type"), cases[i].type);
        cr_expect_str_eq(jstr(json_object_get(d, "error"), "message"), "upstream went away");
        json_decref(d);
        cr_expect(strstr(r.out.p, "message_stop") == NULL);
        sse_free(ev, n);
        render_end(&r);
    }
}

Test(anthropic_codec_render, events_out_of_order_are_refused)
{
    struct render r;

    render_begin(&r, true);
    cr_expect_eq(emit(&r, ev_text("early")), SB_ESTATE);
    cr_expect_eq(r.out.len, 0);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_eq(emit(&r, ev_start("m")), SB_ESTATE);
    render_end(&r);
}

Test(anthropic_codec_render, plain_message_with_tool_use)
{
    struct render r;

    render_begin(&r, false);
    cr_assert_eq(emit(&r, ev_start("served-model")), 0);
    cr_assert_eq(emit(&r, ev_text("Checking ")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "toolu_1", "f", "{\"a\": ")), 0);
    cr_assert_eq(emit(&r, ev_tool(1, "toolu_2", "g", "not json")), 0);
    cr_assert_eq(emit(&r, ev_tool(0, "", "", "[1, 2]}")), 0); /* interleaved is fine here */
    cr_assert_eq(emit(&r, ev_tool(2, "", "h", "")), 0);
    cr_assert_eq(emit(&r, ev_text("w\xc3\xb6rld")), 0);
    cr_expect_eq(r.out.len, 0, "nothing is sent before FINISH");
    cr_assert_eq(emit(&r, ev_usage(100, 7, 60, 30)), 0);
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_TOOL_CALLS, "")), 0);

    json_t *m = load(r.out.p);
    cr_expect(strncmp(jstr(m, "id"), "msg_", 4) == 0);
    cr_expect_str_eq(jstr(m, "type"), "message");
    cr_expect_str_eq(jstr(m, "role"), "assistant");
    cr_expect_str_eq(jstr(m, "model"), "served-model");
    cr_expect_str_eq(jstr(m, "stop_reason"), "tool_use");
    cr_expect(json_is_null(json_object_get(m, "stop_sequence")));
    json_t *content = json_object_get(m, "content");
    cr_assert_eq(json_array_size(content), 4);
    json_t *b = json_array_get(content, 0);
    cr_expect_str_eq(jstr(b, "type"), "text");
    cr_expect_str_eq(jstr(b, "text"), "Checking w\xc3\xb6rld");
    b = json_array_get(content, 1);
    cr_expect_str_eq(jstr(b, "type"), "tool_use");
    cr_expect_str_eq(jstr(b, "id"), "toolu_1");
    cr_expect_str_eq(jstr(b, "name"), "f");
    json_t *input = json_object_get(b, "input");
    cr_assert(json_is_object(input), "input is a parsed object");
    cr_expect_eq(json_array_size(json_object_get(input, "a")), 2);
    b = json_array_get(content, 2);
    cr_expect_str_eq(jstr(json_object_get(b, "input"), "_raw_arguments"), "not json",
                     "arguments that are not JSON are kept as text");
    b = json_array_get(content, 3);
    cr_expect(strncmp(jstr(b, "id"), "toolu_", 6) == 0);
    cr_expect_eq(json_object_size(json_object_get(b, "input")), 0, "empty arguments are {}");
    json_t *u = json_object_get(m, "usage");
    cr_expect_eq(jint(u, "input_tokens"), 10, "prompt less cache reads and writes");
    cr_expect_eq(jint(u, "cache_read_input_tokens"), 60);
    cr_expect_eq(jint(u, "cache_creation_input_tokens"), 30);
    cr_expect_eq(jint(u, "output_tokens"), 7);
    json_decref(m);
    render_end(&r);
}

Test(anthropic_codec_render, plain_stop_reasons_and_empty_content)
{
    static const struct {
        enum sb_finish_reason reason;
        const char *stop;
        const char *want;
    } cases[] = {
        {SB_FINISH_STOP, "", "end_turn"},
        {SB_FINISH_STOP, "###", "stop_sequence"},
        {SB_FINISH_LENGTH, "", "max_tokens"},
        {SB_FINISH_CONTENT_FILTER, "", "refusal"},
    };

    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct render r;

        render_begin(&r, false);
        cr_assert_eq(emit(&r, ev_start("")), 0);
        cr_assert_eq(emit(&r, ev_finish(cases[i].reason, cases[i].stop)), 0);
        json_t *m = load(r.out.p);
        cr_expect_str_eq(jstr(m, "model"), "alias", "falls back to the requested model");
        cr_expect_str_eq(jstr(m, "stop_reason"), cases[i].want, "case %zu", i);
        cr_expect_eq(json_array_size(json_object_get(m, "content")), 0, "no empty text block");
        if (*cases[i].stop)
            cr_expect_str_eq(jstr(m, "stop_sequence"), cases[i].stop);
        json_decref(m);
        render_end(&r);
    }
}

Test(anthropic_codec_render, long_model_names_render)
{
    struct render r;
    char *name = malloc(5001);

    cr_assert_not_null(name);
    memset(name, 'm', 5000);
    name[5000] = '\0';
    render_begin(&r, false);
    r.req.model = sb_str_c(name);
    cr_assert_eq(emit(&r, ev_start(name)), 0, "a backend name too long to keep is not repeated");
    cr_assert_eq(emit(&r, ev_finish(SB_FINISH_STOP, "")), 0);
    json_t *m = load(r.out.p);
    cr_expect_eq(strlen(jstr(m, "model")), 5000, "the request's name is used instead");
    json_decref(m);
    render_end(&r);
    free(name);
}

Test(anthropic_codec_render, plain_output_is_bounded)
{
    struct render r;
    size_t big = (size_t)33 << 20;
    char *chunk = malloc(big + 1);

    cr_assert_not_null(chunk);
    memset(chunk, 'a', big);
    chunk[big] = '\0';
    render_begin(&r, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text(chunk)), 0);
    cr_expect_eq(emit(&r, ev_tool(0, "t", "f", chunk)), SB_ETOOBIG, "64 MiB in all");
    cr_expect_eq(emit(&r, ev_finish(SB_FINISH_STOP, "")), SB_ESTATE);
    cr_expect_eq(r.out.len, 0);
    free(chunk);
    render_end(&r);
}

Test(anthropic_codec_render, deinit_without_finish_frees_everything)
{
    struct render r;

    /* ASan's leak check is the assertion: the client went away mid-response. */
    render_begin(&r, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_text("partial")), 0);
    cr_assert_eq(emit(&r, ev_tool(3, "c", "f", "{")), 0);
    render_end(&r);
}

Test(anthropic_codec_render, write_error_types_by_status)
{
    static const struct {
        int status;
        const char *type;
    } cases[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {405, "invalid_request_error"},
        {413, "request_too_large"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "overloaded_error"},
        {504, "timeout_error"},
        {529, "overloaded_error"},
    };
    struct sb_api_error e;
    struct sb_buf out;

    sb_buf_init(&out, 4096);
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        sb_buf_reset(&out);
        sb_api_fail(&e, cases[i].status, "server_error", NULL, NULL, "boom \"%d\"",
                    cases[i].status);
        cr_assert_eq(sb_anthropic_codec.write_error(&e, &out), 0);
        json_t *d = load(out.p);
        cr_expect_str_eq(jstr(d, "type"), "error");
        cr_expect_str_eq(jstr(json_object_get(d, "error"), "type"), cases[i].type, "status %d",
                         cases[i].status);
        json_decref(d);
    }
    sb_buf_reset(&out);
    sb_api_fail(&e, 404, "invalid_request_error", "model_not_found", "model", "no \"x\"");
    cr_assert_eq(sb_anthropic_codec.write_error(&e, &out), 0);
    cr_expect_str_eq(out.p, "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\","
                            "\"message\":\"no \\\"x\\\"\"}}");
    sb_buf_free(&out);
}

Test(anthropic_codec_render, model_list)
{
    struct sb_backend_info models[] = {
        {.name = "local", .kind = "local", .created = 1700000000, .n_ctx = 4096},
        {.name = "claude-\"x\"", .kind = "anthropic"},
    };
    struct sb_buf out;

    sb_buf_init(&out, 4096);
    cr_assert_eq(sb_anthropic_codec.write_models(models, 2, &out), 0);
    json_t *l = load(out.p);
    json_t *d = json_object_get(l, "data");
    cr_assert_eq(json_array_size(d), 2);
    json_t *m0 = json_array_get(d, 0);
    cr_expect_str_eq(jstr(m0, "type"), "model");
    cr_expect_str_eq(jstr(m0, "id"), "local");
    cr_expect_str_eq(jstr(m0, "display_name"), "local");
    cr_expect_str_eq(jstr(m0, "created_at"), "2023-11-14T22:13:20Z");
    cr_expect_eq(jint(m0, "max_input_tokens"), 4096);
    cr_expect_str_eq(jstr(json_array_get(d, 1), "id"), "claude-\"x\"");
    cr_expect_str_eq(jstr(json_array_get(d, 1), "created_at"), "1970-01-01T00:00:00Z");
    cr_expect(json_is_false(json_object_get(l, "has_more")));
    cr_expect_str_eq(jstr(l, "first_id"), "local");
    cr_expect_str_eq(jstr(l, "last_id"), "claude-\"x\"");
    json_decref(l);

    sb_buf_reset(&out);
    cr_assert_eq(sb_anthropic_codec.write_models(NULL, 0, &out), 0);
    cr_expect_str_eq(out.p, "{\"data\":[],\"has_more\":false,\"first_id\":null,\"last_id\":null}");
    sb_buf_free(&out);
}

Test(anthropic_codec_render, codec_table)
{
    cr_expect_eq(sb_anthropic_codec.api, SB_API_ANTHROPIC);
    cr_expect_str_eq(sb_anthropic_codec.name, "anthropic");
    cr_expect_str_eq(sb_anthropic_codec.stream_content_type, "text/event-stream");
    cr_expect_gt(sb_anthropic_codec.render_size, 0);
    cr_expect_not_null(sb_anthropic_codec.render_deinit);
}

/* A parsed request renders end to end: the renderer only borrows req. */
Test(anthropic_codec_render, parse_then_render, .init = setup, .fini = teardown)
{
    struct sb_buf out;
    void *st = calloc(1, sb_anthropic_codec.render_size);

    cr_assert_eq(parse(BODY(",\"stream\":true")), 0);
    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_anthropic_codec.render_init(st, &req), 0);
    struct sb_event ev = ev_start("");
    cr_assert_eq(sb_anthropic_codec.render_event(st, &ev, &out), 0);
    cr_expect(strncmp(out.p, "event: message_start\n", 21) == 0);
    cr_expect(strstr(out.p, "\"model\":\"m\"") != NULL);
    sb_anthropic_codec.render_deinit(st);
    free(st);
    sb_buf_free(&out);
}
