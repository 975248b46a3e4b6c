/* Tests for the ollama backend's codec: the NDJSON decoder (split at every byte, tool calls whole,
 * usage and done reasons, error lines, early ends), HTTP errors, /api/embed, and the bodies it
 * writes for /api/chat, /api/generate and /api/embed. */
#include "backend/ollama_remote.h"
#include "recorder.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

static void feed_cut(struct rec *r, const char *text, size_t cut)
{
    struct sb__ollama_stream *s = sb__ollama_stream_new(rec_sink, r, false);
    cr_assert_not_null(s);
    size_t len = strlen(text);
    int ended = cut > 0 && cut < len ? sb__ollama_stream_feed(s, text, cut) : 0;
    if (!ended)
        ended =
            sb__ollama_stream_feed(s, text + (cut < len ? cut : 0), len - (cut < len ? cut : 0));
    if (!ended)
        sb__ollama_stream_eof(s);
    sb__ollama_stream_free(s);
}

static void feed_every_way(struct rec *whole, const char *text)
{
    rec_init(whole);
    feed_cut(whole, text, 0);
    for (size_t cut = 1; cut < strlen(text); cut++) {
        struct rec r;
        rec_init(&r);
        feed_cut(&r, text, cut);
        char what[64];
        snprintf(what, sizeof what, "split at %zu", cut);
        rec_assert_same(whole, &r, what);
        rec_free(&r);
    }
}

#define LINE(content)                                                                              \
    "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-22T20:33:28Z\",\"message\":{\"role\":"       \
    "\"assistant\",\"content\":\"" content "\"},\"done\":false}\n"
#define DONE_LINE(reason)                                                                          \
    "{\"model\":\"llama3.2\",\"created_at\":\"2024-07-22T20:33:28Z\",\"message\":{\"role\":"       \
    "\"assistant\",\"content\":\"\"},\"done_reason\":\"" reason "\",\"done\":true,"                \
    "\"total_duration\":885095291,\"load_duration\":3753500,\"prompt_eval_count\":26,"             \
    "\"prompt_eval_duration\":328493000,\"eval_count\":9,\"eval_duration\":552222000}\n"

Test(ollama_ndjson, text_usage_and_finish_at_any_split)
{
    struct rec r;
    feed_every_way(&r, LINE("Hel") LINE("lo w\\u00f6rld") DONE_LINE("stop"));
    cr_assert_eq(r.n_start, 1);
    cr_assert_str_eq(r.model, "llama3.2");
    cr_assert_str_eq(r.text.p, "Hello wörld");
    cr_assert_eq(r.usage.prompt_tokens, 26);
    cr_assert_eq(r.usage.completion_tokens, 9);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    cr_assert_eq(r.n_finish, 1);
    rec_free(&r);
}

Test(ollama_ndjson, length_and_generate_lines)
{
    struct rec r;
    feed_every_way(&r,
                   "{\"model\":\"m\",\"response\":\"Once\",\"done\":false}\r\n"
                   "{\"model\":\"m\",\"response\":\"\",\"done\":true,\"done_reason\":\"length\","
                   "\"prompt_eval_count\":3,\"eval_count\":1}");
    cr_assert_str_eq(r.text.p, "Once");
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    rec_free(&r);
}

Test(ollama_ndjson, tool_calls_arrive_whole)
{
    struct rec r;
    feed_every_way(
        &r,
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\","
        "\"tool_calls\":[{\"id\":\"call_w\",\"function\":{\"name\":\"get_weather\",\"arguments\":"
        "{\"city\":\"Paris\",\"unit\":\"c\"}}},{\"id\":\"call_x\",\"function\":"
        "{\"index\":1,\"name\":\"get_time\",\"arguments\":{}}}]},\"done\":false}\n" DONE_LINE(
            "stop"));
    cr_assert_eq(r.n_misordered, 0);
    cr_assert_eq(r.n_tools, 2);
    cr_assert_str_eq(r.tools[0].name, "get_weather");
    cr_assert_str_eq(r.tools[0].args.p, "{\"city\":\"Paris\",\"unit\":\"c\"}");
    cr_assert_str_eq(r.tools[0].id, "call_w");
    cr_assert_str_eq(r.tools[1].id, "call_x");
    cr_assert_str_eq(r.tools[1].args.p, "{}");
    cr_assert_eq(r.reason, SB_FINISH_TOOL_CALLS);
    rec_free(&r);
}

Test(ollama_ndjson, calls_without_an_id_get_one)
{
    struct rec r;
    rec_init(&r);
    feed_cut(
        &r,
        "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":"
        "[{\"function\":{\"name\":\"f\",\"arguments\":{}}}]},\"done\":false}\n" DONE_LINE("stop"),
        0);
    cr_assert_eq(r.n_tools, 1);
    cr_assert(strncmp(r.tools[0].id, "call_", 5) == 0 && strlen(r.tools[0].id) > 5, "%s",
              r.tools[0].id);
    rec_free(&r);
}

Test(ollama_ndjson, error_line_and_early_end)
{
    struct rec r;
    rec_init(&r);
    feed_cut(&r, LINE("a") "{\"error\":\"an error was encountered while running the model\"}\n", 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 502);
    cr_assert_not_null(strstr(r.err_msg, "while running the model"));
    rec_free(&r);
    rec_init(&r);
    feed_cut(&r, LINE("a"), 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_not_null(strstr(r.err_msg, "before \"done\""), "%s", r.err_msg);
    rec_free(&r);
    rec_init(&r);
    feed_cut(&r, "{\"model\": \n", 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_not_null(strstr(r.err_msg, "malformed"));
    rec_free(&r);
}

Test(ollama_ndjson, http_errors)
{
    struct rec r;
    rec_init(&r);
    struct sb__ollama_stream *s = sb__ollama_stream_new(rec_sink, &r, false);
    sb__ollama_stream_http_error(s, 404,
                                 SB_STR_LIT("{\"error\":\"model \\\"x\\\" not found, try "
                                            "pulling it first\"}"),
                                 0);
    sb__ollama_stream_free(s);
    cr_assert_eq(r.err_status, 404);
    cr_assert_str_eq(r.err_msg, "ollama (HTTP 404): model \"x\" not found, try pulling it first");
    rec_free(&r);
    rec_init(&r);
    s = sb__ollama_stream_new(rec_sink, &r, false);
    sb__ollama_stream_http_error(s, 503, SB_STR_LIT("busy"), 2000);
    sb__ollama_stream_free(s);
    cr_assert_eq(r.err_status, 503);
    cr_assert(r.err_retryable);
    cr_assert_eq(r.err_retry_after_ms, 2000);
    rec_free(&r);
}

static int count_embeddings(void *ud, const struct sb_event *ev)
{
    int *n = ud;
    if (ev->type == SB_EV_EMBEDDING) {
        cr_assert_eq(ev->embedding.dim, 2);
        cr_assert_eq(ev->embedding.index, *n);
        (*n)++;
    }
    cr_assert_neq(ev->type, SB_EV_ERROR);
    return ev->type == SB_EV_FINISH;
}

Test(ollama_ndjson, embed_body)
{
    const char *body = "{\"model\":\"all-minilm\",\"embeddings\":[[0.1,0.2],[0.3,0.4]],"
                       "\"total_duration\":1,\"prompt_eval_count\":8}";
    int n = 0;
    struct sb__ollama_stream *s = sb__ollama_stream_new(count_embeddings, &n, true);
    sb__ollama_stream_feed(s, body, strlen(body));
    sb__ollama_stream_eof(s);
    sb__ollama_stream_free(s);
    cr_assert_eq(n, 2);
}

static char *render(const struct sb_request *req, int want_rc, char *err)
{
    struct sb_buf b;
    sb_buf_init(&b, SB__OLLAMA_BODY_MAX);
    int rc = sb__ollama_render(req, SB_STR_LIT("llama3.2"), &b, err, 256);
    cr_assert_eq(rc, want_rc, "render: %d %s", rc, err);
    return sb_buf_steal(&b);
}

Test(ollama_render, chat_exactly)
{
    struct sb_part user[2] = {
        {.type = SB_PART_TEXT, .text = SB_STR_LIT("What is this?")},
        {.type = SB_PART_IMAGE, .url = SB_STR_LIT("data:image/png;base64,AAAA")},
    };
    struct sb_tool_call call = {SB_STR_LIT("call_1"), SB_STR_LIT("look"), SB_STR_LIT("{\"q\":1}")};
    struct sb_part result = {.type = SB_PART_TEXT, .text = SB_STR_LIT("a cat")};
    struct sb_message msgs[] = {
        {.role = SB_ROLE_USER, .parts = user, .n_parts = 2},
        {.role = SB_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
        {.role = SB_ROLE_TOOL,
         .parts = &result,
         .n_parts = 1,
         .tool_call_id = SB_STR_LIT("call_1")},
    };
    struct sb_tool tool = {SB_STR_LIT("look"), SB_STR_LIT("Looks."), SB_STR_NULL};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = SB_ARRAY_LEN(msgs);
    req.tools = &tool;
    req.n_tools = 1;
    req.sampling.temperature = 0;
    req.sampling.top_k = 40;
    req.max_tokens = 12;
    req.stop[0] = SB_STR_LIT("\n");
    req.n_stop = 1;
    req.json_mode = true;
    char err[256];
    char *body = render(&req, 0, err);
    cr_assert_str_eq(
        body, "{\"model\":\"llama3.2\",\"messages\":["
              "{\"role\":\"user\",\"content\":\"What is this?\",\"images\":[\"AAAA\"]},"
              "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"function\":{\"name\":"
              "\"look\",\"arguments\":{\"q\":1}}}]},"
              "{\"role\":\"tool\",\"content\":\"a cat\",\"tool_name\":\"look\"}],"
              "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"look\",\"description\":"
              "\"Looks.\",\"parameters\":{\"type\":\"object\",\"properties\":{}}}}],"
              "\"format\":\"json\",\"stream\":true,\"options\":{\"temperature\":0,\"top_k\":40,"
              "\"num_predict\":12,\"stop\":[\"\\n\"]}}");
    json_t *j = json_loads(body, 0, NULL);
    cr_assert_not_null(j);
    json_decref(j);
    free(body);
}

/* keep_alive goes upstream as Ollama reads it, and a load or unload is the server's own (no
 * messages), so a remote model is loaded or unloaded without generating. */
Test(ollama_render, keep_alive_and_unload_pass_through)
{
    struct sb_part empty = {.type = SB_PART_TEXT, .text = SB_STR_LIT("")};
    struct sb_message m = {.role = SB_ROLE_USER, .parts = &empty, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    req.max_tokens = 1;
    req.model_op = SB_MODEL_OP_UNLOAD;
    req.has_keep_alive = true;
    req.keep_alive_ns = 0;
    char err[256];
    char *body = render(&req, 0, err);
    cr_assert_str_eq(body, "{\"model\":\"llama3.2\",\"messages\":[],\"stream\":true,"
                           "\"keep_alive\":0,\"options\":{\"num_predict\":1}}");
    free(body);

    static const struct {
        int64_t ns;
        const char *json;
    } values[] = {
        {INT64_C(300000000000), "\"keep_alive\":300,"},
        {SB_KEEP_ALIVE_FOREVER, "\"keep_alive\":-1,"},
        {INT64_C(1500000000), "\"keep_alive\":\"1500000000ns\","},
    };
    req.model_op = SB_MODEL_OP_NONE;
    for (size_t i = 0; i < SB_ARRAY_LEN(values); i++) {
        req.keep_alive_ns = values[i].ns;
        body = render(&req, 0, err);
        cr_expect_not_null(strstr(body, values[i].json), "%s", body);
        cr_expect_not_null(strstr(body, "\"messages\":[{\"role\":\"user\""), "%s", body);
        free(body);
    }

    struct sb_str in = SB_STR_LIT("x");
    sb_request_init(&req);
    req.kind = SB_REQ_EMBED;
    req.inputs = &in;
    req.n_inputs = 1;
    req.dimensions = 8;
    req.has_keep_alive = true;
    req.keep_alive_ns = INT64_C(60000000000);
    body = render(&req, 0, err);
    cr_assert_str_eq(body, "{\"model\":\"llama3.2\",\"input\":[\"x\"],\"dimensions\":8,"
                           "\"keep_alive\":60}");
    free(body);
}

Test(ollama_render, generate_embed_and_refusals)
{
    struct sb_request req;
    sb_request_init(&req);
    req.kind = SB_REQ_COMPLETION;
    req.prompt = SB_STR_LIT("Once");
    char err[256];
    char *body = render(&req, 0, err);
    cr_assert_str_eq(body, "{\"model\":\"llama3.2\",\"prompt\":\"Once\",\"raw\":true,\"stream\":"
                           "true,\"options\":{}}");
    free(body);
    struct sb_str in = SB_STR_LIT("x");
    sb_request_init(&req);
    req.kind = SB_REQ_EMBED;
    req.inputs = &in;
    req.n_inputs = 1;
    body = render(&req, 0, err);
    cr_assert_str_eq(body, "{\"model\":\"llama3.2\",\"input\":[\"x\"]}");
    free(body);
    struct sb_part img = {.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/y.png")};
    struct sb_message m = {.role = SB_ROLE_USER, .parts = &img, .n_parts = 1};
    sb_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    free(render(&req, SB_EINVAL, err));
    cr_assert_str_eq(err, "messages[0]: Ollama takes images as base64 data, not by URL");
    cr_assert_str_eq(sb__ollama_path(SB_REQ_CHAT), "/api/chat");
}
