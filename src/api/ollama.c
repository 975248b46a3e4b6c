/* The Ollama wire codec: /api/chat, /api/generate and /api/embed bodies become canonical requests,
 * canonical events become Ollama's NDJSON lines or single objects, and /api/tags, /api/ps,
 * /api/show and /api/version are answered from what the backends know.
 *
 * Decisions where the two models do not meet one to one:
 * - stream defaults to true, as in Ollama.
 * - /api/generate without raw goes through the model's chat template, as Ollama does: it becomes
 *   an SB_REQ_CHAT of [system, user(images, prompt)] with from_prompt set, rendered back in
 *   generate's shape. raw:true is a plain SB_REQ_COMPLETION (no system, images or template then).
 *   template, suffix and a non-empty context are refused (400): nothing here can honour them, and
 *   "context" is never returned, so a client has none to send back.
 * - An /api/generate without a prompt, or an /api/chat without messages, is Ollama's "load the
 *   model" (SB_MODEL_OP_LOAD): a chat of one empty user message with max_tokens 1, whose token
 *   warms the model and is not shown; the answer is {"response":"","done":true,
 *   "done_reason":"load"} (chat: an empty assistant "message"). With keep_alive 0 it is "unload"
 *   (SB_MODEL_OP_UNLOAD, done_reason "unload"): a local backend answers it without loading.
 * - keep_alive (generate, chat, embed) becomes keep_alive_ns: a Go duration string, a number of
 *   seconds, or a string of digits (seconds, as OLLAMA_KEEP_ALIVE reads it); negative, or past
 *   what int64 nanoseconds hold, is "for good". Anything else is a 400.
 * - format "json" and a JSON schema object both turn on JSON mode; the schema itself is not
 *   enforced yet (the canonical request has no field for it).
 * - options: num_predict -1 and -2 mean no limit, 0 is refused (it would generate nothing);
 *   seed -1 means a random seed; num_ctx is ignored (the context window is set per model in the
 *   configuration), as are Ollama's runner options (num_gpu, num_thread, mirostat, ...) and keys
 *   it does not know, as Ollama itself only warns about those. think is accepted and ignored;
 *   logprobs is refused.
 * - Tool calls go out whole, as Ollama sends them: deltas are accumulated and every call is
 *   written at the end of the turn, arguments as a JSON object ({} when empty; arguments that are
 *   not a JSON object become {"_raw_arguments": "<the text>"} so the model's output is kept).
 *   done_reason is "stop" for a turn that called tools, as in Ollama.
 * - Tool calls sent by the client carry no ids in Ollama's API: each gets "call_<n>" (n counts
 *   the request's calls), and each tool message is paired with the first unanswered call of the
 *   assistant turn before it that has its tool_name (or the first unanswered one), so backends
 *   that need ids (OpenAI, Anthropic) get them.
 * - "model" in every answer is the name the client asked for, as Ollama echoes it.
 * - Durations, in nanoseconds from sb_now_ns: load_duration from render_init to START (queueing
 *   and loading), prompt_eval_duration from START to the first output, eval_duration from there to
 *   FINISH, total_duration from render_init to FINISH. prompt_eval_count is every prompt token,
 *   cached ones included.
 * - /api/version answers 0.8.0: the Ollama API these endpoints implement (tools in streamed chat,
 *   /api/embed, structured output as JSON mode), not yet 0.9's thinking. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/json.h"
#include "api/render.h"

#define OLLAMA_VERSION "0.8.0"
/* Output of a non-streamed response (and tool calls and embeddings, which always wait for the
 * end) is held until FINISH; past this the response fails instead of arriving cut short. */
#define OLLAMA_MAX_ACCUM ((size_t)64 << 20)
/* Parallel tool calls in one response; far above what models emit, low enough to bound state. */
#define OLLAMA_MAX_TOOL_CALLS 128
/* A tool call's id or name, as a backend produced it. */
#define OLLAMA_MAX_CALL_FIELD 256
/* The fixed part of every line's start ({"model":...,"created_at":"), the name aside. */
#define OLLAMA_MAX_HEAD 64
/* OpenAI's pattern for function names, which Ollama's tools share. */
#define OLLAMA_MAX_TOOL_NAME 64

/* =============================================================================================
 * Parsing
 * =========================================================================================== */

/* options: the sampling fields, in Ollama's names and (where Ollama has none) OpenAI's ranges. */
static const struct sb__json_num option_numbers[] = {
    {"temperature", SB__JSON_F32, 0, 2, 0, offsetof(struct sb_request, sampling.temperature),
     SB__JSON_NO_FLAG},
    {"top_p", SB__JSON_F32, 0, 1, SB__JSON_MIN_EXCLUSIVE,
     offsetof(struct sb_request, sampling.top_p), SB__JSON_NO_FLAG},
    {"top_k", SB__JSON_I32, 0, INT32_MAX, 0, offsetof(struct sb_request, sampling.top_k),
     SB__JSON_NO_FLAG},
    {"min_p", SB__JSON_F32, 0, 1, 0, offsetof(struct sb_request, sampling.min_p), SB__JSON_NO_FLAG},
    {"seed", SB__JSON_U64, (double)INT64_MIN, (double)INT64_MAX, 0,
     offsetof(struct sb_request, sampling.seed), offsetof(struct sb_request, sampling.has_seed)},
    /* Multiplicative: 1 is none, and 0 would read as "unset" in the canonical request. */
    {"repeat_penalty", SB__JSON_F32, 0, 10, SB__JSON_MIN_EXCLUSIVE,
     offsetof(struct sb_request, sampling.repeat_penalty), SB__JSON_NO_FLAG},
    {"presence_penalty", SB__JSON_F32, -2, 2, 0,
     offsetof(struct sb_request, sampling.presence_penalty), SB__JSON_NO_FLAG},
    {"frequency_penalty", SB__JSON_F32, -2, 2, 0,
     offsetof(struct sb_request, sampling.frequency_penalty), SB__JSON_NO_FLAG},
};

/* The length options, read apart because their values need translating. */
struct limits {
    int64_t num_predict;
    bool has_num_predict;
    int64_t num_ctx; /* checked, then ignored */
};
static const struct sb__json_num limit_numbers[] = {
    {"num_predict", SB__JSON_I64, -2, INT32_MAX, 0, offsetof(struct limits, num_predict),
     offsetof(struct limits, has_num_predict)},
    {"num_ctx", SB__JSON_I64, 0, INT32_MAX, 0, offsetof(struct limits, num_ctx), SB__JSON_NO_FLAG},
};

/* stop: a string or an array of non-empty strings, at most SB_MAX_STOP. */
static int parse_stop(struct sb__json *j, const json_t *options, struct sb_request *req)
{
    json_t *v = sb__json_get(options, "stop");
    size_t mark;
    size_t n;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, "stop");
    if (json_is_string(v)) {
        n = 1;
    } else if (json_is_array(v)) {
        n = json_array_size(v);
    } else {
        rc = sb__json_fail_type(j, v, "a string or an array of strings");
        goto out;
    }
    if (n > SB_MAX_STOP) {
        rc = sb__json_fail(j, "array_above_max_length",
                           "Invalid '%s': array too long. Switchboard takes at most %d stop "
                           "sequences, but got %zu.",
                           j->path, SB_MAX_STOP, n);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *s = json_is_string(v) ? v : json_array_get(v, i);
        size_t im = json_is_string(v) ? j->path_len : sb__json_push_index(j, i);

        if (json_is_string(s) && json_string_length(s) == 0)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid '%s': empty string. Expected a non-empty stop sequence.",
                               j->path);
        else
            rc = sb__json_string_value(j, s, &req->stop[i]);
        sb__json_pop(j, im);
    }
    req->n_stop = rc == 0 ? n : 0;
out:
    sb__json_pop(j, mark);
    return rc;
}

static int parse_options(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    struct limits lim = {0};
    json_t *o = NULL;
    size_t mark;
    int rc;

    rc = sb__json_object(j, root, "options", false, &o);
    if (rc || !o)
        return rc;
    mark = sb__json_push_key(j, "options");
    rc = sb__json_numbers(j, o, option_numbers, SB_ARRAY_LEN(option_numbers), req);
    if (rc == 0)
        rc = sb__json_numbers(j, o, limit_numbers, SB_ARRAY_LEN(limit_numbers), &lim);
    if (rc == 0)
        rc = parse_stop(j, o, req);
    if (rc)
        goto out;
    /* Ollama's seed -1 asks for a random one. */
    if (req->sampling.has_seed && req->sampling.seed == UINT64_MAX)
        req->sampling.has_seed = false;
    if (lim.has_num_predict && lim.num_predict == 0)
        rc = sb__json_fail_at(j, "num_predict", "invalid_value",
                              "0 would generate nothing. Use a positive limit, or -1 for none.");
    else if (lim.has_num_predict)
        req->max_tokens = lim.num_predict > 0 ? lim.num_predict : 0;
out:
    sb__json_pop(j, mark);
    return rc;
}

/* format: "json", a JSON schema object (both JSON mode), or "" / absent for free text. */
static int parse_format(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "format");
    size_t mark;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, "format");
    if (json_is_object(v))
        req->json_mode = true;
    else if (!json_is_string(v))
        rc = sb__json_fail_type(j, v, "a string or a JSON schema object");
    else if (strcmp(json_string_value(v), "json") == 0 && json_string_length(v) == 4)
        req->json_mode = true;
    else if (json_string_length(v) != 0)
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid value for '%s': '%.64s'. Supported values are: 'json', or a "
                           "JSON schema object.",
                           j->path, json_string_value(v));
    sb__json_pop(j, mark);
    return rc;
}

/* A field accepted and ignored, whose type is still checked so that typos surface. */
static int accept_ignored(struct sb__json *j, const json_t *root, const char *key, unsigned kinds,
                          const char *expected)
{
    json_t *v = sb__json_get(root, key);
    size_t mark;
    int rc = 0;

    if (!v || ((1u << json_typeof(v)) & kinds))
        return 0;
    mark = sb__json_push_key(j, key);
    rc = sb__json_fail_type(j, v, expected);
    sb__json_pop(j, mark);
    return rc;
}

#define KIND(t)     (1u << (t))
#define KIND_NUMBER (KIND(JSON_INTEGER) | KIND(JSON_REAL))
#define KIND_BOOL   (KIND(JSON_TRUE) | KIND(JSON_FALSE))

/* An optional sign and decimal digits only: a keep_alive string read as seconds ("300", "-1"), as
 * Ollama reads OLLAMA_KEEP_ALIVE. */
static bool plain_integer(struct sb_str s, int64_t *seconds)
{
    size_t i = s.len > 0 && (s.p[0] == '-' || s.p[0] == '+') ? 1 : 0;
    char digits[24];

    if (i == s.len || s.len >= sizeof(digits))
        return false;
    for (size_t k = i; k < s.len; k++) {
        if (s.p[k] < '0' || s.p[k] > '9')
            return false;
    }
    memcpy(digits, s.p, s.len);
    digits[s.len] = '\0';
    *seconds = strtoll(digits, NULL, 10); /* saturates; anything that large is "forever" */
    return true;
}

/* Nanoseconds for a keep_alive of seconds (a JSON number, or a string of digits): a negative
 * number and one too large for the canonical field both keep the model loaded. */
static int64_t keep_alive_from_seconds(double seconds)
{
    double ns = seconds * 1e9;

    /* (double)INT64_MAX is 2^63, the first value the conversion could not hold. */
    if (seconds < 0 || ns >= (double)INT64_MAX)
        return SB_KEEP_ALIVE_FOREVER;
    return (int64_t)ns;
}

/* keep_alive: a Go duration string ("5m", "1h30m", "0"), a string of digits or a number (seconds);
 * negative keeps the model loaded, 0 unloads it once the request is done. null is "not given". */
static int parse_keep_alive(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "keep_alive");
    struct sb_str text;
    int64_t n = 0;
    size_t mark;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, "keep_alive");
    if (json_is_number(v)) {
        req->keep_alive_ns = keep_alive_from_seconds(json_number_value(v));
    } else if (!json_is_string(v)) {
        rc = sb__json_fail_type(j, v, "a duration string or a number of seconds");
        goto out;
    } else {
        text = (struct sb_str){json_string_value(v), json_string_length(v)};
        rc = sb_duration_parse(text, &n);
        if (rc == SB_EINVAL && plain_integer(text, &n)) {
            req->keep_alive_ns = keep_alive_from_seconds((double)n);
        } else if (rc == SB_EINVAL) {
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid value for '%s': '%.64s' is not a duration. Use a number of "
                               "seconds or a duration such as \"5m\", \"1h30m\" or \"10s\" "
                               "(units ns, us, ms, s, m, h); negative keeps the model loaded, 0 "
                               "unloads it after the request.",
                               j->path, json_string_value(v));
            goto out;
        } else {
            /* A duration; a negative one, or one past ~292 years (SB_ETOOBIG), is for good. */
            req->keep_alive_ns = rc == SB_ETOOBIG || n < 0 ? SB_KEEP_ALIVE_FOREVER : n;
        }
        rc = 0;
    }
    req->has_keep_alive = true;
out:
    sb__json_pop(j, mark);
    return rc;
}

/* What every generating endpoint shares: options, format, stream (true unless said), keep_alive,
 * think, logprobs. */
static int parse_common(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    bool logprobs = false;
    int rc;

    req->stream = true;
    rc = sb__json_bool(j, root, "stream", &req->stream);
    if (rc == 0)
        rc = parse_options(j, root, req);
    if (rc == 0)
        rc = parse_format(j, root, req);
    if (rc == 0)
        rc = parse_keep_alive(j, root, req);
    if (rc == 0)
        rc = accept_ignored(j, root, "think", KIND(JSON_STRING) | KIND_BOOL,
                            "a boolean or 'high', 'medium' or 'low'");
    if (rc == 0)
        rc = sb__json_bool(j, root, "logprobs", &logprobs);
    if (rc == 0 && logprobs)
        rc = sb__json_fail_at(j, "logprobs", "unsupported_parameter",
                              "log probabilities are not supported by Switchboard yet. Remove "
                              "'logprobs' from the request.");
    return rc;
}

/* Base64 images carry no media type in Ollama's API; backends that need one (Anthropic) get it
 * from the first bytes of the encoding, which name the format. */
static const struct {
    const char *prefix; /* base64 of the format's magic bytes */
    const char *media_type;
} image_magic[] = {
    {"iVBORw0KGgo", "image/png"},
    {"/9j/", "image/jpeg"},
    {"R0lGOD", "image/gif"},
    {"UklGR", "image/webp"},
};

static int read_image(struct sb__json *j, const json_t *v, struct sb_part *out)
{
    int rc;

    out->type = SB_PART_IMAGE;
    rc = sb__json_string_value(j, v, &out->data);
    for (size_t i = 0; rc == 0 && i < SB_ARRAY_LEN(image_magic); i++) {
        if (sb_str_starts_with(out->data, sb_str_c(image_magic[i].prefix))) {
            out->media_type = sb_str_c(image_magic[i].media_type);
            break;
        }
    }
    return rc;
}

/* text (a message's content or generate's prompt) and obj's images (base64 strings) become m's
 * parts: the images first, as Ollama places them before the text. An assistant turn that only
 * calls tools has no parts; any other message has at least an empty text part. */
static int read_content(struct sb__json *j, const json_t *obj, struct sb_str text, bool calls,
                        struct sb_message *m)
{
    json_t *images = NULL;
    size_t n_images = 0;
    size_t mark;
    bool with_text;
    int rc;

    rc = sb__json_array(j, obj, "images", false, 0, &images);
    if (rc)
        return rc;
    n_images = images ? json_array_size(images) : 0;
    if (n_images && m->role != SB_ROLE_USER)
        return sb__json_fail_at(j, "images", "invalid_value",
                                "images are only read in user messages.");
    with_text = text.len > 0 || (n_images == 0 && !calls);
    if (n_images + with_text == 0)
        return 0;
    m->parts = sb__json_alloc_array(j, n_images + with_text, sizeof(*m->parts));
    if (!m->parts)
        return sb__json_fail_nomem(j);
    mark = sb__json_push_key(j, "images");
    for (size_t i = 0; i < n_images && rc == 0; i++) {
        size_t im = sb__json_push_index(j, i);
        rc = read_image(j, json_array_get(images, i), &m->parts[m->n_parts++]);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    if (rc == 0 && with_text) {
        m->parts[m->n_parts].type = SB_PART_TEXT;
        m->parts[m->n_parts++].text = text.p ? text : SB_STR_LIT("");
    }
    return rc;
}

/* {function: {name, arguments}} with arguments an object (a JSON string is taken as it is). */
static int read_tool_call(struct sb__json *j, const json_t *v, struct sb_tool_call *out)
{
    json_t *fn = NULL;
    json_t *args;
    size_t mark;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_string(j, v, "id", false, &out->id);
    if (rc == 0)
        rc = sb__json_object(j, v, "function", true, &fn);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "function");
    rc = sb__json_string(j, fn, "name", true, &out->name);
    args = sb__json_get(fn, "arguments");
    if (rc == 0) {
        size_t am = sb__json_push_key(j, "arguments");
        if (!args)
            out->arguments = SB_STR_LIT("{}");
        else if (json_is_object(args))
            rc = sb__json_dump(j, args, &out->arguments);
        else if (json_is_string(args))
            rc = sb__json_string_value(j, args, &out->arguments);
        else
            rc = sb__json_fail_type(j, args, "an object");
        sb__json_pop(j, am);
    }
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum role_names[] = {
    {"system", SB_ROLE_SYSTEM},
    {"user", SB_ROLE_USER},
    {"assistant", SB_ROLE_ASSISTANT},
    {"tool", SB_ROLE_TOOL},
};

static int parse_message(struct sb__json *j, const json_t *v, struct sb_message *m)
{
    struct sb_str content = SB_STR_NULL;
    json_t *calls = NULL;
    size_t mark;
    size_t n;
    int role = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_enum(j, v, "role", true, role_names, SB_ARRAY_LEN(role_names), &role);
    if (rc)
        return rc;
    m->role = (enum sb_role)role;
    rc = sb__json_array(j, v, "tool_calls", false, 0, &calls);
    if (rc == 0 && calls && json_array_size(calls) > 0 && m->role != SB_ROLE_ASSISTANT)
        rc = sb__json_fail_at(j, "tool_calls", "invalid_value",
                              "tool calls are only allowed in assistant messages.");
    if (rc == 0)
        rc = sb__json_string(j, v, "content", false, &content);
    if (rc == 0)
        rc = read_content(j, v, content, calls && json_array_size(calls) > 0, m);
    if (rc == 0 && m->role == SB_ROLE_TOOL) {
        rc = sb__json_string(j, v, "tool_name", false, &m->name);
        if (rc == 0)
            rc = sb__json_string(j, v, "tool_call_id", false, &m->tool_call_id);
    }
    if (rc || !calls || json_array_size(calls) == 0)
        return rc;
    n = json_array_size(calls);
    m->tool_calls = sb__json_alloc_array(j, n, sizeof(*m->tool_calls));
    if (!m->tool_calls)
        return sb__json_fail_nomem(j);
    mark = sb__json_push_key(j, "tool_calls");
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t im = sb__json_push_index(j, i);
        rc = read_tool_call(j, json_array_get(calls, i), &m->tool_calls[m->n_tool_calls++]);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    return rc;
}

/* Gives each call without an id "call_<n>", and each tool message without a tool_call_id the id
 * of the call it answers (see the file comment). */
static int pair_tool_calls(struct sb__json *j, struct sb_request *req)
{
    const struct sb_message *turn = NULL;
    bool *answered = NULL;
    size_t serial = 0;
    char id[32];

    for (size_t i = 0; i < req->n_messages; i++) {
        struct sb_message *m = &req->messages[i];

        if (m->role == SB_ROLE_ASSISTANT && m->n_tool_calls > 0) {
            turn = m;
            answered = sb__json_alloc_array(j, m->n_tool_calls, sizeof(*answered));
            if (!answered)
                return sb__json_fail_nomem(j);
            for (size_t k = 0; k < m->n_tool_calls; k++, serial++) {
                int len = snprintf(id, sizeof(id), "call_%zu", serial);
                if (m->tool_calls[k].id.len)
                    continue;
                m->tool_calls[k].id.p = sb_arena_strndup(j->a, id, (size_t)len);
                m->tool_calls[k].id.len = (size_t)len;
                if (!m->tool_calls[k].id.p)
                    return sb__json_fail_nomem(j);
            }
            continue;
        }
        if (m->role != SB_ROLE_TOOL || !turn || m->tool_call_id.len)
            continue;
        size_t pick = turn->n_tool_calls;
        for (size_t k = 0; k < turn->n_tool_calls && pick == turn->n_tool_calls; k++) {
            if (!answered[k] && (m->name.len == 0 || sb_str_eq(turn->tool_calls[k].name, m->name)))
                pick = k;
        }
        for (size_t k = 0; k < turn->n_tool_calls && pick == turn->n_tool_calls; k++) {
            if (!answered[k])
                pick = k;
        }
        if (pick < turn->n_tool_calls) {
            answered[pick] = true;
            m->tool_call_id = turn->tool_calls[pick].id;
            if (m->name.len == 0)
                m->name = turn->tool_calls[pick].name;
        }
    }
    return 0;
}

/* A request with nothing to generate from (no prompt, no messages) only loads the model, or with
 * keep_alive 0 unloads it; its chat is one empty user message, and one token warms the model. */
static int load_request(struct sb__json *j, struct sb_request *req)
{
    struct sb_message *m;

    req->model_op =
        req->has_keep_alive && req->keep_alive_ns == 0 ? SB_MODEL_OP_UNLOAD : SB_MODEL_OP_LOAD;
    req->max_tokens = 1;
    if (req->n_messages > 0)
        return 0; /* /api/generate built its own, images and system included */
    req->messages = sb__json_alloc_array(j, 1, sizeof(*req->messages));
    m = req->messages;
    if (m)
        m->parts = sb__json_alloc_array(j, 1, sizeof(*m->parts));
    if (!m || !m->parts)
        return sb__json_fail_nomem(j);
    req->n_messages = 1;
    m->role = SB_ROLE_USER;
    m->n_parts = 1;
    m->parts[0].type = SB_PART_TEXT;
    m->parts[0].text = SB_STR_LIT("");
    return 0;
}

/* messages; absent or empty is Ollama's "load the model" (see load_request). */
static int parse_messages(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *arr = NULL;
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_array(j, root, "messages", false, 0, &arr);
    if (rc)
        return rc;
    n = arr ? json_array_size(arr) : 0;
    if (n == 0)
        return 0;
    req->messages = sb__json_alloc_array(j, n, sizeof(*req->messages));
    if (!req->messages)
        return sb__json_fail_nomem(j);
    req->n_messages = n;
    mark = sb__json_push_key(j, "messages");
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t im = sb__json_push_index(j, i);
        rc = parse_message(j, json_array_get(arr, i), &req->messages[i]);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    if (rc == 0)
        rc = pair_tool_calls(j, req);
    return rc;
}

static bool valid_tool_name(struct sb_str s)
{
    if (s.len == 0 || s.len > OLLAMA_MAX_TOOL_NAME)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok)
            return false;
    }
    return true;
}

static const struct sb__json_enum function_type[] = {{"function", 0}};

/* {type: function, function: {name, description, parameters}}, as OpenAI's. */
static int parse_tool(struct sb__json *j, const json_t *v, struct sb_tool *out)
{
    json_t *fn = NULL;
    json_t *params = NULL;
    size_t mark;
    int type = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_enum(j, v, "type", false, function_type, 1, &type);
    if (rc == 0)
        rc = sb__json_object(j, v, "function", true, &fn);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "function");
    rc = sb__json_string(j, fn, "name", true, &out->name);
    if (rc == 0 && !valid_tool_name(out->name))
        rc = sb__json_fail_at(j, "name", "invalid_value",
                              "string does not match pattern. Expected a string that matches the "
                              "pattern '^[a-zA-Z0-9_.-]{1,64}$'.");
    if (rc == 0)
        rc = sb__json_string(j, fn, "description", false, &out->description);
    if (rc == 0)
        rc = sb__json_object(j, fn, "parameters", false, &params);
    if (rc == 0 && params) {
        size_t pm = sb__json_push_key(j, "parameters");
        rc = sb__json_dump(j, params, &out->parameters);
        sb__json_pop(j, pm);
    }
    sb__json_pop(j, mark);
    return rc;
}

static int parse_tools(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *arr = NULL;
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_array(j, root, "tools", false, 0, &arr);
    if (rc || !arr || json_array_size(arr) == 0)
        return rc;
    n = json_array_size(arr);
    req->tools = sb__json_alloc_array(j, n, sizeof(*req->tools));
    if (!req->tools)
        return sb__json_fail_nomem(j);
    req->n_tools = n;
    mark = sb__json_push_key(j, "tools");
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t im = sb__json_push_index(j, i);
        rc = parse_tool(j, json_array_get(arr, i), &req->tools[i]);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    return rc;
}

static int parse_chat(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    int rc = parse_messages(j, root, req);

    if (rc == 0)
        rc = parse_tools(j, root, req);
    if (rc == 0)
        rc = parse_common(j, root, req);
    if (rc == 0 && req->n_messages == 0)
        rc = load_request(j, req);
    return rc;
}

/* A field that must be absent, null or empty (a string, or an array for context). */
static int reject_unless_empty(struct sb__json *j, const json_t *root, const char *key,
                               const char *why)
{
    json_t *v = sb__json_get(root, key);

    if (!v || (json_is_string(v) && json_string_length(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0))
        return 0;
    return sb__json_fail_at(j, key, "unsupported_parameter", why);
}

/* Builds [system?, user(images..., prompt)] for a templated /api/generate. */
static int generate_messages(struct sb__json *j, const json_t *root, struct sb_str system,
                             struct sb_request *req)
{
    struct sb_message *m;
    int rc;

    req->messages = sb__json_alloc_array(j, 2, sizeof(*req->messages));
    if (!req->messages)
        return sb__json_fail_nomem(j);
    if (system.len) {
        m = &req->messages[req->n_messages++];
        m->role = SB_ROLE_SYSTEM;
        m->parts = sb__json_alloc_array(j, 1, sizeof(*m->parts));
        if (!m->parts)
            return sb__json_fail_nomem(j);
        m->n_parts = 1;
        m->parts[0].type = SB_PART_TEXT;
        m->parts[0].text = system;
    }
    m = &req->messages[req->n_messages++];
    m->role = SB_ROLE_USER;
    /* The body's images and prompt read like a message's images and content. */
    rc = read_content(j, root, req->prompt, false, m);
    if (rc == 0 && req->prompt.len == 0)
        rc = load_request(j, req);
    return rc;
}

static int parse_generate(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    struct sb_str system = SB_STR_NULL;
    json_t *images = NULL;
    bool raw = false;
    int rc;

    rc = sb__json_string(j, root, "prompt", false, &req->prompt);
    if (rc == 0)
        rc = sb__json_string(j, root, "system", false, &system);
    if (rc == 0)
        rc = sb__json_bool(j, root, "raw", &raw);
    if (rc == 0)
        rc = sb__json_array(j, root, "images", false, 0, &images);
    if (rc == 0)
        rc = reject_unless_empty(j, root, "template",
                                 "Switchboard applies each model's own chat template and cannot "
                                 "replace it per request. Remove 'template', or send 'raw': true "
                                 "with the whole prompt.");
    if (rc == 0)
        rc = reject_unless_empty(j, root, "suffix",
                                 "insertion with a suffix (fill-in-the-middle) is not supported "
                                 "by Switchboard yet. Remove 'suffix'.");
    if (rc == 0)
        rc = reject_unless_empty(j, root, "context",
                                 "Switchboard returns no context and cannot continue from one. "
                                 "Send the conversation to /api/chat instead.");
    if (rc == 0)
        rc = parse_common(j, root, req);
    if (rc)
        return rc;
    if (raw && req->prompt.len > 0) {
        if (system.len)
            return sb__json_fail_at(
                j, "system", "invalid_value",
                "a raw prompt goes to the model unformatted, so there is nowhere to "
                "put a system message. Include it in the prompt.");
        if (images && json_array_size(images) > 0)
            return sb__json_fail_at(j, "images", "invalid_value",
                                    "images need the model's template, which a raw prompt skips.");
        req->kind = SB_REQ_COMPLETION;
        return 0;
    }
    req->kind = SB_REQ_CHAT;
    req->from_prompt = true;
    if (!req->prompt.p)
        req->prompt = SB_STR_LIT("");
    return generate_messages(j, root, system, req);
}

/* input: one string or an array of them. */
static int parse_inputs(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "input");
    size_t mark = sb__json_push_key(j, "input");
    size_t n;
    int rc = 0;

    if (!v) {
        rc = sb__json_fail_missing(j);
        goto out;
    }
    if (!json_is_string(v) && !json_is_array(v)) {
        rc = sb__json_fail_type(j, v, "a string or an array of strings");
        goto out;
    }
    n = json_is_string(v) ? 1 : json_array_size(v);
    if (n == 0) {
        rc = sb__json_fail(j, "empty_array",
                           "Invalid '%s': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.",
                           j->path);
        goto out;
    }
    req->inputs = sb__json_alloc_array(j, n, sizeof(*req->inputs));
    if (!req->inputs) {
        rc = sb__json_fail_nomem(j);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t im = json_is_string(v) ? j->path_len : sb__json_push_index(j, i);
        rc =
            sb__json_string_value(j, json_is_string(v) ? v : json_array_get(v, i), &req->inputs[i]);
        sb__json_pop(j, im);
    }
    req->n_inputs = rc == 0 ? n : 0;
out:
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_num embed_numbers[] = {
    {"dimensions", SB__JSON_I32, 1, INT32_MAX, 0, offsetof(struct sb_request, dimensions),
     SB__JSON_NO_FLAG},
};

/* truncate is accepted and ignored (the backend's own behaviour applies); options are ignored, as
 * embeddings have no sampling. */
static int parse_embed(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    bool truncate = true;
    json_t *options = NULL;
    int rc = parse_inputs(j, root, req);

    if (rc == 0)
        rc = sb__json_numbers(j, root, embed_numbers, SB_ARRAY_LEN(embed_numbers), req);
    if (rc == 0)
        rc = sb__json_bool(j, root, "truncate", &truncate);
    if (rc == 0)
        rc = sb__json_object(j, root, "options", false, &options);
    if (rc == 0)
        rc = parse_keep_alive(j, root, req);
    req->stream = false;
    return rc;
}

/* Reads the required, non-empty model name ("name" is Ollama's older spelling). */
static int parse_model(struct sb__json *j, const json_t *root, struct sb_str *model)
{
    const char *key = sb__json_get(root, "model") || !sb__json_get(root, "name") ? "model" : "name";
    int rc = sb__json_string(j, root, key, true, model);

    if (rc == 0 && model->len == 0)
        rc = sb__json_fail_at(j, key, "invalid_value",
                              "empty string. Name a model; GET /api/tags lists them.");
    return rc;
}

static int ollama_parse(enum sb_request_kind kind, struct sb_arena *a, struct sb_str body,
                        struct sb_request *req, struct sb_api_error *err)
{
    struct sb__json j;
    json_t *root = NULL;
    int rc;

    sb_request_init(req);
    req->api = SB_API_OLLAMA;
    req->kind = kind;
    sb__json_init(&j, a, err);
    rc = sb__json_load(&j, body, &root);
    if (rc)
        goto fail;
    rc = parse_model(&j, root, &req->model);
    if (rc)
        goto fail;
    switch (kind) {
    case SB_REQ_CHAT: rc = parse_chat(&j, root, req); break;
    case SB_REQ_COMPLETION: rc = parse_generate(&j, root, req); break;
    case SB_REQ_EMBED: rc = parse_embed(&j, root, req); break;
    }
    if (rc)
        goto fail;
    json_decref(root);
    return 0;

fail:
    json_decref(root);
    return rc;
}

int sb_ollama_parse_show(struct sb_arena *a, struct sb_str body, struct sb_str *model,
                         struct sb_api_error *err)
{
    struct sb__json j;
    json_t *root = NULL;
    bool verbose = false;
    int rc;

    sb__json_init(&j, a, err);
    rc = sb__json_load(&j, body, &root);
    if (rc)
        goto fail;
    rc = parse_model(&j, root, model);
    if (rc)
        goto fail;
    rc = sb__json_bool(&j, root, "verbose", &verbose);
    if (rc)
        goto fail;
    json_decref(root);
    return 0;

fail:
    json_decref(root);
    return rc;
}

/* =============================================================================================
 * Output helpers (the writer itself is in render.h)
 * =========================================================================================== */

/* A C string that may be NULL (unknown), as a JSON string ("" when unknown). */
static void put_json_c(struct sb__writer *w, const char *s)
{
    sb__put_json(w, sb_str_c(s));
}

static int ollama_write_error(const struct sb_api_error *err, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    sb__put(&w, "{\"error\":");
    sb__put_json(&w, sb_str_c(err->message));
    sb__put(&w, "}");
    return sb__writer_finish(&w, mark);
}

/* Ollama's parameter_size: "8.0B", "137M", "500K". */
static void put_parameter_size(struct sb__writer *w, int64_t n)
{
    if (w->rc)
        return;
    if (n >= 1000000000)
        w->rc = sb_buf_printf(w->b, "\"%.1fB\"", (double)n / 1e9);
    else if (n >= 1000000)
        w->rc = sb_buf_printf(w->b, "\"%.0fM\"", (double)n / 1e6);
    else if (n > 0)
        w->rc = sb_buf_printf(w->b, "\"%.0fK\"", (double)n / 1e3);
    else
        sb__put(w, "\"\"");
}

/* "details":{...}: format is GGUF for local models, unknown ("") for remote ones. */
static void put_details(struct sb__writer *w, const struct sb_backend_info *m)
{
    bool local = m->kind && strcmp(m->kind, "local") == 0;

    sb__put(w, "\"details\":{\"parent_model\":\"\",\"format\":\"");
    sb__put(w, local ? "gguf" : "");
    sb__put(w, "\",\"family\":");
    put_json_c(w, m->family);
    sb__put(w, ",\"families\":");
    if (m->family) {
        sb__put(w, "[");
        put_json_c(w, m->family);
        sb__put(w, "]");
    } else {
        sb__put(w, "null");
    }
    sb__put(w, ",\"parameter_size\":");
    put_parameter_size(w, m->n_params);
    sb__put(w, ",\"quantization_level\":");
    put_json_c(w, m->quantization);
    sb__put(w, "}");
}

/* "name":..,"model":..,"size":..,"digest":.., shared by /api/tags and /api/ps. */
static void put_model_head(struct sb__writer *w, const struct sb_backend_info *m)
{
    sb__put(w, "{\"name\":");
    put_json_c(w, m->name);
    sb__put(w, ",\"model\":");
    put_json_c(w, m->name);
    sb__put(w, ",\"size\":");
    sb__put_i64(w, m->size);
    sb__put(w, ",\"digest\":");
    put_json_c(w, m->digest);
}

/* GET /api/tags. */
static int ollama_write_models(const struct sb_backend_info *models, size_t n, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    sb__put(&w, "{\"models\":[");
    for (size_t i = 0; i < n; i++) {
        if (i)
            sb__put(&w, ",");
        put_model_head(&w, &models[i]);
        sb__put(&w, ",\"modified_at\":");
        sb__put_time(&w, models[i].created);
        sb__put(&w, ",");
        put_details(&w, &models[i]);
        sb__put(&w, "}");
    }
    sb__put(&w, "]}");
    return sb__writer_finish(&w, mark);
}

int sb_ollama_write_version(struct sb_buf *out)
{
    return sb_buf_append_c(out, "{\"version\":\"" OLLAMA_VERSION "\"}");
}

/* Ollama's expiry for a model kept loaded for good: now plus the longest Go duration. */
#define OLLAMA_FOREVER_S INT64_C(9223372036)

/* Whether /api/ps lists m: a local model while its weights are in memory (Ollama lists its loaded
 * runners, so a model that was unloaded, or not loaded yet, is not there), any other one while it
 * is ready (it has nothing to load). */
static bool ps_lists(const struct sb_backend_info *m)
{
    bool local = m->kind && strcmp(m->kind, "local") == 0;

    return local ? m->loaded : m->ready;
}

int sb_ollama_write_ps(const struct sb_backend_info *models, size_t n, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;
    bool first = true;

    sb__put(&w, "{\"models\":[");
    for (size_t i = 0; i < n; i++) {
        const struct sb_backend_info *m = &models[i];
        if (!ps_lists(m))
            continue;
        sb__put(&w, first ? "" : ",");
        first = false;
        put_model_head(&w, m);
        sb__put(&w, ",");
        put_details(&w, m);
        sb__put(&w, ",\"expires_at\":");
        sb__put_time(&w, m->expires_at ? m->expires_at : sb_unix_time() + OLLAMA_FOREVER_S);
        sb__put(&w, ",\"size_vram\":");
        sb__put_i64(&w, m->size_vram);
        sb__put(&w, ",\"context_length\":");
        sb__put_i64(&w, m->n_ctx);
        sb__put(&w, "}");
    }
    sb__put(&w, "]}");
    return sb__writer_finish(&w, mark);
}

int sb_ollama_write_show(const struct sb_backend_info *m, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;
    bool sep = false;

    /* A Modelfile for display only: the model is configured in Switchboard's configuration. */
    sb__put(&w, "{\"modelfile\":\"# Modelfile generated by Switchboard\\nFROM ");
    sb__put_escaped(&w, sb_str_c(m->name));
    sb__put(&w, "\\n\",\"parameters\":\"");
    if (m->n_ctx > 0 && w.rc == 0)
        w.rc = sb_buf_printf(w.b, "num_ctx %" PRId64, m->n_ctx);
    /* The chat template lives in the GGUF and is applied by the backend; it is not exposed. */
    sb__put(&w, "\",\"template\":\"\",");
    put_details(&w, m);
    sb__put(&w, ",\"model_info\":{");
    if (m->family) {
        sb__put(&w, "\"general.architecture\":");
        put_json_c(&w, m->family);
        sep = true;
    }
    if (m->n_params > 0) {
        sb__put(&w, sep ? ",\"general.parameter_count\":" : "\"general.parameter_count\":");
        sb__put_i64(&w, m->n_params);
        sep = true;
    }
    if (m->family && m->n_ctx > 0) {
        sb__put(&w, sep ? ",\"" : "\"");
        sb__put_escaped(&w, sb_str_c(m->family));
        sb__put(&w, ".context_length\":");
        sb__put_i64(&w, m->n_ctx);
    }
    sb__put(&w, "},\"capabilities\":");
    sb__put(&w, m->embeddings ? "[\"embedding\"]" : "[\"completion\",\"tools\"]");
    sb__put(&w, ",\"modified_at\":");
    sb__put_time(&w, m->created);
    sb__put(&w, "}");
    return sb__writer_finish(&w, mark);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

enum shape {
    SHAPE_CHAT,     /* /api/chat: "message" objects */
    SHAPE_GENERATE, /* /api/generate: "response" strings */
    SHAPE_EMBED,    /* /api/embed: one object of "embeddings" */
};

struct ollama_render {
    const struct sb_request *req;
    enum sb__phase phase;
    enum shape shape;
    bool load; /* a load or unload request: answered with done_reason "load" / "unload" */
    /* Clock readings (sb_now_ns) for the durations; first is 0 until the first output. */
    uint64_t t_init, t_start, t_first;
    struct sb_buf head; /* {"model":"...","created_at":" — every line's start */
    /* The seconds part of created_at, formatted once per second. */
    int64_t stamp_sec;
    char stamp[32];
    struct sb_buf *vectors; /* SHAPE_EMBED: each input's values, comma-separated; by index */
    size_t n_vectors;
    struct sb__accum acc; /* plain responses: text and tool calls, bounded by OLLAMA_MAX_ACCUM */
    struct sb_usage usage;
};

static void release(struct ollama_render *st)
{
    sb_buf_free(&st->head);
    sb__accum_free(&st->acc);
    for (size_t i = 0; i < st->n_vectors; i++)
        sb_buf_free(&st->vectors[i]);
    free(st->vectors);
    st->vectors = NULL;
    st->n_vectors = 0;
}

static int ollama_render_init(void *state, const struct sb_request *req)
{
    struct ollama_render *st = state;
    struct sb__writer w = {&st->head, 0};

    st->req = req;
    st->phase = SB__PHASE_WAIT_START;
    st->shape = req->kind == SB_REQ_EMBED                            ? SHAPE_EMBED
                : req->kind == SB_REQ_COMPLETION || req->from_prompt ? SHAPE_GENERATE
                                                                     : SHAPE_CHAT;
    st->load = req->model_op != SB_MODEL_OP_NONE;
    st->t_init = sb_now_ns();
    st->stamp_sec = -1;
    /* The model name once, escaped (at most 6 bytes a byte), around a fixed frame. */
    sb_buf_init(&st->head, OLLAMA_MAX_HEAD + 6 * req->model.len);
    sb__accum_init(&st->acc, OLLAMA_MAX_ACCUM, OLLAMA_MAX_TOOL_CALLS, OLLAMA_MAX_CALL_FIELD);
    sb__put(&w, "{\"model\":");
    sb__put_json(&w, req->model);
    sb__put(&w, ",\"created_at\":\"");
    return w.rc;
}

static void ollama_render_deinit(void *state)
{
    release(state);
}

/* The rest of created_at (RFC 3339 UTC with nanoseconds) and its closing quote. */
static void put_stamp(struct sb__writer *w, struct ollama_render *st)
{
    struct timespec ts;
    struct tm tm;
    time_t sec;

    clock_gettime(CLOCK_REALTIME, &ts);
    if ((int64_t)ts.tv_sec != st->stamp_sec) {
        sec = ts.tv_sec;
        if (!gmtime_r(&sec, &tm) ||
            strftime(st->stamp, sizeof(st->stamp), "%Y-%m-%dT%H:%M:%S", &tm) == 0)
            memcpy(st->stamp, "1970-01-01T00:00:00", sizeof("1970-01-01T00:00:00"));
        st->stamp_sec = (int64_t)ts.tv_sec;
    }
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%s.%09ldZ\"", st->stamp, (long)ts.tv_nsec);
}

/* {"model":..,"created_at":".." — the caller goes on with ,"message".. or ,"response"... */
static void line_open(struct sb__writer *w, struct ollama_render *st)
{
    sb__put_str(w, sb_buf_view(&st->head));
    put_stamp(w, st);
}

static uint64_t since(uint64_t from, uint64_t to)
{
    return to > from ? to - from : 0;
}

/* ,"done":true,"done_reason":..,"total_duration":.. to the end of the final object. */
static void put_done(struct sb__writer *w, struct ollama_render *st, const struct sb_event *ev)
{
    static const char *const done_reasons[] = {
        [SB_FINISH_STOP] = "stop",
        [SB_FINISH_LENGTH] = "length",
        [SB_FINISH_TOOL_CALLS] = "stop",
        [SB_FINISH_CONTENT_FILTER] = "stop",
    };
    size_t r = (size_t)ev->finish.reason;
    uint64_t now = sb_now_ns();
    uint64_t first = st->t_first ? st->t_first : now;

    sb__put(w, ",\"done\":true,\"done_reason\":\"");
    sb__put(w, r < SB_ARRAY_LEN(done_reasons) && done_reasons[r] ? done_reasons[r] : "stop");
    sb__put(w, "\",\"total_duration\":");
    sb__put_i64(w, (int64_t)since(st->t_init, now));
    sb__put(w, ",\"load_duration\":");
    sb__put_i64(w, (int64_t)since(st->t_init, st->t_start));
    sb__put(w, ",\"prompt_eval_count\":");
    sb__put_i64(w, st->usage.prompt_tokens);
    sb__put(w, ",\"prompt_eval_duration\":");
    sb__put_i64(w, (int64_t)since(st->t_start, first));
    sb__put(w, ",\"eval_count\":");
    sb__put_i64(w, st->usage.completion_tokens);
    sb__put(w, ",\"eval_duration\":");
    sb__put_i64(w, (int64_t)since(first, now));
    sb__put(w, "}");
}

/* The answer to a load or unload request, streamed or not: generate's has an empty response,
 * chat's an empty assistant message, as Ollama's. */
static void put_load(struct sb__writer *w, struct ollama_render *st)
{
    line_open(w, st);
    sb__put(w, st->shape == SHAPE_CHAT ? ",\"message\":{\"role\":\"assistant\",\"content\":\"\"}"
                                       : ",\"response\":\"\"");
    sb__put(w, st->req->model_op == SB_MODEL_OP_UNLOAD
                   ? ",\"done\":true,\"done_reason\":\"unload\"}"
                   : ",\"done\":true,\"done_reason\":\"load\"}");
    if (st->req->stream)
        sb__put(w, "\n");
}

static bool have_calls(const struct ollama_render *st)
{
    for (size_t i = 0; i < st->acc.n_calls; i++) {
        if (st->acc.calls[i].started)
            return true;
    }
    return false;
}

/* ,"tool_calls":[{"id":..,"function":{"index":..,"name":..,"arguments":{..}}},...] */
static void put_tool_calls(struct sb__writer *w, const struct ollama_render *st)
{
    bool first = true;
    char gen[40];

    sb__put(w, ",\"tool_calls\":[");
    for (size_t i = 0; i < st->acc.n_calls; i++) {
        const struct sb__tool_acc *c = &st->acc.calls[i];
        struct sb_str id = sb_buf_view(&c->id);

        if (!c->started)
            continue;
        if (id.len == 0) {
            sb_random_id(gen, sizeof(gen), "call_");
            id = sb_str_c(gen);
        }
        sb__put(w, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        sb__put_json(w, id);
        sb__put(w, ",\"function\":{\"index\":");
        sb__put_i64(w, (int64_t)i);
        sb__put(w, ",\"name\":");
        sb__put_json(w, sb_buf_view(&c->name));
        sb__put(w, ",\"arguments\":");
        sb__put_tool_args(w, sb_buf_view(&c->args));
        sb__put(w, "}}");
    }
    sb__put(w, "]");
}

/* ---- streamed responses -------------------------------------------------------------------- */

static void stream_text(struct sb__writer *w, struct ollama_render *st, struct sb_str text)
{
    if (text.len == 0 || st->load)
        return;
    line_open(w, st);
    if (st->shape == SHAPE_CHAT) {
        sb__put(w, ",\"message\":{\"role\":\"assistant\",\"content\":");
        sb__put_json(w, text);
        sb__put(w, "},\"done\":false}\n");
    } else {
        sb__put(w, ",\"response\":");
        sb__put_json(w, text);
        sb__put(w, ",\"done\":false}\n");
    }
}

static void stream_finish(struct sb__writer *w, struct ollama_render *st, const struct sb_event *ev)
{
    if (st->load) {
        put_load(w, st);
        return;
    }
    if (st->shape == SHAPE_CHAT && have_calls(st)) {
        line_open(w, st);
        sb__put(w, ",\"message\":{\"role\":\"assistant\",\"content\":\"\"");
        put_tool_calls(w, st);
        sb__put(w, "},\"done\":false}\n");
    }
    line_open(w, st);
    sb__put(w, st->shape == SHAPE_CHAT ? ",\"message\":{\"role\":\"assistant\",\"content\":\"\"}"
                                       : ",\"response\":\"\"");
    put_done(w, st, ev);
    sb__put(w, "\n");
}

/* An error after the stream began: Ollama's error line. No done line follows, so the cut-short
 * output is never taken as complete. */
static void stream_error(struct sb__writer *w, const struct sb_event *ev)
{
    struct sb_api_error err;

    sb_api_error_from_event(ev, &err);
    sb__put(w, "{\"error\":");
    sb__put_json(w, sb_str_c(err.message));
    sb__put(w, "}\n");
}

static int render_stream(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct ollama_render *st = state;
    int rc = 0;

    switch (ev->type) {
    case SB_EV_START: break;
    case SB_EV_TEXT: stream_text(w, st, ev->text.text); break;
    case SB_EV_TOOL_CALL:
        if (st->shape == SHAPE_CHAT && !st->load)
            rc = sb__accum_tool_call(&st->acc, ev);
        break;
    case SB_EV_USAGE: st->usage = ev->usage; break;
    case SB_EV_FINISH: stream_finish(w, st, ev); break;
    case SB_EV_ERROR: stream_error(w, ev); break;
    case SB_EV_EMBEDDING: rc = SB_EINVAL; break;
    }
    return rc;
}

/* ---- plain responses ----------------------------------------------------------------------- */

/* Appends one input's vector, as JSON numbers, to its slot. */
static int hold_embedding(struct ollama_render *st, const struct sb_event *ev)
{
    size_t n = st->req->n_inputs;
    int32_t index = ev->embedding.index;
    struct sb_buf *v;
    int rc = 0;

    if (index < 0 || (size_t)index >= n)
        return SB_EINVAL;
    if (!st->vectors) {
        st->vectors = calloc(n, sizeof(*st->vectors));
        if (!st->vectors)
            return SB_ENOMEM;
        st->n_vectors = n;
        for (size_t i = 0; i < n; i++)
            sb_buf_init(&st->vectors[i], OLLAMA_MAX_ACCUM);
    }
    v = &st->vectors[index];
    if (v->p) /* a second vector for the same input */
        return SB_ESTATE;
    /* An empty append allocates, so even a zero-length vector marks its slot as filled. */
    rc = sb_buf_append(v, "", 0);
    for (size_t i = 0; i < ev->embedding.dim && rc == 0; i++) {
        float x = ev->embedding.values[i];
        /* JSON has no NaN or infinity; a model that produced one gets 0 in its place. */
        rc = sb_buf_printf(v, i ? ",%.9g" : "%.9g", isfinite(x) ? (double)x : 0.0);
    }
    if (rc == 0)
        rc = sb__accum_hold(&st->acc, v->len);
    return rc;
}

static int plain_embed_finish(struct sb__writer *w, struct ollama_render *st)
{
    uint64_t now = sb_now_ns();

    for (size_t i = 0; i < st->req->n_inputs; i++) {
        if (i >= st->n_vectors || !st->vectors[i].p)
            return SB_ESTATE; /* the backend left an input without its vector */
    }
    sb__put(w, "{\"model\":");
    sb__put_json(w, st->req->model);
    sb__put(w, ",\"embeddings\":[");
    for (size_t i = 0; i < st->n_vectors; i++) {
        sb__put(w, i ? ",[" : "[");
        sb__put_str(w, sb_buf_view(&st->vectors[i]));
        sb__put(w, "]");
    }
    sb__put(w, "],\"total_duration\":");
    sb__put_i64(w, (int64_t)since(st->t_init, now));
    sb__put(w, ",\"load_duration\":");
    sb__put_i64(w, (int64_t)since(st->t_init, st->t_start));
    sb__put(w, ",\"prompt_eval_count\":");
    sb__put_i64(w, st->usage.prompt_tokens);
    sb__put(w, "}");
    return 0;
}

static int plain_finish(struct sb__writer *w, struct ollama_render *st, const struct sb_event *ev)
{
    if (st->shape == SHAPE_EMBED)
        return plain_embed_finish(w, st);
    if (st->load) {
        put_load(w, st);
        return 0;
    }
    line_open(w, st);
    if (st->shape == SHAPE_CHAT) {
        sb__put(w, ",\"message\":{\"role\":\"assistant\",\"content\":");
        sb__put_json(w, sb_buf_view(&st->acc.text));
        if (have_calls(st))
            put_tool_calls(w, st);
        sb__put(w, "}");
    } else {
        sb__put(w, ",\"response\":");
        sb__put_json(w, sb_buf_view(&st->acc.text));
    }
    put_done(w, st, ev);
    return 0;
}

static int render_plain(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct ollama_render *st = state;
    int rc = 0;

    switch (ev->type) {
    case SB_EV_START: break;
    case SB_EV_TEXT:
        if (st->shape == SHAPE_EMBED || st->load)
            break;
        rc = sb__accum_text(&st->acc, ev->text.text);
        break;
    case SB_EV_TOOL_CALL:
        if (st->shape == SHAPE_CHAT && !st->load)
            rc = sb__accum_tool_call(&st->acc, ev);
        break;
    case SB_EV_EMBEDDING: rc = st->shape == SHAPE_EMBED ? hold_embedding(st, ev) : SB_EINVAL; break;
    case SB_EV_USAGE: st->usage = ev->usage; break;
    case SB_EV_FINISH: rc = plain_finish(w, st, ev); break;
    case SB_EV_ERROR: rc = SB_ESTATE; break; /* answered with write_error; see api.h */
    }
    return rc;
}

/* Notes the clock at START and at the first output, for the durations. */
static int ollama_render_begin(void *state, const struct sb_event *ev)
{
    struct ollama_render *st = state;

    if (ev->type == SB_EV_START) {
        st->t_start = sb_now_ns();
    } else if (!st->t_first && (ev->type == SB_EV_TEXT || ev->type == SB_EV_TOOL_CALL ||
                                ev->type == SB_EV_EMBEDDING)) {
        st->t_first = sb_now_ns();
    }
    return 0;
}

static const struct sb__render_ops ollama_ops = {
    .begin = ollama_render_begin,
    .stream = render_stream,
    .plain = render_plain,
    .release = ollama_render_deinit,
};

static int ollama_render_event(void *state, const struct sb_event *ev, struct sb_buf *out)
{
    struct ollama_render *st = state;

    return sb__render_event(&ollama_ops, st, &st->phase,
                            st->req->stream && st->shape != SHAPE_EMBED, ev, out);
}

const struct sb_codec sb_ollama_codec = {
    .api = SB_API_OLLAMA,
    .name = "ollama",
    .stream_content_type = "application/x-ndjson",
    .parse = ollama_parse,
    .write_error = ollama_write_error,
    .render_size = sizeof(struct ollama_render),
    .render_init = ollama_render_init,
    .render_event = ollama_render_event,
    .render_deinit = ollama_render_deinit,
    .write_models = ollama_write_models,
};
