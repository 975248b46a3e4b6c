/* The OpenAI wire codec: /v1/chat/completions, /v1/completions and /v1/embeddings bodies become
 * canonical requests, and canonical events become chat.completion / text_completion objects or
 * their SSE chunks, and embedding lists. */
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "api/json.h"
#include "api/render.h"

/* Output of a non-streamed response is held until FINISH; past this the response fails instead of
 * arriving cut short. */
#define OPENAI_MAX_ACCUM ((size_t)64 << 20)
/* Parallel tool calls in one response; far above what models emit, low enough to bound state. */
#define OPENAI_MAX_TOOL_CALLS 128
/* A tool call's id or name, as a backend produced it. */
#define OPENAI_MAX_CALL_FIELD 256
/* The fixed part of every chunk (id, object, created, model). */
#define OPENAI_MAX_HEAD 4096
/* OpenAI's own limits on metadata, kept so a request valid here is valid there and labels stay
 * small. */
#define OPENAI_MAX_METADATA       16
#define OPENAI_MAX_METADATA_KEY   64
#define OPENAI_MAX_METADATA_VALUE 512
/* OpenAI's pattern for function names, ^[a-zA-Z0-9_-]{1,64}$: chat templates and upstreams rely on
 * it. */
#define OPENAI_MAX_TOOL_NAME 64
/* OpenAI's own limit on inputs per embeddings request. */
#define OPENAI_MAX_EMBED_INPUTS 2048

/* =============================================================================================
 * Parsing
 * =========================================================================================== */

/* Sampling and length fields, read in this order: max_completion_tokens after max_tokens so that it
 * wins when both are given (it is OpenAI's newer name for the same limit). */
static const struct sb__json_num request_numbers[] = {
    {"temperature", SB__JSON_F32, 0, 2, 0, offsetof(struct sb_request, sampling.temperature),
     SB__JSON_NO_FLAG},
    {"top_p", SB__JSON_F32, 0, 1, SB__JSON_MIN_EXCLUSIVE,
     offsetof(struct sb_request, sampling.top_p), SB__JSON_NO_FLAG},
    /* Not OpenAI's, but llama.cpp, vLLM and Ollama clients send it through OpenAI SDKs. */
    {"top_k", SB__JSON_I32, 0, INT32_MAX, 0, offsetof(struct sb_request, sampling.top_k),
     SB__JSON_NO_FLAG},
    {"min_p", SB__JSON_F32, 0, 1, 0, offsetof(struct sb_request, sampling.min_p), SB__JSON_NO_FLAG},
    {"presence_penalty", SB__JSON_F32, -2, 2, 0,
     offsetof(struct sb_request, sampling.presence_penalty), SB__JSON_NO_FLAG},
    {"frequency_penalty", SB__JSON_F32, -2, 2, 0,
     offsetof(struct sb_request, sampling.frequency_penalty), SB__JSON_NO_FLAG},
    /* Multiplicative (llama.cpp/Ollama): 1 is none, 0 would mean "unset" in the canonical request.
     */
    {"repeat_penalty", SB__JSON_F32, 0, 10, SB__JSON_MIN_EXCLUSIVE,
     offsetof(struct sb_request, sampling.repeat_penalty), SB__JSON_NO_FLAG},
    /* Any 64-bit integer; negative seeds wrap, as the backends' unsigned seeds would. */
    {"seed", SB__JSON_U64, (double)INT64_MIN, (double)INT64_MAX, 0,
     offsetof(struct sb_request, sampling.seed), offsetof(struct sb_request, sampling.has_seed)},
    {"max_tokens", SB__JSON_I64, 1, INT32_MAX, 0, offsetof(struct sb_request, max_tokens),
     SB__JSON_NO_FLAG},
    {"max_completion_tokens", SB__JSON_I64, 1, INT32_MAX, 0,
     offsetof(struct sb_request, max_tokens), SB__JSON_NO_FLAG},
};

static const struct sb__json_enum role_names[] = {
    {"system", SB_ROLE_SYSTEM}, {"developer", SB_ROLE_SYSTEM}, /* OpenAI's newer name for system
                                                                  instructions */
    {"user", SB_ROLE_USER},     {"assistant", SB_ROLE_ASSISTANT}, {"tool", SB_ROLE_TOOL},
};

#define ROLE_BIT(r) (1u << (r))

/* A content part type: which roles may send it and how it is read into a canonical part. */
struct part_type {
    const char *name;
    unsigned roles; /* ROLE_BIT()s */
    int (*read)(struct sb__json *j, const json_t *obj, struct sb_part *out);
};

static int read_text_part(struct sb__json *j, const json_t *obj, struct sb_part *out)
{
    out->type = SB_PART_TEXT;
    return sb__json_string(j, obj, "text", true, &out->text);
}

/* A refusal the assistant gave earlier in the conversation is, to a model, just its text. */
static int read_refusal_part(struct sb__json *j, const json_t *obj, struct sb_part *out)
{
    out->type = SB_PART_TEXT;
    return sb__json_string(j, obj, "refusal", true, &out->text);
}

/* Splits "data:image/png;base64,AAAA" into media_type and data, so that backends needing raw
 * base64 (Anthropic, llama.cpp's mtmd) do not each parse URLs; anything else stays a url. */
static void split_data_url(struct sb_part *p)
{
    static const struct sb_str scheme = SB_STR_LIT("data:");
    static const struct sb_str b64 = SB_STR_LIT(";base64");
    struct sb_str meta;
    ptrdiff_t comma, semi;

    if (!sb_str_starts_with(p->url, scheme))
        return;
    comma = sb_str_find(p->url, SB_STR_LIT(","));
    if (comma < 0)
        return;
    meta = (struct sb_str){p->url.p + scheme.len, (size_t)comma - scheme.len};
    if (meta.len < b64.len ||
        !sb_str_eq((struct sb_str){meta.p + meta.len - b64.len, b64.len}, b64))
        return;
    semi = sb_str_find(meta, SB_STR_LIT(";"));
    p->media_type = (struct sb_str){meta.p, (size_t)semi};
    p->data = (struct sb_str){p->url.p + comma + 1, p->url.len - (size_t)comma - 1};
    p->url = SB_STR_NULL;
}

static int read_image_part(struct sb__json *j, const json_t *obj, struct sb_part *out)
{
    json_t *img = sb__json_get(obj, "image_url");
    size_t mark = sb__json_push_key(j, "image_url");
    int rc;

    out->type = SB_PART_IMAGE;
    if (!img)
        rc = sb__json_fail_missing(j);
    else if (json_is_string(img)) /* an early, still common shorthand */
        rc = sb__json_string_value(j, img, &out->url);
    else if (json_is_object(img))
        rc = sb__json_string(j, img, "url", true, &out->url);
    else
        rc = sb__json_fail_type(j, img, "an object");
    sb__json_pop(j, mark);
    if (rc == 0)
        split_data_url(out);
    return rc;
}

static const struct part_type part_types[] = {
    {"text",
     ROLE_BIT(SB_ROLE_SYSTEM) | ROLE_BIT(SB_ROLE_USER) | ROLE_BIT(SB_ROLE_ASSISTANT) |
         ROLE_BIT(SB_ROLE_TOOL),
     read_text_part},
    {"image_url", ROLE_BIT(SB_ROLE_USER), read_image_part},
    {"refusal", ROLE_BIT(SB_ROLE_ASSISTANT), read_refusal_part},
};

/* The same names as an enum table, for sb__json_enum's error listing. */
static const struct sb__json_enum part_type_names[] = {
    {"text", 0},
    {"image_url", 1},
    {"refusal", 2},
};

static int parse_part(struct sb__json *j, const json_t *v, enum sb_role role, struct sb_part *out)
{
    size_t mark;
    int t = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_enum(j, v, "type", true, part_type_names, SB_ARRAY_LEN(part_type_names), &t);
    if (rc)
        return rc;
    if (!(part_types[t].roles & ROLE_BIT(role))) {
        mark = sb__json_push_key(j, "type");
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid value for '%s': content parts of type '%s' are not allowed in "
                           "%s messages.",
                           j->path, part_types[t].name, sb_role_name(role));
        sb__json_pop(j, mark);
        return rc;
    }
    return part_types[t].read(j, v, out);
}

/* content: a string (one text part), an array of parts, or null/absent for an assistant turn that
 * only calls tools. */
static int parse_content(struct sb__json *j, const json_t *msg, struct sb_message *m)
{
    json_t *c = sb__json_get(msg, "content");
    size_t mark = sb__json_push_key(j, "content");
    int rc = 0;

    if (!c) {
        if (m->role != SB_ROLE_ASSISTANT)
            rc = sb__json_fail_missing(j);
    } else if (json_is_string(c)) {
        m->parts = sb__json_alloc_array(j, 1, sizeof(*m->parts));
        if (!m->parts) {
            rc = sb__json_fail_nomem(j);
            goto out;
        }
        m->n_parts = 1;
        m->parts[0].type = SB_PART_TEXT;
        rc = sb__json_string_value(j, c, &m->parts[0].text);
    } else if (json_is_array(c)) {
        size_t n = json_array_size(c);
        if (n == 0) {
            rc = sb__json_fail(j, "empty_array",
                               "Invalid '%s': empty array. Expected an array with minimum length "
                               "1, but got an empty array instead.",
                               j->path);
            goto out;
        }
        m->parts = sb__json_alloc_array(j, n, sizeof(*m->parts));
        if (!m->parts) {
            rc = sb__json_fail_nomem(j);
            goto out;
        }
        m->n_parts = n;
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t im = sb__json_push_index(j, i);
            rc = parse_part(j, json_array_get(c, i), m->role, &m->parts[i]);
            sb__json_pop(j, im);
        }
    } else {
        rc = sb__json_fail_type(j, c, "a string or an array of content parts");
    }
out:
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum function_type[] = {{"function", 0}};

static int parse_tool_call(struct sb__json *j, const json_t *v, struct sb_tool_call *out)
{
    json_t *fn = NULL;
    size_t mark;
    int type = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_string(j, v, "id", true, &out->id);
    if (rc == 0)
        rc = sb__json_enum(j, v, "type", false, function_type, 1, &type);
    if (rc == 0)
        rc = sb__json_object(j, v, "function", true, &fn);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "function");
    rc = sb__json_string(j, fn, "name", true, &out->name);
    if (rc == 0)
        rc = sb__json_string(j, fn, "arguments", true, &out->arguments);
    sb__json_pop(j, mark);
    return rc;
}

static int parse_message(struct sb__json *j, const json_t *v, struct sb_message *m)
{
    json_t *calls = NULL;
    int role = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    rc = sb__json_enum(j, v, "role", true, role_names, SB_ARRAY_LEN(role_names), &role);
    if (rc)
        return rc;
    m->role = (enum sb_role)role;
    rc = parse_content(j, v, m);
    if (rc == 0)
        rc = sb__json_string(j, v, "name", false, &m->name);
    if (rc == 0 && m->role == SB_ROLE_TOOL)
        rc = sb__json_string(j, v, "tool_call_id", true, &m->tool_call_id);
    if (rc == 0 && m->role == SB_ROLE_ASSISTANT)
        rc = sb__json_array(j, v, "tool_calls", false, 0, &calls);
    if (rc || !calls || json_array_size(calls) == 0)
        return rc;

    size_t n = json_array_size(calls);
    size_t mark = sb__json_push_key(j, "tool_calls");
    m->tool_calls = sb__json_alloc_array(j, n, sizeof(*m->tool_calls));
    if (!m->tool_calls) {
        rc = sb__json_fail_nomem(j);
    } else {
        m->n_tool_calls = n;
        for (size_t i = 0; i < n && rc == 0; i++) {
            size_t im = sb__json_push_index(j, i);
            rc = parse_tool_call(j, json_array_get(calls, i), &m->tool_calls[i]);
            sb__json_pop(j, im);
        }
    }
    sb__json_pop(j, mark);
    return rc;
}

static int parse_messages(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *arr = NULL;
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_array(j, root, "messages", true, 1, &arr);
    if (rc)
        return rc;
    n = json_array_size(arr);
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
    return rc;
}

static bool valid_tool_name(struct sb_str s)
{
    if (s.len == 0 || s.len > OPENAI_MAX_TOOL_NAME)
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

static int parse_tool(struct sb__json *j, const json_t *v, struct sb_tool *out)
{
    json_t *fn = NULL;
    json_t *params = NULL;
    size_t mark;
    int type = 0;
    int rc;

    if (!json_is_object(v))
        return sb__json_fail_type(j, v, "an object");
    /* type is required by OpenAI, but "function" is the only kind there is to mean. */
    rc = sb__json_enum(j, v, "type", false, function_type, 1, &type);
    if (rc == 0)
        rc = sb__json_object(j, v, "function", true, &fn);
    if (rc)
        return rc;
    mark = sb__json_push_key(j, "function");
    rc = sb__json_string(j, fn, "name", true, &out->name);
    if (rc == 0 && !valid_tool_name(out->name)) {
        size_t nm = sb__json_push_key(j, "name");
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid '%s': string does not match pattern. Expected a string that "
                           "matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
                           j->path);
        sb__json_pop(j, nm);
    }
    if (rc == 0)
        rc = sb__json_string(j, fn, "description", false, &out->description);
    if (rc == 0)
        rc = sb__json_object(j, fn, "parameters", false, &params);
    if (rc == 0 && params)
        rc = sb__json_dump(j, params, &out->parameters);
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum tool_choice_names[] = {
    {"auto", SB_TOOL_CHOICE_AUTO},
    {"none", SB_TOOL_CHOICE_NONE},
    {"required", SB_TOOL_CHOICE_REQUIRED},
};

static int parse_tool_choice(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "tool_choice");
    json_t *fn = NULL;
    size_t mark;
    int choice = SB_TOOL_CHOICE_AUTO;
    int type = 0;
    int rc;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, "tool_choice");
    if (json_is_string(v)) {
        rc = sb__json_enum_value(j, v, tool_choice_names, SB_ARRAY_LEN(tool_choice_names), &choice);
    } else if (json_is_object(v)) {
        choice = SB_TOOL_CHOICE_NAMED;
        rc = sb__json_enum(j, v, "type", true, function_type, 1, &type);
        if (rc == 0)
            rc = sb__json_object(j, v, "function", true, &fn);
        if (rc == 0) {
            size_t fm = sb__json_push_key(j, "function");
            rc = sb__json_string(j, fn, "name", true, &req->tool_choice_name);
            sb__json_pop(j, fm);
        }
    } else {
        rc = sb__json_fail_type(j, v, "a string or an object");
    }
    if (rc)
        goto out;
    req->tool_choice = (enum sb_tool_choice)choice;
    if ((choice == SB_TOOL_CHOICE_REQUIRED || choice == SB_TOOL_CHOICE_NAMED) &&
        req->n_tools == 0) {
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid value for 'tool_choice': 'tool_choice' requires 'tools' to "
                           "be specified.");
        goto out;
    }
    if (choice == SB_TOOL_CHOICE_NAMED) {
        bool found = false;
        for (size_t i = 0; i < req->n_tools && !found; i++)
            found = sb_str_eq(req->tools[i].name, req->tool_choice_name);
        if (!found)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid value for 'tool_choice': no function named '%.64s' is "
                               "in 'tools'.",
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
    if (rc || !arr || json_array_size(arr) == 0)
        goto choice;
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
choice:
    if (rc == 0)
        rc = parse_tool_choice(j, root, req);
    if (rc == 0)
        rc = sb__json_bool(j, root, "parallel_tool_calls", &req->parallel_tool_calls);
    return rc;
}

/* stop: a string or an array of strings; every stop sequence must be non-empty (an empty one would
 * stop before the first token). */
static int parse_stop(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "stop");
    size_t mark;
    size_t n;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, "stop");
    if (json_is_string(v)) {
        if (json_string_length(v) == 0)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid '%s': empty string. Expected a non-empty stop sequence.",
                               j->path);
        else
            rc = sb__json_string_value(j, v, &req->stop[0]);
        req->n_stop = rc == 0;
        goto out;
    }
    if (!json_is_array(v)) {
        rc = sb__json_fail_type(j, v, "a string or an array of strings");
        goto out;
    }
    n = json_array_size(v);
    if (n > SB_MAX_STOP) {
        rc = sb__json_fail(j, "array_above_max_length",
                           "Invalid '%s': array too long. Expected an array with maximum length "
                           "%d, but got an array with length %zu instead.",
                           j->path, SB_MAX_STOP, n);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        json_t *s = json_array_get(v, i);
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
out:
    sb__json_pop(j, mark);
    return rc;
}

/* n and best_of ask for several choices; Switchboard returns one, and says so rather than
 * silently returning fewer than asked. */
static int require_one(struct sb__json *j, const json_t *root, const char *key)
{
    json_t *v = sb__json_get(root, key);
    size_t mark;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, key);
    if (!json_is_integer(v))
        rc = sb__json_fail_type(j, v, "an integer");
    else if (json_integer_value(v) != 1)
        rc = sb__json_fail(j, "unsupported_value",
                           "Invalid '%s': Switchboard returns one choice per request, so '%s' "
                           "must be 1 (got %" JSON_INTEGER_FORMAT
                           "). Send separate requests for more choices.",
                           j->path, key, json_integer_value(v));
    sb__json_pop(j, mark);
    return rc;
}

/* Fails for a parameter that is given (not null) and not the one value Switchboard supports. */
static int reject_unsupported(struct sb__json *j, const json_t *root, const char *key,
                              bool allow_false, const char *what)
{
    json_t *v = sb__json_get(root, key);
    size_t mark;
    int rc = 0;

    if (!v || (allow_false && json_is_false(v)))
        return 0;
    if (json_is_string(v) && json_string_length(v) == 0)
        return 0;
    mark = sb__json_push_key(j, key);
    rc = sb__json_fail(j, "unsupported_parameter",
                       "Unsupported parameter: '%s' is not supported by Switchboard yet (%s). "
                       "Remove it from the request.",
                       j->path, what);
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum response_format_names[] = {
    {"text", 0},
    {"json_object", 1},
    /* Accepted as JSON mode: the output is one JSON value, but the schema itself is not yet
     * enforced (the canonical request has no field for it). */
    {"json_schema", 2},
};

static int parse_response_format(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *rf = NULL;
    size_t mark;
    int type = 0;
    int rc;

    rc = sb__json_object(j, root, "response_format", false, &rf);
    if (rc || !rf)
        return rc;
    mark = sb__json_push_key(j, "response_format");
    rc = sb__json_enum(j, rf, "type", true, response_format_names,
                       SB_ARRAY_LEN(response_format_names), &type);
    sb__json_pop(j, mark);
    req->json_mode = rc == 0 && type != 0;
    return rc;
}

static int parse_stream(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *opts = NULL;
    bool include_usage = false;
    size_t mark;
    int rc;

    rc = sb__json_bool(j, root, "stream", &req->stream);
    if (rc == 0)
        rc = sb__json_object(j, root, "stream_options", false, &opts);
    if (rc || !opts)
        return rc;
    mark = sb__json_push_key(j, "stream_options");
    rc = sb__json_bool(j, opts, "include_usage", &include_usage);
    sb__json_pop(j, mark);
    /* Only a stream has a separate usage chunk; a plain response always carries usage. */
    req->include_usage = req->stream && include_usage;
    return rc;
}

/* metadata: string values only, which become labels for routing and the ledger. */
static int parse_metadata(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *md = NULL;
    const char *key;
    json_t *val;
    size_t mark;
    size_t n;
    int rc;

    rc = sb__json_object(j, root, "metadata", false, &md);
    if (rc || !md || json_object_size(md) == 0)
        return rc;
    mark = sb__json_push_key(j, "metadata");
    n = json_object_size(md);
    if (n > OPENAI_MAX_METADATA) {
        rc = sb__json_fail(j, "object_above_max_properties",
                           "Invalid '%s': too many properties. Expected an object with at most %d "
                           "properties, but got %zu instead.",
                           j->path, OPENAI_MAX_METADATA, n);
        goto out;
    }
    req->labels = sb__json_alloc_array(j, n, sizeof(*req->labels));
    if (!req->labels) {
        rc = sb__json_fail_nomem(j);
        goto out;
    }
    json_object_foreach(md, key, val)
    {
        struct sb_label *l = &req->labels[req->n_labels];
        size_t km = sb__json_push_key(j, key);
        size_t klen = strlen(key);

        if (klen > OPENAI_MAX_METADATA_KEY)
            rc = sb__json_fail(j, "invalid_value",
                               "Invalid 'metadata': a key is %zu characters long; keys may be at "
                               "most %d.",
                               klen, OPENAI_MAX_METADATA_KEY);
        else if (json_is_string(val) && json_string_length(val) > OPENAI_MAX_METADATA_VALUE)
            rc = sb__json_fail(j, "string_above_max_length",
                               "Invalid '%s': string too long. Expected a string with maximum "
                               "length %d, but got a string with length %zu instead.",
                               j->path, OPENAI_MAX_METADATA_VALUE, json_string_length(val));
        else
            rc = sb__json_string_value(j, val, &l->value);
        if (rc == 0) {
            l->key.p = sb_arena_strndup(j->a, key, klen);
            l->key.len = klen;
            if (!l->key.p)
                rc = sb__json_fail_nomem(j);
        }
        sb__json_pop(j, km);
        if (rc)
            goto out;
        req->n_labels++;
    }
out:
    sb__json_pop(j, mark);
    return rc;
}

/* prompt: one string, or an array holding exactly one string (what SDKs send for a batch of one).
 */
static int parse_prompt(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "prompt");
    size_t mark = sb__json_push_key(j, "prompt");
    int rc;

    if (!v) {
        rc = sb__json_fail_missing(j);
    } else if (json_is_string(v)) {
        rc = sb__json_string_value(j, v, &req->prompt);
    } else if (!json_is_array(v)) {
        rc = sb__json_fail_type(j, v, "a string or an array of strings");
    } else if (json_array_size(v) > 0 && !json_is_string(json_array_get(v, 0))) {
        rc = sb__json_fail(j, "unsupported_value",
                           "Invalid '%s': prompts given as token ids are not supported; send the "
                           "prompt as a string.",
                           j->path);
    } else if (json_array_size(v) != 1) {
        rc = sb__json_fail(j, "unsupported_value",
                           "Invalid '%s': Switchboard takes one prompt per request, but got an "
                           "array of %zu. Send separate requests.",
                           j->path, json_array_size(v));
    } else {
        size_t im = sb__json_push_index(j, 0);
        rc = sb__json_string_value(j, json_array_get(v, 0), &req->prompt);
        sb__json_pop(j, im);
    }
    sb__json_pop(j, mark);
    return rc;
}

static int parse_chat_fields(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    int rc = parse_messages(j, root, req);

    if (rc == 0)
        rc = parse_tools(j, root, req);
    if (rc == 0)
        rc = reject_unsupported(j, root, "logprobs", true, "log probabilities");
    return rc;
}

static int parse_completion_fields(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    int rc = parse_prompt(j, root, req);

    if (rc == 0)
        rc = sb__json_bool(j, root, "echo", &req->echo);
    if (rc == 0)
        rc = reject_unsupported(j, root, "suffix", false, "insertion with a suffix");
    if (rc == 0)
        rc = require_one(j, root, "best_of");
    /* In this API logprobs is a count, and any count asks for log probabilities. */
    if (rc == 0)
        rc = reject_unsupported(j, root, "logprobs", false, "log probabilities");
    return rc;
}

/* input: one string or an array of strings. Token arrays (OpenAI's other two shapes) are valid
 * there but not here: a local model's token ids would not be the caller's tokenizer's. */
static int parse_inputs(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    json_t *v = sb__json_get(root, "input");
    size_t mark = sb__json_push_key(j, "input");
    size_t n = 0;
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
        rc = sb__json_fail(j, "invalid_value",
                           "Invalid '%s': empty array. Expected at least one input.", j->path);
        goto out;
    }
    if (n > OPENAI_MAX_EMBED_INPUTS) {
        rc = sb__json_fail(j, "array_above_max_length",
                           "Invalid '%s': array too long. Expected an array with maximum length "
                           "%d, but got an array with length %zu instead.",
                           j->path, OPENAI_MAX_EMBED_INPUTS, n);
        goto out;
    }
    req->inputs = sb__json_alloc_array(j, n, sizeof(*req->inputs));
    if (!req->inputs) {
        rc = sb__json_fail_nomem(j);
        goto out;
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        const json_t *item = json_is_string(v) ? v : json_array_get(v, i);
        size_t im = json_is_string(v) ? j->path_len : sb__json_push_index(j, i);

        if (json_is_integer(item) || json_is_array(item))
            rc = sb__json_fail(j, "unsupported_value",
                               "Invalid '%s': inputs given as token ids are not supported; send "
                               "the text as a string.",
                               j->path);
        else if (!json_is_string(item))
            rc = sb__json_fail_type(j, item, "a string");
        else if (json_string_length(item) == 0)
            rc =
                sb__json_fail(j, "invalid_value",
                              "Invalid '%s': empty string. Each input must be non-empty.", j->path);
        else
            rc = sb__json_string_value(j, item, &req->inputs[i]);
        sb__json_pop(j, im);
    }
    req->n_inputs = rc == 0 ? n : 0;
out:
    sb__json_pop(j, mark);
    return rc;
}

static const struct sb__json_enum encoding_format_names[] = {
    {"float", 0}, {"base64", 1}, /* what the official SDKs ask for by default */
};

static const struct sb__json_num embed_numbers[] = {
    {"dimensions", SB__JSON_I32, 1, INT32_MAX, 0, offsetof(struct sb_request, dimensions),
     SB__JSON_NO_FLAG},
};

/* An embeddings body: input, encoding_format, dimensions, user. Nothing streams, and the
 * generation fields have no meaning here, so none of them is read. */
static int parse_embed_fields(struct sb__json *j, const json_t *root, struct sb_request *req)
{
    int base64 = 0;
    int rc = parse_inputs(j, root, req);

    if (rc == 0)
        rc = sb__json_enum(j, root, "encoding_format", false, encoding_format_names,
                           SB_ARRAY_LEN(encoding_format_names), &base64);
    if (rc == 0)
        rc = sb__json_numbers(j, root, embed_numbers, SB_ARRAY_LEN(embed_numbers), req);
    if (rc == 0)
        rc = sb__json_string(j, root, "user", false, &req->user);
    req->embed_base64 = base64 != 0;
    req->stream = false;
    return rc;
}

static int openai_parse(enum sb_request_kind kind, struct sb_arena *a, struct sb_str body,
                        struct sb_request *req, struct sb_api_error *err)
{
    struct sb__json j;
    json_t *root = NULL;
    size_t mark;
    int rc;

    sb_request_init(req);
    req->api = SB_API_OPENAI;
    req->kind = kind;
    sb__json_init(&j, a, err);
    if (kind != SB_REQ_CHAT && kind != SB_REQ_COMPLETION && kind != SB_REQ_EMBED) {
        rc = sb_api_fail(err, 404, "invalid_request_error", NULL, NULL,
                         "This endpoint is not supported by Switchboard's OpenAI API.");
        goto fail;
    }
    rc = sb__json_load(&j, body, &root);
    if (rc)
        goto fail;

    rc = sb__json_string(&j, root, "model", true, &req->model);
    if (rc)
        goto fail;
    if (req->model.len == 0) {
        mark = sb__json_push_key(&j, "model");
        rc = sb__json_fail(&j, "invalid_value",
                           "Invalid 'model': empty string. Name a model; GET /v1/models lists "
                           "them.");
        sb__json_pop(&j, mark);
        goto fail;
    }
    if (kind == SB_REQ_EMBED) {
        rc = parse_embed_fields(&j, root, req);
        if (rc)
            goto fail;
        json_decref(root);
        return 0;
    }
    rc = kind == SB_REQ_CHAT ? parse_chat_fields(&j, root, req)
                             : parse_completion_fields(&j, root, req);
    if (rc)
        goto fail;
    rc = sb__json_numbers(&j, root, request_numbers, SB_ARRAY_LEN(request_numbers), req);
    if (rc)
        goto fail;
    rc = require_one(&j, root, "n");
    if (rc)
        goto fail;
    rc = parse_stop(&j, root, req);
    if (rc)
        goto fail;
    rc = parse_stream(&j, root, req);
    if (rc)
        goto fail;
    rc = parse_response_format(&j, root, req);
    if (rc)
        goto fail;
    rc = sb__json_string(&j, root, "user", false, &req->user);
    if (rc)
        goto fail;
    rc = parse_metadata(&j, root, req);
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

static const char *const finish_names[] = {
    [SB_FINISH_STOP] = "stop",
    [SB_FINISH_LENGTH] = "length",
    [SB_FINISH_TOOL_CALLS] = "tool_calls",
    [SB_FINISH_CONTENT_FILTER] = "content_filter",
};

static const char *finish_name(enum sb_finish_reason r)
{
    size_t i = (size_t)r;

    return i < SB_ARRAY_LEN(finish_names) && finish_names[i] ? finish_names[i] : "stop";
}

static void put_usage(struct sb__writer *w, const struct sb_usage *u)
{
    sb__put(w, "{\"prompt_tokens\":");
    sb__put_i64(w, u->prompt_tokens);
    sb__put(w, ",\"completion_tokens\":");
    sb__put_i64(w, u->completion_tokens);
    sb__put(w, ",\"total_tokens\":");
    sb__put_i64(w, u->prompt_tokens + u->completion_tokens);
    sb__put(w, ",\"prompt_tokens_details\":{\"cached_tokens\":");
    sb__put_i64(w, u->cached_prompt_tokens);
    sb__put(w, "}}");
}

static void put_error(struct sb__writer *w, const struct sb_api_error *err)
{
    sb__put(w, "{\"error\":{\"message\":");
    sb__put_json(w, sb_str_c(err->message));
    sb__put(w, ",\"type\":");
    sb__put_json(w, sb_str_c(err->type ? err->type : "server_error"));
    sb__put(w, ",\"param\":");
    if (err->param[0])
        sb__put_json(w, sb_str_c(err->param));
    else
        sb__put(w, "null");
    sb__put(w, ",\"code\":");
    if (err->code)
        sb__put_json(w, sb_str_c(err->code));
    else
        sb__put(w, "null");
    sb__put(w, "}}");
}

static int openai_write_error(const struct sb_api_error *err, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    put_error(&w, err);
    return sb__writer_finish(&w, mark);
}

static int openai_write_models(const struct sb_backend_info *models, size_t n, struct sb_buf *out)
{
    struct sb__writer w = {out, 0};
    size_t mark = out->len;

    sb__put(&w, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        sb__put(&w, i ? ",{\"id\":" : "{\"id\":");
        sb__put_json(&w, sb_str_c(models[i].name));
        sb__put(&w, ",\"object\":\"model\",\"created\":");
        sb__put_i64(&w, models[i].created);
        sb__put(&w, ",\"owned_by\":\"switchboard\"}");
    }
    sb__put(&w, "]}");
    return sb__writer_finish(&w, mark);
}

/* =============================================================================================
 * Rendering
 * =========================================================================================== */

struct openai_render {
    const struct sb_request *req;
    enum sb__phase phase;
    bool chat; /* chat.completion(.chunk) rather than text_completion */
    char id[40];
    int64_t created;
    /* {"id":..,"object":..,"created":..,"model":.. — the part every chunk repeats, built once at
     * START (the model name arrives with it). */
    struct sb_buf head;
    struct sb__accum acc; /* plain responses: text and tool calls, bounded by OPENAI_MAX_ACCUM */
    struct sb_usage usage;
    bool embed;             /* an embeddings list; head then holds the model, as a JSON string */
    struct sb_buf *vectors; /* embeddings: each input's vector as written, by index */
    size_t n_vectors;
};

static void release(struct openai_render *st)
{
    sb_buf_free(&st->head);
    sb__accum_free(&st->acc);
    for (size_t i = 0; i < st->n_vectors; i++)
        sb_buf_free(&st->vectors[i]);
    free(st->vectors);
    st->vectors = NULL;
    st->n_vectors = 0;
}

static int openai_render_init(void *state, const struct sb_request *req)
{
    struct openai_render *st = state;

    st->req = req;
    st->phase = SB__PHASE_WAIT_START;
    st->chat = req->kind == SB_REQ_CHAT;
    st->embed = req->kind == SB_REQ_EMBED;
    sb_random_id(st->id, sizeof(st->id), st->chat ? "chatcmpl-" : "cmpl-");
    st->created = sb_unix_time();
    sb_buf_init(&st->head, OPENAI_MAX_HEAD);
    sb__accum_init(&st->acc, OPENAI_MAX_ACCUM, OPENAI_MAX_TOOL_CALLS, OPENAI_MAX_CALL_FIELD);
    return 0;
}

static void openai_render_deinit(void *state)
{
    release(state);
}

static int build_head(struct openai_render *st, struct sb_str model)
{
    static const char *const objects[2][2] = {
        /* [chat][stream] */
        {"text_completion", "text_completion"},
        {"chat.completion", "chat.completion.chunk"},
    };
    struct sb__writer w = {&st->head, 0};

    if (model.len == 0)
        model = st->req->model;
    if (st->embed) {
        sb__put_json(&w, model);
        return w.rc;
    }
    sb__put(&w, "{\"id\":\"");
    sb__put(&w, st->id); /* base-62: nothing to escape */
    sb__put(&w, "\",\"object\":\"");
    sb__put(&w, objects[st->chat][st->req->stream]);
    sb__put(&w, "\",\"created\":");
    sb__put_i64(&w, st->created);
    sb__put(&w, ",\"model\":");
    sb__put_json(&w, model);
    return w.rc;
}

/* "data: " + head + ,"choices":[ — then the caller writes the choice and calls chunk_close. */
static void chunk_open(struct sb__writer *w, const struct openai_render *st)
{
    sb__put(w, "data: ");
    sb__put_str(w, sb_buf_view(&st->head));
    sb__put(w, ",\"choices\":[");
}

static void chunk_close(struct sb__writer *w, const struct openai_render *st)
{
    /* With include_usage OpenAI sends "usage":null on every chunk but the last. */
    sb__put(w, st->req->include_usage ? "],\"usage\":null}\n\n" : "]}\n\n");
}

/* A chat chunk's choice around a delta: the delta's members are written between the two. */
static void chat_choice_open(struct sb__writer *w)
{
    sb__put(w, "{\"index\":0,\"delta\":{");
}

static void chat_choice_close(struct sb__writer *w, const char *finish)
{
    sb__put(w, "},\"logprobs\":null,\"finish_reason\":");
    if (finish) {
        sb__put(w, "\"");
        sb__put(w, finish);
        sb__put(w, "\"}");
    } else {
        sb__put(w, "null}");
    }
}

/* A text_completion choice; finish is NULL until the last chunk. */
static void completion_choice(struct sb__writer *w, struct sb_str text, struct sb_str more,
                              const char *finish)
{
    sb__put(w, "{\"text\":\"");
    if (w->rc == 0)
        w->rc = sb_buf_append_json_escaped(w->b, text);
    if (w->rc == 0 && more.len)
        w->rc = sb_buf_append_json_escaped(w->b, more);
    sb__put(w, "\",\"index\":0,\"logprobs\":null,\"finish_reason\":");
    if (finish) {
        sb__put(w, "\"");
        sb__put(w, finish);
        sb__put(w, "\"}");
    } else {
        sb__put(w, "null}");
    }
}

/* ---- streamed responses -------------------------------------------------------------------- */

static void stream_start(struct sb__writer *w, struct openai_render *st)
{
    if (st->chat) {
        chunk_open(w, st);
        chat_choice_open(w);
        sb__put(w, "\"role\":\"assistant\",\"content\":\"\"");
        chat_choice_close(w, NULL);
        chunk_close(w, st);
    } else if (st->req->echo) {
        chunk_open(w, st);
        completion_choice(w, st->req->prompt, SB_STR_NULL, NULL);
        chunk_close(w, st);
    }
}

static void stream_text(struct sb__writer *w, struct openai_render *st, struct sb_str text)
{
    if (text.len == 0)
        return;
    chunk_open(w, st);
    if (st->chat) {
        chat_choice_open(w);
        sb__put(w, "\"content\":");
        sb__put_json(w, text);
        chat_choice_close(w, NULL);
    } else {
        completion_choice(w, text, SB_STR_NULL, NULL);
    }
    chunk_close(w, st);
}

static void stream_tool_call(struct sb__writer *w, struct openai_render *st,
                             const struct sb_event *ev)
{
    struct sb__tool_acc *call = NULL;
    char gen_id[40];
    struct sb_str id = ev->tool_call.id;

    if (!st->chat)
        return; /* a completion has no tool calls to show */
    if (w->rc == 0)
        w->rc = sb__accum_tool_slot(&st->acc, ev->tool_call.index, &call);
    if (w->rc)
        return;
    chunk_open(w, st);
    chat_choice_open(w);
    sb__put(w, "\"tool_calls\":[{\"index\":");
    sb__put_i64(w, ev->tool_call.index);
    if (!call->started) {
        /* Clients key the call on its id; a backend that gave none still gets one. */
        if (id.len == 0) {
            sb_random_id(gen_id, sizeof(gen_id), "call_");
            id = sb_str_c(gen_id);
        }
        sb__put(w, ",\"id\":");
        sb__put_json(w, id);
        sb__put(w, ",\"type\":\"function\",\"function\":{\"name\":");
        sb__put_json(w, ev->tool_call.name);
        sb__put(w, ",\"arguments\":");
    } else {
        sb__put(w, ",\"function\":{\"arguments\":");
    }
    sb__put_json(w, ev->tool_call.arguments);
    sb__put(w, "}}]");
    chat_choice_close(w, NULL);
    chunk_close(w, st);
    if (w->rc == 0)
        call->started = true;
}

static void stream_finish(struct sb__writer *w, struct openai_render *st, const struct sb_event *ev)
{
    const char *reason = finish_name(ev->finish.reason);

    chunk_open(w, st);
    if (st->chat) {
        chat_choice_open(w);
        chat_choice_close(w, reason);
    } else {
        completion_choice(w, SB_STR_NULL, SB_STR_NULL, reason);
    }
    chunk_close(w, st);
    if (st->req->include_usage) {
        sb__put(w, "data: ");
        sb__put_str(w, sb_buf_view(&st->head));
        sb__put(w, ",\"choices\":[],\"usage\":");
        put_usage(w, &st->usage);
        sb__put(w, "}\n\n");
    }
    sb__put(w, "data: [DONE]\n\n");
}

/* An error after the stream began: OpenAI's error object as one more event, and no [DONE], so that
 * SDKs raise instead of treating the cut-short output as complete. */
static void stream_error(struct sb__writer *w, const struct sb_event *ev)
{
    struct sb_api_error err;

    sb_api_error_from_event(ev, &err);
    sb__put(w, "data: ");
    put_error(w, &err);
    sb__put(w, "\n\n");
}

static int render_stream(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct openai_render *st = state;
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

static int hold_tool_call(struct openai_render *st, const struct sb_event *ev)
{
    if (!st->chat)
        return 0;
    return sb__accum_tool_call(&st->acc, ev);
}

static void put_tool_calls(struct sb__writer *w, struct openai_render *st)
{
    bool first = true;
    char gen_id[40];

    sb__put(w, ",\"tool_calls\":[");
    for (size_t i = 0; i < st->acc.n_calls; i++) {
        struct sb__tool_acc *c = &st->acc.calls[i];
        struct sb_str id = sb_buf_view(&c->id);
        if (!c->started)
            continue;
        if (id.len == 0) {
            sb_random_id(gen_id, sizeof(gen_id), "call_");
            id = sb_str_c(gen_id);
        }
        sb__put(w, first ? "{\"id\":" : ",{\"id\":");
        first = false;
        sb__put_json(w, id);
        sb__put(w, ",\"type\":\"function\",\"function\":{\"name\":");
        sb__put_json(w, sb_buf_view(&c->name));
        sb__put(w, ",\"arguments\":");
        sb__put_json(w, sb_buf_view(&c->args));
        sb__put(w, "}}");
    }
    sb__put(w, "]");
}

static void plain_finish(struct sb__writer *w, struct openai_render *st, const struct sb_event *ev)
{
    const char *reason = finish_name(ev->finish.reason);
    bool has_calls = false;

    for (size_t i = 0; i < st->acc.n_calls && !has_calls; i++)
        has_calls = st->acc.calls[i].started;
    sb__put_str(w, sb_buf_view(&st->head));
    sb__put(w, ",\"choices\":[");
    if (st->chat) {
        sb__put(w, "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":");
        /* OpenAI's convention: a turn that only calls tools has null content. */
        if (has_calls && st->acc.text.len == 0)
            sb__put(w, "null");
        else
            sb__put_json(w, sb_buf_view(&st->acc.text));
        sb__put(w, ",\"refusal\":null");
        if (has_calls)
            put_tool_calls(w, st);
        sb__put(w, "},\"logprobs\":null,\"finish_reason\":\"");
        sb__put(w, reason);
        sb__put(w, "\"}");
    } else {
        completion_choice(w, st->req->echo ? st->req->prompt : SB_STR_NULL,
                          sb_buf_view(&st->acc.text), reason);
    }
    sb__put(w, "],\"usage\":");
    put_usage(w, &st->usage);
    sb__put(w, "}");
}

/* ---- embeddings (never streamed) ------------------------------------------------------------ */

/* Appends the base64 of n bytes (RFC 4648, padded). */
static int append_base64(struct sb_buf *b, const unsigned char *p, size_t n)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char chunk[256];
    size_t used = 0;
    int rc = 0;

    for (size_t i = 0; i < n && rc == 0; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        chunk[used++] = digits[(v >> 18) & 63];
        chunk[used++] = digits[(v >> 12) & 63];
        chunk[used++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        chunk[used++] = i + 2 < n ? digits[v & 63] : '=';
        if (used + 4 > sizeof(chunk)) {
            rc = sb_buf_append(b, chunk, used);
            used = 0;
        }
    }
    return rc == 0 ? sb_buf_append(b, chunk, used) : rc;
}

/* A vector as OpenAI's encoding_format asks: JSON numbers (float32 written exactly), or base64 of
 * its little-endian float32 bytes, which is what SDKs decode by default. */
static int write_vector(struct sb_buf *v, const float *x, size_t dim, bool base64)
{
    int rc = 0;

    if (!base64) {
        for (size_t i = 0; i < dim && rc == 0; i++)
            /* JSON has no NaN or infinity; a model that produced one gets 0 in its place. */
            rc = sb_buf_printf(v, i ? ",%.9g" : "%.9g", isfinite(x[i]) ? (double)x[i] : 0.0);
        return rc;
    }
    if (dim > SIZE_MAX / 4)
        return SB_ETOOBIG;
    unsigned char *bytes = malloc(dim * 4 + 1);
    if (!bytes)
        return SB_ENOMEM;
    for (size_t i = 0; i < dim; i++) {
        uint32_t u;
        memcpy(&u, &x[i], sizeof(u));
        for (size_t k = 0; k < 4; k++)
            bytes[i * 4 + k] = (unsigned char)(u >> (8 * k));
    }
    rc = append_base64(v, bytes, dim * 4);
    free(bytes);
    return rc;
}

/* Holds one input's vector until FINISH; vectors may arrive in any order. */
static int hold_embedding(struct openai_render *st, const struct sb_event *ev)
{
    size_t n = st->req->n_inputs;
    int32_t index = ev->embedding.index;
    struct sb_buf *v;
    int rc;

    if (index < 0 || (size_t)index >= n)
        return SB_EINVAL;
    if (!st->vectors) {
        st->vectors = calloc(n, sizeof(*st->vectors));
        if (!st->vectors)
            return SB_ENOMEM;
        st->n_vectors = n;
        for (size_t i = 0; i < n; i++)
            sb_buf_init(&st->vectors[i], OPENAI_MAX_ACCUM);
    }
    v = &st->vectors[index];
    if (v->p) /* a second vector for the same input */
        return SB_ESTATE;
    /* An empty append allocates, so even a zero-length vector marks its input as answered. */
    rc = sb_buf_append(v, "", 0);
    if (rc == 0)
        rc = write_vector(v, ev->embedding.values, ev->embedding.dim, st->req->embed_base64);
    if (rc == 0)
        rc = sb__accum_hold(&st->acc, v->len);
    return rc;
}

static int embed_finish(struct sb__writer *w, struct openai_render *st)
{
    const char *open = st->req->embed_base64 ? "\"" : "[";
    const char *close = st->req->embed_base64 ? "\"}" : "]}";

    for (size_t i = 0; i < st->req->n_inputs; i++) {
        if (i >= st->n_vectors || !st->vectors[i].p)
            return SB_ESTATE; /* the backend left an input without its vector */
    }
    sb__put(w, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < st->n_vectors; i++) {
        sb__put(w, i ? ",{\"object\":\"embedding\",\"index\":"
                     : "{\"object\":\"embedding\",\"index\":");
        sb__put_i64(w, (int64_t)i);
        sb__put(w, ",\"embedding\":");
        sb__put(w, open);
        sb__put_str(w, sb_buf_view(&st->vectors[i]));
        sb__put(w, close);
    }
    sb__put(w, "],\"model\":");
    sb__put_str(w, sb_buf_view(&st->head));
    sb__put(w, ",\"usage\":{\"prompt_tokens\":");
    sb__put_i64(w, st->usage.prompt_tokens);
    sb__put(w, ",\"total_tokens\":");
    sb__put_i64(w, st->usage.prompt_tokens);
    sb__put(w, "}}");
    return 0;
}

static int render_plain(void *state, const struct sb_event *ev, struct sb__writer *w)
{
    struct openai_render *st = state;
    int rc = 0;

    switch (ev->type) {
    case SB_EV_START: break;
    case SB_EV_TEXT: rc = sb__accum_text(&st->acc, ev->text.text); break;
    case SB_EV_TOOL_CALL: rc = hold_tool_call(st, ev); break;
    case SB_EV_USAGE: st->usage = ev->usage; break;
    case SB_EV_FINISH:
        if (st->embed)
            rc = embed_finish(w, st);
        else
            plain_finish(w, st, ev);
        break;
    case SB_EV_EMBEDDING: rc = st->embed ? hold_embedding(st, ev) : SB_ESTATE; break;
    case SB_EV_ERROR: /* the HTTP layer answers these with write_error; see api.h */
        rc = SB_ESTATE;
        break;
    }
    return rc;
}

/* START carries the model name every chunk's head repeats. */
static int openai_render_begin(void *state, const struct sb_event *ev)
{
    struct openai_render *st = state;

    return ev->type == SB_EV_START ? build_head(st, ev->start.model) : 0;
}

static const struct sb__render_ops openai_ops = {
    .begin = openai_render_begin,
    .stream = render_stream,
    .plain = render_plain,
    .release = openai_render_deinit,
};

static int openai_render_event(void *state, const struct sb_event *ev, struct sb_buf *out)
{
    struct openai_render *st = state;

    return sb__render_event(&openai_ops, st, &st->phase, st->req->stream, ev, out);
}

const struct sb_codec sb_openai_codec = {
    .api = SB_API_OPENAI,
    .name = "openai",
    .stream_content_type = "text/event-stream",
    .parse = openai_parse,
    .write_error = openai_write_error,
    .render_size = sizeof(struct openai_render),
    .render_init = openai_render_init,
    .render_event = openai_render_event,
    .render_deinit = openai_render_deinit,
    .write_models = openai_write_models,
};
