/* Tests for the duration parser: Go's time.ParseDuration syntax, as Ollama's keep_alive uses it.
 * The expected values are worked out by hand from the units, not taken from the parser. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/core.h"

#define S  INT64_C(1000000000)
#define MS INT64_C(1000000)

struct good_case {
    const char *text;
    int64_t ns;
};

static const struct good_case good[] = {
    {"0", 0},
    {"+0", 0},
    {"-0", 0},
    {"0s", 0},
    {"5m", 5 * 60 * S},
    {"1h30m", 90 * 60 * S},
    {"10s", 10 * S},
    {"300ms", 300 * MS},
    {"1.5h", 90 * 60 * S},
    {".5s", 500 * MS},
    {"5.s", 5 * S},
    {"1h1m1s1ms1us1ns", 3661 * S + MS + 1000 + 1},
    {"1\xc2\xb5s", 1000}, /* micro sign */
    {"1\xce\xbcs", 1000}, /* Greek mu */
    {"2h45m30.5s", (2 * 3600 + 45 * 60 + 30) * S + 500 * MS},
    {"-5m", -5 * 60 * S},
    {"-1.5h", -90 * 60 * S},
    {"+10s", 10 * S},
    {"0.000000001s", 1},
    {"1.0000000009s", S}, /* beyond a nanosecond: dropped */
    {"9223372036854775807ns", INT64_MAX},
    {"2562047h", INT64_C(2562047) * 3600 * S},
    {"00010s", 10 * S},
};

Test(duration, parses_what_go_parses)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(good); i++) {
        int64_t ns = -42;
        int rc = sb_duration_parse(sb_str_c(good[i].text), &ns);
        cr_expect_eq(rc, 0, "\"%s\": rc %d", good[i].text, rc);
        cr_expect_eq(ns, good[i].ns, "\"%s\": %lld, want %lld", good[i].text, (long long)ns,
                     (long long)good[i].ns);
    }
}

struct bad_case {
    const char *text;
    int rc;
};

static const struct bad_case bad[] = {
    {"", SB_EINVAL},
    {"-", SB_EINVAL},
    {"+", SB_EINVAL},
    {"5", SB_EINVAL}, /* a number needs a unit; only "0" does not */
    {"-1", SB_EINVAL},
    {"5 parsecs", SB_EINVAL},
    {"5parsecs", SB_EINVAL},
    {"5 m", SB_EINVAL},
    {" 5m", SB_EINVAL},
    {"5m ", SB_EINVAL},
    {"1d", SB_EINVAL},
    {"5M", SB_EINVAL}, /* units are case-sensitive */
    {"1h30", SB_EINVAL},
    {".s", SB_EINVAL},
    {".", SB_EINVAL},
    {"s", SB_EINVAL},
    {"--5m", SB_EINVAL},
    {"1e3s", SB_EINVAL},
    {"1..5s", SB_EINVAL},
    {"forever", SB_EINVAL},
    {"9223372036854775808ns", SB_ETOOBIG},
    {"2562048h", SB_ETOOBIG},
    {"99999999999999999999s", SB_ETOOBIG},
    {"2562047h2562047h", SB_ETOOBIG},
    {"-2562048h", SB_ETOOBIG},
};

Test(duration, refuses_what_is_not_a_duration)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
        int64_t ns = 42;
        int rc = sb_duration_parse(sb_str_c(bad[i].text), &ns);
        cr_expect_eq(rc, bad[i].rc, "\"%s\": rc %d, want %d", bad[i].text, rc, bad[i].rc);
        cr_expect_eq(ns, 0, "\"%s\": a failure leaves 0", bad[i].text);
    }
}

Test(duration, reads_only_the_view_not_past_it)
{
    /* "5m" followed by bytes outside the view: only "5m" is read. */
    const char text[] = "5m30s";
    int64_t ns = 0;
    cr_assert_eq(sb_duration_parse((struct sb_str){text, 2}, &ns), 0);
    cr_expect_eq(ns, 5 * 60 * S);
    cr_assert_eq(sb_duration_parse((struct sb_str){text, 1}, &ns), SB_EINVAL, "\"5\" alone");
    cr_assert_eq(sb_duration_parse(SB_STR_NULL, &ns), SB_EINVAL);
}
