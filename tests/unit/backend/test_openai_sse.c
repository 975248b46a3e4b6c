/* Tests for the openai backend's codec: the SSE decoder (split at every byte, tool-call delta
 * assembly, usage with cached tokens, [DONE], comments, CRLF, errors inside the stream, malformed
 * chunks, early ends), the HTTP error mapping (status, message, Retry-After, the key masked),
 * embeddings, and the request bodies it writes. */
#include "backend/openai.h"
#include "recorder.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * Feeding helpers
 * ------------------------------------------------------------------------------------------- */
/* Feeds text in pieces cut at the given offsets (ascending), then EOF unless the stream ended. */
static void feed_cut(struct rec *r, const char *text, const size_t *cuts, size_t n_cuts)
{
    struct sb__oai_stream *s = sb__oai_stream_new(rec_sink, r, false, "openai");
    cr_assert_not_null(s);
    size_t len = strlen(text), at = 0;
    int ended = 0;
    for (size_t i = 0; i <= n_cuts && !ended; i++) {
        size_t to = i < n_cuts ? cuts[i] : len;
        ended = sb__oai_stream_feed(s, text + at, to - at);
        at = to;
    }
    if (!ended)
        sb__oai_stream_eof(s);
    sb__oai_stream_free(s);
}

static void feed_whole(struct rec *r, const char *text)
{
    feed_cut(r, text, NULL, 0);
}

/* Decodes text whole, split at every single point, and split into single bytes; all three
 * recordings must agree. The whole-text recording is left in *whole. */
static void feed_every_way(struct rec *whole, const char *text)
{
    rec_init(whole);
    feed_whole(whole, text);
    size_t len = strlen(text);
    for (size_t cut = 1; cut < len; cut++) {
        struct rec r;
        rec_init(&r);
        feed_cut(&r, text, &cut, 1);
        char what[64];
        snprintf(what, sizeof what, "split at %zu", cut);
        rec_assert_same(whole, &r, what);
        rec_free(&r);
    }
    size_t *cuts = calloc(len, sizeof *cuts);
    for (size_t i = 0; i + 1 < len; i++)
        cuts[i] = i + 1;
    struct rec bytes;
    rec_init(&bytes);
    feed_cut(&bytes, text, cuts, len > 0 ? len - 1 : 0);
    rec_assert_same(whole, &bytes, "byte by byte");
    rec_free(&bytes);
    free(cuts);
}

#define CHUNK(delta, finish)                                                                       \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"gpt-4o-mini-2024\",\"choices\":[{\"index\":0,\"delta\":" delta                    \
    ",\"logprobs\":null,\"finish_reason\":" finish "}],\"usage\":null}\n\n"
#define USAGE_CHUNK                                                                                \
    "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,"             \
    "\"model\":\"gpt-4o-mini-2024\",\"choices\":[],\"usage\":{\"prompt_tokens\":21,"               \
    "\"completion_tokens\":5,\"total_tokens\":26,\"prompt_tokens_details\":{\"cached_tokens\":16," \
    "\"audio_tokens\":0}}}\n\n"
#define DONE "data: [DONE]\n\n"

/* ---------------------------------------------------------------------------------------------
 * Streams
 * ------------------------------------------------------------------------------------------- */
Test(openai_sse, text_usage_and_finish_at_any_split)
{
    const char *text = CHUNK("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}", "null")
        CHUNK("{\"content\":\"Hello, \"}", "null")
            CHUNK("{\"content\":\"w\\u00f6rld \\u2603\"}", "null") CHUNK("{}", "\"stop\"")
                USAGE_CHUNK DONE;
    struct rec r;
    feed_every_way(&r, text);
    cr_assert_eq(r.n_start, 1);
    cr_assert_str_eq(r.model, "gpt-4o-mini-2024");
    cr_assert_str_eq(r.text.p, "Hello, wörld ☃");
    cr_assert_eq(r.n_usage, 1);
    cr_assert_eq(r.usage.prompt_tokens, 21);
    cr_assert_eq(r.usage.completion_tokens, 5);
    cr_assert_eq(r.usage.cached_prompt_tokens, 16);
    cr_assert_eq(r.n_finish, 1);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    cr_assert_eq(r.n_error, 0);
    rec_free(&r);
}

Test(openai_sse, tool_call_deltas_assemble_in_order)
{
    const char *text = CHUNK("{\"role\":\"assistant\",\"content\":null}", "null") CHUNK(
        "{\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":"
        "{\"name\":\"get_weather\",\"arguments\":\"\"}}]}",
        "null")
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\":\"}}]}",
              "null")
            CHUNK(
                "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]}",
                "null") CHUNK("{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":"
                              "\"function\",\"function\":"
                              "{\"name\":\"get_time\",\"arguments\":\"{}\"}}]}",
                              "null") CHUNK("{}", "\"tool_calls\"") USAGE_CHUNK DONE;
    struct rec r;
    feed_every_way(&r, text);
    cr_assert_eq(r.n_misordered, 0);
    cr_assert_eq(r.n_tools, 2);
    cr_assert_str_eq(r.tools[0].id, "call_A");
    cr_assert_str_eq(r.tools[0].name, "get_weather");
    cr_assert_str_eq(r.tools[0].args.p, "{\"city\":\"Paris\"}");
    cr_assert_str_eq(r.tools[1].id, "call_B");
    cr_assert_str_eq(r.tools[1].name, "get_time");
    cr_assert_str_eq(r.tools[1].args.p, "{}");
    cr_assert_eq(r.reason, SB_FINISH_TOOL_CALLS);
    rec_free(&r);
}

Test(openai_sse, arguments_before_the_name_wait_for_it)
{
    /* Some compatible servers send arguments first, or no id at all. */
    const char *text = CHUNK(
        "{\"tool_calls\":[{\"index\":3,\"function\":{\"arguments\":\"{\\\"a\\\"\"}}]}", "null")
        CHUNK(
            "{\"tool_calls\":[{\"index\":3,\"function\":{\"name\":\"f\",\"arguments\":\":1}\"}}]}",
            "null") CHUNK("{}", "\"tool_calls\"") DONE;
    struct rec r;
    rec_init(&r);
    feed_whole(&r, text);
    cr_assert_eq(r.n_misordered, 0);
    cr_assert_eq(r.n_tools, 1);
    cr_assert_str_eq(r.tools[0].name, "f");
    cr_assert_str_eq(r.tools[0].args.p, "{\"a\":1}");
    cr_assert(strncmp(r.tools[0].id, "call_", 5) == 0, "generated id %s", r.tools[0].id);
    cr_assert_eq(r.n_usage, 1);
    cr_assert_eq(r.usage.prompt_tokens, 0);
    rec_free(&r);
}

Test(openai_sse, a_call_that_never_gets_a_name_is_malformed)
{
    const char *text =
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}", "null") DONE;
    struct rec r;
    rec_init(&r);
    feed_whole(&r, text);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 502);
    rec_free(&r);
}

Test(openai_sse, comments_crlf_and_event_fields)
{
    const char *text = ": OPENROUTER PROCESSING\r\n\r\n"
                       "event: message\r\nid: 1\r\n"
                       "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                       "\"hi\"},\"finish_reason\":null}]}\r\n\r\n"
                       "data: {\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},"
                       "\"finish_reason\":\"length\"}]}\r\r"
                       "data: [DONE]\r\n\r\n";
    struct rec r;
    feed_every_way(&r, text);
    cr_assert_str_eq(r.text.p, "hi");
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.n_finish, 1);
    rec_free(&r);
}

Test(openai_sse, text_completion_chunks)
{
    const char *text = "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"m\","
                       "\"choices\":[{\"text\":\"Once\",\"index\":0,\"finish_reason\":null}]}\n\n"
                       "data: {\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"model\":\"m\","
                       "\"choices\":[{\"text\":\" upon\",\"index\":0,\"finish_reason\":\"stop\"}]}"
                       "\n\n" DONE;
    struct rec r;
    feed_every_way(&r, text);
    cr_assert_str_eq(r.text.p, "Once upon");
    cr_assert_eq(r.n_finish, 1);
    rec_free(&r);
}

Test(openai_sse, error_object_inside_the_stream)
{
    const char *text =
        CHUNK("{\"content\":\"partial\"}", "null") "data: {\"error\":{\"message\":\"The server had "
                                                   "an error\",\"type\":\"server_error\","
                                                   "\"code\":null}}\n\n" DONE;
    struct rec r;
    feed_every_way(&r, text);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.err_code, SB_EUPSTREAM);
    cr_assert_eq(r.err_status, 502);
    cr_assert(!r.err_retryable, "output had begun");
    cr_assert_not_null(strstr(r.err_msg, "The server had an error"), "%s", r.err_msg);
    cr_assert_str_eq(r.text.p, "partial");
    rec_free(&r);
}

Test(openai_sse, rate_limit_error_before_any_output_is_retryable)
{
    const char *text = "data: {\"error\":{\"message\":\"slow down\",\"code\":429}}\n\n";
    struct rec r;
    rec_init(&r);
    feed_whole(&r, text);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.err_status, 429);
    cr_assert(r.err_retryable);
    rec_free(&r);
}

Test(openai_sse, malformed_chunk)
{
    struct rec r;
    rec_init(&r);
    feed_whole(&r, CHUNK("{\"content\":\"a\"}", "null") "data: {\"choices\": [\n\n" DONE);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 502);
    cr_assert_not_null(strstr(r.err_msg, "malformed"), "%s", r.err_msg);
    rec_free(&r);
}

Test(openai_sse, ends_without_done)
{
    /* A finish_reason was seen: a server that omits [DONE] still ends normally. */
    struct rec r;
    rec_init(&r);
    feed_whole(&r, CHUNK("{\"content\":\"a\"}", "\"stop\"") USAGE_CHUNK);
    cr_assert_eq(r.n_finish, 1);
    cr_assert_eq(r.usage.prompt_tokens, 21);
    rec_free(&r);
    /* Cut before its finish: an error, not a truncated success. */
    rec_init(&r);
    feed_whole(&r, CHUNK("{\"content\":\"a\"}", "null"));
    cr_assert_eq(r.n_finish, 0);
    cr_assert_eq(r.n_error, 1);
    cr_assert_not_null(strstr(r.err_msg, "ended before"), "%s", r.err_msg);
    rec_free(&r);
}

Test(openai_sse, nothing_after_the_end)
{
    struct rec r;
    rec_init(&r);
    feed_whole(&r,
               CHUNK("{\"content\":\"a\"}", "\"stop\"") DONE CHUNK("{\"content\":\"b\"}", "null"));
    cr_assert_eq(r.n_after_end, 0);
    cr_assert_str_eq(r.text.p, "a");
    rec_free(&r);
}

Test(openai_sse, a_finished_stream_does_not_stop_the_transfer)
{
    /* Stopping at [DONE] would abort before the chunked terminator and lose the connection. */
    struct rec r;
    rec_init(&r);
    struct sb__oai_stream *s = sb__oai_stream_new(rec_sink, &r, false, "openai");
    const char *text = CHUNK("{\"content\":\"a\"}", "\"stop\"") DONE;
    cr_assert_eq(sb__oai_stream_feed(s, text, strlen(text)), 0);
    cr_assert_eq(r.n_finish, 1);
    cr_assert_eq(sb__oai_stream_feed(s, "data: x\n\n", 9), 0);
    cr_assert_eq(r.n_error, 0);
    sb__oai_stream_free(s);
    rec_free(&r);
}

Test(openai_sse, owner_stop_is_honoured)
{
    struct rec r;
    rec_init(&r);
    r.stop_after = 2; /* START, then the first TEXT */
    struct sb__oai_stream *s = sb__oai_stream_new(rec_sink, &r, false, "openai");
    const char *text = CHUNK("{\"content\":\"a\"}", "null") CHUNK("{\"content\":\"b\"}", "null");
    cr_assert_neq(sb__oai_stream_feed(s, text, strlen(text)), 0);
    sb__oai_stream_free(s);
    cr_assert_str_eq(r.text.p, "a");
    rec_free(&r);
}

/* ---------------------------------------------------------------------------------------------
 * HTTP errors
 * ------------------------------------------------------------------------------------------- */
static void http_error(struct rec *r, int status, const char *body, uint32_t ra, const char *key)
{
    rec_init(r);
    struct sb__oai_stream *s = sb__oai_stream_new(rec_sink, r, false, "openai");
    if (key != NULL)
        sb__oai_stream_set_secret(s, sb_str_c(key));
    sb__oai_stream_http_error(s, status, sb_str_c(body), ra);
    sb__oai_stream_free(s);
    cr_assert_eq(r->n_error, 1);
}

Test(openai_http_error, statuses_messages_and_retry_after)
{
    struct rec r;
    http_error(&r, 400,
               "{\"error\":{\"message\":\"Invalid 'messages[0].role'\",\"type\":"
               "\"invalid_request_error\",\"param\":\"messages\",\"code\":null}}",
               0, NULL);
    cr_assert_eq(r.err_status, 400);
    cr_assert(!r.err_retryable);
    cr_assert_str_eq(r.err_msg,
                     "openai (HTTP 400, invalid_request_error): Invalid 'messages[0].role'");
    rec_free(&r);

    http_error(&r, 429, "{\"error\":{\"message\":\"Rate limit reached\"}}", 7000, NULL);
    cr_assert_eq(r.err_status, 429);
    cr_assert(r.err_retryable);
    cr_assert_eq(r.err_retry_after_ms, 7000);
    rec_free(&r);

    http_error(&r, 500, "upstream exploded", 0, NULL);
    cr_assert_eq(r.err_status, 502);
    cr_assert(r.err_retryable);
    cr_assert_str_eq(r.err_msg, "openai answered HTTP 500 without an error object");
    rec_free(&r);

    /* vLLM's shape */
    http_error(&r, 404,
               "{\"object\":\"error\",\"message\":\"The model `x` does not exist.\",\"type\":"
               "\"NotFoundError\",\"code\":404}",
               0, NULL);
    cr_assert_eq(r.err_status, 404);
    cr_assert_not_null(strstr(r.err_msg, "does not exist"));
    rec_free(&r);
}

Test(openai_http_error, the_key_is_masked_if_quoted_back)
{
    struct rec r;
    http_error(&r, 401,
               "{\"error\":{\"message\":\"Incorrect API key provided: sk-test-SECRET-1234.\","
               "\"type\":\"invalid_request_error\"}}",
               0, "sk-test-SECRET-1234");
    cr_assert_eq(r.err_status, 401);
    cr_assert_null(strstr(r.err_msg, "SECRET"), "%s", r.err_msg);
    cr_assert_not_null(strstr(r.err_msg, "Incorrect API key provided: ****"), "%s", r.err_msg);
    rec_free(&r);
}

/* ---------------------------------------------------------------------------------------------
 * Embeddings
 * ------------------------------------------------------------------------------------------- */
struct emb_rec {
    int n_start, n_emb, n_usage, n_finish, n_error;
    float first[3];
    size_t dims[4];
    int32_t index[4];
    int64_t prompt_tokens;
};

static int emb_sink(void *ud, const struct sb_event *ev)
{
    struct emb_rec *r = ud;
    switch (ev->type) {
    case SB_EV_START: r->n_start++; break;
    case SB_EV_EMBEDDING:
        if (r->n_emb < 4) {
            r->dims[r->n_emb] = ev->embedding.dim;
            r->index[r->n_emb] = ev->embedding.index;
        }
        if (r->n_emb == 0)
            memcpy(r->first, ev->embedding.values, sizeof r->first);
        r->n_emb++;
        break;
    case SB_EV_USAGE: r->n_usage++, r->prompt_tokens = ev->usage.prompt_tokens; break;
    case SB_EV_FINISH: r->n_finish++; return 1;
    case SB_EV_ERROR: r->n_error++; return 1;
    default: break;
    }
    return 0;
}

Test(openai_embeddings, decodes_the_whole_body)
{
    const char *body = "{\"object\":\"list\",\"data\":[{\"object\":\"embedding\",\"index\":0,"
                       "\"embedding\":[0.5,-1,2.25]},{\"object\":\"embedding\",\"index\":1,"
                       "\"embedding\":[1,2,3]}],\"model\":\"text-embedding-3-small\","
                       "\"usage\":{\"prompt_tokens\":8,\"total_tokens\":8}}";
    struct emb_rec r = {0};
    struct sb__oai_stream *s = sb__oai_stream_new(emb_sink, &r, true, "openai");
    size_t len = strlen(body);
    cr_assert_eq(sb__oai_stream_feed(s, body, 10), 0);
    cr_assert_eq(sb__oai_stream_feed(s, body + 10, len - 10), 0);
    sb__oai_stream_eof(s);
    sb__oai_stream_free(s);
    cr_assert_eq(r.n_start, 1);
    cr_assert_eq(r.n_emb, 2);
    cr_assert_eq(r.dims[0], 3);
    cr_assert_eq(r.index[1], 1);
    cr_assert_float_eq(r.first[2], 2.25f, 1e-6);
    cr_assert_eq(r.prompt_tokens, 8);
    cr_assert_eq(r.n_finish, 1);
}

/* ---------------------------------------------------------------------------------------------
 * Request bodies
 * ------------------------------------------------------------------------------------------- */
static char *render(const struct sb_request *req, int want_rc, char *err, size_t err_size)
{
    struct sb_buf b;
    sb_buf_init(&b, SB__OPENAI_BODY_MAX);
    int rc = sb__openai_render(req, SB_STR_LIT("gpt-test"), &b, err, err_size);
    cr_assert_eq(rc, want_rc, "render: %d %s", rc, err);
    return sb_buf_steal(&b);
}

Test(openai_render, chat_with_tools_exactly)
{
    struct sb_part sys = {.type = SB_PART_TEXT, .text = SB_STR_LIT("Be brief.")};
    struct sb_part user[2] = {
        {.type = SB_PART_TEXT, .text = SB_STR_LIT("What is \"this\"?")},
        {.type = SB_PART_IMAGE, .media_type = SB_STR_LIT("image/png"), .data = SB_STR_LIT("AAAA")},
    };
    struct sb_tool_call call = {SB_STR_LIT("call_1"), SB_STR_LIT("look"), SB_STR_LIT("{\"q\":1}")};
    struct sb_part result = {.type = SB_PART_TEXT, .text = SB_STR_LIT("a cat")};
    struct sb_message msgs[] = {
        {.role = SB_ROLE_SYSTEM, .parts = &sys, .n_parts = 1},
        {.role = SB_ROLE_USER, .parts = user, .n_parts = 2},
        {.role = SB_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
        {.role = SB_ROLE_TOOL,
         .parts = &result,
         .n_parts = 1,
         .tool_call_id = SB_STR_LIT("call_1")},
    };
    struct sb_tool tool = {SB_STR_LIT("look"), SB_STR_LIT("Looks."),
                           SB_STR_LIT("{\"type\":\"object\"}")};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = SB_ARRAY_LEN(msgs);
    req.tools = &tool;
    req.n_tools = 1;
    req.tool_choice = SB_TOOL_CHOICE_REQUIRED;
    req.sampling.temperature = 0.5f;
    req.sampling.top_k = 40; /* not OpenAI's: left out */
    req.sampling.seed = 7;
    req.sampling.has_seed = true;
    req.max_tokens = 100;
    req.stop[0] = SB_STR_LIT("END");
    req.n_stop = 1;
    req.stream = false; /* upstream is streamed all the same */
    char err[256];
    char *body = render(&req, 0, err, sizeof err);
    const char *want =
        "{\"model\":\"gpt-test\",\"messages\":["
        "{\"role\":\"system\",\"content\":\"Be brief.\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"What is \\\"this\\\"?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,AAAA\"}}]},"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"call_1\",\"type\":"
        "\"function\",\"function\":{\"name\":\"look\",\"arguments\":\"{\\\"q\\\":1}\"}}]},"
        "{\"role\":\"tool\",\"content\":\"a cat\",\"tool_call_id\":\"call_1\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"look\",\"description\":"
        "\"Looks.\",\"parameters\":{\"type\":\"object\"}}}],\"tool_choice\":\"required\","
        "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"temperature\":0.5,"
        "\"seed\":7,\"max_tokens\":100,\"stop\":[\"END\"]}";
    cr_assert_str_eq(body, want);
    json_t *j = json_loads(body, 0, NULL);
    cr_assert_not_null(j, "not JSON");
    json_decref(j);
    free(body);
}

Test(openai_render, completion_and_embeddings)
{
    struct sb_request req;
    sb_request_init(&req);
    req.kind = SB_REQ_COMPLETION;
    req.prompt = SB_STR_LIT("Once");
    req.echo = true;
    char err[256];
    char *body = render(&req, 0, err, sizeof err);
    cr_assert_str_eq(body, "{\"model\":\"gpt-test\",\"prompt\":\"Once\",\"echo\":true,\"stream\":"
                           "true,\"stream_options\":{\"include_usage\":true}}");
    free(body);
    struct sb_str inputs[] = {SB_STR_LIT("a"), SB_STR_LIT("b")};
    sb_request_init(&req);
    req.kind = SB_REQ_EMBED;
    req.inputs = inputs;
    req.n_inputs = 2;
    req.dimensions = 64;
    body = render(&req, 0, err, sizeof err);
    cr_assert_str_eq(body, "{\"model\":\"gpt-test\",\"input\":[\"a\",\"b\"],\"encoding_format\":"
                           "\"float\",\"dimensions\":64}");
    free(body);
    cr_assert_str_eq(sb__openai_path(SB_REQ_EMBED), "/embeddings");
}

Test(openai_render, what_openai_cannot_take)
{
    struct sb_part img = {.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/y.png")};
    struct sb_message m = {.role = SB_ROLE_SYSTEM, .parts = &img, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &m;
    req.n_messages = 1;
    char err[256];
    free(render(&req, SB_EINVAL, err, sizeof err));
    cr_assert_str_eq(err, "messages[0]: only user messages may contain images");
    struct sb_part t = {.type = SB_PART_TEXT, .text = SB_STR_LIT("hi")};
    m = (struct sb_message){.role = SB_ROLE_USER, .parts = &t, .n_parts = 1};
    struct sb_tool tool = {SB_STR_LIT("f"), SB_STR_NULL, SB_STR_LIT("[1]")};
    req.tools = &tool;
    req.n_tools = 1;
    free(render(&req, SB_EINVAL, err, sizeof err));
    cr_assert_str_eq(err, "tools[0].parameters: expected a JSON object");
}
