/* Decimal configuration values (prices, watts, years) read exactly into whole millionths, so money
 * is integer arithmetic from the file onwards and never passes through a binary float. */
#include <stdio.h>

#include "config/config.h"

/* Fraction digits kept: one millionth (a micro-dollar of a dollar amount). */
#define MICRO_DIGITS 6

int sb_config_parse_micros(const char *text, int64_t max, int64_t *out)
{
    int64_t whole = 0, frac = 0;
    int frac_digits = 0, int_digits = 0;
    bool dot = false;
    const int64_t limit = max < 0 ? 0 : max;

    if (text == NULL || text[0] == '\0')
        return SB_EINVAL;
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '.' && !dot) {
            dot = true;
            continue;
        }
        if (*p < '0' || *p > '9')
            return SB_EINVAL;
        int digit = *p - '0';
        if (!dot) {
            whole = whole * 10 + digit;
            int_digits++;
            /* Checked at each digit, so whole stays far below overflow. */
            if (whole > limit / 1000000)
                return SB_EINVAL;
        } else if (frac_digits < MICRO_DIGITS) {
            frac = frac * 10 + digit;
            frac_digits++;
        } else if (digit != 0) {
            return SB_EINVAL; /* finer than a millionth: refused rather than rounded */
        }
    }
    if (int_digits == 0 && frac_digits == 0)
        return SB_EINVAL; /* "." alone */
    for (int i = frac_digits; i < MICRO_DIGITS; i++)
        frac *= 10;
    int64_t v = whole * 1000000 + frac;
    if (v > limit)
        return SB_EINVAL;
    *out = v;
    return 0;
}

int sb_config_format_micros(struct sb_buf *b, int64_t v)
{
    char digits[8];
    snprintf(digits, sizeof digits, "%06lld", (long long)(v % 1000000));
    size_t n = MICRO_DIGITS;
    while (n > 0 && digits[n - 1] == '0')
        n--;
    int rc = sb_buf_printf(b, "%lld", (long long)(v / 1000000));
    if (rc == 0 && n > 0)
        rc = sb_buf_printf(b, ".%.*s", (int)n, digits);
    return rc;
}
