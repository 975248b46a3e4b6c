/* What the cloud backends' response decoders share (openai_sse.c, ollama_ndjson.c, anthropic_sse.c,
 * bedrock_stream.c): the emitter that delivers a decoder's events and errors and remembers how its
 * stream ended, a line splitter for SSE and NDJSON bodies, server-sent event framing on top of it,
 * the table of content blocks that Messages-shaped streams (Anthropic's, Bedrock's) index their
 * deltas by, and small jansson readers. Internal to backend/. */
#ifndef SB_BACKEND_CLOUD_STREAM_H
#define SB_BACKEND_CLOUD_STREAM_H

#include <jansson.h>

#include "backend/cloud.h"

/* -----------------------------------------------------------------------------------------------
 * Emitting
 * --------------------------------------------------------------------------------------------- */

/* A decoder's way out. Set up with sb__emitter_init; holds nothing to free. */
struct sb__emitter {
    sb__sink_fn sink;
    void *ud;
    const char *provider; /* names the upstream in messages ("openai"); borrowed for its life */
    struct sb_str secret; /* text no message may contain (the API key), borrowed; may be empty */
    bool ended;           /* FINISH or ERROR went out, or the sink said stop: nothing more will */
    bool finished;        /* the end was a FINISH */
};

void sb__emitter_init(struct sb__emitter *e, sb__sink_fn sink, void *ud, const char *provider);
/* Delivers ev unless the stream has ended. Returns non-zero once it has: after a FINISH or an
 * ERROR, or when the sink said stop. */
int sb__emitter_emit(struct sb__emitter *e, const struct sb_event *ev);
/* Emits TEXT, unless text is empty (then returns 0). Returns as sb__emitter_emit. */
int sb__emitter_text(struct sb__emitter *e, struct sb_str text);
/* Emits one ERROR (unless the stream has ended) whose message is printf-formatted, cut at 1 KiB,
 * with the secret (4 bytes or more) masked with '*'. Returns 1: the stream has ended. */
int sb__emitter_fail(struct sb__emitter *e, int code, int http_status, bool retryable,
                     uint32_t retry_after_ms, const char *fmt, ...) SB_PRINTF(6, 7);
/* sb__emitter_fail with SB_EUPSTREAM, 502, not retryable: "<provider>: malformed stream: what". */
int sb__emitter_malformed(struct sb__emitter *e, const char *what);
/* The end of a stream: USAGE (usage), then FINISH (reason and the matched stop sequence, which may
 * be empty). Returns non-zero, as sb__emitter_emit. */
int sb__emitter_finish(struct sb__emitter *e, const struct sb_usage *usage,
                       enum sb_finish_reason reason, struct sb_str stop_sequence);
/* What a decoder's feed returns: non-zero once the stream failed or the sink said stop, so that
 * the transfer is stopped; 0 after a FINISH, so that the transfer ends on its own and its
 * connection stays reusable (stopping it before the chunked terminator makes curl close it). */
int sb__emitter_feed_result(const struct sb__emitter *e);

/* -----------------------------------------------------------------------------------------------
 * Lines
 * --------------------------------------------------------------------------------------------- */

/* Splits a body that arrives in pieces (split anywhere) into lines. */
struct sb__lines {
    struct sb_buf line; /* a line split across pieces */
    bool cr_ends_line;  /* SSE: "\r", "\n" and "\r\n" each end a line; NDJSON: only "\n" does */
    bool after_cr;      /* the last piece ended in '\r': a '\n' first in the next belongs to it */
};

/* Gets one complete line, without its end, borrowed for the call. Returns 0 to go on, or a
 * non-zero value (negative codes allowed) to stop. */
typedef int (*sb__line_fn)(void *ud, struct sb_str line);

/* Lines up to line_max bytes. Allocates nothing; sb__lines_free frees what feeding allocated. */
void sb__lines_init(struct sb__lines *l, size_t line_max, bool cr_ends_line);
void sb__lines_free(struct sb__lines *l);
/* Hands each line that p completes to fn, and keeps a last line without its end for the next
 * piece. Returns 0; the first non-zero value fn returned (no line follows); or SB_ENOMEM or
 * SB_ETOOBIG when a line could not be kept (longer than line_max). */
int sb__lines_feed(struct sb__lines *l, const char *p, size_t len, sb__line_fn fn, void *ud);
/* The body ended: hands fn the last line if it had no end. Returns what fn returned, or 0. */
int sb__lines_end(struct sb__lines *l, sb__line_fn fn, void *ud);

/* -----------------------------------------------------------------------------------------------
 * Server-sent events
 * --------------------------------------------------------------------------------------------- */

/* Reassembles server-sent events: "event:" and "data:" fields (data lines joined with '\n'), an
 * event dispatched at its blank line; comments, "id:", "retry:" and unknown fields are skipped. */
struct sb__sse {
    struct sb__lines lines;
    struct sb_buf event; /* the event: field */
    struct sb_buf data;  /* data: lines, joined with '\n' */
    bool has_data;
};

/* Gets one event that has data: its name (empty without an event: field; else NUL-terminated) and
 * its data, borrowed for the call. Returns 0 to go on, or a positive value to stop. */
typedef int (*sb__sse_fn)(void *ud, struct sb_str event, struct sb_str data);

/* Lines up to line_max bytes and an event's data up to event_max. Allocates nothing. */
void sb__sse_init(struct sb__sse *s, size_t line_max, size_t event_max);
void sb__sse_free(struct sb__sse *s);
/* Hands each event that p completes to fn. Returns 0; the first non-zero value fn returned (no
 * event follows); or SB_EUPSTREAM with *why set to a static description ("a line too long", "an
 * event too large"). */
int sb__sse_feed(struct sb__sse *s, const char *p, size_t len, sb__sse_fn fn, void *ud,
                 const char **why);
/* The body ended: a last line without its end still counts, and so does a last event without its
 * blank line (handed to fn). Returns as sb__sse_feed. */
int sb__sse_end(struct sb__sse *s, sb__sse_fn fn, void *ud, const char **why);

/* -----------------------------------------------------------------------------------------------
 * Content blocks (Messages-shaped streams, which send a block's start, deltas and stop by index)
 * --------------------------------------------------------------------------------------------- */

enum sb__block_kind { SB__BLOCK_NONE, SB__BLOCK_TEXT, SB__BLOCK_TOOL, SB__BLOCK_OTHER };

struct sb__block {
    enum sb__block_kind kind;
    int32_t tool_index; /* SB__BLOCK_TOOL: the canonical tool-call index */
    bool args_seen;     /* SB__BLOCK_TOOL: a non-empty arguments piece was emitted */
};

/* The blocks of one message by index, as {.max = ...}; sb__blocks_free frees them. */
struct sb__blocks {
    struct sb__block *v; /* owned */
    size_t n;
    size_t max;      /* indexes at or above this are malformed */
    int32_t n_tools; /* tool blocks opened so far */
};

/* The block at the index held by j's member key (all NONE until opened), growing the table. NULL
 * when that is not an integer in [0, max), or when out of memory. Valid until the next call. */
struct sb__block *sb__blocks_at(struct sb__blocks *t, const json_t *j, const char *key);
void sb__blocks_free(struct sb__blocks *t);
/* Opens b as the next tool call: emits its first TOOL_CALL (id, name, no arguments yet). Returns
 * as sb__emitter_emit. */
int sb__blocks_open_tool(struct sb__blocks *t, struct sb__block *b, struct sb__emitter *e,
                         struct sb_str id, struct sb_str name);
/* Emits a piece of tool block b's arguments (nothing when args is empty). Returns as
 * sb__emitter_emit, or 0. */
int sb__block_args(struct sb__block *b, struct sb__emitter *e, struct sb_str args);
/* A block ends: a tool block that streamed no arguments gets "{}" (clients expect an object). */
int sb__block_stop(struct sb__block *b, struct sb__emitter *e);

/* -----------------------------------------------------------------------------------------------
 * Reading JSON
 * --------------------------------------------------------------------------------------------- */

/* A JSON string's bytes (borrowed from j), or the empty view for anything else. */
static inline struct sb_str sb__json_str(const json_t *j)
{
    if (!json_is_string(j))
        return SB_STR_NULL;
    return (struct sb_str){json_string_value(j), json_string_length(j)};
}

/* A JSON integer's value, or 0 for anything else. */
static inline int64_t sb__json_int(const json_t *j)
{
    return json_is_integer(j) ? (int64_t)json_integer_value(j) : 0;
}

#endif
