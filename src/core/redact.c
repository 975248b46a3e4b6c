/* Keeping secrets out of what is shown: a URL's password replaced with "***" (a PostgreSQL
 * ledger's URL, in messages and `config check`), and a known secret scrubbed from a message that
 * a library wrote. */
#include <stdio.h>
#include <string.h>

#include "core/core.h"

static const char redacted[] = "***";

/* Appends query (the part of a URL after '?') with the value of password= replaced. */
static void redact_query(struct sb_buf *b, const char *query)
{
    static const char key[] = "password=";
    const char *p = query;
    while (*p != '\0') {
        size_t len = strcspn(p, "&");
        if (len >= sizeof key - 1 && strncmp(p, key, sizeof key - 1) == 0) {
            sb_buf_append_c(b, key);
            sb_buf_append_c(b, redacted);
        } else {
            sb_buf_append(b, p, len);
        }
        p += len;
        if (*p == '&')
            sb_buf_append_char(b, *p++);
    }
}

void sb_redact_url(const char *url, char *out, size_t out_size)
{
    if (out_size == 0)
        return;
    struct sb_buf b;
    /* Built whole, then cut: a cut never splits a password, which is gone by then. */
    sb_buf_init(&b, 2 * strlen(url) + 64);
    const char *scheme = strstr(url, "://");
    if (scheme == NULL) {
        snprintf(out, out_size, "%s", url);
        return;
    }
    /* libpq's rule: the user information ends at the first '@' before any '/'. */
    const char *auth = scheme + 3;
    size_t auth_len = strcspn(auth, "@/");
    const char *rest = auth;
    if (auth[auth_len] == '@') {
        const char *colon = memchr(auth, ':', auth_len);
        size_t keep = colon != NULL ? (size_t)(colon + 1 - url) : (size_t)(auth - url);
        sb_buf_append(&b, url, keep);
        if (colon != NULL)
            sb_buf_append_c(&b, redacted);
        rest = colon != NULL ? auth + auth_len : auth;
    } else {
        sb_buf_append(&b, url, (size_t)(auth - url));
    }
    const char *q = strchr(rest, '?');
    sb_buf_append(&b, rest, q != NULL ? (size_t)(q - rest) : strlen(rest));
    if (q != NULL) {
        sb_buf_append_char(&b, '?');
        redact_query(&b, q + 1);
    }
    /* Out of memory, appends fail: what was built, never the password, is all there is. */
    snprintf(out, out_size, "%.*s", (int)b.len, b.p != NULL ? b.p : "");
    sb_buf_free(&b);
}

void sb_redact_secret(char *msg, size_t msg_size, const char *secret)
{
    if (secret == NULL || secret[0] == '\0' || msg_size == 0 || strstr(msg, secret) == NULL)
        return;
    struct sb_buf b;
    size_t n = strlen(secret);
    sb_buf_init(&b, 3 * strlen(msg) + 64); /* a one-byte secret becomes three */
    for (const char *p = msg; *p != '\0';) {
        const char *hit = strstr(p, secret);
        size_t len = hit != NULL ? (size_t)(hit - p) : strlen(p);
        sb_buf_append(&b, p, len);
        p += len;
        if (hit != NULL) {
            sb_buf_append_c(&b, redacted);
            p += n;
        }
    }
    snprintf(msg, msg_size, "%.*s", (int)b.len, b.p != NULL ? b.p : "");
    sb_buf_free(&b);
}
