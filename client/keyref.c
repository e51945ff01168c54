/* SPDX-License-Identifier: Apache-2.0 */
/*
 * keyref.c - key reference files: the DER structure of lurk_keyref.h in a
 * "LURK PRIVATE KEY" PEM block.
 *
 * The DER is written and read by hand: the structure is small, and a
 * hand-written reader can insist on DER (definite, minimal lengths, exact
 * tags, no trailing bytes) without pulling the public key through OpenSSL's
 * template machinery.  The public key is parsed once, with libcrypto's
 * default provider only: the lurk provider calls this code from inside
 * OpenSSL's decoder chain and must not recurse into itself.
 */
#include "lurk_keyref.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define DER_INTEGER 0x02
#define DER_UTF8STRING 0x0c
#define DER_SEQUENCE 0x30
#define DER_CTX0 0xa0 /* [0] EXPLICIT, constructed */
#define DER_CTX1 0xa1 /* [1] EXPLICIT, constructed */

#define KEYREF_VERSION 1
#define KEYREF_SERVER_MAX 1024 /* bytes of one server URL */

/* ------------------------------------------------------------ DER out */

typedef struct {
    unsigned char *p;
    size_t len;
    size_t cap;
    int failed;
} der_out;

static void out_bytes(der_out *o, const void *data, size_t n)
{
    if (o->failed) {
        return;
    }
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 256;
        unsigned char *p = NULL;

        while (cap < o->len + n) {
            cap *= 2;
        }
        p = realloc(o->p, cap);
        if (p == NULL) {
            o->failed = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, data, n);
    o->len += n;
}

static void out_header(der_out *o, unsigned char tag, size_t len)
{
    unsigned char h[2 + sizeof(size_t)];
    size_t n = 0;

    h[n++] = tag;
    if (len < 0x80) {
        h[n++] = (unsigned char)len;
    } else {
        unsigned char tmp[sizeof(size_t)];
        size_t k = 0;

        for (size_t v = len; v > 0; v >>= 8) {
            tmp[k++] = (unsigned char)(v & 0xff);
        }
        h[n++] = (unsigned char)(0x80 | k);
        while (k > 0) {
            h[n++] = tmp[--k];
        }
    }
    out_bytes(o, h, n);
}

static void out_tlv(der_out *o, unsigned char tag, const void *content, size_t len)
{
    out_header(o, tag, len);
    out_bytes(o, content, len);
}

static void out_utf8(der_out *o, const char *s)
{
    out_tlv(o, DER_UTF8STRING, s, strlen(s));
}

static void out_free(der_out *o)
{
    free(o->p);
    memset(o, 0, sizeof(*o));
}

/* ------------------------------------------------------------- DER in */

typedef struct {
    const unsigned char *p;
    size_t len;
} der_in;

/* Reads one TLV with exactly `tag` from the front of `in`: DER only
 * (definite, minimal lengths).  `whole`, when not NULL, receives the
 * complete encoding, `content` the value. */
static int der_get(der_in *in, unsigned char tag, der_in *content, der_in *whole)
{
    size_t len = 0;
    size_t hdr = 2;

    if (in->len < 2 || in->p[0] != tag) {
        return 0;
    }
    if (in->p[1] < 0x80) {
        len = in->p[1];
    } else {
        size_t k = in->p[1] & 0x7f;

        /* 0x80 would be BER's indefinite length. */
        if (k == 0 || k > sizeof(size_t) || in->len < 2 + k || in->p[2] == 0) {
            return 0;
        }
        for (size_t i = 0; i < k; i++) {
            len = (len << 8) | in->p[2 + i];
        }
        if (len < 0x80) {
            return 0;
        }
        hdr += k;
    }
    if (len > in->len - hdr) {
        return 0;
    }
    if (content != NULL) {
        content->p = in->p + hdr;
        content->len = len;
    }
    if (whole != NULL) {
        whole->p = in->p;
        whole->len = hdr + len;
    }
    in->p += hdr + len;
    in->len -= hdr + len;
    return 1;
}

/* Text fields: non-empty, below `max` bytes, no control characters. */
static int der_get_text(der_in *in, char *out, size_t max)
{
    der_in s;

    if (!der_get(in, DER_UTF8STRING, &s, NULL) || s.len == 0 || s.len >= max) {
        return 0;
    }
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < 0x20 || s.p[i] == 0x7f) {
            return 0;
        }
    }
    memcpy(out, s.p, s.len);
    out[s.len] = '\0';
    return 1;
}

/* ------------------------------------------------------------- checks */

static int valid_policy(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= sizeof(((lurk_keyref *)0)->policy)) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
            return 0;
        }
    }
    return 1;
}

static int valid_server(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= KEYREF_SERVER_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f) {
            return 0;
        }
    }
    return 1;
}

/* Key type of a DER SPKI, parsed with the default provider only. */
static lurk_err spki_key_type(const unsigned char *spki, size_t len, lurk_key_type *type)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    const unsigned char *p = spki;
    EVP_PKEY *pkey = NULL;

    *type = LURK_KEY_NONE;
    if (len == 0 || len > LURK_MAX_DATA) {
        return LURK_ERR_INVALID_FORMAT;
    }
    ERR_set_mark();
    pkey = d2i_PUBKEY_ex(NULL, &p, (long)len, NULL, "?provider=default");
    ERR_pop_to_mark();
    if (pkey == NULL || p != spki + len) {
        goto end;
    }
    /* RSA-PSS-only keys ("RSASSA-PSS") are not supported. */
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        *type = LURK_KEY_RSA;
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        *type = LURK_KEY_EC;
    } else if (EVP_PKEY_is_a(pkey, "ED25519")) {
        *type = LURK_KEY_ED25519;
    } else {
        ret = LURK_ERR_UNSUPPORTED;
        goto end;
    }
    ret = LURK_OK;

end:
    EVP_PKEY_free(pkey);
    return ret;
}

/* ---------------------------------------------------------- lifecycle */

void lurk_keyref_init(lurk_keyref *ref)
{
    if (ref == NULL) {
        return;
    }
    memset(ref, 0, sizeof(*ref));
}

void lurk_keyref_clear(lurk_keyref *ref)
{
    if (ref == NULL) {
        return;
    }
    free(ref->spki);
    for (size_t i = 0; i < ref->n_servers && i < LURK_KEYREF_MAX_SERVERS; i++) {
        free(ref->servers[i]);
    }
    lurk_keyref_init(ref);
}

static lurk_err keyref_set_extras(lurk_keyref *ref, const char *policy,
                                  const char *const *servers, size_t n_servers)
{
    if (policy != NULL && policy[0] != '\0') {
        if (!valid_policy(policy)) {
            return LURK_ERR_INVALID_ARG;
        }
        strcpy(ref->policy, policy);
    }
    if (n_servers > LURK_KEYREF_MAX_SERVERS || (n_servers > 0 && servers == NULL)) {
        return LURK_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < n_servers; i++) {
        if (servers[i] == NULL || !valid_server(servers[i])) {
            return LURK_ERR_INVALID_ARG;
        }
        ref->servers[i] = strdup(servers[i]);
        if (ref->servers[i] == NULL) {
            return LURK_ERR_NOMEM;
        }
        ref->n_servers = i + 1;
    }
    return LURK_OK;
}

lurk_err lurk_keyref_from_spki(const unsigned char *spki, size_t spki_len,
                               const char *policy, const char *const *servers,
                               size_t n_servers, lurk_keyref *out)
{
    lurk_err ret = LURK_OK;

    if (out == NULL || spki == NULL || spki_len == 0) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_keyref_init(out);
    ret = spki_key_type(spki, spki_len, &out->type);
    if (ret != LURK_OK) {
        goto end;
    }
    ret = lurk_keyid_from_spki(spki, spki_len, LURK_KEYID_ALG_DEFAULT, &out->id);
    if (ret != LURK_OK) {
        goto end;
    }
    ret = lurk_keyid_format(&out->id, out->key_id, sizeof(out->key_id));
    if (ret != LURK_OK) {
        goto end;
    }
    out->spki = malloc(spki_len);
    if (out->spki == NULL) {
        ret = LURK_ERR_NOMEM;
        goto end;
    }
    memcpy(out->spki, spki, spki_len);
    out->spki_len = spki_len;
    ret = keyref_set_extras(out, policy, servers, n_servers);

end:
    if (ret != LURK_OK) {
        lurk_keyref_clear(out);
    }
    return ret;
}

/* ------------------------------------------------------------- DER */

lurk_err lurk_keyref_encode_der(const lurk_keyref *ref, unsigned char **der, size_t *len)
{
    lurk_err ret = LURK_ERR_NOMEM;
    der_out body = { 0 };
    der_out servers = { 0 };
    der_out tmp = { 0 };
    der_out all = { 0 };
    const unsigned char version = KEYREF_VERSION;
    const char *type = NULL;

    if (ref == NULL || der == NULL || len == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *der = NULL;
    *len = 0;
    type = lurk_key_type_name(ref->type);
    if (type == NULL || ref->spki == NULL || ref->spki_len == 0
        || strnlen(ref->key_id, sizeof(ref->key_id)) == 0
        || strnlen(ref->key_id, sizeof(ref->key_id)) >= sizeof(ref->key_id)
        || ref->n_servers > LURK_KEYREF_MAX_SERVERS
        || (ref->policy[0] != '\0' && !valid_policy(ref->policy))) {
        return LURK_ERR_INVALID_ARG;
    }
    for (size_t i = 0; i < ref->n_servers; i++) {
        if (ref->servers[i] == NULL || !valid_server(ref->servers[i])) {
            return LURK_ERR_INVALID_ARG;
        }
    }
    out_tlv(&body, DER_INTEGER, &version, 1);
    out_utf8(&body, ref->key_id);
    out_utf8(&body, type);
    out_bytes(&body, ref->spki, ref->spki_len);
    if (ref->policy[0] != '\0') {
        out_utf8(&tmp, ref->policy);
        if (!tmp.failed) {
            out_tlv(&body, DER_CTX0, tmp.p, tmp.len);
        }
        body.failed |= tmp.failed;
    }
    if (ref->n_servers > 0) {
        der_out seq = { 0 };

        for (size_t i = 0; i < ref->n_servers; i++) {
            out_utf8(&servers, ref->servers[i]);
        }
        if (!servers.failed) {
            out_tlv(&seq, DER_SEQUENCE, servers.p, servers.len);
        }
        if (!servers.failed && !seq.failed) {
            out_tlv(&body, DER_CTX1, seq.p, seq.len);
        }
        body.failed |= servers.failed | seq.failed;
        out_free(&seq);
    }
    if (!body.failed) {
        out_tlv(&all, DER_SEQUENCE, body.p, body.len);
    }
    if (body.failed || all.failed) {
        goto end;
    }
    *der = all.p;
    *len = all.len;
    all.p = NULL;
    ret = LURK_OK;

end:
    out_free(&body);
    out_free(&servers);
    out_free(&tmp);
    out_free(&all);
    return ret;
}

lurk_err lurk_keyref_decode_der(const unsigned char *der, size_t len, lurk_keyref *out)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    der_in in = { der, len };
    der_in seq;
    der_in field;
    der_in spki;
    char type_name[16];
    lurk_key_type spki_type = LURK_KEY_NONE;

    if (out == NULL || (der == NULL && len > 0)) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_keyref_init(out);
    /* One SEQUENCE and nothing after it. */
    if (!der_get(&in, DER_SEQUENCE, &seq, NULL) || in.len != 0) {
        goto end;
    }
    if (!der_get(&seq, DER_INTEGER, &field, NULL) || field.len != 1
        || field.p[0] != KEYREF_VERSION) {
        goto end;
    }
    if (!der_get_text(&seq, out->key_id, sizeof(out->key_id))
        || !der_get_text(&seq, type_name, sizeof(type_name))
        || !der_get(&seq, DER_SEQUENCE, NULL, &spki)) {
        goto end;
    }
    if (seq.len > 0 && seq.p[0] == DER_CTX0) {
        der_in inner;

        if (!der_get(&seq, DER_CTX0, &inner, NULL)
            || !der_get_text(&inner, out->policy, sizeof(out->policy)) || inner.len != 0
            || !valid_policy(out->policy)) {
            goto end;
        }
    }
    if (seq.len > 0 && seq.p[0] == DER_CTX1) {
        der_in inner;
        der_in list;
        char server[KEYREF_SERVER_MAX];

        if (!der_get(&seq, DER_CTX1, &inner, NULL) || !der_get(&inner, DER_SEQUENCE, &list, NULL)
            || inner.len != 0 || list.len == 0) {
            goto end;
        }
        while (list.len > 0) {
            if (out->n_servers >= LURK_KEYREF_MAX_SERVERS
                || !der_get_text(&list, server, sizeof(server)) || !valid_server(server)) {
                goto end;
            }
            out->servers[out->n_servers] = strdup(server);
            if (out->servers[out->n_servers] == NULL) {
                ret = LURK_ERR_NOMEM;
                goto end;
            }
            out->n_servers++;
        }
    }
    if (seq.len != 0) {
        goto end;
    }

    out->type = lurk_key_type_from_name(type_name);
    if (out->type == LURK_KEY_NONE || strcmp(lurk_key_type_name(out->type), type_name) != 0) {
        goto end;
    }
    ret = spki_key_type(spki.p, spki.len, &spki_type);
    if (ret != LURK_OK) {
        goto end;
    }
    /* The file's claims must be those of its public key. */
    ret = lurk_keyid_parse(out->key_id, &out->id);
    if (ret != LURK_OK) {
        goto end;
    }
    ret = lurk_keyid_check_spki(&out->id, spki.p, spki.len);
    if (ret != LURK_OK) {
        goto end;
    }
    if (spki_type != out->type) {
        ret = LURK_ERR_KEY_MISMATCH;
        goto end;
    }
    out->spki = malloc(spki.len);
    if (out->spki == NULL) {
        ret = LURK_ERR_NOMEM;
        goto end;
    }
    memcpy(out->spki, spki.p, spki.len);
    out->spki_len = spki.len;
    ret = LURK_OK;

end:
    if (ret != LURK_OK) {
        lurk_keyref_clear(out);
    }
    return ret;
}

/* ------------------------------------------------------------- PEM */

lurk_err lurk_keyref_encode_pem(const lurk_keyref *ref, char **pem, size_t *len)
{
    lurk_err ret = LURK_OK;
    unsigned char *der = NULL;
    size_t der_len = 0;
    BIO *bio = NULL;
    char *mem = NULL;
    long n = 0;

    if (pem == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    *pem = NULL;
    ret = lurk_keyref_encode_der(ref, &der, &der_len);
    if (ret != LURK_OK) {
        goto end;
    }
    ret = LURK_ERR_NOMEM;
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL
        || PEM_write_bio(bio, LURK_KEYREF_PEM_LABEL, "", der, (long)der_len) <= 0) {
        goto end;
    }
    n = BIO_get_mem_data(bio, &mem);
    if (n <= 0) {
        goto end;
    }
    *pem = malloc((size_t)n + 1);
    if (*pem == NULL) {
        goto end;
    }
    memcpy(*pem, mem, (size_t)n);
    (*pem)[n] = '\0';
    if (len != NULL) {
        *len = (size_t)n;
    }
    ret = LURK_OK;

end:
    BIO_free(bio);
    free(der);
    return ret;
}

lurk_err lurk_keyref_write_file(const lurk_keyref *ref, const char *path)
{
    lurk_err ret = LURK_OK;
    char *pem = NULL;
    char *tmp = NULL;
    size_t len = 0;
    size_t done = 0;
    int fd = -1;

    if (path == NULL || path[0] == '\0') {
        return LURK_ERR_INVALID_ARG;
    }
    ret = lurk_keyref_encode_pem(ref, &pem, &len);
    if (ret != LURK_OK) {
        goto end;
    }
    ret = LURK_ERR_IO;
    /* Same directory as the target, so that rename() is atomic. */
    if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0) {
        tmp = NULL;
        ret = LURK_ERR_NOMEM;
        goto end;
    }
    fd = mkstemp(tmp);
    if (fd < 0) {
        goto end;
    }
    /* The file holds no secret: readable by the web server's user. */
    if (fchmod(fd, 0644) != 0) {
        goto end;
    }
    while (done < len) {
        ssize_t n = write(fd, pem + done, len - done);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            goto end;
        }
        done += (size_t)n;
    }
    if (fsync(fd) != 0) {
        goto end;
    }
    if (close(fd) != 0) {
        fd = -1;
        goto end;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        goto end;
    }
    free(tmp);
    tmp = NULL;
    ret = LURK_OK;

end:
    if (fd >= 0) {
        close(fd);
    }
    if (tmp != NULL) {
        unlink(tmp);
        free(tmp);
    }
    free(pem);
    return ret;
}

/* The first LURK PRIVATE KEY block of `bio` (certificates may come before
 * it), decoded; ERR_set_mark'ed by the callers. */
static lurk_err keyref_read_bio(BIO *bio, lurk_keyref *out)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    char *name = NULL;
    char *header = NULL;
    unsigned char *data = NULL;
    long len = 0;

    /* Bounded: PEM_read_bio consumes input on every call. */
    for (;;) {
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = NULL;
        header = NULL;
        data = NULL;
        if (PEM_read_bio(bio, &name, &header, &data, &len) <= 0) {
            /* End of input without our block, or a broken block. */
            ret = LURK_ERR_INVALID_FORMAT;
            goto end;
        }
        if (strcmp(name, LURK_KEYREF_PEM_LABEL) == 0) {
            break;
        }
    }
    /* Our blocks are never encrypted: no PEM headers. */
    if (header != NULL && header[0] != '\0') {
        ret = LURK_ERR_INVALID_FORMAT;
        goto end;
    }
    ret = lurk_keyref_decode_der(data, (size_t)len, out);

end:
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    return ret;
}

lurk_err lurk_keyref_decode_pem(const char *pem, size_t len, lurk_keyref *out)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    BIO *bio = NULL;

    if (out == NULL || (pem == NULL && len > 0) || len > INT_MAX) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_keyref_init(out);
    ERR_set_mark();
    bio = BIO_new_mem_buf(len > 0 ? pem : "", (int) len);
    if (bio == NULL) {
        ret = LURK_ERR_NOMEM;
        goto end;
    }
    ret = keyref_read_bio(bio, out);

end:
    ERR_pop_to_mark();
    BIO_free(bio);
    return ret;
}

lurk_err lurk_keyref_read_file(const char *path, lurk_keyref *out)
{
    lurk_err ret = LURK_ERR_INVALID_FORMAT;
    BIO *bio = NULL;

    if (path == NULL || out == NULL) {
        return LURK_ERR_INVALID_ARG;
    }
    lurk_keyref_init(out);
    ERR_set_mark();
    bio = BIO_new_file(path, "r");
    if (bio == NULL) {
        ret = LURK_ERR_IO;
        goto end;
    }
    ret = keyref_read_bio(bio, out);

end:
    ERR_pop_to_mark();
    BIO_free(bio);
    return ret;
}
