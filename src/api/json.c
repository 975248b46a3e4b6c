/* Typed reading of jansson values with client-facing errors, shared by the wire codecs (see
 * json.h). */
#include "api/json.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sb__json_init(struct sb__json *j, struct sb_arena *a, struct sb_api_error *err)
{
    j->a = a;
    j->err = err;
    j->path_len = 0;
    j->path[0] = '\0';
}

/* ---------------------------------------------------------------------------------------------
 * Path stack
 * ------------------------------------------------------------------------------------------- */

/* Appends text to the path; a path deeper than a param is cut, which only shortens an error's
 * param. */
static void path_append(struct sb__json *j, const char *text, size_t len)
{
    size_t room = sizeof(j->path) - 1 - j->path_len;

    len = SB_MIN(len, room);
    memcpy(j->path + j->path_len, text, len);
    j->path_len += len;
    j->path[j->path_len] = '\0';
}

size_t sb__json_push_key(struct sb__json *j, const char *key)
{
    size_t mark = j->path_len;

    if (j->path_len)
        path_append(j, ".", 1);
    path_append(j, key, strlen(key));
    return mark;
}

size_t sb__json_push_index(struct sb__json *j, size_t index)
{
    size_t mark = j->path_len;
    char text[32];
    int n = snprintf(text, sizeof(text), "[%zu]", index);

    if (n > 0)
        path_append(j, text, SB_MIN((size_t)n, sizeof(text) - 1));
    return mark;
}

void sb__json_pop(struct sb__json *j, size_t mark)
{
    if (mark < sizeof(j->path)) {
        j->path_len = mark;
        j->path[mark] = '\0';
    }
}

/* ---------------------------------------------------------------------------------------------
 * Failures
 * ------------------------------------------------------------------------------------------- */

/* Indexed by json_type. */
static const char *const kind_names[] = {
    [JSON_OBJECT] = "an object",      [JSON_ARRAY] = "an array",
    [JSON_STRING] = "a string",       [JSON_INTEGER] = "an integer",
    [JSON_REAL] = "a decimal number", [JSON_TRUE] = "a boolean",
    [JSON_FALSE] = "a boolean",       [JSON_NULL] = "null",
};

const char *sb__json_kind(const json_t *v)
{
    size_t t;

    if (!v)
        return "nothing";
    t = (size_t)json_typeof(v);
    return t < SB_ARRAY_LEN(kind_names) && kind_names[t] ? kind_names[t] : "an unknown value";
}

int sb__json_fail(struct sb__json *j, const char *code, const char *fmt, ...)
{
    va_list ap;

    j->err->http_status = 400;
    j->err->type = "invalid_request_error";
    j->err->code = code;
    memcpy(j->err->param, j->path, j->path_len + 1);
    va_start(ap, fmt);
    vsnprintf(j->err->message, sizeof(j->err->message), fmt, ap);
    va_end(ap);
    return SB_EINVAL;
}

int sb__json_fail_type(struct sb__json *j, const json_t *v, const char *expected)
{
    return sb__json_fail(j, "invalid_type",
                         "Invalid type for '%s': expected %s, but got %s instead.", j->path,
                         expected, sb__json_kind(v));
}

int sb__json_fail_missing(struct sb__json *j)
{
    return sb__json_fail(j, "missing_required_parameter", "Missing required parameter: '%s'.",
                         j->path);
}

int sb__json_fail_nomem(struct sb__json *j)
{
    /* The arena cannot tell its own limit from malloc failing; both mean this request asks for
     * more memory than the server will give one request, which is the client's to fix. */
    sb__json_fail(j, "request_too_large",
                  "The request is too large to process: it needs more memory than this server "
                  "allows one request. Send fewer or shorter messages.");
    j->err->http_status = 413;
    j->err->param[0] = '\0';
    return SB_ENOMEM;
}

int sb__json_fail_at(struct sb__json *j, const char *key, const char *code, const char *what)
{
    size_t mark = key ? sb__json_push_key(j, key) : j->path_len;
    int rc = sb__json_fail(j, code, "Invalid '%s': %s", j->path, what);

    sb__json_pop(j, mark);
    return rc;
}

void *sb__json_alloc_array(struct sb__json *j, size_t n, size_t size)
{
    if (n == 0 || n > SIZE_MAX / size)
        return NULL;
    return sb_arena_alloc(j->a, n * size);
}

/* ---------------------------------------------------------------------------------------------
 * Loading
 * ------------------------------------------------------------------------------------------- */

int sb__json_load(struct sb__json *j, struct sb_str body, json_t **out)
{
    json_error_t e;
    json_t *root;

    *out = NULL;
    /* jansson reads a NULL buffer of length 0 as an error, which is what an empty body is. */
    root = json_loadb(body.p ? body.p : "", body.len, JSON_REJECT_DUPLICATES, &e);
    if (!root) {
        if (json_error_code(&e) == json_error_out_of_memory)
            return sb__json_fail_nomem(j);
        return sb__json_fail(j, NULL,
                             "We could not parse the JSON body of your request: %s (line %d, "
                             "column %d). The API expects a JSON object.",
                             e.text, e.line, e.column);
    }
    if (!json_is_object(root)) {
        sb__json_fail(j, NULL,
                      "The body of your request must be a JSON object, but it is %s. The API "
                      "expects a JSON object.",
                      sb__json_kind(root));
        json_decref(root);
        return SB_EINVAL;
    }
    *out = root;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Readers
 * ------------------------------------------------------------------------------------------- */

json_t *sb__json_get(const json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    return json_is_null(v) ? NULL : v;
}

int sb__json_string_value(struct sb__json *j, const json_t *v, struct sb_str *out)
{
    const char *s;
    size_t len;
    char *copy;

    if (!json_is_string(v))
        return sb__json_fail_type(j, v, "a string");
    s = json_string_value(v);
    len = json_string_length(v);
    copy = sb_arena_strndup(j->a, s, len);
    if (!copy)
        return sb__json_fail_nomem(j);
    *out = (struct sb_str){copy, len};
    return 0;
}

int sb__json_string(struct sb__json *j, const json_t *obj, const char *key, bool required,
                    struct sb_str *out)
{
    json_t *v = sb__json_get(obj, key);
    size_t mark = sb__json_push_key(j, key);
    int rc = 0;

    if (v)
        rc = sb__json_string_value(j, v, out);
    else if (required)
        rc = sb__json_fail_missing(j);
    sb__json_pop(j, mark);
    return rc;
}

int sb__json_bool(struct sb__json *j, const json_t *obj, const char *key, bool *out)
{
    json_t *v = sb__json_get(obj, key);
    size_t mark;
    int rc = 0;

    if (!v)
        return 0;
    mark = sb__json_push_key(j, key);
    if (json_is_boolean(v))
        *out = json_is_true(v);
    else
        rc = sb__json_fail_type(j, v, "a boolean");
    sb__json_pop(j, mark);
    return rc;
}

int sb__json_object(struct sb__json *j, const json_t *obj, const char *key, bool required,
                    json_t **out)
{
    json_t *v = sb__json_get(obj, key);
    size_t mark = sb__json_push_key(j, key);
    int rc = 0;

    if (!v) {
        if (required)
            rc = sb__json_fail_missing(j);
    } else if (!json_is_object(v)) {
        rc = sb__json_fail_type(j, v, "an object");
    } else {
        *out = v;
    }
    sb__json_pop(j, mark);
    return rc;
}

int sb__json_array(struct sb__json *j, const json_t *obj, const char *key, bool required,
                   size_t min_len, json_t **out)
{
    json_t *v = sb__json_get(obj, key);
    size_t mark = sb__json_push_key(j, key);
    int rc = 0;

    if (!v) {
        if (required)
            rc = sb__json_fail_missing(j);
    } else if (!json_is_array(v)) {
        rc = sb__json_fail_type(j, v, "an array");
    } else if (json_array_size(v) < min_len) {
        rc = sb__json_fail(j, "empty_array",
                           "Invalid '%s': empty array. Expected an array with minimum length %zu, "
                           "but got an empty array instead.",
                           j->path, min_len);
    } else {
        *out = v;
    }
    sb__json_pop(j, mark);
    return rc;
}

int sb__json_dump(struct sb__json *j, const json_t *v, struct sb_str *out)
{
    char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
    char *copy;
    size_t len;

    if (!text)
        return sb__json_fail_nomem(j);
    len = strlen(text);
    copy = sb_arena_strndup(j->a, text, len);
    free(text);
    if (!copy)
        return sb__json_fail_nomem(j);
    *out = (struct sb_str){copy, len};
    return 0;
}

int sb__json_enum_value(struct sb__json *j, const json_t *v, const struct sb__json_enum *table,
                        size_t n, int *out)
{
    char supported[256];
    size_t used = 0;
    const char *s;

    if (!json_is_string(v))
        return sb__json_fail_type(j, v, "a string");
    s = json_string_value(v);
    for (size_t i = 0; i < n; i++) {
        /* Lengths first: a value with an embedded NUL must not match a shorter name. */
        if (json_string_length(v) == strlen(table[i].name) && strcmp(s, table[i].name) == 0) {
            *out = table[i].value;
            return 0;
        }
    }
    supported[0] = '\0';
    for (size_t i = 0; i < n && used < sizeof(supported); i++) {
        const char *sep = i == 0 ? "" : (i + 1 == n ? (n > 2 ? ", and " : " and ") : ", ");
        int w = snprintf(supported + used, sizeof(supported) - used, "%s'%s'", sep, table[i].name);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    /* The value is the client's own input; quoting up to 64 bytes of it helps spot typos. */
    return sb__json_fail(j, "invalid_value",
                         "Invalid value for '%s': '%.64s'. Supported values are: %s.", j->path, s,
                         supported);
}

int sb__json_enum(struct sb__json *j, const json_t *obj, const char *key, bool required,
                  const struct sb__json_enum *table, size_t n, int *out)
{
    json_t *v = sb__json_get(obj, key);
    size_t mark = sb__json_push_key(j, key);
    int rc = 0;

    if (v)
        rc = sb__json_enum_value(j, v, table, n, out);
    else if (required)
        rc = sb__json_fail_missing(j);
    sb__json_pop(j, mark);
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Numeric tables
 * ------------------------------------------------------------------------------------------- */

/* Checks one value against its field's type and range; x is the value as a double. */
static int check_number(struct sb__json *j, const struct sb__json_num *f, const json_t *v,
                        double *x)
{
    bool integral = f->type != SB__JSON_F32;
    const char *what = integral ? "integer" : "decimal";
    bool below, above;

    if (integral ? !json_is_integer(v) : !json_is_number(v))
        return sb__json_fail_type(j, v, integral ? "an integer" : "a number");
    *x = json_number_value(v);
    below = (f->flags & SB__JSON_MIN_EXCLUSIVE) ? *x <= f->min : *x < f->min;
    above = *x > f->max;
    if (below)
        return sb__json_fail(j, integral ? "integer_below_min_value" : "decimal_below_min_value",
                             "Invalid '%s': %s below minimum value. Expected a value %s %.15g, "
                             "but got %.15g instead.",
                             j->path, what,
                             (f->flags & SB__JSON_MIN_EXCLUSIVE) ? ">" : ">=", f->min, *x);
    if (above)
        return sb__json_fail(j, integral ? "integer_above_max_value" : "decimal_above_max_value",
                             "Invalid '%s': %s above maximum value. Expected a value <= %.15g, "
                             "but got %.15g instead.",
                             j->path, what, f->max, *x);
    return 0;
}

int sb__json_numbers(struct sb__json *j, const json_t *obj, const struct sb__json_num *table,
                     size_t n, void *dst)
{
    char *base = dst;

    for (size_t i = 0; i < n; i++) {
        const struct sb__json_num *f = &table[i];
        json_t *v = sb__json_get(obj, f->key);
        size_t mark;
        double x = 0;
        int rc;

        if (!v)
            continue;
        mark = sb__json_push_key(j, f->key);
        rc = check_number(j, f, v, &x);
        sb__json_pop(j, mark);
        if (rc)
            return rc;
        /* memcpy, not a cast store: offsets come from offsetof, so alignment holds, but this
         * keeps the one generic pointer free of aliasing questions. */
        switch (f->type) {
        case SB__JSON_F32: {
            float val = (float)x;
            memcpy(base + f->offset, &val, sizeof(val));
            break;
        }
        case SB__JSON_I32: {
            int32_t val = (int32_t)json_integer_value(v);
            memcpy(base + f->offset, &val, sizeof(val));
            break;
        }
        case SB__JSON_I64: {
            int64_t val = (int64_t)json_integer_value(v);
            memcpy(base + f->offset, &val, sizeof(val));
            break;
        }
        case SB__JSON_U64: {
            uint64_t val = (uint64_t)json_integer_value(v);
            memcpy(base + f->offset, &val, sizeof(val));
            break;
        }
        }
        if (f->set_offset != SB__JSON_NO_FLAG) {
            bool set = true;
            memcpy(base + f->set_offset, &set, sizeof(set));
        }
    }
    return 0;
}
