/* The SQLite ledger store: WAL mode, a schema brought up to date by a table of migrations, one
 * prepared INSERT reused for every row, a separate read-only connection for counting, and the
 * read side for reports (a read-only connection and cursors over its statements). */
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/internal.h"
#include "sqlite/sqlite.h"

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

    /* 2: cache-write tokens (Anthropic's and Bedrock's prompt caching), and the text of requests
     * when content logging is on, in a table of its own so that the requests table stays small
     * and free of text when it is off. */
    "ALTER TABLE requests ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE request_content ("
    "  id INTEGER PRIMARY KEY,"
    "  request_id TEXT NOT NULL,"     /* the row's request_id */
    "  ts_ms INTEGER NOT NULL,"       /* the row's ts_ms, for retention */
    "  prompt_json TEXT NOT NULL,"    /* the request body as the client sent it */
    "  completion_text TEXT NOT NULL" /* the text the client was sent */
    ");"
    "CREATE INDEX request_content_request_id ON request_content(request_id);"
    "CREATE INDEX request_content_ts ON request_content(ts_ms);",
};

/* How long a statement waits for another connection's lock (a report, a second instance) before
 * failing with SQLITE_BUSY. */
#define BUSY_TIMEOUT_MS 5000

struct sb__ledger_store {
    char *path;
    sqlite3 *db; /* the writer's: used by open, then only by the writer thread, then close */
    sqlite3 *rd; /* read-only, serialized by SQLite: count from any thread */
    sqlite3_stmt *insert, *insert_content, *purge, *purge_content, *begin, *commit, *rollback;
};

/* Writes "ledger PATH: what: sqlite's message" into err. */
static int fail_with(struct sb__ledger_store *st, sqlite3 *db, const char *what, char *err,
                     size_t err_size)
{
    return sb_sqlite_fail(db, "ledger", st->path, what, err, err_size);
}

static const struct sb_sqlite_schema schema = {
    .label = "ledger",
    .noun = "schema",
    .table = "schema_version",
    .migrations = migrations,
    .n_migrations = SB_ARRAY_LEN(migrations),
    .newer_hint = "use a newer switchboard or another ledger.path",
};

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
    sqlite3_finalize(st->insert_content);
    sqlite3_finalize(st->purge);
    sqlite3_finalize(st->purge_content);
    sqlite3_finalize(st->begin);
    sqlite3_finalize(st->commit);
    sqlite3_finalize(st->rollback);
    sqlite3_close(st->rd);
    if (st->db != NULL) {
        /* Keeps the query planner's statistics fresh for the reports; cheap when nothing
         * changed. The last connection to close checkpoints the WAL into the database. */
        sb_sqlite_exec(st->db, "PRAGMA optimize");
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
    if (sb_sqlite_exec(st->db, "PRAGMA synchronous=NORMAL") != 0) {
        fail_with(st, st->db, "cannot set synchronous=NORMAL", err, err_size);
        goto fail;
    }
    if (sb_sqlite_migrate(st->db, st->path, &schema, err, err_size) != 0)
        goto fail;
    if (prepare_insert(st) != 0 ||
        prepare(st->db,
                "INSERT INTO request_content (request_id, ts_ms, prompt_json, completion_text) "
                "VALUES (?1, ?2, ?3, ?4)",
                &st->insert_content) != 0 ||
        prepare(st->db,
                "DELETE FROM requests WHERE id IN "
                "(SELECT id FROM requests WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                &st->purge) != 0 ||
        prepare(st->db,
                "DELETE FROM request_content WHERE id IN "
                "(SELECT id FROM request_content WHERE ts_ms < ?1 ORDER BY ts_ms LIMIT ?2)",
                &st->purge_content) != 0 ||
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

/* Inserts the text of item (which has some) into request_content. */
static int insert_content(struct sb__ledger_store *st, const struct sb__ledger_item *item)
{
    const struct sb_ledger_row *row = &item->row;
    const struct sb__ledger_content *c = item->content;
    sqlite3_stmt *stmt = st->insert_content;
    int rc =
        sqlite3_bind_text(stmt, 1, row->request_id,
                          (int)strnlen(row->request_id, sizeof row->request_id), SQLITE_STATIC);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(stmt, 2, row->ts_ms);
    if (rc == SQLITE_OK)
        rc =
            sqlite3_bind_text64(stmt, 3, c->prompt_json, c->prompt_len, SQLITE_STATIC, SQLITE_UTF8);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text64(stmt, 4, c->completion, c->completion_len, SQLITE_STATIC,
                                 SQLITE_UTF8);
    return rc == SQLITE_OK ? step_done(stmt) : SB_EIO;
}

static int store_write_batch(struct sb__ledger_store *st,
                             const struct sb__ledger_item *const *items, size_t n, char *err,
                             size_t err_size)
{
    if (step_done(st->begin) != 0)
        return fail_with(st, st->db, "cannot begin a transaction", err, err_size);
    for (size_t i = 0; i < n; i++) {
        int rc = bind_row(st->insert, &items[i]->row);
        if (rc == 0)
            rc = step_done(st->insert);
        if (rc == 0 && items[i]->content != NULL)
            rc = insert_content(st, items[i]);
        if (rc != 0) {
            fail_with(st, st->db, "cannot insert a row", err, err_size);
            goto fail;
        }
    }
    /* The bound texts point into the queue, which the writer gives back after this returns. */
    sqlite3_clear_bindings(st->insert);
    sqlite3_clear_bindings(st->insert_content);
    if (step_done(st->commit) != 0) {
        fail_with(st, st->db, "cannot commit", err, err_size);
        goto fail;
    }
    return 0;

fail:
    sqlite3_clear_bindings(st->insert);
    sqlite3_clear_bindings(st->insert_content);
    if (!sqlite3_get_autocommit(st->db))
        step_done(st->rollback);
    return SB_EIO;
}

/* Runs a purge statement (?1 before, ?2 limit); *changed receives the rows it deleted. */
static int purge_step(sqlite3 *db, sqlite3_stmt *stmt, int64_t before_ms, int64_t limit,
                      int64_t *changed)
{
    if (sqlite3_bind_int64(stmt, 1, before_ms) != SQLITE_OK ||
        sqlite3_bind_int64(stmt, 2, limit) != SQLITE_OK || step_done(stmt) != 0)
        return SB_EIO;
    *changed = sqlite3_changes64(db);
    return 0;
}

static int store_purge(struct sb__ledger_store *st, int64_t before_ms, int64_t limit,
                       int64_t *deleted, char *err, size_t err_size)
{
    int64_t rows = 0, texts = 0;
    *deleted = 0;
    if (step_done(st->begin) != 0)
        return fail_with(st, st->db, "cannot begin a transaction", err, err_size);
    if (purge_step(st->db, st->purge, before_ms, limit, &rows) != 0 ||
        purge_step(st->db, st->purge_content, before_ms, limit, &texts) != 0 ||
        step_done(st->commit) != 0) {
        fail_with(st, st->db, "cannot delete old rows", err, err_size);
        if (!sqlite3_get_autocommit(st->db))
            step_done(st->rollback);
        return SB_EIO;
    }
    *deleted = rows;
    return 0;
}

static int store_count(struct sb__ledger_store *st, int64_t *out)
{
    return sb_sqlite_query_int(st->rd, "SELECT count(*) FROM requests", out);
}

/* ---------------------------------------------------------------------------------------------
 * Reading
 * ------------------------------------------------------------------------------------------- */
struct sb__ledger_cursor {
    sqlite3_stmt *stmt;
};

struct sb__ledger_conn {
    sqlite3 *db;
    struct sb__ledger_cursor cur; /* the one cursor; stmt NULL when none is open */
};

static void conn_close(struct sb__ledger_conn *c)
{
    if (c == NULL)
        return;
    sqlite3_finalize(c->cur.stmt);
    sqlite3_close(c->db);
    free(c);
}

static const char *conn_error(struct sb__ledger_conn *c)
{
    return c != NULL && c->db != NULL ? sqlite3_errmsg(c->db) : "out of memory";
}

static int conn_open(const char *target, struct sb__ledger_conn **out, char *err, size_t err_size)
{
    *out = NULL;
    struct sb__ledger_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_size, "ledger %s: out of memory", target);
        return SB_ENOMEM;
    }
    if (sqlite3_open_v2(target, &c->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        snprintf(err, err_size,
                 "ledger %s: cannot open it read-only: %s (does the file exist? the server "
                 "creates it at ledger.path)",
                 target, conn_error(c));
        conn_close(c);
        return SB_EIO;
    }
    /* A report waits for a writer's checkpoint rather than failing at once. */
    sqlite3_busy_timeout(c->db, BUSY_TIMEOUT_MS);
    *out = c;
    return 0;
}

static int conn_query(struct sb__ledger_conn *c, const char *sql,
                      const struct sb__ledger_param *params, size_t n,
                      struct sb__ledger_cursor **out)
{
    sqlite3_stmt *stmt = NULL;
    *out = NULL;
    if (c->cur.stmt != NULL)
        return SB_ESTATE;
    int rc = sqlite3_prepare_v2(c->db, sql, -1, &stmt, NULL);
    /* Parameters are named $1, $2, ...; those the statement does not use are left out. */
    for (size_t i = 0; i < n && rc == SQLITE_OK; i++) {
        char name[24];
        snprintf(name, sizeof name, "$%zu", i + 1);
        int idx = sqlite3_bind_parameter_index(stmt, name);
        if (idx == 0)
            continue;
        rc = params[i].is_text ? sqlite3_bind_text(stmt, idx, params[i].s, -1, SQLITE_STATIC)
                               : sqlite3_bind_int64(stmt, idx, params[i].i);
    }
    if (rc != SQLITE_OK) {
        sqlite3_finalize(stmt);
        return rc == SQLITE_NOMEM ? SB_ENOMEM : SB_EIO;
    }
    c->cur.stmt = stmt;
    *out = &c->cur;
    return 0;
}

static int cursor_next(struct sb__ledger_cursor *cur)
{
    int rc = sqlite3_step(cur->stmt);
    return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : SB_EIO;
}

static int64_t cursor_int(struct sb__ledger_cursor *cur, int i)
{
    return sqlite3_column_int64(cur->stmt, i);
}

static double cursor_real(struct sb__ledger_cursor *cur, int i)
{
    return sqlite3_column_double(cur->stmt, i);
}

static struct sb_str cursor_text(struct sb__ledger_cursor *cur, int i)
{
    const unsigned char *p = sqlite3_column_text(cur->stmt, i);
    int len = sqlite3_column_bytes(cur->stmt, i);
    return p != NULL ? (struct sb_str){(const char *)p, (size_t)len} : SB_STR_LIT("");
}

static void cursor_finish(struct sb__ledger_cursor *cur)
{
    if (cur == NULL)
        return;
    sqlite3_finalize(cur->stmt);
    cur->stmt = NULL;
}

const struct sb__ledger_store_ops sb__ledger_sqlite_ops = {
    .name = "sqlite",
    .open = store_open,
    .write_batch = store_write_batch,
    .purge = store_purge,
    .count = store_count,
    .close = store_close,
    .conn_open = conn_open,
    .conn_close = conn_close,
    .conn_error = conn_error,
    .query = conn_query,
    .next = cursor_next,
    .col_int = cursor_int,
    .col_real = cursor_real,
    .col_text = cursor_text,
    .finish = cursor_finish,
};
