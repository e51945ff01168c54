/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_transport.h - private to the client library: one persistent HTTPS
 * (or HTTP over a unix socket) connection to one key server.
 *
 * transport.c is the only file that knows libcurl.  A LURK_CONN is bound to
 * one server at creation and holds at most one keep-alive connection (libcurl
 * connects, transport.c speaks HTTP/1.1 on it).  A LURK_SHARE is the TLS
 * session and DNS cache that the connections of one client (in one process)
 * share.
 *
 * Nothing here is fork-aware: client.c decides when a connection or a share
 * was inherited and must be forgotten (leaked, never cleaned up, because
 * curl would talk on the inherited socket).
 */
#ifndef LURK_TRANSPORT_H
#define LURK_TRANSPORT_H

#include <stddef.h>

#include "lurk_err.h"

#define LURK_TRANSPORT_URL_MAX 512

typedef struct lurk_conn_st LURK_CONN;
typedef struct lurk_share_st LURK_SHARE;

/* A credential file read into memory at configuration time, so that a
 * worker that later drops privileges or chroots can still connect. */
typedef struct {
    unsigned char *data;
    size_t len;
} lurk_transport_blob;

/* One server, parsed from the configuration. */
typedef struct {
    char url[LURK_TRANSPORT_URL_MAX];       /* what curl is given */
    char unix_path[LURK_TRANSPORT_URL_MAX]; /* "" for https:// servers */
    char name[LURK_TRANSPORT_URL_MAX];      /* as configured, for messages */
} lurk_transport_server;

/* What every connection of a client is configured with. */
typedef struct {
    const lurk_transport_blob *ca;    /* PEM; required for https:// */
    const lurk_transport_blob *cert;  /* PEM client certificate, may be NULL */
    const lurk_transport_blob *key;   /* PEM client private key, may be NULL */
    long connect_timeout_ms;
    size_t max_response;
} lurk_transport_opts;

/* A reply as received; body points into the connection's buffer. */
typedef struct {
    long http_status;
    const char *body;
    size_t body_len;
} lurk_transport_reply;

/* CLOCK_MONOTONIC in milliseconds: the clock of every deadline. */
long lurk_transport_now_ms(void);

/* curl_global_init, once per process (thread-safe).  lurk_conn_new calls
 * it; never call it from provider init (curl's init re-enters OpenSSL's
 * config loading). */
lurk_err lurk_transport_init(char *detail, size_t detaillen);

/* Parses one configured server: "https://HOST[:PORT][/PATH]" (path defaults
 * to /.well-known/lurk) or "unix:/path/to/socket".  LURK_ERR_CONFIG with a
 * detail naming the entry for anything else. */
lurk_err lurk_transport_parse_server(const char *entry, lurk_transport_server *out,
                                     char *detail, size_t detaillen);

lurk_err lurk_share_new(LURK_SHARE **out);
/* Frees the share; every connection using it must be freed first. */
void lurk_share_free(LURK_SHARE *sh);

/* Creates a connection object (no network yet).  `share` may be NULL.  The
 * connection keeps pointers to srv, share and the blobs of opts: they must
 * outlive it. */
lurk_err lurk_conn_new(const lurk_transport_server *srv, const lurk_transport_opts *opts,
                       LURK_SHARE *share, LURK_CONN **out, char *detail, size_t detaillen);
void lurk_conn_free(LURK_CONN *conn);

/*
 * HTTP/1.1 with pipelining: requests are written as they come, replies
 * arrive in the order of the requests and are read without blocking.
 */

/* Connects when the connection is not up (blocking, bounded by the
 * deadline: a monotonic time from lurk_transport_now_ms) and writes one
 * POST with this JSON body.  *reused: the connection was already up (a
 * kept-alive connection that turns out closed fails later, before any
 * reply byte, and the caller may send again).  timeout_ms is for
 * messages.  On an error the connection is closed; the next send makes a
 * new one. */
lurk_err lurk_conn_send(LURK_CONN *conn, const char *body, size_t len, long deadline,
                        long timeout_ms, int *reused, char *detail, size_t detaillen);

/* The socket to poll for POLLIN while replies are awaited; -1 when not
 * connected. */
int lurk_conn_fd(const LURK_CONN *conn);

/* Whether some bytes of the next reply have arrived. */
int lurk_conn_partial(const LURK_CONN *conn);

/* Called once per complete reply, in order; the reply's body (not
 * NUL-terminated: the next reply may follow it at once) is valid during the
 * call only (then wiped). */
typedef void lurk_conn_reply_fn(void *arg, const lurk_transport_reply *reply);

/* Reads what has arrived without blocking and hands over each complete
 * reply, at most `expected` (the requests awaiting one).  LURK_OK when
 * nothing more can be read now (poll lurk_conn_fd) or every expected reply
 * was handed over.  Otherwise the connection failed (lost, malformed or
 * oversized reply, more bytes than replies expected): it is closed, the
 * error says why, and *lost says the connection was lost (the replies
 * still expected may be asked for again elsewhere).  A reply that ends the
 * connection (Connection: close, HTTP/1.0) closes it after the reply. */
lurk_err lurk_conn_recv(LURK_CONN *conn, size_t expected, lurk_conn_reply_fn *cb, void *arg,
                        int *lost, char *detail, size_t detaillen);

/* Closes the connection, if up; the next send makes a new one. */
void lurk_conn_close(LURK_CONN *conn);

#endif /* LURK_TRANSPORT_H */
