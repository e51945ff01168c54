/* SPDX-License-Identifier: Apache-2.0 */
/*
 * http_reply.h - the client's HTTP/1.1 reply reader (http_reply.c),
 * internal to the client library: strict (RFC 9112), bounded, no I/O.
 *
 * transport.c reads a connection's bytes into one buffer, buf[0..len), and
 * calls lurk_http_reply_parse whenever it has more; the reply is decoded in
 * place: the body (de-chunked) grows from the start of the buffer, the bytes
 * not parsed yet follow it.  Between two calls the caller may move the
 * unparsed bytes buf[pos..len) down to buf[body] (and set pos = body) or
 * give the buffer a new home; after a complete reply, the bytes from pos on
 * belong to the next one.
 */
#ifndef LURK_HTTP_REPLY_H
#define LURK_HTTP_REPLY_H

#include <stddef.h>

#define LURK_HTTP_HEAD_MAX 8192 /* status line and fields; a chunk line; trailers */

enum {
    LURK_HTTP_HEAD = 0,   /* status line and header fields */
    LURK_HTTP_BODY,       /* `left` bytes of a Content-Length body */
    LURK_HTTP_CHUNK_LINE, /* chunk-size [chunk-ext] CRLF */
    LURK_HTTP_CHUNK_DATA, /* `left` bytes of a chunk */
    LURK_HTTP_CHUNK_END,  /* the CRLF after a chunk */
    LURK_HTTP_TRAILER,    /* trailer fields up to an empty line */
    LURK_HTTP_DONE
};

/* One reply being read; all zero (memset) is the start of a reply. */
typedef struct {
    int state;
    size_t len;     /* bytes in the buffer (the caller adds what it reads) */
    size_t pos;     /* first byte not parsed yet */
    size_t body;    /* body bytes decoded at buf[0..body) */
    size_t left;    /* bytes left in the body or the chunk */
    size_t trailer; /* bytes of trailer fields so far */
    long status;    /* the final status (interim 1xx replies are skipped) */
    int close;      /* the server closes after this reply */
} lurk_http_reply;

/*
 * Parses what buf[h->pos..h->len) holds, `max` being the largest body
 * accepted.  1 when the reply is complete (body at buf[0..h->body)), 0 when
 * more is needed, -1 when malformed ("malformed HTTP reply: <reason>" in
 * err[0..errlen)), -2 when the body would be larger than max.
 */
int lurk_http_reply_parse(lurk_http_reply *h, char *buf, size_t max, char *err, size_t errlen);

#endif /* LURK_HTTP_REPLY_H */
