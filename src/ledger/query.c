/* The ledger's read API for reports: a read-only SQLite connection, sums by group, percentiles
 * streamed in sorted order, and busy time as the union of request intervals. Column and group
 * names come from tables here, never from callers, so every statement is built from constants. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/internal.h"

struct sb_ledger_reader {
    sqlite3 *db;
};

/* Targets this build recognizes but cannot read, by prefix. */
static const struct {
    const char *prefix;
    const char *what;
} unsupported[] = {
    {"postgres://", "PostgreSQL"},
    {"postgresql://", "PostgreSQL"},
};

/* Columns a report reads: preparing this proves the file holds a ledger this build understands
 * (a newer schema that only added columns still reads). */
static const char probe_sql[] =
    "SELECT ts_ms, backend, model, key_id, sensitivity, pii_counts, status, error_class, "
    "attempts, backends_tried, prompt_tokens, cached_prompt_tokens, completion_tokens, ttft_ms, "
    "latency_ms, tokens_per_s, queue_ms, cost_microusd FROM requests LIMIT 0";

void sb_ledger_reader_close(struct sb_ledger_reader *r)
{
    if (r == NULL)
        return;
    sqlite3_close(r->db);
    free(r);
}

const char *sb_ledger_reader_error(struct sb_ledger_reader *r)
{
    return r != NULL && r->db != NULL ? sqlite3_errmsg(r->db) : "out of memory";
}

int sb_ledger_reader_open(const char *target, struct sb_ledger_reader **out, char *err,
                          size_t err_size)
{
    int rc = SB_EIO;
    struct sb_ledger_reader *r = NULL;
    sqlite3_stmt *probe = NULL;
    *out = NULL;

    for (size_t i = 0; i < SB_ARRAY_LEN(unsupported); i++) {
        if (strncmp(target, unsupported[i].prefix, strlen(unsupported[i].prefix)) == 0) {
            snprintf(err, err_size,
                     "ledger %s: reading a %s ledger is not supported yet; give the path of a "
                     "SQLite ledger file",
                     target, unsupported[i].what);
            return SB_EUNSUPPORTED;
        }
    }
    r = calloc(1, sizeof *r);
    if (r == NULL) {
        snprintf(err, err_size, "ledger %s: out of memory", target);
        return SB_ENOMEM;
    }
    if (sqlite3_open_v2(target, &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, err_size,
                 "ledger %s: cannot open it read-only: %s (does the file exist? the server "
                 "creates it at ledger.path)",
                 target, sb_ledger_reader_error(r));
        goto fail;
    }
    /* A report waits for a writer's checkpoint rather than failing at once. */
    sqlite3_busy_timeout(r->db, 5000);
    if (sqlite3_prepare_v2(r->db, probe_sql, -1, &probe, NULL) != SQLITE_OK) {
        snprintf(err, err_size,
                 "ledger %s: not a Switchboard ledger, or one from an incompatible version: %s",
                 target, sb_ledger_reader_error(r));
        goto fail;
    }
    sqlite3_finalize(probe);
    *out = r;
    return 0;

fail:
    sqlite3_finalize(probe);
    sb_ledger_reader_close(r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Statements
 * ------------------------------------------------------------------------------------------- */
/* SQL text is bounded: the longest has a placeholder per backend. */
#define SQL_MAX (64 << 10)

/* Parameter numbers every filtered statement uses; backends follow from FIRST_BACKEND. */
enum { P_SINCE = 1, P_UNTIL = 2, P_LONG = 3, FIRST_BACKEND = 4 };

/* Appends the WHERE clause for f. */
static int append_where(struct sb_buf *sql, const struct sb_ledger_filter *f)
{
    int rc = sb_buf_append_c(sql, " WHERE ts_ms >= ?1 AND ts_ms < ?2");
    if (rc == 0 && f->n_backends > 0) {
        rc = sb_buf_append_c(sql, " AND backend IN (");
        for (size_t i = 0; i < f->n_backends && rc == 0; i++)
            rc = sb_buf_printf(sql, "%s?%zu", i > 0 ? ", " : "", i + FIRST_BACKEND);
        if (rc == 0)
            rc = sb_buf_append_char(sql, ')');
    }
    return rc;
}

/* Prepares sql and binds f. On failure *stmt is NULL and the result is SB_EIO or SB_ENOMEM. */
static int prepare_filtered(struct sb_ledger_reader *r, const struct sb_buf *sql,
                            const struct sb_ledger_filter *f, sqlite3_stmt **stmt)
{
    *stmt = NULL;
    if (sqlite3_prepare_v2(r->db, sql->p, (int)sql->len, stmt, NULL) != SQLITE_OK)
        return SB_EIO;
    int rc = sqlite3_bind_int64(*stmt, P_SINCE, f->since_ms);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(*stmt, P_UNTIL, f->until_ms);
    /* Statements that do not count long prompts have no ?3; binding it is then a range error. */
    if (rc == SQLITE_OK && sqlite3_bind_parameter_count(*stmt) >= P_LONG)
        rc = sqlite3_bind_int64(*stmt, P_LONG, f->long_prompt_tokens);
    for (size_t i = 0; i < f->n_backends && rc == SQLITE_OK; i++)
        rc = sqlite3_bind_text(*stmt, (int)i + FIRST_BACKEND, f->backends[i], -1, SQLITE_STATIC);
    if (rc != SQLITE_OK) {
        sqlite3_finalize(*stmt);
        *stmt = NULL;
        return rc == SQLITE_NOMEM ? SB_ENOMEM : SB_EIO;
    }
    return 0;
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

/* The sums, in the order struct sb_ledger_agg's fields are filled below. */
static const char agg_columns[] = "count(*), "
                                  "coalesce(sum(status >= 400 OR error_class <> ''), 0), "
                                  "coalesce(sum(attempts > 1), 0), "
                                  "coalesce(sum(instr(backends_tried, ',') > 0), 0), "
                                  "coalesce(sum(prompt_tokens), 0), "
                                  "coalesce(sum(cached_prompt_tokens), 0), "
                                  "coalesce(sum(completion_tokens), 0), "
                                  "coalesce(sum(cost_microusd), 0), "
                                  "count(cost_microusd), "
                                  "coalesce(sum(cost_microusd IS NULL), 0), "
                                  "coalesce(sum(pii_counts NOT IN ('', '{}')), 0), "
                                  "coalesce(sum(?3 > 0 AND prompt_tokens > ?3), 0), "
                                  "coalesce(min(ts_ms), 0), "
                                  "coalesce(max(ts_ms), 0)";

static void read_agg(sqlite3_stmt *stmt, struct sb_ledger_agg *a)
{
    memset(a, 0, sizeof *a);
    const unsigned char *name = sqlite3_column_text(stmt, 0);
    int len = sqlite3_column_bytes(stmt, 0);
    sb_ledger_copy(a->name, sizeof a->name,
                   (struct sb_str){(const char *)name, name != NULL ? (size_t)len : 0});
    int64_t *fields[] = {
        &a->requests,          &a->errors,        &a->retried,
        &a->fell_back,         &a->prompt_tokens, &a->cached_prompt_tokens,
        &a->completion_tokens, &a->cost_microusd, &a->priced,
        &a->unpriced,          &a->pii,           &a->long_prompts,
        &a->first_ms,          &a->last_ms,
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(fields); i++)
        *fields[i] = sqlite3_column_int64(stmt, (int)i + 1);
}

int sb_ledger_aggregate(struct sb_ledger_reader *r, enum sb_ledger_group by,
                        const struct sb_ledger_filter *f, struct sb_ledger_agg **out, size_t *n)
{
    int rc = 0;
    sqlite3_stmt *stmt = NULL;
    struct sb_ledger_agg *arr = NULL;
    size_t len = 0, cap = 0;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    *out = NULL;
    *n = 0;

    if ((unsigned)by >= SB_ARRAY_LEN(group_columns))
        return SB_EINVAL;
    const char *col = group_columns[by];
    rc = sb_buf_printf(&sql, "SELECT %s, %s FROM requests", col, agg_columns);
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0 && by != SB_LEDGER_GROUP_ALL)
        rc = sb_buf_printf(&sql, " GROUP BY %s ORDER BY %s", col, col);
    if (rc == 0)
        rc = prepare_filtered(r, &sql, f, &stmt);
    if (rc != 0)
        goto fail;
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
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
        read_agg(stmt, &arr[len++]);
    }
    if (step != SQLITE_DONE) {
        rc = SB_EIO;
        goto fail;
    }
    sqlite3_finalize(stmt);
    sb_buf_free(&sql);
    *out = arr;
    *n = len;
    return 0;

fail:
    sqlite3_finalize(stmt);
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
    sqlite3_stmt *stmt = NULL;
    struct sb_buf sql;
    sb_buf_init(&sql, SQL_MAX);
    int rc = sb_buf_printf(&sql, "SELECT count(%s) FROM requests", col);
    if (rc == 0)
        rc = append_where(&sql, f);
    if (rc == 0)
        rc = prepare_filtered(r, &sql, f, &stmt);
    if (rc == 0 && sqlite3_step(stmt) == SQLITE_ROW)
        *count = sqlite3_column_int64(stmt, 0);
    else if (rc == 0)
        rc = SB_EIO;
    sqlite3_finalize(stmt);
    sb_buf_free(&sql);
    return rc;
}

int sb_ledger_percentiles(struct sb_ledger_reader *r, enum sb_ledger_metric metric,
                          const struct sb_ledger_filter *f, const double *ps, size_t n_ps,
                          double *out, int64_t *count)
{
    int rc = 0;
    sqlite3_stmt *stmt = NULL;
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
        rc = prepare_filtered(r, &sql, f, &stmt);
    if (rc != 0)
        goto done;
    /* Stop at the highest index wanted: rows are never all held, and rarely all read. */
    int64_t i = 0;
    int step = SQLITE_DONE;
    while (i <= last && (step = sqlite3_step(stmt)) == SQLITE_ROW) {
        double v = sqlite3_column_double(stmt, 0);
        for (size_t k = 0; k < n_ps; k++)
            if (want[k] == i)
                out[k] = v;
        i++;
    }
    /* Rows written between the count and this read may shift ranks; fewer rows than counted
     * (retention ran) is an error rather than a percentile of nothing. */
    if (i <= last) {
        rc = SB_EIO;
        goto done;
    }
    *count = n;

done:
    sqlite3_finalize(stmt);
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
    sqlite3_stmt *stmt = NULL;
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
        rc = prepare_filtered(r, &sql, f, &stmt);
    if (rc != 0)
        goto done;
    /* Intervals sorted by start: extend the current run while the next starts inside it. */
    int64_t run_start = 0, run_end = 0, busy = 0, sum = 0;
    bool in_run = false;
    int step;
    while ((step = sqlite3_step(stmt)) == SQLITE_ROW) {
        int64_t start = sqlite3_column_int64(stmt, 0);
        double lat = sqlite3_column_double(stmt, 1);
        int64_t end = start + (lat > 0 && isfinite(lat) ? llround(lat) : 0);
        sum += sqlite3_column_int64(stmt, 2);
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
    if (step != SQLITE_DONE) {
        rc = SB_EIO;
        goto done;
    }
    if (in_run)
        busy += run_end - run_start;
    *busy_ms = busy;
    *tokens = sum;

done:
    sqlite3_finalize(stmt);
    sb_buf_free(&sql);
    return rc;
}
