/* `models synth`: GGUFs with random weights in the tensor layout of real models, so that
 * benchmarks run at realistic sizes without downloading anything. The metadata is built with
 * ggml's gguf API; the tensor data is generated and written a chunk of rows at a time after it
 * (at the offsets gguf computed), so a 2.5 GB model needs a few MB of memory. */
#include <errno.h>
#include <gguf.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "models/internal.h"

/* Weights are uniform in [-a, a] with a = 0.02 * sqrt(3): standard deviation 0.02, the usual
 * initialization scale, which keeps activations finite through any depth. */
#define WEIGHT_STD 0.02f
/* Floats generated per chunk: 4 MiB of them, whatever the tensor. */
#define CHUNK_ELEMS (1u << 20)

/* Chat templates for shapes whose vocabulary file has none, in the real models' formats. */
static const char llama3_template[] =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}";
static const char chatml_template[] =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\\n' }}{% endif %}";
static const char zephyr_template[] =
    "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + "
    "eos_token + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}"
    "{% endif %}";

/* ---------------------------------------------------------------------------------------------
 * Shapes: one row per model, numbers from the models' published configs.
 * ------------------------------------------------------------------------------------------- */
struct shape {
    const char *name;
    const char *arch; /* general.architecture: which llama.cpp loader reads it */
    uint32_t n_layer, n_embd, n_ff, n_head, n_head_kv;
    uint32_t n_ctx;       /* training context */
    float rope_theta;     /* rope.freq_base */
    float rms_eps;        /* attention.layer_norm_rms_epsilon */
    bool tied;            /* the output projection is token_embd (no output.weight) */
    bool qkv_bias;        /* q, k and v projections have biases (qwen2) */
    uint32_t n_vocab;     /* the real model's vocabulary, for a note when --vocab differs */
    const char *vocab;    /* the llama.cpp vocab-only GGUF that matches it */
    const char *template; /* used when the vocab file has no tokenizer.chat_template */
};

static const struct shape shapes[] = {
    /* For tests: loads and runs in milliseconds; any vocabulary. */
    {"tiny", "llama", 2, 64, 128, 4, 2, 2048, 10000.0f, 1e-5f, true, false, 0,
     "ggml-vocab-llama-bpe.gguf", llama3_template},
    /* meta-llama/Llama-3.2-1B: 1.24 B parameters. */
    {"llama-3.2-1b", "llama", 16, 2048, 8192, 32, 8, 131072, 500000.0f, 1e-5f, true, false, 128256,
     "ggml-vocab-llama-bpe.gguf", llama3_template},
    /* meta-llama/Llama-3.2-3B: 3.21 B parameters. */
    {"llama-3.2-3b", "llama", 28, 3072, 8192, 24, 8, 131072, 500000.0f, 1e-5f, true, false, 128256,
     "ggml-vocab-llama-bpe.gguf", llama3_template},
    /* TinyLlama/TinyLlama-1.1B-Chat-v1.0: 1.10 B parameters, its own output matrix. */
    {"tinyllama-1.1b", "llama", 22, 2048, 5632, 32, 4, 2048, 10000.0f, 1e-5f, false, false, 32000,
     "ggml-vocab-llama-spm.gguf", zephyr_template},
    /* Qwen/Qwen2.5-0.5B: 0.49 B parameters, biases on q, k, v. */
    {"qwen2.5-0.5b", "qwen2", 24, 896, 4864, 14, 2, 32768, 1000000.0f, 1e-6f, true, true, 151936,
     "ggml-vocab-qwen2.gguf", chatml_template},
};

void sb_models_synth_shapes(char *out, size_t size)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < SB_ARRAY_LEN(shapes) && o < size; i++) {
        int n = snprintf(out + o, size - o, "%s%s", i ? ", " : "", shapes[i].name);
        o += n > 0 ? (size_t)n : 0;
    }
}

/* Weight types and the general.file_type (llama.h's llama_ftype) a file of them declares. */
static const struct {
    const char *name;
    enum ggml_type type;
    uint32_t file_type;
} types[] = {
    {"f32", GGML_TYPE_F32, 0},
    {"f16", GGML_TYPE_F16, 1},
    {"q8_0", GGML_TYPE_Q8_0, 7},
    {"q4_0", GGML_TYPE_Q4_0, 2},
};

/* ---------------------------------------------------------------------------------------------
 * Tensors
 * ------------------------------------------------------------------------------------------- */
enum fill { FILL_WEIGHT, FILL_ONES, FILL_ZEROS };

struct tensor_spec {
    char name[GGML_MAX_NAME];
    int64_t ne0, ne1; /* ne1 = 1 for vectors */
    enum fill fill;
};

/* Appends a tensor spec named name, or blk.LAYER.name when layer >= 0. */
static void add_spec(struct tensor_spec *specs, size_t *n, const char *name, int layer, int64_t ne0,
                     int64_t ne1, enum fill fill)
{
    struct tensor_spec *s = &specs[(*n)++];
    if (layer >= 0)
        snprintf(s->name, sizeof s->name, "blk.%d.%s", layer, name);
    else
        snprintf(s->name, sizeof s->name, "%s", name);
    s->ne0 = ne0;
    s->ne1 = ne1;
    s->fill = fill;
}

/* Lists the tensors llama.cpp's loader for sh->arch expects, in the order converters write them.
 * specs must hold 3 + 12 * n_layer entries. Returns how many were written. */
static size_t list_tensors(const struct shape *sh, int64_t n_vocab, struct tensor_spec *specs)
{
    size_t n = 0;
    int64_t e = sh->n_embd, hd = sh->n_embd / sh->n_head;
    int64_t q = hd * sh->n_head, kv = hd * sh->n_head_kv;
    add_spec(specs, &n, "token_embd.weight", -1, e, n_vocab, FILL_WEIGHT);
    for (int i = 0; i < (int)sh->n_layer; i++) {
        add_spec(specs, &n, "attn_norm.weight", i, e, 1, FILL_ONES);
        add_spec(specs, &n, "attn_q.weight", i, e, q, FILL_WEIGHT);
        add_spec(specs, &n, "attn_k.weight", i, e, kv, FILL_WEIGHT);
        add_spec(specs, &n, "attn_v.weight", i, e, kv, FILL_WEIGHT);
        if (sh->qkv_bias) {
            add_spec(specs, &n, "attn_q.bias", i, q, 1, FILL_ZEROS);
            add_spec(specs, &n, "attn_k.bias", i, kv, 1, FILL_ZEROS);
            add_spec(specs, &n, "attn_v.bias", i, kv, 1, FILL_ZEROS);
        }
        add_spec(specs, &n, "attn_output.weight", i, q, e, FILL_WEIGHT);
        add_spec(specs, &n, "ffn_norm.weight", i, e, 1, FILL_ONES);
        add_spec(specs, &n, "ffn_gate.weight", i, e, sh->n_ff, FILL_WEIGHT);
        add_spec(specs, &n, "ffn_up.weight", i, e, sh->n_ff, FILL_WEIGHT);
        add_spec(specs, &n, "ffn_down.weight", i, sh->n_ff, e, FILL_WEIGHT);
    }
    add_spec(specs, &n, "output_norm.weight", -1, e, 1, FILL_ONES);
    if (!sh->tied)
        add_spec(specs, &n, "output.weight", -1, e, n_vocab, FILL_WEIGHT);
    return n;
}

/* splitmix64: small, fast, and good enough for weights that only need to look random. */
static uint64_t next_random(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* ---------------------------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------------------------- */
static void set_arch_u32(struct gguf_context *g, const char *arch, const char *key, uint32_t v)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    gguf_set_val_u32(g, full, v);
}

static void set_arch_f32(struct gguf_context *g, const char *arch, const char *key, float v)
{
    char full[128];
    snprintf(full, sizeof full, "%s.%s", arch, key);
    gguf_set_val_f32(g, full, v);
}

/* Copies the tokenizer.* keys of vocab into g. Returns 0 or SB_ENOMEM. */
static int copy_tokenizer(struct gguf_context *g, const struct gguf_context *vocab)
{
    struct gguf_context *tmp = gguf_init_empty();
    if (tmp == NULL)
        return SB_ENOMEM;
    gguf_set_kv(tmp, vocab);
    for (int64_t i = gguf_get_n_kv(tmp) - 1; i >= 0; i--) {
        char key[256];
        snprintf(key, sizeof key, "%s", gguf_get_key(tmp, i));
        if (strncmp(key, "tokenizer.", 10) != 0)
            gguf_remove_key(tmp, key);
    }
    gguf_set_kv(g, tmp);
    gguf_free(tmp);
    return 0;
}

static void set_metadata(struct gguf_context *g, const struct shape *sh, uint32_t file_type,
                         bool quantized, int64_t n_vocab, uint64_t seed)
{
    char text[256];
    const char *arch = sh->arch;
    gguf_set_val_str(g, "general.architecture", arch);
    snprintf(text, sizeof text, "synthetic %s (random weights)", sh->name);
    gguf_set_val_str(g, "general.name", text);
    snprintf(text, sizeof text,
             "Random weights in the shape of %s, written by switchboard models synth (seed "
             "%llu); for speed measurements only: its output is gibberish.",
             sh->name, (unsigned long long)seed);
    gguf_set_val_str(g, "general.description", text);
    gguf_set_val_u32(g, "general.file_type", file_type);
    if (quantized)
        gguf_set_val_u32(g, "general.quantization_version", GGML_QNT_VERSION);
    set_arch_u32(g, arch, "context_length", sh->n_ctx);
    set_arch_u32(g, arch, "embedding_length", sh->n_embd);
    set_arch_u32(g, arch, "block_count", sh->n_layer);
    set_arch_u32(g, arch, "feed_forward_length", sh->n_ff);
    set_arch_u32(g, arch, "attention.head_count", sh->n_head);
    set_arch_u32(g, arch, "attention.head_count_kv", sh->n_head_kv);
    set_arch_u32(g, arch, "rope.dimension_count", sh->n_embd / sh->n_head);
    set_arch_u32(g, arch, "vocab_size", (uint32_t)n_vocab);
    set_arch_f32(g, arch, "rope.freq_base", sh->rope_theta);
    set_arch_f32(g, arch, "attention.layer_norm_rms_epsilon", sh->rms_eps);
}

/* ---------------------------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------------------------- */
struct writer {
    FILE *f;
    uint64_t pos; /* bytes written so far */
    float *src;   /* CHUNK_ELEMS floats */
    void *dst;    /* their conversion, at most as large as the floats */
};

/* Writes zeros up to offset (padding between tensors). Returns 0 or SB_EIO. */
static int pad_to(struct writer *w, uint64_t offset)
{
    static const char zeros[64];
    while (w->pos < offset) {
        size_t n = (size_t)SB_MIN((uint64_t)sizeof zeros, offset - w->pos);
        if (fwrite(zeros, 1, n, w->f) != n)
            return SB_EIO;
        w->pos += n;
    }
    return 0;
}

/* Generates one tensor's values a chunk of rows at a time, converts them to type and writes them.
 * Vectors (norms, biases) are always F32. */
static int write_tensor(struct writer *w, const struct tensor_spec *s, enum ggml_type type,
                        uint64_t *rng)
{
    const float a = WEIGHT_STD * sqrtf(3.0f);
    enum ggml_type t = s->fill == FILL_WEIGHT ? type : GGML_TYPE_F32;
    int64_t rows_per_chunk = SB_MAX((int64_t)1, (int64_t)CHUNK_ELEMS / s->ne0);
    for (int64_t row = 0; row < s->ne1; row += rows_per_chunk) {
        int64_t rows = SB_MIN(rows_per_chunk, s->ne1 - row);
        size_t n = (size_t)(rows * s->ne0);
        for (size_t i = 0; i < n; i++) {
            if (s->fill == FILL_WEIGHT)
                w->src[i] = ((float)(next_random(rng) >> 40) * (1.0f / 16777216.0f) * 2 - 1) * a;
            else
                w->src[i] = s->fill == FILL_ONES ? 1.0f : 0.0f;
        }
        size_t bytes = ggml_quantize_chunk(t, w->src, w->dst, 0, rows, s->ne0, NULL);
        if (fwrite(w->dst, 1, bytes, w->f) != bytes)
            return SB_EIO;
        w->pos += bytes;
    }
    return 0;
}

/* Says that writing path failed, and why (errno). */
static void write_error(char *err, size_t err_size, const char *path)
{
    char eb[128];
    snprintf(err, err_size, "cannot write %s: %s", path,
             sb__models_errno_text(errno, eb, sizeof eb));
}

static const struct shape *find_shape(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(shapes); i++) {
        if (strcmp(shapes[i].name, name) == 0)
            return &shapes[i];
    }
    return NULL;
}

int sb_models_synth(const struct sb_models_synth_params *p, char *err, size_t err_size)
{
    int rc = SB_EINVAL;
    struct gguf_context *vocab = NULL, *g = NULL;
    struct ggml_context *tctx = NULL;
    struct tensor_spec *specs = NULL;
    struct writer w = {0};
    char *meta = NULL, *part = NULL;
    char eb[128];
    err[0] = '\0';

    const struct shape *sh = find_shape(p->shape ? p->shape : "");
    if (sh == NULL) {
        char names[256];
        sb_models_synth_shapes(names, sizeof names);
        snprintf(err, err_size, "unknown shape \"%s\"; the shapes are: %s",
                 p->shape ? p->shape : "", names);
        goto fail;
    }
    size_t ti = 0;
    while (ti < SB_ARRAY_LEN(types) && strcasecmp(types[ti].name, p->type ? p->type : "") != 0)
        ti++;
    if (ti == SB_ARRAY_LEN(types)) {
        snprintf(err, err_size, "unknown type \"%s\"; the types are f16, q8_0, q4_0 and f32",
                 p->type ? p->type : "");
        goto fail;
    }
    enum ggml_type type = types[ti].type;
    if (sh->n_embd % ggml_blck_size(type) != 0 || sh->n_ff % ggml_blck_size(type) != 0) {
        snprintf(err, err_size, "shape %s's rows are not a multiple of %s's block of %lld",
                 sh->name, types[ti].name, (long long)ggml_blck_size(type));
        goto fail;
    }
    char why[512];
    rc = sb_models_gguf_check_header(p->vocab, why, sizeof why);
    if (rc != 0) {
        snprintf(err, err_size, "--vocab %s: %s", p->vocab, why);
        goto fail;
    }
    rc = SB_EINVAL;
    vocab = gguf_init_from_file(p->vocab, (struct gguf_init_params){.no_alloc = true});
    int64_t tokens = vocab ? gguf_find_key(vocab, "tokenizer.ggml.tokens") : -1;
    if (tokens < 0) {
        snprintf(err, err_size,
                 "--vocab %s has no tokenizer.ggml.tokens; use one of llama.cpp's "
                 "models/ggml-vocab-*.gguf (%s matches %s)",
                 p->vocab, sh->vocab, sh->name);
        goto fail;
    }
    int64_t n_vocab = (int64_t)gguf_get_arr_n(vocab, tokens);
    if (sh->n_vocab != 0 && n_vocab != sh->n_vocab)
        fprintf(stderr,
                "switchboard: note: %s has %lld tokens, %s has %u (%s is the match); the "
                "embedding follows the vocabulary file\n",
                p->vocab, (long long)n_vocab, sh->name, sh->n_vocab, sh->vocab);

    /* Metadata and tensor infos. */
    rc = SB_ENOMEM;
    size_t max_specs = 3 + 12 * (size_t)sh->n_layer;
    specs = calloc(max_specs, sizeof *specs);
    g = gguf_init_empty();
    if (specs == NULL || g == NULL)
        goto fail;
    size_t n_specs = list_tensors(sh, n_vocab, specs);
    set_metadata(g, sh, types[ti].file_type, ggml_is_quantized(type), n_vocab, p->seed);
    if (copy_tokenizer(g, vocab) != 0)
        goto fail;
    if (gguf_find_key(g, "tokenizer.chat_template") < 0)
        gguf_set_val_str(g, "tokenizer.chat_template", sh->template);
    struct ggml_init_params ip = {
        .mem_size = (n_specs + 1) * ggml_tensor_overhead(), .mem_buffer = NULL, .no_alloc = true};
    tctx = ggml_init(ip);
    if (tctx == NULL)
        goto fail;
    for (size_t i = 0; i < n_specs; i++) {
        const struct tensor_spec *s = &specs[i];
        enum ggml_type t = s->fill == FILL_WEIGHT ? type : GGML_TYPE_F32;
        struct ggml_tensor *tensor = s->ne1 > 1 ? ggml_new_tensor_2d(tctx, t, s->ne0, s->ne1)
                                                : ggml_new_tensor_1d(tctx, t, s->ne0);
        ggml_set_name(tensor, s->name);
        gguf_add_tensor(g, tensor);
    }

    /* The file: metadata, then each tensor at its offset, written to OUT.part and renamed. */
    size_t meta_size = gguf_get_meta_size(g);
    size_t part_len = strlen(p->out) + sizeof SB__MODELS_PART;
    meta = malloc(meta_size);
    part = malloc(part_len);
    w.src = malloc(CHUNK_ELEMS * sizeof(float));
    w.dst = malloc(CHUNK_ELEMS * sizeof(float));
    if (meta == NULL || part == NULL || w.src == NULL || w.dst == NULL)
        goto fail;
    snprintf(part, part_len, "%s%s", p->out, SB__MODELS_PART);
    gguf_get_meta_data(g, meta);
    rc = SB_EIO;
    w.f = fopen(part, "wb");
    if (w.f == NULL) {
        snprintf(err, err_size, "cannot create %s: %s", part,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    if (fwrite(meta, 1, meta_size, w.f) != meta_size) {
        write_error(err, err_size, part);
        goto fail;
    }
    w.pos = meta_size;
    size_t align = gguf_get_alignment(g);
    for (size_t i = 0; i < n_specs; i++) {
        /* Each tensor has its own stream, so the seed fixes every tensor's values. */
        uint64_t rng = p->seed * 0x100000001b3ull + i;
        if (pad_to(&w, meta_size + gguf_get_tensor_offset(g, (int64_t)i)) != 0 ||
            write_tensor(&w, &specs[i], type, &rng) != 0) {
            write_error(err, err_size, part);
            goto fail;
        }
        if (p->progress)
            fprintf(stderr, "\r  %zu/%zu tensors, %.1f MB\033[K", i + 1, n_specs,
                    (double)w.pos / 1e6);
    }
    if (pad_to(&w, (w.pos + align - 1) / align * align) != 0) {
        write_error(err, err_size, part);
        goto fail;
    }
    if (p->progress)
        fputc('\n', stderr);
    int closed = fflush(w.f) != 0 || fsync(fileno(w.f)) != 0;
    closed |= fclose(w.f) != 0;
    w.f = NULL;
    if (closed) {
        write_error(err, err_size, part);
        goto fail;
    }
    if (rename(part, p->out) != 0) {
        snprintf(err, err_size, "cannot rename %s to %s: %s", part, p->out,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    rc = 0;
fail:
    if (rc == SB_ENOMEM && err[0] == '\0')
        snprintf(err, err_size, "out of memory");
    if (w.f != NULL)
        fclose(w.f);
    if (rc != 0 && part != NULL)
        unlink(part);
    free(w.src);
    free(w.dst);
    free(meta);
    free(part);
    if (tctx != NULL)
        ggml_free(tctx);
    free(specs);
    if (g != NULL)
        gguf_free(g);
    if (vocab != NULL)
        gguf_free(vocab);
    return rc;
}
