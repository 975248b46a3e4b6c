/* The configuration module's private vocabulary: the key tables that describe every section, and
 * the helpers its files share. Nothing outside src/config (and its tests) includes this. */
#ifndef SB_CONFIG_INTERNAL_H
#define SB_CONFIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"

/* ---------------------------------------------------------------------------------------------
 * Key tables. A section is a YAML mapping filled into one C struct; each key names its field by
 * offset and says how its text converts. Parsing, defaults, freeing and the summary all walk the
 * same tables, so a new section is a new table (plus its struct fields), not new code.
 * ------------------------------------------------------------------------------------------- */
enum sb__cfg_type {
    SB__CFG_STR,      /* char *, owned; the scalar as written (after ${ENV} expansion) */
    SB__CFG_INT,      /* int32_t or int64_t (by the field's size), within [min, max] */
    SB__CFG_SIZE,     /* size_t, within [min, max] */
    SB__CFG_BOOL,     /* bool: true/false (also yes/no, on/off) */
    SB__CFG_ENUM,     /* char *, owned; one of choices */
    SB__CFG_STR_LIST, /* char **, owned, with a size_t count at count_offset */
    SB__CFG_MAP,      /* an embedded struct described by section */
    SB__CFG_LIST,     /* an owned array of section structs, with a size_t count at count_offset */
};

enum {
    SB__CFG_REQUIRED = 1u << 0, /* the key must be present */
    SB__CFG_PATH = 1u << 1,     /* STR/STR_LIST: relative values are taken from the file's folder */
    SB__CFG_SECRET = 1u << 2,   /* never printed (API keys) */
    SB__CFG_URL_PASSWORD = 1u << 3, /* STR: printed with a URL's password as "***" */
};

struct sb__cfg_section;

struct sb__cfg_key {
    const char *name;           /* the YAML key */
    enum sb__cfg_type type;     /* how its text converts, and what field it fills */
    size_t offset;              /* of the field in the section's struct */
    size_t size;                /* of that field (integers come in two widths) */
    int64_t min, max;           /* INT and SIZE: the accepted range, inclusive */
    const char *def;            /* the default as YAML text, converted like a value; NULL = zero */
    const char *const *choices; /* ENUM: NULL-terminated */
    const struct sb__cfg_section *section; /* MAP and LIST: what each entry holds */
    size_t count_offset;                   /* STR_LIST and LIST: the size_t element count */
    unsigned flags;                        /* SB__CFG_* */
    const char *doc;                       /* one line: what the key means */
};

struct sb__cfg_check;

struct sb__cfg_section {
    const char *name;               /* for docs: "listen", "models[]" */
    const struct sb__cfg_key *keys; /* the rows, in the order the summary prints them */
    size_t n_keys;                  /* at most SB__CFG_MAX_KEYS */
    size_t size;                    /* of the struct one entry fills; LIST elements are this big */
    /* LIST entries: int fields that receive where the entry starts (1-based); 0 = none. */
    size_t line_offset, column_offset;
    /* LIST entries: a STR key whose values must differ between entries, or NULL. */
    const char *unique_key;
    /* Rules that span keys, run after an entry's keys are read (fields that failed to convert
     * hold their defaults); may be NULL. */
    void (*check)(struct sb__cfg_check *chk, void *entry);
};

#define SB__CFG_MAX_KEYS 64

/* The root section: what a whole file describes (struct sb_config). */
const struct sb__cfg_section *sb__config_root_section(void);

/* A backend kind the config accepts, and the keys an entry of that kind must have. Adding a kind
 * is one row in the table config.c keeps. */
struct sb__backend_kind {
    const char *name;            /* the value of `backend:` */
    const char *const *required; /* NULL-terminated key names */
    const char *doc;
};

/* The known kinds; *n receives how many. */
const struct sb__backend_kind *sb__config_backend_kinds(size_t *n);

/* ---------------------------------------------------------------------------------------------
 * Helpers shared by the module's files.
 * ------------------------------------------------------------------------------------------- */
/* Appends in to out with ${NAME} and ${NAME:-default} replaced by the environment's values and
 * $$ by $; any other $ is kept. ":-" uses default when NAME is unset or empty; default is literal
 * text up to the first '}'. Returns 0; SB_EINVAL with a description of the first problem (an unset
 * variable, a malformed reference) appended to why and out left partly written; SB_ENOMEM or
 * SB_ETOOBIG from out. */
int sb__config_expand_env(struct sb_str in, struct sb_buf *out, struct sb_buf *why);

/* The optimal-string-alignment distance between a and b (edits, with adjacent swaps counting
 * one), or limit + 1 once it is known to exceed limit. */
size_t sb__config_edit_distance(const char *a, const char *b, size_t limit);

/* Returns a malloc'd "dir/path" (dir may be NULL or empty: path alone), or NULL when out of memory.
 * The caller frees it. */
char *sb__config_join_path(const char *dir, const char *path);

#endif
