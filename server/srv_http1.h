/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_http1.h - the key server's HTTP/1.1 request head parser (http1.c):
 * pure, bounded, strict.  No I/O; http.c feeds it the bytes it has read.
 *
 * What it accepts is what a LURK client sends: a request line, header
 * fields, and a body framed by Content-Length alone.  Whatever another
 * parser on the path could read differently is refused (RFC 9112 6.3,
 * 11.2): Transfer-Encoding of any kind, Content-Length repeated (even with
 * the same value), a Content-Length that is not plain digits ("+5", " 5 5",
 * "0x5"), whitespace before a field's colon, obsolete line folding, control
 * characters.  Lines end in CRLF or a bare LF (RFC 9112 2.2).
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
} lurk_http1_req;

/*
 * Parses the head at the start of buf[0..len).  Empty lines before the
 * request line are skipped (RFC 9112 2.2) and counted in head_len.  On
 * LURK_HTTP1_BAD, *why (when not NULL) is a static sentence for the reply.
 */
lurk_http1_result lurk_http1_parse(const char *buf, size_t len, size_t max_head,
                                   lurk_http1_req *req, const char **why);

/* The reason phrase of a status code ("OK", "Bad Request", ...). */
const char *lurk_http1_reason(int status);

#endif /* LURK_SRV_HTTP1_H */
