/* Unit tests for ${ENV} expansion in configuration values. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "config/internal.h"

/* Expands in, expecting success; returns the result (the caller frees it). */
static char *expand_ok(const char *in)
{
    struct sb_buf out, why;
    sb_buf_init(&out, 1 << 16);
    sb_buf_init(&why, 1 << 16);
    int rc = sb__config_expand_env(sb_str_c(in), &out, &why);
    cr_assert_eq(rc, 0, "expanding %s: %s", in, why.p ? why.p : "");
    sb_buf_free(&why);
    return sb_buf_steal(&out);
}

static void expect(const char *in, const char *want)
{
    char *got = expand_ok(in);
    cr_assert_str_eq(got, want, "expanding %s", in);
    free(got);
}

/* Expands in, expecting SB_EINVAL with a reason that contains want. */
static void expect_fail(const char *in, const char *want)
{
    struct sb_buf out, why;
    sb_buf_init(&out, 1 << 16);
    sb_buf_init(&why, 1 << 16);
    int rc = sb__config_expand_env(sb_str_c(in), &out, &why);
    cr_assert_eq(rc, SB_EINVAL, "expanding %s gave %d", in, rc);
    cr_assert_not_null(why.p);
    cr_assert_not_null(strstr(why.p, want), "expanding %s: %s", in, why.p);
    sb_buf_free(&out);
    sb_buf_free(&why);
}

Test(config_expand, plain_text_is_unchanged)
{
    expect("", "");
    expect("hello", "hello");
    expect("cost: $5, a$b, trailing $", "cost: $5, a$b, trailing $");
}

Test(config_expand, variables)
{
    setenv("SB_T_X", "1", 1);
    setenv("SB_T_EMPTY", "", 1);
    unsetenv("SB_T_UNSET");
    expect("${SB_T_X}", "1");
    expect("a${SB_T_X}b${SB_T_X}", "a1b1");
    expect("${SB_T_EMPTY}", "");
}

Test(config_expand, defaults)
{
    setenv("SB_T_X", "1", 1);
    setenv("SB_T_EMPTY", "", 1);
    unsetenv("SB_T_UNSET");
    expect("${SB_T_X:-9}", "1");
    expect("${SB_T_UNSET:-9}", "9");
    expect("${SB_T_EMPTY:-9}", "9"); /* ":-" also covers set-but-empty, as in the shell */
    expect("${SB_T_UNSET:-}", "");
    expect("${SB_T_UNSET:-a b:c}x", "a b:cx");
    expect("${SB_T_UNSET:-a}b}", "ab}"); /* the default ends at the first '}' */
    expect("${SB_T_UNSET:-$$}", "$$");   /* a default is literal */
}

Test(config_expand, dollar_escapes)
{
    setenv("SB_T_X", "1", 1);
    expect("$$", "$");
    expect("$${SB_T_X}", "${SB_T_X}");
    expect("$$$${SB_T_X}", "$${SB_T_X}");
    expect("$$${SB_T_X}", "$1");
}

Test(config_expand, values_are_not_expanded_again)
{
    setenv("SB_T_INNER", "${SB_T_X}", 1);
    expect("${SB_T_INNER}", "${SB_T_X}");
}

Test(config_expand, problems)
{
    unsetenv("SB_T_UNSET");
    expect_fail("a${SB_T_UNSET}", "environment variable SB_T_UNSET is not set");
    expect_fail("${", "malformed variable reference \"${\"");
    expect_fail("${}", "malformed");
    expect_fail("${SB_T_X", "malformed");
    expect_fail("${SB_T_X:-no end", "malformed");
    expect_fail("${1X}", "malformed");
    expect_fail("${SB-X}", "malformed");
    expect_fail("${A B}", "malformed");
}
