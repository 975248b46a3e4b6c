/* PII scanning: the detector table compiled into one Vectorscan database, one pass per text with
 * a per-thread scratch, validators on each candidate, then overlaps resolved (longest wins). */
#include <hs.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "privacy/internal.h"

/* ---------------------------------------------------------------------------------------------
 * The detector table: one row per built-in kind, in enum sb_pii_kind order, which is also their
 * priority when two matches of the same length overlap.
 *
 * Speed decides the regexes' shape (bench/pii_scan.sh). Every built-in regex reports only where
 * its match ends: asking Vectorscan for starts (SOM) costs about a fifth of the scan, and the
 * start is cheap to find here, from a fixed length or by walking back to a literal ('@', "eyJ",
 * "-----BEGIN") in the validator. Regexes made only of character classes cost a pass over every
 * byte each, so there are few of them: the numeric kinds (card, SSN, IPv4, phone) share one, a
 * numeric token, from which the scan cuts spans for each kind's parser. Regexes stop early where
 * a value may run long (one report per value); validators extend the span to its end.
 * ------------------------------------------------------------------------------------------- */
struct pii_regex {
    const char *re;         /* NULL ends the list; compiled without HS_FLAG_SOM_LEFTMOST */
    unsigned len;           /* > 0: every match is this long, so it starts len bytes back */
    sb__pii_valid_fn valid; /* confirms and places the span; NULL: the regex is proof enough */
};

struct detector {
    const char *name;       /* in `privacy.detectors` */
    const char *tag;        /* in placeholders: <TAG_1> */
    struct pii_regex re[5]; /* the kind's own regexes */
    sb__pii_parse_fn parse; /* numeric kinds: parses spans cut from numeric tokens */
    /* Numeric kinds: the shortest and longest span in bytes, and in digits; the scan calls the
     * parser only on spans within both. */
    unsigned char min, max, min_digits, max_digits;
    const char *doc;
};

#define HEX    "[0-9A-Fa-f]{1,4}"
#define DOTTED "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}"

static const struct detector detectors[SB_PII_N_BUILTIN] = {
    /* The domain after an '@'; the validator walks back over the local part. Labels accept
     * UTF-8 bytes (internationalized domains). */
    [SB_PII_EMAIL] = {"email",
                      "EMAIL",
                      {{"@(?:[A-Za-z0-9\\x80-\\xff-]+\\.)+[A-Za-z]{2,24}\\b", 0,
                        sb__pii_valid_email}},
                      NULL,
                      0,
                      0,
                      0,
                      0,
                      "email addresses"},
    [SB_PII_CARD] = {"card",
                     "CARD",
                     {{0}},
                     sb__pii_parse_card,
                     13,
                     23,
                     13,
                     19,
                     "payment card numbers: issuer range, length, grouping and Luhn"},
    [SB_PII_SSN] = {"ssn",
                    "SSN",
                    {{0}},
                    sb__pii_parse_ssn,
                    11,
                    11,
                    9,
                    9,
                    "US social security numbers written with dashes or spaces"},
    /* A run of [A-Z0-9 ] that starts like an IBAN; the validator finds where it starts. */
    [SB_PII_IBAN] = {"iban",
                     "IBAN",
                     {{"[A-Z]{2}[0-9]{2}[ A-Z0-9]{9,}[A-Z0-9]\\b", 0, sb__pii_valid_iban}},
                     NULL,
                     0,
                     0,
                     0,
                     0,
                     "IBANs: the registry's length for the country, and mod-97 check digits"},
    [SB_PII_IPV4] = {"ipv4",
                     "IPV4",
                     {{0}},
                     sb__pii_parse_ipv4,
                     7,
                     15,
                     4,
                     12,
                     "IPv4 addresses (octets up to 255, no leading zeros)"},
    [SB_PII_IPV6] =
        {"ipv6",
         "IPV6",
         {/* compressed forms, anchored on "::" */
          {"(?:" HEX "(?::" HEX "){0,6})?::" HEX "(?::" HEX "){0,6}\\b", 0, sb__pii_valid_ipv6},
          {"(?:" HEX "(?::" HEX "){0,6})?::\\B", 0, sb__pii_valid_ipv6},
          {"(?:" HEX "(?::" HEX "){0,5})?::(?:" HEX ":){0,5}" DOTTED "\\b", 0, sb__pii_valid_ipv6},
          /* the full form: where ":h:h:h:h:h:h:" ends */
          {"(?::" HEX "){6}:", 0, sb__pii_valid_ipv6_full}},
         NULL,
         0,
         0,
         0,
         0,
         "IPv6 addresses (checked with inet_pton)"},
    [SB_PII_PHONE] = {"phone",
                      "PHONE",
                      {{0}},
                      sb__pii_parse_phone,
                      8,
                      26,
                      8,
                      15,
                      "phone numbers: E.164 (+...) and national formats with separators"},
    [SB_PII_AWS_KEY] = {"aws_key",
                        "AWS_KEY",
                        {{"\\b(?:AKIA|ASIA)[A-Z0-9]{16}\\b", 20, NULL}},
                        NULL,
                        0,
                        0,
                        0,
                        0,
                        "AWS access key ids"},
    [SB_PII_API_KEY] = {"api_key",
                        "API_KEY",
                        {{"\\bsk-[A-Za-z0-9_-]{20}", 23, sb__pii_valid_api_key}},
                        NULL,
                        0,
                        0,
                        0,
                        0,
                        "sk- style API keys (sk-..., sk-proj-..., sk-ant-...)"},
    [SB_PII_GITHUB_TOKEN] = {"github_token",
                             "GITHUB_TOKEN",
                             {{"\\bgh[pousr]_[A-Za-z0-9]{36}", 40, sb__pii_valid_github},
                              {"\\bgithub_pat_[A-Za-z0-9_]{22}", 33, sb__pii_valid_github}},
                             NULL,
                             0,
                             0,
                             0,
                             0,
                             "GitHub tokens (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)"},
    [SB_PII_JWT] = {"jwt",
                    "JWT",
                    {{"\\beyJ[A-Za-z0-9_-]{8,}\\.[A-Za-z0-9_-]+\\.", 0, sb__pii_valid_jwt}},
                    NULL,
                    0,
                    0,
                    0,
                    0,
                    "JSON Web Tokens whose header names an alg"},
    [SB_PII_PRIVATE_KEY] = {"private_key",
                            "PRIVATE_KEY",
                            {/* the BEGIN line; the validator finds the END line */
                             {"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----", 0,
                              sb__pii_valid_private_key}},
                            NULL,
                            0,
                            0,
                            0,
                            0,
                            "PEM private key blocks, BEGIN to END (or a body without its END)"},
};

/* The numeric token: at least 7 bytes of digits and separators, ending with a digit. Reported at
 * every end; the scan walks back over the token and tries the numeric kinds' parsers. */
#define NUMERIC_RE    "[0-9+(][0-9 ().-]{5,}[0-9]\\b"
#define NUMERIC_MIN   7  /* the shortest numeric value: 1.1.1.1 */
#define NUMERIC_MAX   26 /* the longest (a phone number); how far back a token is followed */
#define NUMERIC_TOKEN UINT32_MAX /* the kind of the numeric token's pattern */

static const char *const detector_names[SB_PII_N_BUILTIN] = {
    "email", "card",    "ssn",     "iban",         "ipv4", "ipv6",
    "phone", "aws_key", "api_key", "github_token", "jwt",  "private_key",
};

const char *const *sb_privacy_detector_names(size_t *n)
{
    *n = SB_PII_N_BUILTIN;
    return detector_names;
}

int sb_privacy_detector_find(const char *name)
{
    for (size_t i = 0; i < SB_PII_N_BUILTIN; i++)
        if (strcmp(detectors[i].name, name) == 0)
            return (int)i;
    return -1;
}

int sb_privacy_check_detectors(const char *const *names, size_t n_names, char *err, size_t n)
{
    for (size_t i = 0; i < n_names; i++) {
        if (names[i] != NULL && strcmp(names[i], "none") == 0) {
            if (n_names == 1)
                continue;
            if (err != NULL && n > 0)
                snprintf(err, n, "privacy.detectors[%zu]: \"none\" must be the only entry", i);
            return SB_EINVAL;
        }
        if (names[i] == NULL || sb_privacy_detector_find(names[i]) < 0) {
            if (err != NULL && n > 0)
                snprintf(err, n, "privacy.detectors[%zu]: unknown detector \"%s\"", i,
                         names[i] != NULL ? names[i] : "");
            return SB_EINVAL;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The compiled object
 * ------------------------------------------------------------------------------------------- */
/* Candidates past this many in one text stop the scan (SB_ETOOBIG) rather than eat memory. */
#define MAX_CANDIDATES ((size_t)1 << 20)
/* A custom term is at most this long. */
#define TERM_MAX 256
/* Custom patterns report their start: they are the user's, and nothing else knows where their
 * matches begin. */
#define CUSTOM_FLAGS HS_FLAG_SOM_LEFTMOST

/* One compiled regex: the Vectorscan id is its index. */
struct pattern {
    uint32_t kind;  /* or NUMERIC_TOKEN */
    uint32_t prio;  /* lower wins ties */
    uint32_t fixed; /* > 0: matches are this long (the regex reports ends only) */
    sb__pii_valid_fn valid;
};

struct sb_privacy {
    hs_database_t *db; /* NULL when nothing is enabled */
    struct pattern *patterns;
    size_t n_patterns;
    size_t n_kinds;
    uint32_t prio[SB_PRIVACY_MAX_KINDS];
    uint32_t numeric[SB_PII_N_BUILTIN]; /* the enabled numeric kinds, in priority order */
    size_t n_numeric;
    char *names[SB_PRIVACY_MAX_KINDS]; /* custom kinds' names (owned); built-ins use the table */
    char *tags[SB_PRIVACY_MAX_KINDS];  /* custom kinds' tags (owned) */
};

/* A candidate match in the scratch: [from, to) of kind, found by slot (see last below). */
struct cand {
    uint32_t from, to;
    uint32_t kind;
    uint32_t prio;
};

struct sb_privacy_scratch {
    hs_scratch_t *hs;
    struct cand *cands; /* this piece's candidates, in report order */
    size_t n_cands, cap_cands;
    struct cand *kept; /* the winners, sorted by start */
    size_t n_kept, cap_kept;
    /* Per slot (a pattern, then one per numeric kind): 1 + the index in cands of its latest
     * candidate, 0 = none. */
    uint32_t *last;
    size_t n_slots;
    size_t n_patterns; /* of the sb_privacy it was made for */
    char *dec;         /* a decoded JSON string */
    uint32_t *map;     /* where each decoded byte came from */
    size_t cap_dec;
};

size_t sb_privacy_n_kinds(const struct sb_privacy *p)
{
    return p->n_kinds;
}

const char *sb_privacy_kind_name(const struct sb_privacy *p, uint32_t kind)
{
    if (kind < SB_PII_N_BUILTIN)
        return detectors[kind].name;
    if (kind == SB_PII_TERM)
        return "term";
    return kind < p->n_kinds ? p->names[kind] : NULL;
}

const char *sb_privacy_kind_tag(const struct sb_privacy *p, uint32_t kind)
{
    if (kind < SB_PII_N_BUILTIN)
        return detectors[kind].tag;
    if (kind == SB_PII_TERM)
        return "TERM";
    return kind < p->n_kinds ? p->tags[kind] : NULL;
}

/* ---------------------------------------------------------------------------------------------
 * Building
 * ------------------------------------------------------------------------------------------- */
/* Where a compiled regex came from, for messages. */
struct source {
    const char *what; /* "detector", "custom pattern", "custom term" */
    const char *name; /* its name (a term: the term itself) */
    int line;         /* config line, 0 = unknown */
};

/* What sb_privacy_new assembles before compiling: parallel arrays, one row per regex. */
struct build {
    const char **exprs;
    unsigned *flags;
    unsigned *ids;
    struct source *sources;
    struct pattern *patterns;
    char **owned; /* escaped terms, freed after compiling */
    size_t n, cap, n_owned;
};

static int build_add(struct build *b, const char *expr, unsigned flags, struct source src,
                     struct pattern pat)
{
    if (b->n == b->cap) {
        size_t cap = b->cap == 0 ? 32 : b->cap * 2;
        const char **e = realloc(b->exprs, cap * sizeof *e);
        if (e != NULL)
            b->exprs = e;
        unsigned *f = realloc(b->flags, cap * sizeof *f);
        if (f != NULL)
            b->flags = f;
        unsigned *ids = realloc(b->ids, cap * sizeof *ids);
        if (ids != NULL)
            b->ids = ids;
        struct source *so = realloc(b->sources, cap * sizeof *so);
        if (so != NULL)
            b->sources = so;
        struct pattern *pa = realloc(b->patterns, cap * sizeof *pa);
        if (pa != NULL)
            b->patterns = pa;
        if (e == NULL || f == NULL || ids == NULL || so == NULL || pa == NULL)
            return SB_ENOMEM;
        b->cap = cap;
    }
    b->exprs[b->n] = expr;
    b->flags[b->n] = flags;
    b->ids[b->n] = (unsigned)b->n;
    b->sources[b->n] = src;
    b->patterns[b->n] = pat;
    b->n++;
    return 0;
}

static void build_free(struct build *b)
{
    for (size_t i = 0; i < b->n_owned; i++)
        free(b->owned[i]);
    free(b->owned);
    free(b->exprs);
    free(b->flags);
    free(b->ids);
    free(b->sources);
    free(b->patterns);
}

static bool is_word_byte(int c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

/* Turns a literal term into a regex: every byte but letters and digits escaped as \xHH, and a
 * word boundary at an end that is a word character ("Falcon" is not found in "Falconry").
 * Returns a malloc'd string or NULL. */
static char *term_regex(const char *term)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = strlen(term);
    char *re = malloc(n * 4 + 5);
    if (re == NULL)
        return NULL;
    size_t k = 0;
    if (is_word_byte((unsigned char)term[0])) {
        re[k++] = '\\';
        re[k++] = 'b';
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)term[i];
        if (is_word_byte(c) && c != '_') {
            re[k++] = (char)c;
        } else {
            re[k++] = '\\';
            re[k++] = 'x';
            re[k++] = hex[c >> 4];
            re[k++] = hex[c & 15];
        }
    }
    if (is_word_byte((unsigned char)term[n - 1])) {
        re[k++] = '\\';
        re[k++] = 'b';
    }
    re[k] = '\0';
    return re;
}

/* A custom pattern's name must make a tag: letters, digits and '_', starting with a letter. */
static bool name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > SB_PRIVACY_NAME_MAX ||
        !((name[0] >= 'a' && name[0] <= 'z') || (name[0] >= 'A' && name[0] <= 'Z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_word_byte((unsigned char)name[i]))
            return false;
    return true;
}

static char *upper_dup(const char *s)
{
    char *u = strdup(s);
    for (size_t i = 0; u != NULL && u[i] != '\0'; i++)
        if (u[i] >= 'a' && u[i] <= 'z')
            u[i] = (char)(u[i] - 'a' + 'A');
    return u;
}

/* Whether built-in kind k is on under cfg: an empty list means all ("none" matches no name). */
static bool builtin_enabled(const struct sb_privacy_config *cfg, size_t k)
{
    if (cfg->n_detectors == 0)
        return true;
    for (size_t i = 0; i < cfg->n_detectors; i++)
        if (strcmp(cfg->detectors[i], detectors[k].name) == 0)
            return true;
    return false;
}

/* Checks cfg's names and sizes before anything compiles; writes the first problem into err. */
static int check_config(const struct sb_privacy_config *cfg, char *err, size_t n)
{
    int rc =
        sb_privacy_check_detectors((const char *const *)cfg->detectors, cfg->n_detectors, err, n);
    if (rc != 0)
        return rc;
    if (cfg->n_custom_patterns > SB_PRIVACY_MAX_PATTERNS) {
        snprintf(err, n, "privacy.custom_patterns: %zu patterns; at most %d are allowed",
                 cfg->n_custom_patterns, SB_PRIVACY_MAX_PATTERNS);
        return SB_ETOOBIG;
    }
    if (cfg->n_custom_terms > SB_PRIVACY_MAX_TERMS) {
        snprintf(err, n, "privacy.custom_terms: %zu terms; at most %d are allowed",
                 cfg->n_custom_terms, SB_PRIVACY_MAX_TERMS);
        return SB_ETOOBIG;
    }
    for (size_t i = 0; i < cfg->n_custom_terms; i++) {
        size_t len = cfg->custom_terms[i] != NULL ? strlen(cfg->custom_terms[i]) : 0;
        if (len == 0 || len > TERM_MAX) {
            snprintf(err, n, "privacy.custom_terms[%zu]: expected 1 to %d bytes", i, TERM_MAX);
            return SB_EINVAL;
        }
    }
    for (size_t i = 0; i < cfg->n_custom_patterns; i++) {
        const struct sb_privacy_pattern_config *pc = &cfg->custom_patterns[i];
        if (pc->name == NULL || !name_ok(pc->name) || pc->regex == NULL) {
            snprintf(err, n,
                     "privacy.custom_patterns[%zu] (line %d): expected a name of letters, digits "
                     "and '_' starting with a letter (at most %d bytes) and a regex",
                     i, pc->line, SB_PRIVACY_NAME_MAX);
            return SB_EINVAL;
        }
        /* Tags compare in upper case: names that differ only in case would share one. */
        bool clash = strcasecmp(pc->name, "term") == 0;
        for (size_t k = 0; k < SB_PII_N_BUILTIN && !clash; k++)
            clash = strcasecmp(pc->name, detectors[k].tag) == 0;
        for (size_t j = 0; j < i && !clash; j++)
            clash = strcasecmp(pc->name, cfg->custom_patterns[j].name) == 0;
        if (clash) {
            snprintf(err, n,
                     "privacy.custom_patterns[%zu] (line %d): the name \"%s\" is already taken "
                     "(by a built-in detector or another pattern)",
                     i, pc->line, pc->name);
            return SB_EINVAL;
        }
    }
    return 0;
}

int sb_privacy_check_pattern(const char *regex, char *err, size_t n)
{
    hs_database_t *db = NULL;
    hs_compile_error_t *cerr = NULL;
    hs_error_t rc = hs_compile(regex, CUSTOM_FLAGS, HS_MODE_BLOCK, NULL, &db, &cerr);
    if (rc == HS_SUCCESS) {
        hs_free_database(db);
        return 0;
    }
    int ret = rc == HS_NOMEM ? SB_ENOMEM : SB_EINVAL;
    if (err != NULL && n > 0)
        snprintf(err, n, "%s", cerr != NULL && cerr->message != NULL ? cerr->message : "invalid");
    hs_free_compile_error(cerr);
    return ret;
}

void sb_privacy_free(struct sb_privacy *p)
{
    if (p == NULL)
        return;
    hs_free_database(p->db);
    for (size_t k = 0; k < SB_PRIVACY_MAX_KINDS; k++) {
        free(p->names[k]);
        free(p->tags[k]);
    }
    free(p->patterns);
    free(p);
}

/* Adds every regex p will scan for to b, in priority order: custom patterns first (the user
 * named them for a reason), then custom terms, then the built-ins in table order. */
static int build_all(struct sb_privacy *p, const struct sb_privacy_config *cfg, struct build *b)
{
    uint32_t prio = 0;
    for (size_t i = 0; i < cfg->n_custom_patterns; i++) {
        const struct sb_privacy_pattern_config *pc = &cfg->custom_patterns[i];
        uint32_t kind = (uint32_t)(SB_PII_CUSTOM + i);
        p->prio[kind] = prio++;
        p->names[kind] = strdup(pc->name);
        p->tags[kind] = upper_dup(pc->name);
        if (p->names[kind] == NULL || p->tags[kind] == NULL)
            return SB_ENOMEM;
        struct source src = {"custom pattern", pc->name, pc->line};
        struct pattern pat = {kind, p->prio[kind], 0, NULL};
        if (build_add(b, pc->regex, CUSTOM_FLAGS, src, pat) != 0)
            return SB_ENOMEM;
    }
    p->prio[SB_PII_TERM] = prio++;
    if (cfg->n_custom_terms > 0 &&
        (b->owned = calloc(cfg->n_custom_terms, sizeof *b->owned)) == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < cfg->n_custom_terms; i++) {
        char *re = term_regex(cfg->custom_terms[i]);
        if (re == NULL)
            return SB_ENOMEM;
        b->owned[b->n_owned++] = re;
        struct source src = {"custom term", cfg->custom_terms[i], 0};
        /* A literal: its matches are as long as it is, so no start needs tracking. */
        struct pattern pat = {SB_PII_TERM, p->prio[SB_PII_TERM],
                              (uint32_t)strlen(cfg->custom_terms[i]), NULL};
        if (build_add(b, re, HS_FLAG_CASELESS, src, pat) != 0)
            return SB_ENOMEM;
    }
    for (uint32_t k = 0; k < SB_PII_N_BUILTIN; k++) {
        p->prio[k] = prio++;
        if (!builtin_enabled(cfg, k))
            continue;
        const struct detector *d = &detectors[k];
        for (const struct pii_regex *r = d->re; r->re != NULL; r++) {
            struct source src = {"detector", d->name, 0};
            struct pattern pat = {k, p->prio[k], r->len, r->valid};
            if (build_add(b, r->re, 0, src, pat) != 0)
                return SB_ENOMEM;
        }
        if (d->parse != NULL)
            p->numeric[p->n_numeric++] = k;
    }
    if (p->n_numeric > 0) {
        struct source src = {"detector", "numeric token", 0};
        if (build_add(b, NUMERIC_RE, 0, src, (struct pattern){NUMERIC_TOKEN, 0, 0, NULL}) != 0)
            return SB_ENOMEM;
    }
    return 0;
}

int sb_privacy_new(const struct sb_privacy_config *cfg, struct sb_privacy **out, char *err,
                   size_t n)
{
    static const struct sb_privacy_config none = {0};
    char dummy[1];
    if (err == NULL || n == 0) {
        err = dummy;
        n = sizeof dummy;
    }
    err[0] = '\0';
    *out = NULL;
    if (cfg == NULL)
        cfg = &none;
    struct build b = {0};
    hs_compile_error_t *cerr = NULL;
    struct sb_privacy *p = NULL;
    int rc = check_config(cfg, err, n);
    if (rc != 0)
        goto fail;
    p = calloc(1, sizeof *p);
    rc = p != NULL ? build_all(p, cfg, &b) : SB_ENOMEM;
    if (rc != 0)
        goto fail;
    p->n_kinds = SB_PII_CUSTOM + cfg->n_custom_patterns;
    p->n_patterns = b.n;
    p->patterns = b.patterns;
    b.patterns = NULL;
    if (b.n > 0) {
        hs_error_t hrc = hs_compile_multi(b.exprs, b.flags, b.ids, (unsigned)b.n, HS_MODE_BLOCK,
                                          NULL, &p->db, &cerr);
        if (hrc != HS_SUCCESS) {
            rc = hrc == HS_NOMEM ? SB_ENOMEM : SB_EINVAL;
            const char *msg = cerr != NULL && cerr->message != NULL ? cerr->message : "invalid";
            int at = cerr != NULL ? cerr->expression : -1;
            const struct source *so = at >= 0 && (size_t)at < b.n ? &b.sources[at] : NULL;
            if (so != NULL && so->line > 0)
                snprintf(err, n, "privacy: %s \"%s\" (line %d) does not compile: %s", so->what,
                         so->name, so->line, msg);
            else if (so != NULL)
                snprintf(err, n, "privacy: %s \"%s\" does not compile: %s", so->what, so->name,
                         msg);
            else
                snprintf(err, n, "privacy: the patterns do not compile together: %s", msg);
            goto fail;
        }
    }
    hs_free_compile_error(cerr);
    build_free(&b);
    *out = p;
    return 0;

fail:
    if (rc == SB_ENOMEM && err[0] == '\0')
        snprintf(err, n, "privacy: out of memory");
    hs_free_compile_error(cerr);
    build_free(&b);
    sb_privacy_free(p);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Scratch
 * ------------------------------------------------------------------------------------------- */
int sb_privacy_scratch_new(const struct sb_privacy *p, struct sb_privacy_scratch **out)
{
    *out = NULL;
    struct sb_privacy_scratch *s = calloc(1, sizeof *s);
    if (s == NULL)
        goto fail;
    s->n_patterns = p->n_patterns;
    s->n_slots = p->n_patterns + SB_PII_N_BUILTIN;
    s->last = calloc(s->n_slots, sizeof *s->last);
    if (s->last == NULL)
        goto fail;
    if (p->db != NULL && hs_alloc_scratch(p->db, &s->hs) != HS_SUCCESS)
        goto fail;
    *out = s;
    return 0;
fail:
    sb_privacy_scratch_free(s);
    return SB_ENOMEM;
}

void sb_privacy_scratch_free(struct sb_privacy_scratch *s)
{
    if (s == NULL)
        return;
    hs_free_scratch(s->hs);
    free(s->cands);
    free(s->kept);
    free(s->last);
    free(s->dec);
    free(s->map);
    free(s);
}

/* Makes room for one more element in a growable array of struct cand. */
static int cand_reserve(struct cand **arr, size_t n, size_t *cap)
{
    if (n < *cap)
        return 0;
    if (n >= MAX_CANDIDATES)
        return SB_ETOOBIG;
    size_t want = *cap == 0 ? 64 : *cap * 2;
    if (want > MAX_CANDIDATES)
        want = MAX_CANDIDATES;
    struct cand *a = realloc(*arr, want * sizeof *a);
    if (a == NULL)
        return SB_ENOMEM;
    *arr = a;
    *cap = want;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Scanning one piece of text
 * ------------------------------------------------------------------------------------------- */
struct scan {
    const struct sb_privacy *p;
    struct sb_privacy_scratch *s;
    const char *text;
    size_t len;
    int err; /* set when the callback stopped the scan */
};

/* Records [from, to) of kind, found through slot: when the slot's latest candidate starts at
 * the same place, it is extended instead (reports come in order of their ends, so the longest
 * valid span from each start is what remains). Returns 0 or a code for sc->err. */
static int add_cand(struct scan *sc, size_t slot, uint32_t kind, size_t from, size_t to)
{
    struct sb_privacy_scratch *s = sc->s;
    uint32_t last = s->last[slot];
    if (last != 0 && s->cands[last - 1].from == from) {
        if (to > s->cands[last - 1].to)
            s->cands[last - 1].to = (uint32_t)to;
        return 0;
    }
    int rc = cand_reserve(&s->cands, s->n_cands, &s->cap_cands);
    if (rc != 0)
        return rc;
    s->cands[s->n_cands++] = (struct cand){(uint32_t)from, (uint32_t)to, kind, sc->p->prio[kind]};
    s->last[slot] = (uint32_t)s->n_cands;
    return 0;
}

static bool is_numeric_byte(int c)
{
    return (c >= '0' && c <= '9') || c == ' ' || c == '(' || c == ')' || c == '.' || c == '-' ||
           c == '+';
}

/* A numeric token ends at `to`: walks back over it and, from each place a value may start, tries
 * the numeric kinds' parsers on the span up to `to`. The first start that parses, the leftmost,
 * gives each kind its longest value. Spans whose length or digit count a kind cannot have are
 * not parsed: on text dense with numbers, parsing is what this costs. */
static int on_numeric(struct scan *sc, size_t to)
{
    const struct sb_privacy *p = sc->p;
    const char *t = sc->text;
    size_t lo = to;
    while (lo > 0 && to - lo < NUMERIC_MAX && is_numeric_byte((unsigned char)t[lo - 1]))
        lo--;
    /* digits[k]: how many digits t[lo + k, to) holds. */
    unsigned char digits[NUMERIC_MAX + 1];
    size_t n = to - lo;
    digits[n] = 0;
    for (size_t k = n; k-- > 0;)
        digits[k] = (unsigned char)(digits[k + 1] + (t[lo + k] >= '0' && t[lo + k] <= '9'));
    uint32_t found = 0, all = (1u << p->n_numeric) - 1;
    for (size_t from = lo; from + NUMERIC_MIN <= to && found != all; from++) {
        int c = (unsigned char)t[from];
        int b = from > 0 ? (unsigned char)t[from - 1] : ' ';
        /* A value starts a token or follows a separator, never inside a number or a word. */
        if (!((c >= '0' && c <= '9') || c == '+' || c == '(') || is_word_byte(b) || b == '+' ||
            b == '(' || b == ')')
            continue;
        size_t span = to - from, nd = digits[from - lo];
        for (size_t i = 0; i < p->n_numeric; i++) {
            uint32_t kind = p->numeric[i];
            const struct detector *d = &detectors[kind];
            if ((found & (1u << i)) || span < d->min || span > d->max || nd < d->min_digits ||
                nd > d->max_digits || !d->parse(t, sc->len, from, to))
                continue;
            found |= 1u << i;
            int rc = add_cand(sc, p->n_patterns + kind, kind, from, to);
            if (rc != 0)
                return rc;
        }
    }
    return 0;
}

/* Vectorscan's match callback: validates, then records the candidate. */
static int on_match(unsigned id, unsigned long long from, unsigned long long to, unsigned flags,
                    void *ctx)
{
    SB_UNUSED(flags);
    struct scan *sc = ctx;
    const struct pattern *pat = &sc->p->patterns[id];
    size_t f = (size_t)from, e = (size_t)to;
    int rc = 0;
    if (pat->fixed > 0)
        f = e - pat->fixed;
    if (pat->kind == NUMERIC_TOKEN) {
        rc = on_numeric(sc, e);
    } else if (pat->valid == NULL || pat->valid(sc->text, sc->len, &f, &e)) {
        if (f < e)
            rc = add_cand(sc, id, pat->kind, f, e);
    }
    if (rc != 0) {
        sc->err = rc;
        return 1;
    }
    return 0;
}

/* Longer first, then higher priority (lower number), then earlier. */
static bool cand_before(const struct cand *x, const struct cand *y)
{
    uint32_t lx = x->to - x->from, ly = y->to - y->from;
    if (lx != ly)
        return lx > ly;
    if (x->prio != y->prio)
        return x->prio < y->prio;
    return x->from < y->from;
}

/* Moves a[i] down the max-heap of n elements ordered by "comes later". */
static void sift_down(struct cand *a, size_t i, size_t n)
{
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            return;
        if (c + 1 < n && cand_before(&a[c], &a[c + 1]))
            c++;
        if (!cand_before(&a[i], &a[c]))
            return;
        struct cand t = a[i];
        a[i] = a[c];
        a[c] = t;
        i = c;
    }
}

/* Sorts by cand_before in place: heapsort, so no allocation and no quadratic worst case. */
static void cand_sort(struct cand *a, size_t n)
{
    for (size_t i = n / 2; i-- > 0;)
        sift_down(a, i, n);
    for (size_t end = n; end-- > 1;) {
        struct cand t = a[0];
        a[0] = a[end];
        a[end] = t;
        sift_down(a, 0, end);
    }
}

/* Keeps the candidates that win: taken longest first, each kept unless it overlaps one kept
 * already. s->kept ends sorted by start. */
static int resolve(struct sb_privacy_scratch *s)
{
    /* Usually nothing overlaps: the candidates, in report order, are then already the answer. */
    bool disjoint = true;
    for (size_t i = 1; i < s->n_cands && disjoint; i++)
        disjoint = s->cands[i].from >= s->cands[i - 1].to;
    if (disjoint) {
        struct cand *t = s->kept;
        size_t cap = s->cap_kept;
        s->kept = s->cands;
        s->cap_kept = s->cap_cands;
        s->n_kept = s->n_cands;
        s->cands = t;
        s->cap_cands = cap;
        s->n_cands = 0;
        return 0;
    }
    s->n_kept = 0;
    cand_sort(s->cands, s->n_cands);
    for (size_t i = 0; i < s->n_cands; i++) {
        const struct cand *c = &s->cands[i];
        /* Where c would go among the kept ones (sorted by start, never overlapping). */
        size_t lo = 0, hi = s->n_kept;
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (s->kept[mid].from < c->from)
                lo = mid + 1;
            else
                hi = mid;
        }
        if ((lo > 0 && s->kept[lo - 1].to > c->from) ||
            (lo < s->n_kept && s->kept[lo].from < c->to))
            continue;
        int rc = cand_reserve(&s->kept, s->n_kept, &s->cap_kept);
        if (rc != 0)
            return rc;
        memmove(&s->kept[lo + 1], &s->kept[lo], (s->n_kept - lo) * sizeof *s->kept);
        s->kept[lo] = *c;
        s->n_kept++;
    }
    return 0;
}

/* Scans t[0, n) and leaves its matches in s->kept. */
static int scan_piece(const struct sb_privacy *p, struct sb_privacy_scratch *s, const char *t,
                      size_t n)
{
    s->n_cands = 0;
    s->n_kept = 0;
    if (n == 0)
        return 0;
    struct scan sc = {p, s, t, n, 0};
    memset(s->last, 0, s->n_slots * sizeof *s->last);
    hs_error_t hrc = hs_scan(p->db, t, (unsigned)n, 0, s->hs, on_match, &sc);
    if (hrc == HS_SCAN_TERMINATED)
        return sc.err != 0 ? sc.err : SB_EINVAL;
    if (hrc != HS_SUCCESS)
        return hrc == HS_NOMEM ? SB_ENOMEM : SB_EINVAL;
    return resolve(s);
}

/* Where a piece's matches go: fn, with offsets moved into the whole text. */
struct emit {
    sb_pii_match_fn fn;
    void *ud;
    size_t count;
};

/* Hands s->kept to e->fn. A piece starts at base in the text; map (may be NULL) translates a
 * decoded piece's offsets into the text's. */
static int emit_kept(const struct sb_privacy_scratch *s, struct emit *e, size_t base,
                     const uint32_t *map, bool bare)
{
    for (size_t i = 0; i < s->n_kept; i++) {
        const struct cand *c = &s->kept[i];
        size_t from = map != NULL ? map[c->from] : c->from;
        size_t to = map != NULL ? map[c->to] : c->to;
        /* A value that ends inside a multi-byte escape ("\u00e9") is cut before it. */
        if (from >= to)
            continue;
        struct sb_pii_match m = {c->kind, base + from, base + to, bare};
        e->count++;
        if (e->fn == NULL)
            continue;
        int rc = e->fn(e->ud, &m);
        if (rc != 0)
            return rc < 0 ? rc : SB_ECANCELED;
    }
    return 0;
}

static int scan_emit(const struct sb_privacy *p, struct sb_privacy_scratch *s, const char *t,
                     size_t n, size_t base, struct emit *e, bool bare)
{
    int rc = scan_piece(p, s, t, n);
    return rc != 0 ? rc : emit_kept(s, e, base, NULL, bare);
}

/* ---------------------------------------------------------------------------------------------
 * JSON: each string's inside is scanned decoded, and the text between strings as it is.
 * ------------------------------------------------------------------------------------------- */
/* Appends the UTF-8 encoding of cp to out; returns the bytes written. */
static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Reads 4 hex digits at t[i]; returns the value or -1. */
static long hex4(const char *t, size_t n, size_t i)
{
    if (i + 4 > n)
        return -1;
    long v = 0;
    for (size_t k = i; k < i + 4; k++) {
        int c = (unsigned char)t[k];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* What each one-letter JSON escape stands for; 0 = not an escape. */
static const char json_simple[128] = {
    ['"'] = '"',  ['\\'] = '\\', ['/'] = '/',  ['b'] = '\b',
    ['f'] = '\f', ['n'] = '\n',  ['r'] = '\r', ['t'] = '\t',
};

size_t sb__privacy_json_decode(const char *t, size_t n, char *out, uint32_t *map)
{
    size_t k = 0, i = 0;
    while (i < n) {
        int c = (unsigned char)t[i];
        int e = i + 1 < n ? (unsigned char)t[i + 1] : 0;
        size_t start = i;
        if (c != '\\' || e >= 128 || (e != 'u' && json_simple[e] == 0)) {
            if (map != NULL)
                map[k] = (uint32_t)i;
            out[k++] = (char)c;
            i++;
            continue;
        }
        if (e != 'u') {
            if (map != NULL)
                map[k] = (uint32_t)i;
            out[k++] = json_simple[e];
            i += 2;
            continue;
        }
        long cp = hex4(t, n, i + 2);
        if (cp < 0) { /* "\u" without four hex digits: kept as it is */
            if (map != NULL)
                map[k] = (uint32_t)i;
            out[k++] = (char)c;
            i++;
            continue;
        }
        i += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            long lo = i + 1 < n && t[i] == '\\' && t[i + 1] == 'u' ? hex4(t, n, i + 2) : -1;
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                i += 6;
            } else {
                cp = 0xFFFD;
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = 0xFFFD;
        }
        size_t w = utf8_put(out + k, (uint32_t)cp);
        for (size_t j = 0; j < w && map != NULL; j++)
            map[k + j] = (uint32_t)start;
        k += w;
    }
    if (map != NULL)
        map[k] = (uint32_t)n;
    return k;
}

static int scan_json(const struct sb_privacy *p, struct sb_privacy_scratch *s, const char *t,
                     size_t n, struct emit *e)
{
    size_t i = 0, region = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (t[i] != '"') {
            i++;
            continue;
        }
        rc = scan_emit(p, s, t + region, i - region, region, e, true);
        size_t j = i + 1;
        bool escaped = false;
        while (j < n && t[j] != '"') {
            escaped |= t[j] == '\\';
            j += t[j] == '\\' ? 2 : 1;
        }
        if (j > n)
            j = n;
        size_t cs = i + 1, cn = j - cs;
        if (rc == 0 && !escaped) {
            rc = scan_emit(p, s, t + cs, cn, cs, e, false);
        } else if (rc == 0) {
            if (cn + 1 > s->cap_dec) {
                char *dec = realloc(s->dec, cn + 1);
                if (dec != NULL)
                    s->dec = dec;
                uint32_t *map = realloc(s->map, (cn + 1) * sizeof *map);
                if (map != NULL)
                    s->map = map;
                if (dec == NULL || map == NULL)
                    return SB_ENOMEM;
                s->cap_dec = cn + 1;
            }
            size_t m = sb__privacy_json_decode(t + cs, cn, s->dec, s->map);
            rc = scan_piece(p, s, s->dec, m);
            if (rc == 0)
                rc = emit_kept(s, e, cs, s->map, false);
        }
        i = j + 1;
        region = i < n ? i : n;
    }
    if (rc == 0 && region < n)
        rc = scan_emit(p, s, t + region, n - region, region, e, true);
    return rc;
}

int sb_privacy_scan(const struct sb_privacy *p, struct sb_privacy_scratch *s, struct sb_str text,
                    unsigned flags, sb_pii_match_fn fn, void *ud)
{
    if (s->n_patterns != p->n_patterns)
        return SB_EINVAL; /* a scratch made for another sb_privacy */
    if (p->db == NULL || text.len == 0)
        return 0;
    if (text.len >= UINT32_MAX)
        return SB_ETOOBIG;
    struct emit e = {fn, ud, 0};
    int rc = (flags & SB_PRIVACY_SCAN_JSON) ? scan_json(p, s, text.p, text.len, &e)
                                            : scan_emit(p, s, text.p, text.len, 0, &e, false);
    if (rc != 0)
        return rc;
    return e.count > INT32_MAX ? INT32_MAX : (int)e.count;
}

/* ---------------------------------------------------------------------------------------------
 * Counting, and the texts of a request
 * ------------------------------------------------------------------------------------------- */
static int count_one(void *ud, const struct sb_pii_match *m)
{
    struct sb_pii_counts *counts = ud;
    if (m->kind < SB_PRIVACY_MAX_KINDS) {
        counts->by_kind[m->kind]++;
        counts->kinds |= (uint64_t)1 << m->kind;
    }
    counts->total++;
    return 0;
}

int sb_privacy_count(const struct sb_privacy *p, struct sb_privacy_scratch *s, struct sb_str text,
                     unsigned flags, struct sb_pii_counts *counts)
{
    return sb_privacy_scan(p, s, text, flags, count_one, counts);
}

int sb__privacy_each_text(struct sb_request *req, sb__privacy_text_fn fn, void *ud)
{
    int rc = 0;
    for (size_t i = 0; i < req->n_messages && rc == 0; i++) {
        struct sb_message *m = &req->messages[i];
        for (size_t j = 0; j < m->n_parts && rc == 0; j++)
            if (m->parts[j].type == SB_PART_TEXT)
                rc = fn(ud, &m->parts[j].text, 0);
        if (rc == 0)
            rc = fn(ud, &m->name, 0);
        for (size_t j = 0; j < m->n_tool_calls && rc == 0; j++)
            rc = fn(ud, &m->tool_calls[j].arguments, SB_PRIVACY_SCAN_JSON);
    }
    for (size_t i = 0; i < req->n_tools && rc == 0; i++) {
        rc = fn(ud, &req->tools[i].description, 0);
        if (rc == 0)
            rc = fn(ud, &req->tools[i].parameters, SB_PRIVACY_SCAN_JSON);
    }
    /* A chat built from a prompt sends its messages; the prompt itself stays here. */
    if (rc == 0 && !req->from_prompt)
        rc = fn(ud, &req->prompt, 0);
    for (size_t i = 0; i < req->n_inputs && rc == 0; i++)
        rc = fn(ud, &req->inputs[i], 0);
    for (size_t i = 0; i < req->n_stop && i < SB_MAX_STOP && rc == 0; i++)
        rc = fn(ud, &req->stop[i], 0);
    if (rc == 0)
        rc = fn(ud, &req->user, 0);
    return rc;
}

struct request_count {
    const struct sb_privacy *p;
    struct sb_privacy_scratch *s;
    struct sb_pii_counts *counts;
};

static int count_text(void *ud, struct sb_str *text, unsigned flags)
{
    struct request_count *rc = ud;
    int n = sb_privacy_count(rc->p, rc->s, *text, flags, rc->counts);
    return n < 0 ? n : 0;
}

int sb_privacy_scan_request(const struct sb_privacy *p, struct sb_privacy_scratch *s,
                            const struct sb_request *req, struct sb_pii_counts *out)
{
    memset(out, 0, sizeof *out);
    /* The walk hands out mutable views; a shallow copy keeps req itself untouched. */
    struct sb_request copy = *req;
    struct request_count rc = {p, s, out};
    return sb__privacy_each_text(&copy, count_text, &rc);
}
