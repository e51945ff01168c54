/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz_policy.c - the TLS structure checks of a tls-server key's signing
 * policy (server/policy.c): the TLS 1.3 server CertificateVerify input and
 * the TLS 1.2 ServerKeyExchange input (ECDHE on P-256/384/521, X25519 and
 * X448; DHE on the standard groups).  Attacker-chosen bytes of a Sign
 * request reach them.  Never crash; a refusal always says why; the two
 * forms never both match.
 */
#include <string.h>

#include "fuzz.h"
#include "lurk_srv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[256];
    int cv, ske;

    cv = lurk_srv_is_tls13_server_cv(data, size);
    why[0] = '\0';
    ske = lurk_srv_is_tls12_ske(data, size, NULL, why, sizeof(why));
    FUZZ_CHECK(cv == 0 || cv == 1);
    FUZZ_CHECK(ske == 0 || ske == 1);
    FUZZ_CHECK(!(cv && ske));
    FUZZ_CHECK(ske || why[0] != '\0');
    FUZZ_CHECK(strlen(why) < sizeof(why));
    return 0;
}
