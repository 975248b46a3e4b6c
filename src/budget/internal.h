/* The budget module's private vocabulary: the budget object and its entries, shared by budget.c
 * (reservations) and load.c (config and ledger). Nothing outside src/budget (and its tests)
 * includes this. */
#ifndef SB_BUDGET_INTERNAL_H
#define SB_BUDGET_INTERNAL_H

#include <pthread.h>

#include "budget/budget.h"

/* Bytes of a budget's name (a key id, a team), NUL included; longer names are cut. */
#define SB__BUDGET_NAME_MAX 96

/* One budget in use: its current period's settled spend and the reservations in flight. */
struct sb__budget_entry {
    struct sb__budget_entry *next; /* in its hash bucket */
    enum sb_budget_scope scope;
    char name[SB__BUDGET_NAME_MAX];  /* the key's id, the team, "" for global: what identifies it */
    char label[SB__BUDGET_NAME_MAX]; /* the key's name, the team, "": what messages call it */
    int64_t limit;
    enum sb_budget_period period;
    int64_t start, end; /* the current period, Unix seconds */
    int64_t spent;      /* settled in [start, end) */
    int64_t held;       /* reserved by requests in flight */
    unsigned notified;  /* bit i: the i-th threshold was announced this period */
};

/* A configured team budget. */
struct sb__budget_team {
    char name[SB__BUDGET_NAME_MAX];
    int64_t micros;
    enum sb_budget_period period;
};

struct sb_budget {
    pthread_mutex_t mu;                /* guards the table and every entry */
    struct sb__budget_entry **buckets; /* owned, each entry owned */
    size_t n_buckets;                  /* a power of two */
    size_t n_entries;
    bool has_global;
    int64_t global_micros;
    enum sb_budget_period global_period;
    struct sb__budget_team *teams; /* owned; immutable after sb_budget_new */
    size_t n_teams;
    enum sb_budget_on_limit on_limit;
    int64_t default_max_tokens;
    sb_budget_notify_fn notify;
    void *notify_ud;
};

#endif
