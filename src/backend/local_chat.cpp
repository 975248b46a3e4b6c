// The C shim over llama.cpp's C++ chat module: turns a canonical request into the prompt text a
// model expects, and a model's raw output back into content and tool calls.
//
// Why common's chat module and not llama_chat_apply_template (llama.h): the C function does not run
// Jinja; it recognizes a fixed list of built-in templates by heuristics and formats only
// role/content pairs, so a GGUF with any other template (or a user's override) renders wrongly, and
// it knows nothing of tools. common/chat.h runs the GGUF's real Jinja template (common's own Jinja
// engine) with the tools in its inputs, and knows each model family's tool-call output format,
// which common_chat_parse turns back into calls. It is what llama-server uses, so a model behaves
// the same behind Switchboard as behind llama-server.
//
// Template source, in order: the config's chat_template (Jinja text), else the GGUF's
// tokenizer.chat_template (or its "tool_use" variant when tools are given), else ChatML
// (<|im_start|>role\ncontent<|im_end|>\n ... <|im_start|>assistant\n) — common's own fallback,
// the format most instruction-tuned models without a template were trained on.
//
// Every C++ exception stops here: each extern "C" function catches and returns an SB_E* code.
#include "backend/local_chat.h"

// common's Jinja headers define static helpers they do not all use; that is theirs, not ours.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#include "chat.h"
#include "log.h"
#pragma GCC diagnostic pop

#include <cstring>
#include <new>
#include <string>
#include <vector>

struct sb__chat_templates {
    common_chat_templates_ptr tmpls;
};

struct sb__chat_parser {
    common_chat_parser_params params;
    std::vector<std::string> stops;
};

struct sb__chat_message {
    common_chat_msg msg;
};

// Writes a message into a caller's fixed-size buffer, truncated and NUL-terminated.
static void set_err(char *err, size_t err_size, const std::string &msg)
{
    if (err == nullptr || err_size == 0) {
        return;
    }
    size_t n = msg.size() < err_size - 1 ? msg.size() : err_size - 1;
    memcpy(err, msg.data(), n);
    err[n] = '\0';
}

static std::string to_string(struct sb_str s)
{
    return s.len ? std::string(s.p, s.len) : std::string();
}

extern "C" void sb__chat_global_init(void)
{
    // Drop everything common would log: its parse warnings quote the model's output verbatim, and
    // we never log completions. Failures reach us as exceptions instead.
    common_log_set_verbosity_thold(-1);
}

extern "C" int sb__chat_templates_new(const struct llama_model *model, const char *override,
                                      struct sb__chat_templates **out, char *err, size_t err_size)
{
    *out = nullptr;
    try {
        auto *t = new sb__chat_templates();
        try {
            t->tmpls = common_chat_templates_init(model, override ? override : "");
        } catch (...) {
            delete t;
            throw;
        }
        *out = t;
        return SB_OK;
    } catch (const std::bad_alloc &) {
        set_err(err, err_size, "out of memory parsing the chat template");
        return SB_ENOMEM;
    } catch (const std::exception &e) {
        set_err(err, err_size, std::string("the chat template does not parse: ") + e.what());
        return SB_EINVAL;
    }
}

extern "C" void sb__chat_templates_free(struct sb__chat_templates *t)
{
    delete t;
}

extern "C" bool sb__chat_templates_explicit(const struct sb__chat_templates *t)
{
    return common_chat_templates_was_explicit(t->tmpls.get());
}

/* ----------------------------------------------------------------------------------------------
 * Request → template inputs
 * -------------------------------------------------------------------------------------------- */
static const char *const role_names[] = {
    /* [SB_ROLE_SYSTEM]    = */ "system",
    /* [SB_ROLE_USER]      = */ "user",
    /* [SB_ROLE_ASSISTANT] = */ "assistant",
    /* [SB_ROLE_TOOL]      = */ "tool",
};

// Throws std::invalid_argument with a client-facing message for input the model cannot take.
static common_chat_msg convert_message(const struct sb_message &m)
{
    common_chat_msg out;
    out.role =
        (size_t)m.role < sizeof role_names / sizeof role_names[0] ? role_names[m.role] : "user";
    for (size_t i = 0; i < m.n_parts; i++) {
        if (m.parts[i].type != SB_PART_TEXT) {
            throw std::domain_error("this model takes text only; image content is not supported");
        }
    }
    // One text part is plain content; several stay parts, so templates that render typed parts
    // see them as the client sent them.
    if (m.n_parts == 1) {
        out.content = to_string(m.parts[0].text);
    } else {
        for (size_t i = 0; i < m.n_parts; i++) {
            out.content_parts.push_back({"text", to_string(m.parts[i].text)});
        }
    }
    for (size_t i = 0; i < m.n_tool_calls; i++) {
        const struct sb_tool_call &c = m.tool_calls[i];
        std::string args = to_string(c.arguments);
        out.tool_calls.push_back({to_string(c.name), args.empty() ? "{}" : args, to_string(c.id)});
    }
    out.tool_call_id = to_string(m.tool_call_id);
    if (m.role == SB_ROLE_TOOL) {
        out.tool_name = to_string(m.name);
    }
    return out;
}

static void convert_tools(const struct sb_request &req, common_chat_templates_inputs &in)
{
    // A named tool choice becomes "required" over that one tool: common has no "named" choice.
    bool named = req.tool_choice == SB_TOOL_CHOICE_NAMED;
    for (size_t i = 0; i < req.n_tools; i++) {
        const struct sb_tool &t = req.tools[i];
        if (named && !sb_str_eq(t.name, req.tool_choice_name)) {
            continue;
        }
        std::string params = to_string(t.parameters);
        in.tools.push_back({to_string(t.name), to_string(t.description),
                            params.empty() ? "{\"type\":\"object\",\"properties\":{}}" : params});
    }
    if (named && in.tools.empty()) {
        throw std::invalid_argument("tool_choice names a tool that is not in tools");
    }
    switch (req.tool_choice) {
    case SB_TOOL_CHOICE_NONE: in.tool_choice = COMMON_CHAT_TOOL_CHOICE_NONE; break;
    case SB_TOOL_CHOICE_REQUIRED:
    case SB_TOOL_CHOICE_NAMED: in.tool_choice = COMMON_CHAT_TOOL_CHOICE_REQUIRED; break;
    case SB_TOOL_CHOICE_AUTO:
    default: in.tool_choice = COMMON_CHAT_TOOL_CHOICE_AUTO; break;
    }
    in.parallel_tool_calls = req.parallel_tool_calls;
}

extern "C" int sb__chat_render(const struct sb__chat_templates *t, const struct sb_request *req,
                               struct sb_buf *out, struct sb__chat_parser **parser, char *err,
                               size_t err_size)
{
    if (parser) {
        *parser = nullptr;
    }
    try {
        common_chat_templates_inputs in;
        in.use_jinja = true;
        in.add_generation_prompt = true;
        in.reasoning_format = COMMON_REASONING_FORMAT_NONE; // thinking stays in the content
        for (size_t i = 0; i < req->n_messages; i++) {
            in.messages.push_back(convert_message(req->messages[i]));
        }
        convert_tools(*req, in);
        common_chat_params cp = common_chat_templates_apply(t->tmpls.get(), in);
        int rc = sb_buf_append(out, cp.prompt.data(), cp.prompt.size());
        if (rc != SB_OK) {
            set_err(err, err_size, "the rendered prompt is too large");
            return rc;
        }
        if (parser) {
            auto *p = new sb__chat_parser();
            p->params = common_chat_parser_params(cp);
            p->params.reasoning_format = COMMON_REASONING_FORMAT_NONE;
            p->params.parse_tool_calls =
                !in.tools.empty() && in.tool_choice != COMMON_CHAT_TOOL_CHOICE_NONE;
            try {
                if (!cp.parser.empty()) {
                    p->params.parser.load(cp.parser);
                }
                p->stops = cp.additional_stops;
            } catch (...) {
                delete p;
                throw;
            }
            *parser = p;
        }
        return SB_OK;
    } catch (const std::bad_alloc &) {
        set_err(err, err_size, "out of memory applying the chat template");
        return SB_ENOMEM;
    } catch (const std::domain_error &e) {
        set_err(err, err_size, e.what());
        return SB_EUNSUPPORTED;
    } catch (const std::exception &e) {
        set_err(err, err_size, std::string("the chat template rejected the messages: ") + e.what());
        return SB_EINVAL;
    }
}

extern "C" void sb__chat_parser_free(struct sb__chat_parser *p)
{
    delete p;
}

extern "C" const char *sb__chat_parser_stop(const struct sb__chat_parser *p, size_t i)
{
    return i < p->stops.size() ? p->stops[i].c_str() : nullptr;
}

/* ----------------------------------------------------------------------------------------------
 * Output → content and tool calls
 * -------------------------------------------------------------------------------------------- */
extern "C" int sb__chat_parse(const struct sb__chat_parser *p, struct sb_str text,
                              struct sb__chat_message **out)
{
    *out = nullptr;
    try {
        auto *m = new sb__chat_message();
        try {
            m->msg = common_chat_parse(to_string(text), /* is_partial= */ false, p->params);
        } catch (...) {
            delete m;
            throw;
        }
        *out = m;
        return SB_OK;
    } catch (const std::bad_alloc &) {
        return SB_ENOMEM;
    } catch (const std::exception &) {
        return SB_EINVAL;
    }
}

extern "C" void sb__chat_message_free(struct sb__chat_message *m)
{
    delete m;
}

extern "C" struct sb_str sb__chat_message_content(const struct sb__chat_message *m)
{
    return {m->msg.content.data(), m->msg.content.size()};
}

extern "C" size_t sb__chat_message_n_calls(const struct sb__chat_message *m)
{
    return m->msg.tool_calls.size();
}

extern "C" struct sb_tool_call sb__chat_message_call(const struct sb__chat_message *m, size_t i)
{
    const common_chat_tool_call &c = m->msg.tool_calls[i];
    return {{c.id.data(), c.id.size()},
            {c.name.data(), c.name.size()},
            {c.arguments.data(), c.arguments.size()}};
}

/* ----------------------------------------------------------------------------------------------
 * Streaming output → deltas
 * Like llama-server, the whole output is parsed again (as a partial message) after each piece;
 * unlike its common_chat_msg_diff::compute_diffs, new parses are compared with what was *sent*,
 * so a parse that disagrees with the past (which compute_diffs would throw on) sends nothing for
 * that part instead of failing the request.
 * -------------------------------------------------------------------------------------------- */
struct sb__chat_stream {
    const sb__chat_parser *parser;
    std::string text; // the output so far
    std::string sent_content;
    struct call {
        std::string id, name, args;
    };
    std::vector<call> calls; // announced calls and the arguments sent
};

static struct sb_str view(const std::string &s)
{
    return {s.data(), s.size()};
}

// True when now extends was by at least one byte.
static bool extends(const std::string &now, const std::string &was)
{
    return now.size() > was.size() && now.compare(0, was.size(), was) == 0;
}

static void send_diffs(sb__chat_stream *s, const common_chat_msg &msg, bool final,
                       sb__chat_delta_fn fn, void *ud)
{
    if (extends(msg.content, s->sent_content)) {
        std::string delta = msg.content.substr(s->sent_content.size());
        sb__chat_delta d = {-1, view(delta), {nullptr, 0}, {nullptr, 0}, {nullptr, 0}};
        fn(ud, &d);
        s->sent_content = msg.content;
    }
    for (size_t i = 0; i < msg.tool_calls.size(); i++) {
        const common_chat_tool_call &c = msg.tool_calls[i];
        if (i < s->calls.size()) {
            sb__chat_stream::call &sent = s->calls[i];
            if (extends(c.arguments, sent.args)) {
                std::string delta = c.arguments.substr(sent.args.size());
                sb__chat_delta d = {
                    (int32_t)i, {nullptr, 0}, {nullptr, 0}, {nullptr, 0}, view(delta)};
                fn(ud, &d);
                sent.args = c.arguments;
            }
            continue;
        }
        // A partial name may still grow: wait until the arguments began (or the end).
        if (c.name.empty() || (!final && c.arguments.empty())) {
            break;
        }
        sb__chat_stream::call sent = {c.id, c.name, c.arguments};
        if (sent.id.empty()) {
            char id[40];
            sb_random_id(id, sizeof id, "call_");
            sent.id = id;
        }
        s->calls.push_back(sent);
        const sb__chat_stream::call &k = s->calls.back();
        sb__chat_delta d = {(int32_t)i, {nullptr, 0}, view(k.id), view(k.name), view(k.args)};
        fn(ud, &d);
    }
}

extern "C" int sb__chat_stream_new(const struct sb__chat_parser *p, struct sb__chat_stream **out)
{
    *out = nullptr;
    try {
        auto *s = new sb__chat_stream();
        s->parser = p;
        *out = s;
        return SB_OK;
    } catch (...) {
        return SB_ENOMEM;
    }
}

extern "C" void sb__chat_stream_free(struct sb__chat_stream *s)
{
    delete s;
}

extern "C" int sb__chat_stream_push(struct sb__chat_stream *s, struct sb_str text, bool final,
                                    sb__chat_delta_fn fn, void *ud)
{
    try {
        s->text.append(text.p ? text.p : "", text.len);
        common_chat_msg msg;
        try {
            msg = common_chat_parse(s->text, !final, s->parser->params);
        } catch (const std::bad_alloc &) {
            throw;
        } catch (const std::exception &) {
            if (!final) {
                return SB_OK; // not parseable yet: wait for more output
            }
            msg = common_chat_msg();
            msg.content = s->text; // not the format after all: plain text
        }
        send_diffs(s, msg, final, fn, ud);
        return SB_OK;
    } catch (const std::bad_alloc &) {
        return SB_ENOMEM;
    } catch (const std::exception &) {
        return SB_ENOMEM; // only allocation can fail past the parse
    }
}

extern "C" size_t sb__chat_stream_n_calls(const struct sb__chat_stream *s)
{
    return s->calls.size();
}
