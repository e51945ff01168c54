/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_keyid.h - strong key identifiers (seed 004, section 2.1).
 *
 *   id  = V || Trunc_n(SHA-512(V || DER(SubjectPublicKeyInfo)))
 *   V   = 0: 128 bits, 1: 224 bits, 2: 256 bits, 3: 512 bits
 *
 * lurk makes ids with V = 2 (33 bytes), shown as upper-case Base32 with a
 * dash every 5 characters.  Parsing accepts every V of the draft, ignores
 * dashes and case, and rejects anything else.  The same public key always
 * gives the same id, so a client can check that the key it is handed is
 * the one it asked for.
 */
#ifndef LURK_KEYID_H
#define LURK_KEYID_H

#include <stddef.h>

#include "lurk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LURK_KEYID_ALG_DEFAULT 2
#define LURK_KEYID_MAX_BIN 65  /* V = 3: 1 + 64 */
#define LURK_KEYID_TEXT_MAX 128 /* enough for V = 3 with dashes, plus NUL */

typedef struct {
    unsigned char bin[LURK_KEYID_MAX_BIN];
    size_t len;
} lurk_keyid;

/* Computes the id of a DER SubjectPublicKeyInfo with algorithm `alg` (0..3). */
lurk_err lurk_keyid_from_spki(const unsigned char *spki, size_t spki_len, unsigned alg,
                              lurk_keyid *out);

/* Presentation form (Base32, dashes every 5 chars). */
lurk_err lurk_keyid_format(const lurk_keyid *id, char *out, size_t outlen);

/* Parses a presentation form; LURK_ERR_INVALID_FORMAT with a clear reason
 * when the text is not a valid id (bad character, unknown V, wrong length). */
lurk_err lurk_keyid_parse(const char *text, lurk_keyid *out);

/* 1 when equal (constant time is not needed: ids are public). */
int lurk_keyid_equal(const lurk_keyid *a, const lurk_keyid *b);

/* LURK_OK when `id` is the id of `spki` (using id's own V), else
 * LURK_ERR_KEY_MISMATCH. */
lurk_err lurk_keyid_check_spki(const lurk_keyid *id, const unsigned char *spki,
                               size_t spki_len);

#ifdef __cplusplus
}
#endif
#endif /* LURK_KEYID_H */
