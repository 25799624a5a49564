/* decode.c — Content-Encoding of request bodies (gzip, deflate, zstd, br) decoded before
 * rows are validated. Every decoder streams into a buffer that never grows past max_out,
 * so a decompression bomb costs at most max_out bytes and ends in a 413. */
#include <brotli/decode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <zstd.h>

#include "proxy/proxy_internal.h"

typedef struct {
    char *p;
    size_t len, cap, max;
} obuf_t;

/* Make room for at least one more byte; PROXY_DECODE_ETOOBIG past max. */
static int obuf_grow(obuf_t *b)
{
    if (b->len < b->cap) return 0;
    if (b->cap >= b->max) return PROXY_DECODE_ETOOBIG;
    size_t ncap = b->cap ? b->cap * 2 : 16384;
    if (ncap > b->max) ncap = b->max;
    char *np = realloc(b->p, ncap ? ncap : 1);
    if (!np) return -12;
    b->p = np;
    b->cap = ncap;
    return 0;
}

static int err_msg(char *err, size_t errlen, int rc, const char *fmt, const char *detail)
{
    if (err && errlen) snprintf(err, errlen, fmt, detail ? detail : "");
    return rc;
}

static int decode_zlib(const char *in, size_t len, int window, obuf_t *b, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, window) != Z_OK) return -12;
    int rc = 0;
    size_t off = 0;
    for (;;) {
        rc = obuf_grow(b);
        if (rc) break;
        /* zlib counts in uInt: feed and drain in slices below 1 GiB. */
        size_t in_left = len - off;
        z.next_in = (Bytef *)(in + off);
        z.avail_in = (uInt)(in_left > (1u << 30) ? (1u << 30) : in_left);
        size_t room = b->cap - b->len;
        z.next_out = (Bytef *)(b->p + b->len);
        z.avail_out = (uInt)(room > (1u << 30) ? (1u << 30) : room);
        uInt avail_in0 = z.avail_in, avail_out0 = z.avail_out;
        int zr = inflate(&z, Z_NO_FLUSH);
        off += avail_in0 - z.avail_in;
        b->len += avail_out0 - z.avail_out;
        if (zr == Z_STREAM_END) {
            /* Concatenated gzip members (what `cat a.gz b.gz` gives) are one body. */
            if (off < len && window > 15) {
                inflateReset(&z);
                continue;
            }
            if (off < len) {
                rc = err_msg(err, errlen, PROXY_DECODE_EINVALID,
                             "trailing data after the %s stream", "deflate");
            }
            break;
        }
        if (zr == Z_BUF_ERROR && off >= len && z.avail_out > 0) {
            rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "truncated compressed body%s", NULL);
            break;
        }
        if (zr != Z_OK && zr != Z_BUF_ERROR) {
            rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "inflate failed: %s",
                         z.msg ? z.msg : "corrupt data");
            break;
        }
    }
    inflateEnd(&z);
    if (rc == PROXY_DECODE_ETOOBIG)
        err_msg(err, errlen, rc, "decompressed body is larger than proxy.max_body_bytes%s", NULL);
    return rc;
}

static int decode_zstd(const char *in, size_t len, obuf_t *b, char *err, size_t errlen)
{
    ZSTD_DStream *d = ZSTD_createDStream();
    if (!d) return -12;
    ZSTD_initDStream(d);
    ZSTD_inBuffer ib = {in, len, 0};
    size_t last = 1;
    int rc = 0;
    for (;;) {
        rc = obuf_grow(b);
        if (rc) break;
        ZSTD_outBuffer ob = {b->p + b->len, b->cap - b->len, 0};
        last = ZSTD_decompressStream(d, &ob, &ib);
        b->len += ob.pos;
        if (ZSTD_isError(last)) {
            rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "zstd: %s", ZSTD_getErrorName(last));
            break;
        }
        if (last == 0 && ib.pos >= ib.size) break; /* frame(s) complete and flushed */
        if (ib.pos >= ib.size && ob.pos < ob.size) {
            if (last != 0)
                rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "truncated zstd body%s", NULL);
            break;
        }
    }
    ZSTD_freeDStream(d);
    if (rc == PROXY_DECODE_ETOOBIG)
        err_msg(err, errlen, rc, "decompressed body is larger than proxy.max_body_bytes%s", NULL);
    return rc;
}

static int decode_br(const char *in, size_t len, obuf_t *b, char *err, size_t errlen)
{
    BrotliDecoderState *s = BrotliDecoderCreateInstance(NULL, NULL, NULL);
    if (!s) return -12;
    const uint8_t *next_in = (const uint8_t *)in;
    size_t avail_in = len;
    int rc = 0;
    for (;;) {
        rc = obuf_grow(b);
        if (rc) break;
        size_t avail_out = b->cap - b->len;
        uint8_t *next_out = (uint8_t *)b->p + b->len;
        BrotliDecoderResult r =
            BrotliDecoderDecompressStream(s, &avail_in, &next_in, &avail_out, &next_out, NULL);
        b->len = (size_t)((char *)next_out - b->p);
        if (r == BROTLI_DECODER_RESULT_SUCCESS) {
            if (avail_in)
                rc = err_msg(err, errlen, PROXY_DECODE_EINVALID,
                             "trailing data after the %s stream", "brotli");
            break;
        }
        if (r == BROTLI_DECODER_RESULT_NEEDS_MORE_INPUT) {
            rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "truncated brotli body%s", NULL);
            break;
        }
        if (r == BROTLI_DECODER_RESULT_ERROR) {
            rc = err_msg(err, errlen, PROXY_DECODE_EINVALID, "brotli: %s",
                         BrotliDecoderErrorString(BrotliDecoderGetErrorCode(s)));
            break;
        }
    }
    BrotliDecoderDestroyInstance(s);
    if (rc == PROXY_DECODE_ETOOBIG)
        err_msg(err, errlen, rc, "decompressed body is larger than proxy.max_body_bytes%s", NULL);
    return rc;
}

int proxy_decode(const char *encoding, const char *in, size_t len, size_t max_out, char **out,
                 size_t *out_len, char *err, size_t errlen)
{
    *out = NULL;
    *out_len = 0;
    if (!encoding || !*encoding || strcasecmp(encoding, "identity") == 0) {
        if (len > max_out)
            return err_msg(err, errlen, PROXY_DECODE_ETOOBIG, "body is larger than %s",
                           "proxy.max_body_bytes");
        *out_len = len;
        return 0;
    }
    /* One byte of headroom tells "exactly max_out" from "more than max_out". */
    obuf_t b = {NULL, 0, 0, max_out + 1};
    int rc;
    if (strcasecmp(encoding, "gzip") == 0 || strcasecmp(encoding, "x-gzip") == 0) {
        rc = decode_zlib(in, len, 16 + 15, &b, err, errlen);
    } else if (strcasecmp(encoding, "deflate") == 0) {
        /* RFC 9110 deflate is zlib-wrapped; some clients send raw deflate: accept both. */
        const unsigned char *u = (const unsigned char *)in;
        int zlib_hdr = len >= 2 && (u[0] & 0x0f) == 8 && ((u[0] << 8) | u[1]) % 31 == 0;
        rc = decode_zlib(in, len, zlib_hdr ? 15 : -15, &b, err, errlen);
    } else if (strcasecmp(encoding, "zstd") == 0) {
        rc = decode_zstd(in, len, &b, err, errlen);
    } else if (strcasecmp(encoding, "br") == 0) {
        rc = decode_br(in, len, &b, err, errlen);
    } else {
        return err_msg(err, errlen, PROXY_DECODE_EUNSUPPORTED, "unsupported Content-Encoding '%s'",
                       encoding);
    }
    if (!rc && b.len > max_out)
        rc = err_msg(err, errlen, PROXY_DECODE_ETOOBIG,
                     "decompressed body is larger than proxy.max_body_bytes%s", NULL);
    if (rc) {
        free(b.p);
        return rc;
    }
    if (!b.p) b.p = malloc(1);
    if (!b.p) return -12;
    *out = b.p;
    *out_len = b.len;
    return 0;
}
