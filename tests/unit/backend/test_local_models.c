/* Tests for the local models' lifecycle and admission, on the real stories260K models: lazy
 * loading, max_loaded with least-recently-used unloading, keep_alive, a model that fails to load
 * while another serves, the configurable queue and its 429/503 refusals, and the gauges. Nothing
 * here waits on the clock: tests run the loop until calls are done, or poll a condition. */
#include "local_harness.h"

#include "metrics/metrics.h"

#include <event2/thread.h>
#include <sched.h>
#include <unistd.h>

static void suite_init(void)
{
    evthread_use_pthreads();
    sb_log_set_level(SB_LOG_ERROR);
}

/* Each test runs in its own process, so each starts with an empty pool and fresh metrics. */
TestSuite(local_models, .init = suite_init, .timeout = 120);

static void set_max_loaded(int32_t n)
{
    struct sb_local_config lc = {.max_loaded = n};
    sb_local_configure(&lc);
}

static struct sb_backend_info info_of(struct sb_backend *b)
{
    struct sb_backend_info info;
    sb_backend_info(b, &info);
    return info;
}

/* Opens a model entry named name over file. */
static struct sb_backend *open_named(const char *name, const char *file, bool lazy,
                                     int32_t keep_alive)
{
    struct sb_model_config cfg = model_config(name, file);
    cfg.load = lazy ? "lazy" : "startup";
    cfg.keep_alive = keep_alive;
    cfg.n_parallel = 1;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    return b;
}

/* Runs one greedy completion to its end and checks that it succeeded. */
static void complete_ok(struct sb_backend *b, struct event_base *base, struct run *r)
{
    run_init(r, b, base, PROMPT, 8);
    run_one(base, r);
    assert_well_formed(r);
    cr_assert_eq(r->n_error, 0, "%s", r->err_msg);
    cr_assert_eq(r->n_finish, 1);
}

/* The value of a series in the /metrics text (a line "name{model="m"} value"), or -1. */
static double metric_value(const char *name, const char *model)
{
    struct sb_buf out, key;
    sb_buf_init(&out, 1 << 22);
    sb_buf_init(&key, 256);
    cr_assert_eq(sb_metrics_render(&out), 0);
    cr_assert_eq(sb_buf_printf(&key, "\n%s{model=\"%s\"} ", name, model), 0);
    const char *at = strstr(out.p, key.p);
    double v = at ? strtod(at + key.len, NULL) : -1;
    sb_buf_free(&out);
    sb_buf_free(&key);
    return v;
}

/* Polls until b's loaded flag is want; the suite's timeout stops a hang. */
static void await_loaded(struct sb_backend *b, bool want)
{
    while (info_of(b).loaded != want)
        sched_yield();
}

/* A file that starts like a GGUF but is not one: llama.cpp refuses it while loading. */
static char *corrupt_gguf(void)
{
    static char path[] = "/tmp/sb-test-corrupt-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    static const char bytes[] = "GGUF\x03\x00\x00\x00 this is not the rest of a model file";
    cr_assert_eq(write(fd, bytes, sizeof bytes), (ssize_t)sizeof bytes);
    close(fd);
    return path;
}

/* -----------------------------------------------------------------------------------------------
 * Lazy loading
 * --------------------------------------------------------------------------------------------- */

Test(local_models, a_lazy_model_loads_on_its_first_request)
{
    struct sb_backend *b = open_named("lazy", MODEL_CHATML, true, -1);
    struct sb_backend_info info = info_of(b);
    cr_assert_not(info.loaded);
    cr_assert(info.ready, "an unloaded lazy model can take requests");
    /* Its tokenizer is there before the weights are. */
    int64_t n = 0;
    cr_assert_eq(sb_local_backend_ops.count_tokens(b, sb_str_c(PROMPT), &n), 0);
    cr_assert_gt(n, 0);

    struct event_base *base = base_new();
    struct run r;
    complete_ok(b, base, &r);
    info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_eq(info.n_ctx, 2048);
    cr_assert_eq(info.expires_at, 0, "keep_alive -1 never expires");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

/* -----------------------------------------------------------------------------------------------
 * max_loaded and LRU
 * --------------------------------------------------------------------------------------------- */

Test(local_models, max_loaded_one_swaps_models_least_recently_used_first)
{
    set_max_loaded(1);
    struct sb_backend *a = open_named("a", MODEL_PLAIN, false, -1);
    struct sb_backend *b = open_named("b", MODEL_CHATML, true, -1);
    cr_assert(info_of(a).loaded);
    cr_assert_not(info_of(b).loaded);
    struct event_base *base = base_new();

    struct run first, on_b, again;
    complete_ok(a, base, &first);
    /* B's request needs A's room: A is unloaded before B loads. */
    complete_ok(b, base, &on_b);
    cr_assert_not(info_of(a).loaded, "A must have been unloaded for B");
    cr_assert(info_of(b).loaded);
    /* And A's next request loads A again, in B's room, with the same output as before. */
    complete_ok(a, base, &again);
    cr_assert(info_of(a).loaded);
    cr_assert_not(info_of(b).loaded, "B must have been unloaded for A");
    cr_assert_str_eq(first.text.p, again.text.p, "a reloaded model answers the same");
    cr_assert(info_of(a).ready && info_of(b).ready);

    run_free(&first);
    run_free(&on_b);
    run_free(&again);
    sb_backend_free(a);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, without_max_loaded_both_stay_loaded)
{
    struct sb_backend *a = open_named("a", MODEL_PLAIN, false, -1);
    struct sb_backend *b = open_named("b", MODEL_CHATML, true, -1);
    struct event_base *base = base_new();
    struct run ra, rb;
    complete_ok(b, base, &rb);
    complete_ok(a, base, &ra);
    cr_assert(info_of(a).loaded && info_of(b).loaded);
    run_free(&ra);
    run_free(&rb);
    sb_backend_free(a);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, startup_models_beyond_max_loaded_fail_to_create)
{
    set_max_loaded(1);
    struct sb_backend *a = open_named("a", MODEL_PLAIN, false, -1);
    struct sb_model_config cfg = model_config("b", MODEL_CHATML);
    struct sb_backend *b = NULL;
    char err[512] = "";
    cr_assert_eq(sb_local_backend_ops.create(&cfg, &b, err, sizeof err), SB_EFULL);
    cr_assert_null(b);
    cr_assert_not_null(strstr(err, "max_loaded"), "%s", err);
    free(cfg.path);
    sb_backend_free(a);
}

/* -----------------------------------------------------------------------------------------------
 * keep_alive
 * --------------------------------------------------------------------------------------------- */

Test(local_models, keep_alive_zero_unloads_after_use_and_reloads_on_demand)
{
    struct sb_backend *b = open_named("k0", MODEL_PLAIN, false, 0);
    struct event_base *base = base_new();
    struct run r1, r2;
    complete_ok(b, base, &r1);
    await_loaded(b, false);
    struct sb_backend_info info = info_of(b);
    cr_assert(info.ready);
    cr_assert_eq(info.busy_slots, 0);
    complete_ok(b, base, &r2);
    cr_assert_str_eq(r1.text.p, r2.text.p);
    await_loaded(b, false);
    run_free(&r1);
    run_free(&r2);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, a_positive_keep_alive_reports_when_the_model_expires)
{
    struct sb_backend *b = open_named("k", MODEL_PLAIN, false, 3600);
    struct event_base *base = base_new();
    struct run r;
    complete_ok(b, base, &r);
    struct sb_backend_info info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_geq(info.expires_at, sb_unix_time() + 3500);
    cr_assert_leq(info.expires_at, sb_unix_time() + 3600);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

/* -----------------------------------------------------------------------------------------------
 * keep_alive per request, and unload requests (Ollama's)
 * --------------------------------------------------------------------------------------------- */

/* Runs one greedy completion that carries keep_alive ns. */
static void complete_keeping(struct sb_backend *b, struct event_base *base, struct run *r,
                             int64_t ns)
{
    run_init(r, b, base, PROMPT, 8);
    r->req.has_keep_alive = true;
    r->req.keep_alive_ns = ns;
    run_one(base, r);
    assert_well_formed(r);
    cr_assert_eq(r->n_error, 0, "%s", r->err_msg);
}

/* Asks b to unload, as /api/generate with keep_alive 0 and no prompt does; checks the answer is an
 * empty turn. */
static void unload_ok(struct sb_backend *b, struct event_base *base)
{
    struct run r;
    run_init(&r, b, base, "", 1);
    r.req.kind = SB_REQ_CHAT; /* and no messages: the backend must not look at them */
    r.req.model_op = SB_MODEL_OP_UNLOAD;
    r.req.has_keep_alive = true;
    r.req.keep_alive_ns = 0;
    run_one(base, &r);
    assert_well_formed(&r);
    cr_assert_eq(r.n_error, 0, "%s", r.err_msg);
    cr_assert_eq(r.n_text, 0, "an unload generates nothing");
    cr_assert_eq(r.usage.prompt_tokens + r.usage.completion_tokens, 0);
    cr_assert_eq(r.reason, SB_FINISH_STOP);
    run_free(&r);
}

Test(local_models, a_request_keep_alive_zero_unloads_a_model_kept_forever)
{
    struct sb_backend *b = open_named("k", MODEL_PLAIN, false, -1);
    struct event_base *base = base_new();
    struct run r1, r2;
    complete_keeping(b, base, &r1, 0);
    await_loaded(b, false);
    /* The next load starts from the configured keep_alive (-1) again. */
    complete_ok(b, base, &r2);
    struct sb_backend_info info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_eq(info.expires_at, 0, "back to keep_alive -1 after the unload");
    cr_assert_str_eq(r1.text.p, r2.text.p);
    run_free(&r1);
    run_free(&r2);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, a_request_keep_alive_stays_in_force_for_later_requests)
{
    struct sb_backend *b = open_named("k", MODEL_PLAIN, false, -1);
    struct event_base *base = base_new();
    struct run r1, r2, r3;
    complete_keeping(b, base, &r1, INT64_C(3600) * 1000000000);
    struct sb_backend_info info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_geq(info.expires_at, sb_unix_time() + 3500);
    cr_assert_leq(info.expires_at, sb_unix_time() + 3600);
    /* A request that says nothing keeps the last one's keep_alive, as Ollama's runner does. */
    complete_ok(b, base, &r2);
    info = info_of(b);
    cr_assert_geq(info.expires_at, sb_unix_time() + 3500, "still an hour");
    complete_keeping(b, base, &r3, SB_KEEP_ALIVE_FOREVER);
    cr_assert_eq(info_of(b).expires_at, 0, "forever");
    run_free(&r1);
    run_free(&r2);
    run_free(&r3);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, an_unload_request_unloads_a_loaded_model_without_generating)
{
    struct sb_backend *b = open_named("u", MODEL_PLAIN, false, -1);
    struct event_base *base = base_new();
    cr_assert(info_of(b).loaded);
    unload_ok(b, base);
    await_loaded(b, false);
    cr_assert(info_of(b).ready, "it loads again on demand");
    struct run r;
    complete_ok(b, base, &r);
    struct sb_backend_info info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_eq(info.expires_at, 0, "the unload's keep_alive 0 ended with that load");
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, an_unload_request_never_loads_a_model)
{
    struct sb_backend *b = open_named("lazy", MODEL_CHATML, true, -1);
    struct event_base *base = base_new();
    unload_ok(b, base);
    struct sb_backend_info info = info_of(b);
    cr_assert_not(info.loaded);
    cr_assert_not(info.loading, "nothing was queued to load it");
    cr_assert_eq(info.queue_depth, 0);
    /* Nor does it leave keep_alive 0 behind for the next load. */
    struct run r;
    complete_ok(b, base, &r);
    info = info_of(b);
    cr_assert(info.loaded);
    cr_assert_eq(info.expires_at, 0);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, an_embeddings_model_takes_unload_requests_and_keep_alive)
{
    struct sb_model_config cfg = model_config("emb", MODEL_PLAIN);
    cfg.embeddings = true;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    struct event_base *base = base_new();
    struct sb_str in[] = {SB_STR_LIT(PROMPT)};
    struct run r;
    run_init(&r, b, base, "", 0);
    r.req.kind = SB_REQ_EMBED;
    r.req.inputs = in;
    r.req.n_inputs = 1;
    r.req.has_keep_alive = true;
    r.req.keep_alive_ns = INT64_C(600) * 1000000000;
    run_one(base, &r);
    cr_assert_eq(r.n_embedding, 1, "%s", r.err_msg);
    cr_assert_geq(info_of(b).expires_at, sb_unix_time() + 500);
    unload_ok(b, base);
    await_loaded(b, false);
    run_free(&r);
    sb_backend_free(b);
    event_base_free(base);
}

/* -----------------------------------------------------------------------------------------------
 * A model that fails to load
 * --------------------------------------------------------------------------------------------- */

Test(local_models, a_lazy_model_that_fails_to_load_answers_503_while_another_serves)
{
    char *bad_path = corrupt_gguf();
    struct sb_model_config bad_cfg = {.name = "broken", .backend = "local", .path = bad_path};
    bad_cfg.load = "lazy";
    bad_cfg.keep_alive = -1;
    struct sb_backend *bad = open_config(&bad_cfg);
    struct sb_backend *good = open_named("good", MODEL_PLAIN, false, -1);
    struct event_base *base = base_new();

    struct run runs[3];
    run_init(&runs[0], bad, base, PROMPT, 8);
    run_init(&runs[1], good, base, PROMPT, 8);
    run_init(&runs[2], bad, base, PROMPT, 8);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(sb_backend_start(runs[i].b, &runs[i].call), 0);
    wait_done(base, runs, 3);
    for (int i = 0; i < 3; i += 2) {
        assert_well_formed(&runs[i]);
        cr_assert_eq(runs[i].n_error, 1);
        cr_assert_eq(runs[i].err_status, 503);
        cr_assert_eq(runs[i].err_code, SB_EBACKEND);
        cr_assert_not_null(strstr(runs[i].err_msg, "Model 'broken' failed to load"), "%s",
                           runs[i].err_msg);
    }
    assert_well_formed(&runs[1]);
    cr_assert_eq(runs[1].n_error, 0, "the other model keeps serving: %s", runs[1].err_msg);
    struct sb_backend_info info = info_of(bad);
    cr_assert(info.failed);
    cr_assert_not(info.ready);
    cr_assert_not(info.loaded);

    /* A request after the failure is answered at once, with the same words. */
    struct run later;
    run_init(&later, bad, base, PROMPT, 8);
    run_one(base, &later);
    cr_assert_eq(later.err_status, 503);
    cr_assert(info_of(good).loaded);

    unlink(bad_path);
    for (int i = 0; i < 3; i++)
        run_free(&runs[i]);
    run_free(&later);
    sb_backend_free(bad);
    sb_backend_free(good);
    event_base_free(base);
}

/* -----------------------------------------------------------------------------------------------
 * Admission: the queue, its refusals, queue time, gauges
 * --------------------------------------------------------------------------------------------- */

Test(local_models, a_full_configured_queue_refuses_with_efull)
{
    enum { QUEUE = 4, N = QUEUE + 1 + 8 };
    struct sb_model_config cfg = model_config("q", MODEL_PLAIN);
    cfg.queue_size = QUEUE;
    cfg.n_parallel = 1;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    struct event_base *base = base_new();
    struct run runs[N];
    size_t accepted = 0;
    int rc = 0;
    /* Each accepted call asks for the whole context: the one slot cannot drain the queue while
     * these few starts run. */
    while (accepted < N) {
        run_init(&runs[accepted], b, base, PROMPT, 0);
        rc = sb_backend_start(b, &runs[accepted].call);
        if (rc != 0) {
            run_free(&runs[accepted]);
            break;
        }
        accepted++;
    }
    cr_assert_eq(rc, SB_EFULL, "a loaded model's full queue is a 429");
    cr_assert_geq(accepted, QUEUE);
    cr_assert_leq(accepted, QUEUE + 1);
    for (size_t i = 0; i < accepted; i++) {
        sb_backend_cancel(b, &runs[i].call);
        runs[i].canceled = true;
    }
    wait_done(base, runs, accepted);
    for (size_t i = 0; i < accepted; i++)
        run_free(&runs[i]);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, a_full_queue_while_the_model_waits_to_load_refuses_with_estate)
{
    enum { QUEUE = 2 };
    set_max_loaded(1);
    struct sb_backend *a = open_named("a", MODEL_PLAIN, false, -1);
    struct sb_model_config cfg = model_config("b", MODEL_CHATML);
    cfg.load = "lazy";
    cfg.queue_size = QUEUE;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    struct event_base *base = base_new();

    /* A is busy with a long request, so B waits for A's room with its requests queued. */
    struct run busy;
    run_init(&busy, a, base, PROMPT, 0);
    cr_assert_eq(sb_backend_start(a, &busy.call), 0);
    while (busy.n_start == 0)
        event_base_loop(base, EVLOOP_ONCE);
    struct run queued[QUEUE + 1];
    for (int i = 0; i < QUEUE; i++) {
        run_init(&queued[i], b, base, PROMPT, 4);
        cr_assert_eq(sb_backend_start(b, &queued[i].call), 0);
    }
    run_init(&queued[QUEUE], b, base, PROMPT, 4);
    cr_assert_eq(sb_backend_start(b, &queued[QUEUE].call), SB_ESTATE,
                 "a model that is not serving yet answers a full queue with 503");
    run_free(&queued[QUEUE]);
    struct sb_backend_info ib = info_of(b), ia = info_of(a);
    cr_assert(ib.loading, "b: loaded %d failed %d depth %d; a: loaded %d busy %d; busy run %d/%d",
              ib.loaded, ib.failed, ib.queue_depth, ia.loaded, ia.busy_slots, busy.n_finish,
              busy.n_error);
    cr_assert_eq(info_of(b).queue_depth, QUEUE);

    /* Once A's request ends, A makes room, B loads and serves what waited. */
    sb_backend_cancel(a, &busy.call);
    busy.canceled = true;
    wait_done(base, &busy, 1);
    wait_done(base, queued, QUEUE);
    for (int i = 0; i < QUEUE; i++) {
        assert_well_formed(&queued[i]);
        cr_assert_eq(queued[i].n_error, 0, "%s", queued[i].err_msg);
        run_free(&queued[i]);
    }
    cr_assert_not(info_of(a).loaded);
    run_free(&busy);
    sb_backend_free(a);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, freeing_a_model_that_waits_for_room_ends_its_requests)
{
    set_max_loaded(1);
    struct sb_backend *a = open_named("a", MODEL_PLAIN, false, -1);
    struct sb_backend *b = open_named("b", MODEL_CHATML, true, -1);
    struct event_base *base = base_new();
    struct run busy, waiting;
    run_init(&busy, a, base, PROMPT, 0);
    cr_assert_eq(sb_backend_start(a, &busy.call), 0);
    run_init(&waiting, b, base, PROMPT, 4);
    cr_assert_eq(sb_backend_start(b, &waiting.call), 0);
    sb_backend_free(b);
    wait_done(base, &waiting, 1);
    cr_assert_eq(waiting.n_done, 1);
    cr_assert_eq(waiting.n_finish + waiting.n_error, 1);
    sb_backend_cancel(a, &busy.call);
    busy.canceled = true;
    wait_done(base, &busy, 1);
    run_free(&busy);
    run_free(&waiting);
    sb_backend_free(a);
    event_base_free(base);
}

Test(local_models, gauges_follow_busy_slots_and_queue_depth)
{
    enum { N = 12 };
    struct sb_model_config cfg = model_config("gauged", MODEL_PLAIN);
    cfg.n_parallel = 1;
    struct sb_backend *b = open_config(&cfg);
    free(cfg.path);
    struct event_base *base = base_new();
    cr_assert_eq(metric_value("switchboard_queue_depth", "gauged"), 0);
    cr_assert_eq(metric_value("switchboard_busy_slots", "gauged"), 0);

    struct run runs[N];
    for (int i = 0; i < N; i++) {
        run_init(&runs[i], b, base, PROMPT, 0);
        cr_assert_eq(sb_backend_start(b, &runs[i].call), 0);
    }
    /* One slot, each call asking for the whole context: most of them are still queued. */
    double depth = metric_value("switchboard_queue_depth", "gauged");
    cr_assert_geq(depth, N - 3);
    cr_assert_leq(info_of(b).queue_depth, (int32_t)depth, "info reads the same queue");
    /* The first request's START comes after it took the slot. */
    while (runs[0].n_start == 0 && runs[0].n_done == 0)
        event_base_loop(base, EVLOOP_ONCE);
    cr_assert_eq(metric_value("switchboard_busy_slots", "gauged"), 1);
    cr_assert_eq(info_of(b).busy_slots, 1);

    for (int i = 0; i < N; i++) {
        sb_backend_cancel(b, &runs[i].call);
        runs[i].canceled = true;
    }
    wait_done(base, runs, N);
    cr_assert_eq(metric_value("switchboard_queue_depth", "gauged"), 0, "depth %g, info %d",
                 metric_value("switchboard_queue_depth", "gauged"), info_of(b).queue_depth);
    cr_assert_eq(metric_value("switchboard_busy_slots", "gauged"), 0);
    for (int i = 0; i < N; i++)
        run_free(&runs[i]);
    sb_backend_free(b);
    event_base_free(base);
}

Test(local_models, queue_time_is_measured_for_every_admitted_request)
{
    struct sb_backend *b = open_named("timed", MODEL_PLAIN, true, -1);
    struct event_base *base = base_new();
    struct run r[2];
    complete_ok(b, base, &r[0]);
    complete_ok(b, base, &r[1]);
    cr_assert_eq(metric_value("switchboard_queue_seconds_count", "timed"), 2);
    run_free(&r[0]);
    run_free(&r[1]);
    sb_backend_free(b);
    event_base_free(base);
}
