/* Output scaffolding shared by the wire codecs' renderers: a writer that keeps its first error, the
 * render phases every codec enforces and the one render_event that drives them, a tool call's
 * arguments as a JSON object, and the bounded accumulation of a plain (non-streamed) response's
 * text and tool calls until FINISH. Internal to src/api. */
#ifndef SB_API_RENDER_H
#define SB_API_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api/api.h"

/* ---------------------------------------------------------------------------------------------
 * Writer. Keeps the first error and ignores later appends, so a response is written as a run of
 * puts with one check at the end.
 * ------------------------------------------------------------------------------------------- */
struct sb__writer {
    struct sb_buf *b; /* borrowed */
    int rc;           /* the first append's failure, or 0 */
};

void sb__put(struct sb__writer *w, const char *s);
void sb__put_str(struct sb__writer *w, struct sb_str s);
/* The inside of a JSON string, escaped, without quotes. */
void sb__put_escaped(struct sb__writer *w, struct sb_str s);
/* A JSON string: quoted and escaped. */
void sb__put_json(struct sb__writer *w, struct sb_str s);
void sb__put_i64(struct sb__writer *w, int64_t v);
/* A unix time as a quoted RFC 3339 UTC timestamp ("1970-01-01T00:00:00Z" when out of range). */
void sb__put_time(struct sb__writer *w, int64_t t);

/* Cuts b back to len bytes: a failed render must not leave half a chunk, event or line to send. */
void sb__buf_truncate(struct sb_buf *b, size_t len);
/* Returns the writer's first error, having cut w->b back to mark if there was one. */
int sb__writer_finish(struct sb__writer *w, size_t mark);

/* ---------------------------------------------------------------------------------------------
 * Render phases: START exactly once and first; nothing after FINISH or ERROR.
 * ------------------------------------------------------------------------------------------- */
enum sb__phase {
    SB__PHASE_WAIT_START, /* render_init done; START must come first */
    SB__PHASE_OPEN,       /* deltas flow */
    SB__PHASE_DONE,       /* FINISH or ERROR rendered; nothing more is accepted */
};

/* Whether ev may come in phase p. */
bool sb__phase_accepts(enum sb__phase p, const struct sb_event *ev);
/* Whether ev, rendered, ends the response. */
bool sb__phase_ends(const struct sb_event *ev);

/* ---------------------------------------------------------------------------------------------
 * One event's render, the same for every codec: the phase check, the codec's own render into a
 * writer, the phase changes, and on failure the output cut back to where it was.
 * ------------------------------------------------------------------------------------------- */

/* What a codec plugs in; `state` is the codec's render state (borrowed). */
struct sb__render_ops {
    /* Called with every event the phase accepts, before it is rendered: takes what START carries
     * or notes the time. Returns 0 or an error, which fails the render. NULL when there is none. */
    int (*begin)(void *state, const struct sb_event *ev);
    /* Renders ev into w for a streamed or a plain response. Returns 0 or an error; a failed
     * append is kept in w instead. */
    int (*stream)(void *state, const struct sb_event *ev, struct sb__writer *w);
    int (*plain)(void *state, const struct sb_event *ev, struct sb__writer *w);
    /* Frees what the state holds once the response is DONE; may be called again. */
    void (*release)(void *state);
};

/* Renders ev, appending to out; *phase (in state, borrowed) moves to OPEN at START and to DONE at
 * FINISH, ERROR or any failure, which also releases the state. Returns 0, SB_ESTATE for an event
 * out of order (out and *phase untouched), or the render's error (out unchanged). */
int sb__render_event(const struct sb__render_ops *ops, void *state, enum sb__phase *phase,
                     bool stream, const struct sb_event *ev, struct sb_buf *out);

/* A tool call's arguments as one JSON object on one line: re-encoded compactly when they are an
 * object, {} when empty, otherwise {"_raw_arguments":"<the text>"} so the model's output is kept.
 * Parsed once per call, not per token. */
void sb__put_tool_args(struct sb__writer *w, struct sb_str args);

/* ---------------------------------------------------------------------------------------------
 * Accumulation of a plain response: its text and its tool calls by index, every byte counted
 * against one bound so that a response past it fails instead of arriving cut short.
 * ------------------------------------------------------------------------------------------- */

/* One tool call, accumulated whole. A stream that sends deltas uses only `started`. */
struct sb__tool_acc {
    bool started; /* the first event of the index was seen (it carries id and name) */
    struct sb_buf id;
    struct sb_buf name;
    struct sb_buf args;
};

struct sb__accum {
    size_t max_held;            /* bound on held */
    size_t max_calls;           /* tool call indexes are below this */
    size_t max_field;           /* bound on a call's id and name */
    size_t held;                /* bytes counted so far: text, calls and whatever the codec adds */
    struct sb_buf text;         /* the text so far (raw, escaped when written) */
    struct sb__tool_acc *calls; /* owned; by index; n_calls entries allocated */
    size_t n_calls;
};

/* Prepares acc; nothing is allocated until the first append. */
void sb__accum_init(struct sb__accum *acc, size_t max_held, size_t max_calls, size_t max_field);
/* Frees what acc holds; acc may be freed again, but must be re-initialised before reuse. */
void sb__accum_free(struct sb__accum *acc);
/* Counts len bytes against the bound before they are held. Returns 0 or SB_ETOOBIG. */
int sb__accum_hold(struct sb__accum *acc, size_t len);
/* Appends text. Returns 0, SB_ETOOBIG or SB_ENOMEM. */
int sb__accum_text(struct sb__accum *acc, struct sb_str text);
/* Returns in *out the accumulator for a call index, growing the table as calls appear; *out is
 * invalid after the next call that grows it. Returns 0, SB_ETOOBIG (index out of range) or
 * SB_ENOMEM. */
int sb__accum_tool_slot(struct sb__accum *acc, int32_t index, struct sb__tool_acc **out);
/* Adds a TOOL_CALL event: its id and name when it is the index's first, its arguments always.
 * Returns 0, SB_ETOOBIG or SB_ENOMEM. */
int sb__accum_tool_call(struct sb__accum *acc, const struct sb_event *ev);

#endif
