/* Small text helpers the models commands share: sizes for people, and errno messages. */
#include <stdio.h>
#include <string.h>

#include "models/internal.h"

const char *sb__models_errno_text(int errnum, char *buf, size_t size)
{
    return strerror_r(errnum, buf, size);
}

void sb__models_human_bytes(double v, char *out, size_t size)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    size_t u = 0;
    while (v >= 1000 && u + 1 < SB_ARRAY_LEN(units)) {
        v /= 1000;
        u++;
    }
    snprintf(out, size, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}
