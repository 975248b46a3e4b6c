/* The harness of the local backend's tests (test_local*.c): real test models, an event loop, and
 * calls that record what they receive and check the event-stream contract. Header-only. */
#ifndef SB_TEST_LOCAL_HARNESS_H
#define SB_TEST_LOCAL_HARNESS_H

#include "backend/backend.h"

#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_CHATML    "stories260K-chatml.gguf"
#define MODEL_PLAIN     "stories260K.gguf"
#define MODEL_RANDOM    "llama-2-tiny-random.gguf"
#define PROMPT          "Once upon a time"
#define RUN_MAX_VECTORS 16

/* -----------------------------------------------------------------------------------------------
 * Harness: a model, an event loop, and calls that record what they receive
 * --------------------------------------------------------------------------------------------- */

/* The test model's path: $SWITCHBOARD_MODELS, else ../shared/models (tests run from the repo
 * root). The caller frees it. */
static inline char *model_path(const char *file)
{
    const char *dir = getenv("SWITCHBOARD_MODELS");
    if (!dir || !*dir)
        dir = "../shared/models";
    struct sb_buf b;
    sb_buf_init(&b, 4096);
    cr_assert_eq(sb_buf_printf(&b, "%s/%s", dir, file), 0);
    return sb_buf_steal(&b);
}

/* A model entry as the config parser would fill it (keep_alive -1, queue 128, load startup) for
 * a file of the test models. The caller frees cfg->path. */
static inline struct sb_model_config model_config(const char *name, const char *file)
{
    struct sb_model_config cfg = {.name = (char *)name, .backend = "local"};
    cfg.path = model_path(file);
    cfg.keep_alive = -1; /* the config's default; a zeroed struct would mean "unload when idle" */
    cfg.queue_size = 128;
    return cfg;
}

/* Creates a backend from cfg, or fails the test. */
static inline struct sb_backend *open_config(const struct sb_model_config *cfg)
{
    struct sb_backend *b = NULL;
    char err[512] = "";
    int rc = sb_local_backend_ops.create(cfg, &b, err, sizeof err);
    cr_assert_eq(rc, 0, "create %s: %s", cfg->path, err);
    return b;
}

/* Creates a backend for file with the given context and slots (0 = defaults). */
static inline struct sb_backend *open_model(const char *file, int32_t n_ctx, int32_t n_parallel)
{
    struct sb_model_config cfg = model_config("test", file);
    cfg.n_ctx = n_ctx;
    cfg.n_parallel = n_parallel;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    return b;
}

/* One call and everything it received. */
struct run {
    struct sb_call call;
    struct sb_request req;
    struct sb_backend *b;
    struct sb_buf text;
    int n_start, n_text, n_tool, n_usage, n_finish, n_error, n_done;
    int n_after_end;    /* events after FINISH or ERROR: must stay 0 */
    int n_after_cancel; /* events after cancel(): must stay 0 */
    int n_split;        /* TEXT events that end inside a code point: must stay 0 */
    bool first_was_start;
    bool ended, canceled;
    int cancel_after_texts; /* cancel from on_event after this many TEXT events; 0 = never */
    struct sb_usage usage;
    enum sb_finish_reason reason;
    char stop_seq[128];
    int err_code, err_status;
    char err_msg[512];
    char err_param[64]; /* the field an ERROR named, or "" */
    uint32_t queue_ms;  /* from START */
    int n_embedding;
    float *vectors[RUN_MAX_VECTORS]; /* by input index, malloc'd */
    size_t dim;
    int n_misordered; /* EMBEDDING after USAGE, twice for one input, or dims that differ */
};

/* True when s ends inside a multi-byte UTF-8 sequence. */
static inline bool ends_mid_code_point(struct sb_str s)
{
    for (size_t back = 1; back <= 4 && back <= s.len; back++) {
        unsigned char c = (unsigned char)s.p[s.len - back];
        if ((c & 0xC0) != 0x80) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            return back < need;
        }
    }
    return false;
}

static inline void copy_view(char *dst, size_t size, struct sb_str s)
{
    size_t n = SB_MIN(s.len, size - 1);
    if (n)
        memcpy(dst, s.p, n);
    dst[n] = '\0';
}

static inline void on_event(struct sb_call *call, const struct sb_event *ev)
{
    struct run *r = call->ud;
    int seen = r->n_start + r->n_text + r->n_tool + r->n_usage + r->n_finish + r->n_error;
    if (seen == 0)
        r->first_was_start = ev->type == SB_EV_START;
    r->n_after_end += r->ended;
    r->n_after_cancel += r->canceled;
    switch (ev->type) {
    case SB_EV_START:
        r->n_start++;
        r->queue_ms = ev->start.queue_ms;
        break;
    case SB_EV_EMBEDDING: {
        r->n_embedding++;
        int32_t i = ev->embedding.index;
        cr_assert(i >= 0 && i < RUN_MAX_VECTORS, "embedding index %d", i);
        if (r->vectors[i] || r->n_usage || (r->dim && r->dim != ev->embedding.dim))
            r->n_misordered++;
        r->dim = ev->embedding.dim;
        free(r->vectors[i]);
        r->vectors[i] = malloc(ev->embedding.dim * sizeof(float));
        cr_assert_not_null(r->vectors[i]);
        memcpy(r->vectors[i], ev->embedding.values, ev->embedding.dim * sizeof(float));
        break;
    }
    case SB_EV_TEXT:
        r->n_text++;
        r->n_split += ends_mid_code_point(ev->text.text);
        cr_assert_eq(sb_buf_append_str(&r->text, ev->text.text), 0);
        break;
    case SB_EV_TOOL_CALL: r->n_tool++; break;
    case SB_EV_USAGE:
        r->n_usage++;
        r->usage = ev->usage;
        break;
    case SB_EV_FINISH:
        r->n_finish++;
        r->ended = true;
        r->reason = ev->finish.reason;
        copy_view(r->stop_seq, sizeof r->stop_seq, ev->finish.stop_sequence);
        break;
    case SB_EV_ERROR:
        r->n_error++;
        r->ended = true;
        r->err_code = ev->error.code;
        r->err_status = ev->error.http_status;
        copy_view(r->err_msg, sizeof r->err_msg, ev->error.message);
        copy_view(r->err_param, sizeof r->err_param, ev->error.param);
        break;
    }
    if (ev->type == SB_EV_TEXT && r->cancel_after_texts && r->n_text == r->cancel_after_texts) {
        sb_backend_cancel(r->b, call);
        r->canceled = true;
    }
}

static inline void on_done(struct sb_call *call)
{
    struct run *r = call->ud;
    r->n_done++;
}

/* Prepares a greedy completion of prompt with at most max_tokens tokens. */
static inline void run_init(struct run *r, struct sb_backend *b, struct event_base *base,
                            const char *prompt, int64_t max_tokens)
{
    memset(r, 0, sizeof *r);
    sb_request_init(&r->req);
    r->req.kind = SB_REQ_COMPLETION;
    r->req.prompt = sb_str_c(prompt);
    r->req.sampling.temperature = 0;
    r->req.max_tokens = max_tokens;
    r->b = b;
    sb_buf_init(&r->text, 1 << 20);
    r->call.req = &r->req;
    r->call.base = base;
    r->call.on_event = on_event;
    r->call.on_done = on_done;
    r->call.ud = r;
}

static inline void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    SB_UNUSED(fd);
    SB_UNUSED(what);
    SB_UNUSED(arg);
}

static inline struct event_base *base_new(void)
{
    struct event_base *base = event_base_new();
    cr_assert_not_null(base);
    return base;
}

/* Runs the loop until each of runs[0, n) has had on_done. A far-off persistent timer keeps the loop
 * blocking in the kernel (instead of returning "no events") while the engine works. */
static inline void wait_done(struct event_base *base, struct run *runs, size_t n)
{
    struct event *keep = event_new(base, -1, EV_PERSIST, keepalive_cb, NULL);
    struct timeval hour = {3600, 0};
    event_add(keep, &hour);
    for (size_t i = 0; i < n; i++) {
        while (runs[i].n_done == 0)
            event_base_loop(base, EVLOOP_ONCE);
    }
    event_free(keep);
}

/* Starts one run and waits for it. */
static inline void run_one(struct event_base *base, struct run *r)
{
    cr_assert_eq(sb_backend_start(r->b, &r->call), 0);
    wait_done(base, r, 1);
}

/* The invariants every finished stream keeps, whatever it was asked. */
static inline void assert_well_formed(const struct run *r)
{
    cr_assert_eq(r->n_done, 1, "on_done must be called exactly once");
    cr_assert_eq(r->n_after_end, 0, "no event may follow FINISH or ERROR");
    cr_assert_eq(r->n_split, 0, "a TEXT event split a code point");
    cr_assert_eq(r->n_misordered, 0, "embedding events out of contract");
    if (r->n_error == 0) {
        cr_assert(r->first_was_start, "START must come first");
        cr_assert_eq(r->n_start, 1);
        cr_assert_eq(r->n_usage, 1);
        cr_assert_eq(r->n_finish, 1);
    }
}

static inline void run_free(struct run *r)
{
    sb_buf_free(&r->text);
    for (int i = 0; i < RUN_MAX_VECTORS; i++)
        free(r->vectors[i]);
}

#endif
