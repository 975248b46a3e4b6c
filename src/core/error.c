/* Error codes and their descriptions. */
#include "core/core.h"

/* Indexed by -code; a table so that a new code is one line. */
static const char *const messages[] = {
    [0] = "success",
    [-SB_ENOMEM] = "out of memory",
    [-SB_EINVAL] = "invalid argument or input",
    [-SB_ETOOBIG] = "limit exceeded",
    [-SB_ENOTFOUND] = "not found",
    [-SB_EIO] = "input/output error",
    [-SB_ESTATE] = "wrong state for this operation",
    [-SB_ECANCELED] = "cancelled",
    [-SB_EBACKEND] = "backend failure",
    [-SB_EFULL] = "queue full",
    [-SB_ECONTEXT] = "prompt exceeds the context window",
    [-SB_EUNSUPPORTED] = "not supported",
    [-SB_ETIMEOUT] = "timed out",
    [-SB_ECONNECT] = "connection failed",
    [-SB_EUPSTREAM] = "upstream error",
    [-SB_EDENIED] = "denied by policy",
};

const char *sb_strerror(int err)
{
    if (err > 0 || (size_t)-err >= SB_ARRAY_LEN(messages) || messages[-err] == NULL)
        return "unknown error";
    return messages[-err];
}
