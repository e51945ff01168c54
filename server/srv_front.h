/* SPDX-License-Identifier: Apache-2.0 */
/*
 * srv_front.h - what the daemon's front shares, private to lurk-keyserver:
 *
 *   main.c    command line, process setup, signals, reload
 *   config.c  the NCONF config file -> lurk_srv_conf, and the key store it names
 *   http.c    listeners, mutual TLS, the HTTP/1.1 front (request queues,
 *             work slices, shedding), event loops, limits, peer identity;
 *             its head parser is http1.c (srv_http1.h)
 *   dev.c     `--dev DIR`: a throwaway PKI and configs for trying lurk out
 *
 * The core (keystore, policy, handler, audit) is lurk_srv.h.
 */
#ifndef LURK_SRV_FRONT_H
#define LURK_SRV_FRONT_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "lurk_srv.h"

#define LURK_SRV_PROG "lurk-keyserver"
#define LURK_SRV_DEFAULT_LISTEN "127.0.0.1:7443"
#define LURK_SRV_MAX_LISTEN 16

/* ---- log (log.c: stderr, one line each, never secrets) -------------------- */

typedef enum { LURK_LOG_ERROR = 0, LURK_LOG_WARN, LURK_LOG_INFO, LURK_LOG_DEBUG } lurk_srv_log_level;

void lurk_srv_log(lurk_srv_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Lines above this level are dropped (default: LURK_LOG_INFO). */
void lurk_srv_log_set_level(lurk_srv_log_level level);
/* Appends the OpenSSL error queue (oldest first) to a message, then clears it. */
void lurk_srv_log_ossl(lurk_srv_log_level level, const char *what);
/* Formats the first OpenSSL error into buf ("" when none) and clears the queue. */
const char *lurk_srv_ossl_reason(char *buf, size_t len);

/* ---- config ---------------------------------------------------------------- */

typedef struct {
    char *name;
    char *section;
    char *file;             /* absolute or relative to the config's directory, resolved */
    char *uri;
    char *passphrase_file;  /* resolved */
    lurk_policy policy;
    uint32_t legacy_digests; /* 1u << LURK_MD_SHA1 / LURK_MD_SHA224 */
    char **clients;
    size_t n_clients;
} lurk_srv_conf_key;

typedef struct {
    char *path;             /* the config file as given */
    char *dir;              /* its directory: relative paths are resolved against it */
    char *listen[LURK_SRV_MAX_LISTEN];
    size_t n_listen;
    char *unix_socket;
    char *tls_cert;
    char *tls_key;
    char *client_ca;
    int threads;            /* >= 1 (default: CPUs) */
    int max_connections;
    size_t max_body;
    int header_timeout;     /* seconds: TLS handshake + first request */
    int handshake_timeout;  /* seconds: the TLS handshake alone */
    int max_handshakes;     /* connections not yet authenticated; 0: derived */
    int max_per_client;     /* max_connections_per_client; 0: derived */
    int idle_timeout;       /* seconds: inactivity on a connection */
    int queue_max_ms;       /* a request that waited longer is answered 503 */
    char *audit_log;        /* resolved path, or "-" */
    char *key_dir;
    char *key_dir_passphrase_file;
    lurk_srv_conf_key *keys;
    size_t n_keys;
} lurk_srv_conf;

/* Reads and validates the file; errors name the file, section, key, line. */
lurk_err lurk_srv_conf_load(const char *path, lurk_srv_conf **out, char *why, size_t whylen);
void lurk_srv_conf_free(lurk_srv_conf *conf);
/* Replaces the listen addresses by one (the --listen option). */
lurk_err lurk_srv_conf_set_listen(lurk_srv_conf *conf, const char *addr);
/* A new key store holding every key the config names. */
lurk_err lurk_srv_conf_keystore(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx,
                                LURK_SRV_KEYSTORE **out, char *why, size_t whylen);
/* Splits "host:port" / "[v6]:port"; host gets the bare address. */
lurk_err lurk_srv_split_addr(const char *addr, char *host, size_t hostlen, int *port);

/* ---- http ------------------------------------------------------------------ */

typedef struct lurk_srv_http_st LURK_SRV_HTTP;

/* ---- TLS (tls.c) ----------------------------------------------------------- */

/* The subject CN of ssl's verified peer certificate into identity (empty
 * when it has none); 1 when the peer is authenticated. */
int lurk_srv_tls_peer(SSL *ssl, char *identity, size_t len);
/* Why ssl's handshake failed (ssl_err: SSL_get_error), and *fix: the
 * setting it points to, in parentheses, or "". */
void lurk_srv_tls_failure(SSL *ssl, int ssl_err, char *reason, size_t len, const char **fix);

/* ---- listening sockets (listen.c) ----------------------------------------- */

/* A non-blocking listening TCP socket for host:port (port 0: any; the port
 * bound in *bound_port).  reuseport 0 makes a probe: every loop binds its
 * own socket with SO_REUSEPORT, which would also let a second server share
 * the port silently; an exclusive bind first makes that "address in use".
 * defer_s: TCP_DEFER_ACCEPT seconds.  -1 with why on failure. */
int lurk_srv_listen_tcp(const char *host, int port, int reuseport, int defer_s, int *bound_port,
                        char *why, size_t whylen);
/* The unix socket at path (a stale socket file is replaced). */
int lurk_srv_listen_unix(const char *path, char *why, size_t whylen);
/* "host:port", "[v6]:port". */
void lurk_srv_format_addr(char *out, size_t len, const char *host, int port);


/* The TLS server context the config describes (also used by --check). */
lurk_err lurk_srv_tls_ctx_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx, SSL_CTX **out,
                              char *why, size_t whylen);

/* Binds every listener (threads x listen addresses, plus the unix socket)
 * and prepares the loops; keys gets one more reference. */
lurk_err lurk_srv_http_new(const lurk_srv_conf *conf, OSSL_LIB_CTX *libctx,
                           LURK_SRV_KEYSTORE *keys, LURK_SRV_AUDIT *audit,
                           LURK_SRV_HTTP **out, char *why, size_t whylen);
/* Port / "host:port" of the first TCP listener (0 / "" when none). */
int lurk_srv_http_port(const LURK_SRV_HTTP *h);
const char *lurk_srv_http_addr(const LURK_SRV_HTTP *h);
/* Starts one thread per loop. */
lurk_err lurk_srv_http_start(LURK_SRV_HTTP *h, char *why, size_t whylen);
/* Swaps in a new key store, TLS context and limits for every loop; takes one
 * reference to keys and ownership of tls. */
void lurk_srv_http_reload(LURK_SRV_HTTP *h, const lurk_srv_conf *conf, LURK_SRV_KEYSTORE *keys,
                          SSL_CTX *tls);
/* Stops accepting, lets requests in flight finish (at most drain_ms), joins. */
void lurk_srv_http_stop(LURK_SRV_HTTP *h, unsigned drain_ms);
void lurk_srv_http_free(LURK_SRV_HTTP *h);

/* ---- dev ------------------------------------------------------------------- */

/* Makes (or reuses) DIR's PKI, keys and keyserver.cnf; *conf_path is
 * malloc'd DIR/keyserver.cnf. */
lurk_err lurk_srv_dev_prepare(const char *dir, const char *listen, OSSL_LIB_CTX *libctx,
                              char **conf_path, char *why, size_t whylen);
/* Once the server is bound: writes openssl.cnf and the key references for
 * the real address, then prints how to use them. */
lurk_err lurk_srv_dev_publish(const char *dir, const char *addr, OSSL_LIB_CTX *libctx,
                              char *why, size_t whylen);

#endif /* LURK_SRV_FRONT_H */
