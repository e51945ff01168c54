/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_base32.c - client/encoding.c's Base32 (RFC 4648 section 6) and the
 * key id presentation form of client/keyid.c.  Decoding never crashes; what
 * decodes is canonical up to dashes and case; decode(encode(x)) == x with
 * and without dash groups; a key id that parses formats and parses again to
 * the same id.
 */
#include <ctype.h>
#include <string.h>

#include "fuzz.h"
#include "lurk_encoding.h"
#include "lurk_keyid.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *) data;
    unsigned char *bin = NULL;
    char *text = NULL;
    char *cstr = NULL;
    size_t binlen = 0;
    size_t tlen;
    lurk_err err;
    lurk_keyid id, again;
    char idtext[LURK_KEYID_TEXT_MAX];

    /* text -> bytes -> the same text, dashes dropped, upper case */
    bin = malloc(size + 1);
    FUZZ_CHECK(bin != NULL);
    err = lurk_base32_decode(in, size, bin, size, &binlen);
    if (err == LURK_OK) {
        size_t j = 0;

        tlen = lurk_base32_encoded_len(binlen, 0);
        text = malloc(tlen + 1);
        FUZZ_CHECK(text != NULL);
        FUZZ_CHECK(lurk_base32_encode(bin, binlen, 0, text, tlen + 1) == LURK_OK);
        for (size_t i = 0; i < size; i++) {
            if (in[i] != '-') {
                FUZZ_CHECK(j < tlen && text[j] == toupper((unsigned char) in[i]));
                j++;
            }
        }
        FUZZ_CHECK(j == tlen);
        free(text);
        text = NULL;
    }
    free(bin);
    bin = NULL;

    /* bytes -> text -> the same bytes, with the key id grouping and without */
    for (unsigned group = 0; group <= 5; group += 5) {
        tlen = lurk_base32_encoded_len(size, group);
        text = malloc(tlen + 1);
        bin = malloc(size + 1);
        FUZZ_CHECK(text != NULL && bin != NULL);
        FUZZ_CHECK(lurk_base32_encode(data, size, group, text, tlen) == LURK_ERR_INVALID_ARG);
        FUZZ_CHECK(lurk_base32_encode(data, size, group, text, tlen + 1) == LURK_OK);
        FUZZ_CHECK(strlen(text) == tlen);
        FUZZ_CHECK(lurk_base32_decode(text, tlen, bin, size, &binlen) == LURK_OK);
        FUZZ_CHECK(binlen == size && (size == 0 || memcmp(bin, data, size) == 0));
        if (size > 0) {
            FUZZ_CHECK(lurk_base32_decode(text, tlen, bin, size - 1, &binlen)
                       == LURK_ERR_TOO_LARGE);
        }
        free(text);
        free(bin);
        text = NULL;
        bin = NULL;
    }

    /* key ids */
    cstr = fuzz_cstr(data, size);
    FUZZ_CHECK(cstr != NULL);
    if (lurk_keyid_parse(cstr, &id) == LURK_OK) {
        FUZZ_CHECK(id.len > 0 && id.len <= LURK_KEYID_MAX_BIN);
        FUZZ_CHECK(lurk_keyid_format(&id, idtext, sizeof(idtext)) == LURK_OK);
        FUZZ_CHECK(lurk_keyid_parse(idtext, &again) == LURK_OK);
        FUZZ_CHECK(lurk_keyid_equal(&id, &again));
    }
    free(cstr);
    return 0;
}
