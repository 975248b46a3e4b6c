/* The SQLite ledger store: WAL mode, a schema brought up to date by a table of migrations, one
 * prepared INSERT reused for every row, and a separate read-only connection for queries. */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Schema. Migration i takes the schema from version i to i + 1, in one transaction with the
 * version update. A released migration is never edited: a change is a new entry. The columns of
 * sb__ledger_columns must all exist once the last one has run (open fails otherwise).
 * ------------------------------------------------------------------------------------------- */
static const char *const migrations[] = {
    /* 1: requests, and an index for each way the reports select: by time, and by time within a
     * backend, a model or a key. */
    "CREATE TABLE requests ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL," /* arrival, Unix milliseconds */
    "  request_id TEXT NOT NULL,"
    "  key_id TEXT NOT NULL DEFAULT '',"
    "  team TEXT NOT NULL DEFAULT '',"
    "  api TEXT NOT NULL,"   /* openai | anthropic | ollama */
    "  model TEXT NOT NULL," /* the alias asked for */
    "  backends_tried TEXT NOT NULL DEFAULT '',"
    "  backend TEXT NOT NULL DEFAULT ''," /* '' when none served */
    "  rule_id TEXT NOT NULL DEFAULT '',"
    "  sensitivity TEXT NOT NULL DEFAULT '',"
    "  pii_counts TEXT NOT NULL DEFAULT ''," /* JSON object kind -> count, or '' */
    "  status INTEGER NOT NULL,"
    "  error_class TEXT NOT NULL DEFAULT '',"
    "  prompt_tokens INTEGER NOT NULL DEFAULT 0," /* cached ones included */
    "  cached_prompt_tokens INTEGER NOT NULL DEFAULT 0,"
    "  completion_tokens INTEGER NOT NULL DEFAULT 0,"
    "  queue_ms REAL," /* NULL = not measured */
    "  ttft_ms REAL,"  /* NULL = no token came */
    "  latency_ms REAL NOT NULL,"
    "  tokens_per_s REAL,"
    "  cost_microusd INTEGER," /* NULL = unpriced, never 0 for unknown */
    "  streamed INTEGER NOT NULL,"
    "  attempts INTEGER NOT NULL"
    ");"
    "CREATE INDEX requests_ts ON requests(ts_ms);"
    "CREATE INDEX requests_backend_ts ON requests(backend, ts_ms);"
    "CREATE INDEX requests_model_ts ON requests(model, ts_ms);"
    "CREATE INDEX requests_key_ts ON requests(key_id, ts_ms);",
};

#define SCHEMA_VERSION ((int)SB_ARRAY_LEN(migrations))
/* How long a statement waits for another connection's lock (a report, a second instance) before
 * failing with SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 5000

struct sb__ledger_store {
    char *path;
    sqlite3 *db; /* the writer's: used by open, then only by the writer thread, then close */
    sqlite3 *rd; /* read-only, serialized by SQLite: count from any thread */
    sqlite3_stmt *insert, *purge, *begin, *commit, *rollback;
};

/* Writes "ledger PATH: what: sqlite's message" into err. */
static int fail_with(struct sb__ledger_store *st, sqlite3 *db, const char *what, char *err,
                     size_t err_size)
{
    if (err != NULL && err_size > 0)
        snprintf(err, err_size, "ledger %s: %s: %s", st->path, what,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return SB_EIO;
}

static int exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SB_EIO;
}

/* Runs a statement that returns one integer (or no row: *out = 0). */
static int query_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *stmt = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &stmt, NULL);
    *out = 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(stmt);
        if (rc == SQLITE_ROW)
            *out = sqlite3_column_int64(stmt, 0);
    }
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : SB_EIO;
}

/* Brings the schema to SCHEMA_VERSION in one immediate transaction, so two instances opening the
 * same new file do not both migrate it. */
static int migrate(struct sb__ledger_store *st, char *err, size_t err_size)
{
    sqlite3 *db = st->db;
    int64_t version = 0;
    char what[96];
    if (exec(db, "BEGIN IMMEDIATE") != 0)
        return fail_with(st, db, "cannot lock the database to check its schema", err, err_size);
    if (exec(db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)") != 0 ||
        query_int(db, "SELECT max(version) FROM schema_version", &version) != 0) {
        fail_with(st, db, "cannot read the schema version", err, err_size);
        goto fail;
    }
    if (version > SCHEMA_VERSION) {
        snprintf(err, err_size,
                 "ledger %s: schema version %lld is newer than this build's %d; use a newer "
                 "switchboard or another ledger.path",
                 st->path, (long long)version, SCHEMA_VERSION);
        goto fail;
    }
    for (int64_t v = version; v < SCHEMA_VERSION; v++) {
        if (exec(db, migrations[v]) != 0) {
            snprintf(what, sizeof what, "migration to schema version %lld failed",
                     (long long)v + 1);
            fail_with(st, db, what, err, err_size);
            goto fail;
        }
    }
    if (version < SCHEMA_VERSION) {
        char sql[96];
        snprintf(sql, sizeof sql,
                 "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)",
                 SCHEMA_VERSION);
        if (exec(db, sql) != 0) {
            fail_with(st, db, "cannot record the schema version", err, err_size);
            goto fail;
        }
    }
    if (exec(db, "COMMIT") != 0) {
        fail_with(st, db, "cannot commit the schema", err, err_size);
        goto fail;
    }
    return 0;

fail:
    exec(db, "ROLLBACK");
    return SB_EIO;
}

/* Prepares "INSERT INTO requests (c1, c2, ...) VALUES (?, ?, ...)" from the column table. */
static int prepare_insert(struct sb__ledger_store *st)
{
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    struct sb_buf sql;
    sb_buf_init(&sql, 8192);
    int rc = sb_buf_append_c(&sql, "INSERT INTO requests (");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sb_buf_printf(&sql, "%s%s", i > 0 ? ", " : "", cols[i].name);
    if (rc == 0)
        rc = sb_buf_append_c(&sql, ") VALUES (");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sb_buf_append_c(&sql, i > 0 ? ", ?" : "?");
    if (rc == 0)
        rc = sb_buf_append_char(&sql, ')');
    if (rc == 0 && sqlite3_prepare_v3(st->db, sql.p, -1, SQLITE_PREPARE_PERSISTENT, &st->insert,
                                      NULL) != SQLITE_OK)
        rc = SB_EIO;
    sb_buf_free(&sql);
    return rc;
}

static int prepare(sqlite3 *db, const char *sql, sqlite3_stmt **out)
{
    return sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL) == SQLITE_OK
               ? 0
               : SB_EIO;
}

static void store_close(struct sb__ledger_store *st)
{
    if (st == NULL)
        return;
    sqlite3_finalize(st->insert);
    sqlite3_finalize(st->purge);
    sqlite3_finalize(st->begin);
    sqlite3_finalize(st->commit);
    sqlite3_finalize(st->rollback);
    sqlite3_close(st->rd);
    if (st->db != NULL) {
        /* Keeps the query planner's statistics fresh for the reports; cheap when nothing
         * changed. The last connection to close checkpoints the WAL into the database. */
        exec(st->db, "PRAGMA optimize");
        sqlite3_close(st->db);
    }
    free(st->path);
    free(st);
}

static int store_open(const char *target, struct sb__ledger_store **out, char *err, size_t err_size)
{
    int rc = SB_EIO;
    struct sb__ledger_store *st = NULL;
    *out = NULL;
    if (!sqlite3_threadsafe()) {
        snprintf(err, err_size, "ledger %s: this SQLite library is built without thread support",
                 target);
        goto fail;
    }
    st = calloc(1, sizeof *st);
    if (st == NULL || (st->path = strdup(target)) == NULL) {
        snprintf(err, err_size, "ledger %s: out of memory", target);
        rc = SB_ENOMEM;
        goto fail;
    }
    /* The writer's connection is only ever used by one thread at a time (open, the writer,
     * close, ordered by thread creation and join), so it needs no mutex of its own. */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(target, &st->db, flags, NULL) != SQLITE_OK) {
        fail_with(st, st->db,
                  "cannot open or create the database (does its folder exist and is it "
                  "writable?)",
                  err, err_size);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    /* WAL: readers (reports) never block the writer and a commit is one append. NORMAL: no
     * fsync per commit; see ledger.c for what that means for durability. */
    sqlite3_stmt *mode = NULL;
    const unsigned char *got = NULL;
    if (sqlite3_prepare_v2(st->db, "PRAGMA journal_mode=WAL", -1, &mode, NULL) == SQLITE_OK &&
        sqlite3_step(mode) == SQLITE_ROW)
        got = sqlite3_column_text(mode, 0);
    bool wal = got != NULL && strcmp((const char *)got, "wal") == 0;
    sqlite3_finalize(mode);
    if (!wal) {
        fail_with(st, st->db,
                  "cannot switch to WAL mode (is it a SQLite database, on a local file system?)",
                  err, err_size);
        goto fail;
    }
    if (exec(st->db, "PRAGMA synchronous=NORMAL") != 0) {
        fail_with(st, st->db, "cannot set synchronous=NORMAL", err, err_size);
        goto fail;
    }
    if (migrate(st, err, err_size) != 0)
        goto fail;
    if (prepare_insert(st) != 0 ||
        prepare(st->db,
                "DELETE FROM requests WHERE id IN "
                "(SELECT id FROM requests WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                &st->purge) != 0 ||
        prepare(st->db, "BEGIN IMMEDIATE", &st->begin) != 0 ||
        prepare(st->db, "COMMIT", &st->commit) != 0 ||
        prepare(st->db, "ROLLBACK", &st->rollback) != 0) {
        fail_with(st, st->db, "cannot prepare the ledger's statements", err, err_size);
        goto fail;
    }
    if (sqlite3_open_v2(target, &st->rd, SQLITE_OPEN_READONLY | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        fail_with(st, st->rd, "cannot open a read connection", err, err_size);
        goto fail;
    }
    sqlite3_busy_timeout(st->rd, BUSY_TIMEOUT_MS);
    *out = st;
    return 0;

fail:
    store_close(st);
    return rc;
}

/* Runs a prepared statement that returns no rows, and resets it. */
static int step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? 0 : SB_EIO;
}

/* Binds every column of row to st->insert. The row's memory must stay put until the step. */
static int bind_row(sqlite3_stmt *stmt, const struct sb_ledger_row *row)
{
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    const char *base = (const char *)row;
    int rc = SQLITE_OK;
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        const struct sb__ledger_column *c = &cols[i];
        const char *field = base + c->offset;
        int idx = (int)i + 1;
        int32_t i32;
        int64_t i64;
        double d;
        bool b;
        enum sb_api api;
        switch (c->type) {
        case SB__COL_TEXT:
            rc = sqlite3_bind_text(stmt, idx, field, (int)strnlen(field, c->size), SQLITE_STATIC);
            break;
        case SB__COL_INT32:
            memcpy(&i32, field, sizeof i32);
            rc = sqlite3_bind_int(stmt, idx, i32);
            break;
        case SB__COL_INT64:
        case SB__COL_INT64_OPT:
            memcpy(&i64, field, sizeof i64);
            rc = c->type == SB__COL_INT64_OPT && i64 < 0 ? sqlite3_bind_null(stmt, idx)
                                                         : sqlite3_bind_int64(stmt, idx, i64);
            break;
        case SB__COL_REAL:
        case SB__COL_REAL_OPT:
            memcpy(&d, field, sizeof d);
            if (c->type == SB__COL_REAL_OPT && !(d >= 0))
                rc = sqlite3_bind_null(stmt, idx);
            else
                rc = sqlite3_bind_double(stmt, idx, isfinite(d) ? d : 0);
            break;
        case SB__COL_BOOL:
            memcpy(&b, field, sizeof b);
            rc = sqlite3_bind_int(stmt, idx, b ? 1 : 0);
            break;
        case SB__COL_API:
            memcpy(&api, field, sizeof api);
            rc = sqlite3_bind_text(stmt, idx, sb_ledger_api_name(api), -1, SQLITE_STATIC);
            break;
        }
    }
    return rc == SQLITE_OK ? 0 : SB_EIO;
}

static int store_write_batch(struct sb__ledger_store *st, const struct sb_ledger_row *const *rows,
                             size_t n, char *err, size_t err_size)
{
    if (step_done(st->begin) != 0)
        return fail_with(st, st->db, "cannot begin a transaction", err, err_size);
    for (size_t i = 0; i < n; i++) {
        int rc = bind_row(st->insert, rows[i]);
        if (rc == 0)
            rc = step_done(st->insert);
        if (rc != 0) {
            fail_with(st, st->db, "cannot insert a row", err, err_size);
            goto fail;
        }
    }
    /* The bound texts point into the queue, which the writer gives back after this returns. */
    sqlite3_clear_bindings(st->insert);
    if (step_done(st->commit) != 0) {
        fail_with(st, st->db, "cannot commit", err, err_size);
        goto fail;
    }
    return 0;

fail:
    sqlite3_clear_bindings(st->insert);
    if (!sqlite3_get_autocommit(st->db))
        step_done(st->rollback);
    return SB_EIO;
}

static int store_purge(struct sb__ledger_store *st, int64_t before_ms, int64_t limit,
                       int64_t *deleted, char *err, size_t err_size)
{
    *deleted = 0;
    if (sqlite3_bind_int64(st->purge, 1, before_ms) != SQLITE_OK ||
        sqlite3_bind_int64(st->purge, 2, limit) != SQLITE_OK || step_done(st->purge) != 0)
        return fail_with(st, st->db, "cannot delete old rows", err, err_size);
    *deleted = sqlite3_changes64(st->db);
    return 0;
}

static int store_count(struct sb__ledger_store *st, int64_t *out)
{
    return query_int(st->rd, "SELECT count(*) FROM requests", out);
}

const struct sb__ledger_store_ops sb__ledger_sqlite_ops = {
    .name = "sqlite",
    .open = store_open,
    .write_batch = store_write_batch,
    .purge = store_purge,
    .count = store_count,
    .close = store_close,
};
