/* Calendar UTC periods for budgets, computed from Unix seconds with the proleptic Gregorian
 * calendar (no time zone, no libc state): days are 86400 s, weeks start on Monday, months on the
 * first. */
#include <strings.h>

#include "budget/budget.h"

struct period_row {
    const char *name;      /* as written in the config and the CLI */
    const char *adjective; /* for messages */
};

static const struct period_row periods[SB_BUDGET_N_PERIODS] = {
    [SB_BUDGET_DAY] = {"day", "daily"},
    [SB_BUDGET_WEEK] = {"week", "weekly"},
    [SB_BUDGET_MONTH] = {"month", "monthly"},
};

int sb_budget_period_parse(const char *text, enum sb_budget_period *out)
{
    for (size_t i = 0; text != NULL && i < SB_ARRAY_LEN(periods); i++) {
        if (strcasecmp(text, periods[i].name) == 0) {
            *out = (enum sb_budget_period)i;
            return 0;
        }
    }
    return SB_EINVAL;
}

const char *sb_budget_period_name(enum sb_budget_period p)
{
    return (size_t)p < SB_ARRAY_LEN(periods) ? periods[p].name : "?";
}

const char *sb_budget_period_adjective(enum sb_budget_period p)
{
    return (size_t)p < SB_ARRAY_LEN(periods) ? periods[p].adjective : "?";
}

#define DAY_S 86400

/* Floor division: days before 1970 round towards the past. */
static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* The civil date of day z (days since 1970-01-01), and back: Howard Hinnant's algorithms, which
 * count in 400-year eras of 146097 days starting on March 1st, so leap days fall at an era's
 * year's end. */
static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = floor_div(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);                          /* [0, 146096] */
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
    unsigned mp = (5 * doy + 2) / 153;                                    /* [0, 11] from March */
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floor_div(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void sb_budget_period_bounds(enum sb_budget_period p, int64_t now_s, int64_t *start, int64_t *end)
{
    int64_t day = floor_div(now_s, DAY_S);
    int64_t y;
    unsigned m, d;

    switch (p) {
    case SB_BUDGET_WEEK: {
        /* 1970-01-01 was a Thursday: day 0 is 3 days after a Monday. */
        int64_t monday = day - (int64_t)((day + 3) - floor_div(day + 3, 7) * 7);
        *start = monday * DAY_S;
        *end = (monday + 7) * DAY_S;
        return;
    }
    case SB_BUDGET_MONTH:
        civil_from_days(day, &y, &m, &d);
        *start = days_from_civil(y, m, 1) * DAY_S;
        *end = (m == 12 ? days_from_civil(y + 1, 1, 1) : days_from_civil(y, m + 1, 1)) * DAY_S;
        return;
    case SB_BUDGET_DAY:
    default:
        *start = day * DAY_S;
        *end = (day + 1) * DAY_S;
        return;
    }
}
