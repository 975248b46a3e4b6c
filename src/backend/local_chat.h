/* A small C interface over llama.cpp's C++ chat module (common/chat.h): Jinja chat templates and
 * the model-specific tool-call output formats, for the local backend (backend/local.c) only. */
#ifndef SB_BACKEND_LOCAL_CHAT_H
#define SB_BACKEND_LOCAL_CHAT_H

#include "core/canon.h"

#ifdef __cplusplus
extern "C" {
#endif

struct llama_model;
struct sb__chat_templates; /* a model's parsed chat template(s) */
struct sb__chat_parser;    /* how to parse one request's output (its tool-call format) */
struct sb__chat_message;   /* one parsed assistant message */

/* Silences common's own logger (it would print model output on a parse warning). Call once, before
 * any other function here; not thread-safe. */
void sb__chat_global_init(void);

/* Parses the chat template: override (Jinja text; NULL or "" = none), else the GGUF's
 * tokenizer.chat_template, else ChatML. model is borrowed and must outlive *out. Returns 0 and
 * *out, which the caller frees with sb__chat_templates_free; or SB_EINVAL (the template does not
 * parse) or SB_ENOMEM, with a message in err (NUL-terminated, at most err_size bytes). */
int sb__chat_templates_new(const struct llama_model *model, const char *override,
                           struct sb__chat_templates **out, char *err, size_t err_size);
/* NULL is allowed. */
void sb__chat_templates_free(struct sb__chat_templates *t);
/* True when the template came from the override or the GGUF, false for the ChatML fallback. */
bool sb__chat_templates_explicit(const struct sb__chat_templates *t);

/* Renders req's messages and tools through the template with the generation prompt added, and
 * appends the prompt text to out (to be tokenized with add_special). When parser is not NULL,
 * *parser receives what sb__chat_parse needs for this request's output; the caller frees it with
 * sb__chat_parser_free. Not thread-safe for one t: callers serialize calls on the same templates.
 * req is borrowed for the call only. Returns 0; SB_EINVAL (the template or the request's tools
 * rejected the input) or SB_EUNSUPPORTED (image parts) with a message for the client in err;
 * SB_ENOMEM or SB_ETOOBIG (out is full). */
int sb__chat_render(const struct sb__chat_templates *t, const struct sb_request *req,
                    struct sb_buf *out, struct sb__chat_parser **parser, char *err,
                    size_t err_size);

/* NULL is allowed. */
void sb__chat_parser_free(struct sb__chat_parser *p);
/* The i-th extra stop string the output format needs (most formats need none), or NULL past the
 * last. Borrowed: lives as long as p. */
const char *sb__chat_parser_stop(const struct sb__chat_parser *p, size_t i);

/* Parses a complete assistant output (text as the model produced it) into content and tool calls.
 * Returns 0 and *out, which the caller frees with sb__chat_message_free; SB_EINVAL when the
 * output does not follow the format (the caller then treats it as plain text); SB_ENOMEM. */
int sb__chat_parse(const struct sb__chat_parser *p, struct sb_str text,
                   struct sb__chat_message **out);
/* NULL is allowed. */
void sb__chat_message_free(struct sb__chat_message *m);
/* The message's text content. Borrowed: valid until sb__chat_message_free. */
struct sb_str sb__chat_message_content(const struct sb__chat_message *m);
size_t sb__chat_message_n_calls(const struct sb__chat_message *m);
/* The i-th tool call (i < n_calls); id is empty when the format has none. Views borrowed until
 * sb__chat_message_free. */
struct sb_tool_call sb__chat_message_call(const struct sb__chat_message *m, size_t i);

/* ---------------------------------------------------------------------------------------------
 * Streaming: a request's output parsed as it grows, sent as deltas.
 * ------------------------------------------------------------------------------------------- */
struct sb__chat_stream; /* one request's output so far, and what of it was sent */

/* One piece of the parsed output. index < 0: content text; else a piece of tool call `index`,
 * whose first delta carries id and name (both non-empty) and later ones only arguments. Views
 * are valid during the callback only. */
struct sb__chat_delta {
    int32_t index;
    struct sb_str content;
    struct sb_str id;
    struct sb_str name;
    struct sb_str arguments;
};
typedef void (*sb__chat_delta_fn)(void *ud, const struct sb__chat_delta *d);

/* Returns a stream over p's format (borrowed: p must outlive it) in *out, which the caller frees
 * with sb__chat_stream_free. Returns 0 or SB_ENOMEM. */
int sb__chat_stream_new(const struct sb__chat_parser *p, struct sb__chat_stream **out);
/* NULL is allowed. */
void sb__chat_stream_free(struct sb__chat_stream *s);
/* Appends text (whole UTF-8 code points) to the output, parses all of it (as a partial message
 * unless final), and calls fn for what is new since the last call: content first, then tool
 * calls in index order. A call is announced once its name is certain (its arguments began, or
 * final). Text the format may yet turn into a tool call is held back until it is certain.
 * Output that cannot be parsed as the format when final is content. What was sent is never taken
 * back: a later parse that disagrees with it sends nothing for that part. Returns 0 or SB_ENOMEM.
 */
int sb__chat_stream_push(struct sb__chat_stream *s, struct sb_str text, bool final,
                         sb__chat_delta_fn fn, void *ud);
/* Tool calls announced so far. */
size_t sb__chat_stream_n_calls(const struct sb__chat_stream *s);

#ifdef __cplusplus
}
#endif

#endif
