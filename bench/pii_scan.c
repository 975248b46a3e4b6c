/* PII scan throughput on one core: seeded mixed text with and without PII, scanned with every
 * built-in detector, against a byte-loop and a memchr baseline over the same buffer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "privacy/privacy.h"

/* ---------------------------------------------------------------------------------------------
 * Deterministic text
 * ------------------------------------------------------------------------------------------- */
static uint64_t rng_state;

static uint32_t rnd(void)
{
    /* xorshift64*: fast, seeded, the same on every machine. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 2685821657736338717ULL) >> 32);
}

static const char *const words[] = {
    "the",     "model",    "request",   "answer",  "context",    "summary",  "customer", "order",
    "invoice", "shipping", "please",    "review",  "update",     "between",  "latency",  "tokens",
    "budget",  "report",   "quarterly", "revenue", "deployment", "cluster",  "weekly",   "sync",
    "meeting", "notes",    "draft",     "Grüße",   "naïve",      "café",     "日本語",   "données",
    "straße",  "über",     "config",    "server",  "error",      "function", "return",   "value",
    "string",  "vector",   "thread",    "buffer",  "memory",     "and",      "of",       "to",
    "in",      "is",       "for",       "with",    "on",         "that",     "this",     "it",
    "as",      "was",      "be",        "at",      "by",
};

/* Benign pieces that look a little like PII: numbers, dates, versions, times, code. */
static const char *const benign[] = {
    "v1.2.3",      "2024-03-15",  "12:30:45",      "$1,299.99",  "42",
    "3.14159",     "std::vector", "{\"id\": 17}",  "x = y + 1;", "100%",
    "ISO 9001",    "RFC 5321",    "port 8080",     "0.5 ms",     "#1234",
    "a->b",        "(see p. 12)", "10/20/2023",    "5 x 4 = 20", "fn(a, b)",
    "user_id=991", "-h --help",   "sha256:ab12cd", "Q3 2024",    "1e-9",
};

/* Values a detector should find, in the formats people write. */
static const char *const pii[] = {
    "john.doe@example.com",
    "+1 (415) 555-0132",
    "415-555-0199",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "5500-0000-0000-0004",
    "078-05-1120",
    "DE89 3704 0044 0532 0130 00",
    "GB82WEST12345698765432",
    "192.168.10.20",
    "2001:db8::8a2e:370:7334",
    "AKIAIOSFODNN7EXAMPLE",
    "sk-proj-Abc123Def456Ghi789Jkl012Mno345",
    "ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789",
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
};

/* Fills buf with len bytes of text; with_pii inserts one value about every per bytes. Returns
 * how many values it inserted. */
static size_t make_text(char *buf, size_t len, bool with_pii, size_t per, uint64_t seed)
{
    rng_state = seed;
    size_t inserted = 0;
    size_t n = 0, next_pii = with_pii ? per / 2 + rnd() % per : SIZE_MAX;
    while (n < len) {
        const char *w;
        uint32_t r = rnd() % 100;
        if (with_pii && n >= next_pii) {
            w = pii[rnd() % SB_ARRAY_LEN(pii)];
            inserted++;
            next_pii = n + per / 2 + rnd() % per;
        } else if (r < 8) {
            w = benign[rnd() % SB_ARRAY_LEN(benign)];
        } else {
            w = words[rnd() % SB_ARRAY_LEN(words)];
        }
        size_t wl = strlen(w);
        if (n + wl + 1 > len)
            break;
        memcpy(buf + n, w, wl);
        n += wl;
        /* Words are separated as in prose: a space, a line break, ", " or ". ". */
        uint32_t sep = rnd() % 20;
        if ((sep == 1 || sep == 2) && n + 2 <= len)
            buf[n++] = sep == 1 ? ',' : '.';
        buf[n++] = sep == 0 ? '\n' : ' ';
    }
    memset(buf + n, ' ', len - n);
    return inserted;
}

/* ---------------------------------------------------------------------------------------------
 * Timing
 * ------------------------------------------------------------------------------------------- */
#define CHUNK (16u << 10) /* a typical prompt is a few KiB to a few tens of KiB */

static volatile size_t sink;

static double mbps(size_t bytes, uint64_t ns)
{
    return (double)bytes / 1e6 / ((double)ns / 1e9);
}

/* The simplest pass over every byte: counts newlines. */
static double run_loop(const char *buf, size_t len, int reps)
{
    uint64_t t0 = sb_now_ns();
    for (int r = 0; r < reps; r++) {
        size_t c = 0;
        for (size_t i = 0; i < len; i++)
            c += buf[i] == '\n';
        sink += c;
    }
    return mbps(len * (size_t)reps, sb_now_ns() - t0);
}

/* memchr for a byte that is absent: libc's vectorized pass over every byte. */
static double run_memchr(const char *buf, size_t len, int reps)
{
    uint64_t t0 = sb_now_ns();
    for (int r = 0; r < reps; r++)
        for (size_t off = 0; off < len; off += CHUNK)
            sink += memchr(buf + off, '\x01', SB_MIN((size_t)CHUNK, len - off)) == NULL;
    return mbps(len * (size_t)reps, sb_now_ns() - t0);
}

static double run_scan(const struct sb_privacy *p, struct sb_privacy_scratch *s, const char *buf,
                       size_t len, int reps, size_t chunk, size_t *found)
{
    size_t total = 0;
    uint64_t t0 = sb_now_ns();
    for (int r = 0; r < reps; r++) {
        for (size_t off = 0; off < len; off += chunk) {
            struct sb_str t = {buf + off, SB_MIN(chunk, len - off)};
            int n = sb_privacy_scan(p, s, t, 0, NULL, NULL);
            if (n < 0) {
                fprintf(stderr, "scan failed: %s\n", sb_strerror(n));
                exit(1);
            }
            total += (size_t)n;
        }
    }
    uint64_t ns = sb_now_ns() - t0;
    *found = total / (size_t)reps;
    return mbps(len * (size_t)reps, ns);
}

/* One text to measure: its name, how often PII occurs in it (0 = never), and the buffer. */
struct workload {
    const char *name;
    size_t per; /* about one value every per bytes; 0 = none */
    char *buf;
    size_t inserted;
};

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)strtoul(argv[1], NULL, 10) : 32;
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    size_t len = mb << 20;
    struct workload w[] = {
        {"(a) no PII", 0, NULL, 0},
        {"(b) PII every ~2 KiB", 2048, NULL, 0},
        {"(c) PII every ~400 B", 400, NULL, 0},
    };
    struct sb_privacy *p = NULL;
    struct sb_privacy_scratch *s = NULL;
    char err[512];
    int status = 1;
    if (mb == 0 || reps <= 0) {
        fprintf(stderr, "usage: pii_scan [MiB per text] [repetitions]\n");
        return 2;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(w); i++) {
        w[i].buf = malloc(len);
        if (w[i].buf == NULL)
            goto fail;
        w[i].inserted = make_text(w[i].buf, len, w[i].per > 0, w[i].per, 0x5eed);
    }
    uint64_t t0 = sb_now_ns();
    if (sb_privacy_new(NULL, &p, err, sizeof err) != 0 || sb_privacy_scratch_new(p, &s) != 0) {
        fprintf(stderr, "privacy: %s\n", err);
        goto fail;
    }
    double compile_ms = (double)(sb_now_ns() - t0) / 1e6;

    /* Warm-up: page every buffer in and touch the database. */
    size_t found = 0;
    for (size_t i = 0; i < SB_ARRAY_LEN(w); i++)
        run_scan(p, s, w[i].buf, len, 1, CHUNK, &found);
    double loop = run_loop(w[0].buf, len, reps);
    double mch = run_memchr(w[0].buf, len, reps);

    printf("%zu MiB per text x %d repetitions, scanned as %u KiB texts on one thread; database "
           "(every built-in detector) compiled in %.0f ms\n",
           mb, reps, CHUNK >> 10, compile_ms);
    printf("%-24s %7.0f MB/s\n", "baseline: byte loop", loop);
    printf("%-24s %7.0f MB/s\n", "baseline: memchr", mch);
    for (size_t i = 0; i < SB_ARRAY_LEN(w); i++) {
        double v = run_scan(p, s, w[i].buf, len, reps, CHUNK, &found);
        printf("%-24s %7.0f MB/s  %.3fx byte loop  %.3fx memchr  %zu found, %zu inserted  %s\n",
               w[i].name, v, v / loop, v / mch, found, w[i].inserted,
               v >= 500 ? "(>= 500 MB/s)" : "(below 500 MB/s)");
    }
    status = 0;
fail:
    sb_privacy_scratch_free(s);
    sb_privacy_free(p);
    for (size_t i = 0; i < SB_ARRAY_LEN(w); i++)
        free(w[i].buf);
    return status;
}
