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

/* A reply as received; body points into the connection's buffer and stays
 * valid until the next post, cleanse or free on that connection. */
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

/* POSTs one JSON body and waits for the reply, at most timeout_ms in all
 * (connect included).  Connects when the connection is not up; a kept-alive
 * connection that turns out closed before any reply byte is replaced once,
 * and the request sent again.  Returns LURK_OK when an HTTP reply arrived,
 * whatever its status; otherwise the transport error (UNREACHABLE, TIMEOUT,
 * TLS, PROTOCOL for a malformed or oversized reply, ...) with curl's or the
 * reply parser's message in detail.  After an error, or a reply that ends
 * the connection (Connection: close, HTTP/1.0), the connection is closed; the
 * next post makes a new one. */
lurk_err lurk_conn_post(LURK_CONN *conn, const char *body, size_t len, long timeout_ms,
                        lurk_transport_reply *reply, char *detail, size_t detaillen);

/* Wipes the last reply (it may have carried a premaster or shared secret). */
void lurk_conn_cleanse(LURK_CONN *conn);

#endif /* LURK_TRANSPORT_H */
