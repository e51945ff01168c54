/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_response.c - lurk_proto_decode_response (client/proto.c), the
 * decoder the client runs on every reply body (client/client.c).  The
 * first byte picks the transaction the client expects (or any); the rest is
 * the reply.  Never crashes; on failure the struct owns nothing.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lurk_response resp;
    char why[LURK_DESCRIPTION_MAX + 1];
    lurk_tx expected;
    lurk_err err;

    if (size < 1) {
        return 0;
    }
    expected = (lurk_tx) (data[0] % (LURK_TX__COUNT + 1));
    err = lurk_proto_decode_response((const char *) data + 1, size - 1, expected, &resp, why,
                                     sizeof(why));
    for (const char *p = why; *p != '\0'; p++) {
        FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
    }
    if (err != LURK_OK) {
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(resp.state.data == NULL && resp.spki.data == NULL && resp.value.data == NULL);
    } else {
        FUZZ_CHECK(resp.type <= LURK_TX__COUNT);
        FUZZ_CHECK(expected == LURK_TX__COUNT || resp.type == expected
                   || resp.type == LURK_TX__COUNT);
        FUZZ_CHECK(strlen(resp.description) <= LURK_DESCRIPTION_MAX);
    }
    lurk_response_clear(&resp);
    return 0;
}
