/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_keyref_pem.c - lurk_keyref_decode_pem (client/keyref.c): the first
 * LURK PRIVATE KEY block of a PEM text, as `lurk` and lurk-keyserver read a
 * key reference file.  Never crashes; what decodes encodes to a PEM text
 * that decodes to the same reference.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_keyref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lurk_keyref ref, again;
    char *pem = NULL;
    unsigned char *d1 = NULL;
    unsigned char *d2 = NULL;
    size_t pemlen = 0;
    size_t l1 = 0;
    size_t l2 = 0;

    if (lurk_keyref_decode_pem((const char *) data, size, &ref) == LURK_OK) {
        FUZZ_CHECK(lurk_keyref_encode_pem(&ref, &pem, &pemlen) == LURK_OK);
        FUZZ_CHECK(strlen(pem) == pemlen);
        FUZZ_CHECK(lurk_keyref_decode_pem(pem, pemlen, &again) == LURK_OK);
        FUZZ_CHECK(lurk_keyref_encode_der(&ref, &d1, &l1) == LURK_OK);
        FUZZ_CHECK(lurk_keyref_encode_der(&again, &d2, &l2) == LURK_OK);
        FUZZ_CHECK(l1 == l2 && memcmp(d1, d2, l1) == 0);
        lurk_keyref_clear(&again);
        free(pem);
        free(d1);
        free(d2);
    }
    lurk_keyref_clear(&ref);
    return 0;
}
