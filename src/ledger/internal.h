/* The ledger module's private vocabulary: the column table every store binds rows from, the
 * interface a store implements, and hooks for tests. Nothing outside src/ledger (and its tests)
 * includes this. */
#ifndef SB_LEDGER_INTERNAL_H
#define SB_LEDGER_INTERNAL_H

#include "ledger/ledger.h"

/* ---------------------------------------------------------------------------------------------
 * Columns: one row per field of struct sb_ledger_row, in the order of the INSERT. The schema
 * (each store's migrations) must have a column of each name; a store builds its INSERT from this
 * table and binds a row by walking it, so a new field is a new row here plus a migration.
 * ------------------------------------------------------------------------------------------- */
enum sb__ledger_col_type {
    SB__COL_TEXT,      /* char[size], NUL-terminated or cut at size */
    SB__COL_INT32,     /* int32_t */
    SB__COL_INT64,     /* int64_t */
    SB__COL_INT64_OPT, /* int64_t; negative = unknown, stored as NULL */
    SB__COL_REAL,      /* double */
    SB__COL_REAL_OPT,  /* double; negative or NaN = unknown, stored as NULL */
    SB__COL_BOOL,      /* bool, stored as 0 or 1 */
    SB__COL_API,       /* enum sb_api, stored as its name */
};

struct sb__ledger_column {
    const char *name;              /* the SQL column */
    enum sb__ledger_col_type type; /* how the field binds */
    size_t offset;                 /* of the field in struct sb_ledger_row */
    size_t size;                   /* of that field */
};

/* The table (static) and its length. */
const struct sb__ledger_column *sb__ledger_columns(size_t *n);

/* ---------------------------------------------------------------------------------------------
 * Stores. Only the writer thread calls write_batch and purge, one at a time; count may be called
 * from any thread concurrently with them. Each returns 0 or a negative SB_E* code, with a
 * description in err where it takes one.
 * ------------------------------------------------------------------------------------------- */
struct sb__ledger_store;

struct sb__ledger_store_ops {
    const char *name; /* "sqlite", for messages */
    /* Opens target (a file path, or a URL for a server), creating and migrating the schema.
     * *out is the caller's to close. */
    int (*open)(const char *target, struct sb__ledger_store **out, char *err, size_t err_size);
    /* Writes rows[0..n) in one transaction: all of them or, on failure, none. */
    int (*write_batch)(struct sb__ledger_store *st, const struct sb_ledger_row *const *rows,
                       size_t n, char *err, size_t err_size);
    /* Deletes at most limit rows with ts_ms < before_ms (oldest first), in a transaction of its
     * own; *deleted receives how many. */
    int (*purge)(struct sb__ledger_store *st, int64_t before_ms, int64_t limit, int64_t *deleted,
                 char *err, size_t err_size);
    /* Counts every row, through a connection other than the writer's. Thread-safe. */
    int (*count)(struct sb__ledger_store *st, int64_t *out);
    /* Closes and frees st (NULL is allowed). */
    void (*close)(struct sb__ledger_store *st);
};

extern const struct sb__ledger_store_ops sb__ledger_sqlite_ops;

/* ---------------------------------------------------------------------------------------------
 * Test hooks
 * ------------------------------------------------------------------------------------------- */
/* While held, the writer takes no rows from the queue (so a test can fill it deterministically);
 * releasing wakes it. sb_ledger_close overrides a hold. */
void sb__ledger_hold(struct sb_ledger *l, bool hold);

#endif
