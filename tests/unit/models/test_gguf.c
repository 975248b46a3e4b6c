/* Tests for the GGUF checks `models pull` and `models show` rely on, and for sha256 pins: real
 * test models pass, other files are refused with a reason that says what they are. */
#include "models_harness.h"

#include "models/models.h"

/* No .timeout: these tests only read small files, and criterion leaks a watchdog entry now
 * and then when tests this short have one. */
TestSuite(models_gguf);

Test(models_gguf, accepts_real_models)
{
    static const char *const files[] = {"stories260K.gguf", "stories260K-chatml.gguf",
                                        "llama-2-tiny-random.gguf"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = shared_model(files[i]);
        char why[256] = "";
        cr_assert_eq(sb_models_gguf_check_header(path, why, sizeof why), 0, "%s: %s", path, why);
        free(path);
    }
}

/* Each row: a file's first bytes, and a word the refusal must contain. */
static const struct {
    const char *bytes;
    size_t len;
    const char *why;
} refused[] = {
    {"<!DOCTYPE html><html>", 21, "starts with \"<!DOCTYP"}, /* an error page */
    {"", 0, "shorter than a header"},
    {"GG", 2, "shorter than a header"},
    {"GGUF\x03\x00", 6, "ends inside the header"},
    {"GGUF\x01\x00\x00\x00", 8, "version 1"},
    {"GGUF\x09\x00\x00\x00", 8, "version 9"},
    {"\x7f"
     "ELF\x02\x01\x01\x00",
     8, "not a GGUF"},
};

Test(models_gguf, refuses_other_files)
{
    char *dir = temp_dir();
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        char *path = write_file(dir, "x.gguf", refused[i].bytes, refused[i].len);
        char why[256] = "";
        cr_assert_eq(sb_models_gguf_check_header(path, why, sizeof why), SB_EINVAL, "row %zu", i);
        cr_assert_not_null(strstr(why, refused[i].why), "row %zu: \"%s\"", i, why);
        struct sb_models_gguf_info info;
        cr_assert_eq(sb_models_gguf_read_info(path, &info, why, sizeof why), SB_EINVAL);
        free(path);
    }
    char why[256] = "";
    cr_assert_eq(sb_models_gguf_check_header("/nonexistent/x.gguf", why, sizeof why), SB_EIO);
    cr_assert_not_null(strstr(why, "cannot open"));
    remove_tree(dir);
}

Test(models_gguf, reads_metadata)
{
    char *path = shared_model("stories260K.gguf");
    struct sb_models_gguf_info info;
    char why[256] = "";
    cr_assert_eq(sb_models_gguf_read_info(path, &info, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(info.arch, "llama");
    cr_assert_eq(info.version, 3);
    cr_assert_eq(info.n_layer, 5);
    cr_assert_eq(info.n_embd, 64);
    cr_assert_eq(info.n_head, 8);
    cr_assert_eq(info.n_head_kv, 4);
    cr_assert_eq(info.context_length, 2048);
    cr_assert_eq(info.n_vocab, 512);
    cr_assert_str_eq(info.tokenizer, "llama");
    cr_assert_str_eq(info.quantization, "F32");
    cr_assert_eq(info.n_tensors, 48);
    cr_assert_gt(info.n_params, 200000);
    cr_assert_not(info.has_chat_template);
    cr_assert_eq(info.data_end, 1185376, "the data ends where the file does");
    free(path);

    path = shared_model("stories260K-chatml.gguf");
    cr_assert_eq(sb_models_gguf_read_info(path, &info, why, sizeof why), 0, "%s", why);
    cr_assert(info.has_chat_template);
    free(path);

    path = shared_model("llama-2-tiny-random.gguf");
    cr_assert_eq(sb_models_gguf_read_info(path, &info, why, sizeof why), 0, "%s", why);
    cr_assert_eq(info.n_vocab, 32000);
    cr_assert_str_eq(info.quantization, "F16");
    free(path);
}

Test(models_gguf, truncated_data_is_visible)
{
    /* The first 64 KiB of a model: header and metadata intact, tensors cut off. */
    char *src = shared_model("stories260K.gguf");
    FILE *f = fopen(src, "rb");
    cr_assert_not_null(f);
    static char head[64 << 10];
    cr_assert_eq(fread(head, 1, sizeof head, f), sizeof head);
    fclose(f);
    char *dir = temp_dir();
    char *path = write_file(dir, "cut.gguf", head, sizeof head);
    struct sb_models_gguf_info info;
    char why[256] = "";
    int rc = sb_models_gguf_read_info(path, &info, why, sizeof why);
    /* Either the reader refuses it, or it reports tensors that end past the file. */
    cr_assert(rc == SB_EINVAL || info.data_end > sizeof head, "rc %d, data_end %llu", rc,
              (unsigned long long)info.data_end);
    free(path);
    free(src);
    remove_tree(dir);
}

/* ---------------------------------------------------------------------------------------------
 * sha256 and pins
 * ------------------------------------------------------------------------------------------- */
#define STORIES_SHA "270cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"

Test(models_gguf, sha256_of_a_file)
{
    char *path = shared_model("stories260K.gguf");
    char sha[65], why[256] = "";
    cr_assert_eq(sb_models_sha256_file(path, sha, why, sizeof why), 0, "%s", why);
    cr_assert_str_eq(sha, STORIES_SHA, "the hash in ../shared/models/SHA256SUMS");
    free(path);

    char *dir = temp_dir();
    path = write_file(dir, "empty", "", 0);
    cr_assert_eq(sb_models_sha256_file(path, sha, why, sizeof why), 0);
    cr_assert_str_eq(sha, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    free(path);
    remove_tree(dir);

    cr_assert(sb_models_sha256_valid(STORIES_SHA));
    cr_assert(
        sb_models_sha256_valid("270CBA1BD5109F42D03350F60406024560464DB173C0E387D91F0426D3BD256D"));
    cr_assert_not(sb_models_sha256_valid("270cba"));
    cr_assert_not(sb_models_sha256_valid(STORIES_SHA "0"));
    cr_assert_not(
        sb_models_sha256_valid("g70cba1bd5109f42d03350f60406024560464db173c0e387d91f0426d3bd256d"));
    cr_assert_not(sb_models_sha256_valid(NULL));
}

Test(models_gguf, pins)
{
    char *path = shared_model("stories260K.gguf");
    struct sb_model_config m = {.name = "local", .backend = "local", .path = path};
    char err[1024] = "";
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), 0, "no pin passes");

    m.sha256 = STORIES_SHA;
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), 0, "%s", err);
    m.sha256 = "270CBA1BD5109F42D03350F60406024560464DB173C0E387D91F0426D3BD256D";
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), 0, "upper case is the same hash");

    m.sha256 = "0000000000000000000000000000000000000000000000000000000000000000";
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), SB_EINVAL);
    cr_assert_not_null(strstr(err, "expected "
                                   "0000000000000000"),
                       "%s", err);
    cr_assert_not_null(strstr(err, "got " STORIES_SHA), "%s", err);

    m.sha256 = "abc";
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), SB_EINVAL);
    cr_assert_not_null(strstr(err, "64 hex digits"), "%s", err);

    m.sha256 = STORIES_SHA;
    m.path = "/nonexistent/x.gguf";
    cr_assert_eq(sb_models_verify_pin(&m, err, sizeof err), SB_EIO);
    free(path);
}
