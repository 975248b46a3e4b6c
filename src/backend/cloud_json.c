/* Writing the cloud backends' JSON request bodies straight into a bounded buffer: strings, sampling
 * values, a writer that remembers its first failure (openai, ollama), and the turns of content
 * blocks of a Messages-shaped body (anthropic, bedrock). */
#include "backend/cloud.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

/* -----------------------------------------------------------------------------------------------
 * Values
 * --------------------------------------------------------------------------------------------- */

int sb__cloud_json_string(struct sb_buf *b, struct sb_str s)
{
    int rc = sb_buf_append_char(b, '"');
    if (rc == SB_OK)
        rc = sb_buf_append_json_escaped(b, s);
    if (rc == SB_OK)
        rc = sb_buf_append_char(b, '"');
    return rc;
}

int sb__cloud_json_float(struct sb_buf *b, float v)
{
    if (!isfinite(v))
        return SB_EINVAL;
    return sb_buf_printf(b, "%g", (double)v);
}

bool sb__cloud_json_is_object(struct sb_str s)
{
    if (s.len == 0)
        return false;
    json_t *j = json_loadb(s.p, s.len, 0, NULL);
    bool ok = json_is_object(j);
    json_decref(j);
    return ok;
}

/* -----------------------------------------------------------------------------------------------
 * The writer that stops at its first failure
 * --------------------------------------------------------------------------------------------- */

void sb__jw_raw(struct sb__jw *w, const char *s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_c(w->b, s);
}

void sb__jw_raw_str(struct sb__jw *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb_buf_append_str(w->b, s);
}

void sb__jw_str(struct sb__jw *w, struct sb_str s)
{
    if (w->rc == 0)
        w->rc = sb__cloud_json_string(w->b, s);
}

void sb__jw_key(struct sb__jw *w, const char *k)
{
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, ",\"%s\":", k);
}

void sb__jw_num(struct sb__jw *w, float v)
{
    if (w->rc == 0)
        w->rc = sb__cloud_json_float(w->b, v);
}

void sb__jw_int(struct sb__jw *w, int64_t v)
{
    if (w->rc == 0)
        w->rc = sb_buf_printf(w->b, "%lld", (long long)v);
}

/* -----------------------------------------------------------------------------------------------
 * Turns of content blocks
 * --------------------------------------------------------------------------------------------- */

int sb__turns_block(struct sb__turns *t, const char *role)
{
    int rc = SB_OK;
    if (t->role == NULL || strcmp(t->role, role) != 0) {
        if (t->role)
            rc = sb_buf_append_c(t->b, "]}");
        if (rc == SB_OK)
            rc = sb_buf_printf(t->b, "%s{\"role\":\"%s\",\"content\":[", t->n ? "," : "", role);
        t->role = role;
        t->first_block = true;
        t->n++;
    }
    if (rc == SB_OK && !t->first_block)
        rc = sb_buf_append_char(t->b, ',');
    t->first_block = false;
    return rc;
}

int sb__turns_parts(struct sb__turns *t, struct sb_buf *b, const char *role,
                    const struct sb_message *m, const struct sb__turn_blocks *blocks, size_t *n,
                    char *err, size_t err_size)
{
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < m->n_parts; i++) {
        const struct sb_part *part = &m->parts[i];
        if (part->type == SB_PART_TEXT && part->text.len == 0)
            continue;
        if (t)
            rc = sb__turns_block(t, role);
        else if (*n > 0)
            rc = sb_buf_append_char(b, ',');
        if (rc != SB_OK)
            break;
        rc = part->type == SB_PART_TEXT ? blocks->text(b, part->text)
                                        : blocks->image(b, part, err, err_size);
        (*n)++;
    }
    return rc;
}

static int tool_use(struct sb__turns *t, const struct sb_tool_call *tc, size_t msg_index,
                    const struct sb__turn_blocks *blocks, char *err, size_t err_size)
{
    struct sb_str args = tc->arguments;

    if (tc->id.len == 0 || tc->name.len == 0)
        return sb__cloud_errf(err, err_size, SB_EINVAL,
                              "messages[%zu]: a tool call needs an id and a name", msg_index);
    if (args.len == 0)
        args = SB_STR_LIT("{}");
    else if (!sb__cloud_json_is_object(args))
        return sb__cloud_errf(
            err, err_size, SB_EINVAL,
            "messages[%zu]: the arguments of tool call %.*s are not a JSON object", msg_index,
            (int)SB_MIN(tc->id.len, 64), tc->id.p);
    int rc = sb__turns_block(t, "assistant");
    if (rc == SB_OK)
        rc = blocks->tool_use(t->b, tc, args);
    return rc;
}

/* A tool message: one tool result block in a user turn. */
static int tool_result(struct sb__turns *t, const struct sb_message *m, size_t msg_index,
                       const struct sb__turn_blocks *blocks, char *err, size_t err_size)
{
    if (m->tool_call_id.len == 0)
        return sb__cloud_errf(err, err_size, SB_EINVAL,
                              "messages[%zu]: a tool message needs tool_call_id", msg_index);
    int rc = sb__turns_block(t, "user");
    if (rc == SB_OK)
        rc = blocks->tool_result(t->b, m, blocks, err, err_size);
    return rc;
}

int sb__turns_chat(struct sb__turns *t, const struct sb_request *req,
                   const struct sb__turn_blocks *blocks, char *err, size_t err_size)
{
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < req->n_messages; i++) {
        const struct sb_message *m = &req->messages[i];
        size_t n = 0;
        switch (m->role) {
        case SB_ROLE_SYSTEM: break; /* the body's own field */
        case SB_ROLE_USER:
            rc = sb__turns_parts(t, t->b, "user", m, blocks, &n, err, err_size);
            break;
        case SB_ROLE_TOOL: rc = tool_result(t, m, i, blocks, err, err_size); break;
        case SB_ROLE_ASSISTANT:
            rc = sb__turns_parts(t, t->b, "assistant", m, blocks, &n, err, err_size);
            for (size_t k = 0; rc == SB_OK && k < m->n_tool_calls; k++)
                rc = tool_use(t, &m->tool_calls[k], i, blocks, err, err_size);
            break;
        }
    }
    return rc;
}

int sb__turns_end(struct sb__turns *t, char *err, size_t err_size)
{
    if (t->n == 0)
        return sb__cloud_errf(err, err_size, SB_EINVAL,
                              "the request has no user or assistant content");
    return sb_buf_append_c(t->b, "]}]");
}
