/* The ledger module's private vocabulary: the column table every store binds rows from, the queue
 * item a store writes, the interface a store implements (writing and reading), and hooks for
 * tests. Nothing outside src/ledger (and its tests) includes this. */
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
    SB__COL_BOOL,      /* bool, stored as 0 or 1 (SQLite) or a BOOLEAN (PostgreSQL) */
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
 * Queue items. Content (prompt and completion text) exists only when ledger.content_logging is
 * on; it goes to the request_content table in the same transaction as its row.
 * ------------------------------------------------------------------------------------------- */
/* One allocation: this header, then the prompt and the completion, each NUL-terminated (valid
 * UTF-8 without NUL bytes: sb_ledger_record_content makes it so). */
struct sb__ledger_content {
    const char *prompt_json; /* into the same block */
    size_t prompt_len;
    const char *completion; /* into the same block */
    size_t completion_len;
};

struct sb__ledger_item {
    struct sb_ledger_row row;
    struct sb__ledger_content
        *content; /* owned by the queue (freed after the write); NULL = none */
};

/* ---------------------------------------------------------------------------------------------
 * Stores. Only the writer thread calls write_batch and purge, one at a time; count may be called
 * from any thread concurrently with them. Each returns 0 or a negative SB_E* code, with a
 * description in err where it takes one; no message may hold a password (see sb_redact_url).
 *
 * Reading goes through a connection of its own (struct sb__ledger_conn) and cursors over SQL
 * that query.c writes once for every store: parameters are written $1, $2, ... (each store binds
 * them by number; a statement need not use them all), and the SQL sticks to what SQLite and
 * PostgreSQL both run the same way (count(*) FILTER (WHERE ...), LIKE, coalesce; text columns
 * compare bytewise in both: PostgreSQL's are declared COLLATE "C").
 * ------------------------------------------------------------------------------------------- */
struct sb__ledger_store;
struct sb__ledger_conn;
struct sb__ledger_cursor;

/* A query parameter: an integer or a text (borrowed for the call that takes it). */
struct sb__ledger_param {
    bool is_text;
    int64_t i;
    const char *s;
};

struct sb__ledger_store_ops {
    const char *name; /* "sqlite", "postgresql": for messages */
    /* Opens target (a file path, or a URL for a server), creating and migrating the schema.
     * *out is the caller's to close. */
    int (*open)(const char *target, struct sb__ledger_store **out, char *err, size_t err_size);
    /* Writes items[0..n) (rows, and the content of those that have some) in one transaction:
     * all of them or, on failure, none. */
    int (*write_batch)(struct sb__ledger_store *st, const struct sb__ledger_item *const *items,
                       size_t n, char *err, size_t err_size);
    /* Deletes at most limit rows with ts_ms < before_ms (oldest first), and as much content
     * older than before_ms, in a transaction of its own; *deleted receives how many rows. */
    int (*purge)(struct sb__ledger_store *st, int64_t before_ms, int64_t limit, int64_t *deleted,
                 char *err, size_t err_size);
    /* Counts every row, through a connection other than the writer's. Thread-safe. */
    int (*count)(struct sb__ledger_store *st, int64_t *out);
    /* Closes and frees st (NULL is allowed). */
    void (*close)(struct sb__ledger_store *st);

    /* Opens a connection to target for reading (read-only as far as the store allows); query.c
     * then checks that it holds a ledger. On failure *out is NULL, err says why and what to do,
     * and the result is SB_EIO or SB_ENOMEM. */
    int (*conn_open)(const char *target, struct sb__ledger_conn **out, char *err, size_t err_size);
    /* Closes c (NULL is allowed); a cursor still open on it must be closed first. */
    void (*conn_close)(struct sb__ledger_conn *c);
    /* The last error on c, or a static text; valid until c's next call. Never NULL. */
    const char *(*conn_error)(struct sb__ledger_conn *c);
    /* Runs sql with params[0..n) ($1 is params[0]); *out reads its rows, one cursor per
     * connection at a time (SB_ESTATE while another is open). Returns 0, SB_EIO or
     * SB_ENOMEM. */
    int (*query)(struct sb__ledger_conn *c, const char *sql, const struct sb__ledger_param *params,
                 size_t n, struct sb__ledger_cursor **out);
    /* Moves to the next row: 1 when there is one, 0 at the end, SB_EIO on an error. */
    int (*next)(struct sb__ledger_cursor *cur);
    /* Column i of the current row: an integer (0 for NULL), a number (0 for NULL), or a text
     * (empty for NULL) valid until the next call on cur. */
    int64_t (*col_int)(struct sb__ledger_cursor *cur, int i);
    double (*col_real)(struct sb__ledger_cursor *cur, int i);
    struct sb_str (*col_text)(struct sb__ledger_cursor *cur, int i);
    /* Ends the query and frees cur (NULL is allowed). */
    void (*finish)(struct sb__ledger_cursor *cur);
};

extern const struct sb__ledger_store_ops sb__ledger_sqlite_ops;
extern const struct sb__ledger_store_ops sb__ledger_pg_ops;

/* The store that serves target: PostgreSQL for postgres:// and postgresql:// URLs, SQLite for
 * anything else (a file path). Static. */
const struct sb__ledger_store_ops *sb__ledger_store_for(const char *target);

/* The length of the valid UTF-8 character other than NUL that starts s[0..n) (n > 0), or 0 when
 * the bytes are not one (a stray or truncated sequence, an overlong form, a surrogate). */
size_t sb__ledger_utf8_char(const unsigned char *s, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Test hooks
 * ------------------------------------------------------------------------------------------- */
/* While held, the writer takes no rows from the queue (so a test can fill it deterministically);
 * releasing wakes it. sb_ledger_close overrides a hold. */
void sb__ledger_hold(struct sb_ledger *l, bool hold);

#endif
