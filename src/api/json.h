/* Typed reading of jansson values for the wire codecs: each reader checks a field's type and range
 * and, on failure, fills an sb_api_error with the field's JSON path as param and a message in
 * OpenAI's words ("Invalid type for 'temperature': expected a number, but got a string instead.").
 */
#ifndef SB_API_JSON_H
#define SB_API_JSON_H

#include <jansson.h>

#include "api/api.h"

/* One parse in progress: where strings are copied, where an error goes, and the path of the value
 * being read ("messages[2].content"), kept as a stack so nested readers can say where they are. */
struct sb__json {
    struct sb_arena *a;       /* borrowed; strings read are copied here */
    struct sb_api_error *err; /* borrowed; filled by the first failure */
    size_t path_len;
    char path[sizeof(((struct sb_api_error *)0)->param)]; /* truncated when deeper than a param */
};

/* Prepares j for one body; a and err are borrowed for j's life. */
void sb__json_init(struct sb__json *j, struct sb_arena *a, struct sb_api_error *err);

/* Parses body as one JSON object. Duplicate keys and \u0000 are rejected: a body that means two
 * things to two parsers, or a string that C code would silently cut short, is not worth accepting.
 * jansson bounds nesting (JSON_PARSER_MAX_DEPTH) and rejects invalid UTF-8. On success *out is a
 * new reference the caller releases with json_decref. Returns 0, SB_EINVAL (400) or SB_ENOMEM. */
int sb__json_load(struct sb__json *j, struct sb_str body, json_t **out);

/* Path stack. Each push returns a mark; pop restores the path to it. */
size_t sb__json_push_key(struct sb__json *j, const char *key);
size_t sb__json_push_index(struct sb__json *j, size_t index);
void sb__json_pop(struct sb__json *j, size_t mark);

/* ---------------------------------------------------------------------------------------------
 * Failures. Each fills j->err (400 invalid_request_error, param = the current path, unless said
 * otherwise) and returns the code to return from the parse.
 * ------------------------------------------------------------------------------------------- */
/* code is static or NULL. Returns SB_EINVAL. */
int sb__json_fail(struct sb__json *j, const char *code, const char *fmt, ...) SB_PRINTF(3, 4);
/* "Invalid type for '<path>': expected <expected>, but got <v's kind> instead." Returns SB_EINVAL.
 */
int sb__json_fail_type(struct sb__json *j, const json_t *v, const char *expected);
/* "Missing required parameter: '<path>'." Returns SB_EINVAL. */
int sb__json_fail_missing(struct sb__json *j);
/* The arena (bounded per request) or malloc refused: 413 request_too_large. Returns SB_ENOMEM. */
int sb__json_fail_nomem(struct sb__json *j);
/* "Invalid '<path>': <what>" with code, key pushed on the path for it (the current path when key
 * is NULL). Returns SB_EINVAL. */
int sb__json_fail_at(struct sb__json *j, const char *key, const char *code, const char *what);
/* n entries of size bytes from the arena (uninitialised), or NULL when n is 0, n * size overflows
 * or the arena refuses. */
void *sb__json_alloc_array(struct sb__json *j, size_t n, size_t size);
/* "a string", "an integer", "null", ...: how a value's kind reads in an error message. Static. */
const char *sb__json_kind(const json_t *v);

/* ---------------------------------------------------------------------------------------------
 * Readers. obj is a JSON object; key is looked up in it and pushed on the path while it is read.
 * A member that is absent or JSON null counts as not given (clients send null for "default"):
 * optional readers then leave *out untouched and return 0; required ones fail "Missing".
 * Strings are copied into the arena (NUL-terminated); views stay valid as long as it.
 * ------------------------------------------------------------------------------------------- */
/* Returns obj[key], or NULL when it is absent or null. Borrowed from obj. */
json_t *sb__json_get(const json_t *obj, const char *key);

/* Copies a string value (the path already names it). Returns 0, SB_EINVAL or SB_ENOMEM. */
int sb__json_string_value(struct sb__json *j, const json_t *v, struct sb_str *out);
int sb__json_string(struct sb__json *j, const json_t *obj, const char *key, bool required,
                    struct sb_str *out);
int sb__json_bool(struct sb__json *j, const json_t *obj, const char *key, bool *out);
/* *out is a borrowed reference into obj. */
int sb__json_object(struct sb__json *j, const json_t *obj, const char *key, bool required,
                    json_t **out);
/* Fails "empty array" when the array is shorter than min_len. *out is borrowed from obj. */
int sb__json_array(struct sb__json *j, const json_t *obj, const char *key, bool required,
                   size_t min_len, json_t **out);
/* Copies v's compact JSON text into the arena (a tool's parameters schema, say). */
int sb__json_dump(struct sb__json *j, const json_t *v, struct sb_str *out);

/* A string that must be one of a table's names; *out gets the matching value. The error lists the
 * supported names. */
struct sb__json_enum {
    const char *name;
    int value;
};
int sb__json_enum_value(struct sb__json *j, const json_t *v, const struct sb__json_enum *table,
                        size_t n, int *out);
int sb__json_enum(struct sb__json *j, const json_t *obj, const char *key, bool required,
                  const struct sb__json_enum *table, size_t n, int *out);

/* ---------------------------------------------------------------------------------------------
 * Numeric fields as data: a table of (key, type, range, where it lands) read into any struct, so
 * that a codec's sampling parameters are one table and not a page of branches.
 * ------------------------------------------------------------------------------------------- */
enum sb__json_num_type {
    SB__JSON_F32, /* float; integers and decimals accepted */
    SB__JSON_I32, /* int32_t; integers only */
    SB__JSON_I64, /* int64_t; integers only */
    SB__JSON_U64, /* uint64_t from any integer, negative ones wrapped (seeds) */
};
#define SB__JSON_MIN_EXCLUSIVE 0x1u /* the minimum itself is out of range */
#define SB__JSON_NO_FLAG       ((size_t)-1)

struct sb__json_num {
    const char *key;
    enum sb__json_num_type type;
    double min, max; /* inclusive unless flags say otherwise */
    unsigned flags;
    size_t offset;     /* where the value lands in dst */
    size_t set_offset; /* a bool in dst set true when the key is given, or SB__JSON_NO_FLAG */
};
/* Reads each field of the table that obj has, in table order (a later entry with the same offset
 * wins), into dst. Returns 0 or SB_EINVAL at the first bad field. */
int sb__json_numbers(struct sb__json *j, const json_t *obj, const struct sb__json_num *table,
                     size_t n, void *dst);

#endif
