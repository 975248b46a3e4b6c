/* Validators and parsers: the checks that turn a cheap regex hit into a detected value
 * (grammars, checksums, registries, the bytes around it), so that the regexes stay few and fast. */
#include <arpa/inet.h>
#include <string.h>

#include "privacy/internal.h"

/* ---------------------------------------------------------------------------------------------
 * Character helpers (ASCII only: bytes >= 0x80 are never digits or letters here)
 * ------------------------------------------------------------------------------------------- */
static bool is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static bool is_upper(int c)
{
    return c >= 'A' && c <= 'Z';
}
static bool is_lower(int c)
{
    return c >= 'a' && c <= 'z';
}
static bool is_alnum(int c)
{
    return is_digit(c) || is_upper(c) || is_lower(c);
}
static bool is_word(int c)
{
    return is_alnum(c) || c == '_';
}
static bool is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
static bool is_b64url(int c)
{
    return is_alnum(c) || c == '-' || c == '_';
}

/* The byte at i, or 0 outside the text: lets context checks look around without bounds tests. */
static int at(const char *text, size_t len, size_t i)
{
    return i < len ? (unsigned char)text[i] : 0;
}

/* The byte k places before from, or 0. */
static int before(const char *text, size_t from, size_t k)
{
    return from >= k ? (unsigned char)text[from - k] : 0;
}

static size_t count_digits(const char *s, size_t n)
{
    size_t d = 0;
    for (size_t i = 0; i < n; i++)
        d += is_digit((unsigned char)s[i]);
    return d;
}

/* True when the span is glued to more digits by a '-' or '.' on either side ("12-345-67-8901",
 * "1.2.3.4.5"): then it is a piece of some longer identifier. */
static bool glued_to_digits(const char *text, size_t len, size_t from, size_t to)
{
    int b1 = before(text, from, 1), b2 = before(text, from, 2);
    int a0 = at(text, len, to), a1 = at(text, len, to + 1);
    return ((b1 == '-' || b1 == '.') && is_digit(b2)) || ((a0 == '-' || a0 == '.') && is_digit(a1));
}

/* True when the span is written with spaces and a space joins it to more digits ("0044 0532
 * 0130 01", the tail of an IBAN): its groups may go on beyond it. */
static bool glued_by_space(const char *text, size_t len, size_t from, size_t to)
{
    if (memchr(text + from, ' ', to - from) == NULL)
        return false;
    return (before(text, from, 1) == ' ' && is_digit(before(text, from, 2))) ||
           (at(text, len, to) == ' ' && is_digit(at(text, len, to + 1)));
}

/* The separators between digit groups (any non-digit byte) are all the same byte. */
static bool one_separator(const char *s, size_t n)
{
    int sep = 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];
        if (is_digit(c))
            continue;
        if (sep != 0 && c != sep)
            return false;
        sep = c;
    }
    return true;
}

/* Reads a run of min..max digits at *i (not past e); advances *i and returns true, or returns
 * false and leaves *i alone. */
static bool digits(const char *t, size_t e, size_t *i, size_t min, size_t max)
{
    size_t k = *i;
    while (k < e && k - *i < max && is_digit((unsigned char)t[k]))
        k++;
    if (k - *i < min || (k < e && is_digit((unsigned char)t[k])))
        return false;
    *i = k;
    return true;
}

static bool is_sep(int c)
{
    return c == ' ' || c == '-' || c == '.';
}

/* ---------------------------------------------------------------------------------------------
 * Email
 * ------------------------------------------------------------------------------------------- */
/* Bytes of a local part: RFC 5322's common subset, plus UTF-8 (RFC 6531). */
static bool is_local_byte(int c)
{
    return is_alnum(c) || c >= 0x80 || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

/* Bytes of a domain name, UTF-8 labels included. */
static bool is_domain_byte(int c)
{
    return is_alnum(c) || c >= 0x80 || c == '.' || c == '-';
}

/* The regex reports where a domain after an '@' ends; the '@' and the local part before it are
 * found here, walking left, so that the scan never tracks every word as a possible address. */
bool sb__pii_valid_email(const char *text, size_t len, size_t *fromp, size_t *top)
{
    SB_UNUSED(len);
    size_t to = *top, at_pos = to;
    while (at_pos > 0 && to - at_pos <= 254 && is_domain_byte((unsigned char)text[at_pos - 1]))
        at_pos--;
    if (at_pos == 0 || text[at_pos - 1] != '@')
        return false;
    at_pos--;
    /* 64 bytes of local part at most (RFC 5321); a longer run is not an address. */
    size_t from = at_pos;
    while (from > 0 && at_pos - from <= 64 && is_local_byte((unsigned char)text[from - 1]))
        from--;
    /* Leading dots and UTF-8 continuation bytes are not part of the address. */
    while (from < at_pos && (text[from] == '.' || ((unsigned char)text[from] & 0xC0) == 0x80))
        from++;
    size_t local = at_pos - from;
    if (local == 0 || local > 64 || text[at_pos - 1] == '.' || to - at_pos - 1 > 253)
        return false;
    for (size_t i = from + 1; i < at_pos; i++)
        if (text[i] == '.' && text[i - 1] == '.')
            return false;
    /* Domain labels: 1-63 bytes, no '-' at either end, at least two of them. */
    size_t labels = 0, start = at_pos + 1;
    for (size_t i = at_pos + 1; i <= to; i++) {
        if (i < to && text[i] != '.')
            continue;
        size_t l = i - start;
        if (l == 0 || l > 63 || text[start] == '-' || text[i - 1] == '-')
            return false;
        labels++;
        start = i + 1;
    }
    if (labels < 2)
        return false;
    *fromp = from;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Numeric kinds: parsers of a span cut from a numeric token (see scan.c). Each checks the whole
 * grammar, since the prefilter regex only promises digits and separators.
 * ------------------------------------------------------------------------------------------- */
/* Countries whose numbers have a known length: after "+<code>", the national number has
 * min..max digits. Elsewhere E.164's bound (15 digits in all) is all there is. */
static const struct phone_plan {
    const char *code;
    unsigned char min, max;
} phone_plans[] = {
    {"1", 10, 10},  /* North America */
    {"7", 10, 10},  /* Russia, Kazakhstan */
    {"33", 9, 9},   /* France */
    {"34", 9, 9},   /* Spain */
    {"44", 9, 10},  /* United Kingdom */
    {"61", 9, 9},   /* Australia */
    {"81", 9, 10},  /* Japan */
    {"86", 10, 11}, /* China */
    {"91", 10, 10}, /* India */
};

/* "+<country> groups": +1 (415) 555-0100, +44 20 7946 0958, +4915112345678. E.164 allows at
 * most 15 digits; fewer than 8 is too short to be a number worth hiding and too likely to be
 * arithmetic ("+1 234 5"). */
static bool phone_intl(const char *t, size_t len, size_t s, size_t e)
{
    if (t[s] != '+' || s + 1 >= e || t[s + 1] < '1' || t[s + 1] > '9')
        return false;
    size_t i = s + 1, nd = 0;
    bool after_sep = false;
    while (i < e) {
        int c = (unsigned char)t[i];
        if (is_digit(c)) {
            nd++;
            i++;
            after_sep = false;
        } else if (is_sep(c) && !after_sep) {
            i++;
            after_sep = true;
        } else if (c == '(') {
            size_t j = i + 1;
            if (!digits(t, e, &j, 1, 5) || j >= e || t[j] != ')')
                return false;
            nd += j - i - 1;
            i = j + 1;
            after_sep = false;
        } else {
            return false;
        }
    }
    if (nd < 8 || nd > 15 || !is_digit((unsigned char)t[e - 1]) || glued_to_digits(t, len, s, e))
        return false;
    /* The country code is the digits right after '+', before any separator; +44 (0)20 counts
     * the (0) as a digit, which the plans allow for by their max. */
    for (size_t k_plan = 0; k_plan < SB_ARRAY_LEN(phone_plans); k_plan++) {
        const struct phone_plan *pp = &phone_plans[k_plan];
        size_t k = strlen(pp->code);
        if (e - s > k + 1 && memcmp(t + s + 1, pp->code, k) == 0 &&
            !is_digit((unsigned char)t[s + 1 + k])) {
            size_t national =
                nd - k - (sb_str_find((struct sb_str){t + s, e - s}, SB_STR_LIT("(0)")) >= 0);
            return national >= pp->min && national <= pp->max;
        }
    }
    return true;
}

/* North America: [1-](NXX) NXX-XXXX or [1-]NXX-NXX-XXXX, N = 2..9, with one kind of separator
 * unless the area code is in parentheses. */
static bool phone_nanp(const char *t, size_t len, size_t s, size_t e)
{
    size_t i = s;
    int sep1 = 0;
    if (t[i] == '1' && i + 1 < e && is_sep((unsigned char)t[i + 1]))
        i += 2;
    if (t[i] == '(') {
        if (e - i < 5 || t[i + 1] < '2' || t[i + 1] > '9' || !is_digit((unsigned char)t[i + 2]) ||
            !is_digit((unsigned char)t[i + 3]) || t[i + 4] != ')')
            return false;
        i += 5;
        if (i < e && t[i] == ' ')
            i++;
    } else {
        if (e - i < 4 || t[i] < '2' || t[i] > '9' || !digits(t, e, &i, 3, 3) ||
            !is_sep((unsigned char)t[i]))
            return false;
        sep1 = (unsigned char)t[i++];
    }
    if (i >= e || t[i] < '2' || t[i] > '9' || !digits(t, e, &i, 3, 3) || i >= e ||
        !is_sep((unsigned char)t[i]))
        return false;
    int sep2 = (unsigned char)t[i++];
    if (!digits(t, e, &i, 4, 4) || i != e || (sep1 != 0 && sep1 != sep2))
        return false;
    return !glued_to_digits(t, len, s, e) && !glued_by_space(t, len, s, e);
}

/* National numbers with a trunk prefix: 020 7946 0958, 01 23 45 67 89, 030-1234567. */
static bool phone_national(const char *t, size_t len, size_t s, size_t e)
{
    if (e - s < 10 || t[s] != '0' || t[s + 1] < '1' || t[s + 1] > '9')
        return false;
    size_t i = s + 1;
    if (!digits(t, e, &i, 1, 5))
        return false;
    size_t groups = 0;
    while (i < e && groups < 4) {
        if (!is_sep((unsigned char)t[i]))
            return false;
        i++;
        if (!digits(t, e, &i, 2, 8))
            return false;
        groups++;
    }
    size_t nd = count_digits(t + s, e - s);
    return i == e && groups >= 1 && nd >= 9 && nd <= 12 && one_separator(t + s, e - s) &&
           !glued_to_digits(t, len, s, e) && !glued_by_space(t, len, s, e);
}

bool sb__pii_parse_phone(const char *text, size_t len, size_t from, size_t to)
{
    return phone_intl(text, len, from, to) || phone_nanp(text, len, from, to) ||
           phone_national(text, len, from, to);
}

bool sb__pii_luhn(const char *s, size_t n)
{
    unsigned sum = 0;
    bool twice = false;
    for (size_t i = n; i-- > 0;) {
        int c = (unsigned char)s[i];
        if (!is_digit(c))
            continue;
        unsigned d = (unsigned)(c - '0');
        if (twice) {
            d *= 2;
            if (d > 9)
                d -= 9;
        }
        sum += d;
        twice = !twice;
    }
    return sum % 10 == 0;
}

/* Issuer ranges: a card's leading digits fall in [lo, hi] (compared on lo's length) and its
 * length in [min_len, max_len]. A 16-digit number that passes Luhn but no range is not a card. */
static const struct card_range {
    const char *lo, *hi;
    unsigned char min_len, max_len;
} card_ranges[] = {
    {"4", "4", 13, 19},       /* Visa */
    {"51", "55", 16, 16},     /* Mastercard */
    {"2221", "2720", 16, 16}, /* Mastercard 2-series */
    {"34", "34", 15, 15},     /* American Express */
    {"37", "37", 15, 15},     /* American Express */
    {"300", "305", 14, 19},   /* Diners Club */
    {"36", "36", 14, 19},     /* Diners Club */
    {"38", "39", 16, 19},     /* Diners Club */
    {"3528", "3589", 16, 19}, /* JCB */
    {"6011", "6011", 16, 19}, /* Discover */
    {"644", "649", 16, 19},   /* Discover */
    {"65", "65", 16, 19},     /* Discover */
    {"62", "62", 16, 19},     /* UnionPay */
    {"50", "50", 13, 19},     /* Maestro */
    {"56", "58", 13, 19},     /* Maestro */
    {"63", "63", 13, 19},     /* Maestro */
    {"67", "67", 13, 19},     /* Maestro */
};

/* How printed card numbers are grouped; 0 ends a row. Unseparated numbers need no row. */
static const unsigned char card_groupings[][6] = {
    {4, 4, 4, 4, 0},    /* 16 digits: most brands */
    {4, 4, 4, 4, 3, 0}, /* 19 digits */
    {4, 6, 5, 0},       /* 15 digits: American Express */
    {4, 6, 4, 0},       /* 14 digits: Diners Club */
    {4, 4, 4, 3, 0},    /* 15 digits */
    {4, 4, 4, 1, 0},    /* 13 digits: old Visa */
};

bool sb__pii_parse_card(const char *text, size_t len, size_t from, size_t to)
{
    char digs[19];
    unsigned char groups[19];
    size_t nd = 0, ng = 0, run = 0;
    int sep = 0;
    for (size_t i = from; i < to; i++) {
        int c = (unsigned char)text[i];
        if (is_digit(c)) {
            if (nd == sizeof digs)
                return false;
            digs[nd++] = (char)c;
            run++;
        } else if ((c == ' ' || c == '-') && run > 0 && (sep == 0 || c == sep)) {
            sep = c;
            groups[ng++] = (unsigned char)run;
            run = 0;
        } else {
            return false;
        }
    }
    if (run == 0 || nd < 13)
        return false;
    groups[ng++] = (unsigned char)run;
    if (ng > 1) {
        bool grouped = false;
        for (size_t r = 0; r < SB_ARRAY_LEN(card_groupings) && !grouped; r++) {
            size_t k = 0;
            while (k < ng && card_groupings[r][k] == groups[k])
                k++;
            grouped = k == ng && card_groupings[r][k] == 0;
        }
        if (!grouped)
            return false;
    }
    /* "1234-4111-1111-1111-1111": a dash-joined longer identifier, not a card. */
    if (sep != ' ' && glued_to_digits(text, len, from, to))
        return false;
    bool issued = false;
    for (size_t i = 0; i < SB_ARRAY_LEN(card_ranges) && !issued; i++) {
        const struct card_range *r = &card_ranges[i];
        size_t k = strlen(r->lo);
        issued = nd >= r->min_len && nd <= r->max_len && memcmp(digs, r->lo, k) >= 0 &&
                 memcmp(digs, r->hi, k) <= 0;
    }
    return issued && sb__pii_luhn(digs, nd);
}

/* US social security numbers: AAA-GG-SSSS or AAA GG SSSS; area 000, 666 and 900-999, group 00
 * and serial 0000 are never issued. */
bool sb__pii_parse_ssn(const char *text, size_t len, size_t from, size_t to)
{
    const char *s = text + from;
    if (to - from != 11 || (s[3] != '-' && s[3] != ' ') || s[6] != s[3])
        return false;
    for (size_t i = 0; i < 11; i++)
        if (i != 3 && i != 6 && !is_digit((unsigned char)s[i]))
            return false;
    if (glued_to_digits(text, len, from, to))
        return false;
    /* Space-separated: "call 555 123 45 6789" is not an SSN. */
    if (s[3] == ' ' && ((before(text, from, 1) == ' ' && is_digit(before(text, from, 2))) ||
                        (at(text, len, to) == ' ' && is_digit(at(text, len, to + 1)))))
        return false;
    int area = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
    int group = (s[4] - '0') * 10 + (s[5] - '0');
    int serial = (s[7] - '0') * 1000 + (s[8] - '0') * 100 + (s[9] - '0') * 10 + (s[10] - '0');
    return area != 0 && area != 666 && area < 900 && group != 0 && serial != 0;
}

/* Dotted quads: octets 0-255 without leading zeros ("01.02.03.04" is a version or a date more
 * often than an address), not glued to more dotted digits ("1.2.3.4.5"). */
bool sb__pii_parse_ipv4(const char *text, size_t len, size_t from, size_t to)
{
    size_t i = from;
    for (int k = 0; k < 4; k++) {
        size_t start = i;
        if (!digits(text, to, &i, 1, 3))
            return false;
        unsigned octet = 0;
        for (size_t j = start; j < i; j++)
            octet = octet * 10 + (unsigned)(text[j] - '0');
        if (octet > 255 || (i - start > 1 && text[start] == '0'))
            return false;
        if (k < 3) {
            if (i >= to || text[i] != '.')
                return false;
            i++;
        }
    }
    return i == to && !glued_to_digits(text, len, from, to);
}

/* ---------------------------------------------------------------------------------------------
 * IBAN
 * ------------------------------------------------------------------------------------------- */
/* The IBAN registry: each country's code and its IBANs' length. */
static const struct iban_country {
    char code[3];
    unsigned char len;
} iban_countries[] = {
    {"AD", 24}, {"AE", 23}, {"AL", 28}, {"AT", 20}, {"AZ", 28}, {"BA", 20}, {"BE", 16}, {"BG", 22},
    {"BH", 22}, {"BR", 29}, {"BY", 28}, {"CH", 21}, {"CR", 22}, {"CY", 28}, {"CZ", 24}, {"DE", 22},
    {"DK", 18}, {"DO", 28}, {"EE", 20}, {"EG", 29}, {"ES", 24}, {"FI", 18}, {"FO", 18}, {"FR", 27},
    {"GB", 22}, {"GE", 22}, {"GI", 23}, {"GL", 18}, {"GR", 27}, {"GT", 28}, {"HR", 21}, {"HU", 28},
    {"IE", 22}, {"IL", 23}, {"IQ", 23}, {"IS", 26}, {"IT", 27}, {"JO", 30}, {"KW", 30}, {"KZ", 20},
    {"LB", 28}, {"LC", 32}, {"LI", 21}, {"LT", 20}, {"LU", 20}, {"LV", 21}, {"MC", 27}, {"MD", 24},
    {"ME", 22}, {"MK", 19}, {"MR", 27}, {"MT", 31}, {"MU", 30}, {"NL", 18}, {"NO", 15}, {"PK", 24},
    {"PL", 28}, {"PS", 29}, {"PT", 25}, {"QA", 29}, {"RO", 24}, {"RS", 22}, {"SA", 24}, {"SC", 31},
    {"SE", 24}, {"SI", 19}, {"SK", 24}, {"SM", 27}, {"ST", 25}, {"SV", 28}, {"TL", 23}, {"TN", 24},
    {"TR", 26}, {"UA", 29}, {"VA", 22}, {"VG", 24}, {"XK", 20},
};

bool sb__pii_iban_mod97(const char *s, size_t n)
{
    if (n < 5)
        return false;
    /* The first four characters move to the end; letters count as 10..35; the number, taken
     * digit by digit modulo 97, must leave 1. */
    unsigned rem = 0;
    for (size_t k = 0; k < n; k++) {
        int c = (unsigned char)s[(k + 4) % n];
        if (is_digit(c))
            rem = (rem * 10 + (unsigned)(c - '0')) % 97;
        else if (is_upper(c))
            rem = (rem * 100 + (unsigned)(c - 'A' + 10)) % 97;
        else
            return false;
    }
    return rem == 1;
}

/* Is text[from, to) an IBAN, compact or spaced every four characters? */
static bool iban_at(const char *text, size_t from, size_t to)
{
    char compact[34];
    size_t m = 0;
    bool spaced = false;
    for (size_t i = from; i < to; i++) {
        if (text[i] == ' ') {
            /* Printed IBANs are spaced every four characters, by single spaces. */
            if (m % 4 != 0 || text[i - 1] == ' ')
                return false;
            spaced = true;
            continue;
        }
        if (m == sizeof compact)
            return false;
        compact[m++] = text[i];
    }
    if (m < 15 || (spaced && (to - from - m) != (m - 1) / 4))
        return false;
    for (size_t i = 0; i < SB_ARRAY_LEN(iban_countries); i++)
        if (memcmp(compact, iban_countries[i].code, 2) == 0)
            return m == iban_countries[i].len && sb__pii_iban_mod97(compact, m);
    return false;
}

/* The regex reports only where a run of [A-Z0-9 ] that starts like an IBAN ends; the start is
 * found here: the leftmost "CCdd" within reach from which the rest parses. */
bool sb__pii_valid_iban(const char *text, size_t len, size_t *fromp, size_t *top)
{
    size_t to = *top;
    if (is_word(at(text, len, to)))
        return false;
    /* 34 characters and 8 spaces at most. */
    size_t lo = to;
    while (lo > 0 && to - lo < 42 &&
           (is_upper((unsigned char)text[lo - 1]) || is_digit((unsigned char)text[lo - 1]) ||
            text[lo - 1] == ' '))
        lo--;
    for (size_t s = lo; s + 15 <= to; s++) {
        if (!is_upper((unsigned char)text[s]) || !is_upper((unsigned char)text[s + 1]) ||
            !is_digit((unsigned char)text[s + 2]) || !is_digit((unsigned char)text[s + 3]) ||
            is_word(before(text, s, 1)))
            continue;
        /* The country fixes the length: compact, or spaced every four characters. A run that
         * ends elsewhere is not this IBAN (most reports are such runs: one per group end). */
        size_t want = 0;
        for (size_t i = 0; i < SB_ARRAY_LEN(iban_countries) && want == 0; i++)
            if (text[s] == iban_countries[i].code[0] && text[s + 1] == iban_countries[i].code[1])
                want = iban_countries[i].len;
        if (want == 0 || (to - s != want && to - s != want + (want - 1) / 4))
            continue;
        if (iban_at(text, s, to)) {
            *fromp = s;
            return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------------------------------------
 * IPv6
 * ------------------------------------------------------------------------------------------- */
/* Checks text[from, to) with inet_pton, and that it is not inside an identifier ("std::vector",
 * "abcde::1") or a longer run of colons and hex digits. */
static bool ipv6_at(const char *text, size_t len, size_t from, size_t to)
{
    int b = before(text, from, 1), a = at(text, len, to);
    /* A dot before it is a sentence's end, unless a number runs into it ("1.2::3"). */
    if (is_word(b) || b == ':' || (b == '.' && is_hex(before(text, from, 2))) || is_word(a) ||
        a == ':')
        return false;
    size_t n = to - from;
    char buf[64];
    if (n < 3 || n >= sizeof buf)
        return false;
    memcpy(buf, text + from, n);
    buf[n] = '\0';
    unsigned char addr[16];
    return inet_pton(AF_INET6, buf, addr) == 1;
}

/* The compressed forms: the regex reports where one ends; its start is the beginning of the run
 * of hex digits, colons and dots (a dotted IPv4 tail) that leads to it. */
bool sb__pii_valid_ipv6(const char *text, size_t len, size_t *fromp, size_t *top)
{
    size_t to = *top, from = to;
    while (
        from > 0 && to - from < 46 &&
        (is_hex((unsigned char)text[from - 1]) || text[from - 1] == ':' || text[from - 1] == '.'))
        from--;
    /* A sentence's dot before the address is not part of it. */
    while (from < to && text[from] == '.')
        from++;
    if (!ipv6_at(text, len, from, to))
        return false;
    *fromp = from;
    return true;
}

/* The full, uncompressed form: the regex reports where ":h:h:h:h:h:h:" ends; the first group
 * lies before it and the last one after it. */
bool sb__pii_valid_ipv6_full(const char *text, size_t len, size_t *fromp, size_t *top)
{
    size_t to = *top, from = to;
    while (from > 0 && to - from < 40 &&
           (is_hex((unsigned char)text[from - 1]) || text[from - 1] == ':'))
        from--;
    size_t end = to;
    while (end < len && end - to < 4 && is_hex((unsigned char)text[end]))
        end++;
    if (!ipv6_at(text, len, from, end))
        return false;
    *fromp = from;
    *top = end;
    return true;
}

/* ---------------------------------------------------------------------------------------------
 * Secrets: the regexes stop after a fixed number of characters (one report per secret); the
 * validators extend the span to the end of the token.
 * ------------------------------------------------------------------------------------------- */
static size_t extend(const char *text, size_t len, size_t to, bool (*in)(int))
{
    while (to < len && in((unsigned char)text[to]))
        to++;
    return to;
}

static bool is_key_byte(int c)
{
    return is_b64url(c);
}

static bool is_alnum_byte(int c)
{
    return is_alnum(c);
}

static bool is_word_byte(int c)
{
    return is_word(c);
}

/* sk-...: random keys mix upper case, lower case and digits; slugs ("sk-learn-...") do not. */
bool sb__pii_valid_api_key(const char *text, size_t len, size_t *fromp, size_t *top)
{
    size_t to = extend(text, len, *top, is_key_byte);
    bool upper = false, lower = false, digit = false;
    for (size_t i = *fromp + 3; i < to; i++) {
        int c = (unsigned char)text[i];
        upper |= is_upper(c);
        lower |= is_lower(c);
        digit |= is_digit(c);
    }
    *top = to;
    return upper && lower && digit;
}

/* ghp_ + 36 or more letters and digits; github_pat_ + 22 or more word characters. */
bool sb__pii_valid_github(const char *text, size_t len, size_t *fromp, size_t *top)
{
    bool pat = text[*fromp + 2] == 't'; /* "github_pat_", not "gh?_" */
    *top = extend(text, len, *top, pat ? is_word_byte : is_alnum_byte);
    return !is_word(at(text, len, *top));
}

/* The value of a base64url character, or -1. */
static int b64url_value(int c)
{
    if (is_upper(c))
        return c - 'A';
    if (is_lower(c))
        return c - 'a' + 26;
    if (is_digit(c))
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/* Decodes unpadded base64url s into out (at most cap bytes). Returns the decoded length, or -1
 * when s is not base64url or does not fit. */
static ptrdiff_t b64url_decode(const char *s, size_t n, unsigned char *out, size_t cap)
{
    if (n % 4 == 1)
        return -1;
    size_t m = 0;
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64url_value((unsigned char)s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (m == cap)
                return -1;
            out[m++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    return (ptrdiff_t)m;
}

/* header.payload.signature, where the header decodes to a JSON object naming its "alg". The
 * regex reports the second dot; the header and payload lie before it, the signature (empty for
 * alg "none") after it. */
bool sb__pii_valid_jwt(const char *text, size_t len, size_t *fromp, size_t *top)
{
    size_t second = *top - 1, from = second;
    while (from > 0 && is_key_byte((unsigned char)text[from - 1]))
        from--;
    if (from == 0 || text[from - 1] != '.')
        return false;
    from--;
    while (from > 0 && is_key_byte((unsigned char)text[from - 1]))
        from--;
    /* The regex starts at a word boundary: '-', base64url but not a word byte, may precede. */
    while (from < second && text[from] == '-')
        from++;
    if (second - from < 3 || memcmp(text + from, "eyJ", 3) != 0)
        return false;
    size_t to = extend(text, len, *top, is_key_byte);
    const char *s = text + from;
    size_t n = to - from;
    const char *dot1 = memchr(s, '.', n);
    if (dot1 == NULL)
        return false;
    const char *rest = dot1 + 1;
    const char *dot2 = memchr(rest, '.', (size_t)(s + n - rest));
    if (dot2 == NULL)
        return false;
    unsigned char header[768];
    ptrdiff_t h = b64url_decode(s, (size_t)(dot1 - s), header, sizeof header);
    if (h < 2)
        return false;
    size_t i = 0;
    while (i < (size_t)h &&
           (header[i] == ' ' || header[i] == '\t' || header[i] == '\r' || header[i] == '\n'))
        i++;
    if (i == (size_t)h || header[i] != '{')
        return false;
    struct sb_str hv = {(const char *)header, (size_t)h};
    if (sb_str_find(hv, SB_STR_LIT("\"alg\"")) < 0)
        return false;
    size_t payload = (size_t)(dot2 - rest), sig = (size_t)(s + n - dot2 - 1);
    if (payload == 0 || payload % 4 == 1 || sig % 4 == 1)
        return false;
    *fromp = from;
    *top = to;
    return true;
}

/* Bytes of a PEM body: base64, line breaks, and the headers of encrypted keys
 * ("Proc-Type: 4,ENCRYPTED", "DEK-Info: DES-EDE3-CBC,...") . */
static bool is_pem_byte(int c)
{
    return is_alnum(c) || c == '+' || c == '/' || c == '=' || c == '\r' || c == '\n' || c == ' ' ||
           c == '\t' || c == ':' || c == ',' || c == '-';
}

/* How far a PEM block is looked for after its BEGIN line. */
#define PEM_MAX (64u << 10)

/* The regex matches the BEGIN line only (a regex for the whole block would be long, slow and,
 * with Vectorscan 5.4, unreliable); the END line with the same label is found here. A block
 * without its END line (a key pasted in part) runs to the end of its body. */
bool sb__pii_valid_private_key(const char *text, size_t len, size_t *fromp, size_t *top)
{
    static const char begin[] = "-----BEGIN ";
    /* The regex reports the end of the BEGIN line; its start is the nearest "-----BEGIN ". */
    size_t to = *top, from = to;
    while (from > 0 && to - from < 128 &&
           !(text[from - 1] == '-' && to - (from - 1) >= sizeof begin - 1 &&
             memcmp(text + from - 1, begin, sizeof begin - 1) == 0))
        from--;
    if (from == 0 || memcmp(text + from - 1, begin, sizeof begin - 1) != 0)
        return false;
    from--;
    *fromp = from;
    struct sb_str line = {text + from, to - from};
    if (!sb_str_starts_with(line, SB_STR_LIT(begin)) || line.len < sizeof begin - 1 + 5)
        return false;
    /* "RSA PRIVATE KEY": between "-----BEGIN " and the closing "-----". */
    struct sb_str label = {line.p + sizeof begin - 1, line.len - (sizeof begin - 1) - 5};
    struct sb_str rest = {text + to, SB_MIN(len - to, (size_t)PEM_MAX)};
    ptrdiff_t next_begin = sb_str_find(rest, SB_STR_LIT(begin));
    if (next_begin >= 0)
        rest.len = (size_t)next_begin;
    /* The first "-----END <label>-----" before any other BEGIN line. */
    for (size_t off = 0;;) {
        ptrdiff_t e =
            sb_str_find((struct sb_str){rest.p + off, rest.len - off}, SB_STR_LIT("-----END "));
        if (e < 0)
            break;
        off += (size_t)e + 9;
        struct sb_str tail = {rest.p + off, rest.len - off};
        if (sb_str_starts_with(tail, label) && tail.len >= label.len + 5 &&
            memcmp(tail.p + label.len, "-----", 5) == 0) {
            *top = to + off + label.len + 5;
            return true;
        }
    }
    /* No END line: the body, up to "--" or a byte a PEM body does not hold. */
    size_t end = to;
    while (end < to + rest.len && is_pem_byte((unsigned char)text[end]) &&
           !(text[end] == '-' && end + 1 < len && text[end + 1] == '-'))
        end++;
    while (end > to && (text[end - 1] == '\n' || text[end - 1] == '\r' || text[end - 1] == ' '))
        end--;
    *top = end;
    return true;
}
