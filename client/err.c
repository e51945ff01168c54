/* SPDX-License-Identifier: Apache-2.0 */
/* err.c - the sentence, token and wire status of every lurk_err. */
#include "lurk_err.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static const struct {
    const char *name;
    const char *sentence;
    int status;
} lurk_err_table[LURK_ERR__COUNT] = {
    [LURK_OK] = { "ok", "success", 200 },
    [LURK_ERR_INVALID_FORMAT] = { "invalid-format", "the request is not well-formed LURK", 400 },
    [LURK_ERR_UNAUTHORIZED] = { "unauthorized", "the client is not authorised by the key server", 401 },
    [LURK_ERR_POLICY_DENIED] = { "policy-denied", "the key's policy forbids this operation", 403 },
    [LURK_ERR_KEY_NOT_FOUND] = { "key-not-found", "the key is not known to the key server", 404 },
    [LURK_ERR_NOT_ACCEPTABLE] = { "not-acceptable", "the algorithm or a parameter is not supported", 406 },
    [LURK_ERR_TOO_LARGE] = { "too-large", "the request exceeds a size limit", 413 },
    [LURK_ERR_RATE_LIMITED] = { "rate-limited", "the key server asks to retry later", 429 },
    [LURK_ERR_INTERNAL] = { "internal", "the key server failed internally", 500 },
    [LURK_ERR_UNAVAILABLE] = { "unavailable", "the key server is overloaded or shutting down", 503 },
    [LURK_ERR_UNREACHABLE] = { "unreachable", "no key server could be reached", 500 },
    [LURK_ERR_TIMEOUT] = { "timeout", "the key server did not answer in time", 500 },
    [LURK_ERR_TLS] = { "tls", "the TLS connection to the key server failed", 500 },
    [LURK_ERR_PROTOCOL] = { "protocol", "the key server's answer is not valid LURK", 500 },
    [LURK_ERR_BAD_SIGNATURE] = { "bad-signature", "the signature from the key server does not verify", 500 },
    [LURK_ERR_KEY_MISMATCH] = { "key-mismatch", "the public key does not match the key id", 500 },
    [LURK_ERR_CONFIG] = { "config", "the configuration is invalid", 500 },
    [LURK_ERR_INVALID_ARG] = { "invalid-argument", "an argument is invalid", 500 },
    [LURK_ERR_NOMEM] = { "no-memory", "out of memory", 500 },
    [LURK_ERR_IO] = { "io", "a file or system operation failed", 500 },
    [LURK_ERR_UNSUPPORTED] = { "unsupported", "the operation is not supported", 500 },
};

static int lurk_err_valid(lurk_err err)
{
    return (int)err >= 0 && err < LURK_ERR__COUNT;
}

const char *lurk_err_str(lurk_err err)
{
    return lurk_err_valid(err) ? lurk_err_table[err].sentence : "unknown error";
}

const char *lurk_err_name(lurk_err err)
{
    return lurk_err_valid(err) ? lurk_err_table[err].name : "unknown";
}

int lurk_err_status(lurk_err err)
{
    return lurk_err_valid(err) ? lurk_err_table[err].status : 500;
}

lurk_err lurk_err_from_status(int status)
{
    if (status >= 200 && status < 300) {
        return LURK_OK;
    }
    for (int i = LURK_ERR_INVALID_FORMAT; i <= LURK_ERR_UNAVAILABLE; i++) {
        if (lurk_err_table[i].status == status) {
            return (lurk_err)i;
        }
    }
    return LURK_ERR_PROTOCOL;
}

int lurk_err_is_transient(lurk_err err)
{
    return err == LURK_ERR_UNREACHABLE || err == LURK_ERR_TIMEOUT
           || err == LURK_ERR_RATE_LIMITED || err == LURK_ERR_UNAVAILABLE;
}

void lurk_why(char *why, size_t whylen, const char *fmt, ...)
{
    va_list ap;

    if (why == NULL || whylen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(why, whylen, fmt, ap);
    va_end(ap);
    for (char *p = why; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
            *p = '?';
        }
    }
}
