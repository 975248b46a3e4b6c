/* Model management: the `switchboard models` commands (list, show, pull, rm, synth), the manifest
 * each models folder keeps of what was pulled, GGUF header and metadata checks, sha256 pins, and
 * random-weight GGUFs in the shapes of real models for benchmarks. gguf.h and ggml.h are included
 * only by this module's .c files; downloads go through the upstream module. */
#ifndef SB_MODELS_H
#define SB_MODELS_H

#include "config/config.h"
#include "core/core.h"

/* ---------------------------------------------------------------------------------------------
 * Commands, for src/cli/main.c's table. argv[0] is the first argument after "models VERB".
 * Each returns the process exit status: 0 success, 1 a failure while running (download, disk,
 * verification), 2 bad usage or configuration.
 * ------------------------------------------------------------------------------------------- */
int sb_models_list_cli(int argc, char **argv);
int sb_models_show_cli(int argc, char **argv);
int sb_models_pull_cli(int argc, char **argv);
int sb_models_rm_cli(int argc, char **argv);
int sb_models_synth_cli(int argc, char **argv);

/* ---------------------------------------------------------------------------------------------
 * GGUF files
 * ------------------------------------------------------------------------------------------- */
/* Checks that path starts with a GGUF header llama.cpp reads: the magic "GGUF" and version 2 or
 * 3. Returns 0; SB_EINVAL when it is not one (why says what was found: "it starts with <html"),
 * SB_EIO when it cannot be read. why receives a NUL-terminated line (at most why_size bytes). */
int sb_models_gguf_check_header(const char *path, char *why, size_t why_size);

/* What `models show` prints, read from a GGUF's metadata (tensor data is not read). */
struct sb_models_gguf_info {
    uint32_t version;      /* GGUF version */
    char arch[64];         /* general.architecture; "" if absent */
    char name[128];        /* general.name; "" if absent */
    char quantization[32]; /* from general.file_type, else the most common weight type */
    int64_t n_params;      /* elements of all tensors */
    int64_t n_tensors;
    int64_t context_length; /* ARCH.context_length; 0 if absent */
    int64_t n_embd;         /* ARCH.embedding_length; 0 if absent */
    int64_t n_layer;        /* ARCH.block_count; 0 if absent */
    int64_t n_head;         /* ARCH.attention.head_count; 0 if absent */
    int64_t n_head_kv;      /* ARCH.attention.head_count_kv; 0 if absent */
    int64_t n_vocab;        /* entries of tokenizer.ggml.tokens; 0 if absent */
    char tokenizer[32];     /* tokenizer.ggml.model ("gpt2", "llama"); "" if absent */
    bool has_chat_template; /* tokenizer.chat_template is set */
    uint64_t data_end;      /* bytes the file must hold: the end of its last tensor's data */
};

/* Reads path's metadata into *out. Returns 0; SB_EINVAL (with why) when it is not a GGUF
 * llama.cpp's reader accepts; SB_EIO when it cannot be read. */
int sb_models_gguf_read_info(const char *path, struct sb_models_gguf_info *out, char *why,
                             size_t why_size);

/* ---------------------------------------------------------------------------------------------
 * Hashes and pins
 * ------------------------------------------------------------------------------------------- */
/* Writes the lowercase hex sha256 of path's bytes into out. Returns 0, SB_EIO (why says why). */
int sb_models_sha256_file(const char *path, char out[65], char *why, size_t why_size);

/* True when text is 64 hex digits (either case). */
bool sb_models_sha256_valid(const char *text);

/* Checks a model's `sha256:` pin, for `serve` before the backend is created: no pin, or no path
 * (a remote backend), passes. Hashes the whole file (seconds for a GB-sized model). Returns 0;
 * SB_EINVAL (malformed pin, or the file's hash differs), SB_EIO (cannot read); err then says
 * which file, both hashes and what to do (the caller names the model). m->path must be resolved
 * (sb_config_resolve_models). */
int sb_models_verify_pin(const struct sb_model_config *m, char *err, size_t err_size);

/* ---------------------------------------------------------------------------------------------
 * The manifest: DIR/manifest.json records what `models pull` put into DIR.
 * ------------------------------------------------------------------------------------------- */
struct sb_models_entry {
    char *name;        /* owned; the file is DIR/<name>.gguf */
    char *source;      /* owned; the URL or hf: reference it came from */
    int64_t size;      /* bytes */
    char sha256[65];   /* lowercase hex; "" if unknown */
    int64_t pulled_at; /* unix time */
};

struct sb_models_manifest {
    struct sb_models_entry *entries; /* owned, n of them, in insertion order */
    size_t n;
};

/* Reads DIR/manifest.json into *out (an empty manifest when the file does not exist). Returns 0;
 * SB_EINVAL (malformed; why says where), SB_EIO, SB_ENOMEM. The caller frees *out with
 * sb_models_manifest_free, also after a failure. */
int sb_models_manifest_load(const char *dir, struct sb_models_manifest *out, char *why,
                            size_t why_size);
/* Writes m to DIR/manifest.json atomically: a temporary file in DIR, fsync, then rename, so a
 * reader sees the old manifest or the new one, never a mix. Returns 0, SB_EIO (why), SB_ENOMEM. */
int sb_models_manifest_save(const char *dir, const struct sb_models_manifest *m, char *why,
                            size_t why_size);
/* The entry named name, or NULL; valid until m changes. */
const struct sb_models_entry *sb_models_manifest_find(const struct sb_models_manifest *m,
                                                      const char *name);
/* Adds a copy of e, replacing an entry of the same name. Returns 0 or SB_ENOMEM. */
int sb_models_manifest_put(struct sb_models_manifest *m, const struct sb_models_entry *e);
/* Removes the entry named name; returns whether there was one. */
bool sb_models_manifest_remove(struct sb_models_manifest *m, const char *name);
/* Frees the entries; *m is empty afterwards. */
void sb_models_manifest_free(struct sb_models_manifest *m);

/* ---------------------------------------------------------------------------------------------
 * Pulling
 * ------------------------------------------------------------------------------------------- */
/* Turns a pull SOURCE into the URL to fetch: http:// and https:// URLs are kept;
 * hf:ORG/REPO/PATH.gguf becomes https://huggingface.co/ORG/REPO/resolve/main/PATH.gguf, and
 * hf:ORG/REPO@REV/PATH.gguf resolves REV instead of main. Appends the URL to url; writes the
 * default model name (the file's base name without .gguf; "" if it has none usable) into name.
 * Returns 0, or SB_EINVAL with why (an unknown scheme, a malformed hf: reference). */
int sb_models_source_url(const char *source, struct sb_buf *url, char *name, size_t name_size,
                         char *why, size_t why_size);

/* True when name can name a model file: 1 to 128 of [A-Za-z0-9._-], not starting with '.'. */
bool sb_models_name_valid(const char *name);

/* ---------------------------------------------------------------------------------------------
 * Synthetic models
 * ------------------------------------------------------------------------------------------- */
struct sb_models_synth_params {
    const char *shape; /* a row of the shape table: "llama-3.2-1b", "tiny", ... */
    const char *type;  /* weight type: "f16", "q8_0", "q4_0" (also "f32") */
    const char *vocab; /* a (vocab-only) GGUF whose tokenizer.* metadata is copied */
    const char *out;   /* the GGUF to write; written to OUT.part, then renamed */
    uint64_t seed;     /* the same seed gives the same file */
    bool progress;     /* print progress to stderr */
};

/* Writes a GGUF with random weights (uniform, std 0.02; norms 1) in the shape's tensor layout, so
 * that llama.cpp loads and runs it at the real model's size and speed. Tensor data is streamed to
 * the file a chunk of rows at a time, so memory stays small whatever the model's size. Returns 0;
 * SB_EINVAL (unknown shape or type, a vocab that is not a GGUF with tokenizer.ggml.tokens),
 * SB_EIO, SB_ENOMEM; err says which. */
int sb_models_synth(const struct sb_models_synth_params *p, char *err, size_t err_size);

/* Writes the shape table's names, for help, into out: "tiny, llama-3.2-1b, ..." (cut at size). */
void sb_models_synth_shapes(char *out, size_t size);

#endif
