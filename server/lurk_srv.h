/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_srv.h - the key server's core, shared by its parts:
 *
 *   keystore.c  keys (secure heap), their policy and allowed clients
 *   policy.c    what a key's policy lets through (pure)
 *   handler.c   request body + peer -> response body + audit record (pure:
 *               no I/O but the crypto itself)
 *   audit.c     the append-only audit log, one JSON line per decision,
 *               batched per event loop
 *
 * and the front (main.c, config.c, http.c, dev.c) that does the I/O.
 */
#ifndef LURK_SRV_H
#define LURK_SRV_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "lurk_err.h"
#include "lurk_keyid.h"
#include "lurk_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- policy ------------------------------------------------------------ */

/* A key's one use. */
typedef enum {
    LURK_POLICY_TLS_SERVER = 0, /* "tls-server": sign only TLS 1.3 server
                                   CertificateVerify / TLS 1.2 ServerKeyExchange
                                   inputs; RSA: also TLS premaster decrypt */
    LURK_POLICY_SIGN,           /* "sign": generic signing (explicit opt-in) */
    LURK_POLICY_DECRYPT,        /* "decrypt": RSA OAEP and TLS premaster */
    LURK_POLICY_AGREE,          /* "agree": ECDH derive */
    LURK_POLICY__COUNT
} lurk_policy;

const char *lurk_policy_name(lurk_policy p);
/* LURK_OK and *out set, or LURK_ERR_CONFIG for an unknown name. */
lurk_err lurk_policy_from_name(const char *name, lurk_policy *out);

/* ---- keystore ---------------------------------------------------------- */

typedef struct lurk_srv_key_st LURK_SRV_KEY;
typedef struct lurk_srv_keystore_st LURK_SRV_KEYSTORE;

#define LURK_SRV_MAX_CLIENTS_PER_KEY 32

typedef struct {
    const char *name;             /* operator's name for the key */
    const char *file;             /* PEM / (encrypted) PKCS#8 file, or NULL */
    const char *uri;              /* OSSL_STORE URI (e.g. pkcs11:...), or NULL */
    const char *passphrase_file;  /* for encrypted files, or NULL */
    lurk_policy policy;
    uint32_t legacy_digests;      /* 1u << LURK_MD_SHA1 / LURK_MD_SHA224 it may sign;
                                     0 (the default): neither */
    const char *const *clients;   /* allowed peer identities; NULL/0 = any */
    size_t n_clients;
} lurk_srv_key_conf;

/* Refcounted; a reload builds a new store and swaps it in, requests in
 * flight keep the old one until they finish. */
lurk_err lurk_srv_keystore_new(OSSL_LIB_CTX *libctx, const char *propq,
                               LURK_SRV_KEYSTORE **out);
int lurk_srv_keystore_up_ref(LURK_SRV_KEYSTORE *ks);
void lurk_srv_keystore_free(LURK_SRV_KEYSTORE *ks);

/* Loads one key.  Errors name the key and the cause in `why`. */
lurk_err lurk_srv_keystore_add(LURK_SRV_KEYSTORE *ks, const lurk_srv_key_conf *kc,
                               char *why, size_t whylen);
/* Loads every *.pem / *.key / *.p8 file of dir with the default policy for
 * its type (tls-server); the key's name is the file name without suffix. */
lurk_err lurk_srv_keystore_add_dir(LURK_SRV_KEYSTORE *ks, const char *dir,
                                   const char *passphrase_file, char *why, size_t whylen);

const LURK_SRV_KEY *lurk_srv_keystore_find(const LURK_SRV_KEYSTORE *ks, const lurk_keyid *id);
size_t lurk_srv_keystore_count(const LURK_SRV_KEYSTORE *ks);
const LURK_SRV_KEY *lurk_srv_keystore_get(const LURK_SRV_KEYSTORE *ks, size_t i);
/* 16 bytes that change whenever the key set or a policy changes. */
void lurk_srv_keystore_state(const LURK_SRV_KEYSTORE *ks, unsigned char out[16]);

const char *lurk_srv_key_name(const LURK_SRV_KEY *k);
const char *lurk_srv_key_id_text(const LURK_SRV_KEY *k);
const lurk_keyid *lurk_srv_key_id(const LURK_SRV_KEY *k);
lurk_key_type lurk_srv_key_type(const LURK_SRV_KEY *k);
int lurk_srv_key_bits(const LURK_SRV_KEY *k);
lurk_policy lurk_srv_key_policy(const LURK_SRV_KEY *k);
/* RSA keys: the secret behind a bad TLS premaster's deterministic stand-in
 * (handler.c), LURK_SRV_REJECT_KEY_LEN bytes; NULL for other keys. */
#define LURK_SRV_REJECT_KEY_LEN 48
const unsigned char *lurk_srv_key_reject_key(const LURK_SRV_KEY *k);
/* 1u << LURK_MD_SHA1 / LURK_MD_SHA224: the legacy digests the key signs. */
uint32_t lurk_srv_key_legacy_digests(const LURK_SRV_KEY *k);
EVP_PKEY *lurk_srv_key_pkey(const LURK_SRV_KEY *k);
const unsigned char *lurk_srv_key_spki(const LURK_SRV_KEY *k, size_t *len);
/* 1 when the peer identity may use the key. */
int lurk_srv_key_allows_client(const LURK_SRV_KEY *k, const char *identity);

/* The key whose canonical key id text (lurk_srv_key_id_text) is exactly
 * text, or NULL: a lookup without parsing for the common case; any other
 * spelling goes through lurk_keyid_parse + lurk_srv_keystore_find. */
const LURK_SRV_KEY *lurk_srv_keystore_find_text(const LURK_SRV_KEYSTORE *ks, const char *text);

/* ---- per-key cache of ready operation state ---------------------------- */

/* Slots of a key's cache; the handler decides what each slot holds. */
#define LURK_SRV_KEY_CACHE_SLOTS 64

typedef void *(*lurk_srv_key_cache_make_fn)(const LURK_SRV_KEY *k, const void *arg);
typedef void (*lurk_srv_key_cache_free_fn)(void *obj);

/* The object in slot `slot` of k's cache.  The first caller makes it with
 * make(k, arg) under the key's lock; every later caller, from any thread,
 * gets the same object without a lock.  The object lives as long as the key,
 * so as long as its store: free_fn releases it when the store's last
 * reference goes (a reload drops it with the old keys).  It is shared:
 * callers only read it (copy it) and never use it for an operation.
 * NULL for a slot out of range, or when make failed (not tried again). */
const void *lurk_srv_key_cache(const LURK_SRV_KEY *k, size_t slot,
                               lurk_srv_key_cache_make_fn make,
                               lurk_srv_key_cache_free_fn free_fn, const void *arg);

/* ---- policy checks (pure) ---------------------------------------------- */

/* LURK_OK, or LURK_ERR_POLICY_DENIED / LURK_ERR_NOT_ACCEPTABLE /
 * LURK_ERR_INVALID_FORMAT with a sentence in why. */
lurk_err lurk_srv_policy_check_sign(const LURK_SRV_KEY *k, const lurk_request *req,
                                    OSSL_LIB_CTX *libctx, char *why, size_t whylen);
lurk_err lurk_srv_policy_check_decrypt(const LURK_SRV_KEY *k, const lurk_request *req,
                                       char *why, size_t whylen);
lurk_err lurk_srv_policy_check_agree(const LURK_SRV_KEY *k, const lurk_request *req,
                                     char *why, size_t whylen);

/* The two signing inputs a tls-server key accepts (exposed for tests).
 * TLS 1.3 (RFC 8446 4.4.3): 64 x 0x20 || "TLS 1.3, server CertificateVerify"
 *   || 0x00 || transcript hash (32 or 48 bytes).
 * TLS 1.2 (RFC 4492/8422 5.4): client_random(32) || server_random(32) ||
 *   ServerECDHParams { curve_type = named_curve(3), NamedCurve, point<1..255> }
 *   with the point valid for the curve (P-256/384/521: on the curve;
 *   x25519/x448: 32/56 bytes, not a low-order point);
 * or (RFC 5246 7.4.3): client_random(32) || server_random(32) ||
 *   ServerDHParams { dh_p<1..2^16-1>, dh_g<1..2^16-1>, dh_Ys<1..2^16-1> }
 *   on an RFC 7919 ffdhe or RFC 3526 MODP group of 2048 to 8192 bits, with
 *   its generator and 2 <= Ys <= p - 2. */
int lurk_srv_is_tls13_server_cv(const unsigned char *d, size_t n);
int lurk_srv_is_tls12_ske(const unsigned char *d, size_t n, OSSL_LIB_CTX *libctx,
                          char *why, size_t whylen);

/* ---- handler (pure) ---------------------------------------------------- */

typedef struct {
    const char *identity;  /* client certificate subject CN, or "uid:N" on unix */
    const char *address;   /* "127.0.0.1:51234" or "unix" */
    int authenticated;     /* 1: verified client certificate or unix peer */
} lurk_srv_peer;

typedef struct {
    char time[32];                              /* RFC 3339 UTC, ms */
    char request_id[LURK_REQUEST_ID_MAX + 1];
    char peer[128];
    char address[64];
    char key_id[LURK_KEY_ID_TEXT_MAX + 1];
    char key_name[64];
    char op[32];                                /* "Sign", "Decrypt", ... */
    char alg[32];                               /* "rsa-pss/sha256", ... */
    int status;
    lurk_err result;
    char detail[LURK_DESCRIPTION_MAX + 1];      /* never payload bytes */
} lurk_srv_audit_rec;

typedef struct {
    LURK_SRV_KEYSTORE *keys;
    OSSL_LIB_CTX *libctx;  /* the server's own context, default provider only */
    const char *propq;
} lurk_srv_handler_ctx;

/* Handles one request body and always produces a response body (malloc'd
 * JSON) and an audit record.  Returns the status (also the HTTP status). */
int lurk_srv_handle(const lurk_srv_handler_ctx *ctx, const lurk_srv_peer *peer,
                    const char *body, size_t len, char **resp, size_t *resp_len,
                    lurk_srv_audit_rec *rec);

/* A bare LurkResponse for errors found before the handler runs (overload,
 * oversize body, wrong path/method).  Returns the status. */
int lurk_srv_error_response(lurk_err err, const char *description, unsigned retry_after_ms,
                            char **resp, size_t *resp_len);

/* Sets rec->time to now, as lurk_srv_handle does (for records filled
 * outside it).  The seconds are formatted once a second per thread. */
void lurk_srv_audit_time(lurk_srv_audit_rec *rec);

/* ---- audit ------------------------------------------------------------- */

typedef struct lurk_srv_audit_st LURK_SRV_AUDIT;

/* path NULL or "-": standard error.  The file is opened O_APPEND. */
lurk_err lurk_srv_audit_open(const char *path, LURK_SRV_AUDIT **out, char *why, size_t whylen);
/* Reopens the file (log rotation on SIGHUP); lines written from then on,
 * buffered ones included, go to the new file. */
lurk_err lurk_srv_audit_reopen(LURK_SRV_AUDIT *a);
/* After every buffer of a has been freed. */
void lurk_srv_audit_close(LURK_SRV_AUDIT *a);

/*
 * One event loop's batch of lines, used by that loop's thread only.  The
 * owner appends a line per decision and flushes when it has nothing else
 * to do, when the batch is full, and LURK_SRV_AUDIT_MAX_AGE_MS after the
 * batch's first line at the latest.  A flush is one write(2) (O_APPEND,
 * under the log's read lock; a short write is completed; to a pipe, pieces
 * of whole lines: see audit.c).  An append writes the batch itself, first,
 * only when the batch cannot take another line.  append and flush return
 * the number of lines a failing write lost, with errno set, and 0
 * normally: the caller reports them.
 */
#define LURK_SRV_AUDIT_MAX_AGE_MS 50

typedef struct lurk_srv_audit_buf_st LURK_SRV_AUDIT_BUF;

/* NULL when out of memory.  The buffer does not own a. */
LURK_SRV_AUDIT_BUF *lurk_srv_audit_buf_new(LURK_SRV_AUDIT *a);
size_t lurk_srv_audit_buf_append(LURK_SRV_AUDIT_BUF *b, const lurk_srv_audit_rec *rec);
/* 1 when lines wait for a flush. */
int lurk_srv_audit_buf_pending(const LURK_SRV_AUDIT_BUF *b);
/* 1 when the batch is full enough to flush soon. */
int lurk_srv_audit_buf_full(const LURK_SRV_AUDIT_BUF *b);
size_t lurk_srv_audit_buf_flush(LURK_SRV_AUDIT_BUF *b);
/* Writes what is left (flush first to learn of a failure), then frees. */
void lurk_srv_audit_buf_free(LURK_SRV_AUDIT_BUF *b);

#ifdef __cplusplus
}
#endif
#endif /* LURK_SRV_H */
