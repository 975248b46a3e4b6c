/* Logging to stderr: one write per line, so lines from threads never interleave. */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/core.h"

static _Atomic int current_level = SB_LOG_INFO;

/* Indexed by enum sb_log_level. */
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void sb_log_set_level(enum sb_log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum sb_log_level sb_log_get_level(void)
{
    return (enum sb_log_level)atomic_load(&current_level);
}

int sb_log_parse_level(const char *name, enum sb_log_level *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(level_names); i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum sb_log_level)i;
            return 0;
        }
    }
    return SB_EINVAL;
}

void sb_log(enum sb_log_level level, const char *req_id, const char *fmt, ...)
{
    if ((int)level < atomic_load(&current_level))
        return;
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    int w =
        snprintf(line + n, sizeof(line) - n, ".%03ldZ %-5s %s%s%s", ts.tv_nsec / 1000000L,
                 level_names[level], req_id ? "[" : "", req_id ? req_id : "", req_id ? "] " : "");
    if (w > 0)
        n += SB_MIN((size_t)w, sizeof(line) - n - 1);
    va_list ap;
    va_start(ap, fmt);
    w = vsnprintf(line + n, sizeof(line) - n, fmt, ap);
    va_end(ap);
    if (w > 0)
        n += SB_MIN((size_t)w, sizeof(line) - n - 1);
    /* A line cut at the buffer's end still ends with a newline. */
    if (n >= sizeof(line) - 1)
        n = sizeof(line) - 2;
    line[n++] = '\n';
    ssize_t wr = write(STDERR_FILENO, line, n);
    SB_UNUSED(wr);
}
