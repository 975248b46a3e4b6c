/* Tests for the application/vnd.amazon.eventstream codec: AWS's published test vectors, encode /
 * decode round trips, both CRCs enforced, frames split anywhere (byte by byte included). */
#include "backend/eventstream.h"

#include <criterion/criterion.h>
#include <string.h>
#include <zlib.h>

/* AWS's event-stream test vectors (aws-sdk-js-v3, eventstream-marshaller TestVectors). */
static const unsigned char v_empty[] = {0, 0,   0,  16,  0,   0,   0,   0,
                                        5, 194, 72, 235, 125, 152, 200, 255};
static const unsigned char v_int32_header[] = {
    0,   0,   0,   45, 0,   0,   0,   16,  65,  196, 36,  184, 10,  101, 118,
    101, 110, 116, 45, 116, 121, 112, 101, 4,   0,   0,   160, 12,  123, 39,
    102, 111, 111, 39, 58,  39,  98,  97,  114, 39,  125, 54,  244, 128, 160};
static const unsigned char v_payload_no_headers[] = {0,   0,  0,   29, 0,   0,   0,   0,  253, 82,
                                                     140, 90, 123, 39, 102, 111, 111, 39, 58,  39,
                                                     98,  97, 114, 39, 125, 195, 101, 57, 54};
static const unsigned char v_one_str_header[] = {
    0,   0,   0,   61,  0,   0,   0,   32,  7,   253, 131, 150, 12,  99,  111, 110,
    116, 101, 110, 116, 45,  116, 121, 112, 101, 7,   0,   16,  97,  112, 112, 108,
    105, 99,  97,  116, 105, 111, 110, 47,  106, 115, 111, 110, 123, 39,  102, 111,
    111, 39,  58,  39,  98,  97,  114, 39,  125, 141, 156, 8,   177};
static const unsigned char v_corrupted_length[] = {1,   0,  0,   29, 0,   0,   0,   0,  253, 82,
                                                   140, 90, 123, 39, 102, 111, 111, 39, 58,  39,
                                                   98,  97, 114, 39, 125, 195, 101, 57, 54};
static const unsigned char v_corrupted_payload[] = {0,   0,  0,   29, 0,   0,   0,   0,  253, 82,
                                                    140, 90, 123, 39, 102, 111, 111, 39, 58,  39,
                                                    98,  97, 114, 39, 141, 195, 101, 57, 54};

#define PAYLOAD "{'foo':'bar'}"

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Makes both CRCs of a frame right again after a test changed its bytes. */
static void refresh_crcs(unsigned char *p, size_t len)
{
    put32(p + 8, (uint32_t)crc32(0L, p, 8));
    put32(p + len - 4, (uint32_t)crc32(0L, p, (uInt)(len - 4)));
}

static struct sb__es_header str_header(const char *name, const char *value)
{
    struct sb__es_header h = {.name = sb_str_c(name), .type = SB__ES_STRING};
    h.bytes = sb_str_c(value);
    return h;
}

Test(eventstream, aws_vectors_decode)
{
    struct sb__es_message m;
    const char *why = NULL;

    cr_assert_eq(sb__es_decode_frame(v_empty, sizeof v_empty, &m, &why), 0, "%s", why);
    cr_assert_eq(m.n_headers, 0);
    cr_assert_eq(m.payload.len, 0);

    cr_assert_eq(sb__es_decode_frame(v_int32_header, sizeof v_int32_header, &m, &why), 0);
    cr_assert_eq(m.n_headers, 1);
    cr_assert(sb_str_eq_c(m.headers[0].name, "event-type"));
    cr_assert_eq(m.headers[0].type, SB__ES_INT);
    cr_assert_eq(m.headers[0].integer, 40972);
    cr_assert(sb_str_eq_c(m.payload, PAYLOAD));

    cr_assert_eq(sb__es_decode_frame(v_one_str_header, sizeof v_one_str_header, &m, &why), 0);
    cr_assert(sb_str_eq_c(sb__es_header_str(&m, "content-type"), "application/json"));
    cr_assert(sb_str_eq_c(m.payload, PAYLOAD));
    cr_assert_eq(sb__es_header_str(&m, "absent").len, 0);
}

Test(eventstream, aws_vectors_encode_byte_for_byte)
{
    struct sb_buf b;
    sb_buf_init(&b, 1 << 16);

    cr_assert_eq(sb__es_encode(&b, NULL, 0, SB_STR_NULL), 0);
    cr_assert_eq(b.len, sizeof v_empty);
    cr_assert_eq(memcmp(b.p, v_empty, b.len), 0);

    sb_buf_reset(&b);
    cr_assert_eq(sb__es_encode(&b, NULL, 0, SB_STR_LIT(PAYLOAD)), 0);
    cr_assert_eq(b.len, sizeof v_payload_no_headers);
    cr_assert_eq(memcmp(b.p, v_payload_no_headers, b.len), 0);

    sb_buf_reset(&b);
    struct sb__es_header h = str_header("content-type", "application/json");
    cr_assert_eq(sb__es_encode(&b, &h, 1, SB_STR_LIT(PAYLOAD)), 0);
    cr_assert_eq(b.len, sizeof v_one_str_header);
    cr_assert_eq(memcmp(b.p, v_one_str_header, b.len), 0);

    sb_buf_reset(&b);
    struct sb__es_header hi = {
        .name = SB_STR_LIT("event-type"), .type = SB__ES_INT, .integer = 40972};
    cr_assert_eq(sb__es_encode(&b, &hi, 1, SB_STR_LIT(PAYLOAD)), 0);
    cr_assert_eq(b.len, sizeof v_int32_header);
    cr_assert_eq(memcmp(b.p, v_int32_header, b.len), 0);
    sb_buf_free(&b);
}

Test(eventstream, aws_corrupted_vectors_rejected)
{
    struct sb__es_message m;
    const char *why = NULL;
    cr_assert_eq(sb__es_decode_frame(v_corrupted_length, sizeof v_corrupted_length, &m, &why),
                 SB_EUPSTREAM);
    cr_assert_not_null(why);
    why = NULL;
    cr_assert_eq(sb__es_decode_frame(v_corrupted_payload, sizeof v_corrupted_payload, &m, &why),
                 SB_EUPSTREAM);
    cr_assert(strstr(why, "message CRC"), "%s", why);
}

/* Every single-bit flip of a valid frame is caught by one CRC or the other (or the length). */
Test(eventstream, every_bit_flip_rejected)
{
    unsigned char f[sizeof v_one_str_header];
    for (size_t i = 0; i < sizeof f; i++) {
        for (int bit = 0; bit < 8; bit++) {
            memcpy(f, v_one_str_header, sizeof f);
            f[i] ^= (unsigned char)(1u << bit);
            struct sb__es_message m;
            const char *why = NULL;
            cr_assert_eq(sb__es_decode_frame(f, sizeof f, &m, &why), SB_EUPSTREAM,
                         "byte %zu bit %d accepted", i, bit);
        }
    }
}

/* -----------------------------------------------------------------------------------------------
 * Streaming decoder
 * --------------------------------------------------------------------------------------------- */

struct seen {
    int n;
    char types[8][32];
    char payloads[8][64];
    int stop_at; /* > 0: stop after this many frames */
};

static int on_msg(void *ud, const struct sb__es_message *m)
{
    struct seen *s = ud;
    cr_assert_lt(s->n, 8);
    struct sb_str t = sb__es_header_str(m, ":event-type");
    cr_assert_lt(t.len, sizeof s->types[0]);
    memcpy(s->types[s->n], t.p, t.len);
    s->types[s->n][t.len] = '\0';
    cr_assert_lt(m->payload.len, sizeof s->payloads[0]);
    if (m->payload.len)
        memcpy(s->payloads[s->n], m->payload.p, m->payload.len);
    s->payloads[s->n][m->payload.len] = '\0';
    s->n++;
    return s->stop_at > 0 && s->n >= s->stop_at ? 7 : 0;
}

/* Three frames back to back: what Bedrock sends. */
static void three_frames(struct sb_buf *b)
{
    static const char *types[] = {"messageStart", "contentBlockDelta", "messageStop"};
    static const char *payloads[] = {"{\"role\":\"assistant\"}", "{\"delta\":{\"text\":\"hi\"}}",
                                     "{\"stopReason\":\"end_turn\"}"};
    sb_buf_init(b, 1 << 16);
    for (int i = 0; i < 3; i++) {
        struct sb__es_header h[3] = {str_header(":event-type", types[i]),
                                     str_header(":content-type", "application/json"),
                                     str_header(":message-type", "event")};
        cr_assert_eq(sb__es_encode(b, h, 3, sb_str_c(payloads[i])), 0);
    }
}

static size_t frame_len(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    return (size_t)u[0] << 24 | (size_t)u[1] << 16 | (size_t)u[2] << 8 | u[3];
}

static void check_three(const struct seen *s)
{
    cr_assert_eq(s->n, 3);
    cr_assert_str_eq(s->types[0], "messageStart");
    cr_assert_str_eq(s->types[1], "contentBlockDelta");
    cr_assert_str_eq(s->types[2], "messageStop");
    cr_assert_str_eq(s->payloads[1], "{\"delta\":{\"text\":\"hi\"}}");
}

Test(eventstream, decoder_whole_and_byte_by_byte)
{
    struct sb_buf b;
    three_frames(&b);
    const char *why;

    struct seen whole = {0};
    struct sb__es_decoder d;
    sb__es_decoder_init(&d, 0);
    cr_assert_eq(sb__es_decoder_feed(&d, b.p, b.len, on_msg, &whole, &why), 0);
    check_three(&whole);
    cr_assert_not(sb__es_decoder_pending(&d));
    sb__es_decoder_free(&d);

    struct seen bytes = {0};
    size_t boundary = frame_len(b.p); /* where the frame in progress ends */
    sb__es_decoder_init(&d, 0);
    for (size_t i = 0; i < b.len; i++) {
        cr_assert_eq(sb__es_decoder_feed(&d, b.p + i, 1, on_msg, &bytes, &why), 0, "byte %zu", i);
        /* A frame is delivered at its last byte, and bytes are held exactly in between. */
        if (i + 1 == boundary) {
            cr_assert_not(sb__es_decoder_pending(&d), "byte %zu", i);
            if (boundary < b.len)
                boundary += frame_len(b.p + boundary);
        } else {
            cr_assert(sb__es_decoder_pending(&d), "byte %zu", i);
        }
    }
    check_three(&bytes);
    cr_assert_not(sb__es_decoder_pending(&d));
    sb__es_decoder_free(&d);
    sb_buf_free(&b);
}

Test(eventstream, decoder_every_two_way_split)
{
    struct sb_buf b;
    three_frames(&b);
    for (size_t cut = 0; cut <= b.len; cut++) {
        struct seen s = {0};
        struct sb__es_decoder d;
        const char *why;
        sb__es_decoder_init(&d, 0);
        cr_assert_eq(sb__es_decoder_feed(&d, b.p, cut, on_msg, &s, &why), 0);
        cr_assert_eq(sb__es_decoder_feed(&d, b.p + cut, b.len - cut, on_msg, &s, &why), 0);
        check_three(&s);
        sb__es_decoder_free(&d);
    }
    sb_buf_free(&b);
}

Test(eventstream, decoder_rejects_bad_crc_and_stays_failed)
{
    struct sb_buf b;
    three_frames(&b);
    b.p[b.len - 1] ^= 0x01; /* the last frame's message CRC */
    struct seen s = {0};
    struct sb__es_decoder d;
    const char *why = NULL;
    sb__es_decoder_init(&d, 0);
    cr_assert_eq(sb__es_decoder_feed(&d, b.p, b.len, on_msg, &s, &why), SB_EUPSTREAM);
    cr_assert(strstr(why, "message CRC"), "%s", why);
    cr_assert_eq(s.n, 2, "the good frames before it are delivered");
    cr_assert_eq(sb__es_decoder_feed(&d, "x", 1, on_msg, &s, &why), SB_EUPSTREAM);
    sb__es_decoder_free(&d);
    sb_buf_free(&b);

    /* A corrupt prelude is caught before waiting for the length it claims. */
    three_frames(&b);
    b.p[3] ^= 0x40;
    struct seen s2 = {0};
    sb__es_decoder_init(&d, 0);
    cr_assert_eq(sb__es_decoder_feed(&d, b.p, 12, on_msg, &s2, &why), SB_EUPSTREAM);
    cr_assert(strstr(why, "prelude CRC"), "%s", why);
    cr_assert_eq(s2.n, 0);
    sb__es_decoder_free(&d);
    sb_buf_free(&b);
}

Test(eventstream, decoder_limits_and_stop)
{
    /* A frame over the decoder's maximum is malformed even with a valid prelude CRC. */
    struct sb_buf big;
    sb_buf_init(&big, 1 << 20);
    char payload[4096];
    memset(payload, 'a', sizeof payload);
    cr_assert_eq(sb__es_encode(&big, NULL, 0, (struct sb_str){payload, sizeof payload}), 0);
    struct seen s = {0};
    struct sb__es_decoder d;
    const char *why = NULL;
    sb__es_decoder_init(&d, 1024);
    cr_assert_eq(sb__es_decoder_feed(&d, big.p, 12, on_msg, &s, &why), SB_EUPSTREAM);
    cr_assert(strstr(why, "length"), "%s", why);
    sb__es_decoder_free(&d);
    sb_buf_free(&big);

    /* The callback's non-zero return stops the decoder and comes back. */
    struct sb_buf b;
    three_frames(&b);
    struct seen st = {.stop_at = 1};
    sb__es_decoder_init(&d, 0);
    cr_assert_eq(sb__es_decoder_feed(&d, b.p, b.len, on_msg, &st, &why), 7);
    cr_assert_eq(st.n, 1);
    sb__es_decoder_free(&d);
    sb_buf_free(&b);
}

Test(eventstream, header_types_round_trip)
{
    struct sb__es_header h[] = {
        {.name = SB_STR_LIT("t"), .type = SB__ES_BOOL_TRUE},
        {.name = SB_STR_LIT("f"), .type = SB__ES_BOOL_FALSE},
        {.name = SB_STR_LIT("b"), .type = SB__ES_BYTE, .integer = -5},
        {.name = SB_STR_LIT("s"), .type = SB__ES_SHORT, .integer = -300},
        {.name = SB_STR_LIT("l"), .type = SB__ES_LONG, .integer = -1234567890123LL},
        {.name = SB_STR_LIT("ts"), .type = SB__ES_TIMESTAMP, .integer = 1700000000000LL},
        {.name = SB_STR_LIT("raw"), .type = SB__ES_BYTES, .bytes = SB_STR_LIT("\x01\x02")},
    };
    struct sb_buf b;
    sb_buf_init(&b, 1 << 16);
    cr_assert_eq(sb__es_encode(&b, h, SB_ARRAY_LEN(h), SB_STR_LIT("p")), 0);
    struct sb__es_message m;
    const char *why = NULL;
    cr_assert_eq(sb__es_decode_frame(b.p, b.len, &m, &why), 0, "%s", why);
    cr_assert_eq(m.n_headers, SB_ARRAY_LEN(h));
    cr_assert_eq(m.headers[0].integer, 1);
    cr_assert_eq(m.headers[1].integer, 0);
    cr_assert_eq(m.headers[2].integer, -5);
    cr_assert_eq(m.headers[3].integer, -300);
    cr_assert_eq(m.headers[4].integer, -1234567890123LL);
    cr_assert_eq(m.headers[5].integer, 1700000000000LL);
    cr_assert_eq(m.headers[6].bytes.len, 2);
    cr_assert(sb_str_eq_c(m.payload, "p"));

    /* A header whose name runs past the headers section is refused, not read, even when both
     * CRCs are right. */
    b.p[SB__ES_PRELUDE + 0] = 100; /* the first name's length */
    refresh_crcs((unsigned char *)b.p, b.len);
    cr_assert_eq(sb__es_decode_frame(b.p, b.len, &m, &why), SB_EUPSTREAM);
    cr_assert(strstr(why, "overrun"), "%s", why);
    sb_buf_free(&b);
}
