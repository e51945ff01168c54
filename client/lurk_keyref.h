/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_keyref.h - key reference files: a PEM block that names a remote key.
 *
 *   -----BEGIN LURK PRIVATE KEY-----
 *   base64 of DER:
 *   LurkKeyReference ::= SEQUENCE {
 *       version    INTEGER (1),
 *       keyId      UTF8String,              -- presentation form
 *       keyType    UTF8String,              -- "RSA" | "EC" | "ED25519"
 *       publicKey  SubjectPublicKeyInfo,
 *       policy     [0] UTF8String OPTIONAL, -- e.g. "tls-server"
 *       servers    [1] SEQUENCE OF UTF8String OPTIONAL  -- URLs, in order
 *   }
 *   -----END LURK PRIVATE KEY-----
 *
 * The file holds no secret: the public key is inside so that loading needs
 * no network.  Decoding checks that keyId is the strong id of publicKey and
 * that keyType matches it; a file that fails either is refused.
 */
#ifndef LURK_KEYREF_H
#define LURK_KEYREF_H

#include <stddef.h>

#include "lurk_err.h"
#include "lurk_keyid.h"
#include "lurk_proto.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LURK_KEYREF_PEM_LABEL "LURK PRIVATE KEY"
#define LURK_KEYREF_MAX_SERVERS 16

typedef struct {
    char key_id[LURK_KEYID_TEXT_MAX];   /* presentation form, as in the file */
    lurk_keyid id;                      /* parsed */
    lurk_key_type type;
    unsigned char *spki;                /* DER SubjectPublicKeyInfo, owned */
    size_t spki_len;
    char policy[32];                    /* "" when absent */
    char *servers[LURK_KEYREF_MAX_SERVERS]; /* owned strings */
    size_t n_servers;
} lurk_keyref;

void lurk_keyref_init(lurk_keyref *ref);
void lurk_keyref_clear(lurk_keyref *ref);

/* Builds a reference from a public key (DER SPKI): computes the id and key
 * type.  policy and servers may be NULL / 0. */
lurk_err lurk_keyref_from_spki(const unsigned char *spki, size_t spki_len,
                               const char *policy, const char *const *servers,
                               size_t n_servers, lurk_keyref *out);

/* DER body <-> struct.  decode validates as described above. */
lurk_err lurk_keyref_encode_der(const lurk_keyref *ref, unsigned char **der, size_t *len);
lurk_err lurk_keyref_decode_der(const unsigned char *der, size_t len, lurk_keyref *out);

/* Whole PEM text (NUL-terminated, free()) and file helpers.  decode_pem
 * and read_file take the first LURK PRIVATE KEY block of the text or file
 * (certificates may come before it). */
lurk_err lurk_keyref_encode_pem(const lurk_keyref *ref, char **pem, size_t *len);
lurk_err lurk_keyref_decode_pem(const char *pem, size_t len, lurk_keyref *out);
lurk_err lurk_keyref_write_file(const lurk_keyref *ref, const char *path);
lurk_err lurk_keyref_read_file(const char *path, lurk_keyref *out);

#ifdef __cplusplus
}
#endif
#endif /* LURK_KEYREF_H */
