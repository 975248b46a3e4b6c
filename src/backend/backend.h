/* Backends turn a canonical request into a canonical event stream (core/canon.h). Each kind of
 * backend is one table of operations; the HTTP layer talks to all of them the same way. */
#ifndef SB_BACKEND_H
#define SB_BACKEND_H

#include "config/config.h"
#include "core/canon.h"

struct event_base;  /* libevent's loop; opaque here */
struct sb_upstream; /* the loop's HTTP client for remote backends (upstream/upstream.h) */
struct sb_backend;
struct sb_call;

/* Called on the loop thread of call->base for each event, in stream order. The event's views are
 * valid only during the call. */
typedef void (*sb_call_event_fn)(struct sb_call *call, const struct sb_event *ev);
/* Called on the loop thread exactly once, after the last event (or after a cancel), when the
 * backend holds no more references to the call or its request. The owner may free both then. */
typedef void (*sb_call_done_fn)(struct sb_call *call);

/* One request in flight against one backend. The caller (the HTTP layer) owns it and fills the
 * public fields before sb_backend_start; it must keep the call and req alive until on_done. */
struct sb_call {
    const struct sb_request *req; /* borrowed until on_done */
    struct event_base *base;      /* the loop that events are delivered on */
    struct sb_upstream *upstream; /* that loop's HTTP client; remote backends send through it */
    sb_call_event_fn on_event;
    sb_call_done_fn on_done;
    void *ud;           /* the owner's */
    void *backend_data; /* the backend's, between start and on_done */
};

/* What a backend can tell about itself (GET /v1/models, /ready, routing). */
struct sb_backend_info {
    const char *name; /* the alias, as configured */
    const char *kind; /* "local", ... */
    int64_t n_ctx;    /* context window in tokens, 0 if unknown */
    bool ready;       /* loaded and able to serve */
    bool embeddings;  /* serves SB_REQ_EMBED */
    int64_t created;  /* unix time the model was loaded, for /v1/models */
    /* For Ollama's /api/tags, /api/ps and /api/show; 0 or NULL where the backend cannot tell. */
    int64_t size;             /* bytes of the weights (the GGUF file) */
    int64_t size_vram;        /* bytes of them held in GPU memory */
    int64_t n_params;         /* parameter count */
    const char *family;       /* architecture, as GGUF's general.architecture ("llama") */
    const char *quantization; /* "Q4_K_M", "F16", ... */
    const char *digest;       /* sha256 of the weights, lowercase hex */
    int64_t expires_at;       /* unix time the model will be unloaded; 0 = it stays loaded */
    /* Lifecycle and load, for /api/ps, /ready and /metrics. Zero for backends that load nothing.
     * For a local model, ready means it can take requests: loaded, loading, or unloaded and able
     * to load on demand; it is false only after a failed load (until a retry succeeds). */
    bool loaded;         /* the weights are in memory now */
    bool loading;        /* a load is under way or waiting for room (requests queue meanwhile) */
    bool failed;         /* the last load failed: requests get 503 until a retry succeeds */
    int32_t queue_depth; /* requests waiting for a slot (or for the load) */
    int32_t busy_slots;  /* slots serving a request now */
    int32_t n_slots;     /* slots when loaded (the config's parallel) */
};

struct sb_backend_ops {
    const char *kind; /* the config's backend: value */
    /* Creates a backend from its config entry. Loading may be slow: it happens here, before the
     * server accepts connections. Returns 0 and *out, or a negative code with a message that says
     * what failed and what to do written into err (NUL-terminated, at most err_size bytes). */
    int (*create)(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                  size_t err_size);
    /* Begins serving call->req. Returns 0: events and then on_done will follow on call->base (the
     * first one after start has returned, never from inside it). Returns a negative code: nothing
     * will be called, and the request was not accepted. */
    int (*start)(struct sb_backend *b, struct sb_call *call);
    /* Asks the backend to stop serving a started call as soon as possible (within one decode step
     * for a local model). Call only on call->base's thread, before on_done. No on_event follows the
     * cancel; on_done still does. */
    void (*cancel)(struct sb_backend *b, struct sb_call *call);
    void (*info)(const struct sb_backend *b, struct sb_backend_info *out);
    /* Counts the tokens of text as this backend's model would; SB_EUNSUPPORTED if it cannot.
     * Thread-safe; may be called on any thread. */
    int (*count_tokens)(struct sb_backend *b, struct sb_str text, int64_t *out);
    /* Tokenizes text (with the model's BOS etc. when add_special). On success *tokens is a
     * malloc'd array of *n token ids that the caller frees. SB_EUNSUPPORTED for remote backends.
     * May be NULL. Thread-safe. */
    int (*tokenize)(struct sb_backend *b, struct sb_str text, bool add_special, int32_t **tokens,
                    size_t *n);
    /* Appends to out the exact prompt text a chat request becomes (template applied), the text
     * that is then tokenized with add_special. SB_EUNSUPPORTED for remote backends. May be NULL.
     * Thread-safe. */
    int (*render_prompt)(struct sb_backend *b, const struct sb_request *req, struct sb_buf *out);
    /* Stops the backend's threads and frees it. Every started call must have had on_done. */
    void (*free)(struct sb_backend *b);
};

/* Every backend begins with this header; the rest is the kind's own. */
struct sb_backend {
    const struct sb_backend_ops *ops;
};

/* Returns the operations for a backend kind ("local"), or NULL if the kind is unknown. */
const struct sb_backend_ops *sb_backend_find_ops(const char *kind);

/* Convenience wrappers over b->ops, with the same contracts. */
static inline int sb_backend_start(struct sb_backend *b, struct sb_call *call)
{
    return b->ops->start(b, call);
}
static inline void sb_backend_cancel(struct sb_backend *b, struct sb_call *call)
{
    b->ops->cancel(b, call);
}
static inline void sb_backend_info(const struct sb_backend *b, struct sb_backend_info *out)
{
    b->ops->info(b, out);
}
static inline void sb_backend_free(struct sb_backend *b)
{
    if (b)
        b->ops->free(b);
}

/* The local backend: an in-process llama.cpp engine (backend/local.c). */
extern const struct sb_backend_ops sb_local_backend_ops;

/* Applies what all local models share (config `local:`) to this process: max_loaded counts every
 * local backend created, whatever its config. Call before creating local backends (serve does it
 * once after loading the config); a later call changes the limit for loads that follow, and
 * unloads nothing by itself. Thread-safe. */
void sb_local_configure(const struct sb_local_config *cfg);

#endif
