/* The local backend's private vocabulary, shared by its files: local.c (operations and the model's
 * lifecycle), local_call.c (the event bridge to the loop threads), local_engine.c (loading and the
 * generation decode loop), local_embed.c (embeddings) and local_pool.c (max_loaded and LRU).
 * Nothing outside src/backend/local*.c includes it, except their unit tests. */
#ifndef SB_BACKEND_LOCAL_INTERNAL_H
#define SB_BACKEND_LOCAL_INTERNAL_H

#include "backend/backend.h"
#include "backend/local_chat.h"
#include "metrics/metrics.h"

#include <llama.h>
#include <pthread.h>
#include <stdatomic.h>

#define LOCAL_QUEUE_DEFAULT    128  /* requests waiting for a slot when the config says nothing */
#define LOCAL_CTX_DEFAULT_CAP  8192 /* n_ctx 0 = the training context, at most this */
#define LOCAL_PARALLEL_DEFAULT 4
#define LOCAL_BATCH_DEFAULT    512
#define LOCAL_PROMPT_TEXT_MAX  (64u << 20) /* a rendered chat prompt, in bytes */
#define LOCAL_HELD_MAX         (1u << 20)  /* text held back while it may start a stop sequence */
#define LOCAL_PENALTY_LAST_N   64          /* tokens the repetition penalties look back on */
#define LOCAL_MAX_STOPS        (SB_MAX_STOP + 4) /* the request's, plus the chat format's own */
#define LOCAL_ERR_MAX          512               /* a load error, for the log */

/* -----------------------------------------------------------------------------------------------
 * Calls and the event bridge (local_call.c)
 * --------------------------------------------------------------------------------------------- */

/* One event copied off the engine thread; its strings (and an embedding's floats) live in data. */
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
    uint64_t t_queued_ns;  /* when start() accepted it (sb_now_ns), for queue_ms */
};

/* Returns a new lcall for call, or NULL when out of memory. Loop thread. The caller frees it with
 * sb__lc_free only if it was never handed to an engine; otherwise the release frees it. */
struct lcall *sb__lc_new(struct sb_call *call);
void sb__lc_free(struct lcall *lc);
/* Sends an event to the call's owner (copied: ev's views may die after the call). Any thread; the
 * owner sees it on its loop later, never inside this call. A copy that fails marks the stream
 * broken, and the release then ends it with an out-of-memory error. */
void sb__lc_post(struct lcall *lc, const struct sb_event *ev);
/* Posts an ERROR event; retryable when http_status >= 500. retry_after_ms may be 0. */
void sb__lc_post_error(struct lcall *lc, int code, int http_status, uint32_t retry_after_ms,
                       const char *msg);
/* Hands the call back to its loop: on_done follows the events already posted. The caller must not
 * touch lc afterwards. */
void sb__lc_release(struct lcall *lc);

/* -----------------------------------------------------------------------------------------------
 * The model: configuration, lifecycle state, queue (local.c)
 * --------------------------------------------------------------------------------------------- */

enum local_state {
    LOCAL_UNLOADED,  /* nothing in memory; a request starts a load */
    LOCAL_LOADING,   /* waiting for room under max_loaded, or reading the weights */
    LOCAL_LOADED,    /* the engine serves */
    LOCAL_UNLOADING, /* the engine is being freed */
    LOCAL_FAILED,    /* the last load failed; requests fail with its error until a retry */
};

/* The engine sizes as configured; zeros mean "the default". */
struct local_sizes {
    int32_t n_ctx, n_slots, n_batch, n_threads, gpu_layers;
};

struct local_engine;
struct local_embed;

/* One configured local model. It lives from create() to free(), across any number of loads and
 * unloads; the weights and the llama_context live in eng, between a load and its unload. */
struct local_backend {
    struct sb_backend base;

    /* Fixed at creation. */
    char *name;
    char *path;
    char *chat_template; /* NULL = the GGUF's own */
    struct local_sizes sizes;
    bool embeddings;           /* serves SB_REQ_EMBED, and nothing else */
    bool lazy;                 /* loaded on its first request rather than at creation */
    int64_t keep_alive_cfg_ns; /* the configured keep_alive: ns, or SB_KEEP_ALIVE_FOREVER */
    size_t q_cap;
    int64_t file_size;
    struct sb_metric_series *m_queue_depth, *m_busy, *m_queue_seconds;

    /* The tokenizer and chat templates: a vocab-only copy of the model, loaded with the first
     * successful load and kept until free(), so that tokenize(), count_tokens() and
     * render_prompt() work while the weights are unloaded. Written once by the thread that loads,
     * published by vocab_ready (release); read by any thread after an acquire load of it. */
    atomic_bool vocab_ready;
    struct llama_model *vocab_model;
    const struct llama_vocab *vocab;
    struct sb__chat_templates *tmpls;
    pthread_mutex_t tmpl_mu; /* the Jinja runtime is not known to be reentrant */

    /* Guarded by mu. The loop threads and the worker share only these (and, per call, lc->mu). */
    pthread_mutex_t mu;
    pthread_cond_t cv; /* the worker waits on it (CLOCK_MONOTONIC) */
    struct lcall **queue;
    size_t q_head, q_len;
    enum local_state state;
    bool stopping;
    bool evict;            /* the pool wants the room: admit nothing more, unload once idle */
    uint64_t failed_ns;    /* when the last load failed (sb_now_ns) */
    uint64_t last_used_ns; /* last admission or last time idle: LRU order and keep_alive */
    /* The keep_alive in force (ns, or SB_KEEP_ALIVE_FOREVER): the configured one, replaced by
     * that of each request the engine takes (or an unload request) until the model unloads. */
    int64_t keep_alive_ns;
    int64_t last_used_unix; /* the same moment, for expires_at */
    int64_t loaded_at;      /* unix time of the last successful load (created, for /v1/models) */
    /* What info() tells, written by loads under mu; the strings are set once (first load). */
    int32_t n_ctx_slot;
    int32_t n_slots;
    int64_t size_vram;
    int64_t n_params;
    char family[64];
    const char *quantization; /* static */
    bool described;
    atomic_int busy; /* slots (or embedding jobs) serving a request; written by the worker */

    /* Guarded by the pool's lock (local_pool.c). */
    struct local_backend *pool_next;
    bool resident;        /* counts against max_loaded: loading, loaded or unloading */
    uint64_t wait_ticket; /* > 0 while waiting for room: first come, first served */

    /* The worker thread's own. */
    struct local_engine *eng; /* NULL when unloaded */
    struct lcall **dropped;   /* [q_cap]: cancelled calls leaving the queue in one take */
    pthread_t thread;
    bool thread_started;
    bool sync_ok;
};

/* -----------------------------------------------------------------------------------------------
 * The engine: one load of the model (local_engine.c). Worker thread only.
 * --------------------------------------------------------------------------------------------- */

enum slot_state { SLOT_IDLE, SLOT_PROMPT, SLOT_GEN };

/* One sequence of the context. */
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
    struct sb__chat_stream *stream; /* tool requests: the output parsed as it grows */
};

struct local_engine {
    struct local_backend *b; /* the owner; the engine reads its vocab, name and queue */
    struct llama_model *model;
    struct llama_context *ctx;
    int32_t n_ctx_slot;    /* the per-request context window */
    int32_t n_slots;       /* generation: sequences; embeddings: inputs per decode */
    int32_t prompt_budget; /* prompt tokens per decode step */
    struct slot *slots;    /* generation only */
    struct llama_batch batch;
    bool batch_ok;
    uint64_t next_ticket;
    char *piece; /* scratch for llama_token_to_piece */
    int32_t piece_cap;
    struct lcall **taken;      /* [n_slots]: calls taken from the queue in one step */
    struct local_embed *embed; /* embedding models only */
};

/* Loads the model for b (and, the first time, its tokenizer and templates): the weights, a
 * context sized from b->sizes, and the slots or embedding state. Slow; call it on the worker (or,
 * at creation, on the creating thread) with no lock held. Returns 0 and *out, which the caller
 * frees with sb__local_engine_free; or a negative code with a message in err. */
int sb__local_engine_load(struct local_backend *b, struct local_engine **out, char *err,
                          size_t err_size);
/* Loads the tokenizer and chat templates that outlive every load (vocab_model, tmpls) and sets
 * vocab_ready. Only the thread that loads calls it (the creator before the worker starts, then the
 * worker), so there is one writer. Returns 0, or a negative code with a message in err. */
int sb__local_vocab_load(struct local_backend *b, char *err, size_t err_size);
/* Frees everything a load made. No slot may hold a call. NULL is allowed. */
void sb__local_engine_free(struct local_engine *e);
/* One turn of the engine: takes queued calls (none while b->evict), drops cancelled ones, decodes
 * one batch. Returns 1 when it did work, 0 when idle (no request in a slot), -1 when b is stopping.
 */
int sb__local_engine_step(struct local_engine *e);
/* Ends every call in a slot with ERROR (503, msg), then releases it. */
void sb__local_engine_drain(struct local_engine *e, const char *msg);

/* Takes up to want queued calls into taken (in arrival order; *n_taken receives how many) and
 * releases those that were cancelled; nothing is taken while b->evict. Updates the queue-depth
 * gauge, the LRU time and the keep_alive in force (a taken request's own). Worker thread only.
 * Returns false when b is stopping (nothing taken). */
bool sb__local_queue_take(struct local_backend *b, size_t want, struct lcall **taken,
                          size_t *n_taken);
/* The START event for a call leaving the queue now; observes its queue time. */
void sb__local_post_start(struct local_backend *b, struct lcall *lc);
/* Tokenizes text with b's vocabulary (special tokens written as text are parsed). On success *out
 * is a malloc'd array of *n tokens the caller frees. Returns 0, SB_ENOMEM or SB_ETOOBIG. */
int sb__local_tokenize(const struct llama_vocab *vocab, struct sb_str text, bool add_special,
                       llama_token **out, int32_t *n);
/* Adds delta to the busy count and its gauge. */
void sb__local_busy_add(struct local_backend *b, int delta);

/* -----------------------------------------------------------------------------------------------
 * Embeddings (local_embed.c). Worker thread only.
 * --------------------------------------------------------------------------------------------- */

/* The pooling an embeddings context uses: the GGUF's own (<arch>.pooling_type), else mean. */
enum llama_pooling_type sb__local_embed_pooling(const struct llama_model *model);
/* Creates e->embed for a context made with embeddings on. Returns 0, SB_ENOMEM, or SB_EINVAL with
 * a message in err (a pooling this backend cannot serve). */
int sb__local_embed_new(struct local_engine *e, char *err, size_t err_size);
void sb__local_embed_free(struct local_embed *m);
/* How many more requests the embedder takes now. */
size_t sb__local_embed_room(const struct local_engine *e);
/* Takes a call (validating and tokenizing its inputs), or ends it with an error. */
void sb__local_embed_admit(struct local_engine *e, struct lcall *lc);
/* Releases jobs whose call was cancelled. */
void sb__local_embed_reap(struct local_engine *e);
/* Decodes one batch of inputs and sends their vectors. Returns true when it did work. */
bool sb__local_embed_step(struct local_engine *e);
/* Ends every job with ERROR (503, msg). */
void sb__local_embed_drain(struct local_engine *e, const char *msg);
/* Writes v[0, dim) scaled to unit L2 length into out[0, dim) (a zero vector stays zero): the
 * whole vector normalized when dim is its width, and a Matryoshka-shortened one when dim is less,
 * since shortening a unit vector and normalizing again is normalizing its first dim components.
 * out may be v. Pure; any thread. */
void sb__local_embed_normalize(const float *v, size_t dim, float *out);

/* -----------------------------------------------------------------------------------------------
 * The pool: every local model of the process, and max_loaded (local_pool.c)
 * Lock order: the pool's lock, then a backend's mu; never the reverse.
 * --------------------------------------------------------------------------------------------- */

void sb__local_pool_register(struct local_backend *b);
void sb__local_pool_unregister(struct local_backend *b);
/* Makes b resident (counted against max_loaded). With wait false it fails at once with SB_EFULL
 * when there is no room. With wait true it waits its turn (first come, first served), asking the
 * least recently used loaded model to unload when there is no room, and returns SB_ETIMEOUT after
 * about slice_ms so the caller can tend its queue and call again (its place is kept), or
 * SB_ECANCELED when b is stopping. */
int sb__local_pool_acquire(struct local_backend *b, bool wait, uint32_t slice_ms);
/* Gives back b's room, after its engine is freed. */
void sb__local_pool_release(struct local_backend *b);
/* Wakes every worker waiting for room (one of them may be stopping). */
void sb__local_pool_wake(void);

/* Returns a monotonic deadline ms milliseconds from now, for pthread_cond_timedwait on a condition
 * made with CLOCK_MONOTONIC. */
struct timespec sb__local_deadline(uint64_t ns_from_now);
/* Initializes a condition variable that waits on CLOCK_MONOTONIC. Returns 0 or SB_ENOMEM. */
int sb__local_cond_init(pthread_cond_t *cv);

#endif
