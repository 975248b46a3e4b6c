/* Tests for the codecs' typed JSON readers: paths, type errors, enums and numeric tables. */
#include <criterion/criterion.h>
#include <stddef.h>
#include <string.h>

#include "api/json.h"

static struct sb_arena *arena;
static struct sb_api_error err;
static struct sb__json j;

static void setup(void)
{
    arena = sb_arena_new(1 << 16);
    memset(&err, 0, sizeof(err));
    sb__json_init(&j, arena, &err);
}

static void teardown(void)
{
    sb_arena_free(arena);
}

TestSuite(json, .init = setup, .fini = teardown);

static json_t *load(const char *s)
{
    json_t *v = NULL;
    cr_assert_eq(sb__json_load(&j, sb_str_c(s), &v), 0, "%s", err.message);
    return v;
}

Test(json, path_stack)
{
    size_t a = sb__json_push_key(&j, "messages");
    size_t b = sb__json_push_index(&j, 12);
    size_t c = sb__json_push_key(&j, "content");
    cr_expect_str_eq(j.path, "messages[12].content");
    sb__json_pop(&j, c);
    cr_expect_str_eq(j.path, "messages[12]");
    sb__json_pop(&j, b);
    sb__json_pop(&j, a);
    cr_expect_str_eq(j.path, "");
    cr_expect_eq(j.path_len, 0);
}

Test(json, path_is_bounded)
{
    for (size_t i = 0; i < 100; i++)
        sb__json_push_key(&j, "abcdefgh");
    cr_expect_eq(strlen(j.path), sizeof(j.path) - 1);
    cr_expect_eq(j.path_len, sizeof(j.path) - 1);
}

Test(json, strings_are_copied_and_nulls_are_absent)
{
    json_t *o = load("{\"s\":\"v\",\"n\":null,\"i\":1}");
    struct sb_str s = SB_STR_LIT("default");

    cr_expect_eq(sb__json_string(&j, o, "s", true, &s), 0);
    json_decref(o); /* the copy outlives jansson's value */
    cr_expect(sb_str_eq_c(s, "v"));
    cr_expect_eq(s.p[s.len], '\0');

    o = load("{\"n\":null,\"i\":1}");
    s = SB_STR_LIT("default");
    cr_expect_eq(sb__json_string(&j, o, "n", false, &s), 0);
    cr_expect(sb_str_eq_c(s, "default"));
    cr_expect_eq(sb__json_string(&j, o, "n", true, &s), SB_EINVAL);
    cr_expect_str_eq(err.param, "n");
    cr_expect_eq(sb__json_string(&j, o, "i", false, &s), SB_EINVAL);
    cr_expect_str_eq(err.message, "Invalid type for 'i': expected a string, but got an integer "
                                  "instead.");
    cr_expect_str_eq(j.path, "", "the path is popped after a failure too");
    json_decref(o);
}

Test(json, kinds)
{
    json_t *o = load("{\"a\":{},\"b\":[],\"c\":\"\",\"d\":1,\"e\":1.5,\"f\":true,\"g\":false,"
                     "\"h\":null}");
    static const char *const want[] = {"an object",        "an array",  "a string",  "an integer",
                                       "a decimal number", "a boolean", "a boolean", "null"};
    static const char *const keys[] = {"a", "b", "c", "d", "e", "f", "g", "h"};

    for (size_t i = 0; i < SB_ARRAY_LEN(keys); i++)
        cr_expect_str_eq(sb__json_kind(json_object_get(o, keys[i])), want[i]);
    json_decref(o);
}

Test(json, enum_lists_supported_values)
{
    static const struct sb__json_enum two[] = {{"a", 1}, {"b", 2}};
    json_t *o = load("{\"k\":\"b\",\"x\":\"zz\"}");
    int v = 0;

    cr_expect_eq(sb__json_enum(&j, o, "k", true, two, 2, &v), 0);
    cr_expect_eq(v, 2);
    cr_expect_eq(sb__json_enum(&j, o, "x", true, two, 2, &v), SB_EINVAL);
    cr_expect_str_eq(err.message,
                     "Invalid value for 'x': 'zz'. Supported values are: 'a' and 'b'.");
    cr_expect_str_eq(err.code, "invalid_value");
    json_decref(o);
}

struct nums {
    float f;
    int32_t i32;
    int64_t i64;
    uint64_t u64;
    bool has_u64;
};

static const struct sb__json_num num_table[] = {
    {"f", SB__JSON_F32, 0, 1, SB__JSON_MIN_EXCLUSIVE, offsetof(struct nums, f), SB__JSON_NO_FLAG},
    {"i32", SB__JSON_I32, -5, 5, 0, offsetof(struct nums, i32), SB__JSON_NO_FLAG},
    {"i64", SB__JSON_I64, 0, 1e12, 0, offsetof(struct nums, i64), SB__JSON_NO_FLAG},
    {"u64", SB__JSON_U64, (double)INT64_MIN, (double)INT64_MAX, 0, offsetof(struct nums, u64),
     offsetof(struct nums, has_u64)},
};

Test(json, numeric_table)
{
    struct nums n = {0};
    json_t *o = load("{\"f\":1,\"i32\":-5,\"i64\":1000000000000,\"u64\":-2}");

    cr_assert_eq(sb__json_numbers(&j, o, num_table, SB_ARRAY_LEN(num_table), &n), 0, "%s",
                 err.message);
    cr_expect_eq(n.f, 1.0f);
    cr_expect_eq(n.i32, -5);
    cr_expect_eq(n.i64, 1000000000000);
    cr_expect_eq(n.u64, UINT64_MAX - 1);
    cr_expect(n.has_u64);
    json_decref(o);

    memset(&n, 0, sizeof(n));
    o = load("{\"i32\":3}");
    cr_assert_eq(sb__json_numbers(&j, o, num_table, SB_ARRAY_LEN(num_table), &n), 0);
    cr_expect(!n.has_u64, "absent fields leave their flag alone");
    json_decref(o);

    o = load("{\"f\":0}");
    cr_expect_eq(sb__json_numbers(&j, o, num_table, SB_ARRAY_LEN(num_table), &n), SB_EINVAL);
    cr_expect_str_eq(err.message, "Invalid 'f': decimal below minimum value. Expected a value > 0, "
                                  "but got 0 instead.");
    json_decref(o);

    o = load("{\"i32\":6}");
    cr_expect_eq(sb__json_numbers(&j, o, num_table, SB_ARRAY_LEN(num_table), &n), SB_EINVAL);
    cr_expect_str_eq(err.code, "integer_above_max_value");
    cr_expect_str_eq(err.param, "i32");
    json_decref(o);
}

Test(json, dump_is_compact_and_ordered)
{
    json_t *o = load("{ \"z\" : 1 , \"a\" : [ true , null ] }");
    struct sb_str s;

    cr_assert_eq(sb__json_dump(&j, o, &s), 0);
    cr_expect(sb_str_eq_c(s, "{\"z\":1,\"a\":[true,null]}"), "%.*s", (int)s.len, s.p);
    json_decref(o);
}

Test(json, arrays_and_objects)
{
    json_t *o = load("{\"a\":[],\"b\":[1],\"o\":{}}");
    json_t *out = NULL;

    cr_expect_eq(sb__json_array(&j, o, "a", true, 0, &out), 0);
    cr_expect_eq(sb__json_array(&j, o, "a", true, 1, &out), SB_EINVAL);
    cr_expect_str_eq(err.code, "empty_array");
    cr_expect_eq(sb__json_array(&j, o, "o", true, 0, &out), SB_EINVAL);
    cr_expect_str_eq(err.code, "invalid_type");
    cr_expect_eq(sb__json_object(&j, o, "o", true, &out), 0);
    cr_expect(json_is_object(out));
    cr_expect_eq(sb__json_object(&j, o, "missing", true, &out), SB_EINVAL);
    cr_expect_str_eq(err.code, "missing_required_parameter");
    json_decref(o);
}
