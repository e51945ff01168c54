/* SPDX-License-Identifier: Apache-2.0 */
/*
 * test_encoding.c - base64url and Base32: RFC 4648 section 10 vectors, the
 * canonical-form rejections, and round trips over every byte length that
 * exercises a different tail.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "lurk_encoding.h"

static const struct {
    const char *plain;
    const char *b64url;
    const char *base32;
} rfc4648[] = {
    { "", "", "" },
    { "f", "Zg", "MY" },
    { "fo", "Zm8", "MZXQ" },
    { "foo", "Zm9v", "MZXW6" },
    { "foob", "Zm9vYg", "MZXW6YQ" },
    { "fooba", "Zm9vYmE", "MZXW6YTB" },
    { "foobar", "Zm9vYmFy", "MZXW6YTBOI" },
};

START_TEST(test_b64url_rfc4648)
{
    const char *plain = rfc4648[_i].plain;
    size_t n = strlen(plain);
    char out[64];
    unsigned char *dec = NULL;
    size_t declen = 0;

    ck_assert_uint_eq(lurk_b64url_encoded_len(n), strlen(rfc4648[_i].b64url));
    ck_assert_int_eq(lurk_b64url_encode((const unsigned char *)plain, n, out, sizeof(out)), LURK_OK);
    ck_assert_str_eq(out, rfc4648[_i].b64url);
    ck_assert_int_eq(lurk_b64url_decode(out, strlen(out), 64, &dec, &declen), LURK_OK);
    ck_assert_ptr_nonnull(dec);
    ck_assert_uint_eq(declen, n);
    ck_assert_mem_eq(dec, plain, n);
    free(dec);
}
END_TEST

START_TEST(test_base32_rfc4648)
{
    const char *plain = rfc4648[_i].plain;
    size_t n = strlen(plain);
    char out[64];
    unsigned char dec[16];
    size_t declen = 0;

    ck_assert_uint_eq(lurk_base32_encoded_len(n, 0), strlen(rfc4648[_i].base32));
    ck_assert_int_eq(lurk_base32_encode((const unsigned char *)plain, n, 0, out, sizeof(out)),
                     LURK_OK);
    ck_assert_str_eq(out, rfc4648[_i].base32);
    ck_assert_int_eq(lurk_base32_decode(out, strlen(out), dec, sizeof(dec), &declen), LURK_OK);
    ck_assert_uint_eq(declen, n);
    ck_assert_mem_eq(dec, plain, n);
}
END_TEST

/* The two characters where base64url differs from base64. */
START_TEST(test_b64url_alphabet)
{
    const unsigned char in[] = { 0xfb, 0xff, 0xbf };
    char out[8];
    unsigned char *dec = NULL;
    size_t declen = 0;

    ck_assert_int_eq(lurk_b64url_encode(in, 2, out, sizeof(out)), LURK_OK);
    ck_assert_str_eq(out, "-_8");
    ck_assert_int_eq(lurk_b64url_encode(in, 3, out, sizeof(out)), LURK_OK);
    ck_assert_str_eq(out, "-_-_");
    ck_assert_int_eq(lurk_b64url_decode("-_-_", 4, 3, &dec, &declen), LURK_OK);
    ck_assert_uint_eq(declen, 3);
    ck_assert_mem_eq(dec, in, 3);
    free(dec);
}
END_TEST

static const struct {
    const char *text;
    size_t max;
    lurk_err err;
} b64url_bad[] = {
    { "Zg==", 64, LURK_ERR_INVALID_FORMAT },     /* padding */
    { "Zm8=", 64, LURK_ERR_INVALID_FORMAT },     /* padding */
    { "Zm+v", 64, LURK_ERR_INVALID_FORMAT },     /* base64, not base64url */
    { "Zm/v", 64, LURK_ERR_INVALID_FORMAT },
    { "Zm9 v", 64, LURK_ERR_INVALID_FORMAT },    /* whitespace */
    { "Zm9v\n", 64, LURK_ERR_INVALID_FORMAT },
    { " Zm9v", 64, LURK_ERR_INVALID_FORMAT },
    { "Zh", 64, LURK_ERR_INVALID_FORMAT },       /* non-zero trailing bits */
    { "Zm9", 64, LURK_ERR_INVALID_FORMAT },      /* non-zero trailing bits */
    { "Zm_", 64, LURK_ERR_INVALID_FORMAT },      /* non-zero trailing bits */
    { "Z", 64, LURK_ERR_INVALID_FORMAT },        /* 6 bits: no byte */
    { "Zm9vY", 64, LURK_ERR_INVALID_FORMAT },
    { "Zm9v.", 64, LURK_ERR_INVALID_FORMAT },
    { "Zm9vYmFy", 5, LURK_ERR_TOO_LARGE },       /* too long */
    { "Zm9v", 2, LURK_ERR_TOO_LARGE },
};

START_TEST(test_b64url_reject)
{
    unsigned char *dec = NULL;
    size_t declen = 99;
    const char *text = b64url_bad[_i].text;

    ck_assert_msg(lurk_b64url_decode(text, strlen(text), b64url_bad[_i].max, &dec, &declen)
                      == b64url_bad[_i].err,
                  "row %d: \"%s\"", _i, text);
    ck_assert_ptr_null(dec);
    ck_assert_uint_eq(declen, 0);
}
END_TEST

/* Every byte outside the alphabet, at every position of a full group and of
 * a two- and three-character tail, is refused. */
START_TEST(test_b64url_every_byte)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned char *dec = NULL;
    size_t declen = 0;

    for (unsigned c = 0; c < 256; c++) {
        if (c != 0 && strchr(alphabet, (int)c) != NULL) {
            continue;
        }
        for (size_t len = 6; len <= 7; len++) {
            for (size_t pos = 0; pos < len; pos++) {
                char text[8] = "AAAAAAA";

                text[pos] = (char)c;
                ck_assert_msg(lurk_b64url_decode(text, len, 64, &dec, &declen)
                                  == LURK_ERR_INVALID_FORMAT,
                              "byte 0x%02x at %zu of %zu accepted", c, pos, len);
                ck_assert_ptr_null(dec);
            }
        }
    }
}
END_TEST

static const struct {
    const char *text;
    size_t max;
    lurk_err err;
} base32_bad[] = {
    { "MY======", 16, LURK_ERR_INVALID_FORMAT },  /* padding */
    { "MZ", 16, LURK_ERR_INVALID_FORMAT },        /* non-zero trailing bits */
    { "MZXR", 16, LURK_ERR_INVALID_FORMAT },      /* non-zero trailing bits */
    { "M", 16, LURK_ERR_INVALID_FORMAT },         /* 1, 3, 6 chars end no byte */
    { "MZX", 16, LURK_ERR_INVALID_FORMAT },
    { "MZXW6Y", 16, LURK_ERR_INVALID_FORMAT },
    { "MY1", 16, LURK_ERR_INVALID_FORMAT },       /* not in the alphabet */
    { "MZXW0", 16, LURK_ERR_INVALID_FORMAT },
    { "MZXW8", 16, LURK_ERR_INVALID_FORMAT },
    { "MZ W6", 16, LURK_ERR_INVALID_FORMAT },     /* whitespace */
    { "MZXW6\n", 16, LURK_ERR_INVALID_FORMAT },
    { "MZ_W6", 16, LURK_ERR_INVALID_FORMAT },
    { "MZXW6YTBOI", 5, LURK_ERR_TOO_LARGE },      /* longer than the buffer */
};

START_TEST(test_base32_reject)
{
    unsigned char dec[16];
    size_t declen = 99;
    const char *text = base32_bad[_i].text;

    ck_assert_msg(lurk_base32_decode(text, strlen(text), dec, base32_bad[_i].max, &declen)
                      == base32_bad[_i].err,
                  "row %d: \"%s\"", _i, text);
}
END_TEST

/* Key id presentation: dashes every `group` characters, both ignored and
 * case folded when decoding. */
START_TEST(test_base32_groups)
{
    char out[64];
    unsigned char dec[16];
    size_t declen = 0;
    static const char *const spellings[] = {
        "MZXW6-YTBOI", "mzxw6-ytboi", "MZXW6YTBOI", "M-Z-X-W-6-Y-T-B-O-I", "-MzXw6YtBoI-",
    };

    ck_assert_uint_eq(lurk_base32_encoded_len(6, 5), 11);
    ck_assert_int_eq(lurk_base32_encode((const unsigned char *)"foobar", 6, 5, out, sizeof(out)),
                     LURK_OK);
    ck_assert_str_eq(out, "MZXW6-YTBOI");
    ck_assert_int_eq(lurk_base32_encode((const unsigned char *)"foob", 4, 5, out, sizeof(out)),
                     LURK_OK);
    ck_assert_str_eq(out, "MZXW6-YQ");
    ck_assert_int_eq(lurk_base32_encode((const unsigned char *)"fooba", 5, 4, out, sizeof(out)),
                     LURK_OK);
    ck_assert_str_eq(out, "MZXW-6YTB");
    for (size_t i = 0; i < sizeof(spellings) / sizeof(spellings[0]); i++) {
        ck_assert_int_eq(lurk_base32_decode(spellings[i], strlen(spellings[i]), dec, sizeof(dec),
                                            &declen),
                         LURK_OK);
        ck_assert_uint_eq(declen, 6);
        ck_assert_mem_eq(dec, "foobar", 6);
    }
}
END_TEST

START_TEST(test_encode_buffer_too_small)
{
    char out[8];

    /* "foobar" needs 8 chars + NUL in base64url, 10 + NUL in Base32. */
    ck_assert_int_eq(lurk_b64url_encode((const unsigned char *)"foobar", 6, out, 8),
                     LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_base32_encode((const unsigned char *)"foobar", 6, 0, out, 8),
                     LURK_ERR_INVALID_ARG);
    ck_assert_int_eq(lurk_b64url_encode((const unsigned char *)"fooba", 5, out, 8), LURK_OK);
    ck_assert_str_eq(out, "Zm9vYmE");
}
END_TEST

/* Every length 0..70 with every byte value: encode, decode, compare. */
START_TEST(test_round_trip)
{
    unsigned char in[70];
    char text[160];
    unsigned char b32[70];
    unsigned char *dec = NULL;
    size_t declen = 0;

    for (size_t i = 0; i < sizeof(in); i++) {
        in[i] = (unsigned char)(i * 37 + 11 + (size_t)_i * 101);
    }
    for (size_t n = 0; n <= sizeof(in); n++) {
        ck_assert_int_eq(lurk_b64url_encode(in, n, text, sizeof(text)), LURK_OK);
        ck_assert_uint_eq(strlen(text), lurk_b64url_encoded_len(n));
        ck_assert_int_eq(lurk_b64url_decode(text, strlen(text), n, &dec, &declen), LURK_OK);
        ck_assert_uint_eq(declen, n);
        ck_assert_mem_eq(dec, in, n);
        free(dec);
        dec = NULL;

        ck_assert_int_eq(lurk_base32_encode(in, n, 5, text, sizeof(text)), LURK_OK);
        ck_assert_uint_eq(strlen(text), lurk_base32_encoded_len(n, 5));
        ck_assert_int_eq(lurk_base32_decode(text, strlen(text), b32, n, &declen), LURK_OK);
        ck_assert_uint_eq(declen, n);
        ck_assert_mem_eq(b32, in, n);
    }
}
END_TEST

static Suite *encoding_suite(void)
{
    Suite *s = suite_create("encoding");
    TCase *tc = tcase_create("core");

    tcase_add_loop_test(tc, test_b64url_rfc4648, 0, sizeof(rfc4648) / sizeof(rfc4648[0]));
    tcase_add_loop_test(tc, test_base32_rfc4648, 0, sizeof(rfc4648) / sizeof(rfc4648[0]));
    tcase_add_test(tc, test_b64url_alphabet);
    tcase_add_loop_test(tc, test_b64url_reject, 0, sizeof(b64url_bad) / sizeof(b64url_bad[0]));
    tcase_add_test(tc, test_b64url_every_byte);
    tcase_add_loop_test(tc, test_base32_reject, 0, sizeof(base32_bad) / sizeof(base32_bad[0]));
    tcase_add_test(tc, test_base32_groups);
    tcase_add_test(tc, test_encode_buffer_too_small);
    tcase_add_loop_test(tc, test_round_trip, 0, 4);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(encoding_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
