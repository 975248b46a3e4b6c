/* Helpers shared by the codec unit tests: a parse fixture (arena, request, error), string and JSON
 * checks, and the canonical events every codec renders. Each test file includes it once. */
#ifndef SB_TEST_API_HELPERS_H
#define SB_TEST_API_HELPERS_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <string.h>

#include "api/api.h"

static struct sb_arena *arena;
static struct sb_request req;
static struct sb_api_error err;

static inline void setup(void)
{
    arena = sb_arena_new(1 << 20);
    memset(&err, 0, sizeof(err));
}

static inline void teardown(void)
{
    sb_arena_free(arena);
}

static inline bool eq(struct sb_str s, const char *c)
{
    return sb_str_eq_c(s, c);
}

/* A JSON document that must parse; the caller releases it with json_decref. */
static inline json_t *load(const char *s)
{
    json_error_t e;
    json_t *v = json_loads(s, JSON_REJECT_DUPLICATES, &e);
    cr_assert_not_null(v, "invalid JSON (%s): %s", e.text, s);
    return v;
}

static inline struct sb_event ev_text(const char *t)
{
    return (struct sb_event){.type = SB_EV_TEXT, .text.text = sb_str_c(t)};
}

static inline struct sb_event ev_tool(int32_t index, const char *id, const char *name,
                                      const char *args)
{
    struct sb_event ev = {.type = SB_EV_TOOL_CALL};
    ev.tool_call.index = index;
    ev.tool_call.id = sb_str_c(id);
    ev.tool_call.name = sb_str_c(name);
    ev.tool_call.arguments = sb_str_c(args);
    return ev;
}

#endif
