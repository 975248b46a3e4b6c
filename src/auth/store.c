/* The key store: one SQLite table of keys (hashes, never secrets) beside the ledger's tables, its
 * own schema version, and a change counter that lets a running server notice `keys create` and
 * `keys revoke` from another process without reading the table on every poll. */
#include <openssl/evp.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "auth/auth.h"
#include "sqlite/sqlite.h"

/* ---------------------------------------------------------------------------------------------
 * Schema. Migration i takes the keys' schema from version i to i + 1, in one transaction with the
 * version update; a released migration is never edited. api_keys_schema is ours alone: the
 * ledger's schema_version is not touched.
 * ------------------------------------------------------------------------------------------- */
static const char *const migrations[] = {
    /* 1: the keys, one active key per name (a revoked key's name may be used again), and the
     * change counter every write bumps. */
    "CREATE TABLE IF NOT EXISTS api_keys ("
    "  id TEXT PRIMARY KEY," /* key_..., public */
    "  name TEXT NOT NULL,"
    "  team TEXT NOT NULL DEFAULT '',"
    "  secret_sha256 BLOB NOT NULL UNIQUE," /* SHA-256 of the whole secret */
    "  prefix TEXT NOT NULL,"               /* the secret's first characters, for lists */
    "  budget_microusd INTEGER,"            /* NULL = no budget of its own */
    "  budget_period TEXT NOT NULL DEFAULT 'month',"
    "  models TEXT NOT NULL DEFAULT '',"          /* comma-separated; '' = every model */
    "  max_sensitivity TEXT NOT NULL DEFAULT ''," /* '' = any */
    "  rpm INTEGER NOT NULL DEFAULT 0,"
    "  tpm INTEGER NOT NULL DEFAULT 0,"
    "  created_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER" /* NULL = active */
    ");"
    "CREATE UNIQUE INDEX IF NOT EXISTS api_keys_active_name ON api_keys(name) "
    "  WHERE revoked_ms IS NULL;"
    "CREATE TABLE IF NOT EXISTS api_keys_changes (n INTEGER NOT NULL);"
    "INSERT INTO api_keys_changes SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM api_keys_changes);",
};

/* How long a statement waits for another connection's lock (the ledger's writer, a CLI). */
#define BUSY_TIMEOUT_MS 5000

static const char columns[] =
    "id, name, team, secret_sha256, prefix, budget_microusd, budget_period, models, "
    "max_sensitivity, rpm, tpm, created_ms, revoked_ms";

struct sb_auth_store {
    char *path;
    sqlite3 *db;
    int64_t data_version; /* the latest PRAGMA data_version seen; -1 = none yet */
    int64_t changes;      /* the latest api_keys_changes.n seen; -1 = none yet */
};

static int fail(const struct sb_auth_store *st, const char *what, char *err, size_t err_size)
{
    return sb_sqlite_fail(st->db, "keys", st->path, what, err, err_size);
}

static const struct sb_sqlite_schema schema = {
    .label = "keys",
    .noun = "keys' schema",
    .table = "api_keys_schema",
    .migrations = migrations,
    .n_migrations = SB_ARRAY_LEN(migrations),
    .newer_hint = "use a newer switchboard",
};

int sb_auth_store_open(const char *path, struct sb_auth_store **out, char *err, size_t err_size)
{
    struct sb_auth_store *st = calloc(1, sizeof(*st));
    int rc;

    *out = NULL;
    if (st == NULL || (st->path = strdup(path)) == NULL) {
        free(st);
        snprintf(err, err_size, "keys %s: out of memory", path);
        return SB_ENOMEM;
    }
    st->data_version = -1;
    st->changes = -1;
    if (sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL) !=
        SQLITE_OK) {
        rc = fail(st, "cannot open the key store (does its folder exist?)", err, err_size);
        goto fail;
    }
    sqlite3_busy_timeout(st->db, BUSY_TIMEOUT_MS);
    /* WAL, as the ledger sets it: readers (the server's refresher) never wait for a writer. */
    if (sb_sqlite_exec(st->db, "PRAGMA journal_mode=WAL") != 0) {
        rc = fail(st, "not a SQLite database, or it cannot be written", err, err_size);
        goto fail;
    }
    rc = sb_sqlite_migrate(st->db, st->path, &schema, err, err_size);
    if (rc != 0)
        goto fail;
    *out = st;
    return 0;
fail:
    sb_auth_store_close(st);
    return rc;
}

const char *sb_auth_store_path(const struct sb_config *cfg, char *err, size_t err_size)
{
    const char *store = cfg->auth.store;
    const char *ledger = cfg->ledger.path;

    if (store != NULL && store[0] != '\0')
        return store;
    if (ledger == NULL || ledger[0] == '\0') {
        snprintf(err, err_size,
                 "keys are stored in the ledger's file, but ledger.path is \"\" (no ledger); set "
                 "auth.store to a SQLite file");
        return NULL;
    }
    if (strstr(ledger, "://") != NULL) {
        snprintf(err, err_size,
                 "keys are stored in a SQLite file and ledger.path is a server URL; set "
                 "auth.store to a SQLite file");
        return NULL;
    }
    return ledger;
}

void sb_auth_store_close(struct sb_auth_store *st)
{
    if (st == NULL)
        return;
    sqlite3_close(st->db);
    free(st->path);
    free(st);
}

/* ---------------------------------------------------------------------------------------------
 * Secrets
 * ------------------------------------------------------------------------------------------- */
static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* n characters of base 62 from the OS's CSPRNG into out, unbiased: bytes of 248 and above (a
 * multiple of 62 is 248) are thrown away. Returns 0 or SB_EIO. */
static int random_base62(char *out, size_t n)
{
    unsigned char pool[64];
    size_t have = 0, used = 0;

    for (size_t i = 0; i < n;) {
        if (used == have) {
            ssize_t got = getrandom(pool, sizeof(pool), 0);
            if (got <= 0)
                return SB_EIO;
            have = (size_t)got;
            used = 0;
        }
        unsigned char b = pool[used++];
        if (b < 248)
            out[i++] = base62[b % 62];
    }
    return 0;
}

static int sha256(const char *s, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    return EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) == 1 && n == 32 ? 0 : SB_EIO;
}

/* ---------------------------------------------------------------------------------------------
 * Validation
 * ------------------------------------------------------------------------------------------- */
bool sb_auth_name_valid(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0;
    if (n == 0 || n > SB_AUTH_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* The model list normalized into out: names without the spaces around them, comma-separated, no
 * empty entries. Returns 0 or SB_EINVAL (too long, a control character). */
static int normalize_models(const char *in, char *out, size_t cap)
{
    size_t len = 0;
    const char *p = in != NULL ? in : "";

    out[0] = '\0';
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        const char *s = p;
        while (n > 0 && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                return SB_EINVAL;
        if (n > 0) {
            if (len + (len > 0) + n >= cap)
                return SB_EINVAL;
            if (len > 0)
                out[len++] = ',';
            memcpy(out + len, s, n);
            len += n;
            out[len] = '\0';
        }
        p = end != NULL ? end + 1 : p + strlen(p);
    }
    return 0;
}

bool sb_auth_key_allows_model(const struct sb_auth_key *k, struct sb_str model)
{
    const char *p = k->models;

    if (p[0] == '\0')
        return true;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t n = end != NULL ? (size_t)(end - p) : strlen(p);
        if (n == model.len && memcmp(p, model.p, n) == 0)
            return true;
        p += n + (end != NULL);
    }
    return false;
}

static int check_spec(const struct sb_auth_key_spec *spec, char *models, char *err, size_t err_size)
{
    if (!sb_auth_name_valid(spec->name)) {
        snprintf(err, err_size,
                 "the key's name must be 1 to %d letters, digits, '.', '_' or '-', got \"%.80s\"",
                 SB_AUTH_NAME_MAX, spec->name != NULL ? spec->name : "");
        return SB_EINVAL;
    }
    if (spec->team != NULL && spec->team[0] != '\0' && !sb_auth_name_valid(spec->team)) {
        snprintf(err, err_size,
                 "the team must be 1 to %d letters, digits, '.', '_' or '-', got \"%.80s\"",
                 SB_AUTH_NAME_MAX, spec->team);
        return SB_EINVAL;
    }
    if (normalize_models(spec->models, models, SB_AUTH_MODELS_MAX + 1) != 0) {
        snprintf(err, err_size,
                 "the model list must be comma-separated names, at most %d bytes in all",
                 SB_AUTH_MODELS_MAX);
        return SB_EINVAL;
    }
    if (spec->rpm < 0 || spec->rpm > SB_AUTH_RPM_MAX || spec->tpm < 0 ||
        spec->tpm > SB_AUTH_TPM_MAX) {
        snprintf(err, err_size, "rpm must be from 0 to %d and tpm from 0 to %d (0 = unlimited)",
                 SB_AUTH_RPM_MAX, SB_AUTH_TPM_MAX);
        return SB_EINVAL;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Rows
 * ------------------------------------------------------------------------------------------- */
static void copy_text(char *dst, size_t cap, sqlite3_stmt *s, int col)
{
    const unsigned char *t = sqlite3_column_text(s, col);
    snprintf(dst, cap, "%s", t != NULL ? (const char *)t : "");
}

/* Reads a row of `columns` into k. */
static void read_row(sqlite3_stmt *s, struct sb_auth_key *k)
{
    char text[16];
    memset(k, 0, sizeof(*k));
    copy_text(k->id, sizeof(k->id), s, 0);
    copy_text(k->name, sizeof(k->name), s, 1);
    copy_text(k->team, sizeof(k->team), s, 2);
    if (sqlite3_column_bytes(s, 3) == (int)sizeof(k->sha256))
        memcpy(k->sha256, sqlite3_column_blob(s, 3), sizeof(k->sha256));
    copy_text(k->prefix, sizeof(k->prefix), s, 4);
    k->budget_micros = sqlite3_column_type(s, 5) == SQLITE_NULL ? -1 : sqlite3_column_int64(s, 5);
    copy_text(text, sizeof(text), s, 6);
    if (sb_budget_period_parse(text, &k->period) != 0)
        k->period = SB_BUDGET_MONTH;
    copy_text(k->models, sizeof(k->models), s, 7);
    copy_text(text, sizeof(text), s, 8);
    if (text[0] == '\0' || sb_route_sensitivity_parse(sb_str_c(text), &k->max_sensitivity) != 0)
        k->max_sensitivity = SB_SENSITIVITY_UNSET;
    k->rpm = sqlite3_column_int64(s, 9);
    k->tpm = sqlite3_column_int64(s, 10);
    k->created_ms = sqlite3_column_int64(s, 11);
    k->revoked_ms = sqlite3_column_type(s, 12) == SQLITE_NULL ? 0 : sqlite3_column_int64(s, 12);
}

/* Reads the rows of sql (which selects `columns`, with at most one text parameter bind1) into a
 * malloc'd array. */
static int read_rows(struct sb_auth_store *st, const char *sql, const char *bind1,
                     struct sb_auth_key **out, size_t *n, char *err, size_t err_size)
{
    sqlite3_stmt *s = NULL;
    struct sb_auth_key *v = NULL;
    size_t len = 0, cap = 0;
    int rc;

    *out = NULL;
    *n = 0;
    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return fail(st, "cannot read the keys", err, err_size);
    if (bind1 != NULL)
        sqlite3_bind_text(s, 1, bind1, -1, SQLITE_TRANSIENT);
    while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
        if (len == cap) {
            size_t nc = cap ? 2 * cap : 16;
            struct sb_auth_key *nv = realloc(v, nc * sizeof(*v));
            if (nv == NULL) {
                free(v);
                sqlite3_finalize(s);
                snprintf(err, err_size, "keys %s: out of memory", st->path);
                return SB_ENOMEM;
            }
            v = nv;
            cap = nc;
        }
        read_row(s, &v[len++]);
    }
    if (rc != SQLITE_DONE) {
        free(v);
        rc = fail(st, "cannot read the keys", err, err_size);
        sqlite3_finalize(s);
        return rc;
    }
    sqlite3_finalize(s);
    *out = v;
    *n = len;
    return 0;
}

int sb_auth_store_list(struct sb_auth_store *st, struct sb_auth_key **out, size_t *n, char *err,
                       size_t err_size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT %s FROM api_keys ORDER BY created_ms, id", columns);
    return read_rows(st, sql, NULL, out, n, err, err_size);
}

int sb_auth_store_changed(struct sb_auth_store *st, bool *changed)
{
    int64_t dv = 0, ch = 0;

    *changed = false;
    if (sb_sqlite_query_int(st->db, "PRAGMA data_version", &dv) != 0)
        return SB_EIO;
    if (dv == st->data_version)
        return 0;
    /* Something committed: the ledger's writer, most often. Only our counter tells. */
    if (sb_sqlite_query_int(st->db, "SELECT n FROM api_keys_changes", &ch) != 0)
        return SB_EIO;
    st->data_version = dv;
    *changed = ch != st->changes;
    st->changes = ch;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Writes
 * ------------------------------------------------------------------------------------------- */
static int bump_changes(struct sb_auth_store *st)
{
    return sb_sqlite_exec(st->db, "UPDATE api_keys_changes SET n = n + 1");
}

static int insert_key(struct sb_auth_store *st, const struct sb_auth_key *k)
{
    static const char sql[] =
        "INSERT INTO api_keys (id, name, team, secret_sha256, prefix, budget_microusd, "
        "budget_period, models, max_sensitivity, rpm, tpm, created_ms) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
    sqlite3_stmt *s = NULL;
    int rc;

    if (sqlite3_prepare_v2(st->db, sql, -1, &s, NULL) != SQLITE_OK)
        return SQLITE_ERROR;
    sqlite3_bind_text(s, 1, k->id, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 2, k->name, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 3, k->team, -1, SQLITE_STATIC);
    sqlite3_bind_blob(s, 4, k->sha256, sizeof(k->sha256), SQLITE_STATIC);
    sqlite3_bind_text(s, 5, k->prefix, -1, SQLITE_STATIC);
    if (k->budget_micros >= 0)
        sqlite3_bind_int64(s, 6, k->budget_micros);
    else
        sqlite3_bind_null(s, 6);
    sqlite3_bind_text(s, 7, sb_budget_period_name(k->period), -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 8, k->models, -1, SQLITE_STATIC);
    sqlite3_bind_text(s, 9,
                      k->max_sensitivity == SB_SENSITIVITY_UNSET
                          ? ""
                          : sb_route_sensitivity_name(k->max_sensitivity),
                      -1, SQLITE_STATIC);
    sqlite3_bind_int64(s, 10, k->rpm);
    sqlite3_bind_int64(s, 11, k->tpm);
    sqlite3_bind_int64(s, 12, k->created_ms);
    rc = sqlite3_step(s);
    sqlite3_finalize(s);
    return rc;
}

int sb_auth_store_create(struct sb_auth_store *st, const struct sb_auth_key_spec *spec,
                         int64_t now_ms, struct sb_auth_key *out, char *secret, char *err,
                         size_t err_size)
{
    struct sb_auth_key k = {0};
    int rc;

    rc = check_spec(spec, k.models, err, err_size);
    if (rc != 0)
        return rc;
    memcpy(k.id, "key_", 4);
    memcpy(secret, "sb-", 3);
    if (random_base62(k.id + 4, 20) != 0 ||
        random_base62(secret + 3, SB_AUTH_SECRET_LEN - 3) != 0) {
        snprintf(err, err_size, "the system's random number generator failed");
        return SB_EIO;
    }
    secret[SB_AUTH_SECRET_LEN] = '\0';
    snprintf(k.name, sizeof(k.name), "%s", spec->name);
    snprintf(k.team, sizeof(k.team), "%s", spec->team != NULL ? spec->team : "");
    snprintf(k.prefix, sizeof(k.prefix), "%.9s", secret);
    k.budget_micros = spec->budget_micros >= 0 ? spec->budget_micros : -1;
    k.period = spec->period;
    k.max_sensitivity = spec->max_sensitivity;
    k.rpm = spec->rpm;
    k.tpm = spec->tpm;
    k.created_ms = now_ms;
    if (sha256(secret, SB_AUTH_SECRET_LEN, k.sha256) != 0) {
        snprintf(err, err_size, "hashing the key failed");
        return SB_EIO;
    }
    if (sb_sqlite_exec(st->db, "BEGIN IMMEDIATE") != 0)
        return fail(st, "cannot lock the key store", err, err_size);
    rc = insert_key(st, &k);
    if (rc == SQLITE_CONSTRAINT) {
        sb_sqlite_exec(st->db, "ROLLBACK");
        snprintf(err, err_size,
                 "a key named \"%s\" already exists; revoke it first (switchboard keys revoke "
                 "%s) or choose another name",
                 k.name, k.name);
        return SB_ESTATE;
    }
    if (rc != SQLITE_DONE || bump_changes(st) != 0 || sb_sqlite_exec(st->db, "COMMIT") != 0) {
        rc = fail(st, "cannot write the key", err, err_size);
        sb_sqlite_exec(st->db, "ROLLBACK");
        return rc;
    }
    *out = k;
    return 0;
}

int sb_auth_store_revoke(struct sb_auth_store *st, const char *name, int64_t now_ms,
                         struct sb_auth_key *out, char *err, size_t err_size)
{
    char sql[512];
    struct sb_auth_key *found = NULL;
    size_t n = 0;
    sqlite3_stmt *s = NULL;
    int rc;

    if (sb_sqlite_exec(st->db, "BEGIN IMMEDIATE") != 0)
        return fail(st, "cannot lock the key store", err, err_size);
    snprintf(sql, sizeof(sql), "SELECT %s FROM api_keys WHERE name = ? AND revoked_ms IS NULL",
             columns);
    rc = read_rows(st, sql, name, &found, &n, err, err_size);
    if (rc == 0 && n == 0) {
        snprintf(err, err_size,
                 "no active key is named \"%.80s\" (switchboard keys list shows them)", name);
        rc = SB_ENOTFOUND;
    }
    if (rc == 0) {
        if (sqlite3_prepare_v2(st->db, "UPDATE api_keys SET revoked_ms = ? WHERE id = ?", -1, &s,
                               NULL) != SQLITE_OK) {
            rc = fail(st, "cannot revoke the key", err, err_size);
        } else {
            sqlite3_bind_int64(s, 1, now_ms);
            sqlite3_bind_text(s, 2, found[0].id, -1, SQLITE_STATIC);
            if (sqlite3_step(s) != SQLITE_DONE || bump_changes(st) != 0 ||
                sb_sqlite_exec(st->db, "COMMIT") != 0)
                rc = fail(st, "cannot revoke the key", err, err_size);
            sqlite3_finalize(s);
        }
    }
    if (rc != 0) {
        sb_sqlite_exec(st->db, "ROLLBACK");
    } else if (out != NULL) {
        *out = found[0];
        out->revoked_ms = now_ms;
    }
    free(found);
    return rc;
}
