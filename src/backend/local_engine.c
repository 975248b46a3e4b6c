/* The local engine: one load of a GGUF model serving many requests at once, with continuous
 * batching, prompt-prefix reuse and per-request sampling; plus loading and freeing it.
 *
 * Threads. Everything here runs on the model's worker thread (local.c), which owns the engine
 * outright: no lock guards the slots. The loop threads and the worker share only the bounded
 * request queue (b->mu) and, per call, its outgoing event list (local_call.c).
 *
 * Slots and KV layout. The context has n_parallel sequences; slot i is sequence i. The KV cache is
 * per-slot (kv_unified = false): each slot owns n_ctx cells, so every request is guaranteed the
 * full configured context window whatever the others do, and attention for one sequence never scans
 * another's cells (llama.cpp's own advice when sequences do not share a prefix). The price is
 * memory: n_parallel × n_ctx cells, as llama-server's "-c (n_parallel × n_ctx) -np n_parallel".
 * The config's n_ctx is therefore the per-request window; info() reports it, clipped to what
 * llama.cpp actually gave each sequence (llama_n_ctx_seq). A unified pool would let one long
 * request borrow the others' room, but then any request could fail mid-generation when the pool
 * runs dry, and a gateway has to promise its context window. Embedding models differ (see
 * local_embed.c).
 *
 * The decode loop. Each step: admit queued requests into idle slots (render the template,
 * tokenize, pick the idle slot whose cache shares the longest prefix, drop the rest of its cache);
 * drop cancelled calls; build one batch from one pending token per generating slot plus up to
 * n_batch prompt tokens from prompt-processing slots (oldest request first); decode; sample each
 * slot that produced logits with its own sampler chain; turn tokens into text events. A slot is
 * freed within one step of a cancel.
 *
 * Tool requests. Their output goes through the chat format's streaming parser (local_chat.cpp),
 * re-parsed as a partial message after each token: text flows as TEXT events until it may be the
 * start of a tool call, then each call comes as TOOL_CALL deltas (id and name first, then pieces
 * of its arguments); the final parse sends what the partial ones held back. */
#include "backend/local_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Sampling defaults for fields the request leaves unset: llama-server's. */
#define LOCAL_TEMP_DEFAULT  0.8f
#define LOCAL_TOP_K_DEFAULT 40
#define LOCAL_TOP_P_DEFAULT 0.95f
#define LOCAL_MIN_P_DEFAULT 0.05f

/* -----------------------------------------------------------------------------------------------
 * Tokens and text
 * --------------------------------------------------------------------------------------------- */

/* Special tokens written as text are parsed, as llama-server does. */
int sb__local_tokenize(const struct llama_vocab *vocab, struct sb_str text, bool add_special,
                       llama_token **out, int32_t *n)
{
    *out = NULL;
    *n = 0;
    if (text.len > INT32_MAX / 2) {
        return SB_ETOOBIG;
    }
    const char *p = text.len ? text.p : "";
    int32_t cap = (int32_t)text.len + 16;
    llama_token *toks = malloc((size_t)cap * sizeof *toks);
    if (!toks) {
        return SB_ENOMEM;
    }
    int32_t got = llama_tokenize(vocab, p, (int32_t)text.len, toks, cap, add_special, true);
    if (got < 0 && got != INT32_MIN) {
        cap = -got;
        llama_token *grown = realloc(toks, (size_t)cap * sizeof *toks);
        if (!grown) {
            free(toks);
            return SB_ENOMEM;
        }
        toks = grown;
        got = llama_tokenize(vocab, p, (int32_t)text.len, toks, cap, add_special, true);
    }
    if (got < 0) {
        free(toks);
        return SB_ETOOBIG;
    }
    *out = toks;
    *n = got;
    return SB_OK;
}

/* Returns how many leading bytes of p[0, n) end on a code point boundary: an incomplete multi-byte
 * sequence at the end is left out (its next bytes come with the next token). */
static size_t utf8_whole(const char *p, size_t n)
{
    size_t i = n;
    size_t seen = 0;
    while (i > 0 && seen < 4) {
        unsigned char c = (unsigned char)p[i - 1];
        seen++;
        if ((c & 0xC0) != 0x80) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return seen < need ? i - 1 : n;
        }
        i--;
    }
    return n;
}

/* The length of the longest end of h that is a proper prefix of a stop string: text that must be
 * held back because the next token may complete the stop. */
static size_t stop_hold(struct sb_str h, const struct sb_str *stops, size_t n_stops)
{
    size_t hold = 0;
    for (size_t i = 0; i < n_stops; i++) {
        size_t j = SB_MIN(stops[i].len - 1, h.len);
        for (; j > hold; j--) {
            if (memcmp(h.p + h.len - j, stops[i].p, j) == 0) {
                hold = j;
                break;
            }
        }
    }
    return hold;
}

/* Drops the first n bytes of a buffer. */
static void buf_consume(struct sb_buf *b, size_t n)
{
    if (n == 0) {
        return;
    }
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
    b->p[b->len] = '\0';
}

/* A piece of a tool request's parsed output, as an event. */
static void slot_on_delta(void *ud, const struct sb__chat_delta *d)
{
    struct slot *s = ud;
    struct sb_event ev = {.type = SB_EV_TEXT};
    if (d->index < 0) {
        ev.text.text = d->content;
    } else {
        ev.type = SB_EV_TOOL_CALL;
        ev.tool_call.index = d->index;
        ev.tool_call.id = d->id;
        ev.tool_call.name = d->name;
        ev.tool_call.arguments = d->arguments;
    }
    sb__lc_post(s->lc, &ev);
}

/* Sends output text: as a TEXT event, or, for a tool request, through the format's streaming
 * parser, which sends text until it may be a tool call and the call's pieces once it is. */
static int slot_emit(struct slot *s, const char *p, size_t n)
{
    if (n == 0) {
        return SB_OK;
    }
    if (s->tool_mode) {
        return sb__chat_stream_push(s->stream, (struct sb_str){p, n}, false, slot_on_delta, s);
    }
    struct sb_event ev = {.type = SB_EV_TEXT};
    ev.text.text = (struct sb_str){p, n};
    sb__lc_post(s->lc, &ev);
    return SB_OK;
}

/* Adds a token's text to the output. Emits what can no longer be part of a stop string or of an
 * unfinished code point. Returns 1 when a stop string matched (the text before it was emitted, the
 * stop and anything after it are dropped), 0, or SB_ENOMEM / SB_ETOOBIG. */
static int slot_push_text(struct slot *s, const char *piece, size_t n)
{
    int rc = sb_buf_append(&s->held, piece, n);
    if (rc != SB_OK) {
        return rc;
    }
    struct sb_str h = sb_buf_view(&s->held);
    ptrdiff_t best = -1;
    for (size_t i = 0; i < s->n_stops; i++) {
        ptrdiff_t at = sb_str_find(h, s->stops[i]);
        if (at >= 0 && (best < 0 || at < best)) {
            best = at;
            s->stop_hit = s->stops[i];
        }
    }
    if (best >= 0) {
        s->stopped = true;
        rc = slot_emit(s, h.p, (size_t)best);
        return rc != SB_OK ? rc : 1;
    }
    size_t out = utf8_whole(h.p, h.len - stop_hold(h, s->stops, s->n_stops));
    rc = slot_emit(s, h.p, out);
    buf_consume(&s->held, out);
    return rc;
}

/* At the end of a generation: emits what was held back. An unfinished code point cannot be
 * completed any more; it becomes U+FFFD so the stream stays valid UTF-8. */
static int slot_flush_text(struct slot *s)
{
    struct sb_str h = sb_buf_view(&s->held);
    size_t whole = utf8_whole(h.p, h.len);
    int rc = slot_emit(s, h.p, whole);
    if (rc == SB_OK && whole < h.len) {
        rc = slot_emit(s, "\xEF\xBF\xBD", 3);
    }
    sb_buf_reset(&s->held);
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * Slots: admission, sampling, finishing (engine thread)
 * --------------------------------------------------------------------------------------------- */

/* A request's sampler chain: penalties, then greedy (temperature 0) or top-k → top-p → min-p →
 * temperature → a seeded draw, llama-server's order. Returns NULL when out of memory. */
static struct llama_sampler *sampler_new(const struct llama_vocab *vocab,
                                         const struct sb_sampling *sp)
{
    struct llama_sampler_chain_params cp = llama_sampler_chain_default_params();
    cp.no_perf = true;
    struct llama_sampler *c = llama_sampler_chain_init(cp);
    if (!c) {
        return NULL;
    }
    float repeat = sp->repeat_penalty > 0 ? sp->repeat_penalty : 1.0f;
    if (repeat != 1.0f || sp->frequency_penalty != 0 || sp->presence_penalty != 0) {
        llama_sampler_chain_add(
            c, llama_sampler_init_penalties(llama_vocab_n_tokens(vocab), LOCAL_PENALTY_LAST_N,
                                            repeat, sp->frequency_penalty, sp->presence_penalty));
    }
    float temp = sp->temperature >= 0 ? sp->temperature : LOCAL_TEMP_DEFAULT;
    if (temp <= 0) {
        llama_sampler_chain_add(c, llama_sampler_init_greedy());
        return c;
    }
    llama_sampler_chain_add(
        c, llama_sampler_init_top_k(sp->top_k >= 0 ? sp->top_k : LOCAL_TOP_K_DEFAULT));
    llama_sampler_chain_add(
        c, llama_sampler_init_top_p(sp->top_p > 0 ? sp->top_p : LOCAL_TOP_P_DEFAULT, 1));
    llama_sampler_chain_add(
        c, llama_sampler_init_min_p(sp->min_p >= 0 ? sp->min_p : LOCAL_MIN_P_DEFAULT, 1));
    llama_sampler_chain_add(c, llama_sampler_init_temp(temp));
    llama_sampler_chain_add(
        c, llama_sampler_init_dist(sp->has_seed ? (uint32_t)sp->seed : LLAMA_DEFAULT_SEED));
    return c;
}

/* Whether serving a prompt of n tokens in a slot whose cache of n_cache tokens shares its first
 * k is worth what it costs: the shared prefix must be at least half of the cache it keeps (so
 * that it does not throw away more than it saves) or half of the prompt. An empty slot always
 * qualifies. Without this, two tenants whose long system prompts differ after a few tokens would
 * keep evicting each other's cache. */
static bool slot_reuse_worth(int32_t k, int32_t n_cache, int32_t n)
{
    return 2 * (int64_t)k >= n_cache || (k > 0 && 2 * (int64_t)k >= n);
}

/* The idle slot to serve tokens[0, n) in: among those worth reusing (slot_reuse_worth), the one
 * that shares the longest prefix with it; when none is, the least recently used. *lcp receives
 * the shared length. NULL when none is idle. */
static struct slot *slot_pick(struct local_engine *e, const llama_token *tokens, int32_t n,
                              int32_t *lcp)
{
    struct slot *best = NULL, *lru = NULL;
    int32_t lru_lcp = 0;
    *lcp = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->state != SLOT_IDLE) {
            continue;
        }
        int32_t k = 0;
        int32_t lim = SB_MIN(s->n_cache, n);
        while (k < lim && s->tokens[k] == tokens[k]) {
            k++;
        }
        if (!lru || s->ticket < lru->ticket) {
            lru = s;
            lru_lcp = k;
        }
        if (slot_reuse_worth(k, s->n_cache, n) &&
            (!best || k > *lcp || (k == *lcp && s->ticket < best->ticket))) {
            best = s;
            *lcp = k;
        }
    }
    if (!best) {
        *lcp = lru_lcp;
        return lru;
    }
    return best;
}

/* Makes the slot's cache hold tokens[0, keep) and nothing else; returns how many it kept. Some
 * caches cannot drop a tail (recurrent models) or have evicted the start (sliding window): those
 * start over. */
static int32_t slot_trim_cache(struct local_engine *e, struct slot *s, int32_t keep)
{
    llama_memory_t mem = llama_get_memory(e->ctx);
    if (keep > 0 && llama_memory_seq_rm(mem, s->seq, keep, -1) &&
        llama_memory_seq_pos_min(mem, s->seq) <= 0) {
        s->n_cache = keep;
        return keep;
    }
    llama_memory_seq_rm(mem, s->seq, -1, -1);
    s->n_cache = 0;
    return 0;
}

/* The stop strings a slot watches: the request's (empty ones ignored) and the chat format's. */
static void slot_set_stops(struct slot *s, const struct sb_request *req)
{
    s->n_stops = 0;
    for (size_t i = 0; i < req->n_stop && i < SB_MAX_STOP; i++) {
        if (req->stop[i].len) {
            s->stops[s->n_stops++] = req->stop[i];
        }
    }
    for (size_t i = 0; s->parser && s->n_stops < LOCAL_MAX_STOPS; i++) {
        const char *extra = sb__chat_parser_stop(s->parser, i);
        if (!extra) {
            break;
        }
        if (*extra) {
            s->stops[s->n_stops++] = sb_str_c(extra);
        }
    }
}

/* Frees what a finished request held and returns the slot to idle; its cache stays. */
static void slot_release(struct local_engine *e, struct slot *s)
{
    sb__local_busy_add(e->b, -1);
    sb__lc_release(s->lc);
    s->lc = NULL;
    s->state = SLOT_IDLE;
    s->i_batch = -1;
    s->ticket = ++e->next_ticket;
    llama_sampler_free(s->smpl);
    s->smpl = NULL;
    sb__chat_stream_free(s->stream);
    s->stream = NULL;
    sb__chat_parser_free(s->parser);
    s->parser = NULL;
    sb_buf_reset(&s->held);
}

static void slot_fail(struct local_engine *e, struct slot *s, int code, int status, const char *msg)
{
    sb__lc_post_error(s->lc, code, status, 0, msg);
    slot_release(e, s);
}

/* Starts serving a request in slot s: tokens[0, n) is its prompt and the first lcp of them are in
 * the slot's cache. Takes ownership of parser. Returns 0 or SB_ENOMEM (the slot stays idle). */
static int slot_begin(struct local_engine *e, struct slot *s, struct lcall *lc,
                      const llama_token *tokens, int32_t n, int32_t lcp,
                      struct sb__chat_parser *parser)
{
    const struct sb_request *req = lc->call->req;
    s->smpl = sampler_new(e->b->vocab, &req->sampling);
    if (!s->smpl || (parser && sb__chat_stream_new(parser, &s->stream) != SB_OK)) {
        llama_sampler_free(s->smpl);
        s->smpl = NULL;
        sb__chat_parser_free(parser);
        return SB_ENOMEM;
    }
    /* At least the last prompt token is evaluated again: its logits give the first output token. */
    int32_t kept = slot_trim_cache(e, s, SB_MIN(lcp, n - 1));
    memcpy(s->tokens + kept, tokens + kept, (size_t)(n - kept) * sizeof *tokens);
    s->lc = lc;
    s->state = SLOT_PROMPT;
    s->n_prompt = n;
    s->n_reused = kept;
    s->n_decoded = 0;
    s->max_tokens = req->max_tokens > 0 ? req->max_tokens : 0;
    s->i_batch = -1;
    s->ticket = ++e->next_ticket;
    s->parser = parser;
    s->tool_mode = parser != NULL;
    s->stopped = false;
    s->stop_hit = SB_STR_NULL;
    slot_set_stops(s, req);
    sb__local_busy_add(e->b, 1);
    /* echo is the codec's business: it prepends the prompt itself. */
    sb__local_post_start(e->b, lc);
    return SB_OK;
}

/* Ends a request normally: the rest of the text, USAGE, FINISH. */
static void slot_finish(struct local_engine *e, struct slot *s, enum sb_finish_reason reason)
{
    if (!s->stopped && slot_flush_text(s) != SB_OK) {
        slot_fail(e, s, SB_ENOMEM, 500, "the local model's output is too large");
        return;
    }
    if (s->tool_mode) {
        /* The last parse is the complete message: what the partial ones held back goes now. */
        if (sb__chat_stream_push(s->stream, SB_STR_NULL, true, slot_on_delta, s) != SB_OK) {
            slot_fail(e, s, SB_ENOMEM, 500, "the local model ran out of memory while answering");
            return;
        }
        if (sb__chat_stream_n_calls(s->stream) > 0) {
            reason = SB_FINISH_TOOL_CALLS;
        }
    }
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = s->n_prompt;
    ev.usage.cached_prompt_tokens = s->n_reused;
    ev.usage.completion_tokens = s->n_decoded;
    sb__lc_post(s->lc, &ev);
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = reason;
    ev.finish.stop_sequence = s->stopped ? s->stop_hit : SB_STR_NULL;
    sb__lc_post(s->lc, &ev);
    slot_release(e, s);
}

/* Returns the text of a token in the engine's scratch buffer (*n bytes), or NULL when out of
 * memory. Special tokens render as nothing: they are markup, not text. */
static const char *token_piece(struct local_engine *e, llama_token tok, int32_t *n)
{
    *n = llama_token_to_piece(e->b->vocab, tok, e->piece, e->piece_cap, 0, false);
    if (*n < 0) {
        char *grown = realloc(e->piece, (size_t) - *n);
        if (!grown) {
            return NULL;
        }
        e->piece = grown;
        e->piece_cap = -*n;
        *n = llama_token_to_piece(e->b->vocab, tok, e->piece, e->piece_cap, 0, false);
    }
    return *n >= 0 ? e->piece : NULL;
}

/* Handles one sampled token: the end of generation, a stop string, a limit, or text. Every finish
 * keeps prompt + completion within the context window: the last token is sampled from the
 * logits at the window's last used position and never decoded itself. */
static void slot_on_token(struct local_engine *e, struct slot *s, llama_token tok)
{
    if (atomic_load(&s->lc->canceled)) {
        slot_release(e, s);
        return;
    }
    /* The end-of-generation token is not text and not counted (llama-server and OpenAI count only
     * the tokens of the answer). */
    if (llama_vocab_is_eog(e->b->vocab, tok)) {
        slot_finish(e, s, SB_FINISH_STOP);
        return;
    }
    s->n_decoded++;
    int32_t n = 0;
    const char *piece = token_piece(e, tok, &n);
    int rc = piece ? slot_push_text(s, piece, (size_t)n) : SB_ENOMEM;
    if (rc < 0) {
        slot_fail(e, s, rc, 500, "the local model ran out of memory while answering");
    } else if (rc == 1) {
        slot_finish(e, s, SB_FINISH_STOP);
    } else if (s->max_tokens > 0 && s->n_decoded >= s->max_tokens) {
        slot_finish(e, s, SB_FINISH_LENGTH);
    } else if (s->n_cache + 1 >= e->n_ctx_slot) {
        slot_finish(e, s, SB_FINISH_LENGTH);
    } else {
        s->next = tok;
    }
}

/* -----------------------------------------------------------------------------------------------
 * Admission (engine thread)
 * --------------------------------------------------------------------------------------------- */

/* The prompt tokens of a request: the chat template applied to its messages, or the raw prompt,
 * with BOS. *parser receives a tool request's output parser. Returns 0, or an SB_E* code with a
 * message for the client in err. */
static int request_tokens(struct local_engine *e, const struct sb_request *req, llama_token **toks,
                          int32_t *n, struct sb__chat_parser **parser, char *err, size_t err_size)
{
    *parser = NULL;
    if (req->kind == SB_REQ_COMPLETION) {
        int rc = sb__local_tokenize(e->b->vocab, req->prompt, true, toks, n);
        if (rc != SB_OK) {
            snprintf(err, err_size, "the prompt could not be tokenized: %s", sb_strerror(rc));
        }
        return rc;
    }
    bool tools = req->n_tools > 0 && req->tool_choice != SB_TOOL_CHOICE_NONE;
    struct sb_buf text;
    sb_buf_init(&text, LOCAL_PROMPT_TEXT_MAX);
    pthread_mutex_lock(&e->b->tmpl_mu);
    int rc = sb__chat_render(e->b->tmpls, req, &text, tools ? parser : NULL, err, err_size);
    pthread_mutex_unlock(&e->b->tmpl_mu);
    if (rc == SB_OK) {
        rc = sb__local_tokenize(e->b->vocab, sb_buf_view(&text), true, toks, n);
        if (rc != SB_OK) {
            snprintf(err, err_size, "the prompt could not be tokenized: %s", sb_strerror(rc));
            sb__chat_parser_free(*parser);
            *parser = NULL;
        }
    }
    sb_buf_free(&text);
    return rc;
}

/* HTTP status for a failure to build a prompt: the client's input or our limits. */
static int prompt_error_status(int rc)
{
    return rc == SB_EINVAL || rc == SB_EUNSUPPORTED || rc == SB_ETOOBIG ? 400 : 500;
}

/* Takes a queued call into an idle slot, or ends it with an error. */
static void admit(struct local_engine *e, struct lcall *lc)
{
    const struct sb_request *req = lc->call->req;
    llama_token *toks = NULL;
    int32_t n = 0;
    struct sb__chat_parser *parser = NULL;
    char err[512];
    int rc = request_tokens(e, req, &toks, &n, &parser, err, sizeof err);
    if (rc != SB_OK) {
        sb__lc_post_error(lc, rc, prompt_error_status(rc), 0, err);
        goto fail;
    }
    if (n == 0) {
        sb__lc_post_error(lc, SB_EINVAL, 400, 0, "the prompt is empty");
        goto fail;
    }
    if (n + 1 > e->n_ctx_slot) {
        snprintf(err, sizeof err,
                 "This model's maximum context length is %d tokens, but the prompt is %d tokens. "
                 "Shorten the prompt.",
                 e->n_ctx_slot, n);
        sb__lc_post_error(lc, SB_ECONTEXT, 400, 0, err);
        goto fail;
    }
    int32_t lcp = 0;
    struct slot *s = slot_pick(e, toks, n, &lcp);
    if (!s) { /* cannot happen: the engine takes no more calls than it has idle slots */
        sb__lc_post_error(lc, SB_ESTATE, 500, 0, "no slot was free for the request");
        goto fail;
    }
    rc = slot_begin(e, s, lc, toks, n, lcp, parser);
    parser = NULL;
    if (rc != SB_OK) {
        sb__lc_post_error(lc, rc, 500, 0, "the local model ran out of memory");
        goto fail;
    }
    free(toks);
    return;
fail:
    sb__chat_parser_free(parser);
    free(toks);
    sb__lc_release(lc);
}

static int32_t idle_slots(const struct local_engine *e)
{
    int32_t n = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        n += e->slots[i].state == SLOT_IDLE;
    }
    return n;
}

/* -----------------------------------------------------------------------------------------------
 * The decode loop (engine thread)
 * --------------------------------------------------------------------------------------------- */

static void batch_add(struct llama_batch *batch, llama_token tok, llama_pos pos, llama_seq_id seq,
                      bool logits)
{
    int32_t i = batch->n_tokens++;
    batch->token[i] = tok;
    batch->pos[i] = pos;
    batch->n_seq_id[i] = 1;
    batch->seq_id[i][0] = seq;
    batch->logits[i] = logits;
}

/* The prompt-processing slot that was admitted first and has no tokens in this batch yet. */
static struct slot *oldest_prompt_slot(struct local_engine *e)
{
    struct slot *best = NULL;
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->state == SLOT_PROMPT && !s->in_batch && (!best || s->ticket < best->ticket)) {
            best = s;
        }
    }
    return best;
}

/* Fills the batch: each generating slot's pending token, then prompt chunks up to the budget.
 * Returns the number of tokens in it. */
static int32_t engine_build_batch(struct local_engine *e)
{
    struct llama_batch *batch = &e->batch;
    batch->n_tokens = 0;
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->in_batch = false;
        if (s->state == SLOT_GEN) {
            s->i_batch = batch->n_tokens;
            s->in_batch = true;
            batch_add(batch, s->next, s->n_cache, s->seq, true);
            s->tokens[s->n_cache++] = s->next;
        }
    }
    int32_t budget = e->prompt_budget;
    struct slot *s;
    while (budget > 0 && (s = oldest_prompt_slot(e)) != NULL) {
        int32_t take = SB_MIN(budget, s->n_prompt - s->n_cache);
        for (int32_t k = 0; k < take; k++) {
            int32_t pos = s->n_cache + k;
            bool last = pos == s->n_prompt - 1;
            if (last) {
                s->i_batch = batch->n_tokens;
            }
            batch_add(batch, s->tokens[pos], pos, s->seq, last);
        }
        s->n_cache += take;
        s->in_batch = true;
        budget -= take;
    }
    return batch->n_tokens;
}

/* Decodes the batch and samples every slot that has logits in it. A failed decode ends the
 * requests in the batch with an error and forgets their caches (llama.cpp may have kept part). */
static void engine_decode(struct local_engine *e)
{
    int rc = llama_decode(e->ctx, e->batch);
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (!s->in_batch) {
            continue;
        }
        s->in_batch = false;
        if (rc != 0) {
            sb_log(SB_LOG_ERROR, s->lc->call->req->id, "local model %s: llama_decode failed (%d)",
                   e->b->name, rc);
            llama_memory_seq_rm(llama_get_memory(e->ctx), s->seq, -1, -1);
            s->n_cache = 0;
            slot_fail(e, s, SB_EBACKEND, 500, "the local model failed to evaluate the request");
            continue;
        }
        if (s->i_batch < 0) {
            continue; /* a prompt chunk that is not the last */
        }
        llama_token tok = llama_sampler_sample(s->smpl, e->ctx, s->i_batch);
        s->i_batch = -1;
        s->state = SLOT_GEN;
        slot_on_token(e, s, tok);
    }
}

/* Frees slots whose call was cancelled (or whose stream broke), without further events. */
static void engine_reap(struct local_engine *e)
{
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->lc && (atomic_load(&s->lc->canceled) || s->lc->broken)) {
            slot_release(e, s);
        }
    }
}

void sb__local_engine_drain(struct local_engine *e, const char *msg)
{
    if (e->embed) {
        sb__local_embed_drain(e, msg);
        return;
    }
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        if (s->lc) {
            slot_fail(e, s, SB_EBACKEND, 503, msg);
        }
    }
}

int sb__local_engine_step(struct local_engine *e)
{
    struct local_backend *b = e->b;
    size_t want = e->embed ? sb__local_embed_room(e) : (size_t)idle_slots(e);
    size_t n_taken = 0;
    if (!sb__local_queue_take(b, want, e->taken, &n_taken)) {
        return -1;
    }
    for (size_t i = 0; i < n_taken; i++) {
        if (e->embed) {
            sb__local_embed_admit(e, e->taken[i]);
        } else {
            admit(e, e->taken[i]);
        }
    }
    if (e->embed) {
        sb__local_embed_reap(e);
        return sb__local_embed_step(e) ? 1 : 0;
    }
    engine_reap(e);
    if (engine_build_batch(e) > 0) {
        engine_decode(e);
        return 1;
    }
    return 0;
}

/* -----------------------------------------------------------------------------------------------
 * Loading and freeing
 * --------------------------------------------------------------------------------------------- */

/* llama.cpp's and ggml's log lines: warnings and errors go to our log, the rest (load chatter)
 * is dropped. A line may come in pieces (GGML_LOG_LEVEL_CONT continues the last level). */
static void llama_log_cb(enum ggml_log_level level, const char *text, void *ud)
{
    static _Thread_local enum ggml_log_level last = GGML_LOG_LEVEL_NONE;
    SB_UNUSED(ud);
    if (level == GGML_LOG_LEVEL_CONT) {
        level = last;
    } else {
        last = level;
    }
    if (level != GGML_LOG_LEVEL_WARN && level != GGML_LOG_LEVEL_ERROR) {
        return;
    }
    size_t n = strlen(text);
    while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == '\r')) {
        n--;
    }
    if (n > 0) {
        sb_log(level == GGML_LOG_LEVEL_ERROR ? SB_LOG_ERROR : SB_LOG_WARN, NULL, "llama.cpp: %.*s",
               (int)n, text);
    }
}

static pthread_once_t g_llama_once = PTHREAD_ONCE_INIT;

static void llama_global_init(void)
{
    llama_log_set(llama_log_cb, NULL);
    llama_backend_init();
    sb__chat_global_init();
}

/* Checks that path names a readable GGUF file before llama.cpp sees it, so the user gets a message
 * that says which of "missing" and "not a model" it is. */
static int check_gguf(const char *name, const char *path, char *err, size_t err_size)
{
    if (!path || !*path) {
        snprintf(err, err_size, "model %s: no path is configured; set its path: to a .gguf file",
                 name);
        return SB_EINVAL;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        char eb[128];
        const char *why = strerror_r(e, eb, sizeof eb);
        snprintf(
            err, err_size,
            "model %s: cannot open %s: %s; check the path in the config or $SWITCHBOARD_MODELS",
            name, path, why);
        return e == ENOENT ? SB_ENOTFOUND : SB_EIO;
    }
    unsigned char magic[4] = {0};
    size_t got = fread(magic, 1, sizeof magic, f);
    fclose(f);
    if (got != sizeof magic || memcmp(magic, "GGUF", 4) != 0) {
        snprintf(
            err, err_size,
            "model %s: %s is not a GGUF file (it does not start with \"GGUF\"); "
            "convert the model with llama.cpp's convert_hf_to_gguf.py or download a .gguf build",
            name, path);
        return SB_EINVAL;
    }
    return SB_OK;
}

/* Quantization names as llama-quantize and Ollama write them; llama_ftype_name's are prose. */
static const struct {
    enum llama_ftype ftype;
    const char *name;
} ftype_names[] = {
    {LLAMA_FTYPE_ALL_F32, "F32"},          {LLAMA_FTYPE_MOSTLY_F16, "F16"},
    {LLAMA_FTYPE_MOSTLY_BF16, "BF16"},     {LLAMA_FTYPE_MOSTLY_Q4_0, "Q4_0"},
    {LLAMA_FTYPE_MOSTLY_Q4_1, "Q4_1"},     {LLAMA_FTYPE_MOSTLY_Q5_0, "Q5_0"},
    {LLAMA_FTYPE_MOSTLY_Q5_1, "Q5_1"},     {LLAMA_FTYPE_MOSTLY_Q8_0, "Q8_0"},
    {LLAMA_FTYPE_MOSTLY_Q2_K, "Q2_K"},     {LLAMA_FTYPE_MOSTLY_Q3_K_S, "Q3_K_S"},
    {LLAMA_FTYPE_MOSTLY_Q3_K_M, "Q3_K_M"}, {LLAMA_FTYPE_MOSTLY_Q3_K_L, "Q3_K_L"},
    {LLAMA_FTYPE_MOSTLY_Q4_K_S, "Q4_K_S"}, {LLAMA_FTYPE_MOSTLY_Q4_K_M, "Q4_K_M"},
    {LLAMA_FTYPE_MOSTLY_Q5_K_S, "Q5_K_S"}, {LLAMA_FTYPE_MOSTLY_Q5_K_M, "Q5_K_M"},
    {LLAMA_FTYPE_MOSTLY_Q6_K, "Q6_K"},     {LLAMA_FTYPE_MOSTLY_IQ4_XS, "IQ4_XS"},
    {LLAMA_FTYPE_MOSTLY_IQ4_NL, "IQ4_NL"}, {LLAMA_FTYPE_MOSTLY_MXFP4_MOE, "MXFP4"},
};

/* Fills what info() reports about the weights; b->mu held. size_vram is an estimate: the share of
 * the layers offloaded (llama.cpp does not report per-device weight bytes through its C API). */
static void describe_model(struct local_backend *b, const struct llama_model *model)
{
    b->n_params = (int64_t)llama_model_n_params(model);
    if (llama_model_meta_val_str(model, "general.architecture", b->family, sizeof b->family) < 0) {
        b->family[0] = '\0';
    }
    enum llama_ftype ft = llama_model_ftype(model);
    b->quantization = llama_ftype_name(ft);
    /* Older files carry no file type; llama.cpp then guesses it from the tensors. */
    int known = (int)ft & ~(int)LLAMA_FTYPE_GUESSED;
    for (size_t i = 0; i < SB_ARRAY_LEN(ftype_names); i++) {
        if ((int)ftype_names[i].ftype == known) {
            b->quantization = ftype_names[i].name;
        }
    }
    int64_t weights = (int64_t)llama_model_size(model);
    int32_t gpu_layers = b->sizes.gpu_layers;
    int32_t layers = llama_model_n_layer(model) + 1; /* the output layer counts as one */
    if (!llama_supports_gpu_offload() || gpu_layers == 0) {
        b->size_vram = 0;
    } else if (gpu_layers < 0 || gpu_layers >= layers) {
        b->size_vram = weights;
    } else {
        b->size_vram = weights * gpu_layers / layers;
    }
    b->described = true;
}

/* The config's sizes with its zeros replaced by defaults. */
static struct local_sizes resolve_sizes(const struct local_sizes *cfg,
                                        const struct llama_model *model)
{
    struct local_sizes z = *cfg;
    int32_t train = llama_model_n_ctx_train(model);
    z.n_ctx = cfg->n_ctx > 0
                  ? cfg->n_ctx
                  : SB_MIN(train > 0 ? train : LOCAL_CTX_DEFAULT_CAP, LOCAL_CTX_DEFAULT_CAP);
    z.n_slots = cfg->n_slots > 0 ? cfg->n_slots : LOCAL_PARALLEL_DEFAULT;
    z.n_batch = cfg->n_batch > 0 ? cfg->n_batch : LOCAL_BATCH_DEFAULT;
    /* One core stays with the I/O threads: on a small machine, decoding on every core starves the
     * event loops and the llama.cpp threads spin against each other. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    z.n_threads = cfg->n_threads > 0 ? cfg->n_threads : (int32_t)SB_MAX(1L, cores - 1);
    return z;
}

/* The context parameters of a generation engine: n_slots sequences with their own n_ctx cells
 * each (see the top of the file), a batch large enough for one prompt chunk plus one token per
 * slot. */
static struct llama_context_params generation_params(struct local_sizes z, int32_t cells)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(cells * z.n_slots);
    /* Room for a prompt chunk of n_batch plus one generated token per slot; llama.cpp would clip
     * a batch larger than the whole context anyway. */
    cp.n_batch = (uint32_t)SB_MIN((int64_t)z.n_batch + z.n_slots, (int64_t)cells * z.n_slots);
    cp.n_seq_max = (uint32_t)z.n_slots;
    cp.kv_unified = false;
    return cp;
}

/* The context parameters of an embeddings engine: every input of a step must sit in one ubatch
 * (pooling is computed per ubatch), and the cache is cleared before each step, so one unified
 * window of n_ctx cells is shared by the step's n_slots inputs, and batch = ubatch = the window. */
static struct llama_context_params embedding_params(struct local_sizes z, int32_t cells,
                                                    const struct llama_model *model)
{
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)cells;
    cp.n_batch = (uint32_t)cells;
    cp.n_ubatch = (uint32_t)cells;
    cp.n_seq_max = (uint32_t)z.n_slots;
    cp.kv_unified = true;
    cp.embeddings = true;
    cp.pooling_type = sb__local_embed_pooling(model);
    return cp;
}

/* Creates the llama_context and the batch. */
static int make_context(struct local_engine *e, struct local_sizes z, char *err, size_t err_size)
{
    const char *name = e->b->name;
    if ((size_t)z.n_slots > llama_max_parallel_sequences()) {
        snprintf(err, err_size, "model %s: parallel: %d is more than llama.cpp's limit of %zu",
                 name, z.n_slots, llama_max_parallel_sequences());
        return SB_EINVAL;
    }
    if ((int64_t)z.n_ctx * z.n_slots > INT32_MAX / 2) {
        snprintf(err, err_size, "model %s: context × parallel (%d × %d) is too large", name,
                 z.n_ctx, z.n_slots);
        return SB_EINVAL;
    }
    /* llama.cpp rounds each sequence's cells up to a multiple of 256; asking for exactly that
     * keeps it from re-deriving the total. The window we enforce stays z.n_ctx. */
    int32_t cells = (z.n_ctx + 255) / 256 * 256;
    struct llama_context_params cp =
        e->b->embeddings ? embedding_params(z, cells, e->model) : generation_params(z, cells);
    cp.n_threads = z.n_threads;
    cp.n_threads_batch = z.n_threads;
    cp.no_perf = true;
    e->ctx = llama_init_from_model(e->model, cp);
    if (!e->ctx) {
        snprintf(err, err_size,
                 "model %s: llama.cpp could not create a context of %d × %d tokens "
                 "(see the log above); lower context: or parallel:",
                 name, z.n_slots, z.n_ctx);
        return SB_EBACKEND;
    }
    e->n_slots = z.n_slots;
    if (e->b->embeddings) {
        e->n_ctx_slot = SB_MIN(z.n_ctx, (int32_t)llama_n_ctx(e->ctx));
        e->prompt_budget = (int32_t)llama_n_ubatch(e->ctx);
        e->batch = llama_batch_init(e->prompt_budget, 0, 1);
    } else {
        e->n_ctx_slot = SB_MIN(z.n_ctx, (int32_t)llama_n_ctx_seq(e->ctx));
        e->prompt_budget = SB_MAX(1, (int32_t)llama_n_batch(e->ctx) - z.n_slots);
        e->batch = llama_batch_init(e->prompt_budget + e->n_slots, 0, 1);
    }
    e->batch_ok = true;
    return SB_OK;
}

static int make_slots(struct local_engine *e)
{
    e->slots = calloc((size_t)e->n_slots, sizeof *e->slots);
    if (!e->slots) {
        return SB_ENOMEM;
    }
    for (int32_t i = 0; i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        s->seq = i;
        s->i_batch = -1;
        sb_buf_init(&s->held, LOCAL_HELD_MAX);
        s->tokens = malloc((size_t)e->n_ctx_slot * sizeof *s->tokens);
        if (!s->tokens) {
            return SB_ENOMEM;
        }
    }
    return SB_OK;
}

int sb__local_vocab_load(struct local_backend *b, char *err, size_t err_size)
{
    pthread_once(&g_llama_once, llama_global_init);
    int rc = check_gguf(b->name, b->path, err, err_size);
    if (rc != SB_OK) {
        return rc;
    }
    struct llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    struct llama_model *m = llama_model_load_from_file(b->path, mp);
    if (!m) {
        snprintf(err, err_size,
                 "model %s: llama.cpp could not load %s (see the log above); the file may be "
                 "truncated or use an architecture this build does not know",
                 b->name, b->path);
        return SB_EBACKEND;
    }
    char terr[400];
    struct sb__chat_templates *t = NULL;
    rc = sb__chat_templates_new(m, b->chat_template, &t, terr, sizeof terr);
    if (rc != SB_OK) {
        snprintf(err, err_size, "model %s: chat_template: %s", b->name, terr);
        llama_model_free(m);
        return rc;
    }
    b->vocab_model = m;
    b->vocab = llama_model_get_vocab(m);
    b->tmpls = t;
    atomic_store(&b->vocab_ready, true);
    return SB_OK;
}

void sb__local_engine_free(struct local_engine *e)
{
    if (!e) {
        return;
    }
    for (int32_t i = 0; e->slots && i < e->n_slots; i++) {
        struct slot *s = &e->slots[i];
        llama_sampler_free(s->smpl);
        sb__chat_stream_free(s->stream);
        sb__chat_parser_free(s->parser);
        sb_buf_free(&s->held);
        free(s->tokens);
    }
    free(e->slots);
    sb__local_embed_free(e->embed);
    free(e->taken);
    free(e->piece);
    if (e->batch_ok) {
        llama_batch_free(e->batch);
    }
    if (e->ctx) {
        llama_free(e->ctx);
    }
    if (e->model) {
        llama_model_free(e->model);
    }
    free(e);
}

int sb__local_engine_load(struct local_backend *b, struct local_engine **out, char *err,
                          size_t err_size)
{
    *out = NULL;
    pthread_once(&g_llama_once, llama_global_init);
    int rc = check_gguf(b->name, b->path, err, err_size);
    if (rc != SB_OK) {
        return rc;
    }
    if (!atomic_load(&b->vocab_ready)) {
        rc = sb__local_vocab_load(b, err, err_size);
        if (rc != SB_OK) {
            return rc;
        }
    }
    struct local_engine *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, err_size, "model %s: out of memory", b->name);
        return SB_ENOMEM;
    }
    e->b = b;
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = b->sizes.gpu_layers;
    e->model = llama_model_load_from_file(b->path, mp);
    if (!e->model) {
        snprintf(err, err_size,
                 "model %s: llama.cpp could not load %s (see the log above); the file may be "
                 "truncated or use an architecture this build does not know",
                 b->name, b->path);
        rc = SB_EBACKEND;
        goto fail;
    }
    rc = make_context(e, resolve_sizes(&b->sizes, e->model), err, err_size);
    if (rc != SB_OK) {
        goto fail;
    }
    e->piece_cap = 256;
    e->piece = malloc((size_t)e->piece_cap);
    e->taken = calloc((size_t)e->n_slots, sizeof *e->taken);
    rc = e->piece && e->taken ? SB_OK : SB_ENOMEM;
    if (rc == SB_OK) {
        rc = b->embeddings ? sb__local_embed_new(e, err, err_size) : make_slots(e);
    }
    if (rc == SB_ENOMEM) {
        snprintf(err, err_size, "model %s: out of memory", b->name);
    }
    if (rc != SB_OK) {
        goto fail;
    }
    pthread_mutex_lock(&b->mu);
    if (!b->described) {
        describe_model(b, e->model);
    }
    b->n_ctx_slot = e->n_ctx_slot;
    b->n_slots = e->n_slots;
    pthread_mutex_unlock(&b->mu);
    *out = e;
    return SB_OK;
fail:
    sb__local_engine_free(e);
    return rc;
}
