/* Unit tests for POST /v1/embeddings in the OpenAI codec: parsing input, encoding_format,
 * dimensions and user (and refusing what is not supported), and rendering the embedding list as
 * JSON floats or as the base64 of little-endian float32 that the OpenAI SDKs ask for by default. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

static struct sb_arena *arena;
static struct sb_request req;
static struct sb_api_error err;

static void setup(void)
{
    arena = sb_arena_new(1 << 20);
    memset(&err, 0, sizeof(err));
}

static void teardown(void)
{
    sb_arena_free(arena);
}

TestSuite(openai_embed_parse, .init = setup, .fini = teardown);

static int parse(const char *body)
{
    return sb_openai_codec.parse(SB_REQ_EMBED, arena, sb_str_c(body), &req, &err);
}

/* =============================================================================================
 * Parsing
 * =========================================================================================== */

Test(openai_embed_parse, one_string)
{
    cr_assert_eq(parse("{\"model\":\"emb\",\"input\":\"hello\"}"), 0, "%s", err.message);
    cr_expect_eq(req.kind, SB_REQ_EMBED);
    cr_expect(sb_str_eq_c(req.model, "emb"));
    cr_assert_eq(req.n_inputs, 1);
    cr_expect(sb_str_eq_c(req.inputs[0], "hello"));
    cr_expect_not(req.embed_base64, "float is the API's default");
    cr_expect_eq(req.dimensions, 0);
    cr_expect_not(req.stream);
}

Test(openai_embed_parse, array_base64_dimensions_and_user)
{
    cr_assert_eq(parse("{\"model\":\"emb\",\"input\":[\"a\",\"b c\",\"\\u00e9\"],"
                       "\"encoding_format\":\"base64\",\"dimensions\":64,\"user\":\"u-1\"}"),
                 0, "%s", err.message);
    cr_assert_eq(req.n_inputs, 3);
    cr_expect(sb_str_eq_c(req.inputs[1], "b c"));
    cr_expect(sb_str_eq_c(req.inputs[2], "\xc3\xa9"));
    cr_expect(req.embed_base64);
    cr_expect_eq(req.dimensions, 64);
    cr_expect(sb_str_eq_c(req.user, "u-1"));
}

Test(openai_embed_parse, nulls_mean_not_given)
{
    cr_assert_eq(parse("{\"model\":\"emb\",\"input\":\"x\",\"encoding_format\":null,"
                       "\"dimensions\":null,\"user\":null}"),
                 0, "%s", err.message);
    cr_expect_not(req.embed_base64);
    cr_expect_eq(req.dimensions, 0);
}

struct bad_case {
    const char *body;
    const char *param;   /* err.param */
    const char *message; /* a part of err.message */
};

static const struct bad_case bad_cases[] = {
    {"{\"model\":\"emb\"}", "input", "Missing required parameter"},
    {"{\"model\":\"emb\",\"input\":null}", "input", "Missing required parameter"},
    {"{\"model\":\"emb\",\"input\":7}", "input", "a string or an array of strings"},
    {"{\"model\":\"emb\",\"input\":[]}", "input", "empty array"},
    {"{\"model\":\"emb\",\"input\":\"\"}", "input", "empty string"},
    {"{\"model\":\"emb\",\"input\":[\"a\",\"\"]}", "input[1]", "empty string"},
    /* Token ids: OpenAI's other two input shapes. */
    {"{\"model\":\"emb\",\"input\":[1,2,3]}", "input[0]", "token ids are not supported"},
    {"{\"model\":\"emb\",\"input\":[[1,2],[3]]}", "input[0]", "token ids are not supported"},
    {"{\"model\":\"emb\",\"input\":[\"a\",{}]}", "input[1]", "expected a string"},
    {"{\"model\":\"emb\",\"input\":\"x\",\"encoding_format\":\"hex\"}", "encoding_format",
     "base64"},
    {"{\"model\":\"emb\",\"input\":\"x\",\"dimensions\":0}", "dimensions", ""},
    {"{\"model\":\"emb\",\"input\":\"x\",\"dimensions\":1.5}", "dimensions", ""},
    {"{\"model\":\"emb\",\"input\":\"x\",\"user\":3}", "user", "a string"},
    {"{\"model\":\"\",\"input\":\"x\"}", "model", "empty string"},
    {"{\"input\":\"x\"}", "model", "Missing required parameter"},
};

Test(openai_embed_parse, bad_requests_are_400_with_param)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bad_cases); i++) {
        const struct bad_case *c = &bad_cases[i];
        memset(&err, 0, sizeof(err));
        cr_expect_eq(parse(c->body), SB_EINVAL, "case %zu should fail", i);
        cr_expect_eq(err.http_status, 400, "case %zu: status %d", i, err.http_status);
        cr_expect_str_eq(err.param, c->param, "case %zu: param", i);
        cr_expect(strstr(err.message, c->message) != NULL, "case %zu: message \"%s\" lacks \"%s\"",
                  i, err.message, c->message);
    }
}

Test(openai_embed_parse, too_many_inputs)
{
    struct sb_buf body;
    sb_buf_init(&body, 1 << 20);
    cr_assert_eq(sb_buf_append_c(&body, "{\"model\":\"emb\",\"input\":[\"a\""), 0);
    for (int i = 0; i < 2048; i++)
        cr_assert_eq(sb_buf_append_c(&body, ",\"a\""), 0);
    cr_assert_eq(sb_buf_append_c(&body, "]}"), 0);
    cr_expect_eq(parse(body.p), SB_EINVAL);
    cr_expect_str_eq(err.param, "input");
    cr_expect(strstr(err.message, "2048") != NULL, "%s", err.message);
    sb_buf_free(&body);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

struct render {
    void *state;
    struct sb_buf out;
    struct sb_request req;
    struct sb_str inputs[4];
};

static void render_begin(struct render *r, size_t n_inputs, bool base64)
{
    sb_request_init(&r->req);
    r->req.kind = SB_REQ_EMBED;
    r->req.model = SB_STR_LIT("alias");
    for (size_t i = 0; i < n_inputs; i++)
        r->inputs[i] = SB_STR_LIT("text");
    r->req.inputs = r->inputs;
    r->req.n_inputs = n_inputs;
    r->req.embed_base64 = base64;
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

static struct sb_event ev_vector(int32_t index, const float *v, size_t dim)
{
    struct sb_event ev = {.type = SB_EV_EMBEDDING};
    ev.embedding.index = index;
    ev.embedding.values = v;
    ev.embedding.dim = dim;
    return ev;
}

static struct sb_event ev_usage(int64_t prompt)
{
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = prompt;
    return ev;
}

static struct sb_event ev_finish(void)
{
    return (struct sb_event){.type = SB_EV_FINISH, .finish.reason = SB_FINISH_STOP};
}

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *root = json_loads(s, 0, &e);
    cr_assert_not_null(root, "invalid JSON (%s): %s", e.text, s);
    return root;
}

/* Decodes standard, padded base64; returns the byte count written to out. */
static size_t unbase64(const char *s, unsigned char *out, size_t cap)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t n = 0, len = strlen(s);
    cr_assert_eq(len % 4, 0, "base64 length %zu", len);
    for (size_t i = 0; i < len; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            const char *at = c == '=' ? NULL : strchr(digits, c);
            cr_assert(c == '=' || (at && c), "bad base64 digit %c", c);
            pad += c == '=';
            v = v << 6 | (uint32_t)(at ? at - digits : 0);
        }
        for (int k = 0; k < 3 - pad; k++) {
            cr_assert_lt(n, cap);
            out[n++] = (unsigned char)(v >> (16 - 8 * k));
        }
    }
    return n;
}

Test(openai_embed_render, floats_as_a_list_in_index_order)
{
    static const float a[] = {0.25f, -0.5f, 0.125f};
    static const float b[] = {1.0f / 3.0f, 0, -1e-7f};
    struct render r;
    render_begin(&r, 2, false);
    cr_assert_eq(emit(&r, ev_start("emb-model")), 0);
    /* Vectors may come in any order; the list is in input order. */
    cr_assert_eq(emit(&r, ev_vector(1, b, 3)), 0);
    cr_assert_eq(emit(&r, ev_vector(0, a, 3)), 0);
    cr_assert_eq(emit(&r, ev_usage(7)), 0);
    cr_assert_eq(r.out.len, 0, "nothing is written before FINISH");
    cr_assert_eq(emit(&r, ev_finish()), 0);
    json_t *root = load(r.out.p);
    cr_expect_str_eq(json_string_value(json_object_get(root, "object")), "list");
    cr_expect_str_eq(json_string_value(json_object_get(root, "model")), "emb-model");
    json_t *usage = json_object_get(root, "usage");
    cr_expect_eq(json_integer_value(json_object_get(usage, "prompt_tokens")), 7);
    cr_expect_eq(json_integer_value(json_object_get(usage, "total_tokens")), 7);
    json_t *data = json_object_get(root, "data");
    cr_assert_eq(json_array_size(data), 2);
    for (size_t i = 0; i < 2; i++) {
        json_t *item = json_array_get(data, i);
        const float *want = i ? b : a;
        cr_expect_str_eq(json_string_value(json_object_get(item, "object")), "embedding");
        cr_expect_eq(json_integer_value(json_object_get(item, "index")), (json_int_t)i);
        json_t *vec = json_object_get(item, "embedding");
        cr_assert_eq(json_array_size(vec), 3);
        for (size_t k = 0; k < 3; k++)
            cr_expect_eq((float)json_number_value(json_array_get(vec, k)), want[k],
                         "vector %zu[%zu] must round-trip exactly", i, k);
    }
    json_decref(root);
    render_end(&r);
}

Test(openai_embed_render, base64_is_little_endian_float32)
{
    static const float v[] = {1.0f, -2.5f, 0.1f, 3.4028235e38f, -0.0f};
    struct render r;
    render_begin(&r, 1, true);
    cr_assert_eq(emit(&r, ev_start("")), 0);
    cr_assert_eq(emit(&r, ev_vector(0, v, 5)), 0);
    cr_assert_eq(emit(&r, ev_usage(3)), 0);
    cr_assert_eq(emit(&r, ev_finish()), 0);
    json_t *root = load(r.out.p);
    cr_expect_str_eq(json_string_value(json_object_get(root, "model")), "alias",
                     "without a backend name the alias is the model");
    json_t *item = json_array_get(json_object_get(root, "data"), 0);
    const char *b64 = json_string_value(json_object_get(item, "embedding"));
    cr_assert_not_null(b64, "the embedding is one base64 string");
    unsigned char bytes[64];
    cr_assert_eq(unbase64(b64, bytes, sizeof bytes), sizeof v);
    for (size_t i = 0; i < 5; i++) {
        uint32_t u = 0;
        for (int k = 0; k < 4; k++)
            u |= (uint32_t)bytes[4 * i + k] << (8 * k);
        float f;
        memcpy(&f, &u, sizeof f);
        cr_expect_eq(memcmp(&f, &v[i], sizeof f), 0, "float %zu", i);
    }
    /* 1.0f is 00 00 80 3f little-endian: "AACAPw" begins the text. */
    cr_expect_eq(strncmp(b64, "AACAPw", 6), 0, "%s", b64);
    json_decref(root);
    render_end(&r);
}

Test(openai_embed_render, base64_padding_for_every_length)
{
    /* One float is 4 bytes (one pad), two are 8 (one pad), three are 12 (none). */
    static const float v[] = {0.5f, 0.25f, 0.125f};
    static const size_t pads[] = {2, 1, 0};
    for (size_t dim = 1; dim <= 3; dim++) {
        struct render r;
        render_begin(&r, 1, true);
        cr_assert_eq(emit(&r, ev_start("m")), 0);
        cr_assert_eq(emit(&r, ev_vector(0, v, dim)), 0);
        cr_assert_eq(emit(&r, ev_usage(1)), 0);
        cr_assert_eq(emit(&r, ev_finish()), 0);
        json_t *root = load(r.out.p);
        const char *b64 = json_string_value(
            json_object_get(json_array_get(json_object_get(root, "data"), 0), "embedding"));
        size_t len = strlen(b64), pad = 0;
        while (pad < len && b64[len - 1 - pad] == '=')
            pad++;
        cr_expect_eq(pad, pads[dim - 1], "dim %zu: %s", dim, b64);
        unsigned char bytes[16];
        cr_expect_eq(unbase64(b64, bytes, sizeof bytes), dim * 4);
        json_decref(root);
        render_end(&r);
    }
}

Test(openai_embed_render, non_finite_values_become_zero)
{
    const float v[] = {NAN, INFINITY, 1.0f};
    struct render r;
    render_begin(&r, 1, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_vector(0, v, 3)), 0);
    cr_assert_eq(emit(&r, ev_usage(1)), 0);
    cr_assert_eq(emit(&r, ev_finish()), 0);
    json_t *root = load(r.out.p);
    json_t *vec = json_object_get(json_array_get(json_object_get(root, "data"), 0), "embedding");
    cr_expect_eq(json_number_value(json_array_get(vec, 0)), 0.0);
    cr_expect_eq(json_number_value(json_array_get(vec, 1)), 0.0);
    cr_expect_eq(json_number_value(json_array_get(vec, 2)), 1.0);
    json_decref(root);
    render_end(&r);
}

Test(openai_embed_render, a_missing_or_repeated_vector_is_an_error)
{
    static const float v[] = {1.0f};
    struct render r;
    render_begin(&r, 2, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_vector(0, v, 1)), 0);
    cr_assert_eq(emit(&r, ev_usage(1)), 0);
    cr_expect_neq(emit(&r, ev_finish()), 0, "input 1 never got its vector");
    cr_expect_eq(r.out.len, 0, "a failed render writes nothing");
    render_end(&r);

    render_begin(&r, 2, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_assert_eq(emit(&r, ev_vector(0, v, 1)), 0);
    cr_expect_neq(emit(&r, ev_vector(0, v, 1)), 0, "a second vector for input 0");
    render_end(&r);

    render_begin(&r, 1, false);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_neq(emit(&r, ev_vector(3, v, 1)), 0, "an index past the inputs");
    render_end(&r);
}

Test(openai_embed_render, a_chat_renderer_refuses_vectors)
{
    static const float v[] = {1.0f};
    struct render r;
    render_begin(&r, 1, false);
    r.req.kind = SB_REQ_CHAT;
    sb_openai_codec.render_deinit(r.state);
    memset(r.state, 0, sb_openai_codec.render_size);
    cr_assert_eq(sb_openai_codec.render_init(r.state, &r.req), 0);
    cr_assert_eq(emit(&r, ev_start("m")), 0);
    cr_expect_neq(emit(&r, ev_vector(0, v, 1)), 0);
    render_end(&r);
}
