/* Tests for embeddings from the local backend, on the real stories260K model (a generative llama,
 * whose embeddings are the mean of its last hidden states): shape, normalization, determinism,
 * batching, limits, and the refusals that say what is wrong. */
#include "local_harness.h"

#include "backend/local_internal.h" /* sb__local_embed_normalize */

#include <event2/thread.h>
#include <math.h>

#define STORIES_DIM 64 /* stories260K's n_embd */

static void suite_init(void)
{
    evthread_use_pthreads();
    sb_log_set_level(SB_LOG_ERROR);
}

TestSuite(local_embed, .init = suite_init, .timeout = 60);

/* An embeddings model of file with the given context and inputs per step (0 = defaults). */
static struct sb_backend *open_embedder(const char *file, int32_t n_ctx, int32_t n_parallel)
{
    struct sb_model_config cfg = model_config("emb", file);
    cfg.embeddings = true;
    cfg.n_ctx = n_ctx;
    cfg.n_parallel = n_parallel;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    return b;
}

/* Prepares an embedding request of inputs[0, n); the views are borrowed from the caller. */
static void embed_init(struct run *r, struct sb_backend *b, struct event_base *base,
                       struct sb_str *inputs, size_t n)
{
    run_init(r, b, base, "", 0);
    r->req.kind = SB_REQ_EMBED;
    r->req.inputs = inputs;
    r->req.n_inputs = n;
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)a[i] * (double)b[i];
    return s;
}

static float max_abs_diff(const float *a, const float *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

/* The tokens an input costs, as the model counts them with its special tokens. */
static int64_t input_tokens(struct sb_backend *b, const char *text)
{
    int32_t *toks = NULL;
    size_t n = 0;
    cr_assert_eq(sb_local_backend_ops.tokenize(b, sb_str_c(text), true, &toks, &n), 0);
    free(toks);
    return (int64_t)n;
}

Test(local_embed, one_input_gives_one_unit_vector_of_the_models_width)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 0);
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    cr_assert(info.embeddings);
    cr_assert(info.loaded);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT)};
    struct run r;
    embed_init(&r, b, base, in, 1);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 0, "%s", r.err_msg);
    cr_assert_eq(r.n_embedding, 1);
    cr_assert_eq(r.dim, STORIES_DIM);
    cr_assert_not_null(r.vectors[0]);
    cr_assert_float_eq(dot(r.vectors[0], r.vectors[0], r.dim), 1.0, 1e-5, "L2-normalized");
    cr_assert_eq(r.usage.prompt_tokens, input_tokens(b, PROMPT));
    cr_assert_eq(r.usage.completion_tokens, 0);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, the_same_input_gives_the_same_vector)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 0);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT)};
    struct run r1, r2;
    embed_init(&r1, b, base, in, 1);
    run_one(base, &r1);
    embed_init(&r2, b, base, in, 1);
    run_one(base, &r2);
    cr_assert_eq(r1.n_embedding + r2.n_embedding, 2);
    cr_assert_eq(memcmp(r1.vectors[0], r2.vectors[0], r1.dim * sizeof(float)), 0,
                 "the same input alone must give a bit-identical vector");
    run_free(&r1);
    run_free(&r2);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, inputs_batched_together_match_each_alone)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 4);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT), SB_STR_LIT("Tom had a big red ball."),
                          SB_STR_LIT("The sun")};
    struct run together, alone[3];
    embed_init(&together, b, base, in, 3);
    run_one(base, &together);
    assert_well_formed(&together);
    cr_assert_eq(together.n_embedding, 3);
    int64_t tokens = 0;
    for (size_t i = 0; i < 3; i++) {
        embed_init(&alone[i], b, base, &in[i], 1);
        run_one(base, &alone[i]);
        cr_assert_eq(alone[i].n_embedding, 1);
        /* Another batch shape may round differently in the last bits, nothing more. */
        float d = max_abs_diff(together.vectors[i], alone[i].vectors[0], together.dim);
        cr_assert_lt(d, 1e-4f, "input %zu differs by %g when batched", i, (double)d);
        tokens += alone[i].usage.prompt_tokens;
    }
    cr_assert_eq(together.usage.prompt_tokens, tokens, "usage counts every input's tokens");
    /* Different texts are different points. */
    cr_assert_lt(dot(together.vectors[0], together.vectors[1], together.dim), 0.999);
    for (size_t i = 0; i < 3; i++)
        run_free(&alone[i]);
    run_free(&together);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, more_inputs_than_a_step_holds_all_arrive_in_order)
{
    enum { N = 11 };
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 64, 2);
    struct event_base *base = base_new();
    struct sb_str in[N];
    for (size_t i = 0; i < N; i++)
        in[i] = i % 2 ? SB_STR_LIT("Lily saw a cat.") : SB_STR_LIT(PROMPT);
    struct run r;
    embed_init(&r, b, base, in, N);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_embedding, N);
    for (size_t i = 0; i < N; i++)
        cr_assert_not_null(r.vectors[i], "input %zu has no vector", i);
    /* Equal inputs in different steps and lanes still agree. */
    cr_assert_lt(max_abs_diff(r.vectors[0], r.vectors[10], r.dim), 1e-4f);
    cr_assert_lt(max_abs_diff(r.vectors[1], r.vectors[9], r.dim), 1e-4f);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, concurrent_requests_each_get_their_own_vectors)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 2);
    struct event_base *base = base_new();
    struct sb_str a[] = {SB_STR_LIT(PROMPT)};
    struct sb_str c[] = {SB_STR_LIT("Tom had a big red ball."), SB_STR_LIT(PROMPT)};
    struct run runs[2];
    embed_init(&runs[0], b, base, a, 1);
    embed_init(&runs[1], b, base, c, 2);
    cr_assert_eq(sb_backend_start(b, &runs[0].call), 0);
    cr_assert_eq(sb_backend_start(b, &runs[1].call), 0);
    wait_done(base, runs, 2);
    assert_well_formed(&runs[0]);
    assert_well_formed(&runs[1]);
    cr_assert_lt(max_abs_diff(runs[0].vectors[0], runs[1].vectors[1], runs[0].dim), 1e-4f);
    run_free(&runs[0]);
    run_free(&runs[1]);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, a_random_llama_with_the_32k_vocabulary_embeds_too)
{
    struct sb_backend *b = open_embedder(MODEL_RANDOM, 128, 0);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT("Hello, world"), SB_STR_LIT("Bonjour")};
    struct run r;
    embed_init(&r, b, base, in, 2);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_embedding, 2, "%s", r.err_msg);
    cr_assert_eq(r.dim, 8);
    cr_assert_float_eq(dot(r.vectors[1], r.vectors[1], r.dim), 1.0, 1e-5);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, an_input_over_the_context_is_context_length_exceeded)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 32, 0);
    struct event_base *base = base_new();
    struct sb_buf longer;
    sb_buf_init(&longer, 1 << 16);
    for (int i = 0; i < 40; i++)
        cr_assert_eq(sb_buf_append_c(&longer, "Once upon a time. "), 0);
    struct sb_str in[] = {SB_STR_LIT(PROMPT), sb_buf_view(&longer)};
    struct run r;
    embed_init(&r, b, base, in, 2);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_embedding, 0, "no vector is sent when any input is refused");
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_code, SB_ECONTEXT);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not_null(strstr(r.err_msg, "input[1]"), "%s", r.err_msg);
    run_free(&r);
    sb_buf_free(&longer);
    sb_backend_free(b);
    event_base_free(base);
}

/* The shortening on its own, with vectors worked out by hand. */
Test(local_embed, normalize_keeps_the_first_components_at_unit_length)
{
    const float v[] = {3, 4, 12, -84}; /* |v[0..2)| = 5, |v[0..3)| = 13, |v| = 85 */
    float out[4];
    sb__local_embed_normalize(v, 2, out);
    cr_expect_float_eq(out[0], 0.6f, 1e-7);
    cr_expect_float_eq(out[1], 0.8f, 1e-7);
    sb__local_embed_normalize(v, 3, out);
    cr_expect_float_eq(out[0], 3.0f / 13, 1e-7);
    cr_expect_float_eq(out[2], 12.0f / 13, 1e-7);
    sb__local_embed_normalize(v, 4, out);
    cr_expect_float_eq(out[3], -84.0f / 85, 1e-7);
    sb__local_embed_normalize(v, 1, out);
    cr_expect_float_eq(out[0], 1.0f, 1e-7, "one component is its sign");

    /* Shortening a unit vector and normalizing again is the same as normalizing the prefix. */
    float unit[4], again[2];
    sb__local_embed_normalize(v, 4, unit);
    sb__local_embed_normalize(unit, 2, again);
    cr_expect_float_eq(again[0], 0.6f, 1e-6);
    cr_expect_float_eq(again[1], 0.8f, 1e-6);

    /* In place, and a zero prefix stays zero rather than becoming NaN. */
    float w[] = {0, 0, 7};
    sb__local_embed_normalize(w, 2, w);
    cr_expect(w[0] == 0 && w[1] == 0 && w[2] == 7, "%g %g %g", w[0], w[1], w[2]);
}

/* One request for input with dimensions dims (0 = the model's own); returns its vector. */
static float *embed_one(struct sb_backend *b, struct event_base *base, struct sb_str *in,
                        int32_t dims, size_t *dim)
{
    struct run r;
    embed_init(&r, b, base, in, 1);
    r.req.dimensions = dims;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 0, "dimensions %d: %s", (int)dims, r.err_msg);
    cr_assert_eq(r.n_embedding, 1);
    float *v = r.vectors[0];
    r.vectors[0] = NULL;
    *dim = r.dim;
    run_free(&r);
    return v;
}

Test(local_embed, dimensions_shorten_the_vector_and_renormalize_it)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 0);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT)};
    size_t dim = 0;
    float *full = embed_one(b, base, in, 0, &dim);
    cr_assert_eq(dim, STORIES_DIM);
    static const int32_t asked[] = {1, 16, 63};
    for (size_t k = 0; k < SB_ARRAY_LEN(asked); k++) {
        size_t n = (size_t)asked[k];
        float *shortened = embed_one(b, base, in, asked[k], &dim);
        cr_assert_eq(dim, n, "dimensions %zu gives %zu components", n, dim);
        cr_expect_float_eq(dot(shortened, shortened, n), 1.0, 1e-5, "unit length");
        /* The same direction as the full vector's first n components. */
        double prefix = sqrt(dot(full, full, n));
        cr_assert_gt(prefix, 0);
        for (size_t i = 0; i < n; i++)
            cr_expect_float_eq(shortened[i], full[i] / prefix, 1e-5, "component %zu of %zu", i, n);
        free(shortened);
    }
    float *all = embed_one(b, base, in, STORIES_DIM, &dim);
    cr_assert_eq(dim, STORIES_DIM);
    cr_expect_leq(max_abs_diff(all, full, STORIES_DIM), 1e-6, "the model's width is the whole");
    free(all);
    free(full);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, dimensions_over_the_models_width_are_refused_with_the_param)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 0);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT)};
    struct run r;
    embed_init(&r, b, base, in, 1);
    r.req.dimensions = STORIES_DIM + 1;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.n_embedding, 0);
    cr_assert_eq(r.err_status, 400);
    cr_assert_eq(r.err_code, SB_EINVAL);
    cr_assert_str_eq(r.err_param, "dimensions");
    cr_assert_not_null(strstr(r.err_msg, "between 1 and 64"), "%s", r.err_msg);
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    cr_assert_eq(info.busy_slots, 0, "the refused job gave its place back");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, an_embeddings_model_refuses_generation_in_words)
{
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 0);
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, PROMPT, 4);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 1);
    cr_assert_eq(r.err_status, 400);
    cr_assert_not_null(strstr(r.err_msg, "serves embeddings only"), "%s", r.err_msg);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_embed, cancel_stops_the_vectors)
{
    enum { N = 16 };
    struct sb_backend *b = open_embedder(MODEL_PLAIN, 0, 1);
    struct event_base *base = base_new();
    struct sb_str in[N];
    for (size_t i = 0; i < N; i++)
        in[i] = SB_STR_LIT(PROMPT);
    struct run r;
    embed_init(&r, b, base, in, N);
    cr_assert_eq(sb_backend_start(b, &r.call), 0);
    sb_backend_cancel(b, &r.call);
    r.canceled = true;
    wait_done(base, &r, 1);
    cr_assert_eq(r.n_done, 1);
    cr_assert_eq(r.n_after_cancel, 0);
    /* The model serves the next request as usual. */
    struct run next;
    embed_init(&next, b, base, in, 2);
    run_one(base, &next);
    cr_assert_eq(next.n_embedding, 2);
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    cr_assert_eq(info.busy_slots, 0);
    run_free(&r);
    run_free(&next);
    sb_backend_free(b);
    event_base_free(base);
}
