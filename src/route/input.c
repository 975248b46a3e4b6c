/* What a routing decision reads from a request: the sensitivity label, what the PII scan found
 * (as a sensitivity), and the prompt's size in tokens, counted or estimated. */
#include <string.h>
#include <strings.h>

#include "route/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Sensitivity
 * ------------------------------------------------------------------------------------------- */
/* The labels a caller may send; config.c accepts the same three in `when.sensitivity`. */
static const struct {
    const char *name;
    enum sb_sensitivity value;
} sensitivity_words[] = {
    {"low", SB_SENSITIVITY_LOW},
    {"medium", SB_SENSITIVITY_MEDIUM},
    {"high", SB_SENSITIVITY_HIGH},
};

static const char *const sensitivity_names[] = {
    [SB_SENSITIVITY_UNSET] = "unset",
    [SB_SENSITIVITY_LOW] = "low",
    [SB_SENSITIVITY_MEDIUM] = "medium",
    [SB_SENSITIVITY_HIGH] = "high",
};

int sb_route_sensitivity_parse(struct sb_str text, enum sb_sensitivity *out)
{
    /* Header values may carry optional whitespace around them (RFC 9110 5.5). */
    while (text.len > 0 && (text.p[0] == ' ' || text.p[0] == '\t')) {
        text.p++;
        text.len--;
    }
    while (text.len > 0 && (text.p[text.len - 1] == ' ' || text.p[text.len - 1] == '\t'))
        text.len--;
    for (size_t i = 0; i < SB_ARRAY_LEN(sensitivity_words); i++) {
        const char *w = sensitivity_words[i].name;
        if (strlen(w) == text.len && strncasecmp(text.p, w, text.len) == 0) {
            *out = sensitivity_words[i].value;
            return 0;
        }
    }
    return SB_EINVAL;
}

const char *sb_route_sensitivity_name(enum sb_sensitivity s)
{
    return (size_t)s < SB_ARRAY_LEN(sensitivity_names) ? sensitivity_names[s] : "unknown";
}

int sb_route_request_sensitivity(const struct sb_request *req, struct sb_str header,
                                 enum sb_sensitivity *out, const char **bad)
{
    /* Where a label may come from, in the order they are read. */
    const struct {
        struct sb_str value;
        const char *what;
    } sources[] = {
        {header, "header x-switchboard-sensitivity"},
        {sb_request_label(req, SB_STR_LIT("sensitivity")), "metadata.sensitivity"},
    };
    enum sb_sensitivity level = SB_SENSITIVITY_UNSET;
    for (size_t i = 0; i < SB_ARRAY_LEN(sources); i++) {
        enum sb_sensitivity s;
        if (sources[i].value.len == 0)
            continue;
        if (sb_route_sensitivity_parse(sources[i].value, &s) != 0) {
            if (bad != NULL)
                *bad = sources[i].what;
            return SB_EINVAL;
        }
        /* Two labels that disagree: the more careful one holds. */
        level = SB_MAX(level, s);
    }
    *out = level;
    return 0;
}

/* What each built-in kind says about the data. A kind missing here (a detector added without a
 * row) reads as UNSET and is taken as high: an unknown kind must not let data out. */
static const enum sb_sensitivity builtin_sensitivity[SB_PII_N_BUILTIN] = {
    [SB_PII_EMAIL] = SB_SENSITIVITY_MEDIUM,      /* contact data */
    [SB_PII_CARD] = SB_SENSITIVITY_HIGH,         /* payment data (PCI DSS) */
    [SB_PII_SSN] = SB_SENSITIVITY_HIGH,          /* government identifier */
    [SB_PII_IBAN] = SB_SENSITIVITY_HIGH,         /* bank account */
    [SB_PII_IPV4] = SB_SENSITIVITY_MEDIUM,       /* network identifier */
    [SB_PII_IPV6] = SB_SENSITIVITY_MEDIUM,       /* network identifier */
    [SB_PII_PHONE] = SB_SENSITIVITY_MEDIUM,      /* contact data */
    [SB_PII_AWS_KEY] = SB_SENSITIVITY_HIGH,      /* a secret */
    [SB_PII_API_KEY] = SB_SENSITIVITY_HIGH,      /* a secret */
    [SB_PII_GITHUB_TOKEN] = SB_SENSITIVITY_HIGH, /* a secret */
    [SB_PII_JWT] = SB_SENSITIVITY_HIGH,          /* a bearer credential */
    [SB_PII_PRIVATE_KEY] = SB_SENSITIVITY_HIGH,  /* a secret */
};

enum sb_sensitivity sb__route_kind_sensitivity(uint32_t kind)
{
    if (kind >= SB_PII_N_BUILTIN)
        return SB_SENSITIVITY_MEDIUM; /* custom terms and patterns: what the team declared */
    enum sb_sensitivity s = builtin_sensitivity[kind];
    return s == SB_SENSITIVITY_UNSET ? SB_SENSITIVITY_HIGH : s;
}

uint64_t sb__route_high_kinds(void)
{
    uint64_t mask = 0;
    for (uint32_t k = 0; k < SB_PII_N_BUILTIN; k++)
        if (sb__route_kind_sensitivity(k) == SB_SENSITIVITY_HIGH)
            mask |= (uint64_t)1 << k;
    return mask;
}

enum sb_sensitivity sb_route_detected_sensitivity(const struct sb_pii_counts *counts)
{
    if (counts == NULL || counts->kinds == 0)
        return SB_SENSITIVITY_LOW;
    return (counts->kinds & sb__route_high_kinds()) != 0 ? SB_SENSITIVITY_HIGH
                                                         : SB_SENSITIVITY_MEDIUM;
}

/* ---------------------------------------------------------------------------------------------
 * Prompt size
 * ------------------------------------------------------------------------------------------- */
/* Bytes of text a backend receives: what sb_privacy_scan_request scans, less stop sequences and
 * the end-user id, which are not prompt. */
static size_t prompt_bytes(const struct sb_request *req)
{
    size_t n = req->prompt.len;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct sb_message *msg = &req->messages[i];
        for (size_t j = 0; j < msg->n_parts; j++)
            n += msg->parts[j].text.len;
        for (size_t j = 0; j < msg->n_tool_calls; j++)
            n += msg->tool_calls[j].name.len + msg->tool_calls[j].arguments.len;
        n += msg->tool_call_id.len + msg->name.len;
    }
    for (size_t i = 0; i < req->n_tools; i++)
        n += req->tools[i].name.len + req->tools[i].description.len + req->tools[i].parameters.len;
    for (size_t i = 0; i < req->n_inputs; i++)
        n += req->inputs[i].len;
    return n;
}

int64_t sb_route_estimate_tokens(const struct sb_request *req)
{
    return (int64_t)((prompt_bytes(req) + 3) / 4);
}

/* The most bytes a rendered prompt may take before counting gives up and estimates. */
#define RENDER_MAX ((size_t)64 << 20)

int64_t sb_route_count_prompt(const struct sb_router *r, const struct sb_request *req, bool *exact)
{
    *exact = false;
    ptrdiff_t m = sb_route_find_model(r, req->model);
    ptrdiff_t c = m >= 0 ? sb__route_tokenizer_model(r, (size_t)m, req->kind) : -1;
    struct sb_backend *b = c >= 0 ? sb__route_backend(r, (size_t)c) : NULL;
    if (b == NULL || b->ops->render_prompt == NULL || b->ops->count_tokens == NULL)
        return sb_route_estimate_tokens(req);
    struct sb_buf text;
    sb_buf_init(&text, RENDER_MAX);
    int64_t n = 0;
    int rc = b->ops->render_prompt(b, req, &text);
    if (rc == 0)
        rc = b->ops->count_tokens(b, sb_buf_view(&text), &n);
    sb_buf_free(&text);
    if (rc != 0)
        return sb_route_estimate_tokens(req);
    *exact = true;
    return n;
}

int sb_route_input_from_request(const struct sb_router *r, const struct sb_request *req,
                                struct sb_str sensitivity_header, const struct sb_pii_counts *pii,
                                int scan_rc, struct sb_route_input *in, const char **bad)
{
    *in = (struct sb_route_input){
        .model = req->model,
        .kind = req->kind,
        .pii = pii,
        .scan_failed = scan_rc<0, .max_tokens = req->max_tokens, .tools = req->n_tools> 0,
    };
    int rc = sb_route_request_sensitivity(req, sensitivity_header, &in->label, bad);
    if (rc != 0)
        return rc;
    in->prompt_tokens = sb_route_count_prompt(r, req, &in->prompt_tokens_exact);
    return 0;
}
