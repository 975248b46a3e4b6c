/* The local backend: an in-process llama.cpp engine that serves one GGUF model to many requests at
 * once, with continuous batching, prompt-prefix reuse and per-request sampling.
 *
 * Threads. start(), cancel() and the event delivery run on the caller's loop thread (call->base);
 * info(), count_tokens(), tokenize() and render_prompt() on any thread. Everything that touches the
 * llama_context runs on one engine thread per model, which owns the slots outright: no lock guards
 * them. The loop threads and the engine share only the bounded request queue (b->mu) and, per call,
 * its outgoing event list (lc->mu).
 *
 * Slots and KV layout. The context has n_parallel sequences; slot i is sequence i. The KV cache is
 * per-slot (kv_unified = false): each slot owns n_ctx cells, so every request is guaranteed the
 * full configured context window whatever the others do, and attention for one sequence never scans
 * another's cells (llama.cpp's own advice when sequences do not share a prefix). The price is
 * memory: n_parallel × n_ctx cells, as llama-server's "-c (n_parallel × n_ctx) -np n_parallel".
 * The config's n_ctx is therefore the per-request window; info() reports it, clipped to what
 * llama.cpp actually gave each sequence (llama_n_ctx_seq). A unified pool would let one long
 * request borrow the others' room, but then any request could fail mid-generation when the pool
 * runs dry, and a gateway has to promise its context window.
 *
 * The decode loop. Each step: admit queued requests into idle slots (render the template,
 * tokenize, pick the idle slot whose cache shares the longest prefix, drop the rest of its cache);
 * drop cancelled calls; build one batch from one pending token per generating slot plus up to
 * n_batch prompt tokens from prompt-processing slots (oldest request first); decode; sample each
 * slot that produced logits with its own sampler chain; turn tokens into text events. A slot is
 * freed within one step of a cancel. The engine sleeps on a condition variable when no slot is
 * busy.
 *
 * Event delivery. Events are made on the engine thread but delivered on the call's loop: each
 * event is copied (strings included) onto the call's list, and the call's libevent event (created
 * with event_new(base, -1, 0, ...), never added) is made active with event_active, which wakes the
 * loop (the process must have called evthread_use_pthreads() before creating the base). The
 * callback drains the list, calls on_event for each, and calls on_done once the engine has released
 * the call. event_active runs under lc->mu, and the callback reads "released" under it too, so
 * once the loop sees released the engine has finished touching the call. */
#include "backend/backend.h"
#include "backend/local_chat.h"

#include <errno.h>
#include <event2/event.h>
#include <llama.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOCAL_QUEUE_MAX        128  /* requests waiting for a slot; more → SB_EFULL */
#define LOCAL_CTX_DEFAULT_CAP  8192 /* n_ctx 0 = the training context, at most this */
#define LOCAL_PARALLEL_DEFAULT 4
#define LOCAL_BATCH_DEFAULT    512
#define LOCAL_PROMPT_TEXT_MAX  (64u << 20) /* a rendered chat prompt, in bytes */
#define LOCAL_HELD_MAX         (1u << 20)  /* text held back while it may start a stop sequence */
#define LOCAL_OUTPUT_MAX       (64u << 20) /* a tool request's buffered output */
#define LOCAL_PENALTY_LAST_N   64          /* tokens the repetition penalties look back on */
#define LOCAL_MAX_STOPS        (SB_MAX_STOP + 4) /* the request's, plus the chat format's own */

/* Sampling defaults for fields the request leaves unset: llama-server's. */
#define LOCAL_TEMP_DEFAULT  0.8f
#define LOCAL_TOP_K_DEFAULT 40
#define LOCAL_TOP_P_DEFAULT 0.95f
#define LOCAL_MIN_P_DEFAULT 0.05f

/* -----------------------------------------------------------------------------------------------
 * Types
 * --------------------------------------------------------------------------------------------- */

/* One event copied off the engine thread; its strings live in data. */
struct lev {
    struct lev *next;
    struct sb_event ev;
    char data[];
};

/* The backend's side of one sb_call (call->backend_data), from start() until on_done. */
struct lcall {
    struct sb_call *call; /* the owner's */
    struct event *wake;   /* on call->base; the engine activates it */
    pthread_mutex_t mu;   /* guards head, tail, released */
    struct lev *head, *tail;
    bool released;         /* the engine will not touch the call again */
    atomic_bool canceled;  /* set by cancel(), read by the engine */
    bool broken;           /* engine only: an event could not be copied (out of memory) */
    bool owner_canceled;   /* loop only: no more on_event */
    bool ended;            /* loop only: the terminal event was delivered */
    struct lev *oom_error; /* preallocated, ends a broken stream */
};

enum slot_state { SLOT_IDLE, SLOT_PROMPT, SLOT_GEN };

/* One sequence of the context. Engine thread only. */
struct slot {
    llama_seq_id seq;
    enum slot_state state;
    struct lcall *lc; /* NULL when idle */
    /* [n_ctx_slot]: [0, n_cache) is what the KV cache holds for this sequence (kept after the
     * request ends, for prefix reuse); while the prompt is evaluated, [n_cache, n_prompt) is the
     * rest of it. */
    llama_token *tokens;
    int32_t n_cache;
    int32_t n_prompt;
    int32_t n_reused;   /* prompt tokens served from the cache */
    int64_t n_decoded;  /* completion tokens, the end-of-generation token not counted */
    int64_t max_tokens; /* 0 = until the context is full */
    llama_token next;   /* sampled, to be decoded next step */
    int32_t i_batch;    /* the batch row whose logits this slot samples, or -1 */
    bool in_batch;
    uint64_t ticket; /* admission order (prompt fairness); when idle, last use (LRU) */
    struct llama_sampler *smpl;
    struct sb__chat_parser *parser; /* tool requests */
    bool tool_mode;
    struct sb_str stops[LOCAL_MAX_STOPS]; /* views into the request or the parser */
    size_t n_stops;
    struct sb_str stop_hit;
    bool stopped;
    struct sb_buf held; /* output not yet emitted: a possible stop start or a partial code point */
    struct sb_buf full; /* tool requests: all output, parsed at the end */
};

struct local_backend {
    struct sb_backend base;
    char *name;
    int64_t created;
    /* What info() tells Ollama clients; fixed at creation. */
    int64_t file_size;
    int64_t size_vram;
    int64_t n_params;
    char family[64];
    const char *quantization; /* static */
    struct llama_model *model;
    const struct llama_vocab *vocab;
    struct llama_context *ctx;
    struct sb__chat_templates *tmpls;
    pthread_mutex_t tmpl_mu; /* the Jinja runtime is not known to be reentrant */
    int32_t n_ctx_slot;      /* the per-request context window */
    int32_t n_slots;
    int32_t prompt_budget; /* prompt tokens per decode step */
    struct slot *slots;
    struct llama_batch batch;
    bool batch_ok;
    uint64_t next_ticket;
    char *piece; /* engine scratch for llama_token_to_piece */
    int32_t piece_cap;

    pthread_mutex_t mu; /* guards the queue and stopping */
    pthread_cond_t cv;
    bool sync_ok;
    struct lcall *queue[LOCAL_QUEUE_MAX];
    size_t q_head, q_len;
    bool stopping;
    pthread_t thread;
    bool thread_started;
};

/* -----------------------------------------------------------------------------------------------
 * Event bridge: engine thread → loop thread
 * --------------------------------------------------------------------------------------------- */

/* Points v at the string views an event carries; returns how many. */
static size_t event_views(struct sb_event *ev, struct sb_str *v[3])
{
    switch (ev->type) {
    case SB_EV_START:
        v[0] = &ev->start.model;
        v[1] = &ev->start.backend;
        return 2;
    case SB_EV_TEXT: v[0] = &ev->text.text; return 1;
    case SB_EV_TOOL_CALL:
        v[0] = &ev->tool_call.id;
        v[1] = &ev->tool_call.name;
        v[2] = &ev->tool_call.arguments;
        return 3;
    case SB_EV_FINISH: v[0] = &ev->finish.stop_sequence; return 1;
    case SB_EV_ERROR: v[0] = &ev->error.message; return 1;
    default: return 0;
    }
}

/* Returns a malloc'd copy of ev whose views point into the copy, or NULL when out of memory. */
static struct lev *lev_copy(const struct sb_event *ev)
{
    struct sb_event tmp = *ev;
    struct sb_str *v[3];
    size_t n = event_views(&tmp, v);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        total += v[i]->len;
    }
    struct lev *e = malloc(sizeof *e + total + 1);
    if (!e) {
        return NULL;
    }
    e->next = NULL;
    e->ev = tmp;
    n = event_views(&e->ev, v);
    char *p = e->data;
    for (size_t i = 0; i < n; i++) {
        if (v[i]->len) {
            memcpy(p, v[i]->p, v[i]->len);
            v[i]->p = p;
            p += v[i]->len;
        } else {
            *v[i] = SB_STR_NULL;
        }
    }
    return e;
}

/* Appends e to the call's list and wakes its loop. Engine thread. Takes ownership of e. */
static void lc_push(struct lcall *lc, struct lev *e, bool release)
{
    pthread_mutex_lock(&lc->mu);
    if (e) {
        if (lc->tail) {
            lc->tail->next = e;
        } else {
            lc->head = e;
        }
        lc->tail = e;
    }
    lc->released = lc->released || release;
    /* Under the lock: once the loop reads released, this call has returned. */
    event_active(lc->wake, 0, 0);
    pthread_mutex_unlock(&lc->mu);
}

/* Sends an event to the call's owner (copied; ev's views may die after the call). Engine thread.
 * A copy that fails marks the stream broken: nothing more is sent and the release ends it with an
 * out-of-memory error, so the owner never sees a stream with a hole in it. */
static void lc_post(struct lcall *lc, const struct sb_event *ev)
{
    if (lc->broken || atomic_load(&lc->canceled)) {
        return;
    }
    struct lev *e = lev_copy(ev);
    if (!e) {
        lc->broken = true;
        return;
    }
    lc_push(lc, e, false);
}

/* Hands the call back to its loop: on_done follows the events already posted. The engine must not
 * touch lc afterwards. */
static void lc_release(struct lcall *lc)
{
    struct lev *tail = NULL;
    if (lc->broken && !atomic_load(&lc->canceled)) {
        tail = lc->oom_error;
        lc->oom_error = NULL;
    }
    lc_push(lc, tail, true);
}

static void lc_post_error(struct lcall *lc, int code, int http_status, const char *msg)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = http_status;
    ev.error.message = sb_str_c(msg);
    /* Server-side failures (decode, memory, unload) may pass on another try or another backend. */
    ev.error.retryable = http_status >= 500;
    lc_post(lc, &ev);
}

static void lc_free(struct lcall *lc)
{
    if (lc->wake) {
        event_free(lc->wake);
    }
    while (lc->head) {
        struct lev *e = lc->head;
        lc->head = e->next;
        free(e);
    }
    free(lc->oom_error);
    pthread_mutex_destroy(&lc->mu);
    free(lc);
}

/* The wake event's callback, on the call's loop thread: delivers what the engine posted. */
static void lc_deliver(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    struct lcall *lc = arg;
    struct sb_call *call = lc->call;
    pthread_mutex_lock(&lc->mu);
    struct lev *list = lc->head;
    lc->head = lc->tail = NULL;
    bool released = lc->released;
    pthread_mutex_unlock(&lc->mu);
    while (list) {
        struct lev *e = list;
        list = e->next;
        /* on_event may cancel; the flag is re-read before each event. */
        if (!lc->owner_canceled && !lc->ended) {
            lc->ended = e->ev.type == SB_EV_FINISH || e->ev.type == SB_EV_ERROR;
            call->on_event(call, &e->ev);
        }
        free(e);
    }
    if (released) {
        /* event_free from its own callback is allowed; it also drops a pending re-activation. */
        lc_free(lc);
        call->backend_data = NULL;
        call->on_done(call);
    }
}

/* Returns a new lcall for call, or NULL when out of memory. Loop thread. */
static struct lcall *lc_new(struct sb_call *call)
{
    static const char oom_msg[] = "the local model ran out of memory while answering";
    struct lcall *lc = calloc(1, sizeof *lc);
    if (!lc) {
        return NULL;
    }
    if (pthread_mutex_init(&lc->mu, NULL) != 0) {
        free(lc);
        return NULL;
    }
    lc->call = call;
    atomic_init(&lc->canceled, false);
    struct sb_event oom = {.type = SB_EV_ERROR};
    oom.error.code = SB_ENOMEM;
    oom.error.http_status = 500;
    oom.error.message = SB_STR_LIT(oom_msg);
    oom.error.retryable = true;
    lc->oom_error = lev_copy(&oom);
    lc->wake = event_new(call->base, -1, 0, lc_deliver, lc);
    if (!lc->oom_error || !lc->wake) {
        lc_free(lc);
        return NULL;
    }
    return lc;
}

/* -----------------------------------------------------------------------------------------------
 * Tokens and text
 * --------------------------------------------------------------------------------------------- */

/* Tokenizes text (special tokens written as text are parsed, as llama-server does). On success
 * *out is a malloc'd array of *n tokens that the caller frees. Returns 0, SB_ENOMEM or SB_ETOOBIG.
 */
static int tokenize(const struct llama_vocab *vocab, struct sb_str text, bool add_special,
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

/* Sends output text: as a TEXT event, or into the buffer a tool request parses at the end. */
static int slot_emit(struct slot *s, const char *p, size_t n)
{
    if (n == 0) {
        return SB_OK;
    }
    if (s->tool_mode) {
        return sb_buf_append(&s->full, p, n);
    }
    struct sb_event ev = {.type = SB_EV_TEXT};
    ev.text.text = (struct sb_str){p, n};
    lc_post(s->lc, &ev);
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

/* The idle slot to serve tokens[0, n) in: the one whose cache shares the longest prefix with it,
 * else the least recently used. *lcp receives the shared length. NULL when none is idle. */
static struct slot *slot_pick(struct local_backend *b, const llama_token *tokens, int32_t n,
                              int32_t *lcp)
{
    struct slot *best = NULL;
    *lcp = 0;
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (s->state != SLOT_IDLE) {
            continue;
        }
        int32_t k = 0;
        int32_t lim = SB_MIN(s->n_cache, n);
        while (k < lim && s->tokens[k] == tokens[k]) {
            k++;
        }
        if (!best || k > *lcp || (k == *lcp && s->ticket < best->ticket)) {
            best = s;
            *lcp = k;
        }
    }
    return best;
}

/* Makes the slot's cache hold tokens[0, keep) and nothing else; returns how many it kept. Some
 * caches cannot drop a tail (recurrent models) or have evicted the start (sliding window): those
 * start over. */
static int32_t slot_trim_cache(struct local_backend *b, struct slot *s, int32_t keep)
{
    llama_memory_t mem = llama_get_memory(b->ctx);
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
static void slot_release(struct local_backend *b, struct slot *s)
{
    lc_release(s->lc);
    s->lc = NULL;
    s->state = SLOT_IDLE;
    s->i_batch = -1;
    s->ticket = ++b->next_ticket;
    llama_sampler_free(s->smpl);
    s->smpl = NULL;
    sb__chat_parser_free(s->parser);
    s->parser = NULL;
    /* held stays small and is reused; full can be large, so it goes. */
    sb_buf_reset(&s->held);
    sb_buf_free(&s->full);
    sb_buf_init(&s->full, LOCAL_OUTPUT_MAX);
}

static void slot_fail(struct local_backend *b, struct slot *s, int code, int status,
                      const char *msg)
{
    lc_post_error(s->lc, code, status, msg);
    slot_release(b, s);
}

/* Starts serving a request in slot s: tokens[0, n) is its prompt and the first lcp of them are in
 * the slot's cache. Takes ownership of parser. Returns 0 or SB_ENOMEM (the slot stays idle). */
static int slot_begin(struct local_backend *b, struct slot *s, struct lcall *lc,
                      const llama_token *tokens, int32_t n, int32_t lcp,
                      struct sb__chat_parser *parser)
{
    const struct sb_request *req = lc->call->req;
    s->smpl = sampler_new(b->vocab, &req->sampling);
    if (!s->smpl) {
        sb__chat_parser_free(parser);
        return SB_ENOMEM;
    }
    /* At least the last prompt token is evaluated again: its logits give the first output token. */
    int32_t kept = slot_trim_cache(b, s, SB_MIN(lcp, n - 1));
    memcpy(s->tokens + kept, tokens + kept, (size_t)(n - kept) * sizeof *tokens);
    s->lc = lc;
    s->state = SLOT_PROMPT;
    s->n_prompt = n;
    s->n_reused = kept;
    s->n_decoded = 0;
    s->max_tokens = req->max_tokens > 0 ? req->max_tokens : 0;
    s->i_batch = -1;
    s->ticket = ++b->next_ticket;
    s->parser = parser;
    s->tool_mode = parser != NULL;
    s->stopped = false;
    s->stop_hit = SB_STR_NULL;
    slot_set_stops(s, req);

    /* echo is the codec's business: it prepends the prompt itself. */
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb_str_c(b->name);
    ev.start.backend = sb_str_c(b->name);
    ev.start.attempts = 1;
    lc_post(lc, &ev);
    return SB_OK;
}

/* Tool requests: parses the whole output into content and calls, and sends them. Returns the
 * finish reason (TOOL_CALLS when the model called a tool). Output that does not follow the model's
 * tool format is sent as plain text. Buffering until the end keeps this simple; streaming tool
 * deltas would parse partial output each step instead. */
static enum sb_finish_reason slot_emit_tools(struct slot *s, enum sb_finish_reason reason)
{
    struct sb_str text = sb_buf_view(&s->full);
    struct sb__chat_message *m = NULL;
    struct sb_event ev = {.type = SB_EV_TEXT};
    if (sb__chat_parse(s->parser, text, &m) != SB_OK) {
        ev.text.text = text;
        if (text.len) {
            lc_post(s->lc, &ev);
        }
        return reason;
    }
    ev.text.text = sb__chat_message_content(m);
    if (ev.text.text.len) {
        lc_post(s->lc, &ev);
    }
    size_t n = sb__chat_message_n_calls(m);
    for (size_t i = 0; i < n; i++) {
        char id[40];
        struct sb_tool_call c = sb__chat_message_call(m, i);
        if (c.id.len == 0) {
            sb_random_id(id, sizeof id, "call_");
            c.id = sb_str_c(id);
        }
        struct sb_event tc = {.type = SB_EV_TOOL_CALL};
        tc.tool_call.index = (int32_t)i;
        tc.tool_call.id = c.id;
        tc.tool_call.name = c.name;
        tc.tool_call.arguments = c.arguments;
        lc_post(s->lc, &tc);
    }
    sb__chat_message_free(m);
    return n > 0 ? SB_FINISH_TOOL_CALLS : reason;
}

/* Ends a request normally: the rest of the text, USAGE, FINISH. */
static void slot_finish(struct local_backend *b, struct slot *s, enum sb_finish_reason reason)
{
    if (!s->stopped && slot_flush_text(s) != SB_OK) {
        slot_fail(b, s, SB_ENOMEM, 500, "the local model's output is too large");
        return;
    }
    if (s->tool_mode) {
        reason = slot_emit_tools(s, reason);
    }
    struct sb_event ev = {.type = SB_EV_USAGE};
    ev.usage.prompt_tokens = s->n_prompt;
    ev.usage.cached_prompt_tokens = s->n_reused;
    ev.usage.completion_tokens = s->n_decoded;
    lc_post(s->lc, &ev);
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = reason;
    ev.finish.stop_sequence = s->stopped ? s->stop_hit : SB_STR_NULL;
    lc_post(s->lc, &ev);
    slot_release(b, s);
}

/* Returns the text of a token in the engine's scratch buffer (*n bytes), or NULL when out of
 * memory. Special tokens render as nothing: they are markup, not text. */
static const char *token_piece(struct local_backend *b, llama_token tok, int32_t *n)
{
    *n = llama_token_to_piece(b->vocab, tok, b->piece, b->piece_cap, 0, false);
    if (*n < 0) {
        char *grown = realloc(b->piece, (size_t) - *n);
        if (!grown) {
            return NULL;
        }
        b->piece = grown;
        b->piece_cap = -*n;
        *n = llama_token_to_piece(b->vocab, tok, b->piece, b->piece_cap, 0, false);
    }
    return *n >= 0 ? b->piece : NULL;
}

/* Handles one sampled token: the end of generation, a stop string, a limit, or text. Every finish
 * keeps prompt + completion within the context window: the last token is sampled from the
 * logits at the window's last used position and never decoded itself. */
static void slot_on_token(struct local_backend *b, struct slot *s, llama_token tok)
{
    if (atomic_load(&s->lc->canceled)) {
        slot_release(b, s);
        return;
    }
    /* The end-of-generation token is not text and not counted (llama-server and OpenAI count only
     * the tokens of the answer). */
    if (llama_vocab_is_eog(b->vocab, tok)) {
        slot_finish(b, s, SB_FINISH_STOP);
        return;
    }
    s->n_decoded++;
    int32_t n = 0;
    const char *piece = token_piece(b, tok, &n);
    int rc = piece ? slot_push_text(s, piece, (size_t)n) : SB_ENOMEM;
    if (rc < 0) {
        slot_fail(b, s, rc, 500, "the local model ran out of memory while answering");
    } else if (rc == 1) {
        slot_finish(b, s, SB_FINISH_STOP);
    } else if (s->max_tokens > 0 && s->n_decoded >= s->max_tokens) {
        slot_finish(b, s, SB_FINISH_LENGTH);
    } else if (s->n_cache + 1 >= b->n_ctx_slot) {
        slot_finish(b, s, SB_FINISH_LENGTH);
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
static int request_tokens(struct local_backend *b, const struct sb_request *req, llama_token **toks,
                          int32_t *n, struct sb__chat_parser **parser, char *err, size_t err_size)
{
    *parser = NULL;
    if (req->kind == SB_REQ_COMPLETION) {
        int rc = tokenize(b->vocab, req->prompt, true, toks, n);
        if (rc != SB_OK) {
            snprintf(err, err_size, "the prompt could not be tokenized: %s", sb_strerror(rc));
        }
        return rc;
    }
    bool tools = req->n_tools > 0 && req->tool_choice != SB_TOOL_CHOICE_NONE;
    struct sb_buf text;
    sb_buf_init(&text, LOCAL_PROMPT_TEXT_MAX);
    pthread_mutex_lock(&b->tmpl_mu);
    int rc = sb__chat_render(b->tmpls, req, &text, tools ? parser : NULL, err, err_size);
    pthread_mutex_unlock(&b->tmpl_mu);
    if (rc == SB_OK) {
        rc = tokenize(b->vocab, sb_buf_view(&text), true, toks, n);
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
static void admit(struct local_backend *b, struct lcall *lc)
{
    const struct sb_request *req = lc->call->req;
    llama_token *toks = NULL;
    int32_t n = 0;
    struct sb__chat_parser *parser = NULL;
    char err[512];
    int rc = request_tokens(b, req, &toks, &n, &parser, err, sizeof err);
    if (rc != SB_OK) {
        lc_post_error(lc, rc, prompt_error_status(rc), err);
        goto fail;
    }
    if (n == 0) {
        lc_post_error(lc, SB_EINVAL, 400, "the prompt is empty");
        goto fail;
    }
    if (n + 1 > b->n_ctx_slot) {
        snprintf(err, sizeof err,
                 "This model's maximum context length is %d tokens, but the prompt is %d tokens. "
                 "Shorten the prompt.",
                 b->n_ctx_slot, n);
        lc_post_error(lc, SB_ECONTEXT, 400, err);
        goto fail;
    }
    int32_t lcp = 0;
    struct slot *s = slot_pick(b, toks, n, &lcp);
    if (!s) { /* cannot happen: the engine takes no more calls than it has idle slots */
        lc_post_error(lc, SB_ESTATE, 500, "no slot was free for the request");
        goto fail;
    }
    rc = slot_begin(b, s, lc, toks, n, lcp, parser);
    parser = NULL;
    if (rc != SB_OK) {
        lc_post_error(lc, rc, 500, "the local model ran out of memory");
        goto fail;
    }
    free(toks);
    return;
fail:
    sb__chat_parser_free(parser);
    free(toks);
    lc_release(lc);
}

static int32_t idle_slots(const struct local_backend *b)
{
    int32_t n = 0;
    for (int32_t i = 0; i < b->n_slots; i++) {
        n += b->slots[i].state == SLOT_IDLE;
    }
    return n;
}

/* Takes what the loop threads left in the queue: cancelled calls are released, and as many calls as
 * there are idle slots are admitted. Returns false when the backend is stopping. */
static bool engine_take_queue(struct local_backend *b)
{
    struct lcall *taken[LOCAL_QUEUE_MAX];
    struct lcall *dropped[LOCAL_QUEUE_MAX];
    size_t n_taken = 0, n_dropped = 0, kept = 0;
    size_t want = (size_t)idle_slots(b);
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    /* Compacts the ring in place: cancelled calls leave now, not when they reach the front. */
    for (size_t i = 0; i < b->q_len; i++) {
        struct lcall *lc = b->queue[(b->q_head + i) % LOCAL_QUEUE_MAX];
        if (atomic_load(&lc->canceled)) {
            dropped[n_dropped++] = lc;
        } else if (n_taken < want) {
            taken[n_taken++] = lc;
        } else {
            b->queue[(b->q_head + kept++) % LOCAL_QUEUE_MAX] = lc;
        }
    }
    b->q_len = kept;
    pthread_mutex_unlock(&b->mu);
    for (size_t i = 0; i < n_dropped; i++) {
        lc_release(dropped[i]);
    }
    for (size_t i = 0; i < n_taken; i++) {
        admit(b, taken[i]);
    }
    return true;
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
static struct slot *oldest_prompt_slot(struct local_backend *b)
{
    struct slot *best = NULL;
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (s->state == SLOT_PROMPT && !s->in_batch && (!best || s->ticket < best->ticket)) {
            best = s;
        }
    }
    return best;
}

/* Fills the batch: each generating slot's pending token, then prompt chunks up to the budget.
 * Returns the number of tokens in it. */
static int32_t engine_build_batch(struct local_backend *b)
{
    struct llama_batch *batch = &b->batch;
    batch->n_tokens = 0;
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        s->in_batch = false;
        if (s->state == SLOT_GEN) {
            s->i_batch = batch->n_tokens;
            s->in_batch = true;
            batch_add(batch, s->next, s->n_cache, s->seq, true);
            s->tokens[s->n_cache++] = s->next;
        }
    }
    int32_t budget = b->prompt_budget;
    struct slot *s;
    while (budget > 0 && (s = oldest_prompt_slot(b)) != NULL) {
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
static void engine_decode(struct local_backend *b)
{
    int rc = llama_decode(b->ctx, b->batch);
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (!s->in_batch) {
            continue;
        }
        s->in_batch = false;
        if (rc != 0) {
            sb_log(SB_LOG_ERROR, s->lc->call->req->id, "local model %s: llama_decode failed (%d)",
                   b->name, rc);
            llama_memory_seq_rm(llama_get_memory(b->ctx), s->seq, -1, -1);
            s->n_cache = 0;
            slot_fail(b, s, SB_EBACKEND, 500, "the local model failed to evaluate the request");
            continue;
        }
        if (s->i_batch < 0) {
            continue; /* a prompt chunk that is not the last */
        }
        llama_token tok = llama_sampler_sample(s->smpl, b->ctx, s->i_batch);
        s->i_batch = -1;
        s->state = SLOT_GEN;
        slot_on_token(b, s, tok);
    }
}

/* Frees slots whose call was cancelled (or whose stream broke), without further events. */
static void engine_reap(struct local_backend *b)
{
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (s->lc && (atomic_load(&s->lc->canceled) || s->lc->broken)) {
            slot_release(b, s);
        }
    }
}

/* Ends every call still held when the backend stops. */
static void engine_drain(struct local_backend *b)
{
    static const char msg[] = "the local model was unloaded before the request finished";
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        if (s->lc) {
            slot_fail(b, s, SB_EBACKEND, 503, msg);
        }
    }
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < b->q_len; i++) {
        struct lcall *lc = b->queue[(b->q_head + i) % LOCAL_QUEUE_MAX];
        lc_post_error(lc, SB_EBACKEND, 503, msg);
        lc_release(lc);
    }
    b->q_len = 0;
    pthread_mutex_unlock(&b->mu);
}

static void *engine_main(void *arg)
{
    struct local_backend *b = arg;
    while (engine_take_queue(b)) {
        engine_reap(b);
        if (engine_build_batch(b) > 0) {
            engine_decode(b);
            continue;
        }
        /* No slot is busy, so every queued call was admitted: sleep until start() or free(). */
        pthread_mutex_lock(&b->mu);
        while (!b->stopping && b->q_len == 0) {
            pthread_cond_wait(&b->cv, &b->mu);
        }
        pthread_mutex_unlock(&b->mu);
    }
    engine_drain(b);
    return NULL;
}

/* -----------------------------------------------------------------------------------------------
 * Creation and teardown
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
static int check_gguf(const char *name, const char *path, int64_t *size, char *err, size_t err_size)
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
    struct stat st;
    *size = fstat(fileno(f), &st) == 0 ? (int64_t)st.st_size : 0;
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

/* Fills what info() reports about the weights. size_vram is an estimate: the share of the
 * layers offloaded (llama.cpp does not report per-device weight bytes through its C API). */
static void describe_model(struct local_backend *b, int32_t gpu_layers)
{
    b->n_params = (int64_t)llama_model_n_params(b->model);
    if (llama_model_meta_val_str(b->model, "general.architecture", b->family, sizeof b->family) <
        0) {
        b->family[0] = '\0';
    }
    enum llama_ftype ft = llama_model_ftype(b->model);
    b->quantization = llama_ftype_name(ft);
    /* Older files carry no file type; llama.cpp then guesses it from the tensors. */
    int known = (int)ft & ~(int)LLAMA_FTYPE_GUESSED;
    for (size_t i = 0; i < SB_ARRAY_LEN(ftype_names); i++) {
        if ((int)ftype_names[i].ftype == known) {
            b->quantization = ftype_names[i].name;
        }
    }
    int64_t weights = (int64_t)llama_model_size(b->model);
    int32_t layers = llama_model_n_layer(b->model) + 1; /* the output layer counts as one */
    if (!llama_supports_gpu_offload() || gpu_layers == 0) {
        b->size_vram = 0;
    } else if (gpu_layers < 0 || gpu_layers >= layers) {
        b->size_vram = weights;
    } else {
        b->size_vram = weights * gpu_layers / layers;
    }
}

/* Resolved engine sizes: the config's, with its zeros replaced by defaults. */
struct local_sizes {
    int32_t n_ctx, n_slots, n_batch, n_threads;
};

static struct local_sizes resolve_sizes(const struct sb_model_config *cfg,
                                        const struct llama_model *model)
{
    struct local_sizes z;
    int32_t train = llama_model_n_ctx_train(model);
    z.n_ctx = cfg->n_ctx > 0
                  ? cfg->n_ctx
                  : SB_MIN(train > 0 ? train : LOCAL_CTX_DEFAULT_CAP, LOCAL_CTX_DEFAULT_CAP);
    z.n_slots = cfg->n_parallel > 0 ? cfg->n_parallel : LOCAL_PARALLEL_DEFAULT;
    z.n_batch = cfg->n_batch > 0 ? cfg->n_batch : LOCAL_BATCH_DEFAULT;
    /* One core stays with the I/O threads: on a small machine, decoding on every core starves the
     * event loops and the llama.cpp threads spin against each other. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    z.n_threads = cfg->n_threads > 0 ? cfg->n_threads : (int32_t)SB_MAX(1L, cores - 1);
    return z;
}

/* Creates the llama_context: n_slots sequences with their own n_ctx cells each (see the top of
 * the file), a batch large enough for one prompt chunk plus one token per slot. */
static int make_context(struct local_backend *b, struct local_sizes z, char *err, size_t err_size)
{
    if ((size_t)z.n_slots > llama_max_parallel_sequences()) {
        snprintf(err, err_size, "model %s: parallel: %d is more than llama.cpp's limit of %zu",
                 b->name, z.n_slots, llama_max_parallel_sequences());
        return SB_EINVAL;
    }
    if ((int64_t)z.n_ctx * z.n_slots > INT32_MAX / 2) {
        snprintf(err, err_size, "model %s: context × parallel (%d × %d) is too large", b->name,
                 z.n_ctx, z.n_slots);
        return SB_EINVAL;
    }
    /* llama.cpp rounds each sequence's cells up to a multiple of 256; asking for exactly that
     * keeps it from re-deriving the total. The window we enforce stays z.n_ctx. */
    int32_t cells = (z.n_ctx + 255) / 256 * 256;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = (uint32_t)(cells * z.n_slots);
    /* Room for a prompt chunk of n_batch plus one generated token per slot; llama.cpp would clip
     * a batch larger than the whole context anyway. */
    cp.n_batch = (uint32_t)SB_MIN((int64_t)z.n_batch + z.n_slots, (int64_t)cells * z.n_slots);
    cp.n_seq_max = (uint32_t)z.n_slots;
    cp.n_threads = z.n_threads;
    cp.n_threads_batch = z.n_threads;
    cp.kv_unified = false;
    cp.no_perf = true;
    b->ctx = llama_init_from_model(b->model, cp);
    if (!b->ctx) {
        snprintf(err, err_size,
                 "model %s: llama.cpp could not create a context of %d × %d tokens "
                 "(see the log above); lower context: or parallel:",
                 b->name, z.n_slots, z.n_ctx);
        return SB_EBACKEND;
    }
    b->n_slots = z.n_slots;
    b->n_ctx_slot = SB_MIN(z.n_ctx, (int32_t)llama_n_ctx_seq(b->ctx));
    b->prompt_budget = SB_MAX(1, (int32_t)llama_n_batch(b->ctx) - z.n_slots);
    b->batch = llama_batch_init(b->prompt_budget + b->n_slots, 0, 1);
    b->batch_ok = true;
    return SB_OK;
}

static int make_slots(struct local_backend *b)
{
    b->slots = calloc((size_t)b->n_slots, sizeof *b->slots);
    b->piece_cap = 256;
    b->piece = malloc((size_t)b->piece_cap);
    if (!b->slots || !b->piece) {
        return SB_ENOMEM;
    }
    for (int32_t i = 0; i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        s->seq = i;
        s->i_batch = -1;
        sb_buf_init(&s->held, LOCAL_HELD_MAX);
        sb_buf_init(&s->full, LOCAL_OUTPUT_MAX);
        s->tokens = malloc((size_t)b->n_ctx_slot * sizeof *s->tokens);
        if (!s->tokens) {
            return SB_ENOMEM;
        }
    }
    return SB_OK;
}

/* Frees whatever a backend holds; works on a partly created one. The engine must be stopped. */
static void backend_destroy(struct local_backend *b)
{
    for (int32_t i = 0; b->slots && i < b->n_slots; i++) {
        struct slot *s = &b->slots[i];
        llama_sampler_free(s->smpl);
        sb__chat_parser_free(s->parser);
        sb_buf_free(&s->held);
        sb_buf_free(&s->full);
        free(s->tokens);
    }
    free(b->slots);
    free(b->piece);
    if (b->batch_ok) {
        llama_batch_free(b->batch);
    }
    sb__chat_templates_free(b->tmpls);
    if (b->ctx) {
        llama_free(b->ctx);
    }
    if (b->model) {
        llama_model_free(b->model);
    }
    if (b->sync_ok) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->tmpl_mu);
    }
    free(b->name);
    free(b);
}

static int make_sync(struct local_backend *b)
{
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        return SB_ENOMEM;
    }
    if (pthread_mutex_init(&b->tmpl_mu, NULL) != 0) {
        pthread_mutex_destroy(&b->mu);
        return SB_ENOMEM;
    }
    if (pthread_cond_init(&b->cv, NULL) != 0) {
        pthread_mutex_destroy(&b->tmpl_mu);
        pthread_mutex_destroy(&b->mu);
        return SB_ENOMEM;
    }
    b->sync_ok = true;
    return SB_OK;
}

static int local_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                        size_t err_size)
{
    *out = NULL;
    const char *name = cfg->name ? cfg->name : "local";
    int64_t file_size = 0;
    int rc = check_gguf(name, cfg->path, &file_size, err, err_size);
    if (rc != SB_OK) {
        return rc;
    }
    pthread_once(&g_llama_once, llama_global_init);
    struct local_backend *b = calloc(1, sizeof *b);
    if (!b || !(b->name = strdup(name)) || make_sync(b) != SB_OK) {
        snprintf(err, err_size, "model %s: out of memory", name);
        rc = SB_ENOMEM;
        goto fail;
    }
    b->base.ops = &sb_local_backend_ops;
    b->created = sb_unix_time();
    b->file_size = file_size;
    struct llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = cfg->gpu_layers;
    b->model = llama_model_load_from_file(cfg->path, mp);
    if (!b->model) {
        snprintf(err, err_size,
                 "model %s: llama.cpp could not load %s (see the log above); the file may be "
                 "truncated or use an architecture this build does not know",
                 name, cfg->path);
        rc = SB_EBACKEND;
        goto fail;
    }
    b->vocab = llama_model_get_vocab(b->model);
    describe_model(b, cfg->gpu_layers);
    rc = make_context(b, resolve_sizes(cfg, b->model), err, err_size);
    if (rc != SB_OK) {
        goto fail;
    }
    char terr[400];
    rc = sb__chat_templates_new(b->model, cfg->chat_template, &b->tmpls, terr, sizeof terr);
    if (rc != SB_OK) {
        snprintf(err, err_size, "model %s: chat_template: %s", name, terr);
        goto fail;
    }
    rc = make_slots(b);
    if (rc != SB_OK) {
        snprintf(err, err_size, "model %s: out of memory", name);
        goto fail;
    }
    if (pthread_create(&b->thread, NULL, engine_main, b) != 0) {
        snprintf(err, err_size, "model %s: cannot start the engine thread", name);
        rc = SB_EIO;
        goto fail;
    }
    b->thread_started = true;
    sb_log(SB_LOG_INFO, NULL, "local model %s: %s, context %d tokens × %d slots, template %s", name,
           cfg->path, b->n_ctx_slot, b->n_slots,
           sb__chat_templates_explicit(b->tmpls) ? "from the model/config" : "ChatML (fallback)");
    *out = &b->base;
    return SB_OK;
fail:
    if (b) {
        backend_destroy(b);
    }
    return rc;
}

/* Stops the engine and frees the model. What it requires: no start() runs concurrently or later.
 * The header asks for every call to have had on_done first; if some have not (shutdown), they are
 * ended with SB_EBACKEND/503 and their on_done arrives on their own loops after this returns, so
 * those loops must still run (a loop freed first leaks those calls). That delivery touches nothing
 * of the backend, and cancel() stays safe for such calls. */
static void local_free(struct sb_backend *base)
{
    struct local_backend *b = (struct local_backend *)base;
    if (b->thread_started) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    backend_destroy(b);
}

/* -----------------------------------------------------------------------------------------------
 * Operations on the loop threads
 * --------------------------------------------------------------------------------------------- */

static bool request_has_images(const struct sb_request *req)
{
    for (size_t i = 0; i < req->n_messages; i++) {
        for (size_t j = 0; j < req->messages[i].n_parts; j++) {
            if (req->messages[i].parts[j].type != SB_PART_TEXT) {
                return true;
            }
        }
    }
    return false;
}

/* Validates and queues; the engine does the rest. Embeddings come with a later change. */
static int local_start(struct sb_backend *base, struct sb_call *call)
{
    struct local_backend *b = (struct local_backend *)base;
    if (!call || !call->req || !call->base || !call->on_event || !call->on_done) {
        return SB_EINVAL;
    }
    const struct sb_request *req = call->req;
    if (req->kind == SB_REQ_EMBED || (req->kind == SB_REQ_CHAT && request_has_images(req))) {
        return SB_EUNSUPPORTED;
    }
    if (req->kind == SB_REQ_CHAT && req->n_messages == 0) {
        return SB_EINVAL;
    }
    struct lcall *lc = lc_new(call);
    if (!lc) {
        return SB_ENOMEM;
    }
    int rc = SB_OK;
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        rc = SB_ESTATE;
    } else if (b->q_len == LOCAL_QUEUE_MAX) {
        rc = SB_EFULL;
    } else {
        call->backend_data = lc;
        b->queue[(b->q_head + b->q_len++) % LOCAL_QUEUE_MAX] = lc;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != SB_OK) {
        lc_free(lc);
    }
    return rc;
}

/* Lock-free, and it does not touch the backend, so it is safe even after free() (while on_done is
 * still on its way). The engine needs no wake-up: it sleeps only when no slot is busy and the queue
 * is empty, and then every call it was given has already been released. */
static void local_cancel(struct sb_backend *base, struct sb_call *call)
{
    SB_UNUSED(base);
    struct lcall *lc = call->backend_data;
    if (!lc) {
        return;
    }
    lc->owner_canceled = true;
    atomic_store(&lc->canceled, true);
}

/* Everything info reports is fixed at creation, so it needs no lock. */
static void local_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    const struct local_backend *b = (const struct local_backend *)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "local";
    out->n_ctx = b->n_ctx_slot;
    out->ready = true;
    out->embeddings = false;
    out->created = b->created;
    out->size = b->file_size;
    out->size_vram = b->size_vram;
    out->n_params = b->n_params;
    out->family = b->family[0] ? b->family : NULL;
    out->quantization = b->quantization;
}

/* Counts text's own tokens: no BOS, so counts of parts add up. llama_tokenize is thread-safe. */
static int local_count_tokens(struct sb_backend *base, struct sb_str text, int64_t *out)
{
    struct local_backend *b = (struct local_backend *)base;
    llama_token *toks = NULL;
    int32_t n = 0;
    int rc = tokenize(b->vocab, text, false, &toks, &n);
    free(toks);
    *out = rc == SB_OK ? n : 0;
    return rc;
}

static int local_tokenize(struct sb_backend *base, struct sb_str text, bool add_special,
                          int32_t **tokens, size_t *n)
{
    struct local_backend *b = (struct local_backend *)base;
    int32_t count = 0;
    int rc = tokenize(b->vocab, text, add_special, tokens, &count);
    *n = rc == SB_OK ? (size_t)count : 0;
    return rc;
}

static int local_render_prompt(struct sb_backend *base, const struct sb_request *req,
                               struct sb_buf *out)
{
    struct local_backend *b = (struct local_backend *)base;
    if (req->kind == SB_REQ_COMPLETION) {
        return sb_buf_append_str(out, req->prompt);
    }
    if (req->kind != SB_REQ_CHAT) {
        return SB_EUNSUPPORTED;
    }
    char err[256];
    pthread_mutex_lock(&b->tmpl_mu);
    int rc = sb__chat_render(b->tmpls, req, out, NULL, err, sizeof err);
    pthread_mutex_unlock(&b->tmpl_mu);
    return rc;
}

const struct sb_backend_ops sb_local_backend_ops = {
    .kind = "local",
    .create = local_create,
    .start = local_start,
    .cancel = local_cancel,
    .info = local_info,
    .count_tokens = local_count_tokens,
    .tokenize = local_tokenize,
    .render_prompt = local_render_prompt,
    .free = local_free,
};
