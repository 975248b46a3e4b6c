/* PII detection and pseudonymization: one Vectorscan pass over a text finds candidate values of
 * every kind at once, validators cut false positives, and a request's values can be swapped for
 * typed placeholders (<EMAIL_1>) and restored in the response, also across stream chunks. */
#ifndef SB_PRIVACY_H
#define SB_PRIVACY_H

#include "config/config.h"
#include "core/canon.h"
#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------------
 * Kinds. The built-in kinds have fixed numbers; SB_PII_TERM counts every custom term, and each
 * custom pattern gets the next number, in config order (SB_PII_CUSTOM + i).
 * ------------------------------------------------------------------------------------------- */
enum sb_pii_kind {
    SB_PII_EMAIL,        /* email address */
    SB_PII_CARD,         /* payment card number (issuer range, length, grouping, Luhn) */
    SB_PII_SSN,          /* US social security number, with separators */
    SB_PII_IBAN,         /* international bank account number (registry length, mod-97) */
    SB_PII_IPV4,         /* IPv4 address */
    SB_PII_IPV6,         /* IPv6 address */
    SB_PII_PHONE,        /* phone number: E.164 (+...) or a national format with separators */
    SB_PII_AWS_KEY,      /* AWS access key id (AKIA..., ASIA...) */
    SB_PII_API_KEY,      /* sk-... style API key (OpenAI, Anthropic) */
    SB_PII_GITHUB_TOKEN, /* GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_) */
    SB_PII_JWT,          /* JSON Web Token */
    SB_PII_PRIVATE_KEY,  /* PEM private key block */
    SB_PII_N_BUILTIN,
    SB_PII_TERM = SB_PII_N_BUILTIN, /* a custom term from the config */
    SB_PII_CUSTOM,                  /* the first custom pattern */
};

#define SB_PRIVACY_MAX_KINDS    64    /* built-in + term + custom patterns */
#define SB_PRIVACY_MAX_PATTERNS 50    /* custom patterns in a config */
#define SB_PRIVACY_MAX_TERMS    10000 /* custom terms in a config */
#define SB_PRIVACY_NAME_MAX     32    /* a custom pattern's name, in bytes */
/* The longest placeholder: "<" tag "_" number ">" (tag <= SB_PRIVACY_NAME_MAX, number <= 10). */
#define SB_PRIVACY_PLACEHOLDER_MAX 48

/* How many values of each kind a text or request holds: counts only, never values. */
struct sb_pii_counts {
    uint32_t total;                         /* all kinds together */
    uint64_t kinds;                         /* bit k set when by_kind[k] > 0 */
    uint32_t by_kind[SB_PRIVACY_MAX_KINDS]; /* indexed by kind */
};

/* The built-in detectors' config names ("email", "card", ...), indexed by enum sb_pii_kind, for
 * `privacy.detectors` and messages. Static; *n receives SB_PII_N_BUILTIN. */
const char *const *sb_privacy_detector_names(size_t *n);

/* Returns the built-in kind whose config name is name, or -1. */
int sb_privacy_detector_find(const char *name);

/* Checks a `privacy.detectors` list: known names, or "none" alone. Returns 0, or SB_EINVAL with
 * the first problem written into err (n bytes, may be NULL). */
int sb_privacy_check_detectors(const char *const *names, size_t n_names, char *err, size_t n);

/* Checks that regex compiles as a custom pattern (Vectorscan syntax: no back-references or
 * look-around, must not match the empty string). Returns 0, or SB_EINVAL with the reason written
 * into err (n bytes, NUL-terminated, may be NULL), or SB_ENOMEM. For `config check`; the config
 * parser calls it for every privacy.custom_patterns entry. */
int sb_privacy_check_pattern(const char *regex, char *err, size_t n);

/* ---------------------------------------------------------------------------------------------
 * The compiled detectors: built once at startup, immutable, shared by every thread.
 * ------------------------------------------------------------------------------------------- */
struct sb_privacy;

/* Compiles the enabled built-in detectors (cfg->detectors: empty = all, ["none"] = none), the
 * custom terms and the custom patterns of cfg (NULL: every built-in, nothing custom) into one
 * database. cfg is not kept: its strings are copied.
 * On success *out is new and the caller frees it with sb_privacy_free. Returns 0; SB_EINVAL with
 * err naming the detector, term or pattern (and its config line) that does not compile or is
 * malformed; SB_ETOOBIG (too many patterns); SB_ENOMEM. On failure *out is NULL. */
int sb_privacy_new(const struct sb_privacy_config *cfg, struct sb_privacy **out, char *err,
                   size_t n);
/* Frees p. NULL is allowed. Every scratch, map and restorer made from p must be gone first. */
void sb_privacy_free(struct sb_privacy *p);

/* How many kinds p knows: SB_PII_CUSTOM + its custom patterns. */
size_t sb_privacy_n_kinds(const struct sb_privacy *p);
/* A kind's name ("email", "term", or the custom pattern's name) and placeholder tag ("EMAIL",
 * "TERM", the name in upper case), or NULL for an unknown kind. Static or owned by p. */
const char *sb_privacy_kind_name(const struct sb_privacy *p, uint32_t kind);
const char *sb_privacy_kind_tag(const struct sb_privacy *p, uint32_t kind);

/* ---------------------------------------------------------------------------------------------
 * Scratch: what one scan needs (Vectorscan scratch, candidate lists). A scratch serves one thread
 * at a time; keep one per I/O thread and reuse it for every scan on that thread.
 * ------------------------------------------------------------------------------------------- */
struct sb_privacy_scratch;

/* Returns 0 and a new scratch for p in *out (freed with sb_privacy_scratch_free, before p), or
 * SB_ENOMEM. Thread-safe: threads may each make their own from the same p. */
int sb_privacy_scratch_new(const struct sb_privacy *p, struct sb_privacy_scratch **out);
/* Frees s. NULL is allowed. */
void sb_privacy_scratch_free(struct sb_privacy_scratch *s);

/* ---------------------------------------------------------------------------------------------
 * Scanning text
 * ------------------------------------------------------------------------------------------- */
/* One detected value: text bytes [from, to) are a value of kind. */
struct sb_pii_match {
    uint32_t kind; /* enum sb_pii_kind, or SB_PII_CUSTOM + i */
    size_t from, to;
    /* SB_PRIVACY_SCAN_JSON only: the value is not inside a JSON string (a bare number), so a
     * replacement must be a JSON string itself. Inside a string, [from, to) never cuts an escape
     * sequence, and the value is the span with its escapes decoded. */
    bool bare;
};

/* Receives each match, in text order, without overlaps. Returns 0 to go on, or a negative SB_E*
 * code to stop the scan, which then returns that code. */
typedef int (*sb_pii_match_fn)(void *ud, const struct sb_pii_match *m);

enum {
    /* The text is JSON (tool arguments, a JSON Schema): each string is scanned with its escapes
     * decoded, on its own (a match never spans two strings), and so is the text between them. */
    SB_PRIVACY_SCAN_JSON = 1u << 0,
};

/* Scans text once and calls fn for every validated match; where matches overlap, the longest
 * wins, then the one of higher priority (custom patterns in config order, then custom terms, then
 * the built-ins in enum order). text is borrowed for the call; fn may be NULL (only the return
 * value is wanted). Returns the number of matches (>= 0), a negative code returned by fn,
 * SB_ETOOBIG (text over 4 GiB or too many candidates), SB_ENOMEM or SB_EINVAL. A failed scan has
 * found out nothing: callers deciding where data may go must treat it as sensitive. */
int sb_privacy_scan(const struct sb_privacy *p, struct sb_privacy_scratch *s, struct sb_str text,
                    unsigned flags, sb_pii_match_fn fn, void *ud);

/* Adds the matches of one text to counts (which the caller zeroes first). Same returns as
 * sb_privacy_scan. */
int sb_privacy_count(const struct sb_privacy *p, struct sb_privacy_scratch *s, struct sb_str text,
                     unsigned flags, struct sb_pii_counts *counts);

/* Scans every text of req that would leave the machine: message text parts (system prompts and
 * tool results included), participant names, tool-call arguments, tool descriptions and
 * parameter schemas, the completion prompt, embedding inputs, stop sequences and the end-user
 * id. Image parts are not scanned. *out is overwritten with the counts. Returns 0 or a negative
 * code from sb_privacy_scan (then *out holds what was counted before the failure). */
int sb_privacy_scan_request(const struct sb_privacy *p, struct sb_privacy_scratch *s,
                            const struct sb_request *req, struct sb_pii_counts *out);

/* ---------------------------------------------------------------------------------------------
 * Pseudonymization: values are replaced by placeholders "<TAG_N>", the same value by the same
 * placeholder everywhere in the request, numbered per kind from 1. Numbers that the request's
 * own text already uses as placeholders are skipped, so restoring never rewrites them.
 * The mapping lives in the request's arena only: it is never logged and never stored.
 * ------------------------------------------------------------------------------------------- */
struct sb_privacy_map;

/* Writes into *out a copy of in whose texts (the ones sb_privacy_scan_request scans) have their
 * values replaced by placeholders. in is left untouched (a local fallback can still send it), and
 * out borrows whatever did not change from in, so in's memory must outlive out. New arrays,
 * texts and the map are allocated in arena and live until it is freed; *map is valid as long
 * as both arena and p. counts (may be NULL) receives what was replaced. Returns 0; SB_ENOMEM
 * (also when the arena is full); or a code from sb_privacy_scan. On failure *out and *map must
 * not be used, and nothing must be sent. */
int sb_privacy_pseudonymize(const struct sb_privacy *p, struct sb_privacy_scratch *s,
                            const struct sb_request *in, struct sb_arena *arena,
                            struct sb_request *out, struct sb_privacy_map **map,
                            struct sb_pii_counts *counts);

/* How many distinct values the map replaced. */
size_t sb_privacy_map_size(const struct sb_privacy_map *map);

/* ---------------------------------------------------------------------------------------------
 * Restoration of the response. A restorer is fed the deltas of one stream (the text, or one tool
 * call's arguments) and appends the restored text to a buffer. A placeholder split across deltas
 * is held back until it is complete, so half a placeholder is never written; a placeholder the
 * map does not know (one the model invented) passes through unchanged.
 * ------------------------------------------------------------------------------------------- */
struct sb_privacy_restorer {
    /* Private: set by sb_privacy_restorer_init. The struct is public to be embedded. */
    const struct sb_privacy_map *map;
    bool json;
    size_t hold_len;
    char hold[SB_PRIVACY_PLACEHOLDER_MAX];
};

/* Prepares r for one stream. map may be NULL (everything passes through) and must outlive r.
 * json: the stream is JSON text (tool-call arguments), so restored values are JSON-escaped. */
void sb_privacy_restorer_init(struct sb_privacy_restorer *r, const struct sb_privacy_map *map,
                              bool json);
/* Appends to out what delta restores to, keeping back a possible partial placeholder at its
 * end. The bytes appended by one call never split a UTF-8 character that delta did not split.
 * Returns 0, or SB_ENOMEM / SB_ETOOBIG from out (then out holds part of the output and the
 * stream must be abandoned). */
int sb_privacy_restore_feed(struct sb_privacy_restorer *r, struct sb_str delta, struct sb_buf *out);
/* Appends whatever is held back (the stream ended); r is then ready for a new stream. Returns 0,
 * SB_ENOMEM or SB_ETOOBIG. */
int sb_privacy_restore_flush(struct sb_privacy_restorer *r, struct sb_buf *out);
/* Restores a whole text at once (a non-streamed response, a stop sequence): feed + flush. */
int sb_privacy_restore(const struct sb_privacy_map *map, struct sb_str text, bool json,
                       struct sb_buf *out);

#ifdef __cplusplus
}
#endif

#endif
