/* Tests for what `models pull` decides before it fetches anything: how a source becomes a URL
 * (hf: references included; Hugging Face cannot be reached from the test machines, so only the
 * mapping is tested here) and which model names are accepted. The transfer itself is tested
 * end to end in tests/integration/models_pull.test.mjs against a loopback server. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "models/models.h"

struct mapped {
    int rc;
    char url[512];
    char name[160];
    char why[512];
};

static struct mapped map(const char *source)
{
    struct mapped m = {0};
    struct sb_buf url;
    sb_buf_init(&url, 4096);
    m.rc = sb_models_source_url(source, &url, m.name, sizeof m.name, m.why, sizeof m.why);
    snprintf(m.url, sizeof m.url, "%s", url.p ? url.p : "");
    sb_buf_free(&url);
    return m;
}

/* Each row: a source, the URL it must become, and the default name it gives. */
static const struct {
    const char *source, *url, *name;
} good[] = {
    {"hf:bartowski/Llama-3.2-1B-Instruct-GGUF/Llama-3.2-1B-Instruct-Q4_K_M.gguf",
     "https://huggingface.co/bartowski/Llama-3.2-1B-Instruct-GGUF/resolve/main/"
     "Llama-3.2-1B-Instruct-Q4_K_M.gguf",
     "Llama-3.2-1B-Instruct-Q4_K_M"},
    /* a file in a folder of the repository */
    {"hf:org/repo/sub/dir/model.Q8_0.gguf",
     "https://huggingface.co/org/repo/resolve/main/sub/dir/model.Q8_0.gguf", "model.Q8_0"},
    /* a revision instead of main */
    {"hf:org/repo@v1.2/m.gguf", "https://huggingface.co/org/repo/resolve/v1.2/m.gguf", "m"},
    /* the scheme is case-insensitive; the URL is kept as written */
    {"HF:org/repo/x.GGUF", "https://huggingface.co/org/repo/resolve/main/x.GGUF", "x"},
    {"https://example.com/models/tiny.gguf?download=true",
     "https://example.com/models/tiny.gguf?download=true", "tiny"},
    {"http://127.0.0.1:8080/a/b/stories260K.gguf", "http://127.0.0.1:8080/a/b/stories260K.gguf",
     "stories260K"},
    /* a URL whose file is not *.gguf: fetched, but the name must be given with --name */
    {"https://example.com/download?id=7", "https://example.com/download?id=7", ""},
    {"https://example.com/", "https://example.com/", ""},
};

Test(models_source, maps_urls_and_hf_references)
{
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        struct mapped m = map(good[i].source);
        cr_assert_eq(m.rc, 0, "%s: %s", good[i].source, m.why);
        cr_assert_str_eq(m.url, good[i].url, "%s", good[i].source);
        cr_assert_str_eq(m.name, good[i].name, "%s", good[i].source);
    }
}

/* Each row: a source that must be refused, and a word the reason must contain. */
static const struct {
    const char *source, *why;
} bad[] = {
    {"ftp://example.com/m.gguf", "unknown source"},
    {"/tmp/m.gguf", "unknown source"},
    {"hf:org/m.gguf", "hf:ORG/REPO/FILE.gguf"},            /* no repository */
    {"hf:org/repo", "hf:ORG/REPO/FILE.gguf"},              /* no file */
    {"hf:org/repo/", "not a usable"},                      /* empty file name */
    {"hf:org/repo/model.bin", "must be a .gguf"},          /* not a GGUF */
    {"hf:org/repo/../../etc/passwd.gguf", "not a usable"}, /* no climbing out */
    {"hf:org/repo/a b.gguf", "not a usable"},              /* no spaces */
    {"hf:org/repo@/m.gguf", "hf:ORG/REPO/FILE.gguf"},      /* empty revision */
    {"https:///m.gguf", "no host"},
    {"https://example.com/a b.gguf", "space"},
};

Test(models_source, refuses_what_it_cannot_map)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct mapped m = map(bad[i].source);
        cr_assert_eq(m.rc, SB_EINVAL, "%s was accepted as %s", bad[i].source, m.url);
        cr_assert_not_null(strstr(m.why, bad[i].why), "%s: \"%s\" lacks \"%s\"", bad[i].source,
                           m.why, bad[i].why);
    }
}

Test(models_source, names)
{
    cr_assert(sb_models_name_valid("Llama-3.2-1B.Q4_K_M"));
    cr_assert(sb_models_name_valid("a"));
    cr_assert_not(sb_models_name_valid(""));
    cr_assert_not(sb_models_name_valid(".hidden"));
    cr_assert_not(sb_models_name_valid(".."));
    cr_assert_not(sb_models_name_valid("../x"));
    cr_assert_not(sb_models_name_valid("a/b"));
    cr_assert_not(sb_models_name_valid("a b"));
    char longest[130];
    memset(longest, 'x', sizeof longest);
    longest[128] = '\0';
    cr_assert(sb_models_name_valid(longest));
    longest[128] = 'x';
    longest[129] = '\0';
    cr_assert_not(sb_models_name_valid(longest));
}
