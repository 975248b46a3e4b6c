/* Growable byte buffers with a maximum size, always NUL-terminated. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

void sb_buf_init(struct sb_buf *b, size_t max)
{
    *b = (struct sb_buf){NULL, 0, 0, max};
}

void sb_buf_free(struct sb_buf *b)
{
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
}

void sb_buf_reset(struct sb_buf *b)
{
    b->len = 0;
    if (b->p != NULL)
        b->p[0] = '\0';
}

/* Makes room for extra more bytes plus the NUL. Growth doubles, so appends are amortized O(1). */
static int reserve(struct sb_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return SB_ETOOBIG;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    char *p = realloc(b->p, cap);
    if (p == NULL)
        return SB_ENOMEM;
    b->p = p;
    b->cap = cap;
    return 0;
}

int sb_buf_append(struct sb_buf *b, const void *data, size_t len)
{
    int rc = reserve(b, len);
    if (rc != 0)
        return rc;
    if (len > 0)
        memcpy(b->p + b->len, data, len);
    b->len += len;
    b->p[b->len] = '\0';
    return 0;
}

int sb_buf_append_str(struct sb_buf *b, struct sb_str s)
{
    return sb_buf_append(b, s.p, s.len);
}

int sb_buf_append_c(struct sb_buf *b, const char *s)
{
    return sb_buf_append(b, s, strlen(s));
}

int sb_buf_append_char(struct sb_buf *b, char c)
{
    return sb_buf_append(b, &c, 1);
}

int sb_buf_vprintf(struct sb_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SB_EINVAL;
    int rc = reserve(b, (size_t)n);
    if (rc != 0)
        return rc;
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int sb_buf_printf(struct sb_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sb_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

/* Length of the valid UTF-8 sequence at s (1 to 4), or 0 if the bytes there are not one. */
static size_t utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not valid UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

int sb_buf_append_json_escaped(struct sb_buf *b, struct sb_str s)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s.p;
    size_t i = 0, run = 0; /* bytes [i - run, i) are pending, to be copied as they are */
    int rc = 0;
    while (i < s.len && rc == 0) {
        unsigned char c = p[i];
        size_t n = c >= 0x20 && c != '"' && c != '\\' ? utf8_seq_len(p + i, s.len - i) : 0;
        if (n > 0) {
            i += n;
            run += n;
            continue;
        }
        rc = sb_buf_append(b, p + i - run, run);
        run = 0;
        if (rc != 0)
            break;
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t esc_len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            if (c < 0x20) {
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                esc_len = 6;
            } else {
                /* An invalid UTF-8 byte: U+FFFD in its place, so the output is valid JSON. */
                memcpy(esc, "\xEF\xBF\xBD", 3);
                esc_len = 3;
            }
        }
        rc = sb_buf_append(b, esc, esc_len);
        i++;
    }
    if (rc == 0)
        rc = sb_buf_append(b, p + i - run, run);
    return rc;
}

char *sb_buf_steal(struct sb_buf *b)
{
    if (b->p == NULL && sb_buf_append(b, "", 0) != 0)
        return NULL;
    char *p = b->p;
    b->p = NULL;
    b->len = b->cap = 0;
    return p;
}
