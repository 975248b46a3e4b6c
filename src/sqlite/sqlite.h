/* What every SQLite file of ours does the same way: run a statement, read one integer, write an
 * error line, and bring a schema up to date from a table of migrations. The ledger's SQLite store
 * and the key store (which lives in the ledger's file) both use it; each keeps its own version
 * table, so neither's migrations touch the other's.
 *
 * Thread-safety: none of its own; each call uses only the connection it is given. */
#ifndef SB_SQLITE_H
#define SB_SQLITE_H

#include "core/core.h"

/* sqlite3.h's connection type, so that this header does not pull sqlite3.h into its users. */
struct sqlite3;

/* Runs sql (one or more statements, no rows wanted) on db. Returns 0 or SB_EIO
 * (sqlite3_errmsg(db) says why). */
int sb_sqlite_exec(struct sqlite3 *db, const char *sql);

/* Runs sql, which returns one integer in its first row; no row gives *out = 0. Returns 0 or
 * SB_EIO (*out = 0). */
int sb_sqlite_query_int(struct sqlite3 *db, const char *sql, int64_t *out);

/* Writes "LABEL PATH: WHAT: sqlite's message" into err (when err is not NULL), or "out of memory"
 * for the message when db is NULL (sqlite3_open_v2 could not allocate one). Returns SB_EIO. */
int sb_sqlite_fail(struct sqlite3 *db, const char *label, const char *path, const char *what,
                   char *err, size_t err_size);

/* A schema: migration i takes it from version i to i + 1. A released migration is never edited:
 * a change is a new entry. Static, like the strings it points to. */
struct sb_sqlite_schema {
    const char *label;             /* messages start "LABEL PATH: ": "ledger", "keys" */
    const char *noun;              /* what it is called in messages: "schema", "keys' schema" */
    const char *table;             /* the version table (one INTEGER column, version), ours alone */
    const char *const *migrations; /* [n_migrations] */
    size_t n_migrations;
    const char *newer_hint; /* what to do when the file's version is newer than this build's */
};

/* Brings db (opened on path, which is only for messages) to version s->n_migrations, in one
 * immediate transaction with the version update, so two processes opening the same new file do
 * not both migrate it. Returns 0, or SB_EIO with a line in err and nothing changed (a version
 * newer than this build's is an error too). */
int sb_sqlite_migrate(struct sqlite3 *db, const char *path, const struct sb_sqlite_schema *s,
                      char *err, size_t err_size);

#endif
