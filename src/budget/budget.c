/* The budget ledger in memory: one entry per budget in use (a key's, a team's, the global one),
 * each with its current period's settled spend and the reservations in flight, behind one mutex
 * so that a request's reservation against all of its budgets is a single step. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Entries
 * ------------------------------------------------------------------------------------------- */
/* Percentages of a limit whose first crossing in a period is announced. */
static const int thresholds[] = {50, 80, 100};

static const char *const scope_names[] = {
    [SB_BUDGET_SCOPE_KEY] = "key",
    [SB_BUDGET_SCOPE_TEAM] = "team",
    [SB_BUDGET_SCOPE_GLOBAL] = "global",
};

const char *sb_budget_scope_name(enum sb_budget_scope s)
{
    return (size_t)s < SB_ARRAY_LEN(scope_names) ? scope_names[s] : "?";
}

/* FNV-1a over the scope and the name. */
static size_t entry_hash(enum sb_budget_scope scope, const char *name)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)scope;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ull;
    return (size_t)h;
}

static void copy_name(char *dst, const char *src)
{
    snprintf(dst, SB__BUDGET_NAME_MAX, "%s", src != NULL ? src : "");
}

static struct sb__budget_entry *entry_find(struct sb_budget *b, enum sb_budget_scope scope,
                                           const char *name)
{
    size_t i = entry_hash(scope, name) & (b->n_buckets - 1);
    for (struct sb__budget_entry *e = b->buckets[i]; e != NULL; e = e->next) {
        if (e->scope == scope && strncmp(e->name, name, SB__BUDGET_NAME_MAX - 1) == 0)
            return e;
    }
    return NULL;
}

/* Doubles the table when it holds more entries than buckets. Failing to grow only slows lookups. */
static void maybe_grow(struct sb_budget *b)
{
    if (b->n_entries < b->n_buckets)
        return;
    size_t n = b->n_buckets * 2;
    struct sb__budget_entry **nb = calloc(n, sizeof(*nb));
    if (nb == NULL)
        return;
    for (size_t i = 0; i < b->n_buckets; i++) {
        struct sb__budget_entry *e = b->buckets[i];
        while (e != NULL) {
            struct sb__budget_entry *next = e->next;
            size_t j = entry_hash(e->scope, e->name) & (n - 1);
            e->next = nb[j];
            nb[j] = e;
            e = next;
        }
    }
    free(b->buckets);
    b->buckets = nb;
    b->n_buckets = n;
}

/* The entry for (scope, name), made for the period holding now_s when it does not exist yet.
 * NULL when out of memory. */
static struct sb__budget_entry *entry_get(struct sb_budget *b, enum sb_budget_scope scope,
                                          const char *name, int64_t limit,
                                          enum sb_budget_period period, int64_t now_s)
{
    struct sb__budget_entry *e = entry_find(b, scope, name);
    if (e != NULL)
        return e;
    e = calloc(1, sizeof(*e));
    if (e == NULL)
        return NULL;
    e->scope = scope;
    copy_name(e->name, name);
    e->limit = limit;
    e->period = period;
    sb_budget_period_bounds(period, now_s, &e->start, &e->end);
    size_t i = entry_hash(scope, e->name) & (b->n_buckets - 1);
    e->next = b->buckets[i];
    b->buckets[i] = e;
    b->n_entries++;
    maybe_grow(b);
    return e;
}

/* Moves e into the period holding now_s when its own has ended: spend and announcements start
 * over; reservations in flight stay held until they settle. A clock that stepped back keeps the
 * current period. */
static void entry_roll(struct sb__budget_entry *e, int64_t now_s)
{
    if (now_s < e->end)
        return;
    sb_budget_period_bounds(e->period, now_s, &e->start, &e->end);
    e->spent = 0;
    e->notified = 0;
}

/* A key's budget may be seen with another period than its entry has (a key re-created under the
 * same id cannot happen, but the entry must follow what the caller says). */
static void entry_configure(struct sb__budget_entry *e, int64_t limit, enum sb_budget_period period,
                            int64_t now_s)
{
    e->limit = limit;
    if (e->period != period) {
        e->period = period;
        e->end = INT64_MIN; /* force entry_roll to recompute */
        e->start = INT64_MIN;
    }
    entry_roll(e, now_s);
}

static bool crossed(int64_t spent, int64_t limit, int percent)
{
    if (limit <= 0)
        return spent > 0;
    /* Limits are below 10^15 micro-dollars (the config's maximum), so this cannot overflow for
     * any spend a budget accepts; saturate anyway for hand-built params. */
    if (spent > INT64_MAX / 100)
        return true;
    return spent * 100 >= limit * (int64_t)percent;
}

/* ---------------------------------------------------------------------------------------------
 * Life cycle
 * ------------------------------------------------------------------------------------------- */
int sb_budget_new(const struct sb_budget_params *p, struct sb_budget **out)
{
    struct sb_budget *b;

    *out = NULL;
    if ((p->global != NULL && p->global->micros < 0) || p->default_max_tokens < 0)
        return SB_EINVAL;
    for (size_t i = 0; i < p->n_teams; i++) {
        if (p->teams[i].micros < 0 || p->teams[i].name == NULL || p->teams[i].name[0] == '\0')
            return SB_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(p->teams[i].name, p->teams[j].name) == 0)
                return SB_EINVAL;
    }
    b = calloc(1, sizeof(*b));
    if (b == NULL)
        return SB_ENOMEM;
    b->n_buckets = 64;
    b->buckets = calloc(b->n_buckets, sizeof(*b->buckets));
    b->teams = calloc(p->n_teams ? p->n_teams : 1, sizeof(*b->teams));
    if (b->buckets == NULL || b->teams == NULL || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->buckets);
        free(b->teams);
        free(b);
        return SB_ENOMEM;
    }
    if (p->global != NULL) {
        b->has_global = true;
        b->global_micros = p->global->micros;
        b->global_period = p->global->period;
    }
    for (size_t i = 0; i < p->n_teams; i++) {
        copy_name(b->teams[i].name, p->teams[i].name);
        b->teams[i].micros = p->teams[i].micros;
        b->teams[i].period = p->teams[i].period;
    }
    b->n_teams = p->n_teams;
    b->on_limit = p->on_limit;
    b->default_max_tokens = p->default_max_tokens;
    *out = b;
    return 0;
}

void sb_budget_free(struct sb_budget *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->n_buckets; i++) {
        struct sb__budget_entry *e = b->buckets[i];
        while (e != NULL) {
            struct sb__budget_entry *next = e->next;
            free(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&b->mu);
    free(b->buckets);
    free(b->teams);
    free(b);
}

enum sb_budget_on_limit sb_budget_on_limit(const struct sb_budget *b)
{
    return b->on_limit;
}

int64_t sb_budget_default_max_tokens(const struct sb_budget *b)
{
    return b->default_max_tokens;
}

static const struct sb__budget_team *team_of(const struct sb_budget *b, const char *team)
{
    for (size_t i = 0; team != NULL && team[0] != '\0' && i < b->n_teams; i++)
        if (strncmp(b->teams[i].name, team, SB__BUDGET_NAME_MAX - 1) == 0)
            return &b->teams[i];
    return NULL;
}

bool sb_budget_has_team(const struct sb_budget *b, const char *team)
{
    return team_of(b, team) != NULL;
}

bool sb_budget_applies(const struct sb_budget *b, const struct sb_budget_payer *who)
{
    bool key = who->key_id != NULL && who->key_id[0] != '\0' && who->key_limit_micros >= 0;
    return key || b->has_global || team_of(b, who->team) != NULL;
}

void sb_budget_set_notify(struct sb_budget *b, sb_budget_notify_fn fn, void *ud)
{
    b->notify = fn;
    b->notify_ud = ud;
}

/* ---------------------------------------------------------------------------------------------
 * Reservations
 * ------------------------------------------------------------------------------------------- */
/* The entries of the budgets that apply to who, key first, then team, then global, each in the
 * period holding now_s. Returns how many (out holds SB_BUDGET_MAX_SCOPES), or SB_ENOMEM. Under
 * the lock. */
static int applicable(struct sb_budget *b, const struct sb_budget_payer *who, int64_t now_s,
                      struct sb__budget_entry **out)
{
    int n = 0;
    const struct sb__budget_team *t = team_of(b, who->team);
    struct sb__budget_entry *e;

    if (who->key_id != NULL && who->key_id[0] != '\0' && who->key_limit_micros >= 0) {
        e = entry_get(b, SB_BUDGET_SCOPE_KEY, who->key_id, who->key_limit_micros, who->key_period,
                      now_s);
        if (e == NULL)
            return SB_ENOMEM;
        entry_configure(e, who->key_limit_micros, who->key_period, now_s);
        copy_name(e->label, who->key_name != NULL ? who->key_name : who->key_id);
        out[n++] = e;
    }
    if (t != NULL) {
        e = entry_get(b, SB_BUDGET_SCOPE_TEAM, t->name, t->micros, t->period, now_s);
        if (e == NULL)
            return SB_ENOMEM;
        entry_roll(e, now_s);
        copy_name(e->label, t->name);
        out[n++] = e;
    }
    if (b->has_global) {
        e = entry_get(b, SB_BUDGET_SCOPE_GLOBAL, "", b->global_micros, b->global_period, now_s);
        if (e == NULL)
            return SB_ENOMEM;
        entry_roll(e, now_s);
        out[n++] = e;
    }
    return n;
}

static void describe(const struct sb__budget_entry *e, int64_t cost, struct sb_budget_refusal *why)
{
    why->scope = e->scope;
    copy_name(why->name, e->label);
    why->period = e->period;
    why->limit_micros = e->limit;
    why->spent_micros = e->spent;
    why->held_micros = e->held;
    why->cost_micros = cost;
    why->resets_s = e->end;
}

int sb_budget_reserve(struct sb_budget *b, const struct sb_budget_payer *who, int64_t cost_micros,
                      int64_t now_s, struct sb_budget_hold *hold, struct sb_budget_refusal *why)
{
    struct sb__budget_entry *at[SB_BUDGET_MAX_SCOPES];
    int n, rc = 0;

    memset(hold, 0, sizeof(*hold));
    if (cost_micros < 0)
        cost_micros = 0;
    pthread_mutex_lock(&b->mu);
    n = applicable(b, who, now_s, at);
    if (n < 0) {
        rc = n;
        goto out;
    }
    /* A free request never breaks a budget, even an overspent one. */
    for (int i = 0; i < n && cost_micros > 0; i++) {
        int64_t left = at[i]->limit - at[i]->spent - at[i]->held;
        if (cost_micros > left) {
            describe(at[i], cost_micros, why);
            rc = SB_EDENIED;
            goto out;
        }
    }
    for (int i = 0; i < n; i++) {
        at[i]->held += cost_micros;
        hold->at[i].entry = at[i];
        hold->at[i].period_start = at[i]->start;
    }
    hold->micros = cost_micros;
    hold->n = (size_t)n;
out:
    pthread_mutex_unlock(&b->mu);
    return rc;
}

struct announcement {
    enum sb_budget_scope scope;
    char name[SB__BUDGET_NAME_MAX];
    int percent;
    int64_t spent, limit;
};

void sb_budget_settle(struct sb_budget *b, struct sb_budget_hold *hold, int64_t actual_micros,
                      int64_t now_s)
{
    struct announcement ann[SB_BUDGET_MAX_SCOPES * SB_ARRAY_LEN(thresholds)];
    size_t n_ann = 0;

    if (hold->n == 0)
        return;
    if (actual_micros < 0)
        actual_micros = 0;
    pthread_mutex_lock(&b->mu);
    for (size_t i = 0; i < hold->n && i < SB_BUDGET_MAX_SCOPES; i++) {
        struct sb__budget_entry *e = hold->at[i].entry;
        e->held = e->held > hold->micros ? e->held - hold->micros : 0;
        entry_roll(e, now_s);
        if (hold->at[i].period_start != e->start || actual_micros == 0)
            continue;
        e->spent = e->spent > INT64_MAX - actual_micros ? INT64_MAX : e->spent + actual_micros;
        for (size_t t = 0; t < SB_ARRAY_LEN(thresholds); t++) {
            if ((e->notified & (1u << t)) || !crossed(e->spent, e->limit, thresholds[t]))
                continue;
            e->notified |= 1u << t;
            ann[n_ann] = (struct announcement){e->scope, "", thresholds[t], e->spent, e->limit};
            copy_name(ann[n_ann].name, e->label);
            n_ann++;
        }
    }
    pthread_mutex_unlock(&b->mu);
    memset(hold, 0, sizeof(*hold));
    for (size_t i = 0; i < n_ann && b->notify != NULL; i++)
        b->notify(b->notify_ud, sb_budget_scope_name(ann[i].scope), ann[i].name, ann[i].percent,
                  ann[i].spent, ann[i].limit);
}

bool sb_budget_left(struct sb_budget *b, const struct sb_budget_payer *who, int64_t now_s,
                    int64_t *left)
{
    struct sb__budget_entry *at[SB_BUDGET_MAX_SCOPES];
    bool any = false;

    pthread_mutex_lock(&b->mu);
    int n = applicable(b, who, now_s, at);
    for (int i = 0; i < n; i++) {
        int64_t l = at[i]->limit - at[i]->spent - at[i]->held;
        if (!any || l < *left)
            *left = l;
        any = true;
    }
    pthread_mutex_unlock(&b->mu);
    return any;
}

bool sb_budget_spent(struct sb_budget *b, enum sb_budget_scope scope, const char *name,
                     int64_t now_s, int64_t *spent, int64_t *held)
{
    bool found;

    pthread_mutex_lock(&b->mu);
    struct sb__budget_entry *e = entry_find(b, scope, name != NULL ? name : "");
    found = e != NULL;
    if (found) {
        entry_roll(e, now_s);
        *spent = e->spent;
        *held = e->held;
    }
    pthread_mutex_unlock(&b->mu);
    return found;
}

int sb_budget_preload(struct sb_budget *b, enum sb_budget_scope scope, const char *name,
                      int64_t limit_micros, enum sb_budget_period period, int64_t period_start,
                      int64_t spent_micros)
{
    int rc = 0;

    pthread_mutex_lock(&b->mu);
    struct sb__budget_entry *e =
        entry_get(b, scope, name != NULL ? name : "", limit_micros, period, period_start);
    if (e == NULL) {
        rc = SB_ENOMEM;
    } else {
        e->limit = limit_micros;
        e->period = period;
        sb_budget_period_bounds(period, period_start, &e->start, &e->end);
        e->spent = SB_MAX(spent_micros, (int64_t)0);
        e->notified = 0;
        for (size_t t = 0; t < SB_ARRAY_LEN(thresholds); t++)
            if (e->spent > 0 && crossed(e->spent, e->limit, thresholds[t]))
                e->notified |= 1u << t;
        if (e->label[0] == '\0')
            copy_name(e->label, name);
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

int sb_budget_format_usd(int64_t micros, struct sb_buf *out)
{
    const char *sign = micros < 0 ? "-" : "";
    uint64_t v = micros < 0 ? (uint64_t)0 - (uint64_t)micros : (uint64_t)micros;
    char frac[8];
    size_t n;

    snprintf(frac, sizeof(frac), "%06llu", (unsigned long long)(v % 1000000));
    n = 6;
    while (n > 2 && frac[n - 1] == '0')
        n--;
    frac[n] = '\0';
    return sb_buf_printf(out, "%s$%llu.%s", sign, (unsigned long long)(v / 1000000), frac);
}
