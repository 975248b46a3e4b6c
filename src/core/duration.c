/* Durations written the way Go's time.ParseDuration reads them ("300ms", "1h30m", "-1.5h"), the
 * syntax Ollama's API uses for keep_alive: a sign, then one or more decimal numbers each followed
 * by its unit; "0" is the only number allowed without one. */
#include <string.h>

#include "core/core.h"

#define NS_MAX ((uint64_t)INT64_MAX)

/* The units, in nanoseconds. The unit runs up to the next digit or '.', so "5 parsecs" has the
 * unit " parsecs" and fails, as it does in Go. */
static const struct {
    const char *name;
    uint64_t ns;
} units[] = {
    {"ns", 1},           {"us", 1000},      {"\xc2\xb5s", 1000}, /* U+00B5 micro sign */
    {"\xce\xbcs", 1000},                                         /* U+03BC Greek small letter mu */
    {"ms", 1000000},     {"s", 1000000000}, {"m", 60ull * 1000000000}, {"h", 3600ull * 1000000000},
};

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads [0-9]* from *s. Returns false when the integer is past NS_MAX (nothing that large fits a
 * duration of any unit). */
static bool leading_int(struct sb_str *s, uint64_t *out)
{
    uint64_t v = 0;
    size_t i = 0;

    for (; i < s->len && is_digit(s->p[i]); i++) {
        uint64_t d = (uint64_t)(s->p[i] - '0');
        if (v > (NS_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    s->p += i;
    s->len -= i;
    return true;
}

/* Reads [0-9]* after the point: the digits as an integer over scale (a power of ten). Digits past
 * what 64 bits hold are dropped, as they change nothing a nanosecond can show. */
static void leading_fraction(struct sb_str *s, uint64_t *frac, double *scale)
{
    bool overflow = false;
    size_t i = 0;

    *frac = 0;
    *scale = 1;
    for (; i < s->len && is_digit(s->p[i]); i++) {
        uint64_t d = (uint64_t)(s->p[i] - '0');
        if (overflow || *frac > (NS_MAX - d) / 10) {
            overflow = true;
            continue;
        }
        *frac = *frac * 10 + d;
        *scale *= 10;
    }
    s->p += i;
    s->len -= i;
}

static int unit_ns(struct sb_str name, uint64_t *ns)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(units); i++) {
        if (sb_str_eq_c(name, units[i].name)) {
            *ns = units[i].ns;
            return SB_OK;
        }
    }
    return SB_EINVAL;
}

/* One "<number><unit>" term from the front of *s, added to *total. */
static int parse_term(struct sb_str *s, uint64_t *total)
{
    uint64_t whole = 0, frac = 0, unit = 0;
    double scale = 1;
    size_t before = s->len;
    bool pre, post = false;
    size_t n = 0;

    if (s->p[0] != '.' && !is_digit(s->p[0]))
        return SB_EINVAL;
    if (!leading_int(s, &whole))
        return SB_ETOOBIG;
    pre = s->len != before;
    if (s->len > 0 && s->p[0] == '.') {
        s->p++;
        s->len--;
        before = s->len;
        leading_fraction(s, &frac, &scale);
        post = s->len != before;
    }
    if (!pre && !post)
        return SB_EINVAL; /* "." or ".s": a point without digits */
    while (n < s->len && s->p[n] != '.' && !is_digit(s->p[n]))
        n++;
    if (n == 0 || unit_ns((struct sb_str){s->p, n}, &unit) != SB_OK)
        return SB_EINVAL; /* no unit, or one that is not a unit of time */
    s->p += n;
    s->len -= n;
    if (whole > NS_MAX / unit)
        return SB_ETOOBIG;
    whole *= unit;
    if (frac > 0) {
        whole += (uint64_t)((double)frac * ((double)unit / scale));
        if (whole > NS_MAX)
            return SB_ETOOBIG;
    }
    if (*total > NS_MAX - whole)
        return SB_ETOOBIG;
    *total += whole;
    return SB_OK;
}

int sb_duration_parse(struct sb_str s, int64_t *ns)
{
    uint64_t total = 0;
    bool neg = false;
    int rc;

    *ns = 0;
    if (s.len > 0 && (s.p[0] == '-' || s.p[0] == '+')) {
        neg = s.p[0] == '-';
        s.p++;
        s.len--;
    }
    if (s.len == 1 && s.p[0] == '0')
        return SB_OK;
    if (s.len == 0)
        return SB_EINVAL;
    while (s.len > 0) {
        rc = parse_term(&s, &total);
        if (rc != SB_OK)
            return rc;
    }
    *ns = neg ? -(int64_t)total : (int64_t)total;
    return SB_OK;
}
