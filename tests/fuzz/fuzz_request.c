/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_request.c - lurk_proto_decode_request (client/proto.c), the decoder
 * the key server runs on every request body (server/handler.c).  Never
 * crashes; on failure the struct owns nothing and `why` is printable ASCII.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lurk_request req;
    char why[LURK_DESCRIPTION_MAX + 1];
    lurk_err err;

    err = lurk_proto_decode_request((const char *) data, size, &req, why, sizeof(why));
    for (const char *p = why; *p != '\0'; p++) {
        FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
    }
    if (err != LURK_OK) {
        FUZZ_CHECK(why[0] != '\0');
        FUZZ_CHECK(req.data.data == NULL && req.digest.data == NULL && req.label.data == NULL
                   && req.ciphertext.data == NULL && req.peer_key.data == NULL);
    } else {
        FUZZ_CHECK(req.type < LURK_TX__COUNT);
        FUZZ_CHECK(strlen(req.request_id) <= LURK_REQUEST_ID_MAX);
    }
    lurk_request_clear(&req);
    return 0;
}
