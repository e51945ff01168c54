/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_proto.h - the LURK wire codec: C structures <-> JSON text.
 *
 * proto.c is the only file that knows JSON field names; client and server
 * both link it.  The protocol is written down in client/PROTOCOL.md.
 *
 * Ownership: decoders fill a caller-provided struct; every lurk_buf in it is
 * heap-owned by the struct and released by lurk_request_clear /
 * lurk_response_clear (which cleanse it: payloads may be premasters).
 * Encoders never take ownership of their input.
 *
 * Decoding is strict: unknown or duplicate fields, wrong JSON types,
 * non-canonical base64url and oversize values are rejected with
 * LURK_ERR_INVALID_FORMAT (LURK_ERR_TOO_LARGE for size limits) and a
 * sentence in `why` that names the field.
 */
#ifndef LURK_PROTO_H
#define LURK_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "lurk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LURK_PROTO_PATH "/.well-known/lurk"
#define LURK_PROTO_MEDIA_TYPE "application/json"
#define LURK_PROTO_VERSION_MAJOR 1
#define LURK_PROTO_VERSION_MINOR 0

/* Limits enforced by the decoder (both directions). */
#define LURK_REQUEST_ID_MAX 64        /* chars, [A-Za-z0-9_-] */
#define LURK_KEY_ID_TEXT_MAX 127      /* chars of a key id as text (= LURK_KEYID_TEXT_MAX - 1) */
#define LURK_DESCRIPTION_MAX 256      /* chars of StatusDescription */
#define LURK_MAX_DATA 16384           /* bytes of any one binary field */
#define LURK_MAX_MESSAGE (64 * 1024)  /* bytes of one JSON message */

/* Transactions (seed 000 names; Ping from seed 001). */
typedef enum {
    LURK_TX_HELLO = 0,
    LURK_TX_PING,
    LURK_TX_PUBLIC_KEY,
    LURK_TX_SIGN,
    LURK_TX_DECRYPT,
    LURK_TX_AGREE,
    LURK_TX_CREATE,   /* reserved: decoded, answered 406 by this server */
    LURK_TX_DISPOSE,  /* reserved: decoded, answered 406 by this server */
    LURK_TX__COUNT
} lurk_tx;

/* "Hello", "Ping", "PublicKey", "Sign", ... ; NULL when out of range. */
const char *lurk_tx_name(lurk_tx tx);

typedef enum {
    LURK_KEY_NONE = 0,
    LURK_KEY_RSA,
    LURK_KEY_EC,
    LURK_KEY_ED25519,
    LURK_KEY__COUNT
} lurk_key_type;

/* "RSA", "EC", "ED25519" (OpenSSL's key type names). */
const char *lurk_key_type_name(lurk_key_type t);
lurk_key_type lurk_key_type_from_name(const char *name);

typedef enum {
    LURK_SIG_NONE = 0,
    LURK_SIG_RSA_PKCS1,  /* "rsa-pkcs1": RSASSA-PKCS1-v1_5 with DigestInfo */
    LURK_SIG_RSA_PSS,    /* "rsa-pss": RSASSA-PSS, MGF1 with the same digest */
    LURK_SIG_ECDSA,      /* "ecdsa": DER ECDSA-Sig-Value */
    LURK_SIG_ED25519,    /* "ed25519": PureEdDSA over Data */
    LURK_SIG__COUNT
} lurk_sig_alg;

const char *lurk_sig_alg_name(lurk_sig_alg a);
lurk_sig_alg lurk_sig_alg_from_name(const char *name);

typedef enum {
    LURK_MD_NONE = 0,
    LURK_MD_SHA256,  /* "sha256" */
    LURK_MD_SHA384,  /* "sha384" */
    LURK_MD_SHA512,  /* "sha512" */
    LURK_MD_SHA1,    /* "sha1": legacy, off unless a key allows it */
    LURK_MD_SHA224,  /* "sha224": legacy, off unless a key allows it */
    LURK_MD__COUNT
} lurk_md;

const char *lurk_md_name(lurk_md md);        /* "sha256", ... */
lurk_md lurk_md_from_name(const char *name); /* accepts OpenSSL's spellings and
                                                the OIDs too: "SHA256", "SHA2-256",
                                                "sha-256", "2.16.840.1.101.3.4.2.1" */
const char *lurk_md_ossl_name(lurk_md md);   /* "SHA2-256", ...; NULL for NONE */
size_t lurk_md_size(lurk_md md);             /* 20, 28, 32, 48, 64; 0 for NONE */
/* 1 for SHA-1 and SHA-224: a key server signs them only for a key that
 * allows them (legacy_digests), never in TLS 1.3 or for OAEP. */
int lurk_md_is_legacy(lurk_md md);

typedef enum {
    LURK_DEC_NONE = 0,
    LURK_DEC_TLS_PREMASTER, /* "tls-premaster": PKCS#1 v1.5 + TLS version
                               check, implicit rejection, always 48 bytes */
    LURK_DEC_OAEP,          /* "oaep" */
    LURK_DEC__COUNT
} lurk_dec_mode;

const char *lurk_dec_mode_name(lurk_dec_mode m);
lurk_dec_mode lurk_dec_mode_from_name(const char *name);

typedef struct {
    unsigned char *data; /* NULL when absent */
    size_t len;
} lurk_buf;

typedef struct {
    lurk_tx type;
    char request_id[LURK_REQUEST_ID_MAX + 1];

    /* PublicKey, Sign, Decrypt, Agree, Dispose */
    char key_id[LURK_KEY_ID_TEXT_MAX + 1];

    /* Sign: exactly one of data / digest is present. */
    lurk_sig_alg sig_alg;
    lurk_md md;           /* DigestAlg; NONE only for ed25519 */
    int salt_len;         /* rsa-pss: SaltLength >= 0; -1 when absent */
    lurk_buf data;        /* Data: the message, hashed by the server */
    lurk_buf digest;      /* Digest: length must equal lurk_md_size(md) */

    /* Decrypt */
    lurk_dec_mode dec_mode;
    unsigned client_version;     /* tls-premaster: ClientVersion, e.g. 0x0303 */
    unsigned alt_version;        /* tls-premaster: AltVersion, 0 when absent */
    lurk_md oaep_md;             /* oaep: OaepDigest (MGF1 uses the same) */
    lurk_buf label;              /* oaep: Label, optional */
    lurk_buf ciphertext;         /* Data */

    /* Agree */
    lurk_buf peer_key;           /* PeerKey: DER SubjectPublicKeyInfo */

    /* Create (reserved: decoded so that a server can answer 406) */
    lurk_key_type key_type;      /* KeyType */
    char policy[32];             /* Policy, e.g. "tls-server" */
} lurk_request;

/* Hello capabilities are bit sets: bit (1u << value) of the enums above. */
typedef struct {
    unsigned major, minor;
    uint32_t transactions;  /* 1u << lurk_tx */
    uint32_t sig_algs;      /* 1u << lurk_sig_alg */
    uint32_t dec_modes;     /* 1u << lurk_dec_mode */
    uint32_t key_types;     /* 1u << lurk_key_type */
    uint32_t digests;       /* 1u << lurk_md */
} lurk_hello_info;

typedef struct {
    lurk_tx type;
    char request_id[LURK_REQUEST_ID_MAX + 1];
    int status;                                   /* Status: 200, 400, ... */
    char description[LURK_DESCRIPTION_MAX + 1];   /* StatusDescription */
    unsigned retry_after_ms;                      /* RetryAfter (429/503) */
    lurk_buf state;                               /* State (Hello, Ping, errors) */

    lurk_hello_info hello;                        /* Hello */

    /* PublicKey */
    lurk_key_type key_type;                       /* KeyType */
    char policy[32];                              /* Policy, e.g. "tls-server" */
    lurk_buf spki;                                /* PublicKey (DER SPKI) */

    /* Sign, Decrypt, Agree */
    lurk_buf value;                               /* Value */
} lurk_response;

void lurk_request_init(lurk_request *req);
void lurk_request_clear(lurk_request *req);   /* frees + cleanses, re-inits */
void lurk_response_init(lurk_response *resp);
void lurk_response_clear(lurk_response *resp);

/* Request: {"<Tx>Request": {...}}.  *json is NUL-terminated, free() it. */
lurk_err lurk_proto_encode_request(const lurk_request *req, char **json, size_t *len);
/* On failure `out` owns no buffer; out->type is the transaction when the
 * envelope named a known one (else LURK_TX__COUNT) and out->request_id is
 * set when RequestId was valid, so a server can address its error reply.
 * An unknown Algorithm/DigestAlg/Mode/OaepDigest/KeyType name is
 * LURK_ERR_NOT_ACCEPTABLE (406).  `why` is printable ASCII (<= whylen - 1
 * chars), usable as StatusDescription with whylen = LURK_DESCRIPTION_MAX + 1. */
lurk_err lurk_proto_decode_request(const char *json, size_t len, lurk_request *out,
                                   char *why, size_t whylen);

/* Response: {"<Tx>Response": {...}}.  A response to a request that could
 * not be decoded far enough to know its transaction uses "LurkResponse"
 * (type LURK_TX__COUNT) and carries only RequestId (if known), Status,
 * StatusDescription, RetryAfter and State. */
lurk_err lurk_proto_encode_response(const lurk_response *resp, char **json, size_t *len);
/* `expected` = LURK_TX__COUNT accepts the response of any transaction.
 * Encoders return LURK_ERR_INVALID_ARG for a struct that breaks a rule the
 * decoder enforces (LURK_ERR_TOO_LARGE for a size limit), a
 * StatusDescription that is not UTF-8 included; *json may hold a
 * premaster (DecryptResponse): cleanse it before free() where that matters. */
lurk_err lurk_proto_decode_response(const char *json, size_t len, lurk_tx expected,
                                    lurk_response *out, char *why, size_t whylen);

/*
 * The encoders' JSON string writer, shared with the key server's audit log
 * so that JSON escaping exists once.  Writes s[0..len) as a string literal,
 * quotes included, into out, which has room for
 * LURK_PROTO_JSON_STRING_MAX(len) bytes, and returns the bytes written (no
 * NUL).  The escapes are json_dumps' (without JSON_ENSURE_ASCII): \" \\ \b
 * \f \n \r \t, other control characters as \u00XX (upper-case hex);
 * everything else, valid UTF-8 included, is copied.  A string that is not
 * UTF-8 (RFC 3629) is not written: 0 is returned.  With
 * LURK_PROTO_JSON_ASCII, every byte outside printable ASCII is written as
 * '?' instead and nothing is refused (the audit log's fallback for bytes
 * that are not UTF-8).
 */
#define LURK_PROTO_JSON_ASCII 1u
#define LURK_PROTO_JSON_STRING_MAX(len) (6 * (size_t)(len) + 2)
size_t lurk_proto_json_string(char *out, const char *s, size_t len, unsigned flags);

#ifdef __cplusplus
}
#endif
#endif /* LURK_PROTO_H */
