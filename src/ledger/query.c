/* The ledger's read API for reports: sums by group, percentiles streamed in sorted order, and busy
 * time as the union of request intervals, written once in SQL that every store runs (see
 * internal.h) and read through the store's cursors. Column and group names come from tables
 * here, never from callers, so every statement is built from constants. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/internal.h"

struct sb_ledger_reader {
    const struct sb__ledger_store_ops *ops;
    struct sb__ledger_conn *conn;
    /* The cache_write_tokens column, or 0 in a ledger older than it. */
    const char *cache_write;
};

/* Columns a report reads: running this proves the store holds a ledger this build understands
 * (a newer schema that only added columns still reads). */
static const char probe_sql[] =
    "SELECT ts_ms, backend, model, key_id, sensitivity, pii_counts, status, error_class, "
    "attempts, backends_tried, prompt_tokens, cached_prompt_tokens, completion_tokens, ttft_ms, "
    "latency_ms, tokens_per_s, queue_ms, cost_microusd FROM requests LIMIT 0";

/* Columns added by later migrations, which a ledger an older build wrote may not have yet. */
static const char cache_write_probe_sql[] = "SELECT cache_write_tokens FROM requests LIMIT 0";

void sb_ledger_reader_close(struct sb_ledger_reader *r)
{
    if (r == NULL)
        return;
    r->ops->conn_close(r->conn);
    free(r);
}

const char *sb_ledger_reader_error(struct sb_ledger_reader *r)
{
    return r != NULL && r->conn != NULL ? r->ops->conn_error(r->conn) : "out of memory";
}

/* Runs sql and reads it to the end; 0 when it ran. */
static int run_probe(struct sb_ledger_reader *r, const char *sql)
{
    struct sb__ledger_cursor *cur = NULL;
    int rc = r->ops->query(r->conn, sql, NULL, 0, &cur);
    while (rc == 0 && (rc = r->ops->next(cur)) == 1)
        rc = 0;
    r->ops->finish(cur);
    return rc < 0 ? rc : 0;
}

int sb_ledger_reader_open(const char *target, struct sb_ledger_reader **out, char *err,
                          size_t err_size)
{
    char shown[512];
    *out = NULL;
    sb_redact_url(target, shown, sizeof shown);
    struct sb_ledger_reader *r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, err_size, "ledger %s: out of memory", shown);
        return SB_ENOMEM;
    }
    r->ops = sb__ledger_store_for(target);
    int rc = r->ops->conn_open(target, &r->conn, err, err_size);
    if (rc != 0)
        goto fail;
    rc = run_probe(r, probe_sql);
    if (rc != 0) {
        snprintf(err, err_size,
                 "ledger %s: not a Switchboard ledger, or one from an incompatible version: %s",
                 shown, sb_ledger_reader_error(r));
        goto fail;
    }
    r->cache_write = run_probe(r, cache_write_probe_sql) == 0 ? "cache_write_tokens" : "0";
    *out = r;
    return 0;

fail:
    sb_ledger_reader_close(r);
    return rc == SB_ENOMEM ? SB_ENOMEM : SB_EIO;
}

/* ---------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------- */
/* SQL text is bounded: the longest has a placeholder per backend. */
#define SQL_MAX (64 << 10)

/* Parameter numbers every filtered statement may use; backends follow from FIRST_BACKEND. */
enum { P_SINCE = 1, P_UNTIL = 2, P_LONG = 3, FIRST_BACKEND = 4 };

/* Appends the WHERE clause for f. */
static int append_where(struct sb_buf *sql, const struct sb_ledger_filter *f)
{
    int rc = sb_buf_append_c(sql, " WHERE ts_ms >= $1 AND ts_ms < $2");
    if (rc == 0 && f->n_backends > 0) {
        rc = sb_buf_append_c(sql, " AND backend IN (");
        for (size_t i = 0; i < f->n_backends && rc == 0; i++)
            rc = sb_buf_printf(sql, "%s$%zu", i > 0 ? ", " : "", i + FIRST_BACKEND);
        if (rc == 0)
            rc = sb_buf_append_char(sql, ')');
    }
    return rc;
}

/* Runs sql with f's parameters. On failure *cur is NULL and the result is SB_EIO or
 * SB_ENOMEM. */
static int query_filtered(struct sb_ledger_reader *r, const struct sb_buf *sql,
                          const struct sb_ledger_filter *f, struct sb__ledger_cursor **cur)
{
    size_t n = FIRST_BACKEND - 1 + f->n_backends;
    struct sb__ledger_param *ps = calloc(n, sizeof *ps);
    *cur = NULL;
    if (ps == NULL)
        return SB_ENOMEM;
    ps[P_SINCE - 1].i = f->since_ms;
    ps[P_UNTIL - 1].i = f->until_ms;
    ps[P_LONG - 1].i = f->long_prompt_tokens;
    for (size_t i = 0; i < f->n_backends; i++)
        ps[FIRST_BACKEND - 1 + i] = (struct sb__ledger_param){.is_text = true, .s = f->backends[i]};
    int rc = r->ops->query(r->conn, sql->p, ps, n, cur);
    free(ps);
    return rc == SB_ENOMEM ? SB_ENOMEM : rc != 0 ? SB_EIO : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Aggregates
 * ------------------------------------------------------------------------------------------- */
/* The column each grouping selects, by enum sb_ledger_group. */
static const char *const group_columns[] = {
    [SB_LEDGER_GROUP_ALL] = "''",
    [SB_LEDGER_GROUP_BACKEND] = "backend",
    [SB_LEDGER_GROUP_MODEL] = "model",
    [SB_LEDGER_GROUP_KEY] = "key_id",
    [SB_LEDGER_GROUP_SENSITIVITY] = "sensitivity",
};

/* The sums, in the order struct sb_ledger_agg's fields are filled below: those before the
 * cache-write column (or 0), then those after it. */
static const char agg_head[] = "count(*), "
                               "count(*) FILTER (WHERE status >= 400 OR error_class <> ''), "
                               "count(*) FILTER (WHERE attempts > 1), "
                               "count(*) FILTER (WHERE backends_tried LIKE '%,%'), "
                               "coalesce(sum(prompt_tokens), 0), "
                               "coalesce(sum(cached_prompt_tokens), 0)";
static const char agg_tail[] = "coalesce(sum(completion_tokens), 0), "
                               "coalesce(sum(cost_microusd), 0), "
                               "count(cost_microusd), "
                               "count(*) FILTER (WHERE cost_microusd IS NULL), "
                               "count(*) FILTER (WHERE pii_counts NOT IN ('', '{}')), "
                               "count(*) FILTER (WHERE $3 > 0 AND prompt_tokens > $3), "
                               "coalesce(min(ts_ms), 0), "
                               "coalesce(max(ts_ms), 0)";

static void read_agg(const struct sb_ledger_reader *r, struct sb__ledger_cursor *cur,
                     struct sb_ledger_agg *a)
{
    memset(a, 0, sizeof *a);
    sb_ledger_copy(a->name, sizeof a->name, r->ops->col_text(cur, 0));
    int64_t *fields[] = {
        &a->requests,
        &a->errors,
        &a->retried,
        &a->fell_back,
        &a->prompt_tokens,
        &a->cached_prompt_tokens,
        &a->cache_write_tokens,
        &a->completion_tokens,
        &a->cost_microusd,
        &a->priced,
        &a->unpriced,
        &a->pii,
        &a->long_prompts,
        &a->first_ms,
        &a->last_ms,
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(fields); i++)
        *fields[i] = r->ops->col_int(cur, (int)i + 1);
}

int sb_ledger_aggregate(struct sb_ledger_reader *r, enum sb_ledger_group by,
                        const struct sb_ledger_filter *f, struct sb_ledger_agg **out, size_t *n)
{
    int rc = 0;
    struct sb__ledger_cursor *cur = NULL;
    struct sb_ledger_agg *arr = NULL;
    size_t len = 0, cap = 0;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    *out = NULL;
    *n = 0;

    if ((unsigned)by >= SB_ARRAY_LEN(group_columns))
        return SB_EINVAL;
    const char *col = group_columns[by];
    rc = sb_buf_printf(&sql, "SELECT %s, %s, coalesce(sum(%s), 0), %s FROM requests", col, agg_head,
                       r->cache_write, agg_tail);
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0 && by != SB_LEDGER_GROUP_ALL)
        rc = sb_buf_printf(&sql, " GROUP BY %s ORDER BY %s", col, col);
    if (rc == 0)
        rc = query_filtered(r, &sql, f, &cur);
    if (rc != 0)
        goto fail;
    int step;
    while ((step = r->ops->next(cur)) == 1) {
        if (len == cap) {
            size_t ncap = cap > 0 ? cap * 2 : 16;
            struct sb_ledger_agg *grown = realloc(arr, ncap * sizeof *grown);
            if (grown == NULL) {
                rc = SB_ENOMEM;
                goto fail;
            }
            arr = grown;
            cap = ncap;
        }
        read_agg(r, cur, &arr[len++]);
    }
    if (step != 0) {
        rc = SB_EIO;
        goto fail;
    }
    r->ops->finish(cur);
    sb_buf_free(&sql);
    *out = arr;
    *n = len;
    return 0;

fail:
    r->ops->finish(cur);
    sb_buf_free(&sql);
    free(arr);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Percentiles
 * ------------------------------------------------------------------------------------------- */
/* The column each metric reads, by enum sb_ledger_metric. */
static const char *const metric_columns[] = {
    [SB_LEDGER_METRIC_LATENCY_MS] = "latency_ms",
    [SB_LEDGER_METRIC_TTFT_MS] = "ttft_ms",
    [SB_LEDGER_METRIC_TOKENS_PER_S] = "tokens_per_s",
    [SB_LEDGER_METRIC_QUEUE_MS] = "queue_ms",
};

int64_t sb_ledger_percentile_index(int64_t n, double p)
{
    if (n <= 0 || !(p > 0))
        return 0;
    if (p >= 100)
        return n - 1;
    /* p / 100 * n, computed as p * n / 100 so that whole-number ranks (p90 of 10 values) come
     * out exact rather than a rounding error above, which ceil would push to the next rank. */
    double rank = ceil(p * (double)n / 100.0 - 1e-9);
    int64_t i = (int64_t)rank - 1;
    return i < 0 ? 0 : i >= n ? n - 1 : i;
}

/* Runs "SELECT count(col) ..." for f. */
static int count_values(struct sb_ledger_reader *r, const char *col,
                        const struct sb_ledger_filter *f, int64_t *count)
{
    struct sb__ledger_cursor *cur = NULL;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    int rc = sb_buf_printf(&sql, "SELECT count(%s) FROM requests", col);
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0)
        rc = query_filtered(r, &sql, f, &cur);
    if (rc == 0 && r->ops->next(cur) == 1)
        *count = r->ops->col_int(cur, 0);
    else if (rc == 0)
        rc = SB_EIO;
    r->ops->finish(cur);
    sb_buf_free(&sql);
    return rc;
}

int sb_ledger_percentiles(struct sb_ledger_reader *r, enum sb_ledger_metric metric,
                          const struct sb_ledger_filter *f, const double *ps, size_t n_ps,
                          double *out, int64_t *count)
{
    int rc = 0;
    struct sb__ledger_cursor *cur = NULL;
    int64_t *want = NULL;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    *count = 0;

    if ((unsigned)metric >= SB_ARRAY_LEN(metric_columns))
        return SB_EINVAL;
    const char *col = metric_columns[metric];
    int64_t n = 0;
    rc = count_values(r, col, f, &n);
    if (rc != 0 || n == 0 || n_ps == 0)
        goto done;
    want = calloc(n_ps, sizeof *want);
    if (want == NULL) {
        rc = SB_ENOMEM;
        goto done;
    }
    int64_t last = 0;
    for (size_t i = 0; i < n_ps; i++) {
        want[i] = sb_ledger_percentile_index(n, ps[i]);
        last = SB_MAX(last, want[i]);
    }
    rc = sb_buf_printf(&sql, "SELECT %s FROM requests", col);
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0)
        rc = sb_buf_printf(&sql, " AND %s IS NOT NULL ORDER BY %s", col, col);
    if (rc == 0)
        rc = query_filtered(r, &sql, f, &cur);
    if (rc != 0)
        goto done;
    /* Stop at the highest index wanted: rows are never all held, and rarely all read. */
    int64_t i = 0;
    int step = 0;
    while (i <= last && (step = r->ops->next(cur)) == 1) {
        double v = r->ops->col_real(cur, 0);
        for (size_t k = 0; k < n_ps; k++)
            if (want[k] == i)
                out[k] = v;
        i++;
    }
    /* Rows written between the count and this read may shift ranks; fewer rows than counted
     * (retention ran) is an error rather than a percentile of nothing. */
    if (step < 0 || i <= last) {
        rc = SB_EIO;
        goto done;
    }
    *count = n;

done:
    r->ops->finish(cur);
    sb_buf_free(&sql);
    free(want);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Busy time
 * ------------------------------------------------------------------------------------------- */
int sb_ledger_busy(struct sb_ledger_reader *r, const struct sb_ledger_filter *f, int64_t *busy_ms,
                   int64_t *tokens)
{
    struct sb__ledger_cursor *cur = NULL;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    *busy_ms = 0;
    *tokens = 0;

    int rc = sb_buf_append_c(&sql, "SELECT ts_ms, latency_ms, prompt_tokens + completion_tokens "
                                   "FROM requests");
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0)
        rc = sb_buf_append_c(&sql, " ORDER BY ts_ms");
    if (rc == 0)
        rc = query_filtered(r, &sql, f, &cur);
    if (rc != 0)
        goto done;
    /* Intervals sorted by start: extend the current run while the next starts inside it. */
    int64_t run_start = 0, run_end = 0, busy = 0, sum = 0;
    bool in_run = false;
    int step;
    while ((step = r->ops->next(cur)) == 1) {
        int64_t start = r->ops->col_int(cur, 0);
        double lat = r->ops->col_real(cur, 1);
        int64_t end = start + (lat > 0 && isfinite(lat) ? llround(lat) : 0);
        sum += r->ops->col_int(cur, 2);
        if (in_run && start <= run_end) {
            run_end = SB_MAX(run_end, end);
            continue;
        }
        if (in_run)
            busy += run_end - run_start;
        run_start = start;
        run_end = end;
        in_run = true;
    }
    if (step != 0) {
        rc = SB_EIO;
        goto done;
    }
    if (in_run)
        busy += run_end - run_start;
    *busy_ms = busy;
    *tokens = sum;

done:
    r->ops->finish(cur);
    sb_buf_free(&sql);
    return rc;
}
