/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyref.c - key reference files: DER and PEM round trips, files with
 * other PEM blocks around ours, and the refusals that protect a loader:
 * a keyId that is not the public key's, a keyType that is not the key's,
 * trailing bytes, a wrong version, non-DER input.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "lurk_keyref.h"

static const struct {
    const char *file;
    lurk_key_type type;
    const char *id; /* golden, see test_keyid.c */
} keys[] = {
    { "keyid-rsa2048.pub.pem", LURK_KEY_RSA,
      "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO" },
    { "keyid-p256.pub.pem", LURK_KEY_EC,
      "ALXE2-QOE7Q-3HFXM-OCTCZ-TDRI7-N4SLX-CEZZR-7MB5X-YIZ45-VGP4G-BQ4" },
    { "keyid-ed25519.pub.pem", LURK_KEY_ED25519,
      "AJUEO-T2CL4-FWOVB-32VA6-SKTAD-SLBTN-PUQVV-U57JE-4SEDP-67SRS-AD4" },
};

#define N_KEYS (sizeof(keys) / sizeof(keys[0]))

static const char *const servers[] = { "https://127.0.0.1:7443", "unix:/run/lurk/lurk.sock" };

static char tmpdir[64];

static void setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/lurk-test-keyref-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
    static const char *const names[] = { "ref.key", "bundle.pem", "certonly.pem", "bad.key" };
    char path[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *buf = NULL;
    long n = 0;

    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return buf;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

/* DER SPKI of a vector, parsed by OpenSSL (not by lurk). */
static unsigned char *load_spki(const char *name, size_t *len)
{
    char path[1024];
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s", LURK_VECTORS, name);
    bio = BIO_new_file(path, "r");
    ck_assert_ptr_nonnull(bio);
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(pkey);
    n = i2d_PUBKEY(pkey, &der);
    ck_assert_int_gt(n, 0);
    *len = (size_t)n;
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return der;
}

static void make_ref(size_t k, lurk_keyref *ref)
{
    size_t len = 0;
    unsigned char *spki = load_spki(keys[k].file, &len);

    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, "tls-server", servers, 2, ref), LURK_OK);
    OPENSSL_free(spki);
}

static void assert_ref_eq(const lurk_keyref *a, const lurk_keyref *b)
{
    ck_assert_str_eq(a->key_id, b->key_id);
    ck_assert(lurk_keyid_equal(&a->id, &b->id));
    ck_assert_int_eq(a->type, b->type);
    ck_assert_uint_eq(a->spki_len, b->spki_len);
    ck_assert_mem_eq(a->spki, b->spki, a->spki_len);
    ck_assert_str_eq(a->policy, b->policy);
    ck_assert_uint_eq(a->n_servers, b->n_servers);
    for (size_t i = 0; i < a->n_servers; i++) {
        ck_assert_str_eq(a->servers[i], b->servers[i]);
    }
}

START_TEST(test_from_spki)
{
    lurk_keyref ref;

    make_ref((size_t)_i, &ref);
    ck_assert_str_eq(ref.key_id, keys[_i].id);
    ck_assert_int_eq(ref.type, keys[_i].type);
    ck_assert_str_eq(ref.policy, "tls-server");
    ck_assert_uint_eq(ref.n_servers, 2);
    ck_assert_str_eq(ref.servers[1], servers[1]);
    lurk_keyref_clear(&ref);
    ck_assert_ptr_null(ref.spki);
}
END_TEST

START_TEST(test_der_round_trip)
{
    lurk_keyref ref;
    lurk_keyref back;
    unsigned char *der = NULL;
    size_t len = 0;
    const unsigned char *p = NULL;
    ASN1_SEQUENCE_ANY *seq = NULL;

    make_ref((size_t)_i, &ref);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_OK);
    assert_ref_eq(&ref, &back);

    /* OpenSSL's own DER parser sees the six fields of lurk_keyref.h. */
    p = der;
    seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)len);
    ck_assert_ptr_nonnull(seq);
    ck_assert(p == der + len);
    ck_assert_int_eq(sk_ASN1_TYPE_num(seq), 6);
    ck_assert_int_eq(ASN1_TYPE_get(sk_ASN1_TYPE_value(seq, 0)), V_ASN1_INTEGER);
    ck_assert_int_eq(ASN1_TYPE_get(sk_ASN1_TYPE_value(seq, 1)), V_ASN1_UTF8STRING);
    ck_assert_int_eq(ASN1_TYPE_get(sk_ASN1_TYPE_value(seq, 2)), V_ASN1_UTF8STRING);
    ck_assert_int_eq(ASN1_TYPE_get(sk_ASN1_TYPE_value(seq, 3)), V_ASN1_SEQUENCE);
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);

    lurk_keyref_clear(&back);
    free(der);
    lurk_keyref_clear(&ref);
}
END_TEST

/* Without the optional fields: four elements, decoded as empty. */
START_TEST(test_der_minimal)
{
    size_t len = 0;
    unsigned char *spki = load_spki(keys[1].file, &len);
    lurk_keyref ref;
    lurk_keyref back;
    unsigned char *der = NULL;
    size_t der_len = 0;
    const unsigned char *p = NULL;
    ASN1_SEQUENCE_ANY *seq = NULL;

    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, NULL, NULL, 0, &ref), LURK_OK);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &der_len), LURK_OK);
    p = der;
    seq = d2i_ASN1_SEQUENCE_ANY(NULL, &p, (long)der_len);
    ck_assert_ptr_nonnull(seq);
    ck_assert_int_eq(sk_ASN1_TYPE_num(seq), 4);
    sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
    ck_assert_int_eq(lurk_keyref_decode_der(der, der_len, &back), LURK_OK);
    ck_assert_str_eq(back.policy, "");
    ck_assert_uint_eq(back.n_servers, 0);
    assert_ref_eq(&ref, &back);
    lurk_keyref_clear(&back);
    lurk_keyref_clear(&ref);
    free(der);
    OPENSSL_free(spki);
}
END_TEST

START_TEST(test_pem_and_files)
{
    lurk_keyref ref;
    lurk_keyref back;
    char *pem = NULL;
    size_t pem_len = 0;
    char path[128];
    char *text = NULL;
    struct stat st;
    BIO *bio = NULL;
    char *name = NULL;
    char *header = NULL;
    unsigned char *data = NULL;
    long data_len = 0;
    unsigned char *der = NULL;
    size_t der_len = 0;

    make_ref(0, &ref);
    ck_assert_int_eq(lurk_keyref_encode_pem(&ref, &pem, &pem_len), LURK_OK);
    ck_assert_uint_eq(strlen(pem), pem_len);
    ck_assert_int_eq(strncmp(pem, "-----BEGIN LURK PRIVATE KEY-----\n", 33), 0);
    ck_assert_ptr_nonnull(strstr(pem, "-----END LURK PRIVATE KEY-----\n"));
    /* 64-character base64 lines. */
    for (const char *line = pem; *line != '\0'; ) {
        const char *nl = strchr(line, '\n');

        ck_assert_ptr_nonnull(nl);
        ck_assert_int_le(nl - line, 64);
        line = nl + 1;
    }
    /* OpenSSL's PEM reader finds the same DER. */
    bio = BIO_new_mem_buf(pem, (int)pem_len);
    ck_assert_int_eq(PEM_read_bio(bio, &name, &header, &data, &data_len), 1);
    ck_assert_str_eq(name, LURK_KEYREF_PEM_LABEL);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &der_len), LURK_OK);
    ck_assert_uint_eq((size_t)data_len, der_len);
    ck_assert_mem_eq(data, der, der_len);

    /* write_file: mode 0644, content = encode_pem; read_file gives it back. */
    snprintf(path, sizeof(path), "%s/ref.key", tmpdir);
    ck_assert_int_eq(lurk_keyref_write_file(&ref, path), LURK_OK);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0644);
    text = read_text(path);
    ck_assert_str_eq(text, pem);
    ck_assert_int_eq(lurk_keyref_read_file(path, &back), LURK_OK);
    assert_ref_eq(&ref, &back);
    lurk_keyref_clear(&back);
    /* Overwriting works (rename over an existing file). */
    ck_assert_int_eq(lurk_keyref_write_file(&ref, path), LURK_OK);

    free(text);
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    BIO_free(bio);
    free(der);
    free(pem);
    lurk_keyref_clear(&ref);
}
END_TEST

/* A certificate (and anything else) before our block is skipped. */
START_TEST(test_cert_before_block)
{
    char vector[1024];
    char path[128];
    char *cert = NULL;
    char *pem = NULL;
    char *bundle = NULL;
    lurk_keyref ref;
    lurk_keyref back;
    size_t n = 0;

    snprintf(vector, sizeof(vector), "%s/cert-before.crt.pem", LURK_VECTORS);
    cert = read_text(vector);
    make_ref(1, &ref);
    ck_assert_int_eq(lurk_keyref_encode_pem(&ref, &pem, NULL), LURK_OK);
    n = strlen(cert) * 2 + strlen(pem) + 64;
    bundle = malloc(n);
    ck_assert_ptr_nonnull(bundle);
    snprintf(bundle, n, "subject=CN = lurk\n%s\n%s%s", cert, pem, cert);
    snprintf(path, sizeof(path), "%s/bundle.pem", tmpdir);
    write_text(path, bundle);
    ck_assert_int_eq(lurk_keyref_read_file(path, &back), LURK_OK);
    assert_ref_eq(&ref, &back);
    lurk_keyref_clear(&back);
    /* The same from memory. */
    ck_assert_int_eq(lurk_keyref_decode_pem(bundle, strlen(bundle), &back), LURK_OK);
    assert_ref_eq(&ref, &back);
    lurk_keyref_clear(&back);
    ck_assert_int_eq(lurk_keyref_decode_pem(cert, strlen(cert), &back), LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(lurk_keyref_decode_pem(pem, strlen(pem) - 10, &back), LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(lurk_keyref_decode_pem(NULL, 0, &back), LURK_ERR_INVALID_FORMAT);
    ck_assert_int_eq(lurk_keyref_decode_pem(NULL, 1, &back), LURK_ERR_INVALID_ARG);

    /* A file with no block of ours; a file that does not exist. */
    snprintf(path, sizeof(path), "%s/certonly.pem", tmpdir);
    write_text(path, cert);
    ck_assert_int_eq(lurk_keyref_read_file(path, &back), LURK_ERR_INVALID_FORMAT);
    snprintf(path, sizeof(path), "%s/missing.pem", tmpdir);
    ck_assert_int_eq(lurk_keyref_read_file(path, &back), LURK_ERR_IO);

    free(bundle);
    free(pem);
    free(cert);
    lurk_keyref_clear(&ref);
}
END_TEST

/* keyId of another key: refused by decode and by read_file. */
START_TEST(test_tampered_key_id)
{
    lurk_keyref ref;
    lurk_keyref back;
    unsigned char *der = NULL;
    size_t len = 0;
    char path[128];

    make_ref(1, &ref);
    snprintf(ref.key_id, sizeof(ref.key_id), "%s", keys[0].id);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_ERR_KEY_MISMATCH);
    ck_assert_ptr_null(back.spki);
    snprintf(path, sizeof(path), "%s/bad.key", tmpdir);
    ck_assert_int_eq(lurk_keyref_write_file(&ref, path), LURK_OK);
    ck_assert_int_eq(lurk_keyref_read_file(path, &back), LURK_ERR_KEY_MISMATCH);
    free(der);

    /* Not an id at all. */
    snprintf(ref.key_id, sizeof(ref.key_id), "not-a-key-id");
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_ERR_INVALID_FORMAT);
    free(der);
    lurk_keyref_clear(&ref);
}
END_TEST

/* Replaces the first occurrence of `from` by `to` (same length) in der. */
static void patch(unsigned char *der, size_t len, const char *from, const char *to)
{
    size_t n = strlen(from);

    ck_assert_uint_eq(strlen(to), n);
    for (size_t i = 0; i + n <= len; i++) {
        if (memcmp(der + i, from, n) == 0) {
            memcpy(der + i, to, n);
            return;
        }
    }
    ck_abort_msg("\"%s\" not found", from);
}

START_TEST(test_wrong_key_type)
{
    lurk_keyref ref;
    lurk_keyref back;
    unsigned char *der = NULL;
    size_t len = 0;

    /* A known type that is not the key's. */
    make_ref(1, &ref);
    ref.type = LURK_KEY_RSA;
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_ERR_KEY_MISMATCH);
    free(der);
    lurk_keyref_clear(&ref);

    /* Another spelling or an unknown type. */
    make_ref(2, &ref);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    patch(der, len, "ED25519", "Ed25519");
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_ERR_INVALID_FORMAT);
    patch(der, len, "Ed25519", "X448KEY");
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_ERR_INVALID_FORMAT);
    free(der);
    lurk_keyref_clear(&ref);
}
END_TEST

START_TEST(test_malformed_der)
{
    lurk_keyref ref;
    lurk_keyref back;
    unsigned char *der = NULL;
    unsigned char *copy = NULL;
    size_t len = 0;
    size_t hdr = 0;

    make_ref(1, &ref);
    ck_assert_int_eq(lurk_keyref_encode_der(&ref, &der, &len), LURK_OK);
    copy = malloc(len + 1);
    ck_assert_ptr_nonnull(copy);
    hdr = (der[1] & 0x80) ? 2 + (size_t)(der[1] & 0x7f) : 2;

    /* Trailing garbage. */
    memcpy(copy, der, len);
    copy[len] = 0;
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len + 1, &back), LURK_ERR_INVALID_FORMAT);
    /* Truncated, at every length. */
    for (size_t n = 0; n < len; n++) {
        ck_assert_int_eq(lurk_keyref_decode_der(der, n, &back), LURK_ERR_INVALID_FORMAT);
    }
    /* version 2 */
    memcpy(copy, der, len);
    ck_assert_int_eq(copy[hdr], 0x02);
    ck_assert_int_eq(copy[hdr + 2], 0x01);
    copy[hdr + 2] = 0x02;
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len, &back), LURK_ERR_INVALID_FORMAT);
    /* SET instead of SEQUENCE */
    memcpy(copy, der, len);
    copy[0] = 0x31;
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len, &back), LURK_ERR_INVALID_FORMAT);
    /* PrintableString instead of UTF8String for keyId */
    memcpy(copy, der, len);
    ck_assert_int_eq(copy[hdr + 3], 0x0c);
    copy[hdr + 3] = 0x13;
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len, &back), LURK_ERR_INVALID_FORMAT);
    /* Policy tagged [2] instead of [0]. */
    memcpy(copy, der, len);
    patch(copy, len, "\xa0\x0c\x0c\x0atls-server", "\xa2\x0c\x0c\x0atls-server");
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len, &back), LURK_ERR_INVALID_FORMAT);
    /* The public key itself damaged (still the right length). */
    memcpy(copy, der, len);
    patch(copy, len, "\x06\x07\x2a\x86\x48\xce\x3d\x02\x01", "\x05\x07\x2a\x86\x48\xce\x3d\x02\x01");
    ck_assert_int_eq(lurk_keyref_decode_der(copy, len, &back), LURK_ERR_INVALID_FORMAT);
    /* The untouched original still decodes. */
    ck_assert_int_eq(lurk_keyref_decode_der(der, len, &back), LURK_OK);
    lurk_keyref_clear(&back);

    free(copy);
    free(der);
    lurk_keyref_clear(&ref);
}
END_TEST

START_TEST(test_bad_arguments)
{
    size_t len = 0;
    unsigned char *spki = load_spki(keys[1].file, &len);
    const char *many[LURK_KEYREF_MAX_SERVERS + 1];
    const char *spaced[] = { "https://a b" };
    lurk_keyref ref;
    EVP_PKEY_CTX *gen = NULL;
    EVP_PKEY *pss = NULL;
    unsigned char *pss_der = NULL;
    int pss_len = 0;

    for (size_t i = 0; i < LURK_KEYREF_MAX_SERVERS + 1; i++) {
        many[i] = "https://127.0.0.1:7443";
    }
    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, NULL, many, LURK_KEYREF_MAX_SERVERS, &ref),
                     LURK_OK);
    lurk_keyref_clear(&ref);
    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, NULL, many, LURK_KEYREF_MAX_SERVERS + 1,
                                           &ref),
                     LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, NULL, spaced, 1, &ref),
                     LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyref_from_spki(spki, len, "TLS Server", NULL, 0, &ref),
                     LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyref_from_spki(spki, len - 1, NULL, NULL, 0, &ref),
                     LURK_ERR_INVALID_FORMAT);
    ck_assert_ptr_null(ref.spki);

    /* RSA-PSS-only keys are not supported. */
    gen = EVP_PKEY_CTX_new_from_name(NULL, "RSA-PSS", NULL);
    ck_assert_ptr_nonnull(gen);
    ck_assert_int_eq(EVP_PKEY_keygen_init(gen), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_keygen_bits(gen, 1024), 1);
    ck_assert_int_eq(EVP_PKEY_generate(gen, &pss), 1);
    EVP_PKEY_CTX_free(gen);
    pss_len = i2d_PUBKEY(pss, &pss_der);
    ck_assert_int_gt(pss_len, 0);
    ck_assert_int_eq(lurk_keyref_from_spki(pss_der, (size_t)pss_len, NULL, NULL, 0, &ref),
                     LURK_ERR_UNSUPPORTED);

    OPENSSL_free(pss_der);
    EVP_PKEY_free(pss);
    OPENSSL_free(spki);
}
END_TEST

static Suite *keyref_suite(void)
{
    Suite *s = suite_create("keyref");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, test_from_spki, 0, N_KEYS);
    tcase_add_loop_test(tc, test_der_round_trip, 0, N_KEYS);
    tcase_add_test(tc, test_der_minimal);
    tcase_add_test(tc, test_pem_and_files);
    tcase_add_test(tc, test_cert_before_block);
    tcase_add_test(tc, test_tampered_key_id);
    tcase_add_test(tc, test_wrong_key_type);
    tcase_add_test(tc, test_malformed_der);
    tcase_add_test(tc, test_bad_arguments);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keyref_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
