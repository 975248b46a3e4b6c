/* The SQLite helpers the ledger's SQLite store and the key store share (see sqlite.h). */
#include <sqlite3.h>
#include <stdio.h>

#include "sqlite/sqlite.h"

int sb_sqlite_exec(sqlite3 *db, const char *sql)
{
    return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : SB_EIO;
}

int sb_sqlite_query_int(sqlite3 *db, const char *sql, int64_t *out)
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

int sb_sqlite_fail(sqlite3 *db, const char *label, const char *path, const char *what, char *err,
                   size_t err_size)
{
    if (err != NULL && err_size > 0)
        snprintf(err, err_size, "%s %s: %s: %s", label, path, what,
                 db != NULL ? sqlite3_errmsg(db) : "out of memory");
    return SB_EIO;
}

int sb_sqlite_migrate(sqlite3 *db, const char *path, const struct sb_sqlite_schema *s, char *err,
                      size_t err_size)
{
    const int64_t latest = (int64_t)s->n_migrations;
    int64_t version = 0;
    char sql[160], what[128];

    snprintf(what, sizeof what, "cannot lock the database to check the %s", s->noun);
    if (sb_sqlite_exec(db, "BEGIN IMMEDIATE") != 0)
        return sb_sqlite_fail(db, s->label, path, what, err, err_size);
    snprintf(sql, sizeof sql, "CREATE TABLE IF NOT EXISTS %s (version INTEGER NOT NULL)", s->table);
    if (sb_sqlite_exec(db, sql) != 0) {
        snprintf(what, sizeof what, "cannot read the %s version", s->noun);
        goto fail_sqlite;
    }
    snprintf(sql, sizeof sql, "SELECT max(version) FROM %s", s->table);
    if (sb_sqlite_query_int(db, sql, &version) != 0) {
        snprintf(what, sizeof what, "cannot read the %s version", s->noun);
        goto fail_sqlite;
    }
    if (version > latest) {
        snprintf(err, err_size, "%s %s: the %s version %lld is newer than this build's %lld; %s",
                 s->label, path, s->noun, (long long)version, (long long)latest, s->newer_hint);
        goto fail;
    }
    for (int64_t v = version; v < latest; v++) {
        if (sb_sqlite_exec(db, s->migrations[v]) != 0) {
            snprintf(what, sizeof what, "migration to %s version %lld failed", s->noun,
                     (long long)v + 1);
            goto fail_sqlite;
        }
    }
    if (version < latest) {
        snprintf(sql, sizeof sql, "DELETE FROM %s; INSERT INTO %s VALUES (%lld)", s->table,
                 s->table, (long long)latest);
        if (sb_sqlite_exec(db, sql) != 0) {
            snprintf(what, sizeof what, "cannot record the %s version", s->noun);
            goto fail_sqlite;
        }
    }
    if (sb_sqlite_exec(db, "COMMIT") != 0) {
        snprintf(what, sizeof what, "cannot commit the %s", s->noun);
        goto fail_sqlite;
    }
    return 0;

fail_sqlite:
    sb_sqlite_fail(db, s->label, path, what, err, err_size);
fail:
    sb_sqlite_exec(db, "ROLLBACK");
    return SB_EIO;
}
