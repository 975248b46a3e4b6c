/* Tests for keeping secrets out of what is shown: a URL's password, wherever libpq would read it
 * from, and a known secret scrubbed from a message, with cuts that never leave a piece of it. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/core.h"

Test(redact, a_urls_password_becomes_stars)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"postgres://sb:hunter2@db.internal:5432/ledger",
         "postgres://sb:***@db.internal:5432/ledger"},
        /* Percent-encoded, and an '@' inside it: the user information ends at the first '@'. */
        {"postgresql://sb:a%40b@db/ledger?sslmode=require",
         "postgresql://sb:***@db/ledger?sslmode=require"},
        {"postgres://db/ledger?user=sb&password=hunter2&sslmode=require",
         "postgres://db/ledger?user=sb&password=***&sslmode=require"},
        {"postgres://sb:pw@db/ledger?password=hunter2", "postgres://sb:***@db/ledger?password=***"},
        /* No password: unchanged. A '@' after the first '/' is not user information. */
        {"postgres://sb@db/ledger", "postgres://sb@db/ledger"},
        {"postgres://db:5432/ledger", "postgres://db:5432/ledger"},
        {"postgres://db/led@ger", "postgres://db/led@ger"},
        {"postgres://sb:@db/ledger", "postgres://sb:***@db/ledger"},
        {"/var/lib/switchboard/ledger.db", "/var/lib/switchboard/ledger.db"},
        {"", ""},
    };
    char out[128];
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        sb_redact_url(cases[i].in, out, sizeof out);
        cr_assert_str_eq(out, cases[i].out, "%s", cases[i].in);
    }
}

Test(redact, a_cut_url_never_shows_the_password)
{
    static const char url[] = "postgres://sb:hunter2@db/ledger";
    char out[64];
    /* Every cut of the redacted text, never of the URL itself. */
    for (size_t size = 1; size <= sizeof out; size++) {
        memset(out, 'x', sizeof out);
        sb_redact_url(url, out, size);
        cr_assert_lt(strlen(out), size);
        cr_assert_null(strstr(out, "hunter"), "%s", out);
        cr_assert_null(strstr(out, "h"), "size %zu: %s", size, out); /* not even its first letter */
    }
    sb_redact_url(url, out, sizeof out);
    cr_assert_str_eq(out, "postgres://sb:***@db/ledger");
}

Test(redact, a_secret_is_scrubbed_from_a_message)
{
    char msg[64] = "password hunter2 refused; hunter2 again";
    sb_redact_secret(msg, sizeof msg, "hunter2");
    cr_assert_str_eq(msg, "password *** refused; *** again");
    /* A one-byte secret triples each occurrence; the result is cut to the array. */
    char tiny[8] = "a-b-a";
    sb_redact_secret(tiny, sizeof tiny, "a");
    cr_assert_str_eq(tiny, "***-b-*");
    /* Nothing to do. */
    char same[16] = "all fine";
    sb_redact_secret(same, sizeof same, NULL);
    sb_redact_secret(same, sizeof same, "");
    sb_redact_secret(same, sizeof same, "absent");
    cr_assert_str_eq(same, "all fine");
}
