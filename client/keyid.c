/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyid.c - strong key identifiers (seed 004, section 2.1):
 * V || Trunc(SHA-512(V || SPKI)), shown as Base32 with dashes.
 *
 * The provider links this file and calls it from inside OpenSSL, so the
 * digest comes from libcrypto's default provider, never from a library
 * context that might contain lurk itself.
 */
#include "lurk_keyid.h"

#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "lurk_encoding.h"

#define LURK_KEYID_GROUP 5

/* Bytes of hash kept for each V (0..3). */
static const size_t keyid_trunc[] = { 16, 28, 32, 64 };

static size_t keyid_hash_len(unsigned alg)
{
    return alg < sizeof(keyid_trunc) / sizeof(keyid_trunc[0]) ? keyid_trunc[alg] : 0;
}

lurk_err lurk_keyid_from_spki(const unsigned char *spki, size_t spki_len, unsigned alg,
                              lurk_keyid *out)
{
    lurk_err ret = LURK_ERR_INTERNAL;
    EVP_MD_CTX *ctx = NULL;
    EVP_MD *md = NULL;
    unsigned char v = (unsigned char)alg;
    unsigned char hash[EVP_MAX_MD_SIZE];
    unsigned int hlen = 0;
    size_t keep = keyid_hash_len(alg);

    if (out == NULL || spki == NULL || spki_len == 0 || keep == 0) {
        return LURK_ERR_INVALID_ARG;
    }
    memset(out, 0, sizeof(*out));
    md = EVP_MD_fetch(NULL, "SHA512", "?provider=default");
    ctx = EVP_MD_CTX_new();
    if (md == NULL || ctx == NULL) {
        goto end;
    }
    if (EVP_DigestInit_ex2(ctx, md, NULL) != 1
        || EVP_DigestUpdate(ctx, &v, 1) != 1
        || EVP_DigestUpdate(ctx, spki, spki_len) != 1
        || EVP_DigestFinal_ex(ctx, hash, &hlen) != 1
        || hlen < keep) {
        goto end;
    }
    out->bin[0] = v;
    memcpy(out->bin + 1, hash, keep);
    out->len = 1 + keep;
    ret = LURK_OK;

end:
    EVP_MD_CTX_free(ctx);
    EVP_MD_free(md);
    return ret;
}

lurk_err lurk_keyid_format(const lurk_keyid *id, char *out, size_t outlen)
{
    if (id == NULL || out == NULL || id->len == 0 || id->len > LURK_KEYID_MAX_BIN) {
        return LURK_ERR_INVALID_ARG;
    }
    return lurk_base32_encode(id->bin, id->len, LURK_KEYID_GROUP, out, outlen);
}

lurk_err lurk_keyid_parse(const char *text, lurk_keyid *out)
{
    lurk_keyid id;
    size_t len = 0;
    size_t textlen = 0;
    lurk_err ret = LURK_OK;

    if (text == NULL || out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    memset(&id, 0, sizeof(id));
    textlen = strnlen(text, LURK_KEYID_TEXT_MAX);
    if (textlen == 0 || textlen >= LURK_KEYID_TEXT_MAX) {
        return LURK_ERR_INVALID_FORMAT;
    }
    ret = lurk_base32_decode(text, textlen, id.bin, sizeof(id.bin), &len);
    if (ret != LURK_OK) {
        /* Too many characters is a wrong length, i.e. not an id. */
        return LURK_ERR_INVALID_FORMAT;
    }
    /* Known V and exactly the length that V implies. */
    if (len == 0 || keyid_hash_len(id.bin[0]) == 0 || len != 1 + keyid_hash_len(id.bin[0])) {
        return LURK_ERR_INVALID_FORMAT;
    }
    id.len = len;
    *out = id;
    return LURK_OK;
}

int lurk_keyid_equal(const lurk_keyid *a, const lurk_keyid *b)
{
    if (a == NULL || b == NULL) {
        return 0;
    }
    return a->len == b->len && a->len <= LURK_KEYID_MAX_BIN
           && memcmp(a->bin, b->bin, a->len) == 0;
}

lurk_err lurk_keyid_check_spki(const lurk_keyid *id, const unsigned char *spki,
                               size_t spki_len)
{
    lurk_keyid actual;
    lurk_err ret = LURK_OK;

    if (id == NULL || id->len == 0) {
        return LURK_ERR_INVALID_ARG;
    }
    ret = lurk_keyid_from_spki(spki, spki_len, id->bin[0], &actual);
    if (ret != LURK_OK) {
        return ret;
    }
    return lurk_keyid_equal(id, &actual) ? LURK_OK : LURK_ERR_KEY_MISMATCH;
}
