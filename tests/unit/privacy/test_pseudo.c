/* Tests for pseudonymization and restoration: consistent placeholders, the original request left
 * alone, restoration exact at every split point of a stream, JSON escaping in tool-call
 * arguments, and no value in any log line. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "privacy/privacy.h"

static struct sb_privacy *priv;
static struct sb_privacy_scratch *scratch;
static struct sb_arena *arena;

static void setup(void)
{
    /* A custom pattern whose values hold a quote and a backslash, to test JSON escaping. */
    static struct sb_privacy_pattern_config pats[] = {
        {.name = "quote", .regex = "QQ\"[a-z]+\\\\[a-z]+\"QQ"},
    };
    static struct sb_privacy_config cfg = {.custom_patterns = pats, .n_custom_patterns = 1};
    char err[512];
    cr_assert_eq(sb_privacy_new(&cfg, &priv, err, sizeof err), 0, "%s", err);
    cr_assert_eq(sb_privacy_scratch_new(priv, &scratch), 0);
    arena = sb_arena_new(1 << 20);
    cr_assert_not_null(arena);
}

static void teardown(void)
{
    sb_arena_free(arena);
    sb_privacy_scratch_free(scratch);
    sb_privacy_free(priv);
}

TestSuite(pseudo, .init = setup, .fini = teardown);

static bool view_is(struct sb_str v, const char *want)
{
    return v.len == strlen(want) && memcmp(v.p, want, v.len) == 0;
}

#define EXPECT_VIEW(v, want)                                                                       \
    cr_expect(view_is((v), (want)), "got \"%.*s\", want \"%s\"", (int)(v).len, (v).p, (want))

/* Restores text in one go and returns a malloc'd string. */
static char *restore_all(const struct sb_privacy_map *map, const char *text, bool json)
{
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    cr_assert_eq(sb_privacy_restore(map, sb_str_c(text), json, &out), 0);
    cr_assert_eq(sb_buf_append(&out, "", 0), 0);
    return sb_buf_steal(&out);
}

/* ---------------------------------------------------------------------------------------------
 * A request to pseudonymize
 * ------------------------------------------------------------------------------------------- */
#define EMAIL_A "alice@example.com"
#define EMAIL_B "bob@example.org"
#define CARD    "4111 1111 1111 1111"
#define PEM                                                                                        \
    "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oFKZP1vQmV5s\n"       \
    "-----END EC PRIVATE KEY-----"

struct fixture {
    struct sb_part sys, user[2], result;
    struct sb_tool_call call;
    struct sb_message msgs[4];
    struct sb_tool tool;
    struct sb_request req;
};

static void make_request(struct fixture *f)
{
    memset(f, 0, sizeof *f);
    f->sys = (struct sb_part){.type = SB_PART_TEXT,
                              .text = SB_STR_LIT("You help " EMAIL_A ". Never say <EMAIL_1>.")};
    f->user[0] = (struct sb_part){
        .type = SB_PART_TEXT,
        .text = SB_STR_LIT("Mail " EMAIL_B " and " EMAIL_A "; card " CARD "; key:\n" PEM)};
    f->user[1] = (struct sb_part){.type = SB_PART_IMAGE, .url = SB_STR_LIT("https://x/y.png")};
    f->call = (struct sb_tool_call){
        .id = SB_STR_LIT("call_1"),
        .name = SB_STR_LIT("send"),
        .arguments = SB_STR_LIT("{\"to\":\"\\u0061lice@example.com\",\"card\":4111111111111111}")};
    f->result = (struct sb_part){.type = SB_PART_TEXT, .text = SB_STR_LIT("sent to " EMAIL_B)};
    f->msgs[0] = (struct sb_message){.role = SB_ROLE_SYSTEM, .parts = &f->sys, .n_parts = 1};
    f->msgs[1] = (struct sb_message){.role = SB_ROLE_USER, .parts = f->user, .n_parts = 2};
    f->msgs[2] =
        (struct sb_message){.role = SB_ROLE_ASSISTANT, .tool_calls = &f->call, .n_tool_calls = 1};
    f->msgs[3] = (struct sb_message){.role = SB_ROLE_TOOL,
                                     .parts = &f->result,
                                     .n_parts = 1,
                                     .tool_call_id = SB_STR_LIT("call_1")};
    f->tool = (struct sb_tool){
        .name = SB_STR_LIT("send"),
        .description = SB_STR_LIT("Sends mail, e.g. to " EMAIL_B),
        .parameters =
            SB_STR_LIT("{\"type\":\"object\",\"properties\":{\"to\":{\"type\":\"string\"}}}")};
    sb_request_init(&f->req);
    snprintf(f->req.id, sizeof f->req.id, "req_test");
    f->req.messages = f->msgs;
    f->req.n_messages = 4;
    f->req.tools = &f->tool;
    f->req.n_tools = 1;
    f->req.user = SB_STR_LIT(EMAIL_A);
}

/* ---------------------------------------------------------------------------------------------
 * Pseudonymizing
 * ------------------------------------------------------------------------------------------- */
Test(pseudo, same_value_same_placeholder_everywhere)
{
    struct fixture f;
    make_request(&f);
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    struct sb_pii_counts c;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, &c), 0);
    /* <EMAIL_1> is the system prompt's own text: numbering skips it. */
    EXPECT_VIEW(out.messages[0].parts[0].text, "You help <EMAIL_2>. Never say <EMAIL_1>.");
    EXPECT_VIEW(out.messages[1].parts[0].text,
                "Mail <EMAIL_3> and <EMAIL_2>; card <CARD_1>; key:\n<PRIVATE_KEY_1>");
    /* JSON: the escaped address is the same value; the bare number becomes a string (and is
     * another value: values are compared as written, so each restores to its own form). */
    EXPECT_VIEW(out.messages[2].tool_calls[0].arguments,
                "{\"to\":\"<EMAIL_2>\",\"card\":\"<CARD_2>\"}");
    EXPECT_VIEW(out.messages[3].parts[0].text, "sent to <EMAIL_3>");
    EXPECT_VIEW(out.tools[0].description, "Sends mail, e.g. to <EMAIL_3>");
    EXPECT_VIEW(out.user, "<EMAIL_2>");
    /* Unchanged texts are shared, not copied. */
    cr_expect_eq(out.tools[0].parameters.p, f.tool.parameters.p);
    cr_expect_eq(out.messages[1].parts[1].url.p, f.user[1].url.p);
    cr_expect_eq(sb_privacy_map_size(map), 5); /* two addresses, two cards, one key */
    cr_expect_eq(c.by_kind[SB_PII_EMAIL], 7);
    cr_expect_eq(c.by_kind[SB_PII_CARD], 2);
    cr_expect_eq(c.by_kind[SB_PII_PRIVATE_KEY], 1);
    cr_expect_eq(c.total, 10);
}

Test(pseudo, original_request_is_untouched)
{
    struct fixture f;
    make_request(&f);
    struct sb_request before = f.req;
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, NULL), 0);
    cr_expect(memcmp(&before, &f.req, sizeof before) == 0);
    cr_expect_neq(out.messages, f.req.messages);
    EXPECT_VIEW(f.msgs[1].parts[0].text,
                "Mail " EMAIL_B " and " EMAIL_A "; card " CARD "; key:\n" PEM);
    EXPECT_VIEW(f.call.arguments, "{\"to\":\"\\u0061lice@example.com\",\"card\":4111111111111111}");
}

Test(pseudo, restoration_is_exact)
{
    struct fixture f;
    make_request(&f);
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, NULL), 0);
    /* Restoring every rewritten text gives the original back (the JSON one decoded). */
    for (size_t i = 0; i < 2; i++) {
        struct sb_str t = out.messages[i].parts[0].text;
        char *copy = strndup(t.p, t.len);
        char *back = restore_all(map, copy, false);
        struct sb_str orig = f.msgs[i].parts[0].text;
        cr_expect(strlen(back) == orig.len && memcmp(back, orig.p, orig.len) == 0, "%s", back);
        free(back);
        free(copy);
    }
    char *args = restore_all(map, "{\"to\":\"<EMAIL_2>\",\"card\":\"<CARD_2>\"}", true);
    cr_expect_str_eq(args, "{\"to\":\"" EMAIL_A "\",\"card\":\"4111111111111111\"}");
    free(args);
}

Test(pseudo, unknown_placeholders_pass_through)
{
    struct fixture f;
    make_request(&f);
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, NULL), 0);
    const char *text = "<EMAIL_9> <FOO_1> <EMAIL_0> <email_2> <EMAIL_2 > <_1> <EMAIL_> <> < "
                       "<EMAIL_1> <<EMAIL_2>>";
    char *back = restore_all(map, text, false);
    cr_expect_str_eq(back, "<EMAIL_9> <FOO_1> <EMAIL_0> <email_2> <EMAIL_2 > <_1> <EMAIL_> <> < "
                           "<EMAIL_1> <" EMAIL_A ">");
    free(back);
    back = restore_all(NULL, "<EMAIL_2>", false);
    cr_expect_str_eq(back, "<EMAIL_2>");
    free(back);
}

Test(pseudo, arena_too_small_fails_cleanly)
{
    struct fixture f;
    make_request(&f);
    struct sb_arena *tiny = sb_arena_new(256);
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_expect_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, tiny, &out, &map, NULL), SB_ENOMEM);
    cr_expect_null(map);
    sb_arena_free(tiny);
}

/* ---------------------------------------------------------------------------------------------
 * Streaming
 * ------------------------------------------------------------------------------------------- */
/* Feeds chunks (split at the offsets in cuts, in order) and checks, after every feed, that what
 * came out so far is a prefix of want: no byte is ever written that a later chunk would change,
 * so half a placeholder never goes out. */
static void check_stream(const struct sb_privacy_map *map, const char *text, bool json,
                         const char *want, const size_t *cuts, size_t n_cuts)
{
    struct sb_privacy_restorer r;
    sb_privacy_restorer_init(&r, map, json);
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    size_t len = strlen(text), prev = 0;
    for (size_t k = 0; k <= n_cuts; k++) {
        size_t end = k < n_cuts ? cuts[k] : len;
        cr_assert_eq(sb_privacy_restore_feed(&r, (struct sb_str){text + prev, end - prev}, &out),
                     0);
        cr_assert(out.len <= strlen(want) && (out.len == 0 || memcmp(out.p, want, out.len) == 0),
                  "after %zu bytes: \"%.*s\"", end, (int)out.len, out.p);
        prev = end;
    }
    cr_assert_eq(sb_privacy_restore_flush(&r, &out), 0);
    cr_assert(out.len == strlen(want) && memcmp(out.p, want, out.len) == 0, "got \"%.*s\"",
              (int)out.len, out.p);
    sb_buf_free(&out);
}

static struct sb_privacy_map *map_for_stream(void)
{
    struct fixture f;
    make_request(&f);
    static struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, NULL), 0);
    return map;
}

Test(pseudo, stream_every_split_point)
{
    struct sb_privacy_map *map = map_for_stream();
    const char *text = "Hi <EMAIL_2>, card <CARD_1>; cc <EMAIL_3> and <EMAIL_2>. Not <EMAIL_9>, "
                       "<b>bold</b>, a<b, x < y, <PRIVATE_KEY_1>, déjà vu <EMA";
    const char *want = "Hi " EMAIL_A ", card " CARD "; cc " EMAIL_B " and " EMAIL_A
                       ". Not <EMAIL_9>, <b>bold</b>, a<b, x < y, " PEM ", déjà vu <EMA";
    size_t len = strlen(text);
    for (size_t i = 0; i <= len; i++)
        check_stream(map, text, false, want, &i, 1);
    /* Two cuts: every pair, so a placeholder split in three is covered too. */
    for (size_t i = 0; i <= len; i += 3)
        for (size_t j = i; j <= len; j += 2) {
            size_t cuts[2] = {i, j};
            check_stream(map, text, false, want, cuts, 2);
        }
    /* One byte at a time. */
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    check_stream(map, text, false, want, cuts, len);
    free(cuts);
}

Test(pseudo, stream_tool_arguments_are_json_escaped)
{
    struct sb_privacy_map *map = map_for_stream();
    const char *text = "{\"to\":\"<EMAIL_3>\",\"key\":\"<PRIVATE_KEY_1>\",\"n\":\"<CARD_1>\"}";
    const char *want = "{\"to\":\"" EMAIL_B "\",\"key\":\"-----BEGIN EC PRIVATE KEY-----\\nMHcCAQEE"
                       "IBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oFKZP1vQmV5s\\n-----END EC PRIVATE KEY-----"
                       "\",\"n\":\"" CARD "\"}";
    size_t len = strlen(text);
    for (size_t i = 0; i <= len; i++)
        check_stream(map, text, true, want, &i, 1);
    size_t *cuts = malloc(len * sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    check_stream(map, text, true, want, cuts, len);
    free(cuts);
}

Test(pseudo, json_escaping_of_quotes_and_backslashes)
{
    struct sb_part part = {.type = SB_PART_TEXT, .text = SB_STR_LIT("say QQ\"hi\\there\"QQ now")};
    struct sb_message msg = {.role = SB_ROLE_USER, .parts = &part, .n_parts = 1};
    struct sb_request req;
    sb_request_init(&req);
    req.messages = &msg;
    req.n_messages = 1;
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    cr_assert_eq(sb_privacy_pseudonymize(priv, scratch, &req, arena, &out, &map, NULL), 0);
    EXPECT_VIEW(out.messages[0].parts[0].text, "say <QUOTE_1> now");
    char *args = restore_all(map, "{\"q\":\"<QUOTE_1>\"}", true);
    cr_expect_str_eq(args, "{\"q\":\"QQ\\\"hi\\\\there\\\"QQ\"}");
    free(args);
    char *text = restore_all(map, "<QUOTE_1>", false);
    cr_expect_str_eq(text, "QQ\"hi\\there\"QQ");
    free(text);
}

/* ---------------------------------------------------------------------------------------------
 * Logs
 * ------------------------------------------------------------------------------------------- */
Test(pseudo, no_value_in_any_log_line)
{
    char path[] = "/tmp/sb-privacy-log-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    fflush(stderr);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_geq(dup2(fd, 2), 0);
    enum sb_log_level old = sb_log_get_level();
    sb_log_set_level(SB_LOG_DEBUG);

    struct fixture f;
    make_request(&f);
    struct sb_request out;
    struct sb_privacy_map *map = NULL;
    int ok = sb_privacy_pseudonymize(priv, scratch, &f.req, arena, &out, &map, NULL);
    char *back = ok == 0 ? restore_all(map, "<EMAIL_2> <CARD_1> <PRIVATE_KEY_1>", false) : NULL;
    free(back);
    /* A failure logs too. */
    struct sb_arena *tiny = sb_arena_new(512);
    int failed = sb_privacy_pseudonymize(priv, scratch, &f.req, tiny, &out, &map, NULL);
    sb_arena_free(tiny);

    sb_log_set_level(old);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    cr_assert_eq(ok, 0);
    cr_assert_eq(failed, SB_ENOMEM);

    FILE *log = fdopen(fd, "r");
    cr_assert_not_null(log);
    rewind(log);
    char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, log);
    buf[n] = '\0';
    fclose(log);
    unlink(path);
    cr_expect(strstr(buf, "privacy: replaced") != NULL, "no summary line: %s", buf);
    cr_expect(strstr(buf, "req_test") != NULL, "%s", buf);
    static const char *const secrets[] = {EMAIL_A,
                                          EMAIL_B,
                                          CARD,
                                          "4111111111111111",
                                          "MHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oFKZP1vQmV5s",
                                          "alice",
                                          "bob@"};
    for (size_t i = 0; i < SB_ARRAY_LEN(secrets); i++)
        cr_expect(strstr(buf, secrets[i]) == NULL, "the log holds %s:\n%s", secrets[i], buf);
}
