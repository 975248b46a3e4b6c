/* AWS Signature Version 4 signing of request headers: canonical request, string to sign, derived
 * key, signature. Known-answer tests against AWS's published suite are in tests/unit/backend. */
#include "backend/sigv4.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SIGV4_ALGORITHM  "AWS4-HMAC-SHA256"
#define SIGV4_SECRET_MAX 256 /* bytes of a secret access key (AWS's are 40) */
#define SIGV4_CANON_MAX  (1u << 20)

static const char hex_digits[] = "0123456789abcdef";

static void to_hex(const unsigned char *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex_digits[p[i] >> 4];
        out[2 * i + 1] = hex_digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

void sb__sigv4_sha256_hex(struct sb_str data, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)(data.p ? data.p : ""), data.len, md);
    to_hex(md, sizeof md, out);
}

void sb__sigv4_amz_date(int64_t t, char out[SB__SIGV4_AMZ_DATE_SIZE])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    if (strftime(out, SB__SIGV4_AMZ_DATE_SIZE, "%Y%m%dT%H%M%SZ", &tm) == 0)
        out[0] = '\0';
}

/* HMAC-SHA256 into out (32 bytes). */
static void hmac(const void *key, size_t key_len, const char *data, size_t n, unsigned char *out)
{
    unsigned int len = SHA256_DIGEST_LENGTH;
    HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)data, n, out, &len);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request"). */
static int signing_key(const char *secret, const char *date, const char *region,
                       const char *service, unsigned char out[SHA256_DIGEST_LENGTH])
{
    char k0[4 + SIGV4_SECRET_MAX];
    size_t slen = strlen(secret);
    if (slen > SIGV4_SECRET_MAX)
        return SB_EINVAL;
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, secret, slen);
    unsigned char k1[SHA256_DIGEST_LENGTH], k2[SHA256_DIGEST_LENGTH], k3[SHA256_DIGEST_LENGTH];
    hmac(k0, 4 + slen, date, strlen(date), k1);
    hmac(k1, sizeof k1, region, strlen(region), k2);
    hmac(k2, sizeof k2, service, strlen(service), k3);
    hmac(k3, sizeof k3, "aws4_request", strlen("aws4_request"), out);
    /* The intermediate keys are as good as the secret for this day, region and service. */
    OPENSSL_cleanse(k0, sizeof k0);
    OPENSSL_cleanse(k1, sizeof k1);
    OPENSSL_cleanse(k2, sizeof k2);
    OPENSSL_cleanse(k3, sizeof k3);
    return SB_OK;
}

int sb__sigv4_signing_key_hex(const char *secret, const char *date, const char *region,
                              const char *service, char out[65])
{
    unsigned char key[SHA256_DIGEST_LENGTH];
    int rc = signing_key(secret, date, region, service, key);
    if (rc == SB_OK)
        to_hex(key, sizeof key, out);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * Canonical request
 * --------------------------------------------------------------------------------------------- */

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.' || c == '~';
}

int sb__sigv4_canonical_uri(struct sb_str path, struct sb_buf *out)
{
    static const char upper[] = "0123456789ABCDEF";
    int rc = SB_OK;

    if (path.len == 0)
        return sb_buf_append_char(out, '/');
    for (size_t i = 0; rc == SB_OK && i < path.len; i++) {
        unsigned char c = (unsigned char)path.p[i];
        if (unreserved(c) || c == '/') {
            rc = sb_buf_append_char(out, (char)c);
        } else {
            char esc[3] = {'%', upper[c >> 4], upper[c & 15]};
            rc = sb_buf_append(out, esc, 3);
        }
    }
    return rc;
}

/* One query parameter: name and value as sent (already encoded). */
struct query_param {
    struct sb_str name, value;
};

static int cmp_view(struct sb_str x, struct sb_str y)
{
    int c = x.len && y.len ? memcmp(x.p, y.p, SB_MIN(x.len, y.len)) : 0;
    if (c != 0)
        return c;
    return x.len < y.len ? -1 : x.len > y.len;
}

static int cmp_param(const void *a, const void *b)
{
    const struct query_param *x = a, *y = b;
    int c = cmp_view(x->name, y->name);
    return c != 0 ? c : cmp_view(x->value, y->value);
}

#define SIGV4_MAX_QUERY 64

/* The query's parameters sorted by name, then value, each written name=value. The wire query is
 * taken as already encoded. */
static int canonical_query(const char *query, struct sb_buf *out)
{
    struct query_param params[SIGV4_MAX_QUERY] = {0};
    size_t n = 0;
    const char *p = query ? query : "";

    while (*p) {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);
        if (len > 0) {
            if (n == SIGV4_MAX_QUERY)
                return SB_EINVAL;
            const char *eq = memchr(p, '=', len);
            size_t name_len = eq ? (size_t)(eq - p) : len;
            params[n].name = (struct sb_str){p, name_len};
            params[n].value = eq ? (struct sb_str){eq + 1, len - name_len - 1} : SB_STR_NULL;
            n++;
        }
        p += len + (amp ? 1 : 0);
    }
    qsort(params, n, sizeof params[0], cmp_param);
    int rc = SB_OK;
    for (size_t i = 0; rc == SB_OK && i < n; i++) {
        if (i > 0)
            rc = sb_buf_append_char(out, '&');
        if (rc == SB_OK)
            rc = sb_buf_append_str(out, params[i].name);
        if (rc == SB_OK)
            rc = sb_buf_append_char(out, '=');
        if (rc == SB_OK)
            rc = sb_buf_append_str(out, params[i].value);
    }
    return rc;
}

struct canon_header {
    char name[64];     /* lower-cased */
    const char *value; /* borrowed */
};

static int cmp_header(const void *a, const void *b)
{
    return strcmp(((const struct canon_header *)a)->name, ((const struct canon_header *)b)->name);
}

/* Appends value with leading and trailing blanks removed and inner runs of blanks made one. */
static int append_trimmed(struct sb_buf *out, const char *v)
{
    int rc = SB_OK;
    bool space = false, any = false;
    for (; rc == SB_OK && *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = any;
            continue;
        }
        if (space)
            rc = sb_buf_append_char(out, ' ');
        if (rc == SB_OK)
            rc = sb_buf_append_char(out, *v);
        space = false;
        any = true;
    }
    return rc;
}

/* Lower-cases and sorts the headers. */
static int sort_headers(const struct sb__sigv4_request *r, struct canon_header *h)
{
    for (size_t i = 0; i < r->n_headers; i++) {
        const char *name = r->headers[i].name;
        size_t len = name ? strlen(name) : 0;
        if (len == 0 || len >= sizeof h[i].name || !r->headers[i].value)
            return SB_EINVAL;
        for (size_t k = 0; k <= len; k++) {
            char c = name[k];
            h[i].name[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        h[i].value = r->headers[i].value;
    }
    qsort(h, r->n_headers, sizeof h[0], cmp_header);
    for (size_t i = 1; i < r->n_headers; i++) {
        if (strcmp(h[i - 1].name, h[i].name) == 0)
            return SB_EINVAL;
    }
    return SB_OK;
}

static int build_canonical(const struct sb__sigv4_request *r, const struct canon_header *h,
                           struct sb_buf *canon, struct sb_buf *signed_headers)
{
    int rc = sb_buf_printf(canon, "%s\n", r->method);
    if (rc == SB_OK)
        rc = sb__sigv4_canonical_uri(sb_str_c(r->path), canon);
    if (rc == SB_OK)
        rc = sb_buf_append_char(canon, '\n');
    if (rc == SB_OK)
        rc = canonical_query(r->query, canon);
    if (rc == SB_OK)
        rc = sb_buf_append_char(canon, '\n');
    for (size_t i = 0; rc == SB_OK && i < r->n_headers; i++) {
        rc = sb_buf_printf(canon, "%s:", h[i].name);
        if (rc == SB_OK)
            rc = append_trimmed(canon, h[i].value);
        if (rc == SB_OK)
            rc = sb_buf_append_char(canon, '\n');
        if (rc == SB_OK && i > 0)
            rc = sb_buf_append_char(signed_headers, ';');
        if (rc == SB_OK)
            rc = sb_buf_append_c(signed_headers, h[i].name);
    }
    if (rc == SB_OK)
        rc = sb_buf_printf(canon, "\n%s\n%s", signed_headers->p ? signed_headers->p : "",
                           r->payload_hash);
    return rc;
}

static bool valid_amz_date(const char *d)
{
    if (!d || strlen(d) != SB__SIGV4_AMZ_DATE_SIZE - 1 || d[8] != 'T' || d[15] != 'Z')
        return false;
    for (int i = 0; i < 15; i++) {
        if (i != 8 && (d[i] < '0' || d[i] > '9'))
            return false;
    }
    return true;
}

int sb__sigv4_sign(const struct sb__sigv4_request *r, const struct sb__sigv4_creds *creds,
                   struct sb_buf *authorization, struct sb_buf *canonical)
{
    struct canon_header h[SB__SIGV4_MAX_HEADERS];
    struct sb_buf canon, sh, sts;
    unsigned char key[SHA256_DIGEST_LENGTH], sig[SHA256_DIGEST_LENGTH];
    char date[9], canon_hash[65], sig_hex[65];
    int rc;

    sb_buf_init(&canon, SIGV4_CANON_MAX);
    sb_buf_init(&sh, 4096);
    sb_buf_init(&sts, 4096);
    memset(key, 0, sizeof key);
    if (!r->method || !r->path || !r->payload_hash || !r->region || !r->service ||
        !valid_amz_date(r->amz_date) || !creds->access_key_id || !*creds->access_key_id ||
        !creds->secret_access_key || r->n_headers > SB__SIGV4_MAX_HEADERS) {
        rc = SB_EINVAL;
        goto fail;
    }
    rc = sort_headers(r, h);
    if (rc != SB_OK)
        goto fail;
    rc = build_canonical(r, h, &canon, &sh);
    if (rc != SB_OK)
        goto fail;
    sb__sigv4_sha256_hex(sb_buf_view(&canon), canon_hash);
    memcpy(date, r->amz_date, 8);
    date[8] = '\0';
    rc = sb_buf_printf(&sts, SIGV4_ALGORITHM "\n%s\n%s/%s/%s/aws4_request\n%s", r->amz_date, date,
                       r->region, r->service, canon_hash);
    if (rc != SB_OK)
        goto fail;
    rc = signing_key(creds->secret_access_key, date, r->region, r->service, key);
    if (rc != SB_OK)
        goto fail;
    hmac(key, sizeof key, sts.p, sts.len, sig);
    to_hex(sig, sizeof sig, sig_hex);
    rc = sb_buf_printf(authorization,
                       SIGV4_ALGORITHM " Credential=%s/%s/%s/%s/aws4_request, SignedHeaders=%s, "
                                       "Signature=%s",
                       creds->access_key_id, date, r->region, r->service, sh.p, sig_hex);
    if (rc == SB_OK && canonical)
        rc = sb_buf_append_str(canonical, sb_buf_view(&canon));
fail:
    OPENSSL_cleanse(key, sizeof key);
    sb_buf_free(&canon);
    sb_buf_free(&sh);
    sb_buf_free(&sts);
    return rc;
}
