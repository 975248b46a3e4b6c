/* The configuration's dealings with the file system: reading a config file, and finding the model
 * files it names along the model search path. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/internal.h"

/* A config file is a page of YAML; anything this big is the wrong file, not a config. */
#define CONFIG_MAX_BYTES ((size_t)1 << 20)

char *sb__config_join_path(const char *dir, const char *path)
{
    size_t dir_len = dir != NULL ? strlen(dir) : 0;
    if (dir_len == 0)
        return strdup(path);
    struct sb_buf b;
    sb_buf_init(&b, SIZE_MAX / 2);
    bool slash = dir[dir_len - 1] == '/';
    if (sb_buf_append(&b, dir, dir_len) != 0 || (!slash && sb_buf_append_char(&b, '/') != 0) ||
        sb_buf_append_c(&b, path) != 0) {
        sb_buf_free(&b);
        return NULL;
    }
    return sb_buf_steal(&b);
}

/* ---------------------------------------------------------------------------------------------
 * Loading a file
 * ------------------------------------------------------------------------------------------- */
/* Returns a malloc'd copy of the folder part of path, NULL (meaning the current folder) when
 * path has none; sets *err to SB_ENOMEM when a copy fails. */
static char *folder_of(const char *path, int *err)
{
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        return NULL;
    /* "/x.yaml" lives in "/", not in "". */
    size_t len = slash == path ? 1 : (size_t)(slash - path);
    char *dir = strndup(path, len);
    if (dir == NULL)
        *err = SB_ENOMEM;
    return dir;
}

int sb_config_load_file(const char *path, struct sb_config **out, struct sb_buf *errors)
{
    int rc = 0;
    int fd = -1;
    char *text = NULL;
    char *dir = NULL;
    *out = NULL;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        sb_buf_printf(errors, "%s: cannot open the configuration file: %s\n", path,
                      strerror(errno));
        rc = SB_EIO;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        sb_buf_printf(errors, "%s: not a regular file; expected a YAML configuration file\n", path);
        rc = SB_EIO;
        goto fail;
    }
    /* Read one byte past the limit so a file that grew since fstat is still caught. */
    text = malloc(CONFIG_MAX_BYTES + 1);
    if (text == NULL) {
        rc = SB_ENOMEM;
        goto fail;
    }
    size_t len = 0;
    while (len < CONFIG_MAX_BYTES + 1) {
        ssize_t n = read(fd, text + len, CONFIG_MAX_BYTES + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            sb_buf_printf(errors, "%s: cannot read the configuration file: %s\n", path,
                          strerror(errno));
            rc = SB_EIO;
            goto fail;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CONFIG_MAX_BYTES) {
        sb_buf_printf(errors,
                      "%s: the file is larger than %zu KiB; expected a configuration file\n", path,
                      CONFIG_MAX_BYTES >> 10);
        rc = SB_EINVAL;
        goto fail;
    }
    dir = folder_of(path, &rc);
    if (rc != 0)
        goto fail;
    rc = sb_config_parse(path, text, len, dir, out, errors);

fail:
    if (fd >= 0)
        close(fd);
    free(text);
    free(dir);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Resolving model paths
 * ------------------------------------------------------------------------------------------- */
/* Why a candidate model file cannot be used, or NULL when it can: only regular, readable files
 * count, so a folder or an unreadable file with the right name does not hide a later match. */
static const char *unusable(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT || errno == ENOTDIR ? "" : strerror(errno);
    if (!S_ISREG(st.st_mode))
        return "is not a regular file";
    if (access(path, R_OK) != 0)
        return "is not readable";
    return NULL;
}

/* Looks for rel in dir. Returns 1 and sets *found (malloc'd, absolute) on a match, 0 when it is not
 * there (noting in *skipped a file with the name that cannot be used), or SB_ENOMEM. */
static int search_dir(const char *dir, const char *rel, char **found, struct sb_buf *skipped)
{
    char *candidate = sb__config_join_path(dir, rel);
    if (candidate == NULL)
        return SB_ENOMEM;
    const char *why = unusable(candidate);
    if (why == NULL) {
        *found = realpath(candidate, NULL);
        int rc = *found != NULL ? 1 : errno == ENOMEM ? SB_ENOMEM : 0;
        free(candidate);
        return rc;
    }
    if (why[0] != '\0')
        sb_buf_printf(skipped, "; %s %s", candidate, why);
    free(candidate);
    return 0;
}

/* Finds model m's file, replacing m->path with an absolute one. Returns 0, SB_ENOTFOUND (with a
 * line in errors), or SB_ENOMEM. */
static int resolve_one(const struct sb_config *cfg, size_t index, struct sb_model_config *m,
                       struct sb_buf *errors)
{
    int rc = 0;
    char *env = NULL;
    char *found = NULL;
    struct sb_buf searched, skipped;
    sb_buf_init(&searched, 64 << 10);
    sb_buf_init(&skipped, 16 << 10);

    if (m->path[0] == '/') {
        const char *why = unusable(m->path);
        if (why == NULL)
            goto done;
        sb_buf_printf(
            errors,
            "%s:%d:%d: models[%zu].path: model file %s %s; expected an existing, readable "
            "GGUF file\n",
            cfg->source, m->line, m->column, index, m->path,
            why[0] != '\0' ? why : "does not exist");
        rc = SB_ENOTFOUND;
        goto done;
    }

    /* The environment comes first so a machine can point at its model store without editing the
     * file; entries are split on ':' like PATH, and empty ones are skipped. */
    const char *list = getenv("SWITCHBOARD_MODELS");
    if (list != NULL && list[0] != '\0') {
        env = strdup(list);
        if (env == NULL) {
            rc = SB_ENOMEM;
            goto done;
        }
        char *p = env;
        while (p != NULL) {
            char *colon = strchr(p, ':');
            if (colon != NULL)
                *colon = '\0';
            if (p[0] != '\0') {
                sb_buf_printf(&searched, "%s%s", searched.len ? ", " : "", p);
                rc = search_dir(p, m->path, &found, &skipped);
                if (rc != 0)
                    goto done;
            }
            p = colon != NULL ? colon + 1 : NULL;
        }
        sb_buf_append_c(&searched, " ($SWITCHBOARD_MODELS)");
    } else {
        sb_buf_append_c(&searched, "$SWITCHBOARD_MODELS (not set)");
    }
    for (size_t i = 0; i < cfg->n_model_dirs; i++) {
        sb_buf_printf(&searched, "%s%s", i == 0 ? ", then " : ", ", cfg->model_dirs[i]);
        rc = search_dir(cfg->model_dirs[i], m->path, &found, &skipped);
        if (rc != 0)
            goto done;
    }
    if (cfg->n_model_dirs > 0)
        sb_buf_append_c(&searched, " (model_dirs)");
    sb_buf_printf(errors,
                  "%s:%d:%d: models[%zu].path: model file \"%s\" not found; searched %s%s; put it "
                  "in one of those folders, list its folder in SWITCHBOARD_MODELS or model_dirs, "
                  "or give an absolute path\n",
                  cfg->source, m->line, m->column, index, m->path, searched.p,
                  skipped.len ? skipped.p : "");
    rc = SB_ENOTFOUND;

done:
    if (rc == 1) {
        free(m->path);
        m->path = found;
        found = NULL;
        rc = 0;
    }
    free(found);
    free(env);
    sb_buf_free(&searched);
    sb_buf_free(&skipped);
    return rc;
}

int sb_config_resolve_models(struct sb_config *cfg, struct sb_buf *errors)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->n_models; i++) {
        /* Kinds without a file (remote backends) have nothing to find. */
        if (cfg->models[i].path == NULL)
            continue;
        int one = resolve_one(cfg, i, &cfg->models[i], errors);
        if (one == SB_ENOMEM)
            return SB_ENOMEM;
        if (one != 0)
            rc = one;
    }
    return rc;
}

struct sb_config *sb_config_load_for_command(const char *path)
{
    struct sb_buf errors;
    struct sb_config *cfg = NULL;

    sb_buf_init(&errors, 1 << 20);
    int rc = path != NULL ? sb_config_load_file(path, &cfg, &errors)
                          : sb_config_load_default(&cfg, &errors);
    if (rc != 0) {
        fprintf(stderr, "%s", errors.len > 0 ? errors.p : sb_strerror(rc));
        if (errors.len == 0 || errors.p[errors.len - 1] != '\n')
            fputc('\n', stderr);
        cfg = NULL;
    }
    sb_buf_free(&errors);
    return cfg;
}
