/* SPDX-License-Identifier: Apache-2.0 */
/*
 * encoding.c - base64url and Base32 (RFC 4648 sections 5 and 6), no padding.
 *
 * Decoders accept only the canonical spelling of a value (no padding, no
 * whitespace, unused trailing bits zero) so that equal values compare equal
 * as text.  Base32 is the key id alphabet: upper case on output, dashes and
 * lower case tolerated on input.
 */
#include "lurk_encoding.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const char b64url_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
static const char base32_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/* The value of each base64url character, 255 for anything else: a table,
 * because the decoder's branches on random text mispredicted often enough
 * to cost microseconds per signature. */
/* clang-format off */
static const unsigned char b64url_values[256] = {
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,  62, 255, 255,
     52,  53,  54,  55,  56,  57,  58,  59,  60,  61, 255, 255, 255, 255, 255, 255,
    255,   0,   1,   2,   3,   4,   5,   6,   7,   8,   9,  10,  11,  12,  13,  14,
     15,  16,  17,  18,  19,  20,  21,  22,  23,  24,  25, 255, 255, 255, 255,  63,
    255,  26,  27,  28,  29,  30,  31,  32,  33,  34,  35,  36,  37,  38,  39,  40,
     41,  42,  43,  44,  45,  46,  47,  48,  49,  50,  51, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
    255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255,
};
/* clang-format on */

static int base32_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }
    if (c >= 'a' && c <= 'z') {
        return c - 'a';
    }
    if (c >= '2' && c <= '7') {
        return c - '2' + 26;
    }
    return -1;
}

int lurk_b64url_is_char(unsigned char c)
{
    return b64url_values[c] != 255;
}

size_t lurk_b64url_encoded_len(size_t n)
{
    return (n / 3) * 4 + ((n % 3) ? (n % 3) + 1 : 0);
}

lurk_err lurk_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outlen)
{
    size_t need = lurk_b64url_encoded_len(n);
    size_t o = 0;
    size_t i = 0;

    if (out == NULL || (in == NULL && n > 0) || outlen < need + 1) {
        return LURK_ERR_INVALID_ARG;
    }
    for (i = 0; i + 3 <= n; i += 3) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8) | in[i + 2];

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
        out[o++] = b64url_alphabet[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
    } else if (n - i == 2) {
        uint32_t v = ((uint32_t)in[i] << 16) | ((uint32_t)in[i + 1] << 8);

        out[o++] = b64url_alphabet[(v >> 18) & 63];
        out[o++] = b64url_alphabet[(v >> 12) & 63];
        out[o++] = b64url_alphabet[(v >> 6) & 63];
    }
    out[o] = '\0';
    return LURK_OK;
}

lurk_err lurk_b64url_decode(const char *in, size_t len, size_t max,
                            unsigned char **out, size_t *outlen)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    unsigned char *buf = NULL;
    size_t n = 0;
    size_t o = 0;
    size_t i = 0;
    unsigned bad = 0;

    if (out == NULL || outlen == NULL || (in == NULL && len > 0)) {
        return LURK_ERR_INVALID_ARG;
    }
    *out = NULL;
    *outlen = 0;
    /* One leftover character carries only 6 bits: no byte ends there. */
    if (len % 4 == 1) {
        goto end;
    }
    n = (len / 4) * 3 + ((len % 4) ? (len % 4) - 1 : 0);
    if (n > max) {
        ret = LURK_ERR_TOO_LARGE;
        goto end;
    }
    buf = malloc(n > 0 ? n : 1);
    if (buf == NULL) {
        ret = LURK_ERR_NOMEM;
        goto end;
    }
    /* Whole groups of four characters make three bytes; an invalid
     * character sets bit 7 or above of `bad`, tested once at the end. */
    for (; i + 4 <= len; i += 4) {
        unsigned a = b64url_values[(unsigned char)in[i]];
        unsigned b = b64url_values[(unsigned char)in[i + 1]];
        unsigned c = b64url_values[(unsigned char)in[i + 2]];
        unsigned d = b64url_values[(unsigned char)in[i + 3]];
        uint32_t v = (a << 18) | (b << 12) | (c << 6) | d;

        bad |= a | b | c | d;
        buf[o++] = (unsigned char)(v >> 16);
        buf[o++] = (unsigned char)(v >> 8);
        buf[o++] = (unsigned char)v;
    }
    /* The last two or three characters: one or two bytes, and the bits
     * past the last byte must be zero (the canonical form). */
    if (len - i >= 2) {
        unsigned a = b64url_values[(unsigned char)in[i]];
        unsigned b = b64url_values[(unsigned char)in[i + 1]];
        unsigned c = len - i == 3 ? b64url_values[(unsigned char)in[i + 2]] : 0;
        uint32_t v = (a << 18) | (b << 12) | (c << 6);

        bad |= a | b | c;
        buf[o++] = (unsigned char)(v >> 16);
        if (len - i == 3) {
            buf[o++] = (unsigned char)(v >> 8);
            bad |= (v & 0xff) != 0 ? 0x100u : 0;
        } else {
            bad |= (v & 0xffff) != 0 ? 0x100u : 0;
        }
    }
    if (bad > 63) {
        goto end;
    }
    *out = buf;
    *outlen = o;
    buf = NULL;
    ret = LURK_OK;

end:
    if (buf != NULL) {
        memset(buf, 0, n);
        free(buf);
    }
    return ret;
}

size_t lurk_base32_encoded_len(size_t n, unsigned group)
{
    size_t chars = (n * 8 + 4) / 5;

    if (group > 0 && chars > 0) {
        chars += (chars - 1) / group;
    }
    return chars;
}

lurk_err lurk_base32_encode(const unsigned char *in, size_t n, unsigned group,
                            char *out, size_t outlen)
{
    size_t need = lurk_base32_encoded_len(n, group);
    size_t o = 0;
    size_t written = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (out == NULL || (in == NULL && n > 0) || outlen < need + 1) {
        return LURK_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n || bits > 0; ) {
        unsigned idx = 0;

        if (bits < 5 && i < n) {
            acc = (acc << 8) | in[i++];
            bits += 8;
        }
        if (bits >= 5) {
            bits -= 5;
            idx = (acc >> bits) & 31;
            acc &= (1u << bits) - 1;
        } else {
            /* Last partial group: pad the remaining bits with zeros. */
            idx = (acc << (5 - bits)) & 31;
            bits = 0;
            acc = 0;
        }
        if (group > 0 && written > 0 && written % group == 0) {
            out[o++] = '-';
        }
        out[o++] = base32_alphabet[idx];
        written++;
    }
    out[o] = '\0';
    return LURK_OK;
}

lurk_err lurk_base32_decode(const char *in, size_t len, unsigned char *out,
                            size_t outmax, size_t *outlen)
{
    size_t o = 0;
    size_t chars = 0;
    uint32_t acc = 0;
    unsigned bits = 0;

    if (outlen == NULL || (in == NULL && len > 0) || (out == NULL && outmax > 0)) {
        return LURK_ERR_INVALID_ARG;
    }
    *outlen = 0;
    for (size_t i = 0; i < len; i++) {
        int v = 0;

        if (in[i] == '-') {
            continue;
        }
        v = base32_value((unsigned char)in[i]);
        if (v < 0) {
            return LURK_ERR_INVALID_FORMAT;
        }
        chars++;
        acc = (acc << 5) | (uint32_t)v;
        bits += 5;
        if (bits >= 8) {
            bits -= 8;
            if (o >= outmax) {
                return LURK_ERR_TOO_LARGE;
            }
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    /* 1, 3 or 6 characters past a multiple of 8 cannot end a byte string;
     * leftover bits must be zero. */
    switch (chars % 8) {
    case 1:
    case 3:
    case 6:
        return LURK_ERR_INVALID_FORMAT;
    default:
        break;
    }
    if (acc != 0) {
        return LURK_ERR_INVALID_FORMAT;
    }
    *outlen = o;
    return LURK_OK;
}
