/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_encoding.h - base64url (RFC 4648 section 5, no padding) and Base32
 * (RFC 4648 section 6, no padding) as lurk uses them.
 *
 * Decoders are strict: they accept only the canonical form (no padding, no
 * whitespace, unused trailing bits zero), so one value has one spelling and
 * a signature or key id can be compared as text.
 */
#ifndef LURK_ENCODING_H
#define LURK_ENCODING_H

#include <stddef.h>

#include "lurk_err.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Characters needed to encode n bytes, without the terminating NUL. */
size_t lurk_b64url_encoded_len(size_t n);

/* 1 when c is in the base64url alphabet [A-Za-z0-9_-] (also the character
 * set of request and key ids). */
int lurk_b64url_is_char(unsigned char c);

/* Writes lurk_b64url_encoded_len(n) chars plus NUL into out (outlen must
 * be large enough, else LURK_ERR_INVALID_ARG). */
lurk_err lurk_b64url_encode(const unsigned char *in, size_t n, char *out, size_t outlen);

/* Strict decode of len chars.  *out is malloc'd (free with free());
 * LURK_ERR_INVALID_FORMAT on any non-canonical input, LURK_ERR_TOO_LARGE
 * when the decoded size would exceed max. */
lurk_err lurk_b64url_decode(const char *in, size_t len, size_t max,
                            unsigned char **out, size_t *outlen);

/* Base32, upper case, no padding.  `group` > 0 inserts '-' every `group`
 * characters (the key id presentation form); 0 for none. */
size_t lurk_base32_encoded_len(size_t n, unsigned group);
lurk_err lurk_base32_encode(const unsigned char *in, size_t n, unsigned group,
                            char *out, size_t outlen);

/* Decodes Base32 ignoring '-' and accepting lower case; canonical trailing
 * bits only.  Writes at most outmax bytes. */
lurk_err lurk_base32_decode(const char *in, size_t len, unsigned char *out,
                            size_t outmax, size_t *outlen);

#ifdef __cplusplus
}
#endif
#endif /* LURK_ENCODING_H */
