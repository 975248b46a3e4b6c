/* libFuzzer driver for the Ollama request parsers: any bytes as a /api/chat, /api/generate,
 * /api/embed or /api/show body must give 0 or a filled 400/413 error, never a crash, a leak or a
 * read outside the body; a request that parses then renders a fixed event sequence.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_ollama_parse.c src/api/ollama.c src/api/json.c src/api/error.c \
 *       src/core/{arena,buf,canon,clock,error,log,str}.c -ljansson -lm -o fuzz_ollama_parse
 *   ./fuzz_ollama_parse -dict=tests/fuzz/ollama.dict tests/fuzz/corpus/ollama
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Renders what a backend would send for req: text and a tool call, or a vector per input. */
static void render(const struct sb_request *req)
{
    static const float vec[3] = {0.5f, -1.0f, 2.0f};
    struct sb_event gen[5] = {
        {.type = SB_EV_START},
        {.type = SB_EV_TEXT, .text.text = SB_STR_LIT("hi")},
        {.type = SB_EV_TOOL_CALL,
         .tool_call = {0, SB_STR_NULL, SB_STR_LIT("f"), SB_STR_LIT("{\"a\":1}")}},
        {.type = SB_EV_USAGE, .usage = {5, 0, 0, 2}},
        {.type = SB_EV_FINISH, .finish.reason = SB_FINISH_STOP},
    };
    struct sb_event ev = {.type = SB_EV_START};
    void *st = calloc(1, sb_ollama_codec.render_size);
    struct sb_buf out;

    if (!st)
        abort();
    sb_buf_init(&out, 1 << 20);
    if (sb_ollama_codec.render_init(st, req) != 0)
        abort();
    if (req->kind != SB_REQ_EMBED) {
        for (size_t i = 0; i < sizeof(gen) / sizeof(gen[0]); i++) {
            if (sb_ollama_codec.render_event(st, &gen[i], &out) != 0)
                abort();
        }
    } else {
        if (sb_ollama_codec.render_event(st, &ev, &out) != 0)
            abort();
        for (size_t i = req->n_inputs; i-- > 0;) {
            ev = (struct sb_event){.type = SB_EV_EMBEDDING};
            ev.embedding.index = (int32_t)i;
            ev.embedding.values = vec;
            ev.embedding.dim = 3;
            if (sb_ollama_codec.render_event(st, &ev, &out) != 0)
                abort();
        }
        ev = (struct sb_event){.type = SB_EV_FINISH};
        if (sb_ollama_codec.render_event(st, &ev, &out) != 0)
            abort();
    }
    sb_ollama_codec.render_deinit(st);
    free(st);
    sb_buf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A leading byte below 0x04 (never valid JSON) picks the endpoint, so one corpus covers all
     * and the chat seeds stay plain JSON files: 1 generate, 2 embed, 3 show. */
    int endpoint = size > 0 && data[0] < 4 ? data[0] : 0;
    static const enum sb_request_kind kinds[] = {SB_REQ_CHAT, SB_REQ_COMPLETION, SB_REQ_EMBED,
                                                 SB_REQ_CHAT};
    char *body;
    struct sb_arena *a = sb_arena_new(1 << 20);
    struct sb_api_error err;
    struct sb_request req;
    struct sb_str model;
    int rc;

    if (size > 0 && data[0] < 4) {
        data++;
        size--;
    }
    /* A copy of exactly size bytes, so ASan catches any read past the body's end. */
    body = malloc(size ? size : 1);
    if (!body || !a)
        abort();
    if (size)
        memcpy(body, data, size);
    memset(&err, 0, sizeof(err));
    if (endpoint == 3)
        rc = sb_ollama_parse_show(a, (struct sb_str){body, size}, &model, &err);
    else
        rc = sb_ollama_codec.parse(kinds[endpoint], a, (struct sb_str){body, size}, &req, &err);
    if (rc != 0) {
        /* A failure always tells the client something. */
        if ((rc != SB_EINVAL && rc != SB_ENOMEM) || err.http_status < 400 || err.message[0] == '\0')
            abort();
    } else if (endpoint != 3) {
        render(&req);
        req.stream = !req.stream;
        render(&req);
    }
    free(body);
    sb_arena_free(a);
    return 0;
}
