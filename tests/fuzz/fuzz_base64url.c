/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_base64url.c - client/encoding.c's base64url (RFC 4648 section 5).
 * The input read as text: decoding never crashes, and what decodes is
 * canonical, so encoding the bytes gives the same text back.  The input
 * read as bytes: decode(encode(x)) == x, and a limit below the size is
 * refused as too large.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_encoding.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    unsigned char *bin = NULL;
    unsigned char *back = NULL;
    char *text = NULL;
    size_t binlen = 0;
    size_t backlen = 0;
    size_t tlen;
    lurk_err err;

    /* text -> bytes -> the same text */
    err = lurk_b64url_decode((const char *) data, size, size, &bin, &binlen);
    if (err == LURK_OK) {
        tlen = lurk_b64url_encoded_len(binlen);
        FUZZ_CHECK(tlen == size);
        text = malloc(tlen + 1);
        FUZZ_CHECK(text != NULL);
        FUZZ_CHECK(lurk_b64url_encode(bin, binlen, text, tlen + 1) == LURK_OK);
        FUZZ_CHECK(memcmp(text, data, size) == 0);
        for (size_t i = 0; i < size; i++) {
            FUZZ_CHECK(lurk_b64url_is_char(data[i]));
        }
        if (binlen > 0) {
            unsigned char *small = NULL;
            size_t smalllen = 0;

            FUZZ_CHECK(lurk_b64url_decode((const char *) data, size, binlen - 1, &small, &smalllen)
                       == LURK_ERR_TOO_LARGE);
            FUZZ_CHECK(small == NULL);
        }
        free(text);
        text = NULL;
    } else {
        FUZZ_CHECK(bin == NULL);
    }
    free(bin);

    /* bytes -> text -> the same bytes */
    tlen = lurk_b64url_encoded_len(size);
    text = malloc(tlen + 1);
    FUZZ_CHECK(text != NULL);
    FUZZ_CHECK(lurk_b64url_encode(data, size, text, tlen) == LURK_ERR_INVALID_ARG);
    FUZZ_CHECK(lurk_b64url_encode(data, size, text, tlen + 1) == LURK_OK);
    FUZZ_CHECK(strlen(text) == tlen);
    FUZZ_CHECK(lurk_b64url_decode(text, tlen, size, &back, &backlen) == LURK_OK);
    FUZZ_CHECK(backlen == size && (size == 0 || memcmp(back, data, size) == 0));
    free(back);
    free(text);
    return 0;
}
