/* Known-answer tests for AWS Signature Version 4 against AWS's published test suite
 * (aws-sig-v4-test-suite: credentials AKIDEXAMPLE, 20150830T123600Z, us-east-1, service
 * "service"), plus the Bedrock-specific parts: double-encoded model ids and the signed headers. */
#include "backend/bedrock.h"
#include "backend/sigv4.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUITE_KEY_ID "AKIDEXAMPLE"
#define SUITE_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define SUITE_DATE   "20150830T123600Z"
#define SUITE_SCOPE  "Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define STS_TOKEN                                                                                  \
    "AQoDYXdzEPT//////////"                                                                        \
    "wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwth" \
    "A"                                                                                            \
    "x7mSEI/qkPpKPi/"                                                                              \
    "kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd"              \
    "8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+"                                \
    "scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSY"                                                            \
    "vKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA=="

/* Signs one suite request and returns the Authorization value (the caller frees it). */
static char *sign_suite(const char *method, const char *path, const char *query,
                        const struct sb__sigv4_header *extra, size_t n_extra, const char *body,
                        struct sb_buf *canonical)
{
    struct sb__sigv4_header h[8] = {{"Host", "example.amazonaws.com"}, {"X-Amz-Date", SUITE_DATE}};
    size_t n = 2;
    for (size_t i = 0; i < n_extra; i++)
        h[n++] = extra[i];
    char hash[65];
    sb__sigv4_sha256_hex(sb_str_c(body), hash);
    struct sb__sigv4_request r = {
        .method = method,
        .path = path,
        .query = query,
        .headers = h,
        .n_headers = n,
        .payload_hash = hash,
        .amz_date = SUITE_DATE,
        .region = "us-east-1",
        .service = "service",
    };
    struct sb__sigv4_creds creds = {SUITE_KEY_ID, SUITE_SECRET, NULL};
    struct sb_buf auth;
    sb_buf_init(&auth, 4096);
    cr_assert_eq(sb__sigv4_sign(&r, &creds, &auth, canonical), 0);
    return sb_buf_steal(&auth);
}

static void expect_auth(char *got, const char *signed_headers, const char *signature)
{
    char want[512];
    snprintf(want, sizeof want, "AWS4-HMAC-SHA256 " SUITE_SCOPE "SignedHeaders=%s, Signature=%s",
             signed_headers, signature);
    cr_assert_str_eq(got, want);
    free(got);
}

Test(sigv4, sha256_and_signing_key)
{
    char hex[65];
    sb__sigv4_sha256_hex(SB_STR_NULL, hex);
    cr_assert_str_eq(hex, EMPTY_SHA256);
    cr_assert_eq(sb__sigv4_signing_key_hex(SUITE_SECRET, "20150830", "us-east-1", "service", hex),
                 0);
    cr_assert_str_eq(hex, "938127b5336810ddb6a5d6af445fcac9e371f9ed418ed386b022aed82901be75");
}

Test(sigv4, get_vanilla)
{
    struct sb_buf canon;
    sb_buf_init(&canon, 1 << 16);
    char *auth = sign_suite("GET", "/", "", NULL, 0, "", &canon);
    cr_assert_str_eq(canon.p,
                     "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n"
                     "host;x-amz-date\n" EMPTY_SHA256);
    expect_auth(auth, "host;x-amz-date",
                "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
    sb_buf_free(&canon);
}

Test(sigv4, post_vanilla)
{
    expect_auth(sign_suite("POST", "/", NULL, NULL, 0, "", NULL), "host;x-amz-date",
                "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b");
}

Test(sigv4, get_vanilla_query_order_key_case)
{
    expect_auth(sign_suite("GET", "/", "Param2=value2&Param1=value1", NULL, 0, "", NULL),
                "host;x-amz-date",
                "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500");
}

Test(sigv4, get_utf8)
{
    /* The path is the raw UTF-8 of U+1234 on the wire; it signs percent-encoded. */
    expect_auth(sign_suite("GET", "/\xe1\x88\xb4", "", NULL, 0, "", NULL), "host;x-amz-date",
                "8318018e0b0f223aa2bbf98705b62bb787dc9c0e678f255a891fd03141be5d85");
}

Test(sigv4, post_x_www_form_urlencoded)
{
    struct sb__sigv4_header ct = {"Content-Type", "application/x-www-form-urlencoded"};
    expect_auth(sign_suite("POST", "/", "", &ct, 1, "Param1=value1", NULL),
                "content-type;host;x-amz-date",
                "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a");
}

Test(sigv4, post_sts_header_before)
{
    struct sb__sigv4_header tok = {"X-Amz-Security-Token", STS_TOKEN};
    expect_auth(sign_suite("POST", "/", "", &tok, 1, "", NULL),
                "host;x-amz-date;x-amz-security-token",
                "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead");
}

Test(sigv4, header_values_trimmed_and_names_checked)
{
    struct sb__sigv4_header spaced = {"My-Header1", "  value1   value2  "};
    struct sb_buf canon;
    sb_buf_init(&canon, 1 << 16);
    free(sign_suite("GET", "/", "", &spaced, 1, "", &canon));
    cr_assert(strstr(canon.p, "\nmy-header1:value1 value2\n"), "%s", canon.p);
    sb_buf_free(&canon);

    /* The same header twice (ignoring case) is refused rather than signed ambiguously. */
    struct sb__sigv4_header h[] = {{"host", "a"}, {"HOST", "b"}};
    char hash[65];
    sb__sigv4_sha256_hex(SB_STR_NULL, hash);
    struct sb__sigv4_request r = {"GET", "/", "", h, 2, hash, SUITE_DATE, "us-east-1", "service"};
    struct sb__sigv4_creds creds = {SUITE_KEY_ID, SUITE_SECRET, NULL};
    struct sb_buf auth;
    sb_buf_init(&auth, 4096);
    cr_assert_eq(sb__sigv4_sign(&r, &creds, &auth, NULL), SB_EINVAL);
    r.n_headers = 1;
    r.amz_date = "2015-08-30";
    cr_assert_eq(sb__sigv4_sign(&r, &creds, &auth, NULL), SB_EINVAL);
    sb_buf_free(&auth);
}

Test(sigv4, canonical_uri_double_encodes)
{
    struct sb_buf b;
    sb_buf_init(&b, 4096);
    cr_assert_eq(
        sb__sigv4_canonical_uri(
            SB_STR_LIT("/model/anthropic.claude-3-sonnet-20240229-v1%3A0/converse-stream"), &b),
        0);
    cr_assert_str_eq(b.p, "/model/anthropic.claude-3-sonnet-20240229-v1%253A0/converse-stream");
    sb_buf_reset(&b);
    cr_assert_eq(sb__sigv4_canonical_uri(SB_STR_NULL, &b), 0);
    cr_assert_str_eq(b.p, "/");
    sb_buf_free(&b);
}

Test(sigv4, amz_date)
{
    char d[SB__SIGV4_AMZ_DATE_SIZE];
    sb__sigv4_amz_date(1440938160, d); /* 2015-08-30 12:36:00 UTC */
    cr_assert_str_eq(d, SUITE_DATE);
}

/* -----------------------------------------------------------------------------------------------
 * Bedrock's signed request
 * --------------------------------------------------------------------------------------------- */

static const char *find_header(const struct sb__bedrock_signed *s, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < s->n_headers; i++) {
        if (strncmp(s->headers[i], name, n) == 0 && s->headers[i][n] == ':')
            return s->headers[i] + n + 2;
    }
    return NULL;
}

Test(sigv4, bedrock_path_and_headers)
{
    struct sb_buf path;
    sb_buf_init(&path, 4096);
    cr_assert_eq(sb__bedrock_path(SB_STR_LIT("anthropic.claude-3-haiku-20240307-v1:0"), &path), 0);
    cr_assert_str_eq(path.p, "/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream");

    struct sb__sigv4_creds creds = {SUITE_KEY_ID, SUITE_SECRET, "TOKEN/+="};
    struct sb__bedrock_signed sig;
    struct sb_str body = SB_STR_LIT("{\"messages\":[]}");
    cr_assert_eq(sb__bedrock_sign("bedrock-runtime.us-east-1.amazonaws.com", path.p, "us-east-1",
                                  body, &creds, 1440938160, &sig),
                 0);
    cr_assert_str_eq(find_header(&sig, "host"), "bedrock-runtime.us-east-1.amazonaws.com");
    cr_assert_str_eq(find_header(&sig, "x-amz-date"), SUITE_DATE);
    cr_assert_str_eq(find_header(&sig, "x-amz-security-token"), "TOKEN/+=");
    char hash[65];
    sb__sigv4_sha256_hex(body, hash);
    cr_assert_str_eq(find_header(&sig, "x-amz-content-sha256"), hash);
    const char *auth = find_header(&sig, "authorization");
    cr_assert_not_null(auth);
    cr_assert(strstr(auth, "Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, "),
              "%s", auth);
    cr_assert(strstr(auth, "SignedHeaders=host;x-amz-content-sha256;x-amz-date;"
                           "x-amz-security-token, "),
              "%s", auth);
    cr_assert_null(strstr(auth, SUITE_SECRET));

    /* The signature is the one an independent signing of the same canonical request gives: the
     * double-encoded path, the signed headers, the body's hash. */
    struct sb__sigv4_header h[] = {{"host", "bedrock-runtime.us-east-1.amazonaws.com"},
                                   {"x-amz-date", SUITE_DATE},
                                   {"x-amz-content-sha256", hash},
                                   {"x-amz-security-token", "TOKEN/+="}};
    struct sb__sigv4_request r = {"POST", path.p,     "",          h,        4,
                                  hash,   SUITE_DATE, "us-east-1", "bedrock"};
    struct sb_buf want, canon;
    sb_buf_init(&want, 4096);
    sb_buf_init(&canon, 1 << 16);
    cr_assert_eq(sb__sigv4_sign(&r, &creds, &want, &canon), 0);
    cr_assert_str_eq(auth, want.p);
    cr_assert(
        strstr(canon.p, "\n/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse-stream\n"),
        "%s", canon.p);

    /* A different body signs differently. */
    struct sb__bedrock_signed sig2;
    cr_assert_eq(sb__bedrock_sign("bedrock-runtime.us-east-1.amazonaws.com", path.p, "us-east-1",
                                  SB_STR_LIT("{}"), &creds, 1440938160, &sig2),
                 0);
    cr_assert_str_neq(find_header(&sig2, "authorization"), auth);
    sb__bedrock_signed_free(&sig2);
    sb__bedrock_signed_free(&sig);
    sb_buf_free(&want);
    sb_buf_free(&canon);
    sb_buf_free(&path);
}
