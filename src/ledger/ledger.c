/* The ledger's front half: the bounded queue I/O threads record into, and the writer thread that
 * drains it in group commits, runs retention and answers flushes. Store-specific code lives in
 * sqlite.c and pg.c behind struct sb__ledger_store_ops.
 *
 * The queue is a ring of rows under one mutex. Recording copies a row (about 1 KiB) into a free
 * slot under the lock and signals the writer only when the queue was empty or crosses half full,
 * so the request path pays one uncontended lock and a memcpy. A lock-free ring would save little
 * at the few thousand rows a second one gateway produces, and would make flush and the drop
 * accounting harder to get right.
 *
 * The writer takes rows without copying them: under the lock it notes the first queued slot and
 * the count, releases the lock, writes those slots, and only then gives them back. Producers write
 * only to free slots, so the slots being written are never touched meanwhile.
 *
 * Group commit: an idle writer sleeps until a row arrives, then gathers for at most
 * commit_interval_ms (or until the queue is half full, a flush is asked for, or close), and writes
 * everything queued in one transaction. When rows arrived while it was writing, it writes them
 * straight away: under load, commits run back to back and each takes whatever accumulated during
 * the previous one.
 *
 * Durability (SQLite in WAL mode with synchronous=NORMAL): a committed transaction is in the WAL
 * file, written but not fsynced; the WAL is fsynced at checkpoints. So a killed process (kill -9,
 * a crash) loses only rows not yet committed: those gathered in the current interval plus the
 * batch being written, at most one commit interval's worth. A power loss or OS crash may also
 * roll back the most recent commits since the last checkpoint, but the database is never corrupt
 * (SQLite's WAL recovery guarantees it). synchronous=FULL would fsync every commit, which group
 * commit makes affordable but which buys nothing against kill -9. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ledger/internal.h"
#include "metrics/metrics.h"

/* ---------------------------------------------------------------------------------------------
 * Columns
 * ------------------------------------------------------------------------------------------- */
#define COL(name, type, member)                                                                    \
    {                                                                                              \
        name, type, offsetof(struct sb_ledger_row, member),                                        \
            sizeof(((struct sb_ledger_row *)0)->member)                                            \
    }

static const struct sb__ledger_column columns[] = {
    COL("ts_ms", SB__COL_INT64, ts_ms),
    COL("request_id", SB__COL_TEXT, request_id),
    COL("key_id", SB__COL_TEXT, key_id),
    COL("team", SB__COL_TEXT, team),
    COL("api", SB__COL_API, api),
    COL("model", SB__COL_TEXT, model),
    COL("backends_tried", SB__COL_TEXT, backends_tried),
    COL("backend", SB__COL_TEXT, backend),
    COL("rule_id", SB__COL_TEXT, rule_id),
    COL("sensitivity", SB__COL_TEXT, sensitivity),
    COL("pii_counts", SB__COL_TEXT, pii_counts),
    COL("status", SB__COL_INT32, status),
    COL("error_class", SB__COL_TEXT, error_class),
    COL("prompt_tokens", SB__COL_INT64, prompt_tokens),
    COL("cached_prompt_tokens", SB__COL_INT64, cached_prompt_tokens),
    COL("cache_write_tokens", SB__COL_INT64, cache_write_tokens),
    COL("completion_tokens", SB__COL_INT64, completion_tokens),
    COL("queue_ms", SB__COL_REAL_OPT, queue_ms),
    COL("ttft_ms", SB__COL_REAL_OPT, ttft_ms),
    COL("latency_ms", SB__COL_REAL, latency_ms),
    COL("tokens_per_s", SB__COL_REAL_OPT, tokens_per_s),
    COL("cost_microusd", SB__COL_INT64_OPT, cost_microusd),
    COL("streamed", SB__COL_BOOL, streamed),
    COL("attempts", SB__COL_INT32, attempts),
};

const struct sb__ledger_column *sb__ledger_columns(size_t *n)
{
    *n = SB_ARRAY_LEN(columns);
    return columns;
}

/* Indexed by enum sb_api. */
static const char *const api_names[] = {
    [SB_API_OPENAI] = "openai",
    [SB_API_ANTHROPIC] = "anthropic",
    [SB_API_OLLAMA] = "ollama",
};

const char *sb_ledger_api_name(enum sb_api api)
{
    if ((unsigned)api >= SB_ARRAY_LEN(api_names) || api_names[api] == NULL)
        return "";
    return api_names[api];
}

void sb_ledger_copy(char *dst, size_t dst_size, struct sb_str src)
{
    if (dst_size == 0)
        return;
    size_t len = src.len;
    if (len > dst_size - 1) {
        len = dst_size - 1;
        /* Back up over continuation bytes so a multi-byte character is not split. */
        while (len > 0 && ((unsigned char)src.p[len] & 0xC0) == 0x80)
            len--;
    }
    if (len > 0)
        memcpy(dst, src.p, len);
    dst[len] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Stores, chosen by the target's prefix (first match wins).
 * ------------------------------------------------------------------------------------------- */
static const struct {
    const char *prefix;
    const struct sb__ledger_store_ops *ops;
} stores[] = {
    {"postgres://", &sb__ledger_pg_ops},
    {"postgresql://", &sb__ledger_pg_ops},
    {"", &sb__ledger_sqlite_ops}, /* anything else is a SQLite file */
};

const struct sb__ledger_store_ops *sb__ledger_store_for(const char *target)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(stores); i++)
        if (strncmp(target, stores[i].prefix, strlen(stores[i].prefix)) == 0)
            return stores[i].ops;
    return &sb__ledger_sqlite_ops; /* unreachable: "" matches everything */
}

void sb_ledger_display_name(const char *target, char *out, size_t out_size)
{
    sb_redact_url(target != NULL ? target : "", out, out_size);
}

/* ---------------------------------------------------------------------------------------------
 * Content
 * ------------------------------------------------------------------------------------------- */
/* Text waiting in the queue, all rows together; a row whose text would pass it is recorded
 * without its text (counted in stats.content_dropped), so a burst of long prompts cannot take
 * the memory of queue_size * SB_LEDGER_CONTENT_MAX. */
#define CONTENT_QUEUE_MAX ((size_t)64 << 20)

static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

size_t sb__ledger_utf8_char(const unsigned char *s, size_t n)
{
    /* By lead byte: the sequence's length, the bits it carries, the smallest value it may
     * encode (shorter forms are overlong). */
    static const struct {
        unsigned char mask, lead;
        size_t len;
        uint32_t min;
    } forms[] = {
        {0xE0, 0xC0, 2, 0x80},
        {0xF0, 0xE0, 3, 0x800},
        {0xF8, 0xF0, 4, 0x10000},
    };
    if (s[0] != 0 && s[0] < 0x80)
        return 1;
    for (size_t f = 0; f < SB_ARRAY_LEN(forms); f++) {
        if ((s[0] & forms[f].mask) != forms[f].lead)
            continue;
        size_t len = forms[f].len;
        if (len > n)
            return 0;
        uint32_t cp = s[0] & (unsigned char)~forms[f].mask;
        for (size_t i = 1; i < len; i++) {
            if ((s[i] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i] & 0x3Fu);
        }
        bool ok = cp >= forms[f].min && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
        return ok ? len : 0;
    }
    return 0;
}

/* Copies src into dst (NULL: only measures) as valid UTF-8 without NUL bytes, each bad byte
 * becoming U+FFFD, stopping before a character that would take the output past cap. Returns the
 * output's length. */
static size_t clean_utf8(char *dst, struct sb_str src, size_t cap)
{
    size_t out = 0;
    const unsigned char *s = (const unsigned char *)src.p;
    for (size_t i = 0; i < src.len;) {
        size_t len = sb__ledger_utf8_char(s + i, src.len - i);
        const char *piece = len > 0 ? (const char *)s + i : replacement;
        size_t piece_len = len > 0 ? len : sizeof replacement - 1;
        if (out + piece_len > cap)
            break;
        if (dst != NULL)
            memcpy(dst + out, piece, piece_len);
        out += piece_len;
        i += len > 0 ? len : 1;
    }
    return out;
}

/* A content block for the texts, or NULL when out of memory. */
static struct sb__ledger_content *content_new(struct sb_str prompt, struct sb_str completion)
{
    size_t np = clean_utf8(NULL, prompt, SB_LEDGER_CONTENT_MAX);
    size_t nc = clean_utf8(NULL, completion, SB_LEDGER_CONTENT_MAX);
    struct sb__ledger_content *c = malloc(sizeof *c + np + 1 + nc + 1);
    if (c == NULL)
        return NULL;
    char *p = (char *)(c + 1);
    char *q = p + np + 1;
    clean_utf8(p, prompt, SB_LEDGER_CONTENT_MAX);
    p[np] = '\0';
    clean_utf8(q, completion, SB_LEDGER_CONTENT_MAX);
    q[nc] = '\0';
    *c = (struct sb__ledger_content){p, np, q, nc};
    return c;
}

static size_t content_size(const struct sb__ledger_content *c)
{
    return c != NULL ? c->prompt_len + c->completion_len : 0;
}

/* ---------------------------------------------------------------------------------------------
 * The ledger
 * ------------------------------------------------------------------------------------------- */
#define NS_PER_MS 1000000ull
/* Retention runs at most this often, deleting PURGE_BATCH rows per transaction; between batches
 * the writer goes back to writing rows, so a large backlog of old rows never stalls recording. */
#define PURGE_EVERY_NS (60ull * 1000 * NS_PER_MS)
#define PURGE_BATCH    1000
/* How often a warning about dropped rows or failed writes may be logged. */
#define WARN_EVERY_NS (10ull * 1000 * NS_PER_MS)
/* cfg->queue_size above this is refused: a row is about 1 KiB. */
#define MAX_QUEUE ((size_t)1 << 24)

struct sb_ledger {
    const struct sb__ledger_store_ops *ops;
    struct sb__ledger_store *store;
    uint64_t interval_ns; /* commit_interval_ms */
    int64_t retention_ms; /* 0 = keep forever */
    bool content_logging; /* content_logging */
    struct sb_metric_series *m_rows, *m_dropped, *m_failed;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* the writer waits on it: rows, flush, hold, stop */
    pthread_cond_t done; /* flushers wait on it: the writer finished an iteration */
    pthread_t writer;
    bool sync_ready;     /* lock, wake and done exist */
    bool writer_started; /* writer is running (until close joins it) */

    /* Under lock. The ring's queued rows are ring[head], ring[head+1], ... (mod cap), count of
     * them; the writer may be writing the first of them, which stay counted until it is done. */
    struct sb__ledger_item *ring;
    size_t cap, head, count;
    size_t content_bytes; /* text held by queued rows */
    uint64_t flush_req;   /* flushes asked for */
    uint64_t flush_done;  /* flushes answered: every row queued before flush_done was asked for
                             is committed (or failed), and no retention pass is due */
    uint64_t failed_seen; /* stats.failed as of the last flush, for its result */
    bool stop, hold;
    struct sb_ledger_stats stats;
    uint64_t drop_warned_ns; /* when dropping was last logged (0 = never) */
    uint64_t drops_unlogged; /* drops since then */

    /* The writer's own. */
    const struct sb__ledger_item **batch; /* cap pointers into ring */
};

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits on cond until the monotonic time deadline_ns (UINT64_MAX = no deadline). */
static void wait_until(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t deadline_ns)
{
    if (deadline_ns == UINT64_MAX) {
        pthread_cond_wait(cond, lock);
        return;
    }
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    pthread_cond_timedwait(cond, lock, &ts);
}

/* Under lock: whether the writer has something to do now. */
static bool writer_has_work(const struct sb_ledger *l, uint64_t next_purge_ns)
{
    /* While held, flushes wait too: answering one would skip the rows it is waiting for. */
    return l->stop || (!l->hold && (l->count > 0 || l->flush_req != l->flush_done)) ||
           sb_now_ns() >= next_purge_ns;
}

/* Under lock: whether gathering should go on waiting for more rows. */
static bool keep_gathering(const struct sb_ledger *l)
{
    return !l->stop && !l->hold && l->flush_req == l->flush_done && l->count < (l->cap + 1) / 2;
}

/* Runs one retention batch if one is due; returns the new time the next is due. */
static uint64_t run_retention(struct sb_ledger *l, uint64_t next_purge_ns, int64_t *purged)
{
    *purged = 0;
    uint64_t now = sb_now_ns();
    if (now < next_purge_ns)
        return next_purge_ns;
    char err[256] = "";
    int64_t deleted = 0;
    int rc = l->ops->purge(l->store, unix_ms() - l->retention_ms, PURGE_BATCH, &deleted, err,
                           sizeof err);
    if (rc != 0) {
        sb_log(SB_LOG_WARN, NULL, "ledger retention failed, trying again in a minute: %s", err);
        return now + PURGE_EVERY_NS;
    }
    *purged = deleted;
    /* A full batch means there may be more: due again at once (after any rows waiting). */
    return deleted >= PURGE_BATCH ? now : now + PURGE_EVERY_NS;
}

static void *writer_main(void *arg)
{
    struct sb_ledger *l = arg;
    /* Retention runs once at start, then at most once a minute. */
    uint64_t next_purge_ns = l->retention_ms > 0 ? sb_now_ns() : UINT64_MAX;
    uint64_t fail_warned_ns = 0, fails_unlogged = 0;
    bool backlog = false;

    pthread_mutex_lock(&l->lock);
    for (;;) {
        while (!writer_has_work(l, next_purge_ns))
            wait_until(&l->wake, &l->lock, next_purge_ns);
        /* Gather only when the queue had drained: rows that came during the last commit have
         * waited long enough already. */
        if (l->count > 0 && !backlog) {
            uint64_t deadline = sb_now_ns() + l->interval_ns;
            while (keep_gathering(l) && sb_now_ns() < deadline)
                wait_until(&l->wake, &l->lock, deadline);
        }
        size_t n = l->hold && !l->stop ? 0 : l->count;
        bool took_all = n == l->count;
        size_t start = l->head;
        uint64_t gen = l->flush_req;
        bool stopping = l->stop;
        pthread_mutex_unlock(&l->lock);

        int rc = 0;
        char err[512] = "";
        size_t text = 0;
        if (n > 0) {
            for (size_t i = 0; i < n; i++)
                l->batch[i] = &l->ring[(start + i) % l->cap];
            rc = l->ops->write_batch(l->store, l->batch, n, err, sizeof err);
            /* Written or lost, the text goes now; the slots go back below. */
            for (size_t i = 0; i < n; i++) {
                struct sb__ledger_item *it = &l->ring[(start + i) % l->cap];
                text += content_size(it->content);
                free(it->content);
                it->content = NULL;
            }
        }
        int64_t purged = 0;
        if (!stopping)
            next_purge_ns = run_retention(l, next_purge_ns, &purged);
        if (rc == 0 && n > 0)
            sb_metrics_add(l->m_rows, n);
        if (rc != 0) {
            sb_metrics_add(l->m_failed, n);
            fails_unlogged += n;
            uint64_t now = sb_now_ns();
            if (fail_warned_ns == 0 || now - fail_warned_ns >= WARN_EVERY_NS) {
                sb_log(SB_LOG_ERROR, NULL, "ledger write failed; %llu rows lost: %s",
                       (unsigned long long)fails_unlogged, err);
                fail_warned_ns = now;
                fails_unlogged = 0;
            }
        }

        pthread_mutex_lock(&l->lock);
        l->head = (l->head + n) % l->cap;
        l->count -= n;
        l->content_bytes -= text;
        if (rc == 0 && n > 0) {
            l->stats.committed += n;
            l->stats.commits++;
        } else if (rc != 0) {
            l->stats.failed += n;
        }
        l->stats.purged += (uint64_t)purged;
        backlog = l->count > 0;
        /* A flush is answered once every row queued before it is written and no retention
         * batch is pending. */
        if (took_all && (stopping || sb_now_ns() < next_purge_ns))
            l->flush_done = gen;
        pthread_cond_broadcast(&l->done);
        if (stopping && l->count == 0)
            break;
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

/* Makes the lock and the two condition variables. Returns 0 or SB_ENOMEM (nothing to undo). */
static int sync_init(struct sb_ledger *l)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0)
        return SB_ENOMEM;
    /* Deadlines are monotonic, so a wall-clock step neither stalls nor rushes a commit. */
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    int made = 0;
    if (pthread_mutex_init(&l->lock, NULL) == 0) {
        made = 1;
        if (pthread_cond_init(&l->wake, &attr) == 0) {
            made = 2;
            if (pthread_cond_init(&l->done, &attr) == 0)
                made = 3;
        }
    }
    pthread_condattr_destroy(&attr);
    if (made == 3)
        return 0;
    if (made >= 2)
        pthread_cond_destroy(&l->wake);
    if (made >= 1)
        pthread_mutex_destroy(&l->lock);
    return SB_ENOMEM;
}

/* Frees what open made; the writer must not be running. NULL is allowed. */
static void ledger_free(struct sb_ledger *l)
{
    if (l == NULL)
        return;
    if (l->store != NULL)
        l->ops->close(l->store);
    for (size_t i = 0; l->ring != NULL && i < l->cap; i++)
        free(l->ring[i].content); /* none unless the writer never ran */
    if (l->sync_ready) {
        pthread_cond_destroy(&l->done);
        pthread_cond_destroy(&l->wake);
        pthread_mutex_destroy(&l->lock);
    }
    free(l->batch);
    free(l->ring);
    free(l);
}

int sb_ledger_open(const struct sb_ledger_config *cfg, struct sb_ledger **out, char *err,
                   size_t err_size)
{
    int rc = 0;
    struct sb_ledger *l = NULL;
    char why[512] = "";
    *out = NULL;

    if (cfg->path == NULL || cfg->path[0] == '\0')
        return 0;
    if (cfg->commit_interval_ms < 1 || cfg->queue_size < 1 || cfg->queue_size > MAX_QUEUE ||
        cfg->retention_days < 0) {
        snprintf(why, sizeof why,
                 "ledger: commit_interval_ms must be at least 1, queue_size from 1 to %zu and "
                 "retention_days at least 0",
                 MAX_QUEUE);
        rc = SB_EINVAL;
        goto fail;
    }
    const struct sb__ledger_store_ops *ops = sb__ledger_store_for(cfg->path);

    rc = SB_ENOMEM;
    l = calloc(1, sizeof *l);
    if (l == NULL)
        goto fail;
    l->ops = ops;
    l->cap = cfg->queue_size;
    l->interval_ns = (uint64_t)cfg->commit_interval_ms * NS_PER_MS;
    l->retention_ms = (int64_t)cfg->retention_days * 24 * 3600 * 1000;
    l->content_logging = cfg->content_logging;
    l->ring = calloc(l->cap, sizeof *l->ring);
    l->batch = calloc(l->cap, sizeof *l->batch);
    if (l->ring == NULL || l->batch == NULL || sync_init(l) != 0)
        goto fail;
    l->sync_ready = true;

    rc = ops->open(cfg->path, &l->store, why, sizeof why);
    if (rc != 0)
        goto fail;
    if (cfg->content_logging)
        sb_log(SB_LOG_WARN, NULL,
               "ledger.content_logging is on: prompt and completion text is recorded in the "
               "ledger's request_content table");
    l->m_rows = sb_metrics_series(SB_METRIC_LEDGER_ROWS, NULL);
    l->m_dropped = sb_metrics_series(SB_METRIC_LEDGER_DROPPED, NULL);
    l->m_failed = sb_metrics_series(SB_METRIC_LEDGER_WRITE_FAILED, NULL);

    /* The writer takes no signals: they belong to the thread that handles SIGTERM. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int prc = pthread_create(&l->writer, NULL, writer_main, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (prc != 0) {
        snprintf(why, sizeof why, "ledger: cannot start the writer thread: %s", strerror(prc));
        rc = prc == EAGAIN ? SB_ENOMEM : SB_EIO;
        goto fail;
    }
    pthread_setname_np(l->writer, "sb-ledger");
    l->writer_started = true;
    *out = l;
    return 0;

fail:
    if (rc == SB_ENOMEM && why[0] == '\0')
        snprintf(why, sizeof why, "ledger: out of memory");
    if (err != NULL && err_size > 0)
        snprintf(err, err_size, "%s", why);
    ledger_free(l);
    return rc;
}

/* Queues row with content (taken over: freed here when the row is not queued, or when too much
 * text is waiting, in which case the row goes without it). */
static int enqueue(struct sb_ledger *l, const struct sb_ledger_row *row,
                   struct sb__ledger_content *content)
{
    /* The clock is read outside the lock. */
    int64_t now_ms = row->ts_ms == 0 ? unix_ms() : row->ts_ms;
    uint64_t log_drops = 0;
    int rc = 0;
    size_t text = content_size(content);

    pthread_mutex_lock(&l->lock);
    if (l->count == l->cap) {
        l->stats.dropped++;
        l->drops_unlogged++;
        uint64_t now = sb_now_ns();
        if (l->drop_warned_ns == 0 || now - l->drop_warned_ns >= WARN_EVERY_NS) {
            log_drops = l->drops_unlogged;
            l->drops_unlogged = 0;
            l->drop_warned_ns = now;
        }
        rc = SB_EFULL;
    } else {
        struct sb__ledger_item *slot = &l->ring[(l->head + l->count) % l->cap];
        slot->row = *row;
        slot->row.ts_ms = now_ms;
        slot->content = NULL;
        if (content != NULL && l->content_bytes + text <= CONTENT_QUEUE_MAX) {
            slot->content = content;
            content = NULL;
            l->content_bytes += text;
        } else if (content != NULL) {
            l->stats.content_dropped++;
        }
        l->count++;
        l->stats.recorded++;
        /* Wake an idle writer on the first row, and a gathering one once the queue is half full;
         * in between it is waiting on its deadline and needs no signal. */
        if (l->count == 1 || l->count == (l->cap + 1) / 2)
            pthread_cond_signal(&l->wake);
    }
    pthread_mutex_unlock(&l->lock);
    free(content); /* not queued: no room for the row, or for its text */

    if (rc == SB_EFULL) {
        sb_metrics_add(l->m_dropped, 1);
        if (log_drops > 0)
            sb_log(SB_LOG_WARN, row->request_id[0] != '\0' ? row->request_id : NULL,
                   "ledger queue full (%zu rows): dropped %llu rows; the disk is too slow or "
                   "ledger.queue_size too small",
                   l->cap, (unsigned long long)log_drops);
    }
    return rc;
}

int sb_ledger_record(struct sb_ledger *l, const struct sb_ledger_row *row)
{
    if (l == NULL)
        return 0;
    return enqueue(l, row, NULL);
}

bool sb_ledger_content_logging(const struct sb_ledger *l)
{
    return l != NULL && l->content_logging;
}

int sb_ledger_record_content(struct sb_ledger *l, const struct sb_ledger_row *row,
                             struct sb_str prompt_json, struct sb_str completion)
{
    if (l == NULL)
        return 0;
    if (!l->content_logging)
        return enqueue(l, row, NULL);
    struct sb__ledger_content *c = content_new(prompt_json, completion);
    if (c == NULL) {
        pthread_mutex_lock(&l->lock);
        l->stats.content_dropped++;
        pthread_mutex_unlock(&l->lock);
    }
    return enqueue(l, row, c);
}

int sb_ledger_flush(struct sb_ledger *l)
{
    if (l == NULL)
        return 0;
    pthread_mutex_lock(&l->lock);
    uint64_t mine = ++l->flush_req;
    pthread_cond_signal(&l->wake);
    while (l->flush_done < mine)
        pthread_cond_wait(&l->done, &l->lock);
    int rc = l->stats.failed > l->failed_seen ? SB_EIO : 0;
    l->failed_seen = l->stats.failed;
    pthread_mutex_unlock(&l->lock);
    return rc;
}

int sb_ledger_close(struct sb_ledger *l)
{
    if (l == NULL)
        return 0;
    int rc = 0;
    if (l->writer_started) {
        pthread_mutex_lock(&l->lock);
        /* Earlier failures were logged and counted when they happened; the result is about the
         * rows still queued now. */
        l->failed_seen = l->stats.failed;
        l->stop = true;
        pthread_cond_signal(&l->wake);
        pthread_mutex_unlock(&l->lock);
        pthread_join(l->writer, NULL);
        /* The writer drained the queue before it ended. */
        rc = l->stats.failed > l->failed_seen ? SB_EIO : 0;
    }
    ledger_free(l);
    return rc;
}

int sb_ledger_count(struct sb_ledger *l, int64_t *out)
{
    *out = 0;
    if (l == NULL)
        return 0;
    return l->ops->count(l->store, out);
}

void sb_ledger_get_stats(struct sb_ledger *l, struct sb_ledger_stats *out)
{
    memset(out, 0, sizeof *out);
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    *out = l->stats;
    out->queued = l->count;
    pthread_mutex_unlock(&l->lock);
}

void sb__ledger_hold(struct sb_ledger *l, bool hold)
{
    pthread_mutex_lock(&l->lock);
    l->hold = hold;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
}
