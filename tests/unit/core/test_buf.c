/* Tests for bounded buffers and JSON string escaping. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/core.h"

Test(buf, appends_and_terminates)
{
    struct sb_buf b;
    sb_buf_init(&b, 1024);
    cr_assert_eq(sb_buf_append_c(&b, "hello"), 0);
    cr_assert_eq(sb_buf_append_char(&b, ' '), 0);
    cr_assert_eq(sb_buf_printf(&b, "%d-%s", 42, "x"), 0);
    cr_assert_str_eq(b.p, "hello 42-x");
    cr_assert_eq(b.len, strlen("hello 42-x"));
    sb_buf_free(&b);
}

Test(buf, refuses_to_pass_its_maximum_and_stays_unchanged)
{
    struct sb_buf b;
    sb_buf_init(&b, 8);
    cr_assert_eq(sb_buf_append_c(&b, "12345678"), 0);
    cr_assert_eq(sb_buf_append_c(&b, "9"), SB_ETOOBIG);
    cr_assert_eq(sb_buf_printf(&b, "%s", "x"), SB_ETOOBIG);
    cr_assert_str_eq(b.p, "12345678");
    sb_buf_free(&b);
}

Test(buf, grows_across_many_appends)
{
    struct sb_buf b;
    sb_buf_init(&b, 1 << 20);
    for (int i = 0; i < 10000; i++)
        cr_assert_eq(sb_buf_append(&b, "abc", 3), 0);
    cr_assert_eq(b.len, 30000);
    cr_assert_eq(b.p[29999], 'c');
    cr_assert_eq(b.p[30000], '\0');
    sb_buf_free(&b);
}

Test(buf, steal_hands_over_the_bytes)
{
    struct sb_buf b;
    sb_buf_init(&b, 64);
    char *empty = sb_buf_steal(&b);
    cr_assert_str_eq(empty, "");
    free(empty);
    sb_buf_append_c(&b, "abc");
    char *s = sb_buf_steal(&b);
    cr_assert_str_eq(s, "abc");
    cr_assert_null(b.p);
    cr_assert_eq(b.len, 0);
    free(s);
}

static void check_escape(const char *in, size_t len, const char *want)
{
    struct sb_buf b;
    sb_buf_init(&b, 1024);
    cr_assert_eq(sb_buf_append_json_escaped(&b, (struct sb_str){in, len}), 0);
    cr_assert_str_eq(b.p ? b.p : "", want);
    sb_buf_free(&b);
}

Test(buf, json_escape_controls_quotes_and_utf8)
{
    check_escape("plain", 5, "plain");
    check_escape("a\"b\\c", 5, "a\\\"b\\\\c");
    check_escape("\n\r\t\b\f", 5, "\\n\\r\\t\\b\\f");
    check_escape("\x01\x1f", 2, "\\u0001\\u001f");
    check_escape("\0", 1, "\\u0000");
    check_escape("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", 14,
                 "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80");
    check_escape("", 0, "");
}

Test(buf, json_escape_replaces_invalid_utf8)
{
    check_escape("a\xFF"
                 "b",
                 3,
                 "a\xEF\xBF\xBD"
                 "b");
    check_escape("\xC3", 1, "\xEF\xBF\xBD");                 /* truncated sequence */
    check_escape("\xC0\xAF", 2, "\xEF\xBF\xBD\xEF\xBF\xBD"); /* overlong */
    check_escape("\xED\xA0\x80", 3, "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"); /* surrogate */
}
