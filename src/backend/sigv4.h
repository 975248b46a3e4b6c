/* AWS Signature Version 4: signs an HTTP request's headers with an access key (HMAC-SHA256 over
 * the canonical request, OpenSSL underneath), as Bedrock and every other AWS API require. */
#ifndef SB_BACKEND_SIGV4_H
#define SB_BACKEND_SIGV4_H

#include "core/core.h"

/* Credentials; all borrowed. The secret never leaves sb__sigv4_sign except as the signature. */
struct sb__sigv4_creds {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token; /* NULL or "" when the credentials are long-term */
};

struct sb__sigv4_header {
    const char *name; /* any case; signed lower-cased */
    const char *value;
};

/* One request to sign; all borrowed for the call. */
struct sb__sigv4_request {
    const char *method; /* "POST" */
    const char *path;   /* the path exactly as sent on the wire (already percent-encoded) */
    const char *query;  /* the query string as sent (no '?'), "" or NULL for none */
    /* Every header to sign, host and x-amz-date included (the caller sends the same ones). Names
     * must be distinct ignoring case. At most SB__SIGV4_MAX_HEADERS. */
    const struct sb__sigv4_header *headers;
    size_t n_headers;
    const char *payload_hash; /* hex SHA-256 of the body (see sb__sigv4_sha256_hex) */
    const char *amz_date;     /* the x-amz-date value, "YYYYMMDDTHHMMSSZ" */
    const char *region;       /* "us-east-1" */
    const char *service;      /* "bedrock" */
};

#define SB__SIGV4_MAX_HEADERS   16
#define SB__SIGV4_AMZ_DATE_SIZE 17 /* "YYYYMMDDTHHMMSSZ" and its NUL */

/* Writes the hex SHA-256 of data (64 characters and a NUL) into out. */
void sb__sigv4_sha256_hex(struct sb_str data, char out[65]);

/* Formats unix time t (seconds, UTC) as an x-amz-date value into out. */
void sb__sigv4_amz_date(int64_t t, char out[SB__SIGV4_AMZ_DATE_SIZE]);

/* The canonical URI of a wire path, for services other than S3: every path segment is
 * URI-encoded once more (so a ':' sent as %3A signs as %253A), '/' kept. Appends to out. */
int sb__sigv4_canonical_uri(struct sb_str wire_path, struct sb_buf *out);

/* Signs r. Appends the Authorization header's value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") to authorization. When canonical is not NULL, the canonical
 * request is appended to it too (for tests and debugging; it holds no secret). Returns 0,
 * SB_EINVAL (a missing field, too many headers, a malformed amz_date), SB_ENOMEM or SB_ETOOBIG. */
int sb__sigv4_sign(const struct sb__sigv4_request *r, const struct sb__sigv4_creds *creds,
                   struct sb_buf *authorization, struct sb_buf *canonical);

/* The SigV4 signing key for a date ("YYYYMMDD"), region and service, in hex (for tests). Returns
 * 0 or SB_EINVAL. */
int sb__sigv4_signing_key_hex(const char *secret, const char *date, const char *region,
                              const char *service, char out[65]);

#endif
