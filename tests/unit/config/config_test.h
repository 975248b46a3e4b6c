/* Helpers shared by the config unit tests (and the tests of modules made from a config): parse a
 * YAML text as "t.yaml" and assert that it succeeds, or that it fails with SB_EINVAL and the
 * messages expected. Each test file includes it once; every function asserts, none returns an
 * error. */
#ifndef SB_TEST_CONFIG_TEST_H
#define SB_TEST_CONFIG_TEST_H

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

/* Parses text as "t.yaml" in base_dir (NULL: no folder), expecting success and no message; the
 * caller frees the config with sb_config_free. */
static inline struct sb_config *parse_ok_in(const char *text, const char *base_dir)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 20);
    struct sb_config *cfg = NULL;
    int rc = sb_config_parse("t.yaml", text, strlen(text), base_dir, &cfg, &err);
    cr_assert_eq(rc, 0, "parse failed (%d):\n%s", rc, err.p ? err.p : "");
    cr_assert_not_null(cfg);
    cr_assert_eq(err.len, 0, "unexpected messages: %s", err.p);
    sb_buf_free(&err);
    return cfg;
}

/* parse_ok_in without a folder. */
static inline struct sb_config *parse_ok(const char *text)
{
    return parse_ok_in(text, NULL);
}

/* Parses text expecting SB_EINVAL and no config; returns the error lines (the caller frees them).
 */
static inline char *parse_err(const char *text)
{
    struct sb_buf err;
    sb_buf_init(&err, 1 << 20);
    struct sb_config *cfg = (struct sb_config *)&err; /* must be reset to NULL */
    int rc = sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &err);
    cr_assert_eq(rc, SB_EINVAL, "expected SB_EINVAL, got %d for:\n%s", rc, text);
    cr_assert_null(cfg);
    char *lines = sb_buf_steal(&err);
    cr_assert_not_null(lines);
    return lines;
}

/* Asserts that parsing text fails with exactly the message lines want. */
static inline void expect_errors(const char *text, const char *want)
{
    char *got = parse_err(text);
    cr_assert_str_eq(got, want, "for:\n%s\ngot:\n%s", text, got);
    free(got);
}

/* Asserts that parsing text fails with messages that contain want. */
static inline void expect_error(const char *text, const char *want)
{
    char *got = parse_err(text);
    cr_assert_not_null(strstr(got, want), "message \"%s\" lacks \"%s\"", got, want);
    free(got);
}

#endif
