/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_http1.h - the key server's HTTP/1.1 request head parser (http1.c):
 * pure, bounded, strict.  No I/O; http.c feeds it the bytes it has read.
 *
 * What it accepts is what an HTTP/1.1 client sends: a request line, header
 * fields, and a body framed by Content-Length or by the chunked coding
 * (RFC 9112 7.1: chunk extensions and trailer fields allowed, and ignored).
 * Whatever another parser on the path could read differently is refused
 * (RFC 9112 6.1, 6.3, 11.2): Content-Length and Transfer-Encoding together,
 * a Transfer-Encoding other than exactly "chunked" ("gzip, chunked",
 * "chunked, chunked", "identity") or in HTTP/1.0, either header repeated
 * (even with the same value), a Content-Length that is not plain digits
 * ("+5", " 5 5", "0x5"), whitespace before a field's colon, obsolete line
 * folding, control characters.  Head lines end in CRLF or a bare LF (RFC
 * 9112 2.2); the chunked framing's own lines in CRLF only.
 */
#ifndef LURK_SRV_HTTP1_H
#define LURK_SRV_HTTP1_H

#include <stddef.h>

#define LURK_HTTP1_MAX_HEAD 8192      /* request line + fields + empty line */
#define LURK_HTTP1_MAX_METHOD 16
#define LURK_HTTP1_MAX_TARGET 2048

typedef enum {
    LURK_HTTP1_DONE = 0,     /* a whole head: see the request */
    LURK_HTTP1_MORE,         /* no end of head yet (and under max_head) */
    LURK_HTTP1_BAD,          /* malformed or ambiguous: 400, then close */
    LURK_HTTP1_TOO_LARGE,    /* no end of head within max_head: close */
} lurk_http1_result;

typedef struct {
    size_t head_len;         /* bytes of the head, its empty line included */
    size_t body_len;         /* Content-Length (0 when absent) */
    const char *method;      /* into the parsed buffer, not terminated */
    size_t method_len;
    const char *path;        /* the target up to '?' */
    size_t path_len;
    int minor;               /* HTTP/1.<minor>: 0 or 1 */
    int is_post;
    int is_head;
    int conn_close;          /* Connection: close */
    int conn_keep_alive;     /* Connection: keep-alive (HTTP/1.0) */
    int expect_continue;     /* Expect: 100-continue */
    int chunked;             /* Transfer-Encoding: chunked (body_len is 0) */
} lurk_http1_req;

/*
 * Parses the head at the start of buf[0..len).  Empty lines before the
 * request line are skipped (RFC 9112 2.2) and counted in head_len.  On
 * LURK_HTTP1_BAD, *why (when not NULL) is a static sentence for the reply.
 */
lurk_http1_result lurk_http1_parse(const char *buf, size_t len, size_t max_head,
                                   lurk_http1_req *req, const char **why);

/* Longest chunk line (size and extensions) and trailer section. */
#define LURK_HTTP1_MAX_CHUNK_LINE 1024
#define LURK_HTTP1_MAX_TRAILER 8192

/*
 * The chunked body at the start of buf[0..len), after a head with chunked
 * set.  LURK_HTTP1_DONE: *consumed is the body's encoded length (trailer
 * section included), *body_len its data; with out != NULL (room for the
 * data, found by a first call without it) the data are copied there.
 * LURK_HTTP1_MORE: not all of it yet.  LURK_HTTP1_BAD: malformed (*why).
 * LURK_HTTP1_TOO_LARGE: the data exceed max_body, or the encoding exceeds
 * 2 x max_body + 64 KiB, as soon as that is known.
 */
lurk_http1_result lurk_http1_chunked(const char *buf, size_t len, size_t max_body, char *out,
                                     size_t *consumed, size_t *body_len, const char **why);

/* The reason phrase of a status code ("OK", "Bad Request", ...). */
const char *lurk_http1_reason(int status);

#endif /* LURK_SRV_HTTP1_H */
