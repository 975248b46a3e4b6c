/* Tests for API keys: the store (create, list, revoke, names, hashes only: the secret's bytes are
 * nowhere in the database's files), change detection across connections, authentication from
 * headers in each mode, the refresher picking up keys made by another connection, scopes, and the
 * per-key token buckets with an injected clock. */
#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/auth.h"

static char dir[64];
static char db[128];

static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/sb-auth-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    snprintf(db, sizeof(db), "%s/keys.db", dir);
}

static void remove_dir(void)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    char p[160];
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(p, sizeof(p), "%s%s", db, suffixes[i]);
        unlink(p);
    }
    rmdir(dir);
}

TestSuite(auth_store, .init = make_dir, .fini = remove_dir, .timeout = 60);
TestSuite(auth, .init = make_dir, .fini = remove_dir, .timeout = 60);

static struct sb_auth_store *open_store(void)
{
    struct sb_auth_store *st = NULL;
    char err[512] = "";
    cr_assert_eq(sb_auth_store_open(db, &st, err, sizeof(err)), 0, "%s", err);
    return st;
}

static struct sb_auth_key create(struct sb_auth_store *st, const struct sb_auth_key_spec *spec,
                                 char *secret)
{
    struct sb_auth_key k;
    char err[512] = "";
    cr_assert_eq(sb_auth_store_create(st, spec, 1700000000000, &k, secret, err, sizeof(err)), 0,
                 "%s", err);
    return k;
}

/* Whether needle's bytes occur anywhere in the file at path (missing file: no). */
static bool file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return false;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    bool found = memmem(buf, (size_t)n, needle, strlen(needle)) != NULL;
    free(buf);
    return found;
}

/* ---------------------------------------------------------------------------------------------
 * The store
 * ------------------------------------------------------------------------------------------- */
Test(auth_store, keys_are_made_listed_and_revoked)
{
    struct sb_auth_store *st = open_store();
    const struct sb_auth_key_spec spec = {
        .name = "ci-bot",
        .team = "research",
        .budget_micros = 20000000,
        .period = SB_BUDGET_DAY,
        .models = " gpt , local,, ",
        .max_sensitivity = SB_SENSITIVITY_MEDIUM,
        .rpm = 60,
        .tpm = 10000,
    };
    char secret[SB_AUTH_SECRET_LEN + 1];
    struct sb_auth_key k = create(st, &spec, secret);
    struct sb_auth_key *all = NULL;
    size_t n = 0;
    char err[512] = "";

    cr_assert_eq(strlen(secret), SB_AUTH_SECRET_LEN);
    cr_assert_eq(strncmp(secret, "sb-", 3), 0);
    for (size_t i = 3; i < SB_AUTH_SECRET_LEN; i++)
        cr_assert(strchr("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
                         secret[i]) != NULL);
    cr_assert_eq(strncmp(k.id, "key_", 4), 0);
    cr_assert_eq(strlen(k.id), 24);
    cr_assert_eq(strncmp(k.prefix, secret, strlen(k.prefix)), 0);
    cr_assert_lt(strlen(k.prefix), 12, "the prefix shows a few characters only");
    cr_assert_str_eq(k.models, "gpt,local");
    uint8_t want[32];
    unsigned int hn = 0;
    cr_assert_eq(EVP_Digest(secret, strlen(secret), want, &hn, EVP_sha256(), NULL), 1);
    cr_assert_eq(memcmp(k.sha256, want, 32), 0);

    cr_assert_eq(sb_auth_store_list(st, &all, &n, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(n, 1);
    cr_assert_str_eq(all[0].name, "ci-bot");
    cr_assert_str_eq(all[0].team, "research");
    cr_assert_str_eq(all[0].id, k.id);
    cr_assert_eq(all[0].budget_micros, 20000000);
    cr_assert_eq(all[0].period, SB_BUDGET_DAY);
    cr_assert_str_eq(all[0].models, "gpt,local");
    cr_assert_eq(all[0].max_sensitivity, SB_SENSITIVITY_MEDIUM);
    cr_assert_eq(all[0].rpm, 60);
    cr_assert_eq(all[0].tpm, 10000);
    cr_assert_eq(all[0].created_ms, 1700000000000);
    cr_assert_eq(all[0].revoked_ms, 0);
    cr_assert_eq(memcmp(all[0].sha256, want, 32), 0);
    free(all);

    /* One active key per name. */
    struct sb_auth_key dup;
    char s2[SB_AUTH_SECRET_LEN + 1];
    cr_assert_eq(sb_auth_store_create(st, &spec, 1, &dup, s2, err, sizeof(err)), SB_ESTATE);
    cr_assert_not_null(strstr(err, "already exists"), "%s", err);
    cr_assert_eq(sb_auth_store_revoke(st, "nobody", 5, NULL, err, sizeof(err)), SB_ENOTFOUND);
    struct sb_auth_key gone;
    cr_assert_eq(sb_auth_store_revoke(st, "ci-bot", 1700000001000, &gone, err, sizeof(err)), 0,
                 "%s", err);
    cr_assert_str_eq(gone.id, k.id);
    cr_assert_eq(gone.revoked_ms, 1700000001000);
    cr_assert_eq(sb_auth_store_revoke(st, "ci-bot", 6, NULL, err, sizeof(err)), SB_ENOTFOUND,
                 "a revoked key is revoked once");
    /* The name is free again; the old key stays listed, revoked. */
    struct sb_auth_key k2 = create(st, &spec, s2);
    cr_assert_str_neq(k2.id, k.id);
    cr_assert_str_neq(s2, secret);
    cr_assert_eq(sb_auth_store_list(st, &all, &n, err, sizeof(err)), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(all[0].revoked_ms + all[1].revoked_ms, 1700000001000);
    free(all);
    sb_auth_store_close(st);
}

Test(auth_store, the_secret_is_nowhere_in_the_database_files)
{
    struct sb_auth_store *st = open_store();
    const struct sb_auth_key_spec spec = {.name = "secret-keeper", .budget_micros = -1};
    char secret[SB_AUTH_SECRET_LEN + 1];
    char path[160];

    struct sb_auth_key k = create(st, &spec, secret);
    sb_auth_store_close(st); /* checkpoints the WAL into the file */
    st = open_store();       /* and a second key, left in the WAL this time */
    char secret2[SB_AUTH_SECRET_LEN + 1];
    const struct sb_auth_key_spec spec2 = {.name = "second", .budget_micros = -1};
    create(st, &spec2, secret2);
    /* The id is stored (it is public); the secret, and any part of it past the display prefix,
     * is not. */
    cr_assert(file_contains(db, k.id) || file_contains(db, "secret-keeper"));
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < SB_ARRAY_LEN(suffixes); i++) {
        snprintf(path, sizeof(path), "%s%s", db, suffixes[i]);
        cr_assert_not(file_contains(path, secret), "the secret is in %s", path);
        cr_assert_not(file_contains(path, secret + 9), "the secret's tail is in %s", path);
        cr_assert_not(file_contains(path, secret2), "the second secret is in %s", path);
        cr_assert_not(file_contains(path, secret2 + 9), "its tail is in %s", path);
    }
    sb_auth_store_close(st);
}

Test(auth_store, invalid_specs_are_refused_with_the_field)
{
    struct sb_auth_store *st = open_store();
    static const struct {
        struct sb_auth_key_spec spec;
        const char *says;
    } cases[] = {
        {{.name = "", .budget_micros = -1}, "name"},
        {{.name = "has space", .budget_micros = -1}, "name"},
        {{.name = "ok", .team = "bad/team", .budget_micros = -1}, "team"},
        {{.name = "ok", .rpm = -1, .budget_micros = -1}, "rpm"},
        {{.name = "ok", .tpm = SB_AUTH_TPM_MAX + 1, .budget_micros = -1}, "tpm"},
        {{.name = "ok", .models = "a,\x01", .budget_micros = -1}, "model"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        struct sb_auth_key k;
        char secret[SB_AUTH_SECRET_LEN + 1];
        char err[512] = "";
        cr_assert_eq(sb_auth_store_create(st, &cases[i].spec, 1, &k, secret, err, sizeof(err)),
                     SB_EINVAL, "case %zu", i);
        cr_assert_not_null(strstr(err, cases[i].says), "case %zu: %s", i, err);
    }
    cr_assert(sb_auth_name_valid("a.b_c-9"));
    cr_assert_not(sb_auth_name_valid(NULL));
    char long_name[80];
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    cr_assert_not(sb_auth_name_valid(long_name));
    sb_auth_store_close(st);
}

Test(auth_store, changes_are_seen_across_connections_and_other_tables_are_not_changes)
{
    struct sb_auth_store *reader = open_store();
    struct sb_auth_store *writer = open_store();
    bool changed = false;
    char secret[SB_AUTH_SECRET_LEN + 1];

    cr_assert_eq(sb_auth_store_changed(reader, &changed), 0);
    cr_assert(changed, "the first call says changed");
    cr_assert_eq(sb_auth_store_changed(reader, &changed), 0);
    cr_assert_not(changed);
    const struct sb_auth_key_spec spec = {.name = "a", .budget_micros = -1};
    create(writer, &spec, secret);
    cr_assert_eq(sb_auth_store_changed(reader, &changed), 0);
    cr_assert(changed);
    cr_assert_eq(sb_auth_store_changed(reader, &changed), 0);
    cr_assert_not(changed);
    /* A commit that touches no key (the ledger's writer, in a served database) is not one. */
    char err[512] = "";
    cr_assert_eq(sb_auth_store_revoke(writer, "nobody", 1, NULL, err, sizeof(err)), SB_ENOTFOUND);
    sb_auth_store_close(writer);
    cr_assert_eq(sb_auth_store_changed(reader, &changed), 0);
    cr_assert_not(changed);
    sb_auth_store_close(reader);
}

Test(auth_store, the_store_path_comes_from_the_config)
{
    struct sb_config cfg = {0};
    char err[256];
    cfg.ledger.path = "ledger.db";
    cfg.auth.store = "";
    cr_assert_str_eq(sb_auth_store_path(&cfg, err, sizeof(err)), "ledger.db");
    cfg.auth.store = "keys.db";
    cr_assert_str_eq(sb_auth_store_path(&cfg, err, sizeof(err)), "keys.db");
    cfg.auth.store = NULL;
    cfg.ledger.path = "postgres://u@h/db";
    cr_assert_null(sb_auth_store_path(&cfg, err, sizeof(err)));
    cr_assert_not_null(strstr(err, "auth.store"), "%s", err);
    cfg.ledger.path = "";
    cr_assert_null(sb_auth_store_path(&cfg, err, sizeof(err)));
}

/* ---------------------------------------------------------------------------------------------
 * Authentication
 * ------------------------------------------------------------------------------------------- */
static struct sb_auth *open_auth(enum sb_auth_mode mode)
{
    struct sb_auth_params p = {.mode = mode, .store = db, .refresh_ms = 20};
    struct sb_auth *a = NULL;
    char err[512] = "";
    cr_assert_eq(sb_auth_new(&p, &a, err, sizeof(err)), 0, "%s", err);
    return a;
}

Test(auth, credentials_from_bearer_or_x_api_key_in_each_mode)
{
    struct sb_auth_store *st = open_store();
    char secret[SB_AUTH_SECRET_LEN + 1], gone[SB_AUTH_SECRET_LEN + 1], bearer[80];
    char err[512];
    const struct sb_auth_key_spec spec = {.name = "alice", .team = "research", .budget_micros = -1};
    const struct sb_auth_key_spec spec2 = {.name = "bob", .budget_micros = -1};
    create(st, &spec, secret);
    create(st, &spec2, gone);
    cr_assert_eq(sb_auth_store_revoke(st, "bob", 2, NULL, err, sizeof(err)), 0);
    sb_auth_store_close(st);
    snprintf(bearer, sizeof(bearer), "Bearer %s", secret);

    struct sb_auth *opt = open_auth(SB_AUTH_OPTIONAL);
    struct sb_auth *req = open_auth(SB_AUTH_REQUIRED);
    struct sb_auth_key k;
    char lower[80], x_gone[80];
    snprintf(lower, sizeof(lower), "bearer   %s  ", secret);
    snprintf(x_gone, sizeof(x_gone), " %s ", gone);

    static const struct {
        int which; /* 0 optional, 1 required */
        int authz; /* 0 none, 1 the bearer, 2 lower-case and spaced, 3 a foreign bearer */
        int xkey;  /* 0 none, 1 the secret, 2 a revoked key, 3 an unknown sb- key, 4 foreign */
        enum sb_auth_verdict want;
    } cases[] = {
        {0, 0, 0, SB_AUTH_ANONYMOUS}, {1, 0, 0, SB_AUTH_MISSING},
        {0, 3, 0, SB_AUTH_ANONYMOUS}, /* an SDK's own key, optional mode: anonymous */
        {1, 3, 0, SB_AUTH_FOREIGN},   {1, 0, 4, SB_AUTH_FOREIGN},
        {0, 1, 0, SB_AUTH_KEY},       {1, 2, 0, SB_AUTH_KEY},
        {1, 0, 1, SB_AUTH_KEY}, /* Anthropic's SDK */
        {1, 3, 1, SB_AUTH_KEY}, /* a foreign bearer beside our x-api-key */
        {0, 0, 2, SB_AUTH_REVOKED},   {0, 0, 3, SB_AUTH_INVALID},
        {1, 0, 3, SB_AUTH_INVALID},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(cases); i++) {
        const char *authz[] = {NULL, bearer, lower, "Bearer sk-proj-abc"};
        const char *xkey[] = {NULL, secret, x_gone, "sb-0000000000000000000000000000000000000000",
                              "sk-ant-abc"};
        memset(&k, 0, sizeof(k));
        enum sb_auth_verdict v = sb_auth_identify(cases[i].which ? req : opt, authz[cases[i].authz],
                                                  xkey[cases[i].xkey], &k);
        cr_assert_eq(v, cases[i].want, "case %zu: verdict %d, want %d", i, (int)v,
                     (int)cases[i].want);
        if (v == SB_AUTH_KEY) {
            cr_assert_str_eq(k.name, "alice");
            cr_assert_str_eq(k.team, "research");
        }
        if (v == SB_AUTH_REVOKED)
            cr_assert_str_eq(k.name, "bob");
    }
    sb_auth_free(opt);
    sb_auth_free(req);
}

Test(auth, keys_made_elsewhere_are_seen_by_the_refresher)
{
    struct sb_auth *a = open_auth(SB_AUTH_REQUIRED);
    struct sb_auth_store *st = open_store();
    char secret[SB_AUTH_SECRET_LEN + 1], bearer[80], err[512];
    struct sb_auth_key k;
    const struct sb_auth_key_spec spec = {.name = "late", .budget_micros = -1};

    create(st, &spec, secret);
    snprintf(bearer, sizeof(bearer), "Bearer %s", secret);
    /* The refresher polls every 20 ms; wait for it without a deadline of our own beyond the
     * suite's timeout. */
    while (sb_auth_identify(a, bearer, NULL, &k) != SB_AUTH_KEY)
        usleep(5000);
    cr_assert_eq(sb_auth_store_revoke(st, "late", 9, NULL, err, sizeof(err)), 0);
    while (sb_auth_identify(a, bearer, NULL, &k) != SB_AUTH_REVOKED)
        usleep(5000);
    sb_auth_store_close(st);

    struct sb_auth_key *all = NULL;
    size_t n = 0;
    cr_assert_eq(sb_auth_keys(a, &all, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(all[0].revoked_ms, 9);
    free(all);
    cr_assert_eq(sb_auth_refresh(a), 0);
    sb_auth_free(a);
}

Test(auth, model_scopes)
{
    struct sb_auth_key k = {0};
    cr_assert(sb_auth_key_allows_model(&k, sb_str_c("anything")), "no list: every model");
    snprintf(k.models, sizeof(k.models), "gpt,local");
    cr_assert(sb_auth_key_allows_model(&k, sb_str_c("gpt")));
    cr_assert(sb_auth_key_allows_model(&k, sb_str_c("local")));
    cr_assert_not(sb_auth_key_allows_model(&k, sb_str_c("gp")));
    cr_assert_not(sb_auth_key_allows_model(&k, sb_str_c("gpt,local")));
    cr_assert_not(sb_auth_key_allows_model(&k, sb_str_c("claude")));
}

Test(auth, modes_parse)
{
    enum sb_auth_mode m = SB_AUTH_OFF;
    cr_assert_eq(sb_auth_mode_parse("Required", &m), 0);
    cr_assert_eq(m, SB_AUTH_REQUIRED);
    cr_assert_eq(sb_auth_mode_parse("sometimes", &m), SB_EINVAL);
}

/* ---------------------------------------------------------------------------------------------
 * Rate limits
 * ------------------------------------------------------------------------------------------- */
#define S ((uint64_t)1000000000)

Test(auth_rate, requests_per_minute)
{
    struct sb_rate *r = NULL;
    struct sb_rate_ticket t[3];
    struct sb_rate_refusal why;
    uint64_t t0 = 1000 * S;

    cr_assert_eq(sb_rate_new(&r), 0);
    cr_assert_eq(sb_rate_admit(r, "key_a", 2, 0, 10, t0, &t[0], &why), 0);
    cr_assert_eq(sb_rate_admit(r, "key_a", 2, 0, 10, t0, &t[1], &why), 0);
    cr_assert_eq(sb_rate_admit(r, "key_a", 2, 0, 10, t0, &t[2], &why), SB_EFULL);
    cr_assert_eq(why.limit, SB_RATE_REQUESTS);
    cr_assert_eq(why.per_minute, 2);
    cr_assert_eq(why.retry_after_s, 30, "one request comes back every 30 s");
    cr_assert_not(why.never);
    /* Another key has its own buckets. */
    cr_assert_eq(sb_rate_admit(r, "key_b", 2, 0, 10, t0, &t[2], &why), 0);
    sb_rate_settle(r, &t[2], 5, t0);
    /* 29.9 s later one request is not back yet; at 30 s it is. */
    cr_assert_eq(sb_rate_admit(r, "key_a", 2, 0, 10, t0 + 29 * S + S / 2, &t[2], &why), SB_EFULL);
    cr_assert_eq(why.retry_after_s, 1);
    cr_assert_eq(sb_rate_admit(r, "key_a", 2, 0, 10, t0 + 30 * S, &t[2], &why), 0);
    for (int i = 0; i < 3; i++)
        sb_rate_settle(r, &t[i], 10, t0 + 30 * S);
    /* No limits: nothing is held. */
    cr_assert_eq(sb_rate_admit(r, "key_c", 0, 0, 10, t0, &t[0], &why), 0);
    cr_assert_null(t[0].bucket);
    sb_rate_free(r);
}

Test(auth_rate, tokens_per_minute_are_estimated_then_settled)
{
    struct sb_rate *r = NULL;
    struct sb_rate_ticket a, b;
    struct sb_rate_refusal why;
    uint64_t t0 = 5 * S;

    cr_assert_eq(sb_rate_new(&r), 0);
    cr_assert_eq(sb_rate_admit(r, "k", 0, 100, 60, t0, &a, &why), 0);
    cr_assert_eq(sb_rate_admit(r, "k", 0, 100, 60, t0, &b, &why), SB_EFULL);
    cr_assert_eq(why.limit, SB_RATE_TOKENS);
    cr_assert_eq(why.asked, 60);
    /* 20 tokens short at 100 a minute: 12 s. */
    cr_assert_eq(why.retry_after_s, 12);
    /* The first used 10 tokens in all: 50 come back at once. */
    sb_rate_settle(r, &a, 10, t0);
    cr_assert_null(a.bucket);
    cr_assert_eq(sb_rate_admit(r, "k", 0, 100, 60, t0, &b, &why), 0);
    /* It used 190 (a long answer): 130 more than admitted, from the 30 left, but the debt is
     * capped at a minute's worth (100). One more token then takes 101 at 100 a minute: 60.6 s. */
    sb_rate_settle(r, &b, 190, t0);
    cr_assert_eq(sb_rate_admit(r, "k", 0, 100, 1, t0, &a, &why), SB_EFULL);
    cr_assert_eq(why.retry_after_s, 61);
    cr_assert_eq(sb_rate_admit(r, "k", 0, 100, 1, t0 + 61 * S, &a, &why), 0);
    sb_rate_settle(r, &a, -1, t0 + 61 * S);
    sb_rate_free(r);
}

Test(auth_rate, a_request_larger_than_the_limit_is_never_admitted)
{
    struct sb_rate *r = NULL;
    struct sb_rate_ticket t;
    struct sb_rate_refusal why;

    cr_assert_eq(sb_rate_new(&r), 0);
    cr_assert_eq(sb_rate_admit(r, "k", 10, 100, 101, S, &t, &why), SB_EFULL);
    cr_assert(why.never);
    cr_assert_eq(why.asked, 101);
    cr_assert_eq(why.per_minute, 100);
    /* Nothing was taken: the request bucket is still full. */
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(sb_rate_admit(r, "k", 10, 100, 0, S, &t, &why), 0);
        sb_rate_settle(r, &t, 0, S);
    }
    cr_assert_eq(sb_rate_admit(r, "k", 10, 100, 0, S, &t, &why), SB_EFULL);
    sb_rate_free(r);
}
