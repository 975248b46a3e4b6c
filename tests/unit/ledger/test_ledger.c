/* Tests for the ledger on SQLite: rows land from many threads, group commit batches, close and
 * flush drain, a full queue drops and counts, retention deletes, migrations (from an empty file and
 * from schema version 1), content logging on and off, and kill -9 loses nothing that a flush
 * confirmed and never corrupts the database. test_pg.c runs the same against PostgreSQL. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config/config.h"
#include "ledger/internal.h"
#include "ledger/ledger.h"
#include "ledger_test.h"
#include "metrics/metrics.h"

/* ---------------------------------------------------------------------------------------------
 * Helpers
 * ------------------------------------------------------------------------------------------- */
/* A fresh folder per test (tests run in parallel), removed with everything in it at the end. */
static char dir[64];
static char db_path[128];

static void make_dir(void)
{
    snprintf(dir, sizeof dir, "/tmp/sb-ledger-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db_path, sizeof db_path, "%s/ledger.db", dir);
}

static void remove_dir(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(ledger, .init = make_dir, .fini = remove_dir, .timeout = 60);

static struct sb_ledger_config config(int32_t interval_ms, size_t queue, int32_t retention_days)
{
    return (struct sb_ledger_config){
        .path = db_path,
        .commit_interval_ms = interval_ms,
        .queue_size = queue,
        .retention_days = retention_days,
    };
}

static int64_t unix_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A plain row numbered i, stamped "now". */
static void fill_row(struct sb_ledger_row *row, int64_t i)
{
    fill_row_at(row, i, 0);
}

/* Opens the file with SQLite directly, as a report or a person would. */
static sqlite3 *db_open(void)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    return db;
}

static int64_t db_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW, "%s", sql);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static void assert_integrity_ok(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
}

static int64_t file_count(void)
{
    sqlite3 *db = db_open();
    assert_integrity_ok(db);
    int64_t n = db_int(db, "SELECT count(*) FROM requests");
    sqlite3_close(db);
    return n;
}

/* ---------------------------------------------------------------------------------------------
 * Opening
 * ------------------------------------------------------------------------------------------- */
Test(ledger, empty_path_disables)
{
    struct sb_ledger_config cfg = config(50, 16, 0);
    cfg.path = "";
    struct sb_ledger *l = (struct sb_ledger *)1;
    cr_assert_eq(sb_ledger_open(&cfg, &l, NULL, 0), 0);
    cr_assert_null(l);
    struct sb_ledger_row row;
    fill_row(&row, 1);
    cr_assert_eq(sb_ledger_record(NULL, &row), 0);
    cr_assert_eq(sb_ledger_flush(NULL), 0);
    int64_t n = -1;
    cr_assert_eq(sb_ledger_count(NULL, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(sb_ledger_close(NULL), 0);
}

Test(ledger, migrates_an_empty_database)
{
    struct sb_ledger *l = open_ok(config(50, 16, 0));
    cr_assert_eq(sb_ledger_close(l), 0);
    sqlite3 *db = db_open();
    assert_integrity_ok(db);
    cr_assert_eq(db_int(db, "SELECT version FROM schema_version"), 2);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM schema_version"), 1);
    static const char *const indexes[] = {
        "requests_ts",     "requests_backend_ts",        "requests_model_ts",
        "requests_key_ts", "request_content_request_id", "request_content_ts",
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(indexes); i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = '%s'",
                 indexes[i]);
        cr_assert_eq(db_int(db, sql), 1, "index %s", indexes[i]);
    }
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* Opening again finds the schema current and changes nothing. */
    l = open_ok(config(50, 16, 0));
    cr_assert_eq(sb_ledger_close(l), 0);
    db = db_open();
    cr_assert_eq(db_int(db, "SELECT version FROM schema_version"), 2);
    sqlite3_close(db);
}

/* Schema version 1 as it was released: a ledger an older build wrote. */
static const char schema_v1[] =
    "CREATE TABLE schema_version (version INTEGER NOT NULL);"
    "INSERT INTO schema_version VALUES (1);"
    "CREATE TABLE requests (id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, request_id TEXT NOT "
    "NULL, key_id TEXT NOT NULL DEFAULT '', team TEXT NOT NULL DEFAULT '', api TEXT NOT NULL, "
    "model TEXT NOT NULL, backends_tried TEXT NOT NULL DEFAULT '', backend TEXT NOT NULL DEFAULT "
    "'', rule_id TEXT NOT NULL DEFAULT '', sensitivity TEXT NOT NULL DEFAULT '', pii_counts TEXT "
    "NOT NULL DEFAULT '', status INTEGER NOT NULL, error_class TEXT NOT NULL DEFAULT '', "
    "prompt_tokens INTEGER NOT NULL DEFAULT 0, cached_prompt_tokens INTEGER NOT NULL DEFAULT 0, "
    "completion_tokens INTEGER NOT NULL DEFAULT 0, queue_ms REAL, ttft_ms REAL, latency_ms REAL "
    "NOT NULL, tokens_per_s REAL, cost_microusd INTEGER, streamed INTEGER NOT NULL, attempts "
    "INTEGER NOT NULL);"
    "CREATE INDEX requests_ts ON requests(ts_ms);"
    "CREATE INDEX requests_backend_ts ON requests(backend, ts_ms);"
    "CREATE INDEX requests_model_ts ON requests(model, ts_ms);"
    "CREATE INDEX requests_key_ts ON requests(key_id, ts_ms);"
    "INSERT INTO requests (ts_ms, request_id, api, model, status, prompt_tokens, latency_ms, "
    "streamed, attempts) VALUES (1700000000000, 'req_old', 'openai', 'm', 200, 5, 1.5, 0, 1);";

Test(ledger, migrates_a_version_1_ledger)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, schema_v1, NULL, NULL, NULL), SQLITE_OK, "%s",
                 sqlite3_errmsg(db));
    sqlite3_close(db);

    /* A reader of the old file sees no cache-write column: zeros, not an error. */
    struct sb_ledger_reader *rd = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_reader_open(db_path, &rd, err, sizeof err), 0, "%s", err);
    struct sb_ledger_filter f = {.since_ms = 0, .until_ms = INT64_MAX};
    struct sb_ledger_agg *a = NULL;
    size_t n = 0;
    cr_assert_eq(sb_ledger_aggregate(rd, SB_LEDGER_GROUP_ALL, &f, &a, &n), 0);
    cr_assert_eq(a[0].requests, 1);
    cr_assert_eq(a[0].cache_write_tokens, 0);
    free(a);
    sb_ledger_reader_close(rd);

    struct sb_ledger *l = open_ok(config(50, 16, 0));
    struct sb_ledger_row row;
    fill_row(&row, 1);
    row.cache_write_tokens = 3;
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    db = db_open();
    assert_integrity_ok(db);
    cr_assert_eq(db_int(db, "SELECT version FROM schema_version"), 2);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM requests"), 2);
    cr_assert_eq(db_int(db, "SELECT cache_write_tokens FROM requests WHERE request_id = 'req_old'"),
                 0);
    cr_assert_eq(db_int(db, "SELECT cache_write_tokens FROM requests WHERE request_id = 'req_1'"),
                 3);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content"), 0);
    sqlite3_close(db);
}

Test(ledger, refuses_a_newer_schema)
{
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open(db_path, &db), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db,
                              "CREATE TABLE schema_version (version INTEGER NOT NULL);"
                              "INSERT INTO schema_version VALUES (99)",
                              NULL, NULL, NULL),
                 SQLITE_OK);
    sqlite3_close(db);
    struct sb_ledger_config cfg = config(50, 16, 0);
    struct sb_ledger *l = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EIO);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "schema version 99 is newer"), "%s", err);
    cr_assert_not_null(strstr(err, db_path), "%s", err);
}

Test(ledger, explains_a_missing_folder)
{
    struct sb_ledger_config cfg = config(50, 16, 0);
    cfg.path = "/nonexistent-sb-folder/ledger.db";
    struct sb_ledger *l = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EIO);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "/nonexistent-sb-folder/ledger.db"), "%s", err);
    cr_assert_not_null(strstr(err, "folder"), "%s", err);
}

Test(ledger, refuses_what_it_cannot_serve)
{
    /* A PostgreSQL URL goes to the PostgreSQL store; nothing listens on port 1. */
    struct sb_ledger_config cfg = config(50, 16, 0);
    cfg.path = "postgres://ledger:s3cret-pw@127.0.0.1:1/switchboard";
    struct sb_ledger *l = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EIO);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "cannot connect to PostgreSQL"), "%s", err);
    cr_assert_not_null(strstr(err, "127.0.0.1"), "%s", err);
    cr_assert_null(strstr(err, "s3cret-pw"), "%s", err);
    cfg = config(0, 16, 0);
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EINVAL);
    cfg = config(50, 0, 0);
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EINVAL);
    cr_assert_null(l);
}

/* ---------------------------------------------------------------------------------------------
 * Recording
 * ------------------------------------------------------------------------------------------- */
Test(ledger, a_row_round_trips)
{
    struct sb_ledger *l = open_ok(config(50, 16, 0));
    struct sb_ledger_row row;
    fill_row(&row, 7);
    row.ts_ms = 1700000000123;
    sb_ledger_copy(row.key_id, sizeof row.key_id, SB_STR_LIT("key_abc"));
    sb_ledger_copy(row.team, sizeof row.team, SB_STR_LIT("research"));
    row.api = SB_API_ANTHROPIC;
    sb_ledger_copy(row.backends_tried, sizeof row.backends_tried, SB_STR_LIT("openai,local"));
    sb_ledger_copy(row.rule_id, sizeof row.rule_id, SB_STR_LIT("pii-local"));
    sb_ledger_copy(row.sensitivity, sizeof row.sensitivity, SB_STR_LIT("high"));
    sb_ledger_copy(row.pii_counts, sizeof row.pii_counts, SB_STR_LIT("{\"email\":2}"));
    sb_ledger_copy(row.error_class, sizeof row.error_class, SB_STR_LIT(""));
    row.cached_prompt_tokens = 4;
    row.cache_write_tokens = 3;
    row.queue_ms = 1.5;
    row.ttft_ms = 90.25;
    row.tokens_per_s = 55.5;
    row.cost_microusd = 1234;
    row.streamed = true;
    row.attempts = 2;
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    /* An unpriced, unmeasured row stores NULLs, never zeros. */
    struct sb_ledger_row bare;
    fill_row(&bare, 8);
    cr_assert_eq(sb_ledger_record(l, &bare), 0);
    cr_assert_eq(sb_ledger_flush(l), 0);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, 2);

    sqlite3 *db = db_open();
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT ts_ms, request_id, key_id, team, api, model, "
                                    "backends_tried, backend, rule_id, sensitivity, pii_counts, "
                                    "status, error_class, prompt_tokens, cached_prompt_tokens, "
                                    "completion_tokens, queue_ms, ttft_ms, latency_ms, "
                                    "tokens_per_s, cost_microusd, streamed, attempts, "
                                    "cache_write_tokens FROM requests ORDER BY id",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_eq(sqlite3_column_int64(st, 0), 1700000000123);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 1), "req_7");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 2), "key_abc");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 3), "research");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 4), "anthropic");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 5), "local");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 6), "openai,local");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 7), "local");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 8), "pii-local");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 9), "high");
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 10), "{\"email\":2}");
    cr_assert_eq(sqlite3_column_int(st, 11), 200);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 12), "");
    cr_assert_eq(sqlite3_column_int64(st, 13), 10);
    cr_assert_eq(sqlite3_column_int64(st, 14), 4);
    cr_assert_eq(sqlite3_column_int64(st, 15), 7);
    cr_assert_eq(sqlite3_column_double(st, 16), 1.5);
    cr_assert_eq(sqlite3_column_double(st, 17), 90.25);
    cr_assert_eq(sqlite3_column_double(st, 18), 12.5);
    cr_assert_eq(sqlite3_column_double(st, 19), 55.5);
    cr_assert_eq(sqlite3_column_int64(st, 20), 1234);
    cr_assert_eq(sqlite3_column_int(st, 21), 1);
    cr_assert_eq(sqlite3_column_int(st, 22), 2);
    cr_assert_eq(sqlite3_column_int64(st, 23), 3);

    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    /* ts_ms 0 means "now". */
    cr_assert_gt(sqlite3_column_int64(st, 0), 1700000000000);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 4), "openai");
    static const int null_columns[] = {16, 17, 19, 20};
    for (size_t i = 0; i < SB_ARRAY_LEN(null_columns); i++)
        cr_assert_eq(sqlite3_column_type(st, null_columns[i]), SQLITE_NULL, "column %d",
                     null_columns[i]);
    cr_assert_eq(sqlite3_column_int(st, 21), 0);
    cr_assert_eq(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    cr_assert_eq(sb_ledger_close(l), 0);
}

Test(ledger, a_full_string_field_is_cut_not_overrun)
{
    struct sb_ledger *l = open_ok(config(50, 16, 0));
    struct sb_ledger_row row;
    fill_row(&row, 1);
    memset(row.model, 'm', sizeof row.model); /* no NUL at all */
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT length(model) FROM requests"), (int64_t)sizeof row.model);
    sqlite3_close(db);
}

struct producer {
    struct sb_ledger *l;
    int id;
    int rows;
    int refused;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < p->rows; i++) {
        struct sb_ledger_row row;
        fill_row(&row, (int64_t)p->id * 1000000 + i);
        if (sb_ledger_record(p->l, &row) != 0)
            p->refused++;
    }
    return NULL;
}

Test(ledger, rows_from_many_threads_all_land)
{
    enum { THREADS = 8, ROWS = 2000 };
    struct sb_ledger *l = open_ok(config(5, THREADS * ROWS, 0));
    pthread_t th[THREADS];
    struct producer ps[THREADS];
    for (int i = 0; i < THREADS; i++) {
        ps[i] = (struct producer){l, i, ROWS, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, produce, &ps[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(ps[i].refused, 0);
    }
    cr_assert_eq(sb_ledger_flush(l), 0);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, THREADS * ROWS);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.recorded, THREADS * ROWS);
    cr_assert_eq(s.committed, THREADS * ROWS);
    cr_assert_eq(s.dropped, 0);
    cr_assert_eq(s.failed, 0);
    cr_assert_eq(s.queued, 0);
    cr_assert_geq(s.commits, 1);
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), THREADS * ROWS);
    /* Every request id arrived once. */
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT count(DISTINCT request_id) FROM requests"), THREADS * ROWS);
    sqlite3_close(db);
}

Test(ledger, group_commit_writes_a_batch_in_one_transaction)
{
    struct sb_ledger *l = open_ok(config(50, 4096, 0));
    /* Held, the writer takes nothing, so all the rows wait in the queue together. */
    sb__ledger_hold(l, true);
    for (int i = 0; i < 1000; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.queued, 1000);
    cr_assert_eq(s.commits, 0);
    sb__ledger_hold(l, false);
    cr_assert_eq(sb_ledger_flush(l), 0);
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.committed, 1000);
    cr_assert_eq(s.commits, 1, "1000 rows took %llu commits", (unsigned long long)s.commits);
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), 1000);
}

Test(ledger, commits_on_its_own_after_the_interval)
{
    struct sb_ledger *l = open_ok(config(1, 16, 0));
    struct sb_ledger_row row;
    fill_row(&row, 1);
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    /* No flush: the writer commits when its interval ends. The suite's timeout bounds the wait. */
    struct sb_ledger_stats s;
    do {
        sched_yield();
        sb_ledger_get_stats(l, &s);
    } while (s.committed < 1);
    cr_assert_eq(s.commits, 1);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(sb_ledger_close(l), 0);
}

Test(ledger, close_flushes_everything)
{
    /* An interval far longer than the test: only close can have written the rows. */
    struct sb_ledger *l = open_ok(config(60000, 1024, 0));
    for (int i = 0; i < 500; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), 500);
}

Test(ledger, a_full_queue_drops_and_counts)
{
    struct sb_ledger *l = open_ok(config(50, 8, 0));
    sb__ledger_hold(l, true);
    int refused = 0;
    for (int i = 0; i < 13; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        int rc = sb_ledger_record(l, &row);
        cr_assert(rc == 0 || rc == SB_EFULL);
        refused += rc == SB_EFULL;
    }
    cr_assert_eq(refused, 5);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.recorded, 8);
    cr_assert_eq(s.dropped, 5);
    struct sb_buf text;
    sb_buf_init(&text, 1 << 20);
    cr_assert_eq(sb_metrics_render(&text), 0);
    cr_assert_not_null(strstr(text.p, "\nswitchboard_ledger_dropped_total 5\n"), "%s", text.p);
    sb_buf_free(&text);

    sb__ledger_hold(l, false);
    cr_assert_eq(sb_ledger_flush(l), 0);
    /* The queue has room again. */
    struct sb_ledger_row row;
    fill_row(&row, 99);
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), 9);
}

Test(ledger, a_failed_write_is_reported_and_counted)
{
    struct sb_ledger *l = open_ok(config(50, 64, 0));
    /* Someone drops the table underneath: every insert fails from now on. */
    sqlite3 *db = db_open();
    sqlite3_busy_timeout(db, 5000);
    cr_assert_eq(sqlite3_exec(db, "DROP TABLE requests", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    for (int i = 0; i < 3; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
    cr_assert_eq(sb_ledger_flush(l), SB_EIO);
    /* Reported once: a flush with nothing new failing succeeds. */
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.failed, 3);
    cr_assert_eq(s.committed, 0);
    struct sb_buf text;
    sb_buf_init(&text, 1 << 20);
    cr_assert_eq(sb_metrics_render(&text), 0);
    cr_assert_not_null(strstr(text.p, "\nswitchboard_ledger_write_failed_total 3\n"), "%s", text.p);
    sb_buf_free(&text);
    cr_assert_eq(sb_ledger_close(l), 0);
}

Test(ledger, retention_deletes_old_rows_in_batches)
{
    /* More old rows than one retention batch, so the pass takes several transactions. */
    enum { OLD = 2500, RECENT = 200 };
    struct sb_ledger *l = open_ok(config(50, OLD + RECENT, 0));
    int64_t now = unix_ms();
    for (int i = 0; i < OLD + RECENT; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        row.ts_ms = i < OLD ? now - 10LL * 24 * 3600 * 1000 - i : now - 1000;
        cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), OLD + RECENT);

    /* Retention runs when the ledger opens; a flush waits for the whole pass. */
    l = open_ok(config(50, 16, 7));
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.purged, OLD);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, RECENT);
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), RECENT);
}

/* ---------------------------------------------------------------------------------------------
 * Content logging
 * ------------------------------------------------------------------------------------------- */
/* The texts one request's content carries: a prompt with a marker no other part of a row holds,
 * and a completion with a non-ASCII character, a stray byte and a NUL (which become U+FFFD). */
static const char prompt_json[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"tangerine-"
                                  "walrus-8812\"}]}";
static const char completion[] = "Caf\xc3\xa9 \xff ok\0end";
static const char completion_stored[] = "Caf\xc3\xa9 \xef\xbf\xbd ok\xef\xbf\xbd"
                                        "end";

static void record_with_content(struct sb_ledger *l, int64_t i)
{
    struct sb_ledger_row row;
    fill_row(&row, i);
    row.ts_ms = 1700000000000 + i;
    cr_assert_eq(sb_ledger_record_content(l, &row, SB_STR_LIT(prompt_json),
                                          (struct sb_str){completion, sizeof completion - 1}),
                 0);
}

/* Whether needle is anywhere in the bytes of the file at path (a missing file holds nothing). */
static bool file_holds(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    struct sb_buf b;
    sb_buf_init(&b, 64 << 20);
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        cr_assert_eq(sb_buf_append(&b, chunk, n), 0);
    fclose(f);
    bool found = b.len > 0 && memmem(b.p, b.len, needle, strlen(needle)) != NULL;
    sb_buf_free(&b);
    return found;
}

Test(ledger, content_logging_records_the_text_beside_the_row)
{
    struct sb_ledger_config cfg = config(50, 16, 0);
    cfg.content_logging = true;
    struct sb_ledger *l = open_ok(cfg);
    cr_assert(sb_ledger_content_logging(l));
    record_with_content(l, 1);
    /* A row recorded without text has none. */
    struct sb_ledger_row bare;
    fill_row(&bare, 2);
    cr_assert_eq(sb_ledger_record(l, &bare), 0);
    cr_assert_eq(sb_ledger_close(l), 0);

    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT count(*) FROM requests"), 2);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content"), 1);
    sqlite3_stmt *st = NULL;
    cr_assert_eq(sqlite3_prepare_v2(db,
                                    "SELECT request_id, ts_ms, prompt_json, completion_text "
                                    "FROM request_content",
                                    -1, &st, NULL),
                 SQLITE_OK);
    cr_assert_eq(sqlite3_step(st), SQLITE_ROW);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 0), "req_1");
    cr_assert_eq(sqlite3_column_int64(st, 1), 1700000000001);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 2), prompt_json);
    cr_assert_str_eq((const char *)sqlite3_column_text(st, 3), completion_stored);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

Test(ledger, content_logging_off_keeps_the_text_out_of_the_file)
{
    struct sb_ledger *l = open_ok(config(50, 64, 0));
    cr_assert(!sb_ledger_content_logging(l));
    cr_assert(!sb_ledger_content_logging(NULL));
    for (int i = 0; i < 20; i++)
        record_with_content(l, i);
    cr_assert_eq(sb_ledger_flush(l), 0);
    /* While open (rows in the WAL) and after close (checkpointed into the file). */
    static const char *const suffixes[] = {"", "-wal"};
    char p[160];
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(p, sizeof p, "%s%s", db_path, suffixes[i]);
        cr_assert(!file_holds(p, "tangerine-walrus"), "%s holds the prompt", p);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), 20);
    cr_assert(!file_holds(db_path, "tangerine-walrus"));
    cr_assert(!file_holds(db_path, "Caf\xc3\xa9"));
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content"), 0);
    sqlite3_close(db);
}

Test(ledger, text_beyond_what_may_wait_is_left_out_not_the_row)
{
    /* 64 MiB of text may wait: 16 prompts of 4 MiB (each cut to SB_LEDGER_CONTENT_MAX), so the
     * 17th, queued while the writer is held, goes without its text. */
    enum { ROWS = 17 };
    struct sb_ledger_config cfg = config(50, 64, 0);
    cfg.content_logging = true;
    struct sb_ledger *l = open_ok(cfg);
    size_t big = SB_LEDGER_CONTENT_MAX + 100;
    char *prompt = malloc(big);
    cr_assert_not_null(prompt);
    memset(prompt, 'p', big);
    sb__ledger_hold(l, true);
    for (int i = 0; i < ROWS; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        cr_assert_eq(
            sb_ledger_record_content(l, &row, (struct sb_str){prompt, big}, SB_STR_LIT("")), 0);
    }
    free(prompt);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.recorded, ROWS);
    cr_assert_eq(s.content_dropped, 1);
    sb__ledger_hold(l, false);
    cr_assert_eq(sb_ledger_close(l), 0);
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT count(*) FROM requests"), ROWS);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content"), ROWS - 1);
    cr_assert_eq(db_int(db, "SELECT max(length(prompt_json)) FROM request_content"),
                 (int64_t)SB_LEDGER_CONTENT_MAX);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content WHERE request_id = 'req_16'"), 0);
    sqlite3_close(db);
}

Test(ledger, retention_deletes_old_text_too)
{
    struct sb_ledger_config cfg = config(50, 64, 0);
    cfg.content_logging = true;
    struct sb_ledger *l = open_ok(cfg);
    record_with_content(l, 1); /* in 2023: old */
    struct sb_ledger_row row;
    fill_row(&row, 2);
    row.ts_ms = unix_ms();
    cr_assert_eq(sb_ledger_record_content(l, &row, SB_STR_LIT("{}"), SB_STR_LIT("recent")), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    cfg.retention_days = 7;
    l = open_ok(cfg);
    cr_assert_eq(sb_ledger_flush(l), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    sqlite3 *db = db_open();
    cr_assert_eq(db_int(db, "SELECT count(*) FROM requests"), 1);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content"), 1);
    cr_assert_eq(db_int(db, "SELECT count(*) FROM request_content WHERE completion_text = "
                            "'recent'"),
                 1);
    sqlite3_close(db);
}

/* ---------------------------------------------------------------------------------------------
 * Durability: a child records and flushes in a loop, telling the parent through a pipe how many
 * rows each flush confirmed; the parent kills it with SIGKILL mid-stream and checks the file.
 * ------------------------------------------------------------------------------------------- */
static void child_records_forever(int fd)
{
    struct sb_ledger_config cfg = config(5, 4096, 0);
    struct sb_ledger *l = NULL;
    if (sb_ledger_open(&cfg, &l, NULL, 0) != 0)
        _exit(2);
    uint64_t confirmed = 0;
    for (int64_t i = 0;;) {
        for (int k = 0; k < 50; k++, i++) {
            struct sb_ledger_row row;
            fill_row(&row, i);
            if (sb_ledger_record(l, &row) != 0)
                _exit(3);
        }
        if (sb_ledger_flush(l) != 0)
            _exit(4);
        confirmed = (uint64_t)i;
        /* 8 bytes is below PIPE_BUF, so the write is atomic. */
        if (write(fd, &confirmed, sizeof confirmed) != (ssize_t)sizeof confirmed)
            _exit(5);
    }
}

Test(ledger, kill_9_loses_nothing_flushed_and_never_corrupts)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        child_records_forever(fds[1]);
    }
    close(fds[1]);
    uint64_t confirmed = 0, v = 0;
    for (int seen = 0; seen < 40 && read(fds[0], &v, sizeof v) == (ssize_t)sizeof v; seen++)
        confirmed = v;
    cr_assert_eq(kill(pid, SIGKILL), 0);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    /* Confirmations written before the kill still count. */
    while (read(fds[0], &v, sizeof v) == (ssize_t)sizeof v)
        confirmed = v;
    close(fds[0]);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child exited: %d",
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    cr_assert_gt(confirmed, 0);
    int64_t n = file_count(); /* checks integrity too */
    cr_assert_geq((uint64_t)n, confirmed, "%lld rows on disk, %llu confirmed", (long long)n,
                  (unsigned long long)confirmed);
    /* The ledger opens the recovered file and goes on. */
    struct sb_ledger *l = open_ok(config(50, 16, 0));
    struct sb_ledger_row row;
    fill_row(&row, -1);
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(file_count(), n + 1);
}

/* ---------------------------------------------------------------------------------------------
 * Rows, columns and configuration
 * ------------------------------------------------------------------------------------------- */
Test(ledger_row, copy_cuts_at_a_character_boundary)
{
    char small[6];
    sb_ledger_copy(small, sizeof small, SB_STR_LIT("abc\xc3\xa9\xc3\xa9")); /* abcéé */
    cr_assert_str_eq(small, "abc\xc3\xa9");
    sb_ledger_copy(small, sizeof small, SB_STR_LIT("ab\xe2\x82\xac\xe2\x82\xac")); /* ab€€ */
    cr_assert_str_eq(small, "ab\xe2\x82\xac");
    sb_ledger_copy(small, sizeof small, SB_STR_LIT("abcd\xe2\x82\xac")); /* abcd€ */
    cr_assert_str_eq(small, "abcd");
    sb_ledger_copy(small, sizeof small, SB_STR_NULL);
    cr_assert_str_eq(small, "");
    cr_assert_str_eq(sb_ledger_api_name(SB_API_OLLAMA), "ollama");
    cr_assert_str_eq(sb_ledger_api_name((enum sb_api)42), "");
}

Test(ledger_row, every_field_has_a_column)
{
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    size_t covered = 0;
    for (size_t i = 0; i < n; i++) {
        cr_assert_leq(cols[i].offset + cols[i].size, sizeof(struct sb_ledger_row));
        for (size_t j = 0; j < i; j++)
            cr_assert_str_neq(cols[i].name, cols[j].name);
        covered += cols[i].size;
    }
    /* Every byte of the row that is not padding belongs to a column. */
    size_t fields = 8 + 40 + 64 + 64 + sizeof(enum sb_api) + 96 + 256 + 96 + 64 + 16 + 128 + 32 +
                    4 + 4 + 8 + 8 + 8 + 8 + 8 + 8 + 8 + 8 + 8 + sizeof(bool);
    cr_assert_eq(covered, fields);
}

Test(ledger_row, urls_are_shown_without_their_password)
{
    char out[128];
    sb_ledger_display_name("postgres://sb:hunter2@db.internal:5432/ledger", out, sizeof out);
    cr_assert_str_eq(out, "postgres://sb:***@db.internal:5432/ledger");
    sb_ledger_display_name("/var/lib/switchboard/ledger.db", out, sizeof out);
    cr_assert_str_eq(out, "/var/lib/switchboard/ledger.db");
    sb_ledger_display_name(NULL, out, sizeof out);
    cr_assert_str_eq(out, "");
}

static struct sb_config *parse(const char *text, const char *base_dir)
{
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    int rc = sb_config_parse("t.yaml", text, strlen(text), base_dir, &cfg, &errors);
    cr_assert_eq(rc, 0, "%s", errors.p ? errors.p : "");
    sb_buf_free(&errors);
    return cfg;
}

Test(ledger_config, defaults_and_paths)
{
    struct sb_config *cfg = parse("log_level: info\n", "/etc/sb");
    cr_assert_str_eq(cfg->ledger.path, "/etc/sb/switchboard.db");
    cr_assert_eq(cfg->ledger.commit_interval_ms, 50);
    cr_assert_eq(cfg->ledger.queue_size, 2048);
    cr_assert_eq(cfg->ledger.retention_days, 0);
    cr_assert_eq(cfg->ledger.content_logging, false);
    sb_config_free(cfg);

    cfg = parse("ledger:\n  path: data/l.db\n  commit_interval_ms: 10\n  queue_size: 64\n"
                "  retention_days: 30\n",
                "/etc/sb");
    cr_assert_str_eq(cfg->ledger.path, "/etc/sb/data/l.db");
    cr_assert_eq(cfg->ledger.commit_interval_ms, 10);
    cr_assert_eq(cfg->ledger.queue_size, 64);
    cr_assert_eq(cfg->ledger.retention_days, 30);
    sb_config_free(cfg);

    /* "" turns the ledger off; it does not become the config's folder. A URL is not a path. */
    cfg = parse("ledger:\n  path: \"\"\n", "/etc/sb");
    cr_assert_str_eq(cfg->ledger.path, "");
    sb_config_free(cfg);
    cfg = parse("ledger:\n  path: postgres://u@h/db\n", "/etc/sb");
    cr_assert_str_eq(cfg->ledger.path, "postgres://u@h/db");
    sb_config_free(cfg);
}

Test(ledger_config, a_urls_password_is_never_printed)
{
    struct sb_config *cfg =
        parse("ledger:\n  path: postgres://sb:hunter2@db.internal:5432/ledger\n", "/etc/sb");
    cr_assert_str_eq(cfg->ledger.path, "postgres://sb:hunter2@db.internal:5432/ledger");
    struct sb_buf out;
    sb_buf_init(&out, 1 << 20);
    sb_config_print_summary(cfg, &out);
    cr_assert_not_null(strstr(out.p, "path: \"postgres://sb:***@db.internal:5432/ledger\""), "%s",
                       out.p);
    cr_assert_null(strstr(out.p, "hunter2"), "%s", out.p);
    sb_buf_free(&out);
    sb_config_free(cfg);
}

Test(ledger_config, bad_values_are_reported)
{
    const char *text = "ledger:\n  commit_interval_ms: 0\n  queue_size: 2\n";
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    cr_assert_eq(sb_config_parse("t.yaml", text, strlen(text), NULL, &cfg, &errors), SB_EINVAL);
    cr_assert_null(cfg);
    cr_assert_not_null(strstr(errors.p, "t.yaml:2:23: ledger.commit_interval_ms: expected an "
                                        "integer from 1 to 60000, got \"0\""),
                       "%s", errors.p);
    cr_assert_not_null(strstr(errors.p, "ledger.queue_size"), "%s", errors.p);
    sb_buf_free(&errors);
}
