/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_keyid.c - strong key ids against golden vectors.
 *
 * The public keys are fixed PEM files in tests/vectors/; the expected ids
 * were computed once by the shell, independently of this code
 * (tests/vectors/README.md shows the command), and are written here as
 * literals.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "lurk_encoding.h"
#include "lurk_keyid.h"

static const struct {
    const char *file;
    unsigned alg;
    const char *id;
} vectors[] = {
    { "keyid-rsa2048.pub.pem", 2,
      "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO" },
    { "keyid-p256.pub.pem", 2,
      "ALXE2-QOE7Q-3HFXM-OCTCZ-TDRI7-N4SLX-CEZZR-7MB5X-YIZ45-VGP4G-BQ4" },
    { "keyid-ed25519.pub.pem", 2,
      "AJUEO-T2CL4-FWOVB-32VA6-SKTAD-SLBTN-PUQVV-U57JE-4SEDP-67SRS-AD4" },
    { "keyid-p256.pub.pem", 0, "ABOMS-CXWRY-XWI2S-XDEGA-SFHYJ-VPQ" },
    { "keyid-rsa2048.pub.pem", 1, "AHEL3-7GDAW-7HLSZ-I5PL5-FKQSY-X7TH6-F6TOB-LHRV5-T6VKI-TY" },
    { "keyid-ed25519.pub.pem", 3,
      "APW2U-RJ4XS-VE27T-BBNS7-MKKFV-VYZH7-POPAT-J4SMQ-4I4X7-R5L6E-HFCN3-QXRAS-4E2LR-HY76I-"
      "YZBVE-3J4TC-DQ3GS-OVR3F-HMXB3-RXYHG-ZSXG" },
};

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

/* DER SPKI of a PEM public key, through OpenSSL (not through lurk). */
static unsigned char *load_spki(const char *name, size_t *len)
{
    char path[1024];
    BIO *bio = NULL;
    EVP_PKEY *pkey = NULL;
    unsigned char *der = NULL;
    int n = 0;

    snprintf(path, sizeof(path), "%s/%s", LURK_VECTORS, name);
    bio = BIO_new_file(path, "r");
    ck_assert_msg(bio != NULL, "cannot open %s", path);
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    ck_assert_ptr_nonnull(pkey);
    n = i2d_PUBKEY(pkey, &der);
    ck_assert_int_gt(n, 0);
    *len = (size_t)n;
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    return der;
}

START_TEST(test_golden)
{
    size_t len = 0;
    unsigned char *spki = load_spki(vectors[_i].file, &len);
    lurk_keyid id;
    lurk_keyid parsed;
    char text[LURK_KEYID_TEXT_MAX];

    ck_assert_int_eq(lurk_keyid_from_spki(spki, len, vectors[_i].alg, &id), LURK_OK);
    ck_assert_uint_eq(id.bin[0], vectors[_i].alg);
    ck_assert_int_eq(lurk_keyid_format(&id, text, sizeof(text)), LURK_OK);
    ck_assert_str_eq(text, vectors[_i].id);

    ck_assert_int_eq(lurk_keyid_parse(vectors[_i].id, &parsed), LURK_OK);
    ck_assert(lurk_keyid_equal(&id, &parsed));
    ck_assert_int_eq(lurk_keyid_check_spki(&parsed, spki, len), LURK_OK);
    OPENSSL_free(spki);
}
END_TEST

/* Default ids are V = 2: 33 bytes, 53 Base32 chars in 11 groups. */
START_TEST(test_default_shape)
{
    size_t len = 0;
    unsigned char *spki = load_spki("keyid-p256.pub.pem", &len);
    lurk_keyid id;
    char text[LURK_KEYID_TEXT_MAX];

    ck_assert_int_eq(lurk_keyid_from_spki(spki, len, LURK_KEYID_ALG_DEFAULT, &id), LURK_OK);
    ck_assert_uint_eq(id.len, 33);
    ck_assert_int_eq(lurk_keyid_format(&id, text, sizeof(text)), LURK_OK);
    ck_assert_uint_eq(strlen(text), 53 + 10);
    for (size_t i = 5; i < strlen(text); i += 6) {
        ck_assert_int_eq(text[i], '-');
    }
    OPENSSL_free(spki);
}
END_TEST

/* Dashes and case do not matter when parsing. */
START_TEST(test_parse_spellings)
{
    const char *canon = vectors[0].id;
    char lower[LURK_KEYID_TEXT_MAX];
    char nodash[LURK_KEYID_TEXT_MAX];
    char regroup[LURK_KEYID_TEXT_MAX * 2];
    lurk_keyid a;
    lurk_keyid b;
    size_t n = 0;
    size_t m = 0;

    for (size_t i = 0; canon[i] != '\0'; i++) {
        lower[i] = (char)((canon[i] >= 'A' && canon[i] <= 'Z') ? canon[i] + 32 : canon[i]);
        lower[i + 1] = '\0';
        if (canon[i] != '-') {
            nodash[n++] = canon[i];
            regroup[m++] = canon[i];
            if (n % 3 == 0) {
                regroup[m++] = '-';
            }
        }
    }
    nodash[n] = '\0';
    regroup[m] = '\0';
    ck_assert_int_eq(lurk_keyid_parse(canon, &a), LURK_OK);
    ck_assert_int_eq(lurk_keyid_parse(lower, &b), LURK_OK);
    ck_assert(lurk_keyid_equal(&a, &b));
    ck_assert_int_eq(lurk_keyid_parse(nodash, &b), LURK_OK);
    ck_assert(lurk_keyid_equal(&a, &b));
    ck_assert_int_eq(lurk_keyid_parse(regroup, &b), LURK_OK);
    ck_assert(lurk_keyid_equal(&a, &b));
}
END_TEST

START_TEST(test_mismatch)
{
    size_t len = 0;
    unsigned char *rsa = load_spki("keyid-rsa2048.pub.pem", &len);
    lurk_keyid p256;
    lurk_keyid rsa_id;

    ck_assert_int_eq(lurk_keyid_parse(vectors[1].id, &p256), LURK_OK);
    ck_assert_int_eq(lurk_keyid_check_spki(&p256, rsa, len), LURK_ERR_KEY_MISMATCH);
    ck_assert_int_eq(lurk_keyid_parse(vectors[0].id, &rsa_id), LURK_OK);
    ck_assert(!lurk_keyid_equal(&p256, &rsa_id));
    /* One flipped bit of the key changes the id. */
    rsa[len - 1] ^= 1;
    ck_assert_int_eq(lurk_keyid_check_spki(&rsa_id, rsa, len), LURK_ERR_KEY_MISMATCH);
    OPENSSL_free(rsa);
}
END_TEST

/* A valid Base32 text of a V byte followed by `n` bytes. */
static void make_text(unsigned v, size_t n, char *out, size_t outlen)
{
    unsigned char bin[80];

    memset(bin, 0x5a, sizeof(bin));
    bin[0] = (unsigned char)v;
    ck_assert_int_eq(lurk_base32_encode(bin, 1 + n, 5, out, outlen), LURK_OK);
}

START_TEST(test_reject)
{
    static const char *const bad[] = {
        "",
        "-----",
        "AJL4N",                                                           /* too short */
        "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7D",  /* 52 chars */
        "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DP", /* trailing bit */
        "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7D1", /* '1' */
        "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7D0", /* '0' */
        "AJL4N YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO", /* space */
        "AJL4N_YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO", /* '_' */
        "AJL4N-YAWDP-Q6MMO-LYNPW-Z4QUC-TWZSH-6GDG5-CAHXG-T6BTA-FR7JS-7DO=", /* padding */
    };
    char text[256];
    lurk_keyid id;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(lurk_keyid_parse(bad[i], &id) == LURK_ERR_INVALID_FORMAT, "row %zu: %s", i,
                      bad[i]);
    }
    /* V unknown (4, 255) or a length that does not fit V. */
    make_text(4, 32, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    make_text(255, 32, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    make_text(2, 31, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    make_text(2, 33, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    make_text(0, 32, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    make_text(3, 70, text, sizeof(text)); /* longer than any id */
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_ERR_INVALID_FORMAT);
    /* ...and the right lengths are accepted. */
    make_text(0, 16, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_OK);
    make_text(3, 64, text, sizeof(text));
    ck_assert_int_eq(lurk_keyid_parse(text, &id), LURK_OK);
    ck_assert_uint_eq(id.len, 65);
}
END_TEST

START_TEST(test_bad_args)
{
    size_t len = 0;
    unsigned char *spki = load_spki("keyid-p256.pub.pem", &len);
    lurk_keyid id;
    char small[20];

    ck_assert_int_eq(lurk_keyid_from_spki(spki, len, 4, &id), LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyid_from_spki(NULL, 0, 2, &id), LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyid_from_spki(spki, len, 2, &id), LURK_OK);
    ck_assert_int_eq(lurk_keyid_format(&id, small, sizeof(small)), LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_keyid_parse(NULL, &id), LURK_ERR_INVALID_ARG);
    OPENSSL_free(spki);
}
END_TEST

static Suite *keyid_suite(void)
{
    Suite *s = suite_create("keyid");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_golden, 0, N_VECTORS);
    tcase_add_test(tc, test_default_shape);
    tcase_add_test(tc, test_parse_spellings);
    tcase_add_test(tc, test_mismatch);
    tcase_add_test(tc, test_reject);
    tcase_add_test(tc, test_bad_args);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keyid_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
