/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lurk_err.h - the one error vocabulary of lurk.
 *
 * Every function below the OpenSSL-facing layer returns a lurk_err.  The
 * same value is the status a key server puts on the wire (lurk_err_status)
 * and the reason code the provider raises in OpenSSL's error queue, so a
 * refusal reads the same in the server's audit log, in the `lurk` tool and in
 * nginx's error log.  The sentences live in one table in err.c.
 */
#ifndef LURK_ERR_H
#define LURK_ERR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LURK_OK = 0,

    /* Wire statuses (seed 000 / seed 001); each maps to one HTTP-style code. */
    LURK_ERR_INVALID_FORMAT,   /* 400 malformed request or response          */
    LURK_ERR_UNAUTHORIZED,     /* 401 client not authorised                  */
    LURK_ERR_POLICY_DENIED,    /* 403 the key's policy forbids the operation */
    LURK_ERR_KEY_NOT_FOUND,    /* 404 no such key on the server              */
    LURK_ERR_NOT_ACCEPTABLE,   /* 406 unsupported algorithm or parameter     */
    LURK_ERR_TOO_LARGE,        /* 413 request exceeds a size limit           */
    LURK_ERR_RATE_LIMITED,     /* 429 temporary failure, retry later         */
    LURK_ERR_INTERNAL,         /* 500 server-side failure                    */
    LURK_ERR_UNAVAILABLE,      /* 503 overloaded or draining, retry later    */

    /* Local conditions, never sent by a server. */
    LURK_ERR_UNREACHABLE,      /* no key server could be connected           */
    LURK_ERR_TIMEOUT,          /* the key server did not answer in time      */
    LURK_ERR_TLS,              /* TLS with the key server failed             */
    LURK_ERR_PROTOCOL,         /* the key server's answer is not valid LURK  */
    LURK_ERR_BAD_SIGNATURE,    /* a signature from the server did not verify */
    LURK_ERR_KEY_MISMATCH,     /* public key does not match the key id       */
    LURK_ERR_CONFIG,           /* bad configuration                          */
    LURK_ERR_INVALID_ARG,      /* caller passed an invalid argument          */
    LURK_ERR_NOMEM,            /* allocation failed                          */
    LURK_ERR_IO,               /* file or system call failed                 */
    LURK_ERR_UNSUPPORTED,      /* not implemented by this build              */

    LURK_ERR__COUNT
} lurk_err;

/* One sentence naming the cause, e.g. "key not found on the key server". */
const char *lurk_err_str(lurk_err err);

/* Short stable token, e.g. "key-not-found" (used in logs and JSON). */
const char *lurk_err_name(lurk_err err);

/* Wire status for an error: 200 for LURK_OK, 400..503 for the wire errors,
 * 500 for local conditions (which a server never sends). */
int lurk_err_status(lurk_err err);

/* Error for a wire status read from a response; unknown codes map to
 * LURK_ERR_PROTOCOL, 2xx to LURK_OK. */
lurk_err lurk_err_from_status(int status);

/* Non-zero for errors a client may retry on another server or later
 * (unreachable, timeout, 429, 503). */
int lurk_err_is_transient(lurk_err err);

/* Formats the reason that goes with an error into why (nothing when why is
 * NULL or whylen 0).  A reason may quote input and becomes a
 * StatusDescription or a log line, so it is kept printable ASCII: any other
 * byte becomes '?'. */
void lurk_why(char *why, size_t whylen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#ifdef __cplusplus
}
#endif
#endif /* LURK_ERR_H */
