/* Tests for `models synth`: the tiny shape, with llama.cpp's Llama-3 vocabulary, in each weight
 * type, has the metadata asked for, loads in the real local backend, generates the tokens asked
 * for and embeds to finite values; the seed fixes the bytes; bad arguments are refused and leave
 * no file. The 1B shapes are exercised by the benchmarks, not here (gigabytes). */
#include "../backend/local_harness.h"
#include "models_harness.h"

#include <event2/thread.h>
#include <limits.h>
#include <math.h>
#include <sys/stat.h>

#include "models/models.h"

#define VOCAB_FILE "ggml-vocab-llama-bpe.gguf"
#define VOCAB_SIZE 128256 /* Llama 3's */

static void suite_init(void)
{
    evthread_use_pthreads();
    sb_log_set_level(SB_LOG_ERROR);
}

TestSuite(models_synth, .init = suite_init, .timeout = 180);

/* llama.cpp's vocab-only Llama-3 GGUF: in PREFIX/src/models, where PREFIX is what the build wrote
 * to BUILD/.llama-prefix beside this test binary, or $SB_LLAMA_PREFIX. Malloc'd. */
static char *vocab_path(void)
{
    char prefix[PATH_MAX] = "";
    const char *env = getenv("SB_LLAMA_PREFIX");
    if (env != NULL && env[0] != '\0') {
        snprintf(prefix, sizeof prefix, "%s", env);
    } else {
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        cr_assert_gt(n, 0);
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        cr_assert_not_null(slash);
        snprintf(slash + 1, sizeof exe - (size_t)(slash + 1 - exe), ".llama-prefix");
        FILE *f = fopen(exe, "r");
        cr_assert_not_null(f, "%s not found: build with make, or set SB_LLAMA_PREFIX", exe);
        cr_assert_not_null(fgets(prefix, sizeof prefix, f));
        fclose(f);
        prefix[strcspn(prefix, "\n")] = '\0';
    }
    struct sb_buf b;
    sb_buf_init(&b, PATH_MAX);
    cr_assert_eq(sb_buf_printf(&b, "%s/src/models/" VOCAB_FILE, prefix), 0);
    char *path = sb_buf_steal(&b);
    cr_assert_eq(access(path, R_OK), 0,
                 "%s is missing: scripts/deps.sh copies llama.cpp's models/ into the prefix", path);
    return path;
}

/* Synthesizes the tiny shape of type into dir/name; returns the malloc'd path. */
static char *synth(const char *dir, const char *name, const char *type, uint64_t seed)
{
    char *vocab = vocab_path();
    char *out = malloc(PATH_MAX);
    cr_assert_not_null(out);
    snprintf(out, PATH_MAX, "%s/%s", dir, name);
    struct sb_models_synth_params p = {
        .shape = "tiny", .type = type, .vocab = vocab, .out = out, .seed = seed};
    char err[1024] = "";
    cr_assert_eq(sb_models_synth(&p, err, sizeof err), 0, "%s", err);
    free(vocab);
    return out;
}

static void assert_finite_embedding(const char *path)
{
    struct sb_model_config cfg = {.name = "emb", .backend = "local", .path = (char *)path};
    cfg.keep_alive = -1;
    cfg.queue_size = 16;
    cfg.n_ctx = 256;
    cfg.n_parallel = 1;
    cfg.embeddings = true;
    struct sb_backend *b = open_config(&cfg);
    struct event_base *base = base_new();
    struct sb_str input = SB_STR_LIT("The quick brown fox jumps over the lazy dog");
    struct run r;
    run_init(&r, b, base, "", 0);
    r.req.kind = SB_REQ_EMBED;
    r.req.inputs = &input;
    r.req.n_inputs = 1;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 0, "%s", r.err_msg);
    cr_assert_eq(r.dim, 64, "the tiny shape's n_embd");
    cr_assert_not_null(r.vectors[0]);
    double norm = 0;
    for (size_t i = 0; i < r.dim; i++) {
        cr_assert(isfinite(r.vectors[0][i]), "embedding[%zu] = %f", i, r.vectors[0][i]);
        norm += (double)r.vectors[0][i] * r.vectors[0][i];
    }
    cr_assert_gt(norm, 0, "an all-zero hidden state");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

static void assert_generates(const char *path, int64_t n_tokens)
{
    struct sb_model_config cfg = {.name = "gen", .backend = "local", .path = (char *)path};
    cfg.keep_alive = -1;
    cfg.queue_size = 16;
    cfg.n_ctx = 256;
    cfg.n_parallel = 1;
    struct sb_backend *b = open_config(&cfg);
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    cr_assert_str_eq(info.family, "llama");
    struct event_base *base = base_new();
    struct run r;
    run_init(&r, b, base, "Once upon a time", n_tokens);
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 0, "%s", r.err_msg);
    cr_assert_eq(r.reason, SB_FINISH_LENGTH);
    cr_assert_eq(r.usage.completion_tokens, n_tokens);
    cr_assert_gt(r.usage.prompt_tokens, 1, "the Llama-3 tokenizer split the prompt");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

/* Each row: a weight type, and the quantization `models show` reports for it. */
static const struct {
    const char *type, *quantization;
} types[] = {{"f16", "F16"}, {"q8_0", "Q8_0"}, {"q4_0", "Q4_0"}};

Test(models_synth, tiny_loads_and_generates_in_each_type)
{
    char *dir = temp_dir();
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        char *path = synth(dir, "tiny.gguf", types[i].type, 42);
        struct sb_models_gguf_info info;
        char why[512] = "";
        cr_assert_eq(sb_models_gguf_read_info(path, &info, why, sizeof why), 0, "%s", why);
        cr_assert_str_eq(info.arch, "llama");
        cr_assert_str_eq(info.quantization, types[i].quantization);
        cr_assert_eq(info.n_layer, 2);
        cr_assert_eq(info.n_embd, 64);
        cr_assert_eq(info.n_head, 4);
        cr_assert_eq(info.n_head_kv, 2);
        cr_assert_eq(info.n_vocab, VOCAB_SIZE);
        cr_assert_str_eq(info.tokenizer, "gpt2");
        cr_assert(info.has_chat_template);
        cr_assert_eq(info.n_tensors, 2 + 2 * 9, "tied embeddings: no output.weight");
        struct stat st;
        cr_assert_eq(stat(path, &st), 0);
        cr_assert_leq(info.data_end, (uint64_t)st.st_size);
        cr_assert_lt((uint64_t)st.st_size - info.data_end, 32, "only alignment padding follows");
        cr_assert_eq(access("tiny.gguf.part", F_OK), -1);

        assert_generates(path, 12);
        if (i == 0)
            assert_finite_embedding(path);
        unlink(path);
        free(path);
    }
    cr_assert_eq(count_files(dir), 0, "no .part is left behind");
    remove_tree(dir);
}

Test(models_synth, the_seed_fixes_the_bytes)
{
    char *dir = temp_dir();
    char *a = synth(dir, "a.gguf", "q8_0", 7);
    char *b = synth(dir, "b.gguf", "q8_0", 7);
    char *c = synth(dir, "c.gguf", "q8_0", 8);
    char sa[65], sb[65], sc[65], why[256];
    cr_assert_eq(sb_models_sha256_file(a, sa, why, sizeof why), 0);
    cr_assert_eq(sb_models_sha256_file(b, sb, why, sizeof why), 0);
    cr_assert_eq(sb_models_sha256_file(c, sc, why, sizeof why), 0);
    cr_assert_str_eq(sa, sb);
    cr_assert_str_neq(sa, sc);
    free(a);
    free(b);
    free(c);
    remove_tree(dir);
}

Test(models_synth, refuses_bad_arguments)
{
    char *dir = temp_dir();
    char *vocab = vocab_path();
    char out[PATH_MAX];
    snprintf(out, sizeof out, "%s/x.gguf", dir);
    char *text = write_file(dir, "vocab.txt", "not a gguf", 10);
    char missing[PATH_MAX];
    snprintf(missing, sizeof missing, "%s/no/such/x.gguf", dir);
    /* Each row: the parameters, the result, and a word the message must contain. */
    const struct {
        struct sb_models_synth_params p;
        int rc;
        const char *why;
    } rows[] = {
        {{.shape = "llama-9b", .type = "f16", .vocab = vocab, .out = out},
         SB_EINVAL,
         "llama-3.2-1b"},
        {{.shape = "tiny", .type = "q5_k", .vocab = vocab, .out = out}, SB_EINVAL, "q4_0"},
        {{.shape = "tiny", .type = "f16", .vocab = text, .out = out}, SB_EINVAL, "not a GGUF"},
        {{.shape = "tiny", .type = "f16", .vocab = vocab, .out = missing}, SB_EIO, "cannot create"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[1024] = "";
        cr_assert_eq(sb_models_synth(&rows[i].p, err, sizeof err), rows[i].rc, "row %zu: %s", i,
                     err);
        cr_assert_not_null(strstr(err, rows[i].why), "row %zu: %s", i, err);
    }
    cr_assert_eq(count_files(dir), 1, "only vocab.txt: nothing was written");
    free(text);
    free(vocab);
    remove_tree(dir);
}
