/* String views: comparisons and searches over borrowed bytes. */
#include <string.h>

#include "core/core.h"

struct sb_str sb_str_c(const char *s)
{
    if (s == NULL)
        return SB_STR_NULL;
    return (struct sb_str){s, strlen(s)};
}

bool sb_str_eq(struct sb_str a, struct sb_str b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.p, b.p, a.len) == 0);
}

bool sb_str_eq_c(struct sb_str a, const char *s)
{
    return sb_str_eq(a, sb_str_c(s));
}

bool sb_str_starts_with(struct sb_str s, struct sb_str prefix)
{
    return s.len >= prefix.len && (prefix.len == 0 || memcmp(s.p, prefix.p, prefix.len) == 0);
}

ptrdiff_t sb_str_find(struct sb_str hay, struct sb_str needle)
{
    if (needle.len == 0)
        return 0;
    if (hay.len < needle.len)
        return -1;
    const char *hit = memmem(hay.p, hay.len, needle.p, needle.len);
    return hit == NULL ? -1 : hit - hay.p;
}
