/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_keyref_der.c - lurk_keyref_decode_der (client/keyref.c), the body of
 * a key reference file, which lurk.so's decoder sees for every DER or PEM
 * key any code in the process loads.  Never crashes; the decoder accepts
 * DER only, so what decodes encodes back to the same bytes.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_keyref.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lurk_keyref ref, again;
    unsigned char *der = NULL;
    size_t len = 0;

    if (lurk_keyref_decode_der(data, size, &ref) == LURK_OK) {
        FUZZ_CHECK(ref.spki != NULL && ref.spki_len > 0);
        FUZZ_CHECK(ref.n_servers <= LURK_KEYREF_MAX_SERVERS);
        FUZZ_CHECK(lurk_keyref_encode_der(&ref, &der, &len) == LURK_OK);
        FUZZ_CHECK(len == size && memcmp(der, data, size) == 0);
        FUZZ_CHECK(lurk_keyref_decode_der(der, len, &again) == LURK_OK);
        lurk_keyref_clear(&again);
        free(der);
    } else {
        FUZZ_CHECK(ref.spki == NULL && ref.n_servers == 0);
    }
    lurk_keyref_clear(&ref);
    return 0;
}
