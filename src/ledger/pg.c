/* The PostgreSQL ledger store (libpq), for several instances sharing one ledger: the SQLite
 * store's schema, brought up to date by migrations of its own under a transaction-level advisory
 * lock; each group commit one transaction of multi-row INSERTs through prepared statements; a
 * lost connection re-established with backoff; and the read side for reports, whose rows come
 * through a server-side cursor a few hundred at a time.
 *
 * The URL's password goes to libpq and nowhere else: every message names the ledger by its
 * redacted URL, and libpq's own messages are scrubbed of the password before they are passed on.
 *
 * Failure while writing: the rows of a group whose transaction fails are lost and counted by
 * ledger.c, as with SQLite; nothing waits for the server. A connection found broken is replaced
 * at once when nothing of the group was sent yet (a server restarted while the writer was idle
 * costs no rows); otherwise the next group reconnects, and after a failed reconnect the groups of
 * the next RECONNECT_MIN_MS, doubling to RECONNECT_MAX_MS, fail without trying. A connection lost
 * during COMMIT leaves the outcome unknown: the rows are counted as failed, and may be there. */
#include <inttypes.h>
#include <libpq-fe.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ledger/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Schema: the same tables, columns and indexes as sqlite.c's migrations, in PostgreSQL's types
 * (INTEGER -> BIGINT for 64-bit values, REAL -> DOUBLE PRECISION, 0/1 -> BOOLEAN). Text columns
 * compare bytewise (COLLATE "C"), as SQLite's do, so that reports group and order the same on
 * both stores whatever the database's locale. Migration i takes version i to i + 1; a released
 * migration is never edited.
 * ------------------------------------------------------------------------------------------- */
static const char *const migrations[] = {
    /* 1: requests, and an index for each way the reports select. */
    "CREATE TABLE requests ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  ts_ms BIGINT NOT NULL,"
    "  request_id TEXT COLLATE \"C\" NOT NULL,"
    "  key_id TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  team TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  api TEXT COLLATE \"C\" NOT NULL,"
    "  model TEXT COLLATE \"C\" NOT NULL,"
    "  backends_tried TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  backend TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  rule_id TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  sensitivity TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  pii_counts TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  status INTEGER NOT NULL,"
    "  error_class TEXT COLLATE \"C\" NOT NULL DEFAULT '',"
    "  prompt_tokens BIGINT NOT NULL DEFAULT 0,"
    "  cached_prompt_tokens BIGINT NOT NULL DEFAULT 0,"
    "  completion_tokens BIGINT NOT NULL DEFAULT 0,"
    "  queue_ms DOUBLE PRECISION,"
    "  ttft_ms DOUBLE PRECISION,"
    "  latency_ms DOUBLE PRECISION NOT NULL,"
    "  tokens_per_s DOUBLE PRECISION,"
    "  cost_microusd BIGINT,"
    "  streamed BOOLEAN NOT NULL,"
    "  attempts INTEGER NOT NULL"
    ");"
    "CREATE INDEX requests_ts ON requests(ts_ms);"
    "CREATE INDEX requests_backend_ts ON requests(backend, ts_ms);"
    "CREATE INDEX requests_model_ts ON requests(model, ts_ms);"
    "CREATE INDEX requests_key_ts ON requests(key_id, ts_ms);",

    /* 2: cache-write tokens, and the text of requests when content logging is on. */
    "ALTER TABLE requests ADD COLUMN cache_write_tokens BIGINT NOT NULL DEFAULT 0;"
    "CREATE TABLE request_content ("
    "  id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    "  request_id TEXT COLLATE \"C\" NOT NULL,"
    "  ts_ms BIGINT NOT NULL,"
    "  prompt_json TEXT NOT NULL,"
    "  completion_text TEXT NOT NULL"
    ");"
    "CREATE INDEX request_content_request_id ON request_content(request_id);"
    "CREATE INDEX request_content_ts ON request_content(ts_ms);",
};

#define SCHEMA_VERSION ((int)SB_ARRAY_LEN(migrations))
/* The advisory lock instances take to migrate: one key for every Switchboard ledger ("SBLEDGER"
 * in ASCII), held until the migrating transaction ends. */
#define MIGRATE_LOCK "6001217730305263954"
/* Rows per INSERT: a group is written in statements of 64, 32, ..., 1 rows, each prepared once
 * per connection, so a group of n rows takes at most n / 64 + 6 statements. */
#define CHUNK_LOG2 6
#define CHUNK_MAX  (1u << CHUNK_LOG2)
/* Backoff between reconnects after a failed one. */
#define RECONNECT_MIN_MS 100u
#define RECONNECT_MAX_MS 5000u
/* Rows a report's cursor fetches at a time. */
#define FETCH_ROWS 512
#define STR_(x)    #x
#define STR(x)     STR_(x)
/* Text of one parameter that is not a text column: an int64 or a %.17g double, with room. */
#define NUM_TEXT 32
/* Messages: the redacted URL, and libpq's text. */
#define SHOWN_MAX 512
#define MSG_MAX   512

/* What a connection carries besides the URL. libpq lets a later entry override an earlier one,
 * so the URL (the dbname entry, expanded) overrides the defaults before it but not
 * client_encoding, which the store needs: its texts are UTF-8. */
static const struct {
    const char *key;
    const char *value; /* NULL: the URL */
} conn_params[] = {
    {"connect_timeout", "10"},           /* seconds; libpq waits as long as TCP does */
    {"application_name", "switchboard"}, /* in pg_stat_activity */
    {"keepalives_idle", "30"},           /* a server gone silent is noticed within a minute */
    {"keepalives_interval", "10"},       {"keepalives_count", "3"}, {"dbname", NULL},
    {"client_encoding", "UTF8"},
};

/* The URL's password, to keep out of messages: as libpq decodes it, and as written in the URL
 * (they differ when it is percent-encoded). */
struct secrets {
    char *decoded, *raw;
};

struct sb__ledger_store {
    char *target; /* the URL, password included: given to libpq only */
    char shown[SHOWN_MAX];
    struct secrets secrets;
    size_t n_cols;  /* sb__ledger_columns */
    size_t row_len; /* bytes of parameter text one row needs */

    /* The writer's: used by open, then only by the writer thread, then by close. */
    PGconn *conn;
    unsigned prepared;    /* bit k: "sb_rows_<2^k>" is prepared on conn; CONTENT_BIT: content */
    uint64_t retry_at_ns; /* after a failed reconnect, none is tried before this */
    uint32_t backoff_ms;  /* the wait after the next failed reconnect */
    char *text;           /* parameter text for CHUNK_MAX rows */
    const char **params;  /* CHUNK_MAX * n_cols pointers into text (NULL = SQL NULL) */

    pthread_mutex_t count_lock;
    PGconn *count_conn; /* under count_lock; NULL until the first count */
};

#define CONTENT_BIT (1u << (CHUNK_LOG2 + 1))

/* ---------------------------------------------------------------------------------------------
 * Connections and messages
 * ------------------------------------------------------------------------------------------- */
/* libpq prints notices ("relation ... already exists, skipping") on stderr by default. */
static void quiet(void *arg, const char *message)
{
    SB_UNUSED(arg);
    SB_UNUSED(message);
}

/* A connection to target; NULL only when out of memory. Check PQstatus. */
static PGconn *connect_to(const char *target)
{
    const char *keys[SB_ARRAY_LEN(conn_params) + 1], *values[SB_ARRAY_LEN(conn_params) + 1];
    for (size_t i = 0; i < SB_ARRAY_LEN(conn_params); i++) {
        keys[i] = conn_params[i].key;
        values[i] = conn_params[i].value != NULL ? conn_params[i].value : target;
    }
    keys[SB_ARRAY_LEN(conn_params)] = values[SB_ARRAY_LEN(conn_params)] = NULL;
    PGconn *conn = PQconnectdbParams(keys, values, 1);
    if (conn != NULL)
        PQsetNoticeProcessor(conn, quiet, NULL);
    return conn;
}

static bool connected(PGconn *conn)
{
    return conn != NULL && PQstatus(conn) == CONNECTION_OK;
}

/* Copies msg into out on one line (libpq's are several, indented) without the password: scrubbed
 * whole before it is cut, so that no cut leaves a piece of the password. */
static void clean_message(const struct secrets *s, const char *msg, char *out, size_t out_size)
{
    /* Each scrub may triple the length (a one-byte password becomes "***"); there are two. */
    size_t room = 9 * strlen(msg) + 64;
    char *full = malloc(room);
    if (full == NULL) {
        snprintf(out, out_size, "(libpq's message left out: out of memory)");
        return;
    }
    snprintf(full, room, "%s", msg);
    sb_redact_secret(full, room, s->decoded);
    sb_redact_secret(full, room, s->raw);
    size_t n = 0;
    bool space = false;
    for (const char *p = full; *p != '\0' && n + 1 < out_size; p++) {
        if (*p == '\n' || *p == '\r' || *p == '\t' || *p == ' ') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < out_size)
            out[n++] = ' ';
        space = false;
        out[n++] = *p;
    }
    out[n] = '\0';
    free(full);
}

/* Writes "ledger URL: what: libpq's message (hint)" into err; returns SB_EIO. */
static int fail_msg(const char *shown, const struct secrets *s, const char *what, const char *msg,
                    const char *hint, char *err, size_t err_size)
{
    char clean[MSG_MAX];
    clean_message(s, msg != NULL ? msg : "out of memory", clean, sizeof clean);
    if (err != NULL && err_size > 0)
        snprintf(err, err_size, "ledger %s: %s: %s%s%s%s", shown, what, clean,
                 hint != NULL ? " (" : "", hint != NULL ? hint : "", hint != NULL ? ")" : "");
    return SB_EIO;
}

static int fail_with(const struct sb__ledger_store *st, const char *what, const char *msg,
                     char *err, size_t err_size)
{
    return fail_msg(st->shown, &st->secrets, what, msg, NULL, err, err_size);
}

static const char connect_hint[] =
    "check that the server is up and reachable, and the URL's user, password and database";

/* Reads the password out of target into s (both NULL when it has none). Returns 0, SB_EINVAL with
 * libpq's reason in err (a URL it cannot parse), or SB_ENOMEM. */
static int secrets_init(struct secrets *s, const char *target, char *why, size_t why_size)
{
    char *errmsg = NULL;
    memset(s, 0, sizeof *s);
    PQconninfoOption *opts = PQconninfoParse(target, &errmsg);
    if (opts == NULL) {
        snprintf(why, why_size, "%s", errmsg != NULL ? errmsg : "out of memory");
        PQfreemem(errmsg);
        return errmsg != NULL ? SB_EINVAL : SB_ENOMEM;
    }
    int rc = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL && rc == 0; o++)
        if (strcmp(o->keyword, "password") == 0 && o->val != NULL && o->val[0] != '\0' &&
            (s->decoded = strdup(o->val)) == NULL)
            rc = SB_ENOMEM;
    PQconninfoFree(opts);
    /* As written: between "user:" and the '@' that ends the user information. */
    const char *auth = strstr(target, "://");
    if (rc == 0 && auth != NULL) {
        auth += 3;
        size_t len = strcspn(auth, "@/");
        const char *colon = memchr(auth, ':', len);
        if (auth[len] == '@' && colon != NULL && colon + 1 < auth + len &&
            (s->raw = strndup(colon + 1, (size_t)(auth + len - colon - 1))) == NULL)
            rc = SB_ENOMEM;
    }
    return rc;
}

static void secrets_free(struct secrets *s)
{
    free(s->decoded);
    free(s->raw);
}

/* Runs sql (no parameters); 0 when it succeeded, else SB_EIO with the message in err (when not
 * NULL). */
static int exec(const struct sb__ledger_store *st, PGconn *conn, const char *sql, const char *what,
                char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, sql);
    ExecStatusType s = PQresultStatus(res);
    int rc = 0;
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        rc = fail_with(st, what, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                       err, err_size);
    PQclear(res);
    return rc;
}

/* Runs sql, which returns one integer (NULL, or no row: 0), into *out. */
static int query_int(const struct sb__ledger_store *st, PGconn *conn, const char *sql,
                     const char *what, int64_t *out, char *err, size_t err_size)
{
    PGresult *res = PQexec(conn, sql);
    int rc = 0;
    *out = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        rc = fail_with(st, what, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(conn),
                       err, err_size);
    else if (PQntuples(res) > 0 && !PQgetisnull(res, 0, 0))
        *out = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Opening, migrating, closing
 * ------------------------------------------------------------------------------------------- */
/* Brings the schema to SCHEMA_VERSION in one transaction, holding the migration lock: instances
 * that start together wait for each other, and only the first finds anything to do. */
static int migrate(struct sb__ledger_store *st, char *err, size_t err_size)
{
    PGconn *db = st->conn;
    int64_t version = 0;
    char what[96];
    if (exec(st, db, "BEGIN", "cannot begin a transaction", err, err_size) != 0)
        return SB_EIO;
    if (exec(st, db, "SELECT pg_advisory_xact_lock(" MIGRATE_LOCK ")",
             "cannot take the migration lock", err, err_size) != 0 ||
        exec(
            st, db, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
            "cannot create the schema_version table (may the user create tables in this database?)",
            err, err_size) != 0 ||
        query_int(st, db, "SELECT max(version) FROM schema_version",
                  "cannot read the schema version", &version, err, err_size) != 0)
        goto fail;
    if (version > SCHEMA_VERSION) {
        snprintf(err, err_size,
                 "ledger %s: schema version %lld is newer than this build's %d; use a newer "
                 "switchboard or another ledger.path",
                 st->shown, (long long)version, SCHEMA_VERSION);
        goto fail;
    }
    for (int64_t v = version; v < SCHEMA_VERSION; v++) {
        snprintf(what, sizeof what, "migration to schema version %lld failed", (long long)v + 1);
        if (exec(st, db, migrations[v], what, err, err_size) != 0)
            goto fail;
    }
    if (version < SCHEMA_VERSION) {
        char sql[128];
        snprintf(sql, sizeof sql,
                 "DELETE FROM schema_version; INSERT INTO schema_version VALUES (%d)",
                 SCHEMA_VERSION);
        if (exec(st, db, sql, "cannot record the schema version", err, err_size) != 0)
            goto fail;
    }
    if (exec(st, db, "COMMIT", "cannot commit the schema", err, err_size) != 0)
        goto fail;
    return 0;

fail:
    exec(st, db, "ROLLBACK", "", NULL, 0);
    return SB_EIO;
}

/* Bytes of parameter text one row takes: each text column whole plus its NUL, each number
 * NUM_TEXT. */
static size_t row_text_len(void)
{
    size_t n = 0, len = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    for (size_t i = 0; i < n; i++)
        len += cols[i].type == SB__COL_TEXT ? cols[i].size + 1 : NUM_TEXT;
    return len;
}

static void store_close(struct sb__ledger_store *st)
{
    if (st == NULL)
        return;
    PQfinish(st->conn);
    PQfinish(st->count_conn);
    pthread_mutex_destroy(&st->count_lock);
    secrets_free(&st->secrets);
    free(st->params);
    free(st->text);
    free(st->target);
    free(st);
}

static int store_open(const char *target, struct sb__ledger_store **out, char *err, size_t err_size)
{
    char why[MSG_MAX] = "";
    *out = NULL;
    struct sb__ledger_store *st = calloc(1, sizeof *st);
    if (st == NULL || pthread_mutex_init(&st->count_lock, NULL) != 0) {
        free(st);
        snprintf(err, err_size, "ledger: out of memory");
        return SB_ENOMEM;
    }
    sb_redact_url(target, st->shown, sizeof st->shown);
    sb__ledger_columns(&st->n_cols);
    st->row_len = row_text_len();
    st->backoff_ms = RECONNECT_MIN_MS;
    int rc = secrets_init(&st->secrets, target, why, sizeof why);
    if (rc == SB_EINVAL) {
        fail_msg(st->shown, &st->secrets, "not a PostgreSQL URL libpq accepts", why,
                 "write it as postgres://user:password@host:port/database", err, err_size);
        goto fail;
    }
    st->target = strdup(target);
    st->text = malloc(CHUNK_MAX * st->row_len);
    st->params = calloc(CHUNK_MAX * st->n_cols, sizeof *st->params);
    if (rc != 0 || st->target == NULL || st->text == NULL || st->params == NULL) {
        snprintf(err, err_size, "ledger %s: out of memory", st->shown);
        rc = SB_ENOMEM;
        goto fail;
    }
    st->conn = connect_to(target);
    if (!connected(st->conn)) {
        fail_msg(st->shown, &st->secrets, "cannot connect to PostgreSQL", PQerrorMessage(st->conn),
                 connect_hint, err, err_size);
        rc = SB_EIO;
        goto fail;
    }
    rc = migrate(st, err, err_size);
    if (rc != 0)
        goto fail;
    *out = st;
    return 0;

fail:
    store_close(st);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Writing
 * ------------------------------------------------------------------------------------------- */
static void disconnect(struct sb__ledger_store *st)
{
    PQfinish(st->conn);
    st->conn = NULL;
    st->prepared = 0;
}

/* Makes sure the writer has a connection, reconnecting when the backoff allows. */
static int ensure_connected(struct sb__ledger_store *st, char *err, size_t err_size)
{
    if (connected(st->conn))
        return 0;
    uint64_t now = sb_now_ns();
    if (now < st->retry_at_ns) {
        snprintf(err, err_size, "ledger %s: not connected to PostgreSQL (trying again in %llu ms)",
                 st->shown, (unsigned long long)((st->retry_at_ns - now) / 1000000u + 1));
        return SB_EIO;
    }
    disconnect(st);
    st->conn = connect_to(st->target);
    if (!connected(st->conn)) {
        fail_msg(st->shown, &st->secrets, "cannot reconnect to PostgreSQL",
                 PQerrorMessage(st->conn), connect_hint, err, err_size);
        disconnect(st);
        st->retry_at_ns = now + (uint64_t)st->backoff_ms * 1000000u;
        st->backoff_ms = SB_MIN(st->backoff_ms * 2, RECONNECT_MAX_MS);
        return SB_EIO;
    }
    st->retry_at_ns = 0;
    st->backoff_ms = RECONNECT_MIN_MS;
    sb_log(SB_LOG_INFO, NULL, "ledger %s: connected to PostgreSQL again", st->shown);
    return 0;
}

/* Prepares "INSERT INTO requests (columns) VALUES (...), ..." for 2^k rows as sb_rows_<2^k>. */
static int prepare_rows(struct sb__ledger_store *st, unsigned k, const char *name, char *err,
                        size_t err_size)
{
    if (st->prepared & (1u << k))
        return 0;
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    struct sb_buf sql;
    sb_buf_init(&sql, 1 << 20);
    int rc = sb_buf_append_c(&sql, "INSERT INTO requests (");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = sb_buf_printf(&sql, "%s%s", i > 0 ? ", " : "", cols[i].name);
    if (rc == 0)
        rc = sb_buf_append_c(&sql, ") VALUES ");
    size_t param = 1;
    for (size_t r = 0; r < (1u << k) && rc == 0; r++) {
        rc = sb_buf_append_c(&sql, r > 0 ? ", (" : "(");
        for (size_t i = 0; i < n && rc == 0; i++)
            rc = sb_buf_printf(&sql, "%s$%zu", i > 0 ? ", " : "", param++);
        if (rc == 0)
            rc = sb_buf_append_char(&sql, ')');
    }
    if (rc != 0) {
        sb_buf_free(&sql);
        snprintf(err, err_size, "ledger %s: out of memory", st->shown);
        return SB_ENOMEM;
    }
    PGresult *res = PQprepare(st->conn, name, sql.p, (int)(param - 1), NULL);
    sb_buf_free(&sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fail_with(st, "cannot prepare the INSERT",
                       res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn), err,
                       err_size);
    else
        st->prepared |= 1u << k;
    PQclear(res);
    return rc;
}

/* Copies the text field f (of size bytes, NUL-terminated or cut at size) into out as valid
 * UTF-8, each bad byte a '?' (PostgreSQL refuses the whole statement over one). Returns the
 * bytes written with the NUL. */
static size_t copy_text(char *out, const char *f, size_t size)
{
    size_t len = strnlen(f, size), o = 0;
    for (size_t i = 0; i < len;) {
        size_t cl = sb__ledger_utf8_char((const unsigned char *)f + i, len - i);
        if (cl == 0) {
            out[o++] = '?';
            i++;
            continue;
        }
        memcpy(out + o, f + i, cl);
        o += cl;
        i += cl;
    }
    out[o] = '\0';
    return o + 1;
}

/* Fills params[0..n_cols) for row, their text in text (st->row_len bytes). */
static void row_params(const struct sb_ledger_row *row, char *text, const char **params)
{
    size_t n = 0;
    const struct sb__ledger_column *cols = sb__ledger_columns(&n);
    const char *base = (const char *)row;
    for (size_t i = 0; i < n; i++) {
        const struct sb__ledger_column *c = &cols[i];
        const char *field = base + c->offset;
        int32_t i32;
        int64_t i64;
        double d;
        bool b;
        enum sb_api api;
        params[i] = text;
        switch (c->type) {
        case SB__COL_TEXT: text += copy_text(text, field, c->size); continue;
        case SB__COL_INT32:
            memcpy(&i32, field, sizeof i32);
            snprintf(text, NUM_TEXT, "%" PRId32, i32);
            break;
        case SB__COL_INT64:
        case SB__COL_INT64_OPT:
            memcpy(&i64, field, sizeof i64);
            if (c->type == SB__COL_INT64_OPT && i64 < 0)
                params[i] = NULL;
            snprintf(text, NUM_TEXT, "%" PRId64, i64);
            break;
        case SB__COL_REAL:
        case SB__COL_REAL_OPT:
            memcpy(&d, field, sizeof d);
            if (c->type == SB__COL_REAL_OPT && !(d >= 0))
                params[i] = NULL;
            /* %.17g reads back as the same double. */
            snprintf(text, NUM_TEXT, "%.17g", isfinite(d) ? d : 0);
            break;
        case SB__COL_BOOL:
            memcpy(&b, field, sizeof b);
            snprintf(text, NUM_TEXT, "%s", b ? "true" : "false");
            break;
        case SB__COL_API:
            memcpy(&api, field, sizeof api);
            snprintf(text, NUM_TEXT, "%s", sb_ledger_api_name(api));
            break;
        }
        text += NUM_TEXT;
    }
}

/* Runs a prepared statement that returns no rows. */
static int run_prepared(struct sb__ledger_store *st, const char *name, int n,
                        const char *const *params, const char *what, char *err, size_t err_size)
{
    PGresult *res = PQexecPrepared(st->conn, name, n, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fail_with(st, what, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn),
                       err, err_size);
    PQclear(res);
    return rc;
}

/* Inserts items[0..2^k) in one statement. */
static int insert_rows(struct sb__ledger_store *st, const struct sb__ledger_item *const *items,
                       unsigned k, char *err, size_t err_size)
{
    char name[32];
    snprintf(name, sizeof name, "sb_rows_%u", 1u << k);
    int rc = prepare_rows(st, k, name, err, err_size);
    if (rc != 0)
        return rc;
    for (size_t r = 0; r < (1u << k); r++)
        row_params(&items[r]->row, st->text + r * st->row_len, st->params + r * st->n_cols);
    return run_prepared(st, name, (int)((1u << k) * st->n_cols), st->params, "cannot insert rows",
                        err, err_size);
}

/* Inserts the text of item (which has some). */
static int insert_content(struct sb__ledger_store *st, const struct sb__ledger_item *item,
                          char *err, size_t err_size)
{
    if (!(st->prepared & CONTENT_BIT)) {
        PGresult *res = PQprepare(st->conn, "sb_content",
                                  "INSERT INTO request_content (request_id, ts_ms, prompt_json, "
                                  "completion_text) VALUES ($1, $2, $3, $4)",
                                  4, NULL);
        int rc = 0;
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = fail_with(st, "cannot prepare the content INSERT",
                           res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn), err,
                           err_size);
        PQclear(res);
        if (rc != 0)
            return rc;
        st->prepared |= CONTENT_BIT;
    }
    char id[sizeof item->row.request_id + 1], ts[NUM_TEXT];
    copy_text(id, item->row.request_id, sizeof item->row.request_id);
    snprintf(ts, sizeof ts, "%" PRId64, item->row.ts_ms);
    const char *const params[] = {id, ts, item->content->prompt_json, item->content->completion};
    return run_prepared(st, "sb_content", 4, params, "cannot insert a request's text", err,
                        err_size);
}

/* Begins the group's transaction, replacing a connection found broken once: nothing was sent on
 * it yet, so a server restarted since the last group costs nothing. */
static int begin(struct sb__ledger_store *st, char *err, size_t err_size)
{
    int rc = ensure_connected(st, err, err_size);
    if (rc == 0)
        rc = exec(st, st->conn, "BEGIN", "cannot begin a transaction", err, err_size);
    if (rc != 0 && st->conn != NULL && !connected(st->conn)) {
        disconnect(st);
        st->retry_at_ns = 0;
        rc = ensure_connected(st, err, err_size);
        if (rc == 0)
            rc = exec(st, st->conn, "BEGIN", "cannot begin a transaction", err, err_size);
    }
    return rc;
}

/* After a failed statement: rolls back, or drops a broken connection for the next group. */
static void abandon(struct sb__ledger_store *st)
{
    if (connected(st->conn) && PQtransactionStatus(st->conn) != PQTRANS_IDLE)
        exec(st, st->conn, "ROLLBACK", "", NULL, 0);
    if (!connected(st->conn))
        disconnect(st);
}

static int store_write_batch(struct sb__ledger_store *st,
                             const struct sb__ledger_item *const *items, size_t n, char *err,
                             size_t err_size)
{
    int rc = begin(st, err, err_size);
    if (rc != 0) {
        abandon(st);
        return SB_EIO;
    }
    for (size_t done = 0; done < n && rc == 0;) {
        unsigned k = CHUNK_LOG2;
        while ((1u << k) > n - done)
            k--;
        rc = insert_rows(st, items + done, k, err, err_size);
        done += 1u << k;
    }
    for (size_t i = 0; i < n && rc == 0; i++)
        if (items[i]->content != NULL)
            rc = insert_content(st, items[i], err, err_size);
    if (rc == 0)
        rc = exec(st, st->conn, "COMMIT", "cannot commit", err, err_size);
    if (rc != 0) {
        abandon(st);
        return rc == SB_ENOMEM ? SB_ENOMEM : SB_EIO;
    }
    return 0;
}

/* Runs a purge statement ($1 before, $2 limit); *changed receives the rows it deleted. */
static int purge_step(struct sb__ledger_store *st, const char *sql, const char *const *params,
                      int64_t *changed, char *err, size_t err_size)
{
    PGresult *res = PQexecParams(st->conn, sql, 2, NULL, params, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = fail_with(st, "cannot delete old rows",
                       res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(st->conn), err,
                       err_size);
    else
        *changed = strtoll(PQcmdTuples(res), NULL, 10);
    PQclear(res);
    return rc;
}

static int store_purge(struct sb__ledger_store *st, int64_t before_ms, int64_t limit,
                       int64_t *deleted, char *err, size_t err_size)
{
    char before[NUM_TEXT], lim[NUM_TEXT];
    snprintf(before, sizeof before, "%" PRId64, before_ms);
    snprintf(lim, sizeof lim, "%" PRId64, limit);
    const char *const params[] = {before, lim};
    int64_t rows = 0, texts = 0;
    *deleted = 0;
    int rc = begin(st, err, err_size);
    if (rc == 0)
        rc = purge_step(st,
                        "DELETE FROM requests WHERE id IN (SELECT id FROM requests "
                        "WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)",
                        params, &rows, err, err_size);
    if (rc == 0)
        rc = purge_step(st,
                        "DELETE FROM request_content WHERE id IN (SELECT id FROM "
                        "request_content WHERE ts_ms < $1 ORDER BY ts_ms LIMIT $2)",
                        params, &texts, err, err_size);
    if (rc == 0)
        rc = exec(st, st->conn, "COMMIT", "cannot commit the deletion of old rows", err, err_size);
    if (rc != 0) {
        abandon(st);
        return SB_EIO;
    }
    *deleted = rows;
    return 0;
}

static int store_count(struct sb__ledger_store *st, int64_t *out)
{
    int rc = SB_EIO;
    *out = 0;
    pthread_mutex_lock(&st->count_lock);
    if (!connected(st->count_conn)) {
        PQfinish(st->count_conn);
        st->count_conn = connect_to(st->target);
    }
    if (connected(st->count_conn))
        rc = query_int(st, st->count_conn, "SELECT count(*) FROM requests", "cannot count", out,
                       NULL, 0);
    pthread_mutex_unlock(&st->count_lock);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Reading: each query is a read-only transaction with a cursor, fetched FETCH_ROWS at a time, so
 * that a percentile over millions of rows neither holds them nor reads past the rank it needs.
 * ------------------------------------------------------------------------------------------- */
struct sb__ledger_cursor {
    struct sb__ledger_conn *c;
    PGresult *res; /* the current fetch */
    int row, n_rows;
    bool open; /* a query is running (its transaction is open) */
};

struct sb__ledger_conn {
    PGconn *pg;
    char shown[SHOWN_MAX];
    struct secrets secrets;
    char error[MSG_MAX]; /* the last error, cleaned */
    struct sb__ledger_cursor cur;
};

static void conn_close(struct sb__ledger_conn *c)
{
    if (c == NULL)
        return;
    PQclear(c->cur.res);
    PQfinish(c->pg);
    secrets_free(&c->secrets);
    free(c);
}

static const char *conn_error(struct sb__ledger_conn *c)
{
    if (c == NULL)
        return "out of memory";
    if (c->error[0] == '\0')
        clean_message(&c->secrets, c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory",
                      c->error, sizeof c->error);
    return c->error;
}

static int conn_open(const char *target, struct sb__ledger_conn **out, char *err, size_t err_size)
{
    char why[MSG_MAX] = "";
    *out = NULL;
    struct sb__ledger_conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, err_size, "ledger: out of memory");
        return SB_ENOMEM;
    }
    c->cur.c = c;
    sb_redact_url(target, c->shown, sizeof c->shown);
    int rc = secrets_init(&c->secrets, target, why, sizeof why);
    if (rc == SB_EINVAL) {
        fail_msg(c->shown, &c->secrets, "not a PostgreSQL URL libpq accepts", why,
                 "write it as postgres://user:password@host:port/database", err, err_size);
        conn_close(c);
        return SB_EIO;
    }
    if (rc != 0) {
        snprintf(err, err_size, "ledger %s: out of memory", c->shown);
        conn_close(c);
        return SB_ENOMEM;
    }
    c->pg = connect_to(target);
    if (!connected(c->pg)) {
        fail_msg(c->shown, &c->secrets, "cannot connect to PostgreSQL",
                 c->pg != NULL ? PQerrorMessage(c->pg) : NULL, connect_hint, err, err_size);
        conn_close(c);
        return SB_EIO;
    }
    *out = c;
    return 0;
}

/* Notes res's error (or the connection's) as the connection's last. */
static void note_error(struct sb__ledger_conn *c, const PGresult *res)
{
    clean_message(&c->secrets, res != NULL ? PQresultErrorMessage(res) : PQerrorMessage(c->pg),
                  c->error, sizeof c->error);
}

/* Runs sql without parameters, noting any error. Returns 0 or SB_EIO. */
static int conn_exec(struct sb__ledger_conn *c, const char *sql)
{
    PGresult *res = PQexec(c->pg, sql);
    int rc = PQresultStatus(res) == PGRES_COMMAND_OK ? 0 : SB_EIO;
    if (rc != 0)
        note_error(c, res);
    PQclear(res);
    return rc;
}

static int conn_query(struct sb__ledger_conn *c, const char *sql,
                      const struct sb__ledger_param *params, size_t n,
                      struct sb__ledger_cursor **out)
{
    /* Types given, so that a parameter the statement does not use is no error. */
    enum { INT8_OID = 20, TEXT_OID = 25 };
    *out = NULL;
    if (c->cur.open)
        return SB_ESTATE;
    c->error[0] = '\0';
    struct sb_buf decl;
    sb_buf_init(&decl, strlen(sql) + 64);
    Oid *types = calloc(n + 1, sizeof *types);
    const char **values = calloc(n + 1, sizeof *values);
    char(*nums)[NUM_TEXT] = calloc(n + 1, sizeof *nums);
    int rc = types != NULL && values != NULL && nums != NULL ? 0 : SB_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        types[i] = params[i].is_text ? TEXT_OID : INT8_OID;
        snprintf(nums[i], sizeof nums[i], "%" PRId64, params[i].i);
        values[i] = params[i].is_text ? params[i].s : nums[i];
    }
    if (rc == 0)
        rc = sb_buf_printf(&decl, "DECLARE sb_cursor NO SCROLL CURSOR FOR %s", sql);
    if (rc == 0)
        rc = conn_exec(c, "BEGIN READ ONLY");
    if (rc == 0) {
        PGresult *res = PQexecParams(c->pg, decl.p, (int)n, types, values, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            note_error(c, res);
            rc = SB_EIO;
        }
        PQclear(res);
        if (rc != 0)
            conn_exec(c, "ROLLBACK");
    }
    sb_buf_free(&decl);
    free(nums);
    free(values);
    free(types);
    if (rc != 0)
        return rc;
    c->cur = (struct sb__ledger_cursor){.c = c, .open = true};
    *out = &c->cur;
    return 0;
}

static int cursor_next(struct sb__ledger_cursor *cur)
{
    if (cur->row + 1 < cur->n_rows) {
        cur->row++;
        return 1;
    }
    /* The last fetch came short: the cursor is exhausted. */
    if (cur->res != NULL && cur->n_rows < FETCH_ROWS)
        return 0;
    PQclear(cur->res);
    cur->res = PQexec(cur->c->pg, "FETCH " STR(FETCH_ROWS) " FROM sb_cursor");
    if (PQresultStatus(cur->res) != PGRES_TUPLES_OK) {
        note_error(cur->c, cur->res);
        PQclear(cur->res);
        cur->res = NULL;
        cur->n_rows = 0;
        return SB_EIO;
    }
    cur->n_rows = PQntuples(cur->res);
    cur->row = 0;
    return cur->n_rows > 0 ? 1 : 0;
}

static int64_t cursor_int(struct sb__ledger_cursor *cur, int i)
{
    if (PQgetisnull(cur->res, cur->row, i))
        return 0;
    /* sum() of a BIGINT is a NUMERIC: whole numbers all the same. */
    return strtoll(PQgetvalue(cur->res, cur->row, i), NULL, 10);
}

static double cursor_real(struct sb__ledger_cursor *cur, int i)
{
    if (PQgetisnull(cur->res, cur->row, i))
        return 0;
    /* PostgreSQL 12 and later send the shortest text that reads back as the same double. */
    return strtod(PQgetvalue(cur->res, cur->row, i), NULL);
}

static struct sb_str cursor_text(struct sb__ledger_cursor *cur, int i)
{
    if (PQgetisnull(cur->res, cur->row, i))
        return SB_STR_LIT("");
    return (struct sb_str){PQgetvalue(cur->res, cur->row, i),
                           (size_t)PQgetlength(cur->res, cur->row, i)};
}

static void cursor_finish(struct sb__ledger_cursor *cur)
{
    if (cur == NULL || !cur->open)
        return;
    PQclear(cur->res);
    cur->res = NULL;
    cur->n_rows = 0;
    cur->open = false;
    /* Ends the read-only transaction, and the cursor with it. */
    struct sb__ledger_conn *c = cur->c;
    char keep[MSG_MAX];
    memcpy(keep, c->error, sizeof keep);
    conn_exec(c, "COMMIT");
    memcpy(c->error, keep, sizeof keep); /* a query's error outlives its cleanup */
}

const struct sb__ledger_store_ops sb__ledger_pg_ops = {
    .name = "postgresql",
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
