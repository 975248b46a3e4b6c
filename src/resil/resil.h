/* Resilience: fallback chains of backends with retries, backoff and circuit breakers. A chain is
 * itself a backend (struct sb_backend_ops), so the HTTP layer serves it like any other; it is
 * built from other backends, not from a config entry alone, so it is not in the kind registry. */
#ifndef SB_RESIL_H
#define SB_RESIL_H

#include "backend/backend.h"
#include "config/config.h"
#include "resil/breaker.h"
#include "resil/retry.h"

/* The total a request may spend on retries when its model sets no timeouts.total_ms. */
#define SB_RESIL_DEFAULT_BUDGET_MS 30000u

/* ---------------------------------------------------------------------------------------------
 * Chains
 *
 * A chain serves a call by trying its members in order:
 *  - a member is skipped, not tried, when its breaker refuses the request (open, or half-open
 *    with every probe out), or when its context window (info().n_ctx > 0) is smaller than the
 *    prompt: counted with the member's render_prompt and count_tokens when it has both (plus one
 *    for BOS and one for the first generated token, as the local backend demands), else
 *    estimated as bytes / 4 of the messages' text. A member that still answers SB_ECONTEXT is
 *    moved on from like any failure of that class;
 *  - a member that fails before its START reached the caller (an ERROR first, or start() < 0) is
 *    retried after a backoff when its failure class allows (retry.h), within its retry policy
 *    and the request's budget, then the chain moves on when the class allows falling back;
 *  - once START has been forwarded the chain is committed: a later ERROR is forwarded as it is
 *    (the client has partial output; the codec renders an in-stream error), never retried;
 *  - START is forwarded with backend = the member's name, attempts = the tries it took (skips
 *    not counted) and tried = the members started so far, in order, each once, comma-separated
 *    (this one last; names that would take it past 255 bytes left out); every other event
 *    passes through untouched;
 *  - when no member is left: one ERROR with the last failure's code, status and retryability,
 *    its message followed by what was tried, and tried as START's (empty when none started);
 *    if nothing was tried, 503 (SB_EBACKEND, retryable, retry_after_ms = when the first breaker
 *    lets a probe through) when a breaker refused, else 400 SB_ECONTEXT. With a single try and
 *    no skip the member's ERROR passes unchanged, and a start() failure is returned by start()
 *    itself: a chain of one behaves as its member.
 * Breakers hear of each try: success at START, the failure class's outcome (retry.h) on a
 * failure before it, neutral on a cancel. Waits are timers on call->base; nothing blocks.
 * Metrics: switchboard_retries_total{backend} per retry scheduled, and
 * switchboard_fallbacks_total{from,to} each time the chain moves from one member to the next
 * (whether the first was skipped or failed).
 * ------------------------------------------------------------------------------------------- */
struct sb_chain_member {
    struct sb_backend *backend;   /* borrowed: must outlive the chain */
    struct sb_breaker *breaker;   /* borrowed, may be shared by several chains; NULL = none */
    struct sb_retry_policy retry; /* for this member's failures */
    const char *name;             /* copied; for START, logs, metrics; NULL = info().name */
    /* What this member is sent instead of the call's request (a pseudonymized copy for a cloud
     * member), borrowed for every call of the chain; NULL = the call's own request. */
    const struct sb_request *req;
};

/* Returns 0 and *out, a backend named name (copied; info().name) that serves calls through
 * members[0, n) (the array is copied, the backends and breakers are borrowed). budget_ms bounds
 * how long after its start a request may still begin a retry (0 = SB_RESIL_DEFAULT_BUDGET_MS).
 * Returns SB_EINVAL (n == 0, a NULL backend) or SB_ENOMEM, and *out is NULL. The caller frees the
 * chain with sb_backend_free before it frees the members; every call must have had on_done.
 * Thread-safe like any backend: calls may run on every I/O loop at once. */
int sb_chain_new(const char *name, const struct sb_chain_member *members, size_t n,
                 uint32_t budget_ms, struct sb_backend **out);

/* The chain kind's operations (kind "chain"). info() is the first member's, with the chain's
 * name, n_ctx the largest of the members' (0 if any is unknown) and ready when any member is;
 * count_tokens, tokenize and render_prompt are the first member's. create() is refused. */
extern const struct sb_backend_ops sb_chain_backend_ops;

/* ---------------------------------------------------------------------------------------------
 * What `switchboard serve` builds from a config: one breaker per model (from its `breaker:`
 * keys), and for every model a chain of the model itself followed by its `fallback:` models,
 * expanded depth-first (a fallback's own fallbacks come right after it; each model once), each
 * member with its own `retries:`, the budget being the first model's timeouts.total_ms or
 * SB_RESIL_DEFAULT_BUDGET_MS.
 * ------------------------------------------------------------------------------------------- */
struct sb_resil;

/* backends[i] serves cfg->models[i] (n == cfg->n_models); both are borrowed and must outlive the
 * result. Returns 0 and *out, or SB_EINVAL (n does not match, a fallback names no model) or
 * SB_ENOMEM with a message in err (NUL-terminated, at most err_size bytes); *out is then NULL. */
int sb_resil_new(const struct sb_config *cfg, struct sb_backend *const *backends, size_t n,
                 struct sb_resil **out, char *err, size_t err_size);
/* The backends to serve instead of the configured ones: element i is the chain of
 * cfg->models[i]. n_models of them; borrowed, valid until sb_resil_free. */
struct sb_backend **sb_resil_backends(struct sb_resil *r);
/* The breaker of cfg->models[i] (borrowed, valid until sb_resil_free), or NULL past the end. */
struct sb_breaker *sb_resil_breaker(struct sb_resil *r, size_t i);
/* Frees the chains and breakers, not the backends. Call after the server is freed (every call
 * has had on_done) and before the backends are freed. NULL is allowed. */
void sb_resil_free(struct sb_resil *r);

#endif
