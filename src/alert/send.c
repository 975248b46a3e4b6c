/* Delivering alerts: a bounded queue that any thread adds to under a short lock, and one sender
 * thread that POSTs each alert to the webhook with libcurl (through upstream/), retrying 5xx
 * replies, 429 and connection failures with a doubling backoff. The queue is small because
 * alerts are rare; when it is full, the newest alert is dropped and counted, so that a webhook
 * that hangs never holds back a request. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "alert/internal.h"
#include "upstream/upstream.h"

#define NS_PER_MS 1000000ull
/* The start of a failed reply's body that is quoted in the log (Slack explains a 400 there). */
#define REPLY_QUOTE 128

/* ---------------------------------------------------------------------------------------------
 * The queue
 * ------------------------------------------------------------------------------------------- */
int sb__alert_queue_init(struct sb_alerts *a)
{
    pthread_condattr_t attr;
    int made = 0;

    a->ring = calloc(a->cap, sizeof(*a->ring));
    if (a->ring == NULL)
        return SB_ENOMEM;
    if (pthread_condattr_init(&attr) != 0)
        goto fail;
    /* Deadlines are monotonic, so that a wall-clock step neither stalls nor rushes a retry. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&a->lock, NULL) == 0) {
        made = 1;
        if (pthread_cond_init(&a->wake, &attr) == 0) {
            made = 2;
            if (pthread_cond_init(&a->idle, &attr) == 0)
                made = 3;
        }
    }
    pthread_condattr_destroy(&attr);
    if (made == 3)
        return 0;
    if (made >= 2)
        pthread_cond_destroy(&a->wake);
    if (made >= 1)
        pthread_mutex_destroy(&a->lock);
fail:
    free(a->ring);
    a->ring = NULL;
    return SB_ENOMEM;
}

void sb__alert_queue_deinit(struct sb_alerts *a)
{
    for (size_t i = 0; i < a->count; i++)
        free(a->ring[(a->first + i) % a->cap].body);
    free(a->ring);
    a->ring = NULL;
    a->count = 0;
    pthread_cond_destroy(&a->idle);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
}

void sb__alert_enqueue(struct sb_alerts *a, enum sb__alert_type type, char *body, size_t len)
{
    bool queued = false, stopping;

    pthread_mutex_lock(&a->lock);
    stopping = a->stopping;
    if (!stopping && a->count < a->cap) {
        a->ring[(a->first + a->count) % a->cap] = (struct sb__alert_item){type, body, len};
        a->count++;
        queued = true;
        pthread_cond_signal(&a->wake);
    }
    pthread_mutex_unlock(&a->lock);
    if (queued)
        return;
    free(body);
    sb__alert_count(a, type, SB__ALERT_DROPPED);
    sb_log(SB_LOG_WARN, NULL, "alert %s: not sent: %s", sb__alert_type_names[type],
           stopping ? "the server is stopping"
                    : "the webhook queue is full (alerts.queue_size); the webhook is slow or down");
}

/* Waits on cond until the monotonic time deadline_ns. Under a->lock. */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    pthread_cond_timedwait(cond, lock, &ts);
}

/* ---------------------------------------------------------------------------------------------
 * The sender
 * ------------------------------------------------------------------------------------------- */
/* How one try ended. */
enum attempt { ATTEMPT_SENT, ATTEMPT_RETRY, ATTEMPT_GIVE_UP };

/* Which replies are worth another try: the server's trouble, being told to slow down, or a
 * request the server gave up reading. */
static bool status_retryable(int status)
{
    return status >= 500 || status == 429 || status == 408;
}

/* Which failures before any reply are worth another try. */
static const int retryable_codes[] = {
    SB_ECONNECT, /* refused, reset, DNS */
    SB_ETIMEOUT, /* the webhook took longer than webhook_timeout_ms */
    SB_EIO,      /* anything else libcurl reports */
};

static bool code_retryable(int rc)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(retryable_codes); i++) {
        if (rc == retryable_codes[i])
            return true;
    }
    return false;
}

/* The time the next try may take in *ms: the configured timeout, cut to what is left of the drain
 * once the alerts are stopping. False when the drain has no time left. */
static bool try_budget(struct sb_alerts *a, uint32_t *ms)
{
    bool ok = true;

    *ms = a->timeout_ms;
    pthread_mutex_lock(&a->lock);
    if (a->stopping) {
        uint64_t now = sb_now_ns();
        if (now >= a->deadline_ns) {
            ok = false;
        } else {
            uint64_t left = SB_MAX((a->deadline_ns - now) / NS_PER_MS, (uint64_t)1);
            *ms = (uint32_t)SB_MIN(left, *ms == 0 ? (uint64_t)UINT32_MAX : (uint64_t)*ms);
        }
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

/* One POST of item. why receives what went wrong, for the log. */
static enum attempt post_once(struct sb_alerts *a, const struct sb__alert_item *item,
                              uint32_t timeout_ms, char *why, size_t why_size)
{
    static const char *const headers[] = {"Content-Type: application/json"};
    char reply[REPLY_QUOTE + 1];
    char err[256];
    int status = 0;
    struct sb_upstream_post req = {
        .url = a->url,
        .headers = headers,
        .n_headers = SB_ARRAY_LEN(headers),
        .body = item->body,
        .len = item->len,
        .timeout_ms = timeout_ms,
        .reply = reply,
        .reply_size = sizeof reply,
    };

    int rc = sb_upstream_post(&req, &status, err, sizeof err);
    if (rc != 0) {
        snprintf(why, why_size, "%s", err[0] != '\0' ? err : sb_strerror(rc));
        return code_retryable(rc) ? ATTEMPT_RETRY : ATTEMPT_GIVE_UP;
    }
    if (status >= 200 && status < 300)
        return ATTEMPT_SENT;
    /* The reply is the webhook's own text; control bytes would break the log line. */
    for (char *p = reply; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    }
    snprintf(why, why_size, "HTTP %d%s%s", status, reply[0] != '\0' ? ": " : "", reply);
    return status_retryable(status) ? ATTEMPT_RETRY : ATTEMPT_GIVE_UP;
}

/* Waits ms before a retry. False, at once, when the alerts are stopping and the drain deadline
 * comes before the wait would end: that retry would have no time left. */
static bool backoff(struct sb_alerts *a, uint64_t ms)
{
    uint64_t until = sb_now_ns() + ms * NS_PER_MS;
    bool ok = true;

    pthread_mutex_lock(&a->lock);
    for (;;) {
        if (a->stopping && a->deadline_ns <= until) {
            ok = false;
            break;
        }
        if (sb_now_ns() >= until)
            break;
        /* Enqueues and the stop wake this too; the loop looks again. */
        wait_until(&a->wake, &a->lock, until);
    }
    pthread_mutex_unlock(&a->lock);
    return ok;
}

/* Posts item, retrying as configured, and counts the outcome. */
static void deliver(struct sb_alerts *a, const struct sb__alert_item *item)
{
    char why[512] = "";
    uint64_t wait_ms = a->backoff_ms;
    int tries = 0;
    enum attempt result = ATTEMPT_GIVE_UP;

    for (;;) {
        uint32_t budget;
        if (!try_budget(a, &budget)) {
            snprintf(why, sizeof why, "the server stopped before it could be sent");
            result = ATTEMPT_GIVE_UP;
            break;
        }
        tries++;
        result = post_once(a, item, budget, why, sizeof why);
        if (result != ATTEMPT_RETRY || tries > a->retries)
            break;
        if (!backoff(a, wait_ms)) {
            size_t n = strlen(why);
            snprintf(why + n, sizeof why - n, " (the server stopped before a retry)");
            break;
        }
        wait_ms = SB_MIN(wait_ms * 2, (uint64_t)60000);
    }
    if (result == ATTEMPT_SENT) {
        sb__alert_count(a, item->type, SB__ALERT_SENT);
        return;
    }
    sb__alert_count(a, item->type, SB__ALERT_FAILED);
    if (tries == 0)
        sb_log(SB_LOG_WARN, NULL, "alert %s: not sent: %s", sb__alert_type_names[item->type], why);
    else
        sb_log(SB_LOG_WARN, NULL, "alert %s: the webhook failed after %d tr%s: %s",
               sb__alert_type_names[item->type], tries, tries == 1 ? "y" : "ies", why);
}

static void *sender_main(void *arg)
{
    struct sb_alerts *a = arg;

    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (a->count == 0 && !a->stopping)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->count == 0)
            break; /* stopping, and nothing left */
        if (a->stopping && sb_now_ns() >= a->deadline_ns)
            break; /* what is left is counted as failed below */
        struct sb__alert_item item = a->ring[a->first];
        a->first = (a->first + 1) % a->cap;
        a->count--;
        a->busy = true;
        pthread_mutex_unlock(&a->lock);

        deliver(a, &item);
        free(item.body);

        pthread_mutex_lock(&a->lock);
        a->busy = false;
        if (a->count == 0)
            pthread_cond_broadcast(&a->idle);
    }
    size_t left = a->count;
    while (a->count > 0) {
        struct sb__alert_item *item = &a->ring[a->first];
        sb__alert_count(a, item->type, SB__ALERT_FAILED);
        free(item->body);
        item->body = NULL;
        a->first = (a->first + 1) % a->cap;
        a->count--;
    }
    pthread_cond_broadcast(&a->idle);
    pthread_mutex_unlock(&a->lock);
    if (left > 0)
        sb_log(SB_LOG_WARN, NULL, "alerts: %zu alert%s not sent: the server stopped first", left,
               left == 1 ? "" : "s");
    return NULL;
}

int sb__alert_sender_start(struct sb_alerts *a)
{
    if (pthread_create(&a->thread, NULL, sender_main, a) != 0)
        return SB_EIO;
    a->thread_started = true;
    return 0;
}

void sb__alert_sender_stop(struct sb_alerts *a)
{
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    a->deadline_ns = sb_now_ns() + (uint64_t)a->drain_ms * NS_PER_MS;
    pthread_cond_broadcast(&a->wake);
    pthread_mutex_unlock(&a->lock);
    if (a->thread_started) {
        pthread_join(a->thread, NULL);
        a->thread_started = false;
    }
}

bool sb_alert_flush(struct sb_alerts *a, uint32_t timeout_ms)
{
    if (a == NULL)
        return true;
    uint64_t until = sb_now_ns() + (uint64_t)timeout_ms * NS_PER_MS;
    pthread_mutex_lock(&a->lock);
    while ((a->count > 0 || a->busy) && a->thread_started && sb_now_ns() < until)
        wait_until(&a->idle, &a->lock, until);
    bool empty = a->count == 0 && !a->busy;
    pthread_mutex_unlock(&a->lock);
    return empty;
}
