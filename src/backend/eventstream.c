/* The application/vnd.amazon.eventstream framing: decode (both CRCs checked, frames reassembled
 * across reads) and encode. See eventstream.h for the layout. */
#include "backend/eventstream.h"

#include <string.h>
#include <zlib.h>

/* -----------------------------------------------------------------------------------------------
 * Big-endian integers and CRC32 (zlib's: the same IEEE polynomial the framing uses)
 * --------------------------------------------------------------------------------------------- */

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static uint64_t be_n(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

static uint32_t crc(const unsigned char *p, size_t n)
{
    return (uint32_t)crc32(0L, p, (uInt)n);
}

static void put_be(unsigned char *p, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * (n - 1 - i)));
}

/* Fixed value sizes by type; -1 = a 2-byte length prefix follows. */
static const int value_size[] = {
    [SB__ES_BOOL_TRUE] = 0, [SB__ES_BOOL_FALSE] = 0, [SB__ES_BYTE] = 1,   [SB__ES_SHORT] = 2,
    [SB__ES_INT] = 4,       [SB__ES_LONG] = 8,       [SB__ES_BYTES] = -1, [SB__ES_STRING] = -1,
    [SB__ES_TIMESTAMP] = 8, [SB__ES_UUID] = 16,
};

/* -----------------------------------------------------------------------------------------------
 * Decoding
 * --------------------------------------------------------------------------------------------- */

static int parse_headers(const unsigned char *p, size_t len, struct sb__es_message *out,
                         const char **why)
{
    size_t i = 0;

    out->n_headers = 0;
    while (i < len) {
        if (out->n_headers == SB__ES_MAX_HEADERS) {
            *why = "too many headers in an event-stream frame";
            return SB_EUPSTREAM;
        }
        struct sb__es_header *h = &out->headers[out->n_headers];
        size_t name_len = p[i++];
        if (name_len == 0 || len - i < name_len + 1) {
            *why = "an event-stream header name overruns its frame";
            return SB_EUPSTREAM;
        }
        h->name = (struct sb_str){(const char *)p + i, name_len};
        i += name_len;
        unsigned type = p[i++];
        if (type >= SB_ARRAY_LEN(value_size)) {
            *why = "an event-stream header has an unknown value type";
            return SB_EUPSTREAM;
        }
        h->type = (enum sb__es_type)type;
        h->bytes = SB_STR_NULL;
        h->integer = 0;
        size_t n;
        if (value_size[type] < 0) {
            if (len - i < 2) {
                *why = "an event-stream header value overruns its frame";
                return SB_EUPSTREAM;
            }
            n = (size_t)be_n(p + i, 2);
            i += 2;
        } else {
            n = (size_t)value_size[type];
        }
        if (len - i < n) {
            *why = "an event-stream header value overruns its frame";
            return SB_EUPSTREAM;
        }
        if (h->type == SB__ES_BOOL_TRUE) {
            h->integer = 1;
        } else if (value_size[type] < 0 || h->type == SB__ES_UUID) {
            h->bytes = (struct sb_str){(const char *)p + i, n};
        } else if (n > 0) {
            /* Sign-extend the big-endian two's-complement value. */
            uint64_t v = be_n(p + i, n);
            unsigned shift = (unsigned)(64 - 8 * n);
            h->integer = shift ? (int64_t)(v << shift) >> shift : (int64_t)v;
        }
        i += n;
        out->n_headers++;
    }
    return SB_OK;
}

int sb__es_decode_frame(const void *data, size_t len, struct sb__es_message *out, const char **why)
{
    const unsigned char *p = data;

    if (len < SB__ES_MIN_FRAME) {
        *why = "an event-stream frame is shorter than its prelude";
        return SB_EUPSTREAM;
    }
    uint32_t total = be32(p), hlen = be32(p + 4);
    if (total != len) {
        *why = "an event-stream frame's length does not match its prelude";
        return SB_EUPSTREAM;
    }
    if (crc(p, 8) != be32(p + 8)) {
        *why = "an event-stream frame failed its prelude CRC";
        return SB_EUPSTREAM;
    }
    if (hlen > total - SB__ES_MIN_FRAME) {
        *why = "an event-stream frame's headers overrun it";
        return SB_EUPSTREAM;
    }
    if (crc(p, len - 4) != be32(p + len - 4)) {
        *why = "an event-stream frame failed its message CRC";
        return SB_EUPSTREAM;
    }
    int rc = parse_headers(p + SB__ES_PRELUDE, hlen, out, why);
    if (rc != SB_OK)
        return rc;
    out->payload =
        (struct sb_str){(const char *)p + SB__ES_PRELUDE + hlen, total - SB__ES_MIN_FRAME - hlen};
    if (out->payload.len == 0)
        out->payload.p = NULL;
    return SB_OK;
}

struct sb_str sb__es_header_str(const struct sb__es_message *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        if (m->headers[i].type == SB__ES_STRING && sb_str_eq_c(m->headers[i].name, name))
            return m->headers[i].bytes;
    }
    return SB_STR_NULL;
}

void sb__es_decoder_init(struct sb__es_decoder *d, size_t max_frame)
{
    d->max_frame = max_frame ? max_frame : SB__ES_MAX_FRAME;
    /* Room for one whole frame plus the start of the next one read with it. */
    sb_buf_init(&d->buf, d->max_frame + (64u << 10));
    d->failed = false;
}

void sb__es_decoder_free(struct sb__es_decoder *d)
{
    sb_buf_free(&d->buf);
}

bool sb__es_decoder_pending(const struct sb__es_decoder *d)
{
    return d->buf.len > 0;
}

/* Checks the prelude of the frame at p (at least SB__ES_PRELUDE bytes) before waiting for the
 * rest of it, so that a corrupt length is caught now rather than after reading up to it. */
static int check_prelude(const struct sb__es_decoder *d, const unsigned char *p, const char **why)
{
    uint32_t total = be32(p);
    if (crc(p, 8) != be32(p + 8)) {
        *why = "an event-stream frame failed its prelude CRC";
        return SB_EUPSTREAM;
    }
    if (total < SB__ES_MIN_FRAME || total > d->max_frame) {
        *why = "an event-stream frame has an impossible length";
        return SB_EUPSTREAM;
    }
    return SB_OK;
}

/* Decodes the whole frames at the start of bytes[0..n), calling fn for each. Sets *used to the
 * bytes consumed. */
static int drain(struct sb__es_decoder *d, const unsigned char *bytes, size_t n, size_t *used,
                 sb__es_message_fn fn, void *ud, const char **why)
{
    size_t off = 0;
    int rc = SB_OK;

    while (n - off >= SB__ES_PRELUDE) {
        rc = check_prelude(d, bytes + off, why);
        if (rc != SB_OK)
            break;
        uint32_t total = be32(bytes + off);
        if (n - off < total)
            break;
        struct sb__es_message m;
        rc = sb__es_decode_frame(bytes + off, total, &m, why);
        if (rc != SB_OK)
            break;
        off += total;
        rc = fn(ud, &m);
        if (rc != 0)
            break;
    }
    *used = off;
    return rc;
}

int sb__es_decoder_feed(struct sb__es_decoder *d, const void *p, size_t len, sb__es_message_fn fn,
                        void *ud, const char **why)
{
    size_t used = 0;
    int rc;

    *why = NULL;
    if (d->failed) {
        *why = "the event stream was already malformed";
        return SB_EUPSTREAM;
    }
    if (d->buf.len == 0) {
        /* The common case: decode straight from the caller's bytes, keep only the remainder. */
        rc = drain(d, p, len, &used, fn, ud, why);
        if (rc == SB_OK && used < len)
            rc = sb_buf_append(&d->buf, (const char *)p + used, len - used);
    } else {
        rc = sb_buf_append(&d->buf, p, len);
        if (rc == SB_OK) {
            rc = drain(d, (const unsigned char *)d->buf.p, d->buf.len, &used, fn, ud, why);
            memmove(d->buf.p, d->buf.p + used, d->buf.len - used);
            d->buf.len -= used;
            d->buf.p[d->buf.len] = '\0';
        }
    }
    if (rc == SB_ETOOBIG) {
        *why = "an event-stream frame is too large";
        rc = SB_EUPSTREAM;
    }
    if (rc == SB_EUPSTREAM || rc == SB_ENOMEM)
        d->failed = true;
    return rc;
}

/* -----------------------------------------------------------------------------------------------
 * Encoding
 * --------------------------------------------------------------------------------------------- */

static size_t header_size(const struct sb__es_header *h)
{
    int vs = value_size[h->type];
    return 1 + h->name.len + 1 + (vs < 0 ? 2 + h->bytes.len : (size_t)vs);
}

int sb__es_encode(struct sb_buf *out, const struct sb__es_header *headers, size_t n_headers,
                  struct sb_str payload)
{
    size_t hlen = 0;

    for (size_t i = 0; i < n_headers; i++) {
        const struct sb__es_header *h = &headers[i];
        if ((unsigned)h->type >= SB_ARRAY_LEN(value_size) || h->type == SB__ES_UUID ||
            h->name.len == 0 || h->name.len > 255 || h->bytes.len > 65535)
            return SB_EINVAL;
        hlen += header_size(h);
    }
    size_t total = SB__ES_MIN_FRAME + hlen + payload.len;
    if (total > UINT32_MAX)
        return SB_ETOOBIG;

    size_t start = out->len;
    unsigned char pre[SB__ES_PRELUDE];
    put_be(pre, total, 4);
    put_be(pre + 4, hlen, 4);
    put_be(pre + 8, crc(pre, 8), 4);
    int rc = sb_buf_append(out, pre, sizeof pre);
    for (size_t i = 0; rc == SB_OK && i < n_headers; i++) {
        const struct sb__es_header *h = &headers[i];
        unsigned char tmp[1 + 255 + 1 + 8];
        size_t k = 0;
        tmp[k++] = (unsigned char)h->name.len;
        memcpy(tmp + k, h->name.p, h->name.len);
        k += h->name.len;
        tmp[k++] = (unsigned char)h->type;
        int vs = value_size[h->type];
        if (vs < 0) {
            put_be(tmp + k, h->bytes.len, 2);
            k += 2;
        } else {
            put_be(tmp + k, (uint64_t)h->integer, (size_t)vs);
            k += (size_t)vs;
        }
        rc = sb_buf_append(out, tmp, k);
        if (rc == SB_OK && vs < 0)
            rc = sb_buf_append_str(out, h->bytes);
    }
    if (rc == SB_OK)
        rc = sb_buf_append_str(out, payload);
    if (rc == SB_OK) {
        unsigned char tail[4];
        put_be(tail, crc((const unsigned char *)out->p + start, out->len - start), 4);
        rc = sb_buf_append(out, tail, 4);
    }
    if (rc != SB_OK) {
        out->len = start; /* leave out as it was */
        if (out->p)
            out->p[start] = '\0';
    }
    return rc;
}
