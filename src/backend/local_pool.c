/* Every local model of the process and the room they share: at most max_loaded of them resident
 * (loading, loaded or unloading) at once. A model that needs room waits its turn, first come,
 * first served, and asks the least recently used loaded model to unload (an idle one before a busy
 * one, which finishes what it admitted first); an evicted model with requests waiting simply joins
 * the line for room again, so no model starves.
 *
 * One process-wide pool, as llama.cpp's backend is process-wide: max_loaded bounds this process's
 * memory, whichever config entries its models came from. Lock order: the pool's lock, then a
 * backend's mu (to read its state and ask it to unload); a worker never holds its mu while it
 * takes the pool's lock. */
#include "backend/local_internal.h"

#include <time.h>

static struct {
    pthread_once_t once;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* room was given back, a waiter's turn came, or a waiter is stopping */
    int32_t max_loaded;
    struct local_backend *head;
    int32_t n_resident;
    uint64_t next_ticket;
} g_pool = {.once = PTHREAD_ONCE_INIT, .mu = PTHREAD_MUTEX_INITIALIZER};

struct timespec sb__local_deadline(uint64_t ns_from_now)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + ns_from_now % 1000000000u;
    ts.tv_sec += (time_t)(ns_from_now / 1000000000u + ns / 1000000000u);
    ts.tv_nsec = (long)(ns % 1000000000u);
    return ts;
}

int sb__local_cond_init(pthread_cond_t *cv)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0) {
        return SB_ENOMEM;
    }
    int rc = SB_ENOMEM;
    if (pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) == 0 &&
        pthread_cond_init(cv, &attr) == 0) {
        rc = SB_OK;
    }
    pthread_condattr_destroy(&attr);
    return rc;
}

static void pool_init(void)
{
    /* Without a monotonic condition the pool still works; only its slices follow the wall clock. */
    if (sb__local_cond_init(&g_pool.cv) != SB_OK) {
        pthread_cond_init(&g_pool.cv, NULL);
    }
}

static void pool_lock(void)
{
    pthread_once(&g_pool.once, pool_init);
    pthread_mutex_lock(&g_pool.mu);
}

void sb_local_configure(const struct sb_local_config *cfg)
{
    pool_lock();
    g_pool.max_loaded = cfg && cfg->max_loaded > 0 ? cfg->max_loaded : 0;
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}

void sb__local_pool_register(struct local_backend *b)
{
    pool_lock();
    b->pool_next = g_pool.head;
    g_pool.head = b;
    pthread_mutex_unlock(&g_pool.mu);
}

void sb__local_pool_unregister(struct local_backend *b)
{
    pool_lock();
    for (struct local_backend **p = &g_pool.head; *p; p = &(*p)->pool_next) {
        if (*p == b) {
            *p = b->pool_next;
            break;
        }
    }
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}

/* True when b is the waiter that came first. Pool lock held. */
static bool first_in_line(const struct local_backend *b)
{
    for (const struct local_backend *o = g_pool.head; o; o = o->pool_next) {
        if (o->wait_ticket && o->wait_ticket < b->wait_ticket) {
            return false;
        }
    }
    return true;
}

/* Makes room for one more model if none is on its way: asks the least recently used loaded model
 * to unload, preferring one with nothing to do. Pool lock held. */
static void evict_one(void)
{
    struct local_backend *victim = NULL;
    bool victim_idle = false;
    uint64_t victim_used = 0;
    int32_t leaving = 0;
    for (struct local_backend *o = g_pool.head; o; o = o->pool_next) {
        if (!o->resident) {
            continue;
        }
        pthread_mutex_lock(&o->mu);
        bool loaded = o->state == LOCAL_LOADED && !o->stopping;
        bool going = o->evict || o->state == LOCAL_UNLOADING || o->stopping;
        bool idle = o->q_len == 0 && atomic_load(&o->busy) == 0;
        uint64_t used = o->last_used_ns;
        pthread_mutex_unlock(&o->mu);
        leaving += going;
        if (!loaded || going) {
            continue;
        }
        if (!victim || (idle && !victim_idle) || (idle == victim_idle && used < victim_used)) {
            victim = o;
            victim_idle = idle;
            victim_used = used;
        }
    }
    /* Room is already on its way, or every resident model is still loading. */
    if (g_pool.n_resident - leaving < g_pool.max_loaded || !victim) {
        return;
    }
    pthread_mutex_lock(&victim->mu);
    victim->evict = true;
    pthread_cond_signal(&victim->cv);
    pthread_mutex_unlock(&victim->mu);
    sb_log(SB_LOG_INFO, NULL, "local model %s: unloading to make room (max_loaded %d)",
           victim->name, g_pool.max_loaded);
}

static bool stopping(struct local_backend *b)
{
    pthread_mutex_lock(&b->mu);
    bool stop = b->stopping;
    pthread_mutex_unlock(&b->mu);
    return stop;
}

int sb__local_pool_acquire(struct local_backend *b, bool wait, uint32_t slice_ms)
{
    int rc = SB_OK;
    pool_lock();
    if (b->wait_ticket == 0) {
        b->wait_ticket = ++g_pool.next_ticket;
    }
    struct timespec until = sb__local_deadline((uint64_t)slice_ms * 1000000u);
    for (;;) {
        bool room = g_pool.max_loaded == 0 || g_pool.n_resident < g_pool.max_loaded;
        if (room && (!wait || first_in_line(b))) {
            b->resident = true;
            g_pool.n_resident++;
            break;
        }
        if (!wait) {
            rc = SB_EFULL;
            break;
        }
        if (stopping(b)) {
            rc = SB_ECANCELED;
            break;
        }
        if (first_in_line(b)) {
            evict_one();
        }
        if (pthread_cond_timedwait(&g_pool.cv, &g_pool.mu, &until) != 0) {
            rc = SB_ETIMEOUT;
            break;
        }
    }
    if (rc != SB_ETIMEOUT) {
        b->wait_ticket = 0;
        /* The next in line may now be first. */
        pthread_cond_broadcast(&g_pool.cv);
    }
    pthread_mutex_unlock(&g_pool.mu);
    return rc;
}

void sb__local_pool_release(struct local_backend *b)
{
    pool_lock();
    if (b->resident) {
        b->resident = false;
        g_pool.n_resident--;
    }
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}

void sb__local_pool_wake(void)
{
    pool_lock();
    pthread_cond_broadcast(&g_pool.cv);
    pthread_mutex_unlock(&g_pool.mu);
}
