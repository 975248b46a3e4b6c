/* The local backend's event bridge: events made on a model's worker thread are copied onto the
 * call's list and delivered on the call's loop thread.
 *
 * Each event is copied (strings and an embedding's floats included), and the call's libevent event
 * (created with event_new(base, -1, 0, ...), never added) is made active with event_active, which
 * wakes the loop (the process must have called evthread_use_pthreads() before creating the base).
 * The callback drains the list, calls on_event for each, and calls on_done once the engine has
 * released the call. event_active runs under lc->mu, and the callback reads "released" under it
 * too, so once the loop sees released the engine has finished touching the call. */
#include "backend/local_internal.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(struct lev, data) % _Alignof(float) == 0,
               "an embedding's floats are copied to the start of data");

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
    case SB_EV_ERROR:
        v[0] = &ev->error.message;
        v[1] = &ev->error.param;
        return 2;
    default: return 0;
    }
}

/* Returns a malloc'd copy of ev whose views (and vector) point into the copy, or NULL when out of
 * memory. */
static struct lev *lev_copy(const struct sb_event *ev)
{
    struct sb_event tmp = *ev;
    struct sb_str *v[3];
    size_t n = event_views(&tmp, v);
    size_t floats = ev->type == SB_EV_EMBEDDING ? ev->embedding.dim * sizeof(float) : 0;
    size_t total = floats;
    for (size_t i = 0; i < n; i++) {
        total += v[i]->len;
    }
    struct lev *e = malloc(sizeof *e + total + 1);
    if (!e) {
        return NULL;
    }
    e->next = NULL;
    e->ev = tmp;
    char *p = e->data;
    if (floats) {
        memcpy(p, ev->embedding.values, floats);
        e->ev.embedding.values = (const float *)(void *)p;
        p += floats;
    }
    n = event_views(&e->ev, v);
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

/* Appends e (may be NULL) to the call's list and wakes its loop. Takes ownership of e. */
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

void sb__lc_post(struct lcall *lc, const struct sb_event *ev)
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

void sb__lc_release(struct lcall *lc)
{
    struct lev *tail = NULL;
    if (lc->broken && !atomic_load(&lc->canceled)) {
        tail = lc->oom_error;
        lc->oom_error = NULL;
    }
    lc_push(lc, tail, true);
}

void sb__lc_post_error(struct lcall *lc, int code, int http_status, uint32_t retry_after_ms,
                       const char *msg)
{
    struct sb_event ev = {.type = SB_EV_ERROR};
    ev.error.code = code;
    ev.error.http_status = http_status;
    ev.error.message = sb_str_c(msg);
    /* Server-side failures (decode, memory, load, unload) may pass on another try or backend. */
    ev.error.retryable = http_status >= 500;
    ev.error.retry_after_ms = retry_after_ms;
    sb__lc_post(lc, &ev);
}

void sb__lc_free(struct lcall *lc)
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
        sb__lc_free(lc);
        call->backend_data = NULL;
        call->on_done(call);
    }
}

struct lcall *sb__lc_new(struct sb_call *call)
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
    lc->t_queued_ns = sb_now_ns();
    atomic_init(&lc->canceled, false);
    struct sb_event oom = {.type = SB_EV_ERROR};
    oom.error.code = SB_ENOMEM;
    oom.error.http_status = 500;
    oom.error.message = SB_STR_LIT(oom_msg);
    oom.error.retryable = true;
    lc->oom_error = lev_copy(&oom);
    lc->wake = event_new(call->base, -1, 0, lc_deliver, lc);
    if (!lc->oom_error || !lc->wake) {
        sb__lc_free(lc);
        return NULL;
    }
    return lc;
}
