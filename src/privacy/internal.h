/* The privacy module's private vocabulary: the validators that confirm a regex candidate, shared
 * by scan.c (which runs them) and the unit tests. Nothing outside src/privacy includes this. */
#ifndef SB_PRIVACY_INTERNAL_H
#define SB_PRIVACY_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "privacy/privacy.h"

/* A validator: is text[*from, *to) a real value of its kind? text is the whole scanned text, so a
 * validator may look at the bytes around the candidate (a digit glued to it, a dot after it), and
 * may move the span's ends: the regexes of some kinds report only where a match ends (*from is
 * then 0) or stop early, and their validators find the real span. Always *to <= len. Pure
 * functions: no allocation, no state, thread-safe. */
typedef bool (*sb__pii_valid_fn)(const char *text, size_t len, size_t *from, size_t *to);

bool sb__pii_valid_email(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_iban(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_ipv6(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_ipv6_full(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_api_key(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_github(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_jwt(const char *text, size_t len, size_t *from, size_t *to);
bool sb__pii_valid_private_key(const char *text, size_t len, size_t *from, size_t *to);

/* A parser for a numeric kind: is text[from, to) exactly one value of the kind? The scan cuts
 * spans out of numeric tokens (digits and separators) and tries the numeric kinds on each. Pure,
 * like validators. */
typedef bool (*sb__pii_parse_fn)(const char *text, size_t len, size_t from, size_t to);

bool sb__pii_parse_card(const char *text, size_t len, size_t from, size_t to);
bool sb__pii_parse_ssn(const char *text, size_t len, size_t from, size_t to);
bool sb__pii_parse_ipv4(const char *text, size_t len, size_t from, size_t to);
bool sb__pii_parse_phone(const char *text, size_t len, size_t from, size_t to);

/* The Luhn checksum of the digits in s (other bytes are skipped): true when it is valid. */
bool sb__pii_luhn(const char *s, size_t n);
/* ISO 13616 check: s holds an IBAN without spaces; true when its mod-97 remainder is 1. */
bool sb__pii_iban_mod97(const char *s, size_t n);

/* Decodes the inside of a JSON string (t, n bytes, escapes and all) into out, which must hold n
 * bytes: decoding never grows a string. Invalid escapes are kept as they are; lone surrogates
 * become U+FFFD. map, when not NULL, must hold n + 1 entries: map[k] receives the offset in t of
 * the escape or byte that produced out[k], and map[result] = n. Returns the decoded length. */
size_t sb__privacy_json_decode(const char *t, size_t n, char *out, uint32_t *map);

/* Calls fn for every text of req that leaves the machine (the fields sb_privacy_scan_request
 * lists), with SB_PRIVACY_SCAN_JSON for JSON texts. fn may replace the view it is handed. Stops at
 * and returns fn's first nonzero return; 0 when all were visited. */
typedef int (*sb__privacy_text_fn)(void *ud, struct sb_str *text, unsigned flags);
int sb__privacy_each_text(struct sb_request *req, sb__privacy_text_fn fn, void *ud);

#endif
