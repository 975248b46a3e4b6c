/* The Anthropic wire codec: POST /v1/messages bodies become canonical requests, and canonical
 * events become Messages API message objects or their SSE event streams.
 *
 * Decisions where the two models do not meet one to one:
 * - thinking is accepted and ignored: no backend streams reasoning as thinking blocks yet, and an
 *   answer without them is valid output for every client. Thinking blocks sent back in assistant
 *   turns are dropped for the same reason.
 * - Canonical USAGE arrives at the end, so message_start carries zero counts and message_delta
 *   carries them all (input, cache read/creation, output). Current SDKs take each count from
 *   message_delta when it is present; older ones take only output_tokens from it.
 * - input_tokens is Anthropic's: prompt tokens less those read from or written to a cache.
 * - A tool call whose accumulated arguments are not a JSON object is rendered, in a plain
 *   response, as {"_raw_arguments": "<the text>"}: the model's output is kept rather than lost,
 *   and the client's tool validation reports it. Empty arguments become {}. A stream carries the
 *   text as it came, in input_json_delta events.
 * - A turn that produced tool calls stops with "tool_use" even when the backend said "stop", since
 *   agent loops key on it. CONTENT_FILTER becomes "refusal".
 * - Content blocks in a stream are strictly sequential, so the deltas of a tool call must arrive
 *   before the next call starts (every backend here produces them so); a delta for a call whose
 *   block was already closed fails the render rather than send a broken call. */
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/api.h"
#include "api/json.h"
#include "api/render.h"

/* Output of a non-streamed response is held until FINISH; past this the response fails instead of
 * arriving cut short. */
#define ANTHROPIC_MAX_ACCUM ((size_t)64 << 20)
/* Parallel tool calls in one response; far above what models emit, low enough to bound state. */
#define ANTHROPIC_MAX_TOOL_CALLS 128
/* A tool call's id or name, or the served model's name, as a backend produced it; a longer name
 * is not repeated back (the request's is used). */
#define ANTHROPIC_MAX_FIELD 512
/* Anthropic's pattern for tool names, ^[a-zA-Z0-9_-]{1,128}$. */
#define ANTHROPIC_MAX_TOOL_NAME 128
/* Anthropic's limit on metadata.user_id. */
#define ANTHROPIC_MAX_USER_ID 256

/* =============================================================================================
 * Parsing
 * =========================================================================================== */

/* Anthropic's ranges: temperature is [0, 1] there, not OpenAI's [0, 2]. max_tokens 0 (warm the
 * prompt cache, generate nothing) has no canonical meaning, so 1 is the minimum here. */
static const struct sb__json_num request_numbers[] = {
    {"max_tokens", SB__JSON_I64, 1, INT32_MAX, 0, offsetof(struct sb_request, max_tokens),
     SB__JSON_NO_FLAG},
    {"temperature", SB__JSON_F32, 0, 1, 0, offsetof(struct sb_request, sampling.temperature),
     SB__JSON_NO_FLAG},
    {"top_p", SB__JSON_F32, 0, 1, SB__JSON_MIN_EXCLUSIVE,
     offsetof(struct sb_request, sampling.top_p), SB__JSON_NO_FLAG},
    {"top_k", SB__JSON_I32, 0, INT32_MAX, 0, offsetof(struct sb_request, sampling.top_k),
     SB__JSON_NO_FLAG},
};

/* "system" as a message role is the API's newer alternative to the top-level system field. */
static const struct sb__json_enum role_names[] = {
    {"user", SB_ROLE_USER},
    {"assistant", SB_ROLE_ASSISTANT},
    {"system", SB_ROLE_SYSTEM},
};

enum block_kind {
    BLOCK_TEXT,
    BLOCK_IMAGE,
    BLOCK_TOOL_USE,
    BLOCK_TOOL_RESULT,
    BLOCK_THINKING,          /* dropped: see the file comment */
    BLOCK_REDACTED_THINKING, /* dropped */
};

/* The content block types Switchboard reads; documents, search results and server tool blocks are
 * not among them, and the enum error lists what is. */
static const struct sb__json_enum block_names[] = {
    {"text", BLOCK_TEXT},         {"image", BLOCK_IMAGE},
    {"tool_use", BLOCK_TOOL_USE}, {"tool_result", BLOCK_TOOL_RESULT},
    {"thinking", BLOCK_THINKING}, {"redacted_thinking", BLOCK_REDACTED_THINKING},
};

#define ROLE_BIT(r) (1u << (r))

/* Which roles may send each block type, by enum block_kind. */
static const unsigned block_roles[] = {
    [BLOCK_TEXT] = ROLE_BIT(SB_ROLE_USER) | ROLE_BIT(SB_ROLE_ASSISTANT) | ROLE_BIT(SB_ROLE_SYSTEM),
    [BLOCK_IMAGE] = ROLE_BIT(SB_ROLE_USER),
    [BLOCK_TOOL_USE] = ROLE_BIT(SB_ROLE_ASSISTANT),
    [BLOCK_TOOL_RESULT] = ROLE_BIT(SB_ROLE_USER),
    [BLOCK_THINKING] = ROLE_BIT(SB_ROLE_ASSISTANT),
    [BLOCK_REDACTED_THINKING] = ROLE_BIT(SB_ROLE_ASSISTANT),
};

/* Inside a tool_result only text and images are read. */
static const struct sb__json_enum result_block_names[] = {
    {"text", BLOCK_TEXT},
    {"image", BLOCK_IMAGE},
};

static const struct sb__json_enum text_only[] = {{"text", BLOCK_TEXT}};

enum image_source { SOURCE_BASE64, SOURCE_URL };
static const struct sb__json_enum image_source_names[] = {
    {"base64", SOURCE_BASE64},
    {"url", SOURCE_URL},
};

static int read_text_block(struct sb__json *j, const json_t *blk, struct sb_part *out)
{
    out->type = SB_PART_TEXT;
    return sb__json_string(j, blk, "text", true, &out->text);
}

/* source: {type: base64, media_type, data} or {type: url, url}. Files uploaded to Anthropic's
 * Files API have nothing to resolve against here, so "file" is not a supported type. */
static int read_image_block(struct sb__json *j, const json_t *blk, struct sb_part *out)
{
    json_t *src = NULL;
    size_t mark;
    int type = 0;
    int rc;

    out->type = SB_PART_IMAGE;
    rc = sb__json_object(j, blk, "source", true, &src);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "source");
    rc = sb__json_enum(j, src, "type", true, image_source_names, SB_ARRAY_LEN(image_source_names),
                       &type);
    if (rc == 0 && type == SOURCE_BASE64) {
        rc = sb__json_string(j, src, "media_type", true, &out->media_type);
        if (rc == 0)
            rc = sb__json_string(j, src, "data", true, &out->data);
    } else if (rc == 0) {
        rc = sb__json_string(j, src, "url", true, &out->url);
    }
    sb__json_pop(j, mark);
    return rc;
}

/* input is an object; it becomes the call's arguments as compact JSON text. */
static int read_tool_use_block(struct sb__json *j, const json_t *blk, struct sb_tool_call *out)
{
    json_t *input = NULL;
    size_t mark;
    int rc;

    rc = sb__json_string(j, blk, "id", true, &out->id);
    if (rc == 0)
        rc = sb__json_string(j, blk, "name", true, &out->name);
    if (rc == 0)
        rc = sb__json_object(j, blk, "input", false, &input);
    if (rc)
        return rc;
    if (!input) {
        out->arguments = SB_STR_LIT("{}");
        return 0;
    }
    mark = sb__json_push_key(j, "input");
    rc = sb__json_dump(j, input, &out->arguments);
    sb__json_pop(j, mark);
    return rc;
}

/* Reserves the next canonical message (the array was sized for the worst case). */
static struct sb_message *next_message(struct sb_request *req, enum sb_role role)
{
    struct sb_message *m = &req->messages[req->n_messages++];

    m->role = role;
    return m;
}

static int one_text_part(struct sb__json *j, struct sb_message *m, const json_t *s)
{
    m->parts = sb__json_alloc_array(j, 1, sizeof(*m->parts));
    if (!m->parts)
        return sb__json_fail_nomem(j);
    m->n_parts = 1;
    m->parts[0].type = SB_PART_TEXT;
    if (!s) {
        m->parts[0].text = SB_STR_LIT("");
        return 0;
    }
    return sb__json_string_value(j, s, &m->parts[0].text);
}

/* A tool_result becomes its own SB_ROLE_TOOL message: content a string, text and image blocks, or
 * nothing (one empty text part, so that every backend has something to render). */
static int read_tool_result_block(struct sb__json *j, const json_t *blk, struct sb_message *m)
{
    json_t *c = sb__json_get(blk, "content");
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_string(j, blk, "tool_use_id", true, &m->tool_call_id);
    if (rc == 0)
        rc = sb__json_bool(j, blk, "is_error", &m->is_error);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "content");
    if (!c || (json_is_array(c) && json_array_size(c) == 0)) {
        rc = one_text_part(j, m, NULL);
    } else if (json_is_string(c)) {
        rc = one_text_part(j, m, c);
    } else if (!json_is_array(c)) {
        rc = sb__json_fail_type(j, c, "a string or an array of content blocks");
    } else {
        n = json_array_size(c);
        m->parts = sb__json_alloc_array(j, n, sizeof(*m->parts));
        rc = m->parts ? 0 : sb__json_fail_nomem(j);
        for (size_t i = 0; i < n && rc == 0; i++) {
            const json_t *b = json_array_get(c, i);
            size_t im = sb__json_push_index(j, i);
            int kind = 0;

            if (!json_is_object(b))
                rc = sb__json_fail_type(j, b, "an object");
            else
                rc = sb__json_enum(j, b, "type", true, result_block_names,
                                   SB_ARRAY_LEN(result_block_names), &kind);
            if (rc == 0)
                rc = kind == BLOCK_TEXT ? read_text_block(j, b, &m->parts[i])
                                        : read_image_block(j, b, &m->parts[i]);
            sb__json_pop(j, im);
            m->n_parts += rc == 0;
        }
    }
    sb__json_pop(j, mark);
    return rc;
}

static bool is_tool_result(const json_t *blk)
{
    const json_t *t = json_object_get(blk, "type");

    return json_is_string(t) && strcmp(json_string_value(t), "tool_result") == 0;
}

/* Reads a block's type and checks the role may send it. */
static int block_kind(struct sb__json *j, const json_t *blk, enum sb_role role, int *kind)
{
    size_t mark;
    int rc;

    if (!json_is_object(blk))
        return sb__json_fail_type(j, blk, "an object");
    rc = sb__json_enum(j, blk, "type", true, block_names, SB_ARRAY_LEN(block_names), kind);
    if (rc || (block_roles[*kind] & ROLE_BIT(role)))
        return rc;
    mark = sb__json_push_key(j, "type");
    rc = sb__json_fail(j, "invalid_value",
                       "Invalid value for '%s': content blocks of type '%s' are not allowed in %s "
                       "messages.",
                       j->path, block_names[*kind].name, sb_role_name(role));
    sb__json_pop(j, mark);
    return rc;
}

/* Blocks [from, to) hold no tool_result: they become one message of the turn's role, text and
 * images as parts and tool_use blocks as calls, each in order. */
static int read_run(struct sb__json *j, const json_t *blocks, size_t from, size_t to,
                    enum sb_role role, struct sb_request *req)
{
    struct sb_message *m = next_message(req, role);
    size_t n = to - from;
    int rc = 0;

    m->parts = sb__json_alloc_array(j, n, sizeof(*m->parts));
    if (m->parts && role == SB_ROLE_ASSISTANT)
        m->tool_calls = sb__json_alloc_array(j, n, sizeof(*m->tool_calls));
    if (!m->parts || (role == SB_ROLE_ASSISTANT && !m->tool_calls))
        return sb__json_fail_nomem(j);
    for (size_t i = from; i < to && rc == 0; i++) {
        const json_t *blk = json_array_get(blocks, i);
        size_t im = sb__json_push_index(j, i);
        int kind = 0;

        rc = block_kind(j, blk, role, &kind);
        if (rc == 0 && kind == BLOCK_TEXT)
            rc = read_text_block(j, blk, &m->parts[m->n_parts++]);
        else if (rc == 0 && kind == BLOCK_IMAGE)
            rc = read_image_block(j, blk, &m->parts[m->n_parts++]);
        else if (rc == 0 && kind == BLOCK_TOOL_USE)
            rc = read_tool_use_block(j, blk, &m->tool_calls[m->n_tool_calls++]);
        sb__json_pop(j, im);
    }
    /* A run of thinking blocks alone leaves nothing to send. */
    if (rc == 0 && m->n_parts == 0 && m->n_tool_calls == 0)
        memset(&req->messages[--req->n_messages], 0, sizeof(*m));
    return rc;
}

/* An array of blocks: each tool_result is a message of its own, and each run of other blocks
 * between them one message, so that the conversation keeps its order. */
static int read_blocks(struct sb__json *j, const json_t *blocks, enum sb_role role,
                       struct sb_request *req)
{
    size_t n = json_array_size(blocks);
    size_t i = 0;
    int rc = 0;

    while (i < n && rc == 0) {
        const json_t *blk = json_array_get(blocks, i);
        size_t end = i;

        if (is_tool_result(blk)) {
            size_t im = sb__json_push_index(j, i);
            int kind = 0;

            rc = block_kind(j, blk, role, &kind);
            if (rc == 0)
                rc = read_tool_result_block(j, blk, next_message(req, SB_ROLE_TOOL));
            sb__json_pop(j, im);
            i++;
            continue;
        }
        while (end < n && !is_tool_result(json_array_get(blocks, end)))
            end++;
        rc = read_run(j, blocks, i, end, role, req);
        i = end;
    }
    return rc;
}

static int parse_message(struct sb__json *j, const json_t *v, struct sb_request *req)
{
    json_t *c;
    size_t mark;
    int role = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_enum(j, v, "role", true, role_names, SB_ARRAY_LEN(role_names), &role);
    if (rc)
        return rc;
    c = sb__json_get(v, "content");
    mark = sb__json_push_key(j, "content");
    if (!c)
        rc = sb__json_fail_missing(j);
    else if (json_is_string(c))
        rc = one_text_part(j, next_message(req, (enum sb_role)role), c);
    else if (!json_is_array(c))
        rc = sb__json_fail_type(j, c, "a string or an array of content blocks");
    else if (json_array_size(c) == 0)
        rc = sb__json_fail(j, "empty_array",
                           "Invalid '%s': empty array. Expected an array with minimum length 1, "
                           "but got an empty array instead.",
                           j->path);
    else
        rc = read_blocks(j, c, (enum sb_role)role, req);
    sb__json_pop(j, mark);
    return rc;
}

/* system: a string, or an array of text blocks; one system message first, or none when empty. */
static int parse_system(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "system");
    struct sb_message *m;
    size_t mark;
    size_t n;
    int rc = 0;

    if (!v || (json_is_string(v) && json_string_length(v) == 0) ||
        (json_is_array(v) && json_array_size(v) == 0))
        return 0;
    mark = sb__json_push_key(j, "system");
    if (json_is_string(v)) {
        rc = one_text_part(j, next_message(req, SB_ROLE_SYSTEM), v);
        goto out;
    }
    if (!json_is_array(v)) {
        rc = sb__json_fail_type(j, v, "a string or an array of text blocks");
        goto out;
    }
    n = json_array_size(v);
    m = next_message(req, SB_ROLE_SYSTEM);
    m->parts = sb__json_alloc_array(j, n, sizeof(*m->parts));
    if (!m->parts) {
        rc = sb__json_fail_nomem(j);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *b = json_array_get(v, i);
        size_t im = sb__json_push_index(j, i);
        int kind = 0;

        if (!json_is_object(b))
            rc = sb__json_fail_type(j, b, "an object");
        else
            rc = sb__json_enum(j, b, "type", true, text_only, 1, &kind);
        if (rc == 0)
            rc = read_text_block(j, b, &m->parts[m->n_parts++]);
        sb__json_pop(j, im);
    }
out:
    sb__json_pop(j, mark);
    return rc;
}

/* A tool result names only the call's id; backends whose templates want the tool's name get it
 * from the call it answers, in the assistant turn before it. */
static void name_tool_results(struct sb_request *req)
{
    const struct sb_message *turn = NULL;

    for (size_t i = 0; i < req->n_messages; i++) {
        struct sb_message *m = &req->messages[i];

        if (m->role == SB_ROLE_ASSISTANT && m->n_tool_calls > 0) {
            turn = m;
            continue;
        }
        if (m->role != SB_ROLE_TOOL || !turn)
            continue;
        for (size_t k = 0; k < turn->n_tool_calls; k++) {
            if (sb_str_eq(turn->tool_calls[k].id, m->tool_call_id)) {
                m->name = turn->tool_calls[k].name;
                break;
            }
        }
    }
}

static int parse_messages(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *arr = NULL;
    size_t cap = 1; /* the system message */
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_array(j, root, "messages", true, 1, &arr);
    if (rc)
        return rc;
    n = json_array_size(arr);
    /* At most one canonical message per block (tool results split a turn), one per plain turn. */
    for (size_t i = 0; i < n; i++) {
        const json_t *c = json_object_get(json_array_get(arr, i), "content");
        cap += json_is_array(c) && json_array_size(c) > 1 ? json_array_size(c) : 1;
    }
    req->messages = sb__json_alloc_array(j, cap, sizeof(*req->messages));
    if (!req->messages)
        return sb__json_fail_nomem(j);
    rc = parse_system(j, root, req);
    mark = sb__json_push_key(j, "messages");
    for (size_t i = 0; i < n && rc == 0; i++) {
        size_t im = sb__json_push_index(j, i);
        rc = parse_message(j, json_array_get(arr, i), req);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    if (rc == 0)
        name_tool_results(req);
    return rc;
}

static bool valid_tool_name(struct sb_str s)
{
    if (s.len == 0 || s.len > ANTHROPIC_MAX_TOOL_NAME)
        return false;
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.p[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A custom tool: {name, description, input_schema}. Anthropic's server tools (web search, code
 * execution, bash, ...) carry a versioned type and run on Anthropic's side; nothing runs them
 * here. */
static int parse_tool(struct sb__json *j, const json_t *v, struct sb_tool *out)
{
    json_t *type = sb__json_get(v, "type");
    json_t *schema = NULL;
    size_t mark;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    if (type && (!json_is_string(type) || strcmp(json_string_value(type), "custom") != 0)) {
        mark = sb__json_push_key(j, "type");
        rc = json_is_string(type)
                 ? sb__json_fail(j, "unsupported_value",
                                 "Invalid value for '%s': '%.64s'. Switchboard serves custom tools "
                                 "only (type 'custom' or no type); Anthropic's server tools do "
                                 "not run here.",
                                 j->path, json_string_value(type))
                 : sb__json_fail_type(j, type, "a string");
        sb__json_pop(j, mark);
        return rc;
    }
    rc = sb__json_string(j, v, "name", true, &out->name);
    if (rc == 0 && !valid_tool_name(out->name))
        rc = sb__json_fail_at(
            j, "name", "invalid_value",
            "string does not match pattern. Expected a string that matches the pattern "
            "'^[a-zA-Z0-9_-]{1,128}$'.");
    if (rc == 0)
        rc = sb__json_string(j, v, "description", false, &out->description);
    if (rc == 0)
        rc = sb__json_object(j, v, "input_schema", true, &schema);
    if (rc == 0) {
        mark = sb__json_push_key(j, "input_schema");
        rc = sb__json_dump(j, schema, &out->parameters);
        sb__json_pop(j, mark);
    }
    return rc;
}

static const struct sb__json_enum tool_choice_names[] = {
    {"auto", SB_TOOL_CHOICE_AUTO},
    {"any", SB_TOOL_CHOICE_REQUIRED},
    {"tool", SB_TOOL_CHOICE_NAMED},
    {"none", SB_TOOL_CHOICE_NONE},
};

static int parse_tool_choice(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = NULL;
    bool no_parallel = false;
    size_t mark;
    int choice = SB_TOOL_CHOICE_AUTO;
    int rc;

    rc = sb__json_object(j, root, "tool_choice", false, &v);
    if (rc || !v)
        return rc;
    mark = sb__json_push_key(j, "tool_choice");
    rc = sb__json_enum(j, v, "type", true, tool_choice_names, SB_ARRAY_LEN(tool_choice_names),
                       &choice);
    if (rc == 0 && choice == SB_TOOL_CHOICE_NAMED)
        rc = sb__json_string(j, v, "name", true, &req->tool_choice_name);
    if (rc == 0)
        rc = sb__json_bool(j, v, "disable_parallel_tool_use", &no_parallel);
    if (rc)
        goto out;
    req->tool_choice = (enum sb_tool_choice)choice;
    req->parallel_tool_calls = !no_parallel;
    if ((choice == SB_TOOL_CHOICE_REQUIRED || choice == SB_TOOL_CHOICE_NAMED) &&
        req->n_tools == 0) {
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid value for 'tool_choice': type '%s' requires 'tools' to be "
                           "specified.",
                           tool_choice_names[choice == SB_TOOL_CHOICE_NAMED ? 2 : 1].name);
        goto out;
    }
    if (choice == SB_TOOL_CHOICE_NAMED) {
        bool found = false;
        for (size_t i = 0; i < req->n_tools && !found; i++)
            found = sb_str_eq(req->tools[i].name, req->tool_choice_name);
        if (!found)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid value for 'tool_choice.name': no tool named '%.64s' is in "
                               "'tools'.",
                               req->tool_choice_name.p);
    }
out:
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
    if (rc == 0 && arr && json_array_size(arr) > 0) {
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
    }
    if (rc == 0)
        rc = parse_tool_choice(j, root, req);
    return rc;
}

/* stop_sequences: non-empty strings, at most SB_MAX_STOP of them. */
static int parse_stop_sequences(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *arr = NULL;
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_array(j, root, "stop_sequences", false, 0, &arr);
    if (rc || !arr)
        return rc;
    n = json_array_size(arr);
    mark = sb__json_push_key(j, "stop_sequences");
    if (n > SB_MAX_STOP)
        rc = sb__json_fail(j, "array_above_max_length",
                           "Invalid '%s': array too long. Switchboard takes at most %d stop "
                           "sequences, but got %zu.",
                           j->path, SB_MAX_STOP, n);
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *s = json_array_get(arr, i);
        size_t im = sb__json_push_index(j, i);

        if (json_is_string(s) && json_string_length(s) == 0)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid '%s': empty string. Expected a non-empty stop sequence.",
                               j->path);
        else
            rc = sb__json_string_value(j, s, &req->stop[i]);
        sb__json_pop(j, im);
    }
    req->n_stop = rc == 0 ? n : 0;
    sb__json_pop(j, mark);
    return rc;
}

/* metadata.user_id is the caller's end user; other keys are not Anthropic's and are ignored. */
static int parse_metadata(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *md = NULL;
    size_t mark;
    int rc;

    rc = sb__json_object(j, root, "metadata", false, &md);
    if (rc || !md)
        return rc;
    mark = sb__json_push_key(j, "metadata");
    rc = sb__json_string(j, md, "user_id", false, &req->user);
    if (rc == 0 && req->user.len > ANTHROPIC_MAX_USER_ID)
        rc = sb__json_fail_at(j, "user_id", "string_above_max_length",
                              "string too long. Expected a string with maximum length 256.");
    sb__json_pop(j, mark);
    return rc;
}

enum thinking_type { THINKING_ENABLED, THINKING_DISABLED, THINKING_ADAPTIVE };
static const struct sb__json_enum thinking_names[] = {
    {"enabled", THINKING_ENABLED},
    {"disabled", THINKING_DISABLED},
    {"adaptive", THINKING_ADAPTIVE},
};

/* thinking: checked for shape, then ignored (see the file comment). */
static int parse_thinking(struct sb__json *j, const json_t *root)
{
    json_t *t = NULL;
    size_t mark;
    int type = 0;
    int rc;

    rc = sb__json_object(j, root, "thinking", false, &t);
    if (rc || !t)
        return rc;
    mark = sb__json_push_key(j, "thinking");
    rc = sb__json_enum(j, t, "type", true, thinking_names, SB_ARRAY_LEN(thinking_names), &type);
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum output_format_names[] = {{"json_schema", 1}};

/* output_config.format {type: json_schema, schema}: JSON mode. The schema itself is not enforced
 * yet (the canonical request has no field for it), as with OpenAI's json_schema. */
static int parse_output_config(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *oc = NULL;
    json_t *fmt = NULL;
    size_t mark;
    int type = 0;
    int rc;

    rc = sb__json_object(j, root, "output_config", false, &oc);
    if (rc || !oc)
        return rc;
    mark = sb__json_push_key(j, "output_config");
    rc = sb__json_object(j, oc, "format", false, &fmt);
    if (rc == 0 && fmt) {
        size_t fm = sb__json_push_key(j, "format");
        rc = sb__json_enum(j, fmt, "type", true, output_format_names, 1, &type);
        sb__json_pop(j, fm);
        req->json_mode = rc == 0;
    }
    sb__json_pop(j, mark);
    return rc;
}

/* MCP servers would be called by the API on the model's behalf; silently dropping them would
 * change what the caller asked for. */
static int reject_mcp_servers(struct sb__json *j, const json_t *root)
{
    json_t *v = sb__json_get(root, "mcp_servers");

    if (!v || (json_is_array(v) && json_array_size(v) == 0))
        return 0;
    return sb__json_fail_at(
        j, "mcp_servers", "unsupported_parameter",
        "MCP servers are not supported by Switchboard. Remove 'mcp_servers' and "
        "call the tools from the client.");
}

static int anthropic_parse(enum sb_request_kind kind, struct sb_arena *a, struct sb_str body,
                           struct sb_request *req, struct sb_api_error *err)
{
    struct sb__json j;
    json_t *root = NULL;
    int rc;

    sb_request_init(req);
    req->api = SB_API_ANTHROPIC;
    req->kind = kind;
    sb__json_init(&j, a, err);
    if (kind != SB_REQ_CHAT) {
        rc = sb_api_fail(err, 404, "not_found_error", NULL, NULL,
                         "This endpoint is not part of Switchboard's Anthropic API; it serves "
                         "POST /v1/messages.");
        goto fail;
    }
    rc = sb__json_load(&j, body, &root);
    if (rc)
        goto fail;
    rc = sb__json_string(&j, root, "model", true, &req->model);
    if (rc == 0 && req->model.len == 0)
        rc = sb__json_fail_at(&j, "model", "invalid_value",
                              "empty string. Name a model; GET /v1/models lists them.");
    if (rc)
        goto fail;
    /* Anthropic requires max_tokens; sb__json_numbers reads it, this only insists it is there. */
    if (!sb__json_get(root, "max_tokens")) {
        size_t mark = sb__json_push_key(&j, "max_tokens");
        rc = sb__json_fail_missing(&j);
        sb__json_pop(&j, mark);
        goto fail;
    }
    rc = sb__json_numbers(&j, root, request_numbers, SB_ARRAY_LEN(request_numbers), req);
    if (rc)
        goto fail;
    rc = parse_messages(&j, root, req);
    if (rc)
        goto fail;
    rc = parse_tools(&j, root, req);
    if (rc)
        goto fail;
    rc = parse_stop_sequences(&j, root, req);
    if (rc)
        goto fail;
    rc = sb__json_bool(&j, root, "stream", &req->stream);
    if (rc)
        goto fail;
    rc = parse_metadata(&j, root, req);
    if (rc)
        goto fail;
    rc = parse_thinking(&j, root);
    if (rc)
        goto fail;
    rc = parse_output_config(&j, root, req);
    if (rc)
        goto fail;
    rc = reject_mcp_servers(&j, root);
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

/* Anthropic's error type for an HTTP status; statuses not listed fall back by class. */
static const struct {
    int status;
    const char *type;
} error_types[] = {
    {400, "invalid_request_error"},
    {401, "authentication_error"},
    {402, "billing_error"},
    {403, "permission_error"},
    {404, "not_found_error"},
    {413, "request_too_large"},
    {429, "rate_limit_error"},
    {500, "api_error"},
    /* Ours for a full queue or a loading model: Anthropic's word for "try again shortly". */
    {503, "overloaded_error"},
    {504, "timeout_error"},
    {529, "overloaded_error"},
};

static const char *error_type(int status)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(error_types); i++) {
        if (error_types[i].status == status)
            return error_types[i].type;
    }
    return status >= 500 ? "api_error" : "invalid_request_error";
}

static void put_error(struct sb__writer *w, const struct sb_api_error *err)
{
    sb__put(w, "{\"type\":\"error\",\"error\":{\"type\":\"");
    sb__put(w, error_type(err->http_status));
    sb__put(w, "\",\"message\":");
    sb__put_json(w, sb_str_c(err->message));
    sb__put(w, "}}");
}

static int anthropic_write_error(const struct sb_api_error *err, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    put_error(&w, err);
    return sb__writer_finish(&w, mark);
}

static int anthropic_write_models(const struct sb_backend_info *models, size_t n,
                                  struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    sb__put(&w, "{\"data\":[");
    for (size_t i = 0; i < n; i++) {
        struct sb_str name = sb_str_c(models[i].name);
        sb__put(&w, i ? ",{\"type\":\"model\",\"id\":" : "{\"type\":\"model\",\"id\":");
        sb__put_json(&w, name);
        sb__put(&w, ",\"display_name\":");
        sb__put_json(&w, name);
        sb__put(&w, ",\"created_at\":");
        sb__put_time(&w, models[i].created);
        sb__put(&w, ",\"max_input_tokens\":");
        if (models[i].n_ctx > 0)
            sb__put_i64(&w, models[i].n_ctx);
        else
            sb__put(&w, "null");
        sb__put(&w, "}");
    }
    sb__put(&w, "],\"has_more\":false,\"first_id\":");
    if (n) {
        sb__put_json(&w, sb_str_c(models[0].name));
        sb__put(&w, ",\"last_id\":");
        sb__put_json(&w, sb_str_c(models[n - 1].name));
    } else {
        sb__put(&w, "null,\"last_id\":null");
    }
    sb__put(&w, "}");
    return sb__writer_finish(&w, mark);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

/* The content block a stream has open. */
enum open_block { OPEN_NONE, OPEN_TEXT, OPEN_TOOL };

struct anthropic_render {
    const struct sb_request *req;
    enum sb__phase phase;
    char id[40];
    struct sb_buf model;      /* the backend's name for the model, raw, when it gave one */
    struct sb_str model_name; /* what "model" says: model, or the request's */
    /* Streams */
    enum open_block open;
    int32_t block_index; /* index of the open block, or of the next one when none is open */
    int32_t open_call;   /* the canonical call index the open tool block shows */
    int32_t last_call;   /* the highest call index a block was opened for, -1 before any */
    bool any_call;       /* a tool_use block was sent (or, for plain, accumulated) */
    /* Plain responses */
    struct sb__accum acc; /* plain responses: text and tool calls, bounded by ANTHROPIC_MAX_ACCUM */
    struct sb_usage usage;
};

static void release(struct anthropic_render *st)
{
    sb_buf_free(&st->model);
    sb__accum_free(&st->acc);
}

static int anthropic_render_init(void *state, const struct sb_request *req)
{
    struct anthropic_render *st = state;

    st->req = req;
    st->phase = SB__PHASE_WAIT_START;
    sb_random_id(st->id, sizeof(st->id), "msg_");
    sb_buf_init(&st->model, ANTHROPIC_MAX_FIELD);
    sb__accum_init(&st->acc, ANTHROPIC_MAX_ACCUM, ANTHROPIC_MAX_TOOL_CALLS, ANTHROPIC_MAX_FIELD);
    st->open = OPEN_NONE;
    st->last_call = -1;
    return 0;
}

static void anthropic_render_deinit(void *state)
{
    release(state);
}

static const char *const stop_reasons[] = {
    [SB_FINISH_STOP] = "end_turn",
    [SB_FINISH_LENGTH] = "max_tokens",
    [SB_FINISH_TOOL_CALLS] = "tool_use",
    [SB_FINISH_CONTENT_FILTER] = "refusal",
};

/* "stop_reason":..,"stop_sequence":.. for a FINISH event. */
static void put_stop(struct sb__writer *w, const struct anthropic_render *st,
                     const struct sb_event *ev)
{
    size_t r = (size_t)ev->finish.reason;
    const char *reason =
        r < SB_ARRAY_LEN(stop_reasons) && stop_reasons[r] ? stop_reasons[r] : "end_turn";
    bool matched = ev->finish.reason == SB_FINISH_STOP && ev->finish.stop_sequence.len > 0;

    if (matched)
        reason = "stop_sequence";
    else if (ev->finish.reason == SB_FINISH_STOP && st->any_call)
        reason = "tool_use";
    sb__put(w, "\"stop_reason\":\"");
    sb__put(w, reason);
    sb__put(w, "\",\"stop_sequence\":");
    if (matched)
        sb__put_json(w, ev->finish.stop_sequence);
    else
        sb__put(w, "null");
}

static void put_usage(struct sb__writer *w, const struct sb_usage *u)
{
    int64_t input = u->prompt_tokens - u->cached_prompt_tokens - u->cache_write_tokens;

    sb__put(w, "{\"input_tokens\":");
    sb__put_i64(w, input > 0 ? input : 0);
    sb__put(w, ",\"cache_creation_input_tokens\":");
    sb__put_i64(w, u->cache_write_tokens);
    sb__put(w, ",\"cache_read_input_tokens\":");
    sb__put_i64(w, u->cached_prompt_tokens);
    sb__put(w, ",\"output_tokens\":");
    sb__put_i64(w, u->completion_tokens);
    sb__put(w, "}");
}

/* "id":..,"type":"message","role":"assistant","model":.. — the head of a message object. */
static void put_message_head(struct sb__writer *w, const struct anthropic_render *st)
{
    sb__put(w, "{\"id\":\"");
    sb__put(w, st->id); /* base-62: nothing to escape */
    sb__put(w, "\",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    sb__put_json(w, st->model_name);
}

/* A tool call's id, or one made up for a backend that gave none. */
static struct sb_str call_id(struct sb_str id, char *gen, size_t gen_size)
{
    if (id.len)
        return id;
    sb_random_id(gen, gen_size, "toolu_");
    return sb_str_c(gen);
}

/* ---- streamed responses -------------------------------------------------------------------- */

/* "event: NAME\ndata: " — the caller writes one JSON object and event_close. */
static void event_open(struct sb__writer *w, const char *name)
{
    sb__put(w, "event: ");
    sb__put(w, name);
    sb__put(w, "\ndata: ");
}

static void event_close(struct sb__writer *w)
{
    sb__put(w, "\n\n");
}

static void stream_start(struct sb__writer *w, struct anthropic_render *st)
{
    event_open(w, "message_start");
    sb__put(w, "{\"type\":\"message_start\",\"message\":");
    put_message_head(w, st);
    sb__put(w,
            ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":"
            "{\"input_tokens\":0,\"cache_creation_input_tokens\":0,\"cache_read_input_tokens\":0,"
            "\"output_tokens\":0}}}");
    event_close(w);
}

static void block_close(struct sb__writer *w, struct anthropic_render *st)
{
    if (st->open == OPEN_NONE)
        return;
    event_open(w, "content_block_stop");
    sb__put(w, "{\"type\":\"content_block_stop\",\"index\":");
    sb__put_i64(w, st->block_index);
    sb__put(w, "}");
    event_close(w);
    st->open = OPEN_NONE;
    st->block_index++;
}

static void block_start_head(struct sb__writer *w, const struct anthropic_render *st)
{
    event_open(w, "content_block_start");
    sb__put(w, "{\"type\":\"content_block_start\",\"index\":");
    sb__put_i64(w, st->block_index);
    sb__put(w, ",\"content_block\":");
}

static void delta_head(struct sb__writer *w, const struct anthropic_render *st, const char *type)
{
    event_open(w, "content_block_delta");
    sb__put(w, "{\"type\":\"content_block_delta\",\"index\":");
    sb__put_i64(w, st->block_index);
    sb__put(w, ",\"delta\":{\"type\":\"");
    sb__put(w, type);
    sb__put(w, "\",");
}

static void stream_text(struct sb__writer *w, struct anthropic_render *st, struct sb_str text)
{
    if (text.len == 0)
        return;
    if (st->open != OPEN_TEXT) {
        block_close(w, st);
        block_start_head(w, st);
        sb__put(w, "{\"type\":\"text\",\"text\":\"\"}}");
        event_close(w);
        st->open = OPEN_TEXT;
    }
    delta_head(w, st, "text_delta");
    sb__put(w, "\"text\":");
    sb__put_json(w, text);
    sb__put(w, "}}");
    event_close(w);
}

static void stream_tool_call(struct sb__writer *w, struct anthropic_render *st,
                             const struct sb_event *ev)
{
    int32_t index = ev->tool_call.index;
    char gen[40];

    if (index < 0 || index >= ANTHROPIC_MAX_TOOL_CALLS) {
        w->rc = SB_ETOOBIG;
        return;
    }
    if (!(st->open == OPEN_TOOL && st->open_call == index)) {
        /* A call whose block is closed cannot be continued: see the file comment. */
        if (index <= st->last_call) {
            w->rc = SB_EINVAL;
            return;
        }
        block_close(w, st);
        block_start_head(w, st);
        sb__put(w, "{\"type\":\"tool_use\",\"id\":");
        sb__put_json(w, call_id(ev->tool_call.id, gen, sizeof(gen)));
        sb__put(w, ",\"name\":");
        sb__put_json(w, ev->tool_call.name);
        sb__put(w, ",\"input\":{}}}");
        event_close(w);
        st->open = OPEN_TOOL;
        st->open_call = index;
        st->last_call = index;
        st->any_call = true;
    }
    if (ev->tool_call.arguments.len == 0)
        return;
    delta_head(w, st, "input_json_delta");
    sb__put(w, "\"partial_json\":");
    sb__put_json(w, ev->tool_call.arguments);
    sb__put(w, "}}");
    event_close(w);
}

static void stream_finish(struct sb__writer *w, struct anthropic_render *st,
                          const struct sb_event *ev)
{
    block_close(w, st);
    event_open(w, "message_delta");
    sb__put(w, "{\"type\":\"message_delta\",\"delta\":{");
    put_stop(w, st, ev);
    sb__put(w, "},\"usage\":");
    put_usage(w, &st->usage);
    sb__put(w, "}");
    event_close(w);
    event_open(w, "message_stop");
    sb__put(w, "{\"type\":\"message_stop\"}");
    event_close(w);
}

/* An error after the stream began: Anthropic's error event, which SDKs raise. No message_stop
 * follows, so the cut-short output is never taken as complete. */
static void stream_error(struct sb__writer *w, const struct sb_event *ev)
{
    struct sb_api_error err;

    sb_api_error_from_event(ev, &err);
    event_open(w, "error");
    put_error(w, &err);
    event_close(w);
}

static int render_stream(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct anthropic_render *st = state;
    switch (ev->type) {
    case SB_EV_START: stream_start(w, st); break;
    case SB_EV_TEXT: stream_text(w, st, ev->text.text); break;
    case SB_EV_TOOL_CALL: stream_tool_call(w, st, ev); break;
    case SB_EV_USAGE: st->usage = ev->usage; break;
    case SB_EV_FINISH: stream_finish(w, st, ev); break;
    case SB_EV_ERROR: stream_error(w, ev); break;
    case SB_EV_EMBEDDING: return SB_EINVAL;
    }
    return 0;
}

/* ---- plain responses ----------------------------------------------------------------------- */

static int hold_tool_call(struct anthropic_render *st, const struct sb_event *ev)
{
    int rc = sb__accum_tool_call(&st->acc, ev);

    if (rc == 0)
        st->any_call = true;
    return rc;
}

static void plain_finish(struct sb__writer *w, struct anthropic_render *st,
                         const struct sb_event *ev)
{
    bool first = true;
    char gen[40];

    put_message_head(w, st);
    sb__put(w, ",\"content\":[");
    /* An empty text block is left out: Anthropic refuses one when a client sends the turn back. */
    if (st->acc.text.len) {
        sb__put(w, "{\"type\":\"text\",\"text\":");
        sb__put_json(w, sb_buf_view(&st->acc.text));
        sb__put(w, "}");
        first = false;
    }
    for (size_t i = 0; i < st->acc.n_calls; i++) {
        const struct sb__tool_acc *c = &st->acc.calls[i];
        if (!c->started)
            continue;
        sb__put(w, first ? "{\"type\":\"tool_use\",\"id\":" : ",{\"type\":\"tool_use\",\"id\":");
        first = false;
        sb__put_json(w, call_id(sb_buf_view(&c->id), gen, sizeof(gen)));
        sb__put(w, ",\"name\":");
        sb__put_json(w, sb_buf_view(&c->name));
        sb__put(w, ",\"input\":");
        sb__put_tool_args(w, sb_buf_view(&c->args));
        sb__put(w, "}");
    }
    sb__put(w, "],");
    put_stop(w, st, ev);
    sb__put(w, ",\"usage\":");
    put_usage(w, &st->usage);
    sb__put(w, "}");
}

static int render_plain(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct anthropic_render *st = state;
    int rc = 0;

    switch (ev->type) {
    case SB_EV_START: break;
    case SB_EV_TEXT: rc = sb__accum_text(&st->acc, ev->text.text); break;
    case SB_EV_TOOL_CALL: rc = hold_tool_call(st, ev); break;
    case SB_EV_USAGE: st->usage = ev->usage; break;
    case SB_EV_FINISH: plain_finish(w, st, ev); break;
    case SB_EV_ERROR: /* the HTTP layer answers these with write_error; see api.h */
    case SB_EV_EMBEDDING: rc = SB_ESTATE; break;
    }
    return rc;
}

static int anthropic_render_begin(void *state, const struct sb_event *ev)
{
    struct anthropic_render *st = state;

    if (ev->type == SB_EV_START) {
        /* The backend's name for the model when it gives a usable one, else the caller's. */
        if (sb_buf_append_str(&st->model, ev->start.model) != 0)
            sb_buf_reset(&st->model);
        st->model_name = st->model.len ? sb_buf_view(&st->model) : st->req->model;
    }
    return 0;
}

static const struct sb__render_ops anthropic_ops = {
    .begin = anthropic_render_begin,
    .stream = render_stream,
    .plain = render_plain,
    .release = anthropic_render_deinit,
};

static int anthropic_render_event(void *state, const struct sb_event *ev, struct sb_buf *out)
{
    struct anthropic_render *st = state;

    return sb__render_event(&anthropic_ops, st, &st->phase, st->req->stream, ev, out);
}

const struct sb_codec sb_anthropic_codec = {
    .api = SB_API_ANTHROPIC,
    .name = "anthropic",
    .stream_content_type = "text/event-stream",
    .parse = anthropic_parse,
    .write_error = anthropic_write_error,
    .render_size = sizeof(struct anthropic_render),
    .render_init = anthropic_render_init,
    .render_event = anthropic_render_event,
    .render_deinit = anthropic_render_deinit,
    .write_models = anthropic_write_models,
};
