/* Tests for PII scanning: each detector's true positives and near misses, custom terms and
 * patterns, overlaps, UTF-8 around matches, JSON texts, requests, and a large mixed text. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "privacy/internal.h"
#include "privacy/privacy.h"

static struct sb_privacy *priv;
static struct sb_privacy_scratch *scratch;

static void open_with(const struct sb_privacy_config *cfg)
{
    char err[512];
    int rc = sb_privacy_new(cfg, &priv, err, sizeof err);
    cr_assert_eq(rc, 0, "sb_privacy_new: %s", err);
    cr_assert_eq(sb_privacy_scratch_new(priv, &scratch), 0);
}

static void setup(void)
{
    open_with(NULL);
}

static void teardown(void)
{
    sb_privacy_scratch_free(scratch);
    sb_privacy_free(priv);
    scratch = NULL;
    priv = NULL;
}

/* Collects matches as "kind:value" lines. */
struct found {
    struct sb_str text;
    struct sb_buf out;
};

static int collect(void *ud, const struct sb_pii_match *m)
{
    struct found *f = ud;
    sb_buf_printf(&f->out, "%s%s:%.*s%s", f->out.len > 0 ? "|" : "",
                  sb_privacy_kind_name(priv, m->kind), (int)(m->to - m->from), f->text.p + m->from,
                  m->bare ? "(bare)" : "");
    return 0;
}

/* Scans text and returns "kind:value|kind:value" (static buffer, valid until the next call). */
static const char *scan_flags(const char *text, unsigned flags)
{
    static char result[8192];
    struct found f = {sb_str_c(text), {0}};
    sb_buf_init(&f.out, sizeof result - 1);
    int n = sb_privacy_scan(priv, scratch, f.text, flags, collect, &f);
    cr_assert_geq(n, 0, "scan failed: %s", sb_strerror(n));
    snprintf(result, sizeof result, "%s", f.out.p != NULL ? f.out.p : "");
    sb_buf_free(&f.out);
    return result;
}

static const char *scan(const char *text)
{
    return scan_flags(text, 0);
}

/* Asserts that each text yields exactly want. */
static void expect_all(const char *const *texts, size_t n, const char *kind)
{
    for (size_t i = 0; i < n; i++) {
        char want[512];
        snprintf(want, sizeof want, "%s:%s", kind, texts[i]);
        char text[600];
        snprintf(text, sizeof text, "see %s here", texts[i]);
        cr_expect_str_eq(scan(text), want, "in \"%s\"", text);
    }
}

static void expect_none(const char *const *texts, size_t n)
{
    for (size_t i = 0; i < n; i++)
        cr_expect_str_eq(scan(texts[i]), "", "in \"%s\"", texts[i]);
}

#define EXPECT_ALL(arr, kind) expect_all(arr, SB_ARRAY_LEN(arr), kind)
#define EXPECT_NONE(arr)      expect_none(arr, SB_ARRAY_LEN(arr))

TestSuite(scan, .init = setup, .fini = teardown);

/* ---------------------------------------------------------------------------------------------
 * Built-in detectors
 * ------------------------------------------------------------------------------------------- */
Test(scan, email)
{
    static const char *const yes[] = {
        "john.doe@example.com",
        "a+tag@sub.example.co.uk",
        "x_y-z@mail-host.io",
        "jürgen@müller.de",
    };
    static const char *const no[] = {
        "john@localhost", "a..b@example.com x",           "user@-bad.com", "@example.com",
        "x@y.c",          "mail me at john@ example.com",
    };
    EXPECT_ALL(yes, "email");
    EXPECT_NONE(no);
    /* Trailing punctuation and leading dots stay outside. */
    cr_expect_str_eq(scan("(...john@example.com)."), "email:john@example.com");
}

Test(scan, phone)
{
    static const char *const yes[] = {
        "+1 (415) 555-0132", "+44 20 7946 0958",  "+4915112345678", "415-555-0199",
        "(415) 555-0199",    "415.555.0199",      "020 7946 0958",  "01 23 45 67 89",
        "1-800-555-0199",    "+33 1 23 45 67 89",
    };
    static const char *const no[] = {
        "+1 2",         "415 555-0199", "call 2023-10-05", "12345678",
        "v1.2.3",       "1,234,567",    "05.11.2023",      "+1 234",
        "115-555-0199", "415-155-0199", "3.14159 2.718",
    };
    EXPECT_ALL(yes, "phone");
    EXPECT_NONE(no);
}

Test(scan, card)
{
    static const char *const yes[] = {
        "4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111",    "3782 822463 10005",
        "5500 0000 0000 0004", "6011 1111 1111 1117", "2223 0031 2200 3222",
    };
    static const char *const no[] = {
        "4111 1111 1111 1112",     /* Luhn */
        "1234 5678 9012 3452",     /* no issuer starts with 1 */
        "4111 111 11111 1111",     /* not how cards are grouped */
        "4111 1111-1111 1111",     /* mixed separators */
        "9-4111-1111-1111-1111",   /* a piece of a longer identifier */
        "41111111111111111111111", /* too long */
    };
    EXPECT_ALL(yes, "card");
    EXPECT_NONE(no);
    /* The expiry date after the number is not part of it. */
    cr_expect_str_eq(scan("4111 1111 1111 1111 12/27"), "card:4111 1111 1111 1111");
}

Test(scan, ssn)
{
    static const char *const yes[] = {"078-05-1120", "123-45-6789", "123 45 6789", "899-99-9999"};
    static const char *const no[] = {
        "666-12-3456", "000-12-3456", "912-12-3456",   "123-00-4567",
        "123-45-0000", "123-45 6789", "1-123-45-6789", "123-45-6789-1",
    };
    EXPECT_ALL(yes, "ssn");
    EXPECT_NONE(no);
}

Test(scan, iban)
{
    static const char *const yes[] = {
        "DE89 3704 0044 0532 0130 00", "DE89370400440532013000",      "GB82WEST12345698765432",
        "GB82 WEST 1234 5698 7654 32", "FR1420041010050500013M02606", "NL91ABNA0417164300",
    };
    static const char *const no[] = {
        "DE89 3704 0044 0532 0130 01", /* check digits */
        "XX89370400440532013000",      /* no such country */
        "DE8937040044053201300",       /* DE IBANs have 22 characters */
        "DE89 37040 044 0532 0130 00", /* spaced off the grid of four */
    };
    EXPECT_ALL(yes, "iban");
    EXPECT_NONE(no);
}

Test(scan, iban_mod97_and_luhn)
{
    cr_assert(sb__pii_iban_mod97("GB82WEST12345698765432", 22));
    cr_assert_not(sb__pii_iban_mod97("GB83WEST12345698765432", 22));
    cr_assert(sb__pii_luhn("79927398713", 11));
    cr_assert_not(sb__pii_luhn("79927398710", 11));
}

Test(scan, ipv4)
{
    static const char *const yes[] = {"192.168.1.20", "10.0.0.1", "8.8.8.8", "255.255.255.255"};
    static const char *const no[] = {"256.1.1.1", "1.2.3.4.5", "01.02.03.04",
                                     "v1.2.3.4",  "1.2.3",     "1.2.3.999"};
    EXPECT_ALL(yes, "ipv4");
    EXPECT_NONE(no);
    cr_expect_str_eq(scan("host 10.1.2.3."), "ipv4:10.1.2.3");
}

Test(scan, ipv6)
{
    static const char *const yes[] = {
        "2001:db8::8a2e:370:7334", "fe80::1",    "::1", "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
        "::ffff:192.0.2.1",        "2001:db8::",
    };
    static const char *const no[] = {
        "std::vector<int>", "at 12:30:45", "00:1a:2b:3c:4d:5e", "a::b::c", "Foo::Bar::baz",
    };
    EXPECT_ALL(yes, "ipv6");
    EXPECT_NONE(no);
}

Test(scan, aws_key)
{
    static const char *const yes[] = {"AKIAIOSFODNN7EXAMPLE", "ASIAY34FZKBOKMUTVV7A"};
    static const char *const no[] = {"AKIAIOSFODNN7EXAMPL", "XKIAIOSFODNN7EXAMPLE",
                                     "AKIAIOSFODNN7EXAMPLEX"};
    EXPECT_ALL(yes, "aws_key");
    EXPECT_NONE(no);
}

Test(scan, api_key)
{
    static const char *const yes[] = {
        "sk-proj-Abc123Def456Ghi789Jkl012",
        "sk-ant-api03-AbCdEf123456GhIjKl789012_xy-Z",
        "sk-Abc123Def456Ghi789Jkl0",
    };
    static const char *const no[] = {
        "sk-short1A",                    /* too short */
        "sk-learn-is-a-library-for-ml",  /* a slug: no digits, no capitals */
        "task-Abc123Def456Ghi789Jkl012", /* not at a word start */
    };
    EXPECT_ALL(yes, "api_key");
    EXPECT_NONE(no);
}

Test(scan, github_token)
{
    static const char *const yes[] = {
        "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
        "gho_0123456789abcdefghijABCDEFGHIJ012345",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRS",
    };
    static const char *const no[] = {"ghp_short", "ghx_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789"};
    EXPECT_ALL(yes, "github_token");
    EXPECT_NONE(no);
}

Test(scan, jwt)
{
    /* {"alg":"HS256","typ":"JWT"} . {"sub":"1234567890"} . signature */
    static const char *const yes[] = {
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        /* alg none: no signature */
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjM0NTY3ODkwIn0.",
    };
    static const char *const no[] = {
        /* {"foo":"bar"}: no alg */
        "eyJmb28iOiJiYXIifQ.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJl",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0", /* two parts */
    };
    EXPECT_ALL(yes, "jwt");
    EXPECT_NONE(no);
}

Test(scan, private_key)
{
    const char *rsa =
        "-----BEGIN RSA PRIVATE KEY-----\nMIIBOgIBAAJBAKj34GkxFhD90vcNLYLInFEX6Ppy1tPf9"
        "Cnzj4p4WGeKLs1Pt8Qu\nKUpRKfFLfRYC9AIKjbJTWit+CqvjWYzvQwECAwEAAQ==\n"
        "-----END RSA PRIVATE KEY-----";
    const char *enc = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: "
                      "DES-EDE3-CBC,1A2B\n\nMIIFDjBABgkqhkiG9w0BBQ0wMzAbBgkqhkiG\n"
                      "-----END ENCRYPTED PRIVATE KEY-----";
    char text[1024], want[1024];
    snprintf(text, sizeof text, "key:\n%s\nand\n%s\n", rsa, enc);
    snprintf(want, sizeof want, "private_key:%s|private_key:%s", rsa, enc);
    cr_expect_str_eq(scan(text), want);
    /* A key pasted in part (or closed by another label) is still a key: BEGIN line and body. */
    cr_expect_str_eq(scan("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END EC PRIVATE KEY-----"),
                     "private_key:-----BEGIN RSA PRIVATE KEY-----\nMIIB");
    cr_expect_str_eq(
        scan("x -----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN+/=\nBgkqhkiG9w0\n\nbye"),
        "private_key:-----BEGIN PRIVATE KEY-----\nMIIEvQIBADAN+/=\nBgkqhkiG9w0\n\nbye");
    cr_expect_str_eq(scan("-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----"), "");
}

/* ---------------------------------------------------------------------------------------------
 * Custom terms and patterns, configuration errors
 * ------------------------------------------------------------------------------------------- */
Test(scan_custom, terms_and_patterns)
{
    char *terms[] = {"Falcon", "acme-corp", "Ünïcode"};
    struct sb_privacy_pattern_config pats[] = {
        {.name = "customer_id", .regex = "CUST-[0-9]{6}", .line = 7},
    };
    struct sb_privacy_config cfg = {.custom_terms = terms,
                                    .n_custom_terms = SB_ARRAY_LEN(terms),
                                    .custom_patterns = pats,
                                    .n_custom_patterns = SB_ARRAY_LEN(pats)};
    open_with(&cfg);
    cr_expect_str_eq(scan("Project FALCON and falcon, not Falconry, for ACME-Corp"),
                     "term:FALCON|term:falcon|term:ACME-Corp");
    cr_expect_str_eq(scan("ticket CUST-123456 from x"), "customer_id:CUST-123456");
    cr_expect_str_eq(scan("the Ünïcode team"), "term:Ünïcode");
    cr_expect_eq(sb_privacy_n_kinds(priv), SB_PII_CUSTOM + 1);
    cr_expect_str_eq(sb_privacy_kind_tag(priv, SB_PII_CUSTOM), "CUSTOMER_ID");
    cr_expect_str_eq(sb_privacy_kind_tag(priv, SB_PII_TERM), "TERM");
    cr_expect_null(sb_privacy_kind_name(priv, SB_PII_CUSTOM + 1));
    teardown();
}

Test(scan_custom, only_some_detectors)
{
    char *only[] = {"email"};
    struct sb_privacy_config cfg = {.detectors = only, .n_detectors = 1};
    open_with(&cfg);
    cr_expect_str_eq(scan("a@example.com 4111 1111 1111 1111"), "email:a@example.com");
    teardown();
    char *none[] = {"none"};
    char *terms[] = {"falcon"};
    struct sb_privacy_config cfg2 = {
        .detectors = none, .n_detectors = 1, .custom_terms = terms, .n_custom_terms = 1};
    open_with(&cfg2);
    cr_expect_str_eq(scan("a@example.com falcon"), "term:falcon");
    teardown();
}

Test(scan_custom, bad_config_is_named)
{
    struct sb_privacy *p = NULL;
    char err[512];
    struct sb_privacy_pattern_config bad[] = {{.name = "order", .regex = "(abc", .line = 12}};
    struct sb_privacy_config cfg = {.custom_patterns = bad, .n_custom_patterns = 1};
    cr_assert_eq(sb_privacy_new(&cfg, &p, err, sizeof err), SB_EINVAL);
    cr_assert_null(p);
    cr_expect(strstr(err, "\"order\"") != NULL && strstr(err, "line 12") != NULL, "%s", err);

    char *unknown[] = {"emial"};
    struct sb_privacy_config cfg2 = {.detectors = unknown, .n_detectors = 1};
    cr_assert_eq(sb_privacy_new(&cfg2, &p, err, sizeof err), SB_EINVAL);
    cr_expect(strstr(err, "emial") != NULL, "%s", err);

    struct sb_privacy_pattern_config clash[] = {{.name = "Email", .regex = "x+"}};
    struct sb_privacy_config cfg3 = {.custom_patterns = clash, .n_custom_patterns = 1};
    cr_assert_eq(sb_privacy_new(&cfg3, &p, err, sizeof err), SB_EINVAL);

    cr_expect_eq(sb_privacy_check_pattern("CUST-[0-9]+", err, sizeof err), 0);
    cr_expect_eq(sb_privacy_check_pattern("(a)\\1", err, sizeof err), SB_EINVAL);
    cr_expect_eq(sb_privacy_check_pattern("a(?=b)", err, sizeof err), SB_EINVAL);
    cr_expect_eq(sb_privacy_check_pattern("a*", err, sizeof err), SB_EINVAL);
    cr_expect_gt(strlen(err), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Overlaps, UTF-8, JSON, big texts
 * ------------------------------------------------------------------------------------------- */
Test(scan_custom, overlaps_longest_then_priority)
{
    struct sb_privacy_pattern_config pats[] = {
        {.name = "domain", .regex = "example\\.com"},
        {.name = "emp_id", .regex = "[0-9]{3}-[0-9]{2}-[0-9]{4}"},
    };
    struct sb_privacy_config cfg = {.custom_patterns = pats, .n_custom_patterns = 2};
    open_with(&cfg);
    /* The address is longer than the domain inside it. */
    cr_expect_str_eq(scan("john@example.com"), "email:john@example.com");
    cr_expect_str_eq(scan("visit example.com"), "domain:example.com");
    /* Same span: the custom pattern outranks the built-in SSN. */
    cr_expect_str_eq(scan("id 123-45-6789"), "emp_id:123-45-6789");
    teardown();
    /* Built-ins among themselves: an SSN-shaped national phone number is an SSN. */
    open_with(NULL);
    cr_expect_str_eq(scan("078-05-1120"), "ssn:078-05-1120");
    /* A card number holds phone-shaped pieces; the whole card wins. */
    cr_expect_str_eq(scan("5500 0000 0000 0004"), "card:5500 0000 0000 0004");
}

Test(scan, utf8_around_matches)
{
    cr_expect_str_eq(scan("Grüße an jürgen@example.de — danke"), "email:jürgen@example.de");
    cr_expect_str_eq(scan("電話: +81 3-1234-5678。"), "phone:+81 3-1234-5678");
    cr_expect_str_eq(scan("café 4111 1111 1111 1111 ü"), "card:4111 1111 1111 1111");
    cr_expect_str_eq(scan("«192.168.0.1»"), "ipv4:192.168.0.1");
    cr_expect_str_eq(scan("ключ AKIAIOSFODNN7EXAMPLE ок"), "aws_key:AKIAIOSFODNN7EXAMPLE");
}

Test(scan, json_strings_are_decoded)
{
    const char *json = "{\"to\":\"a@example.com\",\"note\":\"line\\nsk-proj-Abc123Def456Ghi789Jkl0"
                       "12\",\"card\":4111111111111111,\"esc\":\"\\u0062ob@example.com\"}";
    cr_expect_str_eq(scan_flags(json, SB_PRIVACY_SCAN_JSON),
                     "email:a@example.com|api_key:sk-proj-Abc123Def456Ghi789Jkl012|"
                     "card:4111111111111111(bare)|email:\\u0062ob@example.com");
    /* As plain text, the escape's letter would glue to the key and hide it. */
    cr_expect_str_eq(scan("line\\nsk-proj-Abc123Def456Ghi789Jkl012"), "");
    /* A match never spans two strings. */
    cr_expect_str_eq(scan_flags("[\"4111 1111\",\" 1111 1111\"]", SB_PRIVACY_SCAN_JSON), "");
}

Test(scan, json_decode_maps_offsets)
{
    const char *s = "a\\u00e9\\n\\ud83d\\ude00\\q";
    char out[64];
    uint32_t map[64];
    size_t n = sb__privacy_json_decode(s, strlen(s), out, map);
    cr_assert_eq(n, 1 + 2 + 1 + 4 + 2);
    cr_expect(memcmp(out, "a\xc3\xa9\n\xf0\x9f\x98\x80\\q", n) == 0);
    cr_expect_eq(map[1], 1);
    cr_expect_eq(map[3], 7);
    cr_expect_eq(map[4], 9);
    cr_expect_eq(map[n], strlen(s));
}

Test(scan, request_counts)
{
    struct sb_part sys = {.type = SB_PART_TEXT, .text = SB_STR_LIT("Reply to ops@example.com.")};
    struct sb_part user[] = {
        {.type = SB_PART_TEXT,
         .text = SB_STR_LIT("card 4111 1111 1111 1111, call +1 415 555 0132")},
        {.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/a@example.com.png")},
    };
    struct sb_tool_call call = {.id = SB_STR_LIT("c1"),
                                .name = SB_STR_LIT("send"),
                                .arguments = SB_STR_LIT("{\"to\":\"bob@example.com\"}")};
    struct sb_part result = {.type = SB_PART_TEXT, .text = SB_STR_LIT("sent from 10.0.0.7")};
    struct sb_message msgs[] = {
        {.role = SB_ROLE_SYSTEM, .parts = &sys, .n_parts = 1},
        {.role = SB_ROLE_USER, .parts = user, .n_parts = 2},
        {.role = SB_ROLE_ASSISTANT, .tool_calls = &call, .n_tool_calls = 1},
        {.role = SB_ROLE_TOOL, .parts = &result, .n_parts = 1, .tool_call_id = SB_STR_LIT("c1")},
    };
    struct sb_tool tool = {
        .name = SB_STR_LIT("send"),
        .description = SB_STR_LIT("Sends mail; key AKIAIOSFODNN7EXAMPLE"),
        .parameters = SB_STR_LIT("{\"type\":\"object\",\"description\":\"e.g. x@example.org\"}")};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = msgs;
    req.n_messages = SB_ARRAY_LEN(msgs);
    req.tools = &tool;
    req.n_tools = 1;
    req.user = SB_STR_LIT("carol@example.net");
    struct sb_pii_counts c;
    cr_assert_eq(sb_privacy_scan_request(priv, scratch, &req, &c), 0);
    cr_expect_eq(c.by_kind[SB_PII_EMAIL], 4); /* system, tool call, schema, user id; not images */
    cr_expect_eq(c.by_kind[SB_PII_CARD], 1);
    cr_expect_eq(c.by_kind[SB_PII_PHONE], 1);
    cr_expect_eq(c.by_kind[SB_PII_IPV4], 1);
    cr_expect_eq(c.by_kind[SB_PII_AWS_KEY], 1);
    cr_expect_eq(c.total, 8);
    cr_expect_eq(c.kinds, (1u << SB_PII_EMAIL) | (1u << SB_PII_CARD) | (1u << SB_PII_PHONE) |
                              (1u << SB_PII_IPV4) | (1u << SB_PII_AWS_KEY));
}

/* A deterministic generator for the big text. */
static uint32_t rng = 12345;
static uint32_t next_rand(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

Test(scan, large_mixed_text)
{
    static const char *const filler[] = {
        "the ",        "quarterly ", "report ",    "v1.2.3 ", "2024-03-15 ",
        "12:30 ",      "std::move ", "$1,299.99 ", "über ",   "日本 ",
        "x = y + 1; ", "ISO 9001 ",  "page 42 ",
    };
    static const struct {
        const char *v;
        uint32_t kind;
    } values[] = {
        {"john.doe@example.com", SB_PII_EMAIL},
        {"+44 20 7946 0958", SB_PII_PHONE},
        {"4111 1111 1111 1111", SB_PII_CARD},
        {"078-05-1120", SB_PII_SSN},
        {"GB82WEST12345698765432", SB_PII_IBAN},
        {"192.168.10.20", SB_PII_IPV4},
        {"2001:db8::1", SB_PII_IPV6},
        {"AKIAIOSFODNN7EXAMPLE", SB_PII_AWS_KEY},
        {"sk-Abc123Def456Ghi789Jkl0", SB_PII_API_KEY},
    };
    size_t cap = (size_t)1 << 20;
    char *text = malloc(cap);
    size_t *at = calloc(4096, sizeof *at);
    uint32_t *kind = calloc(4096, sizeof *kind);
    cr_assert(text != NULL && at != NULL && kind != NULL);
    size_t len = 0, n = 0;
    while (len + 64 < cap) {
        const char *piece;
        if (next_rand() % 50 == 0 && n < 4096) {
            size_t v = next_rand() % SB_ARRAY_LEN(values);
            piece = values[v].v;
            at[n] = len;
            kind[n++] = values[v].kind;
        } else {
            piece = filler[next_rand() % SB_ARRAY_LEN(filler)];
        }
        size_t pl = strlen(piece);
        memcpy(text + len, piece, pl);
        len += pl;
        if (piece[pl - 1] != ' ')
            text[len++] = ' ';
    }
    struct sb_pii_counts c = {0};
    int found = sb_privacy_count(priv, scratch, (struct sb_str){text, len}, 0, &c);
    cr_assert_eq((size_t)found, n, "found %d of %zu", found, n);
    for (size_t i = 0; i < SB_ARRAY_LEN(values); i++) {
        uint32_t want = 0;
        for (size_t j = 0; j < n; j++)
            want += kind[j] == values[i].kind;
        cr_expect_eq(c.by_kind[values[i].kind], want, "%s", values[i].v);
    }
    free(text);
    free(at);
    free(kind);
}

Test(scan, scratch_belongs_to_its_privacy)
{
    char *only[] = {"email"};
    struct sb_privacy_config cfg = {.detectors = only, .n_detectors = 1};
    struct sb_privacy *other = NULL;
    char err[256];
    cr_assert_eq(sb_privacy_new(&cfg, &other, err, sizeof err), 0);
    cr_expect_eq(sb_privacy_scan(other, scratch, SB_STR_LIT("a@example.com"), 0, NULL, NULL),
                 SB_EINVAL);
    sb_privacy_free(other);
}
