/* SPDX-License-Identifier: Apache-2.0 */
/*
 * json.c - the JSON writer of the LURK codec (proto.c writes every message
 * with it) and its string escaper, which also writes the key server's audit
 * log (server/audit.c).  Contract in lurk_json.h.
 */
#include "lurk_json.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "lurk_encoding.h"

#ifndef JW_START
#define JW_START 1024 /* a SignRequest fits; -DJW_START=4 exercises growth */
#endif

/*
 * Messages are written here by hand rather than built as a jansson tree
 * and dumped: json_dumps cost more per SignRequest than the whole HTTP
 * exchange (a circular-reference check per object, a buffer that reallocs
 * as it grows, UTF-8 iteration per character), and a remote sign has a
 * latency budget of a few microseconds.  What is written is exactly what
 * json_dumps(JSON_COMPACT) wrote for the same tree: members in the order
 * of the code (the order of PROTOCOL.md), no whitespace, the same escapes;
 * test_proto.c compares the two byte for byte.
 */

/* Length of the valid UTF-8 sequence at s (n > 0 bytes available): RFC
 * 3629, no overlongs, no surrogates, nothing above U+10FFFF (jansson's
 * rule); 0 when invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    unsigned cp = 0;
    size_t len = 0;

    if (c < 0x80) {
        return 1;
    }
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff))
        || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* Bytes a JSON string holds as they are: printable ASCII but '"' and '\\'. */
/* clang-format off */
static const unsigned char json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
/* clang-format on */

size_t lurk_proto_json_string(char *out, const char *s, size_t len, unsigned flags)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    const int ascii = (flags & LURK_PROTO_JSON_ASCII) != 0;
    size_t o = 0;
    size_t i = 0;

    if (out == NULL || (s == NULL && len > 0)) {
        return 0;
    }
    out[o++] = '"';
    for (;;) {
        unsigned char c;
        size_t run = i;

        while (run < len && json_plain[p[run]]) {
            run++;
        }
        memcpy(out + o, s + i, run - i);
        o += run - i;
        i = run;
        if (i == len) {
            break;
        }
        c = p[i];
        if (ascii && (c < 0x20 || c >= 0x7f)) {
            out[o++] = '?';
            i++;
            continue;
        }
        if (c >= 0x7f) {
            size_t n = utf8_seq(p + i, len - i);

            if (n == 0) {
                return 0;
            }
            memcpy(out + o, p + i, n);
            o += n;
            i += n;
            continue;
        }
        out[o++] = '\\';
        switch (c) {
        case '"': out[o++] = '"'; break;
        case '\\': out[o++] = '\\'; break;
        case '\b': out[o++] = 'b'; break;
        case '\f': out[o++] = 'f'; break;
        case '\n': out[o++] = 'n'; break;
        case '\r': out[o++] = 'r'; break;
        case '\t': out[o++] = 't'; break;
        default:
            memcpy(out + o, "u00", 3);
            out[o + 3] = hex[c >> 4];
            out[o + 4] = hex[c & 0x0f];
            o += 5;
            break;
        }
        i++;
    }
    out[o++] = '"';
    return o;
}

/*
 * The writer: one malloc'd buffer (the caller free()s the result), grown by
 * doubling.  A string is reserved at its worst case (6 bytes a byte) before
 * its escaped size is known, hence the slack above LURK_MAX_MESSAGE; the
 * limit itself is checked on the finished message.  The first failure
 * sticks and makes every later write a no-op, so encoders check once.
 */


/* `payload`: bytes expected beyond the small members (binaries, text). */
void lurk_jw_init(lurk_jw *w, size_t payload)
{
    w->len = 0;
    w->comma = 0;
    w->err = LURK_OK;
    w->cap = payload < JW_CAP_MAX - JW_START ? JW_START + payload : JW_CAP_MAX;
    w->p = malloc(w->cap);
    if (w->p == NULL) {
        w->cap = 0;
        w->err = LURK_ERR_NOMEM;
    }
}

/* Grows the buffer for n more bytes and the final NUL: copies to a new
 * buffer and cleanses the old one, since realloc could leave a premaster in
 * freed memory. */
int lurk_jw_grow(lurk_jw *w, size_t n)
{
    size_t cap = w->cap;
    char *p = NULL;

    if (w->err != LURK_OK) {
        return 0;
    }
    if (n >= JW_CAP_MAX - w->len) {
        w->err = LURK_ERR_TOO_LARGE;
        return 0;
    }
    while (cap < w->len + n + 1) {
        cap *= 2;
    }
    if (cap > JW_CAP_MAX) {
        cap = JW_CAP_MAX;
    }
    p = malloc(cap);
    if (p == NULL) {
        w->err = LURK_ERR_NOMEM;
        return 0;
    }
    memcpy(p, w->p, w->len);
    OPENSSL_cleanse(w->p, w->len);
    free(w->p);
    w->p = p;
    w->cap = cap;
    return 1;
}







/* A string value: refused (LURK_ERR_INVALID_ARG) when it is not UTF-8,
 * which the decoder (jansson) would refuse too. */
void lurk_jw_strn(lurk_jw *w, const char *s, size_t len)
{
    size_t n = 0;

    lurk_jw_sep(w);
    if (!lurk_jw_room(w, LURK_PROTO_JSON_STRING_MAX(len))) {
        return;
    }
    n = lurk_proto_json_string(w->p + w->len, s, len, 0);
    if (n == 0) {
        w->err = LURK_ERR_INVALID_ARG;
        return;
    }
    w->len += n;
    w->comma = 1;
}

void lurk_jw_str(lurk_jw *w, const char *s)
{
    if (s == NULL) {
        w->err = w->err != LURK_OK ? w->err : LURK_ERR_INVALID_ARG;
        return;
    }
    lurk_jw_strn(w, s, strlen(s));
}



/* The envelope's member: "<Tx>Request", "LurkResponse", ... */
void lurk_jw_key(lurk_jw *w, const char *name)
{
    lurk_jw_str(w, name);
    lurk_jw_char(w, ':');
    w->comma = 0;
}

void lurk_jw_int(lurk_jw *w, long long v)
{
    char digits[24];
    size_t n = sizeof(digits);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        digits[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        digits[--n] = '-';
    }
    lurk_jw_sep(w);
    lurk_jw_raw(w, digits + n, sizeof(digits) - n);
    w->comma = 1;
}

/* Base64url straight from the bytes into the message. */
void lurk_jw_bin(lurk_jw *w, const lurk_buf *b)
{
    size_t n = lurk_b64url_encoded_len(b->len);

    lurk_jw_sep(w);
    if (!lurk_jw_room(w, n + 2)) {
        return;
    }
    w->p[w->len] = '"';
    /* n chars and a NUL, which the closing quote overwrites */
    if (lurk_b64url_encode(b->data, b->len, w->p + w->len + 1, n + 1) != LURK_OK) {
        w->err = LURK_ERR_INVALID_ARG;
        return;
    }
    w->p[w->len + 1 + n] = '"';
    w->len += n + 2;
    w->comma = 1;
}


void lurk_jw_discard(lurk_jw *w)
{
    if (w->p != NULL) {
        OPENSSL_cleanse(w->p, w->cap);
        free(w->p);
    }
    w->p = NULL;
    w->len = 0;
    w->cap = 0;
}

/* Hands the NUL-terminated text to the caller, or fails with the first
 * error (the buffer cleansed and freed). */
lurk_err lurk_jw_finish(lurk_jw *w, char **json, size_t *len)
{
    lurk_err ret = w->err;

    if (ret == LURK_OK && w->len > LURK_MAX_MESSAGE) {
        ret = LURK_ERR_TOO_LARGE;
    }
    if (ret != LURK_OK) {
        lurk_jw_discard(w);
        return ret;
    }
    w->p[w->len] = '\0'; /* every reservation kept a byte for it */
    *json = w->p;
    if (len != NULL) {
        *len = w->len;
    }
    w->p = NULL;
    return LURK_OK;
}
