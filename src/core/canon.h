/* The canonical request and event stream: every inbound API is parsed into struct sb_request, and
 * every backend produces struct sb_event values that a codec renders back into the caller's wire
 * format. Routing, privacy, metering and fallback are written once, against these types. */
#ifndef SB_CANON_H
#define SB_CANON_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Request
 * All views in a request point into its arena (or into the body it was parsed from, which must
 * then outlive it). A request is immutable once parsed, except by the router and privacy layer.
 * ------------------------------------------------------------------------------------------- */

/* The inbound wire format a request arrived in; a codec renders events back into it. */
enum sb_api { SB_API_OPENAI, SB_API_ANTHROPIC, SB_API_OLLAMA };

enum sb_request_kind {
    SB_REQ_CHAT,       /* messages → assistant message (template applied by the backend) */
    SB_REQ_COMPLETION, /* raw prompt text → continuation (no template) */
    SB_REQ_EMBED,      /* inputs → one vector each */
};

enum sb_role { SB_ROLE_SYSTEM, SB_ROLE_USER, SB_ROLE_ASSISTANT, SB_ROLE_TOOL };

enum sb_part_type {
    SB_PART_TEXT,  /* text */
    SB_PART_IMAGE, /* media_type + data (base64) or url */
};

struct sb_part {
    enum sb_part_type type;
    struct sb_str text;       /* SB_PART_TEXT */
    struct sb_str media_type; /* SB_PART_IMAGE: "image/png", ... (may be empty for a URL) */
    struct sb_str data;       /* SB_PART_IMAGE: base64 bytes, or empty when url is set */
    struct sb_str url;        /* SB_PART_IMAGE: an http(s) or data: URL, or empty */
};

/* A call the assistant made. arguments is JSON text (an object), exactly as the model produced it.
 */
struct sb_tool_call {
    struct sb_str id;
    struct sb_str name;
    struct sb_str arguments;
};

struct sb_message {
    enum sb_role role;
    struct sb_part *parts; /* the content, in order; a plain string content is one text part */
    size_t n_parts;
    struct sb_tool_call *tool_calls; /* SB_ROLE_ASSISTANT only */
    size_t n_tool_calls;
    struct sb_str tool_call_id; /* SB_ROLE_TOOL: which call this is the result of */
    struct sb_str name;         /* optional participant or tool name */
    bool is_error;              /* SB_ROLE_TOOL: the tool failed (Anthropic's is_error) */
};

/* A function the model may call. parameters is a JSON Schema as JSON text (may be empty). */
struct sb_tool {
    struct sb_str name;
    struct sb_str description;
    struct sb_str parameters;
};

enum sb_tool_choice {
    SB_TOOL_CHOICE_AUTO,     /* the model decides (the default when tools are given) */
    SB_TOOL_CHOICE_NONE,     /* never call a tool */
    SB_TOOL_CHOICE_REQUIRED, /* call at least one tool */
    SB_TOOL_CHOICE_NAMED,    /* call the tool named in tool_choice_name */
};

/* Sampling parameters. A field the caller did not set holds its SB_UNSET value and the backend
 * uses its own default. */
#define SB_UNSET_F (-1.0f) /* for temperature, top_p, min_p */
#define SB_UNSET_I (-1)    /* for top_k */
struct sb_sampling {
    float temperature;       /* 0 = greedy */
    float top_p;             /* (0, 1] */
    int32_t top_k;           /* 0 = disabled */
    float min_p;             /* [0, 1] */
    float presence_penalty;  /* [-2, 2]; 0 = none */
    float frequency_penalty; /* [-2, 2]; 0 = none */
    float repeat_penalty;    /* Ollama-style multiplicative penalty; 0 = unset, 1 = none */
    uint64_t seed;
    bool has_seed;
};

/* A label attached to a request (header or metadata), for routing and the ledger. */
struct sb_label {
    struct sb_str key;
    struct sb_str value;
};

#define SB_MAX_STOP 16 /* stop sequences per request */

/* A keep_alive that keeps the model loaded until something else unloads it (max_loaded). */
#define SB_KEEP_ALIVE_FOREVER (-1)

/* A request that asks only for its model to be loaded or unloaded (Ollama's /api/generate without
 * a prompt, /api/chat without messages). */
enum sb_model_op {
    SB_MODEL_OP_NONE,   /* an ordinary request */
    SB_MODEL_OP_LOAD,   /* load the model: a chat of one empty user message, max_tokens 1 */
    SB_MODEL_OP_UNLOAD, /* unload it once idle (the same chat; keep_alive_ns is 0) */
};

struct sb_request {
    enum sb_api api;
    enum sb_request_kind kind;
    char id[40];         /* request id, e.g. "req_..."; set by the HTTP layer */
    struct sb_str model; /* the alias the caller asked for */

    /* SB_REQ_CHAT */
    struct sb_message *messages;
    size_t n_messages;
    struct sb_tool *tools;
    size_t n_tools;
    enum sb_tool_choice tool_choice;
    struct sb_str tool_choice_name;
    bool parallel_tool_calls;

    /* SB_REQ_COMPLETION */
    struct sb_str prompt;
    bool echo; /* the response starts with the prompt: the codec prepends it; backends ignore it */
    /* SB_REQ_CHAT built from one prompt (Ollama's /api/generate without raw): backends see plain
     * messages, prompt keeps the caller's text, and the codec answers in completion shape. */
    bool from_prompt;

    /* SB_REQ_EMBED */
    struct sb_str *inputs;
    size_t n_inputs;
    int32_t dimensions; /* 0 = the model's own */
    /* The codec writes the vectors as base64 of little-endian float32 (OpenAI's encoding_format
     * "base64"); backends ignore it and always send floats. */
    bool embed_base64;

    struct sb_sampling sampling;
    int64_t max_tokens; /* 0 = until the context is full or the model stops */
    struct sb_str stop[SB_MAX_STOP];
    size_t n_stop;

    bool stream;
    bool include_usage; /* stream a usage event before the finish (OpenAI stream_options) */
    bool json_mode;     /* response_format json_object: the output must be one JSON value */

    /* How long the model that serves this request stays loaded once idle (Ollama's keep_alive),
     * for backends that load models: it replaces the model's configured keep_alive from when the
     * request is served until the model unloads. With has_keep_alive: nanoseconds (0 = unload as
     * soon as idle) or SB_KEEP_ALIVE_FOREVER; without it, the model's own setting applies.
     * Backends that load nothing ignore it. */
    int64_t keep_alive_ns;
    bool has_keep_alive;
    /* SB_MODEL_OP_LOAD / UNLOAD: the codec answers in its "load" / "unload" shape. A backend
     * that loads models may serve them without generating (an unload never loads the model); any
     * other backend serves the one-token chat they carry. */
    enum sb_model_op model_op;

    struct sb_label *labels;
    size_t n_labels;
    struct sb_str user; /* the caller's end-user id, if given */
};

/* Sets every field of a request to its default (unset sampling, no messages, kind SB_REQ_CHAT). */
void sb_request_init(struct sb_request *req);
const char *sb_role_name(enum sb_role role);
/* Returns the value of the label named key, or the empty view. */
struct sb_str sb_request_label(const struct sb_request *req, struct sb_str key);

/* ---------------------------------------------------------------------------------------------
 * Event stream
 * A backend emits, in order: START, then any number of TEXT / TOOL_CALL (/ EMBEDDING) deltas,
 * then USAGE (always, exact when the backend knows it), then exactly one FINISH — or, at any
 * point, one ERROR, which ends the stream. Views in an event are borrowed: valid only during the
 * callback that delivers it.
 * ------------------------------------------------------------------------------------------- */
enum sb_event_type {
    SB_EV_START,     /* the backend accepted the request and is producing output */
    SB_EV_TEXT,      /* a piece of assistant text */
    SB_EV_TOOL_CALL, /* a piece of a tool call */
    SB_EV_EMBEDDING, /* one input's vector (SB_REQ_EMBED) */
    SB_EV_USAGE,     /* token counts */
    SB_EV_FINISH,    /* the end, with its reason */
    SB_EV_ERROR,     /* a failure; no event follows */
};

enum sb_finish_reason {
    SB_FINISH_STOP,           /* end of turn, or a stop sequence matched */
    SB_FINISH_LENGTH,         /* max_tokens or the context limit was reached */
    SB_FINISH_TOOL_CALLS,     /* the model called one or more tools */
    SB_FINISH_CONTENT_FILTER, /* the provider withheld content */
};

struct sb_usage {
    int64_t prompt_tokens;        /* all input tokens, cached ones included */
    int64_t cached_prompt_tokens; /* input tokens served from a cache (KV reuse, provider cache) */
    int64_t cache_write_tokens;   /* input tokens written to a provider's cache (Anthropic) */
    int64_t completion_tokens;    /* output tokens */
};

struct sb_event {
    enum sb_event_type type;
    union {
        struct {
            struct sb_str model;   /* the model that serves the request, as the backend names it */
            struct sb_str backend; /* the configured backend (model entry) that serves it */
            int32_t attempts;      /* tries it took, retries and fallbacks included (>= 1) */
            /* Milliseconds the request waited inside the backend before it began: a local
             * model's queue and, when the model had to be loaded first, the load. 0 for backends
             * that do not queue. For the ledger (queue time apart from time to first token). */
            uint32_t queue_ms;
            /* The backends tried, in order, comma-separated (a fallback chain's members that
             * were started, this one last); empty from a backend that is not a chain. */
            struct sb_str tried;
        } start;
        struct {
            struct sb_str text; /* UTF-8; a delta never splits a code point */
        } text;
        struct {
            /* Deltas of one call share an index (0, 1, ... in the order calls start). id and name
             * are set on the first delta of a call and empty afterwards; arguments are JSON text
             * to be concatenated. */
            int32_t index;
            struct sb_str id;
            struct sb_str name;
            struct sb_str arguments;
        } tool_call;
        struct {
            int32_t index;       /* which input */
            const float *values; /* dim floats, normalized as the model defines */
            size_t dim;
        } embedding;
        struct sb_usage usage;
        struct {
            enum sb_finish_reason reason;
            struct sb_str stop_sequence; /* the stop sequence that matched, if any */
        } finish;
        struct {
            int code;                /* SB_E* */
            int http_status;         /* the status a client should see (400, 429, 502, ...) */
            struct sb_str message;   /* for the client: no secrets, no prompt text */
            struct sb_str param;     /* the request field at fault (OpenAI's param), or empty */
            bool retryable;          /* the same request may succeed if tried again (429, 5xx) */
            uint32_t retry_after_ms; /* the provider's Retry-After, 0 when it named none */
            struct sb_str tried;     /* as START's, for a chain that no member served */
        } error;
    };
};

const char *sb_finish_reason_name(enum sb_finish_reason r); /* "stop", "length", ... (OpenAI's) */
const char *sb_event_type_name(enum sb_event_type t);

#ifdef __cplusplus
}
#endif

#endif
