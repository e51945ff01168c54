/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_proto.c - the wire codec: round trips of every request and response,
 * a table of rejected inputs (each must fail with the right code and name
 * the offending field in `why`), error replies and LurkResponse, limits,
 * and the hand-written encoder against the jansson one it replaced.
 *
 * JSON in the tables is written with single quotes for readability; the
 * test turns them into double quotes before decoding.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lurk_encoding.h"
#include "lurk_proto.h"

#define WHY_LEN 256

/* 32 and 31 zero bytes; 32 bytes with a non-zero unused bit. */
#define D32 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define D31 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define D32_BADBITS "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB"

#define SIGN "{'SignRequest':{'RequestId':'r1','KeyId':'K1',"
#define DECRYPT "{'DecryptRequest':{'RequestId':'r1','KeyId':'K1',"

/* Single quotes to double quotes (malloc'd). */
static char *dq(const char *s)
{
    char *out = strdup(s);

    ck_assert_ptr_nonnull(out);
    for (char *p = out; *p != '\0'; p++) {
        if (*p == '\'') {
            *p = '"';
        }
    }
    return out;
}

static void set_buf(lurk_buf *b, const char *bytes, size_t len)
{
    b->data = malloc(len > 0 ? len : 1);
    ck_assert_ptr_nonnull(b->data);
    memcpy(b->data, bytes, len);
    b->len = len;
}

static void assert_buf_eq(const lurk_buf *a, const lurk_buf *b)
{
    ck_assert((a->data == NULL) == (b->data == NULL));
    ck_assert_uint_eq(a->len, b->len);
    if (a->len > 0) {
        ck_assert_mem_eq(a->data, b->data, a->len);
    }
}

/* ----------------------------------------------------------- names */

START_TEST(test_names)
{
    static const char *const txs[] = {
        "Hello", "Ping", "PublicKey", "Sign", "Decrypt", "Agree", "Create", "Dispose",
    };
    static const struct {
        const char *name;
        lurk_md md;
    } mds[] = {
        { "sha256", LURK_MD_SHA256 }, { "SHA256", LURK_MD_SHA256 },
        { "SHA2-256", LURK_MD_SHA256 }, { "sha-256", LURK_MD_SHA256 },
        { "SHA-256", LURK_MD_SHA256 }, { "sha384", LURK_MD_SHA384 },
        { "SHA2-384", LURK_MD_SHA384 }, { "SHA-384", LURK_MD_SHA384 },
        { "sha512", LURK_MD_SHA512 }, { "SHA512", LURK_MD_SHA512 },
        { "SHA2-512", LURK_MD_SHA512 }, { "md5", LURK_MD_NONE },
        { "SHA512-256", LURK_MD_NONE }, { "sha1", LURK_MD_SHA1 }, { "SHA-1", LURK_MD_SHA1 },
        { "sha224", LURK_MD_SHA224 }, { "SHA2-224", LURK_MD_SHA224 }, { "", LURK_MD_NONE },
    };

    for (int i = 0; i < LURK_TX__COUNT; i++) {
        ck_assert_str_eq(lurk_tx_name((lurk_tx)i), txs[i]);
    }
    ck_assert_ptr_null(lurk_tx_name(LURK_TX__COUNT));
    for (size_t i = 0; i < sizeof(mds) / sizeof(mds[0]); i++) {
        ck_assert_msg(lurk_md_from_name(mds[i].name) == mds[i].md, "%s", mds[i].name);
    }
    ck_assert_int_eq(lurk_md_from_name(NULL), LURK_MD_NONE);
    ck_assert_str_eq(lurk_md_name(LURK_MD_SHA384), "sha384");
    ck_assert_uint_eq(lurk_md_size(LURK_MD_SHA256), 32);
    ck_assert_uint_eq(lurk_md_size(LURK_MD_SHA384), 48);
    ck_assert_uint_eq(lurk_md_size(LURK_MD_SHA512), 64);
    ck_assert_uint_eq(lurk_md_size(LURK_MD_SHA1), 20);
    ck_assert_uint_eq(lurk_md_size(LURK_MD_SHA224), 28);
    ck_assert_uint_eq(lurk_md_size(LURK_MD_NONE), 0);
    ck_assert(lurk_md_is_legacy(LURK_MD_SHA1) && lurk_md_is_legacy(LURK_MD_SHA224));
    ck_assert(!lurk_md_is_legacy(LURK_MD_SHA256) && !lurk_md_is_legacy(LURK_MD_NONE));
    /* one table for the codec, the provider and the key server */
    ck_assert_str_eq(lurk_md_ossl_name(LURK_MD_SHA256), "SHA2-256");
    ck_assert_str_eq(lurk_md_ossl_name(LURK_MD_SHA1), "SHA1");
    ck_assert_ptr_null(lurk_md_ossl_name(LURK_MD_NONE));
    ck_assert_int_eq(lurk_md_from_name("2.16.840.1.101.3.4.2.3"), LURK_MD_SHA512);
    ck_assert_int_eq(lurk_md_from_name("1.3.14.3.2.26"), LURK_MD_SHA1);
    for (int i = 1; i < LURK_MD__COUNT; i++) {
        ck_assert_int_eq(lurk_md_from_name(lurk_md_name((lurk_md)i)), i);
        ck_assert_int_eq(lurk_md_from_name(lurk_md_ossl_name((lurk_md)i)), i);
    }
    ck_assert_str_eq(lurk_sig_alg_name(LURK_SIG_RSA_PSS), "rsa-pss");
    ck_assert_int_eq(lurk_sig_alg_from_name("ecdsa"), LURK_SIG_ECDSA);
    ck_assert_int_eq(lurk_sig_alg_from_name("ed25519"), LURK_SIG_ED25519);
    ck_assert_int_eq(lurk_sig_alg_from_name("rsa-pkcs1"), LURK_SIG_RSA_PKCS1);
    ck_assert_int_eq(lurk_sig_alg_from_name("dsa"), LURK_SIG_NONE);
    ck_assert_ptr_null(lurk_sig_alg_name(LURK_SIG_NONE));
    ck_assert_str_eq(lurk_dec_mode_name(LURK_DEC_TLS_PREMASTER), "tls-premaster");
    ck_assert_int_eq(lurk_dec_mode_from_name("oaep"), LURK_DEC_OAEP);
    ck_assert_int_eq(lurk_dec_mode_from_name("raw"), LURK_DEC_NONE);
    ck_assert_str_eq(lurk_key_type_name(LURK_KEY_ED25519), "ED25519");
    ck_assert_int_eq(lurk_key_type_from_name("RSA"), LURK_KEY_RSA);
    ck_assert_int_eq(lurk_key_type_from_name("EC"), LURK_KEY_EC);
    ck_assert_int_eq(lurk_key_type_from_name("ED25519"), LURK_KEY_ED25519);
    ck_assert_int_eq(lurk_key_type_from_name("DSA"), LURK_KEY_NONE);
}
END_TEST


/* ---------------------------------------------------- request round trip */

static void build_request(int row, lurk_request *r)
{
    static const char digest48[48] = { 1, 2, 3 };
    static const char digest32[32] = { 9, 8, 7, 6 };

    lurk_request_init(r);
    snprintf(r->request_id, sizeof(r->request_id), "req-%d_X", row);
    snprintf(r->key_id, sizeof(r->key_id), "%s",
             "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO");
    switch (row) {
    case 0:
        r->type = LURK_TX_HELLO;
        r->key_id[0] = '\0';
        break;
    case 1:
        r->type = LURK_TX_PING;
        r->key_id[0] = '\0';
        break;
    case 2:
        r->type = LURK_TX_PUBLIC_KEY;
        break;
    case 3: /* TLS 1.3 CertificateVerify style: whole message */
        r->type = LURK_TX_SIGN;
        r->sig_alg = LURK_SIG_RSA_PSS;
        r->md = LURK_MD_SHA256;
        r->salt_len = 32;
        set_buf(&r->data, "TLS 1.3, server CertificateVerify", 33);
        break;
    case 4:
        r->type = LURK_TX_SIGN;
        r->sig_alg = LURK_SIG_RSA_PKCS1;
        r->md = LURK_MD_SHA384;
        set_buf(&r->digest, digest48, sizeof(digest48));
        break;
    case 5:
        r->type = LURK_TX_SIGN;
        r->sig_alg = LURK_SIG_ECDSA;
        r->md = LURK_MD_SHA256;
        set_buf(&r->digest, digest32, sizeof(digest32));
        break;
    case 6:
        r->type = LURK_TX_SIGN;
        r->sig_alg = LURK_SIG_ED25519;
        set_buf(&r->data, "", 0); /* an empty message is a message */
        break;
    case 7:
        r->type = LURK_TX_SIGN;
        r->sig_alg = LURK_SIG_RSA_PSS;
        r->md = LURK_MD_SHA512;
        r->salt_len = 0;
        set_buf(&r->data, "\x00\x01\xff", 3);
        break;
    case 8:
        r->type = LURK_TX_DECRYPT;
        r->dec_mode = LURK_DEC_TLS_PREMASTER;
        r->client_version = 0x0303;
        r->alt_version = 0x0302;
        set_buf(&r->ciphertext, "ciphertext\x00\x80", 12);
        break;
    case 9:
        r->type = LURK_TX_DECRYPT;
        r->dec_mode = LURK_DEC_TLS_PREMASTER;
        r->client_version = 0; /* in range, present */
        set_buf(&r->ciphertext, "c", 1);
        break;
    case 10:
        r->type = LURK_TX_DECRYPT;
        r->dec_mode = LURK_DEC_OAEP;
        r->oaep_md = LURK_MD_SHA256;
        set_buf(&r->label, "label", 5);
        set_buf(&r->ciphertext, "oaep-ct", 7);
        break;
    case 11:
        r->type = LURK_TX_DECRYPT;
        r->dec_mode = LURK_DEC_OAEP;
        r->oaep_md = LURK_MD_SHA512;
        set_buf(&r->ciphertext, "oaep-ct", 7);
        break;
    case 12:
        r->type = LURK_TX_AGREE;
        set_buf(&r->peer_key, "\x30\x59\x30\x13", 4);
        break;
    case 13:
        r->type = LURK_TX_CREATE;
        r->key_id[0] = '\0';
        r->key_type = LURK_KEY_EC;
        snprintf(r->policy, sizeof(r->policy), "tls-server");
        break;
    case 14:
        r->type = LURK_TX_DISPOSE;
        break;
    default:
        ck_abort_msg("no row %d", row);
    }
}

#define N_REQUEST_ROWS 15

START_TEST(test_request_round_trip)
{
    lurk_request in;
    lurk_request out;
    char *json = NULL;
    char *json2 = NULL;
    size_t len = 0;
    size_t len2 = 0;
    char why[WHY_LEN] = "unset";

    build_request(_i, &in);
    ck_assert_int_eq(lurk_proto_encode_request(&in, &json, &len), LURK_OK);
    ck_assert_uint_eq(strlen(json), len);
    ck_assert_int_eq(lurk_proto_decode_request(json, len, &out, why, sizeof(why)), LURK_OK);
    ck_assert_str_eq(why, "");

    ck_assert_int_eq(out.type, in.type);
    ck_assert_str_eq(out.request_id, in.request_id);
    ck_assert_str_eq(out.key_id, in.key_id);
    ck_assert_int_eq(out.sig_alg, in.sig_alg);
    ck_assert_int_eq(out.md, in.md);
    ck_assert_int_eq(out.salt_len, in.salt_len);
    assert_buf_eq(&out.data, &in.data);
    assert_buf_eq(&out.digest, &in.digest);
    ck_assert_int_eq(out.dec_mode, in.dec_mode);
    ck_assert_uint_eq(out.client_version, in.client_version);
    ck_assert_uint_eq(out.alt_version, in.alt_version);
    ck_assert_int_eq(out.oaep_md, in.oaep_md);
    assert_buf_eq(&out.label, &in.label);
    assert_buf_eq(&out.ciphertext, &in.ciphertext);
    assert_buf_eq(&out.peer_key, &in.peer_key);
    ck_assert_int_eq(out.key_type, in.key_type);
    ck_assert_str_eq(out.policy, in.policy);

    /* Encoding is deterministic: the decoded struct encodes to the same text. */
    ck_assert_int_eq(lurk_proto_encode_request(&out, &json2, &len2), LURK_OK);
    ck_assert_str_eq(json, json2);

    free(json);
    free(json2);
    lurk_request_clear(&in);
    lurk_request_clear(&out);
    ck_assert_ptr_null(out.data.data);
    ck_assert_int_eq(out.salt_len, -1);
}
END_TEST

/* The wire form of one request, checked member by member. */
START_TEST(test_request_wire_form)
{
    lurk_request r;
    char *json = NULL;
    char *expect = dq("{'SignRequest':{'RequestId':'req-5_X','KeyId':"
                      "'AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO',"
                      "'Algorithm':'ecdsa','DigestAlg':'sha256',"
                      "'Digest':'CQgHBgAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}}");

    build_request(5, &r);
    ck_assert_int_eq(lurk_proto_encode_request(&r, &json, NULL), LURK_OK);
    ck_assert_str_eq(json, expect);
    free(json);
    free(expect);
    lurk_request_clear(&r);
}
END_TEST

/* Members in any order, whitespace between tokens: still the same request. */
START_TEST(test_request_accepts)
{
    static const char *const ok[] = {
        "{ 'SignRequest' : {\n  'Digest' : '" D32 "',\n  'DigestAlg':'sha256',"
        " 'Algorithm':'ecdsa', 'KeyId':'K1', 'RequestId':'r1' } }\n",
        DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':771,'AltVersion':0}}",
        SIGN "'Algorithm':'ed25519','Data':''}}",
        "{'PingRequest':{'RequestId':'" "0123456789012345678901234567890123456789012345678901"
        "23456789-_ab'}}",
    };
    lurk_request r;
    char why[WHY_LEN];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *json = dq(ok[i]);

        ck_assert_msg(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why))
                          == LURK_OK,
                      "row %zu: %s", i, why);
        lurk_request_clear(&r);
        free(json);
    }
}
END_TEST

/* ------------------------------------------------ rejected requests */

static const struct {
    const char *json;
    lurk_err err;
    const char *field; /* must appear in `why` */
} bad_requests[] = {
    /* Not JSON, or not one message. */
    { "", LURK_ERR_INVALID_FORMAT, "message" },
    { "{", LURK_ERR_INVALID_FORMAT, "message" },
    { "[]", LURK_ERR_INVALID_FORMAT, "message" },
    { "{}", LURK_ERR_INVALID_FORMAT, "message" },
    { "{'PingRequest':{'RequestId':'a'}} x", LURK_ERR_INVALID_FORMAT, "message" },
    { "{'PingRequest':{'RequestId':'a'},'HelloRequest':{'RequestId':'b'}}",
      LURK_ERR_INVALID_FORMAT, "message" },
    { "{'PingRequest':{'RequestId':'a\\u0000'}}", LURK_ERR_INVALID_FORMAT, "message" },
    { "{'FooRequest':{'RequestId':'a'}}", LURK_ERR_INVALID_FORMAT, "FooRequest" },
    { "{'PingResponse':{'RequestId':'a','Status':200}}", LURK_ERR_INVALID_FORMAT,
      "PingResponse" },
    { "{'pingRequest':{'RequestId':'a'}}", LURK_ERR_INVALID_FORMAT, "pingRequest" },
    { "{'PingRequest':[]}", LURK_ERR_INVALID_FORMAT, "PingRequest" },
    { "{'PingRequest':null}", LURK_ERR_INVALID_FORMAT, "PingRequest" },
    /* RequestId */
    { "{'PingRequest':{}}", LURK_ERR_INVALID_FORMAT, "PingRequest.RequestId" },
    { "{'PingRequest':{'RequestId':''}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':'a b'}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':'a/b'}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':'caf\\u00e9'}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':'012345678901234567890123456789012345678901234567890123456789"
      "01234'}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':5}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':{'a':1}}}", LURK_ERR_INVALID_FORMAT, "RequestId" },
    { "{'PingRequest':{'RequestId':'a','RequestId':'b'}}", LURK_ERR_INVALID_FORMAT,
      "RequestId" },
    /* Unknown members */
    { "{'PingRequest':{'RequestId':'a','Foo':1}}", LURK_ERR_INVALID_FORMAT, "PingRequest.Foo" },
    { "{'PingRequest':{'RequestId':'a','KeyId':'K'}}", LURK_ERR_INVALID_FORMAT, "KeyId" },
    { "{'HelloRequest':{'RequestId':'a','Status':200}}", LURK_ERR_INVALID_FORMAT, "Status" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D32 "','digest':'x'}}",
      LURK_ERR_INVALID_FORMAT, "digest" },
    /* KeyId */
    { "{'PublicKeyRequest':{'RequestId':'a'}}", LURK_ERR_INVALID_FORMAT, "KeyId" },
    { "{'PublicKeyRequest':{'RequestId':'a','KeyId':''}}", LURK_ERR_INVALID_FORMAT, "KeyId" },
    { "{'PublicKeyRequest':{'RequestId':'a','KeyId':'K.1'}}", LURK_ERR_INVALID_FORMAT, "KeyId" },
    { "{'PublicKeyRequest':{'RequestId':'a','KeyId':'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
      "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}}",
      LURK_ERR_INVALID_FORMAT, "KeyId" },
    { "{'DisposeRequest':{'RequestId':'a','KeyId':null}}", LURK_ERR_INVALID_FORMAT, "KeyId" },
    /* Sign */
    { SIGN "'DigestAlg':'sha256','Digest':'" D32 "'}}", LURK_ERR_INVALID_FORMAT, "Algorithm" },
    { SIGN "'Algorithm':1,'DigestAlg':'sha256','Digest':'" D32 "'}}", LURK_ERR_INVALID_FORMAT,
      "SignRequest.Algorithm" },
    { SIGN "'Algorithm':'rsa','DigestAlg':'sha256','Digest':'" D32 "'}}",
      LURK_ERR_NOT_ACCEPTABLE, "Algorithm" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'md5','Digest':'" D32 "'}}",
      LURK_ERR_NOT_ACCEPTABLE, "DigestAlg" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'SHA256','Digest':'" D32 "'}}",
      LURK_ERR_NOT_ACCEPTABLE, "DigestAlg" },
    { SIGN "'Algorithm':'ecdsa','Digest':'" D32 "'}}", LURK_ERR_INVALID_FORMAT, "DigestAlg" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D32 "','Data':'AA'}}",
      LURK_ERR_INVALID_FORMAT, "Data" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256'}}", LURK_ERR_INVALID_FORMAT, "Data" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D31 "'}}",
      LURK_ERR_INVALID_FORMAT, "Digest" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha384','Digest':'" D32 "'}}",
      LURK_ERR_INVALID_FORMAT, "Digest" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D32_BADBITS "'}}",
      LURK_ERR_INVALID_FORMAT, "Digest" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D32 "='}}",
      LURK_ERR_INVALID_FORMAT, "Digest" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Data':'ab+/'}}",
      LURK_ERR_INVALID_FORMAT, "Data" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Data':'ab cd'}}",
      LURK_ERR_INVALID_FORMAT, "Data" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Data':['AA']}}",
      LURK_ERR_INVALID_FORMAT, "Data" },
    { SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D32 "','SaltLength':32}}",
      LURK_ERR_INVALID_FORMAT, "SaltLength" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32 "'}}",
      LURK_ERR_INVALID_FORMAT, "SaltLength" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32 "','SaltLength':'32'}}",
      LURK_ERR_INVALID_FORMAT, "SignRequest.SaltLength: expected an integer" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32 "','SaltLength':32.0}}",
      LURK_ERR_INVALID_FORMAT, "SignRequest.SaltLength: expected an integer" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32 "','SaltLength':-1}}",
      LURK_ERR_INVALID_FORMAT, "SaltLength" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32 "','SaltLength':true}}",
      LURK_ERR_INVALID_FORMAT, "SaltLength" },
    { SIGN "'Algorithm':'rsa-pss','DigestAlg':'sha256','Digest':'" D32
      "','SaltLength':99999999999999999999999}}", LURK_ERR_INVALID_FORMAT, "message" },
    { SIGN "'Algorithm':'ed25519','DigestAlg':'sha256','Data':'AA'}}", LURK_ERR_INVALID_FORMAT,
      "DigestAlg" },
    { SIGN "'Algorithm':'ed25519','Digest':'" D32 "'}}", LURK_ERR_INVALID_FORMAT, "Digest" },
    /* Decrypt */
    { DECRYPT "'Data':'AA','ClientVersion':771}}", LURK_ERR_INVALID_FORMAT, "Mode" },
    { DECRYPT "'Mode':'raw','Data':'AA'}}", LURK_ERR_NOT_ACCEPTABLE, "Mode" },
    { DECRYPT "'Mode':'tls-premaster','ClientVersion':771}}", LURK_ERR_INVALID_FORMAT, "Data" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA'}}", LURK_ERR_INVALID_FORMAT, "ClientVersion" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':65536}}",
      LURK_ERR_INVALID_FORMAT, "ClientVersion" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':'0303'}}",
      LURK_ERR_INVALID_FORMAT, "ClientVersion" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':771,'AltVersion':-2}}",
      LURK_ERR_INVALID_FORMAT, "AltVersion" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':771,'Label':'AA'}}",
      LURK_ERR_INVALID_FORMAT, "Label" },
    { DECRYPT "'Mode':'tls-premaster','Data':'AA','ClientVersion':771,'OaepDigest':'sha256'}}",
      LURK_ERR_INVALID_FORMAT, "OaepDigest" },
    { DECRYPT "'Mode':'oaep','Data':'AA'}}", LURK_ERR_INVALID_FORMAT, "OaepDigest" },
    { DECRYPT "'Mode':'oaep','Data':'AA','OaepDigest':'sha256','ClientVersion':771}}",
      LURK_ERR_INVALID_FORMAT, "ClientVersion" },
    { DECRYPT "'Mode':'oaep','Data':'AA','OaepDigest':'md5'}}", LURK_ERR_NOT_ACCEPTABLE,
      "OaepDigest" },
    /* Agree, Create */
    { "{'AgreeRequest':{'RequestId':'a','KeyId':'K'}}", LURK_ERR_INVALID_FORMAT, "PeerKey" },
    { "{'AgreeRequest':{'RequestId':'a','KeyId':'K','PeerKey':null}}", LURK_ERR_INVALID_FORMAT,
      "PeerKey" },
    { "{'CreateRequest':{'RequestId':'a','KeyType':'DSA','Policy':'sign'}}",
      LURK_ERR_NOT_ACCEPTABLE, "KeyType" },
    { "{'CreateRequest':{'RequestId':'a','KeyType':'RSA','Policy':'TLS server'}}",
      LURK_ERR_INVALID_FORMAT, "Policy" },
    { "{'CreateRequest':{'RequestId':'a','KeyType':'RSA'}}", LURK_ERR_INVALID_FORMAT, "Policy" },
};

#define N_BAD_REQUESTS (sizeof(bad_requests) / sizeof(bad_requests[0]))

START_TEST(test_request_reject)
{
    char *json = dq(bad_requests[_i].json);
    lurk_request r;
    char why[WHY_LEN] = "";
    lurk_err err = lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why));

    ck_assert_msg(err == bad_requests[_i].err, "row %d (%s): got %s, why \"%s\"", _i, json,
                  lurk_err_name(err), why);
    ck_assert_msg(strstr(why, bad_requests[_i].field) != NULL,
                  "row %d (%s): why \"%s\" does not name \"%s\"", _i, json, why,
                  bad_requests[_i].field);
    /* Nothing owned is left behind on failure. */
    ck_assert_ptr_null(r.data.data);
    ck_assert_ptr_null(r.digest.data);
    ck_assert_ptr_null(r.ciphertext.data);
    free(json);
}
END_TEST

/* What a server needs for its error reply survives a failed decode. */
START_TEST(test_request_reject_keeps_id)
{
    char *json = dq(SIGN "'Algorithm':'ecdsa','DigestAlg':'sha256','Digest':'" D31 "'}}");
    lurk_request r;
    char why[WHY_LEN];

    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(r.type, LURK_TX_SIGN);
    ck_assert_str_eq(r.request_id, "r1");
    free(json);

    json = dq("{'SignRequest':{'RequestId':'bad id'}}");
    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(r.type, LURK_TX_SIGN);
    ck_assert_str_eq(r.request_id, "");
    free(json);

    json = dq("{'NopeRequest':{'RequestId':'x'}}");
    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(r.type, LURK_TX__COUNT);
    free(json);
}
END_TEST

/* `why` quotes input (member names) but stays printable ASCII, so that a
 * server can put it in StatusDescription and a log line as it is. */
START_TEST(test_why_printable)
{
    char *json = dq("{'PingRequest':{'RequestId':'a','caf\\u00e9\\n\\u0001':1}}");
    lurk_request r;
    char why[LURK_DESCRIPTION_MAX + 1];

    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_ptr_nonnull(strstr(why, "PingRequest.caf"));
    for (const char *p = why; *p != '\0'; p++) {
        ck_assert_msg((unsigned char)*p >= 0x20 && (unsigned char)*p < 0x7f, "why: %s", why);
    }
    free(json);
}
END_TEST

/* ----------------------------------------------------------- limits */

static char *sign_with_data(size_t nbytes, size_t pad)
{
    size_t n = lurk_b64url_encoded_len(nbytes);
    size_t cap = n + pad + 256;
    char *json = malloc(cap);
    size_t off = 0;

    ck_assert_ptr_nonnull(json);
    off = (size_t)snprintf(json, cap,
                           "{\"SignRequest\":{\"RequestId\":\"r\",\"KeyId\":\"K\","
                           "\"Algorithm\":\"ed25519\",\"Data\":\"");
    memset(json + off, 'A', n);
    off += n;
    memset(json + off, ' ', pad);
    off += pad;
    snprintf(json + off, cap - off, "\"}}");
    return json;
}

START_TEST(test_limits)
{
    lurk_request r;
    char why[WHY_LEN];
    char *json = NULL;
    lurk_request big;
    char *enc = NULL;

    /* Exactly LURK_MAX_DATA bytes: accepted. */
    json = sign_with_data(LURK_MAX_DATA, 0);
    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)), LURK_OK);
    ck_assert_uint_eq(r.data.len, LURK_MAX_DATA);
    lurk_request_clear(&r);
    free(json);

    /* One byte more: 413. */
    json = sign_with_data(LURK_MAX_DATA + 1, 0);
    ck_assert_int_eq(lurk_proto_decode_request(json, strlen(json), &r, why, sizeof(why)),
                     LURK_ERR_TOO_LARGE);
    ck_assert_ptr_nonnull(strstr(why, "SignRequest.Data"));
    free(json);

    /* A message over LURK_MAX_MESSAGE bytes (whitespace padding): 413. */
    json = sign_with_data(4, 0);
    {
        size_t n = strlen(json);
        char *pad = malloc(LURK_MAX_MESSAGE + 16);

        ck_assert_ptr_nonnull(pad);
        memset(pad, ' ', LURK_MAX_MESSAGE + 16);
        memcpy(pad, json, n);
        ck_assert_int_eq(lurk_proto_decode_request(pad, LURK_MAX_MESSAGE + 1, &r, why,
                                                   sizeof(why)),
                         LURK_ERR_TOO_LARGE);
        ck_assert_ptr_nonnull(strstr(why, "message"));
        /* The same bytes within the limit are fine (trailing whitespace). */
        ck_assert_int_eq(lurk_proto_decode_request(pad, LURK_MAX_MESSAGE, &r, why, sizeof(why)),
                         LURK_OK);
        lurk_request_clear(&r);
        free(pad);
    }
    free(json);

    /* The encoder refuses what the decoder would refuse. */
    lurk_request_init(&big);
    big.type = LURK_TX_SIGN;
    snprintf(big.request_id, sizeof(big.request_id), "r");
    snprintf(big.key_id, sizeof(big.key_id), "K");
    big.sig_alg = LURK_SIG_ED25519;
    big.data.data = calloc(1, LURK_MAX_DATA + 1);
    big.data.len = LURK_MAX_DATA + 1;
    ck_assert_int_ne(lurk_proto_encode_request(&big, &enc, NULL), LURK_OK);
    ck_assert_ptr_null(enc);
    lurk_request_clear(&big);
}
END_TEST

/* Structures that break a rule are not encoded. */
START_TEST(test_encode_rejects)
{
    lurk_request r;
    char *json = NULL;

    for (int row = 0; row < 8; row++) {
        build_request(5, &r); /* a valid ecdsa Sign */
        switch (row) {
        case 0:
            r.request_id[0] = '\0';
            break;
        case 1:
            snprintf(r.request_id, sizeof(r.request_id), "has space");
            break;
        case 2:
            set_buf(&r.data, "x", 1); /* both Data and Digest */
            break;
        case 3:
            r.md = LURK_MD_SHA512; /* digest length no longer matches */
            break;
        case 4:
            r.salt_len = 20; /* not rsa-pss */
            break;
        case 5:
            r.key_id[0] = '\0';
            break;
        case 6:
            r.type = LURK_TX__COUNT;
            break;
        case 7:
            r.sig_alg = LURK_SIG_NONE;
            break;
        default:
            break;
        }
        ck_assert_msg(lurk_proto_encode_request(&r, &json, NULL) == LURK_ERR_INVALID_ARG,
                      "row %d", row);
        ck_assert_ptr_null(json);
        lurk_request_clear(&r);
    }
}
END_TEST

/* ----------------------------------------------- response round trip */

static void build_response(int row, lurk_response *r)
{
    lurk_response_init(r);
    snprintf(r->request_id, sizeof(r->request_id), "resp-%d", row);
    r->status = 200;
    switch (row) {
    case 0:
        r->type = LURK_TX_HELLO;
        r->hello.transactions = (1u << LURK_TX_HELLO) | (1u << LURK_TX_PING)
                                | (1u << LURK_TX_PUBLIC_KEY) | (1u << LURK_TX_SIGN)
                                | (1u << LURK_TX_DECRYPT) | (1u << LURK_TX_AGREE);
        r->hello.sig_algs = (1u << LURK_SIG_RSA_PKCS1) | (1u << LURK_SIG_RSA_PSS)
                            | (1u << LURK_SIG_ECDSA) | (1u << LURK_SIG_ED25519);
        r->hello.dec_modes = (1u << LURK_DEC_TLS_PREMASTER) | (1u << LURK_DEC_OAEP);
        r->hello.digests = (1u << LURK_MD_SHA256) | (1u << LURK_MD_SHA384)
                           | (1u << LURK_MD_SHA512);
        r->hello.key_types = (1u << LURK_KEY_RSA) | (1u << LURK_KEY_EC);
        set_buf(&r->state, "0123456789abcdef", 16);
        snprintf(r->description, sizeof(r->description), "OK");
        break;
    case 1:
        r->type = LURK_TX_PING;
        set_buf(&r->state, "01234567890123456789012345678901", 32);
        break;
    case 2:
        r->type = LURK_TX_PUBLIC_KEY;
        r->key_type = LURK_KEY_RSA;
        snprintf(r->policy, sizeof(r->policy), "tls-server");
        set_buf(&r->spki, "\x30\x82\x01\x22", 4);
        break;
    case 3:
        r->type = LURK_TX_SIGN;
        set_buf(&r->value, "\x30\x45\x02\x21\x00", 5);
        break;
    case 4:
        r->type = LURK_TX_DECRYPT;
        set_buf(&r->value, "premaster premaster premaster premaster premaste", 48);
        break;
    case 5:
        r->type = LURK_TX_AGREE;
        set_buf(&r->value, "shared", 6);
        break;
    case 6: /* an error reply: common members only */
        r->type = LURK_TX_SIGN;
        r->status = 403;
        snprintf(r->description, sizeof(r->description), "policy tls-server: not a TLS input");
        set_buf(&r->state, "st", 2);
        break;
    case 7:
        r->type = LURK_TX_DECRYPT;
        r->status = 429;
        r->retry_after_ms = 250;
        break;
    case 8: /* undecodable request: no RequestId */
        r->type = LURK_TX__COUNT;
        r->request_id[0] = '\0';
        r->status = 400;
        snprintf(r->description, sizeof(r->description), "message: invalid JSON");
        break;
    case 9:
        r->type = LURK_TX_CREATE;
        r->status = 406;
        break;
    case 10:
        r->type = LURK_TX_PUBLIC_KEY;
        r->status = 503;
        r->retry_after_ms = 1000;
        break;
    case 11:
        r->type = LURK_TX_SIGN;
        r->status = 400;
        r->request_id[0] = '\0'; /* the RequestId itself was bad */
        break;
    default:
        ck_abort_msg("no row %d", row);
    }
}

#define N_RESPONSE_ROWS 12

START_TEST(test_response_round_trip)
{
    lurk_response in;
    lurk_response out;
    char *json = NULL;
    char *json2 = NULL;
    size_t len = 0;
    char why[WHY_LEN] = "unset";

    build_response(_i, &in);
    ck_assert_int_eq(lurk_proto_encode_response(&in, &json, &len), LURK_OK);
    ck_assert_uint_eq(strlen(json), len);
    ck_assert_msg(lurk_proto_decode_response(json, len, in.type, &out, why, sizeof(why))
                      == LURK_OK,
                  "%s: %s", json, why);
    ck_assert_str_eq(why, "");
    ck_assert_int_eq(out.type, in.type);
    ck_assert_str_eq(out.request_id, in.request_id);
    ck_assert_int_eq(out.status, in.status);
    ck_assert_str_eq(out.description, in.description);
    ck_assert_uint_eq(out.retry_after_ms, in.retry_after_ms);
    assert_buf_eq(&out.state, &in.state);
    if (in.type == LURK_TX_HELLO) {
        ck_assert_uint_eq(out.hello.major, LURK_PROTO_VERSION_MAJOR);
        ck_assert_uint_eq(out.hello.minor, LURK_PROTO_VERSION_MINOR);
        ck_assert_uint_eq(out.hello.transactions, in.hello.transactions);
        ck_assert_uint_eq(out.hello.sig_algs, in.hello.sig_algs);
        ck_assert_uint_eq(out.hello.dec_modes, in.hello.dec_modes);
        ck_assert_uint_eq(out.hello.digests, in.hello.digests);
        ck_assert_uint_eq(out.hello.key_types, in.hello.key_types);
    }
    ck_assert_int_eq(out.key_type, in.key_type);
    ck_assert_str_eq(out.policy, in.policy);
    assert_buf_eq(&out.spki, &in.spki);
    assert_buf_eq(&out.value, &in.value);

    /* Decoding with no expectation gives the same result. */
    lurk_response_clear(&out);
    ck_assert_int_eq(lurk_proto_decode_response(json, len, LURK_TX__COUNT, &out, why, sizeof(why)),
                     LURK_OK);
    ck_assert_int_eq(out.type, in.type);
    ck_assert_int_eq(lurk_proto_encode_response(&out, &json2, NULL), LURK_OK);
    ck_assert_str_eq(json, json2);

    free(json);
    free(json2);
    lurk_response_clear(&in);
    lurk_response_clear(&out);
    ck_assert_ptr_null(out.value.data);
}
END_TEST

START_TEST(test_response_wire_form)
{
    static const struct {
        int row;
        const char *json;
    } forms[] = {
        { 1, "{'PingResponse':{'RequestId':'resp-1','Status':200,"
             "'State':'MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE'}}" },
        { 7, "{'DecryptResponse':{'RequestId':'resp-7','Status':429,'RetryAfter':250}}" },
        { 8, "{'LurkResponse':{'Status':400,'StatusDescription':'message: invalid JSON'}}" },
        { 0, "{'HelloResponse':{'RequestId':'resp-0','Status':200,'StatusDescription':'OK',"
             "'State':'MDEyMzQ1Njc4OWFiY2RlZg',"
             "'Version':{'Major':1,'Minor':0,'Encodings':[{'ID':'application/json'}]},"
             "'Transactions':['Hello','Ping','PublicKey','Sign','Decrypt','Agree'],"
             "'Algorithms':['rsa-pkcs1','rsa-pss','ecdsa','ed25519'],"
             "'DecryptModes':['tls-premaster','oaep'],"
             "'Digests':['sha256','sha384','sha512'],"
             "'KeyTypes':['RSA','EC']}}" },
    };

    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        lurk_response r;
        char *json = NULL;
        char *expect = dq(forms[i].json);

        build_response(forms[i].row, &r);
        ck_assert_int_eq(lurk_proto_encode_response(&r, &json, NULL), LURK_OK);
        ck_assert_str_eq(json, expect);
        free(json);
        free(expect);
        lurk_response_clear(&r);
    }
}
END_TEST

/* A newer server may announce names this client does not know. */
START_TEST(test_hello_forward_compat)
{
    char *json = dq("{'HelloResponse':{'RequestId':'h','Status':200,"
                    "'Version':{'Major':1,'Minor':3,'Encodings':[{'ID':'application/cbor'},"
                    "{'ID':'application/json'}]},"
                    "'Transactions':['Hello','Sign','Rekey'],"
                    "'Algorithms':['ecdsa','ml-dsa-65'],'DecryptModes':[],"
                    "'Digests':['sha256','sha3-256'],'KeyTypes':['EC','ML-DSA']}}");
    lurk_response r;
    char why[WHY_LEN];

    ck_assert_int_eq(lurk_proto_decode_response(json, strlen(json), LURK_TX_HELLO, &r, why,
                                                sizeof(why)),
                     LURK_OK);
    ck_assert_uint_eq(r.hello.minor, 3);
    ck_assert_uint_eq(r.hello.transactions, (1u << LURK_TX_HELLO) | (1u << LURK_TX_SIGN));
    ck_assert_uint_eq(r.hello.sig_algs, 1u << LURK_SIG_ECDSA);
    ck_assert_uint_eq(r.hello.dec_modes, 0);
    ck_assert_uint_eq(r.hello.digests, 1u << LURK_MD_SHA256);
    ck_assert_uint_eq(r.hello.key_types, 1u << LURK_KEY_EC);
    lurk_response_clear(&r);
    free(json);
}
END_TEST

/* Error replies: accepted under the expected name or as LurkResponse. */
START_TEST(test_response_errors)
{
    static const struct {
        const char *json;
        lurk_tx type;
        int status;
    } ok[] = {
        { "{'SignResponse':{'RequestId':'a','Status':404,'StatusDescription':'no such key'}}",
          LURK_TX_SIGN, 404 },
        { "{'SignResponse':{'Status':400,'StatusDescription':'SignRequest.RequestId: bad'}}",
          LURK_TX_SIGN, 400 },
        { "{'LurkResponse':{'Status':400}}", LURK_TX__COUNT, 400 },
        { "{'LurkResponse':{'RequestId':'a','Status':413,'State':'AAAA'}}", LURK_TX__COUNT, 413 },
        { "{'SignResponse':{'RequestId':'a','Status':503,'RetryAfter':0}}", LURK_TX_SIGN, 503 },
        { "{'SignResponse':{'RequestId':'a','Status':401}}", LURK_TX_SIGN, 401 },
    };
    lurk_response r;
    char why[WHY_LEN];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        char *json = dq(ok[i].json);

        ck_assert_msg(lurk_proto_decode_response(json, strlen(json), LURK_TX_SIGN, &r, why,
                                                 sizeof(why))
                          == LURK_OK,
                      "row %zu: %s", i, why);
        ck_assert_int_eq(r.type, ok[i].type);
        ck_assert_int_eq(r.status, ok[i].status);
        ck_assert_int_eq(lurk_err_from_status(r.status) != LURK_OK, 1);
        lurk_response_clear(&r);
        free(json);
    }
}
END_TEST

static const struct {
    const char *json;
    lurk_tx expected;
    const char *field;
} bad_responses[] = {
    { "{'PingResponse':{'RequestId':'a','Status':200}}", LURK_TX_SIGN, "PingResponse" },
    { "{'SignRequest':{'RequestId':'a','Status':200}}", LURK_TX_SIGN, "SignRequest" },
    { "{'SignResponse':{'RequestId':'a','Status':403,'Value':'AA'}}", LURK_TX_SIGN,
      "SignResponse.Value" },
    { "{'LurkResponse':{'RequestId':'a','Status':200}}", LURK_TX_SIGN, "LurkResponse.Status" },
    { "{'LurkResponse':{'Status':400,'Value':'AA'}}", LURK_TX_SIGN, "Value" },
    { "{'SignResponse':{'RequestId':'a','Status':400,'RetryAfter':10}}", LURK_TX_SIGN,
      "RetryAfter" },
    { "{'SignResponse':{'RequestId':'a','Status':429,'RetryAfter':1.5}}", LURK_TX_SIGN,
      "RetryAfter" },
    { "{'SignResponse':{'RequestId':'a','Status':200,'Value':'AA','State':'AA'}}", LURK_TX_SIGN,
      "State" },
    { "{'SignResponse':{'RequestId':'a','Status':200}}", LURK_TX_SIGN, "Value" },
    { "{'SignResponse':{'Status':200,'Value':'AA'}}", LURK_TX_SIGN, "RequestId" },
    { "{'SignResponse':{'RequestId':'a','Status':'200','Value':'AA'}}", LURK_TX_SIGN, "Status" },
    { "{'SignResponse':{'RequestId':'a','Value':'AA'}}", LURK_TX_SIGN, "Status" },
    { "{'SignResponse':{'RequestId':'a','Status':99}}", LURK_TX_SIGN, "Status" },
    { "{'SignResponse':{'RequestId':'a','Status':200,'Value':'A'}}", LURK_TX_SIGN, "Value" },
    { "{'SignResponse':{'RequestId':'a','Status':200,'Value':'AA','Extra':1}}", LURK_TX_SIGN,
      "Extra" },
    { "{'SignResponse':{'RequestId':'a','Status':500,'StatusDescription':'line\\nbreak'}}",
      LURK_TX_SIGN, "StatusDescription" },
    { "{'SignResponse':{'RequestId':'a','Status':500,'StatusDescription':5}}", LURK_TX_SIGN,
      "StatusDescription" },
    { "{'PingResponse':{'RequestId':'a','Status':200,'State':"
      "'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'}}", LURK_TX_PING, "State" },
    { "{'PublicKeyResponse':{'RequestId':'a','Status':200,'KeyType':'DSA','Policy':'sign',"
      "'PublicKey':'AA'}}", LURK_TX_PUBLIC_KEY, "KeyType" },
    { "{'PublicKeyResponse':{'RequestId':'a','Status':200,'KeyType':'EC','PublicKey':'AA'}}",
      LURK_TX_PUBLIC_KEY, "Policy" },
    { "{'HelloResponse':{'RequestId':'a','Status':200,'Transactions':[],'Algorithms':[],"
      "'DecryptModes':[],'Digests':[],'KeyTypes':[]}}", LURK_TX_HELLO, "Version" },
    { "{'HelloResponse':{'RequestId':'a','Status':200,'Version':{'Major':1,'Minor':0,"
      "'Encodings':[]},'Transactions':[],'Algorithms':[1],'DecryptModes':[],'Digests':[],"
      "'KeyTypes':[]}}", LURK_TX_HELLO, "Algorithms" },
    { "{'HelloResponse':{'RequestId':'a','Status':200,'Version':{'Major':1,'Minor':0,"
      "'Encodings':[]},'Algorithms':[],'DecryptModes':[],'Digests':[],'KeyTypes':[]}}",
      LURK_TX_HELLO, "Transactions" },
};

START_TEST(test_response_reject)
{
    char *json = dq(bad_responses[_i].json);
    lurk_response r;
    char why[WHY_LEN] = "";
    lurk_err err = lurk_proto_decode_response(json, strlen(json), bad_responses[_i].expected,
                                              &r, why, sizeof(why));

    ck_assert_msg(err == LURK_ERR_INVALID_FORMAT, "row %d (%s): got %s, why \"%s\"", _i, json,
                  lurk_err_name(err), why);
    ck_assert_msg(strstr(why, bad_responses[_i].field) != NULL,
                  "row %d (%s): why \"%s\" does not name \"%s\"", _i, json, why,
                  bad_responses[_i].field);
    ck_assert_ptr_null(r.value.data);
    free(json);
}
END_TEST

START_TEST(test_response_description_limit)
{
    char json[600];
    char desc[300];
    lurk_response r;
    char why[WHY_LEN];

    memset(desc, 'd', 256);
    desc[256] = '\0';
    snprintf(json, sizeof(json),
             "{\"SignResponse\":{\"RequestId\":\"a\",\"Status\":500,\"StatusDescription\":\"%s\"}}",
             desc);
    ck_assert_int_eq(lurk_proto_decode_response(json, strlen(json), LURK_TX_SIGN, &r, why,
                                                sizeof(why)),
                     LURK_OK);
    ck_assert_uint_eq(strlen(r.description), 256);
    lurk_response_clear(&r);
    desc[256] = 'd';
    desc[257] = '\0';
    snprintf(json, sizeof(json),
             "{\"SignResponse\":{\"RequestId\":\"a\",\"Status\":500,\"StatusDescription\":\"%s\"}}",
             desc);
    ck_assert_int_eq(lurk_proto_decode_response(json, strlen(json), LURK_TX_SIGN, &r, why,
                                                sizeof(why)),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_ptr_nonnull(strstr(why, "StatusDescription"));
}
END_TEST

START_TEST(test_response_encode_rejects)
{
    lurk_response r;
    char *json = NULL;

    for (int row = 0; row < 6; row++) {
        build_response(3, &r); /* a valid SignResponse */
        switch (row) {
        case 0:
            r.status = 0;
            break;
        case 1:
            free(r.value.data);
            r.value.data = NULL;
            r.value.len = 0;
            break;
        case 2:
            set_buf(&r.state, "s", 1); /* State not allowed in a 200 Sign */
            break;
        case 3:
            r.type = LURK_TX__COUNT; /* LurkResponse with 200 */
            break;
        case 4:
            r.request_id[0] = '\0'; /* 200 without RequestId */
            break;
        case 5:
            snprintf(r.description, sizeof(r.description), "two\nlines");
            break;
        default:
            break;
        }
        ck_assert_msg(lurk_proto_encode_response(&r, &json, NULL) == LURK_ERR_INVALID_ARG,
                      "row %d", row);
        ck_assert_ptr_null(json);
        lurk_response_clear(&r);
    }
}
END_TEST

/* --------------------------------------- the writer against json_dumps */

/*
 * The encoders write JSON by hand; before they did, jansson built a tree
 * and json_dumps(JSON_COMPACT) wrote it.  This reference encoder is that
 * old code, kept here only, so that the tests below can prove the wire did
 * not change: same bytes for every message.
 */
static int ref_set_str(json_t *obj, const char *member, const char *value)
{
    return json_object_set_new(obj, member, json_string(value)) == 0;
}

static int ref_set_int(json_t *obj, const char *member, long long value)
{
    return json_object_set_new(obj, member, json_integer(value)) == 0;
}

static int ref_set_bin(json_t *obj, const char *member, const lurk_buf *b)
{
    size_t n = lurk_b64url_encoded_len(b->len) + 1;
    char *text = malloc(n);
    int ok = 0;

    ck_assert_ptr_nonnull(text);
    if (lurk_b64url_encode(b->data, b->len, text, n) == LURK_OK) {
        ok = json_object_set_new(obj, member, json_stringn(text, n - 1)) == 0;
    }
    free(text);
    return ok;
}

/* {"<name>": body} dumped compactly; NULL when jansson refused a value. */
static char *ref_finish(const char *name, json_t *body, int ok)
{
    json_t *root = json_object();
    char *text = NULL;

    ck_assert_ptr_nonnull(root);
    ck_assert_int_eq(json_object_set_new(root, name, body), 0);
    if (ok) {
        text = json_dumps(root, JSON_COMPACT);
        ck_assert_ptr_nonnull(text);
    }
    json_decref(root);
    return text;
}

static const char *ref_tx_name(lurk_tx tx)
{
    return tx == LURK_TX__COUNT ? "Lurk" : lurk_tx_name(tx);
}

static char *ref_encode_request(const lurk_request *req)
{
    json_t *body = json_object();
    char name[64];
    int ok = 1;

    ck_assert_ptr_nonnull(body);
    snprintf(name, sizeof(name), "%sRequest", ref_tx_name(req->type));
    ok = ref_set_str(body, "RequestId", req->request_id);
    switch (req->type) {
    case LURK_TX_PUBLIC_KEY:
    case LURK_TX_DISPOSE:
        ok = ok && ref_set_str(body, "KeyId", req->key_id);
        break;
    case LURK_TX_SIGN:
        ok = ok && ref_set_str(body, "KeyId", req->key_id);
        ok = ok && ref_set_str(body, "Algorithm", lurk_sig_alg_name(req->sig_alg));
        if (req->md != LURK_MD_NONE) {
            ok = ok && ref_set_str(body, "DigestAlg", lurk_md_name(req->md));
        }
        if (req->salt_len >= 0) {
            ok = ok && ref_set_int(body, "SaltLength", req->salt_len);
        }
        if (req->data.data != NULL) {
            ok = ok && ref_set_bin(body, "Data", &req->data);
        }
        if (req->digest.data != NULL) {
            ok = ok && ref_set_bin(body, "Digest", &req->digest);
        }
        break;
    case LURK_TX_DECRYPT:
        ok = ok && ref_set_str(body, "KeyId", req->key_id);
        ok = ok && ref_set_str(body, "Mode", lurk_dec_mode_name(req->dec_mode));
        ok = ok && ref_set_bin(body, "Data", &req->ciphertext);
        if (req->dec_mode == LURK_DEC_TLS_PREMASTER) {
            ok = ok && ref_set_int(body, "ClientVersion", req->client_version);
            if (req->alt_version != 0) {
                ok = ok && ref_set_int(body, "AltVersion", req->alt_version);
            }
        } else {
            ok = ok && ref_set_str(body, "OaepDigest", lurk_md_name(req->oaep_md));
            if (req->label.data != NULL) {
                ok = ok && ref_set_bin(body, "Label", &req->label);
            }
        }
        break;
    case LURK_TX_AGREE:
        ok = ok && ref_set_str(body, "KeyId", req->key_id);
        ok = ok && ref_set_bin(body, "PeerKey", &req->peer_key);
        break;
    case LURK_TX_CREATE:
        ok = ok && ref_set_str(body, "KeyType", lurk_key_type_name(req->key_type));
        ok = ok && ref_set_str(body, "Policy", req->policy);
        break;
    default:
        break;
    }
    return ref_finish(name, body, ok);
}

static json_t *ref_name_list(uint32_t bits, const char *(*name)(int), int n)
{
    json_t *arr = json_array();

    ck_assert_ptr_nonnull(arr);
    for (int i = 0; i < n && i < 32; i++) {
        if ((bits & (1u << i)) && name(i) != NULL) {
            ck_assert_int_eq(json_array_append_new(arr, json_string(name(i))), 0);
        }
    }
    return arr;
}

static const char *ref_tx(int i)
{
    return lurk_tx_name((lurk_tx)i);
}

static const char *ref_sig(int i)
{
    return lurk_sig_alg_name((lurk_sig_alg)i);
}

static const char *ref_dec(int i)
{
    return lurk_dec_mode_name((lurk_dec_mode)i);
}

static const char *ref_md(int i)
{
    return lurk_md_name((lurk_md)i);
}

static const char *ref_kt(int i)
{
    return lurk_key_type_name((lurk_key_type)i);
}

static int ref_set_hello(json_t *body, const lurk_hello_info *h)
{
    json_t *version = json_pack("{s:I, s:I, s:[{s:s}]}", "Major", (json_int_t)h->major,
                                "Minor", (json_int_t)h->minor, "Encodings", "ID",
                                "application/json");

    ck_assert_ptr_nonnull(version);
    return json_object_set_new(body, "Version", version) == 0
           && json_object_set_new(body, "Transactions",
                                  ref_name_list(h->transactions, ref_tx, LURK_TX__COUNT)) == 0
           && json_object_set_new(body, "Algorithms",
                                  ref_name_list(h->sig_algs, ref_sig, LURK_SIG__COUNT)) == 0
           && json_object_set_new(body, "DecryptModes",
                                  ref_name_list(h->dec_modes, ref_dec, LURK_DEC__COUNT)) == 0
           && json_object_set_new(body, "Digests",
                                  ref_name_list(h->digests, ref_md, LURK_MD__COUNT)) == 0
           && json_object_set_new(body, "KeyTypes",
                                  ref_name_list(h->key_types, ref_kt, LURK_KEY__COUNT)) == 0;
}

static char *ref_encode_response(const lurk_response *resp)
{
    json_t *body = json_object();
    char name[64];
    int ok = 1;

    ck_assert_ptr_nonnull(body);
    snprintf(name, sizeof(name), "%sResponse", ref_tx_name(resp->type));
    if (resp->request_id[0] != '\0') {
        ok = ref_set_str(body, "RequestId", resp->request_id);
    }
    ok = ok && ref_set_int(body, "Status", resp->status);
    if (resp->description[0] != '\0') {
        ok = ok && ref_set_str(body, "StatusDescription", resp->description);
    }
    if (resp->status == 429 || resp->status == 503) {
        ok = ok && ref_set_int(body, "RetryAfter", resp->retry_after_ms);
    }
    if (resp->state.data != NULL) {
        ok = ok && ref_set_bin(body, "State", &resp->state);
    }
    if (resp->status == 200) {
        switch (resp->type) {
        case LURK_TX_HELLO:
            ok = ok && ref_set_hello(body, &resp->hello);
            break;
        case LURK_TX_PUBLIC_KEY:
            ok = ok && ref_set_str(body, "KeyType", lurk_key_type_name(resp->key_type));
            ok = ok && ref_set_str(body, "Policy", resp->policy);
            ok = ok && ref_set_bin(body, "PublicKey", &resp->spki);
            break;
        case LURK_TX_SIGN:
        case LURK_TX_DECRYPT:
        case LURK_TX_AGREE:
            ok = ok && ref_set_bin(body, "Value", &resp->value);
            break;
        default:
            break;
        }
    }
    return ref_finish(name, body, ok);
}

/* n bytes of a repeatable pattern that hits every base64url character. */
static void set_pattern(lurk_buf *b, size_t n, unsigned seed)
{
    b->data = malloc(n > 0 ? n : 1);
    ck_assert_ptr_nonnull(b->data);
    for (size_t i = 0; i < n; i++) {
        b->data[i] = (unsigned char)(i * 131u + seed * 17u + (i >> 3));
    }
    b->len = n;
}

/* A request with ids "w" and "k" of type tx, for the rows below. */
static void init_request(lurk_request *r, lurk_tx tx)
{
    lurk_request_init(r);
    r->type = tx;
    snprintf(r->request_id, sizeof(r->request_id), "w");
    snprintf(r->key_id, sizeof(r->key_id), "k");
}

/* The rows of build_request, then requests at the edges of every limit. */
static void build_request_wide(int row, lurk_request *r)
{
    if (row < N_REQUEST_ROWS) {
        build_request(row, r);
        return;
    }
    switch (row - N_REQUEST_ROWS) {
    case 0: /* the longest ids */
        build_request(5, r);
        memset(r->request_id, 'r', LURK_REQUEST_ID_MAX);
        r->request_id[LURK_REQUEST_ID_MAX] = '\0';
        memset(r->key_id, 'K', LURK_KEY_ID_TEXT_MAX);
        r->key_id[LURK_KEY_ID_TEXT_MAX] = '\0';
        break;
    case 1: /* the largest Data, rsa-pss with the largest salt */
        init_request(r, LURK_TX_SIGN);
        snprintf(r->request_id, sizeof(r->request_id), "_-09azAZ");
        r->sig_alg = LURK_SIG_RSA_PSS;
        r->md = LURK_MD_SHA512;
        r->salt_len = 16384;
        set_pattern(&r->data, LURK_MAX_DATA, 1);
        break;
    case 2: /* Decrypt with both binaries at their limit */
        init_request(r, LURK_TX_DECRYPT);
        r->dec_mode = LURK_DEC_OAEP;
        r->oaep_md = LURK_MD_SHA384;
        set_pattern(&r->ciphertext, LURK_MAX_DATA, 2);
        set_pattern(&r->label, LURK_MAX_DATA, 3);
        break;
    case 3: /* the largest versions */
        init_request(r, LURK_TX_DECRYPT);
        r->dec_mode = LURK_DEC_TLS_PREMASTER;
        r->client_version = 0xffff;
        r->alt_version = 0xffff;
        set_pattern(&r->ciphertext, 256, 4);
        break;
    case 4: /* an empty Label */
        init_request(r, LURK_TX_DECRYPT);
        r->dec_mode = LURK_DEC_OAEP;
        r->oaep_md = LURK_MD_SHA256;
        set_buf(&r->label, "", 0);
        set_pattern(&r->ciphertext, 512, 5);
        break;
    case 5: /* binaries of every length modulo 3 */
    case 6:
    case 7:
        init_request(r, LURK_TX_AGREE);
        set_pattern(&r->peer_key, 91 + (size_t)(row - N_REQUEST_ROWS - 5), 6);
        break;
    case 8: /* sha512 digest, pkcs1 */
        init_request(r, LURK_TX_SIGN);
        r->sig_alg = LURK_SIG_RSA_PKCS1;
        r->md = LURK_MD_SHA512;
        set_pattern(&r->digest, 64, 7);
        break;
    case 9: /* Create with the longest policy, other key types */
        build_request(13, r);
        r->key_type = LURK_KEY_ED25519;
        memset(r->policy, 'p', 31);
        r->policy[31] = '\0';
        break;
    case 10:
        build_request(13, r);
        r->key_type = LURK_KEY_RSA;
        break;
    default:
        ck_abort_msg("no row %d", row);
    }
}

#define N_WIDE_REQUEST_ROWS (N_REQUEST_ROWS + 11)

START_TEST(test_request_matches_jansson)
{
    lurk_request r;
    char *json = NULL;
    char *ref = NULL;
    size_t len = 0;

    build_request_wide(_i, &r);
    ck_assert_int_eq(lurk_proto_encode_request(&r, &json, &len), LURK_OK);
    ref = ref_encode_request(&r);
    ck_assert_ptr_nonnull(ref);
    ck_assert_uint_eq(len, strlen(ref));
    ck_assert_msg(strcmp(json, ref) == 0, "row %d:\n%.300s\n%.300s", _i, json, ref);
    free(json);
    free(ref);
    lurk_request_clear(&r);
}
END_TEST

/* Descriptions that need escapes, or are UTF-8 beyond ASCII. */
static const char *const descriptions[] = {
    "say \"no\" \\ twice \\\\ \"\"",
    "\"",
    "\\",
    "caf\xc3\xa9 \xe2\x80\x93 \xe2\x9c\x93 \xf0\x9d\x84\x9e \xf4\x8f\xbf\xbf \xef\xbb\xbf end",
    "/slash/ is not escaped; ~ and DEL-free punctuation !#$%&'()*+,-.:;<=>?@[]^_`{|}",
    "message: invalid JSON: duplicate object key near '\"RequestId\"' (byte 43)",
};

static void build_response_wide(int row, lurk_response *r)
{
    int n = (int)(sizeof(descriptions) / sizeof(descriptions[0]));

    if (row < N_RESPONSE_ROWS) {
        build_response(row, r);
        return;
    }
    row -= N_RESPONSE_ROWS;
    if (row < n) { /* escapes in an error reply */
        build_response(6, r);
        snprintf(r->description, sizeof(r->description), "%s", descriptions[row]);
        return;
    }
    row -= n;
    switch (row) {
    case 0: /* 256 bytes, each escaped */
        build_response(8, r);
        memset(r->description, '"', LURK_DESCRIPTION_MAX);
        r->description[LURK_DESCRIPTION_MAX] = '\0';
        break;
    case 1: /* 256 bytes of 3-byte characters and a tail */
        build_response(3, r);
        for (int i = 0; i + 3 <= LURK_DESCRIPTION_MAX; i += 3) {
            memcpy(r->description + i, "\xe2\x82\xac", 3);
        }
        r->description[255] = '!';
        r->description[256] = '\0';
        break;
    case 2: /* Hello with every known bit and unknown ones, largest version */
        build_response(0, r);
        r->hello.major = 255;
        r->hello.minor = 255;
        r->hello.transactions = 0xffffffffu;
        r->hello.sig_algs = 0xffffffffu;
        r->hello.dec_modes = 0xffffffffu;
        r->hello.digests = 0xffffffffu;
        r->hello.key_types = 0xffffffffu;
        break;
    case 3: /* Hello with empty lists, no State */
        lurk_response_init(r);
        r->type = LURK_TX_HELLO;
        r->status = 200;
        snprintf(r->request_id, sizeof(r->request_id), "h");
        r->hello.major = 0;
        r->hello.minor = 0;
        break;
    case 4: /* the largest Value */
        build_response(4, r);
        free(r->value.data);
        set_pattern(&r->value, LURK_MAX_DATA, 8);
        break;
    case 5: /* PublicKey of each type with a long SPKI */
    case 6:
    case 7:
        build_response(2, r);
        r->key_type = (lurk_key_type)(LURK_KEY_RSA + row - 5);
        free(r->spki.data);
        set_pattern(&r->spki, 294 + (size_t)row, 9);
        break;
    case 8: /* status and RetryAfter extremes */
        build_response(10, r);
        r->retry_after_ms = 86400000;
        break;
    case 9:
        build_response(7, r);
        r->retry_after_ms = 0;
        break;
    case 10:
        build_response(8, r);
        r->status = 100;
        break;
    case 11:
        build_response(8, r);
        r->status = 599;
        set_buf(&r->state, "01234567890123456789012345678901", 32);
        break;
    case 12: /* a success with a description and an empty value */
        build_response(5, r);
        snprintf(r->description, sizeof(r->description), "shared \"secret\"");
        free(r->value.data);
        set_buf(&r->value, "", 0);
        break;
    case 13: /* Dispose, Create: reserved, answered 406 */
        build_response(9, r);
        r->type = LURK_TX_DISPOSE;
        break;
    case 14: /* LurkResponse with RequestId, State and a quote */
        build_response(8, r);
        snprintf(r->request_id, sizeof(r->request_id), "x");
        set_buf(&r->state, "", 0);
        snprintf(r->description, sizeof(r->description), "\"RequestId\" \\ bad");
        break;
    case 15: /* every common member: what an overloaded server sends */
        build_response(10, r);
        snprintf(r->description, sizeof(r->description), "overloaded");
        set_buf(&r->state, "0123456789abcdef", 16);
        break;
    case 16:
        build_response(8, r);
        r->status = 429;
        r->retry_after_ms = 1000;
        snprintf(r->description, sizeof(r->description), "too many \"requests\"");
        break;
    default:
        ck_abort_msg("no row %d", row);
    }
}

#define N_DESCRIPTIONS ((int)(sizeof(descriptions) / sizeof(descriptions[0])))
#define N_WIDE_RESPONSE_ROWS (N_RESPONSE_ROWS + N_DESCRIPTIONS + 17)

START_TEST(test_response_matches_jansson)
{
    lurk_response r;
    lurk_response out;
    char *json = NULL;
    char *ref = NULL;
    size_t len = 0;
    char why[WHY_LEN];

    build_response_wide(_i, &r);
    ck_assert_int_eq(lurk_proto_encode_response(&r, &json, &len), LURK_OK);
    ref = ref_encode_response(&r);
    ck_assert_ptr_nonnull(ref);
    ck_assert_uint_eq(len, strlen(ref));
    ck_assert_msg(strcmp(json, ref) == 0, "row %d:\n%.300s\n%.300s", _i, json, ref);
    /* and what was written reads back */
    ck_assert_msg(lurk_proto_decode_response(json, len, r.type, &out, why, sizeof(why))
                      == LURK_OK,
                  "row %d: %s", _i, why);
    ck_assert_str_eq(out.description, r.description);
    lurk_response_clear(&out);
    free(json);
    free(ref);
    lurk_response_clear(&r);
}
END_TEST

/* A description that is not UTF-8 is refused, as jansson refused it (and
 * its decoder would refuse the message). */
START_TEST(test_response_not_utf8)
{
    static const char *const bad[] = {
        "\xff", "caf\xe9", "\xc3", "\xc0\x80", "\xe0\x80\x80", "\xed\xa0\x80",
        "\xf4\x90\x80\x80", "\xf8\x88\x80\x80\x80", "ok then \x80",
    };
    lurk_response r;
    char *json = NULL;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        build_response(6, &r);
        snprintf(r.description, sizeof(r.description), "%s", bad[i]);
        ck_assert_ptr_null(ref_encode_response(&r));
        ck_assert_msg(lurk_proto_encode_response(&r, &json, NULL) == LURK_ERR_INVALID_ARG,
                      "row %zu", i);
        ck_assert_ptr_null(json);
        lurk_response_clear(&r);
    }
    /* Hello versions beyond what the decoder reads (0..255). */
    build_response(0, &r);
    r.hello.minor = 256;
    ck_assert_int_eq(lurk_proto_encode_response(&r, &json, NULL), LURK_ERR_INVALID_ARG);
    ck_assert_ptr_null(json);
    lurk_response_clear(&r);
}
END_TEST

/* Checks the string writer on s[0..len) against json_dumps of the same
 * string (NULL from jansson: not UTF-8, which the writer must refuse). */
static void check_json_string(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    char *ref = v != NULL ? json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
    char *out = malloc(LURK_PROTO_JSON_STRING_MAX(len));
    size_t n;

    ck_assert_ptr_nonnull(out);
    n = lurk_proto_json_string(out, s, len, 0);
    if (ref == NULL) {
        ck_assert_msg(n == 0, "accepted %zu bytes jansson refused (first %02x)", len,
                      len > 0 ? (unsigned char)s[0] : 0);
    } else {
        ck_assert_msg(n == strlen(ref) && memcmp(out, ref, n) == 0, "wrote %.*s, jansson %s",
                      (int)n, out, ref);
    }
    free(out);
    free(ref);
    json_decref(v);
}

START_TEST(test_json_string)
{
    static const char *const seqs[] = {
        "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xef\xbf\xbf", "\xed\x9f\xbf", "\xee\x80\x80",
        "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\xc1\xbf", "\xe0\x9f\xbf", "\xed\xa0\x80",
        "\xed\xbf\xbf", "\xf0\x8f\xbf\xbf", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80",
        "\xc2", "\xe2\x82", "\xf0\x9f\x98", "\xc2\x41", "\xe2\x28\xa1", "\x80", "\xbf",
        "\xfe", "\xff",
    };
    char s[8];
    unsigned seed = 12345;

    check_json_string("", 0);
    /* every byte alone, and between two letters */
    for (int c = 0; c < 256; c++) {
        s[0] = (char)c;
        check_json_string(s, 1);
        s[0] = 'a';
        s[1] = (char)c;
        s[2] = 'z';
        check_json_string(s, 3);
    }
    for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
        check_json_string(seqs[i], strlen(seqs[i]));
    }
    /* random strings: mostly ASCII with escapes, some UTF-8 and junk */
    for (int round = 0; round < 20000; round++) {
        static const char *const pieces[] = {
            "a", "Z", "\"", "\\", "\n", "\x01", "\x1f", "\x7f", " ", "/", "\xc3\xa9",
            "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\x80", "\xc3", "\xed\xa0\x80", "\x00",
        };
        char buf[64];
        size_t len = 0;
        int n;

        seed = seed * 1103515245u + 12345u;
        n = (int)((seed >> 16) % 12);
        for (int k = 0; k < n; k++) {
            const char *p;
            size_t plen;

            seed = seed * 1103515245u + 12345u;
            p = pieces[(seed >> 16) % (sizeof(pieces) / sizeof(pieces[0]))];
            plen = p[0] == '\0' ? 1 : strlen(p);
            /* junk only now and then, so most strings are valid */
            if (((seed >> 8) & 7) != 0 && (p[0] == '\x80' || strcmp(p, "\xc3") == 0
                                           || strcmp(p, "\xed\xa0\x80") == 0)) {
                p = "b";
                plen = 1;
            }
            memcpy(buf + len, p, plen);
            len += plen;
        }
        check_json_string(buf, len);
    }
}
END_TEST

/* LURK_PROTO_JSON_ASCII: bytes outside printable ASCII become '?', quotes
 * and backslashes are still escaped, nothing is refused. */
START_TEST(test_json_string_ascii)
{
    char out[64];
    size_t n;

    n = lurk_proto_json_string(out, "caf\xe9 \"\\\n\x7f\xc3\xa9", 11, LURK_PROTO_JSON_ASCII);
    ck_assert_uint_eq(n, 15);
    ck_assert_mem_eq(out, "\"caf? \\\"\\\\????\"", 15);
    ck_assert_uint_eq(lurk_proto_json_string(out, "caf\xe9", 4, 0), 0);
    n = lurk_proto_json_string(out, "", 0, LURK_PROTO_JSON_ASCII);
    ck_assert_uint_eq(n, 2);
    ck_assert_mem_eq(out, "\"\"", 2);
}
END_TEST

static Suite *proto_suite(void)
{
    Suite *s = suite_create("proto");
    TCase *names = tcase_create("names");
    TCase *req = tcase_create("request");
    TCase *resp = tcase_create("response");
    TCase *wire = tcase_create("writer");

    tcase_add_test(names, test_names);
    suite_add_tcase(s, names);

    tcase_add_loop_test(req, test_request_round_trip, 0, N_REQUEST_ROWS);
    tcase_add_test(req, test_request_wire_form);
    tcase_add_test(req, test_request_accepts);
    tcase_add_loop_test(req, test_request_reject, 0, N_BAD_REQUESTS);
    tcase_add_test(req, test_request_reject_keeps_id);
    tcase_add_test(req, test_why_printable);
    tcase_add_test(req, test_limits);
    tcase_add_test(req, test_encode_rejects);
    suite_add_tcase(s, req);

    tcase_add_loop_test(resp, test_response_round_trip, 0, N_RESPONSE_ROWS);
    tcase_add_test(resp, test_response_wire_form);
    tcase_add_test(resp, test_hello_forward_compat);
    tcase_add_test(resp, test_response_errors);
    tcase_add_loop_test(resp, test_response_reject, 0,
                        sizeof(bad_responses) / sizeof(bad_responses[0]));
    tcase_add_test(resp, test_response_description_limit);
    tcase_add_test(resp, test_response_encode_rejects);
    suite_add_tcase(s, resp);

    tcase_add_loop_test(wire, test_request_matches_jansson, 0, N_WIDE_REQUEST_ROWS);
    tcase_add_loop_test(wire, test_response_matches_jansson, 0, N_WIDE_RESPONSE_ROWS);
    tcase_add_test(wire, test_response_not_utf8);
    tcase_add_test(wire, test_json_string);
    tcase_add_test(wire, test_json_string_ascii);
    suite_add_tcase(s, wire);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(proto_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
