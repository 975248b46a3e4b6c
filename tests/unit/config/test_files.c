/* Unit tests for reading config files and finding model files along the search path, in a
 * temporary folder tree made for each test. */
#include <criterion/criterion.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"

/* Short enough that every path built from it fits in PATH_MAX. */
static char root[1024];

/* root/<rel>, in a static buffer per call slot, so tests read like paths. */
static const char *at(const char *rel)
{
    static char bufs[8][PATH_MAX];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, PATH_MAX, "%s/%s", root, rel);
    return b;
}

static void make_dir(const char *rel)
{
    cr_assert_eq(mkdir(at(rel), 0755), 0, "mkdir %s", rel);
}

static void write_file(const char *rel, const char *text)
{
    FILE *f = fopen(at(rel), "wb");
    cr_assert_not_null(f, "create %s", rel);
    fputs(text, f);
    fclose(f);
}

static void setup(void)
{
    snprintf(root, sizeof root, "%s/sb-config-test.XXXXXX",
             getenv("TMPDIR") != NULL ? getenv("TMPDIR") : "/tmp");
    cr_assert_not_null(mkdtemp(root));
    /* mkdtemp may hand back a path through a symbolic link; realpath() results will not be. */
    char *real = realpath(root, NULL);
    cr_assert_not_null(real);
    snprintf(root, sizeof root, "%s", real);
    free(real);
    unsetenv("SWITCHBOARD_MODELS");
    make_dir("env1");
    make_dir("env2");
    make_dir("dirA");
    make_dir("dirB");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void teardown(void)
{
    chmod(at("dirA/x.gguf"), 0644);
    nftw(root, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(config_files, .init = setup, .fini = teardown);

/* A config with one model at path and model_dirs dirA, dirB (absolute). */
static struct sb_config *config_for(const char *path)
{
    struct sb_buf text, err;
    sb_buf_init(&text, 1 << 16);
    sb_buf_init(&err, 1 << 16);
    sb_buf_printf(&text,
                  "model_dirs: [%s, %s]\n"
                  "models:\n"
                  "  - name: m\n"
                  "    backend: local\n"
                  "    path: %s\n",
                  at("dirA"), at("dirB"), path);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_parse("t.yaml", text.p, text.len, NULL, &cfg, &err), 0, "%s", err.p);
    sb_buf_free(&text);
    sb_buf_free(&err);
    return cfg;
}

/* Resolves cfg's models; returns the status and leaves the messages in *msg (caller frees). */
static int resolve(struct sb_config *cfg, char **msg)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    int rc = sb_config_resolve_models(cfg, &err);
    *msg = sb_buf_steal(&err);
    return rc;
}

Test(config_files, environment_comes_before_model_dirs)
{
    write_file("dirA/x.gguf", "gguf");
    write_file("env2/x.gguf", "gguf");
    char env[2 * PATH_MAX + 8];
    snprintf(env, sizeof env, "%s::%s", at("env1"), at("env2"));
    setenv("SWITCHBOARD_MODELS", env, 1);
    struct sb_config *cfg = config_for("x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), 0, "%s", msg);
    cr_assert_str_eq(cfg->models[0].path, at("env2/x.gguf"));
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, model_dirs_in_order)
{
    write_file("dirA/x.gguf", "gguf");
    write_file("dirB/x.gguf", "gguf");
    struct sb_config *cfg = config_for("x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), 0, "%s", msg);
    cr_assert_str_eq(cfg->models[0].path, at("dirA/x.gguf"));
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, only_regular_files_count)
{
    make_dir("dirA/x.gguf");
    write_file("dirB/x.gguf", "gguf");
    struct sb_config *cfg = config_for("x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), 0, "%s", msg);
    cr_assert_str_eq(cfg->models[0].path, at("dirB/x.gguf"));
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, only_readable_files_count)
{
    /* The superuser reads everything, so there is nothing to test as root. */
    if (geteuid() == 0)
        cr_skip_test("running as root");
    write_file("dirA/x.gguf", "gguf");
    chmod(at("dirA/x.gguf"), 0);
    write_file("dirB/x.gguf", "gguf");
    struct sb_config *cfg = config_for("x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), 0, "%s", msg);
    cr_assert_str_eq(cfg->models[0].path, at("dirB/x.gguf"));
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, missing_file_lists_every_folder_searched)
{
    make_dir("dirA/x.gguf"); /* there, but not a file */
    char env[2 * PATH_MAX + 8];
    snprintf(env, sizeof env, "%s:%s", at("env1"), at("env2"));
    setenv("SWITCHBOARD_MODELS", env, 1);
    struct sb_config *cfg = config_for("x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), SB_ENOTFOUND);
    char want[8 * PATH_MAX];
    snprintf(want, sizeof want,
             "t.yaml:3:5: models[0].path: model file \"x.gguf\" not found; searched %s, %s "
             "($SWITCHBOARD_MODELS), then %s, %s (model_dirs); %s is not a regular file; put it "
             "in one of those folders, list its folder in SWITCHBOARD_MODELS or model_dirs, or "
             "give an absolute path\n",
             at("env1"), at("env2"), at("dirA"), at("dirB"), at("dirA/x.gguf"));
    cr_assert_str_eq(msg, want);
    cr_assert_str_eq(cfg->models[0].path, "x.gguf"); /* unchanged */
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, missing_file_without_environment)
{
    struct sb_config *cfg = config_for("sub/x.gguf");
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), SB_ENOTFOUND);
    cr_assert_not_null(strstr(msg, "searched $SWITCHBOARD_MODELS (not set), then "), "%s", msg);
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, absolute_paths_are_kept_and_must_exist)
{
    write_file("elsewhere.gguf", "gguf");
    struct sb_config *cfg = config_for(at("elsewhere.gguf"));
    char *msg;
    cr_assert_eq(resolve(cfg, &msg), 0, "%s", msg);
    cr_assert_str_eq(cfg->models[0].path, at("elsewhere.gguf"));
    free(msg);
    sb_config_free(cfg);

    cfg = config_for(at("gone.gguf"));
    cr_assert_eq(resolve(cfg, &msg), SB_ENOTFOUND);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want,
             "t.yaml:3:5: models[0].path: model file %s does not exist; expected an existing, "
             "readable GGUF file\n",
             at("gone.gguf"));
    cr_assert_str_eq(msg, want);
    free(msg);
    sb_config_free(cfg);
}

Test(config_files, every_missing_model_is_reported)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    const char *text = "models:\n"
                       "  - {name: a, backend: local, path: a.gguf}\n"
                       "  - {name: b, backend: local, path: b.gguf}\n";
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &err), 0);
    cr_assert_eq(sb_config_resolve_models(cfg, &err), SB_ENOTFOUND);
    cr_assert_not_null(strstr(err.p, "t.yaml:2:5: models[0].path"), "%s", err.p);
    cr_assert_not_null(strstr(err.p, "t.yaml:3:5: models[1].path"), "%s", err.p);
    sb_buf_free(&err);
    sb_config_free(cfg);
}

Test(config_files, load_file_takes_paths_from_its_folder)
{
    make_dir("conf");
    make_dir("conf/models");
    write_file("conf/models/x.gguf", "gguf");
    write_file("conf/sb.yaml", "model_dirs: [models]\n"
                               "models:\n"
                               "  - {name: m, backend: local, path: x.gguf}\n");
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_load_file(at("conf/sb.yaml"), &cfg, &err), 0, "%s", err.p);
    cr_assert_str_eq(cfg->source, at("conf/sb.yaml"));
    cr_assert_str_eq(cfg->model_dirs[0], at("conf/models"));
    cr_assert_eq(sb_config_resolve_models(cfg, &err), 0, "%s", err.p);
    cr_assert_str_eq(cfg->models[0].path, at("conf/models/x.gguf"));
    sb_buf_free(&err);
    sb_config_free(cfg);
}

Test(config_files, load_file_in_current_folder)
{
    write_file("sb.yaml", "model_dirs: [models]\n");
    cr_assert_eq(chdir(root), 0);
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_load_file("sb.yaml", &cfg, &err), 0, "%s", err.p);
    cr_assert_str_eq(cfg->model_dirs[0], "models"); /* the current folder: as written */
    sb_buf_free(&err);
    sb_config_free(cfg);
}

Test(config_files, load_file_errors)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 16);
    struct sb_config *cfg = NULL;
    cr_assert_eq(sb_config_load_file(at("absent.yaml"), &cfg, &err), SB_EIO);
    cr_assert_null(cfg);
    char want[2 * PATH_MAX];
    snprintf(want, sizeof want,
             "%s: cannot open the configuration file: No such file or directory\n",
             at("absent.yaml"));
    cr_assert_str_eq(err.p, want);

    sb_buf_reset(&err);
    cr_assert_eq(sb_config_load_file(at("dirA"), &cfg, &err), SB_EIO);
    cr_assert_not_null(strstr(err.p, "not a regular file"), "%s", err.p);

    sb_buf_reset(&err);
    FILE *f = fopen(at("big.yaml"), "wb");
    cr_assert_not_null(f);
    for (int i = 0; i < (1 << 20) / 16 + 1; i++)
        fputs("# padding line.\n", f);
    fclose(f);
    cr_assert_eq(sb_config_load_file(at("big.yaml"), &cfg, &err), SB_EINVAL);
    snprintf(want, sizeof want,
             "%s: the file is larger than 1024 KiB; expected a configuration file\n",
             at("big.yaml"));
    cr_assert_str_eq(err.p, want);

    sb_buf_reset(&err);
    write_file("bad.yaml", "listen:\n  port: x\n");
    cr_assert_eq(sb_config_load_file(at("bad.yaml"), &cfg, &err), SB_EINVAL);
    snprintf(want, sizeof want,
             "%s:2:9: listen.port: expected an integer from 0 to 65535, got \"x\"\n",
             at("bad.yaml"));
    cr_assert_str_eq(err.p, want);
    sb_buf_free(&err);
}
