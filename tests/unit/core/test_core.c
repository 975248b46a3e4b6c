/* Tests for string views, arenas, errors, ids and the canonical request defaults. */
#include <criterion/criterion.h>
#include <string.h>

#include "core/canon.h"

Test(str, compare_and_find)
{
    struct sb_str s = SB_STR_LIT("hello world");
    cr_assert(sb_str_eq_c(s, "hello world"));
    cr_assert_not(sb_str_eq_c(s, "hello"));
    cr_assert(sb_str_starts_with(s, SB_STR_LIT("hello")));
    cr_assert_not(sb_str_starts_with(SB_STR_LIT("he"), SB_STR_LIT("hello")));
    cr_assert_eq(sb_str_find(s, SB_STR_LIT("world")), 6);
    cr_assert_eq(sb_str_find(s, SB_STR_LIT("xyz")), -1);
    cr_assert_eq(sb_str_find(s, SB_STR_NULL), 0);
    cr_assert(sb_str_eq(sb_str_c(NULL), SB_STR_NULL));
}

Test(arena, allocations_are_zeroed_aligned_and_bounded)
{
    struct sb_arena *a = sb_arena_new(100000);
    cr_assert_not_null(a);
    for (int i = 0; i < 100; i++) {
        unsigned char *p = sb_arena_alloc(a, 13);
        cr_assert_not_null(p);
        cr_assert_eq((uintptr_t)p % _Alignof(max_align_t), 0);
        for (int j = 0; j < 13; j++)
            cr_assert_eq(p[j], 0);
        memset(p, 0xAB, 13);
    }
    void *big = sb_arena_alloc(a, 50000); /* larger than a block: gets its own */
    cr_assert_not_null(big);
    cr_assert_null(sb_arena_alloc(a, 60000)); /* over the maximum */
    cr_assert_eq(sb_arena_used(a), 100 * 13 + 50000);
    sb_arena_free(a);
}

Test(arena, string_copies)
{
    struct sb_arena *a = sb_arena_new(1024);
    int err = 0;
    struct sb_str s = sb_arena_str(a, SB_STR_LIT("abc"), &err);
    cr_assert_eq(err, 0);
    cr_assert_str_eq(s.p, "abc");
    cr_assert_eq(s.len, 3);
    char *d = sb_arena_strndup(a, "xyz123", 3);
    cr_assert_str_eq(d, "xyz");
    sb_arena_free(a);
}

Test(errors, every_code_has_a_message)
{
    for (int code = 0; code >= SB_EDENIED; code--)
        cr_assert_str_neq(sb_strerror(code), "unknown error", "code %d", code);
    cr_assert_str_eq(sb_strerror(-1000), "unknown error");
    cr_assert_str_eq(sb_strerror(5), "unknown error");
}

Test(ids, have_prefix_length_and_differ)
{
    char a[40], b[40];
    sb_random_id(a, sizeof(a), "req_");
    sb_random_id(b, sizeof(b), "req_");
    cr_assert_eq(strlen(a), 4 + 24);
    cr_assert(strncmp(a, "req_", 4) == 0);
    cr_assert_str_neq(a, b);
    char small[8];
    sb_random_id(small, sizeof(small), "req_");
    cr_assert_str_eq(small, "");
}

Test(canon, request_defaults_are_unset)
{
    struct sb_request r;
    sb_request_init(&r);
    cr_assert_eq(r.kind, SB_REQ_CHAT);
    cr_assert_eq(r.sampling.temperature, SB_UNSET_F);
    cr_assert_eq(r.sampling.top_k, SB_UNSET_I);
    cr_assert_not(r.sampling.has_seed);
    cr_assert_eq(r.max_tokens, 0);
    cr_assert_str_eq(sb_finish_reason_name(SB_FINISH_TOOL_CALLS), "tool_calls");
    cr_assert_str_eq(sb_role_name(SB_ROLE_TOOL), "tool");
}

Test(canon, labels_are_found_by_key)
{
    struct sb_request r;
    sb_request_init(&r);
    struct sb_label labels[] = {{SB_STR_LIT("sensitivity"), SB_STR_LIT("high")}};
    r.labels = labels;
    r.n_labels = 1;
    cr_assert(sb_str_eq_c(sb_request_label(&r, SB_STR_LIT("sensitivity")), "high"));
    cr_assert_eq(sb_request_label(&r, SB_STR_LIT("team")).len, 0);
}
