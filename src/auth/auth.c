/* Authentication for a running server: an immutable snapshot of the key store, sorted by the
 * secrets' hashes, that requests look up under a read lock; and the refresher thread that polls
 * the store and swaps in a new snapshot when the keys changed, so that keys created or revoked by
 * the CLI take effect within a poll interval and the request path never touches the disk. */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "auth/auth.h"

#define DEFAULT_REFRESH_MS 250
/* A presented credential longer than this is not one of ours: it is not hashed. */
#define CREDENTIAL_MAX 512

static const char *const mode_names[] = {
    [SB_AUTH_OFF] = "off",
    [SB_AUTH_OPTIONAL] = "optional",
    [SB_AUTH_REQUIRED] = "required",
};

int sb_auth_mode_parse(const char *text, enum sb_auth_mode *out)
{
    for (size_t i = 0; text != NULL && i < SB_ARRAY_LEN(mode_names); i++) {
        if (strcasecmp(text, mode_names[i]) == 0) {
            *out = (enum sb_auth_mode)i;
            return 0;
        }
    }
    return SB_EINVAL;
}

/* ---------------------------------------------------------------------------------------------
 * Snapshots
 * ------------------------------------------------------------------------------------------- */
struct snapshot {
    struct sb_auth_key *keys; /* owned; sorted by sha256 */
    size_t n;
};

static void snapshot_free(struct snapshot *s)
{
    if (s == NULL)
        return;
    free(s->keys);
    free(s);
}

static int by_hash(const void *a, const void *b)
{
    return memcmp(((const struct sb_auth_key *)a)->sha256, ((const struct sb_auth_key *)b)->sha256,
                  32);
}

static int snapshot_load(struct sb_auth_store *st, struct snapshot **out, char *err,
                         size_t err_size)
{
    struct snapshot *s = calloc(1, sizeof(*s));
    int rc;

    *out = NULL;
    if (s == NULL) {
        snprintf(err, err_size, "out of memory");
        return SB_ENOMEM;
    }
    rc = sb_auth_store_list(st, &s->keys, &s->n, err, err_size);
    if (rc != 0) {
        free(s);
        return rc;
    }
    if (s->n > 1)
        qsort(s->keys, s->n, sizeof(*s->keys), by_hash);
    *out = s;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The object
 * ------------------------------------------------------------------------------------------- */
struct sb_auth {
    enum sb_auth_mode mode;
    uint32_t refresh_ms;
    struct sb_rate *rate; /* owned */
    /* The snapshot: readers hold the read lock while they search and copy; the refresher takes
     * the write lock only to swap the pointer, and frees the old one after. */
    pthread_rwlock_t lock;
    struct snapshot *snap; /* owned */
    /* The store is the refresher's alone once the thread runs; store_mu serializes it with
     * sb_auth_refresh. */
    pthread_mutex_t store_mu;
    struct sb_auth_store *store; /* owned; under store_mu */
    bool warned;                 /* under store_mu: a failed poll was logged */
    /* Stopping the refresher. */
    pthread_mutex_t stop_mu;
    pthread_cond_t stop_cv;
    bool stop;
    bool thread_started;
    pthread_t thread;
};

enum sb_auth_mode sb_auth_mode(const struct sb_auth *a)
{
    return a->mode;
}

struct sb_rate *sb_auth_rate(struct sb_auth *a)
{
    return a->rate;
}

static void swap_in(struct sb_auth *a, struct snapshot *s)
{
    struct snapshot *old;
    pthread_rwlock_wrlock(&a->lock);
    old = a->snap;
    a->snap = s;
    pthread_rwlock_unlock(&a->lock);
    snapshot_free(old);
}

/* One poll: reload when the store says the keys changed (force: reload anyway). A failure is
 * logged once until a poll succeeds again. */
static int poll_store(struct sb_auth *a, bool force)
{
    char err[512] = "";
    bool changed = false;
    struct snapshot *s = NULL;
    int rc;

    pthread_mutex_lock(&a->store_mu);
    rc = sb_auth_store_changed(a->store, &changed);
    if (rc == 0 && (changed || force))
        rc = snapshot_load(a->store, &s, err, sizeof(err));
    if (rc != 0 && !a->warned)
        sb_log(SB_LOG_WARN, NULL,
               "keys: the key store could not be read (%s); the keys loaded before stay in force",
               err[0] != '\0' ? err : sb_strerror(rc));
    a->warned = rc != 0;
    pthread_mutex_unlock(&a->store_mu);
    if (s != NULL) {
        sb_log(SB_LOG_DEBUG, NULL, "keys: %zu keys loaded", s->n);
        swap_in(a, s);
    }
    return rc;
}

int sb_auth_refresh(struct sb_auth *a)
{
    return poll_store(a, true);
}

static void *refresher(void *arg)
{
    struct sb_auth *a = arg;

    pthread_mutex_lock(&a->stop_mu);
    while (!a->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += (long)(a->refresh_ms % 1000) * 1000000L;
        until.tv_sec += a->refresh_ms / 1000 + until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        int rc = 0;
        while (!a->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&a->stop_cv, &a->stop_mu, &until);
        if (a->stop)
            break;
        pthread_mutex_unlock(&a->stop_mu);
        poll_store(a, false);
        pthread_mutex_lock(&a->stop_mu);
    }
    pthread_mutex_unlock(&a->stop_mu);
    return NULL;
}

int sb_auth_new(const struct sb_auth_params *p, struct sb_auth **out, char *err, size_t err_size)
{
    struct sb_auth *a = calloc(1, sizeof(*a));
    pthread_condattr_t ca;
    int rc;

    *out = NULL;
    if (a == NULL) {
        snprintf(err, err_size, "out of memory");
        return SB_ENOMEM;
    }
    a->mode = p->mode;
    a->refresh_ms = p->refresh_ms != 0 ? p->refresh_ms : DEFAULT_REFRESH_MS;
    pthread_rwlock_init(&a->lock, NULL);
    pthread_mutex_init(&a->store_mu, NULL);
    pthread_mutex_init(&a->stop_mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&a->stop_cv, &ca);
    pthread_condattr_destroy(&ca);
    rc = sb_rate_new(&a->rate);
    if (rc != 0) {
        snprintf(err, err_size, "out of memory");
        goto fail;
    }
    rc = sb_auth_store_open(p->store, &a->store, err, err_size);
    if (rc != 0)
        goto fail;
    /* The first load: the data version is read, so the refresher reloads only on a change. */
    bool changed;
    rc = sb_auth_store_changed(a->store, &changed);
    if (rc == 0)
        rc = snapshot_load(a->store, &a->snap, err, err_size);
    else
        snprintf(err, err_size, "the key store %s cannot be read", p->store);
    if (rc != 0)
        goto fail;
    if (pthread_create(&a->thread, NULL, refresher, a) != 0) {
        snprintf(err, err_size, "cannot start the key refresher thread");
        rc = SB_ENOMEM;
        goto fail;
    }
    a->thread_started = true;
    *out = a;
    return 0;
fail:
    sb_auth_free(a);
    return rc;
}

void sb_auth_free(struct sb_auth *a)
{
    if (a == NULL)
        return;
    if (a->thread_started) {
        pthread_mutex_lock(&a->stop_mu);
        a->stop = true;
        pthread_cond_signal(&a->stop_cv);
        pthread_mutex_unlock(&a->stop_mu);
        pthread_join(a->thread, NULL);
    }
    snapshot_free(a->snap);
    sb_auth_store_close(a->store);
    sb_rate_free(a->rate);
    pthread_cond_destroy(&a->stop_cv);
    pthread_mutex_destroy(&a->stop_mu);
    pthread_mutex_destroy(&a->store_mu);
    pthread_rwlock_destroy(&a->lock);
    free(a);
}

int sb_auth_keys(struct sb_auth *a, struct sb_auth_key **out, size_t *n)
{
    int rc = 0;

    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&a->lock);
    if (a->snap != NULL && a->snap->n > 0) {
        *out = malloc(a->snap->n * sizeof(**out));
        if (*out == NULL) {
            rc = SB_ENOMEM;
        } else {
            memcpy(*out, a->snap->keys, a->snap->n * sizeof(**out));
            *n = a->snap->n;
        }
    }
    pthread_rwlock_unlock(&a->lock);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Requests
 * ------------------------------------------------------------------------------------------- */
static struct sb_str trim(struct sb_str s)
{
    while (s.len > 0 && (s.p[0] == ' ' || s.p[0] == '\t')) {
        s.p++;
        s.len--;
    }
    while (s.len > 0 && (s.p[s.len - 1] == ' ' || s.p[s.len - 1] == '\t'))
        s.len--;
    return s;
}

/* The token of "Bearer <token>" (the scheme in any case), or the empty view. */
static struct sb_str bearer(const char *authorization)
{
    struct sb_str v = trim(sb_str_c(authorization));
    if (v.len < 7 || strncasecmp(v.p, "bearer", 6) != 0 || (v.p[6] != ' ' && v.p[6] != '\t'))
        return SB_STR_NULL;
    return trim((struct sb_str){v.p + 7, v.len - 7});
}

static bool ours(struct sb_str token)
{
    return sb_str_starts_with(token, SB_STR_LIT("sb-"));
}

enum sb_auth_verdict sb_auth_identify(struct sb_auth *a, const char *authorization,
                                      const char *x_api_key, struct sb_auth_key *key)
{
    const struct sb_str found[] = {bearer(authorization), trim(sb_str_c(x_api_key))};
    struct sb_str token = SB_STR_NULL;
    bool any = false;
    struct sb_auth_key probe;
    enum sb_auth_verdict v = SB_AUTH_INVALID;

    for (size_t i = 0; i < SB_ARRAY_LEN(found); i++) {
        any = any || found[i].len > 0 || (i == 0 && authorization != NULL);
        if (token.len == 0 && ours(found[i]))
            token = found[i];
    }
    if (token.len == 0) {
        if (a->mode != SB_AUTH_REQUIRED)
            return SB_AUTH_ANONYMOUS;
        return any ? SB_AUTH_FOREIGN : SB_AUTH_MISSING;
    }
    unsigned int hn = 0;
    if (token.len > CREDENTIAL_MAX ||
        EVP_Digest(token.p, token.len, probe.sha256, &hn, EVP_sha256(), NULL) != 1)
        return SB_AUTH_INVALID;
    pthread_rwlock_rdlock(&a->lock);
    const struct sb_auth_key *k =
        a->snap != NULL && a->snap->n > 0
            ? bsearch(&probe, a->snap->keys, a->snap->n, sizeof(probe), by_hash)
            : NULL;
    if (k != NULL) {
        *key = *k;
        v = k->revoked_ms != 0 ? SB_AUTH_REVOKED : SB_AUTH_KEY;
    }
    pthread_rwlock_unlock(&a->lock);
    return v;
}
