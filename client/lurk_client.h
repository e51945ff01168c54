/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_client.h - the LURK client library: talk to lurk-keyserver.
 *
 * A LURK_CLIENT holds configuration and a pool of connections.  Creating it
 * never touches the network; the first call opens a connection lazily.
 * Calls may run concurrently from several threads: each call borrows its own
 * connection from the pool (one persistent HTTPS connection per concurrent
 * caller, keep-alive, TCP_NODELAY, TLS session reuse) and gives it back.
 * After fork() the child drops every inherited connection without talking on
 * it and opens its own on first use.
 *
 * Servers are tried in the order given; a transient failure (unreachable,
 * timeout, 429, 503) moves on to the next one.  Mutual TLS with server
 * verification is always on for https:// servers; unix: servers speak plain
 * HTTP over a unix-domain socket whose file permissions do the access control.
 *
 * Every call returns a lurk_err; lurk_err_str() is its sentence and the
 * optional lurk_detail says more (server StatusDescription, curl's message,
 * which server), never payload bytes.
 */
#ifndef LURK_CLIENT_H
#define LURK_CLIENT_H

#include <stddef.h>

#include "lurk_err.h"
#include "lurk_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lurk_client_st LURK_CLIENT;
typedef struct lurk_client_op_st LURK_CLIENT_OP;

#define LURK_CLIENT_MAX_SERVERS 16
#define LURK_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS 1000
#define LURK_CLIENT_DEFAULT_TIMEOUT_MS 3000

typedef struct {
    /* Server URLs separated by spaces or commas, tried in order:
     *   https://HOST:PORT            (path /.well-known/lurk is implied)
     *   unix:/path/to/socket         (plain HTTP over a unix socket)      */
    const char *servers;
    const char *ca_file;       /* CA that signed the key server's certificate */
    const char *cert_file;     /* client certificate (PEM) */
    const char *key_file;      /* client private key (PEM, a local file) */
    long connect_timeout_ms;   /* 0: LURK_CLIENT_DEFAULT_CONNECT_TIMEOUT_MS */
    long timeout_ms;           /* whole call, 0: LURK_CLIENT_DEFAULT_TIMEOUT_MS */
    size_t max_response;       /* 0: LURK_MAX_MESSAGE */
} lurk_client_config;

typedef struct {
    char msg[512];             /* "" when there is nothing to add */
    int status;                /* wire status when a server answered, else 0 */
    unsigned retry_after_ms;   /* from 429/503 answers */
} lurk_detail;

/* Copies what it needs from cfg.  Fails with LURK_ERR_CONFIG (and a detail)
 * on an empty or malformed server list or unreadable credential files. */
lurk_err lurk_client_new(const lurk_client_config *cfg, LURK_CLIENT **out, lurk_detail *d);
void lurk_client_free(LURK_CLIENT *c);

lurk_err lurk_client_hello(LURK_CLIENT *c, lurk_hello_info *info,
                           unsigned char *state, size_t *state_len /* in: cap */,
                           lurk_detail *d);
lurk_err lurk_client_ping(LURK_CLIENT *c, lurk_detail *d);

/* Fetches a key's public key and checks that it is the key the id names
 * (LURK_ERR_KEY_MISMATCH otherwise).  *spki is malloc'd; policy may be NULL. */
lurk_err lurk_client_public_key(LURK_CLIENT *c, const char *key_id, lurk_key_type *type,
                                char policy[32], unsigned char **spki, size_t *spki_len,
                                lurk_detail *d);

/* Checks a signature the server returned (1: good).  A bad one is
 * LURK_ERR_BAD_SIGNATURE and the next server is tried. */
typedef int lurk_client_verify_fn(void *arg, const lurk_buf *sig);

typedef struct {
    const char *key_id;
    int key_id_checked;            /* key_id was parsed already: not again */
    lurk_sig_alg alg;
    lurk_md md;                    /* NONE for ed25519 */
    int salt_len;                  /* rsa-pss: >= 0; ignored otherwise */
    const unsigned char *data;     /* the message, or NULL */
    size_t data_len;
    const unsigned char *digest;   /* or its digest (exactly one of the two) */
    size_t digest_len;
    lurk_client_verify_fn *verify; /* may be NULL; else called before the */
    void *verify_arg;              /* signature is accepted (outlives the call) */
} lurk_sign_params;

/* *siglen: in = capacity of sig, out = signature length. */
lurk_err lurk_client_sign(LURK_CLIENT *c, const lurk_sign_params *p,
                          unsigned char *sig, size_t *siglen, lurk_detail *d);

typedef struct {
    const char *key_id;
    int key_id_checked;            /* key_id was parsed already: not again */
    lurk_dec_mode mode;
    unsigned client_version;       /* tls-premaster */
    unsigned alt_version;          /* tls-premaster, 0 if none */
    lurk_md oaep_md;               /* oaep */
    const unsigned char *label;    /* oaep, may be NULL */
    size_t label_len;
    const unsigned char *in;
    size_t in_len;
} lurk_decrypt_params;

/* *outlen: in = capacity, out = plaintext length (always 48 for tls-premaster).
 * The plaintext is a secret: callers cleanse it. */
lurk_err lurk_client_decrypt(LURK_CLIENT *c, const lurk_decrypt_params *p,
                             unsigned char *out, size_t *outlen, lurk_detail *d);

/* ECDH with the peer's public key (DER SPKI); *outlen as above. */
lurk_err lurk_client_agree(LURK_CLIENT *c, const char *key_id,
                           const unsigned char *peer_spki, size_t peer_len,
                           unsigned char *out, size_t *outlen, lurk_detail *d);

/*
 * Non-blocking calls, for callers that must not wait on the network (an
 * OpenSSL ASYNC job).  The blocking calls above are a loop over these.
 *
 *   lurk_client_*_start  encodes the request and makes the operation (no
 *                        network; the parameters need not outlive it, but
 *                        a verify_arg must);
 *   lurk_client_op_step  makes progress: sends the request on this
 *                        thread's connection to a server (connecting if
 *                        needed, which blocks for at most the connect),
 *                        reads the replies that have arrived (also those of
 *                        the thread's other operations, which are woken),
 *                        fails over to the next server.  1 when finished;
 *                        0: wait until wait->fd is readable (fd >= 0), the
 *                        wake callback runs, or wait->deadline_ms passes,
 *                        then step again;
 *   lurk_client_op_finish the result, once step returned 1;
 *   lurk_client_op_free  at any time: an operation still in flight is
 *                        abandoned, its reply read and dropped later.
 *
 * All operations of one thread share that thread's connection to a server:
 * requests are pipelined and replies matched in order and by RequestId.
 * Of the operations waiting on one connection, one polls its socket (its
 * wait->fd is the socket); the others get fd -1 and are woken by the wake
 * callback when their reply is in or when polling passes to them.  An
 * operation is stepped, finished and freed on the thread that started it.
 */
typedef struct {
    int fd;               /* poll for POLLIN, or -1: wait for the wake callback */
    long deadline_ms;     /* CLOCK_MONOTONIC milliseconds: step again by then */
} lurk_client_wait;

/* Called from whichever step reads the reply (or hands over polling), with
 * the connection's lock held: must be cheap and must not call back into the
 * client. */
typedef void lurk_client_wake_fn(void *arg);

lurk_err lurk_client_sign_start(LURK_CLIENT *c, const lurk_sign_params *p, LURK_CLIENT_OP **op,
                                lurk_detail *d);
lurk_err lurk_client_decrypt_start(LURK_CLIENT *c, const lurk_decrypt_params *p,
                                   LURK_CLIENT_OP **op, lurk_detail *d);
lurk_err lurk_client_agree_start(LURK_CLIENT *c, const char *key_id,
                                 const unsigned char *peer_spki, size_t peer_len,
                                 LURK_CLIENT_OP **op, lurk_detail *d);
void lurk_client_op_set_wake(LURK_CLIENT_OP *op, lurk_client_wake_fn *wake, void *arg);
int lurk_client_op_step(LURK_CLIENT_OP *op, lurk_client_wait *wait);
/* Steps op to its end, this thread polling the socket (what the blocking
 * calls do); returns at once for a finished operation. */
void lurk_client_op_wait(LURK_CLIENT_OP *op);
/* The signature, plaintext or shared secret; *outlen: in = capacity. */
lurk_err lurk_client_op_finish(LURK_CLIENT_OP *op, unsigned char *out, size_t *outlen,
                               lurk_detail *d);
void lurk_client_op_free(LURK_CLIENT_OP *op);

/* The lurk-* settings of an openssl.cnf provider section, read one way by
 * lurk.so and the `lurk` tool: lurk-servers, lurk-ca, lurk-cert, lurk-key,
 * lurk-connect-timeout and lurk-timeout (a duration: 250 or 250ms is
 * milliseconds, 2s seconds; 1 ms to 1 h), lurk-verify (all, rsa, none).  A
 * bad value, or a lurk-* key that is none of these, is an error naming the
 * key and the file. */
typedef enum {
    LURK_CNF_VERIFY_DEFAULT = 0, /* not set: rsa */
    LURK_CNF_VERIFY_ALL,
    LURK_CNF_VERIFY_RSA,
    LURK_CNF_VERIFY_NONE
} lurk_cnf_verify;

typedef struct {
    int found;                 /* 0: the file has no lurk provider section */
    char *servers, *ca_file, *cert_file, *key_file; /* owned; NULL when absent */
    long connect_timeout_ms, timeout_ms;            /* 0 when absent */
    lurk_cnf_verify verify;
} lurk_client_cnf;

/* The value of one setting, or NULL when it is not set. */
typedef const char *lurk_cnf_get_fn(void *arg, const char *name);

/* Reads the settings through get; `where` names their place in messages
 * ("/etc/ssl/openssl.cnf, [lurk_sect]"). */
lurk_err lurk_client_cnf_read(lurk_cnf_get_fn *get, void *arg, const char *where,
                              lurk_client_cnf *out, lurk_detail *d);
/* A duration setting: "250", "250ms" (milliseconds), "2s"; 1 ms to 1 h. */
lurk_err lurk_client_parse_duration(const char *s, long *ms);
/* Checks the key names of provider `name`'s section in file (openssl_conf
 * -> providers -> name): LURK_ERR_CONFIG for a lurk-* key that is not a
 * setting (a typo would otherwise be ignored).  LURK_OK when the file or
 * the section cannot be found: there is nothing to check. */
lurk_err lurk_client_cnf_check_file(const char *file, const char *name, lurk_detail *d);

/* LURK_ERR_IO when the file cannot be read, LURK_ERR_CONFIG on a syntax
 * error or a bad value (the detail names the file, line or key). */
lurk_err lurk_client_cnf_load(const char *file, lurk_client_cnf *out, lurk_detail *d);
void lurk_client_cnf_clear(lurk_client_cnf *cnf);

/* A fresh request id (22 characters of base64url): unique per process,
 * thread and fork, not secret. */
lurk_err lurk_client_new_request_id(char out[LURK_REQUEST_ID_MAX + 1]);

#ifdef __cplusplus
}
#endif
#endif /* LURK_CLIENT_H */
