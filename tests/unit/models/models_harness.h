/* Shared by the models tests: the test models' folder, temporary folders, and small file
 * helpers. Header-only. */
#ifndef SB_TEST_MODELS_HARNESS_H
#define SB_TEST_MODELS_HARNESS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"

/* A malloc'd "dir/file" under the test models ($SWITCHBOARD_MODELS, else ../shared/models). */
static inline char *shared_model(const char *file)
{
    const char *dir = getenv("SWITCHBOARD_MODELS");
    if (dir == NULL || dir[0] == '\0')
        dir = "../shared/models";
    struct sb_buf b;
    sb_buf_init(&b, 4096);
    cr_assert_eq(sb_buf_printf(&b, "%s/%s", dir, file), 0);
    return sb_buf_steal(&b);
}

/* A new empty folder under $TMPDIR; the caller removes it with remove_tree. Malloc'd. */
static inline char *temp_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    struct sb_buf b;
    sb_buf_init(&b, 4096);
    cr_assert_eq(sb_buf_printf(&b, "%s/sb-models-XXXXXX", tmp && *tmp ? tmp : "/tmp"), 0);
    char *dir = sb_buf_steal(&b);
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

/* Removes a flat folder and its files, and frees dir. */
static inline void remove_tree(char *dir)
{
    DIR *d = opendir(dir);
    if (d != NULL) {
        for (struct dirent *e = readdir(d); e != NULL; e = readdir(d)) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
        closedir(d);
    }
    rmdir(dir);
    free(dir);
}

/* Writes len bytes to dir/name; returns the malloc'd path. */
static inline char *write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char *path = malloc(4096);
    cr_assert_not_null(path);
    snprintf(path, 4096, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* The files in dir (not . and ..), how many. */
static inline int count_files(const char *dir)
{
    int n = 0;
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    for (struct dirent *e = readdir(d); e != NULL; e = readdir(d))
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

#endif
