/* The local backend: GGUF models served in-process by llama.cpp, each with its own worker thread
 * that loads it, runs its engine (local_engine.c, local_embed.c) and unloads it.
 *
 * Threads. start(), cancel() and event delivery run on the caller's loop thread (call->base);
 * info(), count_tokens(), tokenize() and render_prompt() on any thread. Each model has one worker
 * thread, which alone loads, decodes and unloads: loading never runs on an I/O thread. The loop
 * threads and the worker share only the model's bounded queue and state (b->mu) and, per call,
 * its event list (local_call.c).
 *
 * Lifecycle. A `load: startup` model is loaded by create(), before the server listens (a failure
 * fails create, and `serve` exits); a `load: lazy` one by its worker when its first request
 * arrives. While a model loads (or waits for room under max_loaded, local_pool.c) its requests
 * wait in its queue and their queue time runs. A load that fails ends the waiting requests with
 * 503 and the model answers 503 at once for LOCAL_RETRY_S; the next request after that tries
 * again. Other models are untouched. A loaded model unloads when keep_alive runs out after its last
 * request (0: as soon as it is idle; -1: never), or when the pool needs its room; its next
 * request loads it again. Every transition is made by the worker under b->mu and logged.
 *
 * keep_alive per request (Ollama's). A request that carries one replaces the model's keep_alive
 * when the engine takes it from the queue (so queued requests apply theirs in order), and it stays
 * in force until the model unloads; the next load starts from the configured value again, as an
 * Ollama runner does. An unload request (SB_MODEL_OP_UNLOAD) is answered at once, without a load:
 * a loaded (or loading) model gets keep_alive 0 and unloads as soon as it is idle.
 *
 * Admission. The queue holds `queue` calls; one more is refused with SB_EFULL (429) while the
 * model is loaded, SB_ESTATE (503 "loading") while it is not. Requests a model cannot serve at all
 * (embeddings on a generation model, or the reverse) are accepted and answered 400 with a message
 * that says so. */
#include "backend/local_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define LOCAL_RETRY_S 30 /* after a failed load, requests fail fast this long */
#define LOCAL_WAIT_SLICE_MS                                                                        \
    250 /* while waiting for room, cancelled calls are dropped this often                          \
         */
#define NS_PER_S 1000000000ull

static const char unload_msg[] = "the local model was unloaded before the request finished";

/* -----------------------------------------------------------------------------------------------
 * Queue and accounting (shared with the engine)
 * --------------------------------------------------------------------------------------------- */

/* mu held. */
static void queue_push(struct local_backend *b, struct lcall *lc)
{
    b->queue[(b->q_head + b->q_len++) % b->q_cap] = lc;
    sb_metrics_set(b->m_queue_depth, (int64_t)b->q_len);
}

/* mu held; q_len > 0. */
static struct lcall *queue_pop(struct local_backend *b)
{
    struct lcall *lc = b->queue[b->q_head];
    b->q_head = (b->q_head + 1) % b->q_cap;
    b->q_len--;
    sb_metrics_set(b->m_queue_depth, (int64_t)b->q_len);
    return lc;
}

bool sb__local_queue_take(struct local_backend *b, size_t want, struct lcall **taken,
                          size_t *n_taken)
{
    *n_taken = 0;
    size_t n_dropped = 0;
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        pthread_mutex_unlock(&b->mu);
        return false;
    }
    if (b->evict) {
        want = 0;
    }
    /* Compacts the ring in place: cancelled calls leave now, not when they reach the front. */
    size_t kept = 0;
    for (size_t i = 0; i < b->q_len; i++) {
        struct lcall *lc = b->queue[(b->q_head + i) % b->q_cap];
        if (atomic_load(&lc->canceled)) {
            b->dropped[n_dropped++] = lc;
        } else if (*n_taken < want) {
            taken[(*n_taken)++] = lc;
        } else {
            b->queue[(b->q_head + kept++) % b->q_cap] = lc;
        }
    }
    b->q_len = kept;
    sb_metrics_set(b->m_queue_depth, (int64_t)b->q_len);
    if (*n_taken > 0) {
        b->last_used_ns = sb_now_ns();
        b->last_used_unix = sb_unix_time();
    }
    for (size_t i = 0; i < *n_taken; i++) {
        const struct sb_request *req = taken[i]->call->req;
        if (req->has_keep_alive) {
            b->keep_alive_ns = req->keep_alive_ns;
        }
    }
    pthread_mutex_unlock(&b->mu);
    /* After the gauge moved: an owner that sees on_done sees the queue without its call. */
    for (size_t i = 0; i < n_dropped; i++) {
        sb__lc_release(b->dropped[i]);
    }
    return true;
}

void sb__local_post_start(struct local_backend *b, struct lcall *lc)
{
    uint64_t waited = sb_now_ns() - lc->t_queued_ns;
    sb_metrics_observe(b->m_queue_seconds, (double)waited / 1e9);
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb_str_c(b->name);
    ev.start.backend = sb_str_c(b->name);
    ev.start.attempts = 1;
    ev.start.queue_ms = (uint32_t)SB_MIN(waited / 1000000u, (uint64_t)UINT32_MAX);
    sb__lc_post(lc, &ev);
}

void sb__local_busy_add(struct local_backend *b, int delta)
{
    atomic_fetch_add(&b->busy, delta);
    sb_metrics_gauge_add(b->m_busy, delta);
}

/* Ends every queued call with ERROR 503. Worker thread; takes mu for each call. */
static void fail_queue(struct local_backend *b, const char *msg, uint32_t retry_after_ms)
{
    for (;;) {
        pthread_mutex_lock(&b->mu);
        struct lcall *lc = b->q_len > 0 ? queue_pop(b) : NULL;
        pthread_mutex_unlock(&b->mu);
        if (!lc) {
            return;
        }
        sb__lc_post_error(lc, SB_EBACKEND, 503, retry_after_ms, msg);
        sb__lc_release(lc);
    }
}

/* -----------------------------------------------------------------------------------------------
 * The worker: load, serve, unload
 * --------------------------------------------------------------------------------------------- */

/* What a request to a model whose load failed is told (the log has the details). */
static void failed_message(const struct local_backend *b, char *out, size_t size)
{
    snprintf(out, size,
             "Model '%s' failed to load, so it cannot serve requests (the server log says why). "
             "Retry later or use another model.",
             b->name);
}

/* Unloaded: waits for a request and marks the model loading. A model whose load failed less than
 * LOCAL_RETRY_S ago fails its requests without trying again. Returns false when stopping. */
static bool worker_wait_demand(struct local_backend *b)
{
    char msg[256];
    pthread_mutex_lock(&b->mu);
    for (;;) {
        if (b->stopping) {
            pthread_mutex_unlock(&b->mu);
            return false;
        }
        uint64_t since = sb_now_ns() - b->failed_ns;
        if (b->q_len > 0 && b->state == LOCAL_FAILED && since < LOCAL_RETRY_S * NS_PER_S) {
            pthread_mutex_unlock(&b->mu);
            failed_message(b, msg, sizeof msg);
            fail_queue(b, msg, (uint32_t)((LOCAL_RETRY_S * NS_PER_S - since) / 1000000u));
            pthread_mutex_lock(&b->mu);
            continue;
        }
        if (b->q_len > 0) {
            break;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
    b->state = LOCAL_LOADING;
    pthread_mutex_unlock(&b->mu);
    return true;
}

/* Publishes the outcome of a load (its error is logged by the caller). */
static void set_loaded(struct local_backend *b, int rc)
{
    pthread_mutex_lock(&b->mu);
    if (rc == SB_OK) {
        b->state = LOCAL_LOADED;
        b->evict = false;
        b->loaded_at = sb_unix_time();
        b->last_used_ns = sb_now_ns();
        b->last_used_unix = b->loaded_at;
    } else {
        b->state = LOCAL_FAILED;
        b->failed_ns = sb_now_ns();
        b->keep_alive_ns = b->keep_alive_cfg_ns; /* an unload asked meanwhile has nothing left */
    }
    pthread_mutex_unlock(&b->mu);
}

/* Waits for room, then loads. On failure the model is FAILED and its queue is answered 503. */
static void worker_load(struct local_backend *b)
{
    int rc;
    size_t none = 0;
    while ((rc = sb__local_pool_acquire(b, true, LOCAL_WAIT_SLICE_MS)) == SB_ETIMEOUT) {
        sb__local_queue_take(b, 0, NULL, &none); /* drops cancelled calls */
    }
    if (rc != SB_OK) { /* stopping */
        pthread_mutex_lock(&b->mu);
        b->state = LOCAL_UNLOADED;
        pthread_mutex_unlock(&b->mu);
        return;
    }
    uint64_t t0 = sb_now_ns();
    char err[LOCAL_ERR_MAX] = "";
    struct local_engine *e = NULL;
    rc = sb__local_engine_load(b, &e, err, sizeof err);
    set_loaded(b, rc);
    if (rc != SB_OK) {
        sb_log(SB_LOG_ERROR, NULL, "local model %s failed to load: %s", b->name, err);
        sb__local_pool_release(b);
        char msg[256];
        failed_message(b, msg, sizeof msg);
        fail_queue(b, msg, LOCAL_RETRY_S * 1000u);
        return;
    }
    b->eng = e;
    sb_log(SB_LOG_INFO, NULL, "local model %s: loaded in %.2f s, context %d tokens × %d slots",
           b->name, (double)(sb_now_ns() - t0) / 1e9, e->n_ctx_slot, e->n_slots);
}

/* The engine is idle: waits for work. Returns true when the model should unload now (the pool
 * wants its room, or keep_alive ran out), false when there is work or the model is stopping. */
static bool worker_idle(struct local_backend *b, const char **why)
{
    bool unload = false;
    pthread_mutex_lock(&b->mu);
    b->last_used_ns = sb_now_ns();
    b->last_used_unix = sb_unix_time();
    for (;;) {
        if (b->stopping) {
            break;
        }
        /* Evicted with requests waiting: they wait for the next load (the engine admits nothing
         * while evict is set, so serving them first would never end). */
        if (b->evict) {
            *why = "its room is needed (max_loaded)";
            unload = true;
            break;
        }
        if (b->q_len > 0) {
            break;
        }
        /* Read on every wake: a request or an unload may have changed it meanwhile. */
        if (b->keep_alive_ns == 0) {
            *why = "keep_alive 0";
            unload = true;
            break;
        }
        if (b->keep_alive_ns < 0) {
            pthread_cond_wait(&b->cv, &b->mu);
            continue;
        }
        uint64_t ttl = (uint64_t)b->keep_alive_ns;
        uint64_t idle = sb_now_ns() - b->last_used_ns;
        if (idle >= ttl) {
            *why = "keep_alive ran out";
            unload = true;
            break;
        }
        struct timespec until = sb__local_deadline(ttl - idle);
        pthread_cond_timedwait(&b->cv, &b->mu, &until);
    }
    pthread_mutex_unlock(&b->mu);
    return unload;
}

static void worker_unload(struct local_backend *b, const char *why)
{
    pthread_mutex_lock(&b->mu);
    b->state = LOCAL_UNLOADING;
    /* A request's keep_alive lasts as long as this load; one that arrives from now on is for the
     * next load and is applied when that load takes it. */
    b->keep_alive_ns = b->keep_alive_cfg_ns;
    pthread_mutex_unlock(&b->mu);
    sb__local_engine_free(b->eng);
    b->eng = NULL;
    pthread_mutex_lock(&b->mu);
    b->state = LOCAL_UNLOADED;
    b->evict = false;
    pthread_mutex_unlock(&b->mu);
    sb__local_pool_release(b);
    sb_log(SB_LOG_INFO, NULL, "local model %s: unloaded (%s)", b->name, why);
}

static void *worker_main(void *arg)
{
    struct local_backend *b = arg;
    const char *why = "";
    for (;;) {
        if (!b->eng) {
            if (!worker_wait_demand(b)) {
                break;
            }
            worker_load(b);
            continue;
        }
        int r = sb__local_engine_step(b->eng);
        if (r < 0) {
            break;
        }
        if (r == 0 && worker_idle(b, &why)) {
            worker_unload(b, why);
        }
    }
    /* Stopping: every call still held is ended. */
    if (b->eng) {
        sb__local_engine_drain(b->eng, unload_msg);
        worker_unload(b, "the server is stopping");
    }
    fail_queue(b, unload_msg, 0);
    return NULL;
}

/* -----------------------------------------------------------------------------------------------
 * Creation and teardown
 * --------------------------------------------------------------------------------------------- */

/* Frees what a backend holds; works on a partly created one. The worker must have exited. */
static void backend_destroy(struct local_backend *b)
{
    sb__local_engine_free(b->eng);
    sb__chat_templates_free(b->tmpls);
    if (b->vocab_model) {
        llama_model_free(b->vocab_model);
    }
    if (b->sync_ok) {
        pthread_cond_destroy(&b->cv);
        pthread_mutex_destroy(&b->mu);
        pthread_mutex_destroy(&b->tmpl_mu);
    }
    free(b->queue);
    free(b->dropped);
    free(b->name);
    free(b->path);
    free(b->chat_template);
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
    if (sb__local_cond_init(&b->cv) != SB_OK) {
        pthread_mutex_destroy(&b->tmpl_mu);
        pthread_mutex_destroy(&b->mu);
        return SB_ENOMEM;
    }
    b->sync_ok = true;
    return SB_OK;
}

/* Copies what the backend keeps of its config entry. Returns 0 or SB_ENOMEM. */
static int copy_config(struct local_backend *b, const struct sb_model_config *cfg)
{
    b->sizes = (struct local_sizes){.n_ctx = cfg->n_ctx,
                                    .n_slots = cfg->n_parallel,
                                    .n_batch = cfg->n_batch,
                                    .n_threads = cfg->n_threads,
                                    .gpu_layers = cfg->gpu_layers};
    b->embeddings = cfg->embeddings;
    b->lazy = cfg->load && strcmp(cfg->load, "lazy") == 0;
    b->keep_alive_cfg_ns =
        cfg->keep_alive < 0 ? SB_KEEP_ALIVE_FOREVER : (int64_t)cfg->keep_alive * (int64_t)NS_PER_S;
    b->keep_alive_ns = b->keep_alive_cfg_ns;
    b->q_cap = cfg->queue_size > 0 ? (size_t)cfg->queue_size : LOCAL_QUEUE_DEFAULT;
    b->queue = calloc(b->q_cap, sizeof *b->queue);
    b->dropped = calloc(b->q_cap, sizeof *b->dropped);
    b->path = cfg->path ? strdup(cfg->path) : NULL;
    b->chat_template = cfg->chat_template ? strdup(cfg->chat_template) : NULL;
    bool ok = b->queue && b->dropped && (b->path || !cfg->path) &&
              (b->chat_template || !cfg->chat_template);
    return ok ? SB_OK : SB_ENOMEM;
}

static int local_create(const struct sb_model_config *cfg, struct sb_backend **out, char *err,
                        size_t err_size)
{
    *out = NULL;
    const char *name = cfg->name ? cfg->name : "local";
    int rc = SB_ENOMEM;
    bool registered = false;
    struct local_backend *b = calloc(1, sizeof *b);
    if (!b || !(b->name = strdup(name)) || make_sync(b) != SB_OK || copy_config(b, cfg) != SB_OK) {
        snprintf(err, err_size, "model %s: out of memory", name);
        goto fail;
    }
    b->base.ops = &sb_local_backend_ops;
    atomic_init(&b->vocab_ready, false);
    atomic_init(&b->busy, 0);
    b->loaded_at = sb_unix_time();
    const char *labels[] = {b->name};
    b->m_queue_depth = sb_metrics_series(SB_METRIC_QUEUE_DEPTH, labels);
    b->m_busy = sb_metrics_series(SB_METRIC_BUSY_SLOTS, labels);
    b->m_queue_seconds = sb_metrics_series(SB_METRIC_QUEUE_SECONDS, labels);
    sb_metrics_set(b->m_queue_depth, 0);
    sb_metrics_set(b->m_busy, 0);
    if (!b->path || !*b->path) {
        snprintf(err, err_size, "model %s: no path is configured; set its path: to a .gguf file",
                 name);
        rc = SB_EINVAL;
        goto fail;
    }
    struct stat st;
    b->file_size = stat(b->path, &st) == 0 ? (int64_t)st.st_size : 0;
    sb__local_pool_register(b);
    registered = true;
    if (b->lazy && sb__local_vocab_load(b, err, err_size) != SB_OK) {
        /* Not fatal for a lazy model: its first request tries again and answers 503 if it fails. */
        sb_log(SB_LOG_WARN, NULL, "local model %s (lazy): %s", name, err);
        err[0] = '\0';
    }
    if (!b->lazy) {
        rc = sb__local_pool_acquire(b, false, 0);
        if (rc != SB_OK) {
            snprintf(err, err_size,
                     "model %s: load: startup, but local.max_loaded models are loaded already; "
                     "mark it load: lazy or raise max_loaded",
                     name);
            goto fail;
        }
        rc = sb__local_engine_load(b, &b->eng, err, err_size);
        set_loaded(b, rc);
        if (rc != SB_OK) {
            sb__local_pool_release(b);
            goto fail;
        }
    }
    /* Logged before the worker starts: from then on the engine is the worker's (keep_alive 0
     * may unload it at once). */
    if (b->lazy) {
        sb_log(SB_LOG_INFO, NULL, "local model %s: %s, loaded on its first request", name, b->path);
    } else {
        sb_log(SB_LOG_INFO, NULL, "local model %s: %s, context %d tokens × %d slots, %s", name,
               b->path, b->eng->n_ctx_slot, b->eng->n_slots,
               b->embeddings                           ? "embeddings"
               : sb__chat_templates_explicit(b->tmpls) ? "template from the model/config"
                                                       : "template ChatML (fallback)");
    }
    if (pthread_create(&b->thread, NULL, worker_main, b) != 0) {
        snprintf(err, err_size, "model %s: cannot start its worker thread", name);
        rc = SB_EIO;
        if (b->eng) {
            sb__local_engine_free(b->eng);
            b->eng = NULL;
            sb__local_pool_release(b);
        }
        goto fail;
    }
    b->thread_started = true;
    *out = &b->base;
    return SB_OK;
fail:
    if (registered) {
        sb__local_pool_unregister(b);
    }
    if (b) {
        backend_destroy(b);
    }
    return rc;
}

/* Stops the worker (which ends what it holds and unloads) and frees the model. What it requires:
 * no start() runs concurrently or later. The header asks for every call to have had on_done
 * first; if some have not (shutdown), they are ended with SB_EBACKEND/503 and their on_done
 * arrives on their own loops after this returns, so those loops must still run (a loop freed first
 * leaks those calls). That delivery touches nothing of the backend, and cancel() stays safe for
 * such calls. */
static void local_free(struct sb_backend *base)
{
    struct local_backend *b = (struct local_backend *)base;
    if (b->thread_started) {
        pthread_mutex_lock(&b->mu);
        b->stopping = true;
        pthread_cond_broadcast(&b->cv);
        pthread_mutex_unlock(&b->mu);
        sb__local_pool_wake(); /* in case the worker waits for room */
        pthread_join(b->thread, NULL);
    }
    sb__local_pool_unregister(b);
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

/* Accepts a call only to answer it 400 with msg: a request this model can never serve, told in
 * words (a start() error code has none). */
static int start_refuse(struct lcall *lc, int code, const char *msg)
{
    lc->call->backend_data = lc;
    sb__lc_post_error(lc, code, 400, 0, msg);
    sb__lc_release(lc);
    return SB_OK;
}

/* An unload request: see the file comment. It is answered with an empty turn (START, USAGE of
 * nothing, FINISH) whatever the model's state, as Ollama answers one for a model that is not
 * loaded; it never waits for the unload itself. Works on embedding models too. */
static int start_unload(struct local_backend *b, struct sb_call *call)
{
    struct lcall *lc = sb__lc_new(call);
    if (!lc) {
        return SB_ENOMEM;
    }
    pthread_mutex_lock(&b->mu);
    /* Queued calls on an unloaded model are a load about to start: it unloads after them. */
    bool resident = b->state == LOCAL_LOADED || b->state == LOCAL_LOADING ||
                    (b->state == LOCAL_UNLOADED && b->q_len > 0);
    if (resident && !b->stopping) {
        b->keep_alive_ns = 0;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    sb_log(SB_LOG_INFO, call->req->id, "local model %s: unload asked%s", b->name,
           resident ? "" : " (it is not loaded)");
    call->backend_data = lc;
    struct sb_event ev = {.type = SB_EV_START};
    ev.start.model = sb_str_c(b->name);
    ev.start.backend = sb_str_c(b->name);
    ev.start.attempts = 1;
    sb__lc_post(lc, &ev);
    ev = (struct sb_event){.type = SB_EV_USAGE};
    sb__lc_post(lc, &ev);
    ev = (struct sb_event){.type = SB_EV_FINISH};
    ev.finish.reason = SB_FINISH_STOP;
    sb__lc_post(lc, &ev);
    sb__lc_release(lc);
    return SB_OK;
}

static int local_start(struct sb_backend *base, struct sb_call *call)
{
    struct local_backend *b = (struct local_backend *)base;
    if (!call || !call->req || !call->base || !call->on_event || !call->on_done) {
        return SB_EINVAL;
    }
    const struct sb_request *req = call->req;
    if (req->model_op == SB_MODEL_OP_UNLOAD) {
        return start_unload(b, call);
    }
    if (req->kind == SB_REQ_CHAT && request_has_images(req)) {
        return SB_EUNSUPPORTED;
    }
    if (req->kind == SB_REQ_CHAT && req->n_messages == 0) {
        return SB_EINVAL;
    }
    struct lcall *lc = sb__lc_new(call);
    if (!lc) {
        return SB_ENOMEM;
    }
    char msg[256];
    if ((req->kind == SB_REQ_EMBED) != b->embeddings) {
        snprintf(msg, sizeof msg,
                 b->embeddings ? "model %s serves embeddings only (it is configured with "
                                 "embeddings: true); use another model to generate text"
                               : "model %s does not serve embeddings; configure a model with "
                                 "embeddings: true for them",
                 b->name);
        return start_refuse(lc, SB_EUNSUPPORTED, msg);
    }
    int rc = SB_OK;
    pthread_mutex_lock(&b->mu);
    if (b->stopping) {
        rc = SB_ESTATE;
    } else if (b->q_len == b->q_cap) {
        /* A model that is not serving yet is unavailable (503); one that serves is busy (429). */
        rc = b->state == LOCAL_LOADED ? SB_EFULL : SB_ESTATE;
    } else {
        call->backend_data = lc;
        queue_push(b, lc);
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (rc != SB_OK) {
        sb__lc_free(lc);
    }
    return rc;
}

/* Lock-free, and it does not touch the backend, so it is safe even after free() (while on_done is
 * still on its way). The worker notices within one decode step, or, while the call waits for a
 * load, within LOCAL_WAIT_SLICE_MS of waiting for room (the load itself is not interrupted). */
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

static void local_info(const struct sb_backend *base, struct sb_backend_info *out)
{
    /* mu is not const, though info reads only. */
    struct local_backend *b = (struct local_backend *)(uintptr_t)base;
    *out = (struct sb_backend_info){0};
    out->name = b->name;
    out->kind = "local";
    out->embeddings = b->embeddings;
    out->size = b->file_size;
    pthread_mutex_lock(&b->mu);
    out->ready = b->state != LOCAL_FAILED && !b->stopping;
    out->loaded = b->state == LOCAL_LOADED;
    /* Queued calls on an unloaded model are a load about to start. */
    out->loading = b->state == LOCAL_LOADING || (b->state == LOCAL_UNLOADED && b->q_len > 0);
    out->failed = b->state == LOCAL_FAILED;
    out->queue_depth = (int32_t)b->q_len;
    out->busy_slots = atomic_load(&b->busy);
    out->n_slots = b->n_slots ? b->n_slots : b->sizes.n_slots;
    out->n_ctx = b->n_ctx_slot ? b->n_ctx_slot : b->sizes.n_ctx;
    out->created = b->loaded_at;
    if (out->loaded && b->keep_alive_ns >= 0) {
        bool busy = out->busy_slots > 0 || b->q_len > 0;
        /* Whole seconds, rounded up: a model is never reported gone before it is. */
        int64_t ttl_s = (int64_t)(((uint64_t)b->keep_alive_ns + NS_PER_S - 1) / NS_PER_S);
        out->expires_at = (busy ? sb_unix_time() : b->last_used_unix) + ttl_s;
    }
    if (b->described) {
        out->size_vram = out->loaded ? b->size_vram : 0;
        out->n_params = b->n_params;
        out->family = b->family[0] ? b->family : NULL;
        out->quantization = b->quantization;
    }
    pthread_mutex_unlock(&b->mu);
}

/* The tokenizer exists from creation, except for a lazy model whose file could not be read then
 * (until a load succeeds). */
static const struct llama_vocab *ready_vocab(const struct local_backend *b)
{
    return atomic_load(&b->vocab_ready) ? b->vocab : NULL;
}

/* Counts text's own tokens: no BOS, so counts of parts add up. llama_tokenize is thread-safe. */
static int local_count_tokens(struct sb_backend *base, struct sb_str text, int64_t *out)
{
    struct local_backend *b = (struct local_backend *)base;
    const struct llama_vocab *vocab = ready_vocab(b);
    llama_token *toks = NULL;
    int32_t n = 0;
    /* Only a lazy model whose file is unreadable has no tokenizer: it cannot count. */
    int rc = vocab ? sb__local_tokenize(vocab, text, false, &toks, &n) : SB_EUNSUPPORTED;
    free(toks);
    *out = rc == SB_OK ? n : 0;
    return rc;
}

static int local_tokenize(struct sb_backend *base, struct sb_str text, bool add_special,
                          int32_t **tokens, size_t *n)
{
    struct local_backend *b = (struct local_backend *)base;
    const struct llama_vocab *vocab = ready_vocab(b);
    int32_t count = 0;
    *tokens = NULL;
    int rc = vocab ? sb__local_tokenize(vocab, text, add_special, tokens, &count) : SB_ESTATE;
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
    if (!ready_vocab(b)) {
        return SB_ESTATE;
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
