/* GGUF files as the models commands see them: the header check a download must pass, and the
 * metadata `models show` prints, read with ggml's gguf reader (tensor data is never loaded). */
#include <ctype.h>
#include <errno.h>
#include <gguf.h>
#include <stdio.h>
#include <string.h>

#include "models/internal.h"

/* llama.cpp reads GGUF versions 2 and 3; version 1 files predate the format's freeze. */
#define GGUF_MIN_VERSION 2u
#define GGUF_MAX_VERSION 3u

/* ---------------------------------------------------------------------------------------------
 * Header check
 * ------------------------------------------------------------------------------------------- */
/* Appends up to n bytes of p as printable text, for messages about what a file holds instead. */
static void describe_bytes(char *out, size_t size, const unsigned char *p, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < size; i++)
        out[o++] = isprint(p[i]) ? (char)p[i] : '.';
    out[o] = '\0';
}

int sb_models_gguf_check_header(const char *path, char *why, size_t why_size)
{
    unsigned char head[8] = {0};
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        char eb[128];
        snprintf(why, why_size, "cannot open %s: %s", path,
                 sb__models_errno_text(errno, eb, sizeof eb));
        return SB_EIO;
    }
    size_t got = fread(head, 1, sizeof head, f);
    fclose(f);
    if (got < 4 || memcmp(head, GGUF_MAGIC, 4) != 0) {
        char text[16];
        describe_bytes(text, sizeof text, head, got);
        snprintf(why, why_size, "not a GGUF file: it starts with \"%s\" instead of \"GGUF\"%s",
                 text, got < 4 ? " (it is shorter than a header)" : "");
        return SB_EINVAL;
    }
    if (got < 8) {
        snprintf(why, why_size, "not a GGUF file: it ends inside the header (%zu bytes)", got);
        return SB_EINVAL;
    }
    /* The version is a little-endian uint32 after the magic. */
    uint32_t version = (uint32_t)head[4] | (uint32_t)head[5] << 8 | (uint32_t)head[6] << 16 |
                       (uint32_t)head[7] << 24;
    if (version < GGUF_MIN_VERSION || version > GGUF_MAX_VERSION) {
        snprintf(why, why_size,
                 "not a GGUF file llama.cpp can read: version %u (supported: %u to %u)", version,
                 GGUF_MIN_VERSION, GGUF_MAX_VERSION);
        return SB_EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Metadata
 * ------------------------------------------------------------------------------------------- */
/* general.file_type values (llama.h's enum llama_ftype) and the names llama-quantize gives them.
 * llama.h stays in backend/local*, so the numbers are written out here. */
static const struct {
    uint32_t file_type;
    const char *name;
} file_types[] = {
    {0, "F32"},      {1, "F16"},      {2, "Q4_0"},       {3, "Q4_1"},    {7, "Q8_0"},
    {8, "Q5_0"},     {9, "Q5_1"},     {10, "Q2_K"},      {11, "Q3_K_S"}, {12, "Q3_K_M"},
    {13, "Q3_K_L"},  {14, "Q4_K_S"},  {15, "Q4_K_M"},    {16, "Q5_K_S"}, {17, "Q5_K_M"},
    {18, "Q6_K"},    {19, "IQ2_XXS"}, {20, "IQ2_XS"},    {21, "Q2_K_S"}, {22, "IQ3_XS"},
    {23, "IQ3_XXS"}, {24, "IQ1_S"},   {25, "IQ4_NL"},    {26, "IQ3_S"},  {27, "IQ3_M"},
    {28, "IQ2_S"},   {29, "IQ2_M"},   {30, "IQ4_XS"},    {31, "IQ1_M"},  {32, "BF16"},
    {36, "TQ1_0"},   {37, "TQ2_0"},   {38, "MXFP4_MOE"},
};

const char *sb__models_file_type_name(uint32_t file_type)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(file_types); i++) {
        if (file_types[i].file_type == file_type)
            return file_types[i].name;
    }
    return NULL;
}

/* Reads an unsigned integer key of any integer type; 0 when absent or not an integer. */
static int64_t get_int(const struct gguf_context *g, const char *key)
{
    int64_t id = gguf_find_key(g, key);
    if (id < 0)
        return 0;
    switch (gguf_get_kv_type(g, id)) {
    case GGUF_TYPE_UINT8: return gguf_get_val_u8(g, id);
    case GGUF_TYPE_INT8: return gguf_get_val_i8(g, id);
    case GGUF_TYPE_UINT16: return gguf_get_val_u16(g, id);
    case GGUF_TYPE_INT16: return gguf_get_val_i16(g, id);
    case GGUF_TYPE_UINT32: return gguf_get_val_u32(g, id);
    case GGUF_TYPE_INT32: return gguf_get_val_i32(g, id);
    case GGUF_TYPE_UINT64: return (int64_t)gguf_get_val_u64(g, id);
    case GGUF_TYPE_INT64: return gguf_get_val_i64(g, id);
    default: return 0;
    }
}

/* An integer key under the architecture's prefix: "llama" + ".block_count". */
static int64_t get_arch_int(const struct gguf_context *g, const char *arch, const char *suffix)
{
    char key[160];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    return get_int(g, key);
}

static void get_str(const struct gguf_context *g, const char *key, char *out, size_t size)
{
    out[0] = '\0';
    int64_t id = gguf_find_key(g, key);
    if (id >= 0 && gguf_get_kv_type(g, id) == GGUF_TYPE_STRING)
        snprintf(out, size, "%s", gguf_get_val_str(g, id));
}

/* The weight type holding the most bytes among tensors of two or more dimensions, upper case. */
static void dominant_type(const struct gguf_context *g, char *out, size_t size)
{
    uint64_t bytes[GGML_TYPE_COUNT] = {0};
    for (int64_t i = 0; i < gguf_get_n_tensors(g); i++) {
        enum ggml_type t = gguf_get_tensor_type(g, i);
        if (gguf_get_tensor_ne(g, i)[1] > 1 && (int)t >= 0 && t < GGML_TYPE_COUNT)
            bytes[t] += gguf_get_tensor_size(g, i);
    }
    size_t best = 0;
    for (size_t t = 1; t < GGML_TYPE_COUNT; t++) {
        if (bytes[t] > bytes[best])
            best = t;
    }
    const char *name = bytes[best] ? ggml_type_name((enum ggml_type)best) : "unknown";
    size_t o = 0;
    for (; name[o] != '\0' && o + 1 < size; o++)
        out[o] = (char)toupper((unsigned char)name[o]);
    out[o] = '\0';
}

int sb_models_gguf_read_info(const char *path, struct sb_models_gguf_info *out, char *why,
                             size_t why_size)
{
    memset(out, 0, sizeof *out);
    int rc = sb_models_gguf_check_header(path, why, why_size);
    if (rc != 0)
        return rc;
    struct gguf_init_params params = {.no_alloc = true, .ctx = NULL};
    struct gguf_context *g = gguf_init_from_file(path, params);
    if (g == NULL) {
        snprintf(why, why_size,
                 "%s has a GGUF header but its metadata cannot be read (truncated or corrupt)",
                 path);
        return SB_EINVAL;
    }
    out->version = gguf_get_version(g);
    get_str(g, "general.architecture", out->arch, sizeof out->arch);
    get_str(g, "general.name", out->name, sizeof out->name);
    get_str(g, "tokenizer.ggml.model", out->tokenizer, sizeof out->tokenizer);
    out->has_chat_template = gguf_find_key(g, "tokenizer.chat_template") >= 0;
    int64_t tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (tokens >= 0 && gguf_get_kv_type(g, tokens) == GGUF_TYPE_ARRAY)
        out->n_vocab = (int64_t)gguf_get_arr_n(g, tokens);
    if (out->arch[0] != '\0') {
        out->context_length = get_arch_int(g, out->arch, "context_length");
        out->n_embd = get_arch_int(g, out->arch, "embedding_length");
        out->n_layer = get_arch_int(g, out->arch, "block_count");
        out->n_head = get_arch_int(g, out->arch, "attention.head_count");
        out->n_head_kv = get_arch_int(g, out->arch, "attention.head_count_kv");
    }
    const char *ft = NULL;
    if (gguf_find_key(g, "general.file_type") >= 0)
        ft = sb__models_file_type_name((uint32_t)get_int(g, "general.file_type"));
    if (ft != NULL)
        snprintf(out->quantization, sizeof out->quantization, "%s", ft);
    else
        dominant_type(g, out->quantization, sizeof out->quantization);

    out->n_tensors = gguf_get_n_tensors(g);
    size_t data = gguf_get_data_offset(g);
    for (int64_t i = 0; i < out->n_tensors; i++) {
        const int64_t *ne = gguf_get_tensor_ne(g, i);
        int64_t n = 1;
        for (int d = 0; d < GGML_MAX_DIMS; d++)
            n *= ne[d];
        out->n_params += n;
        uint64_t end = data + gguf_get_tensor_offset(g, i) + gguf_get_tensor_size(g, i);
        if (end > out->data_end)
            out->data_end = end;
    }
    if (out->n_tensors == 0)
        out->data_end = data;
    gguf_free(g);
    return 0;
}
