/* Tests for the models folder's manifest: entries survive a save and a load unchanged, a name is
 * recorded once, a save replaces the file atomically (a reader holding the old file still reads
 * all of it; no temporary file is left), and a malformed manifest is refused with its place. */
#include "models_harness.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "models/models.h"

/* No .timeout: small files only (see test_gguf.c). */
TestSuite(models_manifest);

#define SHA_A "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"
#define SHA_B "99cd69a3d3b68cb980136f2587acf8319f0fc40370dcdb878825883dac75dba8"

static struct sb_models_entry entry(const char *name, const char *source, int64_t size,
                                    const char *sha, int64_t at)
{
    struct sb_models_entry e = {
        .name = (char *)name, .source = (char *)source, .size = size, .pulled_at = at};
    snprintf(e.sha256, sizeof e.sha256, "%s", sha);
    return e;
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    struct sb_buf b;
    sb_buf_init(&b, 1 << 20);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cr_assert_eq(sb_buf_append(&b, chunk, n), 0);
    fclose(f);
    return sb_buf_steal(&b);
}

Test(models_manifest, round_trip)
{
    char *dir = temp_dir();
    char why[512] = "";
    struct sb_models_manifest m;
    cr_assert_eq(sb_models_manifest_load(dir, &m, why, sizeof why), 0, "no file = empty: %s", why);
    cr_assert_eq(m.n, 0);

    struct sb_models_entry a = entry("stories", "http://127.0.0.1:1/s.gguf", 1185376, SHA_A,
                                     1767225600 /* 2026-01-01T00:00:00Z */);
    struct sb_models_entry b =
        entry("Llama-3.2-1B.Q4_0", "hf:org/repo/m.gguf", 800000000, "", 1767225601);
    cr_assert_eq(sb_models_manifest_put(&m, &a), 0);
    cr_assert_eq(sb_models_manifest_put(&m, &b), 0);
    cr_assert_eq(sb_models_manifest_save(dir, &m, why, sizeof why), 0, "%s", why);
    sb_models_manifest_free(&m);

    cr_assert_eq(sb_models_manifest_load(dir, &m, why, sizeof why), 0, "%s", why);
    cr_assert_eq(m.n, 2);
    const struct sb_models_entry *got = sb_models_manifest_find(&m, "stories");
    cr_assert_not_null(got);
    cr_assert_str_eq(got->source, a.source);
    cr_assert_eq(got->size, a.size);
    cr_assert_str_eq(got->sha256, SHA_A);
    cr_assert_eq(got->pulled_at, a.pulled_at);
    got = sb_models_manifest_find(&m, "Llama-3.2-1B.Q4_0");
    cr_assert_not_null(got);
    cr_assert_str_eq(got->sha256, "", "an unknown hash stays unknown");
    cr_assert_eq(got->size, 800000000);
    cr_assert_str_eq(m.entries[0].name, "stories", "insertion order is kept");

    /* The file is readable JSON with the fields people look for. */
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *text = read_all(path);
    cr_assert_not_null(strstr(text, "\"pulled_at\": \"2026-01-01T00:00:00Z\""), "%s", text);
    cr_assert_not_null(strstr(text, "\"sha256\": \"" SHA_A "\""), "%s", text);
    free(text);

    /* Putting a name again replaces its entry; removing takes it out. */
    struct sb_models_entry a2 = entry("stories", "http://mirror/s.gguf", 5, SHA_B, 1767225602);
    cr_assert_eq(sb_models_manifest_put(&m, &a2), 0);
    cr_assert_eq(m.n, 2);
    cr_assert_str_eq(sb_models_manifest_find(&m, "stories")->sha256, SHA_B);
    cr_assert(sb_models_manifest_remove(&m, "Llama-3.2-1B.Q4_0"));
    cr_assert_not(sb_models_manifest_remove(&m, "Llama-3.2-1B.Q4_0"));
    cr_assert_eq(m.n, 1);
    cr_assert_null(sb_models_manifest_find(&m, "Llama-3.2-1B.Q4_0"));
    cr_assert_eq(sb_models_manifest_save(dir, &m, why, sizeof why), 0, "%s", why);
    sb_models_manifest_free(&m);
    cr_assert_eq(sb_models_manifest_load(dir, &m, why, sizeof why), 0, "%s", why);
    cr_assert_eq(m.n, 1);
    cr_assert_str_eq(m.entries[0].source, "http://mirror/s.gguf");
    sb_models_manifest_free(&m);
    remove_tree(dir);
}

Test(models_manifest, save_replaces_atomically)
{
    char *dir = temp_dir();
    char why[512] = "";
    struct sb_models_manifest m = {0};
    struct sb_models_entry a = entry("one", "http://h/one.gguf", 1, SHA_A, 0);
    cr_assert_eq(sb_models_manifest_put(&m, &a), 0);
    cr_assert_eq(sb_models_manifest_save(dir, &m, why, sizeof why), 0, "%s", why);

    /* A reader that opened the old manifest keeps reading the old one whole: the new one is a
     * different file renamed over it, never the old one truncated and rewritten in place. */
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    char *before = read_all(path);
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    struct stat st_old, st_new;
    cr_assert_eq(fstat(fd, &st_old), 0);

    for (int i = 0; i < 50; i++) {
        char name[32];
        snprintf(name, sizeof name, "model-%d", i);
        struct sb_models_entry e = entry(name, "http://h/x.gguf", i, SHA_B, i);
        cr_assert_eq(sb_models_manifest_put(&m, &e), 0);
    }
    cr_assert_eq(sb_models_manifest_save(dir, &m, why, sizeof why), 0, "%s", why);
    cr_assert_eq(stat(path, &st_new), 0);
    cr_assert_neq(st_old.st_ino, st_new.st_ino, "the manifest was rewritten in place");

    char old[8192];
    ssize_t n = pread(fd, old, sizeof old - 1, 0);
    cr_assert_geq(n, 0);
    old[n] = '\0';
    cr_assert_str_eq(old, before);
    close(fd);
    free(before);

    cr_assert_eq(count_files(dir), 1, "no temporary file is left beside manifest.json");
    sb_models_manifest_free(&m);
    cr_assert_eq(sb_models_manifest_load(dir, &m, why, sizeof why), 0, "%s", why);
    cr_assert_eq(m.n, 51);
    sb_models_manifest_free(&m);

    /* A folder that cannot take the file: the save fails and says where. */
    char missing[4200];
    snprintf(missing, sizeof missing, "%s/no/such/folder", dir);
    cr_assert_eq(sb_models_manifest_save(missing, &m, why, sizeof why), SB_EIO);
    cr_assert_not_null(strstr(why, "no/such/folder"), "%s", why);
    remove_tree(dir);
}

/* Each row: a manifest's text and a word the refusal must contain. */
static const struct {
    const char *text, *why;
} malformed[] = {
    {"{", "not valid JSON"},
    {"[]", "no \"models\" array"},
    {"{\"models\": {}}", "no \"models\" array"},
    {"{\"models\": [1]}", "models[0] is not an object"},
    {"{\"models\": [{\"source\": \"s\", \"size\": 1}]}", "models[0] has no valid \"name\""},
    {"{\"models\": [{\"name\": \"../x\", \"source\": \"s\", \"size\": 1}]}", "no valid \"name\""},
    {"{\"models\": [{\"name\": \"a\", \"size\": 1}]}", "no \"source\""},
    {"{\"models\": [{\"name\": \"a\", \"source\": \"s\", \"size\": -1}]}", "\"size\""},
    {"{\"models\": [{\"name\": \"a\", \"source\": \"s\", \"size\": 1, \"sha256\": \"xyz\"}]}",
     "64 hex digits"},
    {"{\"models\": [{\"name\": \"a\", \"source\": \"s\", \"size\": 1, \"pulled_at\": \"now\"}]}",
     "pulled_at"},
};

Test(models_manifest, refuses_malformed)
{
    char *dir = temp_dir();
    for (size_t i = 0; i < sizeof malformed / sizeof malformed[0]; i++) {
        char *path = write_file(dir, "manifest.json", malformed[i].text, strlen(malformed[i].text));
        struct sb_models_manifest m;
        char why[512] = "";
        cr_assert_eq(sb_models_manifest_load(dir, &m, why, sizeof why), SB_EINVAL, "row %zu", i);
        cr_assert_not_null(strstr(why, malformed[i].why), "row %zu: %s", i, why);
        cr_assert_not_null(strstr(why, "manifest.json"), "the message names the file: %s", why);
        sb_models_manifest_free(&m);
        free(path);
    }
    remove_tree(dir);
}
