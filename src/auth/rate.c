/* Per-key rate limits: two token buckets per key (requests, tokens), each holding one minute of
 * its limit and refilled continuously, in exact integer arithmetic. A bucket's level is kept in
 * units of 1/60e9 of a token, so a limit of L per minute adds exactly L units per nanosecond;
 * with L at most SB_AUTH_TPM_MAX, a level between minus and plus two minutes of it fits int64. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/auth.h"

#define NS_PER_MIN ((int64_t)60000000000)
#define NS_PER_S   ((int64_t)1000000000)

/* One limit. level lies in [-capacity, capacity], capacity being a minute of the limit: a request
 * that used more tokens than it was admitted with may leave the bucket in debt. */
struct bucket {
    int64_t per_minute; /* 0 = unlimited */
    int64_t level;      /* units; one token (or request) is NS_PER_MIN of them */
};

struct sb__rate_bucket {
    struct sb__rate_bucket *next; /* in its hash slot */
    char key_id[32];
    uint64_t t; /* when the levels were last brought up to date (monotonic ns) */
    struct bucket req, tok;
};

struct sb_rate {
    pthread_mutex_t mu;             /* guards everything below and every bucket */
    struct sb__rate_bucket **slots; /* owned, each entry owned */
    size_t n_slots;                 /* a power of two */
    size_t n;
};

int sb_rate_new(struct sb_rate **out)
{
    struct sb_rate *r = calloc(1, sizeof(*r));

    *out = NULL;
    if (r == NULL)
        return SB_ENOMEM;
    r->n_slots = 64;
    r->slots = calloc(r->n_slots, sizeof(*r->slots));
    if (r->slots == NULL || pthread_mutex_init(&r->mu, NULL) != 0) {
        free(r->slots);
        free(r);
        return SB_ENOMEM;
    }
    *out = r;
    return 0;
}

void sb_rate_free(struct sb_rate *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n_slots; i++) {
        struct sb__rate_bucket *b = r->slots[i];
        while (b != NULL) {
            struct sb__rate_bucket *next = b->next;
            free(b);
            b = next;
        }
    }
    pthread_mutex_destroy(&r->mu);
    free(r->slots);
    free(r);
}

static size_t hash_id(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s != '\0'; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return (size_t)h;
}

static void grow(struct sb_rate *r)
{
    size_t n = r->n_slots * 2;
    struct sb__rate_bucket **ns = calloc(n, sizeof(*ns));
    if (ns == NULL)
        return; /* longer chains, still correct */
    for (size_t i = 0; i < r->n_slots; i++) {
        struct sb__rate_bucket *b = r->slots[i];
        while (b != NULL) {
            struct sb__rate_bucket *next = b->next;
            size_t j = hash_id(b->key_id) & (n - 1);
            b->next = ns[j];
            ns[j] = b;
            b = next;
        }
    }
    free(r->slots);
    r->slots = ns;
    r->n_slots = n;
}

static int64_t capacity(const struct bucket *b)
{
    return b->per_minute * NS_PER_MIN;
}

/* Sets the limit (capped) and, for a new or changed limit, fills the bucket. */
static void configure(struct bucket *b, int64_t per_minute, int64_t max)
{
    per_minute = SB_MAX(SB_MIN(per_minute, max), (int64_t)0);
    if (b->per_minute == per_minute)
        return;
    b->per_minute = per_minute;
    b->level = capacity(b);
}

/* Adds what elapsed ns refilled, up to the capacity. Two minutes refill any bucket from its
 * lowest level, which bounds the product. */
static void refill(struct bucket *b, uint64_t elapsed)
{
    int64_t cap = capacity(b);
    if (b->per_minute == 0)
        return;
    if (elapsed >= (uint64_t)(2 * NS_PER_MIN)) {
        b->level = cap;
        return;
    }
    b->level = SB_MIN(cap, b->level + (int64_t)elapsed * b->per_minute);
}

/* Adds n tokens (negative: takes them), keeping the level within [-capacity, capacity]. */
static void give(struct bucket *b, int64_t n)
{
    int64_t cap = capacity(b);
    if (b->per_minute == 0 || n == 0)
        return;
    if (n >= 2 * b->per_minute)
        b->level = cap;
    else if (n <= -2 * b->per_minute)
        b->level = -cap;
    else
        b->level = SB_MAX(-cap, SB_MIN(cap, b->level + n * NS_PER_MIN));
}

/* The key's buckets, brought up to date at now; made when new. NULL when out of memory. */
static struct sb__rate_bucket *find(struct sb_rate *r, const char *key_id, uint64_t now)
{
    char id[32];
    size_t i;

    snprintf(id, sizeof(id), "%s", key_id);
    i = hash_id(id) & (r->n_slots - 1);
    for (struct sb__rate_bucket *b = r->slots[i]; b != NULL; b = b->next) {
        if (strcmp(b->key_id, id) == 0) {
            uint64_t elapsed = now > b->t ? now - b->t : 0;
            refill(&b->req, elapsed);
            refill(&b->tok, elapsed);
            b->t = SB_MAX(b->t, now);
            return b;
        }
    }
    struct sb__rate_bucket *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    memcpy(b->key_id, id, sizeof(id));
    b->t = now;
    b->next = r->slots[i];
    r->slots[i] = b;
    if (++r->n > r->n_slots)
        grow(r);
    return b;
}

/* Whether b holds n; fills why when not. */
static bool holds(const struct bucket *b, enum sb_rate_limit which, int64_t n,
                  struct sb_rate_refusal *why)
{
    if (b->per_minute == 0)
        return true;
    *why = (struct sb_rate_refusal){.limit = which, .per_minute = b->per_minute, .asked = n};
    if (n > b->per_minute) {
        why->never = true;
        why->retry_after_s = 60;
        return false;
    }
    int64_t need = n * NS_PER_MIN - b->level;
    if (need <= 0)
        return true;
    /* need / per_minute nanoseconds, in whole seconds rounded up. */
    int64_t ns = need / b->per_minute + (need % b->per_minute != 0);
    why->retry_after_s = SB_MAX(ns / NS_PER_S + (ns % NS_PER_S != 0), (int64_t)1);
    return false;
}

int sb_rate_admit(struct sb_rate *r, const char *key_id, int64_t rpm, int64_t tpm, int64_t tokens,
                  uint64_t now_ns, struct sb_rate_ticket *t, struct sb_rate_refusal *why)
{
    int rc = 0;

    memset(t, 0, sizeof(*t));
    if (rpm <= 0 && tpm <= 0)
        return 0;
    tokens = SB_MAX(tokens, (int64_t)0);
    pthread_mutex_lock(&r->mu);
    struct sb__rate_bucket *b = find(r, key_id, now_ns);
    if (b == NULL) {
        rc = SB_ENOMEM;
        goto out;
    }
    configure(&b->req, rpm, SB_AUTH_RPM_MAX);
    configure(&b->tok, tpm, SB_AUTH_TPM_MAX);
    if (!holds(&b->req, SB_RATE_REQUESTS, 1, why) || !holds(&b->tok, SB_RATE_TOKENS, tokens, why)) {
        rc = SB_EFULL;
        goto out;
    }
    give(&b->req, -1);
    give(&b->tok, -tokens);
    t->bucket = b;
    t->tokens = tokens;
out:
    pthread_mutex_unlock(&r->mu);
    return rc;
}

void sb_rate_settle(struct sb_rate *r, struct sb_rate_ticket *t, int64_t actual_tokens,
                    uint64_t now_ns)
{
    if (t->bucket == NULL)
        return;
    if (actual_tokens >= 0) {
        pthread_mutex_lock(&r->mu);
        struct sb__rate_bucket *b = t->bucket;
        uint64_t elapsed = now_ns > b->t ? now_ns - b->t : 0;
        refill(&b->req, elapsed);
        refill(&b->tok, elapsed);
        b->t = SB_MAX(b->t, now_ns);
        give(&b->tok, t->tokens - actual_tokens);
        pthread_mutex_unlock(&r->mu);
    }
    memset(t, 0, sizeof(*t));
}
