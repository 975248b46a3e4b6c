/* Tests for the ledger on a real PostgreSQL server, which each test starts with tests/pg/start.sh
 * (its own server, database and password) and stops with tests/pg/stop.sh: migration by several
 * instances starting at once, every column written and read back exactly, group commit under
 * load, reports equal to the same rows in SQLite, the server stopped and started under a running
 * ledger, content logging, retention, and errors that name the host but never the password.
 * When no server can be started, the tests fail (with start.sh's reason), they do not skip. */
#include <criterion/criterion.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config/config.h"
#include "ledger/internal.h"
#include "ledger/ledger.h"
#include "ledger_test.h"
#include "report/report.h"

/* ---------------------------------------------------------------------------------------------
 * The server
 * ------------------------------------------------------------------------------------------- */
static struct {
    char dir[256];
    char port[16];
    char password[64];
    char url[512];
} pg;

/* Runs a tests/pg script and reads its key=value lines into pg. Tests run from the repository
 * root, like every suite that reads the tree. */
static void pg_script(const char *cmd)
{
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f, "cannot run %s", cmd);
    static const struct {
        const char *key;
        char *dst;
        size_t size;
    } keys[] = {
        {"dir=", pg.dir, sizeof pg.dir},
        {"port=", pg.port, sizeof pg.port},
        {"password=", pg.password, sizeof pg.password},
        {"url=", pg.url, sizeof pg.url},
    };
    char line[1024];
    while (fgets(line, sizeof line, f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        for (size_t i = 0; i < SB_ARRAY_LEN(keys); i++)
            if (strncmp(line, keys[i].key, strlen(keys[i].key)) == 0)
                snprintf(keys[i].dst, keys[i].size, "%s", line + strlen(keys[i].key));
    }
    int status = pclose(f);
    cr_assert_eq(status, 0,
                 "%s failed (exit status %d): these tests need a PostgreSQL server (Debian's "
                 "postgresql package; scripts/deps.sh installs it); its reason is above",
                 cmd, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
}

static void pg_start(void)
{
    memset(&pg, 0, sizeof pg);
    pg_script("tests/pg/start.sh");
    cr_assert(pg.dir[0] != '\0' && pg.url[0] != '\0', "tests/pg/start.sh printed no URL");
}

static void pg_stop(void)
{
    if (pg.dir[0] == '\0')
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/pg/stop.sh '%s'", pg.dir);
    if (system(cmd) != 0)
        fprintf(stderr, "%s failed\n", cmd);
    pg.dir[0] = '\0';
}

/* Stops the server, keeping its data, or starts it again. */
static void pg_pause(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/pg/stop.sh '%s' --keep", pg.dir);
    cr_assert_eq(system(cmd), 0, "%s failed", cmd);
}

static void pg_resume(void)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "tests/pg/start.sh '%s'", pg.dir);
    pg_script(cmd);
}

TestSuite(ledger_pg, .init = pg_start, .fini = pg_stop, .timeout = 120);

/* A connection of the test's own. */
static PGconn *db_connect(void)
{
    PGconn *c = PQconnectdb(pg.url);
    cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
    return c;
}

static void db_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    cr_assert(s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK, "%s: %s", sql,
              PQresultErrorMessage(r));
    PQclear(r);
}

static int64_t db_int(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1, "%s", sql);
    int64_t v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return v;
}

/* ---------------------------------------------------------------------------------------------
 * Rows
 * ------------------------------------------------------------------------------------------- */
static struct sb_ledger_config config(char *path, int32_t interval_ms, size_t queue)
{
    return (struct sb_ledger_config){
        .path = path, .commit_interval_ms = interval_ms, .queue_size = queue};
}

/* A plain row numbered i, stamped i ms after a fixed instant. */
static void fill_row(struct sb_ledger_row *row, int64_t i)
{
    fill_row_at(row, i, 1700000000000 + i);
}

static void record_n(struct sb_ledger *l, int64_t from, int64_t n)
{
    for (int64_t i = from; i < from + n; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Opening and migrating
 * ------------------------------------------------------------------------------------------- */
struct opener {
    struct sb_ledger *l;
    int rc;
    char err[512];
    atomic_bool done;
};

static void *open_thread(void *arg)
{
    struct opener *o = arg;
    struct sb_ledger_config cfg = config(pg.url, 50, 16);
    o->rc = sb_ledger_open(&cfg, &o->l, o->err, sizeof o->err);
    atomic_store(&o->done, true);
    return NULL;
}

Test(ledger_pg, instances_starting_together_migrate_once)
{
    enum { N = 4 };
    /* The test holds the migration lock, so every instance is in its migration, waiting, when
     * the test lets go: they are made to race for it. */
    PGconn *c = db_connect();
    db_exec(c, "BEGIN");
    db_exec(c, "SELECT pg_advisory_xact_lock(6001217730305263954)");
    pthread_t th[N];
    struct opener os[N];
    for (int i = 0; i < N; i++) {
        os[i] = (struct opener){.l = NULL};
        atomic_init(&os[i].done, false);
        cr_assert_eq(pthread_create(&th[i], NULL, open_thread, &os[i]), 0);
    }
    PGconn *watch = db_connect();
    int64_t waiting = 0;
    for (int done = 0; waiting < N && done < N; usleep(1000)) {
        waiting = db_int(watch, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                                "NOT granted");
        done = 0;
        for (int i = 0; i < N; i++)
            done += atomic_load(&os[i].done);
    }
    PQfinish(watch);
    cr_assert_eq(waiting, N, "the instances did not wait for the migration lock");
    db_exec(c, "COMMIT");
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(os[i].rc, 0, "instance %d: %s", i, os[i].err);
    }

    cr_assert_eq(db_int(c, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(db_int(c, "SELECT version FROM schema_version"), 2);
    static const char *const indexes[] = {
        "requests_ts",     "requests_backend_ts",        "requests_model_ts",
        "requests_key_ts", "request_content_request_id", "request_content_ts",
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(indexes); i++) {
        char sql[160];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_indexes WHERE indexname = '%s'",
                 indexes[i]);
        cr_assert_eq(db_int(c, sql), 1, "index %s", indexes[i]);
    }
    /* Every column the rows bind exists, and nothing else but the key. */
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    for (size_t i = 0; i < n; i++) {
        char sql[160];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM information_schema.columns WHERE table_name = 'requests' "
                 "AND column_name = '%s'",
                 cols[i].name);
        cr_assert_eq(db_int(c, sql), 1, "column %s", cols[i].name);
    }
    cr_assert_eq(db_int(c, "SELECT count(*) FROM information_schema.columns WHERE table_name = "
                           "'requests'"),
                 (int64_t)n + 1);

    /* Each instance writes; all of it lands once. */
    for (int i = 0; i < N; i++)
        record_n(os[i].l, i * 100, 10);
    for (int i = 0; i < N; i++)
        cr_assert_eq(sb_ledger_close(os[i].l), 0);
    cr_assert_eq(db_int(c, "SELECT count(DISTINCT request_id) FROM requests"), N * 10);

    /* Opened again, the schema is current: nothing changes. */
    struct sb_ledger *l = open_ok(config(pg.url, 50, 16));
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(db_int(c, "SELECT count(*) FROM schema_version"), 1);
    cr_assert_eq(db_int(c, "SELECT version FROM schema_version"), 2);
    PQfinish(c);
}

Test(ledger_pg, refuses_a_newer_schema_and_a_wrong_password)
{
    PGconn *c = db_connect();
    db_exec(c, "CREATE TABLE schema_version (version INTEGER NOT NULL);"
               "INSERT INTO schema_version VALUES (99)");
    PQfinish(c);
    struct sb_ledger_config cfg = config(pg.url, 50, 16);
    struct sb_ledger *l = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EIO);
    cr_assert_null(l);
    cr_assert_not_null(strstr(err, "schema version 99 is newer"), "%s", err);
    cr_assert_null(strstr(err, pg.password), "%s", err);
    cr_assert_not_null(strstr(err, "switchboard:***@127.0.0.1"), "%s", err);

    /* A wrong password, in the user information and as a parameter. */
    char urls[2][600];
    static const char wrong[] = "wrong-pw-4417";
    snprintf(urls[0], sizeof urls[0], "postgres://switchboard:%s@127.0.0.1:%s/switchboard", wrong,
             pg.port);
    snprintf(urls[1], sizeof urls[1],
             "postgresql://switchboard@127.0.0.1:%s/switchboard?password=%s", pg.port, wrong);
    for (size_t i = 0; i < SB_ARRAY_LEN(urls); i++) {
        char *url = urls[i];
        cfg.path = url;
        cr_assert_eq(sb_ledger_open(&cfg, &l, err, sizeof err), SB_EIO, "%s", url);
        cr_assert_not_null(strstr(err, "password authentication failed"), "%s", err);
        cr_assert_not_null(strstr(err, "127.0.0.1"), "%s", err);
        cr_assert_null(strstr(err, wrong), "%s", err);
        struct sb_ledger_reader *rd = NULL;
        cr_assert_eq(sb_ledger_reader_open(url, &rd, err, sizeof err), SB_EIO);
        cr_assert_null(rd);
        cr_assert_not_null(strstr(err, "127.0.0.1"), "%s", err);
        cr_assert_null(strstr(err, wrong), "%s", err);
    }

    /* A database without a ledger is not one. */
    struct sb_ledger_reader *rd = NULL;
    cr_assert_eq(sb_ledger_reader_open(pg.url, &rd, err, sizeof err), SB_EIO);
    cr_assert_not_null(strstr(err, "not a Switchboard ledger"), "%s", err);
    cr_assert_null(strstr(err, pg.password), "%s", err);
}

/* ---------------------------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------------------------- */
Test(ledger_pg, a_row_round_trips_exactly)
{
    struct sb_ledger *l = open_ok(config(pg.url, 50, 16));
    struct sb_ledger_row row;
    fill_row(&row, 7);
    row.ts_ms = 1700000000123;
    sb_ledger_copy(row.key_id, sizeof row.key_id, SB_STR_LIT("key_abc"));
    sb_ledger_copy(row.team, sizeof row.team, SB_STR_LIT("research"));
    row.api = SB_API_ANTHROPIC;
    sb_ledger_copy(row.model, sizeof row.model, SB_STR_LIT("caf\xc3\xa9-model"));
    sb_ledger_copy(row.backends_tried, sizeof row.backends_tried, SB_STR_LIT("openai,local"));
    sb_ledger_copy(row.rule_id, sizeof row.rule_id, SB_STR_LIT("pii-local"));
    sb_ledger_copy(row.sensitivity, sizeof row.sensitivity, SB_STR_LIT("high"));
    sb_ledger_copy(row.pii_counts, sizeof row.pii_counts, SB_STR_LIT("{\"email\":2}"));
    sb_ledger_copy(row.error_class, sizeof row.error_class, SB_STR_LIT("upstream_5xx"));
    row.status = 502;
    row.prompt_tokens = 9000000000;
    row.cached_prompt_tokens = 4;
    row.cache_write_tokens = 3;
    row.queue_ms = 1.5;
    row.ttft_ms = 0.1 + 0.2; /* needs all 17 digits to read back */
    row.tokens_per_s = 55.5;
    row.cost_microusd = 1234;
    row.streamed = true;
    row.attempts = 2;
    cr_assert_eq(sb_ledger_record(l, &row), 0);
    /* Unmeasured and unpriced: NULLs, never zeros. A field that fills its array, and a stray
     * byte PostgreSQL would refuse. */
    struct sb_ledger_row bare;
    fill_row(&bare, 8);
    memset(bare.key_id, 'k', sizeof bare.key_id);
    sb_ledger_copy(bare.team, sizeof bare.team, SB_STR_LIT("bad\xff"));
    cr_assert_eq(sb_ledger_record(l, &bare), 0);
    cr_assert_eq(sb_ledger_flush(l), 0);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, 2);

    PGconn *c = db_connect();
    PGresult *r = PQexec(c, "SELECT ts_ms, request_id, key_id, team, api, model, backends_tried, "
                            "backend, rule_id, sensitivity, pii_counts, status, error_class, "
                            "prompt_tokens, cached_prompt_tokens, completion_tokens, queue_ms, "
                            "ttft_ms, latency_ms, tokens_per_s, cost_microusd, streamed, "
                            "attempts, cache_write_tokens FROM requests ORDER BY id");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 2);
    static const char *const want[] = {
        "1700000000123",
        "req_7",
        "key_abc",
        "research",
        "anthropic",
        "caf\xc3\xa9-model",
        "openai,local",
        "local",
        "pii-local",
        "high",
        "{\"email\":2}",
        "502",
        "upstream_5xx",
        "9000000000",
        "4",
        "7",
        NULL,
        NULL,
        "12.5",
        "55.5",
        "1234",
        "t",
        "2",
        "3",
    };
    for (int i = 0; i < (int)SB_ARRAY_LEN(want); i++)
        if (want[i] != NULL)
            cr_assert_str_eq(PQgetvalue(r, 0, i), want[i], "column %d", i);
    cr_assert_eq(strtod(PQgetvalue(r, 0, 16), NULL), 1.5);
    cr_assert_eq(strtod(PQgetvalue(r, 0, 17), NULL), 0.1 + 0.2);
    static const int null_columns[] = {16, 17, 19, 20};
    for (size_t i = 0; i < SB_ARRAY_LEN(null_columns); i++)
        cr_assert(PQgetisnull(r, 1, null_columns[i]), "column %d", null_columns[i]);
    cr_assert_str_eq(PQgetvalue(r, 1, 4), "openai");
    cr_assert_eq(strlen(PQgetvalue(r, 1, 2)), sizeof bare.key_id);
    cr_assert_str_eq(PQgetvalue(r, 1, 3), "bad?");
    cr_assert_str_eq(PQgetvalue(r, 1, 21), "f");
    cr_assert_str_eq(PQgetvalue(r, 1, 23), "0");
    PQclear(r);
    PQfinish(c);
    cr_assert_eq(sb_ledger_close(l), 0);
}

struct producer {
    struct sb_ledger *l;
    int id, rows, refused;
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

Test(ledger_pg, group_commit_under_load)
{
    enum { THREADS = 8, ROWS = 2000 };
    struct sb_ledger *l = open_ok(config(pg.url, 5, THREADS * ROWS));
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
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.committed, THREADS * ROWS);
    cr_assert_eq(s.failed, 0);
    cr_assert_geq(s.commits, 1);

    /* Held, the writer takes nothing: 1000 rows wait, then go in one transaction (of INSERTs of
     * 64, 32, ... rows). */
    sb__ledger_hold(l, true);
    record_n(l, 10000000, 1000);
    sb__ledger_hold(l, false);
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s2;
    sb_ledger_get_stats(l, &s2);
    cr_assert_eq(s2.commits - s.commits, 1);
    cr_assert_eq(sb_ledger_close(l), 0);

    PGconn *c = db_connect();
    cr_assert_eq(db_int(c, "SELECT count(*) FROM requests"), THREADS * ROWS + 1000);
    cr_assert_eq(db_int(c, "SELECT count(DISTINCT request_id) FROM requests"),
                 THREADS * ROWS + 1000);
    /* The held rows arrived in order, each once. */
    cr_assert_eq(db_int(c, "SELECT sum(completion_tokens - 10000000) FROM requests WHERE "
                           "completion_tokens >= 10000000"),
                 999 * 1000 / 2);
    PQfinish(c);
}

Test(ledger_pg, a_restarted_server_is_reconnected_and_lost_rows_counted)
{
    struct sb_ledger *l = open_ok(config(pg.url, 5, 256));
    record_n(l, 0, 10);
    cr_assert_eq(sb_ledger_flush(l), 0);

    /* Restarted while the writer was idle: the broken connection is replaced before anything
     * is sent, so no row is lost. */
    pg_pause();
    pg_resume();
    record_n(l, 10, 10);
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.committed, 20);
    cr_assert_eq(s.failed, 0);

    /* Stopped: rows fail and are counted; recording never blocks. */
    pg_pause();
    record_n(l, 20, 7);
    cr_assert_eq(sb_ledger_flush(l), SB_EIO);
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.failed, 7);
    cr_assert_eq(s.committed, 20);
    int64_t n = 0;
    cr_assert_eq(sb_ledger_count(l, &n), SB_EIO);

    /* Started again: after the backoff the writer reconnects and rows arrive. Rows sent before
     * it reconnects fail, and are counted. */
    pg_resume();
    int64_t next = 27;
    do {
        record_n(l, next++, 1);
        sb_ledger_flush(l);
        sb_ledger_get_stats(l, &s);
    } while (s.committed == 20);
    record_n(l, next, 5);
    next += 5;
    cr_assert_eq(sb_ledger_flush(l), 0);
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.recorded, (uint64_t)next);
    cr_assert_eq(s.committed + s.failed, (uint64_t)next);
    cr_assert_eq(sb_ledger_count(l, &n), 0);
    cr_assert_eq(n, (int64_t)s.committed);
    cr_assert_eq(sb_ledger_close(l), 0);

    PGconn *c = db_connect();
    cr_assert_eq(db_int(c, "SELECT count(*) FROM requests"), (int64_t)s.committed);
    /* The last rows, after the reconnect, are all there. */
    char sql[160];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM requests WHERE completion_tokens >= %lld",
             (long long)next - 5);
    cr_assert_eq(db_int(c, sql), 5);
    PQfinish(c);
}

Test(ledger_pg, a_failed_write_is_reported_and_counted)
{
    struct sb_ledger *l = open_ok(config(pg.url, 50, 64));
    PGconn *c = db_connect();
    db_exec(c, "DROP TABLE requests");
    PQfinish(c);
    record_n(l, 0, 3);
    cr_assert_eq(sb_ledger_flush(l), SB_EIO);
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.failed, 3);
    cr_assert_eq(s.committed, 0);
    cr_assert_eq(sb_ledger_close(l), 0);
}

/* ---------------------------------------------------------------------------------------------
 * Content and retention
 * ------------------------------------------------------------------------------------------- */
static const char prompt_json[] = "{\"messages\":[{\"role\":\"user\",\"content\":\"tangerine-"
                                  "walrus-8812\"}]}";

Test(ledger_pg, content_logging_on_and_off)
{
    static const char completion[] = "Caf\xc3\xa9 \xff ok";
    struct sb_ledger_config cfg = config(pg.url, 50, 64);
    cfg.content_logging = true;
    struct sb_ledger *l = open_ok(cfg);
    struct sb_ledger_row row;
    fill_row(&row, 1);
    cr_assert_eq(sb_ledger_record_content(l, &row, SB_STR_LIT(prompt_json), SB_STR_LIT(completion)),
                 0);
    cr_assert_eq(sb_ledger_close(l), 0);

    PGconn *c = db_connect();
    PGresult *r = PQexec(c, "SELECT request_id, ts_ms, prompt_json, completion_text FROM "
                            "request_content");
    cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s", PQresultErrorMessage(r));
    cr_assert_eq(PQntuples(r), 1);
    cr_assert_str_eq(PQgetvalue(r, 0, 0), "req_1");
    cr_assert_str_eq(PQgetvalue(r, 0, 1), "1700000000001");
    cr_assert_str_eq(PQgetvalue(r, 0, 2), prompt_json);
    cr_assert_str_eq(PQgetvalue(r, 0, 3), "Caf\xc3\xa9 \xef\xbf\xbd ok");
    PQclear(r);

    /* Off: the same calls record the rows and no text anywhere. */
    db_exec(c, "DELETE FROM request_content; DELETE FROM requests");
    cfg.content_logging = false;
    l = open_ok(cfg);
    for (int i = 0; i < 5; i++) {
        fill_row(&row, i);
        cr_assert_eq(
            sb_ledger_record_content(l, &row, SB_STR_LIT(prompt_json), SB_STR_LIT(completion)), 0);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
    cr_assert_eq(db_int(c, "SELECT count(*) FROM requests"), 5);
    cr_assert_eq(db_int(c, "SELECT count(*) FROM request_content"), 0);
    cr_assert_eq(db_int(c, "SELECT count(*) FROM requests r WHERE r::text LIKE '%tangerine%'"), 0);
    PQfinish(c);
}

Test(ledger_pg, retention_deletes_old_rows_and_text)
{
    enum { OLD = 2500, RECENT = 200 };
    struct sb_ledger_config cfg = config(pg.url, 50, OLD + RECENT);
    cfg.content_logging = true;
    struct sb_ledger *l = open_ok(cfg);
    int64_t now = sb_unix_time() * 1000;
    for (int i = 0; i < OLD + RECENT; i++) {
        struct sb_ledger_row row;
        fill_row(&row, i);
        row.ts_ms = i < OLD ? now - 10LL * 24 * 3600 * 1000 - i : now - 1000;
        if (i % 100 == 0)
            cr_assert_eq(sb_ledger_record_content(l, &row, SB_STR_LIT("{}"), SB_STR_LIT("t")), 0);
        else
            cr_assert_eq(sb_ledger_record(l, &row), 0);
    }
    cr_assert_eq(sb_ledger_close(l), 0);
    cfg.retention_days = 7;
    l = open_ok(cfg);
    cr_assert_eq(sb_ledger_flush(l), 0);
    struct sb_ledger_stats s;
    sb_ledger_get_stats(l, &s);
    cr_assert_eq(s.purged, OLD);
    cr_assert_eq(sb_ledger_close(l), 0);
    PGconn *c = db_connect();
    cr_assert_eq(db_int(c, "SELECT count(*) FROM requests"), RECENT);
    cr_assert_eq(db_int(c, "SELECT count(*) FROM request_content"), RECENT / 100);
    PQfinish(c);
}

/* ---------------------------------------------------------------------------------------------
 * Reading: the same rows in both stores give the same answers, to the bit
 * ------------------------------------------------------------------------------------------- */
#define NOW  ((int64_t)1790000000000)
#define HOUR ((int64_t)3600 * 1000)

/* A deterministic mix: several backends (local and cloud), models, keys, sensitivity classes,
 * errors, fallbacks, PII, priced and unpriced rows, measured and unmeasured timings, overlapping
 * intervals, and names that sort differently bytewise than in a locale. */
static void mixed_row(struct sb_ledger_row *r, int i)
{
    static const char *const backends[] = {"local", "gpt-4o-mini", "claude", "Zeta", "", "ollama"};
    static const char *const models[] = {"local", "gpt-4o-mini", "claude", "alpha", "Beta"};
    static const char *const keys[] = {"", "k1", "K2", "k_3"};
    static const char *const classes[] = {"", "public", "internal", "secret"};
    static const char *const piis[] = {"", "{}", "{\"email\":1}"};
    uint32_t x = (uint32_t)i * 2654435761u;
    const char *backend = backends[x % SB_ARRAY_LEN(backends)];
    memset(r, 0, sizeof *r);
    char id[40];
    snprintf(id, sizeof id, "req_%d", i);
    sb_ledger_copy(r->request_id, sizeof r->request_id, sb_str_c(id));
    r->ts_ms = NOW - (int64_t)(x % (48 * 60)) * 60000 - i;
    sb_ledger_copy(r->backend, sizeof r->backend, sb_str_c(backend));
    sb_ledger_copy(r->model, sizeof r->model, sb_str_c(models[(x >> 4) % SB_ARRAY_LEN(models)]));
    sb_ledger_copy(r->key_id, sizeof r->key_id, sb_str_c(keys[(x >> 7) % SB_ARRAY_LEN(keys)]));
    sb_ledger_copy(r->sensitivity, sizeof r->sensitivity,
                   sb_str_c(classes[(x >> 9) % SB_ARRAY_LEN(classes)]));
    sb_ledger_copy(r->pii_counts, sizeof r->pii_counts,
                   sb_str_c(piis[(x >> 11) % SB_ARRAY_LEN(piis)]));
    bool fell_back = (x >> 13) % 5 == 0;
    char tried[128];
    snprintf(tried, sizeof tried, "%s%s", fell_back ? "dead," : "", backend);
    sb_ledger_copy(r->backends_tried, sizeof r->backends_tried, sb_str_c(tried));
    bool failed = backend[0] == '\0';
    r->status = failed ? 502 : 200;
    if (failed)
        sb_ledger_copy(r->error_class, sizeof r->error_class, SB_STR_LIT("upstream_5xx"));
    r->attempts = fell_back ? 2 : 1;
    r->api = (enum sb_api)(x % 3);
    r->prompt_tokens = 100 + (x >> 3) % 9000;
    r->cached_prompt_tokens = (x >> 5) % 50;
    r->cache_write_tokens = (x >> 6) % 30;
    r->completion_tokens = (x >> 8) % 700;
    r->queue_ms = (x >> 10) % 4 == 0 ? -1 : (double)((x >> 12) % 1000) / 7.0;
    r->ttft_ms = failed ? -1 : 1.0 / 3.0 + (double)((x >> 14) % 5000) / 11.0;
    r->latency_ms = 5.0 + (double)((x >> 15) % 20000) / 3.0;
    r->tokens_per_s = (x >> 16) % 3 == 0 ? -1 : 10.0 + (double)((x >> 17) % 900) / 13.0;
    r->cost_microusd =
        strcmp(backend, "local") == 0 || strcmp(backend, "ollama") == 0 || (x >> 18) % 7 == 0
            ? -1
            : (int64_t)((x >> 19) % 5000);
    r->streamed = (x >> 20) & 1;
}

static void agg_equal(const struct sb_ledger_agg *a, const struct sb_ledger_agg *b)
{
    cr_assert_str_eq(a->name, b->name);
    const int64_t va[] = {a->requests,
                          a->errors,
                          a->retried,
                          a->fell_back,
                          a->prompt_tokens,
                          a->cached_prompt_tokens,
                          a->cache_write_tokens,
                          a->completion_tokens,
                          a->cost_microusd,
                          a->priced,
                          a->unpriced,
                          a->pii,
                          a->long_prompts,
                          a->first_ms,
                          a->last_ms};
    const int64_t vb[] = {b->requests,
                          b->errors,
                          b->retried,
                          b->fell_back,
                          b->prompt_tokens,
                          b->cached_prompt_tokens,
                          b->cache_write_tokens,
                          b->completion_tokens,
                          b->cost_microusd,
                          b->priced,
                          b->unpriced,
                          b->pii,
                          b->long_prompts,
                          b->first_ms,
                          b->last_ms};
    for (size_t i = 0; i < SB_ARRAY_LEN(va); i++)
        cr_assert_eq(va[i], vb[i], "group \"%s\", sum %zu: %lld vs %lld", a->name, i,
                     (long long)va[i], (long long)vb[i]);
}

static char *report(const char *ledger, const struct sb_config *cfg, enum sb_report_format fmt)
{
    struct sb_report_params p = {
        .ledger = ledger, .cfg = cfg, .window_ms = 30 * 24 * HOUR, .now_ms = NOW, .format = fmt};
    struct sb_buf out;
    sb_buf_init(&out, 16 << 20);
    char err[512] = "";
    cr_assert_eq(sb_report_write(&p, &out, err, sizeof err), 0, "%s: %s", ledger, err);
    return sb_buf_steal(&out);
}

Test(ledger_pg, reports_equal_the_same_rows_in_sqlite)
{
    enum { ROWS = 1500 };
    char dir[] = "/tmp/sb-ledger-pg-XXXXXX", file[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(file, sizeof file, "%s/ledger.db", dir);
    struct sb_ledger *lite = open_ok(config(file, 5, ROWS));
    struct sb_ledger *post = open_ok(config(pg.url, 5, ROWS));
    for (int i = 0; i < ROWS; i++) {
        struct sb_ledger_row r;
        mixed_row(&r, i);
        cr_assert_eq(sb_ledger_record(lite, &r), 0);
        cr_assert_eq(sb_ledger_record(post, &r), 0);
    }
    cr_assert_eq(sb_ledger_close(lite), 0);
    cr_assert_eq(sb_ledger_close(post), 0);

    struct sb_ledger_reader *a = NULL, *b = NULL;
    char err[512] = "";
    cr_assert_eq(sb_ledger_reader_open(file, &a, err, sizeof err), 0, "%s", err);
    cr_assert_eq(sb_ledger_reader_open(pg.url, &b, err, sizeof err), 0, "%s", err);
    const char *const some[] = {"local", "Zeta", ""};
    const struct sb_ledger_filter filters[] = {
        {.since_ms = 0, .until_ms = INT64_MAX, .long_prompt_tokens = 4000},
        {.since_ms = NOW - 20 * HOUR,
         .until_ms = NOW - 2 * HOUR,
         .backends = some,
         .n_backends = SB_ARRAY_LEN(some)},
    };
    static const enum sb_ledger_group groups[] = {
        SB_LEDGER_GROUP_ALL, SB_LEDGER_GROUP_BACKEND,     SB_LEDGER_GROUP_MODEL,
        SB_LEDGER_GROUP_KEY, SB_LEDGER_GROUP_SENSITIVITY,
    };
    for (size_t fi = 0; fi < SB_ARRAY_LEN(filters); fi++) {
        const struct sb_ledger_filter *f = &filters[fi];
        for (size_t g = 0; g < SB_ARRAY_LEN(groups); g++) {
            struct sb_ledger_agg *ga = NULL, *gb = NULL;
            size_t na = 0, nb = 0;
            cr_assert_eq(sb_ledger_aggregate(a, groups[g], f, &ga, &na), 0);
            cr_assert_eq(sb_ledger_aggregate(b, groups[g], f, &gb, &nb), 0, "%s",
                         sb_ledger_reader_error(b));
            cr_assert_eq(na, nb, "grouping %d", (int)groups[g]);
            cr_assert_gt(na, 0);
            for (size_t i = 0; i < na; i++)
                agg_equal(&ga[i], &gb[i]);
            free(ga);
            free(gb);
        }
        static const double ps[] = {1, 50, 90, 99, 100};
        for (int m = SB_LEDGER_METRIC_LATENCY_MS; m <= SB_LEDGER_METRIC_QUEUE_MS; m++) {
            double va[SB_ARRAY_LEN(ps)], vb[SB_ARRAY_LEN(ps)];
            int64_t ca = 0, cb = 0;
            cr_assert_eq(sb_ledger_percentiles(a, (enum sb_ledger_metric)m, f, ps, SB_ARRAY_LEN(ps),
                                               va, &ca),
                         0);
            cr_assert_eq(sb_ledger_percentiles(b, (enum sb_ledger_metric)m, f, ps, SB_ARRAY_LEN(ps),
                                               vb, &cb),
                         0, "%s", sb_ledger_reader_error(b));
            cr_assert_eq(ca, cb);
            cr_assert_gt(ca, 0);
            for (size_t k = 0; k < SB_ARRAY_LEN(ps); k++)
                cr_assert_eq(va[k], vb[k], "metric %d p%g: %.17g vs %.17g", m, ps[k], va[k], vb[k]);
        }
        int64_t busy_a = 0, busy_b = 0, tok_a = 0, tok_b = 0;
        cr_assert_eq(sb_ledger_busy(a, f, &busy_a, &tok_a), 0);
        cr_assert_eq(sb_ledger_busy(b, f, &busy_b, &tok_b), 0);
        cr_assert_eq(busy_a, busy_b);
        cr_assert_eq(tok_a, tok_b);
        cr_assert_gt(busy_a, 0);
    }
    sb_ledger_reader_close(a);
    sb_ledger_reader_close(b);

    /* The whole report, as JSON and as text, byte for byte. */
    static const char yaml[] = "models:\n"
                               "  - name: local\n"
                               "    backend: local\n"
                               "    path: x.gguf\n"
                               "    context: 4096\n"
                               "  - name: gpt-4o-mini\n"
                               "    backend: openai\n"
                               "  - name: claude\n"
                               "    backend: anthropic\n"
                               "    upstream_model: claude-sonnet-4-5\n"
                               "infra:\n"
                               "  hardware_usd: 3600\n"
                               "  depreciation_years: 1\n"
                               "  power_watts: 1000\n"
                               "  electricity_usd_per_kwh: 0.10\n";
    struct sb_config *cfg = NULL;
    struct sb_buf errors;
    sb_buf_init(&errors, 1 << 16);
    cr_assert_eq(sb_config_parse("t.yaml", yaml, strlen(yaml), NULL, &cfg, &errors), 0);
    sb_buf_free(&errors);
    static const enum sb_report_format formats[] = {SB_REPORT_JSON, SB_REPORT_TEXT};
    for (size_t i = 0; i < SB_ARRAY_LEN(formats); i++) {
        char *ra = report(file, cfg, formats[i]);
        char *rb = report(pg.url, cfg, formats[i]);
        cr_assert_str_eq(ra, rb);
        if (formats[i] == SB_REPORT_JSON)
            cr_assert_not_null(strstr(ra, "\"cache_write_tokens\""));
        free(ra);
        free(rb);
    }
    sb_config_free(cfg);

    static const char *const suffixes[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        char p[96];
        snprintf(p, sizeof p, "%s%s", file, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}
