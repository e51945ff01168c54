/* SPDX-License-Identifier: Apache-2.0 */
/*
 * proto.c - the LURK wire codec: the only file that knows JSON member names.
 *
 * Every message is {"<Name>": {members}}.  Decoding is strict so that a
 * client and a server agree on exactly one reading of every message: jansson
 * rejects duplicate keys and trailing text; this file rejects unknown
 * members, wrong types, non-canonical base64url, out-of-range values and
 * inconsistent combinations, and says which member was wrong in `why`.
 * Encoders check the structure with the same rules, so what they write is
 * what the decoders accept.
 *
 * Decoding is jansson's job (strict parsing is what it is good at);
 * encoding is a small writer of this file (JSON writing below), because
 * building a jansson tree and dumping it cost more per request than the
 * whole HTTP exchange.  The writer's output is byte for byte what
 * json_dumps(JSON_COMPACT) wrote, so the wire did not change; its string
 * escaper, lurk_proto_json_string, also writes the key server's audit log.
 *
 * Payloads may be TLS premasters: binary buffers are cleansed when freed,
 * and so are the JSON strings that carried them, including the writer's
 * buffers left behind when it grows.
 */
#include "lurk_proto.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "lurk_encoding.h"
#include "lurk_json.h"

/* Member names (seed 000 / seed 001 spelling). */
#define M_REQUEST_ID "RequestId"
#define M_STATUS "Status"
#define M_DESCRIPTION "StatusDescription"
#define M_RETRY_AFTER "RetryAfter"
#define M_STATE "State"
#define M_KEY_ID "KeyId"
#define M_ALGORITHM "Algorithm"
#define M_DIGEST_ALG "DigestAlg"
#define M_SALT_LENGTH "SaltLength"
#define M_DATA "Data"
#define M_DIGEST "Digest"
#define M_MODE "Mode"
#define M_CLIENT_VERSION "ClientVersion"
#define M_ALT_VERSION "AltVersion"
#define M_OAEP_DIGEST "OaepDigest"
#define M_LABEL "Label"
#define M_PEER_KEY "PeerKey"
#define M_KEY_TYPE "KeyType"
#define M_POLICY "Policy"
#define M_PUBLIC_KEY "PublicKey"
#define M_VALUE "Value"
#define M_VERSION "Version"
#define M_MAJOR "Major"
#define M_MINOR "Minor"
#define M_ENCODINGS "Encodings"
#define M_ID "ID"
#define M_TRANSACTIONS "Transactions"
#define M_ALGORITHMS "Algorithms"
#define M_DECRYPT_MODES "DecryptModes"
#define M_DIGESTS "Digests"
#define M_KEY_TYPES "KeyTypes"

#define LURK_LURK_RESPONSE "LurkResponse"
#define LURK_STATE_MAX 32            /* bytes of State */
#define LURK_POLICY_MAX 31           /* chars of a policy name */
#define LURK_SALT_MAX LURK_MAX_DATA  /* SaltLength upper bound */
#define LURK_RETRY_AFTER_MAX 86400000 /* one day, in ms */
#define LURK_MSG_NAME_MAX 32

/* ------------------------------------------------------------------ names */

static const char *const tx_names[LURK_TX__COUNT] = {
    [LURK_TX_HELLO] = "Hello",
    [LURK_TX_PING] = "Ping",
    [LURK_TX_PUBLIC_KEY] = "PublicKey",
    [LURK_TX_SIGN] = "Sign",
    [LURK_TX_DECRYPT] = "Decrypt",
    [LURK_TX_AGREE] = "Agree",
    [LURK_TX_CREATE] = "Create",
    [LURK_TX_DISPOSE] = "Dispose",
};

static const char *const key_type_names[LURK_KEY__COUNT] = {
    [LURK_KEY_RSA] = "RSA",
    [LURK_KEY_EC] = "EC",
    [LURK_KEY_ED25519] = "ED25519",
};

static const char *const sig_alg_names[LURK_SIG__COUNT] = {
    [LURK_SIG_RSA_PKCS1] = "rsa-pkcs1",
    [LURK_SIG_RSA_PSS] = "rsa-pss",
    [LURK_SIG_ECDSA] = "ecdsa",
    [LURK_SIG_ED25519] = "ed25519",
};

static const char *const md_names[LURK_MD__COUNT] = {
    [LURK_MD_SHA256] = "sha256",
    [LURK_MD_SHA384] = "sha384",
    [LURK_MD_SHA512] = "sha512",
    [LURK_MD_SHA1] = "sha1",
    [LURK_MD_SHA224] = "sha224",
};

static const char *const dec_mode_names[LURK_DEC__COUNT] = {
    [LURK_DEC_TLS_PREMASTER] = "tls-premaster",
    [LURK_DEC_OAEP] = "oaep",
};

/* The digests, for the codec, the provider and the key server alike: size,
 * OpenSSL's name (for fetching), and every other spelling callers may use
 * (OpenSSL's, IANA's, the OIDs), compared without regard to case.  The wire
 * names are md_names above. */
static const struct {
    size_t size;
    const char *ossl;
    const char *aliases[6];
} md_info[LURK_MD__COUNT] = {
    [LURK_MD_SHA256] = { 32, "SHA2-256", { "sha256", "sha-256", "sha2-256",
                                           "2.16.840.1.101.3.4.2.1", NULL } },
    [LURK_MD_SHA384] = { 48, "SHA2-384", { "sha384", "sha-384", "sha2-384",
                                           "2.16.840.1.101.3.4.2.2", NULL } },
    [LURK_MD_SHA512] = { 64, "SHA2-512", { "sha512", "sha-512", "sha2-512",
                                           "2.16.840.1.101.3.4.2.3", NULL } },
    [LURK_MD_SHA1] = { 20, "SHA1", { "sha1", "sha-1", "ssl3-sha1", "1.3.14.3.2.26", NULL } },
    [LURK_MD_SHA224] = { 28, "SHA2-224", { "sha224", "sha-224", "sha2-224",
                                           "2.16.840.1.101.3.4.2.4", NULL } },
};

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Index of `name` in a table (exact spelling), 0 (the NONE value) if absent. */
static int name_index(const char *const *table, size_t n, const char *name)
{
    if (name == NULL) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        if (table[i] != NULL && strcmp(table[i], name) == 0) {
            return (int)i;
        }
    }
    return 0;
}

static const char *name_at(const char *const *table, size_t n, int i)
{
    return (i > 0 && (size_t)i < n) ? table[i] : NULL;
}

const char *lurk_tx_name(lurk_tx tx)
{
    return ((int)tx >= 0 && tx < LURK_TX__COUNT) ? tx_names[tx] : NULL;
}

const char *lurk_key_type_name(lurk_key_type t)
{
    return name_at(key_type_names, LURK_KEY__COUNT, (int)t);
}

lurk_key_type lurk_key_type_from_name(const char *name)
{
    /* OpenSSL spells Ed25519 both ways; the wire uses upper case. */
    if (name == NULL) {
        return LURK_KEY_NONE;
    }
    for (int i = 1; i < LURK_KEY__COUNT; i++) {
        if (strcasecmp(key_type_names[i], name) == 0) {
            return (lurk_key_type)i;
        }
    }
    return LURK_KEY_NONE;
}

const char *lurk_sig_alg_name(lurk_sig_alg a)
{
    return name_at(sig_alg_names, LURK_SIG__COUNT, (int)a);
}

lurk_sig_alg lurk_sig_alg_from_name(const char *name)
{
    return (lurk_sig_alg)name_index(sig_alg_names, LURK_SIG__COUNT, name);
}

const char *lurk_md_name(lurk_md md)
{
    return name_at(md_names, LURK_MD__COUNT, (int)md);
}

lurk_md lurk_md_from_name(const char *name)
{
    if (name == NULL) {
        return LURK_MD_NONE;
    }
    for (int i = 1; i < LURK_MD__COUNT; i++) {
        for (size_t j = 0; md_info[i].aliases[j] != NULL; j++) {
            if (strcasecmp(md_info[i].aliases[j], name) == 0) {
                return (lurk_md)i;
            }
        }
    }
    return LURK_MD_NONE;
}

size_t lurk_md_size(lurk_md md)
{
    return ((int)md > 0 && md < LURK_MD__COUNT) ? md_info[md].size : 0;
}

const char *lurk_md_ossl_name(lurk_md md)
{
    return ((int)md > 0 && md < LURK_MD__COUNT) ? md_info[md].ossl : NULL;
}

int lurk_md_is_legacy(lurk_md md)
{
    return md == LURK_MD_SHA1 || md == LURK_MD_SHA224;
}

const char *lurk_dec_mode_name(lurk_dec_mode m)
{
    return name_at(dec_mode_names, LURK_DEC__COUNT, (int)m);
}

lurk_dec_mode lurk_dec_mode_from_name(const char *name)
{
    return (lurk_dec_mode)name_index(dec_mode_names, LURK_DEC__COUNT, name);
}

/* "SignRequest", "PublicKeyResponse", "LurkResponse" (tx == __COUNT). */
static void message_name(lurk_tx tx, const char *suffix, char *out, size_t outlen)
{
    const char *base = lurk_tx_name(tx);
    size_t b = 0;
    size_t s = 0;

    /* what snprintf("%s%s") wrote, without its cost on every message */
    if (base == NULL) {
        base = "Lurk";
    }
    b = strnlen(base, outlen - 1);
    memcpy(out, base, b);
    s = strnlen(suffix, outlen - 1 - b);
    memcpy(out + b, suffix, s);
    out[b + s] = '\0';
}

/* ------------------------------------------------------ value syntax */

/* 1..max chars of [A-Za-z0-9_-]: RequestId and KeyId. */
static int valid_token(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!lurk_b64url_is_char((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* Policy names: 1..31 chars of [a-z0-9-]. */
static int valid_policy(const char *s, size_t len)
{
    if (len == 0 || len > LURK_POLICY_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
            return 0;
        }
    }
    return 1;
}

/* StatusDescription: UTF-8 (jansson checks that when decoding, the writer
 * when encoding), no control characters: it ends up in logs. */
static int valid_description(const char *s, size_t len)
{
    if (len > LURK_DESCRIPTION_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* --------------------------------------------------------------- why */

/* A decoding or checking context: one message body. */
typedef struct {
    json_t *body;          /* borrowed; NULL when checking a struct */
    char msg[LURK_MSG_NAME_MAX];
    char *why;
    size_t whylen;
} lurk_dec;

static lurk_err dec_fail(lurk_dec *d, lurk_err err, const char *member, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records "<Message>.<Member>: <reason>" and returns err. */
static lurk_err dec_fail(lurk_dec *d, lurk_err err, const char *member, const char *fmt, ...)
{
    char reason[192];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(reason, sizeof(reason), fmt, ap);
    va_end(ap);
    if (member != NULL) {
        lurk_why(d->why, d->whylen, "%s.%.40s: %s", d->msg, member, reason);
    } else {
        lurk_why(d->why, d->whylen, "%s: %s", d->msg, reason);
    }
    return err;
}

/* ------------------------------------------------------ member readers */

static int in_list(const char *key, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(key, list[i]) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Every member of the body must be in `allowed`. */
static lurk_err dec_members(lurk_dec *d, const char *const *allowed, size_t n)
{
    const char *key = NULL;
    json_t *value = NULL;

    json_object_foreach(d->body, key, value) {
        if (!in_list(key, allowed, n)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, key, "unknown member");
        }
    }
    return LURK_OK;
}

static int dec_has(lurk_dec *d, const char *member)
{
    return json_object_get(d->body, member) != NULL;
}

/* A string member; *s is NULL when absent and optional. */
static lurk_err dec_str(lurk_dec *d, const char *member, int required, const char **s,
                        size_t *len)
{
    json_t *v = json_object_get(d->body, member);

    *s = NULL;
    *len = 0;
    if (v == NULL) {
        return required ? dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "required member missing")
                        : LURK_OK;
    }
    if (!json_is_string(v)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "expected a string");
    }
    *s = json_string_value(v);
    *len = json_string_length(v);
    return LURK_OK;
}

static lurk_err dec_int(lurk_dec *d, const char *member, int required, long long min,
                        long long max, long long *out, int *present)
{
    json_t *v = json_object_get(d->body, member);

    *present = 0;
    if (v == NULL) {
        return required ? dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "required member missing")
                        : LURK_OK;
    }
    if (!json_is_integer(v)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "expected an integer");
    }
    if (json_integer_value(v) < min || json_integer_value(v) > max) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "out of range (%lld..%lld)", min, max);
    }
    *out = json_integer_value(v);
    *present = 1;
    return LURK_OK;
}

/* A base64url member into a buffer of at most max bytes. */
static lurk_err dec_bin(lurk_dec *d, const char *member, int required, size_t max,
                        lurk_buf *out)
{
    const char *s = NULL;
    size_t len = 0;
    lurk_err ret = dec_str(d, member, required, &s, &len);

    if (ret != LURK_OK || s == NULL) {
        return ret;
    }
    ret = lurk_b64url_decode(s, len, max, &out->data, &out->len);
    if (ret == LURK_ERR_TOO_LARGE) {
        /* Per-field bounds below LURK_MAX_DATA (State) are a range error. */
        return dec_fail(d, max < LURK_MAX_DATA ? LURK_ERR_INVALID_FORMAT : LURK_ERR_TOO_LARGE,
                        member, "more than %zu bytes", max);
    }
    if (ret == LURK_ERR_INVALID_FORMAT) {
        return dec_fail(d, ret, member, "not canonical base64url");
    }
    return ret;
}

/* A name from a table (exact spelling).  Unknown names are 406: the
 * message is well-formed, the algorithm is just not one we support. */
static lurk_err dec_enum(lurk_dec *d, const char *member, int required,
                         const char *const *table, size_t n, int *out)
{
    const char *s = NULL;
    size_t len = 0;
    lurk_err ret = dec_str(d, member, required, &s, &len);

    *out = 0;
    if (ret != LURK_OK || s == NULL) {
        return ret;
    }
    *out = name_index(table, n, s);
    if (*out == 0) {
        return dec_fail(d, LURK_ERR_NOT_ACCEPTABLE, member, "unsupported value");
    }
    return LURK_OK;
}

static lurk_err dec_token(lurk_dec *d, const char *member, int required, size_t max,
                          char *out)
{
    const char *s = NULL;
    size_t len = 0;
    lurk_err ret = dec_str(d, member, required, &s, &len);

    if (ret != LURK_OK || s == NULL) {
        return ret;
    }
    if (!valid_token(s, len, max)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member,
                        "expected 1 to %zu characters of [A-Za-z0-9_-]", max);
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return LURK_OK;
}

static lurk_err dec_policy(lurk_dec *d, const char *member, char *out)
{
    const char *s = NULL;
    size_t len = 0;
    lurk_err ret = dec_str(d, member, 1, &s, &len);

    if (ret != LURK_OK) {
        return ret;
    }
    if (!valid_policy(s, len)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member,
                        "expected 1 to %d characters of [a-z0-9-]", LURK_POLICY_MAX);
    }
    memcpy(out, s, len);
    out[len] = '\0';
    return LURK_OK;
}

/* Overwrites the string values of a body before it is freed: they may be
 * the base64url of a premaster.  Modifying jansson's copy in place is safe
 * here because the tree is ours and about to be released. */
static void scrub_body(json_t *body)
{
    const char *key = NULL;
    json_t *value = NULL;

    if (!json_is_object(body)) {
        return;
    }
    json_object_foreach(body, key, value) {
        if (json_is_string(value) && json_string_length(value) > 0) {
            OPENSSL_cleanse((char *)json_string_value(value), json_string_length(value));
        }
    }
}

static void scrub_root(json_t *root)
{
    const char *key = NULL;
    json_t *value = NULL;

    if (!json_is_object(root)) {
        return;
    }
    json_object_foreach(root, key, value) {
        scrub_body(value);
    }
}

/* Parses the envelope {"<Name>": {...}}: returns the one member's name and
 * body, or fails with a reason. */
static lurk_err parse_envelope(const char *json, size_t len, json_t **root, const char **name,
                               json_t **body, char *why, size_t whylen)
{
    json_error_t jerr;
    const char *key = NULL;
    json_t *value = NULL;

    *root = NULL;
    if (len > LURK_MAX_MESSAGE) {
        lurk_why(why, whylen, "message: %zu bytes exceeds the limit of %d bytes", len,
                 LURK_MAX_MESSAGE);
        return LURK_ERR_TOO_LARGE;
    }
    *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (*root == NULL) {
        lurk_why(why, whylen, "message: invalid JSON: %s (byte %d)", jerr.text, jerr.position);
        return LURK_ERR_INVALID_FORMAT;
    }
    if (!json_is_object(*root) || json_object_size(*root) != 1) {
        lurk_why(why, whylen, "message: expected an object with exactly one member");
        return LURK_ERR_INVALID_FORMAT;
    }
    json_object_foreach(*root, key, value) {
        *name = key;
        *body = value;
    }
    if (!json_is_object(*body)) {
        lurk_why(why, whylen, "%.32s: expected an object", *name);
        return LURK_ERR_INVALID_FORMAT;
    }
    return LURK_OK;
}

/* Transaction named by "<Tx><suffix>", LURK_TX__COUNT when none. */
static lurk_tx tx_from_message(const char *name, const char *suffix)
{
    size_t nlen = strlen(name);
    size_t slen = strlen(suffix);

    if (nlen <= slen || strcmp(name + nlen - slen, suffix) != 0) {
        return LURK_TX__COUNT;
    }
    for (int i = 0; i < LURK_TX__COUNT; i++) {
        if (strlen(tx_names[i]) == nlen - slen && strncmp(tx_names[i], name, nlen - slen) == 0) {
            return (lurk_tx)i;
        }
    }
    return LURK_TX__COUNT;
}

/* ------------------------------------------------------ struct lifecycle */

static void buf_clear(lurk_buf *b)
{
    if (b->data != NULL) {
        OPENSSL_clear_free(b->data, b->len);
    }
    b->data = NULL;
    b->len = 0;
}

void lurk_request_init(lurk_request *req)
{
    if (req == NULL) {
        return;
    }
    memset(req, 0, sizeof(*req));
    req->type = LURK_TX__COUNT;
    req->salt_len = -1;
}

void lurk_request_clear(lurk_request *req)
{
    if (req == NULL) {
        return;
    }
    buf_clear(&req->data);
    buf_clear(&req->digest);
    buf_clear(&req->label);
    buf_clear(&req->ciphertext);
    buf_clear(&req->peer_key);
    OPENSSL_cleanse(req, sizeof(*req));
    lurk_request_init(req);
}

void lurk_response_init(lurk_response *resp)
{
    if (resp == NULL) {
        return;
    }
    memset(resp, 0, sizeof(*resp));
    resp->type = LURK_TX__COUNT;
    resp->hello.major = LURK_PROTO_VERSION_MAJOR;
    resp->hello.minor = LURK_PROTO_VERSION_MINOR;
}

void lurk_response_clear(lurk_response *resp)
{
    if (resp == NULL) {
        return;
    }
    buf_clear(&resp->state);
    buf_clear(&resp->spki);
    buf_clear(&resp->value);
    OPENSSL_cleanse(resp, sizeof(*resp));
    lurk_response_init(resp);
}

/* --------------------------------------------- request semantic rules */

static int buf_present(const lurk_buf *b)
{
    return b->data != NULL;
}

/* The cross-member rules of every request, on the struct: shared by the
 * decoder (after reading the members) and the encoder (before writing). */
static lurk_err check_request(lurk_dec *d, const lurk_request *r)
{
    const lurk_err bad = LURK_ERR_INVALID_FORMAT;
    const struct {
        const char *member;
        const lurk_buf *buf;
    } bins[] = {
        { M_DATA, &r->data }, { M_DIGEST, &r->digest }, { M_LABEL, &r->label },
        { M_DATA, &r->ciphertext }, { M_PEER_KEY, &r->peer_key },
    };

    for (size_t i = 0; i < COUNT_OF(bins); i++) {
        if (bins[i].buf->len > LURK_MAX_DATA) {
            return dec_fail(d, LURK_ERR_TOO_LARGE, bins[i].member, "more than %d bytes",
                            LURK_MAX_DATA);
        }
    }
    if (!valid_token(r->request_id, strnlen(r->request_id, sizeof(r->request_id)),
                     LURK_REQUEST_ID_MAX)) {
        return dec_fail(d, bad, M_REQUEST_ID, "expected 1 to %d characters of [A-Za-z0-9_-]",
                        LURK_REQUEST_ID_MAX);
    }
    switch (r->type) {
    case LURK_TX_PUBLIC_KEY:
    case LURK_TX_SIGN:
    case LURK_TX_DECRYPT:
    case LURK_TX_AGREE:
    case LURK_TX_DISPOSE:
        if (!valid_token(r->key_id, strnlen(r->key_id, sizeof(r->key_id)),
                         LURK_KEY_ID_TEXT_MAX)) {
            return dec_fail(d, bad, M_KEY_ID, "expected 1 to %d characters of [A-Za-z0-9_-]",
                            LURK_KEY_ID_TEXT_MAX);
        }
        break;
    default:
        break;
    }

    switch (r->type) {
    case LURK_TX_HELLO:
    case LURK_TX_PING:
    case LURK_TX_PUBLIC_KEY:
    case LURK_TX_DISPOSE:
        break;

    case LURK_TX_SIGN:
        if (lurk_sig_alg_name(r->sig_alg) == NULL) {
            return dec_fail(d, bad, M_ALGORITHM, "required member missing");
        }
        if (r->sig_alg == LURK_SIG_ED25519) {
            if (r->md != LURK_MD_NONE) {
                return dec_fail(d, bad, M_DIGEST_ALG, "not allowed with ed25519");
            }
            if (buf_present(&r->digest)) {
                return dec_fail(d, bad, M_DIGEST, "not allowed with ed25519 (send Data)");
            }
            if (!buf_present(&r->data)) {
                return dec_fail(d, bad, M_DATA, "required member missing");
            }
        } else {
            if (lurk_md_name(r->md) == NULL) {
                return dec_fail(d, bad, M_DIGEST_ALG, "required member missing");
            }
            if (buf_present(&r->data) == buf_present(&r->digest)) {
                return dec_fail(d, bad, M_DATA, "exactly one of Data and Digest is required");
            }
            if (buf_present(&r->digest) && r->digest.len != lurk_md_size(r->md)) {
                return dec_fail(d, bad, M_DIGEST, "%zu bytes, %s needs %zu", r->digest.len,
                                lurk_md_name(r->md), lurk_md_size(r->md));
            }
        }
        if (r->sig_alg == LURK_SIG_RSA_PSS) {
            if (r->salt_len < 0 || r->salt_len > LURK_SALT_MAX) {
                return dec_fail(d, bad, M_SALT_LENGTH, "required for rsa-pss (0..%d)",
                                LURK_SALT_MAX);
            }
        } else if (r->salt_len != -1) {
            return dec_fail(d, bad, M_SALT_LENGTH, "only allowed with rsa-pss");
        }
        break;

    case LURK_TX_DECRYPT:
        if (!buf_present(&r->ciphertext)) {
            return dec_fail(d, bad, M_DATA, "required member missing");
        }
        if (r->dec_mode == LURK_DEC_TLS_PREMASTER) {
            if (r->client_version > 0xffff) {
                return dec_fail(d, bad, M_CLIENT_VERSION, "out of range (0..65535)");
            }
            if (r->alt_version > 0xffff) {
                return dec_fail(d, bad, M_ALT_VERSION, "out of range (0..65535)");
            }
            if (r->oaep_md != LURK_MD_NONE) {
                return dec_fail(d, bad, M_OAEP_DIGEST, "only allowed with oaep");
            }
            if (buf_present(&r->label)) {
                return dec_fail(d, bad, M_LABEL, "only allowed with oaep");
            }
        } else if (r->dec_mode == LURK_DEC_OAEP) {
            if (lurk_md_name(r->oaep_md) == NULL) {
                return dec_fail(d, bad, M_OAEP_DIGEST, "required for oaep");
            }
            if (r->client_version != 0 || r->alt_version != 0) {
                return dec_fail(d, bad, r->client_version != 0 ? M_CLIENT_VERSION : M_ALT_VERSION,
                                "only allowed with tls-premaster");
            }
        } else {
            return dec_fail(d, bad, M_MODE, "required member missing");
        }
        break;

    case LURK_TX_AGREE:
        if (!buf_present(&r->peer_key)) {
            return dec_fail(d, bad, M_PEER_KEY, "required member missing");
        }
        break;

    case LURK_TX_CREATE:
        if (lurk_key_type_name(r->key_type) == NULL) {
            return dec_fail(d, bad, M_KEY_TYPE, "required member missing");
        }
        if (!valid_policy(r->policy, strnlen(r->policy, sizeof(r->policy)))) {
            return dec_fail(d, bad, M_POLICY, "expected 1 to %d characters of [a-z0-9-]",
                            LURK_POLICY_MAX);
        }
        break;

    default:
        lurk_why(d->why, d->whylen, "message: unknown transaction");
        return bad;
    }
    return LURK_OK;
}

/* ------------------------------------------------------ request decode */

static const char *const members_plain[] = { M_REQUEST_ID };
static const char *const members_keyid[] = { M_REQUEST_ID, M_KEY_ID };
static const char *const members_sign[] = {
    M_REQUEST_ID, M_KEY_ID, M_ALGORITHM, M_DIGEST_ALG, M_SALT_LENGTH, M_DATA, M_DIGEST,
};
static const char *const members_decrypt[] = {
    M_REQUEST_ID, M_KEY_ID, M_MODE, M_DATA, M_CLIENT_VERSION, M_ALT_VERSION, M_OAEP_DIGEST,
    M_LABEL,
};
static const char *const members_agree[] = { M_REQUEST_ID, M_KEY_ID, M_PEER_KEY };
static const char *const members_create[] = { M_REQUEST_ID, M_KEY_TYPE, M_POLICY };

static lurk_err decode_sign(lurk_dec *d, lurk_request *r)
{
    lurk_err ret = LURK_OK;
    long long salt = 0;
    int present = 0;
    int v = 0;

    ret = dec_enum(d, M_ALGORITHM, 1, sig_alg_names, LURK_SIG__COUNT, &v);
    if (ret != LURK_OK) {
        return ret;
    }
    r->sig_alg = (lurk_sig_alg)v;
    ret = dec_enum(d, M_DIGEST_ALG, 0, md_names, LURK_MD__COUNT, &v);
    if (ret != LURK_OK) {
        return ret;
    }
    r->md = (lurk_md)v;
    ret = dec_int(d, M_SALT_LENGTH, 0, 0, LURK_SALT_MAX, &salt, &present);
    if (ret != LURK_OK) {
        return ret;
    }
    r->salt_len = present ? (int)salt : -1;
    ret = dec_bin(d, M_DATA, 0, LURK_MAX_DATA, &r->data);
    if (ret != LURK_OK) {
        return ret;
    }
    return dec_bin(d, M_DIGEST, 0, LURK_MAX_DATA, &r->digest);
}

static lurk_err decode_decrypt(lurk_dec *d, lurk_request *r)
{
    lurk_err ret = LURK_OK;
    long long n = 0;
    int present = 0;
    int v = 0;

    ret = dec_enum(d, M_MODE, 1, dec_mode_names, LURK_DEC__COUNT, &v);
    if (ret != LURK_OK) {
        return ret;
    }
    r->dec_mode = (lurk_dec_mode)v;
    ret = dec_bin(d, M_DATA, 1, LURK_MAX_DATA, &r->ciphertext);
    if (ret != LURK_OK) {
        return ret;
    }
    if (r->dec_mode == LURK_DEC_TLS_PREMASTER) {
        ret = dec_int(d, M_CLIENT_VERSION, 1, 0, 0xffff, &n, &present);
        if (ret != LURK_OK) {
            return ret;
        }
        r->client_version = (unsigned)n;
        ret = dec_int(d, M_ALT_VERSION, 0, 0, 0xffff, &n, &present);
        if (ret != LURK_OK) {
            return ret;
        }
        r->alt_version = present ? (unsigned)n : 0;
    } else {
        /* The struct cannot tell "absent" from 0: check presence here. */
        if (dec_has(d, M_CLIENT_VERSION)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_CLIENT_VERSION,
                            "only allowed with tls-premaster");
        }
        if (dec_has(d, M_ALT_VERSION)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_ALT_VERSION,
                            "only allowed with tls-premaster");
        }
    }
    ret = dec_enum(d, M_OAEP_DIGEST, 0, md_names, LURK_MD__COUNT, &v);
    if (ret != LURK_OK) {
        return ret;
    }
    r->oaep_md = (lurk_md)v;
    return dec_bin(d, M_LABEL, 0, LURK_MAX_DATA, &r->label);
}

static lurk_err decode_create(lurk_dec *d, lurk_request *r)
{
    lurk_err ret = LURK_OK;
    const char *s = NULL;
    size_t len = 0;

    ret = dec_str(d, M_KEY_TYPE, 1, &s, &len);
    if (ret != LURK_OK) {
        return ret;
    }
    r->key_type = (lurk_key_type)name_index(key_type_names, LURK_KEY__COUNT, s);
    if (r->key_type == LURK_KEY_NONE) {
        return dec_fail(d, LURK_ERR_NOT_ACCEPTABLE, M_KEY_TYPE, "unsupported value");
    }
    return dec_policy(d, M_POLICY, r->policy);
}

static lurk_err decode_request_body(lurk_dec *d, lurk_request *r)
{
    lurk_err ret = LURK_OK;

    /* RequestId first, so that a server can echo it in its error reply. */
    ret = dec_token(d, M_REQUEST_ID, 1, LURK_REQUEST_ID_MAX, r->request_id);
    if (ret != LURK_OK) {
        return ret;
    }
    switch (r->type) {
    case LURK_TX_HELLO:
    case LURK_TX_PING:
        ret = dec_members(d, members_plain, COUNT_OF(members_plain));
        break;
    case LURK_TX_PUBLIC_KEY:
    case LURK_TX_DISPOSE:
        ret = dec_members(d, members_keyid, COUNT_OF(members_keyid));
        break;
    case LURK_TX_SIGN:
        ret = dec_members(d, members_sign, COUNT_OF(members_sign));
        break;
    case LURK_TX_DECRYPT:
        ret = dec_members(d, members_decrypt, COUNT_OF(members_decrypt));
        break;
    case LURK_TX_AGREE:
        ret = dec_members(d, members_agree, COUNT_OF(members_agree));
        break;
    case LURK_TX_CREATE:
        ret = dec_members(d, members_create, COUNT_OF(members_create));
        break;
    default:
        ret = LURK_ERR_INVALID_FORMAT;
        break;
    }
    if (ret != LURK_OK) {
        return ret;
    }
    if (r->type != LURK_TX_HELLO && r->type != LURK_TX_PING && r->type != LURK_TX_CREATE) {
        ret = dec_token(d, M_KEY_ID, 1, LURK_KEY_ID_TEXT_MAX, r->key_id);
        if (ret != LURK_OK) {
            return ret;
        }
    }
    switch (r->type) {
    case LURK_TX_SIGN:
        ret = decode_sign(d, r);
        break;
    case LURK_TX_DECRYPT:
        ret = decode_decrypt(d, r);
        break;
    case LURK_TX_AGREE:
        ret = dec_bin(d, M_PEER_KEY, 1, LURK_MAX_DATA, &r->peer_key);
        break;
    case LURK_TX_CREATE:
        ret = decode_create(d, r);
        break;
    default:
        break;
    }
    if (ret != LURK_OK) {
        return ret;
    }
    return check_request(d, r);
}

lurk_err lurk_proto_decode_request(const char *json, size_t len, lurk_request *out,
                                   char *why, size_t whylen)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    json_t *root = NULL;
    json_t *body = NULL;
    const char *name = NULL;
    lurk_dec d;

    lurk_why(why, whylen, "%s", "");
    if (out == NULL || (json == NULL && len > 0)) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_request_init(out);
    ret = parse_envelope(json != NULL ? json : "", len, &root, &name, &body, why, whylen);
    if (ret != LURK_OK) {
        goto end;
    }
    out->type = tx_from_message(name, "Request");
    if (out->type == LURK_TX__COUNT) {
        lurk_why(why, whylen, "message: unknown message \"%.40s\"", name);
        ret = LURK_ERR_INVALID_FORMAT;
        goto end;
    }
    memset(&d, 0, sizeof(d));
    d.body = body;
    d.why = why;
    d.whylen = whylen;
    message_name(out->type, "Request", d.msg, sizeof(d.msg));
    ret = decode_request_body(&d, out);

end:
    if (root != NULL) {
        scrub_root(root);
        json_decref(root);
    }
    if (ret != LURK_OK) {
        /* Keep what a server needs for its error reply: the transaction
         * and, when it was valid, the request id. */
        lurk_tx type = out->type;
        char rid[LURK_REQUEST_ID_MAX + 1];

        memcpy(rid, out->request_id, sizeof(rid));
        lurk_request_clear(out);
        out->type = type;
        memcpy(out->request_id, rid, sizeof(rid));
    }
    return ret;
}

/* ------------------------------------------------------ JSON writing (json.c) */

/* What a binary member will add, for lurk_jw_init. */
static size_t bin_room(const lurk_buf *b)
{
    return b->data != NULL && b->len <= LURK_MAX_DATA ? lurk_b64url_encoded_len(b->len) + 16
                                                       : 0;
}

lurk_err lurk_proto_encode_request(const lurk_request *req, char **json, size_t *len)
{
    lurk_err ret = LURK_OK;
    lurk_dec d;
    lurk_jw w;

    if (req == NULL || json == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *json = NULL;
    memset(&d, 0, sizeof(d));
    message_name(req->type, "Request", d.msg, sizeof(d.msg));
    ret = check_request(&d, req);
    if (ret != LURK_OK) {
        return ret == LURK_ERR_TOO_LARGE ? ret : LURK_ERR_INVALID_ARG;
    }
    lurk_jw_init(&w, bin_room(&req->data) + bin_room(&req->digest) + bin_room(&req->label)
                    + bin_room(&req->ciphertext) + bin_room(&req->peer_key));
    lurk_jw_open(&w, '{');
    lurk_jw_key(&w, d.msg);
    lurk_jw_open(&w, '{');
    JW_NAME(&w, M_REQUEST_ID);
    lurk_jw_str(&w, req->request_id);
    switch (req->type) {
    case LURK_TX_PUBLIC_KEY:
    case LURK_TX_DISPOSE:
        JW_NAME(&w, M_KEY_ID);
        lurk_jw_str(&w, req->key_id);
        break;
    case LURK_TX_SIGN:
        JW_NAME(&w, M_KEY_ID);
        lurk_jw_str(&w, req->key_id);
        JW_NAME(&w, M_ALGORITHM);
        lurk_jw_str(&w, lurk_sig_alg_name(req->sig_alg));
        if (req->md != LURK_MD_NONE) {
            JW_NAME(&w, M_DIGEST_ALG);
            lurk_jw_str(&w, lurk_md_name(req->md));
        }
        if (req->salt_len >= 0) {
            JW_NAME(&w, M_SALT_LENGTH);
            lurk_jw_int(&w, req->salt_len);
        }
        if (buf_present(&req->data)) {
            JW_NAME(&w, M_DATA);
            lurk_jw_bin(&w, &req->data);
        }
        if (buf_present(&req->digest)) {
            JW_NAME(&w, M_DIGEST);
            lurk_jw_bin(&w, &req->digest);
        }
        break;
    case LURK_TX_DECRYPT:
        JW_NAME(&w, M_KEY_ID);
        lurk_jw_str(&w, req->key_id);
        JW_NAME(&w, M_MODE);
        lurk_jw_str(&w, lurk_dec_mode_name(req->dec_mode));
        JW_NAME(&w, M_DATA);
        lurk_jw_bin(&w, &req->ciphertext);
        if (req->dec_mode == LURK_DEC_TLS_PREMASTER) {
            JW_NAME(&w, M_CLIENT_VERSION);
            lurk_jw_int(&w, req->client_version);
            if (req->alt_version != 0) {
                JW_NAME(&w, M_ALT_VERSION);
                lurk_jw_int(&w, req->alt_version);
            }
        } else {
            JW_NAME(&w, M_OAEP_DIGEST);
            lurk_jw_str(&w, lurk_md_name(req->oaep_md));
            if (buf_present(&req->label)) {
                JW_NAME(&w, M_LABEL);
                lurk_jw_bin(&w, &req->label);
            }
        }
        break;
    case LURK_TX_AGREE:
        JW_NAME(&w, M_KEY_ID);
        lurk_jw_str(&w, req->key_id);
        JW_NAME(&w, M_PEER_KEY);
        lurk_jw_bin(&w, &req->peer_key);
        break;
    case LURK_TX_CREATE:
        JW_NAME(&w, M_KEY_TYPE);
        lurk_jw_str(&w, lurk_key_type_name(req->key_type));
        JW_NAME(&w, M_POLICY);
        lurk_jw_str(&w, req->policy);
        break;
    default:
        break;
    }
    lurk_jw_close(&w, '}');
    lurk_jw_close(&w, '}');
    return lurk_jw_finish(&w, json, len);
}

/* ------------------------------------------------------ responses */

static const char *const members_common[] = {
    M_REQUEST_ID, M_STATUS, M_DESCRIPTION, M_RETRY_AFTER, M_STATE,
};
static const char *const members_hello_ok[] = {
    M_REQUEST_ID, M_STATUS, M_DESCRIPTION, M_RETRY_AFTER, M_STATE,
    M_VERSION, M_TRANSACTIONS, M_ALGORITHMS, M_DECRYPT_MODES, M_DIGESTS, M_KEY_TYPES,
};
static const char *const members_public_key_ok[] = {
    M_REQUEST_ID, M_STATUS, M_DESCRIPTION, M_RETRY_AFTER, M_STATE,
    M_KEY_TYPE, M_POLICY, M_PUBLIC_KEY,
};
static const char *const members_value_ok[] = {
    M_REQUEST_ID, M_STATUS, M_DESCRIPTION, M_RETRY_AFTER, M_STATE, M_VALUE,
};

/* Members of a successful reply to `tx` (common ones included). */
static const char *const *response_members(lurk_tx tx, size_t *n)
{
    switch (tx) {
    case LURK_TX_HELLO:
        *n = COUNT_OF(members_hello_ok);
        return members_hello_ok;
    case LURK_TX_PUBLIC_KEY:
        *n = COUNT_OF(members_public_key_ok);
        return members_public_key_ok;
    case LURK_TX_SIGN:
    case LURK_TX_DECRYPT:
    case LURK_TX_AGREE:
        *n = COUNT_OF(members_value_ok);
        return members_value_ok;
    default:
        *n = COUNT_OF(members_common);
        return members_common;
    }
}

/* State travels with Hello, Ping and errors only. */
static int state_allowed(const lurk_response *r)
{
    return r->status != 200 || r->type == LURK_TX_HELLO || r->type == LURK_TX_PING;
}

static int retry_allowed(int status)
{
    return status == 429 || status == 503;
}

/* Rules of a response struct, for the encoder (the decoder checks the
 * same things member by member as it reads them). */
static lurk_err check_response(const lurk_response *r)
{
    size_t rid_len = strnlen(r->request_id, sizeof(r->request_id));

    if ((int)r->type < 0 || r->type > LURK_TX__COUNT) {
        return LURK_ERR_INVALID_ARG;
    }
    if (r->status < 100 || r->status > 599) {
        return LURK_ERR_INVALID_ARG;
    }
    if (rid_len > 0 && !valid_token(r->request_id, rid_len, LURK_REQUEST_ID_MAX)) {
        return LURK_ERR_INVALID_ARG;
    }
    if (r->status == 200 && (rid_len == 0 || r->type == LURK_TX__COUNT)) {
        return LURK_ERR_INVALID_ARG;
    }
    if (!valid_description(r->description, strnlen(r->description, sizeof(r->description)))) {
        return LURK_ERR_INVALID_ARG;
    }
    if (retry_allowed(r->status) && r->retry_after_ms > LURK_RETRY_AFTER_MAX) {
        return LURK_ERR_INVALID_ARG;
    }
    if (buf_present(&r->state) && (r->state.len > LURK_STATE_MAX || !state_allowed(r))) {
        return LURK_ERR_INVALID_ARG;
    }
    if (r->status != 200) {
        return LURK_OK;
    }
    switch (r->type) {
    case LURK_TX_HELLO:
        if (r->hello.major > 255 || r->hello.minor > 255) {
            return LURK_ERR_INVALID_ARG;
        }
        break;
    case LURK_TX_PUBLIC_KEY:
        if (lurk_key_type_name(r->key_type) == NULL
            || !valid_policy(r->policy, strnlen(r->policy, sizeof(r->policy)))
            || !buf_present(&r->spki) || r->spki.len > LURK_MAX_DATA) {
            return LURK_ERR_INVALID_ARG;
        }
        break;
    case LURK_TX_SIGN:
    case LURK_TX_DECRYPT:
    case LURK_TX_AGREE:
        if (!buf_present(&r->value) || r->value.len > LURK_MAX_DATA) {
            return LURK_ERR_INVALID_ARG;
        }
        break;
    default:
        break;
    }
    return LURK_OK;
}

/* ["a", "b", ...] of the names whose bit is set. */
static void jw_name_list(lurk_jw *w, uint32_t bits, const char *const *table, size_t n)
{
    lurk_jw_open(w, '[');
    for (size_t i = 0; i < n && i < 32; i++) {
        if ((bits & (1u << i)) && table[i] != NULL) {
            lurk_jw_str(w, table[i]);
        }
    }
    lurk_jw_close(w, ']');
}

static void jw_hello(lurk_jw *w, const lurk_hello_info *h)
{
    JW_NAME(w, M_VERSION);
    lurk_jw_open(w, '{');
    JW_NAME(w, M_MAJOR);
    lurk_jw_int(w, h->major);
    JW_NAME(w, M_MINOR);
    lurk_jw_int(w, h->minor);
    JW_NAME(w, M_ENCODINGS);
    lurk_jw_open(w, '[');
    lurk_jw_open(w, '{');
    JW_NAME(w, M_ID);
    lurk_jw_str(w, LURK_PROTO_MEDIA_TYPE);
    lurk_jw_close(w, '}');
    lurk_jw_close(w, ']');
    lurk_jw_close(w, '}');
    JW_NAME(w, M_TRANSACTIONS);
    jw_name_list(w, h->transactions, tx_names, LURK_TX__COUNT);
    JW_NAME(w, M_ALGORITHMS);
    jw_name_list(w, h->sig_algs, sig_alg_names, LURK_SIG__COUNT);
    JW_NAME(w, M_DECRYPT_MODES);
    jw_name_list(w, h->dec_modes, dec_mode_names, LURK_DEC__COUNT);
    JW_NAME(w, M_DIGESTS);
    jw_name_list(w, h->digests, md_names, LURK_MD__COUNT);
    JW_NAME(w, M_KEY_TYPES);
    jw_name_list(w, h->key_types, key_type_names, LURK_KEY__COUNT);
}

lurk_err lurk_proto_encode_response(const lurk_response *resp, char **json, size_t *len)
{
    lurk_err ret = LURK_OK;
    char name[LURK_MSG_NAME_MAX];
    lurk_jw w;

    if (resp == NULL || json == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *json = NULL;
    ret = check_response(resp);
    if (ret != LURK_OK) {
        return ret;
    }
    message_name(resp->type, "Response", name, sizeof(name));
    lurk_jw_init(&w, bin_room(&resp->state) + bin_room(&resp->spki) + bin_room(&resp->value)
                    + LURK_PROTO_JSON_STRING_MAX(strlen(resp->description)));
    lurk_jw_open(&w, '{');
    lurk_jw_key(&w, name);
    lurk_jw_open(&w, '{');
    if (resp->request_id[0] != '\0') {
        JW_NAME(&w, M_REQUEST_ID);
        lurk_jw_str(&w, resp->request_id);
    }
    JW_NAME(&w, M_STATUS);
    lurk_jw_int(&w, resp->status);
    if (resp->description[0] != '\0') {
        JW_NAME(&w, M_DESCRIPTION);
        lurk_jw_str(&w, resp->description);
    }
    if (retry_allowed(resp->status)) {
        JW_NAME(&w, M_RETRY_AFTER);
        lurk_jw_int(&w, resp->retry_after_ms);
    }
    if (buf_present(&resp->state)) {
        JW_NAME(&w, M_STATE);
        lurk_jw_bin(&w, &resp->state);
    }
    if (resp->status == 200) {
        switch (resp->type) {
        case LURK_TX_HELLO:
            jw_hello(&w, &resp->hello);
            break;
        case LURK_TX_PUBLIC_KEY:
            JW_NAME(&w, M_KEY_TYPE);
            lurk_jw_str(&w, lurk_key_type_name(resp->key_type));
            JW_NAME(&w, M_POLICY);
            lurk_jw_str(&w, resp->policy);
            JW_NAME(&w, M_PUBLIC_KEY);
            lurk_jw_bin(&w, &resp->spki);
            break;
        case LURK_TX_SIGN:
        case LURK_TX_DECRYPT:
        case LURK_TX_AGREE:
            JW_NAME(&w, M_VALUE);
            lurk_jw_bin(&w, &resp->value);
            break;
        default:
            break;
        }
    }
    lurk_jw_close(&w, '}');
    lurk_jw_close(&w, '}');
    return lurk_jw_finish(&w, json, len);
}

/* A capability list: names map to bits, unknown names are skipped so that
 * a newer server can announce more than this client knows. */
static lurk_err dec_name_list(lurk_dec *d, const char *member, const char *const *table,
                              size_t n, uint32_t *bits)
{
    json_t *arr = json_object_get(d->body, member);
    json_t *item = NULL;
    size_t i = 0;

    *bits = 0;
    if (arr == NULL) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "required member missing");
    }
    if (!json_is_array(arr)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "expected an array of strings");
    }
    json_array_foreach(arr, i, item) {
        if (!json_is_string(item)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, member, "item %zu: expected a string", i);
        }
        for (size_t k = 0; k < n && k < 32; k++) {
            if (table[k] != NULL && strcmp(table[k], json_string_value(item)) == 0) {
                *bits |= 1u << k;
            }
        }
    }
    return LURK_OK;
}

static lurk_err dec_version(lurk_dec *d, lurk_hello_info *h)
{
    json_t *version = json_object_get(d->body, M_VERSION);
    json_t *encodings = NULL;
    json_t *item = NULL;
    json_t *v = NULL;
    const char *key = NULL;
    size_t i = 0;

    if (version == NULL) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION, "required member missing");
    }
    if (!json_is_object(version)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION, "expected an object");
    }
    json_object_foreach(version, key, v) {
        if (strcmp(key, M_MAJOR) != 0 && strcmp(key, M_MINOR) != 0
            && strcmp(key, M_ENCODINGS) != 0) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION, "unknown member \"%.32s\"",
                            key);
        }
    }
    v = json_object_get(version, M_MAJOR);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION "." M_MAJOR,
                        "expected an integer 0..255");
    }
    h->major = (unsigned)json_integer_value(v);
    v = json_object_get(version, M_MINOR);
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 255) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION "." M_MINOR,
                        "expected an integer 0..255");
    }
    h->minor = (unsigned)json_integer_value(v);
    encodings = json_object_get(version, M_ENCODINGS);
    if (!json_is_array(encodings)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION "." M_ENCODINGS,
                        "expected an array of objects");
    }
    json_array_foreach(encodings, i, item) {
        v = json_object_get(item, M_ID);
        if (!json_is_object(item) || json_object_size(item) != 1 || !json_is_string(v)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_VERSION "." M_ENCODINGS,
                            "item %zu: expected {\"ID\": string}", i);
        }
    }
    return LURK_OK;
}

static lurk_err decode_response_ok(lurk_dec *d, lurk_response *r)
{
    lurk_err ret = LURK_OK;

    switch (r->type) {
    case LURK_TX_HELLO:
        ret = dec_version(d, &r->hello);
        if (ret == LURK_OK) {
            ret = dec_name_list(d, M_TRANSACTIONS, tx_names, LURK_TX__COUNT,
                                &r->hello.transactions);
        }
        if (ret == LURK_OK) {
            ret = dec_name_list(d, M_ALGORITHMS, sig_alg_names, LURK_SIG__COUNT,
                                &r->hello.sig_algs);
        }
        if (ret == LURK_OK) {
            ret = dec_name_list(d, M_DECRYPT_MODES, dec_mode_names, LURK_DEC__COUNT,
                                &r->hello.dec_modes);
        }
        if (ret == LURK_OK) {
            ret = dec_name_list(d, M_DIGESTS, md_names, LURK_MD__COUNT, &r->hello.digests);
        }
        if (ret == LURK_OK) {
            ret = dec_name_list(d, M_KEY_TYPES, key_type_names, LURK_KEY__COUNT,
                                &r->hello.key_types);
        }
        return ret;

    case LURK_TX_PUBLIC_KEY: {
        const char *s = NULL;
        size_t len = 0;

        ret = dec_str(d, M_KEY_TYPE, 1, &s, &len);
        if (ret != LURK_OK) {
            return ret;
        }
        r->key_type = (lurk_key_type)name_index(key_type_names, LURK_KEY__COUNT, s);
        if (r->key_type == LURK_KEY_NONE) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_KEY_TYPE, "unknown key type");
        }
        ret = dec_policy(d, M_POLICY, r->policy);
        if (ret != LURK_OK) {
            return ret;
        }
        return dec_bin(d, M_PUBLIC_KEY, 1, LURK_MAX_DATA, &r->spki);
    }

    case LURK_TX_SIGN:
    case LURK_TX_DECRYPT:
    case LURK_TX_AGREE:
        return dec_bin(d, M_VALUE, 1, LURK_MAX_DATA, &r->value);

    default:
        return LURK_OK;
    }
}

static lurk_err decode_response_body(lurk_dec *d, lurk_response *r)
{
    lurk_err ret = LURK_OK;
    const char *const *allowed = NULL;
    const char *s = NULL;
    long long n = 0;
    size_t count = 0;
    size_t len = 0;
    int present = 0;

    ret = dec_int(d, M_STATUS, 1, 100, 599, &n, &present);
    if (ret != LURK_OK) {
        return ret;
    }
    r->status = (int)n;
    if (r->type == LURK_TX__COUNT && r->status == 200) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_STATUS,
                        "200 is not allowed in a LurkResponse");
    }
    /* An error reply carries only the common members. */
    allowed = response_members(r->status == 200 ? r->type : LURK_TX__COUNT, &count);
    ret = dec_members(d, allowed, count);
    if (ret != LURK_OK) {
        size_t ok_count = 0;
        const char *const *ok_members = response_members(r->type, &ok_count);
        const char *key = NULL;
        json_t *v = NULL;

        json_object_foreach(d->body, key, v) {
            if (!in_list(key, allowed, count) && in_list(key, ok_members, ok_count)) {
                return dec_fail(d, LURK_ERR_INVALID_FORMAT, key,
                                "not allowed in an error response");
            }
        }
        return ret;
    }
    /* RequestId: required in a success; an error may lack it when the
     * request's own RequestId was what was wrong. */
    ret = dec_token(d, M_REQUEST_ID, r->status == 200, LURK_REQUEST_ID_MAX, r->request_id);
    if (ret != LURK_OK) {
        return ret;
    }
    ret = dec_str(d, M_DESCRIPTION, 0, &s, &len);
    if (ret != LURK_OK) {
        return ret;
    }
    if (s != NULL) {
        if (!valid_description(s, len)) {
            return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_DESCRIPTION,
                            "more than %d bytes or a control character", LURK_DESCRIPTION_MAX);
        }
        memcpy(r->description, s, len);
        r->description[len] = '\0';
    }
    if (dec_has(d, M_RETRY_AFTER) && !retry_allowed(r->status)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_RETRY_AFTER, "only allowed with 429 or 503");
    }
    ret = dec_int(d, M_RETRY_AFTER, 0, 0, LURK_RETRY_AFTER_MAX, &n, &present);
    if (ret != LURK_OK) {
        return ret;
    }
    r->retry_after_ms = present ? (unsigned)n : 0;
    if (dec_has(d, M_STATE) && !state_allowed(r)) {
        return dec_fail(d, LURK_ERR_INVALID_FORMAT, M_STATE, "not allowed in this response");
    }
    ret = dec_bin(d, M_STATE, 0, LURK_STATE_MAX, &r->state);
    if (ret != LURK_OK) {
        return ret;
    }
    if (r->status != 200) {
        return LURK_OK;
    }
    return decode_response_ok(d, r);
}

lurk_err lurk_proto_decode_response(const char *json, size_t len, lurk_tx expected,
                                    lurk_response *out, char *why, size_t whylen)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    json_t *root = NULL;
    json_t *body = NULL;
    const char *name = NULL;
    char want[LURK_MSG_NAME_MAX];
    lurk_dec d;

    lurk_why(why, whylen, "%s", "");
    if (out == NULL || (json == NULL && len > 0) || (int)expected < 0
        || expected > LURK_TX__COUNT) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_response_init(out);
    ret = parse_envelope(json != NULL ? json : "", len, &root, &name, &body, why, whylen);
    if (ret != LURK_OK) {
        goto end;
    }
    message_name(expected, "Response", want, sizeof(want));
    if (strcmp(name, LURK_LURK_RESPONSE) == 0) {
        out->type = LURK_TX__COUNT;
    } else if (expected == LURK_TX__COUNT) {
        /* No expectation: any transaction's response. */
        out->type = tx_from_message(name, "Response");
    } else if (strcmp(name, want) == 0) {
        out->type = expected;
    } else {
        out->type = LURK_TX__COUNT;
        lurk_why(why, whylen, "message: expected \"%s\" or \"%s\", got \"%.40s\"", want,
                 LURK_LURK_RESPONSE, name);
        ret = LURK_ERR_INVALID_FORMAT;
        goto end;
    }
    if (out->type == LURK_TX__COUNT && strcmp(name, LURK_LURK_RESPONSE) != 0) {
        lurk_why(why, whylen, "message: unknown message \"%.40s\"", name);
        ret = LURK_ERR_INVALID_FORMAT;
        goto end;
    }
    memset(&d, 0, sizeof(d));
    d.body = body;
    d.why = why;
    d.whylen = whylen;
    message_name(out->type, "Response", d.msg, sizeof(d.msg));
    ret = decode_response_body(&d, out);

end:
    if (root != NULL) {
        scrub_root(root);
        json_decref(root);
    }
    if (ret != LURK_OK) {
        lurk_response_clear(out);
    }
    return ret;
}
