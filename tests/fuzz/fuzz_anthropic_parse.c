/* libFuzzer driver for the Anthropic request parser: any bytes as a /v1/messages body must give 0
 * or a filled 400/413 error, never a crash, a leak or a read outside the body; a request that
 * parses then renders a fixed event sequence, streamed and not.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_anthropic_parse.c src/api/anthropic.c src/api/json.c src/api/error.c \
 *       src/core/{arena,buf,canon,clock,error,log,str}.c -ljansson -o fuzz_anthropic_parse
 *   ./fuzz_anthropic_parse -dict=tests/fuzz/anthropic.dict tests/fuzz/corpus/anthropic
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Renders START, text, a tool call in two pieces, usage and FINISH for req. */
static void render(const struct sb_request *req)
{
    struct sb_event evs[6] = {
        {.type = SB_EV_START},
        {.type = SB_EV_TEXT, .text.text = SB_STR_LIT("hi")},
        {.type = SB_EV_TOOL_CALL,
         .tool_call = {0, SB_STR_LIT("t"), SB_STR_LIT("f"), SB_STR_LIT("{\"a\":")}},
        {.type = SB_EV_TOOL_CALL, .tool_call = {0, SB_STR_NULL, SB_STR_NULL, SB_STR_LIT("1}")}},
        {.type = SB_EV_USAGE, .usage = {5, 1, 1, 2}},
        {.type = SB_EV_FINISH, .finish.reason = SB_FINISH_TOOL_CALLS},
    };
    void *st = calloc(1, sb_anthropic_codec.render_size);
    struct sb_buf out;

    if (!st)
        abort();
    sb_buf_init(&out, 1 << 20);
    if (sb_anthropic_codec.render_init(st, req) != 0)
        abort();
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (sb_anthropic_codec.render_event(st, &evs[i], &out) != 0)
            abort();
    }
    sb_anthropic_codec.render_deinit(st);
    free(st);
    sb_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A copy of exactly size bytes, so ASan catches any read past the body's end. */
    char *body = malloc(size ? size : 1);
    struct sb_arena *a = sb_arena_new(1 << 20);
    struct sb_api_error err;
    struct sb_request req;
    int rc;

    if (!body || !a)
        abort();
    if (size)
        memcpy(body, data, size);
    memset(&err, 0, sizeof(err));
    rc = sb_anthropic_codec.parse(SB_REQ_CHAT, a, (struct sb_str){body, size}, &req, &err);
    if (rc != 0) {
        /* A failure always tells the client something. */
        if ((rc != SB_EINVAL && rc != SB_ENOMEM) || err.http_status < 400 || err.message[0] == '\0')
            abort();
    } else {
        req.stream = false;
        render(&req);
        req.stream = true;
        render(&req);
    }
    free(body);
    sb_arena_free(a);
    return 0;
}
