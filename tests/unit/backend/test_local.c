/* Tests for the local llama.cpp backend, run against the real tiny TinyStories model (stories260K):
 * loading, determinism, limits, stop strings, batching, cancellation, prefix reuse, templates. */
#include "local_harness.h"

#include <event2/thread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void suite_init(void)
{
    evthread_use_pthreads();
    /* stories260K makes llama.cpp warn about its unset special tokens on every load. */
    sb_log_set_level(SB_LOG_ERROR);
}

/* The timeout only stops a hung test; nothing here depends on timing. */
TestSuite(local, .init = suite_init, .timeout = 60);

/* -----------------------------------------------------------------------------------------------
 * Loading
 * --------------------------------------------------------------------------------------------- */

Test(local, create_fails_for_missing_file)
{
    char *path = model_path("does-not-exist.gguf");
    struct sb_model_config cfg = {.name = "m", .backend = "local", .path = path};
    struct sb_backend *b = (struct sb_backend *)1;
    char err[512] = "";
    int rc = sb_local_backend_ops.create(&cfg, &b, err, sizeof err);
    cr_assert_eq(rc, SB_ENOTFOUND);
    cr_assert_null(b);
    cr_assert_not_null(strstr(err, "does-not-exist.gguf"), "message: %s", err);
    free(path);
}

Test(local, create_fails_for_non_gguf_file)
{
    char path[] = "/tmp/sb-test-not-gguf-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, "not a model at all\n", 19), 19);
    close(fd);
    struct sb_model_config cfg = {.name = "m", .backend = "local", .path = path};
    struct sb_backend *b = NULL;
    char err[512] = "";
    int rc = sb_local_backend_ops.create(&cfg, &b, err, sizeof err);
    unlink(path);
    cr_assert_eq(rc, SB_EINVAL);
    cr_assert_null(b);
    cr_assert_not_null(strstr(err, "not a GGUF file"), "message: %s", err);
}

Test(local, registry_finds_local)
{
    cr_assert_eq(sb_backend_find_ops("local"), &sb_local_backend_ops);
    cr_assert_null(sb_backend_find_ops("nope"));
    cr_assert_null(sb_backend_find_ops(NULL));
}

Test(local, info_reports_the_configured_context)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 64, 2);
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    cr_assert_eq(info.n_ctx, 64);
    cr_assert_str_eq(info.kind, "local");
    cr_assert_str_eq(info.name, "test");
    cr_assert(info.ready);
    /* What Ollama's /api/tags shows: stories260K is an all-F32 llama of about 260K parameters. */
    cr_assert_str_eq(info.family, "llama");
    cr_assert_str_eq(info.quantization, "F32");
    cr_assert(info.n_params > 200000 && info.n_params < 400000, "%lld", (long long)info.n_params);
    cr_assert_eq(info.size, 1185888, "the file's size");
    cr_assert_eq(info.size_vram, 0, "gpu_layers is 0");
    sb_backend_free(b);

    /* 0 = the model's training context (2048 for stories260K), under the 8192 cap. */
    b = open_model(MODEL_CHATML, 0, 0);
    sb_backend_info(b, &info);
    cr_assert_eq(info.n_ctx, 2048);
    sb_backend_free(b);
}

/* -----------------------------------------------------------------------------------------------
 * Generation
 * --------------------------------------------------------------------------------------------- */

Test(local, greedy_completion_is_deterministic)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    struct run r1, r2;
    run_init(&r1, b, base, PROMPT, 48);
    run_one(base, &r1);
    run_init(&r2, b, base, PROMPT, 48);
    run_one(base, &r2);
    assert_well_formed(&r1);
    assert_well_formed(&r2);
    cr_assert_gt(r1.text.len, 20);
    cr_assert_str_eq(r1.text.p, r2.text.p);
    /* A trained model continues the story with words, not noise. */
    cr_assert(strstr(r1.text.p, " the ") || strstr(r1.text.p, " a "), "text: %s", r1.text.p);
    run_free(&r1);
    run_free(&r2);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, max_tokens_gives_length_with_exactly_that_many_tokens)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, PROMPT, 7);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.usage.completion_tokens, 7);

    int32_t *toks = NULL;
    size_t n = 0;
    cr_assert_eq(sb_local_backend_ops.tokenize(b, sb_str_c(PROMPT), true, &toks, &n), 0);
    cr_assert_eq(r.usage.prompt_tokens, (int64_t)n, "prompt tokens include BOS");
    free(toks);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, stop_sequence_cuts_the_text_before_it)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    struct run ref;
    run_init(&ref, b, base, PROMPT, 64);
    run_one(base, &ref);
    cr_assert_gt(ref.text.len, 40);

    /* Seven bytes from the middle: long enough to span token boundaries. */
    char stop[8];
    memcpy(stop, ref.text.p + 25, 7);
    stop[7] = '\0';
    size_t at = (size_t)(strstr(ref.text.p, stop) - ref.text.p);

    struct run r;
    run_init(&r, b, base, PROMPT, 64);
    r.req.stop[0] = SB_STR_LIT("never appears in a story \x01");
    r.req.stop[1] = sb_str_c(stop);
    r.req.n_stop = 2;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    cr_assert_str_eq(r.stop_seq, stop);
    cr_assert_eq(r.text.len, at, "got [%s], expected the first %zu bytes of [%s]", r.text.p, at,
                 ref.text.p);
    cr_assert_eq(memcmp(r.text.p, ref.text.p, at), 0);
    cr_assert_lt(r.usage.completion_tokens, ref.usage.completion_tokens);
    run_free(&ref);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, prompt_over_the_context_is_an_error)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 64, 2);
    struct event_base *base = base_new();
    struct sb_buf long_prompt;
    sb_buf_init(&long_prompt, 1 << 16);
    for (int i = 0; i < 40; i++)
        sb_buf_append_c(&long_prompt, "Once upon a time ");
    struct run r;
    run_init(&r, b, base, long_prompt.p, 8);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_start + r.n_text + r.n_finish, 0, "the error comes alone");
    cr_assert_eq(r.err_code, SB_ECONTEXT);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not_null(strstr(r.err_msg, "maximum context length is 64 tokens"), "%s", r.err_msg);
    run_free(&r);
    sb_buf_free(&long_prompt);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, a_full_context_ends_with_length)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 64, 1);
    struct event_base *base = base_new();
    struct run r;
    /* A story opening the model keeps telling for far more than 64 tokens. */
    run_init(&r, b, base, "Once upon a time, there was a little girl named Lily.", 0);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.usage.prompt_tokens + r.usage.completion_tokens, 64);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, concurrent_requests_match_their_solo_runs)
{
    static const char *const prompts[] = {
        "Once upon a time",        "Tom had a big red ball",
        "The sun was shining and", "Lily and her mom went to the park",
        "One day, a little bird",
    };
    enum { N = SB_ARRAY_LEN(prompts) };
    struct sb_backend *b = open_model(MODEL_CHATML, 256, 2);
    struct event_base *base = base_new();
    struct run solo[N], together[N];
    for (size_t i = 0; i < N; i++) {
        run_init(&solo[i], b, base, prompts[i], 24);
        run_one(base, &solo[i]);
    }
    /* Five requests on two slots: three wait in the queue and join as slots free up. */
    for (size_t i = 0; i < N; i++) {
        run_init(&together[i], b, base, prompts[i], 24);
        cr_assert_eq(sb_backend_start(b, &together[i].call), 0);
    }
    wait_done(base, together, N);
    for (size_t i = 0; i < N; i++) {
        assert_well_formed(&together[i]);
        cr_assert_str_eq(together[i].text.p, solo[i].text.p, "prompt %zu", i);
        cr_assert_eq(together[i].usage.completion_tokens, solo[i].usage.completion_tokens);
        run_free(&solo[i]);
        run_free(&together[i]);
    }
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, cancel_stops_events_and_frees_the_slot)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run two[2];
    struct run *running = &two[0], *queued = &two[1];
    run_init(running, b, base, PROMPT, 0);
    running->cancel_after_texts = 3;
    run_init(queued, b, base, "Tom had a big red ball", 8);
    cr_assert_eq(sb_backend_start(b, &running->call), 0);
    cr_assert_eq(sb_backend_start(b, &queued->call), 0);
    /* Cancelled while it waits for the only slot: it must still get on_done, and no event. */
    sb_backend_cancel(b, &queued->call);
    queued->canceled = true;
    wait_done(base, two, 2);
    cr_assert_eq(running->n_done, 1);
    cr_assert_eq(running->n_after_cancel, 0);
    cr_assert_eq(running->n_text, 3);
    cr_assert_eq(running->n_finish + running->n_error, 0);
    cr_assert_eq(queued->n_done, 1);
    cr_assert_eq(queued->n_start + queued->n_text + queued->n_finish + queued->n_error, 0);

    /* The one slot serves the next request. */
    struct run next;
    run_init(&next, b, base, PROMPT, 8);
    run_one(base, &next);
    assert_well_formed(&next);
    cr_assert_eq(next.reason, SB_FINISH_LENGTH);
    cr_assert_eq(next.usage.completion_tokens, 8);
    run_free(running);
    run_free(queued);
    run_free(&next);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, prefix_reuse_reports_cached_tokens)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    struct run first, second, again;
    run_init(&first, b, base, "Once upon a time, there was a little girl named Lily", 4);
    run_one(base, &first);
    cr_assert_eq(first.usage.cached_prompt_tokens, 0);

    run_init(&second, b, base, "Once upon a time, there was a little girl named Lily. She loved",
             4);
    run_one(base, &second);
    assert_well_formed(&second);
    cr_assert_gt(second.usage.cached_prompt_tokens, 0);
    cr_assert_lt(second.usage.cached_prompt_tokens, second.usage.prompt_tokens);

    /* The same prompt again: all but the last token come from the cache, and the answer is the
     * same as when it was evaluated in full. */
    run_init(&again, b, base, "Once upon a time, there was a little girl named Lily", 4);
    run_one(base, &again);
    cr_assert_eq(again.usage.cached_prompt_tokens, again.usage.prompt_tokens - 1);
    cr_assert_str_eq(again.text.p, first.text.p);
    run_free(&first);
    run_free(&second);
    run_free(&again);
    sb_backend_free(b);
    event_base_free(base);
}

/* Two tenants whose prompts share only their first few tokens each keep a slot of their own: the
 * second does not evict the first's cache for a handful of shared tokens. */
Test(local, prefix_reuse_keeps_each_tenants_slot)
{
    static const char *const prompts[] = {
        "Once upon a time, there was a little girl named Lily. She loved to play in the park with "
        "her red ball every single day, and her mother watched her from the bench.",
        "Once upon a time, a big brown dog named Max lived in a small house near the river. He "
        "liked to run after the ducks and bark at the boats that went by.",
    };
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    for (int round = 0; round < 2; round++) {
        for (size_t i = 0; i < SB_ARRAY_LEN(prompts); i++) {
            struct run r;
            run_init(&r, b, base, prompts[i], 4);
            run_one(base, &r);
            assert_well_formed(&r);
            if (round == 0)
                cr_expect_lt(r.usage.cached_prompt_tokens, r.usage.prompt_tokens / 2,
                             "prompt %zu, first time", i);
            else
                cr_expect_eq(r.usage.cached_prompt_tokens, r.usage.prompt_tokens - 1,
                             "prompt %zu, again: its slot kept its cache", i);
            run_free(&r);
        }
    }
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, sampled_output_never_splits_a_code_point)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, PROMPT, 300);
    /* A hot, untruncated draw picks byte tokens often, so multi-byte pieces get split. */
    r.req.sampling.temperature = 3.0f;
    r.req.sampling.top_k = 0;
    r.req.sampling.top_p = 1.0f;
    r.req.sampling.min_p = 0.0f;
    r.req.sampling.seed = 42;
    r.req.sampling.has_seed = true;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_gt(r.n_text, 10);
    size_t high = 0;
    for (size_t i = 0; i < r.text.len; i++)
        high += (unsigned char)r.text.p[i] >= 0x80;
    cr_assert_gt(high, 0, "the draw produced no multi-byte text to check");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, seeded_sampling_repeats)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run r[2];
    for (int i = 0; i < 2; i++) {
        run_init(&r[i], b, base, PROMPT, 32);
        r[i].req.sampling.temperature = 1.0f;
        r[i].req.sampling.seed = 7;
        r[i].req.sampling.has_seed = true;
        run_one(base, &r[i]);
        assert_well_formed(&r[i]);
    }
    cr_assert_str_eq(r[0].text.p, r[1].text.p);
    run_free(&r[0]);
    run_free(&r[1]);
    sb_backend_free(b);
    event_base_free(base);
}

/* -----------------------------------------------------------------------------------------------
 * Chat, tokens, limits
 * --------------------------------------------------------------------------------------------- */

/* A two-message chat request; the parts live in static storage. */
static void chat_init(struct run *r, struct sb_backend *b, struct event_base *base)
{
    static struct sb_part sys = {.type = SB_PART_TEXT, .text = SB_STR_LIT("You tell stories.")};
    static struct sb_part user = {.type = SB_PART_TEXT, .text = SB_STR_LIT("Hello")};
    static struct sb_message msgs[2];
    msgs[0] = (struct sb_message){.role = SB_ROLE_SYSTEM, .parts = &sys, .n_parts = 1};
    msgs[1] = (struct sb_message){.role = SB_ROLE_USER, .parts = &user, .n_parts = 1};
    run_init(r, b, base, "", 8);
    r->req.kind = SB_REQ_CHAT;
    r->req.prompt = SB_STR_NULL;
    r->req.messages = msgs;
    r->req.n_messages = 2;
}

static void assert_chatml(const char *file)
{
    struct sb_backend *b = open_model(file, 0, 1);
    struct run r;
    chat_init(&r, b, NULL);
    struct sb_buf out;
    sb_buf_init(&out, 1 << 16);
    cr_assert_eq(sb_local_backend_ops.render_prompt(b, &r.req, &out), 0);
    cr_assert_str_eq(out.p, "<|im_start|>system\nYou tell stories.<|im_end|>\n"
                            "<|im_start|>user\nHello<|im_end|>\n"
                            "<|im_start|>assistant\n");
    sb_buf_free(&out);
    run_free(&r);
    sb_backend_free(b);
}

Test(local, chat_template_from_the_gguf)
{
    assert_chatml(MODEL_CHATML);
}

/* stories260K.gguf has no template: the fallback is ChatML. */
Test(local, chat_template_fallback_is_chatml)
{
    assert_chatml(MODEL_PLAIN);
}

Test(local, chat_request_runs_through_the_template)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 2);
    struct event_base *base = base_new();
    struct run r;
    chat_init(&r, b, base);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.usage.completion_tokens, 8);

    struct sb_buf prompt;
    sb_buf_init(&prompt, 1 << 16);
    cr_assert_eq(sb_local_backend_ops.render_prompt(b, &r.req, &prompt), 0);
    int32_t *toks = NULL;
    size_t n = 0;
    cr_assert_eq(sb_local_backend_ops.tokenize(b, sb_buf_view(&prompt), true, &toks, &n), 0);
    cr_assert_eq(r.usage.prompt_tokens, (int64_t)n);
    free(toks);
    sb_buf_free(&prompt);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, tool_request_without_calls_finishes_as_text)
{
    static struct sb_tool tool = {.name = SB_STR_LIT("get_weather"),
                                  .description = SB_STR_LIT("Weather for a city"),
                                  .parameters = SB_STR_LIT("{\"type\":\"object\",\"properties\":"
                                                           "{\"city\":{\"type\":\"string\"}}}")};
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run r;
    chat_init(&r, b, base);
    r.req.tools = &tool;
    r.req.n_tools = 1;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_tool, 0, "a story model calls no tools");
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_gt(r.text.len, 0);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

/* A Hermes-style template (tool calls as <tool_call>{json}</tool_call>), so that a tool request
 * has a format whose partial output can be parsed as it grows. */
static const char hermes_template[] =
    "{%- if tools %}<|im_start|>system\nTools:\n{%- for tool in tools %}\n{{ tool | tojson }}"
    "{%- endfor %}\nCall them as <tool_call>\n{\"name\": <name>, \"arguments\": <args>}\n"
    "</tool_call><|im_end|>\n{% endif %}"
    "{%- for message in messages %}<|im_start|>{{ message.role }}\n{{ message.content }}"
    "<|im_end|>\n{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

Test(local, tool_request_text_streams_before_the_end)
{
    static struct sb_tool tool = {.name = SB_STR_LIT("get_weather"),
                                  .description = SB_STR_LIT("Weather for a city"),
                                  .parameters = SB_STR_LIT("{\"type\":\"object\",\"properties\":"
                                                           "{\"city\":{\"type\":\"string\"}}}")};
    struct sb_model_config cfg = model_config("hermes", MODEL_CHATML);
    cfg.chat_template = (char *)hermes_template;
    cfg.n_parallel = 1;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    struct event_base *base = base_new();
    struct run r;
    chat_init(&r, b, base);
    r.req.max_tokens = 24;
    r.req.tools = &tool;
    r.req.n_tools = 1;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_tool, 0, "a story model calls no tools");
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    /* Story text cannot be the start of <tool_call>: it flows token by token, not at the end. */
    cr_assert_gt(r.n_text, 4, "%d TEXT events for %zu bytes", r.n_text, r.text.len);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, tokenize_and_count)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    int32_t *toks = NULL;
    size_t n = 0;
    cr_assert_eq(sb_local_backend_ops.tokenize(b, sb_str_c(PROMPT), true, &toks, &n), 0);
    cr_assert_gt(n, 1);
    cr_assert_eq(toks[0], 1, "BOS first");
    int64_t count = 0;
    cr_assert_eq(sb_local_backend_ops.count_tokens(b, sb_str_c(PROMPT), &count), 0);
    cr_assert_eq(count, (int64_t)n - 1, "counts exclude BOS");
    free(toks);
    sb_backend_free(b);
}

Test(local, a_generation_model_refuses_embeddings_in_words)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, PROMPT, 1);
    r.req.kind = SB_REQ_EMBED;
    struct sb_str input = SB_STR_LIT("hello");
    r.req.inputs = &input;
    r.req.n_inputs = 1;
    /* Accepted, then answered 400 with what is wrong: a start() code could not say it. */
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_start, 0);
    cr_assert_eq(r.err_status, 400);
    cr_assert_eq(r.err_code, SB_EUNSUPPORTED);
    cr_assert_not_null(strstr(r.err_msg, "model test does not serve embeddings"), "%s", r.err_msg);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, a_full_queue_refuses_with_efull)
{
    enum { N = 128 + 1 + 40 };
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run *runs = calloc(N, sizeof *runs);
    size_t accepted = 0;
    int rc = 0;
    /* The loop does not run while these start, and each accepted call asks for the whole context,
     * so the one slot cannot drain 40 of them meanwhile. */
    while (accepted < N) {
        run_init(&runs[accepted], b, base, PROMPT, 0);
        rc = sb_backend_start(b, &runs[accepted].call);
        if (rc != 0) {
            run_free(&runs[accepted]);
            break;
        }
        accepted++;
    }
    cr_assert_eq(rc, SB_EFULL);
    /* 128 queued, plus the one the engine may already have taken into its slot. */
    cr_assert_geq(accepted, 128);
    cr_assert_leq(accepted, 129);
    for (size_t i = 0; i < accepted; i++) {
        sb_backend_cancel(b, &runs[i].call);
        runs[i].canceled = true;
    }
    wait_done(base, runs, accepted);
    for (size_t i = 0; i < accepted; i++) {
        cr_assert_eq(runs[i].n_after_cancel, 0);
        run_free(&runs[i]);
    }
    free(runs);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local, free_with_a_call_in_flight_still_delivers_on_done)
{
    struct sb_backend *b = open_model(MODEL_CHATML, 0, 1);
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, PROMPT, 0);
    cr_assert_eq(sb_backend_start(b, &r.call), 0);
    sb_backend_free(b);
    wait_done(base, &r, 1);
    cr_assert_eq(r.n_done, 1);
    cr_assert_eq(r.n_after_end, 0);
    /* It either finished before the engine stopped or was ended by the unload. */
    cr_assert_eq(r.n_finish + r.n_error, 1);
    if (r.n_error)
        cr_assert_eq(r.err_code, SB_EBACKEND);
    run_free(&r);
    event_base_free(base);
}
