/* sha256 of model files (OpenSSL EVP), and the `sha256:` pin `serve` checks before loading. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/internal.h"

/* Read in large pieces: hashing runs at disk speed either way, and fewer calls cost less. */
#define HASH_CHUNK (1u << 20)

bool sb_models_sha256_valid(const char *text)
{
    if (text == NULL)
        return false;
    size_t n = 0;
    for (; text[n] != '\0'; n++) {
        char c = text[n];
        bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (!hex)
            return false;
    }
    return n == 64;
}

void sb__models_sha256_lower(const char *sha, char out[65])
{
    for (size_t i = 0; i < 64; i++)
        out[i] = (char)(sha[i] >= 'A' && sha[i] <= 'F' ? sha[i] + ('a' - 'A') : sha[i]);
    out[64] = '\0';
}

int sb_models_sha256_file(const char *path, char out[65], char *why, size_t why_size)
{
    int rc = SB_EIO;
    out[0] = '\0';
    unsigned char *chunk = NULL;
    EVP_MD_CTX *md = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        char eb[128];
        snprintf(why, why_size, "cannot open %s: %s", path,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    chunk = malloc(HASH_CHUNK);
    md = EVP_MD_CTX_new();
    if (chunk == NULL || md == NULL) {
        snprintf(why, why_size, "out of memory hashing %s", path);
        rc = SB_ENOMEM;
        goto fail;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        snprintf(why, why_size, "OpenSSL has no sha256");
        goto fail;
    }
    for (;;) {
        size_t got = fread(chunk, 1, HASH_CHUNK, f);
        if (got == 0)
            break;
        if (EVP_DigestUpdate(md, chunk, got) != 1) {
            snprintf(why, why_size, "sha256 of %s failed", path);
            goto fail;
        }
    }
    if (ferror(f)) {
        char eb[128];
        snprintf(why, why_size, "cannot read %s: %s", path,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(md, digest, &len) != 1 || len != 32) {
        snprintf(why, why_size, "sha256 of %s failed", path);
        goto fail;
    }
    static const char hex[] = "0123456789abcdef";
    for (unsigned i = 0; i < len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[64] = '\0';
    rc = 0;
fail:
    EVP_MD_CTX_free(md);
    free(chunk);
    if (f != NULL)
        fclose(f);
    return rc;
}

int sb_models_verify_pin(const struct sb_model_config *m, char *err, size_t err_size)
{
    if (m->sha256 == NULL || m->sha256[0] == '\0' || m->path == NULL)
        return 0;
    if (!sb_models_sha256_valid(m->sha256)) {
        snprintf(err, err_size,
                 "its sha256 \"%s\" is not a sha256 (64 hex digits); copy it from "
                 "`switchboard models list` or `sha256sum`",
                 m->sha256);
        return SB_EINVAL;
    }
    char got[65], why[512];
    int rc = sb_models_sha256_file(m->path, got, why, sizeof why);
    if (rc != 0) {
        snprintf(err, err_size, "cannot check its sha256 pin: %s", why);
        return rc;
    }
    char want[65];
    sb__models_sha256_lower(m->sha256, want);
    if (strcmp(got, want) != 0) {
        snprintf(err, err_size,
                 "%s does not match its sha256 pin: expected %s, got %s; the file changed or "
                 "is another model: pull it again, or update sha256: in the config",
                 m->path, want, got);
        return SB_EINVAL;
    }
    return 0;
}
