/* The application/vnd.amazon.eventstream binary framing that Bedrock's streaming APIs answer in:
 * a decoder that checks both CRCs and reassembles frames split across reads, and an encoder (for
 * tests and fakes written in C).
 *
 * A frame, all integers big-endian:
 *   total length (4) | headers length (4) | prelude CRC32 of the 8 bytes before it (4)
 *   headers (headers length bytes) | payload | message CRC32 of every byte before it (4)
 * A header: name length (1) | name | value type (1) | value, where the value of type 7 (string)
 * and 6 (bytes) is a 2-byte length and the bytes, and the other types have fixed sizes. */
#ifndef SB_BACKEND_EVENTSTREAM_H
#define SB_BACKEND_EVENTSTREAM_H

#include "core/core.h"

#define SB__ES_PRELUDE     12          /* total length, headers length, prelude CRC */
#define SB__ES_MIN_FRAME   16          /* a prelude and a message CRC, nothing else */
#define SB__ES_MAX_FRAME   (16u << 20) /* AWS's limit for one message */
#define SB__ES_MAX_HEADERS 16          /* more in one frame is treated as malformed */

/* Header value types, as the wire numbers them. */
enum sb__es_type {
    SB__ES_BOOL_TRUE = 0,
    SB__ES_BOOL_FALSE = 1,
    SB__ES_BYTE = 2,
    SB__ES_SHORT = 3,
    SB__ES_INT = 4,
    SB__ES_LONG = 5,
    SB__ES_BYTES = 6,
    SB__ES_STRING = 7,
    SB__ES_TIMESTAMP = 8,
    SB__ES_UUID = 9,
};

/* One header. Views borrow the frame's bytes. */
struct sb__es_header {
    struct sb_str name;
    enum sb__es_type type;
    struct sb_str bytes; /* SB__ES_STRING, SB__ES_BYTES (raw), SB__ES_UUID (16 raw bytes) */
    int64_t integer;     /* BYTE, SHORT, INT, LONG, TIMESTAMP (ms); 1/0 for the booleans */
};

/* One decoded frame. Views borrow the frame's bytes: valid only during the callback. */
struct sb__es_message {
    struct sb__es_header headers[SB__ES_MAX_HEADERS];
    size_t n_headers;
    struct sb_str payload;
};

/* The value of the string header named name (exact, case-sensitive as on the wire), or the empty
 * view when absent or not a string. */
struct sb_str sb__es_header_str(const struct sb__es_message *m, const char *name);

/* Decodes exactly one complete frame of len bytes. Returns 0 and fills *out (views into p), or
 * SB_EUPSTREAM with *why set to a static description (bad length, prelude CRC, message CRC,
 * header overrun, ...). */
int sb__es_decode_frame(const void *p, size_t len, struct sb__es_message *out, const char **why);

/* Called for each complete frame. Returning non-zero stops the decoder, which returns that value
 * from sb__es_decoder_feed. */
typedef int (*sb__es_message_fn)(void *ud, const struct sb__es_message *m);

/* Reassembles frames from pieces of a byte stream. */
struct sb__es_decoder {
    struct sb_buf buf; /* bytes of the frame in progress (and any after it) */
    size_t max_frame;  /* frames whose total length exceeds this are malformed */
    bool failed;       /* a malformed frame was seen; feeding again returns SB_EUPSTREAM */
};

/* Initializes a decoder that accepts frames up to max_frame bytes (0 = SB__ES_MAX_FRAME).
 * Allocates nothing until fed. */
void sb__es_decoder_init(struct sb__es_decoder *d, size_t max_frame);
/* Frees what the decoder holds. */
void sb__es_decoder_free(struct sb__es_decoder *d);
/* Feeds len bytes (any split). Calls fn for each frame completed. Returns 0; SB_EUPSTREAM with
 * *why set when a frame is malformed (the decoder then stays failed); SB_ENOMEM; or the non-zero
 * value fn returned. */
int sb__es_decoder_feed(struct sb__es_decoder *d, const void *p, size_t len, sb__es_message_fn fn,
                        void *ud, const char **why);
/* Whether bytes of an unfinished frame are held (a stream that ends now was cut short). */
bool sb__es_decoder_pending(const struct sb__es_decoder *d);

/* Appends one frame with the given headers (only STRING, BYTES, the booleans and the integer
 * types are encoded) and payload to out. Returns 0, SB_EINVAL (a name over 255 bytes or a value
 * over 65535), SB_ETOOBIG or SB_ENOMEM. */
int sb__es_encode(struct sb_buf *out, const struct sb__es_header *headers, size_t n_headers,
                  struct sb_str payload);

#endif
