/* The `switchboard models` commands: list, show, pull, rm and synth. Options are one table; the
 * folders come from --dir, else $SWITCHBOARD_MODELS and the configuration's model_dirs, searched
 * in the order `serve` searches them. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/opts.h"
#include "models/internal.h"

/* Exit statuses, as src/cli/main.c's. */
enum { EXIT_RUNTIME = 1, EXIT_SETUP = 2 };
/* Folders a command looks in, at most. */
#define MAX_DIRS 32

/* ---------------------------------------------------------------------------------------------
 * Options
 * ------------------------------------------------------------------------------------------- */
struct opts {
    const char *arg; /* the one positional argument: NAME or SOURCE */
    const char *config, *dir, *name, *sha256;
    const char *shape, *type, *vocab, *out, *seed;
};

/* Which commands take an option. */
enum { C_LIST = 1 << 0, C_SHOW = 1 << 1, C_PULL = 1 << 2, C_RM = 1 << 3, C_SYNTH = 1 << 4 };

static const struct sb_opt options[] = {
    {"--config", offsetof(struct opts, config), C_LIST | C_SHOW | C_PULL | C_RM},
    {"--dir", offsetof(struct opts, dir), C_LIST | C_SHOW | C_PULL | C_RM},
    {"--name", offsetof(struct opts, name), C_PULL},
    {"--sha256", offsetof(struct opts, sha256), C_PULL},
    {"--shape", offsetof(struct opts, shape), C_SYNTH},
    {"--type", offsetof(struct opts, type), C_SYNTH},
    {"--vocab", offsetof(struct opts, vocab), C_SYNTH},
    {"--out", offsetof(struct opts, out), C_SYNTH},
    {"--seed", offsetof(struct opts, seed), C_SYNTH},
};

/* Parses argv into o for command (a C_* bit) taking exactly `positional` plain arguments.
 * Returns 0, or prints what is wrong with usage and returns EXIT_SETUP. */
static int parse(int argc, char **argv, unsigned command, int positional, const char *usage,
                 struct opts *o)
{
    memset(o, 0, sizeof(*o));
    return sb_opts_parse(argc, argv, options, SB_ARRAY_LEN(options), command, positional, usage, o,
                         &o->arg) == 0
               ? 0
               : EXIT_SETUP;
}

/* ---------------------------------------------------------------------------------------------
 * Folders
 * ------------------------------------------------------------------------------------------- */
struct dirs {
    char *list[MAX_DIRS]; /* owned */
    size_t n;
};

static void dirs_free(struct dirs *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->list[i]);
    d->n = 0;
}

/* Adds dir unless it is there already (by its real path when it exists). */
static int dirs_add(struct dirs *d, const char *dir)
{
    char real[4096];
    const char *key = realpath(dir, real) ? real : dir;
    for (size_t i = 0; i < d->n; i++) {
        char other[4096];
        const char *okey = realpath(d->list[i], other) ? other : d->list[i];
        if (strcmp(key, okey) == 0)
            return 0;
    }
    if (d->n == MAX_DIRS)
        return 0;
    d->list[d->n] = strdup(dir);
    if (d->list[d->n] == NULL)
        return SB_ENOMEM;
    d->n++;
    return 0;
}

/* Fills d with --dir, or $SWITCHBOARD_MODELS's entries and then the config's model_dirs (the
 * built-in default's without --config). With first_only, only the folder `pull` writes to:
 * --dir, else the first of model_dirs, else ./models. Prints problems; returns 0 or EXIT_SETUP. */
static int find_dirs(const struct opts *o, bool first_only, struct dirs *d)
{
    memset(d, 0, sizeof *d);
    if (o->dir != NULL)
        return dirs_add(d, o->dir) == 0 ? 0 : EXIT_RUNTIME;
    const char *env = getenv("SWITCHBOARD_MODELS");
    if (!first_only && env != NULL) {
        char *copy = strdup(env);
        if (copy == NULL)
            return EXIT_RUNTIME;
        char *p = copy;
        while (p != NULL) {
            char *colon = strchr(p, ':');
            if (colon != NULL)
                *colon = '\0';
            if (p[0] != '\0')
                dirs_add(d, p);
            p = colon != NULL ? colon + 1 : NULL;
        }
        free(copy);
    }
    struct sb_config *cfg = sb_config_load_for_command(o->config);
    if (cfg == NULL) {
        dirs_free(d);
        return EXIT_SETUP;
    }
    for (size_t i = 0; i < cfg->n_model_dirs && !(first_only && d->n > 0); i++)
        dirs_add(d, cfg->model_dirs[i]);
    if (d->n == 0)
        dirs_add(d, "models");
    sb_config_free(cfg);
    return d->n > 0 ? 0 : EXIT_RUNTIME;
}

static char *join(const char *dir, const char *name, const char *suffix)
{
    struct sb_buf b;
    sb_buf_init(&b, 8192);
    if (sb_buf_printf(&b, "%s/%s%s", dir, name, suffix) != 0) {
        sb_buf_free(&b);
        return NULL;
    }
    return sb_buf_steal(&b);
}

/* A count as people say it: 292.8K, 1.24B. */
static void human_count(double v, char *out, size_t size)
{
    static const char *const units[] = {"", "K", "M", "B", "T"};
    size_t u = 0;
    while (v >= 1000 && u + 1 < SB_ARRAY_LEN(units)) {
        v /= 1000;
        u++;
    }
    snprintf(out, size, u == 0 ? "%.0f%s" : "%.2f%s", v, units[u]);
}

/* ---------------------------------------------------------------------------------------------
 * list
 * ------------------------------------------------------------------------------------------- */
static int is_gguf(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return e->d_name[0] != '.' && n > 5 && strcmp(e->d_name + n - 5, ".gguf") == 0;
}

/* Prints one folder's models: its .gguf files with what the manifest knows of them, then the
 * manifest's entries whose file is gone. */
static int list_dir(const char *dir)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_gguf, alphasort);
    if (n < 0)
        return 0; /* a folder that does not exist holds no models */
    struct sb_models_manifest m;
    char why[1024];
    int rc = sb_models_manifest_load(dir, &m, why, sizeof why);
    if (rc != 0)
        fprintf(stderr, "switchboard: %s\n", why);
    bool *seen = calloc(m.n + 1, sizeof *seen);
    for (int i = 0; i < n; i++) {
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)strlen(names[i]->d_name) - 5, names[i]->d_name);
        char *path = join(dir, names[i]->d_name, "");
        struct stat st;
        char size[32] = "?";
        if (path != NULL && stat(path, &st) == 0)
            sb__models_human_bytes((double)st.st_size, size, sizeof size);
        const struct sb_models_entry *e = sb_models_manifest_find(&m, name);
        if (e != NULL && seen != NULL)
            seen[e - m.entries] = true;
        printf("%-28s %10s  %-64s  %s  %s\n", name, size, e && e->sha256[0] ? e->sha256 : "-",
               e ? e->source : "-", path ? path : dir);
        free(path);
        free(names[i]);
    }
    for (size_t i = 0; i < m.n && seen != NULL; i++) {
        if (!seen[i])
            printf("%-28s %10s  %-64s  %s  %s/%s.gguf\n", m.entries[i].name, "missing",
                   m.entries[i].sha256[0] ? m.entries[i].sha256 : "-", m.entries[i].source, dir,
                   m.entries[i].name);
    }
    free(seen);
    free(names);
    sb_models_manifest_free(&m);
    return rc == 0 ? 0 : EXIT_RUNTIME;
}

int sb_models_list_cli(int argc, char **argv)
{
    struct opts o;
    struct dirs d;
    int rc = parse(argc, argv, C_LIST, 0, "models list [--config FILE] [--dir DIR]", &o);
    if (rc == 0)
        rc = find_dirs(&o, false, &d);
    if (rc != 0)
        return rc;
    printf("%-28s %10s  %-64s  %s  %s\n", "NAME", "SIZE", "SHA256", "SOURCE", "FILE");
    for (size_t i = 0; i < d.n; i++) {
        if (list_dir(d.list[i]) != 0)
            rc = EXIT_RUNTIME;
    }
    dirs_free(&d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * show
 * ------------------------------------------------------------------------------------------- */
/* Finds NAME: a path to a file as given, else DIR/NAME.gguf in the first folder that has it.
 * Returns a malloc'd path and sets *dir_index (-1 for a path), or NULL. */
static char *find_model(const char *name, const struct dirs *d, int *dir_index)
{
    *dir_index = -1;
    if (strchr(name, '/') != NULL && access(name, R_OK) == 0)
        return strdup(name);
    for (size_t i = 0; i < d->n; i++) {
        char *path = join(d->list[i], name, ".gguf");
        if (path != NULL && access(path, R_OK) == 0) {
            *dir_index = (int)i;
            return path;
        }
        free(path);
    }
    return NULL;
}

static void print_count(const char *label, int64_t v)
{
    if (v > 0)
        printf("%-14s %lld\n", label, (long long)v);
    else
        printf("%-14s -\n", label);
}

int sb_models_show_cli(int argc, char **argv)
{
    struct opts o;
    struct dirs d;
    int rc = parse(argc, argv, C_SHOW, 1, "models show NAME|FILE [--config FILE] [--dir DIR]", &o);
    if (rc == 0)
        rc = find_dirs(&o, false, &d);
    if (rc != 0)
        return rc;
    int at = -1;
    char why[1024];
    struct sb_models_manifest m = {0};
    char *path = find_model(o.arg, &d, &at);
    if (path == NULL) {
        fprintf(stderr, "switchboard: no model %s in ", o.arg);
        for (size_t i = 0; i < d.n; i++)
            fprintf(stderr, "%s%s", i ? ", " : "", d.list[i]);
        fprintf(stderr, "; see switchboard models list\n");
        rc = EXIT_SETUP;
        goto fail;
    }
    struct sb_models_gguf_info info;
    if (sb_models_gguf_read_info(path, &info, why, sizeof why) != 0) {
        fprintf(stderr, "switchboard: %s: %s\n", path, why);
        rc = EXIT_RUNTIME;
        goto fail;
    }
    struct stat st = {0};
    stat(path, &st);
    if (at >= 0)
        sb_models_manifest_load(d.list[at], &m, why, sizeof why);
    const struct sb_models_entry *e = at >= 0 ? sb_models_manifest_find(&m, o.arg) : NULL;
    char size[32], params[32];
    sb__models_human_bytes((double)st.st_size, size, sizeof size);
    human_count((double)info.n_params, params, sizeof params);
    printf("%-14s %s\n", "file", path);
    printf("%-14s %lld bytes (%s)\n", "size", (long long)st.st_size, size);
    printf("%-14s %s\n", "sha256", e && e->sha256[0] ? e->sha256 : "not recorded");
    printf("%-14s %s\n", "source", e ? e->source : "-");
    printf("%-14s %u\n", "gguf version", info.version);
    printf("%-14s %s\n", "name", info.name[0] ? info.name : "-");
    printf("%-14s %s\n", "architecture", info.arch[0] ? info.arch : "-");
    printf("%-14s %lld (%s)\n", "parameters", (long long)info.n_params, params);
    printf("%-14s %s\n", "quantization", info.quantization);
    print_count("context", info.context_length);
    print_count("embedding", info.n_embd);
    print_count("layers", info.n_layer);
    print_count("heads", info.n_head);
    print_count("kv heads", info.n_head_kv);
    printf("%-14s %lld (%s)\n", "vocabulary", (long long)info.n_vocab,
           info.tokenizer[0] ? info.tokenizer : "no tokenizer");
    printf("%-14s %s\n", "chat template", info.has_chat_template ? "yes" : "no");
    printf("%-14s %lld\n", "tensors", (long long)info.n_tensors);
    if (info.data_end > (uint64_t)st.st_size) {
        printf("warning: the file is truncated: its tensors need %llu bytes\n",
               (unsigned long long)info.data_end);
        rc = EXIT_RUNTIME;
    }
fail:
    sb_models_manifest_free(&m);
    free(path);
    dirs_free(&d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * pull
 * ------------------------------------------------------------------------------------------- */
int sb_models_pull_cli(int argc, char **argv)
{
    struct opts o;
    struct dirs d;
    int rc =
        parse(argc, argv, C_PULL, 1,
              "models pull SOURCE [--name NAME] [--sha256 HEX] [--dir DIR] [--config FILE]", &o);
    if (rc == 0)
        rc = find_dirs(&o, true, &d);
    if (rc != 0)
        return rc;
    struct sb__models_pull p = {
        .source = o.arg,
        .name = o.name,
        .sha256 = o.sha256,
        .dir = d.list[0],
        .progress = isatty(STDERR_FILENO) == 1,
    };
    struct sb_buf msg;
    sb_buf_init(&msg, 1 << 16);
    int pulled = sb__models_pull(&p, &msg);
    if (pulled == 0) {
        printf("%s\n", msg.p);
    } else {
        fprintf(stderr, "switchboard: pull failed: %s\n", msg.len ? msg.p : sb_strerror(pulled));
        rc = pulled == SB_EINVAL ? EXIT_SETUP : EXIT_RUNTIME;
    }
    sb_buf_free(&msg);
    dirs_free(&d);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * rm
 * ------------------------------------------------------------------------------------------- */
/* Removes DIR/NAME.gguf (a link itself, never what it points to), a partial download of it, and
 * its manifest entry, under the folder's lock. Returns whether anything was there, or -1. */
static int remove_in(const char *dir, const char *name)
{
    char why[1024];
    int lock = sb__models_lock(dir, why, sizeof why);
    if (lock < 0) {
        fprintf(stderr, "switchboard: %s\n", why);
        return -1;
    }
    int found = 0;
    char *file = join(dir, name, ".gguf");
    char *part = join(dir, name, ".gguf" SB__MODELS_PART);
    struct sb_models_manifest m;
    int rc = sb_models_manifest_load(dir, &m, why, sizeof why);
    if (rc != 0 || file == NULL || part == NULL) {
        fprintf(stderr, "switchboard: %s\n", rc != 0 ? why : "out of memory");
        found = -1;
        goto fail;
    }
    struct stat st;
    if (lstat(file, &st) == 0) {
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "switchboard: %s is a folder; refusing to remove it\n", file);
            found = -1;
            goto fail;
        }
        if (unlink(file) != 0) {
            char eb[128];
            fprintf(stderr, "switchboard: cannot remove %s: %s\n", file,
                    sb__models_errno_text(errno, eb, sizeof eb));
            found = -1;
            goto fail;
        }
        printf("removed %s%s\n", file, S_ISLNK(st.st_mode) ? " (the link; not its target)" : "");
        found = 1;
    }
    if (unlink(part) == 0) {
        printf("removed %s\n", part);
        found = 1;
    }
    if (sb_models_manifest_remove(&m, name)) {
        if (sb_models_manifest_save(dir, &m, why, sizeof why) != 0) {
            fprintf(stderr, "switchboard: %s\n", why);
            found = -1;
            goto fail;
        }
        printf("removed %s from %s/%s\n", name, dir, SB__MODELS_MANIFEST);
        found = 1;
    }
fail:
    sb_models_manifest_free(&m);
    free(file);
    free(part);
    sb__models_unlock(lock);
    return found;
}

int sb_models_rm_cli(int argc, char **argv)
{
    struct opts o;
    struct dirs d;
    int rc = parse(argc, argv, C_RM, 1, "models rm NAME [--config FILE] [--dir DIR]", &o);
    if (rc != 0)
        return rc;
    /* A name, never a path: what rm deletes is always directly inside a models folder. */
    if (!sb_models_name_valid(o.arg)) {
        fprintf(stderr,
                "switchboard: refusing to remove \"%s\": give a model name as models list shows "
                "it (no folders, no paths outside the models folder)\n",
                o.arg);
        return EXIT_SETUP;
    }
    rc = find_dirs(&o, false, &d);
    if (rc != 0)
        return rc;
    int found = 0;
    for (size_t i = 0; i < d.n && found == 0; i++) {
        struct stat st;
        if (stat(d.list[i], &st) == 0 && S_ISDIR(st.st_mode))
            found = remove_in(d.list[i], o.arg);
    }
    if (found == 0)
        fprintf(stderr, "switchboard: no model %s; see switchboard models list\n", o.arg);
    dirs_free(&d);
    return found > 0 ? 0 : found < 0 ? EXIT_RUNTIME : EXIT_SETUP;
}

/* ---------------------------------------------------------------------------------------------
 * synth
 * ------------------------------------------------------------------------------------------- */
int sb_models_synth_cli(int argc, char **argv)
{
    struct opts o;
    static const char usage[] =
        "models synth --shape SHAPE --type f16|q8_0|q4_0 --vocab VOCAB.gguf --out FILE "
        "[--seed N]";
    int rc = parse(argc, argv, C_SYNTH, 0, usage, &o);
    if (rc != 0)
        return rc;
    if (o.shape == NULL || o.type == NULL || o.vocab == NULL || o.out == NULL) {
        char names[256];
        sb_models_synth_shapes(names, sizeof names);
        fprintf(stderr, "usage: switchboard %s\nshapes: %s\n", usage, names);
        return EXIT_SETUP;
    }
    uint64_t seed = 1;
    if (o.seed != NULL) {
        char *end;
        errno = 0;
        seed = strtoull(o.seed, &end, 10);
        if (errno != 0 || end == o.seed || *end != '\0') {
            fprintf(stderr, "switchboard: --seed takes a number, got \"%s\"\n", o.seed);
            return EXIT_SETUP;
        }
    }
    struct sb_models_synth_params p = {
        .shape = o.shape,
        .type = o.type,
        .vocab = o.vocab,
        .out = o.out,
        .seed = seed,
        .progress = isatty(STDERR_FILENO) == 1,
    };
    char err[1024] = "";
    rc = sb_models_synth(&p, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "switchboard: synth: %s\n", err);
        return rc == SB_EINVAL ? EXIT_SETUP : EXIT_RUNTIME;
    }
    struct stat st = {0};
    stat(o.out, &st);
    printf("wrote %s: %s, %s weights, %lld bytes\n", o.out, o.shape, o.type, (long long)st.st_size);
    return 0;
}
