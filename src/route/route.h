/* Routing: for each request, decide where it may go and where it should go — the policy's rules
 * (config `policy:`), first match wins, else the built-in hybrid policy (docs/routing.md) — and
 * say why. The decision is pure computation over what the request carries (alias, key, labels,
 * detected PII, token counts); it loads nothing, sends nothing and allocates nothing.
 *
 * The HTTP layer's order for each generating request:
 *   1. sb_privacy_scan_request(...)                      → counts (rc < 0: the scan failed)
 *   2. sb_route_input_from_request(router, req, header, &counts, scan_rc, &in)
 *                                                        → SB_EINVAL: unknown sensitivity, 400
 *      then set in.key, in.team, in.budget_* (auth, budgets) when known
 *   3. sb_route_decide(router, &in, &d)                  → SB_EDENIED: 403 with d.rule, d.reason
 *                                                          SB_ENOTFOUND: 404 (unknown alias)
 *   4. when d.pseudonymize and counts.total > 0: sb_privacy_pseudonymize(...) and send the copy
 *      to the non-local members (sb_route_is_local); never send the original to one of them
 *   5. sb_route_chain_members(...) + sb_chain_new(...): the chain that serves the call
 *   6. sb_route_write_header(...) for x-switchboard-route. */
#ifndef SB_ROUTE_H
#define SB_ROUTE_H

#include "backend/backend.h"
#include "config/config.h"
#include "core/canon.h"
#include "privacy/privacy.h"
#include "resil/resil.h"

/* How sensitive a request's data is. UNSET: no label was given (counts as low). */
enum sb_sensitivity {
    SB_SENSITIVITY_UNSET,
    SB_SENSITIVITY_LOW,
    SB_SENSITIVITY_MEDIUM, /* may go to the cloud pseudonymized */
    SB_SENSITIVITY_HIGH,   /* never leaves the machine */
};

/* Parses "low", "medium" or "high" (any case). Returns 0, or SB_EINVAL (*out untouched): the
 * HTTP layer answers 400. */
int sb_route_sensitivity_parse(struct sb_str text, enum sb_sensitivity *out);
/* "unset", "low", "medium", "high". Static. */
const char *sb_route_sensitivity_name(enum sb_sensitivity s);

/* The request's label: the header x-switchboard-sensitivity (header; empty = absent) and the
 * label "sensitivity" (OpenAI's metadata), the higher of the two when both are given. Returns 0,
 * or SB_EINVAL when either holds an unknown value; *bad (may be NULL) then names which one
 * ("header x-switchboard-sensitivity" or "metadata.sensitivity", static). */
int sb_route_request_sensitivity(const struct sb_request *req, struct sb_str header,
                                 enum sb_sensitivity *out, const char **bad);

/* What the detected PII says: secrets, cards, SSNs and IBANs high; email, phone, IP addresses,
 * custom terms and patterns medium; nothing low. The kind table is in route.c. */
enum sb_sensitivity sb_route_detected_sensitivity(const struct sb_pii_counts *counts);

/* The documented estimate of a request's prompt tokens, for models whose tokenizer is not at
 * hand: the bytes of every text a backend receives (message text parts, names, tool calls and
 * results, tool definitions, the completion prompt, embedding inputs) divided by 4, rounded up.
 * Images are not counted. English prose averages about 4 bytes a token with the common BPE
 * vocabularies; code and non-Latin scripts run denser, so this may undercount them. */
int64_t sb_route_estimate_tokens(const struct sb_request *req);

/* ---------------------------------------------------------------------------------------------
 * The router: the policy compiled against the config's models. Immutable once built; shared by
 * every thread.
 * ------------------------------------------------------------------------------------------- */
struct sb_router;

/* Builds a router for cfg (borrowed: it must outlive the router; the config parser has already
 * validated the policy). backends: NULL (route explain: nothing is loaded; a model is local when
 * its `backend` is "local", and its context is its `context`, or 8192 when 0), or cfg->n_models
 * backends, backends[i] serving cfg->models[i] (the models' own, not resil's chains), borrowed
 * for the router's life: a model is local
 * when info().kind is "local", its context is info().n_ctx read at each decision (0 = unknown:
 * assumed to fit), and exact prompt counts use its tokenizer. Returns 0 and *out (freed with
 * sb_router_free), or SB_EINVAL (n_backends does not match, a name the config check should have
 * refused) or SB_ENOMEM, with a message in err (NUL-terminated, at most err_size bytes). */
int sb_router_new(const struct sb_config *cfg, struct sb_backend *const *backends,
                  size_t n_backends, struct sb_router **out, char *err, size_t err_size);
/* Frees r. NULL is allowed. */
void sb_router_free(struct sb_router *r);

/* The index of the model named name in the router's config, or -1. */
ptrdiff_t sb_route_find_model(const struct sb_router *r, struct sb_str name);
/* Whether cfg->models[i] runs on this machine (backend kind "local"). */
bool sb_route_is_local(const struct sb_router *r, size_t i);

/* ---------------------------------------------------------------------------------------------
 * Decisions
 * ------------------------------------------------------------------------------------------- */
struct sb_route_input {
    struct sb_str model;             /* the requested alias */
    enum sb_request_kind kind;       /* embeddings go to embedding models only */
    struct sb_str key;               /* the API key's name; empty = none (keys off) */
    struct sb_str team;              /* its team; empty = none */
    enum sb_sensitivity label;       /* the caller's label (sb_route_request_sensitivity) */
    const struct sb_pii_counts *pii; /* the scan's counts, borrowed for the call; NULL = none */
    bool scan_failed;           /* the scan failed: treated as high sensitivity (fail closed) */
    int64_t prompt_tokens;      /* see sb_route_count_prompt */
    bool prompt_tokens_exact;   /* counted with the model's tokenizer, not estimated */
    int64_t max_tokens;         /* requested output limit; 0 = not set */
    bool tools;                 /* the request carries tool definitions */
    bool has_budget;            /* budget_left_micros is known */
    int64_t budget_left_micros; /* remaining budget in USD millionths (key, team or global) */
};

/* Fills in from req: alias, kind, label (header as in sb_route_request_sensitivity), pii and
 * scan_failed (scan_rc < 0), prompt tokens (sb_route_count_prompt), max_tokens, tools; key, team
 * and budget are left empty for the auth layer. pii is borrowed: it must live until the decision
 * is made. Returns 0, or SB_EINVAL for an unknown sensitivity label (*bad as for
 * sb_route_request_sensitivity). */
int sb_route_input_from_request(const struct sb_router *r, const struct sb_request *req,
                                struct sb_str sensitivity_header, const struct sb_pii_counts *pii,
                                int scan_rc, struct sb_route_input *in, const char **bad);

/* Counts req's prompt tokens. Exact (*exact = true) when the requested model, or else the local
 * model the hybrid policy would try first, is a local backend with a tokenizer: the prompt is
 * rendered with its chat template and tokenized on the calling thread (about a microsecond per
 * 100 bytes). Otherwise, and when that fails (a lazy model whose file cannot be read), the
 * estimate of sb_route_estimate_tokens. Never fails. */
int64_t sb_route_count_prompt(const struct sb_router *r, const struct sb_request *req, bool *exact);

#define SB_ROUTE_MAX_CHAIN  32  /* members of a decided chain */
#define SB_ROUTE_REASON_MAX 256 /* bytes of an explanation, NUL included */

struct sb_route_decision {
    uint32_t chain[SB_ROUTE_MAX_CHAIN]; /* indexes of cfg->models, in the order to try them */
    size_t n_chain;                     /* 0 when denied */
    bool pseudonymize; /* replace detected values before a non-local member receives the request */
    bool deny;
    /* The rule that decided: its id, or "default" (the hybrid policy or, with `default: none`,
     * the model's configured chain). Lives as long as the router. */
    const char *rule;
    /* Denied: what the client is told (the rule's `deny`, or the hybrid policy's reason). Static
     * or the config's; NULL when served. */
    const char *deny_reason;
    enum sb_sensitivity sensitivity;  /* effective: the higher of the label and the detection */
    enum sb_sensitivity detected;     /* what the PII scan alone says */
    char reason[SB_ROUTE_REASON_MAX]; /* "rule <id>: <why> -> <what>", ASCII, one line */
};

/* Decides for in: the policy's rules in order (each condition a predicate; every one a rule
 * writes must hold), the first that matches decides; when none does, the default (hybrid or
 * none). Allocates nothing; thread-safe. Returns 0 (*out: the chain, never empty, and the
 * reason); SB_EDENIED (*out: deny, rule, deny_reason and reason; the HTTP layer answers 403);
 * SB_ENOTFOUND (in->model is no configured model; *out has no chain, and reason says so). */
int sb_route_decide(const struct sb_router *r, const struct sb_route_input *in,
                    struct sb_route_decision *out);

/* Fills members[0, d->n_chain) for sb_chain_new: backends[i] (as given to sb_router_new, or
 * those of the caller when the router has none), each model's breaker from resil (may be NULL:
 * no breakers) and its `retries:` policy. members must hold SB_ROUTE_MAX_CHAIN. Returns the count
 * (d->n_chain), or SB_EINVAL when no backends are known. */
int sb_route_chain_members(const struct sb_router *r, const struct sb_route_decision *d,
                           struct sb_backend *const *backends, struct sb_resil *resil,
                           struct sb_chain_member *members);

/* Appends the x-switchboard-route header's value: `backend=<served>; rule=<id>; reason="..."`
 * (served may be empty: before a member answered). Returns 0, SB_ENOMEM or SB_ETOOBIG. */
int sb_route_write_header(const struct sb_route_decision *d, struct sb_str served,
                          struct sb_buf *out);

/* ---------------------------------------------------------------------------------------------
 * route explain: the decision for a request body, offline
 * ------------------------------------------------------------------------------------------- */
enum sb_route_explain_format { SB_ROUTE_EXPLAIN_TEXT, SB_ROUTE_EXPLAIN_JSON };

struct sb_route_explain_params {
    const struct sb_config *cfg; /* borrowed */
    struct sb_str body;          /* an OpenAI-style request body */
    enum sb_request_kind kind;   /* the endpoint it is for: chat, completions, embeddings */
    struct sb_str sensitivity;   /* as the header x-switchboard-sensitivity would; empty = none */
    enum sb_route_explain_format format;
};

/* Parses the body (sb_openai_codec), scans it for PII with cfg's privacy settings and decides
 * with a router that has no backends: nothing is loaded and nothing is sent; prompt tokens are
 * estimated (sb_route_estimate_tokens). Appends the decision and why to out. A denial is a
 * decision: it is printed and 0 returned. Returns 0; SB_EINVAL (a malformed body, an unknown
 * sensitivity) or SB_ENOTFOUND (an unknown model) with the message in err; SB_ENOMEM. */
int sb_route_explain(const struct sb_route_explain_params *p, struct sb_buf *out, char *err,
                     size_t err_size);

/* `switchboard route explain [--config FILE] [--sensitivity S] [--format text|json]
 * [--endpoint chat|completions|embeddings] [FILE|-]`; argv[0] is the first argument after the
 * command words. Returns the process's exit status (0, 1 runtime, 2 usage/config/input). */
int sb_route_explain_cli(int argc, char **argv);

#endif
