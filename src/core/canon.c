/* Helpers over the canonical request and event types. */
#include <string.h>

#include "core/canon.h"

void sb_request_init(struct sb_request *req)
{
    memset(req, 0, sizeof(*req));
    req->kind = SB_REQ_CHAT;
    req->sampling.temperature = SB_UNSET_F;
    req->sampling.top_p = SB_UNSET_F;
    req->sampling.min_p = SB_UNSET_F;
    req->sampling.top_k = SB_UNSET_I;
    req->parallel_tool_calls = true;
}

const char *sb_role_name(enum sb_role role)
{
    static const char *const names[] = {
        [SB_ROLE_SYSTEM] = "system",
        [SB_ROLE_USER] = "user",
        [SB_ROLE_ASSISTANT] = "assistant",
        [SB_ROLE_TOOL] = "tool",
    };
    return (size_t)role < SB_ARRAY_LEN(names) ? names[role] : "unknown";
}

struct sb_str sb_request_label(const struct sb_request *req, struct sb_str key)
{
    for (size_t i = 0; i < req->n_labels; i++) {
        if (sb_str_eq(req->labels[i].key, key))
            return req->labels[i].value;
    }
    return SB_STR_NULL;
}

const char *sb_finish_reason_name(enum sb_finish_reason r)
{
    static const char *const names[] = {
        [SB_FINISH_STOP] = "stop",
        [SB_FINISH_LENGTH] = "length",
        [SB_FINISH_TOOL_CALLS] = "tool_calls",
        [SB_FINISH_CONTENT_FILTER] = "content_filter",
    };
    return (size_t)r < SB_ARRAY_LEN(names) ? names[r] : "stop";
}

const char *sb_event_type_name(enum sb_event_type t)
{
    static const char *const names[] = {
        [SB_EV_START] = "start",         [SB_EV_TEXT] = "text",   [SB_EV_TOOL_CALL] = "tool_call",
        [SB_EV_EMBEDDING] = "embedding", [SB_EV_USAGE] = "usage", [SB_EV_FINISH] = "finish",
        [SB_EV_ERROR] = "error",
    };
    return (size_t)t < SB_ARRAY_LEN(names) ? names[t] : "unknown";
}
