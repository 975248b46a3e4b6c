/* The manifest of a models folder: DIR/manifest.json, one entry per pulled model (name, source,
 * size, sha256, when), rewritten atomically (temporary file, fsync, rename) under a lock file so
 * that concurrent commands never lose each other's entries or leave half a file. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "models/internal.h"

/* A manifest lists models, not data: anything larger is not one of ours. */
#define MANIFEST_MAX_BYTES (16u << 20)
#define MANIFEST_VERSION   1

/* ---------------------------------------------------------------------------------------------
 * Entries
 * ------------------------------------------------------------------------------------------- */
static void entry_free(struct sb_models_entry *e)
{
    free(e->name);
    free(e->source);
    memset(e, 0, sizeof *e);
}

void sb_models_manifest_free(struct sb_models_manifest *m)
{
    for (size_t i = 0; i < m->n; i++)
        entry_free(&m->entries[i]);
    free(m->entries);
    m->entries = NULL;
    m->n = 0;
}

const struct sb_models_entry *sb_models_manifest_find(const struct sb_models_manifest *m,
                                                      const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->entries[i].name, name) == 0)
            return &m->entries[i];
    }
    return NULL;
}

int sb_models_manifest_put(struct sb_models_manifest *m, const struct sb_models_entry *e)
{
    struct sb_models_entry copy = {
        .name = strdup(e->name),
        .source = strdup(e->source ? e->source : ""),
        .size = e->size,
        .pulled_at = e->pulled_at,
    };
    snprintf(copy.sha256, sizeof copy.sha256, "%s", e->sha256);
    if (copy.name == NULL || copy.source == NULL)
        goto fail;
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->entries[i].name, e->name) == 0) {
            entry_free(&m->entries[i]);
            m->entries[i] = copy;
            return 0;
        }
    }
    struct sb_models_entry *grown = realloc(m->entries, (m->n + 1) * sizeof *grown);
    if (grown == NULL)
        goto fail;
    m->entries = grown;
    m->entries[m->n++] = copy;
    return 0;
fail:
    entry_free(&copy);
    return SB_ENOMEM;
}

bool sb_models_manifest_remove(struct sb_models_manifest *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->entries[i].name, name) == 0) {
            entry_free(&m->entries[i]);
            memmove(&m->entries[i], &m->entries[i + 1], (m->n - i - 1) * sizeof m->entries[0]);
            m->n--;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------- */
static char *join(const char *dir, const char *file)
{
    struct sb_buf b;
    sb_buf_init(&b, 8192);
    if (sb_buf_printf(&b, "%s/%s", dir, file) != 0) {
        sb_buf_free(&b);
        return NULL;
    }
    return sb_buf_steal(&b);
}

/* "2025-06-01T12:00:00Z" <-> unix time, in UTC. */
static void format_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int parse_time(const char *text, int64_t *out)
{
    struct tm tm = {0};
    const char *end = strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return SB_EINVAL;
    *out = (int64_t)timegm(&tm);
    return 0;
}

/* Why one JSON object of the "models" array is not an entry, or NULL when it is one. */
static const char *entry_problem(const json_t *o, int64_t *pulled_at)
{
    const char *name = json_string_value(json_object_get(o, "name"));
    const json_t *size = json_object_get(o, "size");
    const char *sha = json_string_value(json_object_get(o, "sha256"));
    const char *at = json_string_value(json_object_get(o, "pulled_at"));
    if (!json_is_object(o))
        return "is not an object";
    if (name == NULL || !sb_models_name_valid(name))
        return "has no valid \"name\"";
    if (json_string_value(json_object_get(o, "source")) == NULL)
        return "has no \"source\" string";
    if (!json_is_integer(size) || json_integer_value(size) < 0)
        return "has no \"size\" (a non-negative integer)";
    if (sha != NULL && sha[0] != '\0' && !sb_models_sha256_valid(sha))
        return "has a \"sha256\" that is not 64 hex digits";
    if (at != NULL && parse_time(at, pulled_at) != 0)
        return "has a \"pulled_at\" that is not YYYY-MM-DDTHH:MM:SSZ";
    return NULL;
}

/* Fills e from one JSON object of the "models" array; why names the entry and the bad field. */
static int entry_from_json(const json_t *o, size_t index, struct sb_models_entry *e, char *why,
                           size_t why_size)
{
    const char *bad = entry_problem(o, &e->pulled_at);
    if (bad != NULL) {
        snprintf(why, why_size, "models[%zu] %s", index, bad);
        return SB_EINVAL;
    }
    const char *sha = json_string_value(json_object_get(o, "sha256"));
    e->name = strdup(json_string_value(json_object_get(o, "name")));
    e->source = strdup(json_string_value(json_object_get(o, "source")));
    e->size = json_integer_value(json_object_get(o, "size"));
    if (sha != NULL && sha[0] != '\0')
        sb__models_sha256_lower(sha, e->sha256);
    return e->name && e->source ? 0 : SB_ENOMEM;
}

int sb_models_manifest_load(const char *dir, struct sb_models_manifest *out, char *why,
                            size_t why_size)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    json_t *root = NULL;
    char *path = join(dir, SB__MODELS_MANIFEST);
    if (path == NULL)
        return SB_ENOMEM;
    json_error_t jerr;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            goto done; /* no manifest yet: nothing pulled here */
        char eb[128];
        snprintf(why, why_size, "cannot open %s: %s", path,
                 sb__models_errno_text(errno, eb, sizeof eb));
        rc = SB_EIO;
        goto done;
    }
    root = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (root == NULL) {
        snprintf(why, why_size, "%s:%d:%d: not valid JSON: %s", path, jerr.line, jerr.column,
                 jerr.text);
        rc = SB_EINVAL;
        goto done;
    }
    json_t *models = json_object_get(root, "models");
    if (!json_is_array(models)) {
        snprintf(why, why_size, "%s: no \"models\" array; move the file away to start afresh",
                 path);
        rc = SB_EINVAL;
        goto done;
    }
    size_t n = json_array_size(models);
    out->entries = calloc(n ? n : 1, sizeof *out->entries);
    if (out->entries == NULL) {
        rc = SB_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        char what[256] = "";
        rc = entry_from_json(json_array_get(models, i), i, &out->entries[i], what, sizeof what);
        out->n = i + 1; /* a partly filled entry is freed with the rest */
        if (rc != 0) {
            if (rc == SB_EINVAL)
                snprintf(why, why_size, "%s: %s", path, what);
            goto done;
        }
    }
done:
    json_decref(root);
    free(path);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------------------------- */
static json_t *manifest_to_json(const struct sb_models_manifest *m)
{
    json_t *models = json_array();
    json_t *root = json_pack("{s:i, s:o}", "version", MANIFEST_VERSION, "models", models);
    if (root == NULL)
        return NULL;
    for (size_t i = 0; i < m->n; i++) {
        const struct sb_models_entry *e = &m->entries[i];
        char at[32];
        format_time(e->pulled_at, at);
        json_t *o = json_pack("{s:s, s:s, s:I, s:s, s:s}", "name", e->name, "source", e->source,
                              "size", (json_int_t)e->size, "sha256", e->sha256, "pulled_at", at);
        if (o == NULL || json_array_append_new(models, o) != 0) {
            json_decref(root);
            return NULL;
        }
    }
    return root;
}

/* Writes all of len bytes to fd. Returns 0 or -1 with errno. */
static int write_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

int sb_models_manifest_save(const char *dir, const struct sb_models_manifest *m, char *why,
                            size_t why_size)
{
    int rc = SB_ENOMEM;
    int fd = -1;
    char *text = NULL;
    char *tmp = join(dir, "." SB__MODELS_MANIFEST ".XXXXXX");
    char *path = join(dir, SB__MODELS_MANIFEST);
    json_t *root = manifest_to_json(m);
    if (tmp == NULL || path == NULL || root == NULL)
        goto fail;
    text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (text == NULL)
        goto fail;
    rc = SB_EIO;
    fd = mkstemp(tmp);
    if (fd < 0) {
        char eb[128];
        snprintf(why, why_size, "cannot create a file in %s: %s", dir,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    if (write_all(fd, text, strlen(text)) != 0 || write_all(fd, "\n", 1) != 0 ||
        fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
        char eb[128];
        snprintf(why, why_size, "cannot write %s: %s", tmp,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    int closed = close(fd);
    fd = -1;
    if (closed != 0 || rename(tmp, path) != 0) {
        char eb[128];
        snprintf(why, why_size, "cannot replace %s: %s", path,
                 sb__models_errno_text(errno, eb, sizeof eb));
        goto fail;
    }
    rc = 0;
fail:
    if (fd >= 0)
        close(fd);
    if (rc != 0 && tmp != NULL)
        unlink(tmp); /* harmless when mkstemp never made it */
    free(text);
    json_decref(root);
    free(path);
    free(tmp);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Locking
 * ------------------------------------------------------------------------------------------- */
int sb__models_lock(const char *dir, char *why, size_t why_size)
{
    char *path = join(dir, ".manifest.lock");
    if (path == NULL)
        return SB_ENOMEM;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int e = errno;
    if (fd >= 0 && flock(fd, LOCK_EX) != 0) {
        e = errno;
        close(fd);
        fd = -1;
    }
    if (fd < 0) {
        char eb[128];
        snprintf(why, why_size, "cannot lock %s: %s", path,
                 sb__models_errno_text(e, eb, sizeof eb));
        fd = SB_EIO;
    }
    free(path);
    return fd;
}

void sb__models_unlock(int fd)
{
    if (fd >= 0)
        close(fd); /* closing releases the flock */
}
