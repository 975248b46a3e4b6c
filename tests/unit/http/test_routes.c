/* Tests for the route table: lookup, 404 versus 405 with the Allow set, and the table's own shape.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "http/internal.h"

static void nop(struct sb__req *r)
{
    SB_UNUSED(r);
}

Test(routes, finds_the_model_routes_with_their_codec_and_kind)
{
    const struct sb__route *r;
    unsigned allowed;

    cr_assert_eq(sb__route_find(sb__routes, sb__n_routes, "/v1/chat/completions", EVHTTP_REQ_POST,
                                &r, &allowed),
                 SB__ROUTE_FOUND);
    cr_assert_eq(r->codec, &sb_openai_codec);
    cr_assert_eq(r->kind, SB_REQ_CHAT);
    cr_assert_eq(r->handler, sb__exchange_start);
    cr_assert_eq(
        sb__route_find(sb__routes, sb__n_routes, "/v1/completions", EVHTTP_REQ_POST, &r, &allowed),
        SB__ROUTE_FOUND);
    cr_assert_eq(r->kind, SB_REQ_COMPLETION);
}

Test(routes, each_apis_model_routes_have_its_codec_and_kind)
{
    static const struct {
        const char *path;
        const struct sb_codec *codec;
        enum sb_request_kind kind;
    } want[] = {
        {"/v1/messages", &sb_anthropic_codec, SB_REQ_CHAT},
        {"/v1/embeddings", &sb_openai_codec, SB_REQ_EMBED},
        {"/api/chat", &sb_ollama_codec, SB_REQ_CHAT},
        {"/api/generate", &sb_ollama_codec, SB_REQ_COMPLETION},
        {"/api/embed", &sb_ollama_codec, SB_REQ_EMBED},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(want); i++) {
        const struct sb__route *r;
        unsigned allowed;
        cr_assert_eq(
            sb__route_find(sb__routes, sb__n_routes, want[i].path, EVHTTP_REQ_POST, &r, &allowed),
            SB__ROUTE_FOUND, "%s", want[i].path);
        cr_assert_eq(r->codec, want[i].codec, "%s", want[i].path);
        cr_assert_eq(r->kind, want[i].kind, "%s", want[i].path);
        cr_assert_eq(r->handler, sb__exchange_start, "%s", want[i].path);
    }
}

Test(routes, finds_every_documented_path)
{
    static const struct {
        unsigned method;
        const char *path;
    } want[] = {
        {EVHTTP_REQ_GET, "/v1/models"},
        {EVHTTP_REQ_GET, "/health"},
        {EVHTTP_REQ_GET, "/ready"},
        {EVHTTP_REQ_POST, "/tokenize"},
        {EVHTTP_REQ_POST, "/apply-template"},
        {EVHTTP_REQ_GET, "/metrics"},
        {EVHTTP_REQ_GET, "/api/tags"},
        {EVHTTP_REQ_POST, "/api/show"},
        {EVHTTP_REQ_GET, "/api/ps"},
        {EVHTTP_REQ_GET, "/api/version"},
        {EVHTTP_REQ_GET, "/"},
        {EVHTTP_REQ_HEAD, "/"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(want); i++) {
        const struct sb__route *r;
        unsigned allowed;
        cr_assert_eq(
            sb__route_find(sb__routes, sb__n_routes, want[i].path, want[i].method, &r, &allowed),
            SB__ROUTE_FOUND, "%s", want[i].path);
        cr_assert_str_eq(r->path, want[i].path);
    }
}

Test(routes, a_known_path_with_the_wrong_method_is_405_with_its_methods)
{
    const struct sb__route *r;
    unsigned allowed;

    cr_assert_eq(sb__route_find(sb__routes, sb__n_routes, "/v1/chat/completions", EVHTTP_REQ_GET,
                                &r, &allowed),
                 SB__ROUTE_NO_METHOD);
    cr_assert_null(r);
    cr_assert_eq(allowed, (unsigned)EVHTTP_REQ_POST);
    cr_assert_eq(sb__route_find(sb__routes, sb__n_routes, "/health", EVHTTP_REQ_HEAD, &r, &allowed),
                 SB__ROUTE_NO_METHOD);
    cr_assert_eq(allowed, (unsigned)EVHTTP_REQ_GET);
}

Test(routes, unknown_paths_are_404_and_matching_is_exact)
{
    static const char *const paths[] = {
        "//",       "/v1", "/v1/models/", "/V1/models", "/v1/models/x", "/v1/chat/completions/",
        "/healthz", "",    "/api",        "/api/chat/"};
    for (size_t i = 0; i < SB_ARRAY_LEN(paths); i++) {
        const struct sb__route *r;
        unsigned allowed;
        cr_assert_eq(
            sb__route_find(sb__routes, sb__n_routes, paths[i], EVHTTP_REQ_GET, &r, &allowed),
            SB__ROUTE_NO_PATH, "\"%s\"", paths[i]);
        cr_assert_eq(allowed, 0u);
    }
}

Test(routes, a_path_in_several_entries_allows_the_union_and_picks_by_method)
{
    static const struct sb__route table[] = {
        {EVHTTP_REQ_GET | EVHTTP_REQ_HEAD, "/x", &sb_openai_codec, SB_REQ_CHAT, nop, "read"},
        {EVHTTP_REQ_POST, "/y", &sb_openai_codec, SB_REQ_CHAT, nop, "other"},
        {EVHTTP_REQ_DELETE, "/x", &sb_openai_codec, SB_REQ_CHAT, nop, "delete"},
    };
    const struct sb__route *r;
    unsigned allowed;
    struct sb_buf allow;

    cr_assert_eq(sb__route_find(table, 3, "/x", EVHTTP_REQ_DELETE, &r, &allowed), SB__ROUTE_FOUND);
    cr_assert_eq(r, &table[2]);
    cr_assert_eq(sb__route_find(table, 3, "/x", EVHTTP_REQ_POST, &r, &allowed),
                 SB__ROUTE_NO_METHOD);
    sb_buf_init(&allow, 256);
    cr_assert_eq(sb__methods_format(allowed, &allow), 0);
    cr_assert_str_eq(allow.p, "GET, HEAD, DELETE");
    sb_buf_free(&allow);
}

Test(routes, the_table_is_well_formed)
{
    for (size_t i = 0; i < sb__n_routes; i++) {
        const struct sb__route *a = &sb__routes[i];
        cr_assert_eq(a->path[0], '/', "%s", a->path);
        cr_assert_not_null(a->handler, "%s", a->path);
        cr_assert_not_null(a->codec, "%s", a->path);
        cr_assert(a->doc != NULL && a->doc[0] != '\0', "%s has no doc", a->path);
        cr_assert_neq(a->methods, 0u, "%s", a->path);
        cr_assert_eq(a->methods & ~sb__methods_all(), 0u, "%s", a->path);
        /* One entry per (path, method): a second one could never be reached. */
        for (size_t j = i + 1; j < sb__n_routes; j++) {
            const struct sb__route *b = &sb__routes[j];
            cr_assert(strcmp(a->path, b->path) != 0 || (a->methods & b->methods) == 0,
                      "%s is routed twice", a->path);
        }
    }
}

Test(routes, method_names_and_allow_lists)
{
    struct sb_buf b;

    cr_assert_str_eq(sb__method_name(EVHTTP_REQ_GET), "GET");
    cr_assert_str_eq(sb__method_name(EVHTTP_REQ_PATCH), "PATCH");
    cr_assert_str_eq(sb__method_name(0), "?");
    cr_assert_str_eq(sb__method_name(EVHTTP_REQ_GET | EVHTTP_REQ_POST), "?");
    sb_buf_init(&b, 256);
    cr_assert_eq(sb__methods_format(sb__methods_all(), &b), 0);
    cr_assert_str_eq(b.p, "GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS, TRACE, CONNECT");
    sb_buf_reset(&b);
    cr_assert_eq(sb__methods_format(0, &b), 0);
    cr_assert_eq(b.len, 0u);
    sb_buf_free(&b);
}
