/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_reply.c - the client's HTTP/1.1 reply reader (see http_reply.h):
 * status line, header fields, a Content-Length or chunked body, trailers;
 * interim 1xx replies skipped.  Anything ambiguous is malformed: a bare CR
 * or LF, control characters, a Content-Length that is not plain digits or
 * disagrees with another, a Transfer-Encoding other than chunked, both
 * framings at once, no framing at all.
 */
#include "http_reply.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* What one call works on: the caller's buffer, body limit and reason buffer. */
typedef struct {
    char *buf;
    size_t max;
    char *err;
    size_t errlen;
} lurk_http_ctx;

/* Fields read from one head. */
typedef struct {
    int has_length;
    unsigned long long length;
    int chunked;
    int close;
} lurk_http_fields;

/* A malformed reply: the reason goes to c->err. */
static int lurk_http_bad(lurk_http_ctx *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int lurk_http_bad(lurk_http_ctx *c, const char *fmt, ...)
{
    size_t n;
    va_list ap;

    if (c->errlen == 0) {
        return -1;
    }
    n = (size_t) snprintf(c->err, c->errlen, "malformed HTTP reply: ");
    if (n < c->errlen) {
        va_start(ap, fmt);
        vsnprintf(c->err + n, c->errlen - n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* tchar of RFC 9110 section 5.6.2. */
static int lurk_http_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Field values and reason phrases: no control characters but HTAB. */
static int lurk_http_text(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Whether the comma-separated list `v` holds the token `tok`. */
static int lurk_http_has_token(const char *v, size_t n, const char *tok)
{
    size_t tl = strlen(tok);
    size_t i = 0;

    while (i < n) {
        size_t s, e;

        while (i < n && (v[i] == ' ' || v[i] == '\t' || v[i] == ',')) {
            i++;
        }
        s = i;
        while (i < n && v[i] != ',') {
            i++;
        }
        e = i;
        while (e > s && (v[e - 1] == ' ' || v[e - 1] == '\t')) {
            e--;
        }
        if (e - s == tl && strncasecmp(v + s, tok, tl) == 0) {
            return 1;
        }
    }
    return 0;
}

/* One "name: value" line (no CRLF); `f` NULL for a trailer, whose fields are
 * checked and ignored. */
static int lurk_http_field(lurk_http_ctx *c, const char *line, size_t n, lurk_http_fields *f)
{
    size_t name = 0;
    const char *v;
    size_t vn;

    while (name < n && lurk_http_tchar((unsigned char) line[name])) {
        name++;
    }
    if (name == 0 || name == n || line[name] != ':') {
        return lurk_http_bad(c, "bad header line \"%.*s\"", (int) (n > 40 ? 40 : n), line);
    }
    v = line + name + 1;
    vn = n - name - 1;
    while (vn > 0 && (v[0] == ' ' || v[0] == '\t')) {
        v++;
        vn--;
    }
    while (vn > 0 && (v[vn - 1] == ' ' || v[vn - 1] == '\t')) {
        vn--;
    }
    if (!lurk_http_text(v, vn)) {
        return lurk_http_bad(c, "control character in %.*s", (int) name, line);
    }
    if (f == NULL) {
        return 0;
    }
    if (name == 14 && strncasecmp(line, "Content-Length", 14) == 0) {
        unsigned long long len = 0; /* 19 digits fit */

        if (vn == 0 || vn > 19) {
            return lurk_http_bad(c, "bad Content-Length");
        }
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9') {
                return lurk_http_bad(c, "bad Content-Length");
            }
            len = len * 10 + (unsigned long long) (v[i] - '0');
        }
        if (f->has_length && f->length != len) {
            return lurk_http_bad(c, "conflicting Content-Length fields");
        }
        f->has_length = 1;
        f->length = len;
    } else if (name == 17 && strncasecmp(line, "Transfer-Encoding", 17) == 0) {
        if (f->chunked || vn != 7 || strncasecmp(v, "chunked", 7) != 0) {
            return lurk_http_bad(c, "unsupported Transfer-Encoding \"%.*s\"",
                                 (int) (vn > 40 ? 40 : vn), v);
        }
        f->chunked = 1;
    } else if (name == 10 && strncasecmp(line, "Connection", 10) == 0) {
        f->close |= lurk_http_has_token(v, vn, "close");
    }
    return 0;
}

/* The head at c->buf[h->pos..end) (end: after the empty line).  Sets up
 * the body, or skips an interim (1xx) reply. */
static int lurk_http_head(lurk_http_ctx *c, lurk_http_reply *h, size_t end)
{
    const char *p = c->buf + h->pos;
    const char *stop = c->buf + end - 2; /* the empty line's CRLF */
    lurk_http_fields f;
    const char *eol;
    long status;
    int http10;

    memset(&f, 0, sizeof(f));
    eol = memmem(p, (size_t) (stop + 2 - p), "\r\n", 2);
    if (eol - p < 12 || (memcmp(p, "HTTP/1.1 ", 9) != 0 && memcmp(p, "HTTP/1.0 ", 9) != 0)
        || p[9] < '1' || p[9] > '5' || p[10] < '0' || p[10] > '9' || p[11] < '0' || p[11] > '9'
        || (eol - p > 12 && p[12] != ' ') || !lurk_http_text(p + 12, (size_t) (eol - p - 12))) {
        return lurk_http_bad(c, "bad status line \"%.*s\"", (int) (eol - p > 40 ? 40 : eol - p), p);
    }
    http10 = p[7] == '0';
    status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    for (p = eol + 2; p < stop; p = eol + 2) {
        eol = memmem(p, (size_t) (stop + 2 - p), "\r\n", 2);
        if (memchr(p, '\n', (size_t) (eol - p)) != NULL
            || memchr(p, '\r', (size_t) (eol - p)) != NULL) {
            return lurk_http_bad(c, "bare CR or LF in the header");
        }
        if (lurk_http_field(c, p, (size_t) (eol - p), &f) != 0) {
            return -1;
        }
    }
    h->pos = end;
    if (status < 200) {
        if (status == 101) {
            return lurk_http_bad(c, "unexpected 101 Switching Protocols");
        }
        return 0; /* interim: the real reply follows */
    }
    h->status = status;
    h->close = http10 || f.close;
    if (f.chunked && f.has_length) {
        return lurk_http_bad(c, "both Content-Length and Transfer-Encoding");
    }
    if (status == 204 || status == 304) {
        h->state = LURK_HTTP_DONE;
    } else if (f.chunked) {
        h->state = LURK_HTTP_CHUNK_LINE;
    } else if (!f.has_length) {
        return lurk_http_bad(c, "no Content-Length");
    } else if (f.length > c->max) {
        return -2;
    } else {
        h->left = (size_t) f.length;
        h->state = f.length > 0 ? LURK_HTTP_BODY : LURK_HTTP_DONE;
    }
    return 0;
}

static int lurk_http_hex(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
        return (c | 0x20) - 'a' + 10;
    }
    return -1;
}

/* chunk-size [chunk-ext] at c->buf[h->pos..eol). */
static int lurk_http_chunk_line(lurk_http_ctx *c, lurk_http_reply *h, const char *eol)
{
    const char *p = c->buf + h->pos;
    size_t room = c->max - h->body;
    size_t size = 0;
    size_t digits = 0;

    for (; p < eol && lurk_http_hex(*p) >= 0; p++, digits++) {
        if (size > room / 16) {
            return -2; /* over the limit with this digit: stop before overflowing */
        }
        size = size * 16 + (size_t) lurk_http_hex(*p);
    }
    if (digits == 0 || (p < eol && *p != ';' && *p != ' ' && *p != '\t')
        || !lurk_http_text(p, (size_t) (eol - p))) {
        return lurk_http_bad(c, "bad chunk size line");
    }
    if (size > room) {
        return -2;
    }
    h->pos = (size_t) (eol - c->buf) + 2;
    h->left = size;
    h->state = size > 0 ? LURK_HTTP_CHUNK_DATA : LURK_HTTP_TRAILER;
    return 0;
}

int lurk_http_reply_parse(lurk_http_reply *h, char *buf, size_t max, char *err, size_t errlen)
{
    lurk_http_ctx ctx = {buf, max, err, errlen};
    lurk_http_ctx *c = &ctx;
    int rc = 0;

    while (rc == 0 && h->state != LURK_HTTP_DONE) {
        size_t avail = h->len - h->pos;
        const char *at = buf + h->pos;
        const char *eol;

        switch (h->state) {
        case LURK_HTTP_HEAD:
            eol =
                memmem(at, avail < LURK_HTTP_HEAD_MAX ? avail : LURK_HTTP_HEAD_MAX, "\r\n\r\n", 4);
            if (eol == NULL) {
                size_t n = avail < LURK_HTTP_HEAD_MAX ? avail : LURK_HTTP_HEAD_MAX;

                /* A head with a bare LF never ends in CRLF CRLF: say so now,
                 * not at the deadline. */
                for (const char *lf = memchr(at, '\n', n); lf != NULL;
                     lf = memchr(lf + 1, '\n', n - (size_t) (lf + 1 - at))) {
                    if (lf == at || lf[-1] != '\r') {
                        return lurk_http_bad(c, "bare CR or LF in the header");
                    }
                }
                if (avail >= LURK_HTTP_HEAD_MAX) {
                    return lurk_http_bad(c, "header block over %d bytes", LURK_HTTP_HEAD_MAX);
                }
                return 0;
            }
            rc = lurk_http_head(c, h, (size_t) (eol - buf) + 4);
            break;
        case LURK_HTTP_BODY:
        case LURK_HTTP_CHUNK_DATA: {
            size_t n = avail < h->left ? avail : h->left;

            if (n == 0) {
                return 0;
            }
            memmove(buf + h->body, at, n);
            h->body += n;
            h->pos += n;
            h->left -= n;
            if (h->left == 0) {
                h->state = h->state == LURK_HTTP_BODY ? LURK_HTTP_DONE : LURK_HTTP_CHUNK_END;
            }
            break;
        }
        case LURK_HTTP_CHUNK_END:
            if (avail < 2) {
                return 0;
            }
            if (at[0] != '\r' || at[1] != '\n') {
                return lurk_http_bad(c, "chunk data not followed by CRLF");
            }
            h->pos += 2;
            h->state = LURK_HTTP_CHUNK_LINE;
            break;
        case LURK_HTTP_CHUNK_LINE:
        case LURK_HTTP_TRAILER: {
            /* A chunk line, or the trailer section in all, within one head's size. */
            size_t limit = LURK_HTTP_HEAD_MAX - h->trailer;

            eol = memmem(at, avail < limit ? avail : limit, "\r\n", 2);
            if (eol == NULL) {
                if (avail >= limit) {
                    return lurk_http_bad(c, "%s over %d bytes",
                                         h->state == LURK_HTTP_TRAILER ? "trailer"
                                                                       : "chunk size line",
                                         LURK_HTTP_HEAD_MAX);
                }
                return 0;
            }
            if (h->state == LURK_HTTP_CHUNK_LINE) {
                rc = lurk_http_chunk_line(c, h, eol);
            } else if (eol == at) {
                h->pos += 2;
                h->state = LURK_HTTP_DONE;
            } else {
                rc = lurk_http_field(c, at, (size_t) (eol - at), NULL);
                h->trailer += (size_t) (eol - at) + 2;
                h->pos += (size_t) (eol - at) + 2;
            }
            break;
        }
        }
    }
    if (rc != 0) {
        return rc;
    }
    return 1; /* the bytes from h->pos on belong to the next reply */
}
