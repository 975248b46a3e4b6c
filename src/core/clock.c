/* Clocks and random ids. */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "core/core.h"

uint64_t sb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t sb_unix_time(void)
{
    return (int64_t)time(NULL);
}

static uint64_t id_seed;
static _Atomic uint64_t id_counter;
static pthread_once_t id_once = PTHREAD_ONCE_INIT;

static void seed_ids(void)
{
    if (getrandom(&id_seed, sizeof(id_seed), 0) != (ssize_t)sizeof(id_seed))
        id_seed = sb_now_ns() ^ ((uint64_t)time(NULL) << 32);
}

/* splitmix64 over a per-process random seed and a counter: unique, unpredictable-enough ids
 * (they name requests; they are not secrets) without a system call each. */
static uint64_t next_random(void)
{
    pthread_once(&id_once, seed_ids);
    uint64_t z = id_seed + 0x9E3779B97F4A7C15ull * (atomic_fetch_add(&id_counter, 1) + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void sb_random_id(char *out, size_t out_size, const char *prefix)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t plen = strlen(prefix);
    if (out_size < plen + 25) {
        if (out_size > 0)
            out[0] = '\0';
        return;
    }
    memcpy(out, prefix, plen);
    uint64_t r = 0;
    for (size_t i = 0; i < 24; i++) {
        if (i % 10 == 0)
            r = next_random(); /* 10 base-62 digits use under 60 of the 64 bits */
        out[plen + i] = alphabet[r % 62];
        r /= 62;
    }
    out[plen + 24] = '\0';
}
