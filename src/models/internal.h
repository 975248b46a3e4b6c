/* The models module's private helpers, shared by its files. Nothing outside src/models (and its
 * tests) includes this. */
#ifndef SB_MODELS_INTERNAL_H
#define SB_MODELS_INTERNAL_H

#include "models/models.h"

/* The manifest's file name inside a models folder. */
#define SB__MODELS_MANIFEST "manifest.json"
/* The suffix of a download in progress: DIR/<name>.gguf.part. */
#define SB__MODELS_PART ".part"

/* The name llama-quantize gives a GGUF's general.file_type ("Q4_0"), or NULL when unknown. */
const char *sb__models_file_type_name(uint32_t file_type);

/* Takes an exclusive lock on DIR/.manifest.lock so that two commands updating the same manifest
 * take turns. Returns the descriptor (>= 0) to pass to sb__models_unlock, or SB_EIO with why. */
int sb__models_lock(const char *dir, char *why, size_t why_size);
void sb__models_unlock(int fd);

/* Writes strerror_r's text for errnum into buf and returns it. */
const char *sb__models_errno_text(int errnum, char *buf, size_t size);
/* Copies a valid sha256 (sb_models_sha256_valid) into out in lower case. */
void sb__models_sha256_lower(const char *sha, char out[65]);
/* Writes v bytes as people read them ("1.2 MB", decimal units) into out. */
void sb__models_human_bytes(double v, char *out, size_t size);

/* ---------------------------------------------------------------------------------------------
 * models pull (pull.c)
 * ------------------------------------------------------------------------------------------- */
struct sb__models_pull {
    const char *source; /* an http(s):// URL or an hf: reference */
    const char *name;   /* NULL = the source's file name without .gguf */
    const char *sha256; /* NULL = not checked (the hash is recorded either way) */
    const char *dir;    /* the models folder; created when missing */
    bool progress;      /* draw a progress bar on stderr (a terminal) */
};

/* Downloads p->source to DIR/NAME.gguf.part (resuming what an earlier pull left there), checks the
 * GGUF header, the data's extent and the sha256, renames it to DIR/NAME.gguf and records it in
 * DIR/manifest.json. Progress and notes go to stderr. Returns 0 with what was pulled in msg;
 * otherwise msg says what went wrong and what to do, and the result tells which kind:
 * SB_EINVAL bad arguments (nothing was fetched); SB_ECONNECT or SB_ETIMEOUT an interrupted
 * transfer (the .part is kept: the same command resumes it); SB_EUPSTREAM an error status, or a
 * file that failed verification (removed); SB_EIO a local file operation; SB_ENOMEM. */
int sb__models_pull(const struct sb__models_pull *p, struct sb_buf *msg);

#endif
