/* Pseudonymization: a request's detected values swapped for typed placeholders (<EMAIL_1>), the
 * mapping kept in the request's arena only, and the response restored, also across stream chunks
 * and inside JSON tool-call arguments. */
#include <stdio.h>
#include <string.h>

#include "privacy/internal.h"

/* ---------------------------------------------------------------------------------------------
 * The map: entries in arena memory, found by value (pseudonymizing) and by placeholder
 * (restoring) through two open-addressing tables of entry numbers.
 * ------------------------------------------------------------------------------------------- */
/* The work buffer a rewritten text is built in; a text larger than this is refused. */
#define WORK_MAX ((size_t)256 << 20)

struct entry {
    uint32_t kind;
    bool reserved;             /* a placeholder the request's own text uses: never restored */
    struct sb_str value;       /* the value as the user wrote it (JSON escapes decoded) */
    struct sb_str placeholder; /* "<EMAIL_1>" */
};

struct sb_privacy_map {
    const struct sb_privacy *p;
    struct sb_arena *arena;
    struct entry *entries;
    size_t n, cap;
    uint32_t *by_value;                  /* 1 + entry index, 0 = empty; keyed by (kind, value) */
    uint32_t *by_ph;                     /* keyed by placeholder */
    size_t slots;                        /* a power of two, more than twice n */
    uint32_t next[SB_PRIVACY_MAX_KINDS]; /* the last number handed out per kind */
    size_t n_values;                     /* entries that are not reserved */
};

static uint64_t hash_bytes(uint64_t h, const char *s, size_t n)
{
    /* FNV-1a: short keys, no adversary to fear (a request hashes its own values). */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t value_hash(uint32_t kind, struct sb_str v)
{
    return hash_bytes(0xcbf29ce484222325ULL ^ ((uint64_t)kind * 0x9E3779B97F4A7C15ULL), v.p, v.len);
}

static uint64_t ph_hash(struct sb_str ph)
{
    return hash_bytes(0xcbf29ce484222325ULL, ph.p, ph.len);
}

static void table_put(uint32_t *table, size_t slots, uint64_t h, uint32_t idx)
{
    size_t i = (size_t)h & (slots - 1);
    while (table[i] != 0)
        i = (i + 1) & (slots - 1);
    table[i] = idx + 1;
}

/* Doubles the tables (rehashing every entry) when they are half full. */
static int map_grow(struct sb_privacy_map *m)
{
    if (m->n + 1 <= m->slots / 2)
        return 0;
    size_t slots = m->slots == 0 ? 64 : m->slots * 2;
    uint32_t *bv = sb_arena_alloc(m->arena, slots * sizeof *bv);
    uint32_t *bp = sb_arena_alloc(m->arena, slots * sizeof *bp);
    if (bv == NULL || bp == NULL)
        return SB_ENOMEM;
    for (size_t i = 0; i < m->n; i++) {
        const struct entry *e = &m->entries[i];
        if (!e->reserved)
            table_put(bv, slots, value_hash(e->kind, e->value), (uint32_t)i);
        table_put(bp, slots, ph_hash(e->placeholder), (uint32_t)i);
    }
    m->by_value = bv;
    m->by_ph = bp;
    m->slots = slots;
    return 0;
}

/* Appends an entry (copying nothing: the views must already live in the arena). */
static int map_add(struct sb_privacy_map *m, struct entry e, const struct entry **out)
{
    if (map_grow(m) != 0)
        return SB_ENOMEM;
    if (m->n == m->cap) {
        size_t cap = m->cap == 0 ? 16 : m->cap * 2;
        struct entry *arr = sb_arena_alloc(m->arena, cap * sizeof *arr);
        if (arr == NULL)
            return SB_ENOMEM;
        if (m->n > 0)
            memcpy(arr, m->entries, m->n * sizeof *arr);
        m->entries = arr;
        m->cap = cap;
    }
    uint32_t idx = (uint32_t)m->n;
    m->entries[m->n++] = e;
    if (!e.reserved) {
        table_put(m->by_value, m->slots, value_hash(e.kind, e.value), idx);
        m->n_values++;
    }
    table_put(m->by_ph, m->slots, ph_hash(e.placeholder), idx);
    if (out != NULL)
        *out = &m->entries[idx];
    return 0;
}

static const struct entry *map_find_value(const struct sb_privacy_map *m, uint32_t kind,
                                          struct sb_str v)
{
    if (m->slots == 0)
        return NULL;
    for (size_t i = (size_t)value_hash(kind, v) & (m->slots - 1); m->by_value[i] != 0;
         i = (i + 1) & (m->slots - 1)) {
        const struct entry *e = &m->entries[m->by_value[i] - 1];
        if (e->kind == kind && sb_str_eq(e->value, v))
            return e;
    }
    return NULL;
}

static const struct entry *map_find_ph(const struct sb_privacy_map *m, struct sb_str ph)
{
    if (m == NULL || m->slots == 0)
        return NULL;
    for (size_t i = (size_t)ph_hash(ph) & (m->slots - 1); m->by_ph[i] != 0;
         i = (i + 1) & (m->slots - 1)) {
        const struct entry *e = &m->entries[m->by_ph[i] - 1];
        if (sb_str_eq(e->placeholder, ph))
            return e;
    }
    return NULL;
}

size_t sb_privacy_map_size(const struct sb_privacy_map *map)
{
    return map != NULL ? map->n_values : 0;
}

/* ---------------------------------------------------------------------------------------------
 * Placeholders
 * ------------------------------------------------------------------------------------------- */
static bool is_ph_byte(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* If s starts with a placeholder ("<" TAG "_" digits ">"), returns its length and sets *tag_len;
 * else returns 0. */
static size_t ph_parse(const char *s, size_t n, size_t *tag_len)
{
    if (n < 4 || s[0] != '<' || !(s[1] >= 'A' && s[1] <= 'Z'))
        return 0;
    size_t i = 1;
    while (i < n && i < SB_PRIVACY_PLACEHOLDER_MAX && is_ph_byte((unsigned char)s[i]))
        i++;
    if (i >= n || s[i] != '>')
        return 0;
    size_t d = i;
    while (d > 1 && s[d - 1] >= '0' && s[d - 1] <= '9')
        d--;
    if (d == i || s[d - 1] != '_' || d - 1 <= 1 || s[d] == '0')
        return 0;
    *tag_len = d - 2;
    return i + 1;
}

/* The kind whose tag is tag, or -1. */
static int64_t kind_of_tag(const struct sb_privacy *p, struct sb_str tag)
{
    for (uint32_t k = 0; k < sb_privacy_n_kinds(p); k++)
        if (sb_str_eq_c(tag, sb_privacy_kind_tag(p, k)))
            return k;
    return -1;
}

/* Marks every placeholder of a known tag that text already holds, so that numbering skips it
 * and restoring leaves it alone. */
static int reserve_text(void *ud, struct sb_str *text, unsigned flags)
{
    SB_UNUSED(flags);
    struct sb_privacy_map *m = ud;
    const char *s = text->p;
    size_t n = text->len, i = 0;
    while (i < n) {
        const char *lt = memchr(s + i, '<', n - i);
        if (lt == NULL)
            break;
        i = (size_t)(lt - s);
        size_t tag_len = 0, len = ph_parse(lt, n - i, &tag_len);
        if (len == 0) {
            i++;
            continue;
        }
        struct sb_str ph = {lt, len};
        int64_t kind = kind_of_tag(m->p, (struct sb_str){lt + 1, tag_len});
        if (kind >= 0 && map_find_ph(m, ph) == NULL) {
            int err = 0;
            struct entry e = {(uint32_t)kind, true, SB_STR_NULL, sb_arena_str(m->arena, ph, &err)};
            if (err != 0 || map_add(m, e, NULL) != 0)
                return SB_ENOMEM;
        }
        i += len;
    }
    return 0;
}

/* The placeholder for value v of kind, made on first sight. v is copied into the arena. */
static int placeholder_for(struct sb_privacy_map *m, uint32_t kind, struct sb_str v,
                           struct sb_str *out)
{
    const struct entry *e = map_find_value(m, kind, v);
    if (e != NULL) {
        *out = e->placeholder;
        return 0;
    }
    const char *tag = sb_privacy_kind_tag(m->p, kind);
    if (tag == NULL)
        return SB_EINVAL;
    char buf[SB_PRIVACY_PLACEHOLDER_MAX + 1];
    int len;
    /* Skip the numbers that the request's own text already uses as placeholders. */
    do {
        if (m->next[kind] == UINT32_MAX)
            return SB_ETOOBIG;
        m->next[kind]++;
        len = snprintf(buf, sizeof buf, "<%s_%u>", tag, (unsigned)m->next[kind]);
        if (len < 0 || (size_t)len >= sizeof buf)
            return SB_EINVAL;
    } while (map_find_ph(m, (struct sb_str){buf, (size_t)len}) != NULL);
    int err = 0;
    struct entry ne = {kind, false, sb_arena_str(m->arena, v, &err),
                       sb_arena_str(m->arena, (struct sb_str){buf, (size_t)len}, &err)};
    if (err != 0 || map_add(m, ne, &e) != 0)
        return SB_ENOMEM;
    *out = e->placeholder;
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Rewriting a request
 * ------------------------------------------------------------------------------------------- */
struct rewrite {
    const struct sb_privacy *p;
    struct sb_privacy_scratch *s;
    struct sb_privacy_map *m;
    struct sb_pii_counts counts;
    struct sb_buf work; /* the text being rebuilt */
    struct sb_str text; /* the text being scanned */
    bool json;
    size_t prev;     /* bytes of text already copied into work */
    size_t replaced; /* in this text */
    size_t texts;    /* texts changed, for the log */
};

/* Called for each match of the text being rewritten: copies what precedes it, then its
 * placeholder. */
static int on_value(void *ud, const struct sb_pii_match *mt)
{
    struct rewrite *rw = ud;
    struct sb_str raw = {rw->text.p + mt->from, mt->to - mt->from};
    struct sb_str value = raw;
    char small[256];
    int rc = 0;
    /* Inside a JSON string the value is what the escapes spell: the same address in a message
     * and in a tool call's arguments gets the same placeholder. */
    if (rw->json && !mt->bare && memchr(raw.p, '\\', raw.len) != NULL) {
        char *dec = raw.len <= sizeof small ? small : sb_arena_alloc(rw->m->arena, raw.len);
        if (dec == NULL)
            return SB_ENOMEM;
        value = (struct sb_str){dec, sb__privacy_json_decode(raw.p, raw.len, dec, NULL)};
    }
    struct sb_str ph;
    rc = placeholder_for(rw->m, mt->kind, value, &ph);
    if (rc == 0)
        rc = sb_buf_append(&rw->work, rw->text.p + rw->prev, mt->from - rw->prev);
    /* A bare JSON number becomes a string: the placeholder is not a number. */
    if (rc == 0 && rw->json && mt->bare)
        rc = sb_buf_append_char(&rw->work, '"');
    if (rc == 0)
        rc = sb_buf_append_str(&rw->work, ph);
    if (rc == 0 && rw->json && mt->bare)
        rc = sb_buf_append_char(&rw->work, '"');
    if (rc != 0)
        return rc;
    rw->prev = mt->to;
    rw->replaced++;
    if (mt->kind < SB_PRIVACY_MAX_KINDS) {
        rw->counts.by_kind[mt->kind]++;
        rw->counts.kinds |= (uint64_t)1 << mt->kind;
    }
    rw->counts.total++;
    return 0;
}

static int rewrite_text(void *ud, struct sb_str *text, unsigned flags)
{
    struct rewrite *rw = ud;
    if (text->len == 0)
        return 0;
    sb_buf_reset(&rw->work);
    rw->text = *text;
    rw->json = (flags & SB_PRIVACY_SCAN_JSON) != 0;
    rw->prev = 0;
    rw->replaced = 0;
    int n = sb_privacy_scan(rw->p, rw->s, *text, flags, on_value, rw);
    if (n < 0)
        return n;
    if (rw->replaced == 0)
        return 0;
    int rc = sb_buf_append(&rw->work, text->p + rw->prev, text->len - rw->prev);
    if (rc != 0)
        return rc;
    int err = 0;
    struct sb_str copy = sb_arena_str(rw->m->arena, sb_buf_view(&rw->work), &err);
    if (err != 0)
        return SB_ENOMEM;
    *text = copy;
    rw->texts++;
    return 0;
}

/* Copies n elements of size bytes into the arena (NULL for n == 0); false when out of memory. */
static bool dup_array(struct sb_arena *a, void **arr, size_t n, size_t size)
{
    if (n == 0 || *arr == NULL)
        return true;
    void *copy = sb_arena_alloc(a, n * size);
    if (copy == NULL)
        return false;
    memcpy(copy, *arr, n * size);
    *arr = copy;
    return true;
}

/* Makes out a copy of in whose arrays (not texts) are new, so that replacing a view in out
 * leaves in untouched. */
static int copy_request(const struct sb_request *in, struct sb_arena *a, struct sb_request *out)
{
    *out = *in;
    void *arr = out->messages;
    if (!dup_array(a, &arr, out->n_messages, sizeof *out->messages))
        return SB_ENOMEM;
    out->messages = arr;
    for (size_t i = 0; i < out->n_messages; i++) {
        struct sb_message *msg = &out->messages[i];
        arr = msg->parts;
        if (!dup_array(a, &arr, msg->n_parts, sizeof *msg->parts))
            return SB_ENOMEM;
        msg->parts = arr;
        arr = msg->tool_calls;
        if (!dup_array(a, &arr, msg->n_tool_calls, sizeof *msg->tool_calls))
            return SB_ENOMEM;
        msg->tool_calls = arr;
    }
    arr = out->tools;
    if (!dup_array(a, &arr, out->n_tools, sizeof *out->tools))
        return SB_ENOMEM;
    out->tools = arr;
    arr = out->inputs;
    if (!dup_array(a, &arr, out->n_inputs, sizeof *out->inputs))
        return SB_ENOMEM;
    out->inputs = arr;
    return 0;
}

/* Logs what was replaced: counts per kind, never a value. */
static void log_counts(const struct sb_privacy *p, const char *req_id, const struct rewrite *rw)
{
    if (sb_log_get_level() > SB_LOG_DEBUG)
        return;
    struct sb_buf kinds;
    sb_buf_init(&kinds, 1024);
    for (uint32_t k = 0; k < SB_PRIVACY_MAX_KINDS; k++)
        if (rw->counts.by_kind[k] > 0)
            sb_buf_printf(&kinds, " %s=%u", sb_privacy_kind_name(p, k),
                          (unsigned)rw->counts.by_kind[k]);
    sb_log(SB_LOG_DEBUG, req_id, "privacy: replaced %u values (%zu distinct) in %zu texts:%s",
           (unsigned)rw->counts.total, rw->m->n_values, rw->texts,
           kinds.p != NULL ? kinds.p : " none");
    sb_buf_free(&kinds);
}

int sb_privacy_pseudonymize(const struct sb_privacy *p, struct sb_privacy_scratch *s,
                            const struct sb_request *in, struct sb_arena *arena,
                            struct sb_request *out, struct sb_privacy_map **map,
                            struct sb_pii_counts *counts)
{
    struct rewrite rw = {.p = p, .s = s};
    sb_buf_init(&rw.work, WORK_MAX);
    *map = NULL;
    int rc = SB_ENOMEM;
    rw.m = sb_arena_alloc(arena, sizeof *rw.m);
    if (rw.m == NULL)
        goto fail;
    rw.m->p = p;
    rw.m->arena = arena;
    rc = copy_request(in, arena, out);
    if (rc == 0)
        rc = sb__privacy_each_text(out, reserve_text, rw.m);
    if (rc == 0)
        rc = sb__privacy_each_text(out, rewrite_text, &rw);
    if (rc != 0)
        goto fail;
    log_counts(p, in->id, &rw);
    if (counts != NULL)
        *counts = rw.counts;
    *map = rw.m;
fail:
    sb_buf_free(&rw.work);
    if (rc != 0)
        sb_log(SB_LOG_WARN, in->id, "privacy: pseudonymization failed: %s", sb_strerror(rc));
    return rc;
}

/* ---------------------------------------------------------------------------------------------
 * Restoring the response
 * ------------------------------------------------------------------------------------------- */
void sb_privacy_restorer_init(struct sb_privacy_restorer *r, const struct sb_privacy_map *map,
                              bool json)
{
    r->map = map;
    r->json = json;
    r->hold_len = 0;
}

/* Writes what the held bytes stand for (a complete candidate placeholder) and empties the
 * hold: the value when the map knows it, else the bytes themselves. */
static int release(struct sb_privacy_restorer *r, struct sb_buf *out)
{
    struct sb_str held = {r->hold, r->hold_len};
    r->hold_len = 0;
    const struct entry *e =
        held.len > 0 && held.p[held.len - 1] == '>' ? map_find_ph(r->map, held) : NULL;
    if (e == NULL || e->reserved)
        return sb_buf_append_str(out, held);
    return r->json ? sb_buf_append_json_escaped(out, e->value) : sb_buf_append_str(out, e->value);
}

int sb_privacy_restore_feed(struct sb_privacy_restorer *r, struct sb_str delta, struct sb_buf *out)
{
    const char *d = delta.p;
    size_t n = delta.len, i = 0;
    int rc = 0;
    while (i < n && rc == 0) {
        if (r->hold_len == 0) {
            const char *lt = memchr(d + i, '<', n - i);
            size_t upto = lt != NULL ? (size_t)(lt - d) : n;
            rc = sb_buf_append(out, d + i, upto - i);
            if (lt != NULL) {
                r->hold[0] = '<';
                r->hold_len = 1;
                upto++;
            }
            i = upto;
            continue;
        }
        int c = (unsigned char)d[i];
        if (c == '>' && r->hold_len > 1) {
            r->hold[r->hold_len++] = '>';
            rc = release(r, out);
            i++;
        } else if (is_ph_byte(c) && (r->hold_len > 1 || (c >= 'A' && c <= 'Z')) &&
                   r->hold_len < SB_PRIVACY_PLACEHOLDER_MAX - 1) {
            r->hold[r->hold_len++] = (char)c;
            i++;
        } else {
            /* Not a placeholder after all: the held bytes go out as they are, and c is looked
             * at again (it may be the '<' of the next one). */
            rc = release(r, out);
        }
    }
    return rc;
}

int sb_privacy_restore_flush(struct sb_privacy_restorer *r, struct sb_buf *out)
{
    return r->hold_len > 0 ? release(r, out) : 0;
}

int sb_privacy_restore(const struct sb_privacy_map *map, struct sb_str text, bool json,
                       struct sb_buf *out)
{
    struct sb_privacy_restorer r;
    sb_privacy_restorer_init(&r, map, json);
    int rc = sb_privacy_restore_feed(&r, text, out);
    return rc != 0 ? rc : sb_privacy_restore_flush(&r, out);
}
