/* The ring of recent routing decisions and the running cost of the current UTC day: what the
 * dashboard shows that no metric holds. One mutex guards both; a request holds it for one copy. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "ui/ui.h"

#define MS_PER_DAY 86400000

struct sb_ui {
    pthread_mutex_t lock;
    struct sb_ui_decision *ring; /* owned: capacity entries */
    size_t capacity;
    size_t next;    /* where the next decision goes */
    uint64_t total; /* decisions ever recorded; min(total, capacity) are held */
    int64_t day;    /* the UTC day (days since the epoch) that day_cost belongs to */
    int64_t day_cost;
};

int sb_ui_new(size_t capacity, struct sb_ui **out)
{
    struct sb_ui *ui;

    *out = NULL;
    if (capacity == 0 || capacity > SB_UI_MAX_RECENT)
        return SB_EINVAL;
    ui = calloc(1, sizeof(*ui));
    if (ui == NULL)
        return SB_ENOMEM;
    ui->ring = calloc(capacity, sizeof(*ui->ring));
    if (ui->ring == NULL || pthread_mutex_init(&ui->lock, NULL) != 0) {
        free(ui->ring);
        free(ui);
        return SB_ENOMEM;
    }
    ui->capacity = capacity;
    ui->day = -1;
    *out = ui;
    return 0;
}

void sb_ui_free(struct sb_ui *ui)
{
    if (ui == NULL)
        return;
    pthread_mutex_destroy(&ui->lock);
    free(ui->ring);
    free(ui);
}

/* Days since the epoch of a Unix time in milliseconds, rounding down for times before it. */
static int64_t day_of(int64_t ms)
{
    return ms >= 0 ? ms / MS_PER_DAY : -((-ms + MS_PER_DAY - 1) / MS_PER_DAY);
}

void sb_ui_record(struct sb_ui *ui, const struct sb_ui_decision *d)
{
    int64_t day = day_of(d->ts_ms);

    if (ui == NULL)
        return;
    pthread_mutex_lock(&ui->lock);
    ui->ring[ui->next] = *d;
    ui->next = (ui->next + 1) % ui->capacity;
    ui->total++;
    /* A request that arrived before midnight and ended after it counts to the day it arrived on;
     * a late one of the previous day does not reopen that day. */
    if (day > ui->day) {
        ui->day = day;
        ui->day_cost = 0;
    }
    if (day == ui->day && d->cost_microusd > 0)
        ui->day_cost += d->cost_microusd;
    pthread_mutex_unlock(&ui->lock);
}

size_t sb_ui_recent(struct sb_ui *ui, struct sb_ui_decision *out, size_t max, uint64_t *total)
{
    size_t n;

    pthread_mutex_lock(&ui->lock);
    n = (size_t)SB_MIN(ui->total, (uint64_t)ui->capacity);
    n = SB_MIN(n, max);
    for (size_t i = 0; i < n; i++)
        out[i] = ui->ring[(ui->next + ui->capacity - 1 - i) % ui->capacity];
    if (total != NULL)
        *total = ui->total;
    pthread_mutex_unlock(&ui->lock);
    return n;
}

size_t sb_ui_capacity(const struct sb_ui *ui)
{
    return ui->capacity;
}

int64_t sb_ui_cost_today(struct sb_ui *ui, int64_t now_ms)
{
    int64_t cost;

    pthread_mutex_lock(&ui->lock);
    cost = ui->day == day_of(now_ms) ? ui->day_cost : 0;
    pthread_mutex_unlock(&ui->lock);
    return cost;
}
