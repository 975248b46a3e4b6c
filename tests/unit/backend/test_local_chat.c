/* Tests for the chat shim over llama.cpp's common chat module: templates render the canonical
 * request, and a model's tool-call output parses back into calls. */
#include "backend/local_chat.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* A small Hermes-style template written for this test: tools listed in the system turn, calls
 * written as <tool_call>{json}</tool_call>, results in <tool_response>. */
static const char hermes_template[] =
    "{%- if tools %}<|im_start|>system\n"
    "You may call these functions:\n"
    "<tools>\n"
    "{%- for tool in tools %}\n{{ tool | tojson }}\n{%- endfor %}\n"
    "</tools>\n"
    "For each call, answer with <tool_call>\n{\"name\": <name>, \"arguments\": <args>}\n"
    "</tool_call><|im_end|>\n"
    "{% endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'assistant' and message.tool_calls %}<|im_start|>assistant\n"
    "{%- if message.content %}{{ message.content }}{% endif %}"
    "{%- for tc in message.tool_calls %}\n<tool_call>\n"
    "{\"name\": \"{{ tc.function.name }}\", \"arguments\": {{ tc.function.arguments | tojson }}}\n"
    "</tool_call>{%- endfor %}<|im_end|>\n"
    "{% elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{% else %}<|im_start|>{{ message.role }}\n{{ message.content }}<|im_end|>\n"
    "{% endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

static struct sb_part user_part = {.type = SB_PART_TEXT, .text = SB_STR_LIT("Weather in Paris?")};
static struct sb_message user_msg = {.role = SB_ROLE_USER, .parts = &user_part, .n_parts = 1};
static struct sb_tool weather = {
    .name = SB_STR_LIT("get_weather"),
    .description = SB_STR_LIT("Current weather for a city"),
    .parameters = SB_STR_LIT("{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"}},"
                             "\"required\":[\"city\"]}"),
};

static void suite_init(void)
{
    sb__chat_global_init();
}

TestSuite(local_chat, .init = suite_init, .timeout = 60);

static struct sb__chat_templates *hermes(void)
{
    struct sb__chat_templates *t = NULL;
    char err[256] = "";
    cr_assert_eq(sb__chat_templates_new(NULL, hermes_template, &t, err, sizeof err), 0, "%s", err);
    cr_assert(sb__chat_templates_explicit(t));
    return t;
}

static void tool_request(struct sb_request *req)
{
    sb_request_init(req);
    req->kind = SB_REQ_CHAT;
    req->messages = &user_msg;
    req->n_messages = 1;
    req->tools = &weather;
    req->n_tools = 1;
}

Test(local_chat, a_template_that_does_not_parse_is_refused)
{
    struct sb__chat_templates *t = (struct sb__chat_templates *)1;
    char err[256] = "";
    int rc = sb__chat_templates_new(NULL, "{% for x in %}", &t, err, sizeof err);
    cr_assert_eq(rc, SB_EINVAL);
    cr_assert_null(t);
    cr_assert_not_null(strstr(err, "chat template"), "%s", err);
}

Test(local_chat, tools_are_rendered_into_the_prompt)
{
    struct sb__chat_templates *t = hermes();
    struct sb_request req;
    tool_request(&req);
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    struct sb__chat_parser *p = NULL;
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, &p, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(p);
    cr_assert_not_null(strstr(out.p, "\"get_weather\""), "%s", out.p);
    cr_assert_not_null(strstr(out.p, "<|im_start|>user\nWeather in Paris?<|im_end|>\n"), "%s",
                       out.p);
    cr_assert(out.len > 22 && strcmp(out.p + out.len - 22, "<|im_start|>assistant\n") == 0, "%s",
              out.p);
    sb__chat_parser_free(p);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

Test(local_chat, tool_call_output_parses_into_calls)
{
    struct sb__chat_templates *t = hermes();
    struct sb_request req;
    tool_request(&req);
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    struct sb__chat_parser *p = NULL;
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, &p, err, sizeof err), 0, "%s", err);

    struct sb__chat_message *m = NULL;
    struct sb_str text = SB_STR_LIT("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                    "{\"city\": \"Paris\"}}\n</tool_call>");
    cr_assert_eq(sb__chat_parse(p, text, &m), 0);
    cr_assert_eq(sb__chat_message_n_calls(m), 1);
    struct sb_tool_call c = sb__chat_message_call(m, 0);
    cr_assert(sb_str_eq_c(c.name, "get_weather"));
    cr_assert_not_null(memmem(c.arguments.p, c.arguments.len, "Paris", 5));
    sb__chat_message_free(m);

    /* Plain text stays content. */
    cr_assert_eq(sb__chat_parse(p, SB_STR_LIT("It is sunny."), &m), 0);
    cr_assert_eq(sb__chat_message_n_calls(m), 0);
    cr_assert(sb_str_eq_c(sb__chat_message_content(m), "It is sunny."));
    sb__chat_message_free(m);

    sb__chat_parser_free(p);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

Test(local_chat, a_past_tool_call_and_its_result_render)
{
    struct sb__chat_templates *t = hermes();
    static struct sb_tool_call call = {.id = SB_STR_LIT("call_1"),
                                       .name = SB_STR_LIT("get_weather"),
                                       .arguments = SB_STR_LIT("{\"city\":\"Paris\"}")};
    static struct sb_part result = {.type = SB_PART_TEXT, .text = SB_STR_LIT("18C, sunny")};
    struct sb_message msgs[3] = {
        user_msg,
        {.role = SB_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
        {.role = SB_ROLE_TOOL,
         .parts = &result,
         .n_parts = 1,
         .tool_call_id = SB_STR_LIT("call_1")},
    };
    struct sb_request req;
    tool_request(&req);
    req.messages = msgs;
    req.n_messages = 3;
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, NULL, err, sizeof err), 0, "%s", err);
    cr_assert_not_null(strstr(out.p, "<tool_call>"), "%s", out.p);
    cr_assert_not_null(strstr(out.p, "Paris"), "%s", out.p);
    cr_assert_not_null(strstr(out.p, "<tool_response>\n18C, sunny\n</tool_response>"), "%s", out.p);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

Test(local_chat, image_parts_are_unsupported)
{
    struct sb__chat_templates *t = hermes();
    static struct sb_part img = {.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/y.png")};
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = &img, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &msg;
    req.n_messages = 1;
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, NULL, err, sizeof err), SB_EUNSUPPORTED);
    cr_assert_not_null(strstr(err, "image"), "%s", err);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

Test(local_chat, a_named_tool_choice_must_name_a_tool)
{
    struct sb__chat_templates *t = hermes();
    struct sb_request req;
    tool_request(&req);
    req.tool_choice = SB_TOOL_CHOICE_NAMED;
    req.tool_choice_name = SB_STR_LIT("nope");
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, NULL, err, sizeof err), SB_EINVAL);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

/* -----------------------------------------------------------------------------------------------
 * Streaming: output parsed as it grows
 * --------------------------------------------------------------------------------------------- */

/* What a stream sent, assembled, with the contract checked as it goes. */
struct deltas {
    struct sb_buf content;
    struct sb_buf args[4];
    char ids[4][64], names[4][64];
    int n_calls;      /* calls announced */
    int n_content;    /* content deltas */
    int n_args[4];    /* argument deltas per call */
    int n_misordered; /* a call announced out of order, or a header without id and name */
};

static void deltas_init(struct deltas *d)
{
    memset(d, 0, sizeof *d);
    sb_buf_init(&d->content, 1 << 16);
    for (int i = 0; i < 4; i++)
        sb_buf_init(&d->args[i], 1 << 16);
}

static void deltas_free(struct deltas *d)
{
    sb_buf_free(&d->content);
    for (int i = 0; i < 4; i++)
        sb_buf_free(&d->args[i]);
}

static void on_delta(void *ud, const struct sb__chat_delta *x)
{
    struct deltas *d = ud;
    if (x->index < 0) {
        d->n_content++;
        cr_assert_eq(sb_buf_append_str(&d->content, x->content), 0);
        return;
    }
    cr_assert_lt(x->index, 4);
    if (x->index == d->n_calls) { /* a new call: its header comes first */
        if (x->id.len == 0 || x->name.len == 0)
            d->n_misordered++;
        snprintf(d->ids[x->index], 64, "%.*s", (int)x->id.len, x->id.p);
        snprintf(d->names[x->index], 64, "%.*s", (int)x->name.len, x->name.p);
        d->n_calls++;
    } else if (x->index > d->n_calls || x->id.len || x->name.len) {
        d->n_misordered++;
    }
    d->n_args[x->index]++;
    cr_assert_eq(sb_buf_append_str(&d->args[x->index], x->arguments), 0);
}

/* Feeds text to a new stream over the Hermes format in pieces of step bytes, then ends it. *before
 * receives how many deltas came before the end. */
static void stream_in_pieces(const char *text, size_t step, struct deltas *d, int *before)
{
    struct sb__chat_templates *t = hermes();
    struct sb_request req;
    tool_request(&req);
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    struct sb__chat_parser *p = NULL;
    char err[256] = "";
    cr_assert_eq(sb__chat_render(t, &req, &out, &p, err, sizeof err), 0, "%s", err);
    struct sb__chat_stream *s = NULL;
    cr_assert_eq(sb__chat_stream_new(p, &s), 0);
    size_t len = strlen(text);
    for (size_t at = 0; at < len; at += step) {
        struct sb_str piece = {text + at, SB_MIN(step, len - at)};
        cr_assert_eq(sb__chat_stream_push(s, piece, false, on_delta, d), 0);
    }
    *before = d->n_content + d->n_args[0] + d->n_args[1];
    cr_assert_eq(sb__chat_stream_push(s, SB_STR_NULL, true, on_delta, d), 0);
    cr_assert_eq(sb__chat_stream_n_calls(s), (size_t)d->n_calls);
    sb__chat_stream_free(s);
    sb__chat_parser_free(p);
    sb_buf_free(&out);
    sb__chat_templates_free(t);
}

Test(local_chat, plain_text_streams_as_it_comes)
{
    static const char text[] = "It is sunny today in Paris, and warm.";
    struct deltas d;
    deltas_init(&d);
    int before = 0;
    stream_in_pieces(text, 4, &d, &before);
    cr_assert_gt(before, 1, "text must flow before the end, in several deltas");
    cr_assert_str_eq(d.content.p, text);
    cr_assert_eq(d.n_calls, 0);
    deltas_free(&d);
}

Test(local_chat, a_call_streams_its_header_then_its_arguments)
{
    static const char text[] = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", "
                               "\"arguments\": {\"city\": \"Paris\", \"unit\": \"celsius\"}}\n"
                               "</tool_call>";
    struct deltas d;
    deltas_init(&d);
    int before = 0;
    stream_in_pieces(text, 3, &d, &before);
    cr_assert_eq(d.n_misordered, 0);
    cr_assert_eq(d.n_calls, 1);
    cr_assert_str_eq(d.names[0], "get_weather");
    cr_assert_gt(strlen(d.ids[0]), 0);
    cr_assert_gt(before, 1, "text and the call must flow before the end");
    cr_assert_not_null(d.content.p);
    cr_assert_not_null(strstr(d.content.p, "Let me check."), "%s", d.content.p);
    cr_assert_null(strstr(d.content.p, "tool_call"), "the markup is not content: %s", d.content.p);
    /* The arguments, assembled from their deltas, are the call's JSON. */
    json_t *args = json_loads(d.args[0].p, 0, NULL);
    cr_assert_not_null(args, "arguments: %s", d.args[0].p);
    cr_assert_str_eq(json_string_value(json_object_get(args, "city")), "Paris");
    cr_assert_str_eq(json_string_value(json_object_get(args, "unit")), "celsius");
    json_decref(args);
    deltas_free(&d);
}

Test(local_chat, two_calls_stream_in_index_order)
{
    static const char text[] =
        "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
        "</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
        "\"Rome\"}}\n</tool_call>";
    struct deltas d;
    deltas_init(&d);
    int before = 0;
    stream_in_pieces(text, 5, &d, &before);
    cr_assert_eq(d.n_misordered, 0);
    cr_assert_eq(d.n_calls, 2);
    cr_assert_not_null(strstr(d.args[0].p, "Paris"), "%s", d.args[0].p);
    cr_assert_not_null(strstr(d.args[1].p, "Rome"), "%s", d.args[1].p);
    cr_assert_str_neq(d.ids[0], d.ids[1]);
    deltas_free(&d);
}
