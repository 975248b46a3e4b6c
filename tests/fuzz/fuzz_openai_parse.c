/* libFuzzer driver for the OpenAI request parser: any bytes, as a chat or a completion body, must
 * give 0 or a filled 400/413 error, never a crash, a leak or a read outside the body.
 *
 *   clang -fsanitize=fuzzer,address,undefined -Isrc -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_openai_parse.c src/api/openai.c src/api/json.c src/api/error.c \
 *       src/core/{arena,buf,canon,clock,error,log,str}.c -ljansson -o fuzz_openai_parse
 *   ./fuzz_openai_parse -dict=tests/fuzz/openai.dict tests/fuzz/corpus/openai
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A leading 0x01 byte (never valid JSON) selects /v1/completions, so one corpus covers both
     * endpoints and the chat seeds stay plain JSON files. */
    enum sb_request_kind kind = SB_REQ_CHAT;
    /* A copy of exactly size bytes, so ASan catches any read past the body's end. */
    char *body = malloc(size ? size : 1);
    struct sb_arena *a = sb_arena_new(1 << 20);
    struct sb_api_error err;
    struct sb_request req;
    int rc;

    if (size > 0 && data[0] == 0x01) {
        kind = SB_REQ_COMPLETION;
        data++;
        size--;
    }
    if (!body || !a)
        abort();
    if (size)
        memcpy(body, data, size);
    memset(&err, 0, sizeof(err));
    rc = sb_openai_codec.parse(kind, a, (struct sb_str){body, size}, &req, &err);
    if (rc != 0) {
        /* A failure always tells the client something. */
        if ((rc != SB_EINVAL && rc != SB_ENOMEM) || err.http_status < 400 || !err.type ||
            err.message[0] == '\0')
            abort();
    } else {
        /* Every view the parser returned must be readable: touch them all. */
        volatile size_t sum = req.model.len + req.prompt.len;
        for (size_t i = 0; i < req.n_messages; i++)
            for (size_t k = 0; k < req.messages[i].n_parts; k++)
                sum += req.messages[i].parts[k].text.len
                           ? (size_t)req.messages[i].parts[k].text.p[0]
                           : 0;
        (void)sum;
    }
    free(body);
    sb_arena_free(a);
    return 0;
}
