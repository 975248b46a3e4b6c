/* Core vocabulary shared by every module: string views, bounded buffers, error codes, logging,
 * request arenas and clocks. Nothing here depends on a third-party library. */
#ifndef SB_CORE_H
#define SB_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define SB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define SB_UNUSED(x)    ((void)(x))
#define SB_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define SB_MAX(a, b)    ((a) > (b) ? (a) : (b))

#if defined(__GNUC__)
#define SB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SB_PRINTF(fmt, args)
#endif

/* ---------------------------------------------------------------------------------------------
 * Errors: functions return 0 on success and a negative SB_E* code on failure.
 * ------------------------------------------------------------------------------------------- */
enum {
    SB_OK = 0,
    SB_ENOMEM = -1,        /* an allocation failed */
    SB_EINVAL = -2,        /* an argument or input is malformed */
    SB_ETOOBIG = -3,       /* a bounded buffer or limit would be exceeded */
    SB_ENOTFOUND = -4,     /* a named thing does not exist */
    SB_EIO = -5,           /* a system call or file operation failed (see errno) */
    SB_ESTATE = -6,        /* the object is in the wrong state for this call */
    SB_ECANCELED = -7,     /* the operation was cancelled by its owner */
    SB_EBACKEND = -8,      /* a backend (model, provider) failed */
    SB_EFULL = -9,         /* a queue is full; retry later */
    SB_ECONTEXT = -10,     /* the prompt does not fit the model's context window */
    SB_EUNSUPPORTED = -11, /* valid input that this build or backend does not support */
    SB_ETIMEOUT = -12,     /* a deadline passed (connect, first byte, idle, total) */
    SB_ECONNECT = -13,     /* a connection could not be made or was reset */
    SB_EUPSTREAM = -14,    /* an upstream provider answered with an error or malformed data */
    SB_EDENIED = -15,      /* a policy, scope or budget does not allow the request */
};

/* Returns a static, human-readable description of an SB_E* code. Never NULL. */
const char *sb_strerror(int err);

/* ---------------------------------------------------------------------------------------------
 * String views. A view borrows its bytes: it is valid as long as what it points into.
 * ------------------------------------------------------------------------------------------- */
struct sb_str {
    const char *p; /* not NUL-terminated in general; NULL only when len == 0 */
    size_t len;
};

#define SB_STR_NULL ((struct sb_str){NULL, 0})
/* A view of a string literal. */
#define SB_STR_LIT(s) ((struct sb_str){(s), sizeof(s) - 1})

/* A view of a NUL-terminated string (NULL gives the empty view). */
struct sb_str sb_str_c(const char *s);
bool sb_str_eq(struct sb_str a, struct sb_str b);
bool sb_str_eq_c(struct sb_str a, const char *s);
bool sb_str_starts_with(struct sb_str s, struct sb_str prefix);
/* Returns the offset of the first occurrence of needle in hay, or -1. An empty needle is found at
 * 0. */
ptrdiff_t sb_str_find(struct sb_str hay, struct sb_str needle);

/* ---------------------------------------------------------------------------------------------
 * Growable buffers with a maximum size. The bytes are always NUL-terminated (not counted in len).
 * Pointers into a buffer are invalid after the next append.
 * ------------------------------------------------------------------------------------------- */
struct sb_buf {
    char *p;    /* owned; NULL until the first append */
    size_t len; /* bytes used, excluding the terminating NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* appends that would make len exceed max fail with SB_ETOOBIG */
};

/* Initializes an empty buffer that may grow to max bytes. Allocates nothing. */
void sb_buf_init(struct sb_buf *b, size_t max);
/* Frees the bytes; the buffer may be reused after sb_buf_init. */
void sb_buf_free(struct sb_buf *b);
/* Empties the buffer, keeping its allocation. */
void sb_buf_reset(struct sb_buf *b);
/* Each returns 0, SB_ENOMEM, or SB_ETOOBIG (the buffer is unchanged on failure). */
int sb_buf_append(struct sb_buf *b, const void *data, size_t len);
int sb_buf_append_str(struct sb_buf *b, struct sb_str s);
int sb_buf_append_c(struct sb_buf *b, const char *s);
int sb_buf_append_char(struct sb_buf *b, char c);
int sb_buf_printf(struct sb_buf *b, const char *fmt, ...) SB_PRINTF(2, 3);
int sb_buf_vprintf(struct sb_buf *b, const char *fmt, va_list ap) SB_PRINTF(2, 0);
/* Appends s as the contents of a JSON string, escaped, without the surrounding quotes. Invalid
 * UTF-8 bytes become U+FFFD. */
int sb_buf_append_json_escaped(struct sb_buf *b, struct sb_str s);
/* Hands the bytes to the caller (who frees them with free()) and resets the buffer to empty.
 * Returns an empty, allocated string for an empty buffer; NULL only when out of memory. */
char *sb_buf_steal(struct sb_buf *b);
static inline struct sb_str sb_buf_view(const struct sb_buf *b)
{
    return (struct sb_str){b->p, b->len};
}

/* ---------------------------------------------------------------------------------------------
 * Request arenas: many small allocations freed together when the request ends.
 * ------------------------------------------------------------------------------------------- */
struct sb_arena;

/* Returns a new arena that refuses to hold more than max bytes in all, or NULL when out of memory.
 * The caller frees it with sb_arena_free. */
struct sb_arena *sb_arena_new(size_t max);
/* Frees the arena and everything allocated from it. NULL is allowed. */
void sb_arena_free(struct sb_arena *a);
/* Returns size bytes aligned for any type, zeroed, or NULL when out of memory or over the arena's
 * maximum. The memory lives until sb_arena_free. */
void *sb_arena_alloc(struct sb_arena *a, size_t size);
/* Copies s into the arena, NUL-terminated. Returns NULL on failure. */
char *sb_arena_strndup(struct sb_arena *a, const char *s, size_t len);
/* Copies a view into the arena; the result's bytes are NUL-terminated. On failure returns the empty
 * view with p == NULL and sets *err (when err is not NULL) to SB_ENOMEM. */
struct sb_str sb_arena_str(struct sb_arena *a, struct sb_str s, int *err);
/* Bytes handed out so far (for limits and tests). */
size_t sb_arena_used(const struct sb_arena *a);

/* ---------------------------------------------------------------------------------------------
 * Logging. Lines go to stderr as "time level [req-id] message". Never log prompt or completion
 * text, API keys or PII.
 * ------------------------------------------------------------------------------------------- */
enum sb_log_level { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };

void sb_log_set_level(enum sb_log_level level);
enum sb_log_level sb_log_get_level(void);
/* Parses "debug", "info", "warn" or "error"; returns 0 or SB_EINVAL. */
int sb_log_parse_level(const char *name, enum sb_log_level *out);
/* req_id may be NULL for lines not about a request. Thread-safe; one write per line. */
void sb_log(enum sb_log_level level, const char *req_id, const char *fmt, ...) SB_PRINTF(3, 4);

/* ---------------------------------------------------------------------------------------------
 * Clocks and ids.
 * ------------------------------------------------------------------------------------------- */
/* Monotonic time in nanoseconds, for durations. */
uint64_t sb_now_ns(void);
/* Wall-clock time in seconds since the epoch, for timestamps in responses. */
int64_t sb_unix_time(void);
/* Writes a random id of the form prefix + 24 base-62 characters into out (NUL-terminated).
 * out_size must be at least strlen(prefix) + 25. Thread-safe. */
void sb_random_id(char *out, size_t out_size, const char *prefix);
/* Parses a duration in Go's time.ParseDuration syntax (core/duration.c): an optional sign, then
 * one or more decimal numbers each with a unit of ns, us (or µs), ms, s, m or h ("1h30m",
 * "1.5s", "-5m"); "0" alone needs no unit. Sets *ns (0 on failure). Returns 0, SB_EINVAL for
 * text that is not a duration (empty, a missing or unknown unit), or SB_ETOOBIG when it is
 * beyond ±INT64_MAX nanoseconds (about 292 years). */
int sb_duration_parse(struct sb_str s, int64_t *ns);

/* ---------------------------------------------------------------------------------------------
 * Secrets in what is shown (core/redact.c).
 * ------------------------------------------------------------------------------------------- */
/* Writes url into out (NUL-terminated, cut to out_size) with its password replaced by "***": the
 * one between "user:" and "@" (the user information ends at the first '@' before any '/', as
 * libpq reads it), and password=... among its query parameters. Text without "://" is copied. */
void sb_redact_url(const char *url, char *out, size_t out_size);
/* Replaces every occurrence of secret (when not NULL or empty) in the NUL-terminated msg, an
 * array of msg_size bytes, with "***", cut to fit (a cut never leaves part of the secret). */
void sb_redact_secret(char *msg, size_t msg_size, const char *secret);

#ifdef __cplusplus
}
#endif

#endif
